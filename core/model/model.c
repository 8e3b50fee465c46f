/* model.c -- the SoLa module's parameters: allocation, PyTorch-default init, the
 * packed GEMM layout, metadata and extra tensors. The safetensors file form (load and
 * save) lives in model_io.c.
 *
 * Everything trainable sits in one float buffer laid out by sola_model_layout, so a
 * gradient or an AdamW moment is "another buffer of nparams floats" with the same
 * offsets. The head, when present, comes after the module so that adding or dropping
 * it never moves a module parameter. */
#include "model.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bigbuf.h"
#include "gemm.h"
#include "rng.h"

void sola_model_layout(int C, int H, int k1, int k2, int P, sola_layout *l)
{
    size_t c = (size_t)C, h = (size_t)H, p = (size_t)(P > 0 ? P : 0);
    size_t o = 0;
    l->w0 = o, o += h * c * (size_t)k1;
    l->b0 = o, o += h;
    l->w2 = o, o += h * h * (size_t)k2;
    l->b2 = o, o += h;
    l->w4 = o, o += c * h;
    l->b4 = o, o += c;
    l->alpha = o, o += 1;
    l->module_total = o;
    l->hw0 = o, o += p * c;
    l->hb0 = o, o += p;
    l->hw2 = o, o += c * p;
    l->hb2 = o, o += c;
    if (p == 0)
        o = l->module_total;
    l->total = o;
}

/* Total parameter count with overflow checks (the layout itself trusts its input). */
static int count_params(int C, int H, int k1, int k2, int P, size_t *out)
{
    size_t c = (size_t)C, h = (size_t)H, p = (size_t)P, t, s = 0;
    size_t terms[][3] = {{h, c, (size_t)k1}, {h, h, (size_t)k2}, {c, h, 1}, {p, c, 1},
                         {c, p, 1}};
    for (size_t i = 0; i < sizeof terms / sizeof terms[0]; i++) {
        if (sola_mul_size(terms[i][0], terms[i][1], &t) || sola_mul_size(t, terms[i][2], &t) ||
            sola_add_size(s, t, &s))
            return -1;
    }
    /* biases, alpha, head biases */
    if (sola_add_size(s, 2 * h + 2 * c + 1 + p, &s))
        return -1;
    /* BLAS takes int dimensions and leading dimensions: k*H columns of a packed conv */
    if ((size_t)k1 * h > INT_MAX || (size_t)k2 * h > INT_MAX || s > (size_t)1 << 40)
        return -1;
    *out = s;
    return 0;
}

static void set_ptrs(sola_model *m)
{
    sola_layout l;
    sola_model_layout(m->C, m->H, m->k1, m->k2, m->P, &l);
    float *p = m->params;
    m->nparams = l.total;
    m->w0 = p + l.w0;
    m->b0 = p + l.b0;
    m->w2 = p + l.w2;
    m->b2 = p + l.b2;
    m->w4 = p + l.w4;
    m->b4 = p + l.b4;
    m->alpha = p + l.alpha;
    if (m->P > 0) {
        m->hw0 = p + l.hw0;
        m->hb0 = p + l.hb0;
        m->hw2 = p + l.hw2;
        m->hb2 = p + l.hb2;
    } else {
        m->hw0 = m->hb0 = m->hw2 = m->hb2 = NULL;
    }
}

sola_model *sola_model_new(int C, int H, int k1, int k2, int P, sola_err *e)
{
    if (C < 1 || H < 1 || P < 0) {
        sola_errf(e, SOLA_EINVAL, "model shape C=%d H=%d P=%d: dimensions must be positive",
                  C, H, P);
        return NULL;
    }
    if (k1 < 1 || k2 < 1 || k1 % 2 == 0 || k2 % 2 == 0) {
        sola_errf(e, SOLA_EINVAL, "model kernels k1=%d k2=%d: kernels must be odd and >= 1",
                  k1, k2);
        return NULL;
    }
    size_t n;
    if (count_params(C, H, k1, k2, P, &n)) {
        sola_errf(e, SOLA_ETOOBIG, "model shape C=%d H=%d k1=%d k2=%d P=%d is too large", C, H,
                  k1, k2, P);
        return NULL;
    }
    sola_model *m = calloc(1, sizeof *m);
    if (!m)
        goto nomem;
    m->C = C, m->H = H, m->k1 = k1, m->k2 = k2, m->P = P, m->d1 = 1, m->d2 = 1;
    /* n <= SIZE_MAX / sizeof(float): count_params checked it */
    m->params = sola_bigbuf_alloc(n * sizeof(float));
    if (!m->params)
        goto nomem;
    memset(m->params, 0, n * sizeof(float));
    set_ptrs(m);
    return m;
nomem:
    sola_model_free(m);
    sola_errf(e, SOLA_ENOMEM, "model C=%d H=%d: out of memory for %zu parameters", C, H, n);
    return NULL;
}

