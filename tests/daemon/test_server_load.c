/* test_server_load.c -- solad under concurrent clients: 32 threads with their own
 * curl handles get correct answers with zero failures; activating a new version while
 * they run fails nothing and every reply is one of the two versions' outputs; SIGTERM
 * under load answers every accepted request, refuses new connections, turns readiness
 * to 503 and exits 0. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "array.h"
#include "npy.h"
#include "serverutil.h"

#define C_DIM 64

/* Outcome of one reply against the expected outputs; returns the index of the
 * matching expectation (0 or 1) or -1. */
static int match_reply(const su_resp *r, int json, const float *const *want, int nwant, int T)
{
    if (r->rc != CURLE_OK || r->status != 200)
        return -1;
    float *got = NULL;
    sola_array a = {0};
    if (json) {
        int rows = 0, cols = 0;
        got = su_json_matrix(r->body, "features", &rows, &cols);
        if (!got || rows != T || cols != C_DIM) {
            free(got);
            return -1;
        }
    } else {
        sola_err e = {0};
        if (sola_npy_parse(r->body, r->len, "reply", 0, &a, &e) || a.shape[0] != T ||
            a.shape[1] != C_DIM)
            return -1;
        got = a.data;
    }
    int hit = -1;
    for (int k = 0; k < nwant && hit < 0; k++)
        if (tu_max_rel_err(got, want[k], (size_t)T * C_DIM) <= 1e-6)
            hit = k;
    free(got);
    return hit;
}

/* ---- 32 clients -------------------------------------------------------------- */

#define NCLIENT 32
#define PER_CLIENT 6

typedef struct client {
    const su_server *s;
    const sola_model *m;
    int id;
    int ok, bad;
    char why[256];
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    CURL *h = curl_easy_init(); /* one handle per thread, reused: keep-alive */
    char u[256];
    snprintf(u, sizeof u, "%s/refine", c->s->base);
    for (int i = 0; i < PER_CLIENT; i++) {
        int T = 1 + (c->id * 7 + i * 3) % 24;
        float *x = su_input(T, C_DIM, (unsigned)(c->id * 100 + i));
        float *y = su_refine_local(c->m, x, T);
        int json = (c->id + i) % 2;
        su_resp r;
        if (json) {
            char *b = su_json_features(x, T, C_DIM, "");
            const char *hj[] = {"Content-Type: application/json", NULL};
            su_http(h, "POST", u, hj, b, strlen(b), &r);
            free(b);
        } else {
            size_t n;
            void *b = su_npy_of(x, T, C_DIM, &n);
            const char *hn[] = {"Content-Type: application/x-npy", NULL};
            su_http(h, "POST", u, hn, b, n, &r);
            free(b);
        }
        const float *want[1] = {y};
        if (match_reply(&r, json, want, 1, T) == 0) {
            c->ok++;
        } else {
            c->bad++;
            snprintf(c->why, sizeof c->why, "client %d req %d: curl %d status %ld %.100s", c->id,
                     i, (int)r.rc, r.status, r.body ? r.body : "");
        }
        su_resp_free(&r);
        free(x);
        free(y);
    }
    curl_easy_cleanup(h);
    return NULL;
}

