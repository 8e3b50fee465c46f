/* test_batching.c -- dynamic batching must not change a single bit.
 *
 * Core: sola_refine_batch over mixed lengths (1..400, up to 40 sequences, k2 = 3 and
 * 1, dilations, odd and narrow widths, the paper's shape) equals separate sola_refine
 * calls byte for byte, with 1 and 2 GEMM threads (each backend's row plan, core/model/gemm.h,
 * is what makes this hold); and rows of a pass over a window of a sequence equal the
 * whole pass's wherever the window holds their receptive field (streaming).
 * Daemon: concurrent /refine and /v2 infer requests to a solad that batches (a long
 * window so they do meet) return exactly the bytes a solad without batching returns. */
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "gemm.h"
#include "model.h"
#include "npy.h"
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

/* Batches of random make-up (1..nmax sequences, lengths 1..maxT) against separate
 * calls; returns how many sequences were compared. */
static int check_batches_n(const sola_model *m, int nbatches, int maxT, int nmax,
                           uint64_t seed)
{
    sola_rng r;
    sola_rng_seed(&r, seed);
    sola_ws *ws = sola_ws_new(), *ws1 = sola_ws_new();
    sola_err e = {0};
    size_t C = (size_t)m->C;
    int compared = 0;
    for (int b = 0; b < nbatches; b++) {
        int n = 1 + (int)(sola_rng_u64(&r) % (uint64_t)nmax), lens[64];
        ck_assert_int_le(n, 64);
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
                          b, i, n, lens[i], off, m->k2, sola_gemm_threads());
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

static int check_batches(const sola_model *m, int nbatches, int maxT, uint64_t seed)
{
    return check_batches_n(m, nbatches, maxT, 9, seed);
}

START_TEST(batch_bitwise_k2_3)
{
    sola_gemm_set_threads(_i + 1);
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
    sola_gemm_set_threads(_i + 1);
    sola_model *m = model(64, 64, 5, 1, 1, 7);
    ck_assert_int_gt(check_batches(m, 30, 300, 99 + (uint64_t)_i), 80);
    sola_model_free(m);
}
END_TEST


/* Shapes whose products have column counts that are not multiples of the kernels'
 * blocks (72, 200) or so narrow that the library cuts rows among threads (48), and
 * batches of up to 40 sequences: whatever the backend's plan promises must hold. */
START_TEST(batch_bitwise_odd_shapes)
{
    sola_gemm_set_threads(_i + 1);
    static const int shapes[][5] = {{96, 72, 5, 3, 1}, {200, 48, 3, 1, 1}, {40, 24, 7, 3, 3}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int *sh = shapes[k];
        sola_model *m = model(sh[0], sh[1], sh[2], sh[3], sh[4], 30 + k);
        if (sola_refine_batchable(m))
            ck_assert_int_gt(check_batches_n(m, 12, 400, 40, 70 + k + 10 * (uint64_t)_i), 12);
        else /* OpenBLAS with 2 threads and C or H not a multiple of 64: not promised */
            ck_assert_str_eq(sola_gemm_backend(), "OpenBLAS");
        sola_model_free(m);
    }
}
END_TEST

/* The paper's module (C = 2048, H = 512, k1 = 5, k2 = 1): the shapes that serve. */
START_TEST(batch_bitwise_paper_shape)
{
    sola_gemm_set_threads(_i + 1);
    sola_model *m = model(2048, 512, 5, 1, 1, 11);
    ck_assert_int_eq(sola_refine_batchable(m), 1);
    ck_assert_int_gt(check_batches_n(m, 3, 250, 12, 5 + (uint64_t)_i), 2);
    sola_model_free(m);
}
END_TEST

/* oneDNN's pool path (core/model/gemm_onednn.c): every task of a prepared product runs on
 * one thread, so where the plan is exact a refine's bits do not depend on the thread
 * count either -- 1, 2 and 3 threads (more than the helpers have cores on a 2-core
 * machine) give the same bytes, for the paper's shape and an odd one. */
START_TEST(pool_bits_independent_of_threads)
{
    static const int shapes[][4] = {{2048, 512, 5, 1}, {96, 72, 5, 3}};
    static const int Ts[] = {16, 100, 517};
    for (size_t k = 0; k < 2; k++) {
        sola_gemm_set_threads(1);
        sola_model *m = model(shapes[k][0], shapes[k][1], shapes[k][2], shapes[k][3], 1,
                              40 + k);
        if (strcmp(sola_gemm_backend(), "oneDNN") || !sola_refine_batchable(m)) {
            sola_model_free(m); /* OpenBLAS, or a CPU outside the verified rule */
            continue;
        }
        size_t C = (size_t)m->C;
        sola_rng r;
        sola_rng_seed(&r, 9 + k);
        float *x = randx(&r, 517 * C), *y1 = malloc(sizeof(float) * 517 * C),
              *yn = malloc(sizeof(float) * 517 * C);
        ck_assert_ptr_nonnull(y1);
        ck_assert_ptr_nonnull(yn);
        sola_ws *ws = sola_ws_new();
        sola_err e = {0};
        for (size_t t = 0; t < sizeof Ts / sizeof Ts[0]; t++) {
            sola_gemm_set_threads(1);
            ck_assert_int_eq(sola_refine(m, x, Ts[t], y1, ws, &e), 0);
            for (int n = 2; n <= 3; n++) {
                sola_gemm_set_threads(n);
                ck_assert_int_eq(sola_refine(m, x, Ts[t], yn, ws, &e), 0);
                ck_assert_msg(!memcmp(y1, yn, sizeof(float) * (size_t)Ts[t] * C),
                              "C=%d T=%d: %d threads differ from 1", m->C, Ts[t], n);
                /* helpers sent to sleep (as solad does after a pass) wake for the next */
                sola_gemm_rest();
                memset(yn, 0, sizeof(float) * (size_t)Ts[t] * C);
                ck_assert_int_eq(sola_refine(m, x, Ts[t], yn, ws, &e), 0);
                ck_assert_msg(!memcmp(y1, yn, sizeof(float) * (size_t)Ts[t] * C),
                              "C=%d T=%d: %d threads after sola_gemm_rest differ from 1",
                              m->C, Ts[t], n);
            }
        }
        sola_ws_free(ws);
        free(x);
        free(y1);
        free(yn);
        sola_model_free(m);
    }
    sola_gemm_set_threads(1);
}
END_TEST

/* Streaming's property (refine.h, "Row independence"): row t of a pass over a window
 * [a, b) of a sequence equals row t of the pass over the whole sequence when the
 * window holds t's receptive field (or ends where the sequence does). */
START_TEST(window_rows_equal_the_whole_pass)
{
    sola_gemm_set_threads(_i + 1);
    sola_model *m = model(64, 64, 5, 3, 2, 12); /* R = 2*1 + 1*2 = 4 */
    const int R = (m->k1 / 2) * m->d1 + (m->k2 / 2) * m->d2, T = 260, C = m->C;
    ck_assert_int_eq(sola_refine_batchable(m), 1);
    sola_rowplan pl;
    sola_refine_plan(m, &pl);
    sola_rng r;
    sola_rng_seed(&r, 77 + (uint64_t)_i);
    float *x = randx(&r, (size_t)T * C), *full = malloc(sizeof(float) * (size_t)T * C),
          *w = malloc(sizeof(float) * (size_t)T * C);
    sola_ws *ws = sola_ws_new();
    sola_err e = {0};
    ck_assert_int_eq(sola_refine(m, x, T, full, ws, &e), 0);
    int checked = 0;
    for (int k = 0; k < 60; k++) {
        int a = (int)(sola_rng_u64(&r) % (uint64_t)T);
        a -= a % (int)pl.seq_align; /* OpenBLAS: windows start on its row block */
        if (k % 5 == 0)
            a = 0;
        int b = a + 1 + (int)(sola_rng_u64(&r) % (uint64_t)(T - a));
        if (k % 7 == 0)
            b = T;
        ck_assert_int_eq(sola_refine(m, x + (size_t)a * C, b - a, w, ws, &e), 0);
        for (int t = a; t < b; t++) {
            if (!((a == 0 || t - R >= a) && (b == T || t + R < b)))
                continue;
            ck_assert_msg(!memcmp(w + (size_t)(t - a) * C, full + (size_t)t * C,
                                  sizeof(float) * (size_t)C),
                          "row %d of window [%d, %d) differs from the whole pass (%d threads)",
                          t, a, b, sola_gemm_threads());
            checked++;
        }
    }
    ck_assert_int_gt(checked, 1000);
    sola_ws_free(ws);
    free(x);
    free(full);
    free(w);
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
    sola_rowplan pl;
    sola_refine_plan(m, &pl);
    size_t a = pl.seq_align, up[4];
    for (int i = 0; i < 4; i++)
        up[i] = ((size_t)lens[i] + a - 1) / a * a;
    ck_assert_uint_eq(offs[0], 0);
    ck_assert_uint_eq(offs[1], up[0]);
    ck_assert_uint_eq(offs[2], up[0] + up[1]);
    ck_assert_uint_eq(offs[3], up[0] + up[1] + up[2]);
    ck_assert_uint_eq(prows, sola_rowplan_rows(&pl, offs[3] + up[3]));
    ck_assert_uint_ge(prows, offs[3] + up[3]);
    int bad[] = {3, 0};
    ck_assert_int_eq(sola_refine_layout(m, bad, 2, offs, &prows, &e), SOLA_ESHAPE);
    ck_assert_ptr_nonnull(strstr(e.msg, "sequence 1"));
    ck_assert_int_eq(sola_refine_layout(m, lens, 0, offs, &prows, &e), SOLA_EINVAL);
    sola_model_free(m);

    /* a tiny model with a wide kernel is not padded into gigabytes (reliability F5):
     * OpenBLAS's plan does not batch it (its padding rule would), oneDNN's needs no
     * padding beyond the row quantum */
    m = sola_model_new(1, 1, 255, 1, 0, &e);
    ck_assert_ptr_nonnull(m);
    sola_model_init(m, 1);
    m->alpha[0] = 0.5f;
    ck_assert_int_eq(sola_model_pack(m, &e), 0);
    if (!strcmp(sola_gemm_backend(), "OpenBLAS"))
        ck_assert_int_eq(sola_refine_batchable(m), 0);
    sola_ws *ws = sola_ws_new();
    float x = 1.0f, y;
    ck_assert_int_eq(sola_refine(m, &x, 1, &y, ws, &e), 0);
    ck_assert_uint_lt(sola_ws_bytes(ws), 1u << 20);
    sola_ws_free(ws);
    sola_model_free(m);
}
END_TEST

/* ---- through solad ----------------------------------------------------------- */

#define NREQ 8

typedef struct call {
    const su_server *s;
    int T;
    int v2;           /* /v2 binary infer, else /refine with .npy */
    const float *x;
    su_resp r;
} call;

static void *do_call(void *arg)
{
    call *c = arg;
    char url[256];
    const int C = 64;
    size_t nb = (size_t)c->T * C * 4;
    if (c->v2) {
        char hdr[400], hv[64];
        int hl = snprintf(hdr, sizeof hdr,
                          "{\"inputs\":[{\"name\":\"features\",\"shape\":[%d,%d],\"datatype\":"
                          "\"FP32\",\"parameters\":{\"binary_data_size\":%zu}}],\"outputs\":[{"
                          "\"name\":\"refined\",\"parameters\":{\"binary_data\":true}}]}",
                          c->T, C, nb);
        char *body = malloc((size_t)hl + nb);
        memcpy(body, hdr, (size_t)hl);
        memcpy(body + hl, c->x, nb);
        snprintf(hv, sizeof hv, "Inference-Header-Content-Length: %d", hl);
        const char *h[] = {hv, NULL};
        snprintf(url, sizeof url, "%s/v2/models/m/infer", c->s->base);
        su_http(NULL, "POST", url, h, body, (size_t)hl + nb, &c->r);
        free(body);
    } else {
        void *b;
        size_t len;
        sola_err e = {0};
        int64_t sh[2] = {c->T, C};
        sola_npy_encode(c->x, 2, sh, &b, &len, &e);
        const char *h[] = {"Content-Type: application/x-npy", NULL};
        snprintf(url, sizeof url, "%s/refine", c->s->base);
        su_http(NULL, "POST", url, h, b, len, &c->r);
        free(b);
    }
    return NULL;
}

/* NREQ requests at once (mixed T, both routes); replies in out[] (caller frees). */
static void burst(const su_server *s, float *const *xs, const int *Ts, su_resp *out)
{
    call c[NREQ];
    pthread_t th[NREQ];
    for (int i = 0; i < NREQ; i++) {
        c[i] = (call){s, Ts[i], i % 2, xs[i], {0}};
        ck_assert_int_eq(pthread_create(&th[i], NULL, do_call, &c[i]), 0);
    }
    for (int i = 0; i < NREQ; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(c[i].r.status == 200, "request %d: %ld %.200s", i, c[i].r.status,
                      c[i].r.body);
        out[i] = c[i].r;
    }
}

static long batch_stat(const su_server *s, const char *key)
{
    su_resp r;
    ck_assert_int_eq(su_get(s, NULL, "/healthz", &r), 200);
    json_t *j = json_loads(r.body, 0, NULL);
    long v = (long)json_integer_value(json_object_get(json_object_get(j, "batching"), key));
    json_decref(j);
    su_resp_free(&r);
    return v;
}

/* The same burst to a solad that batches and to one that does not: every reply's
 * bytes are equal, and the batching one did gather requests into shared passes. */
START_TEST(daemon_batched_replies_are_bitwise_unbatched)
{
    char *dir = tu_tmpdir();
    sola_err e = {0};
    sola_model *m = sola_model_new(64, 64, 5, 3, 0, &e);
    ck_assert_ptr_nonnull(m);
    sola_model_init(m, 21);
    m->alpha[0] = 0.8f;
    char p[4096];
    snprintf(p, sizeof p, "%s/models/m", dir);
    ck_assert_int_eq(sola_mkdirs(p, 0755, &e), 0);
    snprintf(p, sizeof p, "%s/models/m/1.safetensors", dir);
    ck_assert_int_eq(sola_model_save(m, p, 0, &e), 0);
    /* every request first sleeps 100 ms on its worker, so all are parsing when the
     * first reaches the batcher: it waits (window 1 s) and they share passes */
    const char *on[] = {"--data", dir, "--rescan-interval", "0", "--threads", "2",
                        "--debug-work-delay-ms", "100", "--batch-window-us", "1000000", NULL};
    const char *off[] = {"--data", dir, "--rescan-interval", "0", "--threads", "2",
                         "--max-batch-frames", "0", NULL};
    su_server a, b;
    ck_assert_int_eq(su_start(&a, dir, on), 0);
    ck_assert_int_eq(su_start(&b, dir, off), 0);
    int Ts[NREQ] = {1, 16, 5, 100, 13, 37, 2, 64};
    float *xs[NREQ];
    for (int i = 0; i < NREQ; i++)
        xs[i] = su_input(Ts[i], 64, 40 + (unsigned)i);
    su_resp ra[NREQ], rb[NREQ];
    burst(&a, xs, Ts, ra);
    burst(&b, xs, Ts, rb);
    for (int i = 0; i < NREQ; i++) {
        ck_assert_uint_eq(ra[i].len, rb[i].len);
        ck_assert_msg(memcmp(ra[i].body, rb[i].body, ra[i].len) == 0,
                      "request %d (T=%d, %s): batched reply differs from unbatched", i, Ts[i],
                      i % 2 ? "/v2 infer" : "/refine");
        su_resp_free(&ra[i]);
        su_resp_free(&rb[i]);
        free(xs[i]);
    }
    long passes = batch_stat(&a, "passes"), reqs = batch_stat(&a, "requests");
    ck_assert_int_eq(reqs, NREQ);
    ck_assert_msg(passes < reqs, "%ld requests took %ld passes: nothing was batched", reqs,
                  passes);
    su_stop(&a);
    su_stop(&b);
    sola_model_free(m);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("batching");
    TCase *c = tcase_create("core");
    tcase_set_timeout(c, 300);
    tcase_add_loop_test(c, batch_bitwise_k2_3, 0, 2);
    tcase_add_loop_test(c, batch_bitwise_k2_1, 0, 2);
    tcase_add_loop_test(c, batch_bitwise_odd_shapes, 0, 2);
    tcase_add_loop_test(c, batch_bitwise_paper_shape, 0, 2);
    tcase_add_loop_test(c, window_rows_equal_the_whole_pass, 0, 2);
    tcase_add_test(c, layout);
    tcase_add_test(c, pool_bits_independent_of_threads);
    suite_add_tcase(s, c);
    c = tcase_create("daemon");
    tcase_set_timeout(c, 60);
    tcase_add_test(c, daemon_batched_replies_are_bitwise_unbatched);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    return su_run(suite());
}
