/* server.h -- the solad process: configuration, the state the loop thread owns, and
 * the pieces main.c wires together (http.c: libmicrohttpd driven by libuv; backend.c:
 * the api_backend over the registry and metrics; log.c: one line per request). */
/* implemented in: backend.c conns.c http.c lifecycle.c log.c notify.c */
#ifndef SOLAD_SERVER_H
#define SOLAD_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include <microhttpd.h>
#include <uv.h>

#include "api.h"
#include "budget.h"
#include "metrics.h"
#include "registry.h"

typedef struct srv_config {
    const char *listen;        /* HOST:PORT ([v6]:PORT); port 0 = any free port */
    const char *data_dir;      /* NULL: embedded model only */
    const char *models_dir;    /* read-only model store (--models-dir); excludes data_dir */
    int role;                  /* SRV_ROLE_*: which of serving and training this process does */
    int dim;                   /* C of the embedded default model */
    int workers;               /* compute threads (libuv threadpool size) */
    int threads;               /* BLAS threads per worker */
    size_t max_body;           /* bytes */
    int max_frames;            /* T limit */
    int queue;                 /* work items that may wait beyond the busy workers */
    const char *token_file;
    const char *allowed_hosts; /* --allowed-hosts: comma-separated; "*" = any */
    int log_json;
    const char *default_model;
    double drain_timeout;      /* seconds */
    unsigned conn_timeout;     /* seconds of client inactivity */
    unsigned header_timeout;   /* seconds for a whole header block (conns.c) */
    unsigned body_timeout;     /* seconds for a body after its headers ... */
    size_t min_body_rate;      /* ... plus one second per this many body bytes */
    unsigned max_conns, max_conns_per_ip;
    int debug_delay_ms;        /* testing aid: each work item sleeps this long first */
    uint64_t rescan_ms;        /* periodic rescan of DATA/models, 0 = only on SIGHUP */
    size_t max_upload;         /* bytes of a dataset upload (API_BODY_BIG); 0 = max_body */
    int train_threads;         /* BLAS threads of the training process */
    int job_queue;             /* queued training jobs before 503 */
    int resume_jobs;           /* interrupted jobs resume by themselves at start */
    int batch_window_us;       /* dynamic batching: wait for company (batcher.h) */
    int max_batch_frames;      /* snippets per batched pass; 0 = batching off */
    size_t max_inflight;       /* --max-inflight-bytes: the memory budget (budget.h) */
    int max_tsm_frames;        /* T limit of a TSM */
    int allow_nonfinite;       /* NaN/Inf accepted in features and uploads */
    int max_streams;           /* open streams of online refine (streams.h); 0 = off */
    uint64_t stream_idle_ms;   /* a stream without a call this long is dropped */
} srv_config;

/* Roles of replicas sharing one --data directory (docs/deploy.md): the default does
 * both; --serve-only never takes the trainer lock (its POST /train queues the job for
 * whoever holds it); --train-only takes the lock and refuses the compute routes. */
enum { SRV_ROLE_BOTH = 0, SRV_ROLE_SERVE, SRV_ROLE_TRAIN };

/* Workspaces for the compute threads: one per worker, reused. */
typedef struct ws_pool {
    pthread_mutex_t mu;
    sola_ws **free;
    int nfree, cap;
} ws_pool;

