/* test_deploy.c -- runs the deployment checks in tests/deploy/ under ctest.
 *
 * The checks themselves are shell/python scripts (they drive nginx, kubectl,
 * systemd-analyze and several solad processes); this wrapper only runs them, shows
 * their output when they fail, and turns their "SKIP:" lines (a tool such as nginx is
 * not installed, or solad is not built) into a skipped test (tu_skip: exit 77, and a
 * failure under CI=true). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "deployutil.h"

START_TEST(manifests_pass)
{
    char *root = tu_path("");
    char *solad = du_solad_path();
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "SOLAD='%s' '%s/tests/deploy/check_manifests.sh' '%s'",
             solad ? solad : "", root, root);
    du_run_script("check_manifests.sh", cmd);
    free(solad);
    free(root);
}
END_TEST

/* The checker must notice what an operator would trip over: a readiness probe on the
 * wrong path, an nginx body limit below solad's, a stop timeout shorter than the drain. */
/* skip: tools to act as if missing (SKIP_TOOLS). The tools that cannot see the broken
 * file are left out too (shellcheck reads tests/deploy, nginx -t the nginx config,
 * systemd-analyze the units): a full run takes ~25 s here, and there are many cases. */
static void broken_copy_fails_env(const char *skip, const char *file, const char *sed_expr,
                                  const char *expect)
{
    char *root = tu_path("");
    char *dir = tu_tmpdir();
    ck_assert_ptr_nonnull(dir);
    ck_assert_int_eq(tu_system("cp -r '%s/Dockerfile' '%s/deploy' '%s/'", root, root, dir), 0);
    ck_assert_int_eq(tu_system("sed -i '%s' '%s/%s'", sed_expr, dir, file), 0);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "SKIP_TOOLS='%s shellcheck%s%s' '%s/tests/deploy/check_manifests.sh' '%s'",
             skip, strncmp(file, "deploy/nginx/", 13) ? " nginx" : "",
             strncmp(file, "deploy/systemd/", 15) ? " systemd-analyze" : "", root, dir);
    char *out = NULL;
    int st = du_run_logged(cmd, &out);
    ck_assert_msg(st == 1, "check_manifests.sh accepted a broken %s (exit %d):\n%s", file, st,
                  du_tail(out, 2000));
    ck_assert_msg(strstr(out, expect) != NULL, "the failure does not mention '%s':\n%s", expect,
                  du_tail(out, 2000));
    free(out);
    tu_rmtree(dir);
    free(dir);
    free(root);
}

static void broken_copy_fails(const char *file, const char *sed_expr, const char *expect)
{
    broken_copy_fails_env("", file, sed_expr, expect);
}

START_TEST(manifests_catch_wrong_probe)
{
    broken_copy_fails("deploy/k8s/base/deployment.yaml", "s#path: /readyz#path: /ready#",
                      "readinessProbe path");
}
END_TEST

/* A fresh Debian machine has no kubectl: the raw-YAML fallback must still catch it. */
START_TEST(manifests_catch_wrong_probe_without_kubectl)
{
    broken_copy_fails_env("kubectl", "deploy/k8s/base/deployment.yaml",
                          "s#path: /readyz#path: /ready#", "readinessProbe path");
}
END_TEST

START_TEST(manifests_catch_body_limit_mismatch)
{
    broken_copy_fails("deploy/nginx/solad.conf", "s#client_max_body_size 256m#client_max_body_size 1m#",
                      "client_max_body_size");
}
END_TEST

START_TEST(manifests_catch_short_stop_timeout)
{
    broken_copy_fails("deploy/systemd/solad.service", "s#^TimeoutStopSec=.*#TimeoutStopSec=10#",
                      "TimeoutStopSec");
}
END_TEST

/* The issue's list of what operators tripped over, each re-broken in a copy. */
START_TEST(manifests_catch_dataset_limit_below_max_upload)
{
    broken_copy_fails("deploy/nginx/solad.conf", "s#client_max_body_size 64g#client_max_body_size 256m#",
                      "max-upload");
}
END_TEST

START_TEST(manifests_catch_replicas_under_hpa)
{
    broken_copy_fails("deploy/k8s/base/deployment.yaml", "s#^  revisionHistoryLimit: 5#  replicas: 2\\n  revisionHistoryLimit: 5#",
                      "manages it");
}
END_TEST

START_TEST(manifests_catch_replicas_under_hpa_without_kubectl)
{
    broken_copy_fails_env("kubectl", "deploy/k8s/base/deployment.yaml",
                          "s#^  revisionHistoryLimit: 5#  replicas: 2\\n  revisionHistoryLimit: 5#",
                          "manages it");
}
END_TEST

START_TEST(manifests_catch_syntax_directive)
{
    broken_copy_fails("Dockerfile", "1i # syntax=docker/dockerfile:1", "syntax directive");
}
END_TEST

START_TEST(manifests_catch_no_readiness_notification)
{
    broken_copy_fails("deploy/systemd/solad@.service", "s#^Type=notify#Type=simple#", "Type=notify");
}
END_TEST

START_TEST(manifests_catch_rolling_trainer)
{
    broken_copy_fails("deploy/k8s/base/trainer.yaml", "s#type: Recreate#type: RollingUpdate#",
                      "Recreate");
}
END_TEST

