/*
 * search.c — full-text search pages (store_search.h).
 *
 * The index. SQLite: items_fts, an FTS5 table over items' title, excerpt
 * and body; PostgreSQL: items.search, a tsvector of the same with the
 * weights A, B and C, under a GIN index (schema version 8; both kept by
 * triggers in the transaction of each write). The query reaches an engine
 * only as the parsed query written in that engine's syntax
 * (core/search_query.c), bound as a parameter; the SQL around it is the
 * same on both but for where the matching rows come from and which
 * expression names a row's id in the engine's order (the dialects below:
 * one table of two rows, in the spirit of db_driver.h's fragments, which
 * cannot carry a parameter's name).
 *
 * Relevance without ranking every match. An item's rank is its tier
 * (search_query.h): 3 when its title alone matches the query's positive
 * terms, else 2 when its excerpt alone does, else 1; equal ranks are in
 * id order, newest first. Each tier is a query of its own, which the
 * engine answers in id order and stops after a page: FTS5 walks its
 * doclists by rowid (backwards, from the cursor's id), so a page of a
 * word found in every one of 10,000 articles reads about a page of rows,
 * where bm25 or ts_rank would score all 10,000 first (tens of
 * milliseconds, not one). And a tier depends on the item and the query
 * only — never on other items, as bm25's IDF and average length do — so a
 * cursor's (rank, id) keeps its place while items come and go: a row
 * published between two pages lands before or after it, never across.
 *
 *   SELECT <item columns>, <the body, for a rest-tier hit>, 3 FROM (
 *       SELECT <id> AS id FROM <the title tier's rows> AND <filters>
 *       [AND <id> < :id] ORDER BY <id> DESC LIMIT :limit) r
 *   CROSS JOIN items i … WHERE i.id = r.id ORDER BY r.id DESC
 *
 * The tiers are read one statement each, from the cursor's tier (after
 * its id) down, each asked for the rows the page still lacks, and the
 * read stops when the page and one row more are there: the first page of
 * a word in many titles is one statement; a tier above the cursor's is
 * never read. The other sorts (-published_at, …) read every match in one
 * statement, as a list sorts (lists.c's keyset, the same conditions); the
 * rank column is then 0.
 */
#include <stdio.h>
#include <string.h>

#include "store/store_internal.h"
#include "store/store_search.h"

enum { COL_BODY = ITEM_COL_EXTRA, COL_RANK = ITEM_COL_EXTRA + 1 };

static const char *const status_names[] = {
    [FILTER_PUBLISHED] = "published",
    [FILTER_DRAFT] = "draft",
    [FILTER_ARCHIVED] = "archived",
};

/* Where one engine's matching rows come from. */
typedef struct search_dialect {
    /* FROM … WHERE, the rows of items `i` matching the query bound as
     * :m<%d>, to which conditions are added with AND */
    const char *from;
    const char *id; /* a row's id, in the engine's order (FTS5 walks rowids) */
    bool (*render)(const search_query *q, int tier, char *out, size_t size);
} search_dialect;

static const search_dialect sqlite_search = {
    "items_fts CROSS JOIN items i WHERE items_fts MATCH :m%d AND i.id = items_fts.rowid",
    "items_fts.rowid",
    search_query_fts5,
};
static const search_dialect postgres_search = {
    "items i WHERE i.search @@ to_tsquery('simple', :m%d)",
    "i.id",
    search_query_tsquery,
};

static const search_dialect *dialect_of(const store_t *st)
{
    return db_driver_of(st) == &db_postgres_driver ? &postgres_search : &sqlite_search;
}

/* ---- SQL assembly (lists.c's sql_add) ---------------------------------------- */

/* FROM the rows matching tier `tier`'s query, and the list's filters. */
static void matches_put(sql_text *sql, const search_dialect *d, const store_list_query *q, int tier)
{
    sql_add(sql, " FROM ");
    sql_add(sql, d->from, tier);
    sql_add(sql, " AND i.site_id = :site");
    if (q->status != FILTER_ANY)
        sql_add(sql, " AND i.status = :status");
    if (q->type)
        sql_add(sql, " AND i.type = :type");
    if (q->category)
        sql_add(sql, " AND i.category_id = (SELECT id FROM categories WHERE site_id = :site AND slug = :category)");
    if (q->tag)
        sql_add(sql, " AND EXISTS (SELECT 1 FROM item_tags t WHERE t.item_id = i.id AND t.tag = :tag)");
}

