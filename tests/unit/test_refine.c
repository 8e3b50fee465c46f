/* test_refine.c -- the forward pass and the TSM against the authors' PyTorch module
 * (fixtures from tests/ref/make_fixtures.py), against a direct double-precision
 * convolution for shapes the fixtures do not cover, and the properties a user relies
 * on: a fresh model is the identity, batches equal separate calls, bad calls refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "model.h"
#include "npy.h"
#include "refine.h"
#include "rng.h"
#include "testutil.h"

#ifndef REF_TOL
#define REF_TOL 1e-5
#endif

typedef struct ref_case {
    char name[32];
    int C, H, k1, k2, d1, d2, nT, T[8];
} ref_case;

static int read_cases(ref_case *c, int max)
{
    char *path = tu_path("tests/data/ref/cases.txt");
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    free(path);
    char line[512];
    int n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        ref_case *r = &c[n];
        int used = 0;
        ck_assert_int_eq(sscanf(line, "%31s %d %d %d %d %d %d%n", r->name, &r->C, &r->H, &r->k1,
                                &r->k2, &r->d1, &r->d2, &used),
                         7);
        r->nT = 0;
        char *p = line + used;
        int t, u;
        while (r->nT < 8 && sscanf(p, "%d%n", &t, &u) == 1) {
            r->T[r->nT++] = t;
            p += u;
        }
        n++;
    }
    fclose(f);
    ck_assert_int_ge(n, 5);
    return n;
}

static sola_model *load_ref_model(const char *name)
{
    char rel[512];
    snprintf(rel, sizeof rel, "tests/data/ref/%.64s.safetensors", name);
    char *p = tu_path(rel);
    sola_err e = {0};
    sola_model *m = sola_model_load(p, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    free(p);
    return m;
}

/* Loads tests/data/ref/NAME_T<T>_WHAT.npy; returns 0 if absent and !required. */
static int load_ref(const char *name, int T, const char *what, sola_array *a, int required)
{
    char rel[512];
    snprintf(rel, sizeof rel, "tests/data/ref/%.64s_T%d_%.16s.npy", name, T, what);
    char *p = tu_path(rel);
    sola_err e = {0};
    int rc = sola_npy_load(p, 0, a, &e);
    free(p);
    if (rc && !required)
        return 0;
    ck_assert_msg(rc == 0, "%s", e.msg);
    return 1;
}

/* rel error of the refinement part alone: (y - x) vs (ref - x). y is dominated by x,
 * so this is the sharper check of the convolutions. */
static double delta_err(const float *y, const float *ref, const float *x, size_t n)
{
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        a[i] = y[i] - x[i];
        b[i] = ref[i] - x[i];
    }
    double r = tu_max_rel_err(a, b, n);
    free(a);
    free(b);
    return r;
}

START_TEST(matches_pytorch_fixtures)
{
    ref_case cs[16];
    int nc = read_cases(cs, 16);
    sola_ws *ws = sola_ws_new();
    int ntsm = 0;
    for (int c = 0; c < nc; c++) {
        sola_model *m = load_ref_model(cs[c].name);
        ck_assert_int_eq(m->C, cs[c].C);
        ck_assert_int_eq(m->k1, cs[c].k1);
        ck_assert_int_eq(m->d1, cs[c].d1);
        ck_assert_int_eq(m->d2, cs[c].d2);
        ck_assert(m->alpha[0] != 0);
        for (int i = 0; i < cs[c].nT; i++) {
            int T = cs[c].T[i];
            sola_array x, y;
            load_ref(cs[c].name, T, "x", &x, 1);
            load_ref(cs[c].name, T, "y", &y, 1);
            ck_assert_int_eq(x.shape[0], T);
            size_t n = (size_t)T * (size_t)m->C;
            float *out = malloc(n * sizeof(float));
            sola_err e = {0};
            ck_assert_int_eq(sola_refine(m, x.data, T, out, ws, &e), 0);
            double err = tu_max_rel_err(out, y.data, n);
            double derr = delta_err(out, y.data, x.data, n);
            ck_assert_msg(err <= REF_TOL && derr <= 10 * REF_TOL,
                          "%s T=%d: rel err %.3g (refinement part %.3g)", cs[c].name, T, err,
                          derr);
            sola_array S, Sraw;
            if (load_ref(cs[c].name, T, "tsm", &S, 0)) {
                ck_assert(load_ref(cs[c].name, T, "tsmraw", &Sraw, 1));
                float *s = malloc((size_t)T * T * sizeof(float));
                ck_assert_int_eq(sola_tsm(out, T, m->C, s, &e), 0);
                err = tu_max_rel_err(s, S.data, (size_t)T * T);
                ck_assert_msg(err <= REF_TOL, "%s T=%d: TSM rel err %.3g", cs[c].name, T, err);
                ck_assert_int_eq(sola_tsm(x.data, T, m->C, s, &e), 0);
                err = tu_max_rel_err(s, Sraw.data, (size_t)T * T);
                ck_assert_msg(err <= REF_TOL, "%s T=%d: raw TSM rel err %.3g", cs[c].name, T,
                              err);
                free(s);
                sola_array_free(&S);
                sola_array_free(&Sraw);
                ntsm++;
            }
            free(out);
            sola_array_free(&x);
            sola_array_free(&y);
        }
        sola_model_free(m);
    }
    ck_assert_int_ge(ntsm, 10);
    sola_ws_free(ws);
}
END_TEST

