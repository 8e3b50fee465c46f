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

/* Skipping a check (the test executable then exits 77, which ctest reports as
 * "skipped", never as passed). Call inside a START_TEST, then return from it.
 * tu_skip: a tool or package the check needs is missing. Under CI=true this FAILS
 *   instead (CI installs everything: scripts/deps.sh --test).
 * tu_skip_forbidden: the machine itself forbids the check (no permission to mount, no
 *   user namespaces): a skip even under CI=true, and the output says so. */
void tu_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tu_skip_forbidden(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 1 under CI=true (the variable CI systems set). */
int tu_in_ci(void);

/* Standard main body: run a suite with check; returns 1 if a check failed, else 77 if
 * one was skipped (tu_skip), else 0. */
#include <check.h>
int tu_run(Suite *s);

#endif
