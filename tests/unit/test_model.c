/* test_model.c -- the SoLa model: layout, PyTorch-default init, file round trips, and
 * refusal of files that are not a SoLa model (with the offending tensor named). */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bigbuf.h"
#include "gemm.h"
#include "model.h"
#include "refine.h"
#include "safetensors.h"
#include "testutil.h"

/* ---- a tiny safetensors builder for hostile files ---------------------------
 * Each entry is (name, dtype, shape, raw little-endian bytes); the builder writes the
 * header with snprintf so tests can produce dtypes and shapes our writer never would. */
typedef struct raw_t {
    const char *name, *dtype;
    int ndim;
    int64_t shape[4];
    const void *data;
    size_t nbytes;
} raw_t;

static void *build_st(const raw_t *t, int n, const char *meta_json, size_t *len)
{
    char *h = malloc(1 << 16);
    size_t o = 0, off = 0;
    o += (size_t)snprintf(h + o, (1 << 16) - o, "{");
    for (int i = 0; i < n; i++) {
        o += (size_t)snprintf(h + o, (1 << 16) - o, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                              i ? "," : "", t[i].name, t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++)
            o += (size_t)snprintf(h + o, (1 << 16) - o, "%s%lld", d ? "," : "",
                                  (long long)t[i].shape[d]);
        o += (size_t)snprintf(h + o, (1 << 16) - o, "],\"data_offsets\":[%zu,%zu]}", off,
                              off + t[i].nbytes);
        off += t[i].nbytes;
    }
    if (meta_json)
        o += (size_t)snprintf(h + o, (1 << 16) - o, "%s\"__metadata__\":%s", n ? "," : "",
                              meta_json);
    o += (size_t)snprintf(h + o, (1 << 16) - o, "}");
    while (o % 8)
        h[o++] = ' ';
    unsigned char *buf = malloc(8 + o + off);
    uint64_t hl = o;
    for (int b = 0; b < 8; b++)
        buf[b] = (unsigned char)(hl >> (8 * b));
    memcpy(buf + 8, h, o);
    size_t p = 8 + o;
    for (int i = 0; i < n; i++) {
        memcpy(buf + p, t[i].data, t[i].nbytes);
        p += t[i].nbytes;
    }
    free(h);
    *len = p;
    return buf;
}

/* The 7 module tensors of a C=4, H=3, k1=3, k2=1 model as F32, from one zero pool, with
 * one entry replaceable by the test. Returns the count written into t. */
static float pool[4096];
/* The seven tensors of a module of C channels, H hidden and kernel k (k2 = 1): conv 0's
 * weight from w0, every other tensor's bytes from `rest` (at least C * H floats). */
static int module_tensors_of(raw_t *t, int64_t C, int64_t H, int64_t k, const float *w0,
                             const float *rest)
{
    raw_t m[] = {
        {"conv_network.0.weight", "F32", 3, {H, C, k}, w0, (size_t)(H * C * k) * 4},
        {"conv_network.0.bias", "F32", 1, {H}, rest, (size_t)H * 4},
        {"conv_network.2.weight", "F32", 3, {H, H, 1}, rest, (size_t)(H * H) * 4},
        {"conv_network.2.bias", "F32", 1, {H}, rest, (size_t)H * 4},
        {"conv_network.4.weight", "F32", 3, {C, H, 1}, rest, (size_t)(C * H) * 4},
        {"conv_network.4.bias", "F32", 1, {C}, rest, (size_t)C * 4},
        {"alpha", "F32", 1, {1}, rest, 4},
    };
    memcpy(t, m, sizeof m);
    return 7;
}

static int module_tensors(raw_t *t)
{
    return module_tensors_of(t, 4, 3, 3, pool, pool);
}

static sola_model *load_raw(const raw_t *t, int n, const char *meta, sola_err *e)
{
    size_t len;
    void *buf = build_st(t, n, meta, &len);
    sola_model *m = sola_model_from_buffer(buf, len, "bad.safetensors", e);
    free(buf);
    return m;
}

/* Expects the load to fail with `code` and a message holding `needle` (the tensor or
 * key a user has to fix) and the file name. */
static void expect_refused(const raw_t *t, int n, const char *meta, int code, const char *needle)
{
    sola_err e = {0};
    sola_model *m = load_raw(t, n, meta, &e);
    ck_assert_msg(m == NULL, "loaded a bad file (expected '%s')", needle);
    ck_assert_int_eq(e.code, code);
    ck_assert_msg(strstr(e.msg, needle) != NULL, "message '%s' lacks '%s'", e.msg, needle);
    ck_assert_msg(strstr(e.msg, "bad.safetensors") != NULL, "message '%s' lacks file", e.msg);
}

