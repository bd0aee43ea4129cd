/*
 * What the benchmarks share: a monotonic clock, medians, reading one number out of the
 * engine's metrics file, the plain passthrough's client settings, and the result line (printed last
 * on stdout and kept in bench/results/NAME.json).
 */
#ifndef VS_BENCH_UTIL_H
#define VS_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

static inline void bench_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
    char err[256];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "bench: %s=%s: %s\n", key, value, err);
        exit(1);
    }
}

/* The passthrough's consumer (cc) and producer (pc), set up as the engine's (engine/source.c,
 * engine/sink.c), so that what the engine adds is its own work. */
static inline void bench_passthrough_conf(rd_kafka_conf_t *cc, rd_kafka_conf_t *pc,
                                          const char *bootstrap, const char *group)
{
    bench_conf_set(cc, "bootstrap.servers", bootstrap);
    bench_conf_set(cc, "group.id", group);
    bench_conf_set(cc, "enable.auto.commit", "false");
    bench_conf_set(cc, "fetch.wait.max.ms", "10");
    bench_conf_set(cc, "queued.min.messages", "10000000");
    bench_conf_set(cc, "queued.max.messages.kbytes", "524288");
    bench_conf_set(pc, "bootstrap.servers", bootstrap);
    bench_conf_set(pc, "enable.idempotence", "true");
    bench_conf_set(pc, "linger.ms", "5");
    bench_conf_set(pc, "batch.num.messages", "10000");
    bench_conf_set(pc, "queue.buffering.max.messages", "1000000");
    bench_conf_set(pc, "compression.codec", "none");
}

static inline double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of v[0 .. n) (v is sorted in place). */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), bench_cmp_double);
    return v[n / 2];
}

/* The number after "key": in a metrics.file JSON object, or -1. */
static inline double bench_json_number(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char pat[160];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    char *p = strstr(buf, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

/* Print the result line and keep it as bench/results/NAME.json. */
static inline void bench_result(const char *name, const char *json)
{
    char path[4200];
    mkdir(VS_SOURCE_DIR "/bench/results", 0755);
    snprintf(path, sizeof(path), "%s/bench/results/%s.json", VS_SOURCE_DIR, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%s\n", json);
        fclose(f);
    }
    printf("%s\n", json);
}

#endif
