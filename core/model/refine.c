/* refine.c -- the SoLa forward pass (docs/spec.md section 3) on the GEMM seam (core/model/gemm.h).
 *
 * A conv of kernel k over time is, per output row t,
 *     y[t, :] = b + sum_j x[t + (j - k/2)*d, :] . W_j          (rows out of range = 0)
 * We do ONE product Z[rows, k*H] = X[rows, Cin] . Wp[Cin, k*H] (Wp = the k taps side by
 * side, prepared once by sola_model_pack) and then, per output row, add the k shifted
 * column blocks of Z that fall inside the same sequence, with bias and relu fused into
 * that pass. Nothing is copied for im2col. For k = 1 the product writes the output
 * directly.
 *
 * The last conv (kernel 1, back to C) is fused with the gate: y is first set to
 * x + tanh(alpha)*b4 and the product accumulates tanh(alpha) * h2 . W4^T into it, so
 * the [T, C] output is touched by one pass plus the product.
 *
 * Batches lay sequences in one pass: the products run over all rows at once and only
 * the shifted sums respect each sequence's row range, so every sequence sees its own
 * zero padding. Every pass -- one sequence or many -- follows the backend's row plan
 * (sola_gemm_rowplan: where sequences start, the pass's row count), which is
 * what makes a row's bits independent of the rest of the pass (refine.h). Rows outside
 * every sequence are zero in x and zeroed again after every conv of kernel > 1 (the
 * shifted sum writes only a sequence's own rows), so they stay finite. */
#include "refine.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "bigbuf.h"

struct sola_ws {
    float *z;    /* [rows, kmax*H] tap products, only when a kernel is > 1 */
    float *h;    /* [2, rows, H]: h1 then h2 */
    float *h1, *h2;
    float *xp, *yp; /* [rows, C] padded copies for sola_refine_batch */
    size_t zcap, hcap, xcap, ycap; /* in floats */
    size_t *offs;   /* sequence offsets for sola_refine_batch */
    int ocap;
};

sola_ws *sola_ws_new(void)
{
    return calloc(1, sizeof(sola_ws));
}

void sola_ws_free(sola_ws *ws)
{
    if (!ws)
        return;
    free(ws->z);
    free(ws->h);
    free(ws->xp);
    free(ws->yp);
    free(ws->offs);
    free(ws);
}

size_t sola_ws_bytes(const sola_ws *ws)
{
    return ws ? (ws->zcap + ws->hcap + ws->xcap + ws->ycap) * sizeof(float) : 0;
}

/* 64-byte aligned buffer of n floats (contents not kept: every call overwrites). */
static int grow(float **p, size_t *cap, size_t n)
{
    if (n <= *cap)
        return 0;
    if (n > SIZE_MAX / sizeof(float))
        return -1;
    float *q = sola_bigbuf_alloc(n * sizeof(float));
    if (!q)
        return -1;
    free(*p);
    *p = q;
    *cap = n;
    return 0;
}

/* Makes room for `rows` rows; returns 0 or SOLA_ENOMEM/SOLA_ETOOBIG. */
static int ws_reserve(sola_ws *ws, const sola_model *m, size_t rows, sola_err *e)
{
    size_t kmax = (size_t)(m->k1 > m->k2 ? m->k1 : m->k2), zn = 0, hn, hn2;
    if (sola_mul_size(rows, (size_t)m->H, &hn) || sola_mul_size(hn, 2, &hn2) ||
        (kmax > 1 && sola_mul_size(hn, kmax, &zn)))
        return sola_errf(e, SOLA_ETOOBIG, "refine: %zu rows of width %d are too many", rows,
                         m->H);
    if (grow(&ws->h, &ws->hcap, hn2) || (kmax > 1 && grow(&ws->z, &ws->zcap, zn)))
        goto nomem;
    ws->h1 = ws->h;
    ws->h2 = ws->h + hn;
    return 0;
nomem:
    return sola_errf(e, SOLA_ENOMEM, "refine: out of memory for %zu rows of width %d", rows,
                     m->H);
}