/* A model stored as F16 refines like PyTorch with the half-rounded weights. */
START_TEST(f16_model_matches_pytorch)
{
    sola_model *m = load_ref_model("f16");
    sola_ws *ws = sola_ws_new();
    int Ts[] = {1, 3, 4, 100};
    for (int i = 0; i < 4; i++) {
        sola_array x, y;
        load_ref("k5k3", Ts[i], "x", &x, 1);
        load_ref("f16", Ts[i], "y", &y, 1);
        size_t n = (size_t)Ts[i] * (size_t)m->C;
        float *out = malloc(n * sizeof(float));
        sola_err e = {0};
        ck_assert_int_eq(sola_refine(m, x.data, Ts[i], out, ws, &e), 0);
        double err = tu_max_rel_err(out, y.data, n);
        ck_assert_msg(err <= REF_TOL, "f16 T=%d: rel err %.3g", Ts[i], err);
        free(out);
        sola_array_free(&x);
        sola_array_free(&y);
    }
    sola_ws_free(ws);
    sola_model_free(m);
}
END_TEST

/* ---- an independent oracle: the convolution written out, in double ---------- */

static void conv_ref(const double *x, int T, int cin, const float *w, const float *b, int cout,
                     int k, int d, int relu, double *y)
{
    int pad = d * (k - 1) / 2;
    for (int t = 0; t < T; t++)
        for (int o = 0; o < cout; o++) {
            double s = b[o];
            for (int j = 0; j < k; j++) {
                int tt = t - pad + j * d;
                if (tt < 0 || tt >= T)
                    continue;
                for (int c = 0; c < cin; c++)
                    s += (double)w[((size_t)o * cin + c) * k + j] * x[(size_t)tt * cin + c];
            }
            y[(size_t)t * cout + o] = relu && s < 0 ? 0 : s;
        }
}

static void refine_ref(const sola_model *m, const float *xf, int T, float *out)
{
    size_t C = (size_t)m->C, H = (size_t)m->H, t = (size_t)T;
    double *x = malloc(t * C * sizeof(double)), *h1 = malloc(t * H * sizeof(double)),
           *h2 = malloc(t * H * sizeof(double)), *h = malloc(t * C * sizeof(double));
    for (size_t i = 0; i < t * C; i++)
        x[i] = xf[i];
    conv_ref(x, T, m->C, m->w0, m->b0, m->H, m->k1, m->d1, 1, h1);
    conv_ref(h1, T, m->H, m->w2, m->b2, m->H, m->k2, m->d2, 1, h2);
    conv_ref(h2, T, m->H, m->w4, m->b4, m->C, 1, 1, 0, h);
    double ta = tanh((double)m->alpha[0]);
    for (size_t i = 0; i < t * C; i++)
        out[i] = (float)(x[i] + ta * h[i]);
    free(x);
    free(h1);
    free(h2);
    free(h);
}

