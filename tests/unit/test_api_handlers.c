/* test_api_handlers.c -- the handlers without a server, against a fake backend
 * holding one model: replies equal sola_refine (JSON to the bit), formats and
 * negotiation, every error status with its cause, the bearer token, the OpenAPI
 * document. The server tests (test_server*.c) repeat the essentials over HTTP. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "npy.h"
#include "npz.h"
#include "refine.h"
#include "routes.h"
#include "testutil.h"

/* ---- a fake backend holding one model ---------------------------------------- */

struct api_model {
    int refs;
};

typedef struct fake {
    sola_model *m;
    struct api_model ref;
    int acquired, released;
} fake;

static int f_acquire(void *self, const char *name, int version, api_model **out, sola_err *e)
{
    fake *f = self;
    if ((name && strcmp(name, "m")) || (version && version != 3))
        return sola_errf(e, SOLA_ENOTFOUND, "no model %s version %d", name ? name : "-",
                         version);
    f->acquired++;
    *out = &f->ref;
    return 0;
}
static const sola_model *f_get(void *self, api_model *m, sola_err *e)
{
    (void)m;
    (void)e;
    return ((fake *)self)->m;
}
static const char *f_name(const api_model *m)
{
    (void)m;
    return "m";
}
static int f_version(const api_model *m)
{
    (void)m;
    return 3;
}
static void f_release(void *self, api_model *m)
{
    (void)m;
    ((fake *)self)->released++;
}
static int f_ready(void *self, char *why, size_t n)
{
    (void)self;
    snprintf(why, n, "testing");
    return 0;
}
static json_t *f_health(void *self)
{
    (void)self;
    return json_pack("{s:s}", "status", "ok");
}

static fake F;
static api_backend BE;
static api_ctx CTX;

static void setup(void)
{
    sola_err e = {0};
    F.m = sola_model_new(8, 16, 3, 1, 0, &e);
    sola_model_init(F.m, 7);
    F.m->alpha[0] = 0.8f;
    sola_model_pack(F.m, &e);
    memset(&BE, 0, sizeof BE);
    BE.model_acquire = f_acquire;
    BE.model_get = f_get;
    BE.model_name = f_name;
    BE.model_version = f_version;
    BE.model_release = f_release;
    BE.ready = f_ready;
    BE.health = f_health;
    CTX = (api_ctx){.be = &BE, .self = &F, .max_body = 1 << 20, .max_frames = 100};
}

static void teardown(void)
{
    sola_model_free(F.m);
    memset(&F, 0, sizeof F);
}

typedef struct hdrs {
    const char *ctype, *accept, *auth;
} hdrs;

static const char *hget(void *hctx, const char *name)
{
    hdrs *h = hctx;
    if (!strcasecmp(name, "Content-Type"))
        return h->ctype;
    if (!strcasecmp(name, "Accept"))
        return h->accept;
    if (!strcasecmp(name, "Authorization"))
        return h->auth;
    return NULL;
}

/* Dispatches and, when deferred, runs the work inline as the server would. */
static void call(const char *method, const char *path, const api_kv *q, int nq, hdrs *h,
                 const void *body, size_t len, api_response *rs)
{
    api_request rq = {0};
    rq.method = method;
    rq.path = path;
    rq.query = q;
    rq.nquery = nq;
    rq.header = hget;
    rq.hctx = h;
    rq.body = body;
    rq.body_len = len;
    api_work w;
    memset(rs, 0, sizeof *rs);
    if (api_dispatch(&CTX, &rq, rs, &w) == API_DEFER) {
        sola_ws *ws = sola_ws_new();
        w.run(w.state, ws, rs);
        w.done(w.state);
        sola_ws_free(ws);
    }
}

static float *refine_ref(const float *x, int T)
{
    float *y = malloc(sizeof(float) * (size_t)T * 8);
    sola_ws *ws = sola_ws_new();
    sola_err e = {0};
    ck_assert_int_eq(sola_refine(F.m, x, T, y, ws, &e), 0);
    sola_ws_free(ws);
    return y;
}

static const char *hval(const api_response *rs, const char *name)
{
    for (int i = 0; i < rs->nheaders; i++)
        if (!strcasecmp(rs->hname[i], name))
            return rs->hval[i];
    return NULL;
}

