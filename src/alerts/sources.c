/*
 * sources.c — the built-in sources beside the request window: memory
 * (RSS), the response cache's hit ratio, the mean database statement
 * time and the replicas' lag (alerts_internal.h).
 *
 * Memory is a gauge: its value is the resident size now (the budget's
 * hysteresis does the smoothing). The hit ratio and statement time come
 * from counters that only grow (cache hits and lookups; statements and their total time):
 * each evaluation keeps a sample (time, part, whole) in a ring sized for
 * the window, and the ratio over the window is the difference between the
 * newest sample and the oldest one still inside the window (the oldest
 * kept while the ring fills). The Web Vitals p75s come from the vitals
 * module's cumulative histograms the same way (see below). Only the
 * evaluator thread calls these, so the rings need no lock.
 */
#include <stdlib.h>

#include "alerts/alerts_internal.h"
#include "metrics/metrics.h"
#include "vitals/vitals.h"

enum { HISTORY_MAX = 4096, VITALS_BOUNDS = 400, VITALS_SAMPLES = 128 };
/* The lag a replica that is down counts as: an hour, past any budget. */
#define REPLICA_DOWN_LAG_MS 3600000.0

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

/* ---- Web Vitals p75 over the window ------------------------------------------
 *
 * The vitals module counts, since start, how many values of a metric fall
 * at or under any bounds asked for (vitals_count_le). A sample here is
 * those counts for VITALS_BOUNDS bounds 3 % apart, plus the total; the
 * window is the difference between the latest sample and the oldest one
 * still inside it, and its p75 the first bound under which three quarters
 * of the window's values fall: an upper estimate within 3 %. Samples are
 * kept at least window/(VITALS_SAMPLES - 2) apart, so memory is bounded
 * whatever the interval (400 KB a metric). */

typedef struct vitals_window {
    vitals_metric metric;
    double bounds[VITALS_BOUNDS];
    int64_t at_ms[VITALS_SAMPLES];
    uint64_t *counts; /* VITALS_SAMPLES rows of VITALS_BOUNDS counts and the total */
    size_t count, next;
    int64_t spacing_ms;
} vitals_window;

static vitals_window vitals_windows[3];

static int vitals_window_init(vitals_window *w, vitals_metric metric, double first_bound, int64_t window_ms)
{
    free(w->counts);
    *w = (vitals_window){.metric = metric, .spacing_ms = window_ms / (VITALS_SAMPLES - 2)};
    for (size_t i = 0; i < VITALS_BOUNDS; i++)
        w->bounds[i] = i == 0 ? first_bound : w->bounds[i - 1] * 1.03;
    w->counts = calloc((size_t)VITALS_SAMPLES * (VITALS_BOUNDS + 1), sizeof *w->counts);
    return w->counts != NULL ? 0 : -1;
}

static uint64_t *vitals_row(const vitals_window *w, size_t slot)
{
    return w->counts + slot * (VITALS_BOUNDS + 1);
}

bool source_vitals_p75(void *ctx, int64_t now_ms, int64_t window_ms, double *value)
{
    vitals_window *w = ctx;
    if (w->counts == NULL)
        return false;
    size_t last = (w->next + VITALS_SAMPLES - 1) % VITALS_SAMPLES;
    if (w->count == 0 || now_ms - w->at_ms[last] >= w->spacing_ms) { /* take a sample */
        uint64_t *row = vitals_row(w, w->next);
        vitals_count_le(w->metric, w->bounds, VITALS_BOUNDS, row);
        vitals_stats stats;
        vitals_stats_get(w->metric, &stats);
        row[VITALS_BOUNDS] = stats.count;
        w->at_ms[w->next] = now_ms;
        last = w->next;
        w->next = (w->next + 1) % VITALS_SAMPLES;
        if (w->count < VITALS_SAMPLES)
            w->count++;
    }
    size_t base = last;
    for (size_t i = 1; i < w->count; i++) {
        size_t slot = (last + VITALS_SAMPLES - i) % VITALS_SAMPLES;
        if (w->at_ms[slot] < now_ms - window_ms)
            break;
        base = slot;
    }
    const uint64_t *now = vitals_row(w, last), *then = vitals_row(w, base);
    uint64_t total = now[VITALS_BOUNDS] - then[VITALS_BOUNDS];
    if (base == last || total < (uint64_t)sources.min_events)
        return false;
    double wanted = 0.75 * (double)total;
    for (size_t i = 0; i < VITALS_BOUNDS; i++) {
        if ((double)(now[i] - then[i]) >= wanted) {
            *value = w->bounds[i];
            return true;
        }
    }
    *value = w->bounds[VITALS_BOUNDS - 1]; /* beyond the last bound: at least that */
    return true;
}

int sources_configure(int64_t window_ms, int interval_ms, int min_events)
{
    int64_t size = window_ms / (interval_ms > 0 ? interval_ms : 1) + 2;
    size = size < HISTORY_MAX ? size : HISTORY_MAX;
    sources.min_events = min_events > 0 ? min_events : 1;
    if (counter_window_init(&sources.hits, (size_t)size) != 0 ||
        counter_window_init(&sources.queries, (size_t)size) != 0 ||
        vitals_window_init(&vitals_windows[0], VITALS_LCP, 1.0, window_ms) != 0 ||
        vitals_window_init(&vitals_windows[1], VITALS_INP, 1.0, window_ms) != 0 ||
        vitals_window_init(&vitals_windows[2], VITALS_CLS, 0.0001, window_ms) != 0)
        return -1;
    return 0;
}

void *source_vitals_window(int metric)
{
    switch (metric) {
    case VITALS_LCP: return &vitals_windows[0];
    case VITALS_INP: return &vitals_windows[1];
    case VITALS_CLS: return &vitals_windows[2];
    default: return NULL;
    }
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

/* A gauge, like memory: the largest lag of any replica now, in ms (the
 * poller's figure, metrics_replicas). A replica that is down has no lag to
 * show but is as useless as one far behind: it counts as lagging an hour
 * (REPLICA_DOWN_LAG_MS, past any budget), so a replica gone raises the
 * alert too. No replicas: no data. */
bool source_replica_lag_ms(void *ctx, int64_t now_ms, int64_t window_ms, double *value)
{
    (void)ctx, (void)now_ms, (void)window_ms;
    json_t *stats = metrics_replicas();
    const json_t *list = json_object_get(stats, "replicas");
    double worst = 0;
    size_t i;
    const json_t *r;
    json_array_foreach(list, i, r)
    {
        double lag_ms = json_number_value(json_object_get(r, "lag_seconds")) * 1e3;
        if (!json_is_true(json_object_get(r, "up")))
            lag_ms = lag_ms > REPLICA_DOWN_LAG_MS ? lag_ms : REPLICA_DOWN_LAG_MS;
        worst = lag_ms > worst ? lag_ms : worst;
    }
    bool any = json_array_size(list) > 0;
    json_decref(stats);
    *value = worst;
    return any;
}
