/* safetensors.c -- the safetensors model format (see safetensors.h).
 *
 * The header is JSON by definition of the format, so it goes through jansson
 * (bounded by the declared length, duplicate keys rejected). Every tensor is
 * checked against its dtype and shape and against the data area before anyone
 * sees a pointer into it. Writing follows the reference implementation: tensors
 * sorted by name, data contiguous in that order, "__metadata__" first, header
 * padded with spaces to a multiple of 8 so the data is 8-byte aligned. */
#include "safetensors.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "fsutil.h"
#include "npy.h"
#include "sniff.h"

#define ST_MAXDIM 8

static const struct {
    const char *name;
    size_t size;
    int dt;
} st_dtypes[] = {
    {"F64", 8, SOLA_DT_F64},  {"F32", 4, SOLA_DT_F32},     {"F16", 2, SOLA_DT_F16},
    {"BF16", 2, SOLA_DT_BF16}, {"I64", 8, SOLA_DT_OTHER},   {"I32", 4, SOLA_DT_OTHER},
    {"I16", 2, SOLA_DT_OTHER}, {"I8", 1, SOLA_DT_OTHER},    {"U64", 8, SOLA_DT_OTHER},
    {"U32", 4, SOLA_DT_OTHER}, {"U16", 2, SOLA_DT_OTHER},   {"U8", 1, SOLA_DT_OTHER},
    {"BOOL", 1, SOLA_DT_OTHER}, {"F8_E4M3", 1, SOLA_DT_OTHER}, {"F8_E5M2", 1, SOLA_DT_OTHER},
    {"C64", 8, SOLA_DT_OTHER},
};

static uint64_t rd_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void sola_st_close(sola_st_file *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->t[i].name);
    free(f->t);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    if (f->map_) {
        sola_map m = {f->map_, f->maplen_};
        sola_unmap(&m);
    }
    memset(f, 0, sizeof *f);
}

/* Tensor slot i with its byte range, for the overlap check. */
typedef struct range {
    uint64_t begin, end;
    int idx;
} range;

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const sola_st_tensor *)a)->name, ((const sola_st_tensor *)b)->name);
}

