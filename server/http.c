/* http.c -- libmicrohttpd driven by the libuv loop, and the request life cycle.
 *
 * MHD runs without threads of its own (MHD_USE_EPOLL): its epoll descriptor is
 * watched with a uv_poll, MHD_get_timeout becomes a uv_timer, and MHD_run is called
 * from the loop whenever either fires. So the loop thread owns every connection.
 *
 * One request:
 *   URI log callback    the raw request line: %00 marked (guard.c)
 *   first callback      framing, query, route match, auth, Content-Length limit (early
 *                       400/401/404/405/413/501 before any body is read), then
 *                       admission of a request with a body: one of workers + queue
 *                       slots and its Content-Length from the memory budget
 *                       (budget.h), else 503 + Retry-After at once; state `req`
 *   body callbacks      bytes appended to memory (or, for uploads, to a temporary
 *                       file) up to --max-body, else 413 at once
 *   last callback       api_handle: an immediate reply, or an api_work (a body-less
 *                       request takes its slot here, else 503); the connection is
 *                       suspended, its socket watched for the client going away
 *                       (which cancels the work), and the work goes to uv_queue_work
 *                       -- or, for work that is mostly its compute (api_work.direct)
 *                       while a compute thread is idle and nothing waits, straight to
 *                       that thread (batcher_post), which hands it back through an
 *                       async handle: two thread hand-offs instead of four
 *   after_work (loop)   done(), reply queued (its bytes counted against the budget
 *                       until sent), slot freed, connection resumed, MHD run at once
 *   completed callback  log line, metrics, budget given back, state freed
 * Compute threads never see MHD; the loop thread never computes. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api_helpers.h"
#include "array.h"
#include "batcher.h"
#include "bufcache.h"
#include "gemm.h"
#include "guard.h"
#include "npy.h"
#include "server.h"

#define MAX_QUERY 32

typedef struct req {
    srv *s;
    struct MHD_Connection *conn;
    srv_conn *k;                 /* the connection's deadlines (conns.c) */
    uint64_t t0;                 /* uv_hrtime at the first callback */
    uint64_t t_body;             /* uv_hrtime at the last callback (body received) */
    char method[16];
    char *path;                  /* as received (decoded by MHD), owned */
    char remote[64];
    api_request rq;
    api_kv query[MAX_QUERY];
    const char *label;           /* metrics route label (static) */

    char *body;                  /* in-memory body, NUL-terminated, owned */
    size_t blen, bcap;
    int body_cached;             /* body is from s->bufs (bufcache_put), else malloc'd */
    size_t expect;               /* Content-Length, 0 if none */
    size_t limit;                /* --max-body, or --max-upload for streamed uploads */
    int body_fd;                 /* upload file, -1 if none */
    int lock_fd;                 /* a dup of it holding its flock until completion */
    char *body_path;             /* owned; unlinked at completion */
    int over;                    /* body exceeded --max-body (or could not be stored) */
    int scan;                    /* .npy float check on arrival: 0 undecided, 1 on, -1 off */
    size_t scan_off, scanned, bad; /* words from scan_off: checked, first non-finite */
    size_t discarded;            /* bytes dropped after that */

    api_response rs;
    api_work w;
    uv_work_t work;
    uint64_t t_submit, t_start, t_end; /* uv_hrtime: queued, started, finished */
    int replied;                 /* a response is queued */
    int early;                   /* refused from the headers; reply at the last callback */
    int dead;                    /* a reply could not be built: close the connection */
    int deferred;                /* work submitted, not yet after_work'd */
    int direct;                  /* the work went to a compute thread (batcher_post) */
    struct req *next_done;       /* s->direct_done's list */
    int close;                   /* the reply ends the connection (framing unknown) */
    int slot;                    /* holds one of workers + queue (s->admitted) */
    size_t body_held;            /* budget held for the in-memory body (its capacity) */
    size_t reply_held;           /* budget held for the queued reply */
    atomic_int cancel;           /* the client went away while the work ran */
    int gone;
    uv_poll_t *watch;            /* the suspended connection's socket, for its close */
    int status;
    size_t bytes;
} req;

static void arm_timer(srv *s);

/* ---- small helpers ----------------------------------------------------------- */

