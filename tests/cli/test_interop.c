/* test_interop.c -- interop round 2 (docs/interop.md): the layouts the peers' own
 * code writes or reads that round 1 missed, and what `sola refine` writes beside its
 * output for their loaders (missing_files.txt, refine_meta.json, copied siblings),
 * on the committed fixtures of tests/ref/make_interop_fixtures.py. The peers' loaders
 * themselves are emulated on real outputs by tests/interop/check_peers.py.
 *
 * Fixture values: val(t, c, s) = s * (t + c / 100). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

static void assert_has(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        ck_abort_msg("'%s' lacks '%s'", hay, needle);
}

static sola_dataset *open_opt(const char *rel, const sola_dataset_opts *o, sola_err *e)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/tests/data/interop/%s", tu_src(), rel);
    sola_dataset *d = NULL;
    sola_dataset_open_ex(p, o, &d, e);
    return d;
}

static sola_dataset *open_ok(const char *rel, const sola_dataset_opts *o)
{
    sola_err e = {0};
    sola_dataset *d = open_opt(rel, o, &e);
    if (!d)
        ck_abort_msg("%s: %s", rel, e.msg);
    return d;
}

static sola_array load(const sola_dataset *d, int i, int64_t T, int C)
{
    sola_array a;
    sola_err e = {0};
    if (sola_dataset_load(d, i, &a, &e))
        ck_abort_msg("%s", e.msg);
    ck_assert_int_eq(a.shape[0], T);
    ck_assert_int_eq(a.shape[1], C);
    return a;
}

/* ---- readers --------------------------------------------------------------------------- */

START_TEST(hdf5_one_group_per_video)
{
    sola_dataset *d = open_ok("anet_c3d.hdf5", NULL);
    ck_assert_str_eq(d->layout, "hdf5 (one group per video)");
    /* v_two holds two datasets: not a video */
    ck_assert_int_eq(d->n, 2);
    ck_assert_str_eq(d->items[0].name, "v_a");
    ck_assert_str_eq(d->items[0].file, "v_a/c3d_features");
    ck_assert_int_eq(d->C, 4);
    sola_array a = load(d, 1, 8, 4);
    ck_assert_float_eq(a.data[7 * 4 + 3], val(7, 3, 2));
    sola_array_free(&a);
    float w[8];
    sola_err e = {0};
    ck_assert_int_eq(sola_dataset_window(d, 1, 6, 2, w, &e), 0);
    ck_assert_float_eq(w[4], val(7, 0, 2));
    sola_dataset_free(d);
}
END_TEST

START_TEST(hdf5_rgb_flow_files_joined_in_pair_order)
{
    /* strict: v_c has no flow and is named with both files */
    sola_err e = {0};
    ck_assert_ptr_null(open_opt("gtad", NULL, &e));
    assert_has(e.msg, "'v_c'");
    assert_has(e.msg, "flow_val.h5");
    sola_dataset_opts o = {.skip_bad = 1};
    sola_dataset *d = open_ok("gtad", &o);
    ck_assert_str_eq(d->layout, "hdf5 rgb+flow files");
    ck_assert_int_eq(d->n, 2);
    ck_assert_int_eq(d->nskipped, 1);
    ck_assert_str_eq(d->skipped[0], "v_c");
    ck_assert_int_eq(d->C, 5);
    /* rgb (6 x 3) || flow (5 x 2), cut to 5 snippets */
    sola_array a = load(d, 0, 5, 5);
    ck_assert_int_eq(d->items[0].C1, 3);
    ck_assert_float_eq(a.data[4 * 5 + 2], val(4, 2, 1));
    ck_assert_float_eq(a.data[4 * 5 + 3], val(4, 0, -1));
    sola_array_free(&a);
    sola_dataset_free(d);
    /* flow,rgb as G-TAD joins them (gtad_lib/dataset.py) */
    o.flow_first = 1;
    d = open_ok("gtad", &o);
    a = load(d, 0, 5, 5);
    ck_assert_int_eq(d->items[0].C1, 2);
    ck_assert_float_eq(a.data[4 * 5 + 0], val(4, 0, -1));
    ck_assert_float_eq(a.data[4 * 5 + 4], val(4, 2, 1));
    sola_array_free(&a);
    sola_dataset_free(d);
}
END_TEST

