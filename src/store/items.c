/*
 * items.c — items: create, read, save a draft, publish, unpublish, delete;
 * their versions; and the item, summary and draft JSON.
 *
 * An item has two faces. Its versions are immutable snapshots of the
 * editable state, {"slug","title","excerpt","body","fields","category",
 * "tags"}, numbered 1..draft_version; the latest one is "the draft". Its row
 * in items holds the public content: the published version's once it has
 * been published, the latest draft's until then (so editors' lists show
 * something); item_tags mirrors that content's tags. Hence a save appends a
 * version and rewrites the content columns only while the item was never
 * published, and a publish copies a version into them. The slug is the one
 * exception: it is the item's address, so a save moves it at once.
 *
 * How a snapshot is stored (zstd skip-deltas, with its size and SHA-256)
 * is versions.c's business; here a version is appended and read whole.
 *
 * Every write is one transaction (db_transact); any failure rolls all of it
 * back, and a body run again after a retry starts from nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/item_text.h"
#include "store/store_history.h"
#include "store/store_internal.h"
#include "store/store_webhooks.h"

/* ---- edits (snapshot.c builds and merges the snapshots) ------------------ */

int edit_check(store_t *st, const store_edit_t *edit)
{
    if (edit->fields && !json_is_object(edit->fields))
        return db_fail(st, STORE_INVALID, "fields must be a JSON object");
    if (edit->has_tags && edit->tag_count && !edit->tags)
        return db_fail(st, STORE_INVALID, "tags are missing");
    return STORE_OK;
}

/* json_string refuses invalid UTF-8; memory running out is the only other
 * way building a snapshot fails. */
static int snapshot_build_failed(store_t *st)
{
    return db_fail(st, STORE_INVALID, "a text of the edit is not valid UTF-8");
}

/* ---- versions ----------------------------------------------------------- */

int publication_record(store_t *st, int64_t item_id, int64_t version, int64_t at, const char *author)
{
    db_query q;
    int status = db_query_start(st,
                                "INSERT INTO publications(item_id, version, published_at, author) "
                                "VALUES (:item, :version, :at, :author)",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":item", item_id);
    db_bind_int(&q, ":version", version);
    db_bind_int(&q, ":at", at);
    db_bind_text(&q, ":author", author);
    return db_query_run(&q, "recording the publication");
}

/* ---- the item row ------------------------------------------------------- */

/* What writes need to know about an item before changing it. */
typedef struct item_state {
    int64_t id;
    char type[64];
    char status[16];
    int64_t draft_version;
    int64_t published_version; /* 0: never published */
    int64_t created_at;        /* with id, tells this item from one made later with its id */
} item_state;

static int item_state_load(store_t *st, int64_t site_id, const char *site_name, int64_t id, item_state *item)
{
    db_query q;
    int status = db_query_start(st,
                                "SELECT type, status, draft_version, COALESCE(published_version, 0), created_at "
                                "FROM items WHERE id = :id AND site_id = :site",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":id", id);
    db_bind_int(&q, ":site", site_id);
    bool found = db_next_row(&q);
    if (found) {
        item->id = id;
        snprintf(item->type, sizeof item->type, "%s", db_column_text(&q, 0));
        snprintf(item->status, sizeof item->status, "%s", db_column_text(&q, 1));
        item->draft_version = db_column_int(&q, 2);
        item->published_version = db_column_int(&q, 3);
        item->created_at = db_column_int(&q, 4);
    }
    status = db_query_end(&q, "reading the item");
    if (status == STORE_OK && !found)
        return db_fail(st, STORE_NOT_FOUND, "no item %lld in site '%s'", (long long)id, site_name);
    return status;
}

static int snapshot_category_id(store_t *st, int64_t site_id, const snapshot_view *v, int64_t *category_id)
{
    *category_id = 0;
    return v->category ? category_id_lookup(st, site_id, v->category, category_id) : STORE_OK;
}

int item_tags_replace(store_t *st, int64_t item_id, const json_t *tags)
{
    db_query q;
    int status = db_query_start(st, "DELETE FROM item_tags WHERE item_id = :item", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":item", item_id);
    status = db_query_run(&q, "replacing the tags");
    for (size_t i = 0; status == STORE_OK && i < json_array_size(tags); i++) {
        status = db_query_start(st,
                                "INSERT INTO item_tags(site_id, item_id, tag, status, published_at, updated_at, title) "
                                "SELECT site_id, id, CAST(:tag AS TEXT), status, published_at, updated_at, title "
                                "FROM items "
                                "WHERE id = :item",
                                &q);
        if (status != STORE_OK)
            break;
        db_bind_text(&q, ":tag", json_string_value(json_array_get(tags, i)));
        db_bind_int(&q, ":item", item_id);
        status = db_query_run(&q, "saving the tags");
    }
    return status;
}

