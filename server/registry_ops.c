/* registry_ops.c -- the registry's views (list, describe, download) and its two
 * writes (upload a version, activate a version). Both writes load the model before
 * anything becomes visible, write files atomically (a version file is linked into
 * place, so an existing version is never replaced), and only then take the list
 * lock for the pointer swap. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "registry.h"
#include "registry_int.h"

/* ---- views ------------------------------------------------------------------- */

/* Under r->mu. New reference. */
static json_t *describe_locked(reg_model *m)
{
    json_t *o = json_object();
    json_t *vs = json_array();
    json_t *in_use = json_array();
    for (int i = 0; i < m->nver; i++)
        json_array_append_new(vs, json_integer(m->versions[i]));
    for (reg_ver *c = m->cache; c; c = c->next)
        json_array_append_new(in_use, json_integer(c->version));
    json_object_set_new(o, "name", json_string(m->name));
    json_object_set_new(o, "active", m->active_version ? json_integer(m->active_version)
                                                       : json_null());
    json_object_set_new(o, "versions", vs);
    json_object_set_new(o, "embedded", json_boolean(m->embedded));
    json_object_set_new(o, "other_versions_in_use", in_use);
    /* The active model is immutable once published (loaded before the swap). */
    const sola_model *md = m->active ? m->active->model : NULL;
    if (md) {
        json_object_set_new(o, "C", json_integer(md->C));
        json_object_set_new(o, "H", json_integer(md->H));
        json_object_set_new(o, "k1", json_integer(md->k1));
        json_object_set_new(o, "k2", json_integer(md->k2));
        json_object_set_new(o, "d1", json_integer(md->d1));
        json_object_set_new(o, "d2", json_integer(md->d2));
        json_object_set_new(o, "P", json_integer(md->P));
        json_t *meta = json_object();
        for (int i = 0; i < md->nmeta; i++) {
            json_t *s = json_string(md->meta[i].val); /* NULL if not UTF-8 */
            if (s)
                json_object_set_new(meta, md->meta[i].key, s);
        }
        json_object_set_new(o, "metadata", meta);
    } else {
        json_object_set_new(o, "error", json_string(m->load_error ? m->load_error
                                                                  : "not loaded"));
    }
    if (md && m->load_error) /* serving, but not what the active file asks for */
        json_object_set_new(o, "warning", json_string(m->load_error));
    return o;
}

json_t *reg_list(reg *r)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++)
        json_array_append_new(arr, describe_locked(&r->m[i]));
    const char *def = r->default_name ? r->default_name : r->n == 1 ? r->m[0].name : NULL;
    json_t *o = json_pack("{s:o,s:s?}", "models", arr, "default", def);
    pthread_mutex_unlock(&r->mu);
    return o;
}

json_t *reg_describe(reg *r, const char *name, sola_err *e)
{
    json_t *o = NULL;
    pthread_mutex_lock(&r->mu);
    reg_model *m = reg__find(r, name);
    if (m) {
        o = describe_locked(m);
    } else {
        char names[512];
        reg__names_list(r, names, sizeof names);
        sola_errf(e, SOLA_ENOTFOUND, "no model named \"%s\" (models: %s)", name, names);
    }
    pthread_mutex_unlock(&r->mu);
    return o;
}

int reg_download(reg *r, const char *name, int version, void **buf, size_t *len, sola_err *e)
{
    reg_ver *v;
    int rc = reg_acquire(r, name, version, &v, e);
    if (rc)
        return rc;
    if (v->path) {
        sola_map map;
        if (!(rc = sola_map_file(v->path, &map, e))) {
            *buf = malloc(map.len ? map.len : 1);
            if (*buf) {
                if (map.len)
                    memcpy(*buf, map.data, map.len);
                *len = map.len;
            } else {
                rc = sola_errf(e, SOLA_ENOMEM, "out of memory");
            }
            sola_unmap(&map);
        }
    } else {
        const sola_model *m = reg_get(r, v, e);
        rc = m ? sola_model_serialize(m, 0, buf, len, e) : SOLA_EIO;
    }
    reg_release(r, v);
    return rc;
}

