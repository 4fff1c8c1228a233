/*
 * utf8.h — the one test of well-formed UTF-8 that everything quoting
 * text from outside uses: the access log and problem documents (a
 * client's path), diffs (an editor's text), search (a reader's query).
 *
 * Well-formed is RFC 3629 section 4's table: no overlong form, no UTF-16
 * surrogate, nothing above U+10FFFF. The second byte's range carries
 * those rules, so a sequence is judged byte by byte, front to back, and
 * the first byte that does not fit ends the look: a NUL never fits, so a
 * NUL-terminated string is never read past its end.
 */
#ifndef STRATA_UTF8_H
#define STRATA_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The length (1 to 4) of the well-formed UTF-8 sequence at s, of which at
 * most avail bytes (at least 1) may be read, or 0 if none starts there;
 * its code point in *cp unless cp is NULL. */
size_t utf8_sequence(const unsigned char *s, size_t avail, uint32_t *cp);

#endif
