/*
 * test_commit_group.c — group commit on SQLite (src/store/commit_group.c):
 * many threads, each with its own store on one file, writing through
 * db_transact at once.
 *
 * What must hold: every write acknowledged STORE_OK is in the file (read
 * by a connection of its own after the writers are gone); writes did share
 * commits (fewer commits than writes); a body that fails is undone alone,
 * with its own status and words reaching its own caller, while the writes
 * committed with it stay; a background store's writes get through too.
 * And a save's version encoded ahead of its transaction is written only
 * while still right. SQLite-only by nature (PostgreSQL groups commits
 * itself).
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
#include <unistd.h>

#include "store/commit_group.h"
#include "store/store_internal.h"
#include "store/version_codec.h"

enum { THREADS = 8, WRITES = 60 };

typedef struct fixture {
    char path[64];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->path, sizeof f->path, "/tmp/strata-test-group-XXXXXX");
    int fd = mkstemp(f->path);
    assert_true(fd >= 0);
    close(fd);
    store_t *st = NULL;
    assert_int_equal(store_open(f->path, &st), STORE_OK);
    assert_int_equal(db_exec_script(st,
                                    "CREATE TABLE t(who INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (who, n));"
                                    "CREATE TABLE u(k INTEGER PRIMARY KEY)",
                                    "creating the test tables"),
                     STORE_OK);
    store_close(&st);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char side[80];
    unlink(f->path);
    snprintf(side, sizeof side, "%s-wal", f->path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", f->path);
    unlink(side);
    free(f);
    return 0;
}

static int64_t count_of(const char *path, const char *sql)
{
    store_t *st = NULL;
    assert_int_equal(store_open(path, &st), STORE_OK);
    db_query q;
    assert_int_equal(db_query_start(st, sql, &q), STORE_OK);
    assert_true(db_next_row(&q));
    int64_t n = db_column_int(&q, 0);
    assert_int_equal(db_query_end(&q, "counting"), STORE_OK);
    store_close(&st);
    return n;
}

/* ---- a writer thread --------------------------------------------------------- */

/* What a body does: insert (who, n) into t; every `fail_every`th write of
 * a thread fails on purpose, alternately by a unique key taken (a row of u
 * every thread tries to insert) and by the body's own words. */
typedef struct write_arg {
    int who, n;
    bool fail_key, fail_words;
} write_arg;

static int write_body(store_t *st, void *arg)
{
    write_arg *w = arg;
    db_query q;
    int status = db_query_start(st, "INSERT INTO t(who, n) VALUES (:who, :n)", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":who", w->who);
    db_bind_int(&q, ":n", w->n);
    status = db_query_run(&q, "inserting into t");
    if (status == STORE_OK && w->fail_key) {
        /* 1 is inserted by the first such body to run: every later one conflicts */
        status = db_query_start(st, "INSERT INTO u(k) VALUES (1)", &q);
        if (status == STORE_OK)
            status = db_query_run(&q, "inserting into u");
    }
    if (status == STORE_OK && w->fail_words)
        status = db_fail(st, STORE_STALE, "write %d of thread %d refuses", w->n, w->who);
    return status;
}

typedef struct writer {
    const char *path;
    int who, fail_every;
    bool background;
    int ok, conflicts, stale;
    bool acknowledged[WRITES];
    bool words_wrong; /* a failure's words were not this caller's own */
} writer;

static void *writer_main(void *arg)
{
    writer *wr = arg;
    store_t *st = NULL;
    if (store_open(wr->path, &st) != STORE_OK)
        return NULL;
    if (wr->background)
        store_writes_background(st);
    for (int n = 0; n < WRITES; n++) {
        bool failing = wr->fail_every > 0 && n % wr->fail_every == wr->fail_every - 1;
        write_arg w = {.who = wr->who, .n = n, .fail_key = failing && n % 2 == 0, .fail_words = failing && n % 2 == 1};
        int status = db_transact(st, write_body, &w, "writing t");
        char mine[96];
        snprintf(mine, sizeof mine, "write %d of thread %d refuses", n, wr->who);
        if (status == STORE_OK) {
            wr->ok++;
            wr->acknowledged[n] = true;
        } else if (status == STORE_CONFLICT) {
            wr->conflicts++;
            wr->words_wrong |= strstr(store_errmsg(st), "unique key") == NULL;
        } else if (status == STORE_STALE) {
            wr->stale++;
            wr->words_wrong |= strcmp(store_errmsg(st), mine) != 0;
        } else {
            wr->words_wrong = true;
        }
    }
    store_close(&st);
    return NULL;
}

/* Runs THREADS writers at once; the group's stats, read by a store that
 * stays open meanwhile (the group lives as long as one of its stores). */
