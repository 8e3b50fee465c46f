/* dataset.c -- scanning a folder of feature files and streaming windows out of it
 * (see dataset.h). */
#include "dataset.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset_file.h"
#include "fsutil.h"
#include "h5io.h"
#include "layouts.h"
#include "npy.h"
#include "npz.h"
#include "sorted.h"

/* ---- scan ---------------------------------------------------------------------------- */

static int item_cmp(const void *a, const void *b)
{
    return strcmp(((const sola_dataset_item *)a)->name, ((const sola_dataset_item *)b)->name);
}

void sola_dataset_free(sola_dataset *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n; i++)
        sola_layout_item_free(&d->items[i]);
    for (int i = 0; i < d->nskipped; i++) {
        free(d->skipped[i]);
        free(d->skip_why[i]);
    }
    free(d->skipped);
    free(d->skip_why);
    free(d->items);
    free(d->dir);
    free(d);
}

static char *join(const char *dir, const char *file)
{
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, file);
    return p;
}

/* Lists the candidate files (items with name/file/kind set, T unknown; HDF5 files as
 * H5DIR items with their stem as name, expanded by sola_layout_group). */
static int list_dir(sola_dataset *d, sola_err *e)
{
    DIR *dh = opendir(d->dir);
    if (!dh)
        return sola_errf(e, errno == ENOENT ? SOLA_ENOTFOUND : SOLA_EIO, "%s: %s", d->dir,
                         strerror(errno));
    int cap = 0, rc = 0, npkl = 0;
    struct dirent *de;
    while ((de = readdir(dh))) {
        const char *f = de->d_name;
        int is_npz = sola_has_ext(f, ".npz"), is_csv = sola_has_ext(f, ".csv");
        int is_h5 = sola_has_ext(f, ".h5") || sola_has_ext(f, ".hdf5");
        npkl += f[0] != '.' && sola_has_ext(f, ".pkl");
        if (f[0] == '.' || (!is_npz && !is_csv && !is_h5 && !sola_has_ext(f, ".npy")))
            continue;
        char *full = join(d->dir, f);
        struct stat st;
        int skip = !full || stat(full, &st) != 0 || !S_ISREG(st.st_mode);
        free(full);
        if (skip)
            continue;
        if (d->n == cap) {
            int nc = cap ? cap * 2 : 64;
            sola_dataset_item *ni = nc > cap ? realloc(d->items, (size_t)nc * sizeof *ni) : NULL;
            if (!ni) {
                rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory listing files", d->dir);
                break;
            }
            d->items = ni;
            cap = nc;
        }
        sola_dataset_item *it = &d->items[d->n];
        memset(it, 0, sizeof *it);
        it->file = strdup(f);
        it->name = strdup(f);
        if (!it->file || !it->name) {
            free(it->file);
            free(it->name);
            rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory listing files", d->dir);
            break;
        }
        *strrchr(it->name, '.') = 0;
        it->npz = is_npz;
        it->kind = is_npz ? SOLA_ITEM_NPZ : is_csv ? SOLA_ITEM_CSV : is_h5 ? SOLA_ITEM_H5DIR
                                                                         : SOLA_ITEM_NPY;
        d->n++;
    }
    closedir(dh);
    if (rc)
        return rc;
    if (d->n == 0 && npkl)
        return sola_errf(e, SOLA_EUNSUP, "%s: %d .pkl file%s and no .npy/.npz/.csv/.h5 "
                         "features; sola does not unpickle (a pickle can run code). Convert "
                         "once with numpy, then refine the .npy files: /usr/bin/python3 -c "
                         "\"import glob,pickle,numpy as n;[n.save(f[:-4]+'.npy',n.asarray("
                         "pickle.load(open(f,'rb')))) for f in glob.glob('%s/*.pkl')]\"",
                         d->dir, npkl, npkl == 1 ? "" : "s", d->dir);
    if (d->n == 0)
        return sola_errf(e, SOLA_EFORMAT, "%s: no .npy or .npz files (nor BMN .csv, nor "
                         ".h5)", d->dir);
    return 0;
}

/* Sorts the items and refuses two files that make the same item. */
static int sort_items(sola_dataset *d, sola_err *e)
{
    qsort(d->items, (size_t)d->n, sizeof *d->items, item_cmp);
    for (int i = 1; i < d->n; i++)
        if (!strcmp(d->items[i - 1].name, d->items[i].name))
            return sola_errf(e, SOLA_EFORMAT, "%s: %s and %s are both item '%s'; keep one",
                             d->dir, d->items[i - 1].file, d->items[i].file, d->items[i].name);
    return 0;
}

