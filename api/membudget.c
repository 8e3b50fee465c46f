/* membudget.c -- the process's memory budget seen from a handler: reserve before
 * allocating, give back after (api_helpers.h; the budget itself is the backend's,
 * server/budget.h). */
#include "api.h"
#include "api_helpers.h"

int api_mem_reserve(const api_ctx *ctx, size_t n, const char *what, api_response *rs)
{
    const api_backend *be = ctx->be;
    if (!be || !be->mem_take)
        return 0;
    if (ctx->max_inflight && n > ctx->max_inflight) {
        api_error(rs, 413, "%s needs %.1f MiB, more than this server's whole memory budget "
                           "(--max-inflight-bytes, %.1f MiB)",
                  what, (double)n / 1048576.0, (double)ctx->max_inflight / 1048576.0);
        return -1;
    }
    if (be->mem_take(ctx->self, n) == 0)
        return 0;
    api_error(rs, 503, "busy: %s needs %.1f MiB and the memory budget for requests in "
                       "progress (--max-inflight-bytes) is taken; retry shortly",
              what, (double)n / 1048576.0);
    api_set_header(rs, "Retry-After", "1");
    return -1;
}

void api_mem_give(const api_ctx *ctx, size_t n)
{
    if (n && ctx->be && ctx->be->mem_give)
        ctx->be->mem_give(ctx->self, n);
}

void api_mem_force(const api_ctx *ctx, size_t n)
{
    if (n && ctx->be && ctx->be->mem_force)
        ctx->be->mem_force(ctx->self, n);
}
