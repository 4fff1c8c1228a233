/*
 * l2.c — the Redis tier (see l2.h for the contract).
 *
 * Keys, all under the site's hash tag so one site's keys stay together
 * (and a script touches one site's keys only):
 *
 *     strata:{SITE}:v:KEY    the value record           PX its hard lifetime
 *     strata:{SITE}:m:KEY    a list: the record's snapshot, then the names
 *                            of the stamps that guard it (its key's, its
 *                            tags') — what the lookup script checks
 *     strata:{SITE}:t:TAG    the tag's generation       PX > any lifetime
 *     strata:{SITE}:k:KEY    the key's generation       PX > any lifetime
 *     strata:{SITE}:n:TAG    the highest WAL position of the writes that
 *                            invalidated the tag (16 lowercase hex digits,
 *                            which Lua compares exactly, as strings)
 *                                                        PX > any lifetime
 *     strata:{SITE}:l:KEY    the fill lease (a token)   PX lease_ms
 *     strata:{SITE}:clock    the site's clock: µs, only goes forward
 *     strata:era             values snapshotted before it are invalid
 *
 * The record (version 1), big-endian:
 *
 *     u8 version | 16 ASCII digits: snapshot | u16 tag count
 *     | per tag: u16 length, bytes | u64 created_ms | u32 fresh_ms
 *     | u32 stale_ms | u32 grace_ms | payload
 *
 * The store script reads the first three parts and keeps them apart as
 * the meta list, stamp names ready for one MGET: bringing a value of a few
 * KB into Lua costs Redis ~15 µs per KB (measured: 50 µs for 30 KB, against
 * 2 µs for a plain GET), and building the names from the record costs
 * several more (a lookup script that parsed the record took 15 µs, this
 * one 11), so a lookup runs the check script on the meta list only and,
 * pipelined right behind it on the same connection, a plain GET of the
 * value — one round trip. A GET answered after a check that said "valid"
 * returns that value, or one stored after it (a store is checked too), or
 * nothing (a key invalidation deleted it in between: a miss). The snapshot is decimal
 * because Lua numbers are doubles and parse decimal exactly up to 2^53 (µs
 * since 1970 stay below it until 2255).
 *
 * Generations expire: a tag's stamp only has to outlive the values that
 * could carry the tag, and every value's TTL is its hard lifetime.
 *
 * The event-loop adapter: each hiredis connection's socket is wrapped in an
 * h2o socket with H2O_SOCKET_FLAG_DONT_READ, so the loop tells hiredis when
 * to read and hiredis does its own I/O; h2o closes the descriptor. Writes
 * are not polled for: a command queued while the loop handles requests
 * arms a zero-delay loop timer, which writes everything queued in that
 * loop iteration in one write() — pipelining across requests, no epoll_ctl
 * per command. Only a full socket (or a connection being made) waits for
 * writability.
 */
#include "cache/l2.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "core/fmt.h"
#include "core/log.h"

#define RECORD_VERSION 1
#define SNAPSHOT_DIGITS 16
#define RECONNECT_MS 200
#define RC_SITE_NAME_MAX 64
#define MEMO_SLOTS 4096 /* per loop: the tag list last seen of so many keys */
#define MEMO_MAX_TAGS 32

/* ---- scripts ------------------------------------------------------------------ */

#define LUA_COMMON                                                                                                     \
    "local function fmt(n) return string.format('%.0f', n) end\n"                                                      \
    "local function now_us() local t = redis.call('TIME') return tonumber(t[1]) * 1000000 + tonumber(t[2]) end\n"      \
    "local function era(now)\n"                                                                                        \
    "  local e = redis.call('GET', 'strata:era')\n"                                                                    \
    "  if e then return tonumber(e) end\n"                                                                             \
    "  redis.call('SET', 'strata:era', fmt(now))\n"                                                                    \
    "  return now\n"                                                                                                   \
    "end\n"                                                                                                            \
    "local function stamps_ok(s, names)\n"                                                                             \
    "  local gens = redis.call('MGET', unpack(names))\n"                                                               \
    "  if not gens[1] or s < tonumber(gens[1]) then return false end\n"                                                \
    "  for i = 2, #gens do\n"                                                                                          \
    "    if gens[i] and tonumber(gens[i]) >= s then return false end\n"                                                \
    "  end\n"                                                                                                          \
    "  return true\n"                                                                                                  \
    "end\n"

/* ARGV: site, key, lease token ("" = take none), lease ms, mode ("r":
 * check the value first; "s": only the snapshot and the lease, to refill).
 * → 1 (valid: the GET pipelined behind brings it) |
 *   {0, snapshot, leased 0/1} | {2, snapshot} (another fill holds the lease).
 * A hit costs an LRANGE of the meta list and an MGET (the era, the key's
 * and the tags' stamps; a missing era — Redis lost its keys — makes it a
 * miss). The snapshot is
 * later than every stamp so far, and the site's clock moves up to it, so
 * every stamp that follows is later still, even if Redis's clock steps
 * back. */
