/*
 * webhooks.c — the admin routes of content webhooks: subscribe, list,
 * read, delete, send a test, read the delivery log (docs/api.md,
 * "Webhooks").
 *
 * Only a site's admin token reaches them: a subscription makes strata send
 * requests where its admin says (SSRF is an admin's power, as a purge URL
 * is the operator's), and its secret signs what the site's receivers
 * trust. The secret is 32 random bytes made here and shown once, at
 * creation, as "whsec_" + base64 (the Standard Webhooks form); the
 * database keeps the bytes, since every delivery signs with them.
 *
 * Only http:// URLs are taken (purge.c's client speaks no TLS): put a
 * local proxy in front of an https receiver. The URL is checked as a purge
 * URL is (host, port, path), at most STORE_WEBHOOK_URL_MAX bytes.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "content/api.h"
#include "core/crypto.h"
#include "jobs/jobs.h"
#include "jobs/purge.h"
#include "jobs/webhooks.h"
#include "store/store_webhooks.h"

#define EVENT_NAMES "created, saved, published, unpublished, deleted"
#define SECRET_TEXT_MAX 64

static bool admin_of_site(api_ctx *c)
{
    if (!api_resolve_site(c) || !api_require_role(c, ROLE_ADMIN))
        return false;
    http_response_header(c->res, "cache-control", "private, no-store");
    return true;
}

void handle_webhooks_list(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    if (!admin_of_site(&c))
        return;
    json_t *list = NULL;
    int rc = store_webhook_list(store, c.site_id, &list);
    if (rc != STORE_OK)
        api_store_failed(&c, rc);
    else
        api_send_json(&c, 200, json_pack("{s:o}", "webhooks", list));
}

void handle_webhook_get(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id;
    if (!admin_of_site(&c) || !api_param_id(&c, 1, "the webhook id", &id))
        return;
    json_t *hook = NULL;
    int rc = store_webhook_get(store, c.site_id, id, &hook);
    if (rc != STORE_OK)
        api_store_failed(&c, rc);
    else
        api_send_json(&c, 200, hook);
}

void handle_webhook_delete(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id;
    if (!admin_of_site(&c) || !api_param_id(&c, 1, "the webhook id", &id))
        return;
    int rc = store_webhook_delete(store, c.site_id, id);
    if (rc != STORE_OK)
        api_store_failed(&c, rc);
    else
        res->status = 204;
}

/* ---- subscribing ------------------------------------------------------------------------- */

/* "url": an http:// URL purge.c can reach; a sentence when it is not. */
static const char *url_problem(const json_t *url, char *why, size_t why_size)
{
    const char *text = json_string_value(url);
    purge_target target;
    if (text == NULL || json_string_length(url) == 0 || json_string_length(url) > STORE_WEBHOOK_URL_MAX ||
        strlen(text) != json_string_length(url))
        return "\"url\" is required: a string of 1 to 1024 bytes";
    if (strncasecmp(text, "https://", 8) == 0)
        return "\"url\": https is not supported (strata speaks plain http:// to receivers); point it at a local "
               "TLS-terminating proxy, or at an http:// receiver";
    if (purge_endpoint_parse(text, "\"url\"", &target, why, why_size) != 0)
        return why;
    return NULL;
}

/* "events": a non-empty array of event names → their bits. */
static const char *events_problem(const json_t *events, unsigned *bits, char *why, size_t why_size)
{
    *bits = 0;
    if (!json_is_array(events) || json_array_size(events) == 0 || json_array_size(events) > 16)
        return "\"events\" is required: an array of 1 to 5 of " EVENT_NAMES;
    size_t i;
    json_t *name;
    json_array_foreach(events, i, name)
    {
        unsigned bit = store_webhook_event_bit(json_string_value(name));
        if (bit == 0) {
            snprintf(why, why_size, "\"events\"[%zu] is not an event: %s%.64s%s; the events are " EVENT_NAMES, i,
                     json_is_string(name) ? "'" : "", json_is_string(name) ? json_string_value(name) : "not a string",
                     json_is_string(name) ? "'" : "");
            return why;
        }
        *bits |= bit;
    }
    return NULL;
}

