/*
 * worker_pool.c — the database worker threads (see worker_pool.h).
 *
 * A lane is a doubly linked list, so a job whose deadline passes while it
 * waits is taken back in O(1) (worker_pool_cancel) by the loop that timed
 * it out. A worker picks with lane_pick: the head of the first lane in
 * order with a job, skipping a lane while its running_max workers already
 * run its jobs (editors' and public: all but one); the public lane is
 * read by public_pick (first in first out until congested, then newest
 * first, its oldest shed once the congestion stands), and only within the
 * fills' CPU budget while CPU is scarce (fill_budget.h; a worker held back
 * by it sleeps until the bucket has refilled, or until worker_pool_awaited
 * says a job someone else waits for may be queued, which awaited_pick
 * starts anyway). A worker that ends a public job while public work waits
 * wakes one other, since it may have been passed over by that cap (the
 * worker itself picks again at once). A public submit takes its
 * submitter's late jobs back off the lane (take_back_late), so in a flood
 * the oldest are shed by the loop that queued them rather than handed to
 * a worker and back.
 *
 * Stopping drains: a worker exits only when every lane is empty and
 * stopping is set, so every job submitted before worker_pool_stop runs to
 * the end and an acknowledged write is never abandoned half way.
 */
#include "http/worker_pool.h"

#include <sched.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "metrics/metrics.h"

static uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void lane_push(pool_queue *q, pool_job *job)
{
    if (q->head == NULL)
        q->last_empty_ns = clock_ns();
    job->next = NULL;
    job->prev = q->tail;
    if (q->tail != NULL)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    q->length++;
    job->queued = true;
}

static void lane_remove(pool_queue *q, pool_job *job)
{
    if (job->prev != NULL)
        job->prev->next = job->next;
    else
        q->head = job->next;
    if (job->next != NULL)
        job->next->prev = job->prev;
    else
        q->tail = job->prev;
    q->length--;
    job->next = job->prev = NULL;
    job->queued = false;
}

/* Whether job has waited past the public lane's target (none: never). */
static bool past_target(const worker_pool *pool, const pool_job *job, uint64_t now)
{
    return pool->target_ns != 0 && now - job->enqueued_ns > pool->target_ns;
}

/* Whether the lane has not been empty for POOL_STANDING_MS: a standing
 * queue, not a burst (never, without a target). */
static bool standing(const worker_pool *pool, const pool_queue *q, uint64_t now)
{
    return pool->target_ns != 0 && now - q->last_empty_ns > (uint64_t)POOL_STANDING_MS * 1000000u;
}

/* The public lane's next job (adaptive LIFO, as in Facebook's "Fail at
 * Scale"). While its oldest job has waited less than the target, first in
 * first out — even if the lane has not been empty for a while: more
 * clients than workers, each answered in a few milliseconds, keep a queue
 * that is never empty and never slow, and running the newest first there
 * would leave the oldest to wait out the target and be shed (measured: a
 * closed loop of 16 clients on PostgreSQL's 7 public workers, p99 44 ms
 * and 224 requests shed, where arrival order answers every one). Once
 * the oldest has waited the target the lane is congested and the newest
 * job is run first, so what is answered is answered at once rather than
 * after the whole queue; once the lane has also stood non-empty for
 * POOL_STANDING_MS, the oldest job is handed out marked `late` (to be
 * shed), so a standing queue keeps only work younger than the target. A
 * short burst is reordered but never shed. */
static pool_job *public_pick(worker_pool *pool, pool_queue *q)
{
    uint64_t now = clock_ns();
    pool_job *oldest = q->head;
    bool congested = past_target(pool, oldest, now), stood = standing(pool, q, now);
    pool_job *job = congested && !stood ? q->tail : oldest;
    job->late = congested && stood;
    return job;
}

/* Whether a public job under its lane's cap may start now: while the
 * CPU is scarce, within the fills' budget (fill_budget.h); if only the
 * budget holds it back, *wait_ns is when to look again. Draining at stop
 * is never held back. */
static bool public_may_start(worker_pool *pool, uint64_t *wait_ns)
{
    if (pool->stopping)
        return true;
    *wait_ns = fill_budget_wait_ns(&pool->budget, clock_ns());
    metrics_pool_budget_scarce(pool->budget.scarce_total_ns);
    return *wait_ns == 0;
}

