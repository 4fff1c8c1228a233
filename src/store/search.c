/*
 * search.c — full-text search pages (store_search.h).
 *
 * One statement per page, in the SQL both engines accept with two
 * fragments (db_driver.h): {search_from} names the matching rows of items
 * `i` for the bound query text :match (SQLite: the FTS5 table items_fts
 * joined to items by rowid; PostgreSQL: items.search @@ to_tsquery), and
 * {search_rank} their rank (SQLite: strata_rank, search_sqlite.c;
 * PostgreSQL: ts_rank over the A/B/C-weighted vector, scaled to an
 * integer). The query text is the parsed query written in the engine's
 * own syntax (core/search_query.c), never the user's text.
 *
 *   SELECT <item columns>, i.body, r.rank FROM (
 *     SELECT i.id AS id, {search_rank} AS rank, <sort key> AS k
 *     FROM {search_from} AND i.site_id = :site <filters> <after the position>
 *     ORDER BY k, id LIMIT :limit) r
 *   CROSS JOIN items i … WHERE i.id = r.id ORDER BY r.k, r.id
 *
 * The inner query ranks every match but carries only ids and keys
 * through its sort; the outer one reads the page's rows, bodies
 * included (for the snippets), for the limit + 1 ids alone. Keyset
 * pagination is the lists' (lists.c): the order is (k, id), total, and a
 * page starts strictly after the previous page's last (k, id). With the
 * relevance sort k is the rank, an integer that depends on the row and
 * the query only — never on other rows (FTS5's bm25 would: its IDF and
 * average length move with every insert), so an insert between two pages
 * lands before or after a position, never across it.
 */
#include <stdio.h>
#include <string.h>

#include "store/store_internal.h"
#include "store/store_search.h"

enum { SEARCH_LIMIT_MAX = 100, SEARCH_SQL_MAX = 3072, COL_BODY = ITEM_COL_EXTRA, COL_RANK = ITEM_COL_EXTRA + 1 };

static const char *const status_names[] = {
    [FILTER_PUBLISHED] = "published",
    [FILTER_DRAFT] = "draft",
    [FILTER_ARCHIVED] = "archived",
};

/* The sort key of q's order and whether it descends. */
static const char *search_key(const store_list_query *q, bool *descending)
{
    *descending = true;
    switch (q->sort) {
    case SORT_RELEVANCE: return "{search_rank}";
    case SORT_PUBLISHED_DESC:
    case SORT_PUBLISHED_ASC:
        *descending = q->sort == SORT_PUBLISHED_DESC;
        return q->status == FILTER_PUBLISHED ? "i.published_at" : "COALESCE(i.published_at, 0)";
    case SORT_UPDATED_DESC: return "i.updated_at";
    case SORT_TITLE_ASC: *descending = false; return "i.title";
    }
    return NULL;
}

/* The statement's text; false when it does not fit (it always does). */
static bool search_sql_build(const store_list_query *q, char *sql, size_t size)
{
    bool descending;
    const char *key = search_key(q, &descending);
    const char *dir = descending ? "DESC" : "ASC", *op = descending ? "<" : ">";
    char after[256] = "";
    if (q->after.present)
        snprintf(after, sizeof after, " AND %s %s= :key AND (%s %s :key OR i.id %s :id)", key, op, key, op, op);
    int n = snprintf(
        sql, size,
        "SELECT " ITEM_COLUMNS ", i.body, r.rank FROM (SELECT i.id AS id, {search_rank} AS rank, %s AS k"
        " FROM {search_from} AND i.site_id = :site%s%s%s%s%s ORDER BY k %s, id %s LIMIT :limit) r"
        " CROSS JOIN " ITEM_FROM " WHERE i.id = r.id ORDER BY r.k %s, r.id %s",
        key, q->status != FILTER_ANY ? " AND i.status = :status" : "", q->type ? " AND i.type = :type" : "",
        q->category ? " AND i.category_id = (SELECT id FROM categories WHERE site_id = :site AND slug = :category)"
                    : "",
        q->tag ? " AND EXISTS (SELECT 1 FROM item_tags t WHERE t.item_id = i.id AND t.tag = :tag)" : "", after, dir,
        dir, dir, dir);
    return n > 0 && (size_t)n < size;
}

static void search_bind(db_query *query, const store_list_query *q, const char *match)
{
    db_bind_text(query, ":match", match);
    db_bind_int(query, ":site", q->site_id);
    if (q->status != FILTER_ANY)
        db_bind_text(query, ":status", status_names[q->status]);
    if (q->type)
        db_bind_text(query, ":type", q->type);
    if (q->category)
        db_bind_text(query, ":category", q->category);
    if (q->tag)
        db_bind_text(query, ":tag", q->tag);
    if (q->after.present) {
        if (q->sort == SORT_TITLE_ASC)
            db_bind_text(query, ":key", q->after.key_text);
        else
            db_bind_int(query, ":key", q->after.key_int);
        db_bind_int(query, ":id", q->after.id);
    }
    db_bind_int(query, ":limit", q->limit + 1);
}

