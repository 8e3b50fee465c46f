/* test_probe.c -- the linear fg/bg probe: learns what is learnable, stays at chance on
 * noise, splits by video, and names the file when labels do not fit. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "npy.h"
#include "probe.h"
#include "rng.h"
#include "synth.h"
#include "testutil.h"

/* n rows of dim C: class-dependent mean along a fixed direction plus noise;
 * labels random if `random_labels`. Rows L2-normalised as the probe expects. */
static void blobs(long n, int C, float sep, int random_labels, float **xp, uint8_t **yp,
                  uint8_t **vp)
{
    sola_rng r;
    sola_rng_seed(&r, 42);
    float *x = malloc((size_t)n * C * sizeof *x);
    uint8_t *y = malloc((size_t)n), *v = malloc((size_t)n);
    for (long i = 0; i < n; i++) {
        int cls = (int)sola_rng_below(&r, 2);
        double s = 0;
        for (int c = 0; c < C; c++) {
            float mu = c == 0 ? (cls ? sep : -sep) : 0.f;
            x[i * C + c] = mu + (float)sola_rng_normal(&r);
            s += (double)x[i * C + c] * x[i * C + c];
        }
        for (int c = 0; c < C; c++)
            x[i * C + c] /= (float)sqrt(s);
        y[i] = random_labels ? (uint8_t)sola_rng_below(&r, 2) : (uint8_t)cls;
        v[i] = i % 5 == 0;
    }
    *xp = x, *yp = y, *vp = v;
}

