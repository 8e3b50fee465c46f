/* test_cycle.c -- the cycle objective (core/train/cycle.h): finite-difference checks of
 * every new backward (InfoNCE against a queue, the soft nearest neighbour, the whole
 * objective through heads and module, queues held fixed), the soft nearest neighbour
 * against a hand-computed case, queue wrap-around and momentum update, bad settings,
 * and training through the trainer: stable, deterministic, resumable bit for bit. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cycle.h"
#include "dataset.h"
#include "model.h"
#include "npy.h"
#include "rng.h"
#include "testutil.h"
#include "trainer.h"

static void fill(float *x, size_t n, sola_rng *r, double s)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(s * sola_rng_normal(r));
}

static void unit_rows(float *x, int R, int D)
{
    for (int r = 0; r < R; r++) {
        double s = 0;
        for (int d = 0; d < D; d++)
            s += (double)x[r * D + d] * x[r * D + d];
        for (int d = 0; d < D; d++)
            x[r * D + d] = (float)(x[r * D + d] / sqrt(s));
    }
}

/* |fd - an| <= atol + rtol |fd| for every entry, with the worst case in the message */
static void assert_close(const char *what, const double *fd, const float *an, int n, double atol,
                         double rtol)
{
    double worst = 0;
    int wi = 0;
    for (int i = 0; i < n; i++) {
        double err = fabs(fd[i] - an[i]) - (atol + rtol * fabs(fd[i]));
        if (err > worst)
            worst = err, wi = i;
    }
    ck_assert_msg(worst <= 0, "%s: gradient %d is %g analytically, %g by finite differences",
                  what, wi, (double)an[wi], fd[wi]);
}

enum { R = 3, K = 6, D = 4, S = 5 };

/* InfoNCE: queue entries of the query's video are left out, so the loss and the
 * gradient of q must match finite differences with those entries excluded. */
START_TEST(infonce_grad)
{
    sola_rng r;
    sola_rng_seed(&r, 1);
    float q[R * D], kp[R * D], queue[K * D], prob[R * K], p0[R], dq[R * D];
    float qvid[K] = {-1, 0, 2, -1, 0, 7};
    int vid[R] = {0, 1, 2};
    fill(q, R * D, &r, 1), fill(kp, R * D, &r, 1), fill(queue, K * D, &r, 1);
    unit_rows(kp, R, D), unit_rows(queue, K, D);
    const float tau = 0.5f;
    double l = sola_infonce_forward(prob, p0, q, kp, queue, qvid, vid, R, K, D, tau, 1.0 / R);
    ck_assert(isfinite(l) && l > 0);
    ck_assert_float_eq(prob[0 * K + 1], 0.0f); /* video 0 left out for query 0 */
    ck_assert_float_eq(prob[0 * K + 4], 0.0f);
    ck_assert_float_eq(prob[2 * K + 2], 0.0f);
    ck_assert_float_gt(prob[1 * K + 1], 0.0f); /* but kept for query 1 */
    sola_infonce_backward(dq, prob, p0, kp, queue, R, K, D, tau, 1.0 / R);
    double fd[R * D];
    const float h = 1e-3f;
    for (int i = 0; i < R * D; i++) {
        float keep = q[i];
        q[i] = keep + h;
        double lp = sola_infonce_forward(prob, p0, q, kp, queue, qvid, vid, R, K, D, tau, 1.0 / R);
        q[i] = keep - h;
        double lm = sola_infonce_forward(prob, p0, q, kp, queue, qvid, vid, R, K, D, tau, 1.0 / R);
        q[i] = keep;
        fd[i] = (lp - lm) / (2.0 * h);
    }
    assert_close("infonce dq", fd, dq, R * D, 2e-4, 1e-2);
}
END_TEST

/* Soft nearest neighbour: with loss = sum g . qh for a fixed g, dq from the backward
 * equals finite differences. */
