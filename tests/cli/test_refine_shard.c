/* test_refine_shard.c -- `sola refine` spread over processes as a Kubernetes Indexed
 * Job runs it (cli/refine_shard.c): N processes with JOB_COMPLETION_INDEX set, one of
 * them killed with SIGKILL mid-run and retried with --skip-existing, one corrupt
 * input, over a 40-video folder and an HDF5 file. The union of the shards' outputs
 * must be the one-process run's, byte for byte, and the merged refine_meta.json and
 * missing_files.txt the one-process ones.
 *
 * The kill lands at a known point however fast the machine is: the shard runs with
 * SOLA_DEBUG_STOP_AFTER_VIDEOS=3 and stops itself (SIGSTOP) after writing its third
 * video; the test waits for it to be stopped, then kills it. */
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dataset.h"
#include "h5io.h"
#include "npy.h"
#include "refine_shard.h"
#include "testutil.h"

static char *tmp;

/* Runs `sola ARGS` in tmp with stderr to err.txt; returns its exit status. */
static int SOLA(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int SOLA(const char *fmt, ...)
{
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return tu_system("cd %s && %s/sola %s 2>err.txt >out.txt", tmp, tu_bin(), args);
}

static char *slurp(const char *rel)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    char *s = tu_read(p, NULL);
    if (!s)
        ck_abort_msg("%s was not written", rel);
    return s;
}

static int exists(const char *rel)
{
    char p[8400];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    return access(p, F_OK) == 0;
}

static void assert_err_has(const char *needle)
{
    char *s = slurp("err.txt");
    if (!strstr(s, needle))
        ck_abort_msg("stderr lacks '%s':\n%s", needle, s);
    free(s);
}

/* 40 synthetic videos (C=16), a model trained a few steps (not the identity), and
 * a corrupt video (an .npy header promising more rows than the file holds). */
static void setup(void)
{
    tmp = tu_tmpdir();
    ck_assert_int_eq(SOLA("synth -o ds --videos 40 --dim 16 --length 40"), 0);
    ck_assert_int_eq(SOLA("train --dim 16 --hidden 8 --head 8 --epochs 3 --lr 1e-2 "
                          "ds/features -o m.safetensors"), 0);
    char p[4096];
    size_t len;
    snprintf(p, sizeof p, "%s/ds/features/video_0007.npy", tmp);
    char *img = tu_read(p, &len);
    ck_assert_ptr_nonnull(img);
    snprintf(p, sizeof p, "%s/ds/features/video_bad.npy", tmp);
    ck_assert_int_eq(tu_write(p, img, len / 2), 0);
    free(img);
}

static void teardown(void)
{
    tu_rmtree(tmp);
    free(tmp);
}

/* Names in folder rel (hidden ones too), sorted, one per line (malloc'd). */
static char *listing(const char *rel)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    struct dirent **ents;
    int n = scandir(p, &ents, NULL, alphasort);
    ck_assert_int_ge(n, 0);
    size_t cap = 64, len = 0;
    char *s = malloc(cap);
    s[0] = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = ents[i]->d_name;
        if (strcmp(nm, ".") && strcmp(nm, "..")) {
            size_t l = strlen(nm);
            while (len + l + 2 > cap)
                s = realloc(s, cap *= 2);
            memcpy(s + len, nm, l);
            len += l;
            s[len++] = '\n';
            s[len] = 0;
        }
        free(ents[i]);
    }
    free(ents);
    return s;
}

/* 1 when files a and b hold the same bytes. */
static int same_bytes(const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    char pa[4096], pb[4096];
    snprintf(pa, sizeof pa, "%s/%s", tmp, a);
    snprintf(pb, sizeof pb, "%s/%s", tmp, b);
    char *x = tu_read(pa, &la), *y = tu_read(pb, &lb);
    int same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

/* The shard's part names of N, sorted as scandir sorts them, appended to the
 * one-process listing: what the sharded folder must hold, nothing else. */
static char *expected_listing(const char *one, int N)
{
    char *s = listing(one);
    size_t len = strlen(s);
    s = realloc(s, len + (size_t)N * 64 + 1);
    for (int i = 0; i < N; i++)
        len += (size_t)sprintf(s + len, "missing_files.%d-of-%d.txt\n", i, N);
    for (int i = 0; i < N; i++)
        len += (size_t)sprintf(s + len, "refine_meta.%d-of-%d.json\n", i, N);
    /* sort the lines the way alphasort (strcoll; tests run in the C locale) does */
    char *lines[512];
    int n = 0;
    for (char *t = strtok(s, "\n"); t && n < 512; t = strtok(NULL, "\n"))
        lines[n++] = t;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(lines[j - 1], lines[j]) > 0; j--) {
            char *x = lines[j];
            lines[j] = lines[j - 1];
            lines[j - 1] = x;
        }
    char *r = malloc(len + 1);
    size_t k = 0;
    for (int i = 0; i < n; i++)
        k += (size_t)sprintf(r + k, "%s\n", lines[i]);
    r[k] = 0;
    free(s);
    return r;
}

