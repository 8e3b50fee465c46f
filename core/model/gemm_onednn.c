/* gemm_onednn.c -- the GEMM seam (gemm.h) on oneDNN (Debian's libdnnl, OpenMP runtime).
 *
 * Plain products go to dnnl_sgemm. A prepared right-hand side is a matmul primitive
 * with a runtime row count (DNNL_RUNTIME_DIM_VAL), so one primitive serves every T,
 * and weights in whatever layout the primitive asks for (format_tag any), reordered
 * once here. On a CPU without AVX-512 oneDNN 2.6 implements that matmul with its jit
 * sgemm ("gemm:jit") and asks for the plain layout: the reorder is then a copy we skip
 * by pointing the primitive at the caller's array. On those CPUs, though, the
 * primitive serves only passes that need no row independence (below): prepared
 * products go through "the pool" (far below), whose tasks are plain single-threaded
 * dnnl_sgemm calls -- the same jit sgemm driver the matmul calls -- on a copy of the
 * weights cut into column chunks ("the chunk layout"), and passes of a few rows on a
 * second, transposed copy that gives every row the same bits ("short passes").
 *
 * Row independence (gemm.h). Which instructions compute an output row in oneDNN 2.6's
 * avx/avx2 sgemm depends on the row's place in the call (src/cpu/x64/gemm/
 * gemm_driver.cpp, f32/jit_avx_gemm_f32.cpp, gemm/f32/gemm_utils_f32.cpp; in its
 * column-major terms our rows are its n, our output columns its m):
 *   - calls of many rows against many columns take the "copy" kernels, others the
 *     "nocopy" ones, with different k blocking (a call of at most 263 columns is
 *     always nocopy: 1/m + 1/n >= 0.0038);
 *   - nocopy cuts the rows into blocks (48, or 96 when W is stored transposed, halving
 *     the last two when they are short) and each block into groups of 6; a group of
 *     1-3 rows runs kernels that sum k otherwise -- other bits; groups of 4 and 5 do
 *     what a group of 6 does (checked: blocks_ok);
 *   - with several threads the rows may be cut among them first, and k may be split
 *     among them (then partial sums).
 * So on these CPUs every prepared product runs on "the pool" (below): a pass is cut
 * into tiles of TILE_MAX rows and the rest, each tile into chunks of 256 output
 * columns with weights of their own ("the chunk layout", untransposed: blocks of 48),
 * and each (tile, chunk) is a call on ONE thread -- so only the single-thread rule
 * applies and the bits do not depend on the thread count either; the columns' side
 * needs nothing (a chunk is a matrix of its own to the library). The row plan makes
 * the rest a count whose every block ends in a group of 4-6 (tile_ok); then a row is
 * computed by the same instructions whatever the tile -- verified by
 * tests/daemon/test_batching.c (batches of random make-up against separate calls, and every
 * row of a pass against the same row computed alone). Other oneDNN versions or
 * AVX-512 CPUs (other kernels) are not covered by this reasoning: the plan says
 * exact = 0 there, products are one matmul call each, and a batcher computes
 * requests one at a time. */
#include "gemm.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bigbuf.h"
#include "clock.h"

enum { TILE_MAX = 240, CHUNK_COLS = 256 };

/* ---- threads ----------------------------------------------------------------- */

static _Atomic int g_threads;         /* 0: never set (OpenMP's default) */
static _Thread_local int t_applied;  /* what this thread last gave omp_set_num_threads */

static void sync_threads(void)
{
    int n = atomic_load_explicit(&g_threads, memory_order_relaxed);
    if (n > 0 && n != t_applied) {
        omp_set_num_threads(n);
        t_applied = n;
    }
}

void sola_gemm_set_threads(int n)
{
    if (n < 1)
        n = 1;
    atomic_store_explicit(&g_threads, n, memory_order_relaxed);
    sync_threads();
}

int sola_gemm_threads(void)
{
    sync_threads();
    return omp_get_max_threads();
}

/* ---- engine and per-thread stream ---------------------------------------------- */

static dnnl_engine_t g_engine;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_stream_key;

static void stream_destroy(void *s)
{
    dnnl_stream_destroy(s);
}

static void init_once(void)
{
    if (dnnl_engine_create(&g_engine, dnnl_cpu, 0) != dnnl_success)
        g_engine = NULL;
    pthread_key_create(&g_stream_key, stream_destroy);
}

/* The calling thread's stream (streams are not shared between threads), or NULL. */
static dnnl_stream_t thread_stream(void)
{
    pthread_once(&g_once, init_once);
    if (!g_engine)
        return NULL;
    dnnl_stream_t s = pthread_getspecific(g_stream_key);
    if (!s) {
        if (dnnl_stream_create(&s, g_engine, dnnl_stream_default_flags) != dnnl_success)
            return NULL;
        pthread_setspecific(g_stream_key, s);
    }
    return s;
}

/* ---- plain products -------------------------------------------------------------- */

void sola_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    sync_threads();
    /* K = 0 is a valid product (C = beta C) that dnnl_sgemm handles itself */
    dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sola_ssyrk_upper(int T, int C, const float *Y, float *S)
{
    /* No syrk in oneDNN: row blocks of the upper triangle, each one sgemm from its
     * diagonal block rightwards (half the FLOPs of the full product, plus the
     * diagonal blocks). */
    enum { B = 256 };
    for (int i0 = 0; i0 < T; i0 += B) {
        int bi = T - i0 < B ? T - i0 : B;
        sola_sgemm(0, 1, bi, T - i0, C, 1.0f, Y + (size_t)i0 * C, C, Y + (size_t)i0 * C, C,
                   0.0f, S + (size_t)i0 * T + i0, T);
    }
}

