/* stream.h -- online refine: one sequence fed in chunks as it is produced, each
 * refined row handed out as soon as it is final.
 *
 * Refined row t depends on input rows t - R .. t + R only (R = sola_stream_radius:
 * (k1/2) d1 + (k2/2) d2), so it is final once row t + R has arrived; the last R rows
 * become final when the sequence ends, with the offline zero padding. A stream keeps
 * the last 2R input rows and two counters, nothing else.
 *
 * Bit-identity with the offline refine of the whole sequence: each push refines one
 * window [a, e) of the sequence -- the context it kept plus the new rows -- as an
 * ordinary sequence of a refine pass (sola_refine_batch, or a caller's batcher built on
 * the same layout), and keeps the rows t with a <= t - R (or a = 0) and t + R < e (or
 * the sequence ended at e). refine.h ("Row independence") is the guarantee that such a
 * row has the same bits as in the pass over the whole sequence; on a backend whose
 * plan asks sequences to start on a multiple of seq_align (OpenBLAS), the window is
 * preceded by a mod seq_align zero rows, so every row t sits at the same place in the
 * kernel's row block as in the offline pass (t mod seq_align). Rows near the window's
 * inner edges, which see those zeros or miss their right context, are computed and
 * dropped. This holds when sola_refine_batchable(m) on the refining thread, with the
 * same thread count as the offline pass; otherwise only to float32 rounding.
 *
 * Thread rules: a stream is plain data; one thread at a time may use it. */
#ifndef SOLA_STREAM_H
#define SOLA_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "model.h"
#include "refine.h"

typedef struct sola_stream sola_stream;

/* The pass a push runs: n sequences of lengths lens end to end in x -> y, exactly as
 * sola_refine_batch (which is what a NULL function means, on ws). */
typedef int (*sola_stream_refine_fn)(void *arg, const sola_model *m, const float *x,
                                     const int *lens, int n, float *y, sola_ws *ws,
                                     sola_err *e);

/* R of model m: the rows on each side that a refined row depends on. */
int sola_stream_radius(const sola_model *m);

/* A new stream for sequences of m's shape (C, R); m is not kept. NULL + e. */
sola_stream *sola_stream_new(const sola_model *m, sola_err *e);
void sola_stream_free(sola_stream *s);

/* Bytes the stream holds (its struct and its context rows). */
size_t sola_stream_bytes(const sola_stream *s);
/* Rows received so far, rows handed out so far (the next one's index), and whether the
 * sequence has ended. */
int64_t sola_stream_received(const sola_stream *s);
int64_t sola_stream_emitted(const sola_stream *s);
int sola_stream_ended(const sola_stream *s);

/* How many rows a push of n rows (end: the last chunk) would hand out. */
int64_t sola_stream_ready_after(const sola_stream *s, int64_t n, int end);

/* Appends x [n, C] (n >= 0; x may be NULL when n = 0) and, with end, closes the
 * sequence. Writes the rows that became final, in order, to y [k, C] where
 * k = sola_stream_ready_after(s, n, end) as computed before the call; their indices are
 * sola_stream_emitted(s) (before the call) onwards. m must have the shape the stream
 * was made for (SOLA_ESHAPE otherwise) and should be the same version (the caller pins
 * it). fn/arg: the refine pass (NULL: sola_refine_batch on ws). 0, or an error with e
 * filled and the stream unchanged (SOLA_EINVAL after the end, SOLA_ETOOBIG past 2^62
 * rows, SOLA_ENOMEM, or what the pass returned). */
int sola_stream_push(sola_stream *s, const sola_model *m, const float *x, int n, int end,
                     float *y, sola_ws *ws, sola_stream_refine_fn fn, void *arg, sola_err *e);

#endif
