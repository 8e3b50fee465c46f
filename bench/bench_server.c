/* bench_server.c -- solad end to end against bare sola_refine, in the same run.
 *
 *   bench_server [--url http://HOST:PORT] [--workers N] [--threads N] [--C 2048]
 *                [--T 100,1000] [--requests N] [--clients K] [--matrix]
 *
 * Without --url it starts ./solad (next to this program) on a free loopback port with
 * the embedded default model (C = --C, H = 512, k = 5/1) and the given --workers and
 * --threads, and stops it at the end. With --url it measures a running solad, reading
 * the model's shape from GET /models/default and its BLAS threads from /healthz.
 *
 * For each T and each format (.npy, JSON) it alternates one bare sola_refine of the
 * same shape (a local model of the same size, same BLAS threads) with one request, so
 * load from elsewhere on the machine hits both alike, and prints the median and p99
 * latency, the sequential rate and the ratio of the median request to the median
 * bare compute (the daemon's overhead: parsing, copying, HTTP). Then K clients at once
 * (--clients, default 4) give the throughput of the worker pool.
 *
 * --matrix runs two daemons in turn -- one worker with all BLAS threads, and one worker
 * per core with one BLAS thread each -- to inform docs/daemon.md's threading choice. */
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gemm.h"
#include "api.h"
#include "api_helpers.h"
#include "benchutil.h"
#include "fsutil.h"
#include "model.h"
#include "npy.h"
#include "refine.h"
#include "rng.h"

static void die(const char *msg)
{
    fprintf(stderr, "bench_server: %s\n", msg);
    exit(1);
}

/* ---- HTTP -------------------------------------------------------------------- */

typedef struct sink {
    char *p;
    size_t len, cap;
    double work_ms; /* from the Server-Timing header */
} sink;

static size_t hdr_cb(char *d, size_t sz, size_t nm, void *ud)
{
    sink *s = ud;
    size_t n = sz * nm;
    if (n > 14 && strncasecmp(d, "Server-Timing:", 14) == 0) {
        char line[256];
        snprintf(line, sizeof line, "%.*s", (int)n, d);
        const char *w = strstr(line, "work;dur=");
        if (w)
            s->work_ms = strtod(w + 9, NULL);
    }
    return n;
}

static size_t sink_cb(char *d, size_t sz, size_t nm, void *ud)
{
    sink *s = ud;
    size_t n = sz * nm;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 1 << 16;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *p = realloc(s->p, cap);
        if (!p)
            return 0;
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->len, d, n);
    s->len += n;
    s->p[s->len] = '\0';
    return n;
}

/* One request on handle c; returns the status (0 on transport failure). */
static long post(CURL *c, const char *url, const char *ctype, const void *body, size_t len,
                 sink *out)
{
    char h[128];
    snprintf(h, sizeof h, "Content-Type: %s", ctype);
    struct curl_slist *hl = curl_slist_append(NULL, h);
    hl = curl_slist_append(hl, "Expect:");
    out->len = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hdr_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long st = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    curl_slist_free_all(hl);
    return st;
}

static json_t *get_json(const char *base, const char *path)
{
    CURL *c = curl_easy_init();
    char u[512];
    snprintf(u, sizeof u, "%s%s", base, path);
    sink s = {0};
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    json_t *j = curl_easy_perform(c) == CURLE_OK && s.p ? json_loads(s.p, 0, NULL) : NULL;
    free(s.p);
    curl_easy_cleanup(c);
    return j;
}

/* ---- a solad of our own ------------------------------------------------------ */

static pid_t spawn(const char *self, const char *data, int workers, int threads, char *base,
                   size_t n)
{
    char ws[16], ts[16];
    snprintf(ws, sizeof ws, "%d", workers);
    snprintf(ts, sizeof ts, "%d", threads);
    const char *opt[] = {"--workers", ws, "--threads", ts, "--max-frames", "100000", NULL};
    pid_t pid = bench_spawn_solad(self, data, opt, base, n);
    if (pid < 0)
        die("solad did not start (is it built next to bench_server?)");
    return pid;
}

/* ---- measurements ------------------------------------------------------------ */

typedef struct payload {
    int T;
    void *npy, *json;
    size_t npy_len, json_len;
    float *x;
} payload;

static void make_payload(payload *p, int T, int C)
{
    p->T = T;
    size_t n = (size_t)T * (size_t)C;
    p->x = malloc(n * sizeof(float));
    sola_rng r;
    sola_rng_seed(&r, (uint64_t)T);
    for (size_t i = 0; i < n; i++)
        p->x[i] = (float)(sola_rng_uniform(&r) * 2.0 - 1.0);
    sola_err e = {0};
    int64_t sh[2] = {T, C};
    if (sola_npy_encode(p->x, 2, sh, &p->npy, &p->npy_len, &e))
        die(e.msg);
    api_buf b = {0};
    api_buf_puts(&b, "{\"features\":");
    api_buf_json_floats(&b, p->x, 2, sh);
    api_buf_puts(&b, "}");
    if (b.failed)
        die("out of memory");
    p->json = b.p;
    p->json_len = b.len;
}

