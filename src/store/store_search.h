/*
 * store_search.h — full-text search over items (store/search.c): a page of
 * the items matching a parsed query (core/search_query.h), with the list
 * filters of store_list_query, ranked or in one of the list sorts, keyset
 * paginated like a list.
 *
 * What is searched is each item row's public content (schema.c: the
 * published version's title, excerpt and body, or the latest saved
 * draft's while the item was never published), through SQLite FTS5 or a
 * PostgreSQL tsvector kept by the database in the transaction of every
 * write of the row. q->status decides which rows may match: a public read
 * passes FILTER_PUBLISHED, so no draft text is ever found by one.
 */
#ifndef STRATA_STORE_SEARCH_H
#define STRATA_STORE_SEARCH_H

#include "core/search_query.h"
#include "store/item_text.h"

/* One hit: its summary text (store_row_text, as a list row) and the raw
 * title, excerpt and body it matched in, for a snippet; valid while the
 * sink runs. */
typedef struct store_search_hit {
    store_row_text row;
    const char *title, *excerpt, *body;
    int64_t rank; /* relevance: its tier (SEARCH_TIER_*, search_query.h); other sorts: 0 */
} store_search_hit;

/* Called with each hit in order; false stops the read (out of memory). */
typedef bool (*store_hit_sink)(void *arg, const store_search_hit *hit);

/* The page of q (its filters, sort, limit and position; q->search set)
 * matching search, through sink; *next the position after it, present
 * only when more may follow. Relevance (SORT_RELEVANCE) orders by tier
 * (title, excerpt, the rest), then by id, both descending: the tier of a
 * row depends on the row and the query only (no corpus statistics), so a
 * position (tier, id) keeps its place while other rows come and go. One
 * statement per tier read (at most three), one for the other sorts. */
int store_search_texts(store_t *st, const store_list_query *q, const search_query *search, store_hit_sink sink,
                       void *arg, store_keyset *next);

#endif
