/*
 * The source (see source.h).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <valuestream/error.h>
#include <valuestream/operator.h>

#include "config.h"
#include "source.h"

const struct vs_config_key vs__source_config[] = {
    {"bootstrap.servers", VS_CONFIG_STRING, "localhost:9092", "Kafka brokers (host:port,...)"},
    {"group.id", VS_CONFIG_STRING, "valuestream", "consumer group of the engine"},
    {"input.topic", VS_CONFIG_STRING, "shop.events", "topic of the shop's events (Avro)"},
    {"input.buffer.per.partition", VS_CONFIG_INT, "20000",
     "records buffered per partition before it is paused"},
    {"input.prefetch.mb", VS_CONFIG_INT, "512",
     "what the consumer may fetch ahead over all partitions of the input topic, MiB (each "
     "partition gets its share, 1 to 16 MiB)"},
    {"input.buffer.records", VS_CONFIG_INT, "640000",
     "records buffered over all assigned partitions: each partition gets its share (at least "
     "256, at most input.buffer.per.partition) before it is paused"},
    {NULL, 0, NULL, NULL},
};

struct vs__source {
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    char *topic;
    struct vs__source_callbacks cb;
    struct vs__partition *parts;
    int nparts;
    const struct vs_config *cfg;
    int64_t prefetch_kbytes; /* the consumer's queued.max.messages.kbytes */
    uint32_t soft_cap;       /* records buffered per partition before it is paused */
    uint32_t per_part_cap;   /* input.buffer.per.partition */
    int64_t total_cap;       /* input.buffer.records */
    int pipefd[2];
    uv_poll_t *poll;
    int closed;
};

#define PREFETCH_MAX_KB 16384 /* per partition: more does not fetch faster from one broker */
#define PREFETCH_MIN_KB 1024

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct vs__partition *partition_get(struct vs__source *s, int32_t id)
{
    if (id < 0) {
        return NULL;
    }
    if (id >= s->nparts) {
        int n = id + 1;
        struct vs__partition *np = realloc(s->parts, sizeof(*np) * (size_t)n);
        if (!np) {
            return NULL;
        }
        memset(np + s->nparts, 0, sizeof(*np) * (size_t)(n - s->nparts));
        for (int i = s->nparts; i < n; i++) {
            np[i].id = i;
            np[i].next_offset = -1;
        }
        s->parts = np;
        s->nparts = n;
    }
    return &s->parts[id];
}

static void partition_clear(struct vs__partition *p)
{
    while (p->count) {
        rd_kafka_message_destroy(p->ring[p->first]);
        p->first = (p->first + 1) % p->cap;
        p->count--;
    }
    p->first = 0;
    p->head_state = 0;
    p->at_eof = 0;
    p->paused = 0;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct vs__source *s = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++) {
            struct vs__partition *p = partition_get(s, parts->elems[i].partition);
            if (p) {
                partition_clear(p);
                p->assigned = 1;
                p->next_offset = -1;
                p->has_watermark = 0;
                p->next_timer = INT64_MIN;
                p->last_arrival_ms = now_ms();
            }
            parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
        }
        if (s->cb.on_assign(s->cb.arg, parts)) {
            vs_log(VS_LOG_ERROR, "cannot restore the assigned partitions' offsets");
        }
        /* The buffers' share: many partitions must not multiply the memory they take. */
        int64_t share = parts->cnt > 0 ? s->total_cap / parts->cnt : s->total_cap;
        share = share < 256 ? 256 : share;
        s->soft_cap = share < (int64_t)s->per_part_cap ? (uint32_t)share : s->per_part_cap;
        rd_kafka_assign(rk, parts);
        vs_log(VS_LOG_INFO, "assigned %d partition(s) of %s", parts->cnt, s->topic);
    } else {
        s->cb.on_revoke(s->cb.arg, parts);
        for (int i = 0; i < parts->cnt; i++) {
            struct vs__partition *p = partition_get(s, parts->elems[i].partition);
            if (p) {
                partition_clear(p);
                p->assigned = 0;
            }
        }
        rd_kafka_assign(rk, NULL);
    }
}