START_TEST(video_features_pairs_in_flow_rgb_order)
{
    sola_dataset_opts o = {.flow_first = 1};
    sola_dataset *d = open_ok("vf_pairs", &o);
    sola_array a = load(d, 0, 6, 12);
    ck_assert_float_eq(a.data[2 * 12 + 5], val(2, 5, -1)); /* flow first */
    ck_assert_float_eq(a.data[2 * 12 + 6 + 5], val(2, 5, 1));
    sola_array_free(&a);
    sola_dataset_free(d);
}
END_TEST

START_TEST(single_streams_lose_their_video_features_key)
{
    /* r21d writes NAME_r21d.npy and nothing beside it: the video is still NAME */
    sola_dataset *d = open_ok("vf_r21d", NULL);
    ck_assert_int_eq(d->n, 2);
    ck_assert_str_eq(d->items[0].name, "v_a");
    ck_assert_str_eq(d->items[0].file, "v_a_r21d.npy");
    ck_assert_str_eq(d->stream, "r21d");
    ck_assert_str_eq(d->layout, "video_features single stream");
    sola_dataset_free(d);
    /* CLIP with siblings: the same names */
    d = open_ok("vf_single", NULL);
    ck_assert_str_eq(d->items[0].name, "v_x");
    ck_assert_str_eq(d->items[0].fps_file, "v_x_fps.npy");
    ck_assert_ptr_null(d->items[0].ts_file);
    ck_assert_str_eq(d->items[1].ts_file, "v_y_timestamps_ms.npy");
    sola_dataset_free(d);
}
END_TEST

START_TEST(siblings_give_the_time_grid)
{
    sola_dataset *d = open_ok("vf_pairs", NULL);
    sola_item_grid g;
    sola_err e = {0};
    ck_assert_int_eq(sola_layout_grid(d, 0, &g, &e), 0);
    ck_assert(fabs(g.fps - 25) < 1e-12);
    ck_assert(fabs(g.stride - 4) < 1e-12);  /* 160 ms at 25 fps */
    ck_assert(fabs(g.frames - 16) < 1e-12); /* first stamp at the 16th frame */
    ck_assert_int_eq(g.stamps, 7);
    ck_assert_int_eq(sola_layout_grid(d, 1, &g, &e), 0); /* fps only */
    ck_assert(fabs(g.fps - 30) < 1e-12);
    ck_assert(g.stride == 0 && g.frames == 0);
    sola_dataset_free(d);
    d = open_ok("vf_single", NULL); /* CLIP: one stamp per second from 0 */
    ck_assert_int_eq(sola_layout_grid(d, 1, &g, &e), 0);
    ck_assert(g.fps == 0 && g.stride == 0 && g.stamps == 3);
    sola_dataset_free(d);
}
END_TEST

START_TEST(pickles_are_refused_with_the_way_to_convert)
{
    sola_err e = {0};
    ck_assert_ptr_null(open_opt("pkl", NULL, &e));
    ck_assert_int_eq(e.code, SOLA_EUNSUP);
    assert_has(e.msg, "1 .pkl file");
    assert_has(e.msg, "does not unpickle");
    assert_has(e.msg, "pickle.load(open(f,'rb'))");
    assert_has(e.msg, "/tests/data/interop/pkl/*.pkl");
}
END_TEST

START_TEST(npy_scalars_only_when_asked)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/tests/data/interop/vf_pairs/v_a_fps.npy", tu_src());
    sola_array a;
    sola_err e = {0};
    ck_assert_int_eq(sola_npy_load(p, 0, &a, &e), SOLA_ESHAPE);
    assert_has(e.msg, "0-dimensional");
    ck_assert_int_eq(sola_npy_load(p, SOLA_NPY_SCALAR, &a, &e), 0);
    ck_assert_int_eq(a.ndim, 1);
    ck_assert_int_eq(a.shape[0], 1);
    ck_assert_float_eq(a.data[0], 25.0f);
    sola_array_free(&a);
}
END_TEST

/* ---- sola refine ------------------------------------------------------------------------ */

static int SOLA(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int SOLA(const char *fmt, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return tu_system("cd %s && export SOLA_FX=%s/tests/data/interop && "
                     "%s/sola %s 2>err.txt >out.txt", tmp, tu_src(), tu_bin(), args);
}

static void init_model(int C)
{
    ck_assert_int_eq(SOLA("init --dim %d --hidden 4 -o m%d.safetensors", C, C), 0);
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

static void put(const char *rel, const char *text)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    ck_assert_int_eq(tu_write(p, text, strlen(text)), 0);
}

static sola_array h5(const char *rel, const char *key)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    sola_array a;
    sola_err e = {0};
    if (sola_h5_read(p, key, &a, &e))
        ck_abort_msg("%s", e.msg);
    return a;
}

