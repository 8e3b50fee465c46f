/* sola_loss.c -- the `sola` objective's step: forward, loss, backward (sola_loss.h).
 *
 * A batch is computed layer by layer over all windows at once, so every layer is one
 * GEMM with B * rows-per-window rows. Which rows a layer computes is a per-window
 * "plan":
 *   O  positions where conv 2, conv 4 and the residual are computed
 *      (the N kept positions, or all W on the full path),
 *   S  positions where conv 0 is computed: the rows conv 2 reads at O
 *      (= O when k2 == 1),
 * and gather tables (src0, src2) that turn each conv into im2col + Linear with the
 * PyTorch weight as is (sola_layers.h). Zero padding at the window's ends is a -1 in
 * a table. The plan is repeated for every window of the batch. */
#include "sola_loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "sola_layers.h"

struct sola_trainctx {
    sola_train_cfg cfg;
    int C, H, k1, k2, d1, d2, P; /* model shape the context serves */
    int Bmax;
    int full;    /* requested path */
    int module_only; /* made by sola_trainctx_new_module: no head, P ignored */
    int planned; /* path the plan and buffers are built for, -1: none */

    int nS, nO;
    int *sel;  /* [N] row within O of kept position i */
    int *src0; /* [Bmax*nS*k1] rows of the windows [B*W, C] read by conv 0, -1 = pad */
    int *src2; /* [Bmax*nO*k2] rows of h1 [B*nS, H] read by conv 2, -1 = pad */
    int alias2; /* conv 2 reads h1 row for row (k2 == 1, S == O): no im2col */
    double *target; /* [N, N] */
    double *cache;  /* [Bmax, N, N, SOLA_SIMBCE_CACHE] loss terms for the backward */
    int freeze;     /* 0 off, 1 capture sg(z) on the next call, 2 use the captured */
    float *zsg;     /* (zsg_rows, C) the captured sg(z) */
    int zsg_rows;

    /* activations; shapes per batch of B windows */
    float *xcol;  /* (B*nS, C*k1) im2col of the windows */
    float *h1;    /* (B*nS, H) relu(conv 0) */
    float *h1col; /* (B*nO, H*k2) im2col of h1, or == h1 */
    float *h2;    /* (B*nO, H) relu(conv 2) */
    float *hh;    /* (B*nO, C) conv 4 = h(x) */
    float *r;     /* (B*N, C) refined at the kept positions */
    float *z;     /* (B*N, C) normalised */
    float *zn;    /* (B*N) |r| */
    float *a1;    /* (B*N, P) relu(head linear 0) */
    float *g;     /* (B*N, C) head output */
    /* gradients of the activations */
    float *dg, *da1, *dz, *dr; /* (B*N, C), (B*N, P), (B*N, C), (B*N, C) */
    float *dhh;                /* (B*nO, C), or == dr when O is the kept rows */
    float *dh2;                /* (B*nO, H) */
    float *dh1col;             /* (B*nO, H*k2), or == dh1 */
    float *dh1;                /* (B*nS, H) */

    double *rowdot; /* (Bmax*N) per-row dr . h for d alpha, summed in a fixed order */

    double phase[SOLA_PHASES]; /* seconds of the last call, see phase_names */
    double tmark;
};

static const char *const phase_names[SOLA_PHASES] = {
    "fwd im2col",        "fwd conv0",      "fwd conv2+conv4", "fwd residual+normalize",
    "fwd head",          "fwd loss",       "bwd loss",        "bwd head",
    "bwd normalize+alpha", "bwd conv4+conv2", "bwd conv0",    "other",
};

const char *sola_trainctx_phase_name(int i)
{
    return i >= 0 && i < SOLA_PHASES ? phase_names[i] : NULL;
}

void sola_trainctx_phases(const sola_trainctx *c, double t[SOLA_PHASES])
{
    memcpy(t, c->phase, sizeof c->phase);
}

