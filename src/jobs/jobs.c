/*
 * jobs.c — the job runner: two threads, one per lane of the queue
 * (store_jobs.h), that claim due jobs and run them, each on its own
 * database connection (jobs.h has the model; store/jobs.c the SQL).
 *
 * Lanes. The background lane's thread also fires the schedules and prunes,
 * and runs at the database workers' CPU priority; the punctual lane's
 * (scheduled publishes, CDN purges) runs at the event loops' priority and
 * never waits behind the background lane's backlog: a scheduled change is
 * due within a second of its time even while a burst of saves has queued
 * thousands of diffs and the machine is busy serving.
 *
 * The loop. Each turn a lane's runner (1) in the background lane, enqueues
 * the tick of every schedule whose time has come and now and then prunes
 * finished markers and old failures, (2) claims and runs one due job of its
 * lane. After a job it turns again at once, so a backlog drains; when
 * nothing was due it sleeps on its condition variable until the poll
 * interval ends, its next job or tick is due, or jobs_enqueue of this
 * process signals it. Everything the loops share with other threads (the
 * wake flags, the stop flag, the schedules' next ticks) is under
 * runner.lock; the registry is written only before the threads start.
 *
 * A run ends in one of three writes, each fenced by the attempt it ran as:
 * complete (deleted, or a marker for a keyed job), retry (run_at moved by
 * the backoff) or bury (failed_at). Attempts are counted at the claim, and
 * a job claimed max_attempts times whose last attempt never ended (its
 * process crashed or was killed while running it) is buried by the next
 * claim without running again (store_job_claim), so a job that crashes the
 * process cannot crash every instance in turn forever.
 */
#include "jobs/jobs.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "jobs/cron.h"
#include "jobs/purge.h"
#include "store/store_jobs.h"

enum {
    KINDS_MAX = 32,
    SCHEDULE_COUNT = 4,
    ERR_MAX = 512,
    PURGE_TIMEOUT_MS = 5000,
    PURGE_KEYS_PER_JOB_MAX = 1000,
    PRUNE_INTERVAL_MS = 10 * 60 * 1000,
    BACKOFF_MAX_MS = 3600 * 1000,
    YIELD_WINDOW_MS = 100, /* request writes this recent make the runner pause between jobs … */
    YIELD_PAUSE_MS = 5,    /* … this long */
};

#define ROLLUP_AGE_MS (8 * 24 * 3600 * 1000LL) /* the widest popularity window is 7 days */

typedef struct job_kind {
    char name[STORE_JOB_KIND_MAX + 1];
    job_fn fn;
} job_kind;

typedef struct schedule {
    const char *kind;
    const char *key; /* the configuration key, for messages */
    const char *text;
    cron_schedule cron;
    int64_t next_at; /* ms; -1 never. Under runner.lock */
} schedule;

/* One lane's runner thread. */
typedef struct lane {
    store_job_lane which;
    const char *name; /* in log lines */
    pthread_t thread;
    pthread_cond_t wake; /* it waits here (CLOCK_MONOTONIC) */
    bool wake_pending;   /* under runner.lock */
    bool exited;         /* under runner.lock */
    store_t *store;      /* its connection */
    uint64_t random;     /* xorshift state for the jitter; its thread only */
} lane;

enum { LANES = 2 };

static struct {
    const strata_config *cfg;
    purge_target purge;
    bool purge_enabled;
    job_kind kinds[KINDS_MAX];
    size_t kind_count;
    schedule schedules[SCHEDULE_COUNT];

    pthread_mutex_t lock;
    pthread_cond_t finished; /* jobs_stop waits here */
    bool started, stopping;
    bool closed; /* jobs_stop ran: a start that comes later (a very early SIGTERM) does nothing */
    lane lanes[LANES];
    int lanes_started; /* threads made: the first lanes_started of lanes */
    atomic_uint_fast64_t jobs_run, jobs_failed;
} runner = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .lanes = {[STORE_JOB_LANE_BACKGROUND] = {.which = STORE_JOB_LANE_BACKGROUND, .name = "background"},
              [STORE_JOB_LANE_PUNCTUAL] = {.which = STORE_JOB_LANE_PUNCTUAL, .name = "punctual"}},
};

