/* cmd_tsm.c -- `sola tsm`: temporal self-similarity map of a sequence.
 *
 * Without -m, or with --raw, the TSM of the input; with -m the TSM of refine(x);
 * --both gives raw and refined together (PNG side by side, raw on the left; .npy as
 * [2, T, T], raw first). PNG is a viridis heatmap on the fixed [-1, 1] scale. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_io.h"
#include "fsutil.h"
#include "heatmap.h"
#include "npy.h"

static const char usage[] =
    "sola tsm [-m MODEL.safetensors] IN(.npy|.npz) -o OUT(.npy|.png) [--raw | --both]";

static const char help[] =
    "Temporal self-similarity map of one sequence [T, C]: S[i,j] = cosine similarity of\n"
    "snippets i and j, a [T, T] matrix in [-1, 1].\n"
    "\n"
    "  IN           a .npy [T, C], or an .npz whose sequence member is 'feats' or the\n"
    "               only member\n"
    "  -m MODEL     map the refined sequence refine(x) (without -m: the input itself)\n"
    "  --raw        map the input even with -m\n"
    "  --both       raw and refined together (needs -m): a PNG shows them side by side,\n"
    "               raw on the left; an .npy holds [2, T, T], raw first\n"
    "  -o OUT.npy   the map(s) as float32\n"
    "  -o OUT.png   a heatmap: viridis on the fixed scale [-1, 1], colour bar on the\n"
    "               right (T <= 8192)\n"
    "\n"
    "Example: sola tsm -m model.safetensors video.npy --both -o tsm.png\n";

int cmd_tsm(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"output", required_argument, 0, 'o'},
        {"raw", no_argument, 0, 'r'},         {"both", no_argument, 0, 'b'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0},
    };
    const char *mpath = NULL, *out = NULL;
    int raw = 0, both = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': mpath = optarg; break;
        case 'o': out = optarg; break;
        case 'r': raw = 1; break;
        case 'b': both = 1; break;
        case 'h': printf("usage: %s\n\n%s", usage, help); return EXIT_OK;
        default: return cli_usage(usage, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        return cli_usage(usage, "exactly one input .npy is required");
    if (!out)
        return cli_usage(usage, "-o OUT.npy or -o OUT.png is required");
    int png = sola_has_ext(out, ".png");
    if (!png && !sola_has_ext(out, ".npy"))
        return cli_usage(usage, "%s: output must end in .npy or .png", out);
    if (raw && both)
        return cli_usage(usage, "--raw and --both exclude each other");
    if (both && !mpath)
        return cli_usage(usage, "--both needs -m MODEL (the refined half)");
    const char *in = argv[optind];

    sola_err e = {0};
    sola_array x = {0}, y = {0};
    sola_model *m = NULL;
    sola_ws *ws = NULL;
    float *maps = NULL;
    void *img = NULL;
    int rc = EXIT_RUNTIME;
    if (cli_load_seq(in, &x, &e))
        goto fail;
    if (x.ndim != 2) {
        sola_errf(&e, SOLA_ESHAPE, "%s: tsm takes one sequence [T, C]; this file holds a batch "
                  "of %lld", in, (long long)x.shape[0]);
        goto fail;
    }
    int T = (int)x.shape[0], C = (int)x.shape[1];
    if (T > 8192 && png) {
        sola_errf(&e, SOLA_ETOOBIG, "%s: T = %d is too long for a PNG (at most 8192)", in, T);
        goto fail;
    }
    int want_raw = raw || both || !mpath, want_ref = mpath && !raw;
    size_t tt = (size_t)T * (size_t)T;
    maps = malloc(tt * 2 * sizeof(float));
    if (!maps) {
        sola_errf(&e, SOLA_ENOMEM, "%s: out of memory for a %d x %d map", in, T, T);
        goto fail;
    }
    int n = 0;
    if (want_raw && sola_tsm(x.data, T, C, maps + tt * n++, &e))
        goto fail;
    if (want_ref) {
        if (!(m = sola_model_load(mpath, &e)) || !(ws = sola_ws_new()))
            goto fail;
        if (cli_refine_array(m, &x, in, &y, ws, &e) || sola_tsm(y.data, T, C, maps + tt * n++, &e))
            goto fail;
    }
    if (png) {
        const float *ptrs[2] = {maps, maps + tt};
        size_t len;
        if (sola_heatmap_png(ptrs, n, T, &img, &len, &e) || sola_write_atomic(out, img, len, &e))
            goto fail;
    } else {
        int64_t shape[3] = {n, T, T};
        int ok = n == 1 ? sola_npy_save(out, maps, 2, shape + 1, &e)
                        : sola_npy_save(out, maps, 3, shape, &e);
        if (ok)
            goto fail;
    }
    rc = EXIT_OK;
    goto done;
fail:
    cli_errorf("%s", e.msg[0] ? e.msg : "out of memory");
done:
    free(img);
    free(maps);
    sola_array_free(&x);
    sola_array_free(&y);
    sola_ws_free(ws);
    sola_model_free(m);
    return rc;
}
