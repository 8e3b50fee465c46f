/* gemm.h -- the one seam every matrix product of SoLa goes through.
 *
 * Two backends, chosen when building (CMake SOLA_GEMM):
 *   onednn   (default) core/model/gemm_onednn.c: oneDNN's sgemm and matmul primitives, which
 *            pick their kernels from the CPU's own instruction set at run time;
 *   openblas core/model/gemm_openblas.c: OpenBLAS's cblas_sgemm/ssyrk.
 * Both give results within float32 rounding of each other and of the PyTorch fixtures
 * (tests/unit/test_refine.c, cli/test_grad.c, cli/test_trainer.c run on both).
 *
 * Threads: every product uses the thread count of the thread that calls it.
 * sola_gemm_set_threads(n) sets that count for the calling thread AND the default of
 * every other thread, which takes it at its next product (oneDNN runs on OpenMP, whose
 * thread count is per calling thread; OpenBLAS's is process-wide). So `--threads N`
 * means "N threads per compute thread" with either backend, and two compute threads
 * with --threads 1 never share or oversubscribe a pool. (oneDNN: products of a
 * prepared right-hand side run on a pool of the calling thread's own -- itself and
 * N - 1 helpers taking single-threaded tasks on demand -- instead of OpenMP, so a
 * preempted thread does not stall the product; see gemm_onednn.c.)
 *
 * Row independence (what dynamic batching and streaming rely on): products of a
 * prepared right-hand side (sola_gemm_w) over a pass of rows are computed so that row r
 * of the result depends only on row r of the input -- not on how many rows the pass has
 * nor where the row sits -- provided the pass follows sola_gemm_rowplan (the backend
 * knows why; see the comment in each backend). */
/* implemented in: gemm_onednn.c gemm_openblas.c (one per build) */
#ifndef SOLA_GEMM_H
#define SOLA_GEMM_H

#include <stddef.h>

#include "err.h"

/* C [M, N] = alpha * op(A) . op(B) + beta * C, row-major; ta/tb nonzero: the operand is
 * stored transposed (A as [K, M], B as [N, K]). M, N, K >= 0. */
void sola_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

/* Upper triangle (j >= i) of S [T, T] = Y . Y^T for Y [T, C]; the strictly lower
 * triangle is left unspecified (the caller mirrors). */
void sola_ssyrk_upper(int T, int C, const float *Y, float *S);

/* Threads of the products the calling thread runs, and the default of every thread
 * that has not run one since (n >= 1; larger than the CPU count is allowed but slow). */
void sola_gemm_set_threads(int n);
/* The count a product on the calling thread would use now. */
int sola_gemm_threads(void);
/* No product follows soon on the calling thread (a server's pass is over): its
 * helpers sleep now instead of spinning for the next one, which would keep a core
 * from the threads that send the reply. Harmless (a no-op with OpenBLAS). */
void sola_gemm_rest(void);

/* The backend's one-time setup, which the first product otherwise pays: oneDNN 2.6
 * generates its sgemm kernels then (34 ms on this machine's first call, 1.3 ms on the
 * second of the same size). Safe from any thread, at any time, also while others run
 * products; runs on the calling thread alone. A thread of its own can run it while a
 * model loads (`sola refine DIR` does). The OpenBLAS build has nothing to do. */
void sola_gemm_warm(void);

/* "oneDNN" or "OpenBLAS". */
const char *sola_gemm_backend(void);
/* What runs, for logs and benchmarks, e.g. "oneDNN 2.6.3, gemm:jit, isa avx2" or
 * "OpenBLAS 0.3.21, Zen kernels" (static string, valid for the process). */
const char *sola_gemm_kernels(void);
/* If the environment makes this backend's kernels narrower than the CPU supports
 * (OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU), writes one line into buf and returns
 * 1; else 0. oneDNN ignores OPENBLAS_CORETYPE, so it always returns 0 there. */
int sola_gemm_env_warning(char *buf, size_t n);

/* ---- a prepared right-hand side ------------------------------------------------ */

