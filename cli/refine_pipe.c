/* refine_pipe.c -- see refine_pipe.h. One mutex and one condition variable guard the
 * two buffers' states; the data moves outside the lock. Buffer k carries the videos i
 * with i % 2 == k: the I/O thread fills it (READY), the calling thread refines it in
 * place (DONE), the I/O thread writes it and fills it with video i + 2. */
#include "refine_pipe.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bigbuf.h"
#include "fsutil.h"
#include "stream.h"

enum { FREE, READY, DONE };

typedef struct pbuf {
    char *base;   /* SOLA_DIO_ALIGN-aligned; the rows start at base + lead */
    size_t cap;   /* floats of rows it holds */
    float *p;
    int64_t T;
    size_t prows;
    int stage, rc; /* how far the video got (refine_pipe.h), and why it stopped */
    sola_err e;
    int state;
    size_t stable; /* the last video refined in pieces: rows [0, stable) are final and
                    * no later piece touches them (guarded by the mutex) */
} pbuf;

typedef struct pipe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const sola_model *m;
    sola_ws *ws;
    const cli_pipe_hooks *h;
    const int64_t *T;
    int n;
    size_t lead;
    sola_rowplan plan;
    pbuf b[2];
    int stop;   /* both sides leave at their next wait */
    int halted; /* finish asked for the stop */
} pipe;

/* The lead before the rows as the pipe uses it: the caller's, rounded up to 64 bytes. */
static size_t lead_rounded(size_t lead)
{
    return (lead + 63) / 64 * 64;
}

/* A buffer for `lead` bytes then `floats` floats of rows, SOLA_DIO_ALIGN-aligned and a
 * whole number of SOLA_DIO_ALIGN blocks long (O_DIRECT writes it as it is); NULL when
 * the size overflows or no memory is left. */
static char *dio_alloc(size_t floats, size_t lead)
{
    size_t bytes;
    if (sola_mul_size(floats, sizeof(float), &bytes) || sola_add_size(bytes, lead, &bytes) ||
        sola_add_size(bytes, SOLA_DIO_ALIGN - 1, &bytes))
        return NULL;
    bytes = bytes / SOLA_DIO_ALIGN * SOLA_DIO_ALIGN;
    /* sola_bigbuf_alloc aligns a small buffer to 64 bytes only */
    return bytes < SOLA_BIGBUF_MIN ? aligned_alloc(SOLA_DIO_ALIGN, bytes)
                                   : sola_bigbuf_alloc(bytes);
}

/* Room for `floats` floats of rows in b (contents not kept); 0 or -1. */
static int reserve(pbuf *b, size_t floats, size_t lead)
{
    if (floats <= b->cap)
        return 0;
    char *q = dio_alloc(floats, lead);
    if (!q)
        return -1;
    free(b->base);
    b->base = q;
    b->p = (float *)(q + lead);
    b->cap = floats;
    return 0;
}

/* Video 0 handed over from a read ahead (refine_pipe.h) when it fits b's pass; 1 if
 * taken (b then holds it as fill would have left it), 0 to read it here. */
static int adopt_first(pipe *P, pbuf *b)
{
    cli_pipe_first *f = P->h->first;
    size_t C = (size_t)P->m->C, need;
    if (!f || !f->base || f->T != P->T[0] || f->lead != P->lead || f->C != P->m->C)
        return 0;
    size_t prows = sola_rowplan_rows(&P->plan, (size_t)f->T);
    if (sola_mul_size(prows, C, &need) || need > f->cap)
        return 0;
    free(b->base);
    b->base = f->base;
    b->cap = f->cap;
    b->p = (float *)(f->base + P->lead);
    f->base = NULL;
    b->T = f->T;
    b->stable = 0;
    b->prows = prows;
    b->stage = 0;
    b->rc = f->rc;
    if (f->rc) {
        b->e = f->e;
        return 1;
    }
    memset(b->p + (size_t)f->T * C, 0, (prows - (size_t)f->T) * C * sizeof(float));
    b->stage = 1;
    return 1;
}

