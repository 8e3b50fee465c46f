/* test_synth.c -- the synthetic dataset: reproducible by seed, labelled consistently,
 * readable as a dataset, and written through the CLI with the right exit codes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "npy.h"
#include "synth.h"
#include "testutil.h"

static sola_synth_opts small(uint64_t seed)
{
    sola_synth_opts o;
    sola_synth_default(&o);
    o.videos = 6;
    o.C = 16;
    o.T = 60;
    o.seed = seed;
    return o;
}

START_TEST(same_seed_same_files_other_seed_other_files)
{
    char *a = tu_tmpdir(), *b = tu_tmpdir(), *c = tu_tmpdir();
    sola_synth_opts o = small(7);
    sola_err e = {0};
    ck_assert_msg(sola_synth_write(a, &o, NULL, NULL, &e) == 0, "%s", e.msg);
    ck_assert_msg(sola_synth_write(b, &o, NULL, NULL, &e) == 0, "%s", e.msg);
    o.seed = 8;
    ck_assert_msg(sola_synth_write(c, &o, NULL, NULL, &e) == 0, "%s", e.msg);
    int differ = 0;
    for (int i = 0; i < 6; i++) {
        char pa[4096], pb[4096], pc[4096];
        size_t la, lb, lc;
        for (int k = 0; k < 2; k++) {
            const char *sub = k ? "labels" : "features";
            snprintf(pa, sizeof pa, "%s/%s/video_%04d.npy", a, sub, i);
            snprintf(pb, sizeof pb, "%s/%s/video_%04d.npy", b, sub, i);
            snprintf(pc, sizeof pc, "%s/%s/video_%04d.npy", c, sub, i);
            char *xa = tu_read(pa, &la), *xb = tu_read(pb, &lb), *xc = tu_read(pc, &lc);
            ck_assert_ptr_nonnull(xa);
            ck_assert_ptr_nonnull(xb);
            ck_assert_ptr_nonnull(xc);
            ck_assert_uint_eq(la, lb);
            ck_assert_mem_eq(xa, xb, la);
            differ += la != lc || memcmp(xa, xc, la);
            free(xa), free(xb), free(xc);
        }
    }
    ck_assert_int_ge(differ, 6);
    tu_rmtree(a), tu_rmtree(b), tu_rmtree(c);
    free(a), free(b), free(c);
}
END_TEST

START_TEST(first_videos_do_not_depend_on_the_count)
{
    sola_synth_opts o = small(3);
    sola_err e = {0};
    float *dirs = sola_synth_directions(&o, &e);
    ck_assert_ptr_nonnull(dirs);
    float *x1, *x2;
    uint8_t *l1, *l2;
    int T1, T2;
    ck_assert_int_eq(sola_synth_video(&o, dirs, 2, &x1, &l1, &T1, &e), 0);
    o.videos = 500;
    ck_assert_int_eq(sola_synth_video(&o, dirs, 2, &x2, &l2, &T2, &e), 0);
    ck_assert_int_eq(T1, T2);
    ck_assert_mem_eq(x1, x2, (size_t)T1 * o.C * sizeof(float));
    ck_assert_mem_eq(l1, l2, (size_t)T1);
    free(x1), free(x2), free(l1), free(l2), free(dirs);

    /* The low-rank noise model is seeded the same way, and is a different model. */
    o.noise_rank = 4;
    o.mean = 1.f;
    dirs = sola_synth_directions(&o, &e);
    ck_assert_int_eq(sola_synth_video(&o, dirs, 2, &x1, &l1, &T1, &e), 0);
    ck_assert_int_eq(sola_synth_video(&o, dirs, 2, &x2, &l2, &T2, &e), 0);
    ck_assert_mem_eq(x1, x2, (size_t)T1 * o.C * sizeof(float));
    free(x2), free(l2);
    o.noise_rank = 0;
    ck_assert_int_eq(sola_synth_video(&o, dirs, 2, &x2, &l2, &T2, &e), 0);
    ck_assert_int_eq(T1, T2);
    ck_assert(memcmp(x1, x2, (size_t)T1 * o.C * sizeof(float)) != 0);
    free(x1), free(x2), free(l1), free(l2), free(dirs);
    o.noise_rank = o.C + 1;
    ck_assert_ptr_null(sola_synth_directions(&o, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "noise rank"));
}
END_TEST

