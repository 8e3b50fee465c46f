/* test_refine_meta.c -- cli/refine_meta.c on its own: the two files beside a refined
 * dataset, and the merge of per-shard parts into the files one process writes (what a
 * sharded refine, --shard I/N, relies on). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refine_meta.h"
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

static char *path(const char *rel)
{
    static char p[4][4096];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmp, rel);
    return p[k];
}

static char *slurp(const char *rel)
{
    char *s = tu_read(path(rel), NULL);
    if (!s)
        ck_abort_msg("%s was not written", rel);
    return s;
}

/* A part as one shard writes it: its videos, its skips, the same inherited list. */
static cli_rmeta *part(const char *const *videos, const char *skip, int names)
{
    cli_rmeta *m = cli_rmeta_new(names);
    ck_assert_ptr_nonnull(m);
    for (int i = 0; videos[i]; i++) {
        cli_rmeta_grid g = {.fps = 30, .fps_from = "x_fps.npy", .stride = 4, .frames = 16,
                            .grid_from = "--stride/--frames"};
        ck_assert_int_eq(cli_rmeta_video(m, videos[i], 10 + videos[i][2] - 'a', &g), 0);
    }
    if (skip)
        ck_assert_int_eq(cli_rmeta_skip(m, skip, "corrupt"), 0);
    ck_assert_int_eq(cli_rmeta_absent(m, "annotated_only"), 0);
    return m;
}

START_TEST(parts_merge_into_what_one_process_writes)
{
    static const char *const a[] = {"v_b", "v_a", NULL}, *const b[] = {"v_c", NULL},
                             *const all[] = {"v_b", "v_a", "v_c", NULL};
    sola_err e = {0};
    /* one process */
    cli_rmeta *one = part(all, "v_x", CLI_NAMES_STRIP_V);
    ck_assert_int_eq(cli_rmeta_skip(one, "v_y", "corrupt"), 0);
    ck_assert_int_eq(cli_rmeta_write(one, path("one.json"), path("one.txt"), &e), 0);
    ck_assert_int_eq(cli_rmeta_nvideos(one), 3);
    ck_assert_int_eq(cli_rmeta_nmissing(one), 3);
    cli_rmeta_free(one);
    /* two shards, written and read back, merged in either order */
    cli_rmeta *p1 = part(a, "v_x", CLI_NAMES_STRIP_V), *p2 = part(b, "v_y", CLI_NAMES_STRIP_V);
    ck_assert_int_eq(cli_rmeta_write(p1, path("p1.json"), NULL, &e), 0);
    ck_assert_int_eq(cli_rmeta_write(p2, path("p2.json"), NULL, &e), 0);
    cli_rmeta_free(p1);
    cli_rmeta_free(p2);
    for (int order = 0; order < 2; order++) {
        cli_rmeta *m = cli_rmeta_new(CLI_NAMES_STRIP_V), *q1, *q2;
        ck_assert_int_eq(cli_rmeta_load(path(order ? "p2.json" : "p1.json"), &q1, &e), 0);
        ck_assert_int_eq(cli_rmeta_load(path(order ? "p1.json" : "p2.json"), &q2, &e), 0);
        ck_assert_int_eq(cli_rmeta_merge(m, q1, &e), 0);
        ck_assert_int_eq(cli_rmeta_merge(m, q2, &e), 0);
        ck_assert_int_eq(cli_rmeta_write(m, path("m.json"), path("m.txt"), &e), 0);
        char *x = slurp("one.json"), *y = slurp("m.json");
        if (strcmp(x, y))
            ck_abort_msg("merged:\n%s\none process:\n%s", y, x);
        free(x);
        free(y);
        x = slurp("one.txt");
        y = slurp("m.txt");
        ck_assert_str_eq(y, x);
        ck_assert_str_eq(y, "annotated_only\nx\ny\n");
        free(x);
        free(y);
        cli_rmeta_free(q1);
        cli_rmeta_free(q2);
        cli_rmeta_free(m);
    }
}
END_TEST

