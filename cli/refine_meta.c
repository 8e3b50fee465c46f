/* refine_meta.c -- refine_meta.json and missing_files.txt (see refine_meta.h).
 *
 * Everything is held as jansson objects keyed by name, so adding the same video
 * twice (two shards listing one absent video) is harmless and merging is a union. */
#include "refine_meta.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fsutil.h"
#include "refine_meta_int.h"

static const char *names_str(int mode)
{
    return mode == CLI_NAMES_STRIP_V ? "strip-v" : "as-is";
}

cli_rmeta *cli_rmeta_new(int names_mode)
{
    cli_rmeta *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->names = names_mode;
    m->head = json_object();
    m->videos = json_object();
    m->skipped = json_object();
    m->inherited = json_object();
    m->absent = json_object();
    if (!m->head || !m->videos || !m->skipped || !m->inherited || !m->absent) {
        cli_rmeta_free(m);
        return NULL;
    }
    return m;
}

void cli_rmeta_free(cli_rmeta *m)
{
    if (!m)
        return;
    json_decref(m->head);
    json_decref(m->videos);
    json_decref(m->skipped);
    json_decref(m->inherited);
    json_decref(m->absent);
    free(m);
}

/* "version" of the model: its metadata, else the registry's file name
 * (models/M/3.safetensors -> 3), else null. New reference. */
static json_t *model_version(const sola_model *m, const char *mpath)
{
    const char *v = sola_model_meta(m, "version");
    if (v)
        return json_string(v);
    char stem[256];
    sola_stem(mpath, stem, sizeof stem);
    char *end;
    long n = strtol(stem, &end, 10);
    return stem[0] && !*end && n > 0 ? json_integer(n) : json_null();
}

int cli_rmeta_describe(cli_rmeta *m, const sola_model *model, const char *mpath,
                       const char *in, const sola_dataset *d, int ct, void *extra)
{
    json_t *j = m->head, *md = json_object(), *x = extra;
    if (!md) {
        json_decref(x);
        return SOLA_ENOMEM;
    }
    for (int i = 0; i < model->nmeta; i++)
        json_object_set_new(md, model->meta[i].key, json_string(model->meta[i].val));
    int rc = 0;
    rc |= json_object_set_new(j, "tool", json_string("sola refine"));
    rc |= json_object_set_new(j, "model", json_string(mpath));
    rc |= json_object_set_new(j, "model_version", model_version(model, mpath));
    rc |= json_object_set_new(j, "model_metadata", md);
    rc |= json_object_set_new(j, "C", json_integer(model->C));
    rc |= json_object_set_new(j, "hidden", json_integer(model->H));
    rc |= json_object_set_new(j, "source", json_string(in));
    rc |= json_object_set_new(j, "source_layout", json_string(d && d->layout ? d->layout
                                                                             : "npy"));
    rc |= json_object_set_new(j, "layout", json_string(ct ? "ct" : "tc"));
    rc |= json_object_set_new(j, "dtype", json_string("float32"));
    rc |= json_object_set_new(j, "T_and_stride",
                              json_string("unchanged (one refined row per input snippet)"));
    if (x && json_is_object(x))
        rc |= json_object_update(j, x);
    json_decref(x);
    return rc ? SOLA_ENOMEM : 0;
}

static json_t *num_or_null(double v)
{
    return v > 0 ? json_real(v) : json_null();
}

int cli_rmeta_video(cli_rmeta *m, const char *name, int64_t T, const cli_rmeta_grid *g)
{
    static const cli_rmeta_grid none;
    if (!g)
        g = &none;
    json_t *v = json_object(), *cp = json_array();
    if (!v || !cp) {
        json_decref(v);
        json_decref(cp);
        return SOLA_ENOMEM;
    }
    int rc = 0;
    for (int i = 0; i < 2 && g->copied[i]; i++)
        rc |= json_array_append_new(cp, json_string(g->copied[i]));
    rc |= json_object_set_new(v, "T", json_integer(T));
    rc |= json_object_set_new(v, "fps", num_or_null(g->fps));
    rc |= json_object_set_new(v, "fps_from", g->fps_from && g->fps > 0
                                                 ? json_string(g->fps_from) : json_null());
    rc |= json_object_set_new(v, "stride", num_or_null(g->stride));
    rc |= json_object_set_new(v, "frames", num_or_null(g->frames));
    rc |= json_object_set_new(v, "grid_from", g->grid_from && (g->stride > 0 || g->frames > 0)
                                                  ? json_string(g->grid_from) : json_null());
    rc |= json_object_set_new(v, "copied", cp);
    rc |= json_object_set_new(m->videos, name, v);
    return rc ? SOLA_ENOMEM : 0;
}

int cli_rmeta_skip(cli_rmeta *m, const char *name, const char *why)
{
    return json_object_set_new(m->skipped, name, json_string(why ? why : "")) ? SOLA_ENOMEM
                                                                              : 0;
}

int cli_rmeta_absent(cli_rmeta *m, const char *key)
{
    return json_object_set_new(m->absent, key, json_true()) ? SOLA_ENOMEM : 0;
}