static void measure(const char *base, const sola_model *m, sola_ws *ws, payload *p, int json,
                    int n, double *out_bare_med)
{
    CURL *c = curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "%s/refine", base);
    sink s = {0};
    double *lat = malloc(sizeof(double) * (size_t)n), *bare = malloc(sizeof(double) * (size_t)n);
    double *work = malloc(sizeof(double) * (size_t)n);
    float *y = malloc(sizeof(float) * (size_t)p->T * (size_t)m->C);
    sola_err e = {0};
    const char *ct = json ? "application/json" : "application/x-npy";
    const void *body = json ? p->json : p->npy;
    size_t blen = json ? p->json_len : p->npy_len;
    /* warm-up: connection, server workspace, page faults on both sides */
    for (int i = 0; i < 2; i++) {
        sola_refine(m, p->x, p->T, y, ws, &e);
        if (post(c, url, ct, body, blen, &s) != 200)
            die(s.p ? s.p : "request failed");
    }
    double t0 = sola_now_s();
    double total_req = 0;
    for (int i = 0; i < n; i++) {
        double t = sola_now_s();
        if (sola_refine(m, p->x, p->T, y, ws, &e))
            die(e.msg);
        bare[i] = sola_now_s() - t;
        t = sola_now_s();
        if (post(c, url, ct, body, blen, &s) != 200)
            die(s.p ? s.p : "request failed");
        lat[i] = sola_now_s() - t;
        work[i] = s.work_ms / 1e3;
        total_req += lat[i];
    }
    (void)t0;
    double bmed = bench_pct(bare, n, 0.5);
    double lmed = bench_pct(lat, n, 0.5), l99 = bench_pct(lat, n, 0.99);
    double wmed = bench_pct(work, n, 0.5);
    printf("  %-5s T=%-5d %6.1f req/s  p50 %7.2f ms  p99 %7.2f ms  bare %7.2f ms  ratio %5.2fx"
           "  (server work %7.2f ms; %.1f MB in, %.1f MB out)\n",
           json ? "json" : "npy", p->T, n / total_req, lmed * 1e3, l99 * 1e3, bmed * 1e3,
           lmed / bmed, wmed * 1e3, blen / 1e6, s.len / 1e6);
    fflush(stdout);
    if (out_bare_med)
        *out_bare_med = bmed;
    free(lat);
    free(bare);
    free(work);
    free(y);
    free(s.p);
    curl_easy_cleanup(c);
}

typedef struct conc {
    const char *url;
    payload *p;
    int n;
    int fail;
} conc;

static void *conc_main(void *arg)
{
    conc *c = arg;
    CURL *h = curl_easy_init();
    sink s = {0};
    for (int i = 0; i < c->n; i++)
        if (post(h, c->url, "application/x-npy", c->p->npy, c->p->npy_len, &s) != 200)
            c->fail++;
    free(s.p);
    curl_easy_cleanup(h);
    return NULL;
}

static void throughput(const char *base, payload *p, int clients, int per)
{
    char url[512];
    snprintf(url, sizeof url, "%s/refine", base);
    conc cs[64];
    pthread_t th[64];
    if (clients > 64)
        clients = 64;
    double t = sola_now_s();
    for (int i = 0; i < clients; i++) {
        cs[i] = (conc){url, p, per, 0};
        pthread_create(&th[i], NULL, conc_main, &cs[i]);
    }
    int fail = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        fail += cs[i].fail;
    }
    double dt = sola_now_s() - t;
    printf("  npy   T=%-5d %d clients x %d: %7.1f req/s, %.0f frames/s%s\n", p->T, clients, per,
           clients * per / dt, clients * per * (double)p->T / dt, fail ? " (FAILURES)" : "");
    fflush(stdout);
}

