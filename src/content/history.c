/*
 * history.c — the history routes: the version list, one version, the diff
 * between two versions, restore, and the autosave slot; and the jobs that
 * serve them in the background (precomputed diffs, compression of old
 * rows, retention).
 *
 * A version never changes, and neither does the diff between two
 * versions, so both are answered with `Cache-Control: private,
 * max-age=31536000, immutable` and kept, once rendered, in a cache of their
 * own (the engine of src/cache, without expiry): a second request for them
 * costs the token check, one indexed lookup proving the item still exists,
 * and a copy. A page of the version list is kept the same way under a key
 * holding the item's latest and published versions, which is all that can
 * change it (but retention). They are dropped only when their item is deleted (tag
 * "history:SITE_ID:ID") or when retention removes versions. The key holds
 * the item's creation time as well as its id, so an id reused by SQLite
 * after a delete can never meet the old item's entries — not even on
 * another instance that did not hear of the delete.
 *
 * These routes carry an Authorization header, so the shared response
 * cache (src/http/response_cache.c) never sees them: this cache is only
 * reached after the handler has checked the token.
 *
 * Bounded rendering. A diff is rendered (and a preview page, previews.c)
 * straight into the buffer that becomes the cached document — no copy
 * between renderer and cache — through a stream that refuses to grow past
 * history.max_render_bytes (core/textbuf.h). An HTML diff is some 50
 * times the edit it shows, so a 1 MB edit would otherwise make a 50 MB
 * document per request: past the bound, rendering stops at once and the
 * request is answered 422 too_large_to_render (the background diff job
 * simply ends: the editor's request will say so). A document under the
 * bound but over one shard of this cache (64 MB / 16 shards = 4 MiB) is
 * sent but not kept: cache_insert refuses it and frees it (it owns what it
 * is given, cache.h).
 */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cache/cache.h"
#include "content/api.h"
#include "core/crypto.h"
#include "core/fmt.h"
#include "core/log.h"
#include "diff/diff.h"
#include "jobs/jobs.h"
#include "store/store_history.h"

#define HISTORY_CACHE_BYTES ((size_t)64 << 20)
#define FOREVER_MS ((uint64_t)100 * 365 * 24 * 3600 * 1000)
#define IMMUTABLE "private, max-age=31536000, immutable"

/* ---- the cache of rendered versions and diffs ------------------------------------- */

typedef struct history_doc {
    const char *content_type; /* static */
    char etag[24];            /* quoted */
    size_t len;
    char body[]; /* len bytes and a NUL */
} history_doc;

static cache *doc_cache;
static pthread_once_t doc_cache_once = PTHREAD_ONCE_INIT;

static void doc_cache_create(void)
{
    cache_options options = {.max_bytes = HISTORY_CACHE_BYTES, .shard_count = 16};
    doc_cache = cache_create(&options);
}

static cache *docs(void)
{
    pthread_once(&doc_cache_once, doc_cache_create);
    return doc_cache;
}

static void history_tag(char out[64], int64_t site_id, int64_t id)
{
    snprintf(out, 64, "history:%lld:%lld", (long long)site_id, (long long)id);
}

void history_forget_item(int64_t site_id, int64_t id)
{
    char tag[64];
    history_tag(tag, site_id, id);
    if (docs())
        cache_invalidate_tag(docs(), tag);
}

void history_forget_all(void)
{
    if (docs())
        cache_clear(docs());
}

/* ---- the monitoring's figures ------------------------------------------------------ */

#define HISTORY_TOTALS_MAX_AGE_MS 60000

static pthread_mutex_t totals_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *totals;        /* store_history_totals' last answer, under totals_lock */
static int64_t totals_at = 0; /* when it was read */

/* The per-site counts, read again once HISTORY_TOTALS_MAX_AGE_MS old (a
 * new reference, or NULL when the database did not answer). */
static json_t *history_totals(store_t *store, int64_t *at)
{
    pthread_mutex_lock(&totals_lock);
    int64_t now = store_now_ms();
    json_t *fresh = NULL;
    if ((totals == NULL || now - totals_at >= HISTORY_TOTALS_MAX_AGE_MS) &&
        store_history_totals(store, &fresh) == STORE_OK) {
        json_decref(totals);
        totals = fresh;
        totals_at = now;
    }
    json_t *out = json_incref(totals);
    *at = totals_at;
    pthread_mutex_unlock(&totals_lock);
    return out;
}

