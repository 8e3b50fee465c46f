/* origin.c -- what a browser could be made to send here by another site (finding M8).
 *
 * Two attacks, one mechanism each:
 *   cross-site requests (CSRF): a page of another site can make a browser send a
 *     POST without asking first only with a form's content types
 *     (application/x-www-form-urlencoded, multipart/form-data, text/plain) or none,
 *     and it then says where it comes from in Origin. So every request that is not a
 *     GET/HEAD/OPTIONS and names another site in Origin is refused (403), and a
 *     mutating route refuses a form's content type (and a POST body without one)
 *     with 415 -- for browsers that send no Origin. Anything else needs a CORS
 *     preflight, which solad never grants. With no token configured this was all it
 *     took to activate a version from any web page.
 *   DNS rebinding: a page whose own name is made to resolve to this server reads
 *     from it as "same origin"; its requests carry that foreign name in Host. So Host
 *     must be one of the server's names: an IP literal, localhost, a single-label name
 *     (a Kubernetes Service's or pod's short name), a cluster-internal name (*.svc,
 *     *.svc.cluster.local), or one of ctx->hosts (--allowed-hosts, the listen address,
 *     the machine's host name). Nobody outside can own any of those in public DNS. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api.h"

/* The host part of a Host value or of an origin's authority, lower-case, without
 * port, brackets or a final dot; *v6 set for a bracketed IPv6 literal. 0 or -1. */
static int host_part(const char *in, size_t n, char *out, size_t cap, int *v6)
{
    *v6 = 0;
    size_t end = n;
    if (n && in[0] == '[') {
        const char *rb = memchr(in, ']', n);
        if (!rb)
            return -1;
        *v6 = 1;
        in++;
        end = (size_t)(rb - in);
    } else {
        const char *colon = memchr(in, ':', n);
        if (colon)
            end = (size_t)(colon - in);
    }
    if (end && in[end - 1] == '.')
        end--;
    if (end == 0 || end >= cap)
        return -1;
    for (size_t i = 0; i < end; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= ' ' || c >= 127 || c == '/' || c == '@')
            return -1;
        out[i] = (char)tolower(c);
    }
    out[end] = '\0';
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a > b && strcmp(s + a - b, suffix) == 0;
}

static int host_allowed(const api_hosts *hs, const char *name, int v6)
{
    unsigned char ip[16];
    if (v6 || inet_pton(AF_INET, name, ip) == 1)
        return 1;
    if (!strchr(name, '.') || strcmp(name, "localhost") == 0 || ends_with(name, ".localhost") ||
        ends_with(name, ".svc") || ends_with(name, ".svc.cluster.local"))
        return 1;
    for (int i = 0; i < hs->n; i++) {
        const char *a = hs->names[i];
        if (a[0] == '.' ? strcmp(name, a + 1) == 0 || ends_with(name, a) : strcmp(name, a) == 0)
            return 1;
    }
    return 0;
}

int api_check_host(const api_ctx *ctx, const api_request *rq, api_response *rs)
{
    const api_hosts *hs = ctx->hosts;
    if (!hs || hs->any)
        return 0;
    const char *h = api_header(rq, "Host");
    if (!h)
        return 0; /* HTTP/1.0 without a name: there is no foreign name to refuse */
    char name[256];
    int v6;
    if (host_part(h, strlen(h), name, sizeof name, &v6)) {
        api_error(rs, 400, "Host header %.100s is not a host name", h);
        return -1;
    }
    if (host_allowed(hs, name, v6))
        return 0;
    api_error(rs, 400, "Host %.100s is not a name of this server (an IP address, localhost, "
                       "a single-label or *.svc name, or one of --allowed-hosts): another "
                       "site's name pointed here (DNS rebinding) looks like this; if it is "
                       "yours, start solad with --allowed-hosts %.100s",
              name, name);
    return -1;
}

static int safe_method(const char *m)
{
    return !strcmp(m, "GET") || !strcmp(m, "HEAD") || !strcmp(m, "OPTIONS");
}

/* What a form (or a fetch without a preflight) may send as its content type. */
static int form_type(const char *ct)
{
    static const char *const forms[] = {"application/x-www-form-urlencoded",
                                        "multipart/form-data", "text/plain"};
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, "; \t");
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        if (n == strlen(forms[i]) && strncasecmp(ct, forms[i], n) == 0)
            return 1;
    return 0;
}

int api_check_origin(const api_ctx *ctx, const api_request *rq, const api_route *r,
                     int has_body, api_response *rs)
{
    (void)ctx;
    if (safe_method(rq->method))
        return 0;
    const char *o = api_header(rq, "Origin");
    if (o) {
        const char *h = api_header(rq, "Host");
        const char *auth = strstr(o, "://");
        char on[256], hn[256];
        int v6a, v6b;
        int same = auth && h && !host_part(auth + 3, strcspn(auth + 3, "/"), on, sizeof on, &v6a) &&
                   !host_part(h, strlen(h), hn, sizeof hn, &v6b) && strcmp(on, hn) == 0;
        if (!same) {
            api_error(rs, 403, "%s %.200s from Origin %.100s, another site than this server's "
                               "(Host %.100s): solad takes no cross-site request that changes "
                               "state or computes; use its own page, or a client that is not a "
                               "browser",
                      rq->method, rq->path, o, h ? h : "(none)");
            return -1;
        }
    }
    if (!r || !(r->flags & API_AUTH))
        return 0;
    const char *ct = api_header(rq, "Content-Type");
    if (ct && form_type(ct)) {
        api_error(rs, 415, "%s %s changes state and does not take Content-Type %.80s (what a "
                           "web form sends, which any site could make a browser send): send "
                           "application/json or the route's binary type",
                  rq->method, r->pattern, ct);
        return -1;
    }
    if (!ct && has_body && !strcmp(rq->method, "POST")) {
        api_error(rs, 415, "%s %s: a body needs a Content-Type (application/json)", rq->method,
                  r->pattern);
        return -1;
    }
    return 0;
}
