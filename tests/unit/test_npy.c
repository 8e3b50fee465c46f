/* test_npy.c -- .npy reading (files written by numpy), the malformed corpus, our
 * writer's layout, and numpy reading what we write. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <unistd.h>

#include "fmtcheck.h"
#include "fsutil.h"
#include "npy.h"

/* Every .npy fixture numpy wrote loads to the shape and float32 values numpy says. */
START_TEST(numpy_fixtures_load_exactly)
{
    json_t *ex = fc_expected();
    const char *name;
    json_t *v;
    int seen = 0;
    json_object_foreach(ex, name, v) {
        if (!sola_has_ext(name, ".npy"))
            continue;
        int labels = json_is_true(json_object_get(v, "labels"));
        char *p = fc_fmt(name);
        sola_array a;
        sola_err e = {0};
        /* numpy's astype turns f8 beyond float32's range into inf: so do we, when asked */
        int rc = sola_npy_load(p, (labels ? SOLA_NPY_LABELS : 0) | SOLA_NPY_ALLOW_NONFINITE,
                               &a, &e);
        ck_assert_msg(rc == 0, "%s: %s", name, e.msg);
        fc_check_shape(name, a.ndim, a.shape, json_object_get(v, "shape"));
        fc_check_values(name, a.data, sola_array_numel(&a), json_object_get(v, "values"));
        sola_array_free(&a);
        if (labels) { /* the same file is refused as features */
            rc = sola_npy_load(p, SOLA_NPY_ALLOW_NONFINITE, &a, &e);
            ck_assert_int_eq(rc, SOLA_EUNSUP);
            ck_assert_ptr_nonnull(strstr(e.msg, name));
        }
        free(p);
        seen++;
    }
    ck_assert_int_ge(seen, 15);
    json_decref(ex);
}
END_TEST

/* The conversions, spelled out for the values a user would check by eye. */
START_TEST(conversion_values)
{
    sola_array a;
    sola_err e = {0};
    char *p = fc_fmt("f2_be.npy"); /* [2,4] big-endian half with specials */
    ck_assert_int_eq(sola_npy_load(p, 0, &a, &e), 0);
    ck_assert_int_eq(a.ndim, 2);
    ck_assert(a.data[0] == 1.0f && a.data[1] == -2.5f && a.data[2] == 65504.0f);
    ck_assert(a.data[3] == 5.960464477539063e-08f); /* smallest half subnormal */
    ck_assert(isinf(a.data[5]) && a.data[5] > 0 && isinf(a.data[6]) && a.data[6] < 0);
    sola_array_free(&a);
    free(p);
    p = fc_fmt("f8_le.npy");
    ck_assert_int_eq(sola_npy_load(p, SOLA_NPY_ALLOW_NONFINITE, &a, &e), 0);
    ck_assert(a.data[0] == (float)(1.0 / 3.0));
    ck_assert(isinf(a.data[2])); /* 1e39 overflows float32, as numpy's astype */
    ck_assert(a.data[4] == 0.0f && signbit(a.data[4]));
    sola_array_free(&a);
    free(p);
    p = fc_fmt("labels_i2_be.npy");
    ck_assert_int_eq(sola_npy_load(p, SOLA_NPY_LABELS, &a, &e), 0);
    ck_assert(a.data[1] == -300.0f && a.data[2] == 7.0f);
    sola_array_free(&a);
    free(p);
}
END_TEST

/* An f8 value beyond float32's range is refused, naming the element, unless the
 * caller allows non-finite values (then it becomes inf, as numpy's astype). */
