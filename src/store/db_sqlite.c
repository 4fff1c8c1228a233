/*
 * db_sqlite.c — the SQLite driver: the embedded default, a database file
 * opened by path (db_driver.h says what a driver does).
 *
 * Connection. A db_conn is one SQLite connection used by one thread,
 * opened NOMUTEX. journal_mode=WAL lets readers run beside the single
 * writer; with synchronous=FULL the WAL is fsynced at every COMMIT, so a
 * write that returned STORE_OK survives kill -9 and power loss (NORMAL
 * would only survive a process crash). mmap serves reads from the page
 * cache without a copy; busy_timeout makes a writer wait for the lock
 * instead of failing. Every connection installs the WAL hook of
 * checkpoint.c, which moves checkpoints off the committing request.
 *
 * Statements are SQLite's own, prepared with SQLITE_PREPARE_PERSISTENT:
 * db.c keeps them for the life of the connection. SQLite takes ":name"
 * parameters as they are written.
 *
 * Transactions. BEGIN IMMEDIATE takes the write lock (waiting up to
 * busy_timeout) up front, so a transaction never fails half way on a lock
 * upgrade, and SQLite's single writer means no transaction is ever asked
 * to run again (no DB_RETRY). Writers of one process queue on a lock of
 * its own first (see process_writer), and the transactions of db_transact
 * on a file share one connection's commits (commit_group.c).
 *
 * Errors map as db_driver.h says: busy or locked → STORE_BUSY, a unique or
 * primary key violation → STORE_CONFLICT, a foreign key violation →
 * DB_FOREIGN_KEY, anything else → STORE_ERROR; the words are SQLite's.
 *
 * Schema. The migrations below are the SQLite schema, unchanged since they
 * were released (schema.c runs them; docs of the tables are there).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/db_sqlite.h"

enum { BUSY_TIMEOUT_MS = 5000 };

struct db_conn {
    sqlite3 *db;
    /* BEGIN IMMEDIATE, COMMIT and ROLLBACK, prepared on first use */
    sqlite3_stmt *begin, *commit, *rollback;
    bool holds_writer; /* between begin and commit/rollback: the process's writer mutex */
};

/* A db_stmt is an sqlite3_stmt: the driver needs nothing more per
 * statement, so none is allocated. */
static sqlite3_stmt *raw(db_stmt *s)
{
    return (sqlite3_stmt *)s;
}

static int status_of(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE: return STORE_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return STORE_BUSY;
    case SQLITE_FULL: return STORE_FULL;
    case SQLITE_CONSTRAINT:
        if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
            return STORE_CONFLICT;
        return rc == SQLITE_CONSTRAINT_FOREIGNKEY ? DB_FOREIGN_KEY : STORE_ERROR;
    default: return STORE_ERROR;
    }
}

static bool sqlite_accepts(const char *url)
{
    return strncmp(url, "postgres://", 11) != 0 && strncmp(url, "postgresql://", 13) != 0;
}

sqlite3 *db_sqlite_handle(db_conn *c)
{
    return c->db;
}

/* ---- statements --------------------------------------------------------- */

static int sqlite_prepare(db_conn *c, const char *sql, db_stmt **out)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL);
    if (rc == SQLITE_OK && !stmt) /* only a comment or white space */
        rc = SQLITE_MISUSE;
    if (rc != SQLITE_OK) {
        sqlite3_finalize(stmt);
        return status_of(rc);
    }
    *out = (db_stmt *)stmt;
    return STORE_OK;
}

static void autocommit_writer_give(sqlite3_stmt *stmt);

static void sqlite_finalize(db_stmt *s)
{
    autocommit_writer_give(raw(s));
    sqlite3_finalize(raw(s)); /* reports the last step, long handled */
}

static void sqlite_reset(db_stmt *s)
{
    /* Both only repeat a failure of the run they end, handled by then. */
    sqlite3_reset(raw(s));
    sqlite3_clear_bindings(raw(s));
    autocommit_writer_give(raw(s));
}

static int sqlite_param_index(db_stmt *s, const char *name)
{
    return sqlite3_bind_parameter_index(raw(s), name);
}

static int sqlite_bind_int(db_stmt *s, int index, int64_t value)
{
    return status_of(sqlite3_bind_int64(raw(s), index, value));
}

