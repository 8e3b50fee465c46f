/* registry.c -- see registry.h for the contract and the thread rules. */
#include "registry.h"
#include "registry_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "defaults.h"
#include "fsutil.h"

static void logf_(reg *r, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void logf_(reg *r, const char *level, const char *fmt, ...)
{
    if (!r->log)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->log(r->log_arg, level, msg);
}

/* Complaints about stray files: on explicit scans only (startup, SIGHUP), not on
 * every periodic one. r->quiet is set under write_mu for the scan's duration. */
#define warn_files(r, ...)                                                                 \
    do {                                                                                   \
        if (!(r)->quiet)                                                                   \
            logf_((r), "warn", __VA_ARGS__);                                               \
    } while (0)

/* ---- versions ---------------------------------------------------------------- */

reg_ver *reg__ver_new(const char *name, int version, const char *path, sola_model *model)
{
    reg_ver *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->name = strdup(name);
    v->path = path ? strdup(path) : NULL;
    if (!v->name || (path && !v->path)) {
        free(v->name);
        free(v->path);
        free(v);
        return NULL;
    }
    v->version = version;
    v->model = model;
    pthread_mutex_init(&v->load_mu, NULL);
    return v;
}

void reg__ver_free(reg_ver *v)
{
    if (!v)
        return;
    sola_model_free(v->model);
    pthread_mutex_destroy(&v->load_mu);
    free(v->name);
    free(v->path);
    free(v);
}

char *reg__ver_path(const reg *r, const char *name, int version, int flat)
{
    size_t n = strlen(r->dir) + strlen(name) + 48;
    char *p = malloc(n);
    if (p && flat)
        snprintf(p, n, "%s/%s.safetensors", r->dir, name);
    else if (p)
        snprintf(p, n, "%s/%s/%d.safetensors", r->dir, name, version);
    return p;
}

reg_model *reg__find(reg *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->m[i].name, name) == 0)
            return &r->m[i];
    return NULL;
}

int reg__has_version(const reg_model *m, int v)
{
    for (int i = 0; i < m->nver; i++)
        if (m->versions[i] == v)
            return 1;
    return 0;
}

void reg__uncache(reg_model *m, reg_ver *v)
{
    for (reg_ver **p = &m->cache; *p; p = &(*p)->next)
        if (*p == v) {
            *p = v->next;
            v->next = NULL;
            v->cached = 0;
            return;
        }
}

/* Drops one reference under r->mu; returns the version if it must be freed (after
 * the caller unlocks). */
reg_ver *reg__unref_locked(reg *r, reg_ver *v)
{
    if (--v->refs > 0)
        return NULL;
    if (v->cached) {
        reg_model *m = reg__find(r, v->name);
        if (m)
            reg__uncache(m, v);
        v->cached = 0;
    }
    return v;
}

void reg__model_clear(reg *r, reg_model *m, reg_ver **to_free, int *nfree)
{
    /* cached versions stay alive through their requests' references */
    for (reg_ver *c = m->cache, *next; c; c = next) {
        next = c->next;
        c->next = NULL;
        c->cached = 0;
    }
    m->cache = NULL;
    if (m->active) {
        reg_ver *f = reg__unref_locked(r, m->active);
        if (f)
            to_free[(*nfree)++] = f;
    }
    free(m->name);
    free(m->versions);
    free(m->load_error);
    memset(m, 0, sizeof *m);
}

/* ---- scanning ---------------------------------------------------------------- */

static int parse_version_str(const char *s, size_t n)
{
    long v = 0;
    if (n == 0 || s[0] == '0')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
        if (v > 0x7fffffffL)
            return 0;
    }
    return (int)v;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Reads models/NAME: sorted versions and the active one (the active file, else the
 * highest version). 0 or -1 (no versions / unreadable). */
