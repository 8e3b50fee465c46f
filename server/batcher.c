/* batcher.c -- see batcher.h. One mutex guards the queue; each request waits on its
 * own condition variable, so finishing a pass wakes exactly its members. */
#include "batcher.h"

#include "gemm.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct job {
    struct job *next;
    const sola_model *m;
    const float *x;
    const int *lens;
    int n;
    long frames;
    float *y;
    int solo;          /* computed alone (not batchable, or too big) */
    void (*fn)(void *); /* batcher_run: a function to run instead of a refine */
    void *arg;
    void (*posted)(void *); /* batcher_post: called with arg when fn has run (the job
                             * is the batcher's, freed first); NULL: a waiting submitter */
    int done, rc;
    sola_err e;
    pthread_cond_t cv;
} job;

struct batcher {
    pthread_mutex_t mu;
    pthread_cond_t cv_work; /* a job arrived, or stop */
    job *head, *tail;
    int inside;             /* submitters in batcher_refine (queued or being computed)
                             * and posted jobs not yet done */
    int idle;               /* compute threads waiting for a job */
    int stop;
    int window_us;
    long max_frames;
    atomic_int *busy;
    int nthreads, started;
    pthread_t *threads;
    batcher_stats stats;
};

/* Per compute thread: the padded input/output and the layout, grown as needed. */
struct cthread {
    sola_ws *ws;
    float *xp, *yp;
    size_t cap;     /* floats each */
    int *lens;
    size_t *offs;
    int lcap;
};
typedef struct cthread cthread;

static void deadline_after(struct timespec *ts, int us)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_nsec += (long)us * 1000L;
    ts->tv_sec += ts->tv_nsec / 1000000000L;
    ts->tv_nsec %= 1000000000L;
}

