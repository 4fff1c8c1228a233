/*
 * tokens.c — API tokens without a statement on the request path, and the
 * routes that manage them.
 *
 * Every request with a token looked it up by hash, one statement each. An
 * instance now keeps the tokens it has seen: a fixed table of TOKENS_SLOTS
 * slots indexed by the first bytes of the SHA-256 hash (uniform), one
 * token a slot, the newest winning a collision, the whole hash compared in
 * constant time; a few locks, each over a stripe of slots. What may make
 * an entry wrong:
 *
 *   revocation   through the admin route: the tag "<site>:token:<id>" is
 *                invalidated like a cached response's, here and, over the
 *                bus, on every instance before the route answers
 *                (http_cache_watch calls tokens_watch); when invalidations
 *                may have been missed, every entry goes. Without a bus
 *                that reaches every instance (Redis set, cache off),
 *                nothing is trusted from memory.
 *   the CLI      `strata token revoke` writes the database only: an entry
 *                lives at most TOKENS_CACHE_TTL_MS, so running servers drop
 *                the token within that.
 *   expiry       checked at every use, against the entry's expires_at.
 *
 * Last use: a use notes its time in the slot; tokens_flush_uses (a
 * periodic task) writes the uses of tokens not written for
 * TOKENS_USE_RESOLUTION_MS, all in one transaction: a token costs at most
 * one write a minute, however busy.
 */
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "content/api.h"
#include "content/content.h"
#include "core/log.h"
#include "store/store_history.h"

#define TOKENS_SLOTS 1024
#define TOKENS_STRIPES 16
#define TOKENS_CACHE_TTL_MS 30000
#define TOKENS_USE_RESOLUTION_MS 60000

typedef struct token_slot {
    bool filled;
    store_token token;
    int64_t cached_at;  /* store_now_ms() when read from the database */
    int64_t used_at;    /* the latest use noted; 0: none */
    int64_t written_at; /* the use last written to the database */
} token_slot;

static token_slot slots[TOKENS_SLOTS];
static pthread_mutex_t stripes[TOKENS_STRIPES] = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
};

static size_t slot_of(const uint8_t hash[32])
{
    return ((size_t)hash[0] << 8 | hash[1]) % TOKENS_SLOTS;
}

static pthread_mutex_t *stripe_of(size_t slot)
{
    return &stripes[slot % TOKENS_STRIPES];
}

/* ---- the table ------------------------------------------------------------------------ */

/* A usable entry for hash into *out; a stale one is emptied (its
 * unwritten use is kept for tokens_remember to carry over). */
static bool cached_lookup(const uint8_t hash[32], int64_t now, store_token *out)
{
    size_t i = slot_of(hash);
    pthread_mutex_lock(stripe_of(i));
    token_slot *s = &slots[i];
    bool hit = s->filled && CRYPTO_memcmp(s->token.hash, hash, 32) == 0;
    if (hit && (now - s->cached_at >= TOKENS_CACHE_TTL_MS || (s->token.expires_at != 0 && now >= s->token.expires_at)))
        hit = s->filled = false;
    if (hit) {
        *out = s->token;
        s->used_at = now;
    }
    pthread_mutex_unlock(stripe_of(i));
    return hit;
}

static void remember(const store_token *token, int64_t now, bool trusted)
{
    size_t i = slot_of(token->hash);
    pthread_mutex_lock(stripe_of(i));
    token_slot *s = &slots[i];
    bool same = s->token.id == token->id && s->used_at != 0; /* keep its unwritten use */
    *s = (token_slot){
        .filled = trusted, .token = *token, .cached_at = now, .used_at = now, .written_at = same ? s->written_at : 0};
    pthread_mutex_unlock(stripe_of(i));
}

void tokens_watch(const char *tag)
{
    long long id = 0;
    const char *mark = tag != NULL ? strstr(tag, ":token:") : NULL;
    if (tag != NULL && (mark == NULL || sscanf(mark, ":token:%lld", &id) != 1))
        return; /* a tag of cached content */
    for (size_t i = 0; i < TOKENS_SLOTS; i++) {
        pthread_mutex_lock(stripe_of(i));
        if (tag == NULL || slots[i].token.id == id)
            slots[i].filled = false;
        pthread_mutex_unlock(stripe_of(i));
    }
}

int tokens_lookup(store_t *store, const uint8_t hash[32], store_token *out)
{
    int64_t now = store_now_ms();
    bool trusted = http_cache_invalidations_reach_all();
    if (trusted && cached_lookup(hash, now, out))
        return STORE_OK;
    int rc = store_token_lookup(store, hash, out);
    if (rc == STORE_OK)
        remember(out, now, trusted);
    return rc;
}

