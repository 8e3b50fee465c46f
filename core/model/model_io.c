/* model_io.c -- the SoLa model's file form: safetensors with the authors' PyTorch
 * state_dict names (docs/spec.md section 2, "Models").
 *
 * Loading reads C, H, k1, k2 (and P for the head) from the tensor shapes and checks
 * every other shape against them, so a checkpoint of another module is refused with
 * the name of the first tensor that does not fit rather than producing nonsense. Any
 * tensor we do not know is kept as an extra (converted to float32) and written back
 * on save, so that a checkpoint of a richer objective round-trips through us. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "model.h"
#include "safetensors.h"

#define N_W0 "conv_network.0.weight"
#define N_B0 "conv_network.0.bias"
#define N_W2 "conv_network.2.weight"
#define N_B2 "conv_network.2.bias"
#define N_W4 "conv_network.4.weight"
#define N_B4 "conv_network.4.bias"
#define N_AL "alpha"
#define N_HW0 "dissim_head.network.0.weight"
#define N_HB0 "dissim_head.network.0.bias"
#define N_HW2 "dissim_head.network.2.weight"
#define N_HB2 "dissim_head.network.2.bias"

/* Kernel and dilation limits: far beyond any use, small enough that d*(k-1) and the
 * padded row ranges in refine.c stay well inside int. */
#define MAX_KERNEL 4095
#define MAX_DILATION 65536
#define MAX_DIM (1 << 24)

static void fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

/* Where the module's tensors are: their names may carry a prefix ("module." from
 * DataParallel, "sola." when the module sits inside a larger network's state_dict). */
typedef struct src {
    const sola_st_file *f;
    const char *file;
    char prefix[256];
} src;

static const sola_st_tensor *find(const src *s, const char *tname)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s", s->prefix, tname);
    return sola_st_find(s->f, full);
}

static int find_prefix(src *s, sola_err *e)
{
    s->prefix[0] = 0;
    if (sola_st_find(s->f, N_W0))
        return 0;
    static const char tail[] = "." N_W0;
    size_t tl = sizeof tail - 1;
    const char *first = NULL;
    for (int i = 0; i < s->f->n; i++) {
        const char *nm = s->f->t[i].name;
        size_t n = strlen(nm);
        if (n <= tl || strcmp(nm + n - tl, tail))
            continue;
        if (first)
            return sola_errf(e, SOLA_EFORMAT,
                             "%s: holds several SoLa modules (%s and %s); extract one", s->file,
                             first, nm);
        if (n - tl + 1 >= sizeof s->prefix)
            continue;
        first = nm;
        memcpy(s->prefix, nm, n - tl + 1); /* keeps the dot */
        s->prefix[n - tl + 1] = 0;
    }
    return 0;
}

static const sola_st_tensor *need(const src *s, const char *tname, sola_err *e)
{
    const sola_st_tensor *t = find(s, tname);
    if (!t)
        sola_errf(e, SOLA_EFORMAT,
                  "%s: tensor %s%s is missing (a SoLa model needs conv_network.{0,2,4}.weight/"
                  "bias and alpha)",
                  s->file, s->prefix, tname);
    return t;
}

/* Checks t's shape against want[ndim] (-1 = any); `what` spells the expectation. */
static int check_shape(const sola_st_tensor *t, const char *file, int ndim, const int64_t *want,
                       const char *what, sola_err *e)
{
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = want[i] < 0 || t->shape[i] == want[i];
    if (!ok) {
        char got[128];
        fmt_shape(got, sizeof got, t->ndim, t->shape);
        return sola_errf(e, SOLA_ESHAPE, "%s: tensor %s has shape %s but %s is expected", file,
                         t->name, got, what);
    }
    return 0;
}

static int dim_ok(int64_t v, int64_t max)
{
    return v >= 1 && v <= max;
}

/* Converts t into out (numel floats) and refuses NaN/Inf: a model holding them would
 * answer every request with NaN, which is worse than refusing it at load. */
