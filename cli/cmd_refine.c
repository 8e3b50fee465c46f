/* cmd_refine.c -- `sola refine -m MODEL IN -o OUT`.
 *
 * IN may be one .npy ([T, C] or [B, T, C]), one .npz (every member refined, names
 * kept; with an .npy output only the sequence member "feats"/the single member), or
 * a directory: then OUT is a directory and every NAME.npy / NAME.npz inside IN gets a
 * refined twin with the same name, shape and dtype float32, so downstream configs
 * only change their feature folder. A directory is streamed file by file (memory
 * does not grow with the number of files); each output is written atomically; a bad
 * file is reported with its name and skipped, and the exit code is 1 at the end. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "cli_io.h"
#include "fsutil.h"
#include "npy.h"
#include "npz.h"

static const char usage[] =
    "sola refine -m MODEL.safetensors IN(.npy|.npz|DIR) -o OUT(.npy|.npz|DIR) [--threads N]";

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Refines every member of an .npz into an .npz of the same member names. */
static int refine_npz_all(const sola_model *m, const char *in, const char *out, sola_ws *ws,
                          long *frames, sola_err *e)
{
    sola_npz z;
    int rc = sola_npz_open(in, &z, e);
    if (rc)
        return rc;
    sola_array *ys = calloc((size_t)z.n + 1, sizeof *ys);
    const char **names = calloc((size_t)z.n + 1, sizeof *names);
    if (!ys || !names) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", in);
        goto done;
    }
    for (int i = 0; i < z.n && !rc; i++) {
        sola_array x;
        char label[1024];
        snprintf(label, sizeof label, "%s[%s]", in, z.entries[i].name);
        names[i] = z.entries[i].name;
        rc = sola_npz_read(&z, i, 0, &x, e);
        if (!rc && x.ndim != 2 && x.ndim != 3)
            rc = sola_errf(e, SOLA_ESHAPE, "%s: expected [T, C] or [B, T, C], got %d dims",
                           label, x.ndim);
        if (!rc)
            rc = cli_refine_array(m, &x, label, &ys[i], ws, e);
        if (!rc)
            *frames += (long)(sola_array_numel(&x) / (size_t)m->C);
        sola_array_free(&x);
    }
    if (!rc)
        rc = sola_npz_save(out, names, ys, z.n, 0, e);
done:
    if (ys)
        for (int i = 0; i < z.n; i++)
            sola_array_free(&ys[i]);
    free(ys);
    free(names);
    sola_npz_close(&z);
    return rc;
}

/* One input file to one output file. */
static int refine_file(const sola_model *m, const char *in, const char *out, sola_ws *ws,
                       long *frames, sola_err *e)
{
    if (sola_has_ext(in, ".npz") && sola_has_ext(out, ".npz"))
        return refine_npz_all(m, in, out, ws, frames, e);
    sola_array x, y;
    int rc = cli_load_seq(in, &x, e);
    if (rc)
        return rc;
    rc = cli_refine_array(m, &x, in, &y, ws, e);
    if (!rc) {
        *frames += (long)(sola_array_numel(&x) / (size_t)m->C);
        rc = sola_npy_save(out, y.data, y.ndim, y.shape, e);
        sola_array_free(&y);
    }
    sola_array_free(&x);
    return rc;
}

static int wanted(const char *name)
{
    return name[0] != '.' && (sola_has_ext(name, ".npy") || sola_has_ext(name, ".npz"));
}

static int refine_dir(const sola_model *m, const char *in, const char *out, sola_ws *ws)
{
    sola_err e = {0};
    if (sola_mkdirs(out, 0755, &e)) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    /* Two passes over the directory: one to count (for progress), one to work, so
     * that nothing is held per file. */
    DIR *d = opendir(in);
    if (!d) {
        cli_errorf("%s: cannot open directory: %s", in, strerror(errno));
        return EXIT_RUNTIME;
    }
    long total = 0, done = 0, failed = 0, frames = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        total += wanted(de->d_name);
    if (total == 0) {
        closedir(d);
        cli_errorf("%s: no .npy or .npz files to refine", in);
        return EXIT_RUNTIME;
    }
    rewinddir(d);
    cli_progress p;
    cli_progress_init(&p);
    char ip[4096], op[4096];
    while ((de = readdir(d))) {
        if (!wanted(de->d_name))
            continue;
        snprintf(ip, sizeof ip, "%s/%s", in, de->d_name);
        snprintf(op, sizeof op, "%s/%s", out, de->d_name);
        if (refine_file(m, ip, op, ws, &frames, &e)) {
            if (p.tty)
                fputc('\n', stderr);
            cli_errorf("skipped %s", e.msg);
            failed++;
        }
        done++;
        char extra[64];
        snprintf(extra, sizeof extra, "%ld frames", frames);
        cli_progress_update(&p, "refine", done, total, "files", extra);
    }
    cli_progress_end(&p);
    closedir(d);
    fprintf(stderr, "refined %ld of %ld files into %s (%ld frames)\n", done - failed, total,
            out, frames);
    if (failed) {
        cli_errorf("%ld file%s could not be refined (listed above)", failed,
                   failed == 1 ? "" : "s");
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

int cmd_refine(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"output", required_argument, 0, 'o'},
        {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *mpath = NULL, *out = NULL;
    long threads = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': mpath = optarg; break;
        case 'o': out = optarg; break;
        case 't':
            if (cli_parse_int(optarg, 1, 1024, &threads))
                return cli_usage(usage, "--threads wants a positive integer, got '%s'", optarg);
            break;
        case 'h': printf("usage: %s\n", usage); return EXIT_OK;
        default: return cli_usage(usage, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (!mpath)
        return cli_usage(usage, "-m MODEL.safetensors is required");
    if (!out)
        return cli_usage(usage, "-o OUT is required");
    if (optind + 1 != argc)
        return cli_usage(usage, "exactly one input (.npy, .npz or directory) is required");
    const char *in = argv[optind];
    int in_dir = is_dir(in);
    if (!in_dir && !sola_has_ext(in, ".npy") && !sola_has_ext(in, ".npz"))
        return cli_usage(usage, "%s: input must be a .npy or .npz file or a directory", in);
    if (!in_dir && !sola_has_ext(out, ".npy") && !sola_has_ext(out, ".npz"))
        return cli_usage(usage, "%s: output of a file must be a .npy (or .npz for an .npz input)",
                         out);
    if (!in_dir && sola_has_ext(out, ".npz") && !sola_has_ext(in, ".npz"))
        return cli_usage(usage, "%s: an .npz output needs an .npz input", out);
    cli_set_threads((int)threads);

    sola_err e = {0};
    sola_model *m = sola_model_load(mpath, &e);
    if (!m) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    sola_ws *ws = sola_ws_new();
    int rc = EXIT_OK;
    if (!ws) {
        cli_errorf("out of memory");
        rc = EXIT_RUNTIME;
    } else if (in_dir) {
        rc = refine_dir(m, in, out, ws);
    } else {
        long frames = 0;
        if (refine_file(m, in, out, ws, &frames, &e)) {
            cli_errorf("%s", e.msg);
            rc = EXIT_RUNTIME;
        }
    }
    sola_ws_free(ws);
    sola_model_free(m);
    return rc;
}
