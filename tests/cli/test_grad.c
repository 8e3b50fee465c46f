/* test_grad.c -- the sola objective's gradients.
 *
 * 1. Finite differences (central, ggml test-grad0 style, absolute + relative
 *    tolerance) of every backward: linear, conv as im2col + linear with k > 1,
 *    dilation and padding, relu, normalize, the cosine/clamp/BCE loss, and the whole
 *    step including alpha and the head.
 * 2. The trimmed path (only the rows the loss reads) equals the whole-window path.
 * 3. Loss and every gradient against PyTorch (float64) fixtures from
 *    tests/ref/make_train_fixtures.py, through the library and through `sola grad`.
 * 4. Bad configurations and inputs are refused with messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "model.h"
#include "npy.h"
#include "rng.h"
#include "safetensors.h"
#include "sola_layers.h"
#include "sola_loss.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------- */

static void fill(float *x, size_t n, double scale, sola_rng *r)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * sola_rng_normal(r));
}

static float *falloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

typedef double (*objective_fn)(void *ctx);

/* Compares ana[i] with the central difference of f in x[i] for every i (or a spread
 * sample of at most 60); fails naming `what` when |num - ana| > atol + rtol |num|. */
static void check_fd(const char *what, float *x, size_t n, const float *ana, objective_fn f,
                     void *ctx, float eps, double atol, double rtol)
{
    size_t stride = n > 60 ? n / 60 : 1;
    double worst = 0;
    for (size_t i = 0; i < n; i += stride) {
        float x0 = x[i];
        float xp = x0 + eps, xm = x0 - eps;
        x[i] = xp;
        double fp = f(ctx);
        x[i] = xm;
        double fm = f(ctx);
        x[i] = x0;
        double num = (fp - fm) / ((double)xp - (double)xm);
        double err = fabs(num - ana[i]);
        double tol = atol + rtol * fabs(num);
        if (err / tol > worst)
            worst = err / tol;
        ck_assert_msg(err <= tol, "%s[%zu]: analytic %.8g, finite difference %.8g (err %.3g)",
                      what, i, (double)ana[i], num, err);
    }
    (void)worst;
}

