/* test_solad_cli.c -- solad's command line as an operator meets it: usage errors exit 2
 * with the error on the last line (not above 50 lines of usage), --help lists every
 * flag, --data refuses a missing parent unless --create-data, and a model upload that
 * is not a safetensors file is named for what it is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "serverutil.h"

/* Runs solad with ARGS (shell words); returns its exit status, *err its stderr. */
static int run_solad(const char *dir, const char *args, char **err, char **out)
{
    int rc = tu_system("cd '%s' && timeout 20 '%s/solad' %s >out.txt 2>err.txt", dir, tu_bin(),
                       args);
    char p[4096];
    snprintf(p, sizeof p, "%s/err.txt", dir);
    *err = tu_read(p, NULL);
    ck_assert_ptr_nonnull(*err);
    if (out) {
        snprintf(p, sizeof p, "%s/out.txt", dir);
        *out = tu_read(p, NULL);
        ck_assert_ptr_nonnull(*out);
    }
    return rc;
}

/* The last non-empty line of s (in place). */
static const char *last_line(char *s)
{
    size_t n = strlen(s);
    while (n && s[n - 1] == '\n')
        s[--n] = '\0';
    char *nl = strrchr(s, '\n');
    return nl ? nl + 1 : s;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void expect_usage_error(const char *dir, const char *args, const char *needle)
{
    char *err;
    int rc = run_solad(dir, args, &err, NULL);
    ck_assert_msg(rc == 2, "solad %s: exit %d, wanted 2; stderr: %s", args, rc, err);
    ck_assert_msg(count_lines(err) <= 3, "solad %s: %d lines of stderr:\n%s", args,
                  count_lines(err), err);
    const char *l = last_line(err);
    ck_assert_msg(!strncmp(l, "solad: ", 7) && strstr(l, needle),
                  "solad %s: the last line should be the error naming '%s'; it is: %s", args,
                  needle, l);
    free(err);
}

START_TEST(usage_errors_exit_2_with_the_error_last)
{
    char *dir = tu_tmpdir();
    expect_usage_error(dir, "--bogus", "--bogus");
    expect_usage_error(dir, "--listen nonsense", "--listen nonsense");
    expect_usage_error(dir, "--listen 127.0.0.1:http", "HOST:PORT");
    expect_usage_error(dir, "--listen 127.0.0.1:70000", "HOST:PORT");
    expect_usage_error(dir, "--workers 0", "--workers");
    expect_usage_error(dir, "stray", "stray");
    expect_usage_error(dir, "--create-data", "--create-data needs --data");
    expect_usage_error(dir, "--header-timeout 0", "--header-timeout 0: expected seconds");
    expect_usage_error(dir, "--body-timeout 5s", "--body-timeout 5s: expected seconds");
    expect_usage_error(dir, "--min-body-rate -1", "--min-body-rate -1: expected bytes per");
    expect_usage_error(dir, "--max-streams -1", "--max-streams -1");
    expect_usage_error(dir, "--max-streams many", "--max-streams many");
    expect_usage_error(dir, "--stream-idle-timeout 0", "--stream-idle-timeout 0");
    expect_usage_error(dir, "--stream-idle-timeout 5s", "--stream-idle-timeout 5s");
    expect_usage_error(dir, "--stream-idle-timeout nan", "seconds, 0.01 or more");
    expect_usage_error(dir, "--allowed-hosts 'ok.example,a b'", "'a b' is not a host name");
    expect_usage_error(dir, "--allowed-hosts ok.example,,x", "'' is not a host name");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(help_lists_every_flag)
{
    char *dir = tu_tmpdir();
    char *err, *out;
    ck_assert_int_eq(run_solad(dir, "--help", &err, &out), 0);
    static const char *flags[] = {
        "--listen", "--data", "--create-data", "--dim", "--workers", "--threads",
        "--max-body", "--max-frames", "--queue", "--token-file", "--log-format",
        "--default-model", "--drain-timeout", "--conn-timeout", "--header-timeout",
        "--body-timeout", "--min-body-rate", "--allowed-hosts", "--max-conns",
        "--max-conns-per-ip", "--rescan-interval", "--max-upload", "--train-threads",
        "--job-queue", "--resume-jobs", "--max-batch-frames", "--batch-window-us", "--max-streams",
        "--stream-idle-timeout", "--version",
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        ck_assert_msg(strstr(out, flags[i]), "solad --help does not mention %s", flags[i]);
    free(err);
    free(out);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(data_with_a_missing_parent_is_refused)
{
    char *dir = tu_tmpdir();
    char typo[8192], parent[4096];
    snprintf(parent, sizeof parent, "%s/no-such-dir", dir);
    snprintf(typo, sizeof typo, "%s/solad", parent);
    char args[16384];
    snprintf(args, sizeof args, "--listen 127.0.0.1:0 --data '%s'", typo);
    expect_usage_error(dir, args, "no-such-dir");
    struct stat st;
    ck_assert_msg(stat(parent, &st) != 0, "solad created %s anyway", parent);
    /* a file where the directory should be */
    snprintf(typo, sizeof typo, "%s/afile", dir);
    ck_assert_int_eq(tu_write(typo, "x", 1), 0);
    snprintf(args, sizeof args, "--listen 127.0.0.1:0 --data '%s'", typo);
    expect_usage_error(dir, args, "not a directory");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(create_data_creates_the_path_and_serves)
{
    char *dir = tu_tmpdir();
    char data[4096], models[8192];
    snprintf(data, sizeof data, "%s/a/b/state", dir);
    snprintf(models, sizeof models, "%s/models", data);
    const char *args[] = {"--data", data, "--create-data", NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    struct stat st;
    ck_assert_int_eq(stat(models, &st), 0);
    su_resp r;
    ck_assert_int_eq(su_get(&s, NULL, "/readyz", &r), 200);
    su_resp_free(&r);
    /* a new directory whose parent exists needs no flag */
    ck_assert_int_eq(su_stop(&s), 0);
    snprintf(data, sizeof data, "%s/fresh", dir);
    const char *args2[] = {"--data", data, NULL};
    ck_assert_int_eq(su_start(&s, dir, args2), 0);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* A .npy uploaded as a model: 400 naming what it is, not a header length. */
START_TEST(npy_uploaded_as_a_model_is_named)
{
    char *dir = tu_tmpdir();
    char data[4096];
    snprintf(data, sizeof data, "%s/data", dir);
    const char *args[] = {"--data", data, NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    float *x = su_input(4, 8, 1);
    size_t len;
    void *npy = su_npy_of(x, 4, 8, &len);
    const char *oct[] = {"Content-Type: application/octet-stream", NULL};
    su_resp r;
    su_http(NULL, "PUT", su_url(&s, "/models/m/versions/1"), oct, npy, len, &r);
    ck_assert_msg(r.status == 400, "status %ld: %s", r.status, r.body ? r.body : "");
    ck_assert_msg(r.body && strstr(r.body, ".npy array") && !strstr(r.body, "header length"),
                  "%s", r.body ? r.body : "");
    su_resp_free(&r);
    free(npy);
    free(x);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("solad_cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, usage_errors_exit_2_with_the_error_last);
    tcase_add_test(tc, help_lists_every_flag);
    tcase_add_test(tc, data_with_a_missing_parent_is_refused);
    tcase_add_test(tc, create_data_creates_the_path_and_serves);
    tcase_add_test(tc, npy_uploaded_as_a_model_is_named);
    suite_add_tcase(s, tc);
    return su_run(s);
}
