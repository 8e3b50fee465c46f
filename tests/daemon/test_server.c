/* test_server.c -- a real solad on a loopback port, driven with libcurl: refine over
 * JSON and .npy equals sola_refine of the same model, TSM formats, every error status
 * with its cause, the bearer token on mutating routes, the model registry (upload,
 * conflict, download, activate, rescan) and the bounded queue (503 + Retry-After). */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "array.h"
#include "fsutil.h"
#include "npy.h"
#include "npz.h"
#include "refine.h"
#include "serverutil.h"

#define C_DIM 64

START_TEST(refine_over_json_and_npy_equals_sola_refine)
{
    char *dir = tu_tmpdir();
    sola_model *m = su_make_model(dir, "m", 1, C_DIM, 32, 11, 0.7f);
    ck_assert_ptr_nonnull(m);
    const char *args[] = {"--data", dir, "--threads", "1", NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    const int T = 9;
    float *x = su_input(T, C_DIM, 1);
    float *y = su_refine_local(m, x, T);
    su_resp r;
    char h[256];

    /* JSON in, JSON out */
    char *js = su_json_features(x, T, C_DIM, "\"model\": \"m\"");
    const char *hj[] = {"Content-Type: application/json", NULL};
    su_http(NULL, "POST", su_url(&s, "/refine"), hj, js, strlen(js), &r);
    ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body);
    ck_assert_str_eq(su_header(&r, "X-Model", h, sizeof h), "m");
    ck_assert_str_eq(su_header(&r, "X-Model-Version", h, sizeof h), "1");
    /* where the time went: receiving the body, waiting for a worker, the work (ms) */
    ck_assert_ptr_nonnull(su_header(&r, "Server-Timing", h, sizeof h));
    double recv_ms = -1, queue_ms = -1, work_ms = -1;
    ck_assert_msg(sscanf(h, "recv;dur=%lf, queue;dur=%lf, work;dur=%lf", &recv_ms, &queue_ms,
                         &work_ms) == 3,
                  "Server-Timing: %s", h);
    ck_assert(recv_ms >= 0 && queue_ms >= 0 && work_ms >= 0);
    int rows, cols;
    float *got = su_json_matrix(r.body, "features", &rows, &cols);
    ck_assert_int_eq(rows, T);
    ck_assert_int_eq(cols, C_DIM);
    ck_assert_double_le(tu_max_rel_err(got, y, (size_t)T * C_DIM), 1e-6);
    free(got);
    su_resp_free(&r);
    free(js);

    /* .npy in, .npy out (no model named: the only one) */
    size_t nlen;
    void *npy = su_npy_of(x, T, C_DIM, &nlen);
    const char *hn[] = {"Content-Type: application/x-npy", NULL};
    su_http(NULL, "POST", su_url(&s, "/refine"), hn, npy, nlen, &r);
    ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body);
    ck_assert_str_eq(su_header(&r, "Content-Type", h, sizeof h), "application/x-npy");
    sola_array a = {0};
    sola_err e = {0};
    ck_assert_int_eq(sola_npy_parse(r.body, r.len, "reply", 0, &a, &e), 0);
    ck_assert_int_eq(a.ndim, 2);
    ck_assert_int_eq(a.shape[0], T);
    ck_assert_double_le(tu_max_rel_err(a.data, y, (size_t)T * C_DIM), 1e-6);
    sola_array_free(&a);
    su_resp_free(&r);

    /* .npy in, .npz out with both TSMs */
    const char *hz[] = {"Content-Type: application/x-npy", "Accept: application/x-npz", NULL};
    su_http(NULL, "POST", su_url(&s, "/refine?tsm=both&model=m&version=1"), hz, npy, nlen, &r);
    ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body);
    sola_npz z;
    ck_assert_int_eq(sola_npz_parse(r.body, r.len, "reply", &z, &e), 0);
    ck_assert_int_eq(sola_npz_read(&z, sola_npz_find(&z, "tsm"), 0, &a, &e), 0);
    float *S = malloc(sizeof(float) * T * T);
    sola_tsm(y, T, C_DIM, S, &e);
    ck_assert_double_le(tu_max_rel_err(a.data, S, (size_t)T * T), 1e-5);
    sola_array_free(&a);
    ck_assert_int_ge(sola_npz_find(&z, "tsm_raw"), 0);
    sola_npz_close(&z);
    su_resp_free(&r);

    /* POST /tsm as a PNG heatmap, both side by side */
    const char *hp[] = {"Content-Type: application/x-npy", "Accept: image/png", NULL};
    su_http(NULL, "POST", su_url(&s, "/tsm?tsm=both"), hp, npy, nlen, &r);
    ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body);
    ck_assert_str_eq(su_header(&r, "Content-Type", h, sizeof h), "image/png");
    ck_assert_mem_eq(r.body, "\x89PNG\r\n\x1a\n", 8);
    su_resp_free(&r);

    /* GET /tsm of a stored item, raw TSM as JSON (no model involved) */
    char p[4096];
    tu_system("mkdir -p '%s/datasets/d'", dir);
    snprintf(p, sizeof p, "%s/datasets/d/v1.npy", dir);
    ck_assert_int_eq(tu_write(p, npy, nlen), 0);
    ck_assert_int_eq(su_get(&s, NULL, "/tsm?dataset=d&item=v1&tsm=raw", &r), 200);
    got = su_json_matrix(r.body, "tsm_raw", &rows, &cols);
    ck_assert_int_eq(rows, T);
    sola_tsm(x, T, C_DIM, S, &e);
    ck_assert_double_le(tu_max_rel_err(got, S, (size_t)T * T), 1e-5);
    free(got);
    su_resp_free(&r);
    ck_assert_int_eq(su_get(&s, NULL, "/tsm?dataset=d&item=nope", &r), 404);
    su_resp_free(&r);

    ck_assert_int_eq(su_stop(&s), 0);
    free(S);
    free(npy);
    free(x);
    free(y);
    sola_model_free(m);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Asserts status and that the JSON error mentions `needle`. */
