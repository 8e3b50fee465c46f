/* fsutil.c -- file maps and the atomic write protocol (see fsutil.h). */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int sola_map_file(const char *path, sola_map *m, sola_err *e)
{
    m->data = NULL;
    m->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sola_errf(e, errno == ENOENT ? SOLA_ENOTFOUND : SOLA_EIO, "%s: %s", path,
                         strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return sola_errf(e, SOLA_EIO, "%s: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sola_errf(e, SOLA_EIO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return 0;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (p == MAP_FAILED)
        return sola_errf(e, SOLA_EIO, "%s: mmap: %s", path, strerror(err));
    m->data = p;
    m->len = (size_t)st.st_size;
    return 0;
}

void sola_unmap(sola_map *m)
{
    if (m->data)
        munmap(m->data, m->len);
    m->data = NULL;
    m->len = 0;
}

int sola_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static atomic_uint tmp_counter;

int sola_afile_open(sola_afile *a, const char *path, sola_err *e)
{
    memset(a, 0, sizeof *a);
    char *dup = strdup(path);
    if (!dup)
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", path);
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    const char *base = path + dirlen;
    size_t n = strlen(path) + 64;
    char *tmp = malloc(n);
    if (!tmp) {
        free(dup);
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, n, "%.*s.%s.tmp.%ld.%u", (int)dirlen, path, base, (long)getpid(),
             atomic_fetch_add(&tmp_counter, 1));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        free(tmp);
        free(dup);
        return sola_errf(e, sola_errno_code(err), "%s: cannot create temporary file: %s", path,
                         strerror(err));
    }
    a->fp = fdopen(fd, "wb");
    if (!a->fp) {
        close(fd);
        unlink(tmp);
        free(tmp);
        free(dup);
        return sola_errf(e, SOLA_ENOMEM, "%s: fdopen failed", path);
    }
    a->tmp = tmp;
    a->path = dup;
    return 0;
}

int sola_afile_write(sola_afile *a, const void *buf, size_t len, sola_err *e)
{
    if (a->failed)
        return sola_errf(e, SOLA_EIO, "%s: earlier write failed", a->path);
    if (len && fwrite(buf, 1, len, a->fp) != len) {
        int err = errno;
        a->failed = 1;
        return sola_errf(e, sola_errno_code(err), "%s: write failed: %s", a->path, strerror(err));
    }
    return 0;
}

/* write(2) of all of buf, through EINTR; 0 or the errno. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t r = write(fd, buf, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? errno : EIO;
        buf += r;
        len -= (size_t)r;
    }
    return 0;
}

int sola_afile_write_direct(sola_afile *a, const void *buf, size_t len, sola_err *e)
{
    if (a->failed)
        return sola_errf(e, SOLA_EIO, "%s: earlier write failed", a->path);
    int err = fflush(a->fp) ? errno : 0, fd = fileno(a->fp);
    const char *b = buf;
    size_t done = 0, bulk = len / SOLA_DIO_ALIGN * SOLA_DIO_ALIGN;
    off_t pos = err ? -1 : lseek(fd, 0, SEEK_CUR);
    int fl = pos >= 0 ? fcntl(fd, F_GETFL) : -1;
    if (bulk && pos >= 0 && pos % SOLA_DIO_ALIGN == 0 && (uintptr_t)b % SOLA_DIO_ALIGN == 0 &&
        fl >= 0 && fcntl(fd, F_SETFL, fl | O_DIRECT) == 0) {
        /* A file system that refuses (EINVAL) or stops short leaves the rest to the
         * buffered write below, which also reports a real error (a full disk) */
        while (done < bulk) {
            ssize_t r = write(fd, b + done, bulk - done);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0 || (size_t)r % SOLA_DIO_ALIGN)
                break;
            done += (size_t)r;
        }
        if (done < bulk && lseek(fd, pos + (off_t)done, SEEK_SET) < 0)
            err = errno;
        if (fcntl(fd, F_SETFL, fl) != 0 && !err)
            err = errno;
    }
    if (!err)
        err = write_all(fd, b + done, len - done);
    if (err) {
        a->failed = 1;
        return sola_errf(e, sola_errno_code(err), "%s: write failed: %s", a->path, strerror(err));
    }
    return 0;
}

