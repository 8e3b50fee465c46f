/* bench_stream.c -- online refine under live load: N streams, each sending one snippet
 * every 1/rate seconds (7.5/s: 30 fps, a stride of 4 frames) to a solad of its own.
 *
 *   bench_stream [--streams 64] [--rate 7.5] [--seconds 10] [--reps 3]
 *                [--ramp 64,128,256,...] [--C 2048] [--H 512] [--k1 5]
 *                [--workers N] [--threads N] [--format npy|v2]
 *
 * Latency of a snippet = from its scheduled arrival (when the extractor produced it)
 * to the reply that returns the refined snippet it made final (snippet t - R: the
 * R-snippet wait the maths requires is excluded, everything else -- client lag,
 * network, queueing, batching, compute -- is in). A stream sends its next snippet when
 * it is due, or as soon as its previous reply is back if that is later (one call at a
 * time per stream, as the protocol wants); that lag counts in the latency.
 *
 * Reference, measured in the same run before and after each load level: the median
 * round trip of one offline POST /refine of 2R + 1 snippets (the compute one chunk
 * of one snippet costs) on the otherwise idle daemon. Latencies are printed in ms and
 * as multiples of it.
 *
 * "Holds in real time": over the measured window, no call failed and the p99 latency
 * stays under one period (133 ms at 7.5/s), so no stream falls behind. --ramp doubles
 * N from the first value until a level fails, then bisects between the last pass and
 * the first failure; the answer is the largest N that passed. The load generator runs
 * on the same machine (its CPU time is reported beside solad's). */
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchutil.h"
#include "fsutil.h"
#include "gemm.h"
#include "model.h"
#include "npy.h"
#include "stream.h"

static void die(const char *msg)
{
    fprintf(stderr, "bench_stream: %s\n", msg);
    exit(1);
}

typedef struct opts {
    int streams, C, H, k1, workers, threads, reps, v2;
    double rate, seconds;
    int ramp[32], nramp;
} opts;

static char g_base[128];
static int g_R;

/* ---- requests ------------------------------------------------------------------ */

typedef struct conn {
    CURL *h;
    struct curl_slist *hdrs;
    char url[256];
    char *body;
    size_t blen;
    long long sent_snippets;
    double sched, sent;   /* when the snippet was due, when it went out */
    int busy, started, ended;
    double next;          /* when the next snippet is due */
    size_t reply_len;     /* replies are counted, not kept */
} conn;

static size_t sink_body(char *p, size_t sz, size_t nm, void *ud)
{
    conn *c = ud;
    (void)p;
    c->reply_len += sz * nm;
    return sz * nm;
}

/* One row [1, C] as the request body, once for all (values do not change the cost). */
static char *g_npy;
static size_t g_npy_len;

static void make_bodies(int C)
{
    float *x = malloc(sizeof(float) * (size_t)C);
    for (int c = 0; c < C; c++)
        x[c] = (float)sin(0.1 * c);
    int64_t sh[2] = {1, C};
    sola_err e = {0};
    void *b;
    if (sola_npy_encode(x, 2, sh, &b, &g_npy_len, &e))
        die(e.msg);
    g_npy = b;
    free(x);
}

/* The v2 body for stream id: JSON header with the sequence parameters, then the row. */
static char *v2_body(const char *id, int start, int end, int C, size_t *len, size_t *hlen)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr,
                     "{\"parameters\":{\"sequence_id\":\"%s\"%s%s},\"inputs\":[{\"name\":"
                     "\"features\",\"shape\":[%d,%d],\"datatype\":\"FP32\",\"parameters\":{"
                     "\"binary_data_size\":%d}}],\"outputs\":[{\"name\":\"refined\","
                     "\"parameters\":{\"binary_data\":true}}]}",
                     id, start ? ",\"sequence_start\":true" : "",
                     end ? ",\"sequence_end\":true" : "", end ? 0 : 1, C, end ? 0 : C * 4);
    size_t data = end ? 0 : (size_t)C * 4;
    char *b = malloc((size_t)n + data);
    memcpy(b, hdr, (size_t)n);
    if (data)
        memcpy(b + n, g_npy + (g_npy_len - data), data);
    *len = (size_t)n + data;
    *hlen = (size_t)n;
    return b;
}

