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

/* ---- the loop ------------------------------------------------------------------------- */

/* The whole training state into m (optimizer, position, cycle state, provenance). */
static int store_state(sola_model *m, const sola_trainer_opts *o, const sola_dataset *d,
                       const sola__hyper *h, const sola_cycle *cy, const sola_adamw *opt, int epoch,
                       long step, double loss_sum, const double *hist, int nhist, sola_err *e)
{
    int rc = sola__put_state(m, opt, epoch, step, loss_sum, hist, nhist, e);
    if (!rc && cy)
        rc = sola_cycle_store(cy, m, e);
    if (!rc)
        rc = sola__put_provenance(m, d, o, sola__objective_name(h->obj), epoch, e);
    return rc;
}

static int checkpoint(sola_model *m, const sola_trainer_opts *o, const sola_dataset *d,
                      const sola__hyper *h, const sola_cycle *cy, const sola_adamw *opt, int epoch,
                      long step, double loss_sum, const double *hist, int nhist, sola_err *e)
{
    int rc = store_state(m, o, d, h, cy, opt, epoch, step, loss_sum, hist, nhist, e);
    if (!rc && o->checkpoint)
        rc = sola_model_save(m, o->checkpoint, 1, e);
    return rc;
}

/* A snapshot of the whole state (the last one the collapse guard passed), replacing
 * *good. */
