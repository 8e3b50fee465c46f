/* harness_api.h -- fuzz harness bodies for solad's socket-free API (api/api.h), shared
 * like harness.h by fuzz/fuzz_api_*.c (libFuzzer) and tests/test_fuzz_replay.c.
 *
 *   fuzz_one_api_features: api_parse_features_json, the JSON body scanner of /refine
 *     and /tsm. A refusal is SOLA_EFORMAT-style with a message naming "request body",
 *     out and rest left empty; an accepted body re-encoded with the API's own JSON
 *     float printer parses back to the same floats bit for bit.
 *   fuzz_one_api_request: a whole request through api_dispatch against a fake backend
 *     holding one small model, deferred work run inline as the server would. The
 *     input is text: "METHOD PATH\n", query lines "k=v" up to an empty line, header
 *     lines "Name: value" up to an empty line, then the body. Checked: every reply
 *     has a status; no input yields a 500 (a client cannot cause a server error); an
 *     error reply is a JSON object {"error": "non-empty"}; a 2xx JSON or .npy reply
 *     parses; every model reference taken is released.
 *
 * The URL itself (percent-decoding, splitting the query) is done by libmicrohttpd
 * before api/ sees the request; api/ receives a decoded path and key/value pairs, so
 * the path and the pairs are what is fuzzed here. */
#ifndef SOLA_FUZZ_HARNESS_API_H
#define SOLA_FUZZ_HARNESS_API_H

#include <stdio.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "fsutil.h"
#include "harness.h"

/* ---- api_parse_features_json -------------------------------------------------- */

FUZZ_UNUSED static int fuzz_api_refused(const char *what, int rc, const sola_err *e,
                                        const char *needle)
{
    if (rc >= 0 || rc < SOLA_ENOSPC)
        return fuzz_violation("%s returned %d, not a SOLA_E* code", what, rc);
    if (e->code != rc)
        return fuzz_violation("%s returned %d but set e.code %d (%s)", what, rc, e->code, e->msg);
    if (e->msg[0] == 0)
        return fuzz_violation("%s failed (%d) with an empty message", what, rc);
    if (needle && !strstr(e->msg, needle))
        return fuzz_violation("%s: message does not say \"%s\": %s", what, needle, e->msg);
    return 1;
}

FUZZ_UNUSED static int fuzz_one_api_features(const uint8_t *data, size_t size)
{
    unsigned char *buf = fuzz_copy(data, size); /* exactly sized: no NUL after it */
    if (!buf)
        return 0;
    sola_array a;
    json_t *rest = (json_t *)1;
    sola_err e = {0};
    int rc = api_parse_features_json((const char *)buf, size, &a, &rest, &e);
    free(buf);
    if (rc) {
        if (a.data || rest)
            return fuzz_violation("api_parse_features_json failed but left out.data=%p rest=%p",
                                  (void *)a.data, (void *)rest);
        return fuzz_api_refused("api_parse_features_json", rc, &e, "request body");
    }
    int res = 0;
    if (!json_is_object(rest) || (a.ndim != 2 && a.ndim != 3) || !a.data) {
        res = fuzz_violation("api_parse_features_json accepted with ndim %d rest %p", a.ndim,
                             (void *)rest);
        goto out;
    }
    size_t n = sola_array_numel(&a);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a.data[i])) {
            res = fuzz_violation("features[%zu] is not finite", i);
            goto out;
        }
    /* Round trip through the reply encoder: what /refine would send back for the
     * identity model must read back as the same floats. */
    api_buf b = {0};
    api_buf_puts(&b, "{\"features\": ");
    api_buf_json_floats(&b, a.data, a.ndim, a.shape);
    api_buf_puts(&b, "}");
    if (b.failed) {
        api_buf_free(&b);
        goto out;
    }
    sola_array a2;
    json_t *rest2 = NULL;
    sola_err e2 = {0};
    rc = api_parse_features_json(b.p, b.len, &a2, &rest2, &e2);
    api_buf_free(&b);
    if (rc)
        res = fuzz_violation("the API's own JSON of accepted features is refused: %s", e2.msg);
    else if (!fuzz_same_array(&a, &a2))
        res = fuzz_violation("features changed through api_buf_json_floats + parse");
    if (!rc) {
        sola_array_free(&a2);
        json_decref(rest2);
    }