/* While the budget holds public jobs back: the newest of the lane's last
 * POOL_AWAITED_SCAN jobs that someone else waits for (worker_pool.h),
 * which starts anyway; else NULL. The lane is looked at only after a
 * flight has had its first waiter (worker_pool_awaited) and until a look
 * finds none: each look takes a cache lock per job, under the pool's lock,
 * on a niced worker that the loops' submits may then wait for — a flood of
 * distinct keys, which has no waiters, must not pay for it. */
static pool_job *awaited_pick(worker_pool *pool, pool_queue *q)
{
    if (!pool->awaited_pending)
        return NULL;
    pool_job *job = q->tail;
    for (int scanned = 0; job != NULL && scanned < POOL_AWAITED_SCAN; scanned++, job = job->prev)
        if (job->awaited != NULL && job->awaited(job)) {
            job->late = false;
            metrics_pool_awaited_fill();
            return job;
        }
    pool->awaited_pending = false;
    return NULL;
}

/* The job a worker should take now, off its lane; NULL if none may run
 * (then *wait_ns, if not 0, is when the budget lets a public job start).
 * *metered: a public job that starts within the budget, to be charged
 * its CPU while the budget meters (an awaited one the budget held back
 * is not). */
static pool_job *lane_pick(worker_pool *pool, uint64_t *wait_ns, bool *metered)
{
    *wait_ns = 0;
    *metered = false;
    for (int lane = 0; lane < POOL_LANES; lane++) {
        pool_queue *q = &pool->lanes[lane];
        if (q->head == NULL || pool->running[lane] >= pool->running_max[lane])
            continue;
        pool_job *job = q->head;
        if (lane == POOL_PUBLIC) {
            if (public_may_start(pool, wait_ns)) {
                job = public_pick(pool, q);
                *metered = fill_budget_metering(&pool->budget);
            } else if ((job = awaited_pick(pool, q)) == NULL) {
                continue;
            }
        }
        pool->running[lane]++;
        lane_remove(q, job);
        if (q->head == NULL)
            q->last_empty_ns = clock_ns();
        return job;
    }
    return NULL;
}

static bool lanes_empty(const worker_pool *pool)
{
    for (int lane = 0; lane < POOL_LANES; lane++)
        if (pool->lanes[lane].head != NULL)
            return false;
    return true;
}

/* The worker's resource, opened on its thread (the opener logs why it
 * could not); the start waits for every worker's answer. */
static void *worker_open(worker_pool *pool)
{
    /* per thread on Linux: setpriority on the thread's id */
    if (pool->nice != 0 &&
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), getpriority(PRIO_PROCESS, 0) + pool->nice) != 0)
        log_event(LOG_WARN, "a database worker could not lower its CPU priority");
    void *worker = pool->fns.open(pool->fns.arg);
    pthread_mutex_lock(&pool->lock);
    pool->started++;
    pool->start_failed |= worker == NULL;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    return worker;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sleeps on the pool's condition (its lock held) until woken or, when
 * wait_ns is not 0, that long at most. */
static void pool_wait(worker_pool *pool, uint64_t wait_ns)
{
    if (wait_ns == 0) {
        pthread_cond_wait(&pool->wake, &pool->lock);
        return;
    }
    uint64_t until = clock_ns() + wait_ns;
    struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u), .tv_nsec = (long)(until % 1000000000u)};
    pool->budget_sleepers++;
    pthread_cond_timedwait(&pool->wake, &pool->lock, &ts);
    pool->budget_sleepers--;
}

static void *worker_main(void *arg)
{
    worker_pool *pool = arg;
    void *worker = worker_open(pool);
    if (worker == NULL)
        return NULL;
    /* The lock is held from the end of one job (its accounting) through
     * the pick of the next: one critical section between two jobs. */
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        pool_job *job;
        uint64_t wait_ns;
        /* a fill's CPU time is read (two system calls) only while the
         * budget meters it; otherwise the bucket is full anyway */
        bool metered;
        while ((job = lane_pick(pool, &wait_ns, &metered)) == NULL && !(pool->stopping && lanes_empty(pool)))
            pool_wait(pool, wait_ns);
        pthread_mutex_unlock(&pool->lock);
        if (job == NULL) /* stopping and drained */
            break;
        pool_lane lane = job->lane; /* the job may be gone once run */
        uint64_t stamp = job->queued_stamp;
        uint64_t cpu_before = metered ? thread_cpu_ns() : 0;
        metrics_pool_started(stamp);
        job->run(job, worker);
        if (stamp != 0)
            metrics_pool_finished();
        uint64_t cpu_used = metered ? thread_cpu_ns() - cpu_before : 0;
        pthread_mutex_lock(&pool->lock);
        pool->running[lane]--;
        if (metered)
            fill_budget_charge(&pool->budget, cpu_used);
        /* this worker picks again at once; another is needed only if work
         * of a capped lane waits (the cap may have passed it over) */
        if (lane != POOL_TASK && pool->lanes[lane].head != NULL)
            pthread_cond_signal(&pool->wake);
    }
    pool->fns.close(worker, pool->fns.arg);
    return NULL;
}

