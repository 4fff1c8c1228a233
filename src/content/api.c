/*
 * api.c — the guards and conversions every content handler uses.
 *
 * Authentication: the bearer token's SHA-256 is looked up (the store
 * compares the stored hash in constant time). A token is never accepted for
 * another site than its own, and a token of another site is answered
 * exactly as a token that does not exist (401, one detail): a caller
 * cannot learn that a guessed or leaked token is valid somewhere. Errors
 * otherwise say which rule failed. A valid token then takes one request
 * from its role's rate-limit bucket (http/ratelimit.h).
 */
#include "content/api.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "content/content.h"
#include "core/crypto.h"
#include "core/log.h"
#include "http/ratelimit.h"
#include "store/store_history.h"

/* ---- the signing secret ------------------------------------------------------- */

static const strata_config *content_cfg;

void content_init(const strata_config *cfg)
{
    content_cfg = cfg;
    store_history_configure(cfg->history_keyframe_interval);
    api_objects_init(cfg);
}

const strata_config *api_config(void)
{
    return content_cfg;
}

static pthread_mutex_t secret_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t secret[32];
static bool secret_loaded;

int content_worker_init(store_t *store)
{
    pthread_mutex_lock(&secret_lock);
    int rc = secret_loaded ? STORE_OK : store_secret(store, secret);
    if (rc == STORE_OK)
        secret_loaded = true;
    pthread_mutex_unlock(&secret_lock);
    /* every site there is, known to this connection before its first
     * request: no miss pays for a site lookup, on whichever worker it runs */
    if (rc == STORE_OK)
        rc = store_site_preload(store);
    return rc == STORE_OK ? 0 : -1;
}

const uint8_t *api_secret(void)
{
    return secret;
}

int content_token_generate(char text[CONTENT_TOKEN_TEXT_MAX], uint8_t hash[32])
{
    uint8_t raw[32];
    if (crypto_random(raw, sizeof(raw)) != 0)
        return -1;
    memcpy(text, "st_", 3);
    size_t n = 3 + base64url_encode(raw, sizeof(raw), text + 3);
    crypto_sha256(text, n, hash);
    return 0;
}

/* ---- words and ids ------------------------------------------------------------- */

bool api_is_word(const char *s, size_t len, size_t max_len)
{
    if (len == 0 || len > max_len || strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
        if (!alnum && (i == 0 || (ch != '-' && ch != '_')))
            return false;
    }
    return true;
}

bool api_param_id(api_ctx *c, size_t index, const char *what, int64_t *id)
{
    const char *s = c->req->params[index];
    size_t len = c->req->param_len[index];
    int64_t v = 0;
    bool ok = len > 0 && strlen(s) == len;
    for (size_t i = 0; ok && i < len; i++) {
        int digit = s[i] - '0';
        if (digit < 0 || digit > 9 || v > (INT64_MAX - digit) / 10)
            ok = false;
        else
            v = v * 10 + digit;
    }
    if (!ok || v <= 0) {
        http_problem(c->res, c->req, 400, "bad_id", "%s must be a positive integer below 2^63", what);
        return false;
    }
    *id = v;
    return true;
}

bool api_param_word(api_ctx *c, size_t index, const char *what, size_t max_len, const char **out)
{
    if (!api_is_word(c->req->params[index], c->req->param_len[index], max_len)) {
        http_problem(c->res, c->req, 400, "bad_path",
                     "%s must be 1 to %zu characters of a-z, 0-9, '-' and '_', starting with a letter or digit", what,
                     max_len);
        return false;
    }
    *out = c->req->params[index];
    return true;
}

/* ---- sites and tokens ----------------------------------------------------------- */

bool api_resolve_site(api_ctx *c)
{
    const char *site = c->req->params[0];
    if (!api_is_word(site, c->req->param_len[0], 64)) {
        http_problem(c->res, c->req, 404, "site_not_found", "no such site");
        return false;
    }
    int rc = store_site_lookup(c->store, site, &c->site_id);
    if (rc == STORE_NOT_FOUND) {
        http_problem(c->res, c->req, 404, "site_not_found", "no site named '%s'", site);
        return false;
    }
    if (rc != STORE_OK) {
        api_store_failed(c, rc);
        return false;
    }
    c->site = site;
    return true;
}

static void unauthorized(api_ctx *c, const char *detail)
{
    http_problem(c->res, c->req, 401, "unauthorized", "%s", detail);
    http_response_header(c->res, "www-authenticate", "Bearer realm=\"strata\"");
}

/* One answer for "no such token" and "not a token of this site". */
static const char invalid_token[] = "the bearer token is not valid for this site (unknown, revoked or expired)";

/* Parses "Bearer <token>" and looks the token up: 1 found (its hash in
 * hash), 0 no header, -1 refused (response filled). */
