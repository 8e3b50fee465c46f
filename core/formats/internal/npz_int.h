/* npz_int.h -- what npz.c (reading) and npz_write.c (writing) share: zlib streams
 * fed a GiB at a time. Not for others. */
#ifndef SOLA_NPZ_INT_H
#define SOLA_NPZ_INT_H

#include <stddef.h>
#include <zlib.h>

/* Refills an empty avail_in / avail_out of s from what is left of the whole input
 * and output (zlib counts in uInt: any size goes through in pieces of 1 GiB). */
void sola__z_refill(z_stream *s, size_t *in_left, size_t *out_left);

#endif
