/* sorted.h -- finding a name in an array kept sorted by name (bytewise): dataset
 * items, annotated videos. Header-only. */
#ifndef SOLA_SORTED_H
#define SOLA_SORTED_H

#include <stddef.h>
#include <string.h>

/* Index of the element named `name` among n elements of `size` bytes, sorted by the
 * `char *` member at offset `off` (offsetof(T, name)), or -1. Binary search. */
static inline int sola_find_sorted(const void *base, int n, size_t size, size_t off,
                                   const char *name)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const char *m;
        memcpy(&m, (const char *)base + (size_t)mid * size + off, sizeof m);
        int c = strcmp(m, name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

#endif
