/* soakrun.h -- a bounded load soak against a running solad, shared by the long soak
 * (tests/soak/soak.c, run by tests/soak/soak.sh) and the CI variant
 * (tests/daemon/test_soak_short.c).
 *
 * N client threads post /refine for a fixed time: T drawn from {1, 16, 100, 1000},
 * JSON or .npy, about 5% malformed (truncated JSON, a bad .npy magic, a wrong channel
 * count). Halfway through, a new model version is uploaded and activated. A sampler
 * reads solad's RSS and fd count every few seconds. The caller judges the result.
 *
 * Header-only (static functions); needs libcurl, pthreads and tests/common/rawconn.h. */
#ifndef SOLA_SOAKRUN_H
#define SOLA_SOAKRUN_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rawconn.h"

#define SK_MAXSAMPLES 512

typedef struct sk_config {
    int port, pid;
    int clients;            /* threads */
    double seconds;         /* load duration */
    int C;                  /* channels of model "model" */
    const char *model;      /* name of the served model */
    const char *v2_path;    /* safetensors uploaded as version 2 and activated midway */
    double sample_every_s;  /* RSS/fd sampling period */
    int max_T;              /* largest T drawn (1000 in the soak; less on small runs) */
} sk_config;

typedef struct sk_sample {
    double t_s;
    long rss_kb;
    int fds;
    long done; /* requests finished so far */
} sk_sample;

typedef struct sk_result {
    long status[600];    /* replies by status */
    long transport;      /* curl failures (no status) */
    long requests, malformed_sent;
    long bytes_sent;
    int activated;       /* 1 when the midway upload + activation both succeeded */
    sk_sample s[SK_MAXSAMPLES];
    int ns;
    char first_bad[256]; /* the first unexpected reply, for the report */
} sk_result;

typedef struct sk_shared {
    const sk_config *cfg;
    sk_result *res;
    pthread_mutex_t mu;
    atomic_int stop;
    atomic_long done;
    double t0;
} sk_shared;

static size_t sk_sink(char *p, size_t sz, size_t nm, void *ud)
{
    (void)p;
    (void)ud;
    return sz * nm;
}

/* .npy v1.0 bytes of a float32 [T, C] array (malloc'd). */
static char *sk_npy(const float *x, int T, int C, size_t *n)
{
    char h[128];
    int hl = snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }",
                      T, C);
    int total = 10 + hl + 1;
    int pad = (64 - total % 64) % 64;
    size_t hdr = (size_t)(10 + hl + pad + 1), data = (size_t)T * (size_t)C * 4;
    char *b = malloc(hdr + data);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (char)((hdr - 10) & 0xff);
    b[9] = (char)((hdr - 10) >> 8);
    memcpy(b + 10, h, (size_t)hl);
    memset(b + 10 + hl, ' ', (size_t)pad);
    b[hdr - 1] = '\n';
    memcpy(b + hdr, x, data);
    *n = hdr + data;
    return b;
}

/* {"features": x} (malloc'd). */
static char *sk_json(const float *x, int T, int C, size_t *n)
{
    size_t cap = (size_t)T * (size_t)C * 16 + 64, o = 0;
    char *b = malloc(cap);
    o += (size_t)snprintf(b, cap, "{\"features\":[");
    for (int t = 0; t < T; t++) {
        b[o++] = t ? ',' : '[';
        if (t)
            b[o++] = '[';
        for (int c = 0; c < C; c++)
            o += (size_t)snprintf(b + o, cap - o, "%s%.6g", c ? "," : "", (double)x[t * C + c]);
        b[o++] = ']';
    }
    o += (size_t)snprintf(b + o, cap - o, "]}");
    *n = o;
    return b;
}

static uint64_t sk_rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void sk_count(sk_shared *sh, long st, int malformed, size_t sent)
{
    pthread_mutex_lock(&sh->mu);
    sk_result *r = sh->res;
    r->requests++;
    r->malformed_sent += malformed;
    r->bytes_sent += (long)sent;
    if (st <= 0 || st >= 600)
        r->transport++;
    else
        r->status[st]++;
    /* expected: 200 for a good request, 4xx for a malformed one, 503 (back-pressure) */
    int ok = st == 503 || (malformed ? st >= 400 && st < 500 : st == 200);
    if (!ok && !r->first_bad[0])
        snprintf(r->first_bad, sizeof r->first_bad, "status %ld for a %s request", st,
                 malformed ? "malformed" : "well-formed");
    pthread_mutex_unlock(&sh->mu);
    atomic_fetch_add(&sh->done, 1);
}

