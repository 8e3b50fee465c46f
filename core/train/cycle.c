/* cycle.c -- the cycle objective's state and step (cycle.h): heads, momentum copies,
 * queues, the batch forward/backward and the after-step updates. The two new layers
 * are in cycle_nce.c; the module's forward/backward is sola_loss.c's
 * (sola_module_forward/backward), shared with the `sola` objective. */
#include "cycle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "sola_layers.h"

struct sola_cycle {
    sola_cycle_cfg cfg;
    sola_train_cfg tcfg;
    int C, Hc, D, K, S, N, Bmax;
    size_t nmod;      /* module floats (layout.module_total) */
    size_t hs, nh;    /* floats of one head, of both */
    float *hp, *hg;   /* online heads [intra | cycle] and their gradients */
    float *hk;        /* momentum heads */
    sola_adamw opt;   /* the heads' AdamW */
    sola_model *mk;   /* momentum module (no head) */
    sola_trainctx *ctx;
    float *queue[2], *qvid[2]; /* [K, D], [K]: 0 intra, 1 cycle */
    int ptr;

    /* the last batch */
    int nb;
    int *qi, *kj, *vid; /* [Bmax] query / key kept index, video */
    int *perm;          /* [K] subset draw */
    float *xr, *z, *zn;                 /* (B, C), (B, C), (B) */
    float *a1[2], *u[2], *q[2], *qn[2]; /* per head: (B, Hc), (B, D), (B, D), (B) */
    float *key[2];                      /* (B, D) momentum keys */
    float *prob[2], *p0[2];             /* (B, K), (B) */
    float *U, *uvid;                    /* (S, D), (S) */
    float *rest, *rvid; int nrest;      /* (nrest, D), (nrest): cycle-back negatives */
    float *w, *dw, *vnorm, *qh, *dv;    /* (B, S) x2, (B), (B, D) x2 */
    float *dq, *dqh, *du, *da1, *dz, *dzh, *dr; /* dr (B*N, C) */
};

static const char *const head_names[2] = {"intra_head", "cycle_head"};

void sola_cycle_cfg_default(sola_cycle_cfg *c)
{
    c->hidden = 512;
    c->dim = 128;
    c->queue = 4096;
    c->subset = 1024;
    c->tau = 0.07f;
    c->lambda = 0.1f;
    c->momentum = 0.999f;
}

int sola_cycle_cfg_check(const sola_cycle_cfg *c, sola_err *e)
{
    if (c->hidden < 1 || c->hidden > 1 << 16)
        return sola_errf(e, SOLA_EINVAL, "cycle head width %d: must be in 1..65536", c->hidden);
    if (c->dim < 1 || c->dim > 1 << 16)
        return sola_errf(e, SOLA_EINVAL, "cycle embedding width %d: must be in 1..65536",
                         c->dim);
    if (c->queue < 1 || c->queue > 1 << 22)
        return sola_errf(e, SOLA_EINVAL, "cycle queue size %d: must be in 1..4194304",
                         c->queue);
    if (c->subset < 1 || c->subset > c->queue)
        return sola_errf(e, SOLA_EINVAL,
                         "cycle soft-NN subset %d: must be in 1..queue size (%d)", c->subset,
                         c->queue);
    if (!(c->tau > 0) || !isfinite(c->tau))
        return sola_errf(e, SOLA_EINVAL, "temperature %g: must be > 0", (double)c->tau);
    if (!(c->lambda >= 0) || !isfinite(c->lambda))
        return sola_errf(e, SOLA_EINVAL, "cycle lambda %g: must be >= 0", (double)c->lambda);
    if (!(c->momentum >= 0 && c->momentum <= 1))
        return sola_errf(e, SOLA_EINVAL, "momentum %g: must be in [0, 1]",
                         (double)c->momentum);
    return 0;
}

