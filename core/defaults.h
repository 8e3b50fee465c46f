/* defaults.h -- the one home of the defaults a fresh model and a training run start
 * from, shared by `sola init`, `sola train`, the daemon's first model and POST /jobs.
 * The model's shape is the SoLa authors' (hidden 512, kernels 5 and 1); the run's
 * length and batch their recipe's. The objective's own settings (window, positions,
 * head, K, temperatures) live with the objective: sola_train_cfg_default,
 * sola_cycle_cfg_default. */
#ifndef SOLA_DEFAULTS_H
#define SOLA_DEFAULTS_H

#define SOLA_DEFAULT_HIDDEN 512 /* H: hidden channels of the module */
#define SOLA_DEFAULT_K1 5       /* first convolution's kernel */
#define SOLA_DEFAULT_K2 1       /* second convolution's kernel */

#define SOLA_DEFAULT_EPOCHS 150
#define SOLA_DEFAULT_BATCH 256          /* windows per step */
#define SOLA_DEFAULT_CHECKPOINT_EVERY 10 /* epochs between checkpoints */

#endif
