/* jobs_finish.c -- how a run ends: the final state written (after the job's files
 * are gone), the trained model registered as the next version of the output model,
 * and what a dead runner left `running` recovered by the next lock holder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs_int.h"

static int exists(const char *p)
{
    return access(p, F_OK) == 0;
}

/* Ends a run in state st (mu not held); writes the record and wakes the streams. */
void jobs_finish(srv_jobs *J, job *j, int st, const char *error)
{
    /* files first: whoever sees the final state sees no leftovers (a crash in between
     * leaves `running` with the model registered, which recovery recognises) */
    if (job_terminal(st))
        jobs_remove_files(J, j->id);
    pthread_mutex_lock(&J->mu);
    j->st = st;
    j->local = 0;
    j->eta_s = 0;
    if (J->running_id == j->id)
        J->running_id = 0;
    if (error)
        snprintf(j->error, sizeof j->error, "%s", error);
    j->resume = 0; /* set again by POST /jobs/ID/resume */
    if (job_terminal(st))
        jobs_now_iso(j->finished);
    jobs_changed(J, j);
    int id = j->id;
    pthread_mutex_unlock(&J->mu);
    atomic_store(&J->cancel, 0);
    sola_err e = {0};
    if (jobs_write(J, j, &e))
        srv_logf(J->s, "error", "job %d: cannot write its record: %s", id, e.msg);
    jobs_notify(J);
    if (st == JS_SUCCEEDED)
        srv_logf(J->s, "info", "job %d succeeded: model %s version %d", id,
                 j->spec.output_model, j->model_version);
    else
        srv_logf(J->s, st == JS_FAILED ? "error" : "info", "job %d %s%s%s", id,
                 job_state_names[st], error ? ": " : "", error ? error : "");
}

/* ---- registering the result ---------------------------------------------------- */

/* Highest version of a model known to the registry or present on disk (a replica's
 * upload the registry has not rescanned yet), 0 if none. */
static int max_version(srv_jobs *J, const char *name)
{
    int mx = 0;
    json_t *d = reg_describe(J->s->reg, name, NULL); /* new reference or NULL */
    json_t *v;
    size_t i;
    json_array_foreach(json_object_get(d, "versions"), i, v) {
        if (json_integer_value(v) > mx)
            mx = (int)json_integer_value(v);
    }
    json_decref(d);
    char dir[4096];
    snprintf(dir, sizeof dir, "%.3900s/models/%s", J->s->cfg.data_dir, name);
    for (long k = (long)mx + 1; k < (long)mx + 64 && k <= API_MAX_VERSION; k++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%ld.safetensors", dir, k);
        if (!exists(p))
            break;
        mx = (int)k;
    }
    return mx;
}

/* Installs DATA/jobs/ID.out.safetensors as a new version of the output model. The
 * chosen version is written to the record first, so that a runner dying between the
 * two steps lets the next one recognise the installed file instead of adding a copy. */
int jobs_register(srv_jobs *J, job *j, sola_err *e)
{
    char out[4096];
    jobs_path(J, j->id, "out", out);
    pthread_mutex_lock(&J->mu);
    char name[72];
    snprintf(name, sizeof name, "%s", j->spec.output_model);
    int activate = j->spec.activate;
    pthread_mutex_unlock(&J->mu);
    /* versions are positive int32 (the API's, the registry's and the file names'
     * rule): at the top, refuse instead of wrapping to a negative number */
    long next = (long)max_version(J, name) + 1;
    if (next > API_MAX_VERSION)
        return sola_errf(e, SOLA_EINVAL, "model %s already has version %d, the largest "
                         "version number; train into another output_model", name,
                         API_MAX_VERSION);
    int v = (int)next, rc = SOLA_EIO;
    for (int tries = 0; tries < 16 && v <= API_MAX_VERSION; tries++, v++) {
        pthread_mutex_lock(&J->mu);
        j->model_version = v;
        pthread_mutex_unlock(&J->mu);
        if ((rc = jobs_write(J, j, e)))
            return rc;
        int conflict = 0;
        rc = reg_put(J->s->reg, name, v, out, &conflict, e);
        if (!rc || !conflict)
            break; /* a conflict means a replica took v meanwhile: try the next one */
        if (v == API_MAX_VERSION) {
            rc = sola_errf(e, SOLA_EINVAL, "model %s reached version %d, the largest version "
                           "number; train into another output_model", name, API_MAX_VERSION);
            break;
        }
    }
    if (rc) {
        pthread_mutex_lock(&J->mu);
        j->model_version = 0;
        pthread_mutex_unlock(&J->mu);
        return rc;
    }
    unlink(out);
    if (activate && (rc = reg_activate(J->s->reg, name, v, e)))
        return rc;
    return 0;
}

/* ---- the lock and recovery ------------------------------------------------------- */

/* Jobs a dead runner left behind (called once the lock is ours). */
void jobs_recover(srv_jobs *J)
{
    jobs_refresh(J);
    for (int i = 0;; i++) {
        pthread_mutex_lock(&J->mu);
        if (i >= J->n) {
            pthread_mutex_unlock(&J->mu);
            break;
        }
        job *j = J->v[i];
        int st = j->st, id = j->id, mv = j->model_version, local = j->local;
        char name[72];
        snprintf(name, sizeof name, "%s", j->spec.output_model);
        pthread_mutex_unlock(&J->mu);
        if (local || (st != JS_RUNNING && !(st == JS_INTERRUPTED && J->s->cfg.resume_jobs)))
            continue;
        char out[4096], inst[4200];
        jobs_path(J, id, "out", out);
        snprintf(inst, sizeof inst, "%.3900s/models/%s/%d.safetensors", J->s->cfg.data_dir, name,
                 mv);
        sola_err e = {0};
        if (st == JS_RUNNING && exists(out)) {
            /* the model was trained: only its registration was cut short */
            if (mv && exists(inst)) {
                unlink(out);
                jobs_finish(J, j, JS_SUCCEEDED, NULL);
            } else if (jobs_register(J, j, &e)) {
                jobs_finish(J, j, JS_FAILED, e.msg);
            } else {
                jobs_finish(J, j, JS_SUCCEEDED, NULL);
            }
            continue;
        }
        if (st == JS_RUNNING && mv && exists(inst)) {
            jobs_finish(J, j, JS_SUCCEEDED, NULL);
            continue;
        }
        pthread_mutex_lock(&J->mu);
        if (J->s->cfg.resume_jobs) {
            j->st = JS_QUEUED;
            j->resume = 1;
            j->error[0] = '\0';
        } else {
            j->st = JS_INTERRUPTED;
            snprintf(j->error, sizeof j->error,
                     "the solad that ran it stopped (%s); POST /jobs/%d/resume continues "
                     "from its last checkpoint",
                     st == JS_RUNNING ? "crash or kill" : "restart", id);
        }
        jobs_changed(J, j);
        pthread_mutex_unlock(&J->mu);
        if (jobs_write(J, j, &e))
            srv_logf(J->s, "error", "job %d: %s", id, e.msg);
        srv_logf(J->s, "info", "job %d %s: %s", id,
                 st == JS_RUNNING ? "was running when its runner stopped" : "was interrupted",
                 J->s->cfg.resume_jobs ? "queued to resume (--resume-jobs)" : "interrupted");
    }
    jobs_notify(J);
}

