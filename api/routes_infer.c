/* routes_infer.c -- POST /refine, POST /tsm, GET /tsm.
 *
 * The loop thread only checks what the headers and query say (media types, option
 * spelling, names) and picks the reply format. The worker parses the body (JSON or
 * .npy), resolves the model, checks shapes, computes and encodes the reply: every step
 * that grows with T*C happens off the loop. The model reference is taken and dropped
 * on the worker, around the compute and the encoding, so an activation in between
 * never changes the model under a request. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "heatmap.h"
#include "npy.h"
#include "npz.h"
#include "refine.h"
#include "routes.h"

/* T*T floats per TSM: 4096^2 * 4 B = 64 MB is the most one reply may hold. */
#define API_TSM_MAX_T 4096

enum { K_REFINE, K_TSM };
enum { TSM_REFINED = 1, TSM_RAW = 2 };

typedef struct infer {
    const api_ctx *ctx;
    int kind;
    int in_mt;       /* API_MT_JSON / API_MT_NPY, or NONE for a stored dataset item */
    int out_mt;      /* reply format, fixed on the loop thread */
    int out_forced;  /* chosen explicitly (Accept or ?format=), not by default */
    int tsm;         /* TSM_* bits, -1 = not given in the query */
    char model[72];  /* from the query; "" = not given */
    int version;     /* from the query; 0 = active */
    const char *body; /* borrowed: the server keeps the body until done() */
    size_t len;
    char *item_path; /* GET /tsm: data/datasets/D/I.npy (owned) */
} infer;

static void infer_done(void *state)
{
    infer *st = state;
    free(st->item_path);
    free(st);
}

static int parse_tsm(const char *s, int *out)
{
    if (!strcmp(s, "refined"))
        *out = TSM_REFINED;
    else if (!strcmp(s, "raw"))
        *out = TSM_RAW;
    else if (!strcmp(s, "both"))
        *out = TSM_REFINED | TSM_RAW;
    else if (!strcmp(s, "none") || !*s)
        *out = 0;
    else
        return -1;
    return 0;
}

static int parse_format(const char *s)
{
    if (!strcmp(s, "json"))
        return API_MT_JSON;
    if (!strcmp(s, "npy"))
        return API_MT_NPY;
    if (!strcmp(s, "npz"))
        return API_MT_NPZ;
    if (!strcmp(s, "png"))
        return API_MT_PNG;
    return API_MT_NONE;
}

/* ---- loop thread: the cheap checks ------------------------------------------- */

