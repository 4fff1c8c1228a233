/*
 * snapshot.h — what the store does without a database: the item snapshot
 * (the editable state a version holds), the texts of times, and building
 * JSON objects. Shared by the domain files; needs nothing but jansson.
 */
#ifndef STRATA_STORE_SNAPSHOT_H
#define STRATA_STORE_SNAPSHOT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Borrowed views into a snapshot's members. */
typedef struct snapshot_view {
    const char *slug, *title, *excerpt, *body;
    const char *category; /* NULL: no category */
    json_t *fields;
    json_t *tags;
} snapshot_view;

/* Fills v and says whether the snapshot has every member with the right
 * type. */
bool snapshot_view_of(const json_t *snapshot, snapshot_view *v);
/* True if the JSON has every member of a snapshot with the right types. */
bool snapshot_valid(const json_t *snapshot);
/* A version snapshot {"slug","title","excerpt","body","fields","category",
 * "tags"}; fields and tags are stolen; category may be NULL. */
json_t *snapshot_new(const char *slug, const char *title, const char *excerpt, const char *body, json_t *fields,
                     const char *category, json_t *tags);
/* The snapshot of a new item's edit (missing excerpt/body: ""). */
json_t *snapshot_from_edit(const store_edit_t *edit);
/* Replaces what the edit gives in snapshot; keeps what it leaves out. False
 * when out of memory or a text is not valid UTF-8. */
bool snapshot_merge_edit(json_t *snapshot, const store_edit_t *edit);
/* A sorted JSON array of the tags. */
json_t *snapshot_tags_json(const char *const *tags, size_t count);

/* "2026-11-21T10:00:00.000Z" as a JSON string (store_time_text's text). */
json_t *time_json(int64_t ms);

/* Sets key to value (stolen) and says whether both exist and it worked, so
 * building an object reads as `ok = ok && json_put(obj, "k", json_…(…));` —
 * once ok is false no further value is even created. */
bool json_put(json_t *object, const char *key, json_t *value);

#endif
