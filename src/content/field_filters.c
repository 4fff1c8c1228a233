/*
 * field_filters.c — `GET /v1/{site}/content?fields.NAME[OP]=VALUE`: filters
 * on custom fields an operator declared indexed, and the refusal of
 * unknown parameters that look like filters.
 *
 * A filter is a parameter `fields.NAME` (equality) or `fields.NAME[OP]`
 * with OP one of eq, gt, gte, lt, lte, in (an [in] value is a list of up
 * to FIELD_IN_MAX values separated by ','); brackets may be sent encoded
 * (%5B, %5D). Every filter given applies; up to FIELD_FILTERS_MAX of
 * them, one per field and operator. They need `type`: fields are declared
 * per site and type (store_fields.h), and a field that is not declared
 * for them is a 400 naming those that are — never a scan of the site's
 * items. A value is typed by the declared kind: a number (decimal, not
 * hex, not inf or nan), true or false, or a text (UTF-8, up to
 * FIELD_VALUE_MAX bytes); another value is a 400.
 *
 * Unknown parameters. The list route used to ignore what it did not
 * know, so `?fields.featured=true` or a misspelt `categroy=news` answered
 * the whole list as if filtered. A parameter the route does not know is
 * now refused (400 naming the known ones) when it looks like a filter:
 *
 *   - its name holds '.', '[' or ']' (fields[x], filter[type], field.x);
 *   - it is one of filter, filters, where, query, search, field, fields;
 *   - it is within one edit (a letter added, dropped, changed, or two
 *     swapped) of a known parameter's name of 3 or more letters, two for
 *     names longer than 4 (categroy, tpye, limt, stauts, tags); not of
 *     `q`, which every one-letter name is one edit from.
 *
 * Any other unknown parameter is still ignored, and so is every name that
 * starts with '_' or "utm_" whatever it looks like: cache busters
 * (`_=1700000000`) and campaign tags are sent by front ends on purpose.
 *
 * Caching. The response cache keys a list on its table's parameters and
 * on field_filters_cache_key: the filters decoded, sorted by field and
 * operator, an [in]'s values as a sorted set — so every spelling of one
 * query is one key. A query the handler refuses gets no key at all, so it
 * reaches the handler and its 400 even when the list without the bad
 * parameter is cached. Filtered pages carry the list tags of unfiltered
 * ones: any write to an item of the site drops them.
 */
#include "content/field_filters.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"

#define PARAM_NAME_MAX 128
#define FIELDS_PREFIX "fields."
#define FIELDS_PREFIX_LEN 7

/* ---- the query string ------------------------------------------------------ */

/* One `name=value` of a query: raw bytes, undecoded. */
typedef struct query_param {
    const char *name, *value;
    size_t name_len, value_len;
} query_param;

/* The parameter at *at (advanced past it); false at the end. */
static bool param_next(const char **at, const char *end, query_param *p)
{
    while (*at < end && **at == '&')
        (*at)++;
    if (*at >= end)
        return false;
    const char *amp = memchr(*at, '&', (size_t)(end - *at));
    const char *stop = amp ? amp : end;
    const char *eq = memchr(*at, '=', (size_t)(stop - *at));
    p->name = *at;
    p->name_len = (size_t)((eq ? eq : stop) - *at);
    p->value = eq ? eq + 1 : stop;
    p->value_len = eq ? (size_t)(stop - eq - 1) : 0;
    *at = stop;
    return true;
}

/* ---- which unknown parameters look like filters ------------------------------ */

/* The optimal string alignment distance of a and b, or 3 when it is
 * larger than 2 (all the rule needs; known names are short, so longer
 * names are never that close). */
enum { EDIT_NAME_MAX = 32 };
static int edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    if (la > lb + 2 || lb > la + 2 || la >= EDIT_NAME_MAX || lb >= EDIT_NAME_MAX)
        return 3;
    int d[EDIT_NAME_MAX + 1][EDIT_NAME_MAX + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb] > 2 ? 3 : d[la][lb];
}

static bool is_known(const char *name)
{
    for (size_t i = 0; i < LIST_PARAM_COUNT; i++)
        if (strcmp(name, list_params[i].name) == 0)
            return true;
    return false;
}

static bool looks_like_filter(const char *name, size_t len)
{
    static const char *const words[] = {"filter", "filters", "where", "query", "search", "field", "fields"};
    if (len == 0 || name[0] == '_' || strncmp(name, "utm_", 4) == 0)
        return false;
    if (strpbrk(name, ".[]") != NULL)
        return true;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(name, words[i]) == 0)
            return true;
    for (size_t i = 0; i < LIST_PARAM_COUNT; i++) {
        size_t known_len = strlen(list_params[i].name);
        if (known_len >= 3 && edit_distance(name, len, list_params[i].name, known_len) <= (known_len <= 4 ? 1 : 2))
            return true;
    }
    return false;
}

