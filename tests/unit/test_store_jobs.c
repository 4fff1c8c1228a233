/*
 * test_store_jobs.c — the job queue and the view roll-up of the store
 * (src/store/jobs.c through store_jobs.h), on the driver STRATA_TEST_DB_URL
 * names (SQLite files by default; store_fixture.h says how).
 *
 * Time is a parameter of every queue call, so leases running out and
 * retries coming due are tested by passing later times, not by sleeping.
 * A second connection (db_int, db_exec) reads and sets what the API does
 * not show.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_jobs.h"
#include "store_fixture.h"

typedef struct fixture {
    char path[FIXTURE_WHERE_SIZE]; /* a SQLite file, or STRATA_TEST_DB_URL */
    store_t *st;
} fixture;

static const int64_t T0 = 1790035200000LL; /* 2026-09-22T00:00:00Z: a day starts there */
#define HOUR_MS 3600000LL
#define DAY_MS (24 * HOUR_MS)
#define MAX_ATTEMPTS 3 /* what the claims of these tests pass */

/* ---- fixture and raw SQL --------------------------------------------------- */

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fixture_db_create(f->path);
    assert_int_equal(store_open(f->path, &f->st), STORE_OK);
    assert_int_equal(store_migrate(f->st, NULL), STORE_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    size_t busy = db_statements_busy(f->st);
    store_close(&f->st);
    fixture_db_remove(f->path);
    free(f);
    return busy == 0 ? 0 : -1;
}

static int64_t db_int(const fixture *f, const char *sql)
{
    return fixture_db_int(f->path, sql);
}

static void db_exec(const fixture *f, const char *sql)
{
    fixture_db_exec(f->path, sql);
}

static int64_t enqueue(fixture *f, const char *kind, int64_t run_at, const char *key)
{
    int64_t id = -1;
    assert_int_equal(store_job_enqueue(f->st, kind, "{\"n\":1}", run_at, key, &id), STORE_OK);
    return id;
}

/* Claims the job due at now, which must exist; its payload is released. */
static store_job claim_one(fixture *f, int64_t now, int64_t lease_ms)
{
    store_job job;
    assert_int_equal(store_job_claim(f->st, now, lease_ms, MAX_ATTEMPTS, STORE_JOB_LANE_BACKGROUND, &job), STORE_OK);
    store_job_release(&job);
    return job;
}

static void nothing_due(fixture *f, int64_t now)
{
    store_job job;
    assert_int_equal(store_job_claim(f->st, now, 1000, MAX_ATTEMPTS, STORE_JOB_LANE_BACKGROUND, &job), STORE_NOT_FOUND);
    assert_null(job.payload);
}

/* ---- the queue --------------------------------------------------------------- */

static void test_claim_runs_due_jobs_oldest_first(void **state)
{
    fixture *f = *state;
    int64_t later = enqueue(f, "b", T0 + 10, NULL);
    int64_t first = enqueue(f, "a", T0, NULL);
    int64_t future = enqueue(f, "c", T0 + HOUR_MS, NULL);
    assert_true(later > 0 && first > 0 && future > 0);

    store_job job;
    assert_int_equal(store_job_claim(f->st, T0 + 10, 1000, MAX_ATTEMPTS, STORE_JOB_LANE_BACKGROUND, &job), STORE_OK);
    assert_int_equal(job.id, first);
    assert_string_equal(job.kind, "a");
    assert_string_equal(job.payload, "{\"n\":1}");
    assert_int_equal(job.attempts, 1);
    store_job_release(&job);
    assert_int_equal(claim_one(f, T0 + 10, 1000).id, later);
    nothing_due(f, T0 + 10); /* the third is not due; the two claimed are leased */

    assert_int_equal(store_job_complete(f->st, first, 1, T0 + 20), STORE_OK);
    assert_int_equal(db_int(f, "SELECT count(*) FROM jobs"), 2);
}

