/* cmd_info.c -- `sola info FILE`: what a .npy, .npz or .safetensors file holds. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "fsutil.h"
#include "npy.h"
#include "npz.h"
#include "safetensors.h"

static const char usage[] = "sola info FILE(.npy|.npz|.safetensors)";

static void print_shape(int ndim, const int64_t *shape)
{
    putchar('[');
    for (int i = 0; i < ndim; i++)
        printf("%s%lld", i ? ", " : "", (long long)shape[i]);
    putchar(']');
}

static int info_npy(const char *path)
{
    sola_map m;
    sola_err e = {0};
    if (sola_map_file(path, &m, &e)) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    sola_npy_info in;
    int rc = sola_npy_inspect(m.data, m.len, path, SOLA_NPY_LABELS, &in, &e);
    sola_unmap(&m);
    if (rc) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    printf("%s: npy v%d, dtype %s, %s order, shape ", path, in.major, in.descr,
           in.fortran ? "Fortran" : "C");
    print_shape(in.ndim, in.shape);
    printf(", %zu bytes of data\n", in.data_len);
    return EXIT_OK;
}

static int info_npz(const char *path)
{
    sola_npz z;
    sola_err e = {0};
    if (sola_npz_open(path, &z, &e)) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    printf("%s: npz, %d member%s\n", path, z.n, z.n == 1 ? "" : "s");
    int rc = EXIT_OK;
    for (int i = 0; i < z.n; i++) {
        sola_array a = {0};
        printf("  %s: %s, %zu -> %zu bytes", z.entries[i].name,
               z.entries[i].method ? "deflated" : "stored", z.entries[i].csize,
               z.entries[i].usize);
        if (sola_npz_read(&z, i, SOLA_NPY_LABELS, &a, &e) == 0) {
            printf(", shape ");
            print_shape(a.ndim, a.shape);
            sola_array_free(&a);
        } else {
            printf(", unreadable: %s", e.msg);
            rc = EXIT_RUNTIME;
        }
        putchar('\n');
    }
    sola_npz_close(&z);
    return rc;
}

static int info_st(const char *path)
{
    sola_st_file f;
    sola_err e = {0};
    if (sola_st_open(path, &f, &e)) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    printf("%s: safetensors, %d tensor%s\n", path, f.n, f.n == 1 ? "" : "s");
    for (int i = 0; i < f.n; i++) {
        printf("  %-36s %-5s ", f.t[i].name, f.t[i].dtype_str);
        print_shape(f.t[i].ndim, f.t[i].shape);
        putchar('\n');
    }
    if (f.nmeta)
        printf("metadata:\n");
    for (int i = 0; i < f.nmeta; i++)
        printf("  %s: %s\n", f.meta_keys[i], f.meta_vals[i]);
    sola_st_close(&f);
    return EXIT_OK;
}

int cmd_info(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: %s\n", usage);
        return EXIT_OK;
    }
    if (argc != 2)
        return cli_usage(usage, "info takes exactly one file");
    const char *path = argv[1];
    /* Decide by content, not by name: a mislabelled file still gets the right reader. */
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        cli_errorf("%s: cannot open: %m", path);
        return EXIT_RUNTIME;
    }
    unsigned char magic[6] = {0};
    size_t n = fread(magic, 1, sizeof magic, fp);
    fclose(fp);
    if (n == 6 && !memcmp(magic, "\x93NUMPY", 6))
        return info_npy(path);
    if (n >= 4 && !memcmp(magic, "PK", 2))
        return info_npz(path);
    if (sola_has_ext(path, ".safetensors") || n >= 6)
        return info_st(path);
    cli_errorf("%s: not a .npy, .npz or .safetensors file", path);
    return EXIT_RUNTIME;
}
