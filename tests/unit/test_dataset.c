/* test_dataset.c -- dataset folders: scan, window reads over every encoding, and the
 * errors a user with a broken folder would see. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "npy.h"
#include "npz.h"
#include "testutil.h"

/* A deterministic [T, C] sequence: value identifies (t, c). */
static float *seq(int T, int C, float base)
{
    float *x = malloc((size_t)T * C * sizeof *x + 1);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
            x[(size_t)t * C + c] = base + t + 0.001f * c;
    return x;
}

static void save_f4(const char *dir, const char *file, const float *x, int T, int C)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    int64_t shape[2] = {T, C};
    sola_err e = {0};
    ck_assert_msg(sola_npy_save(p, x, 2, shape, &e) == 0, "%s", e.msg);
}

/* Writes a .npy by hand so the test controls dtype and order: f8 big-endian or
 * little-endian, C or Fortran order. */
static void save_f8(const char *dir, const char *file, const float *x, int T, int C,
                    int big, int fortran)
{
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%sf8', 'fortran_order': %s, 'shape': (%d, %d), }",
                     big ? ">" : "<", fortran ? "True" : "False", T, C);
    size_t hl = 10 + (size_t)n + 1, pad = (64 - hl % 64) % 64;
    hl += pad;
    size_t len = hl + (size_t)T * C * 8;
    unsigned char *b = malloc(len);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(hl - 10);
    b[9] = (unsigned char)((hl - 10) >> 8);
    memcpy(b + 10, hdr, (size_t)n);
    memset(b + 10 + n, ' ', pad);
    b[hl - 1] = '\n';
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            double v = x[(size_t)t * C + c];
            size_t k = fortran ? (size_t)c * T + t : (size_t)t * C + c;
            unsigned char raw[8];
            memcpy(raw, &v, 8);
            for (int i = 0; i < 8; i++)
                b[hl + k * 8 + i] = big ? raw[7 - i] : raw[i];
        }
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    ck_assert_int_eq(tu_write(p, b, len), 0);
    free(b);
}

static void save_npz(const char *dir, const char *file, const char *member, const float *x,
                     int T, int C, int deflate)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    sola_array a = {.data = (float *)x, .ndim = 2, .shape = {T, C}};
    const char *names[2] = {"extra", member};
    sola_array arrs[2] = {a, a};
    sola_err e = {0};
    /* With a "feats" member there is a second one, to check the pick. */
    int two = !strcmp(member, "feats");
    ck_assert_msg(sola_npz_save(p, two ? names : names + 1, two ? arrs : arrs + 1, two ? 2 : 1,
                                deflate, &e) == 0,
                  "%s", e.msg);
}

static void touch(const char *dir, const char *file, const char *text)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    ck_assert_int_eq(tu_write(p, text, strlen(text)), 0);
}

/* Four items in four encodings, plus files that must be ignored. */
static char *mixed_folder(float **xs, const int *Ts, int C)
{
    char *dir = tu_tmpdir();
    save_npz(dir, "a.npz", "feats", xs[0], Ts[0], C, 0);
    save_f4(dir, "b.npy", xs[1], Ts[1], C);
    save_npz(dir, "c.npz", "x", xs[2], Ts[2], C, 1);
    save_f8(dir, "d.npy", xs[3], Ts[3], C, 1, 1);
    save_f8(dir, "e.npy", xs[4], Ts[4], C, 0, 0);
    touch(dir, ".hidden.npy", "not numpy");
    touch(dir, "notes.txt", "hello");
    return dir;
}

