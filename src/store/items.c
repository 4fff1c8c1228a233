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
 * Every write is one transaction; any failure rolls all of it back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_internal.h"
#include "store/store_history.h"

enum { TAG_BATCH = 100 };

/* ---- snapshots ---------------------------------------------------------- */

/* Borrowed views into a snapshot's members. */
typedef struct snapshot_view {
    const char *slug, *title, *excerpt, *body;
    const char *category; /* NULL: no category */
    json_t *fields;
    json_t *tags;
} snapshot_view;

static bool snapshot_view_of(const json_t *snapshot, snapshot_view *v)
{
    const json_t *category = json_object_get(snapshot, "category");
    v->slug = json_string_value(json_object_get(snapshot, "slug"));
    v->title = json_string_value(json_object_get(snapshot, "title"));
    v->excerpt = json_string_value(json_object_get(snapshot, "excerpt"));
    v->body = json_string_value(json_object_get(snapshot, "body"));
    v->category = json_string_value(category);
    v->fields = json_object_get(snapshot, "fields");
    v->tags = json_object_get(snapshot, "tags");
    return v->slug && v->title && v->excerpt && v->body && json_is_object(v->fields) && json_is_array(v->tags) &&
           (json_is_null(category) || json_is_string(category));
}

bool sq_snapshot_valid(const json_t *snapshot)
{
    snapshot_view v;
    return snapshot_view_of(snapshot, &v);
}

