/* cmd_grad.c -- `sola grad`: loss and gradients of one fixed batch of windows under
 * the sola objective, for checking the training maths against PyTorch. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model.h"
#include "npy.h"
#include "safetensors.h"
#include "sola_loss.h"

static const char usage[] =
    "sola grad -m MODEL --windows W.npy [-o GRADS.safetensors] [--init-head SEED]\n"
    "                 [--head-dim P=512] [--keep N=8] [--start S=4] [--step D=2] [--K K=16]\n"
    "                 [--full] [--threads N]";

static const char help[] =
    "Loss and gradients of one fixed batch of windows under the sola objective, for\n"
    "checking the training maths against PyTorch (tests/ref/ does that). Prints the loss\n"
    "on stdout.\n"
    "\n"
    "  -m MODEL          the module and its training head (dissim_head.*)\n"
    "  --windows W.npy   the batch [B, W, C]: B windows of W snippets (W = 23 in training)\n"
    "  -o GRADS          write the gradients as .safetensors, under the parameters' names\n"
    "  --init-head SEED  create the head (PyTorch's default init, this seed) when the\n"
    "                    model has none; --head-dim P its width (512)\n"
    "  --keep N          positions of each window the loss compares (8)\n"
    "  --start S, --step D  the first kept position and the spacing (4, 2)\n"
    "  --K K             sharpness of the target: t[i,j] = sigmoid(K / (i - j)^2) (16)\n"
    "  --full            run the module on whole windows instead of only the rows the\n"
    "                    loss reads (same numbers; for checking that claim)\n"
    "  --threads N       BLAS threads\n";

/* The parameters in m->params order, with their PyTorch names and shapes; data points
 * at the same offsets inside `base` (a buffer laid out like m->params). */
static int param_table(const sola_model *m, const float *base, sola_st_out *t)
{
    const int64_t C = m->C, H = m->H, P = m->P;
    const struct {
        const char *name;
        const float *p;
        int ndim;
        int64_t s0, s1, s2;
    } d[] = {
        {"conv_network.0.weight", m->w0, 3, H, C, m->k1},
        {"conv_network.0.bias", m->b0, 1, H, 0, 0},
        {"conv_network.2.weight", m->w2, 3, H, H, m->k2},
        {"conv_network.2.bias", m->b2, 1, H, 0, 0},
        {"conv_network.4.weight", m->w4, 3, C, H, 1},
        {"conv_network.4.bias", m->b4, 1, C, 0, 0},
        {"alpha", m->alpha, 1, 1, 0, 0},
        {"dissim_head.network.0.weight", m->hw0, 2, P, C, 0},
        {"dissim_head.network.0.bias", m->hb0, 1, P, 0, 0},
        {"dissim_head.network.2.weight", m->hw2, 2, C, P, 0},
        {"dissim_head.network.2.bias", m->hb2, 1, C, 0, 0},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        memset(&t[n], 0, sizeof t[n]);
        t[n].name = d[i].name;
        t[n].ndim = d[i].ndim;
        t[n].shape[0] = d[i].s0;
        t[n].shape[1] = d[i].s1;
        t[n].shape[2] = d[i].s2;
        t[n].data = base + (d[i].p - m->params);
        n++;
    }
    return n;
}

