/* test_v2.c -- a v2 client written from the Open Inference Protocol text (KServe
 * "V2", Triton's binary tensor data extension) against a real solad: metadata and
 * health routes, infer with JSON tensors and with binary data (FP32, FP16, FP64 in;
 * binary or JSON out), results equal to sola_refine bit for bit, and the statuses of
 * malformed requests. */
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_helpers.h"
#include "model.h"
#include "refine.h"
#include "serverutil.h"
#include "testutil.h"

#define C_DIM 64

static su_server S;
static char *DIR_;
static sola_model *M;

static void setup(void)
{
    DIR_ = tu_tmpdir();
    M = su_make_model(DIR_, "sola", 1, C_DIM, 64, 5, 0.6f);
    ck_assert_ptr_nonnull(M);
    const char *args[] = {"--data", DIR_, "--rescan-interval", "0", NULL};
    ck_assert_int_eq(su_start(&S, DIR_, args), 0);
}

static void teardown(void)
{
    su_stop(&S);
    sola_model_free(M);
    tu_rmtree(DIR_);
    free(DIR_);
}

/* Inputs whose decimal text is exact in float32 (k/64), so JSON reads them exactly. */
static float *exact_input(int T, unsigned seed)
{
    float *x = malloc(sizeof(float) * (size_t)T * C_DIM);
    for (int i = 0; i < T * C_DIM; i++)
        x[i] = (float)((int)((i * 37u + seed * 101u) % 129u) - 64) / 64.0f;
    return x;
}

static float *local_refine(const float *x, int T)
{
    float *y = malloc(sizeof(float) * (size_t)T * C_DIM);
    sola_ws *ws = sola_ws_new();
    sola_err e = {0};
    ck_assert_int_eq(sola_refine(M, x, T, y, ws, &e), 0);
    sola_ws_free(ws);
    return y;
}

static long post(const char *path, const char *const *hdrs, const void *body, size_t len,
                 su_resp *r)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", S.base, path);
    su_http(NULL, "POST", url, hdrs, body, len, r);
    return r->status;
}

static json_t *body_json(const su_resp *r)
{
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    ck_assert_msg(j != NULL, "reply is not JSON: %.200s", r->body);
    return j;
}

/* An output of a JSON reply, by name (borrowed). */
static json_t *output(json_t *reply, const char *name)
{
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(reply, "outputs"), i, o)
        if (!strcmp(json_string_value(json_object_get(o, "name")), name))
            return o;
    return NULL;
}

START_TEST(metadata_and_health)
{
    su_resp r;
    ck_assert_int_eq(su_get(&S, NULL, "/v2", &r), 200);
    json_t *j = body_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "solad");
    ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "version")));
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "extensions"), 0)),
                     "binary_tensor_data");
    json_decref(j);
    su_resp_free(&r);
    ck_assert_int_eq(su_get(&S, NULL, "/v2/health/live", &r), 200);
    ck_assert_uint_eq(r.len, 0);
    su_resp_free(&r);
    ck_assert_int_eq(su_get(&S, NULL, "/v2/health/ready", &r), 200);
    su_resp_free(&r);

    const char *paths[] = {"/v2/models/sola", "/v2/models/sola/versions/1"};
    for (int p = 0; p < 2; p++) {
        ck_assert_int_eq(su_get(&S, NULL, paths[p], &r), 200);
        j = body_json(&r);
        ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "sola");
        ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "versions"), 0)),
                         "1");
        json_t *in = json_array_get(json_object_get(j, "inputs"), 0);
        ck_assert_str_eq(json_string_value(json_object_get(in, "name")), "features");
        ck_assert_str_eq(json_string_value(json_object_get(in, "datatype")), "FP32");
        json_t *sh = json_object_get(in, "shape");
        ck_assert_int_eq(json_integer_value(json_array_get(sh, 0)), -1);
        ck_assert_int_eq(json_integer_value(json_array_get(sh, 1)), C_DIM);
        const char *outs[] = {"refined", "tsm", "tsm_raw"};
        for (int k = 0; k < 3; k++)
            ck_assert_str_eq(json_string_value(json_object_get(
                                 json_array_get(json_object_get(j, "outputs"), (size_t)k),
                                 "name")),
                             outs[k]);
        json_decref(j);
        su_resp_free(&r);
    }
    ck_assert_int_eq(su_get(&S, NULL, "/v2/models/sola/ready", &r), 200);
    su_resp_free(&r);
    ck_assert_int_eq(su_get(&S, NULL, "/v2/models/sola/versions/1/ready", &r), 200);
    su_resp_free(&r);
    ck_assert_int_eq(su_get(&S, NULL, "/v2/models/nope/ready", &r), 404);
    su_resp_free(&r);
    ck_assert_int_eq(su_get(&S, NULL, "/v2/models/sola/versions/9", &r), 404);
    j = body_json(&r);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "error")));
    json_decref(j);
    su_resp_free(&r);
}
END_TEST

