/* bufcache.h -- large request and reply buffers kept for reuse.
 *
 * solad allocates a request's body and an .npy reply at the size of the array they
 * carry: 0.8 MB each at T = 100, 8 MB at T = 1000. Above malloc's mmap threshold
 * (main.c fixes it at 256 KB) every such buffer is a fresh mapping whose pages fault
 * in one by one as they are first written -- measured on the 2-core build machine,
 * writing 8 MB into a fresh buffer took ~7 ms against ~0.6 ms into one used before,
 * about as long as the refine's own overhead budget. So buffers of at least
 * BUFCACHE_MIN bytes are given back here instead of to the system, and the next
 * request of a size they fit takes one. The cache holds at most `max` bytes (least
 * recently returned buffers go first) and BUFCACHE_SLOTS buffers; what it holds is
 * idle memory outside the --max-inflight-bytes budget, so main.c keeps `max` a small
 * part of that budget. Every function is thread-safe. */
#ifndef SOLAD_BUFCACHE_H
#define SOLAD_BUFCACHE_H

#include <stddef.h>

#define BUFCACHE_MIN ((size_t)64 * 1024)
#define BUFCACHE_SLOTS 8

typedef struct bufcache bufcache;

/* max: bytes the cache may hold (0: it holds nothing; get and put still work). NULL
 * when out of memory. */
bufcache *bufcache_new(size_t max);
/* Frees what the cache holds and the cache; every buffer must have been put back. */
void bufcache_free(bufcache *c);

/* At least n bytes, 64-byte aligned; NULL when out of memory. Freed with
 * bufcache_put only (never free()). c may be NULL (then a plain allocation that put
 * frees). */
void *bufcache_get(bufcache *c, size_t n);
/* Gives p (from bufcache_get, or NULL) back: kept for reuse or freed. The cache it came
 * from is found from p itself, so this fits a free callback (MHD's). */
void bufcache_put(void *p);

/* Bytes held for reuse now (for tests and /healthz). */
size_t bufcache_held(bufcache *c);

#endif