static int read_model_dir(reg *r, const char *name, int **vers, int *nver, int *active)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", r->dir, name);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int *v = NULL, n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        const char *ext = ".safetensors";
        size_t el = strlen(ext);
        if (len <= el || strcmp(de->d_name + len - el, ext) != 0)
            continue;
        int ver = parse_version_str(de->d_name, len - el);
        if (!ver) {
            if (de->d_name[0] != '.')
                warn_files(r, "%s/%s: ignored (version files are named N.safetensors, N >= 1)",
                      path, de->d_name);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            int *nv = realloc(v, sizeof(int) * (size_t)cap);
            if (!nv) {
                free(v);
                closedir(d);
                return -1;
            }
            v = nv;
        }
        v[n++] = ver;
    }
    closedir(d);
    if (n == 0) {
        free(v);
        return -1;
    }
    qsort(v, (size_t)n, sizeof(int), cmp_int);
    *active = v[n - 1];
    snprintf(path, sizeof path, "%s/%s/active", r->dir, name);
    FILE *f = fopen(path, "r");
    if (f) {
        char buf[32] = "";
        size_t k = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        while (k && (buf[k - 1] == '\n' || buf[k - 1] == ' ' || buf[k - 1] == '\r'))
            k--;
        int a = parse_version_str(buf, k);
        int found = 0;
        for (int i = 0; i < n; i++)
            found |= v[i] == a;
        if (found)
            *active = a;
        else
            warn_files(r, "%s: names no existing version; using the highest, %d", path,
                       *active);
    }
    *vers = v;
    *nver = n;
    return 0;
}

static sola_model *embedded_model(int dim, sola_err *e)
{
    sola_model *m = sola_model_new(dim, SOLA_DEFAULT_HIDDEN, SOLA_DEFAULT_K1, SOLA_DEFAULT_K2, 0, e);
    if (!m)
        return NULL;
    sola_model_init(m, 0); /* alpha = 0: refine(x) = x, with the real compute cost */
    sola_model_set_meta(m, "format", "sola");
    sola_model_set_meta(m, "origin", "solad embedded default (identity)");
    if (sola_model_pack(m, e)) {
        sola_model_free(m);
        return NULL;
    }
    return m;
}

/* A read-only store (KServe storageUri) may hold a model as one top-level file,
 * NAME.safetensors, served as NAME version 1 (what a storageUri naming a single file
 * downloads to /mnt/models). 1 and the name in out when fname is such a regular file. */
static int flat_model_name(reg *r, const char *fname, char out[80])
{
    const char *ext = ".safetensors";
    size_t len = strlen(fname), el = strlen(ext);
    if (len <= el || len - el >= 80 || strcmp(fname + len - el, ext) != 0)
        return 0;
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", r->dir, fname);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    memcpy(out, fname, len - el);
    out[len - el] = '\0';
    if (!sola_name_ok(out)) {
        warn_files(r, "%s: ignored (model names use letters, digits, '.', '_', '-')", path);
        return 0;
    }
    return 1;
}

/* Appends a flat model (version 1) to the list being built; 0, or SOLA_ENOMEM. */
static int add_flat(reg *r, reg_model **nm, int *nn, int *cap, const char *name, sola_err *e)
{
    if (*nn == *cap) {
        int nc = *cap ? *cap * 2 : 8;
        reg_model *p = realloc(*nm, sizeof *p * (size_t)nc);
        if (!p)
            return sola_errf(e, SOLA_ENOMEM, "out of memory scanning %s", r->dir);
        *nm = p;
        *cap = nc;
    }
    reg_model *m = &(*nm)[*nn];
    memset(m, 0, sizeof *m);
    if (!(m->name = strdup(name)) || !(m->versions = malloc(sizeof(int)))) {
        free(m->name);
        return sola_errf(e, SOLA_ENOMEM, "out of memory scanning %s", r->dir);
    }
    m->versions[0] = 1;
    m->nver = 1;
    m->active_version = 1;
    m->flat = 1;
    (*nn)++;
    return 0;
}

/* A directory NAME/ and a file NAME.safetensors both in a store: the directory (its
 * versions and active file) wins, whatever order readdir gave them in. */
