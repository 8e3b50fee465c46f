/* test_progress.c -- training progress as deltas (docs/jobs.md, "Progress"):
 * the training process sends one epoch's loss per line, never the history again;
 * solad's event streams send at most one progress event per 250 ms, and the losses
 * they carry add up to exactly the job's loss history, with no GET /jobs/ID needed.
 * Epochs are made very fast (2 videos, C=16, H=8) so that thousands of them pass. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "npy.h"
#include "rawconn.h"
#include "serverutil.h"

#define C_DIM 16

/* DIR/ds/v0.npy, v1.npy: two [40, C_DIM] videos. */
static void write_dataset(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/ds", dir);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    for (int i = 0; i < 2; i++) {
        float *x = su_input(40, C_DIM, 5u + (unsigned)i);
        int64_t sh[2] = {40, C_DIM};
        sola_err e = {0};
        snprintf(p, sizeof p, "%s/ds/v%d.npy", dir, i);
        ck_assert_int_eq(sola_npy_save(p, x, 2, sh, &e), 0);
        free(x);
    }
}

/* The training process's own lines: a start line (with the history before the run),
 * then progress lines whose size does not grow with the epoch, each epoch's end with
 * its one loss. */
START_TEST(trainer_sends_one_loss_per_line)
{
    char *dir = tu_tmpdir();
    write_dataset(dir);
    enum { EPOCHS = 400 };
    char spec[8192];
    snprintf(spec, sizeof spec,
             "{\"dataset\":\"ds\",\"output_model\":\"o\",\"epochs\":%d,\"batch\":8,"
             "\"head\":16,\"hidden\":8,\"checkpoint_every\":0,\"dataset_dir\":\"%s/ds\","
             "\"checkpoint\":\"%s/ck.safetensors\",\"output\":\"%s/out.safetensors\","
             "\"base\":null,\"resume\":false,\"threads\":1}",
             EPOCHS, dir, dir, dir);
    char cmd[16384], out[4096];
    snprintf(out, sizeof out, "%s/lines", dir);
    snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=1 '%s/solad' --train-worker '%s' > '%s'",
             tu_bin(), spec, out);
    ck_assert_int_eq(tu_system("%s", cmd), 0);
    size_t len;
    char *text = tu_read(out, &len);
    ck_assert_ptr_nonnull(text);
    int nline = 0, ends = 0, starts = 0, dones = 0;
    size_t longest_early = 0, longest_late = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), nline++) {
        json_t *o = json_loads(line, 0, NULL);
        ck_assert_msg(o, "line %d is not JSON: %.200s", nline, line);
        const char *type = json_string_value(json_object_get(o, "type"));
        ck_assert_ptr_nonnull(type);
        if (!strcmp(type, "start")) {
            ck_assert_int_eq(nline, 0);
            ck_assert(json_is_array(json_object_get(o, "history")));
            ck_assert_int_eq(json_array_size(json_object_get(o, "history")), 0);
            starts++;
        } else if (!strcmp(type, "progress")) {
            ck_assert_ptr_null(json_object_get(o, "history"));
            if (json_is_true(json_object_get(o, "epoch_done"))) {
                ends++;
                ck_assert_int_eq(json_integer_value(json_object_get(o, "epochs_done")), ends);
                ck_assert(json_is_number(json_object_get(o, "epoch_loss")));
            }
            size_t l = strlen(line);
            if (ends < 20 && l > longest_early)
                longest_early = l;
            if (ends > EPOCHS - 20 && l > longest_late)
                longest_late = l;
        } else if (!strcmp(type, "done")) {
            ck_assert_ptr_null(json_object_get(o, "history"));
            ck_assert_int_eq(json_integer_value(json_object_get(o, "epochs_done")), EPOCHS);
            dones++;
        }
        json_decref(o);
    }
    ck_assert_int_eq(starts, 1);
    ck_assert_int_eq(dones, 1);
    ck_assert_int_eq(ends, EPOCHS);
    /* a line at epoch 400 is no longer than one at epoch 10 (give or take digits) */
    ck_assert_msg(longest_late <= longest_early + 16 && longest_late < 512,
                  "progress lines grow: %zu bytes early, %zu late", longest_early,
                  longest_late);
    free(text);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- the event stream ---------------------------------------------------------- */

typedef struct evs {
    char *buf;
    size_t len, parsed;
    int progress, states;
    double first_ms, last_ms;
    float curve[32768];
    int ncurve;
    int gaps;          /* progress events whose loss_from was not the curve's end */
    char final[32];
} evs;

