/* bufcache.c -- see bufcache.h. Each buffer carries a 64-byte header in front of what
 * the caller sees: the cache it belongs to and its capacity. */
#include "bufcache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#define HDR 64

typedef struct hdr {
    bufcache *c;
    size_t cap; /* bytes after the header */
} hdr;

struct bufcache {
    pthread_mutex_t mu;
    size_t max, held;
    int n;                       /* slots in use, oldest first */
    hdr *slot[BUFCACHE_SLOTS];
};

bufcache *bufcache_new(size_t max)
{
    bufcache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->max = max;
    return c;
}

void bufcache_free(bufcache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        free(c->slot[i]);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Takes slot i out of the cache (lock held); the others keep their order. */
static hdr *slot_take(bufcache *c, int i)
{
    hdr *h = c->slot[i];
    c->held -= h->cap;
    for (; i + 1 < c->n; i++)
        c->slot[i] = c->slot[i + 1];
    c->n--;
    return h;
}

void *bufcache_get(bufcache *c, size_t n)
{
    if (n > SIZE_MAX - 2 * HDR)
        return NULL;
    hdr *h = NULL;
    if (c && n >= BUFCACHE_MIN) {
        /* best fit: the smallest held buffer that is large enough */
        pthread_mutex_lock(&c->mu);
        int best = -1;
        for (int i = 0; i < c->n; i++)
            if (c->slot[i]->cap >= n && (best < 0 || c->slot[i]->cap < c->slot[best]->cap))
                best = i;
        if (best >= 0)
            h = slot_take(c, best);
        pthread_mutex_unlock(&c->mu);
    }
    if (!h) {
        size_t total = (HDR + n + 63) & ~(size_t)63;
        if (!(h = aligned_alloc(64, total)))
            return NULL;
        h->c = c;
        h->cap = total - HDR;
    }
    return (char *)h + HDR;
}

void bufcache_put(void *p)
{
    if (!p)
        return;
    hdr *h = (hdr *)(void *)((char *)p - HDR);
    bufcache *c = h->c;
    if (!c || h->cap < BUFCACHE_MIN || h->cap > c->max) {
        free(h);
        return;
    }
    hdr *drop[BUFCACHE_SLOTS + 1];
    int nd = 0;
    pthread_mutex_lock(&c->mu);
    /* make room: the least recently returned buffers go first */
    while (c->n > 0 && (c->n == BUFCACHE_SLOTS || c->held + h->cap > c->max))
        drop[nd++] = slot_take(c, 0);
    c->slot[c->n++] = h;
    c->held += h->cap;
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < nd; i++) /* outside the lock: munmap takes time */
        free(drop[i]);
}

size_t bufcache_held(bufcache *c)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->mu);
    size_t n = c->held;
    pthread_mutex_unlock(&c->mu);
    return n;
}
