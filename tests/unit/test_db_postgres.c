/*
 * test_db_postgres.c — the PostgreSQL driver alone (db_postgres_driver,
 * through db_driver.h), against a real server.
 *
 * STRATA_TEST_PG_URL names the database (tests/run.sh starts a throwaway
 * cluster with tests/pg_cluster.sh and sets it); without it every test is
 * skipped with a message. Tests that need a table of their own use the
 * schema unit_scratch, the migration test the schema unit_migrations (its
 * search_path); both are dropped at the end, so the database is left as
 * it was found.
 * Failures of the server are mostly played by the server itself: another
 * connection terminates ours (pg_terminate_backend) and closes the
 * database to new connections (CONNECTION LIMIT 0). One test stops and
 * starts the real server, when STRATA_TEST_PG_DIR names the cluster's
 * directory (tests/run.sh sets both variables).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/db_driver.h"

static const db_driver *const pg = &db_postgres_driver;
static const char *url;

/* ---- helpers ------------------------------------------------------------------- */

static db_conn *conn_open(void)
{
    db_conn *c = NULL;
    char err[512] = "";
    int status = pg->open(url, &c, err, sizeof err);
    if (status != STORE_OK)
        fail_msg("open: %d %s", status, err);
    return c;
}

static void exec_ok(db_conn *c, const char *sql)
{
    int status = pg->exec(c, sql);
    if (status != STORE_OK)
        fail_msg("%s: %d %s", sql, status, pg->errmsg(c));
}

static db_stmt *prepare_ok(db_conn *c, const char *sql)
{
    db_stmt *s = NULL;
    int status = pg->prepare(c, sql, &s);
    if (status != STORE_OK)
        fail_msg("prepare %s: %d %s", sql, status, pg->errmsg(c));
    return s;
}

/* The first column of the first row of sql, as an integer. */
static int64_t query_int(db_conn *c, const char *sql)
{
    db_stmt *s = prepare_ok(c, sql);
    bool row = false;
    assert_int_equal(pg->step(s, &row), STORE_OK);
    assert_true(row);
    int64_t value = pg->column_int(s, 0);
    pg->finalize(s);
    return value;
}

/* The first column of the first row of sql, as text, into out. */
static void query_text(db_conn *c, const char *sql, char *out, size_t size)
{
    db_stmt *s = prepare_ok(c, sql);
    bool row = false;
    assert_int_equal(pg->step(s, &row), STORE_OK);
    assert_true(row);
    snprintf(out, size, "%s", pg->column_text(s, 0) ? pg->column_text(s, 0) : "(null)");
    pg->finalize(s);
}

/* Runs s once from the start; returns the status; *row whether a row came. */
static int run_once(db_stmt *s, bool *row)
{
    pg->reset(s);
    return pg->step(s, row);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Ends the session of `victim` from `killer` and waits until it is gone. */
static void terminate(db_conn *killer, db_conn *victim)
{
    int64_t pid = query_int(victim, "SELECT pg_backend_pid()");
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT CAST(pg_terminate_backend(%lld, 5000) AS INT)", (long long)pid);
    assert_int_equal(query_int(killer, sql), 1);
}

static void scratch(db_conn *c, const char *table_sql)
{
    exec_ok(c, "CREATE SCHEMA IF NOT EXISTS unit_scratch");
    exec_ok(c, table_sql);
}

/* ---- values ------------------------------------------------------------------------ */

static void test_integers_nulls_and_text_round_trip(void **state)
{
    (void)state;
    db_conn *c = conn_open();
    db_stmt *s = prepare_ok(c, "SELECT CAST(:big AS BIGINT), CAST(:small AS BIGINT), CAST(:none AS TEXT),"
                               " CAST(:text AS TEXT), octet_length(CAST(:text AS TEXT)), CAST(:big AS BIGINT) > 0");
    const char *text = "it's \"quoted\" 'twice'; \\ back-slash, ünïcødé, 日本語, 🎉";
    assert_int_equal(pg->bind_int(s, pg->param_index(s, ":big"), INT64_MAX), STORE_OK);
    assert_int_equal(pg->bind_int(s, pg->param_index(s, ":small"), INT64_MIN), STORE_OK);
    assert_int_equal(pg->bind_null(s, pg->param_index(s, ":none")), STORE_OK);
    assert_int_equal(pg->bind_text(s, pg->param_index(s, ":text"), text), STORE_OK);
    bool row = false;
    assert_int_equal(pg->step(s, &row), STORE_OK);
    assert_true(row);
    assert_true(pg->busy(s));
    assert_int_equal(pg->column_int(s, 0), INT64_MAX);
    assert_int_equal(pg->column_int(s, 1), INT64_MIN);
    assert_true(pg->column_is_null(s, 2));
    assert_null(pg->column_text(s, 2));
    assert_false(pg->column_is_null(s, 3));
    assert_string_equal(pg->column_text(s, 3), text);
    assert_int_equal(pg->column_int(s, 4), (int64_t)strlen(text));
    assert_int_equal(pg->column_int(s, 5), 1); /* a boolean reads as 0/1 */
    assert_true(pg->column_is_null(s, 6));     /* no such column */
    assert_int_equal(pg->step(s, &row), STORE_OK);
    assert_false(row);
    assert_false(pg->busy(s));

    /* reset clears the bindings: an unbound parameter is NULL */
    pg->reset(s);
    assert_int_equal(pg->step(s, &row), STORE_OK);
    assert_true(row);
    assert_true(pg->column_is_null(s, 0));
    assert_int_equal(pg->bind_int(s, 7, 1), STORE_ERROR); /* no parameter 7 */
    pg->close(c);                                         /* frees the statement it still owns */
}

static void test_blobs_keep_every_byte(void **state)
{
    (void)state;
    db_conn *c = conn_open();
    exec_ok(c, "CREATE TEMP TABLE blobs(id BIGINT PRIMARY KEY, data BYTEA)");
    unsigned char all[512];
    for (int i = 0; i < 512; i++)
        all[i] = (unsigned char)(i < 256 ? i : 511 - i); /* 0..255, then 255..0 */
    const unsigned char zeros[5] = {0, 0, 'x', 0, 0};

    db_stmt *insert = prepare_ok(c, "INSERT INTO blobs(id, data) VALUES (:id, :data)");
    const struct {
        const void *data;
        size_t size;
    } cases[] = {{all, sizeof all}, {zeros, sizeof zeros}, {"", 0}};
    for (int i = 0; i < 3; i++) {
        bool row = true;
        pg->reset(insert);
        pg->bind_int(insert, pg->param_index(insert, ":id"), i);
        pg->bind_blob(insert, pg->param_index(insert, ":data"), cases[i].data, cases[i].size);
        assert_int_equal(pg->step(insert, &row), STORE_OK);
        assert_false(row);
    }
    db_stmt *select = prepare_ok(c, "SELECT data, octet_length(data), data IS NULL FROM blobs ORDER BY id");
    bool row = false;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pg->step(select, &row), STORE_OK);
        assert_true(row);
        size_t size = 99;
        const void *data = pg->column_blob(select, 0, &size);
        assert_non_null(data); /* an empty blob is not NULL */
        assert_int_equal(size, cases[i].size);
        if (size)
            assert_memory_equal(data, cases[i].data, size);
        assert_int_equal(pg->column_int(select, 1), (int64_t)cases[i].size); /* the server saw the bytes */
        assert_int_equal(pg->column_int(select, 2), 0);
        assert_ptr_equal(pg->column_blob(select, 0, &size), data); /* decoded once per row */
    }
    assert_int_equal(pg->step(select, &row), STORE_OK);
    assert_false(row);
    pg->finalize(insert);
    pg->finalize(select);
    pg->close(c);
}

