/* tsm.h -- the temporal self-similarity map of a sequence (tsm.c):
 *     S[i,j] = (y_i . y_j) / (|y_i| |y_j| + 1e-8)
 * the view the API and `sola tsm` give of a refined sequence. */
#ifndef SOLA_TSM_H
#define SOLA_TSM_H

#include "err.h"

/* y [T, C] -> S [T, T], exactly symmetric. SOLA_ESHAPE for T or C < 1, SOLA_EINVAL
 * without buffers, SOLA_ETOOBIG / SOLA_ENOMEM when S or the norms do not fit. */
int sola_tsm(const float *y, int T, int C, float *S, sola_err *e);

#endif
