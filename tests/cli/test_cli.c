/* test_cli.c -- the `sola` command as a user runs it: exit codes, messages, and
 * outputs read back with the core readers. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gemm.h"
#include "model.h"
#include "npy.h"
#include "npz.h"
#include "refine.h"
#include "testutil.h"

static char *dir;
static char sola[4096];

static void setup(void)
{
    dir = tu_tmpdir();
    snprintf(sola, sizeof sola, "%s/sola", tu_bin());
}

static void teardown(void)
{
    tu_rmtree(dir);
    free(dir);
}

/* Runs sola with stderr captured into DIR/err.txt; returns the exit code. */
#define RUN(...) tu_system("cd %s && %s " __VA_ARGS__ " 2>err.txt >out.txt", dir, sola)

static char *slurp(const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *s = tu_read(p, NULL);
    return s ? s : strdup("");
}

static void assert_stderr_has(const char *needle)
{
    char *s = slurp("err.txt");
    if (!strstr(s, needle))
        ck_abort_msg("stderr lacks '%s'; it was: %s", needle, s);
    free(s);
}

static void write_seq(const char *name, int T, int C, float scale)
{
    float *x = malloc(sizeof(float) * (size_t)T * C);
    for (int i = 0; i < T * C; i++)
        x[i] = scale * (float)((i * 7919) % 101 - 50) / 50.0f;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int64_t shape[2] = {T, C};
    sola_err e = {0};
    ck_assert_int_eq(sola_npy_save(p, x, 2, shape, &e), 0);
    free(x);
}

static sola_array load(const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    sola_array a = {0};
    sola_err e = {0};
    if (sola_npy_load(p, 0, &a, &e))
        ck_abort_msg("%s", e.msg);
    return a;
}

START_TEST(init_then_refine_matches_library)
{
    ck_assert_int_eq(RUN("init --dim 24 --hidden 12 --kernel 3 --seed 5 -o m.safetensors"), 0);
    /* give it a non-zero alpha so that refine is not the identity */
    char p[4096];
    snprintf(p, sizeof p, "%s/m.safetensors", dir);
    sola_err e = {0};
    sola_model *m = sola_model_load(p, &e);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->k1, 3);
    m->alpha[0] = 0.7f;
    ck_assert_int_eq(sola_model_save(m, p, 0, &e), 0);
    write_seq("x.npy", 33, 24, 1.0f);
    ck_assert_int_eq(RUN("refine -m m.safetensors x.npy -o y.npy"), 0);
    sola_array x = load("x.npy"), y = load("y.npy");
    ck_assert_int_eq(y.ndim, 2);
    ck_assert_int_eq(y.shape[0], 33);
    float *want = malloc(sizeof(float) * 33 * 24);
    sola_ws *ws = sola_ws_new();
    ck_assert_int_eq(sola_refine(m, x.data, 33, want, ws, &e), 0);
    ck_assert_mem_eq(want, y.data, sizeof(float) * 33 * 24);
    ck_assert(memcmp(x.data, y.data, sizeof(float) * 33 * 24) != 0);
    free(want);
    sola_ws_free(ws);
    sola_array_free(&x);
    sola_array_free(&y);
    sola_model_free(m);
}
END_TEST

START_TEST(refine_folder_keeps_names_and_reports_bad_files)
{
    ck_assert_int_eq(RUN("init --dim 8 --hidden 4 -o m.safetensors"), 0);
    ck_assert_int_eq(tu_system("mkdir -p %s/in", dir), 0);
    write_seq("in/v_a.npy", 5, 8, 1.0f);
    write_seq("in/v_b.npy", 40, 8, 2.0f);
    ck_assert_int_eq(tu_system("echo garbage > %s/in/v_bad.npy", dir), 0);
    ck_assert_int_eq(RUN("refine -m m.safetensors in -o out"), 1);
    assert_stderr_has("v_bad.npy");
    sola_array a = load("out/v_a.npy"), b = load("out/v_b.npy");
    ck_assert_int_eq(a.shape[0], 5);
    ck_assert_int_eq(b.shape[0], 40);
    char p[4096];
    snprintf(p, sizeof p, "%s/out/v_bad.npy", dir);
    ck_assert_ptr_null(tu_read(p, NULL));
    sola_array_free(&a);
    sola_array_free(&b);
}
END_TEST