/* After the item's status or published_at changed. */
static int item_tags_status_sync(store_t *st, int64_t item_id)
{
    db_query q;
    int status = db_query_start(st,
                                "UPDATE item_tags SET (status, published_at) = "
                                "(SELECT status, published_at FROM items WHERE id = :item) "
                                "WHERE item_id = :item",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":item", item_id);
    return db_query_run(&q, "updating the tags");
}

/* Makes the snapshot the item's public content: the content columns and
 * item_tags (which copies the status the item has at this point). */
static int item_content_write(store_t *st, int64_t item_id, const snapshot_view *v, int64_t category_id)
{
    char *fields = json_dumps(v->fields, JSON_COMPACT);
    if (!fields)
        return db_fail(st, STORE_ERROR, "out of memory encoding fields");
    db_query q;
    int status = db_query_start(st,
                                "UPDATE items SET title = :title, excerpt = :excerpt, body = :body, "
                                "fields = :fields, category_id = :category WHERE id = :id",
                                &q);
    if (status == STORE_OK) {
        db_bind_text(&q, ":title", v->title);
        db_bind_text(&q, ":excerpt", v->excerpt);
        db_bind_text(&q, ":body", v->body);
        db_bind_text(&q, ":fields", fields);
        db_bind_int_or_null(&q, ":category", category_id, category_id != 0);
        db_bind_int(&q, ":id", item_id);
        status = db_query_run(&q, "writing the item's content");
    }
    free(fields);
    return status == STORE_OK ? item_tags_replace(st, item_id, v->tags) : status;
}

/* Queues the webhook deliveries of event about item as it now is
 * (store_webhooks.h): inside the write's transaction. */
static int item_event(store_t *st, int64_t site_id, unsigned event, const item_state *item, const char *slug,
                      int64_t version)
{
    webhook_item w = {.id = item->id,
                      .type = item->type,
                      .slug = slug,
                      .status = item->status,
                      .version = version,
                      .draft_version = item->draft_version,
                      .published_version = item->published_version};
    return webhook_event_queue(st, site_id, event, &w);
}

static int slug_taken(store_t *st, const char *type, const char *slug, const char *site_name)
{
    return db_fail(st, STORE_CONFLICT, "an item of type '%s' with slug '%s' already exists in site '%s'", type, slug,
                   site_name);
}

/* ---- JSON --------------------------------------------------------------- */

static json_t *column_text_json(const db_query *q, int column)
{
    const char *text = db_column_text(q, column);
    return text ? json_string(text) : json_null();
}

static json_t *column_int_json(const db_query *q, int column)
{
    if (db_column_is_null(q, column))
        return json_null();
    return json_integer(db_column_int(q, column));
}

static json_t *column_time_json(const db_query *q, int column)
{
    if (db_column_is_null(q, column))
        return json_null();
    return time_json(db_column_int(q, column));
}