START_TEST(missing_list_always_written_merged_and_renamed)
{
    init_model(12);
    /* nothing skipped: an empty list all the same (OpenTAD opens it unconditionally) */
    ck_assert_int_eq(SOLA("refine -m m12.safetensors $SOLA_FX/vf_pairs -o a"), 0);
    char *s = slurp("a/missing_files.txt");
    ck_assert_str_eq(s, "");
    free(s);
    /* the input's own list is carried over (OpenTAD's names: annotation keys) */
    ck_assert_int_eq(tu_system("cp -r %s/tests/data/interop/vf_missing %s/in", tu_src(), tmp), 0);
    put("in/missing_files.txt", "gone_1\ngone_2");
    ck_assert_int_eq(SOLA("refine -m m12.safetensors in -o b --allow-missing"), 0);
    s = slurp("b/missing_files.txt");
    ck_assert_str_eq(s, "gone_1\ngone_2\nv_bad\nv_lonely\n");
    free(s);
    s = slurp("err.txt");
    assert_has(s, "2 names carried over");
    assert_has(s, "2 videos skipped (4 names in b/missing_files.txt)");
    free(s);
    /* ActivityNet: OpenTAD compares annotation keys without "v_" */
    ck_assert_int_eq(SOLA("refine -m m12.safetensors in -o c --allow-missing "
                          "--missing-names strip-v"), 0);
    s = slurp("c/missing_files.txt");
    ck_assert_str_eq(s, "bad\ngone_1\ngone_2\nlonely\n");
    free(s);
    s = slurp("c/refine_meta.json");
    assert_has(s, "\"missing_names\": \"strip-v\"");
    assert_has(s, "\"name\": \"v_lonely\"");
    assert_has(s, "\"missing_inherited\": [\n    \"gone_1\",\n    \"gone_2\"\n  ]");
    free(s);
    ck_assert_int_eq(SOLA("refine -m m12.safetensors in -o c --missing-names v"), 2);
}
END_TEST

START_TEST(refine_meta_records_each_videos_grid)
{
    init_model(12);
    ck_assert_int_eq(SOLA("refine -m m12.safetensors $SOLA_FX/vf_pairs -o a"), 0);
    char *s = slurp("a/refine_meta.json");
    assert_has(s, "\"v_a\": {\n      \"T\": 6,\n      \"fps\": 25.0,\n      \"fps_from\": "
                  "\"v_a_fps.npy\",\n      \"stride\": 4.0,\n      \"frames\": 16.0,\n      "
                  "\"grid_from\": \"v_a_timestamps_ms.npy\"");
    assert_has(s, "\"pair_order\": \"rgb,flow\"");
    free(s);
    /* the docs' ActionFormer grid (stride 4, 16 frames) agrees: no warning */
    ck_assert_int_eq(SOLA("refine -m m12.safetensors $SOLA_FX/vf_pairs -o b --stride 4 "
                          "--frames 16"), 0);
    s = slurp("err.txt");
    ck_assert_ptr_null(strstr(s, "warning"));
    free(s);
    /* v_b was extracted at 30 fps */
    ck_assert_int_eq(SOLA("refine -m m12.safetensors $SOLA_FX/vf_pairs -o b --fps 25"), 0);
    s = slurp("err.txt");
    assert_has(s, "warning: v_b: the features' own grid is not the declared one; "
                  "v_b_fps.npy says 30 fps, --fps 25");
    ck_assert_ptr_null(strstr(s, "warning: v_a"));
    free(s);
    /* video_features' I3D defaults are 64/64: a 16x wrong grid is named */
    ck_assert_int_eq(SOLA("refine -m m12.safetensors $SOLA_FX/vf_pairs -o c --stride 64 "
                          "--frames 64"), 0);
    s = slurp("err.txt");
    assert_has(s, "warning: v_a: the features' own grid is not the declared one; "
                  "v_a_timestamps_ms.npy gives 4 frames between snippets, --stride 64");
    ck_assert_ptr_null(strstr(s, "warning: v_b")); /* v_b has no timestamps */
    free(s);
    s = slurp("c/refine_meta.json");
    assert_has(s, "\"declared_grid\": {\n    \"fps\": null,\n    \"stride\": 64.0");
    assert_has(s, "\"grid_from\": \"--stride/--frames\""); /* v_b */
    free(s);
}
END_TEST

