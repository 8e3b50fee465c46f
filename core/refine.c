/* refine.c -- the SoLa forward pass (SPEC 3) on OpenBLAS.
 *
 * A conv of kernel k over time is, per output row t,
 *     y[t, :] = b + sum_j x[t + (j - k/2)*d, :] . W_j          (rows out of range = 0)
 * We do ONE sgemm Z[rows, k*H] = X[rows, Cin] . Wp[Cin, k*H] (Wp = the k taps side by
 * side, built by sola_model_pack) and then, per output row, add the k shifted column
 * blocks of Z that fall inside the same sequence, with bias and relu fused into that
 * pass. Nothing is copied for im2col, and one big GEMM keeps OpenBLAS in its efficient
 * regime even for short sequences. For k = 1 the GEMM writes the output directly.
 *
 * The last conv (kernel 1, back to C) is fused with the gate: y is first set to
 * x + tanh(alpha)*b4 and the GEMM accumulates tanh(alpha) * h2 . W4^T into it
 * (beta = 1), so the [T, C] output is touched by one pass plus the GEMM.
 *
 * Batches lay sequences end to end: the GEMMs run over all rows at once and only the
 * shifted sums respect each sequence's row range, so every sequence sees its own zero
 * padding. OpenBLAS computes a GEMM row with different instruction sequences depending
 * on where it falls in the kernel's blocking: rows in a partial block of the kernel's
 * unroll take a tail kernel, and with several threads the rows are cut into
 * 2 x threads slices (level3_thread.c), each ending in its own partial block. So every
 * pass -- one sequence or many -- uses the same padded layout (sola_refine_layout):
 * each sequence starts on a multiple of the kernel's row block (12 for the Haswell
 * kernels, 4 for SkylakeX/Cooperlake's) and the total is a multiple of
 * block x 2 x threads, so every row lands in a full block at the same offset in
 * both cases and a batched sequence is bit-identical to its own call (verified over
 * lengths 1..300, k2 = 1 and 3, 1 and 2 threads, both kernel sets: tests/test_batching.c).
 * The rows between sequences are zero in x and zeroed again after every conv of kernel
 * > 1 (the shifted sum writes only a sequence's own rows), so they stay finite. */
#include "refine.h"

#include <cblas.h>
#include <limits.h>
#include <stdatomic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    float *q = aligned_alloc(64, bytes);
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

/* y[r, :] = relu(y[r, :] + b) for `rows` rows of width n. */
static void bias_relu(float *y, size_t rows, int n, const float *b)
{
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * (size_t)n;
        for (int h = 0; h < n; h++) {
            float v = yr[h] + b[h];
            yr[h] = v > 0.0f ? v : 0.0f;
        }
    }
}

/* One sequence's shifted sum: z [L, k*n] (this sequence's rows of Z) -> y [L, n],
 * y[t] = relu(b + sum_j z[t + (j - k/2)*d, block j]) over rows inside [0, L). */
static void shift_sum_relu(const float *z, int L, int k, int d, int n, const float *b,
                           float *y)
{
    size_t zs = (size_t)k * (size_t)n;
    int half = k / 2;
    for (int t = 0; t < L; t++) {
        float *yr = y + (size_t)t * (size_t)n;
        memcpy(yr, b, (size_t)n * sizeof(float));
        for (int j = 0; j < k; j++) {
            long tt = (long)t + (long)(j - half) * d;
            if (tt < 0 || tt >= L)
                continue;
            const float *zr = z + (size_t)tt * zs + (size_t)j * (size_t)n;
            for (int h = 0; h < n; h++)
                yr[h] += zr[h];
        }
        for (int h = 0; h < n; h++)
            yr[h] = yr[h] > 0.0f ? yr[h] : 0.0f;
    }
}

/* relu(conv(x)) for the sequences lens[0..n) at rows offs[0..n) of x [rows, cin];
 * wp [cin, k*cout] packed taps, out [rows, cout]. Rows outside every sequence: for
 * k = 1 relu(b + x.W) (finite, never read by a sequence), for k > 1 zero. */
static void conv_relu(const float *x, int rows, int cin, const float *wp, const float *b,
                      int cout, int k, int d, const size_t *offs, const int *lens, int n,
                      float *z, float *out)
{
    if (k == 1) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cout, cin, 1.0f, x, cin, wp,
                    cout, 0.0f, out, cout);
        bias_relu(out, (size_t)rows, cout, b);
        return;
    }
    int kc = k * cout;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, kc, cin, 1.0f, x, cin, wp, kc,
                0.0f, z, kc);
    size_t r = 0;
    for (int i = 0; i <= n; i++) {
        size_t r0 = i < n ? offs[i] : (size_t)rows;
        if (r0 > r) /* the gap before this sequence (or after the last) */
            memset(out + r * (size_t)cout, 0, (r0 - r) * (size_t)cout * sizeof(float));
        if (i == n)
            break;
        shift_sum_relu(z + r0 * (size_t)kc, lens[i], k, d, cout, b, out + r0 * (size_t)cout);
        r = r0 + (size_t)lens[i];
    }
}

static int check_model(const sola_model *m, sola_err *e)
{
    if (!m || !m->w0p || !m->w2p)
        return sola_errf(e, SOLA_EINVAL, "refine: model is not packed (call sola_model_pack)");
    return 0;
}