/* Charges the time since the previous mark to phase i. */
static void mark(sola_trainctx *c, int i)
{
    double t = sola_now_s();
    c->phase[i] += t - c->tmark;
    c->tmark = t;
}

void sola_train_cfg_default(sola_train_cfg *c)
{
    c->W = 23;
    c->N = 8;
    c->start = 4;
    c->step = 2;
    c->P = 512;
    c->K = 16.0f;
}

int sola_train_cfg_check(const sola_train_cfg *c, sola_err *e)
{
    if (c->W < 1 || c->W > 1 << 20)
        return sola_errf(e, SOLA_EINVAL, "window length W=%d: must be in 1..1048576", c->W);
    if (c->N < 1)
        return sola_errf(e, SOLA_EINVAL, "kept positions N=%d: must be >= 1", c->N);
    if (c->step < 1)
        return sola_errf(e, SOLA_EINVAL, "position step=%d: must be >= 1", c->step);
    if (c->start < 0)
        return sola_errf(e, SOLA_EINVAL, "first position start=%d: must be >= 0", c->start);
    long last = (long)c->start + (long)c->step * (c->N - 1);
    if (last >= c->W)
        return sola_errf(e, SOLA_EINVAL,
                         "kept positions %d, %d, ..., %ld do not fit a window of W=%d "
                         "snippets: lower N, start or step, or raise W",
                         c->start, c->start + c->step, last, c->W);
    if (!(c->K >= 0.0f) || !isfinite(c->K))
        return sola_errf(e, SOLA_EINVAL, "target sharpness K=%g: must be finite and >= 0",
                         (double)c->K);
    return 0;
}

static void free_plan(sola_trainctx *c)
{
    float **bufs[] = {&c->xcol, &c->h1, &c->h2, &c->hh, &c->r, &c->z, &c->zn, &c->a1, &c->g,
                      &c->dg, &c->da1, &c->dz, &c->dr, &c->dh2, &c->dh1};
    if (c->h1col != c->h1)
        free(c->h1col);
    if (c->dhh != c->dr)
        free(c->dhh);
    if (c->dh1col != c->dh1)
        free(c->dh1col);
    c->h1col = c->dhh = c->dh1col = NULL;
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        free(*bufs[i]);
        *bufs[i] = NULL;
    }
    free(c->sel);
    free(c->src0);
    free(c->src2);
    free(c->cache);
    free(c->zsg);
    free(c->rowdot);
    c->zsg = NULL;
    c->rowdot = NULL;
    c->sel = c->src0 = c->src2 = NULL;
    c->cache = NULL;
    c->planned = -1;
}

/* malloc of a*b*elt bytes, overflow-checked; NULL on failure. */
static void *alloc3(size_t a, size_t b, size_t elt)
{
    size_t n;
    if (sola_mul_size(a, b, &n) || sola_mul_size(n, elt, &n))
        return NULL;
    return malloc(n ? n : 1);
}

