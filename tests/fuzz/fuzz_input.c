/*
 * fuzz_input.c — the JSON body of an editor's create (POST
 * /v1/{site}/content) and save (PUT /v1/{site}/content/{id}), read as
 * editor.c reads it: api_json_body (src/content/api.c: jansson, duplicate
 * keys refused, an object required) then api_parse_edit
 * (src/content/input.c: every input rule of docs/api.md) and
 * api_edit_free.
 *
 * The first input byte is a mode: bit 0 set is a save (type forbidden,
 * nothing required), clear a create; bit 1 sends a Content-Type the
 * routes refuse. The rest is the body. Every refusal must be 400, 415 or
 * 422 with a detail; an accepted body's tags must come out normalised
 * (lowercase, and normalising them again changes nothing).
 */
#include <ctype.h>

#include "content/api.h"
#include "fuzz.h"

static void tags_check(const edit_input *in)
{
    for (size_t i = 0; i < in->edit.tag_count; i++) {
        const char *tag = in->edit.tags[i];
        char again[TAG_MAX_BYTES + 1];
        if (!api_normalise_tag(tag, again) || strcmp(again, tag) != 0)
            abort();
        for (const char *p = tag; *p != '\0'; p++)
            if (isupper((unsigned char)*p))
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    bool create = !(data[0] & 1);
    http_request req;
    http_response res = {0};
    fuzz_request(&req);
    req.method = create ? HTTP_POST : HTTP_PUT;
    req.content_type = data[0] & 2 ? "text/plain" : "application/json; charset=utf-8";
    req.body = fuzz_strndup(data + 1, size - 1);
    req.body_len = size - 1;
    api_ctx c = {.req = &req, .res = &res};
    json_t *doc = NULL;
    if (api_json_body(&c, true, &doc)) {
        edit_input in;
        if (api_parse_edit(&c, doc, create, &in)) {
            if (res.status != 0)
                abort();
            tags_check(&in);
        }
        api_edit_free(&in);
        json_decref(doc);
    }
    int s = res.status;
    if (s != 0 && ((s != 400 && s != 415 && s != 422) || res.body == NULL || strstr(res.body, "\"detail\"") == NULL))
        abort();
    http_response_free(&res);
    free(req.body);
    return 0;
}