static void test_a_lease_that_runs_out_is_claimed_again_and_fences_the_first(void **state)
{
    fixture *f = *state;
    int64_t id = enqueue(f, "slow", T0, NULL);
    claim_one(f, T0, 1000);
    nothing_due(f, T0 + 999);
    store_job again = claim_one(f, T0 + 1000, 1000);
    assert_int_equal(again.id, id);
    assert_int_equal(again.attempts, 2);
    /* the first runner finishing late changes nothing */
    assert_int_equal(store_job_complete(f->st, id, 1, T0 + 1500), STORE_STALE);
    assert_int_equal(store_job_retry(f->st, id, 1, T0 + 5000, "late"), STORE_STALE);
    assert_int_equal(store_job_bury(f->st, id, 1, T0 + 1500, "late"), STORE_STALE);
    assert_int_equal(db_int(f, "SELECT count(*) FROM jobs WHERE failed_at IS NULL AND last_error IS NULL"), 1);
    assert_int_equal(store_job_complete(f->st, id, 2, T0 + 1600), STORE_OK);
    assert_int_equal(db_int(f, "SELECT count(*) FROM jobs"), 0);
}

static void test_retry_and_bury(void **state)
{
    fixture *f = *state;
    int64_t id = enqueue(f, "flaky", T0, NULL);
    claim_one(f, T0, 60000);
    assert_int_equal(store_job_retry(f->st, id, 1, T0 + 2000, "refused"), STORE_OK);
    nothing_due(f, T0 + 1999); /* retried: not leased any more, due at its new time only */
    assert_int_equal(claim_one(f, T0 + 2000, 60000).attempts, 2);
    assert_int_equal(store_job_bury(f->st, id, 2, T0 + 2100, "refused again"), STORE_OK);
    nothing_due(f, T0 + DAY_MS);

    json_t *stats = NULL;
    assert_int_equal(store_jobs_stats(f->st, T0 + 3000, &stats), STORE_OK);
    assert_int_equal(json_integer_value(json_object_get(stats, "failed")), 1);
    assert_int_equal(json_integer_value(json_object_get(stats, "queued")), 0);
    json_t *failure = json_array_get(json_object_get(stats, "recent_failures"), 0);
    assert_string_equal(json_string_value(json_object_get(failure, "error")), "refused again");
    assert_int_equal(json_integer_value(json_object_get(failure, "attempts")), 2);
    json_decref(stats);
}

/* A job whose runner dies while running it (the process crashed or was
 * killed: no complete, retry or bury ever comes) is claimed again when its
 * lease runs out — until it has been claimed MAX_ATTEMPTS times. The claim
 * after that buries it instead of handing it out, and takes the next job. */
static void test_a_job_claimed_max_attempts_times_without_an_outcome_is_buried(void **state)
{
    fixture *f = *state;
    int64_t poison = enqueue(f, "poison", T0, NULL);
    int64_t now = T0;
    for (int attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        store_job job = claim_one(f, now, 1000);
        assert_int_equal(job.id, poison);
        assert_int_equal(job.attempts, attempt);
        assert_int_equal(job.buried, 0);
        nothing_due(f, now + 999); /* leased */
        now += 1000;               /* the runner died: its lease runs out */
    }
    int64_t healthy = enqueue(f, "healthy", now, NULL);
    store_job job;
    assert_int_equal(store_job_claim(f->st, now, 1000, MAX_ATTEMPTS, STORE_JOB_LANE_BACKGROUND, &job), STORE_OK);
    assert_int_equal(job.id, healthy); /* not the poison job */
    assert_int_equal(job.buried, 1);
    store_job_release(&job);
    assert_int_equal(store_job_complete(f->st, healthy, 1, now), STORE_OK);
    nothing_due(f, now + DAY_MS); /* never again */

    char sql[128];
    snprintf(sql, sizeof sql, "SELECT failed_at FROM jobs WHERE id = %lld", (long long)poison);
    assert_int_equal(db_int(f, sql), now);
    snprintf(sql, sizeof sql, "SELECT attempts FROM jobs WHERE id = %lld", (long long)poison);
    assert_int_equal(db_int(f, sql), MAX_ATTEMPTS);
    json_t *stats = NULL;
    assert_int_equal(store_jobs_stats(f->st, now, &stats), STORE_OK);
    assert_int_equal(json_integer_value(json_object_get(stats, "failed")), 1);
    json_t *failure = json_array_get(json_object_get(stats, "recent_failures"), 0);
    assert_string_equal(json_string_value(json_object_get(failure, "kind")), "poison");
    assert_non_null(strstr(json_string_value(json_object_get(failure, "error")), "claimed 3 times"));
    json_decref(stats);
}

