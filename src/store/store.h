/*
 * store.h — the repository: the only door to the database.
 *
 * Every SQL statement strata runs lives behind this header. A store_t is one
 * database connection owned by one thread (a worker of the pool, or the CLI);
 * it is never shared, so it needs no lock (SQLite is opened NOMUTEX). Each
 * connection keeps its prepared statements, so a statement is compiled once
 * per connection and reused for the life of the process.
 *
 * Reads return jansson objects in the shapes of docs/api.md (item, summary,
 * draft, category); the caller owns the returned reference. Writes take the
 * validated input of src/content (store_edit_t) and either commit durably
 * (synchronous=FULL in WAL mode: a 2xx answered after store_* returned OK
 * survives kill -9) or change nothing.
 *
 * Every function returns STORE_OK (0) or a negative store_status; on failure
 * store_errmsg() tells why in a sentence fit for a problem+json detail.
 *
 * Dialect: this header is dialect-free. The domain files of src/store
 * implement it once, over a driver per engine (db.h and db_driver.h say
 * how): SQLite (a file path) or PostgreSQL (a postgres:// URL).
 */
#ifndef STRATA_STORE_H
#define STRATA_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/lsn.h"

typedef struct store store_t;

typedef enum store_status {
    STORE_OK = 0,
    STORE_NOT_FOUND = -1,   /* no such site / item / version / category / token */
    STORE_CONFLICT = -2,    /* a unique key is taken (slug, site name, category) */
    STORE_STALE = -3,       /* base version is not the latest draft (If-Match) */
    STORE_INVALID = -4,     /* input refers to something absent (category, parent) */
    STORE_STATE = -5,       /* the item is not in a state that allows this (unpublish) */
    STORE_BUSY = -6,        /* database locked or overloaded beyond busy_timeout */
    STORE_ERROR = -7,       /* anything else: I/O, corruption, bug */
    STORE_UNAVAILABLE = -8, /* the database server cannot be reached (answered 503; retried later) */
    STORE_FULL = -9,        /* the database's disk is full: nothing was written (answered 507) */
    STORE_UNBOUNDED = -10,  /* a read asked to be bounded is not (store_list_query.bounded_only) */
} store_status;

const char *store_status_name(int status);

/* Since when (ms since 1970) writes fail because the database's disk is
 * full: the first refusal of refusals less than 10 s apart, the last of
 * them less than 10 s ago; 0 otherwise. Any thread; for /readyz and the
 * alert. */
int64_t store_disk_full_since(void);

/* For the monitoring: {"group_commit":{"commits","writes",
 * "background_writes","failed_writes"} (null when st's writes commit
 * alone: PostgreSQL), "disk_full":bool}. NULL when out of memory. */
json_t *store_writes_json(const store_t *st);

/* ---- connection --------------------------------------------------------- */

/* Opens the database at url: a SQLite path (created if absent) or a
 * postgres:// / postgresql:// URL. Does not migrate. store_errmsg(NULL)
 * says why it failed, never with the URL's password. */
int store_open(const char *url, store_t **out);
/* This connection's commits no longer wait for fsync (synchronous=NORMAL
 * in WAL mode: atomic and consistent, but the last commits may be lost to
 * a power cut, never to a crash of the process). Only for writes that are
 * safe to redo: the job runner's bookkeeping. On SQLite it covers the
 * statements run on their own; db_transact's transactions commit on the
 * file's shared writer connection (commit_group.c), fully durable. */
void store_relax_durability(store_t *st);
/* This connection's write transactions are background work (the job
 * runner's): on SQLite they let request writes waiting at the same time
 * commit first. */
void store_writes_background(store_t *st);
/* Whether request writes (not background ones) were made through this
 * store's SQLite file by this process within the last within_ms; always
 * false on PostgreSQL. The job runner paces itself by it. */
bool store_request_writes_recent(const store_t *st, int64_t within_ms);
/* Closes the connection, finalises its statements, sets *st to NULL. */
void store_close(store_t **st);
/* The last failure's explanation ("" after success). Owned by the store.
 * store_errmsg(NULL): why this thread's last store_open failed. */
const char *store_errmsg(const store_t *st);
/* Applies every migration not yet applied, each in its own transaction.
 * Idempotent. *applied (if not NULL) gets the number applied this call. */
int store_migrate(store_t *st, int *applied);
/* The schema version of the database (0 if never migrated). */
int store_schema_version(store_t *st, int *version);
/* A cheap round trip, for /readyz. */
int store_ping(store_t *st);
/* The per-database secret (32 random bytes made at first migration) that
 * signs cursors and preview tokens, so every instance sharing the database
 * agrees on it and it survives restarts. */
int store_secret(store_t *st, uint8_t out[32]);

/* ---- copying a whole database (strata copy) ------------------------------ */