/* ---- statements ------------------------------------------------------------------------ */

static void test_named_parameters_are_rewritten_once(void **state)
{
    (void)state;
    db_conn *c = conn_open();
    const char *sql = "SELECT CAST(:a AS BIGINT) + CAST(:g AS BIGINT) AS \"sum:x\", -- :e is a comment\n"
                      " ':b' AS lit, 'it''s :c' AS quoted, /* :f */ '5'::bigint + CAST(:a AS BIGINT) AS cast,"
                      " CAST(:_g2 AS TEXT), \"sum:x\" FROM (SELECT 1 AS \"sum:x\") AS t";
    db_stmt *s = prepare_ok(c, sql);
    assert_string_equal(pg->sql(s), sql);
    assert_int_equal(pg->param_index(s, ":a"), 1);
    assert_int_equal(pg->param_index(s, ":g"), 2);
    assert_int_equal(pg->param_index(s, ":_g2"), 3);
    const char *absent[] = {":b", ":c", ":e", ":f", ":x", ":bigint", "a", ":"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        assert_int_equal(pg->param_index(s, absent[i]), 0);
    pg->bind_int(s, 1, 20);
    pg->bind_int(s, 2, 22);
    pg->bind_text(s, 3, "three");
    bool row = false;
    assert_int_equal(pg->step(s, &row), STORE_OK);
    assert_true(row);
    assert_int_equal(pg->column_int(s, 0), 42);
    assert_string_equal(pg->column_text(s, 1), ":b");
    assert_string_equal(pg->column_text(s, 2), "it's :c");
    assert_int_equal(pg->column_int(s, 3), 25);
    assert_string_equal(pg->column_text(s, 4), "three");
    assert_int_equal(pg->column_int(s, 5), 1);
    pg->finalize(s);

    /* a statement that does not compile is an error at prepare, with PostgreSQL's words */
    db_stmt *bad = NULL;
    assert_int_equal(pg->prepare(c, "SELECT FROM WHERE :x", &bad), STORE_ERROR);
    assert_null(bad);
    assert_non_null(strstr(pg->errmsg(c), "syntax error"));
    pg->close(c);
}

static void test_finalize_drops_the_server_copy(void **state)
{
    (void)state;
    db_conn *c = conn_open();
    int64_t before = query_int(c, "SELECT count(*) FROM pg_prepared_statements");
    db_stmt *s = prepare_ok(c, "SELECT 1");
    assert_int_equal(query_int(c, "SELECT count(*) FROM pg_prepared_statements"), before + 1);
    pg->finalize(s);
    assert_int_equal(query_int(c, "SELECT count(*) FROM pg_prepared_statements"), before);
    pg->close(c);
}

static void test_changes_count_the_last_write(void **state)
{
    (void)state;
    db_conn *c = conn_open();
    exec_ok(c, "CREATE TEMP TABLE counted(n BIGINT)");
    db_stmt *insert = prepare_ok(c, "INSERT INTO counted SELECT generate_series(1, CAST(:n AS BIGINT))");
    db_stmt *update = prepare_ok(c, "UPDATE counted SET n = n + 100 WHERE n <= :upto");
    db_stmt *select = prepare_ok(c, "SELECT n FROM counted");
    db_stmt *remove = prepare_ok(c, "DELETE FROM counted WHERE n < 0 RETURNING n");
    bool row = false;
    pg->bind_int(insert, 1, 3);
    assert_int_equal(pg->step(insert, &row), STORE_OK);
    assert_int_equal(pg->changes(c), 3);
    pg->bind_int(update, 1, 2);
    assert_int_equal(pg->step(update, &row), STORE_OK);
    assert_int_equal(pg->changes(c), 2);
    assert_int_equal(pg->step(select, &row), STORE_OK); /* a read leaves the count alone */
    assert_true(row);
    assert_int_equal(pg->changes(c), 2);
    assert_int_equal(pg->step(remove, &row), STORE_OK);
    assert_false(row);
    assert_int_equal(pg->changes(c), 0);
    pg->close(c);
}

/* ---- statuses ---------------------------------------------------------------------------- */

static void test_a_unique_violation_is_a_conflict(void **state)
{
    (void)state;
    db_conn *c = conn_open();
    exec_ok(c, "CREATE TEMP TABLE slugs(slug TEXT PRIMARY KEY)");
    db_stmt *s = prepare_ok(c, "INSERT INTO slugs VALUES (:slug)");
    bool row = false;
    pg->bind_text(s, 1, "hello");
    assert_int_equal(pg->step(s, &row), STORE_OK);
    pg->reset(s);
    pg->bind_text(s, 1, "hello");
    assert_int_equal(pg->step(s, &row), STORE_CONFLICT);
    assert_non_null(strstr(pg->errmsg(c), "duplicate key"));

    /* in a transaction the failure dooms it: COMMIT must not report success */
    assert_int_equal(pg->begin(c), STORE_OK);
    pg->reset(s);
    pg->bind_text(s, 1, "other");
    assert_int_equal(pg->step(s, &row), STORE_OK);
    pg->reset(s);
    pg->bind_text(s, 1, "hello");
    assert_int_equal(pg->step(s, &row), STORE_CONFLICT);
    assert_int_equal(pg->commit(c), STORE_ERROR);
    assert_int_equal(query_int(c, "SELECT count(*) FROM slugs"), 1); /* "other" was rolled back */
    pg->close(c);
}

static void test_values_postgresql_cannot_hold_are_invalid(void **state)
{
    (void)state;
    db_conn *c = conn_open();
    db_stmt *s = prepare_ok(c, "SELECT CAST(:text AS TEXT), CAST(CAST(:json AS TEXT) AS JSONB)");
    bool row = false;
    pg->bind_text(s, 1, "caf\xe9"); /* Latin-1, not UTF-8 */
    pg->bind_text(s, 2, "{}");
    assert_int_equal(pg->step(s, &row), STORE_INVALID);
    assert_non_null(strstr(pg->errmsg(c), "UTF8"));
    pg->reset(s);
    pg->bind_text(s, 1, "caf\xc3\xa9");
    pg->bind_text(s, 2, "{\"a\":\"x\\u0000y\"}"); /* jansson writes NUL so; jsonb refuses it */
    assert_int_equal(pg->step(s, &row), STORE_INVALID);
    pg->reset(s);
    pg->bind_text(s, 1, "caf\xc3\xa9");
    pg->bind_text(s, 2, "{\"b\":1,\"a\":[1.50,2]}");
    assert_int_equal(pg->step(s, &row), STORE_OK);
    assert_string_equal(pg->column_text(s, 0), "caf\xc3\xa9");
    assert_string_equal(pg->column_text(s, 1), "{\"a\": [1.50, 2], \"b\": 1}"); /* jsonb's own spelling */
    pg->close(c);
}

static void test_serializable_writers_of_one_row_retry(void **state)
{
    (void)state;
    db_conn *a = conn_open(), *b = conn_open();
    scratch(a, "DROP TABLE IF EXISTS unit_scratch.counter;"
               "CREATE TABLE unit_scratch.counter(id BIGINT PRIMARY KEY, n BIGINT NOT NULL);"
               "INSERT INTO unit_scratch.counter VALUES (1, 0)");
    db_stmt *read_a = prepare_ok(a, "SELECT n FROM unit_scratch.counter WHERE id = 1");
    db_stmt *read_b = prepare_ok(b, "SELECT n FROM unit_scratch.counter WHERE id = 1");
    db_stmt *bump_a = prepare_ok(a, "UPDATE unit_scratch.counter SET n = n + 1 WHERE id = 1");
    db_stmt *bump_b = prepare_ok(b, "UPDATE unit_scratch.counter SET n = n + 1 WHERE id = 1");
    bool row = false;
    assert_int_equal(pg->begin(a), STORE_OK);
    assert_int_equal(pg->begin(b), STORE_OK);
    assert_int_equal(run_once(read_a, &row), STORE_OK);
    assert_int_equal(run_once(read_b, &row), STORE_OK); /* b's snapshot predates a's write */
    assert_int_equal(run_once(bump_a, &row), STORE_OK);
    assert_int_equal(pg->commit(a), STORE_OK);
    assert_int_equal(run_once(bump_b, &row), DB_RETRY);
    assert_non_null(strstr(pg->errmsg(b), "serialize"));
    pg->rollback(b);
    assert_int_equal(query_int(b, "SELECT n FROM unit_scratch.counter WHERE id = 1"), 1);

    /* write skew: each reads what the other writes; the second COMMIT fails */
    db_stmt *sum_a = prepare_ok(a, "SELECT sum(n) FROM unit_scratch.counter");
    db_stmt *sum_b = prepare_ok(b, "SELECT sum(n) FROM unit_scratch.counter");
    db_stmt *add_a = prepare_ok(a, "INSERT INTO unit_scratch.counter VALUES (2, 1)");
    db_stmt *add_b = prepare_ok(b, "INSERT INTO unit_scratch.counter VALUES (3, 1)");
    assert_int_equal(pg->begin(a), STORE_OK);
    assert_int_equal(pg->begin(b), STORE_OK);
    assert_int_equal(run_once(sum_a, &row), STORE_OK);
    assert_int_equal(run_once(sum_b, &row), STORE_OK);
    assert_int_equal(run_once(add_a, &row), STORE_OK);
    assert_int_equal(run_once(add_b, &row), STORE_OK);
    assert_int_equal(pg->commit(a), STORE_OK);
    assert_int_equal(pg->commit(b), DB_RETRY);
    pg->rollback(b); /* after a failed COMMIT there is nothing to roll back: harmless */
    assert_int_equal(query_int(b, "SELECT count(*) FROM unit_scratch.counter"), 2);
    pg->close(a);
    pg->close(b);
}

static void test_lock_and_statement_timeouts_are_busy(void **state)
{
    (void)state;
    db_conn *a = conn_open(), *b = conn_open();
    scratch(a, "DROP TABLE IF EXISTS unit_scratch.locked;"
               "CREATE TABLE unit_scratch.locked(id BIGINT PRIMARY KEY);"
               "INSERT INTO unit_scratch.locked VALUES (1)");
    assert_int_equal(pg->begin(a), STORE_OK);
    exec_ok(a, "UPDATE unit_scratch.locked SET id = 1");
    db_stmt *s = prepare_ok(b, "SELECT id FROM unit_scratch.locked FOR UPDATE NOWAIT");
    bool row = false;
    assert_int_equal(pg->step(s, &row), STORE_BUSY);
    pg->rollback(a);
    assert_int_equal(run_once(s, &row), STORE_OK);
    assert_true(row);

    char setting[64];
    query_text(b, "SHOW statement_timeout", setting, sizeof setting);
    assert_string_equal(setting, "30s");
    exec_ok(b, "SET statement_timeout = 100");
    db_stmt *slow = prepare_ok(b, "SELECT pg_sleep(2)");
    assert_int_equal(pg->step(slow, &row), STORE_BUSY);
    assert_non_null(strstr(pg->errmsg(b), "statement timeout"));
    pg->close(a);
    pg->close(b);
}

static void test_sessions_are_utc_named_and_may_relax_durability(void **state)
{
    (void)state;
    db_conn *b = conn_open();
    /* new sessions commit synchronously whatever the test cluster's default */
    exec_ok(b, "ALTER ROLE CURRENT_USER SET synchronous_commit = on");
    db_conn *a = conn_open();
    char value[64];
    query_text(a, "SHOW TimeZone", value, sizeof value);
    assert_string_equal(value, "UTC");
    query_text(a, "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()", value, sizeof value);
    assert_string_equal(value, "strata");
    query_text(a, "SHOW synchronous_commit", value, sizeof value);
    assert_string_equal(value, "on");
    pg->relax_durability(a);
    query_text(a, "SHOW synchronous_commit", value, sizeof value);
    assert_string_equal(value, "off");

    terminate(b, a); /* and the setting outlives a reconnect */
    db_stmt *s = NULL;
    assert_int_equal(pg->prepare(a, "SELECT 1", &s), STORE_UNAVAILABLE);
    assert_null(s);
    query_text(a, "SHOW synchronous_commit", value, sizeof value);
    assert_string_equal(value, "off");
    exec_ok(b, "ALTER ROLE CURRENT_USER RESET synchronous_commit");
    pg->close(a);
    pg->close(b);
}

/* ---- losing the server ---------------------------------------------------------------- */

static void test_a_lost_connection_comes_back_with_its_statements(void **state)
{
    (void)state;
    db_conn *a = conn_open(), *b = conn_open();
    db_stmt *pid = prepare_ok(a, "SELECT pg_backend_pid()");
    db_stmt *echo = prepare_ok(a, "SELECT CAST(:v AS TEXT)");
    bool row = false;
    assert_int_equal(pg->step(pid, &row), STORE_OK);
    int64_t first = pg->column_int(pid, 0);

    terminate(b, a);
    assert_int_equal(run_once(pid, &row), STORE_UNAVAILABLE);
    assert_non_null(strstr(pg->errmsg(a), "lost the connection to PostgreSQL at 127.0.0.1:"));
    /* the next use reconnects and prepares both statements again */
    assert_int_equal(run_once(pid, &row), STORE_OK);
    assert_true(row);
    assert_true(pg->column_int(pid, 0) != first);
    pg->reset(echo);
    pg->bind_text(echo, 1, "again");
    assert_int_equal(pg->step(echo, &row), STORE_OK);
    assert_string_equal(pg->column_text(echo, 0), "again");
    pg->close(a);
    pg->close(b);
}

static void test_a_transaction_cut_short_is_never_continued(void **state)
{
    (void)state;
    db_conn *a = conn_open(), *b = conn_open();
    db_stmt *s = prepare_ok(a, "SELECT 1");
    bool row = false;
    assert_int_equal(pg->begin(a), STORE_OK);
    assert_int_equal(run_once(s, &row), STORE_OK);
    terminate(b, a);
    assert_int_equal(run_once(s, &row), STORE_UNAVAILABLE);
    assert_int_equal(run_once(s, &row), STORE_UNAVAILABLE); /* no new session inside the transaction */
    assert_non_null(strstr(pg->errmsg(a), "inside a transaction"));
    assert_int_equal(pg->commit(a), STORE_UNAVAILABLE);
    assert_non_null(strstr(pg->errmsg(a), "not committed"));
    pg->rollback(a);
    assert_int_equal(run_once(s, &row), STORE_OK);
    assert_true(row);
    pg->close(a);
    pg->close(b);
}

/* Runs ALTER DATABASE … CONNECTION LIMIT n on the current database. */
static void connection_limit(db_conn *c, int n)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "DO $$ BEGIN EXECUTE format('ALTER DATABASE %%I CONNECTION LIMIT %d', current_database()); END $$", n);
    exec_ok(c, sql);
}

