/* trainer.h -- training the SoLa module on a dataset folder (SPEC 4, `sola` objective).
 *
 * One epoch: the videos with T > W (the others are skipped and counted), in an order
 * shuffled by (seed, epoch), one window of W snippets per video at a uniformly random
 * start, batches of B windows (the last one smaller), loss + gradients
 * (sola_loss_grad), one AdamW step per batch. Windows are streamed from the dataset
 * (dataset.h), so memory is the model, the optimizer and one batch.
 *
 * Determinism: the plan of an epoch (order and starts) is a function of (seed, epoch)
 * alone, so the same seed and the same BLAS thread count give the same weights, and a
 * run resumed from a checkpoint continues bit-for-bit as if it had not stopped, even
 * from the middle of an epoch.
 *
 * State travels inside the model file (safetensors, include_train = 1), so a
 * checkpoint is a loadable model and a finished model can be trained further:
 *   optimizer.exp_avg [n], optimizer.exp_avg_sq [n], optimizer.step [1]  (AdamW m, v, t)
 *   trainer.epoch [1]           epochs completed
 *   trainer.step [1]            batches done in the epoch under way (0 at a boundary)
 *   trainer.loss_sum [4]        that epoch's running loss sum (a double, 16 bits/float)
 *   trainer.loss_history [E]    mean loss of each completed epoch
 * and metadata train.batch, train.lr, train.seed, train.window, train.positions,
 * train.start, train.step, train.K, train.objective, train.sola_weight,
 * train.cycle_weight (exact decimal strings). The cycle objective adds its heads,
 * momentum copies, queues and heads' optimizer (cycle.*, see cycle.h); with `cycle`
 * alone the AdamW state covers the module only and no dissimilarity head is added. No generator state is
 * stored: the plan is re-derived from (seed, epoch).
 *
 * Thread rules: sola_train runs on the caller's thread and owns m while it runs; the
 * progress callback is called on that thread; *cancel may be set from any thread or a
 * signal handler. */
#ifndef SOLA_TRAINER_H
#define SOLA_TRAINER_H

#include <stdatomic.h>
#include <stdint.h>

#include "cycle.h"
#include "dataset.h"
#include "err.h"
#include "model.h"
#include "sola_loss.h"

typedef struct sola_train_progress {
    int epoch, epochs;          /* current epoch, 1-based, of epochs */
    long step, steps_per_epoch; /* batches done in this epoch (1-based after a step) */
    double loss;                /* running mean loss of this epoch so far */
    double windows_per_s;       /* since this call started */
    double eta_s;               /* seconds left at that rate */
    int epoch_done;             /* 1 on an epoch's last step: loss is the epoch's mean */
    int videos, skipped;        /* videos used per epoch; skipped (T <= W) */
    const double *history;      /* mean loss of each completed epoch (borrowed) */
    int nhistory;
    int checkpointed;           /* 1 if a checkpoint was just written */
} sola_train_progress;

typedef struct sola_trainer_opts {
    sola_train_cfg cfg;     /* window geometry, head width P (if a head is created), K */
    float lr;               /* 1e-4 */
    int batch;              /* 256 */
    int epochs;             /* 150: total, counting epochs done before a resume */
    uint64_t seed;          /* 0: head init (if created) and epoch plans */
    int threads;            /* > 0: sola_gemm_set_threads (core/gemm.h); 0: leave */
    const char *checkpoint; /* path or NULL */
    int checkpoint_every;   /* epochs between checkpoints (0: only on cancel) */
    int resume;             /* 1: continue from the state stored in the model, if any */
    const char *objective;  /* "sola", "cycle" or "sola+cycle" (cycle.h) */
    sola_cycle_cfg cycle;   /* the cycle objective's settings (heads, queues, tau...) */
    float sola_weight;      /* sola+cycle: loss = sola_weight L_sola + cycle_weight */
    float cycle_weight;     /*   L_cycle (1 and 1); unused by the single objectives */
    const char *dataset_name; /* for metadata; NULL: the folder's last component */
    void (*progress)(const sola_train_progress *p, void *ud);
    void *ud;
    const atomic_int *cancel; /* polled before each step; NULL: never */
} sola_trainer_opts;

void sola_trainer_default(sola_trainer_opts *o);

typedef struct sola_train_result {
    int epochs_done;  /* total, including those before a resume */
    double *loss;     /* [epochs_done] mean loss per epoch, malloc'd (free with _free) */
    int videos, skipped;
    long steps;       /* AdamW steps in total (optimizer t) */
    int resumed_epoch;   /* epoch (0-based) and step the run started from */
    long resumed_step;
    uint64_t seed;       /* the seed actually used (the checkpoint's on resume) */
} sola_train_result;
void sola_train_result_free(sola_train_result *r);

/* Trains m in place on d. m must have d->C channels; a head of width cfg.P is added
 * (seeded) if m has none. With resume and training state in m, the state's
 * hyper-parameters (batch, lr, seed, window geometry, K) replace the options' and only
 * `epochs` comes from the options; without resume any state in m is ignored (the
 * parameters, head included, are the starting point of a fresh run).
 *
 * On success m holds the trained parameters (packed), its training state and metadata
 * (objective, dataset, epochs, created = ISO-8601 UTC, train.*); save it with
 * sola_model_save(m, path, 1) to keep the head and state. Returns 0, SOLA_ECANCEL
 * (after writing the checkpoint when a path is set; m holds the state either way),
 * or an error: SOLA_ESHAPE (C differs), SOLA_EINVAL (options, no video longer than W,
 * a non-finite loss), I/O errors of the dataset or checkpoint, naming the file.
 * r may be NULL. */
int sola_train(sola_model *m, const sola_dataset *d, const sola_trainer_opts *o,
               sola_train_result *r, sola_err *e);

/* Training state found in a model (0 if it has none): epochs completed. */
int sola_trainer_state_epoch(const sola_model *m);

#endif
