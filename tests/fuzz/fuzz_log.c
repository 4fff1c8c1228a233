/*
 * fuzz_log.c — the JSON line builder of the logs (src/core/log.c), which
 * every request's path, method and request id go through: whatever bytes
 * and however long, a line must stay inside its 4 KB buffer and be one
 * valid JSON object (jansson parses it, allowing the \u0000 a NUL byte of
 * the input becomes), cut at a field boundary and marked "truncated" when
 * it does not fit.
 *
 * The input is split at '\n' into up to 8 values, written as string
 * fields in turn (with an integer between them), as the access line
 * writes method, path and request id; a long value or many of them fill
 * the line.
 */
#include <jansson.h>

#include "core/log.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    log_line line;
    log_begin(&line, LOG_ERROR, "request");
    const uint8_t *rest = data;
    size_t left = size;
    static const char *const keys[] = {"method", "path", "request_id", "a", "b", "c", "d", "e"};
    static const char *const lengths[] = {"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"};
    for (size_t i = 0; i < 8 && (i == 0 || left > 0); i++) {
        size_t value_len, tail_len;
        const uint8_t *tail = fuzz_split(rest, left, '\n', &value_len, &tail_len);
        log_strn(&line, keys[i], (const char *)rest, value_len);
        log_int(&line, lengths[i], (int64_t)value_len - 2048);
        rest = tail;
        left = tail_len;
    }
    log_finish(&line);
    if (line.len > sizeof(line.buf) || line.len < 2 || line.buf[line.len - 1] != '\n' || line.buf[line.len - 2] != '}')
        fuzz_fail("the line is not closed inside its buffer");
    json_error_t error;
    json_t *doc = json_loadb(line.buf, line.len - 1, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &error);
    if (!json_is_object(doc))
        fuzz_fail("the line is not one JSON object");
    if (strcmp(json_string_value(json_object_get(doc, "msg")), "request") != 0)
        fuzz_fail("the line lost its message");
    json_decref(doc);
    return 0;
}
