/* test_jobs.c -- training jobs against a real solad: upload -> train -> the new version
 * appears (and is activated when asked) and refines differently from the old one;
 * progress as server-sent events ending with the final state; bad requests; the
 * bounded queue; cancel of a queued and of a running job; kill -9 during training,
 * restart, resume, and the result equals an uninterrupted run; SIGTERM checkpoints and
 * --resume-jobs continues by itself; kill -9 at random moments loses no acknowledged
 * upload, job or model version. Models are tiny (C=16, H=16) so each run is quick. */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "array.h"
#include "npy.h"
#include "npz.h"
#include "rng.h"
#include "serverutil.h"

#define C_DIM 16

__attribute__((format(printf, 2, 3))) static void pathf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, 4096, fmt, ap);
    va_end(ap);
}

/* A dataset of n videos [T_i, C_DIM] as one .npz upload. */
static long put_dataset(const su_server *s, const char *name, int n, unsigned seed)
{
    sola_array a[16];
    char names[16][16];
    const char *np[16];
    for (int i = 0; i < n; i++) {
        int T = 40 + 5 * i;
        a[i] = (sola_array){0};
        a[i].data = su_input(T, C_DIM, seed + (unsigned)i);
        a[i].ndim = 2;
        a[i].shape[0] = T;
        a[i].shape[1] = C_DIM;
        snprintf(names[i], sizeof names[i], "v%d", i);
        np[i] = names[i];
    }
    void *buf;
    size_t len;
    sola_err e = {0};
    ck_assert_int_eq(sola_npz_encode(np, a, n, 1, &buf, &len, &e), 0);
    for (int i = 0; i < n; i++)
        free(a[i].data);
    char path[256];
    snprintf(path, sizeof path, "/datasets/%s", name);
    const char *h[] = {"Content-Type: application/x-npz", NULL};
    su_resp r;
    su_http(NULL, "PUT", su_url(s, path), h, buf, len, &r);
    free(buf);
    long st = r.status;
    ck_assert_msg(st == 201 || st == 200, "PUT %s: %ld %s", path, st, r.body ? r.body : "");
    su_resp_free(&r);
    return st;
}

static long post_json(const su_server *s, const char *path, const char *body, su_resp *r)
{
    const char *h[] = {"Content-Type: application/json", NULL};
    su_http(NULL, "POST", su_url(s, path), h, body, strlen(body), r);
    return r->rc == CURLE_OK ? r->status : 0;
}

/* POST /train: the job id (asserts 202 and the Location header). */
static int submit(const su_server *s, const char *body)
{
    su_resp r;
    post_json(s, "/train", body, &r);
    ck_assert_msg(r.status == 202, "POST /train %s: %ld %s", body, r.status, r.body ? r.body : "");
    char loc[128];
    ck_assert_ptr_nonnull(su_header(&r, "Location", loc, sizeof loc));
    ck_assert_int_eq(strncmp(loc, "/jobs/", 6), 0);
    int id = atoi(loc + 6);
    ck_assert_int_gt(id, 0);
    su_resp_free(&r);
    return id;
}

/* GET /jobs/ID as JSON (new reference), NULL on failure. */
static json_t *job(const su_server *s, int id)
{
    char path[64];
    snprintf(path, sizeof path, "/jobs/%d", id);
    su_resp r;
    json_t *o = NULL;
    if (su_get(s, NULL, path, &r) == 200)
        o = json_loads(r.body, 0, NULL);
    su_resp_free(&r);
    return o;
}

static char *state_of(const su_server *s, int id, char *out, size_t n)
{
    json_t *o = job(s, id);
    snprintf(out, n, "%s", o ? json_string_value(json_object_get(o, "state")) : "(none)");
    json_decref(o);
    return out;
}

/* Polls until the job is in `state`; fails the test after timeout_ms. */
static void wait_state(const su_server *s, int id, const char *state, int timeout_ms)
{
    char st[32] = "";
    for (int t = 0; t < timeout_ms; t += 20) {
        if (!strcmp(state_of(s, id, st, sizeof st), state))
            return;
        su_sleep_ms(20);
    }
    json_t *o = job(s, id);
    char *d = o ? json_dumps(o, 0) : NULL;
    su_dump_log(s);
    ck_abort_msg("job %d: still %s after %d ms, wanted %s: %s", id, st, timeout_ms, state,
                 d ? d : "");
}

static int job_int(const su_server *s, int id, const char *key)
{
    json_t *o = job(s, id);
    int v = (int)json_integer_value(json_object_get(o, key));
    json_decref(o);
    return v;
}