static void free_extra(sola_tensor *t)
{
    free(t->name);
    free(t->data);
}

/* Drops the packs (stale packs would silently serve old weights). */
static void unpack(sola_model *m)
{
    sola_gemm_w_free(m->g0);
    sola_gemm_w_free(m->g2);
    sola_gemm_w_free(m->g4);
    free(m->w0p);
    free(m->w2p);
    m->g0 = m->g2 = m->g4 = NULL;
    m->w0p = m->w2p = NULL;
}

void sola_model_free(sola_model *m)
{
    if (!m)
        return;
    unpack(m);
    free(m->params);
    for (int i = 0; i < m->nmeta; i++) {
        free(m->meta[i].key);
        free(m->meta[i].val);
    }
    free(m->meta);
    for (int i = 0; i < m->nextra; i++)
        free_extra(&m->extra[i]);
    free(m->extra);
    free(m);
}

static size_t tensor_numel(int ndim, const int64_t *shape)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    return n;
}

sola_model *sola_model_clone(const sola_model *m, sola_err *e)
{
    sola_model *c = sola_model_new(m->C, m->H, m->k1, m->k2, m->P, e);
    if (!c)
        return NULL;
    c->d1 = m->d1, c->d2 = m->d2;
    memcpy(c->params, m->params, m->nparams * sizeof(float));
    for (int i = 0; i < m->nmeta; i++)
        if (sola_model_set_meta(c, m->meta[i].key, m->meta[i].val))
            goto nomem;
    for (int i = 0; i < m->nextra; i++) {
        const sola_tensor *t = &m->extra[i];
        if (sola_model_put_extra(c, t->name, t->ndim, t->shape, t->data, e))
            goto err;
    }
    /* A clone of a packed model is packed, so it can serve at once. */
    if (m->g0 && sola_model_pack(c, e))
        goto err;
    return c;
nomem:
    sola_errf(e, SOLA_ENOMEM, "model clone: out of memory");
err:
    sola_model_free(c);
    return NULL;
}

/* U(-bound, bound) as torch.nn.init.uniform_ draws it, rounded to float. */
static void fill_uniform(float *w, size_t n, double bound, sola_rng *r)
{
    for (size_t i = 0; i < n; i++)
        w[i] = (float)((2.0 * sola_rng_uniform(r) - 1.0) * bound);
}

/* nn.Conv1d / nn.Linear reset_parameters(): kaiming_uniform_(a=sqrt(5)) gives a weight
 * bound of gain*sqrt(3/fan_in) with gain = sqrt(2/(1+5)), i.e. exactly 1/sqrt(fan_in);
 * the bias bound is 1/sqrt(fan_in) too. */
static void init_layer(float *w, size_t nw, float *b, size_t nb, size_t fan_in, sola_rng *r)
{
    double bound = 1.0 / sqrt((double)fan_in);
    fill_uniform(w, nw, bound, r);
    fill_uniform(b, nb, bound, r);
}

static void init_head(sola_model *m, sola_rng *r)
{
    size_t C = (size_t)m->C, P = (size_t)m->P;
    if (P == 0)
        return;
    init_layer(m->hw0, P * C, m->hb0, P, C, r);
    init_layer(m->hw2, C * P, m->hb2, C, P, r);
}

void sola_model_init(sola_model *m, uint64_t seed)
{
    sola_rng r;
    sola_rng_seed(&r, seed);
    size_t C = (size_t)m->C, H = (size_t)m->H;
    init_layer(m->w0, H * C * (size_t)m->k1, m->b0, H, C * (size_t)m->k1, &r);
    init_layer(m->w2, H * H * (size_t)m->k2, m->b2, H, H * (size_t)m->k2, &r);
    init_layer(m->w4, C * H, m->b4, C, H, &r);
    m->alpha[0] = 0.0f; /* tanh(0) = 0: a fresh model is the identity */
    init_head(m, &r);   /* drawn after the module: module values do not depend on P */
    unpack(m);
}

static void init_head_seeded(sola_model *m, uint64_t seed)
{
    sola_rng r;
    sola_rng_seed(&r, seed);
    init_head(m, &r);
}

