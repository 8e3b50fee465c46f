/* synth.c -- the synthetic labelled dataset of `sola synth` (see synth.h): options,
 * directions, the simple generator and the files. The realistic generator is in
 * synth_real.c. */
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "npy.h"
#include "rng.h"
#include "synth_int.h"

void sola_synth_default_simple(sola_synth_opts *o)
{
    memset(o, 0, sizeof *o);
    o->simple = 1;
    o->videos = 64;
    o->C = 256;
    o->T = 200;
    o->seed = 0;
    o->classes = 4;
    o->noise = 0.4f;
    o->bg_level = 0.5f;
    o->video_offset = 0.5f;
    o->iso_noise = 0.05f;
    o->seg_min = 8;
    o->seg_max = 40;
    o->gap_min = 8;
    o->gap_max = 48;
}

void sola_synth_default(sola_synth_opts *o)
{
    sola_synth_default_simple(o);
    o->simple = 0;
    o->noise = 1.0f;
    o->video_offset = 1.5f;
    o->mean = 1.0f;
    o->noise_rank = 16;
    o->iso_noise = 0.5f;
    o->backgrounds = 3;
    o->style_rank = 8;
    o->ar = 0.7f;
    o->drift = 1.0f;
    o->blur = 4.0f;
    o->bias = -1.0f;
}

static int synth_check(const sola_synth_opts *o, sola_err *e)
{
    if (o->videos < 1 || o->C < 1 || o->T < 2 || o->classes < 1 || o->classes > 255)
        return sola_errf(e, SOLA_EINVAL,
                         "synth: need videos >= 1, dim >= 1, length >= 2, 1..255 classes");
    if (o->C > (1 << 20) || o->T > (1 << 24))
        return sola_errf(e, SOLA_EINVAL, "synth: dim %d or length %d is too large", o->C, o->T);
    if (o->seg_min < 1 || o->seg_max < o->seg_min || o->gap_min < 1 || o->gap_max < o->gap_min)
        return sola_errf(e, SOLA_EINVAL, "synth: segment/gap ranges must be 1 <= min <= max");
    if (!(o->noise >= 0) || !(o->bg_level >= 0) || !(o->video_offset >= 0) ||
        !(o->mean >= 0) || !(o->iso_noise >= 0))
        return sola_errf(e, SOLA_EINVAL,
                         "synth: noise, background, offset and mean must be >= 0");
    if (o->noise_rank < 0 || (o->simple && o->noise_rank > o->C))
        return sola_errf(e, SOLA_EINVAL, "synth: noise rank %d must be in 0..dim (%d)",
                         o->noise_rank, o->C);
    if (o->simple)
        return 0;
    if (o->backgrounds < 1 || o->backgrounds > 255)
        return sola_errf(e, SOLA_EINVAL, "synth: backgrounds %d must be in 1..255",
                         o->backgrounds);
    if (o->style_rank < 1 || o->style_rank > 1 << 20)
        return sola_errf(e, SOLA_EINVAL, "synth: style rank %d must be >= 1", o->style_rank);
    if (!(o->ar >= 0 && o->ar < 1))
        return sola_errf(e, SOLA_EINVAL, "synth: ar %g must be in [0, 1)", (double)o->ar);
    if (!(o->drift >= 0 && o->drift <= 6.3f) || !(o->blur >= 0 && o->blur <= 1000) ||
        !(o->bias >= -100 && o->bias <= 100))
        return sola_errf(e, SOLA_EINVAL, "synth: need 0 <= drift <= 6.3 (radians), "
                         "0 <= blur <= 1000, |bias| <= 100");
    return 0;
}

int sola_synth_ndirs(const sola_synth_opts *o)
{
    if (o->simple)
        return o->classes + 2 + o->noise_rank;
    return 2 * o->classes + o->backgrounds + 1 + sola__synth_rank(o, o->style_rank) +
           sola__synth_rank(o, o->noise_rank);
}

int sola__synth_rank(const sola_synth_opts *o, int rank)
{
    return rank < o->C ? rank : o->C;
}