/* Reads a JSON value that must be a non-negative integer. */
static int get_uint(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int parse_metadata(json_t *meta, const char *name, sola_st_file *f, sola_err *e)
{
    if (!json_is_object(meta))
        return sola_errf(e, SOLA_EFORMAT, "%s: \"__metadata__\" must be an object of strings",
                         name);
    size_t n = json_object_size(meta);
    f->meta_keys = calloc(n ? n : 1, sizeof(char *));
    f->meta_vals = calloc(n ? n : 1, sizeof(char *));
    if (!f->meta_keys || !f->meta_vals)
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", name);
    const char *k;
    json_t *v; /* borrowed */
    json_object_foreach(meta, k, v) {
        if (!json_is_string(v))
            return sola_errf(e, SOLA_EFORMAT, "%s: metadata value of \"%s\" must be a string",
                             name, k);
        char *kk = strdup(k), *vv = strdup(json_string_value(v));
        if (!kk || !vv) {
            free(kk);
            free(vv);
            return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", name);
        }
        f->meta_keys[f->nmeta] = kk;
        f->meta_vals[f->nmeta] = vv;
        f->nmeta++;
    }
    return 0;
}

/* Fills t from the header entry v (borrowed) of tensor `key`; data_len bounds the
 * offsets. */
static int parse_tensor(const char *key, json_t *v, const char *name, const unsigned char *data,
                        size_t data_len, sola_st_tensor *t, uint64_t *begin, sola_err *e)
{
    if (!json_is_object(v))
        return sola_errf(e, SOLA_EFORMAT, "%s: tensor '%s': entry must be an object with dtype, "
                         "shape, data_offsets", name, key);
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *off = json_object_get(v, "data_offsets");
    if (!json_is_string(dt))
        return sola_errf(e, SOLA_EFORMAT, "%s: tensor '%s': missing or non-string \"dtype\"",
                         name, key);
    const char *ds = json_string_value(dt);
    size_t isz = 0;
    t->dtype = -1;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(ds, st_dtypes[i].name) == 0) {
            t->dtype = st_dtypes[i].dt;
            isz = st_dtypes[i].size;
        }
    if (t->dtype < 0)
        return sola_errf(e, SOLA_EUNSUP, "%s: tensor '%s': unknown dtype \"%.32s\"", name, key,
                         ds);
    snprintf(t->dtype_str, sizeof t->dtype_str, "%s", ds);
    if (!json_is_array(sh))
        return sola_errf(e, SOLA_EFORMAT, "%s: tensor '%s': missing or non-array \"shape\"",
                         name, key);
    if (json_array_size(sh) > ST_MAXDIM)
        return sola_errf(e, SOLA_EUNSUP, "%s: tensor '%s': %zu dimensions (at most %d supported)",
                         name, key, json_array_size(sh), ST_MAXDIM);
    t->ndim = (int)json_array_size(sh);
    size_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d;
        if (get_uint(json_array_get(sh, (size_t)i), &d) != 0)
            return sola_errf(e, SOLA_EFORMAT, "%s: tensor '%s': shape must hold non-negative "
                             "integers", name, key);
        t->shape[i] = (int64_t)d;
        if (sola_mul_size(numel, (size_t)d, &numel) != 0)
            return sola_errf(e, SOLA_EFORMAT, "%s: tensor '%s': shape overflows", name, key);
    }
    size_t nbytes;
    if (sola_mul_size(numel, isz, &nbytes) != 0)
        return sola_errf(e, SOLA_EFORMAT, "%s: tensor '%s': shape overflows", name, key);
    uint64_t b, en;
    if (!json_is_array(off) || json_array_size(off) != 2 ||
        get_uint(json_array_get(off, 0), &b) != 0 || get_uint(json_array_get(off, 1), &en) != 0)
        return sola_errf(e, SOLA_EFORMAT, "%s: tensor '%s': \"data_offsets\" must be [begin, "
                         "end] of non-negative integers", name, key);
    if (b > en)
        return sola_errf(e, SOLA_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before "
                         "they begin", name, key, (unsigned long long)b, (unsigned long long)en);
    if (en > data_len)
        return sola_errf(e, SOLA_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] run past "
                         "the %zu bytes of data (truncated file?)", name, key,
                         (unsigned long long)b, (unsigned long long)en, data_len);
    if (en - b != nbytes)
        return sola_errf(e, SOLA_EFORMAT, "%s: tensor '%s': %llu bytes at data_offsets but shape "
                         "and dtype %s need %zu", name, key, (unsigned long long)(en - b), ds,
                         nbytes);
    t->data = data + b;
    t->nbytes = nbytes;
    *begin = b;
    return 0;
}

