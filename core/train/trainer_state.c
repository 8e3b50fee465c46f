/* trainer_state.c -- the trainer's settings and state in a model file: objectives
 * and schedules by name, train.* metadata, the optimizer and the position in the run
 * (trainer.h lists the tensors), and the check that a resume keeps its settings. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trainer_int.h"


int sola__objective_bits(const char *name)
{
    if (!name || !strcmp(name, "sola"))
        return OBJ_SOLA;
    if (!strcmp(name, "cycle"))
        return OBJ_CYCLE;
    if (!strcmp(name, "sola+cycle"))
        return OBJ_SOLA | OBJ_CYCLE;
    return 0;
}

const char *sola__objective_name(int bits)
{
    return bits == OBJ_CYCLE ? "cycle" : bits == (OBJ_SOLA | OBJ_CYCLE) ? "sola+cycle" : "sola";
}

const char *sola_schedule_name(int sched)
{
    return sched == SOLA_SCHED_CONSTANT ? "constant" : sched == SOLA_SCHED_COSINE ? "cosine"
                                                                                  : NULL;
}

int sola_schedule_parse(const char *name)
{
    if (name && !strcmp(name, "constant"))
        return SOLA_SCHED_CONSTANT;
    if (name && !strcmp(name, "cosine"))
        return SOLA_SCHED_COSINE;
    return -1;
}

/* Measured on the realistic and simple benchmarks (docs/training.md): sola keeps the
 * authors' recipe; cycle (and sola+cycle) need a larger, decaying step to leave their
 * start in the steps a small dataset gives. */
int sola_trainer_objective_defaults(const char *objective, float *lr, int *schedule,
                                    sola_err *e)
{
    int bits = sola__objective_bits(objective);
    if (!bits)
        return sola_errf(e, SOLA_EINVAL, "unknown objective '%s' (sola, cycle, sola+cycle)",
                         objective);
    *lr = bits == OBJ_SOLA ? 1e-4f : 1e-3f;
    *schedule = bits == OBJ_SOLA ? SOLA_SCHED_CONSTANT : SOLA_SCHED_COSINE;
    return 0;
}


/* ---- state <-> model extras and metadata ---------------------------------------------- */

/* A 64-bit value as four floats of 16 bits each: exact, unlike one float. */
static void u64_to_f4(uint64_t v, float out[4])
{
    for (int i = 0; i < 4; i++)
        out[i] = (float)((v >> (16 * i)) & 0xffff);
}
static uint64_t f4_to_u64(const float in[4])
{
    uint64_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint64_t)((uint32_t)in[i] & 0xffff) << (16 * i);
    return v;
}

static int put1(sola_model *m, const char *name, float v, sola_err *e)
{
    int64_t shape[1] = {1};
    return sola_model_put_extra(m, name, 1, shape, &v, e);
}

static int meta_fmt(sola_model *m, const char *key, const char *fmt, double v)
{
    char buf[64];
    snprintf(buf, sizeof buf, fmt, v);
    return sola_model_set_meta(m, key, buf);
}


int sola__put_hyper(sola_model *m, const sola__hyper *h, sola_err *e)
{
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)h->seed);
    if (meta_fmt(m, "train.batch", "%.0f", h->batch) ||
        sola_model_set_meta_float(m, "train.lr", h->lr) ||
        sola_model_set_meta(m, "train.seed", seed) ||
        meta_fmt(m, "train.window", "%.0f", h->cfg.W) ||
        meta_fmt(m, "train.positions", "%.0f", h->cfg.N) ||
        meta_fmt(m, "train.start", "%.0f", h->cfg.start) ||
        meta_fmt(m, "train.step", "%.0f", h->cfg.step) ||
        sola_model_set_meta_float(m, "train.K", h->cfg.K) ||
        sola_model_set_meta(m, "train.objective", sola__objective_name(h->obj)) ||
        sola_model_set_meta(m, "train.schedule", sola_schedule_name(h->sched)) ||
        sola_model_set_meta_float(m, "train.sola_weight", h->ws) ||
        sola_model_set_meta_float(m, "train.cycle_weight", h->wc))
        return sola_errf(e, SOLA_ENOMEM, "trainer: out of memory for metadata");
    return 0;
}

