/* jobs_store.c -- job records on disk: DATA/jobs/ID.json, one JSON object per job,
 * the same document GET /jobs/ID returns. Records are written atomically (temporary
 * file, fsync, rename, directory fsync); a new record is linked into place so that
 * two replicas can never take the same id. Replicas sharing the directory see each
 * other's jobs by rereading records whose mtime or size changed (jobs_table.c's refresh,
 * through jobs_load_record): this file maps a job to JSON and to its file, and never
 * touches the table. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dsstore.h"
#include "fsutil.h"
#include "jobs_int.h"

const char *const job_state_names[JS_N] = {"queued",    "running",   "succeeded",
                                           "failed",    "cancelled", "interrupted"};

int job_state_parse(const char *s)
{
    for (int i = 0; s && i < JS_N; i++)
        if (!strcmp(s, job_state_names[i]))
            return i;
    return -1;
}

int job_terminal(int st)
{
    return st == JS_SUCCEEDED || st == JS_FAILED || st == JS_CANCELLED;
}

void jobs_now_iso(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void jobs_path(const srv_jobs *J, int id, const char *kind, char *out)
{
    if (!strcmp(kind, "json"))
        snprintf(out, 4096, "%.4000s/%d.json", J->dir, id);
    else if (!strcmp(kind, "data"))
        snprintf(out, 4096, "%.4000s/%d.data", J->dir, id);
    else if (!strcmp(kind, "cancel"))
        snprintf(out, 4096, "%.4000s/%d.cancel", J->dir, id);
    else /* ckpt, out, base: model files */
        snprintf(out, 4096, "%.4000s/%d.%.8s.safetensors", J->dir, id, kind);
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

json_t *job_json(const job *j, int full)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "id", json_integer(j->id));
    json_object_set_new(o, "state", json_string(job_state_names[j->st]));
    json_object_set_new(o, "dataset", json_string(j->spec.dataset));
    json_object_set_new(o, "objective", json_string(j->spec.objective));
    json_object_set_new(o, "output_model", json_string(j->spec.output_model));
    json_object_set_new(o, "model_version", j->model_version ? json_integer(j->model_version)
                                                             : json_null());
    json_object_set_new(o, "epoch", json_integer(j->epoch));
    json_object_set_new(o, "epochs", json_integer(j->spec.epochs));
    json_object_set_new(o, "loss", j->epoch ? json_real(j->loss) : json_null());
    json_object_set_new(o, "created", str_or_null(j->created));
    json_object_set_new(o, "finished", str_or_null(j->finished));
    json_object_set_new(o, "error", str_or_null(j->error));
    json_object_set_new(o, "warning", str_or_null(j->warning));
    if (!full)
        return o;
    /* the collapse guard's last numbers (null before the first epoch end) */
    json_object_set_new(o, "collapse_guard",
                        j->guard_epoch
                            ? json_pack("{s:i,s:f,s:f,s:o,s:f,s:f}", "epoch", j->guard_epoch,
                                        "norm_ratio", j->norm_ratio, "const_share",
                                        j->const_share, "fired_epoch",
                                        j->collapse_epoch ? json_integer(j->collapse_epoch)
                                                          : json_null(),
                                        "max_norm_ratio", j->spec.collapse_ratio,
                                        "max_const_share", j->spec.collapse_share)
                            : json_null());
    json_object_set_new(o, "base_model", str_or_null(j->spec.base_model));
    json_object_set_new(o, "base_version", j->base_version ? json_integer(j->base_version)
                                                           : json_null());
    json_object_set_new(o, "activate", json_boolean(j->spec.activate));
    json_object_set_new(o, "params", api_train_spec_json(&j->spec));
    json_object_set_new(o, "step", json_integer(j->step));
    json_object_set_new(o, "steps_per_epoch", json_integer(j->steps_per_epoch));
    json_object_set_new(o, "windows_per_s", json_real(j->windows_per_s));
    json_object_set_new(o, "eta_s", j->st == JS_RUNNING ? json_real(j->eta_s) : json_null());
    json_object_set_new(o, "videos", json_integer(j->videos));
    json_object_set_new(o, "skipped", json_integer(j->skipped));
    json_t *h = json_array();
    for (int i = 0; i < j->nhist; i++)
        json_array_append_new(h, json_real(j->hist[i]));
    json_object_set_new(o, "loss_history", h);
    json_object_set_new(o, "runs", json_integer(j->runs));
    json_object_set_new(o, "resume", json_boolean(j->resume));
    if (j->runs > 1 || j->resume)
        json_object_set_new(o, "resumed_from", json_pack("{s:i,s:I}", "epoch", j->resumed_epoch,
                                                         "step", (json_int_t)j->resumed_step));
    json_object_set_new(o, "started", str_or_null(j->started));
    json_object_set_new(o, "runner", str_or_null(j->runner));
    return o;
}

static void get_str(json_t *o, const char *k, char *out, size_t n)
{
    const char *s = json_string_value(json_object_get(o, k));
    snprintf(out, n, "%s", s ? s : "");
}

static long get_int(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long)json_integer_value(v) : 0;
}

static double get_num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : 0;
}

int job_hist_push(job *j, double v)
{
    if (j->nhist == j->hist_cap) {
        int cap = j->hist_cap ? j->hist_cap * 2 : 16;
        double *p = realloc(j->hist, sizeof *p * (size_t)cap);
        if (!p)
            return -1;
        j->hist = p;
        j->hist_cap = cap;
    }
    j->hist[j->nhist++] = v;
    return 0;
}

