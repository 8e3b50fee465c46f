/* npz.h -- NumPy .npz archives (zip of .npy members), read and write.
 *
 * The zip container (local headers, central directory, ZIP64 records as NumPy
 * writes them for large members) is parsed here with bounds checks; compression is
 * zlib's raw inflate/deflate (method 0 stored or 8 deflated; others refused). Member
 * names lose their ".npy" suffix. Reading one member inflates only that member. */
/* implemented in: npz.c npz_write.c */
#ifndef SOLA_NPZ_H
#define SOLA_NPZ_H

#include <stddef.h>
#include <stdint.h>

#include "array.h"
#include "err.h"

typedef struct sola_npz_entry {
    char *name;        /* without ".npy", owned */
    size_t offset;     /* of the local header */
    size_t csize, usize;
    int method;        /* 0 stored, 8 deflated */
    unsigned crc;
} sola_npz_entry;

typedef struct sola_npz {
    const unsigned char *buf; /* borrowed (or owned map, see sola_npz_open) */
    size_t len;
    sola_npz_entry *entries;
    int n;
    void *map_; /* internal: owned mapping when opened from a file */
    size_t maplen_;
    char *name_; /* internal: owned copy of the archive name, for messages */
} sola_npz;

/* Parses the directory of an archive image held by the caller (buf must outlive z). */
int sola_npz_parse(const void *buf, size_t len, const char *name, sola_npz *z, sola_err *e);
/* Maps a file and parses its directory. */
int sola_npz_open(const char *path, sola_npz *z, sola_err *e);
void sola_npz_close(sola_npz *z);

/* Index of a member by name (without .npy), or -1. */
int sola_npz_find(const sola_npz *z, const char *name);
/* The member that is "the sequence" when one is expected: "feats" if present, else
 * the only member; -1 (and message) otherwise. */
int sola_npz_pick(const sola_npz *z, const char *name, sola_err *e);
/* Decompresses (CRC-checked, bounded by the declared size) and parses member i. */
int sola_npz_read(const sola_npz *z, int i, int npy_flags, sola_array *out, sola_err *e);

/* Builds an archive of float32 members (names without .npy). deflate: 0 stored,
 * 1 deflated. sola_npz_encode -> malloc'd buffer; sola_npz_save -> atomic file. */
int sola_npz_encode(const char *const *names, const sola_array *arrays, int n, int deflate,
                    void **buf, size_t *len, sola_err *e);
int sola_npz_save(const char *path, const char *const *names, const sola_array *arrays,
                  int n, int deflate, sola_err *e);
/* The same where raw[i] (when raw and raw[i] are not NULL) is a ready .npy image of
 * rawlen[i] bytes stored as member i unchanged (any dtype: labels, fps, ...); arrays[i]
 * is ignored for those. */
int sola_npz_save_mixed(const char *path, const char *const *names, const sola_array *arrays,
                        const void *const *raw, const size_t *rawlen, int n, int deflate,
                        sola_err *e);
/* The .npy image of member i, decompressed (CRC-checked) into a malloc'd buffer. */
/* The zip CRC-32 of n bytes (zlib's, taken a GiB at a time: any n). */
uint32_t sola_crc32(const void *p, size_t n);

int sola_npz_member_image(const sola_npz *z, int i, void **img, size_t *len, sola_err *e);

#endif