/* ---- writes ------------------------------------------------------------------ */

static int write_active(reg *r, const char *name, int version, sola_err *e)
{
    char path[4096], text[32];
    snprintf(path, sizeof path, "%s/%s/active", r->dir, name);
    int n = snprintf(text, sizeof text, "%d\n", version);
    return sola_write_atomic(path, text, (size_t)n, e);
}

int reg_put(reg *r, const char *name, int version, const char *tmp_path, int *conflict,
            sola_err *e)
{
    *conflict = 0;
    if (r->read_only)
        return sola_errf(e, SOLA_EINVAL, "%s is a read-only model store: models cannot be "
                                         "uploaded", r->dir);
    if (!r->dir)
        return sola_errf(e, SOLA_EINVAL,
                         "solad runs without --data: there is nowhere to store models");
    if (!sola_name_ok(name))
        return sola_errf(e, SOLA_EINVAL, "model name \"%s\" is not valid", name);
    char *final = reg__ver_path(r, name, version, 0);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", r->dir, name);
    sola_model *m = NULL;
    reg_ver *nv = NULL;
    int rc = 0;
    if (!final)
        return sola_errf(e, SOLA_ENOMEM, "out of memory");
    pthread_mutex_lock(&r->write_mu);
    if (access(final, F_OK) == 0) {
        *conflict = 1;
        rc = sola_errf(e, SOLA_EINVAL,
                       "model %s version %d exists; versions are immutable: upload a new "
                       "version number",
                       name, version);
        goto out;
    }
    /* Validate by loading: what is installed is known to serve. */
    sola_map map;
    if ((rc = sola_map_file(tmp_path, &map, e)))
        goto out;
    m = sola_model_from_buffer(map.data, map.len, "uploaded model", e);
    sola_unmap(&map);
    if (!m) {
        /* whatever the loader's reason (even a header "too large"), the upload is a
         * bad file: 400, not a limit of ours */
        if (e && e->code != SOLA_ENOMEM)
            e->code = SOLA_EFORMAT;
        rc = e && e->code ? e->code : SOLA_EFORMAT;
        goto out;
    }
    if (sola_fsync_path(tmp_path) || (rc = sola_mkdirs(dir, 0755, e))) {
        rc = rc ? rc : sola_errf(e, SOLA_EIO, "%s: fsync failed: %s", tmp_path, strerror(errno));
        goto out;
    }
    /* link() refuses to replace: two racing uploads of one version cannot both win. */
    if (link(tmp_path, final) != 0) {
        if (errno == EEXIST) {
            *conflict = 1;
            rc = sola_errf(e, SOLA_EINVAL, "model %s version %d exists", name, version);
        } else {
            rc = sola_errf(e, sola_errno_code(errno), "%s: %s", final,
                           strerror(errno));
        }
        goto out;
    }
    sola_fsync_dir(dir);
    sola_fsync_dir(r->dir);

    pthread_mutex_lock(&r->mu);
    reg_model *mm = reg__find(r, name);
    int is_new = !mm || mm->embedded;
    pthread_mutex_unlock(&r->mu);
    if (is_new) {
        /* The first version of a model is its active one, or it could not serve. */
        if ((rc = write_active(r, name, version, e)))
            goto out;
        if (!(nv = reg__ver_new(name, version, final, m))) {
            rc = sola_errf(e, SOLA_ENOMEM, "out of memory");
            goto out;
        }
        m = NULL;
        nv->refs = 1;
    }

    reg_ver *f = NULL;
    int nf = 0;
    pthread_mutex_lock(&r->mu);
    mm = reg__find(r, name);
    if (!mm && r->n == 1 && r->m[0].embedded)
        mm = &r->m[0]; /* the embedded default gives way to the first stored model */
    if (is_new && mm && !mm->embedded) {
        is_new = 0; /* appeared meanwhile (a rescan): treat as a new version */
    }
    if (is_new) {
        if (!mm) {
            reg_model *grown = realloc(r->m, sizeof *grown * (size_t)(r->n + 1));
            if (grown) {
                r->m = grown;
                mm = &r->m[r->n++];
                memset(mm, 0, sizeof *mm);
            }
        } else {
            /* reuse the embedded slot: its active reference is dropped */
            reg__model_clear(r, mm, &f, &nf);
        }
        int *vs = malloc(sizeof(int));
        char *nm = strdup(name);
        if (mm && vs && nm) {
            mm->name = nm;
            mm->versions = vs;
            vs[0] = version;
            mm->nver = 1;
            mm->active_version = version;
            mm->active = nv;
            nv = NULL;
        } else {
            free(vs);
            free(nm);
            if (mm) /* an empty slot must not stay in the list */
                r->n--;
        }
    } else if (mm) {
        int *vs = realloc(mm->versions, sizeof(int) * (size_t)(mm->nver + 1));
        if (vs) {
            int i = mm->nver;
            while (i > 0 && vs[i - 1] > version) {
                vs[i] = vs[i - 1];
                i--;
            }
            vs[i] = version;
            mm->versions = vs;
            mm->nver++;
        }
    }
    pthread_mutex_unlock(&r->mu);
    reg__ver_free(f);
out:
    if (nv)
        reg_release(r, nv);
    sola_model_free(m);
    free(final);
    pthread_mutex_unlock(&r->write_mu);
    return rc;
}