/* Lengths vary in [T/2, 3T/2], there is action and background, and action snippets
 * lie along their class direction (so the labels describe the features). */
START_TEST(videos_have_varied_lengths_and_labelled_segments)
{
    sola_synth_opts o = small(11);
    o.videos = 40;
    o.noise = 0.f;
    o.video_offset = 0.f;
    sola_err e = {0};
    float *dirs = sola_synth_directions(&o, &e);
    int tmin = 1 << 30, tmax = 0;
    long fg = 0, all = 0;
    for (int i = 0; i < o.videos; i++) {
        float *x;
        uint8_t *l;
        int T;
        ck_assert_int_eq(sola_synth_video(&o, dirs, i, &x, &l, &T, &e), 0);
        ck_assert_int_ge(T, o.T / 2);
        ck_assert_int_le(T, o.T + o.T / 2);
        tmin = T < tmin ? T : tmin;
        tmax = T > tmax ? T : tmax;
        for (int t = 0; t < T; t++) {
            ck_assert_int_le(l[t], o.classes);
            const float *u = dirs + (size_t)(l[t] ? l[t] - 1 : o.classes) * o.C;
            double dot = 0;
            for (int c = 0; c < o.C; c++)
                dot += (double)x[(size_t)t * o.C + c] * u[c];
            ck_assert(l[t] ? dot >= 0.74 : (dot > 0.49 && dot < 0.51));
            fg += l[t] != 0;
            all++;
        }
        free(x), free(l);
    }
    ck_assert_int_lt(tmin + 10, tmax);
    ck_assert(fg > all / 5 && fg < all * 4 / 5);
    free(dirs);
}
END_TEST

START_TEST(written_folder_is_a_dataset_with_matching_labels)
{
    char *dir = tu_tmpdir();
    sola_synth_opts o = small(5);
    sola_err e = {0};
    ck_assert_int_eq(sola_synth_write(dir, &o, NULL, NULL, &e), 0);
    char p[4096];
    snprintf(p, sizeof p, "%s/features", dir);
    sola_dataset *d;
    ck_assert_msg(sola_dataset_open(p, &d, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(d->n, 6);
    ck_assert_int_eq(d->C, 16);
    for (int i = 0; i < d->n; i++) {
        snprintf(p, sizeof p, "%s/labels/%s.npy", dir, d->items[i].name);
        sola_array l;
        ck_assert_msg(sola_npy_load(p, SOLA_NPY_LABELS, &l, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(l.ndim, 1);
        ck_assert_int_eq(l.shape[0], d->items[i].T);
        for (int64_t t = 0; t < l.shape[0]; t++)
            ck_assert(l.data[t] == 0.f || l.data[t] == 1.f);
        sola_array_free(&l);
    }
    sola_dataset_free(d);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(cli_synth_exit_codes)
{
    char *dir = tu_tmpdir();
    ck_assert_int_eq(tu_system("%s/sola synth -o %s/s --videos 3 --dim 8 --length 30 --seed 2 "
                               ">/dev/null 2>&1", tu_bin(), dir), 0);
    char p[4096];
    snprintf(p, sizeof p, "%s/s/features/video_0002.npy", dir);
    size_t n;
    void *b = tu_read(p, &n);
    ck_assert_ptr_nonnull(b);
    free(b);
    ck_assert_int_eq(tu_system("%s/sola synth --videos 3 >/dev/null 2>&1", tu_bin()), 2);
    ck_assert_int_eq(tu_system("%s/sola synth -o %s/x --videos zero >/dev/null 2>&1", tu_bin(),
                               dir), 2);
    ck_assert_int_eq(tu_system("%s/sola synth -o /proc/nope/x >/dev/null 2>&1", tu_bin()), 1);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("synth");
    tcase_add_test(tc, same_seed_same_files_other_seed_other_files);
    tcase_add_test(tc, first_videos_do_not_depend_on_the_count);
    tcase_add_test(tc, videos_have_varied_lengths_and_labelled_segments);
    tcase_add_test(tc, written_folder_is_a_dataset_with_matching_labels);
    tcase_add_test(tc, cli_synth_exit_codes);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