static const char *hdr_lookup(void *hctx, const char *name)
{
    req *r = hctx;
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* Lets MHD process what is pending and re-arms its timer (loop thread). */
static void srv_mhd_run(srv *s)
{
    if (!s->mhd)
        return;
    MHD_run(s->mhd);
    arm_timer(s);
}

static void on_timer(uv_timer_t *t)
{
    srv_mhd_run(t->data);
}

static void arm_timer(srv *s)
{
    MHD_UNSIGNED_LONG_LONG to;
    if (MHD_get_timeout(s->mhd, &to) == MHD_YES)
        uv_timer_start(&s->timer, on_timer, to, 0);
    else
        uv_timer_stop(&s->timer);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    srv_mhd_run(p->data);
}

/* ---- streamed replies (server-sent events) -----------------------------------
 * MHD pulls the body from the api_stream; when the producer has nothing yet the
 * connection is suspended (no busy polling) until the producer calls wake. The link
 * lives as long as the MHD response, which may outlive the request's `req`. */
typedef struct stream_link {
    srv *s;
    struct MHD_Connection *conn;
    api_stream *st;
    int suspended;
} stream_link;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_link *l = cls;
    long n = l->st->read(l->st, buf, max);
    if (n > 0)
        return n;
    if (n < 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    l->suspended = 1;
    MHD_suspend_connection(l->conn);
    return 0;
}

/* Loop thread, from the producer (never from inside MHD): resume, and let MHD run
 * from the timer once the producer's callback has returned. */
static void stream_wake(void *arg)
{
    stream_link *l = arg;
    if (!l->suspended)
        return;
    l->suspended = 0;
    MHD_resume_connection(l->conn);
    uv_timer_start(&l->s->timer, on_timer, 0, 0);
}

static void stream_free(void *cls)
{
    stream_link *l = cls;
    l->st->close(l->st);
    free(l);
}

static struct MHD_Response *stream_response(req *r)
{
    stream_link *l = malloc(sizeof *l);
    if (!l)
        return NULL;
    *l = (stream_link){r->s, r->conn, r->rs.stream, 0};
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, l,
                                          stream_free);
    if (!resp) {
        free(l);
        return NULL;
    }
    r->rs.stream->wake = stream_wake;
    r->rs.stream->wake_arg = l;
    r->rs.stream = NULL; /* closed by stream_free from here on */
    return resp;
}

/* Queues r->rs on the connection (body ownership passes to MHD). */
static enum MHD_Result send_reply(req *r)
{
    srv *s = r->s;
    api_response *rs = &r->rs;
    if (rs->status == 0)
        api_error(rs, 500, "internal error: no reply");
    struct MHD_Response *resp =
        rs->stream ? stream_response(r)
        : rs->body && rs->body_free
            ? MHD_create_response_from_buffer_with_free_callback(rs->len, rs->body,
                                                                 rs->body_free)
            : MHD_create_response_from_buffer(rs->len, rs->body ? rs->body : (void *)"",
                                              rs->body ? MHD_RESPMEM_MUST_FREE
                                                       : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        budget_give(&s->mem, rs->charged);
        api_response_clear(rs);
        r->dead = 1; /* the next callback closes the connection */
        return MHD_NO;
    }
    /* the reply's bytes count until it is sent: what the handler reserved, or its
     * length when it reserved nothing (small replies, downloads) */
    size_t held = rs->charged;
    if (rs->body && rs->len > held) {
        budget_force(&s->mem, rs->len - held);
        held = rs->len;
    }
    r->reply_held += held;
    rs->charged = 0;
    rs->body = NULL; /* MHD frees it */
    rs->body_free = NULL;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rs->ctype);
    for (int i = 0; i < rs->nheaders; i++)
        MHD_add_response_header(resp, rs->hname[i], rs->hval[i]);
    if (s->draining || r->close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    r->status = r->gone ? 499 : rs->status; /* 499: the client closed first (nginx's) */
    r->bytes = rs->len;
    if (rs->frames > 0)
        metrics_frames(s->met, rs->frames);
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)rs->status, resp);
    MHD_destroy_response(resp);
    r->replied = 1;
    srv_conn_phase(r->k, SRV_CONN_REPLY);
    return ok;
}

/* ---- compute ----------------------------------------------------------------- */

