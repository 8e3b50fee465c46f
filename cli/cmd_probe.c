/* cmd_probe.c -- `sola probe`: linear fg/bg probe of raw or refined features
 * (core/train/probe.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "annotations.h"
#include "cli.h"
#include "dataset.h"
#include "fsutil.h"
#include "model.h"
#include "probe.h"

static const char usage[] =
    "sola probe --features DIR|FILE.h5 (--labels DIR | --annotations JSON [--subset S] "
    "[--fps F] [--stride S] [--frames N] [--offset O] [--ignore-label L]) [--model M] [--seed S] [--epochs E] "
    "[--val-frac F] [--baselines K,K,...|none] [--layout tc|ct] [--pair-order rgb,flow|flow,rgb] "
    "[--allow-missing] "
    "[--missing-list FILE]";

static const char help[] =
    "Linear evaluation of the SoLa authors: L2-normalised snippet features, a linear\n"
    "layer to action/background, cross-entropy, SGD lr 0.01 momentum 0.9, batch 256.\n"
    "Videos (not snippets) are split into train and validation by the seed.\n"
    "\n"
    "  --features DIR  feature folder (NAME.npy / NAME.npz, [T, C]; any layout of\n"
    "                  docs/interop.md) or an HDF5 file of one dataset per video\n"
    "  --labels DIR    NAME.npy per video: integer or bool [T], nonzero = action\n"
    "  --annotations J ActionFormer/OpenTAD JSON instead of --labels: a snippet is action\n"
    "                  when its centre lies in a segment, g(t) = (t*fps - offset)/stride\n"
    "  --subset S      only videos of this subset (case-insensitive), e.g. validation\n"
    "  --fps F         fps of videos whose JSON entry has neither \"fps\" nor \"frame\"\n"
    "                  (OpenTAD's frame count: fps = frame / duration)\n"
    "  --stride S      frames between snippets (4); --frames N frames per snippet (16);\n"
    "  --offset O      frame of snippet 0's centre (frames/2)\n"
    "  --ignore-label L  segments with this label are not actions (Ambiguous, as OpenTAD\n"
    "                  skips THUMOS's); '' labels every segment\n"
    "  --layout ct     feature files are [C, T]\n"
    "  --pair-order O  rgb,flow (default) or flow,rgb: how rgb/flow pairs are joined\n"
    "  --allow-missing unreadable or missing videos are skipped without failing the run\n"
    "  --missing-list F  write the names of skipped videos to F\n"
    "  --model M       also probe the features refined by this model\n"
    "  --baselines L   moving averages to probe beside them, widths in snippets (3,5,9);\n"
    "                  'none' for none. Raw features are always probed: a model is read\n"
    "                  against both raw features and the best moving average\n"
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

typedef struct ann_ctx {
    sola_annotations *a;
    sola_ann_params p;
} ann_ctx;

/* Labels of one video from the annotation JSON (sola_probe_opts.labels). */
static int ann_labels(void *ud, const char *name, int64_t T, uint8_t *lab, sola_err *e)
{
    ann_ctx *c = ud;
    int v = sola_ann_find(c->a, name);
    if (v < 0)
        return 1; /* not in the JSON (or not in the subset): not probed */
    if (!lab)
        return 0;
    sola_ann_report r;
    int rc = sola_ann_labels(c->a, v, T, &c->p, NULL, lab, &r, e);
    if (rc)
        return rc;
    if (r.mismatch)
        cli_errorf("warning: %s: %lld snippets, but its duration gives %lld (stride %g, %g "
                   "frames per snippet); check --fps/--stride, labels may be misaligned", name,
                   (long long)T, (long long)r.expected_T, c->p.stride, c->p.frames);
    if (r.outside)
        cli_errorf("warning: %s: %d segment%s start%s past the end of the video, ignored",
                   name, r.outside, r.outside == 1 ? "" : "s", r.outside == 1 ? "s" : "");
    if (r.clamped)
        cli_errorf("note: %s: %d segment%s before the first or after the last snippet "
                   "centre, put on the nearest snippet", name, r.clamped,
                   r.clamped == 1 ? "" : "s");
    return 0;
}

/* Videos the probe cannot use: unreadable files, and annotated videos without
 * features. Logs each; writes the list if asked; returns how many. */