int job_from_json(json_t *o, job *j, sola_err *e)
{
    memset(j, 0, sizeof *j);
    json_t *id = json_object_get(o, "id");
    j->st = job_state_parse(json_string_value(json_object_get(o, "state")));
    if (!json_is_integer(id) || json_integer_value(id) < 1 || j->st < 0)
        return sola_errf(e, SOLA_EFORMAT, "job record: missing or bad \"id\" or \"state\"");
    j->id = (int)json_integer_value(id);
    int rc = api_train_spec_parse(json_object_get(o, "params"), &j->spec, e);
    if (rc)
        return rc;
    j->base_version = (int)get_int(o, "base_version");
    j->model_version = (int)get_int(o, "model_version");
    j->epoch = (int)get_int(o, "epoch");
    j->step = get_int(o, "step");
    j->steps_per_epoch = get_int(o, "steps_per_epoch");
    j->loss = get_num(o, "loss");
    j->windows_per_s = get_num(o, "windows_per_s");
    j->eta_s = get_num(o, "eta_s");
    j->videos = (int)get_int(o, "videos");
    j->skipped = (int)get_int(o, "skipped");
    j->runs = (int)get_int(o, "runs");
    j->resume = json_is_true(json_object_get(o, "resume"));
    json_t *rf = json_object_get(o, "resumed_from");
    j->resumed_epoch = (int)get_int(rf, "epoch");
    j->resumed_step = get_int(rf, "step");
    json_t *h = json_object_get(o, "loss_history"), *v;
    size_t i;
    json_array_foreach(h, i, v) {
        if (job_hist_push(j, json_number_value(v))) {
            free(j->hist);
            j->hist = NULL;
            return sola_errf(e, SOLA_ENOMEM, "out of memory");
        }
    }
    get_str(o, "error", j->error, sizeof j->error);
    get_str(o, "warning", j->warning, sizeof j->warning);
    json_t *g = json_object_get(o, "collapse_guard");
    j->guard_epoch = (int)get_int(g, "epoch");
    j->norm_ratio = get_num(g, "norm_ratio");
    j->const_share = get_num(g, "const_share");
    j->collapse_epoch = (int)get_int(g, "fired_epoch");
    get_str(o, "created", j->created, sizeof j->created);
    get_str(o, "started", j->started, sizeof j->started);
    get_str(o, "finished", j->finished, sizeof j->finished);
    get_str(o, "runner", j->runner, sizeof j->runner);
    return 0;
}

static void stamp(srv_jobs *J, job *j, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        pthread_mutex_lock(&J->mu);
        j->mtime = st.st_mtim;
        j->size = st.st_size;
        pthread_mutex_unlock(&J->mu);
    }
}

int jobs_write(srv_jobs *J, job *j, sola_err *e)
{
    char path[4096];
    pthread_mutex_lock(&J->wmu);
    pthread_mutex_lock(&J->mu);
    json_t *o = job_json(j, 1);
    int id = j->id;
    pthread_mutex_unlock(&J->mu);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc;
    if (!text) {
        rc = sola_errf(e, SOLA_ENOMEM, "job %d: out of memory for its record", id);
    } else {
        jobs_path(J, id, "json", path);
        size_t n = strlen(text);
        text[n] = '\n'; /* the NUL becomes a newline: friendlier to cat */
        rc = sola_write_atomic(path, text, n + 1, e);
        free(text);
        if (!rc)
            stamp(J, j, path);
    }
    pthread_mutex_unlock(&J->wmu);
    return rc;
}

int jobs_create(srv_jobs *J, job *j, int id, sola_err *e)
{
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%.4000s/.new.%ld.%p", J->dir, (long)getpid(), (void *)j);
    int rc = SOLA_EIO;
    for (int tries = 0; tries < 1000; tries++, id++) {
        j->id = id;
        json_t *o = job_json(j, 1); /* j is not in the table yet: no lock needed */
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!text)
            return sola_errf(e, SOLA_ENOMEM, "out of memory for a job record");
        size_t n = strlen(text);
        text[n] = '\n';
        rc = sola_write_atomic(tmp, text, n + 1, e);
        free(text);
        if (rc)
            return rc;
        jobs_path(J, id, "json", path);
        if (link(tmp, path) == 0) {
            unlink(tmp);
            sola_fsync_dir(J->dir);
            struct stat st;
            if (stat(path, &st) == 0) {
                j->mtime = st.st_mtim;
                j->size = st.st_size;
            }
            return 0;
        }
        int err = errno;
        unlink(tmp);
        if (err != EEXIST)
            return sola_errf(e, sola_errno_code(err), "%s: %s", path,
                             strerror(err));
    }
    return sola_errf(e, SOLA_EIO, "%s: no free job id", J->dir);
}

job *jobs_load_record(srv_jobs *J, int id, const struct stat *st)
{
    char path[4096];
    jobs_path(J, id, "json", path);
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o)
        return NULL; /* being replaced, or damaged: try again next time */
    job *j = calloc(1, sizeof *j);
    sola_err e = {0};
    if (!j || job_from_json(o, j, &e) || j->id != id) {
        if (j && e.msg[0])
            srv_logf(J->s, "warn", "%s: %s (ignored)", path, e.msg);
        free(j ? j->hist : NULL);
        free(j);
        json_decref(o);
        return NULL;
    }
    json_decref(o);
    j->mtime = st->st_mtim;
    j->size = st->st_size;
    return j;
}

/* ---- a job's files ------------------------------------------------------------ */

void jobs_remove_files(srv_jobs *J, int id)
{
    char p[4096];
    jobs_path(J, id, "ckpt", p);
    unlink(p);
    jobs_path(J, id, "base", p);
    unlink(p);
    jobs_path(J, id, "out", p);
    unlink(p);
    jobs_path(J, id, "cancel", p);
    unlink(p);
    jobs_path(J, id, "data", p);
    sola_ds_rmtree(p);
}
