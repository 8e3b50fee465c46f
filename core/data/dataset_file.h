/* dataset_file.h -- the layer under dataset.h and layouts.h: the types of an opened
 * dataset and its items, and reading one item's file (where its float payload is, its
 * shape). dataset.h (the scan and the windows) and layouts.h (the other extractors'
 * layouts) both build on it; it includes neither. Callers include dataset.h. */
#ifndef SOLA_DATASET_FILE_H
#define SOLA_DATASET_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "array.h"
#include "err.h"
#include "fsutil.h"
#include "npz.h"

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

/* Adds `name` to d->skipped with why (both copied), for videos a caller could not
 * use either (a failed refine, annotated but absent). 0 or SOLA_ENOMEM. */
int sola_dataset_note_skip(sola_dataset *d, const char *name, const char *why);

/* Full path of item i into buf (size n); returns buf, or NULL if it does not fit.
 * An HDF5 item reads "FILE.h5[name]", a pair "DIR/NAME_rgb.npy+NAME_flow.npy". */
char *sola_dataset_path(const sola_dataset *d, int i, char *buf, size_t n);

/* Validates one file as a dataset item (the daemon's upload check): fills *T, *C.
 * Same checks as the scan. */
int sola_dataset_peek_file(const char *path, int64_t *T, int *C, sola_err *e);

/* ---- one opened .npy/.npz item: where its float payload is (dataset.c's reads) ---- */
typedef struct sola_payload {
    sola_map map; /* .npy file */
    sola_npz z;   /* .npz archive */
    int is_npz, zopen;
    const unsigned char *img; /* the .npy image (file, or stored member); NULL if deflated */
    size_t imglen;
    sola_array full; /* whole item when loaded (deflated member, or slow path) */
    const float *f4; /* little-endian f4 C-order payload inside the map, or NULL */
    int64_t T;
    int C;
} sola_payload;

/* Opens an item and reads its shape ([T, C], or [1, T, C] as some extractors save a
 * single video); loads it whole only when the payload is not directly usable (a
 * deflated npz member). On failure p holds nothing. */
int sola_payload_open(const char *path, int is_npz, sola_payload *p, sola_err *e);
/* Makes p->full hold the whole item as float32 (slow path). */
int sola_payload_full(sola_payload *p, const char *path, sola_err *e);
void sola_payload_close(sola_payload *p);

#endif
