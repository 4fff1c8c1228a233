/*
 * test_store_webhooks.c — webhook subscriptions, the deliveries item writes
 * queue, and the delivery log (src/store/webhooks.c through
 * store_webhooks.h), on the driver STRATA_TEST_DB_URL names (SQLite files
 * by default; store_fixture.h says how).
 *
 * What the system tests cannot see cheaply: a write queues its deliveries
 * in its own transaction (a failed write queues none), only subscriptions
 * of its site that want the event and are active get one, and the log's
 * bounds (messages per subscription, attempts per message).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_webhooks.h"
#include "store_fixture.h"

typedef struct fixture {
    char path[FIXTURE_WHERE_SIZE];
    store_t *st;
    int64_t site_id, other_site_id;
} fixture;

static const uint8_t KEY[32] = {1, 2, 3};

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fixture_db_create(f->path);
    assert_int_equal(store_open(f->path, &f->st), STORE_OK);
    assert_int_equal(store_migrate(f->st, NULL), STORE_OK);
    assert_int_equal(store_site_create(f->st, "main", &f->site_id), STORE_OK);
    assert_int_equal(store_site_create(f->st, "other", &f->other_site_id), STORE_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    size_t busy = db_statements_busy(f->st);
    store_close(&f->st);
    fixture_db_remove(f->path);
    free(f);
    return busy == 0 ? 0 : -1;
}

static int64_t queued(const fixture *f)
{
    return fixture_db_int(f->path, "SELECT COUNT(*) FROM jobs WHERE kind = '" STORE_WEBHOOK_JOB_KIND "'");
}

static int64_t hook(fixture *f, int64_t site_id, unsigned events, bool active)
{
    int64_t id = 0;
    assert_int_equal(store_webhook_create(f->st, site_id, "http://127.0.0.1:9/x", events, active, KEY, &id), STORE_OK);
    assert_true(id > 0);
    return id;
}

static int64_t item_create(fixture *f, const char *slug, int expected)
{
    store_edit_t edit = {.type = "post", .slug = slug, .title = slug};
    json_t *draft = NULL;
    assert_int_equal(store_item_create(f->st, f->site_id, "main", &edit, "alice", &draft), expected);
    int64_t id = json_integer_value(json_object_get(draft, "id"));
    json_decref(draft);
    return id;
}

/* The payload of the only queued delivery job, parsed. */
static json_t *only_payload(const fixture *f)
{
    store_t *st = NULL;
    assert_int_equal(store_open(f->path, &st), STORE_OK);
    db_query q;
    assert_int_equal(db_query_start(st, "SELECT payload FROM jobs", &q), STORE_OK);
    assert_true(db_next_row(&q));
    json_error_t error;
    json_t *payload = json_loads(db_column_text(&q, 0), 0, &error);
    assert_false(db_next_row(&q));
    assert_int_equal(db_query_end(&q, "reading the job"), STORE_OK);
    store_close(&st);
    assert_non_null(payload);
    return payload;
}

static void test_a_write_queues_one_delivery_per_interested_active_subscription(void **state)
{
    fixture *f = *state;
    item_create(f, "nobody-listens", STORE_OK);
    assert_int_equal(queued(f), 0);

    int64_t all = hook(f, f->site_id, WEBHOOK_EVENTS_ALL, true);
    hook(f, f->site_id, WEBHOOK_DELETED, true);          /* another event */
    hook(f, f->site_id, WEBHOOK_EVENTS_ALL, false);      /* paused */
    hook(f, f->other_site_id, WEBHOOK_EVENTS_ALL, true); /* another site */
    int64_t id = item_create(f, "first", STORE_OK);
    assert_int_equal(queued(f), 1);
    assert_true(store_webhook_events_take());
    assert_false(store_webhook_events_take());

    json_t *p = only_payload(f);
    assert_int_equal(json_integer_value(json_object_get(p, "webhook")), all);
    assert_string_equal(json_string_value(json_object_get(p, "event")), "created");
    assert_int_equal(strlen(json_string_value(json_object_get(p, "event_id"))), STORE_WEBHOOK_EVENT_ID_SIZE - 1);
    json_t *item = json_object_get(p, "item");
    assert_int_equal(json_integer_value(json_object_get(item, "id")), id);
    assert_string_equal(json_string_value(json_object_get(item, "slug")), "first");
    assert_string_equal(json_string_value(json_object_get(item, "status")), "draft");
    assert_true(json_integer_value(json_object_get(p, "occurred_at")) > 0);
    json_decref(p);
}

static void test_a_failed_write_queues_nothing(void **state)
{
    fixture *f = *state;
    hook(f, f->site_id, WEBHOOK_EVENTS_ALL, true);
    int64_t id = item_create(f, "taken", STORE_OK);
    int64_t before = queued(f);
    item_create(f, "taken", STORE_CONFLICT);
    assert_int_equal(queued(f), before);
    json_t *item = NULL;
    assert_int_equal(store_item_publish(f->st, f->site_id, "main", id, 99, "alice", &item), STORE_NOT_FOUND);
    assert_int_equal(store_item_unpublish(f->st, f->site_id, "main", id, false, &item), STORE_STATE);
    assert_int_equal(store_item_delete(f->st, f->other_site_id, id), STORE_NOT_FOUND);
    assert_int_equal(queued(f), before);
    assert_int_equal(store_item_delete(f->st, f->site_id, id), STORE_OK);
    assert_int_equal(queued(f), before + 1);
}

