/*
 * test_worker_pool.c — the worker pool's lanes (src/http/worker_pool.c):
 * the order workers serve them in, the public lane's worker cap, bounds,
 * taking a queued job back, the standing queue's late marking, and the
 * public lane's order (first in first out when calm, newest first when
 * congested), and when an event loop may run a public read itself.
 *
 * A "gate" job holds its worker until the test opens the gate, so what is
 * queued behind it, and in which order it then runs, is deterministic.
 * Workers open a real SQLite store on a temporary file through the
 * pool's open and close callbacks, as the server's do; the jobs never
 * touch it.
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

#include "http/worker_pool.h"
#include "pool_fixture.h"
#include "store/store.h"

typedef struct record {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bool gate_open;
    int order[16]; /* job ids in the order they ran */
    int ran;
    int running_gates;
} record;

typedef struct test_job {
    pool_job super;
    int id;
    bool gate; /* hold the worker until the gate opens */
    bool was_late;
    record *rec;
} test_job;

static void test_job_run(pool_job *pj, void *worker)
{
    (void)worker;
    test_job *j = (test_job *)pj;
    record *r = j->rec;
    pthread_mutex_lock(&r->lock);
    j->was_late = pj->late;
    if (j->gate) {
        r->running_gates++;
        pthread_cond_broadcast(&r->changed);
        while (!r->gate_open)
            pthread_cond_wait(&r->changed, &r->lock);
    }
    r->order[r->ran++] = j->id;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

typedef struct fixture {
    char path[64];
    worker_pool pool;
    record rec;
    test_job jobs[16];
} fixture;

static fixture *fixture_start(size_t workers)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->path, sizeof f->path, "/tmp/strata-test-pool-XXXXXX");
    int fd = mkstemp(f->path);
    assert_true(fd >= 0);
    close(fd);
    /* opened once first: workers opening a new file together race to put
     * it in WAL mode, and one of them gets SQLITE_BUSY */
    store_t *first = NULL;
    assert_int_equal(store_open(f->path, &first), STORE_OK);
    store_close(&first);
    pthread_mutex_init(&f->rec.lock, NULL);
    pthread_cond_init(&f->rec.changed, NULL);
    pool_worker_fns fns = {store_opened, store_closed, f->path};
    assert_int_equal(worker_pool_start(&f->pool, workers, &fns, 0), 0);
    return f;
}

static void fixture_stop(fixture *f)
{
    pthread_mutex_lock(&f->rec.lock);
    f->rec.gate_open = true;
    pthread_cond_broadcast(&f->rec.changed);
    pthread_mutex_unlock(&f->rec.lock);
    worker_pool_stop(&f->pool);
    char side[80];
    unlink(f->path);
    snprintf(side, sizeof side, "%s-wal", f->path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", f->path);
    unlink(side);
    free(f);
}

static bool submit(fixture *f, int id, pool_lane lane, bool gate)
{
    test_job *j = &f->jobs[id];
    *j = (test_job){.super.run = test_job_run, .id = id, .gate = gate, .rec = &f->rec};
    return worker_pool_submit(&f->pool, &j->super, lane, NULL);
}

/* A public job of `owner`; *late: the owner's late jobs the submit took back. */
static bool submit_owned(fixture *f, int id, const void *owner, pool_job **late)
{
    test_job *j = &f->jobs[id];
    *j = (test_job){.super.run = test_job_run, .super.owner = owner, .id = id, .rec = &f->rec};
    return worker_pool_submit(&f->pool, &j->super, POOL_PUBLIC, late);
}

/* Waits (bounded: 5 s) until `gates` gate jobs hold their workers. */
static void wait_gates(fixture *f, int gates)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&f->rec.lock);
    while (f->rec.running_gates < gates)
        if (pthread_cond_timedwait(&f->rec.changed, &f->rec.lock, &until) != 0)
            break;
    int running = f->rec.running_gates;
    pthread_mutex_unlock(&f->rec.lock);
    assert_int_equal(running, gates);
}

static void open_gate_and_drain(fixture *f, int total)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&f->rec.lock);
    f->rec.gate_open = true;
    pthread_cond_broadcast(&f->rec.changed);
    while (f->rec.ran < total)
        if (pthread_cond_timedwait(&f->rec.changed, &f->rec.lock, &until) != 0)
            break;
    int ran = f->rec.ran;
    pthread_mutex_unlock(&f->rec.lock);
    assert_int_equal(ran, total);
}

static int ran_count(fixture *f)
{
    pthread_mutex_lock(&f->rec.lock);
    int ran = f->rec.ran;
    pthread_mutex_unlock(&f->rec.lock);
    return ran;
}

/* ---- tests ------------------------------------------------------------------ */

