/*
 * worker_pool.h — internal to src/http: threads that run database work.
 *
 * Jobs wait in lanes under one mutex and condition variable; a worker
 * takes the oldest job of the first lane that has one, in lane order:
 *
 *   POOL_EDITOR  requests with Authorization (editors' reads and writes)
 *   POOL_TASK    the server's own work (periodic tasks, start-up, flushes)
 *   POOL_PUBLIC  anonymous requests (cache misses, previews)
 *
 * so a flood of public misses never stands in front of an editor's save.
 * With two or more workers, public jobs run on at most all but one of
 * them, and so do editors' jobs: a worker is always free for the other
 * lanes, even while every public job is slow, and anonymous reads always
 * have a worker, even while every editor's save waits (a commit stalled
 * on the disk, an invalidation waiting for Redis). A lane may be bounded (worker_pool_limit): a
 * job that does not fit is refused at once, never queued; the task lane
 * is never bounded (a final flush must not be dropped).
 *
 * The editor and task lanes are first in, first out. The public lane is
 * adaptive LIFO, with CoDel's distinction between a burst and a standing
 * queue (Facebook's "Fail at Scale"): while no job has waited the target
 * (worker_pool_target) it is first in first out, however long it has
 * been non-empty; congested (its oldest job waited past the target) the
 * newest job runs first, so an answered request is answered at once
 * instead of after the whole queue; once it has also not been empty for
 * POOL_STANDING_MS, the oldest is handed to a worker marked `late`, for
 * the caller to shed instead of run. A burst that drains is
 * served whole, within the caller's own deadline; under sustained
 * overload no job older than the target is run, answered requests stay
 * fast and the rest are refused quickly instead of waiting the whole
 * queue.
 *
 * Workers run at a lower CPU priority than the rest of the process
 * (worker_pool_start's nice): with an embedded database a fill is CPU
 * work, and the event loops answering cache hits must not wait for CPU
 * behind it. Priority alone does not keep fills out of the gaps the loops
 * leave while they wait on sockets, so while the machine is short of CPU
 * public jobs also run within a CPU budget (worker_pool_fill_share,
 * fill_budget.h) — but for one that someone besides its submitter waits
 * for (pool_job.awaited: readers piled up on a page just invalidated, the
 * hot readers the budget is there to keep fast), which the budget never
 * holds back: while it holds the rest, a worker takes the newest awaited
 * job among the lane's last POOL_AWAITED_SCAN, and its CPU is not
 * charged. A flood of distinct cold keys has no waiters; one that asks
 * for each cold key twice at once is not metered (docs/operations.md).
 *
 * Each worker opens its own resource at start through the caller's
 * callbacks (pool_worker_fns: for strata, a database connection, since
 * SQLite connections are per-thread here) and keeps it for life; the
 * pool never looks inside it. The pool knows nothing of HTTP either: a
 * job is a function and an argument, run with the worker's resource;
 * completion, deadlines and what to do with a refused job are the
 * caller's business.
 */
#ifndef STRATA_HTTP_WORKER_POOL_H
#define STRATA_HTTP_WORKER_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/fill_budget.h"

typedef enum pool_lane { POOL_EDITOR, POOL_TASK, POOL_PUBLIC, POOL_LANES } pool_lane;

typedef struct pool_job pool_job;
struct pool_job {
    pool_job *next, *prev;                    /* the lane's list, under the pool's lock */
    void (*run)(pool_job *job, void *worker); /* worker: the resource its worker opened */
    uint64_t queued_stamp;                    /* metrics: when it was queued (0: not measured) */
    uint64_t enqueued_ns;                     /* CLOCK_MONOTONIC */
    pool_lane lane;
    const void *owner; /* who submitted it (NULL: nobody to hand it back to) */
    /* Any thread, under the pool's lock: whether someone besides its
     * submitter waits for a public job's result (a fill with waiters), so
     * the fills' budget does not hold it back (above). NULL: never. */
    bool (*awaited)(pool_job *job);
    bool queued; /* on a lane's list (under the pool's lock) */
    bool late;   /* taken from a standing public queue after the target: shed it */
};

/* How a worker opens its resource (on its own thread, at start; NULL: it
 * could not, and the pool does not start) and closes it (on its thread,
 * when the pool stops). */
typedef struct pool_worker_fns {
    void *(*open)(void *arg);
    void (*close)(void *worker, void *arg);
    void *arg;
} pool_worker_fns;

typedef struct pool_queue {
    pool_job *head, *tail;
    size_t length;
    size_t max;             /* 0: unbounded */
    uint64_t last_empty_ns; /* when it was last seen empty (CLOCK_MONOTONIC) */
} pool_queue;