int sola_model_add_head(sola_model *m, int P, uint64_t seed, sola_err *e)
{
    if (P < 1)
        return sola_errf(e, SOLA_EINVAL, "dissimilarity head width P=%d must be >= 1", P);
    size_t n;
    if (count_params(m->C, m->H, m->k1, m->k2, P, &n))
        return sola_errf(e, SOLA_ETOOBIG, "head width P=%d is too large", P);
    sola_layout l;
    sola_model_layout(m->C, m->H, m->k1, m->k2, 0, &l);
    float *p = calloc(n, sizeof(float));
    if (!p)
        return sola_errf(e, SOLA_ENOMEM, "head width P=%d: out of memory", P);
    memcpy(p, m->params, l.module_total * sizeof(float));
    unpack(m); /* a pack may point into the old params (w4) */
    free(m->params);
    m->params = p;
    m->P = P;
    set_ptrs(m);
    init_head_seeded(m, seed);
    return 0;
}

/* sola_model_pack_conv's copy, cut into blocks of PACK_BLOCK input channels by PACK_BLOCK
 * output channels so that what a block reads (PACK_BLOCK rows of w) and writes (k * PACK_BLOCK
 * rows of wp) stays in cache: w walked in the order of wp's rows read each line of w
 * for one float, and took 35-55 ms for C = 2048, H = 512, k = 5 where this takes a few. */
enum { PACK_BLOCK = 16 };

typedef struct packjob {
    const float *w;
    float *wp;
    size_t Cout, Cin, k;
} packjob;

/* Input-channel blocks [b0, b1) of the pack. */
static void pack_blocks(void *arg, size_t b0, size_t b1)
{
    const packjob *p = arg;
    size_t row = p->k * p->Cout;
    for (size_t b = b0; b < b1; b++) {
        size_t c0 = b * PACK_BLOCK, c1 = c0 + PACK_BLOCK < p->Cin ? c0 + PACK_BLOCK : p->Cin;
        for (size_t o0 = 0; o0 < p->Cout; o0 += PACK_BLOCK) {
            size_t o1 = o0 + PACK_BLOCK < p->Cout ? o0 + PACK_BLOCK : p->Cout;
            for (size_t c = c0; c < c1; c++)
                for (size_t j = 0; j < p->k; j++) {
                    float *dst = p->wp + c * row + j * p->Cout;
                    const float *src = p->w + c * p->k + j;
                    for (size_t o = o0; o < o1; o++)
                        dst[o] = src[o * p->Cin * p->k];
                }
        }
    }
}

/* Packs w [Cout, Cin, k] into wp [Cin, k*Cout] with wp[c, j*Cout + o] = w[o, c, j], so
 * one GEMM X[T, Cin] . wp gives every tap's contribution side by side. A copy: the
 * threads of the products share it (sola_gemm_pool_for). */
float *sola_model_pack_conv(const float *w, int Cout, int Cin, int k)
{
    size_t n = (size_t)Cout * (size_t)Cin * (size_t)k;
    float *wp = sola_bigbuf_alloc(n * sizeof(float));
    if (!wp)
        return NULL;
    packjob job = {w, wp, (size_t)Cout, (size_t)Cin, (size_t)k};
    size_t blocks = ((size_t)Cin + PACK_BLOCK - 1) / PACK_BLOCK;
    if (!sola_gemm_pool_for(blocks, 1, pack_blocks, &job))
        pack_blocks(&job, 0, blocks);
    return wp;
}

int sola_model_pack(sola_model *m, sola_err *e)
{
    return sola_model_pack_ex(m, 0, e);
}

int sola_model_pack_ex(sola_model *m, size_t min_rows, sola_err *e)
{
    unpack(m);
    m->w0p = sola_model_pack_conv(m->w0, m->H, m->C, m->k1);
    m->w2p = sola_model_pack_conv(m->w2, m->H, m->H, m->k2);
    if (!m->w0p || !m->w2p) {
        unpack(m);
        return sola_errf(e, SOLA_ENOMEM, "model C=%d H=%d: out of memory packing weights",
                         m->C, m->H);
    }
    /* conv0 and conv2 write their products; conv4 (W4 [C, H] as stored, i.e. the
     * transpose of the [H, C] it multiplies by) accumulates into x + tanh(alpha) b4 */
    sola_err le = {0}, *ep = e ? e : &le;
    if (!(m->g0 = sola_gemm_w_new(m->C, m->k1 * m->H, 0, 0, m->w0p, min_rows, ep)) ||
        !(m->g2 = sola_gemm_w_new(m->H, m->k2 * m->H, 0, 0, m->w2p, min_rows, ep)) ||
        !(m->g4 = sola_gemm_w_new(m->H, m->C, 1, 1, m->w4, min_rows, ep))) {
        unpack(m);
        return ep->code;
    }
    /* a backend that copied the weights into its own layout never reads these again */
    if (!sola_gemm_w_borrows(m->g0)) {
        free(m->w0p);
        m->w0p = NULL;
    }
    if (!sola_gemm_w_borrows(m->g2)) {
        free(m->w2p);
        m->w2p = NULL;
    }
    return 0;
}

