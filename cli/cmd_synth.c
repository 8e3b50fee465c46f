/* cmd_synth.c -- `sola synth`: write a synthetic labelled dataset (core/synth.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "synth.h"

static const char usage[] =
    "sola synth -o DIR [--videos N] [--dim C] [--length T] [--seed S] [--noise X] [...]";

static const char help[] =
    "Writes DIR/features/video_NNNN.npy ([T, C] float32) and DIR/labels/video_NNNN.npy\n"
    "([T] uint8, 1 = action) for a synthetic dataset: a few action segments per video\n"
    "(each of a handful of classes has its own direction in feature space), a weaker\n"
    "background direction elsewhere, a per-video offset and strong per-snippet noise.\n"
    "\n"
    "  -o DIR         output folder (created)\n"
    "  --videos N     number of videos (64)\n"
    "  --dim C        channels (256)\n"
    "  --length T     typical length; each video is uniform in [T/2, 3T/2] (200)\n"
    "  --seed S       seed (0); the same seed writes the same files\n"
    "  --noise X      per-channel noise std relative to the action amplitude (0.4)\n"
    "\n"
    "Other knobs of the generator (core/synth.h): --background A (0.5) amplitude of the\n"
    "background direction, --offset X (0.5) norm of the per-video offset, --mean X (0) a\n"
    "component common to all snippets, --noise-rank K (0 = isotropic) noise along the\n"
    "class directions and K nuisance directions only, --iso-noise X (0.05) the isotropic\n"
    "floor then, --segment N (40) and --gap N (48) the longest action segment and gap.\n";

static void on_video(int done, int total, void *ud)
{
    cli_progress_update(ud, "synth", done, total, "videos", NULL);
}

int cmd_synth(int argc, char **argv)
{
    sola_synth_opts o;
    sola_synth_default(&o);
    const char *out = NULL;
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
        if (!strcmp(a, "-o")) {
            out = v;
        } else if (!strcmp(a, "--videos")) {
            if (cli_parse_int(v, 1, 1000000, &n))
                return cli_usage(usage, "--videos: '%s' is not a whole number in 1..1000000", v);
            o.videos = (int)n;
        } else if (!strcmp(a, "--dim")) {
            if (cli_parse_int(v, 1, 1 << 20, &n))
                return cli_usage(usage, "--dim: '%s' is not a whole number in 1..1048576", v);
            o.C = (int)n;
        } else if (!strcmp(a, "--length")) {
            if (cli_parse_int(v, 2, 1 << 24, &n))
                return cli_usage(usage, "--length: '%s' is not a whole number >= 2", v);
            o.T = (int)n;
        } else if (!strcmp(a, "--seed")) {
            if (cli_parse_u64(v, &o.seed))
                return cli_usage(usage, "--seed: '%s' is not a non-negative integer", v);
        } else if (!strcmp(a, "--noise") || !strcmp(a, "--mean") || !strcmp(a, "--offset") ||
                   !strcmp(a, "--iso-noise") || !strcmp(a, "--background")) {
            if (cli_parse_double(v, &x) || x < 0 || x > 1e6)
                return cli_usage(usage, "%s: '%s' is not a number >= 0", a, v);
            *(!strcmp(a, "--noise") ? &o.noise : !strcmp(a, "--mean") ? &o.mean :
              !strcmp(a, "--offset") ? &o.video_offset : !strcmp(a, "--background") ? &o.bg_level :
              &o.iso_noise) = (float)x;
        } else if (!strcmp(a, "--noise-rank") || !strcmp(a, "--segment") || !strcmp(a, "--gap")) {
            long lo = !strcmp(a, "--noise-rank") ? 0 : 1;
            if (cli_parse_int(v, lo, 1 << 20, &n))
                return cli_usage(usage, "%s: '%s' is not a whole number >= %ld", a, v, lo);
            if (!strcmp(a, "--noise-rank"))
                o.noise_rank = (int)n;
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
    printf("wrote %d videos (C=%d, T in [%d, %d], seed %llu) to %s/features and %s/labels\n",
           o.videos, o.C, o.T / 2 > 0 ? o.T / 2 : 1, o.T + o.T / 2,
           (unsigned long long)o.seed, out, out);
    return EXIT_OK;
}