static int compare_text(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *sq_tags_json(const char *const *tags, size_t count)
{
    const char **sorted = malloc((count ? count : 1) * sizeof *sorted);
    json_t *array = json_array();
    bool ok = sorted && array;
    if (ok && count) {
        memcpy(sorted, tags, count * sizeof *sorted);
        qsort(sorted, count, sizeof *sorted, compare_text);
    }
    for (size_t i = 0; ok && i < count; i++)
        ok = json_array_append_new(array, json_string(sorted[i])) == 0;
    free(sorted);
    if (!ok) {
        json_decref(array);
        return NULL;
    }
    return array;
}

json_t *sq_snapshot_new(const char *slug, const char *title, const char *excerpt, const char *body, json_t *fields,
                        const char *category, json_t *tags)
{
    json_t *snapshot = json_object();
    bool ok = snapshot != NULL;
    ok = ok && sq_put(snapshot, "slug", json_string(slug));
    ok = ok && sq_put(snapshot, "title", json_string(title));
    ok = ok && sq_put(snapshot, "excerpt", json_string(excerpt));
    ok = ok && sq_put(snapshot, "body", json_string(body));
    ok = ok && sq_put(snapshot, "fields", json_incref(fields));
    ok = ok && sq_put(snapshot, "category", category ? json_string(category) : json_null());
    ok = ok && sq_put(snapshot, "tags", json_incref(tags));
    json_decref(fields);
    json_decref(tags);
    if (!ok) {
        json_decref(snapshot);
        return NULL;
    }
    return snapshot;
}

static json_t *snapshot_from_edit(const store_edit_t *edit)
{
    json_t *fields = edit->fields ? json_deep_copy(edit->fields) : json_object();
    json_t *tags = edit->has_tags ? sq_tags_json(edit->tags, edit->tag_count) : json_array();
    return sq_snapshot_new(edit->slug, edit->title, edit->excerpt ? edit->excerpt : "", edit->body ? edit->body : "",
                           fields, edit->has_category ? edit->category : NULL, tags);
}

bool sq_snapshot_merge_edit(json_t *snapshot, const store_edit_t *edit)
{
    bool ok = true;
    if (edit->slug)
        ok = ok && sq_put(snapshot, "slug", json_string(edit->slug));
    if (edit->title)
        ok = ok && sq_put(snapshot, "title", json_string(edit->title));
    if (edit->excerpt)
        ok = ok && sq_put(snapshot, "excerpt", json_string(edit->excerpt));
    if (edit->body)
        ok = ok && sq_put(snapshot, "body", json_string(edit->body));
    if (edit->fields)
        ok = ok && sq_put(snapshot, "fields", json_deep_copy(edit->fields));
    if (edit->has_category)
        ok = ok && sq_put(snapshot, "category", edit->category ? json_string(edit->category) : json_null());
    if (edit->has_tags)
        ok = ok && sq_put(snapshot, "tags", sq_tags_json(edit->tags, edit->tag_count));
    return ok;
}

int sq_edit_check(store_t *st, const store_edit_t *edit)
{
    if (edit->fields && !json_is_object(edit->fields))
        return sq_fail(st, STORE_INVALID, "fields must be a JSON object");
    if (edit->has_tags && edit->tag_count && !edit->tags)
        return sq_fail(st, STORE_INVALID, "tags are missing");
    return STORE_OK;
}

/* json_string refuses invalid UTF-8; memory running out is the only other
 * way building a snapshot fails. */
static int snapshot_build_failed(store_t *st)
{
    return sq_fail(st, STORE_INVALID, "a text of the edit is not valid UTF-8");
}

/* ---- versions ----------------------------------------------------------- */

int sq_publication_record(store_t *st, int64_t item_id, int64_t version, int64_t at, const char *author)
{
    sq_query q;
    int status = sq_query_start(st,
                                "INSERT INTO publications(item_id, version, published_at, author) "
                                "VALUES (:item, :version, :at, :author)",
                                &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":item", item_id);
    sq_bind_int(&q, ":version", version);
    sq_bind_int(&q, ":at", at);
    sq_bind_text(&q, ":author", author);
    return sq_query_run(&q, "recording the publication");
}

/* ---- the item row ------------------------------------------------------- */

/* What writes need to know about an item before changing it. */
typedef struct item_state {
    int64_t id;
    char type[64];
    char status[16];
    int64_t draft_version;
    int64_t published_version; /* 0: never published */
} item_state;

static int item_state_load(store_t *st, int64_t site_id, const char *site_name, int64_t id, item_state *item)
{
    sq_query q;
    int status = sq_query_start(st,
                                "SELECT type, status, draft_version, IFNULL(published_version, 0) "
                                "FROM items WHERE id = :id AND site_id = :site",
                                &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":id", id);
    sq_bind_int(&q, ":site", site_id);
    bool found = sq_next_row(&q);
    if (found) {
        item->id = id;
        snprintf(item->type, sizeof item->type, "%s", sq_column_text(&q, 0));
        snprintf(item->status, sizeof item->status, "%s", sq_column_text(&q, 1));
        item->draft_version = sqlite3_column_int64(q.stmt, 2);
        item->published_version = sqlite3_column_int64(q.stmt, 3);
    }
    status = sq_query_end(&q, "reading the item");
    if (status == STORE_OK && !found)
        return sq_fail(st, STORE_NOT_FOUND, "no item %lld in site '%s'", (long long)id, site_name);
    return status;
}

static int snapshot_category_id(store_t *st, int64_t site_id, const snapshot_view *v, int64_t *category_id)
{
    *category_id = 0;
    return v->category ? sq_category_id(st, site_id, v->category, category_id) : STORE_OK;
}

int sq_item_tags_replace(store_t *st, int64_t item_id, const json_t *tags)
{
    sq_query q;
    int status = sq_query_start(st, "DELETE FROM item_tags WHERE item_id = :item", &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":item", item_id);
    status = sq_query_run(&q, "replacing the tags");
    for (size_t i = 0; status == STORE_OK && i < json_array_size(tags); i++) {
        status = sq_query_start(st,
                                "INSERT INTO item_tags(site_id, item_id, tag, status, published_at) "
                                "SELECT site_id, id, :tag, status, published_at FROM items "
                                "WHERE id = :item",
                                &q);
        if (status != STORE_OK)
            break;
        sq_bind_text(&q, ":tag", json_string_value(json_array_get(tags, i)));
        sq_bind_int(&q, ":item", item_id);
        status = sq_query_run(&q, "saving the tags");
    }
    return status;
}

/* After the item's status or published_at changed. */
static int item_tags_status_sync(store_t *st, int64_t item_id)
{
    sq_query q;
    int status = sq_query_start(st,
                                "UPDATE item_tags SET (status, published_at) = "
                                "(SELECT status, published_at FROM items WHERE id = :item) "
                                "WHERE item_id = :item",
                                &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":item", item_id);
    return sq_query_run(&q, "updating the tags");
}

/* Makes the snapshot the item's public content: the content columns and
 * item_tags (which copies the status the item has at this point). */
static int item_content_write(store_t *st, int64_t item_id, const snapshot_view *v, int64_t category_id)
{
    char *fields = json_dumps(v->fields, JSON_COMPACT);
    if (!fields)
        return sq_fail(st, STORE_ERROR, "out of memory encoding fields");
    sq_query q;
    int status = sq_query_start(st,
                                "UPDATE items SET title = :title, excerpt = :excerpt, body = :body, "
                                "fields = :fields, category_id = :category WHERE id = :id",
                                &q);
    if (status == STORE_OK) {
        sq_bind_text(&q, ":title", v->title);
        sq_bind_text(&q, ":excerpt", v->excerpt);
        sq_bind_text(&q, ":body", v->body);
        sq_bind_text(&q, ":fields", fields);
        sq_bind_int_or_null(&q, ":category", category_id, category_id != 0);
        sq_bind_int(&q, ":id", item_id);
        status = sq_query_run(&q, "writing the item's content");
    }
    free(fields);
    return status == STORE_OK ? sq_item_tags_replace(st, item_id, v->tags) : status;
}

static int slug_taken(store_t *st, const char *type, const char *slug, const char *site_name)
{
    return sq_fail(st, STORE_CONFLICT, "an item of type '%s' with slug '%s' already exists in site '%s'", type, slug,
                   site_name);
}

/* ---- JSON --------------------------------------------------------------- */

static json_t *column_text_json(const sq_query *q, int column)
{
    const char *text = sq_column_text(q, column);
    return text ? json_stringn(text, (size_t)sqlite3_column_bytes(q->stmt, column)) : json_null();
}

static json_t *column_int_json(const sq_query *q, int column)
{
    if (sqlite3_column_type(q->stmt, column) == SQLITE_NULL)
        return json_null();
    return json_integer(sqlite3_column_int64(q->stmt, column));
}

static json_t *column_time_json(const sq_query *q, int column)
{
    if (sqlite3_column_type(q->stmt, column) == SQLITE_NULL)
        return json_null();
    return sq_time_json(sqlite3_column_int64(q->stmt, column));
}

static json_t *column_fields_json(const sq_query *q)
{
    const char *text = sq_column_text(q, SQ_COL_FIELDS);
    json_error_t error;
    json_t *fields = text ? json_loads(text, 0, &error) : NULL;
    if (!json_is_object(fields)) {
        json_decref(fields);
        return NULL;
    }
    return fields;
}

json_t *sq_item_from_row(const sq_query *q, const char *site_name, bool with_body)
{
    json_t *item = json_object();
    bool ok = item != NULL;
    ok = ok && sq_put(item, "id", json_integer(sqlite3_column_int64(q->stmt, SQ_COL_ID)));
    ok = ok && sq_put(item, "site", json_string(site_name));
    ok = ok && sq_put(item, "type", column_text_json(q, SQ_COL_TYPE));
    ok = ok && sq_put(item, "slug", column_text_json(q, SQ_COL_SLUG));
    ok = ok && sq_put(item, "status", column_text_json(q, SQ_COL_STATUS));
    ok = ok && sq_put(item, "title", column_text_json(q, SQ_COL_TITLE));
    ok = ok && sq_put(item, "excerpt", column_text_json(q, SQ_COL_EXCERPT));
    if (with_body)
        ok = ok && sq_put(item, "body", column_text_json(q, SQ_COL_EXTRA));
    ok = ok && sq_put(item, "fields", column_fields_json(q));
    ok = ok && sq_put(item, "category", column_text_json(q, SQ_COL_CATEGORY));
    ok = ok && sq_put(item, "tags", json_array());
    ok = ok && sq_put(item, "author", column_text_json(q, SQ_COL_AUTHOR));
    ok = ok && sq_put(item, "created_at", column_time_json(q, SQ_COL_CREATED_AT));
    ok = ok && sq_put(item, "updated_at", column_time_json(q, SQ_COL_UPDATED_AT));
    ok = ok && sq_put(item, "published_at", column_time_json(q, SQ_COL_PUBLISHED_AT));
    ok = ok && sq_put(item, "views", column_int_json(q, SQ_COL_VIEWS));
    ok = ok && sq_put(item, "draft_version", column_int_json(q, SQ_COL_DRAFT_VERSION));
    ok = ok && sq_put(item, "published_version", column_int_json(q, SQ_COL_PUBLISHED_VERSION));
    if (!ok) {
        json_decref(item);
        return NULL;
    }
    return item;
}

/* Item ids are distinct within a batch, so the first match is the one. */
static json_t *item_with_id(json_t *const items[], size_t count, int64_t id)
{
    for (size_t i = 0; i < count; i++)
        if (json_integer_value(json_object_get(items[i], "id")) == id)
            return items[i];
    return NULL;
}

#define PLACEHOLDERS_10 "?,?,?,?,?,?,?,?,?,?"
#define PLACEHOLDERS_100                                                                                               \
    PLACEHOLDERS_10 "," PLACEHOLDERS_10 "," PLACEHOLDERS_10 "," PLACEHOLDERS_10 "," PLACEHOLDERS_10                    \
                    "," PLACEHOLDERS_10 "," PLACEHOLDERS_10 "," PLACEHOLDERS_10 "," PLACEHOLDERS_10                    \
                    "," PLACEHOLDERS_10

/* One statement text for any batch: unused placeholders stay NULL, and
 * `item_id IN (…, NULL)` matches nothing for them. */
static int attach_tags_batch(store_t *st, json_t *const items[], size_t count)
{
    sq_query q;
    int status = sq_query_start(st,
                                "SELECT item_id, tag FROM item_tags WHERE item_id IN "
                                "(" PLACEHOLDERS_100 ") ORDER BY item_id, tag",
                                &q);
    if (status != STORE_OK)
        return status;
    for (size_t i = 0; i < count; i++)
        sq_bind_int_at(&q, (int)i + 1, json_integer_value(json_object_get(items[i], "id")));
    bool ok = true;
    while (ok && sq_next_row(&q)) {
        json_t *item = item_with_id(items, count, sqlite3_column_int64(q.stmt, 0));
        json_t *tags = json_object_get(item, "tags");
        ok = tags && json_array_append_new(tags, column_text_json(&q, 1)) == 0;
    }
    status = sq_query_end(&q, "reading the tags");
    if (status == STORE_OK && !ok)
        return sq_fail(st, STORE_ERROR, "out of memory reading the tags");
    return status;
}

int sq_items_attach_tags(store_t *st, json_t *const items[], size_t count)
{
    for (size_t start = 0; start < count; start += TAG_BATCH) {
        size_t batch = count - start < TAG_BATCH ? count - start : TAG_BATCH;
        int status = attach_tags_batch(st, items + start, batch);
        if (status != STORE_OK)
            return status;
    }
    return STORE_OK;
}

static json_t *draft_json(const char *site_name, const item_state *item, int64_t version, const json_t *snapshot,
                          const char *author, int64_t saved_at)
{
    json_t *draft = json_object();
    bool ok = draft != NULL;
    ok = ok && sq_put(draft, "id", json_integer(item->id));
    ok = ok && sq_put(draft, "site", json_string(site_name));
    ok = ok && sq_put(draft, "type", json_string(item->type));
    ok = ok && sq_put(draft, "slug", json_incref(json_object_get(snapshot, "slug")));
    ok = ok && sq_put(draft, "status", json_string(item->status));
    ok = ok && sq_put(draft, "version", json_integer(version));
    /* The snapshot's members are shared rather than copied: the snapshot
     * is dropped right after, leaving the draft their only owner. */
    static const char *const shared[] = {"title", "excerpt", "body", "fields", "category", "tags"};
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++)
        ok = ok && sq_put(draft, shared[i], json_incref(json_object_get(snapshot, shared[i])));
    ok = ok && sq_put(draft, "author", json_string(author));
    ok = ok && sq_put(draft, "saved_at", sq_time_json(saved_at));
    ok = ok && sq_put(draft, "published_version",
                      item->published_version ? json_integer(item->published_version) : json_null());
    if (!ok) {
        json_decref(draft);
        return NULL;
    }
    return draft;
}

