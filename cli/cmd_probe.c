/* cmd_probe.c -- `sola probe`: linear fg/bg probe of raw or refined features
 * (core/probe.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "model.h"
#include "probe.h"

static const char usage[] =
    "sola probe --features DIR --labels DIR [--model M] [--seed S] [--epochs E] "
    "[--val-frac F]";

static const char help[] =
    "Linear evaluation of the SoLa authors: L2-normalised snippet features, a linear\n"
    "layer to action/background, cross-entropy, SGD lr 0.01 momentum 0.9, batch 256.\n"
    "Videos (not snippets) are split into train and validation by the seed.\n"
    "\n"
    "  --features DIR  feature folder (NAME.npy / NAME.npz, [T, C])\n"
    "  --labels DIR    NAME.npy per video: integer or bool [T], nonzero = action\n"
    "  --model M       refine the features with this model first\n"
    "  --seed S        split, init and shuffle seed (0)\n"
    "  --epochs E      training epochs (16)\n"
    "  --val-frac F    fraction of videos held out for validation (0.2)\n"
    "  --threads N     compute threads\n";

static void on_epoch(int epoch, int epochs, double loss, void *ud)
{
    char extra[64];
    snprintf(extra, sizeof extra, "loss %.4f", loss);
    cli_progress_update(ud, "probe", epoch, epochs, "epochs", extra);
}

int cmd_probe(int argc, char **argv)
{
    sola_probe_opts o;
    sola_probe_default(&o);
    const char *feats = NULL, *labels = NULL, *model = NULL;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: %s\n\n%s", usage, help);
            return EXIT_OK;
        }
        if (i + 1 >= argc)
            return cli_usage(usage, "%s: unknown option or missing value", a);
        const char *v = argv[++i];
        long n;
        double x;
        if (!strcmp(a, "--features")) {
            feats = v;
        } else if (!strcmp(a, "--labels")) {
            labels = v;
        } else if (!strcmp(a, "--model") || !strcmp(a, "-m")) {
            model = v;
        } else if (!strcmp(a, "--seed")) {
            if (cli_parse_u64(v, &o.seed))
                return cli_usage(usage, "--seed: '%s' is not a non-negative integer", v);
        } else if (!strcmp(a, "--epochs")) {
            if (cli_parse_int(v, 1, 100000, &n))
                return cli_usage(usage, "--epochs: '%s' is not a whole number in 1..100000", v);
            o.epochs = (int)n;
        } else if (!strcmp(a, "--val-frac")) {
            if (cli_parse_double(v, &x) || !(x > 0 && x < 1))
                return cli_usage(usage, "--val-frac: '%s' is not a number in (0, 1)", v);
            o.val_frac = (float)x;
        } else if (!strcmp(a, "--threads")) {
            if (cli_parse_int(v, 1, 1024, &n))
                return cli_usage(usage, "--threads: '%s' is not a whole number in 1..1024", v);
            threads = (int)n;
        } else {
            return cli_usage(usage, "unknown option '%s'", a);
        }
    }
    if (!feats || !labels)
        return cli_usage(usage, "need --features DIR and --labels DIR");
    cli_set_threads(threads);
    sola_err e = {0};
    sola_model *m = NULL;
    if (model && !(m = sola_model_load(model, &e))) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    o.model = m;
    cli_progress p;
    cli_progress_init(&p);
    o.progress = on_epoch;
    o.ud = &p;
    sola_probe_result r;
    int rc = sola_probe_run(feats, labels, &o, &r, &e);
    cli_progress_end(&p);
    sola_model_free(m);
    if (rc) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    printf("features      %s%s%s\n", feats, model ? " refined by " : " (raw)", model ? model : "");
    printf("videos        %d train, %d validation (seed %llu)\n", r.videos_train, r.videos_val,
           (unsigned long long)o.seed);
    printf("snippets      %ld train (%ld action), %ld validation (%ld action)\n", r.train_n,
           r.train_fg, r.val_n, r.val_fg);
    printf("accuracy      %.4f   (majority class %.4f)\n", r.accuracy, r.majority);
    printf("  action      %.4f   (%ld snippets)\n", r.acc_fg, r.val_fg);
    printf("  background  %.4f   (%ld snippets)\n", r.acc_bg, r.val_n - r.val_fg);
    if (r.boundary_n)
        printf("boundary      %.4f   (%ld snippets within +-%d of a transition)\n",
               r.boundary_accuracy, r.boundary_n, o.radius);
    else
        printf("boundary      n/a    (no transition in the validation videos)\n");
    printf("train loss    %.4f   (last epoch)\n", r.train_loss);
    return EXIT_OK;
}