const char *sola_model_meta(const sola_model *m, const char *key)
{
    for (int i = 0; i < m->nmeta; i++)
        if (!strcmp(m->meta[i].key, key))
            return m->meta[i].val;
    return NULL;
}

int sola_model_set_meta(sola_model *m, const char *key, const char *val)
{
    char *v = strdup(val);
    if (!v)
        return SOLA_ENOMEM;
    for (int i = 0; i < m->nmeta; i++)
        if (!strcmp(m->meta[i].key, key)) {
            free(m->meta[i].val);
            m->meta[i].val = v;
            return 0;
        }
    char *k = strdup(key);
    sola_kv *kv = realloc(m->meta, (size_t)(m->nmeta + 1) * sizeof *kv);
    if (!k || !kv) {
        free(k);
        free(v);
        if (kv)
            m->meta = kv;
        return SOLA_ENOMEM;
    }
    m->meta = kv;
    kv[m->nmeta].key = k;
    kv[m->nmeta].val = v;
    m->nmeta++;
    return 0;
}

int sola_model_set_meta_float(sola_model *m, const char *key, float f)
{
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f)
            break;
    }
    return sola_model_set_meta(m, key, buf);
}

const sola_tensor *sola_model_extra(const sola_model *m, const char *name)
{
    for (int i = 0; i < m->nextra; i++)
        if (!strcmp(m->extra[i].name, name))
            return &m->extra[i];
    return NULL;
}

int sola_model_put_extra(sola_model *m, const char *name, int ndim, const int64_t *shape,
                         const float *data, sola_err *e)
{
    if (ndim < 0 || ndim > 4)
        return sola_errf(e, SOLA_EINVAL, "extra tensor %s: %d dimensions (at most 4)", name,
                         ndim);
    if (sola_model_is_param_name(name))
        return sola_errf(e, SOLA_EINVAL,
                         "extra tensor %s: the name belongs to a model parameter", name);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || sola_mul_size(n, (size_t)shape[i], &n))
            return sola_errf(e, SOLA_EINVAL, "extra tensor %s: bad shape", name);
    }
    size_t bytes;
    if (sola_mul_size(n, sizeof(float), &bytes))
        return sola_errf(e, SOLA_ETOOBIG, "extra tensor %s is too large", name);
    sola_tensor t = {0};
    t.name = strdup(name);
    t.data = malloc(bytes ? bytes : 1);
    if (!t.name || !t.data) {
        free_extra(&t);
        return sola_errf(e, SOLA_ENOMEM, "extra tensor %s: out of memory", name);
    }
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t.shape[i] = shape[i];
    if (bytes)
        memcpy(t.data, data, bytes);
    for (int i = 0; i < m->nextra; i++)
        if (!strcmp(m->extra[i].name, name)) {
            free_extra(&m->extra[i]);
            m->extra[i] = t;
            return 0;
        }
    sola_tensor *x = realloc(m->extra, (size_t)(m->nextra + 1) * sizeof *x);
    if (!x) {
        free_extra(&t);
        return sola_errf(e, SOLA_ENOMEM, "extra tensor %s: out of memory", name);
    }
    m->extra = x;
    x[m->nextra++] = t;
    return 0;
}

size_t sola_tensor_numel(const sola_tensor *t)
{
    return tensor_numel(t->ndim, t->shape);
}

static const char *const param_names[] = {
    "conv_network.0.weight",       "conv_network.0.bias",         "conv_network.2.weight",
    "conv_network.2.bias",         "conv_network.4.weight",       "conv_network.4.bias",
    "alpha",                       "dissim_head.network.0.weight", "dissim_head.network.0.bias",
    "dissim_head.network.2.weight", "dissim_head.network.2.bias",
};

int sola_model_is_param_name(const char *name)
{
    for (size_t i = 0; i < sizeof param_names / sizeof param_names[0]; i++)
        if (!strcmp(param_names[i], name))
            return 1;
    return 0;
}
