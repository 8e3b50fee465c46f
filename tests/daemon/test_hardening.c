/* test_hardening.c -- the findings of the second hardening round (docs/reliability.md,
 * "Hardening, round 2"), each reproduced against a real solad:
 *   M2 token files with NUL or control bytes, or empty, are refused at start;
 *   M3 %00 in a path or query is 400 (it used to shorten the path: a DELETE of one
 *      item deleted the whole dataset), so are too many and repeated parameters;
 *   M4 two Content-Length headers, Content-Length with Transfer-Encoding, and an
 *      unknown transfer coding are answered at once and the connection closed (one
 *      request, one reply);
 *   M7 a model at version 2147483647 gets no next version from a job: the job fails
 *      with a clear message instead of registering version -2147483648;
 *   M8 cross-site requests (another site's Origin, a form's content type) are refused,
 *      and so is a Host that is not one of the server's names (DNS rebinding). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "rawconn.h"
#include "serverutil.h"

#define C_DIM 8

static const char *const NPY_CT[] = {"Content-Type: application/x-npy", NULL};

/* A fresh data directory with model m v1 and dataset d (items a, b); solad started on
 * it with extra args. Returns the directory. */
static char *start(su_server *s, const char *const *extra)
{
    char *dir = tu_tmpdir();
    sola_model *m = su_make_model(dir, "m", 1, C_DIM, 8, 5, 0.5f);
    ck_assert_ptr_nonnull(m);
    sola_model_free(m);
    ck_assert_int_eq(su_start_data(s, dir, extra), 0);
    return dir;
}

static void put_item(const su_server *s, const char *ds, const char *item, int T,
                     const char *const *hdrs)
{
    float *x = su_input(T, C_DIM, (unsigned)T);
    size_t len;
    void *b = su_npy_of(x, T, C_DIM, &len);
    char path[256];
    snprintf(path, sizeof path, "/datasets/%s/items/%s", ds, item);
    const char *h[4] = {NPY_CT[0], NULL, NULL, NULL};
    for (int i = 0; hdrs && hdrs[i] && i < 2; i++)
        h[i + 1] = hdrs[i];
    su_resp r;
    su_http(NULL, "PUT", su_url(s, path), h, b, len, &r);
    ck_assert_msg(r.status == 201 || r.status == 200, "PUT %s: %ld %s", path, r.status,
                  r.body ? r.body : "");
    su_resp_free(&r);
    free(b);
    free(x);
}

/* T of a stored item, -1 if it is missing. */
static long item_T(const su_server *s, const char *ds, const char *item)
{
    char path[256];
    snprintf(path, sizeof path, "/datasets/%s", ds);
    su_resp r;
    long T = -1;
    if (su_get(s, NULL, path, &r) == 200) {
        json_t *o = json_loads(r.body, 0, NULL);
        json_t *v;
        size_t i;
        json_array_foreach(json_object_get(o, "items"), i, v) {
            if (!strcmp(json_string_value(json_object_get(v, "name")), item))
                T = (long)json_integer_value(json_object_get(v, "T"));
        }
        json_decref(o);
    }
    su_resp_free(&r);
    return T;
}

/* Sends raw bytes on a fresh connection and reads until the server closes it (or ms
 * pass). The text read (malloc'd); *closed = 1 if the server closed the connection. */
