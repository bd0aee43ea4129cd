/*
 * The sink (see sink.h).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <valuestream/error.h>

#include "config.h"
#include "sink.h"

const struct vs_config_key vs__sink_config[] = {
    {"topic.profiles", VS_CONFIG_STRING, "vs.profiles", "output topic of user_profile records"},
    {"topic.recommendations", VS_CONFIG_STRING, "vs.recommendations",
     "output topic of recommendation records"},
    {"topic.churn.alerts", VS_CONFIG_STRING, "vs.churn-alerts",
     "output topic of churn_alert records"},
    {"topic.fraud.alerts", VS_CONFIG_STRING, "vs.fraud-alerts",
     "output topic of fraud_alert records"},
    {"topic.dead.letters", VS_CONFIG_STRING, "vs.dead-letters",
     "topic for records that cannot be processed (original bytes + error headers)"},
    {"producer.linger.ms", VS_CONFIG_INT, "5", "how long the producer batches records"},
    {NULL, 0, NULL, NULL},
};

static const char *const topic_keys[VS__SINK_TOPICS] = {"topic.profiles", "topic.recommendations",
                                                        "topic.churn.alerts", "topic.fraud.alerts",
                                                        "topic.dead.letters"};

struct vs__sink {
    rd_kafka_t *rk;
    rd_kafka_topic_t *topics[VS__SINK_TOPICS];
    char *names[VS__SINK_TOPICS];
    int64_t produced[VS__SINK_TOPICS];
    int64_t *m_produced[VS__SINK_TOPICS];
    int64_t *m_failed;
    struct vs__metrics *metrics;
    int64_t failed;
    rd_kafka_queue_t *queue;
    int pipefd[2];
    uv_poll_t *poll;
    /* Records not yet acknowledged, by the parity of the epoch they were produced in (each
     * record carries it as its opaque): vs__sink_seal() ends an epoch, and at most the sealed
     * one and the current one have records in flight. */
    uint64_t epoch;
    int64_t in_flight[2];
    void (*on_delivered)(void *arg);
    void *on_delivered_arg;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    struct vs__sink *s = opaque;
    s->in_flight[(uintptr_t)msg->_private & 1]--;
    if (msg->err) {
        s->failed++;
        (*s->m_failed)++;
        vs_log(VS_LOG_ERROR, "delivery to %s failed: %s", rd_kafka_topic_name(msg->rkt),
               rd_kafka_err2str(msg->err));
    }
}

static int apply_kafka(void *arg, const char *key, const char *value, char target)
{
    char err[512];
    if (target == 'c') {
        return 0;
    }
    if (rd_kafka_conf_set(arg, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        vs_log(VS_LOG_ERROR, "config key 'kafka.%s': %s", key, err);
        return VS_ECONFIG;
    }
    return 0;
}

struct vs__sink *vs__sink_new(const struct vs_config *cfg, struct vs__metrics *metrics,
                              char *errbuf, size_t errlen)
{
    struct vs__sink *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    s->pipefd[0] = s->pipefd[1] = -1;
    s->metrics = metrics;
    /* Outputs are not compressed unless kafka.compression.codec (or kafka.producer.
     * compression.codec) says so, as Kafka's and librdkafka's producers do by default. With
     * lz4, librdkafka sets up a fresh LZ4 frame context for every batch (a calloc, a 16 KiB
     * memset and, on free, glibc handing the pages back), and the batches are small: a
     * partition's outputs of one linger.ms. That was a quarter of the producer thread's
     * samples in a profile replay; without it, the engine's CPU per 500k-event replay fell
     * 8 % (medians of 8 alternating replays, 1.575 against 1.720 s). */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char linger[32];
    snprintf(linger, sizeof(linger), "%lld", (long long)vs_config_int(cfg, "producer.linger.ms"));
    struct {
        const char *k, *v;
    } defaults[] = {
        {"bootstrap.servers", vs_config_str(cfg, "bootstrap.servers")},
        {"enable.idempotence", "true"},
        {"linger.ms", linger},
        {"batch.num.messages", "10000"},
        {"queue.buffering.max.messages", "1000000"},
        {"queue.buffering.max.kbytes", "1048576"},
        {"compression.codec", "none"},
        {"log_level", "4"},
    };
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        if (rd_kafka_conf_set(conf, defaults[i].k, defaults[i].v, errbuf, errlen)) {
            rd_kafka_conf_destroy(conf);
            free(s);
            return NULL;
        }
    }
    if (vs__config_foreach_kafka(cfg, apply_kafka, conf)) {
        snprintf(errbuf, errlen, "bad kafka.* producer setting (see the log)");
        rd_kafka_conf_destroy(conf);
        free(s);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, s);
    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errlen);
    if (!s->rk) {
        rd_kafka_conf_destroy(conf);
        free(s);
        return NULL;
    }
    s->m_failed = vs__metrics_counter(metrics, "outputs.failed");
    for (int i = 0; i < VS__SINK_TOPICS; i++) {
        s->names[i] = strdup(vs_config_str(cfg, topic_keys[i]));
        s->topics[i] = rd_kafka_topic_new(s->rk, s->names[i], NULL);
        char name[96];
        snprintf(name, sizeof(name), "outputs.%s", s->names[i]);
        s->m_produced[i] = vs__metrics_counter(metrics, name);
        if (!s->topics[i]) {
            snprintf(errbuf, errlen, "cannot create topic handle %s", s->names[i]);
            vs__sink_free(s);
            return NULL;
        }
    }
    return s;
}

static void on_poll_closed(uv_handle_t *h)
{
    free(h);
}