static void synth_unit(sola_rng *r, float *u, int C)
{
    double n2 = 0;
    for (int c = 0; c < C; c++) {
        u[c] = (float)sola_rng_normal(r);
        n2 += (double)u[c] * u[c];
    }
    float s = n2 > 0 ? (float)(1.0 / sqrt(n2)) : 0.f;
    for (int c = 0; c < C; c++)
        u[c] *= s;
}

float *sola_synth_directions(const sola_synth_opts *o, sola_err *e)
{
    if (synth_check(o, e))
        return NULL;
    int nd = sola_synth_ndirs(o);
    size_t n = (size_t)nd * (size_t)o->C;
    float *d = malloc(n * sizeof *d);
    if (!d) {
        sola_errf(e, SOLA_ENOMEM, "synth: out of memory");
        return NULL;
    }
    sola_rng r;
    sola_rng_seed(&r, o->seed);
    for (int k = 0; k < nd; k++)
        synth_unit(&r, d + (size_t)k * o->C, o->C);
    /* A class's drift partner is made orthogonal to it, so that the direction turns
     * by exactly `drift` radians whatever C is. */
    for (int k = 0; !o->simple && k < o->classes && o->C > 1; k++) {
        const float *u = d + (size_t)k * o->C;
        float *v = d + (size_t)(o->classes + k) * o->C;
        double dot = 0, n2 = 0;
        for (int c = 0; c < o->C; c++)
            dot += (double)u[c] * v[c];
        for (int c = 0; c < o->C; c++) {
            v[c] -= (float)dot * u[c];
            n2 += (double)v[c] * v[c];
        }
        float s = n2 > 0 ? (float)(1.0 / sqrt(n2)) : 0.f;
        for (int c = 0; c < o->C; c++)
            v[c] *= s;
    }
    return d;
}

int sola__synth_int(sola_rng *r, int lo, int hi)
{
    return lo + (int)sola_rng_below(r, (uint64_t)(hi - lo + 1));
}

int sola_synth_video(const sola_synth_opts *o, const float *dirs, int i, float **xp,
                     uint8_t **lp, int *Tp, sola_err *e)
{
    *xp = NULL;
    *lp = NULL;
    int rc = synth_check(o, e);
    if (rc)
        return rc;
    if (!o->simple)
        return sola__synth_real_video(o, dirs, i, xp, lp, Tp, e);
    sola_rng r;
    /* Video i's stream depends on (seed, i) only; the odd multiplier keeps it apart
     * from the stream of the directions (seed alone). */
    sola_rng_seed(&r, o->seed ^ (0xd1b54a32d192ed03ull * (uint64_t)(i + 1)));
    int C = o->C, T = sola__synth_int(&r, o->T / 2 > 0 ? o->T / 2 : 1, o->T + o->T / 2);
    float *x = malloc((size_t)T * (size_t)C * sizeof *x);
    uint8_t *lab = calloc((size_t)T, 1);
    float *off = malloc((size_t)C * sizeof *off);
    if (!x || !lab || !off) {
        rc = sola_errf(e, SOLA_ENOMEM, "synth: out of memory for a video of %d x %d", T, C);
        goto err;
    }
    /* Segments: alternate gap, action, gap, action... from a random phase. */
    int t = sola__synth_int(&r, 0, o->gap_max);
    while (t < T) {
        int len = sola__synth_int(&r, o->seg_min, o->seg_max);
        int k = 1 + (int)sola_rng_below(&r, (uint64_t)o->classes);
        for (int s = t; s < t + len && s < T; s++)
            lab[s] = (uint8_t)k;
        t += len + sola__synth_int(&r, o->gap_min, o->gap_max);
    }
    synth_unit(&r, off, C);
    for (int c = 0; c < C; c++)
        off[c] *= o->video_offset;
    /* Amplitude jitter per segment so that classes are not one point each. */
    float amp = 1.f;
    const float *mean = dirs + (size_t)(o->classes + 1) * C;
    const float *basis = mean + C; /* noise_rank nuisance directions */
    for (int s = 0; s < T; s++) {
        if (lab[s] && (s == 0 || lab[s - 1] != lab[s]))
            amp = 0.75f + 0.5f * (float)sola_rng_uniform(&r);
        const float *u = dirs + (size_t)(lab[s] ? lab[s] - 1 : o->classes) * C;
        float a = lab[s] ? amp : o->bg_level;
        float *row = x + (size_t)s * C;
        for (int c = 0; c < C; c++)
            row[c] = a * u[c] + off[c] + o->mean * mean[c];
        if (o->noise_rank == 0) {
            for (int c = 0; c < C; c++)
                row[c] += o->noise * (float)sola_rng_normal(&r);
        } else {
            /* Snippet noise in a low-rank subspace: every class direction, the
             * background one and the nuisance directions, each with std `noise`. */
            for (int j = 0; j < o->classes + 1 + o->noise_rank; j++) {
                const float *b = j <= o->classes ? dirs + (size_t)j * C : basis + (size_t)(j - o->classes - 1) * C;
                float z = o->noise * (float)sola_rng_normal(&r);
                for (int c = 0; c < C; c++)
                    row[c] += z * b[c];
            }
            for (int c = 0; c < C && o->iso_noise > 0; c++)
                row[c] += o->iso_noise * (float)sola_rng_normal(&r);
        }
    }
    free(off);
    *xp = x;
    *lp = lab;
    *Tp = T;
    return 0;
err:
    free(x);
    free(lab);
    free(off);
    return rc;
}