START_TEST(refine_json_equals_sola_refine_exactly)
{
    float x[5 * 8];
    for (int i = 0; i < 40; i++)
        x[i] = sinf((float)i * 0.37f) * 3.0f;
    char body[4096];
    size_t o = (size_t)snprintf(body, sizeof body, "{\"tsm\":\"raw\",\"features\":[");
    for (int t = 0; t < 5; t++) {
        o += (size_t)snprintf(body + o, sizeof body - o, "%s[", t ? "," : "");
        for (int c = 0; c < 8; c++)
            o += (size_t)snprintf(body + o, sizeof body - o, "%s%.9g", c ? "," : "",
                                  (double)x[t * 8 + c]);
        o += (size_t)snprintf(body + o, sizeof body - o, "]");
    }
    snprintf(body + o, sizeof body - o, "]}");
    hdrs h = {"application/json", NULL, NULL};
    api_response rs;
    call("POST", "/refine", NULL, 0, &h, body, strlen(body), &rs);
    ck_assert_msg(rs.status == 200, "status %d: %.*s", rs.status, (int)rs.len, (char *)rs.body);
    ck_assert_str_eq(rs.ctype, "application/json");
    ck_assert_str_eq(hval(&rs, "X-Model"), "m");
    ck_assert_str_eq(hval(&rs, "X-Model-Version"), "3");
    ck_assert_int_eq(rs.frames, 5);
    json_t *j = json_loadb(rs.body, rs.len, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "version")), 3);
    json_t *f = json_object_get(j, "features");
    ck_assert_ptr_nonnull(json_object_get(j, "tsm_raw"));
    ck_assert_ptr_null(json_object_get(j, "tsm"));
    float *y = refine_ref(x, 5);
    for (int t = 0; t < 5; t++)
        for (int c = 0; c < 8; c++) {
            /* the printed decimal must read back to the very same float */
            float got = (float)json_real_value(json_array_get(json_array_get(f, t), c));
            json_t *num = json_array_get(json_array_get(f, t), c);
            if (json_is_integer(num))
                got = (float)json_integer_value(num);
            ck_assert_msg(got == y[t * 8 + c], "[%d][%d] %.9g != %.9g", t, c, (double)got,
                          (double)y[t * 8 + c]);
        }
    ck_assert_int_eq(F.acquired, F.released);
    free(y);
    json_decref(j);
    api_response_clear(&rs);
}
END_TEST

START_TEST(refine_npy_in_npz_out)
{
    float x[4 * 8];
    for (int i = 0; i < 32; i++)
        x[i] = (float)i / 7.0f - 2.0f;
    void *npy;
    size_t len;
    sola_err e = {0};
    int64_t shape[2] = {4, 8};
    ck_assert_int_eq(sola_npy_encode(x, 2, shape, &npy, &len, &e), 0);
    hdrs h = {"application/x-npy", "application/x-npz", NULL};
    api_kv q[] = {{"tsm", "both"}};
    api_response rs;
    call("POST", "/refine", q, 1, &h, npy, len, &rs);
    ck_assert_msg(rs.status == 200, "status %d: %.*s", rs.status, (int)rs.len, (char *)rs.body);
    ck_assert_str_eq(rs.ctype, "application/x-npz");
    sola_npz z;
    ck_assert_int_eq(sola_npz_parse(rs.body, rs.len, "reply", &z, &e), 0);
    ck_assert_int_eq(z.n, 3);
    sola_array f = {0}, S = {0};
    ck_assert_int_eq(sola_npz_read(&z, sola_npz_find(&z, "features"), 0, &f, &e), 0);
    ck_assert_int_eq(sola_npz_read(&z, sola_npz_find(&z, "tsm"), 0, &S, &e), 0);
    ck_assert_int_ge(sola_npz_find(&z, "tsm_raw"), 0);
    float *y = refine_ref(x, 4);
    ck_assert_mem_eq(f.data, y, sizeof(float) * 32);
    float Sref[16];
    sola_tsm(y, 4, 8, Sref, &e);
    ck_assert_mem_eq(S.data, Sref, sizeof Sref);
    sola_array_free(&f);
    sola_array_free(&S);
    sola_npz_close(&z);
    api_response_clear(&rs);

    /* a .npy reply cannot carry a TSM: 406 says what to ask for */
    hdrs h2 = {"application/x-npy", NULL, NULL};
    call("POST", "/refine", q, 1, &h2, npy, len, &rs);
    ck_assert_int_eq(rs.status, 406);
    ck_assert_ptr_nonnull(strstr(rs.body, "application/x-npz"));
    api_response_clear(&rs);
    free(npy);
    free(y);
}
END_TEST

