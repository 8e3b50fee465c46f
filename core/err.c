/* err.c -- error message formatting shared by every core module. */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

int sola_errf(sola_err *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

const char *sola_strerror(int code)
{
    switch (code) {
    case SOLA_OK: return "ok";
    case SOLA_EIO: return "i/o error";
    case SOLA_EFORMAT: return "format error";
    case SOLA_ESHAPE: return "shape error";
    case SOLA_ENOMEM: return "out of memory";
    case SOLA_ETOOBIG: return "too large";
    case SOLA_EUNSUP: return "unsupported";
    case SOLA_ENOTFOUND: return "not found";
    case SOLA_EINVAL: return "invalid argument";
    case SOLA_ECANCEL: return "cancelled";
    case SOLA_ENOSPC: return "no space left on device";
    case SOLA_ECOLLAPSE: return "training collapsed";
    default: return "unknown error";
    }
}

int sola_errno_code(int err)
{
    return err == ENOSPC || err == EDQUOT || err == EFBIG ? SOLA_ENOSPC : SOLA_EIO;
}
