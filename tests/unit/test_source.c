/*
 * The source's record buffers against the embedded broker: with buffers far smaller than the
 * topic, partitions are paused and resumed (with the seek that restarts their fetch) many
 * times and their rings wrap and grow, and still every record of every partition arrives
 * exactly once, in offset order, with its key and payload intact. And records fetched before
 * the source is attached to the loop wake the loop on its first turn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <uv.h>

#include "broker.h"
#include "config.h"
#include "source.h"

#define PARTS 3
#define PER_PART 3000
#define TOPIC "source.test"

/* The payload of (partition, offset): its length and bytes follow from both. */
static size_t payload_of(int part, int64_t off, char *buf)
{
    uint64_t x = (uint64_t)part * 1000003u + (uint64_t)off * 2654435761u + 17;
    size_t len = 1 + (size_t)(x % 1500);
    for (size_t i = 0; i < len; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        buf[i] = (char)(x >> 56);
    }
    return len;
}

static int on_assign(void *arg, rd_kafka_topic_partition_list_t *parts)
{
    (void)arg;
    (void)parts;
    return 0;
}

static void on_revoke(void *arg, rd_kafka_topic_partition_list_t *parts)
{
    (void)arg;
    (void)parts;
}

static void on_readable(void *arg)
{
    (void)arg;
}

static void produce_all(const char *bootstrap)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "2", err, sizeof(err));
    /* Batches of common size: the embedded broker hands out a whole batch per fetch. */
    rd_kafka_conf_set(conf, "batch.size", "65536", err, sizeof(err));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(p);
    char buf[2048], key[32];
    for (int64_t off = 0; off < PER_PART; off++) {
        for (int part = 0; part < PARTS; part++) {
            size_t len = payload_of(part, off, buf);
            int kl = snprintf(key, sizeof(key), "k%d-%lld", part, (long long)off);
            rd_kafka_resp_err_t e;
            while ((e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(part),
                                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                          RD_KAFKA_V_KEY(key, (size_t)kl),
                                          RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_END)) ==
                   RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(p, 10);
            }
            assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
        }
    }
    assert_int_equal(rd_kafka_flush(p, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);
}

/* An embedded broker with the test topic filled, and a source config that reads it. */
static struct vs_config *filled_topic(struct vs__broker **bp)
{
    char err[512];
    struct vs__broker *b = vs__broker_new(err, sizeof(err));
    assert_non_null(b);
    assert_int_equal(vs__broker_create_topic(b, TOPIC, PARTS), 0);
    produce_all(vs__broker_bootstraps(b));
    const struct vs_config_key *const tables[] = {vs__source_config};
    struct vs_config *cfg = vs__config_new(tables, 1);
    char arg[256];
    snprintf(arg, sizeof(arg), "bootstrap.servers=%s", vs__broker_bootstraps(b));
    assert_int_equal(vs__config_set_arg(cfg, arg, err, sizeof(err)), 0);
    assert_int_equal(vs__config_set_arg(cfg, "input.topic=" TOPIC, err, sizeof(err)), 0);
    *bp = b;
    return cfg;
}

