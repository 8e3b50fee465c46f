/* routes_v2.c -- the Open Inference Protocol v2 routes (KServe "V2", Triton's HTTP API):
 *
 *   GET  /v2                                       server metadata
 *   GET  /v2/health/live, /v2/health/ready         200, or 400 when not ready (empty body)
 *   GET  /v2/models/M[/versions/V]                 model metadata
 *   GET  /v2/models/M[/versions/V]/ready           200, or 400 when it cannot load
 *   POST /v2/models/M[/versions/V]/infer           JSON tensors, binary tensor data
 *
 * Errors are {"error": "..."}: 400 for a malformed request (the protocol's "bad
 * request"), 404 for an unknown model or version, 422 for features of the wrong C,
 * 413 past --max-frames / --max-body. Metadata, readiness and inference load the model,
 * so they run on a worker; the request body is parsed there too (v2_infer.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_helpers.h"
#include "routes.h"
#include "v2.h"

/* T*T floats per TSM, as /tsm: 64 MB at most. */
#define V2_TSM_MAX_T 4096

enum { K_META, K_READY, K_INFER };

typedef struct v2_state {
    const api_ctx *ctx;
    int kind;
    char model[API_PARAM_LEN];
    int version;          /* 0 = active */
    const char *body;     /* borrowed: the server keeps it until done() */
    size_t len;
    char hdr_len[32];     /* Inference-Header-Content-Length, "" if absent */
    int has_hdr_len;
} v2_state;

static void v2_done(void *state)
{
    free(state);
}

static int h_server(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)ctx;
    (void)rq;
    (void)w;
    api_json(rs, 200, json_pack("{s:s,s:s,s:[s]}", "name", "solad", "version", API_VERSION,
                                "extensions", "binary_tensor_data"));
    return API_REPLY;
}

static int h_live(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)ctx;
    (void)rq;
    (void)w;
    api_set_body(rs, 200, "text/plain", "", 0); /* the protocol: status only, empty body */
    return API_REPLY;
}

static int h_ready(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)rq;
    (void)w;
    char why[160];
    int ok = ctx->be->ready(ctx->self, why, sizeof why);
    api_set_body(rs, ok ? 200 : 400, "text/plain", "", 0);
    if (!ok) /* the body stays empty (protocol); the reason goes in a header */
        api_set_header(rs, "X-Not-Ready", "%s", why);
    return API_REPLY;
}

static void run(void *state, sola_ws *ws, api_response *rs);

static int prepare(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w,
                   int kind)
{
    sola_err e = {0};
    const char *m = api_param(rq, "model"), *v = api_param(rq, "version");
    if (api_check_name("model", m, &e)) {
        api_error(rs, 400, "%s", e.msg);
        return API_REPLY;
    }
    int version = 0;
    if (v && api_parse_version("version", v, &version, &e)) {
        api_error(rs, 400, "%s", e.msg);
        return API_REPLY;
    }
    v2_state *st = calloc(1, sizeof *st);
    if (!st) {
        api_error(rs, 503, "out of memory");
        return API_REPLY;
    }
    st->ctx = ctx;
    st->kind = kind;
    snprintf(st->model, sizeof st->model, "%s", m);
    st->version = version;
    if (kind == K_INFER) {
        if (rq->body_len == 0) {
            api_error(rs, 400, "empty body: send an inference request {\"inputs\": "
                               "[{\"name\": \"features\", ...}]}");
            free(st);
            return API_REPLY;
        }
        st->body = rq->body;
        st->len = rq->body_len;
        /* headers are read here, on the loop thread: workers never touch the server */
        const char *h = api_header(rq, "Inference-Header-Content-Length");
        if (h) {
            if (strlen(h) >= sizeof st->hdr_len) {
                api_error(rs, 400, "Inference-Header-Content-Length: not a byte count");
                free(st);
                return API_REPLY;
            }
            snprintf(st->hdr_len, sizeof st->hdr_len, "%s", h);
            st->has_hdr_len = 1;
        }
    }
    w->state = st;
    w->run = run;
    w->done = v2_done;
    return API_DEFER;
}

/* Model metadata: the tensors of the protocol's model metadata response. */
static void metadata(v2_state *st, api_model *ref, const sola_model *m, api_response *rs)
{
    const api_ctx *ctx = st->ctx;
    sola_err e = {0};
    json_t *versions = json_array();
    if (st->version) {
        json_array_append_new(versions, json_sprintf("%d", st->version));
    } else {
        json_t *d = ctx->be->model_describe(ctx->self, ctx->be->model_name(ref), &e);
        json_t *vs = d ? json_object_get(d, "versions") : NULL; /* borrowed */
        size_t i;
        json_t *x;
        json_array_foreach(vs, i, x)
            json_array_append_new(versions, json_sprintf("%lld", (long long)json_integer_value(x)));
        json_decref(d);
    }
    json_t *o = json_pack(
        "{s:s,s:o,s:s,s:[{s:s,s:s,s:[i,i]}],s:[{s:s,s:s,s:[i,i]},{s:s,s:s,s:[i,i]},"
        "{s:s,s:s,s:[i,i]}]}",
        "name", ctx->be->model_name(ref), "versions", versions, "platform", "sola",
        "inputs", "name", "features", "datatype", "FP32", "shape", -1, m->C,
        "outputs", "name", "refined", "datatype", "FP32", "shape", -1, m->C,
        "name", "tsm", "datatype", "FP32", "shape", -1, -1,
        "name", "tsm_raw", "datatype", "FP32", "shape", -1, -1);
    api_json(rs, 200, o);
}