static int sqlite_bind_null(db_stmt *s, int index)
{
    return status_of(sqlite3_bind_null(raw(s), index));
}

static int sqlite_bind_double(db_stmt *s, int index, double value)
{
    return status_of(sqlite3_bind_double(raw(s), index, value));
}

static int sqlite_bind_text(db_stmt *s, int index, const char *text)
{
    return status_of(sqlite3_bind_text(raw(s), index, text, -1, SQLITE_TRANSIENT));
}

static int sqlite_bind_blob(db_stmt *s, int index, const void *data, size_t size)
{
    return status_of(sqlite3_bind_blob64(raw(s), index, data, size, SQLITE_TRANSIENT));
}

static void autocommit_writer_take(sqlite3_stmt *stmt);

static int sqlite_step(db_stmt *s, bool *row)
{
    autocommit_writer_take(raw(s));
    int rc = sqlite3_step(raw(s));
    *row = rc == SQLITE_ROW;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : status_of(rc);
}

static bool sqlite_column_is_null(db_stmt *s, int column)
{
    return sqlite3_column_type(raw(s), column) == SQLITE_NULL;
}

static int64_t sqlite_column_int(db_stmt *s, int column)
{
    return sqlite3_column_int64(raw(s), column);
}

static double sqlite_column_double(db_stmt *s, int column)
{
    return sqlite3_column_double(raw(s), column);
}

static const char *sqlite_column_text(db_stmt *s, int column)
{
    return (const char *)sqlite3_column_text(raw(s), column);
}

static const void *sqlite_column_blob(db_stmt *s, int column, size_t *size)
{
    const void *data = sqlite3_column_blob(raw(s), column); /* before the size: it may convert */
    *size = (size_t)sqlite3_column_bytes(raw(s), column);
    return data;
}

static int64_t sqlite_changes(db_conn *c)
{
    return sqlite3_changes64(c->db);
}

static const char *sqlite_sql(db_stmt *s)
{
    return sqlite3_sql(raw(s));
}

static bool sqlite_busy(db_stmt *s)
{
    return sqlite3_stmt_busy(raw(s)) != 0;
}

static int sqlite_exec(db_conn *c, const char *script)
{
    /* on failure sqlite3_errmsg holds the same words as exec's message */
    return status_of(sqlite3_exec(c->db, script, NULL, NULL, NULL));
}

static const char *sqlite_errmsg(db_conn *c)
{
    return sqlite3_errmsg(c->db);
}

/* EXPLAIN QUERY PLAN of sql as indented lines, like the sqlite3 shell's;
 * "" if it cannot be explained. Parameters stay unbound (NULL): the plan
 * does not depend on their values. */
