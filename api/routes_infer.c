/* routes_infer.c -- POST /refine, POST /tsm, GET /tsm.
 *
 * The loop thread only checks what the headers and query say (media types, option
 * spelling, names) and picks the reply format. The worker parses the body (JSON or
 * .npy), resolves the model, checks shapes, computes and encodes the reply: every step
 * that grows with T*C happens off the loop. The model reference is taken and dropped
 * on the worker, around the compute and the encoding, so an activation in between
 * never changes the model under a request.
 *
 * Memory: every array and reply a request builds is reserved from the process's
 * budget (api_mem_reserve) before it is allocated, sized from the .npy header or the
 * parsed shape; a reply larger than ctx->max_reply, or a TSM longer than
 * ctx->max_tsm_frames, is refused (413) before anything is computed. TSMs and their
 * encoding run on the compute threads (be->compute), so only --workers of them are
 * built at once however many requests wait. A client that goes away stops the work
 * at the next check (api_cancelled). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_helpers.h"
#include "heatmap.h"
#include "npy.h"
#include "npz.h"
#include "refine.h"
#include "routes.h"
#include "seq.h"

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
    size_t f32_off, f32_words, f32_bad; /* the body's check on arrival (api_request) */
    char *item_path; /* GET /tsm: data/datasets/D/I.npy (owned) */
    api_seq_args seq; /* online refine: sequence_id & co (api/seq.h) */
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
    if (api_seq_from_query(rq, &st->seq, &e) || api_seq_check(&st->seq, &e))
        goto bad;
    if (st->seq.has_id && kind != K_REFINE) {
        api_error(rs, 400, "sequence_id: streams are refined with POST /refine (or "
                           "/v2/models/M/infer); a stream's TSM needs its whole sequence");
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
        if (rq->body_len == 0 && st->seq.has_id) /* an empty chunk: a flush, a keep-alive */
            mt = mt == API_MT_NPY ? API_MT_NPY : API_MT_JSON;
        if (rq->body_len == 0 && !st->seq.has_id) {
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
        st->f32_off = rq->body_f32_off;
        st->f32_words = rq->body_f32_words;
        st->f32_bad = rq->body_f32_bad;
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
    /* an .npy body is viewed in place (npy_view): nothing heavy before the compute.
     * Not a stream's call: a stream's state would then be allocated on a compute
     * thread, between the buffers that thread keeps, and could not leave the process
     * when the stream closes (test_streams_memory) */
    w->direct = st->in_mt == API_MT_NPY && !st->seq.has_id && !st->seq.has_start &&
                !st->seq.has_end;
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
    int rc;
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
                json_integer_value(v) <= API_MAX_VERSION)
                st->version = (int)json_integer_value(v);
            else if (!json_is_string(v) ||
                     api_parse_version("\"version\"", json_string_value(v), &st->version, e))
                return sola_errf(e, SOLA_EINVAL,
                                 "request body: \"version\" must be a positive integer");
        } else if (!strncmp(key, "sequence_", 9) &&
                   ((!strcmp(key, "sequence_id") && st->seq.has_id) ||
                    (!strcmp(key, "sequence_start") && st->seq.has_start) ||
                    (!strcmp(key, "sequence_end") && st->seq.has_end))) {
            return sola_errf(e, SOLA_EINVAL, "request body: %s is also in the query; give it "
                                             "once", key);
        } else if (api_seq_json_member(&st->seq, key, v, "request body", &rc, e)) {
            if (rc)
                return rc;
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
                             "model, version, tsm, sequence_id, sequence_start, "
                             "sequence_end)",
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

/* TSMs of every sequence of y into S ([T,T] or [B,T,T], shaped like y). With into
 * != NULL, S->data is that buffer (room for B*T*T floats) instead of a new one. */
static int tsm_all(const sola_array *y, sola_array *S, float *into, sola_err *e)
{
    int64_t B, T, C;
    dims(y, &B, &T, &C);
    int64_t sh[3] = {B, T, T};
    int rc = 0;
    if (into) {
        S->data = into;
        S->ndim = y->ndim;
        memcpy(S->shape, y->ndim == 3 ? sh : sh + 1, sizeof(int64_t) * (size_t)y->ndim);
    } else {
        rc = y->ndim == 3 ? alloc_like(S, 3, sh, e) : alloc_like(S, 2, sh + 1, e);
    }
    for (int64_t b = 0; !rc && b < B; b++)
        rc = sola_tsm(y->data + b * T * C, (int)T, (int)C, S->data + b * T * T, e);
    return rc;
}

/* ---- sizes, decided before anything is allocated ------------------------------ */

/* Upper bound of one number in our JSON (api_fmt_float: 16 chars) and its comma. */
#define JSON_NUMBER_MAX 17

typedef struct sizes {
    size_t y;      /* refined features held apart from the reply (0: none, or in it) */
    size_t maps;   /* the TSM arrays */
    size_t reply;  /* the encoded reply, an upper bound */
    int in_place;  /* .npy refine: the features are computed into the reply itself */
} sizes;

static int tsm_limit(const api_ctx *ctx)
{
    return ctx->max_tsm_frames > 0 ? ctx->max_tsm_frames : API_TSM_MAX_T;
}

/* What a request of shape [B, T, C] will build; 0, or SOLA_ETOOBIG with a message when
 * a limit says no (T, the TSM's T, the reply's size). */
static int plan_sizes(const infer *st, int tsm, int64_t B, int64_t T, int64_t C, sizes *z,
                      sola_err *e)
{
    const api_ctx *ctx = st->ctx;
    memset(z, 0, sizeof *z);
    if (T > ctx->max_frames)
        return sola_errf(e, SOLA_ETOOBIG,
                         "sequence of T=%lld snippets exceeds this server's limit of %d "
                         "(--max-frames)",
                         (long long)T, ctx->max_frames);
    if (tsm && T > tsm_limit(ctx))
        return sola_errf(e, SOLA_ETOOBIG,
                         "a TSM of T=%lld is %lld x %lld floats; this server's limit is "
                         "T=%d (--max-tsm-frames)",
                         (long long)T, (long long)T, (long long)T, tsm_limit(ctx));
    /* every factor is below 2^24 here (limits above), so these do not overflow */
    double feat = st->kind == K_REFINE ? (double)B * T * C : 0;
    double one = (double)B * T * T;
    int nmaps = !!(tsm & TSM_REFINED) + !!(tsm & TSM_RAW);
    double nums = feat + one * nmaps, rows = (double)B * T * (1 + nmaps);
    int need_model = st->kind == K_REFINE || (tsm & TSM_REFINED);
    double y = need_model ? (double)B * T * C * 4 : 0, reply = 0;
    switch (st->out_mt) {
    case API_MT_JSON: reply = nums * JSON_NUMBER_MAX + rows * 4 + 512; break;
    case API_MT_NPY: reply = nums * 4 + 192; break;
    case API_MT_NPZ: reply = nums * 4 + 1024; break;
    case API_MT_PNG: {
        double cell = T >= 256 ? 1 : (double)(256 / T), side = (double)T * cell;
        double width = nmaps * side + nmaps * 8 + 16;
        reply = side * (width * 3 + 1) * 1.01 + 65536; /* stored deflate at worst */
        break;
    }
    }
    if (st->kind == K_REFINE && st->out_mt == API_MT_NPY) {
        z->in_place = 1;
        y = 0;
    }
    if (ctx->max_reply && reply > (double)ctx->max_reply)
        return sola_errf(e, SOLA_ETOOBIG,
                         "the reply would be up to %.0f MiB as %s, more than this server's "
                         "limit of %.0f MiB (--max-body)%s",
                         reply / 1048576.0, api_mt_name(st->out_mt),
                         (double)ctx->max_reply / 1048576.0,
                         st->out_mt == API_MT_JSON && nmaps
                             ? ": ask for the TSM as application/x-npy (4 bytes a value) or "
                               "image/png"
                             : "");
    if (y + one * 4 * nmaps + reply > (double)SIZE_MAX / 2)
        return sola_errf(e, SOLA_ETOOBIG, "result too large");
    z->y = (size_t)y;
    /* a /tsm .npy reply is its one map, computed in place */
    z->maps = st->kind == K_TSM && st->out_mt == API_MT_NPY ? 0 : (size_t)(one * 4 * nmaps);
    z->reply = (size_t)reply;
    return 0;
}

/* ---- the run ----------------------------------------------------------------- */

typedef struct run {
    infer *st;
    api_response *rs;
    sola_err e;
    int rc;
    sola_array x, y, S, Sraw;
    char *reply;        /* .npy refine: y lives inside it (owned until handed over) */
    size_t reply_len;
    sizes z;
    api_model *ref;
    const char *mname;
    int mver;
    /* infer_run's phases (below): */
    json_t *rest;        /* new reference from the JSON parser */
    int x_borrowed;      /* x.data points into the request body */
    size_t x_held, y_held; /* budget held for the copy of x and for y */
} run;

static void encode_json(run *u, const sola_array *y, const sola_array *S,
                        const sola_array *Sraw)
{
    api_response *rs = u->rs;
    api_buf b = {0};
    /* the bound was reserved: one allocation, grown into, never doubled */
    if (api_buf_reserve(&b, u->z.reply)) {
        api_error(rs, 503, "out of memory while encoding the reply");
        return;
    }
    const char *sep = "{";
    if (u->mname) {
        api_buf_puts(&b, "{\"model\":");
        api_buf_json_str(&b, u->mname);
        api_buf_printf(&b, ",\"version\":%d", u->mver);
        sep = ",";
    }
    const struct {
        const char *key;
        const sola_array *a;
    } members[3] = {{"features", y}, {"tsm", S}, {"tsm_raw", Sraw}};
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++) {
        if (!members[i].a)
            continue;
        api_buf_printf(&b, "%s\"%s\":", sep, members[i].key);
        rc = api_buf_json_floats_c(&b, members[i].a->data, members[i].a->ndim,
                                   members[i].a->shape, rs->cancel);
        sep = ",";
    }
    api_buf_puts(&b, "}\n");
    if (rc == SOLA_ECANCEL) {
        api_buf_free(&b);
        api_error(rs, 503, "the client went away");
        return;
    }
    if (b.failed) {
        api_buf_free(&b);
        api_error(rs, 503, "out of memory while encoding the reply");
        return;
    }
    api_take_body(rs, 200, "application/json", b.p, b.len);
}

