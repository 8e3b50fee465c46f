/* err.h -- the error convention of libsolacore.
 *
 * Every fallible function returns 0 on success or a negative SOLA_E* code, and when
 * given a non-NULL sola_err fills it with a message that names the file or field
 * and says what is wrong ("x.npy: header declares 1000 x 64 floats but the file
 * holds 12 bytes of data"). Libraries never print and never exit; callers decide.
 * The codes exist so the daemon can choose an HTTP status without parsing text. */
#ifndef SOLA_ERR_H
#define SOLA_ERR_H

#include <stddef.h>

enum {
    SOLA_OK = 0,
    SOLA_EIO = -1,       /* open/read/write/rename failed (errno text in message) */
    SOLA_EFORMAT = -2,   /* malformed file or body: 400 */
    SOLA_ESHAPE = -3,    /* well-formed but wrong shape/dimension: 422 */
    SOLA_ENOMEM = -4,    /* allocation failed */
    SOLA_ETOOBIG = -5,   /* over a configured or format limit: 413 */
    SOLA_EUNSUP = -6,    /* valid but unsupported (dtype, version, compression): 415/400 */
    SOLA_ENOTFOUND = -7, /* named thing does not exist: 404 */
    SOLA_EINVAL = -8,    /* bad argument from the caller */
    SOLA_ECANCEL = -9,   /* cancelled through a flag */
    SOLA_ENOSPC = -10,   /* disk full: 507 */
    SOLA_ECOLLAPSE = -11, /* training stopped by the collapse guard (trainer.h) */
};

#define SOLA_ERRLEN 512

typedef struct sola_err {
    int code;
    char msg[SOLA_ERRLEN];
} sola_err;

/* Sets e->code and formats e->msg; returns code so callers can `return sola_errf(...)`.
 * e may be NULL. */
int sola_errf(sola_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Static name of a code ("format error"). */
const char *sola_strerror(int code);

/* The code of a failed file operation's errno: SOLA_ENOSPC for a full disk, a quota
 * or a file-size limit (ENOSPC, EDQUOT, EFBIG: "no space" to the caller alike),
 * SOLA_EIO for anything else. The project's one errno rule. */
int sola_errno_code(int err);

/* Overflow-checked size arithmetic: return 0 and set *out, or -1 on overflow. */
static inline int sola_mul_size(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}
static inline int sola_add_size(size_t a, size_t b, size_t *out)
{
    return __builtin_add_overflow(a, b, out) ? -1 : 0;
}

#endif
