/*
 * fuzz_accept.c — the Accept-Encoding reader (accept_encoding_choose in
 * src/http/compress.c), which picks the variant of every cache hit on
 * the loop thread.
 *
 * The input is one byte saying which variants the representation has
 * (br, zstd, gzip: its low three bits), then the header value, not
 * NUL-terminated, as h2o holds it. The choice must be a variant that
 * exists or identity, and the same when asked twice.
 */
#include "fuzz.h"
#include "http/compress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned available = 0;
    for (int e = ENC_BR; e < ENC_COUNT; e++)
        if (data[0] & (1u << (e - ENC_BR)))
            available |= 1u << e;
    size_t len = size - 1;
    char *header = malloc(len + 1);
    if (header == NULL)
        abort();
    if (len > 0)
        memcpy(header, data + 1, len);
    http_encoding chosen = accept_encoding_choose(header, len, available);
    if (chosen != ENC_IDENTITY && !(available & (1u << chosen)))
        abort();
    if (accept_encoding_choose(header, len, available) != chosen)
        abort();
    free(header);
    return 0;
}