START_TEST(f8_overflow_refused)
{
    sola_array a;
    sola_err e = {0};
    char *p = fc_fmt("f8_le.npy"); /* [2, 3], element [0, 2] = 1e39 */
    ck_assert_int_eq(sola_npy_load(p, 0, &a, &e), SOLA_EFORMAT);
    ck_assert_ptr_null(a.data);
    ck_assert_msg(strstr(e.msg, "f8_le.npy") && strstr(e.msg, "[0, 2]") &&
                      strstr(e.msg, "1e+39") && strstr(e.msg, "float32"),
                  "%s", e.msg);
    ck_assert_int_eq(sola_npy_check_values(p, 0, &e), SOLA_EFORMAT);
    ck_assert_msg(strstr(e.msg, "[0, 2]"), "%s", e.msg);
    ck_assert_int_eq(sola_npy_check_values(p, SOLA_NPY_ALLOW_NONFINITE, &e), 0);
    free(p);
    /* 1e300 in a Fortran-ordered [3, 2]: file index 4 is element [1, 1] */
    double d[6] = {1, 2, 3, 4, 1e300, 6};
    unsigned char img[128 + sizeof d];
    const char *hdr = "{'descr': '<f8', 'fortran_order': True, 'shape': (3, 2), }";
    memset(img, ' ', 128);
    memcpy(img, "\x93NUMPY\x01\x00", 8);
    img[8] = 118;
    img[9] = 0;
    memcpy(img + 10, hdr, strlen(hdr));
    img[127] = '\n';
    memcpy(img + 128, d, sizeof d);
    ck_assert_int_eq(sola_npy_parse(img, sizeof img, "x.npy", 0, &a, &e), SOLA_EFORMAT);
    ck_assert_msg(strstr(e.msg, "x.npy: element [1, 1] is 1e+300"), "%s", e.msg);
    ck_assert_int_eq(sola_npy_parse(img, sizeof img, "x.npy", SOLA_NPY_ALLOW_NONFINITE, &a, &e),
                     0);
    ck_assert(isinf(a.data[1 * 2 + 1]));
    sola_array_free(&a);
}
END_TEST

/* sola_npy_check_values: the first NaN/Inf is named by its coordinates, in any
 * dtype and order; clean files pass; truncated and missing files are refused. */