static void test_a_site_has_at_most_its_share_of_subscriptions(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < STORE_WEBHOOKS_PER_SITE_MAX; i++)
        hook(f, f->site_id, WEBHOOK_CREATED, true);
    int64_t id = 0;
    assert_int_equal(store_webhook_create(f->st, f->site_id, "http://h/", WEBHOOK_CREATED, true, KEY, &id),
                     STORE_STATE);
    assert_non_null(strstr(store_errmsg(f->st), "at most"));
    hook(f, f->other_site_id, WEBHOOK_CREATED, true); /* each site its own */
}

static void test_a_subscription_is_its_sites_alone(void **state)
{
    fixture *f = *state;
    int64_t id = hook(f, f->site_id, WEBHOOK_CREATED | WEBHOOK_PUBLISHED, true);
    json_t *one = NULL;
    assert_int_equal(store_webhook_get(f->st, f->other_site_id, id, &one), STORE_NOT_FOUND);
    assert_int_equal(store_webhook_delete(f->st, f->other_site_id, id), STORE_NOT_FOUND);
    char event_id[STORE_WEBHOOK_EVENT_ID_SIZE];
    assert_int_equal(store_webhook_test_queue(f->st, f->other_site_id, id, event_id), STORE_NOT_FOUND);
    assert_int_equal(store_webhook_get(f->st, f->site_id, id, &one), STORE_OK);
    json_t *events = json_object_get(one, "events");
    assert_int_equal(json_array_size(events), 2);
    assert_string_equal(json_string_value(json_array_get(events, 0)), "created");
    assert_null(json_object_get(one, "secret"));
    json_decref(one);
    store_webhook loaded;
    assert_int_equal(store_webhook_load(f->st, id, &loaded), STORE_OK);
    assert_string_equal(loaded.site, "main");
    assert_memory_equal(loaded.key, KEY, 32);
}

static void attempt(fixture *f, int64_t hook_id, const char *message, int status_code, int *attempts)
{
    store_webhook_attempt a = {.webhook_id = hook_id,
                               .message_id = message,
                               .event = "created",
                               .occurred_at = 1000,
                               .at = 2000,
                               .ms = 3,
                               .status_code = status_code,
                               .error = status_code == 200 ? NULL : "POST answered 500"};
    assert_int_equal(store_webhook_attempt_record(f->st, &a, attempts), STORE_OK);
}

static void test_the_log_is_bounded_and_remembers_deliveries(void **state)
{
    fixture *f = *state;
    int64_t id = hook(f, f->site_id, WEBHOOK_CREATED, true);
    int attempts = 0;
    bool delivered = true;
    for (int i = 0; i < STORE_WEBHOOK_HISTORY_MAX + 5; i++)
        attempt(f, id, "msg_many", 500, &attempts);
    assert_int_equal(attempts, STORE_WEBHOOK_HISTORY_MAX + 5);
    assert_int_equal(store_webhook_delivered(f->st, "msg_many", &delivered), STORE_OK);
    assert_false(delivered);
    attempt(f, id, "msg_many", 200, &attempts);
    assert_int_equal(store_webhook_delivered(f->st, "msg_many", &delivered), STORE_OK);
    assert_true(delivered);

    json_t *log = NULL;
    assert_int_equal(store_webhook_deliveries(f->st, f->site_id, id, 10, &log), STORE_OK);
    json_t *one = json_array_get(log, 0);
    assert_int_equal(json_integer_value(json_object_get(one, "attempts")), STORE_WEBHOOK_HISTORY_MAX + 6);
    json_t *attempt_log = json_object_get(one, "attempt_log");
    assert_int_equal(json_array_size(attempt_log), STORE_WEBHOOK_HISTORY_MAX);
    json_t *last = json_array_get(attempt_log, STORE_WEBHOOK_HISTORY_MAX - 1);
    assert_int_equal(json_integer_value(json_object_get(last, "attempt")), STORE_WEBHOOK_HISTORY_MAX + 6);
    assert_true(json_is_null(json_object_get(last, "error")));
    json_decref(log);

    char message[32];
    for (int i = 0; i < STORE_WEBHOOK_DELIVERIES_KEPT + 10; i++) {
        snprintf(message, sizeof message, "msg_%d", i);
        attempt(f, id, message, 200, &attempts);
    }
    assert_int_equal(fixture_db_int(f->path, "SELECT COUNT(*) FROM webhook_deliveries"), STORE_WEBHOOK_DELIVERIES_KEPT);
    assert_int_equal(store_webhook_deliveries(f->st, f->site_id, id, 1, &log), STORE_OK);
    snprintf(message, sizeof message, "msg_%d", STORE_WEBHOOK_DELIVERIES_KEPT + 9);
    assert_string_equal(json_string_value(json_object_get(json_array_get(log, 0), "id")), message);
    json_decref(log);
    assert_int_equal(store_webhook_deliveries(f->st, f->other_site_id, id, 1, &log), STORE_NOT_FOUND);

    assert_int_equal(store_webhook_delete(f->st, f->site_id, id), STORE_OK);
    assert_int_equal(fixture_db_int(f->path, "SELECT COUNT(*) FROM webhook_deliveries"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_write_queues_one_delivery_per_interested_active_subscription, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_write_queues_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_site_has_at_most_its_share_of_subscriptions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_subscription_is_its_sites_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_log_is_bounded_and_remembers_deliveries, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
