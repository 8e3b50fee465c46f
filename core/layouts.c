/* layouts.c -- video_features pairs, HDF5, BMN CSV and channel-first files behind the
 * dataset interface (see layouts.h). */
#include "layouts.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "h5io.h"
#include "npy.h"
#include "npz.h"

int sola_dataset_note_skip(sola_dataset *d, const char *name, const char *why)
{
    char **a = realloc(d->skipped, sizeof *a * (size_t)(d->nskipped + 1));
    if (a)
        d->skipped = a;
    char **b = realloc(d->skip_why, sizeof *b * (size_t)(d->nskipped + 1));
    if (b)
        d->skip_why = b;
    char *n = strdup(name), *w = strdup(why);
    if (!a || !b || !n || !w) {
        free(n);
        free(w);
        return SOLA_ENOMEM;
    }
    d->skipped[d->nskipped] = n;
    d->skip_why[d->nskipped] = w;
    d->nskipped++;
    return 0;
}

/* ---- grouping a listed folder ------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    return strcmp(((const sola_dataset_item *)a)->name, ((const sola_dataset_item *)b)->name);
}

/* Index of the first item whose name is >= key (items sorted). */
static int lower_bound(const sola_dataset *d, const char *key)
{
    int lo = 0, hi = d->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(d->items[mid].name, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int find_npy(const sola_dataset *d, const char *name)
{
    int i = lower_bound(d, name);
    return i < d->n && !strcmp(d->items[i].name, name) && d->items[i].kind == SOLA_ITEM_NPY
               ? i
               : -1;
}

/* Length of name without `suffix`, or -1 if it does not end with it. */
static int strip(const char *name, const char *suffix)
{
    size_t a = strlen(name), b = strlen(suffix);
    return a > b && !strcmp(name + a - b, suffix) ? (int)(a - b) : -1;
}

/* 1 if some item other than `self` is named "BASE_..." (BASE = first len chars). */
static int has_stream(const sola_dataset *d, const char *name, int len, int self)
{
    char key[4096];
    if (len + 2 > (int)sizeof key)
        return 0;
    memcpy(key, name, (size_t)len);
    key[len] = '_';
    key[len + 1] = 0;
    for (int i = lower_bound(d, key); i < d->n && !strncmp(d->items[i].name, key,
                                                          (size_t)len + 1); i++)
        if (i != self && strip(d->items[i].name, "_fps") < 0 &&
            strip(d->items[i].name, "_timestamps_ms") < 0)
            return 1;
    return 0;
}

int sola_layout_group(sola_dataset *d, int skip_bad, sola_err *e)
{
    qsort(d->items, (size_t)d->n, sizeof *d->items, by_name);
    /* drop: 1 sibling, 2 flow half merged into its rgb, 3 lonely half */
    char *drop = calloc((size_t)d->n + 1, 1), *sib = calloc((size_t)d->n + 1, 1);
    int rc = 0, pairs = 0, renamed = 0;
    if (!drop || !sib) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", d->dir);
        goto out;
    }
    /* Siblings: NAME_fps.npy / NAME_timestamps_ms.npy beside a NAME_<stream>.npy. */
    for (int i = 0; i < d->n; i++) {
        const char *nm = d->items[i].name;
        int len = strip(nm, "_fps");
        if (len < 0)
            len = strip(nm, "_timestamps_ms");
        if (len > 0 && d->items[i].kind == SOLA_ITEM_NPY && has_stream(d, nm, len, i))
            drop[i] = 1;
    }
    for (int i = 0; i < d->n; i++)
        if (drop[i]) {
            int len = strip(d->items[i].name, "_fps");
            if (len < 0)
                len = strip(d->items[i].name, "_timestamps_ms");
            char key[4096];
            if (len + 2 > (int)sizeof key)
                continue;
            snprintf(key, sizeof key, "%.*s_", len, d->items[i].name);
            /* the streams of this video are the names starting with "NAME_" */
            for (int j = lower_bound(d, key);
                 j < d->n && !strncmp(d->items[j].name, key, (size_t)len + 1); j++)
                if (!drop[j])
                    sib[j] = 1;
        }
    /* Pairs: NAME_rgb + NAME_flow. */
    char buf[4096];
    for (int i = 0; i < d->n; i++) {
        int len = strip(d->items[i].name, "_rgb");
        if (len <= 0 || drop[i] || d->items[i].kind != SOLA_ITEM_NPY ||
            len + 6 > (int)sizeof buf)
            continue;
        snprintf(buf, sizeof buf, "%.*s_flow", len, d->items[i].name);
        int j = find_npy(d, buf);
        if (j < 0)
            continue;
        d->items[i].file2 = d->items[j].file;
        d->items[j].file = NULL;
        d->items[i].name[len] = 0;
        d->items[i].kind = SOLA_ITEM_PAIR;
        drop[j] = 2;
        pairs++;
    }
    /* With pairs in the folder, a lonely half is a video whose other stream is missing. */
    for (int i = 0; i < d->n && pairs; i++) {
        const char *nm = d->items[i].name;
        int rgb = strip(nm, "_rgb") > 0, flow = strip(nm, "_flow") > 0;
        if (drop[i] || d->items[i].kind != SOLA_ITEM_NPY || (!rgb && !flow))
            continue;
        int len = strip(nm, rgb ? "_rgb" : "_flow");
        char why[600];
        snprintf(why, sizeof why, "%s/%s: no %.*s_%s.npy beside it (video_features pairs "
                 "need both streams)", d->dir, d->items[i].file, len, nm, rgb ? "flow" : "rgb");
        if (!skip_bad) {
            rc = sola_errf(e, SOLA_ENOTFOUND, "%s", why);
            goto out;
        }
        snprintf(buf, sizeof buf, "%.*s", len, nm);
        if (sola_dataset_note_skip(d, buf, why)) {
            rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", d->dir);
            goto out;
        }
        drop[i] = 3;
    }
    /* Single stream with siblings: NAME_<key> is video NAME. */
    for (int i = 0; i < d->n; i++) {
        char *us = strrchr(d->items[i].name, '_');
        if (!drop[i] && sib[i] && d->items[i].kind == SOLA_ITEM_NPY && us &&
            us != d->items[i].name) {
            *us = 0;
            renamed++;
        }
    }
    int k = 0, n_npz = 0, n_csv = 0;
    for (int i = 0; i < d->n; i++) {
        if (drop[i]) {
            free(d->items[i].name);
            free(d->items[i].file);
            free(d->items[i].file2);
            continue;
        }
        n_npz += d->items[i].kind == SOLA_ITEM_NPZ;
        n_csv += d->items[i].kind == SOLA_ITEM_CSV;
        d->items[k++] = d->items[i];
    }
    d->n = k;
    d->layout = pairs     ? "video_features rgb+flow"
                : renamed ? "video_features single stream"
                : n_csv == k ? "bmn csv"
                : n_npz == k ? "npz"
                : n_npz + n_csv ? "mixed"
                             : "npy";
    if (d->n == 0)
        rc = sola_errf(e, SOLA_EFORMAT, "%s: no video files (only halves of rgb/flow pairs "
                       "or _fps/_timestamps_ms files)", d->dir);
out:
    free(drop);
    free(sib);
    return rc;
}

/* ---- HDF5 ------------------------------------------------------------------------- */

int sola_layout_h5_list(sola_dataset *d, sola_err *e)
{
    sola_h5_entry *en;
    int n, rc = sola_h5_list(d->dir, &en, &n, e);
    if (rc)
        return rc;
    d->layout = "hdf5";
    int nf = 0;
    for (int i = 0; i < n; i++)
        nf += en[i].is_feature;
    if (!nf) {
        rc = sola_errf(e, SOLA_EFORMAT, "%s: no 2-D float datasets under '/' (it holds %d "
                       "entries%s%s%s)", d->dir, n, n ? "; first: '" : "", n ? en[0].name : "",
                       n ? "'" : "");
        goto out;
    }
    if (!(d->items = calloc((size_t)nf, sizeof *d->items))) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", d->dir);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        if (!en[i].is_feature)
            continue; /* labels, fps or metadata kept beside the features */
        sola_dataset_item *it = &d->items[d->n];
        it->kind = SOLA_ITEM_H5;
        it->name = strdup(en[i].name);
        it->file = strdup(en[i].name);
        if (!it->name || !it->file) {
            free(it->name);
            free(it->file);
            rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", d->dir);
            goto out;
        }
        d->n++;
    }
out:
    sola_h5_list_free(en, n);
    return rc;
}

