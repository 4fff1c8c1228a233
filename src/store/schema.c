/*
 * schema.c — the database schema as a list of numbered migrations, and the
 * runner that applies them on any driver.
 *
 * Each driver has its own list (db_sqlite.c, db_postgres.c), the same
 * numbers with the same tables in the engine's own types. A migration is
 * applied once: schema_migrations records each version with the time it
 * was applied, and store_migrate runs every missing one in its own write
 * transaction, checking inside the transaction whether it is still missing,
 * so two processes migrating at once cannot both apply it. The driver's
 * DB_SQL_MIGRATION_LOCK runs first in that transaction where the
 * transaction alone does not keep a second migrator out (PostgreSQL: an
 * advisory lock; SQLite's BEGIN IMMEDIATE already does). Migrations are
 * only ever appended; a released one is never edited. What a migration
 * puts in its tables beyond DDL (the secret) is written here, once.
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
 *
 * Version 3 (issue 12, PostgreSQL), PostgreSQL only, a number on SQLite:
 *
 *   items.tags, items.category
 *                     the item's tags joined by ',' and its category's
 *                     slug, kept by triggers, so an item read is one row
 *                     of one table (schema_postgres.c); SQLite reads them
 *                     through a subquery and a join, in process
 *                     (db_sqlite.c)
 *
 * Version 4 (issue 15, no sort on a public read):
 *
 *   item_tags.updated_at, item_tags.title
 *                     the item's other sort keys, copied in as status and
 *                     published_at are (a trigger on items keeps them), with
 *                     an index per sort, so every list of a tag walks an
 *                     index in order instead of sorting the tag's items
 *   tokens.expires_at, tokens.last_used_at (issue 16)
 *                     a token may be made to expire; its last use is kept
 *                     (to the minute: content/tokens.c batches them)
 *   item_schedules    an item's scheduled publish and unpublish (issue 16),
 *                     apart from items so that the body stays its last
 *                     column; each is carried out by a job due at its time
 *                     (content/schedules.c)
 *
 * Version 5 (issue 16, punctual jobs):
 *
 *   jobs_scheduled_due, jobs_purge_due
 *                     partial indexes of the due scheduled changes and
 *                     purges, the punctual lane's (store_jobs.h), so its
 *                     runner finds them at once behind any backlog
 */
#include <openssl/rand.h>
#include <string.h>

#include "store/store_internal.h"

static int secret_create(store_t *st)
{
    uint8_t secret[32];
    if (RAND_bytes(secret, sizeof secret) != 1)
        return db_fail(st, STORE_ERROR, "the system could not provide random bytes for the secret");
    db_query q;
    int status = db_query_start(st, "INSERT INTO meta(key, value) VALUES ('secret', :value)", &q);
    if (status != STORE_OK)
        return status;
    db_bind_blob(&q, ":value", secret, sizeof secret);
    return db_query_run(&q, "storing the secret");
}

/* Data a migration's DDL needs, by version (the DDL is the driver's). */
static int migration_populate(store_t *st, int version)
{
    return version == 1 ? secret_create(st) : STORE_OK;
}

int schema_latest(const store_t *st)
{
    const db_driver *driver = db_driver_of(st);
    return driver->migrations[driver->migration_count - 1].version;
}

static int migration_is_applied(store_t *st, int version, bool *applied)
{
    db_query q;
    int status = db_query_start(st, "SELECT 1 FROM schema_migrations WHERE version = :version", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":version", version);
    *applied = db_next_row(&q);
    return db_query_end(&q, "reading the schema version");
}

static int migration_record(store_t *st, int version)
{
    db_query q;
    int status = db_query_start(st, "INSERT INTO schema_migrations(version, applied_at) VALUES (:version, :now)", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":version", version);
    db_bind_int(&q, ":now", store_now_ms());
    return db_query_run(&q, "recording the migration");
}

typedef struct migration_tx {
    const db_migration *migration;
    bool applied;
} migration_tx;

/* The body of one migration's transaction. */
static int migration_run(store_t *st, void *arg)
{
    migration_tx *tx = arg;
    const db_migration *m = tx->migration;
    tx->applied = false;
    const char *lock = db_fragment(st, DB_SQL_MIGRATION_LOCK);
    int status = lock ? db_exec_script(st, lock, "waiting for another migrator") : STORE_OK;
    if (status == STORE_OK)
        status = db_exec_script(st,
                                "CREATE TABLE IF NOT EXISTS schema_migrations("
                                "version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
                                "creating schema_migrations");
    bool done = false;
    if (status == STORE_OK)
        status = migration_is_applied(st, m->version, &done);
    if (status != STORE_OK || done)
        return status;
    status = db_exec_script(st, m->sql, "migrating the schema");
    if (status == STORE_OK)
        status = migration_populate(st, m->version);
    if (status == STORE_OK)
        status = migration_record(st, m->version);
    tx->applied = status == STORE_OK;
    return status;
}

int store_migrate(store_t *st, int *applied)
{
    db_clear_error(st);
    if (applied)
        *applied = 0;
    const db_driver *driver = db_driver_of(st);
    for (size_t i = 0; i < driver->migration_count; i++) {
        migration_tx tx = {.migration = &driver->migrations[i]};
        int status = db_transact(st, migration_run, &tx, "migrating the schema");
        if (status != STORE_OK)
            return status;
        if (tx.applied && applied)
            (*applied)++;
    }
    return STORE_OK;
}

int store_schema_version(store_t *st, int *version)
{
    db_clear_error(st);
    *version = 0;
    db_query q;
    int status = db_query_start(st, db_fragment(st, DB_SQL_SCHEMA_EXISTS), &q);
    if (status != STORE_OK)
        return status;
    bool migrated = db_next_row(&q);
    status = db_query_end(&q, "reading the schema version");
    if (status != STORE_OK || !migrated)
        return status;
    status = db_query_start(st, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &q);
    if (status != STORE_OK)
        return status;
    if (db_next_row(&q))
        *version = (int)db_column_int(&q, 0);
    return db_query_end(&q, "reading the schema version");
}

int store_secret(store_t *st, uint8_t out[32])
{
    db_clear_error(st);
    db_query q;
    int status = db_query_start(st, "SELECT value FROM meta WHERE key = 'secret'", &q);
    if (status == STORE_ERROR) /* no meta table: never migrated */
        return db_fail(st, STORE_NOT_FOUND, "the database has no secret yet; run `strata migrate` first");
    if (status != STORE_OK)
        return status;
    bool found = false;
    size_t size = 0;
    const void *value = db_next_row(&q) ? db_column_blob(&q, 0, &size) : NULL;
    if (value && size == 32) {
        memcpy(out, value, 32);
        found = true;
    }
    status = db_query_end(&q, "reading the secret");
    if (status == STORE_OK && !found)
        return db_fail(st, STORE_NOT_FOUND, "the database has no valid secret");
    return status;
}
