/* api_helpers.h -- what the handlers share besides the contract of api.h: media
 * types and content negotiation, the memory budget seen from a request, checks of
 * names and versions, the growable byte buffer, float32 encoders (decimal text, JSON
 * arrays, the .npy header) and the JSON features parser. The server uses some of them
 * too (its metrics text, its event streams). Each section names the file that
 * implements it. Needs only the types of api.h, declared here without it. */
#ifndef SOLA_API_HELPERS_H
#define SOLA_API_HELPERS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "array.h"
#include "err.h"

typedef struct api_ctx api_ctx;
typedef struct api_response api_response;

/* ---- mediatype.c ---- */

/* Media types we speak. */
enum { API_MT_NONE, API_MT_JSON, API_MT_NPY, API_MT_NPZ, API_MT_PNG, API_MT_OCTET,
       API_MT_OTHER };
const char *api_mt_name(int mt);
/* Media type of a Content-Type value (parameters ignored, case-insensitive). */
int api_mt_parse(const char *ctype);
/* Content negotiation: picks among cands (preference order) per the Accept header
 * (q-values, type/ *, * / *). No header -> cands[0]. Returns API_MT_NONE when nothing
 * is acceptable (406). */
int api_negotiate(const char *accept, const int *cands, int ncand);

/* ---- membudget.c ---- */

/* Reserves n bytes of the memory budget for `what` ("the reply", ...): 0, or -1 with
 * rs filled: 413 when n exceeds the whole budget, 503 + Retry-After when it does not
 * fit now. Give the bytes back with api_mem_give. */
int api_mem_reserve(const api_ctx *ctx, size_t n, const char *what, api_response *rs);
void api_mem_give(const api_ctx *ctx, size_t n);
/* Counts n bytes that already exist (a parsed copy); give back with api_mem_give. */
void api_mem_force(const api_ctx *ctx, size_t n);

/* ---- names.c ---- */

/* Constant-time comparison of two byte strings (time depends only on lengths). */
int api_ct_equal(const char *a, size_t na, const char *b, size_t nb);

/* Names of models/datasets/items: 1..64 chars of [A-Za-z0-9._-], not starting with
 * '.' or '-'. 0 ok, else SOLA_EINVAL with a message naming `what`. */
int api_check_name(const char *what, const char *s, sola_err *e);
/* Positive decimal integer (no sign, no leading zero) <= API_MAX_VERSION; 0 or EINVAL. */
int api_parse_version(const char *what, const char *s, int *out, sola_err *e);

/* ---- buf.c ---- */

/* Growable byte buffer for encoders. Functions return 0 or SOLA_ENOMEM; after a
 * failure the buffer stays failed (later appends are no-ops) so callers check once. */
typedef struct api_buf {
    char *p;
    size_t len, cap;
    int failed;
} api_buf;
int api_buf_reserve(api_buf *b, size_t extra);
int api_buf_put(api_buf *b, const void *s, size_t n);
int api_buf_puts(api_buf *b, const char *s);
int api_buf_printf(api_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* JSON string with escapes. */
int api_buf_json_str(api_buf *b, const char *s);
void api_buf_free(api_buf *b);

/* ---- encode.c ---- */

/* 10^0 .. 10^22, each exact as a double (the decimal <-> float32 conversions' scale:
 * api_fmt_float here, api_parse_float_fast in jsonfeat.c). */
extern const double api_pow10[23];

/* Shortest-ish decimal form of a float32 that reads back to exactly the same float
 * (9 significant digits, trailing zeros dropped). Writes at most 16 chars + NUL into
 * out; returns the length. Non-finite values become null. */
int api_fmt_float(float v, char *out);
/* JSON nested arrays of a [d0, d1] or [d0, d1, d2] float tensor. */
int api_buf_json_floats(api_buf *b, const float *data, int ndim, const int64_t *shape);
/* The same, checking *cancel (may be NULL) at every row: SOLA_ECANCEL once it is set. */
int api_buf_json_floats_c(api_buf *b, const float *data, int ndim, const int64_t *shape,
                          const atomic_int *cancel);

/* The header of a v1.0 '<f4' C-order .npy of the given shape (ndim 1..3): writes
 * at most 192 bytes into out and returns its length, a multiple of 64, so the float
 * data that follows is aligned. Lets a handler compute straight into a reply. */
size_t api_npy_header(int ndim, const int64_t *shape, char out[192]);

/* ---- jsonfeat.c ---- */

/* Decimal JSON number text (n bytes, already validated as JSON) to the correctly
 * rounded float32, for the common cases; returns 0 when the caller must use strtof. */
int api_parse_float_fast(const char *s, size_t n, float *out);

/* Parses a feature request body in JSON: a top-level object whose "features" member
 * is a [T][C] or [B][T][C] array of numbers (read straight into float32 without
 * building a jansson tree: bodies reach tens of MB) and whose other members are
 * returned in *rest (a new reference to an object). Errors (SOLA_EFORMAT) name the
 * byte offset or the element ("features[3][7]"). */
int api_parse_features_json(const char *buf, size_t len, sola_array *out, json_t **rest,
                            sola_err *e);

#endif
