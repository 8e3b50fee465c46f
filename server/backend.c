/* backend.c -- the api_backend of the real daemon: models from the registry, health
 * and metrics from the server state, workspaces for the compute threads. */
#include <stdlib.h>
#include <string.h>

#include "api_helpers.h"
#include "batcher.h"
#include "bufcache.h"
#include "jobs.h"
#include "server.h"
#include "streams.h"

/* api_model is the registry's reg_ver: the api layer only passes it back. */
static int be_acquire(void *self, const char *name, int version, api_model **out, sola_err *e)
{
    srv *s = self;
    return reg_acquire(s->reg, name, version, (reg_ver **)out, e);
}

static const sola_model *be_get(void *self, api_model *m, sola_err *e)
{
    srv *s = self;
    return reg_get(s->reg, (reg_ver *)m, e);
}

static const char *be_name(const api_model *m)
{
    return reg_ver_name((const reg_ver *)m);
}

static int be_version(const api_model *m)
{
    return reg_ver_version((const reg_ver *)m);
}

static void be_release(void *self, api_model *m)
{
    srv *s = self;
    reg_release(s->reg, (reg_ver *)m);
}

static json_t *be_list(void *self)
{
    return reg_list(((srv *)self)->reg);
}

static json_t *be_describe(void *self, const char *name, sola_err *e)
{
    return reg_describe(((srv *)self)->reg, name, e);
}

static int be_download(void *self, const char *name, int version, void **buf, size_t *len,
                       sola_err *e)
{
    return reg_download(((srv *)self)->reg, name, version, buf, len, e);
}

static int be_put(void *self, const char *name, int version, const char *tmp_path,
                  int *conflict, sola_err *e)
{
    srv *s = self;
    int rc = reg_put(s->reg, name, version, tmp_path, conflict, e);
    if (!rc)
        srv_logf(s, "info", "model %s version %d stored", name, version);
    return rc;
}

static int be_activate(void *self, const char *name, int version, sola_err *e)
{
    srv *s = self;
    int rc = reg_activate(s->reg, name, version, e);
    if (!rc)
        srv_logf(s, "info", "model %s: version %d is active", name, version);
    return rc;
}

static int be_ready(void *self, char *why, size_t n)
{
    srv *s = self;
    if (s->draining) {
        snprintf(why, n, "draining (shutting down)");
        return 0;
    }
    if (!reg_ready(s->reg)) {
        snprintf(why, n, "no model is loaded");
        return 0;
    }
    return 1;
}

static json_t *be_health(void *self)
{
    srv *s = self;
    double up = (double)(uv_now(s->loop) - s->start_ms) / 1000.0;
    int running = atomic_load(&s->running);
    /* no paths or addresses: /healthz needs no token and says nothing an attacker
     * could use (where the data lives is the operator's to know) */
    json_t *h = json_pack("{s:s,s:s,s:f,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:b,s:b}",
                     "status", s->draining ? "draining" : "ok", "version", API_VERSION,
                     "uptime_s", up, "models", reg_nmodels(s->reg), "models_loaded",
                     reg_nloaded(s->reg), "queue_depth",
                     s->inflight - running > 0 ? s->inflight - running : 0, "inflight",
                     s->inflight, "admitted", s->admitted, "requests_in_progress",
                     s->active_reqs, "workers", s->cfg.workers, "queue_limit", s->cfg.queue,
                     "blas_threads", s->cfg.threads, "inflight_bytes",
                     (json_int_t)budget_used(&s->mem), "max_inflight_bytes",
                     (json_int_t)s->mem.max, "auth", s->token != NULL, "data",
                     s->cfg.data_dir != NULL);
    static const char *const roles[] = {"serve+train", "serve", "train"};
    int role = s->cfg.models_dir ? SRV_ROLE_SERVE : s->cfg.role; /* a store never trains */
    json_object_set_new(h, "role", json_string(roles[role]));
    json_object_set_new(h, "read_only_store", json_boolean(s->cfg.models_dir != NULL));
    if (h && s->batcher) { /* how much batching happens: requests per pass */
        batcher_stats b;
        batcher_get_stats(s->batcher, &b);
        json_object_set_new(h, "batching",
                            json_pack("{s:I,s:I,s:I,s:i,s:i}", "passes", (json_int_t)b.passes,
                                      "requests", (json_int_t)b.requests, "frames",
                                      (json_int_t)b.frames, "window_us", s->cfg.batch_window_us,
                                      "max_frames", s->cfg.max_batch_frames));
    }
    return h;
}

typedef struct models_arg {
    metrics_model_emit emit;
    void *ctx;
} models_arg;

static void each_model(void *arg, const char *name, int version, int dim)
{
    models_arg *a = arg;
    a->emit(a->ctx, name, version, dim);
}

static void models_fn(void *arg, metrics_model_emit emit, void *ctx)
{
    srv *s = arg;
    models_arg a = {emit, ctx};
    reg_each_active(s->reg, each_model, &a);
}

