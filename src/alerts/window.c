/*
 * window.c — request time, errors and shed requests over a sliding window,
 * read from the metrics core (alerts_internal.h).
 *
 * The metrics core keeps, per route and method, cumulative request counts
 * by status class and a latency histogram, recorded per thread without a
 * lock; it has no notion of a window. A window is the difference of two
 * snapshots: now, and the newest snapshot at least a window old. So each
 * track (every route together, then one per route budget) keeps a ring of
 * SNAPSHOTS merged snapshots taken at least window/(SNAPSHOTS - 2) apart,
 * and the value over the window is hist_diff(now, base), where base is the
 * oldest snapshot still inside the window — the window is exact to one
 * snapshot spacing, and memory is bounded by SNAPSHOTS histograms a track
 * (about 21 KB each), allocated as the ring first fills.
 *
 * One collection serves every track of an evaluation: the first source
 * asked at a given now_ms collects and snapshots, the others reuse it.
 * Only the evaluator thread calls these, so nothing here is locked; the
 * request path is untouched (it only records into the metrics core).
 */
#include <stdlib.h>
#include <string.h>

#include "alerts/alerts_internal.h"
#include "metrics/metrics.h"

enum { SNAPSHOTS = 32, TRACKS_MAX = 1 + ALERT_ROUTE_BUDGETS_MAX };

typedef struct snapshot {
    int64_t at_ms;
    uint64_t requests, errors;
    uint64_t shed; /* answered shed (every route together; 0 in route tracks) */
    hist *latency; /* owned; NULL until this slot of the ring is first used */
} snapshot;

typedef struct track {
    char pattern[128]; /* "" for every route together */
    snapshot now;      /* the latest collection */
    snapshot ring[SNAPSHOTS];
    size_t count, next;
} track;

static struct {
    bool configured;
    int64_t spacing_ms;
    int min_requests;
    track tracks[TRACKS_MAX];
    size_t track_count;
    int64_t collected_at; /* now_ms of the last collection; -1 none */
    bool collected;       /* it found the metrics core recording */
} window = {.collected_at = -1};

static void snapshot_free(snapshot *s)
{
    free(s->latency);
    *s = (snapshot){0};
}

int window_configure(int64_t window_ms, const alert_route_budget *budgets, size_t budget_count, int min_requests)
{
    for (size_t t = 0; t < window.track_count; t++) {
        snapshot_free(&window.tracks[t].now);
        for (size_t i = 0; i < SNAPSHOTS; i++)
            snapshot_free(&window.tracks[t].ring[i]);
    }
    memset(window.tracks, 0, sizeof window.tracks);
    window.spacing_ms = window_ms / (SNAPSHOTS - 2) > 0 ? window_ms / (SNAPSHOTS - 2) : 1;
    window.min_requests = min_requests > 0 ? min_requests : 1;
    window.track_count = 1 + (budget_count < ALERT_ROUTE_BUDGETS_MAX ? budget_count : ALERT_ROUTE_BUDGETS_MAX);
    for (size_t t = 1; t < window.track_count; t++)
        snprintf(window.tracks[t].pattern, sizeof window.tracks[t].pattern, "%s", budgets[t - 1].pattern);
    window.collected_at = -1;
    for (size_t t = 0; t < window.track_count; t++) {
        window.tracks[t].now.latency = calloc(1, sizeof(hist));
        if (window.tracks[t].now.latency == NULL)
            return -1;
    }
    window.configured = true;
    return 0;
}

/* ---- collecting ------------------------------------------------------------ */

/* Keeps tr->now as the newest snapshot when the newest is a spacing old. */
static void track_snapshot(track *tr)
{
    const snapshot *newest = tr->count > 0 ? &tr->ring[(tr->next + SNAPSHOTS - 1) % SNAPSHOTS] : NULL;
    if (newest != NULL && tr->now.at_ms - newest->at_ms < window.spacing_ms)
        return;
    snapshot *slot = &tr->ring[tr->next];
    if (slot->latency == NULL && (slot->latency = malloc(sizeof(hist))) == NULL)
        return;
    hist *keep = slot->latency;
    *slot = tr->now;
    slot->latency = keep;
    memcpy(slot->latency, tr->now.latency, sizeof(hist));
    tr->next = (tr->next + 1) % SNAPSHOTS;
    if (tr->count < SNAPSHOTS)
        tr->count++;
}

