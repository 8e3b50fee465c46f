/* refine_pipe.h -- the loop of `sola refine DIR` as a pipeline.
 *
 * While the calling thread refines video i, one I/O thread writes video i-1 and then
 * reads video i+1 straight into the padded layout of a refine pass (core/model/refine.h):
 * file I/O overlaps the compute instead of following it. Two buffers, each grown to
 * the longest video seen and then reused, and one workspace: no allocation per file
 * once the longest video has passed. A video is refined in place (its input rows
 * become its output rows), so each buffer carries a video from its read to its write
 * and two of them keep both sides busy. Only the calling thread runs products (its
 * GEMM threads are the run's --threads); the I/O thread never competes for them.
 *
 * The caller supplies what differs per layout as hooks; the I/O thread calls `finish`
 * for every video in order, so bookkeeping (skips, progress, missing_files.txt) stays
 * sequential. Results are bit-identical to refining each video with sola_refine.
 *
 * The last video has no next one to hide its write behind: it is refined in pieces of
 * rows (row independence, core/model/refine.h; only where the plan is exact) and the
 * `part` hook writes each range of rows as it becomes final, so what follows the
 * compute is the last piece's few rows, the fsync and the rename (measured 31-43 ms
 * for a T = 2304, C = 2048 video before, ~7 ms after: bench/README.md). */
#ifndef SOLA_CLI_REFINE_PIPE_H
#define SOLA_CLI_REFINE_PIPE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "model.h"
#include "refine.h"

/* Video 0 read ahead of the run, on a thread of its own, before the model is at hand:
 * `sola refine DIR` loads the model meanwhile (cmd_refine.c), so the first read no
 * longer comes after the load. The buffer has room for T + CLI_PIPE_FIRST_SLACK rows;
 * the pipe takes it over as its first buffer when the pass needs no more rows than
 * that (otherwise it reads video 0 itself), so results are the same either way. */
#define CLI_PIPE_FIRST_SLACK 64
typedef struct cli_pipe_first {
    char *base;   /* SOLA_DIO_ALIGN-aligned; rows at base + lead; NULL once taken over */
    size_t cap;   /* floats of rows it holds */
    size_t lead;  /* the lead it was read with (rounded as the pipe rounds it) */
    int64_t T;
    int rc;       /* the read's outcome (0 or SOLA_E*), e says why */
    sola_err e;
    /* the read */
    int (*read)(void *ud, int64_t T, float *x, sola_err *e);
    void *ud;
    int C;
    int warm;     /* then also the GEMM backend's one-time setup (sola_gemm_warm), off
                   * the path of the first refine */
    int started;  /* a thread runs the read: cli_pipe_first_wait joins it */
    pthread_t thread;
} cli_pipe_first;

/* Starts reading through f->read (f->ud, f->T, f->C and f->lead set by the caller,
 * the rest zero) on a new thread. Returns 0, or -1 when no buffer or thread could be
 * had (then the pipe simply reads video 0 itself; f stays unusable). */
int cli_pipe_first_start(cli_pipe_first *f);
/* Waits for the read. Idempotent. */
void cli_pipe_first_wait(cli_pipe_first *f);
/* Waits and frees what the pipe did not take over. */
void cli_pipe_first_free(cli_pipe_first *f);

typedef struct cli_pipe_hooks {
    /* Fills x [T, C] with video i (the pipe zeroes the padding rows after it). 0 or
     * SOLA_E* with e filled. */
    int (*read)(void *ud, int i, int64_t T, float *x, sola_err *e);
    /* Once per video, in order. stage: how far video i got -- 0 its read failed, 1 its
     * refine failed (rc, e say why), 2 refined: y [T, C] is the result (valid during
     * the call only; the hook may overwrite it and the `lead` bytes before it) and the
     * hook writes it, returning the outcome in *rc / *e itself. Returns nonzero to
     * stop the run (no later video is finished). */
    int (*finish)(void *ud, int i, int stage, float *y, int64_t T, int *rc, sola_err *e);
    void *ud;
    /* Bytes of room before each video's rows, a multiple of 64 (e.g. for a file
     * header), placed so that rows - lead is aligned to SOLA_DIO_ALIGN. */
    size_t lead;
    /* Optional (NULL: none): the last video is then refined in pieces of rows when
     * the plan allows (row independence, refine.h) and `part` is called on the I/O
     * thread, in order, each time more of it is final: rows [0, rows) of y [T, C]
     * (rows < T) are its output and stay as they are until finish, which follows as
     * for every video (with stage 1 if a later piece fails). The hook may write the
     * `lead` bytes before y; it reports its own failures through finish. */
    void (*part)(void *ud, int i, float *y, int64_t T, int64_t rows);
    /* Optional: video 0 as read ahead (cli_pipe_first_start; waited for already), or
     * NULL. The pipe takes its buffer over when it fits (T, lead and room). */
    cli_pipe_first *first;
} cli_pipe_hooks;

/* Refines videos 0..n-1 of lengths T[i] through the hooks (a video whose buffer
 * cannot be allocated, or whose T is < 1 or > INT_MAX, fails at stage 0 with that
 * reason). Returns 0, or 1 when finish stopped the run. */
int cli_refine_pipe(const sola_model *m, sola_ws *ws, int n, const int64_t *T,
                    const cli_pipe_hooks *h);

#endif