/* The TSMs and the encoding (a compute thread when they are TSMs). Reserves the maps
 * and the reply, builds them, gives back what the reply does not hold. */
static void finish(void *arg)
{
    run *u = arg;
    infer *st = u->st;
    const api_ctx *ctx = st->ctx;
    api_response *rs = u->rs;
    if (api_cancelled(rs)) {
        api_error(rs, 503, "the client went away");
        return;
    }
    size_t hold = u->z.maps + (u->z.in_place ? 0 : u->z.reply);
    if (api_mem_reserve(ctx, hold, "this reply", rs))
        return;
    sola_err *e = &u->e;
    int rc = 0;
    char *npy = NULL; /* /tsm as .npy: the one map is computed into the reply itself */
    size_t npy_len = 0, hl = 0;
    if (st->kind == K_TSM && st->out_mt == API_MT_NPY) {
        const sola_array *src = (st->tsm & TSM_REFINED) ? &u->y : &u->x;
        int64_t B, T, C, sh[3];
        dims(src, &B, &T, &C);
        sh[0] = B;
        sh[src->ndim - 2] = T;
        sh[src->ndim - 1] = T;
        char hdr[192];
        hl = api_npy_header(src->ndim, sh, hdr);
        npy_len = hl + (size_t)(B * T * T) * sizeof(float);
        if (!(npy = malloc(npy_len))) {
            rc = sola_errf(e, SOLA_ENOMEM, "out of memory for the reply");
            goto fail;
        }
        memcpy(npy, hdr, hl);
    }
    float *into = npy ? (float *)(void *)(npy + hl) : NULL;
    if ((st->tsm & TSM_REFINED) && (rc = tsm_all(&u->y, &u->S, into, e)))
        goto fail;
    if ((st->tsm & TSM_RAW) && (rc = tsm_all(&u->x, &u->Sraw, into, e)))
        goto fail;
    if (npy) {
        u->S.data = u->Sraw.data = NULL; /* they live in the reply */
        api_take_body(rs, 200, "application/x-npy", npy, npy_len);
        npy = NULL;
        goto out;
    }
    if (api_cancelled(rs)) {
        api_error(rs, 503, "the client went away");
        goto out;
    }
    const sola_array *yo = st->kind == K_REFINE ? &u->y : NULL;
    const sola_array *so = (st->tsm & TSM_REFINED) ? &u->S : NULL;
    const sola_array *ro = (st->tsm & TSM_RAW) ? &u->Sraw : NULL;
    void *buf = NULL;
    size_t len = 0;
    int64_t B, T, C;
    dims(&u->x, &B, &T, &C);
    switch (st->out_mt) {
    case API_MT_JSON:
        encode_json(u, yo, so, ro);
        break;
    case API_MT_NPY: {
        if (u->reply) {
            api_take_body_fn(rs, 200, "application/x-npy", u->reply, u->reply_len,
                             u->st->ctx->be ? u->st->ctx->be->buf_put : NULL);
            u->reply = NULL;
            u->y.data = NULL; /* lived inside the reply */
            break;
        }
        const sola_array *one = yo ? yo : so ? so : ro;
        if ((rc = sola_npy_encode(one->data, one->ndim, one->shape, &buf, &len, e)))
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
        if ((rc = sola_npz_encode(names, arr, n, 0, &buf, &len, e)))
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
        if ((rc = sola_heatmap_png(maps, n, (int)T, &buf, &len, e)))
            goto fail;
        api_take_body(rs, 200, "image/png", buf, len);
        break;
    }
    default:
        api_error(rs, 500, "internal error: no reply format");
        goto out;
    }
    goto out;
fail:
    api_error_from(rs, e);
out:
    if (npy) {
        free(npy);
        u->S.data = u->Sraw.data = NULL;
    }
    sola_array_free(&u->S);
    sola_array_free(&u->Sraw);
    /* the reply keeps what its body holds; the maps and the unused bound go back */
    size_t keep = !u->z.in_place && rs->status == 200 && rs->body ? rs->len : 0;
    if (keep > hold)
        keep = hold;
    api_mem_give(ctx, hold - keep);
    rs->charged += keep;
}

