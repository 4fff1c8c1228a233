/*
 * replicas.c — the replica monitor and read routing (replicas.h, and
 * store_reader in store.h).
 *
 * Why by position. A write's response names its commit's WAL position
 * (store_commit_lsn); a replica that has replayed at least that far holds
 * the write. So a read that must see a write goes to a replica only when
 * the replica provably has it, never after a fixed delay (the 2 s pinning
 * of Payload and Rails still fails when a replica lags longer), and every
 * replica is considered each time (GitLab stopped sticking once one
 * replica had caught up, then read from another that had not).
 *
 * The poller. One thread, its own connections (raw libpq: replicas exist
 * only on PostgreSQL), every db.replica_poll_ms: the primary's
 * pg_current_wal_insert_lsn() (past every commit made so far), then each
 * replica's pg_last_wal_replay_lsn(). Every wait is bounded: connections
 * are made without blocking (PQconnectStart, carried over from one poll to
 * the next, abandoned after CONNECT_GIVE_UP_MS) and each question has
 * max(poll, ASK_MIN_MS) to be answered, else its connection is dropped
 * and the target counted down: a dead or hung replica costs the poller one
 * poll's budget, never a stall. A replica that fails is asked again at the
 * next poll and is up again as soon as it answers.
 *
 * Lag. In bytes: the primary's position minus the replica's (0 when
 * ahead: polled at different instants). In time: the primary's positions
 * are kept in a ring with the time each was first seen; a replica's lag is
 * the age of the oldest position it has not replayed (0 when it has
 * replayed the latest). pg_last_xact_replay_timestamp() would not do: it
 * grows while the primary is idle, though the replica lacks nothing.
 * Usable = up and lag ≤ db.replica_max_lag_ms.
 *
 * Routing (store_reader). A worker's primary store_t keeps its own lazily
 * opened connection to each replica (a connection belongs to one thread).
 * A read that must see position P takes the first usable replica, from a
 * rotating start, whose polled replayed position is ≥ P; none: the
 * primary. A replica's connection that fails marks it down
 * (store_reader_failed) and the caller reads on the primary: a gone
 * replica is never a 5xx. And the other way (store_reader_any): a read
 * the primary cannot answer goes to any replica that answered its last
 * poll and has the read's own position, however far behind it is
 * otherwise: around a primary restart the replicas fall behind (their WAL
 * receivers reconnect seconds after it is back), so lag alone would send
 * every read to the primary that is failing.
 */
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/db_url.h"
#include "core/log.h"
#include "store/replicas.h"
#include "store/store_internal.h"

enum {
    ASK_MIN_MS = 100,          /* the least time a question gets, whatever the poll interval */
    CONNECT_GIVE_UP_MS = 3000, /* a connection still not made after this is started afresh */
    SAMPLES = 1024,            /* the primary's positions remembered: 20 s of constant writes at 20 ms */
    URL_MAX = sizeof(((strata_config *)0)->db_replica_url[0]),
};

/* A connection of the poller's, to the primary or a replica. */
typedef struct target {
    char url[URL_MAX];
    PGconn *pg;
    PostgresPollingStatusType connecting; /* PGRES_POLLING_OK once made */
    int64_t connect_started_ms;
} target;

/* What the poller knows of one replica, read by every worker. */
typedef struct replica {
    target conn;
    char shown[URL_MAX]; /* the URL without its password */
    atomic_bool up;
    atomic_bool usable;
    _Atomic lsn_t replayed;
    _Atomic uint64_t lag_bytes;
    _Atomic int64_t lag_ms;
    _Atomic uint64_t reads;
    bool said_down; /* the poller logged it down: log the recovery once */
} replica;

/* The primary's position and when it was first seen. */
typedef struct sample {
    lsn_t position;
    int64_t at_ms;
} sample;

static struct {
    atomic_int count; /* replicas being watched: 0 until started */
    int poll_ms;
    int max_lag_ms;
    replica replicas[CONFIG_REPLICAS_MAX];
    target primary;
    sample ring[SAMPLES]; /* the poller's own */
    size_t ring_next, ring_used;
    _Atomic uint64_t primary_reads;
    pthread_t thread;
    bool running;
    pthread_mutex_t lock; /* guards stopping, for the poller's sleep */
    pthread_cond_t wake;
    bool stopping;
} mon = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the poller's connections ------------------------------------------------ */

