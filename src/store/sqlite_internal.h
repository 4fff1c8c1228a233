/*
 * sqlite_internal.h — what the files of the SQLite store share with each
 * other, and with nobody else (nothing outside src/store includes this).
 *
 *   store_sqlite.c  connection, statement cache, errors, transactions, time,
 *                   sites, tokens, categories
 *   checkpoint.c    WAL checkpoints on a thread of their own
 *   schema.c        versioned migrations and the per-database secret
 *   items.c         item reads and writes, the item/draft JSON
 *   versions.c      how versions are stored (zstd skip-deltas), history
 *                   reads, retention
 *   autosaves.c     the autosave slots
 *   lists.c         keyset lists, view counting, popularity
 *   seed.c          deterministic demo content
 *
 * Queries go through sq_query: a cached statement plus the first SQLite
 * failure met while binding or stepping it. Binding and stepping never need
 * checking one call at a time; sq_query_end() resets the statement (which
 * also ends its implicit read transaction) and turns that failure into a
 * store status with an errmsg. Every function that starts a query ends it.
 * A cached statement serves one query at a time: never start a query on SQL
 * whose previous query has not ended (starting it resets that statement).
 */
#ifndef STRATA_STORE_SQLITE_INTERNAL_H
#define STRATA_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>

#include "store/store.h"

/* One compiled statement, keyed by its SQL text. */
typedef struct cached_statement {
    uint64_t sql_hash; /* 0 marks an empty slot */
    char *sql;
    sqlite3_stmt *stmt;
} cached_statement;

struct store {
    sqlite3 *db;
    /* Open-addressed by sql_hash; capacity is a power of two kept at most
     * half full. The set of SQL texts is finite by construction (lists are
     * built from fixed fragments), so entries are never evicted. */
    cached_statement *statements;
    size_t statement_count;
    size_t statement_capacity;
    char errmsg[512];
    /* versions.c's zstd contexts, made on first use, reused for the life of
     * the connection. */
    struct ZSTD_CCtx_s *zstd_c;
    struct ZSTD_DCtx_s *zstd_d;
    bool holds_writer; /* between sq_begin and sq_end: the process's writer mutex */
};

/* ---- errors ------------------------------------------------------------- */

void sq_clear_error(store_t *st);
int sq_fail(store_t *st, int status, const char *format, ...) __attribute__((format(printf, 3, 4)));
/* Maps an SQLite result code: busy/locked → STORE_BUSY, a unique or primary
 * key violation → STORE_CONFLICT, anything else → STORE_ERROR; `doing` says
 * what was being done ("saving the draft"). */
int sq_fail_sqlite(store_t *st, int sqlite_rc, const char *doing);

/* ---- queries ------------------------------------------------------------ */

typedef struct sq_query {
    store_t *st;
    sqlite3_stmt *stmt;
    int rc; /* the first SQLite failure, or SQLITE_OK */
    uint64_t started_ns; /* metrics: when it started (0: not measured) */
} sq_query;

/* Takes sql's statement from the cache (compiling it on first use), reset
 * and with no bindings. */
int sq_query_start(store_t *st, const char *sql, sq_query *q);
/* Bind by name (":id"); a name absent from the SQL is a bug and fails the
 * query. text/blob are copied (SQLITE_TRANSIENT); a NULL text binds NULL. */
void sq_bind_int(sq_query *q, const char *name, int64_t value);
void sq_bind_int_or_null(sq_query *q, const char *name, int64_t value, bool present);
void sq_bind_text(sq_query *q, const char *name, const char *text);
void sq_bind_blob(sq_query *q, const char *name, const void *data, size_t size);
void sq_bind_int_at(sq_query *q, int index, int64_t value);
/* Steps: true while a row is there; false at the end or on failure. */
bool sq_next_row(sq_query *q);
/* Resets the statement and reports how the query went. */
int sq_query_end(sq_query *q, const char *doing);
/* Runs a statement that returns no rows (bind first), then ends it. */
int sq_query_run(sq_query *q, const char *doing);
/* A column as text, or NULL for SQL NULL. */
const char *sq_column_text(const sq_query *q, int column);
int64_t sq_changes(const store_t *st);

/* ---- transactions ------------------------------------------------------- */

/* BEGIN IMMEDIATE: the write lock is taken (waiting up to busy_timeout) up
 * front, so a transaction never fails half way on a lock upgrade. Writers
 * of one process queue on a mutex first (store_sqlite.c says why); every
 * sq_begin that succeeds must be followed by sq_end. */
int sq_begin(store_t *st);
/* Commits when status is STORE_OK, otherwise (or if COMMIT fails) rolls
 * back. Returns the final status; errmsg keeps the first failure's words. */
int sq_end(store_t *st, int status);

/* ---- WAL checkpoints (checkpoint.c) --------------------------------------- */

/* The WAL hook every connection installs (sqlite3_wal_hook). */
int sq_wal_hook(void *arg, sqlite3 *db, const char *name, int pages);

/* ---- time --------------------------------------------------------------- */

