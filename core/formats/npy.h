/* npy.h -- NumPy .npy reading and writing.
 *
 * Reads format versions 1.0, 2.0 and 3.0; dtypes f2/f4/f8 in either byte order
 * ('<', '>', '|' or '=' where meaningful), C or Fortran order; converts to float32
 * C order. With SOLA_NPY_LABELS also integer (i1..i8, u1..u8) and bool ('|b1')
 * arrays, for label files. Everything else (object arrays, structured dtypes,
 * strings, complex) is refused with a message. Every read is bounded by `len`; the
 * header is limited to SOLA_NPY_MAX_HEADER bytes; shape products are
 * overflow-checked and must match the data size exactly (trailing bytes refused).
 * Writes are always '<f4', C order, version 1.0 (2.0 if the header would not fit). */
#ifndef SOLA_NPY_H
#define SOLA_NPY_H

#include <stddef.h>

#include "array.h"
#include "err.h"

#define SOLA_NPY_MAX_HEADER (64 * 1024)

enum {
    SOLA_NPY_LABELS = 1, /* accept integer and bool dtypes too */
    /* let NaN/Inf through sola_npy_check_values, and let f8 values beyond float32's
     * range become infinities in sola_npy_parse/load (as numpy's astype does)
     * instead of refusing them */
    SOLA_NPY_ALLOW_NONFINITE = 2,
    SOLA_NPY_SCALAR = 4, /* accept 0-d arrays (np.save of a scalar), read as shape [1] */
};

/* Parses a whole .npy image. `name` (file name or "request body") prefixes errors.
 * An f8 value too large for float32 is refused (SOLA_EFORMAT, naming the element)
 * unless flags has SOLA_NPY_ALLOW_NONFINITE; NaN/Inf stored as such pass (callers that
 * refuse them scan with sola_first_nonfinite).
 * out->data is newly allocated (caller frees with sola_array_free). Accepts ndim
 * 1..SOLA_MAXDIM; callers check the shape they need. */
int sola_npy_parse(const void *buf, size_t len, const char *name, int flags,
                   sola_array *out, sola_err *e);

/* Validates the header only: fills ndim/shape (data NULL) and *data_off, *data_len
 * (bytes of payload it describes). For streaming checks of uploaded files. */
int sola_npy_peek(const void *buf, size_t len, const char *name, sola_array *shape_out,
                  size_t *data_off, size_t *data_len, sola_err *e);

/* Where the payload of an .npy image starts, from its preamble alone (magic, version
 * 1.0-3.0, header length up to SOLA_NPY_MAX_HEADER; the header itself is not read):
 * for a check that runs as the bytes arrive. 0 when buf[0..len) holds no such
 * preamble (yet): not an .npy, or fewer than its 10 or 12 bytes. */
size_t sola_npy_data_offset(const void *buf, size_t len);

/* What a header says, for `sola info` and callers that want the dtype as written. */
typedef struct sola_npy_info {
    int major;          /* format version 1, 2 or 3 */
    char descr[32];     /* dtype as written ("<f4", ">f8", "|b1") */
    size_t itemsize;
    int fortran;        /* 1 if Fortran-ordered in the file */
    int ndim;
    int64_t shape[SOLA_MAXDIM];
    size_t data_off, data_len; /* payload position and size in bytes */
} sola_npy_info;

/* Like sola_npy_peek, with flags (SOLA_NPY_LABELS accepts integer/bool dtypes) and
 * the dtype/order/version reported. Validates the header only. */
int sola_npy_inspect(const void *buf, size_t len, const char *name, int flags,
                     sola_npy_info *info, sola_err *e);
/* 1 when the payload is little-endian f4 in C order on this (little-endian) machine,
 * so it can be copied as is; anything else takes the converting path. */
int sola_npy_info_is_f4c(const sola_npy_info *in);

/* Maps and parses a file. */
int sola_npy_load(const char *path, int flags, sola_array *out, sola_err *e);

/* The one value check of the project (solad's uploads, `sola train`'s start scan):
 * reads the .npy file at path through a fixed 128 KiB buffer, never whole, and
 * returns 0 when every value is finite, or SOLA_EFORMAT naming the file and the first
 * bad element ("x.npy: element [12, 3] is NaN ..."), an f8 value beyond float32's
 * range counting as one (it would become an infinity). With SOLA_NPY_ALLOW_NONFINITE
 * only the header is checked. A truncated file is SOLA_EFORMAT; a missing one
 * SOLA_ENOTFOUND. For floats already in
 * memory use sola_first_nonfinite (array.h). */
int sola_npy_check_values(const char *path, int flags, sola_err *e);

/* The one .npy header writer: magic, version, length, the dict for dtype `descr`
 * ("<f4", "|u1") in C order with `shape`, spaces and a '\n' up to a multiple of 64
 * bytes (as NumPy writes it, so the data that follows is aligned); version 1.0, or
 * 2.0 if the dict would not fit. Writes into hdr (size cap); returns the header's
 * length, or 0 if it does not fit in cap. */
size_t sola_npy_header(const char *descr, int ndim, const int64_t *shape, unsigned char *hdr,
                       size_t cap);

/* Encodes float32 data of the given shape as a malloc'd .npy image. */
int sola_npy_encode(const float *data, int ndim, const int64_t *shape, void **buf,
                    size_t *len, sola_err *e);

/* Writes a .npy file atomically (temporary + fsync + rename). */
int sola_npy_save(const char *path, const float *data, int ndim, const int64_t *shape,
                  sola_err *e);

/* sola_npy_save of data that has `room` writable bytes before it: the header is built
 * there and the file written from that one buffer with sola_afile_write_direct
 * (O_DIRECT when data - header length is aligned to SOLA_DIO_ALIGN: no copy through
 * the page cache). The bytes before data are overwritten; the file is byte for byte
 * sola_npy_save's (which it falls back to without enough room, or on a big-endian
 * host). */
int sola_npy_save_inplace(const char *path, float *data, int ndim, const int64_t *shape,
                          size_t room, sola_err *e);

/* IEEE 754 half (binary16) bits to float32, subnormals, infinities and NaN
 * included. Shared with the safetensors reader. */
float sola_half_to_float(uint16_t h);

#endif
