/* annotations.c -- ActionFormer / OpenTAD annotation JSON to snippet labels (see
 * annotations.h). jansson is already a core dependency (safetensors headers). */
#include "annotations.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fsutil.h"
#include "sorted.h"

void sola_ann_params_default(sola_ann_params *p)
{
    p->stride = 4;
    p->frames = 16;
    p->offset = 8;
    p->default_fps = 0;
}

void sola_ann_free(sola_annotations *a)
{
    if (!a)
        return;
    for (int i = 0; i < a->n; i++) {
        free(a->videos[i].name);
        free(a->videos[i].subset);
        free(a->videos[i].segs);
    }
    for (int i = 0; i < a->nclasses; i++)
        free(a->classes[i]);
    free(a->videos);
    free(a->classes);
    free(a->path);
    free(a->ignored);
    free(a);
}

static int str_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static int video_cmp(const void *x, const void *y)
{
    return strcmp(((const sola_ann_video *)x)->name, ((const sola_ann_video *)y)->name);
}

/* Label text of one annotation (borrowed from j or written into buf). */
static const char *label_of(json_t *an, char *buf, size_t n)
{
    json_t *l = json_object_get(an, "label");
    if (json_is_string(l))
        return json_string_value(l);
    json_t *id = json_object_get(an, "label_id");
    if (json_is_integer(id)) {
        snprintf(buf, n, "%lld", (long long)json_integer_value(id));
        return buf;
    }
    return NULL;
}

/* Collects the sorted distinct labels of every video (subset or not, so class
 * indices do not depend on the subset chosen). */
static int collect_classes(json_t *db, sola_annotations *a, sola_err *e)
{
    const char *key;
    json_t *v;
    size_t cap = 0, n = 0;
    char buf[32];
    json_object_foreach(db, key, v) {
        json_t *anns = json_object_get(v, "annotations");
        size_t k;
        json_t *an;
        json_array_foreach(anns, k, an) {
            const char *l = label_of(an, buf, sizeof buf);
            if (!l || (a->ignored && !strcmp(l, a->ignored)))
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                char **c = realloc(a->classes, cap * sizeof *c);
                if (!c)
                    return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", a->path);
                a->classes = c;
            }
            if (!(a->classes[n] = strdup(l)))
                return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", a->path);
            a->nclasses = (int)++n;
        }
    }
    if (n)
        qsort(a->classes, n, sizeof *a->classes, str_cmp);
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (u && !strcmp(a->classes[u - 1], a->classes[i]))
            free(a->classes[i]);
        else
            a->classes[u++] = a->classes[i];
    }
    a->nclasses = (int)u;
    return 0;
}

static int class_index(const sola_annotations *a, const char *l)
{
    if (!a->nclasses)
        return -1;
    char *const *p = bsearch(&l, a->classes, (size_t)a->nclasses, sizeof *a->classes, str_cmp);
    return p ? (int)(p - a->classes) : -1;
}