static int draft_json_failed(store_t *st)
{
    return sq_fail(st, STORE_ERROR, "out of memory building the draft");
}

/* ---- reading items ------------------------------------------------------ */

static const char item_by_id_sql[] =
    "SELECT " SQ_ITEM_COLUMNS ", i.body FROM " SQ_ITEM_FROM
    " WHERE i.id = :id AND i.site_id = :site AND (:any_status OR i.status = 'published')";
static const char item_by_slug_sql[] = "SELECT " SQ_ITEM_COLUMNS ", i.body FROM " SQ_ITEM_FROM
                                       " WHERE i.site_id = :site AND i.type = :type AND i.slug = :slug"
                                       " AND (:any_status OR i.status = 'published')";

/* Reads the (at most one) row of q as a full item; *item stays NULL when
 * there is none. */
static int item_read(store_t *st, sq_query *q, const char *site_name, json_t **item)
{
    *item = NULL;
    json_t *row = NULL;
    bool found = sq_next_row(q);
    if (found)
        row = sq_item_from_row(q, site_name, true);
    int status = sq_query_end(q, "reading the item");
    if (status == STORE_OK && found && !row)
        status = sq_fail(st, STORE_ERROR, "the item could not be read (damaged fields?)");
    if (status == STORE_OK && row)
        status = sq_items_attach_tags(st, &row, 1);
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
    sq_query q;
    int status = sq_query_start(st, item_by_id_sql, &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":id", id);
    sq_bind_int(&q, ":site", site_id);
    sq_bind_int(&q, ":any_status", !published_only);
    status = item_read(st, &q, site_name, item);
    if (status == STORE_OK && !*item)
        return sq_fail(st, STORE_NOT_FOUND, "no %sitem %lld in site '%s'", published_only ? "published " : "",
                       (long long)id, site_name);
    return status;
}