int reg_activate(reg *r, const char *name, int version, sola_err *e)
{
    reg_ver *v = NULL;
    int rc;
    if (r->read_only)
        return sola_errf(e, SOLA_EINVAL, "%s is a read-only model store: the active version "
                                         "is what NAME/active says there", r->dir);
    pthread_mutex_lock(&r->write_mu);
    if ((rc = reg_acquire(r, name, version, &v, e)))
        goto out;
    if (!reg_get(r, v, e)) { /* load before anyone can see it */
        rc = e && e->code ? e->code : SOLA_EIO;
        goto out;
    }
    if (v->path && (rc = write_active(r, name, version, e)))
        goto out;
    reg_ver *f = NULL;
    pthread_mutex_lock(&r->mu);
    reg_model *m = reg__find(r, name);
    if (!m) {
        pthread_mutex_unlock(&r->mu);
        rc = sola_errf(e, SOLA_ENOTFOUND, "model %s disappeared (rescan)", name);
        goto out;
    }
    reg_ver *old = m->active;
    if (old == v) {
        f = reg__unref_locked(r, v); /* already active: drop our extra reference */
    } else {
        if (v->cached)
            reg__uncache(m, v);
        m->active = v; /* our reference becomes the registry's */
        m->active_version = version;
        free(m->load_error);
        m->load_error = NULL;
        if (old) {
            f = reg__unref_locked(r, old);
            if (!f) { /* still serving requests: findable by explicit version */
                old->cached = 1;
                old->next = m->cache;
                m->cache = old;
            }
        }
    }
    v = NULL;
    pthread_mutex_unlock(&r->mu);
    reg__ver_free(f);
out:
    if (v)
        reg_release(r, v);
    pthread_mutex_unlock(&r->write_mu);
    return rc;
}

/* ---- counts ------------------------------------------------------------------ */

int reg_nmodels(reg *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int reg_nloaded(reg *r)
{
    int n = 0;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++) {
        n += r->m[i].active != NULL;
        for (reg_ver *c = r->m[i].cache; c; c = c->next)
            n++;
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

int reg_ready(reg *r)
{
    int ok = 0;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++)
        ok |= r->m[i].active != NULL;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

void reg_each_active(reg *r, void (*fn)(void *arg, const char *name, int version, int dim),
                     void *arg)
{
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++)
        if (r->m[i].active && r->m[i].active->model)
            fn(arg, r->m[i].name, r->m[i].active_version, r->m[i].active->model->C);
    pthread_mutex_unlock(&r->mu);
}
