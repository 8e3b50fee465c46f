/* encode.c -- float32 data into replies: the shortest decimal text that reads back
 * to the same float, nested JSON arrays of a tensor, the header of an .npy reply
 * (api_helpers.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "api_helpers.h"
#include "npy.h"

const double api_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                              1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                              1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* d * 10^k for |k| <= 66, with a few roundings of 2^-53 each: far below the
 * tolerance that matters here (see api_fmt_float). */
static double scale10(double d, int k)
{
    int neg = k < 0;
    if (neg)
        k = -k;
    while (k > 0) {
        int s = k > 22 ? 22 : k;
        d = neg ? d / api_pow10[s] : d * api_pow10[s];
        k -= s;
    }
    return d;
}

int api_fmt_float(float v, char *out)
{
    /* Why 9 digits suffice even with imperfect rounding: a float's half-spacing is at
     * least 2^-25 ~ 3e-8 of its value, while 9 significant digits are spaced at most
     * 1e-8 apart relative to the value; rounding the scaled double (error ~1e-16) to
     * the nearest 9-digit integer lands within one digit step, hence strictly inside
     * the half-spacing, so strtof reads back exactly v. tests/unit/test_api.c checks it on
     * random bit patterns and edge values. This is ~10x faster than printf("%.9g"),
     * which matters: a T=1000, C=2048 reply has two million numbers. */
    char *o = out;
    if (!isfinite(v)) {
        memcpy(out, "null", 5);
        return 4;
    }
    if (signbit(v))
        *o++ = '-';
    double d = fabs((double)v);
    if (d == 0) {
        *o++ = '0';
        *o = '\0';
        return (int)(o - out);
    }
    int e10 = (int)floor(log10(d));
    double m = scale10(d, 8 - e10);
    long long mi = llround(m);
    if (mi < 100000000LL) { /* log10 overshot */
        e10--;
        mi = llround(scale10(d, 8 - e10));
    }
    if (mi >= 1000000000LL) { /* undershot, or rounding carried to 10 digits */
        e10++;
        mi = llround(scale10(d, 8 - e10));
        if (mi >= 1000000000LL)
            mi /= 10;
    }
    char dig[10];
    int nd = 9;
    for (int i = 8; i >= 0; i--) {
        dig[i] = (char)('0' + mi % 10);
        mi /= 10;
    }
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    if (e10 >= -5 && e10 < 9) {
        if (e10 >= 0) {
            for (int i = 0; i <= e10; i++)
                *o++ = i < nd ? dig[i] : '0';
            if (nd > e10 + 1) {
                *o++ = '.';
                for (int i = e10 + 1; i < nd; i++)
                    *o++ = dig[i];
            }
        } else {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -e10 - 1; i++)
                *o++ = '0';
            for (int i = 0; i < nd; i++)
                *o++ = dig[i];
        }
    } else {
        *o++ = dig[0];
        if (nd > 1) {
            *o++ = '.';
            for (int i = 1; i < nd; i++)
                *o++ = dig[i];
        }
        *o++ = 'e';
        int x = e10;
        if (x < 0) {
            *o++ = '-';
            x = -x;
        }
        if (x >= 10)
            *o++ = (char)('0' + x / 10);
        *o++ = (char)('0' + x % 10);
    }
    *o = '\0';
    return (int)(o - out);
}

int api_buf_json_floats(api_buf *b, const float *data, int ndim, const int64_t *shape)
{
    return api_buf_json_floats_c(b, data, ndim, shape, NULL);
}

int api_buf_json_floats_c(api_buf *b, const float *data, int ndim, const int64_t *shape,
                          const atomic_int *cancel)
{
    if (ndim < 1 || ndim > 3)
        return SOLA_EINVAL;
    int64_t d0 = shape[0], d1 = ndim > 1 ? shape[1] : 1, d2 = ndim > 2 ? shape[2] : 1;
    int64_t inner = shape[ndim - 1];
    int64_t rows = ndim == 1 ? 1 : (ndim == 2 ? d0 : d0 * d1);
    (void)d2;
    size_t k = 0;
    if (ndim == 3)
        api_buf_put(b, "[", 1);
    if (ndim >= 2)
        api_buf_put(b, "[", 1);
    for (int64_t r = 0; r < rows; r++) {
        if (cancel && atomic_load_explicit(cancel, memory_order_relaxed))
            return SOLA_ECANCEL;
        if (r > 0) {
            if (ndim == 3 && r % d1 == 0)
                api_buf_put(b, "],[", 3);
            else
                api_buf_put(b, ",", 1);
        }
        /* one row: at most 17 bytes per number plus the comma */
        size_t need;
        if (sola_mul_size((size_t)inner, 18, &need) || api_buf_reserve(b, need + 2))
            return SOLA_ENOMEM;
        char *o = b->p + b->len;
        *o++ = '[';
        for (int64_t c = 0; c < inner; c++) {
            if (c)
                *o++ = ',';
            o += api_fmt_float(data[k++], o);
        }
        *o++ = ']';
        b->len = (size_t)(o - b->p);
        b->p[b->len] = '\0';
    }
    if (ndim >= 2)
        api_buf_put(b, "]", 1);
    if (ndim == 3)
        api_buf_put(b, "]", 1);
    return b->failed ? SOLA_ENOMEM : 0;
}

size_t api_npy_header(int ndim, const int64_t *shape, char out[192])
{
    return sola_npy_header("<f4", ndim, shape, (unsigned char *)out, 192); /* core/formats/npy.h */
}
