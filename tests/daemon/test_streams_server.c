/* test_streams_server.c -- online refine through a real solad (docs/streaming.md).
 *
 * Exactness: several streams at once (so their windows share batched passes), each
 * chunked differently and sent through a different door (/refine .npy, /refine JSON,
 * v2 binary, v2 JSON), concatenate to exactly the bytes of the offline /refine of the
 * whole sequence from the same daemon. Pinning: an activation mid-stream changes
 * nothing for the stream. Limits: --max-streams (503), --stream-idle-timeout (404
 * saying why), --max-streams 0 (off: 503), the gauges back to their baseline once
 * streams close (test_streams_memory.c: solad's RSS too), promtool accepts the page.
 * Errors: each case a user can hit. kill -9: open streams are lost, models and
 * datasets are not. Watchers: GET /streams/ID/events carries the same rows. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <jansson.h>

#include "array.h"
#include "fsutil.h"
#include "model.h"
#include "npy.h"
#include "refine.h"
#include "rng.h"
#include "serverutil.h"
#include "testutil.h"

#define C 64

/* A model with a wide receptive field: k1 = 5, k2 = 3 with dilation 2 (R = 4). */
static void write_model(const char *data, const char *name, int version, uint64_t seed)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(C, 64, 5, 3, 0, &e);
    ck_assert_ptr_nonnull(m);
    sola_model_init(m, seed);
    m->d2 = 2;
    m->alpha[0] = 0.6f;
    char p[4096];
    snprintf(p, sizeof p, "%s/models/%s", data, name);
    tu_system("mkdir -p '%s'", p);
    snprintf(p, sizeof p, "%s/models/%s/%d.safetensors", data, name, version);
    ck_assert_msg(sola_model_save(m, p, 0, &e) == 0, "%s", e.msg);
    sola_model_free(m);
}

enum { D_NPY, D_JSON, D_V2BIN, D_V2JSON, D_N };

typedef struct reply {
    long status;
    float *rows; /* [k, C] */
    int k;
    long long offset, received;
    int ended;
    char body[512]; /* start of the body, for messages */
} reply;

static long long header_ll(const su_resp *r, const char *name)
{
    char v[64];
    return su_header(r, name, v, sizeof v) ? atoll(v) : -1;
}