/* The connection that closes the database, kept by the fixture so that
 * teardown opens it again even when the test fails half-way. */
static int gatekeeper_setup(void **state)
{
    *state = conn_open();
    return 0;
}

static int gatekeeper_teardown(void **state)
{
    connection_limit(*state, -1);
    pg->close(*state);
    return 0;
}

static void test_reconnects_back_off_while_the_server_refuses(void **state)
{
    db_conn *b = *state;
    db_conn *a = conn_open();
    db_stmt *s = prepare_ok(a, "SELECT 1");
    bool row = false;
    connection_limit(b, 0);
    terminate(b, a);
    assert_int_equal(run_once(s, &row), STORE_UNAVAILABLE); /* found lost */
    assert_int_equal(run_once(s, &row), STORE_UNAVAILABLE); /* one attempt, refused */
    assert_non_null(strstr(pg->errmsg(a), "cannot connect to PostgreSQL at 127.0.0.1:"));
    int64_t start = now_ms();
    for (int i = 0; i < 100; i++) /* inside the backoff: no attempt, an answer at once */
        assert_int_equal(run_once(s, &row), STORE_UNAVAILABLE);
    assert_true(now_ms() - start < 200);
    assert_non_null(strstr(pg->errmsg(a), "next attempt"));
    connection_limit(b, -1);
    int64_t deadline = now_ms() + 5000;
    int status;
    while ((status = run_once(s, &row)) == STORE_UNAVAILABLE && now_ms() < deadline)
        usleep(20000);
    assert_int_equal(status, STORE_OK);
    assert_true(row);
    assert_true(now_ms() - start >= 200); /* the first backoff is 250 ms */
    pg->close(a);
}