static int read_param(const sola_st_tensor *t, const char *file, float *out, sola_err *e)
{
    if (t->dtype == SOLA_DT_OTHER)
        return sola_errf(e, SOLA_EUNSUP,
                         "%s: tensor %s has dtype %s; parameters must be F32, F16, BF16 or F64",
                         file, t->name, t->dtype_str);
    int rc = sola_st_to_f32(t, out, e);
    if (rc)
        return rc;
    size_t n = sola_st_numel(t), i = sola_first_nonfinite(out, n);
    if (i < n)
        return sola_errf(e, SOLA_EFORMAT, "%s: tensor %s holds NaN or Inf at element %zu",
                         file, t->name, i);
    return 0;
}

/* Integer and bool extras (step counters, queue pointers) are kept as float32: exact
 * up to 2^24, which covers every counter a checkpoint of ours holds. */
static int int_to_f32(const sola_st_tensor *t, float *out)
{
    static const struct {
        const char *name;
        int size, sign;
    } kinds[] = {{"I64", 8, 1}, {"I32", 4, 1}, {"I16", 2, 1}, {"I8", 1, 1},
                 {"U64", 8, 0}, {"U32", 4, 0}, {"U16", 2, 0}, {"U8", 1, 0}, {"BOOL", 1, 0}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (strcmp(t->dtype_str, kinds[k].name))
            continue;
        size_t n = sola_st_numel(t), sz = (size_t)kinds[k].size;
        for (size_t i = 0; i < n; i++) {
            const unsigned char *p = t->data + i * sz;
            uint64_t u = 0;
            for (size_t b = 0; b < sz; b++) /* safetensors is little-endian */
                u |= (uint64_t)p[b] << (8 * b);
            if (kinds[k].sign && sz < 8 && (u >> (8 * sz - 1)) & 1)
                u |= ~(uint64_t)0 << (8 * sz);
            out[i] = kinds[k].sign ? (float)(int64_t)u : (float)u;
        }
        return 0;
    }
    return -1;
}

static int read_extra(sola_model *m, const sola_st_tensor *t, const char *name, const char *file,
                      sola_err *e)
{
    if (t->ndim > 4)
        return sola_errf(e, SOLA_EUNSUP, "%s: tensor %s has %d dimensions (at most 4 kept)",
                         file, t->name, t->ndim);
    size_t n = sola_st_numel(t), bytes;
    if (sola_mul_size(n, sizeof(float), &bytes))
        return sola_errf(e, SOLA_ETOOBIG, "%s: tensor %s is too large", file, t->name);
    float *buf = malloc(bytes ? bytes : 1);
    if (!buf)
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory for tensor %s", file, t->name);
    int rc = 0;
    if (t->dtype != SOLA_DT_OTHER)
        rc = sola_st_to_f32(t, buf, e);
    else if (int_to_f32(t, buf))
        rc = sola_errf(e, SOLA_EUNSUP, "%s: tensor %s has unsupported dtype %s", file, t->name,
                       t->dtype_str);
    if (!rc)
        rc = sola_model_put_extra(m, name, t->ndim, t->shape, buf, e);
    free(buf);
    return rc;
}

/* A dilation from metadata: a decimal integer in [1, MAX_DILATION]; absent = 1. */
static int parse_dilation(const sola_st_file *f, const char *file, const char *key, int *out,
                          sola_err *e)
{
    const char *v = sola_st_meta(f, key);
    *out = 1;
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long d = strtol(v, &end, 10);
    if (errno || end == v || *end || d < 1 || d > MAX_DILATION)
        return sola_errf(e, SOLA_EFORMAT,
                         "%s: metadata %s = \"%s\" must be a positive integer (at most %d)", file,
                         key, v, MAX_DILATION);
    *out = (int)d;
    return 0;
}