START_TEST(scan_lists_items_sorted_with_shapes)
{
    enum { C = 7 };
    int Ts[5] = {30, 25, 40, 9, 12};
    float *xs[5];
    for (int i = 0; i < 5; i++)
        xs[i] = seq(Ts[i], C, 100.f * i);
    char *dir = mixed_folder(xs, Ts, C);
    sola_dataset *d;
    sola_err e = {0};
    ck_assert_msg(sola_dataset_open(dir, &d, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(d->n, 5);
    ck_assert_int_eq(d->C, C);
    const char *names[5] = {"a", "b", "c", "d", "e"};
    int64_t total = 0;
    for (int i = 0; i < 5; i++) {
        ck_assert_str_eq(d->items[i].name, names[i]);
        ck_assert_int_eq(d->items[i].T, Ts[i]);
        total += Ts[i];
    }
    ck_assert_int_eq(d->total_T, total);
    ck_assert_int_eq(sola_dataset_find(d, "c"), 2);
    ck_assert_int_eq(sola_dataset_find(d, "zz"), -1);
    sola_dataset_free(d);
    for (int i = 0; i < 5; i++)
        free(xs[i]);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(windows_equal_the_stored_data_in_every_encoding)
{
    enum { C = 5 };
    int Ts[5] = {30, 25, 40, 9, 12};
    float *xs[5];
    for (int i = 0; i < 5; i++)
        xs[i] = seq(Ts[i], C, 100.f * i);
    char *dir = mixed_folder(xs, Ts, C);
    sola_dataset *d;
    sola_err e = {0};
    ck_assert_msg(sola_dataset_open(dir, &d, &e) == 0, "%s", e.msg);
    float out[40 * C];
    for (int i = 0; i < 5; i++) {
        int W = Ts[i] < 8 ? Ts[i] : 8;
        int starts[3] = {0, Ts[i] - W, (Ts[i] - W) / 2};
        for (int k = 0; k < 3; k++) {
            ck_assert_msg(sola_dataset_window(d, i, starts[k], W, out, &e) == 0, "%s", e.msg);
            ck_assert_mem_eq(out, xs[i] + (size_t)starts[k] * C, (size_t)W * C * sizeof(float));
        }
        sola_array a;
        ck_assert_msg(sola_dataset_load(d, i, &a, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(a.ndim, 2);
        ck_assert_int_eq(a.shape[0], Ts[i]);
        ck_assert_int_eq(a.shape[1], C);
        ck_assert_mem_eq(a.data, xs[i], (size_t)Ts[i] * C * sizeof(float));
        sola_array_free(&a);
    }
    /* A window past the end is refused and names the file. */
    int rc = sola_dataset_window(d, 1, 20, 8, out, &e);
    ck_assert_int_eq(rc, SOLA_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "b.npy"));
    sola_dataset_free(d);
    for (int i = 0; i < 5; i++)
        free(xs[i]);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(single_video_batch_shape_is_accepted)
{
    char *dir = tu_tmpdir();
    float *x = seq(6, 3, 0);
    char p[4096];
    snprintf(p, sizeof p, "%s/v.npy", dir);
    int64_t shape[3] = {1, 6, 3};
    sola_err e = {0};
    ck_assert_int_eq(sola_npy_save(p, x, 3, shape, &e), 0);
    sola_dataset *d;
    ck_assert_msg(sola_dataset_open(dir, &d, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(d->items[0].T, 6);
    ck_assert_int_eq(d->C, 3);
    float out[9];
    ck_assert_int_eq(sola_dataset_window(d, 0, 3, 3, out, &e), 0);
    ck_assert_mem_eq(out, x + 9, sizeof out);
    sola_dataset_free(d);
    free(x);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(empty_folder_is_a_clear_error)
{
    char *dir = tu_tmpdir();
    touch(dir, "readme.txt", "no features here");
    sola_dataset *d = (sola_dataset *)1;
    sola_err e = {0};
    ck_assert_int_eq(sola_dataset_open(dir, &d, &e), SOLA_EFORMAT);
    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(strstr(e.msg, "no .npy or .npz files"));
    ck_assert_ptr_nonnull(strstr(e.msg, dir));
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(missing_folder_is_notfound)
{
    sola_dataset *d;
    sola_err e = {0};
    ck_assert_int_eq(sola_dataset_open("/nonexistent-dataset-xyz", &d, &e), SOLA_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "/nonexistent-dataset-xyz"));
}
END_TEST

START_TEST(files_disagreeing_on_C_are_named)
{
    char *dir = tu_tmpdir();
    float *x = seq(10, 8, 0);
    save_f4(dir, "v1.npy", x, 10, 8);
    save_f4(dir, "v2.npy", x, 10, 8);
    save_f4(dir, "v3.npy", x, 10, 8);
    save_f4(dir, "odd_a.npy", x, 10, 6);
    save_f4(dir, "odd_b.npy", x, 5, 16);
    sola_dataset *d;
    sola_err e = {0};
    ck_assert_int_eq(sola_dataset_open(dir, &d, &e), SOLA_ESHAPE);
    ck_assert_ptr_nonnull(strstr(e.msg, "3 of 5 have C=8"));
    ck_assert_ptr_nonnull(strstr(e.msg, "odd_a.npy (C=6)"));
    ck_assert_ptr_nonnull(strstr(e.msg, "odd_b.npy (C=16)"));
    ck_assert_ptr_null(strstr(e.msg, "v1.npy"));
    free(x);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(corrupt_file_is_named)
{
    char *dir = tu_tmpdir();
    float *x = seq(10, 4, 0);
    save_f4(dir, "good.npy", x, 10, 4);
    touch(dir, "broken.npy", "\x93NUMPY garbage that is not a header");
    sola_dataset *d;
    sola_err e = {0};
    int rc = sola_dataset_open(dir, &d, &e);
    ck_assert_int_lt(rc, 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "broken.npy"));
    /* A truncated payload too. */
    char p[4096];
    snprintf(p, sizeof p, "%s/broken.npy", dir);
    size_t len;
    snprintf(p, sizeof p, "%s/good.npy", dir);
    unsigned char *b = tu_read(p, &len);
    snprintf(p, sizeof p, "%s/broken.npy", dir);
    ck_assert_int_eq(tu_write(p, b, len - 9), 0);
    rc = sola_dataset_open(dir, &d, &e);
    ck_assert_int_lt(rc, 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "broken.npy"));
    /* A 1-D array is not a feature sequence. */
    int64_t shape1[1] = {10};
    ck_assert_int_eq(sola_npy_save(p, x, 1, shape1, &e), 0);
    ck_assert_int_eq(sola_dataset_open(dir, &d, &e), SOLA_ESHAPE);
    ck_assert_ptr_nonnull(strstr(e.msg, "broken.npy"));
    ck_assert_ptr_nonnull(strstr(e.msg, "[T, C]"));
    free(b);
    free(x);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(same_stem_twice_is_refused)
{
    char *dir = tu_tmpdir();
    float *x = seq(10, 4, 0);
    save_f4(dir, "v.npy", x, 10, 4);
    save_npz(dir, "v.npz", "x", x, 10, 4, 0);
    sola_dataset *d;
    sola_err e = {0};
    ck_assert_int_eq(sola_dataset_open(dir, &d, &e), SOLA_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "v.npy"));
    ck_assert_ptr_nonnull(strstr(e.msg, "v.npz"));
    free(x);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(file_changed_after_scan_is_detected)
{
    char *dir = tu_tmpdir();
    float *x = seq(20, 4, 0);
    save_f4(dir, "v.npy", x, 20, 4);
    sola_dataset *d;
    sola_err e = {0};
    ck_assert_int_eq(sola_dataset_open(dir, &d, &e), 0);
    save_f4(dir, "v.npy", x, 10, 4);
    float out[16];
    ck_assert_int_eq(sola_dataset_window(d, 0, 12, 4, out, &e), SOLA_ESHAPE);
    ck_assert_ptr_nonnull(strstr(e.msg, "v.npy"));
    ck_assert_ptr_nonnull(strstr(e.msg, "changed"));
    sola_dataset_free(d);
    free(x);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(peek_file_checks_one_upload)
{
    char *dir = tu_tmpdir();
    float *x = seq(11, 3, 0);
    save_npz(dir, "u.npz", "feats", x, 11, 3, 1);
    char p[4096];
    snprintf(p, sizeof p, "%s/u.npz", dir);
    int64_t T;
    int C;
    sola_err e = {0};
    ck_assert_msg(sola_dataset_peek_file(p, &T, &C, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(T, 11);
    ck_assert_int_eq(C, 3);
    touch(dir, "bad.npy", "nope");
    snprintf(p, sizeof p, "%s/bad.npy", dir);
    ck_assert_int_lt(sola_dataset_peek_file(p, &T, &C, &e), 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "bad.npy"));
    free(x);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Many files: the scan keeps only headers, and reading back any one is exact. */
START_TEST(many_files_scan)
{
    char *dir = tu_tmpdir();
    float *x = seq(24, 2, 0);
    char f[64];
    for (int i = 0; i < 1500; i++) {
        x[0] = (float)i;
        snprintf(f, sizeof f, "v%05d.npy", 1499 - i);
        save_f4(dir, f, x, 24, 2);
    }
    sola_dataset *d;
    sola_err e = {0};
    ck_assert_msg(sola_dataset_open(dir, &d, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(d->n, 1500);
    ck_assert_str_eq(d->items[0].name, "v00000");
    float out[2];
    ck_assert_int_eq(sola_dataset_window(d, 0, 0, 1, out, &e), 0);
    ck_assert_float_eq(out[0], 1499.f);
    sola_dataset_free(d);
    free(x);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("dataset");
    tcase_add_test(tc, scan_lists_items_sorted_with_shapes);
    tcase_add_test(tc, windows_equal_the_stored_data_in_every_encoding);
    tcase_add_test(tc, single_video_batch_shape_is_accepted);
    tcase_add_test(tc, empty_folder_is_a_clear_error);
    tcase_add_test(tc, missing_folder_is_notfound);
    tcase_add_test(tc, files_disagreeing_on_C_are_named);
    tcase_add_test(tc, corrupt_file_is_named);
    tcase_add_test(tc, same_stem_twice_is_refused);
    tcase_add_test(tc, file_changed_after_scan_is_detected);
    tcase_add_test(tc, peek_file_checks_one_upload);
    tcase_add_test(tc, many_files_scan);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
