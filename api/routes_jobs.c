/* routes_jobs.c -- training jobs over HTTP: submit (POST /train), list, status,
 * cancel, resume, and a server-sent-events stream of progress. The request is parsed
 * and validated here, on the loop thread (cheap); what reads or writes job records
 * goes through api_jobs_backend on a worker; the event stream is produced by the
 * server on the loop thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_helpers.h"
#include "routes.h"
#include "train.h"

typedef struct jreq {
    const api_ctx *ctx;
    int id;
    int op;
    api_train_spec spec;
} jreq;

enum { OP_SUBMIT, OP_LIST, OP_GET, OP_CANCEL, OP_RESUME };

static void jreq_done(void *state)
{
    free(state);
}

static int parse_id(const char *s, int *out)
{
    long v = 0;
    if (!s || !*s || *s == '0' || strlen(s) > 9)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    *out = (int)v;
    return 0;
}

static void reply_job(api_response *rs, int status, json_t *job)
{
    if (!job) {
        api_error(rs, 500, "out of memory");
        return;
    }
    api_json(rs, status, job);
}

static void run(void *state, sola_ws *ws, api_response *rs)
{
    (void)ws;
    jreq *st = state;
    const api_jobs_backend *be = st->ctx->jobs;
    void *self = st->ctx->self;
    sola_err e = {0};
    json_t *job = NULL;
    int rc;
    switch (st->op) {
    case OP_SUBMIT:
        rc = be->submit(self, &st->spec, &job, &e);
        if (rc == API_JOB_BUSY) {
            api_error(rs, 503, "%s", e.msg);
            api_set_header(rs, "Retry-After", "30");
        } else if (rc) {
            api_error_from(rs, &e);
        } else {
            json_t *id = json_object_get(job, "id"); /* borrowed */
            api_set_header(rs, "Location", "/jobs/%lld", (long long)json_integer_value(id));
            reply_job(rs, 202, job);
        }
        break;
    case OP_LIST:
        api_json(rs, 200, be->list(self));
        break;
    case OP_GET:
        if (!(job = be->get(self, st->id, &e)))
            api_error_from(rs, &e);
        else
            reply_job(rs, 200, job);
        break;
    case OP_CANCEL:
    case OP_RESUME:
        rc = st->op == OP_CANCEL ? be->cancel(self, st->id, &job, &e)
                                 : be->resume(self, st->id, &job, &e);
        if (rc == API_JOB_CONFLICT) {
            json_decref(job);
            api_error(rs, 409, "%s", e.msg);
        } else if (rc < 0) {
            json_decref(job);
            api_error_from(rs, &e);
        } else {
            reply_job(rs, rc == API_JOB_PENDING || st->op == OP_RESUME ? 202 : 200, job);
        }
        break;
    }
}

/* No data directory, no training: say so instead of queueing what cannot run. */
static int no_jobs(const api_ctx *ctx, api_response *rs)
{
    if (ctx->jobs && ctx->data_dir)
        return 0;
    api_error(rs, 409, "training needs a data directory: start solad with --data DIR");
    return 1;
}

static int start(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w, int op)
{
    jreq *st = calloc(1, sizeof *st);
    if (!st) {
        api_error(rs, 503, "out of memory");
        return API_REPLY;
    }
    st->ctx = ctx;
    st->op = op;
    const char *id = api_param(rq, "id");
    if (id && parse_id(id, &st->id)) {
        api_error(rs, 404, "no job \"%.40s\": job ids are positive integers", id);
        free(st);
        return API_REPLY;
    }
    if (op == OP_SUBMIT) {
        const char *ct = api_header(rq, "Content-Type");
        if (api_mt_parse(ct) != API_MT_JSON) {
            api_error(rs, 415, "Content-Type %.80s: send application/json {\"dataset\": NAME, "
                               "...}", ct ? ct : "(none)");
            free(st);
            return API_REPLY;
        }
        json_error_t je;
        json_t *o = rq->body ? json_loadb(rq->body, rq->body_len, 0, &je) : NULL; /* new */
        if (!o) {
            api_error(rs, 400, "request body: malformed JSON (%s)", rq->body ? je.text
                                                                             : "empty body");
            free(st);
            return API_REPLY;
        }
        sola_err e = {0};
        int rc = api_train_spec_parse(o, &st->spec, &e);
        json_decref(o);
        if (rc) {
            api_error_from(rs, &e);
            free(st);
            return API_REPLY;
        }
    }
    w->state = st;
    w->run = run;
    w->done = jreq_done;
    return API_DEFER;
}

static int h_train(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    if (no_jobs(ctx, rs))
        return API_REPLY;
    return start(ctx, rq, rs, w, OP_SUBMIT);
}

static int h_list(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    if (!ctx->jobs || !ctx->data_dir) {
        api_json(rs, 200, json_pack("{s:[]}", "jobs"));
        return API_REPLY;
    }
    return start(ctx, rq, rs, w, OP_LIST);
}

static int h_get(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    if (!ctx->jobs || !ctx->data_dir) {
        api_error(rs, 404, "no job %s: solad runs without --data, so it has no jobs",
                  api_param(rq, "id"));
        return API_REPLY;
    }
    return start(ctx, rq, rs, w, OP_GET);
}

static int h_cancel(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    if (no_jobs(ctx, rs))
        return API_REPLY;
    return start(ctx, rq, rs, w, OP_CANCEL);
}

static int h_resume(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    if (no_jobs(ctx, rs))
        return API_REPLY;
    return start(ctx, rq, rs, w, OP_RESUME);
}

static int h_events(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)w;
    int id;
    if (!ctx->jobs || !ctx->data_dir || parse_id(api_param(rq, "id"), &id)) {
        api_error(rs, 404, "no job \"%.40s\"", api_param(rq, "id"));
        return API_REPLY;
    }
    sola_err e = {0};
    api_stream *st = NULL;
    if (ctx->jobs->events(ctx->self, id, &st, &e)) {
        api_error_from(rs, &e);
        return API_REPLY;
    }
    api_reply_events(rs, st);
    return API_REPLY;
}

const api_route api_routes_jobs[] = {
    {"POST", "/train", h_train, API_AUTH},
    {"GET", "/jobs", h_list, 0},
    {"GET", "/jobs/{id}", h_get, 0},
    {"DELETE", "/jobs/{id}", h_cancel, API_AUTH},
    {"POST", "/jobs/{id}/resume", h_resume, API_AUTH},
    {"GET", "/jobs/{id}/events", h_events, 0},
    {NULL, NULL, NULL, 0},
};