/* The tier to start at and whether it starts after the cursor's id. */
static int first_tier(const store_list_query *q)
{
    if (!q->after.present)
        return SEARCH_TIER_TITLE;
    if (q->after.key_int > SEARCH_TIER_TITLE)
        return SEARCH_TIER_TITLE; /* cannot come from a cursor of ours: read from the top */
    return (int)q->after.key_int;
}

/* One tier's page: after the cursor's id when `after`. */
static void tier_sql(sql_text *sql, const search_dialect *d, const store_list_query *q, int tier, bool after)
{
    /* the body only where the snippet may need it: a title or excerpt hit's
     * is found before it, and 14 KB of overflow pages are not read */
    sql_add(sql, "SELECT " ITEM_COLUMNS ", %s, %d FROM (SELECT %s AS id",
            tier < SEARCH_TIER_EXCERPT ? "i.body" : "NULL", tier, d->id);
    matches_put(sql, d, q, tier);
    if (after)
        sql_add(sql, " AND %s < :id", d->id);
    sql_add(sql, " ORDER BY %s DESC LIMIT :limit) r CROSS JOIN " ITEM_FROM " WHERE i.id = r.id ORDER BY r.id DESC",
            d->id);
}

/* The sort key of a list sort and whether it descends. */
static const char *sort_key(const store_list_query *q, bool *descending)
{
    *descending = true;
    switch (q->sort) {
    case SORT_PUBLISHED_DESC:
    case SORT_PUBLISHED_ASC:
        *descending = q->sort == SORT_PUBLISHED_DESC;
        return q->status == FILTER_PUBLISHED ? "i.published_at" : "COALESCE(i.published_at, 0)";
    case SORT_UPDATED_DESC: return "i.updated_at";
    case SORT_TITLE_ASC: *descending = false; return "i.title";
    case SORT_RELEVANCE: break;
    }
    return "i.id";
}

static void sorted_sql(sql_text *sql, const search_dialect *d, const store_list_query *q)
{
    bool descending;
    const char *key = sort_key(q, &descending);
    const char *dir = descending ? "DESC" : "ASC", *op = descending ? "<" : ">";
    sql_add(sql, "SELECT " ITEM_COLUMNS ", i.body, 0 FROM (SELECT i.id AS id, %s AS k", key);
    matches_put(sql, d, q, SEARCH_TIER_ANY);
    if (q->after.present)
        sql_add(sql, " AND %s %s= :key AND (%s %s :key OR i.id %s :id)", key, op, key, op, op);
    sql_add(sql, " ORDER BY k %s, id %s LIMIT :limit) r CROSS JOIN " ITEM_FROM " WHERE i.id = r.id", dir, dir);
    sql_add(sql, " ORDER BY r.k %s, r.id %s", dir, dir);
}

/* ---- the statement -------------------------------------------------------- */

/* Binds the query of `tier` as :m<tier>, the filters, the position
 * (`after`) and the rows wanted. */
static bool search_bind(db_query *query, const search_dialect *d, const store_list_query *q, const search_query *search,
                        int tier, bool after, int rows)
{
    static const char *const names[SEARCH_TIERS] = {":m0", ":m1", ":m2", ":m3"};
    char match[SEARCH_RENDER_MAX];
    if (!d->render(search, tier, match, sizeof match))
        return false;
    db_bind_text(query, names[tier], match);
    db_bind_int(query, ":site", q->site_id);
    if (q->status != FILTER_ANY)
        db_bind_text(query, ":status", status_names[q->status]);
    if (q->type)
        db_bind_text(query, ":type", q->type);
    if (q->category)
        db_bind_text(query, ":category", q->category);
    if (q->tag)
        db_bind_text(query, ":tag", q->tag);
    if (after) {
        if (q->sort == SORT_TITLE_ASC)
            db_bind_text(query, ":key", q->after.key_text);
        else if (q->sort != SORT_RELEVANCE)
            db_bind_int(query, ":key", q->after.key_int);
        db_bind_int(query, ":id", q->after.id);
    }
    db_bind_int(query, ":limit", rows);
    return true;
}

