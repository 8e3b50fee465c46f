/* cycle_nce.c -- the two layers the cycle objective adds (cycle.h): InfoNCE against a
 * queue of keys with same-video entries left out, and the soft nearest neighbour.
 *
 * Both are a GEMM against the queue (or the candidate set) plus a row-wise softmax.
 * The softmax runs in double per row (sums of up to K terms), rows in parallel; the
 * loss is summed over rows in a fixed order, so results depend only on the BLAS
 * thread count, never on how rows were split. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cycle.h"
#include "gemm.h"
#include "sola_layers.h"

/* 1 if queue entry tag t belongs to the query's video v (tags < 0: no video) */
static inline int same_video(float t, int v)
{
    return t >= 0.0f && t == (float)v;
}

typedef struct {
    float *prob, *p0;
    double *rowloss;
    const float *q, *kpos, *qvid;
    const int *vid;
    int K, D;
    float tau;
} nce_job;

static void nce_rows(void *arg, size_t r0, size_t r1)
{
    const nce_job *a = arg;
    const int K = a->K, D = a->D;
    const double it = 1.0 / a->tau;
    for (size_t r = r0; r < r1; r++) {
        float *pr = a->prob + r * K;
        const float *q = a->q + r * D, *k = a->kpos + r * D;
        double l0 = 0;
        for (int d = 0; d < D; d++)
            l0 += (double)q[d] * k[d];
        l0 *= it;
        double mx = l0;
        for (int m = 0; m < K; m++)
            if (!same_video(a->qvid[m], a->vid[r]) && pr[m] * it > mx)
                mx = pr[m] * it;
        double sum = exp(l0 - mx);
        for (int m = 0; m < K; m++) {
            if (same_video(a->qvid[m], a->vid[r])) {
                pr[m] = 0.0f;
                continue;
            }
            double x = exp(pr[m] * it - mx);
            sum += x;
            pr[m] = (float)x;
        }
        const double inv = 1.0 / sum;
        for (int m = 0; m < K; m++)
            pr[m] = (float)(pr[m] * inv);
        a->p0[r] = (float)(exp(l0 - mx) * inv);
        a->rowloss[r] = log(sum) + mx - l0;
    }
}

double sola_infonce_forward(float *prob, float *p0, const float *q, const float *kpos,
                            const float *queue, const float *qvid, const int *vid, int R,
                            int K, int D, float tau, double scale)
{
    double *rowloss = malloc((size_t)(R > 0 ? R : 1) * sizeof *rowloss);
    if (!rowloss)
        return NAN;
    // prob (R, K) = q (R, D) . queue (K, D)^T, the raw dots; rows turn them into p
    sola_linear_forward(prob, q, queue, NULL, R, D, K);
    nce_job a = {prob, p0, rowloss, q, kpos, qvid, vid, K, D, tau};
    sola_parallel_for((size_t)R, 16, nce_rows, &a);
    double loss = 0;
    for (int r = 0; r < R; r++)
        loss += rowloss[r];
    free(rowloss);
    return loss * scale;
}

void sola_infonce_backward(float *dq, float *prob, const float *p0, const float *kpos,
                           const float *queue, int R, int K, int D, float tau, double scale)
{
    // d loss / d l_rj = scale (p_rj - [j = 0]); l = dots / tau
    const float f = (float)(scale / tau);
    const size_t n = (size_t)R * K;
    for (size_t i = 0; i < n; i++)
        prob[i] *= f;
    if (R <= 0)
        return;
    sola_sgemm(0, 0, R, D, K, 1.0f, prob, K, queue, D, 0.0f, dq, D);
    for (int r = 0; r < R; r++) {
        const float c = (float)(scale / tau * ((double)p0[r] - 1.0));
        for (int d = 0; d < D; d++)
            dq[(size_t)r * D + d] += c * kpos[(size_t)r * D + d];
    }
}

typedef struct {
    float *w;
    const float *uvid;
    const int *vid;
    int S;
    float tau;
} snn_job;

