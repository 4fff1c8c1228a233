/*
 * lists.c — the keyset-paginated item list, view counting and popularity.
 *
 * A list query is assembled from a fixed set of fragments (which table
 * drives it, which filters are on, which sort), so there are finitely many
 * SQL texts — a few hundred at most — and each is compiled once per
 * connection. Only fragment constants are ever pasted; values are bound.
 *
 * Keyset pagination. The order is (key, id): id breaks ties, so the order is
 * total and the position of a row is exact. A page is the first `limit` rows
 * strictly after the position of the previous page's last row. A row
 * inserted between two requests lands either before that position (and is
 * never seen by later pages) or after it (and is seen once), so pages never
 * duplicate or skip a row. The store fetches limit + 1 rows to know whether
 * another page exists without counting.
 *
 * "After (key, id)" is written `key <= :key AND (key < :key OR id < :id)`
 * (with > for ascending sorts): the first conjunct is a plain range on the
 * index column, which the engine seeks to; the second settles ties.
 *
 * Indexes. Lists of one status walk items_by_* (site_id, status, [type |
 * category_id,] sort key, id) in order and stop after limit + 1 rows. With
 * a tag the query is driven from item_tags_by_tag* (site_id, tag, status,
 * sort key, item_id), whose rows carry the item's status and sort keys
 * (published_at, updated_at, title: schema version 4), so every tag list
 * of one status is index-driven too. Lists over every status, or by
 * published_at where it may be NULL (drafts: NULL sorts as 0), sort in a
 * temporary b-tree: those are editors' lists. A filter on fields other
 * than equalities, or with another sort, sorts its matches too, read from
 * the field's index (field_filters_read_matches, field_filters.c) — but
 * for a range on one field with few values in the published order, read
 * value by value: its values first, then one ordered walk of the
 * field's index per value, merged (list_sql_build_by_value). A reader on
 * an event loop (store_list_query.bounded_only) is refused a sort of
 * matches rather than wait for it: STORE_UNBOUNDED.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "store/item_text.h"
#include "store/store_internal.h"

enum { LIST_LIMIT_MAX = 100, MS_PER_HOUR = 3600000 };

static const char *const status_names[] = {
    [FILTER_PUBLISHED] = "published",
    [FILTER_DRAFT] = "draft",
    [FILTER_ARCHIVED] = "archived",
};

/* ---- SQL assembly ------------------------------------------------------- */

void sql_add(sql_text *sql, const char *format, ...)
{
    if (sql->overflow)
        return;
    va_list args;
    va_start(args, format);
    int n = vsnprintf(sql->text + sql->length, sizeof sql->text - sql->length, format, args);
    va_end(args);
    if (n < 0 || (size_t)n >= sizeof sql->text - sql->length)
        sql->overflow = true;
    else
        sql->length += (size_t)n;
}

/* How one list query sorts and which table drives it. */
typedef struct list_plan {
    bool by_tag;
    const char *key; /* sort key expression */
    const char *id;  /* tie-break expression */
    bool descending;
    bool key_is_text;
    bool sort_matches; /* field_filters_read_matches: ORDER BY no index holds */
} list_plan;

static list_plan list_plan_for(const store_list_query *q)
{
    list_plan plan = {
        .by_tag = q->tag != NULL, .id = "i.id", .descending = true, .sort_matches = field_filters_read_matches(q)};
    bool published_at_set = q->status == FILTER_PUBLISHED; /* else NULL sorts as 0 */
    switch (q->sort) {
    case SORT_PUBLISHED_DESC:
    case SORT_PUBLISHED_ASC:
        if (plan.by_tag)
            plan.key = published_at_set ? "t.published_at" : "COALESCE(t.published_at, 0)";
        else
            plan.key = published_at_set ? "i.published_at" : "COALESCE(i.published_at, 0)";
        plan.descending = q->sort == SORT_PUBLISHED_DESC;
        break;
    case SORT_UPDATED_DESC: plan.key = plan.by_tag ? "t.updated_at" : "i.updated_at"; break;
    case SORT_TITLE_ASC:
        plan.key = plan.by_tag ? "t.title" : "i.title";
        plan.descending = false;
        plan.key_is_text = true;
        break;
    case SORT_RELEVANCE: break; /* searches only (search.c): list_query_check refuses it */
    }
    if (plan.by_tag)
        plan.id = "t.item_id";
    return plan;
}

/* Which columns a list reads, and where the keyset's are among them. */
typedef struct list_columns {
    const char *sql;
    int id, title, updated_at, published_at;
} list_columns;