/* Starts `sola ARGS` in tmp as a child of this process (exec'd, so its pid is sola's). */
static pid_t spawn(const char *env, const char *args, const char *errfile)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd %s && exec env %s %s/sola %s 2>%s >/dev/null", tmp, env,
             tu_bin(), args, errfile);
    pid_t p = fork();
    ck_assert_int_ge(p, 0);
    if (!p) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return p;
}

/* Item names of input `in` (a folder or an HDF5 file), and which are shard k's of N. */
static int shard_videos(const char *in, int k, int N, int *total)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", tmp, in);
    sola_dataset_opts o = {.skip_bad = 1};
    sola_dataset *d = NULL;
    sola_err e = {0};
    ck_assert_msg(!sola_dataset_open_ex(p, &o, &d, &e), "%s", e.msg);
    cli_shard sh = {k, N};
    int n = 0;
    for (int i = 0; i < d->n; i++)
        n += cli_shard_owns(&sh, d->items[i].name);
    *total = d->n;
    sola_dataset_free(d);
    return n;
}

/* The Indexed Job's run over input `in` into `out` with N shards: shard `victim` is
 * killed after 3 videos, one of those 3 outputs is truncated (so --skip-existing has
 * to check, not just look), a temporary as a killed writer leaves it is planted,
 * and the shard is retried; then everything is compared with the one-process `one`. */
static void indexed_job(const char *in, const char *out, const char *one, int N, int victim)
{
    int total, nv = shard_videos(in, victim, N, &total);
    ck_assert_msg(nv > 4, "shard %d/%d has only %d videos", victim, N, nv);
    char args[1024], env[256];
    snprintf(args, sizeof args, "refine -m m.safetensors %s -o %s --allow-missing", in, out);
    snprintf(env, sizeof env, "SOLA_DEBUG_STOP_AFTER_VIDEOS=3 JOB_COMPLETION_INDEX=%d "
             "JOB_COMPLETIONS=%d", victim, N);
    pid_t v = spawn(env, args, "err_victim.txt");
    /* the other shards, all at once */
    char cmd[8192];
    size_t l = (size_t)snprintf(cmd, sizeof cmd, "cd %s || exit 1; ", tmp);
    for (int i = 0; i < N; i++)
        if (i != victim)
            l += (size_t)snprintf(cmd + l, sizeof cmd - l, "(JOB_COMPLETION_INDEX=%d "
                                  "JOB_COMPLETIONS=%d %s/sola %s 2>err%d.txt || echo %d >>"
                                  "failed.txt) & ", i, N, tu_bin(), args, i, i);
    snprintf(cmd + l, sizeof cmd - l, "wait");
    ck_assert_int_eq(tu_system("%s", cmd), 0);
    ck_assert_msg(!exists("failed.txt"), "a shard failed");
    int st;
    ck_assert_int_eq(waitpid(v, &st, WUNTRACED), v);
    ck_assert_msg(WIFSTOPPED(st), "the victim shard was not stopped (status %d)", st);
    ck_assert_int_eq(kill(v, SIGKILL), 0);
    ck_assert_int_eq(waitpid(v, &st, 0), v);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    /* killed mid-run: 3 of its outputs, no part, so no merged files yet */
    char rel[4096], meta[4200], miss[4200];
    cli_shard_part_paths(out, victim, N, meta, miss, sizeof meta);
    ck_assert(!exists(meta));
    snprintf(rel, sizeof rel, "%s/refine_meta.json", out);
    ck_assert(!exists(rel));
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", tmp, in);
    sola_dataset_opts o = {.skip_bad = 1};
    sola_dataset *d = NULL;
    sola_err e = {0};
    ck_assert_int_eq(sola_dataset_open_ex(p, &o, &d, &e), 0);
    cli_shard sh = {victim, N};
    int written = 0, truncated = 0, planted = 0;
    for (int i = 0; i < d->n; i++) {
        if (!cli_shard_owns(&sh, d->items[i].name))
            continue;
        snprintf(rel, sizeof rel, "%s/%s/%s.npy", tmp, out, d->items[i].name);
        if (!access(rel, F_OK)) {
            written++;
            if (!truncated++) { /* half of it: present, but not complete */
                size_t len;
                char *img = tu_read(rel, &len);
                ck_assert_int_eq(tu_write(rel, img, len - 4), 0);
                free(img);
            }
        } else if (!planted) { /* as a writer killed mid-file leaves it */
            snprintf(rel, sizeof rel, "%s/%s/.%s.npy.tmp.1.0", tmp, out, d->items[i].name);
            ck_assert_int_eq(tu_write(rel, "half", 4), 0);
            planted = 1;
        }
    }
    sola_dataset_free(d);
    ck_assert_int_eq(written, 3);
    ck_assert_int_eq(planted, 1);

    /* the retry, as the Job's next pod for that index: --shards instead of the env */
    ck_assert_int_eq(tu_system("cd %s && JOB_COMPLETION_INDEX=%d %s/sola %s --shards %d "
                               "--skip-existing 2>err.txt", tmp, victim, tu_bin(), args, N),
                     0);
    assert_err_has("2 videos already refined");
    assert_err_has("a temporary file of a run that was killed");
    assert_err_has("parts merged into");

    /* the union is the one-process run, byte for byte, and nothing else */
    char *want = expected_listing(one, N), *got = listing(out);
    ck_assert_str_eq(got, want);
    free(want);
    free(got);
    char *names = listing(one);
    int files = 0;
    for (char *t = strtok(names, "\n"); t; t = strtok(NULL, "\n")) {
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/%s", one, t);
        snprintf(b, sizeof b, "%s/%s", out, t);
        ck_assert_msg(same_bytes(a, b), "%s differs from %s", b, a);
        files++;
    }
    free(names);
    ck_assert_int_eq(files, total + 2); /* every video, refine_meta.json, missing_files.txt */

    /* --merge-meta writes the same again */
    snprintf(rel, sizeof rel, "%s/refine_meta.json", out);
    snprintf(p, sizeof p, "%s/%s/refine_meta.json", tmp, out);
    ck_assert_int_eq(unlink(p), 0);
    ck_assert_int_eq(SOLA("refine --merge-meta %s", out), 0);
    char a[4096];
    snprintf(a, sizeof a, "%s/refine_meta.json", one);
    ck_assert(same_bytes(a, rel));
}

