/* npy.c -- the NumPy .npy format (see npy.h).
 *
 * The header is a Python dict literal; we do not evaluate Python, we parse the one
 * form NumPy writes ({'descr': STR, 'fortran_order': BOOL, 'shape': TUPLE}, keys in
 * any order, trailing comma allowed, whitespace padding) with a small bounded
 * recursive-free scanner, and refuse anything else. Data is converted to float32 in
 * file order first (one tight loop per dtype), then transposed if Fortran-ordered. */
#include "npy.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "fsutil.h"
#include "sniff.h"

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* ---- little helpers ---------------------------------------------------- */

float sola_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Loads an unsigned integer of `size` bytes in the given byte order. */
static uint64_t load_uint(const unsigned char *p, size_t size, int big)
{
    uint64_t v = 0;
    for (size_t i = 0; i < size; i++)
        v |= (uint64_t)p[big ? size - 1 - i : i] << (8 * i);
    return v;
}

/* ---- header scanner ---------------------------------------------------- */

typedef struct scan {
    const char *p, *end;
} scan;

static void skip_ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int eat(scan *s, char c)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes (NumPy never writes escapes in these
 * fields); copies at most n-1 bytes into out. Returns 0, or -1 if malformed or too
 * long. */
static int scan_str(scan *s, char *out, size_t n)
{
    skip_ws(s);
    if (s->p >= s->end || (*s->p != '\'' && *s->p != '"'))
        return -1;
    char q = *s->p++;
    size_t k = 0;
    while (s->p < s->end && *s->p != q) {
        if (*s->p == '\\' || *s->p == '\n' || k + 1 >= n)
            return -1;
        out[k++] = *s->p++;
    }
    if (s->p >= s->end)
        return -1;
    s->p++;
    out[k] = 0;
    return 0;
}

static int scan_word(scan *s, const char *w)
{
    skip_ws(s);
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) >= n && memcmp(s->p, w, n) == 0) {
        s->p += n;
        return 1;
    }
    return 0;
}

/* Describes the token at the scan position for error messages: "'xyz'" (up to 12
 * printable characters), "end of header" or "a control byte". */
static const char *where(const scan *s, char *buf, size_t n)
{
    if (s->p >= s->end)
        return "end of header";
    size_t k = 0;
    const char *q = s->p;
    buf[k++] = '\'';
    while (q < s->end && k + 2 < n && k <= 12 && *q > 0x20 && *q < 0x7f)
        buf[k++] = *q++;
    buf[k++] = '\'';
    buf[k] = 0;
    return k > 2 ? buf : "a control byte";
}

/* Parses a dtype descr ("<f4", "|b1", ...) into kind/size/byte order. */
static int parse_descr(const char *d, const char *name, int flags, char *kind, size_t *size,
                       int *big, sola_err *e)
{
    if (strcmp(d, "|O") == 0 || strcmp(d, "O") == 0)
        return sola_errf(e, SOLA_EUNSUP,
                         "%s: object arrays ('|O') are not supported: save plain numeric "
                         "arrays (np.save(f, x.astype(np.float32)))",
                         name);
    char bo = d[0];
    if (bo != '<' && bo != '>' && bo != '|' && bo != '=')
        return sola_errf(e, SOLA_EUNSUP, "%s: dtype '%s' is not supported (expected e.g. '<f4')",
                         name, d);
    char k = d[1];
    if (!k)
        return sola_errf(e, SOLA_EFORMAT, "%s: empty dtype '%s'", name, d);
    char *endp = NULL;
    long sz = 0;
    if (d[2] >= '0' && d[2] <= '9')
        sz = strtol(d + 2, &endp, 10);
    if (!endp || *endp)
        return sola_errf(e, SOLA_EUNSUP, "%s: dtype '%s' is not supported (expected e.g. '<f4')",
                         name, d);
    int ok_float = k == 'f' && (sz == 2 || sz == 4 || sz == 8);
    int ok_int = (k == 'i' || k == 'u') && (sz == 1 || sz == 2 || sz == 4 || sz == 8);
    int ok_bool = k == 'b' && sz == 1;
    if (!ok_float && !ok_int && !ok_bool)
        return sola_errf(e, SOLA_EUNSUP,
                         "%s: dtype '%s' is not supported (float16/32/64%s only)", name, d,
                         (flags & SOLA_NPY_LABELS) ? ", integer or bool" : "");
    if (!ok_float && !(flags & SOLA_NPY_LABELS))
        return sola_errf(e, SOLA_EUNSUP,
                         "%s: dtype '%s' is an integer/bool array; features must be float16, "
                         "float32 or float64",
                         name, d);
    /* '|' means "byte order not applicable"; NumPy itself reads '|f4' as native. */
    *big = bo == '>' || ((bo == '=' || bo == '|') && !sola_host_is_le());
    if (sz == 1)
        *big = 0;
    *kind = k;
    *size = (size_t)sz;
    return 0;
}

