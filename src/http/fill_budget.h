/*
 * fill_budget.h — internal to src/http: how much CPU anonymous cache fills
 * may take while the machine has none to spare.
 *
 * The event loops answer cache hits; the workers fill misses. When a
 * flood of misses arrives while hits keep the loops busy, every cycle a
 * fill takes is a cycle a loop waited for. Priorities alone do not keep
 * fills out: a niced worker still runs in every gap the loops leave while
 * they wait on their sockets (measured: workers at nice 10 took 0.58 of
 * 2 cores during bench/overload.sh), and SCHED_IDLE keeps them out so
 * well that a page nobody has cached yet — the breaking story itself —
 * may never be filled. So the pool meters fills by the CPU they use:
 *
 *   scarce   over the last FILL_BUDGET_SAMPLE_MS the machine had under
 *            FILL_BUDGET_IDLE_PCT % idle CPU (/proc/stat; once scarce,
 *            under FILL_BUDGET_SPARE_PCT), the loops took
 *            at least FILL_BUDGET_LOOPS_PCT % of it (their thread CPU
 *            clocks, less the fills they ran themselves), and fills were at most FILL_BUDGET_FILLS_PCT % of
 *            the requests the loops finished — so the loops were busy
 *            with something other than handing out misses (with the
 *            cache off, or a crawler walking cold pages, the misses are
 *            the traffic, and metering them would only slow every
 *            request down): anonymous fills may use `share` of the
 *            machine's CPUs, a token bucket of CPU time (at most one
 *            sample period's worth saved), each fill charged the thread
 *            CPU time it took;
 *   plenty   otherwise: no limit, the bucket is full.
 *
 * The two thresholds are a hysteresis. Held to their budget, fills leave
 * the CPU they no longer take idle for a moment; with one threshold that
 * idle ended the scarcity at the next sample, fills ran unmetered (and
 * their debt was forgiven) for a sample, took the CPU back, and scarcity
 * began again: measured under bench/overload.sh, scarce 4.9 s of 8 and
 * the workers at 14 % of the machine's CPU where the share is 2 %, hits
 * at 0.75 of their rate alone. Only spare CPU well past the idle the
 * hits leave ends the metering.
 *
 * That idle is not the fills' to take. The budget once added the idle CPU
 * the last sample saw to the share (the gaps hits leave while the loops
 * wait on their sockets), but the idle did not shrink when fills took it:
 * under bench/overload.sh's flood beside hits, 9–10 % of the machine stayed
 * idle whether the workers ran at 0.25 of a CPU (share and idle) or 0.08
 * (share alone) — the gaps are wake-up latencies no fill can fill — and
 * the fills' CPU came from the hits and their clients instead: hits under
 * the flood 0.70–0.77 of their rate alone with the idle given to fills,
 * 0.78–0.82 without (docs/benchmarks.md). An operator who wants new
 * pages filled faster under such a flood raises server.fill_cpu_share.
 *
 * A fill is never refused here: it waits on its lane, where the pool's
 * adaptive LIFO and the caller's deadline decide (stale, or 503). Misses
 * alone (loops nearly idle) run at full speed; hits alone are untouched;
 * both together give fills their share, never less, so a new page is
 * still filled once for everyone. Editors' and the server's own jobs are
 * never metered, nor is a fill other requests wait for (the pool's
 * pool_job.awaited: worker_pool.h says why).
 *
 * Not thread-safe, but for the calls marked lock-free: the worker pool
 * calls the rest under its lock.
 */
#ifndef STRATA_HTTP_FILL_BUDGET_H
#define STRATA_HTTP_FILL_BUDGET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define FILL_BUDGET_SAMPLE_MS 100
#define FILL_BUDGET_IDLE_PCT 10
#define FILL_BUDGET_SPARE_PCT 25
#define FILL_BUDGET_LOOPS_PCT 20
#define FILL_BUDGET_FILLS_PCT 50
#define FILL_BUDGET_MAX_LOOPS 256

