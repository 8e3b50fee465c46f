/* fmtcheck.h -- helpers shared by test_npy, test_npz, test_safetensors and
 * test_malformed: the fixtures written by tests/make_malformed.py (expected.json,
 * malformed/EXPECTED.txt), float comparison against those values, and the check
 * for the numpy interpreter used by the interop tests. Implemented in fmtcheck.c
 * (library solatest). */
#ifndef SOLA_FMTCHECK_H
#define SOLA_FMTCHECK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "testutil.h"

/* expected.json as a new reference (caller json_decref's). Aborts the test if absent. */
json_t *fc_expected(void);

/* malloc'd path of a fixture file. */
char *fc_fmt(const char *name);

char *fc_bad(const char *name);

/* Asserts got[n] equals the JSON array exactly (the conversions are exact, so is the
 * float32 rounding of f8 values), NaN matching NaN. */
void fc_check_values(const char *what, const float *got, size_t n, const json_t *vals);

void fc_check_shape(const char *what, int ndim, const int64_t *shape, const json_t *js);

/* One row of malformed/EXPECTED.txt. */
typedef struct fc_case {
    char file[128], parser[8], code[16], substr[256];
} fc_case;

/* Reads the manifest rows whose parser is `parser` (NULL: all); returns a malloc'd
 * array and its count in *n. */
fc_case *fc_manifest(const char *parser, int *n);

/* Asserts a failure: the right code, the file named, the problem named. */
void fc_check_error(const fc_case *c, int rc, const sola_err *e);

/* 1 if /usr/bin/python3 can import numpy; otherwise skips (tu_skip: fails under CI). */
int fc_have_numpy(const char *what);

#endif