static int tsms(const sola_array *y, sola_array *S, sola_err *e)
{
    int64_t B = y->ndim == 3 ? y->shape[0] : 1, T = y->shape[y->ndim - 2],
            C = y->shape[y->ndim - 1];
    size_t n;
    if (sola_mul_size((size_t)(B * T), (size_t)T, &n) || sola_mul_size(n, 4, &n) ||
        !(S->data = malloc(n)))
        return sola_errf(e, SOLA_ENOMEM, "out of memory for a %lld x %lld TSM", (long long)T,
                         (long long)T);
    S->ndim = y->ndim;
    if (y->ndim == 3)
        S->shape[0] = B;
    S->shape[S->ndim - 2] = T;
    S->shape[S->ndim - 1] = T;
    for (int64_t b = 0; b < B; b++) {
        int rc = sola_tsm(y->data + b * T * C, (int)T, (int)C, S->data + b * T * T, e);
        if (rc)
            return rc;
    }
    return 0;
}

/* One call of a stream (api/seq.h): the chunk [n, C] in, the rows that became final
 * out as "refined", where they start in the reply's parameters. */
static void stream_infer(v2_state *st, v2_request *r, sola_ws *ws, api_response *rs)
{
    const sola_array *x = &r->x;
    if (x->ndim != 2) {
        api_error(rs, 422, "inputs[0]: a stream (parameters.sequence_id) takes chunks [n, C] "
                           "of one sequence, not a batch [B, T, C]");
        return;
    }
    if (r->outputs_given && (r->want[V2_TSM] || r->want[V2_TSM_RAW])) {
        api_error(rs, 400, "outputs: a stream's replies carry refined only (a TSM needs the "
                           "whole sequence)");
        return;
    }
    api_seq_out o;
    if (api_seq_push(st->ctx, &r->seq, st->model, st->version, x->data, x->shape[0],
                     x->shape[1], ws, &o, rs))
        return;
    api_buf p = {0};
    api_buf_puts(&p, "{\"sequence_id\":");
    if (r->seq.id_is_number)
        api_buf_puts(&p, r->seq.id);
    else
        api_buf_json_str(&p, r->seq.id);
    api_buf_printf(&p, ",\"sequence_offset\":%lld,\"sequence_received\":%lld,"
                       "\"sequence_end\":%s}",
                   (long long)o.first, (long long)o.received, o.ended ? "true" : "false");
    if (p.failed) {
        api_buf_free(&p);
        api_seq_out_free(st->ctx, &o);
        api_error(rs, 503, "out of memory while encoding the reply");
        return;
    }
    r->reply_params = p.p;
    int binary = r->binary[V2_REFINED];
    r->nout = 1; /* refined only, whatever was defaulted */
    r->order[0] = V2_REFINED;
    r->binary[V2_REFINED] = binary;
    static float none; /* data of an empty chunk's reply: never read, but not NULL */
    sola_array y = {.data = o.y ? o.y : &none, .ndim = 2, .shape = {o.k, o.C}}, empty = {0};
    const sola_array *outs[V2_NOUT] = {&y, &empty, &empty};
    if (!v2_encode_reply(r, o.model, o.version, outs, rs))
        api_seq_headers(rs, &r->seq, &o);
    api_seq_out_free(st->ctx, &o);
}

