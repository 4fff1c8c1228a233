/*
 * field_filters.c — declared custom fields: their declarations, their
 * indexes, and the part of a list query that filters on them.
 *
 * An item's `fields` is a free JSON object; a list may filter on one of
 * its members only when an operator declared it for the site and type
 * (store_fields.h), so a public list never reads every item of a site to
 * look inside each. Declaring a field creates an expression index
 *
 *   items_field_<kind>_<name> ON items(site_id, type, status, EXPR,
 *                                      published_at DESC, id DESC)
 *
 * where EXPR is the driver's typed reading of the member
 * (DB_SQL_FIELD_*: SQLite's json_type/json_extract, PostgreSQL's
 * json_typeof/->>): a number for a JSON number, 1 or 0 for true or false,
 * a text for a string, NULL for anything else — so a price stored as the
 * string "12" is not a number and never matches a number filter, and
 * numbers compare as numbers on both engines. The index is not partial on
 * the site and type: a partial index is used only when the query names
 * the same literals, and values are bound here, never pasted; site and
 * type lead its columns instead. One index serves every declaration of a
 * kind and name (other sites, other types), and goes with the last.
 *
 * The columns after EXPR make the common case an ordered walk: equalities
 * on fields with a sort by published_at read limit + 1 entries of one
 * field's index in order, sort nothing. Any other filter ([gt], [gte],
 * [lt], [lte], [in]) or another sort reads the matches from the field's
 * index and sorts them (field_filters_read_matches): lists.c writes the
 * sort key so that no index holds its order (key + 0, title || ''), and
 * the engine has no ordered walk to hope on. Without that, PostgreSQL's
 * generic plan (plan_cache_mode = force_generic_plan, db_postgres.c)
 * cannot know a bound value's selectivity (1/3 for `expr >= $n`), walks
 * the type's published order and reads `fields` row by row until it has
 * a page: on 10,000 seeded items (EXPLAIN ANALYZE) `reading_minutes
 * [gte]=40` (3 % of posts) took 4.4 ms that way, 0.6 ms from the index; a
 * range or [in] matching nothing walked every post (15 ms, 25 ms), against
 * 0.05 ms. The cost moves to a range matching nearly everything (`[gte]=0`:
 * 15 ms reading and sorting every post, where the walk met a page at
 * once). Either way the bound is the site's items of the type; now only a
 * filter that matches most of them pays it, and which plan runs no longer
 * rests on an estimate: even for a site of one type, all published (the
 * generic estimate then a third of the table), the plan stays a bitmap
 * scan of the field's index (0.5 ms), not a scan of the table. With a
 * tag (or category) the engine drives from whichever of its rows and the
 * field's matches it estimates fewer: a range counts as a third of the
 * type, so a tag narrower than that drives (716 tag rows against 9,500
 * posts: 14 ms cold on a loaded machine, whatever the range). Rejected:
 * pairing a range with its opposite bound (`expr <= +Infinity`, which
 * PostgreSQL estimates at 0.5 %) has no sentinel for texts, nor helps an
 * [in] or another sort, and would make the field's index drive even
 * when the range matches every post and the tag few; a per-statement
 * custom plan costs a round trip to switch plan_cache_mode.
 *
 * A range on one field, with no tag or category, in the published order,
 * is read value by value: its distinct values first, one seek each
 * (the first match, then the first entry past each value found), then a
 * SELECT per value, each an equality and so an ordered walk of the index,
 * merged by the engine, which stops at limit + 1 rows (PostgreSQL's
 * generic plan merges them only when each is limited to the page in a
 * subquery: db_driver.h, by_value_limits_each_walk). On 10,000 seeded
 * posts (`reading_minutes[gte]=40`: 4 values, 320 matches; Python's
 * sqlite3, the statements alone) 17 µs for the values and 37 µs for the
 * walks, where sorting the matches took 80 µs (SQLite 3.40 reads each
 * match's row to sort it: an index on an expression covers no query that
 * names its column). Past FIELD_VALUES_MAX values the walks cost more than
 * the sort (each walk begins with a seek and a row), so the matches are
 * sorted. The values and the page are two statements, not one snapshot: a
 * value that a write adds between them is missing from that page, which
 * is then no older than the write's own invalidation of the list (its
 * cache fill started before it, and is dropped). One statement with the
 * values in a CTE was slower: each per-value SELECT materialised it again.
 *
 * The SQL of a filter pastes the field's name (checked: [a-z][a-z0-9_]*,
 * and declared) and binds its values. An [in] binds 4 or FIELD_IN_MAX
 * values (the last repeated), so the number of statement texts stays
 * small: per connection, at most the declared fields' combinations of
 * operators, which FIELD_INDEXES_PER_SITE and FIELD_FILTERS_MAX bound.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_fields.h"
#include "store/store_internal.h"

static const char *const kind_names[FIELD_KINDS] = {"bool", "number", "text"};
static const char *const op_names[FIELD_OPS] = {"eq", "gt", "gte", "lt", "lte", "in"};
static const char *const op_sql[FIELD_OPS] = {"=", ">", ">=", "<", "<=", "IN"};
static const db_fragment_id kind_fragments[FIELD_KINDS] = {DB_SQL_FIELD_BOOL, DB_SQL_FIELD_NUMBER, DB_SQL_FIELD_TEXT};

const char *store_field_kind_name(store_field_kind kind)
{
    return kind < FIELD_KINDS ? kind_names[kind] : "?";
}

const char *store_field_op_name(store_field_op op)
{
    return op < FIELD_OPS ? op_names[op] : "?";
}

bool store_field_kind_parse(const char *name, store_field_kind *kind)
{
    for (int k = 0; k < FIELD_KINDS; k++) {
        if (strcmp(name, kind_names[k]) == 0) {
            *kind = (store_field_kind)k;
            return true;
        }
    }
    return false;
}

bool store_field_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > FIELD_NAME_MAX || name[0] < 'a' || name[0] > 'z')
        return false;
    for (size_t i = 1; i < len; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
            return false;
    return true;
}

/* ---- the typed expression of a field ------------------------------------- */

