/* sniff.c -- see sniff.h. Only magic numbers and cheap structural tests: a kind is
 * returned only when a reader of another format could not have been meant. */
#include "sniff.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Largest safetensors header we would consider (the format's own limit is 100 MB). */
#define ST_MAX_HEADER (100u * 1000 * 1000)

static int starts(const unsigned char *b, size_t n, const char *magic, size_t m)
{
    return n >= m && memcmp(b, magic, m) == 0;
}

/* A zip's first local file header: "PK\3\4", name length at 26, name at 30. */
static sola_kind zip_kind(const unsigned char *b, size_t n)
{
    if (n < 30)
        return SOLA_KIND_ZIP;
    size_t nl = (size_t)b[26] | (size_t)b[27] << 8;
    if (nl == 0 || 30 + nl > n)
        return SOLA_KIND_ZIP;
    const char *name = (const char *)b + 30;
    if (nl >= 4 && !memcmp(name + nl - 4, ".npy", 4))
        return SOLA_KIND_NPZ;
    for (size_t i = 0; i + 8 <= nl; i++)
        if (!memcmp(name + i, "data.pkl", 8))
            return SOLA_KIND_TORCH_ZIP;
    return SOLA_KIND_ZIP;
}

/* No control bytes, and mostly ASCII (UTF-8 text may hold some high bytes). */
static int is_text(const unsigned char *b, size_t n)
{
    size_t m = n < 256 ? n : 256, high = 0;
    for (size_t i = 0; i < m; i++) {
        unsigned char c = b[i];
        if (c >= 0x80)
            high++;
        else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return 0;
        else if (c == 0x7f)
            return 0;
    }
    return m > 0 && high * 4 <= m;
}

sola_kind sola_sniff(const void *buf, size_t n)
{
    const unsigned char *b = buf;
    if (n == 0)
        return SOLA_KIND_EMPTY;
    if (starts(b, n, "\x93NUMPY", 6))
        return SOLA_KIND_NPY;
    if (starts(b, n, "PK\x03\x04", 4) || starts(b, n, "PK\x05\x06", 4))
        return zip_kind(b, n);
    if (starts(b, n, "\x89HDF\r\n\x1a\n", 8))
        return SOLA_KIND_HDF5;
    if (starts(b, n, "\x89PNG\r\n\x1a\n", 8))
        return SOLA_KIND_PNG;
    if (starts(b, n, "\xff\xd8\xff", 3))
        return SOLA_KIND_JPEG;
    if (starts(b, n, "\x1f\x8b", 2))
        return SOLA_KIND_GZIP;
    /* safetensors before pickle: a header length of 0x280..0x5ff bytes whose low byte
     * is 0x80 starts like a pickle's PROTO opcode (80 02..05); a pickle cannot have the
     * zero bytes 4..7 and the '{' at 8 of a safetensors file */
    if (n >= 9) {
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--)
            hl = hl << 8 | b[i];
        if (hl >= 2 && hl <= ST_MAX_HEADER && b[8] == '{')
            return SOLA_KIND_SAFETENSORS;
    }
    if (n >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5)
        return SOLA_KIND_PICKLE;
    if (is_text(b, n)) {
        size_t i = 0;
        while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r'))
            i++;
        if (i < n && (b[i] == '{' || b[i] == '['))
            return SOLA_KIND_JSON;
        return SOLA_KIND_TEXT;
    }
    return SOLA_KIND_UNKNOWN;
}

const char *sola_kind_name(sola_kind k)
{
    switch (k) {
    case SOLA_KIND_EMPTY: return "an empty file";
    case SOLA_KIND_NPY: return "a .npy array (NumPy)";
    case SOLA_KIND_NPZ: return "an .npz archive of .npy arrays";
    case SOLA_KIND_TORCH_ZIP:
        return "a PyTorch checkpoint (torch.save); convert it with "
               "safetensors.torch.save_file(torch.load(pt), \"m.safetensors\")";
    case SOLA_KIND_ZIP: return "a zip archive without .npy members";
    case SOLA_KIND_PICKLE: return "a Python pickle (e.g. a legacy torch.save checkpoint)";
    case SOLA_KIND_SAFETENSORS: return "a safetensors file";
    case SOLA_KIND_HDF5: return "an HDF5 file";
    case SOLA_KIND_PNG: return "a PNG image";
    case SOLA_KIND_JPEG: return "a JPEG image";
    case SOLA_KIND_GZIP: return "a gzip-compressed file";
    case SOLA_KIND_JSON: return "JSON text";
    case SOLA_KIND_TEXT: return "a text file";
    default: return "a file of unknown type";
    }
}

