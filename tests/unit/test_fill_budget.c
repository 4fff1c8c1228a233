/*
 * test_fill_budget.c — the CPU budget of anonymous fills
 * (src/http/fill_budget.c), and the worker pool held to it.
 *
 * The decision and the bucket are driven with made-up samples
 * (fill_budget_observe), so each rule is checked exactly: scarce needs
 * both a machine without idle CPU and busy loops; while scarce a fill
 * waits until the CPU it took is paid back at share × CPUs; plenty
 * forgives any debt. Then the real thing: every CPU is kept busy by
 * threads that count as event loops, and a pool's public jobs, each
 * burning 2 ms of CPU, run only about as often as the share allows —
 * but they do run; with the CPU idle, the same jobs run freely, and so
 * do jobs someone waits for, CPU or not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "http/fill_budget.h"
#include "http/worker_pool.h"
#include "metrics/metrics.h"
#include "pool_fixture.h"
#include "store/store.h"

#define MS 1000000ull

/* two samples 100 ms apart on a 2-CPU machine (20 ticks of 10 ms), in which
 * the loops finished 1,000 requests and `fills` fills were submitted */
static void observe_pair(fill_budget *b, uint64_t idle_ticks, double loops_cores, uint64_t fills)
{
    b->cpus = 2;
    fill_budget_sample first = {.idle = 5000, .total = 100000, .requests = 7000, .fills = 30};
    fill_budget_observe(b, 1000 * MS, &first);
    fill_budget_sample second = {.idle = 5000 + idle_ticks,
                                 .total = 100020,
                                 .loops_ns = (uint64_t)(loops_cores * 100 * MS),
                                 .requests = 8000,
                                 .fills = 30 + fills};
    fill_budget_observe(b, 1100 * MS, &second);
}

static void scarce_needs_no_idle_cpu_and_loops_busy_with_more_than_fills(void **state)
{
    (void)state;
    fill_budget b;
    fill_budget_init(&b, 0.02);
    observe_pair(&b, 0, 1.0, 50); /* no idle, loops on half the machine, 5 % fills: a spike of hits */
    assert_true(b.scarce);
    fill_budget_init(&b, 0.02);
    observe_pair(&b, 4, 1.0, 50); /* 20 % idle */
    assert_false(b.scarce);
    fill_budget_init(&b, 0.02);
    observe_pair(&b, 0, 0.1, 50); /* no idle, but the loops nearly idle: misses alone */
    assert_false(b.scarce);
    fill_budget_init(&b, 0.02);
    observe_pair(&b, 0, 1.0, 1000); /* the loops busy handing out misses: the cache off, a crawler */
    assert_false(b.scarce);
}

/* The fills a loop ran itself (reads on the loop, request.c) are not the
 * loops being busy: loops on half the machine, of which 0.8 of a core
 * filling, is the misses' work, not hits'. */
static void fills_run_on_the_loops_do_not_count_as_the_loops_busy(void **state)
{
    (void)state;
    fill_budget b;
    fill_budget_init(&b, 0.02);
    b.cpus = 2;
    fill_budget_sample first = {.idle = 5000, .total = 100000, .requests = 7000, .fills = 30};
    fill_budget_observe(&b, 1000 * MS, &first);
    fill_budget_sample second = {
        .total = 100020, .idle = 5000, .loops_ns = 100 * MS, .loop_fills_ns = 80 * MS, .requests = 8000, .fills = 80};
    fill_budget_observe(&b, 1100 * MS, &second);
    assert_false(b.scarce); /* 0.2 of a core on hits: 10 % of the machine */
    fill_budget_sample third = {
        .total = 100040, .idle = 5000, .loops_ns = 200 * MS, .loop_fills_ns = 90 * MS, .requests = 9000, .fills = 130};
    fill_budget_observe(&b, 1200 * MS, &third);
    assert_true(b.scarce); /* 0.9 of a core on hits */
    fill_budget_sample past = {
        .total = 100060, .idle = 5000, .loops_ns = 210 * MS, .loop_fills_ns = 200 * MS, .requests = 9500, .fills = 180};
    fill_budget_observe(&b, 1300 * MS, &past); /* fills timed past the loops' CPU clock: 0, not a wrap */
    assert_false(b.scarce);
}

/* Loops fill themselves only while fills are most of the requests —
 * whatever the machine's idle CPU or the loops' own CPU says, since hits
 * beside the fills would pay for them, and hits starved by fills on the
 * loops would not show the loops busy. */
static void loops_fill_only_while_fills_are_most_of_the_requests(void **state)
{
    (void)state;
    fill_budget b;
    fill_budget_init(&b, 0.02);
    assert_true(b.loops_may_fill); /* before any sample */
    observe_pair(&b, 0, 0.05, 50); /* no idle, 5 % fills, loops nearly idle (hits starved) */
    assert_false(b.loops_may_fill);
    assert_false(b.scarce);
    fill_budget_init(&b, 0.02);
    observe_pair(&b, 4, 1.0, 50); /* 20 % idle, 5 % fills: hits are the traffic */
    assert_false(b.loops_may_fill);
    fill_budget_init(&b, 0.02);
    observe_pair(&b, 0, 1.0, 1000); /* misses are the traffic */
    assert_true(b.loops_may_fill);
    fill_budget_init(&b, 1); /* never metered: the same rule */
    observe_pair(&b, 4, 1.0, 50);
    assert_false(b.loops_may_fill);
}