/* The create body: {"url", "events", "active"?}; false with a 422 sent. */
static bool subscription_read(api_ctx *c, json_t *body, unsigned *events, bool *active)
{
    char why[512];
    const char *key, *problem = NULL;
    json_t *value;
    json_object_foreach(body, key, value)
    {
        if (problem == NULL && strcmp(key, "url") != 0 && strcmp(key, "events") != 0 && strcmp(key, "active") != 0) {
            snprintf(why, sizeof why, "unknown field '%.64s'; a webhook has \"url\", \"events\" and \"active\"", key);
            problem = why;
        }
    }
    json_t *flag = json_object_get(body, "active");
    if (problem == NULL)
        problem = url_problem(json_object_get(body, "url"), why, sizeof why);
    if (problem == NULL)
        problem = events_problem(json_object_get(body, "events"), events, why, sizeof why);
    if (problem == NULL && flag != NULL && !json_is_boolean(flag))
        problem = "\"active\" must be true or false";
    *active = flag == NULL || json_is_true(flag);
    if (problem != NULL)
        http_problem(c->res, c->req, 422, "invalid_field", "%s", problem);
    return problem == NULL;
}

void handle_webhooks_create(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    json_t *body = NULL;
    unsigned events;
    bool active;
    if (!admin_of_site(&c) || !api_json_body(&c, true, &body))
        return;
    if (!subscription_read(&c, body, &events, &active)) {
        json_decref(body);
        return;
    }
    uint8_t key[32];
    unsigned char encoded[4 * ((sizeof key + 2) / 3) + 1];
    int64_t id = 0;
    json_t *hook = NULL;
    int rc = crypto_random(key, sizeof key) != 0 ? STORE_ERROR : STORE_OK;
    if (rc == STORE_OK)
        rc = store_webhook_create(store, c.site_id, json_string_value(json_object_get(body, "url")), events, active,
                                  key, &id);
    if (rc == STORE_OK)
        rc = store_webhook_get(store, c.site_id, id, &hook);
    json_decref(body);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    EVP_EncodeBlock(encoded, key, sizeof key);
    char secret[SECRET_TEXT_MAX];
    snprintf(secret, sizeof secret, "whsec_%s", (const char *)encoded);
    json_object_set_new(hook, "secret", json_string(secret)); /* shown this once */
    http_response_header(res, "location", "/v1/%s/webhooks/%lld", c.site, (long long)id);
    api_send_json(&c, 201, hook);
}

/* ---- test sends and the log --------------------------------------------------------------- */

void handle_webhook_test(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id;
    if (!admin_of_site(&c) || !api_param_id(&c, 1, "the webhook id", &id))
        return;
    char event_id[STORE_WEBHOOK_EVENT_ID_SIZE], message_id[WEBHOOK_MESSAGE_ID_MAX];
    int rc = store_webhook_test_queue(store, c.site_id, id, event_id);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    store_webhook_events_take();
    jobs_wake();
    webhooks_message_id(event_id, id, message_id);
    api_send_json(&c, 202, json_pack("{s:s, s:s}", "id", message_id, "event", "test"));
}

/* Each message's "state": delivered, retrying, or failed once the job
 * queue's attempts are used up. */
static void deliveries_state(json_t *list, int max_attempts)
{
    size_t i;
    json_t *one;
    json_array_foreach(list, i, one)
    {
        bool delivered = json_is_true(json_object_get(one, "delivered"));
        json_int_t attempts = json_integer_value(json_object_get(one, "attempts"));
        json_object_set_new(one, "state",
                            json_string(delivered                  ? "delivered"
                                        : attempts >= max_attempts ? "failed"
                                                                   : "retrying"));
    }
}

void handle_webhook_deliveries(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id;
    int limit;
    if (!admin_of_site(&c) || !api_param_id(&c, 1, "the webhook id", &id) ||
        !api_query_int(&c, "limit", 1, STORE_WEBHOOK_DELIVERIES_KEPT, 20, &limit))
        return;
    json_t *list = NULL;
    int rc = store_webhook_deliveries(store, c.site_id, id, limit, &list);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    deliveries_state(list, api_config()->jobs_max_attempts);
    api_send_json(&c, 200, json_pack("{s:I, s:o}", "webhook", (json_int_t)id, "deliveries", list));
}
