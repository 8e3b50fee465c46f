/* test_registry.c -- server/registry.c and registry_ops.c in-process (linked from
 * solaserver, no HTTP, no libuv loop): the registry is built on a temporary data
 * directory and driven through registry.h, and its internals (registry_int.h) are read
 * to check exact reference counts and list states.
 *
 * Reference counting: the registry holds one reference to each model's active
 * version; a request holds one from reg_acquire to reg_release; a non-active version
 * asked for explicitly is also held by the keep list (REG_KEEP most recent).
 * Activation while a request holds the old version: the old one leaves the active
 * slot, stays loaded and listed as in use until released, then is freed. A rescan after
 * a model's directory was deleted drops the model from the lists while a request that
 * holds one of its versions keeps computing with it. Scans skip stray files (and say
 * so), fall back to the highest version when `active` names none, keep the previous
 * version serving when the new active file does not load, and serve the embedded
 * identity model when there is no model at all (never for a read-only store). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry.h"
#include "registry_int.h"
#include "testutil.h"

#define DIM 16
#define HID 32

/* ---- fixtures ------------------------------------------------------------------ */

typedef struct logs {
    int info, warn;
    char last[1024];
} logs;

static void on_log(void *arg, const char *level, const char *msg)
{
    logs *l = arg;
    if (!strcmp(level, "warn"))
        l->warn++;
    else
        l->info++;
    snprintf(l->last, sizeof l->last, "%s", msg);
}

/* A small model whose alpha[0] tells the versions apart (0.1 * tag). */
static void save_model(const char *path, int tag)
{
    sola_err e = {0};
    sola_model *m = sola_model_new(DIM, HID, 3, 1, 0, &e);
    ck_assert_ptr_nonnull(m);
    sola_model_init(m, (uint64_t)tag);
    m->alpha[0] = 0.1f * (float)tag;
    ck_assert_int_eq(sola_model_save(m, path, 0, &e), 0);
    sola_model_free(m);
}

static void mkdir_p(const char *root, const char *rel)
{
    ck_assert_int_eq(tu_system("mkdir -p '%s/%s'", root, rel), 0);
}

/* DATA/models/NAME/VERSION.safetensors with tag = version. */
static void put_version(const char *data, const char *name, int version)
{
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "models/%s", name);
    mkdir_p(data, rel);
    snprintf(path, sizeof path, "%s/models/%s/%d.safetensors", data, name, version);
    save_model(path, version);
}

static void write_text(const char *data, const char *rel, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", data, rel);
    ck_assert_int_eq(tu_write(path, text, strlen(text)), 0);
}

static char *read_text(const char *data, const char *rel)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", data, rel);
    size_t n;
    char *s = tu_read(path, &n);
    ck_assert_ptr_nonnull(s);
    return s;
}

static reg_model *find(reg *r, const char *name)
{
    reg_model *m = reg__find(r, name);
    ck_assert_msg(m != NULL, "model %s is not listed", name);
    return m;
}

static int ncached(const reg_model *m)
{
    int n = 0;
    for (const reg_ver *c = m->cache; c; c = c->next)
        n++;
    return n;
}

static float alpha_of(reg *r, reg_ver *v)
{
    sola_err e = {0};
    const sola_model *m = reg_get(r, v, &e);
    ck_assert_msg(m != NULL, "reg_get: %s", e.msg);
    return m->alpha[0];
}

/* ---- tests --------------------------------------------------------------------- */

