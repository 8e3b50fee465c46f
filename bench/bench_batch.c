/* bench_batch.c -- what dynamic batching buys: K concurrent clients against solad with
 * batching on and off, at several T.
 *
 *   bench_batch [--clients 32] [--T 16,100,1000] [--seconds 3] [--rounds 2]
 *               [--windows 2000] [--max-batch-frames 4096] [--route refine|v2]
 *
 * Starts ./solad (next to this program) on a free loopback port with a random model
 * of the paper's shape (C 2048, H 512, k 5/1, alpha != 0, so it computes) in a
 * temporary --data directory, once per configuration:
 *   batch W      --workers 1 --threads 2 --batch-window-us W (each W of --windows)
 *   off 1x2      --workers 1 --threads 2 --max-batch-frames 0
 *   off 2x1      --workers 2 --threads 1 --max-batch-frames 0
 * Each client keeps one connection and sends its own fixed [T, C] sequence (.npy to
 * /refine, or binary v2 infer) back to back for --seconds. Per configuration and T:
 * requests/s, frames/s, p50 and p99 latency; the configurations alternate within each
 * round and the best round counts (the machine is shared). Every reply of a client is
 * compared with that client's first reply under the first configuration with the same
 * BLAS thread count: the program exits 1 if any output differs by a single bit. */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "benchutil.h"
#include "fsutil.h"
#include "model.h"
#include "npy.h"
#include "rng.h"

#define MAXC 256
#define MAXCFG 8

static void die(const char *m)
{
    fprintf(stderr, "bench_batch: %s\n", m);
    exit(2);
}

typedef struct cfg {
    char name[32];
    int workers, threads, window, frames; /* frames 0 = off */
} cfg;

static pid_t spawn(const char *self, const char *data, const cfg *c, int maxbf, char *base,
                   size_t n)
{
    char a[4][16];
    snprintf(a[0], 16, "%d", c->workers);
    snprintf(a[1], 16, "%d", c->threads);
    snprintf(a[2], 16, "%d", c->window);
    snprintf(a[3], 16, "%d", c->frames ? maxbf : 0);
    const char *opt[] = {"--workers", a[0], "--threads", a[1], "--batch-window-us", a[2],
                         "--max-batch-frames", a[3], "--max-frames", "100000", "--queue",
                         "256", NULL};
    pid_t pid = bench_spawn_solad(self, data, opt, base, n);
    if (pid < 0)
        die("solad did not start (is it built next to bench_batch?)");
    return pid;
}

typedef struct sink {
    char *p;
    size_t len, cap;
} sink;

static size_t wr(char *d, size_t sz, size_t nm, void *ud)
{
    sink *s = ud;
    size_t n = sz * nm;
    if (s->len + n > s->cap) {
        size_t c = s->cap ? s->cap * 2 : 65536;
        while (c < s->len + n)
            c *= 2;
        char *q = realloc(s->p, c);
        if (!q)
            return 0;
        s->p = q;
        s->cap = c;
    }
    memcpy(s->p + s->len, d, n);
    s->len += n;
    return n;
}

typedef struct client {
    const char *url;
    const void *body;
    size_t blen;
    struct curl_slist *hdrs;
    double until;
    double *lat;
    int nlat, cap;
    void **ref;     /* first reply of this client under the first config */
    size_t *ref_len;
    int mismatches, errors;
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    CURL *h = curl_easy_init();
    sink s = {0};
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->blen);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, wr);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
    while (sola_now_s() < c->until) {
        s.len = 0;
        double t0 = sola_now_s();
        long st = 0;
        if (curl_easy_perform(h) != CURLE_OK ||
            (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st), st != 200)) {
            c->errors++;
            continue;
        }
        double dt = sola_now_s() - t0;
        if (c->nlat == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 256;
            c->lat = realloc(c->lat, sizeof *c->lat * (size_t)c->cap);
        }
        c->lat[c->nlat++] = dt;
        if (!*c->ref) {
            *c->ref = malloc(s.len);
            memcpy(*c->ref, s.p, s.len);
            *c->ref_len = s.len;
        } else if (s.len != *c->ref_len || memcmp(s.p, *c->ref, s.len)) {
            c->mismatches++;
        }
    }
    free(s.p);
    curl_easy_cleanup(h);
    return NULL;
}

typedef struct result {
    double rps, fps, p50, p99;
    int n;
} result;

