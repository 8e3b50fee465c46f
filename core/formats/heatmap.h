/* heatmap.h -- PNG rendering of TSMs with libpng.
 *
 * Values in [-1, 1] map through a perceptual colormap (viridis); n maps of T x T are
 * drawn side by side with a gap, each pixel scaled up so that small T stay legible
 * (cell = max(1, 256 / T) px), with a colour-bar legend at the right. */
#ifndef SOLA_HEATMAP_H
#define SOLA_HEATMAP_H

#include <stddef.h>

#include "err.h"

/* Encodes to a malloc'd PNG buffer. */
int sola_heatmap_png(const float *const *maps, int n, int T, void **png, size_t *len,
                     sola_err *e);
/* Colormap lookup of v in [-1, 1] (clamped) to RGB. */
void sola_colormap(float v, unsigned char rgb[3]);

#endif
