/*
 * schema.c — the database schema as a list of numbered migrations.
 *
 * A migration is applied once: schema_migrations records each version with
 * the time it was applied, and store_migrate runs every missing one in its
 * own BEGIN IMMEDIATE transaction, checking inside the transaction whether
 * it is still missing, so two processes migrating at once cannot both apply
 * it. Migrations are only ever appended; a released one is never edited.
 *
 * Version 1 holds the whole domain, including the tables later issues use
 * (autosaves, previews, jobs), so those add code rather than reshape data:
 *
 *   meta          key → value; the 32-byte `secret` (cursors, preview links)
 *   sites         tenants; every other row belongs to one
 *   tokens        API tokens by SHA-256 hash, a role and a site
 *   categories    per-site slugs with an optional parent
 *   items         one row per item: identity, status, counters and the
 *                 *public* content (the published version's, or the latest
 *                 draft's while never published). body is the last column:
 *                 SQLite reads a record front to back, so summaries that do
 *                 not ask for the body never touch its overflow pages.
 *   item_tags     the tags of the item's public content, with status and
 *                 published_at copied in so the tag-filtered default list
 *                 walks one index in order
 *   versions      immutable snapshots (JSON of the editable state, encoding
 *                 0) numbered 1..n per item, with size and SHA-256
 *   publications  each publish: which version, when, by whom
 *   autosaves     one rolling autosave per item and author
 *   previews      preview links by token hash
 *   jobs          the persistent job queue
 *   views_hourly  view counts per item and hour, for popularity windows
 *
 * Every child of an item is ON DELETE CASCADE, so deleting the item row
 * removes its versions, tags, views, publications, autosaves and previews.
 *
 * Version 2 (issue 5, history and jobs):
 *
 *   versions.base     for a zstd skip-delta (encoding 2), the number of the
 *                     version whose JSON is the compression prefix
 *                     (store/versions.c explains the scheme)
 *   previews.created_at, previews.created_by
 *                     who made a preview link and when
 *   jobs.unique_key   a scheduled run's identity ("retention@1790000000"):
 *                     unique, so N instances enqueueing one tick make one job
 *   jobs.failed_at    set when a job has used up its attempts; kept for the
 *                     operator, never run again
 */
#include <openssl/rand.h>
#include <string.h>

#include "store/sqlite_internal.h"

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

static int secret_create(store_t *st)
{
    uint8_t secret[32];
    if (RAND_bytes(secret, sizeof secret) != 1)
        return sq_fail(st, STORE_ERROR, "the system could not provide random bytes for the secret");
    sq_query q;
    int status = sq_query_start(st, "INSERT INTO meta(key, value) VALUES ('secret', :value)", &q);
    if (status != STORE_OK)
        return status;
    sq_bind_blob(&q, ":value", secret, sizeof secret);
    return sq_query_run(&q, "storing the secret");
}

typedef struct migration {
    int version;
    const char *sql;              /* DDL only: no values, so no binding needed */
    int (*populate)(store_t *st); /* data the DDL needs, or NULL */
} migration;

static const migration migrations[] = {
    {1, schema_v1, secret_create},
    {2, schema_v2, NULL},
};
enum { MIGRATION_COUNT = sizeof migrations / sizeof migrations[0] };

int sq_migrations_latest(void)
{
    return migrations[MIGRATION_COUNT - 1].version;
}

static int run_script(store_t *st, const char *sql, const char *doing)
{
    char *message = NULL;
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, &message);
    if (rc == SQLITE_OK)
        return STORE_OK;
    int status = sq_fail_sqlite(st, rc, doing);
    if (message) {
        sq_fail(st, status, "database error while %s: %s", doing, message);
        sqlite3_free(message);
    }
    return status;
}

static int migration_is_applied(store_t *st, int version, bool *applied)
{
    sq_query q;
    int status = sq_query_start(st, "SELECT 1 FROM schema_migrations WHERE version = :version", &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":version", version);
    *applied = sq_next_row(&q);
    return sq_query_end(&q, "reading the schema version");
}

static int migration_record(store_t *st, int version)
{
    sq_query q;
    int status = sq_query_start(st, "INSERT INTO schema_migrations(version, applied_at) VALUES (:version, :now)", &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":version", version);
    sq_bind_int(&q, ":now", store_now_ms());
    return sq_query_run(&q, "recording the migration");
}

/* The body of one migration's transaction. */
static int migration_run(store_t *st, const migration *m, bool *applied)
{
    *applied = false;
    int status = run_script(st,
                            "CREATE TABLE IF NOT EXISTS schema_migrations("
                            "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
                            "creating schema_migrations");
    bool done = false;
    if (status == STORE_OK)
        status = migration_is_applied(st, m->version, &done);
    if (status != STORE_OK || done)
        return status;
    status = run_script(st, m->sql, "migrating the schema");
    if (status == STORE_OK && m->populate)
        status = m->populate(st);
    if (status == STORE_OK)
        status = migration_record(st, m->version);
    *applied = status == STORE_OK;
    return status;
}

int store_migrate(store_t *st, int *applied)
{
    sq_clear_error(st);
    if (applied)
        *applied = 0;
    for (int i = 0; i < MIGRATION_COUNT; i++) {
        bool ran = false;
        int status = sq_begin(st);
        if (status == STORE_OK)
            status = sq_end(st, migration_run(st, &migrations[i], &ran));
        if (status != STORE_OK)
            return status;
        if (ran && applied)
            (*applied)++;
    }
    return STORE_OK;
}

int store_schema_version(store_t *st, int *version)
{
    sq_clear_error(st);
    *version = 0;
    sq_query q;
    int status =
        sq_query_start(st, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'", &q);
    if (status != STORE_OK)
        return status;
    bool migrated = sq_next_row(&q);
    status = sq_query_end(&q, "reading the schema version");
    if (status != STORE_OK || !migrated)
        return status;
    status = sq_query_start(st, "SELECT IFNULL(MAX(version), 0) FROM schema_migrations", &q);
    if (status != STORE_OK)
        return status;
    if (sq_next_row(&q))
        *version = sqlite3_column_int(q.stmt, 0);
    return sq_query_end(&q, "reading the schema version");
}

int store_secret(store_t *st, uint8_t out[32])
{
    sq_clear_error(st);
    sq_query q;
    int status = sq_query_start(st, "SELECT value FROM meta WHERE key = 'secret'", &q);
    if (status == STORE_ERROR) /* no meta table: never migrated */
        return sq_fail(st, STORE_NOT_FOUND, "the database has no secret yet; run `strata migrate` first");
    if (status != STORE_OK)
        return status;
    bool found = false;
    if (sq_next_row(&q) && sqlite3_column_bytes(q.stmt, 0) == 32) {
        memcpy(out, sqlite3_column_blob(q.stmt, 0), 32);
        found = true;
    }
    status = sq_query_end(&q, "reading the secret");
    if (status == STORE_OK && !found)
        return sq_fail(st, STORE_NOT_FOUND, "the database has no valid secret");
    return status;
}
