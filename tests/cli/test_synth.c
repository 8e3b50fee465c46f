/* test_synth.c -- the synthetic dataset: reproducible by seed, labelled consistently,
 * readable as a dataset, written through the CLI with the right exit codes; the
 * realistic generator has the properties it claims (non-negative, low rank, a TSM
 * diagonal band) where the simple one has none of them, and each knob does what its
 * help says. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "npy.h"
#include "synth.h"
#include "testutil.h"

static sola_synth_opts small(uint64_t seed)
{
    sola_synth_opts o;
    sola_synth_default_simple(&o);
    o.videos = 6;
    o.C = 16;
    o.T = 60;
    o.seed = seed;
    return o;
}

START_TEST(same_seed_same_files_other_seed_other_files)
{
    char *a = tu_tmpdir(), *b = tu_tmpdir(), *c = tu_tmpdir();
    sola_synth_opts o = small(7);
    sola_err e = {0};
    ck_assert_msg(sola_synth_write(a, &o, NULL, NULL, &e) == 0, "%s", e.msg);
    ck_assert_msg(sola_synth_write(b, &o, NULL, NULL, &e) == 0, "%s", e.msg);
    o.seed = 8;
    ck_assert_msg(sola_synth_write(c, &o, NULL, NULL, &e) == 0, "%s", e.msg);
    int differ = 0;
    for (int i = 0; i < 6; i++) {
        char pa[4096], pb[4096], pc[4096];
        size_t la, lb, lc;
        for (int k = 0; k < 2; k++) {
            const char *sub = k ? "labels" : "features";
            snprintf(pa, sizeof pa, "%s/%s/video_%04d.npy", a, sub, i);
            snprintf(pb, sizeof pb, "%s/%s/video_%04d.npy", b, sub, i);
            snprintf(pc, sizeof pc, "%s/%s/video_%04d.npy", c, sub, i);
            char *xa = tu_read(pa, &la), *xb = tu_read(pb, &lb), *xc = tu_read(pc, &lc);
            ck_assert_ptr_nonnull(xa);
            ck_assert_ptr_nonnull(xb);
            ck_assert_ptr_nonnull(xc);
            ck_assert_uint_eq(la, lb);
            ck_assert_mem_eq(xa, xb, la);
            differ += la != lc || memcmp(xa, xc, la);
            free(xa), free(xb), free(xc);
        }
    }
    ck_assert_int_ge(differ, 6);
    tu_rmtree(a), tu_rmtree(b), tu_rmtree(c);
    free(a), free(b), free(c);
}
END_TEST

START_TEST(first_videos_do_not_depend_on_the_count)
{
    sola_synth_opts o = small(3);
    sola_err e = {0};
    float *dirs = sola_synth_directions(&o, &e);
    ck_assert_ptr_nonnull(dirs);
    float *x1, *x2;
    uint8_t *l1, *l2;
    int T1, T2;
    ck_assert_int_eq(sola_synth_video(&o, dirs, 2, &x1, &l1, &T1, &e), 0);
    o.videos = 500;
    ck_assert_int_eq(sola_synth_video(&o, dirs, 2, &x2, &l2, &T2, &e), 0);
    ck_assert_int_eq(T1, T2);
    ck_assert_mem_eq(x1, x2, (size_t)T1 * o.C * sizeof(float));
    ck_assert_mem_eq(l1, l2, (size_t)T1);
    free(x1), free(x2), free(l1), free(l2), free(dirs);

    /* The low-rank noise model is seeded the same way, and is a different model. */
    o.noise_rank = 4;
    o.mean = 1.f;
    dirs = sola_synth_directions(&o, &e);
    ck_assert_int_eq(sola_synth_video(&o, dirs, 2, &x1, &l1, &T1, &e), 0);
    ck_assert_int_eq(sola_synth_video(&o, dirs, 2, &x2, &l2, &T2, &e), 0);
    ck_assert_mem_eq(x1, x2, (size_t)T1 * o.C * sizeof(float));
    free(x2), free(l2);
    o.noise_rank = 0;
    ck_assert_int_eq(sola_synth_video(&o, dirs, 2, &x2, &l2, &T2, &e), 0);
    ck_assert_int_eq(T1, T2);
    ck_assert(memcmp(x1, x2, (size_t)T1 * o.C * sizeof(float)) != 0);
    free(x1), free(x2), free(l1), free(l2), free(dirs);
    o.noise_rank = o.C + 1;
    ck_assert_ptr_null(sola_synth_directions(&o, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "noise rank"));
}
END_TEST

/* Lengths vary in [T/2, 3T/2], there is action and background, and action snippets
 * lie along their class direction (so the labels describe the features). */
