/* test_safetensors.c -- reading files laid out as the safetensors package writes
 * them, float conversions, the malformed corpus, our writer's layout, and a
 * struct+json+numpy reader checking the format rules on what we write. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "fmtcheck.h"
#include "fsutil.h"
#include "safetensors.h"

START_TEST(fixtures_load_exactly)
{
    json_t *ex = fc_expected();
    const char *name;
    json_t *v;
    int seen = 0;
    json_object_foreach(ex, name, v) {
        if (!sola_has_ext(name, ".safetensors"))
            continue;
        char *p = fc_fmt(name);
        sola_st_file f;
        sola_err e = {0};
        ck_assert_msg(sola_st_open(p, &f, &e) == 0, "%s: %s", name, e.msg);
        json_t *ts = json_object_get(v, "tensors"), *meta = json_object_get(v, "metadata");
        ck_assert_int_eq(f.n, (int)json_object_size(ts));
        ck_assert_int_eq(f.nmeta, (int)json_object_size(meta));
        const char *k;
        json_t *mv;
        json_object_foreach(meta, k, mv)
            ck_assert_str_eq(sola_st_meta(&f, k), json_string_value(mv));
        for (int i = 1; i < f.n; i++) /* sorted by name, as the package lists them */
            ck_assert_int_lt(strcmp(f.t[i - 1].name, f.t[i].name), 0);
        json_object_foreach(ts, k, mv) {
            const sola_st_tensor *t = sola_st_find(&f, k);
            ck_assert_msg(t != NULL, "%s: tensor %s not found", name, k);
            ck_assert_str_eq(t->dtype_str, json_string_value(json_object_get(mv, "dtype")));
            fc_check_shape(k, t->ndim, t->shape, json_object_get(mv, "shape"));
            json_t *vals = json_object_get(mv, "values");
            size_t n = sola_st_numel(t);
            float *out = malloc((n ? n : 1) * sizeof *out);
            int rc = sola_st_to_f32(t, out, &e);
            if (vals) {
                ck_assert_msg(rc == 0, "%s/%s: %s", name, k, e.msg);
                fc_check_values(k, out, n, vals);
            } else { /* integer tensors are listed but not converted */
                ck_assert_int_eq(rc, SOLA_EUNSUP);
                ck_assert_ptr_nonnull(strstr(e.msg, k));
            }
            free(out);
        }
        ck_assert_ptr_null(sola_st_find(&f, "missing"));
        ck_assert_ptr_null(sola_st_meta(&f, "missing"));
        sola_st_close(&f);
        free(p);
        seen++;
    }
    ck_assert_int_eq(seen, 2);
    json_decref(ex);
}
END_TEST

/* F16 / BF16 / F64 conversions for the values a reader would check by eye. */
START_TEST(conversion_values)
{
    char *p = fc_fmt("model.safetensors");
    sola_st_file f;
    sola_err e = {0};
    ck_assert_int_eq(sola_st_open(p, &f, &e), 0);
    float out[4];
    const sola_st_tensor *t = sola_st_find(&f, "a_f16");
    ck_assert_int_eq(t->dtype, SOLA_DT_F16);
    ck_assert_int_eq(sola_st_to_f32(t, out, &e), 0);
    ck_assert(out[0] == 1.0f && out[1] == -0.5f && out[2] == 65504.0f);
    ck_assert(out[3] == 5.960464477539063e-08f);
    t = sola_st_find(&f, "b_bf16");
    ck_assert_int_eq(t->dtype, SOLA_DT_BF16);
    ck_assert_int_eq(sola_st_to_f32(t, out, &e), 0);
    ck_assert(out[0] == 1.0f && out[1] == -3.140625f);
    t = sola_st_find(&f, "c_f64");
    ck_assert_int_eq(t->dtype, SOLA_DT_F64);
    ck_assert_int_eq(sola_st_to_f32(t, out, &e), 0);
    ck_assert(out[0] == (float)(1.0 / 3.0) && isinf(out[1]) && out[1] < 0 && out[2] == 2.0f);
    t = sola_st_find(&f, "e_scalar");
    ck_assert_int_eq(t->ndim, 0);
    ck_assert_uint_eq(sola_st_numel(t), 1);
    t = sola_st_find(&f, "d_i64");
    ck_assert_int_eq(t->dtype, SOLA_DT_OTHER);
    ck_assert_str_eq(t->dtype_str, "I64");
    ck_assert_int_eq(sola_st_to_f32(t, out, &e), SOLA_EUNSUP);
    ck_assert_ptr_nonnull(strstr(e.msg, "dtype I64 is not a float type"));
    ck_assert_str_eq(sola_st_meta(&f, "format"), "sola");
    sola_st_close(&f);
    free(p);
}
END_TEST

