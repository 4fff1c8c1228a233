/*
 * utf8.c — well-formed UTF-8 (see utf8.h).
 */
#include "core/utf8.h"

size_t utf8_sequence(const unsigned char *s, size_t avail, uint32_t *cp)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf; /* the second byte's range */
    size_t len;
    if (c < 0x80)
        len = 1;
    else if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, lo = c == 0xe0 ? 0xa0 : lo, hi = c == 0xed ? 0x9f : hi; /* no overlong form, no surrogate */
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, lo = c == 0xf0 ? 0x90 : lo, hi = c == 0xf4 ? 0x8f : hi; /* no overlong form, nothing past U+10FFFF */
    else
        return 0;
    if (len > avail)
        return 0;
    uint32_t point = len == 1 ? c : c & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xbf))
            return 0;
        point = point << 6 | (s[i] & 0x3fu);
    }
    if (cp != NULL)
        *cp = point;
    return len;
}