static float *random_x(sola_rng *r, size_t n)
{
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)sola_rng_normal(r);
    return x;
}

static sola_model *random_model(int C, int H, int k1, int k2, int d1, int d2, uint64_t seed)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(C, H, k1, k2, 0, &e);
    ck_assert_ptr_nonnull(m);
    sola_model_init(m, seed);
    m->d1 = d1;
    m->d2 = d2;
    m->alpha[0] = 0.9f;
    ck_assert_int_eq(sola_model_pack(m, &e), 0);
    return m;
}

START_TEST(matches_direct_convolution)
{
    /* kernels, dilations and lengths beyond the fixtures: T below, at and above the
     * receptive field, kernel 7 with dilation 3, k2 = 5 with dilation 2 */
    struct {
        int C, H, k1, k2, d1, d2;
    } shapes[] = {{7, 5, 7, 1, 3, 1}, {9, 6, 3, 5, 1, 2}, {4, 11, 1, 3, 1, 4}, {13, 8, 5, 5, 2, 2}};
    int Ts[] = {1, 2, 3, 9, 19, 40};
    sola_rng r;
    sola_rng_seed(&r, 5);
    sola_ws *ws = sola_ws_new();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        sola_model *m = random_model(shapes[s].C, shapes[s].H, shapes[s].k1, shapes[s].k2,
                                     shapes[s].d1, shapes[s].d2, 100 + s);
        for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++) {
            size_t n = (size_t)Ts[i] * (size_t)m->C;
            float *x = random_x(&r, n), *y = malloc(n * sizeof(float)),
                  *want = malloc(n * sizeof(float));
            sola_err e = {0};
            ck_assert_int_eq(sola_refine(m, x, Ts[i], y, ws, &e), 0);
            refine_ref(m, x, Ts[i], want);
            double err = tu_max_rel_err(y, want, n), derr = delta_err(y, want, x, n);
            ck_assert_msg(err <= REF_TOL && derr <= 10 * REF_TOL,
                          "shape %zu T=%d: rel err %.3g (refinement part %.3g)", s, Ts[i], err,
                          derr);
            free(x);
            free(y);
            free(want);
        }
        sola_model_free(m);
    }
    sola_ws_free(ws);
}
END_TEST

/* Batches: each sequence's output equals its own call to float32 rounding, and each
 * sequence sees its own zero padding (no leakage across the seams). */
START_TEST(batch_equals_separate_calls)
{
    sola_model *m = random_model(24, 16, 5, 3, 2, 1, 11);
    int lens[] = {1, 7, 2, 30, 3, 1, 64, 5};
    int n = 8;
    size_t rows = 0, C = 24;
    for (int i = 0; i < n; i++)
        rows += (size_t)lens[i];
    sola_rng r;
    sola_rng_seed(&r, 9);
    float *x = random_x(&r, rows * C), *yb = malloc(rows * C * sizeof(float)),
          *ys = malloc(rows * C * sizeof(float)), *want = malloc(rows * C * sizeof(float));
    sola_ws *ws = sola_ws_new();
    sola_err e = {0};
    ck_assert_int_eq(sola_refine_batch(m, x, lens, n, yb, ws, &e), 0);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(sola_refine(m, x + off * C, lens[i], ys + off * C, ws, &e), 0);
        refine_ref(m, x + off * C, lens[i], want + off * C);
        size_t k = (size_t)lens[i] * C;
        double eb = tu_max_rel_err(yb + off * C, ys + off * C, k);
        double er = delta_err(yb + off * C, want + off * C, x + off * C, k);
        ck_assert_msg(eb <= 1e-6, "sequence %d (T=%d): batch vs separate rel err %.3g", i,
                      lens[i], eb);
        ck_assert_msg(er <= 10 * REF_TOL, "sequence %d (T=%d): batch vs oracle %.3g", i, lens[i],
                      er);
        off += (size_t)lens[i];
    }
    /* a one-sequence batch is the single call, bit for bit */
    ck_assert_int_eq(sola_refine_batch(m, x, &lens[3], 1, yb, ws, &e), 0);
    ck_assert_int_eq(sola_refine(m, x, lens[3], ys, ws, &e), 0);
    ck_assert_mem_eq(yb, ys, (size_t)lens[3] * C * sizeof(float));
    free(x);
    free(yb);
    free(ys);
    free(want);
    sola_ws_free(ws);
    sola_model_free(m);
}
END_TEST