START_TEST(batch_equals_separate_refines)
{
    /* [3, 4, 8]: each sequence padded on its own, as three requests would be */
    float x[3 * 4 * 8];
    for (int i = 0; i < 96; i++)
        x[i] = sinf((float)i * 0.71f);
    void *npy;
    size_t len;
    sola_err e = {0};
    int64_t shape[3] = {3, 4, 8};
    ck_assert_int_eq(sola_npy_encode(x, 3, shape, &npy, &len, &e), 0);
    hdrs h = {"application/x-npy", NULL, NULL};
    api_response rs;
    call("POST", "/refine", NULL, 0, &h, npy, len, &rs);
    ck_assert_int_eq(rs.status, 200);
    ck_assert_int_eq(rs.frames, 12);
    sola_array a;
    ck_assert_int_eq(sola_npy_parse(rs.body, rs.len, "reply", 0, &a, &e), 0);
    ck_assert_int_eq(a.ndim, 3);
    for (int b = 0; b < 3; b++) {
        float *y = refine_ref(x + b * 32, 4);
        ck_assert_double_le(tu_max_rel_err(a.data + b * 32, y, 32), 1e-6);
        free(y);
    }
    sola_array_free(&a);
    api_response_clear(&rs);
    free(npy);
}
END_TEST

static void expect_status(const char *method, const char *path, const api_kv *q, int nq,
                          hdrs *h, const char *body, int status, const char *needle)
{
    api_response rs;
    call(method, path, q, nq, h, body, body ? strlen(body) : 0, &rs);
    ck_assert_msg(rs.status == status, "%s %s: status %d, wanted %d: %.*s", method, path,
                  rs.status, status, (int)rs.len, (char *)rs.body);
    json_t *j = json_loadb(rs.body, rs.len, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "error"));
    ck_assert_msg(msg && strstr(msg, needle), "%s %s: error \"%s\" lacks \"%s\"", method, path,
                  msg ? msg : "(none)", needle);
    json_decref(j);
    api_response_clear(&rs);
}

START_TEST(error_statuses_name_their_cause)
{
    hdrs js = {"application/json", NULL, NULL};
    hdrs np = {"application/x-npy", NULL, NULL};
    hdrs form = {"application/x-www-form-urlencoded", NULL, NULL};
    hdrs png = {"application/json", "image/png", NULL};
    expect_status("POST", "/refine", NULL, 0, &js, "{\"features\": [[1,2]", 400, "malformed JSON");
    expect_status("POST", "/refine", NULL, 0, &np, "\x93NUMPY garbage", 400, "request body");
    expect_status("POST", "/refine", NULL, 0, &js, "{\"features\": [[1,2]]}", 422,
                  "C=2 channels but model m version 3 expects C=8");
    expect_status("POST", "/refine", NULL, 0, &js,
                  "{\"model\": \"zz\", \"features\": [[1,2,3,4,5,6,7,8]]}", 404, "no model zz");
    api_kv badv[] = {{"version", "abc"}};
    expect_status("POST", "/refine", badv, 1, &js, "{\"features\": [[1]]}", 400, "version");
    expect_status("POST", "/refine", NULL, 0, &form, "features=1", 415,
                  "application/x-www-form-urlencoded");
    expect_status("POST", "/refine", NULL, 0, &png, "{\"features\": [[1]]}", 406, "Accept");
    expect_status("POST", "/refine", NULL, 0, &js, "{\"features\": [[1]], \"tsn\": 1}", 400,
                  "unknown member \"tsn\"");
    expect_status("POST", "/refine", NULL, 0, &js, "", 400, "empty body");
    /* T limit (max_frames = 100) */
    char big[4096];
    size_t o = (size_t)snprintf(big, sizeof big, "{\"features\":[");
    for (int t = 0; t < 101; t++)
        o += (size_t)snprintf(big + o, sizeof big - o, "%s[1,2,3,4,5,6,7,8]", t ? "," : "");
    snprintf(big + o, sizeof big - o, "]}");
    expect_status("POST", "/refine", NULL, 0, &js, big, 413, "T=101");
    expect_status("GET", "/refine", NULL, 0, &js, NULL, 405, "allowed: POST");
    expect_status("GET", "/no/such/thing", NULL, 0, &js, NULL, 404, "no route");
    api_kv ds[] = {{"dataset", "../x"}, {"item", "a"}};
    expect_status("GET", "/tsm", ds, 2, &js, NULL, 400, "dataset");
    api_kv ds2[] = {{"dataset", "d"}, {"item", "a"}};
    expect_status("GET", "/tsm", ds2, 2, &js, NULL, 404, "without --data");
    expect_status("GET", "/readyz", NULL, 0, &js, NULL, 503, "testing");
}
END_TEST


