/* dataset_scan.c -- the value check of a whole dataset before training (`sola train`
 * refuses NaN/Inf up front; the trainer would otherwise stop at the first batch that
 * meets one, or worse, train on it). .npy items go through the project's one file
 * check (sola_npy_check_values, streamed); the other layouts are read whole, one
 * video at a time, and scanned with sola_first_nonfinite. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dataset.h"
#include "npy.h"

int sola_dataset_scan_values(const sola_dataset *d,
                             void (*progress)(int done, int total, void *ud), void *ud,
                             sola_err *e)
{
    char path[4096];
    for (int i = 0; i < d->n; i++) {
        const sola_dataset_item *it = &d->items[i];
        int rc;
        if (it->kind == SOLA_ITEM_NPY && !d->h5) {
            if (!sola_dataset_path(d, i, path, sizeof path))
                return sola_errf(e, SOLA_EINVAL, "%s: path too long", d->dir);
            rc = sola_npy_check_values(path, 0, e);
        } else {
            sola_array a;
            if ((rc = sola_dataset_load(d, i, &a, e)))
                return rc;
            size_t n = sola_array_numel(&a), bad = sola_first_nonfinite(a.data, n);
            if (bad < n) {
                sola_dataset_path(d, i, path, sizeof path);
                rc = sola_errf(e, SOLA_EFORMAT, "%s: snippet %zu, channel %zu is %s", path,
                               bad / (size_t)d->C, bad % (size_t)d->C,
                               isnan(a.data[bad]) ? "NaN" : "infinite");
            }
            sola_array_free(&a);
        }
        if (rc)
            return rc;
        if (progress)
            progress(i + 1, d->n, ud);
    }
    return 0;
}