/* ---- registry and configuration ------------------------------------------ */

static const job_kind *kind_find(const char *name)
{
    for (size_t i = 0; i < runner.kind_count; i++)
        if (strcmp(runner.kinds[i].name, name) == 0)
            return &runner.kinds[i];
    return NULL;
}

int jobs_register(const char *kind, job_fn fn)
{
    pthread_mutex_lock(&runner.lock);
    size_t len = strnlen(kind, STORE_JOB_KIND_MAX + 1);
    int rc = -1;
    if (!runner.started && fn != NULL && len > 0 && len <= STORE_JOB_KIND_MAX && kind_find(kind) == NULL &&
        runner.kind_count < KINDS_MAX) {
        snprintf(runner.kinds[runner.kind_count].name, sizeof runner.kinds[0].name, "%s", kind);
        runner.kinds[runner.kind_count++].fn = fn;
        rc = 0;
    }
    pthread_mutex_unlock(&runner.lock);
    return rc;
}

static int rollup_job(store_t *st, const json_t *payload, char *err, size_t err_size);
static int purge_job(store_t *st, const json_t *payload, char *err, size_t err_size);

int jobs_configure(const strata_config *cfg, char *err, size_t err_size)
{
    runner.cfg = cfg;
    const schedule schedules[SCHEDULE_COUNT] = {
        {"retention", "jobs.schedule_retention", cfg->jobs_schedule_retention, {0}, -1},
        {"warm", "jobs.schedule_warm", cfg->jobs_schedule_warm, {0}, -1},
        {"rollup", "jobs.schedule_rollup", cfg->jobs_schedule_rollup, {0}, -1},
        {"backup", "backup.schedule", cfg->backup_schedule, {0}, -1},
    };
    int64_t now = store_now_ms();
    for (size_t i = 0; i < SCHEDULE_COUNT; i++) {
        schedule *s = &runner.schedules[i];
        *s = schedules[i];
        char why[256];
        if (cron_parse(s->text, &s->cron, why, sizeof why) != 0) {
            snprintf(err, err_size, "%s: %s", s->key, why);
            return -1;
        }
        if (s->cron.kind != CRON_NEVER && cron_next(&s->cron, now) < 0) {
            snprintf(err, err_size, "%s: '%s' matches no date", s->key, s->text);
            return -1;
        }
    }
    runner.purge_enabled = cfg->cdn_purge_url[0] != '\0';
    if (runner.purge_enabled && purge_target_parse(cfg->cdn_purge_url, cfg->cdn_purge_method, cfg->cdn_purge_header,
                                                   &runner.purge, err, err_size) != 0)
        return -1;
    if (kind_find("rollup") == NULL)
        jobs_register("rollup", rollup_job);
    if (kind_find("purge") == NULL)
        jobs_register("purge", purge_job);
    return 0;
}

/* ---- enqueueing (any thread) ----------------------------------------------- */

static void runner_wake(store_job_lane which)
{
    pthread_mutex_lock(&runner.lock);
    if (runner.started) {
        runner.lanes[which].wake_pending = true;
        pthread_cond_signal(&runner.lanes[which].wake);
    }
    pthread_mutex_unlock(&runner.lock);
}

void jobs_wake(void)
{
    runner_wake(STORE_JOB_LANE_BACKGROUND);
}

int jobs_enqueue(store_t *st, const char *kind, const json_t *payload, int64_t delay_ms, const char *unique_key)
{
    char *text = payload != NULL ? json_dumps(payload, JSON_COMPACT) : NULL;
    if (payload != NULL && text == NULL)
        return STORE_ERROR;
    int64_t id = 0;
    int status = store_job_enqueue(st, kind, text, store_now_ms() + (delay_ms > 0 ? delay_ms : 0), unique_key, &id);
    free(text);
    if (status == STORE_OK && id > 0)
        runner_wake(store_job_lane_of(kind));
    return status;
}

