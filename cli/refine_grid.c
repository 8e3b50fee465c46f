/* refine_grid.c -- the post-run pass of `sola refine` over its dataset (which videos
 * were refined, their time grid from the video_features siblings, copying those) and
 * the checks against the declared grid and the annotations (see refine_meta.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "annotations.h"
#include "cli.h"
#include "fsutil.h"
#include "layouts.h"
#include "refine_meta_int.h"

static int copy_file(const char *from, const char *to, sola_err *e)
{
    sola_map mp;
    int rc = sola_map_file(from, &mp, e);
    if (rc)
        return rc;
    rc = sola_write_atomic(to, mp.data ? mp.data : "", mp.len, e);
    sola_unmap(&mp);
    return rc;
}

/* 1 when a and b differ by more than 1% (both known). */
static int differ(double a, double b)
{
    return a > 0 && b > 0 && (a > b * 1.01 || b > a * 1.01);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int cli_rmeta_collect(cli_rmeta *m, const sola_dataset *d, const unsigned char *mine,
                      const char *copy_to, const cli_rmeta_grid *declared, int maxwarn,
                      int *warned, sola_err *e)
{
    static const cli_rmeta_grid none;
    const cli_rmeta_grid *dg = declared ? declared : &none;
    *warned = 0;
    int rc = 0, ns = d->nskipped;
    char **sk = malloc(((size_t)ns + 1) * sizeof *sk);
    if (!sk)
        return sola_errf(e, SOLA_ENOMEM, "out of memory");
    if (ns) {
        memcpy(sk, d->skipped, (size_t)ns * sizeof *sk);
        qsort(sk, (size_t)ns, sizeof *sk, name_cmp);
    }
    for (int i = 0; i < ns && !rc; i++)
        if (cli_rmeta_skip(m, d->skipped[i], d->skip_why[i]))
            rc = sola_errf(e, SOLA_ENOMEM, "out of memory");
    for (int i = 0; i < d->n && !rc; i++) {
        const sola_dataset_item *it = &d->items[i];
        const char *nm = it->name;
        if ((mine && !mine[i]) || bsearch(&nm, sk, (size_t)ns, sizeof *sk, name_cmp))
            continue; /* another shard's, or failed during the run */
        cli_rmeta_grid g = *dg;
        g.copied[0] = g.copied[1] = NULL;
        sola_item_grid ig = {0};
        sola_err ge = {0};
        if (sola_layout_grid(d, i, &ig, &ge)) {
            cli_errorf("warning: %s: %s (grid left unknown)", nm, ge.msg);
            (*warned)++;
        }
        char what[300] = "";
        size_t wl = 0;
        if (differ(ig.fps, dg->fps))
            wl += (size_t)snprintf(what + wl, sizeof what - wl, "; %s says %g fps, --fps %g",
                                   it->fps_file, ig.fps, dg->fps);
        if (differ(ig.stride, dg->stride) && wl < sizeof what)
            wl += (size_t)snprintf(what + wl, sizeof what - wl, "; %s gives %g frames between "
                                   "snippets, --stride %g", it->ts_file, ig.stride, dg->stride);
        if (differ(ig.frames, dg->frames) && wl < sizeof what)
            snprintf(what + wl, sizeof what - wl, "; %s gives %g frames per snippet, "
                     "--frames %g", it->ts_file, ig.frames, dg->frames);
        if (what[0] && (*warned)++ < maxwarn)
            cli_errorf("warning: %s: the features' own grid is not the declared one%s; a "
                       "downstream config using the declared grid would misplace every "
                       "segment", nm, what);
        if (ig.fps > 0) {
            g.fps = ig.fps;
            g.fps_from = it->fps_file;
        }
        if (ig.stride > 0 || ig.frames > 0) {
            g.stride = ig.stride;
            g.frames = ig.frames;
            g.grid_from = it->ts_file;
        }
        int k = 0;
        char from[4300], to[4300];
        const char *sib[2] = {it->fps_file, it->ts_file};
        for (int s = 0; s < 2 && copy_to && !rc; s++) {
            if (!sib[s])
                continue;
            snprintf(from, sizeof from, "%s/%s", d->dir, sib[s]);
            snprintf(to, sizeof to, "%s/%s", copy_to, sib[s]);
            if (!(rc = copy_file(from, to, e)))
                g.copied[k++] = sib[s];
        }
        if (!rc && cli_rmeta_video(m, nm, it->T, &g))
            rc = sola_errf(e, SOLA_ENOMEM, "out of memory");
    }
    if (*warned > maxwarn)
        cli_errorf("warning: %d more videos whose grid contradicts the declared one",
                   *warned - maxwarn);
    free(sk);
    return rc;
}

/* ---- the annotation file a downstream loader will use ------------------------------ */

/* The annotation of a feature name: NAME, or NAME without "v_" (ActivityNet keys). */
static int ann_of(const sola_annotations *a, const char *name)
{
    int v = sola_ann_find(a, name);
    if (v < 0 && !strncmp(name, "v_", 2) && name[2])
        v = sola_ann_find(a, name + 2);
    return v;
}

static double num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : 0;
}