START_TEST(malformed_corpus_refused)
{
    int n;
    fc_case *cs = fc_manifest("st", &n);
    ck_assert_int_ge(n, 20);
    for (int i = 0; i < n; i++) {
        char *p = fc_bad(cs[i].file);
        sola_st_file f;
        sola_err e = {0};
        int rc = sola_st_open(p, &f, &e);
        fc_check_error(&cs[i], rc, &e);
        ck_assert_ptr_null(f.t);
        free(p);
    }
    free(cs);
}
END_TEST

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Our layout: header length % 8 == 0, "__metadata__" first, tensors sorted by name
 * with contiguous offsets from 0 to the end of the file. */
START_TEST(encode_layout_and_roundtrip)
{
    float w[6] = {1, 2, 3, 4, 5, 6}, b[2] = {-1, 0.5f}, al[1] = {0.25f};
    sola_st_out t[3] = {
        {"zeta", 2, {2, 3}, w},
        {"alpha", 1, {1}, al},
        {"conv_network.0.bias", 1, {2}, b},
    };
    const char *mk[2] = {"format", "dilation1"}, *mv[2] = {"sola", "2"};
    void *buf;
    size_t len;
    sola_err e = {0};
    ck_assert_int_eq(sola_st_encode(t, 3, mk, mv, 2, &buf, &len, &e), 0);
    const unsigned char *u = buf;
    uint64_t hl = le64(u);
    ck_assert_uint_eq(hl % 8, 0);
    ck_assert_uint_eq(len, 8 + hl + 4 * (6 + 2 + 1));
    const char *head = "{\"__metadata__\":{\"format\":\"sola\",\"dilation1\":\"2\"},";
    ck_assert_mem_eq(u + 8, head, strlen(head));
    const char *h = (const char *)u + 8;
    const char *pa = memmem(h, hl, "\"alpha\"", 7), *pb = memmem(h, hl, "\"conv_network", 13),
               *pz = memmem(h, hl, "\"zeta\"", 6);
    ck_assert(pa && pb && pz && pa < pb && pb < pz);
    ck_assert_ptr_nonnull(memmem(h, hl, "\"data_offsets\":[0,4]", 20));
    ck_assert_ptr_nonnull(memmem(h, hl, "\"data_offsets\":[4,12]", 21));
    ck_assert_ptr_nonnull(memmem(h, hl, "\"data_offsets\":[12,36]", 22));
    size_t close = hl; /* the JSON ends with '}' and only spaces pad it */
    while (close > 0 && h[close - 1] == ' ')
        close--;
    ck_assert_int_eq(h[close - 1], '}');
    ck_assert_uint_lt(hl - close, 8);
    sola_st_file f;
    ck_assert_int_eq(sola_st_parse(buf, len, "mem", &f, &e), 0);
    ck_assert_int_eq(f.n, 3);
    ck_assert_str_eq(sola_st_meta(&f, "dilation1"), "2");
    const sola_st_tensor *z = sola_st_find(&f, "zeta");
    ck_assert_int_eq(z->ndim, 2);
    ck_assert_int_eq(z->shape[1], 3);
    float out[6];
    ck_assert_int_eq(sola_st_to_f32(z, out, &e), 0);
    ck_assert_mem_eq(out, w, sizeof w);
    sola_st_close(&f);
    free(buf);
}
END_TEST

START_TEST(writer_refuses_bad_input)
{
    float w[2] = {1, 2};
    void *buf;
    size_t len;
    sola_err e = {0};
    sola_st_out dup[2] = {{"a", 1, {2}, w}, {"a", 1, {2}, w}};
    ck_assert_int_eq(sola_st_encode(dup, 2, NULL, NULL, 0, &buf, &len, &e), SOLA_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "'a' is used twice"));
    sola_st_out res[1] = {{"__metadata__", 1, {2}, w}};
    ck_assert_int_eq(sola_st_encode(res, 1, NULL, NULL, 0, &buf, &len, &e), SOLA_EINVAL);
    sola_st_out neg[1] = {{"a", 1, {-2}, w}};
    ck_assert_int_eq(sola_st_encode(neg, 1, NULL, NULL, 0, &buf, &len, &e), SOLA_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "'a'"));
    const char *mk[2] = {"k", "k"}, *mv[2] = {"1", "2"};
    sola_st_out ok[1] = {{"a", 1, {2}, w}};
    ck_assert_int_eq(sola_st_encode(ok, 1, mk, mv, 2, &buf, &len, &e), SOLA_EINVAL);
    /* a refused save leaves no file behind and names the path */
    char *dir = tu_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    ck_assert_int_eq(sola_st_save(path, dup, 2, NULL, NULL, 0, &e), SOLA_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "m.safetensors"));
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(sola_st_save(path, ok, 1, NULL, NULL, 0, &e), 0);
    sola_st_file f;
    ck_assert_int_eq(sola_st_open(path, &f, &e), 0);
    ck_assert_int_eq(f.n, 1);
    ck_assert_int_eq(f.nmeta, 0);
    sola_st_close(&f);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Every truncation of a valid file is refused (exactly-sized copies, for ASan). */
