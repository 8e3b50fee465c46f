/* cmd_train.c -- `sola train`: train the SoLa module on a dataset folder
 * (core/trainer.h), with progress, checkpoints, Ctrl-C and --resume. */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dataset.h"
#include "defaults.h"
#include "model.h"
#include "trainer.h"

static const char usage[] =
    "sola train (-m INIT.safetensors | --dim C) DATASET_DIR|FILE.h5 -o OUT.safetensors\n"
    "           [--layout tc|ct] [--allow-missing] [--allow-nonfinite]\n"
    "           [--pair-order rgb,flow|flow,rgb]\n"
    "           [--objective sola|cycle|sola+cycle] [--epochs E=150] [--batch B=256] [--lr LR]\n"
    "           [--schedule constant|cosine] [--seed S=0]\n"
    "           [--threads N] [--resume] [--checkpoint PATH] [--checkpoint-every N=10]\n"
    "           [--stop-on-collapse] [--collapse-ratio R=1] [--collapse-share S=0.5]\n"
    "           [--hidden H=512] [--kernel K=5] [--head P=512] [--window W=23]\n"
    "           [--positions N=8] [--start S=4] [--step D=2] [--sharpness K=16]\n"
    "           cycle: [--temperature T=0.07] [--cycle-lambda L=0.1] [--momentum M=0.999]\n"
    "           [--queue K=4096] [--cycle-subset S=1024] [--cycle-hidden H=512]\n"
    "           [--cycle-dim D=128]  sola+cycle: [--sola-weight 1] [--cycle-weight 1]";

static const char help[] =
    "Trains the SoLa module on unlabeled feature sequences (DATASET_DIR/NAME.npy|.npz,\n"
    "[T, C] each) with the authors' similarity-matching objective and AdamW.\n"
    "\n"
    "  -m INIT           start from this model (e.g. from 'sola init' or a previous run)\n"
    "  --dim C           or start from a fresh model of C channels (--hidden, --kernel)\n"
    "  -o OUT            the trained model; it keeps the head and optimizer state\n"
    "  --checkpoint PATH written every --checkpoint-every epochs and on Ctrl-C/SIGTERM\n"
    "                    (default OUT with .ckpt.safetensors; removed after success)\n"
    "  --resume          continue from the checkpoint (or from OUT, to add epochs) with\n"
    "                    its hyper-parameters; a resumed run ends with the same weights\n"
    "                    as an uninterrupted one\n"
    "  --threads N       BLAS threads; the same seed and threads give the same weights\n"
    "  --objective       sola (similarity matching, the authors' recipe), cycle\n"
    "                    (CycleContrast adapted to feature sequences: docs/cycle.md), or\n"
    "                    sola+cycle (sola-weight * L_sola + cycle-weight * L_cycle)\n"
    "  --epochs --batch --seed   150 epochs of one random window per video, 256\n"
    "                    windows a step (one AdamW step, weight decay 0.01), seed 0\n"
    "  --lr --schedule   default per objective: sola 1e-4 constant (the authors'); cycle\n"
    "                    and sola+cycle 1e-3 with cosine decay (docs/training.md)\n"
    "  --hidden --kernel --head   a fresh model's shape (with --dim): 512, 5, 512\n"
    "  --window W --positions N --start S --step D --sharpness K   the objective's\n"
    "                    geometry: windows of W snippets (videos with T <= W are skipped\n"
    "                    and counted), N kept positions S, S+D, ..., target\n"
    "                    sigmoid(K / (i - j)^2)\n"
    "  --layout tc|ct    feature files are [T, C] (default) or channel-first [C, T]\n"
    "  --allow-missing   unreadable videos are skipped and listed instead of stopping\n"
    "  --pair-order rgb,flow|flow,rgb  how rgb/flow pairs are joined on C; refine with\n"
    "                    the same order (recorded in the model as train.pair_order)\n"
    "  --allow-nonfinite skip the scan of every value for NaN/Inf before training (a\n"
    "                    batch that meets one still stops the run, naming the file)\n"
    "  --stop-on-collapse  stop when the collapse guard fires, leaving the last state it\n"
    "                    passed in the checkpoint; without it the guard only warns. It\n"
    "                    fires when the refinement |tanh(alpha) h(x)| is over\n"
    "                    --collapse-ratio times |x| and more than --collapse-share of it\n"
    "                    is one vector added to every snippet (measured each epoch)\n"
    "  cycle options     --temperature --cycle-lambda --momentum --queue --cycle-subset\n"
    "                    --cycle-hidden --cycle-dim: docs/cycle.md\n"
    "\n"
    "Progress (epoch, step / total steps, loss, the cycle terms against chance, the\n"
    "collapse guard's numbers, windows/s, ETA) goes to stderr. Ctrl-C writes a\n"
    "checkpoint first; --resume continues from it with the settings it recorded (a\n"
    "different value of any but --epochs is refused). docs/training.md has a worked run.\n"
    "Example: sola train --dim 2048 features/ -o trained.safetensors\n";

