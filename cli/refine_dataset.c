/* refine_dataset.c -- `sola refine` of a dataset in any layout (see refine_dataset.h).
 *
 * Outputs, per input layout, so a downstream config changes only its folder:
 *   NAME.npy, video_features pair/stream, HDF5 item  -> OUT/NAME.npy
 *   NAME.npz                                         -> OUT/NAME.npz (same member name)
 *   NAME.csv (BMN)                                   -> OUT/NAME.csv (same header row)
 * always float32, T unchanged, [C, T] again for --layout ct. Videos are streamed one
 * at a time. A video that cannot be read is skipped, logged with its reason and named
 * in missing_files.txt; the run then exits 1 unless --allow-missing. */
#include "refine_dataset.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_io.h"
#include "dataset.h"
#include "fsutil.h"
#include "h5io.h"
#include "layouts.h"
#include "npy.h"
#include "npz.h"

int cli_is_h5_name(const char *path)
{
    return sola_has_ext(path, ".h5") || sola_has_ext(path, ".hdf5");
}

/* The name the refined .npz member keeps: the member the reader picked. */
static int npz_member(const char *path, char *name, size_t n, sola_err *e)
{
    sola_npz z;
    int rc = sola_npz_open(path, &z, e);
    if (rc)
        return rc;
    int i = sola_npz_pick(&z, path, e);
    if (i < 0)
        rc = SOLA_EFORMAT;
    else
        snprintf(name, n, "%s", z.entries[i].name);
    sola_npz_close(&z);
    return rc;
}

/* Writes one refined video y [T, C] (already in the source orientation) next to its
 * input's format. */
static int write_item(const sola_dataset *d, int i, const char *out, const sola_array *y,
                      sola_err *e)
{
    const sola_dataset_item *it = &d->items[i];
    char ip[4096], op[4096];
    snprintf(ip, sizeof ip, "%s/%s", d->dir, it->file);
    const char *ext = it->kind == SOLA_ITEM_NPZ ? "npz" : it->kind == SOLA_ITEM_CSV ? "csv"
                                                                                     : "npy";
    if ((size_t)snprintf(op, sizeof op, "%s/%s.%s", out, it->name, ext) >= sizeof op)
        return sola_errf(e, SOLA_EINVAL, "%s: output path too long", out);
    if (it->kind == SOLA_ITEM_NPZ) {
        char member[256];
        int rc = npz_member(ip, member, sizeof member, e);
        const char *names[1] = {member};
        return rc ? rc : sola_npz_save(op, names, y, 1, 0, e);
    }
    if (it->kind == SOLA_ITEM_CSV) {
        sola_array tmp;
        char *hdr = NULL;
        int rc = sola_csv_load(ip, &tmp, &hdr, e);
        sola_array_free(&tmp);
        if (!rc)
            rc = sola_csv_save(op, hdr, y->data, y->shape[0], y->shape[1], e);
        free(hdr);
        return rc;
    }
    return sola_npy_save(op, y->data, 2, y->shape, e);
}

/* "version" of the model: its metadata, else the registry's file name (models/M/3.safetensors). */
static json_t *model_version(const sola_model *m, const char *mpath)
{
    const char *v = sola_model_meta(m, "version");
    if (v)
        return json_string(v);
    char stem[256];
    sola_stem(mpath, stem, sizeof stem);
    char *end;
    long n = strtol(stem, &end, 10);
    return stem[0] && !*end && n > 0 ? json_integer(n) : json_null();
}

static int write_meta(const char *path, const sola_model *m, const char *mpath,
                      const char *in, const sola_dataset *d, const cli_refine_opts *o,
                      long refined, sola_err *e)
{
    json_t *j = json_object(), *sk = json_array(), *md = json_object();
    for (int i = 0; i < d->nskipped; i++)
        json_array_append_new(sk, json_string(d->skipped[i]));
    for (int i = 0; i < m->nmeta; i++)
        json_object_set_new(md, m->meta[i].key, json_string(m->meta[i].val));
    json_object_set_new(j, "tool", json_string("sola refine"));
    json_object_set_new(j, "model", json_string(mpath));
    json_object_set_new(j, "model_version", model_version(m, mpath));
    json_object_set_new(j, "model_metadata", md);
    json_object_set_new(j, "C", json_integer(m->C));
    json_object_set_new(j, "hidden", json_integer(m->H));
    json_object_set_new(j, "source", json_string(in));
    json_object_set_new(j, "source_layout", json_string(d->layout ? d->layout : "npy"));
    json_object_set_new(j, "layout", json_string(o->ct ? "ct" : "tc"));
    json_object_set_new(j, "dtype", json_string("float32"));
    json_object_set_new(j, "T_and_stride", json_string("unchanged (one refined row per input snippet)"));
    json_object_set_new(j, "videos", json_integer(refined));
    json_object_set_new(j, "skipped", sk);
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!s)
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", path);
    size_t n = strlen(s);
    s[n] = '\n'; /* over the NUL: the file ends with a newline */
    int rc = sola_write_atomic(path, s, n + 1, e);
    free(s);
    return rc;
}

