/*
 * objects.c — item and list bodies from the object cache (cache/objects.h)
 * and the rows' JSON text (store/item_text.h), for the public reads and
 * editors' reads alike.
 *
 * An item read: the row's stamp and views (one indexed statement), then
 * the text under that stamp from the object cache; on a miss, the row
 * itself (a second statement), rendered once, stored under the stamp the
 * row itself carries, and sent. A list page: the page's stamps (the list
 * statement, without the tags subquery and category join), then each text
 * from the cache, then the missing rows in one IN statement. The views
 * count is never cached: it comes with every stamp and is written into
 * the text as it is sent.
 *
 * Why this cannot serve a stale row: an entry is the text of one version
 * of a row and never changes; every change of what a row shows changes
 * its stamp (item_text.h), and the stamp is read from the database on
 * every read, from the same database the read would have used without the
 * cache (positions.c picks it). A row read after its stamp (the miss) is
 * stored under its own stamp, so a newer row is never filed under an older
 * key, nor an older one (a lagging replica's) under a newer. Entries are
 * also dropped by their tags with the responses, and fenced by the epoch
 * read before the stamp, so an id that SQLite reuses after a delete finds
 * nothing of the deleted item.
 *
 * With cache.objects off, the same texts are rendered straight from one
 * statement (store_item_text, store_item_list_texts): no jansson either way.
 *
 * Editors' drafts (GET …/draft) are cached too, by their head
 * (store_draft_head: the version and the item's status): a hit skips
 * decoding the version and building its JSON. Their text is still built
 * with jansson on a miss (draft_json, shared with the writes' answers).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/objects.h"
#include "content/api.h"
#include "core/growbuf.h"
#include "core/log.h"
#include "store/item_text.h"

void api_objects_init(const strata_config *cfg)
{
    if (!object_cache_configure(cfg->cache_objects, (size_t)cfg->cache_objects_bytes))
        log_event(LOG_WARN, "object cache not created: out of memory; reads go to the database");
}

/* ---- the entries --------------------------------------------------------- */

/* A row's text with its views count cut out (store_row_text). */
typedef struct object_row {
    size_t len, views_at;
    char text[];
} object_row;

static void object_row_free(void *value)
{
    free(value);
}

/* The entry for row, stored under its own stamp, tagged as its responses. */
static void object_row_put(const api_ctx *c, const store_row_text *row, uint64_t epoch)
{
    object_row *value = malloc(sizeof *value + row->len);
    if (value == NULL)
        return;
    value->len = row->len;
    value->views_at = row->views_at;
    memcpy(value->text, row->text, row->len);
    char item_tag[160], all_tag[160];
    snprintf(item_tag, sizeof item_tag, "%s:item:%lld", c->site, (long long)row->stamp.id);
    snprintf(all_tag, sizeof all_tag, "%s:all", c->site);
    const char *const tags[] = {item_tag, all_tag};
    object_cache_put(&row->stamp, sizeof row->stamp, value, sizeof *value + row->len, object_row_free, tags, 2, epoch);
}

/* ---- bodies -------------------------------------------------------------- */

/* text with views written in at views_at. */
static void body_put_row(growbuf *b, const char *text, size_t len, size_t views_at, int64_t views)
{
    if (views_at == STORE_TEXT_NO_VIEWS || views_at > len) {
        growbuf_put(b, text, len);
        return;
    }
    growbuf_put(b, text, views_at);
    growbuf_put_int(b, views);
    growbuf_put(b, text + views_at, len - views_at);
}

static void body_hand_over(api_ctx *c, growbuf *b)
{
    if (b->failed) {
        growbuf_free(b);
        http_problem(c->res, c->req, 500, "internal", "the response could not be serialised");
        return;
    }
    http_response_body(c->res, 200, "application/json", b->data, b->len);
    *b = (growbuf){0}; /* handed over */
}

/* ---- an item ------------------------------------------------------------- */

typedef struct item_fill {
    api_ctx *c;
    uint64_t epoch;
    growbuf body;
    int64_t id; /* the row's */
} item_fill;