/* Queues {"keys": *batch} (taken) as one purge job. */
/* Each batch goes now and again cdn.repurge_ms later. Between the write
 * and the moment every instance has heard of it over the bus (a few ms; a
 * reconnect's worth when Redis blinks), the CDN may fetch the old copy
 * from an instance that has not, right after the first purge, and keep it
 * for its whole s-maxage; the second purge bounds that to repurge_ms. */
static int purge_batch_enqueue(store_t *st, json_t **batch)
{
    json_t *payload = json_pack("{s:o}", "keys", *batch);
    *batch = NULL;
    int status = payload != NULL ? jobs_enqueue(st, "purge", payload, 0, NULL) : STORE_ERROR;
    if (status == STORE_OK && runner.cfg->cdn_repurge_ms > 0)
        status = jobs_enqueue(st, "purge", payload, runner.cfg->cdn_repurge_ms, NULL);
    json_decref(payload);
    return status;
}

int jobs_purge_enqueue(store_t *st, const char *const *keys, size_t count)
{
    if (!runner.purge_enabled)
        return STORE_OK;
    int status = STORE_OK;
    json_t *batch = NULL;
    size_t batch_bytes = 0;
    for (size_t i = 0; i < count && status == STORE_OK; i++) {
        if (!purge_key_valid(keys[i]))
            continue;
        size_t bytes = strlen(keys[i]) + 1; /* with its separator */
        if (batch != NULL &&
            (batch_bytes + bytes > PURGE_KEYS_MAX_BYTES || json_array_size(batch) == PURGE_KEYS_PER_JOB_MAX)) {
            status = purge_batch_enqueue(st, &batch);
            batch_bytes = 0;
        }
        if (status == STORE_OK && batch == NULL)
            batch = json_array();
        if (status == STORE_OK && (batch == NULL || json_array_append_new(batch, json_string(keys[i])) != 0))
            status = STORE_ERROR;
        batch_bytes += bytes;
    }
    if (status == STORE_OK && batch != NULL)
        status = purge_batch_enqueue(st, &batch);
    json_decref(batch);
    return status;
}

/* ---- built-in kinds ---------------------------------------------------------- */

static int rollup_job(store_t *st, const json_t *payload, char *err, size_t err_size)
{
    (void)payload;
    int64_t folded = 0;
    if (store_views_rollup(st, store_now_ms() - ROLLUP_AGE_MS, &folded) != STORE_OK) {
        snprintf(err, err_size, "%s", store_errmsg(st));
        return -1;
    }
    log_line line;
    log_begin(&line, folded > 0 ? LOG_INFO : LOG_DEBUG, "views rolled up");
    log_int(&line, "hourly_rows_folded", folded);
    log_end(&line);
    return 0;
}

static int purge_job(store_t *st, const json_t *payload, char *err, size_t err_size)
{
    (void)st;
    if (!runner.purge_enabled) {
        snprintf(err, err_size, "cdn.purge_url is not set in this instance");
        return -1;
    }
    const json_t *list = json_object_get(payload, "keys");
    size_t count = json_array_size(list);
    if (!json_is_array(list) || count == 0 || count > PURGE_KEYS_PER_JOB_MAX) {
        snprintf(err, err_size, "the payload is not {\"keys\":[1 to %d strings]}", PURGE_KEYS_PER_JOB_MAX);
        return -1;
    }
    const char *keys[PURGE_KEYS_PER_JOB_MAX];
    for (size_t i = 0; i < count; i++) {
        keys[i] = json_string_value(json_array_get(list, i));
        if (keys[i] == NULL) {
            snprintf(err, err_size, "keys[%zu] is not a string", i);
            return -1;
        }
    }
    return purge_send(&runner.purge, keys, count, PURGE_TIMEOUT_MS, err, err_size);
}

/* ---- one run ------------------------------------------------------------------ */

