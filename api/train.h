/* train.h -- what the training routes (api/routes_jobs.c) share with the daemon's job
 * runner (server/jobs*.c): the parsed body of POST /train, and the functions the
 * routes need from the process (the job queue lives in the server).
 *
 * The spec is parsed in one place (api_train_spec_parse) for the route, which refuses
 * a bad request before anything is queued, and for the training process, which gets
 * the stored spec back as JSON: what was accepted is exactly what runs. */
/* implemented in: train_spec.c */
#ifndef SOLA_API_TRAIN_H
#define SOLA_API_TRAIN_H

#include <stdint.h>

#include <jansson.h>

#include "api.h"
#include "err.h"

/* ---- the training request ---------------------------------------------------- */

typedef struct api_train_spec {
    char dataset[72];
    char objective[16];
    char base_model[72];   /* "" = a fresh model of the dataset's C */
    int base_version;      /* 0 = the active one */
    char output_model[72]; /* default: base_model, else the dataset's name */
    int activate;          /* make the new version active when the job succeeds */
    /* hyper-parameters (docs/spec.md section 4; defaults are the authors' recipe) */
    int epochs, batch;
    double lr;             /* resolved: the objective's default when not given */
    char schedule[16];     /* "constant" or "cosine"; resolved as lr */
    int stop_on_collapse;  /* the collapse guard ends the job (core/train/trainer.h) */
    double collapse_ratio, collapse_share; /* its thresholds (core/train/collapse.h) */
    uint64_t seed;
    int window, positions, start, step, head;
    double K;
    /* a fresh model's shape (ignored with base_model) */
    int hidden, kernel, kernel2;
    int checkpoint_every; /* epochs between checkpoints */
    /* cycle and sola+cycle (core/train/cycle.h; refused with objective sola) */
    double temperature, cycle_lambda, momentum;
    int queue, cycle_subset, cycle_hidden, cycle_dim;
    double sola_weight, cycle_weight; /* sola+cycle: the two losses' weights */
} api_train_spec;

void api_train_spec_default(api_train_spec *s);

/* Parses a POST /train body (an object; o is borrowed). Unknown members are refused
 * (a typo must not silently train with a default). Errors: SOLA_EINVAL (400) for a
 * malformed or out-of-range field, SOLA_ESHAPE (422) for an objective this build
 * cannot train; the message names the field. */
int api_train_spec_parse(json_t *o, api_train_spec *s, sola_err *e);

/* The cycle objective's settings of a spec, as core/train/cycle.h takes them. */
struct sola_cycle_cfg;
void api_train_spec_cycle(const api_train_spec *s, struct sola_cycle_cfg *c);

/* The spec as JSON, every field resolved (new reference; NULL if out of memory). */
json_t *api_train_spec_json(const api_train_spec *s);

/* The one place that knows which objectives this build trains (sola, cycle,
 * sola+cycle): 0, or SOLA_ESHAPE with "objective 'X' is not available in this build"
 * for a known one this build lacks, or SOLA_EINVAL for a name that is no objective. */
int api_train_objective_check(const char *name, sola_err *e);

/* ---- what the job routes need from the process --------------------------------- */

/* Job ids are positive integers. Every function is called on a worker thread (they
 * may read job records from disk) except job_events, called on the loop thread. JSON
 * results are new references. Errors: SOLA_ENOTFOUND (404), SOLA_EINVAL (400),
 * SOLA_ESHAPE (422), and the codes below. */
enum {
    API_JOB_BUSY = 1,     /* job_submit: the queue is full (503 + Retry-After) */
    API_JOB_CONFLICT = 2, /* cancel/resume: not in a state that allows it (409) */
    API_JOB_PENDING = 3,  /* cancel: requested, takes effect within one step (202) */
};

typedef struct api_jobs_backend {
    /* Validates against the stored dataset and models (404 if missing, 422 if C
     * differs), writes the queued record, and returns the job. Returns 0, an API_JOB_*
     * code (> 0, message in e) or a SOLA_E* code (< 0). */
    int (*submit)(void *self, const api_train_spec *spec, json_t **job, sola_err *e);
    json_t *(*list)(void *self);
    json_t *(*get)(void *self, int id, sola_err *e);
    /* Cancel a queued, running or interrupted job: 0 (done), API_JOB_PENDING, or
     * API_JOB_CONFLICT (already finished). *job: its state after the call. */
    int (*cancel)(void *self, int id, json_t **job, sola_err *e);
    /* Queue an interrupted job again, to continue from its checkpoint. */
    int (*resume)(void *self, int id, json_t **job, sola_err *e);
    /* Loop thread: a server-sent-events stream of the job's progress. */
    int (*events)(void *self, int id, api_stream **out, sola_err *e);
} api_jobs_backend;

#endif
