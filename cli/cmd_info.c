/* cmd_info.c -- `sola info FILE`: what a .npy, .npz, .safetensors or HDF5 file holds.
 * The kind is decided by the file's first bytes (core/formats/sniff.h), not by its name. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "fsutil.h"
#include "h5io.h"
#include "npy.h"
#include "npz.h"
#include "safetensors.h"
#include "sniff.h"

static const char usage[] = "sola info FILE(.npy|.npz|.safetensors|.h5)";
static const char help[] =
    "Describes one file; reads only its headers (and the members of an .npz).\n"
    "The kind is decided by the first bytes, not by the name: a mislabelled file is\n"
    "read with the right reader, and a file of another kind is named for what it is.\n"
    "\n"
    "  .npy          version, dtype, C/Fortran order, shape, data size\n"
    "  .npz          each member: stored/deflated, sizes, shape\n"
    "  .safetensors  each tensor: name, dtype, shape; then the __metadata__ strings\n"
    "                (a sola model: conv_network.*, alpha, dissim_head.*)\n"
    "  HDF5 (.h5)    each dataset under /: its shape (one video per 2-D dataset)\n"
    "\n"
    "Exit codes: 0 ok, 1 the file cannot be read or is not one of these, 2 usage.\n"
    "Example: sola info model.safetensors\n";

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

static int info_h5(const char *path)
{
    sola_h5_entry *en = NULL;
    int n = 0;
    sola_err e = {0};
    if (sola_h5_list(path, &en, &n, &e)) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    printf("%s: HDF5, %d entr%s under /\n", path, n, n == 1 ? "y" : "ies");
    for (int i = 0; i < n; i++) {
        printf("  %-36s ", en[i].name);
        if (en[i].is_feature)
            print_shape(2, en[i].shape);
        else
            fputs(en[i].what, stdout);
        putchar('\n');
    }
    sola_h5_list_free(en, n);
    return EXIT_OK;
}

int cmd_info(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: %s\n\n%s", usage, help);
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
    unsigned char head[512];
    size_t n = fread(head, 1, sizeof head, fp);
    fclose(fp);
    sola_kind k = sola_sniff(head, n);
    switch (k) {
    case SOLA_KIND_NPY: return info_npy(path);
    case SOLA_KIND_NPZ:
    case SOLA_KIND_ZIP: return info_npz(path);
    case SOLA_KIND_SAFETENSORS: return info_st(path);
    case SOLA_KIND_HDF5: return info_h5(path);
    case SOLA_KIND_UNKNOWN:
        /* a damaged file of the kind its name says: let that reader say what is wrong */
        if (sola_has_ext(path, ".safetensors"))
            return info_st(path);
        if (sola_has_ext(path, ".npy"))
            return info_npy(path);
        if (sola_has_ext(path, ".npz"))
            return info_npz(path);
        cli_errorf("%s: not a .npy, .npz, .safetensors or HDF5 file (its first bytes match "
                   "none of them)", path);
        return EXIT_RUNTIME;
    default:
        cli_errorf("%s: not a .npy, .npz, .safetensors or HDF5 file: this is %s", path,
                   sola_kind_name(k));
        return EXIT_RUNTIME;
    }
}
