/* api.h -- solad's HTTP API without sockets.
 *
 * A request arrives here already parsed by the server (method, decoded path, decoded
 * query parameters, a header accessor, the body in memory or in a temporary file) and
 * leaves as an api_response (status, content type, extra headers, body buffer). Nothing
 * in api/ touches a socket, so every handler is testable with a plain struct.
 *
 * Routes live in tables (api/routes_*.c), gathered by api/router.c. A handler either
 * answers at once (API_REPLY) or hands back an api_work (API_DEFER): `run` executes on
 * a worker thread (parses the body, computes, encodes the reply: everything that costs
 * time), then `done` runs on the loop thread (releases the model reference, frees the
 * state). The server owns the threads; api/ owns neither threads nor global state.
 *
 * What the handlers need from the process (models, health, metrics text) comes
 * through api_backend, a table of functions the server fills (server/backend.c) and
 * a test can fake. */
/* implemented in: router.c request.c response.c origin.c refine_call.c */
#ifndef SOLA_API_H
#define SOLA_API_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "array.h"
#include "err.h"
#include "model.h"
#include "refine.h"

#define API_VERSION "0.1.0"

/* ---- requests ---------------------------------------------------------------- */

typedef struct api_kv {
    const char *key;
    const char *val;
} api_kv;

#define API_MAX_PARAMS 4
#define API_PARAM_LEN 128

struct api_route;

typedef struct api_request {
    const char *method; /* "GET", "POST", ... (HEAD is routed as GET) */
    const char *path;   /* percent-decoded path, no query */
    const api_kv *query; /* decoded query parameters, borrowed */
    int nquery;
    /* Header lookup (case-insensitive name); NULL when absent. */
    const char *(*header)(void *hctx, const char *name);
    void *hctx;
    /* Body in memory (body[body_len] == '\0' when body != NULL), or, for routes with
     * API_BODY_FILE, the path of a temporary file holding it (body == NULL). */
    const char *body;
    size_t body_len;
    const char *body_path;
    /* An in-memory body that starts as an .npy does (magic, version, header length)
     * has its every 4-byte word after the header read as a float32 while it arrives,
     * in cache: body_f32_off is where those words start (0: not done -- another body,
     * or non-finite values allowed) and body_f32_bad the index of the first NaN or
     * infinity among the body_f32_words of them (body_f32_words if none). A handler
     * that finds <f4 data there uses it instead of a scan of its own (the same
     * answer: sola_first_nonfinite). */
    size_t body_f32_off, body_f32_words, body_f32_bad;

    /* Filled by api_route_match: the {params} of the pattern, in order. */
    const struct api_route *route;
    int nparams;
    char pname[API_MAX_PARAMS][32];
    char pval[API_MAX_PARAMS][API_PARAM_LEN];
} api_request;

/* Query parameter / route parameter / header by name; NULL if absent (request.c). */
const char *api_query(const api_request *rq, const char *key);
const char *api_param(const api_request *rq, const char *name);
const char *api_header(const api_request *rq, const char *name);

/* ---- responses --------------------------------------------------------------- */

#define API_MAX_HEADERS 8

/* A reply body produced over time (server-sent events) instead of a buffer. The
 * producer allocates it; the server pulls bytes from it and closes it. */
typedef struct api_stream api_stream;
struct api_stream {
    /* Loop thread. Copies up to max bytes into buf and returns the count; 0 when
     * nothing is ready (the server then waits for `wake`); -1 at the end. */
    long (*read)(api_stream *st, char *buf, size_t max);
    /* Loop thread, exactly once: the reply is finished or abandoned; frees st. */
    void (*close)(api_stream *st);
    /* Set by the server when it starts sending (NULL before): the producer calls
     * wake(wake_arg) on the loop thread when new bytes are ready. */
    void (*wake)(void *wake_arg);
    void *wake_arg;
};