START_TEST(thirty_two_clients_all_correct)
{
    char *dir = tu_tmpdir();
    sola_model *m = su_make_model(dir, "m", 1, C_DIM, 32, 21, 0.6f);
    const char *args[] = {"--data", dir, "--workers", "2", "--threads", "1", NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    client cl[NCLIENT];
    pthread_t th[NCLIENT];
    for (int i = 0; i < NCLIENT; i++) {
        cl[i] = (client){.s = &s, .m = m, .id = i};
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    int ok = 0, bad = 0;
    for (int i = 0; i < NCLIENT; i++) {
        pthread_join(th[i], NULL);
        ok += cl[i].ok;
        bad += cl[i].bad;
        if (cl[i].bad)
            fprintf(stderr, "%s\n", cl[i].why);
    }
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(ok, NCLIENT * PER_CLIENT);
    ck_assert_int_eq(su_stop(&s), 0);
    sola_model_free(m);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- activation under load --------------------------------------------------- */

#define NACT 16

typedef struct actc {
    const su_server *s;
    const float *x, *y[2];
    int T;
    atomic_int *stop;
    int n, bad, seen[2];
    char why[256];
} actc;

static void *act_client(void *arg)
{
    actc *c = arg;
    CURL *h = curl_easy_init();
    char u[256];
    snprintf(u, sizeof u, "%s/refine?model=m", c->s->base);
    size_t n;
    void *b = su_npy_of(c->x, c->T, C_DIM, &n);
    const char *hn[] = {"Content-Type: application/x-npy", NULL};
    while (!atomic_load(c->stop) || c->n < 4) {
        su_resp r;
        su_http(h, "POST", u, hn, b, n, &r);
        int k = match_reply(&r, 0, c->y, 2, c->T);
        char ver[16] = "";
        su_header(&r, "X-Model-Version", ver, sizeof ver);
        if (k < 0 || atoi(ver) != k + 1) {
            c->bad++;
            snprintf(c->why, sizeof c->why, "curl %d status %ld version %s match %d", (int)r.rc,
                     r.status, ver, k);
        } else {
            c->seen[k]++;
        }
        c->n++;
        su_resp_free(&r);
    }
    free(b);
    curl_easy_cleanup(h);
    return NULL;
}

START_TEST(activation_under_load_fails_nothing)
{
    char *dir = tu_tmpdir();
    sola_model *m1 = su_make_model(dir, "m", 1, C_DIM, 32, 1, 0.5f);
    sola_model *m2 = su_make_model(dir, "m", 2, C_DIM, 32, 2, -0.5f);
    char p[4096];
    snprintf(p, sizeof p, "%s/models/m/active", dir);
    tu_write(p, "1\n", 2);
    const char *args[] = {"--data", dir, "--workers", "2", "--threads", "1", NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    const int T = 12;
    float *x = su_input(T, C_DIM, 77);
    float *y1 = su_refine_local(m1, x, T), *y2 = su_refine_local(m2, x, T);
    ck_assert_double_gt(tu_max_rel_err(y1, y2, (size_t)T * C_DIM), 1e-3);
    atomic_int stop = 0;
    actc c[NACT];
    pthread_t th[NACT];
    for (int i = 0; i < NACT; i++) {
        c[i] = (actc){.s = &s, .x = x, .y = {y1, y2}, .T = T, .stop = &stop};
        pthread_create(&th[i], NULL, act_client, &c[i]);
    }
    /* let traffic build up on version 1, then switch, then roll back, then forward */
    su_sleep_ms(150);
    su_resp r;
    const char *aj[] = {"Content-Type: application/json", NULL};
    char u[256];
    snprintf(u, sizeof u, "%s/models/m/activate", s.base);
    const char *seq[] = {"{\"version\": 2}", "{\"version\": 1}", "{\"version\": 2}"};
    for (int k = 0; k < 3; k++) {
        su_http(NULL, "POST", u, aj, seq[k], strlen(seq[k]), &r);
        ck_assert_msg(r.status == 200, "activate: %ld %s", r.status, r.body);
        su_resp_free(&r);
        su_sleep_ms(150);
    }
    atomic_store(&stop, 1);
    int bad = 0, seen1 = 0, seen2 = 0, total = 0;
    for (int i = 0; i < NACT; i++) {
        pthread_join(th[i], NULL);
        bad += c[i].bad;
        seen1 += c[i].seen[0];
        seen2 += c[i].seen[1];
        total += c[i].n;
        if (c[i].bad)
            fprintf(stderr, "client %d: %s\n", i, c[i].why);
    }
    ck_assert_int_eq(bad, 0);
    ck_assert_int_gt(seen1, 0);
    ck_assert_int_gt(seen2, 0);
    /* after the last activation returned, new requests get version 2 */
    size_t n;
    void *b = su_npy_of(x, T, C_DIM, &n);
    const char *hn[] = {"Content-Type: application/x-npy", NULL};
    snprintf(u, sizeof u, "%s/refine", s.base);
    su_http(NULL, "POST", u, hn, b, n, &r);
    const float *w2[1] = {y2};
    ck_assert_int_eq(match_reply(&r, 0, w2, 1, T), 0);
    su_resp_free(&r);
    free(b);
    fprintf(stderr, "activation under load: %d requests, %d on v1, %d on v2, 0 failed\n", total,
            seen1, seen2);
    ck_assert_int_eq(su_stop(&s), 0);
    free(x);
    free(y1);
    free(y2);
    sola_model_free(m1);
    sola_model_free(m2);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- SIGTERM drain ----------------------------------------------------------- */

typedef struct held {
    const su_server *s;
    const char *body;
    size_t len, sent;
    int fd;          /* read end of a pipe: the upload pauses until a byte arrives */
    int paused;
    atomic_int started;
    su_resp r;
} held;

static size_t held_read(char *buf, size_t sz, size_t nm, void *ud)
{
    held *h = ud;
    if (h->sent >= h->len / 2 && !h->paused) {
        h->paused = 1;
        atomic_store(&h->started, 1);
        char c;
        if (read(h->fd, &c, 1) != 1)
            return CURL_READFUNC_ABORT;
    }
    size_t lim = h->paused ? h->len : h->len / 2;
    size_t n = sz * nm < lim - h->sent ? sz * nm : lim - h->sent;
    memcpy(buf, h->body + h->sent, n);
    h->sent += n;
    return n;
}

static void *held_main(void *arg)
{
    held *h = arg;
    CURL *c = curl_easy_init();
    char u[256];
    snprintf(u, sizeof u, "%s/refine", h->s->base);
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/x-npy");
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->len);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, held_read);
    curl_easy_setopt(c, CURLOPT_READDATA, h);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, su_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &h->r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    h->r.rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h->r.status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return NULL;
}

typedef struct one {
    const su_server *s;
    const void *b;
    size_t n;
    su_resp r;
} one;

static void *one_main(void *arg)
{
    one *o = arg;
    char u[256];
    snprintf(u, sizeof u, "%s/refine", o->s->base);
    const char *hn[] = {"Content-Type: application/x-npy", NULL};
    su_http(NULL, "POST", u, hn, o->b, o->n, &o->r);
    return NULL;
}

START_TEST(sigterm_finishes_accepted_requests_and_exits_0)
{
    char *dir = tu_tmpdir();
    sola_model *m = su_make_model(dir, "m", 1, C_DIM, 32, 5, 0.9f);
    /* slow work items keep requests in flight when the signal lands */
    const char *args[] = {"--data", dir, "--workers", "2", "--threads", "1",
                          "--debug-work-delay-ms", "300", NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    const int T = 10;
    float *x = su_input(T, C_DIM, 3);
    float *y = su_refine_local(m, x, T);
    size_t n;
    void *b = su_npy_of(x, T, C_DIM, &n);
    const float *want[1] = {y};

    CURL *keep = curl_easy_init(); /* a connection opened before the signal */
    su_resp r;
    ck_assert_int_eq(su_get(&s, keep, "/readyz", &r), 200);
    su_resp_free(&r);

    /* a request whose body is half sent: the drain must wait for it */
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    held hq = {.s = &s, .body = b, .len = n, .fd = pfd[0]};
    pthread_t hth;
    pthread_create(&hth, NULL, held_main, &hq);
    enum { NB = 6 };
    one o[NB];
    pthread_t th[NB];
    for (int i = 0; i < NB; i++) {
        o[i] = (one){.s = &s, .b = b, .n = n};
        pthread_create(&th[i], NULL, one_main, &o[i]);
    }
    /* all six admitted (queued or running) and the held upload started */
    long inflight = 0;
    for (int i = 0; i < 2000 && (inflight != NB || !atomic_load(&hq.started)); i++) {
        inflight = su_health(&s, keep, "inflight");
        su_sleep_ms(2);
    }
    ck_assert_int_eq(inflight, NB);
    ck_assert(atomic_load(&hq.started));
    long inprog = su_health(&s, keep, "requests_in_progress");
    ck_assert_int_ge(inprog, NB + 1);

    kill(s.pid, SIGTERM);
    /* readiness fails at once, on the connection that is already open */
    long st = 0;
    for (int i = 0; i < 200; i++) {
        st = su_get(&s, keep, "/readyz", &r);
        su_resp_free(&r);
        if (st == 503)
            break;
        su_sleep_ms(5);
    }
    ck_assert_int_eq(st, 503);
    /* no new connections */
    CURL *fresh = curl_easy_init();
    curl_easy_setopt(fresh, CURLOPT_FORBID_REUSE, 1L);
    su_get(&s, fresh, "/livez", &r);
    ck_assert_int_eq(r.rc, CURLE_COULDNT_CONNECT);
    su_resp_free(&r);
    curl_easy_cleanup(fresh);

    /* the held upload completes and is answered */
    ck_assert_int_eq(write(pfd[1], "g", 1), 1);
    pthread_join(hth, NULL);
    ck_assert_msg(hq.r.rc == CURLE_OK && hq.r.status == 200, "held: curl %d status %ld",
                  (int)hq.r.rc, hq.r.status);
    ck_assert_int_eq(match_reply(&hq.r, 0, want, 1, T), 0);
    su_resp_free(&hq.r);
    for (int i = 0; i < NB; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(o[i].r.rc == CURLE_OK, "request %d: curl %d", i, (int)o[i].r.rc);
        ck_assert_int_eq(match_reply(&o[i].r, 0, want, 1, T), 0);
        su_resp_free(&o[i].r);
    }
    /* and the process leaves with 0 (su_stop_sig sends a no-op signal 0 and waits) */
    ck_assert_int_eq(su_stop_sig(&s, 0), 0);
    curl_easy_cleanup(keep);
    close(pfd[0]);
    close(pfd[1]);
    free(b);
    free(x);
    free(y);
    sola_model_free(m);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(drain_deadline_exits_0)
{
    char *dir = tu_tmpdir();
    /* a request that cannot finish within the deadline */
    const char *args[] = {"--dim", "64", "--drain-timeout", "1", "--debug-work-delay-ms", "20000",
                          NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    float *x = su_input(2, 64, 1);
    size_t n;
    void *b = su_npy_of(x, 2, 64, &n);
    one o = {.s = &s, .b = b, .n = n};
    pthread_t th;
    pthread_create(&th, NULL, one_main, &o);
    long inflight = 0;
    for (int i = 0; i < 2000 && inflight != 1; i++) {
        inflight = su_health(&s, NULL, "inflight");
        su_sleep_ms(2);
    }
    ck_assert_int_eq(inflight, 1);
    /* exits 0 once the deadline passes; had it waited for the work instead, the
     * request would have been answered */
    ck_assert_int_eq(su_stop(&s), 0);
    pthread_join(th, NULL);
    ck_assert_int_ne(o.r.rc, CURLE_OK);
    su_resp_free(&o.r);
    size_t ln;
    char *log = tu_read(s.log, &ln);
    ck_assert_ptr_nonnull(strstr(log, "drain deadline"));
    free(log);
    free(b);
    free(x);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    Suite *s = suite_create("server_load");
    TCase *t = tcase_create("load");
    tcase_set_timeout(t, 180);
    tcase_add_test(t, thirty_two_clients_all_correct);
    tcase_add_test(t, activation_under_load_fails_nothing);
    tcase_add_test(t, sigterm_finishes_accepted_requests_and_exits_0);
    tcase_add_test(t, drain_deadline_exits_0);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