START_TEST(embedded_model_without_data_dir)
{
    sola_err e = {0};
    reg *r = reg_new(NULL, 8, NULL, NULL, NULL, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    ck_assert_int_eq(reg_nmodels(r), 1);
    ck_assert_int_eq(reg_ready(r), 1);
    reg_model *m = find(r, REG_DEFAULT_NAME);
    ck_assert_int_eq(m->embedded, 1);
    ck_assert_int_eq(m->active_version, 1);
    ck_assert_int_eq(m->active->refs, 1); /* the registry's own */

    reg_ver *v = NULL;
    ck_assert_int_eq(reg_acquire(r, NULL, 0, &v, &e), 0); /* NULL: the only model */
    ck_assert_ptr_eq(v, m->active);
    ck_assert_int_eq(v->refs, 2);
    ck_assert_str_eq(reg_ver_name(v), REG_DEFAULT_NAME);
    ck_assert_int_eq(reg_ver_version(v), 1);
    const sola_model *md = reg_get(r, v, &e);
    ck_assert_ptr_nonnull(md);
    ck_assert_int_eq(md->C, 8);
    ck_assert_float_eq(md->alpha[0], 0.0f); /* identity */
    reg_release(r, v);
    ck_assert_int_eq(m->active->refs, 1);

    /* nowhere to store an upload */
    int conflict = -1;
    ck_assert_int_eq(reg_put(r, "m", 1, "/nonexistent", &conflict, &e), SOLA_EINVAL);
    ck_assert_int_eq(conflict, 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "without --data"));
    /* unknown names and versions */
    e = (sola_err){0};
    ck_assert_int_eq(reg_acquire(r, "nope", 0, &v, &e), SOLA_ENOTFOUND);
    ck_assert_ptr_null(v);
    ck_assert_ptr_nonnull(strstr(e.msg, "models: default"));
    e = (sola_err){0};
    ck_assert_int_eq(reg_acquire(r, REG_DEFAULT_NAME, 2, &v, &e), SOLA_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "versions: 1"));
    ck_assert_int_eq(m->active->refs, 1);
    reg_free(r);
}
END_TEST

START_TEST(scan_reads_versions_and_skips_stray_files)
{
    char *d = tu_tmpdir();
    put_version(d, "a", 1);
    put_version(d, "a", 2);
    put_version(d, "a", 10);
    write_text(d, "models/a/active", "2\n");
    put_version(d, "b", 3);
    write_text(d, "models/b/active", "7"); /* no version 7: the highest serves */
    mkdir_p(d, "models/empty");           /* no versions: not a model */
    mkdir_p(d, "models/bad name");        /* not a valid name */
    write_text(d, "models/a/x.safetensors", "junk");  /* not a version number */
    write_text(d, "models/a/01.safetensors", "junk"); /* leading zero */
    mkdir_p(d, "models/.hidden");

    logs l = {0};
    sola_err e = {0};
    reg *r = reg_new(d, DIM, NULL, on_log, &l, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    ck_assert_int_eq(reg_nmodels(r), 2);
    reg_model *a = find(r, "a"), *b = find(r, "b");
    ck_assert_int_eq(a->nver, 3);
    ck_assert_int_eq(a->versions[0], 1);
    ck_assert_int_eq(a->versions[1], 2);
    ck_assert_int_eq(a->versions[2], 10); /* numeric order, not by name */
    ck_assert_int_eq(a->active_version, 2);
    ck_assert_int_eq(a->active->refs, 1);
    ck_assert_int_eq(b->active_version, 3);
    ck_assert_int_eq(reg_nloaded(r), 2);
    /* x, 01, "bad name", b/active: four complaints; nothing else */
    ck_assert_int_eq(l.warn, 4);
    ck_assert_int_eq(l.info, 0);

    /* several models and no --default-model: a nameless request is ambiguous */
    reg_ver *v = NULL;
    ck_assert_int_eq(reg_acquire(r, NULL, 0, &v, &e), SOLA_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "several models"));

    /* a periodic (quiet) rescan of an unchanged directory: same reg_vers, no
     * complaint repeated, nothing loaded again */
    reg_ver *a_active = a->active;
    ck_assert_int_eq(reg_scan(r, 1, &e), 0);
    ck_assert_int_eq(l.warn, 4);
    ck_assert_ptr_eq(find(r, "a")->active, a_active);
    ck_assert_int_eq(a_active->refs, 1);
    /* an explicit one (SIGHUP) says it again */
    ck_assert_int_eq(reg_scan(r, 0, &e), 0);
    ck_assert_int_eq(l.warn, 8);
    reg_free(r);

    /* --default-model names the model of nameless requests */
    r = reg_new(d, DIM, "b", NULL, NULL, &e);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(reg_acquire(r, NULL, 0, &v, &e), 0);
    ck_assert_str_eq(reg_ver_name(v), "b");
    ck_assert_float_eq_tol(alpha_of(r, v), 0.3f, 1e-7f);
    reg_release(r, v);
    reg_free(r);
    tu_rmtree(d);
    free(d);
}
END_TEST