/* W [K, N] (trans = 0) or W stored as [N, K] (trans = 1), prepared once for products
 * Y [M, N] = alpha * X [M, K] . W (+ Y when accumulate) with any M. The backend may
 * reorder W into its own layout (then W is not referenced after the call) or keep a
 * pointer to it (then W must outlive the result): the caller keeps W either way
 * (model.c owns both). Immutable once made: any number of threads may apply it at
 * once. NULL + e on failure.
 * min_rows: the fewest rows a product will have (0: not known, any M may come). A
 * backend may then leave out a layout that serves only shorter products (oneDNN: the
 * short-pass copy, for M <= 32); such products still give the same bits, only slower. */
typedef struct sola_gemm_w sola_gemm_w;
sola_gemm_w *sola_gemm_w_new(int K, int N, int trans, int accumulate, const float *W,
                             size_t min_rows, sola_err *e);
void sola_gemm_w_free(sola_gemm_w *w);
/* 1 if w reads the W it was made from at every product (the caller keeps W alive and
 * unchanged), 0 if it made a copy of its own and W may be freed (oneDNN's column chunks
 * or its reordered layout; OpenBLAS always reads W). */
int sola_gemm_w_borrows(const sola_gemm_w *w);

/* How a pass of rows must be laid out for row independence (see above):
 *   seq_align  a sequence starts on a multiple of this row (1: anywhere),
 *   quantum    the pass has a multiple of this many rows -- or, if it has at most
 *              small_max rows, of small_quantum (finer: less padding for short passes),
 *   min_rows   and at least this many (0: no minimum),
 *   tile       nonzero (oneDNN): instead of the quantum, the pass is cut into calls of
 *              `tile` rows and one of the rest, and the rest must be a count the
 *              kernel computes row by row alike -- not a lattice (4, 5, 6, 10, 11, 12,
 *              16, ... with oneDNN), so use sola_rowplan_rows, which knows the rule,
 *   exact      1 when the property holds for these shapes on this CPU with the calling
 *              thread's thread count (else passes are exact only to float rounding and
 *              a batcher should compute requests one at a time).
 * ws: the prepared operands of the pass, n of them. Depends on the calling thread's
 * thread count: compute it on the thread that runs the pass. */
typedef struct sola_rowplan {
    size_t seq_align, quantum, small_max, small_quantum, min_rows, tile;
    int exact;
} sola_rowplan;
void sola_gemm_rowplan(const sola_gemm_w *const *ws, int n, sola_rowplan *p);
/* The row count of a pass that must hold `rows` rows under plan p (>= rows). */
size_t sola_rowplan_rows(const sola_rowplan *p, size_t rows);

/* Y [rows, N] = alpha * X [rows, K] . W (+ Y if accumulate); X and Y contiguous
 * (leading dimensions K and N). rows = sola_rowplan_rows(...) for row independence.
 * 0, or SOLA_ENOMEM / SOLA_EIO (the library refused) with e filled. */
int sola_gemm_w_rows(const sola_gemm_w *w, size_t rows, const float *X, float alpha,
                     float *Y, sola_err *e);

/* ---- elementwise work beside the products (the trainer) ------------------------- */

/* Runs fn(arg, begin, end) over [0, n), cut into contiguous ranges of at least `grain`
 * items handed out on demand, on the team of threads that runs the calling thread's
 * products, and returns 1 -- if the backend has such a team idling between products
 * (oneDNN: the calling thread's OpenMP team, whose workers wait for the next parallel
 * region; the work then runs on the threads that are already awake and on no others,
 * so it never competes with them for the cores). Returns 0 without calling fn when it
 * has none (OpenBLAS: its workers busy-wait after a product, and a second set of
 * threads beside them ran elementwise passes 2x slower than one thread; the caller
 * then runs fn itself). Ranges must be independent and fn must write only its own
 * items: then the result does not depend on how the range was cut. */
typedef void (*sola_gemm_range_fn)(void *arg, size_t begin, size_t end);
int sola_gemm_team_for(size_t n, size_t grain, sola_gemm_range_fn fn, void *arg);

/* The same for work beside prepared products (sola_gemm_w_rows: a refine's elementwise
 * passes, packing weights): fn over [0, n) on the threads that run the calling
 * thread's prepared products, ranges handed out on demand, and returns 1 -- or
 * returns 0 without calling fn when the backend has no such threads to lend (OpenBLAS;
 * the caller then runs fn itself). With one thread, or fewer than 2 * grain items,
 * fn runs on the calling thread over all of [0, n). Same rules for fn as above. */
int sola_gemm_pool_for(size_t n, size_t grain, sola_gemm_range_fn fn, void *arg);

#endif
