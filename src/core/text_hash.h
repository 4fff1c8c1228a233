/*
 * text_hash.h — the hash of a NUL-terminated text for the tables keyed by
 * SQL texts (the statement cache in store/db.c, the statement statistics
 * in metrics/metrics.c): XXH3, strata's hash elsewhere too (cache.c).
 *
 * Those tables hash every statement a request runs, and a statement can be
 * kilobytes long (a list filtered by value runs one SELECT per value:
 * store/lists.c). Byte-at-a-time FNV-1a cost 645 ns for a 600-byte
 * statement and 8.5 µs for 7.8 KB, twice a query; XXH3 53 ns and 451 ns
 * (-O2, a loop of 200,000).
 */
#ifndef STRATA_CORE_TEXT_HASH_H
#define STRATA_CORE_TEXT_HASH_H

#include <stdint.h>
#include <string.h>
#include <xxhash.h>

/* Never 0: tables use 0 for an empty slot. */
static inline uint64_t text_hash(const char *text)
{
    uint64_t hash = XXH3_64bits(text, strlen(text));
    return hash ? hash : 1;
}

#endif