void sola_gemm_warm(void)
{
    /* one small product of the shape the pool's tasks run (nocopy, one thread): the
     * library's kernels are made on its first call, for every later one */
    enum { M = 8, N = 16, K = 64 };
    static _Thread_local float ta[M * K], tb[K * N], tc[M * N];
    int keep = omp_get_max_threads();
    omp_set_num_threads(1);
    dnnl_sgemm('N', 'N', M, N, K, 1.0f, ta, K, tb, N, 0.0f, tc, N);
    omp_set_num_threads(keep);
}

/* ---- what runs --------------------------------------------------------------------- */

const char *sola_gemm_backend(void)
{
    return "oneDNN";
}

static const char *isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

/* 1 if this library and CPU run the avx/avx2 nocopy sgemm that tile_ok() models. */
static int rule_verified(void)
{
    const dnnl_version_t *v = dnnl_version();
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return v->major == 2 && v->minor == 6 &&
           (isa == dnnl_cpu_isa_avx || isa == dnnl_cpu_isa_avx2 ||
            isa == dnnl_cpu_isa_avx2_vnni);
}

static char g_kernels[200];
static pthread_once_t g_kern_once = PTHREAD_ONCE_INIT;

static void kernels_once(void)
{
    const dnnl_version_t *v = dnnl_version();
    /* rule_verified: prepared products are single-threaded jit sgemm tasks on column
     * chunks (the pool); else matmul primitives, whatever implementation they pick */
    snprintf(g_kernels, sizeof g_kernels, "oneDNN %d.%d.%d, isa %s, %s", v->major, v->minor,
             v->patch, isa_name(dnnl_get_effective_cpu_isa()),
             rule_verified() ? "sgemm gemm:jit, nocopy tasks on column chunks of the weights "
                               "(a transposed copy for short passes)"
                             : "matmul/sgemm");
}

const char *sola_gemm_kernels(void)
{
    pthread_once(&g_kern_once, kernels_once);
    return g_kernels;
}

int sola_gemm_env_warning(char *buf, size_t n)
{
    (void)buf;
    (void)n;
    return 0;
}

/* ---- prepared right-hand sides --------------------------------------------------- */

struct sola_gemm_w {
    int K, N, trans, accumulate;
    int ktrans;           /* the layout the kernel reads: 0 [K, N], 1 [N, K], -1 other */
    dnnl_primitive_t prim;
    dnnl_memory_t wmem;   /* the weights in the primitive's layout */
    float *owned;         /* their storage when reordered (NULL: the caller's W) */
    size_t scratch;       /* scratchpad bytes the primitive asks for */
    char impl[64];
    /* Column chunks (the pool path, see "the pool" below): chunks of cw[0] columns and
     * a last one of cw[1] (0: none). Each chunk's weights are copied once into an
     * array of their own, [K, cw[0]] with leading dimension cld (see "the chunk
     * layout"), chunk c at chunks + c * cstride; a task is one single-threaded
     * dnnl_sgemm of a tile of rows against one chunk. nchunks 0: the pool path is off. */
    int nchunks, cw[2], cld;
    size_t cstride;
    float *chunks;
    /* The short-pass layout (see "short passes"): the same weights again, transposed,
     * in chunks of SHORT_COLS output columns, chunk c at tchunks + c * tstride, each
     * [width, K] with leading dimension K. NULL: short passes take the chunks above. */
    int ntchunks;
    size_t tstride;
    float *tchunks;
};

#define DNNL_TRY(call)                                                                     \
    do {                                                                                   \
        if ((st = (call)) != dnnl_success)                                                 \
            goto fail;                                                                     \
    } while (0)

/* ---- copies between layouts ---------------------------------------------------- */

/* d[c * ldd + r] = s[r * lds + c] for r < rows, c < cols (s [rows, cols] transposed
 * into d [cols, rows]), in blocks of 16 x 16 so that both sides stay in cache. */
static void transpose(float *d, size_t ldd, const float *s, size_t lds, size_t rows,
                      size_t cols)
{
    for (size_t r0 = 0; r0 < rows; r0 += 16)
        for (size_t c0 = 0; c0 < cols; c0 += 16) {
            size_t r1 = r0 + 16 < rows ? r0 + 16 : rows, c1 = c0 + 16 < cols ? c0 + 16 : cols;
            for (size_t c = c0; c < c1; c++)
                for (size_t r = r0; r < r1; r++)
                    d[c * ldd + r] = s[r * lds + c];
        }
}

/* Zeroes columns [c0, c1) of the `rows` rows of d (leading dimension ld). */
static void zero_cols(float *d, size_t ld, size_t rows, size_t c0, size_t c1)
{
    for (size_t r = 0; r < rows && c1 > c0; r++)
        memset(d + r * ld + c0, 0, (c1 - c0) * sizeof(float));
}