static const char lookup_script[] =
    LUA_COMMON "local p = 'strata:{' .. ARGV[1] .. '}:'\n"
               "if ARGV[5] == 'r' then\n"
               "  local mk = p .. 'm:' .. ARGV[2]\n"
               "  local m = redis.call('LRANGE', mk, 0, -1)\n"
               "  if #m > 0 then\n"
               "    local s = tonumber(m[1])\n"
               "    m[1] = 'strata:era'\n"
               "    if s and stamps_ok(s, m) then return 1 end\n"
               "    redis.call('DEL', mk, p .. 'v:' .. ARGV[2])\n"
               "  end\n"
               "end\n"
               "local now = now_us()\n"
               "era(now)\n"
               "local ck = p .. 'clock'\n"
               "local s = now\n"
               "local c = tonumber(redis.call('GET', ck) or '0')\n"
               "if c >= s then s = c + 1 end\n"
               "redis.call('SET', ck, fmt(s))\n"
               "local lk = p .. 'l:' .. ARGV[2]\n"
               "if ARGV[3] ~= '' then\n"
               "  if redis.call('SET', lk, ARGV[3], 'NX', 'PX', ARGV[4]) then return {0, fmt(s), 1} end\n"
               "  return {2, fmt(s)}\n"
               "end\n"
               "if redis.call('EXISTS', lk) == 1 then return {2, fmt(s)} end\n"
               "return {0, fmt(s), 0}\n";

/* ARGV: site, key, record ("" = only release the lease), token, ttl ms,
 * read position ("": the primary's data; else the replica's replayed WAL
 * position the value was read at, 16 hex digits).
 * Reads the record's snapshot and tags (binary, see above), checks them,
 * and stores the record and its meta list. A value read on a replica is
 * refused if a write past its read position invalidated one of its tags:
 * the snapshot alone cannot tell, since a fill that starts after an
 * invalidation is later than its stamp yet may read a replica that has not
 * replayed the write (it would put the old version back).
 * → 1 stored | 0 not (lease) | -1 refused (no longer valid, or malformed) */
static const char store_script[] =
    LUA_COMMON "local p = 'strata:{' .. ARGV[1] .. '}:'\n"
               "local lk = p .. 'l:' .. ARGV[2]\n"
               "local holder = redis.call('GET', lk)\n"
               "if holder and holder == ARGV[4] then redis.call('DEL', lk) elseif holder then return 0 end\n"
               "local v = ARGV[3]\n"
               "if v == '' then return 0 end\n"
               "era(now_us())\n"
               "if #v < 19 or string.byte(v, 1) ~= 1 then return -1 end\n"
               "local s = tonumber(string.sub(v, 2, 17))\n"
               "if not s then return -1 end\n"
               "local names = {'strata:era', p .. 'k:' .. ARGV[2]}\n"
               "local writes = {}\n"
               "local n = string.byte(v, 18) * 256 + string.byte(v, 19)\n"
               "local pos = 20\n"
               "for i = 1, n do\n"
               "  if pos + 1 > #v then return -1 end\n"
               "  local len = string.byte(v, pos) * 256 + string.byte(v, pos + 1)\n"
               "  if pos + 1 + len > #v then return -1 end\n"
               "  local tag = string.sub(v, pos + 2, pos + 1 + len)\n"
               "  names[#names + 1] = p .. 't:' .. tag\n"
               "  writes[#writes + 1] = p .. 'n:' .. tag\n"
               "  pos = pos + 2 + len\n"
               "end\n"
               "if not stamps_ok(s, names) then return -1 end\n"
               "if ARGV[6] ~= '' and #writes > 0 then\n"
               "  for _, w in ipairs(redis.call('MGET', unpack(writes))) do\n"
               "    if w and w > ARGV[6] then return -1 end\n"
               "  end\n"
               "end\n"
               "local mk = p .. 'm:' .. ARGV[2]\n"
               "names[1] = fmt(s)\n"
               "redis.call('SET', p .. 'v:' .. ARGV[2], v, 'PX', ARGV[5])\n"
               "redis.call('DEL', mk)\n"
               "redis.call('RPUSH', mk, unpack(names))\n"
               "redis.call('PEXPIRE', mk, ARGV[5])\n"
               "return 1\n";

const char l2_invalidate_script[] =
    "local function fmt(n) return string.format('%.0f', n) end\n"
    "local function raise(key, lsn, ttl)\n"
    "  local seen = redis.call('GET', key)\n"
    "  if seen and seen > lsn then lsn = seen end\n"
    "  redis.call('SET', key, lsn, 'PX', ttl)\n"
    "end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "if ARGV[3] == 'r' then\n"
    "  local e = tonumber(redis.call('GET', 'strata:era') or '0')\n"
    "  if now <= e then now = e + 1 end\n"
    "  redis.call('SET', 'strata:era', fmt(now))\n"
    "elseif ARGV[3] == 't' or ARGV[3] == 'k' then\n"
    "  local p = 'strata:{' .. ARGV[4] .. '}:'\n"
    "  local ck = p .. 'clock'\n"
    "  local g = now\n"
    "  local c = tonumber(redis.call('GET', ck) or '0')\n"
    "  if g <= c then g = c + 1 end\n"
    "  redis.call('SET', ck, fmt(g))\n"
    "  if ARGV[3] == 't' then\n"
    "    redis.call('SET', p .. 't:' .. ARGV[5], fmt(g), 'PX', ARGV[6])\n"
    "    if ARGV[7] ~= '0000000000000000' then raise(p .. 'n:' .. ARGV[5], ARGV[7], ARGV[6]) end\n"
    "  else\n"
    "    redis.call('SET', p .. 'k:' .. ARGV[5], fmt(g), 'PX', ARGV[6])\n"
    "    redis.call('DEL', p .. 'v:' .. ARGV[5], p .. 'm:' .. ARGV[5])\n"
    "  end\n"
    "end\n"
    "return redis.call('PUBLISH', ARGV[1], ARGV[2])\n";

/* ---- shared state -------------------------------------------------------------- */