static void run_all(const char *base, const sola_model *m, int threads, const int *Ts, int nT,
                    int reqs, int clients)
{
    sola_gemm_set_threads(threads);
    sola_ws *ws = sola_ws_new();
    for (int i = 0; i < nT; i++) {
        payload p;
        make_payload(&p, Ts[i], m->C);
        int n = reqs > 0 ? reqs : (Ts[i] >= 1000 ? 12 : 40);
        double bare;
        measure(base, m, ws, &p, 0, n, &bare);
        printf("          (bare compute %.1f GFLOP/s)\n",
               sola_refine_flops(m, p.T) / bare / 1e9);
        measure(base, m, ws, &p, 1, n > 8 ? n / 2 : n, NULL);
        throughput(base, &p, clients, Ts[i] >= 1000 ? 3 : 10);
        free(p.x);
        free(p.npy);
        free(p.json);
    }
    sola_ws_free(ws);
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    int workers = 1, threads = 0, C = 2048, reqs = 0, clients = 4, matrix = 0;
    int Ts[8] = {100, 1000}, nT = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--url") && v)
            url = argv[++i];
        else if (!strcmp(a, "--workers") && v)
            workers = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && v)
            threads = atoi(argv[++i]);
        else if (!strcmp(a, "--C") && v)
            C = atoi(argv[++i]);
        else if (!strcmp(a, "--requests") && v)
            reqs = atoi(argv[++i]);
        else if (!strcmp(a, "--clients") && v)
            clients = atoi(argv[++i]);
        else if (!strcmp(a, "--matrix"))
            matrix = 1;
        else if (!strcmp(a, "--T") && v) {
            nT = 0;
            for (char *s = argv[++i]; *s && nT < 8; s += strspn(s, ","))
                Ts[nT++] = (int)strtol(s, &s, 10);
        } else {
            fprintf(stderr, "usage: bench_server [--url URL] [--workers N] [--threads N] "
                            "[--C C] [--T 100,1000] [--requests N] [--clients K] [--matrix]\n");
            return 2;
        }
    }
    /* as solad does: without it the bare compute's idle BLAS threads spin and steal a
     * core from the daemon being measured (and the daemon's from the bare compute) */
    if (!getenv("OPENBLAS_THREAD_TIMEOUT")) {
        setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
        execv("/proc/self/exe", argv);
    }
    curl_global_init(CURL_GLOBAL_ALL);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    sola_err e = {0};
    if (url) {
        /* the very model the daemon serves, downloaded, for the bare compute */
        json_t *md = get_json(url, "/models/default"), *h = get_json(url, "/healthz");
        if (!md || !h)
            die("cannot read /models/default and /healthz from --url");
        int th = (int)json_integer_value(json_object_get(h, "blas_threads"));
        char path[256];
        snprintf(path, sizeof path, "/models/default/versions/%lld",
                 json_integer_value(json_object_get(md, "active")));
        sink s = {0};
        CURL *c = curl_easy_init();
        char u[512];
        snprintf(u, sizeof u, "%s%s", url, path);
        curl_easy_setopt(c, CURLOPT_URL, u);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_cb);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
        curl_easy_perform(c);
        curl_easy_cleanup(c);
        sola_model *m = s.p ? sola_model_from_buffer(s.p, s.len, "downloaded model", &e) : NULL;
        if (!m)
            die(e.msg[0] ? e.msg : "cannot download the default model");
        free(s.p);
        printf("solad at %s: C=%d H=%d k=%d/%d, %lld workers x %d BLAS threads%s\n", url, m->C,
               m->H, m->k1, m->k2, json_integer_value(json_object_get(h, "workers")), th,
               tanhf(m->alpha[0]) == 0 ? " (identity model: compute is skipped)" : "");
        run_all(url, m, th > 0 ? th : 1, Ts, nT, reqs, clients);
        sola_model_free(m);
        json_decref(md);
        json_decref(h);
        return 0;
    }
    /* A model that computes (alpha != 0: the embedded default is the identity, which
     * sola_refine short-cuts), stored in a temporary data directory. */
    char data[] = "/tmp/bench_server.XXXXXX";
    if (!mkdtemp(data))
        die("mkdtemp");
    char mp[4096];
    snprintf(mp, sizeof mp, "%s/models/bench", data);
    if (sola_mkdirs(mp, 0755, &e))
        die(e.msg);
    sola_model *m = sola_model_new(C, 512, 5, 1, 0, &e);
    if (!m)
        die(e.msg);
    sola_model_init(m, 1);
    m->alpha[0] = 0.5f;
    snprintf(mp, sizeof mp, "%s/models/bench/1.safetensors", data);
    if (sola_model_pack(m, &e) || sola_model_save(m, mp, 0, &e))
        die(e.msg);
    int cfg[2][2] = {{workers, threads > 0 ? threads : (int)(ncpu / workers > 0 ? ncpu / workers : 1)},
                     {(int)ncpu, 1}};
    if (matrix) {
        cfg[0][0] = 1;
        cfg[0][1] = (int)ncpu;
    }
    for (int k = 0; k < (matrix ? 2 : 1); k++) {
        char base[256];
        pid_t pid = spawn(argv[0], data, cfg[k][0], cfg[k][1], base, sizeof base);
        printf("solad %s: C=%d H=%d k=%d/%d, --workers %d --threads %d (%ld CPUs), "
               "%.1f GFLOP per T=1000 refine\n",
               base, m->C, m->H, m->k1, m->k2, cfg[k][0], cfg[k][1], ncpu,
               sola_refine_flops(m, 1000) / 1e9);
        run_all(base, m, cfg[k][1], Ts, nT, reqs, clients);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    sola_model_free(m);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_server: could not remove %s\n", data);
    return 0;
}
