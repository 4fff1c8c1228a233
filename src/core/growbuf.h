/*
 * growbuf.h — a byte buffer that grows as text is appended: for renderers
 * that write a document of a size they learn as they go (an item's JSON,
 * a list page). A failed allocation marks the buffer failed and later
 * appends do nothing, so a renderer appends freely and checks once.
 *
 * Bounds are the caller's: what it appends is bounded by its input (the
 * rows it read), not by this buffer.
 */
#ifndef STRATA_GROWBUF_H
#define STRATA_GROWBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct growbuf {
    char *data; /* malloc'd; not NUL-terminated */
    size_t len, cap;
    bool failed; /* an allocation failed: the text is cut */
} growbuf;

/* Appends n bytes of s. */
void growbuf_put(growbuf *b, const char *s, size_t n);
#define GROWBUF_LITERAL(b, s) growbuf_put((b), (s), sizeof(s) - 1)
/* Appends v in decimal. */
void growbuf_put_int(growbuf *b, int64_t v);
/* Frees the data; b is empty again. */
void growbuf_free(growbuf *b);

#endif
