/* test_layouts.c -- the layouts of other codebases behind the dataset interface
 * (core/data/layouts.h, core/formats/h5io.h), on the committed fixtures of
 * tests/ref/make_interop_fixtures.py, and `sola refine` round trips of each layout.
 *
 * Fixture values: val(t, c, s) = s * (t + c / 100). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csvfeat.h"
#include "dataset.h"
#include "h5io.h"
#include "layouts.h"
#include "npy.h"
#include "npz.h"
#include "testutil.h"

static char *tmp;

static void setup(void)
{
    tmp = tu_tmpdir();
}

static void teardown(void)
{
    tu_rmtree(tmp);
    free(tmp);
}

static float val(int t, int c, float s)
{
    return (float)(s * (t + c / 100.0));
}

/* Opens tests/data/interop/REL; fails the test with the message otherwise. */
static sola_dataset *open_fx(const char *rel, int ct, int skip_bad)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/tests/data/interop/%s", tu_src(), rel);
    sola_dataset_opts o = {.ct = ct, .skip_bad = skip_bad};
    sola_dataset *d = NULL;
    sola_err e = {0};
    if (sola_dataset_open_ex(p, &o, &d, &e))
        ck_abort_msg("%s: %s", rel, e.msg);
    return d;
}

/* The error of opening REL, which must fail. */
static sola_err open_fails(const char *rel, int ct)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/tests/data/interop/%s", tu_src(), rel);
    sola_dataset_opts o = {.ct = ct};
    sola_dataset *d = NULL;
    sola_err e = {0};
    ck_assert_int_lt(sola_dataset_open_ex(p, &o, &d, &e), 0);
    ck_assert_ptr_null(d);
    return e;
}

static void assert_has(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        ck_abort_msg("'%s' lacks '%s'", hay, needle);
}

/* Item i loads as [T, C] and a window of it equals the same rows of the load. */
static sola_array load_item(const sola_dataset *d, int i, int64_t T, int C)
{
    sola_array a;
    sola_err e = {0};
    if (sola_dataset_load(d, i, &a, &e))
        ck_abort_msg("%s", e.msg);
    ck_assert_int_eq(a.shape[0], T);
    ck_assert_int_eq(a.shape[1], C);
    ck_assert_int_eq(d->items[i].T, T);
    if (T >= 2) {
        float *w = malloc(sizeof(float) * 2 * (size_t)C);
        ck_assert_int_eq(sola_dataset_window(d, i, T - 2, 2, w, &e), 0);
        ck_assert_int_eq(memcmp(w, a.data + (T - 2) * C, sizeof(float) * 2 * (size_t)C), 0);
        free(w);
    }
    return a;
}

START_TEST(video_features_pairs_concatenate_rgb_flow_trimmed)
{
    sola_dataset *d = open_fx("vf_pairs", 0, 0);
    /* the _fps and _timestamps_ms siblings are not videos */
    ck_assert_int_eq(d->n, 2);
    ck_assert_str_eq(d->items[0].name, "v_a");
    ck_assert_str_eq(d->items[1].name, "v_b");
    ck_assert_int_eq(d->C, 12);
    ck_assert_str_eq(d->layout, "video_features rgb+flow");
    /* rgb has 7 snippets, flow 6: trimmed to 6; float64 converted */
    sola_array a = load_item(d, 0, 6, 12);
    ck_assert_float_eq(a.data[2 * 12 + 5], val(2, 5, 1));
    ck_assert_float_eq(a.data[2 * 12 + 6 + 5], val(2, 5, -1));
    sola_array_free(&a);
    a = load_item(d, 1, 5, 12);
    ck_assert_float_eq(a.data[4 * 12 + 11], val(4, 5, -2));
    sola_array_free(&a);
    char p[4096];
    assert_has(sola_dataset_path(d, 0, p, sizeof p), "v_a_rgb.npy+v_a_flow.npy");
    sola_dataset_free(d);
}
END_TEST