START_TEST(softnn_grad)
{
    sola_rng r;
    sola_rng_seed(&r, 2);
    float q[R * D], u[S * D], qh[R * D], w[R * S], dw[R * S], vn[R], dv[R * D], dq[R * D];
    float g[R * D];
    float uvid[S] = {0, -1, 1, 3, 1};
    int vid[R] = {1, 0, 5};
    fill(q, R * D, &r, 1), fill(u, S * D, &r, 1), fill(g, R * D, &r, 1);
    unit_rows(u, S, D);
    const float tau = 0.3f;
    sola_softnn_forward(qh, w, vn, q, u, uvid, vid, R, S, D, tau);
    sola_softnn_backward(dq, dw, dv, g, qh, w, vn, u, R, S, D, tau);
    double fd[R * D];
    const float h = 1e-3f;
    for (int i = 0; i < R * D; i++) {
        double l[2];
        float keep = q[i];
        for (int s = 0; s < 2; s++) {
            q[i] = keep + (s ? -h : h);
            sola_softnn_forward(qh, w, vn, q, u, uvid, vid, R, S, D, tau);
            l[s] = 0;
            for (int j = 0; j < R * D; j++)
                l[s] += (double)g[j] * qh[j];
        }
        q[i] = keep;
        fd[i] = (l[0] - l[1]) / (2.0 * h);
    }
    assert_close("soft-NN dq", fd, dq, R * D, 2e-4, 1e-2);
}
END_TEST

/* q = (1, 0), tau = 1, candidates (1, 0), (0, 1) and (0, -1) of the query's own video:
 * w = (e, 1) / (e + 1), qh = (e, 1) / sqrt(e^2 + 1). A query whose video owns every
 * candidate gets qh = 0 and no gradient. */
START_TEST(softnn_hand)
{
    float q[2 * 2] = {1, 0, 0.3f, 0.7f}, u[3 * 2] = {1, 0, 0, 1, 0, -1};
    float uvid[3] = {-1, 4, 9}, qh[4], w[6], vn[2], dw[6], dv[4], dq[4];
    int vid[2] = {9, 4};
    sola_softnn_forward(qh, w, vn, q, u, uvid, vid, 1, 3, 2, 1.0f);
    const double E = exp(1.0), n = sqrt(E * E + 1);
    ck_assert_double_eq_tol(w[0], E / (E + 1), 1e-6);
    ck_assert_double_eq_tol(w[1], 1 / (E + 1), 1e-6);
    ck_assert_float_eq(w[2], 0.0f);
    ck_assert_double_eq_tol(qh[0], E / n, 1e-6);
    ck_assert_double_eq_tol(qh[1], 1 / n, 1e-6);
    ck_assert_double_eq_tol(vn[0], n / (E + 1), 1e-6);

    float uvid2[3] = {4, 4, 4};
    sola_softnn_forward(qh, w, vn, q + 2, u, uvid2, vid + 1, 1, 3, 2, 1.0f);
    ck_assert(qh[0] == 0 && qh[1] == 0 && vn[0] == 0);
    float g[2] = {1, -2};
    sola_softnn_backward(dq, dw, dv, g, qh, w, vn, u, 1, 3, 2, 1.0f);
    ck_assert(dq[0] == 0 && dq[1] == 0);
}
END_TEST

/* ---- the whole objective --------------------------------------------------------------- */

enum { MC = 6, MH = 5, MB = 3 };

static sola_train_cfg small_tcfg(void)
{
    sola_train_cfg t;
    sola_train_cfg_default(&t);
    t.W = 9, t.N = 4, t.start = 1, t.step = 2;
    return t;
}

static sola_cycle_cfg small_ccfg(void)
{
    sola_cycle_cfg c;
    sola_cycle_cfg_default(&c);
    c.hidden = 7, c.dim = 4, c.queue = 16, c.subset = 8, c.tau = 0.2f, c.lambda = 1.0f;
    return c;
}

static sola_model *small_model(int P)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(MC, MH, 3, 1, P, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    sola_model_init(m, 4);
    m->alpha[0] = 0.6f; /* away from the identity, so every module weight matters */
    return m;
}

