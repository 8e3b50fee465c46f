/* test_annotations.c -- ActionFormer/OpenTAD annotation JSON to snippet labels
 * (core/data/annotations.h) and `sola probe --annotations` on the committed fixture
 * tests/data/interop/ann (tests/ref/make_interop_fixtures.py). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "annotations.h"
#include "testutil.h"

static sola_annotations *load(const char *subset)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/tests/data/interop/ann/thumos.json", tu_src());
    sola_annotations *a = NULL;
    sola_err e = {0};
    if (sola_ann_load(p, subset, &a, &e))
        ck_abort_msg("%s", e.msg);
    return a;
}

static sola_err parse_fails(const char *json)
{
    sola_annotations *a = NULL;
    sola_err e = {0};
    ck_assert_int_lt(sola_ann_parse(json, strlen(json), "x.json", NULL, &a, &e), 0);
    ck_assert_ptr_null(a);
    return e;
}

static void assert_has(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        ck_abort_msg("'%s' lacks '%s'", hay, needle);
}

/* THUMOS I3D in ActionFormer: stride 4, 16 frames, offset 8, video at 30 fps.
 * g(t) = (30 t - 8) / 4. BaseballPitch [1.0, 2.0] s: g = 5.5 .. 13 -> snippets 6..13.
 * CricketBowling [1.5, 2.5] s: g = 9.25 .. 16.75 -> snippets 10..16.
 * [100, 110] s lies past the 27 snippets (4 s: (120 - 16) / 4 + 1 = 27). */
START_TEST(thumos_case_matches_hand_computed_labels)
{
    sola_annotations *a = load(NULL);
    ck_assert_int_eq(a->n, 3);
    ck_assert_int_eq(a->nclasses, 2);
    ck_assert_str_eq(a->classes[0], "BaseballPitch");
    ck_assert_str_eq(a->classes[1], "CricketBowling");
    int v = sola_ann_find(a, "video_validation_0000051");
    ck_assert_int_ge(v, 0);
    sola_ann_params p;
    sola_ann_params_default(&p);
    ck_assert(p.stride == 4 && p.frames == 16 && p.offset == 8);
    uint8_t hot[27 * 2], fg[27];
    sola_ann_report r;
    sola_err e = {0};
    ck_assert_int_eq(sola_ann_labels(a, v, 27, &p, hot, fg, &r, &e), 0);
    for (int i = 0; i < 27; i++) {
        ck_assert_msg(hot[i * 2] == (i >= 6 && i <= 13), "BaseballPitch at %d", i);
        ck_assert_msg(hot[i * 2 + 1] == (i >= 10 && i <= 16), "CricketBowling at %d", i);
        ck_assert_msg(fg[i] == (i >= 6 && i <= 16), "foreground at %d", i);
    }
    /* multi-hot where the two overlap */
    ck_assert(hot[11 * 2] && hot[11 * 2 + 1]);
    ck_assert_int_eq(r.outside, 1);
    ck_assert_int_eq(r.expected_T, 27);
    ck_assert_int_eq(r.mismatch, 0);
    sola_ann_free(a);
}
END_TEST

START_TEST(default_fps_clipping_and_length_warning)
{
    sola_annotations *a = load(NULL);
    int v = sola_ann_find(a, "video_validation_0000052"); /* no "fps" in the JSON */
    sola_ann_params p;
    sola_ann_params_default(&p);
    uint8_t fg[20];
    sola_ann_report r;
    sola_err e = {0};
    ck_assert_int_eq(sola_ann_labels(a, v, 20, &p, NULL, fg, &r, &e), SOLA_EINVAL);
    assert_has(e.msg, "video_validation_0000052");
    assert_has(e.msg, "fps");
    p.default_fps = 30;
    ck_assert_int_eq(sola_ann_labels(a, v, 20, &p, NULL, fg, &r, &e), 0);
    /* [0, 0.5] s: g = -2 .. 1.75 -> clipped to snippets 0..1 */
    ck_assert(fg[0] && fg[1] && !fg[2]);
    /* 2 s at 30 fps is 12 snippets; the file has 20 */
    ck_assert_int_eq(r.expected_T, 12);
    ck_assert_int_eq(r.mismatch, 1);
    /* within 2 snippets is not a mismatch */
    ck_assert_int_eq(sola_ann_labels(a, v, 14, &p, NULL, fg, &r, &e), 0);
    ck_assert_int_eq(r.mismatch, 0);
    /* a segment shorter than a stride still labels one snippet */
    static const char j[] = "{\"database\": {\"v\": {\"fps\": 30, \"annotations\": "
                            "[{\"label\": \"a\", \"segment\": [1.0, 1.05]}]}}}";
    sola_annotations *b;
    ck_assert_int_eq(sola_ann_parse(j, strlen(j), "j", NULL, &b, &e), 0);
    ck_assert_int_eq(sola_ann_labels(b, 0, 20, &p, NULL, fg, &r, &e), 0);
    int on = 0;
    for (int i = 0; i < 20; i++)
        on += fg[i];
    ck_assert_int_eq(on, 1);
    ck_assert_int_eq(fg[6], 1); /* g = 5.5 .. 5.875, nearest centre 6 */
    sola_ann_free(b);
    sola_ann_free(a);
}
END_TEST