static void editors_then_tasks_then_public(void **state)
{
    (void)state;
    fixture *f = fixture_start(1);
    assert_true(submit(f, 0, POOL_TASK, true));
    wait_gates(f, 1);
    assert_true(submit(f, 1, POOL_PUBLIC, false));
    assert_true(submit(f, 2, POOL_PUBLIC, false));
    assert_true(submit(f, 3, POOL_TASK, false));
    assert_true(submit(f, 4, POOL_EDITOR, false));
    assert_true(submit(f, 5, POOL_EDITOR, false));
    open_gate_and_drain(f, 6);
    int want[] = {0, 4, 5, 3, 1, 2};
    assert_memory_equal(f->rec.order, want, sizeof(want));
    fixture_stop(f);
}

/* With `workers`, all but one busy on gated jobs of `capped`: another job
 * of that lane waits (the free worker does not take it), while a job of
 * `other` runs at once on the free worker. */
static void one_worker_is_kept_from(size_t workers, pool_lane capped, pool_lane other)
{
    fixture *f = fixture_start(workers);
    int id = 0;
    for (; (size_t)id + 1 < workers; id++)
        assert_true(submit(f, id, capped, true));
    wait_gates(f, id);
    assert_true(submit(f, id++, capped, false));
    usleep(100000);
    assert_int_equal(ran_count(f), 0); /* the free worker does not take it */
    assert_true(submit(f, id, other, false));
    for (int i = 0; i < 500 && ran_count(f) == 0; i++)
        usleep(10000);
    assert_int_equal(ran_count(f), 1); /* but does take the other lane's */
    assert_int_equal(f->rec.order[0], id);
    open_gate_and_drain(f, id + 1);
    fixture_stop(f);
}

static void one_worker_is_kept_from_public_jobs(void **state)
{
    (void)state;
    one_worker_is_kept_from(2, POOL_PUBLIC, POOL_EDITOR);
}

/* Editors' saves that all wait (a stalled commit, Redis gone) never take
 * the last worker from anonymous reads. */
static void one_worker_is_kept_from_editors_jobs(void **state)
{
    (void)state;
    one_worker_is_kept_from(3, POOL_EDITOR, POOL_PUBLIC);
}

static void a_full_lane_refuses_and_a_queued_job_can_be_taken_back(void **state)
{
    (void)state;
    fixture *f = fixture_start(1);
    worker_pool_limit(&f->pool, POOL_PUBLIC, 2);
    worker_pool_limit(&f->pool, POOL_TASK, 1); /* ignored: the task lane is never bounded */
    assert_true(submit(f, 0, POOL_TASK, true));
    wait_gates(f, 1);
    assert_true(submit(f, 1, POOL_PUBLIC, false));
    assert_true(submit(f, 2, POOL_PUBLIC, false));
    assert_false(submit(f, 3, POOL_PUBLIC, false));
    assert_true(submit(f, 4, POOL_TASK, false));
    assert_true(submit(f, 5, POOL_TASK, false));
    assert_true(worker_pool_cancel(&f->pool, &f->jobs[1].super));
    assert_false(worker_pool_cancel(&f->pool, &f->jobs[1].super)); /* already back */
    assert_true(submit(f, 6, POOL_PUBLIC, false));                 /* its place is free again */
    assert_false(worker_pool_cancel(&f->pool, &f->jobs[0].super)); /* running */
    open_gate_and_drain(f, 5);
    int want[] = {0, 4, 5, 2, 6};
    assert_memory_equal(f->rec.order, want, sizeof(want));
    fixture_stop(f);
}

static void a_standing_public_queue_marks_old_jobs_late(void **state)
{
    (void)state;
    fixture *f = fixture_start(1);
    worker_pool_target(&f->pool, 20);
    assert_true(submit(f, 0, POOL_PUBLIC, false)); /* an idle pool: not late */
    for (int i = 0; i < 500 && ran_count(f) < 1; i++)
        usleep(10000);
    assert_false(f->jobs[0].was_late);
    assert_true(submit(f, 1, POOL_TASK, true));
    wait_gates(f, 1);
    assert_true(submit(f, 2, POOL_PUBLIC, false));
    usleep((POOL_STANDING_MS + 50) * 1000); /* waits past the target in a standing queue */
    assert_true(submit(f, 3, POOL_PUBLIC, false));
    open_gate_and_drain(f, 4);
    assert_true(f->jobs[2].was_late);
    assert_false(f->jobs[3].was_late); /* it had not waited the target */
    assert_false(f->jobs[1].was_late); /* only the public lane */
    fixture_stop(f);
}

/* A submit takes back its owner's jobs that a standing queue kept past
 * the target (no worker is woken to hand them back), and only those: not
 * another owner's, not a burst's, not ownerless ones. */
