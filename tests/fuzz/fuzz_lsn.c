/*
 * fuzz_lsn.c — the Strata-LSN request header's parser (lsn_parse in
 * src/core/lsn.c), which every read carrying it goes through, and the
 * tiers' fixed-width form (lsn_parse_hex16, the bus message).
 *
 * Properties: a value is taken only if it is "X/Y" of 1 to 8 hex digits
 * each, and then formatting it and parsing the text gives the same
 * position; a refused value leaves the output untouched. The same for 16
 * hex digits when the input has that many bytes.
 */
#include "core/fmt.h"
#include "core/lsn.h"
#include "fuzz.h"

static bool is_hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The grammar, written plainly, to check the parser against. */
static bool well_formed(const uint8_t *data, size_t size)
{
    const uint8_t *slash = memchr(data, '/', size);
    if (slash == NULL)
        return false;
    size_t high = (size_t)(slash - data), low = size - high - 1;
    if (high < 1 || high > 8 || low < 1 || low > 8)
        return false;
    for (size_t i = 0; i < size; i++)
        if (i != high && !is_hex(data[i]))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    lsn_t lsn = 42;
    bool ok = lsn_parse(text, size, &lsn);
    if (ok != well_formed(data, size))
        fuzz_fail("lsn_parse disagrees with the grammar");
    if (!ok && lsn != 42)
        fuzz_fail("a refused value changed the output");
    if (ok) {
        char again[LSN_TEXT_MAX];
        size_t n = lsn_format(lsn, again);
        lsn_t back = 0;
        if (n >= LSN_TEXT_MAX || !lsn_parse(again, n, &back) || back != lsn)
            fuzz_fail("format and parse do not round-trip");
    }
    if (size >= 16) {
        lsn_t wide = 7;
        bool hex = true;
        for (size_t i = 0; i < 16; i++)
            hex = hex && is_hex(data[i]);
        if (lsn_parse_hex16(text, &wide) != hex || (!hex && wide != 7))
            fuzz_fail("lsn_parse_hex16 disagrees with 16 hex digits");
        if (hex) {
            char out[16];
            fmt_hex(out, wide, 16);
            lsn_t back = 0;
            if (!lsn_parse_hex16(out, &back) || back != wide)
                fuzz_fail("the fixed-width form does not round-trip");
        }
    }
    free(text);
    return 0;
}