/* The protocol's JSON example, with our tensor: id echoed, all outputs by default,
 * flat row-major data, values identical to sola_refine. Nested data works too. */
START_TEST(infer_json)
{
    const int T = 5;
    float *x = exact_input(T, 1), *want = local_refine(x, T);
    for (int nested = 0; nested < 2; nested++) {
        api_buf b = {0};
        api_buf_puts(&b, "{\"id\":\"42\",\"inputs\":[{\"name\":\"features\",\"shape\":[5,64],"
                         "\"datatype\":\"FP32\",\"data\":[");
        for (int t = 0; t < T; t++) {
            if (nested)
                api_buf_puts(&b, t ? ",[" : "[");
            for (int c = 0; c < C_DIM; c++)
                api_buf_printf(&b, "%s%.9g", (c || (t && !nested)) ? "," : "",
                               (double)x[t * C_DIM + c]);
            if (nested)
                api_buf_puts(&b, "]");
        }
        api_buf_puts(&b, "]}]}");
        su_resp r;
        const char *h[] = {"Content-Type: application/json", NULL};
        ck_assert_int_eq(post("/v2/models/sola/infer", h, b.p, b.len, &r), 200);
        json_t *j = body_json(&r);
        ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "42");
        ck_assert_str_eq(json_string_value(json_object_get(j, "model_name")), "sola");
        ck_assert_str_eq(json_string_value(json_object_get(j, "model_version")), "1");
        ck_assert_int_eq(json_array_size(json_object_get(j, "outputs")), 3);
        json_t *o = output(j, "refined");
        ck_assert_ptr_nonnull(o);
        ck_assert_str_eq(json_string_value(json_object_get(o, "datatype")), "FP32");
        json_t *data = json_object_get(o, "data");
        ck_assert_int_eq(json_array_size(data), T * C_DIM);
        for (int i = 0; i < T * C_DIM; i++) {
            float v = (float)json_real_value(json_array_get(data, (size_t)i));
            if (json_is_integer(json_array_get(data, (size_t)i)))
                v = (float)json_integer_value(json_array_get(data, (size_t)i));
            ck_assert_msg(v == want[i], "refined[%d] = %.9g, sola_refine gives %.9g", i,
                          (double)v, (double)want[i]);
        }
        json_t *ts = output(j, "tsm");
        ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(ts, "shape"), 1)), T);
        ck_assert_int_eq(json_array_size(json_object_get(ts, "data")), T * T);
        ck_assert_ptr_nonnull(output(j, "tsm_raw"));
        json_decref(j);
        su_resp_free(&r);
        api_buf_free(&b);
    }
    free(x);
    free(want);
}
END_TEST

static size_t put_f16(unsigned char *p, float f)
{
    /* the inputs are k/64 in [-1, 1]: exact in half precision, normal or zero */
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t h = (uint16_t)((u >> 16) & 0x8000);
    if (f != 0.0f) {
        int ex = (int)((u >> 23) & 255) - 127 + 15;
        h |= (uint16_t)(ex << 10) | (uint16_t)((u >> 13) & 1023);
    }
    memcpy(p, &h, 2);
    return 2;
}

/* Binary tensor data in (FP32, FP16, FP64) and out: the reply's JSON header says the
 * size, the bytes are sola_refine's, the Content-Type is application/octet-stream. */
