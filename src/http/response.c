/*
 * response.c — building http_response values, including RFC 9457 problems.
 *
 * These run on worker threads as well as loop threads, so they only touch
 * the response they are given. Problem bodies are written by hand, every
 * text a client sent (a slug, a path) escaped as a JSON string
 * (json_escape_into, shared with the access log).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/utf8.h"
#include "http/http.h"

const char *http_status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}

void http_response_header(http_response *res, const char *name, const char *fmt, ...)
{
    if (res->header_count >= HTTP_MAX_HEADERS)
        return;
    http_header *h = &res->headers[res->header_count++];
    h->name = name;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->value, sizeof(h->value), fmt, ap);
    va_end(ap);
}

void http_response_body(http_response *res, int status, const char *content_type, char *body, size_t len)
{
    free(res->body);
    res->status = status;
    res->content_type = content_type;
    res->body = body;
    res->body_len = len;
}

void http_response_copy(http_response *res, int status, const char *content_type, const char *body, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        http_response_body(res, 500, NULL, NULL, 0);
        return;
    }
    memcpy(copy, body, len);
    copy[len] = '\0';
    http_response_body(res, status, content_type, copy, len);
}

/* Replaces, in place, every byte that is not part of valid UTF-8 with '?':
 * a detail is prose for a person, and one quoting what a client sent (or
 * a parser's message cut inside a character, as jansson's own error
 * texts are) reads better with a mark than with an escape. */
static void utf8_repair(char *s)
{
    unsigned char *p = (unsigned char *)s, *end = p + strlen(s);
    while (p < end) {
        size_t n = utf8_sequence(p, (size_t)(end - p), NULL);
        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
}

/* Appends the NUL-terminated s at *p: the caller sized the buffer. */
static void append(char **p, const char *s)
{
    size_t n = strlen(s);
    memcpy(*p, s, n);
    *p += n;
}

/* Appends "," "name":"value" with value escaped as a JSON string (a byte
 * of no valid UTF-8 as \u00XX of it, as the access log writes it). */
static void append_string_member(char **p, const char *end, const char *name, const char *value, size_t len)
{
    append(p, ",\"");
    append(p, name);
    append(p, "\":\"");
    *p = json_escape_into(*p, end, value, len);
    append(p, "\"");
}

/* The document is written by hand, not built with jansson: every error
 * answer pays for it — a flood's 503s, a junk key's 404s — and packing,
 * dumping and freeing a jansson object cost more than the rest of the
 * answer on the loop (measured under bench/overload.sh: 3 % of the
 * loops' time, a fifth of each shed answer's). Member order and text are
 * jansson's compact form. */
void http_problem(http_response *res, const http_request *req, int status, const char *code, const char *detail_fmt,
                  ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, detail_fmt);
    vsnprintf(detail, sizeof(detail), detail_fmt, ap);
    va_end(ap);
    utf8_repair(detail);

    const char *title = http_status_text(status);
    const char *path = req != NULL && req->path != NULL ? req->path : NULL;
    const char *request_id = req != NULL && req->request_id[0] != '\0' ? req->request_id : NULL;
    size_t detail_len = strlen(detail), path_len = path != NULL ? strlen(path) : 0;
    size_t id_len = request_id != NULL ? strlen(request_id) : 0;
    /* 6 bytes at most per byte escaped (\u00XX), and the names and marks */
    size_t size = 128 + 6 * (strlen(title) + detail_len + strlen(code) + path_len + id_len);
    char *body = malloc(size);
    if (body == NULL) {
        http_response_body(res, 500, NULL, NULL, 0);
        return;
    }
    char *p = body, *end = body + size;
    append(&p, "{\"type\":\"about:blank\"");
    append_string_member(&p, end, "title", title, strlen(title));
    p += snprintf(p, (size_t)(end - p), ",\"status\":%d", status);
    append_string_member(&p, end, "detail", detail, detail_len);
    append_string_member(&p, end, "code", code, strlen(code));
    if (path != NULL)
        append_string_member(&p, end, "instance", path, path_len);
    if (request_id != NULL)
        append_string_member(&p, end, "request_id", request_id, id_len);
    append(&p, "}");
    *p = '\0';
    http_response_body(res, status, "application/problem+json", body, (size_t)(p - body));
}

/* Tags are kept in one buffer that grows by TAGS_CHUNK: a response's few
 * tags cost one allocation, not one each. */
#define TAGS_CHUNK 256

static void tag_add(http_response *res, const char *tag, size_t n)
{
    size_t need = res->tags_len + n + 2, room = (res->tags_len + TAGS_CHUNK - 1) / TAGS_CHUNK * TAGS_CHUNK;
    char *grown = res->tags;
    if (res->tags == NULL || need > room) {
        grown = n > 0 && n < 256 ? realloc(res->tags, (need + TAGS_CHUNK - 1) / TAGS_CHUNK * TAGS_CHUNK) : NULL;
        if (grown == NULL) {
            /* An entry missing a tag could outlive an invalidation of it. */
            res->uncacheable = true;
            return;
        }
    }
    if (res->tags_len > 0)
        grown[res->tags_len++] = ' ';
    memcpy(grown + res->tags_len, tag, n);
    grown[res->tags_len + n] = '\0';
    res->tags = grown;
    res->tags_len += n;
}

void http_response_tag(http_response *res, const char *fmt, ...)
{
    char tag[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tag, sizeof(tag), fmt, ap);
    va_end(ap);
    tag_add(res, tag, n > 0 && (size_t)n < sizeof(tag) ? (size_t)n : 0);
}

void http_response_tag_parts(http_response *res, const char *const *parts, size_t count)
{
    char tag[256];
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen(parts[i]);
        if (n + len >= sizeof tag) {
            n = 0; /* too long for a tag: refused, as a printf that did not fit */
            break;
        }
        memcpy(tag + n, parts[i], len);
        n += len;
    }
    tag_add(res, tag, n);
}

void http_response_free(http_response *res)
{
    free(res->body);
    res->body = NULL;
    res->body_len = 0;
    free(res->tags);
    res->tags = NULL;
    res->tags_len = 0;
}

bool http_etag_list_matches(const char *header, size_t header_len, const char *etag, size_t etag_len)
{
    const char *p = header, *end = header + header_len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p < end && *p == '*')
            return true;
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
            p += 2;
        const char *start = p;
        if (p < end && *p == '"') {
            const char *close = memchr(p + 1, '"', (size_t)(end - p - 1));
            if (close == NULL)
                return false;
            p = close + 1;
            if ((size_t)(p - start) == etag_len && memcmp(start, etag, etag_len) == 0)
                return true;
        } else {
            while (p < end && *p != ',')
                p++;
        }
    }
    return false;
}
