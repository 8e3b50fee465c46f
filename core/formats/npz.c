/* npz.c -- .npz archives: the zip container, read and written (see npz.h).
 *
 * Reading trusts the central directory (numpy writes every local header with
 * ZIP64 placeholder sizes, and streamed writers put sizes in data descriptors), but
 * checks that each local header agrees on the name and that every member's bytes
 * lie inside the archive, before the central directory, and do not overlap another
 * member. The writer is in npz_write.c. */
#include "npz.h"

#include <stdio.h>
#include <string.h>

#include "fsutil.h"
#include "npy.h"
#include "npz_int.h"
#include "sniff.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define EOCD_LEN 22
#define CEN_LEN 46
#define LOC_LEN 30
#define U32_SAT 0xffffffffu
#define U16_SAT 0xffffu
/* Deflate cannot expand by more than ~1032:1; a larger declared size is a lie (or
 * a bomb) and is refused before any allocation. */
#define MAX_DEFLATE_RATIO 1100

static uint64_t rd(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static const char *zname(const sola_npz *z)
{
    return z->name_ ? z->name_ : "archive";
}

void sola_npz_close(sola_npz *z)
{
    for (int i = 0; i < z->n; i++)
        free(z->entries[i].name);
    free(z->entries);
    free(z->name_);
    if (z->map_) {
        sola_map m = {z->map_, z->maplen_};
        sola_unmap(&m);
    }
    memset(z, 0, sizeof *z);
}

/* ---- directory parsing ------------------------------------------------- */

typedef struct span {
    size_t begin, end; /* local header .. end of compressed data */
    int idx;
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int cmp_name(const void *a, const void *b)
{
    const sola_npz_entry *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static const char *method_name(int m)
{
    switch (m) {
    case 1: return "shrink";
    case 6: return "implode";
    case 9: return "deflate64";
    case 12: return "bzip2";
    case 14: return "lzma";
    case 93: return "zstd";
    case 95: return "xz";
    case 99: return "AES encryption";
    default: return "unknown";
    }
}

/* Locates the end-of-central-directory record (and the ZIP64 one if present) and
 * returns the central directory's extent and entry count. */
static int find_directory(const unsigned char *b, size_t len, const char *name,
                          size_t *cd_off, size_t *cd_size, uint64_t *count, sola_err *e)
{
    if (len < EOCD_LEN)
        return sola_errf(e, SOLA_EFORMAT, "%s: not a .npz (zip) archive: %zu bytes is too short",
                         name, len);
    size_t lo = len - EOCD_LEN > 65535 ? len - EOCD_LEN - 65535 : 0;
    size_t eocd = SIZE_MAX;
    for (size_t off = len - EOCD_LEN + 1; off-- > lo;) {
        if (rd(b + off, 4) == SIG_EOCD && off + EOCD_LEN + rd(b + off + 20, 2) == len) {
            eocd = off;
            break;
        }
    }
    if (eocd == SIZE_MAX) {
        sola_kind k = sola_sniff(b, len);
        if (k != SOLA_KIND_UNKNOWN && k != SOLA_KIND_NPZ && k != SOLA_KIND_ZIP &&
            k != SOLA_KIND_TORCH_ZIP)
            return sola_errf(e, SOLA_EFORMAT, "%s: not a .npz (zip) archive: this is %s (no "
                             "end-of-central-directory record)", name, sola_kind_name(k));
        return sola_errf(e, SOLA_EFORMAT, "%s: not a .npz (zip) archive, or truncated: no "
                         "end-of-central-directory record", name);
    }
    const unsigned char *r = b + eocd;
    uint64_t disk = rd(r + 4, 2), cdisk = rd(r + 6, 2), n_here = rd(r + 8, 2),
             n = rd(r + 10, 2), size = rd(r + 12, 4), off = rd(r + 16, 4);
    size_t limit = eocd; /* the directory must end before this */
    if (eocd >= 20 && rd(b + eocd - 20, 4) == SIG_LOC64) {
        const unsigned char *l = b + eocd - 20;
        uint64_t z64 = rd(l + 8, 8);
        if (rd(l + 4, 4) != 0 || rd(l + 16, 4) > 1)
            return sola_errf(e, SOLA_EUNSUP, "%s: multi-disk zip archives are not supported",
                             name);
        if (z64 > eocd - 20 || eocd - 20 - z64 < 56 || rd(b + z64, 4) != SIG_EOCD64)
            return sola_errf(e, SOLA_EFORMAT, "%s: ZIP64 end-of-central-directory record is "
                             "missing or out of bounds", name);
        const unsigned char *q = b + z64;
        disk = rd(q + 16, 4);
        cdisk = rd(q + 20, 4);
        n_here = rd(q + 24, 8);
        n = rd(q + 32, 8);
        size = rd(q + 40, 8);
        off = rd(q + 48, 8);
        limit = (size_t)z64;
    } else if (n == U16_SAT || size == U32_SAT || off == U32_SAT) {
        return sola_errf(e, SOLA_EFORMAT, "%s: zip end record needs ZIP64 values but the ZIP64 "
                         "locator is missing", name);
    }
    if (disk != 0 || cdisk != 0 || n_here != n)
        return sola_errf(e, SOLA_EUNSUP, "%s: multi-disk zip archives are not supported", name);
    if (off > limit || size > limit - off)
        return sola_errf(e, SOLA_EFORMAT, "%s: central directory (offset %llu, %llu bytes) lies "
                         "outside the archive", name, (unsigned long long)off,
                         (unsigned long long)size);
    if (n > size / CEN_LEN)
        return sola_errf(e, SOLA_EFORMAT, "%s: central directory claims %llu entries but holds "
                         "%llu bytes", name, (unsigned long long)n, (unsigned long long)size);
    if (n > INT32_MAX)
        return sola_errf(e, SOLA_ETOOBIG, "%s: %llu members are more than supported", name,
                         (unsigned long long)n);
    *cd_off = (size_t)off;
    *cd_size = (size_t)size;
    *count = n;
    return 0;
}

/* Applies the ZIP64 extended-information extra field (id 1) of a central entry: it
 * holds, in order, only those of usize/csize/offset whose 32-bit field is saturated. */
static int apply_zip64(const unsigned char *x, size_t xlen, uint64_t *usize, uint64_t *csize,
                       uint64_t *loff, const char *name, const char *mname, sola_err *e)
{
    size_t p = 0;
    while (p + 4 <= xlen) {
        unsigned id = (unsigned)rd(x + p, 2);
        size_t sz = (size_t)rd(x + p + 2, 2);
        if (sz > xlen - p - 4)
            return sola_errf(e, SOLA_EFORMAT, "%s: member '%s': extra field runs past its "
                             "header", name, mname);
        if (id == 1) {
            const unsigned char *f = x + p + 4;
            size_t k = 0;
            uint64_t *vals[3] = {usize, csize, loff};
            for (int i = 0; i < 3; i++) {
                if (*vals[i] != U32_SAT)
                    continue;
                if (k + 8 > sz)
                    return sola_errf(e, SOLA_EFORMAT, "%s: member '%s': ZIP64 extra field is "
                                     "too short", name, mname);
                *vals[i] = rd(f + k, 8);
                k += 8;
            }
        }
        p += 4 + sz;
    }
    return 0;
}

int sola_npz_parse(const void *buf, size_t len, const char *name, sola_npz *z, sola_err *e)
{
    memset(z, 0, sizeof *z);
    const unsigned char *b = buf;
    span *spans = NULL;
    sola_npz_entry **sorted = NULL;
    int rc;
    if (!name)
        name = "archive";
    z->buf = b;
    z->len = len;
    if (!(z->name_ = strdup(name)))
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", name);
    size_t cd_off = 0, cd_size = 0;
    uint64_t n = 0;
    if ((rc = find_directory(b, len, name, &cd_off, &cd_size, &n, e)) != 0)
        goto err;
    z->entries = calloc(n ? (size_t)n : 1, sizeof *z->entries);
    spans = calloc(n ? (size_t)n : 1, sizeof *spans);
    if (!z->entries || !spans) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", name);
        goto err;
    }
    size_t p = cd_off, cd_end = cd_off + cd_size;
    for (uint64_t i = 0; i < n; i++) {
        if (cd_end - p < CEN_LEN || rd(b + p, 4) != SIG_CENTRAL) {
            rc = sola_errf(e, SOLA_EFORMAT, "%s: central directory entry %llu is corrupt", name,
                           (unsigned long long)i);
            goto err;
        }
        const unsigned char *c = b + p;
        unsigned flags = (unsigned)rd(c + 8, 2);
        int method = (int)rd(c + 10, 2);
        uint64_t crc = rd(c + 16, 4), csize = rd(c + 20, 4), usize = rd(c + 24, 4);
        size_t nlen = (size_t)rd(c + 28, 2), xlen = (size_t)rd(c + 30, 2),
               clen = (size_t)rd(c + 32, 2);
        uint64_t disk = rd(c + 34, 2), loff = rd(c + 42, 4);
        if (cd_end - p - CEN_LEN < nlen + xlen + clen) {
            rc = sola_errf(e, SOLA_EFORMAT, "%s: central directory entry %llu runs past the "
                           "directory", name, (unsigned long long)i);
            goto err;
        }
        const char *nm = (const char *)c + CEN_LEN;
        if (memchr(nm, 0, nlen)) {
            rc = sola_errf(e, SOLA_EFORMAT, "%s: member name %llu contains a NUL byte", name,
                           (unsigned long long)i);
            goto err;
        }
        sola_npz_entry *en = &z->entries[i];
        size_t keep = nlen >= 4 && memcmp(nm + nlen - 4, ".npy", 4) == 0 ? nlen - 4 : nlen;
        if (!(en->name = malloc(keep + 1))) {
            rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", name);
            goto err;
        }
        memcpy(en->name, nm, keep);
        en->name[keep] = 0;
        z->n = (int)i + 1;
        if ((rc = apply_zip64(c + CEN_LEN + nlen, xlen, &usize, &csize, &loff, name, en->name,
                              e)) != 0)
            goto err;
        if (disk != 0 && disk != U16_SAT) {
            rc = sola_errf(e, SOLA_EUNSUP, "%s: multi-disk zip archives are not supported",
                           name);
            goto err;
        }
        if (flags & 0x41) {
            rc = sola_errf(e, SOLA_EUNSUP, "%s: member '%s' is encrypted; encrypted archives "
                           "are not supported", name, en->name);
            goto err;
        }
        if (method != 0 && method != 8) {
            rc = sola_errf(e, SOLA_EUNSUP, "%s: member '%s' uses compression method %d (%s); "
                           "only stored and deflated members are supported", name, en->name,
                           method, method_name(method));
            goto err;
        }
        if (method == 0 && csize != usize) {
            rc = sola_errf(e, SOLA_EFORMAT, "%s: stored member '%s' declares %llu compressed "
                           "but %llu uncompressed bytes", name, en->name,
                           (unsigned long long)csize, (unsigned long long)usize);
            goto err;
        }
        if (method == 8 && usize / MAX_DEFLATE_RATIO > csize) {
            rc = sola_errf(e, SOLA_EFORMAT, "%s: member '%s' declares %llu bytes from %llu "
                           "compressed, beyond what deflate can produce", name, en->name,
                           (unsigned long long)usize, (unsigned long long)csize);
            goto err;
        }
        /* The local header: inside the archive, same name, data before the directory. */
        if (loff > cd_off || cd_off - loff < LOC_LEN || rd(b + loff, 4) != SIG_LOCAL) {
            rc = sola_errf(e, SOLA_EFORMAT, "%s: member '%s': local header at offset %llu is "
                           "missing or out of bounds", name, en->name, (unsigned long long)loff);
            goto err;
        }
        const unsigned char *l = b + loff;
        size_t lnlen = (size_t)rd(l + 26, 2), lxlen = (size_t)rd(l + 28, 2);
        size_t dstart = (size_t)loff + LOC_LEN + lnlen + lxlen;
        if (lnlen != nlen || dstart > cd_off || memcmp(l + LOC_LEN, nm, nlen) != 0) {
            rc = sola_errf(e, SOLA_EFORMAT, "%s: member '%s': local header does not match the "
                           "central directory", name, en->name);
            goto err;
        }
        if (rd(l + 6, 2) & 0x41) {
            rc = sola_errf(e, SOLA_EUNSUP, "%s: member '%s' is encrypted; encrypted archives "
                           "are not supported", name, en->name);
            goto err;
        }
        if (csize > cd_off - dstart) {
            rc = sola_errf(e, SOLA_EFORMAT, "%s: member '%s' (%llu bytes at offset %zu) runs past "
                           "the end of its data area; the archive is truncated or corrupt",
                           name, en->name, (unsigned long long)csize, dstart);
            goto err;
        }
        en->offset = (size_t)loff;
        en->csize = (size_t)csize;
        en->usize = (size_t)usize;
        if ((uint64_t)en->usize != usize) {
            rc = sola_errf(e, SOLA_ETOOBIG, "%s: member '%s' is too large", name, en->name);
            goto err;
        }
        en->method = method;
        en->crc = (unsigned)crc;
        spans[i].begin = (size_t)loff;
        spans[i].end = dstart + (size_t)csize;
        spans[i].idx = (int)i;
        p += CEN_LEN + nlen + xlen + clen;
    }
    if (n > 1) {
        qsort(spans, (size_t)n, sizeof *spans, cmp_span);
        for (uint64_t i = 1; i < n; i++)
            if (spans[i].begin < spans[i - 1].end) {
                rc = sola_errf(e, SOLA_EFORMAT, "%s: members '%s' and '%s' overlap", name,
                               z->entries[spans[i - 1].idx].name, z->entries[spans[i].idx].name);
                goto err;
            }
        if (!(sorted = malloc((size_t)n * sizeof *sorted))) {
            rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", name);
            goto err;
        }
        for (uint64_t i = 0; i < n; i++)
            sorted[i] = &z->entries[i];
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_name);
        for (uint64_t i = 1; i < n; i++)
            if (strcmp(sorted[i]->name, sorted[i - 1]->name) == 0) {
                rc = sola_errf(e, SOLA_EFORMAT, "%s: member '%s' appears twice", name,
                               sorted[i]->name);
                goto err;
            }
    }
    free(spans);
    free(sorted);
    return 0;
err:
    free(spans);
    free(sorted);
    z->map_ = NULL; /* the caller's buffer is not ours */
    sola_npz_close(z);
    return rc;
}

int sola_npz_open(const char *path, sola_npz *z, sola_err *e)
{
    memset(z, 0, sizeof *z);
    sola_map m;
    int rc = sola_map_file(path, &m, e);
    if (rc)
        return rc;
    if ((rc = sola_npz_parse(m.data, m.len, path, z, e)) != 0) {
        sola_unmap(&m);
        return rc;
    }
    z->map_ = m.data;
    z->maplen_ = m.len;
    return 0;
}

int sola_npz_find(const sola_npz *z, const char *name)
{
    for (int i = 0; i < z->n; i++)
        if (strcmp(z->entries[i].name, name) == 0)
            return i;
    return -1;
}

int sola_npz_pick(const sola_npz *z, const char *name, sola_err *e)
{
    if (!name)
        name = zname(z);
    int i = sola_npz_find(z, "feats");
    if (i >= 0)
        return i;
    if (z->n == 1)
        return 0;
    if (z->n == 0)
        return sola_errf(e, SOLA_EFORMAT, "%s: the archive is empty", name);
    return sola_errf(e, SOLA_EFORMAT, "%s: %d members and none named 'feats': cannot tell which "
                     "one is the sequence (name it 'feats' or store one member)", name, z->n);
}

/* ---- reading one member ------------------------------------------------ */

uint32_t sola_crc32(const void *buf, size_t n)
{
    const unsigned char *p = buf;
    uLong c = crc32(0L, Z_NULL, 0);
    while (n) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

void sola__z_refill(z_stream *s, size_t *in_left, size_t *out_left)
{
    if (s->avail_in == 0 && *in_left) {
        s->avail_in = *in_left > (1u << 30) ? (1u << 30) : (uInt)*in_left;
        *in_left -= s->avail_in;
    }
    if (s->avail_out == 0 && *out_left) {
        s->avail_out = *out_left > (1u << 30) ? (1u << 30) : (uInt)*out_left;
        *out_left -= s->avail_out;
    }
}

/* Raw-inflates src[csize] into dst[usize]; the stream must end exactly there. */
static int inflate_exact(const unsigned char *src, size_t csize, unsigned char *dst,
                         size_t usize, const char *what, sola_err *e)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, -MAX_WBITS) != Z_OK)
        return sola_errf(e, SOLA_ENOMEM, "%s: cannot initialise zlib", what);
    size_t in_left = csize, out_left = usize;
    int zr = Z_OK;
    s.next_in = (Bytef *)src;
    s.next_out = dst;
    while (zr == Z_OK) {
        sola__z_refill(&s, &in_left, &out_left);
        uInt ai = s.avail_in, ao = s.avail_out;
        zr = inflate(&s, Z_NO_FLUSH);
        if (zr == Z_BUF_ERROR || (zr == Z_OK && ai == s.avail_in && ao == s.avail_out))
            break; /* no progress: input exhausted or output full */
    }
    int rc = 0;
    if (zr == Z_STREAM_END) {
        if (s.total_out != usize)
            rc = sola_errf(e, SOLA_EFORMAT, "%s: inflates to %lu bytes but %zu were declared",
                           what, (unsigned long)s.total_out, usize);
    } else if (zr == Z_DATA_ERROR || zr == Z_NEED_DICT) {
        rc = sola_errf(e, SOLA_EFORMAT, "%s: corrupt deflate data (%s)", what,
                       s.msg ? s.msg : "invalid stream");
    } else if (s.avail_out == 0 && out_left == 0) {
        /* Output full without the stream's end: one spare byte tells "more data than
         * declared" from "the stream stops without its final block". */
        unsigned char spare;
        s.next_out = &spare;
        s.avail_out = 1;
        sola__z_refill(&s, &in_left, &out_left);
        zr = inflate(&s, Z_NO_FLUSH);
        if (zr == Z_STREAM_END && s.avail_out == 1)
            rc = 0;
        else if (s.avail_out == 0)
            rc = sola_errf(e, SOLA_EFORMAT, "%s: inflates to more than the declared %zu bytes",
                           what, usize);
        else
            rc = sola_errf(e, SOLA_EFORMAT,
                           "%s: deflate stream does not end (truncated member)", what);
    } else {
        rc = sola_errf(e, SOLA_EFORMAT, "%s: deflate data ends early (truncated member)", what);
    }
    inflateEnd(&s);
    return rc;
}