/* retry_base · 2^(attempt-1), capped at an hour, ±10 %. */
static int64_t backoff_ms(lane *l, int attempt)
{
    int64_t delay = runner.cfg->jobs_retry_base_ms;
    for (int i = 1; i < attempt && delay < BACKOFF_MAX_MS; i++)
        delay *= 2;
    if (delay > BACKOFF_MAX_MS)
        delay = BACKOFF_MAX_MS;
    l->random ^= l->random << 13;
    l->random ^= l->random >> 7;
    l->random ^= l->random << 17;
    int64_t spread = delay / 5; /* the jitter spans [-10 %, +10 %] */
    int64_t jitter = spread > 0 ? (int64_t)(l->random % (uint64_t)(spread + 1)) - spread / 2 : 0;
    return delay + jitter > 0 ? delay + jitter : 1;
}

/* Runs the job's function; 0, or nonzero with err filled. */
static int job_execute(store_t *st, const store_job *job, char *err, size_t err_size)
{
    const job_kind *kind = kind_find(job->kind);
    if (kind == NULL) {
        snprintf(err, err_size, "no function is registered for kind '%s' in this instance", job->kind);
        return -1;
    }
    json_error_t parse_error;
    json_t *payload = json_loads(job->payload, JSON_REJECT_DUPLICATES, &parse_error);
    if (!json_is_object(payload)) {
        snprintf(err, err_size, "the payload is not a JSON object");
        json_decref(payload);
        return -1;
    }
    err[0] = '\0';
    int rc = kind->fn(st, payload, err, err_size);
    json_decref(payload);
    if (rc != 0 && err[0] == '\0')
        snprintf(err, err_size, "the job failed without saying why");
    return rc;
}

/* Begins a log line about a run: msg, kind, job id, attempt. */
static void run_log_begin(log_line *line, log_level level, const char *msg, const store_job *job)
{
    log_begin(line, level, msg);
    log_str(line, "kind", job->kind);
    log_int(line, "job", job->id);
    log_int(line, "attempt", job->attempts);
}

/* Records how the run went; the store status of that write. */
static int run_finish(lane *l, const store_job *job, int rc, const char *error, int64_t elapsed_ms)
{
    store_t *st = l->store;
    int64_t now = store_now_ms();
    log_line line;
    if (rc == 0) {
        atomic_fetch_add(&runner.jobs_run, 1);
        run_log_begin(&line, LOG_DEBUG, "job done", job);
        log_int(&line, "ms", elapsed_ms);
        log_end(&line);
        return store_job_complete(st, job->id, job->attempts, now);
    }
    atomic_fetch_add(&runner.jobs_failed, 1);
    bool last = job->attempts >= runner.cfg->jobs_max_attempts;
    int64_t delay = last ? 0 : backoff_ms(l, job->attempts);
    run_log_begin(&line, LOG_WARN, last ? "job failed for good" : "job failed; will retry", job);
    log_str(&line, "error", error);
    if (!last)
        log_int(&line, "retry_in_ms", delay);
    log_end(&line);
    return last ? store_job_bury(st, job->id, job->attempts, now, error)
                : store_job_retry(st, job->id, job->attempts, now + delay, error);
}

/* Claims and runs one due job of the lane. 1 if one ran, 0 if none was
 * due, -1 if the queue could not be read. */
