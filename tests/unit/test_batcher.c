/* test_batcher.c -- server/batcher.c in-process (linked into the test, as libuv's runner
 * links the library), where its queue can be driven into exact states.
 *
 * No wait for a next arrival: a request queued while the only compute thread runs
 * another one is computed once that pass ends, though nobody else ever arrives.
 * Batching is bit-exact: requests that meet in one pass (the leader waits while
 * "workers" are busy) get the bytes of a sola_refine of each alone, on one compute
 * thread or two; so do requests split over passes by max_frames.
 * A function job (batcher_run) runs on a compute thread, in turn with the refines.
 * A posted job (batcher_post) is taken only by an idle compute thread with nothing
 * queued, runs there, and the refines and function jobs it asks for run right there
 * (with one compute thread, anything queued instead would never run): the same bits. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batcher.h"
#include "gemm.h"
#include "model.h"
#include "refine.h"
#include "rng.h"
#include "testutil.h"

#define C 64

static sola_model *model(int k1, int k2, uint64_t seed)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(C, 64, k1, k2, 0, &e);
    ck_assert_ptr_nonnull(m);
    sola_model_init(m, seed);
    m->alpha[0] = 0.7f;
    ck_assert_int_eq(sola_model_pack(m, &e), 0);
    return m;
}

static float *randx(uint64_t seed, size_t n)
{
    sola_rng r;
    sola_rng_seed(&r, seed);
    float *x = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)sola_rng_normal(&r);
    return x;
}

/* sola_refine of one sequence alone: the bytes every batched reply must have. */
static float *alone(const sola_model *m, const float *x, int T)
{
    sola_ws *ws = sola_ws_new();
    sola_err e = {0};
    float *y = malloc((size_t)T * C * sizeof(float));
    ck_assert_int_eq(sola_refine(m, x, T, y, ws, &e), 0);
    sola_ws_free(ws);
    return y;
}

/* One batcher_refine of one sequence, on a thread of its own. */
typedef struct req {
    batcher *b;
    const sola_model *m;
    float *x, *y;
    int T, rc;
    sola_err e;
    atomic_int finished;
    pthread_t th;
} req;

static void *req_main(void *arg)
{
    req *q = arg;
    q->rc = batcher_refine(q->b, q->m, q->x, &q->T, 1, q->y, &q->e);
    atomic_store(&q->finished, 1);
    return NULL;
}

static void req_start(req *q, batcher *b, const sola_model *m, int T, uint64_t seed)
{
    memset(q, 0, sizeof *q);
    q->b = b;
    q->m = m;
    q->T = T;
    q->x = randx(seed, (size_t)T * C);
    q->y = malloc((size_t)T * C * sizeof(float));
    ck_assert_int_eq(pthread_create(&q->th, NULL, req_main, q), 0);
}

/* Joins q, failing (instead of hanging) if it is not done within 60 s: a request left
 * in the queue waits for an arrival that never comes. Then its reply against alone. */
static void req_finish(req *q, const char *what)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 60;
    int rc = pthread_timedjoin_np(q->th, NULL, &dl);
    ck_assert_msg(rc == 0, "%s: the request was never computed (left in the queue)", what);
    ck_assert_msg(q->rc == 0, "%s: %s", what, q->e.msg);
    float *ref = alone(q->m, q->x, q->T);
    ck_assert_msg(!memcmp(ref, q->y, (size_t)q->T * C * sizeof(float)),
                  "%s: the batched reply (T=%d) differs from the sequence refined alone", what,
                  q->T);
    free(ref);
    free(q->x);
    free(q->y);
}

static batcher_stats stats(batcher *b)
{
    batcher_stats st;
    batcher_get_stats(b, &st);
    return st;
}

/* Until `inside` requests are in the batcher (60 s at most). */
static void wait_inside(batcher *b, int inside)
{
    struct timespec ms10 = {0, 10 * 1000000L};
    for (int i = 0; i < 6000 && stats(b).inside != inside; i++)
        nanosleep(&ms10, NULL);
    ck_assert_int_eq(stats(b).inside, inside);
}

/* A function job that holds its compute thread until released. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running, open;
    batcher *b;
    int rc;
    sola_err e;
} gate;

static void gate_fn(void *arg)
{
    gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->running = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void *gate_main(void *arg)
{
    gate *g = arg;
    g->rc = batcher_run(g->b, gate_fn, g, &g->e);
    return NULL;
}

START_TEST(queued_during_a_pass_runs_without_a_new_arrival)
{
    sola_model *m = model(5, 1, 11);
    atomic_int busy = 0; /* nobody parsing: the leader never waits for company */
    sola_err e = {0};
    batcher *b = batcher_new(1, 100000, 4096, &busy, &e);
    ck_assert_msg(b != NULL, "%s", e.msg);
    gate g = {.b = b};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    pthread_t gt;
    ck_assert_int_eq(pthread_create(&gt, NULL, gate_main, &g), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.running)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    /* the only compute thread is busy; two refines queue behind it */
    req q[2];
    req_start(&q[0], b, m, 7, 1);
    req_start(&q[1], b, m, 30, 2);
    wait_inside(b, 3);
    ck_assert(!atomic_load(&q[0].finished) && !atomic_load(&q[1].finished));
    pthread_mutex_lock(&g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(gt, NULL);
    ck_assert_int_eq(g.rc, 0);
    /* nothing else arrives: the thread must go back to the queue by itself */
    req_finish(&q[0], "first queued");
    req_finish(&q[1], "second queued");
    batcher_stats st = stats(b);
    ck_assert_int_eq(st.inside, 0);
    ck_assert_int_eq(st.requests, 2);
    ck_assert_int_eq(st.passes, 1); /* both were waiting: one pass */
    batcher_free(b);
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mu);
    sola_model_free(m);
}
END_TEST

