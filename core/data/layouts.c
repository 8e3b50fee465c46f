/* layouts.c -- grouping a listed folder into videos (video_features pairs, single
 * streams and their _fps/_timestamps_ms siblings) and reading the time grid those
 * siblings give (see layouts.h). Reading items is in layouts_read.c, HDF5 listing in
 * layouts_h5.c. */
#include "layouts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "npy.h"

void sola_layout_item_free(sola_dataset_item *it)
{
    free(it->name);
    free(it->file);
    free(it->file2);
    free(it->fps_file);
    free(it->ts_file);
    free(it->key);
    memset(it, 0, sizeof *it);
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

/* Length of the video name of a sibling (NAME_fps, NAME_timestamps_ms), or -1. */
static int sibling_base(const char *name)
{
    int len = strip(name, "_fps");
    return len >= 0 ? len : strip(name, "_timestamps_ms");
}

/* 1 if the video BASE (first len chars of name) has features other than item `self`:
 * a stream "BASE_..." (video_features) or a file "BASE" itself (an output of sola
 * refine, which copies the siblings beside NAME.npy). */
static int has_video(const sola_dataset *d, const char *name, int len, int self)
{
    char key[4096];
    if (len + 2 > (int)sizeof key)
        return 0;
    memcpy(key, name, (size_t)len);
    key[len] = 0;
    int i = lower_bound(d, key);
    if (i < d->n && !strcmp(d->items[i].name, key) && d->items[i].kind != SOLA_ITEM_H5DIR)
        return 1;
    key[len] = '_';
    key[len + 1] = 0;
    for (i = lower_bound(d, key); i < d->n && !strncmp(d->items[i].name, key,
                                                       (size_t)len + 1); i++)
        if (i != self && sibling_base(d->items[i].name) != len)
            return 1;
    return 0;
}

/* The keys video_features appends to file names (utils/utils.py make_path:
 * "{stem}_{key}.npy"): I3D streams, then the feature_type of each other extractor. */
static const char *const vf_keys[] = {"rgb",    "flow", "r21d", "s3d", "vggish",
                                      "resnet", "raft", "clip", "timm"};

/* The video_features key every remaining .npy video of the folder ends with
 * ("_r21d"), or NULL when they do not all share one. */
static const char *uniform_key(const sola_dataset *d, const char *drop)
{
    for (size_t k = 0; k < sizeof vf_keys / sizeof *vf_keys; k++) {
        char suf[16];
        snprintf(suf, sizeof suf, "_%s", vf_keys[k]);
        int all = 0, any = 0;
        for (int i = 0; i < d->n; i++) {
            if (drop[i])
                continue;
            if (d->items[i].kind != SOLA_ITEM_NPY || strip(d->items[i].name, suf) <= 0) {
                all = -1;
                break;
            }
            any = 1;
        }
        if (all == 0 && any)
            return vf_keys[k];
    }
    return NULL;
}

/* Gives each sibling file (stolen from sibs) to the item it belongs to; frees the rest.
 * Items are sorted by name. */
static void attach_siblings(sola_dataset *d, sola_dataset_item *sibs, int ns)
{
    for (int s = 0; s < ns; s++) {
        char *nm = sibs[s].name;
        int len = sibling_base(nm), fps = strip(nm, "_fps") == len;
        nm[len] = 0;
        sola_dataset_item key = {.name = nm};
        sola_dataset_item *it = bsearch(&key, d->items, (size_t)d->n, sizeof *d->items, by_name);
        if (it && !(fps ? it->fps_file : it->ts_file)) {
            *(fps ? &it->fps_file : &it->ts_file) = sibs[s].file;
            sibs[s].file = NULL;
        }
        sola_layout_item_free(&sibs[s]);
    }
}

int sola_layout_group(sola_dataset *d, int skip_bad, sola_err *e)
{
    qsort(d->items, (size_t)d->n, sizeof *d->items, by_name);
    int n_h5 = 0;
    for (int i = 0; i < d->n; i++)
        n_h5 += d->items[i].kind == SOLA_ITEM_H5DIR;
    if (n_h5 && n_h5 == d->n)
        return sola_layout_h5dir(d, skip_bad, e);
    /* drop: 1 sibling, 2 flow half merged into its rgb, 3 lonely half, 4 HDF5 file
     * beside other features (ignored) */
    char *drop = calloc((size_t)d->n + 1, 1), *sib = calloc((size_t)d->n + 1, 1);
    sola_dataset_item *sibs = calloc((size_t)d->n + 1, sizeof *sibs);
    int rc = 0, pairs = 0, renamed = 0, ns = 0;
    if (!drop || !sib || !sibs) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", d->dir);
        goto out;
    }
    for (int i = 0; i < d->n; i++)
        drop[i] = d->items[i].kind == SOLA_ITEM_H5DIR ? 4 : 0;
    /* Siblings: NAME_fps.npy / NAME_timestamps_ms.npy beside a NAME_<stream>.npy (or a
     * NAME.npy); the streams of such a video are marked for renaming. */
    for (int i = 0; i < d->n; i++) {
        const char *nm = d->items[i].name;
        int len = sibling_base(nm);
        if (len > 0 && d->items[i].kind == SOLA_ITEM_NPY && has_video(d, nm, len, i))
            drop[i] = 1;
    }
    for (int i = 0; i < d->n; i++) {
        if (drop[i] != 1)
            continue;
        int len = sibling_base(d->items[i].name);
        char key[4096];
        if (len + 2 > (int)sizeof key)
            continue;
        snprintf(key, sizeof key, "%.*s_", len, d->items[i].name);
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
        if (j < 0 || drop[j])
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
    /* Single streams: every file ends in the same video_features key (r21d, s3d and
     * vggish write no siblings), or NAME_<key> has siblings: the video is NAME. */
    const char *uk = pairs ? NULL : uniform_key(d, drop);
    for (int i = 0; i < d->n; i++) {
        char *us = strrchr(d->items[i].name, '_');
        if (!drop[i] && (uk || sib[i]) && d->items[i].kind == SOLA_ITEM_NPY && us &&
            us != d->items[i].name) {
            *us = 0;
            renamed++;
        }
    }
    d->stream = uk;
    int k = 0, n_npz = 0, n_csv = 0;
    for (int i = 0; i < d->n; i++) {
        if (drop[i] == 1) {
            sibs[ns++] = d->items[i];
            continue;
        }
        if (drop[i]) {
            sola_layout_item_free(&d->items[i]);
            continue;
        }
        n_npz += d->items[i].kind == SOLA_ITEM_NPZ;
        n_csv += d->items[i].kind == SOLA_ITEM_CSV;
        d->items[k++] = d->items[i];
    }
    d->n = k;
    qsort(d->items, (size_t)d->n, sizeof *d->items, by_name);
    attach_siblings(d, sibs, ns);
    ns = 0;
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
    for (int s = 0; s < ns; s++)
        sola_layout_item_free(&sibs[s]);
    free(sibs);
    free(drop);
    free(sib);
    return rc;
}

/* ---- the time grid of the siblings ------------------------------------------------- */

static uint64_t rd64le(const unsigned char *p, int big)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[big ? 7 - i : i] << (8 * i);
    return v;
}

