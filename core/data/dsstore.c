/* dsstore.c -- the daemon's dataset store on disk (see dsstore.h): names, the
 * writers' lock, single items, removal, views, snapshots, recovery. Whole datasets
 * from a .npz are in dsstore_npz.c. */
#include "dsstore.h"
#include "dsstore_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset.h"
#include "fsutil.h"
#include "npy.h"

void sola_ds__pf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, PATHN, fmt, ap);
    va_end(ap);
}

int sola_ds__check_names(const char *root, const char *ds, const char *item, char *dir,
                         sola_err *e)
{
    if (!root || strlen(root) > PATHN - 256)
        return sola_errf(e, SOLA_EINVAL, "dataset store: the data directory path is too long");
    if (!sola_name_ok(ds))
        return sola_errf(e, SOLA_EINVAL, "dataset name \"%.80s\" is not valid (1-64 of "
                         "A-Z a-z 0-9 . _ -, not starting with '.' or '-')", ds ? ds : "");
    if (item && !sola_name_ok(item))
        return sola_errf(e, SOLA_EINVAL, "item name \"%.80s\" is not valid (1-64 of "
                         "A-Z a-z 0-9 . _ -, not starting with '.' or '-')", item);
    if (dir)
        sola_ds__pf(dir, "%s/%s", root, ds);
    return 0;
}

void sola_ds_info_free(sola_ds_info *d)
{
    if (d) {
        free(d->items);
        d->items = NULL;
    }
}

/* An item file of the store: "NAME.npy" or "NAME.npz", not hidden. */
static int item_file(const char *fname, char *stem, size_t n)
{
    if (fname[0] == '.' || !(sola_has_ext(fname, ".npy") || sola_has_ext(fname, ".npz")))
        return 0;
    size_t len = strlen(fname) - 4;
    if (len == 0 || len >= n)
        return 0;
    memcpy(stem, fname, len);
    stem[len] = '\0';
    return 1;
}

/* ---- the writers' lock ------------------------------------------------------- */

int sola_ds__store_lock(const char *root, sola_err *e)
{
    int rc = sola_mkdirs(root, 0755, e);
    if (rc)
        return rc;
    char p[PATHN];
    sola_ds__pf(p, "%s/.lock", root);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return sola_errf(e, sola_errno_code(errno), "%s: %s", p, strerror(errno));
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            int err = errno;
            close(fd);
            return sola_errf(e, SOLA_EIO, "%s: flock: %s", p, strerror(err));
        }
    }
    return fd;
}

/* ---- small file helpers ------------------------------------------------------ */

/* Copies src to dst (new file) through a fixed buffer, then fsyncs it. */
static int copy_file(const char *src, const char *dst, sola_err *e)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return sola_errf(e, SOLA_EIO, "upload: %s", strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        int err = errno;
        close(in);
        return sola_errf(e, sola_errno_code(err), "cannot create a file in the dataset: %s",
                         strerror(err));
    }
    char *buf = malloc(CHUNK);
    int rc = buf ? 0 : sola_errf(e, SOLA_ENOMEM, "out of memory");
    while (!rc) {
        ssize_t r = read(in, buf, CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = sola_errf(e, SOLA_EIO, "upload: read: %s", strerror(errno));
            break;
        }
        if (r == 0)
            break;
        for (ssize_t o = 0; o < r;) {
            ssize_t w = write(out, buf + o, (size_t)(r - o));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = sola_errf(e, sola_errno_code(errno), "storing the item: %s", strerror(errno));
                break;
            }
            o += w;
        }
    }
    if (!rc && fsync(out) != 0)
        rc = sola_errf(e, sola_errno_code(errno), "storing the item: fsync: %s", strerror(errno));
    free(buf);
    close(in);
    if (close(out) != 0 && !rc)
        rc = sola_errf(e, sola_errno_code(errno), "storing the item: %s", strerror(errno));
    if (rc)
        unlink(dst);
    return rc;
}

void sola_ds__rename_in_msg(sola_err *e, const char *hidden, const char *shown)
{
    if (!e)
        return;
    char *p = strstr(e->msg, hidden);
    if (!p)
        return;
    char out[SOLA_ERRLEN];
    size_t pre = (size_t)(p - e->msg);
    const char *post = p + strlen(hidden);
    size_t ls = strlen(shown), lp = strlen(post);
    if (pre + ls + lp >= sizeof out)
        return;
    memcpy(out, e->msg, pre);
    memcpy(out + pre, shown, ls);
    memcpy(out + pre + ls, post, lp + 1);
    memcpy(e->msg, out, pre + ls + lp + 1);
}

