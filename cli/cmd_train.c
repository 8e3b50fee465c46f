/* cmd_train.c -- `sola train`: train the SoLa module on a dataset folder
 * (core/train/trainer.h), with progress, checkpoints, Ctrl-C and --resume. */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dataset.h"
#include "defaults.h"
#include "model.h"
#include "trainer.h"

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

/* ---- the options: one table ---------------------------------------------------- */

/* What the command line sets. H and k1 are a fresh model's shape; *_given say whether
 * they were typed (a resumed run refuses a shape other than its model's). */
typedef struct train_args {
    sola_trainer_opts o;
    sola_dataset_opts dopt; /* layouts: docs/interop.md */
    long C, H, k1, threads;
    const char *init, *out, *ckpt_arg, *dir;
    int allow_missing, allow_nonfinite;
    unsigned given; /* settings typed on the command line (SOLA_SET_*) */
    unsigned typed; /* T_* bits below */
} train_args;

enum { T_HIDDEN = 1, T_KERNEL = 2 };

enum {
    A_FLAG,      /* int field = 1 */
    A_STR,       /* const char * field = the argument */
    A_INT,       /* int field, an integer in [lo, hi] */
    A_LONG,      /* long field, the same */
    A_U64,       /* uint64_t field, a non-negative integer */
    A_FLOAT,     /* float field, a finite number in the range lo..hi */
    A_DOUBLE,    /* double field, the same */
    A_CHOICE,    /* int field = index of the argument among arg's '|'-separated words */
    A_OBJECTIVE, /* const char * field, one of arg's words */
    A_SCHEDULE,  /* int field = sola_schedule_parse(argument) */
    A_HELP,
};

/* Range ends of A_FLOAT / A_DOUBLE left out: x > lo instead of x >= lo, x < hi. */
enum { OPEN_LO = 1, OPEN_HI = 2 };

typedef struct topt {
    const char *name; /* long name, without "--" */
    int shortc;       /* -m, -o, -h; 0 none */
    const char *arg;  /* metavariable or the choices ("tc|ct"); NULL: a flag */
    int kind;
    size_t off;        /* offsetof(train_args, ...) */
    double lo, hi;     /* bounds of numbers */
    int open;          /* OPEN_* */
    unsigned set;      /* SOLA_SET_* recorded in args.o's `given` when typed */
    unsigned typed;    /* T_* recorded in args.typed when typed */
    const char *range; /* numbers: what the error says ("> 0"); choices: the whole error */
    int show_def;      /* the usage line shows "=DEFAULT" (the field's default value) */
    const char *group; /* written before it in the usage line ("cycle:") */
} topt;

#define A(f) offsetof(train_args, f)
#define BIG 1e30