static void on_event(evs *v, const char *event, json_t *o)
{
    double now = rc_now_ms();
    if (!v->first_ms)
        v->first_ms = now;
    v->last_ms = now;
    if (!strcmp(event, "state")) {
        v->states++;
        json_t *h = json_object_get(o, "loss_history");
        v->ncurve = 0;
        for (size_t i = 0; i < json_array_size(h) && i < 32768; i++)
            v->curve[v->ncurve++] = (float)json_number_value(json_array_get(h, i));
        const char *st = json_string_value(json_object_get(o, "state"));
        if (st && (!strcmp(st, "succeeded") || !strcmp(st, "failed") ||
                   !strcmp(st, "cancelled")))
            snprintf(v->final, sizeof v->final, "%s", st);
    } else if (!strcmp(event, "progress")) {
        v->progress++;
        json_t *from = json_object_get(o, "loss_from"), *ls = json_object_get(o, "losses");
        ck_assert_msg(json_is_integer(from) && json_is_array(ls), "progress without deltas");
        int f = (int)json_integer_value(from);
        if (f != v->ncurve)
            v->gaps++;
        v->ncurve = f < v->ncurve ? f : v->ncurve;
        for (size_t i = 0; i < json_array_size(ls) && v->ncurve < 32768; i++)
            v->curve[v->ncurve++] = (float)json_number_value(json_array_get(ls, i));
        ck_assert_int_eq(json_integer_value(json_object_get(o, "epochs_done")), v->ncurve);
    }
}

static size_t ev_cb(char *p, size_t sz, size_t nm, void *ud)
{
    evs *v = ud;
    size_t n = sz * nm;
    char *b = realloc(v->buf, v->len + n + 1);
    if (!b)
        return 0;
    memcpy(b + v->len, p, n);
    v->buf = b;
    v->len += n;
    b[v->len] = '\0';
    for (;;) {
        char *start = b + v->parsed, *end = strstr(start, "\n\n");
        if (!end)
            break;
        *end = '\0';
        char *ev = strstr(start, "event: "), *data = strstr(start, "data: ");
        if (ev && data) {
            char name[32];
            sscanf(ev + 7, "%31s", name);
            json_t *o = json_loads(data + 6, JSON_DISABLE_EOF_CHECK, NULL);
            ck_assert_msg(o, "event data is not JSON: %.200s", data);
            on_event(v, name, o);
            json_decref(o);
        }
        v->parsed = (size_t)(end + 2 - b);
    }
    return n;
}

START_TEST(events_are_coalesced_and_carry_the_losses)
{
    char *dir = tu_tmpdir();
    const char *args[] = {"--data", dir, "--threads", "1", NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    /* the dataset through the API: two [40, C] items */
    for (int i = 0; i < 2; i++) {
        float *x = su_input(40, C_DIM, 5u + (unsigned)i);
        size_t len;
        void *b = su_npy_of(x, 40, C_DIM, &len);
        char path[64];
        snprintf(path, sizeof path, "/datasets/ds/items/v%d", i);
        su_resp r;
        const char *nh[] = {"Content-Type: application/x-npy", NULL};
        su_http(NULL, "PUT", su_url(&s, path), nh, b, len, &r);
        su_expect(&r, 201, NULL);
        free(b);
        free(x);
    }
    enum { EPOCHS = 15000 };
    char body[256];
    snprintf(body, sizeof body,
             "{\"dataset\":\"ds\",\"epochs\":%d,\"batch\":8,\"head\":16,\"hidden\":8,"
             "\"checkpoint_every\":0}",
             EPOCHS);
    const char *h[] = {"Content-Type: application/json", NULL};
    su_resp r;
    su_http(NULL, "POST", su_url(&s, "/train"), h, body, strlen(body), &r);
    ck_assert_int_eq(r.status, 202);
    char loc[64], path[96];
    ck_assert_ptr_nonnull(su_header(&r, "Location", loc, sizeof loc));
    su_resp_free(&r);
    snprintf(path, sizeof path, "%s/events", loc);

    static evs v;
    memset(&v, 0, sizeof v);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, su_url(&s, path));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ev_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &v);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    ck_assert_msg(!strcmp(v.final, "succeeded"), "ended with \"%s\"", v.final);

    /* the curve rebuilt from the events is the job's loss history, epoch for epoch */
    su_get(&s, NULL, loc, &r);
    json_t *o = json_loads(r.body, 0, NULL);
    su_resp_free(&r);
    json_t *hist = json_object_get(o, "loss_history");
    ck_assert_int_eq(json_array_size(hist), EPOCHS);
    ck_assert_int_eq(v.ncurve, EPOCHS);
    for (int i = 0; i < EPOCHS; i++)
        ck_assert_msg(v.curve[i] == (float)json_number_value(json_array_get(hist, (size_t)i)),
                      "epoch %d: %g from the events, %g in the record", i + 1,
                      (double)v.curve[i], json_number_value(json_array_get(hist, (size_t)i)));
    json_decref(o);
    /* at most one progress event per 250 ms (plus the partial intervals at the ends),
     * and never a gap the client would have to fill with GET /jobs/ID */
    double secs = (v.last_ms - v.first_ms) / 1000.0;
    fprintf(stderr, "events: %d progress and %d state events over %.1f s for %d epochs\n",
            v.progress, v.states, secs, EPOCHS);
    ck_assert_msg(v.progress <= (int)(secs * 4.0) + 2, "%d progress events in %.2f s",
                  v.progress, secs);
    ck_assert_int_eq(v.gaps, 0);
    free(v.buf);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("progress");
    TCase *tc = tcase_create("deltas");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, trainer_sends_one_loss_per_line);
    tcase_add_test(tc, events_are_coalesced_and_carry_the_losses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return su_run(suite());
}
