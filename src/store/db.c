/*
 * db.c — the query layer the domain files run their SQL through (db.h), on
 * whichever driver opened the store's connection (db_driver.h).
 *
 * What is the same on every engine lives here, once: opening a store by
 * asking each driver whether it takes the URL; the per-connection statement
 * cache; the first failure of a query kept until it ends and turned into a
 * store status and a sentence for errmsg; the statement counter; each
 * statement's timing, told to the observer (store_set_observer) that
 * whoever listens installed, with the driver's plan on request; fault
 * injection; and transactions with their bounded retries.
 *
 * Statements. Every SQL text is prepared once per connection (the driver
 * keeps it valid across reconnects) and kept in a hash table keyed by the
 * text. A statement is reset when taken from the cache, and reset again
 * when its query ends so no read transaction outlives a call. Values are
 * always bound, never written into SQL.
 *
 * Errors. Each public store function clears errmsg on entry and, on
 * failure, leaves one sentence in it meant for an API client's problem
 * detail.
 */
#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/db_url.h"
#include "core/log.h"
#include "core/sanity.h"
#include "core/text_hash.h"
#include "store/commit_group.h"
#include "store/store_internal.h"

enum {
    FIRST_STATEMENT_CAPACITY = 64,
    RETRY_PAUSE_MAX_MS = 64, /* the longest randomized pause between retries */
};

/* Who is told each statement's timing (store_set_observer); set before
 * the workers start, read by every thread after. */
static struct {
    store_observer_fn fn;
    void *arg;
} observer;