static int run_one(lane *l)
{
    store_t *st = l->store;
    store_job job;
    int status =
        store_job_claim(st, store_now_ms(), runner.cfg->jobs_lease_ms, runner.cfg->jobs_max_attempts, l->which, &job);
    if (job.buried > 0) {
        log_line line;
        log_begin(&line, LOG_WARN, "jobs buried: attempts used up, the last one never ended");
        log_int(&line, "jobs", job.buried);
        log_int(&line, "max_attempts", runner.cfg->jobs_max_attempts);
        log_end(&line);
    }
    if (status == STORE_NOT_FOUND)
        return 0;
    if (status != STORE_OK) {
        log_event_str(LOG_WARN, "job queue unreadable", "error", store_errmsg(st));
        return -1;
    }
    log_line line;
    run_log_begin(&line, LOG_DEBUG, "job started", &job);
    log_end(&line);
    char err[ERR_MAX];
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int rc = job_execute(st, &job, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &end);
    int64_t elapsed = (end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1000000;
    status = run_finish(l, &job, rc, err, elapsed);
    if (status != STORE_OK) {
        run_log_begin(&line, LOG_WARN, "job outcome not recorded", &job);
        log_str(&line, "error", store_errmsg(st));
        log_end(&line);
    }
    store_job_release(&job);
    return 1;
}

/* ---- the loop -------------------------------------------------------------------- */

/* Enqueues each schedule's tick once its time has come; returns the
 * earliest next tick (or INT64_MAX). A tick that could not be enqueued
 * stays due and is tried again next turn. */
static int64_t schedules_fire(store_t *st, int64_t now)
{
    int64_t earliest = INT64_MAX;
    for (size_t i = 0; i < SCHEDULE_COUNT; i++) {
        schedule *s = &runner.schedules[i];
        pthread_mutex_lock(&runner.lock);
        int64_t tick = s->next_at;
        pthread_mutex_unlock(&runner.lock);
        if (tick >= 0 && tick <= now) {
            char key[STORE_JOB_KEY_MAX + 1];
            snprintf(key, sizeof key, "%s@%lld", s->kind, (long long)tick);
            int64_t id = 0;
            if (store_job_enqueue(st, s->kind, NULL, tick, key, &id) == STORE_OK) {
                log_line line;
                log_begin(&line, LOG_DEBUG, id > 0 ? "job scheduled" : "job already scheduled");
                log_str(&line, "kind", s->kind);
                log_str(&line, "key", key);
                log_int(&line, "job", id);
                log_end(&line);
                tick = cron_next(&s->cron, now); /* ticks missed meanwhile are skipped */
                pthread_mutex_lock(&runner.lock);
                s->next_at = tick;
                pthread_mutex_unlock(&runner.lock);
            } else {
                log_event_str(LOG_WARN, "scheduled job not queued", "error", store_errmsg(st));
            }
        }
        if (tick >= 0 && tick < earliest)
            earliest = tick;
    }
    return earliest;
}

static struct timespec monotonic_after(int64_t ms)
{
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    at.tv_sec += ms / 1000;
    at.tv_nsec += (ms % 1000) * 1000000;
    if (at.tv_nsec >= 1000000000) {
        at.tv_sec += 1;
        at.tv_nsec -= 1000000000;
    }
    return at;
}

/* Sleeps until woken, stopped, or wait_ms passed. False once stopping. */
static bool runner_sleep(lane *l, int64_t wait_ms)
{
    struct timespec until = monotonic_after(wait_ms > 0 ? wait_ms : 0);
    pthread_mutex_lock(&runner.lock);
    while (!l->wake_pending && !runner.stopping)
        if (pthread_cond_timedwait(&l->wake, &runner.lock, &until) == ETIMEDOUT)
            break;
    l->wake_pending = false;
    bool go_on = !runner.stopping;
    pthread_mutex_unlock(&runner.lock);
    return go_on;
}

static bool runner_stopping(void)
{
    pthread_mutex_lock(&runner.lock);
    bool stopping = runner.stopping;
    pthread_mutex_unlock(&runner.lock);
    return stopping;
}

/* The background runner's CPU (a diff of two long versions) is
 * background work: it runs at the database workers' priority
 * (server.worker_nice), not above the editors' saves those workers run.
 * Not lower: the runner's transactions hold the commit group's turn for
 * a moment, and a runner kept off the CPU meanwhile would hold up every
 * editor's save behind it. */
static void runner_lower_priority(void)
{
    int nice = config_worker_nice(runner.cfg);
    if (nice > 0 && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), getpriority(PRIO_PROCESS, 0) + nice) != 0)
        log_event(LOG_WARN, "the job runner could not lower its CPU priority");
}

/* Between two jobs while editors are writing: a pause, so that a backlog
 * (a diff job per save after a burst of saves) drains at a bounded share
 * of the CPU instead of taking it from the saves, and at full speed once
 * they stop. Not on the runner's condition variable: every save wakes it. */
static void runner_yield(const store_t *st)
{
    if (!store_request_writes_recent(st, YIELD_WINDOW_MS))
        return;
    struct timespec pause = {.tv_sec = 0, .tv_nsec = YIELD_PAUSE_MS * 1000000L};
    nanosleep(&pause, NULL);
}

