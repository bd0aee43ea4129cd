/*
 * The sink: one idempotent librdkafka producer for the output topics and the dead-letter topic.
 *
 * Delivery reports are served on the libuv loop (the producer's queue wakes a uv_poll). The
 * engine may commit state only once every record it produced before the commit has been
 * acknowledged (vs__sink_seal and vs__sink_sealed_state without waiting, or vs__sink_flush),
 * so that a crash after a commit cannot lose an output.
 */
#ifndef VS_ENGINE_SINK_H
#define VS_ENGINE_SINK_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>
#include <uv.h>

#include <valuestream/config.h>
#include <valuestream/operator.h>

#include "metrics.h"

struct vs__sink;

/* Topic indexes: the outputs (enum vs_output), then the dead letters. */
#define VS__SINK_DEAD_LETTERS VS_OUT_COUNT
#define VS__SINK_TOPICS (VS_OUT_COUNT + 1)

extern const struct vs_config_key vs__sink_config[];

struct vs__sink *vs__sink_new(const struct vs_config *cfg, struct vs__metrics *metrics,
                              char *errbuf, size_t errlen);
void vs__sink_free(struct vs__sink *s);

/* Serve delivery reports on loop, calling on_delivered (if not NULL) after each batch. */
int vs__sink_attach(struct vs__sink *s, uv_loop_t *loop, void (*on_delivered)(void *arg),
                    void *arg);
/* Stop the uv_poll handle (closed through the loop); call before closing the loop. */
void vs__sink_detach(struct vs__sink *s);

/* Produce one record (copied) with the headers vs.id and vs.kind. */
int vs__sink_produce(struct vs__sink *s, int topic, const char *key, size_t keylen, const void *val,
                     size_t len, int64_t ts, const char *id, const char *kind);

/* An input record as the dead-letter topic receives it: original bytes and where they were. */
struct vs__sink_source {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key, *payload;
    size_t key_len, len;
};

/* Dead-letter the original record msg with the error kind ("decode", "schema", "too_large")
 * and its reason. Counts deadletters.<kind>. */
int vs__sink_dead_letter(struct vs__sink *s, const struct vs__sink_source *msg, const char *kind,
                         const char *why);

/* Wait (serving delivery reports) until everything produced is acknowledged. VS_EKAFKA when a
 * record failed to deliver or timeout_ms passed. */
int vs__sink_flush(struct vs__sink *s, int timeout_ms);

/* End the current epoch of records (at a sealed commit), and ask whether every record of the
 * epoch ended last is acknowledged: 1 yes, 0 not yet, VS_EKAFKA when a record failed. Needs no
 * flush: the answer changes as delivery reports are served on the loop. */
void vs__sink_seal(struct vs__sink *s);
int vs__sink_sealed_state(const struct vs__sink *s);

/* Records produced to a topic index so far, delivered or not. */
int64_t vs__sink_produced(const struct vs__sink *s, int topic);
const char *vs__sink_topic_name(const struct vs__sink *s, int topic);

#endif
