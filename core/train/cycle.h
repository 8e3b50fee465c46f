/* cycle.h -- the `cycle` objective (docs/spec.md section 4): CycleContrast (Wu & Wang, ICCV 2021)
 * adapted to feature sequences.
 *
 * The adaptation, exactly (docs/cycle.md says the same for users):
 *   * The encoder is the SoLa module. A batch is B windows [W, C] of B different
 *     videos (the trainer's one window per video); the "frames" are refined snippets
 *     at the kept positions idx = start + step*i (i < N) of a window.
 *   * Per window b, a query position i_b and a key position j_b != i_b are drawn
 *     among the N kept positions (from the batch seed). The online encoder gives
 *     z_q = normalize(refine(x)[i_b]); the momentum encoder (EMA copy, m = 0.999)
 *     gives z_k = normalize(refine_k(x)[j_b]). One query per window, as the paper
 *     samples one query frame and one positive frame per video.
 *   * Two heads per encoder, each Linear(C->Hc) -> ReLU -> Linear(Hc->D), output
 *     L2-normalized (Hc = 512, D = 128): the intra head (q, k) and the cycle head
 *     (c_q, c_k). Keys come from the momentum module + momentum heads; they, the
 *     queues and the soft-nearest-neighbour candidates are constants for the
 *     gradient, which flows only through the online module and heads.
 *   * Two FIFO queues of K = 4096 past keys each (intra keys k, cycle keys c_k), each
 *     entry tagged with its video (dataset index). After every optimizer step the
 *     batch's B keys (those at j_b) are enqueued, overwriting the oldest (wrap-around).
 *     Queues start as random unit vectors tagged -1 (MoCo's initialisation).
 *   * Intra loss: InfoNCE, logits [q.k_b, q.Q_m] / tau (tau = 0.07), positive k_b,
 *     negatives the intra queue minus entries of the query's own video.
 *   * Cycle loss: U = a random subset of S = 1024 entries of the cycle queue (one
 *     subset per batch, entries of the query's video left out);
 *     q^ = normalize(sum_m softmax_m(c_q.u_m / tau) u_m); then InfoNCE from q^ with
 *     the positive c_k of the query's own window (another snippet of its video) and
 *     as negatives the K - S entries of the cycle queue that are not in U (the paper
 *     and the authors' code: `remain_indices`), minus the query's video; the whole
 *     queue when S = K.
 *   * L = L_intra + lambda L_cycle, lambda = 0.1, each a mean over the B queries.
 *   * After each AdamW step of the online module (the trainer's) the heads take an
 *     AdamW step with the same hyper-parameters, then
 *     theta_k <- m theta_k + (1 - m) theta_q for module and heads, then the enqueue.
 *
 * State (all of it in the model's extra tensors, so a checkpoint resumes bit for bit):
 *   cycle.intra_head.{0,2}.{weight,bias}, cycle.cycle_head.{0,2}.{weight,bias}
 *   cycle.momentum.module [module_total], cycle.momentum.heads [nheads]
 *   cycle.queue.intra [K, D], cycle.queue.intra_video [K], cycle.queue.cycle [K, D],
 *   cycle.queue.cycle_video [K], cycle.queue.ptr [1]
 *   cycle.optimizer.exp_avg [nheads], cycle.optimizer.exp_avg_sq [nheads],
 *   cycle.optimizer.step [1]
 * and metadata cycle.tau, cycle.lambda, cycle.momentum, cycle.subset.
 *
 * Thread rules: a sola_cycle belongs to one thread at a time. GEMMs use core/model/gemm.h's
 * threads; row loops use sola_parallel_for; results depend only on the seed and the
 * BLAS thread count. */
/* implemented in: cycle.c cycle_nce.c */
#ifndef SOLA_CYCLE_H
#define SOLA_CYCLE_H

#include <stddef.h>
#include <stdint.h>

#include "adamw.h"
#include "err.h"
#include "model.h"
#include "sola_loss.h"

typedef struct sola_cycle_cfg {
    int hidden;     /* head hidden width Hc: 512 */
    int dim;        /* embedding width D: 128 */
    int queue;      /* entries per queue K: 4096 */
    int subset;     /* soft-NN candidates S drawn from the cycle queue: 1024 (<= K) */
    float tau;      /* temperature: 0.07 */
    float lambda;   /* weight of the cycle loss: 0.1 */
    float momentum; /* EMA of the key encoder: 0.999 */
} sola_cycle_cfg;

void sola_cycle_cfg_default(sola_cycle_cfg *c);
/* 0, or SOLA_EINVAL naming the field that is out of range. */
int sola_cycle_cfg_check(const sola_cycle_cfg *c, sola_err *e);
/* Overwrites c's fields with those recorded in m (metadata cycle.*, head and queue
 * shapes); fields m does not record are left as they are. For resuming. */
void sola_cycle_cfg_from_model(const sola_model *m, sola_cycle_cfg *c);

typedef struct sola_cycle sola_cycle;

