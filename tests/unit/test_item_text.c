/*
 * test_item_text.c — the item rows' JSON text (src/store/item_text.c)
 * against jansson's, and the stamps the object cache keys on, on the
 * driver STRATA_TEST_DB_URL names (store_fixture.h).
 *
 * The text must be byte for byte what api_send_json printed for
 * item_from_row's object (json_dumps, JSON_COMPACT; store_item_get still
 * builds it, for the writes' answers), or ETags change and
 * clients see other bytes: each item here is read both ways and compared,
 * over strings chosen to break a hand-written escaper (quotes, backslashes,
 * every kind of control character, DEL, '/', 2-, 3- and 4-byte UTF-8, the
 * line separators), fields stored in another formatting, far times, and
 * text that is not UTF-8 (refused by both).
 */
/* cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/item_text.h"
#include "store/store.h"
#include "store_fixture.h"

typedef struct fixture {
    char path[FIXTURE_WHERE_SIZE];
    store_t *st;
    int64_t site_id;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fixture_db_create(f->path);
    assert_int_equal(store_open(f->path, &f->st), STORE_OK);
    assert_int_equal(store_migrate(f->st, NULL), STORE_OK);
    assert_int_equal(store_site_create(f->st, "main", &f->site_id), STORE_OK);
    json_t *categories = NULL;
    assert_int_equal(store_category_create(f->st, f->site_id, "news", "News", NULL, &categories), STORE_OK);
    json_decref(categories);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_close(&f->st);
    fixture_db_remove(f->path);
    free(f);
    return 0;
}

/* ---- reading both ways ----------------------------------------------------- */

/* A row's text with its views written in, as objects.c sends it. */
typedef struct texts {
    char *text[8];
    store_stamp stamp[8];
    size_t n;
} texts;

static bool collect(void *arg, const store_row_text *row)
{
    texts *t = arg;
    assert_true(t->n < 8);
    char views[32];
    int vlen = snprintf(views, sizeof views, "%lld", (long long)row->views);
    size_t at = row->views_at == STORE_TEXT_NO_VIEWS ? row->len : row->views_at;
    size_t extra = row->views_at == STORE_TEXT_NO_VIEWS ? 0 : (size_t)vlen;
    char *s = malloc(row->len + extra + 1);
    assert_non_null(s);
    memcpy(s, row->text, at);
    memcpy(s + at, views, extra);
    memcpy(s + at + extra, row->text + at, row->len - at);
    s[row->len + extra] = '\0';
    t->stamp[t->n] = row->stamp;
    t->text[t->n++] = s;
    return true;
}

static void texts_free(texts *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->text[i]);
    t->n = 0;
}

/* The item by both paths: the same bytes. */
static void assert_item_same(fixture *f, int64_t id)
{
    json_t *item = NULL;
    assert_int_equal(store_item_get(f->st, f->site_id, "main", id, false, &item), STORE_OK);
    char *expected = json_dumps(item, JSON_COMPACT);
    json_decref(item);
    texts t = {0};
    assert_int_equal(store_item_text(f->st, f->site_id, "main", &(store_item_key){.id = id}, false, collect, &t),
                     STORE_OK);
    assert_int_equal(t.n, 1);
    assert_string_equal(t.text[0], expected);
    texts_free(&t);
    /* by type and slug: the same read */
    json_t *copy = json_loads(expected, 0, NULL);
    store_item_key by_slug = {.type = json_string_value(json_object_get(copy, "type")),
                              .slug = json_string_value(json_object_get(copy, "slug"))};
    assert_int_equal(store_item_text(f->st, f->site_id, "main", &by_slug, false, collect, &t), STORE_OK);
    assert_int_equal(t.n, 1);
    assert_string_equal(t.text[0], expected);
    texts_free(&t);
    json_decref(copy);
    free(expected);
}

/* A list page's summaries: each the jansson item without its body, byte
 * for byte (a summary is the item's members in the same order, less the
 * body). */
static void assert_list_same(fixture *f)
{
    store_list_query q = {
        .site_id = f->site_id, .site_name = "main", .status = FILTER_ANY, .sort = SORT_UPDATED_DESC, .limit = 8};
    store_keyset next;
    texts t = {0};
    assert_int_equal(store_item_list_texts(f->st, &q, collect, &t, &next), STORE_OK);
    assert_true(t.n > 0);
    for (size_t i = 0; i < t.n; i++) {
        json_t *item = NULL;
        assert_int_equal(store_item_get(f->st, f->site_id, "main", t.stamp[i].id, false, &item), STORE_OK);
        assert_int_equal(json_object_del(item, "body"), 0);
        char *expected = json_dumps(item, JSON_COMPACT);
        assert_string_equal(t.text[i], expected);
        free(expected);
        json_decref(item);
    }
    texts_free(&t);
}

