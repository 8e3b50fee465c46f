/* dataset_file.c -- one file of a dataset: where its float payload is, its shape, its
 * path, and the list of skipped items (see dataset_file.h). Below layouts.c and
 * dataset.c, which both read items through it. */
#include "dataset_file.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "npy.h"
#include "npz.h"

/* [T, C], or [1, T, C] as some extractors save a single video. */
static int shape_tc(const sola_array *a, const char *path, int64_t *T, int *C, sola_err *e)
{
    int64_t t, c;
    if (a->ndim == 2) {
        t = a->shape[0];
        c = a->shape[1];
    } else if (a->ndim == 3 && a->shape[0] == 1) {
        t = a->shape[1];
        c = a->shape[2];
    } else {
        char s[96] = "";
        size_t k = 0;
        for (int i = 0; i < a->ndim && k < sizeof s - 24; i++)
            k += (size_t)snprintf(s + k, sizeof s - k, i ? ", %lld" : "%lld",
                                  (long long)a->shape[i]);
        return sola_errf(e, SOLA_ESHAPE,
                         "%s: expected a [T, C] feature matrix (one video), got shape (%s)",
                         path, s);
    }
    if (c < 1 || c > INT_MAX)
        return sola_errf(e, SOLA_ESHAPE, "%s: channel count %lld is out of range", path,
                         (long long)c);
    *T = t;
    *C = (int)c;
    return 0;
}

static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* Locates the bytes of a stored (uncompressed) member through its local header. */
static int stored_member(const sola_npz *z, int i, const char *path,
                         const unsigned char **img, size_t *len, sola_err *e)
{
    const sola_npz_entry *en = &z->entries[i];
    size_t off = en->offset, end;
    if (off > z->len || z->len - off < 30 || rd16(z->buf + off) != 0x4b50 ||
        rd16(z->buf + off + 2) != 0x0403)
        return sola_errf(e, SOLA_EFORMAT, "%s: member '%s': bad local header", path, en->name);
    off += 30 + (size_t)rd16(z->buf + off + 26) + rd16(z->buf + off + 28);
    if (en->csize != en->usize || sola_add_size(off, en->csize, &end) || end > z->len)
        return sola_errf(e, SOLA_EFORMAT, "%s: member '%s' is truncated", path, en->name);
    *img = z->buf + off;
    *len = en->csize;
    return 0;
}

void sola_payload_close(sola_payload *p)
{
    if (p->zopen)
        sola_npz_close(&p->z);
    sola_unmap(&p->map);
    sola_array_free(&p->full);
    memset(p, 0, sizeof *p);
}

int sola_payload_open(const char *path, int is_npz, sola_payload *p, sola_err *e)
{
    int rc;
    memset(p, 0, sizeof *p);
    p->is_npz = is_npz;
    if (is_npz) {
        if ((rc = sola_npz_open(path, &p->z, e)))
            return rc;
        p->zopen = 1;
        int m = sola_npz_pick(&p->z, path, e);
        if (m < 0) {
            rc = e && e->code < 0 ? e->code : SOLA_EFORMAT;
            goto err;
        }
        if (p->z.entries[m].method == 0) {
            if ((rc = stored_member(&p->z, m, path, &p->img, &p->imglen, e)))
                goto err;
        } else {
            if ((rc = sola_npz_read(&p->z, m, 0, &p->full, e)))
                goto err;
            if ((rc = shape_tc(&p->full, path, &p->T, &p->C, e)))
                goto err;
            return 0;
        }
    } else {
        if ((rc = sola_map_file(path, &p->map, e)))
            return rc;
        p->img = p->map.data;
        p->imglen = p->map.len;
    }
    sola_npy_info info;
    if ((rc = sola_npy_inspect(p->img, p->imglen, path, 0, &info, e)))
        goto err;
    sola_array shp = {.ndim = info.ndim};
    memcpy(shp.shape, info.shape, sizeof shp.shape);
    size_t off = info.data_off, dlen = info.data_len, end;
    if ((rc = shape_tc(&shp, path, &p->T, &p->C, e)))
        goto err;
    if (sola_add_size(off, dlen, &end) || end != p->imglen) {
        rc = sola_errf(e, SOLA_EFORMAT, "%s: header declares %zu bytes of data but %zu follow",
                       path, dlen, off <= p->imglen ? p->imglen - off : 0);
        goto err;
    }
    size_t want;
    if (sola_mul_size((size_t)p->T, (size_t)p->C, &want) || sola_mul_size(want, 4, &want)) {
        rc = sola_errf(e, SOLA_ETOOBIG, "%s: shape is too large", path);
        goto err;
    }
    /* Map offsets are page aligned and numpy pads headers to 64 bytes, so the payload
     * is float aligned; check anyway before handing out a float pointer. */
    if (dlen == want && sola_npy_info_is_f4c(&info) &&
        (((uintptr_t)(p->img + off)) & 3) == 0)
        p->f4 = (const float *)(const void *)(p->img + off);
    return 0;
err:
    sola_payload_close(p);
    return rc;
}

int sola_payload_full(sola_payload *p, const char *path, sola_err *e)
{
    if (p->full.ndim)
        return 0;
    return sola_npy_parse(p->img, p->imglen, path, 0, &p->full, e);
}

int sola_dataset_peek_file(const char *path, int64_t *T, int *C, sola_err *e)
{
    int is_npz = sola_has_ext(path, ".npz");
    if (!is_npz && !sola_has_ext(path, ".npy"))
        return sola_errf(e, SOLA_EFORMAT, "%s: not a .npy or .npz file", path);
    sola_payload p;
    int rc = sola_payload_open(path, is_npz, &p, e);
    if (rc)
        return rc;
    *T = p.T;
    *C = p.C;
    sola_payload_close(&p);
    return 0;
}

char *sola_dataset_path(const sola_dataset *d, int i, char *buf, size_t n)
{
    const sola_dataset_item *it = &d->items[i];
    int w = d->h5 ? snprintf(buf, n, "%s[%s]", d->dir, it->file)
            : it->kind == SOLA_ITEM_H5DIR && it->file2
                ? snprintf(buf, n, "%s/%s[%s]+%s", d->dir, it->file, it->key, it->file2)
            : it->kind == SOLA_ITEM_H5DIR ? snprintf(buf, n, "%s/%s[%s]", d->dir, it->file, it->key)
            : it->file2 ? snprintf(buf, n, "%s/%s+%s", d->dir, it->file, it->file2)
                        : snprintf(buf, n, "%s/%s", d->dir, it->file);
    return w >= 0 && (size_t)w < n ? buf : NULL;
}

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
