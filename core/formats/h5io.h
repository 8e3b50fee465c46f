/* h5io.h -- HDF5 feature files: one 2-D float dataset per video (TSP, G-TAD and
 * other releases), read and written through libhdf5 (Debian libhdf5-dev), never
 * parsed by hand.
 *
 * Videos are the 2-D float datasets directly under the root group (TSP, G-TAD), or,
 * in files without those, groups that each hold exactly one 2-D float dataset
 * (ActivityNet C3D: /v_NAME/c3d_features). Everything else is reported by
 * sola_h5_list (is_feature = 0, `what` says what it is) so callers can say what they
 * ignored. Values are converted to float32 by the library (f16, f32,
 * f64, either byte order).
 *
 * Thread rules: Debian's serial libhdf5 is not thread-safe, so every call here takes
 * one process-wide lock; any thread may call any function. The library's own error
 * printing is switched off (libraries here never print): messages come back in
 * sola_err, naming the file and the dataset. */
#ifndef SOLA_H5IO_H
#define SOLA_H5IO_H

#include <stdint.h>

#include "array.h"
#include "err.h"

typedef struct sola_h5_entry {
    char *name;        /* link name under "/", owned */
    char *key;         /* dataset path to read: name, or "name/member" for a group; owned */
    int is_feature;    /* 1: a 2-D float dataset, or a group holding exactly one */
    int in_group;      /* 1: the feature is the one dataset of group `name` */
    int64_t shape[2];  /* as stored (rows, cols) when is_feature */
    char what[64];     /* when not a feature: "group of 2 datasets", "integer dataset" */
} sola_h5_entry;

/* 1 if the file starts with the HDF5 signature (at offset 0; user blocks are not
 * searched). 0 for anything else, including unreadable files. */
int sola_h5_is_hdf5(const char *path);

/* Lists the root group, sorted by name. *out is newly allocated (free with
 * sola_h5_list_free). SOLA_ENOTFOUND / SOLA_EFORMAT (not HDF5, or unreadable). */
int sola_h5_list(const char *path, sola_h5_entry **out, int *n, sola_err *e);
void sola_h5_list_free(sola_h5_entry *en, int n);

/* Shape of the 2-D float dataset `name` (a path: "v_a" or "v_a/c3d_features";
 * SOLA_ESHAPE if it is not one). The readers below take such paths too. */
int sola_h5_shape(const char *path, const char *name, int64_t shape[2], sola_err *e);

/* Reads the whole 2-D dataset `name` as float32 [rows, cols] into out (data newly
 * allocated). */
int sola_h5_read(const char *path, const char *name, sola_array *out, sola_err *e);

/* Reads rows [r0, r0 + nr) of the 2-D dataset `name` (all cols columns) into out
 * [nr, cols]; cols must match the file (SOLA_ESHAPE otherwise). */
int sola_h5_read_rows(const char *path, const char *name, int64_t r0, int64_t nr,
                      int64_t cols, float *out, sola_err *e);

/* Writer: one file of float32 datasets keyed by name, produced atomically (written to
 * a temporary beside `path`, fsync'ed, renamed on commit). */
typedef struct sola_h5w sola_h5w;
int sola_h5w_open(const char *path, sola_h5w **out, sola_err *e);
/* Adds dataset `name` = data [rows, cols]. A name holding '/' or starting with '.'
 * is refused (it would make groups). */
int sola_h5w_put(sola_h5w *w, const char *name, const float *data, int64_t rows,
                 int64_t cols, sola_err *e);
/* The same at a path of one group and one member ("v_a/c3d_features"), creating the
 * group: written back the way a per-video-group file was read. */
int sola_h5w_put_key(sola_h5w *w, const char *key, const float *data, int64_t rows,
                     int64_t cols, sola_err *e);
/* Closes, fsyncs and renames; frees w whatever the outcome. */
int sola_h5w_commit(sola_h5w *w, sola_err *e);
/* Closes and removes the temporary; frees w. NULL is fine. */
void sola_h5w_abort(sola_h5w *w);

#endif
