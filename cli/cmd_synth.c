/* cmd_synth.c -- `sola synth`: write a synthetic labelled dataset (core/data/synth.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "synth.h"

static const char usage[] =
    "sola synth -o DIR [--videos N] [--dim C] [--length T] [--seed S] [--simple] [knobs...]";

static const char help[] =
    "Writes DIR/features/video_NNNN.npy ([T, C] float32) and DIR/labels/video_NNNN.npy\n"
    "([T] uint8, 1 = action) for a synthetic dataset: action segments of a few classes\n"
    "between background gaps. By default the features imitate a frozen video encoder's\n"
    "(non-negative, low-rank, a bright TSM diagonal, each video's style dominating);\n"
    "--simple gives the first generator (signed, full-rank, i.i.d. noise per snippet).\n"
    "The model of both is in docs/training.md and core/data/synth.h.\n"
    "\n"
    "  -o DIR         output folder (created)\n"
    "  --videos N     number of videos (64)\n"
    "  --dim C        channels (256)\n"
    "  --length T     typical length; each video is uniform in [T/2, 3T/2] (200)\n"
    "  --seed S       seed (0); the same seed writes the same files\n"
    "  --simple       the simple generator, with its own defaults (in brackets below)\n"
    "\n"
    "Knobs (realistic default [simple default]):\n"
    "  --noise X        std of each nuisance coordinate, an AR(1) process (1.0)\n"
    "                   [per-channel i.i.d. noise std (0.4)]\n"
    "  --noise-rank K   nuisance directions (16) [0 = isotropic; K: noise along the\n"
    "                   class directions and K nuisance directions only]\n"
    "  --ar A           AR(1) coefficient of the nuisance noise, 0 = white (0.7)\n"
    "  --style X        norm of each video's style vector (1.5) [--offset: 0.5]\n"
    "  --style-rank K   directions the styles mix (8)\n"
    "  --background A   amplitude of the background direction (0.5)\n"
    "  --backgrounds N  kinds of background, one per gap (3)\n"
    "  --drift R        radians the action direction turns across a segment (1.0)\n"
    "  --blur N         snippets over which each boundary ramps, 0 = hard (4)\n"
    "  --bias B         added per channel before softplus (-1.0)\n"
    "  --mean X         norm of a component common to every snippet (1.0) [0]\n"
    "  --iso-noise X    white noise on every channel: its norm (0.5)\n"
    "                   [per-channel std when --noise-rank > 0 (0.05)]\n"
    "  --segment N      longest action segment (40; shortest N/5)\n"
    "  --gap N          longest background gap (48; shortest N/6)\n";

static void on_video(int done, int total, void *ud)
{
    cli_progress_update(ud, "synth", done, total, "videos", NULL);
}

int cmd_synth(int argc, char **argv)
{
    sola_synth_opts o;
    sola_synth_default(&o);
    for (int i = 1; i < argc; i++) /* --simple changes the defaults the knobs adjust */
        if (!strcmp(argv[i], "--simple"))
            sola_synth_default_simple(&o);
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: %s\n\n%s", usage, help);
            return EXIT_OK;
        }
        if (!strcmp(a, "--simple"))
            continue;
        if (i + 1 >= argc)
            return cli_usage(usage, "%s: unknown option or missing value", a);
        const char *v = argv[++i];
        long n;
        double x;
        if (!strcmp(a, "-o")) {
            out = v;
        } else if (!strcmp(a, "--videos")) {
            if (sola_parse_long(v, 1, 1000000, &n))
                return cli_usage(usage, "--videos: '%s' is not a whole number in 1..1000000", v);
            o.videos = (int)n;
        } else if (!strcmp(a, "--dim")) {
            if (sola_parse_long(v, 1, 1 << 20, &n))
                return cli_usage(usage, "--dim: '%s' is not a whole number in 1..1048576", v);
            o.C = (int)n;
        } else if (!strcmp(a, "--length")) {
            if (sola_parse_long(v, 2, 1 << 24, &n))
                return cli_usage(usage, "--length: '%s' is not a whole number >= 2", v);
            o.T = (int)n;
        } else if (!strcmp(a, "--seed")) {
            if (cli_parse_u64(v, &o.seed))
                return cli_usage(usage, "--seed: '%s' is not a non-negative integer", v);
        } else if (!strcmp(a, "--noise") || !strcmp(a, "--mean") || !strcmp(a, "--offset") ||
                   !strcmp(a, "--style") || !strcmp(a, "--iso-noise") ||
                   !strcmp(a, "--background") || !strcmp(a, "--drift") ||
                   !strcmp(a, "--blur")) {
            if (cli_parse_double(v, &x) || x < 0 || x > 1e6)
                return cli_usage(usage, "%s: '%s' is not a number >= 0", a, v);
            *(!strcmp(a, "--noise") ? &o.noise : !strcmp(a, "--mean") ? &o.mean :
              !strcmp(a, "--offset") || !strcmp(a, "--style") ? &o.video_offset :
              !strcmp(a, "--background") ? &o.bg_level : !strcmp(a, "--drift") ? &o.drift :
              !strcmp(a, "--blur") ? &o.blur : &o.iso_noise) = (float)x;
        } else if (!strcmp(a, "--ar") || !strcmp(a, "--bias")) {
            int ar = !strcmp(a, "--ar");
            if (cli_parse_double(v, &x) || (ar ? !(x >= 0 && x < 1) : !(x >= -100 && x <= 100)))
                return cli_usage(usage, "%s: '%s' is not a number in %s", a, v,
                                 ar ? "[0, 1)" : "[-100, 100]");
            *(ar ? &o.ar : &o.bias) = (float)x;
        } else if (!strcmp(a, "--noise-rank") || !strcmp(a, "--segment") || !strcmp(a, "--gap") ||
                   !strcmp(a, "--backgrounds") || !strcmp(a, "--style-rank")) {
            long lo = !strcmp(a, "--noise-rank") ? 0 : 1;
            if (sola_parse_long(v, lo, 1 << 20, &n))
                return cli_usage(usage, "%s: '%s' is not a whole number >= %ld", a, v, lo);
            if (!strcmp(a, "--noise-rank"))
                o.noise_rank = (int)n;
            else if (!strcmp(a, "--backgrounds"))
                o.backgrounds = (int)n;
            else if (!strcmp(a, "--style-rank"))
                o.style_rank = (int)n;
            else if (!strcmp(a, "--segment"))
                o.seg_max = (int)n, o.seg_min = (int)(n / 5 > 0 ? n / 5 : 1);
            else
                o.gap_max = (int)n, o.gap_min = (int)(n / 6 > 0 ? n / 6 : 1);
        } else {
            return cli_usage(usage, "unknown option '%s'", a);
        }
    }
    if (!out)
        return cli_usage(usage, "missing -o DIR");
    cli_progress p;
    cli_progress_init(&p);
    sola_err e = {0};
    int rc = sola_synth_write(out, &o, on_video, &p, &e);
    cli_progress_end(&p);
    if (rc) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    printf("wrote %d videos (%s generator, C=%d, T in [%d, %d], seed %llu) to %s/features "
           "and %s/labels\n",
           o.videos, o.simple ? "simple" : "realistic", o.C, o.T / 2 > 0 ? o.T / 2 : 1,
           o.T + o.T / 2, (unsigned long long)o.seed, out, out);
    return EXIT_OK;
}
