/* gemm_openblas.c -- the GEMM seam (gemm.h) on OpenBLAS (build with -DSOLA_GEMM=openblas).
 *
 * OpenBLAS has no prepared-operand call: a sola_gemm_w keeps a pointer to the caller's
 * array and every product packs it again. Its thread count is process-wide.
 *
 * Row independence (gemm.h). OpenBLAS computes a GEMM row with different instruction
 * sequences depending on where it falls in the kernel's blocking: rows in a partial
 * block of the kernel's unroll take a tail kernel, and with several threads the rows
 * are cut into 2 x threads slices (level3_thread.c), each ending in its own partial
 * block. So a pass lays each sequence on a multiple of the kernel's row block (12 for
 * the Haswell/Zen kernels, 4 for SkylakeX/Cooperlake's) and has a multiple of
 * block x 2 x threads rows: every row lands in a full block at the same offset
 * whatever else is in the pass (verified over lengths 1..300, k2 = 1 and 3, 1 and 2
 * threads, both kernel sets: tests/daemon/test_batching.c). With several threads OpenBLAS may
 * also cut the output columns in halves chosen by the row count; each half must be
 * whole micro-kernel blocks, hence K and N multiples of 64. And a GEMM with
 * M*N*K <= 100^3 goes to a separate small-matrix kernel (0.3.21, SkylakeX/Cooperlake
 * kernels) with its own rounding, so a pass has at least min_rows rows. */
#include "gemm.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void sola_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sola_ssyrk_upper(int T, int C, const float *Y, float *S)
{
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, T, C, 1.0f, Y, C, 0.0f, S, T);
}

void sola_gemm_set_threads(int n)
{
    openblas_set_num_threads(n < 1 ? 1 : n);
}

int sola_gemm_threads(void)
{
    return openblas_get_num_threads();
}

void sola_gemm_rest(void)
{
}

const char *sola_gemm_backend(void)
{
    return "OpenBLAS";
}

static char g_kernels[160];
static pthread_once_t g_kernels_once = PTHREAD_ONCE_INIT;

static void kernels_once(void)
{
    const char *c = openblas_get_corename(), *cfg = openblas_get_config();
    snprintf(g_kernels, sizeof g_kernels, "%s; %s kernels", cfg ? cfg : "OpenBLAS",
             c ? c : "unknown");
}

const char *sola_gemm_kernels(void)
{
    pthread_once(&g_kernels_once, kernels_once);
    return g_kernels;
}

int sola_gemm_env_warning(char *buf, size_t n)
{
    /* A build machine of this project exported OPENBLAS_CORETYPE=Haswell on an AVX-512
     * CPU: every GEMM then ran at half the peak and nothing said so. */
    const char *forced = getenv("OPENBLAS_CORETYPE");
    if (!forced || !*forced)
        return 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f"))
        return 0;
    static const char *const avx512_cores[] = {"skylakex", "cooperlake", "sapphirerapids",
                                               "zen4", "zen5"};
    const char *core = openblas_get_corename();
    for (size_t i = 0; i < sizeof avx512_cores / sizeof avx512_cores[0]; i++)
        if (core && !strcasecmp(core, avx512_cores[i]))
            return 0;
    snprintf(buf, n,
             "OPENBLAS_CORETYPE=%s forces OpenBLAS onto %s kernels although this CPU has "
             "AVX-512; GEMMs run at about half their peak. Unset OPENBLAS_CORETYPE unless "
             "that is intended (or build with the default oneDNN backend, which ignores it).",
             forced, core ? core : "older");
    return 1;
#else
    (void)buf;
    (void)n;
    return 0;
#endif
}

struct sola_gemm_w {
    int K, N, trans, accumulate;
    const float *W;
};

sola_gemm_w *sola_gemm_w_new(int K, int N, int trans, int accumulate, const float *W,
                             size_t min_rows, sola_err *e)
{
    (void)min_rows; /* one layout: the caller's W */
    sola_gemm_w *w = malloc(sizeof *w);
    if (!w) {
        sola_errf(e, SOLA_ENOMEM, "gemm: out of memory");
        return NULL;
    }
    *w = (sola_gemm_w){K, N, trans, accumulate, W};
    return w;
}

void sola_gemm_w_free(sola_gemm_w *w)
{
    free(w);
}

int sola_gemm_w_borrows(const sola_gemm_w *w)
{
    (void)w;
    return 1;
}

