/* streams.c -- see streams.h. A hash table of entries chained per bucket; an entry
 * is a stream (core/model/stream.h), its pinned model reference and its clock. Closed ids
 * are remembered in a small ring for a while so that a late call is told why its
 * stream is gone (ended, dropped as idle, replaced) rather than just "not open". */
#include "streams_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_helpers.h"

static const char *const reason_names[R_NREASONS] = {"ended", "idle", "replaced"};

uint64_t streams__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % NBUCKETS;
}

srv_streams *srv_streams_new(reg *r, int max, uint64_t idle_ms)
{
    srv_streams *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    t->reg = r;
    t->max = max;
    t->idle_ms = idle_ms;
    return t;
}

static void entry_free(srv_streams *t, api_seq *q)
{
    if (!q)
        return;
    if (q->ref)
        reg_release(t->reg, q->ref);
    sola_stream_free(q->st);
    free(q);
}

/* Lock held: finds id, or NULL; *pp is the link that points at it. */
api_seq *streams__find(srv_streams *t, const char *id, api_seq ***pp)
{
    api_seq **p = &t->b[hash(id)];
    for (; *p; p = &(*p)->next)
        if (!strcmp((*p)->id, id))
            break;
    if (pp)
        *pp = p;
    return *p;
}

/* Lock held: unlinks q (found through link p) and remembers why it closed (reason
 * -1: forget it ever opened). */
static void unlink_entry(srv_streams *t, api_seq **p, api_seq *q, int reason, uint64_t now)
{
    *p = q->next;
    q->next = NULL;
    t->n--;
    t->bytes -= q->bytes;
    if (reason < 0) {
        t->started--;
        return;
    }
    t->closed[reason]++;
    streams__end_watchers(t, q->id, reason_names[reason]);
    tomb *tb = &t->tombs[t->tomb_next];
    snprintf(tb->id, sizeof tb->id, "%s", q->id);
    tb->reason = reason;
    tb->at_ms = now;
    t->tomb_next = (t->tomb_next + 1) % NTOMBS;
    if (t->ntomb < NTOMBS)
        t->ntomb++;
}

/* Lock held: why id is not open, into e (SOLA_ENOTFOUND). */
void streams__not_open(srv_streams *t, const char *id, uint64_t now, sola_err *e)
{
    for (int i = 1; i <= t->ntomb; i++) {
        const tomb *tb = &t->tombs[(t->tomb_next - i + NTOMBS) % NTOMBS];
        if (strcmp(tb->id, id))
            continue;
        double ago = (double)(now - tb->at_ms) / 1000.0;
        if (tb->reason == R_ENDED)
            sola_errf(e, SOLA_ENOTFOUND, "sequence \"%s\" has ended (its sequence_end chunk "
                                         "came %.1f s ago); send sequence_start=true to begin "
                                         "a new one", id, ago);
        else if (tb->reason == R_IDLE)
            sola_errf(e, SOLA_ENOTFOUND, "sequence \"%s\" was dropped %.1f s ago after %.1f s "
                                         "without a chunk (--stream-idle-timeout); its state "
                                         "is gone: send sequence_start=true to begin again",
                      id, ago, (double)t->idle_ms / 1000.0);
        else
            continue; /* replaced: a newer stream of that id closed since */
        return;
    }
    sola_errf(e, SOLA_ENOTFOUND, "sequence \"%s\" is not open: send its first chunk with "
                                 "sequence_start=true (streams live in memory: a restart of "
                                 "solad ends them)", id);
}