START_TEST(check_values_names_first_nonfinite)
{
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/x.npy", dir);
    sola_err e = {0};
    /* [40000, 3] f4: bigger than the scan's buffer, the NaN past the first chunk */
    size_t n = 40000 * 3;
    float *x = calloc(n, sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)i * 0.5f;
    int64_t sh[2] = {40000, 3};
    ck_assert_int_eq(sola_npy_save(path, x, 2, sh, &e), 0);
    ck_assert_int_eq(sola_npy_check_values(path, 0, &e), 0);
    ck_assert_uint_eq(sola_first_nonfinite(x, n), n);
    x[30001 * 3 + 2] = NAN;
    x[39999 * 3] = INFINITY;
    ck_assert_uint_eq(sola_first_nonfinite(x, n), 30001 * 3 + 2);
    ck_assert_int_eq(sola_npy_save(path, x, 2, sh, &e), 0);
    ck_assert_int_eq(sola_npy_check_values(path, 0, &e), SOLA_EFORMAT);
    ck_assert_msg(strstr(e.msg, "x.npy: element [30001, 2] is NaN"), "%s", e.msg);
    ck_assert_int_eq(sola_npy_check_values(path, SOLA_NPY_ALLOW_NONFINITE, &e), 0);
    x[30001 * 3 + 2] = 1;
    ck_assert_int_eq(sola_npy_save(path, x, 2, sh, &e), 0);
    ck_assert_int_eq(sola_npy_check_values(path, 0, &e), SOLA_EFORMAT);
    ck_assert_msg(strstr(e.msg, "element [39999, 0] is +Inf"), "%s", e.msg);
    /* a big-endian half with -inf (the f2 fixture) */
    char *p = fc_fmt("f2_be.npy");
    ck_assert_int_eq(sola_npy_check_values(p, 0, &e), SOLA_EFORMAT);
    ck_assert_msg(strstr(e.msg, "element [1, 1] is +Inf"), "%s", e.msg);
    free(p);
    /* truncated: header says more than the file holds */
    size_t len;
    char *img = tu_read(path, &len);
    ck_assert_int_eq(tu_write(path, img, len - 100), 0);
    ck_assert_int_eq(sola_npy_check_values(path, SOLA_NPY_ALLOW_NONFINITE, &e), 0);
    ck_assert_int_eq(sola_npy_check_values(path, 0, &e), SOLA_EFORMAT);
    ck_assert_msg(strstr(e.msg, "truncated"), "%s", e.msg);
    ck_assert_int_eq(tu_write(path, "not npy", 7), 0);
    ck_assert_int_eq(sola_npy_check_values(path, 0, &e), SOLA_EFORMAT);
    unlink(path);
    ck_assert_int_eq(sola_npy_check_values(path, 0, &e), SOLA_ENOTFOUND);
    free(img);
    free(x);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Fortran-ordered files come out in C order: same values as the C-order file. */
START_TEST(fortran_order_is_transposed)
{
    sola_array c, f, f3, c3;
    sola_err e = {0};
    char *pc = fc_fmt("f4_le_c.npy"), *pf = fc_fmt("f4_le_fortran.npy");
    char *pf3 = fc_fmt("f8_be_fortran_3d.npy"), *pc3 = fc_fmt("f4_v2_btc.npy");
    ck_assert_int_eq(sola_npy_load(pc, 0, &c, &e), 0);
    ck_assert_int_eq(sola_npy_load(pf, 0, &f, &e), 0);
    ck_assert_int_eq(f.shape[0], 3);
    ck_assert_int_eq(f.shape[1], 4);
    ck_assert_mem_eq(c.data, f.data, 12 * sizeof(float));
    /* [B,T,C] = [2,3,4]: element [1][2][3] is 23/7 in both */
    ck_assert_int_eq(sola_npy_load(pf3, 0, &f3, &e), 0);
    ck_assert_int_eq(sola_npy_load(pc3, 0, &c3, &e), 0);
    ck_assert_int_eq(f3.ndim, 3);
    ck_assert_mem_eq(f3.data, c3.data, 24 * sizeof(float));
    ck_assert(c3.data[1 * 12 + 2 * 4 + 3] == 23.0f / 7.0f);
    sola_array_free(&c);
    sola_array_free(&f);
    sola_array_free(&f3);
    sola_array_free(&c3);
    free(pc);
    free(pf);
    free(pf3);
    free(pc3);
}
END_TEST

/* Each malformed file is refused with the right code and a message naming the file
 * and the problem. */
START_TEST(malformed_corpus_refused)
{
    int n;
    fc_case *cs = fc_manifest("npy", &n);
    ck_assert_int_ge(n, 25);
    for (int i = 0; i < n; i++) {
        char *p = fc_bad(cs[i].file);
        sola_array a = {0};
        sola_err e = {0};
        int rc = sola_npy_load(p, 0, &a, &e);
        fc_check_error(&cs[i], rc, &e);
        ck_assert_ptr_null(a.data);
        free(p);
    }
    free(cs);
}
END_TEST

/* Our header: v1.0, '<f4', C order, padded with spaces and '\n' to 64 bytes. */
START_TEST(encode_layout_and_roundtrip)
{
    int64_t shapes[4][4] = {{5}, {3, 4}, {2, 3, 4}, {1, 2, 3, 2}};
    for (int nd = 1; nd <= 4; nd++) {
        size_t n = 1;
        for (int i = 0; i < nd; i++)
            n *= (size_t)shapes[nd - 1][i];
        float *x = malloc(n * sizeof *x);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)i * 0.5f - 1.0f;
        void *buf;
        size_t len;
        sola_err e = {0};
        ck_assert_int_eq(sola_npy_encode(x, nd, shapes[nd - 1], &buf, &len, &e), 0);
        const unsigned char *b = buf;
        ck_assert_mem_eq(b, "\x93NUMPY\x01\x00", 8);
        size_t hl = (size_t)b[8] | (size_t)b[9] << 8;
        ck_assert_uint_eq((10 + hl) % 64, 0);
        ck_assert_int_eq(b[10 + hl - 1], '\n');
        ck_assert_uint_eq(len, 10 + hl + n * 4);
        ck_assert_ptr_nonnull(memmem(b + 10, hl, "'descr': '<f4'", 14));
        ck_assert_ptr_nonnull(memmem(b + 10, hl, "'fortran_order': False", 22));
        sola_array a;
        ck_assert_int_eq(sola_npy_parse(buf, len, "mem", 0, &a, &e), 0);
        ck_assert_int_eq(a.ndim, nd);
        for (int i = 0; i < nd; i++)
            ck_assert_int_eq(a.shape[i], shapes[nd - 1][i]);
        ck_assert_mem_eq(a.data, x, n * sizeof *x);
        /* peek reports where the payload is */
        sola_array sh;
        size_t off, dl;
        ck_assert_int_eq(sola_npy_peek(buf, 10 + hl, "mem", &sh, &off, &dl, &e), 0);
        ck_assert_uint_eq(off, 10 + hl);
        ck_assert_uint_eq(dl, n * 4);
        ck_assert_ptr_null(sh.data);
        sola_array_free(&a);
        free(buf);
        free(x);
    }
}
END_TEST