json_t *history_stats_json(store_t *store)
{
    cache_stats st = {0};
    if (docs())
        cache_get_stats(docs(), UINT32_MAX, &st);
    uint64_t lookups = st.hits + st.misses;
    int64_t at = 0;
    json_t *sites = history_totals(store, &at);
    char counted[STORE_TIME_TEXT_SIZE] = "";
    if (at != 0)
        store_time_text(at, counted);
    return json_pack("{s:{s:I, s:I, s:f, s:I, s:I, s:I}, s:o, s:s?}", "cache", "hits", (json_int_t)st.hits, "misses",
                     (json_int_t)st.misses, "hit_ratio", lookups ? (double)st.hits / (double)lookups : 0.0, "entries",
                     (json_int_t)st.entries, "bytes", (json_int_t)st.bytes, "max_bytes",
                     (json_int_t)HISTORY_CACHE_BYTES, "sites", sites != NULL ? sites : json_object(), "counted_at",
                     at != 0 ? counted : NULL);
}

/* Fills the header of a document whose len bytes of body are in place. */
static void doc_seal(history_doc *d, const char *content_type, size_t len)
{
    d->content_type = content_type;
    d->len = len;
    d->body[len] = '\0';
    d->etag[0] = '"';
    fmt_hex(d->etag + 1, XXH3_64bits(d->body, len), 16);
    d->etag[17] = '"';
    d->etag[18] = '\0';
}

static history_doc *doc_new(const char *content_type, const char *body, size_t len)
{
    history_doc *d = malloc(sizeof *d + len + 1);
    if (!d)
        return NULL;
    memcpy(d->body, body, len);
    doc_seal(d, content_type, len);
    return d;
}

/* A reference to the cached document under key, or NULL. */
static cache_entry *doc_lookup(const char *key)
{
    cache_entry *e = NULL;
    if (!docs() || cache_get(docs(), 0, key, strlen(key), (uint64_t)store_now_ms(), &e) == CACHE_MISS)
        return NULL;
    return e;
}

/* Gives d to the cache: it is kept, or (too large for a shard, fenced)
 * freed by cache_insert, which owns it from this call on either way. The
 * caller must not touch d afterwards. */
static void doc_store(const char *key, int64_t site_id, int64_t id, history_doc *d)
{
    char tag[64];
    history_tag(tag, site_id, id);
    const char *tags[] = {tag};
    cache_value v = {.value = d,
                     .free_value = free,
                     .charge = sizeof *d + d->len + strlen(key),
                     .tags = tags,
                     .tag_count = 1,
                     .fresh_ms = FOREVER_MS};
    if (docs())
        cache_insert(docs(), 0, key, strlen(key), &v, cache_epoch(docs()), (uint64_t)store_now_ms());
    else
        free(d);
}

/* 304 when If-None-Match names the document, else 200 with it. */
static void doc_send(api_ctx *c, const history_doc *d, const char *source)
{
    http_response_header(c->res, "etag", "%s", d->etag);
    http_response_header(c->res, "cache-control", IMMUTABLE);
    http_response_header(c->res, "x-history-cache", "%s", source);
    const char *inm = c->req->if_none_match;
    if (inm && http_etag_list_matches(inm, strlen(inm), d->etag, strlen(d->etag))) {
        c->res->status = 304;
        return;
    }
    http_response_copy(c->res, 200, d->content_type, d->body, d->len);
}

bool history_send_cached(api_ctx *c, const char *key)
{
    cache_entry *e = doc_lookup(key);
    if (!e)
        return false;
    const history_doc *d = cache_entry_value(e);
    http_response_copy(c->res, 200, d->content_type, d->body, d->len);
    cache_entry_release(&e);
    return true;
}

static void history_keep(const char *key, int64_t site_id, int64_t id, const char *content_type, const char *body,
                         size_t len)
{
    history_doc *d = doc_new(content_type, body, len);
    if (d)
        doc_store(key, site_id, id, d);
}