START_TEST(videos_have_varied_lengths_and_labelled_segments)
{
    sola_synth_opts o = small(11);
    o.videos = 40;
    o.noise = 0.f;
    o.video_offset = 0.f;
    sola_err e = {0};
    float *dirs = sola_synth_directions(&o, &e);
    int tmin = 1 << 30, tmax = 0;
    long fg = 0, all = 0;
    for (int i = 0; i < o.videos; i++) {
        float *x;
        uint8_t *l;
        int T;
        ck_assert_int_eq(sola_synth_video(&o, dirs, i, &x, &l, &T, &e), 0);
        ck_assert_int_ge(T, o.T / 2);
        ck_assert_int_le(T, o.T + o.T / 2);
        tmin = T < tmin ? T : tmin;
        tmax = T > tmax ? T : tmax;
        for (int t = 0; t < T; t++) {
            ck_assert_int_le(l[t], o.classes);
            const float *u = dirs + (size_t)(l[t] ? l[t] - 1 : o.classes) * o.C;
            double dot = 0;
            for (int c = 0; c < o.C; c++)
                dot += (double)x[(size_t)t * o.C + c] * u[c];
            ck_assert(l[t] ? dot >= 0.74 : (dot > 0.49 && dot < 0.51));
            fg += l[t] != 0;
            all++;
        }
        free(x), free(l);
    }
    ck_assert_int_lt(tmin + 10, tmax);
    ck_assert(fg > all / 5 && fg < all * 4 / 5);
    free(dirs);
}
END_TEST