int worker_pool_start(worker_pool *pool, size_t count, const pool_worker_fns *fns, int nice)
{
    size_t all_but_one = count > 1 ? count - 1 : 1;
    *pool =
        (worker_pool){.fns = *fns,
                      .running_max = {[POOL_EDITOR] = all_but_one, [POOL_TASK] = count, [POOL_PUBLIC] = all_but_one},
                      .nice = nice};
    fill_budget_init(&pool->budget, 1);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC); /* pool_wait's deadlines */
    pthread_cond_init(&pool->wake, &monotonic);
    pthread_condattr_destroy(&monotonic);
    pool->threads = calloc(count, sizeof(*pool->threads));
    if (pool->threads == NULL)
        return -1;
    for (size_t i = 0; i < count; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0)
            break;
        pool->thread_count++;
    }
    pthread_mutex_lock(&pool->lock);
    while (pool->started < pool->thread_count)
        pthread_cond_wait(&pool->wake, &pool->lock);
    int failed = pool->start_failed || pool->thread_count < count;
    pthread_mutex_unlock(&pool->lock);
    metrics_pool_workers(failed ? 0 : count);
    if (failed) {
        worker_pool_stop(pool);
        return -1;
    }
    return 0;
}

void worker_pool_limit(worker_pool *pool, pool_lane lane, size_t max)
{
    pthread_mutex_lock(&pool->lock);
    pool->lanes[lane].max = lane == POOL_TASK ? 0 : max;
    pthread_mutex_unlock(&pool->lock);
}

void worker_pool_fill_share(worker_pool *pool, double share)
{
    pthread_mutex_lock(&pool->lock);
    pool->budget.share = share;
    pthread_mutex_unlock(&pool->lock);
}

void worker_pool_watch_loop(worker_pool *pool, const _Atomic uint64_t *requests)
{
    pthread_mutex_lock(&pool->lock);
    fill_budget_watch_loop(&pool->budget, requests);
    pthread_mutex_unlock(&pool->lock);
}

void worker_pool_target(worker_pool *pool, uint64_t target_ms)
{
    pthread_mutex_lock(&pool->lock);
    pool->target_ns = target_ms * 1000000u;
    pthread_mutex_unlock(&pool->lock);
}

/* Outside the lock: the queue-length metric for jobs taken back off a lane. */
static void pool_dequeued(const pool_job *taken)
{
    for (const pool_job *job = taken; job != NULL; job = job->next)
        if (job->queued_stamp != 0)
            metrics_pool_dequeued();
}

/* Under the lock: the owner's jobs among the oldest POOL_TAKE_BACK_SCAN of
 * a standing public lane that have waited past the target, off the lane
 * and chained by next — public_pick's test for `late`, so a burst is
 * never taken back. */
static pool_job *take_back_late(worker_pool *pool, pool_queue *q, const void *owner)
{
    uint64_t now = clock_ns();
    if (owner == NULL || q->head == NULL || !standing(pool, q, now))
        return NULL;
    pool_job *late = NULL, **tail = &late;
    pool_job *job = q->head;
    for (int scanned = 0; job != NULL && scanned < POOL_TAKE_BACK_SCAN; scanned++) {
        if (!past_target(pool, job, now))
            break; /* the lane is in arrival order: the rest are younger */
        pool_job *next = job->next;
        if (job->owner == owner) {
            lane_remove(q, job);
            *tail = job;
            tail = &job->next;
        }
        job = next;
    }
    return late;
}