/* ---- the chunk layout ----------------------------------------------------------
 *
 * The nocopy kernel reads the weights straight from memory (no packing), so their
 * layout is what it streams. Measured on one core (Zen 3, AVX2, oneDNN 2.6.3; tiles of
 * 240 rows, 256-column chunks, [1008, 2048] x [2048, 2560]): chunks read as strided
 * views of the whole [K, N] array (leading dimension 2560) ran at 62 GFLOPS, the
 * transposed W4 ([N, K]) at 45-50; the same chunks copied into arrays of their own,
 * [K, 256] with a leading dimension of 256 + 16 floats, at 86-93 -- more than the
 * library's own single-threaded copy-based sgemm of the whole product (86). Without
 * the 16 floats of padding (a leading dimension of a power of two) 62-75: the rows of
 * a chunk then fall on the same cache sets. So every chunk, W4's too, is copied at
 * pack time into that form ([K, cw], untransposed: the kernel then cuts rows into
 * blocks of 48, tile_ok's trans = 0). The leading dimension stays a multiple of 8
 * floats and every chunk starts 64-byte aligned, so the kernel reads the weights
 * directly (it copies them to a buffer first when they are not 32-byte aligned; the
 * same arithmetic either way). */
enum { CHUNK_PAD = 16 };

/* A copy of W into one of the layouts below, one chunk per item, as a range pass on
 * the pool (sola_gemm_pool_for): the copies of a large model take a few tens of ms. */
typedef struct chunkcopy {
    sola_gemm_w *w;
    const float *W;
} chunkcopy;

static void run_copies(sola_gemm_range_fn fn, sola_gemm_w *w, const float *W, size_t n)
{
    chunkcopy cc = {w, W};
    if (!sola_gemm_pool_for(n, 1, fn, &cc))
        fn(&cc, 0, n);
}

/* Chunks [c0, c1) of w->chunks from W. */
static void copy_chunks(void *arg, size_t c0, size_t c1)
{
    const chunkcopy *cc = arg;
    const sola_gemm_w *w = cc->w;
    int cw = w->cw[0], ld = w->cld;
    for (size_t c = c0; c < c1; c++) {
        int j0 = (int)c * cw, n = (int)c == w->nchunks - 1 && w->cw[1] ? w->cw[1] : cw;
        float *d = w->chunks + c * w->cstride;
        if (!w->trans)
            for (int k = 0; k < w->K; k++)
                memcpy(d + (size_t)k * ld, cc->W + (size_t)k * w->N + j0,
                       (size_t)n * sizeof(float));
        else /* W [N, K]: its rows j0.. are the chunk's columns */
            transpose(d, (size_t)ld, cc->W + (size_t)j0 * w->K, (size_t)w->K, (size_t)n,
                      (size_t)w->K);
        zero_cols(d, (size_t)ld, (size_t)w->K, (size_t)n, (size_t)ld);
    }
}

/* Copies W ([K, N], or [N, K] when trans) into w->chunks; 0 or -1 (out of memory). */
static int make_chunks(sola_gemm_w *w, const float *W)
{
    int cw = w->N > CHUNK_COLS ? CHUNK_COLS : w->N;
    int widths[2] = {cw, w->N % cw};
    int nchunks = w->N / cw + (widths[1] ? 1 : 0);
    int ld = (cw + 7) / 8 * 8 + CHUNK_PAD;
    size_t stride = ((size_t)w->K * (size_t)ld + 15) / 16 * 16;
    float *p = sola_bigbuf_alloc(stride * (size_t)nchunks * sizeof(float));
    if (!p)
        return -1;
    w->chunks = p;
    w->cld = ld;
    w->cstride = stride;
    w->cw[0] = widths[0];
    w->cw[1] = widths[1];
    w->nchunks = nchunks;
    run_copies(copy_chunks, w, W, (size_t)nchunks);
    return 0;
}

/* ---- short passes ------------------------------------------------------------------
 *
 * A pass of a few rows (a lone short request) streams every weight once and does
 * little arithmetic on each, so what counts is how the kernel reads the weights. In the
 * chunk layout the nocopy kernel takes them as its "A" (our rows are its n): it walks
 * each chunk in 16-column strips down all K rows -- one 64-byte piece of every
 * 1088-byte row -- and again for every group of 6 rows. Measured on one core (Zen 3,
 * oneDNN 2.6.3, [16, 2048] x [2048, 2560] streamed from memory): 46-51 GFLOPS in
 * 256-column chunks, 30-52 in 16- to 128-column ones. Swapping the roles -- our rows
 * its m (one 16-lane strip), the weights its "B", read as SHORT_COLS rows of W^T side
 * by side, each contiguous along K -- streams them once, in order: 67-78 GFLOPS
 * (64-column chunks). The input is transposed into [K, P] first (P = the rows rounded
 * up to 16, the extra lanes zero) and each chunk's output [width, P] back into Y.
 *
 * The bits: every row is then computed by the kernel's full 16-lane strip, and each
 * lane's arithmetic (the k order, alpha, the sum with Y) was found identical to what
 * the chunk layout does with a row in a group of 4-6 -- checked bitwise for every row
 * count the row plan allows up to 263, K = 512 and 2048, alpha 1 and 0.37, with and
 * without accumulation. So a short pass gives every row the bits the same row gets in
 * any pass on the chunk layout (test_batching checks it through the refine), and
 * which layout a pass takes depends only on its row count. Passes of more than
 * SHORT_ROWS rows keep the chunk layout, which is faster there (87 against 76 GFLOPS
 * at 100 rows) and needs no transposes. */
enum { SHORT_COLS = 64, SHORT_ROWS = 32 };

/* 1 if short passes may take the transposed layout for [K, N] weights: the shapes the
 * bits were checked on (K and N multiples of 64: no partial strip or group of columns
 * on either side, no short k tail). Other shapes keep the chunk layout for every pass. */
