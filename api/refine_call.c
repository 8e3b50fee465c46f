/* refine_call.c -- api_refine: one place where handlers hand sequences to the
 * server's batcher, or compute them on their own workspace when there is none. */
#include "api.h"

int api_refine(const api_ctx *ctx, const sola_model *m, const float *x, const int *lens,
               int n, float *y, sola_ws *ws, sola_err *e)
{
    if (ctx->be && ctx->be->refine)
        return ctx->be->refine(ctx->self, m, x, lens, n, y, ws, e);
    return sola_refine_batch(m, x, lens, n, y, ws, e);
}
