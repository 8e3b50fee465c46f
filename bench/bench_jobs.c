/* bench_jobs.c -- does a training job starve inference? Refine latency with and
 * without a running job, on the same solad, in the same run.
 *
 *   bench_jobs [--C 1024] [--T 128] [--requests 200] [--workers 1] [--threads 1]
 *              [--train-threads 1] [--videos 32]
 *
 * Starts ./solad (next to this program) on a temporary data directory holding one
 * model (C, H = 512, k = 5/1), then measures sequential POST /refine requests (.npy,
 * [T, C]): first idle, then with a training job (a dataset of --videos videos of 96
 * snippets, batch 32, endless epochs, cancelled afterwards). While the job runs the
 * requests alternate between "training running" and "training paused" (the training
 * process SIGSTOP'ed for that request), so both samples see the same background load
 * from the rest of the machine -- on a shared machine that drifts more than the
 * effect measured. Prints p50, p90, p99 and max per sample and the training rate. */
#include <curl/curl.h>
#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "model.h"
#include "npy.h"
#include "rng.h"

static void die(const char *msg)
{
    fprintf(stderr, "bench_jobs: %s\n", msg);
    exit(1);
}

typedef struct sink {
    char *p;
    size_t n;
} sink;

static size_t sink_cb(char *p, size_t sz, size_t nm, void *ud)
{
    sink *s = ud;
    size_t n = sz * nm;
    char *q = realloc(s->p, s->n + n + 1);
    if (!q)
        return 0;
    memcpy(q + s->n, p, n);
    s->p = q;
    s->n += n;
    q[s->n] = '\0';
    return n;
}

/* One request; returns the status, body in *out (malloc'd, may be NULL). */
static long http(CURL *c, const char *method, const char *url, const char *ctype,
                 const void *body, size_t len, char **out)
{
    sink s = {0};
    struct curl_slist *h = NULL;
    char ct[128];
    if (ctype) {
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
        h = curl_slist_append(h, ct);
    }
    h = curl_slist_append(h, "Expect:");
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    long st = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    curl_slist_free_all(h);
    if (out)
        *out = s.p;
    else
        free(s.p);
    return st;
}

static json_t *get_json(CURL *c, const char *url)
{
    char *b = NULL;
    json_t *o = http(c, "GET", url, NULL, NULL, 0, &b) == 200 ? json_loads(b, 0, NULL) : NULL;
    free(b);
    return o;
}

static void *npy_of(int T, int C, uint64_t seed, size_t *len)
{
    float *x = malloc(sizeof(float) * (size_t)T * (size_t)C);
    sola_rng r;
    sola_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)T * (size_t)C; i++)
        x[i] = (float)(sola_rng_uniform(&r) * 2.0 - 1.0);
    void *b;
    int64_t sh[2] = {T, C};
    sola_err e = {0};
    if (sola_npy_encode(x, 2, sh, &b, len, &e))
        die(e.msg);
    free(x);
    return b;
}

static pid_t spawn(const char *self, const char *data, const char *workers,
                   const char *threads, const char *tthreads, char *base, size_t n)
{
    const char *opt[] = {"--workers", workers, "--threads", threads, "--train-threads",
                         tthreads, NULL};
    pid_t pid = bench_spawn_solad(self, data, opt, base, n);
    if (pid < 0)
        die("solad did not start (is it built next to bench_jobs?)");
    return pid;
}

/* One refine; its latency in ms. */
static double one(CURL *c, const char *base, const void *npy, size_t len)
{
    char url[256];
    snprintf(url, sizeof url, "%s/refine?model=m", base);
    double t0 = sola_now_s();
    long st = http(c, "POST", url, "application/x-npy", npy, len, NULL);
    if (st != 200)
        die("a refine request failed");
    return (sola_now_s() - t0) * 1e3;
}

/* n sequential refines; latencies (ms) into lat. */
static void phase(CURL *c, const char *base, const void *npy, size_t len, int n, double *lat)
{
    for (int i = 0; i < n; i++)
        lat[i] = one(c, base, npy, len);
}

/* The training process: the child of solad started with --train-worker. */
static pid_t trainer_pid(pid_t solad)
{
    DIR *d = opendir("/proc");
    pid_t found = 0;
    struct dirent *de;
    while (d && !found && (de = readdir(d))) {
        char p[300], buf[512];
        snprintf(p, sizeof p, "/proc/%s/stat", de->d_name);
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *rp = strrchr(buf, ')');
        int ppid = 0;
        char st;
        if (rp && sscanf(rp + 2, "%c %d", &st, &ppid) == 2 && ppid == solad)
            found = (pid_t)atoi(de->d_name);
    }
    if (d)
        closedir(d);
    return found;
}

static void report(const char *name, double *lat, int n)
{
    double p50 = bench_pct(lat, n, 0.5), p90 = bench_pct(lat, n, 0.9);
    double p99 = bench_pct(lat, n, 0.99);
    printf("%-22s %8.2f %8.2f %8.2f %8.2f\n", name, p50, p90, p99, lat[n - 1]);
}

