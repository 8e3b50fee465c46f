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
    sola_synth_default_simple(&o);
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

START_TEST(moving_average_by_hand)
{
    /* x_t = (t, 10 - t) for T = 5, k = 3: interior rows are exact, the ends average the
     * two snippets that exist */
    float x[10], out[10];
    for (int t = 0; t < 5; t++)
        x[2 * t] = (float)t, x[2 * t + 1] = (float)(10 - t);
    ck_assert_int_eq(sola_moving_average(x, 5, 2, 3, out), 0);
    const float want[10] = {0.5f, 9.5f, 1, 9, 2, 8, 3, 7, 3.5f, 6.5f};
    for (int i = 0; i < 10; i++)
        ck_assert_float_eq_tol(out[i], want[i], 1e-6f);
    /* k = 9 on 5 snippets: every row is the mean of all (reaching 4 each way) */
    ck_assert_int_eq(sola_moving_average(x, 5, 2, 9, out), 0);
    ck_assert_float_eq_tol(out[0], (0 + 1 + 2 + 3 + 4) / 5.f, 1e-6f);
    ck_assert_float_eq_tol(out[9], (10 + 9 + 8 + 7 + 6) / 5.f, 1e-6f);
    /* k = 1 copies */
    ck_assert_int_eq(sola_moving_average(x, 5, 2, 1, out), 0);
    ck_assert_mem_eq(out, x, sizeof x);
}
END_TEST

/* On features with independent noise per snippet (the simple generator), smoothing
 * beats raw features; the comparison reads the set once and gives the same numbers
 * as probing each version alone. */
START_TEST(compare_reports_raw_moving_averages_and_model)
{
    char *dir = synth_folder(30, 16, 0.8f);
    char *f = sub(dir, "features"), *l = sub(dir, "labels");
    sola_probe_opts o;
    sola_probe_default(&o);
    sola_err e = {0};
    sola_model *m = sola_model_new(16, 8, 5, 1, 0, &e);
    ck_assert_ptr_nonnull(m);
    sola_model_init(m, 1);
    m->alpha[0] = 0.3f; /* not the identity */
    ck_assert_int_eq(sola_model_pack(m, &e), 0);
    o.model = m;
    const int ks[3] = {3, 5, 9};
    sola_probe_report rep;
    ck_assert_msg(sola_probe_compare(f, l, &o, ks, 3, &rep, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(rep.nsmooth, 3);
    ck_assert(rep.has_model);
    fprintf(stderr, "raw %.4f, k=3 %.4f, k=5 %.4f, k=9 %.4f (best %d), model %.4f\n",
            rep.raw.accuracy, rep.smooth[0].accuracy, rep.smooth[1].accuracy,
            rep.smooth[2].accuracy, rep.best, rep.model.accuracy);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(rep.smooth_k[i], ks[i]);
        ck_assert(rep.smooth[rep.best].accuracy >= rep.smooth[i].accuracy);
        ck_assert_int_eq(rep.smooth[i].val_n, rep.raw.val_n);
    }
    ck_assert_msg(rep.smooth[rep.best].accuracy > rep.raw.accuracy + 0.03,
                  "smoothing i.i.d. noise should help: %.4f vs raw %.4f",
                  rep.smooth[rep.best].accuracy, rep.raw.accuracy);
    /* the same numbers as alone */
    sola_probe_result r;
    ck_assert_int_eq(sola_probe_run(f, l, &o, &r, &e), 0);
    ck_assert(r.accuracy == rep.model.accuracy && r.train_loss == rep.model.train_loss);
    o.model = NULL;
    o.smooth = 5;
    ck_assert_int_eq(sola_probe_run(f, l, &o, &r, &e), 0);
    ck_assert(r.accuracy == rep.smooth[1].accuracy);
    o.smooth = 0;
    ck_assert_int_eq(sola_probe_run(f, l, &o, &r, &e), 0);
    ck_assert(r.accuracy == rep.raw.accuracy && r.boundary_accuracy == rep.raw.boundary_accuracy);
    /* no baselines, no model: raw alone */
    ck_assert_int_eq(sola_probe_compare(f, l, &o, NULL, 0, &rep, &e), 0);
    ck_assert(rep.nsmooth == 0 && !rep.has_model && rep.raw.accuracy == r.accuracy);
    const int bad[1] = {1};
    ck_assert_int_eq(sola_probe_compare(f, l, &o, bad, 1, &rep, &e), SOLA_EINVAL);
    sola_model_free(m);
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
    /* the table: raw and the moving averages, or raw alone */
    ck_assert_int_eq(tu_system("%s/sola probe --features %s/features --labels %s/labels "
                               "--epochs 2 --baselines 3,7 >%s/out.txt 2>/dev/null", tu_bin(), dir,
                               dir, dir), 0);
    char p[4096];
    snprintf(p, sizeof p, "%s/out.txt", dir);
    char *out = tu_read(p, NULL);
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(strstr(out, "\nraw "));
    ck_assert_ptr_nonnull(strstr(out, "moving average of 3"));
    ck_assert_ptr_nonnull(strstr(out, "moving average of 7"));
    ck_assert_ptr_nonnull(strstr(out, "(best)"));
    ck_assert_ptr_null(strstr(out, "moving average of 5"));
    free(out);
    ck_assert_int_eq(tu_system("%s/sola probe --features %s/features --labels %s/labels "
                               "--epochs 2 --baselines none >%s/out.txt 2>/dev/null", tu_bin(), dir,
                               dir, dir), 0);
    out = tu_read(p, NULL);
    ck_assert_ptr_null(strstr(out, "moving average"));
    free(out);
    ck_assert_int_eq(tu_system("%s/sola probe --features %s/features --labels %s/labels "
                               "--baselines 3,x >/dev/null 2>&1", tu_bin(), dir, dir), 2);
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
    tcase_add_test(tc, moving_average_by_hand);
    tcase_add_test(tc, compare_reports_raw_moving_averages_and_model);
    tcase_add_test(tc, cli_probe_exit_codes);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
