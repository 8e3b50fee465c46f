/* npz_write.c -- writing .npz archives (see npz.h; the reader is npz.c).
 *
 * Members are float32 .npy images, stored or raw-deflated, each behind a local
 * header, then the central directory and the end record. Output is plain zip (no
 * ZIP64): past 4 GiB or 65534 members the write is refused with a message rather
 * than producing an archive other tools misread. Timestamps are fixed (1980-01-01)
 * so the same arrays give the same bytes. */
#include "npz.h"

#include <stdio.h>
#include <string.h>

#include "fsutil.h"
#include "npy.h"
#include "npz_int.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define EOCD_LEN 22
#define CEN_LEN 46
#define LOC_LEN 30
#define U32_SAT 0xffffffffu
#define U16_SAT 0xffffu

static void wr(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Output goes either to memory or to an atomic file; pos counts bytes either way. */
typedef struct sink {
    sola_afile *af;
    unsigned char *buf;
    size_t cap, pos;
} sink;

static int sink_put(sink *s, const void *p, size_t n, sola_err *e)
{
    if (n == 0)
        return 0;
    if (s->af) {
        int rc = sola_afile_write(s->af, p, n, e);
        if (rc)
            return rc;
    } else {
        if (n > s->cap - s->pos) {
            size_t cap = s->cap ? s->cap : 4096;
            while (n > cap - s->pos) {
                if (cap > SIZE_MAX / 2)
                    return sola_errf(e, SOLA_ENOMEM, "npz: archive too large");
                cap *= 2;
            }
            unsigned char *nb = realloc(s->buf, cap);
            if (!nb)
                return sola_errf(e, SOLA_ENOMEM, "npz: out of memory for %zu bytes", cap);
            s->buf = nb;
            s->cap = cap;
        }
        memcpy(s->buf + s->pos, p, n);
    }
    s->pos += n;
    return 0;
}

typedef struct cdrec {
    size_t off, csize, usize, nlen;
    uint32_t crc;
    int method, utf8;
} cdrec;

/* Raw-deflates src[n] into a malloc'd buffer. */
static int deflate_raw(const unsigned char *src, size_t n, unsigned char **out, size_t *olen,
                       sola_err *e)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    if (deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return sola_errf(e, SOLA_ENOMEM, "npz: cannot initialise zlib");
    size_t cap = (size_t)deflateBound(&s, (uLong)n) + 64;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&s);
        return sola_errf(e, SOLA_ENOMEM, "npz: out of memory for %zu bytes", cap);
    }
    size_t in_left = n, out_left = cap;
    int zr = Z_OK;
    s.next_in = (Bytef *)src;
    s.next_out = buf;
    while (zr == Z_OK || zr == Z_BUF_ERROR) {
        sola__z_refill(&s, &in_left, &out_left);
        if (s.avail_out == 0)
            break;
        zr = deflate(&s, in_left ? Z_NO_FLUSH : Z_FINISH);
    }
    if (zr != Z_STREAM_END) {
        deflateEnd(&s);
        free(buf);
        return sola_errf(e, SOLA_EIO, "npz: deflate failed");
    }
    *olen = (size_t)s.total_out;
    *out = buf;
    deflateEnd(&s);
    return 0;
}

