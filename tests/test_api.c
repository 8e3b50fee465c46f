/* test_api.c -- the HTTP API without a server: the float printer round-trips every
 * float32, the JSON feature scanner accepts what it should and refuses the rest with
 * a message naming the place, routing gives 404/405/Allow, auth gives 401, content
 * negotiation, and the handlers' replies against a fake backend equal sola_refine. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "npy.h"
#include "npz.h"
#include "refine.h"
#include "testutil.h"

/* ---- float printer ----------------------------------------------------------- */

static void check_roundtrip(float v)
{
    char buf[32];
    int n = api_fmt_float(v, buf);
    ck_assert_int_eq((int)strlen(buf), n);
    ck_assert_int_le(n, 16);
    float back = strtof(buf, NULL);
    uint32_t a, b;
    memcpy(&a, &v, 4);
    memcpy(&b, &back, 4);
    if (a != b)
        ck_abort_msg("%.9g (0x%08x) printed as %s reads back as 0x%08x", (double)v, a, buf, b);
}

START_TEST(float_printer_round_trips)
{
    const float edges[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.1f, 1e-5f, 1e-6f, 123456789.0f,
                           1e9f, 1e10f, 3.4028235e38f, -3.4028235e38f, 1.17549435e-38f,
                           1.4e-45f, 2.8e-45f, 9.99999944e-01f, 0.099999994f, 999999.94f,
                           16777216.0f, 1e-45f, 0.3f, 2.0f / 3.0f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        check_roundtrip(edges[i]);
    /* every power of ten and its neighbours, where log10 is most likely off by one */
    for (int k = -45; k <= 38; k++) {
        float p = (float)pow(10.0, k);
        check_roundtrip(p);
        check_roundtrip(nextafterf(p, 0));
        check_roundtrip(nextafterf(p, INFINITY));
    }
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 300000; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        uint32_t bits = (uint32_t)s;
        float v;
        memcpy(&v, &bits, 4);
        if (isfinite(v))
            check_roundtrip(v);
    }
    char buf[32];
    api_fmt_float(NAN, buf);
    ck_assert_str_eq(buf, "null");
    api_fmt_float(0.5f, buf);
    ck_assert_str_eq(buf, "0.5");
    api_fmt_float(-2.0f, buf);
    ck_assert_str_eq(buf, "-2");
    api_fmt_float(1e20f, buf);
    ck_assert_str_eq(buf, "1.00000002e20");
}
END_TEST

static void check_fast(const char *text)
{
    float fast, ref = strtof(text, NULL);
    if (!api_parse_float_fast(text, strlen(text), &fast))
        return; /* declined: the caller uses strtof */
    uint32_t a, b;
    memcpy(&a, &fast, 4);
    memcpy(&b, &ref, 4);
    if (a != b)
        ck_abort_msg("\"%s\": fast path gives %.9g (0x%08x), strtof %.9g (0x%08x)", text,
                     (double)fast, a, (double)ref, b);
}

START_TEST(fast_float_parse_equals_strtof)
{
    uint64_t s = 0x243f6a8885a308d3ull;
    int handled = 0, total = 0;
    char buf[64];
    for (int i = 0; i < 300000; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        /* what clients print: %.9g / %.17g / short forms of random floats */
        uint32_t bits = (uint32_t)s;
        float v;
        memcpy(&v, &bits, 4);
        if (!isfinite(v))
            continue;
        static const char *fmts[] = {"%.9g", "%.17g", "%.6g", "%.8e", "%.12f"};
        snprintf(buf, sizeof buf, fmts[i % 5], (double)v);
        check_fast(buf);
        /* random decimals of up to 19 digits with exponents around the fast range */
        unsigned long long m = s >> (s & 31);
        int e = (int)((s >> 40) % 61) - 30;
        snprintf(buf, sizeof buf, "%s%llue%d", (s >> 63) ? "-" : "", m, e);
        check_fast(buf);
        float f;
        total++;
        handled += api_parse_float_fast(buf, strlen(buf), &f);
    }
    /* near float rounding midpoints: the exact midpoint cut to 13..19 digits, so that
     * the double nearest to the text is often the midpoint itself */
    for (int i = 0; i < 20000; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        uint32_t bits = (uint32_t)(s % 0x7f000000u) + 0x00800000u;
        float lo;
        memcpy(&lo, &bits, 4);
        double mid = ((double)lo + (double)nextafterf(lo, INFINITY)) / 2;
        for (int d = 12; d <= 18; d++) { /* 13..19 digits */
            snprintf(buf, sizeof buf, "%.*e", d, mid);
            check_fast(buf);
        }
    }
    const char *edge[] = {"0", "-0", "0.0", "1", "-1.5", "3.4028234e38", "3.40282357e38",
                          "1.17549435e-38", "1e-39", "123456789012345678", "0.000000001",
                          "16777217", "16777216.5", "9007199254740993", "0.1e1", "1E+2"};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        check_fast(edge[i]);
    ck_assert_int_gt(handled, total / 4); /* it is a fast path, not a rare one */
}
END_TEST