static void run_finish(run *u)
{
    const api_ctx *ctx = u->st->ctx;
    int heavy = u->st->tsm != 0; /* a TSM: T x T, on the compute threads */
    if (heavy && ctx->be->compute) {
        int rc = ctx->be->compute(ctx->self, finish, u, &u->e);
        if (rc)
            api_error_from(u->rs, &u->e);
    } else {
        finish(u);
    }
}

/* infer_run's phases each return 0 (go on), a negative SOLA_E* code (the error is in
 * u->e) or REPLIED (rs already holds the reply, e.g. a 413 of the budget). */
#define REPLIED 1

/* GET /tsm: the stored item's header first, so that a long item is refused (and a
 * short one budgeted) before it is read. */
static int load_item(run *u, size_t *held)
{
    infer *st = u->st;
    const api_ctx *ctx = st->ctx;
    sola_err *e = &u->e;
    char hb[SOLA_NPY_MAX_HEADER + 16];
    FILE *f = fopen(st->item_path, "rb");
    if (!f)
        return sola_errf(e, SOLA_ENOTFOUND, "no such dataset item (%s)",
                         strstr(st->item_path, "/datasets/") + 1);
    size_t n = fread(hb, 1, sizeof hb, f);
    fclose(f);
    sola_npy_info in;
    const char *shown = strstr(st->item_path, "/datasets/") + 1;
    if (sola_npy_inspect(hb, n, shown, 0, &in, e))
        return e->code;
    if (in.ndim != 2)
        return sola_errf(e, SOLA_ESHAPE, "%s is not a [T, C] sequence", shown);
    int tsm = st->tsm < 0 ? TSM_REFINED : st->tsm;
    if (plan_sizes(st, tsm, 1, in.shape[0], in.shape[1], &u->z, e))
        return e->code;
    size_t nb = (size_t)in.shape[0] * (size_t)in.shape[1] * sizeof(float);
    if (api_mem_reserve(ctx, nb, "loading the item", u->rs))
        return REPLIED;
    *held = nb;
    int rc = sola_npy_load(st->item_path, ctx->allow_nonfinite ? SOLA_NPY_ALLOW_NONFINITE : 0,
                           &u->x, e);
    if (rc == SOLA_ENOTFOUND)
        sola_errf(e, SOLA_ENOTFOUND, "no such dataset item (%s)", shown);
    return rc;
}