/* ---- bounded rendering ------------------------------------------------------------- */

FILE *history_render_begin(history_render *r)
{
    r->failed = false;
    r->out = textbuf_open(&r->buf, offsetof(history_doc, body), (size_t)api_config()->history_max_render_bytes);
    return r->out;
}

typedef enum render_outcome { RENDERED, RENDER_TOO_LARGE, RENDER_NO_MEMORY } render_outcome;

/* Closes the stream; *d gets the document when RENDERED. */
static render_outcome render_finish(history_render *r, const char *content_type, history_doc **d)
{
    *d = NULL;
    if (r->out == NULL)
        return RENDER_NO_MEMORY;
    bool ok = textbuf_close(&r->buf, r->out) && !r->failed;
    r->out = NULL;
    if (!ok) {
        render_outcome why = r->buf.over ? RENDER_TOO_LARGE : RENDER_NO_MEMORY;
        textbuf_free(&r->buf);
        return why;
    }
    size_t len = r->buf.len;
    *d = (history_doc *)textbuf_take(&r->buf);
    doc_seal(*d, content_type, len);
    return RENDERED;
}

static void render_refused(api_ctx *c, const char *what, size_t source_bytes)
{
    http_problem(c->res, c->req, 422, "too_large_to_render",
                 "%s would be larger than history.max_render_bytes (%lld bytes; it passed that bound while being "
                 "rendered, from %zu bytes of text), so it is not built",
                 what, (long long)api_config()->history_max_render_bytes, source_bytes);
}

void history_render_send(api_ctx *c, history_render *r, const char *key, int64_t site_id, int64_t id,
                         const char *content_type, const char *what, size_t source_bytes)
{
    history_doc *d = NULL;
    render_outcome outcome = render_finish(r, content_type, &d);
    if (outcome == RENDER_TOO_LARGE) {
        render_refused(c, what, source_bytes);
        return;
    }
    if (outcome == RENDER_NO_MEMORY) {
        http_problem(c->res, c->req, 500, "internal", "%s could not be built (out of memory)", what);
        return;
    }
    http_response_copy(c->res, 200, d->content_type, d->body, d->len);
    doc_store(key, site_id, id, d);
}

static int json_to_stream(const char *buffer, size_t size, void *data)
{
    FILE *out = data;
    return fwrite(buffer, 1, size, out) == size && !ferror(out) ? 0 : -1;
}

void history_render_json(history_render *r, const json_t *doc)
{
    if (r->out != NULL && json_dump_callback(doc, json_to_stream, r->out, JSON_COMPACT) != 0 && !ferror(r->out))
        r->failed = true; /* jansson's own failure (out of memory), not a refused write */
}

/* The guards every history route shares: site, token role, item id, and
 * what the item's row says (its creation time is part of every key).
 * `reading`: the route only reads, on a replica that has the token's
 * writes (api_route_read) or the primary; else everything is the
 * primary's. */
static bool history_guard(api_ctx *c, store_role role, bool reading, int64_t *id, store_item_facts *item)
{
    if (!api_resolve_site(c) || !api_require_role(c, role) || !api_param_id(c, 1, "the item id", id) ||
        (reading && !api_route_read(c)))
        return false;
    int rc;
    do
        rc = store_item_exists(c->store, c->site_id, *id, item);
    while (api_read_again(c, rc));
    if (rc != STORE_OK) {
        api_store_failed(c, rc);
        return false;
    }
    return true;
}

/* ---- one version ------------------------------------------------------------------ */