/* The rows of a GEMM micro-kernel block: 12 for the Haswell kernels (also used on
 * Zen), 4 for SkylakeX/Cooperlake's; 12 is a multiple of both, so unknown kernel sets
 * get 12. The name is fixed once OpenBLAS has loaded; compute threads ask
 * concurrently and all compute the same value, so a relaxed atomic suffices. */
static int seq_align(void)
{
    static _Atomic int align;
    int a = atomic_load_explicit(&align, memory_order_relaxed);
    if (!a) {
        const char *c = openblas_get_corename();
        a = c && (!strcasecmp(c, "skylakex") || !strcasecmp(c, "cooperlake")) ? 4 : 12;
        atomic_store_explicit(&align, a, memory_order_relaxed);
    }
    return a;
}

void sola_gemm_rowplan(const sola_gemm_w *const *ws, int n, sola_rowplan *p)
{
    int t = openblas_get_num_threads(), a = seq_align();
    p->seq_align = (size_t)a;
    p->exact = 1;
    p->small_max = p->small_quantum = 0;
    p->tile = 0;
    /* With t threads OpenBLAS cuts the rows into up to t parts, each halved again
     * (DIVIDE_RATE 2); every cut must fall on a multiple of the block. With t > 2 the
     * part count may be any of 1..t, hence the lcm; beyond 4 threads this is not
     * verified (and the padding grows), so it stays at 4's. */
    static const int lcm[] = {1, 1, 2, 6, 12};
    p->quantum = t <= 1 ? (size_t)a : (size_t)a * 2 * (size_t)lcm[t < 4 ? t : 4];
    /* Fewest rows: every GEMM above the small-matrix size with a margin of 2, unless
     * that takes more than 1024 rows or 4 M floats of operands (a tiny model: C = H = 1
     * with k1 = 255 would ask for 2 GB, docs/reliability.md F5); such passes are not
     * padded and not batched. */
    double mk = INFINITY, width = 0;
    for (int i = 0; i < n; i++) {
        double kn = (double)ws[i]->K * ws[i]->N;
        if (kn < mk)
            mk = kn;
        width += (double)ws[i]->K + ws[i]->N;
        if (t > 1 && (ws[i]->K % 64 || ws[i]->N % 64))
            p->exact = 0;
    }
    double rows = n > 0 ? floor(2e6 / mk) + 1 : 0;
    if (rows > 1024 || rows * width > 4.0 * 1024 * 1024) {
        p->min_rows = 0;
        p->exact = 0;
    } else {
        p->min_rows = (size_t)rows;
    }
}

int sola_gemm_w_rows(const sola_gemm_w *w, size_t rows, const float *X, float alpha,
                     float *Y, sola_err *e)
{
    if (rows > (size_t)0x7fffffff)
        return sola_errf(e, SOLA_ETOOBIG, "gemm: %zu rows are too many", rows);
    if (rows == 0)
        return 0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, w->trans ? CblasTrans : CblasNoTrans, (int)rows,
                w->N, w->K, alpha, X, w->K, w->W, w->trans ? w->K : w->N,
                w->accumulate ? 1.0f : 0.0f, Y, w->N);
    return 0;
}

size_t sola_rowplan_rows(const sola_rowplan *p, size_t rows)
{
    size_t r = rows < p->min_rows ? p->min_rows : rows;
    size_t q = r <= p->small_max && p->small_quantum ? p->small_quantum : p->quantum;
    if (!q)
        q = 1;
    return (r + q - 1) / q * q;
}

void sola_gemm_warm(void)
{
    /* OpenBLAS picks its kernels when it loads */
}

/* ---- elementwise work (sola_gemm_team_for) ---------------------------------------------
 *
 * OpenBLAS's workers busy-wait after a product, so there is no idle team to lend: a
 * second set of threads beside them made the trainer's elementwise passes 2x slower
 * than the calling thread alone (measured at B = 256, C = 2048). The caller runs fn. */
int sola_gemm_team_for(size_t n, size_t grain, sola_gemm_range_fn fn, void *arg)
{
    (void)n;
    (void)grain;
    (void)fn;
    (void)arg;
    return 0;
}

/* The same holds beside the prepared products: the caller runs fn. */
int sola_gemm_pool_for(size_t n, size_t grain, sola_gemm_range_fn fn, void *arg)
{
    return sola_gemm_team_for(n, grain, fn, arg);
}