/* ---- layout and init ----------------------------------------------------- */

START_TEST(layout_is_contiguous_and_module_first)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(10, 6, 5, 3, 7, &e);
    ck_assert_ptr_nonnull(m);
    sola_layout l;
    sola_model_layout(10, 6, 5, 3, 7, &l);
    ck_assert_uint_eq(l.module_total, 6 * 10 * 5 + 6 + 6 * 6 * 3 + 6 + 10 * 6 + 10 + 1);
    ck_assert_uint_eq(l.total, l.module_total + 7 * 10 + 7 + 10 * 7 + 10);
    ck_assert_uint_eq(m->nparams, l.total);
    ck_assert_ptr_eq(m->alpha, m->params + l.module_total - 1);
    ck_assert_ptr_eq(m->hb2 + 10, m->params + l.total);
    sola_layout l0;
    sola_model_layout(10, 6, 5, 3, 0, &l0);
    ck_assert_uint_eq(l0.total, l.module_total);
    sola_model_free(m);
}
END_TEST

START_TEST(bad_shapes_refused_by_new)
{
    sola_err e = {0};
    ck_assert_ptr_null(sola_model_new(8, 4, 4, 1, 0, &e));
    ck_assert_int_eq(e.code, SOLA_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "odd"));
    ck_assert_ptr_null(sola_model_new(0, 4, 3, 1, 0, &e));
    ck_assert_ptr_null(sola_model_new(8, 4, 3, 0, 0, &e));
    ck_assert_ptr_null(sola_model_new(1 << 30, 1 << 30, 3, 1, 0, &e));
    ck_assert_int_eq(e.code, SOLA_ETOOBIG);
}
END_TEST

/* Checks one initialised tensor against U(-b, b), b = 1/sqrt(fan_in): every value
 * inside, the extremes near +-b, mean ~ 0 and variance ~ b^2/3. */
static void check_uniform(const char *what, const float *w, size_t n, size_t fan_in)
{
    double b = 1.0 / sqrt((double)fan_in), s = 0, s2 = 0, lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(fabs(w[i]) <= b * (1 + 1e-6), "%s[%zu] = %g outside +-%g", what, i, w[i],
                      b);
        s += w[i];
        s2 += (double)w[i] * w[i];
        lo = w[i] < lo ? w[i] : lo;
        hi = w[i] > hi ? w[i] : hi;
    }
    double mean = s / n, var = s2 / n - mean * mean, want = b * b / 3;
    /* n >= 2000 here: sampling error of the mean is b/sqrt(3n) < 0.013 b, of the
     * variance below 5%; limits are ~4 sigma. */
    ck_assert_msg(fabs(mean) < 0.06 * b, "%s mean %g (bound %g)", what, mean, b);
    ck_assert_msg(fabs(var / want - 1) < 0.15, "%s variance %g, want %g", what, var, want);
    ck_assert_msg(hi > 0.95 * b && lo < -0.95 * b, "%s range [%g, %g] vs +-%g", what, lo, hi, b);
}

START_TEST(init_matches_pytorch_default)
{
    sola_err e = {0};
    int C = 64, H = 48, k1 = 5, k2 = 3, P = 40;
    sola_model *m = sola_model_new(C, H, k1, k2, P, &e);
    ck_assert_ptr_nonnull(m);
    m->alpha[0] = 3; /* must be reset */
    sola_model_init(m, 7);
    check_uniform("w0", m->w0, (size_t)H * C * k1, (size_t)C * k1);
    check_uniform("w2", m->w2, (size_t)H * H * k2, (size_t)H * k2);
    check_uniform("w4", m->w4, (size_t)C * H, (size_t)H);
    check_uniform("hw0", m->hw0, (size_t)P * C, (size_t)C);
    check_uniform("hw2", m->hw2, (size_t)C * P, (size_t)P);
    /* biases are short: bounds only; all of them together for the statistics */
    double b0 = 1 / sqrt((double)C * k1), b2 = 1 / sqrt((double)H * k2), b4 = 1 / sqrt((double)H);
    for (int i = 0; i < H; i++) {
        ck_assert(fabs(m->b0[i]) <= b0 && fabs(m->b2[i]) <= b2);
    }
    for (int i = 0; i < C; i++)
        ck_assert(fabs(m->b4[i]) <= b4);
    ck_assert(m->b0[0] != 0 && m->b4[C - 1] != 0);
    ck_assert(m->alpha[0] == 0.0f);

    /* seeded: same seed, same model; another seed, another model */
    sola_model *m2 = sola_model_new(C, H, k1, k2, P, &e);
    sola_model_init(m2, 7);
    ck_assert_mem_eq(m->params, m2->params, m->nparams * sizeof(float));
    sola_model_init(m2, 8);
    ck_assert(memcmp(m->params, m2->params, m->nparams * sizeof(float)) != 0);
    /* the module does not depend on whether a head exists */
    sola_model *m3 = sola_model_new(C, H, k1, k2, 0, &e);
    sola_model_init(m3, 7);
    ck_assert_mem_eq(m->params, m3->params, m3->nparams * sizeof(float));
    sola_model_free(m);
    sola_model_free(m2);
    sola_model_free(m3);
}
END_TEST