START_TEST(separable_case_reaches_high_accuracy)
{
    float *x;
    uint8_t *y, *v;
    blobs(4000, 8, 4.f, 0, &x, &y, &v);
    sola_probe_opts o;
    sola_probe_default(&o);
    sola_probe_result r;
    sola_err e = {0};
    ck_assert_msg(sola_probe_fit(x, y, v, NULL, 4000, 8, &o, &r, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(r.val_n, 800);
    ck_assert_int_eq(r.train_n, 3200);
    ck_assert_msg(r.accuracy > 0.97, "accuracy %f", r.accuracy);
    ck_assert(r.acc_fg > 0.95 && r.acc_bg > 0.95);
    free(x), free(y), free(v);
}
END_TEST

START_TEST(random_labels_stay_near_chance)
{
    float *x;
    uint8_t *y, *v;
    blobs(10000, 8, 4.f, 1, &x, &y, &v);
    sola_probe_opts o;
    sola_probe_default(&o);
    sola_probe_result r;
    sola_err e = {0};
    ck_assert_int_eq(sola_probe_fit(x, y, v, NULL, 10000, 8, &o, &r, &e), 0);
    ck_assert_msg(r.accuracy > 0.45 && r.accuracy < 0.55, "accuracy %f", r.accuracy);
    ck_assert(r.train_loss > 0.68);
    free(x), free(y), free(v);
}
END_TEST

START_TEST(same_seed_same_result)
{
    float *x;
    uint8_t *y, *v;
    blobs(3000, 8, 1.f, 0, &x, &y, &v);
    sola_probe_opts o;
    sola_probe_default(&o);
    sola_probe_result r1, r2, r3;
    sola_err e = {0};
    ck_assert_int_eq(sola_probe_fit(x, y, v, NULL, 3000, 8, &o, &r1, &e), 0);
    ck_assert_int_eq(sola_probe_fit(x, y, v, NULL, 3000, 8, &o, &r2, &e), 0);
    ck_assert(r1.accuracy == r2.accuracy && r1.train_loss == r2.train_loss);
    o.seed = 1;
    ck_assert_int_eq(sola_probe_fit(x, y, v, NULL, 3000, 8, &o, &r3, &e), 0);
    ck_assert(r3.train_loss != r1.train_loss);
    free(x), free(y), free(v);
}
END_TEST

/* A small synthetic folder with little noise. */
static char *synth_folder(int videos, int C, float noise)
{
    char *dir = tu_tmpdir();
    sola_synth_opts o;
    sola_synth_default(&o);
    o.videos = videos;
    o.C = C;
    o.T = 80;
    o.noise = noise;
    o.seed = 9;
    sola_err e = {0};
    ck_assert_msg(sola_synth_write(dir, &o, NULL, NULL, &e) == 0, "%s", e.msg);
    return dir;
}

static char *sub(const char *dir, const char *s)
{
    char *p = malloc(strlen(dir) + strlen(s) + 2);
    sprintf(p, "%s/%s", dir, s);
    return p;
}

START_TEST(folder_probe_splits_by_video_and_learns)
{
    char *dir = synth_folder(20, 16, 0.02f);
    char *f = sub(dir, "features"), *l = sub(dir, "labels");
    sola_probe_opts o;
    sola_probe_default(&o);
    sola_probe_result r;
    sola_err e = {0};
    ck_assert_msg(sola_probe_run(f, l, &o, &r, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(r.videos_val, 4);
    ck_assert_int_eq(r.videos_train, 16);
    ck_assert_msg(r.accuracy > 0.95, "accuracy %f", r.accuracy);
    ck_assert_int_gt(r.boundary_n, 0);
    ck_assert(r.majority >= 0.5 && r.majority < 1.0);

    /* An identity model (alpha = 0) leaves every feature as it was: same numbers. */
    sola_model *m = sola_model_new(16, 8, 5, 1, 0, &e);
    ck_assert_ptr_nonnull(m);
    sola_model_init(m, 1);
    ck_assert_int_eq(sola_model_pack(m, &e), 0);
    o.model = m;
    sola_probe_result r2;
    ck_assert_msg(sola_probe_run(f, l, &o, &r2, &e) == 0, "%s", e.msg);
    ck_assert(r2.accuracy == r.accuracy && r2.train_loss == r.train_loss);
    sola_model_free(m);

    /* A model of another width is refused before any work. */
    m = sola_model_new(12, 8, 5, 1, 0, &e);
    sola_model_init(m, 1);
    sola_model_pack(m, &e);
    o.model = m;
    ck_assert_int_eq(sola_probe_run(f, l, &o, &r2, &e), SOLA_ESHAPE);
    ck_assert_ptr_nonnull(strstr(e.msg, "C=16"));
    ck_assert_ptr_nonnull(strstr(e.msg, "C=12"));
    sola_model_free(m);
    free(f), free(l);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(bad_labels_name_the_file)
{
    char *dir = synth_folder(4, 8, 0.1f);
    char *f = sub(dir, "features"), *l = sub(dir, "labels");
    sola_probe_opts o;
    sola_probe_default(&o);
    sola_probe_result r;
    sola_err e = {0};

    /* Too short. */
    char p[4096];
    snprintf(p, sizeof p, "%s/video_0001.npy", l);
    float lab[5] = {0, 1, 1, 0, 0};
    int64_t shape[1] = {5};
    ck_assert_int_eq(sola_npy_save(p, lab, 1, shape, &e), 0);
    ck_assert_int_eq(sola_probe_run(f, l, &o, &r, &e), SOLA_ESHAPE);
    ck_assert_ptr_nonnull(strstr(e.msg, "labels/video_0001.npy"));
    ck_assert_ptr_nonnull(strstr(e.msg, "got shape (5)"));

    /* Missing. */
    remove(p);
    ck_assert_int_eq(sola_probe_run(f, l, &o, &r, &e), SOLA_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "labels/video_0001.npy"));

    /* A float-typed label file of the right length is fine (nonzero = action). */
    char q[4096];
    snprintf(q, sizeof q, "%s/video_0001.npy", f);
    sola_array b;
    ck_assert_int_eq(sola_npy_load(q, 0, &b, &e), 0);
    shape[0] = b.shape[0];
    float *fl = calloc((size_t)b.shape[0], sizeof *fl);
    ck_assert_int_eq(sola_npy_save(p, fl, 1, shape, &e), 0);
    ck_assert_msg(sola_probe_run(f, l, &o, &r, &e) == 0, "%s", e.msg);
    free(fl);
    sola_array_free(&b);
    free(f), free(l);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(cli_probe_exit_codes)
{
    char *dir = synth_folder(4, 8, 0.1f);
    ck_assert_int_eq(tu_system("%s/sola probe --features %s/features --labels %s/labels "
                               "--epochs 2 >/dev/null 2>&1", tu_bin(), dir, dir), 0);
    ck_assert_int_eq(tu_system("%s/sola probe --features %s/features >/dev/null 2>&1", tu_bin(),
                               dir), 2);
    ck_assert_int_eq(tu_system("%s/sola probe --features %s/features --labels %s/labels "
                               "--val-frac 1.5 >/dev/null 2>&1", tu_bin(), dir, dir), 2);
    ck_assert_int_eq(tu_system("%s/sola probe --features %s/nope --labels %s/labels "
                               ">/dev/null 2>&1", tu_bin(), dir, dir), 1);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("probe");
    TCase *tc = tcase_create("probe");
    tcase_add_test(tc, separable_case_reaches_high_accuracy);
    tcase_add_test(tc, random_labels_stay_near_chance);
    tcase_add_test(tc, same_seed_same_result);
    tcase_add_test(tc, folder_probe_splits_by_video_and_learns);
    tcase_add_test(tc, bad_labels_name_the_file);
    tcase_add_test(tc, cli_probe_exit_codes);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