static void infer(v2_state *st, api_model *ref, const sola_model *m, v2_request *rp,
                  sola_ws *ws, api_response *rs)
{
    const api_ctx *ctx = st->ctx;
    sola_err e = {0};
    v2_request r = *rp; /* owned here from now on */
    sola_array y = {0}, S = {0}, Sraw = {0};
    int *lens = NULL;
    const sola_array *x = &r.x;
    int64_t B = x->ndim == 3 ? x->shape[0] : 1, T = x->shape[x->ndim - 2],
            C = x->shape[x->ndim - 1];
    if (C != m->C) {
        sola_errf(&e, SOLA_ESHAPE, "inputs[0] (features) has C=%lld channels but model %s "
                                   "version %d expects C=%d (shape [-1, %d])",
                  (long long)C, ctx->be->model_name(ref), ctx->be->model_version(ref), m->C,
                  m->C);
        goto fail;
    }
    if ((r.want[V2_TSM] || r.want[V2_TSM_RAW]) && T > V2_TSM_MAX_T) {
        sola_errf(&e, SOLA_ETOOBIG, "a TSM of T=%lld is %lld x %lld floats; the limit is "
                                    "T=%d: ask for outputs [{\"name\": \"refined\"}] only",
                  (long long)T, (long long)T, (long long)T, V2_TSM_MAX_T);
        goto fail;
    }
    size_t n = sola_array_numel(x), bytes;
    if (sola_mul_size(n, 4, &bytes) || !(y.data = malloc(bytes)) ||
        !(lens = malloc(sizeof *lens * (size_t)B))) {
        sola_errf(&e, SOLA_ENOMEM, "out of memory for the result");
        goto fail;
    }
    y.ndim = x->ndim;
    memcpy(y.shape, x->shape, sizeof y.shape);
    for (int64_t b = 0; b < B; b++)
        lens[b] = (int)T;
    if (r.want[V2_REFINED] || r.want[V2_TSM]) {
        if (api_refine(ctx, m, x->data, lens, (int)B, y.data, ws, &e))
            goto fail;
        rs->frames = (long)(B * T);
    }
    if (r.want[V2_TSM] && tsms(&y, &S, &e))
        goto fail;
    if (r.want[V2_TSM_RAW] && tsms(x, &Sraw, &e))
        goto fail;
    const sola_array *outs[V2_NOUT] = {&y, &S, &Sraw};
    if (!v2_encode_reply(&r, ctx->be->model_name(ref), ctx->be->model_version(ref), outs, rs)) {
        api_set_header(rs, "X-Model", "%s", ctx->be->model_name(ref));
        api_set_header(rs, "X-Model-Version", "%d", ctx->be->model_version(ref));
    }
    goto out;
fail:
    api_error_from(rs, &e);
out:
    free(lens);
    sola_array_free(&y);
    sola_array_free(&S);
    sola_array_free(&Sraw);
    v2_request_free(&r);
}

static void run(void *state, sola_ws *ws, api_response *rs)
{
    v2_state *st = state;
    const api_ctx *ctx = st->ctx;
    sola_err e = {0};
    api_model *ref = NULL;
    v2_request r;
    if (st->kind == K_INFER) { /* the body first: a stream call uses its pinned model */
        if (v2_parse_request(st->body, st->len, st->has_hdr_len ? st->hdr_len : NULL,
                             ctx->max_frames, &r, &e)) {
            api_error_from(rs, &e);
            return;
        }
        if (r.seq.has_id) {
            stream_infer(st, &r, ws, rs);
            v2_request_free(&r);
            return;
        }
    }
    if (ctx->be->model_acquire(ctx->self, st->model, st->version, &ref, &e)) {
        api_error_from(rs, &e);
        if (st->kind == K_INFER)
            v2_request_free(&r);
        return;
    }
    const sola_model *m = ctx->be->model_get(ctx->self, ref, &e);
    if (!m && st->kind == K_INFER)
        v2_request_free(&r);
    if (!m) {
        if (st->kind == K_READY) /* known but cannot load: not ready */
            api_set_body(rs, 400, "text/plain", "", 0);
        else
            api_error(rs, 503, "model %s version %d cannot be loaded: %s", st->model,
                      ctx->be->model_version(ref), e.msg);
    } else if (st->kind == K_READY) {
        api_set_body(rs, 200, "text/plain", "", 0);
    } else if (st->kind == K_META) {
        metadata(st, ref, m, rs);
    } else {
        infer(st, ref, m, &r, ws, rs);
    }
    ctx->be->model_release(ctx->self, ref);
}

static int h_meta(const api_ctx *c, api_request *rq, api_response *rs, api_work *w)
{
    return prepare(c, rq, rs, w, K_META);
}

static int h_model_ready(const api_ctx *c, api_request *rq, api_response *rs, api_work *w)
{
    return prepare(c, rq, rs, w, K_READY);
}

static int h_infer(const api_ctx *c, api_request *rq, api_response *rs, api_work *w)
{
    return prepare(c, rq, rs, w, K_INFER);
}

const api_route api_routes_v2[] = {
    {"GET", "/v2", h_server, 0},
    {"GET", "/v2/health/live", h_live, 0},
    {"GET", "/v2/health/ready", h_ready, 0},
    {"GET", "/v2/models/{model}", h_meta, 0},
    {"GET", "/v2/models/{model}/ready", h_model_ready, 0},
    {"POST", "/v2/models/{model}/infer", h_infer, API_COMPUTE},
    {"GET", "/v2/models/{model}/versions/{version}", h_meta, 0},
    {"GET", "/v2/models/{model}/versions/{version}/ready", h_model_ready, 0},
    {"POST", "/v2/models/{model}/versions/{version}/infer", h_infer, API_COMPUTE},
    {NULL, NULL, NULL, 0},
};