typedef struct api_response {
    int status;              /* 0 = not set yet */
    char ctype[80];          /* Content-Type */
    int nheaders;
    char hname[API_MAX_HEADERS][32];
    char hval[API_MAX_HEADERS][160];
    void *body;              /* malloc'd, owned; the server takes it */
    size_t len;
    void (*body_free)(void *); /* how body is freed (a backend's buf_put); NULL: free() */
    long frames;             /* snippets refined for this reply (metrics) */
    api_stream *stream;      /* instead of body (owned; closed by api_response_clear) */
    /* Bytes of the process's memory budget (api_mem_reserve) that the body holds; the
     * server gives them back once the reply has been sent. 0 = nothing reserved (the
     * server then counts the body's length itself). */
    size_t charged;
    /* Set by the server before a work item runs (NULL = never): nonzero once the
     * client has gone away, so the work may stop early (api_cancelled). */
    const atomic_int *cancel;
} api_response;

/* 1 once the client of this reply has gone away (the work may stop). */
static inline int api_cancelled(const api_response *rs)
{
    return rs->cancel && atomic_load_explicit(rs->cancel, memory_order_relaxed);
}

/* Building a reply (response.c). */

/* Frees the body (closes the stream) and resets to status 0 (keeps `cancel`; resets
 * `charged`: a caller holding a reservation gives it back first). */
