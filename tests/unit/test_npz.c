/* test_npz.c -- .npz archives written by numpy (stored, deflated, streamed with data
 * descriptors, ZIP64 directory), the malformed corpus, our writer, and numpy
 * reading what we write. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "fmtcheck.h"
#include "fsutil.h"
#include "npy.h"
#include "npz.h"

START_TEST(numpy_fixtures_load_exactly)
{
    json_t *ex = fc_expected();
    const char *name;
    json_t *v;
    int seen = 0;
    json_object_foreach(ex, name, v) {
        if (!sola_has_ext(name, ".npz"))
            continue;
        char *p = fc_fmt(name);
        sola_npz z;
        sola_err e = {0};
        ck_assert_msg(sola_npz_open(p, &z, &e) == 0, "%s: %s", name, e.msg);
        json_t *mem = json_object_get(v, "members");
        ck_assert_int_eq(z.n, (int)json_object_size(mem));
        const char *mname;
        json_t *mv;
        json_object_foreach(mem, mname, mv) {
            int i = sola_npz_find(&z, mname);
            ck_assert_msg(i >= 0, "%s: member %s not found", name, mname);
            int labels = json_is_true(json_object_get(mv, "labels"));
            sola_array a;
            int rc = sola_npz_read(&z, i, labels ? SOLA_NPY_LABELS : 0, &a, &e);
            ck_assert_msg(rc == 0, "%s/%s: %s", name, mname, e.msg);
            fc_check_shape(mname, a.ndim, a.shape, json_object_get(mv, "shape"));
            fc_check_values(mname, a.data, sola_array_numel(&a), json_object_get(mv, "values"));
            sola_array_free(&a);
        }
        int pick = sola_npz_pick(&z, name, &e);
        ck_assert_int_ge(pick, 0);
        ck_assert_str_eq(z.entries[pick].name,
                         json_string_value(json_object_get(v, "pick")));
        sola_npz_close(&z);
        free(p);
        seen++;
    }
    ck_assert_int_eq(seen, 4);
    json_decref(ex);
}
END_TEST

START_TEST(malformed_corpus_refused)
{
    int n;
    fc_case *cs = fc_manifest("npz", &n);
    ck_assert_int_ge(n, 25);
    for (int i = 0; i < n; i++) {
        char *p = fc_bad(cs[i].file);
        sola_npz z;
        sola_err e = {0};
        int rc = sola_npz_open(p, &z, &e);
        if (rc == 0) {
            int k = sola_npz_pick(&z, p, &e);
            rc = k < 0 ? k : 0;
            sola_array a = {0};
            if (k >= 0) {
                rc = sola_npz_read(&z, k, 0, &a, &e);
                ck_assert_ptr_null(a.data);
            }
            sola_npz_close(&z);
        }
        fc_check_error(&cs[i], rc, &e);
        free(p);
    }
    free(cs);
}
END_TEST

/* Three members of different ranks, by name. */
static void make_members(sola_array a[3], const char *names[3])
{
    static const int64_t shapes[3][3] = {{50, 8}, {2, 3, 4}, {5}};
    static const int nds[3] = {2, 3, 1};
    static const char *nm[3] = {"v_test_0001", "feats", "labels"};
    for (int k = 0; k < 3; k++) {
        a[k].ndim = nds[k];
        memcpy(a[k].shape, shapes[k], sizeof shapes[k]);
        size_t n = sola_array_numel(&a[k]);
        a[k].data = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            a[k].data[i] = (float)(i % 7) * 0.25f + (float)k; /* compressible */
        names[k] = nm[k];
    }
}