static void sqlite_explain(db_conn *c, const char *sql, char *out, size_t size)
{
    char *text = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *stmt = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (text != NULL && sqlite3_prepare_v2(c->db, text, -1, &stmt, NULL) == SQLITE_OK) {
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

/* ---- transactions ------------------------------------------------------- */

/* Writers of one process queue on this lock before BEGIN IMMEDIATE, and
 * before a write statement run on its own (autocommit: a job queued, an
 * autosave cleared). SQLite's busy handler makes a writer that finds the
 * lock taken sleep and retry (1, 2, 5, 10… up to 100 ms a time), so two
 * writers of one process meeting at the lock cost the second one tens of
 * milliseconds even when the first is done in one; this lock hands it over
 * at once. Writers of other processes still meet at SQLite's lock and its
 * busy_timeout. It is a flag under a mutex, not a mutex held: the commit
 * group (commit_group.c) begins a transaction on one thread and may commit
 * it on another. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t free;
    bool held;
} process_writer = {.lock = PTHREAD_MUTEX_INITIALIZER, .free = PTHREAD_COND_INITIALIZER};

static void process_writer_take(void)
{
    pthread_mutex_lock(&process_writer.lock);
    while (process_writer.held)
        pthread_cond_wait(&process_writer.free, &process_writer.lock);
    process_writer.held = true;
    pthread_mutex_unlock(&process_writer.lock);
}

static void process_writer_give(void)
{
    pthread_mutex_lock(&process_writer.lock);
    process_writer.held = false;
    pthread_cond_signal(&process_writer.free);
    pthread_mutex_unlock(&process_writer.lock);
}

static void writer_release(db_conn *c)
{
    if (c->holds_writer) {
        c->holds_writer = false;
        process_writer_give();
    }
}

/* The write statement running on its own on this thread that holds the
 * process's writer lock, from its first step to its reset (NULL: none). A
 * connection belongs to one thread, so one such statement at most. */
static _Thread_local sqlite3_stmt *autocommit_writer;

/* Before a statement's first step: a write outside a transaction takes
 * the process's writer lock as BEGIN does. */
static void autocommit_writer_take(sqlite3_stmt *stmt)
{
    if (autocommit_writer == NULL && !sqlite3_stmt_busy(stmt) && !sqlite3_stmt_readonly(stmt) &&
        sqlite3_get_autocommit(sqlite3_db_handle(stmt))) {
        process_writer_take();
        autocommit_writer = stmt;
    }
}

static void autocommit_writer_give(sqlite3_stmt *stmt)
{
    if (autocommit_writer == stmt) {
        autocommit_writer = NULL;
        process_writer_give();
    }
}

/* Runs fixed SQL without parameters from a statement kept in *slot. */
static int fixed_run(db_conn *c, sqlite3_stmt **slot, const char *sql)
{
    int rc = *slot ? SQLITE_OK : sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(*slot);
        sqlite3_reset(*slot);
    }
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? STORE_OK : status_of(rc);
}

static int sqlite_begin(db_conn *c)
{
    process_writer_take();
    c->holds_writer = true;
    int status = fixed_run(c, &c->begin, "BEGIN IMMEDIATE");
    if (status != STORE_OK)
        writer_release(c);
    return status;
}

static int sqlite_commit(db_conn *c)
{
    int status = fixed_run(c, &c->commit, "COMMIT");
    if (status == STORE_OK)
        writer_release(c);
    return status; /* else still in the transaction, until the rollback */
}

static void sqlite_rollback(db_conn *c)
{
    /* Some errors (I/O, full disk) already rolled the transaction back. If
     * even ROLLBACK fails the connection is unusable and SQLite rolls back
     * on close or on the next open. */
    if (!sqlite3_get_autocommit(c->db))
        (void)fixed_run(c, &c->rollback, "ROLLBACK");
    writer_release(c);
}

/* ---- connection --------------------------------------------------------- */

static void open_failed(db_conn *c, int rc, const char *doing, char *err, size_t err_size)
{
    snprintf(err, err_size, "database error while %s: %s", doing, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
}

/* The journal mode after asking for WAL. */
static int journal_mode_wal(db_conn *c, char *mode, size_t size)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL);
    mode[0] = '\0';
    if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        snprintf(mode, size, "%s", sqlite3_column_text(stmt, 0) ? (const char *)sqlite3_column_text(stmt, 0) : "");
        rc = SQLITE_OK;
    }
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int connection_configure(db_conn *c, char *err, size_t err_size)
{
    static const char settings[] = "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
                                   "PRAGMA mmap_size = 268435456; PRAGMA cache_size = -16384;" /* KiB: 16 MiB */
                                   "PRAGMA temp_store = MEMORY;";
    int rc = sqlite3_extended_result_codes(c->db, 1);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    sqlite3_wal_hook(c->db, db_sqlite_wal_hook, NULL); /* checkpoints: checkpoint.c */
    char mode[16] = "";
    if (rc == SQLITE_OK)
        rc = journal_mode_wal(c, mode, sizeof mode);
    if (rc != SQLITE_OK) {
        open_failed(c, rc, "configuring the connection", err, err_size);
        return status_of(rc);
    }
    /* An in-memory database (tests, ":memory:") reports "memory". */
    if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0) {
        snprintf(err, err_size, "the database refused WAL mode (journal mode is '%s')", mode);
        return STORE_ERROR;
    }
    rc = sqlite3_exec(c->db, settings, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        open_failed(c, rc, "configuring the connection", err, err_size);
        return status_of(rc);
    }
    return STORE_OK;
}