static const topt topts[] = {
    {"model", 'm', "INIT", A_STR, A(init), 0, 0, 0, 0, 0, NULL, 0, NULL},
    {"output", 'o', "OUT", A_STR, A(out), 0, 0, 0, 0, 0, NULL, 0, NULL},
    {"dim", 0, "C", A_LONG, A(C), 1, 1 << 24, 0, 0, 0, NULL, 0, NULL},
    {"layout", 0, "tc|ct", A_CHOICE, A(dopt.ct), 0, 0, 0, 0, 0,
     "--layout wants tc (time-major) or ct, got '%s'", 0, NULL},
    {"allow-missing", 0, NULL, A_FLAG, A(allow_missing), 0, 0, 0, 0, 0, NULL, 0, NULL},
    {"allow-nonfinite", 0, NULL, A_FLAG, A(allow_nonfinite), 0, 0, 0, 0, 0, NULL, 0, NULL},
    {"pair-order", 0, "rgb,flow|flow,rgb", A_CHOICE, A(dopt.flow_first), 0, 0, 0, 0, 0,
     "--pair-order wants rgb,flow or flow,rgb, got '%s'", 0, NULL},
    {"objective", 0, "sola|cycle|sola+cycle", A_OBJECTIVE, A(o.objective), 0, 0, 0,
     SOLA_SET_OBJECTIVE, 0, "--objective: unknown objective '%s' (sola, cycle, sola+cycle)",
     0, NULL},
    {"epochs", 0, "E", A_INT, A(o.epochs), 0, 1000000, 0, 0, 0, NULL, 1, NULL},
    {"batch", 0, "B", A_INT, A(o.batch), 1, 1 << 24, 0, SOLA_SET_BATCH, 0, NULL, 1, NULL},
    {"lr", 0, "LR", A_FLOAT, A(o.lr), 0, HUGE_VAL, OPEN_LO, SOLA_SET_LR, 0, "> 0", 0, NULL},
    {"schedule", 0, "constant|cosine", A_SCHEDULE, A(o.schedule), 0, 0, 0, SOLA_SET_SCHEDULE,
     0, "--schedule wants constant or cosine, got '%s'", 0, NULL},
    {"seed", 0, "S", A_U64, A(o.seed), 0, 0, 0, SOLA_SET_SEED, 0, NULL, 1, NULL},
    {"threads", 0, "N", A_LONG, A(threads), 1, 1024, 0, 0, 0, NULL, 0, NULL},
    {"resume", 0, NULL, A_FLAG, A(o.resume), 0, 0, 0, 0, 0, NULL, 0, NULL},
    {"checkpoint", 0, "PATH", A_STR, A(ckpt_arg), 0, 0, 0, 0, 0, NULL, 0, NULL},
    {"checkpoint-every", 0, "N", A_INT, A(o.checkpoint_every), 0, 1 << 24, 0, 0, 0, NULL, 1,
     NULL},
    {"stop-on-collapse", 0, NULL, A_FLAG, A(o.stop_on_collapse), 0, 0, 0, 0, 0, NULL, 0, NULL},
    {"collapse-ratio", 0, "R", A_DOUBLE, A(o.collapse_ratio), 0, 1e6, OPEN_LO | OPEN_HI, 0, 0,
     "> 0", 1, NULL},
    {"collapse-share", 0, "S", A_DOUBLE, A(o.collapse_share), 0, 1, 0, 0, 0, "in [0, 1]", 1,
     NULL},
    {"hidden", 0, "H", A_LONG, A(H), 1, 1 << 24, 0, 0, T_HIDDEN, NULL, 1, NULL},
    {"kernel", 0, "K", A_LONG, A(k1), 1, 255, 0, 0, T_KERNEL, NULL, 1, NULL},
    {"head", 0, "P", A_INT, A(o.cfg.P), 1, 1 << 24, 0, SOLA_SET_HEAD, 0, NULL, 1, NULL},
    {"window", 0, "W", A_INT, A(o.cfg.W), 1, 1 << 20, 0, SOLA_SET_WINDOW, 0, NULL, 1, NULL},
    {"positions", 0, "N", A_INT, A(o.cfg.N), 1, 1 << 20, 0, SOLA_SET_POSITIONS, 0, NULL, 1,
     NULL},
    {"start", 0, "S", A_INT, A(o.cfg.start), 0, 1 << 20, 0, SOLA_SET_START, 0, NULL, 1, NULL},
    {"step", 0, "D", A_INT, A(o.cfg.step), 1, 1 << 20, 0, SOLA_SET_STEP, 0, NULL, 1, NULL},
    {"sharpness", 0, "K", A_FLOAT, A(o.cfg.K), 0, HUGE_VAL, 0, SOLA_SET_K, 0, ">= 0", 1, NULL},
    {"temperature", 0, "T", A_FLOAT, A(o.cycle.tau), 0, BIG, OPEN_LO, SOLA_SET_TAU, 0, "> 0",
     1, "cycle:"},
    {"cycle-lambda", 0, "L", A_FLOAT, A(o.cycle.lambda), 0, BIG, 0, SOLA_SET_LAMBDA, 0, ">= 0",
     1, NULL},
    {"momentum", 0, "M", A_FLOAT, A(o.cycle.momentum), 0, 1, 0, SOLA_SET_MOMENTUM, 0,
     "in [0, 1]", 1, NULL},
    {"queue", 0, "K", A_INT, A(o.cycle.queue), 1, 1 << 22, 0, SOLA_SET_QUEUE, 0, NULL, 1, NULL},
    {"cycle-subset", 0, "S", A_INT, A(o.cycle.subset), 1, 1 << 22, 0, SOLA_SET_SUBSET, 0, NULL,
     1, NULL},
    {"cycle-hidden", 0, "H", A_INT, A(o.cycle.hidden), 1, 1 << 16, 0, SOLA_SET_CYCLE_HIDDEN, 0,
     NULL, 1, NULL},
    {"cycle-dim", 0, "D", A_INT, A(o.cycle.dim), 1, 1 << 16, 0, SOLA_SET_CYCLE_DIM, 0, NULL, 1,
     NULL},
    {"sola-weight", 0, "", A_FLOAT, A(o.sola_weight), 0, BIG, 0, SOLA_SET_SOLA_WEIGHT, 0,
     ">= 0", 1, "sola+cycle:"},
    {"cycle-weight", 0, "", A_FLOAT, A(o.cycle_weight), 0, BIG, 0, SOLA_SET_CYCLE_WEIGHT, 0,
     ">= 0", 1, NULL},
    {"help", 'h', NULL, A_HELP, 0, 0, 0, 0, 0, 0, NULL, 0, NULL},
};
#define NTOPTS (sizeof topts / sizeof topts[0])

