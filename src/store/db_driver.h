/*
 * db_driver.h — what a database engine gives the store: connections,
 * prepared statements, rows, transactions, and the few pieces of SQL that
 * differ between engines.
 *
 * The seam sits at executing SQL, not at the store_* functions (in the
 * spirit of SQLite's VFS, Varnish's stevedores or Redis's ConnectionType):
 * the domain files of src/store (items, lists, versions, autosaves,
 * previews, jobs, sites, tokens, categories) hold ONE copy of their SQL,
 * written in the dialect both engines accept, and run it through db.h;
 * db.c runs it on the driver of the store's connection. Two drivers exist:
 *
 *   db_sqlite.c    the embedded default: a file path
 *   db_postgres.c  libpq: a postgres:// or postgresql:// URL
 *
 * The SQL both accept. Parameters are named, ":name" (a driver that wants
 * "$1" rewrites the text once, at prepare); values are always bound, never
 * written into SQL. Integers are 64-bit (BIGINT), times are integer
 * milliseconds since 1970 UTC, booleans are integers 0/1, binary values
 * are blobs (bytea). Use COALESCE (not IFNULL), INSERT … ON CONFLICT …
 * DO NOTHING / DO UPDATE (not INSERT OR …), RETURNING (not
 * last_insert_rowid()), CAST(:p AS BIGINT) / CAST(:p AS TEXT) wherever a
 * parameter's type cannot be told from its context (":p IS NULL"). What
 * still differs is a fragment (db_fragment), chosen by the driver; a
 * fragment that is part of a query is written in it by name, in braces
 * ("{tags_of_item}"), and db.c puts the driver's text in its place once,
 * when the statement is prepared.
 *
 * Statuses. Every driver call that can fail returns a store_status and
 * leaves one sentence about it for errmsg: busy or locked → STORE_BUSY; a
 * unique or primary key violation → STORE_CONFLICT; a serialization
 * failure or deadlock (PostgreSQL 40001, 40P01) → DB_RETRY, which
 * db_transact answers by running the whole transaction again; the server
 * unreachable or the connection lost → STORE_UNAVAILABLE (the caller
 * answers 503 and the connection is re-established by the driver on its
 * next use); anything else → STORE_ERROR.
 *
 * A connection and its statements belong to one thread at a time; a
 * driver needs no locks of its own for them.
 */
#ifndef STRATA_STORE_DB_DRIVER_H
#define STRATA_STORE_DB_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* A transient failure only db_transact sees: run the transaction again. */
#define DB_RETRY (-100)
/* A foreign key names a row that is absent (PostgreSQL 23503): db.c
 * answers STORE_ERROR, and the domain file that knows which row it was
 * (a site, an item) says so. */
#define DB_FOREIGN_KEY (-101)

typedef struct db_conn db_conn; /* a driver's connection */
typedef struct db_stmt db_stmt; /* a driver's prepared statement, owned by its connection */

/* The pieces of SQL that differ; a driver gives each (NULL: nothing to run). */
typedef enum db_fragment_id {
    DB_SQL_MIGRATION_LOCK,   /* run first in every migration's transaction: one migrator at a time */
    DB_SQL_SCHEMA_EXISTS,    /* one row when the schema_migrations table exists */
    DB_SQL_BEGIN_SNAPSHOT,   /* a read-only transaction that sees one moment throughout (strata copy) */
    DB_SQL_IDENTITY_RESET,   /* moves table {table}'s identity key past its rows (after explicit ids); NULL: none */
    DB_SQL_TAGS_OF_ITEM,     /* the tags of item `i`, joined by ',' (any order), NULL for none: {tags_of_item} */
    DB_SQL_CATEGORY_OF_ITEM, /* item `i`'s category slug (`c`: ITEM_FROM's categories), NULL for none:
                                {category_of_item} */
    DB_SQL_SKIP_LOCKED, /* after a SELECT's LIMIT: pass over rows another writer holds ("" if none): {skip_locked} */
    /* one row, one column: a WAL position ("X/Y") at or past the end of
       every commit this connection has made (NULL: the engine has no
       replicas, hence no positions) */
    DB_SQL_COMMIT_POSITION,
    /* a custom field of column {fields} ("fields", or "i.fields" in a
       query) named {field}, typed (field_filters.c): an integer 1 or 0
       for a JSON true or false, a number for a JSON number, a text for a
       JSON string; NULL for anything else. Index and query use one text. */
    DB_SQL_FIELD_BOOL,
    DB_SQL_FIELD_NUMBER,
    DB_SQL_FIELD_TEXT,
    DB_FRAGMENTS
} db_fragment_id;

