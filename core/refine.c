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
 * on where it falls in the kernel's blocking (rows in a partial block take a tail
 * kernel), so a batched result equals the separate call to float32 rounding (a few
 * ulp), not bit for bit. */
#include "refine.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sola_ws {
    float *z;    /* [rows, kmax*H] tap products, only when a kernel is > 1 */
    float *h;    /* [2, rows, H]: h1 then h2 */
    float *h1, *h2;
    size_t zcap, hcap; /* in floats */
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
    free(ws);
}

size_t sola_ws_bytes(const sola_ws *ws)
{
    return ws ? (ws->zcap + ws->hcap) * sizeof(float) : 0;
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

/* relu(conv(x)) for the sequences lens[0..n) laid end to end in x [rows, cin];
 * wp [cin, k*cout] packed taps, out [rows, cout]. */
static void conv_relu(const float *x, int rows, int cin, const float *wp, const float *b,
                      int cout, int k, int d, const int *lens, int n, float *z, float *out)
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
    size_t r0 = 0;
    for (int i = 0; i < n; i++) {
        shift_sum_relu(z + r0 * (size_t)kc, lens[i], k, d, cout, b, out + r0 * (size_t)cout);
        r0 += (size_t)lens[i];
    }
}

static int check_model(const sola_model *m, sola_err *e)
{
    if (!m || !m->w0p || !m->w2p)
        return sola_errf(e, SOLA_EINVAL, "refine: model is not packed (call sola_model_pack)");
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
    size_t rows = 0;
    for (int i = 0; i < n; i++) {
        if (lens[i] < 1)
            return sola_errf(e, SOLA_ESHAPE, "refine: sequence %d has length %d (must be >= 1)",
                             i, lens[i]);
        rows += (size_t)lens[i];
    }
    if (rows > INT_MAX)
        return sola_errf(e, SOLA_ETOOBIG, "refine: %zu rows in one batch are too many", rows);
    size_t C = (size_t)m->C, H = (size_t)m->H, total;
    if (sola_mul_size(rows, C, &total))
        return sola_errf(e, SOLA_ETOOBIG, "refine: %zu x %zu floats overflow", rows, C);

    /* tanh(0) = 0: the identity, exactly, without touching the weights. */
    float ta = tanhf(m->alpha[0]);
    if (ta == 0.0f) {
        memcpy(y, x, total * sizeof(float));
        return 0;
    }
    if ((rc = ws_reserve(ws, m, rows, e)))
        return rc;

    conv_relu(x, (int)rows, m->C, m->w0p, m->b0, m->H, m->k1, m->d1, lens, n, ws->z, ws->h1);
    conv_relu(ws->h1, (int)rows, m->H, m->w2p, m->b2, m->H, m->k2, m->d2, lens, n, ws->z,
              ws->h2);

    /* y = x + ta*b4, then y += ta * h2 . W4^T  (W4 is [C, H]: no repack needed) */
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        float *yr = y + r * C;
        for (size_t c = 0; c < C; c++)
            yr[c] = xr[c] + ta * m->b4[c];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, m->C, m->H, ta, ws->h2,
                (int)H, m->w4, (int)H, 1.0f, y, m->C);
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