START_TEST(indexed_job_over_a_folder)
{
    ck_assert_int_eq(SOLA("refine -m m.safetensors ds/features -o one --allow-missing"), 0);
    /* the model is not the identity, and the corrupt video is listed */
    ck_assert(!same_bytes("one/video_0000.npy", "ds/features/video_0000.npy"));
    char *miss = slurp("one/missing_files.txt");
    ck_assert_str_eq(miss, "video_bad\n");
    free(miss);
    indexed_job("ds/features", "sh", "one", 4, 1);
    /* a shard that owns the corrupt video exits 1 without --allow-missing; the others 0 */
    for (int k = 0; k < 4; k++) {
        cli_shard sh = {k, 4};
        int rc = SOLA("refine -m m.safetensors ds/features -o again --shard %d/4", k);
        ck_assert_int_eq(rc, cli_shard_owns(&sh, "video_bad") ? 1 : 0);
    }
    char *a = slurp("again/missing_files.txt");
    ck_assert_str_eq(a, "video_bad\n");
    free(a);
}
END_TEST

START_TEST(indexed_job_over_an_hdf5_file)
{
    /* the 40 videos as datasets of one HDF5 file, and a missing list of its own */
    sola_h5w *w;
    sola_err e = {0};
    char p[4096];
    snprintf(p, sizeof p, "%s/ds.h5", tmp);
    ck_assert_int_eq(sola_h5w_open(p, &w, &e), 0);
    for (int i = 0; i < 40; i++) {
        char f[4096], name[64];
        snprintf(name, sizeof name, "v_%04d", i);
        snprintf(f, sizeof f, "%s/ds/features/video_%04d.npy", tmp, i);
        sola_array a;
        ck_assert_int_eq(sola_npy_load(f, 0, &a, &e), 0);
        ck_assert_int_eq(sola_h5w_put(w, name, a.data, a.shape[0], a.shape[1], &e), 0);
        sola_array_free(&a);
    }
    ck_assert_int_eq(sola_h5w_commit(w, &e), 0);
    snprintf(p, sizeof p, "%s/ds.missing_files.txt", tmp);
    ck_assert_int_eq(tu_write(p, "gone_before\n", 12), 0);
    ck_assert_int_eq(SOLA("refine -m m.safetensors ds.h5 -o one --allow-missing"), 0);
    char *miss = slurp("one/missing_files.txt");
    ck_assert_str_eq(miss, "gone_before\n");
    free(miss);
    indexed_job("ds.h5", "sh", "one", 3, 2);
}
END_TEST