static void prepare(conn *c, const opts *o, int level, int i, int start, int end)
{
    char id[64];
    snprintf(id, sizeof id, "b%d-%d", level, i);
    curl_easy_reset(c->h);
    curl_slist_free_all(c->hdrs);
    c->hdrs = curl_slist_append(NULL, "Expect:");
    free(c->body);
    c->body = NULL;
    if (o->v2) {
        size_t hl;
        c->body = v2_body(id, start, end, o->C, &c->blen, &hl);
        char h[64];
        snprintf(h, sizeof h, "Inference-Header-Content-Length: %zu", hl);
        c->hdrs = curl_slist_append(c->hdrs, h);
        c->hdrs = curl_slist_append(c->hdrs, "Content-Type: application/octet-stream");
        snprintf(c->url, sizeof c->url, "%s/v2/models/m/infer", g_base);
    } else {
        c->body = malloc(g_npy_len);
        memcpy(c->body, g_npy, g_npy_len);
        c->blen = end ? 0 : g_npy_len;
        c->hdrs = curl_slist_append(c->hdrs, "Content-Type: application/x-npy");
        snprintf(c->url, sizeof c->url, "%s/refine?model=m&sequence_id=%s%s%s", g_base, id,
                 start ? "&sequence_start=1" : "", end ? "&sequence_end=1" : "");
    }
    curl_easy_setopt(c->h, CURLOPT_URL, c->url);
    curl_easy_setopt(c->h, CURLOPT_POST, 1L);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE, (long)c->blen);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, sink_body);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 60L);
    c->reply_len = 0;
}

/* ---- one load level -------------------------------------------------------------- */

typedef struct level_result {
    int n;
    long calls, measured, failed;
    double p50, p99, max_lag, ref;
    double solad_cpu, client_cpu; /* CPU-seconds per second of the window */
    double req_per_pass;
} level_result;

static double proc_cpu(pid_t pid)
{
    char p[64], buf[1024];
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *s = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!s || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

typedef struct sbuf {
    char *p;
    size_t n;
} sbuf;

static size_t sbuf_cb(char *p, size_t sz, size_t nm, void *ud)
{
    sbuf *b = ud;
    size_t n = sz * nm;
    char *q = realloc(b->p, b->n + n + 1);
    if (!q)
        return 0;
    memcpy(q + b->n, p, n);
    b->p = q;
    b->n += n;
    q[b->n] = '\0';
    return n;
}

/* batching.{passes,requests} from /healthz. */
static void batch_stats(long *passes, long *requests)
{
    CURL *h = curl_easy_init();
    sbuf b = {0};
    char url[256];
    snprintf(url, sizeof url, "%s/healthz", g_base);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sbuf_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_perform(h);
    curl_easy_cleanup(h);
    json_t *o = b.p ? json_loads(b.p, 0, NULL) : NULL;
    json_t *bt = json_object_get(o, "batching");
    *passes = (long)json_integer_value(json_object_get(bt, "passes"));
    *requests = (long)json_integer_value(json_object_get(bt, "requests"));
    json_decref(o);
    free(b.p);
}

/* Median round trip of an offline /refine of 2R + 1 rows (the reference). */
static double reference_ms(int C, int reps)
{
    int T = 2 * g_R + 1;
    float *x = calloc((size_t)T * C, sizeof(float));
    int64_t sh[2] = {T, C};
    void *b;
    size_t len;
    sola_err e = {0};
    if (sola_npy_encode(x, 2, sh, &b, &len, &e))
        die(e.msg);
    CURL *h = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s/refine?model=m", g_base);
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/x-npy");
    hd = curl_slist_append(hd, "Expect:");
    conn sink = {0};
    double *v = malloc(sizeof(double) * (size_t)reps);
    for (int i = 0; i < reps; i++) {
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, b);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
        double t0 = sola_now_s();
        if (curl_easy_perform(h) != CURLE_OK)
            die("reference request failed");
        v[i] = (sola_now_s() - t0) * 1e3;
    }
    double m = bench_pct(v, reps, 0.5);
    free(v);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    free(b);
    free(x);
    return m;
}

