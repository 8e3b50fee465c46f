/* bigbuf.h -- allocations of many megabytes (packed weights, a refine's workspace,
 * the feature buffers of `sola refine DIR`) in 2 MiB pages where the kernel offers
 * them (transparent huge pages in "madvise" mode, as Debian and most distributions
 * ship them).
 *
 * Why: every 4 KiB page of a fresh buffer costs a page fault on first touch, and on
 * a virtual machine each fault also traps to the host. Measured here (2-core VM,
 * 100 MiB touched once): 85-250 ms in 4 KiB pages, 15-25 ms in 2 MiB ones; freeing
 * them 13-22 ms against 0.5. A model of C = 2048 packs ~100 MB of weights at load, so
 * this is most of what loading it cost.
 *
 * The memory comes from aligned_alloc and is released with free(); its contents are
 * undefined (like malloc). Below SOLA_BIGBUF_MIN bytes it is a plain 64-byte aligned
 * allocation. */
#ifndef SOLA_BIGBUF_H
#define SOLA_BIGBUF_H

#include <stddef.h>

#define SOLA_BIGBUF_MIN ((size_t)4 << 20)
#define SOLA_BIGBUF_PAGE ((size_t)2 << 20)

/* At least `bytes` bytes (rounded up to 64; from SOLA_BIGBUF_MIN on, to a whole number of
 * 2 MiB pages, aligned to 2 MiB and advised MADV_HUGEPAGE), or NULL. Free with free(). */
void *sola_bigbuf_alloc(size_t bytes);

#endif