static void run_work(req *r)
{
    srv *s = r->s;
    atomic_fetch_add(&s->running, 1);
    r->t_start = uv_hrtime();
    if (s->cfg.debug_delay_ms > 0) {
        struct timespec ts = {s->cfg.debug_delay_ms / 1000,
                              (long)(s->cfg.debug_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    sola_ws *ws = srv_ws_get(s);
    if (!ws)
        api_error(&r->rs, 503, "out of memory for a compute workspace");
    else
        r->w.run(r->w.state, ws, &r->rs);
    sola_gemm_rest(); /* a pass computed on this thread is over (no batching, or a
                       * posted job): its helpers need not spin for the next */
    srv_ws_put(s, ws);
    r->t_end = uv_hrtime();
    atomic_fetch_sub(&s->running, 1);
}

static void work_cb(uv_work_t *w)
{
    run_work(w->data);
}

static void slot_free(req *r)
{
    if (r->slot) {
        r->slot = 0;
        r->s->admitted--;
    }
}

static void watch_closed(uv_handle_t *h)
{
    free(h);
}

/* Must run before MHD may close the socket (resume, MHD_run). */
static void watch_stop(req *r)
{
    if (r->watch) {
        uv_poll_stop(r->watch);
        uv_close((uv_handle_t *)r->watch, watch_closed);
        r->watch = NULL;
    }
}

/* The suspended connection's peer closed (or half-closed: an HTTP client that stops
 * sending before reading its reply is treated as gone, as nginx does): the work
 * stops at its next check, or never starts. */
static void on_gone(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    req *r = p->data;
    r->gone = 1;
    atomic_store(&r->cancel, 1);
    uv_poll_stop(p);
    if (!r->direct) /* a posted work has its compute thread already */
        uv_cancel((uv_req_t *)&r->work); /* only succeeds while it waits for a thread */
}

static void watch_start(req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci || !(r->watch = malloc(sizeof *r->watch)))
        return;
    if (uv_poll_init(r->s->loop, r->watch, ci->connect_fd)) {
        free(r->watch);
        r->watch = NULL;
        return;
    }
    r->watch->data = r;
    uv_poll_start(r->watch, UV_DISCONNECT, on_gone);
}

static void after_work_cb(uv_work_t *w, int status)
{
    req *r = w->data;
    srv *s = r->s;
    s->inflight--;
    r->deferred = 0;
    watch_stop(r);
    slot_free(r);
    if (status == UV_ECANCELED) {
        api_response_clear(&r->rs);
        if (r->gone)
            api_error(&r->rs, 503, "the client went away");
        else
            api_error(&r->rs, 503, "server is shutting down; retry on another replica");
    }
    r->w.done(r->w.state);
    memset(&r->w, 0, sizeof r->w);
    if (status == 0) /* where the time went, for clients chasing latency */
        api_set_header(&r->rs, "Server-Timing", "recv;dur=%.3f, queue;dur=%.3f, work;dur=%.3f",
                       (double)(r->t_body - r->t0) / 1e6,
                       (double)(r->t_start - r->t_submit) / 1e6,
                       (double)(r->t_end - r->t_start) / 1e6);
    send_reply(r); /* allowed while suspended: sent once resumed */
    MHD_resume_connection(r->conn);
    srv_mhd_run(s);
    srv_check_drained(s);
}

/* ---- work run on a compute thread itself (batcher_post): two hand-offs (loop to
 * compute thread and back) instead of four (loop, worker, compute thread, worker,
 * loop), for a lone request whose run is mostly its compute (api_work.direct) ---- */

static void direct_run(void *arg) /* compute thread */
{
    run_work(arg);
}

static void direct_posted(void *arg) /* compute thread, after direct_run */
{
    req *r = arg;
    srv *s = r->s;
    pthread_mutex_lock(&s->direct_mu);
    r->next_done = s->direct_done;
    s->direct_done = r;
    pthread_mutex_unlock(&s->direct_mu);
    uv_async_send(&s->direct_async);
}

static void on_direct_done(uv_async_t *a) /* loop thread */
{
    srv *s = a->data;
    pthread_mutex_lock(&s->direct_mu);
    req *list = s->direct_done;
    s->direct_done = NULL;
    pthread_mutex_unlock(&s->direct_mu);
    req *fifo = NULL;
    while (list) {
        req *nx = list->next_done;
        list->next_done = fifo;
        fifo = list;
        list = nx;
    }
    while (fifo) {
        req *nx = fifo->next_done;
        after_work_cb(&fifo->work, 0);
        fifo = nx;
    }
}

static void reply_503_busy(req *r)
{
    api_error(&r->rs, 503, "busy: %d requests are admitted (receiving, queued or running; "
                           "--workers %d, --queue %d); retry shortly",
              r->s->admitted, r->s->cfg.workers, r->s->cfg.queue);
    api_set_header(&r->rs, "Retry-After", "1");
}

/* ---- body -------------------------------------------------------------------- */

static int body_open_file(req *r)
{
    srv *s = r->s;
    size_t n = strlen(s->tmp_dir) + 32;
    r->body_path = malloc(n);
    if (!r->body_path)
        return -1;
    snprintf(r->body_path, n, "%s/upload.XXXXXX", s->tmp_dir);
    r->body_fd = mkostemp(r->body_path, O_CLOEXEC);
    if (r->body_fd < 0) {
        srv_logf(s, "error", "cannot create an upload file in %s: %s", s->tmp_dir,
                 strerror(errno));
        free(r->body_path);
        r->body_path = NULL;
        return -1;
    }
    /* mkstemp's 0600 would follow the file into models/ (it is linked, not copied),
     * where other replicas and tools must read it */
    fchmod(r->body_fd, 0644);
    /* in use: a replica starting meanwhile leaves it alone (clean_tmp in main.c); the
     * lock goes with the descriptor, or with the process if it dies */
    flock(r->body_fd, LOCK_EX | LOCK_NB);
    r->lock_fd = dup(r->body_fd); /* body_fd is closed before the handler uses the file */
    return 0;
}

/* The body's words after an .npy header, checked for NaN and infinity as they arrive
 * (api_request.body_f32_*): the bytes are in cache now, where a scan by the handler
 * later would read a large body from memory again. Only the preamble is read
 * (sola_npy_data_offset: magic, version, header length); whether the data are <f4 is
 * the handler's to see. */
static void scan_arrived(req *r)
{
    if (r->scan == 0) {
        if (r->blen < 12) /* the longest preamble (versions 2 and 3) */
            return;
        size_t off = sola_npy_data_offset(r->body, r->blen);
        /* (off is within the body's length or past it; checked as words arrive) */
        if (!off || off % sizeof(float)) { /* (a body's buffer is 16-byte aligned) */
            r->scan = -1;
            return;
        }
        r->scan = 1;
        r->scan_off = off;
        r->scanned = 0;
        r->bad = SIZE_MAX;
    }
    if (r->blen <= r->scan_off || r->bad != SIZE_MAX)
        return;
    size_t words = (r->blen - r->scan_off) / sizeof(float);
    if (words > r->scanned) {
        const float *f = (const float *)(void *)(r->body + r->scan_off) + r->scanned;
        size_t k = sola_first_nonfinite(f, words - r->scanned);
        if (k < words - r->scanned)
            r->bad = r->scanned + k;
        r->scanned = words;
    }
}

/* 0, or an HTTP status to answer with (413, 500, 507). */
static int body_append(req *r, const char *data, size_t n)
{
    srv *s = r->s;
    if (r->blen + n < r->blen || r->blen + n > r->limit)
        return 413;
    if (r->body_fd >= 0) {
        size_t off = 0;
        while (off < n) {
            ssize_t w = write(r->body_fd, data + off, n - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                int st = sola_errno_code(errno) == SOLA_ENOSPC ? 507 : 500;
                /* give the space back now, not when the client has finished sending */
                close(r->body_fd);
                r->body_fd = -1;
                if (r->lock_fd >= 0) /* it holds the blocks of the unlinked file too */
                    close(r->lock_fd);
                r->lock_fd = -1;
                unlink(r->body_path);
                free(r->body_path);
                r->body_path = NULL;
                return st;
            }
            off += (size_t)w;
        }
        r->blen += n;
        return 0;
    }
    if (r->blen + n + 1 > r->bcap) {
        /* the announced length sizes the buffer once (already checked <= max_body) */
        size_t cap = r->bcap ? r->bcap : r->expect + 1 > 16384 ? r->expect + 1 : 16384;
        while (cap < r->blen + n + 1)
            cap *= 2;
        if (cap > s->cfg.max_body + 1)
            cap = s->cfg.max_body + 1;
        /* the budget holds the buffer's capacity: reserved from Content-Length at
         * admission, grown here for a chunked body */
        if (cap > r->body_held) {
            if (budget_take(&s->mem, cap - r->body_held))
                return 429; /* no room in the budget (answered 503 + Retry-After) */
            r->body_held = cap;
        }
        char *p;
        if (!r->body && r->expect && cap == r->expect + 1) {
            /* the announced length, in one buffer that earlier requests may have
             * faulted in already (bufcache.h); 64-byte aligned, so an .npy payload
             * after its header is aligned for the GEMMs too */
            if (!(p = bufcache_get(s->bufs, cap)))
                return 503;
            r->body_cached = 1;
        } else if (r->body_cached) { /* more than announced: cannot happen, be safe */
            if (!(p = malloc(cap)))
                return 503;
            memcpy(p, r->body, r->blen);
            bufcache_put(r->body);
            r->body_cached = 0;
        } else if (!(p = realloc(r->body, cap))) {
            return 503;
        }
        r->body = p;
        r->bcap = cap;
    }
    memcpy(r->body + r->blen, data, n);
    r->blen += n;
    r->body[r->blen] = '\0';
    if (r->scan >= 0)
        scan_arrived(r);
    return 0;
}

static void too_large(req *r)
{
    int up = r->limit != r->s->cfg.max_body;
    api_error(&r->rs, 413, "request body is larger than this server's limit of %zu bytes "
                           "(%s)",
              r->limit, up ? "--max-upload" : "--max-body");
}

/* ---- MHD callbacks ----------------------------------------------------------- */

static req *req_new(srv *s, struct MHD_Connection *c, const char *url, const char *method)
{
    req *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(url ? url : ""))) {
        free(r);
        return NULL;
    }
    r->s = s;
    r->conn = c;
    r->k = srv_conn_of(c);
    srv_conn_phase(r->k, SRV_CONN_BODY);
    r->t0 = uv_hrtime();
    r->body_fd = -1;
    r->lock_fd = -1;
    r->limit = s->cfg.max_body;
    r->scan = s->cfg.allow_nonfinite ? -1 : 0; /* nobody would ask */
    snprintf(r->method, sizeof r->method, "%s", method);
    r->label = "unmatched";
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->remote,
                      sizeof r->remote);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->remote,
                      sizeof r->remote);
    }
    if (!r->remote[0])
        snprintf(r->remote, sizeof r->remote, "-");
    r->rq.method = r->method;
    r->rq.path = r->path;
    r->rq.query = r->query;
    r->rq.header = hdr_lookup;
    r->rq.hctx = r;
    s->active_reqs++;
    return r;
}