/* Reads video i into b. */
static void fill(pipe *P, int i, pbuf *b)
{
    if (i == 0 && adopt_first(P, b))
        return;
    int64_t T = P->T[i];
    size_t C = (size_t)P->m->C, floats;
    b->T = T;
    b->stable = 0;
    b->stage = 0;
    b->rc = 0;
    if (T < 1 || T > INT_MAX) {
        b->rc = sola_errf(&b->e, SOLA_ESHAPE, "T = %lld snippets is out of range", (long long)T);
        return;
    }
    b->prows = sola_rowplan_rows(&P->plan, (size_t)T);
    if (sola_mul_size(b->prows, C, &floats) || reserve(b, floats, P->lead)) {
        b->rc = sola_errf(&b->e, SOLA_ENOMEM, "out of memory for %lld x %zu floats",
                          (long long)T, C);
        return;
    }
    if ((b->rc = P->h->read(P->h->ud, i, T, b->p, &b->e)))
        return;
    memset(b->p + (size_t)T * C, 0, (b->prows - (size_t)T) * C * sizeof(float));
    b->stage = 1;
}

static void set_stable(pipe *P, pbuf *b, size_t rows);

/* The last video of a run is refined in pieces of rows so that the I/O thread writes
 * the first rows while the last ones are computed: nothing else is left to overlap
 * its write. Piece k keeps output rows [s_k, s_k+1); cuts at 1/2, 3/4, 7/8 ... of T
 * while every piece has at least PIECE_MIN rows, at most PIECES_MAX pieces. */
enum { PIECE_MIN = 32, PIECES_MAX = 6 };

/* The cuts s_0 = 0 < s_1 < ... < s_K = T of video b into *K pieces, or 0 when the
 * video is not cut: the plan is not row-independent (refine.h), the video is short,
 * or a piece's pass would not fit in the buffer. */
static int cut_pieces(const pipe *P, const pbuf *b, size_t R, size_t *s, int *K)
{
    size_t T = (size_t)b->T, C = (size_t)P->m->C, align = P->plan.seq_align;
    if (!P->h->part || !P->plan.exact || align < 1 || T < 2 * PIECE_MIN)
        return 0;
    size_t room = b->cap / C; /* rows a pass may span in b */
    int k = 1;
    s[0] = 0;
    while (k < PIECES_MAX) {
        size_t at = s[k - 1], a = k > 1 ? at - R : 0, c = at + (T - at) / 2, got = 0;
        /* a window starts at c - R: a multiple of the plan's seq_align (OpenBLAS); the
         * piece before the cut and the rest after it (should it be the last piece) must
         * each fit in b with their padding rows: a few cuts are tried */
        for (int tries = 0; tries < 64 && c >= 2 * R && c >= at + PIECE_MIN; tries++) {
            c = R + (c - R) / align * align;
            if (c < 2 * R || c < at + PIECE_MIN || c + PIECE_MIN > T)
                break;
            size_t e = c + R < T ? c + R : T;
            if (a + sola_rowplan_rows(&P->plan, e - a) <= room &&
                c - R + sola_rowplan_rows(&P->plan, T - (c - R)) <= room) {
                got = c;
                break;
            }
            if (c < align + 1)
                break;
            c -= align;
        }
        if (!got)
            break;
        s[k++] = got;
    }
    s[k] = T;
    if (k < 2)
        return 0;
    *K = k;
    return 1;
}

/* Video b refined in the pieces of cut_pieces, each an ordinary pass over its window
 * [s_k - R, s_k+1 + R) (clipped to the video) in place in b. Row independence
 * (refine.h) makes every kept row the same bits as in one pass over the whole video.
 * A pass writes all its rows: the rows of the window's edges are put back afterwards
 * -- the previous piece's outputs before it, the following input after it -- and the
 * R input rows before each cut, which the previous piece overwrites, are kept for the
 * next. After each piece the rows no later piece touches are published (set_stable).
 * 0, or an error in b->rc / b->e. */