START_TEST(video_features_single_stream_named_by_video)
{
    sola_dataset *d = open_fx("vf_single", 0, 0);
    ck_assert_int_eq(d->n, 2);
    ck_assert_str_eq(d->items[0].name, "v_x");
    ck_assert_str_eq(d->items[0].file, "v_x_clip.npy");
    ck_assert_str_eq(d->items[1].name, "v_y");
    ck_assert_int_eq(d->C, 5);
    sola_array a = load_item(d, 1, 3, 5);
    ck_assert_float_eq(a.data[2 * 5 + 4], val(2, 4, 2));
    sola_array_free(&a);
    sola_dataset_free(d);
}
END_TEST

START_TEST(missing_and_corrupt_videos_are_named_and_skippable)
{
    /* strict: the lonely half is named with what is missing */
    sola_err e = open_fails("vf_missing", 0);
    assert_has(e.msg, "v_lonely_rgb.npy");
    assert_has(e.msg, "v_lonely_flow.npy");
    /* skip_bad: the good video stays, both bad ones are listed with reasons */
    sola_dataset *d = open_fx("vf_missing", 0, 1);
    ck_assert_int_eq(d->n, 1);
    ck_assert_str_eq(d->items[0].name, "v_a");
    ck_assert_int_eq(d->nskipped, 2);
    char all[2048] = "";
    for (int i = 0; i < d->nskipped; i++) {
        strcat(all, d->skipped[i]);
        strcat(all, "|");
        assert_has(d->skip_why[i], d->skipped[i]);
    }
    assert_has(all, "v_lonely|");
    assert_has(all, "v_bad|");
    char p[4096];
    snprintf(p, sizeof p, "%s/missing_files.txt", tmp);
    ck_assert_int_eq(sola_dataset_write_missing(d, p, &e), 0);
    char *s = tu_read(p, NULL);
    ck_assert_ptr_nonnull(s);
    assert_has(s, "v_bad\n");
    assert_has(s, "v_lonely\n");
    free(s);
    sola_dataset_free(d);
}
END_TEST

START_TEST(hdf5_one_dataset_per_video)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/tests/data/interop/tsp.h5", tu_src());
    ck_assert_int_eq(sola_h5_is_hdf5(p), 1);
    sola_dataset *d = open_fx("tsp.h5", 0, 0);
    ck_assert_str_eq(d->layout, "hdf5");
    /* "fps" (1-D) and "meta" (a group) are not videos */
    ck_assert_int_eq(d->n, 2);
    ck_assert_str_eq(d->items[1].name, "v_b");
    ck_assert_int_eq(d->C, 4);
    sola_array a = load_item(d, 1, 9, 4); /* float64 in the file */
    ck_assert_float_eq(a.data[7 * 4 + 3], val(7, 3, 2));
    sola_array_free(&a);
    assert_has(sola_dataset_path(d, 1, p, sizeof p), "tsp.h5[v_b]");
    sola_dataset_free(d);
}
END_TEST

START_TEST(hdf5_writer_round_trip_and_bad_names)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/out.h5", tmp);
    sola_h5w *w;
    sola_err e = {0};
    float x[6] = {1, 2, 3, 4, 5, 6};
    ck_assert_int_eq(sola_h5w_open(p, &w, &e), 0);
    ck_assert_int_eq(sola_h5w_put(w, "v_b", x, 3, 2, &e), 0);
    ck_assert_int_eq(sola_h5w_put(w, "v_a", x, 2, 3, &e), 0);
    ck_assert_int_eq(sola_h5w_put(w, "a/b", x, 2, 3, &e), SOLA_EINVAL);
    ck_assert_int_lt(sola_h5w_put(w, "v_a", x, 2, 3, &e), 0); /* duplicate */
    ck_assert_int_eq(sola_h5w_commit(w, &e), 0);
    sola_h5_entry *en;
    int n;
    ck_assert_int_eq(sola_h5_list(p, &en, &n, &e), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(en[0].name, "v_a");
    ck_assert_int_eq(en[1].shape[0], 3);
    sola_h5_list_free(en, n);
    sola_array a;
    ck_assert_int_eq(sola_h5_read(p, "v_b", &a, &e), 0);
    ck_assert_int_eq(memcmp(a.data, x, sizeof x), 0);
    sola_array_free(&a);
    ck_assert_int_eq(sola_h5_read(p, "nope", &a, &e), SOLA_ENOTFOUND);
    assert_has(e.msg, "nope");
    /* not HDF5 */
    snprintf(p, sizeof p, "%s/fake.h5", tmp);
    tu_write(p, "hello", 5);
    ck_assert_int_eq(sola_h5_list(p, &en, &n, &e), SOLA_EFORMAT);
    assert_has(e.msg, "not an HDF5 file");
}
END_TEST