/* A model packed for long passes only (sola_model_pack_ex with min_rows: the oneDNN
 * build then leaves out its short-pass copy of the weights) still refines short
 * sequences, to the same bits as the model packed for every pass (shapes whose weights
 * get that copy: multiples of 64). */
START_TEST(pack_for_long_passes_gives_same_bits)
{
    sola_model *all = random_model(128, 64, 5, 1, 1, 1, 21);
    sola_err e = {0};
    sola_model *lng = sola_model_clone(all, &e);
    ck_assert_ptr_nonnull(lng);
    ck_assert_int_eq(sola_model_pack_ex(lng, 1000, &e), 0);
    int Ts[] = {1, 3, 4, 16, 31, 32, 33, 100, 250};
    sola_rng r;
    sola_rng_seed(&r, 13);
    sola_ws *ws = sola_ws_new();
    for (int threads = 1; threads <= 2; threads++) {
        sola_gemm_set_threads(threads);
        for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++) {
            size_t n = (size_t)Ts[i] * 128;
            float *x = random_x(&r, n), *ya = malloc(n * sizeof(float)),
                  *yl = malloc(n * sizeof(float));
            ck_assert_int_eq(sola_refine(all, x, Ts[i], ya, ws, &e), 0);
            ck_assert_int_eq(sola_refine(lng, x, Ts[i], yl, ws, &e), 0);
            ck_assert_msg(!memcmp(ya, yl, n * sizeof(float)), "T=%d, %d threads: other bits",
                          Ts[i], threads);
            free(x);
            free(ya);
            free(yl);
        }
    }
    sola_gemm_set_threads(2);
    sola_ws_free(ws);
    sola_model_free(all);
    sola_model_free(lng);
}
END_TEST

START_TEST(fresh_model_is_identity)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(32, 8, 5, 1, 0, &e);
    sola_model_init(m, 1);
    ck_assert_int_eq(sola_model_pack(m, &e), 0);
    sola_rng r;
    sola_rng_seed(&r, 2);
    int T = 50;
    float *x = random_x(&r, (size_t)T * 32), *y = malloc((size_t)T * 32 * sizeof(float));
    x[3] = -0.0f;
    x[4] = 1e-40f; /* subnormal */
    sola_ws *ws = sola_ws_new();
    ck_assert_int_eq(sola_refine(m, x, T, y, ws, &e), 0);
    ck_assert_mem_eq(x, y, (size_t)T * 32 * sizeof(float));
    free(x);
    free(y);
    sola_ws_free(ws);
    sola_model_free(m);
}
END_TEST

START_TEST(bad_calls_refused)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(8, 4, 3, 1, 0, &e);
    sola_model_init(m, 1);
    m->alpha[0] = 1;
    float x[8 * 4] = {0}, y[8 * 4];
    sola_ws *ws = sola_ws_new();
    /* not packed yet */
    ck_assert_int_eq(sola_refine(m, x, 4, y, ws, &e), SOLA_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "pack"));
    ck_assert_int_eq(sola_model_pack(m, &e), 0);
    ck_assert_int_eq(sola_refine(m, x, 0, y, ws, &e), SOLA_ESHAPE);
    int lens[] = {2, 0};
    ck_assert_int_eq(sola_refine_batch(m, x, lens, 2, y, ws, &e), SOLA_ESHAPE);
    ck_assert_ptr_nonnull(strstr(e.msg, "sequence 1"));
    ck_assert_int_eq(sola_refine_batch(m, x, lens, 0, y, ws, &e), SOLA_EINVAL);
    /* a layout whose sequences overlap or run backwards */
    size_t offs[] = {0, 1};
    int lens2[] = {2, 2};
    ck_assert_int_eq(sola_refine_padded(m, x, offs, lens2, 2, 4, y, ws, &e), SOLA_ESHAPE);
    ck_assert_ptr_nonnull(strstr(e.msg, "sequence 1"));
    size_t back[] = {2, 0};
    ck_assert_int_eq(sola_refine_padded(m, x, back, lens2, 2, 4, y, ws, &e), SOLA_ESHAPE);
    size_t apart[] = {0, 2};
    ck_assert_int_eq(sola_refine_padded(m, x, apart, lens2, 2, 4, y, ws, &e), 0);
    ck_assert_int_eq(sola_tsm(x, 0, 8, y, &e), SOLA_ESHAPE);
    sola_ws_free(ws);
    sola_model_free(m);
}
END_TEST

