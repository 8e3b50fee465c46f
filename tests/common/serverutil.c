/* serverutil.c -- see serverutil.h. */
#include "serverutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "array.h"
#include "npy.h"
#include "refine.h"

int su_start(su_server *s, const char *logdir, const char *const *args)
{
    memset(s, 0, sizeof *s);
    char bin[4096];
    snprintf(bin, sizeof bin, "%s/solad", tu_bin());
    snprintf(s->log, sizeof s->log, "%s/solad.log", logdir);
    int pfd[2];
    if (pipe(pfd))
        return -1;
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    for (int i = 0; args && args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        int lfd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (lfd >= 0)
            dup2(lfd, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    s->pid = pid;
    char line[256];
    size_t got = 0;
    /* generous: the sanitizer build starts slowly on a busy machine */
    for (int waited = 0; waited < 30000 && got < sizeof line - 1;) {
        struct pollfd p = {pfd[0], POLLIN, 0};
        int r = poll(&p, 1, 100);
        waited += 100;
        if (r <= 0)
            continue;
        ssize_t k = read(pfd[0], line + got, sizeof line - 1 - got);
        if (k <= 0)
            break;
        got += (size_t)k;
        line[got] = '\0';
        if (strchr(line, '\n'))
            break;
    }
    line[got] = '\0';
    /* keep the pipe's read end open but unread: solad prints one line only */
    const char *p = strstr(line, "127.0.0.1:");
    if (!p) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(pfd[0]);
        s->pid = 0;
        return -1;
    }
    s->port = atoi(p + 10);
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
    close(pfd[0]);
    return 0;
}

int su_start_data(su_server *s, const char *dir, const char *const *extra)
{
    const char *args[40] = {"--data", dir, "--workers", "1", "--threads", "1"};
    int n = 6;
    for (int i = 0; extra && extra[i] && n < 38; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return su_start(s, dir, args);
}

int su_stop_sig(su_server *s, int sig)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, sig);
    int st = 0;
    for (int i = 0; i < 3000; i++) {
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid) {
            s->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    return -1;
}

int su_stop(su_server *s)
{
    return su_stop_sig(s, SIGTERM);
}

void su_dump_log(const su_server *s)
{
    size_t n;
    char *t = tu_read(s->log, &n);
    if (t) {
        fprintf(stderr, "---- %s ----\n%s\n----\n", s->log, t);
        free(t);
    }
}

int su_run(Suite *suite)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = tu_run(suite);
    curl_global_cleanup();
    return rc;
}