/* The header fields, parsed. */
typedef struct npy_hdr {
    int major;
    char descr[32];
    char kind;
    size_t itemsize;
    int big, fortran;
    int ndim;
    int64_t shape[SOLA_MAXDIM];
    size_t numel, data_off, data_len;
} npy_hdr;

static int parse_shape(scan *s, const char *name, npy_hdr *h, sola_err *e)
{
    char wb[16];
    if (!eat(s, '('))
        return sola_errf(e, SOLA_EFORMAT, "%s: header 'shape' must be a tuple, found %s", name,
                         where(s, wb, sizeof wb));
    int nd = 0;
    int64_t dims[SOLA_MAXDIM];
    for (;;) {
        skip_ws(s);
        if (eat(s, ')'))
            break;
        if (s->p < s->end && *s->p == '-')
            return sola_errf(e, SOLA_EFORMAT, "%s: header 'shape' has a negative dimension",
                             name);
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return sola_errf(e, SOLA_EFORMAT,
                             "%s: header 'shape' must hold non-negative integers, found %s",
                             name, where(s, wb, sizeof wb));
        int64_t v = 0;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return sola_errf(e, SOLA_EFORMAT, "%s: header 'shape' dimension overflows",
                                 name);
            v = v * 10 + (*s->p++ - '0');
        }
        if (s->p < s->end && *s->p == 'L') /* Python 2 long literal */
            s->p++;
        if (nd >= SOLA_MAXDIM)
            return sola_errf(e, SOLA_ESHAPE, "%s: arrays of more than %d dimensions are not "
                             "supported", name, SOLA_MAXDIM);
        dims[nd++] = v;
        if (eat(s, ','))
            continue;
        if (eat(s, ')'))
            break;
        return sola_errf(e, SOLA_EFORMAT, "%s: header 'shape': expected ',' or ')', found %s",
                         name, where(s, wb, sizeof wb));
    }
    h->ndim = nd;
    memcpy(h->shape, dims, sizeof(int64_t) * (size_t)nd);
    return 0;
}

/* Parses magic, version, header length and the dict. Checks only what the header
 * says (and that it fits in len); the caller checks the payload size. */
/* The preamble of format version major (1-3): its length, and the header length it
 * holds (b has at least the preamble's bytes). */
static size_t preamble_len(int major)
{
    return major == 1 ? 10 : 12;
}

static size_t header_len(const unsigned char *b, int major)
{
    return major == 1 ? (size_t)load_uint(b + 8, 2, 0) : (size_t)load_uint(b + 8, 4, 0);
}

size_t sola_npy_data_offset(const void *buf, size_t len)
{
    const unsigned char *b = buf;
    if (len < 10 || memcmp(b, npy_magic, 6) != 0 || b[6] < 1 || b[6] > 3 || b[7] != 0 ||
        len < preamble_len(b[6]))
        return 0;
    size_t hlen = header_len(b, b[6]);
    return hlen > SOLA_NPY_MAX_HEADER ? 0 : preamble_len(b[6]) + hlen;
}

