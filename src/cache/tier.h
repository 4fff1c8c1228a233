/*
 * tier.h — a cache tier below the L1: the one small interface every shared
 * or remote tier offers to the fill path (src/http/fill.c).
 *
 * The L1 (cache.h) is answered on the event loop, synchronously, and is not
 * one of these: a fresh hit must cost nothing more than the L1's own call.
 * Below it, tiers are asked in order by a fill that leads its key's flight,
 * each asynchronously, on the loop thread that asked:
 *
 *   lookup   (site, key) → TIER_HIT with a value; or TIER_MISS with a
 *            snapshot (the fence of a fill starting now) and, maybe, the
 *            key's lease; or TIER_BUSY (another fill holds the lease: poll
 *            or fill alone); or TIER_ERROR (go on without this tier).
 *   store    a record, fenced at the snapshot the miss gave, accepted only
 *            from the lease's holder (or with no lease out); releases it.
 *   release  gives a lease up without storing (the fill failed).
 *
 * Every tier stores the same record (snapshot, tags, lifetimes, payload;
 * l2_record_new's format), so a fill builds it once on its worker and any
 * tier can take it. A tier is a `cache_tier` of functions plus the handle
 * each loop opened for it (`conn`); the L2 (l2.h, Redis) is one, `l2_tier`.
 * Adding a tier is one file that fills a cache_tier, and one row in the
 * fill path's list (fill.c).
 */
#ifndef STRATA_CACHE_TIER_H
#define STRATA_CACHE_TIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/lsn.h"

/* Lifetimes as the L1 knows them: fresh, then stale, then grace, from
 * `created_ms` (wall clock: instances compare it). */
typedef struct tier_lifetimes {
    uint64_t created_ms;
    uint32_t fresh_ms, stale_ms, grace_ms;
} tier_lifetimes;

typedef enum tier_outcome {
    TIER_HIT,   /* a valid value: payload, life */
    TIER_MISS,  /* none; snapshot set; leased if this lookup took the lease */
    TIER_BUSY,  /* none, and another fill holds the lease: wait or fill alone */
    TIER_ERROR, /* the tier failed, timed out, or is down */
} tier_outcome;

#define TIER_TOKEN_MAX 48

typedef struct tier_result {
    tier_outcome outcome;
    const char *payload; /* TIER_HIT: valid during the callback only */
    size_t payload_len;
    tier_lifetimes life;
    uint64_t snapshot;              /* TIER_MISS, TIER_BUSY: the fence of a fill that starts now */
    bool leased;                    /* TIER_MISS: token holds the lease */
    char token[TIER_TOKEN_MAX + 1]; /* the lease's token ("" without one) */
} tier_result;

typedef void (*tier_lookup_cb)(void *ctx, const tier_result *r);

typedef enum tier_lookup_mode {
    TIER_READ,     /* the value; on a miss, a snapshot and the lease */
    TIER_SNAPSHOT, /* no value (it is known to be stale): a snapshot and the lease, to refill */
} tier_lookup_mode;

/* A record ready to store (built on a worker, any thread). */
typedef struct tier_record {
    char *data;
    size_t len;
} tier_record;

typedef struct cache_tier {
    const char *name;
    /* True if cb will be called (once, on this loop); false if the lookup
     * could not be sent — then cb is never called. */
    bool (*lookup)(void *conn, const char *site, const void *key, size_t key_len, tier_lookup_mode mode,
                   tier_lookup_cb cb, void *ctx);
    /* Takes over rec. Fire and forget. read_lsn: the WAL position the
     * value was read at on a replica (LSN_NONE: the primary, or SQLite);
     * the tier refuses it if one of its tags was invalidated by a write
     * past that position (core/lsn.h). */
    void (*store)(void *conn, const char *site, const void *key, size_t key_len, const char *token, tier_record *rec,
                  uint64_t ttl_ms, lsn_t read_lsn);
    void (*release)(void *conn, const char *site, const void *key, size_t key_len, const char *token);
} cache_tier;

#endif