static int tag_order(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The tags column ("b,a,c", in no set order; a tag never holds a ','), as
 * a JSON array in byte order, as both engines' indexes keep them. */
static json_t *column_tags_json(const db_query *q)
{
    json_t *tags = json_array();
    const char *text = db_column_text(q, ITEM_COL_TAGS);
    if (tags == NULL || text == NULL || text[0] == '\0')
        return tags;
    char *copy = strdup(text);
    const char *each[ITEM_TAGS_MAX];
    size_t n = 0;
    for (char *save = NULL, *t = copy ? strtok_r(copy, ",", &save) : NULL; t && n < ITEM_TAGS_MAX;
         t = strtok_r(NULL, ",", &save))
        each[n++] = t;
    qsort(each, n, sizeof each[0], tag_order);
    bool ok = copy != NULL;
    for (size_t i = 0; i < n && ok; i++)
        ok = json_array_append_new(tags, json_string(each[i])) == 0;
    free(copy);
    if (!ok) {
        json_decref(tags);
        return NULL;
    }
    return tags;
}

static json_t *column_fields_json(const db_query *q)
{
    const char *text = db_column_text(q, ITEM_COL_FIELDS);
    json_error_t error;
    json_t *fields = text ? json_loads(text, 0, &error) : NULL;
    if (!json_is_object(fields)) {
        json_decref(fields);
        return NULL;
    }
    return fields;
}

json_t *item_from_row(const db_query *q, const char *site_name, bool with_body)
{
    json_t *item = json_object();
    bool ok = item != NULL;
    ok = ok && json_put(item, "id", json_integer(db_column_int(q, ITEM_COL_ID)));
    ok = ok && json_put(item, "site", json_string(site_name));
    ok = ok && json_put(item, "type", column_text_json(q, ITEM_COL_TYPE));
    ok = ok && json_put(item, "slug", column_text_json(q, ITEM_COL_SLUG));
    ok = ok && json_put(item, "status", column_text_json(q, ITEM_COL_STATUS));
    ok = ok && json_put(item, "title", column_text_json(q, ITEM_COL_TITLE));
    ok = ok && json_put(item, "excerpt", column_text_json(q, ITEM_COL_EXCERPT));
    if (with_body)
        ok = ok && json_put(item, "body", column_text_json(q, ITEM_COL_EXTRA));
    ok = ok && json_put(item, "fields", column_fields_json(q));
    ok = ok && json_put(item, "category", column_text_json(q, ITEM_COL_CATEGORY));
    ok = ok && json_put(item, "tags", column_tags_json(q));
    ok = ok && json_put(item, "author", column_text_json(q, ITEM_COL_AUTHOR));
    ok = ok && json_put(item, "created_at", column_time_json(q, ITEM_COL_CREATED_AT));
    ok = ok && json_put(item, "updated_at", column_time_json(q, ITEM_COL_UPDATED_AT));
    ok = ok && json_put(item, "published_at", column_time_json(q, ITEM_COL_PUBLISHED_AT));
    ok = ok && json_put(item, "views", column_int_json(q, ITEM_COL_VIEWS));
    ok = ok && json_put(item, "draft_version", column_int_json(q, ITEM_COL_DRAFT_VERSION));
    ok = ok && json_put(item, "published_version", column_int_json(q, ITEM_COL_PUBLISHED_VERSION));
    if (!ok) {
        json_decref(item);
        return NULL;
    }
    return item;
}

static json_t *draft_json(const char *site_name, const item_state *item, int64_t version, const json_t *snapshot,
                          const char *author, int64_t saved_at)
{
    json_t *draft = json_object();
    bool ok = draft != NULL;
    ok = ok && json_put(draft, "id", json_integer(item->id));
    ok = ok && json_put(draft, "site", json_string(site_name));
    ok = ok && json_put(draft, "type", json_string(item->type));
    ok = ok && json_put(draft, "slug", json_incref(json_object_get(snapshot, "slug")));
    ok = ok && json_put(draft, "status", json_string(item->status));
    ok = ok && json_put(draft, "version", json_integer(version));
    /* The snapshot's members are shared rather than copied: the snapshot
     * is dropped right after, leaving the draft their only owner. */
    static const char *const shared[] = {"title", "excerpt", "body", "fields", "category", "tags"};
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++)
        ok = ok && json_put(draft, shared[i], json_incref(json_object_get(snapshot, shared[i])));
    ok = ok && json_put(draft, "author", json_string(author));
    ok = ok && json_put(draft, "saved_at", time_json(saved_at));
    ok = ok && json_put(draft, "published_version",
                        item->published_version ? json_integer(item->published_version) : json_null());
    if (!ok) {
        json_decref(draft);
        return NULL;
    }
    return draft;
}

static int draft_json_failed(store_t *st)
{
    return db_fail(st, STORE_ERROR, "out of memory building the draft");
}

/* ---- reading items ------------------------------------------------------ */

static const char item_by_id_sql[] =
    "SELECT " ITEM_COLUMNS ", i.body FROM " ITEM_FROM
    " WHERE i.id = :id AND i.site_id = :site AND (:any_status = 1 OR i.status = 'published')";

/* Reads the (at most one) row of q as a full item; *item stays NULL when
 * there is none. */
static int item_read(store_t *st, db_query *q, const char *site_name, json_t **item)
{
    *item = NULL;
    json_t *row = NULL;
    bool found = db_next_row(q);
    if (found)
        row = item_from_row(q, site_name, true);
    int status = db_query_end(q, "reading the item");
    if (status == STORE_OK && found && !row)
        status = db_fail(st, STORE_ERROR, "the item could not be read (damaged fields?)");
    if (status != STORE_OK) {
        json_decref(row);
        return status;
    }
    *item = row;
    return STORE_OK;
}

static int item_fetch(store_t *st, int64_t site_id, const char *site_name, int64_t id, bool published_only,
                      json_t **item)
{
    *item = NULL;
    db_query q;
    int status = db_query_start(st, item_by_id_sql, &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":id", id);
    db_bind_int(&q, ":site", site_id);
    db_bind_int(&q, ":any_status", !published_only);
    status = item_read(st, &q, site_name, item);
    if (status == STORE_OK && !*item)
        return db_fail(st, STORE_NOT_FOUND, "no %sitem %lld in site '%s'", published_only ? "published " : "",
                       (long long)id, site_name);
    return status;
}

int store_item_get(store_t *st, int64_t site_id, const char *site_name, int64_t id, bool published_only, json_t **item)
{
    db_clear_error(st);
    return item_fetch(st, site_id, site_name, id, published_only, item);
}

/* The item row and the latest version's author and time (store_draft_head:
 * what names the draft). */
