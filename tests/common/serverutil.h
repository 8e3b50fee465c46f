/* serverutil.h -- helpers for the tests that drive a real solad over HTTP.
 *
 * Implemented in serverutil.c (library solatest). su_start runs build/solad on
 * 127.0.0.1 port 0 and reads the chosen port from its stdout; its stderr (the request
 * log) goes to DIR/solad.log, which su_dump_log prints when a test wants to show why
 * it failed. */
#ifndef SOLA_SERVERUTIL_H
#define SOLA_SERVERUTIL_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "model.h"
#include "testutil.h"

/* 1 in an AddressSanitizer build: RSS bounds are printed, not asserted (its quarantine
 * and shadow memory keep freed memory resident). */
#if defined(__SANITIZE_ADDRESS__)
#define SU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SU_ASAN 1
#endif
#endif
#ifndef SU_ASAN
#define SU_ASAN 0
#endif

typedef struct su_server {
    pid_t pid;
    int port;
    char base[64]; /* "http://127.0.0.1:PORT" */
    char log[4096];
} su_server;

/* Starts solad with the given extra arguments (NULL-terminated); logdir receives
 * solad.log. Returns 0 when the server printed its address. */
int su_start(su_server *s, const char *logdir, const char *const *args);
/* su_start on data directory dir (its log there too) with one worker of one thread,
 * then `extra` (NULL-terminated, NULL for none; at most 32). */
int su_start_data(su_server *s, const char *dir, const char *const *extra);

/* Exit status after `sig` (SIGTERM), -1 if it did not exit normally within ~30 s. */
int su_stop_sig(su_server *s, int sig);

int su_stop(su_server *s);

void su_dump_log(const su_server *s);

/* main() of a daemon test: libcurl's global state set up around the whole run (it is
 * not thread-safe to do lazily from the tests' client threads). */
int su_run(Suite *suite);

/* ---- HTTP -------------------------------------------------------------------- */

typedef struct su_resp {
    CURLcode rc;
    long status;
    char *body;
    size_t len;
    size_t cap; /* bytes allocated for body */
    char hdrs[4096];
    size_t hlen;
} su_resp;

size_t su_write_cb(char *p, size_t sz, size_t nm, void *ud);

size_t su_header_cb(char *p, size_t sz, size_t nm, void *ud);

/* Value of a response header (case-insensitive) into out; NULL if absent. */
const char *su_header(const su_resp *r, const char *name, char *out, size_t n);

void su_resp_free(su_resp *r);

/* One request. c: a handle to reuse (keep-alive) or NULL for a fresh one. headers:
 * NULL-terminated "Name: value" strings. body may be NULL. */
CURLcode su_http(CURL *c, const char *method, const char *url, const char *const *headers,
                 const void *body, size_t blen, su_resp *out);

/* GET base+path, returning the status (0 on transport failure); body in out. */
long su_get(const su_server *s, CURL *c, const char *path, su_resp *out);

/* An integer member of GET /healthz, -1 on failure. */
long su_health(const su_server *s, CURL *c, const char *key);

void su_sleep_ms(int ms);

/* base+path in one of four per-thread buffers, so a call may hold up to four at once
 * (a request URL and the URLs in its assertion message). */
char *su_url(const su_server *s, const char *path);

/* Asserts the reply's status and, when needle is not NULL, that its body contains
 * needle; frees the reply. */
void su_expect(su_resp *r, long want, const char *needle);

/* ---- data -------------------------------------------------------------------- */

/* A model whose output differs from its input (alpha != 0), saved as
 * DATA/models/NAME/VERSION.safetensors. Returns the model (caller frees). */
sola_model *su_make_model(const char *data, const char *name, int version, int C, int H,
                          uint64_t seed, float alpha);

/* Deterministic test input [T, C]. */
float *su_input(int T, int C, unsigned seed);

/* sola_refine of x [T, m->C] on this side, for comparing with a reply (caller frees). */
float *su_refine_local(const sola_model *m, const float *x, int T);

/* x [T, C] as an .npy body (caller frees). */
void *su_npy_of(const float *x, int T, int C, size_t *len);

/* JSON body {"features": x} (+ extra members text, may be ""). malloc'd. */
char *su_json_features(const float *x, int T, int C, const char *extra);

/* Reads a JSON reply's 2-D float array member into a malloc'd buffer (rows*cols). */
float *su_json_matrix(const char *body, const char *member, int *rows, int *cols);

/* A metric's value from the /metrics page (-1 if absent). */
double su_metric(const su_server *s, const char *name);

#endif