static int prepare(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w,
                   int kind, int from_dataset)
{
    sola_err e = {0};
    infer *st = calloc(1, sizeof *st);
    if (!st) {
        api_error(rs, 503, "out of memory");
        return API_REPLY;
    }
    st->ctx = ctx;
    st->kind = kind;
    st->tsm = -1;
    const char *v;
    if ((v = api_query(rq, "model")) && *v) {
        if (api_check_name("query parameter model", v, &e))
            goto bad;
        snprintf(st->model, sizeof st->model, "%s", v);
    }
    if ((v = api_query(rq, "version")) && *v &&
        api_parse_version("query parameter version", v, &st->version, &e))
        goto bad;
    if ((v = api_query(rq, "tsm")) && parse_tsm(v, &st->tsm)) {
        api_error(rs, 400, "query parameter tsm=\"%.40s\": use raw, refined or both", v);
        goto fail;
    }

    if (from_dataset) {
        const char *d = api_query(rq, "dataset"), *it = api_query(rq, "item");
        if (!d || !it) {
            api_error(rs, 400, "GET /tsm needs ?dataset=NAME&item=NAME (a stored sequence)");
            goto fail;
        }
        if (api_check_name("dataset", d, &e) || api_check_name("item", it, &e))
            goto bad;
        if (!ctx->data_dir) {
            api_error(rs, 404, "dataset \"%s\": solad runs without --data, so it has no "
                               "datasets", d);
            goto fail;
        }
        size_t n = strlen(ctx->data_dir) + strlen(d) + strlen(it) + 32;
        if (!(st->item_path = malloc(n))) {
            api_error(rs, 503, "out of memory");
            goto fail;
        }
        snprintf(st->item_path, n, "%s/datasets/%s/%s.npy", ctx->data_dir, d, it);
        st->in_mt = API_MT_NONE;
    } else {
        const char *ct = api_header(rq, "Content-Type");
        int mt = api_mt_parse(ct);
        if (rq->body_len == 0) {
            api_error(rs, 400, "empty body: send a [T, C] sequence as application/json "
                               "{\"features\": [[...], ...]} or application/x-npy");
            goto fail;
        }
        if ((mt == API_MT_OCTET || mt == API_MT_NONE) && rq->body_len >= 6 &&
            memcmp(rq->body, "\x93NUMPY", 6) == 0)
            mt = API_MT_NPY; /* an .npy sent as octet-stream: its magic says what it is */
        if (mt != API_MT_JSON && mt != API_MT_NPY) {
            api_error(rs, 415, "Content-Type %.80s is not supported here: send "
                               "application/json or application/x-npy",
                      ct ? ct : "(none)");
            goto fail;
        }
        st->in_mt = mt;
        st->body = rq->body;
        st->len = rq->body_len;
    }

    /* Reply format: ?format= beats Accept; the request's own format comes first. */
    int cands[5], nc = 0;
    if (st->in_mt != API_MT_NONE)
        cands[nc++] = st->in_mt;
    const int all[] = {API_MT_JSON, API_MT_NPY, API_MT_NPZ, API_MT_PNG};
    int nall = kind == K_TSM ? 4 : 3;
    for (int i = 0; i < nall; i++)
        if (all[i] != st->in_mt)
            cands[nc++] = all[i];
    const char *fmt = api_query(rq, "format");
    const char *accept = api_header(rq, "Accept");
    if (fmt && *fmt) {
        int f = parse_format(fmt);
        int ok = 0;
        for (int i = 0; i < nc; i++)
            ok |= cands[i] == f;
        if (!ok) {
            api_error(rs, 400, "format=\"%.20s\" is not offered here (use %s)", fmt,
                      kind == K_TSM ? "json, npy, npz or png" : "json, npy or npz");
            goto fail;
        }
        st->out_mt = f;
        st->out_forced = 1;
    } else {
        st->out_mt = api_negotiate(accept, cands, nc);
        st->out_forced = accept && *accept && !strstr(accept, "*/*");
        if (st->out_mt == API_MT_NONE) {
            api_error(rs, 406, "no acceptable reply format in Accept: %.100s (offered: "
                               "application/json, application/x-npy, application/x-npz%s)",
                      accept, kind == K_TSM ? ", image/png" : "");
            goto fail;
        }
    }
    w->state = st;
    return API_DEFER;
bad:
    api_error_from(rs, &e);
fail:
    infer_done(st);
    return API_REPLY;
}

static int h_refine(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w);
static int h_tsm(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w);
static int h_tsm_get(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w);

/* ---- worker: parse, compute, encode ------------------------------------------ */

/* If the body is an .npy of little-endian float32 in C order, with the data aligned
 * where it lies, x views it in place (x->data borrowed) and 1 is returned. Anything
 * else -- other dtypes, Fortran order, a malformed header -- returns 0 and goes
 * through sola_npy_parse, which converts or explains. */
static int npy_view(const char *body, size_t len, sola_array *x)
{
    sola_npy_info in;
    if (sola_npy_inspect(body, len, "request body", 0, &in, NULL))
        return 0;
    int le = !strcmp(in.descr, "<f4") || (!strcmp(in.descr, "=f4") && __BYTE_ORDER__ ==
                                                                         __ORDER_LITTLE_ENDIAN__);
    size_t n = 1;
    for (int d = 0; d < in.ndim; d++)
        if (sola_mul_size(n, (size_t)in.shape[d], &n))
            return 0;
    if (!le || in.fortran || in.itemsize != 4 || sola_mul_size(n, 4, &n) ||
        n != in.data_len || in.data_off + in.data_len != len ||
        ((uintptr_t)(body + in.data_off) % sizeof(float)) != 0)
        return 0;
    x->data = (float *)(void *)(body + in.data_off); /* const in spirit: only read */
    x->ndim = in.ndim;
    memcpy(x->shape, in.shape, sizeof in.shape);
    return 1;
}