static int report_missing(const char *feats, const sola_dataset_opts *dopt,
                          const sola_annotations *a, const char *list, sola_err *e)
{
    sola_dataset *d = NULL;
    if (sola_dataset_open_ex(feats, dopt, &d, e))
        return -1;
    for (int i = 0; i < d->nskipped; i++)
        cli_errorf("skipped %s: %s", d->skipped[i], d->skip_why[i]);
    for (int i = 0; a && i < a->n; i++)
        if (sola_dataset_find(d, a->videos[i].name) < 0) {
            cli_errorf("skipped %s: annotated but no features in %s", a->videos[i].name, feats);
            if (sola_dataset_note_skip(d, a->videos[i].name, "no features")) {
                sola_dataset_free(d);
                return sola_errf(e, SOLA_ENOMEM, "out of memory"), -1;
            }
        }
    int n = d->nskipped;
    if (list && sola_dataset_write_missing(d, list, e))
        n = -1;
    sola_dataset_free(d);
    return n;
}

/* One line of the comparison table; n/a where a class has no snippet. */
static void print_row(const char *name, const sola_probe_result *r)
{
    char a[4][16];
    const double v[4] = {r->acc_fg, r->acc_bg, r->boundary_accuracy, r->train_loss};
    for (int i = 0; i < 4; i++)
        snprintf(a[i], sizeof a[i], isnan(v[i]) ? "n/a" : "%.4f", v[i]);
    printf("%-34s %8.4f %8s %10s %9s %10s\n", name, r->accuracy, a[0], a[1], a[2], a[3]);
}

