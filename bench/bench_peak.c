/* bench_peak -- the ceiling the GEMM figures are measured against: this CPU's own
 * fused multiply-add rate (8-wide AVX2 FMAs, 12 independent chains per thread so the
 * two FMA pipes never wait), on 1 and on --threads threads, next to the backend's
 * sgemm (sola_sgemm) on a square product of --n, measured in the same run.
 *
 *   bench_peak [--threads 2] [--n 2048] [--seconds 1]
 *
 * Prints GFLOPS and the sgemm's fraction of the FMA ceiling. The FMA loop is the
 * upper bound no library can pass: a GEMM also loads and stores. On a CPU without
 * AVX2+FMA it says so and measures only the sgemm. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_FMA_LOOP 1

typedef struct {
    double seconds; /* run at least this long */
    double flops;   /* out */
    float sink;     /* out: keeps the chains alive */
} peak_job;

__attribute__((target("avx2,fma"))) static void *fma_loop(void *arg)
{
    peak_job *j = arg;
    __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    double t0 = sola_now_s(), iters = 0;
    while (sola_now_s() - t0 < j->seconds) {
        for (int r = 0; r < 100000; r++)
            for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
        iters += 100000;
    }
    double dt = sola_now_s() - t0;
    j->flops = iters * 12 * 8 * 2 / dt;
    __m256 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    j->sink = out[0];
    return NULL;
}

/* Total FMA GFLOPS of n threads run at once; 0 if a thread cannot start. */
static double fma_peak(int n, double seconds)
{
    pthread_t th[64];
    peak_job job[64];
    if (n > 64) n = 64;
    int started = 0;
    for (int i = 0; i < n; i++) {
        job[i] = (peak_job){ .seconds = seconds };
        if (pthread_create(&th[i], NULL, fma_loop, &job[i])) break;
        started++;
    }
    double total = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        total += job[i].flops;
    }
    return started == n ? total / 1e9 : 0;
}
#endif

int main(int argc, char **argv)
{
    int threads = 2, n = 2048;
    double seconds = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--n")) n = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--seconds")) seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_peak [--threads N] [--n N] [--seconds S]\n");
            return 2;
        }
    }
    if (threads < 1 || n < 64 || seconds <= 0) {
        fprintf(stderr, "bench_peak: --threads >= 1, --n >= 64, --seconds > 0\n");
        return 2;
    }
    printf("# %s, %s\n", sola_gemm_backend(), sola_gemm_kernels());
    double p1 = 0, pn = 0;
#ifdef HAVE_FMA_LOOP
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        p1 = fma_peak(1, seconds);
        pn = fma_peak(threads, seconds);
        printf("fma ceiling: %.1f GFLOPS on 1 thread, %.1f on %d\n", p1, pn, threads);
    } else
#endif
        printf("fma ceiling: not measured (no AVX2+FMA)\n");

    float *A = malloc((size_t)n * n * sizeof *A), *B = malloc((size_t)n * n * sizeof *B),
          *C = malloc((size_t)n * n * sizeof *C);
    if (!A || !B || !C) {
        fprintf(stderr, "bench_peak: out of memory for three %d x %d matrices\n", n, n);
        return 1;
    }
    for (size_t i = 0; i < (size_t)n * n; i++) {
        A[i] = (float)(i % 17) * 0.01f;
        B[i] = (float)(i % 13) * 0.01f;
    }
    sola_gemm_set_threads(threads);
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = sola_now_s();
        sola_sgemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        double dt = sola_now_s() - t0;
        if (dt < best) best = dt;
    }
    double g = 2.0 * n * n * (double)n / best / 1e9;
    printf("sgemm %d^3 on %d threads: best %.1f ms, %.1f GFLOPS", n, threads, best * 1e3, g);
    if (pn > 0) printf(" = %.0f%% of the fma ceiling", 100 * g / pn);
    printf("\n");
    free(A);
    free(B);
    free(C);
    return 0;
}
