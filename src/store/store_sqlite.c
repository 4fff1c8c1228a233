/*
 * store_sqlite.c — the SQLite connection behind store.h, and the plumbing the
 * other store files build on: the statement cache, errors, transactions and
 * time; plus the small tables (sites, tokens, categories).
 *
 * Connection. A store_t is one connection used by one thread, opened NOMUTEX.
 * journal_mode=WAL lets readers run beside the single writer; with
 * synchronous=FULL the WAL is fsynced at every COMMIT, so a write that
 * returned STORE_OK survives kill -9 and power loss (NORMAL would only
 * survive a process crash). mmap serves reads from the page cache without a
 * copy; busy_timeout makes a writer wait for the lock instead of failing.
 *
 * Statements. Every SQL text is compiled once per connection with
 * SQLITE_PREPARE_PERSISTENT and kept in a hash table keyed by the text. A
 * statement is reset and its bindings cleared when taken from the cache, and
 * reset again when its query ends so no read transaction outlives a call.
 * Values are always bound, never written into SQL.
 *
 * Errors. Each public function clears errmsg on entry and, on failure,
 * leaves one sentence in it meant for an API client's problem detail.
 */
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/metrics.h"
#include "store/sqlite_internal.h"

enum {
    BUSY_TIMEOUT_MS = 5000,
    FIRST_STATEMENT_CAPACITY = 64,
    TOKEN_NAME_MAX = 64,
};

/* Why the last store_open on this thread failed: there is no store_t to
 * hold the message, and store_errmsg(NULL) returns it. */
static _Thread_local char open_failure[1024];

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
    default: return "unknown";
    }
}

/* ---- errors ------------------------------------------------------------- */

void sq_clear_error(store_t *st)
{
    st->errmsg[0] = '\0';
}

int sq_fail(store_t *st, int status, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(st->errmsg, sizeof st->errmsg, format, args);
    va_end(args);
    return status;
}

int sq_fail_sqlite(store_t *st, int sqlite_rc, const char *doing)
{
    switch (sqlite_rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return sq_fail(st, STORE_BUSY, "the database is busy (%s); try again shortly", doing);
    case SQLITE_CONSTRAINT:
        if (sqlite_rc == SQLITE_CONSTRAINT_UNIQUE || sqlite_rc == SQLITE_CONSTRAINT_PRIMARYKEY)
            return sq_fail(st, STORE_CONFLICT, "a unique key is already taken (%s)", doing);
        break;
    default: break;
    }
    return sq_fail(st, STORE_ERROR, "database error while %s: %s", doing, sqlite3_errmsg(st->db));
}

const char *store_errmsg(const store_t *st)
{
    return st ? st->errmsg : open_failure;
}

/* ---- statement cache ---------------------------------------------------- */

/* FNV-1a; never 0, which marks an empty slot. */
static uint64_t sql_text_hash(const char *sql)
{
    uint64_t hash = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        hash = (hash ^ *p) * 1099511628211ULL;
    return hash ? hash : 1;
}

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
        return sq_fail(st, STORE_ERROR, "out of memory growing the statement cache");
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

static int statement_compile(store_t *st, const char *sql, uint64_t hash, sqlite3_stmt **out)
{
    if ((st->statement_count + 1) * 2 > st->statement_capacity) {
        int status = statement_table_grow(st);
        if (status != STORE_OK)
            return status;
    }
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL);
    if (rc != SQLITE_OK)
        return sq_fail_sqlite(st, rc, "preparing a statement");
    char *copy = strdup(sql);
    if (!copy) {
        sqlite3_finalize(stmt); /* returns the last step's code; it never ran */
        return sq_fail(st, STORE_ERROR, "out of memory caching a statement");
    }
    *statement_slot(st->statements, st->statement_capacity, sql, hash) =
        (cached_statement){.sql_hash = hash, .sql = copy, .stmt = stmt};
    st->statement_count++;
    *out = stmt;
    return STORE_OK;
}

static _Atomic uint64_t queries_total;
static _Atomic int64_t faults_until_ms;

uint64_t store_queries_total(void) { return atomic_load_explicit(&queries_total, memory_order_relaxed); }

void store_inject_faults(int64_t until_ms) { atomic_store(&faults_until_ms, until_ms); }

