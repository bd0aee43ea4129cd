/*
 * The engine: one libuv loop that owns the state store and the operators, consumes the input
 * topic through the source, runs every event through the operators in a deterministic order,
 * fires event-time timers, produces through the sink and commits (DESIGN.md contracts 2-6).
 */
#ifndef VS_ENGINE_ENGINE_H
#define VS_ENGINE_ENGINE_H

#include <stddef.h>

#include <valuestream/config.h>

#include "metrics.h"

extern const struct vs_config_key vs__engine_config[];

struct vs__engine_run_options {
    int until_end;     /* exit once every assigned partition is at its end, all committed */
    int progress;      /* print a live progress line to stderr */
    struct vs__metrics *metrics; /* where to count (NULL: the engine's own) */
};

/* Every config table the engine reads: engine, source, sink, then each operator's. ntables
 * receives the count. */
const struct vs_config_key *const *vs__engine_config_tables(int *ntables);

/* Run until SIGINT/SIGTERM (or the end, with until_end). 0 on a clean exit. */
int vs__engine_run(const struct vs_config *cfg, const struct vs__engine_run_options *opts,
                   char *errbuf, size_t errlen);

#endif