struct l2 {
    char host[256];
    int port;
    int timeout_ms, pool_size, breaker_failures, breaker_cooldown_ms;
    char lease_ms[24];
    char lookup_sha[41], store_sha[41];
    char instance[9];
    /* breaker */
    _Atomic int failures;        /* in a row */
    _Atomic uint64_t open_until; /* 0: closed; else monotonic ms */
    _Atomic bool probing;        /* a half-open probe is out */
    /* stats */
    _Atomic uint64_t lookups, hits, misses, busy, errors, timeouts, stores, stored, refused, opens, up;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sha1_hex(const char *text, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(text, strlen(text), md, &len, EVP_sha1(), NULL);
    for (unsigned i = 0; i < len && i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

l2 *l2_create(const l2_options *o)
{
    l2 *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    snprintf(l->host, sizeof(l->host), "%s", o->host);
    l->port = o->port;
    l->timeout_ms = o->timeout_ms;
    l->pool_size = o->pool_size > 0 ? o->pool_size : 1;
    l->breaker_failures = o->breaker_failures > 0 ? o->breaker_failures : 1;
    l->breaker_cooldown_ms = o->breaker_cooldown_ms;
    l->lease_ms[fmt_u64(l->lease_ms, o->lease_ms)] = '\0';
    sha1_hex(lookup_script, l->lookup_sha);
    sha1_hex(store_script, l->store_sha);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(l->instance, sizeof(l->instance), "%08x",
             (unsigned)((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uintptr_t)l));
    return l;
}

void l2_destroy(l2 **lp)
{
    free(*lp);
    *lp = NULL;
}

/* ---- the circuit breaker --------------------------------------------------------- */

bool l2_usable(l2 *l)
{
    uint64_t until = atomic_load_explicit(&l->open_until, memory_order_relaxed);
    if (until == 0)
        return true;
    if (mono_ms() < until)
        return false;
    bool expected = false; /* half open: one probe at a time */
    return atomic_compare_exchange_strong(&l->probing, &expected, true);
}

static void breaker_success(l2 *l)
{
    atomic_store_explicit(&l->failures, 0, memory_order_relaxed);
    if (atomic_exchange(&l->open_until, 0) != 0) {
        atomic_store(&l->probing, false);
        log_event(LOG_INFO, "redis L2 breaker closed: Redis answers again");
    }
}

static void breaker_failure(l2 *l)
{
    uint64_t until = atomic_load(&l->open_until);
    if (until != 0) {
        if (atomic_exchange(&l->probing, false)) /* the probe failed: open again */
            atomic_store(&l->open_until, mono_ms() + (uint64_t)l->breaker_cooldown_ms);
        return;
    }
    if (atomic_fetch_add(&l->failures, 1) + 1 >= l->breaker_failures) {
        uint64_t zero = 0;
        if (atomic_compare_exchange_strong(&l->open_until, &zero, mono_ms() + (uint64_t)l->breaker_cooldown_ms)) {
            atomic_fetch_add(&l->opens, 1);
            log_line line;
            log_begin(&line, LOG_WARN, "redis L2 breaker open: reads go to the database");
            log_int(&line, "cooldown_ms", l->breaker_cooldown_ms);
            log_end(&line);
        }
    }
}

/* ---- connections on a loop ----------------------------------------------------------- */

typedef struct slot {
    l2_conn *owner;
    redisAsyncContext *ac; /* NULL once hiredis has let it go */
    h2o_socket_t *sock;
    bool connected;
    bool flushing;               /* inside redisAsyncHandleWrite from `flush` */
    h2o_timeout_entry_t flush;   /* write what this loop iteration queued */
    h2o_timeout_entry_t retry;   /* reconnect after RECONNECT_MS */
    h2o_timeout_entry_t connect; /* a connection attempt's deadline */
} slot;

/* The tag list (the record's u16 count and tags, as stored) this loop last
 * saw for a key, by the hash of (site, key). With it a lookup needs no
 * script: it pipelines an MGET of the era and the key's and tags' stamps
 * with a GET of the value, and checks the record against them here. A
 * record whose tags differ from the memo's (a collision, or the item's
 * tags changed) goes the script's way. */
typedef struct memo_slot {
    uint64_t hash;
    char *tags;
    size_t len;
} memo_slot;

struct l2_conn {
    l2 *shared;
    h2o_loop_t *loop;
    memo_slot *memo;               /* MEMO_SLOTS */
    h2o_timeout_t command_timeout; /* timeout_ms */
    h2o_timeout_t retry_timeout;   /* RECONNECT_MS */
    h2o_timeout_t flush_timeout;   /* 0: the end of this loop iteration */
    uint64_t next_token;
    unsigned next_slot;
    bool closing;
    int slot_count;
    slot slots[];
};

static void slot_connect(slot *s);

static void on_socket_read(h2o_socket_t *sock, const char *err)
{
    (void)err;
    slot *s = sock->data;
    redisAsyncHandleRead(s->ac);
}

static void on_socket_write(h2o_socket_t *sock, const char *err)
{
    (void)err;
    slot *s = sock->data;
    redisAsyncHandleWrite(s->ac);
}

static void ev_add_read(void *p)
{
    slot *s = p;
    h2o_socket_read_start(s->sock, on_socket_read);
}

static void ev_del_read(void *p)
{
    slot *s = p;
    h2o_socket_read_stop(s->sock);
}

static void ev_add_write(void *p)
{
    slot *s = p;
    if (s->connected && !s->flushing) {
        if (!h2o_timeout_is_linked(&s->flush))
            h2o_timeout_link(s->owner->loop, &s->owner->flush_timeout, &s->flush);
        return;
    }
    /* connecting, or the socket took only part of a flush: wait until it
     * is writable */
    if (!h2o_socket_is_writing(s->sock))
        h2o_socket_notify_write(s->sock, on_socket_write);
}

static void on_flush(h2o_timeout_entry_t *entry)
{
    slot *s = H2O_STRUCT_FROM_MEMBER(slot, flush, entry);
    if (s->ac == NULL)
        return;
    s->flushing = true;
    redisAsyncHandleWrite(s->ac);
    s->flushing = false;
}

/* hiredis is done with the connection (it frees the context next): h2o
 * closes the descriptor, hiredis must not close it again. */
static void ev_cleanup(void *p)
{
    slot *s = p;
    if (h2o_timeout_is_linked(&s->flush))
        h2o_timeout_unlink(&s->flush);
    if (s->sock != NULL) {
        h2o_socket_close(s->sock);
        s->sock = NULL;
    }
    if (s->ac != NULL)
        s->ac->c.fd = -1;
    s->ac = NULL;
}

/* The connection is gone or never came: try again after RECONNECT_MS. */
static void slot_down(slot *s)
{
    if (s->connected)
        atomic_fetch_sub(&s->owner->shared->up, 1);
    s->connected = false;
    if (h2o_timeout_is_linked(&s->connect))
        h2o_timeout_unlink(&s->connect);
    if (!s->owner->closing && !h2o_timeout_is_linked(&s->retry))
        h2o_timeout_link(s->owner->loop, &s->owner->retry_timeout, &s->retry);
}

static void on_connected(const redisAsyncContext *ac, int status)
{
    slot *s = ac->data;
    if (status != REDIS_OK) {
        slot_down(s);
        return;
    }
    if (h2o_timeout_is_linked(&s->connect))
        h2o_timeout_unlink(&s->connect);
    s->connected = true;
    atomic_fetch_add(&s->owner->shared->up, 1);
    /* Scripts first: the commands that follow on this connection find them. */
    redisAsyncCommand(s->ac, NULL, NULL, "SCRIPT LOAD %s", lookup_script);
    redisAsyncCommand(s->ac, NULL, NULL, "SCRIPT LOAD %s", store_script);
}

static void on_disconnected(const redisAsyncContext *ac, int status)
{
    (void)status;
    slot_down(ac->data);
}

static void on_connect_timeout(h2o_timeout_entry_t *entry)
{
    slot *s = H2O_STRUCT_FROM_MEMBER(slot, connect, entry);
    if (s->ac != NULL && !s->connected) {
        redisAsyncFree(s->ac); /* a connection never made: no callback */
        slot_down(s);
    }
}

static void on_retry(h2o_timeout_entry_t *entry)
{
    slot *s = H2O_STRUCT_FROM_MEMBER(slot, retry, entry);
    slot_connect(s);
}

static void slot_connect(slot *s)
{
    l2_conn *conn = s->owner;
    redisAsyncContext *ac = redisAsyncConnect(conn->shared->host, conn->shared->port);
    if (ac == NULL || ac->err) {
        if (ac != NULL)
            redisAsyncFree(ac);
        h2o_timeout_link(conn->loop, &conn->retry_timeout, &s->retry);
        return;
    }
    s->ac = ac;
    ac->data = s;
    s->sock = h2o_evloop_socket_create(conn->loop, ac->c.fd, H2O_SOCKET_FLAG_DONT_READ);
    s->sock->data = s;
    ac->ev.data = s;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connected); /* watches for writability */
    redisAsyncSetDisconnectCallback(ac, on_disconnected);
    h2o_timeout_link(conn->loop, &conn->command_timeout, &s->connect);
}

l2_conn *l2_conn_open(l2 *l, h2o_loop_t *loop)
{
    l2_conn *conn = calloc(1, sizeof(*conn) + (size_t)l->pool_size * sizeof(slot));
    if (conn == NULL)
        return NULL;
    conn->shared = l;
    conn->loop = loop;
    conn->memo = calloc(MEMO_SLOTS, sizeof(*conn->memo));
    if (conn->memo == NULL) {
        free(conn);
        return NULL;
    }
    conn->slot_count = l->pool_size;
    h2o_timeout_init(loop, &conn->command_timeout, (uint64_t)l->timeout_ms);
    h2o_timeout_init(loop, &conn->retry_timeout, RECONNECT_MS);
    h2o_timeout_init(loop, &conn->flush_timeout, 0);
    for (int i = 0; i < conn->slot_count; i++) {
        slot *s = &conn->slots[i];
        s->owner = conn;
        s->retry.cb = on_retry;
        s->flush.cb = on_flush;
        s->connect.cb = on_connect_timeout;
        slot_connect(s);
    }
    return conn;
}

/* ---- commands ------------------------------------------------------------------------ */

typedef enum op_kind { OP_LOOKUP, OP_STORE } op_kind;

typedef struct op {
    l2_conn *conn;
    op_kind kind;
    h2o_timeout_entry_t deadline;
    bool finished;  /* answered (by a reply or by the deadline) */
    int pending;    /* replies still to come: freed after the last */
    bool check_hit; /* the check said valid: the GET's reply is the hit */
    /* the script-free way (a memo of the key's tags was found) */
    bool fast;
    bool stamps_read, era_found;
    uint64_t era, newest_stamp;
    uint64_t hash;
    char site[RC_SITE_NAME_MAX + 1];
    size_t key_len;
    char *key;
    l2_lookup_cb cb;
    void *ctx;
    char token[L2_TOKEN_MAX + 1];
} op;

static slot *pick_slot(l2_conn *conn)
{
    for (int i = 0; i < conn->slot_count; i++) {
        slot *s = &conn->slots[conn->next_slot++ % (unsigned)conn->slot_count];
        if (s->connected)
            return s;
    }
    return NULL;
}

static void lookup_answer(op *o, const l2_result *r)
{
    o->finished = true;
    if (h2o_timeout_is_linked(&o->deadline))
        h2o_timeout_unlink(&o->deadline);
    if (o->cb != NULL)
        o->cb(o->ctx, r);
}

static void lookup_failed(op *o, bool timeout)
{
    l2 *l = o->conn->shared;
    l2_result r = {.outcome = L2_ERROR};
    atomic_fetch_add(timeout ? &l->timeouts : &l->errors, 1);
    breaker_failure(l);
    lookup_answer(o, &r);
}

static void on_deadline(h2o_timeout_entry_t *entry)
{
    op *o = H2O_STRUCT_FROM_MEMBER(op, deadline, entry);
    if (o->kind == OP_LOOKUP) {
        lookup_failed(o, true);
    } else {
        o->finished = true;
        atomic_fetch_add(&o->conn->shared->timeouts, 1);
        breaker_failure(o->conn->shared);
    }
}

static bool is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

static uint64_t get_be(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* The record's lifetimes and payload, past the part the scripts read. */
bool l2_record_parse(const char *data, size_t len, l2_result *r, size_t *tags_end)
{
    const unsigned char *p = (const unsigned char *)data, *end = p + len;
    if (len < 1 + SNAPSHOT_DIGITS + 2 || p[0] != RECORD_VERSION)
        return false;
    char digits[SNAPSHOT_DIGITS + 1];
    memcpy(digits, data + 1, SNAPSHOT_DIGITS);
    digits[SNAPSHOT_DIGITS] = '\0';
    r->snapshot = strtoull(digits, NULL, 10);
    p += 1 + SNAPSHOT_DIGITS;
    size_t tags = (size_t)get_be(p, 2);
    p += 2;
    for (size_t i = 0; i < tags; i++) {
        if (end - p < 2 || (size_t)(end - p - 2) < get_be(p, 2))
            return false;
        p += 2 + get_be(p, 2);
    }
    if (end - p < 20)
        return false;
    *tags_end = (size_t)(p - (const unsigned char *)data);
    r->life.created_ms = get_be(p, 8);
    r->life.fresh_ms = (uint32_t)get_be(p + 8, 4);
    r->life.stale_ms = (uint32_t)get_be(p + 12, 4);
    r->life.grace_ms = (uint32_t)get_be(p + 16, 4);
    p += 20;
    r->payload = (const char *)p;
    r->payload_len = (size_t)(end - p);
    return true;
}

static void reload_scripts(redisAsyncContext *ac)
{
    redisAsyncCommand(ac, NULL, NULL, "SCRIPT LOAD %s", lookup_script);
    redisAsyncCommand(ac, NULL, NULL, "SCRIPT LOAD %s", store_script);
}

static void op_free(op *o)
{
    free(o->key);
    free(o);
}

static void op_reply_seen(op *o)
{
    if (--o->pending == 0)
        op_free(o);
}

#define TAGS_AT (1 + SNAPSHOT_DIGITS) /* where a record's tag list begins */

static memo_slot *memo_of(l2_conn *conn, uint64_t hash)
{
    return &conn->memo[hash % MEMO_SLOTS];
}

static void memo_learn(l2_conn *conn, uint64_t hash, const char *record, size_t tags_end)
{
    memo_slot *m = memo_of(conn, hash);
    size_t len = tags_end - TAGS_AT;
    if (m->hash == hash && m->len == len && memcmp(m->tags, record + TAGS_AT, len) == 0)
        return;
    char *copy = malloc(len);
    if (copy == NULL)
        return;
    memcpy(copy, record + TAGS_AT, len);
    free(m->tags);
    *m = (memo_slot){.hash = hash, .tags = copy, .len = len};
}

static bool lookup_by_script(op *o);

static void lookup_done(op *o, l2_result *res)
{
    l2 *l = o->conn->shared;
    breaker_success(l);
    atomic_fetch_add(res->outcome == L2_HIT ? &l->hits : res->outcome == L2_MISS ? &l->misses : &l->busy, 1);
    lookup_answer(o, res);
}

/* The check script's reply: valid (wait for the GET's), or a miss. */
static void on_check_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    op *o = privdata;
    redisReply *r = reply;
    if (!o->finished) {
        l2_result res = {.outcome = L2_ERROR};
        if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
            o->check_hit = true;
        } else if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
                   r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_STRING) {
            long long kind = r->element[0]->integer;
            res.snapshot = strtoull(r->element[1]->str, NULL, 10);
            res.outcome = kind == 0 ? L2_MISS : kind == 2 ? L2_BUSY : L2_ERROR;
            res.leased = kind == 0 && r->elements >= 3 && r->element[2]->type == REDIS_REPLY_INTEGER &&
                         r->element[2]->integer == 1;
            if (res.leased)
                memcpy(res.token, o->token, sizeof(res.token));
        }
        if (r != NULL && is_noscript(r))
            reload_scripts(ac);
        if (!o->check_hit) {
            if (res.outcome == L2_ERROR)
                lookup_failed(o, false);
            else
                lookup_done(o, &res);
        }
    }
    op_reply_seen(o);
}

