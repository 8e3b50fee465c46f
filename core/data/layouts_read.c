/* layouts_read.c -- reading the items of layouts.h: one file or HDF5 dataset, rgb/flow
 * pairs joined in the pair order, channel-first files transposed. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csvfeat.h"
#include "h5io.h"
#include "layouts.h"
#include "npy.h"
#include "npz.h"

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

/* One stream of an item as [T, C], ct applied: the file `file` of the folder (npy,
 * npz, csv), the dataset `file` of the HDF5 file d->dir (H5), or the dataset `key` of
 * the HDF5 file `file` in the folder (H5DIR). */
static int load_one(const sola_dataset *d, const char *file, const char *key, int kind,
                    sola_array *a, sola_err *e)
{
    char path[4096];
    memset(a, 0, sizeof *a);
    if (kind != SOLA_ITEM_H5 &&
        (size_t)snprintf(path, sizeof path, "%s/%s", d->dir, file) >= sizeof path)
        return sola_errf(e, SOLA_EINVAL, "%s: path too long", d->dir);
    char label[4400];
    snprintf(label, sizeof label, "%s[%s]", kind == SOLA_ITEM_H5 ? d->dir : path,
             kind == SOLA_ITEM_H5 ? file : key ? key : "");
    int rc;
    if (kind == SOLA_ITEM_H5) {
        rc = sola_h5_read(d->dir, file, a, e);
    } else if (kind == SOLA_ITEM_H5DIR) {
        rc = sola_h5_read(path, key, a, e);
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
                         kind >= SOLA_ITEM_H5 ? label : path, a->ndim);
    }
    if (d->ct && (rc = sola_layout_transpose(a, e)))
        sola_array_free(a);
    return rc;
}

/* The two streams of a pair in the order they are joined. */
static void pair_files(const sola_dataset *d, const sola_dataset_item *it, const char **a,
                       const char **b)
{
    *a = d->flow_first ? it->file2 : it->file;
    *b = d->flow_first ? it->file : it->file2;
}

int sola_layout_load(const sola_dataset *d, int i, sola_array *out, sola_err *e)
{
    const sola_dataset_item *it = &d->items[i];
    int kind = it->kind == SOLA_ITEM_PAIR ? SOLA_ITEM_NPY : it->kind;
    if (!it->file2)
        return load_one(d, it->file, it->key, kind, out, e);
    const char *fa, *fb;
    pair_files(d, it, &fa, &fb);
    sola_array r, f;
    int rc = load_one(d, fa, it->key, kind, &r, e);
    if (rc)
        return rc;
    if ((rc = load_one(d, fb, it->key, kind, &f, e))) {
        sola_array_free(&r);
        return rc;
    }
    /* The streams of video_features can differ by a snippet or two (flow needs one
     * frame more), and G-TAD cuts its rgb/flow HDF5 pairs to the shorter one too: both
     * are cut to the shorter T. */
    int64_t T = r.shape[0] < f.shape[0] ? r.shape[0] : f.shape[0];
    size_t cr = (size_t)r.shape[1], cf = (size_t)f.shape[1], n;
    memset(out, 0, sizeof *out);
    if (sola_mul_size((size_t)T, cr + cf, &n) || sola_mul_size(n, sizeof(float), &n) ||
        !(out->data = malloc(n ? n : 1))) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s/%s: out of memory joining the streams", d->dir,
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

/* Header-only shape of one stream as [T, C], ct applied. */
static int stream_shape(const sola_dataset *d, const sola_dataset_item *it, const char *file,
                        int64_t *T, int64_t *C, sola_err *e)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", d->dir, file) >= sizeof path)
        return sola_errf(e, SOLA_EINVAL, "%s: path too long", d->dir);
    int64_t t = 0, c = 0;
    int rc;
    if (it->kind == SOLA_ITEM_H5DIR) {
        int64_t s[2];
        rc = sola_h5_shape(path, it->key, s, e);
        t = s[0];
        c = s[1];
    } else {
        int ci = 0;
        rc = sola_dataset_peek_file(path, &t, &ci, e);
        c = ci;
    }
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
    if (it->file2) {
        const char *fa, *fb;
        pair_files(d, it, &fa, &fb);
        int64_t t2 = 0, c2 = 0;
        if ((rc = stream_shape(d, it, fa, &t, &c, e)) ||
            (rc = stream_shape(d, it, fb, &t2, &c2, e)))
            return rc;
        t = t < t2 ? t : t2;
        d->items[i].C1 = c; /* the scan owns d; the item keeps its split point */
        c += c2;
    } else if (it->kind == SOLA_ITEM_H5DIR) {
        if ((rc = stream_shape(d, it, it->file, &t, &c, e)))
            return rc;
    } else if (it->kind == SOLA_ITEM_H5) {
        int64_t s[2];
        if ((rc = sola_h5_shape(d->dir, it->file, s, e)))
            return rc;
        t = d->ct ? s[1] : s[0];
        c = d->ct ? s[0] : s[1];
    } else {
        /* CSV (and anything else): small files, parsed whole to validate them. */
        sola_array a;
        if ((rc = load_one(d, it->file, it->key, it->kind, &a, e)))
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