static void sqlite_close(db_conn *c)
{
    if (!c)
        return;
    writer_release(c);
    sqlite3_finalize(c->begin);
    sqlite3_finalize(c->commit);
    sqlite3_finalize(c->rollback);
    /* With every statement finalised close cannot be busy; a failure here
     * leaves nothing the caller could do. */
    (void)sqlite3_close(c->db);
    free(c);
}

static int sqlite_open(const char *path, db_conn **out, char *err, size_t err_size)
{
    *out = NULL;
    db_conn *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, err_size, "out of memory");
        return STORE_ERROR;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
    int status = STORE_OK;
    if (rc != SQLITE_OK) {
        open_failed(c, rc, "opening the database", err, err_size);
        status = status_of(rc);
    } else {
        status = connection_configure(c, err, err_size);
    }
    if (status != STORE_OK) {
        sqlite_close(c);
        return status;
    }
    *out = c;
    return STORE_OK;
}

static void sqlite_relax_durability(db_conn *c)
{
    (void)sqlite3_exec(c->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL); /* FULL stays on failure: safe */
}

/* ---- schema ------------------------------------------------------------- */

static const char schema_v1[] =
    "CREATE TABLE meta("
    "  key TEXT PRIMARY KEY,"
    "  value BLOB NOT NULL"
    ") WITHOUT ROWID;"

    "CREATE TABLE sites("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  created_at INTEGER NOT NULL"
    ");"

    "CREATE TABLE tokens("
    "  id INTEGER PRIMARY KEY,"
    "  site_id INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,"
    "  role INTEGER NOT NULL CHECK (role BETWEEN 1 AND 3),"
    "  name TEXT NOT NULL,"
    "  hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER"
    ");"
    "CREATE INDEX tokens_by_site ON tokens(site_id);"

    "CREATE TABLE categories("
    "  id INTEGER PRIMARY KEY,"
    "  site_id INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,"
    "  slug TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  parent_id INTEGER REFERENCES categories(id) ON DELETE SET NULL,"
    "  UNIQUE (site_id, slug)"
    ");"
    "CREATE INDEX categories_by_parent ON categories(parent_id);"

    "CREATE TABLE items("
    "  id INTEGER PRIMARY KEY,"
    "  site_id INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,"
    "  type TEXT NOT NULL,"
    "  slug TEXT NOT NULL,"
    "  status TEXT NOT NULL DEFAULT 'draft'"
    "    CHECK (status IN ('draft', 'published', 'archived')),"
    "  title TEXT NOT NULL,"
    "  excerpt TEXT NOT NULL DEFAULT '',"
    "  fields TEXT NOT NULL DEFAULT '{}',"
    "  category_id INTEGER REFERENCES categories(id) ON DELETE SET NULL,"
    "  author TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  published_at INTEGER,"
    "  views INTEGER NOT NULL DEFAULT 0,"
    "  draft_version INTEGER NOT NULL,"
    "  published_version INTEGER,"
    "  body TEXT NOT NULL DEFAULT '',"
    "  UNIQUE (site_id, type, slug)"
    ");"
    "CREATE INDEX items_by_published ON items(site_id, status, published_at DESC, id DESC);"
    "CREATE INDEX items_by_type_published"
    "  ON items(site_id, status, type, published_at DESC, id DESC);"
    "CREATE INDEX items_by_category_published"
    "  ON items(site_id, status, category_id, published_at DESC, id DESC);"
    "CREATE INDEX items_by_updated ON items(site_id, status, updated_at DESC, id DESC);"
    "CREATE INDEX items_by_title ON items(site_id, status, title, id);"
    "CREATE INDEX items_by_category ON items(category_id);"

    "CREATE TABLE item_tags("
    "  site_id INTEGER NOT NULL,"
    "  item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,"
    "  tag TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  published_at INTEGER,"
    "  PRIMARY KEY (item_id, tag)"
    ") WITHOUT ROWID;"
    "CREATE INDEX item_tags_by_tag ON item_tags(site_id, tag, status, published_at, item_id);"

    "CREATE TABLE versions("
    "  item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,"
    "  number INTEGER NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('draft', 'autosave', 'publish', 'restore')),"
    "  author TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  hash BLOB NOT NULL,"
    "  encoding INTEGER NOT NULL DEFAULT 0,"
    "  data BLOB NOT NULL,"
    "  PRIMARY KEY (item_id, number)"
    ") WITHOUT ROWID;"

    "CREATE TABLE publications("
    "  id INTEGER PRIMARY KEY,"
    "  item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,"
    "  version INTEGER NOT NULL,"
    "  published_at INTEGER NOT NULL,"
    "  author TEXT NOT NULL"
    ");"
    "CREATE INDEX publications_by_item ON publications(item_id, published_at);"

    "CREATE TABLE autosaves("
    "  item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,"
    "  author TEXT NOT NULL,"
    "  base_version INTEGER NOT NULL,"
    "  saved_at INTEGER NOT NULL,"
    "  data BLOB NOT NULL,"
    "  PRIMARY KEY (item_id, author)"
    ") WITHOUT ROWID;"

    "CREATE TABLE previews("
    "  token_hash BLOB PRIMARY KEY,"
    "  site_id INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,"
    "  item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,"
    "  version INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  revoked_at INTEGER"
    ") WITHOUT ROWID;"
    "CREATE INDEX previews_by_item ON previews(item_id);"
    "CREATE INDEX previews_by_site ON previews(site_id);"

    "CREATE TABLE jobs("
    "  id INTEGER PRIMARY KEY,"
    "  kind TEXT NOT NULL,"
    "  payload TEXT NOT NULL DEFAULT '{}',"
    "  run_at INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  locked_until INTEGER,"
    "  last_error TEXT,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX jobs_by_run_at ON jobs(run_at);"

    "CREATE TABLE views_hourly("
    "  site_id INTEGER NOT NULL,"
    "  item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,"
    "  hour INTEGER NOT NULL,"
    "  count INTEGER NOT NULL,"
    "  PRIMARY KEY (item_id, hour)"
    ") WITHOUT ROWID;"
    "CREATE INDEX views_hourly_by_site_hour ON views_hourly(site_id, hour);";