START_TEST(add_head_keeps_module)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(32, 16, 3, 1, 0, &e);
    sola_model_init(m, 1);
    sola_model *c = sola_model_clone(m, &e);
    ck_assert_int_eq(sola_model_add_head(m, 24, 99, &e), 0);
    ck_assert_int_eq(m->P, 24);
    ck_assert_mem_eq(m->params, c->params, c->nparams * sizeof(float));
    check_uniform("hw0", m->hw0, 24 * 32, 32);
    check_uniform("hw2", m->hw2, 32 * 24, 24);
    ck_assert_int_eq(sola_model_add_head(m, 0, 1, &e), SOLA_EINVAL);
    sola_model_free(m);
    sola_model_free(c);
}
END_TEST

/* A packed model keeps the conv packs w0p/w2p only while its backend reads them
 * (sola_gemm_w_borrows): the oneDNN build serves from copies of its own, so the model
 * drops the 21 MB a C = 2048 model would hold twice; and it still refines as its clone
 * does (packed from params again), bit for bit. */
START_TEST(pack_keeps_no_unread_copy)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(128, 64, 5, 1, 0, &e);
    sola_model_init(m, 5);
    m->alpha[0] = 0.5f;
    ck_assert_int_eq(sola_model_pack(m, &e), 0);
    ck_assert_ptr_nonnull(m->g0);
    ck_assert_int_eq(m->w0p == NULL, !sola_gemm_w_borrows(m->g0));
    ck_assert_int_eq(m->w2p == NULL, !sola_gemm_w_borrows(m->g2));
    if (!strcmp(sola_gemm_backend(), "OpenBLAS"))
        ck_assert(m->w0p && m->w2p); /* it multiplies by them */
    else if (strstr(sola_gemm_kernels(), "column chunks"))
        ck_assert(!m->w0p && !m->w2p); /* oneDNN's pool path reads its chunks only */
    sola_model *c = sola_model_clone(m, &e);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(c->g0);
    int T = 70;
    size_t bytes = sizeof(float) * (size_t)T * 128;
    float *x = malloc(bytes), *y1 = malloc(bytes), *y2 = malloc(bytes);
    for (int i = 0; i < T * 128; i++)
        x[i] = (float)((i * 7919) % 263) / 131.0f - 1.0f;
    sola_ws *ws = sola_ws_new();
    ck_assert_int_eq(sola_refine(m, x, T, y1, ws, &e), 0);
    ck_assert_int_eq(sola_refine(c, x, T, y2, ws, &e), 0);
    ck_assert_mem_eq(y1, y2, bytes);
    ck_assert(memcmp(x, y1, bytes) != 0);
    sola_ws_free(ws);
    free(x), free(y1), free(y2);
    sola_model_free(c);
    sola_model_free(m);
}
END_TEST