/* The .npy image of member i, its CRC checked: *img points into the archive (a stored
 * member) or at *owned (an inflated one, malloc'd: the caller frees it). `what`
 * (512 bytes) gets "ARCHIVE: member 'NAME'" for messages. */
static int member_verified(const sola_npz *z, int i, char *what, const unsigned char **img,
                           unsigned char **owned, sola_err *e)
{
    *img = NULL;
    *owned = NULL;
    if (i < 0 || i >= z->n)
        return sola_errf(e, SOLA_EINVAL, "%s: no member %d", zname(z), i);
    const sola_npz_entry *en = &z->entries[i];
    snprintf(what, 512, "%s: member '%s'", zname(z), en->name);
    const unsigned char *l = z->buf + en->offset; /* validated by sola_npz_parse */
    const unsigned char *src = l + LOC_LEN + rd(l + 26, 2) + rd(l + 28, 2);
    if (en->method == 8) {
        unsigned char *tmp = malloc(en->usize ? en->usize : 1);
        if (!tmp)
            return sola_errf(e, SOLA_ENOMEM, "%s: out of memory for %zu bytes", what,
                             en->usize);
        int rc = inflate_exact(src, en->csize, tmp, en->usize, what, e);
        if (rc) {
            free(tmp);
            return rc;
        }
        *owned = tmp;
        src = tmp;
    }
    uint32_t crc = sola_crc32(src, en->usize);
    if (crc != en->crc) {
        free(*owned);
        *owned = NULL;
        return sola_errf(e, SOLA_EFORMAT, "%s: CRC-32 mismatch (stored %08x, computed %08x): "
                         "the archive is corrupt", what, en->crc, crc);
    }
    *img = src;
    return 0;
}

int sola_npz_read(const sola_npz *z, int i, int npy_flags, sola_array *out, sola_err *e)
{
    memset(out, 0, sizeof *out);
    char what[512];
    const unsigned char *npy;
    unsigned char *owned;
    int rc = member_verified(z, i, what, &npy, &owned, e);
    if (rc)
        return rc;
    rc = sola_npy_parse(npy, z->entries[i].usize, what, npy_flags, out, e);
    free(owned);
    return rc;
}

int sola_npz_member_image(const sola_npz *z, int i, void **img, size_t *len, sola_err *e)
{
    *img = NULL;
    *len = 0;
    char what[512];
    const unsigned char *npy;
    unsigned char *owned;
    int rc = member_verified(z, i, what, &npy, &owned, e);
    if (rc)
        return rc;
    size_t n = z->entries[i].usize;
    if (!owned) {
        if (!(owned = malloc(n ? n : 1)))
            return sola_errf(e, SOLA_ENOMEM, "%s: out of memory for %zu bytes", what, n);
        memcpy(owned, npy, n);
    }
    *img = owned;
    *len = n;
    return 0;
}
