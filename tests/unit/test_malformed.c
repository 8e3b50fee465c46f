/* test_malformed.c -- corpus replay, in the spirit of SQLite's fuzzcheck.
 *
 * Every file under tests/data/malformed/ goes through all three parsers (.npy,
 * .npz including reading every member, safetensors including converting every
 * float tensor) from an exactly-sized heap copy, so under ASan any read past the
 * end is caught. Each must be refused with a non-empty message. Then every valid
 * fixture under tests/data/formats/ is mutated (bit flips, byte overwrites,
 * truncations) with a fixed seed and replayed the same way: whatever the outcome,
 * no crash, and every refusal carries a message. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmtcheck.h"
#include "fsutil.h"
#include "npy.h"
#include "npz.h"
#include "safetensors.h"

enum { P_NPY, P_NPZ, P_ST, P_COUNT };
static const char *pname[P_COUNT] = {"npy", "npz", "safetensors"};

/* Runs one parser over buf[len] (which the caller owns); returns its result and
 * fills e. Success means the whole file was usable. */
static int replay(int parser, const unsigned char *buf, size_t len, sola_err *e)
{
    int rc;
    if (parser == P_NPY) {
        sola_array a;
        rc = sola_npy_parse(buf, len, "corpus", SOLA_NPY_LABELS, &a, e);
        if (rc == 0) {
            volatile float sink = 0; /* touch the data so ASan sees it */
            for (size_t i = 0; i < sola_array_numel(&a); i++)
                sink += a.data[i];
            (void)sink;
            sola_array_free(&a);
            rc = sola_npy_parse(buf, len, "corpus", 0, &a, e);
            sola_array_free(&a);
        }
        return rc;
    }
    if (parser == P_NPZ) {
        sola_npz z;
        if ((rc = sola_npz_parse(buf, len, "corpus", &z, e)) != 0)
            return rc;
        for (int i = 0; i < z.n && !rc; i++) {
            sola_array a;
            rc = sola_npz_read(&z, i, SOLA_NPY_LABELS, &a, e);
            sola_array_free(&a);
        }
        if (!rc) {
            int k = sola_npz_pick(&z, "corpus", e);
            rc = k < 0 ? k : 0;
            if (k >= 0) {
                sola_array a;
                rc = sola_npz_read(&z, k, 0, &a, e);
                sola_array_free(&a);
            }
        }
        sola_npz_close(&z);
        return rc;
    }
    sola_st_file f;
    if ((rc = sola_st_parse(buf, len, "corpus", &f, e)) != 0)
        return rc;
    for (int i = 0; i < f.n; i++) {
        size_t n = sola_st_numel(&f.t[i]);
        float *out = malloc((n ? n : 1) * sizeof *out);
        ck_assert_ptr_nonnull(out);
        if (f.t[i].dtype != SOLA_DT_OTHER)
            ck_assert_int_eq(sola_st_to_f32(&f.t[i], out, e), 0);
        free(out);
    }
    sola_st_close(&f);
    return 0;
}

static int parser_for(const char *name)
{
    return sola_has_ext(name, ".npy") ? P_NPY : sola_has_ext(name, ".npz") ? P_NPZ : P_ST;
}

/* Names of the regular files in a data directory (malloc'd, NULL-terminated). */
static char **list_dir(const char *rel, int *count)
{
    char *dir = tu_path(rel);
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    char **names = NULL;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, "EXPECTED.txt") == 0 ||
            strcmp(de->d_name, "expected.json") == 0)
            continue;
        names = realloc(names, (size_t)(n + 2) * sizeof *names);
        names[n++] = strdup(de->d_name);
        names[n] = NULL;
    }
    closedir(d);
    free(dir);
    *count = n;
    return names;
}

static unsigned char *load(const char *rel, const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", rel, name);
    char *p = tu_path(path);
    unsigned char *buf = tu_read(p, len);
    ck_assert_msg(buf != NULL, "cannot read %s", p);
    free(p);
    return buf;
}

START_TEST(every_malformed_file_refused_by_every_parser)
{
    int n;
    char **names = list_dir("tests/data/malformed", &n);
    ck_assert_int_ge(n, 70);
    for (int i = 0; i < n; i++) {
        size_t len;
        unsigned char *full = load("tests/data/malformed", names[i], &len);
        for (int p = 0; p < P_COUNT; p++) {
            unsigned char *copy = malloc(len ? len : 1);
            memcpy(copy, full, len);
            sola_err e = {0};
            int rc = replay(p, copy, len, &e);
            ck_assert_msg(rc < 0, "%s: accepted by the %s parser", names[i], pname[p]);
            ck_assert_msg(e.msg[0] != 0, "%s: %s parser gave no message", names[i], pname[p]);
            ck_assert_msg(strstr(e.msg, "corpus") != NULL,
                          "%s: %s message does not name the input: %s", names[i], pname[p],
                          e.msg);
            free(copy);
        }
        free(full);
        free(names[i]);
    }
    free(names);
}
END_TEST

/* xorshift64*: deterministic mutations, no dependency on core/rng. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

START_TEST(mutated_fixtures_never_crash)
{
    int n;
    char **names = list_dir("tests/data/formats", &n);
    ck_assert_int_ge(n, 20);
    uint64_t seed = 0x5eed5eed12345678ull;
    int refused = 0, total = 0;
    for (int i = 0; i < n; i++) {
        size_t len;
        unsigned char *full = load("tests/data/formats", names[i], &len);
        int parser = parser_for(names[i]);
        for (int m = 0; m < 300; m++) {
            size_t clen = len;
            unsigned char *copy = malloc(len ? len : 1);
            memcpy(copy, full, len);
            int kind = (int)(rnd(&seed) % 4);
            int flips = 1 + (int)(rnd(&seed) % 4);
            for (int k = 0; k < flips && len; k++) {
                size_t at = (size_t)(rnd(&seed) % len);
                if (kind == 0)
                    copy[at] ^= (unsigned char)(1u << (rnd(&seed) % 8));
                else if (kind == 1)
                    copy[at] = (unsigned char)rnd(&seed);
                else if (kind == 2)
                    copy[at] = (unsigned char)(rnd(&seed) & 1 ? 0xff : 0x00);
                else
                    clen = at; /* truncation */
            }
            sola_err e = {0};
            int rc = replay(parser, copy, clen, &e);
            if (rc != 0) {
                ck_assert_msg(e.msg[0] != 0, "%s mutation %d: refused without a message",
                              names[i], m);
                refused++;
            }
            total++;
            free(copy);
        }
        free(full);
        free(names[i]);
    }
    free(names);
    printf("mutations: %d of %d refused (rest were harmless, e.g. a changed float)\n", refused,
           total);
    ck_assert_int_gt(refused, total / 4);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("malformed");
    TCase *tc = tcase_create("malformed");
    tcase_add_test(tc, every_malformed_file_refused_by_every_parser);
    tcase_add_test(tc, mutated_fixtures_never_crash);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