int sola_st_parse(const void *buf, size_t len, const char *name, sola_st_file *f,
                  sola_err *e)
{
    memset(f, 0, sizeof *f);
    const unsigned char *b = buf;
    json_t *root = NULL;
    range *rg = NULL;
    int rc;
    if (!name)
        name = "safetensors";
    sola_kind k = sola_sniff(b, len);
    if (len < 8)
        return sola_errf(e, SOLA_EFORMAT, "%s: not a safetensors file: %zu bytes is shorter than "
                         "the 8-byte header length%s%s%s", name, len,
                         k > SOLA_KIND_EMPTY ? " (this is " : "",
                         k > SOLA_KIND_EMPTY ? sola_kind_name(k) : "",
                         k > SOLA_KIND_EMPTY ? ")" : "");
    /* Another kind of file (a .npy sent as a model, a PyTorch .pt): say so, instead of
     * reading its first bytes as an absurd header length. */
    if (k != SOLA_KIND_SAFETENSORS && k != SOLA_KIND_UNKNOWN)
        return sola_errf(e, SOLA_EFORMAT, "%s: not a safetensors file: this is %s", name,
                         sola_kind_name(k));
    uint64_t hl = rd_le(b, 8);
    if (hl > SOLA_ST_MAX_HEADER)
        return sola_errf(e, SOLA_ETOOBIG, "%s: safetensors header length %llu exceeds the limit "
                         "of %u bytes", name, (unsigned long long)hl, SOLA_ST_MAX_HEADER);
    if (hl > len - 8)
        return sola_errf(e, SOLA_EFORMAT, "%s: safetensors header length %llu runs past the end "
                         "of the file (%zu bytes); truncated or not a safetensors file", name,
                         (unsigned long long)hl, len);
    json_error_t je;
    root = json_loadb((const char *)b + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return sola_errf(e, SOLA_EFORMAT, "%s: safetensors header is not valid JSON: %s (at "
                         "byte %d of the header)", name, je.text, je.position);
    if (!json_is_object(root)) {
        rc = sola_errf(e, SOLA_EFORMAT, "%s: safetensors header is not a JSON object", name);
        goto err;
    }
    const unsigned char *data = b + 8 + hl;
    size_t data_len = len - 8 - (size_t)hl;
    size_t n = json_object_size(root);
    f->t = calloc(n ? n : 1, sizeof *f->t);
    rg = calloc(n ? n : 1, sizeof *rg);
    if (!f->t || !rg) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", name);
        goto err;
    }
    const char *key;
    json_t *v; /* borrowed from root */
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = parse_metadata(v, name, f, e)) != 0)
                goto err;
            continue;
        }
        sola_st_tensor *t = &f->t[f->n];
        if (!(t->name = strdup(key))) {
            rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", name);
            goto err;
        }
        f->n++;
        if ((rc = parse_tensor(key, v, name, data, data_len, t, &rg[f->n - 1].begin, e)) != 0)
            goto err;
        rg[f->n - 1].end = rg[f->n - 1].begin + t->nbytes;
        rg[f->n - 1].idx = f->n - 1;
    }
    qsort(rg, (size_t)f->n, sizeof *rg, cmp_range);
    for (int i = 1; i < f->n; i++)
        if (rg[i].begin < rg[i - 1].end) {
            rc = sola_errf(e, SOLA_EFORMAT, "%s: tensors '%s' and '%s' overlap in the data area",
                           name, f->t[rg[i - 1].idx].name, f->t[rg[i].idx].name);
            goto err;
        }
    qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_tensor);
    free(rg);
    json_decref(root);
    return 0;
err:
    free(rg);
    json_decref(root);
    sola_st_close(f);
    return rc;
}

int sola_st_open(const char *path, sola_st_file *f, sola_err *e)
{
    memset(f, 0, sizeof *f);
    sola_map m;
    int rc = sola_map_file(path, &m, e);
    if (rc)
        return rc;
    if ((rc = sola_st_parse(m.data, m.len, path, f, e)) != 0) {
        sola_unmap(&m);
        return rc;
    }
    f->map_ = m.data;
    f->maplen_ = m.len;
    return 0;
}

const sola_st_tensor *sola_st_find(const sola_st_file *f, const char *name)
{
    /* sorted by name in sola_st_parse */
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->t[mid].name, name);
        if (c == 0)
            return &f->t[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

const char *sola_st_meta(const sola_st_file *f, const char *key)
{
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_vals[i];
    return NULL;
}

size_t sola_st_numel(const sola_st_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i]; /* checked against the data size in sola_st_parse */
    return n;
}

int sola_st_to_f32(const sola_st_tensor *t, float *out, sola_err *e)
{
    size_t n = sola_st_numel(t);
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case SOLA_DT_F32:
        if (sola_host_is_le()) {
            memcpy(out, p, n * 4);
        } else {
            for (size_t i = 0; i < n; i++) {
                uint32_t u = (uint32_t)rd_le(p + 4 * i, 4);
                memcpy(&out[i], &u, 4);
            }
        }
        return 0;
    case SOLA_DT_F16:
        for (size_t i = 0; i < n; i++)
            out[i] = sola_half_to_float((uint16_t)rd_le(p + 2 * i, 2));
        return 0;
    case SOLA_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)rd_le(p + 2 * i, 2) << 16;
            memcpy(&out[i], &u, 4);
        }
        return 0;
    case SOLA_DT_F64:
        for (size_t i = 0; i < n; i++) {
            uint64_t u = rd_le(p + 8 * i, 8);
            double d;
            memcpy(&d, &u, 8);
            out[i] = (float)d;
        }
        return 0;
    default:
        return sola_errf(e, SOLA_EUNSUP, "tensor '%s': dtype %s is not a float type (F32, F16, "
                         "BF16, F64 convert)", t->name, t->dtype_str);
    }
}