static atomic_int stop_flag;

/* First signal: ask the trainer to checkpoint and stop after the current step.
 * Second: the default action, for a user who does not want to wait. */
static void on_signal(int sig)
{
    if (atomic_exchange(&stop_flag, 1)) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
}

typedef struct ui {
    cli_progress bar;
    long done0; /* steps already done when this run started (resume) */
    long total;
    double ratio, share; /* the collapse guard's thresholds */
    int warned;          /* the collapse warning was printed */
} ui;

static void fmt_eta(double s, char *buf, size_t n)
{
    long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t % 3600 / 60);
    else if (t >= 60)
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, n, "%lds", t);
}

/* The loss and, for the cycle objectives, its parts next to their chance levels. */
static void fmt_loss(const sola_train_progress *p, char *buf, size_t n)
{
    if (p->chance_intra <= 0) {
        snprintf(buf, n, "loss %.5f", p->loss);
        return;
    }
    char sola[40] = "";
    if (p->sola > 0)
        snprintf(sola, sizeof sola, "sola %.4f; ", p->sola);
    snprintf(buf, n, "loss %.5f (%sintra %.3f + %g x cycle %.3f; at chance %.3f + %g x %.3f)",
             p->loss, sola, p->intra, p->lambda, p->cycle, p->chance_intra, p->lambda,
             p->chance_cycle);
}

/* SOLA_DEBUG_STOP_AFTER_EPOCHS=N: the process stops itself (SIGSTOP) once epoch N is
 * done, so a test can send it SIGTERM (a pod being replaced) at a known epoch however
 * fast the machine is (tests/deploy/batch.sh). */
static void debug_stop_after(int epoch)
{
    const char *s = getenv("SOLA_DEBUG_STOP_AFTER_EPOCHS");
    if (s && atoi(s) > 0 && epoch == atoi(s))
        raise(SIGSTOP);
}

static void on_progress(const sola_train_progress *p, void *ud)
{
    ui *u = ud;
    if (p->epoch_done)
        debug_stop_after(p->epoch);
    char loss[256], extra[320];
    fmt_loss(p, loss, sizeof loss);
    snprintf(extra, sizeof extra, "step %ld/%ld, epoch %d/%d, %s, %.0f windows/s", p->total_step,
             p->total_steps, p->epoch, p->epochs, loss, p->windows_per_s);
    if (p->epoch_done) {
        char eta[32], guard[96] = "";
        fmt_eta(p->eta_s, eta, sizeof eta);
        if (p->monitored)
            snprintf(guard, sizeof guard, "; norm ratio %.3f, constant share %.0f%%%s",
                     p->norm_ratio, 100 * p->const_share, p->collapse ? " (COLLAPSE)" : "");
        fprintf(stderr, "%sepoch %d/%d, step %ld/%ld: %s%s (lr %.3g, %.0f windows/s, ETA %s)%s\n",
                u->bar.tty ? "\r\033[K" : "", p->epoch, p->epochs, p->total_step,
                p->total_steps, loss, guard, p->lr, p->windows_per_s, eta,
                p->checkpointed ? ", checkpoint written" : "");
        if (p->collapse && !u->warned) {
            u->warned = 1;
            cli_errorf("warning: the refinement is collapsing: it is %.2f times the size of "
                       "the features (threshold %g) and %.0f%% of it is one vector added to "
                       "every snippet (threshold %.0f%%), so refined snippets lose what told "
                       "them apart while the loss can still fall. Lower --lr, or pass "
                       "--stop-on-collapse to stop at the last state that passed "
                       "(docs/training.md)", p->norm_ratio, u->ratio, 100 * p->const_share,
                       100 * u->share);
        }
    }
    if (u->bar.tty)
        cli_progress_update(&u->bar, "train", p->total_step - u->done0, u->total, "steps",
                            extra);
}