int cli_rmeta_annotations(cli_rmeta *m, const sola_dataset *d,
                          const struct sola_annotations *a, int maxwarn, int *warned,
                          sola_err *e)
{
    *warned = 0;
    int nogrid = 0, rc = 0;
    const char *name;
    json_t *v;
    json_object_foreach(m->videos, name, v) {
        int k = ann_of(a, name);
        if (k < 0)
            continue;
        const sola_ann_video *av = &a->videos[k];
        double fps = num(v, "fps"), stride = num(v, "stride"), frames = num(v, "frames");
        int64_t T = json_integer_value(json_object_get(v, "T"));
        if (av->fps > 0) {
            rc |= json_object_set_new(v, "annotation_fps", json_real(av->fps));
            if (!(fps > 0)) {
                fps = av->fps;
                rc |= json_object_set_new(v, "fps", json_real(fps));
                rc |= json_object_set_new(v, "fps_from", json_sprintf("annotations: %s",
                                                                      av->fps_from));
            } else if (differ(fps, av->fps) && (*warned)++ < maxwarn) {
                cli_errorf("warning: %s: the features were extracted at %g fps, %s says %g "
                           "(%s): its segments would be placed at the wrong snippets", name,
                           fps, a->path, av->fps, av->fps_from);
            }
        }
        if (av->duration < 0 || !(fps > 0))
            continue;
        if (!(stride > 0) || !(frames > 0)) {
            nogrid++;
            continue;
        }
        double nf = av->duration * fps;
        int64_t want = nf >= frames ? (int64_t)((nf - frames) / stride) + 1 : 1;
        rc |= json_object_set_new(v, "expected_T", json_integer(want));
        if (llabs(T - want) > 2 && (*warned)++ < maxwarn)
            cli_errorf("warning: %s: %lld snippets, but %g s at %g fps with %g-frame snippets "
                       "every %g frames gives %lld: the grid (--stride/--frames, or the "
                       "extraction) is not the one these features were made with", name,
                       (long long)T, av->duration, fps, frames, stride, (long long)want);
    }
    if (nogrid)
        cli_errorf("note: %d annotated video%s without a known stride and snippet length: "
                   "pass --stride and --frames to check T against their duration", nogrid,
                   nogrid == 1 ? "" : "s");
    if (*warned > maxwarn)
        cli_errorf("warning: %d more videos whose grid disagrees with the annotations",
                   *warned - maxwarn);
    /* annotated videos that have no features at all */
    for (int k = 0; k < a->n && !rc; k++) {
        char vname[4096];
        const char *key = a->videos[k].name;
        snprintf(vname, sizeof vname, "v_%s", key);
        int found = sola_dataset_find(d, key) >= 0 || sola_dataset_find(d, vname) >= 0;
        for (int s = 0; s < d->nskipped && !found; s++)
            found = !strcmp(d->skipped[s], key) || !strcmp(d->skipped[s], vname);
        if (!found)
            rc |= cli_rmeta_absent(m, key);
    }
    return rc ? sola_errf(e, SOLA_ENOMEM, "out of memory") : 0;
}