int cmd_probe(int argc, char **argv)
{
    sola_probe_opts o;
    sola_probe_default(&o);
    const char *feats = NULL, *labels = NULL, *model = NULL, *ann = NULL, *subset = NULL;
    const char *missing_list = NULL, *ignore = "Ambiguous";
    int threads = 0, allow_missing = 0;
    int ks[SOLA_PROBE_MAX_SMOOTH] = {3, 5, 9}, nk = 3;
    sola_dataset_opts dopt = {.skip_bad = 1};
    ann_ctx actx = {0};
    sola_ann_params_default(&actx.p);
    actx.p.offset = -1; /* frames / 2 unless given */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: %s\n\n%s", usage, help);
            return EXIT_OK;
        }
        if (!strcmp(a, "--allow-missing")) {
            allow_missing = 1;
            continue;
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
        } else if (!strcmp(a, "--annotations")) {
            ann = v;
        } else if (!strcmp(a, "--subset")) {
            subset = v;
        } else if (!strcmp(a, "--missing-list")) {
            missing_list = v;
        } else if (!strcmp(a, "--ignore-label")) {
            ignore = v;
        } else if (!strcmp(a, "--layout")) {
            if (strcmp(v, "tc") && strcmp(v, "ct"))
                return cli_usage(usage, "--layout wants tc (time-major) or ct, got '%s'", v);
            dopt.ct = !strcmp(v, "ct");
        } else if (!strcmp(a, "--pair-order")) {
            if (strcmp(v, "rgb,flow") && strcmp(v, "flow,rgb"))
                return cli_usage(usage, "--pair-order wants rgb,flow or flow,rgb, got '%s'", v);
            dopt.flow_first = !strcmp(v, "flow,rgb");
        } else if (!strcmp(a, "--fps") || !strcmp(a, "--stride") || !strcmp(a, "--frames") ||
                   !strcmp(a, "--offset")) {
            int off = !strcmp(a, "--offset");
            if (cli_parse_double(v, &x) || !(off ? x >= 0 : x > 0) || x > 1e6)
                return cli_usage(usage, "%s: '%s' is not a %s number", a, v,
                                 off ? "non-negative" : "positive");
            *(!strcmp(a, "--fps")      ? &actx.p.default_fps
              : !strcmp(a, "--stride") ? &actx.p.stride
              : !strcmp(a, "--frames") ? &actx.p.frames
                                       : &actx.p.offset) = x;
        } else if (!strcmp(a, "--model") || !strcmp(a, "-m")) {
            model = v;
        } else if (!strcmp(a, "--seed")) {
            if (cli_parse_u64(v, &o.seed))
                return cli_usage(usage, "--seed: '%s' is not a non-negative integer", v);
        } else if (!strcmp(a, "--epochs")) {
            if (sola_parse_long(v, 1, 100000, &n))
                return cli_usage(usage, "--epochs: '%s' is not a whole number in 1..100000", v);
            o.epochs = (int)n;
        } else if (!strcmp(a, "--val-frac")) {
            if (cli_parse_double(v, &x) || !(x > 0 && x < 1))
                return cli_usage(usage, "--val-frac: '%s' is not a number in (0, 1)", v);
            o.val_frac = (float)x;
        } else if (!strcmp(a, "--baselines")) {
            nk = 0;
            if (strcmp(v, "none")) {
                const char *q = v;
                while (*q) {
                    char *end;
                    long k = strtol(q, &end, 10);
                    if (end == q || k < 2 || k > 1000 || nk == SOLA_PROBE_MAX_SMOOTH ||
                        (*end && *end != ','))
                        return cli_usage(usage, "--baselines: '%s' is not 'none' or up to %d "
                                         "widths in 2..1000 separated by commas", v,
                                         SOLA_PROBE_MAX_SMOOTH);
                    ks[nk++] = (int)k;
                    q = *end ? end + 1 : end;
                }
            }
        } else if (!strcmp(a, "--threads")) {
            if (sola_parse_long(v, 1, 1024, &n))
                return cli_usage(usage, "--threads: '%s' is not a whole number in 1..1024", v);
            threads = (int)n;
        } else {
            return cli_usage(usage, "unknown option '%s'", a);
        }
    }
    if (!feats || !labels == !ann)
        return cli_usage(usage, "need --features DIR and one of --labels DIR, --annotations JSON");
    cli_set_threads(threads);
    sola_err e = {0};
    if (ann && sola_ann_load_ex(ann, subset, ignore, &actx.a, &e)) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    if (ann && actx.a->n == 0) {
        cli_errorf("%s: no videos%s%s", ann, subset ? " in subset " : "", subset ? subset : "");
        sola_ann_free(actx.a);
        return EXIT_RUNTIME;
    }
    int nmissing = report_missing(feats, &dopt, actx.a, missing_list, &e);
    if (nmissing < 0) {
        cli_errorf("%s", e.msg);
        sola_ann_free(actx.a);
        return EXIT_RUNTIME;
    }
    o.dataset = &dopt;
    if (ann) {
        o.labels = ann_labels;
        o.labels_ud = &actx;
    }
    sola_model *m = NULL;
    if (model && !(m = cli_load_model(model))) {
        sola_ann_free(actx.a);
        return EXIT_RUNTIME;
    }
    o.model = m;
    cli_progress p;
    cli_progress_init(&p);
    o.progress = on_epoch;
    o.ud = &p;
    sola_probe_report rep;
    int rc = sola_probe_compare(feats, labels, &o, ks, nk, &rep, &e);
    cli_progress_end(&p);
    sola_model_free(m);
    sola_ann_free(actx.a);
    if (rc) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    const sola_probe_result *r = &rep.raw;
    printf("features      %s\n", feats);
    printf("videos        %d train, %d validation (seed %llu)\n", r->videos_train,
           r->videos_val, (unsigned long long)o.seed);
    printf("snippets      %ld train (%ld action), %ld validation (%ld action)\n", r->train_n,
           r->train_fg, r->val_n, r->val_fg);
    printf("majority      %.4f   (always answering the larger class)\n", r->majority);
    printf("boundary      snippets within +-%d of an action/background transition: %ld\n\n",
           o.radius, r->boundary_n);
    printf("%-34s %8s %8s %10s %9s %10s\n", "probed features", "accuracy", "action",
           "background", "boundary", "train loss");
    print_row("raw", r);
    for (int i = 0; i < rep.nsmooth; i++) {
        char name[64];
        snprintf(name, sizeof name, "moving average of %d%s", rep.smooth_k[i],
                 i == rep.best && rep.nsmooth > 1 ? " (best)" : "");
        print_row(name, &rep.smooth[i]);
    }
    if (rep.has_model) {
        char name[64];
        const char *sl = strrchr(model, '/');
        snprintf(name, sizeof name, "refined by %.40s", sl ? sl + 1 : model);
        print_row(name, &rep.model);
        printf("\nmodel - raw: %+.4f accuracy, %+.4f boundary", rep.model.accuracy - r->accuracy,
               rep.model.boundary_accuracy - r->boundary_accuracy);
        if (rep.nsmooth) {
            const sola_probe_result *b = &rep.smooth[rep.best];
            printf("; model - best moving average (%d): %+.4f accuracy, %+.4f boundary",
                   rep.smooth_k[rep.best], rep.model.accuracy - b->accuracy,
                   rep.model.boundary_accuracy - b->boundary_accuracy);
        }
        printf("\n");
    }
    if (nmissing) {
        cli_errorf("%d video%s skipped (listed above)%s", nmissing, nmissing == 1 ? "" : "s",
                   allow_missing ? "; --allow-missing: not an error" : "");
        if (!allow_missing)
            return EXIT_RUNTIME;
    }
    return EXIT_OK;
}