/* Runs `tests/pg_cluster.sh COMMAND $STRATA_TEST_PG_DIR` (the cluster's
 * directory, which tests/run.sh also exports). */
static void cluster(const char *command)
{
    char line[512];
    snprintf(line, sizeof line, "tests/pg_cluster.sh %s '%s' >/dev/null", command, getenv("STRATA_TEST_PG_DIR"));
    if (system(line) != 0)
        fail_msg("%s failed", line);
}

static void test_the_server_stopped_and_started_again(void **state)
{
    (void)state;
    if (!getenv("STRATA_TEST_PG_DIR"))
        skip(); /* only with a cluster of the test's own to stop */
    db_conn *a = conn_open();
    db_stmt *s = prepare_ok(a, "SELECT CAST(:v AS BIGINT) * 2");
    bool row = false;
    pg->bind_int(s, 1, 21);
    assert_int_equal(pg->step(s, &row), STORE_OK);

    cluster("stop-server");
    int64_t start = now_ms();
    for (int i = 0; i < 20; i++) { /* refused, then backing off: never a wait */
        pg->reset(s);
        pg->bind_int(s, 1, 21);
        assert_int_equal(pg->step(s, &row), STORE_UNAVAILABLE);
    }
    assert_true(now_ms() - start < 1000);
    assert_non_null(strstr(pg->errmsg(a), "127.0.0.1:"));

    cluster("start-server");
    int64_t deadline = now_ms() + 10000;
    int status;
    do {
        usleep(50000);
        pg->reset(s);
        pg->bind_int(s, 1, 21);
        status = pg->step(s, &row);
    } while (status == STORE_UNAVAILABLE && now_ms() < deadline);
    assert_int_equal(status, STORE_OK);
    assert_true(row);
    assert_int_equal(pg->column_int(s, 0), 42);
    pg->close(a);
}