/* A job that failed and was retried keeps its attempts: it is buried by the
 * claim once they are used up too (max_attempts lowered since, say), and a
 * claim that finds nothing else says NOT_FOUND with the burial counted. */
static void test_used_up_attempts_are_buried_even_with_nothing_else_due(void **state)
{
    fixture *f = *state;
    int64_t id = enqueue(f, "flaky", T0, NULL);
    for (int attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        claim_one(f, T0 + attempt, 60000);
        assert_int_equal(store_job_retry(f->st, id, attempt, T0 + attempt + 1, "refused"), STORE_OK);
    }
    store_job job;
    assert_int_equal(store_job_claim(f->st, T0 + 10, 1000, MAX_ATTEMPTS, STORE_JOB_LANE_BACKGROUND, &job),
                     STORE_NOT_FOUND);
    assert_int_equal(job.buried, 1);
    assert_int_equal(db_int(f, "SELECT count(*) FROM jobs WHERE failed_at IS NOT NULL"), 1);
}

static void test_a_unique_key_names_one_run(void **state)
{
    fixture *f = *state;
    int64_t id = enqueue(f, "warm", T0, "warm@1");
    assert_true(id > 0);
    assert_int_equal(enqueue(f, "warm", T0, "warm@1"), 0); /* already queued */
    claim_one(f, T0, 1000);
    assert_int_equal(store_job_complete(f->st, id, 1, T0 + 5), STORE_OK);
    /* done, and kept as a marker: a late instance cannot queue the tick again */
    assert_int_equal(enqueue(f, "warm", T0, "warm@1"), 0);
    nothing_due(f, T0 + HOUR_MS);
    assert_true(enqueue(f, "warm", T0, "warm@2") > 0);

    json_t *stats = NULL;
    assert_int_equal(store_jobs_stats(f->st, T0 + 10, &stats), STORE_OK);
    assert_int_equal(json_integer_value(json_object_get(stats, "queued")), 1);
    assert_int_equal(json_integer_value(json_object_get(stats, "due")), 1);
    assert_int_equal(json_integer_value(json_object_get(stats, "running")), 0);
    assert_int_equal(json_integer_value(json_object_get(stats, "oldest_due_ms")), 10);
    json_decref(stats);

    /* markers go after a day; failed jobs after a week */
    int64_t removed = -1;
    assert_int_equal(store_jobs_prune(f->st, T0 + 5 + STORE_JOB_MARKER_MS - 1, &removed), STORE_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(store_jobs_prune(f->st, T0 + 6 + STORE_JOB_MARKER_MS, &removed), STORE_OK);
    assert_int_equal(removed, 1);
    assert_true(enqueue(f, "warm", T0, "warm@1") > 0);
}

static void test_enqueue_refuses_what_it_cannot_keep(void **state)
{
    fixture *f = *state;
    int64_t id;
    char kind[STORE_JOB_KIND_MAX + 2];
    memset(kind, 'k', sizeof kind - 1);
    kind[sizeof kind - 1] = '\0';
    assert_int_equal(store_job_enqueue(f->st, "", NULL, T0, NULL, &id), STORE_INVALID);
    assert_int_equal(store_job_enqueue(f->st, kind, NULL, T0, NULL, &id), STORE_INVALID);
    assert_int_equal(store_job_enqueue(f->st, "k", NULL, T0, "", &id), STORE_INVALID);
    char *payload = malloc(STORE_JOB_PAYLOAD_MAX + 2);
    assert_non_null(payload);
    memset(payload, ' ', STORE_JOB_PAYLOAD_MAX + 1);
    payload[STORE_JOB_PAYLOAD_MAX + 1] = '\0';
    assert_int_equal(store_job_enqueue(f->st, "k", payload, T0, NULL, &id), STORE_INVALID);
    free(payload);
    assert_int_equal(db_int(f, "SELECT count(*) FROM jobs"), 0);
    /* no payload is an empty object */
    assert_int_equal(store_job_enqueue(f->st, "k", NULL, T0, NULL, &id), STORE_OK);
    assert_int_equal(db_int(f, "SELECT count(*) FROM jobs WHERE payload = '{}'"), 1);
}

/* A transaction body that queues a job, then fails as a write would. */
static int enqueue_then_fail(store_t *st, void *arg)
{
    int64_t *id = arg;
    assert_int_equal(store_job_enqueue(st, "diff", "{}", T0, NULL, id), STORE_OK);
    return db_fail(st, STORE_ERROR, "the write failed");
}

static void test_an_enqueue_joins_the_callers_transaction(void **state)
{
    fixture *f = *state;
    int64_t id = 0;
    assert_int_equal(db_transact(f->st, enqueue_then_fail, &id, "testing"), STORE_ERROR); /* all rolls back */
    assert_true(id > 0);
    assert_int_equal(db_int(f, "SELECT count(*) FROM jobs"), 0);
}

/* ---- lanes --------------------------------------------------------------------- */

/* Behind a backlog of background jobs due earlier, the punctual lane still
 * claims its own at once, a scheduled change before a purge; neither lane
 * claims the other's, and each wakes for its own next due job. */
static void test_each_lane_claims_its_own_kinds_scheduled_first(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 50; i++)
        enqueue(f, "diff", T0 - 1000 + i, NULL);
    int64_t purge = enqueue(f, "purge", T0 - 500, NULL);
    int64_t scheduled = enqueue(f, "scheduled", T0, NULL);
    enqueue(f, "scheduled", T0 + HOUR_MS, NULL);
    enqueue(f, "warm", T0 + DAY_MS, NULL);

    store_job job;
    assert_int_equal(store_job_claim(f->st, T0, 1000, MAX_ATTEMPTS, STORE_JOB_LANE_PUNCTUAL, &job), STORE_OK);
    assert_int_equal(job.id, scheduled);
    store_job_release(&job);
    assert_int_equal(store_job_claim(f->st, T0, 1000, MAX_ATTEMPTS, STORE_JOB_LANE_PUNCTUAL, &job), STORE_OK);
    assert_int_equal(job.id, purge);
    store_job_release(&job);
    assert_int_equal(store_job_claim(f->st, T0, 1000, MAX_ATTEMPTS, STORE_JOB_LANE_PUNCTUAL, &job), STORE_NOT_FOUND);
    assert_string_equal(claim_one(f, T0, 1000).kind, "diff");

    int64_t at = 0;
    assert_int_equal(store_jobs_next_due(f->st, T0, STORE_JOB_LANE_PUNCTUAL, &at), STORE_OK);
    assert_int_equal(at, T0 + HOUR_MS);
    assert_int_equal(store_jobs_next_due(f->st, T0, STORE_JOB_LANE_BACKGROUND, &at), STORE_OK);
    assert_int_equal(at, T0 + DAY_MS);
    assert_int_equal(store_job_lane_of("scheduled"), STORE_JOB_LANE_PUNCTUAL);
    assert_int_equal(store_job_lane_of("purge"), STORE_JOB_LANE_PUNCTUAL);
    assert_int_equal(store_job_lane_of("diff"), STORE_JOB_LANE_BACKGROUND);
}