START_TEST(the_split_is_fnv1a_of_the_name)
{
    /* FNV-1a 64 reference values, so the split is the one documented */
    ck_assert_uint_eq(cli_shard_hash(""), 0xcbf29ce484222325ULL);
    ck_assert_uint_eq(cli_shard_hash("a"), 0xaf63dc4c8601ec8cULL);
    ck_assert_uint_eq(cli_shard_hash("foobar"), 0x85944171f73967e8ULL);
    cli_shard s;
    char msg[512];
    ck_assert_int_eq(cli_shard_resolve("3/8", 0, &s, msg, sizeof msg), 0);
    ck_assert_int_eq(s.index, 3);
    ck_assert_int_eq(s.count, 8);
    ck_assert_int_eq(cli_shard_owns(&s, "v_x"), cli_shard_hash("v_x") % 8 == 3);
}
END_TEST

/* Each way to get it wrong is a clear error, and nothing is refined. */
START_TEST(bad_shard_arguments)
{
    static const char *const bad[][2] = {
        {"--shard 4/4", "0 <= I < N"},
        {"--shard 1", "wants I/N"},
        {"--shard -1/4", "0 <= I < N"},
        {"--shard 1/0", "0 <= I < N"},
        {"--shards 4", "JOB_COMPLETION_INDEX"},
        {"--shards 0", "--shards wants a count"},
        {"--shard 1/4 --shards 3", "disagree"},
        {"--shard 0/2 -o x.h5", "one HDF5 file"},
        {"--skip-existing --h5-out y.h5", "one HDF5 file"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = SOLA("refine -m m.safetensors ds/features -o o %s", bad[i][0]);
        ck_assert_msg(rc == 2, "%s: exit %d", bad[i][0], rc);
        assert_err_has(bad[i][1]);
    }
    ck_assert(!exists("o"));
    ck_assert_int_eq(SOLA("refine -m m.safetensors ds/features/video_0001.npy -o o.npy "
                          "--skip-existing"), 2);
    assert_err_has("not one file");
    /* the Job's index without a count, or out of range */
    ck_assert_int_eq(tu_system("cd %s && JOB_COMPLETION_INDEX=0 %s/sola refine -m m.safetensors "
                               "ds/features -o o 2>err.txt", tmp, tu_bin()), 2);
    assert_err_has("--shards N");
    ck_assert_int_eq(tu_system("cd %s && JOB_COMPLETION_INDEX=5 JOB_COMPLETIONS=4 %s/sola "
                               "refine -m m.safetensors ds/features -o o 2>err.txt", tmp,
                               tu_bin()), 2);
    assert_err_has("not an index below");
    ck_assert_int_eq(tu_system("cd %s && JOB_COMPLETION_INDEX=0 JOB_COMPLETIONS=many %s/sola "
                               "refine -m m.safetensors ds/features -o o 2>err.txt", tmp,
                               tu_bin()), 2);
    assert_err_has("not a shard count");
    ck_assert(!exists("o"));
    /* a folder of HDF5 files is written back as shared files: not shardable */
    ck_assert_int_eq(SOLA("init --dim 5 --hidden 4 -o m5.safetensors"), 0);
    ck_assert_int_eq(SOLA("refine -m m5.safetensors %s/tests/data/interop/gtad -o g "
                          "--shard 0/2 --allow-missing", tu_src()), 1);
    assert_err_has("a folder of HDF5 files");
    /* merging: parts missing, parts of two counts, no parts, extra arguments */
    ck_assert_int_eq(SOLA("refine -m m.safetensors ds/features -o s --shard 0/4 "
                          "--allow-missing"), 0);
    ck_assert(!exists("s/refine_meta.json"));
    ck_assert_int_eq(SOLA("refine --merge-meta s"), 1);
    assert_err_has("no part yet from shard 1/4 2/4 3/4");
    ck_assert_int_eq(SOLA("refine -m m.safetensors ds/features -o s --shard 1/2 "
                          "--allow-missing"), 0);
    ck_assert_int_eq(SOLA("refine --merge-meta s"), 1);
    assert_err_has("parts of");
    ck_assert_int_eq(SOLA("refine --merge-meta s --shards 2"), 1);
    assert_err_has("no part yet from shard 0/2");
    ck_assert_int_eq(SOLA("refine --merge-meta ds"), 1);
    assert_err_has("no refine_meta.I-of-N.json parts");
    ck_assert_int_eq(SOLA("refine --merge-meta nowhere"), 2);
    ck_assert_int_eq(SOLA("refine --merge-meta s -m m.safetensors"), 2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("refine_shard");
    TCase *tc = tcase_create("indexed_job");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, the_split_is_fnv1a_of_the_name);
    tcase_add_test(tc, indexed_job_over_a_folder);
    tcase_add_test(tc, indexed_job_over_an_hdf5_file);
    tcase_add_test(tc, bad_shard_arguments);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