json_t *history_version_json(const char *site, int64_t id, const struct store_version_meta *meta, json_t *snapshot)
{
    json_t *doc = json_object(), *m = store_version_meta_json(meta);
    bool ok = doc && m && json_object_set_new(doc, "item", json_integer(id)) == 0 &&
              json_object_set_new(doc, "site", json_string(site)) == 0 && json_object_update(doc, m) == 0 &&
              json_object_set(doc, "content", snapshot) == 0;
    json_decref(m);
    if (!ok) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static void version_key(char *out, size_t size, int64_t site_id, int64_t id, int64_t created_at, int64_t number)
{
    snprintf(out, size, "%lld:%lld:%lld:v:%lld", (long long)site_id, (long long)id, (long long)created_at,
             (long long)number);
}

void handle_version_get(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id, number;
    store_item_facts item;
    if (!history_guard(&c, ROLE_READ, true, &id, &item) || !api_param_id(&c, 2, "the version number", &number))
        return;
    char key[128];
    version_key(key, sizeof key, c.site_id, id, item.created_at, number);
    cache_entry *e = doc_lookup(key);
    if (e) {
        doc_send(&c, cache_entry_value(e), "hit");
        cache_entry_release(&e);
        return;
    }
    store_version_meta meta;
    json_t *snapshot = NULL;
    int rc;
    do
        rc = store_version_get(c.store, c.site_id, id, number, &meta, &snapshot);
    while (api_read_again(&c, rc));
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    json_t *doc = history_version_json(c.site, id, &meta, snapshot);
    json_decref(snapshot);
    history_render hr;
    history_render_begin(&hr);
    if (doc)
        history_render_json(&hr, doc);
    else
        hr.failed = true;
    json_decref(doc);
    history_doc *d = NULL;
    render_outcome outcome = render_finish(&hr, "application/json", &d);
    if (outcome == RENDER_TOO_LARGE) {
        char what[64];
        snprintf(what, sizeof what, "version %lld as JSON", (long long)number);
        render_refused(&c, what, (size_t)meta.size);
    } else if (outcome == RENDER_NO_MEMORY) {
        http_problem(res, req, 500, "internal", "the version could not be serialised");
    } else {
        doc_send(&c, d, "miss");
        doc_store(key, c.site_id, id, d);
    }
}

/* ---- the version list -------------------------------------------------------------- */

/* The cursor: the number to continue below, bound to the item by an
 * HMAC under the database secret (cut to 16 bytes). */
enum { HCURSOR_BYTES = 1 + 8 + 8 + 16 };

static void hcursor_encode(int64_t id, int64_t before, char out[64])
{
    uint8_t raw[HCURSOR_BYTES];
    raw[0] = 'h';
    crypto_put_be64(raw + 1, (uint64_t)id);
    crypto_put_be64(raw + 9, (uint64_t)before);
    crypto_seal(api_secret(), raw, 17, 16, out);
}

static bool hcursor_decode(api_ctx *c, const char *text, int64_t id, int64_t *before)
{
    uint8_t raw[HCURSOR_BYTES + 4];
    long n = crypto_unseal(api_secret(), text, strlen(text), 16, raw, sizeof raw);
    int64_t at = n == 17 ? (int64_t)crypto_get_be64(raw + 9) : 0;
    if (n == 17 && raw[0] == 'h' && (int64_t)crypto_get_be64(raw + 1) == id && at > 0) {
        *before = at;
        return true;
    }
    http_problem(c->res, c->req, 400, "bad_cursor",
                 "cursor is not one this server made for this item's versions (altered, or from another item)");
    return false;
}

/* A page of the list is fixed by the item's latest and published
 * versions and the page's position: with those in its key it never
 * changes either (retention, which can change it, drops the cache). */
void handle_versions_list(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id, before = 0;
    store_item_facts item;
    int limit;
    if (!history_guard(&c, ROLE_READ, true, &id, &item) || !api_query_int(&c, "limit", 1, 100, 20, &limit))
        return;
    char cursor[256];
    bool bad = false;
    if (api_query(&c, "cursor", cursor, sizeof cursor, &bad) && !hcursor_decode(&c, cursor, id, &before))
        return;
    if (bad)
        return;
    http_response_header(res, "cache-control", "private, no-store");
    char key[192];
    snprintf(key, sizeof key, "%lld:%lld:%lld:l:%lld:%lld:%lld:%d", (long long)c.site_id, (long long)id,
             (long long)item.created_at, (long long)item.draft_version, (long long)item.published_version,
             (long long)before, limit);
    if (history_send_cached(&c, key))
        return;
    json_t *versions = NULL;
    int64_t next = 0;
    int rc;
    do
        rc = store_version_list(c.store, c.site_id, id, before, limit, &versions, &next);
    while (api_read_again(&c, rc));
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    char next_text[64];
    if (next > 0)
        hcursor_encode(id, next, next_text);
    json_t *doc = json_pack("{s:I, s:I, s:o, s:s?}", "item", (json_int_t)id, "latest", (json_int_t)item.draft_version,
                            "versions", versions, "next_cursor", next > 0 ? next_text : NULL);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        http_problem(res, req, 500, "internal", "the version list could not be built");
        return;
    }
    history_keep(key, c.site_id, id, "application/json", text, strlen(text));
    http_response_body(res, 200, "application/json", text, strlen(text));
}

