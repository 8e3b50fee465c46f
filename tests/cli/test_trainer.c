/* test_trainer.c -- the training loop: reproducible, resumable bit-for-bit (from an
 * epoch boundary and from the middle of an epoch), cancellable with a loadable
 * checkpoint, honest about skipped videos, and the `sola train` command around it. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "model.h"
#include "npy.h"
#include "rng.h"
#include "testutil.h"
#include "trainer.h"

enum { C = 8, H = 8, P = 16 };

/* 12 usable videos (T 30..41) + 2 too short for W = 23 (T = 20 and T = 23). Smooth
 * random walks, so that there is temporal structure to learn. */
static char *make_dataset(void)
{
    char *dir = tu_tmpdir();
    sola_rng r;
    sola_rng_seed(&r, 5);
    for (int v = 0; v < 14; v++) {
        int T = v < 12 ? 30 + v : (v == 12 ? 20 : 23);
        float *x = malloc((size_t)T * C * sizeof *x);
        for (int c = 0; c < C; c++) {
            float acc = 0;
            for (int t = 0; t < T; t++) {
                acc = 0.8f * acc + (float)sola_rng_normal(&r);
                x[t * C + c] = acc;
            }
        }
        char p[4096];
        snprintf(p, sizeof p, "%s/v%02d.npy", dir, v);
        int64_t shape[2] = {T, C};
        sola_err e = {0};
        ck_assert_msg(sola_npy_save(p, x, 2, shape, &e) == 0, "%s", e.msg);
        free(x);
    }
    return dir;
}

static sola_model *fresh_model(void)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(C, H, 5, 1, 0, &e);
    ck_assert_ptr_nonnull(m);
    sola_model_init(m, 3);
    return m;
}

static sola_trainer_opts small_opts(int epochs)
{
    sola_trainer_opts o;
    sola_trainer_default(&o);
    o.cfg.P = P;
    o.batch = 5; /* 12 usable videos: steps of 5, 5, 2 */
    o.lr = 1e-3f;
    o.epochs = epochs;
    o.seed = 11;
    return o;
}

static sola_model *train(const sola_dataset *d, sola_trainer_opts *o, sola_train_result *r,
                         int expect_rc)
{
    sola_model *m = fresh_model();
    sola_err e = {0};
    int rc = sola_train(m, d, o, r, &e);
    ck_assert_msg(rc == expect_rc, "rc %d: %s", rc, e.msg);
    return m;
}

static void assert_same_params(const sola_model *a, const sola_model *b)
{
    ck_assert_uint_eq(a->nparams, b->nparams);
    ck_assert_msg(memcmp(a->params, b->params, a->nparams * sizeof(float)) == 0,
                  "parameters differ");
}

