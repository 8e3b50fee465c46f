/* bytes.h -- the byte order of this machine and little-endian float32 stores, for the
 * file formats that fix it (.npy '<f4', safetensors F32). Header-only. */
#ifndef SOLA_BYTES_H
#define SOLA_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* 1 on a little-endian machine. */
static inline int sola_host_is_le(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Copies n floats to dst as little-endian bytes (a memcpy on little-endian hosts). */
static inline void sola_store_le_f32(unsigned char *dst, const float *src, size_t n)
{
    if (sola_host_is_le()) {
        memcpy(dst, src, n * 4);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        for (int b = 0; b < 4; b++)
            dst[4 * i + (size_t)b] = (unsigned char)(u >> (8 * b));
    }
}

#endif
