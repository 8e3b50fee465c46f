/* streams.h -- the open streams of online refine (docs/streaming.md): a table from
 * sequence_id to the stream's state (core/model/stream.h: its last 2R input rows) and the
 * model version it pinned at its start, with the limits (--max-streams, 503 past it;
 * --stream-idle-timeout, after which a stream is dropped and a later call gets 404
 * saying so) and the figures /metrics shows.
 *
 * Streams live in memory only: a restart or a kill of solad ends every open stream
 * (their clients get 404 and start again); models and datasets are on disk and are
 * not touched by streams.
 *
 * Thread rules: one mutex guards the table; a call holds its stream exclusively
 * between begin and finish (api/seq.h) and computes without the lock; a second call on
 * a stream in use gets 409. The idle sweep runs on the loop thread (a timer). */
#ifndef SOLAD_STREAMS_H
#define SOLAD_STREAMS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "api.h"
#include "api_helpers.h"
#include "registry.h"
#include "seq.h"

typedef struct srv_streams srv_streams;

/* max: open streams allowed (0: streams off); idle_ms: drop after this long without
 * a call. NULL on no memory. */
srv_streams *srv_streams_new(reg *r, int max, uint64_t idle_ms);
/* Ends every stream (releasing its model) and frees the table; the timer must have
 * been stopped (srv_streams_stop_timer). */
void srv_streams_free(srv_streams *t);

/* Loop thread: a timer that drops idle streams and keeps watchers (GET
 * /streams/ID/events) alive, and an async handle that wakes them; neither keeps the
 * loop alive. When *draining becomes nonzero the watchers are ended. stop closes them
 * (then let the loop run once so the closes complete). */
int srv_streams_start_timer(srv_streams *t, uv_loop_t *loop, const int *draining);
void srv_streams_stop_timer(srv_streams *t);

/* The api_seq_backend over a table; self is the table. */
extern const api_seq_backend srv_streams_backend;

/* Appends the streams' Prometheus families to a metrics text. 0 or -1 (no memory). */
int srv_streams_metrics(srv_streams *t, api_buf *b);

#endif