void store_set_observer(store_observer_fn fn, void *arg)
{
    observer.fn = fn;
    observer.arg = arg;
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The drivers store_open asks, in turn, whether they take a URL: a
 * postgres:// or postgresql:// URL is PostgreSQL's, anything else a
 * SQLite path. */
static const db_driver *const drivers[] = {
    &db_postgres_driver,
    &db_sqlite_driver,
};

/* Why the last store_open on this thread failed: there is no store_t to
 * hold the message, and store_errmsg(NULL) returns it. */
static _Thread_local char open_failure[1024];

static _Atomic uint64_t queries_total;
static _Atomic int64_t faults_until_ms;

const char *store_status_name(int status)
{
    switch (status) {
    case STORE_OK: return "ok";
    case STORE_NOT_FOUND: return "not_found";
    case STORE_CONFLICT: return "conflict";
    case STORE_STALE: return "stale";
    case STORE_INVALID: return "invalid";
    case STORE_STATE: return "state";
    case STORE_BUSY: return "busy";
    case STORE_ERROR: return "error";
    case STORE_UNAVAILABLE: return "unavailable";
    case STORE_FULL: return "full";
    case STORE_UNBOUNDED: return "unbounded";
    default: return "unknown";
    }
}

uint64_t store_queries_total(void)
{
    return atomic_load_explicit(&queries_total, memory_order_relaxed);
}

void store_inject_faults(int64_t until_ms)
{
    atomic_store(&faults_until_ms, until_ms);
}

static bool faults_injected(void)
{
    int64_t until = atomic_load_explicit(&faults_until_ms, memory_order_relaxed);
    return until != 0 && store_now_ms() < until;
}

/* ---- errors ------------------------------------------------------------- */

void db_clear_error(store_t *st)
{
    st->errmsg[0] = '\0';
}

int db_fail(store_t *st, int status, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(st->errmsg, sizeof st->errmsg, format, args);
    va_end(args);
    return status;
}

const char *store_errmsg(const store_t *st)
{
    return st ? st->errmsg : open_failure;
}

/* A driver status as a store status with its sentence; why: the layer's
 * own words, or NULL for the driver's. A retry only means something to
 * db_transact: outside a transaction it is a busy database. */
/* The database's disk. A write refused for want of disk opens an episode;
 * it lasts while refusals keep coming less than DISK_FULL_RECENT_MS apart.
 * Not ended by the next commit that succeeds: a nearly full disk still
 * takes a small write now and then (a token's last use), and /readyz and
 * the alert should not flap with it. */
enum { DISK_FULL_RECENT_MS = 10000 };
static _Atomic int64_t disk_full_started, disk_full_last;
static atomic_bool disk_full_logged; /* the episode's start was logged, its end not yet */

int64_t store_disk_full_since(void)
{
    int64_t last = atomic_load(&disk_full_last);
    if (last == 0 || store_now_ms() - last >= DISK_FULL_RECENT_MS)
        return 0;
    return atomic_load(&disk_full_started);
}

static void disk_full_noticed(void)
{
    int64_t now = store_now_ms(), last = atomic_load(&disk_full_last);
    if (last == 0 || now - last >= DISK_FULL_RECENT_MS)
        atomic_store(&disk_full_started, now);
    atomic_store(&disk_full_last, now);
    if (!atomic_exchange(&disk_full_logged, true))
        log_event(LOG_ERROR, "the database's disk is full: writes answer 507 until space is freed");
}

static void disk_room_noticed(void)
{
    if (atomic_load_explicit(&disk_full_logged, memory_order_relaxed) && atomic_exchange(&disk_full_logged, false))
        log_event(LOG_INFO, "the database's disk took a write again");
}

json_t *store_writes_json(const store_t *st)
{
    json_t *group = json_null();
    if (st->group != NULL) {
        commit_group_stats g;
        commit_group_stats_of(st, &g);
        group = json_pack("{s:I, s:I, s:I, s:I}", "commits", (json_int_t)g.commits, "writes", (json_int_t)g.writes,
                          "background_writes", (json_int_t)g.background, "failed_writes", (json_int_t)g.failed);
    }
    return json_pack("{s:o*, s:b}", "group_commit", group, "disk_full", store_disk_full_since() != 0);
}

static int driver_failed(store_t *st, int status, const char *doing, const char *why)
{
    const char *words = why ? why : st->driver->errmsg(st->conn);
    switch (status) {
    case STORE_FULL:
        disk_full_noticed();
        return db_fail(st, STORE_FULL, "the database's disk is full (%s): nothing was written", doing);
    case STORE_BUSY: return db_fail(st, STORE_BUSY, "the database is busy (%s); try again shortly", doing);
    case STORE_CONFLICT: return db_fail(st, STORE_CONFLICT, "a unique key is already taken (%s)", doing);
    case DB_RETRY:
        if (st->in_transaction) {
            st->retry_seen = true; /* whatever the body makes of this status, db_transact retries */
            return db_fail(st, DB_RETRY, "a concurrent write conflicted (%s)", doing);
        }
        return db_fail(st, STORE_BUSY, "the database is busy (%s); try again shortly", doing);
    case STORE_UNAVAILABLE:
        return db_fail(st, STORE_UNAVAILABLE, "the database cannot be reached (%s): %s", doing, words);
    case STORE_INVALID: /* a value the engine refuses (PostgreSQL class 22): the client's input */
        return db_fail(st, STORE_INVALID, "the database refused a value (%s): %s", doing, words);
    default: return db_fail(st, STORE_ERROR, "database error while %s: %s", doing, words);
    }
}

/* ---- statement cache ---------------------------------------------------- */

static cached_statement *statement_slot(cached_statement *table, size_t capacity, const char *sql, uint64_t hash)
{
    size_t mask = capacity - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        cached_statement *slot = &table[i];
        if (slot->sql_hash == 0 || (slot->sql_hash == hash && strcmp(slot->sql, sql) == 0))
            return slot;
    }
}

static int statement_table_grow(store_t *st)
{
    size_t capacity = st->statement_capacity ? st->statement_capacity * 2 : FIRST_STATEMENT_CAPACITY;
    cached_statement *table = calloc(capacity, sizeof *table);
    if (!table)
        return db_fail(st, STORE_ERROR, "out of memory growing the statement cache");
    for (size_t i = 0; i < st->statement_capacity; i++) {
        cached_statement *old = &st->statements[i];
        if (old->sql_hash)
            *statement_slot(table, capacity, old->sql, old->sql_hash) = *old;
    }
    free(st->statements);
    st->statements = table;
    st->statement_capacity = capacity;
    return STORE_OK;
}

