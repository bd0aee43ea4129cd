/*
 * The embedded broker: librdkafka's mock cluster, in-process, on a loopback port that any Kafka
 * client can reach. Used by `run --embedded`, `demo`, `broker`, the tests and the benchmarks.
 */
#ifndef VS_ENGINE_BROKER_H
#define VS_ENGINE_BROKER_H

#include <stddef.h>

struct vs__broker;

/* Start a one-node mock cluster. NULL and errbuf on failure. */
struct vs__broker *vs__broker_new(char *errbuf, size_t errlen);
void vs__broker_free(struct vs__broker *b);

/* "127.0.0.1:PORT" of the cluster, owned by the broker. */
const char *vs__broker_bootstraps(const struct vs__broker *b);

/* Create a topic with partitions (no-op if it exists). */
int vs__broker_create_topic(struct vs__broker *b, const char *topic, int partitions);

/* `valuestream broker [--partitions N] [--bootstrap-file PATH]`. */
int vs__broker_main(int argc, char **argv);

#endif