START_TEST(pack_layout)
{
    /* shapes inside one block of the pack's copy, and across blocks with ragged edges on
     * both sides (the copy goes in blocks of 16 channels by 16, shared among threads) */
    static const int shapes[][4] = {{5, 4, 3, 1}, {37, 21, 3, 1}, {48, 33, 5, 3}};
    for (int threads = 1; threads <= 2; threads++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            sola_gemm_set_threads(threads);
            sola_err e = {0};
            int C = shapes[s][0], H = shapes[s][1], k = shapes[s][2], k2 = shapes[s][3];
            sola_model *m = sola_model_new(C, H, k, k2, 0, &e);
            sola_model_init(m, 3);
            float *w0p = sola_model_pack_conv(m->w0, H, C, k);
            float *w2p = sola_model_pack_conv(m->w2, H, H, k2);
            ck_assert(w0p && w2p);
            for (int h = 0; h < H; h++)
                for (int c = 0; c < C; c++)
                    for (int j = 0; j < k; j++)
                        ck_assert(w0p[c * k * H + j * H + h] == m->w0[(h * C + c) * k + j]);
            for (int h = 0; h < H; h++)
                for (int c = 0; c < H; c++)
                    for (int j = 0; j < k2; j++)
                        ck_assert(w2p[c * k2 * H + j * H + h] == m->w2[(h * H + c) * k2 + j]);
            free(w0p);
            free(w2p);
            sola_model_free(m);
        }
    sola_gemm_set_threads(2);
}
END_TEST

/* Every item of a range pass on the product threads is run exactly once, however the
 * range is cut (sola_gemm_pool_for; the OpenBLAS build runs none and says so). */
typedef struct countrun {
    unsigned char *hits;
} countrun;

static void count_range(void *arg, size_t b, size_t e)
{
    countrun *c = arg;
    for (size_t i = b; i < e; i++)
        c->hits[i]++;
}

START_TEST(pool_for_covers_each_item_once)
{
    static const size_t ns[] = {1, 2, 7, 64, 1000, 100003};
    for (int threads = 1; threads <= 3; threads++)
        for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++)
            for (size_t grain = 1; grain <= 64; grain *= 8) {
                sola_gemm_set_threads(threads);
                size_t n = ns[t];
                countrun c = {calloc(n, 1)};
                if (!sola_gemm_pool_for(n, grain, count_range, &c)) {
                    ck_assert_str_eq(sola_gemm_backend(), "OpenBLAS");
                    count_range(&c, 0, n);
                }
                for (size_t i = 0; i < n; i++)
                    ck_assert_msg(c.hits[i] == 1, "n=%zu grain=%zu threads=%d: item %zu run %d "
                                  "times", n, grain, threads, i, c.hits[i]);
                free(c.hits);
            }
    sola_gemm_set_threads(2);
}
END_TEST

/* sola_gemm_warm (the backend's one-time setup, which `sola refine DIR` runs on a
 * thread of its own while the model loads) may run beside products on other threads:
 * they still give the right numbers. */
static void *warm_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        sola_gemm_warm();
    return NULL;
}

START_TEST(gemm_warm_beside_products)
{
    enum { M = 37, N = 29, K = 70 };
    static float a[M * K], b[K * N], c[M * N];
    for (int i = 0; i < M * K; i++)
        a[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < K * N; i++)
        b[i] = (float)(i % 5) - 2.0f;
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, warm_main, NULL), 0);
    for (int rep = 0; rep < 20; rep++) {
        sola_sgemm(0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                float s = 0; /* small integers: exact in any order */
                for (int k = 0; k < K; k++)
                    s += a[i * K + k] * b[k * N + j];
                ck_assert_msg(c[i * N + j] == s, "c[%d, %d] = %g, want %g", i, j, c[i * N + j], s);
            }
    }
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    sola_gemm_warm(); /* and again, on a thread that already ran products */
}
END_TEST

/* Large buffers come 2 MiB aligned and rounded to whole 2 MiB pages (so that they can
 * be huge pages), small ones 64-byte aligned; both are writable to the size asked and
 * released by free(). */
START_TEST(bigbuf_alignment)
{
    static const size_t sizes[] = {1, 63, 4096, SOLA_BIGBUF_MIN - 1, SOLA_BIGBUF_MIN,
                                   SOLA_BIGBUF_MIN + 1, 19u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = sola_bigbuf_alloc(sizes[i]);
        ck_assert_ptr_nonnull(p);
        uintptr_t a = (uintptr_t)p;
        ck_assert_msg(a % (sizes[i] >= SOLA_BIGBUF_MIN ? SOLA_BIGBUF_PAGE : 64) == 0,
                      "%zu bytes at %p", sizes[i], (void *)p);
        memset(p, 0xab, sizes[i]);
        ck_assert_int_eq(p[sizes[i] - 1], 0xab);
        free(p);
    }
    ck_assert_ptr_null(sola_bigbuf_alloc(SIZE_MAX - 1));
}
END_TEST

/* ---- round trips --------------------------------------------------------- */