/* sola_npy_data_offset reads the preamble only: the payload's offset of what our
 * writer makes (the same as sola_npy_peek's), of versions 2 and 3, and 0 for a
 * preamble that is not there (yet) or that the parser would refuse. */
START_TEST(data_offset_from_the_preamble)
{
    float x[6] = {1, 2, 3, 4, 5, 6};
    int64_t sh[2] = {2, 3};
    void *buf;
    size_t len, off, dlen;
    sola_err e = {0};
    ck_assert_int_eq(sola_npy_encode(x, 2, sh, &buf, &len, &e), 0);
    sola_array a;
    ck_assert_int_eq(sola_npy_peek(buf, len, "x", &a, &off, &dlen, &e), 0);
    ck_assert_uint_eq(sola_npy_data_offset(buf, len), off);
    ck_assert_uint_eq(sola_npy_data_offset(buf, 10), off); /* the preamble is enough */
    ck_assert_uint_eq(sola_npy_data_offset(buf, 9), 0);
    unsigned char *b = buf;
    b[7] = 1; /* version 1.1 */
    ck_assert_uint_eq(sola_npy_data_offset(buf, len), 0);
    b[7] = 0;
    b[0] = 'x';
    ck_assert_uint_eq(sola_npy_data_offset(buf, len), 0);
    free(buf);
    /* versions 2.0 and 3.0: a 4-byte header length after a 12-byte preamble */
    unsigned char v2[16] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0x74, 0x01, 0, 0};
    ck_assert_uint_eq(sola_npy_data_offset(v2, 11), 0);
    ck_assert_uint_eq(sola_npy_data_offset(v2, 12), 12 + 0x174);
    v2[6] = 3;
    ck_assert_uint_eq(sola_npy_data_offset(v2, 16), 12 + 0x174);
    v2[6] = 4;
    ck_assert_uint_eq(sola_npy_data_offset(v2, 16), 0);
    v2[6] = 2;
    v2[10] = 0x01; /* a header of 64 KiB + 0x174 bytes: over SOLA_NPY_MAX_HEADER */
    ck_assert_uint_eq(sola_npy_data_offset(v2, 16), 0);
}
END_TEST