/* Applies the JSON body's own options ("model", "version", "tsm"); 0 or EINVAL. */
static int json_options(infer *st, json_t *rest, sola_err *e)
{
    const char *key;
    json_t *v; /* borrowed */
    json_object_foreach(rest, key, v) {
        if (!strcmp(key, "model")) {
            if (json_is_null(v))
                continue;
            if (!json_is_string(v))
                return sola_errf(e, SOLA_EINVAL, "request body: \"model\" must be a string");
            if (api_check_name("\"model\"", json_string_value(v), e))
                return e->code;
            snprintf(st->model, sizeof st->model, "%s", json_string_value(v));
        } else if (!strcmp(key, "version")) {
            if (json_is_null(v))
                continue;
            if (json_is_integer(v) && json_integer_value(v) > 0 &&
                json_integer_value(v) <= INT32_MAX)
                st->version = (int)json_integer_value(v);
            else if (!json_is_string(v) ||
                     api_parse_version("\"version\"", json_string_value(v), &st->version, e))
                return sola_errf(e, SOLA_EINVAL,
                                 "request body: \"version\" must be a positive integer");
        } else if (!strcmp(key, "tsm")) {
            if (json_is_null(v))
                continue;
            if (!json_is_string(v) || parse_tsm(json_string_value(v), &st->tsm))
                return sola_errf(e, SOLA_EINVAL,
                                 "request body: \"tsm\" must be \"raw\", \"refined\" or "
                                 "\"both\"");
        } else {
            return sola_errf(e, SOLA_EINVAL,
                             "request body: unknown member \"%.60s\" (known: features, "
                             "model, version, tsm)",
                             key);
        }
    }
    return 0;
}

/* Views of sequence b of x ([T,C] or [B,T,C]). */
static void dims(const sola_array *x, int64_t *B, int64_t *T, int64_t *C)
{
    *B = x->ndim == 3 ? x->shape[0] : 1;
    *T = x->shape[x->ndim - 2];
    *C = x->shape[x->ndim - 1];
}

static int alloc_like(sola_array *a, int ndim, const int64_t *shape, sola_err *e)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        if (sola_mul_size(n, (size_t)shape[d], &n))
            return sola_errf(e, SOLA_ETOOBIG, "result too large");
    if (sola_mul_size(n, sizeof(float), &n) || !(a->data = malloc(n ? n : 1)))
        return sola_errf(e, SOLA_ENOMEM, "out of memory for a %zu-byte result", n);
    a->ndim = ndim;
    memcpy(a->shape, shape, sizeof(int64_t) * (size_t)ndim);
    return 0;
}

/* TSMs of every sequence of y into S ([T,T] or [B,T,T], shaped like y). */
static int tsm_all(const sola_array *y, sola_array *S, sola_err *e)
{
    int64_t B, T, C;
    dims(y, &B, &T, &C);
    int64_t sh[3] = {B, T, T};
    int rc = y->ndim == 3 ? alloc_like(S, 3, sh, e) : alloc_like(S, 2, sh + 1, e);
    for (int64_t b = 0; !rc && b < B; b++)
        rc = sola_tsm(y->data + b * T * C, (int)T, (int)C, S->data + b * T * T, e);
    return rc;
}

static void encode_json(api_response *rs, const char *mname, int mver, const sola_array *y,
                        const sola_array *S, const sola_array *Sraw)
{
    api_buf b = {0};
    const char *sep = "{";
    if (mname) {
        api_buf_puts(&b, "{\"model\":");
        api_buf_json_str(&b, mname);
        api_buf_printf(&b, ",\"version\":%d", mver);
        sep = ",";
    }
    const struct {
        const char *key;
        const sola_array *a;
    } members[3] = {{"features", y}, {"tsm", S}, {"tsm_raw", Sraw}};
    for (int i = 0; i < 3; i++) {
        if (!members[i].a)
            continue;
        api_buf_printf(&b, "%s\"%s\":", sep, members[i].key);
        api_buf_json_floats(&b, members[i].a->data, members[i].a->ndim, members[i].a->shape);
        sep = ",";
    }
    api_buf_puts(&b, "}\n");
    if (b.failed) {
        api_buf_free(&b);
        api_error(rs, 503, "out of memory while encoding the reply");
        return;
    }
    api_take_body(rs, 200, "application/json", b.p, b.len);
}