static int lookup_bearer(api_ctx *c, uint8_t hash[32])
{
    const char *auth = c->req->authorization;
    if (auth == NULL)
        return 0;
    if (strncasecmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0') {
        unauthorized(c, "the Authorization header must be 'Bearer <token>'");
        return -1;
    }
    crypto_sha256(auth + 7, strlen(auth + 7), hash);
    int rc = tokens_lookup(c->store, hash, &c->token);
    if (rc == STORE_NOT_FOUND) {
        unauthorized(c, invalid_token);
        return -1;
    }
    if (rc != STORE_OK) {
        api_store_failed(c, rc);
        return -1;
    }
    return 1;
}

/* The token's role bucket (after it is known to be valid here, so that a
 * 429 tells nothing a 401 would not). */
static bool token_admitted(api_ctx *c, const uint8_t hash[32])
{
    int role = c->token.role == ROLE_ADMIN ? 2 : c->token.role == ROLE_WRITE ? 1 : 0;
    return !ratelimit_refuse_token(hash, role, c->req, c->res);
}

bool api_read_token(api_ctx *c)
{
    uint8_t hash[32];
    int found = lookup_bearer(c, hash);
    if (found <= 0)
        return found == 0;
    if (c->token.site_id != c->site_id) {
        unauthorized(c, invalid_token);
        return false;
    }
    if (!token_admitted(c, hash))
        return false;
    c->has_token = true;
    return true;
}

bool api_require_admin_token(api_ctx *c, char site_name[65])
{
    uint8_t hash[32];
    int found = lookup_bearer(c, hash);
    if (found == 0)
        unauthorized(c, "this route needs an admin bearer token (Authorization: Bearer <token>)");
    if (found <= 0 || !token_admitted(c, hash))
        return false;
    if (c->token.role < ROLE_ADMIN) {
        http_problem(c->res, c->req, 403, "forbidden", "this route needs an admin token");
        return false;
    }
    json_t *sites = NULL;
    int rc = store_site_list(c->store, &sites);
    if (rc != STORE_OK) {
        api_store_failed(c, rc);
        return false;
    }
    size_t i;
    json_t *site;
    site_name[0] = '\0';
    json_array_foreach(sites, i, site)
    {
        if (json_integer_value(json_object_get(site, "id")) == c->token.site_id)
            snprintf(site_name, 65, "%s", json_string_value(json_object_get(site, "name")));
    }
    json_decref(sites);
    c->has_token = true;
    c->site_id = c->token.site_id;
    c->site = site_name;
    return true;
}

static const char *role_name(store_role role)
{
    return role == ROLE_ADMIN ? "admin" : role == ROLE_WRITE ? "write" : "read";
}

bool api_require_role(api_ctx *c, store_role role)
{
    if (!api_read_token(c))
        return false;
    if (!c->has_token) {
        unauthorized(c, "this route needs a bearer token (Authorization: Bearer <token>)");
        return false;
    }
    if (c->token.role < role) {
        http_problem(c->res, c->req, 403, "forbidden", "this route needs a %s token; this one is %s", role_name(role),
                     role_name(c->token.role));
        return false;
    }
    return true;
}

/* ---- the query string ------------------------------------------------------------- */

bool api_query(api_ctx *c, const char *name, char *buf, size_t size, bool *bad)
{
    const char *q = c->req->query;
    long n = q != NULL ? http_query_value(q, strlen(q), name, buf, size) : -1;
    if (n == -2) {
        http_problem(c->res, c->req, 400, "bad_query",
                     "query parameter '%s' is longer than %zu bytes or holds a NUL byte", name, size - 1);
        *bad = true;
    }
    return n >= 0;
}

/* text as an integer in min..max, or a 400 naming the parameter. */
static bool query_int_parse(api_ctx *c, const char *name, const char *text, int min, int max, int *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < min || v > max) {
        http_problem(c->res, c->req, 400, "bad_query", "query parameter '%s' must be an integer in %d..%d", name, min,
                     max);
        return false;
    }
    *out = (int)v;
    return true;
}

bool api_query_int(api_ctx *c, const char *name, int min, int max, int def, int *out)
{
    char buf[32];
    bool bad = false;
    if (!api_query(c, name, buf, sizeof(buf), &bad)) {
        if (bad)
            return false;
        *out = def;
        return true;
    }
    return query_int_parse(c, name, buf, min, max, out);
}

/* ---- cacheable query parameters (routes.c's tables) ------------------------------------ */

bool api_query_param(api_ctx *c, const http_cache_param *p, char *buf, size_t size, const char **value)
{
    bool bad = false;
    *value = api_query(c, p->name, buf, size, &bad) ? buf : p->default_value;
    return !bad;
}

bool api_query_param_int(api_ctx *c, const http_cache_param *p, int min, int max, int *out)
{
    assert(p->integer);
    char buf[32];
    const char *value;
    return api_query_param(c, p, buf, sizeof(buf), &value) && query_int_parse(c, p->name, value, min, max, out);
}