/* ---- reading the filters out of a query ------------------------------------- */

/* One `fields.` parameter, decoded. */
typedef struct raw_filter {
    char name[FIELD_NAME_MAX + 1];
    store_field_op op;
    char value[FIELD_PARAM_VALUE_MAX];
} raw_filter;

typedef struct filter_scan {
    size_t count;
    raw_filter filters[FIELD_FILTERS_MAX];
    char why[768]; /* the refusal's detail */
} filter_scan;

static bool refuse(filter_scan *s, const char *format, const char *a, const char *b)
{
    snprintf(s->why, sizeof s->why, format, a, b);
    return false;
}

/* "fields.NAME" or "fields.NAME[OP]" (name decoded) → its field and operator. */
static bool field_param_parse(filter_scan *s, const char *name, raw_filter *f)
{
    const char *field = name + FIELDS_PREFIX_LEN;
    const char *bracket = strchr(field, '[');
    size_t field_len = bracket ? (size_t)(bracket - field) : strlen(field);
    f->op = FIELD_EQ;
    if (bracket != NULL) {
        size_t op_len = strlen(bracket + 1);
        bool found = false;
        for (int op = 0; op < FIELD_OPS && op_len > 1 && bracket[op_len] == ']'; op++) {
            const char *op_name = store_field_op_name((store_field_op)op);
            if (strlen(op_name) == op_len - 1 && strncmp(bracket + 1, op_name, op_len - 1) == 0) {
                f->op = (store_field_op)op;
                found = true;
            }
        }
        if (!found)
            return refuse(s, "query parameter '%s': the operator must be one of [eq], [gt], [gte], [lt], [lte], [in]%s",
                          name, "");
    }
    if (field_len == 0 || field_len > FIELD_NAME_MAX)
        return refuse(s, "query parameter '%s': a field name is 1 to 40 characters of a-z, 0-9 and '_'%s", name, "");
    memcpy(f->name, field, field_len);
    f->name[field_len] = '\0';
    if (!store_field_name_valid(f->name))
        return refuse(s,
                      "query parameter '%s': a field name is 1 to 40 characters of a-z, 0-9 and '_', from a letter%s",
                      name, "");
    return true;
}

static int raw_filter_order(const void *a, const void *b)
{
    const raw_filter *x = a, *y = b;
    int by_name = strcmp(x->name, y->name);
    return by_name != 0 ? by_name : (int)x->op - (int)y->op;
}

static bool scan_field_param(filter_scan *s, const char *name, const query_param *p)
{
    if (s->count == FIELD_FILTERS_MAX)
        return refuse(s, "at most 4 filters on fields (query parameter '%s')%s", name, "");
    raw_filter *f = &s->filters[s->count];
    if (!field_param_parse(s, name, f))
        return false;
    if (http_form_decode(p->value, p->value_len, f->value, sizeof f->value) < 0)
        return refuse(s, "query parameter '%s' is longer than 1023 bytes or holds a NUL byte%s", name, "");
    for (size_t i = 0; i < s->count; i++)
        if (raw_filter_order(&s->filters[i], f) == 0)
            return refuse(s, "query parameter '%s' is given twice%s", name, "");
    s->count++;
    return true;
}

/* Every parameter of the query: the `fields.` ones read into s (sorted),
 * false (s->why set) for one the route refuses. */
static bool filters_scan(const char *query, size_t query_len, filter_scan *s)
{
    const char *at = query, *end = query + query_len;
    query_param p;
    char name[PARAM_NAME_MAX];
    s->count = 0;
    s->why[0] = '\0';
    while (param_next(&at, end, &p)) {
        long len = http_form_decode(p.name, p.name_len, name, sizeof name);
        if (len < 0) {
            if (memchr(p.name, '.', p.name_len) || memchr(p.name, '[', p.name_len))
                return refuse(s, "a query parameter's name is longer than 127 bytes or holds a NUL byte%s%s", "", "");
            continue;
        }
        if (strncmp(name, FIELDS_PREFIX, FIELDS_PREFIX_LEN) == 0) {
            if (!scan_field_param(s, name, &p))
                return false;
        } else if (!is_known(name) && looks_like_filter(name, (size_t)len)) {
            char known[320];
            size_t used = 0;
            for (size_t i = 0; i < LIST_PARAM_COUNT && used < sizeof known; i++) {
                int n = snprintf(known + used, sizeof known - used, "%s, ", list_params[i].name);
                used += n > 0 ? (size_t)n : 0;
            }
            return refuse(s,
                          "unknown query parameter '%s' looks like a filter; this route knows %s"
                          "fields.NAME and fields.NAME[gt|gte|lt|lte|in] (docs/api.md, 'Filtering on fields')",
                          name, known);
        }
    }
    qsort(s->filters, s->count, sizeof s->filters[0], raw_filter_order);
    return true;
}