/* One numbered migration of a driver's schema: DDL only, no parameters.
 * Both drivers have the same numbers, each in its own types. */
typedef struct db_migration {
    int version;
    const char *sql;
} db_migration;

typedef struct db_driver {
    const char *name; /* "sqlite", "postgres": for logs and /metrics */
    /* Whether this driver opens `url` (db.c asks each driver in turn). */
    bool (*accepts)(const char *url);
    /* Opens a connection; on failure returns a status and writes why into
     * err (never the URL's password). Does not migrate. */
    int (*open)(const char *url, db_conn **out, char *err, size_t err_size);
    void (*close)(db_conn *c);
    /* This connection's commits no longer wait for the disk (store_relax_durability). */
    void (*relax_durability)(db_conn *c);

    /* Compiles sql once; the statement lives until finalize. */
    int (*prepare)(db_conn *c, const char *sql, db_stmt **out);
    void (*finalize)(db_stmt *s);
    /* Ends the statement's current run: result dropped, bindings cleared. */
    void (*reset)(db_stmt *s);
    /* The 1-based index of parameter ":name" (with the colon), 0 if absent. */
    int (*param_index)(db_stmt *s, const char *name);
    int (*bind_int)(db_stmt *s, int index, int64_t value);
    int (*bind_null)(db_stmt *s, int index);
    int (*bind_double)(db_stmt *s, int index, double value);                /* exactly */
    int (*bind_text)(db_stmt *s, int index, const char *text);              /* copied */
    int (*bind_blob)(db_stmt *s, int index, const void *data, size_t size); /* copied */
    /* Runs the statement on its first call after reset, then moves to the
     * next row: *row says whether one is there. */
    int (*step)(db_stmt *s, bool *row);
    /* Columns of the current row, 0-based; pointers stay valid until the
     * next step or reset. */
    bool (*column_is_null)(db_stmt *s, int column);
    int64_t (*column_int)(db_stmt *s, int column);
    double (*column_double)(db_stmt *s, int column);    /* exactly: bind_double gives it back */
    const char *(*column_text)(db_stmt *s, int column); /* NULL for SQL NULL */
    const void *(*column_blob)(db_stmt *s, int column, size_t *size);
    /* Rows changed by the statement that last ran to its end. */
    int64_t (*changes)(db_conn *c);
    /* The SQL text a statement was prepared from (metrics). */
    const char *(*sql)(db_stmt *s);
    /* Whether a statement is mid-run (a read transaction held open). */
    bool (*busy)(db_stmt *s);

    /* Several statements without parameters (migrations). */
    int (*exec)(db_conn *c, const char *script);
    /* A write transaction: on SQLite the write lock is taken up front; on
     * PostgreSQL it is SERIALIZABLE, so the domain code may read, decide
     * and write as if alone, and a conflict surfaces as DB_RETRY. */
    int (*begin)(db_conn *c);
    int (*commit)(db_conn *c);
    /* Never fails the caller: a connection that cannot roll back is dropped. */
    void (*rollback)(db_conn *c);
    /* The last failure's words. */
    const char *(*errmsg)(db_conn *c);
    /* The plan of sql as indented lines ("" if it cannot be explained). */
    void (*explain)(db_conn *c, const char *sql, char *out, size_t size);

    const char *fragments[DB_FRAGMENTS];
    /* How a range read value by value (store/lists.c) writes its SELECT
     * per value: bare, the engine merging the compound's arms in order
     * (false), or each ordered and limited to the page in a subquery, so
     * that a generic plan merges them rather than append and sort them. */
    bool by_value_limits_each_walk;
    const db_migration *migrations;
    size_t migration_count;
} db_driver;

extern const db_driver db_sqlite_driver;
extern const db_driver db_postgres_driver;

#endif