static sola_model *model_from_st(const sola_st_file *f, const char *file, size_t min_rows,
                                 sola_err *e)
{
    src S = {.f = f, .file = file}, *sp = &S;
    if (find_prefix(sp, e))
        return NULL;
    const sola_st_tensor *w0 = need(sp, N_W0, e);
    if (!w0)
        return NULL;
    if (w0->ndim != 3) {
        check_shape(w0, file, 3, (int64_t[]){-1, -1, -1}, "[H, C, k1]", e);
        return NULL;
    }
    int64_t H = w0->shape[0], C = w0->shape[1], k1 = w0->shape[2];
    if (!dim_ok(H, MAX_DIM) || !dim_ok(C, MAX_DIM) || !dim_ok(k1, MAX_KERNEL) || k1 % 2 == 0) {
        sola_errf(e, SOLA_ESHAPE,
                  "%s: tensor %s has shape [%lld, %lld, %lld]; expected [H, C, k1] with H, C "
                  "in 1..%d and k1 odd (the module pads symmetrically)",
                  file, N_W0, (long long)H, (long long)C, (long long)k1, MAX_DIM);
        return NULL;
    }
    char what[160];
    const sola_st_tensor *t;
    /* Module tensors in file order of the state_dict; each checked against C, H. */
    const sola_st_tensor *b0, *w2, *b2, *w4, *b4, *al;
    snprintf(what, sizeof what, "[%lld] (H from %s)", (long long)H, N_W0);
    if (!(b0 = need(sp, N_B0, e)) || check_shape(b0, file, 1, (int64_t[]){H}, what, e))
        return NULL;
    snprintf(what, sizeof what, "[%lld, %lld, k2] with k2 odd (H from %s)", (long long)H,
             (long long)H, N_W0);
    if (!(w2 = need(sp, N_W2, e)) || check_shape(w2, file, 3, (int64_t[]){H, H, -1}, what, e))
        return NULL;
    int64_t k2 = w2->shape[2];
    if (!dim_ok(k2, MAX_KERNEL) || k2 % 2 == 0) {
        sola_errf(e, SOLA_ESHAPE,
                  "%s: tensor %s has kernel size %lld; it must be odd, 1..%d (the module pads "
                  "symmetrically)",
                  file, N_W2, (long long)k2, MAX_KERNEL);
        return NULL;
    }
    snprintf(what, sizeof what, "[%lld]", (long long)H);
    if (!(b2 = need(sp, N_B2, e)) || check_shape(b2, file, 1, (int64_t[]){H}, what, e))
        return NULL;
    snprintf(what, sizeof what, "[%lld, %lld, 1] (C, H from %s)", (long long)C, (long long)H,
             N_W0);
    if (!(w4 = need(sp, N_W4, e)) || check_shape(w4, file, 3, (int64_t[]){C, H, 1}, what, e))
        return NULL;
    snprintf(what, sizeof what, "[%lld] (C from %s)", (long long)C, N_W0);
    if (!(b4 = need(sp, N_B4, e)) || check_shape(b4, file, 1, (int64_t[]){C}, what, e))
        return NULL;
    if (!(al = need(sp, N_AL, e)))
        return NULL;
    /* torch saves nn.Parameter(torch.zeros(1)) as [1]; a 0-d scalar means the same. */
    if (!(al->ndim == 0 || (al->ndim == 1 && al->shape[0] == 1))) {
        check_shape(al, file, 1, (int64_t[]){1}, "[1]", e);
        return NULL;
    }

    /* The head is all or nothing. */
    const char *hn[4] = {N_HW0, N_HB0, N_HW2, N_HB2};
    const sola_st_tensor *h[4];
    int nh = 0;
    for (int i = 0; i < 4; i++)
        nh += (h[i] = find(sp, hn[i])) != NULL;
    int64_t P = 0;
    if (nh) {
        for (int i = 0; i < 4; i++)
            if (!h[i]) {
                sola_errf(e, SOLA_EFORMAT,
                          "%s: tensor %s%s is missing (the dissimilarity head needs all four "
                          "dissim_head.network.{0,2}.weight/bias tensors)",
                          file, S.prefix, hn[i]);
                return NULL;
            }
        snprintf(what, sizeof what, "[P, %lld] (C from %s)", (long long)C, N_W0);
        if (check_shape(h[0], file, 2, (int64_t[]){-1, C}, what, e))
            return NULL;
        P = h[0]->shape[0];
        if (!dim_ok(P, MAX_DIM)) {
            sola_errf(e, SOLA_ESHAPE, "%s: tensor %s has width P = %lld; it must be 1..%d",
                      file, N_HW0, (long long)P, MAX_DIM);
            return NULL;
        }
        snprintf(what, sizeof what, "[%lld] (P from %s)", (long long)P, N_HW0);
        if (check_shape(h[1], file, 1, (int64_t[]){P}, what, e))
            return NULL;
        snprintf(what, sizeof what, "[%lld, %lld]", (long long)C, (long long)P);
        if (check_shape(h[2], file, 2, (int64_t[]){C, P}, what, e))
            return NULL;
        snprintf(what, sizeof what, "[%lld]", (long long)C);
        if (check_shape(h[3], file, 1, (int64_t[]){C}, what, e))
            return NULL;
    }

    int d1, d2;
    if (parse_dilation(f, file, "dilation1", &d1, e) || parse_dilation(f, file, "dilation2", &d2, e))
        return NULL;

    sola_model *m = sola_model_new((int)C, (int)H, (int)k1, (int)k2, (int)P, e);
    if (!m)
        return NULL;
    m->d1 = d1, m->d2 = d2;
    const sola_st_tensor *mt[] = {w0, b0, w2, b2, w4, b4, al};
    float *dst[] = {m->w0, m->b0, m->w2, m->b2, m->w4, m->b4, m->alpha};
    for (int i = 0; i < 7; i++)
        if (read_param(mt[i], file, dst[i], e))
            goto err;
    if (P) {
        float *hd[] = {m->hw0, m->hb0, m->hw2, m->hb2};
        for (int i = 0; i < 4; i++)
            if (read_param(h[i], file, hd[i], e))
                goto err;
    }
    for (int i = 0; i < f->nmeta; i++)
        if (sola_model_set_meta(m, f->meta_keys[i], f->meta_vals[i])) {
            sola_errf(e, SOLA_ENOMEM, "%s: out of memory for metadata", file);
            goto err;
        }
    size_t plen = strlen(S.prefix);
    for (int i = 0; i < f->n; i++) {
        t = &f->t[i];
        /* extras are kept under their names relative to the module */
        int ours = !strncmp(t->name, S.prefix, plen);
        const char *nm = ours ? t->name + plen : t->name;
        if (ours && sola_model_is_param_name(nm))
            continue; /* read above */
        if (read_extra(m, t, nm, file, e))
            goto err;
    }
    if (sola_model_pack_ex(m, min_rows, e))
        goto err;
    return m;
err:
    sola_model_free(m);
    return NULL;
}