static int parse_header(const unsigned char *b, size_t len, const char *name, int flags,
                        npy_hdr *h, sola_err *e)
{
    memset(h, 0, sizeof *h);
    if (len == 0)
        return sola_errf(e, SOLA_EFORMAT, "%s: empty file, not a .npy array", name);
    if (memcmp(b, npy_magic, len < 6 ? len : 6) != 0) {
        sola_kind k = sola_sniff(b, len);
        if (k != SOLA_KIND_UNKNOWN)
            return sola_errf(e, SOLA_EFORMAT, "%s: not a .npy file: this is %s", name,
                             sola_kind_name(k));
        return sola_errf(e, SOLA_EFORMAT, "%s: not a .npy file (bad magic; expected "
                         "\\x93NUMPY)", name);
    }
    if (len < 10)
        return sola_errf(e, SOLA_EFORMAT, "%s: truncated .npy header (%zu bytes)", name, len);
    int major = b[6], minor = b[7];
    if (major < 1 || major > 3 || minor != 0)
        return sola_errf(e, SOLA_EUNSUP, "%s: .npy format version %d.%d is not supported "
                         "(1.0, 2.0 and 3.0 are)", name, major, minor);
    size_t pre = preamble_len(major);
    if (len < pre)
        return sola_errf(e, SOLA_EFORMAT, "%s: truncated .npy header (%zu bytes)", name, len);
    size_t hlen = header_len(b, major);
    if (hlen > SOLA_NPY_MAX_HEADER)
        return sola_errf(e, SOLA_ETOOBIG, "%s: .npy header length %zu exceeds the limit of %d "
                         "bytes", name, hlen, SOLA_NPY_MAX_HEADER);
    if (hlen > len - pre)
        return sola_errf(e, SOLA_EFORMAT, "%s: .npy header length %zu runs past the end of "
                         "the file (%zu bytes)", name, hlen, len);
    h->major = major;
    scan s = {(const char *)b + pre, (const char *)b + pre + hlen};
    char wb[16];
    if (!eat(&s, '{'))
        return sola_errf(e, SOLA_EFORMAT, "%s: .npy header is not a Python dict (found %s)",
                         name, where(&s, wb, sizeof wb));
    int have_descr = 0, have_fo = 0, have_shape = 0;
    for (;;) {
        if (eat(&s, '}'))
            break;
        char key[32];
        if (scan_str(&s, key, sizeof key) != 0)
            return sola_errf(e, SOLA_EFORMAT, "%s: .npy header: expected a quoted key, found "
                             "%s", name, where(&s, wb, sizeof wb));
        if (!eat(&s, ':'))
            return sola_errf(e, SOLA_EFORMAT, "%s: .npy header: expected ':' after '%s'", name,
                             key);
        int rc;
        if (strcmp(key, "descr") == 0 && !have_descr) {
            skip_ws(&s);
            if (s.p < s.end && *s.p == '[')
                return sola_errf(e, SOLA_EUNSUP, "%s: structured dtypes are not supported "
                                 "(save a plain float array)", name);
            if (scan_str(&s, h->descr, sizeof h->descr) != 0)
                return sola_errf(e, SOLA_EFORMAT, "%s: .npy header: 'descr' must be a dtype "
                                 "string", name);
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !have_fo) {
            if (scan_word(&s, "True"))
                h->fortran = 1;
            else if (scan_word(&s, "False"))
                h->fortran = 0;
            else
                return sola_errf(e, SOLA_EFORMAT, "%s: .npy header: 'fortran_order' must be "
                                 "True or False", name);
            have_fo = 1;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            if ((rc = parse_shape(&s, name, h, e)) != 0)
                return rc;
            have_shape = 1;
        } else {
            return sola_errf(e, SOLA_EFORMAT, "%s: .npy header: unexpected or repeated key '%s' "
                             "(expected 'descr', 'fortran_order', 'shape')", name, key);
        }
        if (eat(&s, ','))
            continue;
        if (eat(&s, '}'))
            break;
        return sola_errf(e, SOLA_EFORMAT, "%s: .npy header: expected ',' or '}', found %s",
                         name, where(&s, wb, sizeof wb));
    }
    skip_ws(&s);
    if (s.p != s.end)
        return sola_errf(e, SOLA_EFORMAT, "%s: .npy header: unexpected %s after the dict", name,
                         where(&s, wb, sizeof wb));
    if (!have_descr || !have_fo || !have_shape)
        return sola_errf(e, SOLA_EFORMAT, "%s: .npy header lacks the key '%s'", name,
                         !have_descr ? "descr" : !have_fo ? "fortran_order" : "shape");
    int rc = parse_descr(h->descr, name, flags, &h->kind, &h->itemsize, &h->big, e);
    if (rc)
        return rc;
    if (h->ndim < 1 && (flags & SOLA_NPY_SCALAR)) {
        h->ndim = 1;
        h->shape[0] = 1;
    }
    if (h->ndim < 1)
        return sola_errf(e, SOLA_ESHAPE, "%s: 0-dimensional (scalar) arrays are not supported",
                         name);
    size_t n = 1;
    for (int i = 0; i < h->ndim; i++)
        if (sola_mul_size(n, (size_t)h->shape[i], &n) != 0)
            return sola_errf(e, SOLA_EFORMAT, "%s: .npy shape overflows the address space",
                             name);
    h->numel = n;
    if (sola_mul_size(n, h->itemsize, &h->data_len) != 0)
        return sola_errf(e, SOLA_EFORMAT, "%s: .npy shape overflows the address space", name);
    h->data_off = pre + hlen;
    return 0;
}

