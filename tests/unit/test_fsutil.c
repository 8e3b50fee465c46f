/* test_fsutil.c -- atomic writes and file maps. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>

#include "fsutil.h"
#include "testutil.h"

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

START_TEST(atomic_write_replaces_and_leaves_no_temp)
{
    char *dir = tu_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/a.bin", dir);
    sola_err e = {0};
    ck_assert_int_eq(sola_write_atomic(path, "old", 3, &e), 0);
    ck_assert_int_eq(sola_write_atomic(path, "newer", 5, &e), 0);
    size_t n;
    char *buf = tu_read(path, &n);
    ck_assert_uint_eq(n, 5);
    ck_assert_mem_eq(buf, "newer", 5);
    ck_assert_int_eq(count_entries(dir), 1);
    free(buf);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(aborted_write_keeps_old_file)
{
    char *dir = tu_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/a.bin", dir);
    sola_err e = {0};
    ck_assert_int_eq(sola_write_atomic(path, "old", 3, &e), 0);
    sola_afile a;
    ck_assert_int_eq(sola_afile_open(&a, path, &e), 0);
    ck_assert_int_eq(sola_afile_write(&a, "partial", 7, &e), 0);
    sola_afile_abort(&a);
    size_t n;
    char *buf = tu_read(path, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_mem_eq(buf, "old", 3);
    ck_assert_int_eq(count_entries(dir), 1);
    free(buf);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(write_into_missing_dir_names_path)
{
    sola_err e = {0};
    int rc = sola_write_atomic("/nonexistent-dir-xyz/a.bin", "x", 1, &e);
    ck_assert_int_eq(rc, SOLA_EIO);
    ck_assert_ptr_nonnull(strstr(e.msg, "/nonexistent-dir-xyz/a.bin"));
}
END_TEST

START_TEST(map_missing_file_is_notfound)
{
    sola_map m;
    sola_err e = {0};
    ck_assert_int_eq(sola_map_file("/nonexistent-file-xyz", &m, &e), SOLA_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "nonexistent-file-xyz"));
}
END_TEST

/* sola_afile_write_direct writes the same bytes as a plain write, whether the buffer
 * and the file position are aligned (O_DIRECT for the aligned part) or not, and
 * mixed with buffered writes before and after. */
START_TEST(direct_write_gives_the_same_bytes)
{
    char *dir = tu_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/d.bin", dir);
    size_t big = (3 << 20) + 4096 + 77;
    /* aligned_alloc wants a size that is a multiple of the alignment (C11; ASan
     * enforces it) */
    unsigned char *buf = aligned_alloc(
        SOLA_DIO_ALIGN, (big + 2 * SOLA_DIO_ALIGN - 1) / SOLA_DIO_ALIGN * SOLA_DIO_ALIGN);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < big + SOLA_DIO_ALIGN; i++)
        buf[i] = (unsigned char)(i * 2654435761u >> 13);
    static const struct {
        size_t pre, off, len, post; /* buffered bytes before, buffer offset, length, after */
    } cases[] = {
        {0, 0, 0, 0},        {0, 0, 100, 0},          {0, 0, 4096, 0},
        {0, 0, 3 * 4096 + 77, 0}, {0, 0, (3 << 20) + 4096 + 77, 0}, {0, 64, 3 * 4096, 0},
        {10, 0, 5 * 4096, 3}, {4096, 0, 2 * 4096 + 1, 9},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sola_err e = {0};
        sola_afile a;
        ck_assert_int_eq(sola_afile_open(&a, path, &e), 0);
        ck_assert_int_eq(sola_afile_write(&a, buf + 1, cases[k].pre, &e), 0);
        ck_assert_int_eq(sola_afile_write_direct(&a, buf + cases[k].off, cases[k].len, &e), 0);
        ck_assert_int_eq(sola_afile_write(&a, buf + 7, cases[k].post, &e), 0);
        ck_assert_int_eq(sola_afile_commit(&a, &e), 0);
        size_t n;
        unsigned char *got = tu_read(path, &n);
        ck_assert_ptr_nonnull(got);
        ck_assert_uint_eq(n, cases[k].pre + cases[k].len + cases[k].post);
        ck_assert_msg(!memcmp(got, buf + 1, cases[k].pre) &&
                          !memcmp(got + cases[k].pre, buf + cases[k].off, cases[k].len) &&
                          !memcmp(got + cases[k].pre + cases[k].len, buf + 7, cases[k].post),
                      "case %zu: the file differs from what was written", k);
        free(got);
        ck_assert_int_eq(count_entries(dir), 1);
    }
    free(buf);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(stem_and_ext)
{
    char s[64];
    sola_stem("/a/b/v_test.npy", s, sizeof s);
    ck_assert_str_eq(s, "v_test");
    ck_assert(sola_has_ext("x.npz", ".npz"));
    ck_assert(!sola_has_ext("x.npz", ".npy"));
}
END_TEST

/* The one name rule (models, datasets, items) and the one errno rule. */
START_TEST(names_and_errno_codes)
{
    const char *good[] = {"a", "thumos-14_i3d.v2", "A9", "x-", "v.1"};
    const char *bad[] = {"", ".hidden", "-opt", "a/b", "..", "a b", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ck_assert_msg(sola_name_ok(good[i]), "%s refused", good[i]);
        ck_assert_int_eq(sola_name_check("name", good[i], NULL), 0);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sola_err e = {0};
        ck_assert_msg(!sola_name_ok(bad[i]), "%s accepted", bad[i]);
        ck_assert_int_eq(sola_name_check("dataset", bad[i], &e), SOLA_EINVAL);
        ck_assert_msg(strstr(e.msg, "dataset"), "message names what: %s", e.msg);
    }
    ck_assert(!sola_name_ok(NULL));
    char longest[SOLA_NAME_MAX + 2];
    memset(longest, 'a', sizeof longest);
    longest[SOLA_NAME_MAX] = 0;
    ck_assert(sola_name_ok(longest));
    longest[SOLA_NAME_MAX] = 'a';
    longest[SOLA_NAME_MAX + 1] = 0;
    ck_assert(!sola_name_ok(longest));
    ck_assert_int_eq(sola_errno_code(ENOSPC), SOLA_ENOSPC);
    ck_assert_int_eq(sola_errno_code(EDQUOT), SOLA_ENOSPC);
    ck_assert_int_eq(sola_errno_code(EFBIG), SOLA_ENOSPC);
    ck_assert_int_eq(sola_errno_code(EACCES), SOLA_EIO);
    ck_assert_int_eq(sola_errno_code(EIO), SOLA_EIO);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fsutil");
    TCase *tc = tcase_create("fsutil");
    tcase_add_test(tc, atomic_write_replaces_and_leaves_no_temp);
    tcase_add_test(tc, aborted_write_keeps_old_file);
    tcase_add_test(tc, write_into_missing_dir_names_path);
    tcase_add_test(tc, map_missing_file_is_notfound);
    tcase_add_test(tc, stem_and_ext);
    tcase_add_test(tc, names_and_errno_codes);
    tcase_add_test(tc, direct_write_gives_the_same_bytes);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
