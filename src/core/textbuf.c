/*
 * textbuf.c — a bounded memory stream (textbuf.h), made with glibc's
 * fopencookie: stdio buffers the renderer's small writes and hands them
 * here in blocks, and a block that would pass the bound is refused whole
 * (the write returns 0, which stdio turns into the stream's error flag).
 * The buffer grows by doubling up to the bound, so building a document of
 * n bytes costs O(n) copies and at most 2n bytes, never more than max.
 */
#include "core/textbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { TEXTBUF_FIRST_CAPACITY = 4096 };

static bool textbuf_grow(textbuf *b, size_t needed)
{
    size_t capacity = b->capacity;
    while (capacity < needed)
        capacity = capacity > SIZE_MAX / 2 ? needed : capacity * 2;
    size_t limit = b->reserve + b->max + 1;
    if (capacity > limit)
        capacity = limit;
    char *grown = realloc(b->data, capacity);
    if (grown == NULL)
        return false;
    b->data = grown;
    b->capacity = capacity;
    return true;
}

static ssize_t textbuf_write(void *cookie, const char *bytes, size_t size)
{
    textbuf *b = cookie;
    if (b->over || b->no_memory)
        return 0;
    if (size > b->max - b->len) {
        b->over = true;
        return 0;
    }
    size_t needed = b->reserve + b->len + size + 1; /* with the NUL */
    if (needed > b->capacity && !textbuf_grow(b, needed)) {
        b->no_memory = true;
        return 0;
    }
    memcpy(b->data + b->reserve + b->len, bytes, size);
    b->len += size;
    b->data[b->reserve + b->len] = '\0';
    return (ssize_t)size;
}

FILE *textbuf_open(textbuf *b, size_t reserve, size_t max)
{
    *b = (textbuf){.reserve = reserve, .max = max};
    size_t first = reserve + (max < TEXTBUF_FIRST_CAPACITY ? max : TEXTBUF_FIRST_CAPACITY) + 1;
    b->data = malloc(first);
    if (b->data == NULL)
        return NULL;
    b->capacity = first;
    b->data[reserve] = '\0';
    FILE *stream = fopencookie(b, "w", (cookie_io_functions_t){.write = textbuf_write});
    if (stream == NULL)
        textbuf_free(b);
    return stream;
}

bool textbuf_close(textbuf *b, FILE *stream)
{
    bool failed = ferror(stream) != 0;
    failed |= fclose(stream) != 0;
    return !failed && !b->over && !b->no_memory;
}

char *textbuf_take(textbuf *b)
{
    char *data = b->data;
    char *fitted = realloc(data, b->reserve + b->len + 1);
    *b = (textbuf){0};
    return fitted != NULL ? fitted : data;
}

void textbuf_free(textbuf *b)
{
    free(b->data);
    *b = (textbuf){0};
}
