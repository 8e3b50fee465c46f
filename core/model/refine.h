/* refine.h -- the SoLa forward pass and the temporal self-similarity map.
 *
 * refine(x) = x + tanh(alpha) * conv4(relu(conv2(relu(conv0(x))))) over the whole
 * sequence, zero padded at both ends (docs/spec.md section 3). Each conv of kernel k is one product
 * against the repacked weight [Cin, k*Cout] (a prepared operand of core/model/gemm.h, built
 * by sola_model_pack) followed by a shifted sum of the k column blocks (no im2col),
 * then bias (+ relu).
 *
 * A workspace holds the intermediate buffers and grows to the largest T seen; one
 * workspace per thread.
 *
 * Row independence -- what dynamic batching and streaming may rely on. When
 * sola_refine_batchable(m) is 1 on the thread that refines (same thread count), every
 * pass laid out by sola_refine_layout (sola_refine, sola_refine_batch,
 * sola_refine_padded) computes each row of every product from that row's input alone,
 * with the same instructions whatever the pass's row count and the row's place in it
 * (core/model/gemm.h; each backend says why). The rest of the pass is row by row in a fixed
 * order. Hence, bit for bit:
 *   output row t of a sequence depends only on input rows t - R .. t + R of that
 *   sequence (R = (k1/2)*d1 + (k2/2)*d2, the receptive field; rows outside the
 *   sequence count as zero) and on nothing else in the pass,
 * so a sequence refined inside any batch equals its own call, and row t computed in a
 * pass over a window [a, b) of the sequence (a <= t < b) equals row t of the pass over
 * the whole sequence whenever a <= t - R or a = 0, and t + R < b or b = T (the window
 * holds the whole receptive field, except where it ends with the sequence itself; with
 * the OpenBLAS backend a must also be a multiple of the plan's seq_align). Holds per
 * thread count: passes on 1 and 2 threads may differ in the last bits. When sola_refine_batchable(m) is 0 (a model too
 * small for the padding rule, an unverified library or CPU: see the backend), these
 * equalities hold only to float32 rounding. */
#ifndef SOLA_REFINE_H
#define SOLA_REFINE_H

#include <stddef.h>

#include "err.h"
#include "gemm.h"
#include "model.h"
#include "tsm.h" /* the self-similarity map of a refined sequence */

typedef struct sola_ws sola_ws;
sola_ws *sola_ws_new(void);
void sola_ws_free(sola_ws *ws);
/* Bytes currently held. */
size_t sola_ws_bytes(const sola_ws *ws);

/* x [T, C] -> y [T, C] (y must not alias x). m must be packed. T >= 1. */
int sola_refine(const sola_model *m, const float *x, int T, float *y, sola_ws *ws,
                sola_err *e);

/* n sequences of lengths lens[i] laid end to end in x (sum lens rows) -> y, with
 * results bit-identical to n separate sola_refine calls when sola_refine_batchable(m)
 * (used for dynamic batching): both go through the layout below. */
int sola_refine_batch(const sola_model *m, const float *x, const int *lens, int n, float *y,
                      sola_ws *ws, sola_err *e);

/* The layout every pass uses (see "Row independence" above): sequence i starts at row
 * offs[i], a multiple of the plan's seq_align (1 with oneDNN: end to end), and the pass
 * has prows rows, sola_rowplan_rows of the rows it holds (core/model/gemm.h). The plan depends
 * on the calling thread's GEMM thread count: compute the layout on the thread, and
 * with the thread count, that refines. offs may be NULL. 0, SOLA_EINVAL (n < 1 or an
 * unpacked model), SOLA_ESHAPE (a length < 1) or SOLA_ETOOBIG. */
int sola_refine_layout(const sola_model *m, const int *lens, int n, size_t *offs,
                       size_t *prows, sola_err *e);
/* The plan itself (zeroed for an unpacked model). */
void sola_refine_plan(const sola_model *m, sola_rowplan *p);

/* 1 if passes of this model are row-independent (above) with the calling thread's
 * thread count; a batcher computes other models one request at a time, and
 * sola_refine_batch equals separate calls for them only to float32 rounding. */
int sola_refine_batchable(const sola_model *m);

/* The pass itself on data already in that layout: xp, yp [prows, C] (rows outside
 * the sequences of xp should be zero; those of yp are unspecified). Lets a batcher
 * gather requests straight into the layout instead of copying twice, and a reader
 * read a file straight into it. yp may be xp (in place: `sola refine DIR` refines each
 * video in its read buffer, cli/refine_pipe.c): every row of yp is written only after
 * the products have read xp, with the same bits (tests/cli/test_cli.c checks them). */
int sola_refine_padded(const sola_model *m, const float *xp, const size_t *offs,
                       const int *lens, int n, size_t prows, float *yp, sola_ws *ws,
                       sola_err *e);

/* FLOPs of one refine of length T (multiply-add = 2). */
double sola_refine_flops(const sola_model *m, int T);

#endif
