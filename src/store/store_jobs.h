/*
 * store_jobs.h — the repository's queue half: the persistent job queue and
 * the view roll-up (store.h has items, lists, sites).
 *
 * A job is a row of `jobs`: a kind, a JSON payload, when it may run next
 * (run_at), how many times it was claimed (attempts), a lease (locked_until)
 * and, once it has used up its attempts, failed_at. Every instance sharing
 * the database claims from the same table; a claim is one BEGIN IMMEDIATE
 * transaction that takes the oldest due job and leases it, so two runners
 * never hold the same job. A runner that dies while holding a job simply
 * lets the lease run out, and the job is due again — until it has been
 * claimed max_attempts times: then the next claim buries it (poison jobs,
 * store/jobs.c), so a job that kills its process cannot do so forever.
 *
 * The claim's attempts count is the lease's fence: complete, retry and bury
 * name the attempt they finish, and do nothing (STORE_STALE) when the job
 * has been claimed again since (its lease ran out while it was running).
 *
 * Unique keys. A job may carry a unique key ("warm@1790000000000"): while a
 * row with that key exists, enqueueing the key again is not an error and
 * adds nothing (*id = 0). A finished job without a key is deleted; one with
 * a key is kept as a marker (run_at = STORE_JOB_DONE, locked_until = when it
 * finished) for STORE_JOB_MARKER_MS, so an instance that reaches the same
 * scheduled tick a little later cannot run it a second time. A key
 * therefore names one run.
 *
 * Lanes. A job of kind "scheduled" (a scheduled publish or unpublish) or
 * "purge" (a CDN purge) is due at a moment readers notice: it goes in the
 * punctual lane, which its own runner thread takes from, scheduled ones
 * first; every other kind (diffs, warming, retention, backups, …) is in
 * the background lane. A backlog of background jobs (a diff per save after
 * a burst of saves) then never holds up an embargo's end or a purge, and
 * the background runner can run at a lower CPU priority. Each lane's due
 * head is read from a partial index of its own (schema version 5).
 *
 * Same conventions as store.h: STORE_OK or a negative store_status, and
 * store_errmsg() for a sentence. Times are ms since the epoch.
 */
#ifndef STRATA_STORE_JOBS_H
#define STRATA_STORE_JOBS_H

#include "store/store.h"

#define STORE_JOB_DONE INT64_MAX                          /* run_at of a finished job's marker */
#define STORE_JOB_MARKER_MS (24 * 3600 * 1000LL)          /* how long a marker is kept */
#define STORE_JOB_FAILED_KEEP_MS (7 * 24 * 3600 * 1000LL) /* how long a failed job is kept */
#define STORE_JOB_KIND_MAX 63
#define STORE_JOB_KEY_MAX 200
#define STORE_JOB_PAYLOAD_MAX (64 * 1024)

typedef enum store_job_lane { STORE_JOB_LANE_BACKGROUND, STORE_JOB_LANE_PUNCTUAL } store_job_lane;

/* The lane jobs of kind run in. */
store_job_lane store_job_lane_of(const char *kind);

/* A claimed job. payload is malloc'd and owned by the claimer, who frees it
 * with store_job_release. */
typedef struct store_job {
    int64_t id;
    char kind[STORE_JOB_KIND_MAX + 1];
    char *payload;
    int attempts; /* counting this one */
    int64_t run_at;
    int buried; /* jobs this claim buried (attempts used up), whatever it returned */
} store_job;

/* Adds a job due at run_at. payload: JSON text (NULL: "{}"), at most
 * STORE_JOB_PAYLOAD_MAX bytes; unique_key may be NULL. *id gets the new
 * job's id, or 0 when unique_key is already queued (or recently done).
 * Joins the caller's transaction when one is open, so a job enqueued by a
 * write commits or rolls back with it. */
int store_job_enqueue(store_t *st, const char *kind, const char *payload, int64_t run_at, const char *unique_key,
                      int64_t *id);

/* Claims the oldest job of lane due at now (not failed, not leased; in the
 * punctual lane, a scheduled job before a purge), leasing it
 * until now + lease_ms and counting an attempt. A due job already claimed
 * max_attempts times is not claimed but buried, in the same transaction
 * (failed_at = now, last_error says its runner stopped), and counted in
 * out->buried. STORE_NOT_FOUND when none is due. */
int store_job_claim(store_t *st, int64_t now, int64_t lease_ms, int max_attempts, store_job_lane lane, store_job *out);
void store_job_release(store_job *job);

/* The claimed attempt succeeded: the job is deleted (or, with a unique key,
 * becomes a marker). STORE_STALE if the job was claimed again since. */
int store_job_complete(store_t *st, int64_t id, int attempts, int64_t now);
/* The claimed attempt failed and the job runs again at run_at; error (cut
 * to 500 bytes) is kept as last_error. STORE_STALE as above. */
int store_job_retry(store_t *st, int64_t id, int attempts, int64_t run_at, const char *error);
/* The claimed attempt failed and was the last: the job is kept as failed
 * (failed_at = now) and never runs again. STORE_STALE as above. */
int store_job_bury(store_t *st, int64_t id, int attempts, int64_t now, const char *error);

/* Deletes markers older than STORE_JOB_MARKER_MS and failed jobs older than
 * STORE_JOB_FAILED_KEEP_MS. *removed (if not NULL) gets how many. */
int store_jobs_prune(store_t *st, int64_t now, int64_t *removed);
/* When the earliest job of lane not yet due falls due (ms; INT64_MAX:
 * none), for the lane's runner to wake then rather than at its next poll. */
int store_jobs_next_due(store_t *st, int64_t now, store_job_lane lane, int64_t *at);

/* For the operator: *out = {"queued","due","running","failed",
 * "oldest_due_ms","kinds":{KIND:{"queued","failed"}…},"recent_failures":[
 * {"id","kind","attempts","error","failed_at"}…]} (the 10 latest). */
int store_jobs_stats(store_t *st, int64_t now, json_t **out);

/* ---- views -------------------------------------------------------------- */

/* Folds the hourly view rows of every hour before the UTC day that holds
 * before_ms into one row per item and day (at that day's first hour), in
 * one transaction. Totals never change and a folded day stays in the same
 * windows as long as before_ms is older than the widest window; running it
 * again folds nothing more. *folded (if not NULL): hourly rows removed. */
int store_views_rollup(store_t *st, int64_t before_ms, int64_t *folded);

#endif
