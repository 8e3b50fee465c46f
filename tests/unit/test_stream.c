/* test_stream.c -- online refine (core/model/stream.h) gives the offline refine's bits.
 *
 * For several models (k1 = 1, 3, 5, 7, dilation 2, k2 = 3) and lengths around the
 * receptive field, every chunking -- one row at a time, random sizes with empty
 * chunks among them, one big chunk, the end sent alone -- concatenates to exactly
 * (memcmp) what sola_refine gives for the whole sequence, with 1 and 2 GEMM threads.
 * The same when each window shares its pass with other sequences (as the daemon's
 * batcher does), and on the PyTorch fixtures (tests/data/ref) to their tolerance.
 * scripts/test.sh runs this on both GEMM backends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "model.h"
#include "npy.h"
#include "refine.h"
#include "rng.h"
#include "stream.h"
#include "testutil.h"

#ifndef REF_TOL
#define REF_TOL 1e-5
#endif

static sola_model *model(int C, int H, int k1, int k2, int d1, int d2, uint64_t seed)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(C, H, k1, k2, 0, &e);
    ck_assert_ptr_nonnull(m);
    sola_model_init(m, seed);
    m->d1 = d1;
    m->d2 = d2;
    m->alpha[0] = 0.7f;
    ck_assert_int_eq(sola_model_pack(m, &e), 0);
    return m;
}

static float *randx(sola_rng *r, size_t n)
{
    float *x = malloc(n * sizeof(float) + 1);
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)sola_rng_normal(r);
    return x;
}

enum { CH_ONE, CH_RANDOM, CH_BIG, CH_BIG_END_ALONE, CH_NCHUNKINGS };
static const char *const chunk_names[] = {"one at a time", "random sizes", "one chunk",
                                          "one chunk, end sent alone"};

/* A refine pass that puts the window among other random sequences (before and after
 * it), the way the daemon's batcher may: the window's rows must not notice. */
typedef struct crowd {
    sola_rng r;
    int passes;
} crowd;

static int crowded_refine(void *arg, const sola_model *m, const float *x, const int *lens,
                          int n, float *y, sola_ws *ws, sola_err *e)
{
    crowd *c = arg;
    ck_assert_int_eq(n, 1);
    int L[3] = {1 + (int)(sola_rng_u64(&c->r) % 30), lens[0],
                1 + (int)(sola_rng_u64(&c->r) % 50)};
    size_t C = (size_t)m->C, rows = (size_t)L[0] + L[1] + L[2];
    float *xb = randx(&c->r, rows * C), *yb = malloc(rows * C * sizeof(float));
    ck_assert_ptr_nonnull(yb);
    memcpy(xb + (size_t)L[0] * C, x, (size_t)L[1] * C * sizeof(float));
    int rc = sola_refine_batch(m, xb, L, 3, yb, ws, e);
    if (!rc)
        memcpy(y, yb + (size_t)L[0] * C, (size_t)L[1] * C * sizeof(float));
    free(xb);
    free(yb);
    c->passes++;
    return rc;
}

/* Streams x [T, C] with the given chunking into out [T, C]; checks the counters and
 * that every push hands out exactly what sola_stream_ready_after promised. */