static void expect_err(su_resp *r, long status, const char *needle)
{
    ck_assert_msg(r->rc == CURLE_OK, "transport error %d", (int)r->rc);
    ck_assert_msg(r->status == status, "status %ld, wanted %ld: %s", r->status, status,
                  r->body ? r->body : "");
    json_t *j = json_loads(r->body ? r->body : "", 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "error"));
    ck_assert_msg(msg && strstr(msg, needle), "error \"%s\" lacks \"%s\"", msg ? msg : "(none)",
                  needle);
    json_decref(j);
    su_resp_free(r);
}

typedef struct chunk_src {
    size_t left;
} chunk_src;

static size_t chunk_read(char *buf, size_t sz, size_t nm, void *ud)
{
    chunk_src *c = ud;
    size_t n = sz * nm < c->left ? sz * nm : c->left;
    memset(buf, '1', n);
    c->left -= n;
    return n;
}

/* A [T, 64] <f4 .npy of su_input with one value replaced (at row, col; row < 0: none). */
static void *npy_with(int T, float v, int row, int col, size_t *len)
{
    float *x = su_input(T, C_DIM, 5);
    if (row >= 0)
        x[(size_t)row * C_DIM + (size_t)col] = v;
    void *npy = su_npy_of(x, T, C_DIM, len);
    free(x);
    return npy;
}

/* NaN and infinities in an .npy body: refused with where they are, whether the
 * server checked the values as the body arrived (<f4 data, found where the handler
 * reads them) or the handler converted the body (<f8); values whose 4-byte halves
 * only look like NaN as float32 are no NaN; --allow-nonfinite takes them. */
