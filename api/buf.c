/* buf.c -- the growable byte buffer the encoders write into (api_helpers.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_helpers.h"

int api_buf_reserve(api_buf *b, size_t extra)
{
    if (b->failed)
        return SOLA_ENOMEM;
    size_t need;
    if (sola_add_size(b->len, extra, &need) || sola_add_size(need, 1, &need)) {
        b->failed = 1;
        return SOLA_ENOMEM;
    }
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (sola_mul_size(cap, 2, &cap)) {
            b->failed = 1;
            return SOLA_ENOMEM;
        }
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return SOLA_ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

int api_buf_put(api_buf *b, const void *s, size_t n)
{
    if (api_buf_reserve(b, n))
        return SOLA_ENOMEM;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int api_buf_puts(api_buf *b, const char *s)
{
    return api_buf_put(b, s, strlen(s));
}

int api_buf_printf(api_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || api_buf_reserve(b, (size_t)n))
        return SOLA_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int api_buf_json_str(api_buf *b, const char *s)
{
    if (api_buf_put(b, "\"", 1))
        return SOLA_ENOMEM;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            api_buf_put(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            api_buf_put(b, esc, 6);
        } else {
            api_buf_put(b, p, 1);
        }
    }
    return api_buf_put(b, "\"", 1);
}

void api_buf_free(api_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}
