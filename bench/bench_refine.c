/* bench_refine.c -- speed of the SoLa forward pass, as a fraction of this machine's
 * sgemm peak measured in the same run (DESIGN.md "Compute").
 *
 *   bench_refine [--threads N] [--C 2048] [--H 512] [--k1 5] [--k2 1]
 *                [--T 16,100,1000,2304] [--budget SECONDS] [--batch B] [--serve]
 *
 * Prints one line per T: median ms per sola_refine call, GFLOPS (sola_refine_flops /
 * time) and the fraction of the peak, where the peak is the best of several
 * sola_sgemm 2048x2048x2048 runs with the same thread count. bench/bench_torch.py
 * runs the same shapes in PyTorch (and, given --ours, this program) for comparison.
 *
 * --batch B adds, per T, the time of one sola_refine_batch over B sequences of length T
 * (per sequence), next to B separate calls: what dynamic batching buys.
 *
 * --serve: instead of the table, answer requests on stdin, one per line, so that
 * bench_torch.py can interleave our calls with torch's in time (the machine is
 * shared; load that comes and goes then hits both sides alike):
 *     refine T N   ->  "T MEDIAN_MS MIN_MS"   (N timed calls after one warm-up)
 *     peak N       ->  "BEST_GFLOPS"          (N sgemm 2048^3 calls)
 *     info         ->  "CORE THREADS" *
 * OpenBLAS picks its kernels at load time from the CPU, unless OPENBLAS_CORETYPE says
 * otherwise; the first line printed names the kernel set, so runs are comparable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gemm.h"
#include "benchutil.h"
#include "model.h"
#include "refine.h"
#include "rng.h"

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
        double t = sola_now_s();
        sola_sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t = sola_now_s() - t;
        if (r > 0 && t < best)
            best = t;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * (double)n * n / best * 1e-9;
}

typedef struct bench {
    sola_model *m;
    sola_ws *ws;
    int C;
    /* inputs/outputs by T, kept so that repeated requests do not re-fault pages */
    int Ts[32];
    float *xs[32], *ys[32];
    int n;
} bench;

static int get_io(bench *b, int T, float **x, float **y)
{
    for (int i = 0; i < b->n; i++)
        if (b->Ts[i] == T) {
            *x = b->xs[i], *y = b->ys[i];
            return 0;
        }
    if (b->n == 32)
        return -1;
    size_t n = (size_t)T * (size_t)b->C;
    b->Ts[b->n] = T;
    b->xs[b->n] = randn(n, (uint64_t)T);
    b->ys[b->n] = malloc(n * sizeof(float));
    if (!b->ys[b->n])
        return -1;
    *x = b->xs[b->n], *y = b->ys[b->n];
    b->n++;
    return 0;
}

/* Median and minimum seconds of `reps` calls after one warm-up call. */
static int time_refine(bench *b, int T, int reps, double *med, double *min)
{
    float *x, *y;
    sola_err e = {0};
    if (get_io(b, T, &x, &y) || sola_refine(b->m, x, T, y, b->ws, &e)) {
        fprintf(stderr, "bench_refine: T=%d: %s\n", T, e.msg[0] ? e.msg : "out of memory");
        return -1;
    }
    double *ts = malloc((size_t)reps * sizeof(double));
    for (int r = 0; r < reps; r++) {
        double t = sola_now_s();
        sola_refine(b->m, x, T, y, b->ws, &e);
        ts[r] = sola_now_s() - t;
    }
    qsort(ts, (size_t)reps, sizeof(double), bench_cmp_double);
    *med = ts[reps / 2];
    *min = ts[0];
    free(ts);
    return 0;
}

/* Median seconds per sequence of sola_refine_batch over B sequences of length T. */
static int time_batch(bench *b, int T, int B, int reps, double *med)
{
    size_t n = (size_t)T * (size_t)B * (size_t)b->C;
    float *x = randn(n, 7), *y = malloc(n * sizeof(float));
    int *lens = malloc((size_t)B * sizeof(int));
    double *ts = malloc((size_t)reps * sizeof(double));
    sola_err e = {0};
    int rc = -1;
    if (!y || !lens || !ts)
        goto out;
    for (int i = 0; i < B; i++)
        lens[i] = T;
    if (sola_refine_batch(b->m, x, lens, B, y, b->ws, &e)) {
        fprintf(stderr, "bench_refine: batch: %s\n", e.msg);
        goto out;
    }
    for (int r = 0; r < reps; r++) {
        double t = sola_now_s();
        sola_refine_batch(b->m, x, lens, B, y, b->ws, &e);
        ts[r] = sola_now_s() - t;
    }
    qsort(ts, (size_t)reps, sizeof(double), bench_cmp_double);
    *med = ts[reps / 2] / B;
    rc = 0;
out:
    free(x);
    free(y);
    free(lens);
    free(ts);
    return rc;
}