/* Index of the first NaN or infinity of x, or its count when none: the server's check
 * of the body on arrival when x is the body's own <f4 data in place (borrowed), else a
 * scan. */
static size_t first_nonfinite(const infer *st, const sola_array *x, int borrowed)
{
    size_t n = sola_array_numel(x);
    if (borrowed && st->f32_off && (const char *)x->data == st->body + st->f32_off &&
        st->f32_words == n)
        return st->f32_bad < n ? st->f32_bad : n;
    return n ? sola_first_nonfinite(x->data, n) : 0;
}

/* One call of a stream (api/seq.h): x is its chunk [n, C], n >= 0. */
static void stream_call(infer *st, const sola_array *x, int borrowed, sola_ws *ws,
                        api_response *rs)
{
    const api_ctx *ctx = st->ctx;
    sola_err e = {0};
    if (api_seq_check(&st->seq, &e)) {
        api_error_from(rs, &e);
        return;
    }
    if (st->kind != K_REFINE) {
        api_error(rs, 400, "sequence_id: streams are refined with POST /refine (or "
                           "/v2/models/M/infer); a stream's TSM needs its whole sequence");
        return;
    }
    if (st->tsm > 0) {
        api_error(rs, 400, "tsm: a stream's replies carry refined rows only (a TSM needs the "
                           "whole sequence: refine it offline, or follow the stream with "
                           "GET /streams/%s/events)", st->seq.id);
        return;
    }
    if (x->ndim != 2) {
        api_error(rs, 422, "a stream takes chunks [n, C] of one sequence; got %d "
                           "dimensions", x->ndim);
        return;
    }
    size_t n = sola_array_numel(x), bad = first_nonfinite(st, x, borrowed);
    if (!ctx->allow_nonfinite && bad < n) {
        api_error(rs, 400, "features[%zu][%zu] is %s: feature values must be finite (this "
                           "server refuses NaN and Inf; see --allow-nonfinite)",
                  bad / (size_t)x->shape[1], bad % (size_t)x->shape[1],
                  isnan(x->data[bad]) ? "NaN" : "infinite");
        return;
    }
    api_seq_out o;
    if (api_seq_push(ctx, &st->seq, st->model[0] ? st->model : NULL, st->version, x->data,
                     x->shape[0], x->shape[1], ws, &o, rs))
        return;
    api_seq_reply_refine(rs, st->out_mt, &st->seq, &o);
    api_seq_out_free(ctx, &o);
}