static void shape_str(const npy_hdr *h, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < h->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)h->shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, h->ndim == 1 ? ",)" : ")");
}

/* Converts n items of the header's dtype at src (file order) to float32. Returns the
 * index (within these n) of the first f8 value that is finite but beyond float32's
 * range (it would silently become an infinity), or n when there is none. */
static size_t convert_n(const npy_hdr *h, const unsigned char *src, float *dst, size_t n)
{
    size_t sz = h->itemsize, over = n;
    int swap = h->big != !sola_host_is_le();
    if (h->kind == 'f' && sz == 4 && !swap) {
        memcpy(dst, src, n * 4);
        return n;
    }
    for (size_t i = 0; i < n; i++, src += sz) {
        uint64_t v = load_uint(src, sz, h->big);
        float f;
        if (h->kind == 'f') {
            if (sz == 2) {
                f = sola_half_to_float((uint16_t)v);
            } else if (sz == 4) {
                uint32_t u = (uint32_t)v;
                memcpy(&f, &u, 4);
            } else {
                double d;
                memcpy(&d, &v, 8);
                f = (float)d;
                if (over == n && isinf(f) && !isinf(d))
                    over = i;
            }
        } else if (h->kind == 'b') {
            f = v != 0;
        } else if (h->kind == 'i') {
            int64_t s = sz == 8 ? (int64_t)v : (int64_t)(v << (64 - 8 * sz)) >> (64 - 8 * sz);
            f = (float)s;
        } else {
            f = (float)v;
        }
        dst[i] = f;
    }
    return over;
}

/* "[t, c]": the coordinates of the element at file-order index i (C or Fortran). */
static void elem_str(const npy_hdr *h, size_t i, char *buf, size_t n)
{
    int64_t idx[SOLA_MAXDIM] = {0};
    for (int k = 0; k < h->ndim; k++) {
        int d = h->fortran ? k : h->ndim - 1 - k; /* fastest-varying first */
        int64_t dim = h->shape[d] > 0 ? h->shape[d] : 1;
        idx[d] = (int64_t)(i % (size_t)dim);
        i /= (size_t)dim;
    }
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int k = 0; k < h->ndim && o < n; k++)
        o += (size_t)snprintf(buf + o, n - o, k ? ", %lld" : "%lld", (long long)idx[k]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

static int overflow_err(const npy_hdr *h, const char *name, const unsigned char *item,
                        size_t i, sola_err *e)
{
    double d;
    uint64_t v = load_uint(item, 8, h->big);
    memcpy(&d, &v, 8);
    char at[96];
    elem_str(h, i, at, sizeof at);
    return sola_errf(e, SOLA_EFORMAT, "%s: element %s is %g, beyond the range of float32 "
                     "(+-3.4e38): it cannot be converted without becoming infinite", name, at, d);
}

/* Fortran-ordered src (dims shape[0..nd-1], first index fastest) to C order. */
static void fortran_to_c(const float *src, float *dst, int nd, const int64_t *shape,
                         size_t numel)
{
    size_t stride[SOLA_MAXDIM];
    size_t st = 1;
    for (int k = 0; k < nd; k++) {
        stride[k] = st;
        st *= (size_t)shape[k];
    }
    size_t idx[SOLA_MAXDIM] = {0};
    size_t off = 0;
    for (size_t i = 0; i < numel; i++) {
        dst[i] = src[off];
        /* advance the C-order odometer (last index fastest), tracking the F offset */
        for (int k = nd - 1; k >= 0; k--) {
            idx[k]++;
            off += stride[k];
            if (idx[k] < (size_t)shape[k])
                break;
            off -= stride[k] * idx[k];
            idx[k] = 0;
        }
    }
}

int sola_npy_peek(const void *buf, size_t len, const char *name, sola_array *shape_out,
                  size_t *data_off, size_t *data_len, sola_err *e)
{
    npy_hdr h;
    int rc = parse_header(buf, len, name, 0, &h, e);
    if (rc)
        return rc;
    if (shape_out) {
        shape_out->data = NULL;
        shape_out->ndim = h.ndim;
        memcpy(shape_out->shape, h.shape, sizeof h.shape);
    }
    if (data_off)
        *data_off = h.data_off;
    if (data_len)
        *data_len = h.data_len;
    return 0;
}

int sola_npy_info_is_f4c(const sola_npy_info *in)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return !in->fortran && (!strcmp(in->descr, "<f4") || !strcmp(in->descr, "=f4"));
#else
    (void)in;
    return 0;
#endif
}