static const char schema_v2[] =
    "ALTER TABLE versions ADD COLUMN base INTEGER;"
    "ALTER TABLE previews ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE previews ADD COLUMN created_by TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN unique_key TEXT;"
    "ALTER TABLE jobs ADD COLUMN failed_at INTEGER;"
    "CREATE UNIQUE INDEX jobs_by_unique_key ON jobs(unique_key) WHERE unique_key IS NOT NULL;"
    "DROP INDEX jobs_by_run_at;"
    "CREATE INDEX jobs_due ON jobs(run_at) WHERE failed_at IS NULL;"
    "CREATE INDEX autosaves_by_saved_at ON autosaves(saved_at);"
    "CREATE INDEX versions_by_created ON versions(created_at);"
    "CREATE INDEX versions_by_base ON versions(item_id, base) WHERE base IS NOT NULL;";

/* Version 3 changes nothing here: on PostgreSQL it adds items.tags and
 * items.category, kept by triggers, so an item read needs no subquery
 * over item_tags and no join (a third of PostgreSQL's work per miss).
 * SQLite runs those in the same process for next to nothing, and a column
 * added now would follow the body, the column that must stay last
 * (schema.c). The number is kept so
 * both engines count their schema alike (strata copy compares them). */
static const char schema_v3[] = "";

/* Version 4 (issues 15 and 16): item_tags carries the other sort keys
 * too, so every public list of a tag walks an index in order; tokens may
 * expire and remember when they were last used (schema.c). */
static const char schema_v4[] =
    "ALTER TABLE item_tags ADD COLUMN updated_at INTEGER;"
    "ALTER TABLE item_tags ADD COLUMN title TEXT;"
    "UPDATE item_tags SET (updated_at, title) = (SELECT updated_at, title FROM items WHERE id = item_id);"
    "CREATE INDEX item_tags_by_tag_updated ON item_tags(site_id, tag, status, updated_at DESC, item_id DESC);"
    "CREATE INDEX item_tags_by_tag_title ON item_tags(site_id, tag, status, title, item_id);"
    "CREATE TRIGGER items_sort_keys_to_tags AFTER UPDATE OF updated_at, title ON items BEGIN"
    "  UPDATE item_tags SET updated_at = NEW.updated_at, title = NEW.title WHERE item_id = NEW.id;"
    " END;"
    "ALTER TABLE tokens ADD COLUMN expires_at INTEGER;"
    "ALTER TABLE tokens ADD COLUMN last_used_at INTEGER;"
    "CREATE TABLE item_schedules("
    "  item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,"
    "  site_id INTEGER NOT NULL,"
    "  publish_at INTEGER,"
    "  unpublish_at INTEGER"
    ");";

