/* test_fuzz_replay.c -- the fuzz corpora and regressions, replayed in the normal build.
 *
 * Every file of fuzz/corpus/NAME/ and fuzz/regressions/NAME/ goes through the harness
 * body NAME of fuzz/harness.h (the same code libFuzzer runs), from an exactly sized
 * heap copy. The harness returns -1 when a parser breaks one of its promises (a
 * refusal without a code or message, readers that disagree, a round trip through our
 * writer that changes the data); here that fails the test with the file's name. Run
 * under the ASan+UBSan build, any memory error the fuzzer found once stays found.
 * Then every corpus file also goes through every other harness: a .npy handed to the
 * safetensors reader must be refused cleanly too. The api_* targets (solad's request
 * layer, fuzz/harness_api.h) are replayed the same way. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../fuzz/harness_api.h"
#include "testutil.h"

typedef struct flist {
    char **path;
    int n;
} flist;

static void flist_free(flist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->path[i]);
    free(l->path);
    l->path = NULL;
    l->n = 0;
}

/* Appends the regular files of ROOT/rel (missing directory: nothing). */
static void add_dir(flist *l, const char *rel)
{
    char *dir = tu_path(rel);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.' || strncmp(de->d_name, "README", 6) == 0)
            continue;
        size_t n = strlen(dir) + strlen(de->d_name) + 2;
        char *p = malloc(n);
        ck_assert_ptr_nonnull(p);
        snprintf(p, n, "%s/%s", dir, de->d_name);
        l->path = realloc(l->path, (size_t)(l->n + 1) * sizeof *l->path);
        ck_assert_ptr_nonnull(l->path);
        l->path[l->n++] = p;
    }
    if (d)
        closedir(d);
    free(dir);
}

/* Runs fn over one file; fails the test with the harness's reason. Returns 0
 * (accepted) or 1 (refused). */
static int replay_file(const char *target, fuzz_fn fn, const char *path)
{
    size_t len;
    unsigned char *buf = tu_read(path, &len);
    ck_assert_msg(buf != NULL, "cannot read %s", path);
    fuzz_why[0] = 0;
    int r = fn(buf, len);
    free(buf);
    ck_assert_msg(r >= 0, "%s harness, %s: %s", target, path, fuzz_why);
    return r;
}

/* The core targets then the api ones, as one list. */
#define NALL (FUZZ_NTARGETS + FUZZ_API_NTARGETS)
static const fuzz_target *target_at(int i)
{
    return i < FUZZ_NTARGETS ? &fuzz_targets[i] : &fuzz_api_targets[i - FUZZ_NTARGETS];
}

static const fuzz_target *target_named(const char *name)
{
    for (int i = 0; i < NALL; i++)
        if (strcmp(target_at(i)->name, name) == 0)
            return target_at(i);
    return NULL;
}

/* Every target's own corpus and regressions. The corpus holds valid files as well as
 * broken ones: at least one of each kind must be accepted, or the harness (or the
 * corpus) no longer reaches the code past the parser. */
static void replay_own(const char *name)
{
    const fuzz_target *t = target_named(name);
    ck_assert_ptr_nonnull(t);
    char rel[256];
    flist l = {0};
    snprintf(rel, sizeof rel, "fuzz/corpus/%s", name);
    add_dir(&l, rel);
    int ncorpus = l.n;
    snprintf(rel, sizeof rel, "fuzz/regressions/%s", name);
    add_dir(&l, rel);
    ck_assert_msg(ncorpus >= 5, "fuzz/corpus/%s holds %d files; the corpus is missing", name,
                  ncorpus);
    int accepted = 0, refused = 0;
    for (int i = 0; i < l.n; i++) {
        if (replay_file(name, t->fn, l.path[i]) == 0)
            accepted++;
        else
            refused++;
    }
    ck_assert_msg(accepted > 0, "%s: no corpus file is accepted", name);
    if (strcmp(name, "api_request")) /* requests always get a reply: no "refused" */
        ck_assert_msg(refused > 0, "%s: no corpus file is refused", name);
    flist_free(&l);
    fuzz_api_cleanup();
    fuzz_ds_cleanup();
}

