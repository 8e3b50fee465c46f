/* collapse.c -- the collapse guard's two numbers (collapse.h). */
#include "collapse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

int sola_collapse_measure(const float *x, const float *refined, size_t n, int C,
                          sola_collapse_stats *s)
{
    memset(s, 0, sizeof *s);
    if (n == 0 || C < 1)
        return 0;
    double *mean = calloc((size_t)C, sizeof *mean);
    if (!mean)
        return SOLA_ENOMEM;
    double nx = 0, nd = 0, e2 = 0;
    for (size_t t = 0; t < n; t++) {
        const float *a = x + t * (size_t)C, *b = refined + t * (size_t)C;
        double sx = 0, sd = 0;
        for (int c = 0; c < C; c++) {
            double d = (double)b[c] - a[c];
            sx += (double)a[c] * a[c];
            sd += d * d;
            mean[c] += d;
        }
        nx += sqrt(sx);
        nd += sqrt(sd);
        e2 += sd;
    }
    double m2 = 0;
    for (int c = 0; c < C; c++)
        m2 += (mean[c] / (double)n) * (mean[c] / (double)n);
    free(mean);
    s->input_norm = nx / (double)n;
    s->refine_norm = nd / (double)n;
    s->norm_ratio = s->refine_norm / (s->input_norm + 1e-8);
    s->const_norm = sqrt(m2);
    s->const_share = e2 > 0 ? m2 / (e2 / (double)n) : 0;
    if (s->const_share > 1)
        s->const_share = 1; /* rounding */
    return 0;
}

int sola_collapse_fires(const sola_collapse_stats *s, double max_ratio, double max_share)
{
    return s->norm_ratio > max_ratio && s->const_share > max_share;
}