START_TEST(same_seed_same_weights_other_seed_other_weights)
{
    char *dir = make_dataset();
    sola_dataset *d;
    sola_err e = {0};
    ck_assert_int_eq(sola_dataset_open(dir, &d, &e), 0);
    sola_trainer_opts o = small_opts(3);
    sola_train_result r1, r2, r3;
    sola_model *a = train(d, &o, &r1, 0), *b = train(d, &o, &r2, 0);
    assert_same_params(a, b);
    ck_assert_int_eq(r1.epochs_done, 3);
    ck_assert_mem_eq(r1.loss, r2.loss, 3 * sizeof(double));
    o.seed = 12;
    sola_model *c = train(d, &o, &r3, 0);
    ck_assert(memcmp(a->params, c->params, a->nparams * sizeof(float)) != 0);
    /* Training moved the identity module away from identity. */
    ck_assert(a->alpha[0] != 0.f);
    sola_train_result_free(&r1), sola_train_result_free(&r2), sola_train_result_free(&r3);
    sola_model_free(a), sola_model_free(b), sola_model_free(c);
    sola_dataset_free(d);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(short_videos_are_skipped_and_counted)
{
    char *dir = make_dataset();
    sola_dataset *d;
    sola_err e = {0};
    ck_assert_int_eq(sola_dataset_open(dir, &d, &e), 0);
    sola_trainer_opts o = small_opts(1);
    sola_train_result r;
    sola_model *m = train(d, &o, &r, 0);
    ck_assert_int_eq(r.videos, 12);
    ck_assert_int_eq(r.skipped, 2); /* T = 20 and T = 23 (T must exceed W) */
    ck_assert_int_eq(r.steps, 3);
    sola_train_result_free(&r);
    sola_model_free(m);

    /* A window longer than every video: nothing to train on, said clearly. */
    o.cfg.W = 60;
    m = fresh_model();
    ck_assert_int_eq(sola_train(m, d, &o, &r, &e), SOLA_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "no video is longer than the window"));
    ck_assert_ptr_nonnull(strstr(e.msg, "W=60"));
    sola_train_result_free(&r);
    sola_model_free(m);

    /* Features of another width. */
    m = sola_model_new(C + 1, H, 5, 1, 0, &e);
    sola_model_init(m, 1);
    o = small_opts(1);
    ck_assert_int_eq(sola_train(m, d, &o, NULL, &e), SOLA_ESHAPE);
    ck_assert_ptr_nonnull(strstr(e.msg, "C=8"));
    ck_assert_ptr_nonnull(strstr(e.msg, "C=9"));
    sola_model_free(m);
    sola_dataset_free(d);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(resume_from_epoch_checkpoint_is_bit_for_bit)
{
    char *dir = make_dataset();
    sola_dataset *d;
    sola_err e = {0};
    ck_assert_int_eq(sola_dataset_open(dir, &d, &e), 0);
    char ck[4096];
    snprintf(ck, sizeof ck, "%s/ck.safetensors", dir);

    sola_trainer_opts o = small_opts(2);
    sola_train_result full;
    sola_model *ref = train(d, &o, &full, 0);

    /* One epoch, saved like the CLI saves its output, then one more from the file. */
    o.epochs = 1;
    sola_model *half = train(d, &o, NULL, 0);
    ck_assert_int_eq(sola_model_save(half, ck, 1, &e), 0);
    sola_model *m = sola_model_load(ck, &e);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(sola_trainer_state_epoch(m), 1);
    ck_assert_int_eq(m->P, P);
    o = small_opts(2);
    o.seed = 999; /* ignored: a resumed run keeps the checkpoint's seed */
    o.resume = 1;
    sola_train_result r;
    ck_assert_msg(sola_train(m, d, &o, &r, &e) == 0, "%s", e.msg);
    assert_same_params(m, ref);
    ck_assert_int_eq(r.epochs_done, 2);
    ck_assert_int_eq(r.resumed_epoch, 1);
    ck_assert_int_eq(r.steps, 6);
    ck_assert_mem_eq(r.loss, full.loss, 2 * sizeof(double));
    sola_train_result_free(&r), sola_train_result_free(&full);
    sola_model_free(m), sola_model_free(half), sola_model_free(ref);
    sola_dataset_free(d);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Cancels after a given number of steps of the run. */
typedef struct stopper {
    atomic_int flag;
    int after, calls;
} stopper;

static void count_and_stop(const sola_train_progress *p, void *ud)
{
    stopper *s = ud;
    (void)p;
    if (++s->calls == s->after)
        atomic_store(&s->flag, 1);
}

START_TEST(cancel_mid_epoch_checkpoints_and_resumes_bit_for_bit)
{
    char *dir = make_dataset();
    sola_dataset *d;
    sola_err e = {0};
    ck_assert_int_eq(sola_dataset_open(dir, &d, &e), 0);
    char ck[4096];
    snprintf(ck, sizeof ck, "%s/ck.safetensors", dir);

    sola_trainer_opts o = small_opts(3);
    sola_train_result full;
    sola_model *ref = train(d, &o, &full, 0);

    /* Stop after the 4th step: epoch 2 (0-based 1), one batch into it. */
    stopper s = {.after = 4};
    o.checkpoint = ck;
    o.progress = count_and_stop;
    o.ud = &s;
    o.cancel = &s.flag;
    sola_model *part = fresh_model();
    ck_assert_int_eq(sola_train(part, d, &o, NULL, &e), SOLA_ECANCEL);
    ck_assert_int_eq(s.calls, 4); /* stopped before starting another step */
    ck_assert_ptr_nonnull(strstr(e.msg, ck));
    sola_model_free(part);

    sola_model *m = sola_model_load(ck, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    const sola_tensor *st = sola_model_extra(m, "trainer.step");
    ck_assert_ptr_nonnull(st);
    ck_assert_float_eq(st->data[0], 1.f);
    ck_assert_int_eq(sola_trainer_state_epoch(m), 1);
    /* The checkpoint is a usable model for inference as it is. */
    ck_assert_str_eq(sola_model_meta(m, "objective"), "sola");

    sola_trainer_opts o2 = small_opts(3);
    o2.resume = 1;
    sola_train_result r;
    ck_assert_msg(sola_train(m, d, &o2, &r, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(r.resumed_epoch, 1);
    ck_assert_int_eq(r.resumed_step, 1);
    assert_same_params(m, ref);
    ck_assert_mem_eq(r.loss, full.loss, 3 * sizeof(double));
    sola_train_result_free(&r), sola_train_result_free(&full);
    sola_model_free(m), sola_model_free(ref);
    sola_dataset_free(d);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(periodic_checkpoints_and_metadata)
{
    char *dir = make_dataset();
    sola_dataset *d;
    sola_err e = {0};
    ck_assert_int_eq(sola_dataset_open(dir, &d, &e), 0);
    char ck[4096], out[4096];
    snprintf(ck, sizeof ck, "%s/ck.safetensors", dir);
    snprintf(out, sizeof out, "%s/out.safetensors", dir);
    sola_trainer_opts o = small_opts(4);
    o.checkpoint = ck;
    o.checkpoint_every = 3;
    o.dataset_name = "tiny";
    sola_train_result r;
    sola_model *m = train(d, &o, &r, 0);
    /* Written after epoch 3 (not after the last: the caller saves the result). */
    sola_model *c = sola_model_load(ck, &e);
    ck_assert_msg(c != NULL, "%s", e.msg);
    ck_assert_int_eq(sola_trainer_state_epoch(c), 3);
    ck_assert_str_eq(sola_model_meta(c, "epochs"), "3");
    sola_model_free(c);

    ck_assert_int_eq(sola_model_save(m, out, 1, &e), 0);
    sola_model *f = sola_model_load(out, &e);
    ck_assert_ptr_nonnull(f);
    ck_assert_str_eq(sola_model_meta(f, "objective"), "sola");
    ck_assert_str_eq(sola_model_meta(f, "dataset"), "tiny");
    ck_assert_str_eq(sola_model_meta(f, "epochs"), "4");
    const char *created = sola_model_meta(f, "created");
    ck_assert_ptr_nonnull(created);
    ck_assert_int_eq(strlen(created), 20); /* 2026-01-31T12:34:56Z */
    ck_assert(created[4] == '-' && created[10] == 'T' && created[19] == 'Z');
    ck_assert_str_eq(sola_model_meta(f, "train.lr"), "0.001");
    ck_assert_int_eq(f->P, P); /* the head is kept so training can continue */
    const sola_tensor *h = sola_model_extra(f, "trainer.loss_history");
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(h->shape[0], 4);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(h->data[i], (float)r.loss[i]);
    sola_train_result_free(&r);
    sola_model_free(f), sola_model_free(m);
    sola_dataset_free(d);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(loss_goes_down_on_temporally_structured_data)
{
    char *dir = make_dataset();
    sola_dataset *d;
    sola_err e = {0};
    ck_assert_int_eq(sola_dataset_open(dir, &d, &e), 0);
    sola_trainer_opts o = small_opts(40);
    sola_train_result r;
    sola_model *m = train(d, &o, &r, 0);
    double first = (r.loss[0] + r.loss[1] + r.loss[2]) / 3;
    double last = (r.loss[37] + r.loss[38] + r.loss[39]) / 3;
    ck_assert_msg(last < first - 0.01, "loss %f -> %f", first, last);
    sola_train_result_free(&r);
    sola_model_free(m);
    sola_dataset_free(d);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(cli_train_resume_and_exit_codes)
{
    char *dir = make_dataset();
    const char *bin = tu_bin();
    const char *common = "--hidden 8 --head 16 --batch 5 --lr 1e-3 --seed 4";
    /* 3 epochs straight vs 2 + resume to 3 through the command line. */
    ck_assert_int_eq(tu_system("%s/sola train --dim 8 %s %s -o %s/a.safetensors --epochs 3 "
                               ">/dev/null 2>&1", bin, common, dir, dir), 0);
    ck_assert_int_eq(tu_system("%s/sola train --dim 8 %s %s -o %s/b.safetensors --epochs 2 "
                               ">/dev/null 2>&1", bin, common, dir, dir), 0);
    ck_assert_int_eq(tu_system("%s/sola train --dim 8 %s %s -o %s/b.safetensors --epochs 3 "
                               "--resume >/dev/null 2>&1", bin, common, dir, dir), 0);
    char pa[4096], pb[4096];
    snprintf(pa, sizeof pa, "%s/a.safetensors", dir);
    snprintf(pb, sizeof pb, "%s/b.safetensors", dir);
    sola_err e = {0};
    sola_model *a = sola_model_load(pa, &e), *b = sola_model_load(pb, &e);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    assert_same_params(a, b);
    sola_model_free(a), sola_model_free(b);

    ck_assert_int_eq(tu_system("%s/sola train --dim 8 %s -o %s/c.safetensors --objective moco "
                               ">/dev/null 2>&1", bin, dir, dir), 2);
    ck_assert_int_eq(tu_system("%s/sola train --dim 8 %s -o %s/c.safetensors --objective cycle "
                               "--temperature 0 >/dev/null 2>&1", bin, dir, dir), 2);
    ck_assert_int_eq(tu_system("%s/sola train --dim 8 %s -o %s/c.safetensors --objective cycle "
                               "--queue 8 --cycle-subset 9 >/dev/null 2>&1", bin, dir, dir), 2);
    ck_assert_int_eq(tu_system("%s/sola train --dim 8 %s >/dev/null 2>&1", bin, dir), 2);
    ck_assert_int_eq(tu_system("%s/sola train %s -o %s/c.safetensors >/dev/null 2>&1", bin, dir,
                               dir), 2);
    ck_assert_int_eq(tu_system("%s/sola train --dim 8 --epochs x %s -o %s/c.safetensors "
                               ">/dev/null 2>&1", bin, dir, dir), 2);
    ck_assert_int_eq(tu_system("%s/sola train --dim 9 %s -o %s/c.safetensors --epochs 1 "
                               ">/dev/null 2>&1", bin, dir, dir), 1);
    ck_assert_int_eq(tu_system("%s/sola train --dim 8 %s/missing -o %s/c.safetensors "
                               ">/dev/null 2>&1", bin, dir, dir), 1);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("trainer");
    TCase *tc = tcase_create("trainer");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, same_seed_same_weights_other_seed_other_weights);
    tcase_add_test(tc, short_videos_are_skipped_and_counted);
    tcase_add_test(tc, resume_from_epoch_checkpoint_is_bit_for_bit);
    tcase_add_test(tc, cancel_mid_epoch_checkpoints_and_resumes_bit_for_bit);
    tcase_add_test(tc, periodic_checkpoints_and_metadata);
    tcase_add_test(tc, loss_goes_down_on_temporally_structured_data);
    tcase_add_test(tc, cli_train_resume_and_exit_codes);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