/* The refined features of x under model m, version v (0 = active). */
static float *refine(const su_server *s, const char *m, int v, const float *x, int T)
{
    char extra[128];
    if (v)
        snprintf(extra, sizeof extra, "\"model\":\"%s\",\"version\":%d", m, v);
    else
        snprintf(extra, sizeof extra, "\"model\":\"%s\"", m);
    char *body = su_json_features(x, T, C_DIM, extra);
    su_resp r;
    post_json(s, "/refine", body, &r);
    free(body);
    ck_assert_msg(r.status == 200, "refine %s v%d: %ld %s", m, v, r.status, r.body);
    int rows = 0, cols = 0;
    float *y = su_json_matrix(r.body, "features", &rows, &cols);
    ck_assert_int_eq(rows, T);
    ck_assert_int_eq(cols, C_DIM);
    su_resp_free(&r);
    return y;
}

/* ---- server-sent events -------------------------------------------------------- */

typedef struct sse {
    char *buf;
    size_t len;
    int progress, states;
    char final[32];
} sse;

static size_t sse_cb(char *p, size_t sz, size_t nm, void *ud)
{
    sse *e = ud;
    size_t n = sz * nm;
    char *b = realloc(e->buf, e->len + n + 1);
    if (!b)
        return 0;
    memcpy(b + e->len, p, n);
    e->buf = b;
    e->len += n;
    b[e->len] = '\0';
    /* count complete events; stop at a final state */
    e->progress = e->states = 0;
    for (char *q = b; (q = strstr(q, "event: ")); q += 7) {
        if (!strstr(q, "\n\n"))
            break;
        if (!strncmp(q + 7, "progress", 8))
            e->progress++;
        if (!strncmp(q + 7, "state", 5)) {
            e->states++;
            char *d = strstr(q, "data: ");
            json_t *o = d ? json_loads(d + 6, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
            const char *st = json_string_value(json_object_get(o, "state"));
            if (st && (!strcmp(st, "succeeded") || !strcmp(st, "failed") ||
                       !strcmp(st, "cancelled")))
                snprintf(e->final, sizeof e->final, "%s", st);
            json_decref(o);
        }
    }
    return n;
}

/* Follows GET /jobs/ID/events until the stream ends (the job finished). */
static void follow(const su_server *s, int id, sse *e)
{
    memset(e, 0, sizeof *e);
    char path[64];
    snprintf(path, sizeof path, "/jobs/%d/events", id);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, su_url(s, path));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sse_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, e);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    ck_assert_msg(rc == CURLE_OK, "events: %s", curl_easy_strerror(rc));
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(ct, "text/event-stream");
    curl_easy_cleanup(c);
}

/* ---- tests ------------------------------------------------------------------------ */