static void args_default(train_args *a)
{
    memset(a, 0, sizeof *a);
    sola_trainer_default(&a->o);
    a->o.checkpoint_every = SOLA_DEFAULT_CHECKPOINT_EVERY;
    a->dopt.skip_bad = 1;
    a->H = SOLA_DEFAULT_HIDDEN;
    a->k1 = SOLA_DEFAULT_K1;
}

/* "[--epochs E=150]": the option as the usage line shows it, its default read from
 * the defaulted arguments. */
static void usage_item(const topt *t, const train_args *d, char *buf, size_t n)
{
    const char *f = (const char *)d + t->off;
    char def[48] = "";
    if (t->show_def) {
        switch (t->kind) {
        case A_INT: snprintf(def, sizeof def, "%d", *(const int *)f); break;
        case A_LONG: snprintf(def, sizeof def, "%ld", *(const long *)f); break;
        case A_U64: snprintf(def, sizeof def, "%llu", (unsigned long long)*(const uint64_t *)f);
            break;
        case A_FLOAT: snprintf(def, sizeof def, "%g", (double)*(const float *)f); break;
        case A_DOUBLE: snprintf(def, sizeof def, "%g", *(const double *)f); break;
        }
    }
    const char *arg = t->arg ? t->arg : "";
    snprintf(buf, n, "[--%s%s%s%s%s]", t->name, t->arg ? " " : "", arg,
             *def && *arg ? "=" : "", def);
}

#define USAGE_HEAD                                                                         \
    "sola train (-m INIT.safetensors | --dim C) DATASET_DIR|FILE.h5 -o OUT.safetensors"
#define USAGE_WIDTH 88
#define USAGE_INDENT 11

/* The usage line(s), written from the table once. */
static const char *train_usage(void)
{
    static char usage[4096];
    if (usage[0])
        return usage;
    train_args d;
    args_default(&d);
    size_t len = (size_t)snprintf(usage, sizeof usage, "%s", USAGE_HEAD);
    int col = USAGE_WIDTH; /* start a new line before the first option */
    for (size_t i = 0; i < NTOPTS; i++) {
        const topt *t = &topts[i];
        if (t->shortc || !strcmp(t->name, "dim"))
            continue; /* in the head */
        char item[128], word[160];
        usage_item(t, &d, item, sizeof item);
        snprintf(word, sizeof word, "%s%s%s", t->group ? t->group : "", t->group ? " " : "",
                 item);
        int w = (int)strlen(word);
        if (col + 1 + w > USAGE_WIDTH) {
            len += (size_t)snprintf(usage + len, sizeof usage - len, "\n%*s%s", USAGE_INDENT,
                                    "", word);
            col = USAGE_INDENT + w;
        } else {
            len += (size_t)snprintf(usage + len, sizeof usage - len, " %s", word);
            col += 1 + w;
        }
    }
    return usage;
}