static void while_scarce_a_fill_waits_until_its_cpu_is_paid_back(void **state)
{
    (void)state;
    fill_budget b;
    fill_budget_init(&b, 0.02);
    observe_pair(&b, 0, 1.0, 50);
    uint64_t now = 1100 * MS;
    assert_int_equal(fill_budget_wait_ns(&b, now), 0); /* the saved-up bucket */
    fill_budget_charge(&b, 20 * MS);                   /* a 20 ms fill: far past the 4 ms bucket */
    uint64_t wait = fill_budget_wait_ns(&b, now);
    /* the debt (20 ms less the bucket) is repaid at 0.02 × 2 CPUs: 400 ms, looked at again each sample */
    assert_int_equal(wait, FILL_BUDGET_SAMPLE_MS * MS);
    assert_true(fill_budget_wait_ns(&b, now + 50 * MS) > 0);
    assert_true(fill_budget_wait_ns(&b, now + 99 * MS) > 0);
}

static void plenty_forgives_the_debt(void **state)
{
    (void)state;
    fill_budget b;
    fill_budget_init(&b, 0.02);
    observe_pair(&b, 0, 1.0, 50);
    fill_budget_charge(&b, 500 * MS);
    assert_true(fill_budget_wait_ns(&b, 1150 * MS) > 0);
    fill_budget_sample idle = {.idle = 5010, .total = 100040, .loops_ns = 200 * MS, .requests = 9000, .fills = 90};
    fill_budget_observe(&b, 1200 * MS, &idle); /* half the machine idle */
    assert_false(b.scarce);
    assert_int_equal(fill_budget_wait_ns(&b, 1250 * MS), 0);
    assert_int_equal(b.scarce_total_ns, 100 * MS); /* the one scarce period */
}

/* Held to their budget, fills leave idle CPU behind them; that idle must
 * not end the scarcity (fills would run unmetered for a sample, take the
 * CPU back, and the debt would be forgiven), and the fills do not get it:
 * they are repaid at their share alone. */
static void once_scarce_only_spare_cpu_ends_it_and_the_idle_is_not_the_fills(void **state)
{
    (void)state;
    fill_budget b;
    fill_budget_init(&b, 0.02);
    observe_pair(&b, 0, 1.0, 50); /* no idle: scarce, fills get 0.04 of a CPU */
    assert_true(b.scarce);
    assert_int_equal(fill_budget_wait_ns(&b, 1100 * MS), 0); /* the saved-up bucket: 4 ms */
    fill_budget_charge(&b, 20 * MS);                         /* 16 ms past it */
    assert_true(fill_budget_wait_ns(&b, 1150 * MS) > 0);     /* 2 ms repaid at 0.04 of a CPU */
    fill_budget_sample gaps = {.idle = 5004, .total = 100040, .loops_ns = 200 * MS, .requests = 9000, .fills = 130};
    fill_budget_observe(&b, 1200 * MS, &gaps); /* 20 % idle: still scarce */
    assert_true(b.scarce);
    /* repaid at 0.04 of a CPU whatever the idle: 12 ms still owed is 300 ms,
     * a sample period's wait at most */
    assert_int_equal(fill_budget_wait_ns(&b, 1200 * MS), 100 * MS);
    fill_budget_sample spare = {.idle = 5010, .total = 100060, .loops_ns = 300 * MS, .requests = 10000, .fills = 180};
    fill_budget_observe(&b, 1300 * MS, &spare); /* 30 % idle: plenty */
    assert_false(b.scarce);
}

static void no_limit_is_never_scarce(void **state)
{
    (void)state;
    fill_budget b;
    fill_budget_init(&b, 1);
    fill_budget_charge(&b, 500 * MS);
    assert_int_equal(fill_budget_wait_ns(&b, 1 * MS), 0);
}

/* ---- the real machine ------------------------------------------------------------------ */

static atomic_bool spinning;
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_done = PTHREAD_COND_INITIALIZER;
static int watched;

typedef struct spinner_arg {
    worker_pool *pool;
    _Atomic uint64_t requests; /* outlives the thread: the pool keeps reading it */
} spinner_arg;

/* An "event loop" that never waits and finishes a request now and then
 * (hits, as far as the budget can tell): counts as the loops' CPU. */