static float batch_loss(sola_cycle *cy, const sola_model *m, const float *x, const int *vids,
                        float *grads)
{
    sola_err e = {0};
    float l;
    int rc = sola_cycle_loss_grad(cy, m, x, vids, MB, 77, 1.0f, &l, NULL, NULL, grads, &e);
    ck_assert_msg(rc == 0, "%s", e.msg);
    return l;
}

/* d(L_intra + lambda L_cycle) / d(module, heads) against central differences, the
 * queues, the momentum copies and the batch's draws held fixed. Some queue entries
 * belong to the batch's videos, so the exclusions are exercised too. */
START_TEST(objective_grad)
{
    sola_err e = {0};
    sola_model *m = small_model(0);
    sola_train_cfg tc = small_tcfg();
    sola_cycle_cfg cc = small_ccfg();
    sola_cycle *cy = sola_cycle_new(m, &tc, &cc, MB, 1e-3f, 5, &e);
    ck_assert_msg(cy != NULL, "%s", e.msg);
    sola_rng r;
    sola_rng_seed(&r, 3);
    float x[MB * 9 * MC];
    fill(x, sizeof x / sizeof x[0], &r, 1);
    int vids[MB] = {2, 5, 11};
    /* a queue with entries of videos 2 and 5 */
    float keys[16 * 4], tags[16];
    fill(keys, 64, &r, 1);
    unit_rows(keys, 16, 4);
    for (int k = 0; k < 16; k++)
        tags[k] = k % 4 == 0 ? 2.0f : k % 5 == 0 ? 5.0f : (float)(100 + k);
    sola_cycle_set_queue(cy, 0, keys, tags, 0);
    sola_cycle_set_queue(cy, 1, keys, tags, 0);
    /* momentum copy unlike the online one, as after some steps */
    for (size_t i = 0; i < m->nparams; i++)
        m->params[i] += 0.05f * (float)sola_rng_normal(&r);

    float *g = calloc(m->nparams, sizeof *g);
    size_t nh;
    float *hp = sola_cycle_heads(cy, &nh);
    float *hg = malloc(nh * sizeof *hg);
    float l0 = batch_loss(cy, m, x, vids, g);
    ck_assert(isfinite(l0) && l0 > 0);
    memcpy(hg, sola_cycle_head_grads(cy, &nh), nh * sizeof *hg);
    float *scratch = calloc(m->nparams, sizeof *scratch);

    const float h = 2e-3f;
    double *fd = malloc((m->nparams + nh) * sizeof *fd);
    for (size_t i = 0; i < m->nparams + nh; i++) {
        float *p = i < m->nparams ? &m->params[i] : &hp[i - m->nparams];
        float keep = *p;
        *p = keep + h;
        double lp = batch_loss(cy, m, x, vids, scratch);
        *p = keep - h;
        double lm = batch_loss(cy, m, x, vids, scratch);
        *p = keep;
        fd[i] = (lp - lm) / (2.0 * h);
    }
    assert_close("module", fd, g, (int)m->nparams, 1e-3, 3e-2);
    assert_close("heads", fd + m->nparams, hg, (int)nh, 1e-3, 3e-2);
    double gn = 0;
    for (size_t i = 0; i < m->nparams; i++)
        gn += fabs(g[i]);
    ck_assert_msg(gn > 1e-3, "module gradient is zero: nothing would train");

    /* weight scales every gradient */
    float l2;
    ck_assert(sola_cycle_loss_grad(cy, m, x, vids, MB, 77, 2.5f, &l2, NULL, NULL, scratch, &e) == 0);
    ck_assert_float_eq(l2, l0);
    for (size_t i = 0; i < m->nparams; i++)
        ck_assert_double_eq_tol(scratch[i], 2.5 * g[i], 1e-5 + 1e-4 * fabs(g[i]));
    free(fd), free(g), free(hg), free(scratch);
    sola_cycle_free(cy);
    sola_model_free(m);
}
END_TEST

/* The queue is a FIFO of one key per window, wrapping around; the momentum copy moves
 * by (1 - m) towards the online weights after each step. */
