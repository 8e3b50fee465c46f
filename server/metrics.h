/* metrics.h -- solad's Prometheus metrics: counters and histograms the loop thread
 * updates as requests complete, rendered in the text exposition format 0.0.4.
 *
 * Thread rules: every function may be called from any thread (one mutex); updates
 * are a few integer operations. */
#ifndef SOLAD_METRICS_H
#define SOLAD_METRICS_H

#include <stddef.h>

typedef struct metrics metrics;

metrics *metrics_new(void);
void metrics_free(metrics *m);

/* One answered request. route is a static string (a route pattern or "unmatched");
 * methods outside the usual set are counted as "other". */
void metrics_request(metrics *m, const char *route, const char *method, int code,
                     double seconds);
void metrics_frames(metrics *m, long n);

/* Values sampled at render time. */
typedef struct metrics_gauges {
    int queue_depth;     /* work items waiting for a worker */
    int inflight;        /* work items queued or running */
    int admitted;        /* requests holding a slot (receiving a body, queued, running) */
    double inflight_bytes, inflight_bytes_max, inflight_bytes_peak; /* the memory budget */
    int workers;
    int draining;
    double start_time;   /* Unix seconds */
    int jobs[5];         /* queued, running, succeeded, failed, cancelled */
} metrics_gauges;

/* Model info lines are pulled through this callback (called with an emit function). */
typedef void (*metrics_model_emit)(void *ctx, const char *name, int version, int dim);
typedef void (*metrics_models_fn)(void *arg, metrics_model_emit emit, void *ctx);

/* Renders everything into a malloc'd text. 0 or -1 (no memory). */
int metrics_render(metrics *m, const metrics_gauges *g, metrics_models_fn models,
                   void *models_arg, char **text, size_t *len);

#endif