static void test_open_failures_never_show_the_password(void **state)
{
    (void)state;
    const char *at = strrchr(url, '@');
    assert_non_null(at);
    char bad[512], err[512];
    db_conn *c = NULL;

    snprintf(bad, sizeof bad, "postgresql://strata:Wrong-Secret-9f2c%s", at);
    assert_int_equal(pg->open(bad, &c, err, sizeof err), STORE_UNAVAILABLE);
    assert_null(c);
    assert_null(strstr(err, "Wrong-Secret-9f2c"));
    assert_non_null(strstr(err, "127.0.0.1"));
    assert_non_null(strstr(err, "password authentication failed"));

    snprintf(bad, sizeof bad, "postgresql://strata:Sec%%zzret-77%s", at); /* not valid percent-encoding */
    assert_int_equal(pg->open(bad, &c, err, sizeof err), STORE_ERROR);
    assert_null(strstr(err, "Sec%zzret-77"));
    assert_non_null(strstr(err, "not valid"));
    /* a '/' in the password ends libpq's authority early: parts of it are in no message either */
    snprintf(bad, sizeof bad, "postgresql://strata:Sl/ash-Secret-4]%s", at);
    assert_int_equal(pg->open(bad, &c, err, sizeof err), STORE_ERROR);
    assert_null(strstr(err, "Sl"));
    assert_null(strstr(err, "ash-Secret"));
    snprintf(bad, sizeof bad, "postgresql://strata:At@Secret-3%s", at); /* libpq splits at the first '@' */
    assert_int_equal(pg->open(bad, &c, err, sizeof err), STORE_ERROR);
    assert_null(strstr(err, "Secret-3"));
    assert_non_null(strstr(err, "percent-encoded"));

    snprintf(bad, sizeof bad, "postgres://127.0.0.1:1/strata?password=Query-Secret-5&connect_timeout=2");
    int64_t start = now_ms();
    assert_int_equal(pg->open(bad, &c, err, sizeof err), STORE_UNAVAILABLE);
    assert_true(now_ms() - start < 3000);
    assert_null(strstr(err, "Query-Secret-5"));
    assert_non_null(strstr(err, "127.0.0.1:1/strata"));

    assert_true(pg->accepts("postgres://h/db"));
    assert_true(pg->accepts("postgresql://h/db"));
    assert_false(pg->accepts("data/strata.db"));
    assert_false(pg->accepts("postgresx://h/db"));
    assert_false(pg->accepts("file:postgres://"));
}

