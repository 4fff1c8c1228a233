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

/* What the allocator holds, all read at one moment. */
typedef struct heap_stats {
    uint64_t in_use;    /* bytes allocated by the process */
    uint64_t free_held; /* resident but unallocated: the cost of fragmentation and of pages kept for reuse */
    /* Where free_held is, as Redis's INFO memory shows it (jemalloc only;
     * 0 on glibc): bytes free inside pages that also hold allocations
     * (jemalloc's active less allocated, kept until every block of the
     * page is freed) and the allocator's own bookkeeping. The rest of
     * free_held is whole free pages not yet handed back. */
    uint64_t fragmented;
    uint64_t metadata;
} heap_stats;

/* Refreshes the allocator's statistics once and reads them. Walks its
 * state: read it at a scrape, not per request. */
void heap_stats_read(heap_stats *out);
/* "jemalloc" or "glibc": which one this binary uses. */
const char *heap_allocator(void);

#endif
