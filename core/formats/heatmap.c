/* heatmap.c -- TSM heatmaps as PNG (libpng does the encoding).
 *
 * Layout: n maps side by side, GAP px apart, then a colour bar (top = +1, bottom = -1)
 * of the full map height. Every value is clamped to [-1, 1] so that the same colour
 * means the same similarity in every map and in every image we produce. */
#include "heatmap.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#define GAP 8
#define BAR 16

/* viridis sampled at 0, 1/8, ..., 1 (matplotlib's published anchor colours);
 * linear interpolation between neighbours is visually indistinguishable. */
static const unsigned char viridis[9][3] = {
    {0x44, 0x01, 0x54}, {0x47, 0x2d, 0x7b}, {0x3b, 0x52, 0x8b}, {0x2c, 0x72, 0x8e},
    {0x21, 0x91, 0x8c}, {0x28, 0xae, 0x80}, {0x5e, 0xc9, 0x62}, {0xad, 0xdc, 0x30},
    {0xfd, 0xe7, 0x25},
};

void sola_colormap(float v, unsigned char rgb[3])
{
    if (!(v >= -1.0f)) /* also catches NaN: drawn as the bottom colour */
        v = -1.0f;
    if (v > 1.0f)
        v = 1.0f;
    float pos = (v + 1.0f) * 0.5f * 8.0f;
    int i = (int)pos;
    if (i >= 8)
        i = 7;
    float f = pos - (float)i;
    for (int c = 0; c < 3; c++)
        rgb[c] = (unsigned char)(viridis[i][c] + f * (viridis[i + 1][c] - viridis[i][c]) + 0.5f);
}

typedef struct membuf {
    unsigned char *p;
    size_t len, cap;
    int oom;
} membuf;

static void mem_write(png_structp png, png_bytep data, png_size_t n)
{
    membuf *b = png_get_io_ptr(png);
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            png_error(png, "out of memory");
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void mem_flush(png_structp png)
{
    (void)png;
}

int sola_heatmap_png(const float *const *maps, int n, int T, void **out, size_t *outlen,
                     sola_err *e)
{
    *out = NULL;
    *outlen = 0;
    if (n < 1 || n > 8 || T < 1)
        return sola_errf(e, SOLA_EINVAL, "heatmap: need 1..8 maps of T >= 1 (got %d, T=%d)", n,
                         T);
    if (T > 8192)
        return sola_errf(e, SOLA_ETOOBIG,
                         "heatmap: T = %d is too long for an image (at most 8192 snippets)", T);
    int cell = T >= 256 ? 1 : 256 / T;
    int side = T * cell;
    int width = n * side + n * GAP + BAR;
    int height = side;

    unsigned char *row = malloc((size_t)width * 3);
    if (!row)
        return sola_errf(e, SOLA_ENOMEM, "heatmap: out of memory");
    membuf buf = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        free(row);
        return sola_errf(e, SOLA_ENOMEM, "heatmap: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(row);
        free(buf.p);
        return sola_errf(e, buf.oom ? SOLA_ENOMEM : SOLA_EIO, "heatmap: PNG encoding failed");
    }
    png_set_write_fn(png, &buf, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 6);
    png_write_info(png, info);
    for (int y = 0; y < height; y++) {
        int i = y / cell;
        memset(row, 255, (size_t)width * 3); /* white gaps */
        for (int k = 0; k < n; k++) {
            unsigned char *px = row + (size_t)k * (side + GAP) * 3;
            const float *r = maps[k] + (size_t)i * T;
            for (int x = 0; x < side; x++)
                sola_colormap(r[x / cell], px + (size_t)x * 3);
        }
        unsigned char c[3];
        sola_colormap(1.0f - 2.0f * (float)y / (float)(height > 1 ? height - 1 : 1), c);
        unsigned char *bar = row + (size_t)(n * (side + GAP)) * 3;
        for (int x = 0; x < BAR; x++)
            memcpy(bar + (size_t)x * 3, c, 3);
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    *out = buf.p;
    *outlen = buf.len;
    return 0;
}