START_TEST(infer_binary)
{
    const int T = 7;
    float *x = exact_input(T, 3), *want = local_refine(x, T);
    const char *types[] = {"FP32", "FP16", "FP64"};
    const int sizes[] = {4, 2, 8};
    for (int k = 0; k < 3; k++) {
        size_t nb = (size_t)T * C_DIM * (size_t)sizes[k];
        char hdr[512];
        int hl = snprintf(hdr, sizeof hdr,
                          "{\"inputs\":[{\"name\":\"features\",\"shape\":[%d,%d],\"datatype\":"
                          "\"%s\",\"parameters\":{\"binary_data_size\":%zu}}],\"outputs\":[{"
                          "\"name\":\"refined\",\"parameters\":{\"binary_data\":true}},{\"name\":"
                          "\"tsm\"}]}",
                          T, C_DIM, types[k], nb);
        unsigned char *body = malloc((size_t)hl + nb);
        memcpy(body, hdr, (size_t)hl);
        unsigned char *p = body + hl;
        for (int i = 0; i < T * C_DIM; i++) {
            if (k == 0) {
                memcpy(p, &x[i], 4);
                p += 4;
            } else if (k == 1) {
                p += put_f16(p, x[i]);
            } else {
                double d = x[i];
                memcpy(p, &d, 8);
                p += 8;
            }
        }
        char hv[64];
        snprintf(hv, sizeof hv, "Inference-Header-Content-Length: %d", hl);
        const char *h[] = {"Content-Type: application/octet-stream", hv, NULL};
        su_resp r;
        ck_assert_int_eq(post("/v2/models/sola/versions/1/infer", h, body, (size_t)hl + nb, &r),
                         200);
        char ct[128], ihl[32];
        ck_assert_str_eq(su_header(&r, "Content-Type", ct, sizeof ct), "application/octet-stream");
        ck_assert_ptr_nonnull(su_header(&r, "Inference-Header-Content-Length", ihl, sizeof ihl));
        size_t jl = (size_t)atol(ihl);
        ck_assert_uint_lt(jl, r.len);
        json_t *j = json_loadb(r.body, jl, 0, NULL);
        ck_assert_ptr_nonnull(j);
        json_t *o = json_array_get(json_object_get(j, "outputs"), 0);
        ck_assert_str_eq(json_string_value(json_object_get(o, "name")), "refined");
        ck_assert_ptr_null(json_object_get(o, "data"));
        size_t bds = (size_t)json_integer_value(
            json_object_get(json_object_get(o, "parameters"), "binary_data_size"));
        ck_assert_uint_eq(bds, (size_t)T * C_DIM * 4);
        ck_assert_uint_eq(r.len, jl + bds);
        ck_assert_msg(memcmp(r.body + jl, want, bds) == 0,
                      "%s input: binary refined differs from sola_refine", types[k]);
        /* tsm stayed JSON, as asked */
        ck_assert_int_eq(json_array_size(json_object_get(
                             json_array_get(json_object_get(j, "outputs"), 1), "data")),
                         T * T);
        json_decref(j);
        su_resp_free(&r);
        free(body);
    }

    /* binary_data_output on the request: every output binary; JSON data in */
    api_buf b = {0};
    api_buf_printf(&b, "{\"parameters\":{\"binary_data_output\":true},\"inputs\":[{\"name\":"
                       "\"features\",\"shape\":[1,%d,%d],\"datatype\":\"FP32\",\"data\":[",
                   T, C_DIM);
    for (int i = 0; i < T * C_DIM; i++)
        api_buf_printf(&b, "%s%.9g", i ? "," : "", (double)x[i]);
    api_buf_puts(&b, "]}],\"outputs\":[{\"name\":\"refined\"}]}");
    su_resp r;
    ck_assert_int_eq(post("/v2/models/sola/infer", NULL, b.p, b.len, &r), 200);
    char ihl[32];
    ck_assert_ptr_nonnull(su_header(&r, "Inference-Header-Content-Length", ihl, sizeof ihl));
    size_t jl = (size_t)atol(ihl);
    ck_assert_uint_eq(r.len, jl + (size_t)T * C_DIM * 4);
    ck_assert(memcmp(r.body + jl, want, (size_t)T * C_DIM * 4) == 0);
    ck_assert_ptr_nonnull(strstr(r.body, "\"shape\":[1,7,64]"));
    su_resp_free(&r);
    api_buf_free(&b);
    free(x);
    free(want);
}
END_TEST

typedef struct bad_case {
    const char *what;
    const char *path;
    const char *json;   /* the JSON (header) */
    long hdr;           /* Inference-Header-Content-Length: -1 none, -2 = strlen(json) */
    size_t nbin;        /* binary bytes after the JSON */
    long status;
    const char *says;   /* a piece of the error message */
} bad_case;