static void target_drop(target *t)
{
    if (t->pg != NULL)
        PQfinish(t->pg);
    t->pg = NULL;
}

/* Waits until fd is readable (or writable) or the deadline passes. */
static bool socket_ready(int fd, bool reading, int64_t deadline)
{
    int64_t left = deadline - now_ms();
    if (fd < 0 || left <= 0)
        return false;
    struct pollfd p = {.fd = fd, .events = reading ? POLLIN : POLLOUT};
    return poll(&p, 1, (int)left) > 0;
}

/* Makes t's connection, without blocking past deadline; an attempt not
 * finished by then goes on at the next poll. True when it is ready. */
static bool target_connected(target *t, int64_t deadline)
{
    if (t->pg != NULL && t->connecting == PGRES_POLLING_OK && PQstatus(t->pg) == CONNECTION_OK)
        return true;
    if (t->pg != NULL && (PQstatus(t->pg) == CONNECTION_BAD || now_ms() - t->connect_started_ms > CONNECT_GIVE_UP_MS))
        target_drop(t);
    if (t->pg == NULL) {
        const char *const keys[] = {"fallback_application_name", "dbname", NULL};
        const char *const values[] = {"strata-replica-monitor", t->url, NULL};
        t->pg = PQconnectStartParams(keys, values, 1);
        if (t->pg == NULL || PQstatus(t->pg) == CONNECTION_BAD) {
            target_drop(t);
            return false;
        }
        t->connecting = PGRES_POLLING_WRITING;
        t->connect_started_ms = now_ms();
    }
    while (t->connecting != PGRES_POLLING_OK) {
        if (t->connecting == PGRES_POLLING_FAILED) {
            target_drop(t);
            return false;
        }
        if (!socket_ready(PQsocket(t->pg), t->connecting == PGRES_POLLING_READING, deadline))
            return false;
        t->connecting = PQconnectPoll(t->pg);
    }
    return true;
}

/* One position ("X/Y" text, one row) asked of t, answered by deadline.
 * A late or failed answer drops the connection: nothing of it may be read
 * as the answer to the next question. */
static bool target_ask(target *t, const char *sql, int64_t deadline, lsn_t *out)
{
    if (!target_connected(t, deadline))
        return false;
    bool answered = false;
    if (!PQsendQuery(t->pg, sql))
        goto failed;
    for (;;) {
        if (!PQconsumeInput(t->pg))
            goto failed;
        if (PQisBusy(t->pg)) {
            if (!socket_ready(PQsocket(t->pg), true, deadline))
                goto failed;
            continue;
        }
        PGresult *res = PQgetResult(t->pg);
        if (res == NULL)
            break;
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
            answered = lsn_parse(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), out);
        PQclear(res);
    }
    return answered;
failed:
    target_drop(t);
    return false;
}

/* ---- lag ----------------------------------------------------------------------- */

static void ring_add(lsn_t position, int64_t at_ms)
{
    size_t last = (mon.ring_next + SAMPLES - 1) % SAMPLES;
    if (mon.ring_used > 0 && mon.ring[last].position == position)
        return; /* the first time a position was seen is what counts */
    mon.ring[mon.ring_next] = (sample){position, at_ms};
    mon.ring_next = (mon.ring_next + 1) % SAMPLES;
    mon.ring_used += mon.ring_used < SAMPLES;
}

/* The age of the oldest primary position not yet replayed (0: none). */
static int64_t lag_ms_of(lsn_t replayed, int64_t now)
{
    for (size_t k = 0; k < mon.ring_used; k++) {
        const sample *s = &mon.ring[(mon.ring_next + SAMPLES - mon.ring_used + k) % SAMPLES];
        if (s->position > replayed)
            return now - s->at_ms;
    }
    return 0;
}