/* The driver's expression for field `name` of `kind` over `column`
 * ("fields" in DDL, "i.fields" in a list); malloc'd, NULL when short of
 * memory. */
static char *field_expression(const store_t *st, store_field_kind kind, const char *column, const char *name)
{
    static const char *const names[] = {"{fields}", "{field}"};
    const char *texts[] = {column, name};
    return db_sql_filled(db_fragment(st, kind_fragments[kind]), names, texts, 2);
}

static void index_name(store_field_kind kind, const char *name, char out[64])
{
    snprintf(out, 64, "items_field_%s_%s", kind_names[kind], name);
}

/* ---- declarations ---------------------------------------------------------- */

typedef struct declare_tx {
    int64_t site_id;
    const char *type;
    const char *name;
    store_field_kind kind;
} declare_tx;

/* The kind the site declared for (type, name): STORE_NOT_FOUND if none. */
static int declared_kind(store_t *st, int64_t site_id, const char *type, const char *name, store_field_kind *kind)
{
    db_query q;
    int status = db_query_start(
        st, "SELECT kind FROM field_indexes WHERE site_id = :site AND type = :type AND name = :name", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":site", site_id);
    db_bind_text(&q, ":type", type);
    db_bind_text(&q, ":name", name);
    bool found = db_next_row(&q) && store_field_kind_parse(db_column_text(&q, 0), kind);
    status = db_query_end(&q, "reading a field declaration");
    if (status == STORE_OK && !found)
        return STORE_NOT_FOUND;
    return status;
}

static int count_where(store_t *st, const char *sql, int64_t site_id, const char *name, const char *kind,
                       int64_t *count)
{
    db_query q;
    int status = db_query_start(st, sql, &q);
    if (status != STORE_OK)
        return status;
    if (site_id != 0)
        db_bind_int(&q, ":site", site_id);
    if (name != NULL) {
        db_bind_text(&q, ":name", name);
        db_bind_text(&q, ":kind", kind);
    }
    *count = db_next_row(&q) ? db_column_int(&q, 0) : 0;
    return db_query_end(&q, "counting field declarations");
}

static int index_create(store_t *st, store_field_kind kind, const char *name)
{
    char *expr = field_expression(st, kind, "fields", name);
    char index[64], ddl[1024];
    if (expr == NULL)
        return db_fail(st, STORE_ERROR, "out of memory declaring a field");
    index_name(kind, name, index);
    int n = snprintf(ddl, sizeof ddl,
                     "CREATE INDEX IF NOT EXISTS %s ON items(site_id, type, status, %s, published_at DESC, id DESC)",
                     index, expr);
    free(expr);
    if (n < 0 || (size_t)n >= sizeof ddl)
        return db_fail(st, STORE_ERROR, "the index of field '%s' does not fit its buffer", name);
    return db_exec_script(st, ddl, "creating the field's index");
}

