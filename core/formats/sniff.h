/* sniff.h -- what kind of file a buffer holds, decided by its first bytes.
 *
 * Readers call this before any format-specific complaint, so that a PNG saved as
 * x.npy, or a .npy uploaded as a model, is named for what it is ("this is a .npy
 * array, not a safetensors model") instead of producing a parser's error about a
 * header length of 379676406402707. */
#ifndef SOLA_SNIFF_H
#define SOLA_SNIFF_H

#include <stddef.h>

typedef enum sola_kind {
    SOLA_KIND_UNKNOWN = 0, /* none of the below: let the format's own parser speak */
    SOLA_KIND_EMPTY,
    SOLA_KIND_NPY,         /* \x93NUMPY */
    SOLA_KIND_NPZ,         /* a zip whose first member is NAME.npy */
    SOLA_KIND_TORCH_ZIP,   /* a zip holding NAME/data.pkl: torch.save since PyTorch 1.6 */
    SOLA_KIND_ZIP,         /* another zip */
    SOLA_KIND_PICKLE,      /* \x80 + protocol 2..5: a Python pickle (legacy torch.save) */
    SOLA_KIND_SAFETENSORS, /* 8-byte little-endian header length, then '{' */
    SOLA_KIND_HDF5,
    SOLA_KIND_PNG,
    SOLA_KIND_JPEG,
    SOLA_KIND_GZIP,
    SOLA_KIND_JSON,        /* text whose first non-blank byte is '{' or '[' */
    SOLA_KIND_TEXT,        /* printable text (CSV, a script, an error page...) */
} sola_kind;

/* Kind of a file from its first n bytes (pass at least the first 64 when the file
 * has them; fewer only decides less). Never reads past n. */
sola_kind sola_sniff(const void *buf, size_t n);

/* "a .npy array", "a PNG image", ...: a phrase to put after "this is". Static. */
const char *sola_kind_name(sola_kind k);

#endif