START_TEST(npy_corpus) { replay_own("npy"); }
END_TEST
START_TEST(npz_corpus) { replay_own("npz"); }
END_TEST
START_TEST(safetensors_corpus) { replay_own("safetensors"); }
END_TEST
START_TEST(model_corpus) { replay_own("model"); }
END_TEST
START_TEST(dataset_npz_corpus) { replay_own("dataset_npz"); }
END_TEST
START_TEST(api_features_corpus) { replay_own("api_features"); }
END_TEST
START_TEST(api_number_corpus) { replay_own("api_number"); }
END_TEST
START_TEST(api_train_corpus) { replay_own("api_train"); }
END_TEST
START_TEST(api_request_corpus) { replay_own("api_request"); }
END_TEST

/* Each harness over the other targets' files (its own ran above): wrong formats
 * refused cleanly. */
START_TEST(every_file_through_every_harness)
{
    char rel[256];
    int total = 0;
    for (int i = 0; i < NALL; i++) {
        flist l = {0};
        snprintf(rel, sizeof rel, "fuzz/corpus/%s", target_at(i)->name);
        add_dir(&l, rel);
        snprintf(rel, sizeof rel, "fuzz/regressions/%s", target_at(i)->name);
        add_dir(&l, rel);
        total += l.n;
        for (int f = 0; f < l.n; f++)
            for (int t = 0; t < NALL; t++)
                if (t != i)
                    replay_file(target_at(t)->name, target_at(t)->fn, l.path[f]);
        flist_free(&l);
    }
    ck_assert_int_gt(total, 20);
    fuzz_api_cleanup();
    fuzz_ds_cleanup();
}
END_TEST

/* The harness's own checks must be able to fail, or a green replay means nothing. */
START_TEST(harness_detects_silent_failures)
{
    sola_err e = {SOLA_EFORMAT, ""};
    ck_assert_int_eq(fuzz_refused("x", SOLA_EFORMAT, &e), -1); /* empty message */
    snprintf(e.msg, sizeof e.msg, "%s: bad magic", FUZZ_NAME);
    ck_assert_int_eq(fuzz_refused("x", SOLA_EFORMAT, &e), 1);
    ck_assert_int_eq(fuzz_refused("x", SOLA_ESHAPE, &e), -1); /* code != e.code */
    ck_assert_int_eq(fuzz_refused("x", -77, &e), -1);         /* unknown code */
    snprintf(e.msg, sizeof e.msg, "bad magic");
    ck_assert_int_eq(fuzz_refused("x", SOLA_EFORMAT, &e), -1); /* input not named */
    ck_assert_ptr_nonnull(strstr(fuzz_why, "does not name"));
    /* And an empty input is refused cleanly by all four. */
    for (int t = 0; t < FUZZ_NTARGETS; t++)
        ck_assert_int_eq(fuzz_targets[t].fn((const uint8_t *)"", 0), 1);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("fuzz_replay");
    TCase *tc = tcase_create("replay");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, harness_detects_silent_failures);
    tcase_add_test(tc, npy_corpus);
    tcase_add_test(tc, npz_corpus);
    tcase_add_test(tc, safetensors_corpus);
    tcase_add_test(tc, model_corpus);
    tcase_add_test(tc, dataset_npz_corpus);
    tcase_add_test(tc, api_features_corpus);
    tcase_add_test(tc, api_number_corpus);
    tcase_add_test(tc, api_train_corpus);
    tcase_add_test(tc, api_request_corpus);
    tcase_add_test(tc, every_file_through_every_harness);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* The dataset-store and request harnesses write and fsync a scratch data
     * directory for every input; on a RAM-backed /dev/shm that costs nothing. */
    struct stat st;
    if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0)
        setenv("TMPDIR", "/dev/shm", 1);
    return tu_run(suite());
}