int store_item_draft_head(store_t *st, int64_t site_id, const char *site_name, int64_t id, store_draft_head *head)
{
    db_clear_error(st);
    memset(head, 0, sizeof *head);
    db_query q;
    int status =
        db_query_start(st,
                       "SELECT i.type, i.status, i.draft_version, COALESCE(i.published_version, 0), v.author, "
                       "v.created_at, i.created_at FROM items i JOIN versions v "
                       "ON v.item_id = i.id AND v.number = i.draft_version WHERE i.id = :id AND i.site_id = :site",
                       &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":id", id);
    db_bind_int(&q, ":site", site_id);
    bool found = db_next_row(&q);
    if (found) {
        snprintf(head->type, sizeof head->type, "%s", db_column_text(&q, 0));
        snprintf(head->status, sizeof head->status, "%s", db_column_text(&q, 1));
        snprintf(head->author, sizeof head->author, "%s", db_column_text(&q, 4));
        head->saved_at = db_column_int(&q, 5);
        store_stamp *stamp = &head->stamp;
        stamp->site_id = site_id;
        stamp->id = id;
        stamp->created_at = db_column_int(&q, 6);
        stamp->updated_at = STORE_STAMP_NULL; /* the version's saved_at stands for it: a version never changes */
        stamp->published_at = STORE_STAMP_NULL;
        stamp->draft_version = db_column_int(&q, 2);
        stamp->published_version = db_column_int(&q, 3);
        stamp->status = head->status[0];
        stamp->kind = STORE_STAMP_DRAFT;
    }
    status = db_query_end(&q, "reading the draft");
    if (status == STORE_OK && !found)
        return db_fail(st, STORE_NOT_FOUND, "no item %lld in site '%s'", (long long)id, site_name);
    return status;
}

/* The snapshot is read after the head's query has ended (versions.c uses
 * statements too). */
int store_item_draft_json(store_t *st, const char *site_name, const store_draft_head *head, json_t **draft)
{
    db_clear_error(st);
    *draft = NULL;
    item_state item = {.id = head->stamp.id,
                       .draft_version = head->stamp.draft_version,
                       .published_version = head->stamp.published_version};
    snprintf(item.type, sizeof item.type, "%s", head->type);
    snprintf(item.status, sizeof item.status, "%s", head->status);
    json_t *snapshot = NULL;
    int status = version_snapshot(st, item.id, item.draft_version, &snapshot);
    if (status == STORE_OK &&
        !(*draft = draft_json(site_name, &item, item.draft_version, snapshot, head->author, head->saved_at)))
        status = draft_json_failed(st);
    json_decref(snapshot);
    return status;
}

int store_item_get_draft(store_t *st, int64_t site_id, const char *site_name, int64_t id, json_t **draft,
                         int64_t *version)
{
    *draft = NULL;
    store_draft_head head;
    int status = store_item_draft_head(st, site_id, site_name, id, &head);
    if (status == STORE_OK)
        status = store_item_draft_json(st, site_name, &head, draft);
    if (status == STORE_OK && version)
        *version = head.stamp.draft_version;
    return status;
}

/* ---- write transactions ------------------------------------------------- */

/* What an item's write transaction takes and gives back. The body sets
 * result afresh on every run (db_transact may run it again); the caller
 * gets it only once the transaction committed. */
typedef struct item_tx {
    int64_t site_id;
    const char *site_name;
    int64_t id;
    int64_t version; /* the base of a save (0: whatever is current) or restore; the version to publish or restore */
    int64_t base_version; /* restore: the draft it was based on (0: any) */
    bool archive;         /* unpublish */
    const store_edit_t *edit;
    const char *author;
    const json_t *snapshot; /* create */
    json_t *result;
    int64_t saved_version; /* save: the version it made */
    const char *diff_job;  /* save: the job kind queued for the new version's diff (NULL: none) */
    /* save: the merged snapshot and its version encoded before the
     * transaction, for the draft at version ahead_of (0: none) */
    int64_t ahead_of, ahead_created_at;
    json_t *ahead_snapshot;
    version_prepared ahead;
} item_tx;

/* The body's place for its result, emptied of a previous run's. */
static json_t **item_tx_result(item_tx *tx)
{
    json_decref(tx->result);
    tx->result = NULL;
    return &tx->result;
}

/* Runs body as one transaction (a write of item tx->id, or of a new item
 * when 0); *out gets its result only if it committed. */
static int item_transact(store_t *st, int (*body)(store_t *st, void *arg), item_tx *tx, const char *doing, json_t **out)
{
    int status = tx->id != 0 ? db_transact_item(st, tx->id, body, tx, doing) : db_transact(st, body, tx, doing);
    if (status != STORE_OK) {
        json_decref(tx->result);
        return status;
    }
    *out = tx->result;
    return STORE_OK;
}

/* ---- create ------------------------------------------------------------- */

