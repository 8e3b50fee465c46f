/* testutil.h -- helpers shared by the check test executables. */
#ifndef SOLA_TESTUTIL_H
#define SOLA_TESTUTIL_H

#include <stddef.h>

/* Source tree root (env SOLA_SRC, set by ctest; "." otherwise). */
const char *tu_src(void);
/* Build tree root (env SOLA_BIN; "." otherwise). */
const char *tu_bin(void);
/* malloc'd "ROOT/rel" under the source tree. */
char *tu_path(const char *rel);
/* Fresh empty directory under $TMPDIR (malloc'd path); removed by tu_rmtree. */
char *tu_tmpdir(void);
void tu_rmtree(const char *dir);
/* max|a-b| / max(max|b|, 1e-30): the "relative max error" of our acceptance bars. */
double tu_max_rel_err(const float *a, const float *b, size_t n);
/* Reads a whole file into a malloc'd buffer (+1 NUL); NULL on failure. */
void *tu_read(const char *path, size_t *len);
/* Writes a buffer to a file; 0 on success. */
int tu_write(const char *path, const void *buf, size_t len);
/* Runs a shell command and returns its exit status (-1 if it did not exit). */
int tu_system(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Standard main body: run a suite with check, return failures != 0. */
#include <check.h>
int tu_run(Suite *s);

#endif