/* Decode: the features (stored item, JSON or .npy body) into u->x, with the options a
 * JSON body carries. */
static int run_decode(run *u)
{
    infer *st = u->st;
    const api_ctx *ctx = st->ctx;
    sola_err *e = &u->e;
    int rc = 0;
    if (st->item_path) {
        if ((rc = load_item(u, &u->x_held)) == REPLIED)
            return REPLIED; /* rs filled by the budget */
    } else if (st->len == 0) { /* an empty stream chunk (prepare allows it only there) */
        u->x.ndim = 2;
    } else if (st->in_mt == API_MT_JSON) {
        rc = api_parse_features_json(st->body, st->len, &u->x, &u->rest, e);
    } else if (npy_view(st->body, st->len, &u->x)) {
        u->x_borrowed = 1; /* already float32 in place: no copy of a body of megabytes */
    } else {
        rc = sola_npy_parse(st->body, st->len, "request body",
                            ctx->allow_nonfinite ? SOLA_NPY_ALLOW_NONFINITE : 0, &u->x, e);
    }
    if (rc) {
        /* 415 is about the Content-Type; an .npy whose contents we cannot use (dtype,
         * version) is a bad body */
        if (rc == SOLA_EUNSUP)
            e->code = SOLA_EFORMAT;
        return rc;
    }
    if (!u->x_borrowed && !u->x_held && u->x.data) {
        u->x_held = sola_array_numel(&u->x) * sizeof(float); /* the parsed copy exists */
        api_mem_force(ctx, u->x_held);
    }
    if (u->rest && (rc = json_options(st, u->rest, e)))
        return rc;
    return 0;
}

