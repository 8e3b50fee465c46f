/* cmd_refine.c -- `sola refine -m MODEL IN -o OUT`.
 *
 * IN may be one .npy ([T, C] or [B, T, C]), one .npz (every member refined, names
 * kept; with an .npy output only the sequence member "feats"/the single member), or
 * a dataset: a directory in any layout of core/data/layouts.h (NAME.npy/.npz, video_features
 * pairs, BMN CSV) or an HDF5 file. A dataset goes through refine_dataset.c: every video
 * gets a refined twin with the same name and T, float32, so downstream configs only
 * change their feature folder; streamed video by video; each output written
 * atomically; a bad video is reported with its name, skipped and listed in
 * missing_files.txt, and the exit code is 1 at the end unless --allow-missing. */
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
#include "refine_dataset.h"
#include "refine_meta.h"
#include "refine_shard.h"

static const char usage[] =
    "sola refine -m MODEL.safetensors IN(.npy|.npz|DIR|.h5) -o OUT(.npy|.npz|DIR|.h5) "
    "[--layout tc|ct] [--allow-missing] [--h5-out FILE.h5] [--missing-names as-is|strip-v] "
    "[--pair-order rgb,flow|flow,rgb] [--fps F] [--stride S] [--frames N] "
    "[--annotations JSON [--subset S]] [--shard I/N | --shards N] [--skip-existing] "
    "[--threads N]\n"
    "       sola refine --merge-meta OUTDIR [--shards N]\n"
    "       sola refine --stream -m MODEL.safetensors [--dim C] [-o OUT.npy] < IN";