int sq_query_start(store_t *st, const char *sql, sq_query *q)
{
    *q = (sq_query){.st = st, .stmt = NULL, .rc = SQLITE_OK, .started_ns = metrics_enabled() ? metrics_now_ns() : 0};
    atomic_fetch_add_explicit(&queries_total, 1, memory_order_relaxed);
    int64_t faults_until = atomic_load_explicit(&faults_until_ms, memory_order_relaxed);
    if (faults_until != 0 && store_now_ms() < faults_until) {
        q->rc = SQLITE_IOERR;
        return sq_fail(st, STORE_ERROR, "the database is unreachable (injected fault)");
    }
    uint64_t hash = sql_text_hash(sql);
    if (st->statement_capacity) {
        cached_statement *slot = statement_slot(st->statements, st->statement_capacity, sql, hash);
        if (slot->sql_hash) {
            /* Both only report on the previous use, which was already
             * handled when that query ended. */
            sqlite3_reset(slot->stmt);
            sqlite3_clear_bindings(slot->stmt);
            q->stmt = slot->stmt;
            return STORE_OK;
        }
    }
    return statement_compile(st, sql, hash, &q->stmt);
}

size_t sq_statement_count(const store_t *st)
{
    return st->statement_count;
}

size_t sq_statements_busy(const store_t *st)
{
    size_t busy = 0;
    for (sqlite3_stmt *s = sqlite3_next_stmt(st->db, NULL); s; s = sqlite3_next_stmt(st->db, s))
        busy += sqlite3_stmt_busy(s) != 0;
    return busy;
}

/* ---- binding and stepping ----------------------------------------------- */

static int parameter_index(sq_query *q, const char *name)
{
    int index = sqlite3_bind_parameter_index(q->stmt, name);
    if (index == 0 && q->rc == SQLITE_OK)
        q->rc = SQLITE_RANGE;
    return index;
}

static void bind_result(sq_query *q, int rc)
{
    if (q->rc == SQLITE_OK)
        q->rc = rc;
}

void sq_bind_int(sq_query *q, const char *name, int64_t value)
{
    int index = parameter_index(q, name);
    if (index)
        bind_result(q, sqlite3_bind_int64(q->stmt, index, value));
}

void sq_bind_int_or_null(sq_query *q, const char *name, int64_t value, bool present)
{
    int index = parameter_index(q, name);
    if (index)
        bind_result(q, present ? sqlite3_bind_int64(q->stmt, index, value) : sqlite3_bind_null(q->stmt, index));
}

void sq_bind_text(sq_query *q, const char *name, const char *text)
{
    int index = parameter_index(q, name);
    if (index)
        bind_result(q, text ? sqlite3_bind_text(q->stmt, index, text, -1, SQLITE_TRANSIENT)
                            : sqlite3_bind_null(q->stmt, index));
}

void sq_bind_blob(sq_query *q, const char *name, const void *data, size_t size)
{
    int index = parameter_index(q, name);
    if (index)
        bind_result(q, sqlite3_bind_blob64(q->stmt, index, data, size, SQLITE_TRANSIENT));
}

void sq_bind_int_at(sq_query *q, int index, int64_t value)
{
    bind_result(q, sqlite3_bind_int64(q->stmt, index, value));
}

bool sq_next_row(sq_query *q)
{
    if (q->rc != SQLITE_OK)
        return false;
    int rc = sqlite3_step(q->stmt);
    if (rc == SQLITE_ROW)
        return true;
    if (rc != SQLITE_DONE)
        q->rc = rc;
    return false;
}

/* EXPLAIN QUERY PLAN of sql as indented lines, like the sqlite3 shell's;
 * "" if it cannot be explained. Parameters stay unbound (NULL): the plan
 * does not depend on their values. */
static void explain_plan(store_t *st, const char *sql, char *out, size_t size)
{
    char *text = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *stmt = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (text != NULL && sqlite3_prepare_v2(st->db, text, -1, &stmt, NULL) == SQLITE_OK) {
        int ids[64], depths[64], known = 0;
        while (sqlite3_step(stmt) == SQLITE_ROW && len + 1 < size) {
            int id = sqlite3_column_int(stmt, 0), parent = sqlite3_column_int(stmt, 1), depth = 0;
            for (int i = 0; i < known; i++)
                if (ids[i] == parent)
                    depth = depths[i] + 1;
            if (known < 64)
                ids[known] = id, depths[known++] = depth;
            const char *detail = (const char *)sqlite3_column_text(stmt, 3);
            int n = snprintf(out + len, size - len, "%s%*s%s", len ? "\n" : "", depth * 2, "", detail ? detail : "");
            len = n < 0 ? len : len + (size_t)n < size ? len + (size_t)n : size - 1;
        }
    }
    sqlite3_finalize(stmt);
    sqlite3_free(text);
}