static void a_submit_takes_back_its_owners_late_jobs(void **state)
{
    (void)state;
    fixture *f = fixture_start(1);
    worker_pool_target(&f->pool, 20);
    int a, b;
    pool_job *late = &f->jobs[0].super;
    assert_true(submit(f, 1, POOL_TASK, true));
    wait_gates(f, 1);
    assert_true(submit_owned(f, 2, &a, &late));
    assert_null(late);
    assert_true(submit_owned(f, 3, &a, &late)); /* a burst: nothing is late */
    assert_null(late);
    assert_true(submit(f, 4, POOL_PUBLIC, false)); /* no owner: a worker marks it late */
    usleep((POOL_STANDING_MS + 50) * 1000);
    assert_true(submit_owned(f, 5, &b, &late)); /* another owner's are left alone */
    assert_null(late);
    assert_true(submit_owned(f, 6, &a, &late));
    assert_ptr_equal(late, &f->jobs[2].super);
    assert_ptr_equal(late->next, &f->jobs[3].super);
    assert_null(late->next->next);
    assert_false(worker_pool_cancel(&f->pool, &f->jobs[2].super)); /* off the lane */
    open_gate_and_drain(f, 4);                                     /* the gate, 4 (late), 5, 6 */
    assert_int_equal(ran_count(f), 4);
    for (int i = 0; i < 4; i++)
        assert_true(f->rec.order[i] != 2 && f->rec.order[i] != 3);
    assert_true(f->jobs[4].was_late);
    fixture_stop(f);
}

/* Adaptive LIFO: a burst behind a busy worker is served in arrival order
 * while no job has waited the target — even in a queue that has stood
 * (more clients than workers, each answered quickly) — and newest first
 * once the oldest has (nothing is late until the queue has also stood). */
static void public_order(uint64_t target_ms, useconds_t wait_ms, const int expected[3])
{
    fixture *f = fixture_start(1);
    worker_pool_target(&f->pool, target_ms);
    assert_true(submit(f, 1, POOL_TASK, true));
    wait_gates(f, 1);
    for (int id = 2; id <= 4; id++)
        assert_true(submit(f, id, POOL_PUBLIC, false));
    usleep(wait_ms * 1000);
    open_gate_and_drain(f, 4);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f->rec.order[1 + i], expected[i]);
        assert_false(f->jobs[expected[i]].was_late);
    }
    fixture_stop(f);
}

static void a_calm_public_lane_is_first_in_first_out(void **state)
{
    (void)state;
    public_order(5000, 0, (const int[3]){2, 3, 4});
}

static void a_standing_public_lane_within_the_target_is_first_in_first_out(void **state)
{
    (void)state;
    public_order(5000, POOL_STANDING_MS + 50, (const int[3]){2, 3, 4});
}

static void a_public_lane_past_the_target_runs_the_newest_first(void **state)
{
    (void)state;
    public_order(20, 50, (const int[3]){4, 3, 2});
}

/* A loop runs a public read itself only while the budget lets loops fill
 * (misses most of the traffic); otherwise it goes to the pool, where the
 * budget applies. */
static void a_loop_runs_public_reads_only_while_the_budget_lets_loops_fill(void **state)
{
    (void)state;
    fixture *f = fixture_start(1);
    worker_pool_fill_share(&f->pool, 0.02);
    assert_true(worker_pool_admit_on_loop(&f->pool)); /* the first sample is a baseline: plenty */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&f->pool.lock); /* a fresh sample: fills a few of the requests */
    f->pool.budget.sampled_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    f->pool.budget.loops_may_fill = false;
    uint64_t fills = f->pool.budget.fills;
    pthread_mutex_unlock(&f->pool.lock);
    assert_false(worker_pool_admit_on_loop(&f->pool));
    assert_int_equal(f->pool.budget.fills, fills); /* a refusal is not a fill: the pool counts it when queued */
    pthread_mutex_lock(&f->pool.lock);             /* a fresh sample: fills most of the requests */
    f->pool.budget.loops_may_fill = true;
    pthread_mutex_unlock(&f->pool.lock);
    assert_true(worker_pool_admit_on_loop(&f->pool));
    assert_int_equal(f->pool.budget.fills, fills + 1);
    fixture_stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(editors_then_tasks_then_public),
        cmocka_unit_test(one_worker_is_kept_from_public_jobs),
        cmocka_unit_test(one_worker_is_kept_from_editors_jobs),
        cmocka_unit_test(a_full_lane_refuses_and_a_queued_job_can_be_taken_back),
        cmocka_unit_test(a_standing_public_queue_marks_old_jobs_late),
        cmocka_unit_test(a_submit_takes_back_its_owners_late_jobs),
        cmocka_unit_test(a_calm_public_lane_is_first_in_first_out),
        cmocka_unit_test(a_standing_public_lane_within_the_target_is_first_in_first_out),
        cmocka_unit_test(a_public_lane_past_the_target_runs_the_newest_first),
        cmocka_unit_test(a_loop_runs_public_reads_only_while_the_budget_lets_loops_fill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