int main(int argc, char **argv)
{
    int K = 32, rounds = 2, maxbf = 4096, v2 = 0;
    double secs = 3;
    char Tlist[128] = "16,100,1000", wlist[128] = "2000";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--clients") && v)
            K = atoi(v), i++;
        else if (!strcmp(a, "--T") && v)
            snprintf(Tlist, sizeof Tlist, "%s", v), i++;
        else if (!strcmp(a, "--seconds") && v)
            secs = atof(v), i++;
        else if (!strcmp(a, "--rounds") && v)
            rounds = atoi(v), i++;
        else if (!strcmp(a, "--windows") && v)
            snprintf(wlist, sizeof wlist, "%s", v), i++;
        else if (!strcmp(a, "--max-batch-frames") && v)
            maxbf = atoi(v), i++;
        else if (!strcmp(a, "--route") && v)
            v2 = !strcmp(v, "v2"), i++;
        else
            die("usage: bench_batch [--clients K] [--T 16,100,1000] [--seconds S] [--rounds R] "
                "[--windows US,...] [--max-batch-frames N] [--route refine|v2]");
    }
    if (K < 1 || K > MAXC || rounds < 1)
        die("--clients 1..256, --rounds >= 1");
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    /* the model: the paper's shape, random weights, alpha != 0 */
    const int C = 2048;
    sola_err e = {0};
    char tmpl[] = "/tmp/bench_batch.XXXXXX", p[4096];
    char *data = mkdtemp(tmpl);
    if (!data)
        die("mkdtemp");
    sola_model *m = sola_model_new(C, 512, 5, 1, 0, &e);
    if (!m)
        die(e.msg);
    sola_model_init(m, 7);
    m->alpha[0] = 0.5f;
    snprintf(p, sizeof p, "%s/models/m", data);
    if (sola_mkdirs(p, 0755, &e))
        die(e.msg);
    snprintf(p, sizeof p, "%s/models/m/1.safetensors", data);
    if (sola_model_save(m, p, 0, &e))
        die(e.msg);
    sola_model_free(m);

    cfg cfgs[MAXCFG];
    int ncfg = 0;
    for (char *w = strtok(wlist, ","); w && ncfg < MAXCFG - 2; w = strtok(NULL, ",")) {
        cfgs[ncfg] = (cfg){"", 1, 2, atoi(w), 1};
        snprintf(cfgs[ncfg].name, sizeof cfgs[ncfg].name, "batch w=%dus", atoi(w));
        ncfg++;
    }
    cfgs[ncfg++] = (cfg){"off 1x2", 1, 2, 0, 0};
    cfgs[ncfg++] = (cfg){"off 2x1", 2, 1, 0, 0};

    printf("# %d clients, %s, %.1f s per run, best of %d rounds, max-batch-frames %d\n", K,
           v2 ? "POST /v2/models/m/infer (binary)" : "POST /refine (.npy)", secs, rounds,
           maxbf);
    printf("# model C=2048 H=512 k1=5 k2=1; OPENBLAS_CORETYPE=%s\n",
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(CPU's own)");
    printf("%6s  %-14s %9s %10s %9s %9s\n", "T", "config", "req/s", "frames/s", "p50 ms",
           "p99 ms");
    int bad = 0;
    for (char *ts = strtok(Tlist, ","); ts; ts = strtok(NULL, ",")) {
        int T = atoi(ts);
        if (T < 1)
            die("--T: positive lengths");
        /* one body per client */
        void *bodies[MAXC];
        size_t blens[MAXC];
        /* reference replies per BLAS thread count (1, or more): a GEMM's last bits may
         * depend on how many threads share it, batching or not */
        void *refs[2][MAXC] = {{0}};
        size_t ref_lens[2][MAXC] = {{0}}, hls[MAXC] = {0};
        sola_rng r;
        sola_rng_seed(&r, (uint64_t)T);
        float *x = malloc(sizeof(float) * (size_t)T * C);
        for (int k = 0; k < K; k++) {
            for (size_t i = 0; i < (size_t)T * C; i++)
                x[i] = (float)sola_rng_normal(&r);
            if (v2) {
                char hdr[400];
                size_t nb = (size_t)T * C * 4;
                int hl = snprintf(hdr, sizeof hdr,
                                  "{\"inputs\":[{\"name\":\"features\",\"shape\":[%d,%d],"
                                  "\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":"
                                  "%zu}}],\"outputs\":[{\"name\":\"refined\",\"parameters\":"
                                  "{\"binary_data\":true}}]}",
                                  T, C, nb);
                bodies[k] = malloc((size_t)hl + nb);
                memcpy(bodies[k], hdr, (size_t)hl);
                memcpy((char *)bodies[k] + hl, x, nb);
                blens[k] = (size_t)hl + nb;
                hls[k] = (size_t)hl;
            } else {
                int64_t sh[2] = {T, C};
                if (sola_npy_encode(x, 2, sh, &bodies[k], &blens[k], &e))
                    die(e.msg);
            }
        }
        free(x);
        result best[MAXCFG];
        memset(best, 0, sizeof best);
        for (int round = 0; round < rounds; round++) {
            for (int ci = 0; ci < ncfg; ci++) {
                /* alternate the order between rounds so drift hits all alike */
                int c = round % 2 ? ncfg - 1 - ci : ci;
                char base[128], url[256];
                pid_t pid = spawn(argv[0], data, &cfgs[c], maxbf, base, sizeof base);
                snprintf(url, sizeof url, "%s%s", base, v2 ? "/v2/models/m/infer" : "/refine");
                client cl[MAXC];
                pthread_t th[MAXC];
                char hv[K][64];
                double t0 = sola_now_s() + 0.3; /* a warm-up request each first */
                for (int k = 0; k < K; k++) {
                    cl[k] = (client){0};
                    cl[k].url = url;
                    cl[k].body = bodies[k];
                    cl[k].blen = blens[k];
                    cl[k].hdrs = curl_slist_append(NULL, "Expect:");
                    if (v2) {
                        snprintf(hv[k], sizeof hv[k], "Inference-Header-Content-Length: %zu",
                                 hls[k]);
                        cl[k].hdrs = curl_slist_append(cl[k].hdrs, hv[k]);
                    } else {
                        cl[k].hdrs = curl_slist_append(cl[k].hdrs,
                                                       "Content-Type: application/x-npy");
                    }
                    cl[k].until = t0 + secs;
                    cl[k].ref = &refs[cfgs[c].threads > 1][k];
                    cl[k].ref_len = &ref_lens[cfgs[c].threads > 1][k];
                }
                double start = sola_now_s();
                for (int k = 0; k < K; k++)
                    pthread_create(&th[k], NULL, client_main, &cl[k]);
                int n = 0, errs = 0, mism = 0;
                for (int k = 0; k < K; k++) {
                    pthread_join(th[k], NULL);
                    n += cl[k].nlat;
                    errs += cl[k].errors;
                    mism += cl[k].mismatches;
                }
                double el = sola_now_s() - start;
                double *all = malloc(sizeof(double) * (size_t)(n ? n : 1));
                int o = 0;
                for (int k = 0; k < K; k++) {
                    memcpy(all + o, cl[k].lat, sizeof(double) * (size_t)cl[k].nlat);
                    o += cl[k].nlat;
                    free(cl[k].lat);
                    curl_slist_free_all(cl[k].hdrs);
                }
                result res = {n / el, n * (double)T / el,
                              n ? bench_pct(all, n, 0.5) * 1e3 : 0,
                              n ? bench_pct(all, n, 0.99) * 1e3 : 0, n};
                free(all);
                if (res.rps > best[c].rps)
                    best[c] = res;
                if (errs)
                    fprintf(stderr, "# %s T=%d: %d failed requests\n", cfgs[c].name, T, errs);
                if (mism)
                    fprintf(stderr, "# %s T=%d: %d replies differ from the reference\n",
                            cfgs[c].name, T, mism);
                bad += mism;
                kill(pid, SIGTERM);
                waitpid(pid, NULL, 0);
            }
        }
        double best_off = 0;
        for (int c = 0; c < ncfg; c++) {
            printf("%6d  %-14s %9.1f %10.0f %9.2f %9.2f\n", T, cfgs[c].name, best[c].rps,
                   best[c].fps, best[c].p50, best[c].p99);
            if (!cfgs[c].frames && best[c].fps > best_off)
                best_off = best[c].fps;
        }
        for (int c = 0; c < ncfg; c++)
            if (cfgs[c].frames)
                printf("%6d  %-14s %.2fx the frames/s of the best unbatched configuration\n", T,
                       cfgs[c].name, best_off > 0 ? best[c].fps / best_off : 0);
        fflush(stdout);
        for (int k = 0; k < K; k++) {
            free(bodies[k]);
            free(refs[0][k]);
            free(refs[1][k]);
        }
    }
    snprintf(p, sizeof p, "rm -rf '%s'", data);
    if (system(p) != 0)
        fprintf(stderr, "bench_batch: could not remove %s\n", data);
    curl_global_cleanup();
    if (bad) {
        printf("FAIL: %d replies differed from the first configuration's\n", bad);
        return 1;
    }
    printf("# every reply identical across configurations, bit for bit\n");
    return 0;
}