static int search_check(store_t *st, const store_list_query *q)
{
    if (q->limit < 1 || q->limit > SEARCH_LIMIT_MAX)
        return db_fail(st, STORE_INVALID, "limit must be between 1 and %d", SEARCH_LIMIT_MAX);
    if (q->status < FILTER_PUBLISHED || q->status > FILTER_ANY)
        return db_fail(st, STORE_INVALID, "unknown status filter %d", (int)q->status);
    if (q->sort < SORT_PUBLISHED_DESC || q->sort > SORT_RELEVANCE)
        return db_fail(st, STORE_INVALID, "unknown sort %d", (int)q->sort);
    if (q->after.present && q->sort == SORT_TITLE_ASC && !memchr(q->after.key_text, '\0', sizeof q->after.key_text))
        return db_fail(st, STORE_INVALID, "the position's title is not terminated");
    return STORE_OK;
}

/* The query in the syntax of st's engine. */
static bool match_text(const store_t *st, const search_query *search, char *out, size_t size)
{
    if (db_driver_of(st) == &db_postgres_driver)
        return search_query_tsquery(search, out, size);
    return search_query_fts5(search, out, size);
}

/* The position of the current row in q's order. */
static bool search_position(const db_query *query, const store_list_query *q, store_keyset *k)
{
    k->present = true;
    k->id = db_column_int(query, ITEM_COL_ID);
    k->key_int = 0;
    k->key_text[0] = '\0';
    switch (q->sort) {
    case SORT_RELEVANCE: k->key_int = db_column_int(query, COL_RANK); return true;
    case SORT_PUBLISHED_DESC:
    case SORT_PUBLISHED_ASC: k->key_int = db_column_int(query, ITEM_COL_PUBLISHED_AT); return true;
    case SORT_UPDATED_DESC: k->key_int = db_column_int(query, ITEM_COL_UPDATED_AT); return true;
    case SORT_TITLE_ASC: {
        const char *title = db_column_text(query, ITEM_COL_TITLE);
        size_t length = title ? strlen(title) : 0;
        if (length >= sizeof k->key_text)
            return false;
        memcpy(k->key_text, title ? title : "", length + 1);
        return true;
    }
    }
    return false;
}

/* Reads the rows of a started search into sink. */
static int search_rows(store_t *st, db_query *query, const store_list_query *q, store_hit_sink sink, void *arg,
                       store_keyset *next)
{
    store_keyset last = {.present = false};
    bool more = false, position_ok = true;
    int failed = STORE_OK, rows = 0;
    growbuf o = {0};
    while (failed == STORE_OK && position_ok && db_next_row(query)) {
        if (rows++ == q->limit) {
            more = true;
            break;
        }
        store_search_hit hit = {.title = db_column_text(query, ITEM_COL_TITLE),
                                .excerpt = db_column_text(query, ITEM_COL_EXCERPT),
                                .body = db_column_text(query, COL_BODY),
                                .rank = db_column_int(query, COL_RANK)};
        failed = item_text_of_row(st, query, q->site_id, q->site_name, false, &o, &hit.row);
        if (failed == STORE_OK && !sink(arg, &hit))
            failed = db_fail(st, STORE_ERROR, "out of memory listing search hits");
        position_ok = search_position(query, q, &last);
    }
    growbuf_free(&o);
    int status = db_query_end(query, "searching items");
    if (failed != STORE_OK)
        return failed;
    if (status == STORE_OK && !position_ok)
        return db_fail(st, STORE_ERROR, "a title is too long to page by (over %zu bytes)", sizeof last.key_text - 1);
    if (status == STORE_OK && more)
        *next = last;
    return status;
}

int store_search_texts(store_t *st, const store_list_query *q, const search_query *search, store_hit_sink sink,
                       void *arg, store_keyset *next)
{
    db_clear_error(st);
    memset(next, 0, sizeof *next);
    int status = search_check(st, q);
    if (status != STORE_OK)
        return status;
    char match[SEARCH_RENDER_MAX], sql[SEARCH_SQL_MAX];
    if (!match_text(st, search, match, sizeof match) || !search_sql_build(q, sql, sizeof sql))
        return db_fail(st, STORE_ERROR, "the search query does not fit its buffer");
    db_query query;
    status = db_query_start(st, sql, &query);
    if (status != STORE_OK)
        return status;
    search_bind(&query, q, match);
    return search_rows(st, &query, q, sink, arg, next);
}