static int past(const struct timespec *ts)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > ts->tv_sec || (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

/* The batcher whose compute thread this is (NULL elsewhere), and its buffers: a
 * refine or a function asked for from a posted job runs right here (batcher_post). */
static _Thread_local batcher *t_batcher;
static _Thread_local struct cthread *t_cthread;

/* Frames of queued batchable jobs of model m (lock held). */
static long joinable_frames(batcher *b, const sola_model *m)
{
    long f = 0;
    for (job *j = b->head; j; j = j->next)
        if (j->m == m && !j->solo)
            f += j->frames;
    return f;
}

/* Takes the next pass off the queue (lock held): the head, and for a batchable head
 * every later job of the same model that still fits. Returns the list (linked by
 * next) and its job count. */
static job *take_pass(batcher *b, int *count)
{
    job *first = b->head, *list = NULL, **lt = &list, **pp = &b->head;
    long frames = 0;
    *count = 0;
    b->tail = NULL;
    for (job *j = b->head; j;) {
        job *nx = j->next;
        int take = j == first ||
                   (!first->solo && !j->solo && j->m == first->m &&
                    frames + j->frames <= b->max_frames);
        if (take) {
            *pp = nx;
            j->next = NULL;
            *lt = j;
            lt = &j->next;
            frames += j->frames;
            (*count)++;
        } else {
            b->tail = j;
            pp = &j->next;
        }
        j = nx;
    }
    return list;
}

static int ct_reserve(cthread *t, size_t floats, int nseq)
{
    if (floats > t->cap) {
        float *a = aligned_alloc(64, (floats * sizeof(float) + 63) & ~(size_t)63);
        float *c = aligned_alloc(64, (floats * sizeof(float) + 63) & ~(size_t)63);
        if (!a || !c) {
            free(a);
            free(c);
            return -1;
        }
        free(t->xp);
        free(t->yp);
        t->xp = a;
        t->yp = c;
        t->cap = floats;
    }
    if (nseq > t->lcap) {
        int *l = malloc(sizeof *l * (size_t)nseq);
        size_t *o = malloc(sizeof *o * (size_t)nseq);
        if (!l || !o) {
            free(l);
            free(o);
            return -1;
        }
        free(t->lens);
        free(t->offs);
        t->lens = l;
        t->offs = o;
        t->lcap = nseq;
    }
    return 0;
}

/* Computes one pass (no lock held); fills rc/e of every job. */
static void compute(cthread *t, job *list)
{
    if (list->fn) { /* batcher_run: always alone */
        list->fn(list->arg);
        list->rc = 0;
        return;
    }
    const sola_model *m = list->m;
    sola_err e = {0};
    int rc = 0, nseq = 0;
    for (job *j = list; j; j = j->next)
        nseq += j->n;
    size_t C = (size_t)m->C, prows = 0, total = 0;
    if (ct_reserve(t, 0, nseq)) {
        rc = sola_errf(&e, SOLA_ENOMEM, "out of memory for a batch of %d sequences", nseq);
        goto out;
    }
    int s = 0;
    for (job *j = list; j; j = j->next)
        for (int i = 0; i < j->n; i++)
            t->lens[s++] = j->lens[i];
    if ((rc = sola_refine_layout(m, t->lens, nseq, t->offs, &prows, &e)))
        goto out;
    if (nseq == 1 && prows == (size_t)t->lens[0]) {
        /* a lone sequence whose layout is itself (no padding rows): computed straight
         * from the request's buffer into the reply's, as sola_refine_batch does --
         * the gather and scatter copies cost 2 x 8 MB of memory traffic at T = 1000 */
        rc = sola_refine_padded(m, list->x, t->offs, t->lens, 1, prows, list->y, t->ws, &e);
        goto out;
    }
    if (sola_mul_size(prows, C, &total) || ct_reserve(t, total, nseq)) {
        rc = sola_errf(&e, SOLA_ENOMEM, "out of memory for a batch of %zu rows", prows);
        goto out;
    }
    /* gather: sequences at their offsets, zero rows between (refine.h's layout) */
    size_t r = 0;
    s = 0;
    for (job *j = list; j; j = j->next) {
        const float *src = j->x;
        for (int i = 0; i < j->n; i++, s++) {
            size_t o = t->offs[s], L = (size_t)t->lens[s];
            memset(t->xp + r * C, 0, (o - r) * C * sizeof(float));
            memcpy(t->xp + o * C, src, L * C * sizeof(float));
            src += L * C;
            r = o + L;
        }
    }
    memset(t->xp + r * C, 0, (prows - r) * C * sizeof(float));
    if ((rc = sola_refine_padded(m, t->xp, t->offs, t->lens, nseq, prows, t->yp, t->ws, &e)))
        goto out;
    s = 0;
    for (job *j = list; j; j = j->next) {
        float *dst = j->y;
        for (int i = 0; i < j->n; i++, s++) {
            size_t L = (size_t)t->lens[s];
            memcpy(dst, t->yp + t->offs[s] * C, L * C * sizeof(float));
            dst += L * C;
        }
    }
out:
    for (job *j = list; j; j = j->next) {
        j->rc = rc;
        if (rc)
            j->e = e;
    }
}

static void *compute_main(void *arg)
{
    batcher *b = arg;
    cthread t = {0};
    t.ws = sola_ws_new();
    t_batcher = b;
    t_cthread = &t;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        b->idle++;
        while (!b->stop && !b->head)
            pthread_cond_wait(&b->cv_work, &b->mu);
        b->idle--;
        if (!b->head) /* stop, and nothing left to serve */
            break;
        job *first = b->head;
        if (!first->solo && b->window_us > 0) {
            /* wait for company while it may come: other workers are busy (parsing a
             * request that may join) and the pass is not full yet */
            /* `first` lives on its submitter's stack: once another compute thread has
             * taken it (the head changed while this one waited), it may be gone, so
             * only its model is kept and the head compared before each look */
            const sola_model *fm = first->m;
            struct timespec dl;
            deadline_after(&dl, b->window_us);
            while (!b->stop && b->head == first && !past(&dl) &&
                   joinable_frames(b, fm) < b->max_frames && atomic_load(b->busy) > b->inside)
                if (pthread_cond_timedwait(&b->cv_work, &b->mu, &dl) == ETIMEDOUT)
                    break;
        }
        if (b->head != first) /* another compute thread took it meanwhile */
            continue;
        int count;
        job *list = take_pass(b, &count);
        pthread_mutex_unlock(&b->mu);
        if (!t.ws && !list->fn) {
            for (job *j = list; j; j = j->next)
                j->rc = sola_errf(&j->e, SOLA_ENOMEM, "out of memory for a workspace");
        } else {
            compute(&t, list);
        }
        pthread_mutex_lock(&b->mu);
        if (!b->head) /* no pass follows at once: the helpers need not spin for one */
            sola_gemm_rest();
        if (!list->fn) { /* refine passes only */
            b->stats.passes++;
            b->stats.requests += count;
        }
        if (list->posted) { /* alone in its pass (a function job); its refines counted */
            void (*posted)(void *) = list->posted;
            void *arg = list->arg;
            b->inside--;
            free(list);
            pthread_mutex_unlock(&b->mu);
            posted(arg);
            pthread_mutex_lock(&b->mu);
            continue;
        }
        for (job *j = list, *nx; j; j = nx) {
            nx = j->next;
            b->stats.frames += j->frames;
            j->done = 1;
            pthread_cond_signal(&j->cv);
        }
    }
    pthread_mutex_unlock(&b->mu);
    sola_ws_free(t.ws);
    free(t.xp);
    free(t.yp);
    free(t.lens);
    free(t.offs);
    return NULL;
}