/* Builds the plan for c->full and allocates the buffers for Bmax windows. */
static int build_plan(sola_trainctx *c, sola_err *e)
{
    const int W = c->cfg.W, N = c->cfg.N, B = c->Bmax;
    int *posO = NULL, *posS = NULL, *mapS = NULL;
    free_plan(c);
    posO = malloc((size_t)W * sizeof *posO);
    posS = malloc((size_t)W * sizeof *posS);
    mapS = malloc((size_t)W * sizeof *mapS);
    c->sel = malloc((size_t)N * sizeof *c->sel);
    if (!posO || !posS || !mapS || !c->sel)
        goto nomem;

    /* O: kept positions (ascending, distinct since step >= 1) or the whole window */
    c->nO = c->full ? W : N;
    for (int o = 0; o < c->nO; o++)
        posO[o] = c->full ? o : c->cfg.start + c->cfg.step * o;
    for (int i = 0; i < N; i++)
        c->sel[i] = c->full ? c->cfg.start + c->cfg.step * i : i;

    /* S: every in-window position conv 2 reads at O */
    for (int p = 0; p < W; p++)
        mapS[p] = -1;
    for (int o = 0; o < c->nO; o++)
        for (int j = 0; j < c->k2; j++) {
            long p = posO[o] + (long)(j - (c->k2 - 1) / 2) * c->d2;
            if (p >= 0 && p < W)
                mapS[p] = 0;
        }
    c->nS = 0;
    for (int p = 0; p < W; p++)
        if (mapS[p] == 0) {
            mapS[p] = c->nS;
            posS[c->nS++] = p;
        }

    c->src0 = alloc3((size_t)B * c->nS, (size_t)c->k1, sizeof *c->src0);
    c->src2 = alloc3((size_t)B * c->nO, (size_t)c->k2, sizeof *c->src2);
    if (!c->src0 || !c->src2)
        goto nomem;
    for (int b = 0; b < B; b++) {
        for (int s = 0; s < c->nS; s++)
            for (int j = 0; j < c->k1; j++) {
                long p = posS[s] + (long)(j - (c->k1 - 1) / 2) * c->d1;
                c->src0[((size_t)b * c->nS + s) * c->k1 + j] =
                    p >= 0 && p < W ? (int)((long)b * W + p) : -1;
            }
        for (int o = 0; o < c->nO; o++)
            for (int j = 0; j < c->k2; j++) {
                long p = posO[o] + (long)(j - (c->k2 - 1) / 2) * c->d2;
                c->src2[((size_t)b * c->nO + o) * c->k2 + j] =
                    p >= 0 && p < W ? (int)((long)b * c->nS + mapS[p]) : -1;
            }
    }
    c->alias2 = c->k2 == 1 && c->nS == c->nO;

    const size_t C = (size_t)c->C, H = (size_t)c->H, P = (size_t)c->P;
    const size_t rS = (size_t)B * c->nS, rO = (size_t)B * c->nO, rN = (size_t)B * N;
    c->cache = alloc3(rN * N, SOLA_SIMBCE_CACHE, sizeof *c->cache);
    c->xcol = alloc3(rS, C * c->k1, sizeof(float));
    c->h1 = alloc3(rS, H, sizeof(float));
    c->dh1 = alloc3(rS, H, sizeof(float));
    c->h2 = alloc3(rO, H, sizeof(float));
    c->dh2 = alloc3(rO, H, sizeof(float));
    c->hh = alloc3(rO, C, sizeof(float));
    c->r = alloc3(rN, C, sizeof(float));
    c->z = alloc3(rN, C, sizeof(float));
    c->zn = alloc3(rN, 1, sizeof(float));
    c->a1 = alloc3(rN, P, sizeof(float));
    c->da1 = alloc3(rN, P, sizeof(float));
    c->g = alloc3(rN, C, sizeof(float));
    c->dg = alloc3(rN, C, sizeof(float));
    c->dz = alloc3(rN, C, sizeof(float));
    c->dr = alloc3(rN, C, sizeof(float));
    c->rowdot = alloc3(rN, 1, sizeof(double));
    if (!c->rowdot || !c->cache || !c->xcol || !c->h1 || !c->dh1 || !c->h2 || !c->dh2 || !c->hh || !c->r ||
        !c->z || !c->zn || !c->a1 || !c->da1 || !c->g || !c->dg || !c->dz || !c->dr)
        goto nomem;
    if (c->alias2) {
        c->h1col = c->h1;
        c->dh1col = c->dh1;
    } else {
        c->h1col = alloc3(rO, H * c->k2, sizeof(float));
        c->dh1col = alloc3(rO, H * c->k2, sizeof(float));
        if (!c->h1col || !c->dh1col)
            goto nomem;
    }
    if (c->full) {
        c->dhh = alloc3(rO, C, sizeof(float));
        if (!c->dhh)
            goto nomem;
    } else {
        c->dhh = c->dr; /* O is the kept rows: dh = tanh(alpha) dr, scaled in place */
    }
    c->planned = c->full;
    free(posO);
    free(posS);
    free(mapS);
    return 0;
nomem:
    free(posO);
    free(posS);
    free(mapS);
    free_plan(c);
    return sola_errf(e, SOLA_ENOMEM,
                     "training workspace: out of memory for a batch of %d windows of "
                     "%d x %d (hidden %d, head %d); lower the batch size",
                     B, W, c->C, c->H, c->P);
}

