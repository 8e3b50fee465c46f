/* adamw.c -- torch.optim.AdamW as a flat loop (see adamw.h). */
#include "adamw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

void sola_adamw_step(sola_adamw *o, float *params, const float *grads)
{
    o->t++;
    /* The scalars are computed in double and rounded once, as PyTorch does with its
     * Python-float hyper-parameters before the float32 kernels see them. */
    double bc1 = 1.0 - pow(o->beta1, (double)o->t);
    double bc2 = 1.0 - pow(o->beta2, (double)o->t);
    const float decay = (float)(1.0 - o->lr * o->wd);
    const float step = (float)(o->lr / bc1);
    const float bc2s = (float)sqrt(bc2);
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, a1 = (float)(1.0 - o->beta1),
                a2 = (float)(1.0 - o->beta2), eps = (float)o->eps;
    float *m = o->m, *v = o->v;
    for (size_t i = 0; i < o->n; i++) {
        float g = grads[i];
        float p = params[i] * decay;
        float mi = m[i] * b1 + a1 * g;
        float vi = v[i] * b2 + a2 * g * g;
        m[i] = mi;
        v[i] = vi;
        params[i] = p - step * (mi / (sqrtf(vi) / bc2s + eps));
    }
}

void sola_adamw_free(sola_adamw *o)
{
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
    o->n = 0;
}