START_TEST(queue_wrap_and_momentum)
{
    sola_err e = {0};
    sola_model *m = small_model(0);
    sola_train_cfg tc = small_tcfg();
    sola_cycle_cfg cc = small_ccfg();
    cc.queue = 5, cc.subset = 5, cc.momentum = 0.5f;
    sola_cycle *cy = sola_cycle_new(m, &tc, &cc, MB, 1e-3f, 5, &e);
    ck_assert_msg(cy != NULL, "%s", e.msg);
    sola_rng r;
    sola_rng_seed(&r, 8);
    float x[MB * 9 * MC];
    fill(x, sizeof x / sizeof x[0], &r, 1);
    float *g = calloc(m->nparams, sizeof *g), l;
    int v1[MB] = {10, 11, 12}, v2[MB] = {20, 21, 22};
    const float *tags;
    int Kq, Dq, ptr;

    ck_assert(sola_cycle_loss_grad(cy, m, x, v1, MB, 1, 1.0f, &l, NULL, NULL, g, &e) == 0);
    float *before = malloc(m->nparams * sizeof *before);
    memcpy(before, sola_cycle_momentum(cy)->params, m->nparams * sizeof *before);
    m->params[0] += 1.0f; /* as if the optimizer moved it */
    sola_cycle_step(cy, m);
    const float *q = sola_cycle_queue(cy, 0, &tags, &Kq, &Dq, &ptr);
    ck_assert_int_eq(ptr, 3);
    float expect1[5] = {10, 11, 12, -1, -1};
    for (int k = 0; k < 5; k++)
        ck_assert_float_eq(tags[k], expect1[k]);
    for (int k = 0; k < 3; k++) { /* enqueued keys are unit vectors */
        double s = 0;
        for (int d = 0; d < Dq; d++)
            s += (double)q[k * Dq + d] * q[k * Dq + d];
        ck_assert_double_eq_tol(s, 1.0, 1e-5);
    }
    const float *pk = sola_cycle_momentum(cy)->params;
    ck_assert_float_eq_tol(pk[0], 0.5f * before[0] + 0.5f * m->params[0], 1e-6f);
    ck_assert_float_eq_tol(pk[1], 0.5f * before[1] + 0.5f * m->params[1], 1e-6f);

    ck_assert(sola_cycle_loss_grad(cy, m, x, v2, MB, 2, 1.0f, &l, NULL, NULL, g, &e) == 0);
    sola_cycle_step(cy, m);
    sola_cycle_queue(cy, 1, &tags, &Kq, &Dq, &ptr);
    ck_assert_int_eq(ptr, 1);
    float expect2[5] = {22, 11, 12, 20, 21}; /* the third key wrapped to slot 0 */
    for (int k = 0; k < 5; k++)
        ck_assert_float_eq(tags[k], expect2[k]);
    free(g), free(before);
    sola_cycle_free(cy);
    sola_model_free(m);
}
END_TEST

/* The cycle back's negatives are the cycle-queue entries NOT drawn into the soft-NN
 * subset U (the paper's and the authors' remain_indices): K - S of them, not the whole
 * queue. With every cycle-queue entry the same unit vector u, q^ = u whatever U is, and
 * the cycle term is, per query with positive c_k, log(e^{a/tau} + n e^{1/tau}) - a/tau,
 * a = u.c_k, for n negatives: the measured term must match n = K - S = 8, not 16. */