static sola_trainctx *trainctx_new(const sola_model *m, const sola_train_cfg *cfg, int B,
                                   int module_only, sola_err *e)
{
    sola_trainctx *c = NULL;
    if (!m || !cfg) {
        sola_errf(e, SOLA_EINVAL, "training workspace: no model or config");
        return NULL;
    }
    if (sola_train_cfg_check(cfg, e))
        return NULL;
    if (!module_only && (m->P <= 0 || !m->hw0)) {
        sola_errf(e, SOLA_EINVAL,
                  "the model has no dissimilarity head (dissim_head.*): add one before "
                  "training the sola objective");
        return NULL;
    }
    if (B < 1 || B > 1 << 20) {
        sola_errf(e, SOLA_EINVAL, "batch size %d: must be in 1..1048576", B);
        return NULL;
    }
    size_t rows;
    if (sola_mul_size((size_t)B, (size_t)cfg->W, &rows) || rows > (size_t)1 << 30) {
        sola_errf(e, SOLA_ETOOBIG, "batch of %d windows of %d snippets is too large", B,
                  cfg->W);
        return NULL;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        sola_errf(e, SOLA_ENOMEM, "training workspace: out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    c->C = m->C;
    c->H = m->H;
    c->k1 = m->k1;
    c->k2 = m->k2;
    c->d1 = m->d1 < 1 ? 1 : m->d1;
    c->d2 = m->d2 < 1 ? 1 : m->d2;
    c->P = module_only ? 0 : m->P;
    c->module_only = module_only;
    c->Bmax = B;
    c->planned = -1;
    c->target = malloc((size_t)cfg->N * cfg->N * sizeof *c->target);
    if (!c->target) {
        sola_errf(e, SOLA_ENOMEM, "training workspace: out of memory");
        goto err;
    }
    sola_simbce_target(c->target, cfg->N, cfg->K);
    if (build_plan(c, e))
        goto err;
    return c;
err:
    sola_trainctx_free(c);
    return NULL;
}

sola_trainctx *sola_trainctx_new(const sola_model *m, const sola_train_cfg *cfg, int B,
                                 sola_err *e)
{
    return trainctx_new(m, cfg, B, 0, e);
}

sola_trainctx *sola_trainctx_new_module(const sola_model *m, const sola_train_cfg *cfg, int B,
                                        sola_err *e)
{
    return trainctx_new(m, cfg, B, 1, e);
}

void sola_trainctx_free(sola_trainctx *c)
{
    if (!c)
        return;
    free_plan(c);
    free(c->target);
    free(c);
}

void sola_trainctx_set_full(sola_trainctx *c, int full)
{
    c->full = full ? 1 : 0;
}

void sola_trainctx_freeze_sg(sola_trainctx *c, int on)
{
    c->freeze = on ? 1 : 0;
}

static int check_call(sola_trainctx *c, const sola_model *m, const float *windows, int B,
                      sola_err *e)
{
    if (!c || !m || !windows)
        return sola_errf(e, SOLA_EINVAL, "sola loss: missing context, model or windows");
    if (!c->module_only && (m->P <= 0 || !m->hw0))
        return sola_errf(e, SOLA_EINVAL,
                         "the model has no dissimilarity head (dissim_head.*): add one "
                         "before training the sola objective");
    int d1 = m->d1 < 1 ? 1 : m->d1, d2 = m->d2 < 1 ? 1 : m->d2;
    if (m->C != c->C || m->H != c->H || m->k1 != c->k1 || m->k2 != c->k2 || d1 != c->d1 ||
        d2 != c->d2 || (!c->module_only && m->P != c->P))
        return sola_errf(e, SOLA_ESHAPE,
                         "model shape C=%d H=%d k1=%d k2=%d dilations %d,%d P=%d differs "
                         "from the training workspace's C=%d H=%d k1=%d k2=%d dilations "
                         "%d,%d P=%d",
                         m->C, m->H, m->k1, m->k2, d1, d2, m->P, c->C, c->H, c->k1, c->k2,
                         c->d1, c->d2, c->P);
    if (B < 1 || B > c->Bmax)
        return sola_errf(e, SOLA_EINVAL, "batch of %d windows: the workspace holds 1..%d", B,
                         c->Bmax);
    if (c->planned != c->full)
        return build_plan(c, e);
    return 0;
}

typedef struct {
    sola_trainctx *c;
    const float *x;
    float ta; /* tanh(alpha) */
} rowjob;

/* r = x + tanh(alpha) h for kept rows [r0, r1) of the batch (row = b*N + i) */
static void residual_rows(void *p, size_t r0, size_t r1)
{
    const rowjob *a = p;
    const sola_trainctx *c = a->c;
    const int C = c->C, N = c->cfg.N;
    for (size_t r = r0; r < r1; r++) {
        size_t b = r / N, i = r % N;
        const float *xi = a->x + (b * c->cfg.W + c->cfg.start + (size_t)c->cfg.step * i) * C;
        const float *hi = c->hh + (b * c->nO + c->sel[i]) * C;
        float *ri = c->r + r * C;
        for (int k = 0; k < C; k++)
            ri[k] = xi[k] + a->ta * hi[k];
    }
}

/* rowdot = dr . h per kept row, then dh = tanh(alpha) dr (in place when dhh == dr,
 * else into the row's place among the O rows). */
static void alpha_rows(void *p, size_t r0, size_t r1)
{
    const rowjob *a = p;
    sola_trainctx *c = a->c;
    const int C = c->C, N = c->cfg.N;
    for (size_t r = r0; r < r1; r++) {
        size_t b = r / N, i = r % N;
        float *d = c->dr + r * C;
        const float *h = c->hh + (b * c->nO + c->sel[i]) * C;
        float *dh = c->dhh + (b * c->nO + c->sel[i]) * C;
        float acc[16] = {0};
        int k = 0;
        for (; k + 16 <= C; k += 16)
            for (int l = 0; l < 16; l++)
                acc[l] += d[k + l] * h[k + l];
        double s = 0;
        for (int l = 0; l < 16; l++)
            s += acc[l];
        for (; k < C; k++)
            s += (double)d[k] * h[k];
        c->rowdot[r] = s;
        for (k = 0; k < C; k++)
            dh[k] = a->ta * d[k];
    }
}

/* The module up to refined rows r (B*N, C) at the kept positions; leaves its
 * activations for module_backward. */
static void module_forward(sola_trainctx *c, const sola_model *m, const float *x, int B)
{
    const int C = c->C, H = c->H, N = c->cfg.N;
    const int rS = B * c->nS, rO = B * c->nO, rN = B * N;
    memset(c->phase, 0, sizeof c->phase);
    c->tmark = sola_now_s();
    // x is (B*W, C); conv 0 at the S rows
    sola_im2col(c->xcol, x, c->src0, rS, C, c->k1);
    mark(c, 0);
    sola_linear_forward(c->h1, c->xcol, m->w0, m->b0, rS, C * c->k1, H);
    sola_relu_forward(c->h1, (size_t)rS * H);
    mark(c, 1);
    // conv 2 and conv 4 at the O rows
    if (!c->alias2)
        sola_im2col(c->h1col, c->h1, c->src2, rO, H, c->k2);
    sola_linear_forward(c->h2, c->h1col, m->w2, m->b2, rO, H * c->k2, H);
    sola_relu_forward(c->h2, (size_t)rO * H);
    sola_linear_forward(c->hh, c->h2, m->w4, m->b4, rO, H, C);
    mark(c, 2);
    // refined = x + tanh(alpha) h at the kept rows
    rowjob rj = {c, x, tanhf(m->alpha[0])};
    sola_pass_for((size_t)rN, sola_grain((size_t)C), residual_rows, &rj);
}

/* Forward through module, head and loss; leaves every activation for the backward. */
static double forward(sola_trainctx *c, const sola_model *m, const float *x, int B)
{
    const int C = c->C, P = c->P, N = c->cfg.N;
    const int rN = B * N;
    module_forward(c, m, x, B);
    sola_normalize_forward(c->z, c->zn, c->r, rN, C, 1e-12f);
    mark(c, 3);
    // head
    sola_linear_forward(c->a1, c->z, m->hw0, m->hb0, rN, C, P);
    sola_relu_forward(c->a1, (size_t)rN * P);
    sola_linear_forward(c->g, c->a1, m->hw2, m->hb2, rN, P, C);
    mark(c, 4);
    /* a different batch size (or a rebuilt plan) than at capture: capture again */
    if (c->freeze == 2 && (!c->zsg || c->zsg_rows != rN))
        c->freeze = 1;
    if (c->freeze == 1) {
        free(c->zsg);
        c->zsg_rows = rN;
        c->zsg = malloc((size_t)rN * C * sizeof *c->zsg);
        if (c->zsg) { /* no memory: the loss simply stays the normal one */
            memcpy(c->zsg, c->z, (size_t)rN * C * sizeof *c->zsg);
            c->freeze = 2;
        }
    }
    const float *zsg = c->freeze == 2 && c->zsg ? c->zsg : c->z;
    double loss = sola_simbce_forward(c->cache, zsg, c->g, c->target, B, N, C,
                                      1.0 / ((double)B * N * N));
    mark(c, 5);
    return loss;
}

static void module_backward(sola_trainctx *c, const sola_model *m, int B, float *grads);

static void backward(sola_trainctx *c, const sola_model *m, int B, float *grads)
{
    const int C = c->C, P = c->P, N = c->cfg.N;
    const int rN = B * N;
    float *gr = grads;
#define G(name) (gr + (m->name - m->params))
    sola_simbce_backward(c->dg, c->cache, c->freeze == 2 && c->zsg ? c->zsg : c->z, c->g, B, N,
                         C);
    mark(c, 6);
    // head
    sola_linear_backward(c->da1, G(hw2), G(hb2), c->dg, c->a1, m->hw2, rN, P, C);
    sola_relu_backward(c->da1, c->da1, c->a1, (size_t)rN * P);
    sola_linear_backward(c->dz, G(hw0), G(hb0), c->da1, c->z, m->hw0, rN, C, P);
    mark(c, 7);
    sola_normalize_backward(c->dr, c->dz, c->z, c->zn, rN, C, 1e-12f);
    module_backward(c, m, B, grads);
#undef G
}

/* From c->dr (B*N, C), the module's gradients into grads (m->params layout, module
 * part). c->dr is overwritten (it doubles as dh on the trimmed path). */
static void module_backward(sola_trainctx *c, const sola_model *m, int B, float *grads)
{
    const int C = c->C, H = c->H, N = c->cfg.N;
    const int rS = B * c->nS, rO = B * c->nO, rN = B * N;
    float *gr = grads;
#define G(name) (gr + (m->name - m->params))
    // refined = x + tanh(alpha) h: d alpha = (1 - tanh^2) sum dr . h; dh = tanh(alpha) dr
    const float ta = tanhf(m->alpha[0]);
    if (c->dhh != c->dr)
        memset(c->dhh, 0, (size_t)rO * C * sizeof *c->dhh);
    rowjob rj = {c, NULL, ta};
    sola_pass_for((size_t)rN, sola_grain((size_t)C), alpha_rows, &rj);
    double dot = 0.0;
    for (int r = 0; r < rN; r++)
        dot += c->rowdot[r];
    G(alpha)[0] = (float)((1.0 - (double)ta * ta) * dot);
    mark(c, 8);
    // conv 4, conv 2
    sola_linear_backward(c->dh2, G(w4), G(b4), c->dhh, c->h2, m->w4, rO, H, C);
    sola_relu_backward(c->dh2, c->dh2, c->h2, (size_t)rO * H);
    sola_linear_backward(c->dh1col, G(w2), G(b2), c->dh2, c->h1col, m->w2, rO, H * c->k2, H);
    if (!c->alias2) {
        memset(c->dh1, 0, (size_t)rS * H * sizeof *c->dh1);
        sola_col2im_add(c->dh1, c->dh1col, c->src2, rO, H, c->k2);
    }
    mark(c, 9);
    // conv 0: weights only, the input needs no gradient
    sola_relu_backward(c->dh1, c->dh1, c->h1, (size_t)rS * H);
    sola_linear_backward(NULL, G(w0), G(b0), c->dh1, c->xcol, m->w0, rS, C * c->k1, H);
    mark(c, 10);
#undef G
}

/* The loss of a batch, and its gradients when grads is not NULL. */
static int loss_step(sola_trainctx *c, const sola_model *m, const float *windows, int B,
                     float *loss, float *grads, sola_err *e)
{
    int rc = check_call(c, m, windows, B, e);
    if (rc)
        return rc;
    double l = forward(c, m, windows, B);
    if (!isfinite(l))
        return sola_errf(e, SOLA_EFORMAT,
                         "sola loss is not finite (%g): the windows or the model hold NaN "
                         "or Inf values",
                         l);
    if (grads)
        backward(c, m, B, grads);
    *loss = (float)l;
    return 0;
}

int sola_loss_grad(sola_trainctx *c, const sola_model *m, const float *windows, int B,
                   float *loss, float *grads, sola_err *e)
{
    if (!grads)
        return sola_errf(e, SOLA_EINVAL, "sola_loss_grad: no gradient buffer");
    return loss_step(c, m, windows, B, loss, grads, e);
}

int sola_loss(sola_trainctx *c, const sola_model *m, const float *windows, int B,
              float *loss, sola_err *e)
{
    return loss_step(c, m, windows, B, loss, NULL, e);
}

double sola_loss_grad_flops(const sola_trainctx *c, int B)
{
    const double C = c->C, H = c->H, P = c->P, N = c->cfg.N;
    /* rows of each GEMM on the path the next call will take */
    double nO = c->full ? c->cfg.W : N;
    double nS = c->planned == c->full ? c->nS : nO; /* k2 > 1 widens S; planned knows */
    const double rS = B * nS, rO = B * nO, rN = B * N;
    double f0 = 2 * rS * C * c->k1 * H; /* conv 0: one GEMM each way (no input grad) */
    double f2 = 2 * rO * H * c->k2 * H; /* conv 2: forward, d weight, d input */
    double f4 = 2 * rO * H * C;         /* conv 4 */
    double fh = 2 * rN * C * P;         /* each head linear */
    double fl = 2 * (double)B * N * N * C; /* cosine: forward dots, backward axpys */
    return 2 * f0 + 3 * f2 + 3 * f4 + 6 * fh + 2 * fl;
}

int sola_module_forward(sola_trainctx *c, const sola_model *m, const float *windows, int B,
                        const float **refined, sola_err *e)
{
    int rc = check_call(c, m, windows, B, e);
    if (rc)
        return rc;
    module_forward(c, m, windows, B);
    *refined = c->r;
    return 0;
}

void sola_module_backward(sola_trainctx *c, const sola_model *m, int B, const float *dr,
                          float *grads)
{
    if (dr != c->dr)
        memcpy(c->dr, dr, (size_t)B * c->cfg.N * c->C * sizeof *c->dr);
    module_backward(c, m, B, grads);
}