/* ---- diff -------------------------------------------------------------------------- */

/* The snapshot as one text, fields first, one per line, then the body:
 * what a diff shows. */
/* A member's text; "" when absent or not a string (a null excerpt). */
static const char *member_text(const json_t *s, const char *key)
{
    const char *text = json_string_value(json_object_get(s, key));
    return text ? text : "";
}

static char *snapshot_text(const json_t *s, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f)
        return NULL;
    char *fields = json_dumps(json_object_get(s, "fields"), JSON_COMPACT | JSON_SORT_KEYS);
    fprintf(f, "title: %s\nslug: %s\nexcerpt: %s\ncategory: %s\ntags: ", member_text(s, "title"),
            member_text(s, "slug"), member_text(s, "excerpt"), member_text(s, "category"));
    size_t i;
    json_t *tag;
    json_array_foreach(json_object_get(s, "tags"), i, tag) fprintf(f, "%s%s", i ? ", " : "", json_string_value(tag));
    fprintf(f, "\nfields: %s\n\n", fields ? fields : "{}");
    free(fields);
    json_t *body = json_object_get(s, "body");
    fwrite(json_string_value(body), 1, json_string_length(body), f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static const char *const snapshot_members[] = {"title", "slug", "excerpt", "category", "tags", "fields", "body"};

static json_t *fields_changed(const json_t *a, const json_t *b)
{
    json_t *changed = json_array();
    for (size_t i = 0; changed && i < sizeof snapshot_members / sizeof *snapshot_members; i++)
        if (!json_equal(json_object_get(a, snapshot_members[i]), json_object_get(b, snapshot_members[i])))
            json_array_append_new(changed, json_string(snapshot_members[i]));
    return changed;
}

typedef enum diff_format { FORMAT_JSON = 'j', FORMAT_UNIFIED = 'u', FORMAT_HTML = 'h' } diff_format;

static const char *format_type(diff_format format)
{
    return format == FORMAT_JSON      ? "application/json"
           : format == FORMAT_UNIFIED ? "text/plain; charset=utf-8"
                                      : "text/html; charset=utf-8";
}

static const char *format_name(diff_format format)
{
    return format == FORMAT_JSON ? "JSON" : format == FORMAT_UNIFIED ? "unified" : "HTML";
}

/* The diff's own JSON members, with the request's facts put first. */
static void diff_write_json(FILE *out, int64_t id, int64_t from, int64_t to, const json_t *a, const json_t *b,
                            const diff_result *r)
{
    json_t *changed = fields_changed(a, b);
    char *changed_text = changed ? json_dumps(changed, JSON_COMPACT) : NULL;
    json_decref(changed);
    fprintf(out, "{\"item\":%lld,\"from\":%lld,\"to\":%lld,\"fields_changed\":%s,", (long long)id, (long long)from,
            (long long)to, changed_text ? changed_text : "[]");
    free(changed_text);
    diff_write_json_members(r, DIFF_DEFAULT_CONTEXT, out);
    fputc('}', out);
}

/* Renders the diff of two snapshots into hr (bounded: the renderer stops
 * at the first refused write); *source_bytes gets the texts' total size. */
static void diff_render(history_render *hr, int64_t id, int64_t from, int64_t to, const json_t *a, const json_t *b,
                        diff_format format, size_t *source_bytes)
{
    size_t a_len = 0, b_len = 0;
    char *a_text = snapshot_text(a, &a_len), *b_text = snapshot_text(b, &b_len);
    diff_result *r = a_text && b_text ? diff_compute(a_text, a_len, b_text, b_len, NULL) : NULL;
    free(a_text);
    free(b_text);
    *source_bytes = a_len + b_len;
    if (!r || !hr->out) {
        hr->failed = true;
        diff_free(&r);
        return;
    }
    if (format == FORMAT_JSON) {
        diff_write_json(hr->out, id, from, to, a, b, r);
    } else if (format == FORMAT_UNIFIED) {
        char a_label[32], b_label[32];
        snprintf(a_label, sizeof a_label, "v%lld", (long long)from);
        snprintf(b_label, sizeof b_label, "v%lld", (long long)to);
        diff_write_unified(r, DIFF_DEFAULT_CONTEXT, a_label, b_label, hr->out);
    } else {
        diff_write_html(r, DIFF_DEFAULT_CONTEXT, hr->out);
    }
    diff_free(&r);
}

static void diff_key(char *out, size_t size, int64_t site_id, int64_t id, int64_t created_at, int64_t from, int64_t to,
                     diff_format format)
{
    snprintf(out, size, "%lld:%lld:%lld:d:%lld:%lld:%c", (long long)site_id, (long long)id, (long long)created_at,
             (long long)from, (long long)to, (char)format);
}

/* Loads both versions and renders their diff into hr (begun by the
 * caller); a store failure is returned (errmsg set). */
static int diff_build(store_t *store, int64_t site_id, int64_t id, int64_t from, int64_t to, diff_format format,
                      history_render *hr, size_t *source_bytes)
{
    store_version_meta meta;
    json_t *a = NULL, *b = NULL;
    int rc = store_version_get(store, site_id, id, from, &meta, &a);
    if (rc == STORE_OK)
        rc = store_version_get(store, site_id, id, to, &meta, &b);
    if (rc == STORE_OK)
        diff_render(hr, id, from, to, a, b, format, source_bytes);
    json_decref(a);
    json_decref(b);
    return rc;
}

static bool query_version(api_ctx *c, const char *name, int64_t *out)
{
    char text[24];
    bool bad = false;
    if (!api_query(c, name, text, sizeof text, &bad)) {
        if (!bad)
            http_problem(c->res, c->req, 400, "bad_query", "query parameter '%s' (a version number) is required", name);
        return false;
    }
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || v < 1) {
        http_problem(c->res, c->req, 400, "bad_query", "query parameter '%s' must be a version number (1, 2, …)", name);
        return false;
    }
    *out = v;
    return true;
}