/* A value that is none of a choice's words: the option's own message. */
static int choice_error(const topt *t, const char *val)
{
    char msg[256];
    snprintf(msg, sizeof msg, t->range, val);
    return cli_usage(train_usage(), "%s", msg);
}

/* Applies one typed option. 0, or EXIT_USAGE after printing what is wrong. */
static int apply(const topt *t, const char *val, train_args *a)
{
    const char *usage = train_usage();
    char *f = (char *)a + t->off;
    long v;
    double x;
    switch (t->kind) {
    case A_FLAG: *(int *)f = 1; break;
    case A_STR: *(const char **)f = val; break;
    case A_INT:
    case A_LONG:
        if (sola_parse_long(val, (long)t->lo, (long)t->hi, &v))
            return cli_usage(usage, "--%s wants an integer in [%ld, %ld], got '%s'", t->name,
                             (long)t->lo, (long)t->hi, val);
        if (t->kind == A_INT)
            *(int *)f = (int)v;
        else
            *(long *)f = v;
        break;
    case A_U64:
        if (cli_parse_u64(val, (uint64_t *)f))
            return cli_usage(usage, "--%s wants a non-negative integer, got '%s'", t->name, val);
        break;
    case A_FLOAT:
    case A_DOUBLE:
        if (cli_parse_double(val, &x) || !((t->open & OPEN_LO) ? x > t->lo : x >= t->lo) ||
            !((t->open & OPEN_HI) ? x < t->hi : x <= t->hi))
            return cli_usage(usage, "--%s wants a number %s, got '%s'", t->name, t->range, val);
        if (t->kind == A_FLOAT)
            *(float *)f = (float)x;
        else
            *(double *)f = x;
        break;
    case A_CHOICE:
    case A_OBJECTIVE: {
        size_t n = strlen(val);
        int idx = 0;
        const char *p = t->arg;
        for (; *p; idx++) {
            size_t m = strcspn(p, "|");
            if (m == n && !strncmp(p, val, n))
                break;
            p += m + (p[m] == '|');
        }
        if (!*p)
            return choice_error(t, val);
        if (t->kind == A_CHOICE)
            *(int *)f = idx;
        else
            *(const char **)f = val;
        break;
    }
    case A_SCHEDULE:
        if (sola_schedule_parse(val) < 0)
            return choice_error(t, val);
        *(int *)f = sola_schedule_parse(val);
        break;
    }
    return 0;
}

/* ---- parse, validate -------------------------------------------------------------- */

/* Reads argv into *a. -1: go on; else the exit code (0 after --help). */
static int train_parse(int argc, char **argv, train_args *a)
{
    const char *usage = train_usage();
    struct option gopts[NTOPTS + 1];
    char shorts[3 * NTOPTS + 1];
    size_t ns = 0;
    for (size_t i = 0; i < NTOPTS; i++) {
        gopts[i] = (struct option){topts[i].name,
                                   topts[i].arg ? required_argument : no_argument, NULL,
                                   256 + (int)i};
        if (topts[i].shortc) {
            shorts[ns++] = (char)topts[i].shortc;
            if (topts[i].arg)
                shorts[ns++] = ':';
        }
    }
    gopts[NTOPTS] = (struct option){0, 0, 0, 0};
    shorts[ns] = '\0';
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, shorts, gopts, NULL)) != -1) {
        const topt *t = NULL;
        for (size_t i = 0; i < NTOPTS && !t; i++)
            if (c == 256 + (int)i || (c < 256 && c != '?' && c == topts[i].shortc))
                t = &topts[i];
        if (!t)
            return cli_usage(usage, "unknown or incomplete option '%s'", argv[optind - 1]);
        if (t->kind == A_HELP) {
            printf("usage: %s\n\n%s", usage, help);
            return EXIT_OK;
        }
        int rc = apply(t, optarg, a);
        if (rc)
            return rc;
        a->given |= t->set;
        a->typed |= t->typed;
    }
    if (optind + 1 != argc)
        return cli_usage(usage, optind == argc ? "DATASET_DIR is required"
                                               : "exactly one DATASET_DIR, got '%s' too",
                         optind < argc - 1 ? argv[optind + 1] : "");
    a->dir = argv[optind];
    return -1;
}