/* Reads a 0-d or 1-D numeric .npy as doubles: f8 exactly, other types through the
 * float32 reader. *vals newly allocated, *n values. */
static int read_f64(const char *path, double **vals, int64_t *n, sola_err *e)
{
    sola_map m;
    int rc = sola_map_file(path, &m, e);
    if (rc)
        return rc;
    sola_npy_info info;
    sola_array a = {0};
    *vals = NULL;
    if ((rc = sola_npy_inspect(m.data, m.len, path, SOLA_NPY_SCALAR | SOLA_NPY_LABELS, &info,
                               e)))
        goto out;
    if (info.ndim != 1) {
        rc = sola_errf(e, SOLA_ESHAPE, "%s: expected a scalar or a 1-D array, got %d dims",
                       path, info.ndim);
        goto out;
    }
    *n = info.shape[0];
    if (!(*vals = malloc(((size_t)*n + 1) * sizeof **vals))) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    int f8 = !strcmp(info.descr + 1, "f8");
    if (f8 && info.data_off + info.data_len == m.len) {
        const unsigned char *p = (const unsigned char *)m.data + info.data_off;
        for (int64_t i = 0; i < *n; i++) {
            uint64_t b = rd64le(p + 8 * i, info.descr[0] == '>');
            memcpy(&(*vals)[i], &b, sizeof b);
        }
    } else if (!(rc = sola_npy_parse(m.data, m.len, path, SOLA_NPY_SCALAR | SOLA_NPY_LABELS,
                                     &a, e))) {
        for (int64_t i = 0; i < *n; i++)
            (*vals)[i] = a.data[i];
    }
out:
    if (rc) {
        free(*vals);
        *vals = NULL;
    }
    sola_array_free(&a);
    sola_unmap(&m);
    return rc;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* x rounded to a whole number when within 1% of one. */
static double snap(double x)
{
    double r = floor(x + 0.5);
    return r > 0 && fabs(x - r) <= 0.01 * r ? r : x;
}

int sola_layout_grid(const sola_dataset *d, int i, sola_item_grid *g, sola_err *e)
{
    memset(g, 0, sizeof *g);
    const sola_dataset_item *it = &d->items[i];
    char p[4096];
    double *v = NULL;
    int64_t n = 0;
    int rc;
    if (it->fps_file) {
        snprintf(p, sizeof p, "%s/%s", d->dir, it->fps_file);
        if ((rc = read_f64(p, &v, &n, e)))
            return rc;
        if (n != 1 || !(v[0] > 0) || !isfinite(v[0])) {
            free(v);
            return sola_errf(e, SOLA_EFORMAT, "%s: expected one positive fps value", p);
        }
        g->fps = v[0];
        free(v);
    }
    if (!it->ts_file)
        return 0;
    snprintf(p, sizeof p, "%s/%s", d->dir, it->ts_file);
    if ((rc = read_f64(p, &v, &n, e)))
        return rc;
    g->stamps = n;
    if (n >= 2 && g->fps > 0) {
        double *st = malloc((size_t)(n - 1) * sizeof *st);
        if (!st) {
            free(v);
            return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", p);
        }
        for (int64_t k = 0; k + 1 < n; k++)
            st[k] = v[k + 1] - v[k];
        qsort(st, (size_t)(n - 1), sizeof *st, dbl_cmp);
        double step = st[(n - 1) / 2] * g->fps / 1000;
        free(st);
        if (step > 0)
            g->stride = snap(step);
    }
    if (n >= 1 && g->fps > 0 && v[0] >= 0) {
        double f = v[0] * g->fps / 1000;
        g->frames = f < 0.5 ? 1 : snap(f);
    }
    free(v);
    return 0;
}