batcher *batcher_new(int nthreads, int window_us, int max_frames, atomic_int *busy,
                     sola_err *e)
{
    batcher *b = calloc(1, sizeof *b);
    if (!b || !(b->threads = calloc((size_t)nthreads, sizeof *b->threads)))
        goto nomem;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv_work, &ca);
    pthread_condattr_destroy(&ca);
    b->window_us = window_us;
    b->max_frames = max_frames;
    b->busy = busy;
    b->nthreads = nthreads;
    for (; b->started < nthreads; b->started++)
        if (pthread_create(&b->threads[b->started], NULL, compute_main, b)) {
            int i = b->started;
            batcher_free(b);
            sola_errf(e, SOLA_EIO, "cannot start compute thread %d", i + 1);
            return NULL;
        }
    return b;
nomem:
    if (b)
        free(b->threads);
    free(b);
    sola_errf(e, SOLA_ENOMEM, "out of memory for the batcher");
    return NULL;
}

void batcher_free(batcher *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_broadcast(&b->cv_work);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < b->started; i++)
        pthread_join(b->threads[i], NULL);
    pthread_cond_destroy(&b->cv_work);
    pthread_mutex_destroy(&b->mu);
    free(b->threads);
    free(b);
}

/* Queues j (the caller's, on its stack) and blocks until a compute thread has done it.
 * 0, j's error (copied to e), or SOLA_EIO when the batcher is stopping (j not queued). */
static int submit(batcher *b, job *j, sola_err *e)
{
    pthread_cond_init(&j->cv, NULL);
    pthread_mutex_lock(&b->mu);
    if (b->stop) {
        pthread_mutex_unlock(&b->mu);
        pthread_cond_destroy(&j->cv);
        return sola_errf(e, SOLA_EIO, "the server is stopping");
    }
    if (b->tail)
        b->tail->next = j;
    else
        b->head = j;
    b->tail = j;
    b->inside++;
    pthread_cond_signal(&b->cv_work);
    while (!j->done)
        pthread_cond_wait(&j->cv, &b->mu);
    b->inside--;
    /* a leader waiting for company re-checks: one fewer may join */
    pthread_cond_signal(&b->cv_work);
    pthread_mutex_unlock(&b->mu);
    pthread_cond_destroy(&j->cv);
    if (j->rc)
        *e = j->e;
    return j->rc;
}

int batcher_refine(batcher *b, const sola_model *m, const float *x, const int *lens, int n,
                   float *y, sola_err *e)
{
    job j = {0};
    j.m = m;
    j.x = x;
    j.lens = lens;
    j.n = n;
    for (int i = 0; i < n; i++) {
        if (lens[i] < 1)
            return sola_errf(e, SOLA_ESHAPE, "refine: sequence %d has length %d", i, lens[i]);
        j.frames += lens[i];
    }
    j.y = y;
    j.solo = !sola_refine_batchable(m) || j.frames > b->max_frames;
    if (t_batcher == b) { /* from a posted job: a pass of its own, on this thread */
        cthread *t = t_cthread;
        if (!t->ws)
            j.rc = sola_errf(&j.e, SOLA_ENOMEM, "out of memory for a workspace");
        else
            compute(t, &j);
        pthread_mutex_lock(&b->mu);
        if (!b->head)
            sola_gemm_rest();
        b->stats.passes++;
        b->stats.requests++;
        b->stats.frames += j.frames;
        pthread_mutex_unlock(&b->mu);
        if (j.rc)
            *e = j.e;
        return j.rc;
    }
    return submit(b, &j, e);
}

int batcher_run(batcher *b, void (*fn)(void *arg), void *arg, sola_err *e)
{
    if (t_batcher == b) { /* from a posted job: already on a compute thread */
        fn(arg);
        return 0;
    }
    job j = {0};
    j.fn = fn;
    j.arg = arg;
    j.solo = 1;
    return submit(b, &j, e); /* a function job's rc is 0 */
}

int batcher_post(batcher *b, void (*fn)(void *arg), void (*posted)(void *arg), void *arg)
{
    job *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->fn = fn;
    j->arg = arg;
    j->posted = posted;
    j->solo = 1;
    pthread_mutex_lock(&b->mu);
    /* nothing waits (so nobody is overtaken, and no leader waits for company) and a
     * compute thread is free to take it now */
    if (b->stop || b->head || b->idle == 0) {
        pthread_mutex_unlock(&b->mu);
        free(j);
        return -1;
    }
    b->head = b->tail = j;
    b->inside++;
    pthread_cond_signal(&b->cv_work); /* only idle threads wait on it when head is NULL */
    pthread_mutex_unlock(&b->mu);
    return 0;
}

void batcher_get_stats(batcher *b, batcher_stats *st)
{
    pthread_mutex_lock(&b->mu);
    *st = b->stats;
    st->inside = b->inside;
    pthread_mutex_unlock(&b->mu);
}