static void test_pause_resume_exactly_once(void **state)
{
    (void)state;
    char err[512];
    struct vs__broker *b;
    struct vs_config *cfg = filled_topic(&b);
    assert_int_equal(vs__config_set_arg(cfg, "group.id=source-test", err, sizeof(err)), 0);
    /* 1 MiB over 3 partitions: about 350 KiB each, a tenth of a partition's 2.3 MB. */
    assert_int_equal(vs__config_set_arg(cfg, "input.buffer.mb=1", err, sizeof(err)), 0);
    struct vs__source_callbacks cb = {NULL, on_assign, on_revoke, on_readable};
    struct vs__source *s = vs__source_new(cfg, &cb, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(vs__source_start(s, 10000, err, sizeof(err)), 0);

    int64_t next[PARTS] = {0};
    int pauses[PARTS] = {0}, was_paused[PARTS] = {0}, wrapped = 0;
    char buf[2048], key[32];
    int64_t total = 0;
    time_t deadline = time(NULL) + 120;
    while (total < (int64_t)PARTS * PER_PART && time(NULL) < deadline) {
        if (vs__source_fetch(s) == 0) {
            usleep(1000);
        }
        int n;
        struct vs__partition *parts = vs__source_partitions(s, &n);
        for (int i = 0; i < n && i < PARTS; i++) {
            struct vs__partition *p = &parts[i];
            /* Only a fetch pauses and only a pop resumes: an edge here is one pause. */
            if (p->paused && !was_paused[i]) {
                pauses[i]++;
            }
            wrapped |= p->wrap != 0;
            /* Partitions drained at different speeds: 1, 2 and 4 records a turn. */
            for (int k = 0; k < (1 << i); k++) {
                const struct vs__record *r = vs__source_peek(p);
                if (!r) {
                    break;
                }
                assert_int_equal(r->partition, i);
                assert_int_equal(r->offset, next[i]);
                size_t len = payload_of(i, r->offset, buf);
                int kl = snprintf(key, sizeof(key), "k%d-%lld", i, (long long)r->offset);
                assert_non_null(r->payload);
                assert_int_equal(r->len, len);
                assert_memory_equal(r->payload, buf, len);
                assert_int_equal(r->key_len, kl);
                assert_memory_equal(r->key, key, (size_t)kl);
                vs__source_pop(s, p);
                wrapped |= p->wrap != 0;
                next[i]++;
                total++;
            }
            was_paused[i] = p->paused;
        }
    }
    for (int i = 0; i < PARTS; i++) {
        assert_int_equal(next[i], PER_PART);
        /* The buffers were small enough to be exercised: each partition was paused. */
        assert_true(pauses[i] >= 2);
    }
    assert_true(wrapped);
    /* Every pause was seen above, and counted (the engine's input.pauses metric). */
    int64_t seen = 0;
    for (int i = 0; i < PARTS; i++) {
        seen += pauses[i];
    }
    assert_int_equal(vs__source_pauses(s), seen);
    /* Nothing more arrives: no record was delivered twice. */
    for (int k = 0; k < 200; k++) {
        vs__source_fetch(s);
        usleep(1000);
    }
    int n;
    struct vs__partition *parts = vs__source_partitions(s, &n);
    for (int i = 0; i < n; i++) {
        assert_null(vs__source_peek(&parts[i]));
    }
    vs__source_free(s);
    vs__config_free(cfg);
    vs__broker_free(b);
}

/* What the loop saw: the first wake-up, and the records read on it. */
struct wake {
    struct vs__source *s;
    uv_loop_t *loop;
    int woken, fetched;
};

static void on_readable_fetch(void *arg)
{
    struct wake *w = arg;
    if (!w->woken) {
        w->woken = 1;
        w->fetched = vs__source_fetch(w->s);
    }
    uv_stop(w->loop);
}

static void on_give_up(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/*
 * librdkafka writes to a queue's event fd only when an element lands on an empty queue, and the
 * partitions are assigned (and fetched) before the source is attached to the loop. The records
 * already queued by then must still wake the loop at once, not when some timer happens to pump
 * it: here no other handle could, and the loop gives up after five seconds.
 */
static void test_attach_wakes_for_queued_records(void **state)
{
    (void)state;
    char err[512];
    struct vs__broker *b;
    struct vs_config *cfg = filled_topic(&b);
    assert_int_equal(vs__config_set_arg(cfg, "input.assignment=all", err, sizeof(err)), 0);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct wake w = {NULL, &loop, 0, 0};
    struct vs__source_callbacks cb = {&w, on_assign, on_revoke, on_readable_fetch};
    w.s = vs__source_new(cfg, &cb, err, sizeof(err));
    assert_non_null(w.s);
    assert_int_equal(vs__source_start(w.s, 10000, err, sizeof(err)), 0);
    usleep(1000 * 1000); /* the fetches land on the queue before it is attached */
    assert_int_equal(vs__source_attach(w.s, &loop), 0);
    uv_timer_t give_up;
    uv_timer_init(&loop, &give_up);
    uv_timer_start(&give_up, on_give_up, 5000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(w.woken);
    assert_true(w.fetched > 0);
    uv_close((uv_handle_t *)&give_up, NULL);
    vs__source_free(w.s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    vs__config_free(cfg);
    vs__broker_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pause_resume_exactly_once),
        cmocka_unit_test(test_attach_wakes_for_queued_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