/* n requests while n "workers" are busy: the leader waits up to window_us until all
 * are in (or the pass is full), so they share passes; each reply equals its refine
 * alone. busy stays n: a pass after the first waits out the window unless full. */
static batcher_stats meet(const sola_model *m, int nthreads, int window_us, int max_frames,
                          int n, const int *lens)
{
    atomic_int busy = n;
    sola_err e = {0};
    batcher *b = batcher_new(nthreads, window_us, max_frames, &busy, &e);
    ck_assert_msg(b != NULL, "%s", e.msg);
    req *q = calloc((size_t)n, sizeof *q);
    for (int i = 0; i < n; i++)
        req_start(&q[i], b, m, lens[i], 100 + (uint64_t)i);
    char what[64];
    for (int i = 0; i < n; i++) {
        snprintf(what, sizeof what, "request %d of %d", i, n);
        req_finish(&q[i], what);
    }
    batcher_stats st = stats(b);
    batcher_free(b);
    free(q);
    ck_assert_int_eq(st.requests, n);
    ck_assert_int_eq(st.inside, 0);
    return st;
}

START_TEST(requests_that_meet_share_a_pass_bit_for_bit)
{
    int lens[6] = {1, 5, 17, 2, 64, 9};
    sola_model *m = model(5, 3, 12);
    m->d2 = 2;
    ck_assert_int_eq(sola_refine_batchable(m), 1);
    /* a window long enough for any machine: the 6 are in long before it ends */
    batcher_stats st = meet(m, 1, 60 * 1000000, 4096, 6, lens);
    ck_assert_msg(st.passes == 1, "6 requests that met took %ld passes", st.passes);
    ck_assert_int_eq(st.frames, 1 + 5 + 17 + 2 + 64 + 9);
    /* two compute threads: still every reply exact */
    meet(m, 2, 60 * 1000000, 4096, 6, lens);
    sola_model_free(m);
}
END_TEST

START_TEST(max_frames_splits_passes_bit_for_bit)
{
    int lens[8] = {30, 30, 30, 30, 30, 30, 30, 100};
    sola_model *m = model(3, 1, 13);
    batcher_stats st = meet(m, 1, 20000, 64, 8, lens);
    /* 2 of 30 fit in 64; the 100 is alone */
    ck_assert_msg(st.passes >= 5, "%ld passes for 310 snippets at 64 a pass", st.passes);
    ck_assert_int_eq(st.requests, 8);
    sola_model_free(m);
}
END_TEST

START_TEST(run_and_stop)
{
    atomic_int busy = 0;
    sola_err e = {0};
    batcher *b = batcher_new(2, 0, 128, &busy, &e);
    ck_assert_msg(b != NULL, "%s", e.msg);
    gate g = {.b = b, .open = 1};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    ck_assert_int_eq(batcher_run(b, gate_fn, &g, &e), 0);
    ck_assert_int_eq(g.running, 1);
    /* function jobs are not refine passes */
    ck_assert_int_eq(stats(b).passes, 0);
    /* a sequence of length 0 is refused before it is queued */
    sola_model *m = model(3, 1, 14);
    float x[C] = {0}, y[C];
    int bad = 0;
    ck_assert_int_eq(batcher_refine(b, m, x, &bad, 1, y, &e), SOLA_ESHAPE);
    ck_assert_msg(strstr(e.msg, "length 0"), "%s", e.msg);
    ck_assert_int_eq(stats(b).inside, 0);
    batcher_free(b);
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mu);
    sola_model_free(m);
}
END_TEST

/* What a posted job does on its compute thread: one refine and one function job,
 * then posted() tells the test thread. */
typedef struct post {
    batcher *b;
    const sola_model *m;
    float *x, *y;
    int T, rc_refine, rc_run, ran, posted;
    pthread_t fn_thread, posted_thread;
    sola_err e;
    gate g;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} post;

static void post_fn(void *arg)
{
    post *p = arg;
    p->fn_thread = pthread_self();
    p->rc_refine = batcher_refine(p->b, p->m, p->x, &p->T, 1, p->y, &p->e);
    p->rc_run = batcher_run(p->b, gate_fn, &p->g, &p->e);
    p->ran = 1;
}