START_TEST(subset_filter_ignores_case)
{
    sola_annotations *a = load("VALIDATION");
    ck_assert_int_eq(a->n, 2); /* "Validation" and "validation" */
    ck_assert_int_lt(sola_ann_find(a, "video_test_0000001"), 0);
    ck_assert_int_eq(a->nclasses, 2); /* classes do not depend on the subset */
    sola_ann_free(a);
    a = load("test");
    ck_assert_int_eq(a->n, 1);
    sola_ann_free(a);
}
END_TEST

START_TEST(bad_annotations_name_video_and_field)
{
    sola_err e = parse_fails("{\"database\": {\"v1\": {\"annotations\": "
                             "[{\"label\": \"a\", \"segment\": [3, 1]}]}}}");
    assert_has(e.msg, "v1");
    assert_has(e.msg, "[3, 1]");
    e = parse_fails("{\"database\": {\"v2\": {\"annotations\": [{\"label\": \"a\", "
                    "\"segment\": \"1-2\"}]}}}");
    assert_has(e.msg, "v2");
    assert_has(e.msg, "segment");
    e = parse_fails("{\"database\": {\"v3\": {\"fps\": -1}}}");
    assert_has(e.msg, "fps");
    e = parse_fails("{\"database\": [1, 2]}");
    assert_has(e.msg, "database");
    e = parse_fails("{\"database\": {\"v4\": {\"annotations\": [{\"segment\": [1, 2]}]}}}");
    assert_has(e.msg, "label");
    e = parse_fails("{\"database\": ");
    assert_has(e.msg, "x.json");
}
END_TEST


/* One video, one segment [s, e], fps, labelled at T snippets: first and last label. */
static void range_of(double s, double e, double fps, int64_t T, int64_t *first, int64_t *last,
                     sola_ann_report *r)
{
    sola_ann_seg seg = {s, e, 0};
    char *cls = "a";
    sola_ann_video v = {.name = "v", .subset = "", .duration = -1, .fps = fps,
                        .segs = &seg, .nseg = 1};
    sola_annotations a = {.videos = &v, .n = 1, .classes = &cls, .nclasses = 1, .path = "t"};
    sola_ann_params p;
    sola_ann_params_default(&p);
    uint8_t *fg = malloc((size_t)T);
    sola_err err = {0};
    ck_assert_int_eq(sola_ann_labels(&a, 0, T, &p, NULL, fg, r, &err), 0);
    *first = *last = -1;
    for (int64_t i = 0; i < T; i++)
        if (fg[i]) {
            if (*first < 0)
                *first = i;
            *last = i;
        }
    free(fg);
}

/* ceil / floor of n / d for d > 0, in integers. */
static int64_t iceil(int64_t n, int64_t d)
{
    return n >= 0 ? (n + d - 1) / d : -((-n) / d);
}

static int64_t ifloor(int64_t n, int64_t d)
{
    return n >= 0 ? n / d : -((-n + d - 1) / d);
}

/* Every two-decimal time of 0-200 s at 30, 25 and 29.97 fps against exact integer
 * arithmetic: g(k / 100 s) = (k * fps - 800) / 400 with fps in hundredths below. */