static int short_ok(int K, int N)
{
    return K % 64 == 0 && N % 64 == 0;
}

/* Chunks [c0, c1) of w->tchunks from W: row j of W^T (column j of W) at
 * tchunks + (j / SHORT_COLS) * tstride + (j % SHORT_COLS) * K. */
static void copy_tchunks(void *arg, size_t c0, size_t c1)
{
    const chunkcopy *cc = arg;
    const sola_gemm_w *w = cc->w;
    for (size_t c = c0; c < c1; c++) {
        size_t j0 = c * SHORT_COLS;
        size_t width = (size_t)w->N - j0 < SHORT_COLS ? (size_t)w->N - j0 : SHORT_COLS;
        float *d = w->tchunks + c * w->tstride;
        if (w->trans) /* W [N, K]: already rows of W^T */
            memcpy(d, cc->W + j0 * (size_t)w->K, width * (size_t)w->K * sizeof(float));
        else
            transpose(d, (size_t)w->K, cc->W + j0, (size_t)w->N, (size_t)w->K, width);
    }
}

/* Copies W ([K, N], or [N, K] when trans) into w->tchunks; 0 or -1 (out of memory). */
static int make_tchunks(sola_gemm_w *w, const float *W)
{
    int n = (w->N + SHORT_COLS - 1) / SHORT_COLS;
    size_t stride = ((size_t)SHORT_COLS * (size_t)w->K + 15) / 16 * 16;
    float *p = sola_bigbuf_alloc(stride * (size_t)n * sizeof(float));
    if (!p)
        return -1;
    w->tchunks = p;
    w->tstride = stride;
    w->ntchunks = n;
    run_copies(copy_tchunks, w, W, (size_t)n);
    return 0;
}

sola_gemm_w *sola_gemm_w_new(int K, int N, int trans, int accumulate, const float *W,
                             size_t min_rows, sola_err *e)
{
    sola_gemm_w *w = calloc(1, sizeof *w);
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL, rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t user = NULL;
    dnnl_status_t st = dnnl_success;
    if (!w) {
        sola_errf(e, SOLA_ENOMEM, "gemm: out of memory");
        return NULL;
    }
    w->K = K, w->N = N, w->trans = trans, w->accumulate = accumulate;
    dnnl_stream_t s = thread_stream();
    if (!s) {
        sola_errf(e, SOLA_EIO, "gemm: oneDNN has no CPU engine here");
        goto err;
    }
    dnnl_dims_t sd = {DNNL_RUNTIME_DIM_VAL, K}, wd = {K, N}, dd = {DNNL_RUNTIME_DIM_VAL, N};
    dnnl_memory_desc_t smd, wany, wuser, dmd;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&smd, 2, sd, dnnl_f32, dnnl_ab));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_f32, dnnl_ab));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&wany, 2, wd, dnnl_f32, dnnl_format_tag_any));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&wuser, 2, wd, dnnl_f32, trans ? dnnl_ba : dnnl_ab));
    dnnl_matmul_desc_t md;
    DNNL_TRY(dnnl_matmul_desc_init(&md, &smd, &wany, NULL, &dmd));
    DNNL_TRY(dnnl_primitive_attr_create(&attr));
    /* alpha given at each call; our scratchpad, so concurrent calls share nothing */
    DNNL_TRY(dnnl_primitive_attr_set_output_scales(attr, 1, 0, (float[]){DNNL_RUNTIME_F32_VAL}));
    DNNL_TRY(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    if (accumulate) {
        DNNL_TRY(dnnl_post_ops_create(&po));
        DNNL_TRY(dnnl_post_ops_append_sum(po, 1.0f));
        DNNL_TRY(dnnl_primitive_attr_set_post_ops(attr, po));
    }
    DNNL_TRY(dnnl_primitive_desc_create(&pd, &md, attr, g_engine, NULL));
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
        impl)
        snprintf(w->impl, sizeof w->impl, "%s", impl);
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *spmd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    w->scratch = spmd ? dnnl_memory_desc_get_size(spmd) : 0;
    dnnl_memory_desc_t wab, wba;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&wab, 2, wd, dnnl_f32, dnnl_ab));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&wba, 2, wd, dnnl_f32, dnnl_ba));
    w->ktrans = dnnl_memory_desc_equal(wmd, &wab) ? 0 : dnnl_memory_desc_equal(wmd, &wba) ? 1 : -1;
    if (rule_verified() && !strcmp(w->impl, "gemm:jit") && w->ktrans >= 0) {
        /* the pool path: the chunks are all it reads (no primitive, no reorder); the
         * short-pass copy only when short passes may come */
        int shorts = short_ok(K, N) && (min_rows == 0 || min_rows <= SHORT_ROWS);
        if (make_chunks(w, W) || (shorts && make_tchunks(w, W))) {
            sola_errf(e, SOLA_ENOMEM, "gemm: out of memory for a copy of [%d, %d] weights",
                      K, N);
            goto err;
        }
        goto done;
    }
    if (dnnl_memory_desc_equal(wmd, &wuser)) {
        DNNL_TRY(dnnl_memory_create(&w->wmem, wmd, g_engine, (void *)W));
    } else {
        size_t bytes = dnnl_memory_desc_get_size(wmd);
        w->owned = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        if (!w->owned) {
            sola_errf(e, SOLA_ENOMEM, "gemm: out of memory for %zu bytes of weights", bytes);
            goto err;
        }
        DNNL_TRY(dnnl_memory_create(&w->wmem, wmd, g_engine, w->owned));
        DNNL_TRY(dnnl_memory_create(&user, &wuser, g_engine, (void *)W));
        DNNL_TRY(dnnl_reorder_primitive_desc_create(&rpd, &wuser, g_engine, wmd, g_engine, NULL));
        DNNL_TRY(dnnl_primitive_create(&reorder, rpd));
        dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, w->wmem}};
        sync_threads();
        DNNL_TRY(dnnl_primitive_execute(reorder, s, 2, ra));
        DNNL_TRY(dnnl_stream_wait(s));
    }
    DNNL_TRY(dnnl_primitive_create(&w->prim, pd));
    goto done;
