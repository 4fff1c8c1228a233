/*
 * previews.c — preview links: make one, show the version it names, revoke
 * it (docs/api.md, "History").
 *
 * A link is its own credential, so it is signed rather than looked up by a
 * guessable id. Its token is, before base64url (108 characters, no
 * padding; integers big-endian):
 *
 *   format(1) site(8) item(8) version(8) expires_at ms(8) nonce(16) mac(32)
 *
 * where mac is HMAC-SHA256 under the database's secret of everything
 * before it, and the nonce makes two links to the same version distinct
 * (each one revocable on its own). The store keeps only the SHA-256 of the
 * token's text, with the site, item, version and expiry it was made for.
 *
 * GET /preview/{token} checks, on every request and in this order: the
 * token decodes and its mac matches (404: an altered link and no link look
 * the same); it has not expired (410, from the clock alone); its row exists
 * (404: never made here, or the item was deleted), is not revoked (410) and
 * names what the token names. Nothing about a link's validity is cached,
 * so a revocation or an expiry holds from the very next request: only once
 * all of that passed may the rendered page come from the history cache
 * (history.c), keyed by the token's MAC and the item's published version.
 * The route has no cache rule, and every answer, errors included, says
 * `private, no-store`, `noindex` and `no-referrer` (the token must not leak
 * through a Referer either). The page is self-contained HTML without scripts, under
 * a Content-Security-Policy that allows nothing but its inline style.
 *
 * Escaping can make a page five times its text ("&" is "&amp;"), so a page
 * is rendered through history.c's bounded stream and stops as soon as it
 * passes history.max_render_bytes: 422 too_large_to_render, never a page
 * built first and measured after.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "content/api.h"
#include "core/crypto.h"
#include "store/store_history.h"

enum {
    LINK_FORMAT = 1,
    LINK_NONCE = 16,
    LINK_SIGNED = 1 + 4 * 8 + LINK_NONCE, /* what the mac covers */
    LINK_BYTES = LINK_SIGNED + 32,
    LINK_TEXT_LEN = LINK_BYTES / 3 * 4, /* a multiple of 3 bytes: one text per token */
    TTL_DEFAULT_S = 3600,
};
_Static_assert(LINK_BYTES % 3 == 0, "a token's text must have a single spelling");

typedef struct preview_link {
    int64_t site_id, item_id, version, expires_at;
    char text[LINK_TEXT_LEN + 1];
    uint8_t hash[32]; /* SHA-256 of text: the key of its row */
} preview_link;

/* ---- tokens ------------------------------------------------------------------ */

/* Makes link->text and link->hash for the ids and expiry already set.
 * False if the system has no randomness for the nonce. */
static bool link_sign(preview_link *link)
{
    uint8_t raw[LINK_BYTES];
    raw[0] = LINK_FORMAT;
    crypto_put_be64(raw + 1, (uint64_t)link->site_id);
    crypto_put_be64(raw + 9, (uint64_t)link->item_id);
    crypto_put_be64(raw + 17, (uint64_t)link->version);
    crypto_put_be64(raw + 25, (uint64_t)link->expires_at);
    if (crypto_random(raw + 33, LINK_NONCE) != 0)
        return false;
    crypto_seal(api_secret(), raw, LINK_SIGNED, 32, link->text);
    crypto_sha256(link->text, LINK_TEXT_LEN, link->hash);
    return true;
}

/* True if text is a token this database signed; fills link. Any other
 * length, a byte outside base64url (a NUL included) or a mac that does not
 * match is false. */
