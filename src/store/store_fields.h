/*
 * store_fields.h — filters on items' custom fields, on fields an operator
 * declared indexed (store.h has items and lists; field_filters.c is the
 * code and says how the indexes are made).
 *
 * A declaration names a site, a type, a field of the items' `fields`
 * object and its kind (bool, number, text). Declaring it creates the
 * expression index its filters walk; only declared fields may be filtered
 * on, so a public list never scans a site's items for a field. Same
 * conventions as store.h: STORE_OK or a negative store_status, and
 * store_errmsg() for a sentence fit for a problem+json detail.
 */
#ifndef STRATA_STORE_FIELDS_H
#define STRATA_STORE_FIELDS_H

#include "store/store.h"

/* A declarable field name: [a-z][a-z0-9_]{0,39} (it is part of the
 * index's name, under PostgreSQL's 63-byte identifiers). */
#define FIELD_NAME_MAX 40
/* Declarations per site: each is an index every write of an item keeps. */
#define FIELD_INDEXES_PER_SITE 16
/* Filters on fields per list request, and values of one [in]. */
#define FIELD_FILTERS_MAX 4
#define FIELD_IN_MAX 20
/* Bytes of one filter value (text). */
#define FIELD_VALUE_MAX 256

typedef enum store_field_kind { FIELD_BOOL = 0, FIELD_NUMBER, FIELD_TEXT, FIELD_KINDS } store_field_kind;
typedef enum store_field_op {
    FIELD_EQ = 0,
    FIELD_GT,
    FIELD_GTE,
    FIELD_LT,
    FIELD_LTE,
    FIELD_IN,
    FIELD_OPS
} store_field_op;

/* "bool", "number", "text" / "eq", "gt", "gte", "lt", "lte", "in". */
const char *store_field_kind_name(store_field_kind kind);
const char *store_field_op_name(store_field_op op);
/* The kind named `name`; false if none. */
bool store_field_kind_parse(const char *name, store_field_kind *kind);
/* Whether name is a declarable field name. */
bool store_field_name_valid(const char *name);

/* One declared field of a site and type. */
typedef struct store_field_index {
    char name[FIELD_NAME_MAX + 1];
    store_field_kind kind;
} store_field_index;

/* One filter of a list (store_list_query.fields): the field, its declared
 * kind, the operator and its values as canonical text — a bool "1" or
 * "0", a number as "%.17g", a text as given. Pointers are the caller's. */
typedef struct store_field_filter {
    char name[FIELD_NAME_MAX + 1];
    store_field_kind kind;
    store_field_op op;
    size_t value_count; /* 1, or 1..FIELD_IN_MAX for FIELD_IN */
    const char *values[FIELD_IN_MAX];
} store_field_filter;

/* Declares field `name` of `kind` indexed for the site's items of `type`
 * and creates its index (once per kind and name: declarations of the
 * same field elsewhere share it). Declaring it again with the same kind
 * changes nothing; STORE_CONFLICT if it is declared with another kind;
 * STORE_INVALID for a bad name or past FIELD_INDEXES_PER_SITE. */
int store_field_index_declare(store_t *st, int64_t site_id, const char *type, const char *name, store_field_kind kind);
/* Drops the declaration (its index too when no other uses it);
 * STORE_NOT_FOUND if there is none. */
int store_field_index_drop(store_t *st, int64_t site_id, const char *type, const char *name);
/* The site's declarations as [{"type","field","kind","index","created_at"}…]
 * ordered by type and field. */
int store_field_index_list(store_t *st, int64_t site_id, json_t **out);
/* The fields declared for the site's items of type, ordered by name, at
 * most `max` of them into out; *n how many. */
int store_field_indexes_of(store_t *st, int64_t site_id, const char *type, store_field_index *out, size_t max,
                           size_t *n);

#endif