/* The script-free way's MGET: the era, then the key's and tags' stamps. */
static void on_stamps_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    op *o = privdata;
    redisReply *r = reply;
    if (!o->finished) {
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
            lookup_failed(o, false);
        } else {
            o->stamps_read = true;
            o->era_found = r->element[0]->type == REDIS_REPLY_STRING;
            o->era = o->era_found ? strtoull(r->element[0]->str, NULL, 10) : 0;
            for (size_t i = 1; i < r->elements; i++)
                if (r->element[i]->type == REDIS_REPLY_STRING) {
                    uint64_t stamp = strtoull(r->element[i]->str, NULL, 10);
                    o->newest_stamp = stamp > o->newest_stamp ? stamp : o->newest_stamp;
                }
        }
    }
    op_reply_seen(o);
}

/* The value, pipelined behind the check. After the script's "valid": that
 * value, or one stored after it (a store is checked too), or nothing (a
 * key invalidation deleted it in between: a miss without a fence — its
 * fill will not be stored, snapshot 0 predating every era). After the
 * stamps of the memo's tags: valid if it carries exactly those tags and
 * was snapshotted after every one of them (it was valid when the stamps
 * were read, or stored valid after); anything else asks the script. */
static void on_value_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    op *o = privdata;
    redisReply *r = reply;
    if (!o->finished) {
        l2_result res = {.outcome = L2_MISS};
        size_t tags_end = 0;
        bool is_record = r != NULL && r->type == REDIS_REPLY_STRING;
        if (r == NULL || (!is_record && r->type != REDIS_REPLY_NIL) ||
            (is_record && !l2_record_parse(r->str, r->len, &res, &tags_end))) {
            lookup_failed(o, false);
        } else if (o->fast) {
            memo_slot *m = memo_of(o->conn, o->hash);
            bool valid = is_record && o->stamps_read && o->era_found && m->hash == o->hash &&
                         m->len == tags_end - TAGS_AT && memcmp(m->tags, r->str + TAGS_AT, m->len) == 0 &&
                         res.snapshot >= o->era && o->newest_stamp < res.snapshot;
            if (valid) {
                res.outcome = L2_HIT;
                lookup_done(o, &res);
            } else {
                o->finished = true; /* the script decides, with its own deadline */
                if (h2o_timeout_is_linked(&o->deadline))
                    h2o_timeout_unlink(&o->deadline);
                if (!lookup_by_script(o)) {
                    l2_result failed = {.outcome = L2_ERROR};
                    o->cb(o->ctx, &failed);
                }
            }
        } else {
            if (is_record) {
                res.outcome = L2_HIT;
                memo_learn(o->conn, o->hash, r->str, tags_end);
            }
            res.snapshot = 0;
            lookup_done(o, &res);
        }
    }
    op_reply_seen(o);
}

