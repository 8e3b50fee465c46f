/* dataset.h -- a folder of feature sequences, streamed.
 *
 * A dataset is a directory of NAME.npy / NAME.npz files, one video each (docs/spec.md
 * section 2): the layout of ActionFormer, G-TAD and the SoLa authors, and of the daemon's store
 * (datasets/NAME/ITEM.npy). Opening it scans the folder once and reads only headers,
 * so a dataset of tens of thousands of files costs a few hundred bytes per item and
 * no feature data. Reading a window maps one file, converts just that slice (a
 * memcpy for little-endian f4 C-order .npy, and for .npz members stored uncompressed)
 * and unmaps it; other encodings load that one item, copy the slice and free it.
 * Memory therefore stays constant whatever the size of the dataset.
 *
 * Items are sorted by name (bytewise) so that every run sees the same order. Hidden
 * files (".x", e.g. the temporaries of atomic writes) and other extensions are
 * ignored; subdirectories are not entered.
 *
 * Thread rules: an opened dataset is immutable; sola_dataset_window/_load may run on
 * any number of threads at once (each call maps its own view of the file). */
/* implemented in: dataset.c dataset_scan.c */
#ifndef SOLA_DATASET_H
#define SOLA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "array.h"
#include "dataset_file.h" /* the item and dataset types */
#include "err.h"

typedef struct sola_dataset_opts {
    int ct;       /* 1: files are channel-first [C, T] (--layout ct) */
    int skip_bad; /* 1: a corrupt/unreadable file or half an rgb/flow pair is left out
                   * and listed in d->skipped instead of failing the open (files that
                   * disagree on C still fail it) */
    int flow_first; /* 1: rgb/flow pairs are joined flow||rgb (--pair-order flow,rgb) */
} sola_dataset_opts;

/* Scans dir. Errors (message names the folder or file):
 *   SOLA_ENOTFOUND  folder missing;            SOLA_EIO  unreadable folder/file
 *   SOLA_EFORMAT    "DIR: no .npy or .npz files", or a corrupt file (named)
 *   SOLA_ESHAPE     a file is not [T, C], or files disagree on C (the odd files are
 *                   listed with their C, and the majority C is given)
 * *out is NULL on failure; free with sola_dataset_free. */
int sola_dataset_open(const char *dir, sola_dataset **out, sola_err *e);
/* The same with options (NULL = defaults), and `path` may also be an HDF5 file
 * (.h5/.hdf5) of one dataset per video. The folder may hold any layout of layouts.h. */
int sola_dataset_open_ex(const char *path, const sola_dataset_opts *o, sola_dataset **out,
                         sola_err *e);
/* Writes the names of d->skipped, one per line, to path (atomically). */
int sola_dataset_write_missing(const sola_dataset *d, const char *path, sola_err *e);
void sola_dataset_free(sola_dataset *d);

/* Index of the item named `name` (stem), or -1. Binary search. */
int sola_dataset_find(const sola_dataset *d, const char *name);

/* Copies rows [start, start+W) of item i into out [W, C] as float32.
 * SOLA_EINVAL if the window is outside [0, T); a file changed on disk since the scan
 * (other T or C, or now corrupt) gives SOLA_ESHAPE / SOLA_EFORMAT naming it. */
int sola_dataset_window(const sola_dataset *d, int i, int64_t start, int W, float *out,
                        sola_err *e);

/* Loads item i whole as [T, C] float32 (out->data newly allocated). */
int sola_dataset_load(const sola_dataset *d, int i, sola_array *out, sola_err *e);

/* Reads every value of every item and refuses NaN and infinities: SOLA_EFORMAT
 * naming the file and the element (an .npy item: its index in the file as stored;
 * other layouts: snippet and channel). Also the errors of reading the items. progress
 * (may be NULL) after each item. dataset_scan.c. */
int sola_dataset_scan_values(const sola_dataset *d,
                             void (*progress)(int done, int total, void *ud), void *ud,
                             sola_err *e);

/* 1 when d, read time-major, looks like channel-first files of C channels: every
 * item's T is C (and d->C differs from C). For the hint "use the ct layout". */
static inline int sola_dataset_could_be_ct(const sola_dataset *d, int C)
{
    if (d->ct || d->n < 1 || d->C == C)
        return 0;
    for (int i = 0; i < d->n; i++)
        if (d->items[i].T != C)
            return 0;
    return 1;
}

#endif