static bool query_format(api_ctx *c, diff_format *format)
{
    char text[16];
    bool bad = false;
    *format = FORMAT_JSON;
    if (!api_query(c, "format", text, sizeof text, &bad))
        return !bad;
    if (strcmp(text, "json") == 0)
        return true;
    if (strcmp(text, "unified") == 0) {
        *format = FORMAT_UNIFIED;
        return true;
    }
    if (strcmp(text, "html") == 0) {
        *format = FORMAT_HTML;
        return true;
    }
    http_problem(c->res, c->req, 400, "bad_query", "query parameter 'format' must be json, unified or html");
    return false;
}

void handle_diff(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id, from, to;
    store_item_facts item;
    diff_format format;
    if (!history_guard(&c, ROLE_READ, false, &id, &item) || !query_version(&c, "from", &from) ||
        !query_version(&c, "to", &to) || !query_format(&c, &format))
        return;
    char key[160];
    diff_key(key, sizeof key, c.site_id, id, item.created_at, from, to, format);
    cache_entry *e = doc_lookup(key);
    if (e) {
        doc_send(&c, cache_entry_value(e), "hit");
        cache_entry_release(&e);
        return;
    }
    history_render hr;
    size_t source_bytes = 0;
    history_render_begin(&hr);
    int rc = diff_build(store, c.site_id, id, from, to, format, &hr, &source_bytes);
    history_doc *d = NULL;
    render_outcome outcome = render_finish(&hr, format_type(format), &d);
    if (rc != STORE_OK) {
        free(d);
        api_store_failed(&c, rc);
    } else if (outcome == RENDER_TOO_LARGE) {
        char what[96];
        snprintf(what, sizeof what, "the %s diff of versions %lld and %lld", format_name(format), (long long)from,
                 (long long)to);
        render_refused(&c, what, source_bytes);
    } else if (outcome == RENDER_NO_MEMORY) {
        http_problem(res, req, 500, "internal", "the diff could not be computed (out of memory)");
    } else {
        doc_send(&c, d, "miss");
        doc_store(key, c.site_id, id, d);
    }
}