/* Metrics: the statement's time by its text; a slow one with its plan. */
static void query_measured(const sq_query *q)
{
    uint64_t nanos = metrics_now_ns() - q->started_ns;
    const char *sql = sqlite3_sql(q->stmt);
    metrics_query(sql, nanos);
    if (nanos >= metrics_slow_query_ns()) {
        char plan[1024];
        explain_plan(q->st, sql, plan, sizeof(plan));
        metrics_slow_query(sql, nanos, plan);
    }
}

int sq_query_end(sq_query *q, const char *doing)
{
    /* reset repeats the step failure already kept in q->rc */
    sqlite3_reset(q->stmt);
    if (q->started_ns != 0 && q->stmt != NULL)
        query_measured(q);
    if (q->rc == SQLITE_OK)
        return STORE_OK;
    return sq_fail_sqlite(q->st, q->rc, doing);
}

int sq_query_run(sq_query *q, const char *doing)
{
    while (sq_next_row(q))
        ;
    return sq_query_end(q, doing);
}

const char *sq_column_text(const sq_query *q, int column)
{
    return (const char *)sqlite3_column_text(q->stmt, column);
}

int64_t sq_changes(const store_t *st)
{
    return sqlite3_changes64(st->db);
}

/* Runs fixed SQL that takes no parameters. */
static int run_fixed(store_t *st, const char *sql, const char *doing)
{
    sq_query q;
    int status = sq_query_start(st, sql, &q);
    return status != STORE_OK ? status : sq_query_run(&q, doing);
}

/* ---- transactions ------------------------------------------------------- */

/* Writers of one process queue on this mutex before BEGIN IMMEDIATE.
 * SQLite's busy handler makes a writer that finds the lock taken sleep and
 * retry (1, 2, 5, 10… up to 100 ms a time), so two writers of one process
 * meeting at the lock cost the second one tens of milliseconds even when
 * the first is done in one; a mutex hands the lock over at once. Writers
 * of other processes still meet at SQLite's lock and its busy_timeout. */
static pthread_mutex_t process_writer = PTHREAD_MUTEX_INITIALIZER;

static void writer_release(store_t *st)
{
    if (st->holds_writer) {
        st->holds_writer = false;
        pthread_mutex_unlock(&process_writer);
    }
}

int sq_begin(store_t *st)
{
    pthread_mutex_lock(&process_writer);
    st->holds_writer = true;
    int status = run_fixed(st, "BEGIN IMMEDIATE", "starting a transaction");
    if (status != STORE_OK)
        writer_release(st);
    return status;
}

static void rollback(store_t *st)
{
    /* Some errors (I/O, full disk) already rolled the transaction back. */
    if (sqlite3_get_autocommit(st->db))
        return;
    char saved[sizeof st->errmsg];
    memcpy(saved, st->errmsg, sizeof saved);
    /* If even ROLLBACK fails the connection is unusable and SQLite rolls
     * back on close or on the next open; the first failure is what the
     * caller needs to hear about. */
    (void)run_fixed(st, "ROLLBACK", "rolling back");
    memcpy(st->errmsg, saved, sizeof saved);
}

int sq_end(store_t *st, int status)
{
    if (status == STORE_OK) {
        status = run_fixed(st, "COMMIT", "committing");
        if (status == STORE_OK) {
            writer_release(st);
            return STORE_OK;
        }
    }
    rollback(st);
    writer_release(st);
    return status;
}

/* ---- time --------------------------------------------------------------- */

int64_t store_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void sq_format_time(int64_t ms, char out[SQ_TIME_TEXT_SIZE])
{
    int64_t seconds = ms / 1000, millis = ms % 1000;
    if (millis < 0) { /* floor, so times before 1970 still print */
        millis += 1000;
        seconds -= 1;
    }
    time_t t = (time_t)seconds;
    struct tm utc;
    gmtime_r(&t, &utc);
    snprintf(out, SQ_TIME_TEXT_SIZE, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
             utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, (int)millis);
}