static const char help[] =
    "Refines feature sequences with a SoLa model: refine(x) = x + tanh(alpha) h(x),\n"
    "float32 out, T and names unchanged, so a downstream config only changes its\n"
    "feature folder (ActionFormer feat_folder, OpenTAD data_path).\n"
    "\n"
    "  -m MODEL       a .safetensors model (sola init / sola train, or converted from\n"
    "                 the authors' PyTorch checkpoint); its C must match the features\n"
    "  IN -o OUT      one of:\n"
    "                   x.npy -o y.npy     [T, C] or a batch [B, T, C]\n"
    "                   x.npz -o y.npz     every [T, C] member refined, other members\n"
    "                                      (fps, labels) copied; names kept\n"
    "                   x.npz -o y.npy     the sequence member ('feats' or the only one)\n"
    "                   DIR -o OUTDIR      a dataset folder, video by video (streamed):\n"
    "                                      NAME.npy/.npz, video_features NAME_rgb.npy +\n"
    "                                      NAME_flow.npy pairs, BMN CSV; each output\n"
    "                                      keeps its input's name and format\n"
    "                   FILE.h5 -o OUTDIR  an HDF5 file of one dataset (or group) per\n"
    "                                      video, or a folder of HDF5 files (rgb/flow\n"
    "                                      file pairs, G-TAD style: written back as\n"
    "                                      the same files)\n"
    "                   DIR|FILE.h5 -o OUT.h5  one HDF5 file out instead of a folder\n"
    "  --layout tc|ct files are [T, C] (tc, the default) or channel-first [C, T] (ct,\n"
    "                 e.g. MS-TCN); ct outputs are written [C, T] again. Folders only\n"
    "  --h5-out F.h5  with a folder output, also write every video into this HDF5 file\n"
    "  --allow-missing  a video that cannot be read (or refined) is skipped and listed,\n"
    "                 and the run still exits 0 (without it: exit 1 at the end)\n"
    "  --missing-names as-is|strip-v  names of skipped videos in missing_files.txt as\n"
    "                 the files are named (as-is), or without a leading v_ (strip-v:\n"
    "                 OpenTAD's ActivityNet configs compare annotation keys)\n"
    "  --pair-order rgb,flow|flow,rgb  how rgb/flow pairs are joined on C (rgb,flow:\n"
    "                 video_features; G-TAD joins flow,rgb); the model must have been\n"
    "                 trained on the same order\n"
    "  --fps F --stride S --frames N  the grid a downstream config assumes (fps,\n"
    "                 frames between snippets, frames per snippet): recorded, and\n"
    "                 checked against video_features' _fps/_timestamps_ms files\n"
    "  --annotations J  the ActionFormer/OpenTAD JSON a downstream loader will use:\n"
    "                 each video's fps from it (fps, or frame/duration) when the\n"
    "                 features do not say, a warning when the features' fps or T\n"
    "                 disagree with it, and its videos without features named in\n"
    "                 missing_files.txt (--subset S: only that subset's videos)\n"
    "  --threads N    BLAS threads (default: all cores)\n"
    "\n"
    "Spread over processes or machines (a folder output; docs/deploy.md, Batch refine):\n"
    "  --shard I/N    refine shard I (0..N-1) of N: the videos whose name hashes to I\n"
    "                 (FNV-1a 64 of the name mod N; an HDF5 input by key), so a video\n"
    "                 keeps its shard when others are added. Without it, a Kubernetes\n"
    "                 Indexed Job's JOB_COMPLETION_INDEX is the index, and --shards N\n"
    "                 (or JOB_COMPLETIONS) the count. A shard writes its part of the\n"
    "                 two files below, OUTDIR/refine_meta.I-of-N.json and\n"
    "                 OUTDIR/missing_files.I-of-N.txt; the shard that finds every part\n"
    "                 there merges them into the files one process writes\n"
    "  --skip-existing  keep an output that is already complete (a .npy of the right\n"
    "                 dtype, shape and size; an .npz or .csv that reads back in that\n"
    "                 shape) instead of refining it again: a retried shard resumes. It\n"
    "                 does not check which model wrote it\n"
    "  --merge-meta OUTDIR  merge the shards' parts in OUTDIR into refine_meta.json and\n"
    "                 missing_files.txt (exit 1 naming the shards whose part is missing)\n"
    "\n"
    "Online (--stream): one sequence on standard input, read as it is written (a pipe\n"
    "from a feature extractor); each refined snippet is written as soon as it is final,\n"
    "R = (k1/2)*d1 + (k2/2)*d2 snippets after it arrived (the rest when input ends),\n"
    "bit for bit what the offline refine of the whole sequence gives:\n"
    "  stdin          .npy arrays back to back, each [n, C] or [C] (np.save once per\n"
    "                 chunk; a whole .npy file is one chunk); end of input ends the\n"
    "                 sequence. With --dim C: raw little-endian float32 rows of C\n"
    "  stdout         raw little-endian float32 rows of C, flushed as they are final\n"
    "                 (row t at byte 4*C*t); or -o OUT.npy for an .npy file\n"
    "  (docs/streaming.md: the framing and why, examples)\n"
    "\n"
    "Refining never writes over its input (the same folder or file, also through a\n"
    "symlink or '..', is refused). A dataset refine also writes\n"
    "OUTDIR/refine_meta.json (the model, the input and its layout, each video's T,\n"
    "fps, stride and snippet length, what was skipped) and OUTDIR/missing_files.txt,\n"
    "always (empty when nothing is missing), carrying over the input's own list (for\n"
    "an .h5 output: OUT.refine_meta.json and OUT.missing_files.txt beside it).\n"
    "video_features' NAME_fps.npy / NAME_timestamps_ms.npy are copied beside NAME.npy.\n"
    "Progress goes to stderr: a bar on a terminal, log lines otherwise. Each peer's\n"
    "layout and loader: docs/interop.md.\n"
    "\n"
    "Example: sola refine -m model.safetensors i3d_features/ -o i3d_sola/\n";

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int same_inode(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* 1 if writing `out` would replace `in` or a file of it: the same file or folder
 * (through symlinks, "..", "./"), or an existing file inside the input folder. */
static int overwrites_input(const char *in, const char *out)
{
    struct stat si, so, sp;
    if (!out || stat(in, &si) != 0 || stat(out, &so) != 0)
        return 0;
    if (same_inode(&si, &so))
        return 1;
    if (!S_ISDIR(si.st_mode) || S_ISDIR(so.st_mode))
        return 0;
    char parent[4096];
    const char *sl = strrchr(out, '/');
    snprintf(parent, sizeof parent, "%.*s", sl ? (int)(sl - out) : 1, sl ? out : ".");
    return stat(parent[0] ? parent : "/", &sp) == 0 && same_inode(&si, &sp);
}

/* Refines every member of an .npz into an .npz of the same member names. */
/* 1 if the .npy image holds features for a model of C channels: floats [T, C] or
 * [B, T, C]. Other members (an fps scalar, integer labels) are copied as they are. */
static int is_features(const void *img, size_t len, int C)
{
    sola_npy_info in;
    if (sola_npy_inspect(img, len, "member", SOLA_NPY_LABELS | SOLA_NPY_SCALAR, &in, NULL))
        return 0;
    return strchr(in.descr, 'f') && (in.ndim == 2 || in.ndim == 3) &&
           in.shape[in.ndim - 1] == C;
}

/* Refines every [T, C] member of an .npz into an .npz of the same member names; other
 * members are copied byte for byte. */
static int refine_npz_all(const sola_model *m, const char *in, const char *out, sola_ws *ws,
                          long *frames, sola_err *e)
{
    sola_npz z;
    int rc = sola_npz_open(in, &z, e);
    if (rc)
        return rc;
    sola_array *ys = calloc((size_t)z.n + 1, sizeof *ys);
    const char **names = calloc((size_t)z.n + 1, sizeof *names);
    void **raw = calloc((size_t)z.n + 1, sizeof *raw);
    size_t *rawlen = calloc((size_t)z.n + 1, sizeof *rawlen);
    int refined = 0;
    if (!ys || !names || !raw || !rawlen) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", in);
        goto done;
    }
    for (int i = 0; i < z.n && !rc; i++) {
        sola_array x;
        char label[1024];
        snprintf(label, sizeof label, "%s[%s]", in, z.entries[i].name);
        names[i] = z.entries[i].name;
        if ((rc = sola_npz_member_image(&z, i, &raw[i], &rawlen[i], e)))
            break;
        if (!is_features(raw[i], rawlen[i], m->C)) {
            fprintf(stderr, "%s: not [T, %d] features, copied as it is\n", label, m->C);
            continue;
        }
        free(raw[i]);
        raw[i] = NULL;
        rc = sola_npz_read(&z, i, 0, &x, e);
        if (!rc)
            rc = cli_refine_array(m, &x, label, &ys[i], ws, e);
        if (!rc)
            *frames += (long)(sola_array_numel(&x) / (size_t)m->C);
        refined += !rc;
        sola_array_free(&x);
    }
    if (!rc && !refined)
        rc = sola_errf(e, SOLA_ESHAPE, "%s: no member holds [T, %d] (or [B, T, %d]) float "
                       "features", in, m->C, m->C);
    if (!rc)
        rc = sola_npz_save_mixed(out, names, ys, (const void *const *)raw, rawlen, z.n, 0, e);
done:
    if (ys)
        for (int i = 0; i < z.n; i++)
            sola_array_free(&ys[i]);
    if (raw)
        for (int i = 0; i < z.n; i++)
            free(raw[i]);
    free(ys);
    free(names);
    free(raw);
    free(rawlen);
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

/* --stream: standard input to standard output (refine_stream.c). */
static int refine_stream(const char *mpath, const char *out, int dim, int threads,
                         const cli_refine_opts *ro, int nargs, char **args)
{
    if (nargs)
        return cli_usage(usage, "--stream reads standard input: no input file (use < %s)",
                         args[0]);
    if (ro->ct || ro->h5_out || ro->allow_missing || ro->annotations || ro->fps > 0 ||
        ro->stride > 0 || ro->frames > 0 || ro->flow_first)
        return cli_usage(usage, "--layout, --h5-out, --allow-missing and the dataset options "
                                "are for folders, not --stream");
    if (out && !sola_has_ext(out, ".npy"))
        return cli_usage(usage, "%s: with --stream, -o writes an .npy file", out);
    cli_set_threads(threads);
    sola_model *m = cli_load_model(mpath);
    if (!m)
        return EXIT_RUNTIME;
    sola_ws *ws = sola_ws_new();
    int rc = ws ? cli_refine_stream(m, out, dim, ws) : EXIT_RUNTIME;
    if (!ws)
        cli_errorf("out of memory");
    sola_ws_free(ws);
    sola_model_free(m);
    return rc;
}

/* --merge-meta OUTDIR: the shards' parts into the files one process writes. */
static int merge_meta(const char *dir, long shards, int other_args)
{
    if (other_args)
        return cli_usage(usage, "--merge-meta OUTDIR takes no model, input or other output "
                         "(only --shards N)");
    if (!is_dir(dir))
        return cli_usage(usage, "--merge-meta: %s is not a folder (the -o of the shards)", dir);
    sola_err e = {0};
    int rc = cli_shard_merge(dir, (int)shards, &e);
    if (rc) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    fprintf(stderr, "merged into %s/refine_meta.json and %s/missing_files.txt\n", dir, dir);
    return EXIT_OK;
}

int cmd_refine(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"output", required_argument, 0, 'o'},
        {"threads", required_argument, 0, 't'},
        {"layout", required_argument, 0, 'L'},
        {"allow-missing", no_argument, 0, 'A'},
        {"h5-out", required_argument, 0, 'H'},
        {"missing-names", required_argument, 0, 'N'},
        {"pair-order", required_argument, 0, 'P'},
        {"fps", required_argument, 0, 'F'},
        {"stride", required_argument, 0, 'S'},
        {"frames", required_argument, 0, 'R'},
        {"annotations", required_argument, 0, 'J'},
        {"subset", required_argument, 0, 'U'},
        {"stream", no_argument, 0, 1001},
        {"dim", required_argument, 0, 1002},
        {"shard", required_argument, 0, 1003},
        {"shards", required_argument, 0, 1004},
        {"skip-existing", no_argument, 0, 1005},
        {"merge-meta", required_argument, 0, 1006},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *mpath = NULL, *out = NULL, *shard = NULL, *merge = NULL;
    long threads = 0, dim = 0, shards = 0;
    int stream = 0;
    cli_refine_opts ro = {0};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': mpath = optarg; break;
        case 'o': out = optarg; break;
        case 't':
            if (sola_parse_long(optarg, 1, 1024, &threads))
                return cli_usage(usage, "--threads wants a positive integer, got '%s'", optarg);
            break;
        case 'L':
            if (strcmp(optarg, "tc") && strcmp(optarg, "ct"))
                return cli_usage(usage, "--layout wants tc (time-major) or ct, got '%s'", optarg);
            ro.ct = !strcmp(optarg, "ct");
            break;
        case 'A': ro.allow_missing = 1; break;
        case 'H': ro.h5_out = optarg; break;
        case 'J': ro.annotations = optarg; break;
        case 'U': ro.subset = optarg; break;
        case 'N':
            if (strcmp(optarg, "as-is") && strcmp(optarg, "strip-v"))
                return cli_usage(usage, "--missing-names wants as-is or strip-v, got '%s'",
                                 optarg);
            ro.names = strcmp(optarg, "as-is") ? CLI_NAMES_STRIP_V : CLI_NAMES_ASIS;
            break;
        case 'P':
            if (strcmp(optarg, "rgb,flow") && strcmp(optarg, "flow,rgb"))
                return cli_usage(usage, "--pair-order wants rgb,flow or flow,rgb, got '%s'",
                                 optarg);
            ro.flow_first = !strcmp(optarg, "flow,rgb");
            break;
        case 'F':
        case 'S':
        case 'R': {
            double v;
            if (cli_parse_double(optarg, &v) || !(v > 0) || v > 1e6)
                return cli_usage(usage, "--%s wants a positive number, got '%s'",
                                 c == 'F' ? "fps" : c == 'S' ? "stride" : "frames", optarg);
            *(c == 'F' ? &ro.fps : c == 'S' ? &ro.stride : &ro.frames) = v;
            break;
        }
        case 1001: stream = 1; break;
        case 1002:
            if (sola_parse_long(optarg, 1, 1 << 20, &dim))
                return cli_usage(usage, "--dim wants a positive integer, got '%s'", optarg);
            break;
        case 1003: shard = optarg; break;
        case 1004:
            if (sola_parse_long(optarg, 1, CLI_SHARD_MAX, &shards))
                return cli_usage(usage, "--shards wants a count from 1 to %d, got '%s'",
                                 CLI_SHARD_MAX, optarg);
            break;
        case 1005: ro.skip_existing = 1; break;
        case 1006: merge = optarg; break;
        case 'h': printf("usage: %s\n\n%s", usage, help); return EXIT_OK;
        default: return cli_usage(usage, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (merge)
        return merge_meta(merge, shards, mpath || out || stream || shard || optind < argc);
    if (!mpath)
        return cli_usage(usage, "-m MODEL.safetensors is required");
    if (dim && !stream)
        return cli_usage(usage, "--dim goes with --stream (raw float32 rows on stdin)");
    if (stream && (shard || shards || ro.skip_existing))
        return cli_usage(usage, "--shard, --shards and --skip-existing are for a folder or "
                         "HDF5 input, not --stream");
    if (stream)
        return refine_stream(mpath, out, (int)dim, (int)threads, &ro, argc - optind,
                             argv + optind);
    if (!out)
        return cli_usage(usage, "-o OUT is required");
    if (optind + 1 != argc)
        return cli_usage(usage, "exactly one input (.npy, .npz or directory) is required");
    const char *in = argv[optind];
    int in_dir = is_dir(in) || cli_is_h5_name(in);
    if (overwrites_input(in, out) || overwrites_input(in, ro.h5_out))
        return cli_usage(usage, "refusing to write over the input: %s is %s or inside it (the "
                         "same file or folder, through a symlink or '..'); refined features "
                         "go to a new place", overwrites_input(in, out) ? out : ro.h5_out, in);
    if (sola_has_ext(in, ".pkl"))
        return cli_usage(usage, "%s: pickled features are not read (loading a pickle can run "
                         "code). Convert it once with numpy: /usr/bin/python3 -c \"import "
                         "pickle,numpy as n;n.save('%.*s.npy',n.asarray(pickle.load(open('%s',"
                         "'rb'))))\" and refine the .npy", in, (int)strlen(in) - 4, in, in);
    if (!in_dir && (ro.ct || ro.h5_out || ro.flow_first || ro.fps > 0 || ro.stride > 0 ||
                    ro.frames > 0 || ro.annotations))
        return cli_usage(usage, "--layout, --h5-out, --pair-order, --fps, --stride, --frames "
                         "and --annotations apply to a folder or HDF5 input");
    if (!in_dir && (shard || shards || ro.skip_existing))
        return cli_usage(usage, "--shard, --shards and --skip-existing split and resume a "
                         "folder or HDF5 input, not one file");
    if (in_dir) {
        cli_shard sh;
        char msg[512];
        if (cli_shard_resolve(shard, shards, &sh, msg, sizeof msg))
            return cli_usage(usage, "%s", msg);
        ro.shard = sh.index;
        ro.shards = sh.count;
    }
    if ((ro.shards || ro.skip_existing) && (cli_is_h5_name(out) || ro.h5_out))
        return cli_usage(usage, "%s writes one HDF5 file, which shards cannot share and "
                         "--skip-existing cannot resume: shard into a folder (-o DIR)",
                         ro.h5_out ? "--h5-out" : "-o FILE.h5");
    if (ro.subset && !ro.annotations)
        return cli_usage(usage, "--subset selects videos of --annotations JSON");
    if (ro.h5_out && !cli_is_h5_name(ro.h5_out))
        return cli_usage(usage, "--h5-out wants a .h5 or .hdf5 file name, got '%s'", ro.h5_out);
    if (!in_dir && !sola_has_ext(in, ".npy") && !sola_has_ext(in, ".npz"))
        return cli_usage(usage, "%s: input must be a .npy or .npz file or a directory", in);
    if (!in_dir && !sola_has_ext(out, ".npy") && !sola_has_ext(out, ".npz"))
        return cli_usage(usage, "%s: output of a file must be a .npy (or .npz for an .npz input)",
                         out);
    if (!in_dir && sola_has_ext(out, ".npz") && !sola_has_ext(in, ".npz"))
        return cli_usage(usage, "%s: an .npz output needs an .npz input", out);
    cli_set_threads((int)threads);

    sola_err e = {0};
    /* a folder: its scan and first read run while the model loads */
    struct cli_prefetch *pf = in_dir ? cli_refine_prefetch(in, out, &ro) : NULL;
    /* packed for the shortest video planned (no layouts only shorter passes would use) */
    sola_model *m = cli_load_model_ex(mpath, (size_t)cli_prefetch_min_T(pf));
    if (!m) {
        cli_prefetch_free(pf);
        return EXIT_RUNTIME;
    }
    sola_ws *ws = sola_ws_new();
    int rc = EXIT_OK;
    if (!ws) {
        cli_errorf("out of memory");
        rc = EXIT_RUNTIME;
    } else if (in_dir) {
        rc = cli_refine_dataset(m, mpath, in, out, &ro, ws, pf);
    } else {
        long frames = 0;
        if (refine_file(m, in, out, ws, &frames, &e)) {
            cli_errorf("%s", e.msg);
            rc = EXIT_RUNTIME;
        }
    }
    cli_prefetch_free(pf);
    sola_ws_free(ws);
    sola_model_free(m);
    return rc;
}