static void replica_log(log_level level, const char *msg, size_t index, const char *shown, const char *why)
{
    log_line line;
    log_begin(&line, level, msg);
    log_int(&line, "replica", (int64_t)index);
    log_str(&line, "url", shown);
    if (why != NULL)
        log_str(&line, "why", why);
    log_end(&line);
}

static void replica_set_down(replica *r, size_t index, const char *why)
{
    atomic_store(&r->up, false);
    atomic_store(&r->usable, false);
    if (!r->said_down) {
        replica_log(LOG_WARN, "replica down", index, r->shown, why);
        r->said_down = true;
    }
}

static void replica_poll(replica *r, size_t index, lsn_t primary, int64_t budget)
{
    lsn_t replayed = LSN_NONE;
    if (!target_ask(&r->conn, "SELECT pg_last_wal_replay_lsn()::text", now_ms() + budget, &replayed)) {
        replica_set_down(r, index,
                         r->conn.pg != NULL ? "no answer in time, or not in recovery" : "cannot connect, or no answer");
        return;
    }
    int64_t now = now_ms();
    int64_t lag = lag_ms_of(replayed, now);
    atomic_store(&r->replayed, replayed);
    atomic_store(&r->lag_bytes, primary > replayed ? primary - replayed : 0);
    atomic_store(&r->lag_ms, lag);
    atomic_store(&r->usable, lag <= mon.max_lag_ms);
    atomic_store(&r->up, true);
    if (r->said_down) {
        replica_log(LOG_INFO, "replica up", index, r->shown, NULL);
        r->said_down = false;
    }
}

static void poll_once(void)
{
    int64_t budget = mon.poll_ms > ASK_MIN_MS ? mon.poll_ms : ASK_MIN_MS;
    lsn_t primary = LSN_NONE;
    if (target_ask(&mon.primary, "SELECT pg_current_wal_insert_lsn()::text", now_ms() + budget, &primary))
        ring_add(primary, now_ms());
    else if (mon.ring_used > 0)
        primary = mon.ring[(mon.ring_next + SAMPLES - 1) % SAMPLES].position; /* the last one known */
    int n = atomic_load(&mon.count);
    for (int i = 0; i < n; i++)
        replica_poll(&mon.replicas[i], (size_t)i, primary, budget);
}

/* Sleeps one interval; false when stopping. */
static bool poll_pause(void)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long ns = until.tv_nsec + (long)mon.poll_ms * 1000000L;
    until.tv_sec += ns / 1000000000L;
    until.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&mon.lock);
    if (!mon.stopping)
        pthread_cond_timedwait(&mon.wake, &mon.lock, &until);
    bool go_on = !mon.stopping;
    pthread_mutex_unlock(&mon.lock);
    return go_on;
}

static void *poller_main(void *arg)
{
    (void)arg;
    do
        poll_once();
    while (poll_pause());
    return NULL;
}

int replicas_start(const strata_config *cfg)
{
    if (cfg->db_replica_count == 0)
        return 0;
    mon.poll_ms = cfg->db_replica_poll_ms;
    mon.max_lag_ms = cfg->db_replica_max_lag_ms;
    snprintf(mon.primary.url, sizeof mon.primary.url, "%s", cfg->db_url);
    for (int i = 0; i < cfg->db_replica_count; i++) {
        replica *r = &mon.replicas[i];
        snprintf(r->conn.url, sizeof r->conn.url, "%s", cfg->db_replica_url[i]);
        db_url_redact(r->conn.url, r->shown, sizeof r->shown);
        r->said_down = true; /* down until it answers; its first answer is logged */
    }
    mon.stopping = false;
    poll_once(); /* workers start knowing where the replicas are */
    atomic_store(&mon.count, cfg->db_replica_count);
    poll_once();
    if (pthread_create(&mon.thread, NULL, poller_main, NULL) != 0) {
        atomic_store(&mon.count, 0);
        return -1;
    }
    mon.running = true;
    return 0;
}

void replicas_stop(void)
{
    if (!mon.running)
        return;
    pthread_mutex_lock(&mon.lock);
    mon.stopping = true;
    pthread_cond_signal(&mon.wake);
    pthread_mutex_unlock(&mon.lock);
    pthread_join(mon.thread, NULL);
    mon.running = false;
    target_drop(&mon.primary);
    for (int i = 0; i < CONFIG_REPLICAS_MAX; i++)
        target_drop(&mon.replicas[i].conn);
}