static bool link_verify(const char *text, size_t len, preview_link *link)
{
    uint8_t raw[LINK_BYTES];
    if (len != LINK_TEXT_LEN || crypto_unseal(api_secret(), text, len, 32, raw, sizeof(raw)) != LINK_SIGNED ||
        raw[0] != LINK_FORMAT)
        return false;
    link->site_id = (int64_t)crypto_get_be64(raw + 1);
    link->item_id = (int64_t)crypto_get_be64(raw + 9);
    link->version = (int64_t)crypto_get_be64(raw + 17);
    link->expires_at = (int64_t)crypto_get_be64(raw + 25);
    memcpy(link->text, text, LINK_TEXT_LEN);
    link->text[LINK_TEXT_LEN] = '\0';
    crypto_sha256(link->text, LINK_TEXT_LEN, link->hash);
    return true;
}

/* What every answer about a link carries, errors included. */
static void private_headers(http_response *res)
{
    http_response_header(res, "cache-control", "private, no-store");
    http_response_header(res, "x-robots-tag", "noindex");
    http_response_header(res, "referrer-policy", "no-referrer");
}

/* ---- POST /v1/{site}/content/{id}/previews --------------------------------------- */

/* The optional body {"version":n,"ttl":s}; absent fields keep *version and
 * *ttl_s. 422 for anything else. */
static bool preview_options(api_ctx *c, json_t *doc, int64_t *version, int64_t *ttl_s)
{
    int max_ttl = api_config()->history_preview_max_ttl_s;
    const char *key;
    json_t *value;
    json_object_foreach(doc, key, value)
    {
        bool integer = json_is_integer(value);
        if (strcmp(key, "version") == 0) {
            if (!integer || json_integer_value(value) <= 0) {
                http_problem(c->res, c->req, 422, "invalid_field", "field 'version' must be a positive integer");
                return false;
            }
            *version = json_integer_value(value);
        } else if (strcmp(key, "ttl") == 0) {
            if (!integer || json_integer_value(value) < 1 || json_integer_value(value) > max_ttl) {
                http_problem(c->res, c->req, 422, "invalid_field",
                             "field 'ttl' must be an integer number of seconds in 1..%d", max_ttl);
                return false;
            }
            *ttl_s = json_integer_value(value);
        } else {
            http_problem(c->res, c->req, 422, "unknown_field", "unknown field '%.64s'; the fields are version and ttl",
                         key);
            return false;
        }
    }
    return true;
}

void handle_preview_create(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id, version = 0;
    int64_t max_ttl = api_config()->history_preview_max_ttl_s;
    int64_t ttl_s = max_ttl < TTL_DEFAULT_S ? max_ttl : TTL_DEFAULT_S;
    json_t *doc;
    private_headers(res);
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_WRITE) || !api_param_id(&c, 1, "the item id", &id) ||
        !api_json_body(&c, false, &doc))
        return;
    bool ok = preview_options(&c, doc, &version, &ttl_s);
    json_decref(doc);
    if (!ok)
        return;
    store_item_facts item;
    int rc = store_item_exists(store, c.site_id, id, &item);
    if (rc == STORE_OK && version == 0)
        version = item.draft_version;
    else if (rc == STORE_OK)
        rc = store_version_exists(store, id, version);
    preview_link link = {.site_id = c.site_id, .item_id = id, .version = version};
    link.expires_at = store_now_ms() + ttl_s * 1000;
    if (rc == STORE_OK && !link_sign(&link)) {
        http_problem(res, req, 503, "no_randomness", "the system could not provide random bytes; retry shortly");
        return;
    }
    if (rc == STORE_OK)
        rc = store_preview_create(store, c.site_id, id, version, link.expires_at, c.token.name, link.hash);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    api_wrote(&c);
    char url[sizeof("/preview/") + LINK_TEXT_LEN], expires[STORE_TIME_TEXT_SIZE];
    snprintf(url, sizeof(url), "/preview/%s", link.text);
    store_time_text(link.expires_at, expires);
    http_response_header(res, "location", "%s", url);
    api_send_json(&c, 201,
                  json_pack("{s:s, s:s, s:s, s:I}", "token", link.text, "url", url, "expires_at", expires, "version",
                            (json_int_t)version));
}

/* ---- DELETE /v1/{site}/previews/{token} ------------------------------------------ */