/* The passes between the products, row by row: each output row is computed from its
 * own rows of the inputs by the same operations in the same order whoever computes it,
 * so they are cut into row ranges shared among the threads of the products
 * (sola_gemm_pool_for) -- with the same bits. ROW_GRAIN rows at least per range: a
 * short pass stays on the calling thread. */
enum { ROW_GRAIN = 32 };

typedef struct rowpass {
    /* bias_relu: y, n, b; shift_sum: z, k, d, offs, lens, nseq as well; gate: x, C, ta */
    float *y;
    const float *z, *b, *x;
    int n, k, d, nseq;
    const size_t *offs;
    const int *lens;
    size_t C;
    float ta;
} rowpass;

static void run_rows(rowpass *p, size_t rows, sola_gemm_range_fn fn)
{
    if (!sola_gemm_pool_for(rows, ROW_GRAIN, fn, p))
        fn(p, 0, rows);
}

/* y[r, :] = relu(y[r, :] + b) for rows [r0, r1) of width n. */
static void bias_relu_rows(void *arg, size_t r0, size_t r1)
{
    const rowpass *p = arg;
    for (size_t r = r0; r < r1; r++) {
        float *yr = p->y + r * (size_t)p->n;
        for (int h = 0; h < p->n; h++) {
            float v = yr[h] + p->b[h];
            yr[h] = v > 0.0f ? v : 0.0f;
        }
    }
}

/* Rows [r0, r1) of a pass's shifted sum: z [rows, k*n] -> y [rows, n]; a row t of
 * sequence i (rows offs[i] .. offs[i] + lens[i]) gets
 * relu(b + sum_j z[t + (j - k/2)*d, block j]) over the rows inside that sequence; a row
 * outside every sequence gets zeros. */
static void shift_sum_rows(void *arg, size_t r0, size_t r1)
{
    const rowpass *p = arg;
    size_t n = (size_t)p->n, zs = (size_t)p->k * n;
    int half = p->k / 2, i = 0;
    /* the first sequence that does not end at or before r0 (offs ascend) */
    int lo = 0, hi = p->nseq;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (p->offs[mid] + (size_t)p->lens[mid] <= r0)
            lo = mid + 1;
        else
            hi = mid;
    }
    i = lo;
    for (size_t r = r0; r < r1; r++) {
        float *yr = p->y + r * n;
        while (i < p->nseq && p->offs[i] + (size_t)p->lens[i] <= r)
            i++;
        if (i == p->nseq || r < p->offs[i]) { /* a gap */
            memset(yr, 0, n * sizeof(float));
            continue;
        }
        long t = (long)(r - p->offs[i]), L = p->lens[i];
        const float *z = p->z + p->offs[i] * zs;
        memcpy(yr, p->b, n * sizeof(float));
        for (int j = 0; j < p->k; j++) {
            long tt = t + (long)(j - half) * p->d;
            if (tt < 0 || tt >= L)
                continue;
            const float *zr = z + (size_t)tt * zs + (size_t)j * n;
            for (size_t h = 0; h < n; h++)
                yr[h] += zr[h];
        }
        for (size_t h = 0; h < n; h++)
            yr[h] = yr[h] > 0.0f ? yr[h] : 0.0f;
    }
}

/* Rows [r0, r1) of y = x + ta * b4 (the gate's start; y may be x). */
static void gate_rows(void *arg, size_t r0, size_t r1)
{
    const rowpass *p = arg;
    for (size_t r = r0; r < r1; r++) {
        const float *xr = p->x + r * p->C;
        float *yr = p->y + r * p->C;
        for (size_t c = 0; c < p->C; c++)
            yr[c] = xr[c] + p->ta * p->b[c];
    }
}

/* relu(conv(x)) for the sequences lens[0..n) at rows offs[0..n) of x [rows, cin];
 * g the prepared taps [cin, k*cout], out [rows, cout]. Rows outside every sequence:
 * for k = 1 relu(b + x.W) (finite, never read by a sequence), for k > 1 zero. */