json_t *replicas_json(void)
{
    json_t *list = json_array();
    uint64_t replica_reads = 0;
    int n = atomic_load(&mon.count);
    for (int i = 0; i < n; i++) {
        replica *r = &mon.replicas[i];
        char text[LSN_TEXT_MAX];
        lsn_t replayed = atomic_load(&r->replayed);
        uint64_t reads = atomic_load(&r->reads);
        replica_reads += reads;
        lsn_format(replayed, text);
        json_array_append_new(list, json_pack("{s:i, s:s, s:b, s:b, s:s?, s:I, s:f, s:I}", "index", i, "url", r->shown,
                                              "up", atomic_load(&r->up), "usable", atomic_load(&r->usable), "replayed",
                                              replayed != LSN_NONE ? text : NULL, "lag_bytes",
                                              (json_int_t)atomic_load(&r->lag_bytes), "lag_seconds",
                                              (double)atomic_load(&r->lag_ms) / 1e3, "reads", (json_int_t)reads));
    }
    return json_pack("{s:{s:I, s:I}, s:o}", "reads", "primary", (json_int_t)atomic_load(&mon.primary_reads), "replica",
                     (json_int_t)replica_reads, "replicas", list);
}

/* ---- routing (store.h) ------------------------------------------------------------ */

/* primary's connection to replica i, opened on first use; NULL if it
 * cannot be opened. */
static store_t *replica_store(store_t *primary, int i)
{
    if (primary->replicas[i] == NULL && store_open(mon.replicas[i].conn.url, &primary->replicas[i]) == STORE_OK)
        primary->replicas[i]->replica_index = i;
    return primary->replicas[i];
}

store_t *store_reader(store_t *primary, lsn_t at_least, lsn_t *read_lsn)
{
    int n = atomic_load_explicit(&mon.count, memory_order_acquire);
    unsigned start = primary->replica_next++;
    *read_lsn = LSN_NONE;
    for (int k = 0; k < n; k++) {
        int i = (int)((start + (unsigned)k) % (unsigned)n);
        replica *r = &mon.replicas[i];
        lsn_t replayed = atomic_load(&r->replayed);
        if (!atomic_load(&r->up) || !atomic_load(&r->usable) || replayed < at_least || replayed == LSN_NONE)
            continue;
        store_t *reader = replica_store(primary, i);
        if (reader == NULL) {
            atomic_store(&r->up, false);
            continue;
        }
        atomic_fetch_add_explicit(&r->reads, 1, memory_order_relaxed);
        *read_lsn = replayed;
        return reader;
    }
    atomic_fetch_add_explicit(&mon.primary_reads, 1, memory_order_relaxed);
    return primary;
}

store_t *store_reader_any(store_t *primary, lsn_t at_least, lsn_t *read_lsn)
{
    int n = atomic_load_explicit(&mon.count, memory_order_acquire);
    unsigned start = primary->replica_next++;
    for (int k = 0; k < n; k++) {
        int i = (int)((start + (unsigned)k) % (unsigned)n);
        replica *r = &mon.replicas[i];
        lsn_t replayed = atomic_load(&r->replayed);
        bool has = atomic_load(&r->up) && replayed != LSN_NONE && replayed >= at_least;
        store_t *reader = has ? replica_store(primary, i) : NULL;
        if (reader == NULL)
            continue;
        atomic_fetch_add_explicit(&r->reads, 1, memory_order_relaxed);
        *read_lsn = replayed;
        return reader;
    }
    return NULL;
}

void store_reader_failed(store_t *reader, int status)
{
    if (reader->replica_index < 0)
        return;
    if (status == STORE_UNAVAILABLE)
        atomic_store(&mon.replicas[reader->replica_index].up, false);
    atomic_fetch_add_explicit(&mon.primary_reads, 1, memory_order_relaxed);
}

void replicas_close_of(store_t *primary)
{
    for (int i = 0; i < CONFIG_REPLICAS_MAX; i++)
        store_close(&primary->replicas[i]);
}