START_TEST(workspace_grows_to_largest_and_stays)
{
    sola_model *m = random_model(16, 8, 3, 3, 1, 1, 3);
    sola_rng r;
    sola_rng_seed(&r, 4);
    float *x = random_x(&r, 200 * 16), *y = malloc(200 * 16 * sizeof(float));
    sola_ws *ws = sola_ws_new();
    sola_err e = {0};
    ck_assert_uint_eq(sola_ws_bytes(ws), 0);
    ck_assert_int_eq(sola_refine(m, x, 200, y, ws, &e), 0);
    size_t big = sola_ws_bytes(ws);
    /* 200 rows of h1, h2 and 3 taps of Z, width 8 */
    ck_assert_uint_ge(big, 200 * 8 * 5 * sizeof(float));
    for (int T = 1; T <= 200; T += 37)
        ck_assert_int_eq(sola_refine(m, x, T, y, ws, &e), 0);
    ck_assert_uint_eq(sola_ws_bytes(ws), big);
    free(x);
    free(y);
    sola_ws_free(ws);
    sola_model_free(m);
}
END_TEST

START_TEST(tsm_properties)
{
    int T = 150, C = 24; /* past one 64-row mirror tile */
    sola_rng r;
    sola_rng_seed(&r, 8);
    float *y = random_x(&r, (size_t)T * C), *S = malloc((size_t)T * T * sizeof(float));
    for (int c = 0; c < C; c++) {
        y[5 * C + c] = 0.0f;                /* a silent snippet */
        y[9 * C + c] = -3.0f * y[2 * C + c]; /* opposite of snippet 2 */
    }
    sola_err e = {0};
    ck_assert_int_eq(sola_tsm(y, T, C, S, &e), 0);
    for (int i = 0; i < T; i++) {
        for (int j = 0; j < T; j++) {
            float v = S[i * T + j];
            ck_assert(v == S[j * T + i]);
            ck_assert(v >= -1.0f && v <= 1.0f);
            if (i == 5 || j == 5)
                ck_assert(v == 0.0f);
            /* direct formula in double */
            double d = 0, ni = 0, nj = 0;
            for (int c = 0; c < C; c++) {
                d += (double)y[i * C + c] * y[j * C + c];
                ni += (double)y[i * C + c] * y[i * C + c];
                nj += (double)y[j * C + c] * y[j * C + c];
            }
            double want = d / (sqrt(ni) * sqrt(nj) + 1e-8);
            ck_assert_msg(fabs(v - want) <= 1e-6, "S[%d,%d] = %.8f, want %.8f", i, j, v, want);
        }
        if (i != 5)
            ck_assert(fabsf(S[i * T + i] - 1.0f) <= 1e-6f);
    }
    ck_assert(fabsf(S[2 * T + 9] + 1.0f) <= 1e-6f);
    free(y);
    free(S);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("refine");
    TCase *tc = tcase_create("refine");
    tcase_add_test(tc, matches_pytorch_fixtures);
    tcase_add_test(tc, f16_model_matches_pytorch);
    tcase_add_test(tc, matches_direct_convolution);
    tcase_add_test(tc, batch_equals_separate_calls);
    tcase_add_test(tc, pack_for_long_passes_gives_same_bits);
    tcase_add_test(tc, fresh_model_is_identity);
    tcase_add_test(tc, bad_calls_refused);
    tcase_add_test(tc, workspace_grows_to_largest_and_stays);
    tcase_add_test(tc, tsm_properties);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
