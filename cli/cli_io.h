/* cli_io.h -- file helpers shared by refine and tsm. */
/* implemented in: io.c refine_stream.c */
#ifndef SOLA_CLI_IO_H
#define SOLA_CLI_IO_H

#include "array.h"
#include "err.h"
#include "model.h"
#include "refine.h"

/* Loads a .npy, or the sequence member of a .npz ("feats" or the only member), as
 * [T, C] or [B, T, C] float32. */
int cli_load_seq(const char *path, sola_array *out, sola_err *e);

/* Refines every sequence of x ([T, C] or [B, T, C]) into a new array y of the same
 * shape. Checks C against the model; `name` goes into messages. */
int cli_refine_array(const sola_model *m, const sola_array *x, const char *name,
                     sola_array *y, sola_ws *ws, sola_err *e);

/* `sola refine --stream` (refine_stream.c): standard input to standard output (or
 * out_path, an .npy); dim > 0: raw float32 rows of dim on stdin. Returns an exit code;
 * errors printed. */
int cli_refine_stream(const sola_model *m, const char *out_path, int dim, sola_ws *ws);

#endif