/* ---- restore and autosave ------------------------------------------------------------ */

void handle_version_restore(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id, number, base, version = 0;
    store_item_facts item;
    if (!history_guard(&c, ROLE_WRITE, false, &id, &item) || !api_param_id(&c, 2, "the version number", &number) ||
        !api_if_match_version(&c, false, &base))
        return;
    json_t *draft = NULL;
    int rc = store_version_restore(store, c.site_id, c.site, id, number, base, c.token.name, &draft, &version);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    api_wrote(&c);
    store_autosave_clear(store, id, c.token.name, version); /* superseded; a failure leaves it to retention */
    history_after_save(&c, id, draft, version, false);
    http_response_header(res, "etag", "\"v%lld\"", (long long)version);
    api_send_json(&c, 200, draft);
}

void handle_autosave_put(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id, base;
    store_item_facts item;
    json_t *doc;
    if (!history_guard(&c, ROLE_WRITE, false, &id, &item) || !api_if_match_version(&c, true, &base) ||
        !api_json_body(&c, true, &doc))
        return;
    edit_input in;
    if (api_parse_edit(&c, doc, false, &in)) {
        json_t *slot = NULL; /* base 0: If-Match: *, over whatever is the latest as it is written */
        int rc = store_autosave_put(store, c.site_id, id, base, base == 0, &in.edit, c.token.name, &slot);
        if (rc != STORE_OK) {
            api_store_failed(&c, rc);
        } else {
            api_wrote(&c);
            json_object_set_new(slot, "site", json_string(c.site));
            http_response_header(res, "cache-control", "private, no-store");
            api_send_json(&c, 200, slot);
        }
    }
    api_edit_free(&in);
    json_decref(doc);
}

void handle_autosave_get(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id;
    store_item_facts item;
    if (!history_guard(&c, ROLE_WRITE, true, &id, &item))
        return;
    json_t *slot = NULL;
    int rc;
    do
        rc = store_autosave_get(c.store, c.site_id, id, c.token.name, &slot);
    while (api_read_again(&c, rc));
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    json_object_set_new(slot, "site", json_string(c.site));
    http_response_header(res, "cache-control", "private, no-store");
    api_send_json(&c, 200, slot);
}

/* ---- after a save ----------------------------------------------------------------------- */

void history_after_save(api_ctx *c, int64_t id, const json_t *draft, int64_t version, bool diff_queued)
{
    /* The public representation of a published item shows its slug and
     * draft_version, which a save moves. */
    const char *status = json_string_value(json_object_get(draft, "status"));
    if (status != NULL && strcmp(status, "draft") != 0)
        api_invalidate_item(c, id);
    /* The diff an editor looks at next, computed off the request path. */
    if (version > 1 && diff_queued) {
        jobs_wake(); /* queued in the save's own transaction */
    } else if (version > 1) {
        json_t *payload = json_pack("{s:I, s:I, s:I, s:I}", "site_id", (json_int_t)c->site_id, "item", (json_int_t)id,
                                    "from", (json_int_t)(version - 1), "to", (json_int_t)version);
        if (!payload || jobs_enqueue(c->store, "diff", payload, 0, NULL) != STORE_OK)
            log_event_str(LOG_WARN, "diff precompute not queued", "error", store_errmsg(c->store));
        json_decref(payload);
    }
}

/* ---- jobs ------------------------------------------------------------------------------- */