START_TEST(bearer_token_on_mutating_routes)
{
    CTX.token = "s3cret";
    hdrs none = {"application/json", NULL, NULL};
    hdrs wrong = {"application/json", NULL, "Bearer s3creT"};
    hdrs right = {"application/json", NULL, "bearer s3cret"};
    api_response rs;
    call("POST", "/models/m/activate", NULL, 0, &none, "{\"version\":3}", 13, &rs);
    ck_assert_int_eq(rs.status, 401);
    ck_assert_str_eq(hval(&rs, "WWW-Authenticate"), "Bearer realm=\"solad\"");
    api_response_clear(&rs);
    call("POST", "/models/m/activate", NULL, 0, &wrong, "{\"version\":3}", 13, &rs);
    ck_assert_int_eq(rs.status, 401);
    ck_assert_ptr_nonnull(strstr(hval(&rs, "WWW-Authenticate"), "invalid_token"));
    api_response_clear(&rs);
    /* the right token passes auth; the fake backend has no activate: handler runs */
    api_request rq = {0};
    rq.method = "POST";
    rq.path = "/models/m/activate";
    rq.header = hget;
    rq.hctx = &right;
    const api_route *r = api_route_match(&rq, NULL, NULL, 0, NULL);
    ck_assert_int_eq(api_check_auth(&CTX, &rq, r, &rs), 0);
    /* reads need no token */
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    void *npy;
    size_t len;
    sola_err e = {0};
    int64_t shape[2] = {1, 8};
    sola_npy_encode(x, 2, shape, &npy, &len, &e);
    hdrs np = {"application/x-npy", NULL, NULL};
    call("POST", "/refine", NULL, 0, &np, npy, len, &rs);
    ck_assert_int_eq(rs.status, 200);
    ck_assert_str_eq(rs.ctype, "application/x-npy");
    api_response_clear(&rs);
    free(npy);
    CTX.token = NULL;
}
END_TEST

/* Roles: a read-only model store refuses every mutating route (409, naming the store)
 * and still refines; a train-only process refuses the compute routes (421) and still
 * answers reads and job routes. Auth stays first: no token, 401 whatever the role. */
START_TEST(roles_refuse_what_they_do_not_do)
{
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    void *npy;
    size_t len;
    sola_err e = {0};
    int64_t shape[2] = {1, 8};
    ck_assert_int_eq(sola_npy_encode(x, 2, shape, &npy, &len, &e), 0);
    hdrs np = {"application/x-npy", NULL, NULL};
    hdrs js = {"application/json", NULL, NULL};
    api_response rs;
    static const char *const mutating[][2] = {
        {"PUT", "/models/m/versions/2"}, {"POST", "/models/m/activate"},
        {"PUT", "/datasets/d/items/i"},  {"PUT", "/datasets/d"},
        {"DELETE", "/datasets/d"},       {"POST", "/train"},
        {"DELETE", "/jobs/3"},           {"POST", "/jobs/3/resume"},
    };
    CTX.read_only_store = "/mnt/models";
    for (size_t i = 0; i < sizeof mutating / sizeof mutating[0]; i++) {
        call(mutating[i][0], mutating[i][1], NULL, 0, &js, "{}", 2, &rs);
        ck_assert_msg(rs.status == 409, "%s %s on a read-only store: %d", mutating[i][0],
                      mutating[i][1], rs.status);
        ck_assert_ptr_nonnull(strstr((char *)rs.body, "read-only model store /mnt/models"));
        api_response_clear(&rs);
    }
    call("POST", "/refine", NULL, 0, &np, npy, len, &rs);
    ck_assert_int_eq(rs.status, 200);
    api_response_clear(&rs);
    CTX.token = "t";
    call("PUT", "/models/m/versions/2", NULL, 0, &js, "{}", 2, &rs);
    ck_assert_int_eq(rs.status, 401);
    api_response_clear(&rs);
    CTX.token = NULL;
    CTX.read_only_store = NULL;

    CTX.train_only = 1;
    static const char *const compute[][2] = {
        {"POST", "/refine"}, {"POST", "/tsm"}, {"GET", "/tsm"},
        {"POST", "/v2/models/m/infer"}, {"POST", "/v2/models/m/versions/1/infer"},
    };
    for (size_t i = 0; i < sizeof compute / sizeof compute[0]; i++) {
        call(compute[i][0], compute[i][1], NULL, 0, &np, npy, len, &rs);
        ck_assert_msg(rs.status == 421, "%s %s on a train-only solad: %d", compute[i][0],
                      compute[i][1], rs.status);
        ck_assert_ptr_nonnull(strstr((char *)rs.body, "--train-only"));
        api_response_clear(&rs);
    }
    call("GET", "/openapi.json", NULL, 0, &js, NULL, 0, &rs);
    ck_assert_int_eq(rs.status, 200);
    api_response_clear(&rs);
    CTX.train_only = 0;
    free(npy);
}
END_TEST