static int be_metrics(void *self, char **text, size_t *len)
{
    srv *s = self;
    metrics_gauges g = {0};
    int running = atomic_load(&s->running);
    g.queue_depth = s->inflight - running > 0 ? s->inflight - running : 0;
    g.inflight = s->inflight;
    g.admitted = s->admitted;
    g.inflight_bytes = (double)budget_used(&s->mem);
    g.inflight_bytes_max = (double)s->mem.max;
    g.inflight_bytes_peak = (double)atomic_load(&s->mem.peak);
    g.workers = s->cfg.workers;
    g.draining = s->draining;
    g.start_time = s->start_time;
    srv_jobs_counts(s->jobs, g.jobs);
    if (metrics_render(s->met, &g, models_fn, s, text, len))
        return -1;
    if (!s->streams)
        return 0;
    api_buf b = {0}; /* the streams' families after the rest */
    char *all = NULL;
    if (srv_streams_metrics(s->streams, &b) || !(all = realloc(*text, *len + b.len + 1))) {
        api_buf_free(&b);
        free(*text);
        return -1;
    }
    memcpy(all + *len, b.p, b.len + 1);
    *text = all;
    *len += b.len;
    api_buf_free(&b);
    return 0;
}

static int be_refine(void *self, const sola_model *m, const float *x, const int *lens, int n,
                     float *y, sola_ws *ws, sola_err *e)
{
    srv *s = self;
    if (s->batcher)
        return batcher_refine(s->batcher, m, x, lens, n, y, e);
    return sola_refine_batch(m, x, lens, n, y, ws, e);
}

static int be_mem_take(void *self, size_t n)
{
    return budget_take(&((srv *)self)->mem, n);
}

static void be_mem_force(void *self, size_t n)
{
    budget_force(&((srv *)self)->mem, n);
}

static void be_mem_give(void *self, size_t n)
{
    budget_give(&((srv *)self)->mem, n);
}

/* Without batching the pool's threads are the --workers compute threads already. */
static int be_compute(void *self, void (*fn)(void *), void *arg, sola_err *e)
{
    srv *s = self;
    if (s->batcher)
        return batcher_run(s->batcher, fn, arg, e);
    fn(arg);
    return 0;
}

static void *be_buf_get(void *self, size_t n)
{
    return bufcache_get(((srv *)self)->bufs, n);
}

void srv_backend_init(srv *s)
{
    api_backend *b = &s->be;
    memset(b, 0, sizeof *b);
    b->model_acquire = be_acquire;
    b->model_get = be_get;
    b->model_name = be_name;
    b->model_version = be_version;
    b->model_release = be_release;
    b->models_list = be_list;
    b->model_describe = be_describe;
    b->model_download = be_download;
    b->model_put = be_put;
    b->model_activate = be_activate;
    b->ready = be_ready;
    b->health = be_health;
    b->metrics = be_metrics;
    b->refine = be_refine;
    b->mem_take = be_mem_take;
    b->mem_force = be_mem_force;
    b->mem_give = be_mem_give;
    b->compute = be_compute;
    b->buf_get = be_buf_get;
    b->buf_put = bufcache_put;
    s->mem.max = s->cfg.max_inflight;
    s->ctx.be = b;
    s->ctx.self = s;
    s->ctx.max_body = s->cfg.max_body;
    s->ctx.max_frames = s->cfg.max_frames;
    s->ctx.max_tsm_frames = s->cfg.max_tsm_frames;
    s->ctx.max_reply = s->cfg.max_body;
    s->ctx.max_inflight = s->cfg.max_inflight;
    s->ctx.allow_nonfinite = s->cfg.allow_nonfinite;
    s->ctx.data_dir = s->cfg.data_dir;
    s->ctx.token = s->token;
    s->ctx.hosts = &s->hosts;
    s->ctx.seq = s->streams ? &srv_streams_backend : NULL;
    s->ctx.seq_self = s->streams;
    s->ctx.read_only_store = s->cfg.models_dir;
    s->ctx.train_only = s->cfg.role == SRV_ROLE_TRAIN;
}

/* ---- workspaces -------------------------------------------------------------- */

sola_ws *srv_ws_get(srv *s)
{
    sola_ws *ws = NULL;
    pthread_mutex_lock(&s->pool.mu);
    if (s->pool.nfree > 0)
        ws = s->pool.free[--s->pool.nfree];
    pthread_mutex_unlock(&s->pool.mu);
    return ws ? ws : sola_ws_new();
}

void srv_ws_put(srv *s, sola_ws *ws)
{
    if (!ws)
        return;
    pthread_mutex_lock(&s->pool.mu);
    if (s->pool.nfree == s->pool.cap) {
        int cap = s->pool.cap ? s->pool.cap * 2 : 8;
        sola_ws **p = realloc(s->pool.free, sizeof *p * (size_t)cap);
        if (p) {
            s->pool.free = p;
            s->pool.cap = cap;
        }
    }
    if (s->pool.nfree < s->pool.cap) {
        s->pool.free[s->pool.nfree++] = ws;
        ws = NULL;
    }
    pthread_mutex_unlock(&s->pool.mu);
    sola_ws_free(ws);
}

void srv_ws_free_all(srv *s)
{
    for (int i = 0; i < s->pool.nfree; i++)
        sola_ws_free(s->pool.free[i]);
    free(s->pool.free);
    s->pool.free = NULL;
    s->pool.nfree = s->pool.cap = 0;
}