static int item_insert(store_t *st, int64_t site_id, const char *site_name, const char *type, const char *author,
                       int64_t now, const snapshot_view *v, int64_t *id)
{
    int64_t category_id = 0;
    int status = snapshot_category_id(st, site_id, v, &category_id);
    if (status != STORE_OK)
        return status;
    char *fields = json_dumps(v->fields, JSON_COMPACT);
    if (!fields)
        return db_fail(st, STORE_ERROR, "out of memory encoding fields");
    db_query q;
    status = db_query_start(st,
                            "INSERT INTO items(site_id, type, slug, status, title, excerpt, fields, "
                            "category_id, author, created_at, updated_at, draft_version, body) "
                            "VALUES (:site, :type, :slug, 'draft', :title, :excerpt, :fields, "
                            ":category, :author, :now, :now, 1, :body) RETURNING id",
                            &q);
    if (status == STORE_OK) {
        db_bind_int(&q, ":site", site_id);
        db_bind_text(&q, ":type", type);
        db_bind_text(&q, ":slug", v->slug);
        db_bind_text(&q, ":title", v->title);
        db_bind_text(&q, ":excerpt", v->excerpt);
        db_bind_text(&q, ":fields", fields);
        db_bind_int_or_null(&q, ":category", category_id, category_id != 0);
        db_bind_text(&q, ":author", author);
        db_bind_int(&q, ":now", now);
        db_bind_text(&q, ":body", v->body);
        *id = db_next_row(&q) ? db_column_int(&q, 0) : 0;
        status = db_query_end(&q, "creating the item");
    }
    free(fields);
    if (status == STORE_CONFLICT)
        return slug_taken(st, type, v->slug, site_name);
    if (q.failure == DB_FOREIGN_KEY)
        return db_fail(st, STORE_NOT_FOUND, "no site '%s'", site_name);
    return status;
}

static int item_create_tx(store_t *st, void *arg)
{
    item_tx *tx = arg;
    int64_t site_id = tx->site_id;
    const char *site_name = tx->site_name, *author = tx->author;
    const store_edit_t *edit = tx->edit;
    const json_t *snapshot = tx->snapshot;
    json_t **draft = item_tx_result(tx);
    snapshot_view v;
    snapshot_view_of(snapshot, &v); /* built just now by snapshot_from_edit */
    int64_t now = store_now_ms();
    item_state item = {.draft_version = 1, .status = "draft"};
    snprintf(item.type, sizeof item.type, "%s", edit->type);
    int status = item_insert(st, site_id, site_name, edit->type, author, now, &v, &item.id);
    if (status == STORE_OK)
        status = item_tags_replace(st, item.id, v.tags);
    if (status == STORE_OK)
        status = version_append(st, item.id, 1, "draft", author, now, snapshot);
    if (status == STORE_OK)
        status = item_event(st, site_id, WEBHOOK_CREATED, &item, v.slug, 1);
    if (status == STORE_OK && !(*draft = draft_json(site_name, &item, 1, snapshot, author, now)))
        status = draft_json_failed(st);
    return status;
}

int store_item_create(store_t *st, int64_t site_id, const char *site_name, const store_edit_t *edit, const char *author,
                      json_t **draft)
{
    db_clear_error(st);
    *draft = NULL;
    if (!edit->type || !edit->slug || !edit->title)
        return db_fail(st, STORE_INVALID, "type, slug and title are required to create an item");
    int status = edit_check(st, edit);
    if (status != STORE_OK)
        return status;
    json_t *snapshot = snapshot_from_edit(edit);
    if (!snapshot)
        return snapshot_build_failed(st);
    item_tx tx = {.site_id = site_id, .site_name = site_name, .edit = edit, .author = author, .snapshot = snapshot};
    status = item_transact(st, item_create_tx, &tx, "creating the item", draft);
    json_decref(snapshot);
    return status;
}

/* ---- save a draft ------------------------------------------------------- */