bool worker_pool_submit(worker_pool *pool, pool_job *job, pool_lane lane, pool_job **late)
{
    job->lane = lane;
    pthread_mutex_lock(&pool->lock);
    pool_queue *q = &pool->lanes[lane];
    pool_job *taken = lane == POOL_PUBLIC && late != NULL ? take_back_late(pool, q, job->owner) : NULL;
    if (late != NULL)
        *late = taken;
    if (q->max != 0 && q->length >= q->max) {
        pthread_mutex_unlock(&pool->lock);
        pool_dequeued(taken);
        return false;
    }
    job->queued_stamp = metrics_pool_enqueued();
    job->enqueued_ns = clock_ns();
    job->late = false;
    lane_push(q, job);
    if (lane == POOL_PUBLIC)
        fill_budget_note_fill(&pool->budget);
    /* A public job the budget holds back, or that the lane's cap keeps
     * from every free worker, would only wake a worker to send it back to
     * sleep (thousands of times a second in a flood): a worker sleeping
     * until the budget allows one, or one ending a public job, takes it. */
    if (lane != POOL_PUBLIC || (pool->running[lane] < pool->running_max[lane] &&
                                (pool->budget_sleepers == 0 || !fill_budget_holding(&pool->budget))))
        pthread_cond_signal(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    pool_dequeued(taken);
    return true;
}

void worker_pool_awaited(worker_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->awaited_pending = true;
    if (pool->budget_sleepers > 0 && pool->running[POOL_PUBLIC] < pool->running_max[POOL_PUBLIC])
        pthread_cond_signal(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
}

/* Asked by an event loop for every miss, so it never waits for the lock:
 * the workers that hold it run niced, and a loop that waited for the lock
 * waited for a worker's CPU, its hits with it (measured under
 * bench/overload.sh: each loop blocked there about 50 times a second and
 * the machine showed 17 % idle while hits ran at 0.72 of their rate
 * alone). It samples the budget only when a sample is due and the lock is
 * free, and otherwise goes by the last sample. */
bool worker_pool_admit_on_loop(worker_pool *pool)
{
    if (pool->idle_public)
        return false;
    uint64_t now = clock_ns();
    if (fill_budget_sample_due(&pool->budget, now) && pthread_mutex_trylock(&pool->lock) == 0) {
        fill_budget_loops_may_fill(&pool->budget, now);
        pthread_mutex_unlock(&pool->lock);
    }
    bool admit = fill_budget_loops_may_fill_seen(&pool->budget);
    if (admit)
        fill_budget_note_fill(&pool->budget);
    return admit;
}

void worker_pool_ran_on_loop(worker_pool *pool, uint64_t ns)
{
    fill_budget_note_loop_fill(&pool->budget, ns);
}

bool worker_pool_cancel(worker_pool *pool, pool_job *job)
{
    pthread_mutex_lock(&pool->lock);
    bool queued = job->queued;
    if (queued)
        lane_remove(&pool->lanes[job->lane], job);
    pthread_mutex_unlock(&pool->lock);
    if (queued && job->queued_stamp != 0)
        metrics_pool_dequeued();
    return queued;
}

void worker_pool_stop(worker_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (size_t i = 0; i < pool->thread_count; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    pool->threads = NULL;
    pool->thread_count = 0;
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
}

/* A thread of its own tries the round trip: leaving SCHED_IDLE needs the
 * right to the thread's nice value (RLIMIT_NICE, or CAP_SYS_NICE), and a
 * worker that could not come back would run editors' saves in the
 * background too. */
static void *idle_round_trip(void *ok)
{
    struct sched_param none = {0};
    *(bool *)ok = sched_setscheduler(0, SCHED_IDLE, &none) == 0 && sched_setscheduler(0, SCHED_OTHER, &none) == 0;
    return NULL;
}

void worker_pool_idle_public(worker_pool *pool, bool on)
{
    bool ok = false;
    pthread_t probe;
    if (on && pthread_create(&probe, NULL, idle_round_trip, &ok) == 0)
        pthread_join(probe, NULL);
    if (on && !ok)
        log_event(LOG_WARN, "server.idle_fills is off: this process may not leave SCHED_IDLE again "
                            "(raise RLIMIT_NICE, e.g. LimitNICE= in systemd, or grant CAP_SYS_NICE)");
    pool->idle_public = on && ok;
}

void worker_pool_background(worker_pool *pool, bool on)
{
    struct sched_param none = {0};
    /* per thread on Linux; the nice value is kept across the switch back */
    if (pool->idle_public)
        sched_setscheduler(0, on ? SCHED_IDLE : SCHED_OTHER, &none);
}