bool api_query_param_choice(api_ctx *c, const http_cache_param *p, const char *const *choices, size_t n, int *out)
{
    char buf[32];
    const char *value;
    if (!api_query_param(c, p, buf, sizeof(buf), &value))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(value, choices[i]) == 0) {
            *out = (int)i;
            return true;
        }
    }
    assert(value != p->default_value); /* a default that is not a choice: routes.c and the handler disagree */
    char allowed[160] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(allowed + strlen(allowed), sizeof(allowed) - strlen(allowed), "%s%s", i ? ", " : "", choices[i]);
    http_problem(c->res, c->req, 400, "bad_query", "query parameter '%s' must be one of %s", p->name, allowed);
    return false;
}

/* ---- If-Match ------------------------------------------------------------------------ */

bool api_if_match_version(api_ctx *c, bool required, int64_t *version)
{
    const char *m = c->req->if_match;
    *version = 0;
    if (m == NULL && !required)
        return true;
    if (m == NULL) {
        http_problem(c->res, c->req, 428, "if_match_required",
                     "send If-Match with the ETag of the draft this write is based on (GET …/draft gives it)");
        return false;
    }
    while (*m == ' ')
        m++;
    if (strcmp(m, "*") == 0) /* whatever is current (RFC 9110 13.1.1): the store reads it in the write's transaction */
        return true;
    char *end = NULL;
    long long v = 0;
    if (strncmp(m, "\"v", 2) == 0) {
        errno = 0;
        v = strtoll(m + 2, &end, 10);
    }
    if (end == NULL || end == m + 2 || errno != 0 || v <= 0 || strcmp(end, "\"") != 0) {
        http_problem(c->res, c->req, 412, "stale_version",
                     "If-Match must be the strong ETag of a draft version, like \"v3\"");
        return false;
    }
    *version = v;
    return true;
}

/* ---- bodies and responses --------------------------------------------------------------- */

static bool is_json_media_type(const char *ct)
{
    size_t len = strcspn(ct, ";");
    while (len > 0 && (ct[len - 1] == ' ' || ct[len - 1] == '\t'))
        len--;
    return len == strlen("application/json") && strncasecmp(ct, "application/json", len) == 0;
}

bool api_json_body(api_ctx *c, bool required, json_t **out)
{
    *out = NULL;
    if (c->req->body_len == 0) {
        if (required)
            http_problem(c->res, c->req, 400, "body_required", "this route needs a JSON object in the request body");
        return !required;
    }
    if (c->req->content_type == NULL || !is_json_media_type(c->req->content_type)) {
        http_problem(c->res, c->req, 415, "unsupported_media_type",
                     "the request body must be sent with Content-Type: application/json");
        return false;
    }
    json_error_t err;
    json_t *doc = json_loadb(c->req->body, c->req->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (doc == NULL) {
        http_problem(c->res, c->req, 400, "bad_json", "the body is not valid JSON: %s (line %d, column %d)", err.text,
                     err.line, err.column);
        return false;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        http_problem(c->res, c->req, 422, "not_an_object", "the body must be a JSON object");
        return false;
    }
    *out = doc;
    return true;
}

void api_send_json(api_ctx *c, int status, json_t *doc)
{
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (body == NULL) {
        http_problem(c->res, c->req, 500, "internal", "the response could not be serialised");
        return;
    }
    http_response_body(c->res, status, "application/json", body, strlen(body));
}

void api_store_failed(api_ctx *c, int rc)
{
    const char *msg = store_errmsg(c->store);
    switch (rc) {
    case STORE_NOT_FOUND: http_problem(c->res, c->req, 404, "not_found", "%s", msg[0] ? msg : "not found"); return;
    case STORE_CONFLICT: http_problem(c->res, c->req, 409, "conflict", "%s", msg); return;
    case STORE_STATE: http_problem(c->res, c->req, 409, "wrong_state", "%s", msg); return;
    case STORE_STALE: http_problem(c->res, c->req, 412, "stale_version", "%s", msg); return;
    case STORE_INVALID: http_problem(c->res, c->req, 422, "invalid_reference", "%s", msg); return;
    case STORE_BUSY:
        http_problem(c->res, c->req, 503, "database_busy", "the database is busy; retry shortly");
        http_response_header(c->res, "retry-after", "1");
        return;
    case STORE_FULL:
        http_problem(c->res, c->req, 507, "insufficient_storage",
                     "the database's disk is full: nothing was changed; reads are still served; retry once "
                     "space is freed");
        http_response_header(c->res, "retry-after", "10");
        return;
    case STORE_UNAVAILABLE:
        /* the driver reconnects on its own (with backoff); nothing was written */
        http_problem(c->res, c->req, 503, "database_unavailable",
                     "the database server cannot be reached; nothing was changed; retry shortly");
        http_response_header(c->res, "retry-after", "2");
        return;
    default:
        log_event_str(LOG_ERROR, "database error", "error", msg);
        http_problem(c->res, c->req, 503, "database_error", "the database failed to answer; retry shortly");
        http_response_header(c->res, "retry-after", "1");
        return;
    }
}