static level_result run_level(const opts *o, int N, int level, pid_t solad)
{
    level_result res = {.n = N};
    double period = 1.0 / o->rate, warm = 2.0 + g_R * period;
    res.ref = reference_ms(o->C, 60);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    conn *cs = calloc((size_t)N, sizeof *cs);
    size_t cap = (size_t)(N * (o->seconds + warm + 2) * o->rate) + 16;
    double *lat = malloc(sizeof(double) * cap);
    double t0 = sola_now_s() + 0.2, t_end = t0 + warm + o->seconds;
    for (int i = 0; i < N; i++) {
        cs[i].h = curl_easy_init();
        cs[i].next = t0 + period * i / N; /* arrivals spread over one period */
    }
    long p0, r0, p1, r1;
    batch_stats(&p0, &r0);
    double cpu0 = proc_cpu(solad), me0 = self_cpu();
    int active = 0, ending = 0;
    for (;;) {
        double now = sola_now_s();
        if (!ending && now >= t_end) {
            ending = 1;
            res.solad_cpu = (proc_cpu(solad) - cpu0) / (now - t0);
            res.client_cpu = (self_cpu() - me0) / (now - t0);
            batch_stats(&p1, &r1);
            res.req_per_pass = p1 > p0 ? (double)(r1 - r0) / (double)(p1 - p0) : 0;
        }
        double wake = now + 0.05;
        for (int i = 0; i < N; i++) {
            conn *c = &cs[i];
            if (c->busy || c->ended)
                continue;
            if (ending) { /* close the stream: its tail is not measured */
                prepare(c, o, level, i, 0, 1);
                c->ended = 1;
            } else if (c->next <= now) {
                prepare(c, o, level, i, !c->started, 0);
                c->started = 1;
                c->sched = c->next;
                c->next += period;
                c->sent_snippets++;
                double lag = now - c->sched;
                if (c->sched >= t0 + warm && lag > res.max_lag)
                    res.max_lag = lag;
            } else {
                if (c->next < wake)
                    wake = c->next;
                continue;
            }
            c->sent = now;
            c->busy = 1;
            curl_multi_add_handle(multi, c->h);
            active++;
        }
        int running;
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            conn *c;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            long status = 0;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            double done = sola_now_s();
            curl_multi_remove_handle(multi, m->easy_handle);
            c->busy = 0;
            active--;
            res.calls++;
            int measured = !c->ended && c->sched >= t0 + warm;
            if (m->data.result != CURLE_OK || status != 200) {
                if (measured || c->ended)
                    res.failed++;
                if (res.failed <= 3)
                    fprintf(stderr, "bench_stream: N=%d: a call failed (curl %d, HTTP %ld)\n", N,
                            (int)m->data.result, status);
                continue;
            }
            /* from the (R+1)-th snippet on, each reply carries the row it made final;
             * that snippet arrived at c->sched */
            if (measured && c->sent_snippets > g_R && (size_t)res.measured < cap)
                lat[res.measured++] = (done - c->sched) * 1e3;
        }
        if (ending && active == 0)
            break;
        double wait = wake - sola_now_s();
        int ms = wait > 0 ? (int)(wait * 1e3) : 0;
        if (running || ms > 0)
            curl_multi_poll(multi, NULL, 0, ms > 50 ? 50 : ms, NULL);
    }
    if (res.measured > 0) {
        res.p50 = bench_pct(lat, (int)res.measured, 0.5);
        res.p99 = bench_pct(lat, (int)res.measured, 0.99);
    }
    res.ref = (res.ref + reference_ms(o->C, 60)) / 2;
    for (int i = 0; i < N; i++) {
        curl_easy_cleanup(cs[i].h);
        curl_slist_free_all(cs[i].hdrs);
        free(cs[i].body);
    }
    free(cs);
    free(lat);
    curl_multi_cleanup(multi);
    return res;
}

static int realtime(const level_result *r, const opts *o)
{
    return r->failed == 0 && r->measured > 0 && r->p99 < 1e3 / o->rate;
}

static void print_level(const level_result *r, const opts *o)
{
    printf("%6d  %8ld  %7.1f  %7.1f  %6.2fx  %6.2fx  %7.1f  %5.2f  %5.2f  %6.1f  %s\n", r->n,
           r->measured, r->p50, r->p99, r->p50 / r->ref, r->p99 / r->ref, r->max_lag * 1e3,
           r->solad_cpu, r->client_cpu, r->req_per_pass, realtime(r, o) ? "yes" : "NO");
    fflush(stdout);
}

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        out[n++] = atoi(s);
        s = strchr(s, ',');
        if (!s)
            break;
        s++;
    }
    return n;
}