static sola_model *rich_model(void)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(12, 8, 5, 3, 6, &e);
    sola_model_init(m, 42);
    m->alpha[0] = 0.25f;
    m->d1 = 2;
    m->d2 = 3;
    ck_assert_int_eq(sola_model_set_meta(m, "objective", "sola"), 0);
    ck_assert_int_eq(sola_model_set_meta(m, "dataset", "thumos \"i3d\" \xc3\xa9"), 0);
    ck_assert_int_eq(sola_model_set_meta(m, "dataset", "thumos-i3d"), 0); /* replaces */
    float q[2 * 3] = {1, -2, 3.5f, 0, 1e-30f, 7};
    int64_t qs[2] = {2, 3};
    ck_assert_int_eq(sola_model_put_extra(m, "cycle.queue", 2, qs, q, &e), 0);
    ck_assert_int_eq(sola_model_put_extra(m, "alpha", 2, qs, q, &e), SOLA_EINVAL);
    return m;
}

static void assert_same_model(const sola_model *a, const sola_model *b, int train)
{
    ck_assert_int_eq(a->C, b->C);
    ck_assert_int_eq(a->H, b->H);
    ck_assert_int_eq(a->k1, b->k1);
    ck_assert_int_eq(a->k2, b->k2);
    ck_assert_int_eq(a->d1, b->d1);
    ck_assert_int_eq(a->d2, b->d2);
    sola_layout l;
    sola_model_layout(a->C, a->H, a->k1, a->k2, 0, &l);
    ck_assert_mem_eq(a->params, b->params, l.module_total * sizeof(float));
    for (int i = 0; i < a->nmeta; i++) {
        const char *v = sola_model_meta(b, a->meta[i].key);
        ck_assert_msg(v && !strcmp(v, a->meta[i].val), "metadata %s lost", a->meta[i].key);
    }
    if (train) {
        ck_assert_int_eq(a->P, b->P);
        ck_assert_mem_eq(a->params, b->params, a->nparams * sizeof(float));
        ck_assert_int_eq(a->nextra, b->nextra);
        for (int i = 0; i < a->nextra; i++) {
            const sola_tensor *t = sola_model_extra(b, a->extra[i].name);
            ck_assert_ptr_nonnull(t);
            ck_assert_int_eq(t->ndim, a->extra[i].ndim);
            ck_assert_mem_eq(t->shape, a->extra[i].shape, (size_t)t->ndim * sizeof(int64_t));
            ck_assert_mem_eq(t->data, a->extra[i].data, sola_tensor_numel(t) * sizeof(float));
        }
    }
}

