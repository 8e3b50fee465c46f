/* trainer.h -- training the SoLa module on a dataset folder (docs/spec.md section 4, the
 * `sola` objective).
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
/* implemented in: trainer.c trainer_state.c */
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
    long total_step, total_steps; /* AdamW steps of the whole run: done (counting those
                                   * before a resume) and planned (epochs * per epoch) */
    double lr;                  /* learning rate of the last step (after the schedule) */
    double loss;                /* running mean loss of this epoch so far */
    /* cycle and sola+cycle: running means of this epoch's parts (unweighted), and
     * the value of each at chance (uniform over the positive and its negatives):
     * the cycle objective's loss is intra + lambda * cycle, its chance level
     * chance_intra + lambda * chance_cycle. 0 with sola alone. */
    double sola, intra, cycle;
    double chance_intra, chance_cycle, lambda;
    double windows_per_s;       /* since this call started */
    double eta_s;               /* seconds left at that rate */
    int epoch_done;             /* 1 on an epoch's last step: loss is the epoch's mean */
    int videos, skipped;        /* videos used per epoch; skipped (T <= W) */
    const double *history;      /* mean loss of each completed epoch (borrowed) */
    int nhistory;
    int checkpointed;           /* 1 if a checkpoint was just written */
    /* the collapse guard (collapse.h), measured at every epoch end on the epoch's last
     * batch (up to 64 windows, the kept positions): */
    int monitored;              /* 1 when the numbers below were just measured */
    double norm_ratio;          /* mean |tanh(alpha) h(x)| / mean |x| */
    double const_share;         /* share of the refinement that is one vector */
    int collapse;               /* 1 when both pass the thresholds */
} sola_train_progress;

/* Learning-rate schedules: constant (the SoLa authors'), or cosine decay from lr to
 * 0 over the run's steps, lr_t = lr (1 + cos(pi t / total)) / 2 (CycleContrast's). */
enum { SOLA_SCHED_DEFAULT = 0, SOLA_SCHED_CONSTANT = 1, SOLA_SCHED_COSINE = 2 };
const char *sola_schedule_name(int sched); /* "constant", "cosine"; NULL otherwise */
int sola_schedule_parse(const char *name); /* SOLA_SCHED_*, or -1 */

/* The defaults of an objective ("sola", "cycle", "sola+cycle"; NULL = sola): its
 * learning rate and schedule (measured: docs/training.md). 0, or SOLA_EINVAL for an
 * unknown objective. */
int sola_trainer_objective_defaults(const char *objective, float *lr, int *schedule,
                                    sola_err *e);

typedef struct sola_trainer_opts {
    sola_train_cfg cfg;     /* window geometry, head width P (if a head is created), K */
    float lr;               /* 0: the objective's default (sola_trainer_objective_defaults) */
    int schedule;           /* SOLA_SCHED_*; DEFAULT: the objective's */
    int batch;              /* 256 */
    int epochs;             /* 150: total, counting epochs done before a resume */
    uint64_t seed;          /* 0: head init (if created) and epoch plans */
    int threads;            /* > 0: sola_gemm_set_threads (core/model/gemm.h); 0: leave */
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
    /* the collapse guard (collapse.h): thresholds (SOLA_COLLAPSE_RATIO / _SHARE by
     * default) and whether to stop when it fires. With stop_on_collapse the state of
     * every epoch end where the guard is quiet is kept in memory, and on a collapse it
     * is written to `checkpoint` (the last good state) and the run stops with
     * SOLA_ECOLLAPSE, m left as it was then. */
    double collapse_ratio, collapse_share;
    int stop_on_collapse;
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
    float lr;            /* the learning rate and schedule actually used */
    int schedule;
    int monitored;       /* the collapse guard's last measurement, if any */
    double norm_ratio, const_share;
    int collapse_epoch;  /* first epoch (1-based) at whose end the guard fired; 0 none */
    int good_epoch;      /* SOLA_ECOLLAPSE: the epoch of the state written to the
                          * checkpoint (the last one the guard passed) */
} sola_train_result;
void sola_train_result_free(sola_train_result *r);

/* Trains m in place on d. m must have d->C channels; a head of width cfg.P is added
 * (seeded) if m has none. With resume and training state in m, the state's
 * hyper-parameters (batch, lr, schedule, seed, window geometry, K, objective and its
 * settings) replace the options' and only `epochs` comes from the options (see
 * sola_trainer_check_resume to refuse options that differ); without resume any state
 * in m is ignored (the parameters, head included, are the starting point of a fresh
 * run).
 *
 * On success m holds the trained parameters (packed), its training state and metadata
 * (objective, dataset, epochs, created = ISO-8601 UTC, train.*); save it with
 * sola_model_save(m, path, 1) to keep the head and state. Returns 0, SOLA_ECANCEL
 * (after writing the checkpoint when a path is set; m holds the state either way),
 * SOLA_ECOLLAPSE (stop_on_collapse), or an error: SOLA_ESHAPE (C differs), SOLA_EINVAL
 * (options, no video longer than W, a non-finite loss: the file and snippet when the
 * batch holds a NaN/Inf, else the epoch and step), I/O errors of the dataset (prefixed
 * with the epoch and step) or checkpoint, naming the file. r may be NULL. */
int sola_train(sola_model *m, const sola_dataset *d, const sola_trainer_opts *o,
               sola_train_result *r, sola_err *e);

/* Training state found in a model (0 if it has none): epochs completed. */
int sola_trainer_state_epoch(const sola_model *m);

/* Settings a caller may have given explicitly (bits of `given` below). */
enum {
    SOLA_SET_LR = 1 << 0, SOLA_SET_SCHEDULE = 1 << 1, SOLA_SET_BATCH = 1 << 2,
    SOLA_SET_SEED = 1 << 3, SOLA_SET_OBJECTIVE = 1 << 4, SOLA_SET_WINDOW = 1 << 5,
    SOLA_SET_POSITIONS = 1 << 6, SOLA_SET_START = 1 << 7, SOLA_SET_STEP = 1 << 8,
    SOLA_SET_K = 1 << 9, SOLA_SET_HEAD = 1 << 10, SOLA_SET_TAU = 1 << 11,
    SOLA_SET_LAMBDA = 1 << 12, SOLA_SET_MOMENTUM = 1 << 13, SOLA_SET_QUEUE = 1 << 14,
    SOLA_SET_SUBSET = 1 << 15, SOLA_SET_CYCLE_HIDDEN = 1 << 16, SOLA_SET_CYCLE_DIM = 1 << 17,
    SOLA_SET_SOLA_WEIGHT = 1 << 18, SOLA_SET_CYCLE_WEIGHT = 1 << 19,
};
/* Before resuming from m's training state: 0 when every setting marked in `given`
 * has the value m's state records, else SOLA_EINVAL naming the first that differs
 * and both values ("lr 0.05 differs from 0.0001 in the training state"). A resumed
 * run continues with its own settings (only epochs may change), so a differing one
 * would be silently ignored. 0 when m holds no state. */
int sola_trainer_check_resume(const sola_model *m, const sola_trainer_opts *o,
                              unsigned given, sola_err *e);

#endif
