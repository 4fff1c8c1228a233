/*
 * schedules.c — scheduled publishing: an item published or unpublished at
 * a moment set in advance (embargoes), every tier and the CDN updated at
 * that moment.
 *
 * PUT /v1/{site}/content/{id}/schedule keeps the times (store/schedules.c)
 * and queues one job per time, due then ("scheduled": the queue's punctual
 * lane, store_jobs.h, whose runner wakes for its earliest due job and never
 * waits behind the background backlog). The job does what the publish or
 * unpublish route does — the store's change, which clears its time from
 * the schedule in the same transaction, then the item's tags invalidated
 * here and on every instance (the bus) and purged at the CDN — so a reader
 * sees the change through a warm L1, L2 and CDN at once, not when their
 * copies expire. It first reads the schedule again: a time moved since
 * leaves its old job nothing to do; a time no longer there was carried out
 * (or cleared), so a job run twice (killed between its commit and its
 * invalidation) changes nothing the second time and invalidates again.
 *
 * A publish takes the latest draft, as the route does without a version.
 * An item that is already in the state asked for (published again with
 * nothing new, unpublished twice) is no error: the schedule is done.
 */
#include <stdio.h>
#include <string.h>

#include "content/api.h"
#include "content/content.h"
#include "core/log.h"
#include "core/timetext.h"
#include "jobs/jobs.h"
#include "store/store_history.h"

#define SCHEDULE_AUTHOR "scheduler"

/* ---- the job --------------------------------------------------------------------------- */

/* Makes the change (which clears its time from the schedule in the same
 * transaction); one already so is left as it is, and its time cleared. */
static int scheduled_change(store_t *st, int64_t site_id, const char *site, int64_t id, bool publish, int64_t at)
{
    json_t *item = NULL;
    int rc = publish ? store_item_publish(st, site_id, site, id, 0, SCHEDULE_AUTHOR, &item)
                     : store_item_unpublish(st, site_id, site, id, false, &item);
    json_decref(item);
    if (rc == STORE_STATE)
        rc = store_schedule_done(st, id, publish, at);
    return rc;
}

/* Every tier and the CDN drop what they hold of the item. Also when this
 * run finds its change already made: an earlier run may have committed it
 * and stopped (killed) before invalidating, and an invalidation too many
 * costs a fill. */
static void scheduled_invalidate(store_t *st, int64_t site_id, const char *site, int64_t id)
{
    api_ctx c = {.store = st, .site_id = site_id, .site = site};
    c.written = store_commit_lsn(st);
    api_invalidate_item(&c, id);
}

static int scheduled_job(store_t *st, const json_t *payload, char *err, size_t err_size)
{
    int64_t id = json_integer_value(json_object_get(payload, "item"));
    int64_t site_id = json_integer_value(json_object_get(payload, "site_id"));
    int64_t at = json_integer_value(json_object_get(payload, "at"));
    const char *site = json_string_value(json_object_get(payload, "site"));
    const char *action = json_string_value(json_object_get(payload, "action"));
    if (site == NULL || action == NULL || id <= 0 || at <= 0) {
        snprintf(err, err_size, "a scheduled change without its item, site, action or time");
        return -1;
    }
    bool publish = strcmp(action, "publish") == 0;
    store_schedule now;
    int rc = store_schedule_get(st, site_id, id, &now);
    if (rc == STORE_NOT_FOUND)
        return 0; /* deleted: the delete invalidated it */
    int64_t planned = rc == STORE_OK ? (publish ? now.publish_at : now.unpublish_at) : 0;
    if (rc == STORE_OK && planned == at)
        rc = scheduled_change(st, site_id, site, id, publish, at);
    if (rc != STORE_OK) {
        snprintf(err, err_size, "%s", store_errmsg(st));
        return -1;
    }
    if (planned != at && planned != 0)
        return 0; /* rescheduled since: another job has the new time */
    scheduled_invalidate(st, site_id, site, id);
    log_line line;
    log_begin(&line, LOG_INFO, publish ? "scheduled publish done" : "scheduled unpublish done");
    log_str(&line, "site", site);
    log_int(&line, "item", id);
    log_int(&line, "late_ms", store_now_ms() - at);
    log_end(&line);
    return 0;
}

