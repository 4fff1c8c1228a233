/*
 * fuzz_time.c — the RFC 3339 date-time parser (time_parse_rfc3339 in
 * src/core/timetext.c), which reads the publish_at and unpublish_at an
 * editor sends.
 *
 * Properties: a refused text leaves the output untouched; a taken one is
 * at or after the epoch, and written back in UTC to the millisecond
 * ("YYYY-MM-DDTHH:MM:SS.mmmZ", by gmtime_r) parses to the same instant.
 * ASan checks that no byte past the input is read.
 */
#include <time.h>

#include "core/timetext.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    int64_t ms = -7;
    bool ok = time_parse_rfc3339(text, size, &ms);
    if (!ok && ms != -7)
        fuzz_fail("a refused text changed the output");
    if (ok) {
        if (ms < 0)
            fuzz_fail("an instant before the epoch");
        time_t secs = (time_t)(ms / 1000);
        struct tm utc;
        char again[40];
        gmtime_r(&secs, &utc);
        size_t n = strftime(again, sizeof again, "%Y-%m-%dT%H:%M:%S", &utc);
        n += (size_t)snprintf(again + n, sizeof again - n, ".%03dZ", (int)(ms % 1000));
        int64_t back = -1;
        if (!time_parse_rfc3339(again, n, &back) || back != ms)
            fuzz_fail("write and parse do not round-trip");
    }
    free(text);
    return 0;
}