int store_item_get(store_t *st, int64_t site_id, const char *site_name, int64_t id, bool published_only, json_t **item)
{
    sq_clear_error(st);
    return item_fetch(st, site_id, site_name, id, published_only, item);
}

int store_item_get_by_slug(store_t *st, int64_t site_id, const char *site_name, const char *type, const char *slug,
                           bool published_only, json_t **item)
{
    sq_clear_error(st);
    *item = NULL;
    sq_query q;
    int status = sq_query_start(st, item_by_slug_sql, &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":site", site_id);
    sq_bind_text(&q, ":type", type);
    sq_bind_text(&q, ":slug", slug);
    sq_bind_int(&q, ":any_status", !published_only);
    status = item_read(st, &q, site_name, item);
    if (status == STORE_OK && !*item)
        return sq_fail(st, STORE_NOT_FOUND, "no %sitem of type '%s' with slug '%s' in site '%s'",
                       published_only ? "published " : "", type, slug, site_name);
    return status;
}

/* The draft of the current row: columns type, status, draft_version,
 * published_version, author, created_at, encoding, data. */
/* The item row and the latest version's author and time; the snapshot is
 * read after the row's query has ended (versions.c uses statements too). */
int store_item_get_draft(store_t *st, int64_t site_id, const char *site_name, int64_t id, json_t **draft,
                         int64_t *version)
{
    sq_clear_error(st);
    *draft = NULL;
    sq_query q;
    int status =
        sq_query_start(st,
                       "SELECT i.type, i.status, i.draft_version, IFNULL(i.published_version, 0), v.author, "
                       "v.created_at FROM items i JOIN versions v "
                       "ON v.item_id = i.id AND v.number = i.draft_version WHERE i.id = :id AND i.site_id = :site",
                       &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":id", id);
    sq_bind_int(&q, ":site", site_id);
    item_state item = {.id = id};
    char author[65] = "";
    int64_t saved_at = 0;
    bool found = sq_next_row(&q);
    if (found) {
        snprintf(item.type, sizeof item.type, "%s", sq_column_text(&q, 0));
        snprintf(item.status, sizeof item.status, "%s", sq_column_text(&q, 1));
        item.draft_version = sqlite3_column_int64(q.stmt, 2);
        item.published_version = sqlite3_column_int64(q.stmt, 3);
        snprintf(author, sizeof author, "%s", sq_column_text(&q, 4));
        saved_at = sqlite3_column_int64(q.stmt, 5);
    }
    status = sq_query_end(&q, "reading the draft");
    if (status == STORE_OK && !found)
        status = sq_fail(st, STORE_NOT_FOUND, "no item %lld in site '%s'", (long long)id, site_name);
    json_t *snapshot = NULL;
    if (status == STORE_OK)
        status = sq_version_snapshot(st, id, item.draft_version, &snapshot);
    if (status == STORE_OK &&
        !(*draft = draft_json(site_name, &item, item.draft_version, snapshot, author, saved_at)))
        status = draft_json_failed(st);
    json_decref(snapshot);
    if (status == STORE_OK && version)
        *version = item.draft_version;
    return status;
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
        return sq_fail(st, STORE_ERROR, "out of memory encoding fields");
    sq_query q;
    status = sq_query_start(st,
                            "INSERT INTO items(site_id, type, slug, status, title, excerpt, fields, "
                            "category_id, author, created_at, updated_at, draft_version, body) "
                            "VALUES (:site, :type, :slug, 'draft', :title, :excerpt, :fields, "
                            ":category, :author, :now, :now, 1, :body)",
                            &q);
    if (status == STORE_OK) {
        sq_bind_int(&q, ":site", site_id);
        sq_bind_text(&q, ":type", type);
        sq_bind_text(&q, ":slug", v->slug);
        sq_bind_text(&q, ":title", v->title);
        sq_bind_text(&q, ":excerpt", v->excerpt);
        sq_bind_text(&q, ":fields", fields);
        sq_bind_int_or_null(&q, ":category", category_id, category_id != 0);
        sq_bind_text(&q, ":author", author);
        sq_bind_int(&q, ":now", now);
        sq_bind_text(&q, ":body", v->body);
        status = sq_query_run(&q, "creating the item");
    }
    free(fields);
    if (status == STORE_CONFLICT)
        return slug_taken(st, type, v->slug, site_name);
    if (q.rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return sq_fail(st, STORE_NOT_FOUND, "no site '%s'", site_name);
    if (status == STORE_OK)
        *id = sqlite3_last_insert_rowid(st->db);
    return status;
}

static int item_create_tx(store_t *st, int64_t site_id, const char *site_name, const store_edit_t *edit,
                          const char *author, const json_t *snapshot, json_t **draft)
{
    snapshot_view v;
    snapshot_view_of(snapshot, &v); /* built just now by snapshot_from_edit */
    int64_t now = store_now_ms();
    item_state item = {.draft_version = 1, .status = "draft"};
    snprintf(item.type, sizeof item.type, "%s", edit->type);
    int status = item_insert(st, site_id, site_name, edit->type, author, now, &v, &item.id);
    if (status == STORE_OK)
        status = sq_item_tags_replace(st, item.id, v.tags);
    if (status == STORE_OK)
        status = sq_version_append(st, item.id, 1, "draft", author, now, snapshot);
    if (status == STORE_OK && !(*draft = draft_json(site_name, &item, 1, snapshot, author, now)))
        status = draft_json_failed(st);
    return status;
}

int store_item_create(store_t *st, int64_t site_id, const char *site_name, const store_edit_t *edit, const char *author,
                      json_t **draft)
{
    sq_clear_error(st);
    *draft = NULL;
    if (!edit->type || !edit->slug || !edit->title)
        return sq_fail(st, STORE_INVALID, "type, slug and title are required to create an item");
    int status = sq_edit_check(st, edit);
    if (status != STORE_OK)
        return status;
    json_t *snapshot = snapshot_from_edit(edit);
    if (!snapshot)
        return snapshot_build_failed(st);
    json_t *result = NULL;
    status = sq_begin(st);
    if (status == STORE_OK)
        status = sq_end(st, item_create_tx(st, site_id, site_name, edit, author, snapshot, &result));
    json_decref(snapshot);
    if (status != STORE_OK) {
        json_decref(result);
        return status;
    }
    *draft = result;
    return STORE_OK;
}

/* ---- save a draft ------------------------------------------------------- */

/* The new latest version: its number, the time, and the (maybe new) slug. */
static int item_draft_advance(store_t *st, const item_state *item, const snapshot_view *v, int64_t now,
                              const char *site_name)
{
    sq_query q;
    int status = sq_query_start(st,
                                "UPDATE items SET slug = :slug, draft_version = :version, "
                                "updated_at = :now WHERE id = :id",
                                &q);
    if (status != STORE_OK)
        return status;
    sq_bind_text(&q, ":slug", v->slug);
    sq_bind_int(&q, ":version", item->draft_version);
    sq_bind_int(&q, ":now", now);
    sq_bind_int(&q, ":id", item->id);
    status = sq_query_run(&q, "saving the draft");
    return status == STORE_CONFLICT ? slug_taken(st, item->type, v->slug, site_name) : status;
}

/* Writes the merged snapshot as version base + 1. */
static int draft_store(store_t *st, int64_t site_id, const char *site_name, item_state *item, const json_t *snapshot,
                       bool category_given, const char *kind, const char *author, json_t **draft)
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
    if (status == STORE_OK)
        status = sq_version_append(st, item->id, item->draft_version, kind, author, now, snapshot);
    if (status == STORE_OK && never_published)
        status = item_content_write(st, item->id, &v, category_id);
    if (status == STORE_OK && !(*draft = draft_json(site_name, item, item->draft_version, snapshot, author, now)))
        status = draft_json_failed(st);
    return status;
}