/* The fragments a query names in braces, and what stands for each. */
static const struct {
    const char *name;
    db_fragment_id id;
} query_fragments[] = {
    {"{tags_of_item}", DB_SQL_TAGS_OF_ITEM},
    {"{category_of_item}", DB_SQL_CATEGORY_OF_ITEM},
    {"{skip_locked}", DB_SQL_SKIP_LOCKED},
};

char *db_sql_filled(const char *sql, const char *const names[], const char *const texts[], size_t n)
{
    size_t size = strlen(sql) + 1;
    for (size_t i = 0; i < n; i++)
        for (const char *at = strstr(sql, names[i]); at; at = strstr(at + 1, names[i]))
            size += strlen(texts[i]);
    char *out = malloc(size);
    if (out == NULL)
        return NULL;
    size_t len = 0;
    for (const char *p = sql; *p;) {
        size_t i = 0;
        while (i < n && (*p != names[i][0] || strncmp(p, names[i], strlen(names[i])) != 0))
            i++;
        if (i == n) {
            out[len++] = *p++;
            continue;
        }
        memcpy(out + len, texts[i], strlen(texts[i]));
        len += strlen(texts[i]);
        p += strlen(names[i]);
    }
    out[len] = '\0';
    return out;
}

/* sql with each named fragment replaced by the driver's text (malloc'd),
 * or NULL when it names none or memory is short (*failed says which). */
static char *fragments_expanded(const store_t *st, const char *sql, bool *failed)
{
    enum { FRAGMENT_NAMES = sizeof query_fragments / sizeof query_fragments[0] };
    *failed = false;
    if (strchr(sql, '{') == NULL)
        return NULL;
    const char *names[FRAGMENT_NAMES], *texts[FRAGMENT_NAMES];
    for (size_t i = 0; i < FRAGMENT_NAMES; i++) {
        names[i] = query_fragments[i].name;
        texts[i] = st->driver->fragments[query_fragments[i].id];
    }
    char *out = db_sql_filled(sql, names, texts, FRAGMENT_NAMES);
    *failed = out == NULL;
    return out;
}

/* Prepares sql (its fragments expanded) and caches it under its own text. */
static int statement_prepare(store_t *st, const char *sql, uint64_t hash, db_stmt **out)
{
    if ((st->statement_count + 1) * 2 > st->statement_capacity) {
        int status = statement_table_grow(st);
        if (status != STORE_OK)
            return status;
    }
    bool failed;
    char *expanded = fragments_expanded(st, sql, &failed);
    if (failed)
        return db_fail(st, STORE_ERROR, "out of memory preparing a statement");
    db_stmt *stmt = NULL;
    int status = st->driver->prepare(st->conn, expanded ? expanded : sql, &stmt);
    free(expanded);
    if (status != STORE_OK)
        return driver_failed(st, status, "preparing a statement", NULL);
    char *copy = strdup(sql);
    if (!copy) {
        st->driver->finalize(stmt);
        return db_fail(st, STORE_ERROR, "out of memory caching a statement");
    }
    *statement_slot(st->statements, st->statement_capacity, sql, hash) =
        (cached_statement){.sql_hash = hash, .sql = copy, .stmt = stmt};
    st->statement_count++;
    *out = stmt;
    return STORE_OK;
}

static void statements_finalize(store_t *st)
{
    for (size_t i = 0; i < st->statement_capacity; i++) {
        if (st->statements[i].sql_hash) {
            st->driver->finalize(st->statements[i].stmt);
            free(st->statements[i].sql);
        }
    }
    free(st->statements);
    st->statements = NULL;
    st->statement_count = st->statement_capacity = 0;
}

size_t db_statement_count(const store_t *st)
{
    return st->statement_count;
}