/* A refusal decided from the headers alone. With a body on the way it is sent at once
 * (MHD then closes the connection instead of reading a body nobody wants); without
 * one it waits for the last callback so that the connection stays open. */
static enum MHD_Result early(req *r)
{
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if ((cl && strcmp(cl, "0") != 0) || te)
        return send_reply(r);
    r->early = 1;
    return MHD_YES;
}

/* Admission of a request with a body, from its headers: a slot of workers + queue,
 * and (in_memory) its announced length from the budget. 0, or -1 with r->rs filled
 * (503 + Retry-After; 413 for a body larger than the whole budget). */
static int admit(req *r, int in_memory)
{
    srv *s = r->s;
    if (s->admitted >= s->cfg.workers + s->cfg.queue) {
        reply_503_busy(r);
        return -1;
    }
    if (in_memory && r->expect &&
        api_mem_reserve(&s->ctx, r->expect, "this request's body", &r->rs))
        return -1;
    if (in_memory)
        r->body_held = r->expect;
    r->slot = 1;
    s->admitted++;
    return 0;
}

/* First callback: everything that can be refused before reading a byte of body. */
static enum MHD_Result on_first(req *r, int uri_nul)
{
    srv *s = r->s;
    if (srv_guard_framing(r->conn, &r->rs)) {
        r->close = 1; /* where this request ends is unknown: no next one on this link */
        return send_reply(r);
    }
    if (uri_nul) {
        api_error(&r->rs, 400, "the path or query holds %%00 (a NUL byte), which no name "
                               "or value may contain");
        return early(r);
    }
    if (srv_guard_query(r->conn, r->query, MAX_QUERY, &r->rq.nquery, &r->rs))
        return early(r);
    if (api_check_host(&s->ctx, &r->rq, &r->rs))
        return early(r);
    int status;
    char allow[128];
    const api_route *route = api_route_match(&r->rq, &status, allow, sizeof allow, &r->label);
    if (!route && status == 405) {
        api_error(&r->rs, 405, "%s is not allowed on %.200s (allowed: %s)", r->method, r->path,
                  allow);
        api_set_header(&r->rs, "Allow", "%s", allow);
        return early(r);
    }
    if (!route) {
        api_handle(&s->ctx, &r->rq, &r->rs, &r->w); /* the 404 entry */
        return early(r);
    }
    const char *cl0 = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_CONTENT_LENGTH);
    int has_body = (cl0 && strcmp(cl0, "0") != 0) ||
                   MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (api_check_route(&s->ctx, &r->rq, route, has_body, &r->rs))
        return early(r);
    if ((route->flags & API_BODY_BIG) && (route->flags & API_BODY_FILE) && s->cfg.max_upload)
        r->limit = s->cfg.max_upload; /* spooled to disk, never loaded whole */
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (errno || *end || v > r->limit) {
            too_large(r);
            return send_reply(r);
        }
        r->expect = (size_t)v;
    }
    const char *te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if ((r->expect > 0 || te) && admit(r, !(route->flags & API_BODY_FILE)))
        return send_reply(r); /* before a byte of the body is read: MHD then closes */
    if ((route->flags & API_BODY_FILE) && body_open_file(r)) {
        api_error(&r->rs, 500, "cannot store the upload (see the server log)");
        return send_reply(r);
    }
    return MHD_YES;
}

