/* metrics.c -- see metrics.h. Families and label sets are few (routes are patterns,
 * methods a fixed set, codes a handful), so plain arrays with linear search do. */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_helpers.h"

static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25,  0.5,    1,     2.5,  5,     10,   30};
#define NB (sizeof buckets / sizeof buckets[0])

typedef struct counter {
    const char *route;
    char method[8];
    int code;
    unsigned long long n;
} counter;

typedef struct hist {
    const char *route;
    unsigned long long b[NB]; /* non-cumulative; summed when rendered */
    unsigned long long count;
    double sum;
} hist;

struct metrics {
    pthread_mutex_t mu;
    counter *c;
    int nc, capc;
    hist *h;
    int nh, caph;
    unsigned long long frames;
};

metrics *metrics_new(void)
{
    metrics *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->mu, NULL);
    return m;
}

void metrics_free(metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m->c);
    free(m->h);
    free(m);
}

static const char *norm_method(const char *m)
{
    static const char *known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "other";
}

void metrics_request(metrics *m, const char *route, const char *method, int code,
                     double seconds)
{
    const char *meth = norm_method(method);
    pthread_mutex_lock(&m->mu);
    counter *c = NULL;
    for (int i = 0; i < m->nc; i++)
        if (m->c[i].code == code && strcmp(m->c[i].route, route) == 0 &&
            strcmp(m->c[i].method, meth) == 0) {
            c = &m->c[i];
            break;
        }
    if (!c && m->nc == m->capc) {
        int cap = m->capc ? m->capc * 2 : 32;
        counter *p = realloc(m->c, sizeof *p * (size_t)cap);
        if (p) {
            m->c = p;
            m->capc = cap;
        }
    }
    if (!c && m->nc < m->capc) {
        c = &m->c[m->nc++];
        c->route = route;
        snprintf(c->method, sizeof c->method, "%s", meth);
        c->code = code;
        c->n = 0;
    }
    if (c)
        c->n++;

    hist *h = NULL;
    for (int i = 0; i < m->nh; i++)
        if (strcmp(m->h[i].route, route) == 0) {
            h = &m->h[i];
            break;
        }
    if (!h && m->nh == m->caph) {
        int cap = m->caph ? m->caph * 2 : 16;
        hist *p = realloc(m->h, sizeof *p * (size_t)cap);
        if (p) {
            m->h = p;
            m->caph = cap;
        }
    }
    if (!h && m->nh < m->caph) {
        h = &m->h[m->nh++];
        memset(h, 0, sizeof *h);
        h->route = route;
    }
    if (h) {
        size_t i = 0;
        while (i < NB && seconds > buckets[i])
            i++;
        if (i < NB)
            h->b[i]++;
        h->count++;
        h->sum += seconds;
    }
    pthread_mutex_unlock(&m->mu);
}

void metrics_frames(metrics *m, long n)
{
    if (n <= 0)
        return;
    pthread_mutex_lock(&m->mu);
    m->frames += (unsigned long long)n;
    pthread_mutex_unlock(&m->mu);
}