size_t db_statements_busy(const store_t *st)
{
    size_t busy = 0;
    for (size_t i = 0; i < st->statement_capacity; i++)
        busy += st->statements[i].sql_hash && st->driver->busy(st->statements[i].stmt);
    return busy;
}

/* ---- queries ------------------------------------------------------------ */

int db_query_start(store_t *st, const char *sql, db_query *q)
{
    *q = (db_query){.st = st, .failure = STORE_OK, .started_ns = observer.fn != NULL ? monotonic_ns() : 0};
    atomic_fetch_add_explicit(&queries_total, 1, memory_order_relaxed);
    if (faults_injected()) {
        q->failure = STORE_ERROR;
        return db_fail(st, STORE_ERROR, "the database is unreachable (injected fault)");
    }
    uint64_t hash = text_hash(sql);
    if (st->statement_capacity) {
        cached_statement *slot = statement_slot(st->statements, st->statement_capacity, sql, hash);
        if (slot->sql_hash) {
            st->driver->reset(slot->stmt); /* only reports on the previous use, long handled */
            q->stmt = slot->stmt;
            return STORE_OK;
        }
    }
    return statement_prepare(st, sql, hash, &q->stmt);
}

/* Keeps the first failure: later calls only repeat or follow from it. */
static void query_result(db_query *q, int status)
{
    if (q->failure == STORE_OK)
        q->failure = status;
}

static int parameter_index(db_query *q, const char *name)
{
    int index = q->st->driver->param_index(q->stmt, name);
    if (index == 0 && q->failure == STORE_OK) {
        q->failure = STORE_ERROR;
        q->why = "a parameter is missing from the statement";
    }
    return index;
}

void db_bind_int(db_query *q, const char *name, int64_t value)
{
    int index = parameter_index(q, name);
    if (index)
        query_result(q, q->st->driver->bind_int(q->stmt, index, value));
}

void db_bind_int_or_null(db_query *q, const char *name, int64_t value, bool present)
{
    int index = parameter_index(q, name);
    if (index)
        query_result(q, present ? q->st->driver->bind_int(q->stmt, index, value)
                                : q->st->driver->bind_null(q->stmt, index));
}

void db_bind_text(db_query *q, const char *name, const char *text)
{
    int index = parameter_index(q, name);
    if (index)
        query_result(q,
                     text ? q->st->driver->bind_text(q->stmt, index, text) : q->st->driver->bind_null(q->stmt, index));
}

void db_bind_double(db_query *q, const char *name, double value)
{
    int index = parameter_index(q, name);
    if (index)
        query_result(q, q->st->driver->bind_double(q->stmt, index, value));
}

void db_bind_blob(db_query *q, const char *name, const void *data, size_t size)
{
    int index = parameter_index(q, name);
    if (index)
        query_result(q, q->st->driver->bind_blob(q->stmt, index, data, size));
}

void db_bind_int_at(db_query *q, int index, int64_t value)
{
    query_result(q, q->st->driver->bind_int(q->stmt, index, value));
}

bool db_next_row(db_query *q)
{
    if (q->failure != STORE_OK)
        return false;
    bool row = false;
    int status = q->st->driver->step(q->stmt, &row);
    query_result(q, status);
    return status == STORE_OK && row;
}

/* The observer: the statement's time by its text. */
static void query_measured(const db_query *q)
{
    store_statement_timing timing = {
        .store = q->st, .sql = q->st->driver->sql(q->stmt), .nanos = monotonic_ns() - q->started_ns};
    observer.fn(&timing, observer.arg);
}

void store_explain(store_t *st, const char *sql, char *plan, size_t size)
{
    st->driver->explain(st->conn, sql, plan, size);
}

int db_query_end(db_query *q, const char *doing)
{
    q->st->driver->reset(q->stmt);
    q->st->last_changes = q->failure == STORE_OK ? q->st->driver->changes(q->st->conn) : 0;
    /* the sentence first: explaining a slow plan runs SQL of its own */
    int status = q->failure == STORE_OK ? STORE_OK : driver_failed(q->st, q->failure, doing, q->why);
    if (q->started_ns != 0 && q->stmt != NULL)
        query_measured(q);
    return status;
}

