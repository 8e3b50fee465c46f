/* routes_datasets.c -- unlabeled training data over HTTP: upload one item (.npy) or a
 * whole dataset (.npz), list, describe, delete. Bodies arrive as temporary files (the
 * routes carry API_BODY_FILE: the server streams them to disk, never to memory);
 * everything that touches the store runs on a worker, through core/data/dsstore.h, which
 * validates before anything becomes visible. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "api_helpers.h"
#include "dsstore.h"
#include "npy.h"
#include "routes.h"

typedef struct dreq {
    char root[4096];
    char ds[72], item[72];
    char *tmp_path; /* upload body (owned copy of the path) */
    int flags;      /* SOLA_NPY_ALLOW_NONFINITE with solad --allow-nonfinite */
} dreq;

static void dreq_done(void *state)
{
    dreq *st = state;
    free(st->tmp_path);
    free(st);
}

/* Common start: data directory, names. NULL (reply set) on refusal. */
static dreq *dreq_new(const api_ctx *ctx, api_request *rq, api_response *rs, int mutating)
{
    sola_err e = {0};
    const char *ds = api_param(rq, "dataset"), *item = api_param(rq, "item");
    if (!ctx->data_dir) {
        if (mutating)
            api_error(rs, 409, "solad runs without --data: there is nowhere to store "
                               "datasets");
        else if (ds)
            api_error(rs, 404, "dataset \"%s\": solad runs without --data, so it has no "
                               "datasets", ds);
        else
            api_json(rs, 200, json_pack("{s:[]}", "datasets"));
        return NULL;
    }
    if ((ds && api_check_name("dataset name", ds, &e)) ||
        (item && api_check_name("item name", item, &e))) {
        api_error_from(rs, &e);
        return NULL;
    }
    dreq *st = calloc(1, sizeof *st);
    if (!st) {
        api_error(rs, 503, "out of memory");
        return NULL;
    }
    if ((size_t)snprintf(st->root, sizeof st->root, "%s/datasets", ctx->data_dir) >=
        sizeof st->root) {
        api_error(rs, 500, "data directory path is too long");
        free(st);
        return NULL;
    }
    st->flags = ctx->allow_nonfinite ? SOLA_NPY_ALLOW_NONFINITE : 0;
    snprintf(st->ds, sizeof st->ds, "%s", ds ? ds : "");
    snprintf(st->item, sizeof st->item, "%s", item ? item : "");
    return st;
}

static int defer(api_work *w, dreq *st, void (*run)(void *, sola_ws *, api_response *))
{
    w->state = st;
    w->run = run;
    w->done = dreq_done;
    return API_DEFER;
}

/* An upload body: the right media type, not empty, spooled to a file. */
static int take_body(api_request *rq, api_response *rs, dreq *st, int npz)
{
    const char *ct = api_header(rq, "Content-Type");
    int mt = api_mt_parse(ct);
    int ok = mt == API_MT_NONE || mt == API_MT_OCTET || (npz ? mt == API_MT_NPZ : mt == API_MT_NPY);
    if (!ok && npz && ct && !strncasecmp(ct, "application/zip", 15))
        ok = 1;
    if (!ok) {
        api_error(rs, 415, "Content-Type %.80s: send the %s file itself as %s or "
                           "application/octet-stream (curl -T FILE)",
                  ct, npz ? ".npz" : ".npy", npz ? "application/x-npz" : "application/x-npy");
        return -1;
    }
    if (!rq->body_path && !rq->body) {
        api_error(rs, 400, "empty body: send the %s file", npz ? ".npz" : ".npy");
        return -1;
    }
    if (!rq->body_path || !(st->tmp_path = strdup(rq->body_path))) {
        api_error(rs, 500, "internal error: upload was not streamed to a file");
        return -1;
    }
    return 0;
}

static json_t *info_json(const sola_ds_info *d, int with_items)
{
    json_t *o = json_pack("{s:s,s:i,s:I,s:I}", "name", d->name, "n_items", d->n, "bytes",
                          (json_int_t)d->bytes, "frames", (json_int_t)d->frames);
    if (!o)
        return NULL;
    if (d->frames < 0)
        json_object_del(o, "frames");
    if (with_items) {
        json_object_set_new(o, "dim", d->n ? json_integer(d->C) : json_null());
        json_t *a = json_array();
        for (int i = 0; i < d->n; i++)
            json_array_append_new(a, json_pack("{s:s,s:I,s:I}", "name", d->items[i].name, "T",
                                               (json_int_t)d->items[i].T, "bytes",
                                               (json_int_t)d->items[i].bytes));
        json_object_set_new(o, "items", a);
    }
    return o;
}