/* The settings together. -1: go on; else EXIT_USAGE (printed). */
static int train_validate(const train_args *a)
{
    const char *usage = train_usage();
    if (!a->out)
        return cli_usage(usage, "-o OUT.safetensors is required");
    if (a->init && a->C)
        return cli_usage(usage, "give -m INIT or --dim C, not both");
    if (a->k1 % 2 == 0)
        return cli_usage(usage, "--kernel must be odd (got %ld)", a->k1);
    sola_err e = {0};
    if (sola_train_cfg_check(&a->o.cfg, &e))
        return cli_usage(usage, "%s", e.msg);
    if (strcmp(a->o.objective, "sola") && sola_cycle_cfg_check(&a->o.cycle, &e))
        return cli_usage(usage, "%s", e.msg);
    if (strcmp(a->o.objective, "sola") && a->o.cfg.N < 2)
        return cli_usage(usage, "--objective %s needs --positions >= 2", a->o.objective);
    return -1;
}

/* ---- run ------------------------------------------------------------------------ */

/* Where to start: the checkpoint or OUT when resuming, else INIT or a fresh model.
 * *m on success (-1), else the exit code (printed). *from: the file it came from. */
static int start_model(const train_args *a, const char *ckpt, sola_model **mp,
                       const char **from)
{
    sola_err e = {0};
    sola_model *m = NULL;
    *from = NULL;
    if (a->o.resume) {
        if (file_exists(ckpt))
            *from = ckpt;
        else if (file_exists(a->out))
            *from = a->out;
        if (*from) {
            if (!(m = cli_load_model(*from)))
                return EXIT_RUNTIME;
            if (!sola_model_extra(m, "trainer.epoch")) {
                cli_errorf("%s holds no training state to resume from; run without --resume",
                           *from);
                sola_model_free(m);
                return EXIT_RUNTIME;
            }
            if (sola_trainer_check_resume(m, &a->o, a->given, &e)) {
                cli_errorf("--resume from %s: %s", *from, e.msg);
                sola_model_free(m);
                return EXIT_USAGE;
            }
            if ((a->C && a->C != m->C) || ((a->typed & T_HIDDEN) && a->H != m->H) ||
                ((a->typed & T_KERNEL) && a->k1 != m->k1)) {
                cli_errorf("--resume from %s: its model has C=%d, hidden %d, kernel %d; a resumed "
                           "run keeps its model: drop --dim/--hidden/--kernel", *from, m->C, m->H,
                           m->k1);
                sola_model_free(m);
                return EXIT_USAGE;
            }
            fprintf(stderr, "resuming from %s (epoch %d done)\n", *from,
                    sola_trainer_state_epoch(m));
        } else {
            fprintf(stderr, "nothing to resume (no %s, no %s): starting from %s\n", ckpt,
                    a->out, a->init ? a->init : "a fresh model");
        }
    }
    if (!m && a->init) {
        if (!(m = cli_load_model(a->init)))
            return EXIT_RUNTIME;
    } else if (!m) {
        if (!a->C)
            return cli_usage(train_usage(), "give -m INIT.safetensors or --dim C");
        if (!(m = sola_model_new((int)a->C, (int)a->H, (int)a->k1, 1, 0, &e))) {
            cli_errorf("%s", e.msg);
            return EXIT_RUNTIME;
        }
        sola_model_init(m, a->o.seed);
    }
    *mp = m;
    return -1;
}

/* Opens the dataset and checks it against m: unreadable videos (named; a stop unless
 * --allow-missing), C, and every value finite (unless --allow-nonfinite). *dp on
 * success (-1), else EXIT_RUNTIME (printed). */
