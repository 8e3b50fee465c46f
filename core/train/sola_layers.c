/* sola_layers.c -- forward/backward pairs of the SoLa training step (see sola_layers.h).
 *
 * The FLOPs are in the linear layers (sola_sgemm, core/model/gemm.h); everything else is a
 * streaming loop over memory that is about to be, or has just been, touched by a GEMM. Small
 * reductions (norms, dot products of the loss) use 16 float partial sums, which the
 * compiler vectorises, finished in double: accurate to float rounding, and
 * independent of the batch size. */
#include "sola_layers.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"

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

typedef struct {
    sola_range_fn fn;
    void *arg;
    size_t b, e;
} par_job;

static void *par_run(void *p)
{
    par_job *j = p;
    j->fn(j->arg, j->b, j->e);
    return NULL;
}

void sola_parallel_for(size_t n, size_t grain, sola_range_fn fn, void *arg)
{
    enum { MAXT = 16 };
    if (sola_gemm_team_for(n, grain, fn, arg))
        return; /* on the GEMMs' own threads (oneDNN's OpenMP team) */
    int nt = sola_gemm_threads();
    if (grain < 1)
        grain = 1;
    if (nt > MAXT)
        nt = MAXT;
    if ((size_t)nt > n / grain)
        nt = (int)(n / grain);
    if (nt < 2) {
        if (n)
            fn(arg, 0, n);
        return;
    }
    par_job jobs[MAXT];
    pthread_t th[MAXT];
    int started[MAXT] = {0};
    for (int i = 0; i < nt; i++) {
        jobs[i] = (par_job){fn, arg, n * (size_t)i / (size_t)nt, n * (size_t)(i + 1) / (size_t)nt};
        if (i > 0)
            started[i] = pthread_create(&th[i], NULL, par_run, &jobs[i]) == 0;
    }
    par_run(&jobs[0]);
    for (int i = 1; i < nt; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        else
            par_run(&jobs[i]); /* could not start a thread: do it here */
    }
}

/* The elementwise passes of the training step run on the GEMMs' own team when the
 * backend lends it (oneDNN: its OpenMP team; sola_gemm_team_for), else on the calling
 * thread: with OpenBLAS, splitting them over 2 threads of our own made them 2x SLOWER
 * (im2col 22 ms vs 11 ms at B = 256, C = 2048), because right after each GEMM
 * OpenBLAS's worker thread busy-waits for more work on the other core. */
void sola_pass_for(size_t n, size_t grain, sola_range_fn fn, void *arg)
{
    if (!sola_gemm_team_for(n, grain, fn, arg) && n)
        fn(arg, 0, n);
}

typedef struct {
    float *col;
    const float *inp;
    const int *src;
    const float *zeros; /* IC zeros: the padding row */
    int IC, k;
} im2col_job;

static void im2col_rows(void *p, size_t r0, size_t r1)
{
    const im2col_job *a = p;
    const int IC = a->IC, k = a->k;
    size_t w = (size_t)IC * k;
    float *col = a->col;
    const float *inp = a->inp;
    for (size_t r = r0; r < r1; r++) {
        float *dst = col + r * w;
        const int *s = a->src + r * k;
        if (k == 1) {
            if (s[0] < 0)
                memset(dst, 0, (size_t)IC * sizeof *dst);
            else
                memcpy(dst, inp + (size_t)s[0] * IC, (size_t)IC * sizeof *dst);
            continue;
        }
        /* The weight's layout (OC, IC, k) interleaves taps per input channel, so the
         * row is written c-major, reading the k source rows in step. */
        const float *rows[256];
        for (int j = 0; j < k; j++)
            rows[j] = s[j] < 0 ? a->zeros : inp + (size_t)s[j] * IC;
        for (int c = 0; c < IC; c++)
            for (int j = 0; j < k; j++)
                dst[(size_t)c * k + j] = rows[j][c];
    }
}

