/* trainer.c -- epochs, batches, checkpoints and resume for the `sola` objective
 * (see trainer.h). */
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adamw.h"
#include "gemm.h"
#include "rng.h"

void sola_trainer_default(sola_trainer_opts *o)
{
    memset(o, 0, sizeof *o);
    sola_train_cfg_default(&o->cfg);
    o->lr = 1e-4f;
    o->batch = 256;
    o->epochs = 150;
    o->objective = "sola";
    sola_cycle_cfg_default(&o->cycle);
    o->sola_weight = 1.0f;
    o->cycle_weight = 1.0f;
}

enum { OBJ_SOLA = 1, OBJ_CYCLE = 2 }; /* bits: which losses an objective sums */

static int objective_bits(const char *name)
{
    if (!name || !strcmp(name, "sola"))
        return OBJ_SOLA;
    if (!strcmp(name, "cycle"))
        return OBJ_CYCLE;
    if (!strcmp(name, "sola+cycle"))
        return OBJ_SOLA | OBJ_CYCLE;
    return 0;
}

static const char *objective_name(int bits)
{
    return bits == OBJ_CYCLE ? "cycle" : bits == (OBJ_SOLA | OBJ_CYCLE) ? "sola+cycle" : "sola";
}

void sola_train_result_free(sola_train_result *r)
{
    if (r) {
        free(r->loss);
        r->loss = NULL;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
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

/* The shortest %g form of f that reads back as the same float ("0.0001", not
 * "9.99999975e-05"), so metadata stays readable and exact. */
static int meta_float(sola_model *m, const char *key, float f)
{
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f)
            break;
    }
    return sola_model_set_meta(m, key, buf);
}

typedef struct hyper {
    sola_train_cfg cfg;
    float lr;
    int batch;
    uint64_t seed;
    int obj;         /* OBJ_* bits */
    float ws, wc;    /* sola+cycle weights */
    sola_cycle_cfg cycle;
} hyper;