static int open_data(const train_args *a, sola_model *m, const char *from, sola_dataset **dp)
{
    sola_err e = {0};
    sola_dataset *d = NULL;
    if (sola_dataset_open_ex(a->dir, &a->dopt, &d, &e)) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    int pairs = 0;
    for (int i = 0; i < d->n; i++)
        pairs |= d->items[i].file2 != NULL;
    if (pairs && sola_model_set_meta(m, "train.pair_order", a->dopt.flow_first ? "flow,rgb"
                                                                              : "rgb,flow")) {
        sola_dataset_free(d);
        cli_errorf("out of memory");
        return EXIT_RUNTIME;
    }
    if (d->nskipped) { /* unreadable videos: named, then stop unless --allow-missing */
        for (int i = 0; i < d->nskipped; i++)
            cli_errorf("skipped %s: %s", d->skipped[i], d->skip_why[i]);
        char mp[4200];
        const char *sl = strrchr(a->out, '/');
        snprintf(mp, sizeof mp, "%.*smissing_files.txt", sl ? (int)(sl - a->out + 1) : 0,
                 a->out);
        if (sola_dataset_write_missing(d, mp, &e))
            cli_errorf("%s", e.msg);
        cli_errorf("%d video%s unreadable (listed in %s)%s", d->nskipped,
                   d->nskipped == 1 ? "" : "s", mp,
                   a->allow_missing ? "; --allow-missing: training without them"
                                    : "; fix them or pass --allow-missing");
        if (!a->allow_missing) {
            sola_dataset_free(d);
            return EXIT_RUNTIME;
        }
    }
    if (d->C != m->C) {
        cli_errorf("%s: features have C=%d but %s has C=%d%s", a->dir, d->C,
                   from ? from : a->init ? a->init : "the new model", m->C,
                   sola_dataset_could_be_ct(d, m->C)
                       ? "; every file has that many rows: if they are [C, T] (channels "
                         "first), add --layout ct"
                       : "");
        sola_dataset_free(d);
        return EXIT_RUNTIME;
    }
    if (!a->allow_nonfinite) { /* every value, once, before any step */
        cli_progress sp;
        cli_progress_init(&sp);
        int src = sola_dataset_scan_values(d, on_scan, &sp, &e);
        cli_progress_end(&sp);
        if (src) {
            cli_errorf("%s; training refuses NaN and infinities (fix or remove the file, or "
                       "pass --allow-nonfinite to skip this check: a batch that meets such a "
                       "value still stops the run)", e.msg);
            sola_dataset_free(d);
            return EXIT_RUNTIME;
        }
    }
    *dp = d;
    return -1;
}

/* The plan as the trainer will run it (a resumed run keeps its checkpoint's geometry,
 * objective, lr and schedule), on stderr; sets the progress bar's step counts. */
static void announce(const train_args *a, const sola_model *m, const sola_dataset *d, ui *u)
{
    const sola_trainer_opts *o = &a->o;
    int ep0 = o->resume ? sola_trainer_state_epoch(m) : 0;
    int W = o->cfg.W, B = o->batch, used = 0;
    long v;
    if (ep0 > 0 && !sola_parse_long(sola_model_meta(m, "train.window"), 1, 1 << 20, &v))
        W = (int)v;
    if (ep0 > 0 && !sola_parse_long(sola_model_meta(m, "train.batch"), 1, 1 << 24, &v))
        B = (int)v;
    for (int i = 0; i < d->n; i++)
        used += d->items[i].T > W;
    long spe = used ? (used + B - 1) / B : 0;
    u->done0 = (long)ep0 * spe;
    u->total = (long)(o->epochs > ep0 ? o->epochs - ep0 : 0) * spe;
    const char *obj = ep0 > 0 && sola_model_meta(m, "train.objective")
                          ? sola_model_meta(m, "train.objective") : o->objective;
    float lr = 0;
    int sched = 0;
    sola_trainer_objective_defaults(obj, &lr, &sched, NULL);
    lr = o->lr > 0 ? o->lr : lr;
    sched = o->schedule ? o->schedule : sched;
    if (ep0 > 0) { /* the state's, as the trainer will use them */
        const char *ms = sola_model_meta(m, "train.lr");
        lr = ms ? strtof(ms, NULL) : lr;
        ms = sola_model_meta(m, "train.schedule");
        sched = sola_schedule_parse(ms) > 0 ? sola_schedule_parse(ms) : SOLA_SCHED_CONSTANT;
    }
    fprintf(stderr, "training on %s: %d videos (%d shorter than W=%d skipped), C=%d, H=%d, "
                    "%d epochs of %ld steps (%ld steps), batch %d, objective %s, lr %g %s\n",
            a->dir, used, d->n - used, W, d->C, m->H, o->epochs, spe, (long)o->epochs * spe, B,
            obj, (double)lr, sola_schedule_name(sched));
}