static const list_columns item_list_columns = {"SELECT " ITEM_COLUMNS " FROM ", ITEM_COL_ID, ITEM_COL_TITLE,
                                               ITEM_COL_UPDATED_AT, ITEM_COL_PUBLISHED_AT};
/* item_stamp_columns, then the title: enough for the stamps and the keyset. */
enum { STAMP_COL_ID = 0, STAMP_COL_UPDATED_AT = 2, STAMP_COL_PUBLISHED_AT = 3, STAMP_COL_TITLE = 8 };
static const list_columns stamp_list_columns = {NULL, STAMP_COL_ID, STAMP_COL_TITLE, STAMP_COL_UPDATED_AT,
                                                STAMP_COL_PUBLISHED_AT};

/* SELECT … WHERE …: the rows of q after its position, unordered. */
static void list_sql_select(const store_list_query *q, const list_plan *plan, const list_columns *columns,
                            const char *field_filters, sql_text *sql)
{
    if (columns->sql == NULL)
        sql_add(sql, "SELECT %s, i.title FROM ", item_stamp_columns);
    else
        sql_add(sql, "%s", columns->sql);
    if (plan->by_tag) /* CROSS JOIN: item_tags drives, through its index */
        sql_add(sql, "item_tags t CROSS JOIN items i LEFT JOIN categories c ON c.id = i.category_id"
                     " WHERE t.site_id = :site AND t.tag = :tag AND i.id = t.item_id");
    else
        sql_add(sql, ITEM_FROM " WHERE i.site_id = :site");
    if (q->status != FILTER_ANY)
        sql_add(sql, plan->by_tag ? " AND t.status = :status" : " AND i.status = :status");
    if (q->type)
        sql_add(sql, " AND i.type = :type");
    if (q->category)
        sql_add(sql, " AND i.category_id = "
                     "(SELECT id FROM categories WHERE site_id = :site AND slug = :category)");
    sql_add(sql, "%s", field_filters);
    const char *after = plan->descending ? "<" : ">";
    if (q->after.present)
        sql_add(sql, " AND %s %s= :key AND (%s %s :key OR %s %s :id)", plan->key, after, plan->key, after, plan->id,
                after);
}

static void list_sql_build(const store_list_query *q, const list_plan *plan, const list_columns *columns,
                           const char *field_filters, sql_text *sql)
{
    list_sql_select(q, plan, columns, field_filters, sql);
    const char *direction = plan->descending ? "DESC" : "ASC";
    /* The same order, in an expression no index holds: the engine reads the
     * matches through the filters' best index and sorts them (field_filters.c) */
    const char *unindexed = !plan->sort_matches ? "" : plan->key_is_text ? " || ''" : " + 0";
    sql_add(sql, " ORDER BY %s%s %s, %s %s LIMIT :limit", plan->key, unindexed, direction, plan->id, direction);
}

/* A range read value by value (field_filters_by_value): one SELECT per
 * value, each an ordered walk of the field's index, merged by the engine
 * in the page's order (SQLite's merge of a compound SELECT; PostgreSQL's
 * Merge Append, each SELECT ordered and limited in a subquery:
 * by_value_limits_each_walk), which stops once it has limit + 1 rows. */
static int list_sql_build_by_value(store_t *st, const store_list_query *q, const list_plan *plan,
                                   const list_columns *columns, size_t values, sql_text *sql)
{
    const char *direction = plan->descending ? "DESC" : "ASC";
    for (size_t k = 0; k < values; k++) {
        char value_filter[1024];
        int status = field_filters_value_sql(st, q, k, value_filter, sizeof value_filter);
        if (status != STORE_OK)
            return status;
        sql_add(sql, "%s", k ? " UNION ALL " : "");
        sql_add(sql, "%s", st->driver->by_value_limits_each_walk ? "SELECT * FROM (" : "");
        list_sql_select(q, plan, columns, value_filter, sql);
        if (st->driver->by_value_limits_each_walk)
            sql_add(sql, " ORDER BY %s %s, %s %s LIMIT :limit) AS v%zu", plan->key, direction, plan->id, direction, k);
    }
    sql_add(sql, " ORDER BY %d %s, %d %s LIMIT :limit", columns->published_at + 1, direction, columns->id + 1,
            direction);
    return STORE_OK;
}

