/* test_heatmap.c -- the PNG heatmap decodes, has the documented geometry, and maps
 * similarity values to the documented colours. */
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "heatmap.h"
#include "testutil.h"

typedef struct {
    const unsigned char *p;
    size_t len, off;
} rd;

static void mem_read(png_structp png, png_bytep out, png_size_t n)
{
    rd *r = png_get_io_ptr(png);
    if (r->off + n > r->len)
        png_error(png, "short");
    memcpy(out, r->p + r->off, n);
    r->off += n;
}

/* Decodes an RGB PNG into a malloc'd buffer. */
static unsigned char *decode(const void *buf, size_t len, int *w, int *h)
{
    rd r = {buf, len, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    unsigned char *img = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(img);
        return NULL;
    }
    png_set_read_fn(png, &r, mem_read);
    png_read_info(png, info);
    *w = (int)png_get_image_width(png, info);
    *h = (int)png_get_image_height(png, info);
    ck_assert_int_eq(png_get_color_type(png, info), PNG_COLOR_TYPE_RGB);
    img = malloc((size_t)*w * *h * 3);
    for (int y = 0; y < *h; y++)
        png_read_row(png, img + (size_t)y * *w * 3, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    return img;
}

START_TEST(colormap_endpoints_are_viridis)
{
    unsigned char c[3];
    sola_colormap(-1.0f, c);
    ck_assert_int_eq(c[0], 0x44);
    ck_assert_int_eq(c[1], 0x01);
    ck_assert_int_eq(c[2], 0x54);
    sola_colormap(1.0f, c);
    ck_assert_int_eq(c[0], 0xfd);
    ck_assert_int_eq(c[1], 0xe7);
    ck_assert_int_eq(c[2], 0x25);
    sola_colormap(5.0f, c); /* clamped */
    ck_assert_int_eq(c[0], 0xfd);
    sola_colormap(0.0f, c); /* middle anchor */
    ck_assert_int_eq(c[0], 0x21);
    ck_assert_int_eq(c[1], 0x91);
}
END_TEST

START_TEST(two_maps_side_by_side)
{
    enum { T = 4 };
    float a[T * T], b[T * T];
    for (int i = 0; i < T * T; i++) {
        a[i] = (i / T == i % T) ? 1.0f : -1.0f; /* identity-like */
        b[i] = 0.0f;
    }
    const float *maps[2] = {a, b};
    void *png;
    size_t len;
    sola_err e = {0};
    ck_assert_int_eq(sola_heatmap_png(maps, 2, T, &png, &len, &e), 0);
    int w, h;
    unsigned char *img = decode(png, len, &w, &h);
    ck_assert_ptr_nonnull(img);
    int cell = 256 / T, side = T * cell;
    ck_assert_int_eq(h, side);
    ck_assert_int_eq(w, 2 * side + 2 * 8 + 16);
    /* a[0][0] = +1 -> yellow; a[0][1] = -1 -> purple; b anything -> teal */
    unsigned char *p00 = img;
    ck_assert_int_eq(p00[0], 0xfd);
    unsigned char *p01 = img + (size_t)cell * 3;
    ck_assert_int_eq(p01[0], 0x44);
    unsigned char *pb = img + (size_t)(side + 8) * 3;
    ck_assert_int_eq(pb[0], 0x21);
    /* the gap between the maps is white */
    unsigned char *gap = img + (size_t)side * 3;
    ck_assert_int_eq(gap[0], 255);
    free(img);
    free(png);
}
END_TEST

START_TEST(bad_arguments_are_refused)
{
    float a[1] = {0};
    const float *maps[1] = {a};
    void *png;
    size_t len;
    sola_err e = {0};
    ck_assert_int_eq(sola_heatmap_png(maps, 0, 1, &png, &len, &e), SOLA_EINVAL);
    ck_assert_int_eq(sola_heatmap_png(maps, 1, 100000, &png, &len, &e), SOLA_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(e.msg, "100000"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("heatmap");
    TCase *tc = tcase_create("heatmap");
    tcase_add_test(tc, colormap_endpoints_are_viridis);
    tcase_add_test(tc, two_maps_side_by_side);
    tcase_add_test(tc, bad_arguments_are_refused);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