static int meta_num(const sola_model *m, const char *key, double *out)
{
    const char *s = sola_model_meta(m, key);
    char *end;
    if (!s || !*s)
        return -1;
    double v = strtod(s, &end);
    if (*end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

void sola_cycle_cfg_from_model(const sola_model *m, sola_cycle_cfg *c)
{
    double v;
    if (!meta_num(m, "cycle.tau", &v))
        c->tau = (float)v;
    if (!meta_num(m, "cycle.lambda", &v))
        c->lambda = (float)v;
    if (!meta_num(m, "cycle.momentum", &v))
        c->momentum = (float)v;
    if (!meta_num(m, "cycle.subset", &v) && v >= 1 && v <= 1 << 22)
        c->subset = (int)v;
    const sola_tensor *t = sola_model_extra(m, "cycle.intra_head.0.weight");
    if (t && t->ndim == 2 && t->shape[0] >= 1 && t->shape[0] <= 1 << 16)
        c->hidden = (int)t->shape[0];
    t = sola_model_extra(m, "cycle.intra_head.2.weight");
    if (t && t->ndim == 2 && t->shape[0] >= 1 && t->shape[0] <= 1 << 16)
        c->dim = (int)t->shape[0];
    t = sola_model_extra(m, "cycle.queue.intra");
    if (t && t->ndim == 2 && t->shape[0] >= 1 && t->shape[0] <= 1 << 22)
        c->queue = (int)t->shape[0];
}

/* malloc of a*b floats (or ints: same size), overflow-checked; NULL on failure */
static void *falloc(size_t a, size_t b)
{
    size_t n;
    if (sola_mul_size(a, b, &n) || sola_mul_size(n, sizeof(float), &n))
        return NULL;
    return calloc(1, n ? n : 1);
}

void sola_cycle_free(sola_cycle *cy)
{
    if (!cy)
        return;
    float **f[] = {&cy->hp, &cy->hg, &cy->hk, &cy->queue[0], &cy->queue[1], &cy->qvid[0],
                   &cy->qvid[1], &cy->xr, &cy->z, &cy->zn, &cy->key[0], &cy->key[1],
                   &cy->prob[0], &cy->prob[1], &cy->p0[0], &cy->p0[1], &cy->U, &cy->uvid,
                   &cy->rest, &cy->rvid,
                   &cy->w, &cy->dw, &cy->vnorm, &cy->qh, &cy->dv, &cy->dq, &cy->dqh, &cy->du,
                   &cy->da1, &cy->dz, &cy->dzh, &cy->dr};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        free(*f[i]);
    for (int h = 0; h < 2; h++)
        free(cy->a1[h]), free(cy->u[h]), free(cy->q[h]), free(cy->qn[h]);
    free(cy->qi), free(cy->kj), free(cy->vid), free(cy->perm);
    sola_adamw_free(&cy->opt);
    sola_model_free(cy->mk);
    sola_trainctx_free(cy->ctx);
    free(cy);
}

/* nn.Linear's default init, U(+-1/sqrt(fan_in)) for weight then bias, per layer */
static void init_heads(sola_cycle *cy, uint64_t seed)
{
    sola_rng r;
    sola_rng_seed(&r, seed ^ 0x6379636c65ull);
    const int C = cy->C, Hc = cy->Hc, D = cy->D;
    for (int h = 0; h < 2; h++) {
        float *p = cy->hp + h * cy->hs;
        const size_t n0 = (size_t)Hc * C + Hc, n2 = (size_t)D * Hc + D;
        const double b0 = 1.0 / sqrt(C), b2 = 1.0 / sqrt(Hc);
        for (size_t i = 0; i < n0; i++)
            p[i] = (float)((2 * sola_rng_uniform(&r) - 1) * b0);
        for (size_t i = 0; i < n2; i++)
            p[n0 + i] = (float)((2 * sola_rng_uniform(&r) - 1) * b2);
    }
    // queues: random unit vectors of no video (MoCo starts its queue the same way)
    for (int w = 0; w < 2; w++) {
        for (int k = 0; k < cy->K; k++) {
            float *v = cy->queue[w] + (size_t)k * D;
            double s = 0;
            for (int d = 0; d < D; d++) {
                v[d] = (float)sola_rng_normal(&r);
                s += (double)v[d] * v[d];
            }
            float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
            for (int d = 0; d < D; d++)
                v[d] *= inv;
            cy->qvid[w][k] = -1.0f;
        }
    }
}

sola_cycle *sola_cycle_new(const sola_model *m, const sola_train_cfg *tcfg,
                           const sola_cycle_cfg *cc, int Bmax, float lr, uint64_t seed,
                           sola_err *e)
{
    if (!m || !tcfg || !cc) {
        sola_errf(e, SOLA_EINVAL, "cycle objective: no model or config");
        return NULL;
    }
    if (sola_cycle_cfg_check(cc, e) || sola_train_cfg_check(tcfg, e))
        return NULL;
    if (tcfg->N < 2) {
        sola_errf(e, SOLA_EINVAL,
                  "cycle objective: needs N >= 2 kept positions per window (a query and "
                  "another snippet as its positive), got N=%d",
                  tcfg->N);
        return NULL;
    }
    if (Bmax < 1 || Bmax > 1 << 20) {
        sola_errf(e, SOLA_EINVAL, "batch size %d: must be in 1..1048576", Bmax);
        return NULL;
    }
    sola_cycle *cy = calloc(1, sizeof *cy);
    if (!cy) {
        sola_errf(e, SOLA_ENOMEM, "cycle objective: out of memory");
        return NULL;
    }
    cy->cfg = *cc;
    cy->tcfg = *tcfg;
    cy->C = m->C;
    cy->Hc = cc->hidden;
    cy->D = cc->dim;
    cy->K = cc->queue;
    cy->S = cc->subset;
    cy->N = tcfg->N;
    cy->Bmax = Bmax;
    sola_layout l;
    sola_model_layout(m->C, m->H, m->k1, m->k2, 0, &l);
    cy->nmod = l.module_total;
    const size_t C = (size_t)m->C, Hc = (size_t)cy->Hc, D = (size_t)cy->D, K = (size_t)cy->K,
                 S = (size_t)cy->S, B = (size_t)Bmax;
    cy->hs = Hc * C + Hc + D * Hc + D; /* bounded: C <= 2^31, Hc, D <= 2^16 */
    cy->nh = 2 * cy->hs;
    if (!(cy->ctx = sola_trainctx_new_module(m, tcfg, Bmax, e)))
        goto err_quiet;
    if (!(cy->mk = sola_model_new(m->C, m->H, m->k1, m->k2, 0, e)))
        goto err_quiet;
    cy->mk->d1 = m->d1;
    cy->mk->d2 = m->d2;
    memcpy(cy->mk->params, m->params, cy->nmod * sizeof(float));
    if (sola_adamw_init(&cy->opt, cy->nh, lr, e))
        goto err_quiet;
    cy->hp = falloc(cy->nh, 1), cy->hg = falloc(cy->nh, 1), cy->hk = falloc(cy->nh, 1);
    cy->qi = falloc(B, 1), cy->kj = falloc(B, 1), cy->vid = falloc(B, 1), cy->perm = falloc(K, 1);
    cy->xr = falloc(B, C), cy->z = falloc(B, C), cy->zn = falloc(B, 1);
    cy->U = falloc(S, D), cy->uvid = falloc(S, 1), cy->w = falloc(B, S), cy->dw = falloc(B, S);
    cy->rest = falloc(K, D), cy->rvid = falloc(K, 1); /* K - S rows, or K when S = K */
    cy->vnorm = falloc(B, 1), cy->qh = falloc(B, D), cy->dv = falloc(B, D), cy->dq = falloc(B, D);
    cy->dqh = falloc(B, D), cy->du = falloc(B, D), cy->da1 = falloc(B, Hc);
    cy->dz = falloc(B, C), cy->dzh = falloc(B, C), cy->dr = falloc(B * cy->N, C);
    int ok = cy->rest && cy->rvid && cy->hp && cy->hg && cy->hk && cy->qi && cy->kj && cy->vid &&
             cy->perm && cy->xr &&
             cy->z && cy->zn && cy->U && cy->uvid && cy->w && cy->dw && cy->vnorm && cy->qh &&
             cy->dv && cy->dq && cy->dqh && cy->du && cy->da1 && cy->dz && cy->dzh && cy->dr;
    for (int h = 0; h < 2 && ok; h++) {
        cy->a1[h] = falloc(B, Hc), cy->u[h] = falloc(B, D), cy->q[h] = falloc(B, D);
        cy->qn[h] = falloc(B, 1), cy->key[h] = falloc(B, D), cy->prob[h] = falloc(B, K);
        cy->p0[h] = falloc(B, 1), cy->queue[h] = falloc(K, D), cy->qvid[h] = falloc(K, 1);
        ok = cy->a1[h] && cy->u[h] && cy->q[h] && cy->qn[h] && cy->key[h] && cy->prob[h] &&
             cy->p0[h] && cy->queue[h] && cy->qvid[h];
    }
    if (!ok) {
        sola_errf(e, SOLA_ENOMEM,
                  "cycle objective: out of memory for batches of %d windows, queues of %d x "
                  "%d; lower the batch or --queue",
                  Bmax, cy->K, cy->D);
        goto err_quiet;
    }
    init_heads(cy, seed);
    memcpy(cy->hk, cy->hp, cy->nh * sizeof(float));
    return cy;
err_quiet:
    sola_cycle_free(cy);
    return NULL;
}

/* ---- state <-> model extras --------------------------------------------------------- */

typedef struct {
    char name[64];
    int ndim;
    int64_t shape[2];
    float *data;
} view;

/* The state's tensors as (name, shape, pointer) views; returns how many. */
static int views(const sola_cycle *cy, view v[20], float *ptr_store)
{
    int n = 0;
    const int64_t C = cy->C, Hc = cy->Hc, D = cy->D, K = cy->K;
    for (int h = 0; h < 2; h++) {
        float *p = cy->hp + h * cy->hs;
        const char *nm = head_names[h];
        v[n] = (view){"", 2, {Hc, C}, p};
        snprintf(v[n++].name, 64, "cycle.%s.0.weight", nm);
        v[n] = (view){"", 1, {Hc, 0}, p + Hc * C};
        snprintf(v[n++].name, 64, "cycle.%s.0.bias", nm);
        v[n] = (view){"", 2, {D, Hc}, p + Hc * C + Hc};
        snprintf(v[n++].name, 64, "cycle.%s.2.weight", nm);
        v[n] = (view){"", 1, {D, 0}, p + Hc * C + Hc + D * Hc};
        snprintf(v[n++].name, 64, "cycle.%s.2.bias", nm);
    }
    v[n++] = (view){"cycle.momentum.module", 1, {(int64_t)cy->nmod, 0}, cy->mk->params};
    v[n++] = (view){"cycle.momentum.heads", 1, {(int64_t)cy->nh, 0}, cy->hk};
    v[n++] = (view){"cycle.queue.intra", 2, {K, D}, cy->queue[0]};
    v[n++] = (view){"cycle.queue.intra_video", 1, {K, 0}, cy->qvid[0]};
    v[n++] = (view){"cycle.queue.cycle", 2, {K, D}, cy->queue[1]};
    v[n++] = (view){"cycle.queue.cycle_video", 1, {K, 0}, cy->qvid[1]};
    v[n++] = (view){"cycle.queue.ptr", 1, {1, 0}, ptr_store};
    v[n++] = (view){"cycle.optimizer.exp_avg", 1, {(int64_t)cy->nh, 0}, cy->opt.m};
    v[n++] = (view){"cycle.optimizer.exp_avg_sq", 1, {(int64_t)cy->nh, 0}, cy->opt.v};
    return n;
}

int sola_cycle_store(const sola_cycle *cy, sola_model *m, sola_err *e)
{
    view v[20];
    float ptr = (float)cy->ptr, step = (float)cy->opt.t;
    if (cy->opt.t >= 1L << 24)
        return sola_errf(e, SOLA_ETOOBIG, "cycle: %ld steps exceed what a checkpoint records",
                         cy->opt.t);
    int n = views(cy, v, &ptr), rc;
    for (int i = 0; i < n; i++)
        if ((rc = sola_model_put_extra(m, v[i].name, v[i].ndim, v[i].shape, v[i].data, e)))
            return rc;
    int64_t one = 1;
    if ((rc = sola_model_put_extra(m, "cycle.optimizer.step", 1, &one, &step, e)))
        return rc;
    char sub[32];
    snprintf(sub, sizeof sub, "%d", cy->S);
    if (sola_model_set_meta_float(m, "cycle.tau", cy->cfg.tau) ||
        sola_model_set_meta_float(m, "cycle.lambda", cy->cfg.lambda) ||
        sola_model_set_meta_float(m, "cycle.momentum", cy->cfg.momentum) ||
        sola_model_set_meta(m, "cycle.subset", sub))
        return sola_errf(e, SOLA_ENOMEM, "cycle: out of memory for metadata");
    return 0;
}

int sola_cycle_restore(sola_cycle *cy, const sola_model *m, int *found, sola_err *e)
{
    *found = 0;
    if (!sola_model_extra(m, "cycle.queue.ptr"))
        return 0;
    view v[20];
    float ptr = 0;
    int n = views(cy, v, &ptr);
    for (int i = 0; i <= n; i++) {
        const char *name = i < n ? v[i].name : "cycle.optimizer.step";
        const sola_tensor *t = sola_model_extra(m, name);
        size_t want = i < n ? (size_t)v[i].shape[0] * (v[i].ndim == 2 ? (size_t)v[i].shape[1] : 1)
                            : 1;
        if (!t || sola_tensor_numel(t) != want)
            return sola_errf(e, SOLA_EFORMAT,
                             "cycle training state: %s is %s (expected %zu values for hidden "
                             "%d, dim %d, queue %d, C=%d)",
                             name, t ? "mis-sized" : "missing", want, cy->Hc, cy->D, cy->K,
                             cy->C);
        if (i < n)
            memcpy(v[i].data, t->data, want * sizeof(float));
        else if (!(t->data[0] >= 0))
            return sola_errf(e, SOLA_EFORMAT, "cycle.optimizer.step: negative");
        else
            cy->opt.t = (long)t->data[0];
    }
    if (!(ptr >= 0 && ptr < cy->K))
        return sola_errf(e, SOLA_EFORMAT, "cycle.queue.ptr %g: outside the queue of %d",
                         (double)ptr, cy->K);
    cy->ptr = (int)ptr;
    cy->nb = 0;
    *found = 1;
    return 0;
}

/* ---- the batch ---------------------------------------------------------------------- */

/* head p on z (B, C): a1 = relu(z W0^T + b0), u = a1 W2^T + b2, q = normalize(u) */
static void head_fwd(const sola_cycle *cy, const float *p, const float *z, float *a1, float *u,
                     float *q, float *qn, int B)
{
    const int C = cy->C, Hc = cy->Hc, D = cy->D;
    const float *w0 = p, *b0 = w0 + (size_t)Hc * C, *w2 = b0 + Hc, *b2 = w2 + (size_t)D * Hc;
    sola_linear_forward(a1, z, w0, b0, B, C, Hc);
    sola_relu_forward(a1, (size_t)B * Hc);
    sola_linear_forward(u, a1, w2, b2, B, Hc, D);
    sola_normalize_forward(q, qn, u, B, D, 1e-12f);
}

/* head backward from dq: parameter gradients into g (overwritten), dz (B, C) */
static void head_bwd(sola_cycle *cy, const float *p, float *g, const float *z, int h,
                     const float *dq, float *dz, int B)
{
    const int C = cy->C, Hc = cy->Hc, D = cy->D;
    const float *w0 = p, *w2 = p + (size_t)Hc * C + Hc;
    float *gw0 = g, *gb0 = gw0 + (size_t)Hc * C, *gw2 = gb0 + Hc, *gb2 = gw2 + (size_t)D * Hc;
    sola_normalize_backward(cy->du, dq, cy->q[h], cy->qn[h], B, D, 1e-12f);
    sola_linear_backward(cy->da1, gw2, gb2, cy->du, cy->a1[h], w2, B, Hc, D);
    sola_relu_backward(cy->da1, cy->da1, cy->a1[h], (size_t)B * Hc);
    sola_linear_backward(dz, gw0, gb0, cy->da1, z, w0, B, C, Hc);
}

/* Gathers row sel[b] of window b from r (B*N, C) into xr and normalises into z. */
static void pick_rows(sola_cycle *cy, const float *r, const int *sel, int B, float *z,
                      float *zn)
{
    const size_t C = (size_t)cy->C;
    for (int b = 0; b < B; b++)
        memcpy(cy->xr + b * C, r + ((size_t)b * cy->N + sel[b]) * C, C * sizeof(float));
    sola_normalize_forward(z, zn, cy->xr, B, cy->C, 1e-12f);
}

int sola_cycle_loss_grad(sola_cycle *cy, const sola_model *m, const float *windows,
                         const int *vids, int B, uint64_t batch_seed, float weight,
                         float *loss, float *intra, float *cyc, float *grads, sola_err *e)
{
    if (!cy || !m || !windows || !vids || !grads)
        return sola_errf(e, SOLA_EINVAL, "cycle loss: missing argument");
    if (B < 1 || B > cy->Bmax)
        return sola_errf(e, SOLA_EINVAL, "batch of %d windows: the cycle state holds 1..%d", B,
                         cy->Bmax);
    const int N = cy->N, K = cy->K, S = cy->S, D = cy->D;
    const size_t C = (size_t)cy->C;
    sola_rng r;
    sola_rng_seed(&r, batch_seed);
    for (int b = 0; b < B; b++) {
        if (vids[b] < 0 || vids[b] >= 1 << 24)
            return sola_errf(e, SOLA_EINVAL,
                             "cycle loss: video index %d outside 0..16777215 (queues tag "
                             "entries with float32 video ids)",
                             vids[b]);
        cy->vid[b] = vids[b];
        cy->qi[b] = (int)sola_rng_below(&r, (uint64_t)N);
        cy->kj[b] = (cy->qi[b] + 1 + (int)sola_rng_below(&r, (uint64_t)N - 1)) % N;
    }
    // soft-NN candidates: S distinct entries of the cycle queue (partial Fisher-Yates)
    for (int k = 0; k < K; k++)
        cy->perm[k] = k;
    if (S < K)
        for (int i = 0; i < S; i++) {
            int j = i + (int)sola_rng_below(&r, (uint64_t)(K - i)), t = cy->perm[i];
            cy->perm[i] = cy->perm[j];
            cy->perm[j] = t;
        }
    for (int i = 0; i < S; i++) {
        memcpy(cy->U + (size_t)i * D, cy->queue[1] + (size_t)cy->perm[i] * D,
               (size_t)D * sizeof(float));
        cy->uvid[i] = cy->qvid[1][cy->perm[i]];
    }
    // cycle-back negatives: the entries not drawn into U (the authors' remain_indices);
    // with U = the whole queue, the whole queue
    cy->nrest = S < K ? K - S : K;
    for (int i = 0; i < cy->nrest; i++) {
        int j = cy->perm[S < K ? S + i : i];
        memcpy(cy->rest + (size_t)i * D, cy->queue[1] + (size_t)j * D, (size_t)D * sizeof(float));
        cy->rvid[i] = cy->qvid[1][j];
    }

    // keys: momentum module at position kj, momentum heads (constants)
    const float *rk;
    int rc = sola_module_forward(cy->ctx, cy->mk, windows, B, &rk, e);
    if (rc)
        return rc;
    pick_rows(cy, rk, cy->kj, B, cy->z, cy->zn);
    for (int h = 0; h < 2; h++)
        head_fwd(cy, cy->hk + h * cy->hs, cy->z, cy->a1[h], cy->u[h], cy->key[h], cy->qn[h], B);

    // queries: online module at position qi, online heads
    const float *rq;
    if ((rc = sola_module_forward(cy->ctx, m, windows, B, &rq, e)))
        return rc;
    pick_rows(cy, rq, cy->qi, B, cy->z, cy->zn);
    for (int h = 0; h < 2; h++)
        head_fwd(cy, cy->hp + h * cy->hs, cy->z, cy->a1[h], cy->u[h], cy->q[h], cy->qn[h], B);

    const float tau = cy->cfg.tau;
    const double mean = 1.0 / B;
    double li = sola_infonce_forward(cy->prob[0], cy->p0[0], cy->q[0], cy->key[0], cy->queue[0],
                                     cy->qvid[0], cy->vid, B, K, D, tau, mean);
    sola_softnn_forward(cy->qh, cy->w, cy->vnorm, cy->q[1], cy->U, cy->uvid, cy->vid, B, S, D,
                        tau);
    double lc = sola_infonce_forward(cy->prob[1], cy->p0[1], cy->qh, cy->key[1], cy->rest,
                                     cy->rvid, cy->vid, B, cy->nrest, D, tau, mean);
    double l = li + (double)cy->cfg.lambda * lc;
    if (!isfinite(l))
        return sola_errf(e, SOLA_EFORMAT,
                         "cycle loss is not finite (%g): the windows or the model hold NaN or "
                         "Inf values",
                         l);

    // backward: intra head, then cycle head through the soft nearest neighbour
    sola_infonce_backward(cy->dq, cy->prob[0], cy->p0[0], cy->key[0], cy->queue[0], B, K, D, tau,
                          weight * mean);
    head_bwd(cy, cy->hp, cy->hg, cy->z, 0, cy->dq, cy->dz, B);
    sola_infonce_backward(cy->dqh, cy->prob[1], cy->p0[1], cy->key[1], cy->rest, B, cy->nrest, D,
                          tau, (double)weight * cy->cfg.lambda * mean);
    sola_softnn_backward(cy->dq, cy->dw, cy->dv, cy->dqh, cy->qh, cy->w, cy->vnorm, cy->U, B, S,
                         D, tau);
    head_bwd(cy, cy->hp + cy->hs, cy->hg + cy->hs, cy->z, 1, cy->dq, cy->dzh, B);
    const size_t nz = (size_t)B * C;
    for (size_t i = 0; i < nz; i++)
        cy->dz[i] += cy->dzh[i];
    // z = normalize(refined at qi); only those rows of each window get a gradient
    sola_normalize_backward(cy->dzh, cy->dz, cy->z, cy->zn, B, cy->C, 1e-12f);
    memset(cy->dr, 0, (size_t)B * N * C * sizeof(float));
    for (int b = 0; b < B; b++)
        memcpy(cy->dr + ((size_t)b * N + cy->qi[b]) * C, cy->dzh + b * C, C * sizeof(float));
    sola_module_backward(cy->ctx, m, B, cy->dr, grads);
    cy->nb = B;
    *loss = (float)l;
    if (intra)
        *intra = (float)li;
    if (cyc)
        *cyc = (float)lc;
    return 0;
}

void sola_cycle_step(sola_cycle *cy, const sola_model *m)
{
    sola_adamw_step(&cy->opt, cy->hp, cy->hg);
    const float mo = cy->cfg.momentum, om = 1.0f - mo;
    float *pk = cy->mk->params;
    for (size_t i = 0; i < cy->nmod; i++)
        pk[i] = mo * pk[i] + om * m->params[i];
    for (size_t i = 0; i < cy->nh; i++)
        cy->hk[i] = mo * cy->hk[i] + om * cy->hp[i];
    const size_t D = (size_t)cy->D;
    for (int b = 0; b < cy->nb; b++) {
        for (int w = 0; w < 2; w++) {
            memcpy(cy->queue[w] + (size_t)cy->ptr * D, cy->key[w] + b * D, D * sizeof(float));
            cy->qvid[w][cy->ptr] = (float)cy->vid[b];
        }
        cy->ptr = (cy->ptr + 1) % cy->K;
    }
    cy->nb = 0;
}

void sola_cycle_set_lr(sola_cycle *cy, double lr)
{
    cy->opt.lr = lr;
}

void sola_cycle_chance(const sola_cycle *cy, double *intra, double *cyc)
{
    *intra = log(1.0 + cy->K);
    *cyc = log(1.0 + (cy->S < cy->K ? cy->K - cy->S : cy->K));
}

float *sola_cycle_heads(sola_cycle *cy, size_t *n)
{
    *n = cy->nh;
    return cy->hp;
}

float *sola_cycle_head_grads(sola_cycle *cy, size_t *n)
{
    *n = cy->nh;
    return cy->hg;
}

const float *sola_cycle_queue(const sola_cycle *cy, int which, const float **video, int *K,
                              int *D, int *ptr)
{
    which = which ? 1 : 0;
    if (video)
        *video = cy->qvid[which];
    if (K)
        *K = cy->K;
    if (D)
        *D = cy->D;
    if (ptr)
        *ptr = cy->ptr;
    return cy->queue[which];
}

void sola_cycle_set_queue(sola_cycle *cy, int which, const float *keys, const float *video,
                          int ptr)
{
    which = which ? 1 : 0;
    memcpy(cy->queue[which], keys, (size_t)cy->K * cy->D * sizeof(float));
    memcpy(cy->qvid[which], video, (size_t)cy->K * sizeof(float));
    cy->ptr = ptr >= 0 && ptr < cy->K ? ptr : 0;
}

const sola_model *sola_cycle_momentum(const sola_cycle *cy)
{
    return cy->mk;
}
