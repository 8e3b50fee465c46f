/* dsstore.h -- the daemon's dataset store: ROOT/NAME/ITEM.npy, one video per file.
 *
 * ROOT is DATA/datasets. A dataset is a directory holding at least one item; items
 * are .npy files (the form uploads take; .npz items placed by hand are read too) that
 * all share one channel count C. Every write follows the same rule: the bytes go to a
 * hidden file first (".up.*" beside the item, or a ".staging.*" directory for a whole
 * dataset), are fsync'ed and validated (a [T, C] float matrix, C equal to the other
 * items'), and only then renamed into place; the directory is fsync'ed before the call
 * returns. So readers (the dataset scanner, a training run) never see a partial item,
 * a crash leaves only hidden leftovers (sola_ds_recover removes them), and a
 * validation failure or a full disk changes nothing.
 *
 * Writers in several processes sharing ROOT (replicas) are serialised by flock on
 * ROOT/.lock; readers take no lock (renames are atomic).
 *
 * Memory: uploads are never held in memory. A .npz body is read member by member
 * through a fixed 256 KiB buffer (stored members copied, deflated ones inflated), so
 * a multi-GB upload costs the process a few hundred KiB.
 *
 * Errors follow err.h; messages name the dataset and item (never the hidden paths):
 * SOLA_EINVAL bad name, SOLA_EFORMAT bad file, SOLA_ESHAPE wrong shape or C,
 * SOLA_ENOTFOUND missing dataset or item, SOLA_ENOSPC disk full, SOLA_EIO others. */
/* implemented in: dsstore.c dsstore_npz.c */
#ifndef SOLA_DSSTORE_H
#define SOLA_DSSTORE_H

#include <stdint.h>

#include "err.h"
#include "fsutil.h" /* sola_name_ok: the rule for dataset and item names */


typedef struct sola_ds_item {
    char name[SOLA_NAME_MAX + 1];
    int64_t T;
    int64_t bytes;
} sola_ds_item;

typedef struct sola_ds_info {
    char name[SOLA_NAME_MAX + 1];
    int n;            /* items */
    int C;            /* channels (0 when n == 0) */
    int64_t frames;   /* sum of T */
    int64_t bytes;    /* on disk */
    sola_ds_item *items; /* n, sorted by name; NULL from sola_ds_list */
} sola_ds_info;
void sola_ds_info_free(sola_ds_info *d);

/* Stores the file at src (an upload's temporary file, on the same filesystem as root
 * preferably: it is hard-linked, else copied) as ROOT/ds/item.npy, creating the
 * dataset if needed and replacing an existing item of that name. *created = 1 if the
 * item is new; *T, *C (may be NULL) get its shape. src is left in place but may
 * share its inode with the stored item: do not modify it afterwards.
 * Every value is read once (sola_npy_check_values) and a NaN or infinity refuses
 * the item (SOLA_EFORMAT naming the item and the element) unless flags has
 * SOLA_NPY_ALLOW_NONFINITE (solad --allow-nonfinite): training on it would stop at
 * the first batch that meets it. */
int sola_ds_put_item(const char *root, const char *ds, const char *item, const char *src,
                     int flags, int *created, int64_t *T, int *C, sola_err *e);

/* Stores the .npz archive at src as dataset ds, one item per member (member names
 * are the item names), replacing the whole dataset if it exists (*created = 0) --
 * atomically: readers see the old set of items or the new one. *nitems (may be
 * NULL) gets the member count. Values are checked as by sola_ds_put_item (flags):
 * one non-finite value in any member refuses the whole archive. */
int sola_ds_put_npz(const char *root, const char *ds, const char *src, int flags,
                    int *created, int *nitems, sola_err *e);

/* Removes dataset ds (item == NULL) or one item; removing the last item removes the
 * dataset. SOLA_ENOTFOUND if absent. */
int sola_ds_delete(const char *root, const char *ds, const char *item, sola_err *e);

/* Describes dataset ds with its items (reads each item's header). */
int sola_ds_stat(const char *root, const char *ds, sola_ds_info *out, sola_err *e);

/* C of dataset ds, from one item's header (cheap, whatever the dataset's size).
 * SOLA_ENOTFOUND if the dataset is missing or holds no item. */
int sola_ds_dim(const char *root, const char *ds, int *C, sola_err *e);

/* Lists the datasets (name, item count, bytes; no headers read, items NULL, C 0,
 * frames -1), sorted by name. *out is malloc'd (free each with sola_ds_info_free, then
 * the array); a missing root is an empty list. */
int sola_ds_list(const char *root, sola_ds_info **out, int *n, sola_err *e);

/* Hard-links every item of ds into the new directory dst (a frozen view for a
 * training run: later uploads or deletes do not change what it reads). SOLA_EIO
 * (with errno EXDEV/EPERM in the message) when the filesystem cannot link. */
int sola_ds_snapshot(const char *root, const char *ds, const char *dst, sola_err *e);

/* rm -rf of a directory this module created (snapshots, staging). 0 or -1. */
int sola_ds_rmtree(const char *dir);

/* Removes what an interrupted write left behind (staging directories, trash,
 * hidden upload files). Returns the number of entries removed. */
int sola_ds_recover(const char *root);

#endif