void sola_im2col(float *col, const float *inp, const int *src, int R, int IC, int k)
{
    float *zeros = NULL;
    if (k > 1 && !(zeros = calloc((size_t)IC, sizeof *zeros))) {
        /* no memory for a padding row: write zeros tap by tap instead */
        for (int r = 0; r < R; r++)
            for (int j = 0; j < k; j++) {
                int sr = src[(size_t)r * k + j];
                for (int c = 0; c < IC; c++)
                    col[((size_t)r * IC + c) * k + j] = sr < 0 ? 0.0f : inp[(size_t)sr * IC + c];
            }
        return;
    }
    im2col_job a = {col, inp, src, zeros, IC, k};
    sola_pass_for((size_t)R, sola_grain((size_t)IC * k), im2col_rows, &a);
    free(zeros);
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
    sola_sgemm(0, 1, R, OC, IC, 1.0f, inp, IC, weight, IC, bias ? 1.0f : 0.0f, out, OC);
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
        sola_sgemm(0, 0, R, IC, OC, 1.0f, dout, OC, weight, IC, 0.0f, dinp, IC);
    if (dweight)
        sola_sgemm(1, 0, OC, IC, R, 1.0f, dout, OC, inp, IC, 0.0f, dweight, IC);
    if (dbias) {
        /* column sums = dout^T . ones, a (threaded) product streaming dout once */
        float *ones = malloc((size_t)R * sizeof *ones);
        if (ones) {
            for (int r = 0; r < R; r++)
                ones[r] = 1.0f;
            sola_sgemm(1, 0, OC, 1, R, 1.0f, dout, OC, ones, 1, 0.0f, dbias, 1);
            free(ones);
        } else {
            memset(dbias, 0, (size_t)OC * sizeof *dbias);
            for (int r = 0; r < R; r++)
                for (int o = 0; o < OC; o++)
                    dbias[o] += dout[(size_t)r * OC + o];
        }
    }
}

typedef struct {
    float *x;
    const float *dout, *out;
} relu_job;

static void relu_fwd_range(void *p, size_t b, size_t e)
{
    float *x = ((relu_job *)p)->x;
    for (size_t i = b; i < e; i++)
        x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void relu_bwd_range(void *p, size_t b, size_t e)
{
    const relu_job *a = p;
    for (size_t i = b; i < e; i++)
        a->x[i] = a->out[i] > 0.0f ? a->dout[i] : 0.0f;
}

void sola_relu_forward(float *x, size_t n)
{
    relu_job a = {x, NULL, NULL};
    sola_pass_for(n, 1 << 16, relu_fwd_range, &a);
}

void sola_relu_backward(float *dx, const float *dout, const float *out, size_t n)
{
    relu_job a = {dx, dout, out};
    sola_pass_for(n, 1 << 16, relu_bwd_range, &a);
}

typedef struct {
    float *out, *norm;
    const float *in, *z, *normc;
    int C;
    float eps;
} norm_job;

static void norm_fwd_rows(void *p, size_t r0, size_t r1)
{
    const norm_job *a = p;
    const int C = a->C;
    for (size_t i = r0; i < r1; i++) {
        const float *x = a->in + i * C;
        float *y = a->out + i * C;
        float n = (float)sqrt(dotf(x, x, C));
        a->norm[i] = n;
        float d = n > a->eps ? n : a->eps;
        for (int c = 0; c < C; c++)
            y[c] = x[c] / d;
    }
}

static void norm_bwd_rows(void *p, size_t r0, size_t r1)
{
    const norm_job *a = p;
    const int C = a->C;
    for (size_t i = r0; i < r1; i++) {
        const float *g = a->in + i * C;
        const float *y = a->z + i * C;
        float *d = a->out + i * C;
        float n = a->normc[i];
        if (n >= a->eps && n > 0.0f) {
            /* z = r/|r|: dr = (dz - z (z . dz)) / |r| */
            float zg = (float)dotf(y, g, C);
            float inv = 1.0f / n;
            for (int c = 0; c < C; c++)
                d[c] = (g[c] - y[c] * zg) * inv;
        } else {
            /* |r| below eps: the divisor is the constant eps (clamp_min passes no
             * gradient to the norm). */
            for (int c = 0; c < C; c++)
                d[c] = g[c] / a->eps;
        }
    }
}

void sola_normalize_forward(float *z, float *norm, const float *r, int R, int C, float eps)
{
    norm_job a = {.out = z, .norm = norm, .in = r, .C = C, .eps = eps};
    sola_pass_for((size_t)R, sola_grain((size_t)C), norm_fwd_rows, &a);
}

void sola_normalize_backward(float *dr, const float *dz, const float *z, const float *norm,
                             int R, int C, float eps)
{
    norm_job a = {.out = dr, .in = dz, .z = z, .normc = norm, .C = C, .eps = eps};
    sola_pass_for((size_t)R, sola_grain((size_t)C), norm_bwd_rows, &a);
}

void sola_simbce_target(double *target, int N, double K)
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double d = (double)(i - j);
            target[i * N + j] = i == j ? 1.0 : 1.0 / (1.0 + exp(-K / (d * d)));
        }
}