static int declare_body(store_t *st, void *arg)
{
    declare_tx *tx = arg;
    store_field_kind existing;
    int status = declared_kind(st, tx->site_id, tx->type, tx->name, &existing);
    if (status == STORE_OK && existing != tx->kind)
        return db_fail(st, STORE_CONFLICT, "field '%s' of type '%s' is declared %s; drop it first to make it %s",
                       tx->name, tx->type, kind_names[existing], kind_names[tx->kind]);
    if (status == STORE_OK)
        return index_create(st, tx->kind, tx->name);
    if (status != STORE_NOT_FOUND)
        return status;
    int64_t count = 0;
    status =
        count_where(st, "SELECT COUNT(*) FROM field_indexes WHERE site_id = :site", tx->site_id, NULL, NULL, &count);
    if (status == STORE_OK && count >= FIELD_INDEXES_PER_SITE)
        return db_fail(st, STORE_INVALID, "a site may declare at most %d indexed fields; drop one first",
                       FIELD_INDEXES_PER_SITE);
    db_query q;
    if (status == STORE_OK)
        status = db_query_start(st,
                                "INSERT INTO field_indexes(site_id, type, name, kind, created_at)"
                                " VALUES (:site, :type, :name, :kind, :now)",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":site", tx->site_id);
    db_bind_text(&q, ":type", tx->type);
    db_bind_text(&q, ":name", tx->name);
    db_bind_text(&q, ":kind", kind_names[tx->kind]);
    db_bind_int(&q, ":now", store_now_ms());
    status = db_query_run(&q, "declaring a field");
    return status == STORE_OK ? index_create(st, tx->kind, tx->name) : status;
}

int store_field_index_declare(store_t *st, int64_t site_id, const char *type, const char *name, store_field_kind kind)
{
    db_clear_error(st);
    if (!store_field_name_valid(name))
        return db_fail(st, STORE_INVALID, "a field name is 1 to %d characters of a-z, 0-9 and '_', from a letter",
                       FIELD_NAME_MAX);
    if (kind >= FIELD_KINDS)
        return db_fail(st, STORE_INVALID, "unknown field kind %d", (int)kind);
    declare_tx tx = {.site_id = site_id, .type = type, .name = name, .kind = kind};
    return db_transact(st, declare_body, &tx, "declaring a field");
}

static int drop_body(store_t *st, void *arg)
{
    declare_tx *tx = arg;
    int status = declared_kind(st, tx->site_id, tx->type, tx->name, &tx->kind);
    if (status == STORE_NOT_FOUND)
        return db_fail(st, STORE_NOT_FOUND, "field '%s' of type '%s' is not declared", tx->name, tx->type);
    db_query q;
    if (status == STORE_OK)
        status =
            db_query_start(st, "DELETE FROM field_indexes WHERE site_id = :site AND type = :type AND name = :name", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":site", tx->site_id);
    db_bind_text(&q, ":type", tx->type);
    db_bind_text(&q, ":name", tx->name);
    status = db_query_run(&q, "dropping a field declaration");
    int64_t users = 0;
    if (status == STORE_OK)
        status = count_where(st, "SELECT COUNT(*) FROM field_indexes WHERE name = :name AND kind = :kind", 0, tx->name,
                             kind_names[tx->kind], &users);
    if (status != STORE_OK || users > 0)
        return status;
    char index[64], ddl[96];
    index_name(tx->kind, tx->name, index);
    snprintf(ddl, sizeof ddl, "DROP INDEX IF EXISTS %s", index);
    return db_exec_script(st, ddl, "dropping the field's index");
}

int store_field_index_drop(store_t *st, int64_t site_id, const char *type, const char *name)
{
    db_clear_error(st);
    declare_tx tx = {.site_id = site_id, .type = type, .name = name};
    return db_transact(st, drop_body, &tx, "dropping a field declaration");
}