static enum MHD_Result on_last(req *r)
{
    srv *s = r->s;
    r->t_body = uv_hrtime();
    if (r->body_fd >= 0) {
        close(r->body_fd);
        r->body_fd = -1;
        r->rq.body_path = r->blen ? r->body_path : NULL;
    } else {
        r->rq.body = r->body;
        r->rq.body_len = r->blen;
        if (r->scan == 1 && r->blen >= r->scan_off) {
            r->rq.body_f32_off = r->scan_off;
            r->rq.body_f32_words = r->scanned;
            r->rq.body_f32_bad = r->bad == SIZE_MAX ? r->scanned : r->bad;
        }
    }
    int rc = api_handle(&s->ctx, &r->rq, &r->rs, &r->w);
    if (rc == API_REPLY) {
        slot_free(r);
        return send_reply(r);
    }
    if (!r->slot && s->admitted >= s->cfg.workers + s->cfg.queue) {
        r->w.done(r->w.state);
        memset(&r->w, 0, sizeof r->w);
        api_response_clear(&r->rs);
        reply_503_busy(r);
        return send_reply(r);
    }
    if (!r->slot) {
        r->slot = 1;
        s->admitted++;
    }
    r->work.data = r;
    r->t_submit = uv_hrtime();
    r->rs.cancel = &r->cancel;
    srv_conn_phase(r->k, SRV_CONN_WORK);
    MHD_suspend_connection(r->conn);
    int err = 0;
    if (r->w.direct && s->batcher && !batcher_post(s->batcher, direct_run, direct_posted, r))
        r->direct = 1;
    else
        err = uv_queue_work(s->loop, &r->work, work_cb, after_work_cb);
    if (!err)
        watch_start(r);
    if (err) {
        slot_free(r);
        MHD_resume_connection(r->conn);
        r->w.done(r->w.state);
        memset(&r->w, 0, sizeof r->w);
        api_error(&r->rs, 503, "cannot queue work: %s", uv_strerror(err));
        return send_reply(r);
    }
    s->inflight++;
    r->deferred = 1;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    srv *s = cls;
    req *r = *con_cls;
    int uri_nul = srv_guard_is_nul_mark(r);
    if (uri_nul)
        r = NULL; /* first call; the URI log callback marked it */
    if (r && r->dead)
        return MHD_NO;
    if (!r) {
        if (!(r = req_new(s, c, url, method)))
            return MHD_NO; /* out of memory: MHD closes the connection */
        *con_cls = r;
        return on_first(r, uri_nul);
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0; /* consumed (or discarded once replied) */
        srv_conn_received(r->k, n);
        if (r->replied || r->early)
            return MHD_YES;
        if (r->over) {
            /* MHD can queue a reply only before or after the body, so the refusal waits
             * for the end; a client that keeps sending far past the limit is cut off */
            r->discarded += n;
            return r->discarded > s->cfg.max_body + (64u << 20) ? MHD_NO : MHD_YES;
        }
        int st = body_append(r, upload_data, n);
        if (st) {
            r->over = 1;
            if (st == 413) {
                too_large(r);
            } else if (st == 429) {
                api_error(&r->rs, 503, "busy: the memory budget for requests in progress "
                                       "(--max-inflight-bytes) is taken; retry shortly");
                api_set_header(&r->rs, "Retry-After", "1");
            } else {
                api_error(&r->rs, st, st == 507 ? "disk full while storing the upload"
                                                : "cannot store the request body");
            }
        }
        return MHD_YES;
    }
    if (r->replied || r->deferred)
        return MHD_YES;
    if (r->early || r->over)
        return send_reply(r);
    return on_last(r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    srv *s = cls;
    req *r = *con_cls;
    *con_cls = NULL;
    if (!r || srv_guard_is_nul_mark(r))
        return;
    if (srv_conn_killed(r->k) == SRV_CONN_BODY && !r->status) {
        r->status = 408; /* conns.c wrote it to the socket */
    }
    srv_conn_phase(r->k, SRV_CONN_HEADERS); /* kept alive: the next request's wait */
    double ms = (double)(uv_hrtime() - r->t0) / 1e6;
    srv_log_request(s, r->method, r->path, r->remote, r->status, r->bytes, ms);
    if (r->status)
        metrics_request(s->met, r->label, r->method, r->status, ms / 1000.0);
    if (r->w.done) /* never reached the worker (should not happen; be safe) */
        r->w.done(r->w.state);
    watch_stop(r);
    slot_free(r);
    budget_give(&s->mem, r->body_held + r->reply_held + r->rs.charged);
    api_response_clear(&r->rs);
    if (r->body_fd >= 0)
        close(r->body_fd);
    if (r->body_path) {
        unlink(r->body_path);
        free(r->body_path);
    }
    if (r->lock_fd >= 0)
        close(r->lock_fd);
    if (r->body_cached)
        bufcache_put(r->body);
    else
        free(r->body);
    free(r->path);
    free(r);
    s->active_reqs--;
    srv_check_drained(s);
}

/* Draining: MHD stops accepting; the listening socket is closed. */
static void quiesce(srv *s)
{
    MHD_socket ls = MHD_quiesce_daemon(s->mhd);
    if (ls != MHD_INVALID_SOCKET)
        close(ls);
    s->listen_fd = -1;
}

/* Stopping: the poll and timer handles go (MHD itself stops in srv_http_run). */
static void close_handles(srv *s)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&s->poll, (uv_handle_t *)&s->timer,
                         (uv_handle_t *)&s->direct_async};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if (!uv_is_closing(hs[i]))
            uv_close(hs[i], NULL);
}