/* w row: raw dots in, softmax of dots / tau over the candidates out (0 elsewhere;
 * all 0 when no candidate is left). */
static void snn_rows(void *arg, size_t r0, size_t r1)
{
    const snn_job *a = arg;
    const int S = a->S;
    const double it = 1.0 / a->tau;
    for (size_t r = r0; r < r1; r++) {
        float *wr = a->w + r * S;
        double mx = -INFINITY;
        for (int m = 0; m < S; m++)
            if (!same_video(a->uvid[m], a->vid[r]) && wr[m] * it > mx)
                mx = wr[m] * it;
        double sum = 0;
        for (int m = 0; m < S; m++) {
            if (same_video(a->uvid[m], a->vid[r])) {
                wr[m] = 0.0f;
                continue;
            }
            double x = exp(wr[m] * it - mx);
            sum += x;
            wr[m] = (float)x;
        }
        const double inv = sum > 0 ? 1.0 / sum : 0.0;
        for (int m = 0; m < S; m++)
            wr[m] = (float)(wr[m] * inv);
    }
}

void sola_softnn_forward(float *qh, float *w, float *vnorm, const float *q, const float *u,
                         const float *uvid, const int *vid, int R, int S, int D, float tau)
{
    if (R <= 0)
        return;
    sola_linear_forward(w, q, u, NULL, R, D, S);
    snn_job a = {w, uvid, vid, S, tau};
    sola_parallel_for((size_t)R, 16, snn_rows, &a);
    // v (R, D) = w (R, S) . u (S, D), normalised in place
    sola_sgemm(0, 0, R, D, S, 1.0f, w, S, u, D, 0.0f, qh, D);
    for (int r = 0; r < R; r++) {
        float *v = qh + (size_t)r * D;
        double s = 0;
        for (int d = 0; d < D; d++)
            s += (double)v[d] * v[d];
        float nv = (float)sqrt(s);
        vnorm[r] = nv;
        float inv = nv > 1e-12f ? 1.0f / nv : (nv > 0 ? 1e12f : 0.0f);
        for (int d = 0; d < D; d++)
            v[d] *= inv;
    }
}

void sola_softnn_backward(float *dq, float *dw, float *dv, const float *dqh, const float *qh,
                          const float *w, const float *vnorm, const float *u, int R, int S,
                          int D, float tau)
{
    if (R <= 0)
        return;
    // normalize: dv = (dqh - qh (qh . dqh)) / |v|; a row without candidates has none
    for (int r = 0; r < R; r++) {
        const float *g = dqh + (size_t)r * D, *y = qh + (size_t)r * D;
        float *o = dv + (size_t)r * D;
        if (!(vnorm[r] > 0)) {
            memset(o, 0, (size_t)D * sizeof *o);
            continue;
        }
        double dot = 0;
        for (int d = 0; d < D; d++)
            dot += (double)y[d] * g[d];
        float n = vnorm[r] > 1e-12f ? vnorm[r] : 1e-12f;
        for (int d = 0; d < D; d++)
            o[d] = vnorm[r] > 1e-12f ? (float)((g[d] - y[d] * dot) / n) : g[d] / n;
    }
    // v = w u: dw = dv . u^T (R, S)
    sola_linear_forward(dw, dv, u, NULL, R, D, S);
    // softmax: ds = w (dw - sum w dw); then dots / tau: dq = ds . u / tau
    for (int r = 0; r < R; r++) {
        const float *wr = w + (size_t)r * S;
        float *gr = dw + (size_t)r * S;
        double t = 0;
        for (int m = 0; m < S; m++)
            t += (double)wr[m] * gr[m];
        for (int m = 0; m < S; m++)
            gr[m] = (float)(wr[m] * (gr[m] - t) / tau);
    }
    sola_sgemm(0, 0, R, D, S, 1.0f, dw, S, u, D, 0.0f, dq, D);
}