void srv_streams_free(srv_streams *t)
{
    if (!t)
        return;
    for (int i = 0; i < NBUCKETS; i++)
        for (api_seq *q = t->b[i], *nx; q; q = nx) {
            nx = q->next;
            entry_free(t, q);
        }
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* ---- the api_seq_backend ------------------------------------------------------ */

/* Opens a stream: the model is resolved and loaded, and the state made, outside the
 * lock; then the entry goes in unless the limit or a busy namesake says no. */
static int open_stream(srv_streams *t, const api_seq_args *a, const char *model, int version,
                       api_seq **out, sola_err *e)
{
    if (t->max == 0)
        return sola_errf(e, SOLA_EINVAL, "streams are off on this server (--max-streams 0)"),
               503;
    api_seq *q = calloc(1, sizeof *q);
    if (!q)
        return sola_errf(e, SOLA_ENOMEM, "out of memory for a stream"), 503;
    snprintf(q->id, sizeof q->id, "%s", a->id);
    int rc = reg_acquire(t->reg, model, version, &q->ref, e);
    if (rc) {
        free(q);
        return api_status_of(rc);
    }
    if (!(q->m = reg_get(t->reg, q->ref, e)) || !(q->st = sola_stream_new(q->m, e))) {
        sola_err e2 = *e;
        sola_errf(e, SOLA_EIO, "model %s version %d cannot be used: %s",
                  reg_ver_name(q->ref), reg_ver_version(q->ref), e2.msg);
        entry_free(t, q);
        return 503;
    }
    q->exact = sola_refine_batchable(q->m);
    q->bytes = sizeof *q + sola_stream_bytes(q->st);
    q->busy = 1;
    api_seq *old = NULL, **p;
    uint64_t now = streams__now_ms();
    q->started_ms = q->last_ms = now;
    pthread_mutex_lock(&t->mu);
    if ((old = streams__find(t, a->id, &p))) {
        if (old->busy) {
            pthread_mutex_unlock(&t->mu);
            entry_free(t, q);
            return sola_errf(e, SOLA_EINVAL, "sequence \"%s\" is busy with another chunk; "
                                             "send a stream's chunks one after another",
                             a->id),
                   409;
        }
        unlink_entry(t, p, old, R_REPLACED, now);
    } else if (t->n >= t->max) {
        t->rejected++;
        pthread_mutex_unlock(&t->mu);
        entry_free(t, q);
        return sola_errf(e, SOLA_EINVAL, "%d streams are open, the most this server keeps "
                                         "(--max-streams %d): end streams with sequence_end, "
                                         "or retry when idle ones are dropped (after %.0f s, "
                                         "--stream-idle-timeout)",
                         t->max, t->max, (double)t->idle_ms / 1000.0),
               503;
    }
    q->next = t->b[hash(a->id)];
    t->b[hash(a->id)] = q;
    t->n++;
    t->bytes += q->bytes;
    t->started++;
    pthread_mutex_unlock(&t->mu);
    entry_free(t, old);
    *out = q;
    return 0;
}

static int be_begin(void *self, const api_seq_args *a, const char *model, int version,
                    api_seq **out, sola_err *e)
{
    srv_streams *t = self;
    if (a->start)
        return open_stream(t, a, model, version, out, e);
    uint64_t now = streams__now_ms();
    api_seq **p, *idle = NULL;
    int status = 0;
    pthread_mutex_lock(&t->mu);
    api_seq *q = streams__find(t, a->id, &p);
    if (q && !q->busy && now - q->last_ms > t->idle_ms) { /* the sweep has not run yet */
        unlink_entry(t, p, q, R_IDLE, now);
        idle = q;
        q = NULL;
    }
    if (!q) {
        streams__not_open(t, a->id, now, e);
        status = 404;
    } else if (q->busy) {
        sola_errf(e, SOLA_EINVAL, "sequence \"%s\" is busy with another chunk; send a "
                                  "stream's chunks one after another, each after the "
                                  "previous reply", a->id);
        status = 409;
    } else if ((model && strcmp(model, reg_ver_name(q->ref))) ||
               (version && version != reg_ver_version(q->ref))) {
        sola_errf(e, SOLA_EINVAL, "sequence \"%s\" runs on model %s version %d (pinned when "
                                  "it started); this request names %s%s%.0d",
                  a->id, reg_ver_name(q->ref), reg_ver_version(q->ref),
                  model ? model : reg_ver_name(q->ref), version ? " version " : "", version);
        status = 409;
    } else {
        q->busy = 1;
        *out = q;
    }
    pthread_mutex_unlock(&t->mu);
    entry_free(t, idle);
    return status;
}

static sola_stream *be_stream(api_seq *q)
{
    return q->st;
}

static const sola_model *be_model(api_seq *q)
{
    return q->m;
}

static const char *be_model_name(api_seq *q)
{
    return reg_ver_name(q->ref);
}

static int be_model_version(api_seq *q)
{
    return reg_ver_version(q->ref);
}

static void be_finish(void *self, api_seq *q, int how)
{
    srv_streams *t = self;
    uint64_t now = streams__now_ms();
    pthread_mutex_lock(&t->mu);
    q->busy = 0;
    q->last_ms = now;
    q->received = sola_stream_received(q->st);
    q->emitted = sola_stream_emitted(q->st);
    if (how != API_SEQ_KEEP) {
        api_seq **p;
        streams__find(t, q->id, &p); /* a busy entry is never replaced or swept: it is there */
        /* a discarded stream never opened, as far as anyone can tell */
        unlink_entry(t, p, q, how == API_SEQ_DISCARD ? -1 : R_ENDED, now);
    }
    pthread_mutex_unlock(&t->mu);
    if (how != API_SEQ_KEEP)
        entry_free(t, q);
}

json_t *streams__describe_locked(const api_seq *q, uint64_t now)
{
    return json_pack("{s:s,s:s,s:i,s:I,s:I,s:i,s:i,s:b,s:b,s:f,s:f,s:I}", "id", q->id,
                     "model", reg_ver_name(q->ref), "version", reg_ver_version(q->ref),
                     "received", (json_int_t)q->received, "emitted", (json_int_t)q->emitted,
                     "radius", sola_stream_radius(q->m), "dim", q->m->C, "busy", q->busy,
                     "exact", q->exact, "age_s", (double)(now - q->started_ms) / 1000.0,
                     "idle_s", (double)(now - q->last_ms) / 1000.0, "bytes",
                     (json_int_t)q->bytes);
}

static json_t *be_list(void *self)
{
    srv_streams *t = self;
    uint64_t now = streams__now_ms();
    json_t *arr = json_array();
    pthread_mutex_lock(&t->mu);
    for (int i = 0; arr && i < NBUCKETS; i++)
        for (api_seq *q = t->b[i]; q; q = q->next)
            json_array_append_new(arr, streams__describe_locked(q, now));
    json_t *o = json_pack("{s:i,s:i,s:f,s:I,s:o}", "open", t->n, "max_streams", t->max,
                          "idle_timeout_s", (double)t->idle_ms / 1000.0, "bytes",
                          (json_int_t)t->bytes, "streams", arr);
    pthread_mutex_unlock(&t->mu);
    return o;
}

static json_t *be_describe(void *self, const char *id, sola_err *e)
{
    srv_streams *t = self;
    uint64_t now = streams__now_ms();
    pthread_mutex_lock(&t->mu);
    api_seq *q = streams__find(t, id, NULL);
    json_t *o = q ? streams__describe_locked(q, now) : NULL;
    if (!q)
        streams__not_open(t, id, now, e);
    pthread_mutex_unlock(&t->mu);
    if (q && !o)
        sola_errf(e, SOLA_ENOMEM, "out of memory");
    return o;
}

const api_seq_backend srv_streams_backend = {
    .begin = be_begin,
    .stream = be_stream,
    .model = be_model,
    .model_name = be_model_name,
    .model_version = be_model_version,
    .finish = be_finish,
    .list = be_list,
    .describe = be_describe,
    .publish = streams__publish,
    .watch = streams__watch,
};

/* ---- idle sweep, figures ------------------------------------------------------- */

static int srv_streams_sweep(srv_streams *t)
{
    uint64_t now = streams__now_ms();
    api_seq *gone = NULL;
    int n = 0;
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < NBUCKETS; i++) {
        api_seq **p = &t->b[i];
        while (*p) {
            api_seq *q = *p;
            if (!q->busy && now - q->last_ms > t->idle_ms) {
                unlink_entry(t, p, q, R_IDLE, now);
                q->next = gone;
                gone = q;
                n++;
            } else {
                p = &q->next;
            }
        }
    }
    pthread_mutex_unlock(&t->mu);
    for (api_seq *q = gone, *nx; q; q = nx) { /* model releases outside the lock */
        nx = q->next;
        entry_free(t, q);
    }
    return n;
}