/* ---- uploads ------------------------------------------------------------------- */

static void put_item_run(void *state, sola_ws *ws, api_response *rs)
{
    (void)ws;
    dreq *st = state;
    sola_err e = {0};
    int created = 0, C = 0;
    int64_t T = 0;
    if (sola_ds_put_item(st->root, st->ds, st->item, st->tmp_path, st->flags, &created, &T,
                         &C, &e)) {
        api_error_from(rs, &e);
        return;
    }
    api_json(rs, created ? 201 : 200,
             json_pack("{s:s,s:s,s:I,s:i,s:b}", "dataset", st->ds, "item", st->item, "T",
                       (json_int_t)T, "dim", C, "created", created));
    api_set_header(rs, "Location", "/datasets/%s", st->ds);
}

static int h_put_item(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    dreq *st = dreq_new(ctx, rq, rs, 1);
    if (!st)
        return API_REPLY;
    if (take_body(rq, rs, st, 0)) {
        dreq_done(st);
        return API_REPLY;
    }
    return defer(w, st, put_item_run);
}

static void describe_into(dreq *st, api_response *rs, int status)
{
    sola_err e = {0};
    sola_ds_info d;
    if (sola_ds_stat(st->root, st->ds, &d, &e)) {
        api_error_from(rs, &e);
        return;
    }
    api_json(rs, status, info_json(&d, 1));
    sola_ds_info_free(&d);
}

static void put_npz_run(void *state, sola_ws *ws, api_response *rs)
{
    (void)ws;
    dreq *st = state;
    sola_err e = {0};
    int created = 0, n = 0;
    if (sola_ds_put_npz(st->root, st->ds, st->tmp_path, st->flags, &created, &n, &e)) {
        api_error_from(rs, &e);
        return;
    }
    describe_into(st, rs, created ? 201 : 200);
    api_set_header(rs, "Location", "/datasets/%s", st->ds);
}

static int h_put_npz(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    dreq *st = dreq_new(ctx, rq, rs, 1);
    if (!st)
        return API_REPLY;
    if (take_body(rq, rs, st, 1)) {
        dreq_done(st);
        return API_REPLY;
    }
    return defer(w, st, put_npz_run);
}

/* ---- views --------------------------------------------------------------------- */

static void list_run(void *state, sola_ws *ws, api_response *rs)
{
    (void)ws;
    dreq *st = state;
    sola_err e = {0};
    sola_ds_info *d = NULL;
    int n = 0;
    if (sola_ds_list(st->root, &d, &n, &e)) {
        api_error_from(rs, &e);
        return;
    }
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, info_json(&d[i], 0));
    free(d);
    api_json(rs, 200, json_pack("{s:o}", "datasets", a));
}

static int h_list(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    dreq *st = dreq_new(ctx, rq, rs, 0);
    return st ? defer(w, st, list_run) : API_REPLY;
}

static void describe_run(void *state, sola_ws *ws, api_response *rs)
{
    (void)ws;
    describe_into(state, rs, 200);
}

static int h_describe(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    dreq *st = dreq_new(ctx, rq, rs, 0);
    return st ? defer(w, st, describe_run) : API_REPLY;
}

static void delete_run(void *state, sola_ws *ws, api_response *rs)
{
    (void)ws;
    dreq *st = state;
    sola_err e = {0};
    if (sola_ds_delete(st->root, st->ds, st->item[0] ? st->item : NULL, &e)) {
        api_error_from(rs, &e);
        return;
    }
    if (st->item[0])
        api_json(rs, 200, json_pack("{s:s,s:s,s:s}", "deleted", "item", "dataset", st->ds,
                                    "item", st->item));
    else
        api_json(rs, 200, json_pack("{s:s,s:s}", "deleted", "dataset", "dataset", st->ds));
}

static int h_delete(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    dreq *st = dreq_new(ctx, rq, rs, 1);
    return st ? defer(w, st, delete_run) : API_REPLY;
}

const api_route api_routes_datasets[] = {
    {"GET", "/datasets", h_list, 0},
    {"GET", "/datasets/{dataset}", h_describe, 0},
    {"PUT", "/datasets/{dataset}", h_put_npz, API_AUTH | API_BODY_FILE | API_BODY_BIG},
    {"DELETE", "/datasets/{dataset}", h_delete, API_AUTH},
    {"PUT", "/datasets/{dataset}/items/{item}", h_put_item,
     API_AUTH | API_BODY_FILE | API_BODY_BIG},
    {"DELETE", "/datasets/{dataset}/items/{item}", h_delete, API_AUTH},
    {NULL, NULL, NULL, 0},
};
