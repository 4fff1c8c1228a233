/*
 * jobs.h — background jobs: the runner of the persistent queue, its
 * schedules, and the built-in kinds.
 *
 * A job is a kind (a word naming a registered function) and a JSON payload,
 * kept in the database (store_jobs.h) until it has run: it survives a
 * restart, and every instance sharing the database takes jobs from the same
 * queue, a claimed job leased to one runner at a time. A job that fails is
 * retried after retry_base_ms · 2^(attempt-1) (at most an hour, ±10 %),
 * and after max_attempts it is kept as failed for the operator (jobs_stats).
 *
 * The runner is a thread per lane of the queue (store_jobs.h: scheduled
 * changes and purges are punctual, the rest background), each with its own
 * database connection, so the request path never waits for a job: a
 * handler only enqueues (one INSERT, in its own transaction or the
 * caller's) and wakes the job's lane. Each sleeps up to
 * jobs.poll_interval_ms between looks at the queue (jobs of other
 * instances are seen then), and wakes at once for this instance's and at
 * the time of its lane's next due job.
 *
 * Schedules (jobs.schedule_*, cron.h) enqueue kind "retention", "warm" and
 * "rollup" at each tick with the unique key "KIND@TICK_MS", so N instances
 * that all reach a tick make one job. Ticks missed while no instance ran
 * are not made up.
 *
 * Built in: "rollup" (hourly views older than 8 days become daily ones) and
 * "purge" ({"keys":[…]} sent to cdn.purge_url, purge.h). Other kinds are
 * registered by their modules before jobs_start; a job whose kind nobody
 * registered fails (and is retried, in case an instance that knows it
 * takes it) rather than being dropped.
 *
 * Lifecycle: jobs_configure (validates, exits the CLI with 2 on a bad
 * schedule or purge URL), jobs_register…, jobs_start once the server is up,
 * jobs_stop before it tears down what jobs use (the cache).
 */
#ifndef STRATA_JOBS_H
#define STRATA_JOBS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "store/store.h"

/* Runs one job on the runner's connection. payload is borrowed (an object,
 * possibly empty). 0 on success; nonzero with err (a sentence) on failure. */
typedef int (*job_fn)(store_t *st, const json_t *payload, char *err, size_t err_size);

/* Keeps cfg (borrowed for the life of the process) and checks the settings
 * jobs read: the three schedules and the [cdn] purge endpoint. Registers
 * the built-in kinds. 0, or -1 with err naming the key. Call it before any
 * other jobs_* function, whether or not jobs.enabled. */
int jobs_configure(const strata_config *cfg, char *err, size_t err_size);

/* Registers fn for kind (at most 63 bytes; up to 32 kinds). Before
 * jobs_start. -1 if the kind is taken or the table is full. */
int jobs_register(const char *kind, job_fn fn);

/* Starts the runner thread when jobs.enabled (otherwise does nothing and
 * returns 0). 0, or -1 after logging why (the database could not be opened,
 * no thread). */
int jobs_start(void);

/* Stops the runner: the job it is running finishes first, waiting at most
 * server.shutdown_timeout_ms (a job still running then keeps its lease and
 * runs again elsewhere or after the restart). Idempotent; a jobs_start
 * after it does nothing. */
void jobs_stop(void);

/* Queues a job of kind due in delay_ms, from any thread with that thread's
 * store. payload is borrowed (NULL: {}); unique_key may be NULL (see
 * store_jobs.h: a key already queued adds nothing and is not an error).
 * Wakes this instance's runner. STORE_OK or a store status. */
int jobs_enqueue(store_t *st, const char *kind, const json_t *payload, int64_t delay_ms, const char *unique_key);
/* Wakes this instance's runner: a write queued a job of its own, in its
 * own transaction (store_item_save_draft_diffed). */
void jobs_wake(void);

/* Queues the purge of surrogate keys (as tagged, "main:item:12") at the
 * configured CDN: one "purge" job per PURGE_KEYS_MAX_BYTES of keys. Keys
 * that cannot travel in a header are skipped. STORE_OK and nothing queued
 * when cdn.purge_url is empty. */
int jobs_purge_enqueue(store_t *st, const char *const *keys, size_t count);

/* For the operator: the queue's counts (store_jobs_stats) plus this
 * instance's runner: {"runner":{"enabled","running","jobs_run","jobs_failed",
 * "schedules":{KIND:{"schedule","next_at"}…}}, "queued", …}. NULL with
 * store_errmsg(st) on failure. */
json_t *jobs_stats(store_t *st);

#endif
