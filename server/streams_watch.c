/* streams_watch.c -- GET /streams/ID/events: server-sent events that follow an open
 * stream, for a viewer (the web page's TSM, a dashboard) beside the stream's own
 * client. The daemon keeps no refined rows (a stream holds its last 2R input rows
 * only), so a watcher sees the rows handed out after it connected, as they are handed
 * out; it keeps the history it wants itself.
 *
 * Events: "state" (the stream as GET /streams/ID shows it) once, "rows" per batch of
 * refined rows ({"offset", "received", "end", "dim", "rows": [[...]]} or "rows_b64":
 * base64 of little-endian float32, row-major), "end" ({"reason"}: ended, idle,
 * replaced, too slow, server shutting down); ": keepalive" comments every 15 s.
 *
 * Workers append encoded events to each watcher's buffer under the table's mutex and
 * wake the loop with uv_async_send; the loop thread resumes the connections. A
 * watcher that falls WATCH_MAX_PENDING bytes behind is ended rather than buffered
 * without bound. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_helpers.h"
#include "streams_int.h"

#define WATCH_MAX_PENDING (8u << 20)
#define WATCH_KEEPALIVE_MS 15000

typedef struct watcher {
    api_stream st; /* first: the server holds it as an api_stream */
    srv_streams *t; /* NULL once the table is gone (shutdown) */
    char id[API_SEQ_ID_MAX + 1];
    int b64;
    api_buf out;   /* bytes not yet read (from off) -- guarded by t->mu */
    size_t off;
    int ended;     /* "end" is queued: nothing more is added */
    uint64_t last_ms;
    struct watcher *next, **pprev;
} watcher;

/* Lock held: queues the end event. */
static void end_one(watcher *w, const char *reason)
{
    if (w->ended)
        return;
    api_buf_printf(&w->out, "event: end\ndata: {\"reason\":\"%s\"}\n\n", reason);
    w->ended = 1;
}