static void infer_run(void *state, sola_ws *ws, api_response *rs)
{
    infer *st = state;
    const api_ctx *ctx = st->ctx;
    sola_err e = {0};
    sola_array x = {0}, y = {0}, S = {0}, Sraw = {0};
    json_t *rest = NULL; /* new reference from the JSON parser */
    int x_borrowed = 0;  /* x.data points into the request body */
    char *reply = NULL;  /* .npy reply that y is computed into (owned until handed over) */
    size_t reply_len = 0;
    api_model *ref = NULL;
    const sola_model *m = NULL;
    int rc = 0;

    if (st->item_path)
        rc = sola_npy_load(st->item_path, 0, &x, &e);
    else if (st->in_mt == API_MT_JSON)
        rc = api_parse_features_json(st->body, st->len, &x, &rest, &e);
    else if (npy_view(st->body, st->len, &x))
        x_borrowed = 1; /* already float32 in place: no copy of a body of megabytes */
    else
        rc = sola_npy_parse(st->body, st->len, "request body", 0, &x, &e);
    if (rc) {
        /* 415 is about the Content-Type; an .npy whose contents we cannot use (dtype,
         * version) is a bad body */
        if (rc == SOLA_EUNSUP)
            e.code = SOLA_EFORMAT;
        if (st->item_path && rc == SOLA_ENOTFOUND)
            sola_errf(&e, SOLA_ENOTFOUND, "no such dataset item (%s)",
                      strstr(st->item_path, "/datasets/") + 1);
        goto fail;
    }
    if (rest && (rc = json_options(st, rest, &e)))
        goto fail;
    if (st->tsm < 0)
        st->tsm = st->kind == K_TSM ? TSM_REFINED : 0;
    if (st->kind == K_TSM && st->tsm == 0) {
        rc = sola_errf(&e, SOLA_EINVAL, "tsm=none leaves /tsm nothing to return");
        goto fail;
    }

    /* shapes and limits */
    if (x.ndim != 2 && x.ndim != 3) {
        rc = sola_errf(&e, SOLA_ESHAPE,
                       "features have %d dimension%s: expected [T, C] or [B, T, C]", x.ndim,
                       x.ndim == 1 ? "" : "s");
        goto fail;
    }
    int64_t B, T, C;
    dims(&x, &B, &T, &C);
    if (B < 1 || T < 1 || C < 1) {
        rc = sola_errf(&e, SOLA_ESHAPE, "features are empty (shape has a zero)");
        goto fail;
    }
    if (T > ctx->max_frames) {
        rc = sola_errf(&e, SOLA_ETOOBIG,
                       "sequence of T=%lld snippets exceeds this server's limit of %d "
                       "(--max-frames)",
                       (long long)T, ctx->max_frames);
        goto fail;
    }
    if (st->tsm && T > API_TSM_MAX_T) {
        rc = sola_errf(&e, SOLA_ETOOBIG,
                       "a TSM of T=%lld is %lld x %lld floats; the limit is T=%d", (long long)T,
                       (long long)T, (long long)T, API_TSM_MAX_T);
        goto fail;
    }

    /* does the reply format carry what was asked for? */
    int nout = (st->kind == K_REFINE) + !!(st->tsm & TSM_REFINED) + !!(st->tsm & TSM_RAW);
    if (st->out_mt == API_MT_NPY && nout > 1) {
        api_error(rs, 406,
                  "a .npy reply holds one array but %s asked for %d (features/tsm/tsm_raw): "
                  "send Accept: application/x-npz or application/json",
                  st->kind == K_REFINE ? "this /refine" : "tsm=both", nout);
        goto out;
    }
    if (st->out_mt == API_MT_PNG && B != 1) {
        rc = sola_errf(&e, SOLA_ESHAPE, "a PNG heatmap shows one sequence; got a batch of %lld",
                       (long long)B);
        goto fail;
    }

    int need_model = st->kind == K_REFINE || (st->tsm & TSM_REFINED);
    if (need_model) {
        if ((rc = ctx->be->model_acquire(ctx->self, st->model[0] ? st->model : NULL,
                                         st->version, &ref, &e)))
            goto fail;
        if (!(m = ctx->be->model_get(ctx->self, ref, &e))) {
            rc = e.code ? e.code : SOLA_EIO;
            goto fail;
        }
        if (C != m->C) {
            rc = sola_errf(&e, SOLA_ESHAPE,
                           "features have C=%lld channels but model %s version %d expects "
                           "C=%d",
                           (long long)C, ctx->be->model_name(ref), ctx->be->model_version(ref),
                           m->C);
            goto fail;
        }
        if (st->kind == K_REFINE && st->out_mt == API_MT_NPY) {
            /* compute straight into the reply: header, then the floats */
            char hdr[192];
            size_t hl = api_npy_header(x.ndim, x.shape, hdr), nb;
            if (sola_mul_size(sola_array_numel(&x), sizeof(float), &nb) ||
                sola_add_size(nb, hl, &reply_len) || !(reply = malloc(reply_len))) {
                rc = sola_errf(&e, SOLA_ENOMEM, "out of memory for the reply");
                goto fail;
            }
            memcpy(reply, hdr, hl);
            y.data = (float *)(void *)(reply + hl);
            y.ndim = x.ndim;
            memcpy(y.shape, x.shape, sizeof x.shape);
        } else if ((rc = alloc_like(&y, x.ndim, x.shape, &e))) {
            goto fail;
        }
        /* a batch goes through as one pass (bigger GEMMs), with each sequence zero-padded
         * on its own: the same result as B separate refines */
        int *lens = malloc(sizeof(int) * (size_t)B);
        if (!lens) {
            rc = sola_errf(&e, SOLA_ENOMEM, "out of memory");
            goto fail;
        }
        for (int64_t b = 0; b < B; b++)
            lens[b] = (int)T;
        rc = api_refine(ctx, m, x.data, lens, (int)B, y.data, ws, &e);
        free(lens);
        if (rc)
            goto fail;
        rs->frames = (long)(B * T);
    }
    if ((st->tsm & TSM_REFINED) && (rc = tsm_all(&y, &S, &e)))
        goto fail;
    if ((st->tsm & TSM_RAW) && (rc = tsm_all(&x, &Sraw, &e)))
        goto fail;

    const char *mname = ref ? ctx->be->model_name(ref) : NULL;
    int mver = ref ? ctx->be->model_version(ref) : 0;
    const sola_array *yo = st->kind == K_REFINE ? &y : NULL;
    const sola_array *so = (st->tsm & TSM_REFINED) ? &S : NULL;
    const sola_array *ro = (st->tsm & TSM_RAW) ? &Sraw : NULL;
    void *buf = NULL;
    size_t len = 0;
    switch (st->out_mt) {
    case API_MT_JSON:
        encode_json(rs, mname, mver, yo, so, ro);
        break;
    case API_MT_NPY: {
        if (reply) {
            api_take_body(rs, 200, "application/x-npy", reply, reply_len);
            reply = NULL;
            y.data = NULL; /* lived inside the reply */
            break;
        }
        const sola_array *one = yo ? yo : so ? so : ro;
        if ((rc = sola_npy_encode(one->data, one->ndim, one->shape, &buf, &len, &e)))
            goto fail;
        api_take_body(rs, 200, "application/x-npy", buf, len);
        break;
    }
    case API_MT_NPZ: {
        const char *names[3];
        sola_array arr[3];
        int n = 0;
        if (yo) {
            names[n] = "features";
            arr[n++] = *yo;
        }
        if (so) {
            names[n] = "tsm";
            arr[n++] = *so;
        }
        if (ro) {
            names[n] = "tsm_raw";
            arr[n++] = *ro;
        }
        if ((rc = sola_npz_encode(names, arr, n, 0, &buf, &len, &e)))
            goto fail;
        api_take_body(rs, 200, "application/x-npz", buf, len);
        break;
    }
    case API_MT_PNG: {
        const float *maps[2];
        int n = 0;
        if (ro)
            maps[n++] = ro->data; /* before (raw) on the left, after (refined) right */
        if (so)
            maps[n++] = so->data;
        if ((rc = sola_heatmap_png(maps, n, (int)T, &buf, &len, &e)))
            goto fail;
        api_take_body(rs, 200, "image/png", buf, len);
        break;
    }
    default:
        api_error(rs, 500, "internal error: no reply format");
        goto out;
    }
    if (ref) {
        api_set_header(rs, "X-Model", "%s", mname);
        api_set_header(rs, "X-Model-Version", "%d", mver);
    }
    goto out;
fail:
    api_error_from(rs, &e);
    (void)rc;
out:
    if (ref)
        ctx->be->model_release(ctx->self, ref);
    json_decref(rest);
    if (x_borrowed)
        x.data = NULL;
    sola_array_free(&x);
    if (reply) {
        free(reply);
        y.data = NULL;
    }
    sola_array_free(&y);
    sola_array_free(&S);
    sola_array_free(&Sraw);
}

static int defer(int rc, api_work *w)
{
    if (rc == API_DEFER) {
        w->run = infer_run;
        w->done = infer_done;
    }
    return rc;
}

static int h_refine(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    return defer(prepare(ctx, rq, rs, w, K_REFINE, 0), w);
}

static int h_tsm(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    return defer(prepare(ctx, rq, rs, w, K_TSM, 0), w);
}

static int h_tsm_get(const api_ctx *ctx, api_request *rq, api_response *rs, api_work *w)
{
    return defer(prepare(ctx, rq, rs, w, K_TSM, 1), w);
}

const api_route api_routes_infer[] = {
    {"POST", "/refine", h_refine, 0},
    {"POST", "/tsm", h_tsm, 0},
    {"GET", "/tsm", h_tsm_get, 0},
    {NULL, NULL, NULL, 0},
};
