/* bench_refine.c -- speed of the SoLa forward pass, as a fraction of this machine's
 * sgemm peak measured in the same run (DESIGN.md "Compute").
 *
 *   bench_refine [--threads N] [--C 2048] [--H 512] [--k1 5] [--k2 1]
 *                [--T 16,100,1000,2304] [--budget SECONDS]
 *
 * Prints one line per T: median ms per sola_refine call, GFLOPS (sola_refine_flops /
 * time) and the fraction of the peak, where the peak is the best of several
 * cblas_sgemm 2048x2048x2048 runs with the same thread count. bench/bench_torch.py
 * runs the same shapes in PyTorch (and, given --ours, this program) for comparison. *
 * OpenBLAS picks its kernels at load time from the CPU, unless OPENBLAS_CORETYPE says
 * otherwise; the first line printed names the kernel set, so runs are comparable. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"
#include "refine.h"
#include "rng.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *randn(size_t n, uint64_t seed)
{
    sola_rng r;
    sola_rng_seed(&r, seed);
    float *x = malloc(n * sizeof(float));
    if (!x) {
        fprintf(stderr, "bench_refine: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        x[i] = (float)sola_rng_normal(&r);
    return x;
}

/* Best GFLOPS of `reps` n x n x n sgemms (after one warm-up). */
static double sgemm_peak(int n, int reps)
{
    size_t nn = (size_t)n * (size_t)n;
    float *a = randn(nn, 1), *b = randn(nn, 2), *c = malloc(nn * sizeof(float));
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        t = now() - t;
        if (r > 0 && t < best)
            best = t;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * (double)n * n / best * 1e-9;
}

int main(int argc, char **argv)
{
    int threads = 2, C = 2048, H = 512, k1 = 5, k2 = 1;
    double budget = 2.0; /* seconds of timed calls per T, roughly */
    char tlist[256] = "16,100,1000,2304";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bench_refine: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--C"))
            C = atoi(v);
        else if (!strcmp(a, "--H"))
            H = atoi(v);
        else if (!strcmp(a, "--k1"))
            k1 = atoi(v);
        else if (!strcmp(a, "--k2"))
            k2 = atoi(v);
        else if (!strcmp(a, "--T"))
            snprintf(tlist, sizeof tlist, "%s", v);
        else if (!strcmp(a, "--budget"))
            budget = atof(v);
        else {
            fprintf(stderr, "usage: bench_refine [--threads N] [--C C] [--H H] [--k1 K] "
                            "[--k2 K] [--T 16,100,...] [--budget SECONDS]\n");
            return 2;
        }
        i++;
    }
    if (threads < 1)
        threads = 1;
    openblas_set_num_threads(threads);

    sola_err e = {0};
    sola_model *m = sola_model_new(C, H, k1, k2, 0, &e);
    if (!m) {
        fprintf(stderr, "bench_refine: %s\n", e.msg);
        return 1;
    }
    sola_model_init(m, 1);
    m->alpha[0] = 0.5f; /* alpha = 0 would take the identity shortcut */
    if (sola_model_pack(m, &e)) {
        fprintf(stderr, "bench_refine: %s\n", e.msg);
        return 1;
    }

    double peak = sgemm_peak(2048, 5);
    printf("# OpenBLAS core %s, %d thread(s) (asked %d)\n", openblas_get_corename(),
           openblas_get_num_threads(), threads);
    printf("# sgemm peak (2048^3, best of 5): %.1f GFLOPS\n", peak);
    printf("# model C=%d H=%d k1=%d k2=%d\n", C, H, k1, k2);
    printf("%6s %10s %9s %8s %5s\n", "T", "ms/call", "GFLOPS", "%peak", "reps");

    sola_ws *ws = sola_ws_new();
    for (char *tok = strtok(tlist, ","); tok; tok = strtok(NULL, ",")) {
        int T = atoi(tok);
        if (T < 1)
            continue;
        size_t n = (size_t)T * (size_t)C;
        float *x = randn(n, (uint64_t)T), *y = malloc(n * sizeof(float));
        /* warm-up: grows the workspace, faults the pages in, starts the BLAS threads */
        double t0 = now();
        if (sola_refine(m, x, T, y, ws, &e)) {
            fprintf(stderr, "bench_refine: %s\n", e.msg);
            return 1;
        }
        sola_refine(m, x, T, y, ws, &e);
        double one = (now() - t0) / 2;
        int reps = (int)(budget / (one > 1e-6 ? one : 1e-6));
        reps = reps < 5 ? 5 : reps > 201 ? 201 : reps;
        double *ts = malloc((size_t)reps * sizeof(double));
        for (int r = 0; r < reps; r++) {
            double t = now();
            sola_refine(m, x, T, y, ws, &e);
            ts[r] = now() - t;
        }
        qsort(ts, (size_t)reps, sizeof(double), cmp_double);
        double med = ts[reps / 2], gf = sola_refine_flops(m, T) / med * 1e-9;
        printf("%6d %10.3f %9.1f %7.1f%% %5d\n", T, med * 1e3, gf, 100 * gf / peak, reps);
        fflush(stdout);
        free(ts);
        free(x);
        free(y);
    }
    sola_ws_free(ws);
    sola_model_free(m);
    return 0;
}