int cli_rmeta_inherit(cli_rmeta *m, const char *list_path, int *n, sola_err *e)
{
    *n = 0;
    FILE *f = fopen(list_path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        return sola_errf(e, SOLA_EIO, "%s: %s", list_path, strerror(errno));
    }
    char line[4096];
    int rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        size_t l = strlen(line);
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
            line[--l] = 0;
        if (!l)
            continue;
        if (json_object_set_new(m->inherited, line, json_true()))
            rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", list_path);
        else
            (*n)++;
    }
    if (!rc && ferror(f))
        rc = sola_errf(e, SOLA_EIO, "%s: read error", list_path);
    fclose(f);
    return rc;
}

int cli_rmeta_nabsent(const cli_rmeta *m)
{
    return (int)json_object_size(m->absent);
}

int cli_rmeta_nvideos(const cli_rmeta *m)
{
    return (int)json_object_size(m->videos);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The sorted keys of an object (borrowed strings); *n gets the count. */
static const char **sorted_keys(json_t *o, size_t *n)
{
    *n = json_object_size(o);
    const char **k = malloc((*n + 1) * sizeof *k);
    if (!k)
        return NULL;
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) k[i++] = key;
    qsort(k, *n, sizeof *k, str_cmp);
    return k;
}

/* The lines of missing_files.txt, sorted and unique, as a JSON array (new ref). */
static json_t *missing_lines(const cli_rmeta *m)
{
    json_t *set = json_object(), *arr = json_array();
    const char *key;
    json_t *v;
    int rc = !set || !arr;
    json_object_foreach(m->skipped, key, v) {
        const char *n = m->names == CLI_NAMES_STRIP_V && !strncmp(key, "v_", 2) && key[2]
                            ? key + 2 : key;
        rc |= json_object_set(set, n, json_true());
    }
    json_object_foreach(m->inherited, key, v) rc |= json_object_set(set, key, json_true());
    json_object_foreach(m->absent, key, v) rc |= json_object_set(set, key, json_true());
    size_t n = 0;
    const char **k = rc ? NULL : sorted_keys(set, &n);
    for (size_t i = 0; k && i < n; i++)
        rc |= json_array_append_new(arr, json_string(k[i]));
    free(k);
    json_decref(set);
    if (rc || (n && !k)) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

int cli_rmeta_nmissing(const cli_rmeta *m)
{
    json_t *a = missing_lines(m);
    int n = a ? (int)json_array_size(a) : -1;
    json_decref(a);
    return n;
}

/* A sorted JSON array of the keys of o (new ref). */
static json_t *key_array(json_t *o)
{
    size_t n;
    const char **k = sorted_keys(o, &n);
    json_t *a = json_array();
    int rc = !k || !a;
    for (size_t i = 0; !rc && i < n; i++)
        rc |= json_array_append_new(a, json_string(k[i]));
    free(k);
    if (rc) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static json_t *build(const cli_rmeta *m, json_t *missing)
{
    json_t *j = json_deep_copy(m->head), *pv = json_object(), *sk = json_array();
    int rc = !j || !pv || !sk;
    size_t n = 0;
    const char **k = rc ? NULL : sorted_keys(m->videos, &n);
    rc |= !k;
    for (size_t i = 0; !rc && i < n; i++)
        rc |= json_object_set(pv, k[i], json_object_get(m->videos, k[i]));
    free(k);
    k = rc ? NULL : sorted_keys(m->skipped, &n);
    rc |= !k;
    for (size_t i = 0; !rc && i < n; i++) {
        json_t *s = json_pack("{s:s, s:O}", "name", k[i], "why",
                              json_object_get(m->skipped, k[i]));
        rc |= !s || json_array_append_new(sk, s);
    }
    free(k);
    if (rc) {
        json_decref(j);
        json_decref(pv);
        json_decref(sk);
        return NULL;
    }
    json_object_set_new(j, "videos", json_integer((json_int_t)json_object_size(m->videos)));
    json_object_set_new(j, "per_video", pv);
    json_object_set_new(j, "skipped", sk);
    json_object_set_new(j, "missing_names", json_string(names_str(m->names)));
    json_object_set_new(j, "missing_inherited", key_array(m->inherited));
    json_object_set_new(j, "missing_annotated", key_array(m->absent));
    json_object_set(j, "missing_files", missing);
    return j;
}

int cli_rmeta_write(const cli_rmeta *m, const char *meta_path, const char *missing_path,
                    sola_err *e)
{
    const char *what = meta_path ? meta_path : missing_path ? missing_path : "refine_meta";
    json_t *miss = missing_lines(m);
    if (!miss)
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", what);
    int rc = 0;
    if (meta_path) {
        json_t *j = build(m, miss);
        char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        json_decref(j);
        if (!s) {
            json_decref(miss);
            return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", meta_path);
        }
        size_t n = strlen(s);
        s[n] = '\n'; /* over the NUL: the file ends with a newline */
        rc = sola_write_atomic(meta_path, s, n + 1, e);
        free(s);
    }
    if (!rc && missing_path) {
        size_t len = 0, nm = json_array_size(miss);
        for (size_t i = 0; i < nm; i++)
            len += strlen(json_string_value(json_array_get(miss, i))) + 1;
        char *buf = malloc(len + 1), *p = buf;
        if (!buf) {
            rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", missing_path);
        } else {
            for (size_t i = 0; i < nm; i++)
                p += sprintf(p, "%s\n", json_string_value(json_array_get(miss, i)));
            rc = sola_write_atomic(missing_path, buf, len, e);
            free(buf);
        }
    }
    json_decref(miss);
    return rc;
}

/* ---- parts of a sharded run ---------------------------------------------------------- */

/* Fields build() adds; everything else is run-level. */
static int is_collection(const char *k)
{
    static const char *const ks[] = {"videos", "per_video", "skipped", "missing_names",
                                      "missing_inherited", "missing_annotated",
                                      "missing_files"};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++)
        if (!strcmp(k, ks[i]))
            return 1;
    return 0;
}

static int set_all(json_t *dst, json_t *names)
{
    size_t i;
    json_t *v;
    int rc = 0;
    json_array_foreach(names, i, v) {
        if (json_is_string(v))
            rc |= json_object_set_new(dst, json_string_value(v), json_true());
    }
    return rc;
}

int cli_rmeta_load(const char *meta_path, cli_rmeta **out, sola_err *e)
{
    *out = NULL;
    json_error_t je;
    json_t *j = json_load_file(meta_path, 0, &je);
    if (!j)
        return sola_errf(e, SOLA_EFORMAT, "%s: line %d: %s", meta_path, je.line, je.text);
    json_t *names = json_object_get(j, "missing_names"), *pv = json_object_get(j, "per_video");
    const char *nm = json_string_value(names);
    if (!json_is_object(j) || !json_is_object(pv) || !nm ||
        (strcmp(nm, "as-is") && strcmp(nm, "strip-v"))) {
        json_decref(j);
        return sola_errf(e, SOLA_EFORMAT, "%s: not a refine_meta.json of this version (no "
                         "\"per_video\" object or \"missing_names\")", meta_path);
    }
    cli_rmeta *m = cli_rmeta_new(strcmp(nm, "strip-v") ? CLI_NAMES_ASIS : CLI_NAMES_STRIP_V);
    int rc = !m;
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        if (!m)
            break;
        if (!is_collection(key))
            rc |= json_object_set(m->head, key, v);
    }
    if (m) {
        rc |= json_object_update(m->videos, pv);
        size_t i;
        json_array_foreach(json_object_get(j, "skipped"), i, v) {
            json_t *n = json_object_get(v, "name"), *w = json_object_get(v, "why");
            if (json_is_string(n))
                rc |= json_object_set_new(m->skipped, json_string_value(n),
                                          json_string(json_is_string(w) ? json_string_value(w)
                                                                        : ""));
        }
        rc |= set_all(m->inherited, json_object_get(j, "missing_inherited"));
        rc |= set_all(m->absent, json_object_get(j, "missing_annotated"));
    }
    json_decref(j);
    if (rc) {
        cli_rmeta_free(m);
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", meta_path);
    }
    *out = m;
    return 0;
}

