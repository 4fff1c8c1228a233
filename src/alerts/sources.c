/*
 * sources.c — the built-in sources beside the request window: memory
 * (RSS), the response cache's hit ratio and the mean database statement
 * time (alerts_internal.h).
 *
 * Memory is a gauge: its value is the resident size now (the budget's
 * hysteresis does the smoothing). The other two come from counters that
 * only grow (cache hits and lookups; statements and their total time):
 * each evaluation keeps a sample (time, part, whole) in a ring sized for
 * the window, and the ratio over the window is the difference between the
 * newest sample and the oldest one still inside the window (the oldest
 * kept while the ring fills). Only the evaluator thread calls these, so
 * the rings need no lock.
 */
#include <stdlib.h>

#include "alerts/alerts_internal.h"
#include "metrics/metrics.h"

enum { HISTORY_MAX = 4096 };

typedef struct counter_sample {
    int64_t at_ms;
    double part;    /* hits; statement nanoseconds */
    uint64_t whole; /* lookups; statements */
} counter_sample;

typedef struct counter_window {
    counter_sample *ring;
    size_t size, count, next;
} counter_window;

static struct {
    int min_events;
    counter_window hits, queries;
} sources;

static int counter_window_init(counter_window *w, size_t size)
{
    free(w->ring);
    *w = (counter_window){.size = size};
    w->ring = calloc(size, sizeof *w->ring);
    return w->ring != NULL ? 0 : -1;
}

int sources_configure(int64_t window_ms, int interval_ms, int min_events)
{
    int64_t size = window_ms / (interval_ms > 0 ? interval_ms : 1) + 2;
    size = size < HISTORY_MAX ? size : HISTORY_MAX;
    sources.min_events = min_events > 0 ? min_events : 1;
    if (counter_window_init(&sources.hits, (size_t)size) != 0 ||
        counter_window_init(&sources.queries, (size_t)size) != 0)
        return -1;
    return 0;
}

/* Adds the sample now; true with *part and *whole the differences over
 * the window when it holds at least min_events. */
static bool counter_window_push(counter_window *w, counter_sample now, int64_t window_ms, double *part, uint64_t *whole)
{
    if (w->ring == NULL)
        return false;
    w->ring[w->next] = now;
    w->next = (w->next + 1) % w->size;
    if (w->count < w->size)
        w->count++;
    const counter_sample *base = &now;
    for (size_t i = 1; i <= w->count; i++) {
        const counter_sample *s = &w->ring[(w->next + w->size - i) % w->size];
        if (s->at_ms < now.at_ms - window_ms)
            break;
        base = s;
    }
    if (now.whole < base->whole || now.whole - base->whole < (uint64_t)sources.min_events)
        return false;
    *part = now.part - base->part;
    *whole = now.whole - base->whole;
    return true;
}

bool source_memory_bytes(void *ctx, int64_t now_ms, int64_t window_ms, double *value)
{
    (void)ctx, (void)now_ms, (void)window_ms;
    uint64_t rss = metrics_rss_bytes();
    *value = (double)rss;
    return rss > 0;
}

static uint64_t stat_of(const json_t *stats, const char *name)
{
    json_int_t n = json_integer_value(json_object_get(stats, name));
    return n > 0 ? (uint64_t)n : 0;
}

bool source_hit_ratio(void *ctx, int64_t now_ms, int64_t window_ms, double *value)
{
    (void)ctx;
    json_t *stats = http_cache_stats("");
    const json_t *all = json_object_get(stats, "all_sites");
    uint64_t hits = stat_of(all, "hits") + stat_of(all, "stale_hits");
    counter_sample now = {now_ms, (double)hits, hits + stat_of(all, "misses")};
    bool enabled = all != NULL;
    json_decref(stats);
    double window_hits;
    uint64_t lookups;
    if (!enabled || !counter_window_push(&sources.hits, now, window_ms, &window_hits, &lookups))
        return false;
    *value = window_hits / (double)lookups;
    return true;
}

bool source_db_query_ms(void *ctx, int64_t now_ms, int64_t window_ms, double *value)
{
    (void)ctx;
    size_t count = 0;
    metrics_statement_sample *statements = metrics_statements_collect(&count);
    counter_sample now = {.at_ms = now_ms};
    for (size_t i = 0; i < count; i++) {
        now.part += (double)statements[i].total_ns;
        now.whole += statements[i].queries;
    }
    free(statements);
    double nanos;
    uint64_t queries;
    if (count == 0 || !counter_window_push(&sources.queries, now, window_ms, &nanos, &queries))
        return false;
    *value = nanos / (double)queries / 1e6;
    return true;
}
