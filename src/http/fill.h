/*
 * fill.h — internal to src/http: the fill of a cacheable key as a state
 * machine (fill.c). request.c hands it a miss (or a stale hit to refresh)
 * after its L1 lookup; the fill walks the cache tiers below the L1
 * (cache/tier.h), then the database, and answers the request.
 *
 * The transition table is plain data (fill_next), so it is tested without
 * a server (tests/unit/test_fill.c).
 */
#ifndef STRATA_HTTP_FILL_H
#define STRATA_HTTP_FILL_H

#include <h2o.h>

#include "cache/cache.h"
#include "cache/tier.h"
#include "http/response_cache.h"

#define FILL_TIERS_MAX 4 /* tiers below the L1 a fill may ask (fill.c's list) */

typedef enum fill_state {
    FILL_L1_LOOKUP,    /* request.c's cached_read, on the loop: fresh and stale are answered there */
    FILL_TIER_LOOKUP,  /* asking the tiers in order for the value */
    FILL_TIER_REFILL,  /* a stale tier value answered: asking only for a snapshot and the lease */
    FILL_TIER_REREAD,  /* another instance refreshes that value: reading it once more, stale or fresh */
    FILL_WAIT_LEASE,   /* another instance fills the key: polling its tier, bounded */
    FILL_WAIT_REFRESH, /* another instance refreshes the key: polling, bounded */
    FILL_REFRESH,      /* a stale tier value was answered: leading a new flight to refresh it */
    FILL_DB,           /* a job on the worker pool: the handler, the L1 (fenced), the tiers' records */
    FILL_SHED,         /* not run (load shedding, or nobody wants it): stale copy or 503 */
    FILL_STORE,        /* back on the loop: records to the tiers that missed, leases given back */
    FILL_RESPOND,      /* the request answered if it still waits; the job freed */
    FILL_STATES
} fill_state;

typedef enum fill_event {
    FILL_EV_LEAD,         /* leads its key's flight */
    FILL_EV_ALONE,        /* a representation without a flight (cache off, no key, a waiter alone) */
    FILL_EV_HIT,          /* a tier's value ends the flight */
    FILL_EV_HIT_STALE,    /* a tier's value, stale: answer it, then refresh */
    FILL_EV_MISS,         /* a tier has none: a snapshot, maybe its lease; the next tier */
    FILL_EV_ERROR,        /* a tier failed, or its value did not decode: the next tier */
    FILL_EV_BUSY,         /* another instance holds the tier's lease */
    FILL_EV_NO_TIER,      /* no tier left to ask */
    FILL_EV_POLL,         /* the poll timer fired */
    FILL_EV_UNASKED,      /* the tier could not be asked */
    FILL_EV_POLL_UNASKED, /* …after a poll */
    FILL_EV_GIVE_UP,      /* waited cache.coalesce_timeout_ms: fill alone */
    FILL_EV_FOLLOW,       /* another flight already refreshes the key */
    FILL_EV_RAN,          /* the worker ran it */
    FILL_EV_SHED,         /* the pool would not run it */
    FILL_EV_DONE,         /* the state's work is done */
    FILL_EVENTS
} fill_event;

/* The state after `event` in `state`; FILL_STATES when the table has no
 * such transition (a bug: fill.c aborts). */
fill_state fill_next(fill_state state, fill_event event);
const char *fill_state_name(fill_state state);

/* What a fill owes a tier that missed: a store fenced at its snapshot (the
 * record built on the worker), or its lease given back. */
typedef struct fill_debt {
    bool owed;
    uint64_t snapshot;
    char token[TIER_TOKEN_MAX + 1]; /* the lease ("" without one) */
    tier_record rec;
    uint64_t ttl_ms;
} fill_debt;

/* A fill's part of a job (server_internal.h). */
typedef struct fill {
    fill_state state;
    cache_flight *flight; /* while this job leads the key's flight */
    cache_entry *entry;   /* the representation: built on the worker, or from a tier */
    cache_entry *stale;   /* the fail-safe copy */
    rc_outcome outcome;   /* how entry came to be */
    size_t tier;          /* the tier being asked, or the next to ask */
    fill_debt debt[FILL_TIERS_MAX];
    lsn_t read_lsn;           /* where the handler read: the tiers refuse a value read behind a write */
    uint64_t poll_until;      /* 0 until a tier first answers busy */
    h2o_timeout_entry_t poll; /* in the loop's l2_poll_timeout while waiting */
    uint32_t ns;
    char site[RC_SITE_MAX + 1];
    size_t key_len; /* 0: no key (no flight) */
    char key[RC_KEY_MAX];
} fill;

/* A cacheable key, for the fill that leads its flight. */
typedef struct fill_key {
    const char *key;
    size_t key_len;
    uint32_t ns;
    const char *site;
} fill_key;

#endif
