/* sola_layers.c -- forward/backward pairs of the SoLa training step (see sola_layers.h).
 *
 * The FLOPs are in the linear layers (cblas_sgemm); everything else is a streaming
 * loop over memory that is about to be, or has just been, touched by a GEMM. Small
 * reductions (norms, dot products of the loss) use 16 float partial sums, which the
 * compiler vectorises, finished in double: accurate to float rounding, and
 * independent of the batch size. */
#include "sola_layers.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* sum a[c] * b[c], c < n. */
static double dotf(const float *a, const float *b, int n)
{
    float acc[16] = {0};
    int c = 0;
    for (; c + 16 <= n; c += 16)
        for (int l = 0; l < 16; l++)
            acc[l] += a[c + l] * b[c + l];
    double s = 0;
    for (int l = 0; l < 16; l++)
        s += acc[l];
    for (; c < n; c++)
        s += (double)a[c] * b[c];
    return s;
}

void sola_im2col(float *col, const float *inp, const int *src, int R, int IC, int k)
{
    size_t w = (size_t)IC * k;
    for (int r = 0; r < R; r++) {
        float *dst = col + (size_t)r * w;
        const int *s = src + (size_t)r * k;
        if (k == 1) {
            if (s[0] < 0)
                memset(dst, 0, (size_t)IC * sizeof *dst);
            else
                memcpy(dst, inp + (size_t)s[0] * IC, (size_t)IC * sizeof *dst);
            continue;
        }
        /* The weight's layout (OC, IC, k) interleaves taps per input channel, so the
         * row is written c-major; the k source rows are read in step. */
        for (int j = 0; j < k; j++) {
            if (s[j] < 0) {
                for (int c = 0; c < IC; c++)
                    dst[(size_t)c * k + j] = 0.0f;
            } else {
                const float *x = inp + (size_t)s[j] * IC;
                for (int c = 0; c < IC; c++)
                    dst[(size_t)c * k + j] = x[c];
            }
        }
    }
}

void sola_col2im_add(float *dinp, const float *dcol, const int *src, int R, int IC, int k)
{
    size_t w = (size_t)IC * k;
    for (int r = 0; r < R; r++) {
        const float *g = dcol + (size_t)r * w;
        const int *s = src + (size_t)r * k;
        for (int j = 0; j < k; j++) {
            if (s[j] < 0)
                continue;
            float *d = dinp + (size_t)s[j] * IC;
            for (int c = 0; c < IC; c++)
                d[c] += g[(size_t)c * k + j];
        }
    }
}

void sola_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int R, int IC, int OC)
{
    // out is (R, OC), inp is (R, IC), weight is (OC, IC), bias is (OC)
    if (R <= 0)
        return;
    if (bias) {
        for (int r = 0; r < R; r++)
            memcpy(out + (size_t)r * OC, bias, (size_t)OC * sizeof *out);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, OC, IC, 1.0f, inp, IC, weight, IC,
                bias ? 1.0f : 0.0f, out, OC);
}

void sola_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int R, int IC, int OC)
{
    // dout is (R, OC), inp is (R, IC), weight is (OC, IC)
    if (R <= 0) {
        if (dweight)
            memset(dweight, 0, (size_t)OC * IC * sizeof *dweight);
        if (dbias)
            memset(dbias, 0, (size_t)OC * sizeof *dbias);
        return;
    }
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, IC, OC, 1.0f, dout, OC,
                    weight, IC, 0.0f, dinp, IC);
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, R, 1.0f, dout, OC, inp, IC,
                    0.0f, dweight, IC);
    if (dbias) {
        /* Column sums in double rows-outer so the pass streams through dout once. */
        double acc[256];
        for (int o0 = 0; o0 < OC; o0 += 256) {
            int n = OC - o0 < 256 ? OC - o0 : 256;
            memset(acc, 0, sizeof acc);
            for (int r = 0; r < R; r++) {
                const float *d = dout + (size_t)r * OC + o0;
                for (int o = 0; o < n; o++)
                    acc[o] += d[o];
            }
            for (int o = 0; o < n; o++)
                dbias[o0 + o] = (float)acc[o];
        }
    }
}

