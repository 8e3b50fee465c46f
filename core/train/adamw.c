/* adamw.c -- torch.optim.AdamW as a flat loop (see adamw.h). */
#include "adamw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sola_layers.h"

#ifdef __SSE2__
#include <immintrin.h>
#endif

int sola_adamw_init(sola_adamw *o, size_t n, float lr, sola_err *e)
{
    memset(o, 0, sizeof *o);
    if (n == 0)
        return sola_errf(e, SOLA_EINVAL, "adamw: no parameters to optimise");
    o->m = calloc(n, sizeof *o->m);
    o->v = calloc(n, sizeof *o->v);
    if (!o->m || !o->v) {
        sola_adamw_free(o);
        return sola_errf(e, SOLA_ENOMEM, "adamw: out of memory for %zu moments", n);
    }
    o->n = n;
    o->lr = lr;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->wd = 0.01;
    return 0;
}

typedef struct {
    float *p, *m, *v;
    const float *g;
    size_t n;
    float decay, step, bc2s, b1, b2, a1, a2, eps;
} adamw_chunk;

static void adamw_run(const adamw_chunk *k)
{
    float *restrict params = k->p, *restrict m = k->m, *restrict v = k->v;
    const float *restrict grads = k->g;
    const float decay = k->decay, step = k->step, bc2s = k->bc2s, b1 = k->b1, b2 = k->b2,
                a1 = k->a1, a2 = k->a2, eps = k->eps;
    size_t i = 0;
#ifdef __SSE2__
    /* The compiler will not vectorise sqrtf (errno), so by hand: the same IEEE
     * operations in the same order as the scalar loop, four at a time. */
    const __m128 vdecay = _mm_set1_ps(decay), vstep = _mm_set1_ps(step),
                 vbc2s = _mm_set1_ps(bc2s), vb1 = _mm_set1_ps(b1), vb2 = _mm_set1_ps(b2),
                 va1 = _mm_set1_ps(a1), va2 = _mm_set1_ps(a2), veps = _mm_set1_ps(eps);
    for (; i + 4 <= k->n; i += 4) {
        __m128 g = _mm_loadu_ps(grads + i);
        __m128 p = _mm_mul_ps(_mm_loadu_ps(params + i), vdecay);
        __m128 mi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(m + i), vb1), _mm_mul_ps(va1, g));
        __m128 vi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + i), vb2),
                               _mm_mul_ps(_mm_mul_ps(va2, g), g));
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        __m128 den = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), vbc2s), veps);
        _mm_storeu_ps(params + i, _mm_sub_ps(p, _mm_mul_ps(vstep, _mm_div_ps(mi, den))));
    }
#endif
    for (; i < k->n; i++) {
        float g = grads[i];
        float p = params[i] * decay;
        float mi = m[i] * b1 + a1 * g;
        float vi = v[i] * b2 + a2 * g * g;
        m[i] = mi;
        v[i] = vi;
        params[i] = p - step * (mi / (sqrtf(vi) / bc2s + eps));
    }
}

/* Blocks [b, e) of ADAMW_BLOCK elements of the chunk in arg (sola_parallel_for). */
enum { ADAMW_BLOCK = 1 << 16 };
static void adamw_blocks(void *arg, size_t b, size_t e)
{
    adamw_chunk k = *(const adamw_chunk *)arg;
    size_t i0 = b * ADAMW_BLOCK, i1 = e * ADAMW_BLOCK < k.n ? e * ADAMW_BLOCK : k.n;
    k.p += i0, k.m += i0, k.v += i0, k.g += i0;
    k.n = i1 - i0;
    adamw_run(&k);
}

void sola_adamw_step(sola_adamw *o, float *params, const float *grads)
{
    o->t++;
    /* The scalars are computed in double and rounded once, as PyTorch does with its
     * Python-float hyper-parameters before the float32 kernels see them. */
    double bc1 = 1.0 - pow(o->beta1, (double)o->t);
    double bc2 = 1.0 - pow(o->beta2, (double)o->t);
    adamw_chunk all = {
        .p = params, .m = o->m, .v = o->v, .g = grads, .n = o->n,
        .decay = (float)(1.0 - o->lr * o->wd), .step = (float)(o->lr / bc1),
        .bc2s = (float)sqrt(bc2), .b1 = (float)o->beta1, .b2 = (float)o->beta2,
        .a1 = (float)(1.0 - o->beta1), .a2 = (float)(1.0 - o->beta2), .eps = (float)o->eps,
    };
    /* Split big vectors over the compute threads the caller allowed the GEMMs (idle
     * between them), in blocks of 64K elements (sola_parallel_for: with oneDNN on the
     * GEMMs' own OpenMP team, else on threads started for the call); elements are
     * independent, so the result does not depend on the split. */
    if (o->n >= ((size_t)1 << 18))
        sola_parallel_for((o->n + ADAMW_BLOCK - 1) / ADAMW_BLOCK, 1, adamw_blocks, &all);
    else
        adamw_run(&all);
}

void sola_adamw_free(sola_adamw *o)
{
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
    o->n = 0;
}