json_t *sq_time_json(int64_t ms)
{
    char text[SQ_TIME_TEXT_SIZE];
    sq_format_time(ms, text);
    return json_string(text);
}

bool sq_put(json_t *object, const char *key, json_t *value)
{
    return value && json_object_set_new(object, key, value) == 0;
}

/* ---- connection --------------------------------------------------------- */

static int pragma_text(store_t *st, const char *sql, char *out, size_t size)
{
    sq_query q;
    int status = sq_query_start(st, sql, &q);
    if (status != STORE_OK)
        return status;
    out[0] = '\0';
    if (sq_next_row(&q) && sq_column_text(&q, 0))
        snprintf(out, size, "%s", sq_column_text(&q, 0));
    return sq_query_end(&q, "configuring the connection");
}

static int connection_configure(store_t *st)
{
    static const char *const settings[] = {
        "PRAGMA synchronous = FULL",    "PRAGMA foreign_keys = ON",
        "PRAGMA mmap_size = 268435456", "PRAGMA cache_size = -16384", /* KiB: 16 MiB */
        "PRAGMA temp_store = MEMORY",
    };
    int rc = sqlite3_extended_result_codes(st->db, 1);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    sqlite3_wal_hook(st->db, sq_wal_hook, NULL); /* checkpoints: checkpoint.c */
    if (rc != SQLITE_OK)
        return sq_fail_sqlite(st, rc, "configuring the connection");
    char mode[16];
    int status = pragma_text(st, "PRAGMA journal_mode = WAL", mode, sizeof mode);
    if (status != STORE_OK)
        return status;
    /* An in-memory database (tests, ":memory:") reports "memory". */
    if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)
        return sq_fail(st, STORE_ERROR, "the database refused WAL mode (journal mode is '%s')", mode);
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        status = run_fixed(st, settings[i], "configuring the connection");
        if (status != STORE_OK)
            return status;
    }
    return STORE_OK;
}

int store_open(const char *path, store_t **out)
{
    *out = NULL;
    open_failure[0] = '\0';
    store_t *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(open_failure, sizeof open_failure, "out of memory opening %s", path);
        return STORE_ERROR;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &st->db, flags, NULL);
    int status = rc == SQLITE_OK ? connection_configure(st) : sq_fail_sqlite(st, rc, "opening the database");
    if (status != STORE_OK) {
        snprintf(open_failure, sizeof open_failure, "cannot open the database %s: %s", path, st->errmsg);
        store_close(&st);
        return status;
    }
    *out = st;
    return STORE_OK;
}

void store_relax_durability(store_t *st)
{
    (void)run_fixed(st, "PRAGMA synchronous = NORMAL", "configuring the connection"); /* FULL stays on failure: safe */
}

void store_close(store_t **st)
{
    if (!*st)
        return;
    store_t *s = *st;
    for (size_t i = 0; i < s->statement_capacity; i++) {
        if (s->statements[i].sql_hash) {
            sqlite3_finalize(s->statements[i].stmt); /* reports the last step, long handled */
            free(s->statements[i].sql);
        }
    }
    free(s->statements);
    sq_codec_free(s);
    /* With every statement finalised close cannot be busy; a failure here
     * leaves nothing the caller could do. */
    (void)sqlite3_close(s->db);
    free(s);
    *st = NULL;
}

int store_ping(store_t *st)
{
    sq_clear_error(st);
    return run_fixed(st, "SELECT 1", "checking the database");
}

/* ---- sites -------------------------------------------------------------- */

int store_site_create(store_t *st, const char *name, int64_t *site_id)
{
    sq_clear_error(st);
    sq_query q;
    int status = sq_query_start(st, "INSERT INTO sites(name, created_at) VALUES (:name, :now)", &q);
    if (status != STORE_OK)
        return status;
    sq_bind_text(&q, ":name", name);
    sq_bind_int(&q, ":now", store_now_ms());
    status = sq_query_run(&q, "creating the site");
    if (status == STORE_CONFLICT)
        return sq_fail(st, STORE_CONFLICT, "site '%s' already exists", name);
    if (status == STORE_OK && site_id)
        *site_id = sqlite3_last_insert_rowid(st->db);
    return status;
}