static void metrics_escape(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 3 < n; p++) {
        if (*p == '\\' || *p == '"') {
            out[o++] = '\\';
            out[o++] = *p;
        } else if (*p == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

static void family(api_buf *b, const char *name, const char *type, const char *help)
{
    api_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

typedef struct emit_ctx {
    api_buf *b;
} emit_ctx;

static void emit_model(void *ctx, const char *name, int version, int dim)
{
    emit_ctx *ec = ctx;
    char esc[256];
    metrics_escape(name, esc, sizeof esc);
    api_buf_printf(ec->b, "solad_model_info{model=\"%s\",version=\"%d\",dim=\"%d\"} 1\n", esc,
                   version, dim);
}

int metrics_render(metrics *m, const metrics_gauges *g, metrics_models_fn models,
                   void *models_arg, char **text, size_t *len)
{
    api_buf b = {0};
    char route[512];
    pthread_mutex_lock(&m->mu);
    family(&b, "solad_http_requests_total", "counter",
           "HTTP requests answered, by route pattern, method and status code.");
    for (int i = 0; i < m->nc; i++) {
        metrics_escape(m->c[i].route, route, sizeof route);
        api_buf_printf(&b, "solad_http_requests_total{route=\"%s\",method=\"%s\",code=\"%d\"} %llu\n",
                       route, m->c[i].method, m->c[i].code, m->c[i].n);
    }
    family(&b, "solad_http_request_duration_seconds", "histogram",
           "Time from the request's headers to its completed reply, by route pattern.");
    for (int i = 0; i < m->nh; i++) {
        const hist *h = &m->h[i];
        metrics_escape(h->route, route, sizeof route);
        unsigned long long cum = 0;
        for (size_t k = 0; k < NB; k++) {
            cum += h->b[k];
            api_buf_printf(&b, "solad_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                           route, buckets[k], cum);
        }
        api_buf_printf(&b, "solad_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                       route, h->count);
        api_buf_printf(&b, "solad_http_request_duration_seconds_sum{route=\"%s\"} %.9g\n", route,
                       h->sum);
        api_buf_printf(&b, "solad_http_request_duration_seconds_count{route=\"%s\"} %llu\n", route,
                       h->count);
    }
    family(&b, "solad_frames_refined_total", "counter",
           "Snippets (rows of [T, C] sequences) passed through a model.");
    api_buf_printf(&b, "solad_frames_refined_total %llu\n", m->frames);
    pthread_mutex_unlock(&m->mu);

    family(&b, "solad_queue_depth", "gauge", "Compute work items waiting for a worker.");
    api_buf_printf(&b, "solad_queue_depth %d\n", g->queue_depth);
    family(&b, "solad_inflight", "gauge", "Compute work items queued or running.");
    api_buf_printf(&b, "solad_inflight %d\n", g->inflight);
    family(&b, "solad_admitted", "gauge",
           "Requests holding a slot of --workers + --queue (receiving a body, queued, "
           "running).");
    api_buf_printf(&b, "solad_admitted %d\n", g->admitted);
    family(&b, "solad_inflight_bytes", "gauge",
           "Bytes of request bodies and replies in memory, counted against "
           "--max-inflight-bytes.");
    api_buf_printf(&b, "solad_inflight_bytes %.0f\n", g->inflight_bytes);
    family(&b, "solad_inflight_bytes_max", "gauge", "--max-inflight-bytes.");
    api_buf_printf(&b, "solad_inflight_bytes_max %.0f\n", g->inflight_bytes_max);
    family(&b, "solad_inflight_bytes_peak", "gauge",
           "Highest solad_inflight_bytes since the start.");
    api_buf_printf(&b, "solad_inflight_bytes_peak %.0f\n", g->inflight_bytes_peak);
    family(&b, "solad_workers", "gauge", "Compute worker threads.");
    api_buf_printf(&b, "solad_workers %d\n", g->workers);
    family(&b, "solad_draining", "gauge", "1 while shutting down (readiness fails).");
    api_buf_printf(&b, "solad_draining %d\n", g->draining);
    family(&b, "solad_model_info", "gauge",
           "Active version and feature dimension of each served model (value is 1).");
    if (models) {
        emit_ctx ec = {&b};
        models(models_arg, emit_model, &ec);
    }
    family(&b, "solad_jobs", "gauge", "Training jobs by state.");
    static const char *states[5] = {"queued", "running", "succeeded", "failed", "cancelled"};
    for (int i = 0; i < 5; i++)
        api_buf_printf(&b, "solad_jobs{state=\"%s\"} %d\n", states[i], g->jobs[i]);
    family(&b, "process_start_time_seconds", "gauge",
           "Start time of the process since the Unix epoch in seconds.");
    api_buf_printf(&b, "process_start_time_seconds %.3f\n", g->start_time);
    if (b.failed) {
        api_buf_free(&b);
        return -1;
    }
    *text = b.p;
    *len = b.len;
    return 0;
}