fail:
    sola_errf(e, st == dnnl_out_of_memory ? SOLA_ENOMEM : SOLA_EIO,
              "gemm: oneDNN refused a [M, %d] x [%d, %d] matmul (status %d)", K, K, N, (int)st);
err:
    sola_gemm_w_free(w);
    w = NULL;
done:
    if (reorder)
        dnnl_primitive_destroy(reorder);
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    if (user)
        dnnl_memory_destroy(user);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (po)
        dnnl_post_ops_destroy(po);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return w;
}

void sola_gemm_w_free(sola_gemm_w *w)
{
    if (!w)
        return;
    if (w->prim)
        dnnl_primitive_destroy(w->prim);
    free(w->chunks);
    free(w->tchunks);
    if (w->wmem)
        dnnl_memory_destroy(w->wmem);
    free(w->owned);
    free(w);
}

int sola_gemm_w_borrows(const sola_gemm_w *w)
{
    /* the pool path reads its chunks only; the primitive reads wmem, which is the
     * caller's W unless it was reordered into w->owned */
    return w->wmem && !w->owned;
}

/* ---- the row plan ------------------------------------------------------------------- */

/* 1 if one thread's nocopy driver cuts n rows into blocks (jit_avx_gemm_f32.cpp,
 * sgemm_nocopy_driver: blocks of 48, the last two halved when together under 96 but
 * over 72) each of which ends in a group of 4, 5 or 6 rows: groups of 4 and 5 run the
 * same per-row arithmetic as groups of 6 (the k steps alternate between two
 * accumulators per row in all three); groups of 1-3 do not. Checked on this library
 * for every n up to 300 against 6-row calls (K = 512 and 2048, chunk widths 100 to
 * 2048): this predicate is exactly the set of row counts whose bits match. */
static int blocks_ok(long n)
{
    enum { BN = 48 };
    while (n > 0) {
        long s = n;
        if (s >= 2 * BN)
            s = BN;
        else if (s > BN + BN / 2)
            s = (s + 1) / 2;
        if (s % 6 && s % 6 < 4)
            return 0;
        n -= s;
    }
    return 1;
}

/* 1 if a single-threaded call of n rows against one chunk (N columns, the chunk
 * layout) computes every row with the per-row arithmetic of a group of 6 rows. */
static int tile_ok(long n, long N)
{
    /* n < 4: the 1-3 row kernels; N == 1: the gemv kernels; n > 263: outside the
     * sizes whose nocopy choice (gemm_driver.cpp nocopy_checker_avx2) was checked;
     * N > 6048: the driver cuts the columns into two unaligned halves */
    if (n < 4 || N < 2 || n > 263 || N > 6048)
        return 0;
    return blocks_ok(n);
}

void sola_gemm_rowplan(const sola_gemm_w *const *ws, int n, sola_rowplan *p)
{
    /* without the property nothing needs padding: one call over the rows as they are */
    p->seq_align = 1;
    p->min_rows = 0;
    p->quantum = p->small_quantum = 1;
    p->small_max = 0;
    p->tile = 0;
    p->exact = rule_verified();
    for (int i = 0; i < n && p->exact; i++)
        if (!ws[i]->nchunks)
            p->exact = 0;
    if (!p->exact)
        return;
    /* Passes are cut as the pool cuts them: tiles of TILE_MAX rows, then the rest, and
     * sola_rowplan_rows picks a rest that tile_ok accepts. Every operand must accept
     * every such tile size with each of its chunk widths. */
    for (long r = 1; r <= TILE_MAX && p->exact; r++) {
        if (!blocks_ok(r) || r < 4)
            continue;
        for (int i = 0; i < n; i++)
            for (int c = 0; c < 2; c++)
                if (ws[i]->cw[c] && !tile_ok(r, ws[i]->cw[c]))
                    p->exact = 0;
    }
    if (p->exact && blocks_ok(TILE_MAX))
        p->tile = TILE_MAX;
    else
        p->exact = 0;
}

size_t sola_rowplan_rows(const sola_rowplan *p, size_t rows)
{
    size_t r = rows < p->min_rows ? p->min_rows : rows;
    if (p->tile) {
        while (r % p->tile && (r % p->tile < 4 || !blocks_ok((long)(r % p->tile))))
            r++;
        return r;
    }
    size_t q = r <= p->small_max && p->small_quantum ? p->small_quantum : p->quantum;
    if (!q)
        q = 1;
    return (r + q - 1) / q * q;
}