static bool item_fill_row(void *arg, const store_row_text *row)
{
    item_fill *f = arg;
    f->id = row->stamp.id;
    body_put_row(&f->body, row->text, row->len, row->views_at, row->views);
    object_row_put(f->c, row, f->epoch);
    return !f->body.failed;
}

static bool cached_item(const store_stamp *stamp, int64_t views, growbuf *body)
{
    cache_entry *e = object_cache_get(stamp, sizeof *stamp);
    if (e == NULL)
        return false;
    const object_row *row = cache_entry_value(e);
    body_put_row(body, row->text, row->len, row->views_at, views);
    cache_entry_release(&e);
    return true;
}

int api_item_read(api_ctx *c, const store_item_key *key, bool published_only)
{
    item_fill f = {.c = c, .epoch = object_cache_epoch()};
    int rc = STORE_OK;
    if (object_cache_enabled()) {
        store_stamp stamp;
        int64_t views = 0;
        rc = store_item_stamp(c->store, c->site_id, c->site, key, published_only, &stamp, &views);
        if (rc != STORE_OK)
            return rc;
        stamp.kind = STORE_STAMP_ITEM;
        if (cached_item(&stamp, views, &f.body)) {
            api_tag_item(c->res, c->site, stamp.id);
            body_hand_over(c, &f.body);
            return STORE_OK;
        }
    }
    rc = store_item_text(c->store, c->site_id, c->site, key, published_only, item_fill_row, &f);
    if (rc != STORE_OK) {
        growbuf_free(&f.body);
        return rc;
    }
    api_tag_item(c->res, c->site, f.id);
    body_hand_over(c, &f.body);
    return STORE_OK;
}

/* ---- a draft (editors) ---------------------------------------------------- */

/* The draft's text by its head: cached whole (no views in a draft). */
static void draft_put(const api_ctx *c, const store_stamp *stamp, const char *text, size_t len, uint64_t epoch)
{
    store_row_text row = {.stamp = *stamp, .text = text, .len = len, .views_at = STORE_TEXT_NO_VIEWS};
    object_row_put(c, &row, epoch);
}

int api_draft_read(api_ctx *c, int64_t id, int64_t *version)
{
    uint64_t epoch = object_cache_epoch();
    store_draft_head head;
    int rc = store_item_draft_head(c->store, c->site_id, c->site, id, &head);
    if (rc != STORE_OK)
        return rc;
    *version = head.stamp.draft_version;
    growbuf body = {0};
    cache_entry *e = object_cache_get(&head.stamp, sizeof head.stamp);
    if (e != NULL) {
        const object_row *row = cache_entry_value(e);
        growbuf_put(&body, row->text, row->len);
        cache_entry_release(&e);
        body_hand_over(c, &body);
        return STORE_OK;
    }
    json_t *draft = NULL;
    rc = store_item_draft_json(c->store, c->site, &head, &draft);
    if (rc != STORE_OK)
        return rc;
    char *text = json_dumps(draft, JSON_COMPACT);
    json_decref(draft);
    if (text != NULL) {
        size_t len = strlen(text);
        draft_put(c, &head.stamp, text, len, epoch);
        growbuf_put(&body, text, len);
        free(text);
    } else {
        body.failed = true;
    }
    body_hand_over(c, &body);
    return STORE_OK;
}

/* ---- a list page --------------------------------------------------------- */

enum { PAGE_MAX = 100 };

/* The page's rows by position: from the cache, or read (texts[i]). */
typedef struct page_fill {
    api_ctx *c;
    uint64_t epoch;
    size_t n;
    store_stamp stamps[PAGE_MAX];
    int64_t views[PAGE_MAX];
    cache_entry *entries[PAGE_MAX];
    object_row *read[PAGE_MAX]; /* copies of the rows read, kept until sent */
    int64_t read_views[PAGE_MAX];
} page_fill;