static void stream_all(const sola_model *m, const float *x, int T, int how, uint64_t seed,
                       sola_stream_refine_fn fn, void *arg, float *out)
{
    sola_err e = {0};
    sola_ws *ws = sola_ws_new();
    sola_stream *s = sola_stream_new(m, &e);
    ck_assert_msg(s != NULL, "%s", e.msg);
    sola_rng r;
    sola_rng_seed(&r, seed);
    size_t C = (size_t)m->C;
    int R = sola_stream_radius(m), sent = 0;
    int64_t got = 0;
    while (!sola_stream_ended(s)) {
        int n, end;
        switch (how) {
        case CH_ONE: n = sent < T ? 1 : 0; break;
        case CH_RANDOM: n = (int)(sola_rng_u64(&r) % 9); break; /* 0..8, empties too */
        case CH_BIG: n = T; break;
        default: n = sent < T ? T : 0; break;
        }
        if (n > T - sent)
            n = T - sent;
        end = how == CH_BIG_END_ALONE ? n == 0 : sent + n == T;
        if (how == CH_ONE && sent + n == T && T > 1 && sent % 2) /* now and then alone */
            end = 0;
        int64_t k = sola_stream_ready_after(s, n, end);
        ck_assert_int_eq(sola_stream_emitted(s), got);
        int rc = sola_stream_push(s, m, n ? x + (size_t)sent * C : NULL, n, end,
                                  out + (size_t)got * C, ws, fn, arg, &e);
        ck_assert_msg(rc == 0, "push of %d rows at %d: %s", n, sent, e.msg);
        sent += n;
        got += k;
        ck_assert_int_eq(sola_stream_emitted(s), got);
        ck_assert_int_eq(sola_stream_received(s), sent);
        if (!end) /* final once t + R has arrived, and not before */
            ck_assert_int_eq(got, sent > R ? sent - R : 0);
    }
    ck_assert_int_eq(got, T);
    /* after the end: nothing more goes in */
    float one[1];
    ck_assert_int_eq(sola_stream_push(s, m, NULL, 0, 1, one, ws, NULL, NULL, &e), SOLA_EINVAL);
    sola_stream_free(s);
    sola_ws_free(ws);
}

/* Every chunking of random sequences of lengths Ts against the offline refine. */
static int check_model(const sola_model *m, const int *Ts, int nT, uint64_t seed, int crowded)
{
    sola_rng r;
    sola_rng_seed(&r, seed);
    sola_err e = {0};
    sola_ws *ws = sola_ws_new();
    size_t C = (size_t)m->C;
    int checked = 0;
    for (int i = 0; i < nT; i++) {
        int T = Ts[i];
        float *x = randx(&r, (size_t)T * C), *ref = malloc((size_t)T * C * 4),
              *got = malloc((size_t)T * C * 4);
        ck_assert_int_eq(sola_refine(m, x, T, ref, ws, &e), 0);
        for (int how = 0; how < CH_NCHUNKINGS; how++) {
            crowd cr = {.passes = 0};
            sola_rng_seed(&cr.r, seed + (uint64_t)how);
            memset(got, 0xff, (size_t)T * C * 4);
            stream_all(m, x, T, how, seed + (uint64_t)(i * 7 + how),
                       crowded ? crowded_refine : NULL, &cr, got);
            size_t bad = 0;
            while (bad < (size_t)T && !memcmp(got + bad * C, ref + bad * C, C * 4))
                bad++;
            ck_assert_msg(bad == (size_t)T,
                          "k1=%d d1=%d k2=%d d2=%d (R=%d), T=%d, %s%s, %d GEMM threads: row %zu "
                          "differs from the offline refine (%g vs %g)",
                          m->k1, m->d1, m->k2, m->d2, sola_stream_radius(m), T,
                          chunk_names[how], crowded ? ", crowded passes" : "",
                          sola_gemm_threads(), bad, (double)got[bad * C],
                          (double)ref[bad * C]);
            checked++;
        }
        free(x);
        free(ref);
        free(got);
    }
    sola_ws_free(ws);
    return checked;
}

/* The lengths that matter for radius R: shorter than it, at it, around 2R + 1 (the
 * first window that is cut at both ends), and long. */
static int lengths(int R, int *Ts)
{
    int n = 0, cand[] = {1, 2, R, R + 1, 2 * R, 2 * R + 1, 2 * R + 2, 37, 130};
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
        if (cand[i] >= 1 && (n == 0 || cand[i] > Ts[n - 1]))
            Ts[n++] = cand[i];
    return n;
}

static const struct {
    int C, H, k1, k2, d1, d2;
} shapes[] = {
    {64, 64, 3, 1, 1, 1},   /* R = 1 */
    {64, 64, 5, 1, 1, 1},   /* R = 2, the authors' default */
    {64, 64, 7, 1, 1, 1},   /* R = 3 */
    {64, 64, 5, 3, 2, 1},   /* dilation 2: R = 5 */
    {128, 64, 3, 3, 1, 2},  /* k2 = 3, d2 = 2: R = 3 */
    {64, 128, 7, 3, 2, 2},  /* R = 8 */
    {64, 64, 1, 1, 1, 1},   /* R = 0: every row final at once */
};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

