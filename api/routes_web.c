/* routes_web.c -- the web page: GET / (index.html) and GET /static/NAME (the page's
 * scripts and styles). The files of web/ are compiled into the binary by
 * web/embed.cmake (a table of name, bytes, ETag in the build directory), so a solad
 * copied alone to a machine serves its page, and nothing is fetched at run time.
 *
 * Replies carry an ETag (a hash of the file) with Cache-Control: no-cache, so a
 * browser revalidates on every load and gets 304 while the binary is unchanged: a
 * new solad never serves a stale script next to a fresh page. Text files are also
 * embedded gzip'ed and sent so (Content-Encoding: gzip, its own ETag, Vary:
 * Accept-Encoding) to clients that accept gzip. Answered on the loop thread: the
 * bytes are already in memory. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "routes.h"

/* Written by web/embed.cmake into the build directory (CMake, and fuzz/build.sh for
 * the api harnesses); ends with a NULL name. */
typedef struct api_web_asset {
    const char *name;
    const unsigned char *data;
    size_t len;
    const char *etag; /* quoted, as sent */
    const unsigned char *gz; /* the same bytes gzip'ed, or NULL */
    size_t gzlen;
    const char *etag_gz;
} api_web_asset;
extern const api_web_asset api_web_assets[];

/* The page only talks to its own origin; nothing inline, nothing from elsewhere. */
#define WEB_CSP                                                                         \
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "               \
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"

static const struct {
    const char *ext;
    const char *ctype;
} mime[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char *ctype_of(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof mime / sizeof mime[0]; i++) {
        size_t e = strlen(mime[i].ext);
        if (n > e && strcmp(name + n - e, mime[i].ext) == 0)
            return mime[i].ctype;
    }
    return "application/octet-stream";
}

static const api_web_asset *find_asset(const char *name)
{
    for (const api_web_asset *a = api_web_assets; a->name; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

/* 1 when If-None-Match names this ETag (a list, or "*"). */
static int etag_matches(const char *inm, const char *etag)
{
    if (!inm)
        return 0;
    size_t el = strlen(etag);
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (*p == '*')
            return 1;
        if (strncmp(p, "W/", 2) == 0) /* weak comparison is fine for GET */
            p += 2;
        size_t n = strcspn(p, ",");
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == el && memcmp(p, etag, el) == 0)
            return 1;
        p += strcspn(p, ",");
    }
    return 0;
}

/* 1 when Accept-Encoding lists gzip (or *) without q=0. */
static int accepts_gzip(const char *ae)
{
    if (!ae)
        return 0;
    for (const char *p = ae; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        size_t n = strcspn(p, ",;");
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        int named = (n == 4 && strncasecmp(p, "gzip", 4) == 0) || (n == 1 && *p == '*');
        const char *end = p + strcspn(p, ",");
        int zero = 0;
        for (const char *q = p; q < end; q++)
            if (*q == ';') {
                const char *v = q + 1;
                while (*v == ' ')
                    v++;
                if ((v[0] == 'q' || v[0] == 'Q') && v[1] == '=')
                    zero = strtod(v + 2, NULL) <= 0.0;
            }
        if (named && !zero)
            return 1;
        p = end;
    }
    return 0;
}

static void serve(const api_request *rq, api_response *rs, const api_web_asset *a)
{
    int gz = a->gz && accepts_gzip(api_header(rq, "Accept-Encoding"));
    const char *etag = gz ? a->etag_gz : a->etag;
    api_set_header(rs, "ETag", "%s", etag);
    api_set_header(rs, "Cache-Control", "no-cache");
    api_set_header(rs, "X-Content-Type-Options", "nosniff");
    if (a->gz)
        api_set_header(rs, "Vary", "Accept-Encoding");
    if (etag_matches(api_header(rq, "If-None-Match"), etag)) {
        rs->status = 304;
        return;
    }
    api_set_header(rs, "Content-Security-Policy", WEB_CSP);
    api_set_header(rs, "Referrer-Policy", "no-referrer");
    if (gz) {
        api_set_header(rs, "Content-Encoding", "gzip");
        api_set_body(rs, 200, ctype_of(a->name), a->gz, a->gzlen);
    } else {
        api_set_body(rs, 200, ctype_of(a->name), a->data, a->len);
    }
}

static int h_index(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)ctx;
    (void)w;
    const api_web_asset *a = find_asset("index.html");
    if (!a)
        api_error(rs, 404, "this solad was built without its web page (web/index.html); "
                           "the API itself is described at GET /openapi.json");
    else
        serve(rq, rs, a);
    return API_REPLY;
}

static int h_static(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    (void)ctx;
    (void)w;
    const char *name = api_param(rq, "file");
    const api_web_asset *a = name ? find_asset(name) : NULL;
    if (!a)
        api_error(rs, 404, "no web asset named '%.100s' (the page's files are under /static/)",
                  name ? name : "");
    else
        serve(rq, rs, a);
    return API_REPLY;
}

const api_route api_routes_web[] = {
    {"GET", "/", h_index, 0},
    {"GET", "/static/{file}", h_static, 0},
    {NULL, NULL, NULL, 0},
};