static int compute_pieces(pipe *P, pbuf *b, size_t R, const size_t *s, int K)
{
    size_t T = (size_t)b->T, C = (size_t)P->m->C, row = C * sizeof(float), most = 0;
    for (int k = 0; k < K; k++) {
        size_t a = k ? s[k] - R : 0, e = s[k + 1] + R < T ? s[k + 1] + R : T;
        size_t end = a + sola_rowplan_rows(&P->plan, e - a);
        if (k + 1 < K && end - (s[k + 1] - R) > most)
            most = end - (s[k + 1] - R);
    }
    float *keep = malloc((most + 1) * row), *prev = malloc((R + 1) * row);
    if (!keep || !prev) {
        free(keep);
        free(prev);
        return -1; /* refined in one pass instead */
    }
    int rc = 0;
    for (int k = 0; k < K && !rc; k++) {
        size_t a = k ? s[k] - R : 0, e = s[k + 1] + R < T ? s[k + 1] + R : T;
        size_t rows = sola_rowplan_rows(&P->plan, e - a), end = a + rows;
        float *w = b->p + a * C;
        if (k) {
            /* rows [a, s_k): the previous piece's outputs aside, their inputs back */
            memcpy(prev, w, R * row);
            memcpy(w, keep, R * row);
        }
        if (k + 1 < K) /* the inputs from s_k+1 - R on, to put back */
            memcpy(keep, b->p + (s[k + 1] - R) * C, (end - (s[k + 1] - R)) * row);
        memset(b->p + e * C, 0, (end - e) * row); /* the pass's padding rows */
        size_t off = 0;
        int len = (int)(e - a);
        rc = sola_refine_padded(P->m, w, &off, &len, 1, rows, w, P->ws, &b->e);
        if (k)
            memcpy(w, prev, R * row);
        if (k + 1 < K) {
            memcpy(b->p + s[k + 1] * C, keep + R * C, (end - s[k + 1]) * row);
            if (!rc)
                set_stable(P, b, s[k + 1] - R);
        }
    }
    free(keep);
    free(prev);
    b->rc = rc;
    return rc ? 1 : 0;
}

/* Refines the video in b in place: sola_refine_padded reads each input row before it
 * writes the output row of that place (refine.h), so the output is the same as into
 * a second buffer. The last video goes in pieces (compute_pieces) when it can. */
static void compute(pipe *P, pbuf *b, int last)
{
    if (b->stage < 1)
        return;
    size_t s[PIECES_MAX + 1], R = (size_t)sola_stream_radius(P->m);
    int K = 0;
    if (last && cut_pieces(P, b, R, s, &K)) {
        int rc = compute_pieces(P, b, R, s, K);
        if (rc > 0)
            return;
        if (rc == 0) {
            b->stage = 2;
            return;
        }
    }
    size_t off = 0;
    int T = (int)b->T;
    if ((b->rc = sola_refine_padded(P->m, b->p, &off, &T, 1, b->prows, b->p, P->ws, &b->e)))
        return;
    b->stage = 2;
}

/* Finishes video i of b; returns the hook's stop request. */
static int finish(pipe *P, int i, pbuf *b)
{
    return P->h->finish(P->h->ud, i, b->stage, b->stage == 2 ? b->p : NULL, b->T, &b->rc,
                        &b->e);
}

static void *first_main(void *arg)
{
    cli_pipe_first *f = arg;
    f->rc = f->read(f->ud, f->T, (float *)(f->base + f->lead), &f->e);
    if (f->warm)
        sola_gemm_warm();
    return NULL;
}

int cli_pipe_first_start(cli_pipe_first *f)
{
    size_t floats;
    f->base = NULL;
    f->started = 0;
    f->lead = lead_rounded(f->lead);
    if (f->T < 1 || f->T > INT_MAX || f->C < 1 ||
        sola_mul_size((size_t)f->T + CLI_PIPE_FIRST_SLACK, (size_t)f->C, &floats) ||
        !(f->base = dio_alloc(floats, f->lead)))
        return -1;
    f->cap = floats;
    if (pthread_create(&f->thread, NULL, first_main, f)) {
        free(f->base);
        f->base = NULL;
        return -1;
    }
    f->started = 1;
    return 0;
}

void cli_pipe_first_wait(cli_pipe_first *f)
{
    if (!f->started)
        return;
    pthread_join(f->thread, NULL);
    f->started = 0;
}