/* ---- the cache key ------------------------------------------------------------ */

static int text_order(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Splits an [in] list in place into values, sorted and each once. */
static size_t in_values(char *list, const char *values[FIELD_IN_MAX + 1], bool sorted)
{
    size_t n = 0;
    for (char *save = NULL, *v = strtok_r(list, ",", &save); v != NULL; v = strtok_r(NULL, ",", &save)) {
        if (n == FIELD_IN_MAX + 1)
            break;
        values[n++] = v;
    }
    if (!sorted)
        return n;
    qsort(values, n, sizeof values[0], text_order);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (kept == 0 || strcmp(values[i], values[kept - 1]) != 0)
            values[kept++] = values[i];
    return kept;
}

/* Appends "<length>:<text>"; false when out is full. */
static bool key_part(char *out, size_t size, size_t *len, const char *text)
{
    int n = snprintf(out + *len, size - *len, "%zu:%s", strlen(text), text);
    if (n < 0 || (size_t)n >= size - *len)
        return false;
    *len += (size_t)n;
    return true;
}

long field_filters_cache_key(const char *query, size_t query_len, char *out, size_t size)
{
    filter_scan s;
    size_t len = 0;
    out[0] = '\0';
    if (!filters_scan(query, query_len, &s))
        return -1;
    for (size_t i = 0; i < s.count; i++) {
        raw_filter *f = &s.filters[i];
        bool fits = key_part(out, size, &len, f->name) && key_part(out, size, &len, store_field_op_name(f->op));
        if (f->op != FIELD_IN) {
            fits = fits && key_part(out, size, &len, f->value);
        } else {
            const char *values[FIELD_IN_MAX + 1];
            size_t n = in_values(f->value, values, true);
            for (size_t k = 0; k < n && fits; k++)
                fits = key_part(out, size, &len, values[k]);
            fits = fits && key_part(out, size, &len, "");
        }
        if (!fits)
            return -1; /* too long to key: answered, never cached */
    }
    return (long)len;
}

/* ---- typing the values (the handler) ----------------------------------------- */

static bool problem(api_ctx *c, const char *format, const char *a, const char *b, const char *d)
{
    http_problem(c->res, c->req, 400, "bad_query", format, a, b, d);
    return false;
}

/* A number as the declared kind wants it: decimal, finite. */
static bool number_parse(const char *text, char out[32])
{
    size_t len = strlen(text);
    if (len == 0 || len > 64 || strspn(text, "0123456789+-.eE") != len)
        return false;
    char *end;
    double v = strtod(text, &end);
    if (*end != '\0' || !isfinite(v))
        return false;
    snprintf(out, 32, "%.17g", v);
    return true;
}

static bool value_type(api_ctx *c, const raw_filter *raw, store_field_kind kind, const char *text, char number[32],
                       const char **out)
{
    const char *kind_name = store_field_kind_name(kind);
    if (kind == FIELD_BOOL && (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)) {
        *out = text[0] == 't' ? "1" : "0";
        return true;
    }
    if (kind == FIELD_NUMBER && number_parse(text, number)) {
        *out = number;
        return true;
    }
    if (kind == FIELD_TEXT) {
        json_t *valid = strlen(text) <= FIELD_VALUE_MAX ? json_string(text) : NULL;
        json_decref(valid);
        *out = text;
        if (valid != NULL)
            return true;
        return problem(c, "field '%s' is declared %s: a value is UTF-8 of at most 256 bytes, not '%.64s'", raw->name,
                       kind_name, text);
    }
    return problem(c, "field '%s' is declared %s: '%.64s' is not one (a number is decimal; a bool is true or false)",
                   raw->name, kind_name, text);
}

/* The declared fields of the site and type, "a (bool), b (number)". */
static void declared_names(const store_field_index *declared, size_t n, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && len < size; i++) {
        int w = snprintf(out + len, size - len, "%s%s (%s)", i ? ", " : "", declared[i].name,
                         store_field_kind_name(declared[i].kind));
        len += w > 0 ? (size_t)w : 0;
    }
    if (n == 0)
        snprintf(out, size, "none");
}

