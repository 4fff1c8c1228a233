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

/* One half: 1 to 8 hex digits. */
static bool hex_half(const char *text, size_t len, uint32_t *out)
{
    if (len == 0 || len > 8)
        return false;
    uint32_t v = 0;
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

bool lsn_parse(const char *text, size_t len, lsn_t *out)
{
    size_t slash = 0;
    while (slash < len && text[slash] != '/')
        slash++;
    uint32_t high, low;
    if (slash == len || !hex_half(text, slash, &high) || !hex_half(text + slash + 1, len - slash - 1, &low))
        return false;
    *out = (lsn_t)high << 32 | low;
    return true;
}