/* ---- the schema ----------------------------------------------------------------------- */

static const char *const tables[] = {
    "meta",         "sites",     "tokens",   "categories", "items",        "item_tags",         "versions",
    "publications", "autosaves", "previews", "jobs",       "views_hourly", "schema_migrations", "item_schedules"};

/* schema.c's indexes, every one (jobs_by_run_at is dropped by migration 2). */
static const char *const indexes[] = {"tokens_by_site",
                                      "categories_by_parent",
                                      "items_by_published",
                                      "items_by_type_published",
                                      "items_by_category_published",
                                      "items_by_updated",
                                      "items_by_title",
                                      "items_by_category",
                                      "item_tags_by_tag",
                                      "item_tags_by_tag_updated",
                                      "item_tags_by_tag_title",
                                      "publications_by_item",
                                      "previews_by_item",
                                      "previews_by_site",
                                      "views_hourly_by_site_hour",
                                      "jobs_by_unique_key",
                                      "jobs_due",
                                      "autosaves_by_saved_at",
                                      "versions_by_created",
                                      "versions_by_base"};

static void migrate(db_conn *c, db_conn *watcher)
{
    exec_ok(c, "CREATE TABLE IF NOT EXISTS schema_migrations(version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)");
    db_stmt *record = prepare_ok(c, "INSERT INTO schema_migrations(version, applied_at) VALUES (:v, :now)");
    for (size_t i = 0; i < pg->migration_count; i++) {
        assert_int_equal(pg->migrations[i].version, (int)i + 1);
        assert_int_equal(pg->begin(c), STORE_OK);
        exec_ok(c, pg->fragments[DB_SQL_MIGRATION_LOCK]);
        /* another session sees the advisory lock held until COMMIT */
        assert_int_equal(query_int(watcher, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"),
                         1);
        exec_ok(c, pg->migrations[i].sql);
        bool row = false;
        pg->reset(record);
        pg->bind_int(record, 1, pg->migrations[i].version);
        pg->bind_int(record, 2, 1790035200000LL);
        assert_int_equal(pg->step(record, &row), STORE_OK);
        assert_int_equal(pg->commit(c), STORE_OK);
        assert_int_equal(query_int(watcher, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), 0);
    }
    pg->finalize(record);
}

static void assert_schema(db_conn *c)
{
    char sql[256], value[256];
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '%s'", tables[i]);
        if (query_int(c, sql) != 1)
            fail_msg("table %s is missing", tables[i]);
    }
    for (size_t i = 0; i < sizeof indexes / sizeof indexes[0]; i++) {
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = '%s'",
                 indexes[i]);
        if (query_int(c, sql) != 1)
            fail_msg("index %s is missing", indexes[i]);
    }
    assert_int_equal(
        query_int(
            c, "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'jobs_by_run_at'"),
        0);
    query_text(c, "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'jobs_due'",
               value, sizeof value);
    assert_non_null(strstr(value, "WHERE (failed_at IS NULL)"));
    query_text(
        c, "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'items_by_published'",
        value, sizeof value);
    assert_non_null(strstr(value, "published_at DESC, id DESC"));
    const char *const types[][3] = {{"items", "fields", "json"},    {"versions", "data", "bytea"},
                                    {"versions", "base", "bigint"}, {"items", "created_at", "bigint"},
                                    {"autosaves", "data", "bytea"}, {"meta", "value", "bytea"},
                                    {"jobs", "payload", "text"},    {"previews", "created_by", "text"}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        snprintf(sql, sizeof sql,
                 "SELECT data_type FROM information_schema.columns WHERE table_schema = current_schema() AND "
                 "table_name = '%s'"
                 " AND column_name = '%s'",
                 types[i][0], types[i][1]);
        query_text(c, sql, value, sizeof value);
        assert_string_equal(value, types[i][2]);
    }
    query_text(c,
               "SELECT is_identity FROM information_schema.columns WHERE table_schema = current_schema()"
               " AND table_name = 'items' AND column_name = 'id'",
               value, sizeof value);
    assert_string_equal(value, "YES");
}

