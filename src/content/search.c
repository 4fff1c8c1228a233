/*
 * search.c — full-text search on the list route: GET /v1/{site}/content?q=
 * (docs/api.md, "Search").
 *
 * handle_list (reads.c) reads the list's filters, sort, limit and cursor
 * as for any page; ?q= adds a query, parsed here (core/search_query.h:
 * a bad one is a 400 naming what and where), and the page comes from
 * store_search_texts instead of the list. The default sort is
 * "relevance": by rank with q, the list's own -published_at without (one
 * cache key for the absent parameter and its default means one answer).
 * The parsed query's canonical text joins the filters a cursor is bound
 * to (cursor.c), so a cursor of one query is refused by another.
 *
 * A page is a list page ({"items":[…],"next_cursor":…}) whose items carry
 * one more member, "snippet": where the query matched, marked «…»
 * (search_snippet). It is cached as a list page is, under the same tags
 * (api_tag_list: every write of an item drops every list page of its
 * site, search pages included), so an unpublished item leaves the results
 * with the write that unpublished it. An empty first page is negative
 * (reads.c): any client can ask for a new query.
 *
 * Searches skip the object cache: a hit's text carries its snippet,
 * which depends on the query, and its rows come with the ranking
 * statement anyway.
 */
#include <stdlib.h>
#include <string.h>

#include "content/api.h"
#include "core/growbuf.h"
#include "store/store_search.h"

bool api_search_read(api_ctx *c, search_query *sq, char canonical[SEARCH_RENDER_MAX], const char **search)
{
    char text[SEARCH_QUERY_MAX_BYTES + 1];
    const char *value;
    *search = NULL;
    if (!api_query_param(c, &list_params[LIST_PARAM_Q], text, sizeof text, &value))
        return false;
    if (value[0] == '\0') /* absent, or empty as its default: no search */
        return true;
    char detail[256];
    if (!search_query_parse(value, strlen(value), sq, detail, sizeof detail)) {
        http_problem(c->res, c->req, 400, "bad_query", "query parameter 'q': %s", detail);
        return false;
    }
    if (!search_query_fts5(sq, SEARCH_TIER_ANY, canonical, SEARCH_RENDER_MAX)) {
        http_problem(c->res, c->req, 400, "bad_query", "query parameter 'q' is too complex to search for");
        return false;
    }
    *search = canonical;
    return true;
}

/* ---- the page ---------------------------------------------------------------- */

typedef struct hits_fill {
    const search_query *sq;
    growbuf *body;
    size_t count;
} hits_fill;

/* The snippet as a JSON string; "" when it cannot be encoded. */
static void body_put_snippet(growbuf *body, const char *snippet)
{
    json_t *s = json_string(snippet);
    char *text = s != NULL ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    if (text != NULL)
        growbuf_put(body, text, strlen(text));
    else
        GROWBUF_LITERAL(body, "\"\"");
    free(text);
    json_decref(s);
}

/* A hit: its summary (views written in), "snippet" added as its last member. */
static bool hit_put(void *arg, const store_search_hit *hit)
{
    hits_fill *f = arg;
    const store_row_text *row = &hit->row;
    if (row->len < 2 || row->text[row->len - 1] != '}')
        return false;
    size_t end = row->len - 1;
    if (f->count++ > 0)
        GROWBUF_LITERAL(f->body, ",");
    if (row->views_at != STORE_TEXT_NO_VIEWS && row->views_at < end) {
        growbuf_put(f->body, row->text, row->views_at);
        growbuf_put_int(f->body, row->views);
        growbuf_put(f->body, row->text + row->views_at, end - row->views_at);
    } else {
        growbuf_put(f->body, row->text, end);
    }
    char snippet[SEARCH_SNIPPET_MAX];
    search_snippet(f->sq, hit->title, hit->excerpt, hit->body, snippet);
    GROWBUF_LITERAL(f->body, ",\"snippet\":");
    body_put_snippet(f->body, snippet);
    GROWBUF_LITERAL(f->body, "}");
    return !f->body->failed;
}

int api_search_list_read(api_ctx *c, const store_list_query *q, const search_query *sq, size_t *count)
{
    growbuf body = {0};
    store_keyset next = {0};
    hits_fill f = {.sq = sq, .body = &body};
    GROWBUF_LITERAL(&body, "{\"items\":[");
    int rc = store_search_texts(c->store, q, sq, hit_put, &f, &next);
    *count = f.count;
    if (rc != STORE_OK) {
        growbuf_free(&body);
        return rc;
    }
    GROWBUF_LITERAL(&body, "],\"next_cursor\":");
    if (next.present) {
        char cursor[CURSOR_TEXT_MAX]; /* base64url (cursor.c): no escape needed */
        api_cursor_encode(q, &next, cursor);
        GROWBUF_LITERAL(&body, "\"");
        growbuf_put(&body, cursor, strlen(cursor));
        GROWBUF_LITERAL(&body, "\"");
    } else {
        GROWBUF_LITERAL(&body, "null");
    }
    GROWBUF_LITERAL(&body, "}");
    if (body.failed) {
        growbuf_free(&body);
        http_problem(c->res, c->req, 500, "internal", "the response could not be serialised");
        return STORE_OK;
    }
    http_response_body(c->res, 200, "application/json", body.data, body.len);
    return STORE_OK;
}