static void drop_shadowed_flats(reg *r, reg_model *nm, int *nn)
{
    for (int i = 0; i < *nn; i++) {
        if (!nm[i].flat)
            continue;
        int shadowed = 0;
        for (int k = 0; k < *nn && !shadowed; k++)
            shadowed = k != i && !nm[k].flat && !strcmp(nm[k].name, nm[i].name);
        if (!shadowed)
            continue;
        warn_files(r, "%s/%s.safetensors: ignored (the directory %s/ holds the versions of "
                      "model %s)", r->dir, nm[i].name, nm[i].name, nm[i].name);
        free(nm[i].name);
        free(nm[i].versions);
        nm[i--] = nm[--*nn];
    }
}

/* Appends model NAME (its versions and active one, already read) to the list being
 * built; takes vers. 0, or SOLA_ENOMEM. */
static int add_dir_model(reg *r, reg_model **nm, int *nn, int *cap, const char *name,
                         int *vers, int nver, int active, sola_err *e)
{
    if (*nn == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        reg_model *p = realloc(*nm, sizeof **nm * (size_t)*cap);
        if (!p) {
            free(vers);
            return sola_errf(e, SOLA_ENOMEM, "out of memory scanning %s", r->dir);
        }
        *nm = p;
    }
    reg_model *m = &(*nm)[*nn];
    memset(m, 0, sizeof *m);
    if (!(m->name = strdup(name))) {
        free(vers);
        return sola_errf(e, SOLA_ENOMEM, "out of memory scanning %s", r->dir);
    }
    m->versions = vers;
    m->nver = nver;
    m->active_version = active;
    (*nn)++;
    return 0;
}

/* Phase 1 of a scan: the models on disk (names and versions, nothing loaded) into a
 * new list *nm of *nn entries. 0, or an error (what was built so far stays in *nm and *nn). */
static int scan_list(reg *r, reg_model **nm, int *nn, sola_err *e)
{
    int cap = 0, rc = 0;
    DIR *d = opendir(r->dir);
    if (!d && errno != ENOENT)
        return sola_errf(e, SOLA_EIO, "%s: %s", r->dir, strerror(errno));
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char flat_name[80];
        int flat = r->read_only && flat_model_name(r, de->d_name, flat_name);
        if (flat) {
            if ((rc = add_flat(r, nm, nn, &cap, flat_name, e)))
                break;
            continue;
        }
        if (!sola_name_ok(de->d_name)) {
            warn_files(r, "%s/%s: ignored (model names use letters, digits, '.', '_', '-')",
                       r->dir, de->d_name);
            continue;
        }
        int *vers = NULL, nver = 0, active = 0;
        if (read_model_dir(r, de->d_name, &vers, &nver, &active))
            continue;
        if ((rc = add_dir_model(r, nm, nn, &cap, de->d_name, vers, nver, active, e)))
            break;
    }
    if (d)
        closedir(d);
    if (!rc)
        drop_shadowed_flats(r, *nm, nn);
    return rc;
}

/* Phase 2: no model on disk. A read-only store is an error; otherwise the list is the
 * embedded model alone. 0, or an error. */
static int scan_fallback(reg *r, reg_model **nm, int *nn, sola_err *e)
{
    if (r->read_only)
        /* a store's models are the point: never swap them for the embedded identity */
        return sola_errf(e, SOLA_ENOTFOUND,
                         "%s holds no model: expected NAME.safetensors files or "
                         "NAME/VERSION.safetensors directories (an optional NAME/active names "
                         "the version to serve)", r->dir);
    *nm = calloc(1, sizeof **nm);
    if (!*nm || !((*nm)[0].name = strdup(REG_DEFAULT_NAME)) ||
        !((*nm)[0].versions = malloc(sizeof(int))))
        return sola_errf(e, SOLA_ENOMEM, "out of memory");
    (*nm)[0].embedded = 1;
    (*nm)[0].versions[0] = 1;
    (*nm)[0].nver = 1;
    (*nm)[0].active_version = 1;
    *nn = 1;
    return 0;
}

/* Phase 3, for one entry of the new list: its active version, outside the list lock.
 * A model whose active version is the one already loaded keeps its reg_ver. A new
 * active version that does not load leaves the previous one serving (an operator's
 * slip must not take a model down), and an unchanged broken file is not read again
 * on every periodic scan. */
