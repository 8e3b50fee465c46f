/* test_stream_cli.c -- `sola refine --stream` as a pipeline runs it.
 *
 * Live: rows written one at a time into its stdin come back on its stdout as soon as
 * they are final (row t once row t + R is in, and not before), the last R when stdin
 * closes; the bytes are the offline refine's. Framing: a whole .npy on stdin with -o
 * OUT.npy, chunks of other dtypes, byte order, Fortran order and [C] rows, raw rows
 * with --dim. Errors: each case named, exit codes 1 and 2, no partial OUT.npy. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gemm.h"
#include "model.h"
#include "npy.h"
#include "refine.h"
#include "stream.h"
#include "testutil.h"

#define C 64

static char *dir;
static char sola[4096], mpath[4200];
static sola_model *model;

static void setup(void)
{
    dir = tu_tmpdir();
    snprintf(sola, sizeof sola, "%s/sola", tu_bin());
    snprintf(mpath, sizeof mpath, "%s/m.safetensors", dir);
    sola_err e = {0};
    model = sola_model_new(C, 64, 5, 3, 0, &e);
    ck_assert_ptr_nonnull(model);
    sola_model_init(model, 3);
    model->d2 = 2; /* R = 2 + 2 = 4 */
    model->alpha[0] = 0.8f;
    ck_assert_int_eq(sola_model_save(model, mpath, 0, &e), 0);
    ck_assert_int_eq(sola_model_pack(model, &e), 0);
    sola_gemm_set_threads(1); /* as the command below runs (--threads 1) */
}

static void teardown(void)
{
    sola_model_free(model);
    tu_rmtree(dir);
    free(dir);
}

static float *input(int T, unsigned seed)
{
    float *x = malloc(sizeof(float) * (size_t)T * C);
    unsigned s = seed;
    for (int i = 0; i < T * C; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    return x;
}

static float *offline(const float *x, int T)
{
    float *y = malloc(sizeof(float) * (size_t)T * C);
    sola_ws *ws = sola_ws_new();
    sola_err e = {0};
    ck_assert_int_eq(sola_refine(model, x, T, y, ws, &e), 0);
    sola_ws_free(ws);
    return y;
}

static void write_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        ck_assert_msg(w > 0 || errno == EINTR, "write: %s", strerror(errno));
        if (w > 0)
            b += w, n -= (size_t)w;
    }
}

