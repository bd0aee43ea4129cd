/*
 * Log level control (vs_log itself is public, in operator.h).
 */
#ifndef VS_ENGINE_LOG_H
#define VS_ENGINE_LOG_H

#include <valuestream/operator.h>

void vs__log_set_level(enum vs_log_level level);
/* "error", "warn", "info", "debug" (any case) -> 0, else -1. */
int vs__log_level_parse(const char *s, enum vs_log_level *out);

#endif