START_TEST(roundtrip_stored_and_deflated)
{
    sola_array a[3];
    const char *names[3];
    make_members(a, names);
    size_t sizes[2];
    for (int deflate = 0; deflate <= 1; deflate++) {
        void *buf;
        size_t len;
        sola_err e = {0};
        ck_assert_int_eq(sola_npz_encode(names, a, 3, deflate, &buf, &len, &e), 0);
        sizes[deflate] = len;
        sola_npz z;
        ck_assert_msg(sola_npz_parse(buf, len, "mem.npz", &z, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(z.n, 3);
        for (int k = 0; k < 3; k++) {
            int i = sola_npz_find(&z, names[k]);
            ck_assert_int_ge(i, 0);
            ck_assert_int_eq(z.entries[i].method, deflate ? 8 : 0);
            sola_array r;
            ck_assert_int_eq(sola_npz_read(&z, i, 0, &r, &e), 0);
            ck_assert_int_eq(r.ndim, a[k].ndim);
            ck_assert_mem_eq(r.shape, a[k].shape, sizeof(int64_t) * (size_t)r.ndim);
            ck_assert_mem_eq(r.data, a[k].data, sola_array_numel(&r) * sizeof(float));
            sola_array_free(&r);
        }
        ck_assert_int_eq(sola_npz_pick(&z, "mem.npz", &e), sola_npz_find(&z, "feats"));
        ck_assert_int_eq(sola_npz_find(&z, "nope"), -1);
        sola_npz_close(&z);
        free(buf);
    }
    ck_assert_uint_lt(sizes[1], sizes[0]);
    for (int k = 0; k < 3; k++)
        sola_array_free(&a[k]);
}
END_TEST

START_TEST(pick_rules)
{
    sola_array a[3];
    const char *names[3];
    make_members(a, names);
    void *buf;
    size_t len;
    sola_err e = {0};
    sola_npz z;
    /* a single member is the sequence whatever its name */
    ck_assert_int_eq(sola_npz_encode(names, a, 1, 0, &buf, &len, &e), 0);
    ck_assert_int_eq(sola_npz_parse(buf, len, "one.npz", &z, &e), 0);
    ck_assert_int_eq(sola_npz_pick(&z, "one.npz", &e), 0);
    sola_npz_close(&z);
    free(buf);
    /* two members, neither "feats": refused with a hint */
    const char *two[2] = {names[0], names[2]};
    sola_array ta[2] = {a[0], a[2]};
    ck_assert_int_eq(sola_npz_encode(two, ta, 2, 1, &buf, &len, &e), 0);
    ck_assert_int_eq(sola_npz_parse(buf, len, "two.npz", &z, &e), 0);
    ck_assert_int_eq(sola_npz_pick(&z, "two.npz", &e), SOLA_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "two.npz: 2 members and none named 'feats'"));
    sola_npz_close(&z);
    free(buf);
    for (int k = 0; k < 3; k++)
        sola_array_free(&a[k]);
}
END_TEST

/* A flipped data byte in our own archive is caught by the CRC, stored or deflated. */
START_TEST(corrupt_crc_detected)
{
    sola_array a[3];
    const char *names[3];
    make_members(a, names);
    for (int deflate = 0; deflate <= 1; deflate++) {
        void *buf;
        size_t len;
        sola_err e = {0};
        ck_assert_int_eq(sola_npz_encode(names, a, 1, deflate, &buf, &len, &e), 0);
        sola_npz z;
        ck_assert_int_eq(sola_npz_parse(buf, len, "c.npz", &z, &e), 0);
        unsigned char *b = buf;
        size_t data = z.entries[0].offset + 30 + strlen("v_test_0001.npy");
        /* stored: a float byte near the end; deflated: the CRC field of the directory */
        if (!deflate)
            b[data + z.entries[0].csize - 2] ^= 0x10;
        else
            z.entries[0].crc ^= 0x1;
        sola_array r = {0};
        int rc = sola_npz_read(&z, 0, 0, &r, &e);
        ck_assert_int_eq(rc, SOLA_EFORMAT);
        ck_assert_ptr_nonnull(strstr(e.msg, "c.npz: member 'v_test_0001': CRC-32 mismatch"));
        ck_assert_ptr_null(r.data);
        sola_npz_close(&z);
        free(buf);
    }
    for (int k = 0; k < 3; k++)
        sola_array_free(&a[k]);
}
END_TEST

/* Every truncation of an archive is refused (exactly-sized copies: ASan sees any
 * over-read). */
START_TEST(every_prefix_refused)
{
    sola_array a[3];
    const char *names[3];
    make_members(a, names);
    void *buf;
    size_t len;
    sola_err e = {0};
    ck_assert_int_eq(sola_npz_encode(names + 1, a + 1, 2, 1, &buf, &len, &e), 0);
    for (size_t k = 0; k < len; k++) {
        unsigned char *cut = malloc(k ? k : 1);
        memcpy(cut, buf, k);
        sola_npz z;
        int rc = sola_npz_parse(cut, k, "cut.npz", &z, &e);
        if (rc == 0) { /* only possible if the EOCD survived, which it cannot */
            sola_npz_close(&z);
        }
        ck_assert_msg(rc != 0, "prefix of %zu bytes accepted", k);
        ck_assert_ptr_nonnull(strstr(e.msg, "cut.npz: "));
        free(cut);
    }
    free(buf);
    for (int k = 0; k < 3; k++)
        sola_array_free(&a[k]);
}
END_TEST

START_TEST(writer_refuses_bad_names_and_saves_atomically)
{
    sola_array a[3];
    const char *names[3];
    make_members(a, names);
    void *buf;
    size_t len;
    sola_err e = {0};
    const char *dup[2] = {"x", "x"};
    ck_assert_int_eq(sola_npz_encode(dup, a, 2, 0, &buf, &len, &e), SOLA_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "'x' is used twice"));
    /* 65535 members would need ZIP64: refused up front, nothing encoded */
    int many = 65535;
    const char **mn = calloc((size_t)many, sizeof *mn);
    sola_array *ma = calloc((size_t)many, sizeof *ma);
    ck_assert_int_eq(sola_npz_encode(mn, ma, many, 0, &buf, &len, &e), SOLA_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(e.msg, "ZIP64"));
    ck_assert_ptr_null(buf);
    free(mn);
    free(ma);
    const char *empty[1] = {""};
    ck_assert_int_eq(sola_npz_encode(empty, a, 1, 0, &buf, &len, &e), SOLA_EINVAL);
    char *dir = tu_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/set.npz", dir);
    ck_assert_int_eq(sola_npz_save(path, names, a, 3, 1, &e), 0);
    sola_npz z;
    ck_assert_int_eq(sola_npz_open(path, &z, &e), 0);
    ck_assert_int_eq(z.n, 3);
    sola_array r;
    ck_assert_int_eq(sola_npz_read(&z, sola_npz_pick(&z, NULL, &e), 0, &r, &e), 0);
    ck_assert_int_eq(r.ndim, 3);
    sola_array_free(&r);
    sola_npz_close(&z);
    /* a failed save leaves the old file and no temporary */
    ck_assert_int_eq(sola_npz_save(path, dup, a, 2, 0, &e), SOLA_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "set.npz"));
    ck_assert_int_eq(sola_npz_open(path, &z, &e), 0);
    ck_assert_int_eq(z.n, 3);
    sola_npz_close(&z);
    tu_rmtree(dir);
    free(dir);
    for (int k = 0; k < 3; k++)
        sola_array_free(&a[k]);
}
END_TEST

