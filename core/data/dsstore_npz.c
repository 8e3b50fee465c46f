/* dsstore_npz.c -- a whole dataset from a .npz upload (sola_ds_put_npz, see
 * dsstore.h): members extracted one at a time through a fixed buffer into a hidden
 * staging directory, validated, then swapped in with one rename. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "dataset.h"
#include "dsstore.h"
#include "dsstore_int.h"
#include "fsutil.h"
#include "npy.h"
#include "npz.h"

/* ---- a whole dataset from a .npz --------------------------------------------- */

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int write_all(int fd, const void *buf, size_t n, const char *what, sola_err *e)
{
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return sola_errf(e, sola_errno_code(errno), "%s: %s", what, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int pread_all(int fd, void *buf, size_t n, off_t off)
{
    char *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

/* Writes member en of the archive (open as fd, len bytes) to path: stored members
 * are copied, deflated ones inflated; the CRC and sizes are checked on the way. */
static int extract_member(int fd, size_t len, const sola_npz_entry *en, const char *path,
                          const char *shown, unsigned char *ibuf, unsigned char *obuf,
                          sola_err *e)
{
    unsigned char lh[30];
    size_t off = en->offset, end;
    if (off > len || len - off < 30 || pread_all(fd, lh, 30, (off_t)off) ||
        rd32(lh) != 0x04034b50)
        return sola_errf(e, SOLA_EFORMAT, "%s: bad local header in the archive", shown);
    off += 30 + (size_t)(lh[26] | lh[27] << 8) + (size_t)(lh[28] | lh[29] << 8);
    if (sola_add_size(off, en->csize, &end) || end > len)
        return sola_errf(e, SOLA_EFORMAT, "%s: member data runs past the end of the archive "
                         "(truncated upload?)", shown);
    if (en->method != 0 && en->method != 8)
        return sola_errf(e, SOLA_EUNSUP, "%s: compression method %d (only stored or "
                         "deflated)", shown, en->method);
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0)
        return sola_errf(e, sola_errno_code(errno), "%s: %s", shown, strerror(errno));
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    int rc = 0, zinit = 0;
    if (en->method == 8) {
        if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {
            close(out);
            return sola_errf(e, SOLA_ENOMEM, "%s: zlib init failed", shown);
        }
        zinit = 1;
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    size_t left = en->csize, produced = 0;
    int zdone = 0;
    while (!rc && left > 0 && !zdone) {
        size_t n = left < CHUNK ? left : CHUNK;
        if (pread_all(fd, ibuf, n, (off_t)off)) {
            rc = sola_errf(e, SOLA_EIO, "%s: cannot read the archive", shown);
            break;
        }
        off += n;
        left -= n;
        if (!zinit) {
            crc = crc32(crc, ibuf, (uInt)n);
            produced += n;
            rc = write_all(out, ibuf, n, shown, e);
            continue;
        }
        zs.next_in = ibuf;
        zs.avail_in = (uInt)n;
        while (!rc && zs.avail_in > 0 && !zdone) {
            zs.next_out = obuf;
            zs.avail_out = CHUNK;
            int zr = inflate(&zs, Z_NO_FLUSH);
            if (zr != Z_OK && zr != Z_STREAM_END) {
                rc = sola_errf(e, SOLA_EFORMAT, "%s: corrupt deflate data (%s)", shown,
                               zs.msg ? zs.msg : "zlib error");
                break;
            }
            size_t got = CHUNK - zs.avail_out;
            /* bounded by the declared size: a zip bomb stops here */
            if (got > en->usize - produced) {
                rc = sola_errf(e, SOLA_EFORMAT, "%s: inflates past its declared size of %zu "
                               "bytes", shown, en->usize);
                break;
            }
            crc = crc32(crc, obuf, (uInt)got);
            produced += got;
            rc = write_all(out, obuf, got, shown, e);
            zdone = zr == Z_STREAM_END;
        }
    }
    if (zinit)
        inflateEnd(&zs);
    /* Same rule as sola_npz_read: a deflated member must end its stream, so that what
     * the store accepts, refine and the CLI read too (fuzz finding F4). */
    if (!rc && zinit && !zdone)
        rc = sola_errf(e, SOLA_EFORMAT, "%s: deflate stream does not end (truncated upload?)",
                       shown);
    if (!rc && produced != en->usize)
        rc = sola_errf(e, SOLA_EFORMAT, "%s: holds %zu bytes but the archive declares %zu "
                       "(truncated upload?)", shown, produced, en->usize);
    if (!rc && (uint32_t)crc != en->crc)
        rc = sola_errf(e, SOLA_EFORMAT, "%s: CRC mismatch (corrupt archive)", shown);
    /* no fsync here: the whole staging directory is synced once (sola_ds_put_npz) */
    if (close(out) != 0 && !rc)
        rc = sola_errf(e, sola_errno_code(errno), "%s: %s", shown, strerror(errno));
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Refuses member names that are not item names, and duplicates. */
static int check_members(const sola_npz *z, const char *ds, sola_err *e)
{
    if (z->n == 0)
        return sola_errf(e, SOLA_EFORMAT, "dataset %s: the .npz archive has no members", ds);
    const char **names = malloc(sizeof *names * (size_t)z->n);
    if (!names)
        return sola_errf(e, SOLA_ENOMEM, "out of memory");
    int rc = 0;
    for (int i = 0; i < z->n && !rc; i++) {
        names[i] = z->entries[i].name;
        if (!sola_name_ok(names[i]))
            rc = sola_errf(e, SOLA_EINVAL, "dataset %s: member \"%.80s\" is not a valid item "
                           "name (1-64 of A-Z a-z 0-9 . _ -, no '/', not starting with '.' "
                           "or '-')", ds, names[i]);
    }
    if (!rc) {
        qsort(names, (size_t)z->n, sizeof *names, cmp_str);
        for (int i = 1; i < z->n && !rc; i++)
            if (!strcmp(names[i - 1], names[i]))
                rc = sola_errf(e, SOLA_EFORMAT, "dataset %s: member \"%s\" appears twice", ds,
                               names[i]);
    }
    free(names);
    return rc;
}

int sola_ds_put_npz(const char *root, const char *ds, const char *src, int flags,
                    int *created, int *nitems, sola_err *e)
{
    int rc = sola_ds__check_names(root, ds, NULL, NULL, e);
    if (rc)
        return rc;
    sola_npz z;
    memset(&z, 0, sizeof z);
    /* the directory parse maps the file but touches only its directory pages */
    if ((rc = sola_npz_open(src, &z, e))) {
        sola_ds__rename_in_msg(e, src, "the uploaded .npz");
        if (rc != SOLA_ENOMEM && rc != SOLA_EIO)
            rc = e ? (e->code = SOLA_EFORMAT) : SOLA_EFORMAT;
        return rc;
    }
    if ((rc = check_members(&z, ds, e))) {
        sola_npz_close(&z);
        return rc;
    }
    /* The store lock is held only to create the staging directory and to swap it in:
     * extracting thousands of members under it stopped every other upload and
     * deletion for seconds. A staging directory in progress carries its own lock
     * (flock on the directory), which sola_ds_cleanup respects. */
    int lk = sola_ds__store_lock(root, e);
    if (lk < 0) {
        sola_npz_close(&z);
        return lk;
    }
    char stage[PATHN], dir[PATHN];
    sola_ds__pf(stage, "%s/.staging.%s.XXXXXX", root, ds);
    sola_ds__pf(dir, "%s/%s", root, ds);
    unsigned char *ibuf = malloc(CHUNK), *obuf = malloc(CHUNK);
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    int staged = 0, sfd = -1;
    if (!ibuf || !obuf) {
        rc = sola_errf(e, SOLA_ENOMEM, "out of memory");
        goto out;
    }
    if (fd < 0) {
        rc = sola_errf(e, SOLA_EIO, "upload: %s", strerror(errno));
        goto out;
    }
    if (!mkdtemp(stage)) {
        rc = sola_errf(e, sola_errno_code(errno), "dataset %s: cannot create a staging directory: %s",
                       ds, strerror(errno));
        goto out;
    }
    staged = 1;
    sfd = open(stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sfd < 0 || flock(sfd, LOCK_EX) != 0) {
        rc = sola_errf(e, sola_errno_code(errno), "dataset %s: staging directory: %s", ds,
                       strerror(errno));
        goto out;
    }
    close(lk);
    lk = -1;
    int C0 = 0;
    const char *first = NULL;
    for (int i = 0; i < z.n && !rc; i++) {
        const sola_npz_entry *en = &z.entries[i];
        char path[PATHN], shown[200];
        sola_ds__pf(path, "%s/%s.npy", stage, en->name);
        snprintf(shown, sizeof shown, "dataset %s, member %s", ds, en->name);
        if ((rc = extract_member(fd, z.len, en, path, shown, ibuf, obuf, e)))
            break;
        int64_t T;
        int C;
        if ((rc = sola_dataset_peek_file(path, &T, &C, e)) ||
            (rc = sola_npy_check_values(path, flags & SOLA_NPY_ALLOW_NONFINITE, e))) {
            sola_ds__rename_in_msg(e, path, shown);
            break;
        }
        if (!first) {
            first = en->name;
            C0 = C;
        } else if (C != C0) {
            rc = sola_errf(e, SOLA_ESHAPE, "%s has C=%d channels but member %s has C=%d; "
                           "items of one dataset share C", shown, C, first, C0);
        }
    }
    if (rc)
        goto out;
    /* one flush for the whole archive (was one fsync per member: 14-17 s for 5,000) */
    if (syncfs(sfd) != 0) {
        rc = sola_errf(e, sola_errno_code(errno), "dataset %s: syncfs: %s", ds, strerror(errno));
        goto out;
    }
    if ((lk = sola_ds__store_lock(root, e)) < 0) {
        rc = lk;
        lk = -1;
        goto out;
    }
    *created = access(dir, F_OK) != 0;
    if (*created) {
        if (rename(stage, dir) != 0) {
            rc = sola_errf(e, sola_errno_code(errno), "dataset %s: %s", ds, strerror(errno));
            goto out;
        }
        staged = 0;
    } else {
        /* Swap in one step so that readers never find the dataset missing; where the
         * filesystem cannot exchange, move the old one aside first. */
        if (renameat2(AT_FDCWD, stage, AT_FDCWD, dir, RENAME_EXCHANGE) != 0) {
            char aside[PATHN];
            sola_ds__pf(aside, "%s/.trash.%s.%ld", root, ds, (long)getpid());
            sola_ds_rmtree(aside);
            if (rename(dir, aside) != 0 || rename(stage, dir) != 0) {
                rc = sola_errf(e, sola_errno_code(errno), "dataset %s: %s", ds, strerror(errno));
                rename(aside, dir);
                goto out;
            }
            sola_ds_rmtree(aside);
        }
        /* stage now holds the old dataset: removed below */
    }
    sola_fsync_dir(root);
    if (nitems)
        *nitems = z.n;
out:
    if (staged)
        sola_ds_rmtree(stage);
    if (fd >= 0)
        close(fd);
    free(ibuf);
    free(obuf);
    sola_npz_close(&z);
    if (sfd >= 0)
        close(sfd); /* after the swap or the removal: its flock guarded the staging */
    if (lk >= 0)
        close(lk);
    return rc;
}