size_t su_write_cb(char *p, size_t sz, size_t nm, void *ud)
{
    su_resp *r = ud;
    size_t n = sz * nm;
    if (r->len + n + 1 > r->cap) {
        /* geometric growth: a 64 MiB reply arrives in 16 KiB pieces, and ASan's realloc
         * always copies (one realloc per piece timed test_memory out under ASan) */
        size_t cap = r->cap ? r->cap : 16384;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b)
            return 0;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, p, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

size_t su_header_cb(char *p, size_t sz, size_t nm, void *ud)
{
    su_resp *r = ud;
    size_t n = sz * nm;
    if (n >= 9 && strncmp(p, "HTTP/", 5) == 0)
        r->hlen = 0; /* a new response (after 100 Continue): keep its headers only */
    if (r->hlen + n < sizeof r->hdrs) {
        memcpy(r->hdrs + r->hlen, p, n);
        r->hlen += n;
        r->hdrs[r->hlen] = '\0';
    }
    return n;
}

const char *su_header(const su_resp *r, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = r->hdrs; p && *p;) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t k = strcspn(v, "\r\n");
            if (k >= n)
                k = n - 1;
            memcpy(out, v, k);
            out[k] = '\0';
            return out;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

void su_resp_free(su_resp *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

CURLcode su_http(CURL *c, const char *method, const char *url, const char *const *headers,
                 const void *body, size_t blen, su_resp *out)
{
    memset(out, 0, sizeof *out);
    int own = !c;
    if (own)
        c = curl_easy_init();
    curl_easy_reset(c);
    struct curl_slist *hl = NULL;
    for (int i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    hl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, su_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, su_header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    out->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(hl);
    if (own)
        curl_easy_cleanup(c);
    return out->rc;
}

long su_get(const su_server *s, CURL *c, const char *path, su_resp *out)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    su_http(c, "GET", url, NULL, NULL, 0, out);
    return out->rc == CURLE_OK ? out->status : 0;
}

long su_health(const su_server *s, CURL *c, const char *key)
{
    su_resp r;
    long v = -1;
    if (su_get(s, c, "/healthz", &r) == 200) {
        json_t *o = json_loads(r.body, 0, NULL);
        json_t *x = json_object_get(o, key);
        if (json_is_integer(x))
            v = (long)json_integer_value(x);
        json_decref(o);
    }
    su_resp_free(&r);
    return v;
}

void su_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

char *su_url(const su_server *s, const char *path)
{
    static _Thread_local char u[4][1024];
    static _Thread_local int k;
    k = (k + 1) % 4;
    snprintf(u[k], sizeof u[k], "%s%s", s->base, path);
    return u[k];
}

void su_expect(su_resp *r, long want, const char *needle)
{
    ck_assert_msg(r->status == want, "status %ld, wanted %ld: %s", r->status, want,
                  r->body ? r->body : "");
    if (needle)
        ck_assert_msg(r->body && strstr(r->body, needle), "reply lacks \"%s\": %s", needle,
                      r->body ? r->body : "");
    su_resp_free(r);
}

sola_model *su_make_model(const char *data, const char *name, int version, int C, int H,
                          uint64_t seed, float alpha)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(C, H, 3, 1, 0, &e);
    if (!m)
        return NULL;
    sola_model_init(m, seed);
    m->alpha[0] = alpha;
    if (sola_model_pack(m, &e)) {
        sola_model_free(m);
        return NULL;
    }
    if (data) {
        char p[4096];
        snprintf(p, sizeof p, "%s/models/%s", data, name);
        tu_system("mkdir -p '%s'", p);
        snprintf(p, sizeof p, "%s/models/%s/%d.safetensors", data, name, version);
        if (sola_model_save(m, p, 0, &e)) {
            sola_model_free(m);
            return NULL;
        }
    }
    return m;
}

float *su_input(int T, int C, unsigned seed)
{
    float *x = malloc(sizeof(float) * (size_t)T * (size_t)C);
    unsigned s = seed * 2654435761u + 1;
    for (int i = 0; i < T * C; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
    }
    return x;
}

float *su_refine_local(const sola_model *m, const float *x, int T)
{
    float *y = malloc(sizeof(float) * (size_t)T * (size_t)m->C);
    sola_ws *ws = sola_ws_new();
    sola_err e = {0};
    ck_assert_int_eq(sola_refine(m, x, T, y, ws, &e), 0);
    sola_ws_free(ws);
    return y;
}

void *su_npy_of(const float *x, int T, int C, size_t *len)
{
    void *b;
    sola_err e = {0};
    int64_t sh[2] = {T, C};
    ck_assert_int_eq(sola_npy_encode(x, 2, sh, &b, len, &e), 0);
    return b;
}

char *su_json_features(const float *x, int T, int C, const char *extra)
{
    size_t cap = (size_t)T * (size_t)C * 20 + 256 + strlen(extra);
    char *b = malloc(cap);
    size_t o = (size_t)snprintf(b, cap, "{%s%s\"features\":[", extra, *extra ? "," : "");
    for (int t = 0; t < T; t++) {
        b[o++] = t ? ',' : '[';
        if (t)
            b[o++] = '[';
        for (int c = 0; c < C; c++)
            o += (size_t)snprintf(b + o, cap - o, "%s%.9g", c ? "," : "", (double)x[t * C + c]);
        b[o++] = ']';
    }
    o += (size_t)snprintf(b + o, cap - o, "]}");
    return b;
}

float *su_json_matrix(const char *body, const char *member, int *rows, int *cols)
{
    json_t *o = json_loads(body, 0, NULL);
    json_t *a = json_object_get(o, member);
    float *out = NULL;
    if (json_is_array(a) && json_array_size(a) > 0) {
        *rows = (int)json_array_size(a);
        *cols = (int)json_array_size(json_array_get(a, 0));
        out = malloc(sizeof(float) * (size_t)(*rows) * (size_t)(*cols));
        for (int i = 0; i < *rows; i++)
            for (int j = 0; j < *cols; j++)
                out[i * *cols + j] = (float)json_number_value(
                    json_array_get(json_array_get(a, (size_t)i), (size_t)j));
    }
    json_decref(o);
    return out;
}

double su_metric(const su_server *s, const char *name)
{
    su_resp r;
    double v = -1;
    if (su_get(s, NULL, "/metrics", &r) == 200) {
        size_t nl = strlen(name);
        for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
            if (!strncmp(p, name, nl) && p[nl] == ' ') {
                v = atof(p + nl + 1);
                break;
            }
    }
    su_resp_free(&r);
    return v;
}
