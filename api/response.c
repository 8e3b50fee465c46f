/* response.c -- building a reply: headers, a body (copied, taken, or a stream of
 * events), JSON, errors and the HTTP status of a SOLA_E* code (api.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

void api_response_clear(api_response *rs)
{
    if (rs->stream)
        rs->stream->close(rs->stream);
    if (rs->body_free)
        rs->body_free(rs->body);
    else
        free(rs->body);
    const atomic_int *cancel = rs->cancel;
    memset(rs, 0, sizeof *rs);
    rs->cancel = cancel;
}

void api_set_header(api_response *rs, const char *name, const char *fmt, ...)
{
    if (rs->nheaders >= API_MAX_HEADERS)
        return;
    int i = rs->nheaders++;
    snprintf(rs->hname[i], sizeof rs->hname[i], "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rs->hval[i], sizeof rs->hval[i], fmt, ap);
    va_end(ap);
}

void api_take_body(api_response *rs, int status, const char *ctype, void *buf, size_t len)
{
    api_take_body_fn(rs, status, ctype, buf, len, NULL);
}

void api_take_body_fn(api_response *rs, int status, const char *ctype, void *buf, size_t len,
                      void (*free_fn)(void *))
{
    if (rs->body_free)
        rs->body_free(rs->body);
    else
        free(rs->body);
    rs->body = buf;
    rs->body_free = free_fn;
    rs->len = len;
    rs->status = status;
    snprintf(rs->ctype, sizeof rs->ctype, "%s", ctype);
}

void api_reply_events(api_response *rs, api_stream *st)
{
    rs->status = 200;
    snprintf(rs->ctype, sizeof rs->ctype, "text/event-stream");
    rs->stream = st;
    api_set_header(rs, "Cache-Control", "no-cache");
    api_set_header(rs, "X-Accel-Buffering", "no"); /* nginx: pass events on at once */
}

int api_set_body(api_response *rs, int status, const char *ctype, const void *buf,
                 size_t len)
{
    char *p = malloc(len ? len : 1);
    if (!p) {
        /* The error body itself is static-sized and small; if even that fails the
         * server answers 500 with no body. */
        if (rs->body_free)
            rs->body_free(rs->body);
        else
            free(rs->body);
        rs->body = NULL;
        rs->body_free = NULL;
        rs->len = 0;
        rs->status = 500;
        snprintf(rs->ctype, sizeof rs->ctype, "application/json");
        return SOLA_ENOMEM;
    }
    if (len)
        memcpy(p, buf, len);
    api_take_body(rs, status, ctype, p, len);
    return 0;
}

void api_json(api_response *rs, int status, json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(v);
    if (!s) {
        api_set_body(rs, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
        return;
    }
    size_t n = strlen(s);
    /* jansson allocates with malloc by default, so the string can be handed over;
     * append the newline curl users expect at the end of a JSON reply. */
    char *p = realloc(s, n + 2);
    if (!p) {
        free(s);
        api_set_body(rs, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
        return;
    }
    p[n] = '\n';
    p[n + 1] = '\0';
    api_take_body(rs, status, "application/json", p, n + 1);
}

void api_error(api_response *rs, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* json_string refuses invalid UTF-8; messages may quote user bytes, so fall back
     * to a lossy copy rather than losing the error. */
    json_t *s = json_string(msg);
    if (!s) {
        for (char *c = msg; *c; c++)
            if ((unsigned char)*c >= 0x80 || (unsigned char)*c < 0x20)
                *c = '?';
        s = json_string(msg);
    }
    json_t *o = json_object();
    if (o && s)
        json_object_set_new(o, "error", s);
    else
        json_decref(s);
    api_json(rs, status, o);
}

int api_status_of(int code)
{
    switch (code) {
    case SOLA_EFORMAT: return 400;
    case SOLA_EINVAL: return 400;
    case SOLA_ESHAPE: return 422;
    case SOLA_ENOTFOUND: return 404;
    case SOLA_ETOOBIG: return 413;
    case SOLA_EUNSUP: return 415;
    case SOLA_ENOSPC: return 507;
    case SOLA_ECANCEL: return 503;
    default: return 500;
    }
}

void api_error_from(api_response *rs, const sola_err *e)
{
    api_error(rs, api_status_of(e->code), "%s",
              e->msg[0] ? e->msg : sola_strerror(e->code));
}