/* Fills one video from its JSON object. */
static int parse_video(sola_annotations *a, const char *key, json_t *v, sola_ann_video *out,
                       sola_err *e)
{
    json_t *sub = json_object_get(v, "subset"), *dur = json_object_get(v, "duration"),
           *fps = json_object_get(v, "fps"), *anns = json_object_get(v, "annotations");
    out->duration = json_is_number(dur) ? json_number_value(dur) : -1;
    out->fps = json_is_number(fps) ? json_number_value(fps) : 0;
    if (fps && (!json_is_number(fps) || !(out->fps > 0)))
        return sola_errf(e, SOLA_EFORMAT, "%s: video '%s': \"fps\" must be a positive number",
                         a->path, key);
    if (out->fps > 0)
        out->fps_from = "fps";
    /* No fps: OpenTAD's "frame" (frame count) over "duration"; BMN's own pair. */
    static const char *const pairs[][3] = {
        {"frame", "duration", "frame/duration"},
        {"duration_frame", "duration_second", "duration_frame/duration_second"}};
    for (size_t k = 0; k < 2 && !out->fps_from; k++) {
        json_t *nf = json_object_get(v, pairs[k][0]), *ds = json_object_get(v, pairs[k][1]);
        if (!nf)
            continue;
        double f = json_is_number(nf) ? json_number_value(nf) : -1,
               sec = json_is_number(ds) ? json_number_value(ds) : -1;
        if (!(f > 0) || !(sec > 0) || !isfinite(f / sec))
            return sola_errf(e, SOLA_EFORMAT, "%s: video '%s': \"%s\" and \"%s\" must be "
                             "positive numbers (fps = %s)", a->path, key, pairs[k][0],
                             pairs[k][1], pairs[k][2]);
        out->fps = f / sec;
        out->fps_from = pairs[k][2];
    }
    if (anns && !json_is_array(anns))
        return sola_errf(e, SOLA_EFORMAT, "%s: video '%s': \"annotations\" must be a list",
                         a->path, key);
    size_t n = json_array_size(anns);
    out->segs = calloc(n ? n : 1, sizeof *out->segs);
    if (!out->segs)
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", a->path);
    size_t k;
    json_t *an;
    char buf[32];
    json_array_foreach(anns, k, an) {
        json_t *seg = json_object_get(an, "segment");
        json_t *s0 = json_array_get(seg, 0), *s1 = json_array_get(seg, 1);
        const char *l = label_of(an, buf, sizeof buf);
        if (!l)
            return sola_errf(e, SOLA_EFORMAT, "%s: video '%s': annotation %zu has no \"label\"",
                             a->path, key, k);
        if (json_array_size(seg) != 2 || !json_is_number(s0) || !json_is_number(s1))
            return sola_errf(e, SOLA_EFORMAT, "%s: video '%s': annotation %zu: \"segment\" "
                             "must be [start, end] in seconds", a->path, key, k);
        double s = json_number_value(s0), t = json_number_value(s1);
        if (!(s >= 0) || !(t >= s) || !isfinite(t))
            return sola_errf(e, SOLA_EFORMAT, "%s: video '%s': annotation %zu: segment "
                             "[%g, %g] is not 0 <= start <= end", a->path, key, k, s, t);
        int ign = a->ignored && !strcmp(l, a->ignored);
        out->nignored += ign;
        out->segs[out->nseg++] = (sola_ann_seg){s, t, ign ? -1 : class_index(a, l)};
    }
    out->subset = strdup(json_is_string(sub) ? json_string_value(sub) : "");
    out->name = strdup(key);
    if (!out->subset || !out->name)
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", a->path);
    return 0;
}

int sola_ann_parse(const void *buf, size_t len, const char *name, const char *subset,
                   sola_annotations **out, sola_err *e)
{
    return sola_ann_parse_ex(buf, len, name, subset, "Ambiguous", out, e);
}

int sola_ann_parse_ex(const void *buf, size_t len, const char *name, const char *subset,
                      const char *ignore, sola_annotations **out, sola_err *e)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return sola_errf(e, SOLA_EFORMAT, "%s: line %d: %s", name, je.line, je.text);
    int rc = 0;
    sola_annotations *a = calloc(1, sizeof *a);
    if (!a || !(a->path = strdup(name)) ||
        (ignore && ignore[0] && !(a->ignored = strdup(ignore)))) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", name);
        goto out;
    }
    json_t *db = json_object_get(root, "database");
    if (!db)
        db = root;
    if (!json_is_object(db)) {
        rc = sola_errf(e, SOLA_EFORMAT, "%s: expected {\"database\": {VIDEO: {...}}}", name);
        goto out;
    }
    if ((rc = collect_classes(db, a, e)))
        goto out;
    a->videos = calloc(json_object_size(db) + 1, sizeof *a->videos);
    if (!a->videos) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", name);
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(db, key, v) {
        if (!json_is_object(v)) {
            rc = sola_errf(e, SOLA_EFORMAT, "%s: video '%s' is not an object", name, key);
            goto out;
        }
        json_t *sub = json_object_get(v, "subset");
        if (subset && !(json_is_string(sub) && !strcasecmp(json_string_value(sub), subset)))
            continue;
        rc = parse_video(a, key, v, &a->videos[a->n], e);
        a->n++; /* freed by sola_ann_free even when half filled */
        if (rc)
            goto out;
    }
    qsort(a->videos, (size_t)a->n, sizeof *a->videos, video_cmp);
