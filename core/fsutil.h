/* fsutil.h -- whole-file reads, read-only maps and atomic writes.
 *
 * Everything the project writes goes through sola_afile: data goes to a temporary
 * file beside the target ("DIR/.NAME.tmp.PID.N"), is fsync'ed, renamed over the target,
 * and the directory is fsync'ed, so a reader sees the old file or the new one,
 * never half of one, even across kill -9 or power loss. */
#ifndef SOLA_FSUTIL_H
#define SOLA_FSUTIL_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"

/* Read-only map of a whole file. Empty files map to data=NULL,len=0. */
typedef struct sola_map {
    void *data;
    size_t len;
} sola_map;
int sola_map_file(const char *path, sola_map *m, sola_err *e);
void sola_unmap(sola_map *m);

/* Atomic file writer. sola_afile_open creates the temporary; write any number of
 * chunks; sola_afile_commit fsyncs and renames (and closes), sola_afile_abort
 * removes the temporary. After commit or abort the struct is dead. ENOSPC maps to
 * SOLA_ENOSPC. */
typedef struct sola_afile {
    FILE *fp;
    char *tmp;
    char *path;
    int failed;
} sola_afile;
int sola_afile_open(sola_afile *a, const char *path, sola_err *e);
int sola_afile_write(sola_afile *a, const void *buf, size_t len, sola_err *e);
int sola_afile_commit(sola_afile *a, sola_err *e);
void sola_afile_abort(sola_afile *a);

/* Like sola_afile_write, for big buffers: when buf and the file's position are aligned
 * to SOLA_DIO_ALIGN, the aligned part goes with O_DIRECT, from buf to the device
 * without a copy into the page cache (the copy is the write's whole CPU cost, and
 * fresh page-cache pages cost more on VMs whose free memory goes back to the host);
 * the rest, or all of it where the file system refuses O_DIRECT, is written as usual.
 * Commit still fsyncs. Same bytes in the file either way. */
#define SOLA_DIO_ALIGN 4096
int sola_afile_write_direct(sola_afile *a, const void *buf, size_t len, sola_err *e);

/* One-shot atomic write of a buffer. */
int sola_write_atomic(const char *path, const void *buf, size_t len, sola_err *e);

/* fsync a directory (after a rename or unlink inside it). */
int sola_fsync_dir(const char *dir);
/* fsync the file at path (opened read-only). 0, or -1 with errno set. */
int sola_fsync_path(const char *path);

/* mkdir -p; 0 or SOLA_EIO. */
int sola_mkdirs(const char *path, int mode, sola_err *e);

/* Basename without the final extension into out (size n). */
void sola_stem(const char *path, char *out, size_t n);
/* 1 if path ends with ext (".npy"), case-sensitive. */
int sola_has_ext(const char *path, const char *ext);

/* The one rule for the names users give models, datasets and items, which become
 * single path components: 1 to SOLA_NAME_MAX of A-Z a-z 0-9 . _ -, not starting with
 * '.' or '-' (so never hidden, never an option, never "..", never a '/'). */
#define SOLA_NAME_MAX 64
/* 1 when s (may be NULL) is such a name. */
int sola_name_ok(const char *s);
/* The same with a message saying what is wrong with `what` (SOLA_EINVAL), or 0. */
int sola_name_check(const char *what, const char *s, sola_err *e);

#endif