static int draft_save_tx(store_t *st, int64_t site_id, const char *site_name, int64_t id, int64_t base_version,
                         const store_edit_t *edit, const char *author, json_t **draft)
{
    item_state item;
    int status = item_state_load(st, site_id, site_name, id, &item);
    if (status != STORE_OK)
        return status;
    if (base_version != item.draft_version)
        return sq_fail(st, STORE_STALE, "draft is at version %lld; this save was based on version %lld",
                       (long long)item.draft_version, (long long)base_version);
    json_t *snapshot = NULL;
    status = sq_version_snapshot(st, id, base_version, &snapshot);
    if (status == STORE_OK && !sq_snapshot_merge_edit(snapshot, edit))
        status = snapshot_build_failed(st);
    if (status == STORE_OK)
        status = draft_store(st, site_id, site_name, &item, snapshot, edit->has_category, "draft", author, draft);
    json_decref(snapshot);
    return status;
}

int store_item_save_draft(store_t *st, int64_t site_id, const char *site_name, int64_t id, int64_t base_version,
                          const store_edit_t *edit, const char *author, json_t **draft, int64_t *new_version)
{
    sq_clear_error(st);
    *draft = NULL;
    int status = sq_edit_check(st, edit);
    if (status != STORE_OK)
        return status;
    json_t *result = NULL;
    status = sq_begin(st);
    if (status == STORE_OK)
        status = sq_end(st, draft_save_tx(st, site_id, site_name, id, base_version, edit, author, &result));
    if (status != STORE_OK) {
        json_decref(result);
        return status;
    }
    *draft = result;
    if (new_version)
        *new_version = base_version + 1;
    return STORE_OK;
}