/* ---- the pool ----------------------------------------------------------------------
 *
 * OpenMP cuts a product among its threads statically and ends it at a barrier, so
 * every product waits for its slowest thread. On a machine whose cores are shared
 * (other processes, other compute workers) one preempted thread then stalls the pass
 * for a scheduler quantum per product: measured at load average 9-20 on 2 cores, a
 * T = 16 refine took 45 ms where ONNX Runtime, whose pool hands work out on demand,
 * took 9. So a prepared product on the pool path is cut into tasks -- a tile of rows
 * (TILE_MAX, the last one the rest) times a chunk of CHUNK_COLS output columns --
 * each one single-threaded dnnl_sgemm on the chunk's own copy of the weights; the
 * calling thread and its helpers (threads - 1 of them, per calling thread) take tasks
 * from a counter until none is left. A helper that is not running leaves its share to
 * the others instead of holding them up. Each task computes its
 * rows exactly as a single-threaded call of that tile size does (tile_ok with one
 * thread), whoever runs it, so the bits depend neither on the pass's other rows nor
 * on the thread count. Helpers spin for a short while after a product (the next one
 * of the pass follows within microseconds), then sleep. */

#define SPIN_S 200e-6 /* how long a helper spins after a product */

typedef struct taskset {
    /* a range pass (sola_gemm_pool_for) instead of a product: task i is items
     * [n * i / ntasks, n * (i + 1) / ntasks) of fn */
    sola_gemm_range_fn fn;
    void *arg;
    size_t n;
    const sola_gemm_w *w;
    size_t rows, ntiles, ntasks;
    const float *X;
    float *Y;
    float alpha;
    const float *xt;              /* a short pass: the rows transposed, [K, P]; else NULL */
    size_t P;
    atomic_size_t next, done;
    atomic_int st;                /* the first failure, else dnnl_success */
} taskset;

typedef struct pool {
    int nhelpers;
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;              /* odd: cur holds work */
    atomic_int inside;            /* helpers looking at cur */
    taskset *_Atomic cur;
    atomic_int stop;
    atomic_int rest;              /* sola_gemm_rest: sleep now, no product follows soon */
} pool;