/* ---- writing ----------------------------------------------------------- */

static int cmp_out(const void *a, const void *b)
{
    return strcmp((*(const sola_st_out *const *)a)->name, (*(const sola_st_out *const *)b)->name);
}

/* Builds the padded header (8-byte length included) and the name-sorted order of
 * the tensors; *data_len receives the size of the data area. */
static int build_header(const char *what, const sola_st_out *t, int n,
                        const char *const *mk, const char *const *mv, int nmeta,
                        const sola_st_out ***order, unsigned char **hdr, size_t *hlen,
                        size_t *data_len, sola_err *e)
{
    *order = NULL;
    *hdr = NULL;
    json_t *root = NULL;
    char *txt = NULL;
    int rc = 0;
    if (n < 0 || nmeta < 0)
        return sola_errf(e, SOLA_EINVAL, "%s: negative tensor or metadata count", what);
    const sola_st_out **ord = malloc((n ? (size_t)n : 1) * sizeof *ord);
    if (!ord)
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", what);
    for (int i = 0; i < n; i++) {
        if (!t[i].name || !*t[i].name || strcmp(t[i].name, "__metadata__") == 0) {
            rc = sola_errf(e, SOLA_EINVAL, "%s: tensor %d has an empty or reserved name", what, i);
            goto err;
        }
        ord[i] = &t[i];
    }
    qsort(ord, (size_t)n, sizeof *ord, cmp_out);
    for (int i = 1; i < n; i++)
        if (strcmp(ord[i]->name, ord[i - 1]->name) == 0) {
            rc = sola_errf(e, SOLA_EINVAL, "%s: tensor name '%s' is used twice", what,
                           ord[i]->name);
            goto err;
        }
    if (!(root = json_object()))
        goto nomem;
    if (nmeta > 0) {
        json_t *m = json_object();
        if (!m || json_object_set_new(root, "__metadata__", m) != 0)
            goto nomem;
        for (int i = 0; i < nmeta; i++) {
            if (!mk[i] || !mv[i] || json_object_get(m, mk[i])) {
                rc = sola_errf(e, SOLA_EINVAL, "%s: metadata key %d is missing or repeated", what,
                               i);
                goto err;
            }
            json_t *s = json_string(mv[i]);
            if (!s || json_object_set_new(m, mk[i], s) != 0) {
                rc = sola_errf(e, SOLA_EINVAL, "%s: metadata \"%s\" is not valid UTF-8", what,
                               mk[i]);
                goto err;
            }
        }
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const sola_st_out *o = ord[i];
        if (o->ndim < 0 || o->ndim > ST_MAXDIM) {
            rc = sola_errf(e, SOLA_EINVAL, "%s: tensor '%s' has %d dimensions", what, o->name,
                           o->ndim);
            goto err;
        }
        size_t nb = 4;
        json_t *shape = json_array(), *ent = json_object(), *offs = json_array();
        if (!shape || !ent || !offs) {
            json_decref(shape);
            json_decref(ent);
            json_decref(offs);
            goto nomem;
        }
        /* ent owns shape and offs from here on; root owns ent */
        json_object_set_new(ent, "dtype", json_string("F32"));
        json_object_set_new(ent, "shape", shape);
        json_object_set_new(ent, "data_offsets", offs);
        if (json_object_set_new(root, o->name, ent) != 0) {
            rc = sola_errf(e, SOLA_EINVAL, "%s: tensor name '%s' is not valid UTF-8", what,
                           o->name);
            goto err;
        }
        for (int d = 0; d < o->ndim; d++) {
            if (o->shape[d] < 0 || sola_mul_size(nb, (size_t)o->shape[d], &nb) != 0) {
                rc = sola_errf(e, SOLA_EINVAL, "%s: tensor '%s' has a negative or overflowing "
                               "shape", what, o->name);
                goto err;
            }
            json_array_append_new(shape, json_integer(o->shape[d]));
        }
        if (nb && !o->data) {
            rc = sola_errf(e, SOLA_EINVAL, "%s: tensor '%s' has no data", what, o->name);
            goto err;
        }
        size_t end;
        if (sola_add_size(off, nb, &end) != 0 || end > (size_t)INT64_MAX) {
            rc = sola_errf(e, SOLA_ETOOBIG, "%s: tensors too large", what);
            goto err;
        }
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)end));
        off = end;
    }
    if (!(txt = json_dumps(root, JSON_COMPACT)))
        goto nomem;
    size_t tl = strlen(txt), padded = (tl + 7) / 8 * 8;
    if (padded > SOLA_ST_MAX_HEADER) {
        rc = sola_errf(e, SOLA_ETOOBIG, "%s: header of %zu bytes exceeds the format limit", what,
                       padded);
        goto err;
    }
    unsigned char *h = malloc(8 + padded);
    if (!h)
        goto nomem;
    for (int i = 0; i < 8; i++)
        h[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(h + 8, txt, tl);
    memset(h + 8 + tl, ' ', padded - tl);
    free(txt);
    json_decref(root);
    *order = ord;
    *hdr = h;
    *hlen = 8 + padded;
    *data_len = off;
    return 0;
nomem:
    rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", what);
err:
    free(txt);
    json_decref(root);
    free(ord);
    return rc;
}