static void on_timer(uv_timer_t *h)
{
    srv_streams_sweep(h->data);
    streams__watch_tick(h->data);
}

static void on_async(uv_async_t *h)
{
    streams__wake_watchers(h->data);
}

int srv_streams_start_timer(srv_streams *t, uv_loop_t *loop, const int *draining)
{
    uint64_t every = t->idle_ms / 4;
    if (every > 1000)
        every = 1000;
    if (every < 20)
        every = 20;
    if (uv_timer_init(loop, &t->timer))
        return -1;
    if (uv_async_init(loop, &t->async, on_async)) {
        uv_close((uv_handle_t *)&t->timer, NULL);
        return -1;
    }
    t->timer.data = t->async.data = t;
    t->draining = draining;
    uv_timer_start(&t->timer, on_timer, every, every);
    /* neither is what keeps the loop running: the server's drain decides */
    uv_unref((uv_handle_t *)&t->timer);
    uv_unref((uv_handle_t *)&t->async);
    t->handles_on = 1;
    return 0;
}

void srv_streams_stop_timer(srv_streams *t)
{
    if (!t || !t->handles_on)
        return;
    t->handles_on = 0;
    uv_close((uv_handle_t *)&t->timer, NULL);
    uv_close((uv_handle_t *)&t->async, NULL);
    streams__forget_watchers(t);
}

