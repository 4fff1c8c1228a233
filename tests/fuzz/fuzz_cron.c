/*
 * fuzz_cron.c — the schedule parser of jobs.schedule_* settings
 * (src/jobs/cron.c), as jobs.c calls it at start and on SIGHUP.
 *
 * The input is the schedule text. A schedule that parses is asked for its
 * next tick after a few instants (the epoch, this date, the eve of
 * a skipped leap day in 2100), and each answer is checked: a tick lies
 * strictly after the instant, on a whole minute (or a multiple of the
 * @every period), and asking again from just before it gives it back — a
 * tick the scheduler could skip or repeat is a bug even when no sanitizer
 * sees it.
 */
#include "fuzz.h"
#include "jobs/cron.h"

static const int64_t instants_ms[] = {0, 1764806400000LL, 4107542340000LL};

static void tick_check(const cron_schedule *s, int64_t after_ms)
{
    int64_t tick = cron_next(s, after_ms);
    if (tick < 0)
        return;
    if (tick <= after_ms || tick % (s->kind == CRON_EVERY ? s->every_ms : 60000) != 0)
        abort();
    if (cron_next(s, tick - 1) != tick)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    cron_schedule s;
    char err[160];
    if (cron_parse(text, &s, err, sizeof err) == 0) {
        for (size_t i = 0; i < sizeof instants_ms / sizeof instants_ms[0]; i++)
            tick_check(&s, instants_ms[i]);
    } else if (err[0] == '\0') {
        abort(); /* a refusal always says why */
    }
    free(text);
    return 0;
}
