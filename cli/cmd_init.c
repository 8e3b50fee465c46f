/* cmd_init.c -- `sola init`: a fresh, identity (alpha = 0) model file. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "defaults.h"
#include "model.h"

static const char usage[] =
    "sola init --dim C [--hidden H=512] [--kernel K1=5] [--kernel2 K2=1] [--dilation D1=1]\n"
    "                 [--dilation2 D2=1] [--head P] [--seed S=0] -o MODEL.safetensors";

static const char help[] =
    "Writes a fresh SoLa model: the authors' module (conv k1 -> ReLU -> conv k2 -> ReLU ->\n"
    "1x1 conv back to C, gated by tanh(alpha)) with PyTorch's default initialisation\n"
    "and alpha = 0: the identity (it returns its input unchanged) until trained\n"
    "('sola train -m').\n"
    "\n"
    "  --dim C          channels of your features (I3D 2048, TSP 512, ...); required\n"
    "  --hidden H       hidden channels of the module (512)\n"
    "  --kernel K1      temporal kernel of the first conv, odd (5)\n"
    "  --kernel2 K2     temporal kernel of the second conv, odd (1)\n"
    "  --dilation D1, --dilation2 D2   dilations of the two convs (1)\n"
    "  --head P         also create the training head dissim_head.* of P channels\n"
    "                   (sola train creates it when absent; sola grad needs it, or\n"
    "                   its --init-head)\n"
    "  --seed S         initialisation seed (0): the same seed writes the same file\n"
    "  -o MODEL         output .safetensors (written atomically)\n"
    "\n"
    "Example: sola init --dim 2048 -o model.safetensors && sola info model.safetensors\n";

int cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dim", required_argument, 0, 'c'},    {"hidden", required_argument, 0, 'H'},
        {"kernel", required_argument, 0, 'k'}, {"kernel2", required_argument, 0, 'K'},
        {"dilation", required_argument, 0, 'd'}, {"dilation2", required_argument, 0, 'D'},
        {"head", required_argument, 0, 'P'},   {"seed", required_argument, 0, 's'},
        {"output", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    long C = 0, H = SOLA_DEFAULT_HIDDEN, k1 = SOLA_DEFAULT_K1, k2 = SOLA_DEFAULT_K2, d1 = 1,
         d2 = 1, P = 0;
    uint64_t seed = 0;
    const char *out = NULL;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        long *dst = NULL, lo = 1, hi = 1 << 20;
        const char *nm = "";
        switch (c) {
        case 'c': nm = "dim"; dst = &C; break;
        case 'H': nm = "hidden"; dst = &H; break;
        case 'k': nm = "kernel"; dst = &k1; hi = 255; break;
        case 'K': nm = "kernel2"; dst = &k2; hi = 255; break;
        case 'd': nm = "dilation"; dst = &d1; hi = 1024; break;
        case 'D': nm = "dilation2"; dst = &d2; hi = 1024; break;
        case 'P': nm = "head"; dst = &P; break;
        case 's':
            if (cli_parse_u64(optarg, &seed))
                return cli_usage(usage, "--seed wants a non-negative integer, got '%s'", optarg);
            continue;
        case 'o': out = optarg; continue;
        case 'h': printf("usage: %s\n\n%s", usage, help); return EXIT_OK;
        default:
            return cli_usage(usage, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
        if (sola_parse_long(optarg, lo, hi, dst))
            return cli_usage(usage, "--%s wants an integer in [%ld, %ld], got '%s'",
                             nm, lo, hi, optarg);
    }
    if (optind != argc)
        return cli_usage(usage, "unexpected argument '%s'", argv[optind]);
    if (!C)
        return cli_usage(usage, "--dim C (the feature dimension of your data) is required");
    if (!out)
        return cli_usage(usage, "-o MODEL.safetensors is required");
    if (k1 % 2 == 0 || k2 % 2 == 0)
        return cli_usage(usage, "kernel sizes must be odd (got %ld and %ld)", k1, k2);
    sola_err e = {0};
    sola_model *m = sola_model_new((int)C, (int)H, (int)k1, (int)k2, (int)P, &e);
    if (!m) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    m->d1 = (int)d1;
    m->d2 = (int)d2;
    sola_model_init(m, seed);
    char buf[64];
    time_t now = time(NULL);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    sola_model_set_meta(m, "created", buf);
    sola_model_set_meta(m, "objective", "none");
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)seed);
    sola_model_set_meta(m, "seed", buf);
    int rc = sola_model_save(m, out, P > 0, &e);
    if (rc) {
        cli_errorf("%s", e.msg);
        sola_model_free(m);
        return EXIT_RUNTIME;
    }
    fprintf(stderr, "wrote %s: C=%ld H=%ld k1=%ld k2=%ld d1=%ld d2=%ld%s (identity until trained)\n",
            out, C, H, k1, k2, d1, d2, P ? " with dissimilarity head" : "");
    sola_model_free(m);
    return EXIT_OK;
}