static _Thread_local pool *t_pool;
static pthread_key_t g_pool_key;
static pthread_once_t g_pool_once = PTHREAD_ONCE_INIT;

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Runs one task: tile i / chunk c of the taskset, on this thread alone (the caller
 * has set this thread's OpenMP count to 1). */
static dnnl_status_t run_task(taskset *ts, size_t task)
{
    if (ts->fn) {
        ts->fn(ts->arg, ts->n * task / ts->ntasks, ts->n * (task + 1) / ts->ntasks);
        return dnnl_success;
    }
    const sola_gemm_w *w = ts->w;
    if (ts->xt) { /* a short pass: task = a chunk of SHORT_COLS columns of every row */
        static _Thread_local float yt[SHORT_COLS * SHORT_ROWS] __attribute__((aligned(64)));
        size_t c0 = task * SHORT_COLS, P = ts->P, rows = ts->rows;
        int width = w->N - (int)c0 < SHORT_COLS ? w->N - (int)c0 : SHORT_COLS;
        float *y = ts->Y + c0;
        if (w->accumulate) {
            transpose(yt, P, y, (size_t)w->N, rows, (size_t)width);
            zero_cols(yt, P, (size_t)width, rows, P);
        } else {
            memset(yt, 0, (size_t)width * P * sizeof(float));
        }
        dnnl_status_t st = dnnl_sgemm('N', 'N', width, (dnnl_dim_t)P, w->K, ts->alpha,
                                      w->tchunks + task * w->tstride, w->K, ts->xt,
                                      (dnnl_dim_t)P, w->accumulate ? 1.0f : 0.0f, yt,
                                      (dnnl_dim_t)P);
        transpose(y, (size_t)w->N, yt, P, (size_t)width, rows);
        return st;
    }
    size_t tile = task / (size_t)w->nchunks;
    int c = (int)(task % (size_t)w->nchunks);
    size_t r0 = tile * TILE_MAX, n = ts->rows - r0 < TILE_MAX ? ts->rows - r0 : TILE_MAX;
    int width = c == w->nchunks - 1 && w->cw[1] ? w->cw[1] : w->cw[0];
    size_t c0 = (size_t)c * (size_t)w->cw[0];
    return dnnl_sgemm('N', 'N', (dnnl_dim_t)n, width, w->K, ts->alpha,
                      ts->X + r0 * (size_t)w->K, w->K, w->chunks + (size_t)c * w->cstride,
                      w->cld, w->accumulate ? 1.0f : 0.0f, ts->Y + r0 * (size_t)w->N + c0,
                      w->N);
}

/* Takes and runs tasks until none is left. */
static void take_tasks(taskset *ts)
{
    size_t i;
    while ((i = atomic_fetch_add(&ts->next, 1)) < ts->ntasks) {
        dnnl_status_t st = run_task(ts, i);
        if (st != dnnl_success) {
            int ok = dnnl_success;
            atomic_compare_exchange_strong(&ts->st, &ok, (int)st);
        }
        atomic_fetch_add_explicit(&ts->done, 1, memory_order_release);
    }
}

static void *helper_main(void *arg)
{
    pool *p = arg;
    omp_set_num_threads(1);
    unsigned seen = 0;
    for (;;) {
        unsigned g = atomic_load(&p->gen);
        if (!(g & 1) || g == seen) {
            double t0 = sola_now_s();
            for (int i = 0;; i++) {
                g = atomic_load(&p->gen);
                if (((g & 1) && g != seen) || atomic_load(&p->stop))
                    break;
                cpu_relax();
                if (atomic_load_explicit(&p->rest, memory_order_relaxed) ||
                    ((i & 255) == 255 && sola_now_s() - t0 > SPIN_S)) {
                    pthread_mutex_lock(&p->mu);
                    while (g = atomic_load(&p->gen), (!(g & 1) || g == seen) &&
                                                         !atomic_load(&p->stop))
                        pthread_cond_wait(&p->cv, &p->mu);
                    pthread_mutex_unlock(&p->mu);
                    break;
                }
            }
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = g;
        atomic_fetch_add(&p->inside, 1);
        taskset *ts = atomic_load(&p->gen) == g ? atomic_load(&p->cur) : NULL;
        if (ts)
            take_tasks(ts);
        atomic_fetch_sub(&p->inside, 1);
    }
}

static void pool_free(pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nhelpers; i++)
        pthread_join(p->th[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->th);
    free(p);
}

static void pool_key_destroy(void *p)
{
    pool_free(p);
}

static void pool_key_once(void)
{
    pthread_key_create(&g_pool_key, pool_key_destroy);
}

/* The calling thread's pool with `helpers` helpers (NULL: none could be started, then
 * the caller runs every task). */
static pool *thread_pool(int helpers)
{
    if (t_pool && t_pool->nhelpers == helpers)
        return t_pool;
    pthread_once(&g_pool_once, pool_key_once);
    pool_free(t_pool);
    t_pool = NULL;
    pthread_setspecific(g_pool_key, NULL);
    pool *p = calloc(1, sizeof *p);
    if (!p || !(p->th = calloc((size_t)helpers, sizeof *p->th))) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (; p->nhelpers < helpers; p->nhelpers++)
        if (pthread_create(&p->th[p->nhelpers], NULL, helper_main, p))
            break;
    t_pool = p;
    pthread_setspecific(g_pool_key, p);
    return p;
}

void sola_gemm_rest(void)
{
    if (t_pool)
        atomic_store_explicit(&t_pool->rest, 1, memory_order_relaxed);
}

/* The calling thread's buffer for a short pass's transposed rows, at least n floats
 * (freed with the thread), or NULL. */
static pthread_key_t g_short_key;
static pthread_once_t g_short_once = PTHREAD_ONCE_INIT;
static _Thread_local size_t t_short_cap;

static void short_key_once(void)
{
    pthread_key_create(&g_short_key, free);
}

static float *short_buffer(size_t n)
{
    pthread_once(&g_short_once, short_key_once);
    float *b = pthread_getspecific(g_short_key);
    if (b && n <= t_short_cap)
        return b;
    float *q = aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63);
    if (!q)
        return NULL;
    free(b);
    pthread_setspecific(g_short_key, q);
    t_short_cap = n;
    return q;
}

/* Runs the tasks of ts on the calling thread and its pool (nthr threads in all). */
static dnnl_status_t run_pooled(taskset *ts, int nthr)
{
    atomic_init(&ts->next, 0);
    atomic_init(&ts->done, 0);
    atomic_init(&ts->st, dnnl_success);
    pool *p = nthr > 1 && ts->ntasks > 1 ? thread_pool(nthr - 1) : NULL;
    if (p && p->nhelpers) {
        atomic_store_explicit(&p->rest, 0, memory_order_relaxed);
        atomic_store(&p->cur, ts);
        pthread_mutex_lock(&p->mu);
        atomic_fetch_add(&p->gen, 1); /* odd: work */
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    omp_set_num_threads(1);
    take_tasks(ts);
    omp_set_num_threads(nthr);
    if (p && p->nhelpers) {
        atomic_fetch_add(&p->gen, 1); /* even: no helper looks at ts from now on */
        for (int i = 0; atomic_load(&p->inside) > 0; i++)
            if (i > 1000)
                sched_yield();
            else
                cpu_relax();
        atomic_store(&p->cur, NULL);
    }
    /* every task was taken; wait for the ones still running elsewhere */
    while (atomic_load_explicit(&ts->done, memory_order_acquire) < ts->ntasks)
        sched_yield();
    return (dnnl_status_t)atomic_load(&ts->st);
}

/* The pool path of sola_gemm_w_rows (w->nchunks > 0). */
static dnnl_status_t rows_pooled(const sola_gemm_w *w, size_t rows, const float *X,
                                 float alpha, float *Y)
{
    int nthr = sola_gemm_threads();
    taskset ts = {.w = w, .rows = rows, .X = X, .Y = Y, .alpha = alpha};
    ts.ntiles = (rows + TILE_MAX - 1) / TILE_MAX;
    ts.ntasks = ts.ntiles * (size_t)w->nchunks;
    if (w->tchunks && rows <= SHORT_ROWS) {
        /* a short pass: X transposed into [K, P] for the tasks (this thread's buffer) */
        size_t P = (rows + 15) / 16 * 16;
        float *xt = short_buffer((size_t)w->K * P);
        if (!xt)
            return dnnl_out_of_memory;
        transpose(xt, P, X, (size_t)w->K, rows, (size_t)w->K);
        zero_cols(xt, P, (size_t)w->K, rows, P);
        ts.xt = xt;
        ts.P = P;
        ts.ntasks = (size_t)w->ntchunks;
    }
    return run_pooled(&ts, nthr);
}

/* ---- range passes on the pool (sola_gemm_pool_for) ----------------------------------
 *
 * Work between the products of a pass (a refine's shifted sums and bias passes) and the
 * copies of a pack run as tasks of the same pool, on the threads that are awake for
 * the products anyway, handed out on demand. */
int sola_gemm_pool_for(size_t n, size_t grain, sola_gemm_range_fn fn, void *arg)
{
    if (n == 0)
        return 1;
    if (grain < 1)
        grain = 1;
    int nthr = sola_gemm_threads();
    size_t parts = n / grain;
    if (nthr < 2 || parts < 2) {
        fn(arg, 0, n);
        return 1;
    }
    taskset ts = {.fn = fn, .arg = arg, .n = n};
    ts.ntasks = parts < (size_t)nthr * 4 ? parts : (size_t)nthr * 4;
    (void)run_pooled(&ts, nthr);
    return 1;
}

int sola_gemm_w_rows(const sola_gemm_w *w, size_t rows, const float *X, float alpha,
                     float *Y, sola_err *e)
{
    if (rows == 0)
        return 0;
    dnnl_stream_t s = thread_stream();
    if (!s)
        return sola_errf(e, SOLA_EIO, "gemm: oneDNN has no CPU engine here");
    sync_threads();
    void *scratch = NULL;
    dnnl_memory_t sp = NULL, am = NULL;
    dnnl_status_t st = dnnl_success;
    int rc = 0;
    if (w->nchunks) {
        st = rows_pooled(w, rows, X, alpha, Y);
        if (st != dnnl_success)
            goto fail;
        return 0;
    }
    if (w->scratch) {
        dnnl_dims_t d = {(dnnl_dim_t)w->scratch};
        dnnl_memory_desc_t smd;
        scratch = aligned_alloc(64, (w->scratch + 63) & ~(size_t)63);
        if (!scratch)
            return sola_errf(e, SOLA_ENOMEM, "gemm: out of memory for a scratchpad");
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&smd, 1, d, dnnl_u8, dnnl_a));
        DNNL_TRY(dnnl_memory_create(&sp, &smd, g_engine, scratch));
    }
    dnnl_dims_t ad = {1};
    dnnl_memory_desc_t amd;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&amd, 1, ad, dnnl_f32, dnnl_a));
    DNNL_TRY(dnnl_memory_create(&am, &amd, g_engine, &alpha));
    /* no row independence to keep here (the plan says exact = 0): one call */
    dnnl_dims_t sd = {(dnnl_dim_t)rows, w->K}, dd = {(dnnl_dim_t)rows, w->N};
    dnnl_memory_desc_t smd, dmd;
    dnnl_memory_t xm = NULL, ym = NULL;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&smd, 2, sd, dnnl_f32, dnnl_ab));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_f32, dnnl_ab));
    DNNL_TRY(dnnl_memory_create(&xm, &smd, g_engine, (void *)X));
    if ((st = dnnl_memory_create(&ym, &dmd, g_engine, Y)) != dnnl_success) {
        dnnl_memory_destroy(xm);
        goto fail;
    }
    dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, w->wmem},
                            {DNNL_ARG_DST, ym}, {DNNL_ARG_ATTR_OUTPUT_SCALES, am},
                            {DNNL_ARG_SCRATCHPAD, sp}};
    st = dnnl_primitive_execute(w->prim, s, sp ? 5 : 4, a);
    if (st == dnnl_success)
        st = dnnl_stream_wait(s);
    dnnl_memory_destroy(xm);
    dnnl_memory_destroy(ym);
    if (st != dnnl_success)
        goto fail;
    goto done;