void cli_pipe_first_free(cli_pipe_first *f)
{
    cli_pipe_first_wait(f);
    free(f->base);
    f->base = NULL;
}

static void set_state(pipe *P, pbuf *b, int state, int stop)
{
    pthread_mutex_lock(&P->mu);
    b->state = state;
    if (stop)
        P->stop = P->halted = 1;
    pthread_cond_broadcast(&P->cv);
    pthread_mutex_unlock(&P->mu);
}

static void set_stable(pipe *P, pbuf *b, size_t rows)
{
    pthread_mutex_lock(&P->mu);
    b->stable = rows;
    pthread_cond_broadcast(&P->cv);
    pthread_mutex_unlock(&P->mu);
}

/* The I/O thread's wait for the last video: hands each newly final range of rows to
 * the part hook until the video is DONE; 1 if it may go on. */
static int await_parts(pipe *P, pbuf *b, int i)
{
    size_t sent = 0;
    pthread_mutex_lock(&P->mu);
    /* a range published before the video was DONE is handed over even if the I/O
     * thread comes late (whatever the timing, the hook sees the same calls) */
    while (!P->stop && (b->state != DONE || b->stable > sent)) {
        if (b->stable > sent) {
            sent = b->stable;
            pthread_mutex_unlock(&P->mu);
            P->h->part(P->h->ud, i, b->p, b->T, (int64_t)sent);
            pthread_mutex_lock(&P->mu);
            continue;
        }
        pthread_cond_wait(&P->cv, &P->mu);
    }
    int go = !P->stop;
    pthread_mutex_unlock(&P->mu);
    return go;
}

/* Waits until b is in `state` or the run stops; 1 if it may go on. */
static int await(pipe *P, pbuf *b, int state)
{
    pthread_mutex_lock(&P->mu);
    while (b->state != state && !P->stop)
        pthread_cond_wait(&P->cv, &P->mu);
    int go = !P->stop;
    pthread_mutex_unlock(&P->mu);
    return go;
}

/* The I/O thread: reads the first two videos, then per video writes it and reads
 * the one two places on into its buffer. */
static void *io_main(void *arg)
{
    pipe *P = arg;
    for (int i = 0; i < 2 && i < P->n; i++) {
        fill(P, i, &P->b[i]);
        set_state(P, &P->b[i], READY, 0);
    }
    for (int i = 0; i < P->n; i++) {
        pbuf *b = &P->b[i & 1];
        if (!(i == P->n - 1 && P->h->part ? await_parts(P, b, i) : await(P, b, DONE)))
            break;
        if (finish(P, i, b)) {
            set_state(P, b, FREE, 1);
            break;
        }
        if (i + 2 < P->n)
            fill(P, i + 2, b);
        set_state(P, b, i + 2 < P->n ? READY : FREE, 0);
    }
    return NULL;
}

int cli_refine_pipe(const sola_model *m, sola_ws *ws, int n, const int64_t *T,
                    const cli_pipe_hooks *h)
{
    pipe P = {.m = m, .ws = ws, .h = h, .T = T, .n = n,
              .lead = lead_rounded(h->lead)};
    pthread_mutex_init(&P.mu, NULL);
    pthread_cond_init(&P.cv, NULL);
    /* the plan depends on this thread's GEMM thread count: it refines */
    sola_refine_plan(m, &P.plan);
    pthread_t io;
    if (n > 0 && pthread_create(&io, NULL, io_main, &P) == 0) {
        for (int i = 0; i < n; i++) {
            pbuf *b = &P.b[i & 1];
            if (!await(&P, b, READY))
                break;
            compute(&P, b, i == n - 1);
            set_state(&P, b, DONE, 0);
        }
        pthread_join(io, NULL);
    } else {
        /* no thread to be had: the same stages one after the other */
        for (int i = 0; i < n && !P.halted; i++) {
            fill(&P, i, &P.b[0]);
            compute(&P, &P.b[0], 0);
            P.halted = finish(&P, i, &P.b[0]);
        }
    }
    for (int k = 0; k < 2; k++)
        free(P.b[k].base);
    pthread_cond_destroy(&P.cv);
    pthread_mutex_destroy(&P.mu);
    return P.halted;
}