START_TEST(stream_bitwise)
{
    int threads = 1 + _i / NSHAPES, k = _i % NSHAPES;
    sola_gemm_set_threads(threads);
    sola_model *m = model(shapes[k].C, shapes[k].H, shapes[k].k1, shapes[k].k2, shapes[k].d1,
                          shapes[k].d2, 11 + (uint64_t)k);
    ck_assert_msg(sola_refine_batchable(m), "the test's models must be row-independent here");
    int Ts[16], nT = lengths(sola_stream_radius(m), Ts);
    ck_assert_int_ge(check_model(m, Ts, nT, 100 + (uint64_t)_i, 0), nT * CH_NCHUNKINGS);
    sola_model_free(m);
}
END_TEST

START_TEST(stream_bitwise_crowded)
{
    sola_gemm_set_threads(1 + _i);
    sola_model *m = model(64, 64, 5, 3, 1, 2, 5);
    int Ts[] = {1, 6, 7, 40, 200};
    ck_assert_int_ge(check_model(m, Ts, 5, 7 + (uint64_t)_i, 1), 5 * CH_NCHUNKINGS);
    sola_model_free(m);
}
END_TEST

/* The PyTorch fixtures: streamed one row at a time and in random chunks, each fixture
 * equals the reference to REF_TOL, and our offline refine bit for bit wherever the
 * backend's plan makes passes row-independent for that model (the fixtures' models are
 * small: OpenBLAS's padding rule does not cover them, oneDNN's does). */
START_TEST(stream_fixtures)
{
    char *path = tu_path("tests/data/ref/cases.txt");
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    free(path);
    char line[512];
    int cases = 0, bitwise = 0;
    sola_err e = {0};
    sola_ws *ws = sola_ws_new();
    sola_gemm_set_threads(1);
    while (fgets(line, sizeof line, f)) {
        char name[32];
        int C, H, k1, k2, d1, d2, used = 0;
        if (line[0] == '#' ||
            sscanf(line, "%31s %d %d %d %d %d %d%n", name, &C, &H, &k1, &k2, &d1, &d2, &used) != 7)
            continue;
        char rel[256];
        snprintf(rel, sizeof rel, "tests/data/ref/%s.safetensors", name);
        char *mp = tu_path(rel);
        sola_model *m = sola_model_load(mp, &e);
        free(mp);
        ck_assert_msg(m != NULL, "%s", e.msg);
        ck_assert_int_eq(sola_model_pack(m, &e), 0);
        int T, u;
        for (char *p = line + used; sscanf(p, "%d%n", &T, &u) == 1; p += u) {
            sola_array x = {0}, yref = {0};
            snprintf(rel, sizeof rel, "tests/data/ref/%s_T%d_x.npy", name, T);
            char *xp = tu_path(rel);
            snprintf(rel, sizeof rel, "tests/data/ref/%s_T%d_y.npy", name, T);
            char *yp = tu_path(rel);
            int have = sola_npy_load(xp, 0, &x, &e) == 0 && sola_npy_load(yp, 0, &yref, &e) == 0;
            free(xp);
            free(yp);
            if (!have) { /* not every T has its x and y written */
                sola_array_free(&x);
                sola_array_free(&yref);
                continue;
            }
            ck_assert_int_eq(x.shape[0], T);
            size_t n = (size_t)T * (size_t)C;
            float *off = malloc(n * 4), *got = malloc(n * 4);
            ck_assert_int_eq(sola_refine(m, x.data, T, off, ws, &e), 0);
            int exact = sola_refine_batchable(m);
            for (int how = CH_ONE; how <= CH_RANDOM; how++) {
                stream_all(m, x.data, T, how, 3, NULL, NULL, got);
                ck_assert_msg(!exact || !memcmp(got, off, n * 4),
                              "%s T=%d %s: not the offline bits", name, T, chunk_names[how]);
                bitwise += exact;
                double err = tu_max_rel_err(got, yref.data, n);
                ck_assert_msg(err < REF_TOL, "%s T=%d %s: max rel err %g vs PyTorch", name, T,
                              chunk_names[how], err);
            }
            cases++;
            free(off);
            free(got);
            sola_array_free(&x);
            sola_array_free(&yref);
        }
        sola_model_free(m);
    }
    fclose(f);
    sola_ws_free(ws);
    ck_assert_int_ge(cases, 8);
    printf("stream_fixtures (%s): %d fixtures, %d streamings compared bit for bit with the "
           "offline refine, all to %g of PyTorch\n", sola_gemm_backend(), cases, bitwise,
           REF_TOL);
}
END_TEST