START_TEST(bmn_csv_with_header_row)
{
    sola_dataset *d = open_fx("bmn_csv", 0, 0);
    ck_assert_str_eq(d->layout, "bmn csv");
    ck_assert_int_eq(d->n, 2);
    ck_assert_int_eq(d->C, 8);
    sola_array a = load_item(d, 0, 10, 8);
    ck_assert(fabsf(a.data[3 * 8 + 5] - val(3, 5, 1)) < 1e-6f);
    /* written back with the same header, read back the same */
    char p[4096], *hdr = NULL;
    snprintf(p, sizeof p, "%s/v_a.csv", tmp);
    sola_err e = {0};
    ck_assert_int_eq(sola_csv_save(p, "f0,f1,f2,f3,f4,f5,f6,f7", a.data, 10, 8, &e), 0);
    sola_array b;
    ck_assert_int_eq(sola_csv_load(p, &b, &hdr, &e), 0);
    ck_assert_str_eq(hdr, "f0,f1,f2,f3,f4,f5,f6,f7");
    ck_assert_int_eq(memcmp(a.data, b.data, sizeof(float) * 80), 0);
    free(hdr);
    sola_array_free(&a);
    sola_array_free(&b);
    sola_dataset_free(d);
}
END_TEST

START_TEST(bad_csv_names_line_and_column)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/x.csv", tmp);
    sola_array a;
    sola_err e = {0};
    tu_write(p, "a,b\n1,2\n3,x4\n", 13);
    ck_assert_int_eq(sola_csv_load(p, &a, NULL, &e), SOLA_EFORMAT);
    assert_has(e.msg, "x.csv:3: column 2");
    tu_write(p, "a,b\n1,2\n3\n", 10);
    ck_assert_int_eq(sola_csv_load(p, &a, NULL, &e), SOLA_EFORMAT);
    assert_has(e.msg, "x.csv:3: 1 values");
    tu_write(p, "a,b\n", 4);
    ck_assert_int_eq(sola_csv_load(p, &a, NULL, &e), SOLA_EFORMAT);
    assert_has(e.msg, "no data rows");
    tu_write(p, "a,b\r\n1,2\r\n\r\n", 12); /* CRLF and a blank last line are fine */
    ck_assert_int_eq(sola_csv_load(p, &a, NULL, &e), 0);
    ck_assert_int_eq(a.shape[0], 1);
    ck_assert_float_eq(a.data[1], 2.0f);
    sola_array_free(&a);
}
END_TEST

START_TEST(npz_feats_or_single_member)
{
    sola_dataset *d = open_fx("npz", 0, 0);
    ck_assert_int_eq(d->n, 2);
    sola_array a = load_item(d, 0, 5, 4); /* "feats" beside "fps" */
    ck_assert_float_eq(a.data[4 * 4 + 1], val(4, 1, 1));
    sola_array_free(&a);
    a = load_item(d, 1, 3, 4); /* the only member, deflated */
    ck_assert_float_eq(a.data[2 * 4 + 3], val(2, 3, 2));
    sola_array_free(&a);
    sola_dataset_free(d);
}
END_TEST

START_TEST(channel_first_with_layout_ct)
{
    sola_dataset *d = open_fx("ct", 1, 0);
    ck_assert_int_eq(d->C, 4);
    ck_assert_int_eq(d->ct, 1);
    sola_array a = load_item(d, 0, 9, 4);
    ck_assert_float_eq(a.data[8 * 4 + 3], val(8, 3, 1));
    sola_array_free(&a);
    sola_dataset_free(d);
    /* read time-major, the same files disagree on C and the odd one is named */
    sola_err e = open_fails("ct", 0);
    assert_has(e.msg, "disagree on the channel count");
}
END_TEST