int cli_rmeta_merge(cli_rmeta *into, const cli_rmeta *part, sola_err *e)
{
    if (into->names != part->names)
        return sola_errf(e, SOLA_EINVAL, "refine_meta parts disagree on \"missing_names\" "
                         "(%s vs %s)", names_str(into->names), names_str(part->names));
    if (!json_object_size(into->head)) {
        if (json_object_update(into->head, part->head))
            return sola_errf(e, SOLA_ENOMEM, "out of memory merging refine_meta");
    } else {
        static const char *const same[] = {"model", "C", "layout", "source_layout"};
        for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
            json_t *a = json_object_get(into->head, same[i]),
                   *b = json_object_get(part->head, same[i]);
            if (!json_equal(a, b) && (a || b))
                return sola_errf(e, SOLA_EINVAL, "refine_meta parts disagree on \"%s\"",
                                 same[i]);
        }
    }
    int rc = json_object_update(into->videos, part->videos) |
             json_object_update(into->skipped, part->skipped) |
             json_object_update(into->inherited, part->inherited) |
             json_object_update(into->absent, part->absent);
    return rc ? sola_errf(e, SOLA_ENOMEM, "out of memory merging refine_meta") : 0;
}

/* ---- paths -------------------------------------------------------------------------- */

void cli_rmeta_paths(const char *out, int h5_file, char *meta, char *missing, size_t n)
{
    if (!h5_file) {
        size_t l = strlen(out);
        while (l > 1 && out[l - 1] == '/')
            l--;
        snprintf(meta, n, "%.*s/refine_meta.json", (int)l, out);
        snprintf(missing, n, "%.*s/missing_files.txt", (int)l, out);
        return;
    }
    size_t l = strlen(out);
    const char *dot = strrchr(out, '.'), *sl = strrchr(out, '/');
    if (dot && (!sl || dot > sl))
        l = (size_t)(dot - out);
    snprintf(meta, n, "%.*s.refine_meta.json", (int)l, out);
    snprintf(missing, n, "%.*s.missing_files.txt", (int)l, out);
}