int store_field_index_list(store_t *st, int64_t site_id, json_t **out)
{
    db_clear_error(st);
    *out = NULL;
    db_query q;
    int status = db_query_start(st,
                                "SELECT type, name, kind, created_at FROM field_indexes WHERE site_id = :site"
                                " ORDER BY type, name",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":site", site_id);
    json_t *list = json_array();
    while (db_next_row(&q)) {
        store_field_kind kind = FIELD_BOOL;
        char index[64];
        store_field_kind_parse(db_column_text(&q, 2), &kind);
        index_name(kind, db_column_text(&q, 1), index);
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:o}", "type", db_column_text(&q, 0), "field",
                                              db_column_text(&q, 1), "kind", kind_names[kind], "index", index,
                                              "created_at", time_json(db_column_int(&q, 3))));
    }
    status = db_query_end(&q, "listing field declarations");
    if (status != STORE_OK) {
        json_decref(list);
        return status;
    }
    *out = list;
    return STORE_OK;
}

int store_field_indexes_of(store_t *st, int64_t site_id, const char *type, store_field_index *out, size_t max,
                           size_t *n)
{
    db_clear_error(st);
    *n = 0;
    db_query q;
    int status = db_query_start(st,
                                "SELECT name, kind FROM field_indexes WHERE site_id = :site AND type = :type"
                                " ORDER BY name",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":site", site_id);
    db_bind_text(&q, ":type", type);
    while (*n < max && db_next_row(&q)) {
        const char *name = db_column_text(&q, 0);
        if (!store_field_kind_parse(db_column_text(&q, 1), &out[*n].kind) || strlen(name) > FIELD_NAME_MAX)
            continue;
        strcpy(out[*n].name, name);
        (*n)++;
    }
    return db_query_end(&q, "reading field declarations");
}

/* The distinct fields declared, as (kind, name) pairs read whole before
 * any index is made (DDL while a SELECT is stepping is refused). */
typedef struct declared_field {
    store_field_kind kind;
    char name[FIELD_NAME_MAX + 1];
} declared_field;

int field_indexes_rebuild(store_t *st)
{
    db_query q;
    declared_field *fields = NULL;
    size_t n = 0, cap = 0;
    bool short_of_memory = false;
    int status = db_query_start(st, "SELECT DISTINCT kind, name FROM field_indexes ORDER BY kind, name", &q);
    if (status != STORE_OK)
        return status;
    while (db_next_row(&q)) {
        declared_field f;
        const char *name = db_column_text(&q, 1);
        if (!store_field_kind_parse(db_column_text(&q, 0), &f.kind) || !store_field_name_valid(name))
            continue;
        if (n == cap) {
            declared_field *more = realloc(fields, (cap ? cap * 2 : 16) * sizeof *fields);
            if ((short_of_memory = more == NULL))
                break;
            fields = more;
            cap = cap ? cap * 2 : 16;
        }
        strcpy(f.name, name);
        fields[n++] = f;
    }
    status = db_query_end(&q, "reading the declared fields");
    if (status == STORE_OK && short_of_memory)
        status = db_fail(st, STORE_ERROR, "out of memory reading the declared fields");
    for (size_t i = 0; i < n && status == STORE_OK; i++)
        status = index_create(st, fields[i].kind, fields[i].name);
    free(fields);
    return status;
}

/* ---- the list's filters (lists.c) ----------------------------------------- */

bool field_filters_read_matches(const store_list_query *q)
{
    if (q->field_count == 0)
        return false;
    if (q->sort != SORT_PUBLISHED_DESC && q->sort != SORT_PUBLISHED_ASC)
        return true;
    for (size_t i = 0; i < q->field_count; i++)
        if (q->fields[i].op != FIELD_EQ)
            return true;
    return false;
}

/* How many values an [in] binds: 4 or FIELD_IN_MAX, the last repeated. */
static size_t in_width(size_t count)
{
    return count <= 4 ? 4 : FIELD_IN_MAX;
}

/* One bound value: numbers as text cast to a double on both engines. */
static int value_sql(store_field_kind kind, size_t filter, size_t index, bool in, char *out, size_t size)
{
    char name[32];
    if (in)
        snprintf(name, sizeof name, ":f%zu_%zu", filter, index);
    else
        snprintf(name, sizeof name, ":f%zu", filter);
    if (kind == FIELD_NUMBER)
        return snprintf(out, size, "CAST(%s AS DOUBLE PRECISION)", name);
    return snprintf(out, size, "%s", name);
}

