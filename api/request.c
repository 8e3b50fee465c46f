/* request.c -- what a handler reads from a request: query parameters, route
 * parameters, headers (api.h). */
#include <string.h>

#include "api.h"

const char *api_query(const api_request *rq, const char *key)
{
    for (int i = 0; i < rq->nquery; i++)
        if (rq->query[i].key && strcmp(rq->query[i].key, key) == 0)
            return rq->query[i].val ? rq->query[i].val : "";
    return NULL;
}

const char *api_param(const api_request *rq, const char *name)
{
    for (int i = 0; i < rq->nparams; i++)
        if (strcmp(rq->pname[i], name) == 0)
            return rq->pval[i];
    return NULL;
}

const char *api_header(const api_request *rq, const char *name)
{
    return rq->header ? rq->header(rq->hctx, name) : NULL;
}