static void afile_release(sola_afile *a)
{
    free(a->tmp);
    free(a->path);
    a->tmp = a->path = NULL;
    a->fp = NULL;
}

int sola_afile_commit(sola_afile *a, sola_err *e)
{
    int err = 0;
    if (a->failed)
        err = EIO;
    if (!err && fflush(a->fp) != 0)
        err = errno;
    if (!err && fsync(fileno(a->fp)) != 0)
        err = errno;
    if (fclose(a->fp) != 0 && !err)
        err = errno;
    a->fp = NULL;
    if (!err && rename(a->tmp, a->path) != 0)
        err = errno;
    if (err) {
        unlink(a->tmp);
        int rc = sola_errf(e, sola_errno_code(err), "%s: %s", a->path, strerror(err));
        afile_release(a);
        return rc;
    }
    char *d = strdup(a->path);
    if (d) {
        sola_fsync_dir(dirname(d));
        free(d);
    }
    afile_release(a);
    return 0;
}

void sola_afile_abort(sola_afile *a)
{
    if (a->fp)
        fclose(a->fp);
    if (a->tmp)
        unlink(a->tmp);
    afile_release(a);
}

int sola_write_atomic(const char *path, const void *buf, size_t len, sola_err *e)
{
    sola_afile a;
    int rc = sola_afile_open(&a, path, e);
    if (rc)
        return rc;
    rc = sola_afile_write(&a, buf, len, e);
    if (rc) {
        sola_afile_abort(&a);
        return rc;
    }
    return sola_afile_commit(&a, e);
}

int sola_fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    errno = err;
    return rc;
}

int sola_mkdirs(const char *path, int mode, sola_err *e)
{
    char *p = strdup(path);
    if (!p)
        return sola_errf(e, SOLA_ENOMEM, "out of memory");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
            int err = errno;
            int rc = sola_errf(e, sola_errno_code(err), "%s: cannot create directory: %s", p,
                               strerror(err));
            free(p);
            return rc;
        }
        *s = '/';
    }
    int rc = 0;
    if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST)
        rc = sola_errf(e, sola_errno_code(errno), "%s: cannot create directory: %s", p,
                       strerror(errno));
    free(p);
    return rc;
}

void sola_stem(const char *path, char *out, size_t n)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    size_t len = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    if (n == 0)
        return;
    if (len >= n)
        len = n - 1;
    memcpy(out, b, len);
    out[len] = 0;
}

int sola_has_ext(const char *path, const char *ext)
{
    size_t a = strlen(path), b = strlen(ext);
    return a >= b && strcmp(path + a - b, ext) == 0;
}

static int name_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

int sola_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > SOLA_NAME_MAX || s[0] == '.' || s[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_char_ok((unsigned char)s[i]))
            return 0;
    return 1;
}

int sola_name_check(const char *what, const char *s, sola_err *e)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0)
        return sola_errf(e, SOLA_EINVAL, "%s is empty", what);
    if (n > SOLA_NAME_MAX)
        return sola_errf(e, SOLA_EINVAL, "%s is longer than %d characters", what,
                         SOLA_NAME_MAX);
    if (s[0] == '.' || s[0] == '-')
        return sola_errf(e, SOLA_EINVAL, "%s \"%.64s\" must not start with '.' or '-'", what,
                         s);
    for (size_t i = 0; i < n; i++)
        if (!name_char_ok((unsigned char)s[i]))
            return sola_errf(e, SOLA_EINVAL,
                             "%s may only hold letters, digits, '.', '_' and '-' "
                             "(found byte 0x%02x)",
                             what, (unsigned char)s[i]);
    return 0;
}
