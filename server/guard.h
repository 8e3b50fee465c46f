/* guard.h -- refusals decided from the request line and headers, before routing
 * (guard.c explains why each is needed with libmicrohttpd). Loop thread only. */
#ifndef SOLAD_GUARD_H
#define SOLAD_GUARD_H

#include <microhttpd.h>

#include "api.h"

/* MHD_OPTION_URI_LOG_CALLBACK: sees the raw request target. Returns a mark (for the
 * request's first con_cls) when it holds %00, else NULL. */
void *srv_guard_uri(void *cls, const char *uri, struct MHD_Connection *c);
/* 1 if con_cls is that mark (the request is still to be refused with 400). */
int srv_guard_is_nul_mark(const void *con_cls);

/* 0, or the status (400, 501) with rs filled: two Content-Length headers, both
 * Content-Length and Transfer-Encoding, several Transfer-Encoding headers, or a
 * transfer coding other than chunked. The reply must close the connection (the
 * request's end cannot be known). */
int srv_guard_framing(struct MHD_Connection *c, api_response *rs);

/* Collects the decoded query parameters into out (at most max; borrowed strings).
 * 0, or 400 with rs filled: more than max parameters, or one given twice. */
int srv_guard_query(struct MHD_Connection *c, api_kv *out, int max, int *n, api_response *rs);

#endif
