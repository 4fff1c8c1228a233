/*
 * item_text.c — an item row written as JSON text, with no jansson tree in
 * between, and the stamp reads the object cache keys on (item_text.h).
 *
 * Why by hand: an item miss built the item as a jansson object (one
 * allocation per member) and dumped it again, about a fifth of the miss's
 * CPU. Here the columns are appended to one buffer, reused from row to row.
 * The output must stay exactly what jansson prints (JSON_COMPACT), so the
 * escaping below is jansson's, not log.c's json_escape_into (which escapes
 * DEL and writes a bad byte as \u00XX, where jansson refuses the string):
 * '"' and '\\' escaped, \b \f \n \r \t by name, other control characters
 * as \u00XX with upper-case hex, everything else (DEL, '/', non-ASCII)
 * as it is; a string that is not valid UTF-8 fails the row, as json_string
 * fails it in item_from_row.
 *
 * The fields column is the one member parsed and dumped again through
 * jansson (a stored JSON object of any shape); it is small, and a cached
 * row (the object cache) pays it once per version.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/fmt.h"
#include "core/growbuf.h"
#include "core/utf8.h"
#include "store/item_text.h"
#include "store/store_history.h"
#include "store/store_internal.h"

/* ---- strings, as jansson writes them ------------------------------------- */

