/* test_train_guard.c -- training a user can trust: --resume refuses a changed setting
 * (naming it), progress shows step / total and the cycle loss against chance, NaN/Inf
 * are refused before training (naming the file) and met during it with the file,
 * epoch and step named, channel-first files get a hint, and the collapse guard fires
 * on the --lr 1e-3 collapse of the realistic benchmark, stays quiet on a healthy run,
 * and --stop-on-collapse keeps the last good state. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collapse.h"
#include "dataset.h"
#include "model.h"
#include "npy.h"
#include "refine.h"
#include "rng.h"
#include "synth.h"
#include "testutil.h"
#include "trainer.h"

enum { C = 8 };

/* 12 videos of T 30..41 (smooth random walks); video `nan_video` (if >= 0) gets a
 * NaN at snippet 7, channel 2, or is NaN everywhere when `all`. ct: written [C, T]. */
static char *make_dataset(int nan_video, int all, int ct)
{
    char *dir = tu_tmpdir();
    sola_rng r;
    sola_rng_seed(&r, 5);
    for (int v = 0; v < 12; v++) {
        int T = 30 + v;
        float *x = malloc((size_t)T * C * sizeof *x);
        for (int c = 0; c < C; c++) {
            float acc = 0;
            for (int t = 0; t < T; t++) {
                acc = 0.8f * acc + (float)sola_rng_normal(&r);
                x[ct ? c * T + t : t * C + c] = acc;
            }
        }
        if (v == nan_video)
            for (int i = 0; i < T * C; i++)
                if (all || i == 7 * C + 2)
                    x[i] = NAN;
        char p[4096];
        snprintf(p, sizeof p, "%s/v%02d.npy", dir, v);
        int64_t shape[2] = {ct ? C : T, ct ? T : C};
        sola_err e = {0};
        ck_assert_msg(sola_npy_save(p, x, 2, shape, &e) == 0, "%s", e.msg);
        free(x);
    }
    return dir;
}

static char *slurp(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *s = tu_read(p, NULL);
    return s ? s : strdup("");
}

#define ASSERT_HAS(s, sub) ck_assert_msg(strstr((s), (sub)) != NULL, "no '%s' in:\n%s", (sub), (s))

static const char common[] = "--hidden 8 --head 16 --batch 5 --lr 1e-3 --seed 4 --threads 1";