/* State for model m's module shape, batches of up to Bmax windows with the window
 * geometry tcfg (N >= 2 kept positions), heads initialised as PyTorch's nn.Linear
 * from seed, momentum copies equal to the online ones, queues random. lr is the heads'
 * AdamW learning rate. Returns NULL with the reason in e. */
sola_cycle *sola_cycle_new(const sola_model *m, const sola_train_cfg *tcfg,
                           const sola_cycle_cfg *cc, int Bmax, float lr, uint64_t seed,
                           sola_err *e);
void sola_cycle_free(sola_cycle *cy);

/* Restores heads, momentum copies, queues and the heads' optimizer from m's extras.
 * *found = 0 (and 0 returned) when m holds no cycle state; SOLA_EFORMAT when it holds
 * some that is incomplete or shaped for another configuration, naming the tensor. */
int sola_cycle_restore(sola_cycle *cy, const sola_model *m, int *found, sola_err *e);
/* Writes all of the state (see above) into m's extras and metadata. */
int sola_cycle_store(const sola_cycle *cy, sola_model *m, sola_err *e);

/* Loss of a batch: windows [B, W, C], vids[b] the video (dataset index, 0..2^24-1) of
 * window b, batch_seed the batch's draws (positions, soft-NN subset). Sets *loss to
 * L_intra + lambda L_cycle (and *intra, *cyc to the parts when not NULL); writes
 * weight * d L / d theta of the module into grads[0 .. module_total) (m->params
 * layout, overwritten; the rest of grads is untouched) and keeps weight * d L / d
 * heads for sola_cycle_step. m is the online model (any head P). */
int sola_cycle_loss_grad(sola_cycle *cy, const sola_model *m, const float *windows,
                         const int *vids, int B, uint64_t batch_seed, float weight,
                         float *loss, float *intra, float *cyc, float *grads, sola_err *e);
/* After the caller's optimizer step on m: AdamW on the heads with the gradients of
 * the last sola_cycle_loss_grad, momentum update from m and the heads, enqueue of the
 * last batch's keys. */
void sola_cycle_step(sola_cycle *cy, const sola_model *m);

/* The heads' learning rate (the trainer's schedule moves it with the module's). */
void sola_cycle_set_lr(sola_cycle *cy, double lr);
/* The two losses at chance, uniform over the positive and its negatives ignoring
 * same-video exclusions: ln(1 + K) (intra) and ln(1 + K - S) (cycle back; ln(1 + K)
 * when S = K). */
void sola_cycle_chance(const sola_cycle *cy, double *intra, double *cyc);

/* Views for tests and tools. */
float *sola_cycle_heads(sola_cycle *cy, size_t *n);      /* online heads, n floats */
float *sola_cycle_head_grads(sola_cycle *cy, size_t *n); /* their gradients */
const float *sola_cycle_queue(const sola_cycle *cy, int which, const float **video,
                              int *K, int *D, int *ptr); /* which 0: intra, 1: cycle */
/* Overwrites queue `which` with K entries (keys [K, D], video ids) and sets the
 * pointer (tests: a known queue). */
void sola_cycle_set_queue(sola_cycle *cy, int which, const float *keys, const float *video,
                          int ptr);
const sola_model *sola_cycle_momentum(const sola_cycle *cy);

/* ---- the two new layers (forward/backward pairs, llm.c style) ------------------------ */

/* InfoNCE of R queries q (R, D) with positive keys kpos (R, D) and negatives the
 * queue (K, D) except the entries with qvid[m] >= 0 && qvid[m] == vid[r]:
 *   l_r0 = q_r.kpos_r / tau, l_rm = q_r.queue_m / tau,
 *   loss = scale * sum_r (logsumexp_j l_rj - l_r0).
 * prob (R, K) and p0 (R) receive the softmax (0 at excluded entries) for the backward.
 * Returns the loss. */
double sola_infonce_forward(float *prob, float *p0, const float *q, const float *kpos,
                            const float *queue, const float *qvid, const int *vid, int R,
                            int K, int D, float tau, double scale);
/* dq (R, D) = d loss / d q. prob is consumed (scaled in place). */
void sola_infonce_backward(float *dq, float *prob, const float *p0, const float *kpos,
                           const float *queue, int R, int K, int D, float tau, double scale);

/* Soft nearest neighbour of R queries q (R, D) among u (S, D), leaving out entries
 * with uvid[m] >= 0 && uvid[m] == vid[r]:
 *   w_r = softmax_m(q_r.u_m / tau), v_r = sum_m w_rm u_m, qh_r = v_r / max(|v_r|, 1e-12)
 * w (R, S) and vnorm (R) are kept for the backward; a row with no candidate gets
 * qh = 0, w = 0, vnorm = 0. */
void sola_softnn_forward(float *qh, float *w, float *vnorm, const float *q, const float *u,
                         const float *uvid, const int *vid, int R, int S, int D, float tau);
/* dq (R, D) from dqh (R, D), using the forward's qh, w, vnorm. dw (R, S) and
 * dv (R, D) are workspace. */
void sola_softnn_backward(float *dq, float *dw, float *dv, const float *dqh, const float *qh,
                          const float *w, const float *vnorm, const float *u, int R, int S,
                          int D, float tau);

#endif