START_TEST(cycle_back_negatives_are_the_remaining_entries)
{
    sola_err e = {0};
    sola_model *m = small_model(0);
    sola_train_cfg tc = small_tcfg();
    sola_cycle_cfg cc = small_ccfg(); /* K = 16, S = 8, tau 0.2 */
    sola_cycle *cy = sola_cycle_new(m, &tc, &cc, MB, 1e-3f, 5, &e);
    ck_assert_msg(cy != NULL, "%s", e.msg);
    sola_rng r;
    sola_rng_seed(&r, 21);
    float x[MB * 9 * MC];
    fill(x, sizeof x / sizeof x[0], &r, 1);
    int vids[MB] = {2, 5, 11};
    float keys[16 * 4], same[16 * 4], tags[16], u[4] = {0.5f, -0.5f, 0.5f, 0.5f};
    fill(keys, 64, &r, 1);
    unit_rows(keys, 16, 4);
    for (int k = 0; k < 16; k++) {
        tags[k] = -1.0f; /* no video: nothing excluded */
        memcpy(same + 4 * k, u, sizeof u);
    }
    sola_cycle_set_queue(cy, 0, keys, tags, 0);
    sola_cycle_set_queue(cy, 1, same, tags, 0);
    float *g = calloc(m->nparams, sizeof *g), l, intra, cyc;
    ck_assert(sola_cycle_loss_grad(cy, m, x, vids, MB, 9, 1.0f, &l, &intra, &cyc, g, &e) == 0);
    sola_cycle_step(cy, m); /* enqueues the batch's c_k at slots 0..MB-1 */
    const float *tg;
    int Kq, Dq, ptr;
    const float *ck = sola_cycle_queue(cy, 1, &tg, &Kq, &Dq, &ptr);
    ck_assert_int_eq(ptr, MB);
    double want[2] = {0, 0};
    const int n[2] = {16 - 8, 16};
    for (int b = 0; b < MB; b++) {
        double a = 0;
        for (int d = 0; d < 4; d++)
            a += (double)u[d] * ck[b * 4 + d];
        for (int i = 0; i < 2; i++)
            want[i] += (log(exp(a / 0.2) + n[i] * exp(1 / 0.2)) - a / 0.2) / MB;
    }
    ck_assert_msg(fabs(cyc - want[0]) < 1e-4, "cycle term %g: %g with the K - S remaining "
                  "entries as negatives, %g with the whole queue", (double)cyc, want[0],
                  want[1]);
    ck_assert(fabs(want[1] - want[0]) > 0.1); /* the two readings are told apart */
    free(g);
    sola_cycle_free(cy);
    sola_model_free(m);
}
END_TEST

START_TEST(bad_settings)
{
    sola_err e = {0};
    sola_model *m = small_model(0);
    sola_train_cfg tc = small_tcfg();
    sola_cycle_cfg cc = small_ccfg();
    cc.subset = 17;
    ck_assert_ptr_null(sola_cycle_new(m, &tc, &cc, 2, 1e-3f, 0, &e));
    ck_assert_int_eq(e.code, SOLA_EINVAL);
    ck_assert_msg(strstr(e.msg, "subset"), "%s", e.msg);
    cc = small_ccfg();
    cc.tau = 0;
    ck_assert_ptr_null(sola_cycle_new(m, &tc, &cc, 2, 1e-3f, 0, &e));
    ck_assert_msg(strstr(e.msg, "temperature"), "%s", e.msg);
    cc = small_ccfg();
    tc.N = 1;
    ck_assert_ptr_null(sola_cycle_new(m, &tc, &cc, 2, 1e-3f, 0, &e));
    ck_assert_msg(strstr(e.msg, "N >= 2"), "%s", e.msg);
    sola_model_free(m);
}
END_TEST

/* ---- through the trainer --------------------------------------------------------------- */

enum { TC = 8, TH = 8 };

static char *make_dataset(void)
{
    char *dir = tu_tmpdir();
    sola_rng r;
    sola_rng_seed(&r, 5);
    for (int v = 0; v < 12; v++) {
        int T = 30 + v;
        float *x = malloc((size_t)T * TC * sizeof *x);
        for (int c = 0; c < TC; c++) {
            float acc = 0, off = (float)sola_rng_normal(&r);
            for (int t = 0; t < T; t++) {
                acc = 0.8f * acc + (float)sola_rng_normal(&r);
                x[t * TC + c] = acc + 2 * off;
            }
        }
        char p[4096];
        snprintf(p, sizeof p, "%s/v%02d.npy", dir, v);
        int64_t shape[2] = {T, TC};
        sola_err e = {0};
        ck_assert_msg(sola_npy_save(p, x, 2, shape, &e) == 0, "%s", e.msg);
        free(x);
    }
    return dir;
}

