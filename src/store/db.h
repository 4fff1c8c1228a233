/*
 * db.h — how the domain files of src/store run SQL, whatever the engine.
 *
 * The store in layers, each using only those below it:
 *
 *   store.h, store_history.h, store_jobs.h    the repository's contract
 *   items.c versions.c lists.c autosaves.c     the domain: ONE copy of the
 *   previews.c jobs.c seed.c schema.c          SQL, in the dialect both
 *   store_tables.c (sites, tokens, categories) engines accept (db_driver.h)
 *   snapshot.c, version_codec.c                no database at all: item
 *                                              snapshots, the zstd codec
 *   db.c (this header)                         statement cache, timings,
 *                                              errors, transactions
 *   db_driver.h: db_sqlite.c, db_postgres.c    one engine each
 *   checkpoint.c                               the SQLite driver's WAL
 *                                              checkpointer
 *
 * Queries go through db_query: a cached statement plus the first failure
 * met while binding or stepping it. Binding and stepping never need
 * checking one call at a time; db_query_end() resets the statement (which
 * also ends its implicit read transaction) and turns that failure into a
 * store status with an errmsg. Every function that starts a query ends it.
 * A cached statement serves one query at a time: never start a query on SQL
 * whose previous query has not ended (starting it resets that statement).
 *
 * Writes run in db_transact: a body function between BEGIN and COMMIT,
 * run again from the start when the engine asks for a retry (a
 * serialization failure or deadlock on PostgreSQL), so a body must be safe
 * to run twice: no effects outside the transaction, outputs set afresh on
 * each run and handed over only after the commit. A body runs its SQL on
 * the store it is handed, which is not always the caller's: on a SQLite
 * file, every store of the process shares one writer connection whose
 * commits carry the transactions waiting at the same moment
 * (commit_group.c).
 */
#ifndef STRATA_STORE_DB_H
#define STRATA_STORE_DB_H

#include "store/db_driver.h"
#include "store/store.h"

/* How often db_transact runs a transaction the engine asked to retry. On
 * PostgreSQL, SERIALIZABLE also reports conflicts that are not (its
 * predicate locks cover index pages, and whole tables where a plan scans
 * one): 8 runs ran out once, in one of four PostgreSQL passes of the
 * system suite (the coherence test: writers saving and publishing
 * different items at once, answered 503 database_busy). Doubled; the test
 * passed in the six runs made right after and in the next full pass. */
enum { DB_RETRY_MAX = 16 };

/* ---- errors ------------------------------------------------------------- */

void db_clear_error(store_t *st);
int db_fail(store_t *st, int status, const char *format, ...) __attribute__((format(printf, 3, 4)));

/* ---- queries ------------------------------------------------------------ */

typedef struct db_query {
    store_t *st;
    db_stmt *stmt;
    int failure;         /* the first driver status other than STORE_OK */
    const char *why;     /* the layer's own words for failure, or NULL: the driver's */
    uint64_t started_ns; /* when it started, for the observer (0: not measured) */
} db_query;

/* Takes sql's statement from the cache (preparing it on first use), reset
 * and with no bindings. */
int db_query_start(store_t *st, const char *sql, db_query *q);
/* Bind by name (":id"); a name absent from the SQL is a bug and fails the
 * query. text/blob are copied; a NULL text binds NULL. db_bind_int_at binds
 * by position: parameters are numbered from 1 in the order their names
 * first appear in the SQL, on every driver. */
void db_bind_int(db_query *q, const char *name, int64_t value);
void db_bind_int_or_null(db_query *q, const char *name, int64_t value, bool present);
void db_bind_text(db_query *q, const char *name, const char *text);
/* A double, exactly: the value a db_column_double read binds back equal. */
void db_bind_double(db_query *q, const char *name, double value);
void db_bind_blob(db_query *q, const char *name, const void *data, size_t size);
void db_bind_int_at(db_query *q, int index, int64_t value);
/* Steps: true while a row is there; false at the end or on failure. */
bool db_next_row(db_query *q);
/* Resets the statement and reports how the query went. */
int db_query_end(db_query *q, const char *doing);
/* Runs a statement that returns no rows (bind first), then ends it. */
int db_query_run(db_query *q, const char *doing);

/* Columns of the current row, 0-based; valid until the next step or end. */
const char *db_column_text(const db_query *q, int column); /* NULL for SQL NULL */
int64_t db_column_int(const db_query *q, int column);
double db_column_double(const db_query *q, int column); /* exact: not through a text */
const void *db_column_blob(const db_query *q, int column, size_t *size);
bool db_column_is_null(const db_query *q, int column);
/* Rows changed by the statement db_query_end (or db_query_run) last ended. */
int64_t db_changes(const store_t *st);

/* Several statements without parameters (migrations, test fixtures). */
int db_exec_script(store_t *st, const char *script, const char *doing);
/* sql with each of names[i] ("{table}") replaced by texts[i]; malloc'd,
 * NULL when memory is short. */
char *db_sql_filled(const char *sql, const char *const names[], const char *const texts[], size_t n);
/* The driver's text for a piece of SQL that differs (NULL: none). */
const char *db_fragment(const store_t *st, db_fragment_id id);
/* The driver of the store's connection. */
const db_driver *db_driver_of(const store_t *st);

/* ---- transactions ------------------------------------------------------- */

/* Begins a write transaction, runs body, commits when it returned
 * STORE_OK and rolls back otherwise. A DB_RETRY from any step runs the
 * whole again, up to DB_RETRY_MAX times with a short randomized pause,
 * then answers STORE_BUSY. `doing` names the transaction in errmsg.
 * Returns the final status; errmsg keeps the first failure's words. */
int db_transact(store_t *st, int (*body)(store_t *st, void *arg), void *arg, const char *doing);

/* db_transact for a write of one item. On PostgreSQL the writes of one
 * item take turns in this process first: SERIALIZABLE would otherwise
 * make them conflict and retry, and two editors saving one item with
 * If-Match: * in a loop could lose DB_RETRY_MAX times (503). On SQLite the
 * commit group already gives its one writer a turn at a time. */
int db_transact_item(store_t *st, int64_t item_id, int (*body)(store_t *st, void *arg), void *arg, const char *doing);

/* ---- tests -------------------------------------------------------------- */

/* How many cached statements exist, and how many are mid-step (which would
 * hold a read transaction open: always 0 between store calls). */
size_t db_statement_count(const store_t *st);
size_t db_statements_busy(const store_t *st);

#endif