int db_query_run(db_query *q, const char *doing)
{
    while (db_next_row(q))
        ;
    return db_query_end(q, doing);
}

const char *db_column_text(const db_query *q, int column)
{
    return q->st->driver->column_text(q->stmt, column);
}

int64_t db_column_int(const db_query *q, int column)
{
    return q->st->driver->column_int(q->stmt, column);
}

double db_column_double(const db_query *q, int column)
{
    return q->st->driver->column_double(q->stmt, column);
}

const void *db_column_blob(const db_query *q, int column, size_t *size)
{
    return q->st->driver->column_blob(q->stmt, column, size);
}

bool db_column_is_null(const db_query *q, int column)
{
    return q->st->driver->column_is_null(q->stmt, column);
}

int64_t db_changes(const store_t *st)
{
    return st->last_changes;
}

int db_exec_script(store_t *st, const char *script, const char *doing)
{
    int status = st->driver->exec(st->conn, script);
    return status == STORE_OK ? STORE_OK : driver_failed(st, status, doing, NULL);
}

const char *db_fragment(const store_t *st, db_fragment_id id)
{
    return st->driver->fragments[id];
}

const db_driver *db_driver_of(const store_t *st)
{
    return st->driver;
}

/* ---- transactions ------------------------------------------------------- */

/* A BEGIN or COMMIT, told to the observer by its verb (a slow BEGIN waits
 * for the write lock); it has no plan. */
static void control_measured(store_t *st, const char *verb, uint64_t nanos)
{
    store_statement_timing timing = {.store = st, .sql = verb, .nanos = nanos, .control = true};
    observer.fn(&timing, observer.arg);
}

/* BEGIN and COMMIT count as statements, as the SQL they are. */
int db_control(store_t *st, const char *verb, int (*op)(db_conn *c), const char *doing)
{
    uint64_t started = observer.fn != NULL ? monotonic_ns() : 0;
    atomic_fetch_add_explicit(&queries_total, 1, memory_order_relaxed);
    if (faults_injected())
        return db_fail(st, STORE_ERROR, "the database is unreachable (injected fault)");
    int status = op(st->conn);
    if (started != 0)
        control_measured(st, verb, monotonic_ns() - started);
    if (status == STORE_OK && op == st->driver->commit)
        disk_room_noticed();
    return status == STORE_OK ? STORE_OK : driver_failed(st, status, doing, NULL);
}

#ifdef STRATA_SANITY
/* Write transactions open on this thread, on any connection: a second one
 * inside the first's body would wait for the write lock the first holds. */
static _Thread_local int transactions_open;

typedef enum transaction_point { AT_BEGIN, AT_COMMIT, AT_END } transaction_point;

/* Where a transaction begins, commits or ends: BEGIN and the end paired,
 * never a writer inside a writer, and no statement mid-run — one left
 * un-reset at COMMIT or before BEGIN would hold a read transaction open
 * past its call (db.h). */
static bool transaction_sane(const store_t *st, transaction_point point)
{
    static const char *const names[] = {"BEGIN", "COMMIT", "the end"};
    int open_expected = point == AT_BEGIN ? 0 : 1;
    SANITY_EXPECT(transactions_open == open_expected,
                  "%d write transactions are open on this thread at %s, not %d (a writer inside a writer?)",
                  transactions_open, names[point], open_expected);
    SANITY_EXPECT(point == AT_END || st->in_transaction == (point == AT_COMMIT),
                  "the connection is%s marked in a transaction at %s", st->in_transaction ? "" : " not", names[point]);
    size_t busy = point != AT_END ? db_statements_busy(st) : 0;
    SANITY_EXPECT(busy == 0, "%zu statements are mid-run at %s", busy, names[point]);
    return true;
}

static void transaction_opened(const store_t *st)
{
    transaction_sane(st, AT_BEGIN);
    transactions_open++;
}

