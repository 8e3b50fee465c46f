/* test_api.c -- the HTTP API's parsing without a server: the float printer and the
 * fast float parser agree with the C library to the bit, the JSON feature scanner
 * accepts what it should and refuses the rest with a message naming the place,
 * content negotiation, names, routing (404/405/Allow) and the .npy header.
 * Handlers are in test_api_handlers.c. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_helpers.h"
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
    return s;
}

int main(void)
{
    return tu_run(suite());
}
