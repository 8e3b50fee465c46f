/* test_deploy_roles.c -- the deployment scripts that start solad in its roles
 * (tests/deploy/roles.sh, readonly.sh, notify.py, batch.sh), apart from test_deploy so that
 * each stays well inside ctest's time limit on a busy machine. */
#include "deployutil.h"

/* Two --serve-only replicas and a trainer on one directory; SIGTERM to the trainer
 * mid-job, a new trainer resumes the job to succeeded by itself. */
START_TEST(serving_replicas_and_trainers)
{
    du_run_with_solad("roles.sh", "");
}
END_TEST

/* --models-dir on a read-only store (read-only root in a mount namespace). */
START_TEST(read_only_model_store)
{
    du_run_with_solad("readonly.sh", "");
}
END_TEST

/* deploy/k8s/batch's Jobs as their pods run: every index of the Indexed Job at once
 * (outputs and merged files equal one process's), the train Job's script registering
 * and activating its model with a real solad, run again as a replaced pod. */
START_TEST(batch_jobs)
{
    du_run_with_solad("batch.sh", "");
}
END_TEST

/* READY=1 once the models are loaded, STOPPING=1 on SIGTERM (Type=notify). */
START_TEST(systemd_notify)
{
    du_run_with_solad("notify.py", "");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("deploy_roles");
    TCase *o = tcase_create("roles");
    tcase_set_timeout(o, 500);
    tcase_add_test(o, serving_replicas_and_trainers);
    tcase_add_test(o, read_only_model_store);
    tcase_add_test(o, systemd_notify);
    tcase_add_test(o, batch_jobs);
    suite_add_tcase(s, o);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