int srv_http_start(srv *s)
{
    int fam = srv_bind_listen(s);
    if (fam < 0)
        return -1;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (fam == 6)
        flags |= MHD_USE_IPv6;
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
        srv_conn_notify, s, MHD_OPTION_URI_LOG_CALLBACK,
        srv_guard_uri, s, MHD_OPTION_CONNECTION_TIMEOUT,
        s->cfg.conn_timeout, MHD_OPTION_CONNECTION_LIMIT, s->cfg.max_conns,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->cfg.max_conns_per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)128 * 1024, MHD_OPTION_END);
    if (!s->mhd) {
        srv_logf(s, "error", "libmicrohttpd failed to start on %s", s->bound);
        close(s->listen_fd);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (!di) {
        srv_logf(s, "error", "libmicrohttpd has no epoll descriptor");
        MHD_stop_daemon(s->mhd);
        return -1;
    }
    uv_poll_init(s->loop, &s->poll, di->epoll_fd);
    uv_timer_init(s->loop, &s->timer);
    pthread_mutex_init(&s->direct_mu, NULL);
    uv_async_init(s->loop, &s->direct_async, on_direct_done);
    s->direct_async.data = s;
    s->poll.data = s;
    s->timer.data = s;
    uv_poll_start(&s->poll, UV_READABLE, on_poll);
    s->front_run = srv_mhd_run;
    s->front_quiesce = quiesce;
    s->front_close = close_handles;
    srv_lifecycle_start(s); /* signals, drain and rescan timers */
    arm_timer(s);
    return 0;
}

void srv_http_run(srv *s)
{
    uv_run(s->loop, UV_RUN_DEFAULT);
    /* drained: no suspended connection is left, so MHD may stop (it closes idle
     * keep-alive connections) */
    MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
}