fail:
    rc = sola_errf(e, st == dnnl_out_of_memory ? SOLA_ENOMEM : SOLA_EIO,
                   "gemm: oneDNN failed a [%zu, %d] x [%d, %d] product (status %d)", rows,
                   w->K, w->K, w->N, (int)st);
done:
    if (am)
        dnnl_memory_destroy(am);
    if (sp)
        dnnl_memory_destroy(sp);
    free(scratch);
    return rc;
}

/* ---- elementwise work on the OpenMP team (sola_gemm_team_for; the trainer) ------------
 *
 * The training step alternates sola_sgemm calls with elementwise passes (im2col, bias
 * and ReLU, normalize, the loss, AdamW). dnnl_sgemm runs on the calling thread's
 * OpenMP team, whose workers spin for a while after each product before they sleep:
 * a pass run by the calling thread alone, or by threads of its own, then shares the
 * two cores with a spinning worker. Run on the same team instead, the pass uses the
 * worker that is awake anyway. Ranges are handed out on demand (4 per thread), so a
 * preempted thread leaves its share to the others. */
int sola_gemm_team_for(size_t n, size_t grain, sola_gemm_range_fn fn, void *arg)
{
    if (n == 0)
        return 1;
    if (grain < 1)
        grain = 1;
    int nt = sola_gemm_threads();
    size_t parts = n / grain;
    if (nt < 2 || parts < 2 || omp_in_parallel()) {
        fn(arg, 0, n);
        return 1;
    }
    size_t nr = parts < (size_t)nt * 4 ? parts : (size_t)nt * 4;
    if ((size_t)nt > nr)
        nt = (int)nr;
    atomic_size_t next;
    atomic_init(&next, 0);
#pragma omp parallel num_threads(nt)
    {
        size_t i;
        while ((i = atomic_fetch_add(&next, 1)) < nr)
            fn(arg, n * i / nr, n * (i + 1) / nr);
    }
    return 1;
}
