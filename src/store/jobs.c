/*
 * jobs.c — the persistent job queue's SQL and the view roll-up (the ideas
 * are in store_jobs.h; the runner that uses them is src/jobs).
 *
 * Claiming. The due head chosen, then one UPDATE … RETURNING, inside a
 * write transaction. On SQLite
 * (BEGIN IMMEDIATE) the write lock is taken before the due job is chosen,
 * so of two instances claiming at once the second waits (busy_timeout) and
 * then sees the first's lease. On PostgreSQL (SERIALIZABLE) the choice
 * passes over a job another claimer holds (FOR UPDATE SKIP LOCKED, the
 * {skip_locked} fragment), so two claimers take two jobs rather than
 * collide on one; a conflict left over is retried (db_transact). The
 * choice walks jobs_due (run_at, partial on failed_at IS NULL) from its
 * start; markers sit at its far end (run_at = STORE_JOB_DONE) and are never
 * reached by a run_at <= now range.
 *
 * Poison jobs. An attempt is counted when it is claimed, before it runs, so
 * a job whose runner dies while running it (a crash, kill -9) has still
 * used that attempt. A claim that finds a job at the head of the queue
 * whose attempts are used up (attempts >= max_attempts: the last attempt
 * ended without any outcome recorded) buries it instead, in the same
 * transaction, and looks at the next: a job that crashes its process runs
 * at most max_attempts times, then stays failed for the operator to see.
 *
 * Fencing. complete, retry and bury match `id AND attempts`: a runner whose
 * lease ran out and whose job was claimed again (attempts + 1) changes
 * nothing, and hears STORE_STALE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "store/store_jobs.h"

enum {
    ERROR_TEXT_MAX = 500,
    RECENT_FAILURES = 10,
    HOURS_PER_DAY = 24,
    MS_PER_DAY = 86400000,
    BURIALS_PER_CLAIM_MAX = 1000, /* a claim buries at most this many, then says nothing is due */
};

/* ---- enqueue and claim --------------------------------------------------- */

static bool text_fits(const char *text, size_t max)
{
    return text != NULL && text[0] != '\0' && strnlen(text, max + 1) <= max;
}

typedef struct enqueue_tx {
    const char *kind, *payload, *unique_key;
    int64_t run_at;
    int64_t id; /* out: 0 when the unique key was taken */
} enqueue_tx;

