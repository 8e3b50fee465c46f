/* trainer_int.h -- what trainer.c and trainer_state.c share (not a public header):
 * the resolved hyper-parameters of a run and how they and the optimizer's state travel
 * in a model file's metadata and extra tensors (trainer.h lists them). */
/* implemented in: trainer.c trainer_state.c */
#ifndef SOLA_TRAINER_INT_H
#define SOLA_TRAINER_INT_H

#include "trainer.h"

enum { OBJ_SOLA = 1, OBJ_CYCLE = 2 }; /* bits: which losses an objective sums */

typedef struct sola__hyper {
    sola_train_cfg cfg;
    float lr;
    int sched;       /* SOLA_SCHED_CONSTANT or _COSINE */
    int batch;
    uint64_t seed;
    int obj;         /* OBJ_* bits */
    float ws, wc;    /* sola+cycle weights */
    sola_cycle_cfg cycle;
} sola__hyper;

int sola__objective_bits(const char *name);   /* OBJ_* bits, 0 for an unknown name */
const char *sola__objective_name(int bits);
int sola__put_hyper(sola_model *m, const sola__hyper *h, sola_err *e);
/* Reads train.* back; a missing or malformed key leaves that field as it was. */
void sola__get_hyper(const sola_model *m, sola__hyper *h);
/* Stores the optimizer and the position in the run into m. */
int sola__put_state(sola_model *m, const sola_adamw *opt, int epoch, long step,
                    double loss_sum, const double *hist, int nhist, sola_err *e);
/* Restores the optimizer and the position from m; *found = 0 (and 0) without state. */
int sola__get_state(const sola_model *m, sola_adamw *opt, int *epoch, long *step,
                    double *loss_sum, double *hist, int hist_cap, int *nhist, int *found,
                    sola_err *e);
int sola__put_provenance(sola_model *m, const sola_dataset *d, const sola_trainer_opts *o,
                         const char *objective, int epochs_done, sola_err *e);

#endif
