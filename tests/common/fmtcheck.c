/* fmtcheck.c -- see fmtcheck.h. */
#include "fmtcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

json_t *fc_expected(void)
{
    char *p = tu_path("tests/data/formats/expected.json");
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    ck_assert_msg(j != NULL, "%s: %s", p, je.text);
    free(p);
    return j;
}

char *fc_fmt(const char *name)
{
    char rel[512];
    snprintf(rel, sizeof rel, "tests/data/formats/%s", name);
    return tu_path(rel);
}

char *fc_bad(const char *name)
{
    char rel[512];
    snprintf(rel, sizeof rel, "tests/data/malformed/%s", name);
    return tu_path(rel);
}

/* One JSON expected value: a number or "inf"/"-inf"/"nan". */
static float fc_value(const json_t *v)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "inf") == 0)
            return INFINITY;
        if (strcmp(s, "-inf") == 0)
            return -INFINITY;
        return NAN;
    }
    return (float)json_number_value(v);
}

void fc_check_values(const char *what, const float *got, size_t n, const json_t *vals)
{
    ck_assert_msg(json_array_size(vals) == n, "%s: %zu values, expected %zu", what, n,
                  json_array_size(vals));
    for (size_t i = 0; i < n; i++) {
        float want = fc_value(json_array_get(vals, i));
        if (isnan(want))
            ck_assert_msg(isnan(got[i]), "%s[%zu]: got %g, want nan", what, i, got[i]);
        else
            ck_assert_msg(got[i] == want && signbit(got[i]) == signbit(want),
                          "%s[%zu]: got %.9g, want %.9g", what, i, got[i], want);
    }
}

void fc_check_shape(const char *what, int ndim, const int64_t *shape, const json_t *js)
{
    ck_assert_msg((size_t)ndim == json_array_size(js), "%s: ndim %d, expected %zu", what, ndim,
                  json_array_size(js));
    for (int i = 0; i < ndim; i++)
        ck_assert_msg(shape[i] == json_integer_value(json_array_get(js, (size_t)i)),
                      "%s: dim %d is %lld, expected %lld", what, i, (long long)shape[i],
                      (long long)json_integer_value(json_array_get(js, (size_t)i)));
}

fc_case *fc_manifest(const char *parser, int *n)
{
    char *p = fc_bad("EXPECTED.txt");
    FILE *f = fopen(p, "r");
    ck_assert_msg(f != NULL, "cannot open %s", p);
    free(p);
    fc_case *cs = NULL;
    int k = 0, cap = 0;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        line[strcspn(line, "\n")] = 0;
        fc_case c;
        char *save = NULL;
        char *a = strtok_r(line, "\t", &save), *b = strtok_r(NULL, "\t", &save),
             *d = strtok_r(NULL, "\t", &save), *s = strtok_r(NULL, "", &save);
        ck_assert_msg(a && b && d && s, "malformed manifest line");
        snprintf(c.file, sizeof c.file, "%s", a);
        snprintf(c.parser, sizeof c.parser, "%s", b);
        snprintf(c.code, sizeof c.code, "%s", d);
        snprintf(c.substr, sizeof c.substr, "%s", s);
        if (parser && strcmp(parser, c.parser) != 0)
            continue;
        if (k == cap) {
            cap = cap ? 2 * cap : 64;
            cs = realloc(cs, (size_t)cap * sizeof *cs);
            ck_assert_ptr_nonnull(cs);
        }
        cs[k++] = c;
    }
    fclose(f);
    *n = k;
    return cs;
}

static int fc_code(const char *name)
{
    static const struct {
        const char *n;
        int c;
    } t[] = {{"EFORMAT", SOLA_EFORMAT}, {"EUNSUP", SOLA_EUNSUP}, {"ETOOBIG", SOLA_ETOOBIG},
             {"ESHAPE", SOLA_ESHAPE},   {"EIO", SOLA_EIO},       {"EINVAL", SOLA_EINVAL}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(t[i].n, name) == 0)
            return t[i].c;
    ck_abort_msg("unknown code %s in manifest", name);
    return 0;
}

void fc_check_error(const fc_case *c, int rc, const sola_err *e)
{
    ck_assert_msg(rc == fc_code(c->code), "%s: returned %d (%s), expected %s; message: %s", c->file,
                  rc, sola_strerror(rc), c->code, e->msg);
    ck_assert_msg(strstr(e->msg, c->file) != NULL, "%s: message does not name the file: %s",
                  c->file, e->msg);
    ck_assert_msg(strstr(e->msg, c->substr) != NULL, "%s: message lacks \"%s\": %s", c->file,
                  c->substr, e->msg);
}

int fc_have_numpy(const char *what)
{
    int ok = tu_system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
    if (!ok)
        tu_skip("numpy not installed (/usr/bin/python3 -c 'import numpy' failed; Debian: "
                "python3-numpy): %s not checked against numpy",
                what);
    return ok;
}