START_TEST(npz_in_npz_out_keeps_members)
{
    ck_assert_int_eq(RUN("init --dim 8 --hidden 4 -o m.safetensors"), 0);
    float x1[3 * 8], x2[6 * 8];
    for (int i = 0; i < 24; i++)
        x1[i] = (float)i;
    for (int i = 0; i < 48; i++)
        x2[i] = (float)-i;
    sola_array arr[2] = {{x1, 2, {3, 8}}, {x2, 2, {6, 8}}};
    const char *names[2] = {"feats", "extra"};
    char p[4096];
    snprintf(p, sizeof p, "%s/in.npz", dir);
    sola_err e = {0};
    ck_assert_int_eq(sola_npz_save(p, names, arr, 2, 1, &e), 0);
    ck_assert_int_eq(RUN("refine -m m.safetensors in.npz -o out.npz"), 0);
    ck_assert_int_eq(RUN("refine -m m.safetensors in.npz -o out.npy"), 0);
    sola_array y = load("out.npy");
    ck_assert_int_eq(y.shape[0], 3); /* the "feats" member */
    sola_array_free(&y);
    sola_npz z;
    snprintf(p, sizeof p, "%s/out.npz", dir);
    ck_assert_int_eq(sola_npz_open(p, &z, &e), 0);
    ck_assert_int_eq(z.n, 2);
    ck_assert_int_ge(sola_npz_find(&z, "extra"), 0);
    sola_npz_close(&z);
}
END_TEST

START_TEST(wrong_dimension_names_file_and_both_dims)
{
    ck_assert_int_eq(RUN("init --dim 8 --hidden 4 -o m.safetensors"), 0);
    write_seq("x.npy", 5, 9, 1.0f);
    ck_assert_int_eq(RUN("refine -m m.safetensors x.npy -o y.npy"), 1);
    assert_stderr_has("x.npy");
    assert_stderr_has("C = 9");
    assert_stderr_has("C = 8");
}
END_TEST

/* The last line of stderr: where a terminal leaves the eye, so the error goes there. */
static void assert_last_err_line_has(const char *needle)
{
    char *s = slurp("err.txt");
    size_t n = strlen(s);
    while (n && s[n - 1] == '\n')
        s[--n] = '\0';
    char *l = strrchr(s, '\n');
    l = l ? l + 1 : s;
    ck_assert_msg(!strncmp(l, "sola: ", 6) && strstr(l, needle),
                  "the last line of stderr should be the error naming '%s'; it is: %s", needle, l);
    free(s);
}

START_TEST(usage_errors_exit_2)
{
    ck_assert_int_eq(RUN("init -o m.safetensors"), 2);
    assert_stderr_has("--dim");
    ck_assert_int_eq(RUN("init --dim 8 --kernel 4 -o m.safetensors"), 2);
    assert_stderr_has("odd");
    ck_assert_int_eq(RUN("refine x.npy -o y.npy"), 2);
    ck_assert_int_eq(RUN("frobnicate"), 2);
    ck_assert_int_eq(RUN("tsm x.npy -o y.txt"), 2);
    ck_assert_int_eq(RUN("init --dim 8 --seed -3 -o m.safetensors"), 2);
    assert_last_err_line_has("--seed");
    ck_assert_int_eq(RUN("refine --bogus"), 2);
    assert_last_err_line_has("--bogus");
    assert_last_err_line_has("sola refine --help");
    ck_assert_int_eq(RUN("frobnicate"), 2);
    assert_last_err_line_has("frobnicate");
    ck_assert_int_eq(RUN(""), 2);
    assert_last_err_line_has("no command");
    ck_assert_int_eq(RUN("synth --videos x -o d"), 2);
    assert_last_err_line_has("--videos");
}
END_TEST

/* Every subcommand's --help exits 0 on stdout and explains its options, not only a
 * usage line. */