START_TEST(malformed_requests)
{
#define IN(dt, shape, rest) \
    "{\"inputs\":[{\"name\":\"features\",\"shape\":" shape ",\"datatype\":\"" dt "\"" rest "}]}"
    const bad_case cases[] = {
        {"wrong datatype", "/v2/models/sola/infer", IN("INT32", "[1,2]", ",\"data\":[1,2]"), -1,
         0, 400, "INT32"},
        {"shape/data mismatch", "/v2/models/sola/infer", IN("FP32", "[2,64]", ",\"data\":[1,2,3]"),
         -1, 0, 400, "3 elements"},
        {"data not numbers", "/v2/models/sola/infer", IN("FP32", "[1,2]", ",\"data\":[1,\"x\"]"),
         -1, 0, 400, "data[1]"},
        {"binary without Inference-Header-Content-Length", "/v2/models/sola/infer",
         IN("FP32", "[1,64]", ",\"parameters\":{\"binary_data_size\":256}"), -1, 256, 400,
         "Inference-Header-Content-Length"},
        {"binary size overflow", "/v2/models/sola/infer",
         IN("FP32", "[100,64]", ",\"parameters\":{\"binary_data_size\":25600}"), -2, 256, 400,
         "only 256"},
        {"binary size not the shape's", "/v2/models/sola/infer",
         IN("FP32", "[1,64]", ",\"parameters\":{\"binary_data_size\":255}"), -2, 255, 400,
         "needs 256"},
        {"bytes left over", "/v2/models/sola/infer",
         IN("FP32", "[1,64]", ",\"parameters\":{\"binary_data_size\":256}"), -2, 260, 400,
         "add up"},
        {"header length past the body", "/v2/models/sola/infer", "{}", 99999, 0, 400,
         "Inference-Header-Content-Length"},
        {"not JSON", "/v2/models/sola/infer", "{\"inputs\":", -1, 0, 400, "line"},
        {"no inputs", "/v2/models/sola/infer", "{\"id\":\"1\"}", -1, 0, 400, "inputs"},
        {"wrong input name", "/v2/models/sola/infer",
         "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,1],\"datatype\":\"FP32\",\"data\":[1]}]}", -1,
         0, 400, "features"},
        {"unknown output", "/v2/models/sola/infer",
         "{\"inputs\":[{\"name\":\"features\",\"shape\":[1,64],\"datatype\":\"FP32\",\"data\":["
         "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,"
         "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}],"
         "\"outputs\":[{\"name\":\"logits\"}]}",
         -1, 0, 400, "refined, tsm or tsm_raw"},
        {"rank 1", "/v2/models/sola/infer", IN("FP32", "[3]", ",\"data\":[1,2,3]"), -1, 0, 422,
         "shape"},
        {"wrong C", "/v2/models/sola/infer", IN("FP32", "[1,3]", ",\"data\":[1,2,3]"), -1, 0, 422,
         "C=64"},
        {"unknown model", "/v2/models/nope/infer", IN("FP32", "[1,3]", ",\"data\":[1,2,3]"), -1,
         0, 404, "nope"},
        {"unknown version", "/v2/models/sola/versions/7/infer",
         IN("FP32", "[1,3]", ",\"data\":[1,2,3]"), -1, 0, 404, "7"},
        {"bad version", "/v2/models/sola/versions/0/infer", IN("FP32", "[1,3]", ",\"data\":[1]"),
         -1, 0, 400, "version"},
    };
#undef IN
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        size_t jl = strlen(c->json);
        char *body = calloc(1, jl + c->nbin + 1);
        memcpy(body, c->json, jl);
        char hv[64];
        const char *h[] = {hv, NULL};
        long hdr = c->hdr == -2 ? (long)jl : c->hdr;
        snprintf(hv, sizeof hv, "Inference-Header-Content-Length: %ld", hdr);
        su_resp r;
        long st = post(c->path, hdr >= 0 ? h : NULL, body, jl + c->nbin, &r);
        ck_assert_msg(st == c->status, "%s: status %ld, expected %ld (%.200s)", c->what, st,
                      c->status, r.body);
        json_t *j = body_json(&r);
        const char *msg = json_string_value(json_object_get(j, "error"));
        ck_assert_msg(msg && strstr(msg, c->says), "%s: error \"%s\" does not mention \"%s\"",
                      c->what, msg ? msg : "(none)", c->says);
        json_decref(j);
        su_resp_free(&r);
        free(body);
    }
    /* a GET on infer is 405 with Allow */
    su_resp r;
    ck_assert_int_eq(su_get(&S, NULL, "/v2/models/sola/infer", &r), 405);
    su_resp_free(&r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("v2");
    TCase *c = tcase_create("protocol");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_set_timeout(c, 60);
    tcase_add_test(c, metadata_and_health);
    tcase_add_test(c, infer_json);
    tcase_add_test(c, infer_binary);
    tcase_add_test(c, malformed_requests);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    return su_run(suite());
}