/* ---- reading items -------------------------------------------------------------------- */

int sola_layout_transpose(sola_array *a, sola_err *e)
{
    int64_t R = a->shape[0], K = a->shape[1];
    size_t n = (size_t)R * (size_t)K; /* the array exists, so this fits */
    float *t = malloc(n ? n * sizeof *t : 1);
    if (!t)
        return sola_errf(e, SOLA_ENOMEM, "out of memory transposing [%lld, %lld]",
                         (long long)R, (long long)K);
    for (int64_t r = 0; r < R; r++)
        for (int64_t k = 0; k < K; k++)
            t[(size_t)k * (size_t)R + (size_t)r] = a->data[(size_t)r * (size_t)K + (size_t)k];
    free(a->data);
    a->data = t;
    a->shape[0] = K;
    a->shape[1] = R;
    return 0;
}

/* One file (npy, npz, csv) or HDF5 dataset as [T, C], ct applied. */
static int load_one(const sola_dataset *d, const char *file, int kind, sola_array *a,
                    sola_err *e)
{
    char path[4096];
    memset(a, 0, sizeof *a);
    if (kind != SOLA_ITEM_H5 &&
        (size_t)snprintf(path, sizeof path, "%s/%s", d->dir, file) >= sizeof path)
        return sola_errf(e, SOLA_EINVAL, "%s: path too long", d->dir);
    int rc;
    if (kind == SOLA_ITEM_H5) {
        snprintf(path, sizeof path, "%s[%s]", d->dir, file);
        rc = sola_h5_read(d->dir, file, a, e);
    } else if (kind == SOLA_ITEM_CSV) {
        rc = sola_csv_load(path, a, NULL, e);
    } else if (kind == SOLA_ITEM_NPZ) {
        sola_npz z;
        if ((rc = sola_npz_open(path, &z, e)))
            return rc;
        int m = sola_npz_pick(&z, path, e);
        rc = m < 0 ? (e && e->code < 0 ? e->code : SOLA_EFORMAT) : sola_npz_read(&z, m, 0, a, e);
        sola_npz_close(&z);
    } else {
        rc = sola_npy_load(path, 0, a, e);
    }
    if (rc)
        return rc;
    if (a->ndim == 3 && a->shape[0] == 1) { /* [1, T, C] as some extractors save */
        a->ndim = 2;
        a->shape[0] = a->shape[1];
        a->shape[1] = a->shape[2];
    }
    if (a->ndim != 2) {
        sola_array_free(a);
        return sola_errf(e, SOLA_ESHAPE, "%s: expected a 2-D feature matrix, got %d dims",
                         path, a->ndim);
    }
    if (d->ct && (rc = sola_layout_transpose(a, e)))
        sola_array_free(a);
    return rc;
}