/* numpy (np.load, i.e. Python's zipfile) reads our stored and deflated archives. */
START_TEST(numpy_reads_our_files)
{
    if (!fc_have_numpy(".npz output"))
        return;
    sola_array a[3];
    const char *names[3];
    make_members(a, names);
    char *dir = tu_tmpdir();
    for (int deflate = 0; deflate <= 1; deflate++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/o%d.npz", dir, deflate);
        sola_err e = {0};
        ck_assert_int_eq(sola_npz_save(path, names, a, 3, deflate, &e), 0);
        int rc = tu_system(
            "/usr/bin/python3 -c \"\n"
            "import sys, zipfile, numpy as np\n"
            "p = sys.argv[1]\n"
            "zf = zipfile.ZipFile(p)\n"
            "assert zf.testzip() is None\n"
            "assert [i.compress_type for i in zf.infolist()] == [%d] * 3\n"
            "z = np.load(p)\n"
            "assert sorted(z.files) == ['feats', 'labels', 'v_test_0001'], z.files\n"
            "for k, name, shape in ((0, 'v_test_0001', (50, 8)), (1, 'feats', (2, 3, 4)),\n"
            "                       (2, 'labels', (5,))):\n"
            "    a = z[name]\n"
            "    n = int(np.prod(shape))\n"
            "    want = ((np.arange(n) %% 7) * 0.25 + k).astype(np.float32).reshape(shape)\n"
            "    assert a.dtype == np.float32 and a.shape == shape, (name, a.dtype, a.shape)\n"
            "    assert np.array_equal(a, want), name\n"
            "\" %s",
            deflate ? 8 : 0, path);
        ck_assert_msg(rc == 0, "numpy refused or misread %s (exit %d)", path, rc);
    }
    tu_rmtree(dir);
    free(dir);
    for (int k = 0; k < 3; k++)
        sola_array_free(&a[k]);
}
END_TEST

/* A deflated member that yields its declared bytes but whose stream never ends (no
 * final block) is refused with that reason, not as "more than declared" (F4). */
START_TEST(unterminated_deflate_stream_refused)
{
    char *path = tu_path("fuzz/regressions/dataset_npz/20261125-unterminated-deflate.npz");
    size_t len;
    void *buf = tu_read(path, &len);
    ck_assert_ptr_nonnull(buf);
    sola_npz z;
    sola_err e = {0};
    ck_assert_int_eq(sola_npz_parse(buf, len, "f4.npz", &z, &e), 0);
    int refused = 0;
    for (int i = 0; i < z.n; i++) {
        sola_array a;
        if (sola_npz_read(&z, i, 0, &a, &e) == 0) {
            sola_array_free(&a);
            continue;
        }
        refused++;
        ck_assert_int_eq(e.code, SOLA_EFORMAT);
        ck_assert_msg(strstr(e.msg, "does not end"), "message: %s", e.msg);
    }
    ck_assert_int_ge(refused, 1);
    sola_npz_close(&z);
    free(buf);
    free(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("npz");
    TCase *tc = tcase_create("npz");
    tcase_add_test(tc, numpy_fixtures_load_exactly);
    tcase_add_test(tc, malformed_corpus_refused);
    tcase_add_test(tc, roundtrip_stored_and_deflated);
    tcase_add_test(tc, pick_rules);
    tcase_add_test(tc, corrupt_crc_detected);
    tcase_add_test(tc, every_prefix_refused);
    tcase_add_test(tc, writer_refuses_bad_names_and_saves_atomically);
    tcase_add_test(tc, numpy_reads_our_files);
    tcase_add_test(tc, unterminated_deflate_stream_refused);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