/* Version 5 (issue 16): the job queue's punctual lane (store_jobs.h) has a
 * due index per kind, so its runner finds a scheduled publish or a purge
 * at once whatever backlog the background lane has. */
static const char schema_v5[] =
    "CREATE INDEX jobs_scheduled_due ON jobs(run_at) WHERE failed_at IS NULL AND kind = 'scheduled';"
    "CREATE INDEX jobs_purge_due ON jobs(run_at) WHERE failed_at IS NULL AND kind = 'purge';";

/* Version 6 (issue 16): webhook subscriptions and their delivery log
 * (store/webhooks.c). The secret is the signing key's 32 bytes: a delivery
 * needs it to sign, so it cannot be kept as a hash. */
static const char schema_v6[] = "CREATE TABLE webhooks("
                                "  id INTEGER PRIMARY KEY,"
                                "  site_id INTEGER NOT NULL REFERENCES sites(id),"
                                "  url TEXT NOT NULL,"
                                "  events INTEGER NOT NULL,"
                                "  secret BLOB NOT NULL,"
                                "  active INTEGER NOT NULL,"
                                "  created_at INTEGER NOT NULL"
                                ");"
                                "CREATE INDEX webhooks_by_site ON webhooks(site_id, active);"
                                "CREATE TABLE webhook_deliveries("
                                "  id INTEGER PRIMARY KEY,"
                                "  webhook_id INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,"
                                "  message_id TEXT NOT NULL UNIQUE,"
                                "  event TEXT NOT NULL,"
                                "  attempts INTEGER NOT NULL,"
                                "  status_code INTEGER,"
                                "  error TEXT,"
                                "  created_at INTEGER NOT NULL,"
                                "  last_attempt_at INTEGER,"
                                "  delivered_at INTEGER,"
                                "  history TEXT NOT NULL"
                                ");"
                                "CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries(webhook_id, id);";

/* Version 7 (issue 16): the custom fields an operator declared indexed
 * per site and type (store/field_filters.c); their indexes are made when
 * they are declared, not here. */
static const char schema_v7[] = "CREATE TABLE field_indexes("
                                "  id INTEGER PRIMARY KEY,"
                                "  site_id INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,"
                                "  type TEXT NOT NULL,"
                                "  name TEXT NOT NULL,"
                                "  kind TEXT NOT NULL CHECK (kind IN ('bool', 'number', 'text')),"
                                "  created_at INTEGER NOT NULL,"
                                "  UNIQUE (site_id, type, name)"
                                ");";

/* Version 8 (issue 16, full-text search): items_fts, an FTS5 index of
 * the item rows' public content (title, excerpt, body). External content
 * (content='items'): the text stays in items alone, the index holds only
 * its terms, and FTS5 reads the row when it needs it; a contentless table
 * would answer the same searches but could not be rebuilt from items
 * ('rebuild', below), nor check itself against them ('integrity-check').
 * Column filters ({title} : …) make the relevance tiers of
 * store/search.c. Triggers keep it in step
 * in the transaction of every write of the row (a save, a publish, an
 * unpublish or archive moves status only, which the search reads from
 * items; a delete): AFTER UPDATE OF the three columns, so a views count
 * never touches it. unicode61 without diacritics removal folds case as
 * PostgreSQL's 'simple' configuration does; no stemming on either engine.
 * The 'rebuild' indexes the rows already there. */