static int snapshot(sola_model **good, sola_model *m, const sola_trainer_opts *o,
                    const sola_dataset *d, const sola__hyper *h, const sola_cycle *cy,
                    const sola_adamw *opt, int epoch, long step, double loss_sum,
                    const double *hist, int nhist, sola_err *e)
{
    int rc = store_state(m, o, d, h, cy, opt, epoch, step, loss_sum, hist, nhist, e);
    if (rc)
        return rc;
    sola_model *c = sola_model_clone(m, e);
    if (!c)
        return e && e->code ? e->code : SOLA_ENOMEM;
    sola_model_free(*good);
    *good = c;
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

int sola_train(sola_model *m, const sola_dataset *d, const sola_trainer_opts *o,
               sola_train_result *r, sola_err *e)
{
    sola_train_result dummy;
    if (!r)
        r = &dummy;
    memset(r, 0, sizeof *r);
    sola__hyper h;
    int rc = resolve_run(m, d, o, &h, e);
    if (rc)
        return rc;

    int W = h.cfg.W, nu = 0;
    int *usable = malloc((size_t)d->n * sizeof *usable + 1);
    int *order = malloc((size_t)d->n * sizeof *order + 1);
    int64_t *start = malloc((size_t)d->n * sizeof *start + 1);
    int hist_cap = o->epochs > 0 ? o->epochs : 1;
    double *hist = calloc((size_t)hist_cap, sizeof *hist);
    float *grads = malloc(m->nparams * sizeof *grads);
    float *grads2 = NULL; /* sola+cycle: the cycle part */
    int *vids = malloc((size_t)d->n * sizeof *vids + 1);
    float *win = NULL, *monx = NULL;
    sola_adamw opt = {0};
    sola_trainctx *ctx = NULL, *mon = NULL;
    sola_cycle *cy = NULL;
    sola_model *good = NULL; /* stop_on_collapse: the last state the guard passed */
    int good_epoch = 0;
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
    r->lr = h.lr;
    r->schedule = h.sched;
    if (nu == 0) {
        rc = sola_errf(e, SOLA_EINVAL,
                       "%s: no video is longer than the window (W=%d snippets); all %d were "
                       "skipped",
                       d->dir, W, d->n);
        goto out;
    }
    int B = h.batch < nu ? h.batch : nu, Bmon = B < 64 ? B : 64;
    size_t wsz, bsz;
    if (sola_mul_size((size_t)W, (size_t)d->C, &wsz) || sola_mul_size(wsz, (size_t)B, &bsz) ||
        !(win = malloc(bsz * sizeof *win)) ||
        !(monx = malloc((size_t)Bmon * h.cfg.N * (size_t)d->C * sizeof *monx))) {
        rc = sola_errf(e, SOLA_ENOMEM, "trainer: out of memory for a batch of %d windows", B);
        goto out;
    }
    if ((rc = sola_adamw_init(&opt, nopt, h.lr, e)))
        goto out;
    if (o->resume && (rc = sola__get_state(m, &opt, &ep0, &st0, &loss_sum, hist, hist_cap, &nhist,
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
    if (!(mon = sola_trainctx_new_module(m, &h.cfg, Bmon, e))) {
        rc = e && e->code ? e->code : SOLA_ENOMEM;
        goto out;
    }
    double chance_i = 0, chance_c = 0;
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
                           "not made by the %s objective", sola__objective_name(h.obj));
            goto out;
        }
        sola_cycle_chance(cy, &chance_i, &chance_c);
    }
    if ((rc = sola__put_hyper(m, &h, e)))
        goto out;
    if (o->stop_on_collapse && (rc = snapshot(&good, m, o, d, &h, cy, &opt, ep0, st0, loss_sum,
                                              hist, nhist, e)))
        goto out;
    good_epoch = ep0;

    double t0 = sola_now_s();
    long done_steps = 0, total_steps = (long)(o->epochs > ep0 ? o->epochs - ep0 : 0) * spe - st0;
    long windows = 0;
    double part_sum[3] = {0, 0, 0}; /* this epoch's sola, intra, cycle (since the start) */
    long part_n = 0;
    sola_train_progress pr = {0};
    pr.epochs = o->epochs;
    pr.steps_per_epoch = spe;
    pr.total_steps = (long)o->epochs * spe;
    pr.videos = nu;
    pr.skipped = d->n - nu;
    pr.history = hist;
    pr.chance_intra = chance_i;
    pr.chance_cycle = chance_c;
    pr.lambda = cy ? h.cycle.lambda : 0;
    int ep = ep0;
    for (; ep < o->epochs; ep++) {
        plan_epoch(d, usable, nu, W, h.seed, ep, order, start);
        long s = ep == ep0 ? st0 : 0;
        if (s == 0)
            loss_sum = 0;
        part_sum[0] = part_sum[1] = part_sum[2] = 0;
        part_n = 0;
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
            if ((rc = load_batch(d, order, start, s * B, nb, W, wsz, win, vids, e))) {
                rc = at_step(e, rc, ep + 1, s + 1);
                goto out;
            }
            double lr = lr_at(&h, (long)ep * spe + s, pr.total_steps);
            opt.lr = lr;
            float loss = 0, lsola = 0, lcyc = 0, lintra = 0, lback = 0;
            if (ctx && (rc = sola_loss_grad(ctx, m, win, nb, &lsola, grads, e))) {
                if (rc != SOLA_EFORMAT) /* a non-finite loss: say why below */
                    goto out;
                lsola = NAN, rc = 0;
            }
            if (cy) {
                sola_cycle_set_lr(cy, lr);
                /* the batch's draws (positions, soft-NN subset) from (seed, epoch, step) */
                uint64_t bs = h.seed ^ (0xd1b54a32d192ed03ull * ((uint64_t)ep * 1000003u + (uint64_t)s + 1));
                rc = sola_cycle_loss_grad(cy, m, win, vids, nb, bs, h.wc, &lcyc, &lintra, &lback,
                                          grads2 ? grads2 : grads, e);
                if (rc == SOLA_EFORMAT) /* a non-finite loss: say why below */
                    lcyc = NAN, rc = 0;
                if (rc)
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
                rc = name_nonfinite(d, win, vids, start + s * B, nb, W, e, ep + 1, s + 1);
                if (!rc)
                    rc = sola_errf(e, SOLA_EINVAL,
                                   "training diverged: loss is %g at epoch %d, step %ld (the "
                                   "batch's values are finite); lower the learning rate (now %g)",
                                   (double)loss, ep + 1, s + 1, lr);
                goto out;
            }
            sola_adamw_step(&opt, m->params, grads);
            if (cy)
                sola_cycle_step(cy, m);
            loss_sum += (double)loss * nb;
            part_sum[0] += (double)lsola * nb;
            part_sum[1] += (double)lintra * nb;
            part_sum[2] += (double)lback * nb;
            part_n += nb;
            windows += nb;
            done_steps++;
            double el = sola_now_s() - t0;
            pr.epoch = ep + 1;
            pr.step = s + 1;
            pr.total_step = (long)ep * spe + s + 1;
            pr.lr = lr;
            /* Every batch but the last of an epoch is full, so s*B + nb windows so far. */
            pr.loss = loss_sum / (double)(s * B + nb);
            pr.sola = ctx ? part_sum[0] / (double)part_n : 0;
            pr.intra = cy ? part_sum[1] / (double)part_n : 0;
            pr.cycle = cy ? part_sum[2] / (double)part_n : 0;
            pr.windows_per_s = el > 0 ? windows / el : 0;
            pr.eta_s = done_steps > 0 ? el / done_steps * (double)(total_steps - done_steps) : 0;
            pr.epoch_done = s + 1 == spe;
            pr.checkpointed = 0;
            pr.monitored = 0;
            if (pr.epoch_done) {
                /* Rounded to float: the form a checkpoint stores, so a resumed run
                 * reports the same history as an uninterrupted one. */
                hist[nhist++] = (float)(loss_sum / nu);
                pr.nhistory = nhist;
                sola_collapse_stats cs;
                int nm = nb < Bmon ? nb : Bmon;
                if ((rc = monitor(mon, m, &h.cfg, win, nm, d->C, monx, &cs, e)))
                    goto out;
                pr.monitored = r->monitored = 1;
                pr.norm_ratio = r->norm_ratio = cs.norm_ratio;
                pr.const_share = r->const_share = cs.const_share;
                pr.collapse = sola_collapse_fires(&cs, o->collapse_ratio, o->collapse_share);
                if (pr.collapse && !r->collapse_epoch)
                    r->collapse_epoch = ep + 1;
                if (pr.collapse && o->stop_on_collapse) {
                    if (o->progress)
                        o->progress(&pr, o->ud);
                    r->good_epoch = good_epoch;
                    if (o->checkpoint && (rc = sola_model_save(good, o->checkpoint, 1, e)))
                        goto out;
                    rc = sola_errf(e, SOLA_ECOLLAPSE,
                                   "the collapse guard stopped training at the end of epoch %d: "
                                   "the refinement is %.2f times the features' norm (threshold "
                                   "%g) and %.0f%% of it is one vector added to every snippet "
                                   "(threshold %.0f%%)%s%s (end of epoch %d)",
                                   ep + 1, cs.norm_ratio, o->collapse_ratio,
                                   100 * cs.const_share, 100 * o->collapse_share,
                                   o->checkpoint ? "; the last state it passed is in "
                                                 : "; the last state it passed was",
                                   o->checkpoint ? o->checkpoint : "", good_epoch);
                    goto out;
                }
                if (o->checkpoint && o->checkpoint_every > 0 && (ep + 1) % o->checkpoint_every == 0 &&
                    ep + 1 < o->epochs) {
                    if ((rc = checkpoint(m, o, d, &h, cy, &opt, ep + 1, 0, 0, hist, nhist, e)))
                        goto out;
                    pr.checkpointed = 1;
                }
                if (!pr.collapse && o->stop_on_collapse) {
                    if ((rc = snapshot(&good, m, o, d, &h, cy, &opt, ep + 1, 0, 0, hist, nhist, e)))
                        goto out;
                    good_epoch = ep + 1;
                }
            }
            if (o->progress)
                o->progress(&pr, o->ud);
        }
    }
    rc = store_state(m, o, d, &h, cy, &opt, ep, 0, 0, hist, nhist, e);
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
    sola_trainctx_free(mon);
    sola_cycle_free(cy);
    sola_model_free(good);
    sola_adamw_free(&opt);
    free(usable), free(order), free(start), free(hist), free(grads), free(win), free(monx);
    free(grads2), free(vids);
    return rc;
}