sola_model *sola_model_from_buffer(const void *buf, size_t len, const char *name, sola_err *e)
{
    sola_st_file f;
    if (sola_st_parse(buf, len, name, &f, e))
        return NULL;
    sola_model *m = model_from_st(&f, name, 0, e);
    sola_st_close(&f);
    return m;
}

sola_model *sola_model_load(const char *path, sola_err *e)
{
    return sola_model_load_ex(path, 0, e);
}

sola_model *sola_model_load_ex(const char *path, size_t min_rows, sola_err *e)
{
    sola_st_file f;
    if (sola_st_open(path, &f, e))
        return NULL;
    sola_model *m = model_from_st(&f, path, min_rows, e);
    sola_st_close(&f);
    return m;
}

/* ---- writing ------------------------------------------------------------- */

#define MAX_OUT 11

typedef struct out_list {
    sola_st_out *t;
    int n;
    const char **keys, **vals;
    int nmeta;
    char d1[16], d2[16];
} out_list;

static void out_free(out_list *o)
{
    free(o->t);
    free(o->keys);
    free(o->vals);
}

static int is_reserved_meta(const char *k)
{
    return !strcmp(k, "format") || !strcmp(k, "dilation1") || !strcmp(k, "dilation2");
}

static void add(out_list *o, const char *name, int ndim, const int64_t *shape, const float *d)
{
    sola_st_out *t = &o->t[o->n++];
    t->name = name;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->data = d;
}

