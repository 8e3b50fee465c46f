/* synth.h -- a synthetic feature dataset with foreground/background labels.
 *
 * It exists so that anyone can regenerate data on which SoLa's claim can be tested:
 * per-snippet features that carry the action only weakly become more separable once
 * temporal context is mixed in. Two generators share the options and the files.
 *
 * The realistic one (the default) imitates what frozen video encoders (I3D, TSN)
 * give: non-negative, low-rank features whose TSM has a bright diagonal band and that
 * are dominated by the scene/style of each video. Per snippet, before the output
 * non-linearity,
 *   p_t = w_t a_t u_t + (1 - w_t) bg_level b_t + v + mean m + n_t + iso_noise e_t
 *   x_t = softplus(sqrt(C) p_t + bias) / sqrt(C)            (per channel)
 * where
 *   u_t   the direction of the segment's class, turning by `drift` radians from the
 *         segment's first snippet to its last (cos/sin mix of two fixed unit vectors);
 *   a_t   the segment's amplitude (jittered per segment around 1);
 *   b_t   the direction of one of `backgrounds` kinds of background, one per gap;
 *   w_t   the action weight: 1 inside a segment, 0 in a gap, a linear ramp over
 *         `blur` snippets across each boundary (labels stay hard, at the boundary);
 *   v     the video's style: norm `video_offset`, a random mix of `style_rank` fixed
 *         directions (videos differ mostly within that subspace, as scenes do);
 *   m     a fixed direction common to every video;
 *   n_t   nuisance noise: `noise_rank` fixed directions, each coordinate an AR(1)
 *         process, z_t = ar z_{t-1} + sqrt(1 - ar^2) eps_t, of stationary std `noise`
 *         (camera motion, lighting: slow, not independent per snippet);
 *   e_t   white noise on every channel, std iso_noise / sqrt(C) per channel (a
 *         vector of norm about iso_noise).
 * The sqrt(C) scaling puts a unit-norm signal at per-channel arguments of order 1,
 * where softplus bends; it keeps every output value > 0 (`bias` < 0 makes most
 * channels small, as after a ReLU backbone).
 *
 * The simple one (`simple` = 1, sola_synth_default_simple; the generator of the first
 * releases, byte for byte) is
 *   x_t = a_t * u_{class(t)} + v + noise_t
 * with u_k fixed random unit directions (one per class, one for the background),
 * a_t the action amplitude inside a segment or bg_level elsewhere, v a per-video
 * offset of norm video_offset and noise_t i.i.d. Gaussian with per-channel std `noise`.
 * With noise_rank = k > 0 its noise lies along the class and background directions
 * and k nuisance directions, plus iso_noise per channel; `mean` adds a common
 * component. Its features are signed, full-rank and have a flat TSM.
 *
 * Both: lengths uniform in [T/2, 3T/2]; action segments and gaps have random lengths
 * in the given ranges. Everything is seeded: the directions from `seed`, video i from
 * (seed, i), so the first videos are the same whatever `videos` says. */
#ifndef SOLA_SYNTH_H
#define SOLA_SYNTH_H

#include <stdint.h>

#include "err.h"

typedef struct sola_synth_opts {
    int simple;        /* 0: realistic generator; 1: the simple one */
    int videos;        /* 64 */
    int C;             /* 256 */
    int T;             /* 200: lengths uniform in [T/2, 3T/2] */
    uint64_t seed;     /* 0 */
    int classes;       /* 4 action classes */
    float noise;       /* realistic: std of each AR(1) nuisance coordinate (1.0);
                        * simple: per-channel noise std (0.4) */
    float bg_level;    /* background amplitude along its direction (0.5) */
    float video_offset;/* norm of the per-video style / offset (1.5; simple 0.5) */
    float mean;        /* norm of a component common to all snippets (1.0; simple 0) */
    int noise_rank;    /* realistic: nuisance directions (16, at most C); simple: 0 = iso,
                        * k = noise along the class, background and k directions */
    float iso_noise;   /* realistic: rms norm of the white noise (0.5);
                        * simple: per-channel isotropic floor when noise_rank > 0 */
    int seg_min, seg_max; /* action segment lengths, snippets */
    int gap_min, gap_max; /* background gaps between segments */
    /* realistic only */
    int backgrounds;   /* kinds of background (3) */
    int style_rank;    /* directions the styles of videos mix (8, at most C) */
    float ar;          /* AR(1) coefficient of the nuisance noise per snippet (0.7) */
    float drift;       /* radians the action direction turns across a segment (1.0) */
    float blur;        /* snippets over which a boundary ramps (4; 0 = hard) */
    float bias;        /* added before softplus, per channel (-1.0) */
} sola_synth_opts;

/* The realistic generator and its defaults. */
void sola_synth_default(sola_synth_opts *o);
/* The simple generator (simple = 1) and its own defaults. */
void sola_synth_default_simple(sola_synth_opts *o);

/* Rows of the direction table of o (see sola_synth_directions). */
int sola_synth_ndirs(const sola_synth_opts *o);

/* The fixed directions, unit norm, [sola_synth_ndirs(o), C]. Simple: one row per
 * class, the background, the common mean, the nuisance directions. Realistic: one
 * row per class, one drift partner per class, one per background kind, the mean,
 * the style basis, the nuisance basis. Caller frees. NULL on bad options / no
 * memory, the reason in e. */
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

#endif