int srv_streams_metrics(srv_streams *t, api_buf *b)
{
    pthread_mutex_lock(&t->mu);
    api_buf_printf(b, "# HELP solad_streams_open Streams of online refine open now.\n"
                      "# TYPE solad_streams_open gauge\nsolad_streams_open %d\n", t->n);
    api_buf_printf(b, "# HELP solad_streams_limit Most streams kept at once (--max-streams).\n"
                      "# TYPE solad_streams_limit gauge\nsolad_streams_limit %d\n", t->max);
    api_buf_printf(b, "# HELP solad_streams_memory_bytes Memory held by open streams: each "
                      "keeps its last 2R input rows and a small record.\n"
                      "# TYPE solad_streams_memory_bytes gauge\nsolad_streams_memory_bytes "
                      "%zu\n", t->bytes);
    api_buf_printf(b, "# HELP solad_streams_started_total Streams opened (sequence_start).\n"
                      "# TYPE solad_streams_started_total counter\n"
                      "solad_streams_started_total %llu\n", t->started);
    api_buf_printf(b, "# HELP solad_streams_closed_total Streams closed, by reason: ended "
                      "(sequence_end), idle (--stream-idle-timeout), replaced (a new "
                      "sequence_start of the same id).\n"
                      "# TYPE solad_streams_closed_total counter\n");
    for (int i = 0; i < R_NREASONS; i++)
        api_buf_printf(b, "solad_streams_closed_total{reason=\"%s\"} %llu\n", reason_names[i],
                       t->closed[i]);
    api_buf_printf(b, "# HELP solad_streams_watchers Open GET /streams/ID/events "
                      "connections.\n# TYPE solad_streams_watchers gauge\n"
                      "solad_streams_watchers %d\n", t->nwatchers);
    api_buf_printf(b, "# HELP solad_streams_rejected_total Stream starts refused with 503 "
                      "because --max-streams were open.\n"
                      "# TYPE solad_streams_rejected_total counter\n"
                      "solad_streams_rejected_total %llu\n", t->rejected);
    pthread_mutex_unlock(&t->mu);
    return b->failed ? -1 : 0;
}