void handle_preview_revoke(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    private_headers(res);
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_WRITE))
        return;
    preview_link link;
    if (!link_verify(req->params[1], req->param_len[1], &link) || link.site_id != c.site_id) {
        http_problem(res, req, 404, "preview_not_found", "this is not a preview link of site '%s'", c.site);
        return;
    }
    int rc = store_preview_revoke(store, c.site_id, link.hash);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    api_wrote(&c);
    res->status = 204;
}

/* ---- GET /preview/{token} ------------------------------------------------------------ */

/* The version a valid link shows, and what the page says about it. */
typedef struct previewed {
    const preview_link *link;
    char site[65];
    int64_t published_version; /* 0: the item was never published */
    store_version_meta meta;
    json_t *snapshot;
} previewed;

/* The q of one media range's parameters (";q=0.5;level=1"): 1 if absent. */
static double accept_quality(const char *params, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (params[i] != ';')
            continue;
        size_t at = i + 1 + strspn(params + i + 1, " \t");
        if (at + 2 <= len && strncasecmp(params + at, "q=", 2) == 0)
            return strtod(params + at + 2, NULL);
    }
    return 1.0;
}

/* True when Accept lists application/json with a nonzero q. */
static bool wants_json(const char *accept)
{
    static const char json_type[] = "application/json";
    for (const char *p = accept; p != NULL && *p != '\0';) {
        p += strspn(p, " \t,");
        size_t range = strcspn(p, ",");
        size_t type = strcspn(p, "; \t,");
        if (type == strlen(json_type) && strncasecmp(p, json_type, type) == 0 &&
            accept_quality(p + type, range - type) > 0.0)
            return true;
        p += range;
    }
    return false;
}

/* The version as GET …/versions/{n} shows it, plus whether it is the
 * item's published one (that route's answer is immutable, so it leaves
 * "published" out; a preview is never kept, so it can say). */