/* Files disagree on C: name the majority and the odd ones (at most 5). */
static int report_mixed_c(const sola_dataset *d, const int *cs, sola_err *e)
{
    int best = cs[0], bestn = 0;
    for (int i = 0; i < d->n; i++) {
        int k = 0;
        for (int j = 0; j < d->n; j++)
            k += cs[j] == cs[i];
        if (k > bestn || (k == bestn && cs[i] < best)) {
            best = cs[i];
            bestn = k;
        }
        if (bestn * 2 > d->n)
            break;
    }
    char list[300] = "";
    size_t len = 0;
    int shown = 0, odd = 0;
    for (int i = 0; i < d->n; i++) {
        if (cs[i] == best)
            continue;
        odd++;
        if (shown < 5 && len < sizeof list - 1) {
            int w = snprintf(list + len, sizeof list - len, "%s%s (C=%d)", shown ? ", " : "",
                             d->items[i].file, cs[i]);
            len = w > 0 && (size_t)w < sizeof list - len ? len + (size_t)w : sizeof list - 1;
            shown++;
        }
    }
    char more[48] = "";
    if (odd > shown)
        snprintf(more, sizeof more, " and %d more", odd - shown);
    /* Channel-first files read as [T, C] have one "T" (their C) and varied "C". */
    char hint[160] = "";
    if (!d->ct && sola_dataset_could_be_ct(d, (int)d->items[0].T))
        snprintf(hint, sizeof hint, "; but every file has %lld rows: if they are [C, T] "
                 "(channels first), read them with the ct layout (--layout ct)",
                 (long long)d->items[0].T);
    return sola_errf(e, SOLA_ESHAPE,
                     "%s: files disagree on the channel count: %d of %d have C=%d; "
                     "different: %s%s%s",
                     d->dir, bestn, d->n, best, list, more, hint);
}

int sola_dataset_open(const char *dir, sola_dataset **out, sola_err *e)
{
    return sola_dataset_open_ex(dir, NULL, out, e);
}

/* Shape of item i as [T, C] after the ct transpose. */
static int item_shape(const sola_dataset *d, int i, int64_t *T, int *C, sola_err *e)
{
    const sola_dataset_item *it = &d->items[i];
    if (it->kind != SOLA_ITEM_NPY && it->kind != SOLA_ITEM_NPZ)
        return sola_layout_item_shape(d, i, T, C, e);
    char *path = join(d->dir, it->file);
    if (!path)
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", d->dir);
    sola_payload p;
    int rc = sola_payload_open(path, it->npz, &p, e);
    if (!rc && d->ct && (p.T < 1 || p.T > INT_MAX))
        rc = sola_errf(e, SOLA_ESHAPE, "%s: with --layout ct the first axis is C, but it is "
                       "%lld", path, (long long)p.T);
    free(path);
    if (rc)
        return rc;
    *T = d->ct ? p.C : p.T;
    *C = d->ct ? (int)p.T : p.C;
    sola_payload_close(&p);
    return 0;
}

/* Removes item i, noting it as skipped with the reason in e. */
static int skip_item(sola_dataset *d, int i, const sola_err *why)
{
    sola_dataset_item *it = &d->items[i];
    int rc = sola_dataset_note_skip(d, it->name, why->msg);
    sola_layout_item_free(it);
    memmove(it, it + 1, (size_t)(d->n - i - 1) * sizeof *it);
    d->n--;
    return rc;
}