static size_t out_bytes(const sola_st_out *o)
{
    size_t nb = 4;
    for (int d = 0; d < o->ndim; d++)
        nb *= (size_t)o->shape[d]; /* validated in build_header */
    return nb;
}

int sola_st_encode(const sola_st_out *t, int n, const char *const *meta_keys,
                   const char *const *meta_vals, int nmeta, void **buf, size_t *len,
                   sola_err *e)
{
    *buf = NULL;
    *len = 0;
    const sola_st_out **ord;
    unsigned char *hdr;
    size_t hl, dl, total;
    int rc = build_header("safetensors", t, n, meta_keys, meta_vals, nmeta, &ord, &hdr, &hl, &dl,
                          e);
    if (rc)
        return rc;
    unsigned char *out = NULL;
    if (sola_add_size(hl, dl, &total) != 0 || !(out = malloc(total))) {
        free(ord);
        free(hdr);
        return sola_errf(e, SOLA_ENOMEM, "safetensors: out of memory");
    }
    memcpy(out, hdr, hl);
    size_t p = hl;
    for (int i = 0; i < n; i++) {
        size_t nb = out_bytes(ord[i]);
        sola_store_le_f32(out + p, ord[i]->data, nb / 4);
        p += nb;
    }
    free(ord);
    free(hdr);
    *buf = out;
    *len = total;
    return 0;
}

int sola_st_save(const char *path, const sola_st_out *t, int n, const char *const *meta_keys,
                 const char *const *meta_vals, int nmeta, sola_err *e)
{
    const sola_st_out **ord;
    unsigned char *hdr;
    size_t hl, dl;
    int rc = build_header(path, t, n, meta_keys, meta_vals, nmeta, &ord, &hdr, &hl, &dl, e);
    if (rc)
        return rc;
    sola_afile a;
    if ((rc = sola_afile_open(&a, path, e)) != 0)
        goto done;
    rc = sola_afile_write(&a, hdr, hl, e);
    for (int i = 0; i < n && !rc; i++) {
        size_t nb = out_bytes(ord[i]);
        if (sola_host_is_le()) {
            rc = sola_afile_write(&a, ord[i]->data, nb, e);
        } else {
            unsigned char chunk[4096];
            for (size_t k = 0; k < nb / 4 && !rc; k += sizeof chunk / 4) {
                size_t m = nb / 4 - k < sizeof chunk / 4 ? nb / 4 - k : sizeof chunk / 4;
                sola_store_le_f32(chunk, ord[i]->data + k, m);
                rc = sola_afile_write(&a, chunk, m * 4, e);
            }
        }
    }
    if (rc)
        sola_afile_abort(&a);
    else
        rc = sola_afile_commit(&a, e);
done:
    free(ord);
    free(hdr);
    return rc;
}
