/* synth.h -- a synthetic feature dataset with foreground/background labels.
 *
 * It exists to show, on data anyone can regenerate, what SoLa is for: per-snippet
 * features that carry the action only weakly (strong independent noise per snippet)
 * become more separable once temporal context is mixed in. Each video is
 *   x_t = a_t * u_{class(t)} + v + noise_t
 * where u_k are fixed random unit directions (one per action class, one for the
 * background), a_t is the action amplitude inside a segment (jittered per segment) or
 * the weaker background amplitude elsewhere, v a per-video offset (the "scene", the
 * same for every snippet of the video) and noise_t i.i.d. Gaussian with per-channel
 * standard deviation `noise` (so its projection on any direction has that std).
 * Lengths vary uniformly in [T/2, 3T/2]; action segments and the gaps between them
 * have random lengths in the given ranges.
 *
 * With noise_rank = k > 0 the snippet noise is not isotropic but lies along the class
 * and background directions and k further "nuisance" directions (real features have
 * a low effective rank), plus a weak isotropic floor; `mean` adds a component common
 * to every snippet (post-ReLU features are far from zero-mean). Both are off by
 * default: the plain model already shows the effect (docs/training.md).
 *
 * Everything is seeded: the directions from `seed`, video i from (seed, i), so the
 * first videos are the same whatever --videos says. */
#ifndef SOLA_SYNTH_H
#define SOLA_SYNTH_H

#include <stdint.h>

#include "err.h"

typedef struct sola_synth_opts {
    int videos;        /* 64 */
    int C;             /* 256 */
    int T;             /* 200: lengths uniform in [T/2, 3T/2] */
    uint64_t seed;     /* 0 */
    int classes;       /* 4 action classes */
    float noise;       /* per-channel noise std, relative to the action amplitude 1 */
    float bg_level;    /* background amplitude along its own direction */
    float video_offset;/* norm of the per-video offset */
    float mean;        /* norm of a component common to all snippets of all videos */
    int noise_rank;    /* 0: isotropic noise; k: noise along the class, background and
                        * k nuisance directions only (plus iso_noise everywhere) */
    float iso_noise;   /* per-channel isotropic noise when noise_rank > 0 */
    int seg_min, seg_max; /* action segment lengths, snippets */
    int gap_min, gap_max; /* background gaps between segments */
} sola_synth_opts;

void sola_synth_default(sola_synth_opts *o);

/* The fixed directions, unit norm, [classes + 2 + noise_rank, C]: one row per class,
 * then the background, the common mean, and the nuisance directions. Caller frees.
 * NULL on bad options / no memory. */
float *sola_synth_directions(const sola_synth_opts *o, sola_err *e);

/* Generates video i: *x [T, C] and *labels [T] (class 1..classes, 0 = background),
 * both malloc'd (caller frees). dirs from sola_synth_directions. */
int sola_synth_video(const sola_synth_opts *o, const float *dirs, int i, float **x,
                     uint8_t **labels, int *T, sola_err *e);

/* Writes DIR/features/video_NNNN.npy ([T, C] <f4) and DIR/labels/video_NNNN.npy
 * ([T] |u1, 1 = action, 0 = background), each file atomically. progress (may be NULL)
 * is called after each video. */
int sola_synth_write(const char *dir, const sola_synth_opts *o,
                     void (*progress)(int done, int total, void *ud), void *ud, sola_err *e);

/* Encodes a [T] uint8 label vector as a .npy image ('|u1', v1.0), malloc'd. */
int sola_synth_encode_labels(const uint8_t *labels, int64_t T, void **buf, size_t *len,
                             sola_err *e);

#endif
