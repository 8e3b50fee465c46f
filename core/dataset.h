/* dataset.h -- a folder of feature sequences, streamed.
 *
 * A dataset is a directory of NAME.npy / NAME.npz files, one video each (SPEC 2): the
 * layout of ActionFormer, G-TAD and the SoLa authors, and of the daemon's store
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
#ifndef SOLA_DATASET_H
#define SOLA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "array.h"
#include "err.h"

/* What an item is stored as (layouts.h reads all but the first two). */
enum {
    SOLA_ITEM_NPY = 0, /* NAME.npy */
    SOLA_ITEM_NPZ,     /* NAME.npz ("feats" or the single member) */
    SOLA_ITEM_PAIR,    /* video_features NAME_rgb.npy + NAME_flow.npy, concatenated */
    SOLA_ITEM_CSV,     /* BMN/BSN NAME.csv with a header row */
    SOLA_ITEM_H5,      /* dataset `file` inside the HDF5 file d->dir */
    SOLA_ITEM_H5DIR,   /* dataset `key` of the HDF5 file `file` in the folder d->dir,
                        * joined with the same key of `file2` when that is set (an
                        * rgb/flow pair of HDF5 files, G-TAD style) */
};

typedef struct sola_dataset_item {
    char *name;  /* stem ("video_001"), owned */
    char *file;  /* file name inside the folder ("video_001.npy"), owned */
    int64_t T;   /* snippets */
    int npz;     /* 1 for .npz */
    int kind;    /* SOLA_ITEM_* */
    char *file2; /* PAIR: the second stream's file; NULL otherwise; owned */
    /* video_features siblings NAME_fps.npy / NAME_timestamps_ms.npy (file names in the
     * folder) when they were beside the video; NULL otherwise; owned */
    char *fps_file, *ts_file;
    int64_t C1;  /* pairs: channels of the stream joined first (0 otherwise) */
    char *key;   /* H5DIR: the dataset path inside the file(s) ("v_a", "v_a/c3d_features") */
} sola_dataset_item;

typedef struct sola_dataset {
    char *dir;               /* owned copy of the folder path */
    sola_dataset_item *items; /* n items, sorted by name */
    int n;
    int C;                   /* channels, common to all items */
    int64_t total_T;         /* sum of T */
    int ct;                  /* files hold [C, T]; items are still read as [T, C] */
    int h5;                  /* dir is one HDF5 file; items are its datasets */
    const char *layout;      /* static: "npy", "npz", "video_features rgb+flow", ... */
    const char *stream;      /* static: the video_features key stripped from single-stream
                              * names ("r21d"), or NULL */
    int flow_first;          /* pairs are joined flow||rgb instead of rgb||flow */
    /* Items left out by sola_dataset_opts.skip_bad: names and why (owned). */
    char **skipped, **skip_why;
    int nskipped;
} sola_dataset;

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
/* Adds `name` to d->skipped with why (both copied), for videos a caller could not
 * use either (a failed refine, annotated but absent). 0 or SOLA_ENOMEM. */
int sola_dataset_note_skip(sola_dataset *d, const char *name, const char *why);
/* Writes the names of d->skipped, one per line, to path (atomically). */
int sola_dataset_write_missing(const sola_dataset *d, const char *path, sola_err *e);
void sola_dataset_free(sola_dataset *d);

/* Index of the item named `name` (stem), or -1. Binary search. */
int sola_dataset_find(const sola_dataset *d, const char *name);

/* Full path of item i into buf (size n); returns buf, or NULL if it does not fit.
 * An HDF5 item reads "FILE.h5[name]", a pair "DIR/NAME_rgb.npy+NAME_flow.npy". */
char *sola_dataset_path(const sola_dataset *d, int i, char *buf, size_t n);

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

/* Validates one file as a dataset item (the daemon's upload check): fills *T, *C.
 * Same checks as the scan. */
int sola_dataset_peek_file(const char *path, int64_t *T, int *C, sola_err *e);

#endif
