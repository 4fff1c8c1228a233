/*
 * db_sqlite.h — what the SQLite driver (db_sqlite.c) shares with its WAL
 * checkpointer (checkpoint.c) and with the store's SQLite-only unit tests.
 */
#ifndef STRATA_STORE_DB_SQLITE_H
#define STRATA_STORE_DB_SQLITE_H

#include <sqlite3.h>

#include "store/db_driver.h"

/* The WAL hook every connection installs (sqlite3_wal_hook). */
int db_sqlite_wal_hook(void *arg, sqlite3 *db, const char *name, int pages);

/* The connection's SQLite handle (tests: pragmas, busy timeout). */
sqlite3 *db_sqlite_handle(db_conn *c);

#endif