/* The new latest version: its number, the time, and the (maybe new) slug. */
static int item_draft_advance(store_t *st, const item_state *item, const snapshot_view *v, int64_t now,
                              const char *site_name)
{
    db_query q;
    int status = db_query_start(st,
                                "UPDATE items SET slug = :slug, draft_version = :version, "
                                "updated_at = :now WHERE id = :id",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_text(&q, ":slug", v->slug);
    db_bind_int(&q, ":version", item->draft_version);
    db_bind_int(&q, ":now", now);
    db_bind_int(&q, ":id", item->id);
    status = db_query_run(&q, "saving the draft");
    return status == STORE_CONFLICT ? slug_taken(st, item->type, v->slug, site_name) : status;
}

/* Writes the merged snapshot as version base + 1; ready, if not NULL, is
 * that version encoded ahead (used when still right). */
static int draft_store(store_t *st, int64_t site_id, const char *site_name, item_state *item, const json_t *snapshot,
                       bool category_given, const char *kind, const char *author, const version_prepared *ready,
                       json_t **draft)
{
    snapshot_view v;
    if (!snapshot_view_of(snapshot, &v))
        return snapshot_build_failed(st);
    int64_t category_id = 0, now = store_now_ms();
    bool never_published = item->published_version == 0;
    int status = STORE_OK;
    if (category_given || never_published)
        status = snapshot_category_id(st, site_id, &v, &category_id);
    item->draft_version += 1;
    if (status == STORE_OK)
        status = item_draft_advance(st, item, &v, now, site_name);
    bool usable = false;
    if (status == STORE_OK && ready != NULL)
        status = version_prepared_usable(st, ready, item->id, item->draft_version, &usable);
    if (status == STORE_OK)
        status = usable ? version_insert(st, ready, kind, author, now)
                        : version_append(st, item->id, item->draft_version, kind, author, now, snapshot);
    if (status == STORE_OK && never_published)
        status = item_content_write(st, item->id, &v, category_id);
    if (status == STORE_OK)
        status = item_event(st, site_id, WEBHOOK_SAVED, item, v.slug, item->draft_version);
    if (status == STORE_OK && !(*draft = draft_json(site_name, item, item->draft_version, snapshot, author, now)))
        status = draft_json_failed(st);
    return status;
}

/* Queues job kind for the diff of version to the one before it. */
static int diff_job_queue(store_t *st, const char *kind, int64_t site_id, int64_t id, int64_t version)
{
    char payload[128];
    snprintf(payload, sizeof payload, "{\"site_id\":%lld,\"item\":%lld,\"from\":%lld,\"to\":%lld}", (long long)site_id,
             (long long)id, (long long)(version - 1), (long long)version);
    db_query q;
    int status = db_query_start(st,
                                "INSERT INTO jobs(kind, payload, run_at, created_at) "
                                "VALUES (:kind, :payload, :now, :now)",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_text(&q, ":kind", kind);
    db_bind_text(&q, ":payload", payload);
    db_bind_int(&q, ":now", store_now_ms());
    return db_query_run(&q, "queueing the diff job");
}

static int draft_save_tx(store_t *st, void *arg)
{
    item_tx *tx = arg;
    int64_t site_id = tx->site_id, id = tx->id, base_version = tx->version;
    const char *site_name = tx->site_name, *author = tx->author;
    const store_edit_t *edit = tx->edit;
    json_t **draft = item_tx_result(tx);
    item_state item;
    int status = item_state_load(st, site_id, site_name, id, &item);
    if (status != STORE_OK)
        return status;
    if (base_version == 0) /* If-Match: * — whatever is current, read here, in the transaction */
        base_version = item.draft_version;
    if (base_version != item.draft_version)
        return db_fail(st, STORE_STALE, "draft is at version %lld; this save was based on version %lld",
                       (long long)item.draft_version, (long long)base_version);
    json_t *snapshot = NULL;
    bool ahead = tx->ahead_of != 0 && tx->ahead_of == base_version && tx->ahead_created_at == item.created_at;
    if (ahead)
        snapshot = json_incref(tx->ahead_snapshot);
    else
        status = version_snapshot(st, id, base_version, &snapshot);
    if (status == STORE_OK && !ahead && !snapshot_merge_edit(snapshot, edit))
        status = snapshot_build_failed(st);
    if (status == STORE_OK)
        status = draft_store(st, site_id, site_name, &item, snapshot, edit->has_category, "draft", author,
                             ahead ? &tx->ahead : NULL, draft);
    /* The author's autosave this save supersedes, and the diff job, go in
     * the same commit: a write of their own would wait for a commit of
     * their own. */
    if (status == STORE_OK)
        status = store_autosave_clear(st, id, author, item.draft_version);
    if (status == STORE_OK && tx->diff_job != NULL && item.draft_version > 1)
        status = diff_job_queue(st, tx->diff_job, site_id, id, item.draft_version);
    json_decref(snapshot);
    tx->saved_version = item.draft_version;
    return status;
}

int store_item_save_draft(store_t *st, int64_t site_id, const char *site_name, int64_t id, int64_t base_version,
                          const store_edit_t *edit, const char *author, json_t **draft, int64_t *new_version)
{
    return store_item_save_draft_diffed(st, site_id, site_name, id, base_version, edit, author, NULL, draft,
                                        new_version);
}

/* The save's CPU done before its transaction, on the caller's own
 * connection: the current draft read, the edit merged into it, the result
 * encoded as the next version. The transaction uses it only if the draft
 * is still at the version read (draft_save_tx); any failure here leaves it
 * all to the transaction, which reports its own. */
static void draft_save_ahead(store_t *st, int64_t site_id, const char *site_name, int64_t base_version, item_tx *tx)
{
    item_state item;
    json_t *snapshot = NULL;
    bool ready = item_state_load(st, site_id, site_name, tx->id, &item) == STORE_OK &&
                 (base_version == 0 || base_version == item.draft_version) &&
                 version_snapshot(st, tx->id, item.draft_version, &snapshot) == STORE_OK &&
                 snapshot_merge_edit(snapshot, tx->edit) &&
                 version_prepare(st, tx->id, item.draft_version + 1, snapshot, &tx->ahead) == STORE_OK;
    if (ready) {
        tx->ahead_of = item.draft_version;
        tx->ahead_created_at = item.created_at;
        tx->ahead_snapshot = snapshot;
    } else {
        version_prepared_free(&tx->ahead);
        json_decref(snapshot);
    }
    db_clear_error(st);
}

int store_item_save_draft_diffed(store_t *st, int64_t site_id, const char *site_name, int64_t id, int64_t base_version,
                                 const store_edit_t *edit, const char *author, const char *diff_job, json_t **draft,
                                 int64_t *new_version)
{
    db_clear_error(st);
    *draft = NULL;
    int status = edit_check(st, edit);
    if (status != STORE_OK)
        return status;
    item_tx tx = {.site_id = site_id,
                  .site_name = site_name,
                  .id = id,
                  .version = base_version,
                  .edit = edit,
                  .author = author,
                  .diff_job = diff_job};
    if (st->group != NULL) /* its turn at the one writer is what every save waits for */
        draft_save_ahead(st, site_id, site_name, base_version, &tx);
    status = item_transact(st, draft_save_tx, &tx, "saving the draft", draft);
    version_prepared_free(&tx.ahead);
    json_decref(tx.ahead_snapshot);
    if (status != STORE_OK)
        return status;
    if (new_version)
        *new_version = tx.saved_version;
    return STORE_OK;
}

/* ---- restore ------------------------------------------------------------ */

static int restore_tx(store_t *st, void *arg)
{
    item_tx *tx = arg;
    int64_t site_id = tx->site_id, id = tx->id, number = tx->version, base_version = tx->base_version;
    const char *site_name = tx->site_name, *author = tx->author;
    json_t **draft = item_tx_result(tx);
    item_state item;
    int status = item_state_load(st, site_id, site_name, id, &item);
    if (status != STORE_OK)
        return status;
    if (base_version > 0 && base_version != item.draft_version)
        return db_fail(st, STORE_STALE, "draft is at version %lld; this restore was based on version %lld",
                       (long long)item.draft_version, (long long)base_version);
    json_t *snapshot = NULL;
    status = version_snapshot(st, id, number, &snapshot);
    if (status == STORE_OK)
        status = draft_store(st, site_id, site_name, &item, snapshot, true, "restore", author, NULL, draft);
    json_decref(snapshot);
    return status;
}

int store_version_restore(store_t *st, int64_t site_id, const char *site_name, int64_t id, int64_t number,
                          int64_t base_version, const char *author, json_t **draft, int64_t *new_version)
{
    db_clear_error(st);
    *draft = NULL;
    item_tx tx = {.site_id = site_id,
                  .site_name = site_name,
                  .id = id,
                  .version = number,
                  .base_version = base_version,
                  .author = author};
    int status = item_transact(st, restore_tx, &tx, "restoring the version", draft);
    if (status != STORE_OK)
        return status;
    if (new_version)
        *new_version = json_integer_value(json_object_get(*draft, "version"));
    return STORE_OK;
}

/* ---- publish and unpublish ---------------------------------------------- */

/* published_at is the time the item went public: set when it goes from
 * not published to published, kept when a published item is republished. */
static int item_mark_published(store_t *st, int64_t id, int64_t version, int64_t now)
{
    db_query q;
    int status = db_query_start(st,
                                "UPDATE items SET status = 'published', published_version = :version, "
                                "published_at = CASE WHEN status = 'published' THEN published_at "
                                "ELSE :now END, updated_at = :now WHERE id = :id",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":version", version);
    db_bind_int(&q, ":now", now);
    db_bind_int(&q, ":id", id);
    return db_query_run(&q, "publishing the item");
}

static int publish_tx(store_t *st, void *arg)
{
    item_tx *tx = arg;
    int64_t site_id = tx->site_id, id = tx->id, version = tx->version;
    const char *site_name = tx->site_name, *author = tx->author;
    json_t **item_out = item_tx_result(tx);
    item_state item;
    int status = item_state_load(st, site_id, site_name, id, &item);
    if (status != STORE_OK)
        return status;
    int64_t number = version == 0 ? item.draft_version : version;
    json_t *snapshot = NULL;
    status = version_snapshot(st, id, number, &snapshot);
    snapshot_view v;
    int64_t category_id = 0, now = store_now_ms();
    if (status == STORE_OK && !snapshot_view_of(snapshot, &v))
        status = db_fail(st, STORE_ERROR, "version %lld of item %lld is damaged", (long long)number, (long long)id);
    if (status == STORE_OK)
        status = snapshot_category_id(st, site_id, &v, &category_id);
    if (status == STORE_OK)
        status = item_mark_published(st, id, number, now);
    if (status == STORE_OK)
        status = item_content_write(st, id, &v, category_id);
    if (status == STORE_OK)
        status = publication_record(st, id, number, now, author);
    if (status == STORE_OK) {
        snprintf(item.status, sizeof item.status, "published");
        item.published_version = number;
        status = item_event(st, site_id, WEBHOOK_PUBLISHED, &item, v.slug, number);
    }
    if (status == STORE_OK)
        status = store_schedule_done(st, id, true, now);
    if (status == STORE_OK)
        status = item_fetch(st, site_id, site_name, id, false, item_out);
    json_decref(snapshot);
    return status;
}

int store_item_publish(store_t *st, int64_t site_id, const char *site_name, int64_t id, int64_t version,
                       const char *author, json_t **item)
{
    db_clear_error(st);
    *item = NULL;
    if (version < 0)
        return db_fail(st, STORE_NOT_FOUND, "item %lld has no version %lld", (long long)id, (long long)version);
    item_tx tx = {.site_id = site_id, .site_name = site_name, .id = id, .version = version, .author = author};
    return item_transact(st, publish_tx, &tx, "publishing the item", item);
}

static int unpublish_tx(store_t *st, void *arg)
{
    item_tx *tx = arg;
    int64_t site_id = tx->site_id, id = tx->id;
    const char *site_name = tx->site_name;
    bool archive = tx->archive;
    json_t **item_out = item_tx_result(tx);
    item_state item;
    int status = item_state_load(st, site_id, site_name, id, &item);
    if (status != STORE_OK)
        return status;
    if (strcmp(item.status, "published") != 0)
        return db_fail(st, STORE_STATE, "item %lld is not published (its status is %s)", (long long)id, item.status);
    db_query q;
    status = db_query_start(st, "UPDATE items SET status = :status, updated_at = :now WHERE id = :id", &q);
    if (status != STORE_OK)
        return status;
    db_bind_text(&q, ":status", archive ? "archived" : "draft");
    db_bind_int(&q, ":now", store_now_ms());
    db_bind_int(&q, ":id", id);
    status = db_query_run(&q, "unpublishing the item");
    if (status == STORE_OK)
        status = item_tags_status_sync(st, id);
    if (status == STORE_OK)
        status = store_schedule_done(st, id, false, store_now_ms());
    if (status == STORE_OK)
        status = item_fetch(st, site_id, site_name, id, false, item_out);
    if (status == STORE_OK) {
        snprintf(item.status, sizeof item.status, "%s", archive ? "archived" : "draft");
        status = item_event(st, site_id, WEBHOOK_UNPUBLISHED, &item,
                            json_string_value(json_object_get(*item_out, "slug")), item.published_version);
    }
    return status;
}

int store_item_unpublish(store_t *st, int64_t site_id, const char *site_name, int64_t id, bool archive, json_t **item)
{
    db_clear_error(st);
    *item = NULL;
    item_tx tx = {.site_id = site_id, .site_name = site_name, .id = id, .archive = archive};
    return item_transact(st, unpublish_tx, &tx, "unpublishing the item", item);
}

/* ---- delete ------------------------------------------------------------- */

static int item_delete_tx(store_t *st, void *arg)
{
    const item_tx *tx = arg;
    int64_t site_id = tx->site_id, id = tx->id;
    db_query q;
    int status = db_query_start(st,
                                "DELETE FROM items WHERE id = :id AND site_id = :site "
                                "RETURNING type, slug, status, draft_version, COALESCE(published_version, 0)",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":id", id);
    db_bind_int(&q, ":site", site_id);
    item_state item = {.id = id};
    char slug[256]; /* a slug is at most 128 bytes (content/api.h) */
    bool found = db_next_row(&q);
    if (found) {
        snprintf(item.type, sizeof item.type, "%s", db_column_text(&q, 0));
        snprintf(slug, sizeof slug, "%s", db_column_text(&q, 1));
        snprintf(item.status, sizeof item.status, "%s", db_column_text(&q, 2));
        item.draft_version = db_column_int(&q, 3);
        item.published_version = db_column_int(&q, 4);
    }
    status = db_query_end(&q, "deleting the item");
    if (status == STORE_OK && !found)
        return db_fail(st, STORE_NOT_FOUND, "no item %lld in this site", (long long)id);
    return status == STORE_OK ? item_event(st, site_id, WEBHOOK_DELETED, &item, slug, item.draft_version) : status;
}

int store_item_delete(store_t *st, int64_t site_id, int64_t id)
{
    db_clear_error(st);
    item_tx tx = {.site_id = site_id, .id = id};
    return db_transact_item(st, id, item_delete_tx, &tx, "deleting the item");
}