static bool page_fill_row(void *arg, const store_row_text *row)
{
    page_fill *p = arg;
    size_t at = 0;
    while (at < p->n && (p->stamps[at].id != row->stamp.id || p->entries[at] != NULL || p->read[at] != NULL))
        at++;
    if (at == p->n)
        return true; /* not asked for (cannot happen: ids are the page's) */
    object_row *copy = malloc(sizeof *copy + row->len);
    if (copy == NULL)
        return false;
    copy->len = row->len;
    copy->views_at = row->views_at;
    memcpy(copy->text, row->text, row->len);
    p->read[at] = copy;
    p->read_views[at] = row->views;
    object_row_put(p->c, row, p->epoch);
    return true;
}

/* The page's stamps, their cached texts, one read for the rest. */
static int page_from_objects(api_ctx *c, const store_list_query *q, page_fill *p, store_keyset *next)
{
    int rc = store_list_stamps(c->store, q, p->stamps, p->views, &p->n, next);
    if (rc != STORE_OK)
        return rc;
    int64_t missing[PAGE_MAX];
    size_t m = 0;
    for (size_t i = 0; i < p->n; i++) {
        p->entries[i] = object_cache_get(&p->stamps[i], sizeof p->stamps[i]);
        if (p->entries[i] == NULL)
            missing[m++] = p->stamps[i].id;
    }
    /* A public list shows published rows only: one unpublished between the
     * two statements is left out rather than shown. */
    return store_item_texts(c->store, c->site_id, c->site, missing, m, false, q->status == FILTER_PUBLISHED,
                            page_fill_row, p);
}

static void page_fill_free(page_fill *p)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->entries[i] != NULL)
            cache_entry_release(&p->entries[i]);
        free(p->read[i]);
        p->read[i] = NULL;
    }
}

static void page_write(const page_fill *p, growbuf *body, size_t *count)
{
    for (size_t i = 0; i < p->n; i++) {
        const object_row *row = p->entries[i] ? cache_entry_value(p->entries[i]) : p->read[i];
        if (row == NULL)
            continue; /* gone or unpublished since the stamps were read */
        if (*count > 0)
            growbuf_put(body, ",", 1);
        body_put_row(body, row->text, row->len, row->views_at, p->entries[i] ? p->views[i] : p->read_views[i]);
        (*count)++;
    }
}

typedef struct list_fill {
    growbuf *body;
    size_t count;
} list_fill;

static bool list_fill_row(void *arg, const store_row_text *row)
{
    list_fill *f = arg;
    if (f->count++ > 0)
        growbuf_put(f->body, ",", 1);
    body_put_row(f->body, row->text, row->len, row->views_at, row->views);
    return !f->body->failed;
}

/* The cursor as a JSON string: its alphabet needs no escape (cursor.c). */
static void body_put_cursor(growbuf *body, const store_list_query *q, const store_keyset *next)
{
    if (!next->present) {
        growbuf_put(body, "null", 4);
        return;
    }
    char cursor[CURSOR_TEXT_MAX];
    api_cursor_encode(q, next, cursor);
    size_t len = strlen(cursor);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)cursor[i] < 0x20 || cursor[i] == '"' || cursor[i] == '\\' ||
            (unsigned char)cursor[i] >= 0x7f)
            body->failed = true; /* not a cursor of ours: refuse rather than send bad JSON */
    growbuf_put(body, "\"", 1);
    growbuf_put(body, cursor, len);
    growbuf_put(body, "\"", 1);
}

int api_list_read(api_ctx *c, const store_list_query *q, size_t *count)
{
    growbuf body = {0};
    store_keyset next = {0};
    *count = 0;
    growbuf_put(&body, "{\"items\":[", 10);
    int rc;
    if (object_cache_enabled()) {
        page_fill p = {.c = c, .epoch = object_cache_epoch()};
        rc = page_from_objects(c, q, &p, &next);
        if (rc == STORE_OK)
            page_write(&p, &body, count);
        page_fill_free(&p);
    } else {
        list_fill f = {.body = &body};
        rc = store_item_list_texts(c->store, q, list_fill_row, &f, &next);
        *count = f.count;
    }
    if (rc != STORE_OK) {
        growbuf_free(&body);
        return rc;
    }
    growbuf_put(&body, "],\"next_cursor\":", 16);
    body_put_cursor(&body, q, &next);
    growbuf_put(&body, "}", 1);
    body_hand_over(c, &body);
    return STORE_OK;
}