static const char schema_v8[] =
    "CREATE VIRTUAL TABLE items_fts USING fts5(title, excerpt, body, content='items', content_rowid='id',"
    "  tokenize='unicode61 remove_diacritics 0');"
    "CREATE TRIGGER items_fts_inserted AFTER INSERT ON items BEGIN"
    "  INSERT INTO items_fts(rowid, title, excerpt, body) VALUES (NEW.id, NEW.title, NEW.excerpt, NEW.body);"
    " END;"
    "CREATE TRIGGER items_fts_deleted AFTER DELETE ON items BEGIN"
    "  INSERT INTO items_fts(items_fts, rowid, title, excerpt, body)"
    "   VALUES ('delete', OLD.id, OLD.title, OLD.excerpt, OLD.body);"
    " END;"
    "CREATE TRIGGER items_fts_updated AFTER UPDATE OF title, excerpt, body ON items BEGIN"
    "  INSERT INTO items_fts(items_fts, rowid, title, excerpt, body)"
    "   VALUES ('delete', OLD.id, OLD.title, OLD.excerpt, OLD.body);"
    "  INSERT INTO items_fts(rowid, title, excerpt, body) VALUES (NEW.id, NEW.title, NEW.excerpt, NEW.body);"
    " END;"
    "INSERT INTO items_fts(items_fts) VALUES ('rebuild');";

static const db_migration sqlite_migrations[] = {
    {1, schema_v1}, {2, schema_v2}, {3, schema_v3}, {4, schema_v4},
    {5, schema_v5}, {6, schema_v6}, {7, schema_v7}, {8, schema_v8},
};

const db_driver db_sqlite_driver = {
    .name = "sqlite",
    .accepts = sqlite_accepts,
    .open = sqlite_open,
    .close = sqlite_close,
    .relax_durability = sqlite_relax_durability,
    .prepare = sqlite_prepare,
    .finalize = sqlite_finalize,
    .reset = sqlite_reset,
    .param_index = sqlite_param_index,
    .bind_int = sqlite_bind_int,
    .bind_null = sqlite_bind_null,
    .bind_double = sqlite_bind_double,
    .bind_text = sqlite_bind_text,
    .bind_blob = sqlite_bind_blob,
    .step = sqlite_step,
    .column_is_null = sqlite_column_is_null,
    .column_int = sqlite_column_int,
    .column_double = sqlite_column_double,
    .column_text = sqlite_column_text,
    .column_blob = sqlite_column_blob,
    .changes = sqlite_changes,
    .sql = sqlite_sql,
    .busy = sqlite_busy,
    .exec = sqlite_exec,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .errmsg = sqlite_errmsg,
    .explain = sqlite_explain,
    .fragments =
        {
            [DB_SQL_MIGRATION_LOCK] = NULL, /* BEGIN IMMEDIATE already lets one migrator in at a time */
            [DB_SQL_SCHEMA_EXISTS] = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
            /* deferred: the read transaction starts, and its snapshot is taken, at the first read */
            [DB_SQL_BEGIN_SNAPSHOT] = "BEGIN",
            [DB_SQL_IDENTITY_RESET] = NULL, /* INTEGER PRIMARY KEY takes the largest id + 1 by itself */
            [DB_SQL_TAGS_OF_ITEM] = "(SELECT group_concat(tg.tag, ',') FROM item_tags tg WHERE tg.item_id = i.id)",
            [DB_SQL_CATEGORY_OF_ITEM] = "c.slug",
            [DB_SQL_SKIP_LOCKED] = "",       /* one writer at a time: nothing is held by another */
            [DB_SQL_COMMIT_POSITION] = NULL, /* one file: there are no replicas */
            [DB_SQL_FIELD_BOOL] = "(CASE json_type({fields}, '$.{field}') WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)",
            /* REAL affinity outside, as the bound CAST(:v AS DOUBLE PRECISION) has: an index is
               used for a comparison only when their affinities agree */
            [DB_SQL_FIELD_NUMBER] = "CAST((CASE WHEN json_type({fields}, '$.{field}') IN ('integer', 'real')"
                                    " THEN json_extract({fields}, '$.{field}') END) AS REAL)",
            [DB_SQL_FIELD_TEXT] =
                "(CASE json_type({fields}, '$.{field}') WHEN 'text' THEN json_extract({fields}, '$.{field}') END)",
        },
    /* the compound SELECT's merge walks each value's entries in order and
       stops at the page; a subquery's ORDER BY would add a sort per arm */
    .by_value_limits_each_walk = false,
    .migrations = sqlite_migrations,
    .migration_count = sizeof sqlite_migrations / sizeof sqlite_migrations[0],
};