int sola_dataset_open_ex(const char *dir, const sola_dataset_opts *o, sola_dataset **out,
                         sola_err *e)
{
    sola_dataset_opts defaults = {0};
    if (!o)
        o = &defaults;
    *out = NULL;
    int rc = 0;
    int *cs = NULL;
    sola_dataset *d = calloc(1, sizeof *d);
    if (!d)
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", dir);
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--; /* "data/" and "data" name the same folder in messages */
    d->dir = strndup(dir, dl);
    if (!d->dir) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", dir);
        goto err;
    }
    d->ct = o->ct;
    d->flow_first = o->flow_first;
    struct stat st;
    if (stat(d->dir, &st) == 0 && S_ISREG(st.st_mode)) {
        d->h5 = 1;
        if ((rc = sola_layout_h5_list(d, e)))
            goto err;
    } else {
        if ((rc = list_dir(d, e)) || (rc = sola_layout_group(d, o->skip_bad, e)))
            goto err;
    }
    if ((rc = sort_items(d, e)))
        goto err;
    cs = calloc((size_t)d->n + 1, sizeof *cs);
    if (!cs) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", dir);
        goto err;
    }
    int mixed = 0;
    for (int i = 0; i < d->n;) {
        int64_t T;
        int C;
        sola_err why = {0};
        rc = item_shape(d, i, &T, &C, &why);
        if (rc == SOLA_ENOMEM || (rc && !o->skip_bad)) {
            if (e)
                *e = why;
            goto err;
        }
        if (rc) {
            if ((rc = skip_item(d, i, &why))) {
                sola_errf(e, rc, "%s: out of memory", dir);
                goto err;
            }
            continue;
        }
        d->items[i].T = T;
        cs[i] = C;
        mixed |= C != cs[0];
        d->total_T += T;
        i++;
    }
    if (d->n == 0) {
        rc = sola_errf(e, SOLA_EFORMAT, "%s: none of the %d videos could be read (first: %s)",
                       dir, d->nskipped, d->nskipped ? d->skip_why[0] : "?");
        goto err;
    }
    if (mixed) {
        rc = report_mixed_c(d, cs, e);
        goto err;
    }
    d->C = cs[0];
    free(cs);
    *out = d;
    return 0;
err:
    free(cs);
    sola_dataset_free(d);
    return rc;
}

int sola_dataset_find(const sola_dataset *d, const char *name)
{
    return sola_find_sorted(d->items, d->n, sizeof *d->items, offsetof(sola_dataset_item, name),
                            name);
}

/* ---- reads ----------------------------------------------------------------------------- */

/* Opens item i and checks it still has the shape seen by the scan. */
static int open_item(const sola_dataset *d, int i, char *path, size_t pn, sola_payload *p,
                     sola_err *e)
{
    if (i < 0 || i >= d->n)
        return sola_errf(e, SOLA_EINVAL, "%s: item %d out of range (%d items)", d->dir, i, d->n);
    if (!sola_dataset_path(d, i, path, pn))
        return sola_errf(e, SOLA_EINVAL, "%s: path too long", d->dir);
    int rc = sola_payload_open(path, d->items[i].npz, p, e);
    if (rc)
        return rc;
    if (p->T != d->items[i].T || p->C != d->C) {
        rc = sola_errf(e, SOLA_ESHAPE,
                       "%s: changed since the dataset was opened (now [%lld, %d], was [%lld, %d])",
                       path, (long long)p->T, p->C, (long long)d->items[i].T, d->C);
        sola_payload_close(p);
    }
    return rc;
}

/* The common case without a map: a .npy of little-endian f4 in C order whose header
 * fits the first 4 KiB. Reads the header and then just the window with pread.
 * Returns 1 if it did the read; 0 to let the general path do it (and report any
 * error with its full message). */
static int window_pread(const sola_dataset *d, const char *path, int i, int64_t start, int W,
                        float *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    unsigned char hb[4096];
    struct stat st;
    sola_npy_info info;
    int ok = 0;
    size_t end;
    ssize_t n = pread(fd, hb, sizeof hb, 0);
    if (n > 0 && fstat(fd, &st) == 0 &&
        sola_npy_inspect(hb, (size_t)n, path, 0, &info, NULL) == 0 &&
        sola_npy_info_is_f4c(&info) &&
        !sola_add_size(info.data_off, info.data_len, &end) && end == (size_t)st.st_size &&
        (info.ndim == 2 || (info.ndim == 3 && info.shape[0] == 1))) {
        int64_t T = info.shape[info.ndim - 2], C = info.shape[info.ndim - 1];
        if (T == d->items[i].T && C == d->C) {
            size_t want = (size_t)W * (size_t)C * sizeof *out, got = 0;
            off_t pos = (off_t)(info.data_off + (size_t)start * (size_t)C * sizeof *out);
            while (got < want) {
                ssize_t r = pread(fd, (char *)out + got, want - got, pos + (off_t)got);
                if (r <= 0)
                    break;
                got += (size_t)r;
            }
            ok = got == want;
        }
    }
    close(fd);
    return ok;
}

