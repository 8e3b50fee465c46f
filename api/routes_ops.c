/* routes_ops.c -- the operator's routes: liveness, readiness, health detail,
 * Prometheus metrics and the OpenAPI document. All answer on the loop thread from
 * state the backend already holds (no disk, no compute). */
#include <string.h>

#include "api.h"
#include "routes.h"

static int h_livez(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)ctx;
    (void)rq;
    (void)w;
    api_json(rs, 200, json_pack("{s:s}", "status", "alive"));
    return API_REPLY;
}

static int h_readyz(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)rq;
    (void)w;
    char why[256] = "";
    if (ctx->be->ready(ctx->self, why, sizeof why))
        api_json(rs, 200, json_pack("{s:s}", "status", "ready"));
    else
        api_error(rs, 503, "not ready: %s", why);
    return API_REPLY;
}

static int h_healthz(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)rq;
    (void)w;
    json_t *h = ctx->be->health(ctx->self); /* new reference */
    if (!h) {
        api_error(rs, 500, "health detail unavailable");
        return API_REPLY;
    }
    api_json(rs, 200, h);
    return API_REPLY;
}

static int h_metrics(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)rq;
    (void)w;
    char *text = NULL;
    size_t len = 0;
    if (ctx->be->metrics(ctx->self, &text, &len)) {
        api_error(rs, 500, "metrics unavailable (out of memory)");
        return API_REPLY;
    }
    api_take_body(rs, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    return API_REPLY;
}

static int h_openapi(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)ctx;
    (void)rq;
    (void)w;
    api_set_body(rs, 200, "application/json", api_openapi_json, strlen(api_openapi_json));
    return API_REPLY;
}

const api_route api_routes_ops[] = {
    {"GET", "/livez", h_livez, 0},
    {"GET", "/readyz", h_readyz, 0},
    {"GET", "/healthz", h_healthz, 0},
    {"GET", "/metrics", h_metrics, 0},
    {"GET", "/openapi.json", h_openapi, 0},
    {NULL, NULL, NULL, 0},
};
