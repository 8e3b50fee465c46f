/* util.c -- request accessors, response builders, content negotiation, names, the
 * byte buffer and the float32 formatter shared by every handler. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "fsutil.h"
#include "npy.h"

/* ---- request accessors ------------------------------------------------------- */

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

/* ---- responses --------------------------------------------------------------- */

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

/* ---- media types ------------------------------------------------------------- */

static const struct {
    int mt;
    const char *name;
} mts[] = {
    {API_MT_JSON, "application/json"},
    {API_MT_NPY, "application/x-npy"},
    {API_MT_NPZ, "application/x-npz"},
    {API_MT_PNG, "image/png"},
    {API_MT_OCTET, "application/octet-stream"},
};

const char *api_mt_name(int mt)
{
    for (size_t i = 0; i < sizeof mts / sizeof mts[0]; i++)
        if (mts[i].mt == mt)
            return mts[i].name;
    return "application/octet-stream";
}

/* Length of the media type in s (up to ';' or ',' or end, trailing blanks cut). */
static size_t mt_len(const char *s)
{
    size_t n = strcspn(s, ";,");
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return n;
}

int api_mt_parse(const char *ctype)
{
    if (!ctype)
        return API_MT_NONE;
    while (isspace((unsigned char)*ctype))
        ctype++;
    size_t n = mt_len(ctype);
    if (n == 0)
        return API_MT_NONE;
    for (size_t i = 0; i < sizeof mts / sizeof mts[0]; i++)
        if (strlen(mts[i].name) == n && strncasecmp(ctype, mts[i].name, n) == 0)
            return mts[i].mt;
    return API_MT_OTHER;
}

/* q of the most specific media range in `accept` matching `type`; -1 if none. */
static double accept_q(const char *accept, const char *type)
{
    const char *slash = strchr(type, '/');
    size_t tlen = (size_t)(slash - type);
    double best_q = -1;
    int best_spec = 0;
    const char *p = accept;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        size_t n = mt_len(p);
        int spec = 0;
        if (n == 3 && strncmp(p, "*/*", 3) == 0)
            spec = 1;
        else if (n == tlen + 2 && strncasecmp(p, type, tlen) == 0 && p[tlen] == '/' &&
                 p[tlen + 1] == '*')
            spec = 2;
        else if (n == strlen(type) && strncasecmp(p, type, n) == 0)
            spec = 3;
        /* parameters: only q matters */
        double q = 1;
        const char *end = p + strcspn(p, ",");
        const char *par = p + n;
        while (par < end) {
            par++; /* skip ';' or blank */
            while (par < end && isspace((unsigned char)*par))
                par++;
            if (end - par >= 2 && (par[0] == 'q' || par[0] == 'Q') && par[1] == '=') {
                q = strtod(par + 2, NULL);
                if (!(q >= 0 && q <= 1))
                    q = 0;
            }
            par += strcspn(par, ";,");
            if (par > end)
                par = end;
        }
        if (spec > best_spec) {
            best_spec = spec;
            best_q = q;
        }
        p = *end ? end + 1 : end;
    }
    return best_q;
}

int api_negotiate(const char *accept, const int *cands, int ncand)
{
    if (ncand <= 0)
        return API_MT_NONE;
    if (!accept || !*accept)
        return cands[0];
    int best = API_MT_NONE;
    double bq = 0;
    for (int i = 0; i < ncand; i++) {
        double q = accept_q(accept, api_mt_name(cands[i]));
        if (q > bq) {
            bq = q;
            best = cands[i];
        }
    }
    return best;
}

/* ---- auth, names, numbers ---------------------------------------------------- */

int api_ct_equal(const char *a, size_t na, const char *b, size_t nb)
{
    /* Walk the longer length; the running difference also folds in the length
     * mismatch, so no early exit leaks where the strings first differ. */
    size_t n = na > nb ? na : nb;
    unsigned char d = (unsigned char)(na != nb);
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < na ? (unsigned char)a[i] : 0;
        unsigned char y = i < nb ? (unsigned char)b[i] : 0;
        d |= (unsigned char)(x ^ y);
    }
    return d == 0;
}

int api_check_name(const char *what, const char *s, sola_err *e)
{
    return sola_name_check(what, s, e); /* core/fsutil.h: the one rule */
}

int api_parse_version(const char *what, const char *s, int *out, sola_err *e)
{
    if (!s || !*s)
        return sola_errf(e, SOLA_EINVAL, "%s is empty: versions are positive integers", what);
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || (p == s && *p == '0'))
            return sola_errf(e, SOLA_EINVAL,
                             "%s \"%.32s\" is not a positive integer (1, 2, ...)", what, s);
        v = v * 10 + (*p - '0');
        if (v > INT32_MAX)
            return sola_errf(e, SOLA_EINVAL, "%s \"%.32s\" is too large", what, s);
    }
    *out = (int)v;
    return 0;
}

/* ---- byte buffer ------------------------------------------------------------- */

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

/* ---- float32 -> decimal ------------------------------------------------------ */