/* ---- JSON features ----------------------------------------------------------- */

static int parse(const char *text, sola_array *a, json_t **rest, sola_err *e)
{
    memset(e, 0, sizeof *e);
    return api_parse_features_json(text, strlen(text), a, rest, e);
}

START_TEST(json_features_2d_and_3d)
{
    sola_array a;
    json_t *rest;
    sola_err e;
    ck_assert_int_eq(parse(" {\"model\": \"m\\u0031\", \"features\" : [[1, -2.5e0],[3,4e-1]],"
                           "\"tsm\":\"both\", \"x\": {\"y\": [1, {\"z\": null}]}}\n",
                           &a, &rest, &e),
                     0);
    ck_assert_int_eq(a.ndim, 2);
    ck_assert_int_eq(a.shape[0], 2);
    ck_assert_int_eq(a.shape[1], 2);
    ck_assert(a.data[0] == 1.0f && a.data[1] == -2.5f && a.data[2] == 3.0f &&
              a.data[3] == 0.4f);
    ck_assert_str_eq(json_string_value(json_object_get(rest, "model")), "m1");
    ck_assert_str_eq(json_string_value(json_object_get(rest, "tsm")), "both");
    ck_assert_ptr_nonnull(json_object_get(rest, "x"));
    json_decref(rest);
    sola_array_free(&a);

    ck_assert_int_eq(parse("{\"features\":[[[1,2,3]],[[4,5,6]]]}", &a, &rest, &e), 0);
    ck_assert_int_eq(a.ndim, 3);
    ck_assert_int_eq(a.shape[0], 2);
    ck_assert_int_eq(a.shape[1], 1);
    ck_assert_int_eq(a.shape[2], 3);
    ck_assert(a.data[5] == 6.0f);
    json_decref(rest);
    sola_array_free(&a);
}
END_TEST

static void expect_bad(const char *text, const char *needle)
{
    sola_array a;
    json_t *rest;
    sola_err e;
    int rc = parse(text, &a, &rest, &e);
    if (rc == 0)
        ck_abort_msg("accepted: %s", text);
    ck_assert_int_eq(rc, SOLA_EFORMAT);
    if (!strstr(e.msg, needle))
        ck_abort_msg("for %s: message \"%s\" lacks \"%s\"", text, e.msg, needle);
    ck_assert_ptr_null(rest);
    ck_assert_ptr_null(a.data);
}

START_TEST(json_features_refused_with_place)
{
    expect_bad("", "ends at byte 0");
    expect_bad("[[1,2]]", "expected a JSON object");
    expect_bad("{\"features\": [[1,2],[3]]}", "features[1] has 1 elements but earlier rows have 2");
    expect_bad("{\"features\": [[1,2],[3,\"4\"]]}", "features[1][1] is not a number");
    expect_bad("{\"features\": [[1,2],]}", "expected a value after ','");
    expect_bad("{\"features\": []}", "features is an empty array");
    expect_bad("{\"features\": [[]]}", "features[0] is an empty array");
    expect_bad("{\"features\": [1,2]}", "[T][C] array of rows");
    expect_bad("{\"features\": [[[[1]]]]}", "deeper than [B][T][C]");
    expect_bad("{\"features\": [[1e39]]}", "outside the float32 range");
    expect_bad("{\"features\": [[01]]}", "expected ',' or ']'");
    expect_bad("{\"features\": [[1,2]], \"features\": [[1,2]]}", "appears twice");
    expect_bad("{\"model\": \"m\"}", "missing \"features\"");
    expect_bad("{\"features\": [[1]]} x", "trailing data");
    expect_bad("{\"features\": [[1]], \"m\": \"\\q\"}", "bad escape");
    expect_bad("{\"features\": [[1]], \"m\": tru}", "expected a JSON value");
    expect_bad("{\"features\": [[NaN]]}", "is not a number");
    expect_bad("{\"features\": [[1]],}", "expected a string");
}
END_TEST

