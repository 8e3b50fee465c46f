/* router.c -- gathers the route tables of api/routes_*.c and matches requests.
 *
 * A pattern is a path of literal segments and {name} segments (one non-empty segment
 * each). Matching is first-match over the tables in the order listed below, so a
 * literal route ("/models/{m}/activate") placed before a wider one wins. A request
 * whose path matches no pattern falls to the final 404 entry; a path that matches
 * only under other methods is a 405 with an Allow header. Adding a family of routes
 * (Open Inference Protocol v2, jobs, datasets, the web page) is one new table file
 * and one line in `tables`. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "api_helpers.h"
#include "routes.h"

static const api_route *const tables[] = {
    api_routes_ops,
    api_routes_infer,
    api_routes_models,
    api_routes_datasets,
    api_routes_jobs,
    api_routes_web,
    api_routes_v2,
    api_routes_streams,
    NULL,
};

static int not_found(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)ctx;
    (void)w;
    api_error(rs, 404, "no route for %s %.200s (see GET /openapi.json)", rq->method,
              rq->path);
    return API_REPLY;
}

/* The last entry of all: any method, any path. */
static const api_route route_404 = {"*", NULL, not_found, 0};

/* Matches one pattern; fills params into rq when it matches. */
static int match_path(const char *pattern, const char *path, api_request *rq)
{
    const char *p = pattern, *u = path;
    int np = 0;
    while (*p && *u) {
        if (*p != '/' || *u != '/')
            return 0;
        p++;
        u++;
        size_t plen = strcspn(p, "/"), ulen = strcspn(u, "/");
        if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
            if (ulen == 0 || ulen >= API_PARAM_LEN || np >= API_MAX_PARAMS)
                return 0;
            size_t nlen = plen - 2 < sizeof rq->pname[0] - 1 ? plen - 2
                                                              : sizeof rq->pname[0] - 1;
            memcpy(rq->pname[np], p + 1, nlen);
            rq->pname[np][nlen] = '\0';
            memcpy(rq->pval[np], u, ulen);
            rq->pval[np][ulen] = '\0';
            np++;
        } else if (plen != ulen || memcmp(p, u, plen) != 0) {
            return 0;
        }
        p += plen;
        u += ulen;
    }
    /* "/models/" matches "/models": one trailing slash is forgiven */
    if (*u == '/' && u[1] == '\0' && u != path)
        u++;
    if (*p || *u)
        return 0;
    rq->nparams = np;
    return 1;
}

static int method_is(const api_route *r, const char *m)
{
    if (strcmp(r->method, m) == 0)
        return 1;
    return strcmp(m, "HEAD") == 0 && strcmp(r->method, "GET") == 0;
}

static void allow_add(char *allow, size_t n, const char *m)
{
    /* keep the list free of duplicates ("GET, HEAD" from two GET routes) */
    size_t ml = strlen(m);
    for (const char *p = allow; (p = strstr(p, m)); p += ml)
        if ((p == allow || p[-1] == ' ') && (p[ml] == ',' || p[ml] == '\0'))
            return;
    size_t o = strlen(allow);
    snprintf(allow + o, n - o, "%s%s", o ? ", " : "", m);
}

const api_route *api_route_match(api_request *rq, int *status, char *allow, size_t nallow,
                                 const char **label)
{
    const api_route *path_hit = NULL;
    if (allow && nallow)
        allow[0] = '\0';
    for (int t = 0; tables[t]; t++) {
        for (const api_route *r = tables[t]; r->method; r++) {
            api_request probe = *rq;
            if (!match_path(r->pattern, rq->path, &probe))
                continue;
            if (method_is(r, rq->method)) {
                *rq = probe;
                rq->route = r;
                if (status)
                    *status = 200;
                if (label)
                    *label = r->pattern;
                return r;
            }
            if (!path_hit)
                path_hit = r;
            if (allow && nallow) {
                allow_add(allow, nallow, r->method);
                if (strcmp(r->method, "GET") == 0)
                    allow_add(allow, nallow, "HEAD");
            }
        }
    }
    rq->route = NULL;
    if (status)
        *status = path_hit ? 405 : 404;
    if (label)
        *label = path_hit ? path_hit->pattern : "unmatched";
    return NULL;
}