static int meta_long(const sola_model *m, const char *key, long lo, long hi, long *out)
{
    const char *s = sola_model_meta(m, key);
    if (!s || !*s)
        return -1;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Reads train.* back; a missing or malformed key leaves that field as it was. */
void sola__get_hyper(const sola_model *m, sola__hyper *h)
{
    long v;
    if (!meta_long(m, "train.batch", 1, 1 << 24, &v))
        h->batch = (int)v;
    if (!meta_long(m, "train.window", 1, 1 << 20, &v))
        h->cfg.W = (int)v;
    if (!meta_long(m, "train.positions", 1, 1 << 20, &v))
        h->cfg.N = (int)v;
    if (!meta_long(m, "train.start", 0, 1 << 20, &v))
        h->cfg.start = (int)v;
    if (!meta_long(m, "train.step", 1, 1 << 20, &v))
        h->cfg.step = (int)v;
    const char *s;
    char *end;
    if ((s = sola_model_meta(m, "train.lr"))) {
        float f = strtof(s, &end);
        if (!*end && f > 0 && isfinite(f))
            h->lr = f;
    }
    if ((s = sola_model_meta(m, "train.K"))) {
        float f = strtof(s, &end);
        if (!*end && f >= 0 && isfinite(f))
            h->cfg.K = f;
    }
    if ((s = sola_model_meta(m, "train.seed")) && *s && *s != '-') {
        unsigned long long u = strtoull(s, &end, 10);
        if (!*end)
            h->seed = u;
    }
    if ((s = sola_model_meta(m, "train.objective")) && sola__objective_bits(s))
        h->obj = sola__objective_bits(s);
    /* states written before schedules existed were trained at a constant rate */
    s = sola_model_meta(m, "train.schedule");
    h->sched = s && sola_schedule_parse(s) > 0 ? sola_schedule_parse(s) : SOLA_SCHED_CONSTANT;
    float *w[2] = {&h->ws, &h->wc};
    const char *wk[2] = {"train.sola_weight", "train.cycle_weight"};
    for (int i = 0; i < 2; i++)
        if ((s = sola_model_meta(m, wk[i]))) {
            float f = strtof(s, &end);
            if (!*end && f >= 0 && isfinite(f))
                *w[i] = f;
        }
    sola_cycle_cfg_from_model(m, &h->cycle);
}

/* Stores the optimizer and the position in the run into m. */
int sola__put_state(sola_model *m, const sola_adamw *opt, int epoch, long step,
                     double loss_sum, const double *hist, int nhist, sola_err *e)
{
    if (opt->t >= (1L << 24) || step >= (1L << 24))
        return sola_errf(e, SOLA_ETOOBIG, "trainer: %ld steps exceed what a checkpoint records",
                         opt->t);
    int64_t n = (int64_t)opt->n, four = 4;
    float ls[4];
    uint64_t bits;
    memcpy(&bits, &loss_sum, sizeof bits);
    u64_to_f4(bits, ls);
    int rc;
    if ((rc = sola_model_put_extra(m, "optimizer.exp_avg", 1, &n, opt->m, e)) ||
        (rc = sola_model_put_extra(m, "optimizer.exp_avg_sq", 1, &n, opt->v, e)) ||
        (rc = put1(m, "optimizer.step", (float)opt->t, e)) ||
        (rc = put1(m, "trainer.epoch", (float)epoch, e)) ||
        (rc = put1(m, "trainer.step", (float)step, e)) ||
        (rc = sola_model_put_extra(m, "trainer.loss_sum", 1, &four, ls, e)))
        return rc;
    if (nhist > 0) {
        float *h = malloc((size_t)nhist * sizeof *h);
        if (!h)
            return sola_errf(e, SOLA_ENOMEM, "trainer: out of memory");
        for (int i = 0; i < nhist; i++)
            h[i] = (float)hist[i];
        int64_t hn = nhist;
        rc = sola_model_put_extra(m, "trainer.loss_history", 1, &hn, h, e);
        free(h);
    }
    return rc;
}

static const float *extra_n(const sola_model *m, const char *name, size_t n)
{
    const sola_tensor *t = sola_model_extra(m, name);
    if (!t)
        return NULL;
    size_t k = 1;
    for (int i = 0; i < t->ndim; i++)
        k *= (size_t)t->shape[i];
    return k == n ? t->data : NULL;
}

int sola_trainer_state_epoch(const sola_model *m)
{
    const float *ep = extra_n(m, "trainer.epoch", 1);
    return ep && *ep >= 0 && *ep < 1e8f ? (int)*ep : 0;
}

/* Restores the optimizer and the position from m. Returns 0 with *found = 0 when m has
 * no trainer state. */
int sola__get_state(const sola_model *m, sola_adamw *opt, int *epoch, long *step,
                     double *loss_sum, double *hist, int hist_cap, int *nhist, int *found,
                     sola_err *e)
{
    *found = 0;
    const float *ep = extra_n(m, "trainer.epoch", 1);
    if (!ep)
        return 0;
    const float *mm = extra_n(m, "optimizer.exp_avg", opt->n);
    const float *vv = extra_n(m, "optimizer.exp_avg_sq", opt->n);
    const float *t = extra_n(m, "optimizer.step", 1);
    const float *st = extra_n(m, "trainer.step", 1);
    const float *ls = extra_n(m, "trainer.loss_sum", 4);
    if (!mm || !vv || !t || !st || !ls || *ep < 0 || *t < 0 || *st < 0)
        return sola_errf(e, SOLA_EFORMAT,
                         "training state is incomplete or does not match the model (%zu "
                         "parameters): optimizer.exp_avg, optimizer.exp_avg_sq, optimizer.step, "
                         "trainer.step and trainer.loss_sum are needed with trainer.epoch",
                         opt->n);
    memcpy(opt->m, mm, opt->n * sizeof *mm);
    memcpy(opt->v, vv, opt->n * sizeof *vv);
    opt->t = (long)*t;
    *epoch = (int)*ep;
    *step = (long)*st;
    uint64_t bits = f4_to_u64(ls);
    memcpy(loss_sum, &bits, sizeof bits);
    *nhist = 0;
    const sola_tensor *h = sola_model_extra(m, "trainer.loss_history");
    if (h && h->ndim == 1)
        for (int64_t i = 0; i < h->shape[0] && i < hist_cap && i < *epoch; i++)
            hist[(*nhist)++] = h->data[i];
    *found = 1;
    return 0;
}

int sola__put_provenance(sola_model *m, const sola_dataset *d, const sola_trainer_opts *o,
                          const char *objective, int epochs_done, sola_err *e)
{
    const char *name = o->dataset_name;
    if (!name) {
        name = strrchr(d->dir, '/');
        name = name && name[1] ? name + 1 : d->dir;
    }
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (sola_model_set_meta(m, "objective", objective) ||
        sola_model_set_meta(m, "dataset", name) ||
        meta_fmt(m, "epochs", "%.0f", epochs_done) || sola_model_set_meta(m, "created", when))
        return sola_errf(e, SOLA_ENOMEM, "trainer: out of memory for metadata");
    return 0;
}

/* ---- resume keeps its settings ---------------------------------------------------- */

typedef struct setting {
    unsigned bit;
    const char *name;
    int cycle;                       /* 1: a setting of the cycle objective */
    double (*get)(const sola__hyper *h);
} setting;

#define GETTER(fn, expr)                                                                      \
    static double fn(const sola__hyper *h)                                                    \
    {                                                                                         \
        return (double)(expr);                                                                \
    }
GETTER(g_lr, h->lr)
GETTER(g_batch, h->batch)
GETTER(g_window, h->cfg.W)
GETTER(g_positions, h->cfg.N)
GETTER(g_start, h->cfg.start)
GETTER(g_step, h->cfg.step)
GETTER(g_k, h->cfg.K)
GETTER(g_tau, h->cycle.tau)
GETTER(g_lambda, h->cycle.lambda)
GETTER(g_momentum, h->cycle.momentum)
GETTER(g_queue, h->cycle.queue)
GETTER(g_subset, h->cycle.subset)
GETTER(g_chid, h->cycle.hidden)
GETTER(g_cdim, h->cycle.dim)
GETTER(g_ws, h->ws)
GETTER(g_wc, h->wc)

static const setting settings[] = {
    {SOLA_SET_LR, "lr", 0, g_lr},
    {SOLA_SET_BATCH, "batch", 0, g_batch},
    {SOLA_SET_WINDOW, "window", 0, g_window},
    {SOLA_SET_POSITIONS, "positions", 0, g_positions},
    {SOLA_SET_START, "start", 0, g_start},
    {SOLA_SET_STEP, "step", 0, g_step},
    {SOLA_SET_K, "sharpness", 0, g_k},
    {SOLA_SET_TAU, "temperature", 1, g_tau},
    {SOLA_SET_LAMBDA, "cycle-lambda", 1, g_lambda},
    {SOLA_SET_MOMENTUM, "momentum", 1, g_momentum},
    {SOLA_SET_QUEUE, "queue", 1, g_queue},
    {SOLA_SET_SUBSET, "cycle-subset", 1, g_subset},
    {SOLA_SET_CYCLE_HIDDEN, "cycle-hidden", 1, g_chid},
    {SOLA_SET_CYCLE_DIM, "cycle-dim", 1, g_cdim},
    {SOLA_SET_SOLA_WEIGHT, "sola-weight", 2, g_ws},
    {SOLA_SET_CYCLE_WEIGHT, "cycle-weight", 2, g_wc},
};

static const char advice[] =
    "a resumed run keeps the settings it started with (only epochs can change): drop the "
    "option to resume, or start a new run from these weights with -m and without --resume";

int sola_trainer_check_resume(const sola_model *m, const sola_trainer_opts *o,
                              unsigned given, sola_err *e)
{
    if (!sola_model_extra(m, "trainer.epoch"))
        return 0;
    sola__hyper want = {o->cfg, o->lr, o->schedule, o->batch, o->seed,
                        sola__objective_bits(o->objective), o->sola_weight, o->cycle_weight,
                        o->cycle};
    sola__hyper have = want;
    /* what the state says; a state too old to record a field agrees with anything */
    sola__get_hyper(m, &have);
    if (!sola_model_meta(m, "train.objective"))
        have.obj = sola_model_extra(m, "cycle.queue.ptr") ? OBJ_CYCLE : OBJ_SOLA;
    if ((given & SOLA_SET_OBJECTIVE) && want.obj != have.obj)
        return sola_errf(e, SOLA_EINVAL, "objective %s differs from %s in the training state; %s",
                         sola__objective_name(want.obj), sola__objective_name(have.obj), advice);
    if ((given & SOLA_SET_SCHEDULE) && want.sched != have.sched)
        return sola_errf(e, SOLA_EINVAL, "schedule %s differs from %s in the training state; %s",
                         sola_schedule_name(want.sched), sola_schedule_name(have.sched), advice);
    if ((given & SOLA_SET_SEED) && want.seed != have.seed)
        return sola_errf(e, SOLA_EINVAL, "seed %llu differs from %llu in the training state; %s",
                         (unsigned long long)want.seed, (unsigned long long)have.seed, advice);
    if ((given & SOLA_SET_HEAD) && m->P > 0 && o->cfg.P != m->P)
        return sola_errf(e, SOLA_EINVAL, "head %d differs from %d in the training state; %s",
                         o->cfg.P, m->P, advice);
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        const setting *st = &settings[i];
        if (!(given & st->bit))
            continue;
        if ((st->cycle == 1 && !(have.obj & OBJ_CYCLE)) ||
            (st->cycle == 2 && have.obj != (OBJ_SOLA | OBJ_CYCLE)))
            return sola_errf(e, SOLA_EINVAL, "%s is a setting of the %s objective, and the "
                             "training state is of objective %s; %s", st->name,
                             st->cycle == 1 ? "cycle" : "sola+cycle",
                             sola__objective_name(have.obj), advice);
        double a = st->get(&want), b = st->get(&have);
        if (a != b)
            return sola_errf(e, SOLA_EINVAL, "%s %g differs from %g in the training state; %s",
                             st->name, a, b, advice);
    }
    return 0;
}