/* Sums the metrics core's routes into every track's `now`, once per now_ms. */
static void collect(int64_t now_ms)
{
    if (window.collected_at == now_ms)
        return;
    window.collected_at = now_ms;
    size_t count = 0;
    metrics_route_sample *routes = metrics_routes_collect(&count);
    window.collected = routes != NULL;
    for (size_t t = 0; t < window.track_count; t++) {
        track *tr = &window.tracks[t];
        hist *latency = tr->now.latency;
        hist_reset(latency);
        tr->now = (snapshot){.at_ms = now_ms, .latency = latency};
        if (tr->pattern[0] == '\0')
            tr->now.shed = metrics_shed_answered();
        for (size_t i = 0; i < count; i++) {
            if (tr->pattern[0] != '\0' && strcmp(tr->pattern, routes[i].route) != 0)
                continue;
            tr->now.requests += routes[i].requests;
            tr->now.errors += routes[i].by_class[5];
            hist_merge(latency, &routes[i].latency);
        }
        if (window.collected)
            track_snapshot(tr);
    }
    free(routes);
}

/* The track's base for the window ending at now_ms: the oldest snapshot
 * not older than window_ms (the oldest kept while the ring fills). */
static const snapshot *track_base(const track *tr, int64_t now_ms, int64_t window_ms)
{
    const snapshot *base = NULL;
    for (size_t i = 1; i <= tr->count; i++) {
        const snapshot *s = &tr->ring[(tr->next + SNAPSHOTS - i) % SNAPSHOTS];
        if (base != NULL && s->at_ms < now_ms - window_ms)
            break;
        base = s;
    }
    return base;
}

/* The window's requests and errors (and, with latency, its histogram; with
 * shed, its shed requests) of the track ctx; false with too few requests. */
static bool track_window(void *ctx, int64_t now_ms, int64_t window_ms, uint64_t *requests, uint64_t *errors,
                         hist *latency, uint64_t *shed)
{
    size_t t = (size_t)(uintptr_t)ctx;
    if (!window.configured || t >= window.track_count)
        return false;
    collect(now_ms);
    const track *tr = &window.tracks[t];
    const snapshot *base = track_base(tr, now_ms, window_ms);
    if (!window.collected || base == NULL || tr->now.requests < base->requests)
        return false; /* nothing recorded, or the counters went back (they never should) */
    *requests = tr->now.requests - base->requests;
    *errors = tr->now.errors >= base->errors ? tr->now.errors - base->errors : 0;
    if (*requests < (uint64_t)window.min_requests)
        return false;
    if (latency != NULL)
        hist_diff(latency, tr->now.latency, base->latency);
    if (shed != NULL)
        *shed = tr->now.shed >= base->shed ? tr->now.shed - base->shed : 0;
    return true;
}

bool window_p95_ms(void *ctx, int64_t now_ms, int64_t window_ms, double *value)
{
    static hist latency; /* the evaluator's only: 21 KB off its stack */
    uint64_t requests, errors;
    if (!track_window(ctx, now_ms, window_ms, &requests, &errors, &latency, NULL) || latency.total == 0)
        return false;
    *value = (double)hist_quantile(&latency, 0.95) / 1000.0;
    return true;
}

bool window_error_rate(void *ctx, int64_t now_ms, int64_t window_ms, double *value)
{
    uint64_t requests, errors;
    if (!track_window(ctx, now_ms, window_ms, &requests, &errors, NULL, NULL))
        return false;
    *value = (double)errors / (double)requests;
    return true;
}

bool window_shed_rate(void *ctx, int64_t now_ms, int64_t window_ms, double *value)
{
    uint64_t requests, errors, shed;
    if (!track_window(ctx, now_ms, window_ms, &requests, &errors, NULL, &shed))
        return false;
    *value = (double)shed / (double)requests;
    return true;
}