/* Limits: the TSM choice, the shape [B, T, C], the sizes of what will be built, finite
 * values. */
static int run_limits(run *u, int64_t *B, int64_t *T, int64_t *C)
{
    infer *st = u->st;
    const api_ctx *ctx = st->ctx;
    sola_err *e = &u->e;
    if (st->tsm < 0)
        st->tsm = st->kind == K_TSM ? TSM_REFINED : 0;
    if (st->kind == K_TSM && st->tsm == 0)
        return sola_errf(e, SOLA_EINVAL, "tsm=none leaves /tsm nothing to return");
    if (u->x.ndim != 2 && u->x.ndim != 3)
        return sola_errf(e, SOLA_ESHAPE,
                         "features have %d dimension%s: expected [T, C] or [B, T, C]",
                         u->x.ndim, u->x.ndim == 1 ? "" : "s");
    dims(&u->x, B, T, C);
    if (*B < 1 || *T < 1 || *C < 1)
        return sola_errf(e, SOLA_ESHAPE, "features are empty (shape has a zero)");
    int rc;
    if ((rc = plan_sizes(st, st->tsm, *B, *T, *C, &u->z, e)))
        return rc;
    if (!ctx->allow_nonfinite) {
        size_t n = sola_array_numel(&u->x), bad = first_nonfinite(st, &u->x, u->x_borrowed);
        if (bad < n)
            return sola_errf(e, SOLA_EFORMAT,
                             "features[%zu][%zu] is %s: feature values must be finite (this "
                             "server refuses NaN and Inf; see --allow-nonfinite)",
                             bad / (size_t)*C, bad % (size_t)*C,
                             isnan(u->x.data[bad]) ? "NaN" : "infinite");
    }
    return 0;
}

/* Format choice: does the reply format carry what was asked for? */
static int run_format(run *u, int64_t B)
{
    infer *st = u->st;
    int nout = (st->kind == K_REFINE) + !!(st->tsm & TSM_REFINED) + !!(st->tsm & TSM_RAW);
    if (st->out_mt == API_MT_NPY && nout > 1) {
        api_error(u->rs, 406,
                  "a .npy reply holds one array but %s asked for %d (features/tsm/tsm_raw): "
                  "send Accept: application/x-npz or application/json",
                  st->kind == K_REFINE ? "this /refine" : "tsm=both", nout);
        return REPLIED;
    }
    if (st->out_mt == API_MT_PNG && B != 1)
        return sola_errf(&u->e, SOLA_ESHAPE,
                         "a PNG heatmap shows one sequence; got a batch of %lld", (long long)B);
    return 0;
}

/* The buffer the refined features go to: inside the .npy reply itself (z.in_place),
 * or an array of their own. */
static int run_alloc_y(run *u)
{
    const api_ctx *ctx = u->st->ctx;
    sola_err *e = &u->e;
    if (u->z.in_place) {
        /* compute straight into the reply: header, then the floats */
        char hdr[192];
        size_t hl = api_npy_header(u->x.ndim, u->x.shape, hdr), nb;
        if (sola_mul_size(sola_array_numel(&u->x), sizeof(float), &nb) ||
            sola_add_size(nb, hl, &u->reply_len))
            return sola_errf(e, SOLA_ETOOBIG, "result too large");
        if (api_mem_reserve(ctx, u->reply_len, "the reply", u->rs))
            return REPLIED;
        u->y_held = u->reply_len;
        if (!(u->reply = ctx->be->buf_get ? ctx->be->buf_get(ctx->self, u->reply_len)
                                          : malloc(u->reply_len)))
            return sola_errf(e, SOLA_ENOMEM, "out of memory for the reply");
        memcpy(u->reply, hdr, hl);
        u->y.data = (float *)(void *)(u->reply + hl);
        u->y.ndim = u->x.ndim;
        memcpy(u->y.shape, u->x.shape, sizeof u->x.shape);
        return 0;
    }
    if (api_mem_reserve(ctx, u->z.y, "the refined features", u->rs))
        return REPLIED;
    u->y_held = u->z.y;
    return alloc_like(&u->y, u->x.ndim, u->x.shape, e);
}

