/* io.c -- reading a feature sequence from whatever file the user points at, and
 * refining an array of one or several sequences. */
#include <stdio.h>
#include <string.h>

#include "cli_io.h"
#include "fsutil.h"
#include "npy.h"
#include "npz.h"

int cli_load_seq(const char *path, sola_array *out, sola_err *e)
{
    memset(out, 0, sizeof *out);
    int rc;
    if (sola_has_ext(path, ".npz")) {
        sola_npz z;
        if ((rc = sola_npz_open(path, &z, e)))
            return rc;
        int i = sola_npz_pick(&z, path, e);
        rc = i < 0 ? SOLA_EFORMAT : sola_npz_read(&z, i, 0, out, e);
        sola_npz_close(&z);
    } else {
        rc = sola_npy_load(path, 0, out, e);
    }
    if (rc)
        return rc;
    if (out->ndim != 2 && out->ndim != 3) {
        sola_array_free(out);
        return sola_errf(e, SOLA_ESHAPE,
                         "%s: expected features of shape [T, C] or [B, T, C], got %d dimension%s",
                         path, out->ndim, out->ndim == 1 ? "" : "s");
    }
    return 0;
}

int cli_refine_array(const sola_model *m, const sola_array *x, const char *name,
                     sola_array *y, sola_ws *ws, sola_err *e)
{
    memset(y, 0, sizeof *y);
    int64_t C = x->shape[x->ndim - 1], T = x->shape[x->ndim - 2];
    int64_t B = x->ndim == 3 ? x->shape[0] : 1;
    if (C != m->C)
        return sola_errf(e, SOLA_ESHAPE,
                         "%s: features have C = %lld channels but the model expects C = %d "
                         "(is the file channel-first? the channel axis must be last)",
                         name, (long long)C, m->C);
    if (T < 1 || T > (1 << 24))
        return sola_errf(e, SOLA_ESHAPE, "%s: T = %lld snippets is out of range", name,
                         (long long)T);
    size_t n = sola_array_numel(x);
    y->data = malloc(n * sizeof(float) + 1);
    if (!y->data)
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory for %zu floats", name, n);
    y->ndim = x->ndim;
    memcpy(y->shape, x->shape, sizeof y->shape);
    for (int64_t b = 0; b < B; b++) {
        size_t off = (size_t)b * (size_t)T * (size_t)C;
        int rc = sola_refine(m, x->data + off, (int)T, y->data + off, ws, e);
        if (rc) {
            sola_array_free(y);
            return rc;
        }
    }
    return 0;
}