static bool plain_byte(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* s (len bytes) as a JSON string, quotes included. False if it is not UTF-8. */
static bool out_string(growbuf *o, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *u = (const unsigned char *)s;
    GROWBUF_LITERAL(o, "\"");
    size_t i = 0;
    while (i < len) {
        size_t run = i;
        while (run < len && plain_byte(u[run]))
            run++;
        growbuf_put(o, s + i, run - i);
        if ((i = run) == len)
            break;
        unsigned char c = u[i];
        if (c >= 0x80) {
            size_t n = utf8_sequence(u + i, len - i, NULL); /* what jansson's utf8_check_* accept */
            if (n == 0)
                return false;
            growbuf_put(o, s + i, n);
            i += n;
            continue;
        }
        char esc[6] = {'\\', (char)c, 0, 0, 0, 0};
        size_t esc_len = 2;
        switch (c) {
        case '"':
        case '\\': break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            esc_len = 6;
        }
        growbuf_put(o, esc, esc_len);
        i++;
    }
    GROWBUF_LITERAL(o, "\"");
    return true;
}

static bool out_text_column(growbuf *o, const db_query *q, int column)
{
    const char *text = db_column_text(q, column);
    if (text == NULL) {
        GROWBUF_LITERAL(o, "null");
        return true;
    }
    return out_string(o, text, strlen(text));
}

static void out_int_column(growbuf *o, const db_query *q, int column)
{
    if (db_column_is_null(q, column))
        GROWBUF_LITERAL(o, "null");
    else
        growbuf_put_int(o, db_column_int(q, column));
}

static void digits_put(char *at, int value, int width)
{
    for (int i = width - 1; i >= 0; i--, value /= 10)
        at[i] = (char)('0' + value % 10);
}

/* store_time_text's "YYYY-MM-DDTHH:MM:SS.mmmZ" without printf; years
 * outside 0..9999 (which %04d prints otherwise) go through it. */
static void out_time(growbuf *o, int64_t ms)
{
    int64_t seconds = ms / 1000, millis = ms % 1000;
    if (millis < 0) {
        millis += 1000;
        seconds -= 1;
    }
    time_t t = (time_t)seconds;
    struct tm utc;
    if (gmtime_r(&t, &utc) == NULL || utc.tm_year + 1900 < 0 || utc.tm_year + 1900 > 9999) {
        char text[STORE_TIME_TEXT_SIZE];
        store_time_text(ms, text);
        growbuf_put(o, "\"", 1);
        growbuf_put(o, text, strlen(text));
        growbuf_put(o, "\"", 1);
        return;
    }
    char text[] = "\"0000-00-00T00:00:00.000Z\"";
    digits_put(text + 1, utc.tm_year + 1900, 4);
    digits_put(text + 6, utc.tm_mon + 1, 2);
    digits_put(text + 9, utc.tm_mday, 2);
    digits_put(text + 12, utc.tm_hour, 2);
    digits_put(text + 15, utc.tm_min, 2);
    digits_put(text + 18, utc.tm_sec, 2);
    digits_put(text + 21, (int)millis, 3);
    growbuf_put(o, text, sizeof text - 1);
}

static void out_time_column(growbuf *o, const db_query *q, int column)
{
    if (db_column_is_null(q, column))
        GROWBUF_LITERAL(o, "null");
    else
        out_time(o, db_column_int(q, column));
}

static int tag_order(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The tags column ("b,a,c") as a sorted array, as column_tags_json. */
static bool out_tags(growbuf *o, const db_query *q)
{
    const char *text = db_column_text(q, ITEM_COL_TAGS);
    size_t len = text ? strlen(text) : 0;
    char copy[ITEM_TAGS_MAX * 65 + 1];
    const char *each[ITEM_TAGS_MAX];
    size_t n = 0;
    char *heap = len < sizeof copy ? NULL : malloc(len + 1);
    char *work = len < sizeof copy ? copy : heap;
    if (work == NULL)
        return false;
    memcpy(work, text ? text : "", len + 1);
    for (char *save = NULL, *t = strtok_r(work, ",", &save); t && n < ITEM_TAGS_MAX; t = strtok_r(NULL, ",", &save))
        each[n++] = t;
    qsort(each, n, sizeof each[0], tag_order);
    bool ok = true;
    GROWBUF_LITERAL(o, "[");
    for (size_t i = 0; i < n && ok; i++) {
        if (i > 0)
            GROWBUF_LITERAL(o, ",");
        ok = out_string(o, each[i], strlen(each[i]));
    }
    GROWBUF_LITERAL(o, "]");
    free(heap);
    return ok;
}

/* The stored fields, parsed and printed again as jansson does. */
static bool out_fields(growbuf *o, const db_query *q)
{
    const char *text = db_column_text(q, ITEM_COL_FIELDS);
    if (text != NULL && strcmp(text, "{}") == 0) {
        GROWBUF_LITERAL(o, "{}");
        return true;
    }
    json_error_t error;
    json_t *fields = text ? json_loads(text, 0, &error) : NULL;
    char *dumped = json_is_object(fields) ? json_dumps(fields, JSON_COMPACT) : NULL;
    json_decref(fields);
    if (dumped == NULL)
        return false;
    growbuf_put(o, dumped, strlen(dumped));
    free(dumped);
    return true;
}

/* ---- rows -------------------------------------------------------------- */

static int64_t column_or_null(const db_query *q, int column)
{
    return db_column_is_null(q, column) ? STORE_STAMP_NULL : db_column_int(q, column);
}

static char status_letter(const char *status)
{
    return status && status[0] ? status[0] : '?';
}

static void item_stamp_of_row(const db_query *q, int64_t site_id, bool with_body, store_stamp *stamp)
{
    memset(stamp, 0, sizeof *stamp);
    stamp->site_id = site_id;
    stamp->id = db_column_int(q, ITEM_COL_ID);
    stamp->created_at = column_or_null(q, ITEM_COL_CREATED_AT);
    stamp->updated_at = column_or_null(q, ITEM_COL_UPDATED_AT);
    stamp->published_at = column_or_null(q, ITEM_COL_PUBLISHED_AT);
    stamp->draft_version = column_or_null(q, ITEM_COL_DRAFT_VERSION);
    stamp->published_version = column_or_null(q, ITEM_COL_PUBLISHED_VERSION);
    stamp->status = status_letter(db_column_text(q, ITEM_COL_STATUS));
    stamp->kind = with_body ? STORE_STAMP_ITEM : STORE_STAMP_SUMMARY;
}

/* The members of item_from_row in its order, as "key":value pairs. */
static bool out_members(growbuf *o, const db_query *q, const char *site_name, bool with_body, size_t *views_at)
{
    bool ok = true;
    GROWBUF_LITERAL(o, "{\"id\":");
    growbuf_put_int(o, db_column_int(q, ITEM_COL_ID));
    GROWBUF_LITERAL(o, ",\"site\":");
    ok = ok && out_string(o, site_name, strlen(site_name));
    GROWBUF_LITERAL(o, ",\"type\":");
    ok = ok && out_text_column(o, q, ITEM_COL_TYPE);
    GROWBUF_LITERAL(o, ",\"slug\":");
    ok = ok && out_text_column(o, q, ITEM_COL_SLUG);
    GROWBUF_LITERAL(o, ",\"status\":");
    ok = ok && out_text_column(o, q, ITEM_COL_STATUS);
    GROWBUF_LITERAL(o, ",\"title\":");
    ok = ok && out_text_column(o, q, ITEM_COL_TITLE);
    GROWBUF_LITERAL(o, ",\"excerpt\":");
    ok = ok && out_text_column(o, q, ITEM_COL_EXCERPT);
    if (with_body) {
        GROWBUF_LITERAL(o, ",\"body\":");
        ok = ok && out_text_column(o, q, ITEM_COL_EXTRA);
    }
    GROWBUF_LITERAL(o, ",\"fields\":");
    ok = ok && out_fields(o, q);
    GROWBUF_LITERAL(o, ",\"category\":");
    ok = ok && out_text_column(o, q, ITEM_COL_CATEGORY);
    GROWBUF_LITERAL(o, ",\"tags\":");
    ok = ok && out_tags(o, q);
    GROWBUF_LITERAL(o, ",\"author\":");
    ok = ok && out_text_column(o, q, ITEM_COL_AUTHOR);
    GROWBUF_LITERAL(o, ",\"created_at\":");
    out_time_column(o, q, ITEM_COL_CREATED_AT);
    GROWBUF_LITERAL(o, ",\"updated_at\":");
    out_time_column(o, q, ITEM_COL_UPDATED_AT);
    GROWBUF_LITERAL(o, ",\"published_at\":");
    out_time_column(o, q, ITEM_COL_PUBLISHED_AT);
    GROWBUF_LITERAL(o, ",\"views\":");
    if (db_column_is_null(q, ITEM_COL_VIEWS)) {
        GROWBUF_LITERAL(o, "null");
        *views_at = STORE_TEXT_NO_VIEWS;
    } else {
        *views_at = o->len;
    }
    GROWBUF_LITERAL(o, ",\"draft_version\":");
    out_int_column(o, q, ITEM_COL_DRAFT_VERSION);
    GROWBUF_LITERAL(o, ",\"published_version\":");
    out_int_column(o, q, ITEM_COL_PUBLISHED_VERSION);
    GROWBUF_LITERAL(o, "}");
    return ok;
}

int item_text_of_row(store_t *st, const db_query *q, int64_t site_id, const char *site_name, bool with_body, growbuf *o,
                     store_row_text *row)
{
    o->len = 0;
    o->failed = false;
    size_t views_at = STORE_TEXT_NO_VIEWS;
    bool ok = out_members(o, q, site_name, with_body, &views_at);
    if (o->failed)
        return db_fail(st, STORE_ERROR, "out of memory writing an item");
    if (!ok)
        return db_fail(st, STORE_ERROR, "the item could not be read (damaged fields?)");
    item_stamp_of_row(q, site_id, with_body, &row->stamp);
    row->views = db_column_is_null(q, ITEM_COL_VIEWS) ? 0 : db_column_int(q, ITEM_COL_VIEWS);
    row->text = o->data;
    row->len = o->len;
    row->views_at = views_at;
    return STORE_OK;
}

/* ---- reads ------------------------------------------------------------- */

/* The stamp's columns, in the order item_stamp_of_columns reads them. */
#define STAMP_COLUMNS                                                                                                  \
    "i.id, i.created_at, i.updated_at, i.published_at, i.draft_version, i.published_version, i.status, i.views"

void item_stamp_of_columns(const db_query *q, int64_t site_id, store_stamp *stamp, int64_t *views)
{
    memset(stamp, 0, sizeof *stamp);
    stamp->site_id = site_id;
    stamp->id = db_column_int(q, 0);
    stamp->created_at = column_or_null(q, 1);
    stamp->updated_at = column_or_null(q, 2);
    stamp->published_at = column_or_null(q, 3);
    stamp->draft_version = column_or_null(q, 4);
    stamp->published_version = column_or_null(q, 5);
    stamp->status = status_letter(db_column_text(q, 6));
    *views = db_column_is_null(q, 7) ? 0 : db_column_int(q, 7);
}

const char item_stamp_columns[] = STAMP_COLUMNS;

static int item_not_found(store_t *st, const char *site_name, const store_item_key *key, bool published_only)
{
    const char *published = published_only ? "published " : "";
    if (key->slug != NULL)
        return db_fail(st, STORE_NOT_FOUND, "no %sitem of type '%s' with slug '%s' in site '%s'", published, key->type,
                       key->slug, site_name);
    return db_fail(st, STORE_NOT_FOUND, "no %sitem %lld in site '%s'", published, (long long)key->id, site_name);
}

/* Starts the statement of sql_by_id or sql_by_slug, as key says, bound. */
static int key_query_start(store_t *st, const char *sql_by_id, const char *sql_by_slug, int64_t site_id,
                           const store_item_key *key, bool published_only, db_query *q)
{
    int status = db_query_start(st, key->slug ? sql_by_slug : sql_by_id, q);
    if (status != STORE_OK)
        return status;
    db_bind_int(q, ":site", site_id);
    db_bind_int(q, ":any_status", !published_only);
    if (key->slug != NULL) {
        db_bind_text(q, ":type", key->type);
        db_bind_text(q, ":slug", key->slug);
    } else {
        db_bind_int(q, ":id", key->id);
    }
    return STORE_OK;
}

#define BY_ID " WHERE i.id = :id AND i.site_id = :site AND (:any_status = 1 OR i.status = 'published')"
#define BY_SLUG                                                                                                        \
    " WHERE i.site_id = :site AND i.type = :type AND i.slug = :slug AND (:any_status = 1 OR i.status = 'published')"

int store_item_stamp(store_t *st, int64_t site_id, const char *site_name, const store_item_key *key,
                     bool published_only, store_stamp *stamp, int64_t *views)
{
    db_clear_error(st);
    db_query q;
    int status = key_query_start(st, "SELECT " STAMP_COLUMNS " FROM items i" BY_ID,
                                 "SELECT " STAMP_COLUMNS " FROM items i" BY_SLUG, site_id, key, published_only, &q);
    if (status != STORE_OK)
        return status;
    bool found = db_next_row(&q);
    if (found)
        item_stamp_of_columns(&q, site_id, stamp, views);
    status = db_query_end(&q, "reading the item");
    if (status == STORE_OK && !found)
        return item_not_found(st, site_name, key, published_only);
    return status;
}

int store_item_text(store_t *st, int64_t site_id, const char *site_name, const store_item_key *key, bool published_only,
                    store_item_sink sink, void *arg)
{
    db_clear_error(st);
    db_query q;
    int status =
        key_query_start(st, "SELECT " ITEM_COLUMNS ", i.body FROM " ITEM_FROM BY_ID,
                        "SELECT " ITEM_COLUMNS ", i.body FROM " ITEM_FROM BY_SLUG, site_id, key, published_only, &q);
    if (status != STORE_OK)
        return status;
    growbuf o = {0};
    int failed = STORE_OK;
    bool found = db_next_row(&q);
    if (found) {
        store_row_text row;
        failed = item_text_of_row(st, &q, site_id, site_name, true, &o, &row);
        if (failed == STORE_OK && !sink(arg, &row))
            failed = db_fail(st, STORE_ERROR, "out of memory reading the item");
    }
    status = db_query_end(&q, "reading the item");
    growbuf_free(&o);
    if (failed != STORE_OK)
        return failed;
    if (status == STORE_OK && !found)
        return item_not_found(st, site_name, key, published_only);
    return status;
}

/* "… AND i.id IN (:i0, :i1, …)" for n ids: one SQL text per n, so at most
 * STORE_TEXT_BATCH_MAX statements in the cache. */
static void texts_sql(size_t n, bool with_body, char *sql, size_t size)
{
    static const char head_body[] = "SELECT " ITEM_COLUMNS ", i.body FROM " ITEM_FROM
                                    " WHERE i.site_id = :site AND (:any_status = 1 OR i.status = 'published')"
                                    " AND i.id IN (";
    static const char head[] = "SELECT " ITEM_COLUMNS " FROM " ITEM_FROM
                               " WHERE i.site_id = :site AND (:any_status = 1 OR i.status = 'published')"
                               " AND i.id IN (";
    const char *start = with_body ? head_body : head;
    size_t len = strlen(start);
    memcpy(sql, start, len);
    for (size_t i = 0; i < n && len + 32 < size; i++) {
        if (i > 0)
            sql[len++] = ',';
        sql[len++] = ':';
        sql[len++] = 'i';
        char digits[24];
        size_t d = fmt_u64(digits, i);
        memcpy(sql + len, digits, d);
        len += d;
    }
    sql[len++] = ')';
    sql[len] = '\0';
}

int store_item_texts(store_t *st, int64_t site_id, const char *site_name, const int64_t *ids, size_t n, bool with_body,
                     bool published_only, store_item_sink sink, void *arg)
{
    db_clear_error(st);
    if (n == 0)
        return STORE_OK;
    if (n > STORE_TEXT_BATCH_MAX)
        return db_fail(st, STORE_INVALID, "at most %d items at once", STORE_TEXT_BATCH_MAX);
    char sql[4096];
    texts_sql(n, with_body, sql, sizeof sql);
    db_query q;
    int status = db_query_start(st, sql, &q);
    if (status != STORE_OK)
        return status;
    db_bind_int_at(&q, 1, site_id);
    db_bind_int_at(&q, 2, !published_only);
    for (size_t i = 0; i < n; i++)
        db_bind_int_at(&q, (int)i + 3, ids[i]);
    growbuf o = {0};
    int failed = STORE_OK;
    while (failed == STORE_OK && db_next_row(&q)) {
        store_row_text row;
        failed = item_text_of_row(st, &q, site_id, site_name, with_body, &o, &row);
        if (failed == STORE_OK && !sink(arg, &row))
            failed = db_fail(st, STORE_ERROR, "out of memory reading items");
    }
    status = db_query_end(&q, "reading items");
    growbuf_free(&o);
    return failed != STORE_OK ? failed : status;
}