START_TEST(parts_that_disagree_are_refused)
{
    static const char *const a[] = {"v_a", NULL};
    sola_err e = {0};
    cli_rmeta *p1 = part(a, NULL, CLI_NAMES_ASIS), *p2 = part(a, NULL, CLI_NAMES_STRIP_V);
    ck_assert_int_eq(cli_rmeta_merge(p1, p2, &e), SOLA_EINVAL);
    ck_assert(strstr(e.msg, "missing_names") != NULL);
    cli_rmeta_free(p1);
    cli_rmeta_free(p2);
    ck_assert_int_eq(tu_write(path("bad.json"), "{\"videos\": 3}", 13), 0);
    cli_rmeta *m = NULL;
    ck_assert_int_eq(cli_rmeta_load(path("bad.json"), &m, &e), SOLA_EFORMAT);
    ck_assert_ptr_null(m);
    ck_assert(strstr(e.msg, "bad.json") != NULL);
}
END_TEST

START_TEST(inherited_list_lines_kept_verbatim)
{
    cli_rmeta *m = cli_rmeta_new(CLI_NAMES_STRIP_V);
    /* OpenTAD writes "\n".join(names): no final newline; CRLF from other tools */
    ck_assert_int_eq(tu_write(path("in.txt"), "v_kept\r\nb\n\na", 13), 0);
    int n = 0;
    sola_err e = {0};
    ck_assert_int_eq(cli_rmeta_inherit(m, path("in.txt"), &n, &e), 0);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(cli_rmeta_inherit(m, path("none.txt"), &n, &e), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(cli_rmeta_skip(m, "v_own", "x"), 0);
    ck_assert_int_eq(cli_rmeta_write(m, NULL, path("out.txt"), &e), 0);
    char *s = slurp("out.txt");
    ck_assert_str_eq(s, "a\nb\nown\nv_kept\n"); /* inherited names are not renamed */
    free(s);
    cli_rmeta_free(m);
}
END_TEST

/* Two shards of a real dataset (each refining its own videos) merge into what one
 * process notes for all of them. */
START_TEST(shard_masks_split_the_dataset)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/tests/data/interop/vf_missing", tu_src());
    sola_dataset_opts o = {.skip_bad = 1};
    sola_dataset *d = NULL;
    sola_err e = {0};
    ck_assert_int_eq(sola_dataset_open_ex(p, &o, &d, &e), 0);
    ck_assert_int_eq(d->n, 1); /* v_a; v_bad and v_lonely skipped at the scan */
    cli_rmeta *one = cli_rmeta_new(CLI_NAMES_ASIS), *s0 = cli_rmeta_new(CLI_NAMES_ASIS),
              *s1 = cli_rmeta_new(CLI_NAMES_ASIS);
    int w;
    const unsigned char none[1] = {0}, all[1] = {1};
    ck_assert_int_eq(cli_rmeta_collect(one, d, NULL, NULL, NULL, 5, &w, &e), 0);
    ck_assert_int_eq(cli_rmeta_collect(s0, d, none, NULL, NULL, 5, &w, &e), 0);
    ck_assert_int_eq(cli_rmeta_collect(s1, d, all, NULL, NULL, 5, &w, &e), 0);
    ck_assert_int_eq(cli_rmeta_nvideos(s0), 0);
    ck_assert_int_eq(cli_rmeta_nmissing(s0), 2); /* scan-time skips: every shard */
    ck_assert_int_eq(cli_rmeta_merge(s0, s1, &e), 0);
    ck_assert_int_eq(cli_rmeta_write(one, path("one.json"), path("one.txt"), &e), 0);
    ck_assert_int_eq(cli_rmeta_write(s0, path("m.json"), path("m.txt"), &e), 0);
    char *x = slurp("one.json"), *y = slurp("m.json");
    ck_assert_str_eq(y, x);
    free(x);
    free(y);
    x = slurp("m.txt");
    ck_assert_str_eq(x, "v_bad\nv_lonely\n");
    free(x);
    cli_rmeta_free(one);
    cli_rmeta_free(s0);
    cli_rmeta_free(s1);
    sola_dataset_free(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("refine_meta");
    TCase *tc = tcase_create("files");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, parts_merge_into_what_one_process_writes);
    tcase_add_test(tc, parts_that_disagree_are_refused);
    tcase_add_test(tc, inherited_list_lines_kept_verbatim);
    tcase_add_test(tc, shard_masks_split_the_dataset);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