out:
    sola_array_free(&a);
    json_decref(rest);
    return res;
}

/* ---- whole requests through api_dispatch ---------------------------------------- */

struct api_model {
    int unused;
};

typedef struct fuzz_be {
    sola_model *m;
    struct api_model ref;
    long acquired, released;
    char dir[256]; /* data dir: datasets/d/i.npy, and where uploads are staged */
} fuzz_be;

static int fz_acquire(void *self, const char *name, int version, api_model **out, sola_err *e)
{
    fuzz_be *f = self;
    if ((name && strcmp(name, "m")) || (version && version != 1))
        return sola_errf(e, SOLA_ENOTFOUND, "model %s version %d not found", name ? name : "-",
                         version);
    f->acquired++;
    *out = &f->ref;
    return 0;
}
static const sola_model *fz_get(void *self, api_model *m, sola_err *e)
{
    (void)m;
    (void)e;
    return ((fuzz_be *)self)->m;
}
static const char *fz_name(const api_model *m)
{
    (void)m;
    return "m";
}
static int fz_version(const api_model *m)
{
    (void)m;
    return 1;
}
static void fz_release(void *self, api_model *m)
{
    (void)m;
    ((fuzz_be *)self)->released++;
}
static json_t *fz_list(void *self)
{
    (void)self;
    return json_pack("{s:[{s:s,s:i}]}", "models", "name", "m", "active", 1);
}
static json_t *fz_describe(void *self, const char *name, sola_err *e)
{
    (void)self;
    if (strcmp(name, "m"))
        return sola_errf(e, SOLA_ENOTFOUND, "model %s not found", name), NULL;
    return json_pack("{s:s,s:i,s:[i]}", "name", "m", "active", 1, "versions", 1);
}
static int fz_download(void *self, const char *name, int version, void **buf, size_t *len,
                       sola_err *e)
{
    fuzz_be *f = self;
    if (strcmp(name, "m") || version != 1)
        return sola_errf(e, SOLA_ENOTFOUND, "model %s version %d not found", name, version);
    return sola_model_serialize(f->m, 0, buf, len, e);
}
static int fz_put(void *self, const char *name, int version, const char *tmp_path, int *conflict,
                  sola_err *e)
{
    (void)self;
    *conflict = 0;
    sola_model *m = sola_model_load(tmp_path, e); /* validates as the registry does */
    if (!m)
        return e->code ? e->code : SOLA_EFORMAT;
    sola_model_free(m);
    if (!strcmp(name, "m") && version == 1) {
        *conflict = 1;
        return sola_errf(e, SOLA_EINVAL, "model m version 1 exists");
    }
    return 0;
}
static int fz_activate(void *self, const char *name, int version, sola_err *e)
{
    (void)self;
    if (strcmp(name, "m") || version != 1)
        return sola_errf(e, SOLA_ENOTFOUND, "model %s version %d not found", name, version);
    return 0;
}
static int fz_ready(void *self, char *why, size_t n)
{
    (void)self;
    snprintf(why, n, "ready");
    return 1;
}
static json_t *fz_health(void *self)
{
    (void)self;
    return json_pack("{s:s}", "status", "ok");
}
static int fz_metrics(void *self, char **text, size_t *len)
{
    (void)self;
    *text = strdup("solad_up 1\n");
    *len = *text ? strlen(*text) : 0;
    return *text ? 0 : SOLA_ENOMEM;
}