void streams__end_watchers(srv_streams *t, const char *id, const char *reason)
{
    int any = 0;
    for (watcher *w = t->watchers; w; w = w->next)
        if (!w->ended && !strcmp(w->id, id)) {
            end_one(w, reason);
            any = 1;
        }
    if (any && t->handles_on)
        uv_async_send(&t->async);
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void put_b64(api_buf *b, const unsigned char *p, size_t n)
{
    if (api_buf_reserve(b, (n + 2) / 3 * 4 + 1))
        return;
    char *o = b->p + b->len;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *o++ = b64chars[v >> 18];
        *o++ = b64chars[(v >> 12) & 63];
        *o++ = b64chars[(v >> 6) & 63];
        *o++ = b64chars[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);
        *o++ = b64chars[v >> 18];
        *o++ = b64chars[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - b->p);
    b->p[b->len] = '\0';
}

/* One "rows" event, in JSON numbers or base64 (little-endian hosts: the bytes as is). */
static void encode_rows(api_buf *b, int b64, const float *y, int64_t first, int64_t k, int C,
                        int64_t received, int ended)
{
    api_buf_printf(b, "event: rows\ndata: {\"offset\":%lld,\"received\":%lld,\"end\":%s,"
                      "\"dim\":%d,",
                   (long long)first, (long long)received, ended ? "true" : "false", C);
    if (b64) {
        api_buf_puts(b, "\"rows_b64\":\"");
        if (k > 0)
            put_b64(b, (const unsigned char *)y, (size_t)k * (size_t)C * sizeof(float));
        api_buf_puts(b, "\"}\n\n");
    } else {
        static float none;
        int64_t shape[2] = {k, C};
        api_buf_puts(b, "\"rows\":");
        api_buf_json_floats(b, k > 0 ? y : &none, 2, shape);
        api_buf_puts(b, "}\n\n");
    }
}

void streams__publish(void *self, api_seq *q, const float *y, int64_t first, int64_t k,
                      int64_t received, int ended)
{
    srv_streams *t = self;
    int want[2] = {0, 0};
    pthread_mutex_lock(&t->mu);
    for (watcher *w = t->watchers; w; w = w->next)
        if (!w->ended && !strcmp(w->id, q->id))
            want[w->b64] = 1;
    pthread_mutex_unlock(&t->mu);
    if (!want[0] && !want[1])
        return;
    api_buf ev[2] = {{0}, {0}}; /* encoded once per format, outside the lock */
    for (int f = 0; f < 2; f++)
        if (want[f])
            encode_rows(&ev[f], f, y, first, k, q->m->C, received, ended);
    pthread_mutex_lock(&t->mu);
    for (watcher *w = t->watchers; w; w = w->next) {
        if (w->ended || strcmp(w->id, q->id))
            continue;
        const api_buf *e = &ev[w->b64];
        if (e->failed || !e->p) {
            end_one(w, "out of memory");
        } else if (w->out.len - w->off + e->len > WATCH_MAX_PENDING) {
            w->out.len = w->off = 0; /* it will never catch up: tell it and stop */
            end_one(w, "too slow: the watcher fell 8 MB behind");
        } else {
            api_buf_put(&w->out, e->p, e->len);
        }
    }
    int on = t->handles_on;
    pthread_mutex_unlock(&t->mu);
    api_buf_free(&ev[0]);
    api_buf_free(&ev[1]);
    if (on)
        uv_async_send(&t->async);
}

static long w_read(api_stream *st, char *buf, size_t max)
{
    watcher *w = (watcher *)st;
    srv_streams *t = w->t;
    if (!t)
        return -1;
    long n;
    pthread_mutex_lock(&t->mu);
    if (w->off == w->out.len) {
        w->out.len = w->off = 0;
        n = w->ended || w->out.failed ? -1 : 0;
    } else {
        size_t k = w->out.len - w->off;
        if (k > max)
            k = max;
        memcpy(buf, w->out.p + w->off, k);
        w->off += k;
        w->last_ms = streams__now_ms();
        n = (long)k;
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

static void w_close(api_stream *st)
{
    watcher *w = (watcher *)st;
    srv_streams *t = w->t;
    if (t) {
        pthread_mutex_lock(&t->mu);
        *w->pprev = w->next;
        if (w->next)
            w->next->pprev = w->pprev;
        t->nwatchers--;
        pthread_mutex_unlock(&t->mu);
    }
    api_buf_free(&w->out);
    free(w);
}

int streams__watch(void *self, const char *id, int b64, api_stream **out, sola_err *e)
{
    srv_streams *t = self;
    watcher *w = calloc(1, sizeof *w);
    if (!w)
        return sola_errf(e, SOLA_ENOMEM, "out of memory");
    w->st.read = w_read;
    w->st.close = w_close;
    w->t = t;
    w->b64 = b64;
    snprintf(w->id, sizeof w->id, "%s", id);
    uint64_t now = streams__now_ms();
    w->last_ms = now;
    pthread_mutex_lock(&t->mu);
    api_seq *q = streams__find(t, id, NULL);
    json_t *state = q ? streams__describe_locked(q, now) : NULL;
    if (!q)
        streams__not_open(t, id, now, e);
    if (state) {
        char *txt = json_dumps(state, JSON_COMPACT);
        api_buf_puts(&w->out, "retry: 3000\nevent: state\ndata: ");
        api_buf_puts(&w->out, txt ? txt : "{}");
        api_buf_puts(&w->out, "\n\n");
        free(txt);
        json_decref(state);
        w->next = t->watchers;
        if (w->next)
            w->next->pprev = &w->next;
        w->pprev = &t->watchers;
        t->watchers = w;
        t->nwatchers++;
    }
    pthread_mutex_unlock(&t->mu);
    if (!q || !state) {
        if (q)
            sola_errf(e, SOLA_ENOMEM, "out of memory");
        api_buf_free(&w->out);
        free(w);
        return e->code;
    }
    *out = &w->st;
    return 0;
}

void streams__wake_watchers(srv_streams *t)
{
    pthread_mutex_lock(&t->mu);
    /* wake only resumes connections (MHD reads later): the list is stable here */
    for (watcher *w = t->watchers; w; w = w->next)
        if (w->st.wake && (w->out.len > w->off || w->ended))
            w->st.wake(w->st.wake_arg);
    pthread_mutex_unlock(&t->mu);
}

void streams__watch_tick(srv_streams *t)
{
    uint64_t now = streams__now_ms();
    pthread_mutex_lock(&t->mu);
    for (watcher *w = t->watchers; w; w = w->next) {
        if (t->draining && *t->draining)
            end_one(w, "server shutting down");
        else if (!w->ended && w->out.len == w->off && now - w->last_ms >= WATCH_KEEPALIVE_MS) {
            api_buf_puts(&w->out, ": keepalive\n\n"); /* finds viewers that went away */
            w->last_ms = now;
        }
    }
    pthread_mutex_unlock(&t->mu);
    streams__wake_watchers(t);
}

void streams__forget_watchers(srv_streams *t)
{
    pthread_mutex_lock(&t->mu);
    for (watcher *w = t->watchers; w; w = w->next)
        w->t = NULL; /* MHD may still close them after the table is gone */
    t->watchers = NULL;
    t->nwatchers = 0;
    pthread_mutex_unlock(&t->mu);
}