static void scan_load(reg *r, reg_model *nm)
{
    pthread_mutex_lock(&r->mu);
    reg_model *old = reg__find(r, nm->name);
    int was = old ? old->active_version : 0, was_embedded = old && old->embedded;
    char *old_error = old && old->load_error ? strdup(old->load_error) : NULL;
    reg_ver *prev = NULL; /* the version serving now, kept in case the new one fails */
    if (old && old->active && old->embedded == nm->embedded) {
        if (old->active_version == nm->active_version)
            nm->active = old->active;
        else
            prev = old->active;
        old->active->refs++;
    }
    if (old) {
        nm->bad_version = old->bad_version;
        nm->bad_size = old->bad_size;
        nm->bad_mtime_ns = old->bad_mtime_ns;
    }
    pthread_mutex_unlock(&r->mu);
    if (nm->active) {
        free(old_error);
        return;
    }
    sola_err le = {0};
    sola_model *m = NULL;
    char *path = NULL;
    struct stat st = {0};
    int known_bad = 0;
    if (nm->embedded) {
        m = embedded_model(r->dim, &le);
    } else if ((path = reg__ver_path(r, nm->name, nm->active_version, nm->flat))) {
        stat(path, &st);
        long long mt = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
        known_bad = nm->bad_version == nm->active_version &&
                    nm->bad_size == (long long)st.st_size && nm->bad_mtime_ns == mt;
        if (!known_bad)
            m = sola_model_load(path, &le);
    }
    if (m && (nm->active = reg__ver_new(nm->name, nm->active_version, path, m))) {
        nm->active->refs = 1;
        nm->bad_version = 0;
        if (r->scanned && !nm->embedded)
            logf_(r, "info", "model %s: version %d is active%s", nm->name,
                  nm->active_version,
                  was && !was_embedded ? " (changed on disk)" : " (new on disk)");
    } else {
        if (m)
            sola_model_free(m);
        if (known_bad) {
            nm->load_error = old_error;
            old_error = NULL;
        } else {
            char msg[SOLA_ERRLEN + 128];
            if (nm->flat)
                snprintf(msg, sizeof msg, "%s does not load: %s", path,
                         le.msg[0] ? le.msg : "out of memory");
            else
                snprintf(msg, sizeof msg,
                         "version %d (named by %s/%s/active) does not load: %s",
                         nm->active_version, r->dir ? r->dir : "", nm->name,
                         le.msg[0] ? le.msg : "out of memory");
            nm->load_error = strdup(msg);
            nm->bad_version = nm->active_version;
            nm->bad_size = (long long)st.st_size;
            nm->bad_mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
            logf_(r, "warn", "model %s: %s%s", nm->name, msg,
                  prev ? "; the previous version keeps serving" : "");
        }
        if (prev) {
            nm->active = prev;
            nm->active_version = prev->version;
            prev = NULL;
        }
    }
    if (prev)
        reg_release(r, prev);
    free(old_error);
    free(path);
}

/* Phase 4: the new list replaces the old one; cached versions move with their model,
 * the old entries drop their active references. Takes nm. */
static void scan_swap(reg *r, reg_model *nm, int nn)
{
    reg_ver *to_free[64];
    int nfree = 0;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < nn; i++) {
        reg_model *old = reg__find(r, nm[i].name);
        if (old) {
            nm[i].cache = old->cache;
            old->cache = NULL;
        }
    }
    reg_model *oldm = r->m;
    int oldn = r->n;
    r->m = nm;
    r->n = nn;
    for (int i = 0; i < oldn; i++) {
        if (nfree > 60) { /* free in batches outside the lock */
            pthread_mutex_unlock(&r->mu);
            for (int k = 0; k < nfree; k++)
                reg__ver_free(to_free[k]);
            nfree = 0;
            pthread_mutex_lock(&r->mu);
        }
        reg__model_clear(r, &oldm[i], to_free, &nfree);
    }
    pthread_mutex_unlock(&r->mu);
    for (int k = 0; k < nfree; k++)
        reg__ver_free(to_free[k]);
    free(oldm);
}