static int64_t item_make(fixture *f, const char *slug, const char *title, const char *excerpt, const char *body,
                         const char **tags, size_t tag_count)
{
    json_t *fields = json_pack("{s:s, s:f, s:[i, s, n, b], s:{s:s}}", "quote", "a\"b\\c\x01/\x7f", "pi", 3.25, "list",
                               7, "\xe2\x80\xa8", "nested", "k", "\xf0\x9f\x98\x80");
    store_edit_t edit = {.type = "post",
                         .slug = slug,
                         .title = title,
                         .excerpt = excerpt,
                         .body = body,
                         .fields = fields,
                         .has_category = true,
                         .category = "news",
                         .has_tags = tags != NULL,
                         .tags = tags,
                         .tag_count = tag_count};
    json_t *draft = NULL;
    if (store_item_create(f->st, f->site_id, "main", &edit, "al\"ice", &draft) != STORE_OK)
        fail_msg("create: %s", store_errmsg(f->st));
    int64_t id = json_integer_value(json_object_get(draft, "id"));
    json_decref(draft);
    json_decref(fields);
    return id;
}

/* ---- tests --------------------------------------------------------------- */

static void test_text_is_jansson_byte_for_byte(void **state)
{
    fixture *f = *state;
    const char *tags[] = {"zeta", "alpha", "\xc3\xa9t\xc3\xa9", "b-2"};
    int64_t a = item_make(f, "tricky", "Quote \" back \\ slash / del \x7f", "ctl \b\f\n\r\t \x01\x1f end",
                          "2-byte \xc3\xa9 3-byte \xe2\x82\xac 4-byte \xf0\x9f\x98\x80 ls \xe2\x80\xa8", tags, 4);
    int64_t b = item_make(f, "plain", "Plain", "", "", NULL, 0);
    assert_item_same(f, a);
    assert_item_same(f, b);
    json_t *published = NULL;
    assert_int_equal(store_item_publish(f->st, f->site_id, "main", a, 0, "ed", &published), STORE_OK);
    json_decref(published);
    assert_int_equal(store_views_add(f->st, f->site_id, a, 12345, store_now_ms()), STORE_OK);
    assert_item_same(f, a);
    assert_list_same(f);
}

static void test_odd_stored_fields_and_far_times_match(void **state)
{
    fixture *f = *state;
    int64_t id = item_make(f, "odd", "Odd", "", "", NULL, 0);
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE items SET fields = '{\"b\" : 1.5e3, \"a\": [ \"\\u00e9\\u0001\" , {} ], \"c\":null}', "
             "created_at = -62135596800001, updated_at = 253402300800000 WHERE id = %lld",
             (long long)id);
    fixture_db_exec(f->path, sql);
    assert_item_same(f, id);
    assert_list_same(f);
}

static void test_text_jansson_refuses_is_refused(void **state)
{
    fixture *f = *state;
    FIXTURE_SQLITE_ONLY(); /* PostgreSQL stores no invalid UTF-8 */
    int64_t id = item_make(f, "bad", "Bad", "", "", NULL, 0);
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE items SET title = CAST(X'41ff42' AS TEXT) WHERE id = %lld", (long long)id);
    fixture_db_exec(f->path, sql);
    json_t *item = NULL;
    assert_int_equal(store_item_get(f->st, f->site_id, "main", id, false, &item), STORE_ERROR);
    texts t = {0};
    assert_int_equal(store_item_text(f->st, f->site_id, "main", &(store_item_key){.id = id}, false, collect, &t),
                     STORE_ERROR);
    assert_int_equal(t.n, 0);
    snprintf(sql, sizeof sql, "UPDATE items SET title = CAST(X'eda080' AS TEXT) WHERE id = %lld", (long long)id);
    fixture_db_exec(f->path, sql); /* a surrogate, encoded: not UTF-8 either */
    assert_int_equal(store_item_text(f->st, f->site_id, "main", &(store_item_key){.id = id}, false, collect, &t),
                     STORE_ERROR);
}

static store_stamp stamp_of(fixture *f, int64_t id, int64_t *views)
{
    store_stamp s;
    assert_int_equal(store_item_stamp(f->st, f->site_id, "main", &(store_item_key){.id = id}, false, &s, views),
                     STORE_OK);
    return s;
}