/* Appends to out (size bytes, NUL-terminated); false once it is full. */
typedef struct sql_out {
    char *text;
    size_t size, length;
    bool overflow;
} sql_out;

static void out_add(sql_out *o, const char *a, const char *b, const char *c)
{
    int n = snprintf(o->text + o->length, o->size - o->length, "%s%s%s", a, b, c);
    if (n < 0 || (size_t)n >= o->size - o->length)
        o->overflow = true;
    else
        o->length += (size_t)n;
}

static bool filter_sql(const store_t *st, const store_field_filter *f, size_t i, sql_out *o)
{
    char *expr = field_expression(st, f->kind, "i.fields", f->name);
    char value[64];
    if (expr == NULL)
        return false;
    out_add(o, " AND ", expr, " ");
    free(expr);
    out_add(o, op_sql[f->op], " ", "");
    if (f->op != FIELD_IN) {
        value_sql(f->kind, i, 0, false, value, sizeof value);
        out_add(o, value, "", "");
        return true;
    }
    size_t width = in_width(f->value_count);
    for (size_t k = 0; k < width; k++) {
        value_sql(f->kind, i, k, true, value, sizeof value);
        out_add(o, k == 0 ? "(" : ", ", value, k + 1 == width ? ")" : "");
    }
    return true;
}

int field_filters_sql(store_t *st, const store_list_query *q, char *out, size_t size)
{
    sql_out o = {.text = out, .size = size};
    out[0] = '\0';
    if (q->field_count > FIELD_FILTERS_MAX)
        return db_fail(st, STORE_INVALID, "at most %d filters on fields", FIELD_FILTERS_MAX);
    if (q->field_count > 0 && q->type == NULL)
        return db_fail(st, STORE_INVALID, "filters on fields need a type");
    for (size_t i = 0; i < q->field_count; i++) {
        const store_field_filter *f = &q->fields[i];
        if (!store_field_name_valid(f->name) || f->kind >= FIELD_KINDS || f->op >= FIELD_OPS || f->value_count < 1 ||
            f->value_count > (f->op == FIELD_IN ? FIELD_IN_MAX : 1))
            return db_fail(st, STORE_INVALID, "a malformed filter on field '%.40s'", f->name);
        if (!filter_sql(st, f, i, &o))
            return db_fail(st, STORE_ERROR, "out of memory building a filter on fields");
    }
    if (o.overflow)
        return db_fail(st, STORE_ERROR, "the filters on fields do not fit their buffer");
    return STORE_OK;
}

static void value_bind(db_query *query, const store_field_filter *f, const char *name, const char *value)
{
    if (f->kind == FIELD_BOOL)
        db_bind_int(query, name, strcmp(value, "1") == 0);
    else
        db_bind_text(query, name, value);
}

void field_filters_bind(db_query *query, const store_list_query *q)
{
    char name[32];
    for (size_t i = 0; i < q->field_count; i++) {
        const store_field_filter *f = &q->fields[i];
        if (f->op != FIELD_IN) {
            snprintf(name, sizeof name, ":f%zu", i);
            value_bind(query, f, name, f->values[0]);
            continue;
        }
        for (size_t k = 0; k < in_width(f->value_count); k++) {
            snprintf(name, sizeof name, ":f%zu_%zu", i, k);
            value_bind(query, f, name, f->values[k < f->value_count ? k : f->value_count - 1]);
        }
    }
}

/* ---- a range read value by value (lists.c) -------------------------------- */

bool field_filters_by_value(const store_list_query *q)
{
    if (q->field_count == 0 || q->fields[0].kind == FIELD_BOOL || q->status != FILTER_PUBLISHED || q->tag != NULL ||
        q->category != NULL || q->search != NULL || (q->sort != SORT_PUBLISHED_DESC && q->sort != SORT_PUBLISHED_ASC))
        return false;
    for (size_t i = 0; i < q->field_count; i++) {
        const store_field_filter *f = &q->fields[i];
        if (f->op == FIELD_EQ || f->op == FIELD_IN || f->kind != q->fields[0].kind ||
            strcmp(f->name, q->fields[0].name) != 0)
            return false;
    }
    return true;
}

