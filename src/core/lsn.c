/*
 * lsn.c — PostgreSQL WAL positions as text (see lsn.h).
 */
#include "core/lsn.h"

#include <stdio.h>

size_t lsn_format(lsn_t lsn, char out[LSN_TEXT_MAX])
{
    int n = snprintf(out, LSN_TEXT_MAX, "%X/%X", (unsigned)(lsn >> 32), (unsigned)(lsn & 0xffffffffu));
    return (size_t)n;
}

/* text[0..len) as hex digits, either case, nothing else (len ≤ 16). */
static bool hex_digits(const char *text, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        unsigned digit;
        if (ch >= '0' && ch <= '9')
            digit = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            digit = (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            digit = (unsigned)(ch - 'A' + 10);
        else
            return false;
        v = v << 4 | digit;
    }
    *out = v;
    return true;
}

/* One half of "X/Y": 1 to 8 hex digits. */
static bool hex_half(const char *text, size_t len, uint64_t *out)
{
    return len >= 1 && len <= 8 && hex_digits(text, len, out);
}

bool lsn_parse(const char *text, size_t len, lsn_t *out)
{
    size_t slash = 0;
    while (slash < len && text[slash] != '/')
        slash++;
    uint64_t high, low;
    if (slash == len || !hex_half(text, slash, &high) || !hex_half(text + slash + 1, len - slash - 1, &low))
        return false;
    *out = high << 32 | low;
    return true;
}

bool lsn_parse_hex16(const char text[16], lsn_t *out)
{
    return hex_digits(text, 16, out);
}
