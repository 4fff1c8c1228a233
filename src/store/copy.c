/*
 * copy.c — `strata copy`: every row of one strata database into another,
 * whatever their engines, so a site that outgrows SQLite moves to
 * PostgreSQL (and back) with its history.
 *
 * The copy is by table, in the order the foreign keys need, each row
 * with its own ids, so everything that points at an id (tokens at sites,
 * versions at items, the skip-delta bases of versions at other versions)
 * still points right. The source is read in one snapshot
 * (DB_SQL_BEGIN_SNAPSHOT: a read transaction on SQLite, REPEATABLE READ
 * on PostgreSQL), so writers may go on meanwhile and the copy is still of
 * one moment; the destination is written inside one transaction, so a
 * failed copy leaves it as it was. The destination must
 * be migrated and hold no site. The per-database secret goes too, so
 * cursors and preview links stay valid.
 *
 * What is checked before the destination commits: every table has as many
 * rows as the source's, and every version decodes to JSON whose SHA-256
 * is the stored hash (version_json checks it), read back from the
 * destination.
 *
 * Category parents point at other categories of the same table: they are
 * inserted without their parent and given it in a second pass. The
 * indexes of declared custom fields are made on the destination once
 * their declarations are there (field_filters.c). Identity
 * keys on PostgreSQL must be moved past the copied ids afterwards
 * (DB_SQL_IDENTITY_RESET).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/db.h"
#include "store/store_internal.h"

/* A column: its name and how its values travel (int, text or blob). */
typedef struct copy_column {
    const char *name;
    char kind; /* 'i', 't', 'b' */
} copy_column;

typedef struct copy_table {
    const char *name;
    const char *order_by;
    bool identity; /* an integer `id` the engine assigns: moved past the copy on PostgreSQL */
    copy_column columns[20];
} copy_table;

/* Every table, parents before children; the columns of schema version 2. */
static const copy_table tables[] = {
    {"meta", "key", false, {{"key", 't'}, {"value", 'b'}}},
    {"sites", "id", true, {{"id", 'i'}, {"name", 't'}, {"created_at", 'i'}}},
    {"tokens",
     "id",
     true,
     {{"id", 'i'},
      {"site_id", 'i'},
      {"role", 'i'},
      {"name", 't'},
      {"hash", 'b'},
      {"created_at", 'i'},
      {"revoked_at", 'i'},
      {"expires_at", 'i'},
      {"last_used_at", 'i'}}},
    /* the declared fields; their indexes are made again afterwards (field_indexes_rebuild) */
    {"field_indexes",
     "id",
     true,
     {{"id", 'i'}, {"site_id", 'i'}, {"type", 't'}, {"name", 't'}, {"kind", 't'}, {"created_at", 'i'}}},
    /* parent_id in a second pass (copy_category_parents) */
    {"categories", "id", true, {{"id", 'i'}, {"site_id", 'i'}, {"slug", 't'}, {"name", 't'}}},
    {"items",
     "id",
     true,
     {{"id", 'i'},
      {"site_id", 'i'},
      {"type", 't'},
      {"slug", 't'},
      {"status", 't'},
      {"title", 't'},
      {"excerpt", 't'},
      {"fields", 't'},
      {"category_id", 'i'},
      {"author", 't'},
      {"created_at", 'i'},
      {"updated_at", 'i'},
      {"published_at", 'i'},
      {"views", 'i'},
      {"draft_version", 'i'},
      {"published_version", 'i'},
      {"body", 't'}}},
    {"item_tags",
     "item_id, tag",
     false,
     {{"site_id", 'i'},
      {"item_id", 'i'},
      {"tag", 't'},
      {"status", 't'},
      {"published_at", 'i'},
      {"updated_at", 'i'},
      {"title", 't'}}},
    {"item_schedules",
     "item_id",
     false,
     {{"item_id", 'i'}, {"site_id", 'i'}, {"publish_at", 'i'}, {"unpublish_at", 'i'}}},
    {"versions",
     "item_id, number",
     false,
     {{"item_id", 'i'},
      {"number", 'i'},
      {"kind", 't'},
      {"author", 't'},
      {"created_at", 'i'},
      {"size", 'i'},
      {"hash", 'b'},
      {"encoding", 'i'},
      {"data", 'b'},
      {"base", 'i'}}},
    {"publications",
     "id",
     true,
     {{"id", 'i'}, {"item_id", 'i'}, {"version", 'i'}, {"published_at", 'i'}, {"author", 't'}}},
    {"autosaves",
     "item_id, author",
     false,
     {{"item_id", 'i'}, {"author", 't'}, {"base_version", 'i'}, {"saved_at", 'i'}, {"data", 'b'}}},
    {"previews",
     "token_hash",
     false,
     {{"token_hash", 'b'},
      {"site_id", 'i'},
      {"item_id", 'i'},
      {"version", 'i'},
      {"expires_at", 'i'},
      {"revoked_at", 'i'},
      {"created_at", 'i'},
      {"created_by", 't'}}},
    {"jobs",
     "id",
     true,
     {{"id", 'i'},
      {"kind", 't'},
      {"payload", 't'},
      {"run_at", 'i'},
      {"attempts", 'i'},
      {"locked_until", 'i'},
      {"last_error", 't'},
      {"created_at", 'i'},
      {"unique_key", 't'},
      {"failed_at", 'i'}}},
    {"views_hourly", "item_id, hour", false, {{"site_id", 'i'}, {"item_id", 'i'}, {"hour", 'i'}, {"count", 'i'}}},
    {"webhooks",
     "id",
     true,
     {{"id", 'i'},
      {"site_id", 'i'},
      {"url", 't'},
      {"events", 'i'},
      {"secret", 'b'},
      {"active", 'i'},
      {"created_at", 'i'}}},
    {"webhook_deliveries",
     "id",
     true,
     {{"id", 'i'},
      {"webhook_id", 'i'},
      {"message_id", 't'},
      {"event", 't'},
      {"attempts", 'i'},
      {"status_code", 'i'},
      {"error", 't'},
      {"created_at", 'i'},
      {"last_attempt_at", 'i'},
      {"delivered_at", 'i'},
      {"history", 't'}}},
};
enum { TABLE_COUNT = sizeof tables / sizeof tables[0], SQL_MAX = 1024 };
_Static_assert(TABLE_COUNT <= sizeof(((store_copy_counts *)0)->rows) / sizeof(int64_t),
               "store_copy_counts.rows (and store_verify_report.rows) must hold every table");

