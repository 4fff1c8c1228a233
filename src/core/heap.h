/*
 * heap.h — the allocator behind strata: set it up, hand free memory back,
 * say how much it holds. heap.c explains which allocator and why.
 */
#ifndef STRATA_CORE_HEAP_H
#define STRATA_CORE_HEAP_H

#include <stdint.h>

/* Once, at start, before the threads: the allocator's settings. */
void heap_init(void);

/* Hands the pages that hold nothing back to the kernel: a few
 * milliseconds; call it off the event loops. */
void heap_trim(void);

/* Bytes allocated by the process (in_use), and bytes the allocator holds
 * beyond them (free_held: resident but unallocated, the cost of
 * fragmentation and of pages it keeps for reuse). Walks the allocator's
 * state: read it at a scrape, not per request. */
void heap_bytes(uint64_t *in_use, uint64_t *free_held);

/* Where the free bytes held are, as Redis's INFO memory shows them (jemalloc
 * only; 0 on glibc): bytes free inside pages that also hold allocations
 * (fragmented: jemalloc's active less allocated, kept until every block of
 * the page is freed) and the allocator's own bookkeeping (metadata). The
 * rest of free_held is whole free pages not yet handed back. */
void heap_free_detail(uint64_t *fragmented, uint64_t *metadata);
/* "jemalloc" or "glibc": which one this binary uses. */
const char *heap_allocator(void);

#endif