START_TEST(resume_refuses_a_changed_setting_and_names_it)
{
    char *dir = make_dataset(-1, 0, 0);
    const char *bin = tu_bin();
    ck_assert_int_eq(tu_system("%s/sola train --dim 8 %s %s -o %s/m.safetensors --epochs 2 "
                               ">/dev/null 2>&1", bin, common, dir, dir), 0);
    /* the case of the report: another objective and learning rate */
    ck_assert_int_eq(tu_system("%s/sola train %s -o %s/m.safetensors --epochs 4 --resume "
                               "--lr 5e-2 --objective cycle 2>%s/err.txt", bin, dir, dir, dir), 2);
    char *err = slurp(dir, "err.txt");
    ASSERT_HAS(err, "objective cycle differs from sola");
    ASSERT_HAS(err, "only epochs can change");
    free(err);
    ck_assert_int_eq(tu_system("%s/sola train %s -o %s/m.safetensors --epochs 4 --resume "
                               "--lr 5e-2 2>%s/err.txt", bin, dir, dir, dir), 2);
    err = slurp(dir, "err.txt");
    ASSERT_HAS(err, "lr 0.05 differs from 0.001");
    free(err);
    ck_assert_int_eq(tu_system("%s/sola train %s -o %s/m.safetensors --epochs 4 --resume "
                               "--batch 6 2>%s/err.txt", bin, dir, dir, dir), 2);
    err = slurp(dir, "err.txt");
    ASSERT_HAS(err, "batch 6 differs from 5");
    free(err);
    ck_assert_int_eq(tu_system("%s/sola train %s -o %s/m.safetensors --epochs 4 --resume "
                               "--temperature 0.2 2>%s/err.txt", bin, dir, dir, dir), 2);
    err = slurp(dir, "err.txt");
    ASSERT_HAS(err, "temperature is a setting of the cycle objective");
    free(err);
    ck_assert_int_eq(tu_system("%s/sola train %s -o %s/m.safetensors --epochs 4 --resume "
                               "--dim 9 2>%s/err.txt", bin, dir, dir, dir), 2);
    /* nothing changed yet: the refused runs left the state as it was */
    char p[4096];
    snprintf(p, sizeof p, "%s/m.safetensors", dir);
    sola_err e = {0};
    sola_model *m = sola_model_load(p, &e);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(sola_trainer_state_epoch(m), 2);
    /* the same values again, epochs changed: accepted */
    sola_trainer_opts o;
    sola_trainer_default(&o);
    o.lr = 1e-3f, o.batch = 5, o.seed = 4, o.cfg.P = 16;
    ck_assert_int_eq(sola_trainer_check_resume(m, &o, SOLA_SET_LR | SOLA_SET_BATCH |
                                                          SOLA_SET_SEED | SOLA_SET_HEAD, &e), 0);
    o.cfg.K = 8;
    ck_assert_int_eq(sola_trainer_check_resume(m, &o, SOLA_SET_K, &e), SOLA_EINVAL);
    ASSERT_HAS(e.msg, "sharpness 8 differs from 16");
    ck_assert_int_eq(sola_trainer_check_resume(m, &o, 0, &e), 0);
    sola_model_free(m);
    ck_assert_int_eq(tu_system("%s/sola train %s %s -o %s/m.safetensors --epochs 3 --resume "
                               ">/dev/null 2>&1", bin, common, dir, dir), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(progress_shows_steps_and_cycle_terms_against_chance)
{
    char *dir = make_dataset(-1, 0, 0);
    const char *bin = tu_bin();
    ck_assert_int_eq(tu_system("%s/sola train --dim 8 %s %s -o %s/m.safetensors --epochs 2 "
                               "--objective cycle --queue 24 --cycle-subset 12 --cycle-hidden 16 "
                               "--cycle-dim 8 2>%s/err.txt >%s/out.txt", bin, common, dir, dir,
                               dir, dir), 0);
    char *err = slurp(dir, "err.txt");
    /* 12 videos in batches of 5: 3 steps an epoch, 6 in all */
    ASSERT_HAS(err, "epochs of 3 steps (6 steps)");
    ASSERT_HAS(err, "epoch 1/2, step 3/6:");
    ASSERT_HAS(err, "epoch 2/2, step 6/6:");
    /* chance: ln(1 + 24) = 3.219 for intra, ln(1 + 24 - 12) = 2.565 for the cycle */
    ASSERT_HAS(err, "at chance 3.219 + 0.1 x 2.565");
    ASSERT_HAS(err, "intra ");
    ASSERT_HAS(err, "norm ratio");
    ASSERT_HAS(err, "lr 0.001 cosine");
    free(err);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(nonfinite_values_are_refused_with_the_file_named)
{
    const char *bin = tu_bin();
    char *dir = make_dataset(3, 0, 0);
    ck_assert_int_eq(tu_system("%s/sola train --dim 8 %s %s -o %s/m.safetensors --epochs 1 "
                               "2>%s/err.txt", bin, common, dir, dir, dir), 1);
    char *err = slurp(dir, "err.txt");
    ASSERT_HAS(err, "v03.npy");
    ASSERT_HAS(err, "NaN");
    ASSERT_HAS(err, "--allow-nonfinite");
    free(err);
    tu_rmtree(dir);
    free(dir);

    /* let through, a batch that meets it stops the run naming file, epoch and step */
    dir = make_dataset(3, 1, 0);
    ck_assert_int_eq(tu_system("%s/sola train --dim 8 %s %s -o %s/m.safetensors --epochs 1 "
                               "--allow-nonfinite 2>%s/err.txt", bin, common, dir, dir, dir), 1);
    err = slurp(dir, "err.txt");
    ASSERT_HAS(err, "v03.npy: snippet ");
    ASSERT_HAS(err, "is NaN (epoch 1, step ");
    free(err);

    /* a file that changes under the run: the dataset's message, with epoch and step */
    sola_dataset *d = NULL;
    sola_err e = {0};
    char p[4096];
    snprintf(p, sizeof p, "%s/v03.npy", dir);
    remove(p);
    snprintf(p, sizeof p, "%s/v05.npy", dir);
    char *keep = make_dataset(-1, 0, 0);
    ck_assert_msg(sola_dataset_open(keep, &d, &e) == 0, "%s", e.msg);
    char q[4096];
    snprintf(q, sizeof q, "%s/v05.npy", keep);
    ck_assert_int_eq(tu_write(q, "garbage", 7), 0);
    sola_model *m = sola_model_new(C, 8, 5, 1, 0, &e);
    sola_model_init(m, 1);
    sola_trainer_opts o;
    sola_trainer_default(&o);
    o.cfg.P = 16, o.batch = 5, o.epochs = 1;
    ck_assert_int_ne(sola_train(m, d, &o, NULL, &e), 0);
    ASSERT_HAS(e.msg, "epoch 1, step ");
    ASSERT_HAS(e.msg, "v05.npy");
    sola_model_free(m);
    sola_dataset_free(d);
    tu_rmtree(keep);
    free(keep);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(channel_first_files_get_a_hint)
{
    const char *bin = tu_bin();
    char *dir = make_dataset(-1, 0, 1); /* [8, T]: every file has 8 rows */
    ck_assert_int_eq(tu_system("%s/sola train --dim 8 %s %s -o %s/m.safetensors --epochs 1 "
                               "2>%s/err.txt", bin, common, dir, dir, dir), 1);
    char *err = slurp(dir, "err.txt");
    ASSERT_HAS(err, "--layout ct");
    free(err);
    ck_assert_int_eq(tu_system("%s/sola train --dim 8 %s %s -o %s/m.safetensors --epochs 1 "
                               "--layout ct >/dev/null 2>&1", bin, common, dir, dir), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- the collapse guard ------------------------------------------------------------- */

/* 48 videos of C = 32 from `sola synth` (realistic, or --simple), features folder. */
static char *synth_dir(int simple, char **root)
{
    *root = tu_tmpdir();
    sola_synth_opts o;
    if (simple)
        sola_synth_default_simple(&o);
    else
        sola_synth_default(&o);
    o.videos = 48, o.C = 32, o.T = 80, o.seed = 1;
    sola_err e = {0};
    ck_assert_msg(sola_synth_write(*root, &o, NULL, NULL, &e) == 0, "%s", e.msg);
    char *f = malloc(strlen(*root) + 16);
    sprintf(f, "%s/features", *root);
    return f;
}

typedef struct seen {
    int epochs, fired_at, quiet_at_last_good;
    double ratio[128], share[128];
    int collapse[128];
} seen;

static void record(const sola_train_progress *p, void *ud)
{
    seen *s = ud;
    if (!p->monitored || p->epoch > 127)
        return;
    s->epochs = p->epoch;
    s->ratio[p->epoch] = p->norm_ratio;
    s->share[p->epoch] = p->const_share;
    s->collapse[p->epoch] = p->collapse;
    if (p->collapse && !s->fired_at)
        s->fired_at = p->epoch;
}

/* The run of the report at test size: sola, --lr 1e-3, batches of 8, 60 epochs. */
static int guarded_run(const char *feats, float lr, int stop, const char *ckpt, seen *sn,
                       sola_train_result *r, sola_model **out)
{
    sola_dataset *d = NULL;
    sola_err e = {0};
    ck_assert_msg(sola_dataset_open(feats, &d, &e) == 0, "%s", e.msg);
    sola_model *m = sola_model_new(32, 16, 5, 1, 0, &e);
    ck_assert_ptr_nonnull(m);
    sola_model_init(m, 0);
    sola_trainer_opts o;
    sola_trainer_default(&o);
    o.cfg.P = 32, o.batch = 8, o.epochs = 60, o.lr = lr, o.threads = 1;
    o.stop_on_collapse = stop;
    o.checkpoint = ckpt;
    o.progress = record;
    o.ud = sn;
    memset(sn, 0, sizeof *sn);
    int rc = sola_train(m, d, &o, r, &e);
    ck_assert_msg(rc == 0 || rc == SOLA_ECOLLAPSE, "rc %d: %s", rc, e.msg);
    if (rc == SOLA_ECOLLAPSE) {
        ASSERT_HAS(e.msg, "collapse guard stopped training");
    }
    sola_dataset_free(d);
    *out = m;
    return rc;
}

/* mean cosine between the refined snippets of one video, all pairs */
static double mean_cosine(const sola_model *m, const char *feats, int packed)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/video_0000.npy", feats);
    sola_array a;
    sola_err e = {0};
    ck_assert_int_eq(sola_npy_load(p, 0, &a, &e), 0);
    int T = (int)a.shape[0], Cc = (int)a.shape[1];
    float *y = malloc((size_t)T * Cc * sizeof *y);
    if (packed) {
        sola_ws *ws = sola_ws_new();
        ck_assert_msg(sola_refine(m, a.data, T, y, ws, &e) == 0, "%s", e.msg);
        sola_ws_free(ws);
    } else
        memcpy(y, a.data, (size_t)T * Cc * sizeof *y);
    double sum = 0;
    long n = 0;
    for (int i = 0; i < T; i++)
        for (int j = i + 1; j < T; j++) {
            double d = 0, ni = 0, nj = 0;
            for (int c = 0; c < Cc; c++) {
                const float u = y[(size_t)i * Cc + c], v = y[(size_t)j * Cc + c];
                d += (double)u * v, ni += (double)u * u, nj += (double)v * v;
            }
            sum += d / sqrt(ni * nj + 1e-30), n++;
        }
    free(y);
    sola_array_free(&a);
    return sum / (double)n;
}

START_TEST(collapse_guard_fires_on_the_lr_1e_3_collapse_and_not_on_a_healthy_run)
{
    char *root, *feats = synth_dir(0, &root);
    seen sn;
    sola_train_result r;
    sola_model *m;
    ck_assert_int_eq(guarded_run(feats, 1e-3f, 0, NULL, &sn, &r, &m), 0);
    fprintf(stderr, "realistic, lr 1e-3: norm ratio %.3f, constant share %.2f at epoch %d; "
            "fired at epoch %d\n", sn.ratio[sn.epochs], sn.share[sn.epochs], sn.epochs,
            sn.fired_at);
    ck_assert_int_gt(sn.fired_at, 0);
    ck_assert_int_eq(r.collapse_epoch, sn.fired_at);
    ck_assert(r.norm_ratio > SOLA_COLLAPSE_RATIO && r.const_share > SOLA_COLLAPSE_SHARE);
    /* what the numbers stand for: the refined snippets of a video all look alike */
    double raw = mean_cosine(NULL, feats, 0), ref = mean_cosine(m, feats, 1);
    fprintf(stderr, "mean cosine between snippets of a video: raw %.3f, refined %.3f\n", raw,
            ref);
    ck_assert(ref > raw + 0.1);
    sola_train_result_free(&r);
    sola_model_free(m);

    /* the authors' rate on the same data: quiet */
    ck_assert_int_eq(guarded_run(feats, 1e-4f, 0, NULL, &sn, &r, &m), 0);
    fprintf(stderr, "realistic, lr 1e-4: norm ratio %.3f, constant share %.2f\n",
            sn.ratio[sn.epochs], sn.share[sn.epochs]);
    ck_assert_int_eq(sn.fired_at, 0);
    ck_assert_int_eq(r.collapse_epoch, 0);
    sola_train_result_free(&r);
    sola_model_free(m);
    tu_rmtree(root);
    free(root), free(feats);

    /* a run where training helps (the simple benchmark, the worked example's rate) */
    feats = synth_dir(1, &root);
    ck_assert_int_eq(guarded_run(feats, 1e-4f, 0, NULL, &sn, &r, &m), 0);
    fprintf(stderr, "simple, lr 1e-4: norm ratio %.3f, constant share %.2f\n",
            sn.ratio[sn.epochs], sn.share[sn.epochs]);
    ck_assert_int_eq(sn.fired_at, 0);
    ck_assert_int_eq(sn.epochs, 60);
    sola_train_result_free(&r);
    sola_model_free(m);
    tu_rmtree(root);
    free(root), free(feats);
}
END_TEST

START_TEST(stop_on_collapse_keeps_the_last_good_state)
{
    char *root, *feats = synth_dir(0, &root);
    char ck[4096];
    snprintf(ck, sizeof ck, "%s/ck.safetensors", root);
    seen sn;
    sola_train_result r;
    sola_model *m;
    ck_assert_int_eq(guarded_run(feats, 1e-3f, 1, ck, &sn, &r, &m), SOLA_ECOLLAPSE);
    ck_assert_int_gt(sn.fired_at, 1);
    ck_assert_int_eq(r.collapse_epoch, sn.fired_at);
    ck_assert_int_eq(r.good_epoch, sn.fired_at - 1);
    ck_assert_int_eq(sn.epochs, sn.fired_at); /* stopped there */
    ck_assert(!sn.collapse[r.good_epoch]);     /* the guard passed the kept state */
    sola_model_free(m);
    sola_err e = {0};
    sola_model *g = sola_model_load(ck, &e);
    ck_assert_msg(g != NULL, "%s", e.msg);
    ck_assert_int_eq(sola_trainer_state_epoch(g), r.good_epoch);
    sola_model_free(g);
    sola_train_result_free(&r);
    tu_rmtree(root);
    free(root), free(feats);
}
END_TEST

START_TEST(collapse_numbers_by_hand)
{
    /* x = two snippets; refinements (1, 0) and (1, 0): all constant, ratio 1/2 */
    float x[4] = {2, 0, 0, 2}, y[4] = {3, 0, 1, 2};
    sola_collapse_stats st;
    ck_assert_int_eq(sola_collapse_measure(x, y, 2, 2, &st), 0);
    ck_assert_double_eq_tol(st.norm_ratio, 0.5, 1e-6);
    ck_assert_double_eq_tol(st.const_share, 1.0, 1e-9);
    /* refinements (1, 0) and (-1, 0): nothing constant */
    float z[4] = {3, 0, -1, 2};
    ck_assert_int_eq(sola_collapse_measure(x, z, 2, 2, &st), 0);
    ck_assert_double_eq_tol(st.const_share, 0.0, 1e-9);
    /* (2, 0) and (0, 0): mean (1, 0), energy (4 + 0) / 2 = 2: share 1/2 */
    float w[4] = {4, 0, 0, 2};
    ck_assert_int_eq(sola_collapse_measure(x, w, 2, 2, &st), 0);
    ck_assert_double_eq_tol(st.const_share, 0.5, 1e-9);
    ck_assert(!sola_collapse_fires(&st, 1.0, 0.5));
    st.norm_ratio = 1.5, st.const_share = 0.6;
    ck_assert(sola_collapse_fires(&st, 1.0, 0.5));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("train_guard");
    TCase *tc = tcase_create("train_guard");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, resume_refuses_a_changed_setting_and_names_it);
    tcase_add_test(tc, progress_shows_steps_and_cycle_terms_against_chance);
    tcase_add_test(tc, nonfinite_values_are_refused_with_the_file_named);
    tcase_add_test(tc, channel_first_files_get_a_hint);
    tcase_add_test(tc, collapse_numbers_by_hand);
    tcase_add_test(tc, collapse_guard_fires_on_the_lr_1e_3_collapse_and_not_on_a_healthy_run);
    tcase_add_test(tc, stop_on_collapse_keeps_the_last_good_state);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