START_TEST(upload_train_events_new_version_activate_refine)
{
    char *dir = tu_tmpdir();
    sola_model *m1 = su_make_model(dir, "m", 1, C_DIM, 16, 3, 0.5f);
    ck_assert_ptr_nonnull(m1);
    sola_model_free(m1);
    const char *args[] = {"--data", dir, "--threads", "1", NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    ck_assert_int_eq(put_dataset(&s, "d", 6, 1), 201);
    int id = submit(&s, "{\"dataset\":\"d\",\"base_model\":\"m\",\"epochs\":4,\"batch\":4,"
                        "\"head\":16,\"lr\":0.01,\"activate\":true}");
    sse ev;
    follow(&s, id, &ev);
    ck_assert_msg(!strcmp(ev.final, "succeeded"), "stream ended with \"%s\": %s", ev.final,
                  ev.buf);
    ck_assert_int_ge(ev.states, 1);
    free(ev.buf);

    json_t *o = job(&s, id);
    ck_assert_str_eq(json_string_value(json_object_get(o, "state")), "succeeded");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "model_version")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "base_version")), 1);
    ck_assert_int_eq(json_array_size(json_object_get(o, "loss_history")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "epoch")), 4);
    ck_assert(json_is_null(json_object_get(o, "error")));
    json_decref(o);

    /* the new version is listed and active (asked for), and refines differently */
    su_resp r;
    ck_assert_int_eq(su_get(&s, NULL, "/models/m", &r), 200);
    o = json_loads(r.body, 0, NULL);
    su_resp_free(&r);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "active")), 2);
    ck_assert_int_eq(json_array_size(json_object_get(o, "versions")), 2);
    json_decref(o);
    float *x = su_input(30, C_DIM, 77);
    float *y1 = refine(&s, "m", 1, x, 30), *y2 = refine(&s, "m", 2, x, 30),
          *ya = refine(&s, "m", 0, x, 30);
    ck_assert_double_gt(tu_max_rel_err(y2, y1, 30 * C_DIM), 1e-4);
    ck_assert_mem_eq(ya, y2, sizeof(float) * 30 * C_DIM);
    free(x), free(y1), free(y2), free(ya);

    /* a job without activate: a new version, the active one stays */
    id = submit(&s, "{\"dataset\":\"d\",\"base_model\":\"m\",\"base_version\":1,\"epochs\":1,"
                    "\"batch\":4,\"head\":16}");
    wait_state(&s, id, "succeeded", 30000);
    ck_assert_int_eq(job_int(&s, id, "model_version"), 3);
    ck_assert_int_eq(su_get(&s, NULL, "/models/m", &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"active\":2"));
    su_resp_free(&r);
    /* a fresh model named after the dataset (no base, no output_model) */
    id = submit(&s, "{\"dataset\":\"d\",\"epochs\":1,\"batch\":4,\"head\":16,\"hidden\":8}");
    wait_state(&s, id, "succeeded", 30000);
    ck_assert_int_eq(su_get(&s, NULL, "/models/d", &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"H\":8"));
    su_resp_free(&r);

    /* the other objectives, with small heads and queues */
    id = submit(&s, "{\"dataset\":\"d\",\"objective\":\"sola+cycle\",\"output_model\":\"sc\","
                    "\"epochs\":2,\"batch\":4,\"head\":16,\"hidden\":8,\"queue\":32,"
                    "\"cycle_subset\":8,\"cycle_hidden\":16,\"cycle_dim\":8,"
                    "\"cycle_weight\":0.5}");
    wait_state(&s, id, "succeeded", 30000);
    o = job(&s, id);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(o, "params"), "queue")),
                     32);
    json_decref(o);
    ck_assert_int_eq(su_get(&s, NULL, "/models/sc", &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"objective\":\"sola+cycle\""));
    su_resp_free(&r);

    ck_assert_int_eq(su_get(&s, NULL, "/jobs", &r), 200);
    o = json_loads(r.body, 0, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(o, "jobs")), 4);
    json_decref(o);
    su_resp_free(&r);
    ck_assert_int_eq(su_get(&s, NULL, "/metrics", &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "solad_jobs{state=\"succeeded\"} 4"));
    su_resp_free(&r);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* The collapse guard in the job record, the event stream and the log; with
 * stop_on_collapse the job ends on the last state the guard passed. Thresholds so low
 * that any move of the module fires it at the end of epoch 1. */
