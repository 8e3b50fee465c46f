/* routes_streams.c -- what is known about the open streams of online refine
 * (docs/streaming.md); the streams themselves are fed through POST /refine and
 * POST /v2/models/M/infer with a sequence_id (api/seq_call.c).
 *
 *   GET /streams               the open streams, the limits, the memory they hold
 *   GET /streams/{id}          one of them (404 says why it is not open)
 *   GET /streams/{id}/events   server-sent events: each refined row batch as it is
 *                              handed out to the stream's client, then "end"
 *
 * All answer on the loop thread from the table's memory (a short lock). */
#include <stdio.h>
#include <string.h>

#include "routes.h"
#include "seq.h"

static int no_streams(const api_ctx *ctx, api_response *rs)
{
    if (ctx->seq)
        return 0;
    api_error(rs, 404, "this server keeps no streams");
    return 1;
}

static int h_list(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)rq;
    (void)w;
    if (no_streams(ctx, rs))
        return API_REPLY;
    json_t *o = ctx->seq->list(ctx->seq_self);
    if (!o)
        api_error(rs, 503, "out of memory");
    else
        api_json(rs, 200, o);
    return API_REPLY;
}

static int h_get(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)w;
    if (no_streams(ctx, rs))
        return API_REPLY;
    sola_err e = {0};
    json_t *o = ctx->seq->describe(ctx->seq_self, api_param(rq, "id"), &e);
    if (!o)
        api_error_from(rs, &e);
    else
        api_json(rs, 200, o);
    return API_REPLY;
}

static int h_events(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)w;
    if (no_streams(ctx, rs))
        return API_REPLY;
    const char *f = api_query(rq, "format");
    int b64 = 0;
    if (f && !strcmp(f, "b64"))
        b64 = 1;
    else if (f && strcmp(f, "json")) {
        api_error(rs, 400, "format=\"%.20s\": use json (rows as arrays of numbers) or b64 "
                           "(rows as base64 of little-endian float32)", f);
        return API_REPLY;
    }
    sola_err e = {0};
    api_stream *st = NULL;
    if (ctx->seq->watch(ctx->seq_self, api_param(rq, "id"), b64, &st, &e)) {
        api_error_from(rs, &e);
        return API_REPLY;
    }
    api_reply_events(rs, st);
    return API_REPLY;
}

const api_route api_routes_streams[] = {
    {"GET", "/streams", h_list, 0},
    {"GET", "/streams/{id}", h_get, 0},
    {"GET", "/streams/{id}/events", h_events, 0},
    {NULL, NULL, NULL, 0},
};
