/* safetensors.h -- the safetensors format: 8-byte little-endian header length N,
 * N bytes of JSON header {"NAME": {"dtype", "shape", "data_offsets": [b, e]}, ...,
 * "__metadata__": {str: str}}, then the data. Reading is bounded and checked: header
 * length <= SOLA_ST_MAX_HEADER and <= file size, header is valid JSON (jansson), every
 * tensor's byte size = product(shape) * dtype size, offsets inside the data area,
 * no two tensors overlap, metadata values are strings. Tensors are views into the
 * caller's buffer (or the file map). */
#ifndef SOLA_SAFETENSORS_H
#define SOLA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SOLA_ST_MAX_HEADER (100u * 1024 * 1024)

enum { SOLA_DT_F32, SOLA_DT_F16, SOLA_DT_BF16, SOLA_DT_F64, SOLA_DT_OTHER };

typedef struct sola_st_tensor {
    char *name;          /* owned */
    char dtype_str[16];  /* as written in the file ("F32", "I64", ...) */
    int dtype;           /* SOLA_DT_* */
    int ndim;
    int64_t shape[8];
    const unsigned char *data; /* view */
    size_t nbytes;
} sola_st_tensor;

typedef struct sola_st_file {
    sola_st_tensor *t;
    int n;
    char **meta_keys, **meta_vals; /* owned */
    int nmeta;
    void *map_; /* internal: owned file map */
    size_t maplen_;
} sola_st_file;

int sola_st_parse(const void *buf, size_t len, const char *name, sola_st_file *f,
                  sola_err *e);
int sola_st_open(const char *path, sola_st_file *f, sola_err *e);
void sola_st_close(sola_st_file *f);

const sola_st_tensor *sola_st_find(const sola_st_file *f, const char *name);
const char *sola_st_meta(const sola_st_file *f, const char *key);

/* Element count of a tensor. */
size_t sola_st_numel(const sola_st_tensor *t);
/* Converts a float tensor (F32/F16/BF16/F64) to float32 into out[numel]. */
int sola_st_to_f32(const sola_st_tensor *t, float *out, sola_err *e);

/* Output description for writing (data always float32, written as "F32"). */
typedef struct sola_st_out {
    const char *name;
    int ndim;
    int64_t shape[8];
    const float *data;
} sola_st_out;

/* Serialises tensors (+ metadata pairs, may be 0) into a malloc'd buffer. The header
 * is padded with spaces to a multiple of 8 bytes, as the reference writer does. */
int sola_st_encode(const sola_st_out *t, int n, const char *const *meta_keys,
                   const char *const *meta_vals, int nmeta, void **buf, size_t *len,
                   sola_err *e);
/* Same, written atomically to path. */
int sola_st_save(const char *path, const sola_st_out *t, int n, const char *const *meta_keys,
                 const char *const *meta_vals, int nmeta, sola_err *e);

#endif