static size_t column_count(const copy_table *t)
{
    size_t n = 0;
    while (n < sizeof t->columns / sizeof t->columns[0] && t->columns[n].name != NULL)
        n++;
    return n;
}

/* "SELECT a, b FROM t ORDER BY k" and "INSERT INTO t(a, b) VALUES (:c0, :c1)". */
static void table_sql(const copy_table *t, char select[SQL_MAX], char insert[SQL_MAX])
{
    size_t n = column_count(t);
    int s = snprintf(select, SQL_MAX, "SELECT ");
    int i = snprintf(insert, SQL_MAX, "INSERT INTO %s(", t->name);
    for (size_t c = 0; c < n; c++) {
        s += snprintf(select + s, SQL_MAX - (size_t)s, "%s%s", c ? ", " : "", t->columns[c].name);
        i += snprintf(insert + i, SQL_MAX - (size_t)i, "%s%s", c ? ", " : "", t->columns[c].name);
    }
    snprintf(select + s, SQL_MAX - (size_t)s, " FROM %s ORDER BY %s", t->name, t->order_by);
    i += snprintf(insert + i, SQL_MAX - (size_t)i, ") VALUES (");
    for (size_t c = 0; c < n; c++)
        i += snprintf(insert + i, SQL_MAX - (size_t)i, "%s:c%zu", c ? ", " : "", c);
    snprintf(insert + i, SQL_MAX - (size_t)i, ")");
}

/* Binds column c of the source's current row to :c<c> of the insert. */
static void copy_value(const db_query *from, db_query *to, const copy_column *col, size_t c)
{
    char name[32];
    snprintf(name, sizeof name, ":c%zu", c);
    if (db_column_is_null(from, (int)c)) {
        db_bind_text(to, name, NULL);
        return;
    }
    switch (col->kind) {
    case 'i': db_bind_int(to, name, db_column_int(from, (int)c)); break;
    case 't': db_bind_text(to, name, db_column_text(from, (int)c)); break;
    default: {
        size_t size = 0;
        const void *data = db_column_blob(from, (int)c, &size);
        db_bind_blob(to, name, data != NULL ? data : "", size);
    }
    }
}

typedef struct copy_job {
    store_t *from, *to;
    store_copy_counts *counts;
} copy_job;

static int copy_table_rows(copy_job *job, const copy_table *t, int64_t *rows)
{
    char select[SQL_MAX], insert[SQL_MAX];
    table_sql(t, select, insert);
    size_t n = column_count(t);
    db_query read;
    int status = db_query_start(job->from, select, &read);
    *rows = 0;
    while (status == STORE_OK && db_next_row(&read)) {
        db_query write;
        status = db_query_start(job->to, insert, &write);
        if (status != STORE_OK)
            break;
        for (size_t c = 0; c < n; c++)
            copy_value(&read, &write, &t->columns[c], c);
        status = db_query_run(&write, "copying a row");
        if (status != STORE_OK)
            db_fail(job->from, status, "copying %s: %s", t->name, store_errmsg(job->to));
        (*rows)++;
    }
    int ended = db_query_end(&read, "reading the source");
    return status != STORE_OK ? status : ended;
}

int store_table_rows(store_t *st, const char *table, int64_t *rows)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", table);
    db_query q;
    int status = db_query_start(st, sql, &q);
    if (status != STORE_OK)
        return status;
    *rows = db_next_row(&q) ? db_column_int(&q, 0) : -1;
    return db_query_end(&q, "counting rows");
}

