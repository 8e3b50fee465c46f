/* bench_client.c -- one HTTP client that times lone .npy refine requests, driven by
 * bench/bench_peers.py (the benchmark against PyTorch and ONNX Runtime).
 *
 *   bench_client --url http://HOST:PORT/refine [--C 2048]
 *
 * Reads commands on stdin, one per line, and answers each with one line:
 *   req T N     N requests one after another on one persistent connection, each a
 *               POST of a [T, C] float32 .npy (the same random body for a given T)
 *               -> "T median_ms min_ms failures" (a failure is a status other than 200)
 * C, because a Python client would add its own parsing to every request it times. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "npy.h"
#include "rng.h"

typedef struct body {
    int T;
    void *npy;
    size_t len;
} body;

static size_t sink(char *d, size_t sz, size_t nm, void *ud)
{
    (void)d;
    *(size_t *)ud += sz * nm;
    return sz * nm;
}

static const body *get_body(body *bs, int *n, int T, int C)
{
    for (int i = 0; i < *n; i++)
        if (bs[i].T == T)
            return &bs[i];
    if (*n == 32)
        return NULL;
    size_t k = (size_t)T * (size_t)C;
    float *x = malloc(k * sizeof *x);
    if (!x)
        return NULL;
    sola_rng r;
    sola_rng_seed(&r, (uint64_t)T);
    for (size_t i = 0; i < k; i++)
        x[i] = (float)sola_rng_normal(&r);
    int64_t sh[2] = {T, C};
    sola_err e = {0};
    body *b = &bs[*n];
    b->T = T;
    int rc = sola_npy_encode(x, 2, sh, &b->npy, &b->len, &e);
    free(x);
    if (rc)
        return NULL;
    (*n)++;
    return b;
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    int C = 2048;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--url"))
            url = argv[i + 1];
        else if (!strcmp(argv[i], "--C"))
            C = atoi(argv[i + 1]);
    }
    if (!url || C < 1) {
        fprintf(stderr, "usage: bench_client --url http://HOST:PORT/refine [--C 2048]\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/x-npy");
    hl = curl_slist_append(hl, "Expect:");
    size_t got = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    body bs[32];
    int nb = 0;
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        int T, n;
        if (sscanf(line, "req %d %d", &T, &n) != 2 || T < 1 || n < 1) {
            fprintf(stderr, "bench_client: cannot read '%s'\n", line);
            return 2;
        }
        const body *b = get_body(bs, &nb, T, C);
        double *ts = malloc(sizeof *ts * (size_t)n);
        if (!b || !ts) {
            fprintf(stderr, "bench_client: out of memory\n");
            return 1;
        }
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, b->npy);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->len);
        int bad = 0;
        for (int r = -1; r < n; r++) { /* r = -1: warm-up, not timed */
            long st = 0;
            got = 0;
            double t = sola_now_s();
            if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
            t = sola_now_s() - t;
            if (r >= 0) {
                ts[r] = t;
                bad += st != 200;
            }
        }
        double med = bench_pct(ts, n, 0.5), min = ts[0];
        printf("%d %.6f %.6f %d\n", T, med * 1e3, min * 1e3, bad);
        fflush(stdout);
        free(ts);
    }
    for (int i = 0; i < nb; i++)
        free(bs[i].npy);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    curl_global_cleanup();
    return 0;
}
