/* synth_real.c -- the realistic generator of `sola synth` (the default; synth.h has
 * the model). Kept apart from the simple one, whose bytes must not change. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "synth.h"
#include "synth_int.h"

typedef struct seg {
    int s0, s1, k; /* [s0, s1), class 0..classes-1 */
    float amp;
} seg;

/* softplus without overflow; > 0 for every finite argument above about -745 */
static double softplus(double v)
{
    return v > 30 ? v : log1p(exp(v));
}

/* near[t]: the index (in idx[]) of the nearest snippet s with idx[s] >= 0, by
 * distance |s - t|, earlier on a tie; -1 if there is none. */
static void nearest(const int *idx, int T, int *near)
{
    int last = -1;
    for (int t = 0; t < T; t++) {
        if (idx[t] >= 0)
            last = t;
        near[t] = last;
    }
    int next = -1;
    for (int t = T - 1; t >= 0; t--) {
        if (idx[t] >= 0)
            next = t;
        if (next >= 0 && (near[t] < 0 || next - t < t - near[t]))
            near[t] = next;
    }
    for (int t = 0; t < T; t++)
        near[t] = near[t] >= 0 ? idx[near[t]] : -1;
}

int sola__synth_real_video(const sola_synth_opts *o, const float *dirs, int i, float **xp,
                           uint8_t **lp, int *Tp, sola_err *e)
{
    sola_rng r;
    /* the same per-video stream as the simple generator: (seed, i) only */
    sola_rng_seed(&r, o->seed ^ (0xd1b54a32d192ed03ull * (uint64_t)(i + 1)));
    const int C = o->C, K = o->classes, R = sola__synth_rank(o, o->noise_rank);
    const int S = sola__synth_rank(o, o->style_rank);
    const int T = sola__synth_int(&r, o->T / 2 > 0 ? o->T / 2 : 1, o->T + o->T / 2);
    float *x = malloc((size_t)T * (size_t)C * sizeof *x);
    uint8_t *lab = calloc((size_t)T, 1);
    double *p = malloc((size_t)C * sizeof *p);
    float *style = calloc((size_t)C, sizeof *style);
    float *z = calloc((size_t)R + 1, sizeof *z);
    seg *segs = malloc((size_t)T * sizeof *segs);
    int *segid = malloc((size_t)T * sizeof *segid), *kind = malloc((size_t)T * sizeof *kind);
    int *nseg = malloc((size_t)T * sizeof *nseg), *nkind = malloc((size_t)T * sizeof *nkind);
    float *w = malloc((size_t)T * sizeof *w);
    int rc = 0;
    if (!x || !lab || !p || !style || !z || !segs || !segid || !kind || !nseg || !nkind || !w) {
        rc = sola_errf(e, SOLA_ENOMEM, "synth: out of memory for a video of %d x %d", T, C);
        goto out;
    }
    /* Segments and gaps: a gap from a random phase, then action, gap, action...;
     * each segment has a class and an amplitude, each gap a kind of background. */
    int nsegs = 0, t = sola__synth_int(&r, 0, o->gap_max);
    int k0 = (int)sola_rng_below(&r, (uint64_t)o->backgrounds);
    for (int s = 0; s < t && s < T; s++)
        segid[s] = -1, kind[s] = k0;
    while (t < T) {
        seg g = {t, t + sola__synth_int(&r, o->seg_min, o->seg_max), 0, 0};
        g.k = (int)sola_rng_below(&r, (uint64_t)K);
        g.amp = 0.75f + 0.5f * (float)sola_rng_uniform(&r);
        g.s1 = g.s1 < T ? g.s1 : T;
        int gap = sola__synth_int(&r, o->gap_min, o->gap_max);
        int kb = (int)sola_rng_below(&r, (uint64_t)o->backgrounds);
        for (int s = g.s0; s < g.s1; s++)
            segid[s] = nsegs, kind[s] = -1, lab[s] = (uint8_t)(g.k + 1);
        for (int s = g.s1; s < g.s1 + gap && s < T; s++)
            segid[s] = -1, kind[s] = kb;
        segs[nsegs++] = g;
        t = g.s1 + gap;
    }
    nearest(segid, T, nseg);
    nearest(kind, T, nkind);
    /* Action weight: a linear ramp over `blur` snippets centred on each boundary
     * (half-way between the last snippet of one side and the first of the other). */
    const int dmax = (int)(o->blur / 2) + 2; /* beyond it the ramp is flat */
    for (int s = 0; s < T; s++) {
        int d = 1, fg = lab[s] != 0;
        while (d <= dmax && (s - d < 0 || (lab[s - d] != 0) == fg) &&
               (s + d >= T || (lab[s + d] != 0) == fg))
            d++;
        double v = fg;
        if (o->blur > 0 && d <= dmax)
            v = fg ? 0.5 + (d - 0.5) / o->blur : 0.5 - (d - 0.5) / o->blur;
        w[s] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
    }
    /* The video's style: a random mix of the style directions, norm video_offset. */
    const float *drift = dirs + (size_t)K * C, *bgd = drift + (size_t)K * C;
    const float *mean = bgd + (size_t)o->backgrounds * C, *sbasis = mean + C;
    const float *nbasis = sbasis + (size_t)S * C;
    double n2 = 0;
    for (int j = 0; j < S; j++) {
        float g = (float)sola_rng_normal(&r);
        for (int c = 0; c < C; c++)
            style[c] += g * sbasis[(size_t)j * C + c];
    }
    for (int c = 0; c < C; c++)
        n2 += (double)style[c] * style[c];
    for (int c = 0; c < C; c++)
        style[c] *= n2 > 0 ? (float)(o->video_offset / sqrt(n2)) : 0.f;
    for (int j = 0; j < R; j++)
        z[j] = o->noise * (float)sola_rng_normal(&r); /* stationary start */
    const float innov = sqrtf(1.f - o->ar * o->ar), iso = o->iso_noise / sqrtf((float)C);
    const double gain = sqrt((double)C);
    for (int s = 0; s < T; s++) {
        for (int c = 0; c < C; c++)
            p[c] = (double)style[c] + (double)o->mean * mean[c];
        if (w[s] > 0 && nseg[s] >= 0) {
            const seg *g = &segs[nseg[s]];
            double f = g->s1 - g->s0 > 1 ? (double)(s - g->s0) / (g->s1 - g->s0 - 1) : 0.5;
            f = f < 0 ? 0 : f > 1 ? 1 : f;
            double th = o->drift * (f - 0.5), a = (double)w[s] * g->amp;
            double ca = a * cos(th), sa = a * sin(th);
            const float *u = dirs + (size_t)g->k * C, *v = drift + (size_t)g->k * C;
            for (int c = 0; c < C; c++)
                p[c] += ca * u[c] + sa * v[c];
        }
        if (w[s] < 1 && nkind[s] >= 0) {
            const float *b = bgd + (size_t)nkind[s] * C;
            double a = (1.0 - w[s]) * o->bg_level;
            for (int c = 0; c < C; c++)
                p[c] += a * b[c];
        }
        for (int j = 0; j < R; j++) {
            z[j] = o->ar * z[j] + innov * o->noise * (float)sola_rng_normal(&r);
            const float *b = nbasis + (size_t)j * C;
            for (int c = 0; c < C; c++)
                p[c] += (double)z[j] * b[c];
        }
        float *row = x + (size_t)s * C;
        for (int c = 0; c < C; c++) {
            double v = p[c] + (iso > 0 ? iso * sola_rng_normal(&r) : 0.0);
            row[c] = (float)(softplus(gain * v + o->bias) / gain);
        }
    }
out:
    free(p), free(style), free(z), free(segs), free(segid), free(kind), free(nseg);
    free(nkind), free(w);
    if (rc) {
        free(x), free(lab);
        return rc;
    }
    *xp = x;
    *lp = lab;
    *Tp = T;
    return 0;
}
