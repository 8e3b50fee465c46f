/* budget.h -- one memory budget for the whole process (--max-inflight-bytes).
 *
 * What counts: request bodies held in memory (reserved from Content-Length when the
 * headers arrive, before a byte of body is read), copies made of them while parsing,
 * and replies from the moment they are planned until they have been sent. What does
 * not: uploads spooled to disk, models, the compute workspaces (persistent, sized by
 * the largest request a worker has seen), libmicrohttpd's per-connection buffers.
 *
 * A request that does not fit now is answered 503 + Retry-After; one that could never
 * fit (larger than the whole budget) 413. Any thread; lock-free. */
#ifndef SOLAD_BUDGET_H
#define SOLAD_BUDGET_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct srv_budget {
    size_t max;
    atomic_size_t used;
    atomic_size_t peak; /* highest `used` seen (metrics, tests) */
} srv_budget;

/* Reserves n bytes if they fit under max: 0, or -1 (nothing reserved). */
int budget_take(srv_budget *b, size_t n);
/* Reserves n bytes whether or not they fit (memory that already exists). */
void budget_force(srv_budget *b, size_t n);
/* Gives back n bytes taken or forced before. */
void budget_give(srv_budget *b, size_t n);
size_t budget_used(srv_budget *b);

#endif