static void list_bind(db_query *query, const store_list_query *q, const field_values *values)
{
    db_bind_int(query, ":site", q->site_id);
    if (q->tag)
        db_bind_text(query, ":tag", q->tag);
    if (q->status != FILTER_ANY)
        db_bind_text(query, ":status", status_names[q->status]);
    if (q->type)
        db_bind_text(query, ":type", q->type);
    if (q->category)
        db_bind_text(query, ":category", q->category);
    if (q->after.present) {
        if (q->sort == SORT_TITLE_ASC)
            db_bind_text(query, ":key", q->after.key_text);
        else
            db_bind_int(query, ":key", q->after.key_int);
        db_bind_int(query, ":id", q->after.id);
    }
    db_bind_int(query, ":limit", q->limit + 1);
    if (values->count > 0)
        field_filters_values_bind(query, values);
    else
        field_filters_bind(query, q);
}

/* ---- the list ----------------------------------------------------------- */

int list_query_check(store_t *st, const store_list_query *q)
{
    if (q->limit < 1 || q->limit > LIST_LIMIT_MAX)
        return db_fail(st, STORE_INVALID, "limit must be between 1 and %d", LIST_LIMIT_MAX);
    if (q->status < FILTER_PUBLISHED || q->status > FILTER_ANY)
        return db_fail(st, STORE_INVALID, "unknown status filter %d", (int)q->status);
    if (q->sort < SORT_PUBLISHED_DESC || q->sort > SORT_TITLE_ASC)
        return db_fail(st, STORE_INVALID, "unknown sort %d", (int)q->sort);
    if (q->after.present && q->sort == SORT_TITLE_ASC && !memchr(q->after.key_text, '\0', sizeof q->after.key_text))
        return db_fail(st, STORE_INVALID, "the position's title is not terminated");
    return STORE_OK;
}

/* The position of the current row in the sort order. */
static bool keyset_from_row(const db_query *query, store_sort sort, const list_columns *columns, store_keyset *position)
{
    position->present = true;
    position->id = db_column_int(query, columns->id);
    position->key_int = 0;
    position->key_text[0] = '\0';
    switch (sort) {
    case SORT_PUBLISHED_DESC:
    case SORT_PUBLISHED_ASC: /* a NULL reads as 0, as it sorts */
        position->key_int = db_column_int(query, columns->published_at);
        return true;
    case SORT_UPDATED_DESC: position->key_int = db_column_int(query, columns->updated_at); return true;
    case SORT_TITLE_ASC: {
        const char *title = db_column_text(query, columns->title);
        size_t length = title ? strlen(title) : 0;
        if (length >= sizeof position->key_text)
            return false;
        memcpy(position->key_text, title ? title : "", length + 1);
        return true;
    }
    case SORT_RELEVANCE: break;
    }
    return false;
}

bool list_position_of_item_row(const db_query *query, store_sort sort, store_keyset *position)
{
    return keyset_from_row(query, sort, &item_list_columns, position);
}

/* ---- the list as stamps or texts (item_text.h) ------------------------- */

/* Checks q, builds its SQL with these columns and starts it. */
static int list_query_begin(store_t *st, const store_list_query *q, const list_columns *columns, db_query *query)
{
    int status = list_query_check(st, q);
    if (status != STORE_OK)
        return status;
    char field_filters[6144];
    status = field_filters_sql(st, q, field_filters, sizeof field_filters);
    if (status != STORE_OK)
        return status;
    list_plan plan = list_plan_for(q);
    field_values values = {.count = 0};
    bool by_value = field_filters_by_value(q);
    if (by_value)
        status = field_filters_values_read(st, q, field_filters, &values);
    if (values.count > FIELD_VALUES_MAX) { /* too many walks: sort the matches */
        field_values_free(&values);
        by_value = false;
    }
    if (status == STORE_OK && q->bounded_only && plan.sort_matches && !by_value)
        status = db_fail(st, STORE_UNBOUNDED, "this list reads every match of its filters to sort them");
    sql_text sql = {.length = 0};
    if (status == STORE_OK && values.count > 0) {
        plan.sort_matches = false;
        status = list_sql_build_by_value(st, q, &plan, columns, values.count, &sql);
    } else if (status == STORE_OK) {
        list_sql_build(q, &plan, columns, field_filters, &sql);
    }
    if (status == STORE_OK && sql.overflow)
        status = db_fail(st, STORE_ERROR, "the list query does not fit its buffer");
    if (status == STORE_OK)
        status = db_query_start(st, sql.text, query);
    if (status == STORE_OK)
        list_bind(query, q, &values);
    field_values_free(&values);
    return status;
}

/* Ends a list read: the failures of the rows first, then the keyset's. */
static int list_query_finish(store_t *st, db_query *query, int failed, bool position_ok, bool more,
                             const store_keyset *last, store_keyset *next)
{
    int status = db_query_end(query, "listing items");
    if (failed != STORE_OK)
        return failed;
    if (status == STORE_OK && !position_ok)
        return db_fail(st, STORE_ERROR, "a title is too long to page by (over %zu bytes)", sizeof last->key_text - 1);
    if (status == STORE_OK && more)
        *next = *last;
    return status;
}