START_TEST(nonfinite_npy_bodies_refused_with_their_place)
{
    char *dir = tu_tmpdir();
    const char *args[] = {"--dim", "64", NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    const char *hn[] = {"Content-Type: application/x-npy", NULL};
    const char *ho[] = {"Content-Type: application/octet-stream", NULL};
    su_resp r;
    size_t len;
    /* 300 x 64 floats: 75 KiB, more than one read of the socket */
    void *npy = npy_with(300, NAN, 250, 5, &len);
    su_http(NULL, "POST", su_url(&s, "/refine"), hn, npy, len, &r);
    expect_err(&r, 400, "features[250][5] is NaN");
    free(npy);
    npy = npy_with(300, INFINITY, 299, 63, &len);
    su_http(NULL, "POST", su_url(&s, "/refine"), hn, npy, len, &r);
    expect_err(&r, 400, "features[299][63] is infinite");
    free(npy);
    npy = npy_with(3, -INFINITY, 0, 0, &len); /* an .npy sent as octet-stream */
    su_http(NULL, "POST", su_url(&s, "/tsm"), ho, npy, len, &r);
    expect_err(&r, 400, "features[0][0] is infinite");
    free(npy);
    npy = npy_with(300, 0, -1, 0, &len);
    su_http(NULL, "POST", su_url(&s, "/refine"), hn, npy, len, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    su_resp_free(&r);
    free(npy);
    /* <f8, each value's low half 0x7fc00000 (a float32 NaN): finite doubles */
    enum { T8 = 40 };
    int64_t sh[2] = {T8, C_DIM};
    unsigned char hdr[256];
    size_t hl = sola_npy_header("<f8", 2, sh, hdr, sizeof hdr);
    ck_assert_uint_gt(hl, 0);
    len = hl + (size_t)T8 * C_DIM * 8;
    unsigned char *b8 = malloc(len);
    ck_assert_ptr_nonnull(b8);
    memcpy(b8, hdr, hl);
    for (size_t i = 0; i < (size_t)T8 * C_DIM; i++) {
        uint64_t u = (uint64_t)0x3ff00000u << 32 | 0x7fc00000u; /* 1.0000000018... */
        memcpy(b8 + hl + i * 8, &u, 8);
    }
    su_http(NULL, "POST", su_url(&s, "/refine"), hn, b8, len, &r);
    ck_assert_msg(r.status == 200, "a <f8 body of finite values: %ld %s", r.status, r.body);
    su_resp_free(&r);
    ((unsigned char *)b8)[hl + 7 * 8 + 7] = 0x7f; /* element 7: exponent all ones */
    ((unsigned char *)b8)[hl + 7 * 8 + 6] = 0xf0;
    su_http(NULL, "POST", su_url(&s, "/refine"), hn, b8, len, &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_msg(strstr(r.body, "NaN") || strstr(r.body, "Inf") || strstr(r.body, "finite"),
                  "%s", r.body);
    su_resp_free(&r);
    free(b8);
    ck_assert_int_eq(su_stop(&s), 0);

    const char *args2[] = {"--dim", "64", "--allow-nonfinite", NULL};
    ck_assert_int_eq(su_start(&s, dir, args2), 0);
    npy = npy_with(300, NAN, 250, 5, &len);
    su_http(NULL, "POST", su_url(&s, "/refine"), hn, npy, len, &r);
    ck_assert_msg(r.status == 200, "--allow-nonfinite: %ld %s", r.status, r.body);
    su_resp_free(&r);
    free(npy);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(error_statuses_over_http)
{
    char *dir = tu_tmpdir();
    const char *args[] = {"--dim", "64", "--max-body", "65536", "--max-frames", "16", NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    su_resp r;
    char h[256];
    const char *hj[] = {"Content-Type: application/json", NULL};
    const char *hn[] = {"Content-Type: application/x-npy", NULL};

    su_http(NULL, "POST", su_url(&s, "/refine"), hj, "{\"features\": [[1,2,", 18, &r);
    expect_err(&r, 400, "malformed JSON");
    su_http(NULL, "POST", su_url(&s, "/refine"), hn, "\x93NUMPY\x01\x00\x05\x00{'de", 15, &r);
    expect_err(&r, 400, "request body");
    float *x = su_input(4, 63, 2);
    size_t nlen;
    void *npy = su_npy_of(x, 4, 63, &nlen);
    su_http(NULL, "POST", su_url(&s, "/refine"), hn, npy, nlen, &r);
    expect_err(&r, 422, "C=63 channels but model default version 1 expects C=64");
    free(npy);
    free(x);
    x = su_input(4, 64, 2);
    npy = su_npy_of(x, 4, 64, &nlen);
    su_http(NULL, "POST", su_url(&s, "/refine?model=nosuch"), hn, npy, nlen, &r);
    expect_err(&r, 404, "no model named \"nosuch\"");
    su_http(NULL, "POST", su_url(&s, "/refine?version=2"), hn, npy, nlen, &r);
    expect_err(&r, 404, "has no version 2");
    su_http(NULL, "GET", su_url(&s, "/refine"), NULL, NULL, 0, &r);
    ck_assert_str_eq(su_header(&r, "Allow", h, sizeof h), "POST");
    expect_err(&r, 405, "not allowed");
    su_http(NULL, "DELETE", su_url(&s, "/models/default"), NULL, NULL, 0, &r);
    ck_assert_str_eq(su_header(&r, "Allow", h, sizeof h), "GET, HEAD");
    expect_err(&r, 405, "not allowed");
    su_http(NULL, "GET", su_url(&s, "/nowhere"), NULL, NULL, 0, &r);
    expect_err(&r, 404, "no route");
    const char *hform[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    su_http(NULL, "POST", su_url(&s, "/refine"), hform, npy, nlen, &r);
    expect_err(&r, 415, "not supported");
    const char *hacc[] = {"Content-Type: application/x-npy", "Accept: text/csv", NULL};
    su_http(NULL, "POST", su_url(&s, "/refine"), hacc, npy, nlen, &r);
    expect_err(&r, 406, "Accept");
    free(npy);
    free(x);

    /* T above --max-frames */
    x = su_input(17, 64, 3);
    npy = su_npy_of(x, 17, 64, &nlen);
    su_http(NULL, "POST", su_url(&s, "/refine"), hn, npy, nlen, &r);
    expect_err(&r, 413, "T=17");
    free(npy);
    free(x);

    /* body above --max-body, announced by Content-Length: refused before reading */
    size_t big = 100000;
    char *junk = malloc(big);
    memset(junk, '1', big);
    su_http(NULL, "POST", su_url(&s, "/refine"), hj, junk, big, &r);
    expect_err(&r, 413, "--max-body");
    free(junk);
    /* ... and sent chunked (no length): refused when it crosses the limit */
    CURL *c = curl_easy_init();
    chunk_src src = {200000};
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
    hl = curl_slist_append(hl, "Expect:");
    memset(&r, 0, sizeof r);
    curl_easy_setopt(c, CURLOPT_URL, su_url(&s, "/refine"));
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, chunk_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &src);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, su_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    ck_assert_int_eq(r.status, 413);
    su_resp_free(&r);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);

    /* the daemon is still fine after all that */
    ck_assert_int_eq(su_get(&s, NULL, "/readyz", &r), 200);
    su_resp_free(&r);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(token_guards_registry_writes)
{
    char *dir = tu_tmpdir();
    char tok[4096], file[4096];
    snprintf(tok, sizeof tok, "%s/token", dir);
    ck_assert_int_eq(tu_write(tok, "t0ken-42\n", 9), 0);
    /* a model file to upload, written by core */
    sola_model *m2 = su_make_model(NULL, NULL, 0, C_DIM, 16, 5, 0.5f);
    snprintf(file, sizeof file, "%s/up.safetensors", dir);
    sola_err e = {0};
    ck_assert_int_eq(sola_model_save(m2, file, 0, &e), 0);
    size_t mlen;
    char *mbytes = tu_read(file, &mlen);
    const char *args[] = {"--data", dir, "--dim", "64", "--token-file", tok, NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    su_resp r;
    char h[256];
    const char *oct[] = {"Content-Type: application/octet-stream", NULL};
    const char *bad[] = {"Content-Type: application/octet-stream",
                         "Authorization: Bearer t0ken-41", NULL};
    const char *good[] = {"Content-Type: application/octet-stream",
                          "Authorization: Bearer t0ken-42", NULL};

    su_http(NULL, "PUT", su_url(&s, "/models/m/versions/1"), oct, mbytes, mlen, &r);
    ck_assert_ptr_nonnull(su_header(&r, "WWW-Authenticate", h, sizeof h));
    expect_err(&r, 401, "Authorization: Bearer");
    su_http(NULL, "PUT", su_url(&s, "/models/m/versions/1"), bad, mbytes, mlen, &r);
    ck_assert_ptr_nonnull(strstr(su_header(&r, "WWW-Authenticate", h, sizeof h), "invalid_token"));
    expect_err(&r, 401, "wrong bearer token");
    /* not a model: refused, nothing stored */
    su_http(NULL, "PUT", su_url(&s, "/models/m/versions/1"), good, "garbage!", 8, &r);
    expect_err(&r, 400, "uploaded model");
    snprintf(file, sizeof file, "%s/models/m/1.safetensors", dir);
    ck_assert_int_ne(access(file, F_OK), 0);
    /* reads need no token; the embedded default still serves */
    ck_assert_int_eq(su_get(&s, NULL, "/models/default", &r), 200);
    su_resp_free(&r);

    su_http(NULL, "PUT", su_url(&s, "/models/m/versions/1"), good, mbytes, mlen, &r);
    ck_assert_msg(r.status == 201, "status %ld: %s", r.status, r.body);
    ck_assert_str_eq(su_header(&r, "Location", h, sizeof h), "/models/m/versions/1");
    su_resp_free(&r);
    su_http(NULL, "PUT", su_url(&s, "/models/m/versions/1"), good, mbytes, mlen, &r);
    expect_err(&r, 409, "exists");
    /* the first stored model replaces the embedded default and is active */
    ck_assert_int_eq(su_get(&s, NULL, "/models", &r), 200);
    json_t *j = json_loads(r.body, 0, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(j, "models")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(j, "default")), "m");
    json_decref(j);
    su_resp_free(&r);
    ck_assert_int_eq(su_get(&s, NULL, "/models/m/versions/1", &r), 200);
    ck_assert_uint_eq(r.len, mlen);
    ck_assert_mem_eq(r.body, mbytes, mlen);
    su_resp_free(&r);

    /* version 2 = same weights with another alpha; activation needs the token */
    m2->alpha[0] = -0.25f;
    snprintf(file, sizeof file, "%s/up2.safetensors", dir);
    ck_assert_int_eq(sola_model_save(m2, file, 0, &e), 0);
    free(mbytes);
    mbytes = tu_read(file, &mlen);
    su_http(NULL, "PUT", su_url(&s, "/models/m/versions/2"), good, mbytes, mlen, &r);
    ck_assert_int_eq(r.status, 201);
    su_resp_free(&r);
    const char *aj[] = {"Content-Type: application/json", NULL};
    const char *ajt[] = {"Content-Type: application/json", "Authorization: Bearer t0ken-42",
                         NULL};
    su_http(NULL, "POST", su_url(&s, "/models/m/activate"), aj, "{\"version\": 2}", 14, &r);
    expect_err(&r, 401, "Authorization");
    su_http(NULL, "POST", su_url(&s, "/models/m/activate"), ajt, "{\"version\": 3}", 14, &r);
    expect_err(&r, 404, "no version 3");
    su_http(NULL, "POST", su_url(&s, "/models/m/activate"), ajt, "{\"version\": 2}", 14, &r);
    ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body);
    su_resp_free(&r);
    snprintf(file, sizeof file, "%s/models/m/active", dir);
    char *act = tu_read(file, &mlen);
    ck_assert_str_eq(act, "2\n");
    free(act);
    ck_assert_int_eq(su_get(&s, NULL, "/models/m", &r), 200);
    j = json_loads(r.body, 0, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "active")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "C")), C_DIM);
    ck_assert_int_eq(json_array_size(json_object_get(j, "versions")), 2);
    json_decref(j);
    su_resp_free(&r);

    /* a refine now says version 2 */
    float *x = su_input(3, C_DIM, 9);
    size_t nlen;
    void *npy = su_npy_of(x, 3, C_DIM, &nlen);
    const char *hn[] = {"Content-Type: application/x-npy", NULL};
    su_http(NULL, "POST", su_url(&s, "/refine"), hn, npy, nlen, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(su_header(&r, "X-Model-Version", h, sizeof h), "2");
    su_resp_free(&r);

    /* SIGHUP: a model copied in by hand appears */
    sola_model *m3 = su_make_model(dir, "other", 4, 32, 8, 3, 0.1f);
    kill(s.pid, SIGHUP);
    long st = 0;
    for (int i = 0; i < 500 && st != 200; i++) {
        st = su_get(&s, NULL, "/models/other", &r);
        su_resp_free(&r);
        if (st != 200)
            su_sleep_ms(20);
    }
    ck_assert_int_eq(st, 200);
    /* two models now: a request naming none is ambiguous */
    su_http(NULL, "POST", su_url(&s, "/refine"), hn, npy, nlen, &r);
    expect_err(&r, 400, "several models");

    ck_assert_int_eq(su_stop(&s), 0);
    free(npy);
    free(x);
    free(mbytes);
    sola_model_free(m2);
    sola_model_free(m3);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Polls GET path on s until it answers `status` with a body containing `needle`. */
static int wait_for(const su_server *s, const char *path, long status, const char *needle)
{
    for (int i = 0; i < 1500; i++) {
        su_resp r;
        long st = su_get(s, NULL, path, &r);
        int ok = st == status && (!needle || (r.body && strstr(r.body, needle)));
        su_resp_free(&r);
        if (ok)
            return 1;
        su_sleep_ms(20);
    }
    return 0;
}

START_TEST(replicas_sharing_a_directory_follow_each_other)
{
    char *dir = tu_tmpdir();
    sola_model *m1 = su_make_model(dir, "m", 1, C_DIM, 16, 1, 0.3f);
    const char *args[] = {"--data", dir, "--rescan-interval", "1", NULL};
    su_server a, b;
    ck_assert_int_eq(su_start(&a, dir, args), 0);
    ck_assert_int_eq(su_start(&b, dir, args), 0);
    /* upload version 2 to replica a and activate it there */
    sola_model *m2 = su_make_model(NULL, NULL, 0, C_DIM, 16, 2, -0.3f);
    char file[4096];
    snprintf(file, sizeof file, "%s/up.safetensors", dir);
    sola_err e = {0};
    ck_assert_int_eq(sola_model_save(m2, file, 0, &e), 0);
    size_t len;
    char *bytes = tu_read(file, &len);
    su_resp r;
    const char *oct[] = {"Content-Type: application/octet-stream", NULL};
    su_http(NULL, "PUT", su_url(&a, "/models/m/versions/2"), oct, bytes, len, &r);
    ck_assert_int_eq(r.status, 201);
    su_resp_free(&r);
    const char *aj[] = {"Content-Type: application/json", NULL};
    su_http(NULL, "POST", su_url(&a, "/models/m/activate"), aj, "{\"version\":2}", 13, &r);
    ck_assert_int_eq(r.status, 200);
    su_resp_free(&r);
    /* replica b notices without a signal */
    ck_assert(wait_for(&b, "/models/m", 200, "\"active\":2"));
    float *x = su_input(4, C_DIM, 5);
    size_t n;
    void *npy = su_npy_of(x, 4, C_DIM, &n);
    const char *hn[] = {"Content-Type: application/x-npy", NULL};
    char h[32];
    su_http(NULL, "POST", su_url(&b, "/refine"), hn, npy, n, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(su_header(&r, "X-Model-Version", h, sizeof h), "2");
    su_resp_free(&r);
    /* a rollback done by hand on disk reaches both */
    snprintf(file, sizeof file, "%s/models/m/active", dir);
    sola_write_atomic(file, "1\n", 2, &e);
    ck_assert(wait_for(&a, "/models/m", 200, "\"active\":1"));
    ck_assert(wait_for(&b, "/models/m", 200, "\"active\":1"));
    ck_assert_int_eq(su_stop(&a), 0);
    ck_assert_int_eq(su_stop(&b), 0);
    free(npy);
    free(x);
    free(bytes);
    sola_model_free(m1);
    sola_model_free(m2);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(broken_active_file_keeps_previous_version_serving)
{
    char *dir = tu_tmpdir();
    sola_model *m1 = su_make_model(dir, "m", 1, C_DIM, 16, 1, 0.3f);
    /* version 2 exists but is cut short: it cannot load */
    char p[4096];
    snprintf(p, sizeof p, "%s/models/m/1.safetensors", dir);
    size_t len;
    char *good = tu_read(p, &len);
    snprintf(p, sizeof p, "%s/models/m/2.safetensors", dir);
    ck_assert_int_eq(tu_write(p, good, len / 2), 0);
    snprintf(p, sizeof p, "%s/models/m/active", dir);
    ck_assert_int_eq(tu_write(p, "1\n", 2), 0);
    const char *args[] = {"--data", dir, "--rescan-interval", "0", NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    /* an operator points active at the broken version and signals */
    sola_err e = {0};
    ck_assert_int_eq(sola_write_atomic(p, "2\n", 2, &e), 0);
    kill(s.pid, SIGHUP);
    ck_assert(wait_for(&s, "/models/m", 200, "\"warning\""));
    su_resp r;
    ck_assert_int_eq(su_get(&s, NULL, "/models/m", &r), 200);
    json_t *j = json_loads(r.body, 0, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "active")), 1);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j, "warning")), "version 2"));
    json_decref(j);
    su_resp_free(&r);
    float *x = su_input(3, C_DIM, 2);
    size_t n;
    void *npy = su_npy_of(x, 3, C_DIM, &n);
    const char *hn[] = {"Content-Type: application/x-npy", NULL};
    char h[32];
    su_http(NULL, "POST", su_url(&s, "/refine"), hn, npy, n, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(su_header(&r, "X-Model-Version", h, sizeof h), "1");
    su_resp_free(&r);
    ck_assert_int_eq(su_get(&s, NULL, "/readyz", &r), 200);
    su_resp_free(&r);
    /* repaired on disk: the next rescan takes it */
    snprintf(p, sizeof p, "%s/models/m/2.safetensors", dir);
    sola_model *m2 = su_make_model(NULL, NULL, 0, C_DIM, 16, 2, -0.3f);
    ck_assert_int_eq(sola_model_save(m2, p, 0, &e), 0);
    kill(s.pid, SIGHUP);
    ck_assert(wait_for(&s, "/models/m", 200, "\"active\":2"));
    ck_assert_int_eq(su_stop(&s), 0);
    size_t ln;
    char *log = tu_read(s.log, &ln);
    ck_assert_ptr_nonnull(strstr(log, "the previous version keeps serving"));
    free(log);
    free(npy);
    free(x);
    free(good);
    sola_model_free(m1);
    sola_model_free(m2);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

typedef struct bg {
    const su_server *s;
    void *npy;
    size_t len;
    long status;
} bg;

static void *bg_refine(void *arg)
{
    bg *b = arg;
    su_resp r;
    const char *hn[] = {"Content-Type: application/x-npy", NULL};
    char u[256];
    snprintf(u, sizeof u, "%s/refine", b->s->base);
    su_http(NULL, "POST", u, hn, b->npy, b->len, &r);
    b->status = r.status;
    su_resp_free(&r);
    return NULL;
}

START_TEST(full_queue_answers_503_with_retry_after)
{
    char *dir = tu_tmpdir();
    /* one worker, one waiting slot, and each item held for a while: two requests
     * fill the server, the third must be turned away at once */
    const char *args[] = {"--dim", "64", "--workers", "1", "--queue", "1",
                          "--debug-work-delay-ms", "1500", NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    float *x = su_input(2, 64, 4);
    size_t nlen;
    void *npy = su_npy_of(x, 2, 64, &nlen);
    bg b[2] = {{&s, npy, nlen, 0}, {&s, npy, nlen, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, bg_refine, &b[i]);
    long inflight = 0;
    for (int i = 0; i < 1000 && inflight != 2; i++) {
        inflight = su_health(&s, NULL, "inflight");
        if (inflight != 2)
            su_sleep_ms(5);
    }
    ck_assert_int_eq(inflight, 2);
    su_resp r;
    char h[64];
    const char *hn[] = {"Content-Type: application/x-npy", NULL};
    su_http(NULL, "POST", su_url(&s, "/refine"), hn, npy, nlen, &r);
    ck_assert_str_eq(su_header(&r, "Retry-After", h, sizeof h), "1");
    expect_err(&r, 503, "busy");
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(b[i].status, 200);
    }
    ck_assert_int_eq(su_stop(&s), 0);
    free(npy);
    free(x);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    Suite *s = suite_create("server");
    TCase *t = tcase_create("http");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, refine_over_json_and_npy_equals_sola_refine);
    tcase_add_test(t, error_statuses_over_http);
    tcase_add_test(t, nonfinite_npy_bodies_refused_with_their_place);
    tcase_add_test(t, token_guards_registry_writes);
    tcase_add_test(t, full_queue_answers_503_with_retry_after);
    tcase_add_test(t, replicas_sharing_a_directory_follow_each_other);
    tcase_add_test(t, broken_active_file_keeps_previous_version_serving);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