START_TEST(json_features_every_prefix_is_refused)
{
    /* The scanner must stop at the end of what it was given, whatever the cut. */
    const char *doc = "{\"model\":\"a\\\"b\",\"features\":[[1.5e-3,-2],[3,4]],\"x\":[true,"
                      "false,null,{\"k\":\"v\"}]}";
    size_t n = strlen(doc);
    for (size_t k = 0; k < n; k++) {
        char *cut = malloc(k + 1);
        memcpy(cut, doc, k);
        cut[k] = '\0';
        sola_array a;
        json_t *rest;
        sola_err e = {0};
        /* pass k, not strlen: the terminating NUL is outside the given length */
        int rc = api_parse_features_json(cut, k, &a, &rest, &e);
        ck_assert_msg(rc != 0, "prefix of %zu bytes accepted", k);
        ck_assert_int_ne(e.msg[0], 0);
        free(cut);
    }
    sola_array a;
    json_t *rest;
    sola_err e = {0};
    ck_assert_int_eq(api_parse_features_json(doc, n, &a, &rest, &e), 0);
    json_decref(rest);
    sola_array_free(&a);
}
END_TEST

/* ---- negotiation, names, constant-time compare ------------------------------- */

START_TEST(accept_negotiation)
{
    const int c[] = {API_MT_NPY, API_MT_JSON, API_MT_NPZ};
    ck_assert_int_eq(api_negotiate(NULL, c, 3), API_MT_NPY);
    ck_assert_int_eq(api_negotiate("*/*", c, 3), API_MT_NPY);
    ck_assert_int_eq(api_negotiate("application/json", c, 3), API_MT_JSON);
    ck_assert_int_eq(api_negotiate("text/html, application/*;q=0.5", c, 3), API_MT_NPY);
    ck_assert_int_eq(api_negotiate("application/x-npz, application/json;q=0.9", c, 3),
                     API_MT_NPZ);
    ck_assert_int_eq(api_negotiate("application/json;q=0.2, */*;q=0.1", c, 3), API_MT_JSON);
    ck_assert_int_eq(api_negotiate("Application/JSON", c, 3), API_MT_JSON);
    ck_assert_int_eq(api_negotiate("image/png", c, 3), API_MT_NONE);
    ck_assert_int_eq(api_negotiate("application/x-npy;q=0, */*", c, 3), API_MT_JSON);
    ck_assert_int_eq(api_mt_parse("application/json; charset=utf-8"), API_MT_JSON);
    ck_assert_int_eq(api_mt_parse(" application/x-npy"), API_MT_NPY);
    ck_assert_int_eq(api_mt_parse("text/plain"), API_MT_OTHER);
    ck_assert_int_eq(api_mt_parse(NULL), API_MT_NONE);
}
END_TEST

START_TEST(names_versions_and_token_compare)
{
    sola_err e = {0};
    ck_assert_int_eq(api_check_name("dataset", "thumos-14_i3d.v2", &e), 0);
    ck_assert_int_eq(api_check_name("dataset", "../etc", &e), SOLA_EINVAL);
    ck_assert_int_eq(api_check_name("dataset", "a/b", &e), SOLA_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "dataset"));
    ck_assert_int_eq(api_check_name("item", ".hidden", &e), SOLA_EINVAL);
    ck_assert_int_eq(api_check_name("item", "", &e), SOLA_EINVAL);
    int v = 0;
    ck_assert_int_eq(api_parse_version("v", "12", &v, &e), 0);
    ck_assert_int_eq(v, 12);
    ck_assert_int_eq(api_parse_version("v", "0", &v, &e), SOLA_EINVAL);
    ck_assert_int_eq(api_parse_version("v", "012", &v, &e), SOLA_EINVAL);
    ck_assert_int_eq(api_parse_version("v", "-1", &v, &e), SOLA_EINVAL);
    ck_assert_int_eq(api_parse_version("v", "99999999999", &v, &e), SOLA_EINVAL);
    ck_assert(api_ct_equal("secret", 6, "secret", 6));
    ck_assert(!api_ct_equal("secret", 6, "secreT", 6));
    ck_assert(!api_ct_equal("secret", 6, "secret2", 7));
    ck_assert(!api_ct_equal("", 0, "x", 1));
}
END_TEST

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