int sola_npy_inspect(const void *buf, size_t len, const char *name, int flags,
                     sola_npy_info *info, sola_err *e)
{
    npy_hdr h;
    memset(info, 0, sizeof *info);
    int rc = parse_header(buf, len, name, flags, &h, e);
    if (rc)
        return rc;
    info->major = h.major;
    memcpy(info->descr, h.descr, sizeof info->descr);
    info->itemsize = h.itemsize;
    info->fortran = h.fortran;
    info->ndim = h.ndim;
    memcpy(info->shape, h.shape, sizeof h.shape);
    info->data_off = h.data_off;
    info->data_len = h.data_len;
    return 0;
}

int sola_npy_parse(const void *buf, size_t len, const char *name, int flags,
                   sola_array *out, sola_err *e)
{
    memset(out, 0, sizeof *out);
    npy_hdr h;
    int rc = parse_header(buf, len, name, flags, &h, e);
    if (rc)
        return rc;
    size_t have = len - h.data_off;
    if (have != h.data_len) {
        char sh[96];
        shape_str(&h, sh, sizeof sh);
        if (have < h.data_len)
            return sola_errf(e, SOLA_EFORMAT, "%s: truncated: header declares shape %s of '%s' "
                             "(%zu bytes of data) but the file holds %zu", name, sh, h.descr,
                             h.data_len, have);
        return sola_errf(e, SOLA_EFORMAT, "%s: header declares shape %s of '%s' (%zu bytes of "
                         "data) but %zu bytes follow the header (%zu trailing)", name, sh,
                         h.descr, h.data_len, have, have - h.data_len);
    }
    size_t nb = 0;
    if (sola_mul_size(h.numel, sizeof(float), &nb) != 0)
        return sola_errf(e, SOLA_ETOOBIG, "%s: array too large", name);
    float *data = malloc(nb ? nb : 1);
    if (!data)
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory for %zu bytes", name, nb);
    const unsigned char *src = (const unsigned char *)buf + h.data_off;
    if (h.fortran && h.ndim > 1) {
        float *tmp = malloc(nb ? nb : 1);
        if (!tmp) {
            free(data);
            return sola_errf(e, SOLA_ENOMEM, "%s: out of memory for %zu bytes", name, nb);
        }
        size_t over = convert_n(&h, src, tmp, h.numel);
        if (over < h.numel && !(flags & SOLA_NPY_ALLOW_NONFINITE)) {
            free(tmp);
            free(data);
            return overflow_err(&h, name, src + over * 8, over, e);
        }
        fortran_to_c(tmp, data, h.ndim, h.shape, h.numel);
        free(tmp);
    } else {
        size_t over = convert_n(&h, src, data, h.numel);
        if (over < h.numel && !(flags & SOLA_NPY_ALLOW_NONFINITE)) {
            free(data);
            return overflow_err(&h, name, src + over * 8, over, e);
        }
    }
    out->data = data;
    out->ndim = h.ndim;
    memcpy(out->shape, h.shape, sizeof h.shape);
    return 0;
}

int sola_npy_load(const char *path, int flags, sola_array *out, sola_err *e)
{
    memset(out, 0, sizeof *out);
    sola_map m;
    int rc = sola_map_file(path, &m, e);
    if (rc)
        return rc;
    rc = sola_npy_parse(m.data, m.len, path, flags, out, e);
    sola_unmap(&m);
    return rc;
}