int store_list_stamps(store_t *st, const store_list_query *q, store_stamp *stamps, int64_t *views, size_t *n,
                      store_keyset *next)
{
    db_clear_error(st);
    *n = 0;
    memset(next, 0, sizeof *next);
    db_query query;
    int status = list_query_begin(st, q, &stamp_list_columns, &query);
    if (status != STORE_OK)
        return status;
    store_keyset last = {.present = false};
    bool more = false, position_ok = true;
    while (position_ok && db_next_row(&query)) {
        if (*n == (size_t)q->limit) {
            more = true;
            break;
        }
        item_stamp_of_columns(&query, q->site_id, &stamps[*n], &views[*n]);
        (*n)++;
        position_ok = keyset_from_row(&query, q->sort, &stamp_list_columns, &last);
    }
    return list_query_finish(st, &query, STORE_OK, position_ok, more, &last, next);
}

int store_item_list_texts(store_t *st, const store_list_query *q, store_item_sink sink, void *arg, store_keyset *next)
{
    db_clear_error(st);
    memset(next, 0, sizeof *next);
    db_query query;
    int status = list_query_begin(st, q, &item_list_columns, &query);
    if (status != STORE_OK)
        return status;
    store_keyset last = {.present = false};
    bool more = false, position_ok = true;
    int failed = STORE_OK, rows = 0;
    growbuf o = {0};
    while (failed == STORE_OK && position_ok && db_next_row(&query)) {
        if (rows == q->limit) {
            more = true;
            break;
        }
        store_row_text row;
        failed = item_text_of_row(st, &query, q->site_id, q->site_name, false, &o, &row);
        if (failed == STORE_OK && !sink(arg, &row))
            failed = db_fail(st, STORE_ERROR, "out of memory listing items");
        rows++;
        position_ok = keyset_from_row(&query, q->sort, &item_list_columns, &last);
    }
    growbuf_free(&o);
    return list_query_finish(st, &query, failed, position_ok, more, &last, next);
}

/* ---- views -------------------------------------------------------------- */

int views_hourly_add(store_t *st, int64_t site_id, int64_t item_id, int64_t hour, int64_t count)
{
    db_query q;
    int status = db_query_start(st,
                                "INSERT INTO views_hourly(site_id, item_id, hour, count) "
                                "VALUES (:site, :item, :hour, :count) ON CONFLICT(item_id, hour) "
                                "DO UPDATE SET count = views_hourly.count + excluded.count",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":site", site_id);
    db_bind_int(&q, ":item", item_id);
    db_bind_int(&q, ":hour", hour);
    db_bind_int(&q, ":count", count);
    return db_query_run(&q, "counting views");
}

static int views_add_one(store_t *st, int64_t site_id, int64_t id, int64_t count, int64_t now_ms)
{
    db_query q;
    int status = db_query_start(st,
                                "UPDATE items SET views = views + :count "
                                "WHERE id = :id AND site_id = :site AND status = 'published'",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":count", count);
    db_bind_int(&q, ":id", id);
    db_bind_int(&q, ":site", site_id);
    status = db_query_run(&q, "counting views");
    if (status == STORE_OK && db_changes(st) == 0)
        return db_fail(st, STORE_NOT_FOUND, "no published item %lld in this site", (long long)id);
    if (status == STORE_OK)
        status = views_hourly_add(st, site_id, id, now_ms / MS_PER_HOUR, count);
    return status;
}

typedef struct views_tx {
    const store_view_count *counts;
    size_t n;
    int64_t now_ms;
    bool strict;    /* an item not published fails (else its count is dropped) */
    size_t applied; /* set by each run of the body */
} views_tx;

static int views_add_tx(store_t *st, void *arg)
{
    views_tx *tx = arg;
    int status = STORE_OK;
    tx->applied = 0;
    for (size_t i = 0; status == STORE_OK && i < tx->n; i++) {
        const store_view_count *c = &tx->counts[i];
        if (c->count < 1)
            continue;
        status = views_add_one(st, c->site_id, c->item_id, c->count, tx->now_ms);
        if (status == STORE_NOT_FOUND && !tx->strict) /* unpublished or deleted since it was viewed: drop it */
            status = STORE_OK;
        else if (status == STORE_OK)
            tx->applied++;
    }
    return status;
}