enum { SQ_TIME_TEXT_SIZE = 80 }; /* room for any int the compiler imagines */
/* "2026-11-21T10:00:00.000Z" */
void sq_format_time(int64_t ms, char out[SQ_TIME_TEXT_SIZE]);
json_t *sq_time_json(int64_t ms);

/* ---- JSON building ------------------------------------------------------ */

/* Sets key to value (stolen) and says whether both exist and it worked, so
 * building an object reads as `ok = ok && sq_put(obj, "k", json_…(…));` —
 * once ok is false no further value is even created. */
bool sq_put(json_t *object, const char *key, json_t *value);

/* ---- schema ------------------------------------------------------------- */

int sq_migrations_latest(void);

/* ---- items (items.c), shared with lists.c and seed.c --------------------- */

/* The columns every item read selects, in this order; a query may add one
 * more column (SQ_COL_EXTRA): the body, or a popularity count. */
#define SQ_ITEM_COLUMNS                                                                                                \
    "i.id, i.type, i.slug, i.status, i.title, i.excerpt, i.fields, c.slug, i.author, "                                 \
    "i.created_at, i.updated_at, i.published_at, i.views, i.draft_version, "                                           \
    "i.published_version"
#define SQ_ITEM_FROM "items i LEFT JOIN categories c ON c.id = i.category_id"
enum sq_item_column {
    SQ_COL_ID,
    SQ_COL_TYPE,
    SQ_COL_SLUG,
    SQ_COL_STATUS,
    SQ_COL_TITLE,
    SQ_COL_EXCERPT,
    SQ_COL_FIELDS,
    SQ_COL_CATEGORY,
    SQ_COL_AUTHOR,
    SQ_COL_CREATED_AT,
    SQ_COL_UPDATED_AT,
    SQ_COL_PUBLISHED_AT,
    SQ_COL_VIEWS,
    SQ_COL_DRAFT_VERSION,
    SQ_COL_PUBLISHED_VERSION,
    SQ_COL_EXTRA,
};

/* The item (with_body: SQ_COL_EXTRA is the body) or summary of the current
 * row, with an empty "tags" array for sq_items_attach_tags to fill. NULL if
 * out of memory or the stored fields are not a JSON object. */
json_t *sq_item_from_row(const sq_query *q, const char *site_name, bool with_body);
/* Fills the "tags" of up to any number of items with one query per hundred. */
int sq_items_attach_tags(store_t *st, json_t *const items[], size_t count);

/* A version snapshot {"slug","title","excerpt","body","fields","category",
 * "tags"}; fields and tags are stolen; category may be NULL. */
json_t *sq_snapshot_new(const char *slug, const char *title, const char *excerpt, const char *body, json_t *fields,
                        const char *category, json_t *tags);
/* A sorted JSON array of the tags. */
json_t *sq_tags_json(const char *const *tags, size_t count);

/* The id of category slug in the site; STORE_INVALID "unknown category". */
int sq_category_id(store_t *st, int64_t site_id, const char *slug, int64_t *category_id);
/* True if the JSON has every member of a snapshot with the right types. */
bool sq_snapshot_valid(const json_t *snapshot);
/* An edit's own consistency (fields an object, tags present). */
int sq_edit_check(store_t *st, const store_edit_t *edit);
/* Replaces what the edit gives in snapshot; keeps what it leaves out. False
 * when out of memory or a text is not valid UTF-8. */
bool sq_snapshot_merge_edit(json_t *snapshot, const store_edit_t *edit);

/* ---- versions (versions.c) ------------------------------------------------ */

/* Appends a version row holding the snapshot (compressed, versions.c).
 * Inside a transaction. */
int sq_version_append(store_t *st, int64_t item_id, int64_t number, const char *kind, const char *author,
                      int64_t created_at, const json_t *snapshot);
/* The JSON text of a version (malloc'd, NUL-terminated; *len without the
 * NUL), decoded and checked against its hash. STORE_NOT_FOUND if absent. */
int sq_version_json(store_t *st, int64_t item_id, int64_t number, char **json, size_t *len);
/* The same, parsed and checked to be a snapshot. */
int sq_version_snapshot(store_t *st, int64_t item_id, int64_t number, json_t **snapshot);
/* Frees the connection's codec contexts (store_close). */
void sq_codec_free(store_t *st);
/* Makes item_tags hold exactly these tags, with the item's current status
 * and published_at. Inside a transaction. */
int sq_item_tags_replace(store_t *st, int64_t item_id, const json_t *tags);
/* Records a publish of version at time at. Inside a transaction. */
int sq_publication_record(store_t *st, int64_t item_id, int64_t version, int64_t at, const char *author);

/* ---- views (lists.c), shared with seed.c --------------------------------- */

/* Adds count to the item's bucket for hour (ms / 3600000). */
int sq_views_hourly_add(store_t *st, int64_t site_id, int64_t item_id, int64_t hour, int64_t count);

/* ---- tests -------------------------------------------------------------- */

/* How many cached statements exist, and how many are mid-step (which would
 * hold a read transaction open: always 0 between store calls). */
size_t sq_statement_count(const store_t *st);
size_t sq_statements_busy(const store_t *st);

#endif