const char *api_route_label(const api_route *r)
{
    return r && r->pattern ? r->pattern : "unmatched";
}

int api_check_auth(const api_ctx *ctx, const api_request *rq, const api_route *r,
                   api_response *rs)
{
    if (!ctx->token || !r || !(r->flags & API_AUTH))
        return 0;
    const char *h = api_header(rq, "Authorization");
    if (!h) {
        api_error(rs, 401, "%s %s changes state: send Authorization: Bearer TOKEN",
                  rq->method, r->pattern);
        api_set_header(rs, "WWW-Authenticate", "Bearer realm=\"solad\"");
        return -1;
    }
    size_t tl = strlen(ctx->token);
    /* The scheme is case-insensitive (RFC 7235); the token is compared in constant
     * time so its bytes cannot be guessed from response timing. */
    int ok = strncasecmp(h, "Bearer ", 7) == 0;
    const char *t = ok ? h + 7 : h;
    while (*t == ' ')
        t++;
    size_t hl = strlen(t);
    while (hl && (t[hl - 1] == ' ' || t[hl - 1] == '\t'))
        hl--;
    ok &= api_ct_equal(t, hl, ctx->token, tl);
    if (!ok) {
        api_error(rs, 401, "wrong bearer token for %s %s", rq->method, r->pattern);
        api_set_header(rs, "WWW-Authenticate", "Bearer realm=\"solad\", error=\"invalid_token\"");
        return -1;
    }
    return 0;
}

int api_check_role(const api_ctx *ctx, const api_request *rq, const api_route *r,
                   api_response *rs)
{
    if (!r)
        return 0;
    if (ctx->read_only_store && (r->flags & API_AUTH)) {
        api_error(rs, 409, "%s %s changes state, but this solad serves the read-only model "
                           "store %s (--models-dir): change the store itself and let solad "
                           "rescan it, or send this to a solad started with --data",
                  rq->method, r->pattern, ctx->read_only_store);
        return -1;
    }
    if (ctx->train_only && (r->flags & API_COMPUTE)) {
        api_error(rs, 421, "%s %s: this solad only runs training jobs (--train-only); send "
                           "refine and TSM requests to the serving replicas",
                  rq->method, r->pattern);
        return -1;
    }
    return 0;
}

int api_check_route(const api_ctx *ctx, const api_request *rq, const api_route *r,
                    int has_body, api_response *rs)
{
    if (api_check_auth(ctx, rq, r, rs) || api_check_role(ctx, rq, r, rs) ||
        api_check_origin(ctx, rq, r, has_body, rs))
        return -1;
    return 0;
}

int api_handle(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    memset(w, 0, sizeof *w);
    const api_route *r = rq->route ? rq->route : &route_404;
    int rc = r->fn(ctx, rq, rs, w);
    if (rc == API_DEFER && (!w->run || !w->done)) {
        /* a handler bug, not the client's fault */
        if (w->done)
            w->done(w->state);
        memset(w, 0, sizeof *w);
        api_error(rs, 500, "internal error: %s deferred without work", api_route_label(r));
        return API_REPLY;
    }
    if (rc == API_REPLY && rs->status == 0)
        api_error(rs, 500, "internal error: %s gave no reply", api_route_label(r));
    return rc;
}

int api_dispatch(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    int status;
    char allow[128];
    memset(w, 0, sizeof *w);
    if (api_check_host(ctx, rq, rs))
        return API_REPLY;
    const api_route *r = api_route_match(rq, &status, allow, sizeof allow, NULL);
    if (!r && status == 405) {
        api_error(rs, 405, "%s is not allowed on %.200s (allowed: %s)", rq->method, rq->path,
                  allow);
        api_set_header(rs, "Allow", "%s", allow);
        return API_REPLY;
    }
    if (r && api_check_route(ctx, rq, r, rq->body_len > 0 || rq->body_path, rs))
        return API_REPLY;
    return api_handle(ctx, rq, rs, w);
}
