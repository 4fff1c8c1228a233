/*
 * fuzz_config.c — the configuration file parser (src/config/config.c), by
 * the path `strata serve --config FILE` takes: the input is written to a
 * file, then config_load reads it as the flag {"config": FILE} asks
 * (libinih, the long-line pre-scan, every setting's parser and bounds,
 * then the listen address), and config_reload reads it again as SIGHUP
 * does (only the reloadable keys). Every refusal must say why; the
 * STRATA_* environment is cleared first so only the file speaks.
 */
#include <stdio.h>
#include <unistd.h>

#include "config/config.h"
#include "fuzz.h"

extern char **environ;

static char path[64]; /* the file --config names */
static int fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    for (char **e = environ; *e != NULL;) {
        if (strncmp(*e, "STRATA_", 7) == 0) {
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
            unsetenv(name); /* shifts environ: look at *e again */
        } else {
            e++;
        }
    }
    /* An unlinked file, opened again by its /proc name: nothing is left
     * behind however the run ends. */
    char tmp[] = "/tmp/strata-fuzz-config-XXXXXX";
    fd = mkstemp(tmp);
    if (fd < 0 || unlink(tmp) != 0)
        abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return 0;
}

static void file_write(const uint8_t *data, size_t size)
{
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    file_write(data, size);
    const char *names[] = {"config"};
    const char *values[] = {path};
    char err[CONFIG_ERR_MAX] = "";
    strata_config *cfg = malloc(sizeof *cfg);
    if (cfg == NULL)
        abort();
    config_defaults(cfg);
    if (config_load(cfg, names, values, 1, err) == 0) {
        if (config_reload(cfg, names, values, 1, err) != 0)
            abort(); /* the file that loaded must reload */
        config_thread_count(cfg);
    } else if (err[0] == '\0') {
        abort();
    }
    free(cfg);
    return 0;
}
