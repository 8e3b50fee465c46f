/* trainer.c -- epochs, batches, checkpoints and resume for the `sola` objective
 * (see trainer.h). */
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adamw.h"
#include "clock.h"
#include "collapse.h"
#include "defaults.h"
#include "gemm.h"
#include "rng.h"
#include "trainer_int.h"

void sola_trainer_default(sola_trainer_opts *o)
{
    memset(o, 0, sizeof *o);
    sola_train_cfg_default(&o->cfg);
    o->lr = 0; /* the objective's */
    o->schedule = SOLA_SCHED_DEFAULT;
    o->batch = SOLA_DEFAULT_BATCH;
    o->epochs = SOLA_DEFAULT_EPOCHS;
    o->objective = "sola";
    sola_cycle_cfg_default(&o->cycle);
    o->sola_weight = 1.0f;
    o->cycle_weight = 1.0f;
    o->collapse_ratio = SOLA_COLLAPSE_RATIO;
    o->collapse_share = SOLA_COLLAPSE_SHARE;
}

void sola_train_result_free(sola_train_result *r)
{
    if (r) {
        free(r->loss);
        r->loss = NULL;
    }
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

/* ---- a run ---------------------------------------------------------------------------- */

/* Everything one sola_train call works with: its inputs, the epoch plan, the buffers
 * of a batch, the optimizer and losses' state, where the run stands, and the progress
 * report it fills step by step. run_open makes it, run_step and run_epoch_end move it,
 * run_close frees it. */
typedef struct run {
    sola_model *m;
    const sola_dataset *d;
    const sola_trainer_opts *o;
    sola__hyper h;
    sola_layout lay;
    /* the plan: the usable videos (T > W), an epoch's order and window starts */
    int W, nu, B, Bmon;
    int *usable, *order;
    int64_t *start;
    size_t wsz;           /* floats of one window */
    long spe;             /* steps per epoch */
    /* a batch */
    float *win, *monx;    /* its windows; the collapse guard's kept positions */
    int *vids;            /* each window's video */
    float *grads, *grads2; /* sola+cycle: grads2 holds the cycle part */
    /* state */
    sola_adamw opt;
    sola_trainctx *ctx, *mon; /* sola loss (NULL for cycle alone); collapse guard */
    sola_cycle *cy;           /* cycle objectives, else NULL */
    sola_model *good;         /* stop_on_collapse: the last state the guard passed */
    int good_epoch;
    double *hist;             /* mean loss of each completed epoch */
    int hist_cap, nhist;
    int ep0, found;           /* resumed at epoch ep0, step st0; found: a stored state */
    long st0;
    double loss_sum;          /* this epoch's loss * windows so far */
    /* progress */
    double t0, part_sum[3];   /* this epoch's sola, intra, cycle (since the start) */
    long done_steps, total_steps, windows, part_n;
    sola_train_progress pr;
} run;

/* The whole training state into m (optimizer, position, cycle state, provenance). */
static int store_state(run *R, int epoch, long step, double loss_sum, sola_err *e)
{
    int rc = sola__put_state(R->m, &R->opt, epoch, step, loss_sum, R->hist, R->nhist, e);
    if (!rc && R->cy)
        rc = sola_cycle_store(R->cy, R->m, e);
    if (!rc)
        rc = sola__put_provenance(R->m, R->d, R->o, sola__objective_name(R->h.obj), epoch, e);
    return rc;
}

static int checkpoint(run *R, int epoch, long step, double loss_sum, sola_err *e)
{
    int rc = store_state(R, epoch, step, loss_sum, e);
    if (!rc && R->o->checkpoint)
        rc = sola_model_save(R->m, R->o->checkpoint, 1, e);
    return rc;
}

/* A snapshot of the whole state (the last one the collapse guard passed), replacing
 * R->good. */
static int snapshot(run *R, int epoch, long step, double loss_sum, sola_err *e)
{
    int rc = store_state(R, epoch, step, loss_sum, e);
    if (rc)
        return rc;
    sola_model *c = sola_model_clone(R->m, e);
    if (!c)
        return e && e->code ? e->code : SOLA_ENOMEM;
    sola_model_free(R->good);
    R->good = c;
    R->good_epoch = epoch;
    return 0;
}

/* "file: snippet t, channel c is nan" for the first non-finite value of the batch, or
 * 0 when every value is finite. */
static int name_nonfinite(const sola_dataset *d, const float *win, const int *vids,
                          const int64_t *starts, int nb, int W, sola_err *e, int epoch,
                          long step)
{
    size_t per = (size_t)W * (size_t)d->C, bad = sola_first_nonfinite(win, per * (size_t)nb);
    if (bad == per * (size_t)nb)
        return 0;
    size_t b = bad / per, t = bad % per / (size_t)d->C, c = bad % (size_t)d->C;
    char path[4096];
    sola_dataset_path(d, vids[b], path, sizeof path);
    return sola_errf(e, SOLA_EFORMAT,
                     "%s: snippet %lld, channel %zu is %s (epoch %d, step %ld): the data "
                     "holds non-finite values; fix the file, or leave it out",
                     path, (long long)(starts[b] + (int64_t)t), c,
                     isnan(win[bad]) ? "NaN" : "infinite", epoch, step);
}

/* A dataset error during the run, prefixed with where the run was. */
static int at_step(sola_err *e, int rc, int epoch, long step)
{
    if (e) {
        char msg[SOLA_ERRLEN];
        snprintf(msg, sizeof msg, "%s", e->msg);
        sola_errf(e, rc, "epoch %d, step %ld: %s", epoch, step, msg);
    }
    return rc;
}

/* The collapse guard's numbers on the first nb windows of the batch in win. */
static int monitor(sola_trainctx *mon, const sola_model *m, const sola_train_cfg *cfg,
                   const float *win, int nb, int C, float *xs, sola_collapse_stats *st,
                   sola_err *e)
{
    const float *ref;
    int rc = sola_module_forward(mon, m, win, nb, &ref, e);
    if (rc)
        return rc;
    for (int b = 0; b < nb; b++)
        for (int i = 0; i < cfg->N; i++)
            memcpy(xs + ((size_t)b * cfg->N + i) * C,
                   win + ((size_t)b * cfg->W + cfg->start + (size_t)cfg->step * i) * C,
                   (size_t)C * sizeof *xs);
    if (sola_collapse_measure(xs, ref, (size_t)nb * cfg->N, C, st))
        return sola_errf(e, SOLA_ENOMEM, "trainer: out of memory");
    return 0;
}

/* ---- the phases of a run -------------------------------------------------------------- */

/* The run's hyper-parameters into *h: the options, the objective's defaults where they
 * say 0, or the checkpoint's when resuming; then every check that needs no allocation
 * (options, shapes), the similarity head a `sola` objective needs, the GEMM threads. */
static int resolve_run(sola_model *m, const sola_dataset *d, const sola_trainer_opts *o,
                       sola__hyper *h, sola_err *e)
{
    *h = (sola__hyper){o->cfg, o->lr, o->schedule, o->batch, o->seed,
                       sola__objective_bits(o->objective), o->sola_weight, o->cycle_weight,
                       o->cycle};
    if (!h->obj)
        return sola_errf(e, SOLA_EINVAL, "trainer: unknown objective '%s' (sola, cycle, "
                         "sola+cycle)", o->objective);
    float dlr;
    int dsched;
    sola_trainer_objective_defaults(sola__objective_name(h->obj), &dlr, &dsched, NULL);
    if (h->lr == 0)
        h->lr = dlr;
    if (h->sched == SOLA_SCHED_DEFAULT)
        h->sched = dsched;
    if (o->resume && sola_model_extra(m, "trainer.epoch"))
        sola__get_hyper(m, h);
    if (h->obj != (OBJ_SOLA | OBJ_CYCLE))
        h->ws = h->wc = 1.0f; /* the weights only mix the two */
    int rc = sola_train_cfg_check(&h->cfg, e);
    if (rc)
        return rc;
    if ((h->obj & OBJ_CYCLE) && (rc = sola_cycle_cfg_check(&h->cycle, e)))
        return rc;
    if (!(h->ws >= 0) || !(h->wc >= 0) || !isfinite(h->ws) || !isfinite(h->wc))
        return sola_errf(e, SOLA_EINVAL, "trainer: loss weights must be finite and >= 0 (sola "
                         "%g, cycle %g)", (double)h->ws, (double)h->wc);
    if (h->batch < 1 || o->epochs < 0 || !(h->lr > 0) || !isfinite(h->lr) ||
        o->checkpoint_every < 0 || !sola_schedule_name(h->sched))
        return sola_errf(e, SOLA_EINVAL,
                         "trainer: need batch >= 1 (got %d), epochs >= 0 (%d), lr > 0 (%g), "
                         "checkpoint interval >= 0 (%d), a known schedule (%d)",
                         h->batch, o->epochs, (double)h->lr, o->checkpoint_every, h->sched);
    if (!(o->collapse_ratio > 0) || !(o->collapse_share >= 0 && o->collapse_share <= 1))
        return sola_errf(e, SOLA_EINVAL, "trainer: collapse thresholds: need a norm ratio > 0 "
                         "(got %g) and a constant share in [0, 1] (got %g)",
                         o->collapse_ratio, o->collapse_share);
    if (m->C != d->C)
        return sola_errf(e, SOLA_ESHAPE, "%s: features have C=%d but the model has C=%d%s",
                         d->dir, d->C, m->C,
                         sola_dataset_could_be_ct(d, m->C)
                             ? " (the files look channel-first, [C, T]: use the ct layout)"
                             : "");
    if ((h->obj & OBJ_SOLA) && m->P == 0 &&
        (rc = sola_model_add_head(m, h->cfg.P, h->seed ^ 0x68656164ull, e)))
        return rc;
    if (o->threads > 0)
        sola_gemm_set_threads(o->threads);
    return 0;
}

/* The batch of nb windows from the epoch's plan, from its window k0 on: their
 * snippets into win (one window every wsz floats), their videos into vids. */
static int load_batch(const sola_dataset *d, const int *order, const int64_t *start, long k0,
                      int nb, int W, size_t wsz, float *win, int *vids, sola_err *e)
{
    for (int k = 0; k < nb; k++) {
        int rc = sola_dataset_window(d, order[k0 + k], start[k0 + k], W, win + k * wsz, e);
        if (rc)
            return rc;
        vids[k] = order[k0 + k];
    }
    return 0;
}

/* The learning rate of step `step` (counted from the run's start) of `total`: the
 * schedule is a function of the step alone, so resuming keeps it. */
static double lr_at(const sola__hyper *h, long step, long total)
{
    if (h->sched == SOLA_SCHED_COSINE && total > 0)
        return h->lr * 0.5 * (1.0 + cos(3.14159265358979323846 * (double)step / (double)total));
    return h->lr;
}

/* Frees what run_open allocated (any part may be missing). */
static void run_close(run *R)
{
    sola_trainctx_free(R->ctx);
    sola_trainctx_free(R->mon);
    sola_cycle_free(R->cy);
    sola_model_free(R->good);
    sola_adamw_free(&R->opt);
    free(R->usable), free(R->order), free(R->start), free(R->hist), free(R->grads);
    free(R->grads2), free(R->vids), free(R->win), free(R->monx);
}

/* Everything before the first step: the usable videos, the buffers of a batch, the
 * optimizer, the losses' state and the position restored from a checkpoint, the
 * collapse guard's first snapshot and the progress report's constant part. */
static int run_open(run *R, sola_train_result *r, sola_err *e)
{
    sola_model *m = R->m;
    const sola_dataset *d = R->d;
    const sola_trainer_opts *o = R->o;
    const sola__hyper *h = &R->h;
    int W = R->W = h->cfg.W;
    R->hist_cap = o->epochs > 0 ? o->epochs : 1;
    R->usable = malloc((size_t)d->n * sizeof *R->usable + 1);
    R->order = malloc((size_t)d->n * sizeof *R->order + 1);
    R->start = malloc((size_t)d->n * sizeof *R->start + 1);
    R->hist = calloc((size_t)R->hist_cap, sizeof *R->hist);
    R->grads = malloc(m->nparams * sizeof *R->grads);
    R->vids = malloc((size_t)d->n * sizeof *R->vids + 1);
    int rc;
    if (h->obj == (OBJ_SOLA | OBJ_CYCLE) && !(R->grads2 = malloc(m->nparams * sizeof *R->grads2)))
        return sola_errf(e, SOLA_ENOMEM, "trainer: out of memory");
    if (!R->usable || !R->order || !R->start || !R->hist || !R->grads || !R->vids)
        return sola_errf(e, SOLA_ENOMEM, "trainer: out of memory");
    sola_model_layout(m->C, m->H, m->k1, m->k2, m->P, &R->lay);
    for (int i = 0; i < d->n; i++)
        if (d->items[i].T > W)
            R->usable[R->nu++] = i;
    int nu = R->nu;
    r->videos = nu;
    r->skipped = d->n - nu;
    r->seed = h->seed;
    r->lr = h->lr;
    r->schedule = h->sched;
    if (nu == 0)
        return sola_errf(e, SOLA_EINVAL,
                         "%s: no video is longer than the window (W=%d snippets); all %d were "
                         "skipped",
                         d->dir, W, d->n);
    int B = R->B = h->batch < nu ? h->batch : nu;
    R->Bmon = B < 64 ? B : 64;
    size_t bsz;
    if (sola_mul_size((size_t)W, (size_t)d->C, &R->wsz) ||
        sola_mul_size(R->wsz, (size_t)B, &bsz) || !(R->win = malloc(bsz * sizeof *R->win)) ||
        !(R->monx = malloc((size_t)R->Bmon * h->cfg.N * (size_t)d->C * sizeof *R->monx)))
        return sola_errf(e, SOLA_ENOMEM, "trainer: out of memory for a batch of %d windows", B);
    /* `cycle` alone leaves a dissimilarity head the model may carry alone */
    size_t nopt = h->obj & OBJ_SOLA ? m->nparams : R->lay.module_total;
    if ((rc = sola_adamw_init(&R->opt, nopt, h->lr, e)))
        return rc;
    if (o->resume && (rc = sola__get_state(m, &R->opt, &R->ep0, &R->st0, &R->loss_sum, R->hist,
                                           R->hist_cap, &R->nhist, &R->found, e)))
        return rc;
    R->spe = (nu + B - 1) / B;
    if (R->st0 >= R->spe) {
        /* The dataset changed since the checkpoint (fewer batches per epoch): redo
         * that epoch from its start rather than refuse to resume. */
        R->st0 = 0;
        R->loss_sum = 0;
    }
    r->resumed_epoch = R->ep0;
    r->resumed_step = R->st0;
    if ((h->obj & OBJ_SOLA) && !(R->ctx = sola_trainctx_new(m, &h->cfg, B, e)))
        return e && e->code ? e->code : SOLA_ENOMEM;
    if (!(R->mon = sola_trainctx_new_module(m, &h->cfg, R->Bmon, e)))
        return e && e->code ? e->code : SOLA_ENOMEM;
    double chance_i = 0, chance_c = 0;
    if (h->obj & OBJ_CYCLE) {
        int cfound = 0;
        if (!(R->cy = sola_cycle_new(m, &h->cfg, &h->cycle, B, h->lr, h->seed, e)))
            return e && e->code ? e->code : SOLA_ENOMEM;
        if (R->found && (rc = sola_cycle_restore(R->cy, m, &cfound, e)))
            return rc;
        if (R->found && !cfound)
            return sola_errf(e, SOLA_EFORMAT, "training state has no cycle.* tensors: it was "
                             "not made by the %s objective", sola__objective_name(h->obj));
        sola_cycle_chance(R->cy, &chance_i, &chance_c);
    }
    if ((rc = sola__put_hyper(m, h, e)))
        return rc;
    R->good_epoch = R->ep0;
    if (o->stop_on_collapse && (rc = snapshot(R, R->ep0, R->st0, R->loss_sum, e)))
        return rc;

    R->t0 = sola_now_s();
    R->total_steps = (long)(o->epochs > R->ep0 ? o->epochs - R->ep0 : 0) * R->spe - R->st0;
    sola_train_progress *pr = &R->pr;
    pr->epochs = o->epochs;
    pr->steps_per_epoch = R->spe;
    pr->total_steps = (long)o->epochs * R->spe;
    pr->videos = nu;
    pr->skipped = d->n - nu;
    pr->history = R->hist;
    pr->chance_intra = chance_i;
    pr->chance_cycle = chance_c;
    pr->lambda = R->cy ? h->cycle.lambda : 0;
    return 0;
}

/* Step s of epoch ep (0-based): the batch's windows, the losses and their gradients,
 * one AdamW step, and the progress report's running figures; *nb_out: the batch's
 * windows. A cancel request writes a checkpoint and ends the run here. */
static int run_step(run *R, int ep, long s, int *nb_out, sola_err *e)
{
    sola_model *m = R->m;
    const sola_trainer_opts *o = R->o;
    const sola__hyper *h = &R->h;
    int rc, B = R->B;
    if (o->cancel && atomic_load(o->cancel)) {
        rc = checkpoint(R, ep, s, R->loss_sum, e);
        if (!rc)
            rc = sola_errf(e, SOLA_ECANCEL, "training cancelled at epoch %d, step %ld%s%s",
                           ep + 1, s, o->checkpoint ? "; checkpoint written to " : "",
                           o->checkpoint ? o->checkpoint : "");
        return rc;
    }
    int nb = *nb_out = (int)(R->nu - s * B < B ? R->nu - s * B : B);
    if ((rc = load_batch(R->d, R->order, R->start, s * B, nb, R->W, R->wsz, R->win, R->vids, e)))
        return at_step(e, rc, ep + 1, s + 1);
    double lr = lr_at(h, (long)ep * R->spe + s, R->pr.total_steps);
    R->opt.lr = lr;
    float loss = 0, lsola = 0, lcyc = 0, lintra = 0, lback = 0;
    if (R->ctx && (rc = sola_loss_grad(R->ctx, m, R->win, nb, &lsola, R->grads, e))) {
        if (rc != SOLA_EFORMAT) /* a non-finite loss: say why below */
            return rc;
        lsola = NAN, rc = 0;
    }
    if (R->cy) {
        sola_cycle_set_lr(R->cy, lr);
        /* the batch's draws (positions, soft-NN subset) from (seed, epoch, step) */
        uint64_t bs =
            h->seed ^ (0xd1b54a32d192ed03ull * ((uint64_t)ep * 1000003u + (uint64_t)s + 1));
        rc = sola_cycle_loss_grad(R->cy, m, R->win, R->vids, nb, bs, h->wc, &lcyc, &lintra,
                                  &lback, R->grads2 ? R->grads2 : R->grads, e);
        if (rc == SOLA_EFORMAT) /* a non-finite loss: say why below */
            lcyc = NAN, rc = 0;
        if (rc)
            return rc;
    }
    if (R->grads2) {
        for (size_t i = 0; i < R->lay.module_total; i++)
            R->grads[i] = h->ws * R->grads[i] + R->grads2[i];
        for (size_t i = R->lay.module_total; i < m->nparams; i++)
            R->grads[i] *= h->ws;
    }
    loss = (R->ctx ? h->ws * lsola : 0.0f) + (R->cy ? h->wc * lcyc : 0.0f);
    if (!isfinite(loss)) {
        rc = name_nonfinite(R->d, R->win, R->vids, R->start + s * B, nb, R->W, e, ep + 1, s + 1);
        if (!rc)
            rc = sola_errf(e, SOLA_EINVAL,
                           "training diverged: loss is %g at epoch %d, step %ld (the "
                           "batch's values are finite); lower the learning rate (now %g)",
                           (double)loss, ep + 1, s + 1, lr);
        return rc;
    }
    sola_adamw_step(&R->opt, m->params, R->grads);
    if (R->cy)
        sola_cycle_step(R->cy, m);
    R->loss_sum += (double)loss * nb;
    R->part_sum[0] += (double)lsola * nb;
    R->part_sum[1] += (double)lintra * nb;
    R->part_sum[2] += (double)lback * nb;
    R->part_n += nb;
    R->windows += nb;
    R->done_steps++;
    double el = sola_now_s() - R->t0;
    sola_train_progress *pr = &R->pr;
    pr->epoch = ep + 1;
    pr->step = s + 1;
    pr->total_step = (long)ep * R->spe + s + 1;
    pr->lr = lr;
    /* Every batch but the last of an epoch is full, so s*B + nb windows so far. */
    pr->loss = R->loss_sum / (double)(s * B + nb);
    pr->sola = R->ctx ? R->part_sum[0] / (double)R->part_n : 0;
    pr->intra = R->cy ? R->part_sum[1] / (double)R->part_n : 0;
    pr->cycle = R->cy ? R->part_sum[2] / (double)R->part_n : 0;
    pr->windows_per_s = el > 0 ? R->windows / el : 0;
    pr->eta_s = R->done_steps > 0
                    ? el / R->done_steps * (double)(R->total_steps - R->done_steps) : 0;
    pr->epoch_done = s + 1 == R->spe;
    pr->checkpointed = 0;
    pr->monitored = 0;
    return 0;
}

/* After epoch ep's last step (nb windows in its batch): the epoch's mean loss into the
 * history, the collapse guard on that batch (stopping the run, with the last state it
 * passed, if it fires and the options say so), the periodic checkpoint and the
 * guard's snapshot. */
static int run_epoch_end(run *R, int ep, int nb, sola_train_result *r, sola_err *e)
{
    const sola_trainer_opts *o = R->o;
    sola_train_progress *pr = &R->pr;
    int rc;
    /* Rounded to float: the form a checkpoint stores, so a resumed run reports the same
     * history as an uninterrupted one. */
    R->hist[R->nhist++] = (float)(R->loss_sum / R->nu);
    pr->nhistory = R->nhist;
    sola_collapse_stats cs;
    int nm = nb < R->Bmon ? nb : R->Bmon;
    if ((rc = monitor(R->mon, R->m, &R->h.cfg, R->win, nm, R->d->C, R->monx, &cs, e)))
        return rc;
    pr->monitored = r->monitored = 1;
    pr->norm_ratio = r->norm_ratio = cs.norm_ratio;
    pr->const_share = r->const_share = cs.const_share;
    pr->collapse = sola_collapse_fires(&cs, o->collapse_ratio, o->collapse_share);
    if (pr->collapse && !r->collapse_epoch)
        r->collapse_epoch = ep + 1;
    if (pr->collapse && o->stop_on_collapse) {
        if (o->progress)
            o->progress(pr, o->ud);
        r->good_epoch = R->good_epoch;
        if (o->checkpoint && (rc = sola_model_save(R->good, o->checkpoint, 1, e)))
            return rc;
        return sola_errf(e, SOLA_ECOLLAPSE,
                         "the collapse guard stopped training at the end of epoch %d: the "
                         "refinement is %.2f times the features' norm (threshold %g) and "
                         "%.0f%% of it is one vector added to every snippet (threshold "
                         "%.0f%%)%s%s (end of epoch %d)",
                         ep + 1, cs.norm_ratio, o->collapse_ratio, 100 * cs.const_share,
                         100 * o->collapse_share,
                         o->checkpoint ? "; the last state it passed is in "
                                       : "; the last state it passed was",
                         o->checkpoint ? o->checkpoint : "", R->good_epoch);
    }
    if (o->checkpoint && o->checkpoint_every > 0 && (ep + 1) % o->checkpoint_every == 0 &&
        ep + 1 < o->epochs) {
        if ((rc = checkpoint(R, ep + 1, 0, 0, e)))
            return rc;
        pr->checkpointed = 1;
    }
    if (!pr->collapse && o->stop_on_collapse && (rc = snapshot(R, ep + 1, 0, 0, e)))
        return rc;
    return 0;
}

int sola_train(sola_model *m, const sola_dataset *d, const sola_trainer_opts *o,
               sola_train_result *r, sola_err *e)
{
    sola_train_result dummy;
    if (!r)
        r = &dummy;
    memset(r, 0, sizeof *r);
    run R = {.m = m, .d = d, .o = o};
    int rc = resolve_run(m, d, o, &R.h, e);
    if (rc)
        return rc;
    if ((rc = run_open(&R, r, e)))
        goto out;
    int ep = R.ep0;
    for (; ep < o->epochs; ep++) {
        plan_epoch(d, R.usable, R.nu, R.W, R.h.seed, ep, R.order, R.start);
        long s = ep == R.ep0 ? R.st0 : 0;
        if (s == 0)
            R.loss_sum = 0;
        R.part_sum[0] = R.part_sum[1] = R.part_sum[2] = 0;
        R.part_n = 0;
        for (; s < R.spe; s++) {
            int nb = 0;
            if ((rc = run_step(&R, ep, s, &nb, e)))
                goto out;
            if (R.pr.epoch_done && (rc = run_epoch_end(&R, ep, nb, r, e)))
                goto out;
            if (o->progress)
                o->progress(&R.pr, o->ud);
        }
    }
    rc = store_state(&R, ep, 0, 0, e);
    if (!rc)
        rc = sola_model_pack(m, e);
out:
    r->epochs_done = R.nhist;
    r->steps = R.opt.t;
    if (R.nhist > 0 && (r->loss = malloc((size_t)R.nhist * sizeof *r->loss)))
        memcpy(r->loss, R.hist, (size_t)R.nhist * sizeof *R.hist);
    if (r == &dummy)
        free(r->loss);
    run_close(&R);
    return rc;
}