/* C of some item of dataset dir other than `except` (a stem); 0 if there is none. */
static int other_item_c(const char *dir, const char *except, char *which, size_t n,
                        sola_err *e)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    int C = 0;
    char stem[SOLA_NAME_MAX + 8];
    while ((de = readdir(d))) {
        if (!item_file(de->d_name, stem, sizeof stem) || (except && !strcmp(stem, except)))
            continue;
        char p[PATHN];
        sola_ds__pf(p, "%s/%s", dir, de->d_name);
        int64_t T;
        sola_err e2 = {0};
        if (sola_dataset_peek_file(p, &T, &C, &e2) == 0) {
            if (strlen(stem) < n)
                memcpy(which, stem, strlen(stem) + 1);
            break;
        }
        C = 0; /* an unreadable neighbour does not decide */
    }
    closedir(d);
    (void)e;
    return C;
}

/* ---- one item ---------------------------------------------------------------- */

int sola_ds_put_item(const char *root, const char *ds, const char *item, const char *src,
                     int flags, int *created, int64_t *Tout, int *Cout, sola_err *e)
{
    int rc = sola_ds__check_names(root, ds, item, NULL, e);
    if (rc)
        return rc;
    int lk = sola_ds__store_lock(root, e);
    if (lk < 0)
        return lk;
    char dir[PATHN], final[PATHN], hidden[PATHN], shown[160];
    sola_ds__pf(dir, "%s/%s", root, ds);
    sola_ds__pf(final, "%s/%s.npy", dir, item);
    sola_ds__pf(hidden, "%s/.up.%s.%ld.npy", dir, item, (long)getpid());
    snprintf(shown, sizeof shown, "dataset %s, item %s", ds, item);
    int new_dir = access(dir, F_OK) != 0;
    if (new_dir && mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = sola_errf(e, sola_errno_code(errno), "dataset %s: cannot create it: %s", ds,
                       strerror(errno));
        goto out;
    }
    unlink(hidden); /* a leftover of a crashed upload of the same item */
    /* A link costs nothing and needs no space; a copy is the fallback across
     * filesystems (uploads spooled outside the data directory). */
    if (link(src, hidden) == 0) {
        if (sola_fsync_path(hidden) != 0) {
            rc = sola_errf(e, sola_errno_code(errno), "%s: fsync: %s", shown, strerror(errno));
            goto fail;
        }
    } else if ((rc = copy_file(src, hidden, e))) {
        goto fail;
    }
    int64_t T;
    int C;
    if ((rc = sola_dataset_peek_file(hidden, &T, &C, e)) ||
        (rc = sola_npy_check_values(hidden, flags & SOLA_NPY_ALLOW_NONFINITE, e))) {
        sola_ds__rename_in_msg(e, hidden, shown);
        goto fail;
    }
    char other[SOLA_NAME_MAX + 8] = "";
    int C0 = other_item_c(dir, item, other, sizeof other, e);
    if (C0 && C0 != C) {
        rc = sola_errf(e, SOLA_ESHAPE,
                       "%s has C=%d channels but dataset %s holds C=%d (e.g. item %s); "
                       "items of one dataset share C",
                       shown, C, ds, C0, other);
        goto fail;
    }
    *created = access(final, F_OK) != 0;
    if (rename(hidden, final) != 0) {
        rc = sola_errf(e, sola_errno_code(errno), "%s: %s", shown, strerror(errno));
        goto fail;
    }
    unlink(hidden); /* rename() leaves both names when they were links to one file */
    /* a .npz item of the same name would shadow or duplicate the new one */
    char npz[PATHN];
    sola_ds__pf(npz, "%s/%s.npz", dir, item);
    if (unlink(npz) == 0)
        *created = 0;
    sola_fsync_dir(dir);
    if (new_dir)
        sola_fsync_dir(root);
    if (Tout)
        *Tout = T;
    if (Cout)
        *Cout = C;
    goto out;
fail:
    unlink(hidden);
    if (new_dir)
        rmdir(dir); /* only succeeds if nothing else arrived meanwhile */
out:
    close(lk);
    return rc;
}

/* ---- removal ----------------------------------------------------------------- */

int sola_ds_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) != 0) {
            /* a subdirectory (we never nest more than one level, but be thorough) */
            char p[PATHN];
            sola_ds__pf(p, "%s/%s", dir, de->d_name);
            if (errno == EISDIR || errno == EPERM)
                rc |= sola_ds_rmtree(p);
            else
                rc = -1;
        }
    }
    closedir(d);
    return rmdir(dir) == 0 ? rc : -1;
}

static int dir_has_items(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    char stem[SOLA_NAME_MAX + 8];
    int any = 0;
    while (!any && (de = readdir(d)))
        any = item_file(de->d_name, stem, sizeof stem);
    closedir(d);
    return any;
}

