/* sola_loss.h -- the `sola` similarity-matching objective (docs/spec.md section 4): loss and
 * gradients of a batch of windows, and the AdamW optimizer (adamw.h).
 *
 * Each window [W, C] goes through the module as a sequence of length W (zero padded
 * at its ends), N positions idx = start + step*i are kept, z = normalize(refined[idx]),
 * the dissimilarity head g(z) = Linear(P->C)(relu(Linear(C->P)(z))) is compared with
 * sg(z) by cosine, p = clamp((1 + c)/2, 1e-5, 1 - 1e-5), and the loss is the mean BCE
 * against t[i,j] = 1 (i == j) or sigmoid(K / (i - j)^2).
 *
 * Only the kept positions reach the loss, so by default the step computes conv 4,
 * conv 2 and the residual at those N rows of each window, and conv 0 only at the rows
 * conv 2 reads (its receptive field; the input needs no gradient): the same numbers as
 * running the whole window, for a fraction of the FLOPs. sola_trainctx_set_full(c, 1)
 * selects the whole-window path, kept as the reference the fast one is tested
 * against.
 *
 * Gradients are laid out exactly as m->params (module, then head), so AdamW is one
 * flat loop over params, grads and its moments.
 *
 * Thread rules: a context belongs to one thread at a time; the model is only read.
 * The GEMMs use core/model/gemm.h's threads (sola_gemm_set_threads bounds them). */
#ifndef SOLA_LOSS_H
#define SOLA_LOSS_H

#include <stddef.h>

#include "adamw.h"
#include "err.h"
#include "model.h"

typedef struct sola_train_cfg {
    int W;     /* window length in snippets */
    int N;     /* kept positions per window */
    int start; /* first kept position */
    int step;  /* distance between kept positions */
    int P;     /* head width when a head is created; the loss uses the model's */
    float K;   /* target sharpness: sigmoid(K / (i - j)^2) */
} sola_train_cfg;

/* W=23 N=8 start=4 step=2 P=512 K=16 (the authors' recipe). */
void sola_train_cfg_default(sola_train_cfg *c);
/* 0 if the window geometry is usable (kept positions inside [0, W), N >= 1 ...),
 * else SOLA_EINVAL with a message naming the field. */
int sola_train_cfg_check(const sola_train_cfg *c, sola_err *e);

typedef struct sola_trainctx sola_trainctx;

/* Workspace for batches of up to B windows of model m's shape (C, H, k1, k2,
 * dilations, P; m needs a head, m->P > 0). Returns NULL on a bad config or no
 * memory, with the reason in e. Free with sola_trainctx_free (NULL is fine). */
sola_trainctx *sola_trainctx_new(const sola_model *m, const sola_train_cfg *cfg, int B,
                                 sola_err *e);
void sola_trainctx_free(sola_trainctx *c);

/* full = 1: compute the module on all W rows of each window (reference path);
 * 0 (default): only the rows the loss reads. Needs more memory when 1 (allocated on
 * the next call). */
void sola_trainctx_set_full(sola_trainctx *c, int full);

/* For finite-difference checks. The gradient of this objective is not the derivative
 * of the loss: sg(z) is a constant to autograd, but moves when a module weight moves.
 * With on = 1 the next call computes sg(z) and later calls keep using those values
 * (same windows, same B), which makes the loss a function whose plain derivative is
 * the gradient the step computes. on = 0 returns to normal. */
void sola_trainctx_freeze_sg(sola_trainctx *c, int on);

/* windows [B, W, C] float32. Computes the mean loss and writes d loss / d params
 * into grads (same layout and length as m->params, i.e. m->nparams; overwritten, not
 * accumulated). m must have the head and the shape the context was made for;
 * 1 <= B <= the B given at creation. Returns 0 or a negative SOLA_E* code. */
int sola_loss_grad(sola_trainctx *c, const sola_model *m, const float *windows, int B,
                   float *loss, float *grads, sola_err *e);
/* Loss only (no backward), same maths. */
int sola_loss(sola_trainctx *c, const sola_model *m, const float *windows, int B,
              float *loss, sola_err *e);

/* ---- the module alone, for other objectives (cycle.h) ------------------------------- */

/* A workspace that runs only the module over windows (m needs no head; m->P is
 * ignored, so the same context serves any model of this module shape, e.g. a momentum
 * copy). Same errors as sola_trainctx_new. */
sola_trainctx *sola_trainctx_new_module(const sola_model *m, const sola_train_cfg *cfg, int B,
                                        sola_err *e);
/* Refined features at the kept positions of B windows [B, W, C]: *refined points to
 * (B*N, C), row b*N + i = position start + step*i of window b, owned by the context
 * and valid until its next call. Keeps the activations for sola_module_backward.
 * Returns 0 or a negative SOLA_E* code (shape mismatch, B out of range). */
int sola_module_forward(sola_trainctx *c, const sola_model *m, const float *windows, int B,
                        const float **refined, sola_err *e);
/* Given dr (B*N, C) = d loss / d refined for the last sola_module_forward (same m, B),
 * writes the module's gradients into grads (m->params layout; only the first
 * layout.module_total floats are written, overwritten). */
void sola_module_backward(sola_trainctx *c, const sola_model *m, int B, const float *dr,
                          float *grads);

/* FLOPs (multiply-add = 2) of one sola_loss_grad on B windows with the context's
 * current path, GEMMs only (the elementwise work is a small fraction). */
double sola_loss_grad_flops(const sola_trainctx *c, int B);

/* Where the time of the last sola_loss / sola_loss_grad call went, in seconds per
 * phase (for benchmarks). Phase names from sola_trainctx_phase_name (NULL past the
 * end). */
enum { SOLA_PHASES = 12 };
const char *sola_trainctx_phase_name(int i);
void sola_trainctx_phases(const sola_trainctx *c, double t[SOLA_PHASES]);

#endif
