/* stream.c -- see stream.h. A push is: build the window (zero rows for the kernel's
 * row phase, the kept context, the new rows), refine it as one sequence, copy out the
 * rows that are final and exact, then keep the last 2R input rows. Everything that can
 * fail happens before the stream is touched, so a failed push changes nothing. */
#include "stream.h"

#include <stdlib.h>
#include <string.h>

struct sola_stream {
    int C, R;
    float *ctx;       /* [2R, C]: input rows [received - nctx, received) */
    int nctx;
    int64_t received; /* input rows so far */
    int64_t emitted;  /* refined rows handed out so far */
    int ended;
};

/* Far below any overflow of the row arithmetic here (int64 row counts times C). */
#define STREAM_MAX_ROWS ((int64_t)1 << 62)

int sola_stream_radius(const sola_model *m)
{
    return (m->k1 / 2) * m->d1 + (m->k2 / 2) * m->d2;
}

sola_stream *sola_stream_new(const sola_model *m, sola_err *e)
{
    if (!m || m->C < 1) {
        sola_errf(e, SOLA_EINVAL, "stream: no model");
        return NULL;
    }
    sola_stream *s = calloc(1, sizeof *s);
    if (!s)
        goto nomem;
    s->C = m->C;
    s->R = sola_stream_radius(m);
    size_t n;
    if (s->R > 0) {
        if (sola_mul_size((size_t)2 * (size_t)s->R, (size_t)s->C, &n) ||
            sola_mul_size(n, sizeof(float), &n)) {
            sola_errf(e, SOLA_ETOOBIG, "stream: a context of %d rows of %d floats is too "
                                       "large", 2 * s->R, s->C);
            free(s);
            return NULL;
        }
        if (!(s->ctx = malloc(n)))
            goto nomem;
    }
    return s;
nomem:
    free(s);
    sola_errf(e, SOLA_ENOMEM, "stream: out of memory for the context of a new stream");
    return NULL;
}

void sola_stream_free(sola_stream *s)
{
    if (!s)
        return;
    free(s->ctx);
    free(s);
}

size_t sola_stream_bytes(const sola_stream *s)
{
    return s ? sizeof *s + (size_t)2 * (size_t)s->R * (size_t)s->C * sizeof(float) : 0;
}

int64_t sola_stream_received(const sola_stream *s)
{
    return s->received;
}

int64_t sola_stream_emitted(const sola_stream *s)
{
    return s->emitted;
}

int sola_stream_ended(const sola_stream *s)
{
    return s->ended;
}

/* Index one past the last final row after the sequence reaches `total` rows. */
static int64_t final_end(const sola_stream *s, int64_t total, int end)
{
    if (end)
        return total;
    return total > s->R ? total - s->R : 0;
}

int64_t sola_stream_ready_after(const sola_stream *s, int64_t n, int end)
{
    if (s->ended || n < 0)
        return 0;
    int64_t f = final_end(s, s->received + n, end);
    return f > s->emitted ? f - s->emitted : 0;
}

/* Keeps the last min(received, 2R) input rows after appending x [n, C]. */
static void keep_context(sola_stream *s, const float *x, int n)
{
    int keep = 2 * s->R;
    size_t C = (size_t)s->C;
    if (keep == 0)
        return;
    if (n >= keep) {
        memcpy(s->ctx, x + (size_t)(n - keep) * C, (size_t)keep * C * sizeof(float));
        s->nctx = keep;
        return;
    }
    int old = s->nctx + n > keep ? keep - n : s->nctx; /* context rows that stay */
    memmove(s->ctx, s->ctx + (size_t)(s->nctx - old) * C, (size_t)old * C * sizeof(float));
    if (n > 0)
        memcpy(s->ctx + (size_t)old * C, x, (size_t)n * C * sizeof(float));
    s->nctx = old + n;
}

int sola_stream_push(sola_stream *s, const sola_model *m, const float *x, int n, int end,
                     float *y, sola_ws *ws, sola_stream_refine_fn fn, void *arg, sola_err *e)
{
    if (!s || !m || n < 0 || (n > 0 && !x))
        return sola_errf(e, SOLA_EINVAL, "stream: bad arguments");
    if (s->ended)
        return sola_errf(e, SOLA_EINVAL, "stream: the sequence has ended; start a new one");
    if (m->C != s->C || sola_stream_radius(m) != s->R)
        return sola_errf(e, SOLA_ESHAPE, "stream: the model (C=%d, receptive radius %d) is "
                                         "not the one the stream started with (C=%d, %d)",
                         m->C, sola_stream_radius(m), s->C, s->R);
    if (s->received > STREAM_MAX_ROWS - n)
        return sola_errf(e, SOLA_ETOOBIG, "stream: more than 2^62 rows");
    int64_t total = s->received + n, f0 = s->emitted, f1 = final_end(s, total, end);
    size_t C = (size_t)s->C;
    if (f1 > f0) {
        /* The window [a, total): the receptive field of rows f0..f1-1, cut at the start. */
        int64_t a = f0 - s->R > 0 ? f0 - s->R : 0;
        sola_rowplan plan;
        sola_refine_plan(m, &plan);
        int64_t phase = plan.seq_align > 1 ? a % (int64_t)plan.seq_align : 0;
        int64_t from_ctx = s->received - a, len = phase + (total - a);
        /* the context holds rows [received - nctx, received) and a >= received - 2R */
        if (from_ctx > s->nctx || len > (int64_t)0x7fffffff)
            return sola_errf(e, from_ctx > s->nctx ? SOLA_EINVAL : SOLA_ETOOBIG,
                             "stream: a window of %lld rows cannot be refined",
                             (long long)len);
        size_t bytes;
        if (sola_mul_size((size_t)len, C, &bytes) || sola_mul_size(bytes, sizeof(float), &bytes))
            return sola_errf(e, SOLA_ETOOBIG, "stream: a window of %lld rows is too large",
                             (long long)len);
        float *xw = malloc(bytes), *yw = malloc(bytes);
        if (!xw || !yw) {
            free(xw);
            free(yw);
            return sola_errf(e, SOLA_ENOMEM, "stream: out of memory for a window of %lld rows",
                             (long long)len);
        }
        memset(xw, 0, (size_t)phase * C * sizeof(float));
        if (from_ctx > 0) /* R = 0 keeps no context (ctx is NULL) */
            memcpy(xw + (size_t)phase * C, s->ctx + (size_t)(s->nctx - from_ctx) * C,
                   (size_t)from_ctx * C * sizeof(float));
        if (n > 0)
            memcpy(xw + (size_t)(phase + from_ctx) * C, x, (size_t)n * C * sizeof(float));
        int L = (int)len, rc;
        if (fn)
            rc = fn(arg, m, xw, &L, 1, yw, ws, e);
        else
            rc = sola_refine_batch(m, xw, &L, 1, yw, ws, e);
        if (!rc)
            memcpy(y, yw + (size_t)(phase + f0 - a) * C, (size_t)(f1 - f0) * C * sizeof(float));
        free(xw);
        free(yw);
        if (rc)
            return rc;
    }
    keep_context(s, x, n);
    s->received = total;
    if (f1 > s->emitted)
        s->emitted = f1;
    s->ended = end;
    return 0;
}