static int put_hyper(sola_model *m, const hyper *h, sola_err *e)
{
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)h->seed);
    if (meta_fmt(m, "train.batch", "%.0f", h->batch) || meta_float(m, "train.lr", h->lr) ||
        sola_model_set_meta(m, "train.seed", seed) ||
        meta_fmt(m, "train.window", "%.0f", h->cfg.W) ||
        meta_fmt(m, "train.positions", "%.0f", h->cfg.N) ||
        meta_fmt(m, "train.start", "%.0f", h->cfg.start) ||
        meta_fmt(m, "train.step", "%.0f", h->cfg.step) || meta_float(m, "train.K", h->cfg.K) ||
        sola_model_set_meta(m, "train.objective", objective_name(h->obj)) ||
        meta_float(m, "train.sola_weight", h->ws) || meta_float(m, "train.cycle_weight", h->wc))
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
static void get_hyper(const sola_model *m, hyper *h)
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
    if ((s = sola_model_meta(m, "train.objective")) && objective_bits(s))
        h->obj = objective_bits(s);
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
static int put_state(sola_model *m, const sola_adamw *opt, int epoch, long step,
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
static int get_state(const sola_model *m, sola_adamw *opt, int *epoch, long *step,
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

static int put_provenance(sola_model *m, const sola_dataset *d, const sola_trainer_opts *o,
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

/* ---- the plan of one epoch -------------------------------------------------------------- */

/* order[k]: dataset index of the k-th window of the epoch; start[k]: its first snippet. */
static void plan_epoch(const sola_dataset *d, const int *usable, int nu, int W, uint64_t seed,
                       int epoch, int *order, int64_t *start)
{
    sola_rng r;
    sola_rng_seed(&r, seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(epoch + 1)));
    memcpy(order, usable, (size_t)nu * sizeof *order);
    for (int i = nu - 1; i > 0; i--) {
        int j = (int)sola_rng_below(&r, (uint64_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int k = 0; k < nu; k++)
        start[k] = (int64_t)sola_rng_below(&r, (uint64_t)(d->items[order[k]].T - W + 1));
}

/* ---- the loop ------------------------------------------------------------------------- */

static int checkpoint(sola_model *m, const sola_trainer_opts *o, const sola_dataset *d,
                      const hyper *h, const sola_cycle *cy, const sola_adamw *opt, int epoch,
                      long step, double loss_sum, const double *hist, int nhist, sola_err *e)
{
    int rc = put_state(m, opt, epoch, step, loss_sum, hist, nhist, e);
    if (!rc && cy)
        rc = sola_cycle_store(cy, m, e);
    if (!rc)
        rc = put_provenance(m, d, o, objective_name(h->obj), epoch, e);
    if (!rc && o->checkpoint)
        rc = sola_model_save(m, o->checkpoint, 1, e);
    return rc;
}

int sola_train(sola_model *m, const sola_dataset *d, const sola_trainer_opts *o,
               sola_train_result *r, sola_err *e)
{
    sola_train_result dummy;
    if (!r)
        r = &dummy;
    memset(r, 0, sizeof *r);
    hyper h = {o->cfg, o->lr, o->batch, o->seed, objective_bits(o->objective), o->sola_weight,
               o->cycle_weight, o->cycle};
    if (!h.obj)
        return sola_errf(e, SOLA_EINVAL, "trainer: unknown objective '%s' (sola, cycle, "
                         "sola+cycle)", o->objective);
    if (o->resume && sola_model_extra(m, "trainer.epoch"))
        get_hyper(m, &h);
    if (h.obj != (OBJ_SOLA | OBJ_CYCLE))
        h.ws = h.wc = 1.0f; /* the weights only mix the two */
    int rc = sola_train_cfg_check(&h.cfg, e);
    if (rc)
        return rc;
    if ((h.obj & OBJ_CYCLE) && (rc = sola_cycle_cfg_check(&h.cycle, e)))
        return rc;
    if (!(h.ws >= 0) || !(h.wc >= 0) || !isfinite(h.ws) || !isfinite(h.wc))
        return sola_errf(e, SOLA_EINVAL, "trainer: loss weights must be finite and >= 0 (sola "
                         "%g, cycle %g)", (double)h.ws, (double)h.wc);
    if (h.batch < 1 || o->epochs < 0 || !(h.lr > 0) || !isfinite(h.lr) ||
        o->checkpoint_every < 0)
        return sola_errf(e, SOLA_EINVAL,
                         "trainer: need batch >= 1 (got %d), epochs >= 0 (%d), lr > 0 (%g), "
                         "checkpoint interval >= 0 (%d)",
                         h.batch, o->epochs, (double)h.lr, o->checkpoint_every);
    if (m->C != d->C)
        return sola_errf(e, SOLA_ESHAPE, "%s: features have C=%d but the model has C=%d",
                         d->dir, d->C, m->C);
    if ((h.obj & OBJ_SOLA) && m->P == 0 &&
        (rc = sola_model_add_head(m, h.cfg.P, h.seed ^ 0x68656164ull, e)))
        return rc;
    if (o->threads > 0)
        sola_gemm_set_threads(o->threads);

    int W = h.cfg.W, nu = 0;
    int *usable = malloc((size_t)d->n * sizeof *usable + 1);
    int *order = malloc((size_t)d->n * sizeof *order + 1);
    int64_t *start = malloc((size_t)d->n * sizeof *start + 1);
    int hist_cap = o->epochs > 0 ? o->epochs : 1;
    double *hist = calloc((size_t)hist_cap, sizeof *hist);
    float *grads = malloc(m->nparams * sizeof *grads);
    float *grads2 = NULL; /* sola+cycle: the cycle part */
    int *vids = malloc((size_t)d->n * sizeof *vids + 1);
    float *win = NULL;
    sola_adamw opt = {0};
    sola_trainctx *ctx = NULL;
    sola_cycle *cy = NULL;
    sola_layout lay;
    sola_model_layout(m->C, m->H, m->k1, m->k2, m->P, &lay);
    /* `cycle` alone leaves a dissimilarity head the model may carry alone */
    size_t nopt = h.obj & OBJ_SOLA ? m->nparams : lay.module_total;
    int ep0 = 0, nhist = 0, found = 0;
    long st0 = 0;
    double loss_sum = 0;
    if (h.obj == (OBJ_SOLA | OBJ_CYCLE) && !(grads2 = malloc(m->nparams * sizeof *grads2))) {
        free(grads);
        grads = NULL;
    }
    if (!usable || !order || !start || !hist || !grads || !vids) {
        rc = sola_errf(e, SOLA_ENOMEM, "trainer: out of memory");
        goto out;
    }
    for (int i = 0; i < d->n; i++)
        if (d->items[i].T > W)
            usable[nu++] = i;
    r->videos = nu;
    r->skipped = d->n - nu;
    r->seed = h.seed;
    if (nu == 0) {
        rc = sola_errf(e, SOLA_EINVAL,
                       "%s: no video is longer than the window (W=%d snippets); all %d were "
                       "skipped",
                       d->dir, W, d->n);
        goto out;
    }
    int B = h.batch < nu ? h.batch : nu;
    size_t wsz, bsz;
    if (sola_mul_size((size_t)W, (size_t)d->C, &wsz) || sola_mul_size(wsz, (size_t)B, &bsz) ||
        !(win = malloc(bsz * sizeof *win))) {
        rc = sola_errf(e, SOLA_ENOMEM, "trainer: out of memory for a batch of %d windows", B);
        goto out;
    }
    if ((rc = sola_adamw_init(&opt, nopt, h.lr, e)))
        goto out;
    if (o->resume && (rc = get_state(m, &opt, &ep0, &st0, &loss_sum, hist, hist_cap, &nhist,
                                     &found, e)))
        goto out;
    long spe = (nu + B - 1) / B; /* steps per epoch */
    if (st0 >= spe) {
        /* The dataset changed since the checkpoint (fewer batches per epoch): redo
         * that epoch from its start rather than refuse to resume. */
        st0 = 0;
        loss_sum = 0;
    }
    r->resumed_epoch = ep0;
    r->resumed_step = st0;
    if ((h.obj & OBJ_SOLA) && !(ctx = sola_trainctx_new(m, &h.cfg, B, e))) {
        rc = e && e->code ? e->code : SOLA_ENOMEM;
        goto out;
    }
    if (h.obj & OBJ_CYCLE) {
        int cfound = 0;
        if (!(cy = sola_cycle_new(m, &h.cfg, &h.cycle, B, h.lr, h.seed, e))) {
            rc = e && e->code ? e->code : SOLA_ENOMEM;
            goto out;
        }
        if (found && (rc = sola_cycle_restore(cy, m, &cfound, e)))
            goto out;
        if (found && !cfound) {
            rc = sola_errf(e, SOLA_EFORMAT, "training state has no cycle.* tensors: it was "
                           "not made by the %s objective", objective_name(h.obj));
            goto out;
        }
    }
    if ((rc = put_hyper(m, &h, e)))
        goto out;

    double t0 = now_s();
    long done_steps = 0, total_steps = (long)(o->epochs > ep0 ? o->epochs - ep0 : 0) * spe - st0;
    long windows = 0;
    sola_train_progress pr = {0};
    pr.epochs = o->epochs;
    pr.steps_per_epoch = spe;
    pr.videos = nu;
    pr.skipped = d->n - nu;
    pr.history = hist;
    int ep = ep0;
    for (; ep < o->epochs; ep++) {
        plan_epoch(d, usable, nu, W, h.seed, ep, order, start);
        long s = ep == ep0 ? st0 : 0;
        if (s == 0)
            loss_sum = 0;
        for (; s < spe; s++) {
            if (o->cancel && atomic_load(o->cancel)) {
                rc = checkpoint(m, o, d, &h, cy, &opt, ep, s, loss_sum, hist, nhist, e);
                if (!rc)
                    rc = sola_errf(e, SOLA_ECANCEL, "training cancelled at epoch %d, step %ld%s%s",
                                   ep + 1, s, o->checkpoint ? "; checkpoint written to " : "",
                                   o->checkpoint ? o->checkpoint : "");
                goto out;
            }
            int nb = (int)(nu - s * B < B ? nu - s * B : B);
            for (int k = 0; k < nb; k++) {
                long idx = s * B + k;
                if ((rc = sola_dataset_window(d, order[idx], start[idx], W, win + k * wsz, e)))
                    goto out;
                vids[k] = order[idx];
            }
            float loss = 0, lsola = 0, lcyc = 0;
            if (ctx && (rc = sola_loss_grad(ctx, m, win, nb, &lsola, grads, e)))
                goto out;
            if (cy) {
                /* the batch's draws (positions, soft-NN subset) from (seed, epoch, step) */
                uint64_t bs = h.seed ^ (0xd1b54a32d192ed03ull * ((uint64_t)ep * 1000003u + (uint64_t)s + 1));
                if ((rc = sola_cycle_loss_grad(cy, m, win, vids, nb, bs, h.wc, &lcyc, NULL, NULL,
                                               grads2 ? grads2 : grads, e)))
                    goto out;
            }
            if (grads2) {
                for (size_t i = 0; i < lay.module_total; i++)
                    grads[i] = h.ws * grads[i] + grads2[i];
                for (size_t i = lay.module_total; i < m->nparams; i++)
                    grads[i] *= h.ws;
            }
            loss = (ctx ? h.ws * lsola : 0.0f) + (cy ? h.wc * lcyc : 0.0f);
            if (!isfinite(loss)) {
                rc = sola_errf(e, SOLA_EINVAL,
                               "training diverged: loss is %g at epoch %d, step %ld; lower the "
                               "learning rate (now %g)",
                               (double)loss, ep + 1, s + 1, (double)h.lr);
                goto out;
            }
            sola_adamw_step(&opt, m->params, grads);
            if (cy)
                sola_cycle_step(cy, m);
            loss_sum += (double)loss * nb;
            windows += nb;
            done_steps++;
            double el = now_s() - t0;
            pr.epoch = ep + 1;
            pr.step = s + 1;
            /* Every batch but the last of an epoch is full, so s*B + nb windows so far. */
            pr.loss = loss_sum / (double)(s * B + nb);
            pr.windows_per_s = el > 0 ? windows / el : 0;
            pr.eta_s = done_steps > 0 ? el / done_steps * (double)(total_steps - done_steps) : 0;
            pr.epoch_done = s + 1 == spe;
            pr.checkpointed = 0;
            if (pr.epoch_done) {
                /* Rounded to float: the form a checkpoint stores, so a resumed run
                 * reports the same history as an uninterrupted one. */
                hist[nhist++] = (float)(loss_sum / nu);
                pr.nhistory = nhist;
                if (o->checkpoint && o->checkpoint_every > 0 && (ep + 1) % o->checkpoint_every == 0 &&
                    ep + 1 < o->epochs) {
                    if ((rc = checkpoint(m, o, d, &h, cy, &opt, ep + 1, 0, 0, hist, nhist, e)))
                        goto out;
                    pr.checkpointed = 1;
                }
            }
            if (o->progress)
                o->progress(&pr, o->ud);
        }
    }
    rc = put_state(m, &opt, ep, 0, 0, hist, nhist, e);
    if (!rc && cy)
        rc = sola_cycle_store(cy, m, e);
    if (!rc)
        rc = put_provenance(m, d, o, objective_name(h.obj), ep, e);
    if (!rc)
        rc = sola_model_pack(m, e);
out:
    r->epochs_done = nhist;
    r->steps = opt.t;
    if (nhist > 0 && (r->loss = malloc((size_t)nhist * sizeof *r->loss)))
        memcpy(r->loss, hist, (size_t)nhist * sizeof *hist);
    if (r == &dummy)
        free(r->loss);
    sola_trainctx_free(ctx);
    sola_cycle_free(cy);
    sola_adamw_free(&opt);
    free(usable), free(order), free(start), free(hist), free(grads), free(win);
    free(grads2), free(vids);
    return rc;
}
