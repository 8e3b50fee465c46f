/* synth_int.h -- what synth.c and synth_real.c share (not a public header: the data
 * room's internal/ folder). */
/* implemented in: synth.c synth_real.c */
#ifndef SOLA_SYNTH_INT_H
#define SOLA_SYNTH_INT_H

#include <stdint.h>

#include "synth.h"

struct sola_rng;
int sola__synth_int(struct sola_rng *r, int lo, int hi);    /* uniform in [lo, hi] */
int sola__synth_rank(const sola_synth_opts *o, int rank);   /* realistic: min(rank, C) */
/* The realistic video i (synth_real.c); same contract as sola_synth_video. */
int sola__synth_real_video(const sola_synth_opts *o, const float *dirs, int i, float **x,
                           uint8_t **labels, int *T, sola_err *e);

#endif