START_TEST(every_subcommand_has_full_help)
{
    static const struct {
        const char *cmd;
        const char *needles[5];
    } c[] = {
        {"info", {"HDF5", "first bytes", NULL}},
        {"init", {"--kernel2", "--head", "identity", "alpha = 0", NULL}},
        {"refine", {"--layout", "--allow-missing", "--h5-out", "refine_meta.json",
                    "missing_files.txt"}},
        {"tsm", {"--both", "--raw", "[-1, 1]", NULL}},
        {"grad", {"--init-head", "--full", "--K", NULL}},
        {"train", {"--layout", "--allow-missing", "--resume", "--objective", NULL}},
        {"probe", {"--labels", "--annotations", "--val-frac", NULL}},
        {"synth", {"--length", "--noise", NULL}},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "cd %s && %s %s --help >out.txt 2>err.txt", dir, sola,
                 c[i].cmd);
        ck_assert_msg(tu_system("%s", cmd) == 0, "sola %s --help did not exit 0", c[i].cmd);
        char *out = slurp("out.txt");
        ck_assert_msg(strstr(out, "usage: sola"), "sola %s --help: no usage line", c[i].cmd);
        for (int k = 0; k < 5 && c[i].needles[k]; k++)
            ck_assert_msg(strstr(out, c[i].needles[k]), "sola %s --help does not explain %s",
                          c[i].cmd, c[i].needles[k]);
        free(out);
    }
}
END_TEST

START_TEST(missing_and_corrupt_files_exit_1_with_name)
{
    ck_assert_int_eq(RUN("refine -m nope.safetensors x.npy -o y.npy"), 1);
    assert_stderr_has("nope.safetensors");
    ck_assert_int_eq(tu_system("printf 'PK\\003\\004junk' > %s/bad.npz", dir), 0);
    ck_assert_int_eq(RUN("info bad.npz"), 1);
    assert_stderr_has("bad.npz");
}
END_TEST

START_TEST(tsm_npy_and_png)
{
    write_seq("x.npy", 12, 8, 1.0f);
    ck_assert_int_eq(RUN("init --dim 8 --hidden 4 -o m.safetensors"), 0);
    ck_assert_int_eq(RUN("tsm x.npy -o t.npy"), 0);
    sola_array t = load("t.npy");
    ck_assert_int_eq(t.ndim, 2);
    ck_assert_int_eq(t.shape[0], 12);
    for (int i = 0; i < 12; i++) /* self-similarity on the diagonal */
        ck_assert_float_eq_tol(t.data[i * 12 + i], 1.0f, 1e-5f);
    sola_array_free(&t);
    ck_assert_int_eq(RUN("tsm -m m.safetensors --both x.npy -o t2.npy"), 0);
    t = load("t2.npy");
    ck_assert_int_eq(t.ndim, 3);
    ck_assert_int_eq(t.shape[0], 2);
    /* identity model: refined TSM equals raw TSM */
    ck_assert_mem_eq(t.data, t.data + 144, 144 * sizeof(float));
    sola_array_free(&t);
    ck_assert_int_eq(RUN("tsm -m m.safetensors --both x.npy -o t.png"), 0);
    char *png = slurp("t.png");
    ck_assert_mem_eq(png, "\x89PNG", 4);
    free(png);
}
END_TEST

START_TEST(info_prints_shapes_and_metadata)
{
    ck_assert_int_eq(RUN("init --dim 8 --hidden 4 --head 6 -o m.safetensors"), 0);
    ck_assert_int_eq(RUN("info m.safetensors"), 0);
    char *out = slurp("out.txt");
    ck_assert_ptr_nonnull(strstr(out, "conv_network.0.weight"));
    ck_assert_ptr_nonnull(strstr(out, "[4, 8, 5]"));
    ck_assert_ptr_nonnull(strstr(out, "dissim_head.network.0.weight"));
    ck_assert_ptr_nonnull(strstr(out, "format: sola"));
    free(out);
    /* label files (bool/int) are described too, with their dtype as written */
    static const unsigned char lab[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }";
    char p[4096];
    snprintf(p, sizeof p, "%s/lab.npy", dir);
    unsigned char buf[256];
    size_t hl = sizeof lab - 1;
    memcpy(buf, lab, hl);
    memset(buf + hl, ' ', 128 - 1 - hl);
    buf[127] = '\n';
    buf[128] = 1;
    buf[129] = 0;
    buf[130] = 1;
    ck_assert_int_eq(tu_write(p, buf, 131), 0);
    ck_assert_int_eq(RUN("info lab.npy"), 0);
    out = slurp("out.txt");
    ck_assert_ptr_nonnull(strstr(out, "|b1"));
    ck_assert_ptr_nonnull(strstr(out, "[3]"));
    free(out);
}
END_TEST


