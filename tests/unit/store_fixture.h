/*
 * store_fixture.h — the database of the store's unit tests, on either
 * driver (included by test_store.c and test_store_jobs.c).
 *
 * With STRATA_TEST_DB_URL unset, each test gets a fresh SQLite file under
 * /tmp, removed afterwards with its -wal and -shm. With it set (a
 * postgres:// URL), each test opens that database and empties it first
 * (the public schema dropped and made again), so it starts as from a fresh
 * file. A second connection (fixture_db_int, fixture_db_exec) reads and
 * sets what the API does not show — "nothing was written" is a row count —
 * through the store's own query layer, so on either engine.
 *
 * Tests that are about SQLite itself (file paths, WAL, its lock, its SQL
 * for damaging a row) begin with FIXTURE_SQLITE_ONLY() and are skipped for
 * another URL.
 */
#ifndef STRATA_TESTS_STORE_FIXTURE_H
#define STRATA_TESTS_STORE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/item_text.h"
#include "store/store_internal.h"

enum { FIXTURE_WHERE_SIZE = 512 };

/* The URL under test, or NULL for a SQLite file per test. */
static inline const char *fixture_db_url(void)
{
    const char *url = getenv("STRATA_TEST_DB_URL");
    return url && url[0] ? url : NULL;
}

#define FIXTURE_SQLITE_ONLY()                                                                                          \
    do {                                                                                                               \
        if (fixture_db_url()) {                                                                                        \
            fprintf(stderr, "SQLite-specific by nature: skipped for STRATA_TEST_DB_URL\n");                            \
            skip();                                                                                                    \
        }                                                                                                              \
    } while (0)

static inline void fixture_db_exec(const char *where, const char *sql)
{
    store_t *st = NULL;
    if (store_open(where, &st) != STORE_OK)
        fail_msg("opening %s: %s", where, store_errmsg(NULL));
    if (db_exec_script(st, sql, "running the test's SQL") != STORE_OK)
        fail_msg("%s: %s", sql, store_errmsg(st));
    store_close(&st);
}

/* The single integer the SQL returns, read by a separate connection. */
static inline int64_t fixture_db_int(const char *where, const char *sql)
{
    store_t *st = NULL;
    if (store_open(where, &st) != STORE_OK)
        fail_msg("opening %s: %s", where, store_errmsg(NULL));
    db_query q;
    assert_int_equal(db_query_start(st, sql, &q), STORE_OK);
    bool row = db_next_row(&q);
    int64_t value = row ? db_column_int(&q, 0) : 0;
    if (db_query_end(&q, "running the test's SQL") != STORE_OK || !row)
        fail_msg("%s: %s", sql, row ? store_errmsg(st) : "no row");
    store_close(&st);
    return value;
}

/* A fresh, empty database: a new SQLite file, or the URL's emptied. */
static inline void fixture_db_create(char where[FIXTURE_WHERE_SIZE])
{
    const char *url = fixture_db_url();
    if (url) {
        snprintf(where, FIXTURE_WHERE_SIZE, "%s", url);
        fixture_db_exec(where, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
        return;
    }
    snprintf(where, FIXTURE_WHERE_SIZE, "/tmp/strata-test-store-XXXXXX");
    int fd = mkstemp(where);
    assert_true(fd >= 0);
    close(fd);
}

static inline void fixture_db_remove(const char *where)
{
    if (fixture_db_url())
        return; /* the next test empties it */
    char side[FIXTURE_WHERE_SIZE + 8];
    unlink(where);
    snprintf(side, sizeof side, "%s-wal", where);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", where);
    unlink(side);
}

/* A row's text (item_text.h) as the JSON value a client gets: the views
 * count written in where the text leaves it out. */
static inline json_t *fixture_row_json(const store_row_text *row)
{
    char views[24];
    int n = snprintf(views, sizeof views, "%lld", (long long)row->views);
    size_t at = row->views_at == STORE_TEXT_NO_VIEWS ? row->len : row->views_at;
    size_t extra = row->views_at == STORE_TEXT_NO_VIEWS ? 0 : (size_t)n;
    char *text = malloc(row->len + extra + 1);
    assert_non_null(text);
    memcpy(text, row->text, at);
    memcpy(text + at, views, extra);
    memcpy(text + at + extra, row->text + at, row->len - at);
    text[row->len + extra] = '\0';
    json_error_t error;
    json_t *value = json_loads(text, 0, &error);
    if (value == NULL)
        fail_msg("the store's text is no JSON (%s): %s", error.text, text);
    free(text);
    return value;
}

#endif
