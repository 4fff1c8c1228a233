/*
 * fill.c — the fill of a cacheable key, as a state machine.
 *
 * request.c looks a cacheable read up in the L1 on the loop and answers a
 * fresh or stale entry there (a stale one also starts a refresh here). On
 * a miss the first request of a key leads the key's flight and its job is
 * the fill; the others wait for it (waiters, below). A fill walks the
 * tiers below the L1 (cache/tier.h; today the L2), then the database:
 *
 *   L1_LOOKUP   (request.c; fresh and stale are answered there)
 *     │lead                                           │alone
 *     ▼                                               │
 *   TIER_LOOKUP ⟲ miss, error: the next tier ◀──┐     │
 *     │busy ▲poll       │hit_stale       │hit   │     │
 *     ▼     │           ▼                │      │     │
 *   WAIT_LEASE        REFRESH ──follow──▶┤      │     │
 *     │give_up          │lead            │      │     │
 *     │                 ▼                │      │     │
 *     │               TIER_REFILL ⟲ miss, error │     │
 *     │                 │busy  (hit: as lookup) │     │
 *     │                 ▼                │      │     │
 *     │               TIER_REREAD ─hit,─▶┤      │     │
 *     │                 │busy ▲ unasked  │      │     │
 *     │                 ▼     │poll      │  miss, error
 *     │               WAIT_REFRESH       │      │     │
 *     │                 │give_up         │   (TIER_REREAD)
 *     ▼                 ▼                │            ▼
 *   DB ◀── no_tier (any TIER_*); poll_unasked (TIER_REREAD)
 *     │ran      │shed                    │
 *     │         ▼                        │
 *     │       SHED ─done────────────────▶┤
 *     ▼                                  │
 *   STORE ◀──────────────────────────────┘
 *     │done
 *     ▼
 *   RESPOND   (the job is freed)
 *
 * (`transitions` below is the whole table; tests/unit/test_fill.c walks it.)
 *
 *   TIER_LOOKUP   asks the tiers in order from `tier`; a hit is promoted
 *                 to the L1 and answers the flight (a stale one is
 *                 answered at once and refreshed: REFRESH); a miss leaves
 *                 the tier a debt (its snapshot, maybe its lease) and asks
 *                 the next; an error or an unaskable tier (breaker open,
 *                 invalidations owed) is skipped; none left: the database.
 *   WAIT_LEASE    another instance holds the lease: the expired copy, if
 *                 any, is answered at once (fwd=stale while waiting), and
 *                 the tier is polled every L2_POLL_MS until
 *                 cache.coalesce_timeout_ms, then the fill goes alone (its
 *                 store accepted only if the lease is gone by then).
 *   REFRESH       leads a new flight for the key, unless one is under way.
 *   TIER_REFILL   asks for a snapshot and the lease only; if another
 *                 instance refreshes (busy), TIER_REREAD reads its value,
 *                 stale or fresh, once more for whoever joined the flight.
 *   DB            request.c's job on the worker pool: the handler, the
 *                 representation, cache_flight_finish (the L1, fenced at
 *                 the flight's epoch), a record for every tier owed.
 *   SHED          the pool would not run it: the expired copy, or 503; the
 *                 flight ended empty, so its waiters answer alone.
 *   STORE         the records to the tiers (fenced at their snapshots),
 *                 or the leases given back.
 *   RESPOND       the request, if it still waits: a 5xx with a stale copy
 *                 serves the copy (fail-safe); then the job is freed.
 *
 * Every transition goes through fill_advance: the table names the next
 * state, fill_enter does that state's work. A fill that is not the
 * flight's leader is a waiter: called back with the leader's entry, or
 * after cache.coalesce_timeout_ms answering alone (a job of its own).
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "http/server_internal.h"

/* ---- the transition table ------------------------------------------------------------------- */