START_TEST(save_is_atomic_and_loads)
{
    char *dir = tu_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/out.npy", dir);
    float x[6] = {1, 2, 3, 4, 5, 6};
    int64_t sh[2] = {2, 3};
    sola_err e = {0};
    ck_assert_int_eq(sola_npy_save(path, x, 2, sh, &e), 0);
    int64_t sh2[2] = {3, 2};
    ck_assert_int_eq(sola_npy_save(path, x, 2, sh2, &e), 0); /* replaces */
    sola_array a;
    ck_assert_int_eq(sola_npy_load(path, 0, &a, &e), 0);
    ck_assert_int_eq(a.shape[0], 3);
    ck_assert_mem_eq(a.data, x, sizeof x);
    sola_array_free(&a);
    /* a bad shape writes nothing and names the path */
    int64_t neg[2] = {-1, 3};
    char p2[4096];
    snprintf(p2, sizeof p2, "%s/neg.npy", dir);
    ck_assert_int_eq(sola_npy_save(p2, x, 2, neg, &e), SOLA_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "neg.npy"));
    ck_assert_int_ne(access(p2, F_OK), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* A header-only prefix is enough for peek (streamed uploads); parse wants it all. */
START_TEST(peek_on_header_prefix)
{
    /* 100000 x 2048 halves (400 MB) declared; only the 128-byte header is given */
    sola_err e = {0};
    unsigned char hdr[128];
    const char *dict = "{'descr': '<f2', 'fortran_order': False, 'shape': (100000, 2048), }";
    memset(hdr, ' ', sizeof hdr);
    memcpy(hdr, "\x93NUMPY\x01\x00\x76\x00", 10);
    memcpy(hdr + 10, dict, strlen(dict));
    hdr[127] = '\n';
    sola_array s;
    size_t off, dl;
    ck_assert_int_eq(sola_npy_peek(hdr, sizeof hdr, "upload", &s, &off, &dl, &e), 0);
    ck_assert_int_eq(s.shape[0], 100000);
    ck_assert_int_eq(s.shape[1], 2048);
    ck_assert_uint_eq(off, 128);
    ck_assert_uint_eq(dl, (size_t)100000 * 2048 * 2);
    sola_array a;
    ck_assert_int_eq(sola_npy_parse(hdr, sizeof hdr, "upload", 0, &a, &e), SOLA_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "upload: truncated"));
}
END_TEST

