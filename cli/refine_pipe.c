/* refine_pipe.c -- see refine_pipe.h. One mutex and one condition variable guard the
 * four buffers' "full" flags; the data moves outside the lock. Buffer k of each pair
 * carries the videos i with i % 2 == k, so each stage walks its pair in order. */
#include "refine_pipe.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct pbuf {
    float *p;
    size_t cap;   /* floats */
    int64_t T;
    size_t prows;
    int stage, rc; /* how far the video got (refine_pipe.h), and why it stopped */
    sola_err e;
    int full;
} pbuf;

typedef struct pipe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const sola_model *m;
    sola_ws *ws;
    const cli_pipe_hooks *h;
    const int64_t *T;
    int n;
    sola_rowplan plan;
    pbuf in[2], out[2];
    int stop;   /* every stage leaves at its next wait */
    int halted; /* finish asked for the stop */
} pipe;

/* Room for `floats` floats in b (contents not kept); 0 or -1. */
static int reserve(pbuf *b, size_t floats)
{
    if (floats <= b->cap)
        return 0;
    float *q = aligned_alloc(64, (floats * sizeof(float) + 63) & ~(size_t)63);
    if (!q)
        return -1;
    free(b->p);
    b->p = q;
    b->cap = floats;
    return 0;
}

/* Reader stage for video i into b. */
static void fill(pipe *P, int i, pbuf *b)
{
    int64_t T = P->T[i];
    size_t C = (size_t)P->m->C, floats;
    b->T = T;
    b->stage = 0;
    b->rc = 0;
    if (T < 1 || T > INT_MAX) {
        b->rc = sola_errf(&b->e, SOLA_ESHAPE, "T = %lld snippets is out of range", (long long)T);
        return;
    }
    b->prows = sola_rowplan_rows(&P->plan, (size_t)T);
    if (sola_mul_size(b->prows, C, &floats) || reserve(b, floats)) {
        b->rc = sola_errf(&b->e, SOLA_ENOMEM, "out of memory for %lld x %zu floats",
                          (long long)T, C);
        return;
    }
    if ((b->rc = P->h->read(P->h->ud, i, T, b->p, &b->e)))
        return;
    memset(b->p + (size_t)T * C, 0, (b->prows - (size_t)T) * C * sizeof(float));
    b->stage = 1;
}

/* Compute stage: video in `x` into `y`. */
static void compute(pipe *P, const pbuf *x, pbuf *y)
{
    y->T = x->T;
    y->stage = x->stage;
    y->rc = x->rc;
    if (x->stage < 1) {
        y->e = x->e;
        return;
    }
    size_t floats = x->prows * (size_t)P->m->C, off = 0;
    int T = (int)x->T;
    if (reserve(y, floats)) {
        y->rc = sola_errf(&y->e, SOLA_ENOMEM, "out of memory for %d x %d floats", T, P->m->C);
        return;
    }
    if ((y->rc = sola_refine_padded(P->m, x->p, &off, &T, 1, x->prows, y->p, P->ws, &y->e)))
        return;
    y->stage = 2;
}

/* Writer stage; returns the hook's stop request. */
static int finish(pipe *P, int i, pbuf *y)
{
    return P->h->finish(P->h->ud, i, y->stage, y->stage == 2 ? y->p : NULL, y->T, &y->rc,
                        &y->e);
}

/* Waits until b->full == want or the run stops (lock held); 1 if it may go on. */
static int await(pipe *P, pbuf *b, int want)
{
    while (b->full != want && !P->stop)
        pthread_cond_wait(&P->cv, &P->mu);
    return b->full == want;
}

static void set_full(pipe *P, pbuf *b, int v)
{
    pthread_mutex_lock(&P->mu);
    b->full = v;
    pthread_cond_broadcast(&P->cv);
    pthread_mutex_unlock(&P->mu);
}

static void *reader_main(void *arg)
{
    pipe *P = arg;
    for (int i = 0; i < P->n; i++) {
        pbuf *b = &P->in[i & 1];
        pthread_mutex_lock(&P->mu);
        int go = await(P, b, 0) && !P->stop;
        pthread_mutex_unlock(&P->mu);
        if (!go)
            break;
        fill(P, i, b);
        set_full(P, b, 1);
    }
    return NULL;
}

static void *writer_main(void *arg)
{
    pipe *P = arg;
    for (int i = 0; i < P->n; i++) {
        pbuf *y = &P->out[i & 1];
        pthread_mutex_lock(&P->mu);
        int go = await(P, y, 1);
        pthread_mutex_unlock(&P->mu);
        if (!go)
            break;
        int stop = finish(P, i, y);
        pthread_mutex_lock(&P->mu);
        y->full = 0;
        if (stop)
            P->stop = P->halted = 1;
        pthread_cond_broadcast(&P->cv);
        pthread_mutex_unlock(&P->mu);
        if (stop)
            break;
    }
    return NULL;
}

int cli_refine_pipe(const sola_model *m, sola_ws *ws, int n, const int64_t *T,
                    const cli_pipe_hooks *h)
{
    pipe P = {.m = m, .ws = ws, .h = h, .T = T, .n = n};
    pthread_mutex_init(&P.mu, NULL);
    pthread_cond_init(&P.cv, NULL);
    /* the plan depends on this thread's GEMM thread count: it refines */
    sola_refine_plan(m, &P.plan);
    pthread_t rt, wt;
    int have_r = pthread_create(&rt, NULL, reader_main, &P) == 0;
    int have_w = have_r && pthread_create(&wt, NULL, writer_main, &P) == 0;
    if (!have_w) {
        /* no threads to be had: the same stages one after the other */
        if (have_r) {
            pthread_mutex_lock(&P.mu);
            P.stop = 1;
            pthread_cond_broadcast(&P.cv);
            pthread_mutex_unlock(&P.mu);
            pthread_join(rt, NULL);
            P.stop = 0;
            P.in[0].full = P.in[1].full = 0;
        }
        for (int i = 0; i < n && !P.halted; i++) {
            fill(&P, i, &P.in[0]);
            compute(&P, &P.in[0], &P.out[0]);
            P.halted = finish(&P, i, &P.out[0]);
        }
    } else {
        for (int i = 0; i < n; i++) {
            pbuf *x = &P.in[i & 1], *y = &P.out[i & 1];
            pthread_mutex_lock(&P.mu);
            int go = await(&P, x, 1) && await(&P, y, 0) && !P.stop;
            pthread_mutex_unlock(&P.mu);
            if (!go)
                break;
            compute(&P, x, y);
            pthread_mutex_lock(&P.mu);
            y->full = 1;
            x->full = 0;
            pthread_cond_broadcast(&P.cv);
            pthread_mutex_unlock(&P.mu);
        }
        pthread_join(wt, NULL); /* it finishes every video the loop passed on */
        pthread_mutex_lock(&P.mu);
        P.stop = 1; /* the reader may be waiting for a buffer nobody will free */
        pthread_cond_broadcast(&P.cv);
        pthread_mutex_unlock(&P.mu);
        pthread_join(rt, NULL);
    }
    int stopped = P.halted;
    for (int k = 0; k < 2; k++) {
        free(P.in[k].p);
        free(P.out[k].p);
    }
    pthread_cond_destroy(&P.cv);
    pthread_mutex_destroy(&P.mu);
    return stopped;
}