static int64_t payload_int(const json_t *payload, const char *key)
{
    json_t *v = json_object_get(payload, key);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

static void log_too_large(int64_t id, int64_t from, int64_t to, size_t source_bytes)
{
    log_line line;
    log_begin(&line, LOG_INFO, "diff too large to precompute");
    log_int(&line, "item", id);
    log_int(&line, "from", from);
    log_int(&line, "to", to);
    log_int(&line, "source_bytes", (int64_t)source_bytes);
    log_int(&line, "max_render_bytes", api_config()->history_max_render_bytes);
    log_end(&line);
}

/* "diff" {"site_id","item","from","to"}: renders the JSON diff into the
 * history cache, so the editor's next look at it is a hit. An item deleted
 * since is nothing to do, and so is a diff over history.max_render_bytes
 * (rendering stops at the bound; the request for it is answered 422): the
 * job ends, it is not retried. */
static int diff_job(store_t *st, const json_t *payload, char *err, size_t err_size)
{
    int64_t site_id = payload_int(payload, "site_id"), id = payload_int(payload, "item");
    int64_t from = payload_int(payload, "from"), to = payload_int(payload, "to");
    store_item_facts item = {0};
    if (site_id <= 0 || id <= 0 || from <= 0 || to <= 0) {
        snprintf(err, err_size, "a diff job needs positive site_id, item, from and to");
        return -1;
    }
    int rc = store_item_exists(st, site_id, id, &item);
    char key[160];
    diff_key(key, sizeof key, site_id, id, item.created_at, from, to, FORMAT_JSON);
    cache_entry *e = rc == STORE_OK ? doc_lookup(key) : NULL;
    if (rc == STORE_NOT_FOUND || e) {
        cache_entry_release(&e);
        return 0;
    }
    if (rc != STORE_OK) {
        snprintf(err, err_size, "%s", store_errmsg(st));
        return -1;
    }
    history_render hr;
    size_t source_bytes = 0;
    history_render_begin(&hr);
    rc = diff_build(st, site_id, id, from, to, FORMAT_JSON, &hr, &source_bytes);
    history_doc *d = NULL;
    render_outcome outcome = render_finish(&hr, format_type(FORMAT_JSON), &d);
    if (rc == STORE_OK && outcome == RENDERED)
        doc_store(key, site_id, id, d);
    else
        free(d);
    if (rc == STORE_NOT_FOUND)
        return 0;
    if (rc != STORE_OK || outcome == RENDER_NO_MEMORY) {
        snprintf(err, err_size, "%s", rc != STORE_OK ? store_errmsg(st) : "out of memory");
        return -1;
    }
    if (outcome == RENDER_TOO_LARGE) /* done: the request for it is refused as well */
        log_too_large(id, from, to, source_bytes);
    return 0;
}

/* "retention": the [history] policy over every site. */
static int retention_job(store_t *st, const json_t *payload, char *err, size_t err_size)
{
    (void)payload;
    const strata_config *cfg = api_config();
    store_retention policy = {.now_ms = store_now_ms(),
                              .keep_latest = cfg->history_keep_latest,
                              .draft_max_age_ms = cfg->history_draft_max_age_s * 1000,
                              .autosave_max_age_ms = cfg->history_autosave_max_age_s * 1000,
                              .preview_grace_ms = 24 * 3600 * 1000};
    store_retention_result result;
    int rc = store_history_retention(st, &policy, &result);
    if (result.versions_removed > 0)
        history_forget_all(); /* removed versions must not answer from the cache */
    if (rc != STORE_OK) {
        snprintf(err, err_size, "%s", store_errmsg(st));
        return -1;
    }
    log_line line;
    log_begin(&line, LOG_INFO, "history retention");
    log_int(&line, "versions_removed", result.versions_removed);
    log_int(&line, "autosaves_removed", result.autosaves_removed);
    log_int(&line, "previews_removed", result.previews_removed);
    log_end(&line);
    return 0;
}

/* "compress": versions written before schema 2 (plain JSON) rewritten
 * as skip-deltas; queued once at every start, finds nothing afterwards. */
static int compress_job(store_t *st, const json_t *payload, char *err, size_t err_size)
{
    (void)payload;
    int64_t converted = 0;
    int rc = store_versions_compress_all(st, &converted);
    if (converted > 0) {
        log_line line;
        log_begin(&line, LOG_INFO, "versions compressed");
        log_int(&line, "versions", converted);
        log_end(&line);
    }
    if (rc != STORE_OK) {
        snprintf(err, err_size, "%s", store_errmsg(st));
        return -1;
    }
    return 0;
}

void history_jobs_register(void)
{
    jobs_register("diff", diff_job);
    jobs_register("retention", retention_job);
    jobs_register("compress", compress_job);
}