/* sum out . R in double: the scalar whose gradient w.r.t. out is R */
static double dot_d(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* ---- linear / conv -------------------------------------------------------------- */

typedef struct {
    int R, IC, OC, T, k, d; /* conv: output rows R read input rows of a T-row input */
    int *src;
    float *x, *col, *w, *b, *out, *probe;
} convt;

static double conv_obj(void *p)
{
    convt *t = p;
    sola_im2col(t->col, t->x, t->src, t->R, t->IC, t->k);
    sola_linear_forward(t->out, t->col, t->w, t->b, t->R, t->IC * t->k, t->OC);
    return dot_d(t->out, t->probe, (size_t)t->R * t->OC);
}

/* A conv of kernel k, dilation d over a T-row input, evaluated at the given output
 * positions (possibly a subset, as the trimmed training path does). */
static void run_conv_check(int T, int IC, int OC, int k, int d, const int *pos, int R)
{
    sola_rng rng;
    sola_rng_seed(&rng, 42 + k * 10 + d);
    convt t = {.R = R, .IC = IC, .OC = OC, .T = T, .k = k, .d = d};
    t.src = malloc((size_t)R * k * sizeof *t.src);
    for (int r = 0; r < R; r++)
        for (int j = 0; j < k; j++) {
            int p = pos[r] + (j - (k - 1) / 2) * d;
            t.src[r * k + j] = p >= 0 && p < T ? p : -1;
        }
    t.x = falloc((size_t)T * IC);
    t.col = falloc((size_t)R * IC * k);
    t.w = falloc((size_t)OC * IC * k);
    t.b = falloc(OC);
    t.out = falloc((size_t)R * OC);
    t.probe = falloc((size_t)R * OC);
    fill(t.x, (size_t)T * IC, 1.0, &rng);
    fill(t.w, (size_t)OC * IC * k, 0.5, &rng);
    fill(t.b, OC, 0.5, &rng);
    fill(t.probe, (size_t)R * OC, 1.0, &rng);

    /* forward = PyTorch Conv1d by its definition, zero padding d*(k-1)/2 */
    conv_obj(&t);
    for (int r = 0; r < R; r++)
        for (int o = 0; o < OC; o++) {
            double s = t.b[o];
            for (int c = 0; c < IC; c++)
                for (int j = 0; j < k; j++) {
                    int p = pos[r] - d * (k - 1) / 2 + j * d;
                    if (p >= 0 && p < T)
                        s += (double)t.w[((size_t)o * IC + c) * k + j] * t.x[(size_t)p * IC + c];
                }
            ck_assert_msg(fabs(s - t.out[(size_t)r * OC + o]) < 1e-4,
                          "conv k=%d d=%d row %d out %d: %g vs direct %g", k, d, r, o,
                          (double)t.out[(size_t)r * OC + o], s);
        }

    float *dcol = falloc((size_t)R * IC * k), *dx = falloc((size_t)T * IC);
    float *dw = falloc((size_t)OC * IC * k), *db = falloc(OC);
    sola_linear_backward(dcol, dw, db, t.probe, t.col, t.w, R, IC * k, OC);
    sola_col2im_add(dx, dcol, t.src, R, IC, k);
    check_fd("conv d input", t.x, (size_t)T * IC, dx, conv_obj, &t, 1e-2f, 1e-3, 1e-3);
    check_fd("conv d weight", t.w, (size_t)OC * IC * k, dw, conv_obj, &t, 1e-2f, 1e-3, 1e-3);
    check_fd("conv d bias", t.b, OC, db, conv_obj, &t, 1e-2f, 1e-3, 1e-3);
    free(dcol), free(dx), free(dw), free(db);
    free(t.src), free(t.x), free(t.col), free(t.w), free(t.b), free(t.out), free(t.probe);
}

START_TEST(fd_linear)
{
    int all[5] = {0, 1, 2, 3, 4};
    run_conv_check(5, 7, 4, 1, 1, all, 5); /* k = 1: a Linear layer */
}
END_TEST

START_TEST(fd_conv_kernel_dilation_padding)
{
    int all[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
    run_conv_check(9, 5, 3, 3, 2, all, 9);
    run_conv_check(9, 4, 3, 5, 1, all, 9);
    int some[3] = {0, 4, 8}; /* rows of a trimmed path; taps fall into the padding */
    run_conv_check(9, 4, 3, 5, 2, some, 3);
}
END_TEST

/* ---- relu ----------------------------------------------------------------------- */

typedef struct {
    float *x, *y, *probe;
    size_t n;
} relut;

static double relu_obj(void *p)
{
    relut *t = p;
    memcpy(t->y, t->x, t->n * sizeof *t->y);
    sola_relu_forward(t->y, t->n);
    return dot_d(t->y, t->probe, t->n);
}

START_TEST(fd_relu)
{
    sola_rng rng;
    sola_rng_seed(&rng, 3);
    relut t = {.n = 40};
    t.x = falloc(t.n), t.y = falloc(t.n), t.probe = falloc(t.n);
    fill(t.probe, t.n, 1.0, &rng);
    for (size_t i = 0; i < t.n; i++) { /* away from the kink */
        double v = sola_rng_normal(&rng);
        t.x[i] = (float)(v + (v < 0 ? -0.1 : 0.1));
    }
    relu_obj(&t);
    float *dx = falloc(t.n);
    sola_relu_backward(dx, t.probe, t.y, t.n);
    check_fd("relu", t.x, t.n, dx, relu_obj, &t, 1e-2f, 1e-4, 1e-3);
    /* in place, as the trainer calls it */
    memcpy(dx, t.probe, t.n * sizeof *dx);
    sola_relu_backward(dx, dx, t.y, t.n);
    for (size_t i = 0; i < t.n; i++)
        ck_assert_float_eq(dx[i], t.x[i] > 0 ? t.probe[i] : 0.0f);
    free(t.x), free(t.y), free(t.probe), free(dx);
}
END_TEST

/* ---- normalize ------------------------------------------------------------------ */

typedef struct {
    float *r, *z, *n, *probe;
    int R, C;
    float eps;
} normt;

static double norm_obj(void *p)
{
    normt *t = p;
    sola_normalize_forward(t->z, t->n, t->r, t->R, t->C, t->eps);
    return dot_d(t->z, t->probe, (size_t)t->R * t->C);
}

START_TEST(fd_normalize)
{
    sola_rng rng;
    sola_rng_seed(&rng, 4);
    normt t = {.R = 4, .C = 6, .eps = 0.5f};
    size_t n = (size_t)t.R * t.C;
    t.r = falloc(n), t.z = falloc(n), t.n = falloc(t.R), t.probe = falloc(n);
    fill(t.r, n, 1.0, &rng);
    fill(t.probe, n, 1.0, &rng);
    for (int c = 0; c < t.C; c++) /* row 3 below eps: divided by eps, not its norm */
        t.r[3 * t.C + c] *= 0.05f;
    norm_obj(&t);
    ck_assert_float_lt(t.n[3], 0.4f);
    for (int i = 0; i < 3; i++)
        ck_assert_double_eq_tol(dot_d(t.z + i * t.C, t.z + i * t.C, t.C), 1.0, 1e-6);
    float *dr = falloc(n);
    sola_normalize_backward(dr, t.probe, t.z, t.n, t.R, t.C, t.eps);
    check_fd("normalize", t.r, n, dr, norm_obj, &t, 1e-3f, 1e-3, 1e-3);
    free(t.r), free(t.z), free(t.n), free(t.probe), free(dr);
}
END_TEST

/* ---- cosine / clamp / BCE ------------------------------------------------------- */

typedef struct {
    float *z, *g;
    double *cache, *target;
    int B, N, C;
} simt;

static double sim_obj(void *p)
{
    simt *t = p;
    return sola_simbce_forward(t->cache, t->z, t->g, t->target, t->B, t->N, t->C,
                               1.0 / (t->B * t->N * t->N));
}

START_TEST(fd_cosine_bce)
{
    sola_rng rng;
    sola_rng_seed(&rng, 5);
    simt t = {.B = 2, .N = 4, .C = 6};
    size_t n = (size_t)t.B * t.N * t.C;
    t.z = falloc(n), t.g = falloc(n);
    t.cache = calloc((size_t)t.B * t.N * t.N * SOLA_SIMBCE_CACHE, sizeof *t.cache);
    t.target = calloc((size_t)t.N * t.N, sizeof *t.target);
    sola_simbce_target(t.target, t.N, 16.0);
    ck_assert_double_eq_tol(t.target[1], 1.0 / (1.0 + exp(-16.0)), 1e-15);
    ck_assert_double_eq_tol(t.target[2], 1.0 / (1.0 + exp(-4.0)), 1e-15);
    ck_assert_double_eq(t.target[5], 1.0);
    fill(t.z, n, 1.0, &rng);
    fill(t.g, n, 1.0, &rng);
    double l = sim_obj(&t);
    ck_assert(l > 0 && isfinite(l));
    float *dg = falloc(n);
    sola_simbce_backward(dg, t.cache, t.z, t.g, t.B, t.N, t.C);
    check_fd("cosine-bce d g", t.g, n, dg, sim_obj, &t, 1e-3f, 1e-4, 2e-3);

    /* g_j = -z_i: c = -1, p clamps to 1e-5, and the clamp passes no gradient */
    for (int c = 0; c < t.C; c++)
        t.g[c] = -t.z[c]; /* b 0, j 0 against i 0 */
    sim_obj(&t);
    ck_assert_double_eq(t.cache[3], 0.0); /* (b0, i0, j0) dloss/dc */
    ck_assert_double_ne(t.cache[(1 * t.N + 0) * SOLA_SIMBCE_CACHE + 3], 0.0);
    free(t.z), free(t.g), free(t.cache), free(t.target), free(dg);
}
END_TEST

/* ---- the whole step ------------------------------------------------------------- */

static sola_model *small_model(int C, int H, int k1, int k2, int d1, int d2, int P,
                               uint64_t seed)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(C, H, k1, k2, P, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    m->d1 = d1;
    m->d2 = d2;
    sola_model_init(m, seed);
    m->alpha[0] = 0.6f; /* non-zero: otherwise the module gets no gradient */
    return m;
}

static float *random_windows(int B, int W, int C, uint64_t seed)
{
    sola_rng rng;
    sola_rng_seed(&rng, seed);
    float *x = falloc((size_t)B * W * C);
    for (size_t i = 0; i < (size_t)B * W * C; i++)
        x[i] = (float)fabs(sola_rng_normal(&rng) + 0.5);
    return x;
}

typedef struct {
    sola_trainctx *c;
    sola_model *m;
    const float *x;
    int B;
} stept;

static double step_obj(void *p)
{
    stept *t = p;
    float l;
    sola_err e = {0};
    ck_assert_int_eq(sola_loss(t->c, t->m, t->x, t->B, &l, &e), 0);
    return l;
}

START_TEST(fd_whole_step_every_parameter)
{
    /* k1 3 dilated, k2 3, kept rows touching the padding, a small head */
    sola_model *m = small_model(6, 5, 3, 3, 2, 1, 4, 11);
    sola_train_cfg cfg = {.W = 9, .N = 3, .start = 0, .step = 4, .P = 4, .K = 4.0f};
    sola_err e = {0};
    sola_trainctx *c = sola_trainctx_new(m, &cfg, 2, &e);
    ck_assert_msg(c != NULL, "%s", e.msg);
    float *x = random_windows(2, cfg.W, m->C, 12);
    float *grads = falloc(m->nparams), loss;
    /* sg(z) is held at its value here, so that the loss's derivative is the gradient */
    sola_trainctx_freeze_sg(c, 1);
    ck_assert_int_eq(sola_loss_grad(c, m, x, 2, &loss, grads, &e), 0);
    stept t = {c, m, x, 2};
    ck_assert_double_eq_tol(step_obj(&t), loss, 1e-7);
    sola_layout l;
    sola_model_layout(m->C, m->H, m->k1, m->k2, m->P, &l);
    const struct {
        const char *name;
        size_t off, end;
    } ts[] = {
        {"w0", l.w0, l.b0},     {"b0", l.b0, l.w2},       {"w2", l.w2, l.b2},
        {"b2", l.b2, l.w4},     {"w4", l.w4, l.b4},       {"b4", l.b4, l.alpha},
        {"alpha", l.alpha, l.hw0}, {"hw0", l.hw0, l.hb0}, {"hb0", l.hb0, l.hw2},
        {"hw2", l.hw2, l.hb2},  {"hb2", l.hb2, l.total},
    };
    /* float loss ~0.7 with eps 1e-2: rounding noise ~3e-6 in each difference */
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        check_fd(ts[i].name, m->params + ts[i].off, ts[i].end - ts[i].off, grads + ts[i].off,
                 step_obj, &t, 1e-3f, 2e-5, 2e-2);
    /* and without the freeze the module's gradient is NOT the loss's derivative (the
     * check above can fail) */
    sola_trainctx_freeze_sg(c, 0);
    float *g2 = falloc(m->nparams), l2;
    ck_assert_int_eq(sola_loss_grad(c, m, x, 2, &l2, g2, &e), 0);
    ck_assert_double_lt(tu_max_rel_err(g2, grads, m->nparams), 1e-6);
    float w = m->w0[18];
    m->w0[18] = w + 1e-3f;
    double lp = step_obj(&t);
    m->w0[18] = w - 1e-3f;
    double lm = step_obj(&t);
    m->w0[18] = w;
    ck_assert_double_gt(fabs((lp - lm) / 2e-3 - grads[l.w0 + 18]), 1e-3);
    free(g2);
    free(x), free(grads);
    sola_trainctx_free(c);
    sola_model_free(m);
}
END_TEST

/* ---- trimmed == full ------------------------------------------------------------ */

static void check_trimmed_equals_full(int k1, int k2, int d1, int d2, const sola_train_cfg *cfg)
{
    sola_model *m = small_model(16, 8, k1, k2, d1, d2, 12, 21);
    sola_err e = {0};
    int B = 3;
    sola_trainctx *c = sola_trainctx_new(m, cfg, B, &e);
    ck_assert_msg(c != NULL, "%s", e.msg);
    float *x = random_windows(B, cfg->W, m->C, 22);
    float *g1 = falloc(m->nparams), *g2 = falloc(m->nparams), l1, l2;
    ck_assert_int_eq(sola_loss_grad(c, m, x, B, &l1, g1, &e), 0);
    double f1 = sola_loss_grad_flops(c, B);
    sola_trainctx_set_full(c, 1);
    ck_assert_int_eq(sola_loss_grad(c, m, x, B, &l2, g2, &e), 0);
    double f2 = sola_loss_grad_flops(c, B);
    ck_assert_msg(fabs(l1 - l2) <= 1e-6 * fabs(l2), "loss trimmed %.9g full %.9g", l1, l2);
    double err = tu_max_rel_err(g1, g2, m->nparams);
    ck_assert_msg(err < 1e-5, "k1=%d k2=%d: gradients differ, max rel err %g", k1, k2, err);
    ck_assert(f1 < f2);
    /* and back: a context switches paths as often as asked */
    sola_trainctx_set_full(c, 0);
    ck_assert_int_eq(sola_loss_grad(c, m, x, B, &l2, g2, &e), 0);
    ck_assert_float_eq(l1, l2);
    free(x), free(g1), free(g2);
    sola_trainctx_free(c);
    sola_model_free(m);
}

START_TEST(trimmed_equals_full)
{
    sola_train_cfg cfg;
    sola_train_cfg_default(&cfg);
    check_trimmed_equals_full(5, 1, 1, 1, &cfg);
    check_trimmed_equals_full(5, 3, 2, 2, &cfg);
    sola_train_cfg edge = {.W = 12, .N = 4, .start = 0, .step = 3, .P = 12, .K = 16.0f};
    check_trimmed_equals_full(3, 5, 1, 3, &edge);
    check_trimmed_equals_full(1, 1, 1, 1, &edge);
}
END_TEST

START_TEST(smaller_batch_than_workspace)
{
    sola_model *m = small_model(8, 4, 3, 1, 1, 1, 6, 31);
    sola_train_cfg cfg;
    sola_train_cfg_default(&cfg);
    sola_err e = {0};
    sola_trainctx *big = sola_trainctx_new(m, &cfg, 5, &e), *one = sola_trainctx_new(m, &cfg, 2, &e);
    float *x = random_windows(5, cfg.W, m->C, 32);
    float *g1 = falloc(m->nparams), *g2 = falloc(m->nparams), l1, l2;
    ck_assert_int_eq(sola_loss_grad(big, m, x, 2, &l1, g1, &e), 0);
    ck_assert_int_eq(sola_loss_grad(one, m, x, 2, &l2, g2, &e), 0);
    ck_assert_float_eq_tol(l1, l2, 1e-7);
    ck_assert_double_lt(tu_max_rel_err(g1, g2, m->nparams), 1e-6);
    /* grads are overwritten, not accumulated: a second call gives the same */
    ck_assert_int_eq(sola_loss_grad(one, m, x, 2, &l2, g2, &e), 0);
    ck_assert_double_lt(tu_max_rel_err(g1, g2, m->nparams), 1e-6);
    free(x), free(g1), free(g2);
    sola_trainctx_free(big);
    sola_trainctx_free(one);
    sola_model_free(m);
}
END_TEST

START_TEST(same_result_on_one_or_two_threads)
{
    sola_model *m = small_model(256, 12, 5, 3, 1, 2, 20, 51);
    sola_train_cfg cfg;
    sola_train_cfg_default(&cfg);
    sola_err e = {0};
    int B = 80; /* the GEMM library splits products (and AdamW its loop) by thread count */
    sola_trainctx *c = sola_trainctx_new(m, &cfg, B, &e);
    float *x = random_windows(B, cfg.W, m->C, 52);
    float *g1 = falloc(m->nparams), *g2 = falloc(m->nparams), l1, l2;
    int nt = sola_gemm_threads();
    sola_gemm_set_threads(1);
    ck_assert_int_eq(sola_loss_grad(c, m, x, B, &l1, g1, &e), 0);
    sola_gemm_set_threads(2);
    ck_assert_int_eq(sola_loss_grad(c, m, x, B, &l2, g2, &e), 0);
    sola_gemm_set_threads(nt);
    ck_assert_float_eq_tol(l1, l2, 1e-7);
    ck_assert_double_lt(tu_max_rel_err(g2, g1, m->nparams), 1e-6);
    free(x), free(g1), free(g2);
    sola_trainctx_free(c);
    sola_model_free(m);
}
END_TEST

/* ---- against PyTorch ------------------------------------------------------------ */

static const char *const PNAMES[11] = {
    "conv_network.0.weight", "conv_network.0.bias", "conv_network.2.weight",
    "conv_network.2.bias",   "conv_network.4.weight", "conv_network.4.bias",
    "alpha",                 "dissim_head.network.0.weight", "dissim_head.network.0.bias",
    "dissim_head.network.2.weight", "dissim_head.network.2.bias",
};

/* Offsets of the 11 parameters in m->params order, plus the end. */
static void offsets(const sola_model *m, size_t off[12])
{
    sola_layout l;
    sola_model_layout(m->C, m->H, m->k1, m->k2, m->P, &l);
    size_t o[12] = {l.w0, l.b0, l.w2, l.b2, l.w4, l.b4, l.alpha, l.hw0, l.hb0, l.hw2, l.hb2,
                    l.total};
    memcpy(off, o, sizeof o);
}

/* Compares a gradient buffer (m->params layout) with a safetensors file of expected
 * gradients under the PyTorch names; prints the max errors llm.c style. */
static void compare_grads(const char *label, const sola_model *m, const float *grads,
                          const char *expected_path, double loss, const sola_st_file *f)
{
    size_t off[12];
    offsets(m, off);
    const char *want = sola_st_meta(f, "loss");
    ck_assert_ptr_nonnull(want);
    double wl = strtod(want, NULL);
    ck_assert_msg(fabs(loss - wl) <= 1e-4 * fabs(wl), "%s: loss %.9g, PyTorch %.9g", label,
                  loss, wl);
    double worst = 0;
    for (int i = 0; i < 11; i++) {
        const sola_st_tensor *t = sola_st_find(f, PNAMES[i]);
        ck_assert_msg(t != NULL, "%s lacks %s", expected_path, PNAMES[i]);
        size_t n = sola_st_numel(t);
        ck_assert_uint_eq(n, off[i + 1] - off[i]);
        float *ref = falloc(n);
        sola_err e = {0};
        ck_assert_int_eq(sola_st_to_f32(t, ref, &e), 0);
        double err = tu_max_rel_err(grads + off[i], ref, n);
        ck_assert_msg(err < 1e-4, "%s: gradient of %s off by max rel err %g", label, PNAMES[i],
                      err);
        if (err > worst)
            worst = err;
        free(ref);
    }
    printf("%s: loss %.9g (PyTorch %.9g), worst gradient max rel err %.3g\n", label, loss, wl,
           worst);
}

typedef struct {
    char name[64];
    int W, N, start, step;
    double K;
} fixture_case;

static int read_cases(fixture_case *cs, int max)
{
    char *p = tu_path("tests/data/train_ref/cases.txt");
    FILE *f = fopen(p, "r");
    ck_assert_msg(f != NULL, "missing %s", p);
    int n = 0;
    while (n < max && fscanf(f, "%63s %d %d %d %d %lf", cs[n].name, &cs[n].W, &cs[n].N,
                             &cs[n].start, &cs[n].step, &cs[n].K) == 6)
        n++;
    fclose(f);
    free(p);
    ck_assert_int_ge(n, 2);
    return n;
}

static char *case_path(const char *name, const char *suffix)
{
    char rel[1024];
    snprintf(rel, sizeof rel, "tests/data/train_ref/%.200s%.64s", name, suffix);
    return tu_path(rel);
}

START_TEST(matches_pytorch)
{
    fixture_case cs[8];
    int n = read_cases(cs, 8);
    for (int k = 0; k < n; k++) {
        char *mp = case_path(cs[k].name, ".safetensors");
        char *wp = case_path(cs[k].name, "_windows.npy");
        char *gp = case_path(cs[k].name, "_grads.safetensors");
        sola_err e = {0};
        sola_model *m = sola_model_load(mp, &e);
        ck_assert_msg(m != NULL, "%s", e.msg);
        sola_array w = {0};
        ck_assert_msg(sola_npy_load(wp, 0, &w, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(w.ndim, 3);
        sola_st_file f;
        ck_assert_msg(sola_st_open(gp, &f, &e) == 0, "%s", e.msg);
        sola_train_cfg cfg = {.W = cs[k].W, .N = cs[k].N, .start = cs[k].start,
                              .step = cs[k].step, .P = m->P, .K = (float)cs[k].K};
        ck_assert_int_eq((int)w.shape[1], cfg.W);
        int B = (int)w.shape[0];
        sola_trainctx *c = sola_trainctx_new(m, &cfg, B, &e);
        ck_assert_msg(c != NULL, "%s", e.msg);
        float *g = falloc(m->nparams), loss;
        for (int full = 0; full < 2; full++) {
            char label[160];
            snprintf(label, sizeof label, "%.63s (%s path)", cs[k].name, full ? "full" : "trimmed");
            sola_trainctx_set_full(c, full);
            ck_assert_msg(sola_loss_grad(c, m, w.data, B, &loss, g, &e) == 0, "%s", e.msg);
            compare_grads(label, m, g, gp, loss, &f);
            float l2;
            ck_assert_int_eq(sola_loss(c, m, w.data, B, &l2, &e), 0);
            ck_assert_float_eq(l2, loss);
        }
        free(g);
        sola_trainctx_free(c);
        sola_st_close(&f);
        sola_array_free(&w);
        sola_model_free(m);
        free(mp), free(wp), free(gp);
    }
}
END_TEST

START_TEST(cli_grad_matches_pytorch)
{
    fixture_case cs[8];
    int n = read_cases(cs, 8);
    char *dir = tu_tmpdir();
    for (int k = 0; k < n; k++) {
        char *mp = case_path(cs[k].name, ".safetensors");
        char *wp = case_path(cs[k].name, "_windows.npy");
        char *gp = case_path(cs[k].name, "_grads.safetensors");
        char out[4096], txt[4096];
        snprintf(out, sizeof out, "%s/%s.safetensors", dir, cs[k].name);
        snprintf(txt, sizeof txt, "%s/%s.txt", dir, cs[k].name);
        int rc = tu_system("'%s/sola' grad -m '%s' --windows '%s' -o '%s' --keep %d --start %d "
                           "--step %d --K %g > '%s'",
                           tu_bin(), mp, wp, out, cs[k].N, cs[k].start, cs[k].step, cs[k].K, txt);
        ck_assert_int_eq(rc, 0);
        size_t len;
        char *s = tu_read(txt, &len);
        ck_assert_ptr_nonnull(s);
        double loss = strtod(s, NULL);
        free(s);
        sola_err e = {0};
        sola_model *m = sola_model_load(mp, &e);
        ck_assert_msg(m != NULL, "%s", e.msg);
        sola_st_file got, want;
        ck_assert_msg(sola_st_open(out, &got, &e) == 0, "%s", e.msg);
        ck_assert_msg(sola_st_open(gp, &want, &e) == 0, "%s", e.msg);
        /* gather the written tensors into a params-layout buffer, checking shapes */
        size_t off[12];
        offsets(m, off);
        float *g = falloc(m->nparams);
        for (int i = 0; i < 11; i++) {
            const sola_st_tensor *t = sola_st_find(&got, PNAMES[i]);
            const sola_st_tensor *r = sola_st_find(&want, PNAMES[i]);
            ck_assert_msg(t != NULL, "sola grad wrote no %s", PNAMES[i]);
            ck_assert_int_eq(t->ndim, r->ndim);
            for (int d = 0; d < t->ndim; d++)
                ck_assert_int_eq(t->shape[d], r->shape[d]);
            ck_assert_int_eq(sola_st_to_f32(t, g + off[i], &e), 0);
        }
        compare_grads("sola grad", m, g, gp, loss, &want);
        free(g);
        sola_st_close(&got);
        sola_st_close(&want);
        sola_model_free(m);
        free(mp), free(wp), free(gp);
    }
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(cli_grad_refuses_bad_input)
{
    char *dir = tu_tmpdir();
    char *mp = case_path("k5k1", ".safetensors"), *wp = case_path("k5k1", "_windows.npy");
    char nohead[4096], wrongc[4096], err[4096];
    snprintf(nohead, sizeof nohead, "%s/nohead.safetensors", dir);
    snprintf(wrongc, sizeof wrongc, "%s/wrongc.npy", dir);
    snprintf(err, sizeof err, "%s/err.txt", dir);
    sola_err e = {0};
    sola_model *m = sola_model_new(32, 16, 5, 1, 0, &e);
    sola_model_init(m, 1);
    ck_assert_int_eq(sola_model_save(m, nohead, 1, &e), 0);
    sola_model_free(m);
    float zeros[2 * 23 * 8] = {0};
    int64_t shape[3] = {2, 23, 8};
    ck_assert_int_eq(sola_npy_save(wrongc, zeros, 3, shape, &e), 0);
    const char *sola = tu_bin();

    /* usage errors: 2 */
    ck_assert_int_eq(tu_system("'%s/sola' grad --windows '%s' 2>/dev/null", sola, wp), 2);
    ck_assert_int_eq(tu_system("'%s/sola' grad -m '%s' 2>/dev/null", sola, mp), 2);
    ck_assert_int_eq(tu_system("'%s/sola' grad -m '%s' --windows '%s' --keep 0 2>/dev/null",
                               sola, mp, wp), 2);
    /* a model without a head and no --init-head: 1, naming the file and the fix */
    ck_assert_int_eq(tu_system("'%s/sola' grad -m '%s' --windows '%s' >/dev/null 2>'%s'", sola,
                               nohead, wp, err), 1);
    size_t len;
    char *msg = tu_read(err, &len);
    ck_assert_ptr_nonnull(strstr(msg, "nohead.safetensors"));
    ck_assert_ptr_nonnull(strstr(msg, "--init-head"));
    free(msg);
    ck_assert_int_eq(tu_system("'%s/sola' grad -m '%s' --windows '%s' --init-head 3 --head-dim "
                               "8 >/dev/null 2>&1", sola, nohead, wp), 0);
    /* channels that do not match the model */
    ck_assert_int_eq(tu_system("'%s/sola' grad -m '%s' --windows '%s' >/dev/null 2>'%s'", sola, mp,
                               wrongc, err), 1);
    msg = tu_read(err, &len);
    ck_assert_ptr_nonnull(strstr(msg, "wrongc.npy"));
    free(msg);
    /* kept positions beyond the window */
    ck_assert_int_eq(tu_system("'%s/sola' grad -m '%s' --windows '%s' --keep 12 >/dev/null "
                               "2>'%s'", sola, mp, wp, err), 1);
    msg = tu_read(err, &len);
    ck_assert_ptr_nonnull(strstr(msg, "W=23"));
    free(msg);
    free(mp), free(wp);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(library_refuses_bad_config)
{
    sola_err e = {0};
    sola_train_cfg cfg;
    sola_train_cfg_default(&cfg);
    sola_model *m = small_model(8, 4, 3, 1, 1, 1, 0, 41);
    ck_assert_ptr_null(sola_trainctx_new(m, &cfg, 4, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "head"));
    ck_assert_int_eq(sola_model_add_head(m, 6, 1, &e), 0);
    cfg.W = 18; /* positions 4..18 do not fit */
    ck_assert_ptr_null(sola_trainctx_new(m, &cfg, 4, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "W=18"));
    sola_train_cfg_default(&cfg);
    cfg.step = 0;
    ck_assert_int_eq(sola_train_cfg_check(&cfg, &e), SOLA_EINVAL);
    sola_train_cfg_default(&cfg);
    ck_assert_ptr_null(sola_trainctx_new(m, &cfg, 0, &e));

    sola_trainctx *c = sola_trainctx_new(m, &cfg, 2, &e);
    ck_assert_ptr_nonnull(c);
    float *x = random_windows(3, cfg.W, m->C, 42), *g = falloc(m->nparams), l;
    ck_assert_int_eq(sola_loss_grad(c, m, x, 3, &l, g, &e), SOLA_EINVAL); /* B > workspace */
    x[(size_t)4 * m->C + 1] = NAN; /* row 4: a kept position */
    ck_assert_int_eq(sola_loss_grad(c, m, x, 2, &l, g, &e), SOLA_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "NaN"));
    sola_model *other = small_model(8, 4, 5, 1, 1, 1, 6, 43); /* different k1 */
    ck_assert_int_eq(sola_loss_grad(c, other, x, 2, &l, g, &e), SOLA_ESHAPE);
    sola_model_free(other);
    free(x), free(g);
    sola_trainctx_free(c);
    sola_trainctx_free(NULL);
    sola_model_free(m);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("grad");
    TCase *t = tcase_create("layers");
    tcase_add_test(t, fd_linear);
    tcase_add_test(t, fd_conv_kernel_dilation_padding);
    tcase_add_test(t, fd_relu);
    tcase_add_test(t, fd_normalize);
    tcase_add_test(t, fd_cosine_bce);
    suite_add_tcase(s, t);
    t = tcase_create("step");
    tcase_add_test(t, fd_whole_step_every_parameter);
    tcase_add_test(t, trimmed_equals_full);
    tcase_add_test(t, smaller_batch_than_workspace);
    tcase_add_test(t, same_result_on_one_or_two_threads);
    tcase_add_test(t, library_refuses_bad_config);
    suite_add_tcase(s, t);
    t = tcase_create("pytorch");
    tcase_add_test(t, matches_pytorch);
    tcase_add_test(t, cli_grad_matches_pytorch);
    tcase_add_test(t, cli_grad_refuses_bad_input);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