#define RC_VALUE_KEY_MAX 1200

/* "strata:{SITE}:v:KEY", or 0 if it does not fit. */
static size_t value_key_name(const char *site, const void *key, size_t key_len, char out[RC_VALUE_KEY_MAX])
{
    size_t site_len = strlen(site);
    if (8 + site_len + 4 + key_len > RC_VALUE_KEY_MAX)
        return 0;
    memcpy(out, "strata:{", 8);
    memcpy(out + 8, site, site_len);
    memcpy(out + 8 + site_len, "}:v:", 4);
    memcpy(out + 12 + site_len, key, key_len);
    return 12 + site_len + key_len;
}

static op *op_new(l2_conn *conn, op_kind kind)
{
    op *o = calloc(1, sizeof(*o));
    if (o != NULL) {
        o->conn = conn;
        o->kind = kind;
        o->deadline.cb = on_deadline;
    }
    return o;
}

/* Sends GET of the value behind what was just queued (with on_value_reply). */
static void queue_value_get(op *o, slot *s)
{
    char value_key[RC_VALUE_KEY_MAX];
    size_t len = value_key_name(o->site, o->key, o->key_len, value_key);
    const char *get[] = {"GET", value_key};
    size_t getlen[] = {3, len};
    if (len > 0 && redisAsyncCommandArgv(s->ac, on_value_reply, o, 2, get, getlen) == REDIS_OK)
        o->pending++;
}