int store_site_lookup(store_t *st, const char *name, int64_t *site_id)
{
    sq_clear_error(st);
    sq_query q;
    int status = sq_query_start(st, "SELECT id FROM sites WHERE name = :name", &q);
    if (status != STORE_OK)
        return status;
    sq_bind_text(&q, ":name", name);
    bool found = sq_next_row(&q);
    if (found && site_id)
        *site_id = sqlite3_column_int64(q.stmt, 0);
    status = sq_query_end(&q, "looking up the site");
    if (status == STORE_OK && !found)
        return sq_fail(st, STORE_NOT_FOUND, "no site '%s'", name);
    return status;
}

int store_site_list(store_t *st, json_t **sites)
{
    sq_clear_error(st);
    *sites = NULL;
    sq_query q;
    int status = sq_query_start(st, "SELECT id, name FROM sites ORDER BY id", &q);
    if (status != STORE_OK)
        return status;
    json_t *list = json_array();
    bool ok = list != NULL;
    while (ok && sq_next_row(&q))
        ok = json_array_append_new(list, json_pack("{s:I, s:s}", "id", (json_int_t)sqlite3_column_int64(q.stmt, 0),
                                                   "name", sq_column_text(&q, 1))) == 0;
    status = sq_query_end(&q, "listing sites");
    if (status == STORE_OK && !ok)
        status = sq_fail(st, STORE_ERROR, "out of memory listing sites");
    if (status != STORE_OK) {
        json_decref(list);
        return status;
    }
    *sites = list;
    return STORE_OK;
}

/* ---- tokens ------------------------------------------------------------- */