int sola_layout_load(const sola_dataset *d, int i, sola_array *out, sola_err *e)
{
    const sola_dataset_item *it = &d->items[i];
    if (it->kind != SOLA_ITEM_PAIR)
        return load_one(d, it->file, it->kind, out, e);
    sola_array r, f;
    int rc = load_one(d, it->file, SOLA_ITEM_NPY, &r, e);
    if (rc)
        return rc;
    if ((rc = load_one(d, it->file2, SOLA_ITEM_NPY, &f, e))) {
        sola_array_free(&r);
        return rc;
    }
    /* RGB || flow on C; the streams of video_features can differ by a snippet or two
     * (flow needs one frame more), so both are cut to the shorter T. */
    int64_t T = r.shape[0] < f.shape[0] ? r.shape[0] : f.shape[0];
    size_t cr = (size_t)r.shape[1], cf = (size_t)f.shape[1], n;
    memset(out, 0, sizeof *out);
    if (sola_mul_size((size_t)T, cr + cf, &n) || sola_mul_size(n, sizeof(float), &n) ||
        !(out->data = malloc(n ? n : 1))) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s/%s: out of memory joining rgb and flow", d->dir,
                       it->name);
    } else {
        for (int64_t t = 0; t < T; t++) {
            float *dst = out->data + (size_t)t * (cr + cf);
            memcpy(dst, r.data + (size_t)t * cr, cr * sizeof(float));
            memcpy(dst + cr, f.data + (size_t)t * cf, cf * sizeof(float));
        }
        out->ndim = 2;
        out->shape[0] = T;
        out->shape[1] = (int64_t)(cr + cf);
    }
    sola_array_free(&r);
    sola_array_free(&f);
    return rc;
}

/* Header-only shape of one .npy half of a pair, ct applied. */
static int npy_shape(const sola_dataset *d, const char *file, int64_t *T, int64_t *C,
                     sola_err *e)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", d->dir, file) >= sizeof path)
        return sola_errf(e, SOLA_EINVAL, "%s: path too long", d->dir);
    int64_t t = 0;
    int c = 0;
    int rc = sola_dataset_peek_file(path, &t, &c, e);
    if (rc)
        return rc;
    *T = d->ct ? c : t;
    *C = d->ct ? t : c;
    return 0;
}

int sola_layout_item_shape(const sola_dataset *d, int i, int64_t *T, int *C, sola_err *e)
{
    const sola_dataset_item *it = &d->items[i];
    int64_t t = 0, c = 0;
    int rc = 0;
    if (it->kind == SOLA_ITEM_PAIR) {
        int64_t t2 = 0, c2 = 0;
        if ((rc = npy_shape(d, it->file, &t, &c, e)) ||
            (rc = npy_shape(d, it->file2, &t2, &c2, e)))
            return rc;
        t = t < t2 ? t : t2;
        c += c2;
    } else if (it->kind == SOLA_ITEM_H5) {
        int64_t s[2];
        if ((rc = sola_h5_shape(d->dir, it->file, s, e)))
            return rc;
        t = d->ct ? s[1] : s[0];
        c = d->ct ? s[0] : s[1];
    } else {
        /* CSV (and anything else): small files, parsed whole to validate them. */
        sola_array a;
        if ((rc = load_one(d, it->file, it->kind, &a, e)))
            return rc;
        t = a.shape[0];
        c = a.shape[1];
        sola_array_free(&a);
    }
    if (c < 1 || c > INT_MAX) {
        char p[4200];
        return sola_errf(e, SOLA_ESHAPE, "%s: channel count %lld is out of range%s",
                         sola_dataset_path(d, i, p, sizeof p) ? p : it->file, (long long)c,
                         d->ct ? "" : " (channel-first file? try --layout ct)");
    }
    *T = t;
    *C = (int)c;
    return 0;
}