enum { SB_S, SB_NZ, SB_NG, SB_DC, SB_BCE, SB_NCACHE };
_Static_assert((int)SB_NCACHE == (int)SOLA_SIMBCE_CACHE, "cache layout");

typedef struct {
    double *cache;
    const float *z, *g;
    const double *target;
    float *dg;
    int N, C;
    double scale;
} simbce_job;

static void simbce_fwd_windows(void *p, size_t b0, size_t b1)
{
    const simbce_job *a = p;
    const int N = a->N, C = a->C;
    /* The clamp bounds are float32 scalars in the reference. */
    const double lo = 1e-5f, hi = 1.0f - 1e-5f;
    for (size_t b = b0; b < b1; b++) {
        const float *zb = a->z + b * N * C, *gb = a->g + b * N * C;
        double *cb = a->cache + b * N * N * SB_NCACHE;
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
                double pc = pr < lo ? lo : pr > hi ? hi : pr;
                double t = a->target[i * N + j];
                e[SB_S] = s;
                e[SB_BCE] = -(t * log(pc) + (1.0 - t) * log(1.0 - pc));
                /* dBCE/dp = (p - t) / (p (1 - p)); dp/dc = 1/2 inside the clamp. */
                e[SB_DC] = inside ? a->scale * 0.5 * (pc - t) / (pc * (1.0 - pc)) : 0.0;
            }
        }
    }
}

double sola_simbce_forward(double *cache, const float *z, const float *g, const double *target,
                           int B, int N, int C, double scale)
{
    simbce_job a = {cache, z, g, target, NULL, N, C, scale};
    sola_pass_for((size_t)B, sola_grain((size_t)N * N * C), simbce_fwd_windows, &a);
    /* summed in a fixed order: the loss does not depend on the thread count */
    double loss = 0.0;
    for (size_t k = 0; k < (size_t)B * N * N; k++)
        loss += cache[k * SB_NCACHE + SB_BCE];
    return loss * scale;
}

static void simbce_bwd_windows(void *p, size_t b0, size_t b1)
{
    const simbce_job *a = p;
    const int N = a->N, C = a->C;
    for (size_t b = b0; b < b1; b++) {
        const float *zb = a->z + b * N * C, *gb = a->g + b * N * C;
        const double *cb = a->cache + b * N * N * SB_NCACHE;
        for (int j = 0; j < N; j++) {
            /* c_ij = s_ij / D_ij with D_ij = n_i m_j + 1e-8 and m_j = |g_j|:
             * dc_ij/dg_j = z_i / D_ij - s_ij n_i g_j / (D_ij^2 m_j) */
            double beta = 0.0;
            float *d = a->dg + (b * N + j) * C;
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
                float w = (float)(e[SB_DC] / D);
                const float *zi = zb + (size_t)i * C;
                for (int c = 0; c < C; c++)
                    d[c] += w * zi[c];
            }
        }
    }
}

void sola_simbce_backward(float *dg, const double *cache, const float *z, const float *g, int B,
                          int N, int C)
{
    simbce_job a = {(double *)cache, z, g, NULL, dg, N, C, 0.0};
    sola_pass_for((size_t)B, sola_grain((size_t)N * N * C), simbce_bwd_windows, &a);
}