/* refine_meta.json / missing_files.txt beside an HDF5 output: NAME.refine_meta.json. */
static void sidecar(const char *out, int h5_only, const char *what, char *buf, size_t n)
{
    if (!h5_only) {
        snprintf(buf, n, "%s/%s", out, what);
        return;
    }
    size_t l = strlen(out);
    const char *dot = strrchr(out, '.');
    if (dot)
        l = (size_t)(dot - out);
    snprintf(buf, n, "%.*s.%s", (int)l, out, what);
}

int cli_refine_dataset(const sola_model *m, const char *mpath, const char *in,
                       const char *out, const cli_refine_opts *o, sola_ws *ws)
{
    sola_err e = {0};
    sola_dataset *d = NULL;
    sola_dataset_opts dopt = {.ct = o->ct, .skip_bad = 1};
    if (sola_dataset_open_ex(in, &dopt, &d, &e)) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    int h5_only = cli_is_h5_name(out);
    const char *h5path = h5_only ? out : o->h5_out;
    int rc = EXIT_OK;
    sola_h5w *w = NULL;
    if (d->C != m->C) {
        cli_errorf("%s: features have C=%d but %s expects C=%d%s", in, d->C, mpath, m->C,
                   o->ct ? "" : " (channel-first files? try --layout ct)");
        sola_dataset_free(d);
        return EXIT_RUNTIME;
    }
    if ((!h5_only && sola_mkdirs(out, 0755, &e)) || (h5path && sola_h5w_open(h5path, &w, &e))) {
        cli_errorf("%s", e.msg);
        sola_dataset_free(d);
        return EXIT_RUNTIME;
    }
    for (int i = 0; i < d->nskipped; i++)
        cli_errorf("skipped %s: %s", d->skipped[i], d->skip_why[i]);
    int scan_skipped = d->nskipped;
    cli_progress p;
    cli_progress_init(&p);
    long refined = 0, frames = 0;
    char label[4200];
    for (int i = 0; i < d->n; i++) {
        sola_array x, y = {0};
        sola_dataset_path(d, i, label, sizeof label);
        int r = sola_dataset_load(d, i, &x, &e);
        if (!r) {
            r = cli_refine_array(m, &x, label, &y, ws, &e);
            frames += (long)x.shape[0];
            sola_array_free(&x);
        }
        if (!r && o->ct)
            r = sola_layout_transpose(&y, &e);
        if (!r && !h5_only)
            r = write_item(d, i, out, &y, &e);
        if (!r && w)
            r = sola_h5w_put(w, d->items[i].name, y.data, y.shape[0], y.shape[1], &e);
        sola_array_free(&y);
        if (r) {
            if (p.tty)
                fputc('\n', stderr);
            cli_errorf("skipped %s: %s", d->items[i].name, e.msg);
            if (sola_dataset_note_skip(d, d->items[i].name, e.msg)) {
                cli_errorf("out of memory");
                rc = EXIT_RUNTIME;
                break;
            }
        } else {
            refined++;
        }
        char extra[64];
        snprintf(extra, sizeof extra, "%ld frames", frames);
        cli_progress_update(&p, "refine", i + 1, d->n, "videos", extra);
    }
    cli_progress_end(&p);
    if (w && sola_h5w_commit(w, &e)) {
        cli_errorf("%s", e.msg);
        rc = EXIT_RUNTIME;
    }
    char sp[4200];
    sidecar(out, h5_only, "refine_meta.json", sp, sizeof sp);
    if (write_meta(sp, m, mpath, in, d, o, refined, &e)) {
        cli_errorf("%s", e.msg);
        rc = EXIT_RUNTIME;
    }
    sidecar(out, h5_only, "missing_files.txt", sp, sizeof sp);
    if (d->nskipped && sola_dataset_write_missing(d, sp, &e)) {
        cli_errorf("%s", e.msg);
        rc = EXIT_RUNTIME;
    } else if (!d->nskipped) {
        unlink(sp); /* a list left by an earlier run would be wrong now */
    }
    fprintf(stderr, "refined %ld of %d videos (%s) into %s%s%s (%ld frames)\n", refined,
            d->n + scan_skipped, d->layout, out,
            o->h5_out && !h5_only ? " and " : "", o->h5_out && !h5_only ? o->h5_out : "",
            frames);
    if (d->nskipped) {
        cli_errorf("%d video%s skipped (listed in %s)%s", d->nskipped,
                   d->nskipped == 1 ? "" : "s", sp,
                   o->allow_missing ? "; --allow-missing: not an error" : "");
        if (!o->allow_missing)
            rc = EXIT_RUNTIME;
    }
    sola_dataset_free(d);
    return rc;
}