out:
    json_decref(root);
    if (rc) {
        sola_ann_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

int sola_ann_load(const char *path, const char *subset, sola_annotations **out, sola_err *e)
{
    return sola_ann_load_ex(path, subset, "Ambiguous", out, e);
}

int sola_ann_load_ex(const char *path, const char *subset, const char *ignore,
                     sola_annotations **out, sola_err *e)
{
    sola_map m;
    int rc = sola_map_file(path, &m, e);
    if (rc)
        return rc;
    rc = sola_ann_parse_ex(m.data ? m.data : "", m.len, path, subset, ignore, out, e);
    sola_unmap(&m);
    return rc;
}

int sola_ann_find(const sola_annotations *a, const char *name)
{
    return sola_find_sorted(a->videos, a->n, sizeof *a->videos, offsetof(sola_ann_video, name),
                            name);
}

int sola_ann_labels(const sola_annotations *a, int v, int64_t T, const sola_ann_params *p,
                    uint8_t *hot, uint8_t *fg, sola_ann_report *r, sola_err *e)
{
    sola_ann_report dummy;
    if (!r)
        r = &dummy;
    memset(r, 0, sizeof *r);
    r->expected_T = -1;
    if (v < 0 || v >= a->n || T < 0)
        return sola_errf(e, SOLA_EINVAL, "%s: no video %d", a->path, v);
    const sola_ann_video *vid = &a->videos[v];
    double fps = vid->fps > 0 ? vid->fps : p->default_fps;
    double off = p->offset >= 0 ? p->offset : p->frames / 2;
    if (!(fps > 0))
        return sola_errf(e, SOLA_EINVAL, "%s: video '%s' has no \"fps\"; give a default fps "
                         "(--fps)", a->path, vid->name);
    if (!(p->stride > 0) || !(p->frames > 0))
        return sola_errf(e, SOLA_EINVAL, "annotations: stride %g and frames %g must be > 0",
                         p->stride, p->frames);
    size_t K = (size_t)a->nclasses;
    if (hot)
        memset(hot, 0, (size_t)T * K);
    if (fg)
        memset(fg, 0, (size_t)T);
    r->fps = fps;
    /* the end of the video in snippet units: its duration, else the last snippet's end */
    double g_end = vid->duration >= 0 ? (vid->duration * fps - off) / p->stride
                                      : (double)(T - 1) + p->frames / 2 / p->stride;
    for (int s = 0; s < vid->nseg; s++) {
        const sola_ann_seg *sg = &vid->segs[s];
        if (sg->label < 0 && a->ignored) {
            r->ignored++;
            continue;
        }
        double g0 = (sg->start * fps - off) / p->stride;
        double g1 = (sg->end * fps - off) / p->stride;
        if (T < 1 || g0 >= g_end - SOLA_ANN_EPS) {
            r->outside++;
            continue;
        }
        double lo = ceil(g0 - SOLA_ANN_EPS), hi = floor(g1 + SOLA_ANN_EPS);
        if (lo > hi) /* no centre inside: the snippet nearest its middle */
            lo = hi = floor((g0 + g1) / 2 + 0.5);
        if (hi < 0 || lo > (double)(T - 1)) { /* before the first / after the last centre */
            lo = hi = hi < 0 ? 0 : (double)(T - 1);
            r->clamped++;
        }
        int64_t i0 = lo < 0 ? 0 : (int64_t)lo, i1 = hi > (double)(T - 1) ? T - 1 : (int64_t)hi;
        for (int64_t i = i0; i <= i1; i++) {
            if (hot && sg->label >= 0)
                hot[(size_t)i * K + (size_t)sg->label] = 1;
            if (fg)
                fg[i] = 1;
        }
    }
    if (vid->duration >= 0) {
        double nf = vid->duration * fps;
        r->expected_T = nf >= p->frames ? (int64_t)floor((nf - p->frames) / p->stride) + 1 : 1;
        r->mismatch = llabs(T - r->expected_T) > 2;
    }
    return 0;
}