/* The range's values in ascending order, one index seek each: the first
 * match (filters: field_filters_sql's text of q), then the first entry
 * past each value found (only the upper bounds still apply there),
 * FIELD_VALUES_MAX + 1 at most. */
static int values_sql(store_t *st, const store_list_query *q, const char *filters, char *out, size_t size)
{
    char upper[2048];
    sql_out u = {.text = upper, .size = sizeof upper};
    upper[0] = '\0';
    for (size_t i = 0; i < q->field_count; i++)
        if ((q->fields[i].op == FIELD_LT || q->fields[i].op == FIELD_LTE) && !filter_sql(st, &q->fields[i], i, &u))
            return db_fail(st, STORE_ERROR, "out of memory building a filter on fields");
    char *expr = field_expression(st, q->fields[0].kind, "i.fields", q->fields[0].name);
    if (expr == NULL)
        return db_fail(st, STORE_ERROR, "out of memory building a filter on fields");
    const char *matches = "FROM items i WHERE i.site_id = :site AND i.type = :type AND i.status = :status";
    int n = snprintf(out, size,
                     "WITH RECURSIVE v(n, x) AS ("
                     "SELECT 1, (SELECT %s %s%s ORDER BY 1 LIMIT 1) UNION ALL "
                     "SELECT n + 1, (SELECT %s %s AND %s > v.x%s ORDER BY 1 LIMIT 1) FROM v "
                     "WHERE v.x IS NOT NULL AND n <= %d) SELECT x FROM v WHERE x IS NOT NULL",
                     expr, matches, filters, expr, matches, expr, upper, FIELD_VALUES_MAX);
    free(expr);
    if (n < 0 || (size_t)n >= size || u.overflow)
        return db_fail(st, STORE_ERROR, "the values of a range do not fit their buffer");
    return STORE_OK;
}

int field_filters_values_read(store_t *st, const store_list_query *q, const char *filters, field_values *values)
{
    char sql[8192];
    db_query query;
    values->count = 0;
    values->kind = q->fields[0].kind;
    int status = values_sql(st, q, filters, sql, sizeof sql);
    if (status == STORE_OK)
        status = db_query_start(st, sql, &query);
    if (status != STORE_OK)
        return status;
    db_bind_int(&query, ":site", q->site_id);
    db_bind_text(&query, ":type", q->type);
    db_bind_text(&query, ":status", "published");
    field_filters_bind(&query, q);
    bool short_of_memory = false;
    while (values->count <= FIELD_VALUES_MAX && !short_of_memory && db_next_row(&query)) {
        field_value *v = &values->value[values->count++];
        if (values->kind == FIELD_TEXT)
            short_of_memory = (v->text = strdup(db_column_text(&query, 0))) == NULL;
        else
            v->number = db_column_double(&query, 0);
    }
    status = db_query_end(&query, "reading the values of a range");
    if (status == STORE_OK && short_of_memory)
        status = db_fail(st, STORE_ERROR, "out of memory reading the values of a range");
    return status;
}

int field_filters_value_sql(store_t *st, const store_list_query *q, size_t k, char *out, size_t size)
{
    char *expr = field_expression(st, q->fields[0].kind, "i.fields", q->fields[0].name);
    if (expr == NULL)
        return db_fail(st, STORE_ERROR, "out of memory building a filter on fields");
    int n = q->fields[0].kind == FIELD_NUMBER
                ? snprintf(out, size, " AND %s = CAST(:v%zu AS DOUBLE PRECISION)", expr, k)
                : snprintf(out, size, " AND %s = :v%zu", expr, k);
    free(expr);
    if (n < 0 || (size_t)n >= size)
        return db_fail(st, STORE_ERROR, "the filters on fields do not fit their buffer");
    return STORE_OK;
}

void field_filters_values_bind(db_query *query, const field_values *values)
{
    char name[32];
    for (size_t k = 0; k < values->count; k++) {
        snprintf(name, sizeof name, ":v%zu", k);
        const field_value *v = &values->value[k];
        if (values->kind == FIELD_TEXT)
            db_bind_text(query, name, v->text);
        else
            db_bind_double(query, name, v->number);
    }
}

void field_values_free(field_values *values)
{
    if (values->kind == FIELD_TEXT)
        for (size_t k = 0; k < values->count; k++)
            free(values->value[k].text);
    values->count = 0;
}