START_TEST(files_disagreeing_on_c_are_named)
{
    sola_err e = open_fails("mixed_c", 0);
    ck_assert_int_eq(e.code, SOLA_ESHAPE);
    assert_has(e.msg, "m_odd.npy (C=6)");
    assert_has(e.msg, "C=4");
    /* skipping bad files does not hide a C mismatch */
    char p[4096];
    snprintf(p, sizeof p, "%s/tests/data/interop/mixed_c", tu_src());
    sola_dataset_opts o = {.skip_bad = 1};
    sola_dataset *d = NULL;
    ck_assert_int_eq(sola_dataset_open_ex(p, &o, &d, &e), SOLA_ESHAPE);
}
END_TEST

Suite *layouts_suite(void);
void layouts_cli_cases(TCase *tc); /* below */

Suite *layouts_suite(void)
{
    Suite *s = suite_create("layouts");
    TCase *tc = tcase_create("readers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, video_features_pairs_concatenate_rgb_flow_trimmed);
    tcase_add_test(tc, video_features_single_stream_named_by_video);
    tcase_add_test(tc, missing_and_corrupt_videos_are_named_and_skippable);
    tcase_add_test(tc, hdf5_one_dataset_per_video);
    tcase_add_test(tc, hdf5_writer_round_trip_and_bad_names);
    tcase_add_test(tc, bmn_csv_with_header_row);
    tcase_add_test(tc, bad_csv_names_line_and_column);
    tcase_add_test(tc, npz_feats_or_single_member);
    tcase_add_test(tc, channel_first_with_layout_ct);
    tcase_add_test(tc, files_disagreeing_on_c_are_named);
    suite_add_tcase(s, tc);
    TCase *cli = tcase_create("refine");
    tcase_add_checked_fixture(cli, setup, teardown);
    layouts_cli_cases(cli);
    suite_add_tcase(s, cli);
    return s;
}

/* ---- `sola refine` round trips ------------------------------------------------------- */

/* Runs sola in tmp with args (fixture paths as $SOLA_FX/...), stderr in tmp/err.txt;
 * returns its exit code. */
static int SOLA(const char *args)
{
    return tu_system("cd %s && export SOLA_FX=%s/tests/data/interop && "
                     "%s/sola %s 2>err.txt >out.txt", tmp, tu_src(), tu_bin(), args);
}

static void init_model(int C)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "init --dim %d --hidden 4 -o m%d.safetensors", C, C);
    ck_assert_int_eq(SOLA(cmd), 0);
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

/* OUT/NAME.npy is float32 [T, C] equal to the input (fresh models are the identity). */
static void check_npy(const char *rel, int64_t T, int64_t C, float v_last)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    size_t len;
    unsigned char *raw = tu_read(p, &len);
    ck_assert_ptr_nonnull(raw);
    ck_assert(memmem(raw, len, "'descr': '<f4'", 14) != NULL); /* float32 written */
    free(raw);
    sola_array a;
    sola_err e = {0};
    if (sola_npy_load(p, 0, &a, &e))
        ck_abort_msg("%s", e.msg);
    ck_assert_int_eq(a.ndim, 2);
    ck_assert_int_eq(a.shape[0], T);
    ck_assert_int_eq(a.shape[1], C);
    ck_assert(fabsf(a.data[T * C - 1] - v_last) < 1e-5f);
    sola_array_free(&a);
}

