/* guard.c -- what solad refuses from the request line and headers alone, before any
 * route runs: ambiguous framing (two Content-Length headers, Content-Length beside
 * Transfer-Encoding, a transfer coding other than chunked), a NUL hidden in the path
 * or query as %00, too many or repeated query parameters.
 *
 * Why here and not in libmicrohttpd: MHD 0.9.75 takes the first Content-Length and
 * reads the rest of the bytes as the next request (a proxy taking the last one would
 * disagree: request smuggling), waits for the close of a connection whose transfer
 * coding it does not know, and decodes %00 into a NUL that silently shortens the
 * path it hands us ("/datasets/d%00/items/a" arrives as "/datasets/d"). The raw
 * request line is only visible in MHD's URI log callback, so that callback marks
 * the request (its return value becomes the request's first con_cls). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "guard.h"

static char uri_has_nul; /* its address marks a request whose raw URI holds %00 */

void *srv_guard_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    (void)c;
    for (const char *p = uri; (p = strchr(p, '%')); p++)
        if (p[1] == '0' && p[2] == '0')
            return &uri_has_nul;
    return NULL;
}

int srv_guard_is_nul_mark(const void *con_cls)
{
    return con_cls == &uri_has_nul;
}

typedef struct hcount {
    int cl, te;
    const char *te_val;
} hcount;

static enum MHD_Result count_hdr(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    hcount *h = cls;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
        h->cl++;
    else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        h->te++;
        h->te_val = value ? value : "";
    }
    return MHD_YES;
}

/* "chunked", allowing surrounding spaces and any case. */
static int is_chunked(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n == 7 && !strncasecmp(v, "chunked", 7);
}

int srv_guard_framing(struct MHD_Connection *c, api_response *rs)
{
    hcount h = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_hdr, &h);
    if (h.cl > 1) {
        api_error(rs, 400, "%d Content-Length headers: send exactly one", h.cl);
        return 400;
    }
    if (h.te && h.cl) {
        api_error(rs, 400, "both Transfer-Encoding and Content-Length: send one of them");
        return 400;
    }
    if (h.te > 1) {
        api_error(rs, 400, "%d Transfer-Encoding headers: send at most one (chunked)", h.te);
        return 400;
    }
    if (h.te && !is_chunked(h.te_val)) {
        /* RFC 9112 6.1: a transfer coding the server does not understand is 501 */
        api_error(rs, 501, "Transfer-Encoding \"%.40s\" is not supported: send the body with "
                           "Content-Length, or Transfer-Encoding: chunked", h.te_val);
        return 501;
    }
    return 0;
}

typedef struct qstate {
    api_kv *out;
    int n, max;
    int too_many;
    const char *dup;
} qstate;

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    qstate *q = cls;
    for (int i = 0; i < q->n && !q->dup; i++)
        if (!strcmp(q->out[i].key, key))
            q->dup = q->out[i].key;
    if (q->n == q->max) {
        q->too_many = 1;
        return MHD_NO;
    }
    q->out[q->n].key = key;
    q->out[q->n].val = value ? value : "";
    q->n++;
    return MHD_YES;
}

int srv_guard_query(struct MHD_Connection *c, api_kv *out, int max, int *n, api_response *rs)
{
    qstate q = {out, 0, max, 0, NULL};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect, &q);
    *n = q.n;
    if (q.too_many) {
        api_error(rs, 400, "more than %d query parameters", max);
        return 400;
    }
    if (q.dup) {
        api_error(rs, 400, "query parameter \"%.40s\" is given twice: give it once", q.dup);
        return 400;
    }
    return 0;
}
