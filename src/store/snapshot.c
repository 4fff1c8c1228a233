/*
 * snapshot.c — item snapshots, times and JSON building: the store's logic
 * that needs no database, kept apart so items.c and versions.c depend on it
 * rather than on each other.
 *
 * A snapshot is the editable state of an item as one version holds it,
 * {"slug","title","excerpt","body","fields","category","tags"}: tags sorted,
 * so the same state always serialises to the same JSON (and hash).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/snapshot.h"
#include "store/store_history.h"

bool snapshot_view_of(const json_t *snapshot, snapshot_view *v)
{
    const json_t *category = json_object_get(snapshot, "category");
    v->slug = json_string_value(json_object_get(snapshot, "slug"));
    v->title = json_string_value(json_object_get(snapshot, "title"));
    v->excerpt = json_string_value(json_object_get(snapshot, "excerpt"));
    v->body = json_string_value(json_object_get(snapshot, "body"));
    v->category = json_string_value(category);
    v->fields = json_object_get(snapshot, "fields");
    v->tags = json_object_get(snapshot, "tags");
    return v->slug && v->title && v->excerpt && v->body && json_is_object(v->fields) && json_is_array(v->tags) &&
           (json_is_null(category) || json_is_string(category));
}

bool snapshot_valid(const json_t *snapshot)
{
    snapshot_view v;
    return snapshot_view_of(snapshot, &v);
}

static int compare_text(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *snapshot_tags_json(const char *const *tags, size_t count)
{
    const char **sorted = malloc((count ? count : 1) * sizeof *sorted);
    json_t *array = json_array();
    bool ok = sorted && array;
    if (ok && count) {
        memcpy(sorted, tags, count * sizeof *sorted);
        qsort(sorted, count, sizeof *sorted, compare_text);
    }
    for (size_t i = 0; ok && i < count; i++)
        ok = json_array_append_new(array, json_string(sorted[i])) == 0;
    free(sorted);
    if (!ok) {
        json_decref(array);
        return NULL;
    }
    return array;
}

json_t *snapshot_new(const char *slug, const char *title, const char *excerpt, const char *body, json_t *fields,
                     const char *category, json_t *tags)
{
    json_t *snapshot = json_object();
    bool ok = snapshot != NULL;
    ok = ok && json_put(snapshot, "slug", json_string(slug));
    ok = ok && json_put(snapshot, "title", json_string(title));
    ok = ok && json_put(snapshot, "excerpt", json_string(excerpt));
    ok = ok && json_put(snapshot, "body", json_string(body));
    ok = ok && json_put(snapshot, "fields", json_incref(fields));
    ok = ok && json_put(snapshot, "category", category ? json_string(category) : json_null());
    ok = ok && json_put(snapshot, "tags", json_incref(tags));
    json_decref(fields);
    json_decref(tags);
    if (!ok) {
        json_decref(snapshot);
        return NULL;
    }
    return snapshot;
}

json_t *snapshot_from_edit(const store_edit_t *edit)
{
    json_t *fields = edit->fields ? json_deep_copy(edit->fields) : json_object();
    json_t *tags = edit->has_tags ? snapshot_tags_json(edit->tags, edit->tag_count) : json_array();
    return snapshot_new(edit->slug, edit->title, edit->excerpt ? edit->excerpt : "", edit->body ? edit->body : "",
                        fields, edit->has_category ? edit->category : NULL, tags);
}

bool snapshot_merge_edit(json_t *snapshot, const store_edit_t *edit)
{
    bool ok = true;
    if (edit->slug)
        ok = ok && json_put(snapshot, "slug", json_string(edit->slug));
    if (edit->title)
        ok = ok && json_put(snapshot, "title", json_string(edit->title));
    if (edit->excerpt)
        ok = ok && json_put(snapshot, "excerpt", json_string(edit->excerpt));
    if (edit->body)
        ok = ok && json_put(snapshot, "body", json_string(edit->body));
    if (edit->fields)
        ok = ok && json_put(snapshot, "fields", json_deep_copy(edit->fields));
    if (edit->has_category)
        ok = ok && json_put(snapshot, "category", edit->category ? json_string(edit->category) : json_null());
    if (edit->has_tags)
        ok = ok && json_put(snapshot, "tags", snapshot_tags_json(edit->tags, edit->tag_count));
    return ok;
}

/* ---- time --------------------------------------------------------------- */

int64_t store_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void store_time_text(int64_t ms, char out[STORE_TIME_TEXT_SIZE])
{
    int64_t seconds = ms / 1000, millis = ms % 1000;
    if (millis < 0) { /* floor, so times before 1970 still print */
        millis += 1000;
        seconds -= 1;
    }
    time_t t = (time_t)seconds;
    struct tm utc;
    gmtime_r(&t, &utc);
    snprintf(out, STORE_TIME_TEXT_SIZE, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
             utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, (int)millis);
}

json_t *time_json(int64_t ms)
{
    char text[STORE_TIME_TEXT_SIZE];
    store_time_text(ms, text);
    return json_string(text);
}

bool json_put(json_t *object, const char *key, json_t *value)
{
    return value && json_object_set_new(object, key, value) == 0;
}
