/* jobs_table.c -- the job table (sorted by id, every job guarded by srv_jobs.mu) and
 * its refresh from the records on disk (other replicas' writes). Used by the routes
 * (jobs.c), the job thread (jobs_run.c) and the end of a run (jobs_finish.c); it calls
 * only jobs_store.c, so the calls between those files go one way. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "jobs_int.h"

/* ---- the table (mu held) ------------------------------------------------------- */

job *jobs_find(srv_jobs *J, int id)
{
    int lo = 0, hi = J->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (J->v[mid]->id == id)
            return J->v[mid];
        if (J->v[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

int jobs_insert(srv_jobs *J, job *j)
{
    if (J->n == J->cap) {
        int cap = J->cap ? J->cap * 2 : 32;
        job **p = realloc(J->v, sizeof *p * (size_t)cap);
        if (!p)
            return -1;
        J->v = p;
        J->cap = cap;
    }
    int i = J->n;
    while (i > 0 && J->v[i - 1]->id > j->id) {
        J->v[i] = J->v[i - 1];
        i--;
    }
    J->v[i] = j;
    J->n++;
    return 0;
}

void jobs_changed(srv_jobs *J, job *j)
{
    (void)J;
    j->seq++;
}

void jobs_notify(srv_jobs *J)
{
    uv_async_send(&J->async);
}

void job_free(job *j)
{
    if (j) {
        free(j->hist);
        free(j);
    }
}

/* ---- the table refreshed from the records on disk (other replicas' writes) ---- */

/* Copies what disk says into the table's job (mu held). */
static void adopt(srv_jobs *J, job *dst, job *src)
{
    uint64_t seq = dst->seq;
    int local = dst->local;
    free(dst->hist);
    *dst = *src;
    src->hist = NULL;
    dst->seq = seq;
    dst->local = local;
    jobs_changed(J, dst);
}

static int refresh_id(srv_jobs *J, int id, struct stat *st)
{
    pthread_mutex_lock(&J->mu);
    job *have = jobs_find(J, id);
    int skip = have && (have->local || (have->mtime.tv_sec == st->st_mtim.tv_sec &&
                                        have->mtime.tv_nsec == st->st_mtim.tv_nsec &&
                                        have->size == st->st_size));
    pthread_mutex_unlock(&J->mu);
    if (skip)
        return 0;
    job *j = jobs_load_record(J, id, st);
    if (!j)
        return 0;
    int changed = 0;
    pthread_mutex_lock(&J->mu);
    have = jobs_find(J, id);
    if (have && !have->local) {
        adopt(J, have, j);
        changed = 1;
    } else if (!have && jobs_insert(J, j) == 0) {
        jobs_changed(J, j);
        j = NULL;
        changed = 1;
    }
    pthread_mutex_unlock(&J->mu);
    job_free(j);
    return changed;
}

int jobs_refresh(srv_jobs *J)
{
    DIR *d = opendir(J->dir);
    if (!d)
        return 0;
    int changed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long id = strtol(de->d_name, &end, 10);
        if (id < 1 || id > 999999999 || de->d_name[0] == '0' || strcmp(end, ".json"))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, 0) != 0)
            continue;
        changed |= refresh_id(J, (int)id, &st);
    }
    closedir(d);
    if (changed)
        jobs_notify(J);
    return changed;
}

void jobs_refresh_one(srv_jobs *J, int id)
{
    char path[4096];
    jobs_path(J, id, "json", path);
    struct stat st;
    if (stat(path, &st) == 0 && refresh_id(J, id, &st))
        jobs_notify(J);
}