static int conv_relu(const float *x, size_t rows, const sola_gemm_w *g, const float *b,
                     int cout, int k, int d, const size_t *offs, const int *lens, int n,
                     float *z, float *out, sola_err *e)
{
    int rc;
    rowpass p = {.y = out, .b = b, .n = cout};
    if (k == 1) {
        if ((rc = sola_gemm_w_rows(g, rows, x, 1.0f, out, e)))
            return rc;
        run_rows(&p, rows, bias_relu_rows);
        return 0;
    }
    if ((rc = sola_gemm_w_rows(g, rows, x, 1.0f, z, e)))
        return rc;
    p.z = z, p.k = k, p.d = d, p.offs = offs, p.lens = lens, p.nseq = n;
    run_rows(&p, rows, shift_sum_rows);
    return 0;
}

static int check_model(const sola_model *m, sola_err *e)
{
    if (!m || !m->g0 || !m->g2 || !m->g4)
        return sola_errf(e, SOLA_EINVAL, "refine: model is not packed (call sola_model_pack)");
    return 0;
}

void sola_refine_plan(const sola_model *m, sola_rowplan *p)
{
    memset(p, 0, sizeof *p);
    if (!m || !m->g0 || !m->g2 || !m->g4)
        return;
    const sola_gemm_w *ops[3] = {m->g0, m->g2, m->g4};
    sola_gemm_rowplan(ops, 3, p);
}

int sola_refine_batchable(const sola_model *m)
{
    sola_rowplan p;
    sola_refine_plan(m, &p);
    return p.exact;
}

int sola_refine_layout(const sola_model *m, const int *lens, int n, size_t *offs,
                       size_t *prows, sola_err *e)
{
    if (n < 1 || !lens || !m)
        return sola_errf(e, SOLA_EINVAL, "refine: need at least one sequence");
    int rc = check_model(m, e);
    if (rc)
        return rc;
    sola_rowplan p;
    sola_refine_plan(m, &p);
    size_t r = 0, a = p.seq_align ? p.seq_align : 1;
    for (int i = 0; i < n; i++) {
        if (lens[i] < 1)
            return sola_errf(e, SOLA_ESHAPE, "refine: sequence %d has length %d (must be >= 1)",
                             i, lens[i]);
        if (offs)
            offs[i] = r;
        r += ((size_t)lens[i] + a - 1) / a * a;
        if (r > (size_t)INT_MAX / 2)
            return sola_errf(e, SOLA_ETOOBIG, "refine: %zu rows in one batch are too many", r);
    }
    *prows = sola_rowplan_rows(&p, r);
    return 0;
}

int sola_refine_padded(const sola_model *m, const float *xp, const size_t *offs,
                       const int *lens, int n, size_t prows, float *yp, sola_ws *ws,
                       sola_err *e)
{
    int rc = check_model(m, e);
    if (rc)
        return rc;
    if (n < 1 || !lens || !offs || !xp || !yp || !ws || prows > INT_MAX)
        return sola_errf(e, SOLA_EINVAL, "refine: need at least one sequence, input and output");
    for (int i = 0; i < n; i++) {
        if (lens[i] < 1 || offs[i] + (size_t)lens[i] > prows)
            return sola_errf(e, SOLA_ESHAPE, "refine: sequence %d (rows %zu + %d) is outside "
                                             "the %zu-row layout", i, offs[i], lens[i], prows);
        /* the layout's order (sola_refine_layout), which the row passes rely on */
        if (i > 0 && offs[i] < offs[i - 1] + (size_t)lens[i - 1])
            return sola_errf(e, SOLA_ESHAPE, "refine: sequence %d (rows %zu + %d) starts "
                             "before sequence %d ends (the layout puts them in order, apart)",
                             i, offs[i], lens[i], i - 1);
    }
    size_t C = (size_t)m->C, total;
    if (sola_mul_size(prows, C, &total))
        return sola_errf(e, SOLA_ETOOBIG, "refine: %zu x %zu floats overflow", prows, C);

    /* tanh(0) = 0: the identity, exactly, without touching the weights (in place, the
     * rows already are the output). */
    float ta = tanhf(m->alpha[0]);
    if (ta == 0.0f) {
        if (yp != xp)
            memcpy(yp, xp, total * sizeof(float));
        return 0;
    }
    if ((rc = ws_reserve(ws, m, prows, e)))
        return rc;

    if ((rc = conv_relu(xp, prows, m->g0, m->b0, m->H, m->k1, m->d1, offs, lens, n, ws->z,
                        ws->h1, e)) ||
        (rc = conv_relu(ws->h1, prows, m->g2, m->b2, m->H, m->k2, m->d2, offs, lens, n, ws->z,
                        ws->h2, e)))
        return rc;

    /* y = x + ta*b4, then y += ta * h2 . W4^T  (W4 is [C, H]: no repack needed) */
    rowpass p = {.y = yp, .x = xp, .b = m->b4, .C = C, .ta = ta};
    run_rows(&p, prows, gate_rows);
    return sola_gemm_w_rows(m->g4, prows, ws->h2, ta, yp, e);
}

