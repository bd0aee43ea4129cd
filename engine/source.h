/*
 * The source: the librdkafka consumer of the input topic, driven by the libuv loop.
 *
 * The consumer's queue wakes a uv_poll through rd_kafka_queue_io_event_enable (no busy
 * polling). Fetched records are copied into a compact byte ring per partition (and librdkafka's
 * message freed at once: it costs three times the record), so that the engine can process them
 * in one deterministic order (a k-way merge by event time; DESIGN.md contract 4). A partition
 * whose ring holds its share of input.buffer.mb is paused until the engine has drained a quarter
 * of it, which bounds memory whatever the consumer fetches. Partition assignment is handed to the
 * engine, which seeks to the offsets in its state store and commits on revocation.
 */
#ifndef VS_ENGINE_SOURCE_H
#define VS_ENGINE_SOURCE_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>
#include <uv.h>

#include <valuestream/config.h>
#include <valuestream/event.h>

/* One buffered input record; payload and key point into the partition's ring. */
struct vs__record {
    int64_t offset;
    int32_t partition;
    uint32_t len, key_len;
    const void *payload, *key; /* payload NULL for an empty record */
};

struct vs__partition {
    int32_t id;
    int assigned;
    char *ring;             /* entries: header, key, payload, each 8-byte aligned */
    size_t cap, head, tail; /* bytes; entries from head to tail, wrapping at wrap */
    size_t wrap, used;      /* where the entries before the start end; bytes in use */
    uint32_t count;         /* records in the ring */
    int64_t fetch_offset;   /* offset after the last record taken into the ring; -1 none */
    struct vs__record rec;  /* the head record, as vs__source_peek returns it */
    int at_eof;             /* reached the end of the log, nothing fetched since */
    int paused;
    rd_kafka_topic_partition_list_t *one; /* this partition alone, to pause and resume it */
    int64_t next_offset;      /* offset after the last record processed; -1 if none yet */
    uint64_t last_arrival_ms; /* wall clock of the last fetched record, for idle detection */
    /* The decoded head record (engine-owned). */
    int head_state; /* 0 not decoded, 1 decoded and valid */
    struct vs_event event;
    char *strbuf;
    size_t strcap;
    /* Event time (engine-owned). */
    int has_watermark;
    int64_t max_ts, watermark;
    int64_t next_timer; /* lower bound of the partition's next timer's fire time */
};

struct vs__source_callbacks {
    void *arg;
    /* The assignment: fill each element's offset (where to start), then the source assigns. */
    int (*on_assign)(void *arg, rd_kafka_topic_partition_list_t *parts);
    /* Before partitions are taken away: commit what was processed. */
    void (*on_revoke)(void *arg, rd_kafka_topic_partition_list_t *parts);
    /* Records are waiting in the consumer's queue. */
    void (*on_readable)(void *arg);
};

struct vs__source;

extern const struct vs_config_key vs__source_config[];

/* Check the source's config values (before anything connects); VS_ECONFIG with a message naming
 * the key. */
int vs__source_check_config(const struct vs_config *cfg, char *errbuf, size_t errlen);

struct vs__source *vs__source_new(const struct vs_config *cfg,
                                  const struct vs__source_callbacks *cb, char *errbuf,
                                  size_t errlen);
void vs__source_free(struct vs__source *s);

int vs__source_attach(struct vs__source *s, uv_loop_t *loop);
/* Stop waking the loop (for draining); closes the poll handle. */
void vs__source_detach(struct vs__source *s);

/* Move everything the consumer's queue holds into the partition buffers (pausing a partition
 * whose buffer is full), so librdkafka's own prefetch caps are never what stops the fetcher.
 * Returns the number of queue entries taken (records, EOF and error events); serves
 * rebalances. */
int vs__source_fetch(struct vs__source *s);

/* Records received so far (EOF and error events not counted). */
uint64_t vs__source_received(const struct vs__source *s);

/* Partitions paused so far because their input buffer was full (input.buffer.mb). */
uint64_t vs__source_pauses(const struct vs__source *s);

/* The partition table, indexed by partition id; *n is its length. */
struct vs__partition *vs__source_partitions(struct vs__source *s, int *n);

/* The head record of p (NULL if none), and drop it after processing (offset recorded). */
const struct vs__record *vs__source_peek(struct vs__partition *p);
void vs__source_pop(struct vs__source *s, struct vs__partition *p);

/* The next offset of every assigned partition now (the caller owns the list), and its commit
 * to Kafka (async, for lag monitoring only; the list is freed). */
rd_kafka_topic_partition_list_t *vs__source_offsets(struct vs__source *s);
void vs__source_commit_offsets(struct vs__source *s, rd_kafka_topic_partition_list_t *l);

/* Sum over assigned partitions of (high watermark - next offset), from cached metadata. */
int64_t vs__source_lag(struct vs__source *s);

const char *vs__source_topic(const struct vs__source *s);
rd_kafka_t *vs__source_handle(struct vs__source *s);

/* Check that the input topic exists and subscribe to it: VS_EKAFKA with a message when no
 * broker answers within timeout_ms or the topic does not exist. */
int vs__source_start(struct vs__source *s, int timeout_ms, char *errbuf, size_t errlen);

/* Close the consumer (leaves the group; triggers on_revoke). */
void vs__source_close(struct vs__source *s);

#endif
