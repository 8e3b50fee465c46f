/* seq_call.c -- see seq.h: the sequence parameters and one call of a stream, shared by
 * /refine (routes_infer.c) and /v2/.../infer (routes_v2.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_helpers.h"
#include "npy.h"
#include "npz.h"
#include "seq.h"

static int check_id(const char *s, const char *where, sola_err *e)
{
    size_t n = strlen(s);
    if (n < 1 || n > API_SEQ_ID_MAX)
        return sola_errf(e, SOLA_EINVAL, "%s sequence_id must be 1 to %d characters (got %zu)",
                         where, API_SEQ_ID_MAX, n);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == ':'))
            return sola_errf(e, SOLA_EINVAL, "%s sequence_id \"%.40s\": character %zu is not "
                                             "one of A-Z a-z 0-9 . _ - :", where, s, i + 1);
    }
    return 0;
}

static int parse_flag(const char *v, int *out)
{
    if (!strcmp(v, "1") || !strcasecmp(v, "true"))
        *out = 1;
    else if (!strcmp(v, "0") || !strcasecmp(v, "false"))
        *out = 0;
    else
        return -1;
    return 0;
}

int api_seq_from_query(const api_request *rq, api_seq_args *a, sola_err *e)
{
    memset(a, 0, sizeof *a);
    const char *v;
    if ((v = api_query(rq, "sequence_id"))) {
        if (check_id(v, "query parameter", e))
            return e->code;
        snprintf(a->id, sizeof a->id, "%s", v);
        a->has_id = 1;
    }
    static const char *const flags[2] = {"sequence_start", "sequence_end"};
    for (int i = 0; i < 2; i++) {
        if (!(v = api_query(rq, flags[i])))
            continue;
        int *dst = i ? &a->end : &a->start;
        if (parse_flag(v, dst))
            return sola_errf(e, SOLA_EINVAL, "query parameter %s=\"%.20s\": use 1 or 0 (true "
                                             "or false)", flags[i], v);
        *(i ? &a->has_end : &a->has_start) = 1;
    }
    return 0;
}

int api_seq_json_member(api_seq_args *a, const char *key, json_t *v, const char *where,
                        int *rc, sola_err *e)
{
    *rc = 0;
    if (!strcmp(key, "sequence_id")) {
        if (json_is_integer(v)) {
            /* Triton's correlation ids are unsigned 64-bit, 0 meaning "no sequence" */
            if (json_integer_value(v) < 1) {
                *rc = sola_errf(e, SOLA_EINVAL, "%s.sequence_id must be a positive integer or "
                                                "a string (0 means no sequence)", where);
                return 1;
            }
            snprintf(a->id, sizeof a->id, "%lld", (long long)json_integer_value(v));
            a->id_is_number = 1;
        } else if (json_is_string(v)) {
            char w[48];
            snprintf(w, sizeof w, "%s.", where);
            if ((*rc = check_id(json_string_value(v), w, e)))
                return 1;
            snprintf(a->id, sizeof a->id, "%s", json_string_value(v));
            a->id_is_number = 0;
        } else {
            *rc = sola_errf(e, SOLA_EINVAL, "%s.sequence_id must be a string or a positive "
                                            "integer", where);
            return 1;
        }
        a->has_id = 1;
        return 1;
    }
    int is_start = !strcmp(key, "sequence_start");
    if (!is_start && strcmp(key, "sequence_end"))
        return 0;
    if (!json_is_boolean(v) && !(json_is_integer(v) && (json_integer_value(v) == 0 ||
                                                        json_integer_value(v) == 1))) {
        *rc = sola_errf(e, SOLA_EINVAL, "%s.%s must be true or false", where, key);
        return 1;
    }
    int f = json_is_boolean(v) ? json_is_true(v) : (int)json_integer_value(v);
    if (is_start)
        a->start = f, a->has_start = 1;
    else
        a->end = f, a->has_end = 1;
    return 1;
}

int api_seq_check(const api_seq_args *a, sola_err *e)
{
    if (!a->has_id && (a->has_start || a->has_end))
        return sola_errf(e, SOLA_EINVAL, "sequence_%s needs a sequence_id (the stream it "
                                         "belongs to)", a->has_start ? "start" : "end");
    return 0;
}

/* The stream's refine passes go where every other refine goes (the batcher), so a
 * stream's window can share a pass with other requests. */
static int pass(void *arg, const sola_model *m, const float *x, const int *lens, int n,
                float *y, sola_ws *ws, sola_err *e)
{
    return api_refine(arg, m, x, lens, n, y, ws, e);
}