/* What a user of the API gets wrong: pushing after the end, another model's shape,
 * and a failed push (here: a pass that fails) leaving the stream as it was. */
static int failing_refine(void *arg, const sola_model *m, const float *x, const int *lens,
                          int n, float *y, sola_ws *ws, sola_err *e)
{
    (void)arg, (void)m, (void)x, (void)lens, (void)n, (void)y, (void)ws;
    return sola_errf(e, SOLA_ENOMEM, "simulated failure");
}

START_TEST(stream_errors)
{
    sola_err e = {0};
    sola_model *m = model(64, 64, 5, 1, 1, 1, 1), *other = model(32, 64, 5, 1, 1, 1, 1);
    sola_ws *ws = sola_ws_new();
    sola_stream *s = sola_stream_new(m, &e);
    ck_assert_int_eq(sola_stream_radius(m), 2);
    ck_assert_uint_eq(sola_stream_bytes(s), sola_stream_bytes(s)); /* stable */
    ck_assert_uint_ge(sola_stream_bytes(s), 4 * 64 * sizeof(float)); /* 2R rows */
    ck_assert_uint_lt(sola_stream_bytes(s), 4 * 64 * sizeof(float) + 256);
    sola_rng r;
    sola_rng_seed(&r, 9);
    float *x = randx(&r, 10 * 64), *y = malloc(10 * 64 * 4), *ref = malloc(10 * 64 * 4);
    ck_assert_int_eq(sola_stream_push(s, other, x, 1, 0, y, ws, NULL, NULL, &e), SOLA_ESHAPE);
    ck_assert_int_eq(sola_stream_push(s, m, x, 3, 0, y, ws, NULL, NULL, &e), 0);
    ck_assert_int_eq(sola_stream_emitted(s), 1);
    /* a failing pass: the stream is unchanged and the next push carries on exactly */
    ck_assert_int_eq(sola_stream_push(s, m, x + 3 * 64, 4, 0, y, ws, failing_refine, NULL, &e),
                     SOLA_ENOMEM);
    ck_assert_int_eq(sola_stream_received(s), 3);
    ck_assert_int_eq(sola_stream_emitted(s), 1);
    ck_assert_int_eq(sola_stream_push(s, m, x + 3 * 64, 7, 1, y + 64, ws, NULL, NULL, &e), 0);
    ck_assert_int_eq(sola_refine(m, x, 10, ref, ws, &e), 0);
    ck_assert(!memcmp(y + 64, ref + 64, 9 * 64 * 4));
    ck_assert_int_eq(sola_stream_push(s, m, x, 1, 0, y, ws, NULL, NULL, &e), SOLA_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "ended"));
    ck_assert_int_eq(sola_stream_ready_after(s, 5, 1), 0);
    sola_stream_free(s);
    /* an empty sequence: start and end with nothing */
    s = sola_stream_new(m, &e);
    ck_assert_int_eq(sola_stream_push(s, m, NULL, 0, 1, y, ws, NULL, NULL, &e), 0);
    ck_assert_int_eq(sola_stream_emitted(s), 0);
    ck_assert(sola_stream_ended(s));
    sola_stream_free(s);
    free(x);
    free(y);
    free(ref);
    sola_ws_free(ws);
    sola_model_free(m);
    sola_model_free(other);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stream");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, stream_bitwise, 0, 2 * NSHAPES);
    tcase_add_loop_test(tc, stream_bitwise_crowded, 0, 2);
    tcase_add_test(tc, stream_fixtures);
    tcase_add_test(tc, stream_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