typedef struct srv {
    srv_config cfg;
    uv_loop_t *loop;
    struct MHD_Daemon *mhd;
    int listen_fd;
    char bound[128]; /* "127.0.0.1:8080" as actually bound */
    uv_poll_t poll;
    uv_timer_t timer, drain_timer, rescan_timer, deadline_timer;
    /* work run on a compute thread itself (batcher_post) comes back through here */
    uv_async_t direct_async;
    pthread_mutex_t direct_mu;
    struct req *direct_done; /* finished, for the loop (http.c), newest first */
    uv_signal_t sigterm, sigint, sighup;
    /* The front end (http.c: MHD and its poll and timer handles) as the layers below
     * it see it, set by srv_http_start: lifecycle.c and conns.c call these and never
     * into http.c, which owns and closes its own handles. */
    void (*front_run)(struct srv *s);     /* let MHD process what is pending */
    void (*front_quiesce)(struct srv *s); /* draining: refuse new connections */
    void (*front_close)(struct srv *s);   /* stopping: close the front end's handles */

    reg *reg;
    struct srv_jobs *jobs; /* training jobs (jobs.h); NULL without --data */
    struct batcher *batcher; /* dynamic batching (batcher.h); NULL when off */
    struct bufcache *bufs;   /* large bodies and replies kept for reuse (bufcache.h) */
    struct srv_streams *streams; /* online refine (streams.h) */
    struct srv_conn *conns; /* every open connection (conns.c; loop thread) */
    metrics *met;
    api_backend be;
    api_ctx ctx;
    char *token;
    api_hosts hosts;  /* --allowed-hosts, the listen host, the machine's name */
    char *tmp_dir;   /* uploads are streamed here (DATA/tmp or $TMPDIR) */
    ws_pool pool;

    int draining;
    int stopping;
    int inflight;        /* work items queued or running (loop thread) */
    int admitted;        /* requests holding one of workers + queue slots (loop thread):
                          * from the headers when a body follows, else from the work */
    srv_budget mem;      /* --max-inflight-bytes */
    atomic_int running;  /* work items executing on a worker */
    int active_reqs;     /* requests between headers and completion (loop thread) */
    int rescanning;
    double start_time;   /* Unix seconds */
    uint64_t start_ms;   /* uv_hrtime / 1e6 at start */
} srv;

/* backend.c */
void srv_backend_init(srv *s);

/* http.c: binds, starts MHD and the loop handles; 0 or -1 (message printed). */
int srv_http_start(srv *s);
/* Runs the loop until drained; then stops MHD. */
void srv_http_run(srv *s);

/* conns.c (loop thread): deadlines a trickling client cannot push back. Each MHD
 * connection is tracked from MHD_OPTION_NOTIFY_CONNECTION (srv_conn_notify); the
 * request life cycle tells it the phase: waiting for headers (since a new connection
 * or the previous reply: --header-timeout), receiving a body (since the headers:
 * --body-timeout + received / --min-body-rate), in our hands or replying (none). */
typedef struct srv_conn srv_conn;
enum { SRV_CONN_HEADERS = 1, SRV_CONN_BODY, SRV_CONN_WORK, SRV_CONN_REPLY };
void srv_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                     enum MHD_ConnectionNotificationCode code);
srv_conn *srv_conn_of(struct MHD_Connection *c);
void srv_conn_phase(srv_conn *k, int phase);
void srv_conn_received(srv_conn *k, size_t n);
/* The phase in which a deadline closed the connection, else 0. */
int srv_conn_killed(const srv_conn *k);
void srv_conns_start(srv *s);
/* Closes the deadline sweep's timer (the loop is stopping). */
void srv_conns_stop(srv *s);

/* lifecycle.c (loop thread): the listening socket (returns 4 or 6 for the address
 * family, -1 on failure), signal and timer handles, and the drain check that stops
 * the loop once nothing is in progress. */
int srv_bind_listen(srv *s);
void srv_lifecycle_start(srv *s);
void srv_check_drained(srv *s);

/* log.c: one line per request and free-form messages, text or JSON, to stderr. */
void srv_log_request(const srv *s, const char *method, const char *path, const char *remote,
                     int status, size_t bytes, double ms);
void srv_logf(const srv *s, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* notify.c: tells the service manager about readiness and shutdown (systemd's
 * Type=notify: "READY=1", "STOPPING=1", "STATUS=..."), through libsystemd's sd_notify
 * when solad is built with it (SOLA_SYSTEMD), else by writing the same datagram to
 * $NOTIFY_SOCKET itself. Does nothing without $NOTIFY_SOCKET; failures are logged
 * once, never fatal. Any thread. */
void srv_notify(const srv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* workspaces */
sola_ws *srv_ws_get(srv *s);
void srv_ws_put(srv *s, sola_ws *ws);
void srv_ws_free_all(srv *s);

#endif