static void checksum_unchanged(const char *dir, const char *before)
{
    char *now = NULL;
    ck_assert_int_eq(tu_system("cd %s && md5sum %s/* > sums2.txt", tmp, dir), 0);
    now = slurp("sums2.txt");
    ck_assert_str_eq(now, before);
    free(now);
}

START_TEST(refuses_to_write_over_its_input)
{
    init_model(12);
    ck_assert_int_eq(tu_system("cp -r %s/tests/data/interop/vf_pairs %s/in && mkdir %s/sub && "
                               "ln -s ../in %s/sub/link", tu_src(), tmp, tmp, tmp), 0);
    ck_assert_int_eq(tu_system("cd %s && md5sum in/* > sums.txt", tmp), 0);
    char *before = slurp("sums.txt");
    const char *outs[] = {"in", "in/", "./in", "sub/../in", "sub/link", "in/v_a_rgb.npy"};
    for (size_t i = 0; i < sizeof outs / sizeof *outs; i++) {
        ck_assert_int_eq(SOLA("refine -m m12.safetensors in -o %s", outs[i]), 2);
        char *err = slurp("err.txt");
        assert_has(err, "refusing to write over the input");
        free(err);
    }
    checksum_unchanged("in", before);
    free(before);
    /* one file, and one HDF5 file */
    ck_assert_int_eq(SOLA("refine -m m12.safetensors in/v_a_rgb.npy -o in/../in/v_a_rgb.npy"), 2);
    ck_assert_int_eq(tu_system("cp %s/tests/data/interop/tsp.h5 %s/t.h5", tu_src(), tmp), 0);
    init_model(4);
    ck_assert_int_eq(SOLA("refine -m m4.safetensors t.h5 -o ./t.h5"), 2);
    ck_assert_int_eq(SOLA("refine -m m4.safetensors t.h5 -o o --h5-out t.h5"), 2);
}
END_TEST

START_TEST(hdf5_outputs_keep_groups_and_pairs)
{
    init_model(4);
    /* per-video groups come back as groups, in a folder that did not exist */
    ck_assert_int_eq(SOLA("refine -m m4.safetensors $SOLA_FX/anet_c3d.hdf5 "
                          "-o new/dir/c3d_sola.hdf5"), 0);
    sola_array a = h5("new/dir/c3d_sola.hdf5", "v_b/c3d_features");
    ck_assert_int_eq(a.shape[0], 8);
    ck_assert_float_eq(a.data[31], val(7, 3, 2));
    sola_array_free(&a);
    free(slurp("new/dir/c3d_sola.refine_meta.json"));
    char *s = slurp("new/dir/c3d_sola.missing_files.txt");
    ck_assert_str_eq(s, "");
    free(s);
    /* G-TAD rgb/flow files: the same files, each with its own channels */
    init_model(5);
    ck_assert_int_eq(SOLA("refine -m m5.safetensors $SOLA_FX/gtad -o g --allow-missing "
                          "--pair-order flow,rgb --h5-out joined.h5"), 0);
    a = h5("g/rgb_val.h5", "v_a");
    ck_assert_int_eq(a.shape[0], 5);
    ck_assert_int_eq(a.shape[1], 3);
    ck_assert_float_eq(a.data[4 * 3 + 2], val(4, 2, 1));
    sola_array_free(&a);
    a = h5("g/flow_val.h5", "v_a");
    ck_assert_int_eq(a.shape[1], 2);
    ck_assert_float_eq(a.data[4 * 2 + 1], val(4, 1, -1));
    sola_array_free(&a);
    a = h5("joined.h5", "v_a"); /* flow || rgb */
    ck_assert_int_eq(a.shape[1], 5);
    ck_assert_float_eq(a.data[4 * 5 + 0], val(4, 0, -1));
    sola_array_free(&a);
    s = slurp("g/missing_files.txt");
    ck_assert_str_eq(s, "v_c\n");
    free(s);
    s = slurp("g/refine_meta.json");
    assert_has(s, "\"pair_order\": \"flow,rgb\"");
    assert_has(s, "\"source_layout\": \"hdf5 rgb+flow files\"");
    free(s);
}
END_TEST