int main(int argc, char **argv)
{
    opts o = {.streams = 64, .C = 2048, .H = 512, .k1 = 5, .workers = 0, .threads = 0,
              .reps = 3, .rate = 7.5, .seconds = 10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--streams") && v)
            o.streams = atoi(argv[++i]);
        else if (!strcmp(a, "--rate") && v)
            o.rate = atof(argv[++i]);
        else if (!strcmp(a, "--seconds") && v)
            o.seconds = atof(argv[++i]);
        else if (!strcmp(a, "--reps") && v)
            o.reps = atoi(argv[++i]);
        else if (!strcmp(a, "--ramp") && v)
            o.nramp = parse_list(argv[++i], o.ramp, 32);
        else if (!strcmp(a, "--C") && v)
            o.C = atoi(argv[++i]);
        else if (!strcmp(a, "--H") && v)
            o.H = atoi(argv[++i]);
        else if (!strcmp(a, "--k1") && v)
            o.k1 = atoi(argv[++i]);
        else if (!strcmp(a, "--workers") && v)
            o.workers = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && v)
            o.threads = atoi(argv[++i]);
        else if (!strcmp(a, "--format") && v)
            o.v2 = !strcmp(argv[++i], "v2");
        else
            die("usage: bench_stream [--streams 64] [--rate 7.5] [--seconds 10] [--reps 3] "
                "[--ramp 64,128,...] [--C 2048] [--H 512] [--k1 5] [--workers N] "
                "[--threads N] [--format npy|v2]");
    }
    if (o.streams < 1 || o.rate <= 0 || o.seconds <= 0 || o.C < 1 || o.H < 1 || o.k1 < 1 ||
        !(o.k1 & 1))
        die("bad option values");

    /* a model of the authors' shape with alpha != 0, in a data directory of our own */
    char tmpl[] = "/tmp/bench_stream.XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir)
        die("mkdtemp failed");
    char p[4200];
    snprintf(p, sizeof p, "%s/models/m", dir);
    sola_err e = {0};
    if (sola_mkdirs(p, 0755, &e))
        die(e.msg);
    sola_model *m = sola_model_new(o.C, o.H, o.k1, 1, 0, &e);
    if (!m)
        die(e.msg);
    sola_model_init(m, 1);
    m->alpha[0] = 0.5f;
    snprintf(p, sizeof p, "%s/models/m/1.safetensors", dir);
    if (sola_model_save(m, p, 0, &e))
        die(e.msg);
    g_R = sola_stream_radius(m);
    sola_model_free(m);
    make_bodies(o.C);

    char wk[16], th[16];
    const char *args[24] = {"--max-streams", "1000000", "--max-conns", "1000000",
                            "--max-conns-per-ip", "1000000", "--queue", "100000",
                            "--stream-idle-timeout", "600"};
    int na = 10;
    if (o.workers) {
        snprintf(wk, sizeof wk, "%d", o.workers);
        args[na++] = "--workers";
        args[na++] = wk;
    }
    if (o.threads) {
        snprintf(th, sizeof th, "%d", o.threads);
        args[na++] = "--threads";
        args[na++] = th;
    }
    args[na] = NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max; /* thousands of connections */
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    pid_t pid = bench_spawn_solad(argv[0], dir, args, g_base, sizeof g_base);
    if (pid < 0)
        die("could not start ./solad (build it next to this program)");
    double load[3] = {0};
    getloadavg(load, 3);
    printf("bench_stream: model C=%d H=%d k1=%d k2=1 (R=%d), %s, %.2f snippets/s per stream, "
           "%.0f s measured per level after %.1f s of warm-up; solad %s%s%s%s, %s; load "
           "average at start %.1f (2 CPUs, shared)\n",
           o.C, o.H, o.k1, g_R, o.v2 ? "v2 binary" : "/refine .npy", o.rate, o.seconds,
           2.0 + g_R / o.rate, o.workers ? "--workers " : "(default workers/threads)",
           o.workers ? wk : "", o.threads ? " --threads " : "", o.threads ? th : "",
           sola_gemm_kernels(), load[0]);
    printf("     N  measured  p50 ms   p99 ms  p50/ref p99/ref  maxlag  solad  client  "
           "req/pass realtime\n");
    printf("                                   (ref: one /refine of %d snippets, idle, same "
           "run)     ms   CPU/s  CPU/s\n", 2 * g_R + 1);
    int level = 0;
    for (int r = 0; r < o.reps; r++) {
        level_result res = run_level(&o, o.streams, level++, pid);
        print_level(&res, &o);
        printf("        ref %.2f ms\n", res.ref);
    }
    if (o.nramp) {
        int pass = 0, fail = 0;
        for (int i = 0; i < o.nramp; i++) {
            level_result res = run_level(&o, o.ramp[i], level++, pid);
            print_level(&res, &o);
            if (realtime(&res, &o)) {
                pass = o.ramp[i];
            } else {
                fail = o.ramp[i];
                break;
            }
        }
        for (int k = 0; k < 3 && fail && fail - pass > pass / 8; k++) { /* bisect */
            int mid = (pass + fail) / 2;
            level_result res = run_level(&o, mid, level++, pid);
            print_level(&res, &o);
            if (realtime(&res, &o))
                pass = mid;
            else
                fail = mid;
        }
        printf("most streams held in real time at %.2f snippets/s: %d%s\n", o.rate, pass,
               fail ? "" : " (every level passed: extend --ramp)");
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_stream: could not remove %s\n", dir);
    curl_global_cleanup();
    return 0;
}