static const struct {
    fill_state from;
    fill_event event;
    fill_state to;
} transitions[] = {
    {FILL_L1_LOOKUP, FILL_EV_LEAD, FILL_TIER_LOOKUP},
    {FILL_L1_LOOKUP, FILL_EV_ALONE, FILL_DB},

    {FILL_TIER_LOOKUP, FILL_EV_HIT, FILL_STORE},
    {FILL_TIER_LOOKUP, FILL_EV_HIT_STALE, FILL_REFRESH},
    {FILL_TIER_LOOKUP, FILL_EV_MISS, FILL_TIER_LOOKUP},
    {FILL_TIER_LOOKUP, FILL_EV_ERROR, FILL_TIER_LOOKUP},
    {FILL_TIER_LOOKUP, FILL_EV_BUSY, FILL_WAIT_LEASE},
    {FILL_TIER_LOOKUP, FILL_EV_NO_TIER, FILL_DB},

    {FILL_WAIT_LEASE, FILL_EV_POLL, FILL_TIER_LOOKUP},
    {FILL_WAIT_LEASE, FILL_EV_GIVE_UP, FILL_DB},

    {FILL_REFRESH, FILL_EV_LEAD, FILL_TIER_REFILL},
    {FILL_REFRESH, FILL_EV_FOLLOW, FILL_STORE},

    {FILL_TIER_REFILL, FILL_EV_HIT, FILL_STORE},
    {FILL_TIER_REFILL, FILL_EV_HIT_STALE, FILL_REFRESH},
    {FILL_TIER_REFILL, FILL_EV_MISS, FILL_TIER_REFILL},
    {FILL_TIER_REFILL, FILL_EV_ERROR, FILL_TIER_REFILL},
    {FILL_TIER_REFILL, FILL_EV_BUSY, FILL_TIER_REREAD},
    {FILL_TIER_REFILL, FILL_EV_NO_TIER, FILL_DB},

    {FILL_TIER_REREAD, FILL_EV_HIT, FILL_STORE},
    {FILL_TIER_REREAD, FILL_EV_MISS, FILL_TIER_LOOKUP},
    {FILL_TIER_REREAD, FILL_EV_ERROR, FILL_TIER_LOOKUP},
    {FILL_TIER_REREAD, FILL_EV_BUSY, FILL_WAIT_REFRESH},
    {FILL_TIER_REREAD, FILL_EV_UNASKED, FILL_STORE}, /* the flight ended empty */
    {FILL_TIER_REREAD, FILL_EV_POLL_UNASKED, FILL_DB},

    {FILL_WAIT_REFRESH, FILL_EV_POLL, FILL_TIER_REREAD},
    {FILL_WAIT_REFRESH, FILL_EV_GIVE_UP, FILL_DB},

    {FILL_DB, FILL_EV_RAN, FILL_STORE},
    {FILL_DB, FILL_EV_SHED, FILL_SHED},
    {FILL_SHED, FILL_EV_DONE, FILL_STORE},
    {FILL_STORE, FILL_EV_DONE, FILL_RESPOND},
};

fill_state fill_next(fill_state state, fill_event event)
{
    for (size_t i = 0; i < sizeof(transitions) / sizeof(transitions[0]); i++)
        if (transitions[i].from == state && transitions[i].event == event)
            return transitions[i].to;
    return FILL_STATES;
}

const char *fill_state_name(fill_state state)
{
    static const char *const names[FILL_STATES] = {
        [FILL_L1_LOOKUP] = "l1_lookup",
        [FILL_TIER_LOOKUP] = "tier_lookup",
        [FILL_TIER_REFILL] = "tier_refill",
        [FILL_TIER_REREAD] = "tier_reread",
        [FILL_WAIT_LEASE] = "wait_lease",
        [FILL_WAIT_REFRESH] = "wait_refresh",
        [FILL_REFRESH] = "refresh",
        [FILL_DB] = "db",
        [FILL_SHED] = "shed",
        [FILL_STORE] = "store",
        [FILL_RESPOND] = "respond",
    };
    return state < FILL_STATES ? names[state] : "?";
}

