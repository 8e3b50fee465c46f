/* refine_stream.c -- `sola refine --stream`: online refine for pipelines without
 * HTTP. Rows are read from standard input as the producer writes them and each
 * refined row is written out as soon as it is final (core/model/stream.h: once R more rows
 * have arrived; the last R at the end of input), bit-identical to `sola refine` of the
 * whole sequence.
 *
 * Framing (docs/streaming.md says why):
 *   stdin   one or more .npy arrays back to back, each [n, C] or [C] (one row), any
 *           float dtype numpy writes (f2/f4/f8, either byte order; Fortran order is
 *           read whole before its rows go in) -- what np.save(sys.stdout.buffer, a)
 *           writes, once per chunk; a whole .npy file is the one-array case. End of
 *           input ends the sequence.
 *           With --dim C: raw little-endian float32, C per row, no header.
 *   stdout  raw little-endian float32, C per row, row t of the sequence at byte
 *           4*C*t, written and flushed as soon as the row is final. An .npy header
 *           would need the row count before the first row.
 *           With -o OUT.npy: an .npy [T, C] file instead, its header completed when
 *           input ends, renamed into place then (a partial run leaves no OUT.npy). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_io.h"
#include "npy.h"
#include "stream.h"

#define HDR_LEN 128 /* the -o file's header: shape digits fit, data 64-byte aligned */

typedef struct input {
    int fd;
    unsigned char *buf;
    size_t off, len, cap; /* unread bytes are buf[off, len) */
    int eof;
    long long consumed;   /* bytes taken so far, for messages */
} input;