/* OUT.safetensors -> OUT.ckpt.safetensors (malloc'd). */
static char *default_ckpt(const char *out)
{
    size_t n = strlen(out);
    const char *ext = ".safetensors";
    size_t el = strlen(ext), base = n >= el && !strcmp(out + n - el, ext) ? n - el : n;
    char *p = malloc(base + 24);
    if (p)
        snprintf(p, base + 24, "%.*s.ckpt.safetensors", (int)base, out);
    return p;
}

static void on_scan(int done, int total, void *ud)
{
    cli_progress_update(ud, "checking values", done, total, "videos", NULL);
}

static int file_exists(const char *p)
{
    return access(p, F_OK) == 0;
}

int cmd_train(int argc, char **argv)
{
    enum { O_DIM = 256, O_OBJ, O_EPOCHS, O_BATCH, O_LR, O_SEED, O_THREADS, O_RESUME, O_CKPT,
           O_EVERY, O_HIDDEN, O_KERNEL, O_HEAD, O_WINDOW, O_POS, O_START, O_STEP, O_SHARP,
           O_TAU, O_LAMBDA, O_MOM, O_QUEUE, O_SUBSET, O_CHID, O_CDIM, O_WS, O_WC,
           O_LAYOUT, O_ALLOW_MISSING, O_PAIR_ORDER, O_SCHED, O_STOP, O_CRATIO, O_CSHARE,
           O_NONFINITE };
    static const struct option opts[] = {
        {"dim", required_argument, 0, O_DIM},
        {"objective", required_argument, 0, O_OBJ},
        {"epochs", required_argument, 0, O_EPOCHS},
        {"batch", required_argument, 0, O_BATCH},
        {"lr", required_argument, 0, O_LR},
        {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, O_THREADS},
        {"resume", no_argument, 0, O_RESUME},
        {"checkpoint", required_argument, 0, O_CKPT},
        {"checkpoint-every", required_argument, 0, O_EVERY},
        {"hidden", required_argument, 0, O_HIDDEN},
        {"kernel", required_argument, 0, O_KERNEL},
        {"head", required_argument, 0, O_HEAD},
        {"window", required_argument, 0, O_WINDOW},
        {"positions", required_argument, 0, O_POS},
        {"start", required_argument, 0, O_START},
        {"step", required_argument, 0, O_STEP},
        {"sharpness", required_argument, 0, O_SHARP},
        {"temperature", required_argument, 0, O_TAU},
        {"cycle-lambda", required_argument, 0, O_LAMBDA},
        {"momentum", required_argument, 0, O_MOM},
        {"queue", required_argument, 0, O_QUEUE},
        {"cycle-subset", required_argument, 0, O_SUBSET},
        {"cycle-hidden", required_argument, 0, O_CHID},
        {"cycle-dim", required_argument, 0, O_CDIM},
        {"sola-weight", required_argument, 0, O_WS},
        {"cycle-weight", required_argument, 0, O_WC},
        {"layout", required_argument, 0, O_LAYOUT},
        {"allow-missing", no_argument, 0, O_ALLOW_MISSING},
        {"pair-order", required_argument, 0, O_PAIR_ORDER},
        {"schedule", required_argument, 0, O_SCHED},
        {"stop-on-collapse", no_argument, 0, O_STOP},
        {"collapse-ratio", required_argument, 0, O_CRATIO},
        {"collapse-share", required_argument, 0, O_CSHARE},
        {"allow-nonfinite", no_argument, 0, O_NONFINITE},
        {"model", required_argument, 0, 'm'},
        {"output", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    sola_trainer_opts o;
    sola_trainer_default(&o);
    o.checkpoint_every = SOLA_DEFAULT_CHECKPOINT_EVERY;
    long C = 0, H = SOLA_DEFAULT_HIDDEN, k1 = SOLA_DEFAULT_K1, threads = 0;
    const char *init = NULL, *out = NULL, *ckpt_arg = NULL;
    sola_dataset_opts dopt = {.skip_bad = 1}; /* layouts: docs/interop.md */
    int allow_missing = 0, allow_nonfinite = 0, hidden_given = 0, kernel_given = 0;
    unsigned given = 0; /* settings given on the command line (SOLA_SET_*) */
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:o:h", opts, NULL)) != -1) {
        long v = 0, lo = 1, hi = 1 << 24;
        int *dst = NULL;
        double x;
        const char *nm = NULL;
        switch (c) {
        case 'm': init = optarg; continue;
        case 'o': out = optarg; continue;
        case 'h': printf("usage: %s\n\n%s", usage, help); return EXIT_OK;
        case O_RESUME: o.resume = 1; continue;
        case O_ALLOW_MISSING: allow_missing = 1; continue;
        case O_PAIR_ORDER:
            if (strcmp(optarg, "rgb,flow") && strcmp(optarg, "flow,rgb"))
                return cli_usage(usage, "--pair-order wants rgb,flow or flow,rgb, got '%s'",
                                 optarg);
            dopt.flow_first = !strcmp(optarg, "flow,rgb");
            continue;
        case O_NONFINITE: allow_nonfinite = 1; continue;
        case O_STOP: o.stop_on_collapse = 1; continue;
        case O_SCHED:
            if (sola_schedule_parse(optarg) < 0)
                return cli_usage(usage, "--schedule wants constant or cosine, got '%s'", optarg);
            o.schedule = sola_schedule_parse(optarg);
            given |= SOLA_SET_SCHEDULE;
            continue;
        case O_CRATIO:
        case O_CSHARE:
            if (cli_parse_double(optarg, &x) || !(c == O_CRATIO ? x > 0 && x < 1e6
                                                                 : x >= 0 && x <= 1))
                return cli_usage(usage, "--%s wants a number %s, got '%s'",
                                 c == O_CRATIO ? "collapse-ratio" : "collapse-share",
                                 c == O_CRATIO ? "> 0" : "in [0, 1]", optarg);
            *(c == O_CRATIO ? &o.collapse_ratio : &o.collapse_share) = x;
            continue;
        case O_LAYOUT:
            if (strcmp(optarg, "tc") && strcmp(optarg, "ct"))
                return cli_usage(usage, "--layout wants tc (time-major) or ct, got '%s'", optarg);
            dopt.ct = !strcmp(optarg, "ct");
            continue;
        case O_CKPT: ckpt_arg = optarg; continue;
        case O_OBJ:
            if (!strcmp(optarg, "sola") || !strcmp(optarg, "cycle") ||
                !strcmp(optarg, "sola+cycle")) {
                o.objective = optarg;
                given |= SOLA_SET_OBJECTIVE;
                continue;
            }
            return cli_usage(usage, "--objective: unknown objective '%s' (sola, cycle, "
                             "sola+cycle)", optarg);
        case O_TAU:
        case O_LAMBDA:
        case O_MOM:
        case O_WS:
        case O_WC: {
            float *fd = c == O_TAU ? &o.cycle.tau : c == O_LAMBDA ? &o.cycle.lambda
                      : c == O_MOM ? &o.cycle.momentum : c == O_WS ? &o.sola_weight
                                                                    : &o.cycle_weight;
            const char *fn = c == O_TAU ? "temperature" : c == O_LAMBDA ? "cycle-lambda"
                           : c == O_MOM ? "momentum" : c == O_WS ? "sola-weight"
                                                                  : "cycle-weight";
            int bad = cli_parse_double(optarg, &x) || !(x >= 0) || x > 1e30 ||
                      (c == O_TAU && !(x > 0)) || (c == O_MOM && x > 1);
            if (bad)
                return cli_usage(usage, "--%s wants a number %s, got '%s'", fn,
                                 c == O_TAU ? "> 0" : c == O_MOM ? "in [0, 1]" : ">= 0", optarg);
            *fd = (float)x;
            given |= c == O_TAU ? SOLA_SET_TAU : c == O_LAMBDA ? SOLA_SET_LAMBDA
                   : c == O_MOM ? SOLA_SET_MOMENTUM : c == O_WS ? SOLA_SET_SOLA_WEIGHT
                                                                : SOLA_SET_CYCLE_WEIGHT;
            continue;
        }
        case O_SEED:
            if (cli_parse_u64(optarg, &o.seed))
                return cli_usage(usage, "--seed wants a non-negative integer, got '%s'", optarg);
            given |= SOLA_SET_SEED;
            continue;
        case O_LR:
        case O_SHARP:
            if (cli_parse_double(optarg, &x) || (c == O_LR ? !(x > 0) : x < 0))
                return cli_usage(usage, "--%s wants a number %s, got '%s'",
                                 c == O_LR ? "lr" : "sharpness", c == O_LR ? "> 0" : ">= 0",
                                 optarg);
            *(c == O_LR ? &o.lr : &o.cfg.K) = (float)x;
            given |= c == O_LR ? SOLA_SET_LR : SOLA_SET_K;
            continue;
        case O_DIM: nm = "dim"; break;
        case O_HIDDEN: nm = "hidden"; break;
        case O_KERNEL: nm = "kernel"; hi = 255; break;
        case O_THREADS: nm = "threads"; hi = 1024; break;
        case O_EPOCHS: nm = "epochs"; dst = &o.epochs; lo = 0; hi = 1000000; break;
        case O_BATCH: nm = "batch"; dst = &o.batch; given |= SOLA_SET_BATCH; break;
        case O_EVERY: nm = "checkpoint-every"; dst = &o.checkpoint_every; lo = 0; break;
        case O_HEAD: nm = "head"; dst = &o.cfg.P; given |= SOLA_SET_HEAD; break;
        case O_WINDOW: nm = "window"; dst = &o.cfg.W; hi = 1 << 20; given |= SOLA_SET_WINDOW; break;
        case O_POS: nm = "positions"; dst = &o.cfg.N; hi = 1 << 20; given |= SOLA_SET_POSITIONS; break;
        case O_START: nm = "start"; dst = &o.cfg.start; lo = 0; hi = 1 << 20; given |= SOLA_SET_START; break;
        case O_STEP: nm = "step"; dst = &o.cfg.step; hi = 1 << 20; given |= SOLA_SET_STEP; break;
        case O_QUEUE: nm = "queue"; dst = &o.cycle.queue; hi = 1 << 22; given |= SOLA_SET_QUEUE; break;
        case O_SUBSET: nm = "cycle-subset"; dst = &o.cycle.subset; hi = 1 << 22; given |= SOLA_SET_SUBSET; break;
        case O_CHID: nm = "cycle-hidden"; dst = &o.cycle.hidden; hi = 1 << 16; given |= SOLA_SET_CYCLE_HIDDEN; break;
        case O_CDIM: nm = "cycle-dim"; dst = &o.cycle.dim; hi = 1 << 16; given |= SOLA_SET_CYCLE_DIM; break;
        default:
            return cli_usage(usage, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
        if (sola_parse_long(optarg, lo, hi, &v))
            return cli_usage(usage, "--%s wants an integer in [%ld, %ld], got '%s'", nm, lo, hi,
                             optarg);
        if (dst)
            *dst = (int)v;
        else if (c == O_DIM)
            C = v;
        else if (c == O_HIDDEN)
            H = v, hidden_given = 1;
        else if (c == O_KERNEL)
            k1 = v, kernel_given = 1;
        else
            threads = v;
    }
    if (optind + 1 != argc)
        return cli_usage(usage, optind == argc ? "DATASET_DIR is required"
                                               : "exactly one DATASET_DIR, got '%s' too",
                         optind < argc - 1 ? argv[optind + 1] : "");
    const char *dir = argv[optind];
    if (!out)
        return cli_usage(usage, "-o OUT.safetensors is required");
    if (init && C)
        return cli_usage(usage, "give -m INIT or --dim C, not both");
    if (k1 % 2 == 0)
        return cli_usage(usage, "--kernel must be odd (got %ld)", k1);
    sola_err e = {0};
    if (sola_train_cfg_check(&o.cfg, &e))
        return cli_usage(usage, "%s", e.msg);
    if (strcmp(o.objective, "sola") && sola_cycle_cfg_check(&o.cycle, &e))
        return cli_usage(usage, "%s", e.msg);
    if (strcmp(o.objective, "sola") && o.cfg.N < 2)
        return cli_usage(usage, "--objective %s needs --positions >= 2", o.objective);

    char *ckpt = ckpt_arg ? strdup(ckpt_arg) : default_ckpt(out);
    if (!ckpt) {
        cli_errorf("out of memory");
        return EXIT_RUNTIME;
    }
    o.checkpoint = ckpt;

    /* Where to start: a checkpoint or OUT when resuming, else INIT or a fresh model. */
    sola_model *m = NULL;
    const char *from = NULL;
    if (o.resume) {
        if (file_exists(ckpt))
            from = ckpt;
        else if (file_exists(out))
            from = out;
        if (from) {
            if (!(m = sola_model_load(from, &e)))
                goto fail;
            if (!sola_model_extra(m, "trainer.epoch")) {
                cli_errorf("%s holds no training state to resume from; run without --resume",
                           from);
                goto fail_quiet;
            }
            if (sola_trainer_check_resume(m, &o, given, &e)) {
                cli_errorf("--resume from %s: %s", from, e.msg);
                sola_model_free(m);
                free(ckpt);
                return EXIT_USAGE;
            }
            if ((C && C != m->C) || (hidden_given && H != m->H) || (kernel_given && k1 != m->k1)) {
                cli_errorf("--resume from %s: its model has C=%d, hidden %d, kernel %d; a resumed "
                           "run keeps its model: drop --dim/--hidden/--kernel", from, m->C, m->H,
                           m->k1);
                sola_model_free(m);
                free(ckpt);
                return EXIT_USAGE;
            }
            fprintf(stderr, "resuming from %s (epoch %d done)\n", from,
                    sola_trainer_state_epoch(m));
        } else {
            fprintf(stderr, "nothing to resume (no %s, no %s): starting from %s\n", ckpt, out,
                    init ? init : "a fresh model");
        }
    }
    if (!m && init) {
        if (!(m = sola_model_load(init, &e)))
            goto fail;
    } else if (!m) {
        if (!C) {
            free(ckpt);
            return cli_usage(usage, "give -m INIT.safetensors or --dim C");
        }
        if (!(m = sola_model_new((int)C, (int)H, (int)k1, 1, 0, &e)))
            goto fail;
        sola_model_init(m, o.seed);
    }

    sola_dataset *d = NULL;
    if (sola_dataset_open_ex(dir, &dopt, &d, &e))
        goto fail;
    int pairs = 0;
    for (int i = 0; i < d->n; i++)
        pairs |= d->items[i].file2 != NULL;
    if (pairs && sola_model_set_meta(m, "train.pair_order", dopt.flow_first ? "flow,rgb"
                                                                           : "rgb,flow")) {
        sola_dataset_free(d);
        cli_errorf("out of memory");
        goto fail_quiet;
    }
    if (d->nskipped) { /* unreadable videos: named, then stop unless --allow-missing */
        for (int i = 0; i < d->nskipped; i++)
            cli_errorf("skipped %s: %s", d->skipped[i], d->skip_why[i]);
        char mp[4200];
        const char *sl = strrchr(out, '/');
        snprintf(mp, sizeof mp, "%.*smissing_files.txt", sl ? (int)(sl - out + 1) : 0, out);
        if (sola_dataset_write_missing(d, mp, &e))
            cli_errorf("%s", e.msg);
        cli_errorf("%d video%s unreadable (listed in %s)%s", d->nskipped,
                   d->nskipped == 1 ? "" : "s", mp,
                   allow_missing ? "; --allow-missing: training without them"
                                 : "; fix them or pass --allow-missing");
        if (!allow_missing) {
            sola_dataset_free(d);
            goto fail_quiet;
        }
    }
    if (d->C != m->C) {
        cli_errorf("%s: features have C=%d but %s has C=%d%s", dir, d->C,
                   from ? from : init ? init : "the new model", m->C,
                   sola_dataset_could_be_ct(d, m->C)
                       ? "; every file has that many rows: if they are [C, T] (channels "
                         "first), add --layout ct"
                       : "");
        sola_dataset_free(d);
        goto fail_quiet;
    }
    if (!allow_nonfinite) { /* every value, once, before any step */
        cli_progress sp;
        cli_progress_init(&sp);
        int src = sola_dataset_scan_values(d, on_scan, &sp, &e);
        cli_progress_end(&sp);
        if (src) {
            cli_errorf("%s; training refuses NaN and infinities (fix or remove the file, or "
                       "pass --allow-nonfinite to skip this check: a batch that meets such a "
                       "value still stops the run)", e.msg);
            sola_dataset_free(d);
            goto fail_quiet;
        }
    }
    cli_set_threads((int)threads);
    o.threads = (int)threads;

    ui u = {0};
    cli_progress_init(&u.bar);
    u.ratio = o.collapse_ratio;
    u.share = o.collapse_share;
    int ep0 = o.resume ? sola_trainer_state_epoch(m) : 0;
    int W = o.cfg.W, B = o.batch, used = 0;
    long v;
    if (ep0 > 0 && !sola_parse_long(sola_model_meta(m, "train.window"), 1, 1 << 20, &v))
        W = (int)v; /* a resumed run keeps the checkpoint's geometry */
    if (ep0 > 0 && !sola_parse_long(sola_model_meta(m, "train.batch"), 1, 1 << 24, &v))
        B = (int)v;
    for (int i = 0; i < d->n; i++)
        used += d->items[i].T > W;
    long spe = used ? (used + B - 1) / B : 0;
    u.done0 = (long)ep0 * spe;
    u.total = (long)(o.epochs > ep0 ? o.epochs - ep0 : 0) * spe;
    const char *obj = ep0 > 0 && sola_model_meta(m, "train.objective")
                          ? sola_model_meta(m, "train.objective") : o.objective;
    float lr = 0;
    int sched = 0;
    sola_trainer_objective_defaults(obj, &lr, &sched, NULL);
    lr = o.lr > 0 ? o.lr : lr;
    sched = o.schedule ? o.schedule : sched;
    if (ep0 > 0) { /* the state's, as the trainer will use them */
        const char *ms = sola_model_meta(m, "train.lr");
        lr = ms ? strtof(ms, NULL) : lr;
        ms = sola_model_meta(m, "train.schedule");
        sched = sola_schedule_parse(ms) > 0 ? sola_schedule_parse(ms) : SOLA_SCHED_CONSTANT;
    }
    fprintf(stderr, "training on %s: %d videos (%d shorter than W=%d skipped), C=%d, H=%d, "
                    "%d epochs of %ld steps (%ld steps), batch %d, objective %s, lr %g %s\n",
            dir, used, d->n - used, W, d->C, m->H, o.epochs, spe, (long)o.epochs * spe, B, obj,
            (double)lr, sola_schedule_name(sched));
    o.dataset_name = dir; /* the path as typed says more than its last component */
    o.progress = on_progress;
    o.ud = &u;
    o.cancel = &stop_flag;
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    sola_train_result r;
    int unreadable = d->nskipped;
    int rc = sola_train(m, d, &o, &r, &e);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    cli_progress_end(&u.bar);
    sola_dataset_free(d);
    if (rc == SOLA_ECANCEL) {
        cli_errorf("interrupted: %s; run the same command with --resume to continue", e.msg);
        sola_train_result_free(&r);
        goto fail_quiet;
    }
    if (rc == SOLA_ECOLLAPSE) {
        cli_errorf("%s. %s was not written. Resuming would collapse again at the same "
                   "settings: start from that state with a lower learning rate, e.g. "
                   "sola train -m %s %s -o %s --lr %g", e.msg, out, ckpt, dir, out,
                   (double)r.lr / 3);
        sola_train_result_free(&r);
        goto fail_quiet;
    }
    if (rc) {
        sola_train_result_free(&r);
        goto fail;
    }
    if (sola_model_save(m, out, 1, &e)) {
        sola_train_result_free(&r);
        goto fail;
    }
    if (file_exists(ckpt))
        remove(ckpt); /* OUT holds the same state now */
    printf("trained %d epochs on %d videos (%d shorter than the window, %d unreadable: "
           "skipped), %ld steps; final loss %.6f -> %s\n",
           r.epochs_done, r.videos, r.skipped, unreadable, r.steps,
           r.epochs_done ? r.loss[r.epochs_done - 1] : 0.0, out);
    if (r.monitored)
        printf("collapse guard: norm ratio %.3f, constant share %.0f%% at the end%s\n",
               r.norm_ratio, 100 * r.const_share,
               r.collapse_epoch ? "; it fired (see the warning above)" : "; it stayed quiet");
    sola_train_result_free(&r);
    sola_model_free(m);
    free(ckpt);
    return EXIT_OK;
fail:
    cli_errorf("%s", e.msg);
fail_quiet:
    sola_model_free(m);
    free(ckpt);
    return EXIT_RUNTIME;
}