static sola_trainer_opts opts(const char *objective, int epochs)
{
    sola_trainer_opts o;
    sola_trainer_default(&o);
    o.objective = objective;
    o.cfg.P = 16;
    o.batch = 5;
    o.lr = 3e-3f;
    /* constant: a cosine schedule spans the planned epochs, so 2 epochs resumed to 6
     * would not be 6 planned (resume_mid_epoch covers cosine, with the same plan) */
    o.schedule = SOLA_SCHED_CONSTANT;
    o.epochs = epochs;
    o.seed = 11;
    o.threads = 1;
    o.cycle.hidden = 16, o.cycle.dim = 8, o.cycle.queue = 24, o.cycle.subset = 12;
    return o;
}

static sola_model *fresh(void)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(TC, TH, 5, 1, 0, &e);
    ck_assert_ptr_nonnull(m);
    sola_model_init(m, 3);
    return m;
}

static sola_model *train(const sola_dataset *d, sola_model *m, sola_trainer_opts *o,
                         sola_train_result *r)
{
    sola_err e = {0};
    int rc = sola_train(m, d, o, r, &e);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, e.msg);
    return m;
}

static void assert_same_state(const sola_model *a, const sola_model *b)
{
    ck_assert_uint_eq(a->nparams, b->nparams);
    ck_assert_msg(!memcmp(a->params, b->params, a->nparams * sizeof(float)), "params differ");
    const char *names[] = {"cycle.intra_head.0.weight", "cycle.cycle_head.2.bias",
                           "cycle.momentum.module", "cycle.momentum.heads", "cycle.queue.intra",
                           "cycle.queue.cycle_video", "cycle.queue.ptr",
                           "cycle.optimizer.exp_avg_sq", "optimizer.exp_avg"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const sola_tensor *x = sola_model_extra(a, names[i]), *y = sola_model_extra(b, names[i]);
        ck_assert_msg(x && y, "%s missing", names[i]);
        size_t n = sola_tensor_numel(x);
        ck_assert_uint_eq(n, sola_tensor_numel(y));
        ck_assert_msg(!memcmp(x->data, y->data, n * sizeof(float)), "%s differs", names[i]);
    }
}

/* Trains without NaN, the same seed gives the same bytes, and stopping after 2 epochs,
 * saving, loading and resuming to 6 ends exactly where 6 straight epochs end. */
static void resume_case(const char *objective)
{
    char *dir = make_dataset();
    sola_dataset *d = NULL;
    sola_err e = {0};
    ck_assert_msg(sola_dataset_open(dir, &d, &e) == 0, "%s", e.msg);

    sola_trainer_opts o = opts(objective, 6);
    sola_train_result r1, r2;
    sola_model *a = train(d, fresh(), &o, &r1);
    ck_assert_int_eq(r1.epochs_done, 6);
    for (int i = 0; i < 6; i++)
        ck_assert_msg(isfinite(r1.loss[i]), "epoch %d loss %g", i + 1, r1.loss[i]);
    ck_assert_str_eq(sola_model_meta(a, "objective"), objective);
    sola_model *b = train(d, fresh(), &o, &r2);
    assert_same_state(a, b);
    sola_train_result_free(&r2);
    sola_model_free(b);

    sola_trainer_opts o2 = opts(objective, 2);
    b = train(d, fresh(), &o2, &r2);
    sola_train_result_free(&r2);
    char path[4096];
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    ck_assert_msg(sola_model_save(b, path, 1, &e) == 0, "%s", e.msg);
    sola_model_free(b);
    b = sola_model_load(path, &e);
    ck_assert_msg(b != NULL, "%s", e.msg);
    sola_trainer_opts o3 = opts("sola", 6); /* the checkpoint's objective wins */
    o3.resume = 1;
    train(d, b, &o3, &r2);
    ck_assert_int_eq(r2.resumed_epoch, 2);
    assert_same_state(a, b);
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq(r1.loss[i], r2.loss[i]);
    sola_train_result_free(&r1);
    sola_train_result_free(&r2);
    sola_model_free(a);
    sola_model_free(b);
    sola_dataset_free(d);
    tu_rmtree(dir);
    free(dir);
}