int sola_refine_seq_align(void)
{
    /* The rows of a GEMM micro-kernel block: 12 for the Haswell kernels (also used on
     * Zen), 4 for SkylakeX/Cooperlake's; 12 is a multiple of both, so unknown kernel
     * sets get 12 (tests/test_batching.c checks whatever this machine runs). The name
     * is fixed once OpenBLAS has loaded. Compute threads (the batcher's, the uv pool's)
     * ask concurrently: every one computes the same value, so a relaxed atomic is all
     * the first call needs (a plain static was a data race, found by TSan). */
    static _Atomic int align;
    int a = atomic_load_explicit(&align, memory_order_relaxed);
    if (!a) {
        const char *c = openblas_get_corename();
        a = c && (!strcasecmp(c, "skylakex") || !strcasecmp(c, "cooperlake")) ? 4 : 12;
        atomic_store_explicit(&align, a, memory_order_relaxed);
    }
    return a;
}

/* Row quantum of the whole pass: with t BLAS threads OpenBLAS cuts the rows into up
 * to t parts, each halved again (DIVIDE_RATE 2); every cut must fall on a multiple of
 * the block. With t > 2 the part count may be any of 1..t, hence the lcm; beyond 4
 * threads this is not verified (and the padding grows), so it stays at 4's. */
static int total_align(void)
{
    int t = openblas_get_num_threads(), a = sola_refine_seq_align();
    if (t <= 1)
        return a;
    static const int lcm[] = {1, 1, 2, 6, 12};
    return a * 2 * lcm[t < 4 ? t : 4];
}

/* Fewest rows of a pass: OpenBLAS (0.3.21, SkylakeX/Cooperlake kernels) sends a GEMM
 * with M*N*K <= 100^3 to a separate small-matrix kernel with its own rounding, so a
 * short sequence alone would be computed differently from the same rows in a batch.
 * Every GEMM of the pass is kept above that size, with a margin of 2 -- unless that
 * takes more than 1024 rows or 4 M floats of workspace (a small model: C = H = 1 with
 * k1 = 255 would ask for 2 GB, docs/reliability.md F5); such a model is not padded and
 * not batched (sola_refine_batchable), so its passes stay separate and identical. */
static size_t min_rows(const sola_model *m)
{
    double C = m->C, H = m->H, mk = C * H * m->k1;
    if (H * H * m->k2 < mk)
        mk = H * H * m->k2;
    if (C * H < mk)
        mk = C * H;
    double rows = floor(2e6 / mk) + 1;
    double kmax = m->k1 > m->k2 ? m->k1 : m->k2;
    if (rows > 1024 || rows * (kmax * H + 2 * H + 2 * C) > 4.0 * 1024 * 1024)
        return 0;
    return (size_t)rows;
}

int sola_refine_batchable(const sola_model *m)
{
    if (min_rows(m) == 0) /* too small to keep off the small-matrix path */
        return 0;
    /* with several threads OpenBLAS may also cut the output columns in halves, chosen
     * by the row count; each half must be whole micro-kernel blocks (<= 32 columns) */
    return openblas_get_num_threads() <= 1 || (m->C % 64 == 0 && m->H % 64 == 0);
}

int sola_refine_layout(const sola_model *m, const int *lens, int n, size_t *offs,
                       size_t *prows, sola_err *e)
{
    if (n < 1 || !lens || !m)
        return sola_errf(e, SOLA_EINVAL, "refine: need at least one sequence");
    size_t r = 0, a = (size_t)sola_refine_seq_align(), R = (size_t)total_align();
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
    size_t lo = min_rows(m);
    if (r < lo)
        r = lo;
    *prows = (r + R - 1) / R * R;
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
    for (int i = 0; i < n; i++)
        if (lens[i] < 1 || offs[i] + (size_t)lens[i] > prows)
            return sola_errf(e, SOLA_ESHAPE, "refine: sequence %d (rows %zu + %d) is outside "
                                             "the %zu-row layout", i, offs[i], lens[i], prows);
    size_t C = (size_t)m->C, H = (size_t)m->H, total;
    if (sola_mul_size(prows, C, &total))
        return sola_errf(e, SOLA_ETOOBIG, "refine: %zu x %zu floats overflow", prows, C);
    int rows = (int)prows;

    /* tanh(0) = 0: the identity, exactly, without touching the weights. */
    float ta = tanhf(m->alpha[0]);
    if (ta == 0.0f) {
        memcpy(yp, xp, total * sizeof(float));
        return 0;
    }
    if ((rc = ws_reserve(ws, m, prows, e)))
        return rc;

    conv_relu(xp, rows, m->C, m->w0p, m->b0, m->H, m->k1, m->d1, offs, lens, n, ws->z, ws->h1);
    conv_relu(ws->h1, rows, m->H, m->w2p, m->b2, m->H, m->k2, m->d2, offs, lens, n, ws->z,
              ws->h2);

    /* y = x + ta*b4, then y += ta * h2 . W4^T  (W4 is [C, H]: no repack needed) */
    for (size_t r = 0; r < prows; r++) {
        const float *xr = xp + r * C;
        float *yr = yp + r * C;
        for (size_t c = 0; c < C; c++)
            yr[c] = xr[c] + ta * m->b4[c];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, m->C, m->H, ta, ws->h2, (int)H,
                m->w4, (int)H, 1.0f, yp, m->C);
    return 0;
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
