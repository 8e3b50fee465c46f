/* bench_train.c -- speed of one `sola` training step (forward, loss, backward, AdamW)
 * against this machine's sgemm peak and, with --torch, against PyTorch, all in one run.
 *
 *   bench_train [--threads 2] [--batch 256] [--C 2048] [--H 512] [--P 512] [--k1 5]
 *               [--k2 1] [--steps 6] [--full] [--torch]
 *
 * Prints the OpenBLAS kernel set, the sgemm peak (best of 2048x2048x2048 runs with the
 * same threads), then the best step time (and the median), windows/s, GFLOPS (sola_loss_grad_flops
 * per step / time) and the fraction of the peak, with the time split into forward,
 * backward and AdamW. --torch runs bench/bench_train_torch.py with the same shapes and
 * threads afterwards and prints the ratio. --full times the whole-window path (what
 * PyTorch computes) instead of the trimmed one. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"
#include "rng.h"
#include "sola_loss.h"

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

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static double best(const double *v, int n)
{
    double b = v[0];
    for (int i = 1; i < n; i++)
        b = v[i] < b ? v[i] : b;
    return b;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "bench_train: out of memory\n");
        exit(1);
    }
    return p;
}

static double sgemm_peak(int n, int reps)
{
    size_t nn = (size_t)n * n;
    float *a = xmalloc(nn * 4), *b = xmalloc(nn * 4), *c = xmalloc(nn * 4);
    for (size_t i = 0; i < nn; i++)
        a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        t = now() - t;
        if (r && t < best)
            best = t;
    }
    free(a), free(b), free(c);
    return 2.0 * n * (double)n * n / best / 1e9;
}

int main(int argc, char **argv)
{
    int threads = 2, B = 256, C = 2048, H = 512, P = 512, k1 = 5, k2 = 1, steps = 6;
    int full = 0, torch = 0;
    for (int i = 1; i < argc; i++) {
        int *dst = NULL;
        if (!strcmp(argv[i], "--threads")) dst = &threads;
        else if (!strcmp(argv[i], "--batch")) dst = &B;
        else if (!strcmp(argv[i], "--C")) dst = &C;
        else if (!strcmp(argv[i], "--H")) dst = &H;
        else if (!strcmp(argv[i], "--P")) dst = &P;
        else if (!strcmp(argv[i], "--k1")) dst = &k1;
        else if (!strcmp(argv[i], "--k2")) dst = &k2;
        else if (!strcmp(argv[i], "--steps")) dst = &steps;
        else if (!strcmp(argv[i], "--full")) { full = 1; continue; }
        else if (!strcmp(argv[i], "--torch")) { torch = 1; continue; }
        if (!dst || i + 1 >= argc || (*dst = atoi(argv[++i])) < 1) {
            fprintf(stderr, "usage: bench_train [--threads N] [--batch B] [--C C] [--H H] "
                            "[--P P] [--k1 K] [--k2 K] [--steps S] [--full] [--torch]\n");
            return 2;
        }
    }
    openblas_set_num_threads(threads);
    printf("OpenBLAS %s, %d threads\n", openblas_get_corename(), threads);
    double peak = sgemm_peak(2048, 4);
    printf("sgemm peak (2048^3): %.1f GFLOPS\n", peak);

    sola_err e = {0};
    sola_model *m = sola_model_new(C, H, k1, k2, P, &e);
    if (!m) {
        fprintf(stderr, "bench_train: %s\n", e.msg);
        return 1;
    }
    sola_model_init(m, 1);
    m->alpha[0] = 0.5f;
    sola_train_cfg cfg;
    sola_train_cfg_default(&cfg);
    sola_trainctx *c = sola_trainctx_new(m, &cfg, B, &e);
    if (!c) {
        fprintf(stderr, "bench_train: %s\n", e.msg);
        return 1;
    }
    sola_trainctx_set_full(c, full);
    size_t nx = (size_t)B * cfg.W * C;
    float *x = xmalloc(nx * sizeof *x), *grads = xmalloc(m->nparams * sizeof *grads);
    sola_rng r;
    sola_rng_seed(&r, 2);
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)fabs(sola_rng_normal(&r));
    sola_adamw opt;
    if (sola_adamw_init(&opt, m->nparams, 1e-4f, &e)) {
        fprintf(stderr, "bench_train: %s\n", e.msg);
        return 1;
    }

    double *tstep = xmalloc((size_t)steps * sizeof *tstep);
    double *tfwd = xmalloc((size_t)steps * sizeof *tfwd);
    double *topt = xmalloc((size_t)steps * sizeof *topt);
    double ph[SOLA_PHASES], phsum[SOLA_PHASES] = {0};
    float loss = 0;
    for (int s = -1; s < steps; s++) { /* s = -1: warm-up */
        double t0 = now();
        if (sola_loss(c, m, x, B, &loss, &e))
            goto fail;
        double t1 = now();
        if (sola_loss_grad(c, m, x, B, &loss, grads, &e))
            goto fail;
        double t2 = now();
        sola_trainctx_phases(c, ph);
        for (int k = 0; s >= 0 && k < SOLA_PHASES; k++)
            phsum[k] += ph[k];
        sola_adamw_step(&opt, m->params, grads);
        double t3 = now();
        if (s >= 0) {
            tfwd[s] = t1 - t0;
            tstep[s] = (t2 - t1) + (t3 - t2);
            topt[s] = t3 - t2;
        }
    }
    /* Best of the steps (on a shared machine other load only ever adds time); the
     * phases are means, so they show where the time goes, not the best case. */
    double step = best(tstep, steps), fwd = best(tfwd, steps), ad = best(topt, steps);
    double step_med = median(tstep, steps);
    double flops = sola_loss_grad_flops(c, B);
    double gf = flops / (step - ad) / 1e9;
    printf("sola step (%s rows), B=%d C=%d H=%d P=%d k1=%d k2=%d W=%d N=%d, loss %.6f\n",
           full ? "all W" : "kept", B, C, H, P, k1, k2, cfg.W, cfg.N, (double)loss);
    printf("  %.1f GFLOP per step (%.0f MFLOP per window)\n", flops / 1e9, flops / B / 1e6);
    printf("  step %.1f ms = forward %.1f + backward %.1f + AdamW %.1f (%zu params)\n",
           step * 1e3, fwd * 1e3, (step - ad - fwd) * 1e3, ad * 1e3, m->nparams);
    printf("  %.1f GFLOPS in loss+grad = %.0f%% of sgemm peak\n", gf, 100 * gf / peak);
    printf("  phases (mean ms):");
    for (int k = 0; k < SOLA_PHASES; k++)
        if (phsum[k] > 0)
            printf("%s %s %.1f", k ? "," : "", sola_trainctx_phase_name(k), phsum[k] / steps * 1e3);
    printf("\n");
    printf("ours: %.1f ms/step (median %.1f)  %.1f windows/s\n", step * 1e3, step_med * 1e3,
           B / step);

    if (torch) {
        char cmd[1024];
        const char *src = getenv("SOLA_SRC");
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 %s/bench/bench_train_torch.py --threads %d --batch %d "
                 "--C %d --H %d --P %d --k1 %d --k2 %d --steps %d",
                 src ? src : ".", threads, B, C, H, P, k1, k2, steps);
        FILE *p = popen(cmd, "r");
        char line[512];
        double tw = 0;
        while (p && fgets(line, sizeof line, p)) {
            fputs(line, stdout);
            double ms, med, ws;
            if (sscanf(line, "torch: %lf ms/step (median %lf) %lf windows/s", &ms, &med, &ws) == 3)
                tw = ws;
        }
        if (p)
            pclose(p);
        if (tw > 0)
            printf("ratio ours/torch: %.2fx windows/s\n", (B / step) / tw);
        else
            printf("torch run failed (set SOLA_SRC to the source tree)\n");
    }
    sola_adamw_free(&opt);
    sola_trainctx_free(c);
    sola_model_free(m);
    free(x), free(grads), free(tstep), free(tfwd), free(topt);
    return 0;
fail:
    fprintf(stderr, "bench_train: %s\n", e.msg);
    return 1;
}