START_TEST(resume_cycle)
{
    resume_case("cycle");
}
END_TEST

START_TEST(resume_sola_cycle)
{
    resume_case("sola+cycle");
}
END_TEST

/* cancel in the middle of an epoch, resume from the checkpoint: same end */
static atomic_int cancel_flag;
static void cancel_after_4(const sola_train_progress *p, void *ud)
{
    (void)ud;
    if ((p->epoch - 1) * p->steps_per_epoch + p->step == 4)
        atomic_store(&cancel_flag, 1);
}

START_TEST(resume_mid_epoch)
{
    char *dir = make_dataset();
    sola_dataset *d = NULL;
    sola_err e = {0};
    ck_assert_msg(sola_dataset_open(dir, &d, &e) == 0, "%s", e.msg);
    sola_trainer_opts o = opts("cycle", 3);
    o.schedule = SOLA_SCHED_COSINE; /* the rate is a function of the step: kept */
    sola_model *a = train(d, fresh(), &o, NULL);

    char path[4096];
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    sola_trainer_opts oc = opts("cycle", 3);
    oc.schedule = SOLA_SCHED_COSINE;
    oc.checkpoint = path;
    oc.progress = cancel_after_4;
    atomic_store(&cancel_flag, 0);
    oc.cancel = &cancel_flag;
    sola_model *b = fresh();
    ck_assert_int_eq(sola_train(b, d, &oc, NULL, &e), SOLA_ECANCEL);
    sola_model_free(b);
    b = sola_model_load(path, &e);
    ck_assert_msg(b != NULL, "%s", e.msg);
    sola_trainer_opts o3 = opts("cycle", 3);
    o3.resume = 1;
    train(d, b, &o3, NULL);
    assert_same_state(a, b);
    sola_model_free(a);
    sola_model_free(b);
    sola_dataset_free(d);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* At default settings except sizes, the loss of `cycle` falls over training. */
START_TEST(cycle_learns)
{
    char *dir = make_dataset();
    sola_dataset *d = NULL;
    sola_err e = {0};
    ck_assert_msg(sola_dataset_open(dir, &d, &e) == 0, "%s", e.msg);
    sola_trainer_opts o = opts("cycle", 40);
    sola_train_result r;
    sola_model *m = train(d, fresh(), &o, &r);
    /* the queue (24) is full of real keys after 2 epochs; compare later epochs */
    double early = (r.loss[4] + r.loss[5] + r.loss[6]) / 3, late = (r.loss[37] + r.loss[38] + r.loss[39]) / 3;
    ck_assert_msg(late < early - 0.05, "loss did not fall: %g early, %g late", early, late);
    ck_assert_ptr_null(m->hw0); /* `cycle` alone adds no dissimilarity head */
    sola_train_result_free(&r);
    sola_model_free(m);
    sola_dataset_free(d);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cycle");
    TCase *t = tcase_create("layers");
    tcase_add_test(t, infonce_grad);
    tcase_add_test(t, softnn_grad);
    tcase_add_test(t, softnn_hand);
    tcase_add_test(t, objective_grad);
    tcase_add_test(t, queue_wrap_and_momentum);
    tcase_add_test(t, cycle_back_negatives_are_the_remaining_entries);
    tcase_add_test(t, bad_settings);
    suite_add_tcase(s, t);
    TCase *tr = tcase_create("trainer");
    tcase_set_timeout(tr, 60);
    tcase_add_test(tr, resume_cycle);
    tcase_add_test(tr, resume_sola_cycle);
    tcase_add_test(tr, resume_mid_epoch);
    tcase_add_test(tr, cycle_learns);
    suite_add_tcase(s, tr);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
