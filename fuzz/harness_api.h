/* harness_api.h -- fuzz harness bodies for solad's socket-free API (api/api.h), shared
 * like harness.h by fuzz/fuzz_api_*.c (libFuzzer) and tests/unit/test_fuzz_replay.c.
 *
 *   fuzz_one_api_features: api_parse_features_json, the JSON body scanner of /refine
 *     and /tsm. A refusal is SOLA_EFORMAT-style with a message naming "request body",
 *     out and rest left empty; an accepted body re-encoded with the API's own JSON
 *     float printer parses back to the same floats bit for bit.
 *   fuzz_one_api_number: one JSON number's text; the fast float parser
 *     (api_parse_float_fast) and the scanner must give strtof's float bit for bit.
 *   fuzz_one_api_train: api_train_spec_parse, the body of POST /train. A refusal is
 *     SOLA_EINVAL or SOLA_ESHAPE with a message; an accepted spec written as JSON text
 *     (as the job record stores it) and parsed again gives the same spec: what was
 *     accepted is exactly what the training process runs.
 *   fuzz_one_api_request: a whole request through api_dispatch against a fake backend
 *     holding one small model and one job, a data directory holding dataset "d" with
 *     item "i" (restored after any request that changed datasets), deferred work run
 *     inline as the server would and event streams drained. The
 *     input is text: "METHOD PATH\n", query lines "k=v" up to an empty line, header
 *     lines "Name: value" up to an empty line, then the body. Checked: every reply
 *     has a status; no input yields a 500 (a client cannot cause a server error); an
 *     error reply is a JSON object {"error": "non-empty"}; a 2xx JSON or .npy reply
 *     parses; a stream ends; every model reference taken is released.
 *
 * The URL itself (percent-decoding, splitting the query) is done by libmicrohttpd
 * before api/ sees the request; api/ receives a decoded path and key/value pairs, so
 * the path and the pairs are what is fuzzed here. */
#ifndef SOLA_FUZZ_HARNESS_API_H
#define SOLA_FUZZ_HARNESS_API_H

#include <ftw.h>
#include <stdio.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "api_helpers.h"
#include "fsutil.h"
#include "harness.h"
#include "train.h"

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

/* ---- JSON numbers: the fast float parser against strtof ------------------------- */

/* 1 if s[0..n) is a JSON number (RFC 8259): -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int fuzz_is_json_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return 0;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    return i == n;
}

/* The input is one number's text. api_parse_float_fast (Clinger's path) must either
 * decline or give strtof's correctly rounded float bit for bit; and the whole scanner
 * given {"features": [[TEXT]]} must agree with strtof whenever it accepts. */
FUZZ_UNUSED static int fuzz_one_api_number(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 400 || !fuzz_is_json_number((const char *)data, size))
        return 1;
    char text[401];
    memcpy(text, data, size);
    text[size] = 0;
    float ref = strtof(text, NULL), fast;
    uint32_t rb, fb;
    memcpy(&rb, &ref, 4);
    if (api_parse_float_fast(text, size, &fast)) {
        memcpy(&fb, &fast, 4);
        if (fb != rb)
            return fuzz_violation("api_parse_float_fast(\"%s\") = %.9g (0x%08x), strtof gives "
                                  "%.9g (0x%08x)", text, (double)fast, fb, (double)ref, rb);
    }
    char body[480];
    int n = snprintf(body, sizeof body, "{\"features\": [[%s]]}", text);
    sola_array a;
    json_t *rest = NULL;
    sola_err e = {0};
    if (api_parse_features_json(body, (size_t)n, &a, &rest, &e) == 0) {
        memcpy(&fb, a.data, 4);
        int bad = fb != rb;
        float got = a.data[0];
        sola_array_free(&a);
        json_decref(rest);
        if (bad)
            return fuzz_violation("features [[%s]] read as %.9g (0x%08x), strtof gives %.9g "
                                  "(0x%08x)", text, (double)got, fb, (double)ref, rb);
        return 0;
    }
    return 1;
}

/* ---- api_train_spec_parse (POST /train) ----------------------------------------- */

