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
 * results identical to n separate sola_refine calls (used for dynamic batching). */
int sola_refine_batch(const sola_model *m, const float *x, const int *lens, int n, float *y,
                      sola_ws *ws, sola_err *e);

/* FLOPs of one refine of length T (multiply-add = 2). */
double sola_refine_flops(const sola_model *m, int T);

/* S[i,j] = (y_i . y_j) / (|y_i| |y_j| + 1e-8); y [T, C] -> S [T, T]. */
int sola_tsm(const float *y, int T, int C, float *S, sola_err *e);

#endif