int store_token_create(store_t *st, int64_t site_id, store_role role, const char *name, const uint8_t hash[32])
{
    sq_clear_error(st);
    if (role < ROLE_READ || role > ROLE_ADMIN)
        return sq_fail(st, STORE_INVALID, "unknown token role %d", (int)role);
    if (strlen(name) > TOKEN_NAME_MAX)
        return sq_fail(st, STORE_INVALID, "a token name is at most %d bytes", TOKEN_NAME_MAX);
    sq_query q;
    int status = sq_query_start(st,
                                "INSERT INTO tokens(site_id, role, name, hash, created_at) "
                                "VALUES (:site, :role, :name, :hash, :now)",
                                &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":site", site_id);
    sq_bind_int(&q, ":role", role);
    sq_bind_text(&q, ":name", name);
    sq_bind_blob(&q, ":hash", hash, 32);
    sq_bind_int(&q, ":now", store_now_ms());
    status = sq_query_run(&q, "creating the token");
    if (status == STORE_CONFLICT)
        return sq_fail(st, STORE_CONFLICT, "a token with this secret already exists");
    if (q.rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return sq_fail(st, STORE_NOT_FOUND, "no site with id %lld", (long long)site_id);
    return status;
}

static void token_from_row(const sq_query *q, store_token *out)
{
    out->id = sqlite3_column_int64(q->stmt, 0);
    out->site_id = sqlite3_column_int64(q->stmt, 1);
    out->role = (store_role)sqlite3_column_int(q->stmt, 2);
    snprintf(out->name, sizeof out->name, "%s", sq_column_text(q, 3) ? sq_column_text(q, 3) : "");
}

int store_token_lookup(store_t *st, const uint8_t hash[32], store_token *out)
{
    sq_clear_error(st);
    sq_query q;
    int status = sq_query_start(st,
                                "SELECT id, site_id, role, name, hash FROM tokens "
                                "WHERE hash = :hash AND revoked_at IS NULL",
                                &q);
    if (status != STORE_OK)
        return status;
    sq_bind_blob(&q, ":hash", hash, 32);
    bool matched = false;
    if (sq_next_row(&q)) {
        const void *stored = sqlite3_column_blob(q.stmt, 4);
        /* The index lookup already matched; comparing again in constant
         * time keeps the final decision free of timing differences. */
        matched = stored && sqlite3_column_bytes(q.stmt, 4) == 32 && CRYPTO_memcmp(stored, hash, 32) == 0;
        if (matched) {
            token_from_row(&q, out);
            memcpy(out->hash, stored, 32);
        }
    }
    status = sq_query_end(&q, "looking up the token");
    if (status == STORE_OK && !matched)
        return sq_fail(st, STORE_NOT_FOUND, "unknown or revoked token");
    return status;
}

/* ---- categories --------------------------------------------------------- */

int sq_category_id(store_t *st, int64_t site_id, const char *slug, int64_t *category_id)
{
    sq_query q;
    int status = sq_query_start(st, "SELECT id FROM categories WHERE site_id = :site AND slug = :slug", &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":site", site_id);
    sq_bind_text(&q, ":slug", slug);
    bool found = sq_next_row(&q);
    if (found)
        *category_id = sqlite3_column_int64(q.stmt, 0);
    status = sq_query_end(&q, "looking up the category");
    if (status == STORE_OK && !found)
        return sq_fail(st, STORE_INVALID, "unknown category '%s'", slug);
    return status;
}

static json_t *category_json(const char *slug, const char *name, const char *parent, int64_t items)
{
    json_t *category = json_object();
    bool ok = category != NULL;
    ok = ok && sq_put(category, "slug", json_string(slug));
    ok = ok && sq_put(category, "name", json_string(name));
    ok = ok && sq_put(category, "parent", parent ? json_string(parent) : json_null());
    ok = ok && sq_put(category, "items", json_integer(items));
    if (!ok) {
        json_decref(category);
        return NULL;
    }
    return category;
}

static int category_insert(store_t *st, int64_t site_id, const char *slug, const char *name, const char *parent_slug)
{
    int64_t parent_id = 0;
    if (parent_slug) {
        int status = sq_category_id(st, site_id, parent_slug, &parent_id);
        if (status == STORE_INVALID)
            return sq_fail(st, STORE_INVALID, "unknown parent category '%s'", parent_slug);
        if (status != STORE_OK)
            return status;
    }
    sq_query q;
    int status = sq_query_start(st,
                                "INSERT INTO categories(site_id, slug, name, parent_id) "
                                "VALUES (:site, :slug, :name, :parent)",
                                &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":site", site_id);
    sq_bind_text(&q, ":slug", slug);
    sq_bind_text(&q, ":name", name);
    sq_bind_int_or_null(&q, ":parent", parent_id, parent_slug != NULL);
    status = sq_query_run(&q, "creating the category");
    if (status == STORE_CONFLICT)
        return sq_fail(st, STORE_CONFLICT, "category '%s' already exists", slug);
    if (q.rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return sq_fail(st, STORE_NOT_FOUND, "no site with id %lld", (long long)site_id);
    return status;
}

int store_category_create(store_t *st, int64_t site_id, const char *slug, const char *name, const char *parent_slug,
                          json_t **out)
{
    sq_clear_error(st);
    *out = NULL;
    json_t *category = category_json(slug, name, parent_slug, 0);
    if (!category)
        return sq_fail(st, STORE_ERROR, "out of memory building the category");
    int status = sq_begin(st);
    if (status == STORE_OK)
        status = sq_end(st, category_insert(st, site_id, slug, name, parent_slug));
    if (status != STORE_OK) {
        json_decref(category);
        return status;
    }
    *out = category;
    return STORE_OK;
}

int store_category_list(store_t *st, int64_t site_id, json_t **out)
{
    sq_clear_error(st);
    *out = NULL;
    sq_query q;
    int status =
        sq_query_start(st,
                       "SELECT c.slug, c.name, p.slug, (SELECT count(*) FROM items i WHERE i.site_id = c.site_id "
                       "AND i.status = 'published' AND i.category_id = c.id) "
                       "FROM categories c LEFT JOIN categories p ON p.id = c.parent_id "
                       "WHERE c.site_id = :site ORDER BY c.slug",
                       &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":site", site_id);
    json_t *categories = json_array();
    bool ok = categories != NULL;
    while (ok && sq_next_row(&q)) {
        json_t *category = category_json(sq_column_text(&q, 0), sq_column_text(&q, 1), sq_column_text(&q, 2),
                                         sqlite3_column_int64(q.stmt, 3));
        ok = category && json_array_append_new(categories, category) == 0;
    }
    status = sq_query_end(&q, "listing categories");
    json_t *result = status == STORE_OK && ok ? json_object() : NULL;
    if (result && !sq_put(result, "categories", categories)) {
        json_decref(result); /* sq_put took categories with it */
        result = NULL;
    } else if (!result) {
        json_decref(categories);
    }
    if (status != STORE_OK)
        return status;
    if (!result)
        return sq_fail(st, STORE_ERROR, "out of memory listing categories");
    *out = result;
    return STORE_OK;
}