static int copy_category_parents(copy_job *job)
{
    db_query read;
    int status = db_query_start(job->from, "SELECT id, parent_id FROM categories WHERE parent_id IS NOT NULL", &read);
    while (status == STORE_OK && db_next_row(&read)) {
        db_query write;
        status = db_query_start(job->to, "UPDATE categories SET parent_id = :parent WHERE id = :id", &write);
        if (status != STORE_OK)
            break;
        db_bind_int(&write, ":parent", db_column_int(&read, 1));
        db_bind_int(&write, ":id", db_column_int(&read, 0));
        status = db_query_run(&write, "copying a category's parent");
    }
    int ended = db_query_end(&read, "reading the source's categories");
    return status != STORE_OK ? status : ended;
}

/* Every version of the destination decodes and matches its hash. */
static int verify_versions(copy_job *job)
{
    return store_versions_verify(job->to, &job->counts->versions_verified);
}

int store_versions_verify(store_t *st, int64_t *verified)
{
    db_query q;
    int status = db_query_start(st, "SELECT item_id, number FROM versions ORDER BY item_id, number", &q);
    int64_t checked = 0;
    while (status == STORE_OK && db_next_row(&q)) {
        int64_t item = db_column_int(&q, 0), number = db_column_int(&q, 1);
        /* version_json runs queries of its own on the same connection: a
         * different statement, so this one's rows are not disturbed */
        char *json = NULL;
        size_t len = 0;
        status = version_json(st, item, number, &json, &len);
        free(json);
        if (status != STORE_OK)
            db_fail(st, status, "version %lld of item %lld does not read back: %s", (long long)number, (long long)item,
                    store_errmsg(st));
        checked++;
    }
    int ended = db_query_end(&q, "reading back the versions");
    *verified = checked;
    return status != STORE_OK ? status : ended;
}

static int destination_is_empty(store_t *to)
{
    int64_t sites = 0;
    int status = store_table_rows(to, "sites", &sites);
    if (status == STORE_OK && sites != 0)
        return db_fail(to, STORE_STATE, "the destination already has %lld site(s); copy into an empty database",
                       (long long)sites);
    return status;
}

static int identity_reset(copy_job *job, const copy_table *t)
{
    const char *pattern = db_fragment(job->to, DB_SQL_IDENTITY_RESET);
    if (!t->identity || pattern == NULL)
        return STORE_OK;
    /* the pattern says {table} where the table's name goes */
    const char *name = "{table}";
    char *sql = db_sql_filled(pattern, &name, &t->name, 1);
    if (sql == NULL)
        return db_fail(job->to, STORE_ERROR, "out of memory moving an identity past the copied ids");
    int status = db_exec_script(job->to, sql, "moving an identity past the copied ids");
    free(sql);
    return status;
}

/* The destination's transaction: everything, then the checks. */
static int copy_into(store_t *to, void *arg)
{
    copy_job *job = arg;
    job->to = to; /* the store the transaction runs on (on SQLite, the file's shared writer: commit_group.c) */
    memset(job->counts->rows, 0, sizeof job->counts->rows);
    int status = destination_is_empty(job->to);
    if (status == STORE_OK)
        status = db_exec_script(job->to, "DELETE FROM meta", "clearing the destination's secret");
    for (size_t i = 0; i < TABLE_COUNT && status == STORE_OK; i++) {
        status = copy_table_rows(job, &tables[i], &job->counts->rows[i]);
        if (status == STORE_OK)
            status = identity_reset(job, &tables[i]);
        int64_t source = 0, copied = 0;
        if (status == STORE_OK && (status = store_table_rows(job->from, tables[i].name, &source)) == STORE_OK &&
            (status = store_table_rows(job->to, tables[i].name, &copied)) == STORE_OK && source != copied)
            status = db_fail(job->to, STORE_ERROR, "%s: %lld rows in the source, %lld copied", tables[i].name,
                             (long long)source, (long long)copied);
    }
    if (status == STORE_OK)
        status = copy_category_parents(job);
    if (status == STORE_OK)
        status = field_indexes_rebuild(job->to);
    if (status == STORE_OK)
        status = verify_versions(job);
    return status;
}

size_t store_copy_table_count(void)
{
    return TABLE_COUNT;
}

const char *store_copy_table_name(size_t i)
{
    return i < TABLE_COUNT ? tables[i].name : NULL;
}

int store_copy(store_t *from, store_t *to, store_copy_counts *counts)
{
    db_clear_error(from);
    db_clear_error(to);
    copy_job job = {.from = from, .to = to, .counts = counts};
    /* one read snapshot of the source for the whole copy (not a write
     * transaction: on SQLite both ends may be files of this process, and
     * writers queue on one process-wide lock) */
    int status = db_exec_script(from, db_fragment(from, DB_SQL_BEGIN_SNAPSHOT), "reading the source");
    if (status != STORE_OK)
        return status;
    status = db_transact(to, copy_into, &job, "copying into the destination");
    (void)db_exec_script(from, "COMMIT", "ending the source's snapshot");
    if (status != STORE_OK)
        db_fail(from, status, "%s", store_errmsg(to));
    return status;
}
