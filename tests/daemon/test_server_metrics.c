/* test_server_metrics.c -- what operators read: /metrics counters move by exactly the
 * requests made, the histogram is consistent, promtool accepts the page (when
 * installed), /healthz and /readyz say what they should, and --log-format json writes
 * one parseable line per request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "npy.h"
#include "serverutil.h"

/* Value of the sample line that starts with `series` ("name{labels}"); 0 if absent. */
static double sample(const char *page, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = page; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return 0;
}

static char *metrics_page(const su_server *s)
{
    su_resp r;
    ck_assert_int_eq(su_get(s, NULL, "/metrics", &r), 200);
    char h[128];
    ck_assert_str_eq(su_header(&r, "Content-Type", h, sizeof h),
                     "text/plain; version=0.0.4; charset=utf-8");
    char *page = r.body;
    r.body = NULL;
    su_resp_free(&r);
    return page;
}

#define REF200 "solad_http_requests_total{route=\"/refine\",method=\"POST\",code=\"200\"}"
#define REF422 "solad_http_requests_total{route=\"/refine\",method=\"POST\",code=\"422\"}"
#define UNM404 "solad_http_requests_total{route=\"unmatched\",method=\"GET\",code=\"404\"}"
#define HCOUNT "solad_http_request_duration_seconds_count{route=\"/refine\"}"
#define HINF "solad_http_request_duration_seconds_bucket{route=\"/refine\",le=\"+Inf\"}"
#define FRAMES "solad_frames_refined_total"

START_TEST(metrics_count_requests_and_pass_promtool)
{
    char *dir = tu_tmpdir();
    const char *args[] = {"--dim", "64", "--log-format", "json", NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    char *before = metrics_page(&s);
    su_resp r;
    char u[256];
    snprintf(u, sizeof u, "%s/refine", s.base);
    const char *hn[] = {"Content-Type: application/x-npy", NULL};
    float *x = su_input(5, 64, 1);
    void *b;
    size_t n;
    sola_err e = {0};
    int64_t sh[2] = {5, 64};
    ck_assert_int_eq(sola_npy_encode(x, 2, sh, &b, &n, &e), 0);
    for (int i = 0; i < 3; i++) {
        su_http(NULL, "POST", u, hn, b, n, &r);
        ck_assert_int_eq(r.status, 200);
        su_resp_free(&r);
    }
    free(b);
    int64_t sh2[2] = {5, 32};
    ck_assert_int_eq(sola_npy_encode(x, 2, sh2, &b, &n, &e), 0);
    su_http(NULL, "POST", u, hn, b, n, &r);
    ck_assert_int_eq(r.status, 422);
    su_resp_free(&r);
    ck_assert_int_eq(su_get(&s, NULL, "/no/such/route", &r), 404);
    su_resp_free(&r);
    char *after = metrics_page(&s);

    ck_assert_double_eq(sample(after, REF200) - sample(before, REF200), 3);
    ck_assert_double_eq(sample(after, REF422) - sample(before, REF422), 1);
    ck_assert_double_eq(sample(after, UNM404) - sample(before, UNM404), 1);
    ck_assert_double_eq(sample(after, FRAMES) - sample(before, FRAMES), 15);
    ck_assert_double_eq(sample(after, HCOUNT), 4);
    ck_assert_double_eq(sample(after, HINF), 4);
    ck_assert_double_eq(sample(after, "solad_model_info{model=\"default\",version=\"1\",dim=\"64\"}"),
                        1);
    ck_assert_double_eq(sample(after, "solad_jobs{state=\"running\"}"), 0);
    ck_assert_double_gt(sample(after, "process_start_time_seconds"), 1.6e9);
    ck_assert_ptr_nonnull(strstr(after, "solad_queue_depth 0\n"));
    ck_assert_ptr_nonnull(strstr(after, "solad_inflight 0\n"));
    /* every family announces itself */
    const char *fams[] = {"solad_http_requests_total", "solad_http_request_duration_seconds",
                          "solad_frames_refined_total", "solad_queue_depth", "solad_inflight",
                          "solad_model_info", "solad_jobs", "process_start_time_seconds"};
    for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
        char want[256];
        snprintf(want, sizeof want, "# HELP %s ", fams[i]);
        ck_assert_msg(strstr(after, want), "no HELP for %s", fams[i]);
        snprintf(want, sizeof want, "# TYPE %s ", fams[i]);
        ck_assert_msg(strstr(after, want), "no TYPE for %s", fams[i]);
    }

    if (access("/usr/bin/promtool", X_OK) == 0 || tu_system("command -v promtool >/dev/null") == 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s/metrics.txt", dir);
        ck_assert_int_eq(tu_write(path, after, strlen(after)), 0);
        int rc = tu_system("promtool check metrics < '%s' >&2", path);
        ck_assert_msg(rc == 0, "promtool check metrics rejected the page:\n%s", after);
    } else {
        tu_skip("promtool not installed (Debian: prometheus): exposition format checked by "
                "hand only");
    }

    /* health and readiness */
    ck_assert_int_eq(su_get(&s, NULL, "/healthz", &r), 200);
    json_t *j = json_loads(r.body, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "models_loaded")), 1);
    ck_assert(json_is_number(json_object_get(j, "uptime_s")));
    json_decref(j);
    su_resp_free(&r);
    ck_assert_int_eq(su_get(&s, NULL, "/livez", &r), 200);
    su_resp_free(&r);
    ck_assert_int_eq(su_get(&s, NULL, "/readyz", &r), 200);
    su_resp_free(&r);
    ck_assert_int_eq(su_stop(&s), 0);

    /* one JSON log line per request, with the fields operators filter on */
    size_t ln;
    char *log = tu_read(s.log, &ln);
    ck_assert_ptr_nonnull(log);
    int requests = 0, refine_ok = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        ck_assert_msg(o != NULL, "log line is not JSON: %s", line);
        if (json_object_get(o, "status")) {
            requests++;
            ck_assert(json_is_string(json_object_get(o, "method")));
            ck_assert(json_is_string(json_object_get(o, "path")));
            ck_assert(json_is_integer(json_object_get(o, "bytes")));
            ck_assert(json_is_number(json_object_get(o, "ms")));
            if (!strcmp(json_string_value(json_object_get(o, "path")), "/refine") &&
                json_integer_value(json_object_get(o, "status")) == 200)
                refine_ok++;
        }
        json_decref(o);
    }
    ck_assert_int_eq(refine_ok, 3);
    ck_assert_int_eq(requests, 10); /* 2 metrics, 3 ok, 422, 404, healthz, livez, readyz */
    free(log);
    free(x);
    free(b);
    free(before);
    free(after);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    Suite *s = suite_create("server_metrics");
    TCase *t = tcase_create("metrics");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, metrics_count_requests_and_pass_promtool);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