int sola_dataset_window(const sola_dataset *d, int i, int64_t start, int W, float *out,
                        sola_err *e)
{
    char path[4096];
    if (i >= 0 && i < d->n && (W < 1 || start < 0 || start > d->items[i].T - W))
        return sola_errf(e, SOLA_EINVAL, "%s/%s: window [%lld, %lld) outside its %lld snippets",
                         d->dir, d->items[i].file, (long long)start, (long long)start + W,
                         (long long)d->items[i].T);
    if (i >= 0 && i < d->n && (d->ct || d->items[i].kind > SOLA_ITEM_NPZ)) {
        if (d->items[i].kind == SOLA_ITEM_H5 && !d->ct)
            return sola_h5_read_rows(d->dir, d->items[i].file, start, W, d->C, out, e);
        sola_array a;
        int rc = sola_dataset_load(d, i, &a, e);
        if (!rc)
            memcpy(out, a.data + (size_t)start * (size_t)d->C,
                   (size_t)W * (size_t)d->C * sizeof *out);
        sola_array_free(&a);
        return rc;
    }
    if (i >= 0 && i < d->n && !d->items[i].npz && sola_dataset_path(d, i, path, sizeof path) &&
        window_pread(d, path, i, start, W, out))
        return 0;
    sola_payload p;
    int rc = open_item(d, i, path, sizeof path, &p, e);
    if (rc)
        return rc;
    size_t n = (size_t)W * (size_t)d->C, off = (size_t)start * (size_t)d->C;
    if (p.f4) {
        memcpy(out, p.f4 + off, n * sizeof *out);
    } else if ((rc = sola_payload_full(&p, path, e)) == 0) {
        memcpy(out, p.full.data + off, n * sizeof *out);
    }
    sola_payload_close(&p);
    return rc;
}

int sola_dataset_load(const sola_dataset *d, int i, sola_array *out, sola_err *e)
{
    char path[4096];
    memset(out, 0, sizeof *out);
    if (i >= 0 && i < d->n && (d->ct || d->items[i].kind > SOLA_ITEM_NPZ)) {
        int rc = sola_layout_load(d, i, out, e);
        if (!rc && (out->shape[0] != d->items[i].T || out->shape[1] != d->C)) {
            sola_dataset_path(d, i, path, sizeof path);
            rc = sola_errf(e, SOLA_ESHAPE, "%s: changed since the dataset was opened (now "
                           "[%lld, %lld], was [%lld, %d])", path, (long long)out->shape[0],
                           (long long)out->shape[1], (long long)d->items[i].T, d->C);
            sola_array_free(out);
        }
        return rc;
    }
    sola_payload p;
    int rc = open_item(d, i, path, sizeof path, &p, e);
    if (rc)
        return rc;
    size_t n = (size_t)p.T * (size_t)p.C; /* checked by sola_payload_open */
    if (p.f4) {
        out->data = malloc(n ? n * sizeof(float) : 1);
        if (!out->data) {
            sola_payload_close(&p);
            return sola_errf(e, SOLA_ENOMEM, "%s: out of memory loading %zu floats", path, n);
        }
        memcpy(out->data, p.f4, n * sizeof(float));
    } else {
        if ((rc = sola_payload_full(&p, path, e))) {
            sola_payload_close(&p);
            return rc;
        }
        out->data = p.full.data; /* take ownership */
        p.full.data = NULL;
    }
    out->ndim = 2;
    out->shape[0] = p.T;
    out->shape[1] = p.C;
    sola_payload_close(&p);
    return 0;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int sola_dataset_write_missing(const sola_dataset *d, const char *path, sola_err *e)
{
    size_t len = 0;
    for (int i = 0; i < d->nskipped; i++)
        len += strlen(d->skipped[i]) + 1;
    char *buf = malloc(len + 1), *p = buf;
    char **names = malloc(sizeof *names * ((size_t)d->nskipped + 1));
    if (!buf || !names) {
        free(buf);
        free(names);
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", path);
    }
    /* sorted, like the items, whatever stage found each one */
    memcpy(names, d->skipped, sizeof *names * (size_t)d->nskipped);
    qsort(names, (size_t)d->nskipped, sizeof *names, str_cmp);
    for (int i = 0; i < d->nskipped; i++)
        p += sprintf(p, "%s\n", names[i]);
    int rc = sola_write_atomic(path, buf, len, e);
    free(buf);
    free(names);
    return rc;
}
