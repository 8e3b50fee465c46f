/* test_web.c -- the web page solad serves at /.
 *
 * Socket-free checks through api_dispatch: GET / is the HTML page, every file the
 * page loads (its <script>/<link> and every ES module import, followed from
 * index.html) is served with the right Content-Type and the bytes of web/ (a stale
 * embed would fail here), ETags answer 304, unknown assets 404 and other methods 405.
 *
 * The page in a real browser against a real solad is the ctest test_web_browser
 * (tests/web/web_test.py, headless Debian chromium driven by python3-selenium). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "api.h"
#include "testutil.h"

static const char *inm; /* If-None-Match of the next request */
static const char *ae;  /* Accept-Encoding of the next request */

static const char *hget(void *hctx, const char *name)
{
    (void)hctx;
    if (strcasecmp(name, "Accept-Encoding") == 0)
        return ae;
    return strcasecmp(name, "If-None-Match") == 0 ? inm : NULL;
}

static void get(const char *method, const char *path, api_response *rs)
{
    static const api_backend be = {0}; /* the web routes need nothing from the process */
    api_ctx ctx = {.be = &be};
    api_request rq = {0};
    rq.method = method;
    rq.path = path;
    rq.header = hget;
    api_work w;
    memset(rs, 0, sizeof *rs);
    ck_assert_int_eq(api_dispatch(&ctx, &rq, rs, &w), API_REPLY);
}

static const char *hdr(const api_response *rs, const char *name)
{
    for (int i = 0; i < rs->nheaders; i++)
        if (strcasecmp(rs->hname[i], name) == 0)
            return rs->hval[i];
    return NULL;
}

/* The file of web/ as bytes (malloc'd). */
static char *web_file(const char *name, size_t *len)
{
    char rel[256];
    snprintf(rel, sizeof rel, "web/%s", name);
    char *p = tu_path(rel);
    char *buf = tu_read(p, len);
    ck_assert_msg(buf != NULL, "cannot read %s", p);
    free(p);
    return buf;
}

START_TEST(index_is_the_page)
{
    api_response rs;
    get("GET", "/", &rs);
    ck_assert_int_eq(rs.status, 200);
    ck_assert_str_eq(rs.ctype, "text/html; charset=utf-8");
    ck_assert_msg(rs.len > 100 && strncasecmp(rs.body, "<!doctype html>", 15) == 0,
                  "GET / does not start with <!doctype html>");
    ck_assert_ptr_nonnull(memmem(rs.body, rs.len, "/static/app.js", 14));
    ck_assert_ptr_nonnull(hdr(&rs, "ETag"));
    ck_assert_str_eq(hdr(&rs, "Cache-Control"), "no-cache");
    ck_assert_ptr_nonnull(hdr(&rs, "Content-Security-Policy"));
    size_t n;
    char *want = web_file("index.html", &n);
    ck_assert_uint_eq(rs.len, n);
    ck_assert_msg(memcmp(rs.body, want, n) == 0, "GET / differs from web/index.html");
    free(want);
    api_response_clear(&rs);

    get("HEAD", "/", &rs); /* HEAD is routed as GET; MHD drops the body */
    ck_assert_int_eq(rs.status, 200);
    api_response_clear(&rs);
}
END_TEST

/* gunzip of a whole body (malloc'd), or NULL. */
static unsigned char *gunzip(const void *in, size_t n, size_t *out_len)
{
    size_t cap = 1 << 20;
    unsigned char *out = malloc(cap);
    z_stream z = {0};
    if (!out || inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        free(out);
        return NULL;
    }
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = inflate(&z, Z_FINISH);
    *out_len = z.total_out;
    inflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

/* A client that accepts gzip gets the embedded gzip copy of every text asset: the
 * same bytes once inflated, smaller, with its own ETag and Vary: Accept-Encoding;
 * q=0 or another coding gets the file as is. */
START_TEST(gzip_for_clients_that_accept_it)
{
    static const char *const names[] = {"index.html", "app.js", "jobs.js", "style.css"};
    size_t total = 0, total_gz = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char path[80];
        snprintf(path, sizeof path, k ? "/static/%s" : "/", names[k]);
        size_t fl;
        char *file = web_file(names[k], &fl);
        api_response rs;
        ae = "br, gzip;q=0.8, deflate";
        get("GET", path, &rs);
        ck_assert_int_eq(rs.status, 200);
        ck_assert_str_eq(hdr(&rs, "Content-Encoding"), "gzip");
        ck_assert_str_eq(hdr(&rs, "Vary"), "Accept-Encoding");
        ck_assert_msg(rs.len < fl, "%s: gzip'ed %zu bytes, the file %zu", names[k], rs.len, fl);
        size_t n = 0;
        unsigned char *plain = gunzip(rs.body, rs.len, &n);
        ck_assert_msg(plain && n == fl && memcmp(plain, file, fl) == 0, "%s: the gzip body does not inflate to web/%s",
                      path, names[k]);
        free(plain);
        char etag_gz[160];
        snprintf(etag_gz, sizeof etag_gz, "%s", hdr(&rs, "ETag"));
        total += fl;
        total_gz += rs.len;
        api_response_clear(&rs);

        inm = etag_gz; /* its own tag revalidates */
        get("GET", path, &rs);
        ck_assert_int_eq(rs.status, 304);
        api_response_clear(&rs);
        inm = NULL;

        ae = "gzip;q=0, identity";
        get("GET", path, &rs);
        ck_assert_int_eq(rs.status, 200);
        ck_assert_ptr_null(hdr(&rs, "Content-Encoding"));
        ck_assert_msg(strcmp(hdr(&rs, "ETag"), etag_gz) != 0, "%s: the identity and gzip replies share an ETag", path);
        ck_assert_uint_eq(rs.len, fl);
        api_response_clear(&rs);
        free(file);
    }
    ae = NULL;
    printf("gzip: %zu of %zu bytes (index, app, jobs, style)\n", total_gz, total);
}
END_TEST