int sola_ds_delete(const char *root, const char *ds, const char *item, sola_err *e)
{
    char dir[PATHN];
    int rc = sola_ds__check_names(root, ds, item, dir, e);
    if (rc)
        return rc;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return sola_errf(e, SOLA_ENOTFOUND, "no dataset named \"%s\"", ds);
    int lk = sola_ds__store_lock(root, e);
    if (lk < 0)
        return lk;
    if (item) {
        char p[PATHN];
        int gone = 0;
        sola_ds__pf(p, "%s/%s.npy", dir, item);
        gone |= unlink(p) == 0;
        sola_ds__pf(p, "%s/%s.npz", dir, item);
        gone |= unlink(p) == 0;
        if (!gone) {
            rc = sola_errf(e, SOLA_ENOTFOUND, "dataset %s has no item named \"%s\"", ds, item);
            goto out;
        }
        sola_fsync_dir(dir);
        if (dir_has_items(dir))
            goto out;
    }
    /* Renamed away first: the dataset disappears in one step even if removing its
     * files takes long or is interrupted (sola_ds_recover finishes the job). */
    char aside[PATHN];
    sola_ds__pf(aside, "%s/.trash.%s.%ld", root, ds, (long)getpid());
    sola_ds_rmtree(aside);
    if (rename(dir, aside) != 0) {
        rc = errno == ENOENT ? sola_errf(e, SOLA_ENOTFOUND, "no dataset named \"%s\"", ds)
                             : sola_errf(e, SOLA_EIO, "dataset %s: %s", ds, strerror(errno));
        goto out;
    }
    sola_fsync_dir(root);
    sola_ds_rmtree(aside);
out:
    close(lk);
    return rc;
}

/* ---- views ------------------------------------------------------------------- */

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const sola_ds_item *)a)->name, ((const sola_ds_item *)b)->name);
}

/* Opens dataset `ds`'s folder (its path left in dir): NULL + *rc and e when the name
 * is not valid or no such dataset exists. */
static DIR *open_ds_dir(const char *root, const char *ds, char dir[PATHN], int *rc, sola_err *e)
{
    if ((*rc = sola_ds__check_names(root, ds, NULL, dir, e)))
        return NULL;
    DIR *d = opendir(dir);
    if (!d)
        *rc = sola_errf(e, errno == ENOENT || errno == ENOTDIR ? SOLA_ENOTFOUND : SOLA_EIO,
                        "no dataset named \"%s\"", ds);
    return d;
}

int sola_ds_stat(const char *root, const char *ds, sola_ds_info *out, sola_err *e)
{
    memset(out, 0, sizeof *out);
    char dir[PATHN];
    int rc;
    DIR *d = open_ds_dir(root, ds, dir, &rc, e);
    if (!d)
        return rc;
    snprintf(out->name, sizeof out->name, "%s", ds);
    int cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char stem[SOLA_NAME_MAX + 8];
        if (!item_file(de->d_name, stem, sizeof stem) || strlen(stem) > SOLA_NAME_MAX)
            continue;
        if (out->n == cap) {
            int nc = cap ? cap * 2 : 64;
            sola_ds_item *p = realloc(out->items, sizeof *p * (size_t)nc);
            if (!p) {
                rc = sola_errf(e, SOLA_ENOMEM, "out of memory");
                break;
            }
            out->items = p;
            cap = nc;
        }
        sola_ds_item *it = &out->items[out->n];
        memcpy(it->name, stem, strlen(stem) + 1); /* <= 64 bytes, checked above */
        char p[PATHN];
        sola_ds__pf(p, "%s/%s", dir, de->d_name);
        struct stat st;
        int C;
        if (stat(p, &st) != 0)
            continue; /* removed meanwhile */
        if ((rc = sola_dataset_peek_file(p, &it->T, &C, e)))
            break;
        it->bytes = (int64_t)st.st_size;
        if (out->n && C != out->C) {
            rc = sola_errf(e, SOLA_ESHAPE, "dataset %s: item %s has C=%d but others have C=%d",
                           ds, stem, C, out->C);
            break;
        }
        out->C = C;
        out->frames += it->T;
        out->bytes += it->bytes;
        out->n++;
    }
    closedir(d);
    if (rc) {
        sola_ds_info_free(out);
        return rc;
    }
    if (out->n > 1)
        qsort(out->items, (size_t)out->n, sizeof *out->items, cmp_item);
    return 0;
}

int sola_ds_dim(const char *root, const char *ds, int *C, sola_err *e)
{
    char dir[PATHN], which[SOLA_NAME_MAX + 8];
    int rc = sola_ds__check_names(root, ds, NULL, dir, e);
    if (rc)
        return rc;
    *C = other_item_c(dir, NULL, which, sizeof which, e);
    if (*C == 0)
        return sola_errf(e, SOLA_ENOTFOUND, "no dataset named \"%s\" (or it holds no readable "
                         "item); upload one with PUT /datasets/%s/items/NAME", ds, ds);
    return 0;
}

