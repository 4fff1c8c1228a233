/*
 * test_alerts.c — budgets and alerts (src/alerts): the hysteresis state
 * machine (raise after N, no flapping around the budget, clear only past
 * the margin, floors for ratios, no data holds), the route budget list,
 * and evaluations driven by a fake source through alerts_json.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "alerts/alerts.h"
#include "config/config.h"

static const alert_rule CEILING = {
    .budget = 100, .floor = false, .raise_after = 3, .clear_after = 5, .clear_margin = 0.1};
static const alert_rule FLOOR = {.budget = 0.9, .floor = true, .raise_after = 2, .clear_after = 2, .clear_margin = 0.1};

/* Steps m through values; returns the change of the last step. */
static alert_change feed(alert_machine *m, const alert_rule *rule, const double *values, size_t n)
{
    alert_change last = ALERT_UNCHANGED;
    for (size_t i = 0; i < n; i++)
        last = alert_machine_step(m, rule, true, values[i]);
    return last;
}

static void test_raises_after_n_evaluations_in_a_row(void **state)
{
    (void)state;
    alert_machine m = {0};
    assert_int_equal(alert_machine_step(&m, &CEILING, true, 150), ALERT_UNCHANGED);
    assert_int_equal(m.state, ALERT_PENDING);
    assert_int_equal(alert_machine_step(&m, &CEILING, true, 150), ALERT_UNCHANGED);
    assert_int_equal(alert_machine_step(&m, &CEILING, true, 150), ALERT_RAISED);
    assert_int_equal(m.state, ALERT_FIRING);
    /* staying over raises nothing more */
    assert_int_equal(alert_machine_step(&m, &CEILING, true, 500), ALERT_UNCHANGED);
    assert_int_equal(m.state, ALERT_FIRING);
}

static void test_one_good_evaluation_restarts_the_raise(void **state)
{
    (void)state;
    alert_machine m = {0};
    const double wobble[] = {150, 150, 99, 150, 150, 100, 150, 150};
    assert_int_equal(feed(&m, &CEILING, wobble, 8), ALERT_UNCHANGED);
    assert_int_equal(m.state, ALERT_PENDING); /* exactly at the budget is within it */
    assert_int_equal(alert_machine_step(&m, &CEILING, true, 150), ALERT_RAISED);
}

static void test_no_flapping_around_the_budget(void **state)
{
    (void)state;
    alert_machine m = {0};
    const double over[] = {120, 120, 120};
    assert_int_equal(feed(&m, &CEILING, over, 3), ALERT_RAISED);
    /* hovering just under the budget, inside the margin: never clears */
    int raised = 0, cleared = 0;
    for (int i = 0; i < 200; i++) {
        alert_change c = alert_machine_step(&m, &CEILING, true, i % 2 ? 95 : 101);
        raised += c == ALERT_RAISED;
        cleared += c == ALERT_CLEARED;
    }
    assert_int_equal(raised, 0);
    assert_int_equal(cleared, 0);
    assert_int_equal(m.state, ALERT_FIRING);
}

static void test_clears_only_past_the_margin_for_n_evaluations(void **state)
{
    (void)state;
    alert_machine m = {0};
    const double over[] = {120, 120, 120};
    assert_int_equal(feed(&m, &CEILING, over, 3), ALERT_RAISED);
    const double recovering[] = {90, 90, 90, 90};
    assert_int_equal(feed(&m, &CEILING, recovering, 4), ALERT_UNCHANGED);
    assert_int_equal(m.state, ALERT_CLEARING);
    /* one value inside the margin (under budget, over 90) restarts the count */
    assert_int_equal(alert_machine_step(&m, &CEILING, true, 95), ALERT_UNCHANGED);
    assert_int_equal(m.state, ALERT_FIRING);
    assert_int_equal(feed(&m, &CEILING, recovering, 4), ALERT_UNCHANGED);
    assert_int_equal(alert_machine_step(&m, &CEILING, true, 10), ALERT_CLEARED);
    assert_int_equal(m.state, ALERT_OK);
    /* and a new breach needs its full run again */
    assert_int_equal(alert_machine_step(&m, &CEILING, true, 120), ALERT_UNCHANGED);
}

static void test_a_floor_is_broken_below_and_clears_above_the_margin(void **state)
{
    (void)state;
    assert_true(alert_rule_broken(&FLOOR, 0.85));
    assert_false(alert_rule_broken(&FLOOR, 0.9));
    /* the margin applies to the way to 1: 0.9 + 0.1 × 0.1 = 0.91 */
    assert_false(alert_rule_recovered(&FLOOR, 0.905));
    assert_true(alert_rule_recovered(&FLOOR, 0.91));
    alert_machine m = {0};
    const double low[] = {0.5, 0.5};
    assert_int_equal(feed(&m, &FLOOR, low, 2), ALERT_RAISED);
    const double high[] = {0.95, 0.95};
    assert_int_equal(feed(&m, &FLOOR, high, 2), ALERT_CLEARED);
}

static void test_no_data_holds_the_state(void **state)
{
    (void)state;
    alert_machine m = {0};
    alert_machine_step(&m, &CEILING, true, 150);
    alert_machine_step(&m, &CEILING, true, 150);
    /* a gap in the data resets a pending raise */
    assert_int_equal(alert_machine_step(&m, &CEILING, false, 0), ALERT_UNCHANGED);
    assert_int_equal(m.state, ALERT_OK);
    const double over[] = {150, 150, 150};
    assert_int_equal(feed(&m, &CEILING, over, 3), ALERT_RAISED);
    /* a raised alert waits for evidence: no data neither clears nor resets a clearing run */
    for (int i = 0; i < 20; i++)
        assert_int_equal(alert_machine_step(&m, &CEILING, false, 0), ALERT_UNCHANGED);
    assert_int_equal(m.state, ALERT_FIRING);
    const double nan_value[] = {__builtin_nan("")};
    assert_int_equal(feed(&m, &CEILING, nan_value, 1), ALERT_UNCHANGED);
    assert_int_equal(m.state, ALERT_FIRING);
}