/* One chunk x [n, C] of stream id through door d. flags: "start", "end", both or "". */
static void send_chunk(const su_server *s, int d, const char *model, const char *id,
                       int start, int end, const float *x, int n, reply *out)
{
    memset(out, 0, sizeof *out);
    su_resp r;
    char url[512];
    if (d == D_NPY || d == D_JSON) {
        snprintf(url, sizeof url, "%s/refine?model=%s&sequence_id=%s%s%s", s->base, model, id,
                 start ? "&sequence_start=1" : "", end ? "&sequence_end=true" : "");
        if (d == D_NPY) {
            size_t len;
            void *b = su_npy_of(x, n, C, &len);
            const char *h[] = {"Content-Type: application/x-npy", NULL};
            su_http(NULL, "POST", url, h, b, len, &r);
            free(b);
        } else {
            char *b = n ? su_json_features(x, n, C, "") : NULL;
            const char *h[] = {"Content-Type: application/json", NULL};
            su_http(NULL, "POST", url, h, b ? b : "", b ? strlen(b) : 0, &r);
            free(b);
        }
    } else {
        snprintf(url, sizeof url, "%s/v2/models/%s/infer", s->base, model);
        size_t cap = (size_t)n * C * 20 + 1024, o = 0;
        char *b = malloc(cap);
        char params[300];
        snprintf(params, sizeof params, "\"parameters\":{\"sequence_id\":\"%s\"%s%s}", id,
                 start ? ",\"sequence_start\":true" : "", end ? ",\"sequence_end\":true" : "");
        if (d == D_V2BIN) {
            o = (size_t)snprintf(b, cap,
                                 "{%s,\"inputs\":[{\"name\":\"features\",\"shape\":[%d,%d],"
                                 "\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":%d}}],"
                                 "\"outputs\":[{\"name\":\"refined\",\"parameters\":{"
                                 "\"binary_data\":true}}]}",
                                 params, n, C, n * C * 4);
            char hv[64];
            snprintf(hv, sizeof hv, "Inference-Header-Content-Length: %zu", o);
            memcpy(b + o, x, (size_t)n * C * 4);
            const char *h[] = {hv, "Content-Type: application/octet-stream", NULL};
            su_http(NULL, "POST", url, h, b, o + (size_t)n * C * 4, &r);
        } else {
            o = (size_t)snprintf(b, cap, "{%s,\"inputs\":[{\"name\":\"features\",\"shape\":[%d,%d],"
                                         "\"datatype\":\"FP32\",\"data\":[", params, n, C);
            for (int i = 0; i < n * C; i++)
                o += (size_t)snprintf(b + o, cap - o, "%s%.9g", i ? "," : "", (double)x[i]);
            o += (size_t)snprintf(b + o, cap - o, "]}]}");
            const char *h[] = {"Content-Type: application/json", NULL};
            su_http(NULL, "POST", url, h, b, o, &r);
        }
        free(b);
    }
    out->status = r.status;
    snprintf(out->body, sizeof out->body, "%s", r.body ? r.body : "");
    if (r.status != 200) {
        su_resp_free(&r);
        return;
    }
    out->offset = header_ll(&r, "X-Sequence-Offset");
    out->received = header_ll(&r, "X-Sequence-Received");
    char v[16];
    out->ended = su_header(&r, "X-Sequence-End", v, sizeof v) != NULL;
    if (d == D_NPY) {
        sola_array a = {0};
        sola_err e = {0};
        ck_assert_msg(sola_npy_parse(r.body, r.len, "reply", 0, &a, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(a.ndim, 2);
        ck_assert_int_eq(a.shape[1], C);
        out->k = (int)a.shape[0];
        out->rows = a.data;
    } else if (d == D_JSON) {
        json_t *o = json_loads(r.body, 0, NULL);
        ck_assert_ptr_nonnull(o);
        ck_assert_int_eq(json_integer_value(json_object_get(o, "sequence_offset")), out->offset);
        ck_assert_int_eq(json_is_true(json_object_get(o, "sequence_end")), out->ended);
        json_decref(o);
        int rows = 0, cols = 0;
        out->rows = su_json_matrix(r.body, "features", &rows, &cols);
        out->k = rows;
        ck_assert(rows == 0 || cols == C);
    } else {
        char hl[32];
        size_t jl = su_header(&r, "Inference-Header-Content-Length", hl, sizeof hl)
                        ? (size_t)atoll(hl) : r.len;
        json_t *o = json_loadb(r.body, jl, 0, NULL);
        ck_assert_msg(o != NULL, "v2 reply: %s", r.body);
        json_t *p = json_object_get(o, "parameters"), *out0 =
                                                          json_array_get(json_object_get(o, "outputs"), 0);
        ck_assert_int_eq(json_integer_value(json_object_get(p, "sequence_offset")), out->offset);
        ck_assert_str_eq(json_string_value(json_object_get(p, "sequence_id")), id);
        ck_assert_int_eq(json_array_size(json_object_get(o, "outputs")), 1);
        out->k = (int)json_integer_value(json_array_get(json_object_get(out0, "shape"), 0));
        out->rows = malloc((size_t)(out->k ? out->k : 1) * C * 4);
        json_t *data = json_object_get(out0, "data");
        if (data) {
            ck_assert_int_eq(json_array_size(data), (size_t)out->k * C);
            for (size_t i = 0; i < (size_t)out->k * C; i++)
                out->rows[i] = (float)json_number_value(json_array_get(data, i));
        } else {
            ck_assert_uint_eq(r.len - jl, (size_t)out->k * C * 4);
            memcpy(out->rows, r.body + jl, (size_t)out->k * C * 4);
        }
        json_decref(o);
    }
    su_resp_free(&r);
}

/* The offline refine of x [T, C] by the same daemon (.npy in and out). */
static float *offline(const su_server *s, const char *model, const char *version,
                      const float *x, int T)
{
    size_t len;
    void *b = su_npy_of(x, T, C, &len);
    char url[256];
    snprintf(url, sizeof url, "%s/refine?model=%s%s%s", s->base, model,
             version ? "&version=" : "", version ? version : "");
    const char *h[] = {"Content-Type: application/x-npy", NULL};
    su_resp r;
    su_http(NULL, "POST", url, h, b, len, &r);
    free(b);
    ck_assert_msg(r.status == 200, "offline refine: %ld %s", r.status, r.body);
    sola_array a = {0};
    sola_err e = {0};
    ck_assert_int_eq(sola_npy_parse(r.body, r.len, "reply", 0, &a, &e), 0);
    su_resp_free(&r);
    ck_assert_int_eq(a.shape[0], T);
    return a.data;
}

typedef struct job {
    const su_server *s;
    const char *model;
    char id[32];
    int door, chunking, T;
    uint64_t seed;
    const float *x;
    float *y; /* [T, C] gathered */
    int got, calls;
    char fail[600];
} job;

/* Streams x through j->door with j->chunking; fills j->y. Failures go to j->fail (a
 * thread cannot ck_assert). */
static void *run_job(void *arg)
{
    job *j = arg;
    sola_rng r;
    sola_rng_seed(&r, j->seed);
    int sent = 0;
    for (int ended = 0; !ended;) {
        int n;
        switch (j->chunking) {
        case 0: n = 1; break;
        case 1: n = (int)(sola_rng_u64(&r) % 7); break; /* empties too */
        case 2: n = j->T; break;
        default: n = sent < j->T ? j->T : 0; break; /* the end sent alone, empty */
        }
        if (n > j->T - sent)
            n = j->T - sent;
        int end = j->chunking == 3 ? n == 0 : sent + n == j->T;
        reply rp;
        send_chunk(j->s, j->door, j->model, j->id, sent == 0 && j->calls == 0, end,
                   j->x + (size_t)sent * C, n, &rp);
        j->calls++;
        if (rp.status != 200) {
            snprintf(j->fail, sizeof j->fail, "stream %s call %d: %ld %s", j->id, j->calls,
                     rp.status, rp.body);
            return NULL;
        }
        if (rp.offset != j->got || rp.received != sent + n || rp.ended != end) {
            snprintf(j->fail, sizeof j->fail, "stream %s call %d: offset %lld (want %d), "
                     "received %lld (want %d), end %d", j->id, j->calls, rp.offset, j->got,
                     rp.received, sent + n, rp.ended);
            free(rp.rows);
            return NULL;
        }
        if (rp.k)
            memcpy(j->y + (size_t)j->got * C, rp.rows, (size_t)rp.k * C * 4);
        free(rp.rows);
        j->got += rp.k;
        sent += n;
        ended = end;
    }
    if (j->got != j->T)
        snprintf(j->fail, sizeof j->fail, "stream %s: %d rows back for %d sent", j->id, j->got,
                 j->T);
    return NULL;
}

static const char *const door_names[D_N] = {"/refine .npy", "/refine JSON", "v2 binary",
                                            "v2 JSON"};
static const char *const chunk_names[4] = {"one at a time", "random sizes", "one chunk",
                                           "end alone"};

START_TEST(streams_exact_and_concurrent)
{
    char *dir = tu_tmpdir(), data[4200];
    snprintf(data, sizeof data, "%s/data", dir);
    write_model(data, "m", 1, 5);
    su_server s;
    const char *args[] = {"--data", data, "--workers", "2", "--threads", "1",
                          "--batch-window-us", "3000", NULL};
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    enum { NJ = 8 };
    job jobs[NJ];
    pthread_t th[NJ];
    static const int Ts[NJ] = {1, 4, 9, 40, 23, 61, 8, 30};
    for (int i = 0; i < NJ; i++) {
        jobs[i] = (job){.s = &s, .model = "m", .door = i % D_N, .chunking = (i / 2) % 4,
                        .T = Ts[i], .seed = 100 + (uint64_t)i};
        snprintf(jobs[i].id, sizeof jobs[i].id, "cam-%d", i);
        jobs[i].x = su_input(Ts[i], C, 7 + (unsigned)i);
        jobs[i].y = malloc((size_t)Ts[i] * C * 4);
    }
    for (int round = 0; round < 2; round++) { /* twice: the ids are reused after their end */
        for (int i = 0; i < NJ; i++) {
            jobs[i].got = jobs[i].calls = 0;
            jobs[i].chunking = (jobs[i].chunking + round) % 4;
            jobs[i].fail[0] = '\0';
            pthread_create(&th[i], NULL, run_job, &jobs[i]);
        }
        for (int i = 0; i < NJ; i++)
            pthread_join(th[i], NULL);
        for (int i = 0; i < NJ; i++) {
            if (jobs[i].fail[0])
                su_dump_log(&s);
            ck_assert_msg(!jobs[i].fail[0], "%s", jobs[i].fail);
            float *ref = offline(&s, "m", NULL, jobs[i].x, jobs[i].T);
            ck_assert_msg(!memcmp(ref, jobs[i].y, (size_t)jobs[i].T * C * 4),
                          "stream %s (T=%d, %s, %s): not the offline refine's bytes", jobs[i].id,
                          jobs[i].T, door_names[jobs[i].door], chunk_names[jobs[i].chunking]);
            free(ref);
        }
    }
    /* every stream ended: nothing is held */
    su_resp r;
    ck_assert_int_eq(su_get(&s, NULL, "/streams", &r), 200);
    json_t *o = json_loads(r.body, 0, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "open")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "bytes")), 0);
    json_decref(o);
    su_resp_free(&r);
    for (int i = 0; i < NJ; i++) {
        free((void *)jobs[i].x);
        free(jobs[i].y);
    }
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(streams_limits_idle_and_memory)
{
    char *dir = tu_tmpdir(), data[4200];
    snprintf(data, sizeof data, "%s/data", dir);
    write_model(data, "m", 1, 5);
    su_server s;
    const char *args[] = {"--data", data, "--max-streams", "3", "--stream-idle-timeout", "1.5",
                          NULL};
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    ck_assert(su_metric(&s, "solad_streams_open") == 0);
    double base = su_metric(&s, "solad_streams_memory_bytes");
    ck_assert(base == 0);
    ck_assert(su_metric(&s, "solad_streams_limit") == 3);
    float *x = su_input(6, C, 3);
    reply rp;
    char id[16];
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "s%d", i);
        send_chunk(&s, D_NPY, "m", id, 1, 0, x, 6, &rp);
        ck_assert_msg(rp.status == 200, "%s", rp.body);
        ck_assert_int_eq(rp.k, 2); /* R = 4: rows 0 and 1 are final */
        free(rp.rows);
    }
    ck_assert(su_metric(&s, "solad_streams_open") == 3);
    double held = su_metric(&s, "solad_streams_memory_bytes");
    /* each keeps its last 2R = 8 input rows and a small record */
    ck_assert_msg(held >= 3 * 8 * C * 4 && held < 3 * (8 * C * 4 + 1024), "held %g", held);
    /* the fourth: 503 with Retry-After and what to do */
    su_resp r;
    const char *h[] = {"Content-Type: application/x-npy", NULL};
    size_t len;
    void *b = su_npy_of(x, 1, C, &len);
    su_http(NULL, "POST", su_url(&s, "/refine?sequence_id=s3&sequence_start=1"), h, b, len, &r);
    char v[32];
    ck_assert_ptr_nonnull(su_header(&r, "Retry-After", v, sizeof v));
    su_expect(&r, 503, "--max-streams 3");
    ck_assert(su_metric(&s, "solad_streams_rejected_total") == 1);
    /* a restart of an open id is not a new stream: allowed at the limit */
    send_chunk(&s, D_JSON, "m", "s0", 1, 0, x, 1, &rp);
    ck_assert_msg(rp.status == 200, "%s", rp.body);
    ck_assert_int_eq(rp.offset, 0);
    free(rp.rows);
    /* ending one frees its place */
    send_chunk(&s, D_NPY, "m", "s1", 0, 1, x, 0, &rp);
    ck_assert_msg(rp.status == 200, "%s", rp.body);
    ck_assert_int_eq(rp.k, 4); /* the tail: rows 2..5 */
    free(rp.rows);
    send_chunk(&s, D_NPY, "m", "s3", 1, 0, x, 2, &rp);
    ck_assert_msg(rp.status == 200, "%s", rp.body);
    free(rp.rows);
    /* idle: a chunk now and then keeps s2 alive, the others are dropped */
    for (int i = 0; i < 10; i++) { /* 3 s: twice the idle timeout */
        su_sleep_ms(300);
        send_chunk(&s, D_NPY, "m", "s2", 0, 0, x, 0, &rp); /* an empty chunk: keep-alive */
        ck_assert_msg(rp.status == 200, "%s", rp.body);
        ck_assert_int_eq(rp.k, 0);
        free(rp.rows);
    }
    send_chunk(&s, D_NPY, "m", "s0", 0, 0, x, 1, &rp);
    ck_assert_int_eq(rp.status, 404);
    ck_assert_msg(strstr(rp.body, "without a chunk") && strstr(rp.body, "--stream-idle-timeout"),
                  "%s", rp.body);
    send_chunk(&s, D_V2JSON, "m", "s1", 0, 0, x, 1, &rp);
    ck_assert_int_eq(rp.status, 404);
    ck_assert_msg(strstr(rp.body, "has ended"), "%s", rp.body);
    send_chunk(&s, D_NPY, "m", "never", 0, 0, x, 1, &rp);
    ck_assert_int_eq(rp.status, 404);
    ck_assert_msg(strstr(rp.body, "not open") && strstr(rp.body, "sequence_start"), "%s",
                  rp.body);
    ck_assert(su_metric(&s, "solad_streams_open") == 1);
    ck_assert(su_metric(&s, "solad_streams_closed_total{reason=\"idle\"}") == 2);
    ck_assert(su_metric(&s, "solad_streams_closed_total{reason=\"replaced\"}") == 1);
    send_chunk(&s, D_NPY, "m", "s2", 0, 1, x, 0, &rp);
    ck_assert_int_eq(rp.status, 200);
    free(rp.rows);
    /* every stream closed: the memory is back to the baseline */
    ck_assert(su_metric(&s, "solad_streams_open") == 0);
    ck_assert(su_metric(&s, "solad_streams_memory_bytes") == base);
    /* and promtool accepts the page with the stream families */
    if (tu_system("command -v promtool >/dev/null 2>&1") != 0) {
        free(b);
        free(x);
        su_stop(&s);
        tu_rmtree(dir);
        free(dir);
        tu_skip("promtool is not installed (Debian: prometheus)");
        return;
    }
    ck_assert_int_eq(su_get(&s, NULL, "/metrics", &r), 200);
    char path[4300];
    snprintf(path, sizeof path, "%s/metrics.txt", dir);
    ck_assert_int_eq(tu_write(path, r.body, r.len), 0);
    ck_assert_msg(tu_system("promtool check metrics < '%s' >&2", path) == 0,
                  "promtool check metrics rejected the page:\n%s", r.body);
    su_resp_free(&r);
    free(b);
    free(x);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(streams_off_with_max_streams_0)
{
    char *dir = tu_tmpdir(), data[4200];
    snprintf(data, sizeof data, "%s/data", dir);
    write_model(data, "m", 1, 5);
    su_server s;
    const char *args[] = {"--data", data, "--max-streams", "0", NULL};
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    ck_assert(su_metric(&s, "solad_streams_limit") == 0);
    float *x = su_input(4, C, 3);
    reply rp;
    for (int d = 0; d < D_N; d++) {
        send_chunk(&s, d, "m", "cam", 1, 0, x, 4, &rp);
        ck_assert_msg(rp.status == 503 && strstr(rp.body, "streams are off") &&
                          strstr(rp.body, "--max-streams 0"),
                      "%s: %ld %s", door_names[d], rp.status, rp.body);
    }
    ck_assert(su_metric(&s, "solad_streams_open") == 0);
    /* refines without a sequence_id are not streams: served as always */
    float *y = offline(&s, "m", NULL, x, 4);
    free(y);
    free(x);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(streams_bad_calls)
{
    char *dir = tu_tmpdir(), data[4200];
    snprintf(data, sizeof data, "%s/data", dir);
    write_model(data, "m", 1, 5);
    write_model(data, "other", 1, 6);
    su_server s;
    const char *args[] = {"--data", data, "--default-model", "m", NULL};
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    float *x = su_input(4, C, 3);
    su_resp r;
    const char *hj[] = {"Content-Type: application/json", NULL};
    size_t len;
    void *b = su_npy_of(x, 2, C, &len);
    const char *hn[] = {"Content-Type: application/x-npy", NULL};
    /* an id that cannot be a path segment; flags without an id; bad flag values */
    su_http(NULL, "POST", su_url(&s, "/refine?sequence_id=a%2Fb&sequence_start=1"), hn, b, len,
            &r);
    su_expect(&r, 400, "sequence_id");
    su_http(NULL, "POST", su_url(&s, "/refine?sequence_start=1"), hn, b, len, &r);
    su_expect(&r, 400, "needs a sequence_id");
    su_http(NULL, "POST", su_url(&s, "/refine?sequence_id=a&sequence_start=yes"), hn, b, len, &r);
    su_expect(&r, 400, "sequence_start");
    const char *zero = "{\"parameters\":{\"sequence_id\":0},\"inputs\":[{\"name\":\"features\","
                       "\"shape\":[1,1],\"datatype\":\"FP32\",\"data\":[1]}]}";
    su_http(NULL, "POST", su_url(&s, "/v2/models/m/infer"), hj, zero, strlen(zero), &r);
    su_expect(&r, 400, "sequence_id");
    /* the same id in the query and the body */
    char *j = su_json_features(x, 1, C, "\"sequence_id\":\"a\"");
    su_http(NULL, "POST", su_url(&s, "/refine?sequence_id=a&sequence_start=1"), hj, j,
            strlen(j), &r);
    su_expect(&r, 400, "also in the query");
    free(j);
    /* in the body alone it works */
    j = su_json_features(x, 1, C, "\"sequence_id\":\"body\",\"sequence_start\":true");
    su_http(NULL, "POST", su_url(&s, "/refine"), hj, j, strlen(j), &r);
    su_expect(&r, 200, "\"sequence_offset\":0");
    free(j);
    /* a stream has no TSM, and takes [n, C] only */
    su_http(NULL, "POST", su_url(&s, "/refine?sequence_id=t&sequence_start=1&tsm=both"), hn, b,
            len, &r);
    su_expect(&r, 400, "refined rows only");
    su_http(NULL, "POST", su_url(&s, "/tsm?sequence_id=t&sequence_start=1"), hn, b, len, &r);
    su_expect(&r, 400, "POST /refine");
    void *b3;
    size_t len3;
    sola_err e = {0};
    int64_t sh3[3] = {2, 1, C};
    ck_assert_int_eq(sola_npy_encode(x, 3, sh3, &b3, &len3, &e), 0);
    su_http(NULL, "POST", su_url(&s, "/refine?sequence_id=t&sequence_start=1"), hn, b3, len3, &r);
    su_expect(&r, 422, "[n, C]");
    free(b3);
    /* a first chunk of the wrong C: 422, and no stream is left behind */
    float w[3] = {1, 2, 3};
    void *bw;
    size_t lw;
    int64_t shw[2] = {1, 3};
    ck_assert_int_eq(sola_npy_encode(w, 2, shw, &bw, &lw, &e), 0);
    su_http(NULL, "POST", su_url(&s, "/refine?sequence_id=w&sequence_start=1"), hn, bw, lw, &r);
    su_expect(&r, 422, "C=3");
    su_http(NULL, "POST", su_url(&s, "/refine?sequence_id=w"), hn, b, len, &r);
    su_expect(&r, 404, "not open");
    /* a later chunk of the wrong C: 422, and the stream goes on unchanged */
    su_http(NULL, "POST", su_url(&s, "/refine?sequence_id=w&sequence_start=1"), hn, b, len, &r);
    su_expect(&r, 200, NULL);
    su_http(NULL, "POST", su_url(&s, "/refine?sequence_id=w"), hn, bw, lw, &r);
    su_expect(&r, 422, "expects C=64");
    reply rp;
    send_chunk(&s, D_NPY, "m", "w", 0, 1, x, 2, &rp);
    ck_assert_int_eq(rp.status, 200);
    ck_assert_int_eq(rp.received, 4);
    ck_assert_int_eq(rp.k, 4);
    free(rp.rows);
    free(bw);
    /* another model than the stream's: 409 */
    su_http(NULL, "POST", su_url(&s, "/refine?sequence_id=p&sequence_start=1&model=m"), hn, b,
            len, &r);
    su_expect(&r, 200, NULL);
    send_chunk(&s, D_V2JSON, "other", "p", 0, 0, x, 1, &rp);
    ck_assert_int_eq(rp.status, 409);
    ck_assert_msg(strstr(rp.body, "runs on model m version 1"), "%s", rp.body);
    su_http(NULL, "POST", su_url(&s, "/refine?sequence_id=p&version=2"), hn, b, len, &r);
    su_expect(&r, 409, "pinned");
    /* an unknown model at the start: 404 */
    send_chunk(&s, D_V2JSON, "nosuch", "q", 1, 0, x, 1, &rp);
    ck_assert_int_eq(rp.status, 404);
    /* a v2 stream asking for a TSM output */
    const char *tsm = "{\"parameters\":{\"sequence_id\":\"v\",\"sequence_start\":true},"
                      "\"inputs\":[{\"name\":\"features\",\"shape\":[0,64],\"datatype\":\"FP32\","
                      "\"data\":[]}],\"outputs\":[{\"name\":\"tsm\"}]}";
    su_http(NULL, "POST", su_url(&s, "/v2/models/m/infer"), hj, tsm, strlen(tsm), &r);
    su_expect(&r, 400, "refined only");
    free(b);
    free(x);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(streams_pin_version)
{
    char *dir = tu_tmpdir(), data[4200];
    snprintf(data, sizeof data, "%s/data", dir);
    write_model(data, "m", 1, 5);
    write_model(data, "m", 2, 77);
    char p[4300];
    snprintf(p, sizeof p, "%s/models/m/active", data);
    ck_assert_int_eq(tu_write(p, "1\n", 2), 0);
    su_server s;
    const char *args[] = {"--data", data, NULL};
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    int T = 20;
    float *x = su_input(T, C, 9), *y = malloc((size_t)T * C * 4);
    reply rp;
    int got = 0;
    for (int t = 0; t < T; t++) {
        if (t == 7) { /* activation mid-stream */
            su_resp r;
            const char *h[] = {"Content-Type: application/json", NULL};
            su_http(NULL, "POST", su_url(&s, "/models/m/activate"), h, "{\"version\": 2}", 14, &r);
            su_expect(&r, 200, NULL);
            /* a new stream starts on the new version */
            send_chunk(&s, D_NPY, "m", "fresh", 1, 1, x, 3, &rp);
            ck_assert_int_eq(rp.status, 200);
            free(rp.rows);
        }
        send_chunk(&s, t % 2 ? D_V2BIN : D_NPY, "m", "pinned", t == 0, t == T - 1,
                   x + (size_t)t * C, 1, &rp);
        ck_assert_msg(rp.status == 200, "%s", rp.body);
        if (rp.k)
            memcpy(y + (size_t)got * C, rp.rows, (size_t)rp.k * C * 4);
        got += rp.k;
        free(rp.rows);
    }
    ck_assert_int_eq(got, T);
    float *v1 = offline(&s, "m", "1", x, T), *v2 = offline(&s, "m", "2", x, T);
    ck_assert_msg(!memcmp(y, v1, (size_t)T * C * 4), "the stream left its pinned version 1");
    ck_assert(memcmp(v1, v2, (size_t)T * C * 4) != 0);
    free(v1);
    free(v2);
    free(x);
    free(y);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* The bytes of a file (NULL if unreadable); *len its size. */
static void *file_bytes(const char *data, const char *rel, size_t *len)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", data, rel);
    return tu_read(p, len);
}

START_TEST(streams_kill9_keeps_models_and_datasets)
{
    char *dir = tu_tmpdir(), data[4200];
    snprintf(data, sizeof data, "%s/data", dir);
    write_model(data, "m", 1, 5);
    /* a second version and a second model to upload, made aside */
    char aside[4300];
    snprintf(aside, sizeof aside, "%s/aside", dir);
    write_model(aside, "m", 2, 41);
    write_model(aside, "up", 1, 42);
    su_server s;
    const char *args[] = {"--data", data, NULL};
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    su_resp r;
    const char *oct[] = {"Content-Type: application/octet-stream", NULL};
    const char *hn[] = {"Content-Type: application/x-npy", NULL};
    const char *hj[] = {"Content-Type: application/json", NULL};
    size_t mlen[2];
    void *mb[2] = {file_bytes(aside, "models/m/2.safetensors", &mlen[0]),
                   file_bytes(aside, "models/up/1.safetensors", &mlen[1])};
    ck_assert(mb[0] && mb[1]);
    su_http(NULL, "PUT", su_url(&s, "/models/m/versions/2"), oct, mb[0], mlen[0], &r);
    su_expect(&r, 201, NULL);
    su_http(NULL, "PUT", su_url(&s, "/models/up/versions/1"), oct, mb[1], mlen[1], &r);
    su_expect(&r, 201, NULL);
    su_http(NULL, "POST", su_url(&s, "/models/m/activate"), hj, "{\"version\": 2}", 14, &r);
    su_expect(&r, 200, NULL);
    float *x = su_input(10, C, 4);
    size_t len;
    void *b = su_npy_of(x, 10, C, &len);
    su_http(NULL, "PUT", su_url(&s, "/datasets/d/items/v1"), hn, b, len, &r);
    su_expect(&r, 201, NULL);
    size_t dlen;
    void *dbytes = file_bytes(data, "datasets/d/v1.npy", &dlen);
    ck_assert_ptr_nonnull(dbytes);
    /* what the models answer before the kill */
    float *m2 = offline(&s, "m", NULL, x, 10), *m1 = offline(&s, "m", "1", x, 10),
          *up = offline(&s, "up", NULL, x, 10);
    /* three streams open, on each version, when solad is killed */
    static const char *const ids[3] = {"live", "old", "other"};
    const char *starts[3] = {"/refine?model=m&sequence_id=live&sequence_start=1",
                             "/refine?model=m&version=1&sequence_id=old&sequence_start=1",
                             "/refine?model=up&sequence_id=other&sequence_start=1"};
    void *b6;
    size_t len6;
    b6 = su_npy_of(x, 6, C, &len6);
    for (int i = 0; i < 3; i++) {
        su_http(NULL, "POST", su_url(&s, starts[i]), hn, b6, len6, &r);
        su_expect(&r, 200, NULL);
    }
    free(b6);
    ck_assert(su_metric(&s, "solad_streams_open") == 3);
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    s.pid = 0;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    /* the open streams are gone, each with the message docs/streaming.md shows */
    ck_assert(su_metric(&s, "solad_streams_open") == 0);
    reply rp;
    for (int i = 0; i < 3; i++) {
        send_chunk(&s, i == 2 ? D_V2JSON : D_NPY, i == 2 ? "up" : "m", ids[i], 0, 0,
                   x + 6 * C, 4, &rp);
        ck_assert_int_eq(rp.status, 404);
        ck_assert_msg(strstr(rp.body, "is not open") &&
                          strstr(rp.body, "a restart of solad ends them") &&
                          strstr(rp.body, "sequence_start"),
                      "%s", rp.body);
        char path[64];
        snprintf(path, sizeof path, "/streams/%s", ids[i]);
        ck_assert_int_eq(su_get(&s, NULL, path, &r), 404);
        su_resp_free(&r);
    }
    /* models (versions, the activation) and datasets are all there, byte for byte */
    ck_assert_int_eq(su_get(&s, NULL, "/models/m", &r), 200);
    json_t *o = json_loads(r.body, 0, NULL);
    ck_assert_msg(o && json_integer_value(json_object_get(o, "active")) == 2, "%s", r.body);
    json_decref(o);
    su_resp_free(&r);
    ck_assert_int_eq(su_get(&s, NULL, "/models/up/versions/1", &r), 200);
    ck_assert(r.len == mlen[1] && !memcmp(r.body, mb[1], mlen[1]));
    su_resp_free(&r);
    float *a2 = offline(&s, "m", NULL, x, 10), *a1 = offline(&s, "m", "1", x, 10),
          *aup = offline(&s, "up", NULL, x, 10);
    ck_assert(!memcmp(a2, m2, 10 * C * 4) && !memcmp(a1, m1, 10 * C * 4) &&
              !memcmp(aup, up, 10 * C * 4));
    ck_assert_int_eq(su_get(&s, NULL, "/datasets/d", &r), 200);
    ck_assert_msg(strstr(r.body, "\"v1\""), "%s", r.body);
    su_resp_free(&r);
    size_t dlen2;
    void *dbytes2 = file_bytes(data, "datasets/d/v1.npy", &dlen2);
    ck_assert(dbytes2 && dlen2 == dlen && !memcmp(dbytes, dbytes2, dlen));
    /* and a new stream of that id works from the start, on the active version */
    send_chunk(&s, D_NPY, "m", "live", 1, 1, x, 10, &rp);
    ck_assert_int_eq(rp.status, 200);
    ck_assert_int_eq(rp.k, 10);
    ck_assert(!memcmp(m2, rp.rows, 10 * C * 4));
    free(rp.rows);
    free(a1);
    free(a2);
    free(aup);
    free(m1);
    free(m2);
    free(up);
    free(dbytes);
    free(dbytes2);
    free(mb[0]);
    free(mb[1]);
    free(b);
    free(x);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- a watcher (GET /streams/ID/events) ---------------------------------------- */

typedef struct watch {
    const su_server *s;
    su_resp r;
} watch;

static void *watch_main(void *arg)
{
    watch *w = arg;
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, su_url(w->s, "/streams/cam/events"));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, su_write_cb); /* ends after "end" */
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &w->r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    w->r.rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    return NULL;
}

START_TEST(streams_watcher_sees_the_rows)
{
    char *dir = tu_tmpdir(), data[4200];
    snprintf(data, sizeof data, "%s/data", dir);
    write_model(data, "m", 1, 5);
    su_server s;
    const char *args[] = {"--data", data, NULL};
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    int T = 12;
    float *x = su_input(T, C, 5), *y = malloc((size_t)T * C * 4);
    reply rp;
    send_chunk(&s, D_NPY, "m", "cam", 1, 0, x, 5, &rp); /* rows 0: before the watcher */
    ck_assert_int_eq(rp.k, 1);
    free(rp.rows);
    su_resp r;
    ck_assert_int_eq(su_get(&s, NULL, "/streams/nope/events", &r), 404);
    su_resp_free(&r);
    watch w = {.s = &s};
    pthread_t th;
    pthread_create(&th, NULL, watch_main, &w);
    for (int i = 0; i < 500 && su_metric(&s, "solad_streams_watchers") < 1; i++)
        su_sleep_ms(10);
    ck_assert(su_metric(&s, "solad_streams_watchers") == 1);
    int got = 0;
    for (int t = 5; t < T; t += 3) {
        int n = T - t < 3 ? T - t : 3;
        send_chunk(&s, D_NPY, "m", "cam", 0, t + n == T, x + (size_t)t * C, n, &rp);
        ck_assert_int_eq(rp.status, 200);
        memcpy(y + (size_t)got * C, rp.rows, (size_t)rp.k * C * 4);
        got += rp.k;
        free(rp.rows);
    }
    pthread_join(th, NULL);
    ck_assert_msg(w.r.body && strstr(w.r.body, "event: state"), "%s", w.r.body);
    ck_assert_msg(strstr(w.r.body, "event: end\ndata: {\"reason\":\"ended\"}"), "%s", w.r.body);
    /* the rows events, in order, from offset 1: the same numbers as the replies */
    int seen = 0;
    for (const char *p = w.r.body; (p = strstr(p, "event: rows\ndata: "));) {
        p += 18;
        json_error_t je;
        json_t *o = json_loadb(p, strcspn(p, "\n"), 0, &je);
        ck_assert_msg(o != NULL, "%s", je.text);
        ck_assert_int_eq(json_integer_value(json_object_get(o, "offset")), 1 + seen);
        json_t *rows = json_object_get(o, "rows");
        for (size_t i = 0; i < json_array_size(rows); i++, seen++)
            for (int c = 0; c < C; c++)
                ck_assert(y[(size_t)seen * C + c] ==
                          (float)json_number_value(json_array_get(json_array_get(rows, i), c)));
        json_decref(o);
    }
    ck_assert_int_eq(seen, T - 1);
    su_resp_free(&w.r);
    for (int i = 0; i < 500 && su_metric(&s, "solad_streams_watchers") > 0; i++)
        su_sleep_ms(10);
    ck_assert(su_metric(&s, "solad_streams_watchers") == 0);
    free(x);
    free(y);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("streams_server");
    TCase *tc = tcase_create("solad");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, streams_exact_and_concurrent);
    tcase_add_test(tc, streams_limits_idle_and_memory);
    tcase_add_test(tc, streams_off_with_max_streams_0);
    tcase_add_test(tc, streams_bad_calls);
    tcase_add_test(tc, streams_pin_version);
    tcase_add_test(tc, streams_kill9_keeps_models_and_datasets);
    tcase_add_test(tc, streams_watcher_sees_the_rows);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return su_run(suite());
}