/* The script-free way: MGET of the era and the stamps named by the memo's
 * tags, and GET of the value, pipelined. False if it could not be sent. */
static bool lookup_by_stamps(op *o, slot *s, const memo_slot *m)
{
    const unsigned char *p = (const unsigned char *)m->tags;
    size_t tags = (size_t)get_be(p, 2), site_len = strlen(o->site);
    if (tags > MEMO_MAX_TAGS)
        return false;
    /* "strata:{SITE}:k:KEY" and "strata:{SITE}:t:TAG" each */
    char *names = malloc(2 * (12 + site_len) + o->key_len + m->len + tags * (12 + site_len));
    if (names == NULL)
        return false;
    const char *argv[2 + 1 + MEMO_MAX_TAGS] = {"MGET", "strata:era"};
    size_t argvlen[2 + 1 + MEMO_MAX_TAGS] = {4, 10};
    char *w = names;
    const char *part = (const char *)o->key;
    size_t part_len = o->key_len;
    const unsigned char *t = p + 2;
    for (size_t i = 0; i <= tags; i++) {
        if (i > 0) {
            part_len = (size_t)get_be(t, 2);
            part = (const char *)t + 2;
            t += 2 + part_len;
        }
        argv[2 + i] = w;
        memcpy(w, "strata:{", 8);
        memcpy(w + 8, o->site, site_len);
        memcpy(w + 8 + site_len, i == 0 ? "}:k:" : "}:t:", 4);
        memcpy(w + 12 + site_len, part, part_len);
        argvlen[2 + i] = 12 + site_len + part_len;
        w += argvlen[2 + i];
    }
    int sent = redisAsyncCommandArgv(s->ac, on_stamps_reply, o, (int)(3 + tags), argv, argvlen);
    free(names);
    if (sent != REDIS_OK)
        return false;
    o->pending = 1;
    o->fast = true;
    queue_value_get(o, s);
    return true;
}