static void *spinner(void *arg)
{
    spinner_arg *me = arg;
    worker_pool_watch_loop(me->pool, &me->requests);
    pthread_mutex_lock(&watch_lock);
    watched++;
    pthread_cond_broadcast(&watch_done);
    pthread_mutex_unlock(&watch_lock);
    for (uint64_t n = 0; atomic_load(&spinning); n++)
        if (n % 1000 == 0)
            atomic_store_explicit(&me->requests, n / 1000, memory_order_relaxed);
    return NULL;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static atomic_int fills_done;

typedef struct burn_job {
    pool_job super;
} burn_job;

static void burn_run(pool_job *job, void *worker)
{
    (void)job;
    (void)worker;
    uint64_t start = thread_cpu_ns();
    while (thread_cpu_ns() - start < 2 * MS)
        ;
    atomic_fetch_add(&fills_done, 1);
}

/* A fill readers wait for (pool_job.awaited). */
static bool always_awaited(pool_job *job)
{
    (void)job;
    return true;
}

#define JOBS 400

/* Fills of 2 ms CPU each, as many as can be queued, for 1.5 s: how many
 * ran; awaited: each has someone waiting for it. */
static int fills_in(worker_pool *pool, burn_job *jobs, bool awaited)
{
    atomic_store(&fills_done, 0);
    for (int i = 0; i < JOBS; i++) {
        jobs[i].super.run = burn_run;
        jobs[i].super.awaited = awaited ? always_awaited : NULL;
        assert_true(worker_pool_submit(pool, &jobs[i].super, POOL_PUBLIC, NULL));
    }
    if (awaited) /* as a flight's first waiter says */
        worker_pool_awaited(pool);
    struct timespec pause = {.tv_sec = 1, .tv_nsec = 500 * 1000000};
    nanosleep(&pause, NULL);
    int done = atomic_load(&fills_done);
    for (int i = 0; i < JOBS; i++)
        worker_pool_cancel(pool, &jobs[i].super);
    return done;
}

/* Busy loops hold fills nobody else waits for to their share, never to
 * none; fills someone waits for are not held (worker_pool.h). */
static void busy_loops_hold_lone_fills_to_their_share_but_never_to_none(void **state)
{
    (void)state;
    char path[] = "/tmp/strata-test-fill-budget-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    worker_pool pool;
    pool_worker_fns fns = {store_opened, store_closed, path};
    assert_int_equal(worker_pool_start(&pool, 3, &fns, 0), 0);
    worker_pool_fill_share(&pool, 0.02);
    static burn_job jobs[JOBS];

    int idle_fills = fills_in(&pool, jobs, false);

    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    static spinner_arg args[64];
    pthread_t spinners[64];
    int n = cpus < 64 ? (int)cpus : 64;
    atomic_store(&spinning, true);
    for (int i = 0; i < n; i++) {
        args[i].pool = &pool;
        assert_int_equal(pthread_create(&spinners[i], NULL, spinner, &args[i]), 0);
    }
    pthread_mutex_lock(&watch_lock);
    while (watched < n)
        pthread_cond_wait(&watch_done, &watch_lock);
    pthread_mutex_unlock(&watch_lock);
    struct timespec settle = {.tv_sec = 0, .tv_nsec = 300 * 1000000}; /* past two samples */
    nanosleep(&settle, NULL);
    int busy_fills = fills_in(&pool, jobs, false);
    static metrics_pool_sample before, after; /* 21 KB each */
    metrics_pool_collect(&before);
    int awaited_fills = fills_in(&pool, jobs, true);
    metrics_pool_collect(&after);
    atomic_store(&spinning, false);
    for (int i = 0; i < n; i++)
        pthread_join(spinners[i], NULL);
    worker_pool_stop(&pool);
    unlink(path);

    /* 0.02 × cpus of CPU for 1.5 s is 15 fills of 2 ms per CPU, plus a bucket
     * or two; with the CPU idle two workers run ~700 (fewer under ASan) */
    double allowed = 0.02 * (double)cpus * 1500 / 2;
    printf(
        "# fills in 1.5 s: %d with idle CPU, %d with every CPU busy in loops (share allows ~%.0f), %d awaited ones\n",
        idle_fills, busy_fills, allowed, awaited_fills);
    assert_true(busy_fills >= 1);
    assert_true(busy_fills <= 3 * allowed + 4);
    assert_true(idle_fills > 4 * busy_fills);
    assert_true(awaited_fills > 3 * allowed + 4);
    /* those the budget would have held are counted (the rest ran on the share) */
    uint64_t counted = after.awaited_fills - before.awaited_fills;
    assert_true(counted >= (uint64_t)(awaited_fills - (int)(3 * allowed + 4)) && counted <= (uint64_t)awaited_fills);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scarce_needs_no_idle_cpu_and_loops_busy_with_more_than_fills),
        cmocka_unit_test(fills_run_on_the_loops_do_not_count_as_the_loops_busy),
        cmocka_unit_test(loops_fill_only_while_fills_are_most_of_the_requests),
        cmocka_unit_test(while_scarce_a_fill_waits_until_its_cpu_is_paid_back),
        cmocka_unit_test(plenty_forgives_the_debt),
        cmocka_unit_test(once_scarce_only_spare_cpu_ends_it_and_the_idle_is_not_the_fills),
        cmocka_unit_test(no_limit_is_never_scarce),
        cmocka_unit_test(busy_loops_hold_lone_fills_to_their_share_but_never_to_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