/* ---- route budgets ----------------------------------------------------------- */

static const http_route ROUTES[] = {
    {HTTP_GET, "/v1/:site/content", NULL, NULL, false, NULL},
    {HTTP_GET, "/v1/:site/content/:id", NULL, NULL, false, NULL},
};

static void refused(const char *text, const char *mentions)
{
    alert_route_budget out[4];
    size_t count;
    char err[256] = "";
    assert_int_equal(alerts_parse_route_budgets(text, ROUTES, 2, out, 4, &count, err, sizeof err), -1);
    if (strstr(err, "budget.api_p95_routes") == NULL || strstr(err, mentions) == NULL)
        fail_msg("the error for '%s' should name the key and mention '%s': %s", text, mentions, err);
}

static void test_route_budgets_parse(void **state)
{
    (void)state;
    alert_route_budget out[4];
    size_t count = 99;
    char err[256];
    assert_int_equal(alerts_parse_route_budgets("", ROUTES, 2, out, 4, &count, err, sizeof err), 0);
    assert_int_equal(count, 0);
    assert_int_equal(alerts_parse_route_budgets(" /v1/:site/content = 50 ,/v1/:site/content/:id=2.5,", ROUTES, 2, out,
                                                4, &count, err, sizeof err),
                     0);
    assert_int_equal(count, 2);
    assert_string_equal(out[0].pattern, "/v1/:site/content");
    assert_true(out[0].budget_ms == 50);
    assert_string_equal(out[1].pattern, "/v1/:site/content/:id");
    assert_true(out[1].budget_ms == 2.5);
    refused("/v1/:site/other=5", "no route has the pattern");
    refused("/v1/:site/content", "PATTERN=MS");
    refused("/v1/:site/content=", "number of ms");
    refused("/v1/:site/content=-1", "number of ms");
    refused("/v1/:site/content=5ms", "number of ms");
    refused("/v1/:site/content=5,,/v1/:site/content/:id=5", "PATTERN=MS");
    refused("/v1/:site/content=5,/v1/:site/content=6", "twice");
    refused("content=5", "PATTERN=MS");
}

/* ---- evaluations through a fake source ------------------------------------------- */

static double fake_value;
static bool fake_measured;

static bool fake_source(void *ctx, int64_t now_ms, int64_t window_ms, double *value)
{
    (void)now_ms;
    assert_ptr_equal(ctx, &fake_value);
    assert_int_equal(window_ms, 60000);
    *value = fake_value;
    return fake_measured;
}

static const json_t *only_active(const json_t *doc)
{
    const json_t *active = json_object_get(doc, "active");
    return json_array_size(active) == 1 ? json_array_get(active, 0) : NULL;
}

static void test_an_evaluation_raises_and_clears_through_the_source(void **state)
{
    (void)state;
    static strata_config cfg; /* alerts keeps it */
    config_defaults(&cfg);
    cfg.budget_error_rate = 0.05;
    char err[256];
    assert_int_equal(alerts_configure(&cfg, ROUTES, 2, err, sizeof err), 0);
    assert_int_equal(alerts_register_source("error_rate", fake_source, &fake_value), 0);

    fake_measured = true;
    fake_value = 0.5;
    for (int i = 0; i < 2; i++)
        alerts_evaluate(1000 * i);
    json_t *doc = alerts_json();
    assert_null(only_active(doc));
    const json_t *budget = json_array_get(json_object_get(doc, "budgets"), 0);
    assert_string_equal(json_string_value(json_object_get(budget, "state")), "pending");
    json_decref(doc);

    alerts_evaluate(3000);
    doc = alerts_json();
    const json_t *alert = only_active(doc);
    assert_non_null(alert);
    assert_string_equal(json_string_value(json_object_get(alert, "quantity")), "error_rate");
    assert_string_equal(json_string_value(json_object_get(alert, "state")), "firing");
    assert_true(json_real_value(json_object_get(alert, "value")) == 0.5);
    assert_int_equal(json_array_size(json_object_get(doc, "recent")), 1);
    json_decref(doc);
    json_t *active = alerts_active_json();
    assert_int_equal(json_array_size(active), 1);
    json_decref(active);

    fake_value = 0.01;
    for (int i = 0; i < 5; i++)
        alerts_evaluate(4000 + 1000 * i);
    doc = alerts_json();
    assert_null(only_active(doc));
    const json_t *recent = json_object_get(doc, "recent");
    assert_int_equal(json_array_size(recent), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(recent, 0), "status")), "resolved");
    assert_string_equal(json_string_value(json_object_get(json_array_get(recent, 1), "status")), "firing");
    json_decref(doc);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raises_after_n_evaluations_in_a_row),
        cmocka_unit_test(test_one_good_evaluation_restarts_the_raise),
        cmocka_unit_test(test_no_flapping_around_the_budget),
        cmocka_unit_test(test_clears_only_past_the_margin_for_n_evaluations),
        cmocka_unit_test(test_a_floor_is_broken_below_and_clears_above_the_margin),
        cmocka_unit_test(test_no_data_holds_the_state),
        cmocka_unit_test(test_route_budgets_parse),
        cmocka_unit_test(test_an_evaluation_raises_and_clears_through_the_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