static int encode_labels(const uint8_t *labels, int64_t T, void **bufp, size_t *lenp,
                         sola_err *e)
{
    unsigned char hdr[192];
    size_t hl = T < 0 ? 0 : sola_npy_header("|u1", 1, &T, hdr, sizeof hdr), total;
    if (!hl)
        return sola_errf(e, SOLA_EINVAL, "labels: bad length %lld", (long long)T);
    if (sola_add_size(hl, (size_t)T, &total))
        return sola_errf(e, SOLA_ETOOBIG, "labels: too long");
    unsigned char *b = malloc(total);
    if (!b)
        return sola_errf(e, SOLA_ENOMEM, "labels: out of memory");
    memcpy(b, hdr, hl);
    if (T)
        memcpy(b + hl, labels, (size_t)T);
    *bufp = b;
    *lenp = total;
    return 0;
}

int sola_synth_write(const char *dir, const sola_synth_opts *o,
                     void (*progress)(int done, int total, void *ud), void *ud, sola_err *e)
{
    int rc = synth_check(o, e);
    if (rc)
        return rc;
    char fdir[4096], ldir[4096], path[4200];
    if ((size_t)snprintf(fdir, sizeof fdir, "%s/features", dir) >= sizeof fdir ||
        (size_t)snprintf(ldir, sizeof ldir, "%s/labels", dir) >= sizeof ldir)
        return sola_errf(e, SOLA_EINVAL, "%s: path too long", dir);
    if ((rc = sola_mkdirs(fdir, 0755, e)) || (rc = sola_mkdirs(ldir, 0755, e)))
        return rc;
    float *dirs = sola_synth_directions(o, e);
    if (!dirs)
        return e ? e->code : SOLA_ENOMEM;
    int width = o->videos > 10000 ? 6 : 4;
    for (int i = 0; i < o->videos && !rc; i++) {
        float *x;
        uint8_t *lab;
        int T;
        if ((rc = sola_synth_video(o, dirs, i, &x, &lab, &T, e)))
            break;
        int64_t shape[2] = {T, o->C};
        snprintf(path, sizeof path, "%s/video_%0*d.npy", fdir, width, i);
        rc = sola_npy_save(path, x, 2, shape, e);
        if (!rc) {
            void *buf = NULL;
            size_t len = 0;
            snprintf(path, sizeof path, "%s/video_%0*d.npy", ldir, width, i);
            for (int t = 0; t < T; t++)
                lab[t] = lab[t] != 0; /* files say action or not; classes stay internal */
            rc = encode_labels(lab, T, &buf, &len, e);
            if (!rc) {
                rc = sola_write_atomic(path, buf, len, e);
                free(buf);
            }
        }
        free(x);
        free(lab);
        if (!rc && progress)
            progress(i + 1, o->videos, ud);
    }
    free(dirs);
    return rc;
}