static int too_big(const char *what, sola_err *e)
{
    return sola_errf(e, SOLA_ETOOBIG, "%s: archive would exceed 4 GiB or 65535 members, which "
                     "needs ZIP64 (not written); split it into several files", what);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int npz_write(sink *s, const char *what, const char *const *names,
                     const sola_array *arrays, const void *const *raw, const size_t *rawlen,
                     int n, int deflate, sola_err *e)
{
    if (n < 0 || n >= (int)U16_SAT)
        return too_big(what, e);
    for (int i = 0; i < n; i++) {
        size_t k = names[i] ? strlen(names[i]) : 0;
        if (k == 0 || k > 65535 - 4)
            return sola_errf(e, SOLA_EINVAL, "%s: member %d has an empty or too long name", what,
                             i);
    }
    cdrec *cd = calloc(n ? (size_t)n : 1, sizeof *cd);
    const char **sorted = malloc((n ? (size_t)n : 1) * sizeof *sorted);
    if (!cd || !sorted) {
        free(cd);
        free(sorted);
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", what);
    }
    int rc = 0;
    memcpy(sorted, names, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_str);
    for (int i = 1; i < n && !rc; i++)
        if (strcmp(sorted[i], sorted[i - 1]) == 0)
            rc = sola_errf(e, SOLA_EINVAL, "%s: member name '%s' is used twice", what, sorted[i]);
    free(sorted);
    for (int i = 0; i < n && !rc; i++) {
        void *npy = NULL;
        unsigned char *zbuf = NULL;
        size_t nlen, zlen = 0;
        sola_err se = {0};
        if (raw && raw[i]) { /* a member copied byte for byte */
            nlen = rawlen[i];
            if (!(npy = malloc(nlen ? nlen : 1))) {
                rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", what);
                break;
            }
            memcpy(npy, raw[i], nlen);
        } else if ((rc = sola_npy_encode(arrays[i].data, arrays[i].ndim, arrays[i].shape, &npy,
                                         &nlen, &se)) != 0) {
            rc = sola_errf(e, rc, "%s: member '%s': %s", what, names[i], se.msg);
            break;
        }
        if (deflate && (rc = deflate_raw(npy, nlen, &zbuf, &zlen, e)) != 0) {
            free(npy);
            break;
        }
        cdrec *r = &cd[i];
        r->off = s->pos;
        r->usize = nlen;
        r->csize = deflate ? zlen : nlen;
        r->crc = sola_crc32(npy, nlen);
        r->method = deflate ? 8 : 0;
        r->nlen = strlen(names[i]) + 4;
        r->utf8 = 0;
        for (const unsigned char *q = (const unsigned char *)names[i]; *q; q++)
            r->utf8 |= *q >= 0x80;
        if (r->off >= U32_SAT || r->usize >= U32_SAT || r->csize >= U32_SAT) {
            rc = too_big(what, e);
        } else {
            unsigned char h[LOC_LEN];
            wr(h, SIG_LOCAL, 4);
            wr(h + 4, 20, 2);
            wr(h + 6, r->utf8 ? 0x800 : 0, 2);
            wr(h + 8, (uint64_t)r->method, 2);
            wr(h + 10, 0, 2);      /* time 00:00:00 */
            wr(h + 12, 0x21, 2);   /* date 1980-01-01: reproducible output */
            wr(h + 14, r->crc, 4);
            wr(h + 18, r->csize, 4);
            wr(h + 22, r->usize, 4);
            wr(h + 26, r->nlen, 2);
            wr(h + 28, 0, 2);
            if (!(rc = sink_put(s, h, sizeof h, e)) && !(rc = sink_put(s, names[i], r->nlen - 4, e)) &&
                !(rc = sink_put(s, ".npy", 4, e)))
                rc = sink_put(s, deflate ? zbuf : npy, r->csize, e);
        }
        free(npy);
        free(zbuf);
    }
    size_t cd_start = s->pos;
    for (int i = 0; i < n && !rc; i++) {
        const cdrec *r = &cd[i];
        unsigned char h[CEN_LEN];
        wr(h, SIG_CENTRAL, 4);
        wr(h + 4, 0x0314, 2); /* made by: Unix, spec 2.0 */
        wr(h + 6, 20, 2);
        wr(h + 8, r->utf8 ? 0x800 : 0, 2);
        wr(h + 10, (uint64_t)r->method, 2);
        wr(h + 12, 0, 2);
        wr(h + 14, 0x21, 2);
        wr(h + 16, r->crc, 4);
        wr(h + 20, r->csize, 4);
        wr(h + 24, r->usize, 4);
        wr(h + 28, r->nlen, 2);
        wr(h + 30, 0, 2);
        wr(h + 32, 0, 2);
        wr(h + 34, 0, 2);
        wr(h + 36, 0, 2);
        wr(h + 38, (uint64_t)0100644 << 16, 4); /* regular file, rw-r--r-- */
        wr(h + 42, r->off, 4);
        if (!(rc = sink_put(s, h, sizeof h, e)) &&
            !(rc = sink_put(s, names[i], r->nlen - 4, e)))
            rc = sink_put(s, ".npy", 4, e);
    }
    if (!rc) {
        size_t cd_size = s->pos - cd_start;
        if (cd_start >= U32_SAT || cd_size >= U32_SAT) {
            rc = too_big(what, e);
        } else {
            unsigned char h[EOCD_LEN] = {0};
            wr(h, SIG_EOCD, 4);
            wr(h + 8, (uint64_t)n, 2);
            wr(h + 10, (uint64_t)n, 2);
            wr(h + 12, cd_size, 4);
            wr(h + 16, cd_start, 4);
            rc = sink_put(s, h, sizeof h, e);
        }
    }
    free(cd);
    return rc;
}

int sola_npz_encode(const char *const *names, const sola_array *arrays, int n, int deflate,
                    void **buf, size_t *len, sola_err *e)
{
    *buf = NULL;
    *len = 0;
    sink s = {0};
    int rc = npz_write(&s, "npz", names, arrays, NULL, NULL, n, deflate, e);
    if (rc) {
        free(s.buf);
        return rc;
    }
    *buf = s.buf;
    *len = s.pos;
    return 0;
}

int sola_npz_save(const char *path, const char *const *names, const sola_array *arrays,
                  int n, int deflate, sola_err *e)
{
    return sola_npz_save_mixed(path, names, arrays, NULL, NULL, n, deflate, e);
}

int sola_npz_save_mixed(const char *path, const char *const *names, const sola_array *arrays,
                        const void *const *raw, const size_t *rawlen, int n, int deflate,
                        sola_err *e)
{
    sola_afile a;
    int rc = sola_afile_open(&a, path, e);
    if (rc)
        return rc;
    sink s = {.af = &a};
    if ((rc = npz_write(&s, path, names, arrays, raw, rawlen, n, deflate, e)) != 0) {
        sola_afile_abort(&a);
        return rc;
    }
    return sola_afile_commit(&a, e);
}
