/*
 * heap.c — which allocator strata runs on, and the little it asks of it.
 *
 * A cache server allocates and frees values of every size all day on
 * many threads: representations dropped by every save and refilled on
 * another thread, rendered diffs evicted from a full history cache for
 * smaller ones. glibc's malloc fragments under that. A soak
 * (bench/soak.sh, docs/benchmarks.md) saw glibc's bytes in use flat at
 * 86 MB while the free bytes it held grew from 12 to 30 MB in 12 minutes,
 * and the resident memory with them, though malloc_trim ran every 10 s
 * and the mmap threshold was fixed; two arenas instead of glibc's eight
 * per core did no better (8 minutes). So the
 * release build links jemalloc, as Redis and Varnish do for the same
 * reason: size classes keep a freed block's space for a block of its own
 * size, and unused pages decay back to the kernel by themselves.
 *
 * Test builds keep the sanitizers' allocator and are built without
 * STRATA_JEMALLOC: glibc then, with its mmap threshold fixed (glibc raises
 * it each time a block above it is freed, up to 32 MB, after which every
 * large rendered page is carved from an arena), malloc_trim and
 * mallinfo2.
 */
#include "core/heap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#ifdef STRATA_JEMALLOC
#include <jemalloc/jemalloc.h>

void heap_init(void) {}

void heap_trim(void)
{
    char name[64];
    snprintf(name, sizeof name, "arena.%u.purge", (unsigned)MALLCTL_ARENAS_ALL);
    mallctl(name, NULL, NULL, NULL, 0);
}

static uint64_t stat_bytes(const char *name)
{
    size_t value = 0, size = sizeof value;
    return mallctl(name, &value, &size, NULL, 0) == 0 ? (uint64_t)value : 0;
}

void heap_stats_read(heap_stats *out)
{
    uint64_t epoch = 1;
    size_t size = sizeof epoch;
    mallctl("epoch", &epoch, &size, &epoch, size); /* the statistics are refreshed on demand */
    uint64_t allocated = stat_bytes("stats.allocated"), resident = stat_bytes("stats.resident");
    uint64_t active = stat_bytes("stats.active");
    out->in_use = allocated;
    out->free_held = resident > allocated ? resident - allocated : 0;
    out->fragmented = active > allocated ? active - allocated : 0;
    out->metadata = stat_bytes("stats.metadata");
}

const char *heap_allocator(void)
{
    return "jemalloc";
}

#else
#include <malloc.h>

enum { MMAP_THRESHOLD_BYTES = 128 * 1024 }; /* glibc's own starting value: fixing it stops the raising */

void heap_init(void)
{
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
}

void heap_trim(void)
{
    malloc_trim(0);
}

void heap_stats_read(heap_stats *out)
{
    struct mallinfo2 mi = mallinfo2();
    *out = (heap_stats){.in_use = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd, .free_held = (uint64_t)mi.fordblks};
}

const char *heap_allocator(void)
{
    return "glibc";
}
#endif