void api_response_clear(api_response *rs);
/* Adds a header (silently dropped past API_MAX_HEADERS; values truncated). */
void api_set_header(api_response *rs, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Replaces the body with a malloc'd copy of buf; 0 or SOLA_ENOMEM (then 500 set). */
int api_set_body(api_response *rs, int status, const char *ctype, const void *buf,
                 size_t len);
/* Takes ownership of a malloc'd buffer as body. */
void api_take_body(api_response *rs, int status, const char *ctype, void *buf, size_t len);
/* 200 with st as a text/event-stream body (owned), never cached nor buffered. */
void api_reply_events(api_response *rs, api_stream *st);
/* The same for a buffer that free_fn frees (NULL: free), e.g. the backend's buf_put. */
void api_take_body_fn(api_response *rs, int status, const char *ctype, void *buf, size_t len,
                      void (*free_fn)(void *));
/* {"error": "..."} with the given status (printf-style message). */
void api_error(api_response *rs, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Error from a sola_err: status chosen from e->code (api_status_of). */
void api_error_from(api_response *rs, const sola_err *e);
/* HTTP status for a SOLA_E* code (FORMAT 400, SHAPE 422, NOTFOUND 404, TOOBIG 413,
 * UNSUP 415, EINVAL 400, ENOSPC 507, others 500). */
int api_status_of(int code);
/* JSON body from a value (steals the reference to v); 500 if encoding fails. */
void api_json(api_response *rs, int status, json_t *v);

/* ---- work split -------------------------------------------------------------- */

typedef struct api_work {
    void *state;
    /* Worker thread: must not touch the loop, MHD or the registry's lists; may use the
     * model reference held in state. Fills rs (always sets a status). ws is the
     * worker's own workspace. */
    void (*run)(void *state, sola_ws *ws, api_response *rs);
    /* Loop thread, exactly once, after run or instead of it (cancelled): releases
     * references and frees state. */
    void (*done)(void *state);
    /* Set by the handler when run does little besides its compute (an .npy body used
     * in place): the server may then run it on an idle compute thread itself instead
     * of a worker that hands the compute on (server/batcher.h, batcher_post). */
    int direct;
} api_work;

enum { API_REPLY = 0, API_DEFER = 1 };

/* ---- what handlers need from the process ------------------------------------- */

typedef struct api_model api_model; /* a counted reference to one model version */

typedef struct api_backend {
    /* Any thread, cheap (a short lock). name NULL = default model, version 0 =
     * active. 0 or SOLA_ENOTFOUND / SOLA_EINVAL with a message. Handlers resolve on
     * the worker, after parsing the body (a JSON body may name the model), and hold the
     * reference until the reply is encoded. */
    int (*model_acquire)(void *self, const char *name, int version, api_model **out,
                         sola_err *e);
    /* Worker thread: the loaded model (loads it on first use; NULL + e on failure). */
    const sola_model *(*model_get)(void *self, api_model *m, sola_err *e);
    const char *(*model_name)(const api_model *m);
    int (*model_version)(const api_model *m);
    /* Any thread. */
    void (*model_release)(void *self, api_model *m);

    /* Any thread (the registry locks): new references. */
    json_t *(*models_list)(void *self);
    json_t *(*model_describe)(void *self, const char *name, sola_err *e);
    /* Worker thread: the safetensors bytes of a version (malloc'd). */
    int (*model_download)(void *self, const char *name, int version, void **buf,
                          size_t *len, sola_err *e);
    /* Worker thread: validates the uploaded file at tmp_path and installs it as
     * NAME/VERSION (SOLA_EINVAL + "exists" -> 409 via *conflict). */
    int (*model_put)(void *self, const char *name, int version, const char *tmp_path,
                     int *conflict, sola_err *e);
    /* Worker thread: makes VERSION the active one (loads it first). */
    int (*model_activate)(void *self, const char *name, int version, sola_err *e);

    /* Loop thread. 1 ready, 0 not (reason in why). */
    int (*ready)(void *self, char *why, size_t n);
    json_t *(*health)(void *self);                         /* new reference */
    int (*metrics)(void *self, char **text, size_t *len);  /* malloc'd text */

    /* Worker thread: refines n sequences (lengths lens, end to end in x) of m into y,
     * perhaps in one pass with other requests' (dynamic batching, server/batcher.h);
     * bit-identical to sola_refine_batch. NULL: handlers call sola_refine_batch. */
    int (*refine)(void *self, const sola_model *m, const float *x, const int *lens, int n,
                  float *y, sola_ws *ws, sola_err *e);

    /* Any thread: the memory budget (server/budget.h). take: 0, or -1 when n bytes do
     * not fit now; force: count memory that already exists; give: return bytes taken
     * or forced. NULL: no budget (everything fits). */
    int (*mem_take)(void *self, size_t n);
    void (*mem_force)(void *self, size_t n);
    void (*mem_give)(void *self, size_t n);
    /* Worker thread: runs fn(arg) on a compute thread (as few at once as --workers),
     * blocking until done; 0 or SOLA_E*. NULL: fn runs on the calling thread. */
    int (*compute)(void *self, void (*fn)(void *arg), void *arg, sola_err *e);
    /* Any thread: a buffer of at least n bytes (64-byte aligned) for a large body,
     * reused from an earlier request when one fits (server/bufcache.h: no fresh pages
     * to fault in); NULL when out of memory. Freed with buf_put only, also as a
     * reply's body_free. Both NULL: malloc and free. */
    void *(*buf_get)(void *self, size_t n);
    void (*buf_put)(void *p);
} api_backend;

/* Host names served besides the built-in ones (api/origin.c): lower-case; a leading
 * dot (".example.com") stands for the domain and its subdomains. any: no check. */
typedef struct api_hosts {
    int any;
    int n;
    char **names;
} api_hosts;

typedef struct api_ctx {
    const api_backend *be;
    void *self;
    size_t max_body;    /* bytes */
    int max_frames;     /* T limit of one sequence */
    int max_tsm_frames; /* T limit of a TSM (T x T floats); 0 = API_TSM_MAX_T */
    size_t max_reply;   /* bytes of one reply (a TSM's JSON is refused past it); 0 = none */
    size_t max_inflight; /* the memory budget's size, for messages (0: unknown) */
    int allow_nonfinite; /* NaN/Inf in feature values accepted (else 400) */
    const char *data_dir; /* NULL: none */
    const char *token;  /* NULL: no auth */
    const api_hosts *hosts; /* Host check (--allowed-hosts); NULL: none */
    const struct api_jobs_backend *jobs; /* training jobs (api/train.h); NULL: none */
    const struct api_seq_backend *seq;   /* open streams (api/seq.h); NULL: none */
    void *seq_self;                      /* its self argument */
    /* Roles (docs/deploy.md): read_only_store names a read-only model store
     * (--models-dir): every mutating route is refused. train_only: this process only
     * runs training jobs, the compute routes are refused. */
    const char *read_only_store;
    int train_only;
} api_ctx;

/* ---- routes ------------------------------------------------------------------ */

enum {
    API_AUTH = 1,      /* mutating: needs the bearer token when one is configured */
    API_BODY_FILE = 2, /* body streamed to a temporary file (uploads) */
    API_BODY_BIG = 4,  /* with API_BODY_FILE: limited by --max-upload, not --max-body
                        * (datasets: never loaded whole, so disk is the only bound) */
    API_COMPUTE = 8,   /* refines or maps features (refused by a --train-only solad) */
};

typedef int (*api_handler)(const api_ctx *ctx, api_request *rq, api_response *rs,
                           api_work *w);

typedef struct api_route {
    const char *method;  /* NULL ends a table */
    const char *pattern; /* "/models/{model}/versions/{version}" */
    api_handler fn;
    unsigned flags;
} api_route;

/* Matches method + rq->path against every table. Returns the route (params filled in
 * rq) or NULL: then *status is 404 (no such path) or 405 (path known; allow gets the
 * allowed methods, "GET, HEAD, POST"), and *label the metrics label of the path. */
const api_route *api_route_match(api_request *rq, int *status, char *allow, size_t nallow,
                                 const char **label);
/* The label used for metrics: the route's pattern, or "unmatched". */
const char *api_route_label(const api_route *r);

/* 0 if the request may proceed; otherwise fills rs with 401 + WWW-Authenticate. */
int api_check_auth(const api_ctx *ctx, const api_request *rq, const api_route *r,
                   api_response *rs);

/* api/origin.c (finding M8). 0 if the Host header names this server (an IP literal,
 * localhost, a single-label or cluster-internal name, or one of ctx->hosts);
 * otherwise 400 naming --allowed-hosts. No check when ctx->hosts is NULL. */
int api_check_host(const api_ctx *ctx, const api_request *rq, api_response *rs);
/* 0 unless a browser could have been made to send this by another site: a request
 * other than GET/HEAD/OPTIONS whose Origin is not the Host (403); on a mutating route
 * (API_AUTH), a form's content type, or a POST body without a content type (415). */
int api_check_origin(const api_ctx *ctx, const api_request *rq, const api_route *r,
                     int has_body, api_response *rs);

/* 0 if this process's role allows the route; otherwise fills rs: 409 for a mutating
 * route on a read-only model store, 421 for a compute route on a train-only solad.
 * Checked after auth (an unauthenticated client learns nothing of the setup). */
int api_check_role(const api_ctx *ctx, const api_request *rq, const api_route *r,
                   api_response *rs);

/* The checks between a route's match and its handler, in their order: auth, role,
 * origin (above). One home for both doors: api_dispatch and solad's first callback
 * (server/http.c, which knows has_body from the headers before the body is read).
 * 0, or -1 with rs filled. */
int api_check_route(const api_ctx *ctx, const api_request *rq, const api_route *r,
                    int has_body, api_response *rs);

/* Runs the route's handler (after match and auth). */
int api_handle(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w);

/* Everything at once (match, auth, handler): for tests and simple callers. */
int api_dispatch(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w);

/* The refine every handler uses: through be->refine when the server batches, else
 * sola_refine_batch on the worker's workspace (api/refine_call.c). */
int api_refine(const api_ctx *ctx, const sola_model *m, const float *x, const int *lens,
               int n, float *y, sola_ws *ws, sola_err *e);

/* The default T limit of a TSM: 4096^2 floats = 64 MB. */
#define API_TSM_MAX_T 4096

/* Model versions are 1..API_MAX_VERSION everywhere (API, registry, file names, job
 * records); a next version past it is refused, never wrapped. */
#define API_MAX_VERSION INT32_MAX

/* The helpers the handlers share (media types, the memory budget, names, the byte
 * buffer, float encoders, the JSON features parser) are declared in api_helpers.h. */

#endif
