/* probe.c -- linear fg/bg probe (see probe.h). */
#include "probe.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "gemm.h"
#include "npy.h"
#include "refine.h"
#include "rng.h"

void sola_probe_default(sola_probe_opts *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = 16;
    o->batch = 256;
    o->lr = 0.01f;
    o->momentum = 0.9f;
    o->val_frac = 0.2f;
    o->radius = 2;
}

/* Scores of rows x [n, C] under W [2, C], b [2] into out [n, 2]. */
static void logits(const float *x, int n, int C, const float *W, const float *b, float *out)
{
    sola_sgemm(0, 1, n, 2, C, 1.f, x, C, W, C, 0.f, out, 2);
    for (int i = 0; i < n; i++) {
        out[2 * i] += b[0];
        out[2 * i + 1] += b[1];
    }
}

int sola_probe_fit(const float *x, const uint8_t *y, const uint8_t *is_val,
                   const uint8_t *boundary, long n, int C, const sola_probe_opts *o,
                   sola_probe_result *r, sola_err *e)
{
    memset(r, 0, sizeof *r);
    if (C < 1 || n < 1 || o->batch < 1 || o->epochs < 0 || !(o->lr > 0) || !(o->momentum >= 0))
        return sola_errf(e, SOLA_EINVAL, "probe: bad options (batch %d, epochs %d, lr %g)",
                         o->batch, o->epochs, (double)o->lr);
    long ntr = 0;
    for (long i = 0; i < n; i++)
        ntr += !is_val[i];
    if (ntr == 0 || ntr == n)
        return sola_errf(e, SOLA_EINVAL, "probe: need snippets on both the train (%ld) and "
                         "validation (%ld) side", ntr, n - ntr);
    int B = o->batch;
    size_t bc;
    if (sola_mul_size((size_t)B, (size_t)C, &bc))
        return sola_errf(e, SOLA_ETOOBIG, "probe: batch too large");
    long *idx = malloc((size_t)(ntr > B ? ntr : B) * sizeof *idx);
    float *xb = malloc(bc * sizeof *xb);
    float *lg = malloc((size_t)B * 2 * sizeof *lg);
    float *par = calloc((size_t)4 * C + 4, sizeof *par); /* W, b, their momenta */
    float *gW = malloc((size_t)2 * C * sizeof *gW);
    if (!idx || !xb || !lg || !par || !gW) {
        free(idx), free(xb), free(lg), free(par), free(gW);
        return sola_errf(e, SOLA_ENOMEM, "probe: out of memory");
    }
    float *W = par, *b = par + 2 * C, *vW = b + 2, *vb = vW + 2 * C;

    sola_rng rng;
    sola_rng_seed(&rng, o->seed ^ 0x70726f6265ull); /* "probe": apart from the split's */
    float bound = 1.f / sqrtf((float)C); /* nn.Linear's default init */
    for (int i = 0; i < 2 * C + 2; i++)
        par[i] = (float)((2 * sola_rng_uniform(&rng) - 1) * bound);

    ntr = 0;
    for (long i = 0; i < n; i++)
        if (!is_val[i])
            idx[ntr++] = i;
    for (int ep = 0; ep < o->epochs; ep++) {
        for (long i = ntr - 1; i > 0; i--) {
            long j = (long)sola_rng_below(&rng, (uint64_t)i + 1), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        double lsum = 0;
        for (long s = 0; s < ntr; s += B) {
            int nb = (int)(ntr - s < B ? ntr - s : B);
            for (int k = 0; k < nb; k++)
                memcpy(xb + (size_t)k * C, x + (size_t)idx[s + k] * C, (size_t)C * sizeof *xb);
            logits(xb, nb, C, W, b, lg);
            float gb0 = 0, gb1 = 0;
            for (int k = 0; k < nb; k++) {
                /* softmax cross-entropy; lg becomes d loss / d logits */
                float l0 = lg[2 * k], l1 = lg[2 * k + 1], m = l0 > l1 ? l0 : l1;
                float e0 = expf(l0 - m), e1 = expf(l1 - m), z = e0 + e1;
                int yk = y[idx[s + k]] != 0;
                lsum += -((yk ? l1 : l0) - m - logf(z));
                lg[2 * k] = (e0 / z - (yk == 0)) / nb;
                lg[2 * k + 1] = (e1 / z - (yk == 1)) / nb;
                gb0 += lg[2 * k];
                gb1 += lg[2 * k + 1];
            }
            sola_sgemm(1, 0, 2, C, nb, 1.f, lg, 2, xb, C, 0.f, gW, C);
            for (int i = 0; i < 2 * C; i++) {
                vW[i] = o->momentum * vW[i] + gW[i];
                W[i] -= o->lr * vW[i];
            }
            vb[0] = o->momentum * vb[0] + gb0;
            vb[1] = o->momentum * vb[1] + gb1;
            b[0] -= o->lr * vb[0];
            b[1] -= o->lr * vb[1];
        }
        r->train_loss = lsum / (double)ntr;
        if (o->progress)
            o->progress(ep + 1, o->epochs, r->train_loss, o->ud);
    }

    /* Validation, in chunks of the batch buffer; idx now holds the rows of a chunk. */
    long correct = 0, cfg = 0, cbg = 0, nbnd = 0, cbnd = 0;
    int pending = 0;
    for (long i = 0; i <= n; i++) {
        if (i < n) {
            if (y[i] && is_val[i])
                r->val_fg++;
            else if (y[i])
                r->train_fg++;
            if (!is_val[i])
                continue;
            r->val_n++;
            idx[pending] = i;
            memcpy(xb + (size_t)pending * C, x + (size_t)i * C, (size_t)C * sizeof *xb);
            pending++;
        }
        if (pending == B || (i == n && pending)) {
            logits(xb, pending, C, W, b, lg);
            for (int k = 0; k < pending; k++) {
                long row = idx[k];
                int truth = y[row] != 0, ok = (lg[2 * k + 1] > lg[2 * k]) == truth;
                correct += ok;
                if (truth)
                    cfg += ok;
                else
                    cbg += ok;
                if (boundary && boundary[row]) {
                    nbnd++;
                    cbnd += ok;
                }
            }
            pending = 0;
        }
    }
    r->train_n = n - r->val_n;
    long vbg = r->val_n - r->val_fg;
    r->accuracy = (double)correct / (double)r->val_n;
    r->acc_fg = r->val_fg ? (double)cfg / (double)r->val_fg : NAN;
    r->acc_bg = vbg ? (double)cbg / (double)vbg : NAN;
    r->boundary_n = nbnd;
    r->boundary_accuracy = nbnd ? (double)cbnd / (double)nbnd : NAN;
    r->majority = (double)(r->val_fg > vbg ? r->val_fg : vbg) / (double)r->val_n;
    free(idx), free(xb), free(lg), free(par), free(gW);
    return 0;
}

/* Label vector of one item: [T] or [T, 1], nonzero = action, into lab[0..T). */
static int load_labels(const char *path, const char *feat, int64_t T, uint8_t *lab,
                       sola_err *e)
{
    sola_array a;
    int rc = sola_npy_load(path, SOLA_NPY_LABELS, &a, e);
    if (rc)
        return rc;
    int64_t n = a.ndim >= 1 ? a.shape[0] : 0;
    if (!(a.ndim == 1 || (a.ndim == 2 && a.shape[1] == 1)) || n != T) {
        char shp[96] = "";
        size_t k = 0;
        for (int i = 0; i < a.ndim && k < sizeof shp - 24; i++)
            k += (size_t)snprintf(shp + k, sizeof shp - k, "%s%lld", i ? ", " : "",
                                  (long long)a.shape[i]);
        rc = sola_errf(e, SOLA_ESHAPE,
                       "%s: expected %lld labels (shape (%lld,)), one per snippet of %s; "
                       "got shape (%s)",
                       path, (long long)T, (long long)T, feat, shp);
    } else {
        for (int64_t t = 0; t < T; t++)
            lab[t] = a.data[t] != 0;
    }
    sola_array_free(&a);
    return rc;
}

/* x [T, C] rows scaled to unit L2 norm, eps 1e-12 as F.normalize. */
static void l2_rows(float *x, int64_t T, int C)
{
    for (int64_t t = 0; t < T; t++) {
        float *row = x + (size_t)t * C;
        double s = 0;
        for (int c = 0; c < C; c++)
            s += (double)row[c] * row[c];
        double nrm = sqrt(s);
        float inv = (float)(1.0 / (nrm > 1e-12 ? nrm : 1e-12));
        for (int c = 0; c < C; c++)
            row[c] *= inv;
    }
}

/* The labelled set in memory: the raw features of the videos taking part, their
 * labels, validation flags and boundary marks, and where each video's rows start. */
typedef struct pset {
    sola_dataset *d;
    int C, nu, nval;
    int *use;     /* [nu] dataset index of each video taking part */
    size_t N;     /* snippets */
    size_t *row0; /* [nu + 1] first row of each video */
    float *raw;   /* [N, C] as read */
    uint8_t *y, *isval, *bnd;
} pset;

static void pset_free(pset *s)
{
    free(s->use), free(s->row0), free(s->raw), free(s->y), free(s->isval), free(s->bnd);
    sola_dataset_free(s->d);
    memset(s, 0, sizeof *s);
}

static int pset_load(const char *features_dir, const char *labels_dir,
                     const sola_probe_opts *o, pset *s, sola_err *e)
{
    memset(s, 0, sizeof *s);
    if (!(o->val_frac > 0 && o->val_frac < 1))
        return sola_errf(e, SOLA_EINVAL, "probe: validation fraction %g must be in (0, 1)",
                         (double)o->val_frac);
    int rc = sola_dataset_open_ex(features_dir, o->dataset, &s->d, e);
    if (rc)
        return rc;
    sola_dataset *d = s->d;
    s->C = d->C;
    int *perm = NULL;
    uint8_t *vflag = NULL;
    sola_array feat = {0};
    size_t nx;
    /* The videos taking part: all, or those the label source knows (a subset). */
    if (!(s->use = malloc(((size_t)d->n + 1) * sizeof *s->use)) ||
        !(s->row0 = malloc(((size_t)d->n + 2) * sizeof *s->row0))) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", d->dir);
        goto out;
    }
    for (int i = 0; i < d->n; i++) {
        int r = o->labels ? o->labels(o->labels_ud, d->items[i].name, d->items[i].T, NULL, e) : 0;
        if (r < 0) {
            rc = r;
            goto out;
        }
        if (r == 0) {
            s->row0[s->nu] = s->N;
            s->use[s->nu++] = i;
            s->N += (size_t)d->items[i].T;
        }
    }
    s->row0[s->nu] = s->N;
    if (s->nu < 2) {
        rc = sola_errf(e, SOLA_EINVAL, "%s: the probe needs at least 2 labelled videos (1 to "
                       "train, 1 to validate), found %d", d->dir, s->nu);
        goto out;
    }
    if (o->model && o->model->C != d->C) {
        rc = sola_errf(e, SOLA_ESHAPE, "%s: features have C=%d but the model expects C=%d",
                       d->dir, d->C, o->model->C);
        goto out;
    }
    size_t N = s->N;
    if (sola_mul_size(N, (size_t)d->C, &nx) || sola_mul_size(nx, sizeof(float), &nx)) {
        rc = sola_errf(e, SOLA_ETOOBIG, "%s: too many snippets for the probe", d->dir);
        goto out;
    }
    s->raw = malloc(nx ? nx : 1);
    s->y = malloc(N ? N : 1);
    s->isval = malloc(N ? N : 1);
    s->bnd = malloc(N ? N : 1);
    perm = malloc((size_t)s->nu * sizeof *perm);
    vflag = calloc((size_t)s->nu, 1);
    if (!s->raw || !s->y || !s->isval || !s->bnd || !perm || !vflag) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory for %zu snippets", d->dir, N);
        goto out;
    }
    /* Split videos: a seeded shuffle, the first n_val are validation. */
    sola_rng rng;
    sola_rng_seed(&rng, o->seed);
    for (int i = 0; i < s->nu; i++)
        perm[i] = i;
    for (int i = s->nu - 1; i > 0; i--) {
        int j = (int)sola_rng_below(&rng, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int nval = (int)lround(s->nu * (double)o->val_frac);
    s->nval = nval < 1 ? 1 : nval > s->nu - 1 ? s->nu - 1 : nval;
    for (int i = 0; i < s->nval; i++)
        vflag[perm[i]] = 1;

    char lpath[4200], fpath[4096];
    for (int k = 0; k < s->nu && !rc; k++) {
        int i = s->use[k];
        int64_t T = d->items[i].T;
        size_t row = s->row0[k];
        sola_dataset_path(d, i, fpath, sizeof fpath);
        if ((size_t)snprintf(lpath, sizeof lpath, "%s/%s.npy", labels_dir, d->items[i].name) >=
            sizeof lpath) {
            rc = sola_errf(e, SOLA_EINVAL, "%s: path too long", labels_dir);
            break;
        }
        if (o->labels ? (rc = o->labels(o->labels_ud, d->items[i].name, T, s->y + row, e)) != 0
                      : (rc = load_labels(lpath, fpath, T, s->y + row, e)) != 0)
            break;
        if ((rc = sola_dataset_load(d, i, &feat, e)))
            break;
        memcpy(s->raw + row * (size_t)d->C, feat.data, (size_t)T * (size_t)d->C * sizeof(float));
        sola_array_free(&feat);
        for (int64_t t = 0; t < T; t++) {
            const uint8_t *l = s->y + row;
            int b = 0;
            for (int64_t u = t - o->radius; u <= t + o->radius && !b; u++)
                b = u >= 0 && u < T && l[u] != l[t];
            s->bnd[row + t] = (uint8_t)b;
            s->isval[row + t] = vflag[k];
        }
    }
out:
    sola_array_free(&feat);
    free(perm), free(vflag);
    if (rc)
        pset_free(s);
    return rc;
}

int sola_moving_average(const float *x, int64_t T, int C, int k, float *out)
{
    double *acc = malloc((size_t)(C > 0 ? C : 1) * sizeof *acc);
    if (!acc)
        return SOLA_ENOMEM;
    int h = (k > 1 ? k : 1) / 2;
    for (int c = 0; c < C; c++)
        acc[c] = 0;
    int64_t lo = 0, hi = 0; /* acc sums rows [lo, hi) */
    for (int64_t t = 0; t < T; t++) {
        int64_t a = t - h > 0 ? t - h : 0, b = t + h + 1 < T ? t + h + 1 : T;
        for (; hi < b; hi++)
            for (int c = 0; c < C; c++)
                acc[c] += x[hi * C + c];
        for (; lo < a; lo++)
            for (int c = 0; c < C; c++)
                acc[c] -= x[lo * C + c];
        double inv = 1.0 / (double)(b - a);
        for (int c = 0; c < C; c++)
            out[t * C + c] = (float)(acc[c] * inv);
    }
    free(acc);
    return 0;
}

/* x [N, C] = the features the probe sees: raw, refined by m, then smoothed over
 * `smooth` snippets (<= 1: not), rows L2-normalised. */
static int pset_variant(const pset *s, const sola_model *m, int smooth, float *x, sola_err *e)
{
    const int C = s->C;
    sola_ws *ws = m ? sola_ws_new() : NULL;
    float *tmp = NULL;
    int rc = 0;
    if (m && !ws)
        rc = sola_errf(e, SOLA_ENOMEM, "probe: out of memory");
    for (int k = 0; k < s->nu && !rc; k++) {
        size_t r0 = s->row0[k];
        int64_t T = (int64_t)(s->row0[k + 1] - r0);
        const float *src = s->raw + r0 * (size_t)C;
        float *dst = x + r0 * (size_t)C;
        if (m && T > INT_MAX) {
            char fpath[4096];
            sola_dataset_path(s->d, s->use[k], fpath, sizeof fpath);
            rc = sola_errf(e, SOLA_ETOOBIG, "%s: %lld snippets is too long to refine in one pass",
                           fpath, (long long)T);
        } else if (m && T > 0) {
            rc = sola_refine(m, src, (int)T, dst, ws, e);
        } else {
            memcpy(dst, src, (size_t)T * (size_t)C * sizeof *dst);
        }
        if (!rc && smooth > 1 && T > 1) {
            free(tmp);
            if (!(tmp = malloc((size_t)T * (size_t)C * sizeof *tmp))) {
                rc = sola_errf(e, SOLA_ENOMEM, "probe: out of memory");
                break;
            }
            memcpy(tmp, dst, (size_t)T * (size_t)C * sizeof *tmp);
            if (sola_moving_average(tmp, T, C, smooth, dst))
                rc = sola_errf(e, SOLA_ENOMEM, "probe: out of memory");
        }
        if (!rc)
            l2_rows(dst, T, C);
    }
    free(tmp);
    sola_ws_free(ws);
    return rc;
}

static int pset_fit(const pset *s, const sola_model *m, int smooth, float *x,
                    const sola_probe_opts *o, sola_probe_result *r, sola_err *e)
{
    int rc = pset_variant(s, m, smooth, x, e);
    if (!rc)
        rc = sola_probe_fit(x, s->y, s->isval, s->bnd, (long)s->N, s->C, o, r, e);
    if (!rc) {
        r->videos_val = s->nval;
        r->videos_train = s->nu - s->nval;
    }
    return rc;
}

int sola_probe_run(const char *features_dir, const char *labels_dir,
                   const sola_probe_opts *o, sola_probe_result *r, sola_err *e)
{
    memset(r, 0, sizeof *r);
    pset s;
    int rc = pset_load(features_dir, labels_dir, o, &s, e);
    if (rc)
        return rc;
    float *x = malloc(s.N * (size_t)s.C * sizeof *x + 1);
    rc = x ? pset_fit(&s, o->model, o->smooth, x, o, r, e)
           : sola_errf(e, SOLA_ENOMEM, "probe: out of memory for %zu snippets", s.N);
    free(x);
    pset_free(&s);
    return rc;
}

typedef struct fitprog {
    const sola_probe_opts *o;
    int fit, nfits;
} fitprog;

static void fit_progress(int epoch, int epochs, double loss, void *ud)
{
    const fitprog *f = ud;
    f->o->progress(f->fit * epochs + epoch, f->nfits * epochs, loss, f->o->ud);
}

int sola_probe_compare(const char *features_dir, const char *labels_dir,
                       const sola_probe_opts *o, const int *ks, int nk,
                       sola_probe_report *rep, sola_err *e)
{
    memset(rep, 0, sizeof *rep);
    if (nk < 0 || nk > SOLA_PROBE_MAX_SMOOTH)
        return sola_errf(e, SOLA_EINVAL, "probe: %d moving averages (at most %d)", nk,
                         SOLA_PROBE_MAX_SMOOTH);
    for (int i = 0; i < nk; i++)
        if (ks[i] < 2 || ks[i] > 1000)
            return sola_errf(e, SOLA_EINVAL, "probe: moving average width %d must be in 2..1000",
                             ks[i]);
    pset s;
    int rc = pset_load(features_dir, labels_dir, o, &s, e);
    if (rc)
        return rc;
    float *x = malloc(s.N * (size_t)s.C * sizeof *x + 1);
    if (!x) {
        pset_free(&s);
        return sola_errf(e, SOLA_ENOMEM, "probe: out of memory for %zu snippets", s.N);
    }
    sola_probe_opts oo = *o;
    fitprog fp = {o, 0, 1 + nk + (o->model != NULL)};
    if (o->progress) {
        oo.progress = fit_progress;
        oo.ud = &fp;
    }
    rc = pset_fit(&s, NULL, 0, x, &oo, &rep->raw, e);
    rep->best = -1;
    for (int i = 0; i < nk && !rc; i++) {
        fp.fit++;
        rep->smooth_k[i] = ks[i];
        rc = pset_fit(&s, NULL, ks[i], x, &oo, &rep->smooth[i], e);
        if (!rc && (rep->best < 0 || rep->smooth[i].accuracy > rep->smooth[rep->best].accuracy))
            rep->best = i;
    }
    rep->nsmooth = rc ? 0 : nk;
    if (!rc && o->model) {
        fp.fit++;
        rc = pset_fit(&s, o->model, 0, x, &oo, &rep->model, e);
        rep->has_model = !rc;
    }
    free(x);
    pset_free(&s);
    return rc;
}
