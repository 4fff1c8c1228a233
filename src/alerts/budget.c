/*
 * budget.c — what a budget decides on its own, without threads or clocks:
 * whether a value breaks it, the hysteresis state machine, and the
 * per-route budget list of the configuration (alerts.h).
 *
 * Hysteresis has two parts. Time: a change needs a run of evaluations
 * that all agree (raise_after broken ones, clear_after clearly-within
 * ones), and any evaluation that disagrees restarts the run. Level: to
 * clear, the value must come back past a margin inside the budget, not
 * merely under it; a value hovering at the budget therefore keeps a raised
 * alert raised and never raises a cleared one twice in a row of wobbles.
 *
 *     OK ──broken──▶ PENDING ──broken × raise_after──▶ FIRING
 *      ▲  ◀─not broken─┘                               │ ▲
 *      │                                     recovered │ │ not recovered
 *      └──────────recovered × clear_after────── CLEARING ┘
 */
#include "alerts/alerts.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool alert_rule_broken(const alert_rule *rule, double value)
{
    return rule->floor ? value < rule->budget : value > rule->budget;
}

bool alert_rule_recovered(const alert_rule *rule, double value)
{
    if (rule->floor)
        return value >= rule->budget + rule->clear_margin * (1.0 - rule->budget);
    return value <= rule->budget * (1.0 - rule->clear_margin);
}

alert_change alert_machine_step(alert_machine *m, const alert_rule *rule, bool measured, double value)
{
    measured = measured && isfinite(value);
    switch (m->state) {
    case ALERT_OK:
    case ALERT_PENDING:
        if (!measured || !alert_rule_broken(rule, value)) {
            *m = (alert_machine){ALERT_OK, 0};
            return ALERT_UNCHANGED;
        }
        if (++m->streak < rule->raise_after) {
            m->state = ALERT_PENDING;
            return ALERT_UNCHANGED;
        }
        *m = (alert_machine){ALERT_FIRING, 0};
        return ALERT_RAISED;
    case ALERT_FIRING:
    case ALERT_CLEARING:
        if (!measured)
            return ALERT_UNCHANGED; /* a raised alert waits for evidence either way */
        if (!alert_rule_recovered(rule, value)) {
            *m = (alert_machine){ALERT_FIRING, 0};
            return ALERT_UNCHANGED;
        }
        if (++m->streak < rule->clear_after) {
            m->state = ALERT_CLEARING;
            return ALERT_UNCHANGED;
        }
        *m = (alert_machine){ALERT_OK, 0};
        return ALERT_CLEARED;
    }
    return ALERT_UNCHANGED;
}

const char *alert_state_name(alert_state state)
{
    switch (state) {
    case ALERT_OK: return "ok";
    case ALERT_PENDING: return "pending";
    case ALERT_FIRING: return "firing";
    case ALERT_CLEARING: return "clearing";
    }
    return "ok";
}

/* ---- budget.api_p95_routes ------------------------------------------------- */

static const char *skip_spaces(const char *s, const char *end)
{
    while (s < end && isspace((unsigned char)*s))
        s++;
    return s;
}

static const char *trim_end(const char *start, const char *end)
{
    while (end > start && isspace((unsigned char)end[-1]))
        end--;
    return end;
}

static bool route_known(const http_route *routes, size_t route_count, const char *pattern)
{
    for (size_t i = 0; i < route_count; i++)
        if (strcmp(routes[i].pattern, pattern) == 0)
            return true;
    return false;
}

/* One "PATTERN=MS" item between item and end into out. */
static int route_budget_parse(const char *item, const char *end, const http_route *routes, size_t route_count,
                              alert_route_budget *out, char *err, size_t err_size)
{
    const char *eq = memchr(item, '=', (size_t)(end - item));
    const char *pattern_end = eq ? trim_end(item, eq) : end;
    size_t pattern_len = (size_t)(pattern_end - item);
    if (eq == NULL || pattern_len == 0 || pattern_len >= sizeof out->pattern || item[0] != '/') {
        snprintf(err, err_size,
                 "budget.api_p95_routes: '%.*s' is not PATTERN=MS (a route pattern, then its p95 budget)",
                 (int)(end - item), item);
        return -1;
    }
    memcpy(out->pattern, item, pattern_len);
    out->pattern[pattern_len] = '\0';
    char number[32];
    const char *value = skip_spaces(eq + 1, end);
    size_t value_len = (size_t)(trim_end(value, end) - value);
    char *stop = NULL;
    errno = 0;
    if (value_len > 0 && value_len < sizeof number) {
        memcpy(number, value, value_len);
        number[value_len] = '\0';
        out->budget_ms = strtod(number, &stop);
    }
    if (value_len == 0 || value_len >= sizeof number || errno != 0 || *stop != '\0' || !(out->budget_ms > 0) ||
        out->budget_ms > 3600000) {
        snprintf(err, err_size,
                 "budget.api_p95_routes: the budget of %s must be a number of ms in (0, 3600000], got '%.*s'",
                 out->pattern, (int)value_len, value);
        return -1;
    }
    if (routes != NULL && !route_known(routes, route_count, out->pattern)) {
        snprintf(err, err_size, "budget.api_p95_routes: no route has the pattern '%s' (see docs/api.md)", out->pattern);
        return -1;
    }
    return 0;
}

int alerts_parse_route_budgets(const char *text, const http_route *routes, size_t route_count, alert_route_budget *out,
                               size_t max, size_t *count, char *err, size_t err_size)
{
    *count = 0;
    const char *s = text, *end = text + strlen(text);
    for (s = skip_spaces(s, end); s < end; s = skip_spaces(s, end)) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *item_end = trim_end(s, comma ? comma : end);
        if (*count == max) {
            snprintf(err, err_size, "budget.api_p95_routes: at most %zu routes may have a budget", max);
            return -1;
        }
        if (route_budget_parse(s, item_end, routes, route_count, &out[*count], err, err_size) != 0)
            return -1;
        for (size_t i = 0; i < *count; i++)
            if (strcmp(out[i].pattern, out[*count].pattern) == 0) {
                snprintf(err, err_size, "budget.api_p95_routes: '%s' is given twice", out[i].pattern);
                return -1;
            }
        (*count)++;
        s = comma ? comma + 1 : end;
    }
    return 0;
}