START_TEST(boundaries_on_a_centre_are_exact)
{
    static const int64_t fps100[] = {3000, 2500, 2997};
    int naive_wrong = 0;
    for (size_t f = 0; f < 3; f++) {
        double fps = fps100[f] / 100.0;
        for (int64_t k = 100; k <= 20000; k++) {
            double s = k / 100.0; /* the double JSON "33.2" parses to */
            int64_t first, last;
            sola_ann_report r;
            range_of(s, s + 5.0, fps, 3000, &first, &last, &r);
            /* g(s) = (k/100 * F/100 - 8) / 4 = (k F - 80000) / 40000 */
            int64_t want0 = iceil(k * fps100[f] - 80000, 40000);
            ck_assert_msg(first == want0, "start %.2f s at %.2f fps: snippet %lld, exact %lld",
                          s, fps, (long long)first, (long long)want0);
            range_of(0.5, s, fps, 3000, &first, &last, &r);
            int64_t want1 = ifloor(k * fps100[f] - 80000, 40000);
            ck_assert_msg(last == want1, "end %.2f s at %.2f fps: snippet %lld, exact %lld", s,
                          fps, (long long)last, (long long)want1);
            naive_wrong += (int64_t)ceil((s * fps - 8) / 4) != want0 ||
                           (int64_t)floor((s * fps - 8) / 4) != want1;
        }
    }
    /* the cases this guards against exist in this range (e.g. 33.2 s at 30 fps) */
    ck_assert_int_gt(naive_wrong, 100);
    int64_t first, last;
    sola_ann_report r;
    range_of(33.2, 34.0, 30, 3000, &first, &last, &r);
    ck_assert_int_eq(first, 247);
    ck_assert_int_eq(last, 253);
}
END_TEST

START_TEST(no_segment_inside_the_video_is_lost)
{
    /* 4 s at 30 fps, 27 snippets centred at (4 i + 8) / 30 s: 0.27 s .. 3.73 s */
    static const char j[] =
        "{\"database\": {\"v\": {\"duration\": 4.0, \"fps\": 30, \"annotations\": ["
        "{\"label\": \"a\", \"segment\": [0.05, 0.1]},"   /* before the first centre */
        "{\"label\": \"b\", \"segment\": [3.9, 3.95]},"   /* after the last one */
        "{\"label\": \"a\", \"segment\": [4.0, 4.5]}]}}}"; /* past the end: dropped */
    sola_annotations *a;
    sola_err e = {0};
    ck_assert_int_eq(sola_ann_parse(j, strlen(j), "j", NULL, &a, &e), 0);
    sola_ann_params p;
    sola_ann_params_default(&p);
    uint8_t hot[27 * 2], fg[27];
    sola_ann_report r;
    ck_assert_int_eq(sola_ann_labels(a, 0, 27, &p, hot, fg, &r, &e), 0);
    ck_assert(hot[0 * 2 + 0] && fg[0]);
    ck_assert(hot[26 * 2 + 1] && fg[26]);
    int on = 0;
    for (int i = 0; i < 27; i++)
        on += fg[i];
    ck_assert_int_eq(on, 2);
    ck_assert_int_eq(r.clamped, 2);
    ck_assert_int_eq(r.outside, 1);
    /* features shorter than the video: a segment in the uncovered tail labels the last
     * snippet instead of vanishing */
    ck_assert_int_eq(sola_ann_labels(a, 0, 20, &p, hot, fg, &r, &e), 0);
    ck_assert(hot[19 * 2 + 1]);
    ck_assert_int_eq(r.outside, 1);
    sola_ann_free(a);
}
END_TEST

START_TEST(ambiguous_is_ignored_as_opentad_does)
{
    static const char j[] =
        "{\"database\": {\"v\": {\"duration\": 4.0, \"fps\": 30, \"annotations\": ["
        "{\"label\": \"Ambiguous\", \"segment\": [1.0, 2.0]},"
        "{\"label\": \"HighJump\", \"segment\": [3.0, 3.5]}]}}}";
    sola_annotations *a;
    sola_err e = {0};
    ck_assert_int_eq(sola_ann_parse(j, strlen(j), "j", NULL, &a, &e), 0);
    ck_assert_int_eq(a->nclasses, 1); /* not a class */
    ck_assert_str_eq(a->classes[0], "HighJump");
    ck_assert_int_eq(a->videos[0].nignored, 1);
    sola_ann_params p;
    sola_ann_params_default(&p);
    uint8_t fg[27];
    sola_ann_report r;
    ck_assert_int_eq(sola_ann_labels(a, 0, 27, &p, NULL, fg, &r, &e), 0);
    ck_assert(!fg[8] && fg[23]); /* 1.5 s is background, 3.2 s HighJump */
    ck_assert_int_eq(r.ignored, 1);
    sola_ann_free(a);
    /* configurable: no ignored label, Ambiguous is a class like any other */
    ck_assert_int_eq(sola_ann_parse_ex(j, strlen(j), "j", NULL, NULL, &a, &e), 0);
    ck_assert_int_eq(a->nclasses, 2);
    ck_assert_int_eq(sola_ann_labels(a, 0, 27, &p, NULL, fg, &r, &e), 0);
    ck_assert(fg[8]);
    ck_assert_int_eq(r.ignored, 0);
    sola_ann_free(a);
}
END_TEST