typedef struct store_copy_counts {
    int64_t rows[16];          /* per table, in store_copy_table_name's order */
    int64_t versions_verified; /* read back from the destination, hash checked */
} store_copy_counts;
/* Every row of `from` into `to` (migrated, with no site yet), in one
 * transaction of `to`, from one snapshot of `from`; checked before the
 * commit (row counts, every version's hash). Either engine on either side
 * (copy.c). On failure store_errmsg(from) says why. */
int store_copy(store_t *from, store_t *to, store_copy_counts *counts);
size_t store_copy_table_count(void);
const char *store_copy_table_name(size_t index);
/* Every version decodes and matches its stored SHA-256; *verified counts
 * them. On failure store_errmsg(st) names the version. */
int store_versions_verify(store_t *st, int64_t *verified);

/* ---- backups of the embedded database (backup.c) ------------------------- */

/* An online copy of the SQLite database at from_path into to_path: one
 * read snapshot (writers go on meanwhile, in WAL mode), written to
 * to_path.partial, synced, then renamed into place, so to_path is never
 * half a backup. 0, or -1 with err. */
int store_backup_sqlite(const char *from_path, const char *to_path, char *err, size_t err_size);

typedef struct store_verify_report {
    int schema_version;        /* the database's, equal to this binary's latest */
    int64_t rows[16];          /* per table, in store_copy_table_name's order */
    int64_t versions_verified; /* decoded, hash checked */
} store_verify_report;
/* Checks st whole: SQLite's integrity check (on SQLite), the schema
 * version, each table's rows counted, every version's hash. STORE_OK, or
 * a status with store_errmsg(st) saying what is wrong. */
int store_verify(store_t *st, store_verify_report *report);

/* ---- sites and tokens --------------------------------------------------- */

int store_site_create(store_t *st, const char *name, int64_t *site_id);
int store_site_lookup(store_t *st, const char *name, int64_t *site_id);
/* This connection learns every site there is now (up to the first 64), so
 * store_site_lookup answers them without a statement; a site made later is
 * looked up once when first asked for. */
int store_site_preload(store_t *st);
/* *sites: [{"id":…,"name":…}…] ordered by id. */
int store_site_list(store_t *st, json_t **sites);

typedef enum store_role { ROLE_READ = 1, ROLE_WRITE = 2, ROLE_ADMIN = 3 } store_role;

typedef struct store_token {
    int64_t id;
    int64_t site_id;
    store_role role;
    char name[65];
    uint8_t hash[32];
    int64_t expires_at; /* ms since the epoch; 0: never */
} store_token;

/* Stores a token by the SHA-256 hash of its secret text, valid until
 * expires_at (ms; 0: never); *id (if not NULL) gets its id. */
int store_token_create(store_t *st, int64_t site_id, store_role role, const char *name, const uint8_t hash[32],
                       int64_t expires_at, int64_t *id);
/* Finds an unrevoked, unexpired token by hash; STORE_NOT_FOUND if none. */
int store_token_lookup(store_t *st, const uint8_t hash[32], store_token *out);
/* *tokens: the site's tokens, newest first, never their hashes:
 * [{"id","name","role","created_at","expires_at","last_used_at","revoked_at"}…]
 * (times as RFC 3339 text or null). */
int store_token_list(store_t *st, int64_t site_id, json_t **tokens);
/* Revokes the site's token id (again: nothing changes); STORE_NOT_FOUND
 * if the site has no such token. */
int store_token_revoke(store_t *st, int64_t site_id, int64_t id);
/* A token was used at `at` (ms): its last_used_at moves forward to it. */
typedef struct store_token_use {
    int64_t id;
    int64_t at;
} store_token_use;
/* Records n uses in one transaction. */
int store_tokens_touch(store_t *st, const store_token_use *uses, size_t n);

/* ---- categories --------------------------------------------------------- */

/* parent_slug may be NULL. STORE_CONFLICT if slug exists, STORE_INVALID if
 * the parent does not. *out: {"slug","name","parent","items"}. */
int store_category_create(store_t *st, int64_t site_id, const char *slug, const char *name, const char *parent_slug,
                          json_t **out);
/* *out: {"categories":[…]} ordered by slug. */
int store_category_list(store_t *st, int64_t site_id, json_t **out);

/* ---- items -------------------------------------------------------------- */

/* The editable state of an item, validated by src/content. Strings are
 * NUL-terminated UTF-8 owned by the caller. In a partial save (PUT) a NULL
 * pointer / has_* false means "keep what the base version had". */
typedef struct store_edit {
    const char *type; /* create only */
    const char *slug;
    const char *title;
    const char *excerpt;
    const char *body;
    json_t *fields;       /* object, borrowed */
    bool has_category;    /* category given (possibly null) */
    const char *category; /* slug or NULL for none */
    bool has_tags;
    const char **tags; /* lowercased, distinct */
    size_t tag_count;
} store_edit_t;