/* ---- the tiers below the L1, asked in this order -------------------------------------------- */

typedef struct fill_tier {
    const cache_tier *ops;
    void *(*conn)(loop_thread *lt); /* this loop's handle; NULL: not configured */
    bool (*readable)(void);         /* may be asked now (breaker, invalidations owed) */
} fill_tier;

static void *l2_conn_of(loop_thread *lt)
{
    return lt->l2;
}

static const fill_tier tiers[] = {
    {&l2_tier, l2_conn_of, rc_l2_readable},
};
_Static_assert(sizeof(tiers) / sizeof(tiers[0]) <= FILL_TIERS_MAX, "raise FILL_TIERS_MAX");
#define TIER_COUNT (sizeof(tiers) / sizeof(tiers[0]))

/* ---- the machine ----------------------------------------------------------------------------- */

static void fill_enter(job *j, fill_event cause);

/* The one place a fill changes state. The caller must not touch j after
 * it: the state's work may free it. */
static void fill_advance(job *j, fill_event event)
{
    fill_state next = fill_next(j->fill.state, event);
    if (next == FILL_STATES) {
        log_line line;
        log_begin(&line, LOG_ERROR, "fill: no transition");
        log_str(&line, "state", fill_state_name(j->fill.state));
        log_int(&line, "event", (int)event);
        log_end(&line);
        abort(); /* a bug: the table is the machine */
    }
    j->fill.state = next;
    fill_enter(j, event);
}

/* Answers the request now with `e` (taking it over) while the fill goes
 * on without it. */
static void answer_early(job *j, cache_entry **e, rc_outcome outcome)
{
    if (j->request.req == NULL)
        return;
    request_tracker *t = j->request.tracker;
    t->job = NULL;
    rc_send(j->request.req, t->request_id, e, outcome, t->started_ns);
    j->request.req = NULL;
}

void fill_abandon(job *j)
{
    if (j->fill.flight != NULL)
        cache_flight_finish(rc_cache(), j->fill.flight, NULL, rc_now_ms(), NULL);
    j->fill.flight = NULL;
}

static void on_tier_answer(void *ctx, const tier_result *r);

/* Sends tier i the lookup; false if it cannot be asked now. */
static bool tier_ask(job *j, size_t i, tier_lookup_mode mode)
{
    fill *f = &j->fill;
    void *conn = tiers[i].conn(j->owner);
    return conn != NULL && f->key_len > 0 && tiers[i].readable() &&
           tiers[i].ops->lookup(conn, f->site, f->key, f->key_len, mode, on_tier_answer, j);
}

/* TIER_LOOKUP, TIER_REFILL: the first tier from `tier` on that can be asked. */
static void tiers_walk(job *j, tier_lookup_mode mode)
{
    for (; j->fill.tier < TIER_COUNT; j->fill.tier++)
        if (tier_ask(j, j->fill.tier, mode))
            return;
    fill_advance(j, FILL_EV_NO_TIER);
}

/* TIER_REREAD: the same tier once more. Unasked right after learning of
 * the other refresh, the flight ends empty (its waiters read alone); after
 * a poll, the fill goes to the database. */
static void tier_reread(job *j, fill_event cause)
{
    if (tier_ask(j, j->fill.tier, TIER_READ))
        return;
    if (cause == FILL_EV_POLL) {
        fill_advance(j, FILL_EV_POLL_UNASKED);
        return;
    }
    fill_abandon(j);
    fill_advance(j, FILL_EV_UNASKED);
}

