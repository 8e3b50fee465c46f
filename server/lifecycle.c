/* lifecycle.c -- the daemon's life outside single requests: the listening socket,
 * SIGTERM/SIGINT (drain: readiness 503, stop accepting, let requests in progress
 * finish, exit 0 within --drain-timeout), SIGHUP and the periodic model rescan.
 * Everything here runs on the loop thread except the rescan's work function. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

int srv_bind_listen(srv *s)
{
    char host[256];
    const char *spec = s->cfg.listen;
    const char *colon = strrchr(spec, ':');
    if (!colon) {
        srv_logf(s, "error", "--listen %s: expected HOST:PORT", spec);
        return -1;
    }
    size_t hl = (size_t)(colon - spec);
    if (hl >= sizeof host)
        hl = sizeof host - 1;
    memcpy(host, spec, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') { /* [::1]:8080 */
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
    if (gai) {
        srv_logf(s, "error", "--listen %s: %s", spec, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *p = ai; p; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, p->ai_addr, p->ai_addrlen) == 0 && listen(fd, 256) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        srv_logf(s, "error", "--listen %s: cannot bind: %s", spec, strerror(errno));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char ip[64] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        snprintf(s->bound, sizeof s->bound, "%s:%d", ip, port);
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        snprintf(s->bound, sizeof s->bound, "[%s]:%d", ip, port);
    }
    s->listen_fd = fd;
    return ss.ss_family == AF_INET6 ? 6 : 4;
}

static void stop_loop(srv *s)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    uv_handle_t *hs[] = {(uv_handle_t *)&s->drain_timer, (uv_handle_t *)&s->rescan_timer,
                         (uv_handle_t *)&s->sigterm, (uv_handle_t *)&s->sigint,
                         (uv_handle_t *)&s->sighup};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if (!uv_is_closing(hs[i]))
            uv_close(hs[i], NULL);
    srv_conns_stop(s);
    s->front_close(s); /* once every handle is closed, uv_run returns */
}

void srv_check_drained(srv *s)
{
    if (s->draining && s->active_reqs == 0 && s->inflight == 0 && !s->rescanning)
        stop_loop(s);
}

static void on_drain_deadline(uv_timer_t *t)
{
    srv *s = t->data;
    srv_logf(s, "warn", "drain deadline (%.1fs) passed with %d requests still in progress; "
                        "exiting",
             s->cfg.drain_timeout, s->active_reqs);
    /* Suspended connections forbid MHD_stop_daemon and workers may still hold models:
     * leave without cleanup, as the deadline promises. */
    _exit(0);
}

static void on_term(uv_signal_t *h, int signum)
{
    srv *s = h->data;
    if (s->draining) {
        srv_logf(s, "warn", "second %s: exiting now", strsignal(signum));
        _exit(0);
    }
    s->draining = 1;
    srv_logf(s, "info", "%s: draining (%d requests in progress, deadline %.1fs)",
             strsignal(signum), s->active_reqs, s->cfg.drain_timeout);
    srv_notify(s, "STOPPING=1\nSTATUS=draining (%d requests in progress)", s->active_reqs);
    s->front_quiesce(s); /* new connections are refused from here on */
    uv_timer_start(&s->drain_timer, on_drain_deadline,
                   (uint64_t)(s->cfg.drain_timeout * 1000.0), 0);
    s->front_run(s);
    srv_check_drained(s);
}

typedef struct scan_job {
    uv_work_t w;
    srv *s;
    int quiet; /* periodic: log only what changes (the registry does) */
    int rc;
    sola_err e;
} scan_job;

static void scan_work(uv_work_t *w)
{
    scan_job *j = w->data;
    j->rc = reg_scan(j->s->reg, j->quiet, &j->e);
}

static void scan_after(uv_work_t *w, int status)
{
    scan_job *j = w->data;
    srv *s = j->s;
    s->rescanning = 0;
    if (status == 0 && j->rc == 0) {
        if (!j->quiet)
            srv_logf(s, "info", "SIGHUP: models rescanned (%d models)", reg_nmodels(s->reg));
    } else {
        srv_logf(s, "error", "rescan of the models failed: %s",
                 status ? uv_strerror(status) : j->e.msg);
    }
    free(j);
    srv_check_drained(s);
}

/* Rescans on a worker (it may load models). One at a time; none while draining. */
static void start_rescan(srv *s, int quiet)
{
    if (s->rescanning || s->draining)
        return;
    scan_job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->s = s;
    j->quiet = quiet;
    j->w.data = j;
    if (uv_queue_work(s->loop, &j->w, scan_work, scan_after) == 0)
        s->rescanning = 1;
    else
        free(j);
}

static void on_hup(uv_signal_t *h, int signum)
{
    (void)signum;
    start_rescan(h->data, 0);
}

static void on_rescan_timer(uv_timer_t *t)
{
    start_rescan(t->data, 1);
}


void srv_lifecycle_start(srv *s)
{
    uv_timer_init(s->loop, &s->drain_timer);
    uv_timer_init(s->loop, &s->rescan_timer);
    uv_signal_init(s->loop, &s->sigterm);
    uv_signal_init(s->loop, &s->sigint);
    uv_signal_init(s->loop, &s->sighup);
    uv_handle_t *hs[] = {(uv_handle_t *)&s->drain_timer, (uv_handle_t *)&s->rescan_timer,
                         (uv_handle_t *)&s->sigterm, (uv_handle_t *)&s->sigint,
                         (uv_handle_t *)&s->sighup};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        hs[i]->data = s;
    srv_conns_start(s);
    uv_signal_start(&s->sigterm, on_term, SIGTERM);
    uv_signal_start(&s->sigint, on_term, SIGINT);
    uv_signal_start(&s->sighup, on_hup, SIGHUP);
    if ((s->cfg.data_dir || s->cfg.models_dir) && s->cfg.rescan_ms > 0)
        uv_timer_start(&s->rescan_timer, on_rescan_timer, s->cfg.rescan_ms, s->cfg.rescan_ms);
}