int api_seq_push(const api_ctx *ctx, const api_seq_args *a, const char *model, int version,
                 const float *x, int64_t n, int64_t C, sola_ws *ws, api_seq_out *out,
                 api_response *rs)
{
    memset(out, 0, sizeof *out);
    const api_seq_backend *sb = ctx->seq;
    sola_err e = {0};
    if (!sb) {
        api_error(rs, 501, "this server keeps no streams (sequence_id)");
        return -1;
    }
    if (n > ctx->max_frames) {
        api_error(rs, 413, "a chunk of %lld snippets exceeds this server's limit of %d "
                           "(--max-frames); send smaller chunks",
                  (long long)n, ctx->max_frames);
        return -1;
    }
    api_seq *q = NULL;
    int status = sb->begin(ctx->seq_self, a, model, version, &q, &e);
    if (status) {
        api_error(rs, status, "%s", e.msg);
        if (status == 503)
            api_set_header(rs, "Retry-After", "1");
        return -1;
    }
    sola_stream *s = sb->stream(q);
    const sola_model *m = sb->model(q);
    snprintf(out->model, sizeof out->model, "%s", sb->model_name(q));
    out->version = sb->model_version(q);
    out->C = m->C;
    out->first = sola_stream_emitted(s);
    int rc = 0;
    if (n > 0 && C != m->C) {
        rc = sola_errf(&e, SOLA_ESHAPE, "the chunk has C=%lld channels but sequence \"%s\" "
                                        "runs on model %s version %d, which expects C=%d",
                       (long long)C, a->id, out->model, out->version, m->C);
        goto done;
    }
    int64_t k = sola_stream_ready_after(s, n, a->end);
    /* the budget: the rows out, and the pass's window in and out (the kept context, the
     * chunk, the row-phase padding: < 2R + n + 12 rows each) */
    size_t row = (size_t)m->C * sizeof(float), ybytes = (size_t)k * row,
           work = k > 0 ? 2 * ((size_t)(2 * sola_stream_radius(m)) + (size_t)n + 12) * row : 0;
    if (api_mem_reserve(ctx, ybytes + work, "this stream chunk", rs)) {
        sb->finish(ctx->seq_self, q, a->start ? API_SEQ_DISCARD : API_SEQ_KEEP);
        return -1; /* rs filled */
    }
    out->held = ybytes;
    if (k > 0 && !(out->y = malloc(ybytes))) {
        api_mem_give(ctx, work);
        rc = sola_errf(&e, SOLA_ENOMEM, "out of memory for %lld refined rows", (long long)k);
        goto done;
    }
    rc = sola_stream_push(s, m, x, (int)n, a->end, out->y, ws, pass, (void *)ctx, &e);
    api_mem_give(ctx, work);
    if (!rc) {
        out->k = k;
        out->received = sola_stream_received(s);
        out->ended = sola_stream_ended(s);
        if (sb->publish)
            sb->publish(ctx->seq_self, q, out->y, out->first, k, out->received, out->ended);
    }
done:
    /* a failed opening call leaves no stream; a failed later call leaves it as it was */
    sb->finish(ctx->seq_self, q, rc ? (a->start ? API_SEQ_DISCARD : API_SEQ_KEEP)
                                : (out->ended ? API_SEQ_ENDED : API_SEQ_KEEP));
    if (rc) {
        api_seq_out_free(ctx, out);
        api_error(rs, e.code == SOLA_ENOMEM ? 503 : api_status_of(e.code), "%s", e.msg);
        return -1;
    }
    rs->frames = (long)out->k;
    return 0;
}

void api_seq_out_free(const api_ctx *ctx, api_seq_out *o)
{
    free(o->y);
    o->y = NULL;
    api_mem_give(ctx, o->held);
    o->held = 0;
}

void api_seq_headers(api_response *rs, const api_seq_args *a, const api_seq_out *o)
{
    api_set_header(rs, "X-Model", "%s", o->model);
    api_set_header(rs, "X-Model-Version", "%d", o->version);
    api_set_header(rs, "X-Sequence-Id", "%s", a->id);
    api_set_header(rs, "X-Sequence-Offset", "%lld", (long long)o->first);
    api_set_header(rs, "X-Sequence-Received", "%lld", (long long)o->received);
    if (o->ended)
        api_set_header(rs, "X-Sequence-End", "1");
}

void api_seq_reply_refine(api_response *rs, int mt, const api_seq_args *a,
                          const api_seq_out *o)
{
    sola_err e = {0};
    int64_t shape[2] = {o->k, o->C};
    static float none; /* data of an empty reply: never read, but not NULL */
    float *y = o->y ? o->y : &none;
    void *buf = NULL;
    size_t len = 0;
    if (mt == API_MT_NPY) {
        if (sola_npy_encode(y, 2, shape, &buf, &len, &e))
            goto fail;
        api_take_body(rs, 200, "application/x-npy", buf, len);
    } else if (mt == API_MT_NPZ) {
        const char *names[1] = {"features"};
        sola_array arr = {.data = y, .ndim = 2, .shape = {o->k, o->C}};
        if (sola_npz_encode(names, &arr, 1, 0, &buf, &len, &e))
            goto fail;
        api_take_body(rs, 200, "application/x-npz", buf, len);
    } else {
        api_buf b = {0};
        api_buf_puts(&b, "{\"model\":");
        api_buf_json_str(&b, o->model);
        api_buf_printf(&b, ",\"version\":%d,\"sequence_id\":", o->version);
        api_buf_json_str(&b, a->id);
        api_buf_printf(&b, ",\"sequence_offset\":%lld,\"sequence_received\":%lld,"
                           "\"sequence_end\":%s,\"features\":",
                       (long long)o->first, (long long)o->received,
                       o->ended ? "true" : "false");
        api_buf_json_floats(&b, y, 2, shape);
        api_buf_puts(&b, "}\n");
        if (b.failed) {
            api_buf_free(&b);
            api_error(rs, 503, "out of memory while encoding the reply");
            return;
        }
        api_take_body(rs, 200, "application/json", b.p, b.len);
    }
    api_seq_headers(rs, a, o);
    return;
fail:
    api_error_from(rs, &e);
}