/* m.safetensors in the test folder: `sola init --dim 24 --hidden 16 --kernel 5` with
 * `seed`, saved again with alpha set to `alpha` (refine is then not the identity);
 * returns the model as saved. */
static sola_model *init_model_alpha(int seed, float alpha)
{
    ck_assert_int_eq(tu_system("cd %s && %s init --dim 24 --hidden 16 --kernel 5 --seed %d -o "
                               "m.safetensors 2>err.txt >out.txt", dir, sola, seed), 0);
    char p[4096];
    snprintf(p, sizeof p, "%s/m.safetensors", dir);
    sola_err e = {0};
    sola_model *m = sola_model_load(p, &e);
    ck_assert_ptr_nonnull(m);
    m->alpha[0] = alpha;
    ck_assert_int_eq(sola_model_save(m, p, 0, &e), 0);
    return m;
}

/* The .npy `out` (test-folder relative) holds sola_refine's output for the [T, 24]
 * `in`, bit for bit (at the GEMM threads set now); `what` goes into the message. */
static void assert_refined_as_library(const sola_model *m, sola_ws *ws, const char *in,
                                      const char *out, int T, const char *what)
{
    sola_err e = {0};
    sola_array x = load(in), y = load(out);
    size_t n = (size_t)T * 24;
    float *want = malloc(sizeof(float) * n);
    ck_assert_ptr_nonnull(want);
    ck_assert_int_eq(sola_refine(m, x.data, T, want, ws, &e), 0);
    ck_assert_int_eq(y.shape[0], T);
    ck_assert_msg(!memcmp(want, y.data, n * sizeof(float)), "%s (T=%d, %s) differs from "
                  "sola_refine", out, T, what);
    free(want);
    sola_array_free(&x);
    sola_array_free(&y);
}

/* in/v0.npy, in/v1.npy, ... in the test folder: video v a [Ts[v], 24] sequence of
 * write_seq's with scale base + step * v. */
static void write_videos(const int *Ts, int n, float base, float step)
{
    ck_assert_int_eq(tu_system("mkdir -p %s/in", dir), 0);
    for (int v = 0; v < n; v++) {
        char name[64];
        snprintf(name, sizeof name, "in/v%d.npy", v);
        write_seq(name, Ts[v], 24, base + step * (float)v);
    }
}

/* `sola refine DIR` runs a pipeline (cli/refine_pipe.c: reads ahead, writes behind,
 * reuses its buffers as lengths go up and down, a bad file in the middle): every
 * output is the library's sola_refine of that file bit for bit, channel-first too,
 * with 1 and 2 threads, and nothing but the outputs and the run's sidecars is left. */
