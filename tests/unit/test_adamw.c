/* test_adamw.c -- AdamW against torch.optim.AdamW (fixture from
 * tests/ref/make_train_fixtures.py) and its defining properties. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"
#include "gemm.h"
#include "safetensors.h"
#include "testutil.h"

static float *tensor(const sola_st_file *f, const char *name, size_t want)
{
    const sola_st_tensor *t = sola_st_find(f, name);
    ck_assert_msg(t != NULL, "adamw fixture lacks %s", name);
    ck_assert_uint_eq(sola_st_numel(t), want);
    float *p = malloc(want * sizeof *p);
    sola_err e = {0};
    ck_assert_int_eq(sola_st_to_f32(t, p, &e), 0);
    return p;
}

START_TEST(matches_torch_over_several_steps)
{
    char *path = tu_path("tests/data/train_ref/adamw.safetensors");
    sola_st_file f;
    sola_err e = {0};
    ck_assert_msg(sola_st_open(path, &f, &e) == 0, "%s", e.msg);
    const sola_st_tensor *gt = sola_st_find(&f, "grads");
    ck_assert_ptr_nonnull(gt);
    ck_assert_int_eq(gt->ndim, 2);
    int steps = (int)gt->shape[0];
    size_t n = (size_t)gt->shape[1];
    ck_assert_int_ge(steps, 3);
    float lr = (float)strtod(sola_st_meta(&f, "lr"), NULL);
    float *p = tensor(&f, "p0", n), *grads = tensor(&f, "grads", n * steps);
    float *want = tensor(&f, "params", n * steps);
    float *m = tensor(&f, "exp_avg", n), *v = tensor(&f, "exp_avg_sq", n);

    sola_adamw o;
    ck_assert_int_eq(sola_adamw_init(&o, n, lr, &e), 0);
    ck_assert_double_eq(o.wd, 0.01);
    for (int s = 0; s < steps; s++) {
        sola_adamw_step(&o, p, grads + (size_t)s * n);
        /* per-element bound: float rounding of a few ops, relative to the update size */
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)p[i] - want[(size_t)s * n + i]);
            double tol = 1e-6 * fabs(want[(size_t)s * n + i]) + 1e-9;
            ck_assert_msg(d <= tol, "step %d param %zu: %.9g, torch %.9g", s + 1, i,
                          (double)p[i], (double)want[(size_t)s * n + i]);
            if (d > worst)
                worst = d;
        }
    }
    ck_assert_int_eq(o.t, steps);
    ck_assert_double_lt(tu_max_rel_err(o.m, m, n), 1e-6);
    ck_assert_double_lt(tu_max_rel_err(o.v, v, n), 1e-6);
    sola_adamw_free(&o);
    sola_adamw_free(&o); /* idempotent */
    free(p), free(grads), free(want), free(m), free(v);
    sola_st_close(&f);
    free(path);
}
END_TEST

START_TEST(zero_gradient_is_pure_decay)
{
    enum { n = 8 };
    float p[n], g[n] = {0};
    for (int i = 0; i < n; i++)
        p[i] = (float)(i - 3);
    sola_adamw o;
    sola_err e = {0};
    ck_assert_int_eq(sola_adamw_init(&o, n, 0.1f, &e), 0);
    for (int s = 0; s < 5; s++)
        sola_adamw_step(&o, p, g);
    double f = pow(1.0 - 0.1 * 0.01, 5);
    for (int i = 0; i < n; i++)
        ck_assert_double_eq_tol(p[i], (i - 3) * f, 1e-6);
    sola_adamw_free(&o);
}
END_TEST

START_TEST(first_step_moves_by_lr)
{
    /* after bias correction the first update is lr * g / (|g| + eps) = +-lr */
    float p[3] = {1, 1, 1}, g[3] = {2, -0.5f, 1e-3f};
    sola_adamw o;
    sola_err e = {0};
    ck_assert_int_eq(sola_adamw_init(&o, 3, 1e-2f, &e), 0);
    o.wd = 0;
    sola_adamw_step(&o, p, g);
    ck_assert_float_eq_tol(p[0], 1 - 1e-2f, 1e-6f);
    ck_assert_float_eq_tol(p[1], 1 + 1e-2f, 1e-6f);
    ck_assert_float_eq_tol(p[2], 1 - 1e-2f, 1e-5f);
    sola_adamw_free(&o);
}
END_TEST

/* A vector big enough to be split over threads (in blocks of 64K elements, the last
 * one short) gets the same bits with 2 threads as with 1: every element updated once,
 * none skipped or done twice. */
START_TEST(split_over_threads_is_exact)
{
    const size_t n = ((size_t)1 << 20) + 37;
    float *p1 = malloc(n * sizeof *p1), *p2 = malloc(n * sizeof *p2);
    float *g = malloc(n * sizeof *g);
    ck_assert(p1 && p2 && g);
    for (size_t i = 0; i < n; i++) {
        p1[i] = p2[i] = (float)sin((double)i * 0.001);
        g[i] = (float)cos((double)i * 0.37) * 1e-2f;
    }
    sola_adamw a, b;
    sola_err e = {0};
    ck_assert_int_eq(sola_adamw_init(&a, n, 1e-3f, &e), 0);
    ck_assert_int_eq(sola_adamw_init(&b, n, 1e-3f, &e), 0);
    for (int s = 0; s < 3; s++) {
        sola_gemm_set_threads(1);
        sola_adamw_step(&a, p1, g);
        sola_gemm_set_threads(2);
        sola_adamw_step(&b, p2, g);
    }
    ck_assert_int_eq(memcmp(p1, p2, n * sizeof *p1), 0);
    ck_assert_int_eq(memcmp(a.m, b.m, n * sizeof *p1), 0);
    ck_assert_int_eq(memcmp(a.v, b.v, n * sizeof *p1), 0);
    ck_assert(p1[n - 1] != (float)sin((double)(n - 1) * 0.001)); /* the tail moved */
    sola_adamw_free(&a);
    sola_adamw_free(&b);
    free(p1), free(p2), free(g);
}
END_TEST

START_TEST(refuses_empty)
{
    sola_adamw o;
    sola_err e = {0};
    ck_assert_int_eq(sola_adamw_init(&o, 0, 1e-4f, &e), SOLA_EINVAL);
    ck_assert_ptr_null(o.m);
    sola_adamw_free(&o);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("adamw");
    TCase *t = tcase_create("adamw");
    tcase_add_test(t, matches_torch_over_several_steps);
    tcase_add_test(t, zero_gradient_is_pure_decay);
    tcase_add_test(t, first_step_moves_by_lr);
    tcase_add_test(t, split_over_threads_is_exact);
    tcase_add_test(t, refuses_empty);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
