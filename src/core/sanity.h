/*
 * sanity.h — invariant checks compiled into the test builds only.
 *
 * The Makefile defines STRATA_SANITY for the ASan/UBSan, fuzz and TSan
 * builds; the release build has none of this. As in SQLite (a
 * `*_sanity()` checker per core structure, called from assert) and Redis
 * (serverAssert), a structure's checker walks it at the points where its
 * invariants must hold, and a broken invariant is reported with what was
 * wrong, where and the values seen: the report goes to the failure hook,
 * whose default prints one line on stderr and aborts, so a system test
 * fails loudly (the server dies, the harness reports it). A unit test that
 * corrupts a structure on purpose installs a hook that only records.
 *
 * A checker returns false at the first broken invariant (a corrupted list
 * cannot be walked further) after reporting it:
 *
 *     SANITY_EXPECT(q->bytes == sum, "queue %d holds %zu bytes, entries sum to %zu", q, q->bytes, sum);
 */
#ifndef STRATA_SANITY_H
#define STRATA_SANITY_H

#include <stdbool.h>

#ifdef STRATA_SANITY

/* Receives a failed invariant: the file and line of the check and one
 * sentence with the values. The default prints it and aborts. */
typedef void (*sanity_hook)(const char *file, int line, const char *what);

/* Installs hook (NULL restores the default); returns the previous one. */
sanity_hook sanity_set_hook(sanity_hook hook);

/* Formats the sentence and hands it to the hook. */
void sanity_report(const char *file, int line, const char *format, ...) __attribute__((format(printf, 3, 4)));

#define SANITY_EXPECT(cond, ...)                                                                                       \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            sanity_report(__FILE__, __LINE__, __VA_ARGS__);                                                            \
            return false;                                                                                              \
        }                                                                                                              \
    } while (0)

/* The same where there is nothing to return (a precondition met on entry). */
#define SANITY_CHECK(cond, ...)                                                                                        \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            sanity_report(__FILE__, __LINE__, __VA_ARGS__);                                                            \
    } while (0)

#else

#define SANITY_CHECK(cond, ...) ((void)0)

#endif

#endif
