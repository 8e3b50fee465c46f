/* model.h -- the SoLa module's parameters, their file form, and init.
 *
 * All trainable parameters live in one contiguous float buffer (`params`, llm.c
 * style) so that gradients and AdamW moments can use the same layout and AdamW is a
 * flat loop. The order is fixed (see sola_model_layout):
 *   w0 [H, C, k1]   conv_network.0.weight
 *   b0 [H]          conv_network.0.bias
 *   w2 [H, H, k2]   conv_network.2.weight
 *   b2 [H]          conv_network.2.bias
 *   w4 [C, H]       conv_network.4.weight  (file shape [C, H, 1])
 *   b4 [C]          conv_network.4.bias
 *   alpha [1]       alpha
 *   -- optional dissimilarity head (P > 0), part of training state --
 *   hw0 [P, C]      dissim_head.network.0.weight
 *   hb0 [P]         dissim_head.network.0.bias
 *   hw2 [C, P]      dissim_head.network.2.weight
 *   hb2 [C]         dissim_head.network.2.bias
 * The pointers w0..hb2 point into `params`. Tensors of other objectives (cycle heads,
 * momentum copies, queues, optimizer state) travel in `extra`, untouched by
 * inference, so that a checkpoint round-trips.
 *
 * Thread rules: a loaded model is immutable; any number of threads may run
 * sola_refine on it at once. Only the trainer writes params, on its own copy. */
/* implemented in: model.c model_io.c */
#ifndef SOLA_MODEL_H
#define SOLA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct sola_tensor {
    char *name;
    int ndim;
    int64_t shape[4];
    float *data; /* owned */
} sola_tensor;

typedef struct sola_kv {
    char *key;
    char *val;
} sola_kv;

typedef struct sola_model {
    int C, H, k1, k2, d1, d2, P;
    float *params; /* owned, nparams floats */
    size_t nparams;
    float *w0, *b0, *w2, *b2, *w4, *b4, *alpha;
    float *hw0, *hb0, *hw2, *hb2; /* NULL when P == 0 */

    /* Weights repacked once for GEMM (built by sola_model_pack, owned):
     * w0p [C, k1*H]: w0p[c*k1*H + j*H + h] = w0[h, c, j]
     * w2p [H, k2*H]: same for conv 2. NULL until packed, and NULL again once packed
     * when the backend made a copy of its own (sola_gemm_w_borrows: the oneDNN build
     * keeps its column chunks only, 21 MB less per model at C = 2048, H = 512). A
     * model is packed when g0 is not NULL. */
    float *w0p, *w2p;
    /* The three products' right-hand sides prepared for core/model/gemm.h (w0p, w2p and w4,
     * which they may reference), owned; NULL until packed. */
    struct sola_gemm_w *g0, *g2, *g4;

    sola_kv *meta; /* __metadata__, owned */
    int nmeta;
    sola_tensor *extra; /* other tensors from the file, owned */
    int nextra;
} sola_model;

/* Offsets (in floats) of each parameter inside params, for a given shape. */
typedef struct sola_layout {
    size_t w0, b0, w2, b2, w4, b4, alpha, hw0, hb0, hw2, hb2, total, module_total;
} sola_layout;
void sola_model_layout(int C, int H, int k1, int k2, int P, sola_layout *l);

/* Allocates a zeroed model of the given shape (P = 0: no head). d1 = d2 = 1.
 * Returns NULL on bad sizes (k even or < 1, C/H < 1) or no memory. */
sola_model *sola_model_new(int C, int H, int k1, int k2, int P, sola_err *e);
void sola_model_free(sola_model *m);

/* Deep copy (params, meta, extra); packed again if m was packed. */
sola_model *sola_model_clone(const sola_model *m, sola_err *e);

/* PyTorch's default init for nn.Conv1d / nn.Linear: weight and bias uniform in
 * +-1/sqrt(fan_in) (fan_in = in_channels * kernel), alpha = 0 (identity), seeded.
 * The module is drawn first, then the head (if P > 0) from the same stream, so the
 * module does not depend on P. Drops the packs: call sola_model_pack before refining. */
void sola_model_init(sola_model *m, uint64_t seed);
/* Resize to add a head of width P (keeps module params). */
int sola_model_add_head(sola_model *m, int P, uint64_t seed, sola_err *e);

/* Builds g0/g2/g4 (through w0p/w2p) from params; call after load or after params change. */
int sola_model_pack(sola_model *m, sola_err *e);
/* The same for a model that will refine no pass shorter than min_rows rows (0: not
 * known; sola_model_pack's case): the backend may then leave out layouts only shorter
 * passes use (sola_gemm_w_new), which makes the pack quicker and smaller. Every pass
 * still gives the same bits; a shorter one only runs slower. */
int sola_model_pack_ex(sola_model *m, size_t min_rows, sola_err *e);
/* The conv weights w [Cout, Cin, k] as one GEMM's right-hand side: a new [Cin, k*Cout]
 * array (free()) with wp[c*k*Cout + j*Cout + o] = w[o, c, j], so X[T, Cin] . wp gives
 * every tap's contribution side by side; NULL when out of memory. */
float *sola_model_pack_conv(const float *w, int Cout, int Cin, int k);

/* Metadata: returns the value or NULL; set replaces or appends (copies strings). */
const char *sola_model_meta(const sola_model *m, const char *key);
int sola_model_set_meta(sola_model *m, const char *key, const char *val);
/* Sets key to the shortest %g form of f that reads back as the same float ("0.0001",
 * not "9.99999975e-05"), so metadata stays readable and exact. */
int sola_model_set_meta_float(sola_model *m, const char *key, float f);

/* Extra tensors: find by name (NULL if absent); put copies data (replaces). */
const sola_tensor *sola_model_extra(const sola_model *m, const char *name);
int sola_model_put_extra(sola_model *m, const char *name, int ndim, const int64_t *shape,
                         const float *data, sola_err *e);

/* Element count of an extra tensor. */
size_t sola_tensor_numel(const sola_tensor *t);
/* 1 if name is one of the PyTorch names of the parameters above (module or head). */
int sola_model_is_param_name(const char *name);

/* Load from a safetensors file or buffer (shapes define C, H, k1, k2, P; dilations
 * from metadata). Any dtype F32/F16/BF16/F64 is converted. The result is packed.
 * Names may carry one common prefix ("module." from DataParallel, or the module's path
 * inside a larger network); other tensors are kept in `extra` (integer dtypes as
 * float32). Missing or mis-shaped tensors fail with SOLA_EFORMAT / SOLA_ESHAPE naming
 * the tensor. `name` is used in messages. */
sola_model *sola_model_load(const char *path, sola_err *e);
/* The same, packed with sola_model_pack_ex(min_rows). */
sola_model *sola_model_load_ex(const char *path, size_t min_rows, sola_err *e);
sola_model *sola_model_from_buffer(const void *buf, size_t len, const char *name,
                                   sola_err *e);
/* Writes atomically as safetensors with PyTorch names, metadata format="sola",
 * dilation1, dilation2 plus m->meta; include_train=0 leaves out head and extra. */
int sola_model_save(const sola_model *m, const char *path, int include_train, sola_err *e);
/* Same, into a malloc'd buffer. */
int sola_model_serialize(const sola_model *m, int include_train, void **buf, size_t *len,
                         sola_err *e);

#endif