static void *sk_client(void *arg)
{
    sk_shared *sh = arg;
    const sk_config *cfg = sh->cfg;
    static atomic_uint seq;
    uint64_t rs = 0x9e3779b97f4a7c15ull * (atomic_fetch_add(&seq, 1) + 1);
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/refine?model=%s", cfg->port, cfg->model);
    static const int Ts[] = {1, 16, 100, 1000};
    while (!atomic_load(&sh->stop)) {
        int T = Ts[sk_rng(&rs) % 4];
        /* the big ones are rarer, so small requests dominate as in real traffic */
        if (T == 1000 && sk_rng(&rs) % 4)
            T = 100;
        if (T > cfg->max_T)
            T = cfg->max_T;
        int npy = (int)(sk_rng(&rs) % 2);
        int bad = sk_rng(&rs) % 100 < 5 ? 1 + (int)(sk_rng(&rs) % 3) : 0;
        int C = bad == 3 ? cfg->C + 1 : cfg->C; /* wrong dimension: 422 */
        float *x = malloc(sizeof(float) * (size_t)T * (size_t)C);
        for (size_t i = 0; i < (size_t)T * (size_t)C; i++)
            x[i] = (float)(sk_rng(&rs) % 2001) / 1000.0f - 1.0f;
        size_t n;
        char *b = npy ? sk_npy(x, T, C, &n) : sk_json(x, T, C, &n);
        if (bad == 1)
            n = n / 2; /* truncated */
        else if (bad == 2)
            b[npy ? 1 : 0] = 'X'; /* bad magic / not JSON */
        struct curl_slist *hl = curl_slist_append(
            NULL, npy ? "Content-Type: application/x-npy" : "Content-Type: application/json");
        hl = curl_slist_append(hl, "Expect:");
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, b);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sk_sink);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        long st = 0;
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
        if (st == 503) { /* back-pressure: honour Retry-After loosely */
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
        sk_count(sh, st, bad != 0, n);
        curl_slist_free_all(hl);
        free(b);
        free(x);
    }
    curl_easy_cleanup(c);
    return NULL;
}

/* Uploads cfg->v2_path as version 2 and activates it; 1 on success. */
static int sk_activate(const sk_config *cfg)
{
    size_t n;
    FILE *f = fopen(cfg->v2_path, "rb");
    if (!f)
        return 0;
    fseek(f, 0, SEEK_END);
    n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(n);
    size_t got = fread(b, 1, n, f);
    fclose(f);
    if (got != n) {
        free(b);
        return 0;
    }
    char url[256];
    long st1 = 0, st2 = 0;
    CURL *c = curl_easy_init();
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    hl = curl_slist_append(hl, "Content-Type: application/octet-stream");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/models/%s/versions/2", cfg->port, cfg->model);
    /* the upload is validated and the activation loads the version on a worker, so
     * under full load both may meet the same back-pressure as any request: retry on
     * 503 as a client would */
    for (int i = 0; i < 100 && (st1 == 0 || st1 == 503); i++) {
        if (i) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, b);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sk_sink);
        st1 = 0;
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st1);
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%d/models/%s/activate", cfg->port, cfg->model);
    struct curl_slist *hj = curl_slist_append(NULL, "Content-Type: application/json");
    for (int i = 0; i < 100 && (st2 == 0 || st2 == 503); i++) {
        if (i) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        /* JSON, as the route asks: libcurl's default form type is refused (M8) */
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"version\": 2}");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hj);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sk_sink);
        st2 = 0;
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st2);
    }
    curl_slist_free_all(hl);
    curl_slist_free_all(hj);
    curl_easy_cleanup(c);
    free(b);
    if (st1 / 100 != 2 || st2 != 200)
        fprintf(stderr, "soak: upload v2 -> %ld, activate -> %ld\n", st1, st2);
    return st1 / 100 == 2 && st2 == 200;
}

static void sk_sample_now(sk_shared *sh)
{
    sk_result *r = sh->res;
    if (r->ns >= SK_MAXSAMPLES)
        return;
    sk_sample *p = &r->s[r->ns++];
    p->t_s = (rc_now_ms() - sh->t0) / 1000.0;
    p->rss_kb = rc_rss_kb(sh->cfg->pid);
    p->fds = rc_fd_count(sh->cfg->pid);
    p->done = atomic_load(&sh->done);
}

/* Runs the load; fills res (zeroed first). Samples at t = 0 (before any request),
 * every sample_every_s during the load, and once more when every client has finished. */
