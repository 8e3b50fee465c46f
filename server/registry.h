/* registry.h -- the models solad serves: name -> versions -> loaded model.
 *
 * On disk (under --data DIR): models/NAME/VERSION.safetensors and models/NAME/active
 * (the active version number as text, written atomically). Versions are positive
 * integers. With no data directory, or none of its models, the registry holds one
 * embedded model "default" version 1 (identity-initialised, C = dim).
 *
 * In memory each version is a reg_ver with a reference count. The registry holds one
 * reference to each model's active version; a request takes its own reference
 * (reg_acquire) and drops it when its reply is encoded (reg_release). Activation swaps
 * the active pointer under a short lock, so a request sees the old version or the new
 * one, never a half-loaded one, and never fails because of the swap. A version that
 * is neither active nor used by a request is freed at once; explicit requests for an
 * old version load it on their worker (reg_get) and it is freed after them.
 *
 * Thread rules: every function may be called from any thread; the lists are guarded
 * by one mutex held only for pointer work (never across a load or disk write);
 * changes of the disk state (put, activate, scan) are serialised by a second one. */
/* implemented in: registry.c registry_ops.c */
#ifndef SOLAD_REGISTRY_H
#define SOLAD_REGISTRY_H

#include <jansson.h>

#include "err.h"
#include "model.h"

/* The model created when there is none (its shape: core/defaults.h, as `sola init`). */
#define REG_DEFAULT_NAME "default"

typedef struct reg reg;
typedef struct reg_ver reg_ver;

/* data_dir may be NULL (embedded model only). default_model: NULL = the only model.
 * log (may be NULL; level "info" or "warn") receives what scans notice: skipped files,
 * versions that do not load, active versions changed on disk. Any thread may call it.
 * The constructor scans once; NULL + e on failure (unreadable directory, no memory). */
reg *reg_new(const char *data_dir, int dim, const char *default_model,
             void (*log)(void *arg, const char *level, const char *msg), void *log_arg,
             sola_err *e);
/* A read-only model store (solad --models-dir, e.g. KServe's storageUri mounted at
 * /mnt/models): NAME/VERSION.safetensors (+ NAME/active) as under DATA/models, and
 * top-level NAME.safetensors files served as NAME version 1. Nothing is ever written
 * there; reg_put and reg_activate refuse. A store without any model is an error (no
 * embedded fallback), also on a rescan (the models already loaded keep serving). */
reg *reg_new_store(const char *models_dir, const char *default_model,
                   void (*log)(void *arg, const char *level, const char *msg), void *log_arg,
                   sola_err *e);
void reg_free(reg *r);

/* Rereads models/ (SIGHUP, and periodically so that replicas sharing the directory
 * follow each other): new models and versions appear, active pointers follow the
 * active files (loading the new active versions first), removed models disappear.
 * quiet: do not repeat complaints about stray files (periodic scans). Unchanged
 * models cost a readdir and a small read. */
int reg_scan(reg *r, int quiet, sola_err *e);

/* name NULL = the default model; version 0 = the active one. 0, or SOLA_ENOTFOUND /
 * SOLA_EINVAL (ambiguous default) with a message. */
int reg_acquire(reg *r, const char *name, int version, reg_ver **out, sola_err *e);
/* The loaded model of a held version; loads it on first use (call from a worker).
 * NULL + e if the file does not load. */
const sola_model *reg_get(reg *r, reg_ver *v, sola_err *e);
const char *reg_ver_name(const reg_ver *v);
int reg_ver_version(const reg_ver *v);
void reg_release(reg *r, reg_ver *v);

/* JSON views: new references. describe: NULL + SOLA_ENOTFOUND for unknown names. */
json_t *reg_list(reg *r);
json_t *reg_describe(reg *r, const char *name, sola_err *e);

/* The file of a version (malloc'd bytes; the embedded model is serialised). */
int reg_download(reg *r, const char *name, int version, void **buf, size_t *len,
                 sola_err *e);
/* Validates tmp_path by loading it, then installs it as NAME/VERSION without ever
 * replacing an existing file (*conflict = 1 and SOLA_EINVAL if the version exists).
 * The first version of a new model becomes its active version. The caller still
 * removes tmp_path. */
int reg_put(reg *r, const char *name, int version, const char *tmp_path, int *conflict,
            sola_err *e);
/* Loads VERSION, writes the active file, swaps. */
int reg_activate(reg *r, const char *name, int version, sola_err *e);

/* Counts for health and metrics. */
int reg_nmodels(reg *r);
int reg_nloaded(reg *r);     /* loaded versions (active + those in use) */
int reg_ready(reg *r);       /* 1 if some model has a loaded active version */
/* Calls fn for each model's active version. */
void reg_each_active(reg *r, void (*fn)(void *arg, const char *name, int version, int dim),
                     void *arg);

#endif