/* The background lane's chores before each claim: the schedules' ticks
 * and, now and then, the pruning. The earliest next tick. */
static int64_t background_chores(store_t *st, int64_t now, int64_t *next_prune)
{
    int64_t next_tick = schedules_fire(st, now);
    if (now >= *next_prune) {
        int64_t removed = 0;
        if (store_jobs_prune(st, now, &removed) != STORE_OK)
            log_event_str(LOG_WARN, "finished jobs not pruned", "error", store_errmsg(st));
        *next_prune = now + PRUNE_INTERVAL_MS;
    }
    return next_tick;
}

static void *runner_main(void *arg)
{
    lane *l = arg;
    store_t *st = l->store;
    bool background = l->which == STORE_JOB_LANE_BACKGROUND;
    if (background)
        runner_lower_priority();
    int64_t next_prune = 0;
    while (!runner_stopping()) {
        int64_t now = store_now_ms();
        int64_t next_tick = background ? background_chores(st, now, &next_prune) : INT64_MAX;
        if (run_one(l) == 1) {
            if (background)
                runner_yield(st);
            continue;
        }
        int64_t wait = runner.cfg->jobs_poll_interval_ms, next_due = INT64_MAX;
        if (store_jobs_next_due(st, now, l->which, &next_due) != STORE_OK)
            next_due = INT64_MAX; /* the poll finds it */
        if (next_tick < next_due)
            next_due = next_tick;
        if (next_due != INT64_MAX && next_due - now < wait)
            wait = next_due - now > 0 ? next_due - now : 0;
        if (!runner_sleep(l, wait))
            break;
    }
    pthread_mutex_lock(&runner.lock);
    l->exited = true;
    pthread_cond_broadcast(&runner.finished);
    pthread_mutex_unlock(&runner.lock);
    return NULL;
}

/* Opens a lane's connection. The runners' own commits (claims,
 * completions, what jobs write) skip the fsync: a job is run at least once
 * anyway, so losing the last of them to a power cut only runs a job again;
 * meanwhile editors' saves do not queue behind two fsyncs per job. Jobs
 * are enqueued by request connections, which stay fully durable. The
 * background lane's transactions also let editors' writes go first; the
 * punctual lane's are due now. */
static int lane_open(lane *l)
{
    if (store_open(runner.cfg->db_url, &l->store) != STORE_OK) {
        log_event_str(LOG_ERROR, "job runner not started", "error", store_errmsg(NULL));
        return -1;
    }
    store_relax_durability(l->store);
    if (l->which == STORE_JOB_LANE_BACKGROUND)
        store_writes_background(l->store);
    if (crypto_random(&l->random, sizeof l->random) != 0 || l->random == 0)
        l->random = (uint64_t)store_now_ms() | 1;
    l->exited = l->wake_pending = false;
    return 0;
}

int jobs_start(void)
{
    const strata_config *cfg = runner.cfg;
    pthread_mutex_lock(&runner.lock);
    bool skip = cfg == NULL || !cfg->jobs_enabled || runner.started || runner.closed;
    pthread_mutex_unlock(&runner.lock);
    if (skip)
        return 0;
    for (int i = 0; i < LANES; i++)
        if (lane_open(&runner.lanes[i]) != 0) {
            for (int j = 0; j < i; j++)
                store_close(&runner.lanes[j].store);
            return -1;
        }
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    for (int i = 0; i < LANES; i++)
        pthread_cond_init(&runner.lanes[i].wake, &attr);
    pthread_cond_init(&runner.finished, &attr);
    pthread_condattr_destroy(&attr);

    int64_t now = store_now_ms();
    pthread_mutex_lock(&runner.lock);
    if (runner.closed) { /* stopped while the connections opened */
        pthread_mutex_unlock(&runner.lock);
        for (int i = 0; i < LANES; i++)
            store_close(&runner.lanes[i].store);
        return 0;
    }
    for (size_t i = 0; i < SCHEDULE_COUNT; i++)
        runner.schedules[i].next_at = cron_next(&runner.schedules[i].cron, now);
    runner.started = true;
    runner.stopping = false;
    int created = 0;
    while (created < LANES &&
           pthread_create(&runner.lanes[created].thread, NULL, runner_main, &runner.lanes[created]) == 0)
        created++;
    runner.lanes_started = created;
    pthread_mutex_unlock(&runner.lock);
    if (created < LANES) {
        jobs_stop(); /* the lanes that did start, with their connections */
        for (int i = created; i < LANES; i++)
            store_close(&runner.lanes[i].store);
        log_event(LOG_ERROR, "job runner not started: no thread");
        return -1;
    }
    log_line line;
    log_begin(&line, LOG_INFO, "job runner started");
    log_int(&line, "poll_interval_ms", cfg->jobs_poll_interval_ms);
    for (size_t i = 0; i < SCHEDULE_COUNT; i++)
        log_str(&line, runner.schedules[i].kind, runner.schedules[i].text);
    log_end(&line);
    return 0;
}