static json_t *version_json(const previewed *v)
{
    json_t *doc = history_version_json(v->site, v->link->item_id, &v->meta, v->snapshot);
    bool published = v->published_version == v->meta.number;
    if (doc != NULL && json_object_set_new(doc, "published", json_boolean(published)) != 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* Writes s as HTML text; a NUL becomes U+FFFD. Snapshot strings are valid
 * UTF-8 (jansson checked them), so only these five bytes need care. */
static bool html_special(char c)
{
    return c == '&' || c == '<' || c == '>' || c == '"' || c == '\'' || c == '\0';
}

static void html_escaped(FILE *out, const char *s, size_t len)
{
    while (len > 0) {
        size_t run = 0;
        while (run < len && !html_special(s[run]))
            run++;
        fwrite(s, 1, run, out);
        if (run == len)
            return;
        switch (s[run]) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default: fputs("\xEF\xBF\xBD", out); break;
        }
        s += run + 1;
        len -= run + 1;
        if (ferror(out)) /* the page passed its bound: stop here */
            return;
    }
}

static void html_member(FILE *out, const json_t *snapshot, const char *key)
{
    const json_t *value = json_object_get(snapshot, key);
    if (json_is_string(value))
        html_escaped(out, json_string_value(value), json_string_length(value));
}

static bool is_blank(const char *line, const char *end)
{
    while (line < end && (*line == ' ' || *line == '\t' || *line == '\r'))
        line++;
    return line == end;
}

/* The body as paragraphs: blank lines separate them, a single newline
 * inside one is a line break. */
static void html_body(FILE *out, const json_t *body)
{
    const char *text = json_string_value(body);
    if (text == NULL)
        return;
    const char *end = text + json_string_length(body);
    bool open = false;
    for (const char *line = text; line < end && !ferror(out);) {
        const char *newline = memchr(line, '\n', (size_t)(end - line));
        const char *line_end = newline != NULL ? newline : end;
        if (is_blank(line, line_end)) {
            if (open)
                fputs("</p>\n", out);
            open = false;
        } else {
            fputs(open ? "<br>\n" : "<p>", out);
            open = true;
            html_escaped(out, line, (size_t)(line_end - line - (line_end[-1] == '\r')));
        }
        line = line_end + (newline != NULL);
    }
    if (open)
        fputs("</p>\n", out);
}

/* "2026-11-21 10:00:00 UTC" inside a <time> carrying the API's form. */
static void html_time(FILE *out, int64_t ms)
{
    char text[STORE_TIME_TEXT_SIZE];
    store_time_text(ms, text);
    fprintf(out, "<time datetime=\"%s\">%.10s %.8s UTC</time>", text, text, text + 11);
}

static const char page_style[] =
    ":root{color-scheme:light dark}"
    "body{margin:0;font:19px/1.65 Charter,Georgia,'Iowan Old Style',serif;color:#1f1f1f;background:#fbfaf7}"
    ".banner{position:sticky;top:0;margin:0;padding:.6em 1em;font:14px/1.45 system-ui,sans-serif;"
    "text-align:center;background:#fff2c7;color:#5a4300;border-bottom:1px solid #e6d49a}"
    "article{max-width:40em;margin:0 auto;padding:2.5em 1.25em 3em}"
    "h1{font-size:2.2em;line-height:1.15;margin:0 0 .4em;letter-spacing:-.01em}"
    ".excerpt{font-size:1.2em;color:#555;margin-top:0}"
    ".meta{font:14px/1.6 system-ui,sans-serif;color:#666;margin-bottom:2em}"
    ".tag{display:inline-block;padding:0 .55em;margin:0 .3em .3em 0;border-radius:1em;background:#ecebe6}"
    "footer{max-width:40em;margin:0 auto 3em;padding:1em 1.25em 0;border-top:1px solid #ddd;"
    "font:13px/1.5 system-ui,sans-serif;color:#888}"
    "@media (prefers-color-scheme:dark){body{color:#e4e4e4;background:#161616}"
    ".banner{background:#3b3000;color:#ffe59a;border-color:#5c4b00}.excerpt,.meta{color:#aaa}"
    ".tag{background:#2c2c2c}footer{border-color:#333}}";

static void html_page(FILE *out, const previewed *v)
{
    const json_t *s = v->snapshot;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<meta name=\"robots\" content=\"noindex\">\n<title>Preview: ",
          out);
    html_member(out, s, "title");
    fprintf(out,
            "</title>\n<style>%s</style>\n</head>\n<body>\n<p class=\"banner\">Preview — version %lld of item %lld, ",
            page_style, (long long)v->meta.number, (long long)v->link->item_id);
    fputs(v->published_version == v->meta.number ? "the published version" : "not published", out);
    fputs(". This link expires ", out);
    html_time(out, v->link->expires_at);
    fputs(".</p>\n<article>\n<h1>", out);
    html_member(out, s, "title");
    fputs("</h1>\n", out);
    const json_t *excerpt = json_object_get(s, "excerpt");
    if (json_string_length(excerpt) > 0) {
        fputs("<p class=\"excerpt\">", out);
        html_member(out, s, "excerpt");
        fputs("</p>\n", out);
    }
    const json_t *category = json_object_get(s, "category"), *tags = json_object_get(s, "tags");
    if (json_is_string(category) || json_array_size(tags) > 0) {
        fputs("<p class=\"meta\">", out);
        if (json_is_string(category)) {
            fputs("Category: <strong>", out);
            html_member(out, s, "category");
            fputs("</strong>", out);
        }
        if (json_array_size(tags) > 0)
            fputs(json_is_string(category) ? " · Tags: " : "Tags: ", out);
        size_t i;
        const json_t *tag;
        json_array_foreach(tags, i, tag)
        {
            fputs("<span class=\"tag\">", out);
            html_escaped(out, json_string_value(tag) ? json_string_value(tag) : "", json_string_length(tag));
            fputs("</span>", out);
        }
        fputs("</p>\n", out);
    }
    html_body(out, json_object_get(s, "body"));
    fputs("</article>\n<footer>Version ", out);
    fprintf(out, "%lld, saved ", (long long)v->meta.number);
    html_time(out, v->meta.created_at);
    fputs(" by ", out);
    html_escaped(out, v->meta.author, strlen(v->meta.author));
    fputs(".</footer>\n</body>\n</html>\n", out);
}

