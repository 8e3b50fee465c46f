/* registry_int.h -- internals shared by registry.c (references, scanning) and
 * registry_ops.c (listing, upload, activation). Not for other modules. */
#ifndef SOLAD_REGISTRY_INT_H
#define SOLAD_REGISTRY_INT_H

#include <pthread.h>

#include "registry.h"

struct reg_ver {
    char *name;     /* model name (own copy: the model entry may vanish on a rescan) */
    int version;
    char *path;     /* NULL for the embedded model */
    sola_model *model; /* NULL until loaded; guarded by load_mu */
    pthread_mutex_t load_mu;
    int refs;       /* guarded by reg.mu */
    int cached;     /* listed in its model's `cache` (weak, not counted) */
    reg_ver *next;  /* cache link */
};

typedef struct reg_model {
    char *name;
    int *versions; /* sorted ascending */
    int nver;
    int embedded;
    int flat;           /* a store's top-level NAME.safetensors: version 1 only */
    int active_version; /* 0 = none */
    reg_ver *active;    /* counted reference, NULL if none or failed to load */
    char *load_error;   /* why the active file's version is not the one serving */
    int bad_version;    /* that version, and its file's size and mtime when it failed: */
    long long bad_size, bad_mtime_ns; /* an unchanged broken file is not reloaded */
    reg_ver *cache;     /* loaded versions that are not active: in use by requests,
                         * or kept (reg.keep) */
} reg_model;

/* Non-active versions asked for most recently stay loaded (one counted reference
 * each), so that a client pinning an older version does not reload it from disk on
 * every request (120 ms instead of 2 for a C = 2048 model). Small: each is a model. */
#define REG_KEEP 2

struct reg {
    pthread_mutex_t mu;       /* lists, refs, active pointers */
    pthread_mutex_t write_mu; /* disk changes: put, activate, scan */
    char *dir;                /* DATA/models, the --models-dir store, or NULL */
    int read_only;            /* a read-only store: no writes, no embedded fallback */
    int dim;
    char *default_name;
    reg_model *m;
    int n;
    void (*log)(void *, const char *, const char *);
    void *log_arg;
    int quiet;   /* current scan is a periodic one (write_mu) */
    int scanned; /* a first scan completed (write_mu) */
    reg_ver *keep[REG_KEEP]; /* counted references, most recently used first (mu) */
};

/* Helpers (registry.c). The *_locked ones and reg__find need r->mu held. */
reg_ver *reg__ver_new(const char *name, int version, const char *path, sola_model *model);
void reg__ver_free(reg_ver *v);
/* DIR/NAME/VERSION.safetensors, or DIR/NAME.safetensors for a flat model. */
char *reg__ver_path(const reg *r, const char *name, int version, int flat);
reg_model *reg__find(reg *r, const char *name);
int reg__has_version(const reg_model *m, int v);
reg_ver *reg__unref_locked(reg *r, reg_ver *v);
void reg__uncache(reg_model *m, reg_ver *v);
void reg__names_list(reg *r, char *buf, size_t n);
/* Empties an entry (r->mu held): its cached versions stay alive through their
 * requests' references, its active reference is dropped; a version that must be freed
 * goes to to_free[(*nfree)++] (at most one), for the caller to free after unlocking. */
void reg__model_clear(reg *r, reg_model *m, reg_ver **to_free, int *nfree);

#endif