/* WAIT_LEASE, WAIT_REFRESH: poll the tier until the coalesce timeout. */
static void lease_wait(job *j)
{
    fill *f = &j->fill;
    uint64_t now = rc_now_ms();
    if (f->poll_until == 0)
        f->poll_until = now + (uint64_t)j->owner->srv->cfg->cache_coalesce_timeout_ms;
    if (f->stale != NULL)
        answer_early(j, &f->stale, RC_STALE_WAITING);
    if (now >= f->poll_until) {
        f->debt[f->tier].owed = true; /* stored only if the lease is gone by then */
        f->debt[f->tier].token[0] = '\0';
        fill_advance(j, FILL_EV_GIVE_UP);
        return;
    }
    h2o_timeout_link(j->owner->ctx.loop, &j->owner->l2_poll_timeout, &f->poll);
}

static void on_fill_poll(h2o_timeout_entry_t *entry)
{
    job *j = H2O_STRUCT_FROM_MEMBER(job, fill.poll, entry);
    fill_advance(j, FILL_EV_POLL);
}

/* REFRESH: the stale value is answered; the same job leads a new flight
 * (if none is under way) to refresh it. */
static void refresh_lead(job *j)
{
    fill *f = &j->fill;
    answer_early(j, &f->entry, RC_STALE_L2);
    cache_flight *flight;
    cache_entry *filled = NULL;
    if (cache_flight_join(rc_cache(), f->ns, f->key, f->key_len, rc_now_ms(), NULL, &flight, &filled) != CACHE_LEADER) {
        cache_entry_release(&filled);
        fill_advance(j, FILL_EV_FOLLOW);
        return;
    }
    cache_entry_release(&f->entry);
    cache_entry_release(&f->stale);
    f->flight = flight;
    fill_advance(j, FILL_EV_LEAD);
}

/* SHED: the expired copy, or 503. */
static void shed_answer(job *j)
{
    if (j->request.req != NULL) {
        request_tracker *t = j->request.tracker;
        t->job = NULL;
        if (j->fill.stale != NULL)
            rc_send(j->request.req, t->request_id, &j->fill.stale, RC_FAILSAFE, t->started_ns);
        else
            request_send_overloaded(j->request.req, t, j->owner->srv->cfg, j->queue.reason);
        j->request.req = NULL;
    }
    fill_advance(j, FILL_EV_DONE);
}

/* STORE: what the tiers are owed. */
static void tiers_pay(job *j)
{
    fill *f = &j->fill;
    for (size_t i = 0; i < TIER_COUNT; i++) {
        fill_debt *d = &f->debt[i];
        void *conn = tiers[i].conn(j->owner);
        if (!d->owed || conn == NULL)
            continue;
        if (d->rec.data != NULL)
            tiers[i].ops->store(conn, f->site, f->key, f->key_len, d->token, &d->rec, d->ttl_ms, f->read_lsn);
        else if (d->token[0] != '\0')
            tiers[i].ops->release(conn, f->site, f->key, f->key_len, d->token);
    }
    fill_advance(j, FILL_EV_DONE);
}

/* RESPOND: the request, if it still waits; then the job goes. */
static void respond(job *j)
{
    fill *f = &j->fill;
    h2o_req_t *req = j->request.req;
    if (req != NULL) {
        request_tracker *t = j->request.tracker;
        if (f->entry != NULL && rc_status(f->entry) >= 500 && f->stale != NULL) {
            t->job = NULL;
            rc_send(req, t->request_id, &f->stale, RC_FAILSAFE, t->started_ns);
        } else if (f->entry != NULL) {
            t->job = NULL;
            rc_send(req, t->request_id, &f->entry, f->outcome, t->started_ns);
        } else {
            request_job_send_response(j);
        }
    }
    request_job_finish(j);
}