static int apply_kafka(void *arg, const char *key, const char *value, char target)
{
    char err[512];
    if (target == 'p') {
        return 0;
    }
    if (rd_kafka_conf_set(arg, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        vs_log(VS_LOG_ERROR, "config key 'kafka.%s': %s", key, err);
        return VS_ECONFIG;
    }
    return 0;
}

/*
 * The consumer, with prefetch of at most kbytes per partition. librdkafka stops fetching a
 * partition whose local queue holds queued.min.messages or queued.max.messages.kbytes, and then
 * backs off for long: with 20000 records a replay ran at a quarter of the broker's speed, so the
 * bytes cap is the bound, and it applies per partition (see vs__source_start).
 */
static int consumer_open(struct vs__source *s, const struct vs_config *cfg, int64_t kbytes,
                         char *errbuf, size_t errlen)
{
    char kb[32];
    snprintf(kb, sizeof(kb), "%lld", (long long)kbytes);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    struct {
        const char *k, *v;
    } defaults[] = {
        {"bootstrap.servers", vs_config_str(cfg, "bootstrap.servers")},
        {"group.id", vs_config_str(cfg, "group.id")},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"enable.partition.eof", "true"},
        {"fetch.wait.max.ms", "10"},
        {"session.timeout.ms", "6000"},
        {"heartbeat.interval.ms", "1000"},
        {"queued.min.messages", "200000"},
        {"queued.max.messages.kbytes", kb},
        {"log_level", "4"},
    };
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        if (rd_kafka_conf_set(conf, defaults[i].k, defaults[i].v, errbuf, errlen)) {
            rd_kafka_conf_destroy(conf);
            return VS_ECONFIG;
        }
    }
    if (vs__config_foreach_kafka(cfg, apply_kafka, conf)) {
        snprintf(errbuf, errlen, "bad kafka.* consumer setting (see the log)");
        rd_kafka_conf_destroy(conf);
        return VS_ECONFIG;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, s);
    s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errlen);
    if (!s->rk) {
        rd_kafka_conf_destroy(conf);
        return VS_EKAFKA;
    }
    rd_kafka_poll_set_consumer(s->rk);
    s->queue = rd_kafka_queue_get_consumer(s->rk);
    s->prefetch_kbytes = kbytes;
    return 0;
}

struct vs__source *vs__source_new(const struct vs_config *cfg,
                                  const struct vs__source_callbacks *cb, char *errbuf,
                                  size_t errlen)
{
    struct vs__source *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    s->cb = *cb;
    s->cfg = cfg;
    s->pipefd[0] = s->pipefd[1] = -1;
    s->topic = strdup(vs_config_str(cfg, "input.topic"));
    int64_t cap = vs_config_int(cfg, "input.buffer.per.partition");
    s->per_part_cap = cap < 16 ? 16 : (uint32_t)cap;
    s->soft_cap = s->per_part_cap;
    s->total_cap = vs_config_int(cfg, "input.buffer.records");
    if (consumer_open(s, cfg, PREFETCH_MAX_KB, errbuf, errlen)) {
        vs__source_free(s);
        return NULL;
    }
    return s;
}

void vs__source_close(struct vs__source *s)
{
    if (s->rk && !s->closed) {
        s->closed = 1;
        rd_kafka_consumer_close(s->rk);
    }
}

static void on_poll_closed(uv_handle_t *h)
{
    free(h);
}

void vs__source_detach(struct vs__source *s)
{
    if (s->poll) {
        uv_poll_stop(s->poll);
        uv_close((uv_handle_t *)s->poll, on_poll_closed);
        s->poll = NULL;
    }
    if (s->queue) {
        rd_kafka_queue_io_event_enable(s->queue, -1, NULL, 0);
    }
    for (int i = 0; i < 2; i++) {
        if (s->pipefd[i] >= 0) {
            close(s->pipefd[i]);
            s->pipefd[i] = -1;
        }
    }
}