/* Deleting a site removes its items and their versions (ON DELETE CASCADE). */
static void assert_cascade(db_conn *c)
{
    exec_ok(c, "INSERT INTO sites(name, created_at) VALUES ('s', 0);"
               "INSERT INTO items(site_id, type, slug, title, author, created_at, updated_at, draft_version)"
               "  SELECT id, 'post', 'p', 'T', 'a', 0, 0, 1 FROM sites;"
               "INSERT INTO versions(item_id, number, kind, author, created_at, size, hash, data)"
               "  SELECT id, 1, 'draft', 'a', 0, 2, '\\x00', '\\x7b7d' FROM items;"
               "DELETE FROM sites");
    assert_int_equal(query_int(c, "SELECT count(*) FROM versions"), 0);
}

/* Version 3's columns follow what they mirror: items.tags the item's rows
 * of item_tags (as {tags_of_item} reads them: joined by ','), items.category
 * the slug of its category_id, through every way the store changes them. */
static void assert_item_columns_kept(db_conn *c)
{
    const char *kept = "SELECT count(*) FROM items i WHERE"
                       " (SELECT string_agg(x, ',' ORDER BY x) FROM unnest(string_to_array(i.tags, ',')) x)"
                       " IS NOT DISTINCT FROM"
                       " (SELECT string_agg(t.tag, ',' ORDER BY t.tag) FROM item_tags t WHERE t.item_id = i.id)"
                       " AND i.category IS NOT DISTINCT FROM (SELECT slug FROM categories WHERE id = i.category_id)";
    exec_ok(c, "INSERT INTO sites(name, created_at) VALUES ('k', 0);"
               "INSERT INTO categories(site_id, slug, name) SELECT id, 'news', 'News' FROM sites;"
               "INSERT INTO categories(site_id, slug, name) SELECT id, 'sport', 'Sport' FROM sites;"
               "INSERT INTO items(site_id, type, slug, title, author, created_at, updated_at, draft_version,"
               "                  category_id)"
               "  SELECT s.id, 'post', 'p' || n, 'T', 'a', 0, 0, 1, c.id FROM sites s, categories c,"
               "         generate_series(1, 2) n WHERE c.slug = 'news';"
               "INSERT INTO item_tags(site_id, item_id, tag, status) SELECT site_id, id, 'b', 'draft' FROM items;");
    assert_int_equal(query_int(c, "SELECT count(*) FROM items WHERE tags = 'b' AND category = 'news'"), 2);
    exec_ok(c, "INSERT INTO item_tags(site_id, item_id, tag, status) SELECT site_id, id, 'a', 'draft' FROM items"
               "  WHERE slug = 'p1'");
    assert_int_equal(query_int(c, kept), 2);
    exec_ok(c, "DELETE FROM item_tags WHERE tag = 'b'");
    assert_int_equal(query_int(c, "SELECT count(*) FROM items WHERE tags IS NULL"), 1);
    assert_int_equal(query_int(c, kept), 2);
    exec_ok(c, "UPDATE items SET category_id = (SELECT id FROM categories WHERE slug = 'sport') WHERE slug = 'p1';"
               "UPDATE items SET category_id = NULL WHERE slug = 'p2'");
    assert_int_equal(query_int(c, "SELECT count(*) FROM items WHERE category = 'sport'"), 1);
    assert_int_equal(query_int(c, kept), 2);
    exec_ok(c, "DELETE FROM sites");
}

/* The second migrator: waits for the lock, then reads what the first wrote. */
typedef struct migrator {
    db_conn *c;
    int64_t seen; /* rows of schema_migrations it saw after the lock */
    int status;
} migrator;

static void *migrator_run(void *arg)
{
    migrator *m = arg;
    db_stmt *s = NULL;
    m->status = pg->prepare(m->c, "SELECT count(*) FROM unit_scratch.applied", &s);
    bool row = false;
    if (m->status == STORE_OK)
        m->status = pg->begin(m->c);
    if (m->status == STORE_OK)
        m->status = pg->exec(m->c, pg->fragments[DB_SQL_MIGRATION_LOCK]);
    if (m->status == STORE_OK)
        m->status = pg->step(s, &row);
    m->seen = row ? pg->column_int(s, 0) : -1;
    pg->rollback(m->c);
    pg->finalize(s);
    return NULL;
}

static void test_a_second_migrator_sees_what_the_first_applied(void **state)
{
    (void)state;
    db_conn *a = conn_open();
    migrator second = {.c = conn_open()};
    scratch(a, "DROP TABLE IF EXISTS unit_scratch.applied; CREATE TABLE unit_scratch.applied(version BIGINT)");
    assert_int_equal(pg->begin(a), STORE_OK);
    exec_ok(a, pg->fragments[DB_SQL_MIGRATION_LOCK]);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, migrator_run, &second), 0);
    /* the second waits for the lock, its transaction begun before the first commits */
    int64_t deadline = now_ms() + 5000;
    while (query_int(a, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted") == 0 &&
           now_ms() < deadline)
        usleep(10000);
    exec_ok(a, "INSERT INTO unit_scratch.applied VALUES (1)");
    assert_int_equal(pg->commit(a), STORE_OK);
    pthread_join(thread, NULL);
    assert_int_equal(second.status, STORE_OK);
    assert_int_equal(second.seen, 1); /* a snapshot from before the wait would see 0 and migrate again */
    pg->close(a);
    pg->close(second.c);
}