static void fill_enter(job *j, fill_event cause)
{
    switch (j->fill.state) {
    case FILL_TIER_LOOKUP: tiers_walk(j, TIER_READ); return;
    case FILL_TIER_REFILL: tiers_walk(j, TIER_SNAPSHOT); return;
    case FILL_TIER_REREAD: tier_reread(j, cause); return;
    case FILL_WAIT_LEASE:
    case FILL_WAIT_REFRESH: lease_wait(j); return;
    case FILL_REFRESH: refresh_lead(j); return;
    case FILL_DB: request_job_enqueue(j); return;
    case FILL_SHED: shed_answer(j); return;
    case FILL_STORE: tiers_pay(j); return;
    case FILL_RESPOND: respond(j); return;
    case FILL_L1_LOOKUP:
    case FILL_STATES: break;
    }
    abort(); /* nothing enters these */
}

/* A tier's answer, on the loop: the event it is. */
static void on_tier_answer(void *ctx, const tier_result *r)
{
    job *j = ctx;
    fill *f = &j->fill;
    fill_debt *d = &f->debt[f->tier];
    switch (r->outcome) {
    case TIER_HIT: {
        cache_value value;
        if (!rc_from_l2(r, &value)) { /* past its lifetimes, or unreadable */
            f->tier++;
            fill_advance(j, FILL_EV_ERROR);
            return;
        }
        bool stale = value.fresh_ms == 0;
        cache_flight_finish(rc_cache(), f->flight, &value, rc_now_ms(), &f->entry);
        f->flight = NULL;
        f->outcome = RC_HIT_L2;
        fill_advance(j, !stale || f->state == FILL_TIER_REREAD ? FILL_EV_HIT : FILL_EV_HIT_STALE);
        return;
    }
    case TIER_MISS:
        d->owed = true;
        d->snapshot = r->snapshot;
        if (r->leased)
            memcpy(d->token, r->token, sizeof(d->token));
        f->tier++;
        fill_advance(j, FILL_EV_MISS);
        return;
    case TIER_BUSY:
        d->snapshot = r->snapshot;
        fill_advance(j, FILL_EV_BUSY);
        return;
    case TIER_ERROR:
        f->tier++;
        fill_advance(j, FILL_EV_ERROR);
        return;
    }
}

/* ---- entry points ---------------------------------------------------------------------------- */

/* The job leads the key's flight (with k), or has none (k NULL); it is
 * counted outstanding from here on and ends in RESPOND either way. */
static void fill_begin(job *j, cache_flight *flight, cache_entry **stale, const fill_key *k)
{
    fill *f = &j->fill;
    j->owner->jobs_outstanding++;
    f->state = FILL_L1_LOOKUP;
    f->flight = flight;
    f->poll.cb = on_fill_poll;
    if (stale != NULL) {
        f->stale = *stale;
        *stale = NULL;
    }
    if (k != NULL) {
        memcpy(f->key, k->key, k->key_len);
        f->key_len = k->key_len;
        f->ns = k->ns;
        snprintf(f->site, sizeof(f->site), "%s", k->site);
    }
    fill_advance(j, flight != NULL ? FILL_EV_LEAD : FILL_EV_ALONE);
}

void fill_alone(loop_thread *lt, h2o_req_t *req, request_tracker *t, int route_index, const http_captures *caps)
{
    job *j = request_job_new(lt, req, t, route_index, caps, JOB_FILL);
    if (j == NULL) {
        request_send_no_memory(req, t);
        return;
    }
    request_job_attach(j, req, t);
    fill_begin(j, NULL, NULL, NULL);
}

/* The flight's leader (flight NULL: no memory for a waiter, so no flight
 * was joined): its request's fill. */
static void fill_lead(loop_thread *lt, h2o_req_t *req, request_tracker *t, int route_index, const http_captures *caps,
                      cache_flight *flight, cache_entry **stale, const fill_key *k)
{
    job *j = request_job_new(lt, req, t, route_index, caps, JOB_FILL);
    if (j == NULL) {
        if (flight != NULL)
            cache_flight_finish(rc_cache(), flight, NULL, rc_now_ms(), NULL);
        cache_entry_release(stale);
        request_send_no_memory(req, t);
        return;
    }
    request_job_attach(j, req, t);
    fill_begin(j, flight, stale, k);
}

