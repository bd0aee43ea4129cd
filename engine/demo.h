/*
 * `valuestream demo`: the whole product in one command. It starts the embedded broker,
 * generates the synthetic shop, runs the engine to the end of the stream with a live progress
 * line, and prints a summary: records per output topic, two decoded records of each, dead
 * letters by reason, and detection quality against the generator's truth.
 */
#ifndef VS_ENGINE_DEMO_H
#define VS_ENGINE_DEMO_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

int vs__demo_main(int argc, char **argv);

/*
 * Read a topic from the beginning to its current end (every partition), calling fn for each
 * record until fn returns non-zero. Returns the number of records read, or a negative VS_E*
 * code.
 */
typedef int (*vs__topic_fn)(void *arg, const rd_kafka_message_t *msg);
int64_t vs__read_topic(const char *bootstrap, const char *topic, vs__topic_fn fn, void *arg,
                       char *errbuf, size_t errlen);

#endif