START_TEST(npz_keeps_its_other_members)
{
    init_model(4);
    ck_assert_int_eq(SOLA("refine -m m4.safetensors $SOLA_FX/npz -o z"), 0);
    char p[4096];
    snprintf(p, sizeof p, "%s/z/v_a.npz", tmp);
    sola_npz z;
    sola_err e = {0};
    ck_assert_int_eq(sola_npz_open(p, &z, &e), 0);
    ck_assert_int_eq(z.n, 2);
    int f = sola_npz_find(&z, "fps");
    ck_assert_int_ge(f, 0);
    void *img;
    size_t len;
    ck_assert_int_eq(sola_npz_member_image(&z, f, &img, &len, &e), 0);
    ck_assert(memmem(img, len, "'descr': '<f8'", 14) != NULL); /* copied as it was */
    free(img);
    sola_array a;
    ck_assert_int_eq(sola_npz_read(&z, sola_npz_find(&z, "feats"), 0, &a, &e), 0);
    ck_assert_int_eq(a.shape[0], 5);
    sola_array_free(&a);
    sola_npz_close(&z);
    /* one file in, one file out: the same */
    ck_assert_int_eq(SOLA("refine -m m4.safetensors $SOLA_FX/npz/v_a.npz -o one.npz"), 0);
    char *err = slurp("err.txt");
    assert_has(err, "v_a.npz[fps]: not [T, 4] features, copied as it is");
    free(err);
    snprintf(p, sizeof p, "%s/one.npz", tmp);
    ck_assert_int_eq(sola_npz_open(p, &z, &e), 0);
    ck_assert_int_eq(z.n, 2);
    ck_assert_int_eq(sola_npz_member_image(&z, sola_npz_find(&z, "fps"), &img, &len, &e), 0);
    ck_assert(memmem(img, len, "'descr': '<f8'", 14) != NULL);
    free(img);
    sola_npz_close(&z);
}
END_TEST

START_TEST(messages_that_point_the_right_way)
{
    /* an rgb-only folder given a model for rgb+flow: not a --layout ct hint */
    init_model(8);
    ck_assert_int_eq(SOLA("refine -m m8.safetensors $SOLA_FX/vf_r21d -o o"), 1);
    char *s = slurp("err.txt");
    assert_has(s, "given one stream");
    ck_assert_ptr_null(strstr(s, "--layout ct"));
    free(s);
    /* a .pkl input file */
    ck_assert_int_eq(SOLA("refine -m m8.safetensors $SOLA_FX/pkl/v_a.pkl -o o.npy"), 2);
    s = slurp("err.txt");
    assert_has(s, "pickled features are not read");
    assert_has(s, "n.save('");
    free(s);
    /* BMN's fixed-length csv: said once what it means */
    ck_assert_int_eq(SOLA("refine -m m8.safetensors $SOLA_FX/bmn_csv -o o"), 0);
    s = slurp("err.txt");
    assert_has(s, "every video has T=10");
    free(s);
    s = slurp("o/refine_meta.json");
    assert_has(s, "\"fixed_length\": 10");
    free(s);
    /* train --allow-missing counts the unreadable videos it skipped */
    init_model(12);
    ck_assert_int_eq(SOLA("train -m m12.safetensors $SOLA_FX/vf_missing --allow-missing "
                          "--epochs 1 --window 5 --positions 2 --start 1 --step 2 --batch 2 "
                          "-o t.safetensors"), 0);
    s = slurp("out.txt");
    assert_has(s, "2 unreadable");
    free(s);
}
END_TEST

static Suite *interop_suite(void)
{
    Suite *s = suite_create("interop");
    TCase *tc = tcase_create("readers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, hdf5_one_group_per_video);
    tcase_add_test(tc, hdf5_rgb_flow_files_joined_in_pair_order);
    tcase_add_test(tc, video_features_pairs_in_flow_rgb_order);
    tcase_add_test(tc, single_streams_lose_their_video_features_key);
    tcase_add_test(tc, siblings_give_the_time_grid);
    tcase_add_test(tc, pickles_are_refused_with_the_way_to_convert);
    tcase_add_test(tc, npy_scalars_only_when_asked);
    suite_add_tcase(s, tc);
    TCase *cli = tcase_create("refine");
    tcase_add_checked_fixture(cli, setup, teardown);
    tcase_add_test(cli, missing_list_always_written_merged_and_renamed);
    tcase_add_test(cli, refine_meta_records_each_videos_grid);
    tcase_add_test(cli, refuses_to_write_over_its_input);
    tcase_add_test(cli, hdf5_outputs_keep_groups_and_pairs);
    tcase_add_test(cli, npz_keeps_its_other_members);
    tcase_add_test(cli, messages_that_point_the_right_way);
    suite_add_tcase(s, cli);
    return s;
}

int main(void)
{
    return tu_run(interop_suite());
}
