/* tsm.c -- temporal self-similarity map (docs/spec.md section 3):
 *     S[i,j] = (y_i . y_j) / (|y_i| |y_j| + 1e-8)
 * The Gram matrix is its upper triangle (sola_ssyrk_upper: about half the FLOPs of a
 * GEMM) mirrored, so S comes out exactly symmetric; the norms are float32 like torch.linalg.norm's result, with the same
 * order of operations in the division, so we match a torch reference to rounding. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "tsm.h"

#include "gemm.h"

int sola_tsm(const float *y, int T, int C, float *S, sola_err *e)
{
    if (T < 1 || C < 1)
        return sola_errf(e, SOLA_ESHAPE, "tsm: shape [%d, %d] (both must be >= 1)", T, C);
    if (!y || !S)
        return sola_errf(e, SOLA_EINVAL, "tsm: need input and output buffers");
    size_t t = (size_t)T, c = (size_t)C, tt;
    if (sola_mul_size(t, t, &tt))
        return sola_errf(e, SOLA_ETOOBIG, "tsm: %d x %d map is too large", T, T);
    float *n = malloc(t * sizeof(float));
    if (!n)
        return sola_errf(e, SOLA_ENOMEM, "tsm: out of memory for %d norms", T);
    for (size_t i = 0; i < t; i++) {
        /* double accumulation then one rounding: the float32 norm, correctly rounded
         * for any C we see */
        const float *yi = y + i * c;
        double s = 0;
        for (size_t k = 0; k < c; k++)
            s += (double)yi[k] * yi[k];
        n[i] = (float)sqrt(s);
    }
    sola_ssyrk_upper(T, C, y, S);
    /* normalise the upper triangle row by row (contiguous), then mirror it in tiles
     * so the transposed writes stay in cache for long sequences */
    for (size_t i = 0; i < t; i++) {
        float *row = S + i * t;
        for (size_t j = i; j < t; j++) {
            float den = n[i] * n[j] + 1e-8f;
            float v = row[j] / den;
            /* rounding can leave |v| a few ulp above 1; the map is documented in [-1, 1] */
            row[j] = v > 1.0f ? 1.0f : (v < -1.0f ? -1.0f : v);
        }
    }
    const size_t B = 64;
    for (size_t i0 = 0; i0 < t; i0 += B)
        for (size_t j0 = 0; j0 <= i0; j0 += B)
            for (size_t i = i0; i < i0 + B && i < t; i++)
                for (size_t j = j0; j < j0 + B && j < i; j++)
                    S[i * t + j] = S[j * t + i];
    free(n);
    return 0;
}