static void test_migrations_build_the_whole_schema(void **state)
{
    (void)state;
    db_conn *c = conn_open(), *watcher = conn_open();
    exec_ok(c, "DROP SCHEMA IF EXISTS unit_migrations CASCADE; CREATE SCHEMA unit_migrations;"
               "SET search_path = unit_migrations");
    db_stmt *exists = prepare_ok(c, pg->fragments[DB_SQL_SCHEMA_EXISTS]);
    bool row = true;
    assert_int_equal(pg->step(exists, &row), STORE_OK);
    assert_false(row);
    migrate(c, watcher);
    assert_int_equal(run_once(exists, &row), STORE_OK);
    assert_true(row);
    assert_int_equal(query_int(c, "SELECT string_agg(CAST(version AS TEXT), '' ORDER BY version) = '12345678'"
                                  " FROM schema_migrations"),
                     1);
    assert_schema(c);
    assert_cascade(c);
    assert_item_columns_kept(c);

    char plan[4096];
    pg->explain(c,
                "SELECT id FROM items WHERE site_id = :site AND status = :status"
                " ORDER BY published_at DESC, id DESC LIMIT :limit",
                plan, sizeof plan);
    assert_non_null(strstr(plan, "items_by_published"));
    pg->explain(c, "SELECT item_id FROM item_tags WHERE site_id = :site AND tag = :tag AND status = 'published'", plan,
                sizeof plan);
    assert_non_null(strstr(plan, "item_tags_by_tag"));
    pg->explain(c, "SELECT id FROM items WHERE author = :author", plan, sizeof plan); /* no index on author */
    assert_non_null(strstr(plan, "Seq Scan on items"));
    char setting[64]; /* the planner settings explain changed are back */
    query_text(c, "SELECT current_setting('enable_seqscan') || current_setting('plan_cache_mode')", setting,
               sizeof setting);
    assert_string_equal(setting, "onforce_generic_plan"); /* the session's own (db_postgres.c) */
    pg->explain(c, "SELECT FROM nowhere", plan, sizeof plan);
    assert_string_equal(plan, "");

    /* explained inside a transaction (a slow query), even in vain, the transaction lives on */
    const char *statements = "SELECT count(*) FROM pg_prepared_statements";
    int64_t before = query_int(c, statements);
    assert_int_equal(pg->begin(c), STORE_OK);
    exec_ok(c, "INSERT INTO sites(name, created_at) VALUES ('kept', 0)");
    pg->explain(c, "SELECT FROM nowhere", plan, sizeof plan);
    pg->explain(c, "SELECT id FROM sites WHERE name = :name", plan, sizeof plan);
    assert_non_null(strstr(plan, "sites_name_key"));
    assert_int_equal(pg->commit(c), STORE_OK);
    assert_int_equal(query_int(c, "SELECT count(*) FROM sites WHERE name = 'kept'"), 1);
    assert_int_equal(query_int(c, statements), before); /* explain leaves none behind */
    pg->close(c);
    pg->close(watcher);
}

/* The schemas the tests made, dropped after the last. */
static int schemas_drop(void **state)
{
    (void)state;
    db_conn *c = conn_open();
    exec_ok(c, "DROP SCHEMA IF EXISTS unit_scratch CASCADE; DROP SCHEMA IF EXISTS unit_migrations CASCADE");
    pg->close(c);
    return 0;
}

int main(void)
{
    url = getenv("STRATA_TEST_PG_URL");
    if (!url || !*url) {
        printf("STRATA_TEST_PG_URL is not set: the PostgreSQL driver tests are skipped "
               "(tests/run.sh starts a cluster with tests/pg_cluster.sh and sets it)\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers_nulls_and_text_round_trip),
        cmocka_unit_test(test_blobs_keep_every_byte),
        cmocka_unit_test(test_named_parameters_are_rewritten_once),
        cmocka_unit_test(test_finalize_drops_the_server_copy),
        cmocka_unit_test(test_changes_count_the_last_write),
        cmocka_unit_test(test_a_unique_violation_is_a_conflict),
        cmocka_unit_test(test_values_postgresql_cannot_hold_are_invalid),
        cmocka_unit_test(test_serializable_writers_of_one_row_retry),
        cmocka_unit_test(test_lock_and_statement_timeouts_are_busy),
        cmocka_unit_test(test_sessions_are_utc_named_and_may_relax_durability),
        cmocka_unit_test(test_a_lost_connection_comes_back_with_its_statements),
        cmocka_unit_test(test_a_transaction_cut_short_is_never_continued),
        cmocka_unit_test_setup_teardown(test_reconnects_back_off_while_the_server_refuses, gatekeeper_setup,
                                        gatekeeper_teardown),
        cmocka_unit_test(test_the_server_stopped_and_started_again),
        cmocka_unit_test(test_open_failures_never_show_the_password),
        cmocka_unit_test(test_a_second_migrator_sees_what_the_first_applied),
        cmocka_unit_test(test_migrations_build_the_whole_schema),
    };
    return cmocka_run_group_tests(tests, NULL, schemas_drop);
}
