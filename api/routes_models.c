/* routes_models.c -- the model registry over HTTP: list, describe, download, upload,
 * activate. Listing and describing read the registry's in-memory state on the loop
 * thread; downloads, uploads and activation touch the disk (and load models), so they
 * run on a worker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_helpers.h"
#include "routes.h"

typedef struct mreq {
    const api_ctx *ctx;
    char name[72];
    int version;
    char *tmp_path; /* upload: owned copy of the body file's path */
} mreq;

static void mreq_done(void *state)
{
    mreq *st = state;
    free(st->tmp_path);
    free(st);
}

/* Common start: model name (+ version when the route has one). */
static mreq *mreq_new(const api_ctx *ctx, api_request *rq, api_response *rs, int want_version)
{
    sola_err e = {0};
    const char *name = api_param(rq, "model"), *ver = api_param(rq, "version");
    if (api_check_name("model name", name, &e) ||
        (want_version && api_parse_version("version", ver, &(int){0}, &e))) {
        api_error_from(rs, &e);
        return NULL;
    }
    mreq *st = calloc(1, sizeof *st);
    if (!st) {
        api_error(rs, 503, "out of memory");
        return NULL;
    }
    st->ctx = ctx;
    snprintf(st->name, sizeof st->name, "%s", name);
    if (want_version)
        api_parse_version("version", ver, &st->version, NULL);
    return st;
}

static int h_list(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)rq;
    (void)w;
    api_json(rs, 200, ctx->be->models_list(ctx->self));
    return API_REPLY;
}

static int h_describe(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)w;
    sola_err e = {0};
    const char *name = api_param(rq, "model");
    if (api_check_name("model name", name, &e)) {
        api_error_from(rs, &e);
        return API_REPLY;
    }
    json_t *d = ctx->be->model_describe(ctx->self, name, &e); /* new reference */
    if (!d)
        api_error_from(rs, &e);
    else
        api_json(rs, 200, d);
    return API_REPLY;
}

static void download_run(void *state, sola_ws *ws, api_response *rs)
{
    (void)ws;
    mreq *st = state;
    sola_err e = {0};
    void *buf = NULL;
    size_t len = 0;
    if (st->ctx->be->model_download(st->ctx->self, st->name, st->version, &buf, &len, &e)) {
        api_error_from(rs, &e);
        return;
    }
    api_take_body(rs, 200, "application/octet-stream", buf, len);
    api_set_header(rs, "Content-Disposition", "attachment; filename=\"%s-%d.safetensors\"",
                   st->name, st->version);
}

static int h_download(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    mreq *st = mreq_new(ctx, rq, rs, 1);
    if (!st)
        return API_REPLY;
    w->state = st;
    w->run = download_run;
    w->done = mreq_done;
    return API_DEFER;
}

static void upload_run(void *state, sola_ws *ws, api_response *rs)
{
    (void)ws;
    mreq *st = state;
    sola_err e = {0};
    int conflict = 0;
    if (st->ctx->be->model_put(st->ctx->self, st->name, st->version, st->tmp_path, &conflict,
                               &e)) {
        if (conflict)
            api_error(rs, 409, "%s", e.msg);
        else
            api_error_from(rs, &e);
        return;
    }
    json_t *d = st->ctx->be->model_describe(st->ctx->self, st->name, &e); /* new ref */
    json_t *o = json_pack("{s:s,s:i,s:o*}", "model", st->name, "version", st->version,
                          "registry", d);
    api_json(rs, 201, o);
    api_set_header(rs, "Location", "/models/%s/versions/%d", st->name, st->version);
}

static int h_upload(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    const char *ct = api_header(rq, "Content-Type");
    int mt = api_mt_parse(ct);
    if (mt != API_MT_OCTET && mt != API_MT_NONE) {
        api_error(rs, 415,
                  "Content-Type %.80s: a model upload is the safetensors file itself, sent "
                  "as application/octet-stream (curl -T FILE)",
                  ct);
        return API_REPLY;
    }
    if (!rq->body_path && !rq->body) {
        api_error(rs, 400, "empty body: send the .safetensors file");
        return API_REPLY;
    }
    mreq *st = mreq_new(ctx, rq, rs, 1);
    if (!st)
        return API_REPLY;
    if (!rq->body_path || !(st->tmp_path = strdup(rq->body_path))) {
        api_error(rs, 500, "internal error: upload was not streamed to a file");
        mreq_done(st);
        return API_REPLY;
    }
    w->state = st;
    w->run = upload_run;
    w->done = mreq_done;
    return API_DEFER;
}

static void activate_run(void *state, sola_ws *ws, api_response *rs)
{
    (void)ws;
    mreq *st = state;
    sola_err e = {0};
    if (st->ctx->be->model_activate(st->ctx->self, st->name, st->version, &e)) {
        api_error_from(rs, &e);
        return;
    }
    api_json(rs, 200, json_pack("{s:s,s:i}", "model", st->name, "active", st->version));
}

static int h_activate(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    sola_err e = {0};
    int version = 0;
    const char *qv = api_query(rq, "version");
    if (qv && *qv) {
        if (api_parse_version("query parameter version", qv, &version, &e)) {
            api_error_from(rs, &e);
            return API_REPLY;
        }
    } else {
        const char *ct = api_header(rq, "Content-Type");
        if (api_mt_parse(ct) != API_MT_JSON) {
            api_error(rs, 415, "Content-Type %.80s: send application/json {\"version\": N}",
                      ct ? ct : "(none)");
            return API_REPLY;
        }
        json_error_t je;
        json_t *o = rq->body ? json_loadb(rq->body, rq->body_len, 0, &je) : NULL; /* new */
        if (!o) {
            api_error(rs, 400, "request body: malformed JSON (%s): send {\"version\": N}",
                      rq->body ? je.text : "empty body");
            return API_REPLY;
        }
        json_t *v = json_object_get(o, "version"); /* borrowed */
        if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= INT32_MAX)
            version = (int)json_integer_value(v);
        else if (!json_is_string(v) ||
                 api_parse_version("\"version\"", json_string_value(v), &version, &e))
            version = 0;
        json_decref(o);
        if (!version) {
            api_error(rs, 400, "request body: \"version\" must be a positive integer");
            return API_REPLY;
        }
    }
    mreq *st = mreq_new(ctx, rq, rs, 0);
    if (!st)
        return API_REPLY;
    st->version = version;
    w->state = st;
    w->run = activate_run;
    w->done = mreq_done;
    return API_DEFER;
}

const api_route api_routes_models[] = {
    {"GET", "/models", h_list, 0},
    {"GET", "/models/{model}", h_describe, 0},
    {"GET", "/models/{model}/versions/{version}", h_download, 0},
    {"PUT", "/models/{model}/versions/{version}", h_upload, API_AUTH | API_BODY_FILE},
    {"POST", "/models/{model}/activate", h_activate, API_AUTH},
    {NULL, NULL, NULL, 0},
};