static bool filter_type(api_ctx *c, const store_list_query *q, const store_field_index *declared, size_t n,
                        api_field_filters *out, raw_filter *raw)
{
    size_t i = out->count;
    store_field_filter *f = &out->filters[i];
    const store_field_index *d = NULL;
    for (size_t k = 0; k < n && d == NULL; k++)
        if (strcmp(declared[k].name, raw->name) == 0)
            d = &declared[k];
    if (d == NULL) {
        char names[FIELD_INDEXES_PER_SITE * (FIELD_NAME_MAX + 12)];
        declared_names(declared, n, names, sizeof names);
        http_problem(c->res, c->req, 400, "field_not_indexed",
                     "field '%s' is not declared indexed for items of type '%s' of site '%s' (declared: %s); an "
                     "operator declares one with 'strata fields index' or POST /v1/%s/field-indexes",
                     raw->name, q->type, c->site, names, c->site);
        return false;
    }
    if (d->kind == FIELD_BOOL && raw->op != FIELD_EQ && raw->op != FIELD_IN)
        return problem(c, "field '%s' is declared bool: it takes =true|false or [in], not [%s]%s", raw->name,
                       store_field_op_name(raw->op), "");
    strcpy(f->name, raw->name);
    f->kind = d->kind;
    f->op = raw->op;
    memcpy(out->raw[i], raw->value, sizeof out->raw[i]);
    const char *texts[FIELD_IN_MAX + 1] = {out->raw[i]};
    size_t count = raw->op == FIELD_IN ? in_values(out->raw[i], texts, false) : 1;
    if (count == 0 || count > FIELD_IN_MAX)
        return problem(c, "query parameter 'fields.%s[in]' takes 1 to 20 values separated by ','%s%s", raw->name, "",
                       "");
    for (size_t k = 0; k < count; k++)
        if (!value_type(c, raw, d->kind, texts[k], out->numbers[i][k], &f->values[k]))
            return false;
    f->value_count = count;
    out->count++;
    return true;
}

bool field_filters_read(api_ctx *c, store_list_query *q, api_field_filters *out)
{
    const char *query = c->req->query ? c->req->query : "";
    filter_scan *s = malloc(sizeof *s);
    out->count = 0;
    if (s == NULL) {
        http_problem(c->res, c->req, 500, "internal", "out of memory reading the filters");
        return false;
    }
    bool ok = filters_scan(query, strlen(query), s);
    if (!ok)
        http_problem(c->res, c->req, 400, "bad_query", "%s", s->why);
    else if (s->count > 0 && q->type == NULL)
        ok = problem(c,
                     "filters on fields need 'type': fields are declared indexed per type (query parameter "
                     "'fields.%s')%s%s",
                     s->filters[0].name, "", "");
    store_field_index declared[FIELD_INDEXES_PER_SITE];
    size_t n = 0;
    if (ok && s->count > 0) {
        int rc = store_field_indexes_of(c->store, c->site_id, q->type, declared, FIELD_INDEXES_PER_SITE, &n);
        if (rc != STORE_OK) {
            api_store_failed(c, rc);
            ok = false;
        }
    }
    for (size_t i = 0; ok && i < s->count; i++)
        ok = filter_type(c, q, declared, n, out, &s->filters[i]);
    free(s);
    q->fields = out->filters;
    q->field_count = ok ? out->count : 0;
    return ok;
}

/* ---- the cursor's identity ------------------------------------------------------- */

void field_filters_identity(const store_list_query *q, char out[17])
{
    out[0] = '\0';
    if (q->field_count == 0)
        return;
    /* values are bounded (FIELD_PARAM_VALUE_MAX a filter), so all fits */
    char text[FIELD_FILTERS_MAX * (FIELD_PARAM_VALUE_MAX + FIELD_IN_MAX * 40 + 64)];
    size_t len = 0;
    bool fits = true;
    for (size_t i = 0; i < q->field_count && fits; i++) {
        const store_field_filter *f = &q->fields[i];
        const char *values[FIELD_IN_MAX];
        memcpy(values, f->values, f->value_count * sizeof values[0]);
        qsort(values, f->value_count, sizeof values[0], text_order);
        fits =
            key_part(text, sizeof text, &len, f->name) && key_part(text, sizeof text, &len, store_field_op_name(f->op));
        for (size_t k = 0; k < f->value_count && fits; k++)
            fits = key_part(text, sizeof text, &len, values[k]);
        fits = fits && key_part(text, sizeof text, &len, "");
    }
    uint8_t hash[32];
    crypto_sha256(text, len, hash);
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", hash[i]);
}
