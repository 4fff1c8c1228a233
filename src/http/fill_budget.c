/*
 * fill_budget.c — the CPU budget of anonymous cache fills (see
 * fill_budget.h).
 *
 * Sampling reads /proc/stat's first line (the whole machine, in clock
 * ticks) and each loop thread's CPU clock, at most once per
 * FILL_BUDGET_SAMPLE_MS, by the worker that asks; the bucket refills
 * continuously between samples. Where /proc/stat cannot be read the
 * budget never applies (fills run as before), said once in the log.
 */
#include "http/fill_budget.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/log.h"

#define NS_PER_MS 1000000u

void fill_budget_init(fill_budget *b, double share)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    *b = (fill_budget){.share = share, .cpus = cpus > 0 ? (unsigned)cpus : 1, .loops_may_fill = true};
}

void fill_budget_watch_loop(fill_budget *b, const _Atomic uint64_t *requests)
{
    clockid_t clock;
    if (b->loop_count < FILL_BUDGET_MAX_LOOPS && pthread_getcpuclockid(pthread_self(), &clock) == 0) {
        b->loop_clocks[b->loop_count] = clock;
        b->loop_requests[b->loop_count++] = requests;
    }
}

void fill_budget_note_fill(fill_budget *b)
{
    atomic_fetch_add_explicit(&b->fills, 1, memory_order_relaxed);
}

void fill_budget_note_loop_fill(fill_budget *b, uint64_t ns)
{
    atomic_fetch_add_explicit(&b->loop_fills_ns, ns, memory_order_relaxed);
}

/* The machine's idle (idle + iowait) and total clock ticks since boot. */
static bool machine_ticks(uint64_t *idle, uint64_t *total)
{
    char line[512];
    int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, line, sizeof(line) - 1);
    close(fd);
    if (n <= 4)
        return false;
    line[n] = '\0';
    /* "cpu  user nice system idle iowait irq softirq steal ..." */
    unsigned long long v[8] = {0};
    if (sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
               &v[7]) < 4)
        return false;
    *idle = v[3] + v[4];
    *total = 0;
    for (int i = 0; i < 8; i++)
        *total += v[i];
    return true;
}

