/* test_batching.c -- dynamic batching must not change a single bit.
 *
 * Core: sola_refine_batch over mixed lengths (1..300, k2 = 3 and 1, dilations) equals
 * separate sola_refine calls byte for byte, with 1 and 2 BLAS threads (OpenBLAS cuts
 * rows differently with each; core/refine.c's padded layout is what makes this hold).
 * Daemon: concurrent /refine and /v2 infer requests to a solad that batches (a long
 * window so they do meet) return exactly the bytes a solad without batching returns. */
#include <cblas.h>
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "refine.h"
#include "rng.h"
#include "serverutil.h"
#include "testutil.h"

static sola_model *model(int C, int H, int k1, int k2, int d2, uint64_t seed)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(C, H, k1, k2, 0, &e);
    ck_assert_ptr_nonnull(m);
    sola_model_init(m, seed);
    m->d2 = d2;
    m->alpha[0] = 0.7f;
    ck_assert_int_eq(sola_model_pack(m, &e), 0);
    return m;
}

static float *randx(sola_rng *r, size_t n)
{
    float *x = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)sola_rng_normal(r);
    return x;
}

/* Batches of random make-up (lengths 1..maxT) against separate calls; returns how many
 * sequences were compared. */
static int check_batches(const sola_model *m, int nbatches, int maxT, uint64_t seed)
{
    sola_rng r;
    sola_rng_seed(&r, seed);
    sola_ws *ws = sola_ws_new(), *ws1 = sola_ws_new();
    sola_err e = {0};
    size_t C = (size_t)m->C;
    int compared = 0;
    for (int b = 0; b < nbatches; b++) {
        int n = 1 + (int)(sola_rng_u64(&r) % 9), lens[9];
        size_t rows = 0;
        for (int i = 0; i < n; i++) {
            /* short ones mostly, with now and then a long one */
            lens[i] = 1 + (int)(sola_rng_u64(&r) % (uint64_t)(i % 4 == 3 ? maxT : 40));
            rows += (size_t)lens[i];
        }
        float *x = randx(&r, rows * C), *yb = malloc(rows * C * sizeof(float)),
              *ys = malloc(rows * C * sizeof(float));
        ck_assert_int_eq(sola_refine_batch(m, x, lens, n, yb, ws, &e), 0);
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            ck_assert_int_eq(sola_refine(m, x + off * C, lens[i], ys + off * C, ws1, &e), 0);
            ck_assert_msg(memcmp(yb + off * C, ys + off * C, (size_t)lens[i] * C * 4) == 0,
                          "batch %d, sequence %d of %d (T=%d at row %zu, k2=%d, %d BLAS "
                          "threads): batched result differs from its own call",
                          b, i, n, lens[i], off, m->k2, openblas_get_num_threads());
            off += (size_t)lens[i];
            compared++;
        }
        free(x);
        free(yb);
        free(ys);
    }
    sola_ws_free(ws);
    sola_ws_free(ws1);
    return compared;
}

START_TEST(batch_bitwise_k2_3)
{
    openblas_set_num_threads(_i + 1);
    sola_model *m = model(64, 64, 5, 3, 1, 3);
    ck_assert_int_gt(check_batches(m, 40, 300, 17 + (uint64_t)_i), 100);
    sola_model_free(m);
    /* dilation 2 in the second conv: a wider reach across the seams */
    m = model(128, 64, 3, 3, 2, 4);
    check_batches(m, 15, 120, 5);
    sola_model_free(m);
}
END_TEST

START_TEST(batch_bitwise_k2_1)
{
    openblas_set_num_threads(_i + 1);
    sola_model *m = model(64, 64, 5, 1, 1, 7);
    ck_assert_int_gt(check_batches(m, 30, 300, 99 + (uint64_t)_i), 80);
    sola_model_free(m);
}
END_TEST

/* The layout itself: aligned starts, gaps zero-filled, bad lengths refused. */
START_TEST(layout)
{
    int lens[] = {1, 12, 13, 25};
    size_t offs[4], prows;
    sola_err e = {0};
    sola_model *m = model(64, 64, 5, 1, 1, 7);
    ck_assert_int_eq(sola_refine_layout(m, lens, 4, offs, &prows, &e), 0);
    ck_assert_uint_eq(offs[0], 0);
    ck_assert_uint_eq(offs[1], 12);
    ck_assert_uint_eq(offs[2], 24);
    ck_assert_uint_eq(offs[3], 48);
    ck_assert_uint_ge(prows, 84);
    ck_assert_uint_eq(prows % SOLA_REFINE_SEQ_ALIGN, 0);
    int bad[] = {3, 0};
    ck_assert_int_eq(sola_refine_layout(m, bad, 2, offs, &prows, &e), SOLA_ESHAPE);
    ck_assert_ptr_nonnull(strstr(e.msg, "sequence 1"));
    ck_assert_int_eq(sola_refine_layout(m, lens, 0, offs, &prows, &e), SOLA_EINVAL);
    sola_model_free(m);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("batching");
    TCase *c = tcase_create("core");
    tcase_set_timeout(c, 60);
    tcase_add_loop_test(c, batch_bitwise_k2_3, 0, 2);
    tcase_add_loop_test(c, batch_bitwise_k2_1, 0, 2);
    tcase_add_test(c, layout);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