/* Reads until `need` unread bytes are there; 0, 1 when input ended first, or -1 + e. */
static int need(input *in, size_t n, sola_err *e)
{
    while (in->len - in->off < n) {
        if (in->eof)
            return 1;
        if (in->off > 0) { /* slide the unread bytes to the front */
            memmove(in->buf, in->buf + in->off, in->len - in->off);
            in->len -= in->off;
            in->off = 0;
        }
        if (in->cap - in->len < n || in->cap - in->len < 65536) {
            size_t cap = in->len + (n > 65536 ? n : 65536);
            unsigned char *b = realloc(in->buf, cap);
            if (!b)
                return sola_errf(e, SOLA_ENOMEM, "stdin: out of memory for %zu bytes", cap), -1;
            in->buf = b;
            in->cap = cap;
        }
        ssize_t r = read(in->fd, in->buf + in->len, in->cap - in->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return sola_errf(e, SOLA_EIO, "stdin: %s", strerror(errno)), -1;
        if (r == 0)
            in->eof = 1;
        in->len += (size_t)r;
    }
    return 0;
}

typedef struct output {
    FILE *f;
    const char *path; /* -o, or NULL for stdout */
    char *tmp;
    long long rows;
    int C;
} output;

static int put_rows(output *o, const float *y, int64_t k, sola_err *e)
{
    if (k <= 0)
        return 0;
    if (fwrite(y, sizeof(float) * (size_t)o->C, (size_t)k, o->f) != (size_t)k || fflush(o->f))
        return sola_errf(e, SOLA_EIO, "%s: %s", o->path ? o->tmp : "stdout",
                         errno == EPIPE ? "the reader closed the pipe" : strerror(errno));
    o->rows += k;
    return 0;
}

/* The -o file's header for T rows, exactly HDR_LEN bytes. */
static void npy_header(char *h, long long T, int C)
{
    memset(h, ' ', HDR_LEN);
    memcpy(h, "\x93NUMPY\x01\x00", 8);
    h[8] = (char)(HDR_LEN - 10);
    h[9] = 0;
    int n = snprintf(h + 10, HDR_LEN - 10, "{'descr': '<f4', 'fortran_order': False, "
                                           "'shape': (%lld, %d), }", T, C);
    h[10 + n] = ' ';
    h[HDR_LEN - 1] = '\n';
}

static int out_open(output *o, const char *path, int C, sola_err *e)
{
    o->C = C;
    o->path = path;
    if (!path) {
        o->f = stdout;
        return 0;
    }
    size_t n = strlen(path) + 32;
    if (!(o->tmp = malloc(n)))
        return sola_errf(e, SOLA_ENOMEM, "out of memory");
    snprintf(o->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    if (!(o->f = fopen(o->tmp, "wb")))
        return sola_errf(e, SOLA_EIO, "%s: %s", o->tmp, strerror(errno));
    char h[HDR_LEN];
    npy_header(h, 0, C);
    if (fwrite(h, 1, HDR_LEN, o->f) != HDR_LEN)
        return sola_errf(e, SOLA_EIO, "%s: %s", o->tmp, strerror(errno));
    return 0;
}

/* ok: complete the -o file and move it into place; else remove it. */
static int out_close(output *o, int ok, sola_err *e)
{
    if (!o->path || !o->f)
        return 0;
    int rc = 0;
    if (ok) {
        char h[HDR_LEN];
        npy_header(h, o->rows, o->C);
        if (fseek(o->f, 0, SEEK_SET) || fwrite(h, 1, HDR_LEN, o->f) != HDR_LEN ||
            fflush(o->f) || fsync(fileno(o->f)))
            rc = sola_errf(e, SOLA_EIO, "%s: %s", o->tmp, strerror(errno));
    }
    if (fclose(o->f) && !rc && ok)
        rc = sola_errf(e, SOLA_EIO, "%s: %s", o->tmp, strerror(errno));
    o->f = NULL;
    if (ok && !rc && rename(o->tmp, o->path))
        rc = sola_errf(e, SOLA_EIO, "%s: %s", o->path, strerror(errno));
    if (!ok || rc)
        unlink(o->tmp);
    return rc;
}

/* n items of a float dtype (kind 'f', size 2/4/8, big-endian or not) to float32. */
static void convert(const unsigned char *src, size_t itemsize, int big, float *dst, size_t n)
{
    int swap = big != (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__);
    if (itemsize == 4 && !swap) {
        memcpy(dst, src, n * 4);
        return;
    }
    for (size_t i = 0; i < n; i++, src += itemsize) {
        unsigned char b[8];
        for (size_t k = 0; k < itemsize; k++)
            b[k] = swap ? src[itemsize - 1 - k] : src[k];
        if (itemsize == 2) {
            uint16_t h;
            memcpy(&h, b, 2);
            dst[i] = sola_half_to_float(h);
        } else if (itemsize == 4) {
            memcpy(&dst[i], b, 4);
        } else {
            double d;
            memcpy(&d, b, 8);
            dst[i] = (float)d;
        }
    }
}

typedef struct run {
    const sola_model *m;
    sola_stream *s;
    sola_ws *ws;
    output out;
    float *y;
    size_t ycap; /* rows */
} run;

/* Pushes x [n, C] (end: the input ended) and writes what became final. */
static int push(run *r, const float *x, int64_t n, int end, const char *where, sola_err *e)
{
    size_t C = (size_t)r->m->C, bad = sola_first_nonfinite(x, (size_t)n * C);
    if (bad < (size_t)n * C)
        return sola_errf(e, SOLA_EFORMAT, "%s: snippet %lld of the sequence, channel %zu is %s "
                                          "(features must be finite)",
                         where, (long long)(sola_stream_received(r->s) + (int64_t)(bad / C)),
                         bad % C, isnan(x[bad]) ? "NaN" : "infinite");
    int64_t k = sola_stream_ready_after(r->s, n, end);
    if ((size_t)k > r->ycap) {
        float *y = realloc(r->y, (size_t)k * C * sizeof(float));
        if (!y)
            return sola_errf(e, SOLA_ENOMEM, "out of memory for %lld rows", (long long)k);
        r->y = y;
        r->ycap = (size_t)k;
    }
    int rc = sola_stream_push(r->s, r->m, x, (int)n, end, r->y, r->ws, NULL, NULL, e);
    return rc ? rc : put_rows(&r->out, r->y, k, e);
}

/* Rows as they come, at most this many per pass: a big array is not held whole. */
#define MAX_ROWS_PER_PUSH 4096

/* stdin as back-to-back .npy arrays. */
static int read_npy_stream(run *r, input *in, sola_err *e)
{
    size_t C = (size_t)r->m->C;
    float *x = NULL;
    int rc = 0;
    for (int arr = 0;; arr++) {
        char where[64];
        snprintf(where, sizeof where, "stdin (array %d, byte %lld)", arr, in->consumed);
        int got = need(in, 12, e);
        if (got < 0)
            return got;
        if (got == 1 && in->len == in->off)
            break; /* input ended between arrays: the sequence is complete */
        if (got == 1 && in->len - in->off < 10)
            return sola_errf(e, SOLA_EFORMAT, "%s: input ended inside an .npy header", where);
        const unsigned char *p = in->buf + in->off;
        if (memcmp(p, "\x93NUMPY", 6))
            return sola_errf(e, SOLA_EFORMAT, "%s: not an .npy array (no \\x93NUMPY magic); "
                                              "for raw float32 rows use --dim C", where);
        size_t pre = p[6] == 1 ? 10 : 12,
               hl = p[6] == 1 ? (size_t)(p[8] | p[9] << 8)
                              : (size_t)p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 |
                                    (size_t)p[11] << 24;
        if (hl > SOLA_NPY_MAX_HEADER)
            return sola_errf(e, SOLA_EFORMAT, "%s: .npy header of %zu bytes is too long", where,
                             hl);
        if ((got = need(in, pre + hl, e)))
            return got < 0 ? got : sola_errf(e, SOLA_EFORMAT, "%s: input ended inside an .npy "
                                                              "header", where);
        sola_npy_info info;
        if ((rc = sola_npy_inspect(in->buf + in->off, pre + hl, where, 0, &info, e)))
            return rc;
        int64_t rows = info.ndim == 1 ? 1 : info.shape[0],
                cols = info.shape[info.ndim - 1];
        if ((info.ndim != 1 && info.ndim != 2) || cols != (int64_t)C)
            return sola_errf(e, SOLA_ESHAPE, "%s: an array of %d dimensions [.., %lld]; a "
                                             "stream takes [n, %zu] or [%zu] (the model's C)",
                             where, info.ndim, (long long)cols, C, C);
        in->off += pre + hl;
        in->consumed += (long long)(pre + hl);
        size_t isz = info.itemsize, rowb = C * isz;
        int big = info.descr[0] == '>';
        if (info.fortran && rows > 1) { /* columns first: the whole array, then rows */
            if ((got = need(in, info.data_len, e)))
                return got < 0 ? got : sola_errf(e, SOLA_EFORMAT, "%s: input ended inside a "
                                                                  "Fortran-order array", where);
            float *f = malloc(info.data_len / isz * sizeof(float) + 1),
                  *xc = malloc(info.data_len / isz * sizeof(float) + 1);
            if (!f || !xc) {
                free(f);
                free(xc);
                return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", where);
            }
            convert(in->buf + in->off, isz, big, f, (size_t)rows * C);
            for (int64_t t = 0; t < rows; t++)
                for (size_t c = 0; c < C; c++)
                    xc[(size_t)t * C + c] = f[c * (size_t)rows + (size_t)t];
            in->off += info.data_len;
            in->consumed += (long long)info.data_len;
            rc = push(r, xc, rows, 0, where, e);
            free(f);
            free(xc);
            if (rc)
                return rc;
            continue;
        }
        if (!x && !(x = malloc(MAX_ROWS_PER_PUSH * C * sizeof(float))))
            return sola_errf(e, SOLA_ENOMEM, "out of memory");
        for (int64_t left = rows; left > 0;) {
            if ((got = need(in, rowb, e))) { /* at least one row, then all that is here */
                free(x);
                return got < 0 ? got : sola_errf(e, SOLA_EFORMAT, "%s: input ended after %lld "
                                                                  "of its %lld rows", where,
                                                 (long long)(rows - left), (long long)rows);
            }
            int64_t k = (int64_t)((in->len - in->off) / rowb);
            if (k > left)
                k = left;
            if (k > MAX_ROWS_PER_PUSH)
                k = MAX_ROWS_PER_PUSH;
            convert(in->buf + in->off, isz, big, x, (size_t)k * C);
            in->off += (size_t)k * rowb;
            in->consumed += (long long)((size_t)k * rowb);
            left -= k;
            if ((rc = push(r, x, k, 0, where, e))) {
                free(x);
                return rc;
            }
        }
    }
    free(x);
    return push(r, NULL, 0, 1, "stdin", e);
}

/* stdin as raw little-endian float32 rows of C. */
static int read_raw_stream(run *r, input *in, sola_err *e)
{
    size_t C = (size_t)r->m->C, rowb = C * 4;
    float *x = malloc(MAX_ROWS_PER_PUSH * rowb);
    if (!x)
        return sola_errf(e, SOLA_ENOMEM, "out of memory");
    int rc = 0;
    for (;;) {
        int got = need(in, rowb, e);
        if (got < 0) {
            rc = got;
            break;
        }
        size_t have = in->len - in->off;
        if (got == 1) {
            if (have)
                rc = sola_errf(e, SOLA_EFORMAT, "stdin: input ended inside a row (%zu bytes of "
                                                "%zu; --dim %zu float32 per row)", have, rowb, C);
            break;
        }
        size_t k = have / rowb < MAX_ROWS_PER_PUSH ? have / rowb : MAX_ROWS_PER_PUSH;
        convert(in->buf + in->off, 4, 0, x, k * C);
        in->off += k * rowb;
        in->consumed += (long long)(k * rowb);
        if ((rc = push(r, x, (int64_t)k, 0, "stdin", e)))
            break;
    }
    free(x);
    return rc ? rc : push(r, NULL, 0, 1, "stdin", e);
}

int cli_refine_stream(const sola_model *m, const char *out_path, int dim, sola_ws *ws)
{
    sola_err e = {0};
    if (dim && dim != m->C) {
        cli_errorf("--dim %d: the model expects C=%d", dim, m->C);
        return EXIT_USAGE;
    }
    if (!out_path && isatty(1)) {
        cli_errorf("--stream writes raw float32 rows to stdout, which is a terminal: pipe it "
                   "to the consumer, redirect it to a file, or give -o OUT.npy");
        return EXIT_USAGE;
    }
    run r = {.m = m, .ws = ws};
    input in = {.fd = 0};
    int rc = 0;
    if (!(r.s = sola_stream_new(m, &e)) || (rc = out_open(&r.out, out_path, m->C, &e))) {
        rc = rc ? rc : e.code;
    } else {
        rc = dim ? read_raw_stream(&r, &in, &e) : read_npy_stream(&r, &in, &e);
    }
    sola_err e2 = {0};
    int crc = out_close(&r.out, rc == 0, rc ? &e2 : &e);
    rc = rc ? rc : crc;
    if (rc)
        cli_errorf("%s", e.msg);
    else
        fprintf(stderr, "sola refine --stream: %lld snippets in, %lld refined out (each "
                        "final %d snippets after it arrived)%s\n",
                (long long)sola_stream_received(r.s), r.out.rows, sola_stream_radius(m),
                sola_refine_batchable(m) ? "" : "; note: this model/backend is exact only to "
                                                 "float32 rounding (refine.h)");
    sola_stream_free(r.s);
    free(r.y);
    free(in.buf);
    free(r.out.tmp);
    return rc ? EXIT_RUNTIME : EXIT_OK;
}