/* Creates an item (status draft) and its version 1 (kind draft).
 * STORE_CONFLICT if site+type+slug is taken, STORE_INVALID for an unknown
 * category. *draft: the draft representation. */
int store_item_create(store_t *st, int64_t site_id, const char *site_name, const store_edit_t *edit, const char *author,
                      json_t **draft);

/* Published item by id (published_only=false also returns drafts and
 * archived items, for token holders). *item: full item. The reads that
 * answer clients take items as JSON text instead (item_text.h), by id or
 * by type and slug. */
int store_item_get(store_t *st, int64_t site_id, const char *site_name, int64_t id, bool published_only, json_t **item);

/* The latest version's editable state. *version gets its number. */
int store_item_get_draft(store_t *st, int64_t site_id, const char *site_name, int64_t id, json_t **draft,
                         int64_t *version);

/* Appends version base_version+1 merging edit over base_version (0: over
 * whatever is the latest when the transaction runs, If-Match: *).
 * STORE_STALE if base_version is not the latest (errmsg names the latest),
 * STORE_CONFLICT for a taken slug, STORE_INVALID for an unknown category.
 * The author's autosave based on the old latest is cleared in the same
 * transaction (store_autosave_clear). */
int store_item_save_draft(store_t *st, int64_t site_id, const char *site_name, int64_t id, int64_t base_version,
                          const store_edit_t *edit, const char *author, json_t **draft, int64_t *new_version);
/* The same, and in the same transaction, when the save made version 2 or
 * later, job diff_job queued with {"site_id", "item", "from", "to"}: the
 * new version's diff to the one before (a job of its own would wait for a
 * commit of its own). */
int store_item_save_draft_diffed(store_t *st, int64_t site_id, const char *site_name, int64_t id, int64_t base_version,
                                 const store_edit_t *edit, const char *author, const char *diff_job, json_t **draft,
                                 int64_t *new_version);

/* Publishes version (0 = latest): the item's public content becomes that
 * version's. Does not add a version. *item: the published item. */
int store_item_publish(store_t *st, int64_t site_id, const char *site_name, int64_t id, int64_t version,
                       const char *author, json_t **item);
/* STORE_STATE if not published. archive: status archived instead of draft. */
int store_item_unpublish(store_t *st, int64_t site_id, const char *site_name, int64_t id, bool archive, json_t **item);
/* Removes the item, its versions, tags and views. */
int store_item_delete(store_t *st, int64_t site_id, int64_t id);

/* ---- lists -------------------------------------------------------------- */

typedef enum store_sort {
    SORT_PUBLISHED_DESC = 0, /* -published_at (default) */
    SORT_PUBLISHED_ASC,      /* published_at */
    SORT_UPDATED_DESC,       /* -updated_at */
    SORT_TITLE_ASC,          /* title */
    SORT_RELEVANCE,          /* rank, then id: full-text search only (store_search.h) */
} store_sort;

typedef enum store_status_filter {
    FILTER_PUBLISHED = 0,
    FILTER_DRAFT,
    FILTER_ARCHIVED,
    FILTER_ANY,
} store_status_filter;

/* The position after the last row of a page: the sort key and the id. For
 * the title sort the key is text; for the time sorts it is milliseconds. A
 * NULL published_at sorts as 0. */
typedef struct store_keyset {
    bool present;
    int64_t key_int;
    char key_text[512];
    int64_t id;
} store_keyset;

typedef struct store_list_query {
    int64_t site_id;
    const char *site_name;
    const char *type;     /* NULL = any */
    const char *category; /* NULL = any */
    const char *tag;      /* NULL = any */
    const char *search;   /* a full-text query's canonical text (store_search.h), NULL = none: cursors hash it */
    store_status_filter status;
    store_sort sort;
    int limit;          /* 1..100 */
    store_keyset after; /* start after this position (present=false: first page) */
    /* Filters on declared custom fields (store_fields.h), all of them
     * applied; field_count 0: none. They need a type. */
    const struct store_field_filter *fields;
    size_t field_count;
    /* Fail with STORE_UNBOUNDED, reading nothing, rather than read every
     * match of a filter on fields to sort them (a read on an event loop,
     * which must stay short: http_request.on_loop). */
    bool bounded_only;
} store_list_query;

/* A list page is read as stamps or as summary texts (item_text.h):
 * store_list_stamps, store_item_list_texts. */

/* ---- views and popularity ----------------------------------------------- */

/* Adds count views to a published item in the hour bucket of now_ms.
 * STORE_NOT_FOUND if the item is absent or not published. */
int store_views_add(store_t *st, int64_t site_id, int64_t id, int64_t count, int64_t now_ms);