static void lookup_token(op *o)
{
    /* instance, connection, sequence — printf-free, per lookup */
    char *t = o->token;
    memcpy(t, o->conn->shared->instance, 8);
    t[8] = '-';
    fmt_hex(t + 9, (uint64_t)(uintptr_t)o->conn, 12);
    t[21] = '-';
    t[22 + fmt_u64(t + 22, ++o->conn->next_token)] = '\0';
}

/* A lookup's op, with copies of what a second look (by the script) needs. */
static op *lookup_op_new(l2_conn *conn, const char *site, const void *key, size_t key_len, uint64_t hash,
                         l2_lookup_cb cb, void *ctx)
{
    op *o = op_new(conn, OP_LOOKUP);
    if (o == NULL || (o->key = malloc(key_len > 0 ? key_len : 1)) == NULL) {
        free(o);
        return NULL;
    }
    o->cb = cb;
    o->ctx = ctx;
    o->hash = hash;
    snprintf(o->site, sizeof(o->site), "%s", site);
    memcpy(o->key, key, key_len);
    o->key_len = key_len;
    return o;
}

static bool lookup_not_sent(l2 *l)
{
    atomic_fetch_add(&l->errors, 1);
    breaker_failure(l);
    return false;
}

/* The script's way (READ: with the GET of the value behind; SNAPSHOT:
 * without). Takes o over: freed if it cannot be sent. */
static bool send_script_lookup(op *o, slot *s, l2_lookup_mode mode)
{
    l2 *l = o->conn->shared;
    lookup_token(o);
    const char *argv[] = {"EVALSHA", l->lookup_sha, "0",         o->site,
                          o->key,    o->token,      l->lease_ms, mode == L2_READ ? "r" : "s"};
    size_t argvlen[] = {7, 40, 1, strlen(o->site), o->key_len, strlen(o->token), strlen(l->lease_ms), 1};
    if (redisAsyncCommandArgv(s->ac, on_check_reply, o, 8, argv, argvlen) != REDIS_OK) {
        op_free(o);
        return lookup_not_sent(l);
    }
    o->pending = 1;
    if (mode == L2_READ)
        queue_value_get(o, s);
    h2o_timeout_link(o->conn->loop, &o->conn->command_timeout, &o->deadline);
    return true;
}

/* A fast look whose record did not check: the script decides, in an op of
 * its own (the fast one is left to its replies). */
static bool lookup_by_script(op *fast)
{
    slot *s = pick_slot(fast->conn);
    op *o = s != NULL ? lookup_op_new(fast->conn, fast->site, fast->key, fast->key_len, fast->hash, fast->cb, fast->ctx)
                      : NULL;
    return o != NULL ? send_script_lookup(o, s, L2_READ) : lookup_not_sent(fast->conn->shared);
}

bool l2_lookup(l2_conn *conn, const char *site, const void *key, size_t key_len, l2_lookup_mode mode, l2_lookup_cb cb,
               void *ctx)
{
    l2 *l = conn->shared;
    atomic_fetch_add(&l->lookups, 1);
    if (strlen(site) > RC_SITE_NAME_MAX)
        return lookup_not_sent(l);
    uint64_t hash = XXH3_64bits_withSeed(key, key_len, XXH3_64bits(site, strlen(site)));
    slot *s = pick_slot(conn);
    op *o = s != NULL ? lookup_op_new(conn, site, key, key_len, hash, cb, ctx) : NULL;
    if (o == NULL)
        return lookup_not_sent(l);
    memo_slot *m = memo_of(conn, hash);
    if (mode == L2_READ && m->hash == hash && m->tags != NULL && lookup_by_stamps(o, s, m)) {
        h2o_timeout_link(conn->loop, &conn->command_timeout, &o->deadline);
        return true;
    }
    return send_script_lookup(o, s, mode);
}

static void on_store_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    op *o = privdata;
    redisReply *r = reply;
    if (!o->finished) {
        if (h2o_timeout_is_linked(&o->deadline))
            h2o_timeout_unlink(&o->deadline);
        l2 *l = o->conn->shared;
        if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
            if (r != NULL && is_noscript(r))
                reload_scripts(ac);
            atomic_fetch_add(&l->errors, 1);
            breaker_failure(l);
        } else {
            breaker_success(l);
            if (r->integer == 1)
                atomic_fetch_add(&l->stored, 1);
            else if (o->kind == OP_STORE && r->integer == -1)
                atomic_fetch_add(&l->refused, 1);
        }
    }
    op_free(o);
}