START_TEST(collapse_guard_in_record_and_events)
{
    char *dir = tu_tmpdir();
    sola_model *m1 = su_make_model(dir, "m", 1, C_DIM, 16, 3, 0.0f);
    ck_assert_ptr_nonnull(m1);
    sola_model_free(m1);
    const char *args[] = {"--data", dir, "--threads", "1", NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    ck_assert_int_eq(put_dataset(&s, "d", 6, 1), 201);
    int id = submit(&s, "{\"dataset\":\"d\",\"base_model\":\"m\",\"epochs\":3,\"batch\":4,"
                        "\"head\":16,\"lr\":0.01,\"collapse_ratio\":1e-9,"
                        "\"collapse_share\":0}");
    sse ev;
    follow(&s, id, &ev);
    ck_assert_msg(!strcmp(ev.final, "succeeded"), "stream ended with \"%s\": %s", ev.final,
                  ev.buf);
    ck_assert_msg(strstr(ev.buf, "event: warning\n") != NULL, "no warning event: %s", ev.buf);
    ck_assert_ptr_nonnull(strstr(ev.buf, "collapse guard fired at the end of epoch 1"));
    ck_assert_ptr_nonnull(strstr(ev.buf, "\"collapse_guard\""));
    free(ev.buf);
    json_t *o = job(&s, id);
    json_t *g = json_object_get(o, "collapse_guard");
    ck_assert(json_is_object(g));
    ck_assert_int_eq(json_integer_value(json_object_get(g, "fired_epoch")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(g, "epoch")), 3);
    ck_assert(json_real_value(json_object_get(g, "norm_ratio")) > 0);
    ck_assert_double_eq(json_real_value(json_object_get(g, "max_norm_ratio")), 1e-9);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(o, "warning")),
                                 "collapse guard fired"));
    ck_assert_int_eq(json_integer_value(json_object_get(o, "model_version")), 2);
    json_decref(o);
    su_resp r;
    ck_assert_int_eq(su_get(&s, NULL, "/jobs", &r), 200); /* summaries carry it too */
    ck_assert_ptr_nonnull(strstr(r.body, "collapse guard fired"));
    su_resp_free(&r);

    /* stop_on_collapse: the job succeeds with the state before epoch 1 (the base) */
    id = submit(&s, "{\"dataset\":\"d\",\"base_model\":\"m\",\"base_version\":1,\"epochs\":3,"
                    "\"batch\":4,\"head\":16,\"lr\":0.01,\"collapse_ratio\":1e-9,"
                    "\"collapse_share\":0,\"stop_on_collapse\":true}");
    wait_state(&s, id, "succeeded", 30000);
    o = job(&s, id);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(o, "warning")),
                                 "stopped training at the end of epoch 1"));
    ck_assert(json_is_true(json_object_get(json_object_get(o, "params"), "stop_on_collapse")));
    ck_assert_int_eq(json_integer_value(json_object_get(o, "model_version")), 3);
    json_decref(o);
    float *x = su_input(30, C_DIM, 77);
    float *y1 = refine(&s, "m", 1, x, 30), *y3 = refine(&s, "m", 3, x, 30);
    ck_assert_mem_eq(y1, y3, sizeof(float) * 30 * C_DIM);
    free(x), free(y1), free(y3);
    /* a job with default thresholds on this data stays quiet */
    id = submit(&s, "{\"dataset\":\"d\",\"base_model\":\"m\",\"base_version\":1,\"epochs\":2,"
                    "\"batch\":4,\"head\":16}");
    wait_state(&s, id, "succeeded", 30000);
    o = job(&s, id);
    ck_assert(json_is_null(json_object_get(o, "warning")));
    ck_assert(json_is_null(json_object_get(json_object_get(o, "collapse_guard"),
                                           "fired_epoch")));
    ck_assert_double_eq(json_real_value(json_object_get(json_object_get(o, "params"), "lr")),
                        1e-4);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "params"),
                                                       "schedule")), "constant");
    json_decref(o);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(bad_training_requests)
{
    char *dir = tu_tmpdir();
    sola_model *m = su_make_model(dir, "wide", 1, 2 * C_DIM, 16, 3, 0.5f);
    sola_model_free(m);
    const char *args[] = {"--data", dir, NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    put_dataset(&s, "d", 3, 1);
    su_resp r;
    post_json(&s, "/train", "{\"dataset\":\"d\",\"temperature\":0.1}", &r);
    su_expect(&r, 400, "\\\"temperature\\\" is a setting of the cycle objective");
    post_json(&s, "/train", "{\"dataset\":\"d\",\"objective\":\"cycle\",\"queue\":8,"
                            "\"cycle_subset\":16}", &r);
    su_expect(&r, 400, "subset");
    post_json(&s, "/train", "{\"dataset\":\"d\",\"objective\":\"magic\"}", &r);
    su_expect(&r, 400, "unknown objective");
    post_json(&s, "/train", "{\"dataset\":\"d\",\"epoch\":3}", &r);
    su_expect(&r, 400, "unknown field \\\"epoch\\\"");
    post_json(&s, "/train", "{\"dataset\":\"d\",\"lr\":-1}", &r);
    su_expect(&r, 400, "lr");
    post_json(&s, "/train", "{\"dataset\":\"d\",\"window\":4,\"positions\":8}", &r);
    su_expect(&r, 400, NULL);
    post_json(&s, "/train", "{\"epochs\":3}", &r);
    su_expect(&r, 400, "\\\"dataset\\\" is required");
    post_json(&s, "/train", "{\"dataset\":\"../d\"}", &r);
    su_expect(&r, 400, "dataset");
    post_json(&s, "/train", "{\"dataset\":", &r);
    su_expect(&r, 400, "malformed JSON");
    post_json(&s, "/train", "{\"dataset\":\"nope\"}", &r);
    su_expect(&r, 404, "nope");
    post_json(&s, "/train", "{\"dataset\":\"d\",\"base_model\":\"nope\"}", &r);
    su_expect(&r, 404, "nope");
    post_json(&s, "/train", "{\"dataset\":\"d\",\"base_model\":\"wide\"}", &r);
    su_expect(&r, 422, "C=32");
    const char *hx[] = {"Content-Type: text/plain", NULL};
    su_http(NULL, "POST", su_url(&s, "/train"), hx, "{}", 2, &r);
    su_expect(&r, 415, NULL);
    ck_assert_int_eq(su_get(&s, NULL, "/jobs/7", &r), 404);
    su_resp_free(&r);
    ck_assert_int_eq(su_get(&s, NULL, "/jobs/x1", &r), 404);
    su_resp_free(&r);
    ck_assert_int_eq(su_get(&s, NULL, "/jobs/7/events", &r), 404);
    su_resp_free(&r);
    su_http(NULL, "DELETE", su_url(&s, "/jobs/7"), NULL, NULL, 0, &r);
    su_expect(&r, 404, "no job 7");
    post_json(&s, "/jobs/7/resume", "{}", &r);
    su_expect(&r, 404, NULL);
    ck_assert_int_eq(su_get(&s, NULL, "/jobs", &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "{\"jobs\":[]}"));
    su_resp_free(&r);
    ck_assert_int_eq(su_stop(&s), 0);

    /* no data directory: nowhere to keep datasets, jobs or models */
    const char *none[] = {"--dim", "16", NULL};
    ck_assert_int_eq(su_start(&s, dir, none), 0);
    post_json(&s, "/train", "{\"dataset\":\"d\"}", &r);
    su_expect(&r, 409, "--data");
    ck_assert_int_eq(su_get(&s, NULL, "/jobs", &r), 200);
    su_resp_free(&r);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(queue_bound_and_cancel)
{
    char *dir = tu_tmpdir();
    const char *args[] = {"--data", dir, "--job-queue", "1", NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    put_dataset(&s, "d", 4, 1);
    const char *longjob = "{\"dataset\":\"d\",\"output_model\":\"out\",\"epochs\":1000000,"
                          "\"batch\":2,\"head\":16,\"hidden\":16}";
    int a = submit(&s, longjob);
    wait_state(&s, a, "running", 30000);
    int b = submit(&s, longjob);
    char st[32];
    ck_assert_str_eq(state_of(&s, b, st, sizeof st), "queued");
    su_resp r;
    post_json(&s, "/train", longjob, &r);
    char h[64];
    ck_assert_msg(r.status == 503, "third job: %ld %s", r.status, r.body);
    ck_assert_ptr_nonnull(su_header(&r, "Retry-After", h, sizeof h));
    ck_assert_ptr_nonnull(strstr(r.body, "--job-queue"));
    su_resp_free(&r);

    /* a queued job is dropped at once */
    su_http(NULL, "DELETE", su_url(&s, "/jobs/2"), NULL, NULL, 0, &r);
    su_expect(&r, 200, "\"state\":\"cancelled\"");
    ck_assert_int_eq(b, 2);
    /* a running one stops within a step */
    su_http(NULL, "DELETE", su_url(&s, "/jobs/1"), NULL, NULL, 0, &r);
    su_expect(&r, 202, "\"cancel_requested\":true");
    wait_state(&s, a, "cancelled", 30000);
    ck_assert_int_eq(su_get(&s, NULL, "/models/out", &r), 404); /* no version registered */
    su_resp_free(&r);
    su_http(NULL, "DELETE", su_url(&s, "/jobs/1"), NULL, NULL, 0, &r);
    su_expect(&r, 409, "already cancelled");
    post_json(&s, "/jobs/1/resume", "{}", &r);
    su_expect(&r, 409, "only an interrupted job");
    /* its files are gone: only the records remain */
    char p[4096];
    pathf(p, "%s/jobs/1.ckpt.safetensors", dir);
    ck_assert_int_ne(access(p, F_OK), 0);
    pathf(p, "%s/jobs/1.data", dir);
    ck_assert_int_ne(access(p, F_OK), 0);
    /* the queue has room again */
    int c = submit(&s, "{\"dataset\":\"d\",\"epochs\":1,\"batch\":2,\"head\":16,\"hidden\":8}");
    wait_state(&s, c, "succeeded", 30000);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Parameters of model NAME version V as stored (for bit-exact comparisons). */
static sola_model *stored(const char *dir, const char *name, int v)
{
    char p[4096];
    pathf(p, "%s/models/%s/%d.safetensors", dir, name, v);
    sola_err e = {0};
    sola_model *m = sola_model_load(p, &e);
    ck_assert_msg(m != NULL, "%s: %s", p, e.msg);
    return m;
}

START_TEST(kill9_during_training_then_resume_equals_uninterrupted)
{
    char *dir = tu_tmpdir();
    const char *args[] = {"--data", dir, NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    put_dataset(&s, "d", 8, 5);
    /* a finished job and its model version: must survive the kill */
    int done = submit(&s, "{\"dataset\":\"d\",\"output_model\":\"early\",\"epochs\":1,"
                          "\"batch\":2,\"head\":16,\"hidden\":16}");
    wait_state(&s, done, "succeeded", 30000);
    const char *spec = "{\"dataset\":\"d\",\"output_model\":\"%s\",\"epochs\":400,\"batch\":2,"
                       "\"head\":16,\"hidden\":16,\"lr\":0.001,\"seed\":9,\"checkpoint_every\":1}";
    char body[512];
    snprintf(body, sizeof body, spec, "resumed");
    int id = submit(&s, body);
    wait_state(&s, id, "running", 30000);
    while (job_int(&s, id, "epoch") < 3)
        su_sleep_ms(5);
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    s.pid = 0;

    ck_assert_int_eq(su_start(&s, dir, args), 0);
    char st[32];
    ck_assert_str_eq(state_of(&s, id, st, sizeof st), "interrupted");
    ck_assert_str_eq(state_of(&s, done, st, sizeof st), "succeeded");
    json_t *o = job(&s, id);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(o, "error")), "resume"));
    json_decref(o);
    su_resp r;
    ck_assert_int_eq(su_get(&s, NULL, "/models/early", &r), 200);
    su_resp_free(&r);
    ck_assert_int_eq(su_get(&s, NULL, "/datasets/d", &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"n_items\":8"));
    su_resp_free(&r);

    post_json(&s, "/jobs/2/resume", "{}", &r);
    su_expect(&r, 202, "\"resume\":true"); /* queued, or already picked up */
    wait_state(&s, id, "succeeded", 60000);
    o = job(&s, id);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "runs")), 2);
    ck_assert_int_ge(json_integer_value(json_object_get(json_object_get(o, "resumed_from"),
                                                        "epoch")), 1);
    ck_assert_int_eq(json_array_size(json_object_get(o, "loss_history")), 400);
    json_decref(o);

    /* the same job without the interruption gives the same weights, bit for bit */
    snprintf(body, sizeof body, spec, "straight");
    int ref = submit(&s, body);
    wait_state(&s, ref, "succeeded", 60000);
    sola_model *a = stored(dir, "resumed", 1), *b = stored(dir, "straight", 1);
    ck_assert_uint_eq(a->nparams, b->nparams);
    ck_assert_msg(!memcmp(a->params, b->params, a->nparams * sizeof(float)),
                  "resumed weights differ from an uninterrupted run (max rel err %g)",
                  tu_max_rel_err(a->params, b->params, a->nparams));
    sola_model_free(a);
    sola_model_free(b);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(sigterm_checkpoints_and_resume_jobs_continues)
{
    char *dir = tu_tmpdir();
    const char *args[] = {"--data", dir, NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    put_dataset(&s, "d", 6, 2);
    int id = submit(&s, "{\"dataset\":\"d\",\"epochs\":1000000,\"batch\":2,\"head\":16,"
                        "\"hidden\":16,\"checkpoint_every\":0}");
    wait_state(&s, id, "running", 30000);
    while (job_int(&s, id, "epoch") < 3)
        su_sleep_ms(5);
    ck_assert_int_eq(su_stop(&s), 0); /* SIGTERM: drain, checkpoint, exit 0 */
    char p[4096];
    pathf(p, "%s/jobs/%d.ckpt.safetensors", dir, id);
    ck_assert_msg(access(p, F_OK) == 0, "no checkpoint at %s after SIGTERM", p);
    pathf(p, "%s/jobs/%d.json", dir, id);
    json_t *rec = json_load_file(p, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(rec, "state")), "interrupted");
    json_decref(rec);

    /* --resume-jobs: it continues by itself, from where it stopped */
    const char *again[] = {"--data", dir, "--resume-jobs", NULL};
    ck_assert_int_eq(su_start(&s, dir, again), 0);
    wait_state(&s, id, "running", 30000);
    json_t *o = NULL;
    for (int t = 0; t < 3000; t += 10, su_sleep_ms(10)) {
        json_decref(o);
        o = job(&s, id);
        if (json_integer_value(json_object_get(o, "runs")) == 2 &&
            json_integer_value(json_object_get(json_object_get(o, "resumed_from"), "epoch")) > 0)
            break;
    }
    ck_assert_int_ge(json_integer_value(json_object_get(json_object_get(o, "resumed_from"),
                                                        "epoch")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "runs")), 2);
    json_decref(o);
    su_resp r;
    char jp[64];
    snprintf(jp, sizeof jp, "/jobs/%d", id);
    su_http(NULL, "DELETE", su_url(&s, jp), NULL, NULL, 0, &r);
    su_expect(&r, 202, NULL);
    wait_state(&s, id, "cancelled", 30000);
    pathf(p, "%s/jobs/%d.ckpt.safetensors", dir, id);
    ck_assert_int_ne(access(p, F_OK), 0); /* removed once the job is over */
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- replicas sharing a data directory ------------------------------------------------- */

