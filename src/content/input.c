/*
 * input.c — validating the editable state a client sends.
 *
 * Every rule of docs/api.md "Input rules" is checked here, before anything
 * reaches the store, and a failure names the field. Unknown fields are
 * refused rather than ignored so a typo ("tittle") is not silently lost.
 * jansson has already rejected invalid UTF-8 and NUL bytes in strings.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "content/api.h"

#define TITLE_MAX 500
#define EXCERPT_MAX 2000

static const char *const editable_fields[] = {"type", "slug", "title", "excerpt", "body", "fields", "category", "tags"};

static bool invalid(api_ctx *c, const char *field, const char *rule)
{
    http_problem(c->res, c->req, 422, "invalid_field", "field '%s' %s", field, rule);
    return false;
}

/* A string field: absent is fine (stays NULL); anything else but a string
 * of at most max bytes is 422. */
static bool string_field(api_ctx *c, json_t *doc, const char *name, size_t max, const char **out)
{
    json_t *v = json_object_get(doc, name);
    if (v == NULL)
        return true;
    if (!json_is_string(v))
        return invalid(c, name, "must be a string");
    if (max > 0 && json_string_length(v) > max) {
        char rule[64];
        snprintf(rule, sizeof(rule), "must be at most %zu bytes", max);
        return invalid(c, name, rule);
    }
    *out = json_string_value(v);
    return true;
}

static bool word_field(api_ctx *c, json_t *doc, const char *name, size_t max, const char **out)
{
    const char *s = NULL;
    if (!string_field(c, doc, name, 0, &s))
        return false;
    if (s != NULL && !api_is_word(s, strlen(s), max)) {
        char rule[128];
        snprintf(rule, sizeof(rule), "must be 1 to %zu characters of a-z, 0-9, '-' and '_', starting with a-z or 0-9",
                 max);
        return invalid(c, name, rule);
    }
    *out = s;
    return true;
}

static bool title_field(api_ctx *c, json_t *doc, edit_input *in)
{
    const char *raw = NULL;
    if (!string_field(c, doc, "title", 0, &raw))
        return false;
    if (raw == NULL)
        return true;
    while (isspace((unsigned char)*raw))
        raw++;
    size_t len = strlen(raw);
    while (len > 0 && isspace((unsigned char)raw[len - 1]))
        len--;
    if (len == 0 || len > TITLE_MAX)
        return invalid(c, "title", "must be 1 to 500 bytes, not counting surrounding spaces");
    in->title = strndup(raw, len);
    if (in->title == NULL)
        return invalid(c, "title", "could not be stored (out of memory)");
    in->edit.title = in->title;
    return true;
}

bool api_normalise_tag(const char *tag, char out[TAG_MAX_BYTES + 1])
{
    size_t len = strlen(tag);
    if (len == 0 || len > TAG_MAX_BYTES)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)tag[i];
        if (ch <= 0x20 || ch == 0x7f || ch == ',' || ch == '/')
            return false;
        out[i] = (char)tolower(ch);
    }
    out[len] = '\0';
    return true;
}

static bool tags_field(api_ctx *c, json_t *doc, edit_input *in)
{
    json_t *v = json_object_get(doc, "tags");
    if (v == NULL)
        return true;
    if (!json_is_array(v))
        return invalid(c, "tags", "must be an array of strings");
    if (json_array_size(v) > TAGS_MAX)
        return invalid(c, "tags", "may hold at most 32 tags");
    size_t i;
    json_t *t;
    json_array_foreach(v, i, t)
    {
        char norm[TAG_MAX_BYTES + 1];
        if (!json_is_string(t) || !api_normalise_tag(json_string_value(t), norm))
            return invalid(c, "tags",
                           "must hold strings of 1 to 64 bytes without spaces, control characters, ',' or '/'");
        for (size_t k = 0; k < in->edit.tag_count; k++)
            if (strcmp(in->tags[k], norm) == 0)
                return invalid(c, "tags", "must not repeat a tag (tags are compared lowercased)");
        char *copy = strdup(norm);
        if (copy == NULL)
            return invalid(c, "tags", "could not be stored (out of memory)");
        in->tag_copies[in->edit.tag_count] = copy;
        in->tags[in->edit.tag_count++] = copy;
    }
    in->edit.has_tags = true;
    in->edit.tags = in->tags;
    return true;
}

static bool category_field(api_ctx *c, json_t *doc, edit_input *in)
{
    json_t *v = json_object_get(doc, "category");
    if (v == NULL)
        return true;
    in->edit.has_category = true;
    if (json_is_null(v))
        return true;
    return word_field(c, doc, "category", CATEGORY_MAX, &in->edit.category);
}

static bool known_fields_only(api_ctx *c, json_t *doc, bool create)
{
    const char *key;
    json_t *value;
    json_object_foreach(doc, key, value)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof(editable_fields) / sizeof(editable_fields[0]) && !known; i++)
            known = strcmp(key, editable_fields[i]) == 0;
        if (!known) {
            http_problem(
                c->res, c->req, 422, "unknown_field",
                "unknown field '%.64s'; the fields are type, slug, title, excerpt, body, fields, category, tags", key);
            return false;
        }
        if (!create && strcmp(key, "type") == 0)
            return invalid(c, "type", "cannot change after the item is created");
    }
    return true;
}

bool api_parse_edit(api_ctx *c, json_t *doc, bool create, edit_input *in)
{
    memset(in, 0, sizeof(*in));
    if (!known_fields_only(c, doc, create))
        return false;
    if (!word_field(c, doc, "type", TYPE_MAX, &in->edit.type) ||
        !word_field(c, doc, "slug", SLUG_MAX, &in->edit.slug) || !title_field(c, doc, in) ||
        !string_field(c, doc, "excerpt", EXCERPT_MAX, &in->edit.excerpt) ||
        !string_field(c, doc, "body", 0, &in->edit.body) || !category_field(c, doc, in) || !tags_field(c, doc, in))
        return false;
    json_t *fields = json_object_get(doc, "fields");
    if (fields != NULL && !json_is_object(fields))
        return invalid(c, "fields", "must be a JSON object");
    in->edit.fields = fields;
    if (create) {
        static const char *const required[] = {"type", "slug", "title"};
        for (size_t i = 0; i < 3; i++)
            if (json_object_get(doc, required[i]) == NULL)
                return invalid(c, required[i], "is required");
    }
    return true;
}

void api_edit_free(edit_input *in)
{
    free(in->title);
    for (size_t i = 0; i < in->edit.tag_count; i++)
        free(in->tag_copies[i]);
    memset(in, 0, sizeof(*in));
}