START_TEST(every_prefix_refused)
{
    char *p = fc_fmt("model.safetensors");
    size_t len;
    unsigned char *full = tu_read(p, &len);
    ck_assert_ptr_nonnull(full);
    for (size_t k = 0; k < len; k++) {
        unsigned char *cut = malloc(k ? k : 1);
        memcpy(cut, full, k);
        sola_st_file f;
        sola_err e = {0};
        int rc = sola_st_parse(cut, k, "cut.safetensors", &f, &e);
        ck_assert_msg(rc != 0, "prefix of %zu bytes accepted", k);
        ck_assert_ptr_nonnull(strstr(e.msg, "cut.safetensors: "));
        free(cut);
    }
    free(full);
    free(p);
}
END_TEST

/* A reader written from the format description (struct + json + numpy, as the
 * safetensors package lays files out) accepts what we write. */
START_TEST(python_reader_accepts_our_files)
{
    if (!fc_have_numpy("safetensors output"))
        return;
    char *dir = tu_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    float w[24], b[4], al[1] = {0.5f};
    for (int i = 0; i < 24; i++)
        w[i] = (float)i / 8.0f - 1.0f;
    for (int i = 0; i < 4; i++)
        b[i] = (float)i;
    sola_st_out t[3] = {
        {"conv_network.0.weight", 3, {4, 3, 2}, w},
        {"conv_network.0.bias", 1, {4}, b},
        {"alpha", 1, {1}, al},
    };
    const char *mk[1] = {"format"}, *mv[1] = {"sola"};
    sola_err e = {0};
    ck_assert_int_eq(sola_st_save(path, t, 3, mk, mv, 1, &e), 0);
    int rc = tu_system(
        "/usr/bin/python3 -c \"\n"
        "import sys, json, struct, numpy as np\n"
        "raw = open(sys.argv[1], 'rb').read()\n"
        "(n,) = struct.unpack('<Q', raw[:8])\n"
        "assert (8 + n) %% 8 == 0, 'header not 8-byte aligned'\n"
        "assert raw[8:9] == b'{', 'header must start with {'\n"
        "hdr = json.loads(raw[8:8 + n])\n"
        "keys = list(hdr)\n"
        "assert keys[0] == '__metadata__' and hdr['__metadata__'] == {'format': 'sola'}\n"
        "names = keys[1:]\n"
        "assert names == sorted(names), names\n"
        "data, pos = raw[8 + n:], 0\n"
        "for k in names:\n"
        "    t = hdr[k]\n"
        "    b, e = t['data_offsets']\n"
        "    assert b == pos and e >= b, (k, b, e, pos)\n"
        "    assert t['dtype'] == 'F32'\n"
        "    assert e - b == 4 * int(np.prod(t['shape'])), k\n"
        "    pos = e\n"
        "assert pos == len(data), 'data area not covered exactly'\n"
        "def get(k):\n"
        "    b, e = hdr[k]['data_offsets']\n"
        "    return np.frombuffer(data[b:e], '<f4').reshape(hdr[k]['shape'])\n"
        "w = get('conv_network.0.weight')\n"
        "assert w.shape == (4, 3, 2)\n"
        "assert np.array_equal(w.ravel(), np.arange(24, dtype=np.float32) / 8 - 1)\n"
        "assert np.array_equal(get('conv_network.0.bias'), np.arange(4, dtype=np.float32))\n"
        "assert get('alpha')[0] == 0.5\n"
        "\" %s",
        path);
    ck_assert_msg(rc == 0, "the Python reader refused or misread %s (exit %d)", path, rc);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_add_test(tc, fixtures_load_exactly);
    tcase_add_test(tc, conversion_values);
    tcase_add_test(tc, malformed_corpus_refused);
    tcase_add_test(tc, encode_layout_and_roundtrip);
    tcase_add_test(tc, writer_refuses_bad_input);
    tcase_add_test(tc, every_prefix_refused);
    tcase_add_test(tc, python_reader_accepts_our_files);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