/* Trains m on d with progress and Ctrl-C; d is freed. -1 with *r filled on success,
 * else EXIT_RUNTIME (printed; *r freed). */
static int run(train_args *a, sola_model *m, sola_dataset *d, const char *ckpt,
               sola_train_result *r)
{
    sola_trainer_opts *o = &a->o;
    cli_set_threads((int)a->threads);
    o->threads = (int)a->threads;
    o->checkpoint = ckpt;
    ui u = {0};
    cli_progress_init(&u.bar);
    u.ratio = o->collapse_ratio;
    u.share = o->collapse_share;
    announce(a, m, d, &u);
    o->dataset_name = a->dir; /* the path as typed says more than its last component */
    o->progress = on_progress;
    o->ud = &u;
    o->cancel = &stop_flag;
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sola_err e = {0};
    int rc = sola_train(m, d, o, r, &e);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    cli_progress_end(&u.bar);
    sola_dataset_free(d);
    if (rc == SOLA_ECANCEL)
        cli_errorf("interrupted: %s; run the same command with --resume to continue", e.msg);
    else if (rc == SOLA_ECOLLAPSE)
        cli_errorf("%s. %s was not written. Resuming would collapse again at the same "
                   "settings: start from that state with a lower learning rate, e.g. "
                   "sola train -m %s %s -o %s --lr %g", e.msg, a->out, ckpt, a->dir, a->out,
                   (double)r->lr / 3);
    else if (rc)
        cli_errorf("%s", e.msg);
    else if (sola_model_save(m, a->out, 1, &e)) {
        cli_errorf("%s", e.msg);
        rc = e.code ? e.code : SOLA_EIO;
    }
    if (rc) {
        sola_train_result_free(r);
        return EXIT_RUNTIME;
    }
    if (file_exists(ckpt))
        remove(ckpt); /* OUT holds the same state now */
    return -1;
}

/* ---- report --------------------------------------------------------------------- */

static void report(const train_args *a, const sola_train_result *r, int unreadable)
{
    printf("trained %d epochs on %d videos (%d shorter than the window, %d unreadable: "
           "skipped), %ld steps; final loss %.6f -> %s\n",
           r->epochs_done, r->videos, r->skipped, unreadable, r->steps,
           r->epochs_done ? r->loss[r->epochs_done - 1] : 0.0, a->out);
    if (r->monitored)
        printf("collapse guard: norm ratio %.3f, constant share %.0f%% at the end%s\n",
               r->norm_ratio, 100 * r->const_share,
               r->collapse_epoch ? "; it fired (see the warning above)" : "; it stayed quiet");
}

int cmd_train(int argc, char **argv)
{
    train_args a;
    args_default(&a);
    int rc = train_parse(argc, argv, &a);
    if (rc < 0)
        rc = train_validate(&a);
    if (rc >= 0)
        return rc;
    char *ckpt = a.ckpt_arg ? strdup(a.ckpt_arg) : default_ckpt(a.out);
    if (!ckpt) {
        cli_errorf("out of memory");
        return EXIT_RUNTIME;
    }
    sola_model *m = NULL;
    sola_dataset *d = NULL;
    const char *from = NULL;
    sola_train_result r;
    if ((rc = start_model(&a, ckpt, &m, &from)) < 0 &&
        (rc = open_data(&a, m, from, &d)) < 0) {
        int unreadable = d->nskipped;
        if ((rc = run(&a, m, d, ckpt, &r)) < 0) {
            report(&a, &r, unreadable);
            sola_train_result_free(&r);
            rc = EXIT_OK;
        }
    }
    sola_model_free(m);
    free(ckpt);
    return rc;
}