START_TEST(fps_from_frames_over_duration)
{
    /* OpenTAD keeps "frame" (the frame count), not "fps": THUMOS mixes 25 and 30 fps */
    static const char j[] =
        "{\"database\": {"
        "\"v25\": {\"duration\": 30.0, \"frame\": 750, \"annotations\": []},"
        "\"v30\": {\"duration\": 10.0, \"frame\": 300, \"annotations\": ["
        "{\"label\": \"a\", \"segment\": [1.0, 2.0]}]},"
        "\"bmn\": {\"duration_second\": 10.0, \"duration_frame\": 250},"
        "\"both\": {\"fps\": 24, \"duration\": 10.0, \"frame\": 300}}}";
    sola_annotations *a;
    sola_err e = {0};
    ck_assert_int_eq(sola_ann_parse(j, strlen(j), "j", NULL, &a, &e), 0);
    const sola_ann_video *v = &a->videos[sola_ann_find(a, "v25")];
    ck_assert(v->fps == 25.0);
    ck_assert_str_eq(v->fps_from, "frame/duration");
    v = &a->videos[sola_ann_find(a, "bmn")];
    ck_assert(v->fps == 25.0);
    ck_assert_str_eq(v->fps_from, "duration_frame/duration_second");
    v = &a->videos[sola_ann_find(a, "both")]; /* an explicit fps wins */
    ck_assert(v->fps == 24.0);
    ck_assert_str_eq(v->fps_from, "fps");
    sola_ann_params p;
    sola_ann_params_default(&p);
    p.default_fps = 25; /* not used: the video has its own */
    uint8_t fg[72];
    sola_ann_report r;
    ck_assert_int_eq(sola_ann_labels(a, sola_ann_find(a, "v30"), 72, &p, NULL, fg, &r, &e), 0);
    ck_assert(r.fps == 30.0);
    ck_assert(!fg[5] && fg[6] && fg[13] && !fg[14]); /* 5.5 .. 13 as at 30 fps */
    ck_assert_int_eq(r.expected_T, 72);
    sola_ann_free(a);
    e = parse_fails("{\"database\": {\"v\": {\"frame\": 100, \"duration\": 0}}}");
    assert_has(e.msg, "\"frame\" and \"duration\"");
}
END_TEST

/* ---- sola probe --annotations ----------------------------------------------------- */

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

static int probe(const char *args)
{
    return tu_system("cd %s && export FX=%s/tests/data/interop/ann && %s/sola probe "
                     "--features $FX/feats --annotations $FX/thumos.json --epochs 2 %s "
                     "2>err.txt >out.txt", tmp, tu_src(), tu_bin(), args);
}

static char *slurp(const char *rel)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    char *s = tu_read(p, NULL);
    return s ? s : strdup("");
}

START_TEST(probe_with_annotations_labels_and_warns)
{
    /* the validation subset: 2 videos (one labelled with the default fps) */
    ck_assert_int_eq(probe("--subset validation --fps 30"), 0);
    char *out = slurp("out.txt"), *err = slurp("err.txt");
    assert_has(out, "1 train, 1 validation");
    /* video 52 has 20 snippets, its duration says 12 */
    assert_has(err, "video_validation_0000052");
    assert_has(err, "12");
    free(out);
    free(err);
    /* without a default fps the video lacking one is an error naming it */
    ck_assert_int_eq(probe("--subset validation"), 1);
    err = slurp("err.txt");
    assert_has(err, "video_validation_0000052");
    free(err);
    ck_assert_int_eq(probe("--subset validation --stride 0"), 2);
}
END_TEST

Suite *annotations_suite(void)
{
    Suite *s = suite_create("annotations");
    TCase *tc = tcase_create("labels");
    tcase_add_test(tc, thumos_case_matches_hand_computed_labels);
    tcase_add_test(tc, default_fps_clipping_and_length_warning);
    tcase_add_test(tc, subset_filter_ignores_case);
    tcase_add_test(tc, bad_annotations_name_video_and_field);
    tcase_add_test(tc, boundaries_on_a_centre_are_exact);
    tcase_add_test(tc, no_segment_inside_the_video_is_lost);
    tcase_add_test(tc, ambiguous_is_ignored_as_opentad_does);
    tcase_add_test(tc, fps_from_frames_over_duration);
    suite_add_tcase(s, tc);
    TCase *cli = tcase_create("probe");
    tcase_add_checked_fixture(cli, setup, teardown);
    tcase_add_test(cli, probe_with_annotations_labels_and_warns);
    suite_add_tcase(s, cli);
    return s;
}

int main(void)
{
    return tu_run(annotations_suite());
}
