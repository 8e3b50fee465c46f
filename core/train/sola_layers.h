/* sola_layers.h -- the layers of the SoLa training step as forward/backward pairs.
 *
 * llm.c style: each layer is a pair of functions on plain float arrays plus sizes,
 * with the shapes beside the arguments. Rows are independent samples (snippets of
 * all windows of a batch stacked), so a whole batch is one GEMM per layer.
 *
 * A Conv1d (PyTorch cross-correlation, weight (OC, IC, k)) is a Linear layer on
 * im2col rows: if col[r, c*k + j] = inp[src[r*k + j], c] (0 where src is -1, i.e. the
 * zero padding), then conv(inp)[r] = col[r] . weight(OC, IC*k)^T + bias, with the
 * weight used in its file layout. The gather table `src` says which input rows each
 * output row reads, which is how the trainer computes a conv only at the rows the
 * loss needs.
 *
 * Backward functions OVERWRITE their gradient outputs (they never accumulate), except
 * sola_col2im_add whose name says so. Any gradient output may be NULL when not needed.
 * All GEMMs go through core/model/gemm.h (sola_sgemm) and use its threads. */
#ifndef SOLA_LAYERS_H
#define SOLA_LAYERS_H

#include <stddef.h>

/* col (R, IC*k) <- col[r, c*k + j] = inp[src[r*k + j], c], or 0 when src is -1.
 * inp is (any rows, IC). */
void sola_im2col(float *col, const float *inp, const int *src, int R, int IC, int k);
/* dinp[src[r*k + j], c] += dcol[r, c*k + j] for src != -1. dinp is (any rows, IC). */
void sola_col2im_add(float *dinp, const float *dcol, const int *src, int R, int IC, int k);

/* out (R, OC) = inp (R, IC) . weight (OC, IC)^T + bias (OC). bias may be NULL. */
void sola_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int R, int IC, int OC);
/* dinp (R, IC) = dout (R, OC) . weight (OC, IC)
 * dweight (OC, IC) = dout^T . inp (R, IC)
 * dbias (OC) = sum over rows of dout. */
void sola_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int R, int IC, int OC);

/* x (n) <- max(x, 0), in place. */
void sola_relu_forward(float *x, size_t n);
/* dx (n) = dout * (out > 0); out is the relu OUTPUT (PyTorch's threshold_backward).
 * dx may alias dout. */
void sola_relu_backward(float *dx, const float *dout, const float *out, size_t n);

/* z (R, C) = r / max(|r|, eps) per row (F.normalize); norm (R) receives |r|. */
void sola_normalize_forward(float *z, float *norm, const float *r, int R, int C, float eps);
/* dr (R, C) from dz, using the forward's z and norm. dr may not alias dz. */
void sola_normalize_backward(float *dr, const float *dz, const float *z, const float *norm,
                             int R, int C, float eps);

/* Runs fn(arg, begin, end) over [0, n) split into contiguous ranges of at least
 * `grain` items, on as many threads as the GEMMs are allowed (sola_gemm_threads).
 * Ranges must be independent. Results do not depend on the thread count as long as fn
 * writes only its own items. With oneDNN the ranges run on the GEMMs' OpenMP team
 * (sola_gemm_team_for), else on threads started for the call. */
typedef void (*sola_range_fn)(void *arg, size_t begin, size_t end);
void sola_parallel_for(size_t n, size_t grain, sola_range_fn fn, void *arg);
/* The same for a pass next to a GEMM (what the layers below use): on the GEMMs' team
 * when the backend lends it (oneDNN), else on the calling thread alone -- right after
 * an OpenBLAS GEMM its workers busy-wait on the other cores, and a pass split over
 * threads of our own ran 2x slower than a serial one (see sola_layers.c). */
void sola_pass_for(size_t n, size_t grain, sola_range_fn fn, void *arg);
/* A grain giving each thread at least ~64K floats of work, so that starting a thread
 * (tens of microseconds, more on a loaded machine) stays small next to its work. */
static inline size_t sola_grain(size_t floats_per_item)
{
    return floats_per_item >= 65536 ? 1 : 65536 / (floats_per_item ? floats_per_item : 1);
}

/* The similarity-matching loss of B windows of N kept snippets each:
 *   c[b,i,j] = (sg(z[b,i]) . g[b,j]) / (|z[b,i]| |g[b,j]| + 1e-8)
 *   p = clamp((1 + c) / 2, 1e-5, 1 - 1e-5)
 *   loss = scale * sum over b,i,j of -(t[i,j] log p + (1 - t[i,j]) log(1 - p))
 * z, g (B, N, C); target (N, N); cache (B, N, N, SOLA_SIMBCE_CACHE) doubles kept for
 * the backward (s, |z_i|, |g_j|, dloss/dc, the BCE term). Returns the loss. scale is 1/(B N N) for a mean (or a
 * smaller one when the batch is split). */
enum { SOLA_SIMBCE_CACHE = 5 };
double sola_simbce_forward(double *cache, const float *z, const float *g, const double *target,
                           int B, int N, int C, double scale);
/* dg (B, N, C) = dloss/dg (z is stop-gradient, so there is no dz). */
void sola_simbce_backward(float *dg, const double *cache, const float *z, const float *g, int B,
                          int N, int C);

/* target (N, N): 1 on the diagonal, sigmoid(K / (i - j)^2) elsewhere. */
void sola_simbce_target(double *target, int N, double K);

#endif