START_TEST(tsm_json_replies_are_json)
{
    /* every combination of members: the separators must come out right */
    float x[3 * 8];
    for (int i = 0; i < 24; i++)
        x[i] = cosf((float)i);
    void *npy;
    size_t len;
    sola_err e = {0};
    int64_t shape[2] = {3, 8};
    ck_assert_int_eq(sola_npy_encode(x, 2, shape, &npy, &len, &e), 0);
    const char *paths[] = {"/tsm", "/tsm", "/tsm", "/refine", "/refine", "/refine", "/refine"};
    const char *tsms[] = {"raw", "refined", "both", "none", "raw", "refined", "both"};
    const char *want[][3] = {{"tsm_raw"}, {"tsm"}, {"tsm", "tsm_raw"}, {"features"},
                             {"features", "tsm_raw"}, {"features", "tsm"},
                             {"features", "tsm", "tsm_raw"}};
    hdrs h = {"application/x-npy", "application/json", NULL};
    for (int k = 0; k < 7; k++) {
        api_kv q[] = {{"tsm", tsms[k]}};
        api_response rs;
        call("POST", paths[k], q, 1, &h, npy, len, &rs);
        ck_assert_int_eq(rs.status, 200);
        json_error_t je;
        json_t *j = json_loadb(rs.body, rs.len, 0, &je);
        ck_assert_msg(j != NULL, "%s tsm=%s: not JSON (%s): %.*s", paths[k], tsms[k], je.text,
                      (int)(rs.len > 80 ? 80 : rs.len), (char *)rs.body);
        /* raw only needs no model, so then no model/version either */
        int n = 0;
        for (int i = 0; i < 3 && want[k][i]; i++, n++)
            ck_assert_ptr_nonnull(json_object_get(j, want[k][i]));
        int with_model = strcmp(tsms[k], "raw") != 0 || strcmp(paths[k], "/refine") == 0;
        ck_assert_int_eq((int)json_object_size(j), n + 2 * with_model);
        json_decref(j);
        api_response_clear(&rs);
    }
    free(npy);
}
END_TEST

START_TEST(openapi_is_json_listing_routes)
{
    hdrs h = {NULL, NULL, NULL};
    api_response rs;
    call("GET", "/openapi.json", NULL, 0, &h, NULL, 0, &rs);
    ck_assert_int_eq(rs.status, 200);
    json_error_t je;
    json_t *j = json_loadb(rs.body, rs.len, 0, &je);
    ck_assert_msg(j != NULL, "openapi.json: %s at %d", je.text, je.position);
    json_t *paths = json_object_get(j, "paths");
    ck_assert_ptr_nonnull(json_object_get(paths, "/refine"));
    ck_assert_ptr_nonnull(json_object_get(paths, "/models/{model}/versions/{version}"));
    /* every route of every table is documented, with its method */
    const api_route *tables[] = {api_routes_ops,  api_routes_infer, api_routes_models,
                                 api_routes_datasets, api_routes_jobs, api_routes_web,
                                 api_routes_v2};
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (const api_route *r = tables[t]; r->method; r++) {
            json_t *path = json_object_get(paths, r->pattern);
            ck_assert_msg(path != NULL, "openapi.json lacks the path %s", r->pattern);
            char m[16];
            size_t k = 0;
            for (; r->method[k] && k < sizeof m - 1; k++)
                m[k] = (char)(r->method[k] | 0x20);
            m[k] = 0;
            ck_assert_msg(json_object_get(path, m) != NULL || !strcmp(m, "head"),
                          "openapi.json lacks %s %s", r->method, r->pattern);
        }
    json_decref(j);
    api_response_clear(&rs);
}
END_TEST


static Suite *suite(void)
{
    Suite *s = suite_create("api_handlers");
    TCase *h = tcase_create("handlers");
    tcase_add_checked_fixture(h, setup, teardown);
    tcase_add_test(h, refine_json_equals_sola_refine_exactly);
    tcase_add_test(h, refine_npy_in_npz_out);
    tcase_add_test(h, batch_equals_separate_refines);
    tcase_add_test(h, error_statuses_name_their_cause);
    tcase_add_test(h, bearer_token_on_mutating_routes);
    tcase_add_test(h, roles_refuse_what_they_do_not_do);
    tcase_add_test(h, openapi_is_json_listing_routes);
    tcase_add_test(h, tsm_json_replies_are_json);
    suite_add_tcase(s, h);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