static bool stamp_same(const store_stamp *a, const store_stamp *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

/* Every write that changes what the item shows changes its stamp; counting
 * views does not (they are written in at send time). */
static void test_stamp_moves_with_every_change_but_views(void **state)
{
    fixture *f = *state;
    int64_t id = item_make(f, "stamped", "Stamped", "", "", NULL, 0), views;
    store_stamp s0 = stamp_of(f, id, &views);
    texts t = {0};
    assert_int_equal(store_item_text(f->st, f->site_id, "main", &(store_item_key){.id = id}, false, collect, &t),
                     STORE_OK);
    store_stamp from_row = t.stamp[0];
    from_row.kind = STORE_STAMP_SUMMARY;
    assert_true(stamp_same(&s0, &from_row)); /* the stamp read and the row's own agree */
    texts_free(&t);

    store_edit_t edit = {.title = "Saved", .has_tags = true, .tags = (const char *[]){"x"}, .tag_count = 1};
    json_t *doc = NULL;
    assert_int_equal(store_item_save_draft(f->st, f->site_id, "main", id, 0, &edit, "bob", &doc, NULL), STORE_OK);
    json_decref(doc);
    store_stamp s1 = stamp_of(f, id, &views);
    assert_false(stamp_same(&s0, &s1));
    assert_int_equal(store_item_publish(f->st, f->site_id, "main", id, 0, "ed", &doc), STORE_OK);
    json_decref(doc);
    store_stamp s2 = stamp_of(f, id, &views);
    assert_false(stamp_same(&s1, &s2));
    assert_int_equal(store_views_add(f->st, f->site_id, id, 5, store_now_ms()), STORE_OK);
    store_stamp s3 = stamp_of(f, id, &views);
    assert_true(stamp_same(&s2, &s3));
    assert_int_equal(views, 5);
    assert_int_equal(store_item_unpublish(f->st, f->site_id, "main", id, false, &doc), STORE_OK);
    json_decref(doc);
    store_stamp s4 = stamp_of(f, id, &views);
    assert_false(stamp_same(&s3, &s4));
    assert_int_equal(store_item_stamp(f->st, f->site_id, "main", &(store_item_key){.id = id}, true, &s4, &views),
                     STORE_NOT_FOUND);
    assert_string_equal(store_errmsg(f->st), "no published item 1 in site 'main'");
    store_item_key by_slug = {.type = "post", .slug = "stamped"};
    assert_int_equal(store_item_stamp(f->st, f->site_id, "main", &by_slug, true, &s4, &views), STORE_NOT_FOUND);
    assert_string_equal(store_errmsg(f->st), "no published item of type 'post' with slug 'stamped' in site 'main'");
    assert_int_equal(store_item_delete(f->st, f->site_id, id), STORE_OK);
    assert_int_equal(store_item_stamp(f->st, f->site_id, "main", &(store_item_key){.id = id}, false, &s4, &views),
                     STORE_NOT_FOUND);
}

/* A list page's stamps are its rows' stamps, in the page's order, with
 * the same next position as the full list. */
static void test_list_stamps_are_the_rows_stamps(void **state)
{
    fixture *f = *state;
    int64_t ids[5];
    char slug[16];
    for (int i = 0; i < 5; i++) {
        snprintf(slug, sizeof slug, "s%d", i);
        ids[i] = item_make(f, slug, slug, "", "", NULL, 0);
    }
    store_list_query q = {
        .site_id = f->site_id, .site_name = "main", .status = FILTER_ANY, .sort = SORT_TITLE_ASC, .limit = 3};
    store_stamp stamps[3];
    int64_t views[3];
    size_t n = 0;
    store_keyset next, next_text;
    assert_int_equal(store_list_stamps(f->st, &q, stamps, views, &n, &next), STORE_OK);
    texts t = {0};
    assert_int_equal(store_item_list_texts(f->st, &q, collect, &t, &next_text), STORE_OK);
    assert_int_equal(n, 3);
    assert_int_equal(t.n, 3);
    for (size_t i = 0; i < n; i++)
        assert_true(stamp_same(&stamps[i], &t.stamp[i]));
    assert_int_equal(stamps[0].id, ids[0]);
    assert_true(next.present);
    assert_string_equal(next.key_text, next_text.key_text);
    assert_int_equal(next.id, next_text.id);
    texts_free(&t);
    /* the rows by id, in one read, are the same rows */
    int64_t want[] = {ids[4], ids[1], 999999};
    assert_int_equal(store_item_texts(f->st, f->site_id, "main", want, 3, false, false, collect, &t), STORE_OK);
    assert_int_equal(t.n, 2);
    texts_free(&t);
    assert_int_equal(store_item_texts(f->st, f->site_id, "main", want, 3, false, true, collect, &t), STORE_OK);
    assert_int_equal(t.n, 0); /* none is published */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_text_is_jansson_byte_for_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_odd_stored_fields_and_far_times_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_jansson_refuses_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stamp_moves_with_every_change_but_views, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_stamps_are_the_rows_stamps, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
