/* bench_train.c -- speed of one `sola` training step (forward, loss, backward, AdamW)
 * against this machine's sgemm peak and, with --torch, against PyTorch, all in one run.
 *
 *   bench_train [--threads 2] [--batch 256] [--C 2048] [--H 512] [--P 512] [--k1 5]
 *               [--k2 1] [--rounds 3] [--block 2] [--full] [--torch]
 *
 * Prints the OpenBLAS kernel set, the sgemm peak (best of 2048x2048x2048 runs with the
 * same threads), then the best and median step time, windows/s, GFLOPS
 * (sola_loss_grad_flops per step / time) and the fraction of the peak, with the time
 * split into forward, backward and AdamW and into the phases of the step. --torch
 * starts bench/bench_train_torch.py --serve (under $SOLA_SRC, with the same shapes,
 * threads and environment) and interleaves blocks of its steps with blocks of ours,
 * alternating who goes first, so both see the same load on a shared machine; the
 * ratio is printed at the end. --full times the whole-window path (what PyTorch
 * computes) instead of the trimmed one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gemm.h"
#include "benchutil.h"
#include "model.h"
#include "rng.h"
#include "sola_loss.h"

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
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
        double t = sola_now_s();
        sola_sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t = sola_now_s() - t;
        if (r && t < best)
            best = t;
    }
    free(a), free(b), free(c);
    return 2.0 * n * (double)n * n / best / 1e9;
}

/* Starts bench_train_torch.py --serve with the same shapes and threads; 0 when it
 * said "ready". */
static int spawn_torch(int threads, int B, int C, int H, int P, int k1, int k2, pid_t *pid,
                       FILE **in, FILE **out)
{
    int to[2], from[2];
    if (pipe(to) || pipe(from))
        return -1;
    const char *src = getenv("SOLA_SRC");
    char script[4096], a[7][16];
    snprintf(script, sizeof script, "%s/bench/bench_train_torch.py", src ? src : ".");
    int v[7] = {threads, B, C, H, P, k1, k2};
    for (int i = 0; i < 7; i++)
        snprintf(a[i], sizeof a[i], "%d", v[i]);
    fflush(stdout);
    *pid = fork();
    if (*pid < 0)
        return -1;
    if (*pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[0]), close(to[1]), close(from[0]), close(from[1]);
        execl("/usr/bin/python3", "python3", script, "--serve", "--threads", a[0], "--batch",
              a[1], "--C", a[2], "--H", a[3], "--P", a[4], "--k1", a[5], "--k2", a[6],
              (char *)NULL);
        _exit(127);
    }
    close(to[0]), close(from[1]);
    *in = fdopen(to[1], "w");
    *out = fdopen(from[0], "r");
    char line[256];
    if (!*in || !*out || !fgets(line, sizeof line, *out) || strncmp(line, "ready", 5)) {
        fprintf(stderr, "bench_train: %s did not start\n", script);
        return -1;
    }
    printf("%s", line + 6);
    return 0;
}

/* Runs k torch steps; returns how many times it read into t. */
static int torch_block(FILE *in, FILE *out, int k, double *t)
{
    fprintf(in, "run %d\n", k);
    fflush(in);
    char line[4096];
    if (!fgets(line, sizeof line, out) || strncmp(line, "times", 5))
        return 0;
    int n = 0;
    char *p = line + 5, *end;
    while (n < k) {
        double v = strtod(p, &end);
        if (end == p)
            break;
        t[n++] = v;
        p = end;
    }
    return n;
}