void tokens_flush_uses(store_t *store)
{
    static store_token_use uses[TOKENS_SLOTS]; /* the one flush task at a time (http_periodic) */
    size_t n = 0;
    for (size_t i = 0; i < TOKENS_SLOTS; i++) {
        pthread_mutex_lock(stripe_of(i));
        token_slot *s = &slots[i];
        if (s->used_at != 0 && s->used_at - s->written_at >= TOKENS_USE_RESOLUTION_MS) {
            uses[n++] = (store_token_use){s->token.id, s->used_at};
            s->written_at = s->used_at;
        }
        pthread_mutex_unlock(stripe_of(i));
    }
    if (n > 0 && store_tokens_touch(store, uses, n) != STORE_OK)
        log_event_str(LOG_WARN, "tokens' last use could not be recorded", "error", store_errmsg(store));
}

/* ---- routes ----------------------------------------------------------------------------- */

void handle_tokens_list(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_ADMIN))
        return;
    json_t *tokens = NULL;
    int rc = store_token_list(store, c.site_id, &tokens);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    http_response_header(res, "cache-control", "private, no-store");
    api_send_json(&c, 200, json_pack("{s:o}", "tokens", tokens));
}

static bool role_named(const char *name, store_role *role)
{
    static const char *const names[] = {[ROLE_READ] = "read", [ROLE_WRITE] = "write", [ROLE_ADMIN] = "admin"};
    for (int r = ROLE_READ; r <= ROLE_ADMIN; r++)
        if (name != NULL && strcmp(name, names[r]) == 0) {
            *role = (store_role)r;
            return true;
        }
    return false;
}

/* {"name": 1..64 bytes, "role": "read"|"write"|"admin", "expires_in_s": 60 s..10 years (optional)};
 * *body owns *name. */
static bool token_request_read(api_ctx *c, json_t **body, const char **name, store_role *role, int64_t *expires_in_s)
{
    if (!api_json_body(c, true, body))
        return false;
    json_t *expires = json_object_get(*body, "expires_in_s");
    *name = json_string_value(json_object_get(*body, "name"));
    const char *problem = NULL;
    if (*name == NULL || strlen(*name) == 0 || strlen(*name) > 64)
        problem = "\"name\" must be a string of 1 to 64 bytes (the author of what the token writes)";
    else if (!role_named(json_string_value(json_object_get(*body, "role")), role))
        problem = "\"role\" must be \"read\", \"write\" or \"admin\"";
    else if (expires != NULL && (!json_is_integer(expires) || json_integer_value(expires) < 60 ||
                                 json_integer_value(expires) > 10LL * 366 * 86400))
        problem = "\"expires_in_s\" must be an integer number of seconds from 60 to 10 years";
    *expires_in_s = expires != NULL ? json_integer_value(expires) : 0;
    if (problem == NULL)
        return true;
    http_problem(c->res, c->req, 422, "invalid_field", "%s", problem);
    json_decref(*body);
    *body = NULL;
    return false;
}

static json_t *expiry_json(int64_t expires_at)
{
    char text[STORE_TIME_TEXT_SIZE];
    if (expires_at == 0)
        return json_null();
    store_time_text(expires_at, text);
    return json_string(text);
}

void handle_tokens_create(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    json_t *body = NULL;
    const char *name;
    store_role role;
    int64_t expires_in_s;
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_ADMIN) ||
        !token_request_read(&c, &body, &name, &role, &expires_in_s))
        return;
    char text[CONTENT_TOKEN_TEXT_MAX];
    uint8_t hash[32];
    int64_t id = 0, expires_at = expires_in_s > 0 ? store_now_ms() + expires_in_s * 1000 : 0;
    int rc = content_token_generate(text, hash) != 0
                 ? STORE_ERROR
                 : store_token_create(store, c.site_id, role, name, hash, expires_at, &id);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
    } else {
        http_response_header(res, "cache-control", "private, no-store");
        api_send_json(&c, 201,
                      json_pack("{s:I, s:s, s:s, s:O, s:o}", "id", (json_int_t)id, "token", text, "name", name, "role",
                                json_object_get(body, "role"), "expires_at", expiry_json(expires_at)));
    }
    json_decref(body);
}

void handle_tokens_revoke(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id;
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_ADMIN) || !api_param_id(&c, 1, "the token id", &id))
        return;
    int rc = store_token_revoke(store, c.site_id, id);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    /* here and, before this answers, on every instance (the bus) */
    char tag[96];
    snprintf(tag, sizeof tag, "%s:token:%lld", c.site, (long long)id);
    http_cache_invalidate_tag(tag, LSN_NONE);
    res->status = 204;
}