int reg_scan(reg *r, int quiet, sola_err *e)
{
    pthread_mutex_lock(&r->write_mu);
    r->quiet = quiet;
    reg_model *nm = NULL;
    int nn = 0, rc = 0;
    if (r->dir && (rc = scan_list(r, &nm, &nn, e)))
        goto out;
    if (nn == 0 && (rc = scan_fallback(r, &nm, &nn, e)))
        goto out;
    for (int i = 0; i < nn; i++)
        scan_load(r, &nm[i]);
    scan_swap(r, nm, nn);
    nm = NULL;
    nn = 0;
    r->scanned = 1;
out:
    for (int i = 0; i < nn; i++) {
        free(nm[i].name);
        free(nm[i].versions);
        free(nm[i].load_error);
        if (nm[i].active)
            reg_release(r, nm[i].active);
    }
    free(nm);
    pthread_mutex_unlock(&r->write_mu);
    return rc;
}

static reg *reg_open(const char *dir, int read_only, int dim, const char *default_model,
                     void (*log)(void *arg, const char *level, const char *msg),
                     void *log_arg, sola_err *e);

reg *reg_new(const char *data_dir, int dim, const char *default_model,
             void (*log)(void *arg, const char *level, const char *msg), void *log_arg,
             sola_err *e)
{
    if (!data_dir)
        return reg_open(NULL, 0, dim, default_model, log, log_arg, e);
    size_t n = strlen(data_dir) + 16;
    char *dir = malloc(n);
    if (!dir) {
        sola_errf(e, SOLA_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(dir, n, "%s/models", data_dir);
    reg *r = reg_open(dir, 0, dim, default_model, log, log_arg, e);
    free(dir);
    return r;
}

reg *reg_new_store(const char *models_dir, const char *default_model,
                   void (*log)(void *arg, const char *level, const char *msg), void *log_arg,
                   sola_err *e)
{
    DIR *d = opendir(models_dir);
    if (!d) {
        sola_errf(e, SOLA_EIO, "--models-dir %s: %s", models_dir, strerror(errno));
        return NULL;
    }
    closedir(d);
    return reg_open(models_dir, 1, 0, default_model, log, log_arg, e);
}

static reg *reg_open(const char *dir, int read_only, int dim, const char *default_model,
                     void (*log)(void *arg, const char *level, const char *msg),
                     void *log_arg, sola_err *e)
{
    reg *r = calloc(1, sizeof *r);
    if (!r) {
        sola_errf(e, SOLA_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->write_mu, NULL);
    r->dim = dim;
    r->log = log;
    r->log_arg = log_arg;
    if (default_model && !(r->default_name = strdup(default_model)))
        goto nomem;
    r->read_only = read_only;
    if (dir && !(r->dir = strdup(dir)))
        goto nomem;
    if (reg_scan(r, 0, e))
        goto err;
    return r;
nomem:
    sola_errf(e, SOLA_ENOMEM, "out of memory");
err:
    reg_free(r);
    return NULL;
}

void reg_free(reg *r)
{
    if (!r)
        return;
    for (int i = 0; i < REG_KEEP; i++) /* first: unref looks the models up */
        if (r->keep[i])
            reg__ver_free(reg__unref_locked(r, r->keep[i]));
    reg_ver *to_free[64];
    for (int i = 0; i < r->n; i++) {
        int nfree = 0;
        reg__model_clear(r, &r->m[i], to_free, &nfree);
        for (int k = 0; k < nfree; k++)
            reg__ver_free(to_free[k]);
    }
    free(r->m);
    free(r->dir);
    free(r->default_name);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->write_mu);
    free(r);
}

/* ---- requests ---------------------------------------------------------------- */

void reg__names_list(reg *r, char *buf, size_t n)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < r->n && o + 2 < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? ", " : "", r->m[i].name);
}