static int serve(bench *b)
{
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        int T, n;
        double med, min;
        if (sscanf(line, "refine %d %d", &T, &n) == 2 && T >= 1 && n >= 1) {
            if (time_refine(b, T, n, &med, &min))
                return 1;
            printf("%d %.6f %.6f\n", T, med * 1e3, min * 1e3);
        } else if (sscanf(line, "peak %d", &n) == 1 && n >= 1) {
            printf("%.3f\n", sgemm_peak(2048, n));
        } else if (!strncmp(line, "info", 4)) {
            printf("%d %s\n", sola_gemm_threads(), sola_gemm_kernels());
        } else {
            fprintf(stderr, "bench_refine --serve: cannot read '%s'\n", line);
            return 2;
        }
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int threads = 2, C = 2048, H = 512, k1 = 5, k2 = 1, serve_mode = 0, batch = 1;
    double budget = 2.0; /* seconds of timed calls per T, roughly */
    char tlist[256] = "16,100,1000,2304";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--serve")) {
            serve_mode = 1;
            continue;
        }
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
        else if (!strcmp(a, "--batch"))
            batch = atoi(v);
        else {
            fprintf(stderr, "usage: bench_refine [--threads N] [--C C] [--H H] [--k1 K] "
                            "[--k2 K] [--T 16,100,...] [--budget SECONDS] [--batch B] [--serve]\n");
            return 2;
        }
        i++;
    }
    if (threads < 1)
        threads = 1;
    sola_gemm_set_threads(threads);

    sola_err e = {0};
    bench b = {0};
    b.C = C;
    b.m = sola_model_new(C, H, k1, k2, 0, &e);
    if (!b.m) {
        fprintf(stderr, "bench_refine: %s\n", e.msg);
        return 1;
    }
    sola_model_init(b.m, 1);
    b.m->alpha[0] = 0.5f; /* alpha = 0 would take the identity shortcut */
    b.ws = sola_ws_new();
    if (!b.ws || sola_model_pack(b.m, &e)) {
        fprintf(stderr, "bench_refine: %s\n", e.msg);
        return 1;
    }
    int rc = 0;
    if (serve_mode) {
        rc = serve(&b);
        goto done;
    }

    double peak = sgemm_peak(2048, 5);
    printf("# %s, %d thread(s) (asked %d)\n", sola_gemm_kernels(), sola_gemm_threads(),
           threads);
    printf("# sgemm peak (2048^3, best of 5): %.1f GFLOPS\n", peak);
    printf("# model C=%d H=%d k1=%d k2=%d\n", C, H, k1, k2);
    printf("%6s %10s %9s %8s %5s", "T", "ms/call", "GFLOPS", "%peak", "reps");
    if (batch > 1)
        printf("  %s", "batched: ms/seq GFLOPS %peak");
    printf("\n");
    for (char *tok = strtok(tlist, ","); tok; tok = strtok(NULL, ",")) {
        int T = atoi(tok);
        double med, min;
        if (T < 1)
            continue;
        /* a short probe sizes the run to the budget */
        if (time_refine(&b, T, 2, &med, &min)) {
            rc = 1;
            break;
        }
        int reps = (int)(budget / (med > 1e-6 ? med : 1e-6));
        reps = reps < 5 ? 5 : reps > 201 ? 201 : reps;
        if (time_refine(&b, T, reps, &med, &min)) {
            rc = 1;
            break;
        }
        double gf = sola_refine_flops(b.m, T) / med * 1e-9;
        printf("%6d %10.3f %9.1f %7.1f%% %5d", T, med * 1e3, gf, 100 * gf / peak, reps);
        if (batch > 1) {
            double bm;
            int br = reps / batch < 5 ? 5 : reps / batch;
            if (time_batch(&b, T, batch, br, &bm)) {
                rc = 1;
                break;
            }
            gf = sola_refine_flops(b.m, T) / bm * 1e-9;
            printf("  x%d: %8.3f %7.1f %6.1f%%", batch, bm * 1e3, gf, 100 * gf / peak);
        }
        printf("\n");
        fflush(stdout);
    }
done:
    for (int i = 0; i < b.n; i++) {
        free(b.xs[i]);
        free(b.ys[i]);
    }
    sola_ws_free(b.ws);
    sola_model_free(b.m);
    return rc;
}
