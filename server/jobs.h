/* jobs.h -- training jobs in solad: records, the queue, the training worker, and
 * progress events (see docs/jobs.md).
 *
 * State lives in DATA/jobs: ID.json (the record, written atomically at every state
 * change and about once a second while running), ID.ckpt.safetensors (the last
 * checkpoint), ID.data/ (hard links to the dataset's items as they were when the job
 * started, so later uploads do not change a run), ID.cancel (a cancel request from
 * any replica), trainer.lock (an OFD record lock: held by the one replica that runs jobs;
 * --serve-only replicas never take it).
 *
 * Threads: the loop thread serves the HTTP routes' event streams; one job thread per
 * process takes the lock when it can, picks queued jobs and supervises the training
 * process (solad --train-worker: its own OpenBLAS threads, --train-threads, at a lower
 * CPU priority, so training cannot take inference's cores or crash the daemon). The
 * job thread reports progress to the loop with uv_async_send. */
/* implemented in: jobs.c train_worker.c */
#ifndef SOLAD_JOBS_H
#define SOLAD_JOBS_H

#include "err.h"
#include "server.h"
#include "train.h"

typedef struct srv_jobs srv_jobs;

/* Main thread, after s->loop and s->reg exist and before the loop runs: loads the job
 * records, starts the job thread. NULL + e on failure (s->cfg.data_dir must be set). */
srv_jobs *srv_jobs_start(srv *s, sola_err *e);

/* Main thread, after the loop has returned: stops the job thread (a running job
 * checkpoints and becomes `interrupted`), closes the loop handles, frees. NULL ok. */
void srv_jobs_stop(srv_jobs *J);

/* Any thread: jobs by state, in metrics order (queued, running, succeeded, failed,
 * cancelled). */
void srv_jobs_counts(srv_jobs *J, int counts[5]);

/* What api/routes_jobs.c calls (self is the srv). */
extern const api_jobs_backend srv_jobs_be;

/* `solad --train-worker SPEC`: the training process (train_worker.c). */
int srv_train_worker_main(int argc, char **argv);

#endif