void vs__sink_detach(struct vs__sink *s)
{
    if (s->poll) {
        uv_poll_stop(s->poll);
        uv_close((uv_handle_t *)s->poll, on_poll_closed);
        s->poll = NULL;
    }
    if (s->queue) {
        rd_kafka_queue_io_event_enable(s->queue, -1, NULL, 0);
        rd_kafka_queue_destroy(s->queue);
        s->queue = NULL;
    }
    for (int i = 0; i < 2; i++) {
        if (s->pipefd[i] >= 0) {
            close(s->pipefd[i]);
            s->pipefd[i] = -1;
        }
    }
}

void vs__sink_free(struct vs__sink *s)
{
    if (!s) {
        return;
    }
    vs__sink_detach(s);
    for (int i = 0; i < VS__SINK_TOPICS; i++) {
        if (s->topics[i]) {
            rd_kafka_topic_destroy(s->topics[i]);
        }
        free(s->names[i]);
    }
    if (s->rk) {
        rd_kafka_flush(s->rk, 10000);
        rd_kafka_destroy(s->rk);
    }
    free(s);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    struct vs__sink *s = h->data;
    char buf[64];
    while (read(s->pipefd[0], buf, sizeof(buf)) > 0) {
    }
    rd_kafka_poll(s->rk, 0);
    if (s->on_delivered) {
        s->on_delivered(s->on_delivered_arg);
    }
}

int vs__sink_attach(struct vs__sink *s, uv_loop_t *loop, void (*on_delivered)(void *arg), void *arg)
{
    s->on_delivered = on_delivered;
    s->on_delivered_arg = arg;
    if (pipe2(s->pipefd, O_NONBLOCK | O_CLOEXEC)) {
        return VS_EIO;
    }
    s->queue = rd_kafka_queue_get_main(s->rk);
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

int vs__sink_produce(struct vs__sink *s, int topic, const char *key, size_t keylen, const void *val,
                     size_t len, int64_t ts, const char *id, const char *kind)
{
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            s->rk, RD_KAFKA_V_RKT(s->topics[topic]), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)val, len),
            RD_KAFKA_V_TIMESTAMP(ts > 0 ? ts : 0), RD_KAFKA_V_HEADER("vs.id", id, -1),
            RD_KAFKA_V_HEADER("vs.kind", kind, -1),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)(s->epoch & 1)), RD_KAFKA_V_END);
        if (!err) {
            break;
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            vs_log(VS_LOG_ERROR, "produce to %s failed: %s", s->names[topic],
                   rd_kafka_err2str(err));
            return VS_EKAFKA;
        }
        rd_kafka_poll(s->rk, 10);
    }
    s->produced[topic]++;
    (*s->m_produced[topic])++;
    s->in_flight[s->epoch & 1]++;
    return 0;
}

int vs__sink_dead_letter(struct vs__sink *s, const struct vs__sink_source *msg, const char *kind,
                         const char *why)
{
    char partition[16], offset[32], error[600], counter[64];
    snprintf(partition, sizeof(partition), "%d", (int)msg->partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)msg->offset);
    snprintf(error, sizeof(error), "%s: %s", kind, why);
    snprintf(counter, sizeof(counter), "deadletters.%s", kind);
    int64_t *c = vs__metrics_counter(s->metrics, counter);
    if (c) {
        (*c)++;
    }
    const char *topic = msg->topic;
    char id[512];
    snprintf(id, sizeof(id), "%s/%s/%s/dead_letter", topic, partition, offset);
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            s->rk, RD_KAFKA_V_RKT(s->topics[VS__SINK_DEAD_LETTERS]),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(msg->key, msg->key_len),
            RD_KAFKA_V_VALUE((void *)msg->payload, msg->len),
            RD_KAFKA_V_HEADER("vs.error", error, -1),
            RD_KAFKA_V_HEADER("vs.source.topic", topic, -1),
            RD_KAFKA_V_HEADER("vs.source.partition", partition, -1),
            RD_KAFKA_V_HEADER("vs.source.offset", offset, -1), RD_KAFKA_V_HEADER("vs.id", id, -1),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)(s->epoch & 1)), RD_KAFKA_V_END);
        if (!err) {
            break;
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            vs_log(VS_LOG_ERROR, "produce to %s failed: %s", s->names[VS__SINK_DEAD_LETTERS],
                   rd_kafka_err2str(err));
            return VS_EKAFKA;
        }
        rd_kafka_poll(s->rk, 10);
    }
    s->produced[VS__SINK_DEAD_LETTERS]++;
    (*s->m_produced[VS__SINK_DEAD_LETTERS])++;
    s->in_flight[s->epoch & 1]++;
    return 0;
}

void vs__sink_seal(struct vs__sink *s)
{
    s->epoch++;
}

int vs__sink_sealed_state(const struct vs__sink *s)
{
    if (s->failed) {
        return VS_EKAFKA;
    }
    return s->in_flight[(s->epoch - 1) & 1] == 0;
}

int vs__sink_flush(struct vs__sink *s, int timeout_ms)
{
    rd_kafka_resp_err_t err = rd_kafka_flush(s->rk, timeout_ms);
    if (err) {
        vs_log(VS_LOG_ERROR, "outputs not acknowledged within %d ms: %s", timeout_ms,
               rd_kafka_err2str(err));
        return VS_EKAFKA;
    }
    return s->failed ? VS_EKAFKA : 0;
}

int64_t vs__sink_produced(const struct vs__sink *s, int topic)
{
    return s->produced[topic];
}

const char *vs__sink_topic_name(const struct vs__sink *s, int topic)
{
    return s->names[topic];
}
