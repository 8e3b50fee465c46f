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

int main(void)
{
    Suite *s = suite_create("train_guard");
    TCase *tc = tcase_create("train_guard");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, resume_refuses_a_changed_setting_and_names_it);
    tcase_add_test(tc, progress_shows_steps_and_cycle_terms_against_chance);
    tcase_add_test(tc, nonfinite_values_are_refused_with_the_file_named);
    tcase_add_test(tc, channel_first_files_get_a_hint);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
