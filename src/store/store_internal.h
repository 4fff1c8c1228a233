/*
 * store_internal.h — what the files of the store share with each other, and
 * with nobody else (nothing outside src/store includes this, but for the
 * store's own unit tests).
 *
 *   db.c            the query layer (db.h): statement cache, errors,
 *                   transactions, the statement observer; opening a store
 *   store_tables.c  sites, tokens, categories
 *   schema.c        the migration runner and the per-database secret
 *   items.c         item reads and writes, the item/draft JSON
 *   versions.c      how versions are stored, history reads, retention
 *   autosaves.c     the autosave slots
 *   lists.c         keyset lists, view counting, popularity
 *   search.c        full-text search pages (store_search.h)
 *   seed.c          deterministic demo content
 *   snapshot.c      item snapshots, times and JSON building (no database)
 *   version_codec.c the zstd skip-delta codec (no database)
 *
 * The engines are behind db_driver.h (db_sqlite.c, db_postgres.c); the
 * domain files speak only db.h and write the SQL both engines accept.
 */
#ifndef STRATA_STORE_INTERNAL_H
#define STRATA_STORE_INTERNAL_H

#include "config/config.h"
#include "core/growbuf.h"
#include "core/lsn.h"
#include "store/db.h"
#include "store/snapshot.h"
#include "store/store.h"
#include "store/store_fields.h"
#include "store/version_codec.h"

/* One prepared statement, keyed by its SQL text. */
typedef struct cached_statement {
    uint64_t sql_hash; /* 0 marks an empty slot */
    char *sql;
    db_stmt *stmt;
} cached_statement;

/* A site's id by its name, as this connection has read it (store_tables.c). */
enum { SITE_MEMO_MAX = 64, SITE_NAME_MAX = 64 };
typedef struct site_memo {
    char name[SITE_NAME_MAX + 1];
    int64_t id;
} site_memo;

struct store {
    const db_driver *driver;
    db_conn *conn;
    /* Open-addressed by sql_hash; capacity is a power of two kept at most
     * half full. The set of SQL texts is finite by construction (lists are
     * built from fixed fragments), so entries are never evicted. */
    cached_statement *statements;
    size_t statement_count;
    size_t statement_capacity;
    bool in_transaction;            /* inside db_transact's BEGIN … COMMIT */
    bool retry_seen;                /* the engine asked for a retry in this transaction (DB_RETRY) */
    site_memo sites[SITE_MEMO_MAX]; /* names looked up and found: a site is never renamed or deleted */
    size_t site_count;
    char errmsg[512];
    /* Rows the last statement ended by db_query_end wrote, read as it
     * ended: a slow one is then explained, and that statement of its own
     * would answer for it otherwise (db_changes). */
    int64_t last_changes;
    /* versions.c's zstd contexts, made on first use, reused for the life of
     * the connection. */
    version_codec *codec;
    /* A worker's connections to the replicas (replicas.c), opened on
     * first use, by index in db.replicas; replica_index is this
     * connection's own index when it is one (-1: the primary). */
    store_t *replicas[CONFIG_REPLICAS_MAX];
    unsigned replica_next; /* where store_reader starts looking: rotates */
    int replica_index;
    /* The group whose one connection commits this store's transactions
     * with those of every other store of the process on the same SQLite
     * file (commit_group.c); NULL: it commits its own. */
    struct commit_group *group;
    bool background; /* its transactions wait while request writes queue (store_writes_background) */
};

/* ---- transactions, for the commit group (db.c) ---------------------------- */

/* store_open without joining a commit group: the group's own connection. */
int store_open_alone(const char *url, store_t **out);
/* Runs a BEGIN or COMMIT (op) as db_transact does: counted, timed, its
 * failure in errmsg. */
int db_control(store_t *st, const char *verb, int (*op)(db_conn *c), const char *doing);
/* Runs a transaction's body on st, inside a transaction open there, with
 * db_transact's checks (no writer inside a writer, no statement left
 * mid-run). */
int db_body_run(store_t *st, int (*body)(store_t *st, void *arg), void *arg);

/* ---- replicas (replicas.c) ------------------------------------------------ */

/* Closes a primary's replica connections (store_close). */
void replicas_close_of(store_t *primary);

/* ---- schema (schema.c) ---------------------------------------------------- */

/* The latest migration number of the store's driver. */
int schema_latest(const store_t *st);
/* COUNT(*) of a table strata names (never a value from outside). */
int store_table_rows(store_t *st, const char *table, int64_t *rows);