typedef struct fill_budget {
    double share; /* of the machine's CPUs while scarce; >= 1: never metered */
    unsigned cpus;
    clockid_t loop_clocks[FILL_BUDGET_MAX_LOOPS];
    const _Atomic uint64_t *loop_requests[FILL_BUDGET_MAX_LOOPS]; /* each loop's finished requests */
    unsigned loop_count;
    _Atomic uint64_t fills;          /* anonymous fills submitted (fill_budget_note_fill: lock-free) */
    _Atomic uint64_t loop_fills_ns;  /* time the loops spent running fills themselves (any thread adds) */
    uint64_t sampled_ns;             /* CLOCK_MONOTONIC of the last sample; 0: none yet */
    _Atomic uint64_t next_sample_ns; /* when the next sample is due (read without the lock) */
    uint64_t loops_cpu_ns;           /* the loops' CPU time then */
    uint64_t loop_fills_seen;        /* loop_fills_ns then */
    uint64_t machine_idle;           /* /proc/stat idle + iowait ticks then */
    uint64_t machine_total;          /* /proc/stat ticks then */
    uint64_t requests_seen;          /* the loops' finished requests then */
    uint64_t fills_seen;             /* fills then */
    bool scarce;
    _Atomic bool loops_may_fill; /* the last sample saw fills as most of the requests (read without the lock) */
    int64_t tokens_ns;           /* CPU time fills may still take; below 0: a debt */
    uint64_t refilled_ns;        /* when tokens_ns was last brought up to date */
    uint64_t scarce_total_ns;    /* time spent scarce, for /metrics */
} fill_budget;

void fill_budget_init(fill_budget *b, double share);
/* The calling thread is an event loop: its CPU time counts as the loops',
 * and *requests (which it alone writes) counts the requests it finished. */
void fill_budget_watch_loop(fill_budget *b, const _Atomic uint64_t *requests);
/* An anonymous fill was submitted (thread-safe, lock-free). */
void fill_budget_note_fill(fill_budget *b);
/* A loop ran a fill itself, for ns (thread-safe, lock-free): the loops'
 * CPU time sampled is what they spent on everything else, as when fills
 * ran on workers only. */
void fill_budget_note_loop_fill(fill_budget *b, uint64_t ns);
/* Whether an event loop may run an anonymous fill itself now (reads on
 * the loop, request.c): only while fills are most of the requests the
 * loops finish (the cache off, a crawler walking cold pages: the misses
 * are the traffic). Not otherwise, idle CPU or not: a fill on a loop takes
 * the loop's own CPU from the hits beside it (measured: hits under a
 * flood of misses fell to 0.58× with fills on the loops while the machine
 * showed idle CPU, 0.81× with them on the workers), and starved hits
 * would not even show the loops busy with them. */
bool fill_budget_loops_may_fill(fill_budget *b, uint64_t now_ns);
/* The same as the last sample said, and whether a sample is due: both
 * thread-safe and lock-free, for an event loop that must not wait for the
 * lock behind a niced worker (worker_pool_admit_on_loop). */
bool fill_budget_loops_may_fill_seen(const fill_budget *b);
bool fill_budget_sample_due(const fill_budget *b, uint64_t now_ns);
/* 0 if an anonymous fill may start now, else how long until it may (ns). */
uint64_t fill_budget_wait_ns(fill_budget *b, uint64_t now_ns);
/* What one sample saw, each a total since some fixed start. */
typedef struct fill_budget_sample {
    uint64_t idle, total;   /* the machine's idle and all clock ticks */
    uint64_t loops_ns;      /* the loops' CPU time */
    uint64_t loop_fills_ns; /* of which (at most) running fills themselves, in wall time */
    uint64_t requests;      /* requests the loops finished */
    uint64_t fills;         /* anonymous fills submitted */
} fill_budget_sample;
/* One sample at now_ns; the first only sets the baseline. The sampler
 * calls it with what it read; tests, with numbers. */
void fill_budget_observe(fill_budget *b, uint64_t now_ns, const fill_budget_sample *seen);
/* Whether the budget held fills back when last looked at (no sample, no
 * refill: cheap enough for the event loop's submit; a fill it holds is
 * taken when the sleeping worker's wait ends). */
bool fill_budget_holding(const fill_budget *b);
/* Whether fills are metered now (scarce, with a share below 1): only then
 * is a fill's CPU time worth reading, since plenty refills the bucket. */
bool fill_budget_metering(const fill_budget *b);
/* A fill took cpu_ns of its thread's CPU time (0 when it was not metered). */
void fill_budget_charge(fill_budget *b, uint64_t cpu_ns);

#endif