START_TEST(refine_folder_pipeline_is_bitwise_the_library)
{
    sola_model *m = init_model_alpha(9, 0.6f);
    char p[4096];
    sola_err e = {0};
    ck_assert_int_eq(tu_system("mkdir -p %s/in %s/inct", dir, dir), 0);
    static const int Ts[] = {1, 300, 7, 64, 2, 301, 18, 95};
    enum { NV = sizeof Ts / sizeof Ts[0] };
    for (int v = 0; v < NV; v++) {
        char name[64];
        snprintf(name, sizeof name, "in/v%d.npy", v);
        write_seq(name, Ts[v], 24, 0.5f + 0.25f * (float)v);
        /* the same data channel-first for --layout ct */
        sola_array x = load(name);
        float *t = malloc(sizeof(float) * (size_t)Ts[v] * 24);
        for (int r = 0; r < Ts[v]; r++)
            for (int c = 0; c < 24; c++)
                t[(size_t)c * Ts[v] + r] = x.data[(size_t)r * 24 + c];
        int64_t sh[2] = {24, Ts[v]};
        snprintf(p, sizeof p, "%s/inct/v%d.npy", dir, v);
        ck_assert_int_eq(sola_npy_save(p, t, 2, sh, &e), 0);
        free(t);
        sola_array_free(&x);
    }
    ck_assert_int_eq(tu_system("echo garbage > %s/in/v3b.npy", dir), 0);
    sola_ws *ws = sola_ws_new();
    for (int threads = 1; threads <= 2; threads++) {
        ck_assert_int_eq(tu_system("cd %s && %s refine -m m.safetensors in -o out%d --threads "
                                   "%d 2>err.txt >out.txt", dir, sola, threads, threads),
                         1); /* the bad file */
        assert_stderr_has("v3b");
        ck_assert_int_eq(tu_system("cd %s && %s refine -m m.safetensors inct -o outct%d "
                                   "--layout ct --threads %d 2>err.txt >out.txt", dir, sola,
                                   threads, threads), 0);
        sola_gemm_set_threads(threads); /* the bits are those of this thread count */
        for (int v = 0; v < NV; v++) {
            char in[64], out[64], outct[64];
            snprintf(in, sizeof in, "in/v%d.npy", v);
            snprintf(out, sizeof out, "out%d/v%d.npy", threads, v);
            snprintf(outct, sizeof outct, "outct%d/v%d.npy", threads, v);
            sola_array x = load(in), y = load(out), yct = load(outct);
            size_t n = (size_t)Ts[v] * 24;
            float *want = malloc(sizeof(float) * n);
            ck_assert_int_eq(sola_refine(m, x.data, Ts[v], want, ws, &e), 0);
            ck_assert_int_eq(y.shape[0], Ts[v]);
            ck_assert_msg(!memcmp(want, y.data, n * sizeof(float)),
                          "%s (T=%d, %d threads) differs from sola_refine", out, Ts[v],
                          threads);
            ck_assert_int_eq(yct.shape[0], 24);
            ck_assert_int_eq(yct.shape[1], Ts[v]);
            for (int r = 0; r < Ts[v]; r++)
                for (int c = 0; c < 24; c++)
                    ck_assert_msg(yct.data[(size_t)c * Ts[v] + r] == want[(size_t)r * 24 + c],
                                  "%s: [%d, %d] differs", outct, c, r);
            free(want);
            sola_array_free(&x);
            sola_array_free(&y);
            sola_array_free(&yct);
        }
        /* atomic writes leave no temporary behind */
        snprintf(p, sizeof p, "%s/out%d", dir, threads);
        DIR *dd = opendir(p);
        ck_assert_ptr_nonnull(dd);
        int files = 0;
        for (struct dirent *de; (de = readdir(dd));) {
            if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
                continue;
            files++;
            ck_assert_msg(!strncmp(de->d_name, "v", 1) || !strcmp(de->d_name, "refine_meta.json") ||
                              !strcmp(de->d_name, "missing_files.txt"),
                          "unexpected file %s in %s", de->d_name, p);
        }
        closedir(dd);
        ck_assert_int_eq(files, NV + 2);
    }
    sola_ws_free(ws);
    sola_model_free(m);
}
END_TEST

/* The first video of `sola refine DIR` is read while the model loads and handed to the
 * pipeline (cli/refine_pipe.h, cli_pipe_first): its output is sola_refine's bit for
 * bit, long (taken over) or short (read again by the pipe), and a failed read -- of
 * the video read ahead or of a later one (SOLA_DEBUG_READ_FAIL_AT_VIDEO) -- skips and
 * names that video alone, exit 1, with no output or temporary of it left. */
static int count_named(const char *sub, const char *prefix, int *temps);

