/* testutil.c -- see testutil.h. */
#include "testutil.h"

#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *tu_src(void)
{
    const char *s = getenv("SOLA_SRC");
    return s ? s : ".";
}

const char *tu_bin(void)
{
    const char *s = getenv("SOLA_BIN");
    return s ? s : ".";
}

char *tu_path(const char *rel)
{
    size_t n = strlen(tu_src()) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", tu_src(), rel);
    return p;
}

char *tu_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/solatest.XXXXXX", t ? t : "/tmp");
    if (!mkdtemp(buf))
        return NULL;
    return strdup(buf);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

void tu_rmtree(const char *dir)
{
    if (dir)
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

double tu_max_rel_err(const float *a, const float *b, size_t n)
{
    double maxd = 0, maxb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(a[i]) || isnan(b[i]))
            return INFINITY;
        if (d > maxd)
            maxd = d;
        if (fabs((double)b[i]) > maxb)
            maxb = fabs((double)b[i]);
    }
    return maxd / (maxb > 1e-30 ? maxb : 1e-30);
}

void *tu_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

int tu_write(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int rc = fwrite(buf, 1, len, f) == len ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

int tu_system(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

int tu_in_ci(void)
{
    const char *ci = getenv("CI");
    return ci && (!strcmp(ci, "true") || !strcmp(ci, "1"));
}

/* check runs each test in a child process (CK_FORK): skips are appended to a file
 * that tu_run reads when the suite is done. */
#define TU_SKIPFILE_ENV "SOLA_TU_SKIPFILE"

static void record_skip(const char *kind, const char *msg)
{
    printf("SKIPPED (%s): %s\n", kind, msg);
    fflush(stdout);
    const char *path = getenv(TU_SKIPFILE_ENV);
    FILE *f = path ? fopen(path, "a") : NULL;
    if (f) {
        fprintf(f, "  %s: %s\n", kind, msg);
        fclose(f);
    }
}

void tu_skip(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (tu_in_ci())
        ck_abort_msg("CI=true, so this check must run, but: %s "
                     "(scripts/deps.sh --test installs what the tests need)", msg);
    record_skip("missing tool", msg);
}

void tu_skip_forbidden(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    record_skip("the machine forbids this check, also under CI", msg);
}

int tu_run(Suite *s)
{
    const char *t = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/solatest-skips.XXXXXX", t && *t ? t : "/tmp");
    int fd = mkstemp(path);
    if (fd >= 0) {
        close(fd);
        setenv(TU_SKIPFILE_ENV, path, 1);
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char *skips = fd >= 0 ? tu_read(path, NULL) : NULL;
    if (fd >= 0)
        unlink(path);
    int rc = failed ? 1 : 0;
    if (!failed && skips && *skips) {
        printf("Every check that ran passed, but some could not run (exit 77 = skipped):\n%s",
               skips);
        rc = 77;
    }
    free(skips);
    return rc;
}