/* ---- restore ------------------------------------------------------------ */

static int restore_tx(store_t *st, int64_t site_id, const char *site_name, int64_t id, int64_t number,
                      int64_t base_version, const char *author, json_t **draft)
{
    item_state item;
    int status = item_state_load(st, site_id, site_name, id, &item);
    if (status != STORE_OK)
        return status;
    if (base_version > 0 && base_version != item.draft_version)
        return sq_fail(st, STORE_STALE, "draft is at version %lld; this restore was based on version %lld",
                       (long long)item.draft_version, (long long)base_version);
    json_t *snapshot = NULL;
    status = sq_version_snapshot(st, id, number, &snapshot);
    if (status == STORE_OK)
        status = draft_store(st, site_id, site_name, &item, snapshot, true, "restore", author, draft);
    json_decref(snapshot);
    return status;
}

int store_version_restore(store_t *st, int64_t site_id, const char *site_name, int64_t id, int64_t number,
                          int64_t base_version, const char *author, json_t **draft, int64_t *new_version)
{
    sq_clear_error(st);
    *draft = NULL;
    json_t *result = NULL;
    int status = sq_begin(st);
    if (status == STORE_OK)
        status = sq_end(st, restore_tx(st, site_id, site_name, id, number, base_version, author, &result));
    if (status != STORE_OK) {
        json_decref(result);
        return status;
    }
    *draft = result;
    if (new_version)
        *new_version = json_integer_value(json_object_get(result, "version"));
    return STORE_OK;
}