int store_views_add(store_t *st, int64_t site_id, int64_t id, int64_t count, int64_t now_ms)
{
    db_clear_error(st);
    if (count < 1)
        return db_fail(st, STORE_INVALID, "a view count must be positive");
    views_tx tx = {.counts = &(store_view_count){.site_id = site_id, .item_id = id, .count = count},
                   .n = 1,
                   .now_ms = now_ms,
                   .strict = true};
    return db_transact(st, views_add_tx, &tx, "counting views");
}

int store_views_add_batch(store_t *st, const store_view_count *counts, size_t n, int64_t now_ms, size_t *applied)
{
    db_clear_error(st);
    if (applied != NULL)
        *applied = 0;
    views_tx tx = {.counts = counts, .n = n, .now_ms = now_ms, .strict = false};
    int status = db_transact(st, views_add_tx, &tx, "counting views");
    if (status == STORE_OK && applied != NULL)
        *applied = tx.applied;
    return status;
}

int store_item_is_published(store_t *st, int64_t site_id, int64_t id)
{
    db_clear_error(st);
    db_query q;
    int status =
        db_query_start(st, "SELECT 1 FROM items WHERE id = :id AND site_id = :site AND status = 'published'", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":id", id);
    db_bind_int(&q, ":site", site_id);
    bool found = db_next_row(&q);
    status = db_query_end(&q, "checking the item");
    if (status == STORE_OK && !found)
        return db_fail(st, STORE_NOT_FOUND, "no published item %lld in this site", (long long)id);
    return status;
}

/* ---- popularity --------------------------------------------------------- */

/* All time ranks by items.views; a window sums the hourly buckets from the
 * hour holding since_ms on. Either way ITEM_COL_EXTRA is the count. */
static void popular_sql_build(bool windowed, bool typed, sql_text *sql)
{
    sql_add(sql, "SELECT " ITEM_COLUMNS);
    if (windowed)
        sql_add(sql, ", w.window_views FROM (SELECT item_id, SUM(count) AS window_views "
                     "FROM views_hourly WHERE site_id = :site AND hour >= :hour GROUP BY item_id) w "
                     "CROSS JOIN items i LEFT JOIN categories c ON c.id = i.category_id "
                     "WHERE i.id = w.item_id AND i.status = 'published'");
    else
        sql_add(sql, ", i.views FROM " ITEM_FROM " WHERE i.site_id = :site AND i.status = 'published' AND i.views > 0");
    if (typed)
        sql_add(sql, " AND i.type = :type");
    sql_add(sql, windowed ? " ORDER BY w.window_views DESC, i.id ASC LIMIT :limit"
                          : " ORDER BY i.views DESC, i.id ASC LIMIT :limit");
}

static int popular_rows_read(store_t *st, db_query *query, const char *site_name, json_t *page)
{
    bool ok = true;
    while (ok && db_next_row(query)) {
        json_t *summary = item_from_row(query, site_name, false);
        json_t *views = json_integer(db_column_int(query, ITEM_COL_EXTRA));
        ok = summary && json_put(summary, "window_views", views);
        if (!summary)
            json_decref(views);
        ok = ok && json_array_append(page, summary) == 0;
        json_decref(summary);
    }
    int status = db_query_end(query, "ranking items");
    if (status == STORE_OK && !ok)
        return db_fail(st, STORE_ERROR, "an item could not be read (out of memory or damaged fields)");
    return status;
}

int store_popular(store_t *st, int64_t site_id, const char *site_name, const char *type, int64_t since_ms, int limit,
                  json_t **items)
{
    db_clear_error(st);
    *items = NULL;
    if (limit < 1 || limit > LIST_LIMIT_MAX)
        return db_fail(st, STORE_INVALID, "limit must be between 1 and %d", LIST_LIMIT_MAX);
    bool windowed = since_ms > 0;
    sql_text sql = {.length = 0};
    popular_sql_build(windowed, type != NULL, &sql);
    if (sql.overflow)
        return db_fail(st, STORE_ERROR, "the popularity query does not fit its buffer");
    db_query query;
    int status = db_query_start(st, sql.text, &query);
    if (status != STORE_OK)
        return status;
    db_bind_int(&query, ":site", site_id);
    if (windowed)
        db_bind_int(&query, ":hour", since_ms / MS_PER_HOUR);
    if (type)
        db_bind_text(&query, ":type", type);
    db_bind_int(&query, ":limit", limit);
    json_t *page = json_array();
    status =
        page ? popular_rows_read(st, &query, site_name, page) : db_fail(st, STORE_ERROR, "out of memory ranking items");
    if (!page)
        (void)db_query_end(&query, "ranking items"); /* nothing ran; just release it */
    if (status != STORE_OK) {
        json_decref(page);
        return status;
    }
    *items = page;
    return STORE_OK;
}