void fill_refresh(loop_thread *lt, h2o_req_t *req, request_tracker *t, int route_index, const http_captures *caps,
                  const fill_key *k)
{
    cache_flight *flight;
    cache_entry *filled;
    if (cache_flight_join(rc_cache(), k->ns, k->key, k->key_len, rc_now_ms(), NULL, &flight, &filled) != CACHE_LEADER) {
        cache_entry_release(&filled);
        return;
    }
    /* a job with a copy of the request, answering nobody */
    job *j = request_job_new(lt, req, t, route_index, caps, JOB_FILL);
    if (j == NULL) {
        cache_flight_finish(rc_cache(), flight, NULL, rc_now_ms(), NULL);
        return;
    }
    fill_begin(j, flight, NULL, k);
}

/* Back on the loop from the pool. */
void fill_returned(job *j)
{
    fill_advance(j, j->queue.shed ? FILL_EV_SHED : FILL_EV_RAN);
}

/* Worker thread: the handler ran; value is its representation (taken
 * over) or NULL, read at read_lsn (http_response.read_lsn). The L1 first
 * (fenced at the flight's epoch), then a record for every tier that missed
 * (fenced at its snapshot, and refused by a tier that knows a write past
 * read_lsn). */
void fill_ran(job *j, const cache_value *value, lsn_t read_lsn)
{
    fill *f = &j->fill;
    f->read_lsn = read_lsn;
    bool shared = value != NULL && !value->share_only;
    bool stored = false, recorded = false;
    if (f->flight != NULL)
        stored = cache_flight_finish(rc_cache(), f->flight, value, rc_now_ms(), &f->entry);
    else if (value != NULL)
        f->entry = cache_entry_new(value, rc_now_ms());
    f->flight = NULL;
    for (size_t i = 0; i < TIER_COUNT && shared && f->entry != NULL; i++)
        if (f->debt[i].owed && rc_l2_record(f->entry, f->debt[i].snapshot, &f->debt[i].rec, &f->debt[i].ttl_ms))
            recorded = true;
    f->outcome = stored || recorded ? RC_MISS_STORED : RC_MISS; /* "stored": in the L1, or sent to a tier */
}

bool fill_has_waiters(const job *j)
{
    return j->fill.flight != NULL && cache_flight_has_waiters(rc_cache(), j->fill.flight);
}

void fill_free(job *j)
{
    cache_entry_release(&j->fill.entry);
    cache_entry_release(&j->fill.stale);
    for (size_t i = 0; i < FILL_TIERS_MAX; i++)
        l2_record_free(&j->fill.debt[i].rec); /* every tier's record is the L2's format */
}

/* ---- waiters (requests collapsed onto another's fill) --------------------------------------- */

struct waiter {
    cache_waiter super;
    h2o_multithread_message_t done;
    loop_thread *owner;
    h2o_req_t *req; /* NULL once the client is gone */
    request_tracker *tracker;
    h2o_timeout_entry_t timer;
    cache_entry *result;
    cache_entry *stale;
    int route_index;
    http_captures caps;
    size_t key_len;
    char key[RC_KEY_MAX];
};

static void waiter_free(waiter *w)
{
    cache_entry_release(&w->result);
    cache_entry_release(&w->stale);
    free(w);
}

/* Any thread, under the cache shard's lock: only hand the result over. */
static void on_waiter_called(cache_waiter *cw, cache_entry *e)
{
    waiter *w = (waiter *)cw;
    w->result = e;
    h2o_multithread_send_message(&w->owner->waiters_done, &w->done);
}

/* The waiter's request is alive and nobody will call it: answer it. One
 * that has already waited longer than a job may is shed, not queued. */