static void post_done(void *arg)
{
    post *p = arg;
    pthread_mutex_lock(&p->mu);
    p->posted_thread = pthread_self();
    p->posted = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* A posted job on b refining T random rows (seed) with m; its gate open, so the
 * function job it runs returns at once. */
static void post_init(post *p, batcher *b, const sola_model *m, int T, uint64_t seed)
{
    *p = (post){.b = b, .m = m, .T = T};
    p->x = randx(seed, (size_t)T * C);
    p->y = malloc((size_t)T * C * sizeof(float));
    p->g.open = 1;
    pthread_mutex_init(&p->g.mu, NULL);
    pthread_cond_init(&p->g.cv, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
}

/* batcher_post until it takes the job (its compute thread may still be starting). */
static void post_when_idle(batcher *b, post *p)
{
    struct timespec ms1 = {0, 1000000L};
    int rc = -1;
    for (int i = 0; i < 60000 && (rc = batcher_post(b, post_fn, post_done, p)); i++)
        nanosleep(&ms1, NULL);
    ck_assert_msg(rc == 0, "batcher_post never found the idle compute thread");
}

/* Until posted() ran (60 s at most: a refine queued from the job would hang it). */
static void wait_posted(post *p)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 60;
    pthread_mutex_lock(&p->mu);
    while (!p->posted && pthread_cond_timedwait(&p->cv, &p->mu, &dl) != ETIMEDOUT)
        ;
    int done = p->posted;
    pthread_mutex_unlock(&p->mu);
    ck_assert_msg(done, "the posted job never finished (a refine it asked for was queued "
                        "behind it?)");
}

START_TEST(posted_job_computes_on_its_thread_bit_for_bit)
{
    sola_model *m = model(5, 1, 15);
    atomic_int busy = 1; /* as if a worker were parsing: a queued leader would wait */
    sola_err e = {0};
    batcher *b = batcher_new(1, 60 * 1000000, 4096, &busy, &e);
    ck_assert_msg(b != NULL, "%s", e.msg);
    post p;
    post_init(&p, b, m, 23, 21);
    post_when_idle(b, &p);
    wait_posted(&p);
    ck_assert(p.ran);
    ck_assert_msg(p.rc_refine == 0, "%s", p.e.msg);
    ck_assert_int_eq(p.rc_run, 0);
    ck_assert_int_eq(p.g.running, 1);
    ck_assert(!pthread_equal(p.fn_thread, pthread_self()));
    ck_assert(pthread_equal(p.fn_thread, p.posted_thread));
    float *ref = alone(m, p.x, p.T);
    ck_assert_msg(!memcmp(ref, p.y, (size_t)p.T * C * sizeof(float)),
                  "the refine of a posted job differs from the sequence refined alone");
    free(ref);
    batcher_stats st = stats(b);
    ck_assert_int_eq(st.passes, 1); /* its refine is a pass; the job itself is not */
    ck_assert_int_eq(st.requests, 1);
    ck_assert_int_eq(st.frames, 23);
    ck_assert_int_eq(st.inside, 0);

    /* no idle compute thread (a function job holds it), then a refine queued behind
     * it: neither may be overtaken by a posted job */
    gate g = {.b = b};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    pthread_t gt;
    ck_assert_int_eq(pthread_create(&gt, NULL, gate_main, &g), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.running)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    post p2 = {0};
    ck_assert_int_eq(batcher_post(b, post_fn, post_done, &p2), -1);
    req q;
    req_start(&q, b, m, 9, 22);
    wait_inside(b, 2);
    ck_assert_int_eq(batcher_post(b, post_fn, post_done, &p2), -1);
    pthread_mutex_lock(&g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(gt, NULL);
    req_finish(&q, "queued behind a function job");
    ck_assert(!p2.ran);

    /* idle again: a second posted job is taken */
    post p3;
    post_init(&p3, b, m, 5, 23);
    post_when_idle(b, &p3);
    wait_posted(&p3);
    ck_assert_msg(p3.rc_refine == 0, "%s", p3.e.msg);
    ref = alone(m, p3.x, p3.T);
    ck_assert(!memcmp(ref, p3.y, (size_t)p3.T * C * sizeof(float)));
    free(ref);
    ck_assert_int_eq(stats(b).requests, 3);
    batcher_free(b);
    free(p.x);
    free(p.y);
    free(p3.x);
    free(p3.y);
    sola_model_free(m);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("batcher");
    TCase *tc = tcase_create("queue");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, queued_during_a_pass_runs_without_a_new_arrival);
    tcase_add_test(tc, requests_that_meet_share_a_pass_bit_for_bit);
    tcase_add_test(tc, max_frames_splits_passes_bit_for_bit);
    tcase_add_test(tc, run_and_stop);
    tcase_add_test(tc, posted_job_computes_on_its_thread_bit_for_bit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* every thread's products on one GEMM thread, the references' included
     * (batchable is per thread count: core/model/refine.h) */
    sola_gemm_set_threads(1);
    return tu_run(suite());
}
