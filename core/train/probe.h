/* probe.h -- the linear foreground/background probe of the SoLa authors (docs/spec.md section 7).
 *
 * Protocol: every snippet feature is L2-normalised (eps 1e-12, as
 * torch.nn.functional.normalize) and a linear layer C -> 2 classes is trained with
 * cross-entropy, SGD lr 0.01 momentum 0.9 (PyTorch semantics: buf = mu*buf + g,
 * p -= lr*buf), batch 256, 16 epochs, snippets shuffled each epoch. Videos, not
 * snippets, are split into train and validation by the seed, so no video is seen on
 * both sides. Reported: validation accuracy over all validation snippets, accuracy
 * per class, and accuracy on boundary snippets (within +-2 of a fg/bg transition,
 * where temporal smoothing could hurt and temporal sensitivity should help).
 *
 * With a model, features are refined (sola_refine, whole video at once) before the
 * normalisation, so the same probe measures raw and refined features.
 *
 * Memory: the probe holds all snippets of the labelled set (N x C floats); it is an
 * evaluation tool for labelled sets, not a streaming one. */
#ifndef SOLA_PROBE_H
#define SOLA_PROBE_H

#include <stdint.h>

#include "err.h"
#include "model.h"

typedef struct sola_probe_opts {
    uint64_t seed;         /* 0: split, init and shuffles */
    int epochs;            /* 16 */
    int batch;             /* 256 */
    float lr, momentum;    /* 0.01, 0.9 */
    float val_frac;        /* 0.2 of the videos (at least one video each side) */
    int radius;            /* 2: boundary = within +-radius of a transition */
    const sola_model *model; /* NULL: raw features; else refined (must be packed) */
    int smooth;            /* > 1: then a moving average over this many snippets */
    /* Called after each epoch with the epoch's mean training loss (may be NULL). */
    void (*progress)(int epoch, int epochs, double loss, void *ud);
    void *ud;
    /* Labels from somewhere other than labels_dir (annotation JSON), or NULL. Called
     * first with lab == NULL to ask whether video `name` is labelled (0 yes, 1 no:
     * it is left out of the probe), then with lab [T] to fill with 0/1. Negative:
     * an error, message in e. */
    int (*labels)(void *ud, const char *name, int64_t T, uint8_t *lab, sola_err *e);
    void *labels_ud;
    const struct sola_dataset_opts *dataset; /* layout / skipping; NULL: defaults */
} sola_probe_opts;

void sola_probe_default(sola_probe_opts *o);

typedef struct sola_probe_result {
    int videos_train, videos_val;
    long train_n, train_fg, val_n, val_fg; /* snippets; fg = action */
    double accuracy;        /* validation, all snippets */
    double acc_fg, acc_bg;  /* validation accuracy on action / background snippets */
    long boundary_n;        /* validation snippets near a transition */
    double boundary_accuracy;
    double majority;        /* accuracy of always answering the majority class (val) */
    double train_loss;      /* mean loss of the last epoch */
} sola_probe_result;

/* features_dir: a dataset folder (see dataset.h); labels_dir/NAME.npy for every
 * item: integer or bool [T] (or [T, 1]), nonzero = action. Errors name the file:
 * a missing label file (SOLA_ENOTFOUND), a label length other than T (SOLA_ESHAPE),
 * a model whose C differs from the features' (SOLA_ESHAPE), fewer than 2 videos. */
int sola_probe_run(const char *features_dir, const char *labels_dir,
                   const sola_probe_opts *o, sola_probe_result *r, sola_err *e);

/* The same probe on several versions of one labelled set, read once, so that a
 * model is always read against what plain smoothing does: the raw features, their
 * moving averages over ks[0..nk) snippets (centred; fewer at a video's ends), and,
 * if o->model is set, the refined features. The split, the probe's init and its
 * shuffles are the same for every version (o->seed). Progress counts the epochs of
 * all the fits. best: index of the moving average with the highest accuracy. */
enum { SOLA_PROBE_MAX_SMOOTH = 8 };
typedef struct sola_probe_report {
    sola_probe_result raw;
    int nsmooth, best;
    int smooth_k[SOLA_PROBE_MAX_SMOOTH];
    sola_probe_result smooth[SOLA_PROBE_MAX_SMOOTH];
    int has_model;
    sola_probe_result model;
} sola_probe_report;
int sola_probe_compare(const char *features_dir, const char *labels_dir,
                       const sola_probe_opts *o, const int *ks, int nk,
                       sola_probe_report *rep, sola_err *e);

/* out [T, C] = the mean of x [T, C] over the k snippets centred on each (k odd; an
 * even k reaches k/2 on both sides); at a video's ends, the mean of those that exist.
 * 0, or SOLA_ENOMEM. out must not alias x. */
int sola_moving_average(const float *x, int64_t T, int C, int k, float *out);

/* The training/evaluation core on in-memory data, for tests and other callers.
 * x [n, C] L2-normalised rows, y [n] in {0,1}; train rows are those with
 * is_val[i] == 0; boundary[i] marks boundary rows (may be NULL). */
int sola_probe_fit(const float *x, const uint8_t *y, const uint8_t *is_val,
                   const uint8_t *boundary, long n, int C, const sola_probe_opts *o,
                   sola_probe_result *r, sola_err *e);

#endif