static void waiter_answer_alone(waiter *w)
{
    request_tracker *t = w->tracker;
    const strata_config *cfg = w->owner->srv->cfg;
    t->waiter = NULL;
    if (w->stale != NULL) {
        rc_send(w->req, t->request_id, &w->stale, RC_FAILSAFE, t->started_ns);
    } else if (rc_now_ns() - t->started_ns > (uint64_t)cfg->queue_timeout_ms * 1000000u) {
        metrics_shed(w->route_index, METRICS_SHED_DEADLINE);
        request_send_overloaded(w->req, t, cfg, METRICS_SHED_DEADLINE);
    } else {
        fill_alone(w->owner, w->req, t, w->route_index, &w->caps);
    }
}

void request_on_waiters_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        waiter *w = H2O_STRUCT_FROM_MEMBER(waiter, done, m);
        if (h2o_timeout_is_linked(&w->timer))
            h2o_timeout_unlink(&w->timer);
        if (w->req != NULL) {
            request_tracker *t = w->tracker;
            if (w->result == NULL || (rc_status(w->result) >= 500 && w->stale != NULL)) {
                waiter_answer_alone(w);
            } else {
                t->waiter = NULL;
                rc_send(w->req, t->request_id, &w->result, RC_COLLAPSED, t->started_ns);
            }
        }
        waiter_free(w);
    }
}

static void on_waiter_timeout(h2o_timeout_entry_t *entry)
{
    waiter *w = H2O_STRUCT_FROM_MEMBER(waiter, timer, entry);
    if (!cache_flight_leave(rc_cache(), w->key, w->key_len, &w->super))
        return; /* already called: its message is on the way */
    if (w->req != NULL)
        waiter_answer_alone(w);
    waiter_free(w);
}

void fill_waiter_gone(waiter *w)
{
    w->req = NULL;
    if (cache_flight_leave(rc_cache(), w->key, w->key_len, &w->super)) {
        if (h2o_timeout_is_linked(&w->timer))
            h2o_timeout_unlink(&w->timer);
        waiter_free(w);
    }
}

/* A waiter for req, complete before it joins: another thread may finish
 * the flight, and call it, the moment it is on the flight's list. */
static waiter *waiter_new(loop_thread *lt, h2o_req_t *req, request_tracker *t, int route_index,
                          const http_captures *caps, const fill_key *k)
{
    waiter *w = calloc(1, sizeof(*w));
    if (w != NULL) {
        w->super.done = on_waiter_called;
        w->owner = lt;
        w->req = req;
        w->tracker = t;
        w->route_index = route_index;
        w->caps = *caps;
        w->key_len = k->key_len;
        memcpy(w->key, k->key, k->key_len);
        w->timer.cb = on_waiter_timeout;
    }
    return w;
}

void fill_miss(loop_thread *lt, h2o_req_t *req, request_tracker *t, int route_index, const http_captures *caps,
               const fill_key *k, cache_entry **e)
{
    cache_flight *flight = NULL;
    cache_entry *filled = NULL;
    cache_join joined = CACHE_LEADER; /* without memory for a waiter: fill alone */
    waiter *w = waiter_new(lt, req, t, route_index, caps, k);
    if (w != NULL)
        joined = cache_flight_join(rc_cache(), k->ns, k->key, k->key_len, rc_now_ms(), &w->super, &flight, &filled);
    switch (joined) {
    case CACHE_FILLED:
        free(w);
        cache_entry_release(e);
        rc_send(req, t->request_id, &filled, RC_HIT, t->started_ns);
        return;
    case CACHE_LEADER:
        free(w);
        fill_lead(lt, req, t, route_index, caps, flight, e, k);
        return;
    case CACHE_JOINED: /* its message is handled on this thread, after this */
        w->stale = *e;
        *e = NULL;
        t->waiter = w;
        h2o_timeout_link(lt->ctx.loop, &lt->coalesce_timeout, &w->timer);
        if (w->super.first) /* the leader's fill, if queued, may start now whatever the budget */
            worker_pool_awaited(&lt->srv->pool);
        return;
    }
}