static const double pow10_tab[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* d * 10^k for |k| <= 66, with a few roundings of 2^-53 each: far below the
 * tolerance that matters here (see api_fmt_float). */
static double scale10(double d, int k)
{
    int neg = k < 0;
    if (neg)
        k = -k;
    while (k > 0) {
        int s = k > 22 ? 22 : k;
        d = neg ? d / pow10_tab[s] : d * pow10_tab[s];
        k -= s;
    }
    return d;
}

int api_fmt_float(float v, char *out)
{
    /* Why 9 digits suffice even with imperfect rounding: a float's half-spacing is at
     * least 2^-25 ~ 3e-8 of its value, while 9 significant digits are spaced at most
     * 1e-8 apart relative to the value; rounding the scaled double (error ~1e-16) to
     * the nearest 9-digit integer lands within one digit step, hence strictly inside
     * the half-spacing, so strtof reads back exactly v. tests/test_api.c checks it on
     * random bit patterns and edge values. This is ~10x faster than printf("%.9g"),
     * which matters: a T=1000, C=2048 reply has two million numbers. */
    char *o = out;
    if (!isfinite(v)) {
        memcpy(out, "null", 5);
        return 4;
    }
    if (signbit(v))
        *o++ = '-';
    double d = fabs((double)v);
    if (d == 0) {
        *o++ = '0';
        *o = '\0';
        return (int)(o - out);
    }
    int e10 = (int)floor(log10(d));
    double m = scale10(d, 8 - e10);
    long long mi = llround(m);
    if (mi < 100000000LL) { /* log10 overshot */
        e10--;
        mi = llround(scale10(d, 8 - e10));
    }
    if (mi >= 1000000000LL) { /* undershot, or rounding carried to 10 digits */
        e10++;
        mi = llround(scale10(d, 8 - e10));
        if (mi >= 1000000000LL)
            mi /= 10;
    }
    char dig[10];
    int nd = 9;
    for (int i = 8; i >= 0; i--) {
        dig[i] = (char)('0' + mi % 10);
        mi /= 10;
    }
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    if (e10 >= -5 && e10 < 9) {
        if (e10 >= 0) {
            for (int i = 0; i <= e10; i++)
                *o++ = i < nd ? dig[i] : '0';
            if (nd > e10 + 1) {
                *o++ = '.';
                for (int i = e10 + 1; i < nd; i++)
                    *o++ = dig[i];
            }
        } else {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -e10 - 1; i++)
                *o++ = '0';
            for (int i = 0; i < nd; i++)
                *o++ = dig[i];
        }
    } else {
        *o++ = dig[0];
        if (nd > 1) {
            *o++ = '.';
            for (int i = 1; i < nd; i++)
                *o++ = dig[i];
        }
        *o++ = 'e';
        int x = e10;
        if (x < 0) {
            *o++ = '-';
            x = -x;
        }
        if (x >= 10)
            *o++ = (char)('0' + x / 10);
        *o++ = (char)('0' + x % 10);
    }
    *o = '\0';
    return (int)(o - out);
}

int api_buf_json_floats(api_buf *b, const float *data, int ndim, const int64_t *shape)
{
    return api_buf_json_floats_c(b, data, ndim, shape, NULL);
}

int api_buf_json_floats_c(api_buf *b, const float *data, int ndim, const int64_t *shape,
                          const atomic_int *cancel)
{
    if (ndim < 1 || ndim > 3)
        return SOLA_EINVAL;
    int64_t d0 = shape[0], d1 = ndim > 1 ? shape[1] : 1, d2 = ndim > 2 ? shape[2] : 1;
    int64_t inner = shape[ndim - 1];
    int64_t rows = ndim == 1 ? 1 : (ndim == 2 ? d0 : d0 * d1);
    (void)d2;
    size_t k = 0;
    if (ndim == 3)
        api_buf_put(b, "[", 1);
    if (ndim >= 2)
        api_buf_put(b, "[", 1);
    for (int64_t r = 0; r < rows; r++) {
        if (cancel && atomic_load_explicit(cancel, memory_order_relaxed))
            return SOLA_ECANCEL;
        if (r > 0) {
            if (ndim == 3 && r % d1 == 0)
                api_buf_put(b, "],[", 3);
            else
                api_buf_put(b, ",", 1);
        }
        /* one row: at most 17 bytes per number plus the comma */
        size_t need;
        if (sola_mul_size((size_t)inner, 18, &need) || api_buf_reserve(b, need + 2))
            return SOLA_ENOMEM;
        char *o = b->p + b->len;
        *o++ = '[';
        for (int64_t c = 0; c < inner; c++) {
            if (c)
                *o++ = ',';
            o += api_fmt_float(data[k++], o);
        }
        *o++ = ']';
        b->len = (size_t)(o - b->p);
        b->p[b->len] = '\0';
    }
    if (ndim >= 2)
        api_buf_put(b, "]", 1);
    if (ndim == 3)
        api_buf_put(b, "]", 1);
    return b->failed ? SOLA_ENOMEM : 0;
}

size_t api_npy_header(int ndim, const int64_t *shape, char out[192])
{
    return sola_npy_header("<f4", ndim, shape, (unsigned char *)out, 192); /* core/npy.h */
}