START_TEST(refine_video_features_pairs_keeps_names_and_t)
{
    init_model(12);
    ck_assert_int_eq(SOLA("refine -m m12.safetensors $SOLA_FX/vf_pairs -o out --h5-out o.h5"), 0);
    check_npy("out/v_a.npy", 6, 12, val(5, 5, -1));
    check_npy("out/v_b.npy", 5, 12, val(4, 5, -2));
    char p[4096];
    /* siblings are not videos: no v_a_fps refined, but the file is copied as it was */
    snprintf(p, sizeof p, "%s/out/v_a_fps.npy", tmp);
    size_t n1, n2;
    char *cp = tu_read(p, &n1);
    snprintf(p, sizeof p, "%s/tests/data/interop/vf_pairs/v_a_fps.npy", tu_src());
    char *orig = tu_read(p, &n2);
    ck_assert_ptr_nonnull(cp);
    ck_assert(n1 == n2 && !memcmp(cp, orig, n1));
    free(cp);
    free(orig);
    char *meta = slurp("out/refine_meta.json");
    assert_has(meta, "\"source_layout\": \"video_features rgb+flow\"");
    assert_has(meta, "\"C\": 12");
    assert_has(meta, "\"model\": \"m12.safetensors\"");
    free(meta);
    /* the HDF5 output is keyed by video */
    sola_h5_entry *en;
    int n;
    sola_err e = {0};
    snprintf(p, sizeof p, "%s/o.h5", tmp);
    ck_assert_int_eq(sola_h5_list(p, &en, &n, &e), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(en[1].name, "v_b");
    ck_assert_int_eq(en[1].shape[0], 5);
    ck_assert_int_eq(en[1].shape[1], 12);
    sola_h5_list_free(en, n);
}
END_TEST

START_TEST(refine_hdf5_to_folder_and_to_hdf5)
{
    init_model(4);
    ck_assert_int_eq(SOLA("refine -m m4.safetensors $SOLA_FX/tsp.h5 -o out"), 0);
    check_npy("out/v_a.npy", 6, 4, val(5, 3, 1));
    check_npy("out/v_b.npy", 9, 4, val(8, 3, 2));
    ck_assert_int_eq(SOLA("refine -m m4.safetensors $SOLA_FX/tsp.h5 -o r.h5"), 0);
    char p[4096];
    snprintf(p, sizeof p, "%s/r.h5", tmp);
    sola_array a;
    sola_err e = {0};
    ck_assert_int_eq(sola_h5_read(p, "v_b", &a, &e), 0);
    ck_assert_int_eq(a.shape[0], 9);
    ck_assert_float_eq(a.data[9 * 4 - 1], val(8, 3, 2));
    sola_array_free(&a);
    free(slurp("r.refine_meta.json"));
}
END_TEST

/* 1 if a library whose file name holds `name` is mapped into this process. */
static int mapped(const char *name)
{
    FILE *f = fopen("/proc/self/maps", "r"); /* size 0 to stat: read line by line */
    ck_assert_ptr_nonnull(f);
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, name) != NULL;
    fclose(f);
    return found;
}

/* libhdf5 is opened on first use (core/formats/h5io.c), not linked: a run that reads no
 * HDF5 file does not need it, and one that does names the library it could not load. */
START_TEST(hdf5_library_loaded_on_first_use)
{
    init_model(4);
    const char *no = "SOLA_DEBUG_HDF5_LIB=/nonexistent/libhdf5_missing.so.0";
    ck_assert_int_eq(tu_system("mkdir -p %s/npys", tmp), 0);
    float x[5 * 4];
    for (int t = 0; t < 5; t++)
        for (int c = 0; c < 4; c++)
            x[t * 4 + c] = val(t, c, 1);
    char p[4096];
    snprintf(p, sizeof p, "%s/npys/v.npy", tmp);
    sola_err e = {0};
    ck_assert_int_eq(sola_npy_save(p, x, 2, (int64_t[]){5, 4}, &e), 0);
    ck_assert_int_eq(tu_system("cd %s && %s %s/sola refine -m m4.safetensors npys -o outn "
                               "2>err.txt >out.txt", tmp, no, tu_bin()), 0);
    check_npy("outn/v.npy", 5, 4, val(4, 3, 1));
    ck_assert_int_eq(tu_system("cd %s && %s %s/sola refine -m m4.safetensors "
                               "%s/tests/data/interop/tsp.h5 -o outh 2>err.txt >out.txt", tmp,
                               no, tu_bin(), tu_src()), 1);
    char *err = slurp("err.txt");
    assert_has(err, "tsp.h5: the HDF5 library /nonexistent/libhdf5_missing.so.0 cannot be "
                    "loaded");
    free(err);
    /* this process links no libhdf5 either: mapped only once an HDF5 file is read (each
     * test runs in a child of its own, unless CK_FORK=no shares one process) */
    const char *fork = getenv("CK_FORK");
    if (!fork || strcmp(fork, "no"))
        ck_assert_msg(!mapped("libhdf5"), "libhdf5 is mapped before any HDF5 call");
    sola_h5_entry *en;
    int n;
    snprintf(p, sizeof p, "%s/tests/data/interop/tsp.h5", tu_src());
    ck_assert_int_eq(sola_h5_list(p, &en, &n, &e), 0);
    sola_h5_list_free(en, n);
    ck_assert(mapped("libhdf5"));
}
END_TEST

