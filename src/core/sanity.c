/*
 * sanity.c — where a failed invariant goes (sanity.h): one line on stderr,
 * then abort(), unless a test installed its own hook.
 *
 * The hook is one pointer read without a lock: tests set it before they
 * break anything, and the server never changes it. In the release build
 * this file is empty.
 */
#include "core/sanity.h"

#ifdef STRATA_SANITY

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static void sanity_abort(const char *file, int line, const char *what)
{
    fprintf(stderr, "strata: invariant broken at %s:%d: %s\n", file, line, what);
    fflush(stderr);
    abort();
}

static _Atomic(sanity_hook) hook = sanity_abort;

sanity_hook sanity_set_hook(sanity_hook next)
{
    return atomic_exchange(&hook, next != NULL ? next : sanity_abort);
}

void sanity_report(const char *file, int line, const char *format, ...)
{
    char what[512];
    va_list args;
    va_start(args, format);
    vsnprintf(what, sizeof what, format, args);
    va_end(args);
    atomic_load (&hook)(file, line, what);
}

#endif
