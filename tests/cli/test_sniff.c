/* test_sniff.c -- a file is named for what it is before any format-specific message:
 * core/formats/sniff.c on each kind, the three readers (npy, npz, safetensors) on files of
 * another kind, and `sola info` on mislabelled files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "npz.h"
#include "safetensors.h"
#include "sniff.h"
#include "testutil.h"

/* A .npy [2, 3] float32, as numpy writes it. */
static void *npy_bytes(size_t *len)
{
    float x[6] = {1, 2, 3, 4, 5, 6};
    char *dir = tu_tmpdir(), p[4096];
    snprintf(p, sizeof p, "%s/x.npy", dir);
    sola_err e = {0};
    ck_assert_int_eq(sola_npy_save(p, x, 2, (int64_t[]){2, 3}, &e), 0);
    void *b = tu_read(p, len);
    ck_assert_ptr_nonnull(b);
    tu_rmtree(dir);
    free(dir);
    return b;
}

START_TEST(each_kind_is_recognised)
{
    size_t n;
    void *npy = npy_bytes(&n);
    ck_assert_int_eq(sola_sniff(npy, n), SOLA_KIND_NPY);
    free(npy);
    ck_assert_int_eq(sola_sniff("", 0), SOLA_KIND_EMPTY);
    ck_assert_int_eq(sola_sniff("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16), SOLA_KIND_PNG);
    ck_assert_int_eq(sola_sniff("\x89HDF\r\n\x1a\n\0\0", 10), SOLA_KIND_HDF5);
    ck_assert_int_eq(sola_sniff("\x1f\x8b\x08\0", 4), SOLA_KIND_GZIP);
    ck_assert_int_eq(sola_sniff("\xff\xd8\xff\xe0", 4), SOLA_KIND_JPEG);
    ck_assert_int_eq(sola_sniff("\x80\x02}q\0", 5), SOLA_KIND_PICKLE);
    ck_assert_int_eq(sola_sniff("  {\"features\": [[1]]}", 21), SOLA_KIND_JSON);
    ck_assert_int_eq(sola_sniff("name,value\n1,2\n", 15), SOLA_KIND_TEXT);
    /* safetensors: 8-byte little-endian header length, then the JSON header */
    const char st[] = "\x0e\0\0\0\0\0\0\0{\"a\": \"b\"}   ";
    ck_assert_int_eq(sola_sniff(st, sizeof st - 1), SOLA_KIND_SAFETENSORS);
    /* a header of 0x380 bytes: its length starts 80 03, like a pickle's PROTO 3 */
    unsigned char st896[16] = {0x80, 0x03, 0, 0, 0, 0, 0, 0, '{', '"'};
    ck_assert_int_eq(sola_sniff(st896, sizeof st896), SOLA_KIND_SAFETENSORS);
    /* zips: an .npz by its first member's name, a torch.save archive by data.pkl */
    unsigned char z[64] = "PK\x03\x04";
    const char *m1 = "feats.npy";
    z[26] = (unsigned char)strlen(m1);
    memcpy(z + 30, m1, strlen(m1));
    ck_assert_int_eq(sola_sniff(z, 30 + strlen(m1)), SOLA_KIND_NPZ);
    const char *m2 = "archive/data.pkl";
    z[26] = (unsigned char)strlen(m2);
    memcpy(z + 30, m2, strlen(m2));
    ck_assert_int_eq(sola_sniff(z, 30 + strlen(m2)), SOLA_KIND_TORCH_ZIP);
    /* binary of no known kind (float data) is left to the format's own parser */
    float f[4] = {0.5f, -1.25f, 3.0f, 1e-3f};
    ck_assert_int_eq(sola_sniff(f, sizeof f), SOLA_KIND_UNKNOWN);
}
END_TEST

/* The complaint of the issue: a .npy uploaded as a model reported a safetensors
 * header length of 379676406402707. */
START_TEST(readers_name_the_other_kind)
{
    size_t n;
    void *npy = npy_bytes(&n);
    sola_st_file f;
    sola_err e = {0};
    ck_assert_int_ne(sola_st_parse(npy, n, "m.safetensors", &f, &e), 0);
    ck_assert_msg(strstr(e.msg, "m.safetensors") && strstr(e.msg, ".npy array"), "%s", e.msg);
    ck_assert_msg(!strstr(e.msg, "header length"), "%s", e.msg);
    free(npy);

    const char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10";
    sola_npy_info in;
    ck_assert_int_ne(sola_npy_inspect(png, sizeof png - 1, "x.npy", 0, &in, &e), 0);
    ck_assert_msg(strstr(e.msg, "x.npy") && strstr(e.msg, "PNG image"), "%s", e.msg);

    char *dir = tu_tmpdir(), p[4096];
    snprintf(p, sizeof p, "%s/x.npz", dir);
    const char *text = "this is not an archive, it is a note\n";
    ck_assert_int_eq(tu_write(p, text, strlen(text)), 0);
    sola_npz z;
    ck_assert_int_ne(sola_npz_open(p, &z, &e), 0);
    ck_assert_msg(strstr(e.msg, "x.npz") && strstr(e.msg, "text file"), "%s", e.msg);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* `sola info` decides by content: a text file named .npy is called a text file, an
 * .npy named .safetensors is described as the .npy it is. */
START_TEST(sola_info_goes_by_content)
{
    char *dir = tu_tmpdir();
    char p[4096];
    snprintf(p, sizeof p, "%s/notes.npy", dir);
    ck_assert_int_eq(tu_write(p, "T,C\n10,2048\n", 12), 0);
    int rc = tu_system("cd '%s' && '%s/sola' info notes.npy >out.txt 2>err.txt", dir, tu_bin());
    ck_assert_int_eq(rc, 1);
    snprintf(p, sizeof p, "%s/err.txt", dir);
    char *err = tu_read(p, NULL);
    ck_assert_msg(err && strstr(err, "notes.npy") && strstr(err, "text file") &&
                  !strstr(err, "safetensors header"), "%s", err ? err : "");
    free(err);

    size_t n;
    void *npy = npy_bytes(&n);
    snprintf(p, sizeof p, "%s/mislabelled.safetensors", dir);
    ck_assert_int_eq(tu_write(p, npy, n), 0);
    free(npy);
    rc = tu_system("cd '%s' && '%s/sola' info mislabelled.safetensors >out.txt 2>err.txt", dir,
                   tu_bin());
    ck_assert_int_eq(rc, 0);
    snprintf(p, sizeof p, "%s/out.txt", dir);
    char *out = tu_read(p, NULL);
    ck_assert_msg(out && strstr(out, "npy v1") && strstr(out, "[2, 3]"), "%s", out ? out : "");
    free(out);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sniff");
    TCase *tc = tcase_create("sniff");
    tcase_add_test(tc, each_kind_is_recognised);
    tcase_add_test(tc, readers_name_the_other_kind);
    tcase_add_test(tc, sola_info_goes_by_content);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
