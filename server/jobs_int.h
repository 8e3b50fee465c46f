/* jobs_int.h -- internals shared by jobs.c (routes' backend, event streams, start and
 * stop), jobs_table.c (the table and its refresh from disk), jobs_store.c (a job <->
 * its JSON <-> its files; it never touches the table), jobs_run.c (the job thread) and
 * jobs_finish.c (how a run ends). Calls go one way: jobs.c -> jobs_run.c ->
 * jobs_finish.c -> jobs_table.c -> jobs_store.c. Not for others. */
/* implemented in: jobs_store.c (the states; the rest by section below) */
#ifndef SOLAD_JOBS_INT_H
#define SOLAD_JOBS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "jobs.h"

enum { JS_QUEUED, JS_RUNNING, JS_SUCCEEDED, JS_FAILED, JS_CANCELLED, JS_INTERRUPTED, JS_N };
extern const char *const job_state_names[JS_N];
int job_state_parse(const char *s); /* -1 if unknown */
int job_terminal(int st);           /* succeeded, failed, cancelled */

/* One job. Owned by the table, never freed before srv_jobs_stop, so pointers stay
 * valid; every field is guarded by srv_jobs.mu. */
typedef struct job {
    int id;
    int st;
    api_train_spec spec;
    int base_version;     /* resolved when the job starts */
    /* progress */
    int epoch, epochs;
    long step, steps_per_epoch;
    double loss, windows_per_s, eta_s;
    int videos, skipped;
    double *hist;         /* mean loss of each completed epoch */
    int nhist, hist_cap;
    int resumed_epoch;    /* where the last run started (after a resume) */
    long resumed_step;
    /* the collapse guard (core/train/collapse.h), from the epoch ends of the run */
    int guard_epoch;      /* epoch of the last measurement (0: none yet) */
    double norm_ratio, const_share;
    int collapse_epoch;   /* first epoch at whose end it fired (0: never) */
    char warning[512];    /* what a user should know although the job runs or succeeded */
    int runs;             /* times a training process was started */
    int resume;           /* queued to continue from its checkpoint */
    /* outcome */
    int model_version;    /* registered version (0: none yet) */
    char error[512];
    char created[32], started[32], finished[32]; /* ISO-8601 UTC, "" = not yet */
    char runner[96];      /* host:pid of the process that ran it last */
    /* bookkeeping */
    uint64_t seq;         /* bumped at every change (event streams compare it) */
    int local;            /* this process is running it: memory is newer than disk */
    struct timespec mtime; /* of the record as last read or written */
    off_t size;
} job;

typedef struct jstream jstream;

struct srv_jobs {
    srv *s;
    char dir[4096];       /* DATA/jobs */
    char ds_root[4096];   /* DATA/datasets */
    char host[64];

    pthread_mutex_t mu;   /* the table and every job's fields */
    pthread_cond_t cv;    /* job thread: new work, cancel, stop */
    pthread_mutex_t wmu;  /* orders record writes of this process */
    job **v;              /* sorted by id */
    int n, cap;

    pthread_t thr;
    int thr_started;
    int stop;             /* guarded by mu */
    int draining;         /* guarded by mu: no new runs, a running job checkpoints */
    atomic_int cancel;    /* running job: 0, CANCEL_USER, CANCEL_SHUTDOWN */
    int running_id;       /* guarded by mu */
    int lock_fd;
    atomic_int have_lock;

    /* loop thread only */
    uv_async_t async;
    uv_timer_t timer;
    int handles;
    jstream *streams;
};

enum { CANCEL_USER = 1, CANCEL_SHUTDOWN = 2 };

/* While a job runs its record is rewritten at most this often (progress lines may
 * come hundreds a second); state changes are written at once. */
#define JOBS_RECORD_INTERVAL_S 1.0
/* An event stream sends at most one progress event per this many milliseconds
 * (each carries the losses of every epoch finished since the one before); state
 * changes go at once. docs/jobs.md documents both rates. */
#define JOBS_PROGRESS_EVENT_MS 250

/* ---- jobs_table.c ---- */
job *jobs_find(srv_jobs *J, int id);            /* mu held */
int jobs_insert(srv_jobs *J, job *j);           /* mu held; 0 or -1 (no memory) */
void jobs_changed(srv_jobs *J, job *j);         /* mu held: seq++ (wake after unlock) */
void jobs_notify(srv_jobs *J);                  /* any thread: wakes event streams */
void job_free(job *j);
/* Rereads records changed on disk (other replicas' writes) into the table; 1 if
 * anything changed. Takes mu itself; never called with it held. */
int jobs_refresh(srv_jobs *J);
/* One record by id, refreshed from disk if it changed (for GET /jobs/ID). */
void jobs_refresh_one(srv_jobs *J, int id);

/* ---- jobs_store.c ---- */
int job_hist_push(job *j, double v);            /* 0 or -1 (no memory) */
void jobs_now_iso(char out[32]);
/* Paths of a job's files into out (size 4096). kind: "json", "ckpt", "out", "base",
 * "data", "cancel". */
void jobs_path(const srv_jobs *J, int id, const char *kind, char *out);
json_t *job_json(const job *j, int full);       /* mu held; new reference */
int job_from_json(json_t *o, job *j, sola_err *e);
/* Writes the record of j atomically (takes mu to snapshot it). 0 or SOLA_E*. */
int jobs_write(srv_jobs *J, job *j, sola_err *e);
/* Creates the record of a new job under a fresh id, trying first_id and up (link:
 * never overwrites another replica's job); fills j->id. */
int jobs_create(srv_jobs *J, job *j, int first_id, sola_err *e);
/* Loads the record of id (st: its stat) into a fresh job, NULL if unreadable. */
job *jobs_load_record(srv_jobs *J, int id, const struct stat *st);
/* Removes the files a job keeps only while it may still run (checkpoint, base model,
 * output, cancel request, dataset snapshot). */
void jobs_remove_files(srv_jobs *J, int id);

/* ---- jobs_finish.c ---- */
/* Ends a run in state st (mu not held): for a final state the job's files go first,
 * then the record is written and the streams woken. error may be NULL. */
void jobs_finish(srv_jobs *J, job *j, int st, const char *error);
/* Installs DATA/jobs/ID.out.safetensors as the next version of the output model
 * (activating it if asked); the version goes to the record first. */
int jobs_register(srv_jobs *J, job *j, sola_err *e);
/* Jobs a dead runner left `running` (called once the lock is ours). */
void jobs_recover(srv_jobs *J);

/* ---- jobs_run.c ---- */
void *jobs_thread(void *arg);
/* Takes the training lock if free; then recovers what a dead runner left. The lock is
 * an open-file-description record lock (F_OFD_SETLK) on the whole of trainer.lock:
 * unlike flock, another process can test it without taking it (jobs_trainer). */
void jobs_try_lock(srv_jobs *J);
/* Is there a trainer? 1: some process holds trainer.lock (who = its "host:pid" note),
 * 0: nobody does, -1: cannot tell. Never takes the lock (a --serve-only replica). */
int jobs_trainer(srv_jobs *J, char *who, size_t n);

#endif