static void transaction_closed(const store_t *st)
{
    transaction_sane(st, AT_END);
    transactions_open--;
}
#else
#define transaction_sane(st, point) ((void)0)
#define transaction_opened(st) ((void)0)
#define transaction_closed(st) ((void)0)
#endif

static int transaction_once(store_t *st, int (*body)(store_t *st, void *arg), void *arg)
{
    transaction_opened(st);
    int status = db_control(st, "BEGIN", st->driver->begin, "starting a transaction");
    if (status != STORE_OK) {
        transaction_closed(st);
        return status;
    }
    st->in_transaction = true;
    st->retry_seen = false;
    status = body(st, arg);
    if (status == STORE_OK) {
        transaction_sane(st, AT_COMMIT);
        status = db_control(st, "COMMIT", st->driver->commit, "committing");
    }
    if (status != STORE_OK)
        st->driver->rollback(st->conn); /* never fails: the first failure is what the caller hears of */
    st->in_transaction = false;
    transaction_closed(st);
    /* A body may turn the engine's "run it again" into words of its own
     * ("lost its base"), and on PostgreSQL every statement after it fails
     * as "transaction aborted": the conflict is what happened, so retry. */
    return st->retry_seen ? DB_RETRY : status;
}

int db_body_run(store_t *st, int (*body)(store_t *st, void *arg), void *arg)
{
    transaction_opened(st);
    st->in_transaction = true;
    st->retry_seen = false;
    int status = body(st, arg);
    if (status == STORE_OK)
        transaction_sane(st, AT_COMMIT);
    st->in_transaction = false;
    transaction_closed(st);
    return st->retry_seen ? DB_RETRY : status; /* as transaction_once */
}

/* 1 ms up to RETRY_PAUSE_MAX_MS, doubling with each attempt, randomized so
 * that the writers that collided do not collide again. */
static void retry_pause(int attempt)
{
    static _Thread_local unsigned seed;
    if (seed == 0)
        seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&seed;
    int ceiling = 1 << (attempt < 6 ? attempt : 6);
    int ms = 1 + rand_r(&seed) % (ceiling < RETRY_PAUSE_MAX_MS ? ceiling : RETRY_PAUSE_MAX_MS);
    struct timespec pause = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000L};
    nanosleep(&pause, NULL);
}

int db_transact(store_t *st, int (*body)(store_t *st, void *arg), void *arg, const char *doing)
{
    assert(st != NULL && body != NULL && doing != NULL);
    if (st->group != NULL)
        return commit_group_transact(st->group, st, body, arg, doing);
    for (int attempt = 1;; attempt++) {
        int status = transaction_once(st, body, arg);
        if (status != DB_RETRY)
            return status;
        if (attempt == DB_RETRY_MAX)
            return db_fail(st, STORE_BUSY,
                           "the database is busy (%s met concurrent writes %d times); try again shortly", doing,
                           attempt);
        retry_pause(attempt);
        db_clear_error(st);
    }
}

/* The turns of db_transact_item: striped by item id (two items may share
 * a stripe, which only makes one wait for the other). */
enum { ITEM_TURNS = 64 };
static pthread_mutex_t item_turns[ITEM_TURNS] = {[0 ... ITEM_TURNS - 1] = PTHREAD_MUTEX_INITIALIZER};

int db_transact_item(store_t *st, int64_t item_id, int (*body)(store_t *st, void *arg), void *arg, const char *doing)
{
    if (st->group != NULL || st->in_transaction) /* the group's turn; or inside a writer already */
        return db_transact(st, body, arg, doing);
    pthread_mutex_t *turn = &item_turns[(uint64_t)item_id % ITEM_TURNS];
    pthread_mutex_lock(turn);
    int status = db_transact(st, body, arg, doing);
    pthread_mutex_unlock(turn);
    return status;
}

/* ---- connection --------------------------------------------------------- */

/* Why store_open failed, with the URL; never a password of the URL, even
 * where a driver's words echo it. */
