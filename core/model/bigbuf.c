/* bigbuf.c -- see bigbuf.h. */
#include "bigbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

void *sola_bigbuf_alloc(size_t bytes)
{
    if (bytes > SIZE_MAX - SOLA_BIGBUF_PAGE)
        return NULL;
    if (bytes < SOLA_BIGBUF_MIN)
        return aligned_alloc(64, bytes ? (bytes + 63) & ~(size_t)63 : 64);
    size_t n = (bytes + SOLA_BIGBUF_PAGE - 1) & ~(SOLA_BIGBUF_PAGE - 1);
    void *p = aligned_alloc(SOLA_BIGBUF_PAGE, n);
#ifdef MADV_HUGEPAGE
    /* advice only: without huge pages (THP "never", other kernels) the buffer is the same
     * memory in small pages */
    if (p)
        madvise(p, n, MADV_HUGEPAGE);
#endif
    return p;
}