int cmd_grad(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"windows", required_argument, 0, 'w'},
        {"output", required_argument, 0, 'o'},  {"init-head", required_argument, 0, 'I'},
        {"head-dim", required_argument, 0, 'P'}, {"keep", required_argument, 0, 'N'},
        {"start", required_argument, 0, 'S'},   {"step", required_argument, 0, 'D'},
        {"K", required_argument, 0, 'K'},       {"full", no_argument, 0, 'F'},
        {"threads", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *mpath = NULL, *wpath = NULL, *out = NULL;
    uint64_t head_seed = 0;
    int init_head = 0, full = 0;
    long headP = 0, threads = 0;
    sola_train_cfg cfg;
    sola_train_cfg_default(&cfg);
    long N = cfg.N, start = cfg.start, step = cfg.step;
    double K = cfg.K;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:o:h", opts, NULL)) != -1) {
        long *dst = NULL, lo = 0, hi = 1 << 20;
        const char *nm = "";
        switch (c) {
        case 'm': mpath = optarg; continue;
        case 'w': wpath = optarg; continue;
        case 'o': out = optarg; continue;
        case 'F': full = 1; continue;
        case 'I':
            if (cli_parse_u64(optarg, &head_seed))
                return cli_usage(usage, "--init-head wants a non-negative integer seed, got '%s'",
                                 optarg);
            init_head = 1;
            continue;
        case 'K':
            if (cli_parse_double(optarg, &K) || K < 0)
                return cli_usage(usage, "--K wants a number >= 0, got '%s'", optarg);
            continue;
        case 'P': nm = "head-dim"; dst = &headP; lo = 1; break;
        case 'N': nm = "keep"; dst = &N; lo = 1; break;
        case 'S': nm = "start"; dst = &start; break;
        case 'D': nm = "step"; dst = &step; lo = 1; break;
        case 't': nm = "threads"; dst = &threads; lo = 1; hi = 1024; break;
        case 'h': printf("usage: %s\n\n%s", usage, help); return EXIT_OK;
        default:
            return cli_usage(usage, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
        if (sola_parse_long(optarg, lo, hi, dst))
            return cli_usage(usage, "--%s wants an integer in [%ld, %ld], got '%s'", nm, lo, hi,
                             optarg);
    }
    if (optind != argc)
        return cli_usage(usage, "unexpected argument '%s'", argv[optind]);
    if (!mpath)
        return cli_usage(usage, "-m MODEL is required");
    if (!wpath)
        return cli_usage(usage, "--windows W.npy (a batch [B, W, C] of windows) is required");
    if (headP && !init_head)
        return cli_usage(usage, "--head-dim only applies with --init-head");
    cli_set_threads((int)threads);

    int rc = EXIT_RUNTIME;
    sola_err e = {0};
    sola_array win = {0};
    sola_trainctx *ctx = NULL;
    float *grads = NULL;
    sola_model *m = cli_load_model(mpath);
    if (!m)
        goto done;
    if (init_head) {
        int P = headP ? (int)headP : m->P ? m->P : cfg.P;
        if (sola_model_add_head(m, P, head_seed, &e)) {
            cli_errorf("%s: %s", mpath, e.msg);
            goto done;
        }
    } else if (m->P <= 0) {
        cli_errorf("%s has no dissimilarity head (dissim_head.* tensors): pass --init-head "
                   "SEED to create one",
                   mpath);
        goto done;
    }
    if (sola_npy_load(wpath, 0, &win, &e)) {
        cli_errorf("%s", e.msg);
        goto done;
    }
    if (win.ndim == 2) { /* one window [W, C] */
        win.shape[2] = win.shape[1];
        win.shape[1] = win.shape[0];
        win.shape[0] = 1;
        win.ndim = 3;
    }
    if (win.ndim != 3 || win.shape[0] < 1 || win.shape[1] < 1) {
        cli_errorf("%s: expected windows of shape [B, W, C], got %d dimensions", wpath,
                   win.ndim);
        goto done;
    }
    if (win.shape[2] != m->C) {
        cli_errorf("%s: windows have C=%lld channels but %s expects C=%d", wpath,
                   (long long)win.shape[2], mpath, m->C);
        goto done;
    }
    if (win.shape[0] > 1 << 20 || win.shape[1] > 1 << 20) {
        cli_errorf("%s: %lld windows of %lld snippets is more than one batch can hold", wpath,
                   (long long)win.shape[0], (long long)win.shape[1]);
        goto done;
    }
    cfg.W = (int)win.shape[1];
    cfg.N = (int)N;
    cfg.start = (int)start;
    cfg.step = (int)step;
    cfg.K = (float)K;
    int B = (int)win.shape[0];
    if (sola_train_cfg_check(&cfg, &e)) {
        cli_errorf("%s: %s", wpath, e.msg);
        goto done;
    }
    ctx = sola_trainctx_new(m, &cfg, B, &e);
    if (!ctx) {
        cli_errorf("%s: %s", mpath, e.msg);
        goto done;
    }
    sola_trainctx_set_full(ctx, full);
    grads = malloc(m->nparams * sizeof *grads);
    if (!grads) {
        cli_errorf("out of memory for %zu gradients", m->nparams);
        goto done;
    }
    float loss;
    if (sola_loss_grad(ctx, m, win.data, B, &loss, grads, &e)) {
        cli_errorf("%s: %s", wpath, e.msg);
        goto done;
    }
    printf("%.9g\n", (double)loss);
    fflush(stdout);
    if (out) {
        sola_st_out t[11];
        int n = param_table(m, grads, t);
        char lbuf[32], wbuf[16], nbuf[16], sbuf[16], dbuf[16], kbuf[32];
        snprintf(lbuf, sizeof lbuf, "%.9g", (double)loss);
        snprintf(wbuf, sizeof wbuf, "%d", cfg.W);
        snprintf(nbuf, sizeof nbuf, "%d", cfg.N);
        snprintf(sbuf, sizeof sbuf, "%d", cfg.start);
        snprintf(dbuf, sizeof dbuf, "%d", cfg.step);
        snprintf(kbuf, sizeof kbuf, "%.9g", (double)cfg.K);
        const char *keys[] = {"format", "loss", "W", "N", "start", "step", "K"};
        const char *vals[] = {"sola-grad", lbuf, wbuf, nbuf, sbuf, dbuf, kbuf};
        if (sola_st_save(out, t, n, keys, vals, 7, &e)) {
            cli_errorf("%s", e.msg);
            goto done;
        }
    }
    rc = EXIT_OK;
done:
    free(grads);
    sola_trainctx_free(ctx);
    sola_array_free(&win);
    sola_model_free(m);
    return rc;
}