static void open_failed(const char *url, const char *why)
{
    char shown[512];
    db_url_redact(url, shown, sizeof shown);
    size_t size = strlen(shown) + strlen(why) + 64;
    char *text = malloc(size);
    if (text == NULL) {
        snprintf(open_failure, sizeof open_failure, "cannot open the database: out of memory");
        return;
    }
    snprintf(text, size, "cannot open the database %s: %s", shown, why);
    db_url_mask_secrets(url, text, open_failure, sizeof open_failure);
    free(text);
}

static const db_driver *driver_for(const char *url)
{
    for (size_t i = 0; i < sizeof drivers / sizeof drivers[0]; i++)
        if (drivers[i]->accepts(url))
            return drivers[i];
    return NULL;
}

int store_open(const char *url, store_t **out)
{
    int status = store_open_alone(url, out);
    /* a store that cannot join commits alone: slower, as safe */
    if (status == STORE_OK && (*out)->driver == &db_sqlite_driver && commit_group_wanted(url))
        (*out)->group = commit_group_join(url);
    return status;
}

int store_open_alone(const char *url, store_t **out)
{
    *out = NULL;
    open_failure[0] = '\0';
    const db_driver *driver = driver_for(url);
    if (!driver) {
        open_failed(url, "no driver takes this URL");
        return STORE_ERROR;
    }
    store_t *st = calloc(1, sizeof *st);
    if (!st) {
        open_failed(url, "out of memory");
        return STORE_ERROR;
    }
    st->driver = driver;
    st->replica_index = -1;
    char why[512] = "";
    int status = driver->open(url, &st->conn, why, sizeof why);
    if (status != STORE_OK) {
        open_failed(url, why);
        free(st);
        return status;
    }
    *out = st;
    return STORE_OK;
}

void store_relax_durability(store_t *st)
{
    st->driver->relax_durability(st->conn);
}

void store_writes_background(store_t *st)
{
    st->background = true;
}

void store_close(store_t **st)
{
    if (!*st)
        return;
    store_t *s = *st;
    commit_group_leave(&s->group);
    replicas_close_of(s);
    statements_finalize(s);
    version_codec_free(&s->codec);
    s->driver->close(s->conn);
    free(s);
    *st = NULL;
}

int store_ping(store_t *st)
{
    db_clear_error(st);
    db_query q;
    int status = db_query_start(st, "SELECT 1", &q);
    return status != STORE_OK ? status : db_query_run(&q, "checking the database");
}

/* ---- commit positions ----------------------------------------------------- */

/* Read when asked, after the commit, not inside it: any insert position
 * read once COMMIT has returned is at or past the commit record, whether
 * the write ran in db_transact or as one statement on its own, so reading
 * it later (after the handler's other statements) only asks a replica for
 * a few bytes more, and the writes nobody asks about (jobs, view counts)
 * pay nothing. A failure (the connection broke right after COMMIT)
 * answers LSN_NONE and is logged: the write is committed, but its response
 * cannot name where. */
lsn_t store_commit_lsn(store_t *st)
{
    const char *sql = st->driver->fragments[DB_SQL_COMMIT_POSITION];
    if (sql == NULL)
        return LSN_NONE;
    char kept[sizeof st->errmsg];
    memcpy(kept, st->errmsg, sizeof kept);
    db_query q;
    lsn_t lsn = LSN_NONE;
    if (db_query_start(st, sql, &q) == STORE_OK && db_next_row(&q)) {
        const char *text = db_column_text(&q, 0);
        if (text == NULL || !lsn_parse(text, strlen(text), &lsn))
            lsn = LSN_NONE;
    }
    int status = db_query_end(&q, "reading the commit position");
    if (status != STORE_OK || lsn == LSN_NONE)
        log_event_str(LOG_WARN, "the commit position could not be read", "error", st->errmsg);
    memcpy(st->errmsg, kept, sizeof kept);
    return status == STORE_OK ? lsn : LSN_NONE;
}
