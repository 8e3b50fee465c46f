/* csvfeat.h -- BMN/BSN feature CSV (csv_mean_100: a header row, then 100 rows of 400
 * comma-separated numbers), read and written by csvfeat.c; one of the layouts of
 * layouts.h. */
#ifndef SOLA_CSVFEAT_H
#define SOLA_CSVFEAT_H

#include <stdint.h>

#include "array.h"
#include "err.h"

/* BMN/BSN CSV: a header row, then rows of comma-separated numbers, all the same
 * count. out [rows, cols]; *header (if not NULL) gets a newly allocated copy of the
 * header line (no newline). Bounded by the file size; a bad number names its line
 * and column. */
int sola_csv_load(const char *path, sola_array *out, char **header, sola_err *e);

/* Writes [rows, cols] as CSV (atomically) under `header` (one line; NULL writes
 * "0,1,...,cols-1"), values with 9 significant digits so float32 round-trips. */
int sola_csv_save(const char *path, const char *header, const float *data, int64_t rows,
                  int64_t cols, sola_err *e);

#endif