/* The bytes of text a rendering of the version is made from. */
static size_t snapshot_bytes(const previewed *v)
{
    static const char *const members[] = {"title", "excerpt", "category", "body"};
    size_t total = 0;
    for (size_t i = 0; i < sizeof members / sizeof *members; i++)
        total += json_string_length(json_object_get(v->snapshot, members[i]));
    return total;
}

static void send_page(api_ctx *c, const previewed *v, const char *key)
{
    history_render r;
    FILE *out = history_render_begin(&r);
    if (out != NULL)
        html_page(out, v);
    char what[64];
    snprintf(what, sizeof what, "the preview page of version %lld", (long long)v->meta.number);
    history_render_send(c, &r, key, v->link->site_id, v->link->item_id, "text/html; charset=utf-8", what,
                        snapshot_bytes(v));
}

static void send_json(api_ctx *c, const previewed *v, const char *key)
{
    json_t *doc = version_json(v);
    history_render r;
    history_render_begin(&r);
    if (doc != NULL)
        history_render_json(&r, doc);
    else
        r.failed = true;
    json_decref(doc);
    char what[64];
    snprintf(what, sizeof what, "the JSON preview of version %lld", (long long)v->meta.number);
    history_render_send(c, &r, key, v->link->site_id, v->link->item_id, "application/json", what, snapshot_bytes(v));
}

static void link_refused(api_ctx *c, int status, const char *detail)
{
    http_problem(c->res, c->req, status, status == 410 ? "preview_gone" : "preview_not_found", "%s", detail);
}

void handle_preview(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    private_headers(res);
    http_response_header(res, "vary", "accept");
    preview_link link;
    if (!link_verify(req->params[0], req->param_len[0], &link)) {
        link_refused(&c, 404, "this is not a valid preview link");
        return;
    }
    if (store_now_ms() >= link.expires_at) {
        char expired[STORE_TIME_TEXT_SIZE];
        store_time_text(link.expires_at, expired);
        http_problem(res, req, 410, "preview_gone", "this preview link expired at %s", expired);
        return;
    }
    store_preview row;
    int rc = store_preview_lookup(store, link.hash, &row);
    if (rc == STORE_OK && row.revoked) {
        link_refused(&c, 410, "this preview link was revoked");
        return;
    }
    if (rc == STORE_OK && (row.site_id != link.site_id || row.item_id != link.item_id || row.version != link.version ||
                           row.expires_at != link.expires_at)) {
        link_refused(&c, 404, "this is not a valid preview link");
        return;
    }
    previewed v = {.link = &link};
    if (rc == STORE_OK)
        rc = store_preview_item(store, link.site_id, link.item_id, v.site, &v.published_version);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    /* The link is valid now: its page may come from the cache. What the
     * page shows is fixed by the token (version, expiry) but for the item's
     * published version, which is part of the key. */
    bool json = wants_json(req->accept);
    if (!json)
        http_response_header(res, "content-security-policy", "default-src 'none'; style-src 'unsafe-inline'");
    char key[128];
    snprintf(key, sizeof key, "p:%.32s:%lld:%c", link.text + LINK_TEXT_LEN - 32, (long long)v.published_version,
             json ? 'j' : 'h');
    if (history_send_cached(&c, key))
        return;
    rc = store_version_get(store, link.site_id, link.item_id, link.version, &v.meta, &v.snapshot);
    if (rc != STORE_OK)
        api_store_failed(&c, rc);
    else if (json)
        send_json(&c, &v, key);
    else
        send_page(&c, &v, key);
    json_decref(v.snapshot);
}
