/*
 * Logging: one line per message on stderr, prefixed with the level. The level threshold comes
 * from the `log.level` config key (set by the engine at start) so that tests and benchmarks can
 * quiet the engine.
 */
#include <stdarg.h>
#include <stdio.h>

#include <valuestream/operator.h>

#include "log.h"

static enum vs_log_level vs__log_threshold = VS_LOG_INFO;

void vs__log_set_level(enum vs_log_level level)
{
    vs__log_threshold = level;
}

int vs__log_level_parse(const char *s, enum vs_log_level *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        const char *a = names[i], *b = s;
        while (*a && *b && *a == (*b | 0x20)) {
            a++, b++;
        }
        if (!*a && !*b) {
            *out = (enum vs_log_level)i;
            return 0;
        }
    }
    return -1;
}

void vs_log(enum vs_log_level level, const char *fmt, ...)
{
    static const char *const prefix[] = {"error", "warn", "info", "debug"};
    if (level > vs__log_threshold) {
        return;
    }
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "valuestream: %s: %s\n", prefix[level], line);
}
