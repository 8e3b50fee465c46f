/* refine_pipe.h -- the loop of `sola refine DIR` as a three-stage pipeline.
 *
 * A reader thread reads video i+1 straight into the padded layout of a refine pass
 * (core/refine.h) while the calling thread refines video i and a writer thread writes
 * video i-1: file I/O overlaps the compute instead of following it. Two input and two
 * output buffers, each grown to the largest video seen and then reused, and one
 * workspace: no allocation per file once the longest video has passed. Only the
 * calling thread runs products (its GEMM threads are the run's --threads), so the
 * reader and writer never compete for the GEMM library's threads.
 *
 * The caller supplies what differs per layout as hooks; the writer calls `finish` for
 * every video in order, so bookkeeping (skips, progress, missing_files.txt) stays
 * sequential. Results are bit-identical to refining each video with sola_refine. */
#ifndef SOLA_CLI_REFINE_PIPE_H
#define SOLA_CLI_REFINE_PIPE_H

#include <stdint.h>

#include "err.h"
#include "model.h"
#include "refine.h"

typedef struct cli_pipe_hooks {
    /* Reader thread: fills x [T, C] with video i (the pipe zeroes the padding rows
     * after it). 0 or SOLA_E* with e filled. */
    int (*read)(void *ud, int i, int64_t T, float *x, sola_err *e);
    /* Writer thread, once per video, in order. stage: how far video i got -- 0 its read
     * failed, 1 its refine failed (rc, e say why), 2 refined: y [T, C] is the result
     * (valid during the call only) and the hook writes it, returning the outcome in
     * *rc / *e itself. Returns nonzero to stop the run (no later video is finished). */
    int (*finish)(void *ud, int i, int stage, const float *y, int64_t T, int *rc,
                  sola_err *e);
    void *ud;
} cli_pipe_hooks;

/* Refines videos 0..n-1 of lengths T[i] through the hooks (a video whose buffers
 * cannot be allocated, or whose T is < 1 or > INT_MAX, fails at stage 0 with that
 * reason). Returns 0, or 1 when finish stopped the run. */
int cli_refine_pipe(const sola_model *m, sola_ws *ws, int n, const int64_t *T,
                    const cli_pipe_hooks *h);

#endif