/* ---- categories (store_tables.c) ------------------------------------------ */

/* The id of category slug in the site; STORE_INVALID "unknown category". */
int category_id_lookup(store_t *st, int64_t site_id, const char *slug, int64_t *category_id);

/* ---- items (items.c), shared with lists.c and seed.c --------------------- */

/* The columns every item read selects, in this order, the item's tags and
 * category slug among them (one statement reads an item whole: on SQLite a
 * subquery over item_tags and a join to categories, on PostgreSQL columns
 * of items kept by triggers, as db_driver.h's fragments say); a query may
 * add one more column (ITEM_COL_EXTRA): the body, or a popularity count. */
#define ITEM_COLUMNS                                                                                                   \
    "i.id, i.type, i.slug, i.status, i.title, i.excerpt, i.fields, {category_of_item}, i.author, "                     \
    "i.created_at, i.updated_at, i.published_at, i.views, i.draft_version, "                                           \
    "i.published_version, {tags_of_item}"
#define ITEM_FROM "items i LEFT JOIN categories c ON c.id = i.category_id"
enum item_column {
    ITEM_COL_ID,
    ITEM_COL_TYPE,
    ITEM_COL_SLUG,
    ITEM_COL_STATUS,
    ITEM_COL_TITLE,
    ITEM_COL_EXCERPT,
    ITEM_COL_FIELDS,
    ITEM_COL_CATEGORY,
    ITEM_COL_AUTHOR,
    ITEM_COL_CREATED_AT,
    ITEM_COL_UPDATED_AT,
    ITEM_COL_PUBLISHED_AT,
    ITEM_COL_VIEWS,
    ITEM_COL_DRAFT_VERSION,
    ITEM_COL_PUBLISHED_VERSION,
    ITEM_COL_TAGS,
    ITEM_COL_EXTRA,
};
/* An item holds at most this many tags (src/content/input.c says so to
 * clients); more in the tags column would be a damaged row, and are cut. */
enum { ITEM_TAGS_MAX = 32 };

/* The item (with_body: ITEM_COL_EXTRA is the body) or summary of the
 * current row, its tags sorted. NULL if out of memory or the stored
 * fields are not a JSON object. */
json_t *item_from_row(const db_query *q, const char *site_name, bool with_body);
/* An edit's own consistency (fields an object, tags present). */
int edit_check(store_t *st, const store_edit_t *edit);
/* Makes item_tags hold exactly these tags, with the item's current status
 * and published_at. Inside a transaction. */
int item_tags_replace(store_t *st, int64_t item_id, const json_t *tags);
/* Records a publish of version at time at. Inside a transaction. */
int publication_record(store_t *st, int64_t item_id, int64_t version, int64_t at, const char *author);

/* ---- webhook events (webhooks.c), queued by items.c ---------------------- */

/* The item as an event shows it. */
typedef struct webhook_item {
    int64_t id;
    const char *type, *slug, *status;
    int64_t version; /* the one the event is about */
    int64_t draft_version, published_version;
} webhook_item;
/* Queues a delivery of event (a store_webhook_event bit) about item for
 * each active subscription of the site that wants it. Inside the write's
 * transaction. */
int webhook_event_queue(store_t *st, int64_t site_id, unsigned event, const webhook_item *item);

/* ---- item text (item_text.c), shared with lists.c ------------------------ */

/* The current row (ITEM_COLUMNS, the body as ITEM_COL_EXTRA when
 * with_body) as JSON text in o (emptied first; reused from row to row),
 * described by *row (row->text is o's). */
struct store_row_text;
int item_text_of_row(store_t *st, const db_query *q, int64_t site_id, const char *site_name, bool with_body, growbuf *o,
                     struct store_row_text *row);
/* The stamp columns (item_stamp_columns, in its order) of the current row. */
struct store_stamp;
extern const char item_stamp_columns[];
void item_stamp_of_columns(const db_query *q, int64_t site_id, struct store_stamp *stamp, int64_t *views);

/* ---- versions (versions.c) ------------------------------------------------ */

/* Appends a version row holding the snapshot (compressed, versions.c).
 * Inside a transaction. */
int version_append(store_t *st, int64_t item_id, int64_t number, const char *kind, const char *author,
                   int64_t created_at, const json_t *snapshot);