int sola_refine_batch(const sola_model *m, const float *x, const int *lens, int n, float *y,
                      sola_ws *ws, sola_err *e)
{
    int rc = check_model(m, e);
    if (rc)
        return rc;
    if (n < 1 || !lens || !x || !y || !ws)
        return sola_errf(e, SOLA_EINVAL, "refine: need at least one sequence, input and output");
    if (n > ws->ocap) {
        size_t *o = realloc(ws->offs, sizeof *o * (size_t)n);
        if (!o)
            return sola_errf(e, SOLA_ENOMEM, "refine: out of memory for %d sequences", n);
        ws->offs = o;
        ws->ocap = n;
    }
    size_t prows, C = (size_t)m->C, total;
    if ((rc = sola_refine_layout(m, lens, n, ws->offs, &prows, e)))
        return rc;
    if (sola_mul_size(prows, C, &total))
        return sola_errf(e, SOLA_ETOOBIG, "refine: %zu x %zu floats overflow", prows, C);
    if (n == 1 && prows == (size_t)lens[0]) /* the layout is x itself: no copies */
        return sola_refine_padded(m, x, ws->offs, lens, 1, prows, y, ws, e);
    if (grow(&ws->xp, &ws->xcap, total) || grow(&ws->yp, &ws->ycap, total))
        return sola_errf(e, SOLA_ENOMEM, "refine: out of memory for %zu rows of width %zu",
                         prows, C);
    /* the padded copies cost two passes over [T, C], ~2% of the GEMMs at T = 1000 */
    size_t r = 0, src = 0;
    for (int i = 0; i < n; i++) {
        size_t o = ws->offs[i], L = (size_t)lens[i];
        memset(ws->xp + r * C, 0, (o - r) * C * sizeof(float));
        memcpy(ws->xp + o * C, x + src * C, L * C * sizeof(float));
        r = o + L;
        src += L;
    }
    memset(ws->xp + r * C, 0, (prows - r) * C * sizeof(float));
    if ((rc = sola_refine_padded(m, ws->xp, ws->offs, lens, n, prows, ws->yp, ws, e)))
        return rc;
    src = 0;
    for (int i = 0; i < n; i++) {
        memcpy(y + src * C, ws->yp + ws->offs[i] * C, (size_t)lens[i] * C * sizeof(float));
        src += (size_t)lens[i];
    }
    return 0;
}

int sola_refine(const sola_model *m, const float *x, int T, float *y, sola_ws *ws, sola_err *e)
{
    if (T < 1)
        return sola_errf(e, SOLA_ESHAPE, "refine: sequence length %d (must be >= 1)", T);
    return sola_refine_batch(m, x, &T, 1, y, ws, e);
}

double sola_refine_flops(const sola_model *m, int T)
{
    double t = T, C = m->C, H = m->H;
    return 2.0 * t * (C * H * m->k1 + H * H * m->k2 + H * C);
}