static char *raw_exchange(const su_server *s, const char *req, size_t n, int ms, int *closed)
{
    int fd = rc_connect(s->port, NULL);
    ck_assert_int_ge(fd, 0);
    rc_send(fd, req, n);
    size_t cap = 65536, got = 0;
    char *buf = calloc(1, cap);
    *closed = 0;
    for (double t0 = rc_now_ms(); rc_now_ms() - t0 < ms && got < cap - 1;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t k = recv(fd, buf + got, cap - 1 - got, 0);
        if (k <= 0) {
            *closed = 1;
            break;
        }
        got += (size_t)k;
    }
    buf[got] = '\0';
    close(fd);
    return buf;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ---- M2 ---------------------------------------------------------------------- */

/* solad --token-file F: its exit status and stderr. */
static int start_with_token(const char *dir, const void *content, size_t len, char *err,
                            size_t nerr)
{
    char tf[4096], log[4096];
    snprintf(tf, sizeof tf, "%s/token", dir);
    snprintf(log, sizeof log, "%s/start.log", dir);
    ck_assert_int_eq(tu_write(tf, content, len), 0);
    /* --listen with port 0: a token that is accepted gets a running daemon, which
     * --drain-timeout 0 and the SIGTERM below end */
    int st = tu_system("timeout -s TERM 3 '%s/solad' --listen 127.0.0.1:0 --dim 8 "
                       "--token-file '%s' > /dev/null 2> '%s'",
                       tu_bin(), tf, log);
    size_t n;
    char *t = tu_read(log, &n);
    snprintf(err, nerr, "%s", t ? t : "");
    free(t);
    return st;
}

START_TEST(m2_bad_token_files_refused_at_start)
{
    char *dir = tu_tmpdir(), err[4096];
    static const struct {
        const char *content;
        size_t len;
        const char *says;
    } bad[] = {
        {"\0secret\n", 8, "NUL"},
        {"sec\0ret\n", 8, "NUL"},
        {"", 0, "empty"},
        {" \t\r\n\n", 5, "empty"},
        {"se\x01"
         "cret\n",
         8, "control"},
        {"two\nlines\n", 10, "more than one line"},
        {"caf\xc3\xa9\n", 6, "non-ASCII"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = start_with_token(dir, bad[i].content, bad[i].len, err, sizeof err);
        ck_assert_msg(st == 1, "token file %zu: solad exited %d (wanted 1 at start): %s", i, st,
                      err);
        ck_assert_msg(strstr(err, "--token-file") && strstr(err, bad[i].says),
                      "token file %zu: message lacks \"%s\": %s", i, bad[i].says, err);
    }
    tu_rmtree(dir);
    free(dir);

    /* a good token with surrounding whitespace: the empty bearer is refused, the token
     * (trimmed) is accepted */
    su_server s;
    dir = tu_tmpdir();
    char tf[4096];
    snprintf(tf, sizeof tf, "%s/token.txt", dir);
    ck_assert_int_eq(tu_write(tf, "  s3cret-T0ken \n", 16), 0);
    const char *extra[] = {"--token-file", tf, NULL};
    char *data = start(&s, extra);
    const char *empty[] = {"Authorization: Bearer ", NULL};
    const char *good[] = {"Authorization: Bearer s3cret-T0ken", NULL};
    const char *h1[] = {"Content-Type: application/json", empty[0], NULL};
    const char *h2[] = {"Content-Type: application/json", good[0], NULL};
    su_resp r;
    const char *body = "{\"version\": 1}";
    su_http(NULL, "POST", su_url(&s, "/models/m/activate"), h1, body, strlen(body), &r);
    su_expect(&r, 401, "wrong bearer token");
    su_http(NULL, "POST", su_url(&s, "/models/m/activate"), h2, body, strlen(body), &r);
    su_expect(&r, 200, NULL);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(data);
    free(data);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- M3 ---------------------------------------------------------------------- */

START_TEST(m3_nul_and_query_refused)
{
    su_server s;
    char *dir = start(&s, NULL);
    put_item(&s, "nuldemo", "a", 5, NULL);
    put_item(&s, "nuldemo", "b", 6, NULL);
    put_item(&s, "d", "a", 7, NULL);
    su_resp r;
    /* the whole dataset used to go: the path arrived as /datasets/nuldemo */
    su_http(NULL, "DELETE", su_url(&s, "/datasets/nuldemo%00/items/a"), NULL, NULL, 0, &r);
    su_expect(&r, 400, "%00");
    ck_assert_int_eq(item_T(&s, "nuldemo", "a"), 5);
    ck_assert_int_eq(item_T(&s, "nuldemo", "b"), 6);
    /* the item used to be overwritten: the path arrived as /datasets/d/items/a */
    float *x = su_input(9, C_DIM, 1);
    size_t len;
    void *b = su_npy_of(x, 9, C_DIM, &len);
    su_http(NULL, "PUT", su_url(&s, "/datasets/d/items/a%00b"), NPY_CT, b, len, &r);
    su_expect(&r, 400, "NUL");
    ck_assert_int_eq(item_T(&s, "d", "a"), 7);
    su_http(NULL, "PUT", su_url(&s, "/datasets/d/items/a%2500b"), NPY_CT, b, len, &r);
    su_expect(&r, 400, "item"); /* a literal "%00" decoded from %2500: a bad name */
    /* in the query too: ?model=m%00x would have named model m */
    su_http(NULL, "POST", su_url(&s, "/refine?model=m%00x"), NPY_CT, b, len, &r);
    su_expect(&r, 400, "%00");
    su_http(NULL, "POST", su_url(&s, "/refine?model=m"), NPY_CT, b, len, &r);
    su_expect(&r, 200, NULL);
    /* 33 parameters, the last naming a model that does not exist: was served by the
     * default model (the 33rd was dropped) */
    char q[1024] = "/refine?";
    for (int i = 0; i < 32; i++)
        snprintf(q + strlen(q), sizeof q - strlen(q), "a%d=1&", i);
    snprintf(q + strlen(q), sizeof q - strlen(q), "model=nonexistent");
    su_http(NULL, "POST", su_url(&s, q), NPY_CT, b, len, &r);
    su_expect(&r, 400, "more than 32 query parameters");
    su_http(NULL, "POST", su_url(&s, "/refine?model=m&model=nonexistent"), NPY_CT, b, len,
            &r);
    su_expect(&r, 400, "is given twice");
    free(b);
    free(x);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- M4 ---------------------------------------------------------------------- */

START_TEST(m4_ambiguous_framing_one_reply_and_close)
{
    su_server s;
    const char *extra[] = {"--conn-timeout", "30", NULL};
    char *dir = start(&s, extra);
    int closed;
    /* two lengths: the first (4) used to win and the rest ("GET /livez ...") became a
     * second request with its own reply */
    const char *two_cl = "POST /refine HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         "Content-Length: 4\r\nContent-Length: 44\r\n\r\n"
                         "{}\r\nGET /livez HTTP/1.1\r\nHost: x\r\n\r\n";
    char *got = raw_exchange(&s, two_cl, strlen(two_cl), 5000, &closed);
    ck_assert_msg(strncmp(got, "HTTP/1.1 400", 12) == 0, "reply: %s", got);
    ck_assert_msg(strstr(got, "Content-Length headers"), "reply: %s", got);
    ck_assert_int_eq(count_of(got, "HTTP/1."), 1);
    ck_assert_msg(closed, "the connection stayed open");
    free(got);
    /* both framings */
    const char *both = "POST /refine HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    got = raw_exchange(&s, both, strlen(both), 5000, &closed);
    ck_assert_msg(strncmp(got, "HTTP/1.1 400", 12) == 0, "reply: %s", got);
    ck_assert_int_eq(count_of(got, "HTTP/1."), 1);
    ck_assert(closed);
    free(got);
    /* an unknown coding: answered at once, not at --conn-timeout (30 s) */
    const char *gz = "POST /refine HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc";
    double t0 = rc_now_ms();
    got = raw_exchange(&s, gz, strlen(gz), 10000, &closed);
    ck_assert_msg(strncmp(got, "HTTP/1.1 501", 12) == 0, "reply after %.0f ms: %s",
                  rc_now_ms() - t0, got);
    ck_assert_msg(strstr(got, "Transfer-Encoding"), "reply: %s", got);
    ck_assert(closed);
    free(got);
    /* chunked itself still works */
    float *x = su_input(3, C_DIM, 2);
    char *body = su_json_features(x, 3, C_DIM, "");
    char req[65536];
    int n = snprintf(req, sizeof req,
                     "POST /refine HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: Chunked\r\nConnection: close\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
                     strlen(body), body);
    got = raw_exchange(&s, req, (size_t)n, 10000, &closed);
    ck_assert_msg(strncmp(got, "HTTP/1.1 200", 12) == 0, "reply: %.300s", got);
    free(got);
    free(body);
    free(x);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- M7 ---------------------------------------------------------------------- */

START_TEST(m7_version_limit_is_a_clear_failure)
{
    su_server s;
    char *dir = tu_tmpdir();
    sola_model *m = su_make_model(dir, "top", 2147483647, C_DIM, 8, 5, 0.5f);
    ck_assert_ptr_nonnull(m);
    sola_model_free(m);
    const char *args[] = {"--data", dir, "--threads", "1", NULL};
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    for (int i = 0; i < 3; i++) {
        char it[8];
        snprintf(it, sizeof it, "v%d", i);
        put_item(&s, "d", it, 40, NULL);
    }
    const char *h[] = {"Content-Type: application/json", NULL};
    const char *body = "{\"dataset\":\"d\",\"base_model\":\"top\",\"epochs\":1,\"batch\":4,"
                       "\"head\":8}";
    su_resp r;
    su_http(NULL, "POST", su_url(&s, "/train"), h, body, strlen(body), &r);
    ck_assert_int_eq(r.status, 202);
    char loc[64];
    ck_assert_ptr_nonnull(su_header(&r, "Location", loc, sizeof loc));
    su_resp_free(&r);
    json_t *o = NULL;
    const char *st = "";
    for (int t = 0; t < 600; t++) {
        json_decref(o);
        o = NULL;
        if (su_get(&s, NULL, loc, &r) == 200)
            o = json_loads(r.body, 0, NULL);
        su_resp_free(&r);
        st = o ? json_string_value(json_object_get(o, "state")) : "";
        if (st && (!strcmp(st, "succeeded") || !strcmp(st, "failed")))
            break;
        su_sleep_ms(100);
    }
    ck_assert_msg(st && !strcmp(st, "failed"), "job ended %s (model_version %lld)", st,
                  (long long)json_integer_value(json_object_get(o, "model_version")));
    const char *err = json_string_value(json_object_get(o, "error"));
    ck_assert_msg(err && strstr(err, "2147483647") && strstr(err, "output_model"), "error: %s",
                  err ? err : "(none)");
    json_decref(o);
    /* the model is as it was */
    ck_assert_int_eq(su_get(&s, NULL, "/models/top", &r), 200);
    o = json_loads(r.body, 0, NULL);
    su_resp_free(&r);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "active")), 2147483647);
    ck_assert_int_eq(json_array_size(json_object_get(o, "versions")), 1);
    json_decref(o);
    ck_assert_int_eq(su_stop(&s), 0);
    /* and a restart does not trip over the job again */
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    ck_assert_int_eq(su_get(&s, NULL, loc, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"state\":\"failed\""));
    su_resp_free(&r);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- M8 ---------------------------------------------------------------------- */

static long active_of(const su_server *s)
{
    su_resp r;
    long v = -1;
    if (su_get(s, NULL, "/models/m", &r) == 200) {
        json_t *o = json_loads(r.body, 0, NULL);
        v = (long)json_integer_value(json_object_get(o, "active"));
        json_decref(o);
    }
    su_resp_free(&r);
    return v;
}

/* One request with the given headers; expects status want and, in the body, needle. */
static void expect_req(const su_server *s, const char *method, const char *path,
                       const char *const *h, const char *body, long want, const char *needle)
{
    su_resp r;
    su_http(NULL, method, su_url(s, path), h, body, body ? strlen(body) : 0, &r);
    ck_assert_msg(r.status == want, "%s %s: %ld (wanted %ld) %s", method, path, r.status, want,
                  r.body ? r.body : "");
    su_expect(&r, want, needle);
}

/* GET /models with Host: host; the status. */
static long get_with_host(const su_server *s, const char *host)
{
    char h[300];
    snprintf(h, sizeof h, "Host: %s", host);
    const char *hs[] = {h, NULL};
    su_resp r;
    su_http(NULL, "GET", su_url(s, "/models"), hs, NULL, 0, &r);
    long st = r.status;
    if (st == 400)
        ck_assert_msg(r.body && strstr(r.body, "--allowed-hosts"), "Host %s: %s", host, r.body);
    su_resp_free(&r);
    return st;
}

/* Finding M8: with no token (the default) a cross-site form POST activated a version,
 * and any Host was served, so a page of another site whose name resolves here (DNS
 * rebinding) could read models and datasets. */
START_TEST(m8_cross_site_requests_and_foreign_hosts_refused)
{
    su_server s;
    char *dir = tu_tmpdir();
    for (int v = 1; v <= 2; v++) {
        sola_model *m = su_make_model(dir, "m", v, C_DIM, 8, (uint64_t)v, 0.5f);
        ck_assert_ptr_nonnull(m);
        sola_model_free(m);
    }
    const char *args[] = {"--data", dir, "--workers", "1", "--threads", "1", NULL};
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    put_item(&s, "d", "a", 5, NULL);
    long act = active_of(&s);
    ck_assert_int_eq(act, 2);
    char self[128];
    snprintf(self, sizeof self, "Origin: http://127.0.0.1:%d", s.port);

    /* the attack as a browser sends it: a form on another site */
    const char *form[] = {"Content-Type: application/x-www-form-urlencoded",
                          "Origin: http://evil.example", NULL};
    expect_req(&s, "POST", "/models/m/activate?version=1", form, "x=1", 403, "another site");
    ck_assert_int_eq(active_of(&s), act);
    /* a browser that sends no Origin: the form's content types are refused */
    static const char *const forms[] = {"Content-Type: application/x-www-form-urlencoded",
                                        "Content-Type: text/plain;charset=UTF-8",
                                        "Content-Type: multipart/form-data; boundary=x"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        const char *h[] = {forms[i], NULL};
        expect_req(&s, "POST", "/models/m/activate?version=1", h, "x=1", 415, "web form");
        expect_req(&s, "POST", "/models/m/activate?version=1", h, NULL, 415, "web form");
        expect_req(&s, "DELETE", "/datasets/d", h, NULL, 415, "web form");
        expect_req(&s, "POST", "/train", h, "{\"dataset\": \"d\"}", 415, "web form");
    }
    /* a POST body without a type ("Content-Type:" makes libcurl send none) */
    const char *none[] = {"Content-Type:", NULL};
    expect_req(&s, "POST", "/models/m/activate", none, "{\"version\": 1}", 415,
               "needs a Content-Type");
    ck_assert_int_eq(active_of(&s), act);
    /* another site's Origin on any request that is not a GET: refused, also where it
     * would only compute */
    const char *del[] = {"Origin: https://evil.example", NULL};
    expect_req(&s, "DELETE", "/datasets/d", del, NULL, 403, "another site");
    ck_assert_int_eq(item_T(&s, "d", "a"), 5);
    const char *null_origin[] = {"Content-Type: application/json", "Origin: null", NULL};
    expect_req(&s, "POST", "/models/m/activate", null_origin, "{\"version\": 1}", 403,
               "another site");
    float *x = su_input(4, C_DIM, 1);
    char *feat = su_json_features(x, 4, C_DIM, "");
    free(x);
    const char *cross[] = {"Content-Type: application/json", "Origin: http://evil.example",
                           NULL};
    expect_req(&s, "POST", "/refine", cross, feat, 403, "another site");
    /* GETs stay readable from the page itself and from tools */
    const char *get_cross[] = {"Origin: http://evil.example", NULL};
    expect_req(&s, "GET", "/models", get_cross, NULL, 200, NULL);

    /* the page itself (Origin = Host) and clients without a browser still work */
    const char *own[] = {"Content-Type: application/json", self, NULL};
    expect_req(&s, "POST", "/refine", own, feat, 200, NULL);
    free(feat);
    expect_req(&s, "POST", "/models/m/activate", own, "{\"version\": 1}", 200, NULL);
    ck_assert_int_eq(active_of(&s), 1);
    const char *json[] = {"Content-Type: application/json", NULL};
    expect_req(&s, "POST", "/models/m/activate", json, "{\"version\": 2}", 200, NULL);
    expect_req(&s, "POST", "/models/m/activate?version=1", NULL, NULL, 200, NULL);
    ck_assert_int_eq(active_of(&s), 1);
    {   /* curl -T: a PUT without a type (no browser sends a cross-site PUT unasked) */
        float *y = su_input(6, C_DIM, 2);
        size_t len;
        void *b = su_npy_of(y, 6, C_DIM, &len);
        su_resp r;
        su_http(NULL, "PUT", su_url(&s, "/datasets/d/items/t"), none, b, len, &r);
        su_expect(&r, 201, NULL);
        free(b);
        free(y);
    }

    /* Host: the server's names pass, another site's name does not */
    char h[128];
    static const char *const ok[] = {"localhost", "solad", "solad.ns.svc.cluster.local",
                                     "solad.ns.svc", "[::1]", "app.localhost"};
    snprintf(h, sizeof h, "127.0.0.1:%d", s.port);
    ck_assert_int_eq(get_with_host(&s, h), 200);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(h, sizeof h, "%s:%d", ok[i], s.port);
        ck_assert_msg(get_with_host(&s, h) == 200, "Host %s refused", h);
    }
    static const char *const foreign[] = {"evil.example", "evil.example:80", "EVIL.example.",
                                          "x.svc.evil.example", "127.0.0.1.evil.example"};
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++)
        ck_assert_msg(get_with_host(&s, foreign[i]) == 400, "Host %s served", foreign[i]);
    const char *rebind[] = {"Host: evil.example", NULL};
    expect_req(&s, "GET", "/datasets/d", rebind, NULL, 400, "DNS rebinding");
    ck_assert_int_eq(su_stop(&s), 0);

    /* --allowed-hosts adds names and domains; * turns the check off */
    const char *named[] = {"--data", dir, "--allowed-hosts", "models.example.com, .corp.example",
                           NULL};
    ck_assert_int_eq(su_start(&s, dir, named), 0);
    static const char *const yes[] = {"models.example.com", "MODELS.example.com.:8080",
                                      "corp.example", "a.b.corp.example"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        ck_assert_msg(get_with_host(&s, yes[i]) == 200, "Host %s refused", yes[i]);
    static const char *const no[] = {"evil.example", "xcorp.example", "example.com"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        ck_assert_msg(get_with_host(&s, no[i]) == 400, "Host %s served", no[i]);
    ck_assert_int_eq(su_stop(&s), 0);
    const char *any[] = {"--data", dir, "--allowed-hosts", "*", NULL};
    ck_assert_int_eq(su_start(&s, dir, any), 0);
    ck_assert_int_eq(get_with_host(&s, "evil.example"), 200);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- Low: a pinned older version ------------------------------------------------ */

/* POST /refine?version=V of x; the status, the features in *y (malloc'd) when 200. */
static long refine_version(const su_server *s, int v, const char *feat, float **y)
{
    char path[64];
    snprintf(path, sizeof path, "/refine?version=%d", v);
    const char *h[] = {"Content-Type: application/json", NULL};
    su_resp r;
    su_http(NULL, "POST", su_url(s, path), h, feat, strlen(feat), &r);
    long st = r.status;
    *y = NULL;
    if (st == 200) {
        int rows, cols;
        *y = su_json_matrix(r.body, "features", &rows, &cols);
    }
    su_resp_free(&r);
    return st;
}

/* A non-active version was loaded from disk for every request (120 ms against 2 ms for
 * the active one). The most recently asked ones (REG_KEEP = 2) now stay loaded: once
 * asked for, version 1 answers the same even after its file is broken on disk -- until
 * two other versions have been asked for since, which shows the cache is bounded. */
START_TEST(low_recent_versions_stay_loaded)
{
    su_server s;
    char *dir = tu_tmpdir();
    for (int v = 1; v <= 4; v++) {
        sola_model *m = su_make_model(dir, "m", v, C_DIM, 8, (uint64_t)v, 0.5f);
        ck_assert_ptr_nonnull(m);
        sola_model_free(m);
    }
    const char *args[] = {"--data", dir, "--workers", "1", "--threads", "1", NULL};
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    ck_assert_int_eq(active_of(&s), 4);
    float *x = su_input(5, C_DIM, 3);
    char *feat = su_json_features(x, 5, C_DIM, "");
    free(x);
    float *y1, *y;
    ck_assert_int_eq(refine_version(&s, 1, feat, &y1), 200);
    char p[4096];
    snprintf(p, sizeof p, "%s/models/m/1.safetensors", dir);
    ck_assert_int_eq(truncate(p, 16), 0);
    for (int i = 0; i < 3; i++) { /* also across the periodic rescan (2 s) */
        ck_assert_int_eq(refine_version(&s, 1, feat, &y), 200);
        ck_assert_mem_eq(y, y1, 5 * C_DIM * sizeof(float));
        free(y);
        su_sleep_ms(i ? 1100 : 0);
    }
    ck_assert_int_eq(refine_version(&s, 2, feat, &y), 200);
    free(y);
    ck_assert_int_eq(refine_version(&s, 3, feat, &y), 200);
    free(y);
    long st = refine_version(&s, 1, feat, &y);
    free(y);
    ck_assert_msg(st != 200, "version 1 still served from memory after 2 others were asked "
                             "for: the cache is not bounded");
    free(y1);
    free(feat);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("hardening");
    TCase *tc = tcase_create("round2");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, m2_bad_token_files_refused_at_start);
    tcase_add_test(tc, m3_nul_and_query_refused);
    tcase_add_test(tc, m4_ambiguous_framing_one_reply_and_close);
    tcase_add_test(tc, m7_version_limit_is_a_clear_failure);
    tcase_add_test(tc, m8_cross_site_requests_and_foreign_hosts_refused);
    tcase_add_test(tc, low_recent_versions_stay_loaded);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return su_run(suite());
}