static void writers_run(const char *path, writer *wr, int fail_every, commit_group_stats *stats)
{
    store_t *watcher = NULL;
    assert_int_equal(store_open(path, &watcher), STORE_OK);
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        wr[i] = (writer){.path = path, .who = i, .fail_every = fail_every, .background = i == THREADS - 1};
        assert_int_equal(pthread_create(&threads[i], NULL, writer_main, &wr[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    commit_group_stats_of(watcher, stats);
    store_close(&watcher);
}

/* ---- tests --------------------------------------------------------------------- */

/* Every acknowledged write is there, and commits were shared. */
static void test_every_acknowledged_write_is_committed(void **state)
{
    fixture *f = *state;
    writer wr[THREADS];
    commit_group_stats stats;
    writers_run(f->path, wr, 0, &stats);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(wr[i].ok, WRITES);
        assert_false(wr[i].words_wrong);
    }
    assert_int_equal(count_of(f->path, "SELECT count(*) FROM t"), THREADS * WRITES);
    assert_int_equal(stats.writes, THREADS * WRITES);
    assert_int_equal(stats.background, WRITES); /* the last thread's */
    assert_true(stats.commits < stats.writes);  /* shared: 8 threads at once never took turns one by one */
    fprintf(stderr, "%llu writes in %llu commits\n", (unsigned long long)stats.writes,
            (unsigned long long)stats.commits);
}

/* A failing body is undone alone; its caller, and only it, hears why. */
static void test_a_failing_write_leaves_the_others(void **state)
{
    fixture *f = *state;
    writer wr[THREADS];
    commit_group_stats stats;
    writers_run(f->path, wr, 3, &stats);
    int ok = 0, conflicts = 0, stale = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_false(wr[i].words_wrong);
        assert_int_equal(wr[i].ok + wr[i].conflicts + wr[i].stale, WRITES);
        ok += wr[i].ok, conflicts += wr[i].conflicts, stale += wr[i].stale;
    }
    int failing = THREADS * (WRITES / 3);
    assert_int_equal(stale, failing / 2);                 /* every odd failing write says no in its own words */
    assert_int_equal(conflicts, failing / 2 - 1);         /* every even one but the first to insert u's row */
    assert_int_equal(ok, THREADS * WRITES - failing + 1); /* that first one */
    /* t holds exactly the acknowledged writes: none undone with a neighbour, none failed kept */
    assert_int_equal(count_of(f->path, "SELECT count(*) FROM t"), ok);
    store_t *st = NULL;
    assert_int_equal(store_open(f->path, &st), STORE_OK);
    for (int i = 0; i < THREADS; i++) {
        for (int n = 0; n < WRITES; n++) {
            db_query q;
            assert_int_equal(db_query_start(st, "SELECT count(*) FROM t WHERE who = :who AND n = :n", &q), STORE_OK);
            db_bind_int(&q, ":who", i);
            db_bind_int(&q, ":n", n);
            assert_true(db_next_row(&q));
            assert_int_equal(db_column_int(&q, 0), wr[i].acknowledged[n] ? 1 : 0);
            assert_int_equal(db_query_end(&q, "reading t"), STORE_OK);
        }
    }
    store_close(&st);
    assert_int_equal(stats.failed, failing - 1);
}

/* An in-memory database is one per connection: such a store commits alone. */
static void test_memory_database_commits_alone(void **state)
{
    (void)state;
    assert_false(commit_group_wanted(":memory:"));
    assert_false(commit_group_wanted("file::memory:?cache=shared"));
    assert_true(commit_group_wanted("/var/lib/strata/strata.db"));
    store_t *st = NULL;
    assert_int_equal(store_open(":memory:", &st), STORE_OK);
    assert_null(st->group);
    assert_int_equal(db_exec_script(st, "CREATE TABLE t(who INTEGER, n INTEGER, PRIMARY KEY (who, n))", "creating t"),
                     STORE_OK);
    write_arg w = {.who = 1, .n = 1};
    assert_int_equal(db_transact(st, write_body, &w, "writing t"), STORE_OK);
    assert_int_equal(db_transact(st, write_body, &w, "writing t"), STORE_CONFLICT);
    store_close(&st);
}

/* A save's version encoded ahead of its transaction (items.c's
 * draft_save_ahead) is written only while it is still right: for the
 * number the draft is at, and with the skip-delta base it was compressed
 * against still there (retention may remove it meanwhile); else the save
 * encodes again inside (the in-transaction path every save took before). */
static void test_a_version_encoded_ahead_is_used_only_while_right(void **state)
{
    fixture *f = *state;
    store_t *st = NULL;
    assert_int_equal(store_open(f->path, &st), STORE_OK);
    assert_int_equal(store_migrate(st, NULL), STORE_OK);
    int64_t site_id = 0, version = 1;
    assert_int_equal(store_site_create(st, "main", &site_id), STORE_OK);
    store_edit_t create = {.type = "post", .slug = "ahead", .title = "v1"};
    json_t *draft = NULL;
    assert_int_equal(store_item_create(st, site_id, "main", &create, "a", &draft), STORE_OK);
    int64_t id = json_integer_value(json_object_get(draft, "id"));
    json_decref(draft);
    while (version_skip_delta_base(version + 1) == 0) { /* until the next version is a skip-delta */
        store_edit_t edit = {.title = "more"};
        assert_int_equal(store_item_save_draft(st, site_id, "main", id, 0, &edit, "a", &draft, &version), STORE_OK);
        json_decref(draft);
    }
    int64_t next = version + 1, base = version_skip_delta_base(next);
    assert_true(base > 0);

    json_t *snapshot = NULL;
    assert_int_equal(version_snapshot(st, id, version, &snapshot), STORE_OK);
    version_prepared ready;
    assert_int_equal(version_prepare(st, id, next, snapshot, &ready), STORE_OK);
    assert_int_equal(ready.base, base);
    bool usable = false;
    assert_int_equal(version_prepared_usable(st, &ready, id, next, &usable), STORE_OK);
    assert_true(usable);
    assert_int_equal(version_prepared_usable(st, &ready, id, next + 1, &usable), STORE_OK);
    assert_false(usable); /* another save took that number */
    char sql[128];
    snprintf(sql, sizeof sql, "DELETE FROM versions WHERE item_id = %lld AND number = %lld", (long long)id,
             (long long)base);
    assert_int_equal(db_exec_script(st, sql, "removing the base"), STORE_OK);
    assert_int_equal(version_prepared_usable(st, &ready, id, next, &usable), STORE_OK);
    assert_false(usable); /* its base is gone */
    version_prepared_free(&ready);
    json_decref(snapshot);

    store_close(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_acknowledged_write_is_committed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_failing_write_leaves_the_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_database_commits_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_version_encoded_ahead_is_used_only_while_right, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
