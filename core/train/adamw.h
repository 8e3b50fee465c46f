/* adamw.h -- AdamW with torch.optim.AdamW semantics, as one flat loop.
 *
 * Parameters, gradients and the two moment buffers share one layout (llm.c style),
 * so the optimizer never needs to know what the floats are. Per step t (1-based):
 *   p -= lr * wd * p                                   (decoupled weight decay)
 *   m  = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
 *   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * which is torch.optim.AdamW (amsgrad off, maximize off) to float rounding. */
#ifndef SOLA_ADAMW_H
#define SOLA_ADAMW_H

#include <stddef.h>

#include "err.h"

typedef struct sola_adamw {
    /* double, as PyTorch's Python-float hyper-parameters: 1 - beta2 must be 1e-3, not
     * 1 - (float)0.999 (which is 1.3e-5 off, visible in v after one step) */
    double lr, beta1, beta2, eps, wd;
    long t;       /* steps taken so far (restore it, with m and v, to resume) */
    size_t n;     /* floats in params, grads, m, v */
    float *m, *v; /* owned, zeroed by init */
} sola_adamw;

/* Allocates zeroed moments for n parameters; betas 0.9/0.999, eps 1e-8, weight decay
 * 0.01, t = 0. Returns 0, or SOLA_ENOMEM / SOLA_EINVAL (n == 0) with o left empty. */
int sola_adamw_init(sola_adamw *o, size_t n, float lr, sola_err *e);
/* One step over all n parameters (t += 1 first). */
void sola_adamw_step(sola_adamw *o, float *params, const float *grads);
/* Frees the moments; o may be zeroed or already freed. */
void sola_adamw_free(sola_adamw *o);

#endif