typedef struct store_view_count {
    int64_t site_id;
    int64_t item_id;
    int64_t count;
} store_view_count;

/* The write-behind flush: adds every count in one transaction. Counts for
 * items no longer published are dropped, not failed; *applied (if not NULL)
 * gets how many were applied. */
int store_views_add_batch(store_t *st, const store_view_count *counts, size_t n, int64_t now_ms, size_t *applied);

/* STORE_OK if the item exists in the site and is published, else
 * STORE_NOT_FOUND. One indexed lookup, no body read. */
int store_item_is_published(store_t *st, int64_t site_id, int64_t id);

/* Most viewed published items with views since since_ms (0 = all time),
 * most first, ties by id. *items: summaries with "window_views". */
int store_popular(store_t *st, int64_t site_id, const char *site_name, const char *type, int64_t since_ms, int limit,
                  json_t **items);

/* ---- demo content ------------------------------------------------------- */

/* Fills site_id with n realistic published items across categories and tags
 * (bodies of 1 to 50 KB), each with `versions` versions; deterministic for a
 * given seed. Used by `strata seed` and by the benchmarks. */
int store_seed_demo(store_t *st, int64_t site_id, const char *site_name, int items, int versions, uint32_t seed);

/* ---- WAL positions and replicas (db.c, replicas.c) ----------------------- */

/* A WAL position at or past this connection's last commit (PostgreSQL's
 * insert position, read when asked: one round trip; call it once per
 * write, after it); LSN_NONE on SQLite or when it could not be read. */
lsn_t store_commit_lsn(store_t *st);
/* Where a read that must see at_least (LSN_NONE: anything) goes: a usable
 * replica (store/replicas.h: up, not lagging past db.replica_max_lag_ms)
 * whose polled replayed position is ≥ at_least — every replica is
 * considered, from a rotating start — else primary. The replica's
 * connection belongs to primary (same thread), opened on first use.
 * *read_lsn: the replica's replayed position (a lower bound of what it
 * holds), LSN_NONE for the primary. */
store_t *store_reader(store_t *primary, lsn_t at_least, lsn_t *read_lsn);
/* For a read the primary could not answer: a replica that answered the
 * monitor's last poll and has replayed at_least, whatever its lag, from a
 * rotating start; NULL if none. *read_lsn as store_reader's. */
store_t *store_reader_any(store_t *primary, lsn_t at_least, lsn_t *read_lsn);
/* A read on reader (a replica store_reader gave) failed with status; the
 * caller reads again on the primary. A replica that cannot be reached
 * (STORE_UNAVAILABLE) is marked down until the monitor hears from it. */
void store_reader_failed(store_t *reader, int status);

/* ---- WAL checkpoints ------------------------------------------------------ */

/* A server's background checkpointer (checkpoint.c): from start to stop,
 * commits leave checkpoints to a thread with its own connection to path
 * instead of running them themselves. Without it (CLI, tests) commits
 * checkpoint as SQLite does by default. */
int store_checkpointer_start(const char *path);
void store_checkpointer_stop(void);

/* ---- observability and fault injection ---------------------------------- */

/* Statements executed by every connection of the process since start. */
uint64_t store_queries_total(void);

/* Until the store_now_ms() time `until_ms`, every statement fails as if
 * the database were unreachable (STORE_ERROR); 0 ends it. For operators'
 * drills and the fail-safe tests; reachable only through the admin route
 * guarded by config debug.fault_injection. Bounded in time by design, so a
 * drill cannot lock itself out. */
void store_inject_faults(int64_t until_ms);

/* ---- time --------------------------------------------------------------- */

/* Milliseconds since the epoch, the clock every stored timestamp uses. */
int64_t store_now_ms(void);

/* ---- statement timings (the shape of sqlite3_trace_v2's profile event) ---- */

/* One statement that ended, as the observer sees it. */
typedef struct store_statement_timing {
    store_t *store;  /* the connection it ran on: store_explain may ask it for the plan */
    const char *sql; /* the statement's text, or "BEGIN" / "COMMIT" */
    uint64_t nanos;  /* from its start to its end (CLOCK_MONOTONIC) */
    bool control;    /* BEGIN or COMMIT: there is no plan to ask for */
} store_statement_timing;

/* Called on the thread that ran the statement, after it ended. */
typedef void (*store_observer_fn)(const store_statement_timing *timing, void *arg);

/* The process-wide observer of every statement of every store (the
 * composition root points it at metrics); NULL, the default, times
 * nothing. Set it before any store is used by another thread. */
void store_set_observer(store_observer_fn fn, void *arg);

/* The plan of sql on st's connection as indented lines, "" if it cannot be
 * explained. It runs SQL of its own, so an observer calls it only for the
 * few statements it wants to explain (the slow ones). */
void store_explain(store_t *st, const char *sql, char *plan, size_t size);

#endif