FUZZ_UNUSED static int fuzz_one_api_train(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *o = json_loadb((const char *)data, size, 0, &je); /* new reference */
    if (!o)
        return 1; /* jansson's own refusal: not ours to judge */
    api_train_spec s;
    sola_err e = {0};
    int rc = api_train_spec_parse(o, &s, &e);
    json_decref(o);
    if (rc) {
        if (rc != SOLA_EINVAL && rc != SOLA_ESHAPE)
            return fuzz_violation("api_train_spec_parse returned %d (%s); train.h promises "
                                  "EINVAL or ESHAPE", rc, e.msg);
        return fuzz_api_refused("api_train_spec_parse", rc, &e, NULL);
    }
    if (!s.dataset[0] || !s.output_model[0] || !memchr(s.dataset, 0, sizeof s.dataset) ||
        !memchr(s.objective, 0, sizeof s.objective) ||
        !memchr(s.base_model, 0, sizeof s.base_model) ||
        !memchr(s.output_model, 0, sizeof s.output_model) || !(s.kernel & 1) ||
        !(s.kernel2 & 1) || !(s.lr > 0) || s.epochs < 1 || s.batch < 1)
        return fuzz_violation("api_train_spec_parse accepted an incomplete spec");
    /* The job record stores the spec as JSON text; the training process parses it. */
    json_t *j = api_train_spec_json(&s);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    int res = 0;
    json_t *o2 = text ? json_loads(text, 0, &je) : NULL;
    if (!o2) {
        res = j ? fuzz_violation("the stored spec does not read back: %s", je.text) : 0;
    } else {
        api_train_spec s2;
        sola_err e2 = {0};
        if ((rc = api_train_spec_parse(o2, &s2, &e2)) != 0) {
            res = fuzz_violation("the stored spec %s is refused: %s", text, e2.msg);
        } else {
            json_t *j2 = api_train_spec_json(&s2);
            if (j2 && !json_equal(j, j2)) {
                char *t2 = json_dumps(j2, JSON_COMPACT);
                res = fuzz_violation("spec changed when stored and read back: %s -> %s", text,
                                     t2 ? t2 : "?");
                free(t2);
            }
            json_decref(j2);
        }
    }
    json_decref(o2);
    free(text);
    json_decref(j);
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


/* Jobs: one job, id 1, queued; a submit naming dataset "busy" finds the queue full. */
static int fz_submit(void *self, const api_train_spec *spec, json_t **job, sola_err *e)
{
    (void)self;
    if (!strcmp(spec->dataset, "busy"))
        return sola_errf(e, SOLA_EINVAL, "queue full"), API_JOB_BUSY;
    if (strcmp(spec->dataset, "d"))
        return sola_errf(e, SOLA_ENOTFOUND, "dataset %s not found", spec->dataset);
    *job = json_pack("{s:i,s:s,s:o}", "id", 1, "state", "queued", "spec",
                     api_train_spec_json(spec));
    return *job ? 0 : SOLA_ENOMEM;
}
static json_t *fz_jobs_list(void *self)
{
    (void)self;
    return json_pack("{s:[{s:i,s:s}]}", "jobs", "id", 1, "state", "queued");
}
static json_t *fz_job_get(void *self, int id, sola_err *e)
{
    (void)self;
    if (id != 1)
        return sola_errf(e, SOLA_ENOTFOUND, "no job %d", id), NULL;
    return json_pack("{s:i,s:s}", "id", 1, "state", "queued");
}
static int fz_cancel(void *self, int id, json_t **job, sola_err *e)
{
    if (!(*job = fz_job_get(self, id, e)))
        return SOLA_ENOTFOUND;
    return API_JOB_PENDING;
}
static int fz_resume(void *self, int id, json_t **job, sola_err *e)
{
    if (!(*job = fz_job_get(self, id, e)))
        return SOLA_ENOTFOUND;
    sola_errf(e, SOLA_EINVAL, "job %d is not interrupted", id);
    return API_JOB_CONFLICT;
}
typedef struct fz_stream {
    api_stream s;
    int sent;
} fz_stream;
static long fz_stream_read(api_stream *st, char *buf, size_t max)
{
    fz_stream *f = (fz_stream *)st;
    static const char ev[] = "event: progress\ndata: {\"epoch\": 1}\n\n";
    if (f->sent)
        return -1;
    size_t n = sizeof ev - 1 < max ? sizeof ev - 1 : max;
    memcpy(buf, ev, n);
    f->sent = 1;
    return (long)n;
}
static void fz_stream_close(api_stream *st)
{
    free(st);
}
static int fz_events(void *self, int id, api_stream **out, sola_err *e)
{
    (void)self;
    if (id != 1)
        return sola_errf(e, SOLA_ENOTFOUND, "no job %d", id);
    fz_stream *f = calloc(1, sizeof *f);
    if (!f)
        return sola_errf(e, SOLA_ENOMEM, "out of memory");
    f->s.read = fz_stream_read;
    f->s.close = fz_stream_close;
    *out = &f->s;
    return 0;
}

/* The data directory's fixture: datasets/d/i.npy, [3, 4]. */
static int fz_fixture(const char *dir, sola_err *e)
{
    char p[512];
    snprintf(p, sizeof p, "%s/datasets/d", dir);
    if (sola_mkdirs(p, 0755, e))
        return -1;
    snprintf(p, sizeof p, "%s/datasets/d/i.npy", dir);
    float x[12];
    for (int i = 0; i < 12; i++)
        x[i] = (float)i / 7.0f - 0.5f;
    return sola_npy_save(p, x, 2, (int64_t[]){3, 4}, e);
}

static int fz_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Removes what fuzz_api_backend created (registered with atexit). */
static fuzz_be *fuzz_api_backend(api_ctx *ctx);
FUZZ_UNUSED static void fuzz_api_cleanup(void)
{
    api_ctx ctx;
    fuzz_be *f = fuzz_api_backend(&ctx);
    nftw(f->dir, fz_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* Built once per process: the model, the backend table and a data directory. */
static fuzz_be *fuzz_api_backend(api_ctx *ctx)
{
    static fuzz_be F;
    static api_backend BE;
    static api_jobs_backend JOBS;
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
                           fz_ready,   fz_health, fz_metrics, NULL, NULL, NULL, NULL, NULL,
                           NULL,       NULL};
        JOBS = (api_jobs_backend){fz_submit, fz_jobs_list, fz_job_get, fz_cancel, fz_resume,
                                  fz_events};
        const char *tmp = getenv("TMPDIR");
        snprintf(F.dir, sizeof F.dir, "%s/solafuzz.%ld", tmp && *tmp ? tmp : "/tmp",
                 (long)getpid());
        if (fz_fixture(F.dir, &e))
            abort();
        ready = 1;
        atexit(fuzz_api_cleanup);
    }
    *ctx = (api_ctx){.be = &BE, .self = &F, .max_body = 1 << 16, .max_frames = 64,
                     .data_dir = F.dir, .token = "secret", .jobs = &JOBS};
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
    /* One workspace for the process, as each of solad's workers keeps its own. */
    static sola_ws *ws;
    if (!ws && !(ws = sola_ws_new()))
        abort();
    if (api_dispatch(&ctx, &rq, &rs, &w) == API_DEFER) {
        w.run(w.state, ws, &rs);
        w.done(w.state);
    }
    /* An event stream is pulled to its end, as the server would. */
    int stream_bad = 0;
    if (rs.stream) {
        char chunk[256];
        long k = 0;
        for (int i = 0; i < 1000 && (k = rs.stream->read(rs.stream, chunk, sizeof chunk)) >= 0;
             i++)
            if (k > (long)sizeof chunk)
                stream_bad = 1;
        stream_bad |= k != -1;
    }
    if (stream_bad) {
        res = fuzz_violation("%s %s: the event stream misbehaved", method, path);
    } else if (rs.status < 100 || rs.status > 599) {
        res = fuzz_violation("%s %s: status %d", method, path, rs.status);
    } else if (rs.status == 500) {
        res = fuzz_violation("%s %s: a client input caused a 500: %.*s", method, path,
                             (int)(rs.len > 300 ? 300 : rs.len), (const char *)rs.body);
    } else if (f->acquired - acq0 != f->released - rel0) {
        res = fuzz_violation("%s %s: %ld model references taken, %ld released", method, path,
                             f->acquired - acq0, f->released - rel0);
    } else if (rs.len && !rs.body) {
        res = fuzz_violation("%s %s: len %zu without a body", method, path, rs.len);
    } else if (rs.stream) {
        /* drained above */
    } else if (rs.status >= 400 || !strncmp(rs.ctype, "application/json", 16)) {
        json_error_t je;
        json_t *v = rs.len ? json_loadb(rs.body, rs.len, 0, &je) : NULL;
        if (!v)
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
    /* Uploads and deletions change the data directory: put it back for the next input. */
    if (!strncmp(path, "/datasets", 9) && strcmp(method, "GET") && strcmp(method, "HEAD")) {
        char p2[300];
        snprintf(p2, sizeof p2, "%s/datasets", f->dir);
        nftw(p2, fz_rm, 16, FTW_DEPTH | FTW_PHYS);
        sola_err e = {0};
        if (fz_fixture(f->dir, &e))
            abort();
    }
    free(text);
    return res;
}

FUZZ_UNUSED static const fuzz_target fuzz_api_targets[] = {
    {"api_features", fuzz_one_api_features},
    {"api_number", fuzz_one_api_number},
    {"api_train", fuzz_one_api_train},
    {"api_request", fuzz_one_api_request},
};
#define FUZZ_API_NTARGETS ((int)(sizeof fuzz_api_targets / sizeof fuzz_api_targets[0]))

#endif