static int runner_pid(const su_server *s, int id)
{
    json_t *o = job(s, id);
    const char *r = json_string_value(json_object_get(o, "runner"));
    int pid = r && strchr(r, ':') ? atoi(strchr(r, ':') + 1) : 0;
    json_decref(o);
    return pid;
}

START_TEST(replicas_share_jobs_and_one_runs_them)
{
    char *dir = tu_tmpdir();
    const char *args[] = {"--data", dir, "--resume-jobs", NULL};
    su_server a, b;
    ck_assert_int_eq(su_start(&a, dir, args), 0); /* a takes the lock: it starts first */
    ck_assert_int_eq(su_start(&b, dir, args), 0);
    put_dataset(&b, "d", 4, 1);
    const char *endless = "{\"dataset\":\"d\",\"epochs\":1000000,\"batch\":2,\"head\":16,"
                          "\"hidden\":16,\"checkpoint_every\":1}";
    int j1 = submit(&b, endless); /* accepted by b, run by a */
    wait_state(&a, j1, "running", 30000);
    wait_state(&b, j1, "running", 30000);
    ck_assert_int_eq(runner_pid(&b, j1), a.pid);
    int j2 = submit(&b, endless); /* waits behind j1, on both */
    char st[32];
    ck_assert_str_eq(state_of(&a, j2, st, sizeof st), "queued");
    /* b cancels what a runs, and what waits */
    su_resp r;
    su_http(NULL, "DELETE", su_url(&b, "/jobs/1"), NULL, NULL, 0, &r);
    su_expect(&r, 202, "cancel_requested");
    wait_state(&b, j1, "cancelled", 30000);
    wait_state(&a, j2, "running", 30000);
    /* a dies: b takes over and resumes j2 from its checkpoint (--resume-jobs) */
    while (job_int(&a, j2, "epoch") < 3)
        su_sleep_ms(5);
    kill(a.pid, SIGKILL);
    waitpid(a.pid, NULL, 0);
    a.pid = 0;
    for (int t = 0; t < 30000 && runner_pid(&b, j2) != b.pid; t += 20)
        su_sleep_ms(20);
    ck_assert_int_eq(runner_pid(&b, j2), b.pid);
    wait_state(&b, j2, "running", 30000);
    json_t *o = job(&b, j2);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "runs")), 2);
    json_decref(o);
    su_http(NULL, "DELETE", su_url(&b, "/jobs/2"), NULL, NULL, 0, &r);
    su_expect(&r, 202, NULL);
    wait_state(&b, j2, "cancelled", 30000);
    ck_assert_int_eq(su_stop(&b), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- kill -9 at random moments ------------------------------------------------------ */

typedef struct chaos {
    su_server *s;
    int round;
    atomic_int stop;
    /* acknowledged (2xx) before the kill */
    char items[64][32];
    int nitems;
    int jobs[64];
    int njobs;
} chaos;

static void *chaos_ops(void *arg)
{
    chaos *c = arg;
    float *x = su_input(30, C_DIM, (unsigned)c->round);
    void *npy;
    size_t len;
    int64_t sh[2] = {30, C_DIM};
    sola_err e = {0};
    sola_npy_encode(x, 2, sh, &npy, &len, &e);
    free(x);
    const char *hn[] = {"Content-Type: application/x-npy", NULL};
    for (int k = 0; !atomic_load(&c->stop) && k < 16; k++) {
        char name[32], path[96];
        snprintf(name, sizeof name, "r%dk%d", c->round, k);
        snprintf(path, sizeof path, "/datasets/d/items/%s", name);
        su_resp r;
        su_http(NULL, "PUT", su_url(c->s, path), hn, npy, len, &r);
        if (r.rc == CURLE_OK && r.status / 100 == 2 && c->nitems < 64)
            snprintf(c->items[c->nitems++], sizeof c->items[0], "%s", name);
        su_resp_free(&r);
        if (k % 4 == 0) {
            post_json(c->s, "/train",
                      "{\"dataset\":\"d\",\"output_model\":\"chaos\",\"epochs\":2,\"batch\":4,"
                      "\"head\":16,\"hidden\":8}",
                      &r);
            char loc[64];
            if (r.rc == CURLE_OK && r.status == 202 && su_header(&r, "Location", loc, sizeof loc) &&
                c->njobs < 64)
                c->jobs[c->njobs++] = atoi(loc + 6);
            su_resp_free(&r);
        }
    }
    free(npy);
    return NULL;
}

START_TEST(kill9_at_random_moments_loses_nothing_acknowledged)
{
    char *dir = tu_tmpdir();
    const char *args[] = {"--data", dir, "--resume-jobs", NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    put_dataset(&s, "d", 4, 3);
    sola_rng rng;
    sola_rng_seed(&rng, 42);
    static chaos c[5];
    int succeeded[256] = {0}, nsucc = 0, versions[256] = {0};
    for (int round = 0; round < 5; round++) {
        memset(&c[round], 0, sizeof c[round]);
        c[round].s = &s;
        c[round].round = round;
        pthread_t th;
        pthread_create(&th, NULL, chaos_ops, &c[round]);
        su_sleep_ms(20 + (int)(sola_rng_u64(&rng) % 200));
        kill(s.pid, SIGKILL);
        waitpid(s.pid, NULL, 0);
        s.pid = 0;
        atomic_store(&c[round].stop, 1);
        pthread_join(th, NULL);
        ck_assert_int_eq(su_start(&s, dir, args), 0);

        /* every acknowledged item of every round is there */
        su_resp r;
        ck_assert_int_eq(su_get(&s, NULL, "/datasets/d", &r), 200);
        for (int k = 0; k <= round; k++)
            for (int i = 0; i < c[k].nitems; i++) {
                char needle[48];
                snprintf(needle, sizeof needle, "\"name\":\"%s\"", c[k].items[i]);
                ck_assert_msg(strstr(r.body, needle), "round %d: item %s acknowledged, then lost",
                              round, c[k].items[i]);
            }
        su_resp_free(&r);
        /* every acknowledged job is listed; what had succeeded still has, with its model */
        for (int k = 0; k <= round; k++)
            for (int i = 0; i < c[k].njobs; i++) {
                json_t *o = job(&s, c[k].jobs[i]);
                ck_assert_msg(o != NULL, "round %d: job %d acknowledged, then lost", round,
                              c[k].jobs[i]);
                json_decref(o);
            }
        for (int i = 0; i < nsucc; i++) {
            json_t *o = job(&s, succeeded[i]);
            ck_assert_str_eq(json_string_value(json_object_get(o, "state")), "succeeded");
            ck_assert_int_eq(json_integer_value(json_object_get(o, "model_version")), versions[i]);
            json_decref(o);
            char p[4096];
            pathf(p, "%s/models/chaos/%d.safetensors", dir, versions[i]);
            ck_assert_msg(access(p, F_OK) == 0, "model version %d lost", versions[i]);
        }
        /* note what has succeeded by now, for the next rounds */
        ck_assert_int_eq(su_get(&s, NULL, "/jobs", &r), 200);
        json_t *o = json_loads(r.body, 0, NULL), *j;
        size_t i;
        nsucc = 0;
        json_array_foreach(json_object_get(o, "jobs"), i, j) {
            if (!strcmp(json_string_value(json_object_get(j, "state")), "succeeded") && nsucc < 256) {
                succeeded[nsucc] = (int)json_integer_value(json_object_get(j, "id"));
                versions[nsucc++] = (int)json_integer_value(json_object_get(j, "model_version"));
            }
        }
        json_decref(o);
        su_resp_free(&r);
    }
    /* versions are distinct: a registration cut short was not repeated */
    for (int a = 0; a < nsucc; a++)
        for (int b = a + 1; b < nsucc; b++)
            ck_assert_int_ne(versions[a], versions[b]);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("jobs");
    TCase *t = tcase_create("jobs");
    tcase_set_timeout(t, 180);
    tcase_add_test(t, upload_train_events_new_version_activate_refine);
    tcase_add_test(t, bad_training_requests);
    tcase_add_test(t, collapse_guard_in_record_and_events);
    tcase_add_test(t, queue_bound_and_cancel);
    tcase_add_test(t, kill9_during_training_then_resume_equals_uninterrupted);
    tcase_add_test(t, sigterm_checkpoints_and_resume_jobs_continues);
    tcase_add_test(t, kill9_at_random_moments_loses_nothing_acknowledged);
    tcase_add_test(t, replicas_share_jobs_and_one_runs_them);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return su_run(suite());
}