START_TEST(manifests_catch_serving_replicas_that_train)
{
    broken_copy_fails("deploy/k8s/base/deployment.yaml", "/- --serve-only/d", "--serve-only");
}
END_TEST

START_TEST(manifests_catch_no_topology_spread)
{
    broken_copy_fails("deploy/k8s/base/deployment.yaml",
                      "s#topologyKey: topology.kubernetes.io/zone#topologyKey: kubernetes.io/hostname#",
                      "topology.kubernetes.io/zone");
}
END_TEST

START_TEST(manifests_catch_closed_network_policy)
{
    broken_copy_fails("deploy/k8s/base/networkpolicy.yaml", "s#port: 8080#port: 9090#",
                      "port 8080");
}
END_TEST

START_TEST(manifests_catch_servicemonitor_wrong_port)
{
    broken_copy_fails("deploy/k8s/components/servicemonitor/servicemonitor.yaml",
                      "s#- port: http#- port: metrics#", "ServiceMonitor port");
}
END_TEST

/* The batch Jobs (deploy/k8s/batch): a shard count that is not the Job's completions
 * (videos refined twice or never), a Job that is not Indexed, a retry that redoes
 * everything, a trainer that cannot resume, a registration the network blocks. */
START_TEST(manifests_catch_shards_not_completions)
{
    broken_copy_fails("deploy/k8s/batch/refine-job.yaml", "s#^  completions: 8#  completions: 6#",
                      "differs from completions");
}
END_TEST

START_TEST(manifests_catch_shards_not_completions_without_kubectl)
{
    broken_copy_fails_env("kubectl", "deploy/k8s/batch/refine-job.yaml",
                          "s#^  completions: 8#  completions: 6#", "differs from completions");
}
END_TEST

START_TEST(manifests_catch_refine_job_not_indexed)
{
    broken_copy_fails("deploy/k8s/batch/refine-job.yaml", "/completionMode: Indexed/d",
                      "Indexed Job");
}
END_TEST

START_TEST(manifests_catch_refine_without_skip_existing)
{
    broken_copy_fails("deploy/k8s/batch/refine-job.yaml", "/- --skip-existing/d",
                      "--skip-existing");
}
END_TEST

START_TEST(manifests_catch_train_without_resume)
{
    broken_copy_fails("deploy/k8s/batch/train-job.yaml", "s#resume=--resume#resume=#",
                      "start training over");
}
END_TEST

START_TEST(manifests_catch_train_registration_blocked)
{
    broken_copy_fails("deploy/k8s/batch/networkpolicy.yaml", "s#port: 8080#port: 9090#",
                      "model registration");
}
END_TEST

START_TEST(nginx_front_behaviour)
{
    char *root = tu_path("");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s/tests/deploy/nginx_behaviour.sh'", root);
    du_run_script("nginx_behaviour.sh", cmd);
    free(root);
}
END_TEST

START_TEST(replicas_behind_nginx)
{
    char *root = tu_path("");
    char *solad = du_solad_path();
    if (!solad) {
        tu_skip("replicas.sh: no solad in %s (build solad too)", tu_bin());
        free(root);
        return;
    }
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s/tests/deploy/replicas.sh' '%s'", root, solad);
    du_run_script("replicas.sh", cmd);
    free(solad);
    free(root);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("deploy");
    TCase *t = tcase_create("manifests");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, manifests_pass);
    tcase_add_test(t, manifests_catch_wrong_probe);
    tcase_add_test(t, manifests_catch_wrong_probe_without_kubectl);
    tcase_add_test(t, manifests_catch_body_limit_mismatch);
    tcase_add_test(t, manifests_catch_short_stop_timeout);
    tcase_add_test(t, manifests_catch_dataset_limit_below_max_upload);
    tcase_add_test(t, manifests_catch_replicas_under_hpa);
    tcase_add_test(t, manifests_catch_replicas_under_hpa_without_kubectl);
    tcase_add_test(t, manifests_catch_syntax_directive);
    tcase_add_test(t, manifests_catch_no_readiness_notification);
    tcase_add_test(t, manifests_catch_rolling_trainer);
    tcase_add_test(t, manifests_catch_serving_replicas_that_train);
    tcase_add_test(t, manifests_catch_no_topology_spread);
    tcase_add_test(t, manifests_catch_closed_network_policy);
    tcase_add_test(t, manifests_catch_servicemonitor_wrong_port);
    tcase_add_test(t, manifests_catch_shards_not_completions);
    tcase_add_test(t, manifests_catch_shards_not_completions_without_kubectl);
    tcase_add_test(t, manifests_catch_refine_job_not_indexed);
    tcase_add_test(t, manifests_catch_refine_without_skip_existing);
    tcase_add_test(t, manifests_catch_train_without_resume);
    tcase_add_test(t, manifests_catch_train_registration_blocked);
    suite_add_tcase(s, t);
    TCase *n = tcase_create("nginx");
    tcase_set_timeout(n, 120);
    tcase_add_test(n, nginx_front_behaviour);
    suite_add_tcase(s, n);
    TCase *r = tcase_create("replicas");
    tcase_set_timeout(r, 400);
    tcase_add_test(r, replicas_behind_nginx);
    suite_add_tcase(s, r);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