/* The loops' CPU time and finished requests, now. */
static void loops_read(const fill_budget *b, fill_budget_sample *seen)
{
    for (unsigned i = 0; i < b->loop_count; i++) {
        struct timespec ts;
        if (clock_gettime(b->loop_clocks[i], &ts) == 0)
            seen->loops_ns += (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        seen->requests += atomic_load_explicit(b->loop_requests[i], memory_order_relaxed);
    }
    seen->loop_fills_ns = atomic_load_explicit(&b->loop_fills_ns, memory_order_relaxed);
}

/* CPU time (ns) fills may take per ns of wall time while scarce: their
 * share of the machine's CPUs, no more (fill_budget.h says why not the
 * idle CPU too). */
static double budget_rate(const fill_budget *b)
{
    return b->share * b->cpus;
}

static int64_t budget_cap(const fill_budget *b)
{
    return (int64_t)(budget_rate(b) * FILL_BUDGET_SAMPLE_MS * NS_PER_MS);
}

void fill_budget_observe(fill_budget *b, uint64_t now_ns, const fill_budget_sample *seen)
{
    if (b->sampled_ns != 0 && now_ns > b->sampled_ns) {
        uint64_t elapsed = now_ns - b->sampled_ns;
        uint64_t idle = seen->idle - b->machine_idle, total = seen->total - b->machine_total;
        uint64_t requests = seen->requests - b->requests_seen, fills = seen->fills - b->fills_seen;
        /* the fills a loop ran are timed by the wall clock, which may run
         * past its CPU clock (a page read from disk): never below 0 */
        uint64_t loops = seen->loops_ns - b->loops_cpu_ns, filling = seen->loop_fills_ns - b->loop_fills_seen;
        double loops_share = (double)(loops > filling ? loops - filling : 0) / ((double)elapsed * b->cpus);
        if (b->scarce)
            b->scarce_total_ns += elapsed;
        /* scarce from under FILL_BUDGET_IDLE_PCT idle, plenty again only
         * from FILL_BUDGET_SPARE_PCT: see fill_budget.h */
        bool short_of_cpu =
            total > 0 && idle * 100 < total * (b->scarce ? FILL_BUDGET_SPARE_PCT : FILL_BUDGET_IDLE_PCT);
        bool fills_few = fills * 100 <= requests * FILL_BUDGET_FILLS_PCT;
        b->scarce = short_of_cpu && loops_share * 100 >= FILL_BUDGET_LOOPS_PCT && fills_few;
        atomic_store_explicit(&b->loops_may_fill, !fills_few, memory_order_relaxed);
        if (!b->scarce)
            b->tokens_ns = budget_cap(b);
    }
    b->sampled_ns = now_ns;
    atomic_store_explicit(&b->next_sample_ns, now_ns + (uint64_t)FILL_BUDGET_SAMPLE_MS * NS_PER_MS,
                          memory_order_relaxed);
    b->loops_cpu_ns = seen->loops_ns;
    b->loop_fills_seen = seen->loop_fills_ns;
    b->machine_idle = seen->idle;
    b->machine_total = seen->total;
    b->requests_seen = seen->requests;
    b->fills_seen = seen->fills;
}

static void budget_sample(fill_budget *b, uint64_t now_ns)
{
    fill_budget_sample seen = {.fills = atomic_load_explicit(&b->fills, memory_order_relaxed)};
    if (!machine_ticks(&seen.idle, &seen.total)) {
        log_event(LOG_WARN, "server.fill_cpu_share is not applied: /proc/stat cannot be read");
        b->share = 1;
        b->scarce = false;
        return;
    }
    loops_read(b, &seen);
    fill_budget_observe(b, now_ns, &seen);
}

static void sample_if_due(fill_budget *b, uint64_t now_ns)
{
    if (b->sampled_ns == 0 || now_ns - b->sampled_ns >= (uint64_t)FILL_BUDGET_SAMPLE_MS * NS_PER_MS)
        budget_sample(b, now_ns);
}

bool fill_budget_loops_may_fill(fill_budget *b, uint64_t now_ns)
{
    sample_if_due(b, now_ns);
    return fill_budget_loops_may_fill_seen(b);
}

bool fill_budget_loops_may_fill_seen(const fill_budget *b)
{
    return atomic_load_explicit(&b->loops_may_fill, memory_order_relaxed);
}

bool fill_budget_sample_due(const fill_budget *b, uint64_t now_ns)
{
    return now_ns >= atomic_load_explicit(&b->next_sample_ns, memory_order_relaxed);
}

uint64_t fill_budget_wait_ns(fill_budget *b, uint64_t now_ns)
{
    const uint64_t period = (uint64_t)FILL_BUDGET_SAMPLE_MS * NS_PER_MS;
    if (b->share >= 1)
        return 0;
    sample_if_due(b, now_ns);
    if (b->share >= 1)
        return 0;
    /* the bucket refills at budget_rate, up to its cap */
    int64_t earned = (int64_t)(budget_rate(b) * (double)(now_ns - b->refilled_ns));
    b->tokens_ns = b->tokens_ns + earned > budget_cap(b) ? budget_cap(b) : b->tokens_ns + earned;
    b->refilled_ns = now_ns;
    if (!b->scarce || b->tokens_ns > 0)
        return 0;
    if (budget_rate(b) <= 0)
        return period;
    uint64_t wait = (uint64_t)((double)-b->tokens_ns / budget_rate(b)) + 1;
    return wait < period ? wait : period; /* by then, a new sample may say plenty */
}

bool fill_budget_holding(const fill_budget *b)
{
    return b->share < 1 && b->scarce && b->tokens_ns <= 0;
}

bool fill_budget_metering(const fill_budget *b)
{
    return b->share < 1 && b->scarce;
}

void fill_budget_charge(fill_budget *b, uint64_t cpu_ns)
{
    if (b->share < 1)
        b->tokens_ns -= (int64_t)cpu_ns;
}
