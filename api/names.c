/* names.c -- checks of what clients send as text: names of models, datasets and
 * items, version numbers, and the constant-time comparison of bearer tokens
 * (api_helpers.h). */
#include <stdint.h>

#include "api_helpers.h"
#include "fsutil.h"

int api_ct_equal(const char *a, size_t na, const char *b, size_t nb)
{
    /* Walk the longer length; the running difference also folds in the length
     * mismatch, so no early exit leaks where the strings first differ. */
    size_t n = na > nb ? na : nb;
    unsigned char d = (unsigned char)(na != nb);
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < na ? (unsigned char)a[i] : 0;
        unsigned char y = i < nb ? (unsigned char)b[i] : 0;
        d |= (unsigned char)(x ^ y);
    }
    return d == 0;
}

int api_check_name(const char *what, const char *s, sola_err *e)
{
    return sola_name_check(what, s, e); /* core/fsutil.h: the one rule */
}

int api_parse_version(const char *what, const char *s, int *out, sola_err *e)
{
    if (!s || !*s)
        return sola_errf(e, SOLA_EINVAL, "%s is empty: versions are positive integers", what);
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || (p == s && *p == '0'))
            return sola_errf(e, SOLA_EINVAL,
                             "%s \"%.32s\" is not a positive integer (1, 2, ...)", what, s);
        v = v * 10 + (*p - '0');
        if (v > INT32_MAX)
            return sola_errf(e, SOLA_EINVAL, "%s \"%.32s\" is too large", what, s);
    }
    *out = (int)v;
    return 0;
}