/* Builds the views to write; all strings and data are borrowed from m (or o). */
static int build_out(const sola_model *m, int include_train, out_list *o, sola_err *e)
{
    memset(o, 0, sizeof *o);
    int n = MAX_OUT + (include_train ? m->nextra : 0);
    o->t = calloc((size_t)n, sizeof *o->t);
    o->keys = calloc((size_t)m->nmeta + 3, sizeof *o->keys);
    o->vals = calloc((size_t)m->nmeta + 3, sizeof *o->vals);
    if (!o->t || !o->keys || !o->vals) {
        out_free(o);
        return sola_errf(e, SOLA_ENOMEM, "model save: out of memory");
    }
    int64_t C = m->C, H = m->H, P = m->P;
    add(o, N_W0, 3, (int64_t[]){H, C, m->k1}, m->w0);
    add(o, N_B0, 1, (int64_t[]){H}, m->b0);
    add(o, N_W2, 3, (int64_t[]){H, H, m->k2}, m->w2);
    add(o, N_B2, 1, (int64_t[]){H}, m->b2);
    add(o, N_W4, 3, (int64_t[]){C, H, 1}, m->w4);
    add(o, N_B4, 1, (int64_t[]){C}, m->b4);
    add(o, N_AL, 1, (int64_t[]){1}, m->alpha);
    if (include_train && P > 0) {
        add(o, N_HW0, 2, (int64_t[]){P, C}, m->hw0);
        add(o, N_HB0, 1, (int64_t[]){P}, m->hb0);
        add(o, N_HW2, 2, (int64_t[]){C, P}, m->hw2);
        add(o, N_HB2, 1, (int64_t[]){C}, m->hb2);
    }
    if (include_train)
        for (int i = 0; i < m->nextra; i++)
            add(o, m->extra[i].name, m->extra[i].ndim, m->extra[i].shape, m->extra[i].data);
    /* The fields are the truth for these three keys; stale copies in meta are dropped. */
    snprintf(o->d1, sizeof o->d1, "%d", m->d1);
    snprintf(o->d2, sizeof o->d2, "%d", m->d2);
    o->keys[0] = "format", o->vals[0] = "sola";
    o->keys[1] = "dilation1", o->vals[1] = o->d1;
    o->keys[2] = "dilation2", o->vals[2] = o->d2;
    o->nmeta = 3;
    for (int i = 0; i < m->nmeta; i++)
        if (!is_reserved_meta(m->meta[i].key)) {
            o->keys[o->nmeta] = m->meta[i].key;
            o->vals[o->nmeta] = m->meta[i].val;
            o->nmeta++;
        }
    return 0;
}

int sola_model_serialize(const sola_model *m, int include_train, void **buf, size_t *len,
                         sola_err *e)
{
    out_list o;
    int rc = build_out(m, include_train, &o, e);
    if (rc)
        return rc;
    rc = sola_st_encode(o.t, o.n, o.keys, o.vals, o.nmeta, buf, len, e);
    out_free(&o);
    return rc;
}

int sola_model_save(const sola_model *m, const char *path, int include_train, sola_err *e)
{
    out_list o;
    int rc = build_out(m, include_train, &o, e);
    if (rc)
        return rc;
    rc = sola_st_save(path, o.t, o.n, o.keys, o.vals, o.nmeta, e);
    out_free(&o);
    return rc;
}