void vs__source_free(struct vs__source *s)
{
    if (!s) {
        return;
    }
    vs__source_detach(s);
    for (int i = 0; i < s->nparts; i++) {
        partition_clear(&s->parts[i]);
        free(s->parts[i].ring);
        free(s->parts[i].strbuf);
    }
    free(s->parts);
    if (s->queue) {
        rd_kafka_queue_destroy(s->queue);
    }
    if (s->rk) {
        vs__source_close(s);
        rd_kafka_destroy(s->rk);
    }
    free(s->topic);
    free(s);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    struct vs__source *s = h->data;
    char buf[64];
    while (read(s->pipefd[0], buf, sizeof(buf)) > 0) {
    }
    s->cb.on_readable(s->cb.arg);
}

int vs__source_attach(struct vs__source *s, uv_loop_t *loop)
{
    if (pipe2(s->pipefd, O_NONBLOCK | O_CLOEXEC)) {
        return VS_EIO;
    }
    rd_kafka_queue_io_event_enable(s->queue, s->pipefd[1], "1", 1);
    s->poll = malloc(sizeof(*s->poll));
    if (!s->poll || uv_poll_init(loop, s->poll, s->pipefd[0])) {
        free(s->poll);
        s->poll = NULL;
        return VS_EIO;
    }
    s->poll->data = s;
    uv_poll_start(s->poll, UV_READABLE, on_readable);
    return 0;
}

static int ring_push(struct vs__partition *p, rd_kafka_message_t *m)
{
    if (p->count == p->cap) {
        uint32_t ncap = p->cap ? p->cap * 2 : 1024;
        rd_kafka_message_t **nr = malloc(sizeof(*nr) * ncap);
        if (!nr) {
            return VS_ENOMEM;
        }
        for (uint32_t i = 0; i < p->count; i++) {
            nr[i] = p->ring[(p->first + i) % p->cap];
        }
        free(p->ring);
        p->ring = nr;
        p->first = 0;
        p->cap = ncap;
    }
    p->ring[(p->first + p->count) % p->cap] = m;
    p->count++;
    return 0;
}

static void pause_partition(struct vs__source *s, struct vs__partition *p, int pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, s->topic, p->id);
    if (pause) {
        rd_kafka_pause_partitions(s->rk, l);
    } else {
        rd_kafka_resume_partitions(s->rk, l);
    }
    rd_kafka_topic_partition_list_destroy(l);
    p->paused = pause;
}

int vs__source_fetch(struct vs__source *s, int max)
{
    rd_kafka_message_t *msgs[1024];
    int total = 0;
    while (total < max) {
        int want = max - total < 1024 ? max - total : 1024;
        ssize_t n = rd_kafka_consume_batch_queue(s->queue, 0, msgs, (size_t)want);
        if (n <= 0) {
            break;
        }
        total += (int)n;
        uint64_t now = now_ms();
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            struct vs__partition *p = m->rkt ? partition_get(s, m->partition) : NULL;
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (p) {
                    p->at_eof = 1;
                }
                rd_kafka_message_destroy(m);
                continue;
            }
            if (m->err) {
                vs_log(VS_LOG_WARN, "consumer: %s", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                continue;
            }
            if (!p || !p->assigned) {
                /* A stale record of a partition revoked meanwhile. */
                rd_kafka_message_destroy(m);
                continue;
            }
            p->at_eof = 0;
            p->last_arrival_ms = now;
            if (ring_push(p, m)) {
                rd_kafka_message_destroy(m);
                continue;
            }
            if (p->count >= s->soft_cap && !p->paused) {
                /* Pausing drops what librdkafka holds of the partition; fetching resumes after
                 * the last record handed out, so the records in hand are kept. */
                pause_partition(s, p, 1);
            }
        }
        if (n < want) {
            break;
        }
    }
    return total;
}

struct vs__partition *vs__source_partitions(struct vs__source *s, int *n)
{
    *n = s->nparts;
    return s->parts;
}

rd_kafka_message_t *vs__source_peek(struct vs__partition *p)
{
    return p->count ? p->ring[p->first] : NULL;
}