START_TEST(refine_folder_first_video_read_ahead)
{
    sola_model *m = init_model_alpha(4, -0.4f);
    static const int Ts[] = {500, 3, 260};
    enum { NV = sizeof Ts / sizeof Ts[0] };
    write_videos(Ts, NV, 0.75f, 0.5f);
    sola_ws *ws = sola_ws_new();
    sola_gemm_set_threads(2);
    /* fail = -1: no failure; else the video whose read fails */
    for (int fail = -1; fail < NV; fail++) {
        char at[16] = "";
        if (fail >= 0)
            snprintf(at, sizeof at, "%d", fail);
        ck_assert_int_eq(tu_system("rm -rf %s/out", dir), 0);
        ck_assert_int_eq(tu_system("cd %s && SOLA_DEBUG_READ_FAIL_AT_VIDEO=%s %s refine -m "
                                   "m.safetensors in -o out --threads 2 2>err.txt >out.txt",
                                   dir, at, sola),
                         fail < 0 ? 0 : 1);
        int temps = 0;
        ck_assert_int_eq(count_named("out", "v", &temps), fail < 0 ? NV : NV - 1);
        ck_assert_int_eq(temps, 0);
        for (int v = 0; v < NV; v++) {
            char in[64], out[64];
            snprintf(in, sizeof in, "in/v%d.npy", v);
            snprintf(out, sizeof out, "%s/out/v%d.npy", dir, v);
            if (v == fail) {
                ck_assert_int_ne(access(out, F_OK), 0);
                char want[64];
                snprintf(want, sizeof want, "skipped v%d: v%d: read failed", v, v);
                assert_stderr_has(want);
                continue;
            }
            snprintf(out, sizeof out, "out/v%d.npy", v);
            char what[32];
            snprintf(what, sizeof what, "read %d failing", fail);
            assert_refined_as_library(m, ws, in, out, Ts[v], what);
        }
    }
    sola_ws_free(ws);
    sola_model_free(m);
}
END_TEST

/* Names in DIR/sub starting with `prefix` or holding ".tmp." (an atomic write's
 * temporary). */
static int count_named(const char *sub, const char *prefix, int *temps)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    DIR *dd = opendir(p);
    ck_assert_ptr_nonnull(dd);
    int n = 0;
    *temps = 0;
    for (struct dirent *de; (de = readdir(dd));) {
        n += !strncmp(de->d_name, prefix, strlen(prefix));
        *temps += strstr(de->d_name, ".tmp.") != NULL;
    }
    closedir(dd);
    return n;
}

/* The last video of `sola refine DIR` is refined in pieces of rows and its .npy written
 * in parts while the rest is computed (cli/refine_pipe.c, run_part): the file is
 * sola_refine's bit for bit; when a part's write fails (SOLA_DEBUG_PART_WRITE_FAIL)
 * that video is skipped with the reason, named in missing_files.txt, exit 1, and
 * neither it nor a temporary is left, the other video intact. */
START_TEST(refine_last_video_written_in_parts)
{
    sola_model *m = init_model_alpha(7, 0.5f);
    char p[4096];
    static const int Ts[] = {200, 700};
    enum { NV = sizeof Ts / sizeof Ts[0] };
    write_videos(Ts, NV, 0.5f, 0.75f);
    sola_ws *ws = sola_ws_new();
    sola_gemm_set_threads(2);
    /* Pieces only where the row plan is row-independent (refine.h): oneDNN's pool path
     * is; the OpenBLAS build's plan for these narrow shapes is not, so there the video
     * is written whole and the part-write fault never fires. */
    const sola_gemm_w *gs[3] = {m->g0, m->g2, m->g4};
    sola_rowplan plan;
    sola_gemm_rowplan(gs, 3, &plan);
    if (strstr(sola_gemm_kernels(), "column chunks"))
        ck_assert_msg(plan.exact, "oneDNN's plan for C=24 H=16 is not row-independent");
    for (int fault = 0; fault <= 1; fault++) {
        int fails = fault && plan.exact;
        ck_assert_int_eq(tu_system("rm -rf %s/out", dir), 0);
        ck_assert_int_eq(tu_system("cd %s && SOLA_DEBUG_PART_WRITE_FAIL=%d %s refine -m "
                                   "m.safetensors in -o out --threads 2 2>err.txt >out.txt",
                                   dir, fault, sola),
                         fails);
        int temps = 0;
        ck_assert_int_eq(count_named("out", "v", &temps), fails ? NV - 1 : NV);
        ck_assert_int_eq(temps, 0);
        if (fails) {
            assert_stderr_has("skipped v1: ");
            assert_stderr_has("write failed (SOLA_DEBUG_PART_WRITE_FAIL)");
            snprintf(p, sizeof p, "%s/out/missing_files.txt", dir);
            char *miss = tu_read(p, NULL);
            ck_assert_ptr_nonnull(miss);
            ck_assert_msg(strstr(miss, "v1") != NULL, "missing_files.txt: %s", miss);
            free(miss);
        }
        for (int v = 0; v < NV - fails; v++) {
            char in[64], out[64];
            snprintf(in, sizeof in, "in/v%d.npy", v);
            snprintf(out, sizeof out, "out/v%d.npy", v);
            assert_refined_as_library(m, ws, in, out, Ts[v],
                                      fails ? "part write failing" : "in parts");
        }
    }
    sola_ws_free(ws);
    sola_model_free(m);
}
END_TEST

