/*
 * positions.c — which database a read runs on, and read-your-writes by
 * WAL position (api.h: api_route_read, api_read_again, api_wrote).
 *
 * A write answers with its commit's WAL position (Strata-LSN), and a read
 * that names a position — the request's Strata-LSN header, the position
 * its token last wrote on this instance, or for a public read or cache
 * fill the highest position of any invalidation this instance knows of
 * (http_cache_lsn_floor: a fill below it would put an old version back
 * into the cache) — runs on a replica only when that replica has replayed
 * at least so far, else on the primary (store_reader checks every
 * replica). No timer: a replica lagging 10 s is simply not read for that
 * request, and one that has caught up is read at once.
 *
 * The token memory is a fixed table of TOKEN_SLOTS atomics indexed by a
 * hash of the token id, each holding the highest position written by the
 * tokens that fall in it. Two tokens sharing a slot share the maximum:
 * a token may be sent to the primary more often than it needed, never to
 * a replica that lacks its write. The table is per instance; a client
 * that writes on one instance and reads on another carries the position
 * itself, in the Strata-LSN header (docs/api.md).
 *
 * When the primary cannot answer (a restart, a failover), a read runs on
 * any replica that is up, whatever its lag, provided it has replayed the
 * read's own position (the Strata-LSN header, the token's last write): a
 * public read that names none takes any (a stale page beats a 503, and a
 * fill below the cache's floor is kept by no tier: http/request.c); one
 * that names a position no replica has keeps its guarantee and may 503.
 * With no such replica the primary is tried once more: a connection broken
 * while the worker was idle reconnects on that second call.
 */
#include <stdatomic.h>
#include <string.h>

#include "content/api.h"
#include "jobs/jobs.h"
#include "store/store_webhooks.h"

enum { TOKEN_SLOTS = 4096 }; /* a power of two: 32 KB */

static _Atomic lsn_t token_positions[TOKEN_SLOTS];

static _Atomic lsn_t *token_slot(int64_t token_id)
{
    uint64_t h = (uint64_t)token_id * 0x9E3779B97F4A7C15ULL; /* Fibonacci hashing: ids are sequential */
    return &token_positions[h >> (64 - 12)];
}

static void token_position_raise(int64_t token_id, lsn_t lsn)
{
    _Atomic lsn_t *slot = token_slot(token_id);
    lsn_t seen = atomic_load(slot);
    while (seen < lsn && !atomic_compare_exchange_weak(slot, &seen, lsn))
        ;
}

static lsn_t max_lsn(lsn_t a, lsn_t b)
{
    return a > b ? a : b;
}

bool api_route_read(api_ctx *c)
{
    lsn_t wanted = LSN_NONE;
    const char *header = c->req->strata_lsn;
    if (header != NULL && !lsn_parse(header, strlen(header), &wanted)) {
        http_problem(c->res, c->req, 400, "bad_header",
                     "the Strata-LSN header must be a WAL position 'X/Y' (1 to 8 hex digits each), as a write's "
                     "Strata-LSN response header gave it");
        return false;
    }
    lsn_t known = c->has_token ? atomic_load(token_slot(c->token.id)) : http_cache_lsn_floor();
    c->must_see = header != NULL || c->has_token ? max_lsn(wanted, known) : LSN_NONE;
    c->primary = c->store;
    c->store = store_reader(c->primary, max_lsn(wanted, known), &c->res->read_lsn);
    return true;
}

bool api_read_again(api_ctx *c, int rc)
{
    if (c->primary == NULL)
        return false;
    if (c->store != c->primary) {
        if (rc != STORE_UNAVAILABLE && rc != STORE_BUSY && rc != STORE_ERROR)
            return false;
        store_reader_failed(c->store, rc);
        c->store = c->primary;
        c->res->read_lsn = LSN_NONE;
        return true;
    }
    if (rc != STORE_UNAVAILABLE || c->primary_failed)
        return false;
    c->primary_failed = true;
    store_t *replica = store_reader_any(c->primary, c->must_see, &c->res->read_lsn);
    if (replica != NULL)
        c->store = replica;
    return true;
}

void api_wrote(api_ctx *c)
{
    if (store_webhook_events_take())
        jobs_wake(); /* the write queued webhook deliveries */
    c->written = store_commit_lsn(c->store);
    if (c->written == LSN_NONE)
        return;
    char text[LSN_TEXT_MAX];
    lsn_format(c->written, text);
    http_response_header(c->res, "strata-lsn", "%s", text);
    if (c->has_token)
        token_position_raise(c->token.id, c->written);
}
