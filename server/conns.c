/* conns.c -- deadlines per connection that a trickling client cannot push back.
 *
 * libmicrohttpd's --conn-timeout is an idle timeout: every byte restarts it, so a
 * client sending one byte every few seconds held a connection (and, with a body, an
 * admission slot) for as long as it liked (reliability finding M5). Here every
 * connection is tracked from MHD's connection notifications and swept twice a second:
 *
 *   waiting for a header block (a new connection, or one kept alive after a reply):
 *       closed --header-timeout seconds after it started waiting;
 *   receiving a request's body (from its complete header block to the last
 *       callback): closed --body-timeout seconds after the headers, plus one second
 *       per --min-body-rate bytes of body actually received (a large upload at a
 *       decent rate is never cut; a trickle gains nothing);
 *   in our hands (queued, computing) or sending the reply: no deadline (the idle
 *       timeout still closes a client that stops reading).
 *
 * A closed connection first gets a short 408 written straight to its socket (nothing
 * else was queued on it in those phases), then shutdown(): MHD sees the end at its
 * next read and closes it as usual (completion callback, counters, descriptors). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server.h"

#define SWEEP_MS 500

struct srv_conn {
    srv *s;
    struct MHD_Connection *conn;
    int fd;
    int phase;          /* SRV_CONN_* */
    uint64_t since_ms;  /* start of the wait for headers, or of the body */
    size_t received;    /* body bytes of the current request */
    int killed;         /* the deadline closed it: SRV_CONN_HEADERS or _BODY */
    char remote[64];
    struct srv_conn *prev, *next;
};

static uint64_t now_ms(const srv *s)
{
    return uv_now(s->loop);
}

void srv_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                     enum MHD_ConnectionNotificationCode code)
{
    srv *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        srv_conn *k = calloc(1, sizeof *k);
        if (!k)
            return; /* untracked: only the idle timeout applies to it */
        k->s = s;
        k->conn = c;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        k->fd = ci ? ci->connect_fd : -1;
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr,
                      k->remote, sizeof k->remote);
        else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr,
                      k->remote, sizeof k->remote);
        if (!k->remote[0])
            snprintf(k->remote, sizeof k->remote, "-");
        k->phase = SRV_CONN_HEADERS;
        k->since_ms = s->loop ? now_ms(s) : 0;
        k->next = s->conns;
        if (s->conns)
            s->conns->prev = k;
        s->conns = k;
        *socket_context = k;
        return;
    }
    srv_conn *k = *socket_context;
    if (!k)
        return;
    *socket_context = NULL;
    if (k->prev)
        k->prev->next = k->next;
    else
        s->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    free(k);
}

srv_conn *srv_conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void srv_conn_phase(srv_conn *k, int phase)
{
    if (!k)
        return;
    if (phase == SRV_CONN_HEADERS || phase == SRV_CONN_BODY) {
        k->since_ms = now_ms(k->s);
        k->received = 0;
    }
    k->phase = phase;
}

void srv_conn_received(srv_conn *k, size_t n)
{
    if (k)
        k->received += n;
}

int srv_conn_killed(const srv_conn *k)
{
    return k ? k->killed : 0;
}

/* Writes what the client gets and ends the connection (see the file's comment). */
static void kill_conn(srv_conn *k, const char *why)
{
    srv *s = k->s;
    char body[256], msg[512];
    int bl = snprintf(body, sizeof body, "{\"error\": \"%s\"}\n", why);
    int ml = snprintf(msg, sizeof msg,
                      "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                      bl, body);
    if (k->fd >= 0) {
        if (ml > 0 && (size_t)ml < sizeof msg)
            (void)!send(k->fd, msg, (size_t)ml, MSG_NOSIGNAL | MSG_DONTWAIT);
        shutdown(k->fd, SHUT_RDWR);
    }
    k->killed = k->phase;
    srv_logf(s, "warn", "closed the connection from %s: %s", k->remote, why);
    if (k->phase == SRV_CONN_HEADERS) /* a body's request is counted at its completion */
        metrics_request(s->met, "unmatched", "other", 408,
                        (double)(now_ms(s) - k->since_ms) / 1000.0);
}

static void sweep(uv_timer_t *t)
{
    srv *s = t->data;
    uint64_t now = now_ms(s);
    const srv_config *c = &s->cfg;
    int any = 0;
    for (srv_conn *k = s->conns; k; k = k->next) {
        if (k->killed)
            continue;
        char why[200];
        if (k->phase == SRV_CONN_HEADERS && now - k->since_ms > c->header_timeout * 1000u) {
            snprintf(why, sizeof why, "the request's header block was not complete within "
                                      "--header-timeout %u s",
                     c->header_timeout);
        } else if (k->phase == SRV_CONN_BODY) {
            uint64_t allowed = (uint64_t)c->body_timeout * 1000u;
            if (c->min_body_rate)
                allowed += (uint64_t)k->received * 1000u / c->min_body_rate;
            if (now - k->since_ms <= allowed)
                continue;
            snprintf(why, sizeof why, "the request's body was not received within "
                                      "--body-timeout %u s (+1 s per --min-body-rate %zu "
                                      "bytes received)",
                     c->body_timeout, c->min_body_rate);
        } else {
            continue;
        }
        kill_conn(k, why);
        any = 1;
    }
    if (any)
        s->front_run(s); /* MHD notices the shut sockets (also from its epoll) */
}

void srv_conns_start(srv *s)
{
    uv_timer_init(s->loop, &s->deadline_timer);
    s->deadline_timer.data = s;
    uv_timer_start(&s->deadline_timer, sweep, SWEEP_MS, SWEEP_MS);
}

void srv_conns_stop(srv *s)
{
    if (!uv_is_closing((uv_handle_t *)&s->deadline_timer))
        uv_close((uv_handle_t *)&s->deadline_timer, NULL);
}