/* Streams the payload through a fixed buffer: a dataset item may be gigabytes, and
 * the page cache, not this process, should hold it. */
int sola_npy_check_values(const char *path, int flags, sola_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sola_errf(e, errno == ENOENT ? SOLA_ENOTFOUND : SOLA_EIO, "%s: %s", path,
                         strerror(errno));
    enum { CHUNK = 16384 };
    size_t hcap = SOLA_NPY_MAX_HEADER + 16;
    unsigned char *hb = malloc(hcap);
    unsigned char *raw = malloc((size_t)CHUNK * 8);
    float *f = malloc((size_t)CHUNK * sizeof(float));
    int rc = 0;
    npy_hdr h;
    if (!hb || !raw || !f) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    ssize_t got = pread(fd, hb, hcap, 0);
    if (got < 0) {
        rc = sola_errf(e, SOLA_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    /* the header parser checks only that the header fits in what it is given */
    if ((rc = parse_header(hb, (size_t)got, path, flags & SOLA_NPY_LABELS, &h, e)))
        goto out;
    size_t per = (size_t)CHUNK, sz = h.itemsize;
    for (size_t i = 0; i < h.numel; i += per) {
        size_t n = h.numel - i < per ? h.numel - i : per, want = n * sz, have = 0;
        while (have < want) {
            ssize_t k = pread(fd, raw + have, want - have, (off_t)(h.data_off + i * sz + have));
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0) {
                rc = sola_errf(e, SOLA_EIO, "%s: %s", path, strerror(errno));
                goto out;
            }
            if (k == 0) {
                rc = sola_errf(e, SOLA_EFORMAT, "%s: truncated: the data ends at element %zu "
                               "of %zu", path, i + have / sz, h.numel);
                goto out;
            }
            have += (size_t)k;
        }
        if (flags & SOLA_NPY_ALLOW_NONFINITE)
            break; /* nothing to look for */
        size_t over = convert_n(&h, raw, f, n);
        if (over < n) {
            rc = overflow_err(&h, path, raw + over * 8, i + over, e);
            goto out;
        }
        size_t bad = sola_first_nonfinite(f, n);
        if (bad < n) {
            char at[96];
            elem_str(&h, i + bad, at, sizeof at);
            rc = sola_errf(e, SOLA_EFORMAT, "%s: element %s is %s (non-finite values are "
                           "refused)", path, at, isnan(f[bad]) ? "NaN" : f[bad] > 0 ? "+Inf" :
                           "-Inf");
            goto out;
        }
    }
out:
    free(hb);
    free(raw);
    free(f);
    close(fd);
    return rc;
}

/* ---- writing ----------------------------------------------------------- */

size_t sola_npy_header(const char *descr, int ndim, const int64_t *shape, unsigned char *hdr,
                       size_t cap)
{
    char dict[256];
    size_t k = (size_t)snprintf(dict, sizeof dict,
                                "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < ndim && k < sizeof dict; i++)
        k += (size_t)snprintf(dict + k, sizeof dict - k, i ? ", %lld" : "%lld",
                              (long long)shape[i]);
    if (k < sizeof dict)
        k += (size_t)snprintf(dict + k, sizeof dict - k, ndim == 1 ? ",), }" : "), }");
    if (k >= sizeof dict)
        return 0;
    int major = 1;
    size_t pre = 10;
    size_t total = (pre + k + 1 + 63) / 64 * 64;
    if (total - pre > 65535) {
        major = 2;
        pre = 12;
        total = (pre + k + 1 + 63) / 64 * 64;
    }
    if (total > cap)
        return 0;
    size_t hlen = total - pre;
    memcpy(hdr, npy_magic, 6);
    hdr[6] = (unsigned char)major;
    hdr[7] = 0;
    for (size_t i = 0; i < pre - 8; i++)
        hdr[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(hdr + pre, dict, k);
    memset(hdr + pre + k, ' ', hlen - k - 1);
    hdr[total - 1] = '\n';
    return total;
}

static int check_out_shape(int ndim, const int64_t *shape, size_t *nbytes, sola_err *e)
{
    if (ndim < 1 || ndim > SOLA_MAXDIM)
        return sola_errf(e, SOLA_EINVAL, "npy: cannot write %d dimensions (1..%d)", ndim,
                         SOLA_MAXDIM);
    size_t n = sizeof(float);
    int empty = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return sola_errf(e, SOLA_EINVAL, "npy: negative dimension %lld",
                             (long long)shape[i]);
        empty |= shape[i] == 0;
    }
    /* An empty array has no data whatever its other dimensions (the reader accepts
     * such files, so the writer must too: fuzz finding F1). */
    for (int i = 0; i < ndim && !empty; i++)
        if (sola_mul_size(n, (size_t)shape[i], &n) != 0)
            return sola_errf(e, SOLA_ETOOBIG, "npy: shape overflows the address space");
    *nbytes = empty ? 0 : n;
    return 0;
}

int sola_npy_encode(const float *data, int ndim, const int64_t *shape, void **buf,
                    size_t *len, sola_err *e)
{
    *buf = NULL;
    *len = 0;
    size_t nb = 0, total;
    int rc = check_out_shape(ndim, shape, &nb, e);
    if (rc)
        return rc;
    unsigned char hdr[512];
    size_t hl = sola_npy_header("<f4", ndim, shape, hdr, sizeof hdr);
    if (!hl)
        return sola_errf(e, SOLA_EINVAL, "npy: header does not fit");
    if (sola_add_size(hl, nb, &total) != 0)
        return sola_errf(e, SOLA_ETOOBIG, "npy: array too large");
    unsigned char *out = malloc(total);
    if (!out)
        return sola_errf(e, SOLA_ENOMEM, "npy: out of memory for %zu bytes", total);
    memcpy(out, hdr, hl);
    sola_store_le_f32(out + hl, data, nb / 4);
    *buf = out;
    *len = total;
    return 0;
}

/* The .npy header of a float32 array about to be saved to path: hdr[512] and its
 * length *hl, the payload's *nb bytes; 0 or an error naming path. */
static int save_header(const char *path, int ndim, const int64_t *shape,
                       unsigned char *hdr, size_t *hl, size_t *nb, sola_err *e)
{
    sola_err se = {0};
    *nb = 0;
    int rc = check_out_shape(ndim, shape, nb, &se);
    if (rc)
        return sola_errf(e, rc, "%s: %s", path, se.msg);
    *hl = sola_npy_header("<f4", ndim, shape, hdr, 512);
    if (!*hl)
        return sola_errf(e, SOLA_EINVAL, "%s: npy header does not fit", path);
    return 0;
}

int sola_npy_save(const char *path, const float *data, int ndim, const int64_t *shape,
                  sola_err *e)
{
    size_t nb = 0, hl = 0;
    unsigned char hdr[512];
    int rc = save_header(path, ndim, shape, hdr, &hl, &nb, e);
    if (rc)
        return rc;
    sola_afile a;
    if ((rc = sola_afile_open(&a, path, e)) != 0)
        return rc;
    if ((rc = sola_afile_write(&a, hdr, hl, e)) != 0)
        goto err;
    if (sola_host_is_le()) {
        rc = sola_afile_write(&a, data, nb, e);
    } else {
        unsigned char chunk[4096];
        for (size_t i = 0; i < nb / 4 && !rc; i += sizeof chunk / 4) {
            size_t m = nb / 4 - i < sizeof chunk / 4 ? nb / 4 - i : sizeof chunk / 4;
            sola_store_le_f32(chunk, data + i, m);
            rc = sola_afile_write(&a, chunk, m * 4, e);
        }
    }
    if (rc)
        goto err;
    return sola_afile_commit(&a, e);
err:
    sola_afile_abort(&a);
    return rc;
}

int sola_npy_save_inplace(const char *path, float *data, int ndim, const int64_t *shape,
                          size_t room, sola_err *e)
{
    size_t nb = 0, hl = 0;
    unsigned char hdr[512];
    int rc = save_header(path, ndim, shape, hdr, &hl, &nb, e);
    if (rc)
        return rc;
    if (hl > room || !sola_host_is_le())
        return sola_npy_save(path, data, ndim, shape, e);
    unsigned char *img = (unsigned char *)data - hl;
    memcpy(img, hdr, hl);
    sola_afile a;
    if ((rc = sola_afile_open(&a, path, e)) != 0)
        return rc;
    if ((rc = sola_afile_write_direct(&a, img, hl + nb, e)) != 0) {
        sola_afile_abort(&a);
        return rc;
    }
    return sola_afile_commit(&a, e);
}