int main(int argc, char **argv)
{
    int threads = 2, B = 256, C = 2048, H = 512, P = 512, k1 = 5, k2 = 1, rounds = 3, block = 2;
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
        else if (!strcmp(argv[i], "--rounds")) dst = &rounds;
        else if (!strcmp(argv[i], "--block")) dst = &block;
        else if (!strcmp(argv[i], "--full")) { full = 1; continue; }
        else if (!strcmp(argv[i], "--torch")) { torch = 1; continue; }
        if (!dst || i + 1 >= argc || (*dst = atoi(argv[++i])) < 1) {
            fprintf(stderr, "usage: bench_train [--threads N] [--batch B] [--C C] [--H H] "
                            "[--P P] [--k1 K] [--k2 K] [--rounds R] [--block S] [--full] [--torch]\n");
            return 2;
        }
    }
    sola_gemm_set_threads(threads);
    printf("%s, %d threads\n", sola_gemm_kernels(), threads);
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

    /* torch in --serve mode on two pipes, driven block by block */
    FILE *tin = NULL, *tout = NULL;
    pid_t tpid = -1;
    if (torch && spawn_torch(threads, B, C, H, P, k1, k2, &tpid, &tin, &tout))
        torch = 0;

    int nsteps = rounds * block;
    double *tstep = xmalloc((size_t)nsteps * sizeof *tstep);
    double *ttorch = xmalloc((size_t)nsteps * sizeof *ttorch);
    double *topt = xmalloc((size_t)nsteps * sizeof *topt);
    double ph[SOLA_PHASES], phsum[SOLA_PHASES] = {0};
    float loss = 0;
    int ns = 0, nt = 0;
    /* warm-up: one step of ours (the torch side warmed up before "ready") */
    if (sola_loss_grad(c, m, x, B, &loss, grads, &e))
        goto fail;
    sola_adamw_step(&opt, m->params, grads);
    for (int r = 0; r < rounds; r++) {
        for (int side = 0; side < 2; side++) {
            /* alternate who goes first, so that neither always follows the other */
            int ours = (side == 0) == (r % 2 == 0);
            if (!ours) {
                if (torch && torch_block(tin, tout, block, ttorch + nt) == block)
                    nt += block;
                continue;
            }
            for (int k = 0; k < block; k++) {
                double t1 = sola_now_s();
                if (sola_loss_grad(c, m, x, B, &loss, grads, &e))
                    goto fail;
                double t2 = sola_now_s();
                sola_trainctx_phases(c, ph);
                for (int q = 0; q < SOLA_PHASES; q++)
                    phsum[q] += ph[q];
                sola_adamw_step(&opt, m->params, grads);
                double t3 = sola_now_s();
                tstep[ns] = t3 - t1;
                topt[ns++] = t3 - t2;
            }
        }
    }
    if (tin) {
        fputs("quit\n", tin);
        fclose(tin);
        fclose(tout);
        waitpid(tpid, NULL, 0);
    }
    /* Best of the steps (on a shared machine other load only ever adds time), and the
     * median; the phases are means, to show where the time goes. */
    double step = best(tstep, ns), ad = best(topt, ns), fwd = 0, bwd = 0;
    for (int q = 0; q < SOLA_PHASES; q++)
        *(strncmp(sola_trainctx_phase_name(q), "fwd", 3) ? &bwd : &fwd) += phsum[q] / ns;
    double step_med = median(tstep, ns);
    double flops = sola_loss_grad_flops(c, B);
    double gf = flops / (step - ad) / 1e9;
    printf("sola step (%s rows), B=%d C=%d H=%d P=%d k1=%d k2=%d W=%d N=%d, loss %.6f\n",
           full ? "all W" : "kept", B, C, H, P, k1, k2, cfg.W, cfg.N, (double)loss);
    printf("  %.1f GFLOP per step (%.0f MFLOP per window)\n", flops / 1e9, flops / B / 1e6);
    printf("  step %.1f ms (best); mean forward %.1f + backward %.1f, best AdamW %.1f (%zu "
           "params)\n",
           step * 1e3, fwd * 1e3, bwd * 1e3, ad * 1e3, m->nparams);
    printf("  %.1f GFLOPS in loss+grad = %.0f%% of sgemm peak\n", gf, 100 * gf / peak);
    printf("  phases (mean ms):");
    for (int q = 0; q < SOLA_PHASES; q++)
        if (phsum[q] > 0)
            printf("%s %s %.1f", q ? "," : "", sola_trainctx_phase_name(q), phsum[q] / ns * 1e3);
    printf("\n");
    printf("ours:  best %.1f ms/step, median %.1f  -> %.1f windows/s (%d steps)\n", step * 1e3,
           step_med * 1e3, B / step, ns);
    if (torch && nt > 0) {
        double tb = best(ttorch, nt), tm = median(ttorch, nt);
        /* torch runs the module on every row of the window: the full path's FLOPs */
        sola_trainctx_set_full(c, 1);
        double tflops = sola_loss_grad_flops(c, B);
        sola_trainctx_set_full(c, full);
        printf("torch: best %.1f ms/step, median %.1f  -> %.1f windows/s (%d steps), "
               "%.1f GFLOPS on its %.0f MFLOP per window\n",
               tb * 1e3, tm * 1e3, B / tb, nt, tflops / tb / 1e9, tflops / B / 1e6);
        printf("ratio ours/torch windows/s: %.2fx (best), %.2fx (median)\n", tb / step,
               tm / step_med);
    } else if (torch) {
        printf("torch: no result (is /usr/bin/python3 with torch there? SOLA_SRC set?)\n");
    }
    sola_adamw_free(&opt);
    sola_trainctx_free(c);
    sola_model_free(m);
    free(x), free(grads), free(tstep), free(ttorch), free(topt);
    return 0;
fail:
    fprintf(stderr, "bench_train: %s\n", e.msg);
    return 1;
}
