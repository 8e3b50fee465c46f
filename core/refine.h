/* refine.h -- the SoLa forward pass and the temporal self-similarity map.
 *
 * refine(x) = x + tanh(alpha) * conv4(relu(conv2(relu(conv0(x))))) over the whole
 * sequence, zero padded at both ends (SPEC 3). Each conv of kernel k is one GEMM
 * against the repacked weight [Cin, k*Cout] followed by a shifted sum of the k column
 * blocks (no im2col), then bias (+ relu). OpenBLAS does the FLOPs.
 *
 * A workspace holds the intermediate buffers and grows to the largest T seen; one
 * workspace per thread. */
#ifndef SOLA_REFINE_H
#define SOLA_REFINE_H

#include <stddef.h>

#include "err.h"
#include "model.h"

typedef struct sola_ws sola_ws;
sola_ws *sola_ws_new(void);
void sola_ws_free(sola_ws *ws);
/* Bytes currently held. */
size_t sola_ws_bytes(const sola_ws *ws);

/* x [T, C] -> y [T, C] (y must not alias x). m must be packed. T >= 1. */
int sola_refine(const sola_model *m, const float *x, int T, float *y, sola_ws *ws,
                sola_err *e);

/* n sequences of lengths lens[i] laid end to end in x (sum lens rows) -> y, with
 * results bit-identical to n separate sola_refine calls (used for dynamic batching):
 * both go through the padded layout below. */
int sola_refine_batch(const sola_model *m, const float *x, const int *lens, int n, float *y,
                      sola_ws *ws, sola_err *e);

/* The padded layout every pass uses, so that a sequence's result does not depend on
 * what else is in the GEMM (OpenBLAS's blocking, see refine.c): sequence i starts at
 * row offs[i], a multiple of sola_refine_seq_align(), and the total prows is a multiple
 * of a quantum that depends on the BLAS thread count at the time of the call (so
 * compute the layout on the thread, and with the thread count, that refines). offs may
 * be NULL. 0, SOLA_EINVAL (n < 1), SOLA_ESHAPE (a length < 1) or SOLA_ETOOBIG. */
int sola_refine_seq_align(void); /* 4 or 12, by OpenBLAS's kernel set */
int sola_refine_layout(const sola_model *m, const int *lens, int n, size_t *offs,
                       size_t *prows, sola_err *e);

/* 1 if a batched pass of this model gives the same bits as separate ones with the
 * current BLAS thread count (C and H multiples of 64, or one thread; and not so small
 * that its GEMMs fall to OpenBLAS's small-matrix kernel); a batcher computes other
 * models one request at a time, and sola_refine_batch equals separate calls for them
 * only to float32 rounding. */
int sola_refine_batchable(const sola_model *m);

/* The pass itself on data already in that layout: xp, yp [prows, C] (rows outside
 * the sequences of xp should be zero; those of yp are unspecified). Lets a batcher
 * gather requests straight into the layout instead of copying twice. */
int sola_refine_padded(const sola_model *m, const float *xp, const size_t *offs,
                       const int *lens, int n, size_t prows, float *yp, sola_ws *ws,
                       sola_err *e);

/* FLOPs of one refine of length T (multiply-add = 2). */
double sola_refine_flops(const sola_model *m, int T);

/* S[i,j] = (y_i . y_j) / (|y_i| |y_j| + 1e-8); y [T, C] -> S [T, T]. */
int sola_tsm(const float *y, int T, int C, float *S, sola_err *e);

#endif