START_TEST(written_folder_is_a_dataset_with_matching_labels)
{
    char *dir = tu_tmpdir();
    sola_synth_opts o = small(5);
    sola_err e = {0};
    ck_assert_int_eq(sola_synth_write(dir, &o, NULL, NULL, &e), 0);
    char p[4096];
    snprintf(p, sizeof p, "%s/features", dir);
    sola_dataset *d;
    ck_assert_msg(sola_dataset_open(p, &d, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(d->n, 6);
    ck_assert_int_eq(d->C, 16);
    for (int i = 0; i < d->n; i++) {
        snprintf(p, sizeof p, "%s/labels/%s.npy", dir, d->items[i].name);
        sola_array l;
        ck_assert_msg(sola_npy_load(p, SOLA_NPY_LABELS, &l, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(l.ndim, 1);
        ck_assert_int_eq(l.shape[0], d->items[i].T);
        for (int64_t t = 0; t < l.shape[0]; t++)
            ck_assert(l.data[t] == 0.f || l.data[t] == 1.f);
        sola_array_free(&l);
    }
    sola_dataset_free(d);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- the realistic generator ---------------------------------------------------- */

typedef struct stats {
    float min;
    double band;  /* mean cosine of snippets 1 apart minus 32 apart, within videos */
    double top20; /* share of the variance in the top 20 principal components */
} stats;

/* Eigenvalues of the symmetric n x n matrix a (destroyed) into ev, by cyclic Jacobi. */
static void sym_eigvals(double *a, int n, double *ev)
{
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++)
                off += a[p * n + q] * a[p * n + q];
        if (off < 1e-22)
            break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (fabs(apq) < 1e-300)
                    continue;
                double th = (a[q * n + q] - a[p * n + p]) / (2 * apq);
                double t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) { /* columns p, q */
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { /* rows p, q */
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
    }
    for (int i = 0; i < n; i++)
        ev[i] = a[i * n + i];
}

static int desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static double cosine(const float *a, const float *b, int C)
{
    double d = 0, na = 0, nb = 0;
    for (int c = 0; c < C; c++)
        d += (double)a[c] * b[c], na += (double)a[c] * a[c], nb += (double)b[c] * b[c];
    return d / (sqrt(na * nb) + 1e-12);
}

static stats measure(const sola_synth_opts *o)
{
    sola_err e = {0};
    float *dirs = sola_synth_directions(o, &e);
    ck_assert_msg(dirs != NULL, "%s", e.msg);
    const int C = o->C;
    stats st = {INFINITY, 0, 0};
    double *mean = calloc((size_t)C, sizeof *mean), *cov = calloc((size_t)C * C, sizeof *cov);
    double c1 = 0, c32 = 0;
    long n = 0, n1 = 0, n32 = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < o->videos; i++) {
            float *x;
            uint8_t *l;
            int T;
            ck_assert_int_eq(sola_synth_video(o, dirs, i, &x, &l, &T, &e), 0);
            for (int t = 0; t < T; t++) {
                const float *r = x + (size_t)t * C;
                for (int c = 0; c < C; c++) {
                    if (pass == 0) {
                        mean[c] += r[c];
                        st.min = r[c] < st.min ? r[c] : st.min;
                    } else {
                        for (int d = 0; d <= c; d++)
                            cov[c * C + d] += (r[c] - mean[c]) * (r[d] - mean[d]);
                    }
                }
                n += pass == 0;
                if (pass == 0 && t + 1 < T)
                    c1 += cosine(r, r + C, C), n1++;
                if (pass == 0 && t + 32 < T)
                    c32 += cosine(r, r + 32 * C, C), n32++;
            }
            if (pass == 0 && i == o->videos - 1)
                for (int c = 0; c < C; c++)
                    mean[c] /= (double)n;
            free(x), free(l);
        }
    for (int c = 0; c < C; c++)
        for (int d = 0; d < c; d++)
            cov[d * C + c] = cov[c * C + d];
    double *ev = malloc((size_t)C * sizeof *ev), tot = 0, top = 0;
    sym_eigvals(cov, C, ev);
    qsort(ev, (size_t)C, sizeof *ev, desc);
    for (int c = 0; c < C; c++)
        tot += ev[c], top += c < 20 ? ev[c] : 0;
    st.band = c1 / (double)n1 - c32 / (double)n32;
    st.top20 = top / tot;
    free(ev), free(mean), free(cov), free(dirs);
    return st;
}

START_TEST(realistic_data_is_nonnegative_low_rank_with_a_tsm_band)
{
    sola_synth_opts o;
    sola_synth_default(&o);
    o.videos = 12;
    o.C = 64;
    o.seed = 1;
    stats r = measure(&o);
    fprintf(stderr, "realistic: min %g, TSM cos(1) - cos(32) %.3f, top-20 PCs %.3f\n",
            (double)r.min, r.band, r.top20);
    ck_assert_msg(r.min >= 0.f, "a negative value %g", (double)r.min);
    ck_assert_msg(r.band > 0.2, "no diagonal band: %.3f", r.band);
    ck_assert_msg(r.top20 > 0.6, "top 20 of 64 PCs hold only %.3f", r.top20);

    /* The same measures tell the simple generator apart: they can fail. */
    sola_synth_default_simple(&o);
    o.videos = 12;
    o.C = 64;
    o.seed = 1;
    stats s = measure(&o);
    fprintf(stderr, "simple: min %g, TSM cos(1) - cos(32) %.3f, top-20 PCs %.3f\n",
            (double)s.min, s.band, s.top20);
    ck_assert(s.min < 0.f);
    ck_assert(s.band < 0.1);
    ck_assert(s.top20 < 0.5);
}
END_TEST

/* One knob at a time, everything else quiet, on one long segment. */
START_TEST(realistic_knobs_do_what_they_say)
{
    sola_synth_opts o;
    sola_synth_default(&o);
    o.videos = 1;
    o.C = 64;
    o.T = 400;
    o.seed = 4;
    o.noise = 0.f, o.iso_noise = 0.f, o.video_offset = 0.f, o.mean = 0.f;
    o.bias = 0.f;
    sola_err e = {0};
    float *dirs = sola_synth_directions(&o, &e), *x;
    uint8_t *l;
    int T;
    ck_assert_int_eq(sola_synth_video(&o, dirs, 0, &x, &l, &T, &e), 0);
    /* Find a segment of at least 12 snippets with background on both sides. */
    int s0 = -1, s1 = -1;
    for (int t = 1; t < T && s1 < 0; t++)
        if (l[t] && !l[t - 1])
            s0 = t;
        else if (s0 > 0 && !l[t] && l[t - 1] && t - s0 >= 12)
            s1 = t;
        else if (!l[t] && l[t - 1])
            s0 = -1;
    ck_assert_msg(s0 > 2 && s1 > 0, "no segment to look at");
    const int C = o.C;
    /* drift: the segment's first and last snippets point apart; without it alike */
    double turned = cosine(x + (size_t)s0 * C + 2 * C, x + (size_t)(s1 - 3) * C, C);
    /* blur: the step across the boundary is split over several snippets */
    double step_in = cosine(x + (size_t)(s0 - 1) * C, x + (size_t)s0 * C, C);
    free(x), free(l);
    o.drift = 0.f, o.blur = 0.f;
    ck_assert_int_eq(sola_synth_video(&o, dirs, 0, &x, &l, &T, &e), 0);
    double straight = cosine(x + (size_t)s0 * C + 2 * C, x + (size_t)(s1 - 3) * C, C);
    double hard_step = cosine(x + (size_t)(s0 - 1) * C, x + (size_t)s0 * C, C);
    free(x), free(l);
    fprintf(stderr, "drift: %.3f vs %.3f without; boundary: %.3f vs %.3f hard\n", turned,
            straight, step_in, hard_step);
    ck_assert(straight > 0.999 && turned < 0.95);
    ck_assert(hard_step < step_in - 0.1);

    /* ar: the lag-1 autocorrelation of the nuisance noise, read as the difference
     * between a noisy video and the same video without noise (the draws are the same),
     * projected on the first nuisance direction, follows the knob */
    sola_synth_opts q = o;
    q.noise_rank = 4, q.T = 2000;
    double corr[2];
    const float *nb = NULL;
    for (int k = 0; k < 2; k++) {
        q.ar = k ? 0.9f : 0.f;
        free(dirs);
        dirs = sola_synth_directions(&q, &e);
        nb = dirs + (size_t)(sola_synth_ndirs(&q) - q.noise_rank) * C;
        float *x0;
        q.noise = 0.f;
        ck_assert_int_eq(sola_synth_video(&q, dirs, 0, &x0, &l, &T, &e), 0);
        free(l);
        q.noise = 0.05f;
        ck_assert_int_eq(sola_synth_video(&q, dirs, 0, &x, &l, &T, &e), 0);
        double *z = malloc((size_t)T * sizeof *z), m = 0, num = 0, den = 0;
        for (int t = 0; t < T; t++) {
            z[t] = 0;
            for (int c = 0; c < C; c++)
                z[t] += (double)(x[(size_t)t * C + c] - x0[(size_t)t * C + c]) * nb[c];
            m += z[t] / T;
        }
        for (int t = 0; t < T; t++)
            den += (z[t] - m) * (z[t] - m), num += t + 1 < T ? (z[t] - m) * (z[t + 1] - m) : 0;
        corr[k] = num / den;
        free(x), free(x0), free(l), free(z);
    }
    fprintf(stderr, "lag-1 autocorrelation: %.3f at ar 0, %.3f at ar 0.9\n", corr[0], corr[1]);
    ck_assert(fabs(corr[0]) < 0.15 && corr[1] > 0.75);
    free(dirs);

    /* the realistic checks of its own knobs */
    o.ar = 1.f;
    ck_assert_ptr_null(sola_synth_directions(&o, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "ar"));
    o.ar = 0.5f, o.backgrounds = 0;
    ck_assert_ptr_null(sola_synth_directions(&o, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "backgrounds"));
}
END_TEST

START_TEST(cli_synth_exit_codes)
{
    char *dir = tu_tmpdir();
    ck_assert_int_eq(tu_system("%s/sola synth -o %s/s --videos 3 --dim 8 --length 30 --seed 2 "
                               ">/dev/null 2>&1", tu_bin(), dir), 0);
    char p[4096];
    snprintf(p, sizeof p, "%s/s/features/video_0002.npy", dir);
    size_t n;
    void *b = tu_read(p, &n);
    ck_assert_ptr_nonnull(b);
    free(b);
    ck_assert_int_eq(tu_system("%s/sola synth --videos 3 >/dev/null 2>&1", tu_bin()), 2);
    ck_assert_int_eq(tu_system("%s/sola synth -o %s/x --videos zero >/dev/null 2>&1", tu_bin(),
                               dir), 2);
    ck_assert_int_eq(tu_system("%s/sola synth -o /proc/nope/x >/dev/null 2>&1", tu_bin()), 1);
    /* --simple writes the simple generator's files, the default the realistic ones */
    ck_assert_int_eq(tu_system("%s/sola synth -o %s/q --simple --videos 1 --dim 8 --length 30 "
                               ">/dev/null 2>&1", tu_bin(), dir), 0);
    snprintf(p, sizeof p, "%s/q/features/video_0000.npy", dir);
    sola_array a;
    sola_err e = {0};
    ck_assert_int_eq(sola_npy_load(p, 0, &a, &e), 0);
    int neg = 0;
    for (int64_t i = 0; i < a.shape[0] * a.shape[1]; i++)
        neg += a.data[i] < 0;
    ck_assert_int_gt(neg, 0);
    sola_array_free(&a);
    snprintf(p, sizeof p, "%s/s/features/video_0000.npy", dir);
    ck_assert_int_eq(sola_npy_load(p, 0, &a, &e), 0);
    for (int64_t i = 0; i < a.shape[0] * a.shape[1]; i++)
        ck_assert(a.data[i] >= 0);
    sola_array_free(&a);
    ck_assert_int_eq(tu_system("%s/sola synth -o %s/x --ar 1 >/dev/null 2>&1", tu_bin(), dir), 2);
    ck_assert_int_eq(tu_system("%s/sola synth -o %s/x --blur -1 >/dev/null 2>&1", tu_bin(), dir),
                     2);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("synth");
    tcase_add_test(tc, same_seed_same_files_other_seed_other_files);
    tcase_add_test(tc, first_videos_do_not_depend_on_the_count);
    tcase_add_test(tc, videos_have_varied_lengths_and_labelled_segments);
    tcase_add_test(tc, written_folder_is_a_dataset_with_matching_labels);
    tcase_add_test(tc, realistic_data_is_nonnegative_low_rank_with_a_tsm_band);
    tcase_add_test(tc, realistic_knobs_do_what_they_say);
    tcase_add_test(tc, cli_synth_exit_codes);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