START_TEST(activation_while_a_request_holds_the_old_version)
{
    char *d = tu_tmpdir();
    put_version(d, "a", 1);
    put_version(d, "a", 2);
    write_text(d, "models/a/active", "1\n");
    sola_err e = {0};
    reg *r = reg_new(d, DIM, NULL, NULL, NULL, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    reg_model *a = find(r, "a");
    reg_ver *v1 = a->active;
    ck_assert_int_eq(v1->refs, 1);

    reg_ver *req = NULL;
    ck_assert_int_eq(reg_acquire(r, "a", 0, &req, &e), 0);
    ck_assert_ptr_eq(req, v1);
    ck_assert_int_eq(v1->refs, 2); /* registry + request */

    ck_assert_int_eq(reg_activate(r, "a", 2, &e), 0);
    char *act = read_text(d, "models/a/active");
    ck_assert_str_eq(act, "2\n");
    free(act);
    reg_ver *v2 = a->active;
    ck_assert_ptr_ne(v2, v1);
    ck_assert_int_eq(a->active_version, 2);
    ck_assert_int_eq(v2->cached, 0);
    /* v2: the registry's (it was the activation's request reference) and the keep
     * list's (reg_acquire of an explicit version keeps it) */
    ck_assert_int_eq(v2->refs, 2);
    ck_assert_ptr_eq(r->keep[0], v2);
    /* v1: only the request's now; still loaded, listed as in use */
    ck_assert_int_eq(v1->refs, 1);
    ck_assert_int_eq(v1->cached, 1);
    ck_assert_ptr_eq(a->cache, v1);
    ck_assert_int_eq(reg_nloaded(r), 2);
    json_t *desc = reg_describe(r, "a", &e);
    ck_assert_ptr_nonnull(desc);
    ck_assert_int_eq(json_integer_value(json_object_get(desc, "active")), 2);
    json_t *in_use = json_object_get(desc, "other_versions_in_use");
    ck_assert_int_eq(json_array_size(in_use), 1);
    ck_assert_int_eq(json_integer_value(json_array_get(in_use, 0)), 1);
    json_decref(desc);
    /* the request computes with the version it took */
    ck_assert_float_eq_tol(alpha_of(r, req), 0.1f, 1e-7f);

    /* a new request meanwhile gets v2; an explicit ?version=1 gets the same v1 */
    reg_ver *req2 = NULL, *old = NULL;
    ck_assert_int_eq(reg_acquire(r, "a", 0, &req2, &e), 0);
    ck_assert_ptr_eq(req2, v2);
    ck_assert_int_eq(v2->refs, 3);
    ck_assert_int_eq(reg_acquire(r, "a", 1, &old, &e), 0);
    ck_assert_ptr_eq(old, v1);
    ck_assert_int_eq(v1->refs, 3); /* two requests + the keep list */
    ck_assert_ptr_eq(r->keep[0], v1);
    ck_assert_ptr_eq(r->keep[1], v2);
    reg_release(r, old);
    reg_release(r, req2);
    ck_assert_int_eq(v2->refs, 2);

    /* activating the active version again changes nothing */
    ck_assert_int_eq(reg_activate(r, "a", 2, &e), 0);
    ck_assert_ptr_eq(a->active, v2);
    ck_assert_int_eq(v2->refs, 2);

    /* the first request ends: v1 is held by the keep list alone, still listed */
    reg_release(r, req);
    ck_assert_int_eq(v1->refs, 1);
    ck_assert_int_eq(ncached(a), 1);
    reg_free(r);
    tu_rmtree(d);
    free(d);
}
END_TEST

START_TEST(old_version_is_freed_when_its_last_request_ends)
{
    char *d = tu_tmpdir();
    put_version(d, "a", 1);
    put_version(d, "a", 2);
    write_text(d, "models/a/active", "1");
    sola_err e = {0};
    reg *r = reg_new(d, DIM, NULL, NULL, NULL, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    reg_model *a = find(r, "a");
    reg_ver *req = NULL;
    ck_assert_int_eq(reg_acquire(r, "a", 0, &req, &e), 0);
    /* activate through the back door: the active file and a rescan (what another
     * replica's activation looks like), so that no keep reference is involved */
    write_text(d, "models/a/active", "2");
    ck_assert_int_eq(reg_scan(r, 1, &e), 0);
    a = find(r, "a");
    ck_assert_int_eq(a->active_version, 2);
    ck_assert_int_eq(a->active->refs, 1);
    ck_assert_ptr_null(r->keep[0]);
    ck_assert_int_eq(req->refs, 1); /* the request's alone */
    ck_assert_int_eq(reg_nloaded(r), 1); /* the scan does not list it as in use */
    ck_assert_float_eq_tol(alpha_of(r, req), 0.1f, 1e-7f);
    reg_release(r, req); /* freed here (ASan/valgrind would see a leak otherwise) */
    ck_assert_int_eq(reg_nloaded(r), 1);

    /* explicit old versions: the keep list holds REG_KEEP of them, most recent first */
    put_version(d, "a", 3);
    put_version(d, "a", 4);
    ck_assert_int_eq(reg_scan(r, 1, &e), 0);
    a = find(r, "a");
    ck_assert_int_eq(a->nver, 4);
    ck_assert_int_eq(a->active_version, 2); /* the active file still says 2 */
    reg_ver *v = NULL, *kept[3];
    for (int ver = 1, i = 0; ver <= 4; ver++) {
        if (ver == 2)
            continue;
        ck_assert_int_eq(reg_acquire(r, "a", ver, &v, &e), 0);
        ck_assert_ptr_null(v->model); /* loaded on the worker, by reg_get */
        ck_assert_float_eq_tol(alpha_of(r, v), 0.1f * (float)ver, 1e-7f);
        ck_assert_int_eq(v->refs, 2);
        reg_release(r, v);
        ck_assert_int_eq(v->refs, 1);
        kept[i++] = v;
    }
    /* 1 was let go when 4 came (freed: not listed any more) */
    ck_assert_ptr_eq(r->keep[0], kept[2]);
    ck_assert_ptr_eq(r->keep[1], kept[1]);
    ck_assert_int_eq(ncached(a), 2);
    ck_assert_int_eq(reg_nloaded(r), 3);
    reg_free(r);
    tu_rmtree(d);
    free(d);
}
END_TEST

START_TEST(deleted_model_keeps_serving_its_request)
{
    char *d = tu_tmpdir();
    put_version(d, "a", 1);
    put_version(d, "b", 1);
    put_version(d, "b", 2);
    sola_err e = {0};
    logs l = {0};
    reg *r = reg_new(d, DIM, NULL, on_log, &l, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    ck_assert_int_eq(find(r, "b")->active_version, 2); /* no active file: the highest */
    reg_ver *req = NULL;
    ck_assert_int_eq(reg_acquire(r, "a", 0, &req, &e), 0);
    ck_assert_int_eq(req->refs, 2);

    ck_assert_int_eq(tu_system("rm -rf '%s/models/a'", d), 0);
    ck_assert_int_eq(reg_scan(r, 0, &e), 0);
    ck_assert_int_eq(reg_nmodels(r), 1);
    ck_assert_ptr_null(reg__find(r, "a"));
    ck_assert_int_eq(req->refs, 1); /* the registry's reference went with the model */
    ck_assert_int_eq(reg_nloaded(r), 1);
    reg_ver *v = NULL;
    ck_assert_int_eq(reg_acquire(r, "a", 0, &v, &e), SOLA_ENOTFOUND);
    /* the request still computes with it, and its name outlives the entry */
    ck_assert_float_eq_tol(alpha_of(r, req), 0.1f, 1e-7f);
    ck_assert_str_eq(reg_ver_name(req), "a");
    reg_release(r, req);

    /* the active version's file deleted: the highest remaining one serves, and a
     * request holding the deleted one keeps it */
    ck_assert_int_eq(reg_acquire(r, "b", 0, &req, &e), 0);
    ck_assert_int_eq(reg_ver_version(req), 2);
    char p[4096];
    snprintf(p, sizeof p, "%s/models/b/2.safetensors", d);
    ck_assert_int_eq(unlink(p), 0);
    ck_assert_int_eq(reg_scan(r, 0, &e), 0);
    reg_model *b = find(r, "b");
    ck_assert_int_eq(b->nver, 1);
    ck_assert_int_eq(b->active_version, 1);
    ck_assert_int_eq(b->active->refs, 1);
    ck_assert_int_eq(req->refs, 1);
    ck_assert_float_eq_tol(alpha_of(r, req), 0.2f, 1e-7f);
    ck_assert_float_eq_tol(alpha_of(r, b->active), 0.1f, 1e-7f);
    reg_release(r, req);

    /* every model gone: the embedded identity model serves (a writable data dir) */
    ck_assert_int_eq(tu_system("rm -rf '%s/models/b'", d), 0);
    ck_assert_int_eq(reg_scan(r, 0, &e), 0);
    ck_assert_int_eq(reg_nmodels(r), 1);
    ck_assert_int_eq(find(r, REG_DEFAULT_NAME)->embedded, 1);
    ck_assert_int_eq(reg_ready(r), 1);
    reg_free(r);
    tu_rmtree(d);
    free(d);
}
END_TEST

START_TEST(broken_active_version_leaves_the_previous_serving)
{
    char *d = tu_tmpdir();
    put_version(d, "a", 1);
    write_text(d, "models/a/active", "1");
    sola_err e = {0};
    logs l = {0};
    reg *r = reg_new(d, DIM, NULL, on_log, &l, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    reg_ver *v1 = find(r, "a")->active;
    write_text(d, "models/a/2.safetensors", "not a model");
    write_text(d, "models/a/active", "2");
    ck_assert_int_eq(reg_scan(r, 1, &e), 0);
    ck_assert_int_eq(e.code, 0);
    reg_model *a = find(r, "a");
    ck_assert_ptr_eq(a->active, v1);
    ck_assert_int_eq(a->active_version, 1);
    ck_assert_int_eq(v1->refs, 1);
    ck_assert_ptr_nonnull(a->load_error);
    ck_assert_ptr_nonnull(strstr(a->load_error, "version 2"));
    ck_assert_int_eq(l.warn, 1);
    ck_assert_ptr_nonnull(strstr(l.last, "the previous version keeps serving"));
    json_t *desc = reg_describe(r, "a", &e);
    ck_assert_ptr_nonnull(json_object_get(desc, "warning"));
    json_decref(desc);
    /* the unchanged broken file is not read (nor complained about) again */
    ck_assert_int_eq(reg_scan(r, 1, &e), 0);
    ck_assert_int_eq(l.warn, 1);
    ck_assert_ptr_eq(find(r, "a")->active, v1);
    ck_assert_ptr_nonnull(find(r, "a")->load_error);
    /* fixed on disk: it loads and serves, with a note */
    char p[4096];
    snprintf(p, sizeof p, "%s/models/a/2.safetensors", d);
    save_model(p, 2);
    ck_assert_int_eq(reg_scan(r, 1, &e), 0);
    a = find(r, "a");
    ck_assert_int_eq(a->active_version, 2);
    ck_assert_ptr_null(a->load_error);
    ck_assert_int_eq(a->active->refs, 1);
    ck_assert_int_eq(l.info, 1);
    ck_assert_ptr_nonnull(strstr(l.last, "changed on disk"));
    reg_free(r);
    tu_rmtree(d);
    free(d);
}
END_TEST

START_TEST(put_installs_versions_and_replaces_the_embedded_model)
{
    char *d = tu_tmpdir();
    sola_err e = {0};
    reg *r = reg_new(d, DIM, NULL, NULL, NULL, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    ck_assert_int_eq(find(r, REG_DEFAULT_NAME)->embedded, 1);
    reg_ver *emb = NULL;
    ck_assert_int_eq(reg_acquire(r, NULL, 0, &emb, &e), 0);
    ck_assert_int_eq(emb->refs, 2);

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/upload.tmp", d);
    save_model(tmp, 5);
    int conflict = -1;
    ck_assert_int_eq(reg_put(r, "m", 1, tmp, &conflict, &e), 0);
    ck_assert_int_eq(conflict, 0);
    /* the first stored model takes the embedded model's place and is active */
    ck_assert_int_eq(reg_nmodels(r), 1);
    ck_assert_ptr_null(reg__find(r, REG_DEFAULT_NAME));
    reg_model *m = find(r, "m");
    ck_assert_int_eq(m->active_version, 1);
    ck_assert_int_eq(m->active->refs, 1);
    char *act = read_text(d, "models/m/active");
    ck_assert_str_eq(act, "1\n");
    free(act);
    ck_assert_int_eq(emb->refs, 1); /* the request's: the embedded model still computes */
    ck_assert_float_eq(alpha_of(r, emb), 0.0f);
    reg_release(r, emb);

    /* versions are immutable */
    e = (sola_err){0};
    ck_assert_int_eq(reg_put(r, "m", 1, tmp, &conflict, &e), SOLA_EINVAL);
    ck_assert_int_eq(conflict, 1);
    /* a second version is listed, not activated */
    ck_assert_int_eq(reg_put(r, "m", 3, tmp, &conflict, &e), 0);
    ck_assert_int_eq(reg_put(r, "m", 2, tmp, &conflict, &e), 0);
    m = find(r, "m");
    ck_assert_int_eq(m->nver, 3);
    ck_assert_int_eq(m->versions[0], 1);
    ck_assert_int_eq(m->versions[1], 2);
    ck_assert_int_eq(m->versions[2], 3);
    ck_assert_int_eq(m->active_version, 1);
    ck_assert_int_eq(reg_nloaded(r), 1);
    /* a file that is not a model is a bad upload, and installs nothing */
    write_text(d, "upload.tmp", "garbage");
    e = (sola_err){0};
    ck_assert_int_eq(reg_put(r, "m", 4, tmp, &conflict, &e), SOLA_EFORMAT);
    ck_assert_int_eq(conflict, 0);
    ck_assert_int_eq(find(r, "m")->nver, 3);
    snprintf(tmp, sizeof tmp, "%s/models/m/4.safetensors", d);
    struct stat st;
    ck_assert_int_ne(stat(tmp, &st), 0);
    /* bad names */
    e = (sola_err){0};
    ck_assert_int_eq(reg_put(r, "../x", 1, tmp, &conflict, &e), SOLA_EINVAL);
    ck_assert_int_eq(reg_activate(r, "m", 9, &e), SOLA_ENOTFOUND);
    reg_free(r);
    tu_rmtree(d);
    free(d);
}
END_TEST

START_TEST(read_only_store)
{
    char *d = tu_tmpdir();
    char p[4096];
    snprintf(p, sizeof p, "%s/flat.safetensors", d);
    save_model(p, 4);
    mkdir_p(d, "dir");
    snprintf(p, sizeof p, "%s/dir/2.safetensors", d);
    save_model(p, 2);
    snprintf(p, sizeof p, "%s/dir.safetensors", d); /* shadowed by dir/ */
    save_model(p, 9);
    sola_err e = {0};
    logs l = {0};
    reg *r = reg_new_store(d, "flat", on_log, &l, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    ck_assert_int_eq(reg_nmodels(r), 2);
    ck_assert_int_eq(find(r, "flat")->flat, 1);
    ck_assert_int_eq(find(r, "dir")->flat, 0);
    ck_assert_int_eq(find(r, "dir")->active_version, 2);
    ck_assert_int_eq(l.warn, 1); /* dir.safetensors ignored */
    reg_ver *v = NULL;
    ck_assert_int_eq(reg_acquire(r, NULL, 0, &v, &e), 0);
    ck_assert_float_eq_tol(alpha_of(r, v), 0.4f, 1e-7f);
    reg_release(r, v);
    int conflict = -1;
    ck_assert_int_eq(reg_put(r, "x", 1, p, &conflict, &e), SOLA_EINVAL);
    ck_assert_int_eq(reg_activate(r, "dir", 2, &e), SOLA_EINVAL);
    /* all gone: an error, and the models already loaded keep serving */
    ck_assert_int_eq(tu_system("rm -rf '%s'/*", d), 0);
    e = (sola_err){0};
    ck_assert_int_eq(reg_scan(r, 1, &e), SOLA_ENOTFOUND);
    ck_assert_int_eq(reg_nmodels(r), 2);
    ck_assert_int_eq(reg_ready(r), 1);
    reg_free(r);
    /* an empty store does not open (no embedded fallback) */
    e = (sola_err){0};
    ck_assert_ptr_null(reg_new_store(d, NULL, NULL, NULL, &e));
    ck_assert_int_eq(e.code, SOLA_ENOTFOUND);
    tu_rmtree(d);
    free(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("registry");
    tcase_add_test(tc, embedded_model_without_data_dir);
    tcase_add_test(tc, scan_reads_versions_and_skips_stray_files);
    tcase_add_test(tc, activation_while_a_request_holds_the_old_version);
    tcase_add_test(tc, old_version_is_freed_when_its_last_request_ends);
    tcase_add_test(tc, deleted_model_keeps_serving_its_request);
    tcase_add_test(tc, broken_active_version_leaves_the_previous_serving);
    tcase_add_test(tc, put_installs_versions_and_replaces_the_embedded_model);
    tcase_add_test(tc, read_only_store);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