/* ---- publish and unpublish ---------------------------------------------- */

/* published_at is the time the item went public: set when it goes from
 * not published to published, kept when a published item is republished. */
static int item_mark_published(store_t *st, int64_t id, int64_t version, int64_t now)
{
    sq_query q;
    int status = sq_query_start(st,
                                "UPDATE items SET status = 'published', published_version = :version, "
                                "published_at = CASE WHEN status = 'published' THEN published_at "
                                "ELSE :now END, updated_at = :now WHERE id = :id",
                                &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":version", version);
    sq_bind_int(&q, ":now", now);
    sq_bind_int(&q, ":id", id);
    return sq_query_run(&q, "publishing the item");
}

static int publish_tx(store_t *st, int64_t site_id, const char *site_name, int64_t id, int64_t version,
                      const char *author, json_t **item_out)
{
    item_state item;
    int status = item_state_load(st, site_id, site_name, id, &item);
    if (status != STORE_OK)
        return status;
    int64_t number = version == 0 ? item.draft_version : version;
    json_t *snapshot = NULL;
    status = sq_version_snapshot(st, id, number, &snapshot);
    snapshot_view v;
    int64_t category_id = 0, now = store_now_ms();
    if (status == STORE_OK && !snapshot_view_of(snapshot, &v))
        status = sq_fail(st, STORE_ERROR, "version %lld of item %lld is damaged", (long long)number, (long long)id);
    if (status == STORE_OK)
        status = snapshot_category_id(st, site_id, &v, &category_id);
    if (status == STORE_OK)
        status = item_mark_published(st, id, number, now);
    if (status == STORE_OK)
        status = item_content_write(st, id, &v, category_id);
    if (status == STORE_OK)
        status = sq_publication_record(st, id, number, now, author);
    if (status == STORE_OK)
        status = item_fetch(st, site_id, site_name, id, false, item_out);
    json_decref(snapshot);
    return status;
}