static int enqueue_tx_run(store_t *st, void *arg)
{
    enqueue_tx *tx = arg;
    db_query q;
    int status = db_query_start(st,
                                "INSERT INTO jobs(kind, payload, run_at, created_at, unique_key) "
                                "VALUES (:kind, :payload, :run_at, :now, :key) "
                                "ON CONFLICT(unique_key) WHERE unique_key IS NOT NULL DO NOTHING RETURNING id",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_text(&q, ":kind", tx->kind);
    db_bind_text(&q, ":payload", tx->payload ? tx->payload : "{}");
    db_bind_int(&q, ":run_at", tx->run_at);
    db_bind_int(&q, ":now", store_now_ms());
    db_bind_text(&q, ":key", tx->unique_key);
    tx->id = db_next_row(&q) ? db_column_int(&q, 0) : 0; /* no row: the unique key was taken */
    return db_query_end(&q, "queueing a job");
}

/* Inside a transaction body, part of that transaction; otherwise a
 * transaction of its own (one statement): on SQLite it then shares the
 * commit of the writes queued with it (commit_group.c) instead of making
 * one of its own. */
int store_job_enqueue(store_t *st, const char *kind, const char *payload, int64_t run_at, const char *unique_key,
                      int64_t *id)
{
    db_clear_error(st);
    *id = 0;
    if (!text_fits(kind, STORE_JOB_KIND_MAX))
        return db_fail(st, STORE_INVALID, "a job kind is 1 to %d bytes", STORE_JOB_KIND_MAX);
    if (unique_key != NULL && !text_fits(unique_key, STORE_JOB_KEY_MAX))
        return db_fail(st, STORE_INVALID, "a job's unique key is 1 to %d bytes", STORE_JOB_KEY_MAX);
    if (payload != NULL && strnlen(payload, STORE_JOB_PAYLOAD_MAX + 1) > STORE_JOB_PAYLOAD_MAX)
        return db_fail(st, STORE_INVALID, "a job's payload is at most %d bytes", STORE_JOB_PAYLOAD_MAX);
    enqueue_tx tx = {.kind = kind, .payload = payload, .unique_key = unique_key, .run_at = run_at};
    int status = st->in_transaction ? enqueue_tx_run(st, &tx) : db_transact(st, enqueue_tx_run, &tx, "queueing a job");
    if (status == STORE_OK)
        *id = tx.id;
    return status;
}

store_job_lane store_job_lane_of(const char *kind)
{
    return strcmp(kind, "scheduled") == 0 || strcmp(kind, "purge") == 0 ? STORE_JOB_LANE_PUNCTUAL
                                                                        : STORE_JOB_LANE_BACKGROUND;
}

/* The due heads' statements: one per partial index (schema version 5).
 * The kinds are literals, the same as the indexes' predicates, so that
 * either engine sees the index applies; they are the kinds of
 * store_job_lane_of. */
#define DUE_HEAD(kinds)                                                                                                \
    "SELECT id, attempts FROM jobs WHERE failed_at IS NULL AND " kinds " AND run_at <= :now "                          \
    "AND (locked_until IS NULL OR locked_until <= :now) ORDER BY run_at, id LIMIT 1 {skip_locked}"
static const char *const due_heads[][2] = {
    [STORE_JOB_LANE_BACKGROUND] = {DUE_HEAD("kind NOT IN ('scheduled', 'purge')"), NULL},
    [STORE_JOB_LANE_PUNCTUAL] = {DUE_HEAD("kind = 'scheduled'"), DUE_HEAD("kind = 'purge'")},
};

#define NEXT_DUE(kinds)                                                                                                \
    "SELECT MIN(run_at) FROM jobs WHERE failed_at IS NULL AND " kinds " AND run_at > :now AND run_at < :done"
static const char *const next_dues[][2] = {
    [STORE_JOB_LANE_BACKGROUND] = {NEXT_DUE("kind NOT IN ('scheduled', 'purge')"), NULL},
    [STORE_JOB_LANE_PUNCTUAL] = {NEXT_DUE("kind = 'scheduled'"), NEXT_DUE("kind = 'purge'")},
};

/* The oldest due, unleased job of one statement of due_heads: *id 0 if
 * none. On PostgreSQL the row is locked for this transaction, one another
 * claimer holds passed over. */
static int due_head_of(store_t *st, const char *sql, int64_t now, int64_t *id, int64_t *attempts)
{
    db_query q;
    int status = db_query_start(st, sql, &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":now", now);
    bool found = db_next_row(&q);
    *id = found ? db_column_int(&q, 0) : 0;
    *attempts = found ? db_column_int(&q, 1) : 0;
    return db_query_end(&q, "choosing a job");
}

/* The lane's due head: its first statement's, else its second's. */
static int due_head(store_t *st, store_job_lane lane, int64_t now, int64_t *id, int64_t *attempts)
{
    int status = due_head_of(st, due_heads[lane][0], now, id, attempts);
    if (status == STORE_OK && *id == 0 && due_heads[lane][1] != NULL)
        status = due_head_of(st, due_heads[lane][1], now, id, attempts);
    return status;
}

/* Buries job id, whose attempts are used up. */
static int bury_exhausted(store_t *st, int64_t id, int64_t now, int max_attempts)
{
    db_query q;
    int status =
        db_query_start(st,
                       "UPDATE jobs SET failed_at = :now, locked_until = NULL, last_error = 'claimed ' || attempts || "
                       "' times (max_attempts ' || CAST(:max AS BIGINT) || ') and the last attempt recorded no "
                       "outcome: the process running it "
                       "stopped (crashed or killed)' "
                       "WHERE id = :id",
                       &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":now", now);
    db_bind_int(&q, ":max", max_attempts);
    db_bind_int(&q, ":id", id);
    return db_query_run(&q, "burying a job whose attempts are used up");
}

typedef struct claim_args {
    int64_t now, lease_ms;
    int max_attempts;
    store_job_lane lane;
    store_job *out;
    bool none_due; /* the body found nothing due: an answer, committed */
} claim_args;

static int claim_by_id(store_t *st, int64_t id, const claim_args *a)
{
    store_job *out = a->out;
    db_query q;
    int status = db_query_start(st,
                                "UPDATE jobs SET locked_until = :lease_end, attempts = attempts + 1 WHERE id = :id "
                                "RETURNING id, kind, payload, attempts, run_at",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":lease_end", a->now + a->lease_ms);
    db_bind_int(&q, ":id", id);
    bool found = db_next_row(&q), ok = true;
    if (found) {
        const char *kind = db_column_text(&q, 1), *payload = db_column_text(&q, 2);
        out->id = db_column_int(&q, 0);
        snprintf(out->kind, sizeof out->kind, "%s", kind ? kind : "");
        out->payload = strdup(payload ? payload : "{}");
        out->attempts = db_column_int(&q, 3);
        out->run_at = db_column_int(&q, 4);
        ok = out->payload != NULL;
    }
    status = db_query_end(&q, "claiming a job");
    if (status == STORE_OK && !ok)
        status = db_fail(st, STORE_ERROR, "out of memory claiming a job");
    return status;
}

/* Takes the queue's due head: buried when its attempts are used up, and
 * the next one looked at, up to BURIALS_PER_CLAIM_MAX; else claimed. Only
 * the head is ever looked at, so a claim costs the same with 30,000 jobs
 * due as with one (burying "every due job with attempts used up" had to
 * read every due job, in the one writer's turn, at every claim). */
static int claim_tx(store_t *st, void *arg)
{
    claim_args *a = arg;
    store_job *out = a->out;
    store_job_release(out); /* a previous run's, rolled back */
    memset(out, 0, sizeof *out);
    int64_t id = 0, attempts = 0;
    int status = STORE_OK;
    for (;;) {
        status = due_head(st, a->lane, a->now, &id, &attempts);
        if (status != STORE_OK || id == 0 || attempts < a->max_attempts || out->buried == BURIALS_PER_CLAIM_MAX)
            break;
        status = bury_exhausted(st, id, a->now, a->max_attempts);
        if (status != STORE_OK)
            return status;
        out->buried++;
        id = 0;
    }
    if (status == STORE_OK && id != 0 && attempts < a->max_attempts)
        status = claim_by_id(st, id, a);
    a->none_due = status == STORE_OK && out->id == 0;
    return status;
}

int store_job_claim(store_t *st, int64_t now, int64_t lease_ms, int max_attempts, store_job_lane lane, store_job *out)
{
    db_clear_error(st);
    memset(out, 0, sizeof *out);
    claim_args args = {.now = now, .lease_ms = lease_ms, .max_attempts = max_attempts, .lane = lane, .out = out};
    int status = db_transact(st, claim_tx, &args, "claiming a job");
    if (status == STORE_OK && args.none_due)
        status = db_fail(st, STORE_NOT_FOUND, "no job is due");
    if (status != STORE_OK)
        store_job_release(out);
    return status;
}

void store_job_release(store_job *job)
{
    free(job->payload);
    job->payload = NULL;
}

/* ---- finishing an attempt ------------------------------------------------ */

/* Runs a fenced UPDATE/DELETE of the claimed attempt. */
static int finish_run(db_query *q, store_t *st, int64_t id, int attempts, const char *doing)
{
    db_bind_int(q, ":id", id);
    db_bind_int(q, ":attempts", attempts);
    int status = db_query_run(q, doing);
    if (status == STORE_OK && db_changes(st) == 0)
        return db_fail(st, STORE_STALE, "job %lld was claimed again after its lease ran out", (long long)id);
    return status;
}

int store_job_complete(store_t *st, int64_t id, int attempts, int64_t now)
{
    db_clear_error(st);
    db_query q;
    int status =
        db_query_start(st, "DELETE FROM jobs WHERE id = :id AND attempts = :attempts AND unique_key IS NULL", &q);
    if (status != STORE_OK)
        return status;
    status = finish_run(&q, st, id, attempts, "finishing a job");
    if (status != STORE_STALE)
        return status;
    /* not deleted: it has a unique key (a marker now), or it is not ours */
    db_clear_error(st);
    status = db_query_start(st,
                            "UPDATE jobs SET run_at = :done, locked_until = :now, last_error = NULL, payload = '{}' "
                            "WHERE id = :id AND attempts = :attempts AND failed_at IS NULL",
                            &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":done", STORE_JOB_DONE);
    db_bind_int(&q, ":now", now);
    return finish_run(&q, st, id, attempts, "finishing a job");
}

/* The claimed attempt failed: sql sets run_at (retry) or failed_at (bury)
 * to :at and keeps the error. */
static int attempt_failed(store_t *st, const char *sql, int64_t id, int attempts, int64_t at, const char *error,
                          const char *doing)
{
    db_clear_error(st);
    char text[ERROR_TEXT_MAX + 1];
    snprintf(text, sizeof text, "%s", error ? error : "");
    db_query q;
    int status = db_query_start(st, sql, &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":at", at);
    db_bind_text(&q, ":error", text);
    return finish_run(&q, st, id, attempts, doing);
}

int store_job_retry(store_t *st, int64_t id, int attempts, int64_t run_at, const char *error)
{
    return attempt_failed(st,
                          "UPDATE jobs SET run_at = :at, locked_until = NULL, last_error = :error "
                          "WHERE id = :id AND attempts = :attempts AND failed_at IS NULL",
                          id, attempts, run_at, error, "rescheduling a job");
}

int store_job_bury(store_t *st, int64_t id, int attempts, int64_t now, const char *error)
{
    return attempt_failed(st,
                          "UPDATE jobs SET failed_at = :at, locked_until = NULL, last_error = :error "
                          "WHERE id = :id AND attempts = :attempts AND failed_at IS NULL",
                          id, attempts, now, error, "marking a job failed");
}

int store_jobs_prune(store_t *st, int64_t now, int64_t *removed)
{
    db_clear_error(st);
    db_query q;
    int status = db_query_start(st,
                                "DELETE FROM jobs WHERE (failed_at IS NULL AND run_at = :done AND locked_until < "
                                ":marker_cut) OR failed_at < :failed_cut",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":done", STORE_JOB_DONE);
    db_bind_int(&q, ":marker_cut", now - STORE_JOB_MARKER_MS);
    db_bind_int(&q, ":failed_cut", now - STORE_JOB_FAILED_KEEP_MS);
    status = db_query_run(&q, "pruning finished jobs");
    if (removed != NULL)
        *removed = status == STORE_OK ? db_changes(st) : 0;
    return status;
}

/* ---- stats --------------------------------------------------------------- */

/* The counts over the whole table (a scan: the operator's page, not a hot
 * path) and the waiting and failed jobs per kind. */
static int stats_counts(store_t *st, int64_t now, json_t *stats)
{
    db_query q;
    int status = db_query_start(st,
                                "SELECT kind, "
                                "count(*) FILTER (WHERE failed_at IS NULL AND run_at < :done), "
                                "count(*) FILTER (WHERE failed_at IS NULL AND run_at <= :now "
                                "  AND (locked_until IS NULL OR locked_until <= :now)), "
                                "count(*) FILTER (WHERE failed_at IS NULL AND run_at < :done AND locked_until > :now), "
                                "count(*) FILTER (WHERE failed_at IS NOT NULL), "
                                "min(run_at) FILTER (WHERE failed_at IS NULL AND run_at <= :now "
                                "  AND (locked_until IS NULL OR locked_until <= :now)) "
                                "FROM jobs GROUP BY kind ORDER BY kind",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":done", STORE_JOB_DONE);
    db_bind_int(&q, ":now", now);
    json_t *kinds = json_object(); /* borrowed from stats once put */
    int64_t queued = 0, due = 0, running = 0, failed = 0, oldest_due = -1;
    bool ok = json_put(stats, "kinds", kinds);
    while (ok && db_next_row(&q)) {
        int64_t counts[4];
        for (int i = 0; i < 4; i++)
            counts[i] = db_column_int(&q, i + 1);
        queued += counts[0];
        due += counts[1];
        running += counts[2];
        failed += counts[3];
        if (!db_column_is_null(&q, 5)) {
            int64_t first = db_column_int(&q, 5);
            oldest_due = oldest_due < 0 || first < oldest_due ? first : oldest_due;
        }
        const char *kind = db_column_text(&q, 0);
        ok = kind != NULL &&
             json_put(kinds, kind,
                      json_pack("{s:I, s:I}", "queued", (json_int_t)counts[0], "failed", (json_int_t)counts[3]));
    }
    status = db_query_end(&q, "counting jobs");
    ok = ok && json_put(stats, "queued", json_integer(queued)) && json_put(stats, "due", json_integer(due)) &&
         json_put(stats, "running", json_integer(running)) && json_put(stats, "failed", json_integer(failed)) &&
         json_put(stats, "oldest_due_ms", json_integer(oldest_due < 0 ? 0 : now - oldest_due));
    if (status == STORE_OK && !ok)
        status = db_fail(st, STORE_ERROR, "out of memory counting jobs");
    return status;
}

static int stats_failures(store_t *st, json_t *stats)
{
    db_query q;
    int status = db_query_start(st,
                                "SELECT id, kind, attempts, last_error, failed_at FROM jobs "
                                "WHERE failed_at IS NOT NULL ORDER BY failed_at DESC, id DESC LIMIT :limit",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":limit", RECENT_FAILURES);
    json_t *list = json_array();
    bool ok = list != NULL;
    while (ok && db_next_row(&q)) {
        json_t *job = json_object();
        const char *kind = db_column_text(&q, 1), *error = db_column_text(&q, 3);
        ok = job && json_put(job, "id", json_integer(db_column_int(&q, 0))) &&
             json_put(job, "kind", json_string(kind ? kind : "")) &&
             json_put(job, "attempts", json_integer(db_column_int(&q, 2))) &&
             json_put(job, "error", json_string(error ? error : "")) &&
             json_put(job, "failed_at", time_json(db_column_int(&q, 4)));
        ok = ok && json_array_append(list, job) == 0;
        json_decref(job);
    }
    status = db_query_end(&q, "listing failed jobs");
    if (ok)
        ok = json_put(stats, "recent_failures", list);
    else
        json_decref(list);
    if (status == STORE_OK && !ok)
        status = db_fail(st, STORE_ERROR, "out of memory listing failed jobs");
    return status;
}

int store_jobs_stats(store_t *st, int64_t now, json_t **out)
{
    db_clear_error(st);
    *out = NULL;
    json_t *stats = json_object();
    if (stats == NULL)
        return db_fail(st, STORE_ERROR, "out of memory counting jobs");
    int status = stats_counts(st, now, stats);
    if (status == STORE_OK)
        status = stats_failures(st, stats);
    if (status != STORE_OK) {
        json_decref(stats);
        return status;
    }
    *out = stats;
    return STORE_OK;
}

/* ---- views roll-up ------------------------------------------------------- */

/* Adds each item's hours of a day (other than the day's first) into the
 * day's first hour, then deletes them. Hours are ms / 3600000 (lists.c). */
typedef struct rollup_args {
    int64_t before_hour;
    int64_t folded;
} rollup_args;

static int rollup_tx(store_t *st, void *arg)
{
    rollup_args *a = arg;
    int64_t before_hour = a->before_hour, *folded = &a->folded;
    *folded = 0;
    db_query q;
    int status = db_query_start(st,
                                "INSERT INTO views_hourly(site_id, item_id, hour, count) "
                                "SELECT site_id, item_id, hour / 24 * 24, SUM(count) FROM views_hourly "
                                "WHERE hour < :before AND hour % 24 != 0 GROUP BY site_id, item_id, hour / 24 "
                                "ON CONFLICT(item_id, hour) DO UPDATE SET count = views_hourly.count + excluded.count",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":before", before_hour);
    status = db_query_run(&q, "rolling up view counts");
    if (status != STORE_OK)
        return status;
    status = db_query_start(st, "DELETE FROM views_hourly WHERE hour < :before AND hour % 24 != 0", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":before", before_hour);
    status = db_query_run(&q, "rolling up view counts");
    if (status == STORE_OK)
        *folded = db_changes(st);
    return status;
}

int store_views_rollup(store_t *st, int64_t before_ms, int64_t *folded)
{
    db_clear_error(st);
    if (before_ms < 0)
        return db_fail(st, STORE_INVALID, "the roll-up's limit must not be before 1970");
    rollup_args args = {.before_hour = before_ms / MS_PER_DAY * HOURS_PER_DAY};
    int status = db_transact(st, rollup_tx, &args, "rolling up view counts");
    if (folded != NULL)
        *folded = status == STORE_OK ? args.folded : 0;
    return status;
}

static int next_due_of(store_t *st, const char *sql, int64_t now, int64_t *at)
{
    db_query q;
    int status = db_query_start(st, sql, &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":now", now);
    db_bind_int(&q, ":done", STORE_JOB_DONE);
    if (db_next_row(&q) && !db_column_is_null(&q, 0) && db_column_int(&q, 0) < *at)
        *at = db_column_int(&q, 0);
    return db_query_end(&q, "finding the next due job");
}

int store_jobs_next_due(store_t *st, int64_t now, store_job_lane lane, int64_t *at)
{
    db_clear_error(st);
    *at = INT64_MAX;
    int status = next_due_of(st, next_dues[lane][0], now, at);
    if (status == STORE_OK && next_dues[lane][1] != NULL)
        status = next_due_of(st, next_dues[lane][1], now, at);
    return status;
}