/* ---- the roll-up ---------------------------------------------------------------- */

/* Item 1 with 3 views in each of the 48 hours of two days 10 and 9 days
 * before T0, and 1 view in each of the last 30 hours. */
static void views_seed(fixture *f)
{
    db_exec(f, "INSERT INTO sites(id, name, created_at) VALUES (1, 'main', 0);"
               "INSERT INTO items(id, site_id, type, slug, status, title, author, created_at, updated_at, "
               "draft_version) VALUES (1, 1, 'post', 'p', 'published', 'P', 'a', 0, 0, 1);");
    char sql[256];
    int64_t first_hour = (T0 - 10 * DAY_MS) / HOUR_MS, now_hour = T0 / HOUR_MS;
    for (int64_t h = first_hour; h < first_hour + 48; h++) {
        snprintf(sql, sizeof sql, "INSERT INTO views_hourly VALUES (1, 1, %lld, 3)", (long long)h);
        db_exec(f, sql);
    }
    for (int64_t h = now_hour - 30; h < now_hour; h++) {
        snprintf(sql, sizeof sql, "INSERT INTO views_hourly VALUES (1, 1, %lld, 1)", (long long)h);
        db_exec(f, sql);
    }
}

static int64_t window_views(fixture *f, int64_t since_ms)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT COALESCE(sum(count), 0) FROM views_hourly WHERE hour >= %lld",
             (long long)(since_ms / HOUR_MS));
    return db_int(f, sql);
}