START_TEST(save_load_round_trip)
{
    char *dir = tu_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    sola_err e = {0};
    sola_model *m = rich_model();
    ck_assert_int_eq(sola_model_save(m, path, 1, &e), 0);
    sola_model *r = sola_model_load(path, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    assert_same_model(m, r, 1);
    ck_assert_str_eq(sola_model_meta(r, "format"), "sola");
    ck_assert_str_eq(sola_model_meta(r, "dilation1"), "2");
    ck_assert_str_eq(sola_model_meta(r, "dataset"), "thumos-i3d");
    ck_assert_ptr_nonnull(r->g0); /* loaded models are ready to serve */

    /* the file is what PyTorch expects: names and the [C, H, 1] shape of conv 4 */
    sola_st_file f;
    ck_assert_int_eq(sola_st_open(path, &f, &e), 0);
    const sola_st_tensor *w4 = sola_st_find(&f, "conv_network.4.weight");
    ck_assert_ptr_nonnull(w4);
    ck_assert_int_eq(w4->ndim, 3);
    ck_assert_int_eq(w4->shape[0], 12);
    ck_assert_int_eq(w4->shape[1], 8);
    ck_assert_int_eq(w4->shape[2], 1);
    ck_assert_ptr_nonnull(sola_st_find(&f, "dissim_head.network.2.bias"));
    ck_assert_str_eq(sola_st_meta(&f, "dilation2"), "3");
    sola_st_close(&f);

    /* inference-only save leaves out the head and extras, keeps the module */
    ck_assert_int_eq(sola_model_save(m, path, 0, &e), 0);
    sola_model *s = sola_model_load(path, &e);
    ck_assert_ptr_nonnull(s);
    assert_same_model(m, s, 0);
    ck_assert_int_eq(s->P, 0);
    ck_assert_int_eq(s->nextra, 0);

    /* buffer form, and a clone, are the same model */
    void *buf;
    size_t len;
    ck_assert_int_eq(sola_model_serialize(m, 1, &buf, &len, &e), 0);
    sola_model *b = sola_model_from_buffer(buf, len, "buf", &e);
    ck_assert_ptr_nonnull(b);
    assert_same_model(m, b, 1);
    sola_model *c = sola_model_clone(b, &e);
    assert_same_model(b, c, 1);
    ck_assert_ptr_nonnull(c->g0);
    free(buf);
    sola_model_free(m);
    sola_model_free(r);
    sola_model_free(s);
    sola_model_free(b);
    sola_model_free(c);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(missing_file_is_notfound)
{
    sola_err e = {0};
    ck_assert_ptr_null(sola_model_load("/nonexistent-xyz/m.safetensors", &e));
    ck_assert_int_eq(e.code, SOLA_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "/nonexistent-xyz/m.safetensors"));
}
END_TEST

/* A minimal file of our builder loads (the builder itself is right), with default
 * dilations when there is no metadata, like a converted torch checkpoint. */
START_TEST(minimal_torch_checkpoint_loads)
{
    raw_t t[16];
    int n = module_tensors(t);
    sola_err e = {0};
    sola_model *m = load_raw(t, n, NULL, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    ck_assert_int_eq(m->C, 4);
    ck_assert_int_eq(m->H, 3);
    ck_assert_int_eq(m->k1, 3);
    ck_assert_int_eq(m->k2, 1);
    ck_assert_int_eq(m->d1, 1);
    ck_assert_int_eq(m->d2, 1);
    ck_assert_int_eq(m->P, 0);
    sola_model_free(m);
}
END_TEST

/* DataParallel checkpoints prefix every name with "module."; a module inside a larger
 * network has its attribute path in front. Both load; two modules are ambiguous. */
START_TEST(prefixed_checkpoints_load)
{
    raw_t t[16];
    int n = module_tensors(t);
    static char names[8][64];
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "module.%s", t[i].name);
        t[i].name = names[i];
    }
    float one = 1;
    t[n++] = (raw_t){"module.cycle.queue_ptr", "F32", 1, {1}, &one, 4};
    t[n++] = (raw_t){"detector.head.weight", "F32", 1, {1}, &one, 4};
    sola_err e = {0};
    sola_model *m = load_raw(t, n, NULL, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    ck_assert_int_eq(m->C, 4);
    ck_assert_ptr_nonnull(sola_model_extra(m, "cycle.queue_ptr"));
    ck_assert_ptr_nonnull(sola_model_extra(m, "detector.head.weight"));
    ck_assert_int_eq(m->nextra, 2);
    sola_model_free(m);
    /* missing pieces are named with the prefix the file uses */
    expect_refused(t, 6, NULL, SOLA_EFORMAT, "module.alpha");
    /* a second module */
    raw_t u[16];
    memcpy(u, t, sizeof t);
    u[n++] = (raw_t){"ema.conv_network.0.weight", "F32", 3, {3, 4, 3}, pool, 36 * 4};
    expect_refused(u, n, NULL, SOLA_EFORMAT, "several");
}
END_TEST

START_TEST(missing_tensors_are_named)
{
    const char *names[] = {"conv_network.0.weight", "conv_network.0.bias",
                           "conv_network.2.weight", "conv_network.2.bias",
                           "conv_network.4.weight", "conv_network.4.bias", "alpha"};
    for (int drop = 0; drop < 7; drop++) {
        raw_t t[16], u[16];
        int n = module_tensors(t), k = 0;
        for (int i = 0; i < n; i++)
            if (i != drop)
                u[k++] = t[i];
        expect_refused(u, k, NULL, SOLA_EFORMAT, names[drop]);
    }
    /* an unrelated file (e.g. a PyTorch checkpoint of another network) */
    raw_t other[] = {{"fc.weight", "F32", 2, {2, 2}, pool, 16}};
    expect_refused(other, 1, NULL, SOLA_EFORMAT, "conv_network.0.weight");
}
END_TEST

START_TEST(wrong_shapes_are_named)
{
    struct {
        int idx, ndim;
        int64_t shape[4];
        const char *name;
    } cases[] = {
        {0, 2, {3, 4}, "conv_network.0.weight"},
        {0, 3, {3, 4, 2}, "conv_network.0.weight"}, /* even kernel */
        {1, 1, {4}, "conv_network.0.bias"},
        {2, 3, {3, 4, 1}, "conv_network.2.weight"},
        {2, 3, {3, 3, 2}, "conv_network.2.weight"},
        {3, 2, {3, 1}, "conv_network.2.bias"},
        {4, 2, {4, 3}, "conv_network.4.weight"}, /* [C, H] without the kernel axis */
        {4, 3, {4, 3, 3}, "conv_network.4.weight"},
        {4, 3, {3, 4, 1}, "conv_network.4.weight"}, /* transposed */
        {5, 1, {3}, "conv_network.4.bias"},
        {6, 1, {2}, "alpha"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        raw_t t[16];
        int n = module_tensors(t);
        raw_t *r = &t[cases[c].idx];
        r->ndim = cases[c].ndim;
        size_t numel = 1;
        for (int d = 0; d < r->ndim; d++)
            numel *= (size_t)(r->shape[d] = cases[c].shape[d]);
        r->nbytes = numel * 4;
        expect_refused(t, n, NULL, SOLA_ESHAPE, cases[c].name);
    }
}
END_TEST

START_TEST(head_is_all_or_nothing)
{
    raw_t t[16];
    int n = module_tensors(t);
    t[n++] = (raw_t){"dissim_head.network.0.weight", "F32", 2, {5, 4}, pool, 80};
    t[n++] = (raw_t){"dissim_head.network.0.bias", "F32", 1, {5}, pool, 20};
    t[n++] = (raw_t){"dissim_head.network.2.weight", "F32", 2, {4, 5}, pool, 80};
    expect_refused(t, n, NULL, SOLA_EFORMAT, "dissim_head.network.2.bias");
    t[n++] = (raw_t){"dissim_head.network.2.bias", "F32", 1, {4}, pool, 16};
    sola_err e = {0};
    sola_model *m = load_raw(t, n, NULL, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    ck_assert_int_eq(m->P, 5);
    sola_model_free(m);
    t[n - 2].shape[1] = 4; /* [C, P] -> [C, C]: P mismatch */
    t[n - 2].nbytes = 64;
    expect_refused(t, n, NULL, SOLA_ESHAPE, "dissim_head.network.2.weight");
}
END_TEST

START_TEST(bad_dilation_metadata_refused)
{
    raw_t t[16];
    int n = module_tensors(t);
    expect_refused(t, n, "{\"dilation1\":\"0\"}", SOLA_EFORMAT, "dilation1");
    expect_refused(t, n, "{\"dilation2\":\"two\"}", SOLA_EFORMAT, "dilation2");
    expect_refused(t, n, "{\"dilation1\":\"3x\"}", SOLA_EFORMAT, "dilation1");
    expect_refused(t, n, "{\"dilation1\":\"99999999999\"}", SOLA_EFORMAT, "dilation1");
    sola_err e = {0};
    sola_model *m = load_raw(t, n, "{\"dilation1\":\"4\",\"epochs\":\"150\"}", &e);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->d1, 4);
    ck_assert_int_eq(m->d2, 1);
    ck_assert_str_eq(sola_model_meta(m, "epochs"), "150");
    sola_model_free(m);
}
END_TEST

START_TEST(non_finite_and_integer_params_refused)
{
    raw_t t[16];
    int n = module_tensors(t);
    float bias[3] = {0, NAN, 0};
    t[1].data = bias;
    expect_refused(t, n, NULL, SOLA_EFORMAT, "conv_network.0.bias");
    n = module_tensors(t);
    int64_t ia[1] = {0};
    t[6] = (raw_t){"alpha", "I64", 1, {1}, ia, 8};
    expect_refused(t, n, NULL, SOLA_EUNSUP, "alpha");
    /* a weight of many blocks of the check (1024 floats each): NaN, +Inf, -Inf at the
     * first, a middle and the last element are each found, at the right index */
    enum { H = 8, C = 300, K = 3, NW = H * C * K };
    static float w[NW];
    static const size_t at[] = {0, 1023, 1024, 2500, NW - 1};
    static const float bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t a = 0; a < sizeof at / sizeof at[0]; a++)
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            for (size_t i = 0; i < NW; i++)
                w[i] = (float)((int)(i % 13) - 6) * 5e37f; /* large but finite */
            w[at[a]] = bad[b];
            static float zeros[C * H];
            raw_t big[7];
            module_tensors_of(big, C, H, K, w, zeros);
            char needle[96];
            snprintf(needle, sizeof needle, "conv_network.0.weight holds NaN or Inf at element %zu",
                     at[a]);
            expect_refused(big, 7, NULL, SOLA_EFORMAT, needle);
        }
    /* and the same weights, all finite, load */
    for (size_t i = 0; i < NW; i++)
        w[i] = (float)((int)(i % 13) - 6) * 5e37f;
    sola_err e = {0};
    raw_t ok[7];
    module_tensors_of(ok, C, H, K, w, w);
    sola_model *m = load_raw(ok, 7, NULL, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    sola_model_free(m);
}
END_TEST

/* F16/BF16/F64 parameters convert; integer extras (step counters) are kept. */
START_TEST(other_dtypes_convert)
{
    raw_t t[16];
    int n = module_tensors(t);
    uint16_t h[3] = {0x3c00, 0xc000, 0x3800}; /* 1, -2, 0.5 */
    uint16_t bf[4] = {0x3f80, 0x4040, 0xbf00, 0}; /* 1, 3, -0.5, 0 */
    double a = 0.75;
    t[1] = (raw_t){"conv_network.0.bias", "F16", 1, {3}, h, 6};
    t[5] = (raw_t){"conv_network.4.bias", "BF16", 1, {4}, bf, 8};
    t[6] = (raw_t){"alpha", "F64", 1, {1}, &a, 8};
    int64_t step[2] = {1234567, -3};
    t[n++] = (raw_t){"optimizer.step", "I64", 1, {2}, step, 16};
    sola_err e = {0};
    sola_model *m = load_raw(t, n, NULL, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    ck_assert(m->b0[0] == 1 && m->b0[1] == -2 && m->b0[2] == 0.5f);
    ck_assert(m->b4[0] == 1 && m->b4[1] == 3 && m->b4[2] == -0.5f && m->b4[3] == 0);
    ck_assert(m->alpha[0] == 0.75f);
    const sola_tensor *s = sola_model_extra(m, "optimizer.step");
    ck_assert_ptr_nonnull(s);
    ck_assert(s->data[0] == 1234567.0f && s->data[1] == -3.0f);
    sola_model_free(m);
}
END_TEST

/* The F16 fixture written by tests/ref/make_fixtures.py holds the k5k3 model rounded
 * to half precision: every weight must come back as exactly that rounding. */
START_TEST(f16_fixture_matches_f32_model)
{
    char *p32 = tu_path("tests/data/ref/k5k3.safetensors");
    char *p16 = tu_path("tests/data/ref/f16.safetensors");
    sola_err e = {0};
    sola_model *a = sola_model_load(p32, &e);
    ck_assert_msg(a != NULL, "%s", e.msg);
    sola_model *b = sola_model_load(p16, &e);
    ck_assert_msg(b != NULL, "%s", e.msg);
    ck_assert_uint_eq(a->nparams, b->nparams);
    size_t differ = 0;
    for (size_t i = 0; i < a->nparams; i++) {
        /* half has 11 significant bits: relative error <= 2^-11 (normal range) */
        ck_assert_msg(fabsf(a->params[i] - b->params[i]) <= fabsf(a->params[i]) * 0x1p-11f + 1e-7f,
                      "param %zu: %g vs %g", i, a->params[i], b->params[i]);
        differ += a->params[i] != b->params[i];
    }
    ck_assert_msg(differ > a->nparams / 2, "F16 file looks like F32 (%zu differ)", differ);
    sola_model_free(a);
    sola_model_free(b);
    free(p32);
    free(p16);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_add_test(tc, layout_is_contiguous_and_module_first);
    tcase_add_test(tc, bad_shapes_refused_by_new);
    tcase_add_test(tc, init_matches_pytorch_default);
    tcase_add_test(tc, add_head_keeps_module);
    tcase_add_test(tc, pack_layout);
    tcase_add_test(tc, pack_keeps_no_unread_copy);
    tcase_add_test(tc, pool_for_covers_each_item_once);
    tcase_add_test(tc, bigbuf_alignment);
    tcase_add_test(tc, gemm_warm_beside_products);
    tcase_add_test(tc, save_load_round_trip);
    tcase_add_test(tc, missing_file_is_notfound);
    tcase_add_test(tc, minimal_torch_checkpoint_loads);
    tcase_add_test(tc, prefixed_checkpoints_load);
    tcase_add_test(tc, missing_tensors_are_named);
    tcase_add_test(tc, wrong_shapes_are_named);
    tcase_add_test(tc, head_is_all_or_nothing);
    tcase_add_test(tc, bad_dilation_metadata_refused);
    tcase_add_test(tc, non_finite_and_integer_params_refused);
    tcase_add_test(tc, other_dtypes_convert);
    tcase_add_test(tc, f16_fixture_matches_f32_model);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