/* Removes what fuzz_api_backend created (registered with atexit). */
static fuzz_be *fuzz_api_backend(api_ctx *ctx);
FUZZ_UNUSED static void fuzz_api_cleanup(void)
{
    api_ctx ctx;
    fuzz_be *f = fuzz_api_backend(&ctx);
    char p[512];
    snprintf(p, sizeof p, "%s/datasets/d/i.npy", f->dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/datasets/d", f->dir);
    rmdir(p);
    snprintf(p, sizeof p, "%s/datasets", f->dir);
    rmdir(p);
    snprintf(p, sizeof p, "%s/upload", f->dir);
    unlink(p);
    rmdir(f->dir);
}

/* Built once per process: the model, the backend table and a data directory. */
static fuzz_be *fuzz_api_backend(api_ctx *ctx)
{
    static fuzz_be F;
    static api_backend BE;
    static int ready;
    if (!ready) {
        sola_err e = {0};
        F.m = sola_model_new(4, 3, 3, 1, 0, &e);
        if (!F.m)
            abort();
        sola_model_init(F.m, 1);
        F.m->alpha[0] = 0.5f;
        if (sola_model_pack(F.m, &e))
            abort();
        BE = (api_backend){fz_acquire, fz_get,    fz_name,  fz_version,  fz_release,
                           fz_list,    fz_describe, fz_download, fz_put, fz_activate,
                           fz_ready,   fz_health, fz_metrics};
        const char *tmp = getenv("TMPDIR");
        snprintf(F.dir, sizeof F.dir, "%s/solafuzz.%ld", tmp && *tmp ? tmp : "/tmp",
                 (long)getpid());
        char p[512];
        snprintf(p, sizeof p, "%s/datasets/d", F.dir);
        if (sola_mkdirs(p, 0755, &e))
            abort();
        snprintf(p, sizeof p, "%s/datasets/d/i.npy", F.dir);
        float x[12];
        for (int i = 0; i < 12; i++)
            x[i] = (float)i / 7.0f - 0.5f;
        if (sola_npy_save(p, x, 2, (int64_t[]){3, 4}, &e))
            abort();
        ready = 1;
        atexit(fuzz_api_cleanup);
    }
    *ctx = (api_ctx){.be = &BE, .self = &F, .max_body = 1 << 16, .max_frames = 64,
                     .data_dir = F.dir, .token = "secret"};
    return &F;
}

#define FUZZ_MAX_KV 16

typedef struct fuzz_hdrs {
    int n;
    char *name[FUZZ_MAX_KV], *val[FUZZ_MAX_KV];
} fuzz_hdrs;

static const char *fuzz_hget(void *hctx, const char *name)
{
    fuzz_hdrs *h = hctx;
    for (int i = 0; i < h->n; i++)
        if (!strcasecmp(h->name[i], name))
            return h->val[i];
    return NULL;
}

/* Next line of [*p, end) as a NUL-terminated string (the '\n' is overwritten);
 * NULL at the end. */
static char *fuzz_line(char **p, char *end)
{
    if (*p >= end)
        return NULL;
    char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
    if (!nl)
        return NULL; /* an unterminated last line is left as the body */
    *nl = 0;
    *p = nl + 1;
    return s;
}

/* Known finding F2 (docs/reliability.md): encode_json in api/routes_infer.c writes
 * ",\"version\":N," after the model name and then ",\"tsm\":" again when there is no
 * "features" member, so every JSON reply of /tsm reads {"model":"m","version":1,,"tsm":
 * ...}: invalid JSON. Reported to the api owner with the fix; tolerated here (only
 * that exact shape) so the fuzzer can look past it. Remove when fixed. */
static int fuzz_known_f2(const api_response *rs)
{
    const char *b = rs->body, *end = b + rs->len;
    const char *v = rs->len > 12 ? memmem(b, rs->len, ",\"version\":", 11) : NULL;
    if (!v)
        return 0;
    v += 11;
    while (v < end && *v >= '0' && *v <= '9')
        v++;
    return end - v >= 2 && v[0] == ',' && (v[1] == ',' || v[1] == '}');
}

FUZZ_UNUSED static int fuzz_one_api_request(const uint8_t *data, size_t size)
{
    api_ctx ctx;
    fuzz_be *f = fuzz_api_backend(&ctx);
    /* The text is cut in place; +1 for a NUL after the body, as the server gives. */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char *p = text, *end = text + size;
    api_kv q[FUZZ_MAX_KV];
    fuzz_hdrs h = {0};
    int nq = 0;
    char *first = fuzz_line(&p, end);
    if (!first) {
        free(text);
        return 1;
    }
    char *sp = strchr(first, ' ');
    const char *method = first, *path = "/";
    if (sp) {
        *sp = 0;
        path = sp + 1;
    }
    char *l;
    while ((l = fuzz_line(&p, end)) && *l) {
        char *eq = strchr(l, '=');
        if (eq)
            *eq = 0;
        if (nq < FUZZ_MAX_KV)
            q[nq++] = (api_kv){l, eq ? eq + 1 : ""};
    }
    while (l && (l = fuzz_line(&p, end)) && *l) {
        char *c = strchr(l, ':');
        if (!c || h.n >= FUZZ_MAX_KV)
            continue;
        *c++ = 0;
        while (*c == ' ')
            c++;
        h.name[h.n] = l;
        h.val[h.n++] = c;
    }
    size_t blen = (size_t)(end - p);

    api_request rq = {0};
    rq.method = method;
    rq.path = path;
    rq.query = q;
    rq.nquery = nq;
    rq.header = fuzz_hget;
    rq.hctx = &h;
    if (blen) {
        rq.body = p;
        rq.body_len = blen;
    }
    /* Uploads arrive as a file: stage the body the way the server streams it. */
    char upath[300];
    snprintf(upath, sizeof upath, "%s/upload", f->dir);
    api_request probe = rq;
    const api_route *r = api_route_match(&probe, NULL, NULL, 0, NULL);
    if (r && (r->flags & API_BODY_FILE)) {
        FILE *fp = fopen(upath, "wb");
        if (!fp || fwrite(p, 1, blen, fp) != blen) {
            if (fp)
                fclose(fp);
            free(text);
            return 0;
        }
        fclose(fp);
        rq.body = NULL;
        rq.body_len = 0;
        rq.body_path = upath;
        if (blen == 0)
            rq.body_path = NULL; /* the server passes no file for an empty body */
    }

    long acq0 = f->acquired, rel0 = f->released;
    api_response rs;
    memset(&rs, 0, sizeof rs);
    api_work w;
    int res = 0;
    if (api_dispatch(&ctx, &rq, &rs, &w) == API_DEFER) {
        sola_ws *ws = sola_ws_new();
        if (ws)
            w.run(w.state, ws, &rs);
        w.done(w.state);
        sola_ws_free(ws);
    }
    if (rs.status < 100 || rs.status > 599) {
        res = fuzz_violation("%s %s: status %d", method, path, rs.status);
    } else if (rs.status == 500) {
        res = fuzz_violation("%s %s: a client input caused a 500: %.*s", method, path,
                             (int)(rs.len > 300 ? 300 : rs.len), (const char *)rs.body);
    } else if (f->acquired - acq0 != f->released - rel0) {
        res = fuzz_violation("%s %s: %ld model references taken, %ld released", method, path,
                             f->acquired - acq0, f->released - rel0);
    } else if (rs.len && !rs.body) {
        res = fuzz_violation("%s %s: len %zu without a body", method, path, rs.len);
    } else if (rs.status >= 400 || !strncmp(rs.ctype, "application/json", 16)) {
        json_error_t je;
        json_t *v = rs.len ? json_loadb(rs.body, rs.len, 0, &je) : NULL;
        if (!v && fuzz_known_f2(&rs))
            ; /* known finding F2, reported; see fuzz_known_f2 */
        else if (!v)
            res = fuzz_violation("%s %s: status %d reply (%s, %zu bytes) is not JSON: %s: "
                                 "%.200s", method, path, rs.status, rs.ctype, rs.len,
                                 rs.len ? je.text : "empty", rs.len ? (const char *)rs.body : "");
        else if (rs.status >= 400 &&
                 (!json_is_string(json_object_get(v, "error")) ||
                  !*json_string_value(json_object_get(v, "error"))))
            res = fuzz_violation("%s %s: status %d without an \"error\" message", method, path,
                                 rs.status);
        json_decref(v);
    } else if (!strcmp(rs.ctype, "application/x-npy")) {
        sola_array a;
        sola_err e = {0};
        if (sola_npy_parse(rs.body, rs.len, "reply", 0, &a, &e))
            res = fuzz_violation("%s %s: the .npy reply does not parse: %s", method, path, e.msg);
        sola_array_free(&a);
    }
    api_response_clear(&rs);
    free(text);
    return res;
}

FUZZ_UNUSED static const fuzz_target fuzz_api_targets[] = {
    {"api_features", fuzz_one_api_features},
    {"api_request", fuzz_one_api_request},
};
#define FUZZ_API_NTARGETS ((int)(sizeof fuzz_api_targets / sizeof fuzz_api_targets[0]))

#endif