/* version_append in two steps, so that the CPU of the first (JSON text,
 * hash, compression against the skip-delta base, which reads the base) can
 * run before the transaction, beside other writers' transactions, not in
 * the one writer's turn: version_prepare encodes the snapshot as version
 * number of the item; version_prepared_usable, in the transaction, says
 * whether it is still right for that number (the base it was compressed
 * against not removed by retention meanwhile); version_insert writes it. */
typedef struct version_prepared {
    int64_t item_id, number, base; /* base: the skip-delta base (0: none) */
    int encoding;
    size_t size; /* of the JSON text */
    uint8_t hash[32];
    void *frame; /* NULL: nothing prepared */
    size_t frame_len;
} version_prepared;
int version_prepare(store_t *st, int64_t item_id, int64_t number, const json_t *snapshot, version_prepared *out);
int version_prepared_usable(store_t *st, const version_prepared *p, int64_t item_id, int64_t number, bool *usable);
int version_insert(store_t *st, const version_prepared *p, const char *kind, const char *author, int64_t created_at);
void version_prepared_free(version_prepared *p);
/* The JSON text of a version (malloc'd, NUL-terminated; *len without the
 * NUL), decoded and checked against its hash. STORE_NOT_FOUND if absent. */
int version_json(store_t *st, int64_t item_id, int64_t number, char **json, size_t *len);
/* The same, parsed and checked to be a snapshot. */
int version_snapshot(store_t *st, int64_t item_id, int64_t number, json_t **snapshot);

/* ---- list SQL (lists.c), shared with search.c ----------------------------- */

/* A statement assembled from fragments (lists.c's header says why). */
typedef struct sql_text {
    char text[16384]; /* filters on fields (store_fields.h bounds them), a SELECT per value (lists.c) */
    size_t length;
    bool overflow;
} sql_text;
/* Appends a fragment; arguments are other fragments, never values. */
void sql_add(sql_text *sql, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* STORE_INVALID (and why) for a limit, status, sort or position a list
 * cannot have; else STORE_OK. */
int list_query_check(store_t *st, const store_list_query *q);
/* The position of the current row (ITEM_COLUMNS) in a list sort (not
 * SORT_RELEVANCE); false when its title is too long to page by. */
bool list_position_of_item_row(const db_query *query, store_sort sort, store_keyset *position);

/* ---- views (lists.c), shared with seed.c --------------------------------- */

/* Adds count to the item's bucket for hour (ms / 3600000). */
int views_hourly_add(store_t *st, int64_t site_id, int64_t item_id, int64_t hour, int64_t count);

/* ---- filters on declared fields, for lists.c (field_filters.c) ------------ */

/* q's filters on fields as SQL (" AND <expr> <op> :fN…") into out (size
 * bytes); STORE_INVALID for a filter that is malformed or without a type. */
int field_filters_sql(store_t *st, const store_list_query *q, char *out, size_t size);
/* Whether a list with q's filters reads the matches from a field's index
 * and sorts them, rather than walk an index in its order: any filter but
 * an equality, or a sort other than by published_at (field_filters.c). */
bool field_filters_read_matches(const store_list_query *q);
/* Binds the values field_filters_sql named. */
void field_filters_bind(db_query *query, const store_list_query *q);

/* A range read value by value: when q's filters are ranges on one field
 * (no [in], no equality) over published items with no tag or category,
 * sorted by published_at, the list reads the range's distinct values
 * first (at most FIELD_VALUES_MAX + 1 seeks), then merges one ordered
 * walk of the field's index per value: limit + 1 entries in all, where
 * sorting the matches reads every one of them (field_filters.c). */
enum { FIELD_VALUES_MAX = 8 };
typedef union field_value {
    double number; /* a number (a bool has no range: content/field_filters.c refuses one) */
    char *text;    /* malloc'd */
} field_value;
typedef struct field_values {
    store_field_kind kind;
    size_t count; /* FIELD_VALUES_MAX + 1: more than an ordered walk each pays for */
    field_value value[FIELD_VALUES_MAX + 1];
} field_values;
bool field_filters_by_value(const store_list_query *q);
/* The range's distinct values, in ascending order (filters: q's filters
 * as field_filters_sql wrote them). */
int field_filters_values_read(store_t *st, const store_list_query *q, const char *filters, field_values *values);
/* " AND <expr> = :v<k>": the k-th value's walk. */
int field_filters_value_sql(store_t *st, const store_list_query *q, size_t k, char *out, size_t size);
void field_filters_values_bind(db_query *query, const field_values *values);
void field_values_free(field_values *values);
/* Makes the index of every declared field that lacks it (strata copy). */
int field_indexes_rebuild(store_t *st);

#endif
