/*
 * field_filters.h — internal to src/content: the list route's filters on
 * declared custom fields (`fields.NAME[OP]=VALUE`) and its refusal of
 * unknown parameters that look like filters (field_filters.c), and the
 * admin routes that declare the fields (field_indexes.c).
 */
#ifndef STRATA_CONTENT_FIELD_FILTERS_H
#define STRATA_CONTENT_FIELD_FILTERS_H

#include "content/api.h"
#include "store/store_fields.h"

/* The decoded value of one `fields.` parameter (a whole [in] list). */
#define FIELD_PARAM_VALUE_MAX 1024

/* A request's filters on fields, typed: q->fields points into it. */
typedef struct api_field_filters {
    size_t count;
    store_field_filter filters[FIELD_FILTERS_MAX];      /* sorted by name, then operator */
    char raw[FIELD_FILTERS_MAX][FIELD_PARAM_VALUE_MAX]; /* decoded values; an [in] list split in place */
    char numbers[FIELD_FILTERS_MAX][FIELD_IN_MAX][32];  /* canonical numbers ("%.17g") */
} api_field_filters;

/* The list route's cache rule (http_cache_rule.query_key): the canonical
 * text of the request's filters on fields ("" without any), or -1 when
 * the handler refuses the query (an unknown parameter that looks like a
 * filter, a malformed or repeated `fields.` parameter): never answered
 * from the cache, so an answer never depends on what is cached. */
long field_filters_cache_key(const char *query, size_t query_len, char *out, size_t size);

/* For handle_list, once q->site_id and q->type are set: refuses unknown
 * filter-like parameters (400 naming the known ones), reads the
 * `fields.` parameters, checks each against the fields declared for the
 * site and type (400 naming them) and types its value (400 for a value
 * not of the declared kind), and points q->fields at them. */
bool field_filters_read(api_ctx *c, store_list_query *q, api_field_filters *out);

/* The identity of q's filters on fields for its cursor ("" without any):
 * 16 hex digits of a hash of their canonical form. */
void field_filters_identity(const store_list_query *q, char out[17]);

/* The admin routes of the declarations (field_indexes.c). */
void handle_field_indexes_list(const http_request *req, store_t *store, http_response *res);
void handle_field_indexes_create(const http_request *req, store_t *store, http_response *res);
void handle_field_indexes_drop(const http_request *req, store_t *store, http_response *res);

#endif