static void sk_run(const sk_config *cfg, sk_result *res)
{
    memset(res, 0, sizeof *res);
    sk_shared sh = {.cfg = cfg, .res = res};
    pthread_mutex_init(&sh.mu, NULL);
    sh.t0 = rc_now_ms();
    sk_sample_now(&sh);
    pthread_t *th = calloc((size_t)cfg->clients, sizeof *th);
    for (int i = 0; i < cfg->clients; i++)
        pthread_create(&th[i], NULL, sk_client, &sh);
    double next = cfg->sample_every_s;
    int activated = 0;
    for (;;) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        double t = (rc_now_ms() - sh.t0) / 1000.0;
        if (!activated && cfg->v2_path && t >= cfg->seconds / 2) {
            activated = 1;
            res->activated = sk_activate(cfg);
        }
        if (t >= next) {
            sk_sample_now(&sh);
            next += cfg->sample_every_s;
        }
        if (t >= cfg->seconds)
            break;
    }
    atomic_store(&sh.stop, 1);
    for (int i = 0; i < cfg->clients; i++)
        pthread_join(th[i], NULL);
    free(th);
    sk_sample_now(&sh);
    pthread_mutex_destroy(&sh.mu);
}

/* 5xx replies other than 503. */
static long sk_5xx_not_503(const sk_result *r)
{
    long n = 0;
    for (int s = 500; s < 600; s++)
        if (s != 503)
            n += r->status[s];
    return n;
}

static void sk_print(FILE *f, const sk_result *r)
{
    fprintf(f, "%8s %10s %6s %10s\n", "t (s)", "RSS (MiB)", "fds", "requests");
    for (int i = 0; i < r->ns; i++)
        fprintf(f, "%8.1f %10.1f %6d %10ld\n", r->s[i].t_s, (double)r->s[i].rss_kb / 1024.0,
                r->s[i].fds, r->s[i].done);
    fprintf(f, "requests %ld (malformed sent %ld, %.1f MiB sent), transport failures %ld\n",
            r->requests, r->malformed_sent, (double)r->bytes_sent / 1048576.0, r->transport);
    fprintf(f, "statuses:");
    for (int s = 0; s < 600; s++)
        if (r->status[s])
            fprintf(f, " %d: %ld", s, r->status[s]);
    fprintf(f, "\nmidway activation of version 2: %s\n", r->activated ? "ok" : "FAILED");
    if (r->first_bad[0])
        fprintf(f, "first unexpected reply: %s\n", r->first_bad);
}

/* The verdict: prints each failed check on f, returns how many failed. The post-warm-up
 * RSS is the first sample at or after 20% of the run; "flat" = the last sample within
 * 10% + 16 MiB of it (allocator arenas settle, they must not keep growing). fds_after:
 * the count once solad is idle again, compared with the count before any request. */
static int sk_judge(FILE *f, const sk_config *cfg, const sk_result *r, int fds_after,
                    long *rss_warm, long *rss_end)
{
    int bad = 0;
    long n5 = sk_5xx_not_503(r);
    if (n5) {
        fprintf(f, "FAIL: %ld replies were 5xx other than 503\n", n5);
        bad++;
    }
    if (r->transport) {
        fprintf(f, "FAIL: %ld requests got no reply\n", r->transport);
        bad++;
    }
    if (r->first_bad[0]) {
        fprintf(f, "FAIL: %s\n", r->first_bad);
        bad++;
    }
    if (cfg->v2_path && !r->activated) {
        fprintf(f, "FAIL: the midway activation failed\n");
        bad++;
    }
    int w = 0;
    while (w < r->ns - 1 && r->s[w].t_s < cfg->seconds * 0.2)
        w++;
    *rss_warm = r->s[w].rss_kb;
    *rss_end = r->s[r->ns - 1].rss_kb;
    if (*rss_end > *rss_warm + *rss_warm / 10 + 16 * 1024) {
        fprintf(f, "FAIL: RSS grew from %ld KiB (t = %.1f s) to %ld KiB\n", *rss_warm,
                r->s[w].t_s, *rss_end);
        bad++;
    }
    if (fds_after > r->s[0].fds) {
        fprintf(f, "FAIL: solad holds %d fds after the run, %d before\n", fds_after, r->s[0].fds);
        bad++;
    }
    return bad;
}

/* solad's fd count once it has settled (polled up to ms until <= want). */
static int sk_fds_settled(int pid, int want, int ms)
{
    int n = -1;
    for (int waited = 0; waited <= ms; waited += 100) {
        if ((n = rc_fd_count(pid)) >= 0 && n <= want)
            break;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return n;
}

#endif