static void send_store(l2_conn *conn, const char *site, const void *key, size_t key_len, const char *token,
                       const char *record, size_t record_len, uint64_t ttl_ms, lsn_t read_lsn)
{
    slot *s = pick_slot(conn);
    op *o = s != NULL ? op_new(conn, OP_STORE) : NULL;
    if (o == NULL)
        return;
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(ttl_ms > 0 ? ttl_ms : 1));
    l2 *l = conn->shared;
    char position[16];
    size_t position_len = 0;
    if (read_lsn != LSN_NONE) {
        fmt_hex(position, read_lsn, 16);
        position_len = 16;
    }
    const char *argv[] = {"EVALSHA", l->store_sha, "0", site, key, record, token, ttl, position};
    size_t argvlen[] = {7, 40, 1, strlen(site), key_len, record_len, strlen(token), strlen(ttl), position_len};
    if (redisAsyncCommandArgv(s->ac, on_store_reply, o, 9, argv, argvlen) != REDIS_OK) {
        op_free(o);
        return;
    }
    h2o_timeout_link(conn->loop, &conn->command_timeout, &o->deadline);
}

void l2_store(l2_conn *conn, const char *site, const void *key, size_t key_len, const char *token, l2_record *rec,
              uint64_t ttl_ms, lsn_t read_lsn)
{
    atomic_fetch_add(&conn->shared->stores, 1);
    send_store(conn, site, key, key_len, token, rec->data, rec->len, ttl_ms, read_lsn);
    l2_record_free(rec); /* hiredis has its own copy of the command */
}

void l2_release(l2_conn *conn, const char *site, const void *key, size_t key_len, const char *token)
{
    send_store(conn, site, key, key_len, token, "", 0, 1, LSN_NONE);
}

void l2_conn_close(l2_conn **connp)
{
    l2_conn *conn = *connp;
    *connp = NULL;
    if (conn == NULL)
        return;
    conn->closing = true;
    for (int i = 0; i < conn->slot_count; i++) {
        slot *s = &conn->slots[i];
        if (h2o_timeout_is_linked(&s->retry))
            h2o_timeout_unlink(&s->retry);
        if (h2o_timeout_is_linked(&s->connect))
            h2o_timeout_unlink(&s->connect);
        if (s->ac != NULL)
            redisAsyncFree(s->ac); /* pending callbacks get NULL now */
    }
    h2o_timeout_dispose(conn->loop, &conn->command_timeout);
    h2o_timeout_dispose(conn->loop, &conn->retry_timeout);
    h2o_timeout_dispose(conn->loop, &conn->flush_timeout);
    for (size_t i = 0; i < MEMO_SLOTS; i++)
        free(conn->memo[i].tags);
    free(conn->memo);
    free(conn);
}

/* ---- records ------------------------------------------------------------------------- */

static void put_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

char *l2_record_new(l2_record *rec, uint64_t snapshot, const char *const *tags, size_t tag_count,
                    const l2_lifetimes *life, size_t payload_len)
{
    size_t meta = 1 + SNAPSHOT_DIGITS + 2;
    if (tag_count > 0xffff)
        return NULL;
    for (size_t i = 0; i < tag_count; i++) {
        if (strlen(tags[i]) > 0xffff)
            return NULL;
        meta += 2 + strlen(tags[i]);
    }
    rec->len = meta + 20 + payload_len;
    rec->data = malloc(rec->len + 1); /* +1: snprintf's NUL below */
    if (rec->data == NULL)
        return NULL;
    unsigned char *p = (unsigned char *)rec->data;
    p[0] = RECORD_VERSION;
    snprintf((char *)p + 1, SNAPSHOT_DIGITS + 1, "%016llu", (unsigned long long)snapshot);
    p += 1 + SNAPSHOT_DIGITS;
    put_be(p, tag_count, 2);
    p += 2;
    for (size_t i = 0; i < tag_count; i++) {
        size_t n = strlen(tags[i]);
        put_be(p, n, 2);
        memcpy(p + 2, tags[i], n);
        p += 2 + n;
    }
    put_be(p, life->created_ms, 8);
    put_be(p + 8, life->fresh_ms, 4);
    put_be(p + 12, life->stale_ms, 4);
    put_be(p + 16, life->grace_ms, 4);
    return (char *)p + 20;
}

void l2_record_free(l2_record *rec)
{
    free(rec->data);
    rec->data = NULL;
    rec->len = 0;
}

void l2_get_stats(l2 *l, l2_stats *out)
{
    *out = (l2_stats){
        .lookups = atomic_load(&l->lookups),
        .hits = atomic_load(&l->hits),
        .misses = atomic_load(&l->misses),
        .busy = atomic_load(&l->busy),
        .errors = atomic_load(&l->errors),
        .timeouts = atomic_load(&l->timeouts),
        .stores = atomic_load(&l->stores),
        .stored = atomic_load(&l->stored),
        .refused = atomic_load(&l->refused),
        .breaker_opens = atomic_load(&l->opens),
        .breaker_open = atomic_load(&l->open_until) != 0,
        .connections_up = atomic_load(&l->up),
    };
}

/* ---- the L2 as a cache tier (tier.h) ---------------------------------------------- */

static bool tier_lookup(void *conn, const char *site, const void *key, size_t key_len, tier_lookup_mode mode,
                        tier_lookup_cb cb, void *ctx)
{
    return l2_lookup(conn, site, key, key_len, mode, cb, ctx);
}

static void tier_store(void *conn, const char *site, const void *key, size_t key_len, const char *token,
                       tier_record *rec, uint64_t ttl_ms, lsn_t read_lsn)
{
    l2_store(conn, site, key, key_len, token, rec, ttl_ms, read_lsn);
}

static void tier_release(void *conn, const char *site, const void *key, size_t key_len, const char *token)
{
    l2_release(conn, site, key, key_len, token);
}

const cache_tier l2_tier = {.name = "l2", .lookup = tier_lookup, .store = tier_store, .release = tier_release};