/* A run that stops midway (out of memory for its bookkeeping: SOLA_DEBUG_OOM_AT_VIDEO
 * makes video 1's fail) commits no HDF5 file -- neither -o FILE.h5 nor --h5-out --
 * and leaves no temporary; the folder outputs written before the stop are complete.
 * The same runs without the fault commit them (so the checks can fail). */
START_TEST(refine_stopped_midway_commits_no_partial_h5)
{
    ck_assert_int_eq(RUN("init --dim 8 --hidden 4 -o m.safetensors"), 0);
    ck_assert_int_eq(tu_system("mkdir -p %s/in %s/o1 %s/o2", dir, dir, dir), 0);
    write_seq("in/v_a.npy", 5, 8, 1.0f);
    write_seq("in/v_b.npy", 40, 8, 2.0f);
    write_seq("in/v_c.npy", 9, 8, 3.0f);
    for (int fault = 1; fault >= 0; fault--) {
        const char *env = fault ? "SOLA_DEBUG_OOM_AT_VIDEO=1 " : "";
        ck_assert_int_eq(tu_system("cd %s && %s%s refine -m m.safetensors in -o o1/all.h5 "
                                   "2>err.txt >out.txt", dir, env, sola), fault ? 1 : 0);
        if (fault)
            assert_stderr_has("out of memory at v_b: stopped after 1 of 3 videos (no HDF5 "
                              "output written)");
        ck_assert_int_eq(tu_system("cd %s && %s%s refine -m m.safetensors in -o o2/dir "
                                   "--h5-out o2/joined.h5 2>err.txt >out.txt", dir, env, sola),
                         fault ? 1 : 0);
        int temps1, temps2;
        ck_assert_int_eq(count_named("o1", "all.h5", &temps1), fault ? 0 : 1);
        ck_assert_int_eq(count_named("o2", "joined.h5", &temps2), fault ? 0 : 1);
        ck_assert_int_eq(temps1 + temps2, 0);
        sola_array a = load("o2/dir/v_a.npy");
        ck_assert_int_eq(a.shape[0], 5);
        sola_array_free(&a);
        char p[4096];
        snprintf(p, sizeof p, "%s/o2/dir/v_c.npy", dir);
        char *c = tu_read(p, NULL);
        ck_assert_msg(fault ? !c : c != NULL, "v_c.npy %s", fault ? "written after the stop"
                                                                   : "missing");
        free(c);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, init_then_refine_matches_library);
    tcase_add_test(tc, refine_folder_keeps_names_and_reports_bad_files);
    tcase_add_test(tc, refine_folder_pipeline_is_bitwise_the_library);
    tcase_add_test(tc, refine_folder_first_video_read_ahead);
    tcase_add_test(tc, refine_last_video_written_in_parts);
    tcase_add_test(tc, refine_stopped_midway_commits_no_partial_h5);
    tcase_add_test(tc, npz_in_npz_out_keeps_members);
    tcase_add_test(tc, wrong_dimension_names_file_and_both_dims);
    tcase_add_test(tc, usage_errors_exit_2);
    tcase_add_test(tc, every_subcommand_has_full_help);
    tcase_add_test(tc, missing_and_corrupt_files_exit_1_with_name);
    tcase_add_test(tc, tsm_npy_and_png);
    tcase_add_test(tc, info_prints_shapes_and_metadata);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