/* A list's checks (lists.c), and for relevance a position in a tier. */
static int search_check(store_t *st, const store_list_query *q)
{
    if (q->sort != SORT_RELEVANCE)
        return list_query_check(st, q);
    if (q->after.present && (q->after.key_int < SEARCH_TIER_REST || q->after.key_int > SEARCH_TIER_TITLE))
        return db_fail(st, STORE_INVALID, "the position's rank %lld is no tier", (long long)q->after.key_int);
    store_list_query as_list = *q;
    as_list.sort = SORT_PUBLISHED_DESC;
    as_list.after.present = false;
    return list_query_check(st, &as_list);
}

/* The position of the current row in q's order. */
static bool search_position(const db_query *query, const store_list_query *q, store_keyset *k)
{
    if (q->sort != SORT_RELEVANCE)
        return list_position_of_item_row(query, q->sort, k);
    *k = (store_keyset){
        .present = true, .id = db_column_int(query, ITEM_COL_ID), .key_int = db_column_int(query, COL_RANK)};
    return true;
}

/* A page being read, over one statement or one per tier: up to
 * limit + 1 rows, the last only to know that more follow. */
typedef struct page_read {
    const store_list_query *q;
    store_hit_sink sink;
    void *arg;
    int rows;
    bool more, position_ok;
    store_keyset last;
    growbuf o;
} page_read;

/* Reads a started statement's rows into the page; ends the statement. */
static int page_rows(store_t *st, db_query *query, page_read *p)
{
    int failed = STORE_OK;
    while (failed == STORE_OK && p->position_ok && !p->more && db_next_row(query)) {
        if (p->rows == p->q->limit) {
            p->more = true;
            break;
        }
        p->rows++;
        store_search_hit hit = {.title = db_column_text(query, ITEM_COL_TITLE),
                                .excerpt = db_column_text(query, ITEM_COL_EXCERPT),
                                .body = db_column_text(query, COL_BODY),
                                .rank = db_column_int(query, COL_RANK)};
        failed = item_text_of_row(st, query, p->q->site_id, p->q->site_name, false, &p->o, &hit.row);
        if (failed == STORE_OK && !p->sink(p->arg, &hit))
            failed = db_fail(st, STORE_ERROR, "out of memory listing search hits");
        p->position_ok = search_position(query, p->q, &p->last);
    }
    int status = db_query_end(query, "searching items");
    if (failed != STORE_OK)
        return failed;
    if (status == STORE_OK && !p->position_ok)
        return db_fail(st, STORE_ERROR, "a title is too long to page by (over %zu bytes)", sizeof p->last.key_text - 1);
    return status;
}

/* One statement (tier's, or the whole query's when not ranked) into the page. */
static int page_statement(store_t *st, const search_dialect *d, const search_query *search, page_read *p, int tier,
                          bool after)
{
    sql_text sql = {.length = 0};
    if (p->q->sort == SORT_RELEVANCE)
        tier_sql(&sql, d, p->q, tier, after);
    else
        sorted_sql(&sql, d, p->q);
    if (sql.overflow)
        return db_fail(st, STORE_ERROR, "the search query does not fit its buffer");
    db_query query;
    int status = db_query_start(st, sql.text, &query);
    if (status != STORE_OK)
        return status;
    if (!search_bind(&query, d, p->q, search, tier, after, p->q->limit + 1 - p->rows)) {
        (void)db_query_end(&query, "searching items"); /* nothing ran; just release it */
        return db_fail(st, STORE_ERROR, "the search query does not fit its buffer");
    }
    return page_rows(st, &query, p);
}

int store_search_texts(store_t *st, const store_list_query *q, const search_query *search, store_hit_sink sink,
                       void *arg, store_keyset *next)
{
    db_clear_error(st);
    memset(next, 0, sizeof *next);
    int status = search_check(st, q);
    if (status != STORE_OK)
        return status;
    const search_dialect *d = dialect_of(st);
    page_read p = {.q = q, .sink = sink, .arg = arg, .position_ok = true};
    if (q->sort != SORT_RELEVANCE) {
        status = page_statement(st, d, search, &p, SEARCH_TIER_ANY, q->after.present);
    } else { /* tier by tier, until the page (and the one row more) is read */
        int top = first_tier(q);
        for (int tier = top; status == STORE_OK && !p.more && tier >= SEARCH_TIER_REST; tier--)
            status =
                page_statement(st, d, search, &p, tier, tier == top && q->after.present && q->after.key_int == tier);
    }
    growbuf_free(&p.o);
    if (status == STORE_OK && p.more)
        *next = p.last;
    return status;
}