int store_item_publish(store_t *st, int64_t site_id, const char *site_name, int64_t id, int64_t version,
                       const char *author, json_t **item)
{
    sq_clear_error(st);
    *item = NULL;
    if (version < 0)
        return sq_fail(st, STORE_NOT_FOUND, "item %lld has no version %lld", (long long)id, (long long)version);
    json_t *result = NULL;
    int status = sq_begin(st);
    if (status == STORE_OK)
        status = sq_end(st, publish_tx(st, site_id, site_name, id, version, author, &result));
    if (status != STORE_OK) {
        json_decref(result);
        return status;
    }
    *item = result;
    return STORE_OK;
}

static int unpublish_tx(store_t *st, int64_t site_id, const char *site_name, int64_t id, bool archive,
                        json_t **item_out)
{
    item_state item;
    int status = item_state_load(st, site_id, site_name, id, &item);
    if (status != STORE_OK)
        return status;
    if (strcmp(item.status, "published") != 0)
        return sq_fail(st, STORE_STATE, "item %lld is not published (its status is %s)", (long long)id, item.status);
    sq_query q;
    status = sq_query_start(st, "UPDATE items SET status = :status, updated_at = :now WHERE id = :id", &q);
    if (status != STORE_OK)
        return status;
    sq_bind_text(&q, ":status", archive ? "archived" : "draft");
    sq_bind_int(&q, ":now", store_now_ms());
    sq_bind_int(&q, ":id", id);
    status = sq_query_run(&q, "unpublishing the item");
    if (status == STORE_OK)
        status = item_tags_status_sync(st, id);
    if (status == STORE_OK)
        status = item_fetch(st, site_id, site_name, id, false, item_out);
    return status;
}

int store_item_unpublish(store_t *st, int64_t site_id, const char *site_name, int64_t id, bool archive, json_t **item)
{
    sq_clear_error(st);
    *item = NULL;
    json_t *result = NULL;
    int status = sq_begin(st);
    if (status == STORE_OK)
        status = sq_end(st, unpublish_tx(st, site_id, site_name, id, archive, &result));
    if (status != STORE_OK) {
        json_decref(result);
        return status;
    }
    *item = result;
    return STORE_OK;
}

/* ---- delete ------------------------------------------------------------- */

static int item_delete_tx(store_t *st, int64_t site_id, int64_t id)
{
    sq_query q;
    int status = sq_query_start(st, "DELETE FROM items WHERE id = :id AND site_id = :site", &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":id", id);
    sq_bind_int(&q, ":site", site_id);
    status = sq_query_run(&q, "deleting the item");
    /* changes() counts the item row only, not what the cascade removed. */
    if (status == STORE_OK && sq_changes(st) == 0)
        return sq_fail(st, STORE_NOT_FOUND, "no item %lld in this site", (long long)id);
    return status;
}

int store_item_delete(store_t *st, int64_t site_id, int64_t id)
{
    sq_clear_error(st);
    int status = sq_begin(st);
    return status == STORE_OK ? sq_end(st, item_delete_tx(st, site_id, id)) : status;
}
