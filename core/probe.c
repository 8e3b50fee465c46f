/* probe.c -- linear fg/bg probe (see probe.h). */
#include "probe.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
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
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, 2, C, 1.f, x, C, W, C, 0.f, out, 2);
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
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 2, C, nb, 1.f, lg, 2, xb, C,
                        0.f, gW, C);
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

int sola_probe_run(const char *features_dir, const char *labels_dir,
                   const sola_probe_opts *o, sola_probe_result *r, sola_err *e)
{
    memset(r, 0, sizeof *r);
    if (!(o->val_frac > 0 && o->val_frac < 1))
        return sola_errf(e, SOLA_EINVAL, "probe: validation fraction %g must be in (0, 1)",
                         (double)o->val_frac);
    sola_dataset *d = NULL;
    int rc = sola_dataset_open_ex(features_dir, o->dataset, &d, e);
    if (rc)
        return rc;
    float *x = NULL;
    uint8_t *y = NULL, *isval = NULL, *bnd = NULL;
    int *perm = NULL, *use = NULL, nu = 0;
    sola_ws *ws = NULL;
    sola_array feat = {0};
    /* The videos taking part: all, or those the label source knows (a subset). */
    size_t N = 0, nx;
    if (!(use = malloc(((size_t)d->n + 1) * sizeof *use))) {
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
            use[nu++] = i;
            N += (size_t)d->items[i].T;
        }
    }
    if (nu < 2) {
        rc = sola_errf(e, SOLA_EINVAL, "%s: the probe needs at least 2 labelled videos (1 to "
                       "train, 1 to validate), found %d", d->dir, nu);
        goto out;
    }
    if (o->model && o->model->C != d->C) {
        rc = sola_errf(e, SOLA_ESHAPE, "%s: features have C=%d but the model expects C=%d",
                       d->dir, d->C, o->model->C);
        goto out;
    }
    if (sola_mul_size(N, (size_t)d->C, &nx) || sola_mul_size(nx, sizeof(float), &nx)) {
        rc = sola_errf(e, SOLA_ETOOBIG, "%s: too many snippets for the probe", d->dir);
        goto out;
    }
    x = malloc(nx ? nx : 1);
    y = malloc(N ? N : 1);
    isval = malloc(N ? N : 1);
    bnd = malloc(N ? N : 1);
    perm = malloc((size_t)nu * sizeof *perm);
    if (!x || !y || !isval || !bnd || !perm || (o->model && !(ws = sola_ws_new()))) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory for %zu snippets", d->dir, N);
        goto out;
    }
    /* Split videos: a seeded shuffle, the first n_val are validation. */
    sola_rng rng;
    sola_rng_seed(&rng, o->seed);
    for (int i = 0; i < nu; i++)
        perm[i] = i;
    for (int i = nu - 1; i > 0; i--) {
        int j = (int)sola_rng_below(&rng, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int nval = (int)lround(nu * (double)o->val_frac);
    nval = nval < 1 ? 1 : nval > nu - 1 ? nu - 1 : nval;
    uint8_t *vflag = calloc((size_t)nu, 1);
    if (!vflag) {
        rc = sola_errf(e, SOLA_ENOMEM, "probe: out of memory");
        goto out;
    }
    for (int i = 0; i < nval; i++)
        vflag[perm[i]] = 1;

    size_t row = 0;
    char lpath[4200], fpath[4096];
    for (int k = 0; k < nu && !rc; k++) {
        int i = use[k];
        int64_t T = d->items[i].T;
        sola_dataset_path(d, i, fpath, sizeof fpath);
        if ((size_t)snprintf(lpath, sizeof lpath, "%s/%s.npy", labels_dir, d->items[i].name) >=
            sizeof lpath) {
            rc = sola_errf(e, SOLA_EINVAL, "%s: path too long", labels_dir);
            break;
        }
        if (o->labels ? (rc = o->labels(o->labels_ud, d->items[i].name, T, y + row, e)) != 0
                      : (rc = load_labels(lpath, fpath, T, y + row, e)) != 0)
            break;
        if ((rc = sola_dataset_load(d, i, &feat, e)))
            break;
        float *dst = x + row * (size_t)d->C;
        if (o->model && T > INT_MAX) {
            rc = sola_errf(e, SOLA_ETOOBIG, "%s: %lld snippets is too long to refine in one pass",
                           fpath, (long long)T);
        } else if (o->model && T > 0) {
            rc = sola_refine(o->model, feat.data, (int)T, dst, ws, e);
        } else {
            memcpy(dst, feat.data, (size_t)T * (size_t)d->C * sizeof *dst);
        }
        sola_array_free(&feat);
        if (rc)
            break;
        l2_rows(dst, T, d->C);
        for (int64_t t = 0; t < T; t++) {
            const uint8_t *l = y + row;
            int b = 0;
            for (int64_t s = t - o->radius; s <= t + o->radius && !b; s++)
                b = s >= 0 && s < T && l[s] != l[t];
            bnd[row + t] = (uint8_t)b;
            isval[row + t] = vflag[k];
        }
        row += (size_t)T;
    }
    free(vflag);
    if (rc)
        goto out;
    rc = sola_probe_fit(x, y, isval, bnd, (long)N, d->C, o, r, e);
    if (!rc) {
        r->videos_val = nval;
        r->videos_train = nu - nval;
    }
out:
    sola_array_free(&feat);
    sola_ws_free(ws);
    free(x), free(y), free(isval), free(bnd), free(perm), free(use);
    sola_dataset_free(d);
    return rc;
}
