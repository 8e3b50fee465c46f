/* batcher.h -- dynamic batching of refine passes.
 *
 * Worker threads (libuv's pool) parse requests and then hand their sequences to the
 * batcher, which owns the compute threads (--workers of them). A compute thread takes
 * the oldest waiting request, waits up to --batch-window-us for more requests of the
 * same model version while other workers are still parsing (never when nobody else
 * could join), gathers up to --max-batch-frames snippets, and computes them as one
 * padded pass (sola_refine_padded). The result is bit-identical to a pass of each
 * request alone (core/model/refine.c explains the layout that makes it so), so batching
 * changes throughput and latency, never a reply's bytes. */
#ifndef SOLAD_BATCHER_H
#define SOLAD_BATCHER_H

#include <stdatomic.h>

#include "err.h"
#include "model.h"
#include "refine.h"

typedef struct batcher batcher;

typedef struct batcher_stats {
    long passes;      /* refine passes computed */
    long requests;    /* requests served by them */
    long frames;      /* snippets */
    int inside;       /* requests queued or being computed now */
} batcher_stats;

/* nthreads compute threads; window_us >= 0; max_frames >= 1 (snippets per pass);
 * busy: the number of work items executing on workers (the server's `running`),
 * read to know whether anyone else may still join a batch. NULL + e on failure. */
batcher *batcher_new(int nthreads, int window_us, int max_frames, atomic_int *busy,
                     sola_err *e);
/* Stops and joins the compute threads; no call to batcher_refine may be in progress. */
void batcher_free(batcher *b);

/* Worker thread: refines n sequences of lengths lens laid end to end in x [sum, C]
 * into y, as sola_refine_batch would, bit for bit; blocks until done. A model that
 * cannot batch bit-identically (sola_refine_batchable) and a request larger than
 * max_frames are computed alone, still on the compute threads. 0 or SOLA_E*. */
int batcher_refine(batcher *b, const sola_model *m, const float *x, const int *lens, int n,
                   float *y, sola_err *e);

/* Worker thread: runs fn(arg) on one of the compute threads, alone, in turn with the
 * refine passes; blocks until it has run. So work other than refine (a TSM and its
 * encoding) is as concurrent as --workers, not as the parsing pool. 0, or SOLA_EIO
 * when the batcher is stopping (fn not run). */
int batcher_run(batcher *b, void (*fn)(void *arg), void *arg, sola_err *e);

/* Any thread, never blocks: when no job waits and a compute thread is idle, queues
 * fn(arg) to run on that thread at once and returns 0; posted(arg) is then called on
 * the same thread right after fn returns (the batcher has let go of the job by then,
 * so posted may hand arg over to another thread). Else -1, and nothing is queued (the
 * caller takes the usual way: a worker, then batcher_refine). batcher_refine and
 * batcher_run called from fn compute right there, as a pass of their own -- the same
 * bits as every other pass. This saves a lone request two thread hand-offs (worker to
 * compute thread and back). */
int batcher_post(batcher *b, void (*fn)(void *arg), void (*posted)(void *arg), void *arg);

void batcher_get_stats(batcher *b, batcher_stats *st);

#endif