static const char *ctype_for(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot && !strcmp(dot, ".js"))
        return "text/javascript; charset=utf-8";
    if (dot && !strcmp(dot, ".css"))
        return "text/css; charset=utf-8";
    return NULL;
}

/* Collects "/static/NAME" and "./NAME.js" references of a text into names[]. */
static void refs(const char *text, size_t len, char names[][64], int *n, int max)
{
    static const char *const pats[] = {"/static/", "from './", "import('./"};
    for (size_t k = 0; k < sizeof pats / sizeof pats[0]; k++) {
        size_t pl = strlen(pats[k]);
        for (const char *p = text; (p = memmem(p, len - (size_t)(p - text), pats[k], pl));) {
            p += pl;
            size_t m = strcspn(p, "\"'` ?)");
            if (m == 0 || m >= 64)
                continue;
            char name[64];
            memcpy(name, p, m);
            name[m] = '\0';
            int seen = 0;
            for (int i = 0; i < *n; i++)
                seen |= !strcmp(names[i], name);
            if (!seen && *n < max)
                strcpy(names[(*n)++], name);
        }
    }
}

START_TEST(every_asset_the_page_loads_is_served)
{
    char names[64][64];
    int n = 0;
    size_t len;
    char *index = web_file("index.html", &len);
    refs(index, len, names, &n, 64);
    free(index);
    ck_assert_msg(n >= 2, "index.html references no /static/ assets");
    int scripts = 0;
    for (int i = 0; i < n; i++) { /* names grows while modules are followed */
        char path[128];
        snprintf(path, sizeof path, "/static/%s", names[i]);
        api_response rs;
        get("GET", path, &rs);
        ck_assert_msg(rs.status == 200, "%s: %d", path, rs.status);
        const char *want = ctype_for(names[i]);
        ck_assert_msg(want != NULL, "%s: unexpected asset type", path);
        ck_assert_str_eq(rs.ctype, want);
        ck_assert_str_eq(hdr(&rs, "X-Content-Type-Options"), "nosniff");
        size_t fl;
        char *file = web_file(names[i], &fl);
        ck_assert_msg(rs.len == fl && memcmp(rs.body, file, fl) == 0,
                      "%s differs from web/%s: rebuild (the embed is stale)", path, names[i]);
        if (strstr(names[i], ".js")) {
            scripts++;
            refs(file, fl, names, &n, 64);
        }
        free(file);
        api_response_clear(&rs);
    }
    ck_assert_msg(scripts >= 5, "expected the page's modules to be followed, got %d", scripts);
}
END_TEST

START_TEST(etag_revalidation)
{
    api_response rs;
    get("GET", "/static/app.js", &rs);
    ck_assert_int_eq(rs.status, 200);
    char etag[160];
    snprintf(etag, sizeof etag, "%s", hdr(&rs, "ETag"));
    ck_assert_msg(etag[0] == '"' && strlen(etag) > 4, "ETag %s is not a quoted tag", etag);
    api_response_clear(&rs);

    inm = etag;
    get("GET", "/static/app.js", &rs);
    ck_assert_int_eq(rs.status, 304);
    ck_assert_uint_eq(rs.len, 0);
    ck_assert_str_eq(hdr(&rs, "ETag"), etag);
    api_response_clear(&rs);

    char list[200];
    snprintf(list, sizeof list, "\"0000\", W/%s", etag);
    inm = list;
    get("GET", "/static/app.js", &rs);
    ck_assert_int_eq(rs.status, 304);
    api_response_clear(&rs);

    inm = "\"0000000000000000\"";
    get("GET", "/static/app.js", &rs);
    ck_assert_int_eq(rs.status, 200);
    ck_assert_uint_gt(rs.len, 0);
    api_response_clear(&rs);

    inm = etag; /* another file's tag is not this one's */
    get("GET", "/static/style.css", &rs);
    ck_assert_int_eq(rs.status, 200);
    api_response_clear(&rs);
    inm = NULL;
}
END_TEST

START_TEST(unknown_assets_and_methods)
{
    static const char *const missing[] = {"/static/nope.js", "/static/index.htm",
                                          "/static/..%2fCMakeLists.txt", "/static/../api/api.h",
                                          "/static/", "/index.html", "/static/embed.cmake"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        api_response rs;
        get("GET", missing[i], &rs);
        ck_assert_msg(rs.status == 404, "%s: %d", missing[i], rs.status);
        ck_assert_str_eq(rs.ctype, "application/json");
        ck_assert_ptr_nonnull(memmem(rs.body, rs.len, "\"error\"", 7));
        api_response_clear(&rs);
    }
    api_response rs;
    get("POST", "/", &rs);
    ck_assert_int_eq(rs.status, 405);
    api_response_clear(&rs);
    get("DELETE", "/static/app.js", &rs);
    ck_assert_int_eq(rs.status, 405);
    api_response_clear(&rs);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("web");
    TCase *tc = tcase_create("assets");
    tcase_add_test(tc, index_is_the_page);
    tcase_add_test(tc, every_asset_the_page_loads_is_served);
    tcase_add_test(tc, etag_revalidation);
    tcase_add_test(tc, gzip_for_clients_that_accept_it);
    tcase_add_test(tc, unknown_assets_and_methods);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