/* Reads exactly n bytes within timeout_ms; returns the bytes read. */
static size_t read_within(int fd, void *p, size_t n, int timeout_ms)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, timeout_ms) <= 0)
            break;
        ssize_t r = read(fd, (char *)p + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

START_TEST(live_rows_as_they_become_final)
{
    int in[2], out[2];
    ck_assert_int_eq(pipe(in), 0);
    ck_assert_int_eq(pipe(out), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execl(sola, sola, "refine", "--stream", "--threads", "1", "-m", mpath, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    signal(SIGPIPE, SIG_IGN);
    int T = 30, R = sola_stream_radius(model);
    ck_assert_int_eq(R, 4);
    float *x = input(T, 1), *y = malloc(sizeof(float) * (size_t)T * C);
    int got = 0;
    for (int t = 0; t < T; t++) {
        void *b;
        size_t len;
        sola_err e = {0};
        int64_t sh[2] = {1, C};
        ck_assert_int_eq(sola_npy_encode(x + (size_t)t * C, 2, sh, &b, &len, &e), 0);
        write_all(in[1], b, len);
        free(b);
        if (t >= R) { /* row t - R is final now: it must come without more input */
            size_t n = read_within(out[0], y + (size_t)got * C, C * 4, 30000);
            ck_assert_msg(n == C * 4, "row %d did not come after row %d went in (%zu bytes)",
                          got, t, n);
            got++;
        }
        /* and nothing beyond it yet */
        char extra;
        struct pollfd pf = {out[0], POLLIN, 0};
        ck_assert_msg(poll(&pf, 1, t % 10 ? 0 : 50) == 0 || read(out[0], &extra, 1) <= 0,
                      "a row came out before it was final (after row %d went in)", t);
    }
    close(in[1]); /* the end: the last R rows */
    size_t n = read_within(out[0], y + (size_t)got * C, (size_t)R * C * 4, 30000);
    ck_assert_uint_eq(n, (size_t)R * C * 4);
    char extra;
    ck_assert_int_eq(read(out[0], &extra, 1), 0); /* then end of output */
    close(out[0]);
    int st;
    waitpid(pid, &st, 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    float *ref = offline(x, T);
    if (sola_refine_batchable(model))
        ck_assert_msg(!memcmp(ref, y, (size_t)T * C * 4), "not the offline refine's bytes");
    else
        ck_assert_double_lt(tu_max_rel_err(y, ref, (size_t)T * C), 1e-5);
    free(ref);
    free(x);
    free(y);
}
END_TEST

/* Runs `sola refine --stream ARGS < IN > OUT 2> err.txt` in DIR; returns the exit code. */
static int run_stream(const char *args, const char *in, const char *out)
{
    return tu_system("cd '%s' && '%s' refine --stream --threads 1 -m m.safetensors %s < %s > %s "
                     "2> err.txt",
                     dir, sola, args, in, out);
}

static char *slurp(const char *name, size_t *len)
{
    char p[4300];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *s = tu_read(p, len);
    return s ? s : strdup("");
}

static void assert_err(const char *needle)
{
    char *s = slurp("err.txt", NULL);
    ck_assert_msg(strstr(s, needle) != NULL, "stderr lacks '%s': %s", needle, s);
    free(s);
}

/* Appends an .npy image of n items (raw bytes as given) with header text hdr. */
static void append_npy(FILE *f, const char *descr, int fortran, const char *shape,
                       const void *data, size_t bytes)
{
    char h[256];
    int n = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr,
                     fortran ? "True" : "False", shape);
    int total = (10 + n + 1 + 63) / 64 * 64;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                             (unsigned char)((total - 10) & 255),
                             (unsigned char)((total - 10) >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(h, 1, (size_t)n, f);
    for (int i = 10 + n; i < total - 1; i++)
        fputc(' ', f);
    fputc('\n', f);
    fwrite(data, 1, bytes, f);
}

START_TEST(framings_give_the_offline_bytes)
{
    int T = 23;
    float *x = input(T, 7), *ref = offline(x, T);
    char p[4300];
    /* a whole .npy file, to an .npy file */
    snprintf(p, sizeof p, "%s/x.npy", dir);
    int64_t sh[2] = {T, C};
    sola_err e = {0};
    ck_assert_int_eq(sola_npy_save(p, x, 2, sh, &e), 0);
    ck_assert_int_eq(run_stream("-o y.npy", "x.npy", "out.bin"), 0);
    assert_err("23 snippets in, 23 refined out");
    snprintf(p, sizeof p, "%s/y.npy", dir);
    sola_array y = {0};
    ck_assert_int_eq(sola_npy_load(p, 0, &y, &e), 0);
    ck_assert_int_eq(y.shape[0], T);
    ck_assert(!memcmp(y.data, ref, (size_t)T * C * 4));
    sola_array_free(&y);
    size_t len;
    char *o = slurp("out.bin", &len);
    ck_assert_uint_eq(len, 0); /* -o: nothing on stdout */
    free(o);

    /* chunks of every kind: f4 [3, C], f8 big-endian [2, C], a [C] row, f2 [1, C],
     * a Fortran-order [4, C], an empty [0, C], then the rest as f4 */
    snprintf(p, sizeof p, "%s/chunks.bin", dir);
    FILE *f = fopen(p, "wb");
    char shape[64];
    int t = 0;
    append_npy(f, "<f4", 0, "(3, 64)", x, 3 * C * 4);
    t = 3;
    double d[2 * C];
    unsigned char be[2 * C * 8];
    for (int i = 0; i < 2 * C; i++) {
        d[i] = x[(size_t)t * C + (size_t)i];
        memcpy(be + 8 * i, &d[i], 8);
        for (int k = 0; k < 4; k++) {
            unsigned char c = be[8 * i + k];
            be[8 * i + k] = be[8 * i + 7 - k];
            be[8 * i + 7 - k] = c;
        }
    }
    append_npy(f, ">f8", 0, "(2, 64)", be, sizeof be);
    t = 5;
    append_npy(f, "<f4", 0, "(64,)", x + (size_t)t * C, C * 4);
    t = 6;
    float fo[4 * C];
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < C; c++)
            fo[c * 4 + r] = x[(size_t)(t + r) * C + (size_t)c];
    append_npy(f, "<f4", 1, "(4, 64)", fo, sizeof fo);
    t = 10;
    append_npy(f, "<f4", 0, "(0, 64)", "", 0);
    snprintf(shape, sizeof shape, "(%d, 64)", T - t);
    append_npy(f, "<f4", 0, shape, x + (size_t)t * C, (size_t)(T - t) * C * 4);
    fclose(f);
    ck_assert_int_eq(run_stream("", "chunks.bin", "out.bin"), 0);
    o = slurp("out.bin", &len);
    ck_assert_uint_eq(len, (size_t)T * C * 4);
    ck_assert_msg(!memcmp(o, ref, len), "chunked input: not the offline refine's bytes");
    free(o);

    /* raw float32 rows with --dim */
    snprintf(p, sizeof p, "%s/x.f32", dir);
    ck_assert_int_eq(tu_write(p, x, (size_t)T * C * 4), 0);
    ck_assert_int_eq(run_stream("--dim 64", "x.f32", "out.bin"), 0);
    o = slurp("out.bin", &len);
    ck_assert_uint_eq(len, (size_t)T * C * 4);
    ck_assert(!memcmp(o, ref, len));
    free(o);
    /* an empty input is an empty sequence */
    ck_assert_int_eq(run_stream("", "/dev/null", "out.bin"), 0);
    o = slurp("out.bin", &len);
    ck_assert_uint_eq(len, 0);
    free(o);
    free(x);
    free(ref);
}
END_TEST

START_TEST(bad_input_is_named)
{
    int T = 10;
    float *x = input(T, 9);
    char p[4300];
    sola_err e = {0};
    /* the wrong C */
    snprintf(p, sizeof p, "%s/w.npy", dir);
    int64_t sh[2] = {2, 32};
    ck_assert_int_eq(sola_npy_save(p, x, 2, sh, &e), 0);
    ck_assert_int_eq(run_stream("", "w.npy", "out.bin"), 1);
    assert_err("[n, 64]");
    /* cut inside an array; with -o, no OUT.npy is left */
    snprintf(p, sizeof p, "%s/x.npy", dir);
    int64_t sh2[2] = {T, C};
    ck_assert_int_eq(sola_npy_save(p, x, 2, sh2, &e), 0);
    ck_assert_int_eq(tu_system("cd '%s' && head -c 1000 x.npy > cut.npy", dir), 0);
    ck_assert_int_eq(run_stream("-o y.npy", "cut.npy", "out.bin"), 1);
    assert_err("input ended after 3 of its 10 rows");
    snprintf(p, sizeof p, "%s/y.npy", dir);
    ck_assert_int_ne(access(p, F_OK), 0);
    ck_assert_int_eq(tu_system("cd '%s' && ls | grep -q tmp", dir) == 0, 0);
    /* raw floats without --dim; a partial raw row */
    snprintf(p, sizeof p, "%s/x.f32", dir);
    ck_assert_int_eq(tu_write(p, x, (size_t)T * C * 4 - 8), 0);
    ck_assert_int_eq(run_stream("", "x.f32", "out.bin"), 1);
    assert_err("--dim");
    ck_assert_int_eq(run_stream("--dim 64", "x.f32", "out.bin"), 1);
    assert_err("inside a row");
    /* a NaN: named by its snippet */
    x[5 * C + 3] = 0.0f / 0.0f;
    snprintf(p, sizeof p, "%s/nan.npy", dir);
    ck_assert_int_eq(sola_npy_save(p, x, 2, sh2, &e), 0);
    ck_assert_int_eq(run_stream("", "nan.npy", "out.bin"), 1);
    assert_err("snippet 5 of the sequence, channel 3 is NaN");
    /* usage errors: exit 2 */
    ck_assert_int_eq(run_stream("--dim 32", "x.f32", "out.bin"), 2);
    assert_err("expects C=64");
    ck_assert_int_eq(run_stream("-o y.txt", "x.npy", "out.bin"), 2);
    ck_assert_int_eq(tu_system("cd '%s' && '%s' refine --stream -m m.safetensors x.npy "
                               "2> err.txt > out.bin", dir, sola), 2);
    assert_err("standard input");
    ck_assert_int_eq(tu_system("cd '%s' && '%s' refine -m m.safetensors --dim 64 x.npy -o z.npy "
                               "2> err.txt", dir, sola), 2);
    assert_err("--dim goes with --stream");
    free(x);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stream_cli");
    TCase *tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, live_rows_as_they_become_final);
    tcase_add_test(tc, framings_give_the_offline_bytes);
    tcase_add_test(tc, bad_input_is_named);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