START_TEST(refine_channel_first_writes_channel_first)
{
    init_model(4);
    ck_assert_int_eq(SOLA("refine -m m4.safetensors $SOLA_FX/ct -o out --layout ct"), 0);
    check_npy("out/c_a.npy", 4, 9, val(8, 3, 1)); /* [C, T] as the input */
    char *meta = slurp("out/refine_meta.json");
    assert_has(meta, "\"layout\": \"ct\"");
    free(meta);
    /* without --layout ct the run stops and says why */
    ck_assert_int_eq(SOLA("refine -m m4.safetensors $SOLA_FX/ct -o out2"), 1);
    char *err = slurp("err.txt");
    assert_has(err, "disagree on the channel count");
    free(err);
    ck_assert_int_eq(SOLA("refine -m m4.safetensors $SOLA_FX/ct -o out2 --layout xy"), 2);
}
END_TEST

START_TEST(refine_csv_and_npz_keep_their_format)
{
    init_model(8);
    ck_assert_int_eq(SOLA("refine -m m8.safetensors $SOLA_FX/bmn_csv -o out"), 0);
    char p[4096], *hdr = NULL;
    snprintf(p, sizeof p, "%s/out/v_b.csv", tmp);
    sola_array a;
    sola_err e = {0};
    ck_assert_int_eq(sola_csv_load(p, &a, &hdr, &e), 0);
    ck_assert_str_eq(hdr, "f0,f1,f2,f3,f4,f5,f6,f7");
    ck_assert_int_eq(a.shape[0], 10);
    ck_assert(fabsf(a.data[79] - val(9, 7, 2)) < 1e-5f);
    free(hdr);
    sola_array_free(&a);
    init_model(4);
    ck_assert_int_eq(SOLA("refine -m m4.safetensors $SOLA_FX/npz -o zout"), 0);
    sola_npz z;
    snprintf(p, sizeof p, "%s/zout/v_a.npz", tmp);
    ck_assert_int_eq(sola_npz_open(p, &z, &e), 0);
    ck_assert_int_eq(sola_npz_find(&z, "feats"), 0);
    ck_assert_int_eq(sola_npz_read(&z, 0, 0, &a, &e), 0);
    ck_assert_int_eq(a.shape[0], 5);
    sola_array_free(&a);
    sola_npz_close(&z);
}
END_TEST

START_TEST(refine_skips_missing_videos_and_lists_them)
{
    init_model(12);
    ck_assert_int_eq(SOLA("refine -m m12.safetensors $SOLA_FX/vf_missing -o out"), 1);
    char *err = slurp("err.txt");
    assert_has(err, "skipped v_lonely");
    assert_has(err, "v_bad_flow.npy");
    free(err);
    check_npy("out/v_a.npy", 6, 12, val(5, 5, -1));
    char *miss = slurp("out/missing_files.txt");
    ck_assert_str_eq(miss, "v_bad\nv_lonely\n");
    free(miss);
    ck_assert_int_eq(SOLA("refine -m m12.safetensors $SOLA_FX/vf_missing -o out "
                          "--allow-missing"), 0);
    /* a clean run replaces the stale list by an empty one (OpenTAD opens it always) */
    ck_assert_int_eq(SOLA("refine -m m12.safetensors $SOLA_FX/vf_pairs -o out"), 0);
    miss = slurp("out/missing_files.txt");
    ck_assert_str_eq(miss, "");
    free(miss);
}
END_TEST

void layouts_cli_cases(TCase *tc)
{
    tcase_add_test(tc, refine_video_features_pairs_keeps_names_and_t);
    tcase_add_test(tc, refine_hdf5_to_folder_and_to_hdf5);
    tcase_add_test(tc, hdf5_library_loaded_on_first_use);
    tcase_add_test(tc, refine_channel_first_writes_channel_first);
    tcase_add_test(tc, refine_csv_and_npz_keep_their_format);
    tcase_add_test(tc, refine_skips_missing_videos_and_lists_them);
}

int main(void)
{
    return tu_run(layouts_suite());
}