/* Whether every started lane's thread has left its loop; under runner.lock. */
static bool lanes_exited(void)
{
    for (int i = 0; i < runner.lanes_started; i++)
        if (!runner.lanes[i].exited)
            return false;
    return true;
}

void jobs_stop(void)
{
    pthread_mutex_lock(&runner.lock);
    runner.closed = true;
    if (!runner.started) {
        pthread_mutex_unlock(&runner.lock);
        return;
    }
    runner.stopping = true;
    int started = runner.lanes_started;
    for (int i = 0; i < started; i++)
        pthread_cond_signal(&runner.lanes[i].wake);
    struct timespec until = monotonic_after(runner.cfg->shutdown_timeout_ms);
    while (!lanes_exited())
        if (pthread_cond_timedwait(&runner.finished, &runner.lock, &until) == ETIMEDOUT)
            break;
    bool exited[LANES];
    for (int i = 0; i < started; i++)
        exited[i] = runner.lanes[i].exited;
    runner.started = false;
    runner.lanes_started = 0;
    pthread_mutex_unlock(&runner.lock);
    bool all = true;
    for (int i = 0; i < started; i++) {
        lane *l = &runner.lanes[i];
        if (!exited[i]) {
            /* its job keeps its lease and runs again after it lapses */
            log_event_str(LOG_WARN, "job runner still busy at shutdown; its job will run again", "lane", l->name);
            pthread_detach(l->thread);
            all = false;
            continue;
        }
        pthread_join(l->thread, NULL);
        store_close(&l->store);
    }
    if (all)
        log_event(LOG_INFO, "job runner stopped");
}

/* ---- stats ------------------------------------------------------------------------ */

json_t *jobs_stats(store_t *st)
{
    int64_t now = store_now_ms();
    json_t *stats = NULL;
    if (store_jobs_stats(st, now, &stats) != STORE_OK)
        return NULL;
    json_t *schedules = json_object();
    pthread_mutex_lock(&runner.lock);
    bool running = runner.started;
    for (size_t i = 0; i < SCHEDULE_COUNT && runner.cfg != NULL && schedules != NULL; i++) {
        const schedule *s = &runner.schedules[i];
        char at[40] = "";
        if (running && s->next_at >= 0) {
            time_t secs = (time_t)(s->next_at / 1000);
            struct tm tm;
            gmtime_r(&secs, &tm);
            size_t n = strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%S", &tm);
            snprintf(at + n, sizeof at - n, ".%03dZ", (int)(s->next_at % 1000));
        }
        json_object_set_new(
            schedules, s->kind,
            json_pack("{s:s, s:o}", "schedule", s->text, "next_at", at[0] ? json_string(at) : json_null()));
    }
    pthread_mutex_unlock(&runner.lock);
    json_t *info = json_pack("{s:b, s:b, s:I, s:I, s:o*}", "enabled", runner.cfg && runner.cfg->jobs_enabled, "running",
                             running, "jobs_run", (json_int_t)atomic_load(&runner.jobs_run), "jobs_failed",
                             (json_int_t)atomic_load(&runner.jobs_failed), "schedules", schedules);
    if (info == NULL || json_object_set_new(stats, "runner", info) != 0) {
        json_decref(stats);
        return NULL;
    }
    return stats;
}