/* inspect reports the header as written (for `sola info`). */
START_TEST(inspect_reports_dtype_order_version)
{
    static const struct {
        const char *file;
        int flags, major, fortran;
        const char *descr;
        size_t itemsize;
    } c[] = {
        {"f4_le_fortran.npy", 0, 1, 1, "<f4", 4},
        {"f4_v3.npy", 0, 3, 0, "<f4", 4},
        {"f4_v2_btc.npy", 0, 2, 0, "<f4", 4},
        {"f2_be.npy", 0, 1, 0, ">f2", 2},
        {"labels_bool.npy", SOLA_NPY_LABELS, 1, 0, "|b1", 1},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char *p = fc_fmt(c[i].file);
        size_t len;
        void *buf = tu_read(p, &len);
        sola_npy_info info;
        sola_err e = {0};
        ck_assert_msg(sola_npy_inspect(buf, len, p, c[i].flags, &info, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(info.major, c[i].major);
        ck_assert_int_eq(info.fortran, c[i].fortran);
        ck_assert_str_eq(info.descr, c[i].descr);
        ck_assert_uint_eq(info.itemsize, c[i].itemsize);
        ck_assert_uint_eq(info.data_off + info.data_len, len);
        if (c[i].flags) {
            ck_assert_int_eq(sola_npy_inspect(buf, len, p, 0, &info, &e), SOLA_EUNSUP);
            ck_assert_ptr_nonnull(strstr(e.msg, c[i].file));
        }
        free(buf);
        free(p);
    }
}
END_TEST

/* Every prefix of a valid file is refused (never read past the given length: this
 * runs under ASan with exactly-sized copies). */
/* sola_first_nonfinite scans blocks of 64 before its element loop: every position of
 * a NaN or an infinity, in and around those blocks, is the one it names. */
START_TEST(first_nonfinite_every_position)
{
    enum { N = 200 };
    float x[N];
    for (int i = 0; i < N; i++)
        x[i] = (float)i - 100.5f;
    const size_t ns[] = {0, 1, 63, 64, 65, 127, 128, 129, N};
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        size_t n = ns[a];
        ck_assert_uint_eq(sola_first_nonfinite(x, n), n);
        for (size_t p = 0; p < n; p++)
            for (int b = 0; b < 3; b++) {
                float keep = x[p];
                x[p] = bad[b];
                if (p + 1 < n)
                    x[n - 1] = bad[(b + 1) % 3]; /* a later one must not win */
                size_t got = sola_first_nonfinite(x, n);
                x[p] = keep;
                x[n - 1] = (float)(n - 1) - 100.5f;
                ck_assert_msg(got == p, "n %zu: bad value at %zu, named %zu", n, p, got);
            }
    }
}
END_TEST

START_TEST(every_prefix_refused)
{
    char *p = fc_fmt("f4_v3.npy");
    size_t len;
    unsigned char *full = tu_read(p, &len);
    ck_assert_ptr_nonnull(full);
    for (size_t k = 0; k < len; k++) {
        unsigned char *cut = malloc(k ? k : 1);
        memcpy(cut, full, k);
        sola_array a;
        sola_err e = {0};
        int rc = sola_npy_parse(cut, k, "cut.npy", 0, &a, &e);
        ck_assert_msg(rc != 0, "prefix of %zu bytes accepted", k);
        ck_assert_ptr_nonnull(strstr(e.msg, "cut.npy: "));
        free(cut);
    }
    free(full);
    free(p);
}
END_TEST

/* numpy reads what we write: dtype float32, C order, version 1.0, same values. */
START_TEST(numpy_reads_our_files)
{
    if (!fc_have_numpy(".npy output"))
        return;
    char *dir = tu_tmpdir();
    int64_t shapes[3][3] = {{7}, {3, 5}, {2, 3, 4}};
    for (int nd = 1; nd <= 3; nd++) {
        size_t n = 1;
        for (int i = 0; i < nd; i++)
            n *= (size_t)shapes[nd - 1][i];
        float *x = malloc(n * sizeof *x);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)i * 0.5f - 1.0f;
        char path[4096];
        snprintf(path, sizeof path, "%s/a%d.npy", dir, nd);
        sola_err e = {0};
        ck_assert_int_eq(sola_npy_save(path, x, nd, shapes[nd - 1], &e), 0);
        char shape[64] = "";
        for (int i = 0; i < nd; i++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%lld,",
                     (long long)shapes[nd - 1][i]);
        int rc = tu_system(
            "/usr/bin/python3 -c \"\n"
            "import sys, numpy as np\n"
            "p = sys.argv[1]\n"
            "a = np.load(p)\n"
            "f = open(p, 'rb')\n"
            "assert np.lib.format.read_magic(f) == (1, 0)\n"
            "shape, fortran, dt = np.lib.format.read_array_header_1_0(f)\n"
            "assert f.tell() %% 64 == 0, f.tell()\n"
            "assert dt == np.dtype('<f4') and not fortran\n"
            "want = (np.arange(a.size, dtype=np.float32) * 0.5 - 1).reshape((%s))\n"
            "assert a.shape == want.shape, a.shape\n"
            "assert np.array_equal(a, want)\n"
            "\" %s",
            shape, path);
        ck_assert_msg(rc == 0, "numpy refused or misread %s (exit %d)", path, rc);
        free(x);
    }
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("npy");
    tcase_add_test(tc, numpy_fixtures_load_exactly);
    tcase_add_test(tc, conversion_values);
    tcase_add_test(tc, fortran_order_is_transposed);
    tcase_add_test(tc, f8_overflow_refused);
    tcase_add_test(tc, check_values_names_first_nonfinite);
    tcase_add_test(tc, malformed_corpus_refused);
    tcase_add_test(tc, encode_layout_and_roundtrip);
    tcase_add_test(tc, data_offset_from_the_preamble);
    tcase_add_test(tc, save_is_atomic_and_loads);
    tcase_add_test(tc, peek_on_header_prefix);
    tcase_add_test(tc, inspect_reports_dtype_order_version);
    tcase_add_test(tc, every_prefix_refused);
    tcase_add_test(tc, first_nonfinite_every_position);
    tcase_add_test(tc, numpy_reads_our_files);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
