/* collapse.h -- the trainer's collapse guard: how much, and how uniformly, the module
 * changes the features it refines.
 *
 * On data whose snippets are alike (non-negative features with a large common part,
 * the kind frozen video encoders give) the `sola` objective can be lowered by adding
 * one large vector to every snippet: all cosines rise towards the targets, the loss
 * keeps falling, and the refined features lose what told snippets apart (measured:
 * docs/training.md). Two numbers show it, over n snippets with inputs x_t and
 * refinements d_t = refine(x_t) - x_t = tanh(alpha) h(x_t):
 *   norm_ratio  = mean_t |d_t| / mean_t |x_t|   (the authors' `vector_norm_ratio`:
 *                 how large the refinement is next to the features)
 *   const_share = |mean_t d_t|^2 / mean_t |d_t|^2   (in [0, 1]: the share of the
 *                 refinement's energy that is one constant vector across snippets;
 *                 1 when every snippet gets the same vector added)
 * The guard fires when both pass their thresholds (SOLA_COLLAPSE_RATIO and
 * SOLA_COLLAPSE_SHARE by default): a refinement larger than the features that is
 * mostly one vector. */
#ifndef SOLA_COLLAPSE_H
#define SOLA_COLLAPSE_H

#include <stddef.h>

#define SOLA_COLLAPSE_RATIO 1.0
#define SOLA_COLLAPSE_SHARE 0.5

typedef struct sola_collapse_stats {
    double norm_ratio;  /* mean |d| / mean |x| */
    double const_share; /* |mean d|^2 / mean |d|^2, 0 when d = 0 */
    double input_norm;  /* mean |x| */
    double refine_norm; /* mean |d| */
    double const_norm;  /* |mean d| */
} sola_collapse_stats;

/* x and refined: n rows of C floats each (row-major). 0, or SOLA_ENOMEM (s zeroed). */
int sola_collapse_measure(const float *x, const float *refined, size_t n, int C,
                          sola_collapse_stats *s);

/* 1 when s passes both thresholds (ratio > max_ratio and share > max_share). */
int sola_collapse_fires(const sola_collapse_stats *s, double max_ratio, double max_share);

#endif
