/* seq.h -- online refine over HTTP (docs/streaming.md): what POST /refine and
 * POST /v2/models/M/infer share when a request carries a sequence_id, and what they
 * need from the daemon's table of open streams (server/streams.c).
 *
 * A call names its stream (sequence_id), opens it (sequence_start: the stream pins the
 * model version it resolves now) and/or closes it (sequence_end: the tail is flushed
 * with the offline zero padding), appends its chunk [n, C] (n >= 0) and gets back the
 * refined rows that became final with it, with the absolute index of the first one
 * (sequence_offset). The maths is core/model/stream.h. */
/* implemented in: seq_call.c */
#ifndef SOLA_API_SEQ_H
#define SOLA_API_SEQ_H

#include <stdint.h>

#include "api.h"
#include "stream.h"

/* 1..API_SEQ_ID_MAX characters of [A-Za-z0-9._:-] (a UUID, a camera name, a number). */
#define API_SEQ_ID_MAX 128

typedef struct api_seq_args {
    char id[API_SEQ_ID_MAX + 1];
    int has_id;
    int id_is_number; /* given as a JSON integer (v2): echoed as one */
    int start, end;
    int has_start, has_end; /* given at all (a flag without an id is an error) */
} api_seq_args;

/* The query parameters sequence_id, sequence_start, sequence_end (flags: 1/true/0/
 * false). 0, or SOLA_EINVAL with a message naming the parameter. */
int api_seq_from_query(const api_request *rq, api_seq_args *a, sola_err *e);
/* One member of a JSON object (v2 request parameters, /refine's JSON body): returns 1
 * if key is one of the three (a parsed, or an error in e with SOLA_EINVAL), 0 if it is
 * another key. where: "parameters" or "request body", for messages. */
int api_seq_json_member(api_seq_args *a, const char *key, json_t *v, const char *where,
                        int *rc, sola_err *e);
/* After parsing: flags without an id are an error. 0 or SOLA_EINVAL. */
int api_seq_check(const api_seq_args *a, sola_err *e);

/* ---- the daemon's table ------------------------------------------------------ */

typedef struct api_seq api_seq; /* one open stream, held by one call at a time */

/* Every function gets api_ctx.seq_self as self. */
typedef struct api_seq_backend {
    /* Worker thread. Holds stream a->id for this call: with a->start opens it (an idle
     * stream of the same id is replaced), pinning model `model` (NULL: the default)
     * version `version` (0: the active one); without, finds it, and a model or version
     * the request names must be the pinned ones. 0 and *out, or an HTTP status
     * (400, 404, 409, 503) with e->msg saying why and what to do. */
    int (*begin)(void *self, const api_seq_args *a, const char *model, int version,
                 api_seq **out, sola_err *e);
    /* The stream's state and its pinned model (borrowed, valid until finish). */
    sola_stream *(*stream)(api_seq *q);
    const sola_model *(*model)(api_seq *q);
    const char *(*model_name)(api_seq *q);
    int (*model_version)(api_seq *q);
    /* Worker thread, once per begin: releases the stream. how: API_SEQ_KEEP (it goes
     * on), API_SEQ_ENDED (its end was pushed: freed), API_SEQ_DISCARD (the call that
     * opened it failed: freed, as if never opened). */
    void (*finish)(void *self, api_seq *q, int how);
    /* Any thread: the open streams (new reference), or one of them (NULL +
     * SOLA_ENOTFOUND with the reason it is not open). */
    json_t *(*list)(void *self);
    json_t *(*describe)(void *self, const char *id, sola_err *e);
    /* Worker thread, between begin and finish: hands the rows a call produced (y [k, C],
     * the first at index `first`) to whoever watches the stream (GET
     * /streams/ID/events); cheap when nobody does. */
    void (*publish)(void *self, api_seq *q, const float *y, int64_t first, int64_t k,
                    int64_t received, int ended);
    /* Loop thread: a server-sent-events stream of stream `id`: a "state" event, then a
     * "rows" event for every batch of refined rows the stream hands out from now on
     * (b64: rows as base64 of little-endian float32, else JSON numbers), then "end".
     * 0, or SOLA_ENOTFOUND (not open) / SOLA_ENOMEM with e. */
    int (*watch)(void *self, const char *id, int b64, api_stream **out, sola_err *e);
} api_seq_backend;

enum { API_SEQ_KEEP, API_SEQ_ENDED, API_SEQ_DISCARD };

/* What one call produced. */
typedef struct api_seq_out {
    float *y;            /* [k, C] malloc'd, NULL when k = 0 */
    int64_t k, first;    /* rows handed out, absolute index of the first */
    int64_t received;    /* rows received so far, this chunk included */
    int C, ended;
    char model[72];
    int version;
    size_t held;         /* bytes of the memory budget y holds */
} api_seq_out;

/* Runs one call: x [n, C] (C ignored when n = 0). model/version: what the request
 * names (NULL/0: nothing). The pass's buffers and the rows out are reserved from the
 * memory budget first (api_mem_reserve). 0 and out filled (free it with
 * api_seq_out_free), or nonzero with the error reply already in rs (status, message,
 * Retry-After for 503). */
int api_seq_push(const api_ctx *ctx, const api_seq_args *a, const char *model, int version,
                 const float *x, int64_t n, int64_t C, sola_ws *ws, api_seq_out *out,
                 api_response *rs);
void api_seq_out_free(const api_ctx *ctx, api_seq_out *o);
/* /refine's reply to a stream call in format mt (API_MT_JSON: {"model", "version",
 * "sequence_id", "sequence_offset", "sequence_received", "sequence_end", "features"};
 * API_MT_NPY: [k, C]; API_MT_NPZ: member features), headers included. */
void api_seq_reply_refine(api_response *rs, int mt, const api_seq_args *a,
                          const api_seq_out *o);
/* X-Model, X-Model-Version, X-Sequence-Id, X-Sequence-Offset, X-Sequence-Received,
 * and X-Sequence-End: 1 on the last reply. */
void api_seq_headers(api_response *rs, const api_seq_args *a, const api_seq_out *o);

#endif
