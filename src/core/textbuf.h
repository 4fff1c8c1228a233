/*
 * textbuf.h — a stdio stream into memory, like open_memstream, but bounded:
 * a renderer writes a document of unknown size with fprintf/fwrite, and the
 * buffer refuses to grow past `max` bytes. The write that would pass the
 * bound fails, the stream's error flag is set (ferror), and a renderer that
 * checks ferror between its pieces stops there: a document too large to
 * send is never built, whatever its input.
 *
 * The text starts `reserve` bytes into the buffer, so a caller can put its
 * own header in front (history.c's cached document: metadata, then body)
 * and keep the rendered bytes without copying them again.
 *
 * Ownership: the buffer is the textbuf's until textbuf_take hands it over;
 * textbuf_free releases what was not taken.
 */
#ifndef STRATA_TEXTBUF_H
#define STRATA_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct textbuf {
    char *data; /* malloc'd: reserve bytes, then len bytes of text and a NUL */
    size_t reserve, len, capacity, max;
    bool over;      /* a write would have passed max: the text is cut */
    bool no_memory; /* a write could not grow the buffer */
} textbuf;

/* Opens a stream writing into b (initialised here); NULL when out of memory. */
FILE *textbuf_open(textbuf *b, size_t reserve, size_t max);

/* Closes the stream. True when everything written is in the buffer (not
 * over, no failed write); false otherwise, b->over saying whether the bound
 * was the cause. */
bool textbuf_close(textbuf *b, FILE *stream);

/* The buffer (reserve bytes, then the NUL-terminated text), shrunk to fit;
 * the caller frees it. b is left empty. */
char *textbuf_take(textbuf *b);

void textbuf_free(textbuf *b);

#endif