#define POOL_STANDING_MS 100
#define POOL_TAKE_BACK_SCAN 64
#define POOL_AWAITED_SCAN 32

typedef struct worker_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pool_queue lanes[POOL_LANES];
    size_t running[POOL_LANES];     /* workers running a job of each lane */
    size_t running_max[POOL_LANES]; /* editor and public: all workers but one (when there are two or more) */
    uint64_t target_ns;             /* a standing public queue's longest wait; 0: none */
    bool stopping;
    pthread_t *threads;
    size_t thread_count;
    size_t started;    /* workers that tried to open their resource */
    bool start_failed; /* one of them could not */
    pool_worker_fns fns;
    int nice;               /* added to each worker thread's nice value */
    bool idle_public;       /* public jobs' CPU work at SCHED_IDLE (worker_pool_background) */
    fill_budget budget;     /* public jobs' CPU while CPU is scarce (under lock) */
    size_t budget_sleepers; /* workers sleeping until the budget lets a public job start */
    bool awaited_pending;   /* a public job may have become awaited since a look found none */
} worker_pool;

/* Starts count workers, each opening its resource with fns (copied), each
 * `nice` steps below the process's CPU priority (0: the same); waits until
 * every one has opened it. 0, or -1 if one could not. */
int worker_pool_start(worker_pool *pool, size_t count, const pool_worker_fns *fns, int nice);
/* Bounds a lane to max waiting jobs (0: unbounded; the task lane always is). */
void worker_pool_limit(worker_pool *pool, pool_lane lane, size_t max);
/* A standing public queue's target wait (see above); 0: none. */
void worker_pool_target(worker_pool *pool, uint64_t target_ms);
/* While the machine is short of CPU and the loops are busy, public jobs
 * may use this share of its CPUs (fill_budget.h); >= 1: no limit. */
void worker_pool_fill_share(worker_pool *pool, double share);
/* The calling thread is an event loop: its CPU and *requests (the
 * requests it finished, written by it alone) tell the budget how busy the
 * loops are and with what. */
void worker_pool_watch_loop(worker_pool *pool, const _Atomic uint64_t *requests);
/* Queues a job on its lane; never blocks on the database. False, with
 * nothing queued, when the lane is full.
 *
 * When `late` is not NULL, a public job's submitter also takes back its
 * own jobs (job->owner, not NULL) that a standing, congested public lane
 * has kept past the target — the jobs a worker would otherwise take only
 * to mark them late and hand them back, a wake-up and a message each,
 * thousands a second under a flood of misses. They leave the lane before
 * the bound is checked, chained by `next` in *late (NULL: none), and are
 * the caller's to shed. At most POOL_TAKE_BACK_SCAN of the oldest jobs
 * are looked at, so a submit's cost stays bounded; another owner's late
 * jobs wait for that owner's next submit, or for a worker. */
bool worker_pool_submit(worker_pool *pool, pool_job *job, pool_lane lane, pool_job **late);
/* A queued public job may have just become awaited (pool_job.awaited: a
 * fill's flight has its first waiter): a worker the budget keeps asleep
 * looks again, since that job may start. */
void worker_pool_awaited(worker_pool *pool);
/* Whether an event loop may run a public job itself, now: only while
 * misses are most of the traffic (fill_budget_loops_may_fill), since a job
 * run on a loop takes the loop's CPU from hits, which no budget or
 * priority then holds back; never with server.idle_fills. A yes counts as
 * a fill submitted. */
bool worker_pool_admit_on_loop(worker_pool *pool);
/* The loop ran the job it was admitted for, in ns of wall time. */
void worker_pool_ran_on_loop(worker_pool *pool, uint64_t ns);
/* Takes a job back off its lane if no worker has taken it yet: true, and
 * the job is the caller's again; false, and a worker runs it (or has). */
bool worker_pool_cancel(worker_pool *pool, pool_job *job);
/* Runs every queued job, then joins the workers, each closing its resource. */
void worker_pool_stop(worker_pool *pool);

/* Whether a public job's work runs in the background (worker_pool_background). */
void worker_pool_idle_public(worker_pool *pool, bool on);
/* Called by a public job around its CPU work (the query, rendering,
 * compression), never around a lock the event loops take: with
 * worker_pool_idle_public, the calling worker then runs only on CPU time
 * nothing else wants (SCHED_IDLE), so a flood of cache misses cannot take
 * cycles from the event loops answering hits. */
void worker_pool_background(worker_pool *pool, bool on);

#endif