void vs__source_pop(struct vs__source *s, struct vs__partition *p)
{
    rd_kafka_message_t *m = p->ring[p->first];
    p->next_offset = m->offset + 1;
    rd_kafka_message_destroy(m);
    p->first = (p->first + 1) % p->cap;
    p->count--;
    p->head_state = 0;
    if (p->paused && p->count < s->soft_cap / 2) {
        pause_partition(s, p, 0);
    }
}

rd_kafka_topic_partition_list_t *vs__source_offsets(struct vs__source *s)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(s->nparts);
    for (int i = 0; i < s->nparts; i++) {
        if (s->parts[i].assigned && s->parts[i].next_offset >= 0) {
            rd_kafka_topic_partition_list_add(l, s->topic, i)->offset = s->parts[i].next_offset;
        }
    }
    return l;
}

void vs__source_commit_offsets(struct vs__source *s, rd_kafka_topic_partition_list_t *l)
{
    if (l->cnt) {
        rd_kafka_commit(s->rk, l, 1);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

int64_t vs__source_lag(struct vs__source *s)
{
    int64_t lag = 0;
    for (int i = 0; i < s->nparts; i++) {
        int64_t lo, hi;
        struct vs__partition *p = &s->parts[i];
        if (!p->assigned || rd_kafka_get_watermark_offsets(s->rk, s->topic, i, &lo, &hi) !=
                                RD_KAFKA_RESP_ERR_NO_ERROR) {
            continue;
        }
        int64_t pos = p->next_offset >= 0 ? p->next_offset : lo;
        if (hi > pos) {
            lag += hi - pos;
        }
    }
    return lag;
}

const char *vs__source_topic(const struct vs__source *s)
{
    return s->topic;
}

rd_kafka_t *vs__source_handle(struct vs__source *s)
{
    return s->rk;
}

/*
 * The topic is looked for in the list of all topics: a metadata request naming it would let a
 * broker with topic auto-creation (the embedded one among them, whose first request goes out
 * before the protocol version is known) create it, and the engine would wait on an empty topic.
 */
int vs__source_start(struct vs__source *s, int timeout_ms, char *errbuf, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(s->rk, 1, NULL, &md, timeout_ms);
    if (err) {
        snprintf(errbuf, errlen, "cannot reach Kafka (bootstrap.servers) within %d ms: %s",
                 timeout_ms, rd_kafka_err2str(err));
        return VS_EKAFKA;
    }
    int partitions = 0;
    for (int i = 0; i < md->topic_cnt; i++) {
        if (!strcmp(md->topics[i].topic, s->topic) && !md->topics[i].err) {
            partitions = md->topics[i].partition_cnt;
        }
    }
    rd_kafka_metadata_destroy(md);
    if (partitions <= 0) {
        snprintf(errbuf, errlen, "input topic '%s' does not exist (input.topic)", s->topic);
        return VS_EKAFKA;
    }
    /* librdkafka's prefetch cap applies per partition: a topic of many partitions would
     * multiply it, so each gets its share of input.prefetch.mb. Nothing is subscribed yet, so
     * the consumer is simply made anew with its share. */
    int64_t kb = vs_config_int(s->cfg, "input.prefetch.mb") * 1024 / partitions;
    kb = kb < PREFETCH_MIN_KB ? PREFETCH_MIN_KB : kb > PREFETCH_MAX_KB ? PREFETCH_MAX_KB : kb;
    if (kb != s->prefetch_kbytes) {
        rd_kafka_queue_destroy(s->queue);
        rd_kafka_destroy(s->rk);
        s->rk = NULL;
        s->queue = NULL;
        int rc = consumer_open(s, s->cfg, kb, errbuf, errlen);
        if (rc) {
            return rc;
        }
    }
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, s->topic, RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(s->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err) {
        snprintf(errbuf, errlen, "cannot subscribe to %s: %s", s->topic, rd_kafka_err2str(err));
        return VS_EKAFKA;
    }
    return 0;
}
