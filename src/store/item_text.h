/*
 * item_text.h — items as JSON text straight from their rows, and the
 * stamps that name one version of a row: what the object cache (content's
 * objects.c over cache/objects.h) keys on.
 *
 * The text is byte for byte what api_send_json prints for item_from_row's
 * object (compact jansson: same members, same order, same escapes), so
 * ETags and clients see no difference; test_item_text.c compares the two
 * over tricky strings. A row whose text jansson would refuse (a stored
 * string that is not UTF-8, fields that are not an object) is refused here
 * too, as the same STORE_ERROR.
 */
#ifndef STRATA_STORE_ITEM_TEXT_H
#define STRATA_STORE_ITEM_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* One version of an item's representation, its views count apart: the
 * columns that every change of the row's JSON changes (a save moves
 * draft_version and updated_at, a publish published_version, updated_at
 * and maybe published_at, an unpublish status and updated_at; content,
 * tags and category change only with a save or a publish; created_at tells
 * a new item from a deleted one whose id was reused). docs/caching.md,
 * "The object cache", gives the whole argument. Compared and hashed as
 * bytes: always built from a zeroed struct. A NULL column reads as
 * STORE_STAMP_NULL. */
#define STORE_STAMP_NULL INT64_MIN
enum store_stamp_kind {
    STORE_STAMP_SUMMARY, /* the item without its body (list pages) */
    STORE_STAMP_ITEM,    /* the full item */
    STORE_STAMP_DRAFT,   /* its draft (store_draft_head) */
};
typedef struct store_stamp {
    int64_t site_id, id, created_at, updated_at, published_at, draft_version, published_version;
    char status; /* the status' first letter: d, p, a */
    char kind;   /* enum store_stamp_kind */
    char pad[6]; /* zero */
} store_stamp;

/* No splice: the text holds its own views value (a NULL column). */
#define STORE_TEXT_NO_VIEWS ((size_t)-1)

/* An item's JSON text with its views count cut out at views_at: the text
 * is the same for every count, and the count is written in when it is
 * sent (lists.c counts views without touching anything else of the row). */
typedef struct store_row_text {
    store_stamp stamp;
    int64_t views;
    const char *text; /* valid while the sink runs */
    size_t len, views_at;
} store_row_text;

/* Called with each row in order; false stops the read (out of memory). */
typedef bool (*store_item_sink)(void *arg, const store_row_text *row);

/* An item's address: its id, or (slug not NULL) its type and slug. */
typedef struct store_item_key {
    int64_t id;
    const char *type, *slug;
} store_item_key;

/* The stamp and views count of the item at key (published_only: only if
 * it is published). One indexed statement; STORE_NOT_FOUND if there is
 * none, with store_item_get's (or _by_slug's) message. */
int store_item_stamp(store_t *st, int64_t site_id, const char *site_name, const store_item_key *key,
                     bool published_only, store_stamp *stamp, int64_t *views);

/* The full text of the item at key through sink: store_item_get's (or
 * _by_slug's) read, one statement, STORE_NOT_FOUND (and its message) alike. */
int store_item_text(store_t *st, int64_t site_id, const char *site_name, const store_item_key *key, bool published_only,
                    store_item_sink sink, void *arg);

/* The text of each of the items ids[0..n) that exists (and is published,
 * if published_only), in no set order, through sink. One statement; n is
 * at most STORE_TEXT_BATCH_MAX. */
enum { STORE_TEXT_BATCH_MAX = 101 };
int store_item_texts(store_t *st, int64_t site_id, const char *site_name, const int64_t *ids, size_t n, bool with_body,
                     bool published_only, store_item_sink sink, void *arg);

/* A list page as stamps (summaries) and views: up to q->limit of them in
 * stamps[] and views[], *n of them. *next: the position after the last
 * one, present only when more rows may follow (the store fetches
 * limit + 1). STORE_INVALID for a limit outside 1..100. */
int store_list_stamps(store_t *st, const store_list_query *q, store_stamp *stamps, int64_t *views, size_t *n,
                      store_keyset *next);

/* A list page as summary texts, in order, through sink; *next as for
 * store_list_stamps. One statement. */
int store_item_list_texts(store_t *st, const store_list_query *q, store_item_sink sink, void *arg, store_keyset *next);

/* An item's draft as editors read it (GET …/draft, store_item_get_draft
 * in two steps): the head is one statement and names the draft's text.
 * A version never changes once written, so that text is fixed by the
 * draft's version number and the item's status and published version
 * (its type, author and time are the version's own); the item's
 * created_at tells a reused id apart. */
typedef struct store_draft_head {
    store_stamp stamp; /* kind STORE_STAMP_DRAFT */
    char type[64];
    char status[16];
    char author[65];
    int64_t saved_at;
} store_draft_head;
/* STORE_NOT_FOUND as store_item_get_draft. */
int store_item_draft_head(store_t *st, int64_t site_id, const char *site_name, int64_t id, store_draft_head *head);
/* The draft's JSON (the version decoded, as store_item_get_draft). */
int store_item_draft_json(store_t *st, const char *site_name, const store_draft_head *head, json_t **draft);

#endif