/* Compute: the model (held in u->ref until the reply is encoded) refines x into y. */
static int run_compute(run *u, sola_ws *ws, int64_t B, int64_t T, int64_t C)
{
    infer *st = u->st;
    const api_ctx *ctx = st->ctx;
    api_response *rs = u->rs;
    sola_err *e = &u->e;
    int rc;
    if ((rc = ctx->be->model_acquire(ctx->self, st->model[0] ? st->model : NULL, st->version,
                                     &u->ref, e)))
        return rc;
    const sola_model *m = ctx->be->model_get(ctx->self, u->ref, e);
    if (!m)
        return e->code ? e->code : SOLA_EIO;
    if (C != m->C)
        return sola_errf(e, SOLA_ESHAPE,
                         "features have C=%lld channels but model %s version %d expects C=%d",
                         (long long)C, ctx->be->model_name(u->ref),
                         ctx->be->model_version(u->ref), m->C);
    if ((rc = run_alloc_y(u)))
        return rc;
    if (api_cancelled(rs)) {
        api_error(rs, 503, "the client went away");
        return REPLIED;
    }
    /* a batch goes through as one pass (bigger GEMMs), with each sequence zero-padded
     * on its own: the same result as B separate refines */
    int *lens = malloc(sizeof(int) * (size_t)B);
    if (!lens)
        return sola_errf(e, SOLA_ENOMEM, "out of memory");
    for (int64_t b = 0; b < B; b++)
        lens[b] = (int)T;
    rc = api_refine(ctx, m, u->x.data, lens, (int)B, u->y.data, ws, e);
    free(lens);
    if (rc)
        return rc;
    rs->frames = (long)(B * T);
    u->mname = ctx->be->model_name(u->ref);
    u->mver = ctx->be->model_version(u->ref);
    return 0;
}

/* Encode (run_finish), then the reply's model headers and its share of the budget. */
static void run_encode(run *u)
{
    api_response *rs = u->rs;
    run_finish(u);
    if (rs->status == 200 && u->ref) {
        api_set_header(rs, "X-Model", "%s", u->mname);
        api_set_header(rs, "X-Model-Version", "%d", u->mver);
    }
    if (u->z.in_place && !u->reply && rs->status == 200) {
        rs->charged += u->y_held; /* the .npy reply is the features' buffer */
        u->y_held = 0;
    }
}

static void run_cleanup(run *u)
{
    const api_ctx *ctx = u->st->ctx;
    if (u->ref)
        ctx->be->model_release(ctx->self, u->ref);
    json_decref(u->rest);
    if (u->x_borrowed)
        u->x.data = NULL;
    sola_array_free(&u->x);
    if (u->reply) {
        if (ctx->be->buf_put)
            ctx->be->buf_put(u->reply);
        else
            free(u->reply);
        u->y.data = NULL;
    }
    sola_array_free(&u->y);
    sola_array_free(&u->S);
    sola_array_free(&u->Sraw);
    api_mem_give(ctx, u->x_held + u->y_held);
}

static void infer_run(void *state, sola_ws *ws, api_response *rs)
{
    infer *st = state;
    run u = {0};
    u.st = st;
    u.rs = rs;
    int64_t B = 0, T = 0, C = 0;
    int rc = run_decode(&u);
    if (!rc && (st->seq.has_id || st->seq.has_start || st->seq.has_end)) {
        stream_call(st, &u.x, u.x_borrowed, ws, rs);
        rc = REPLIED;
    }
    if (!rc)
        rc = run_limits(&u, &B, &T, &C);
    if (!rc)
        rc = run_format(&u, B);
    if (!rc && (st->kind == K_REFINE || (st->tsm & TSM_REFINED)))
        rc = run_compute(&u, ws, B, T, C);
    if (!rc)
        run_encode(&u);
    else if (rc != REPLIED)
        api_error_from(rs, &u.e);
    run_cleanup(&u);
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
    {"POST", "/refine", h_refine, API_COMPUTE},
    {"POST", "/tsm", h_tsm, API_COMPUTE},
    {"GET", "/tsm", h_tsm_get, API_COMPUTE},
    {NULL, NULL, NULL, 0},
};
