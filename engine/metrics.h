/*
 * Metrics: named counters and gauges that the engine and operators update directly through
 * stable pointers (no lookup per event), printed as a progress line and as a final summary.
 */
#ifndef VS_ENGINE_METRICS_H
#define VS_ENGINE_METRICS_H

#include <stdint.h>
#include <stdio.h>

struct vs__metrics;

struct vs__metrics *vs__metrics_new(void);
void vs__metrics_free(struct vs__metrics *m);

/* Created on first use; NULL only when the table (1024 names) is full. */
int64_t *vs__metrics_counter(struct vs__metrics *m, const char *name);
double *vs__metrics_gauge(struct vs__metrics *m, const char *name);

/* Value of a counter, 0 if it does not exist. */
int64_t vs__metrics_get(const struct vs__metrics *m, const char *name);

/* Every metric as one JSON object {"name":value,...} on one line. */
void vs__metrics_print_json(const struct vs__metrics *m, FILE *out);

typedef void (*vs__metrics_fn)(void *arg, const char *name, int is_gauge, int64_t count,
                               double gauge);
void vs__metrics_foreach(const struct vs__metrics *m, vs__metrics_fn fn, void *arg);

#endif
