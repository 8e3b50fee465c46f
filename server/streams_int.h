/* streams_int.h -- internals shared by streams.c (the table) and streams_watch.c (the
 * server-sent events of GET /streams/ID/events). Not for other modules. */
/* implemented in: streams.c streams_watch.c */
#ifndef SOLAD_STREAMS_INT_H
#define SOLAD_STREAMS_INT_H

#include <pthread.h>

#include "streams.h"

#define NBUCKETS 1024
#define NTOMBS 256

enum { R_ENDED, R_IDLE, R_REPLACED, R_NREASONS };

struct api_seq { /* one open stream */
    char id[API_SEQ_ID_MAX + 1];
    sola_stream *st;
    reg_ver *ref;          /* the pinned model version (counted reference) */
    const sola_model *m;
    int exact;             /* replies bit-identical to the offline refine (stream.h) */
    int busy;              /* a call holds it */
    uint64_t started_ms, last_ms;
    int64_t received, emitted; /* copies for listings, updated at finish */
    size_t bytes;
    struct api_seq *next;
};

typedef struct tomb {
    char id[API_SEQ_ID_MAX + 1];
    int reason;
    uint64_t at_ms;
} tomb;

struct srv_streams {
    pthread_mutex_t mu;
    reg *reg;
    int max;
    uint64_t idle_ms;
    api_seq *b[NBUCKETS];
    int n;
    size_t bytes;
    unsigned long long started, closed[R_NREASONS], rejected;
    tomb tombs[NTOMBS];
    int ntomb, tomb_next;
    uv_timer_t timer;
    uv_async_t async;      /* workers -> loop: watchers have something to send */
    int handles_on;
    const int *draining;   /* the server's flag: end the watchers */
    struct watcher *watchers;
    int nwatchers;
};

uint64_t streams__now_ms(void);
/* streams.c, lock held: the entry of id (and the link to it), or NULL; why id is not
 * open (SOLA_ENOTFOUND in e); an entry as GET /streams/ID shows it (new reference). */
api_seq *streams__find(srv_streams *t, const char *id, api_seq ***pp);
void streams__not_open(srv_streams *t, const char *id, uint64_t now, sola_err *e);
json_t *streams__describe_locked(const api_seq *q, uint64_t now);

/* streams_watch.c. Lock held: ends the watchers of stream id with an "end" event. */
void streams__end_watchers(srv_streams *t, const char *id, const char *reason);
/* Loop thread (timer): keep-alives, and the end of every watcher when draining. */
void streams__watch_tick(srv_streams *t);
/* Loop thread (async): wakes the watchers that have bytes or an end to send. */
void streams__wake_watchers(srv_streams *t);
/* Loop thread, at shutdown after MHD stopped: forgets watchers still listed. */
void streams__forget_watchers(srv_streams *t);
void streams__publish(void *self, api_seq *q, const float *y, int64_t first, int64_t k,
                      int64_t received, int ended);
int streams__watch(void *self, const char *id, int b64, api_stream **out, sola_err *e);

#endif