int main(int argc, char **argv)
{
    int C = 1024, T = 128, N = 200, videos = 32;
    const char *workers = "1", *threads = "1", *tthreads = "1";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            die("every option takes a value");
        if (!strcmp(a, "--C"))
            C = atoi(v);
        else if (!strcmp(a, "--T"))
            T = atoi(v);
        else if (!strcmp(a, "--requests"))
            N = atoi(v);
        else if (!strcmp(a, "--videos"))
            videos = atoi(v);
        else if (!strcmp(a, "--workers"))
            workers = v;
        else if (!strcmp(a, "--threads"))
            threads = v;
        else if (!strcmp(a, "--train-threads"))
            tthreads = v;
        else
            die("usage: bench_jobs [--C 1024] [--T 128] [--requests 200] [--workers 1] "
                "[--threads 1] [--train-threads 1] [--videos 32]");
        i++;
    }
    if (C < 1 || T < 1 || N < 10 || videos < 1)
        die("bad sizes");
    char data[] = "/tmp/bench_jobs.XXXXXX";
    if (!mkdtemp(data))
        die("mkdtemp");
    char p[4200];
    snprintf(p, sizeof p, "%s/models/m", data);
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
    if (system(cmd))
        die("mkdir");
    sola_err e = {0};
    sola_model *m = sola_model_new(C, 512, 5, 1, 0, &e);
    if (!m)
        die(e.msg);
    sola_model_init(m, 1);
    m->alpha[0] = 0.5f;
    snprintf(p, sizeof p, "%s/models/m/1.safetensors", data);
    if (sola_model_pack(m, &e) || sola_model_save(m, p, 0, &e))
        die(e.msg);
    sola_model_free(m);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    char base[256];
    pid_t pid = spawn(argv[0], data, workers, threads, tthreads, base, sizeof base);
    CURL *c = curl_easy_init();
    size_t len;
    void *npy = npy_of(T, C, 7, &len);
    double *idle = malloc(sizeof(double) * (size_t)N), *busy = malloc(sizeof(double) * (size_t)N),
           *after = malloc(sizeof(double) * (size_t)N);
    printf("solad --workers %s --threads %s --train-threads %s; refine [%d, %d], H 512; "
           "%d sequential requests per phase\n",
           workers, threads, tthreads, T, C, N);
    phase(c, base, npy, len, 10, idle); /* warm-up */
    phase(c, base, npy, len, N, idle);

    /* a dataset and an endless training job */
    char url[512];
    for (int v = 0; v < videos; v++) {
        size_t l;
        void *b = npy_of(96, C, 100 + (uint64_t)v, &l);
        snprintf(url, sizeof url, "%s/datasets/bench/items/v%d", base, v);
        if (http(c, "PUT", url, "application/x-npy", b, l, NULL) / 100 != 2)
            die("dataset upload failed");
        free(b);
    }
    snprintf(url, sizeof url, "%s/train", base);
    const char *spec = "{\"dataset\":\"bench\",\"output_model\":\"bg\",\"epochs\":1000000,"
                       "\"batch\":32}";
    char *reply = NULL;
    if (http(c, "POST", url, "application/json", spec, strlen(spec), &reply) != 202)
        die(reply ? reply : "POST /train failed");
    json_t *j = json_loads(reply, 0, NULL);
    int id = (int)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    free(reply);
    snprintf(url, sizeof url, "%s/jobs/%d", base, id);
    for (int waited = 0;; waited++) {
        j = get_json(c, url);
        int ep = (int)json_integer_value(json_object_get(j, "epoch"));
        json_decref(j);
        if (ep >= 2)
            break;
        if (waited > 1200)
            die("the training job did not get going");
        usleep(100000);
    }
    pid_t tp = trainer_pid(pid);
    if (!tp)
        die("cannot find the training process");
    double t0 = sola_now_s();
    for (int i = 0; i < 2 * N; i++) {
        kill(tp, i % 2 ? SIGSTOP : SIGCONT);
        (i % 2 ? after : busy)[i / 2] = one(c, base, npy, len);
    }
    kill(tp, SIGCONT);
    double el = sola_now_s() - t0;
    j = get_json(c, url);
    double wps = json_number_value(json_object_get(j, "windows_per_s"));
    json_decref(j);
    http(c, "DELETE", url, NULL, NULL, 0, NULL);
    for (int waited = 0; waited < 600; waited++) {
        j = get_json(c, url);
        int done = !strcmp(json_string_value(json_object_get(j, "state")), "cancelled");
        json_decref(j);
        if (done)
            break;
        usleep(50000);
    }

    printf("%-22s %8s %8s %8s %8s   (ms)\n", "sample", "p50", "p90", "p99", "max");
    report("idle (before the job)", idle, N);
    report("training running", busy, N);
    report("training paused", after, N);
    printf("training: %.0f windows/s (batch 32, W 23, C %d, H 512) over %.1f s, running half "
           "of it\n",
           wps, C, el);

    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data);
    if (system(cmd))
        fprintf(stderr, "bench_jobs: could not remove %s\n", data);
    free(npy), free(idle), free(busy), free(after);
    curl_easy_cleanup(c);
    curl_global_cleanup();
    return 0;
}
