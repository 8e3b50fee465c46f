/* layouts.h -- the feature layouts users bring from other codebases, behind the one
 * dataset interface of dataset.h (docs/spec.md section 2; docs/interop.md has each peer's
 * code it was checked against). dataset.c lists the files and keeps the fast path for plain
 * time-major .npy; everything else is read here:
 *
 *   video_features  NAME_rgb.npy + NAME_flow.npy (float64 as written by v-iashin's
 *                   video_features; joined on C in the pair order, rgb||flow unless
 *                   flow_first, trimmed to the shorter T) -> one item NAME.
 *                   Single-stream NAME_<key>.npy beside a NAME_fps.npy or
 *                   NAME_timestamps_ms.npy sibling, or a folder where every file ends
 *                   in the same video_features key (_r21d, _s3d, _vggish, ...) -> item
 *                   NAME. The siblings are never items; they are attached to their
 *                   video (fps_file, ts_file) and read by sola_layout_grid.
 *   HDF5            one file (TSP, G-TAD releases): one 2-D float dataset per video
 *                   under "/", or one group per video holding one 2-D float dataset
 *                   (ActivityNet C3D) -> items named by dataset / group (h5io.h).
 *                   A folder of HDF5 files: files whose names differ only by rgb/flow
 *                   are a pair (G-TAD rgb_val.h5 + flow_val.h5, joined per video in
 *                   the pair order); other files add their videos as they are.
 *   BMN/BSN CSV     a folder of NAME.csv, a header row then one row per snippet
 *                   (csv_mean_100: 100 x 400).
 *   channel-first   any of the above stored [C, T] (MS-TCN) with layout ct: items are
 *                   still handed out [T, C]; writers put them back [C, T].
 *
 * Functions here are internal to the dataset module (dataset.c calls them) except
 * the CSV reader/writer and sola_layout_grid, which sola refine uses. */
/* implemented in: layouts.c layouts_h5.c layouts_read.c */
#ifndef SOLA_LAYOUTS_H
#define SOLA_LAYOUTS_H

#include <stdint.h>

#include "array.h"
#include "dataset_file.h"
#include "err.h"

/* Frees the strings of one item (not the item). */
void sola_layout_item_free(sola_dataset_item *it);

/* After dataset.c listed a folder (items with name = stem, file, kind
 * NPY/NPZ/CSV/H5DIR): a folder of only HDF5 files is expanded into its videos
 * (otherwise HDF5 files beside other features are ignored); drops the
 * _fps/_timestamps_ms siblings (attaching them to their video), merges rgb/flow pairs
 * into PAIR items, renames single-stream items, sorts, and sets d->layout. Half a
 * pair fails the open (SOLA_ENOTFOUND naming the lonely file) unless skip_bad, when
 * it goes to d->skipped. */
int sola_layout_group(sola_dataset *d, int skip_bad, sola_err *e);

/* Lists an HDF5 file into d (d->dir = the file, one item per 2-D float dataset, or per
 * group holding one). SOLA_EFORMAT when it holds none (the message says what it does
 * hold). */
int sola_layout_h5_list(sola_dataset *d, sola_err *e);

/* A folder of only HDF5 files (H5DIR candidates from list_dir) into its videos. */
int sola_layout_h5dir(sola_dataset *d, int skip_bad, sola_err *e);

/* The time grid video_features saved beside item i (0 where unknown):
 *   fps     NAME_fps.npy (a scalar);
 *   stride  frames between snippets: the median step of NAME_timestamps_ms.npy x fps
 *           / 1000, rounded to a whole frame when within 1% of one;
 *   frames  frames per snippet: video_features stamps each I3D/R(2+1)D-style stack
 *           at its last frame, so the first stamp x fps / 1000 is the snippet length;
 *           a first stamp at 0 (frame-wise extractors: CLIP, ResNet) means 1 frame.
 * Reads nothing when the item has no siblings (all 0). */
typedef struct sola_item_grid {
    double fps, stride, frames;
    int64_t stamps; /* timestamps read (0 when none) */
} sola_item_grid;
int sola_layout_grid(const sola_dataset *d, int i, sola_item_grid *g, sola_err *e);

/* Shape of item i as [T, C] (after the ct transpose), reading as little as the
 * format allows. */
int sola_layout_item_shape(const sola_dataset *d, int i, int64_t *T, int *C, sola_err *e);

/* Loads item i whole as [T, C] float32 (ct transposed, pairs concatenated).
 * out->data newly allocated. */
int sola_layout_load(const sola_dataset *d, int i, sola_array *out, sola_err *e);

/* Transposes a [R, K] array in place into [K, R] (allocates a new buffer). */
int sola_layout_transpose(sola_array *a, sola_err *e);

#endif