void schedules_jobs_register(void)
{
    jobs_register("scheduled", scheduled_job);
}

/* ---- the route ----------------------------------------------------------------------- */

static json_t *moment_json(int64_t ms)
{
    char text[STORE_TIME_TEXT_SIZE];
    if (ms == 0)
        return json_null();
    store_time_text(ms, text);
    return json_string(text);
}

static void send_schedule(api_ctx *c, int64_t id, const store_schedule *s)
{
    http_response_header(c->res, "cache-control", "private, no-store");
    api_send_json(c, 200,
                  json_pack("{s:I, s:o, s:o}", "id", (json_int_t)id, "publish_at", moment_json(s->publish_at),
                            "unpublish_at", moment_json(s->unpublish_at)));
}

void handle_schedule_get(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id;
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_WRITE) || !api_param_id(&c, 1, "the item id", &id))
        return;
    store_schedule s;
    int rc = store_schedule_get(store, c.site_id, id, &s);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    send_schedule(&c, id, &s);
}

/* One time of the body: absent or null → 0; else an RFC 3339 text in the
 * future (false, with the 422 set, otherwise). */
static bool moment_read(api_ctx *c, const json_t *body, const char *name, int64_t now, int64_t *ms)
{
    json_t *v = json_object_get(body, name);
    *ms = 0;
    if (v == NULL || json_is_null(v))
        return true;
    const char *text = json_string_value(v);
    if (text == NULL || !time_parse_rfc3339(text, json_string_length(v), ms)) {
        http_problem(c->res, c->req, 422, "invalid_field",
                     "\"%s\" must be an RFC 3339 date-time such as \"2026-12-05T10:00:00Z\", or null", name);
        return false;
    }
    if (*ms <= now) {
        http_problem(c->res, c->req, 422, "invalid_field",
                     "\"%s\" is not in the future; publish or unpublish now instead", name);
        return false;
    }
    return true;
}

static bool schedule_read(api_ctx *c, store_schedule *s)
{
    json_t *body = NULL;
    if (!api_json_body(c, true, &body))
        return false;
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value)
    {
        if (strcmp(key, "publish_at") != 0 && strcmp(key, "unpublish_at") != 0) {
            http_problem(c->res, c->req, 422, "unknown_field",
                         "unknown field '%.64s': a schedule has "
                         "\"publish_at\" and \"unpublish_at\"",
                         key);
            json_decref(body);
            return false;
        }
    }
    int64_t now = store_now_ms();
    bool ok = moment_read(c, body, "publish_at", now, &s->publish_at) &&
              moment_read(c, body, "unpublish_at", now, &s->unpublish_at);
    json_decref(body);
    if (ok && s->publish_at != 0 && s->unpublish_at != 0 && s->unpublish_at <= s->publish_at) {
        http_problem(c->res, c->req, 422, "invalid_field", "\"unpublish_at\" must come after \"publish_at\"");
        ok = false;
    }
    return ok;
}

/* One job per time set, due then; its unique key makes a repeated PUT of
 * the same time queue nothing more. */
static int jobs_for(api_ctx *c, int64_t id, const char *action, int64_t at)
{
    if (at == 0)
        return STORE_OK;
    char key[96];
    snprintf(key, sizeof key, "scheduled:%lld:%s:%lld", (long long)id, action, (long long)at);
    json_t *payload = json_pack("{s:I, s:I, s:s, s:s, s:I}", "item", (json_int_t)id, "site_id", (json_int_t)c->site_id,
                                "site", c->site, "action", action, "at", (json_int_t)at);
    int64_t delay = at - store_now_ms();
    int rc = payload != NULL ? jobs_enqueue(c->store, "scheduled", payload, delay > 0 ? delay : 0, key) : STORE_ERROR;
    json_decref(payload);
    return rc;
}

void handle_schedule_put(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id;
    store_schedule s = {0};
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_WRITE) || !api_param_id(&c, 1, "the item id", &id) ||
        !schedule_read(&c, &s))
        return;
    int rc = store_schedule_set(store, c.site_id, id, &s);
    if (rc == STORE_OK)
        rc = jobs_for(&c, id, "publish", s.publish_at);
    if (rc == STORE_OK)
        rc = jobs_for(&c, id, "unpublish", s.unpublish_at);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    send_schedule(&c, id, &s);
}