static int cmp_info(const void *a, const void *b)
{
    return strcmp(((const sola_ds_info *)a)->name, ((const sola_ds_info *)b)->name);
}

int sola_ds_list(const char *root, sola_ds_info **out, int *n, sola_err *e)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(root);
    if (!d)
        return errno == ENOENT ? 0 : sola_errf(e, SOLA_EIO, "%s: %s", root, strerror(errno));
    int cap = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!sola_name_ok(de->d_name))
            continue;
        char dir[PATHN];
        sola_ds__pf(dir, "%s/%s", root, de->d_name);
        DIR *sd = opendir(dir);
        if (!sd)
            continue;
        sola_ds_info info;
        memset(&info, 0, sizeof info);
        memcpy(info.name, de->d_name, strlen(de->d_name) + 1); /* a valid name: <= 64 */
        info.frames = -1;
        struct dirent *se;
        char stem[SOLA_NAME_MAX + 8];
        while ((se = readdir(sd))) {
            struct stat st;
            if (item_file(se->d_name, stem, sizeof stem) &&
                fstatat(dirfd(sd), se->d_name, &st, 0) == 0) {
                info.n++;
                info.bytes += (int64_t)st.st_size;
            }
        }
        closedir(sd);
        if (*n == cap) {
            int nc = cap ? cap * 2 : 16;
            sola_ds_info *p = realloc(*out, sizeof *p * (size_t)nc);
            if (!p) {
                rc = sola_errf(e, SOLA_ENOMEM, "out of memory");
                break;
            }
            *out = p;
            cap = nc;
        }
        (*out)[(*n)++] = info;
    }
    closedir(d);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
        return rc;
    }
    if (*n > 1)
        qsort(*out, (size_t)*n, sizeof **out, cmp_info);
    return 0;
}

int sola_ds_snapshot(const char *root, const char *ds, const char *dst, sola_err *e)
{
    char dir[PATHN];
    int rc;
    DIR *d = open_ds_dir(root, ds, dir, &rc, e);
    if (!d)
        return rc;
    if (mkdir(dst, 0755) != 0 && errno != EEXIST) {
        rc = sola_errf(e, sola_errno_code(errno), "%s: %s", dst, strerror(errno));
        closedir(d);
        return rc;
    }
    struct dirent *de;
    char stem[SOLA_NAME_MAX + 8];
    while ((de = readdir(d))) {
        if (!item_file(de->d_name, stem, sizeof stem))
            continue;
        char a[PATHN], b[PATHN];
        sola_ds__pf(a, "%s/%s", dir, de->d_name);
        sola_ds__pf(b, "%s/%s", dst, de->d_name);
        if (link(a, b) != 0 && errno != EEXIST) {
            rc = sola_errf(e, SOLA_EIO, "dataset %s: cannot link %s into a snapshot: %s", ds,
                           de->d_name, strerror(errno));
            break;
        }
    }
    closedir(d);
    if (rc)
        sola_ds_rmtree(dst);
    else
        sola_fsync_dir(dst);
    return rc;
}

int sola_ds_recover(const char *root)
{
    DIR *d = opendir(root);
    if (!d)
        return 0;
    /* under the writers' lock: a replica's upload in progress is not a leftover */
    int lk = sola_ds__store_lock(root, NULL);
    if (lk < 0) {
        closedir(d);
        return 0;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char p[PATHN];
        sola_ds__pf(p, "%s/%s", root, de->d_name);
        if (!strncmp(de->d_name, ".staging.", 9) || !strncmp(de->d_name, ".trash.", 7)) {
            /* a staging directory whose writer lives holds a flock on itself (.npz
             * uploads extract without the store lock) */
            int sd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            int busy = sd >= 0 && flock(sd, LOCK_EX | LOCK_NB) != 0;
            if (sd >= 0)
                close(sd);
            if (busy)
                continue;
            sola_ds_rmtree(p);
            n++;
            continue;
        }
        if (!sola_name_ok(de->d_name))
            continue;
        DIR *sd = opendir(p);
        if (!sd)
            continue;
        struct dirent *se;
        while ((se = readdir(sd)))
            if (!strncmp(se->d_name, ".up.", 4) && unlinkat(dirfd(sd), se->d_name, 0) == 0)
                n++;
        closedir(sd);
        if (!dir_has_items(p) && rmdir(p) == 0) /* emptied by a crash mid-create */
            n++;
    }
    closedir(d);
    close(lk);
    return n;
}