START_TEST(routing_params_allow_and_head)
{
    api_request rq = {0};
    int st;
    char allow[128];
    const char *label;
    rq.method = "PUT";
    rq.path = "/models/abc/versions/7";
    const api_route *r = api_route_match(&rq, &st, allow, sizeof allow, &label);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(api_param(&rq, "model"), "abc");
    ck_assert_str_eq(api_param(&rq, "version"), "7");
    ck_assert_str_eq(label, "/models/{model}/versions/{version}");
    rq.method = "DELETE";
    ck_assert_ptr_null(api_route_match(&rq, &st, allow, sizeof allow, &label));
    ck_assert_int_eq(st, 405);
    ck_assert_str_eq(allow, "GET, HEAD, PUT");
    rq.method = "HEAD";
    rq.path = "/models/";
    ck_assert_ptr_nonnull(api_route_match(&rq, &st, allow, sizeof allow, &label));
    rq.method = "GET";
    rq.path = "/models//versions";
    ck_assert_ptr_null(api_route_match(&rq, &st, allow, sizeof allow, &label));
    ck_assert_int_eq(st, 404);
    ck_assert_str_eq(label, "unmatched");
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
    json_decref(j);
    api_response_clear(&rs);
}
END_TEST

START_TEST(npy_header_reads_back)
{
    const int64_t shapes[3][3] = {{7, 0, 0}, {3, 5, 0}, {2, 3, 4}};
    for (int nd = 1; nd <= 3; nd++) {
        char hdr[192];
        size_t hl = api_npy_header(nd, shapes[nd - 1], hdr);
        ck_assert_uint_eq(hl % 64, 0);
        size_t n = 1;
        for (int d = 0; d < nd; d++)
            n *= (size_t)shapes[nd - 1][d];
        char *buf = malloc(hl + n * 4);
        memcpy(buf, hdr, hl);
        float *f = (float *)(void *)(buf + hl);
        for (size_t i = 0; i < n; i++)
            f[i] = (float)i - 3.5f;
        sola_array a;
        sola_err e = {0};
        ck_assert_msg(sola_npy_parse(buf, hl + n * 4, "h", 0, &a, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(a.ndim, nd);
        for (int d = 0; d < nd; d++)
            ck_assert_int_eq(a.shape[d], shapes[nd - 1][d]);
        ck_assert_mem_eq(a.data, f, n * 4);
        sola_array_free(&a);
        free(buf);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("api");
    TCase *t = tcase_create("parsing");
    tcase_add_test(t, float_printer_round_trips);
    tcase_add_test(t, fast_float_parse_equals_strtof);
    tcase_add_test(t, json_features_2d_and_3d);
    tcase_add_test(t, json_features_refused_with_place);
    tcase_add_test(t, json_features_every_prefix_is_refused);
    tcase_add_test(t, accept_negotiation);
    tcase_add_test(t, names_versions_and_token_compare);
    tcase_add_test(t, routing_params_allow_and_head);
    tcase_add_test(t, npy_header_reads_back);
    suite_add_tcase(s, t);
    TCase *h = tcase_create("handlers");
    tcase_add_checked_fixture(h, setup, teardown);
    tcase_add_test(h, refine_json_equals_sola_refine_exactly);
    tcase_add_test(h, refine_npy_in_npz_out);
    tcase_add_test(h, batch_equals_separate_refines);
    tcase_add_test(h, error_statuses_name_their_cause);
    tcase_add_test(h, bearer_token_on_mutating_routes);
    tcase_add_test(h, openapi_is_json_listing_routes);
    tcase_add_test(h, tsm_json_replies_are_json);
    suite_add_tcase(s, h);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