static void test_rollup_folds_old_hours_into_days(void **state)
{
    fixture *f = *state;
    views_seed(f);
    int64_t total = window_views(f, 0), week = window_views(f, T0 - 7 * DAY_MS), day = window_views(f, T0 - DAY_MS);
    assert_int_equal(total, 48 * 3 + 30);
    int64_t folded = -1;
    assert_int_equal(store_views_rollup(f->st, T0 - 8 * DAY_MS, &folded), STORE_OK);
    assert_int_equal(folded, 46); /* 2 days × 23 hours; each day's first hour keeps the sum */
    assert_int_equal(db_int(f, "SELECT count(*) FROM views_hourly"), 2 + 30);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count FROM views_hourly WHERE hour = %lld",
             (long long)((T0 - 10 * DAY_MS) / HOUR_MS));
    assert_int_equal(db_int(f, sql), 24 * 3);
    assert_int_equal(window_views(f, 0), total);
    assert_int_equal(window_views(f, T0 - 7 * DAY_MS), week);
    assert_int_equal(window_views(f, T0 - DAY_MS), day);
    /* again: nothing more to fold */
    assert_int_equal(store_views_rollup(f->st, T0 - 8 * DAY_MS, &folded), STORE_OK);
    assert_int_equal(folded, 0);
    assert_int_equal(window_views(f, 0), total);
}

static void test_rollup_never_touches_the_day_it_stops_in(void **state)
{
    fixture *f = *state;
    views_seed(f);
    /* a limit in the middle of the older day: only the day before it folds */
    int64_t folded = -1;
    assert_int_equal(store_views_rollup(f->st, T0 - 9 * DAY_MS + 12 * HOUR_MS, &folded), STORE_OK);
    assert_int_equal(folded, 23);
    assert_int_equal(db_int(f, "SELECT count(*) FROM views_hourly"), 1 + 24 + 30);
    assert_int_equal(window_views(f, 0), 48 * 3 + 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_claim_runs_due_jobs_oldest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_lease_that_runs_out_is_claimed_again_and_fences_the_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_retry_and_bury, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_job_claimed_max_attempts_times_without_an_outcome_is_buried, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_used_up_attempts_are_buried_even_with_nothing_else_due, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_unique_key_names_one_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enqueue_refuses_what_it_cannot_keep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_enqueue_joins_the_callers_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_lane_claims_its_own_kinds_scheduled_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_lane_claims_its_own_kinds_scheduled_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollup_folds_old_hours_into_days, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollup_never_touches_the_day_it_stops_in, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