/* Under r->mu: the model a request without a name means. */
static reg_model *resolve_default(reg *r, sola_err *e)
{
    if (r->default_name) {
        reg_model *m = reg__find(r, r->default_name);
        if (!m)
            sola_errf(e, SOLA_ENOTFOUND,
                      "the default model \"%s\" (--default-model) is not in the registry",
                      r->default_name);
        return m;
    }
    if (r->n == 1)
        return &r->m[0];
    char names[512];
    reg__names_list(r, names, sizeof names);
    sola_errf(e, SOLA_EINVAL,
              "several models are served (%s): name one with \"model\" (or start solad with "
              "--default-model)",
              names);
    return NULL;
}

int reg_acquire(reg *r, const char *name, int version, reg_ver **out, sola_err *e)
{
    int rc = 0;
    reg_ver *v = NULL, *drop = NULL;
    pthread_mutex_lock(&r->mu);
    reg_model *m = name ? reg__find(r, name) : resolve_default(r, e);
    if (!m) {
        if (name) {
            char names[512];
            reg__names_list(r, names, sizeof names);
            rc = sola_errf(e, SOLA_ENOTFOUND, "no model named \"%s\" (models: %s)", name, names);
        } else {
            rc = e ? e->code : SOLA_ENOTFOUND;
        }
        goto out;
    }
    if (version == 0 || version == m->active_version) {
        if (!m->active) {
            rc = sola_errf(e, SOLA_EIO, "model %s version %d is not loaded: %s", m->name,
                           m->active_version, m->load_error ? m->load_error : "no version");
            goto out;
        }
        v = m->active;
        v->refs++;
        goto out;
    }
    if (!reg__has_version(m, version)) {
        char vs[256];
        size_t o = 0;
        vs[0] = '\0';
        for (int i = 0; i < m->nver && o + 2 < sizeof vs; i++)
            o += (size_t)snprintf(vs + o, sizeof vs - o, "%s%d", i ? ", " : "", m->versions[i]);
        rc = sola_errf(e, SOLA_ENOTFOUND, "model %s has no version %d (versions: %s)", m->name,
                       version, vs);
        goto out;
    }
    for (v = m->cache; v && v->version != version; v = v->next)
        ;
    if (!v) {
        char *path = reg__ver_path(r, m->name, version, m->flat);
        v = path ? reg__ver_new(m->name, version, path, NULL) : NULL;
        free(path);
        if (!v) {
            rc = sola_errf(e, SOLA_ENOMEM, "out of memory");
            goto out;
        }
        v->cached = 1;
        v->next = m->cache;
        m->cache = v;
    }
    v->refs++;
    /* keep it: to the front of r->keep, the least recently used one let go */
    int at = 0;
    while (at < REG_KEEP && r->keep[at] != v)
        at++;
    if (at == REG_KEEP) {
        at = REG_KEEP - 1;
        if (r->keep[at])
            drop = reg__unref_locked(r, r->keep[at]);
        v->refs++;
    }
    memmove(r->keep + 1, r->keep, (size_t)at * sizeof r->keep[0]);
    r->keep[0] = v;
out:
    pthread_mutex_unlock(&r->mu);
    reg__ver_free(drop);
    *out = rc ? NULL : v;
    return rc;
}

const sola_model *reg_get(reg *r, reg_ver *v, sola_err *e)
{
    (void)r;
    pthread_mutex_lock(&v->load_mu);
    if (!v->model && v->path)
        v->model = sola_model_load(v->path, e);
    const sola_model *m = v->model;
    if (!m && e && !e->code)
        sola_errf(e, SOLA_EIO, "model %s version %d is not loaded", v->name, v->version);
    pthread_mutex_unlock(&v->load_mu);
    return m;
}

const char *reg_ver_name(const reg_ver *v)
{
    return v->name;
}

int reg_ver_version(const reg_ver *v)
{
    return v->version;
}

void reg_release(reg *r, reg_ver *v)
{
    if (!v)
        return;
    pthread_mutex_lock(&r->mu);
    reg_ver *f = reg__unref_locked(r, v);
    pthread_mutex_unlock(&r->mu);
    reg__ver_free(f);
}