void sola_relu_forward(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void sola_relu_backward(float *dx, const float *dout, const float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

void sola_normalize_forward(float *z, float *norm, const float *r, int R, int C, float eps)
{
    for (int i = 0; i < R; i++) {
        const float *x = r + (size_t)i * C;
        float *y = z + (size_t)i * C;
        float n = (float)sqrt(dotf(x, x, C));
        norm[i] = n;
        float d = n > eps ? n : eps;
        for (int c = 0; c < C; c++)
            y[c] = x[c] / d;
    }
}

void sola_normalize_backward(float *dr, const float *dz, const float *z, const float *norm,
                             int R, int C, float eps)
{
    for (int i = 0; i < R; i++) {
        const float *g = dz + (size_t)i * C;
        const float *y = z + (size_t)i * C;
        float *d = dr + (size_t)i * C;
        float n = norm[i];
        if (n >= eps && n > 0.0f) {
            /* z = r/|r|: dr = (dz - z (z . dz)) / |r| */
            float zg = (float)dotf(y, g, C);
            float inv = 1.0f / n;
            for (int c = 0; c < C; c++)
                d[c] = (g[c] - y[c] * zg) * inv;
        } else {
            /* |r| below eps: the divisor is the constant eps (clamp_min passes no
             * gradient to the norm). */
            for (int c = 0; c < C; c++)
                d[c] = g[c] / eps;
        }
    }
}

void sola_simbce_target(double *target, int N, double K)
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double d = (double)(i - j);
            target[i * N + j] = i == j ? 1.0 : 1.0 / (1.0 + exp(-K / (d * d)));
        }
}

enum { SB_S, SB_NZ, SB_NG, SB_DC, SB_NCACHE };

double sola_simbce_forward(double *cache, const float *z, const float *g, const double *target,
                           int B, int N, int C, double scale)
{
    /* The clamp bounds are float32 scalars in the reference. */
    const double lo = 1e-5f, hi = 1.0f - 1e-5f;
    double loss = 0.0;
    for (int b = 0; b < B; b++) {
        const float *zb = z + (size_t)b * N * C, *gb = g + (size_t)b * N * C;
        double *cb = cache + (size_t)b * N * N * SB_NCACHE;
        /* norms first (float, as the reference's vector norms), one per row */
        for (int i = 0; i < N; i++) {
            const float *zi = zb + (size_t)i * C, *gi = gb + (size_t)i * C;
            double nz = (float)sqrt(dotf(zi, zi, C)), ng = (float)sqrt(dotf(gi, gi, C));
            for (int j = 0; j < N; j++) {
                cb[((size_t)i * N + j) * SB_NCACHE + SB_NZ] = nz;
                cb[((size_t)j * N + i) * SB_NCACHE + SB_NG] = ng;
            }
        }
        for (int i = 0; i < N; i++) {
            const float *zi = zb + (size_t)i * C;
            for (int j = 0; j < N; j++) {
                double *e = cb + ((size_t)i * N + j) * SB_NCACHE;
                double s = dotf(zi, gb + (size_t)j * C, C);
                double c = s / (e[SB_NZ] * e[SB_NG] + 1e-8);
                double pr = (1.0 + c) * 0.5;
                int inside = pr >= lo && pr <= hi; /* torch.clamp passes gradient here */
                double p = pr < lo ? lo : pr > hi ? hi : pr;
                double t = target[i * N + j];
                loss += -(t * log(p) + (1.0 - t) * log(1.0 - p));
                /* dBCE/dp = (p - t) / (p (1 - p)); dp/dc = 1/2 inside the clamp. */
                e[SB_S] = s;
                e[SB_DC] = inside ? scale * 0.5 * (p - t) / (p * (1.0 - p)) : 0.0;
            }
        }
    }
    return loss * scale;
}

void sola_simbce_backward(float *dg, const double *cache, const float *z, const float *g, int B,
                          int N, int C)
{
    for (int b = 0; b < B; b++) {
        const float *zb = z + (size_t)b * N * C, *gb = g + (size_t)b * N * C;
        const double *cb = cache + (size_t)b * N * N * SB_NCACHE;
        for (int j = 0; j < N; j++) {
            /* c_ij = s_ij / D_ij with D_ij = n_i m_j + 1e-8 and m_j = |g_j|:
             * dc_ij/dg_j = z_i / D_ij - s_ij n_i g_j / (D_ij^2 m_j) */
            double beta = 0.0;
            float *d = dg + ((size_t)b * N + j) * C;
            const float *gj = gb + (size_t)j * C;
            for (int i = 0; i < N; i++) {
                const double *e = cb + ((size_t)i * N + j) * SB_NCACHE;
                double D = e[SB_NZ] * e[SB_NG] + 1e-8;
                if (e[SB_NG] > 0.0)
                    beta += e[SB_DC] * e[SB_S] * e[SB_NZ] / (D * D * e[SB_NG]);
            }
            float fb = (float)beta;
            for (int c = 0; c < C; c++)
                d[c] = -fb * gj[c];
            for (int i = 0; i < N; i++) {
                const double *e = cb + ((size_t)i * N + j) * SB_NCACHE;
                double D = e[SB_NZ] * e[SB_NG] + 1e-8;
                float a = (float)(e[SB_DC] / D);
                const float *zi = zb + (size_t)i * C;
                for (int c = 0; c < C; c++)
                    d[c] += a * zi[c];
            }
        }
    }
}
