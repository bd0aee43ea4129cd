/*
 * Tests of `valuestream gen` through vs__gen_main: bad command lines fail with a message, the
 * --out file is the same bytes for the same seed and decodes record by record, and producing to
 * a Kafka cluster (librdkafka's mock, in process) delivers every event, keyed by customer, with
 * the event time as the message timestamp. An unreachable broker fails fast.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <valuestream/error.h>

#include "codec.h"
#include "gen.h"

static int run_gen(const char *first, ...)
{
    char *argv[40];
    int argc = 0;
    argv[argc++] = "gen";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    argv[argc] = NULL;
    return vs__gen_main(argc, argv);
}

static void test_bad_command_lines(void **state)
{
    assert_int_equal(run_gen("--help", NULL), 0);
    assert_int_not_equal(run_gen(NULL), 0); /* no output */
    assert_int_not_equal(run_gen("--out", "/tmp/x.bin", "--bootstrap", "h:1", "--topic", "t", NULL),
                         0);
    assert_int_not_equal(run_gen("--bootstrap", "localhost:9092", NULL), 0);
    assert_int_not_equal(run_gen("--topic", "shop.events", NULL), 0);
    assert_int_not_equal(run_gen("--out", "/tmp/x.bin", "--events", "lots", NULL), 0);
    assert_int_not_equal(run_gen("--out", "/tmp/x.bin", "--events", "10k", NULL), 0);
    assert_int_not_equal(run_gen("--out", "/tmp/x.bin", "--customers", "0", NULL), 0);
    assert_int_not_equal(run_gen("--out", "/tmp/x.bin", "--seed", "-3", NULL), 0);
    assert_int_not_equal(run_gen("--out", "/tmp/x.bin", "--days", "", NULL), 0);
    assert_int_not_equal(run_gen("--out", "/tmp/x.bin", "--items", "5", "--categories", "9", NULL),
                         0);
    assert_int_not_equal(run_gen("--out", "/tmp/x.bin", "--frobnicate", NULL), 0);
    assert_int_not_equal(run_gen("--out", "/tmp/x.bin", "extra", NULL), 0);
    assert_int_not_equal(run_gen("--out", NULL), 0);
    assert_int_not_equal(run_gen("--out", "/nonexistent/dir/x.bin", "--events", "100", NULL), 0);
    assert_int_not_equal(run_gen("--out", "/tmp/x.bin", "--truth", "/nonexistent/dir/t.csv",
                                 "--events", "100", NULL),
                         0);
    unlink("/tmp/x.bin");
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void test_out_file(void **state)
{
    char a[] = "/tmp/vs-gen-a-XXXXXX", b[] = "/tmp/vs-gen-b-XXXXXX", c[] = "/tmp/vs-gen-c-XXXXXX",
         t[] = "/tmp/vs-gen-t-XXXXXX";
    close(mkstemp(a));
    close(mkstemp(b));
    close(mkstemp(c));
    close(mkstemp(t));
    assert_int_equal(run_gen("--customers", "800", "--items", "300", "--events", "30000", "--seed",
                             "5", "--out", a, "--truth", t, NULL),
                     0);
    assert_int_equal(run_gen("--customers", "800", "--items", "300", "--events", "30000", "--seed",
                             "5", "--out", b, NULL),
                     0);
    assert_int_equal(run_gen("--customers", "800", "--items", "300", "--events", "30000", "--seed",
                             "6", "--out", c, NULL),
                     0);
    size_t la, lb, lc;
    unsigned char *da = slurp(a, &la), *db = slurp(b, &lb), *dc = slurp(c, &lc);
    assert_true(la > 0);
    assert_true(la == lb && memcmp(da, db, la) == 0);
    assert_true(la != lc || memcmp(da, dc, la) != 0);

    /* Walk the length-prefixed records: each decodes, is valid, in time order. */
    char err[256], why[256];
    struct vs__codec *codec = vs__codec_new(NULL, err, sizeof(err));
    assert_non_null(codec);
    size_t pos = 0, n = 0, purchases = 0;
    int64_t prev = 0;
    while (pos < la) {
        assert_true(pos + 4 <= la);
        size_t len = ((size_t)da[pos] << 24) | ((size_t)da[pos + 1] << 16) |
                     ((size_t)da[pos + 2] << 8) | da[pos + 3];
        pos += 4;
        assert_true(len > 0 && pos + len <= la);
        struct vs_event ev;
        if (vs__codec_decode_event(codec, da + pos, len, &ev, why, sizeof(why))) {
            fail_msg("record %zu does not decode: %s", n, why);
        }
        assert_int_equal(vs__event_validate(&ev, 0, why, sizeof(why)), 0);
        assert_true(ev.ts >= prev);
        prev = ev.ts;
        char expect[32];
        snprintf(expect, sizeof(expect), "e%zu", n + 1);
        assert_string_equal(ev.event_id, expect);
        purchases += ev.type == VS_EVENT_PURCHASE;
        pos += len;
        n++;
    }
    assert_true(n > 25000 && n < 35000);
    assert_true(purchases > 0);
    /* the truth written alongside belongs to this stream */
    struct vs__truth *truth = vs__truth_load(t, err, sizeof(err));
    assert_non_null(truth);
    assert_int_equal(vs__truth_customers(truth), 800);
    vs__truth_free(truth);
    vs__codec_free(codec);
    free(da);
    free(db);
    free(dc);
    unlink(a);
    unlink(b);
    unlink(c);
    unlink(t);
}

/* ==== Kafka ==== */

struct consumed {
    int64_t messages, bad_key, bad_ts, bytes;
    int64_t prev_ts[16];
    int64_t out_of_order;
};

static void test_produce_to_kafka(void **state)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(host);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(host, 1);
    assert_non_null(mc);
    const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
    const int partitions = 8;
    assert_int_equal(rd_kafka_mock_topic_create(mc, "shop.events", partitions, 1), 0);

    assert_int_equal(run_gen("--customers", "1000", "--items", "300", "--events", "40000", "--seed",
                             "3", "--bootstrap", bootstrap, "--topic", "shop.events", NULL),
                     0);
    /* The same run into a file says how many events to expect. */
    char out[] = "/tmp/vs-gen-k-XXXXXX";
    close(mkstemp(out));
    assert_int_equal(run_gen("--customers", "1000", "--items", "300", "--events", "40000", "--seed",
                             "3", "--out", out, NULL),
                     0);
    size_t flen;
    unsigned char *fdata = slurp(out, &flen);
    int64_t expected = 0;
    for (size_t pos = 0; pos < flen; expected++) {
        pos += 4 + (((size_t)fdata[pos] << 24) | ((size_t)fdata[pos + 1] << 16) |
                    ((size_t)fdata[pos + 2] << 8) | fdata[pos + 3]);
    }
    free(fdata);
    unlink(out);

    /* Read every partition from the start to its end. */
    rd_kafka_conf_t *cc = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(cc, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(cc, "group.id", "gen-test", errstr, sizeof(errstr));
    rd_kafka_conf_set(cc, "enable.partition.eof", "true", errstr, sizeof(errstr));
    rd_kafka_conf_set(cc, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_conf_set(cc, "fetch.wait.max.ms", "10", errstr, sizeof(errstr));
    rd_kafka_t *consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, errstr, sizeof(errstr));
    assert_non_null(consumer);
    rd_kafka_poll_set_consumer(consumer);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++) {
        rd_kafka_topic_partition_list_add(parts, "shop.events", p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    }
    assert_int_equal(rd_kafka_assign(consumer, parts), 0);
    rd_kafka_topic_partition_list_destroy(parts);

    char err[256], why[256];
    struct vs__codec *codec = vs__codec_new(NULL, err, sizeof(err));
    assert_non_null(codec);
    struct consumed got = {0};
    int at_end[16] = {0}, ends = 0;
    /* a customer's events all land in one partition */
    int *user_partition = malloc(1001 * sizeof(int));
    for (int i = 0; i <= 1000; i++) {
        user_partition[i] = -1;
    }
    time_t deadline = time(NULL) + 60;
    while (ends < partitions && time(NULL) < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 100);
        if (!m) {
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (!at_end[m->partition]) {
                at_end[m->partition] = 1;
                ends++;
            }
        } else if (!m->err) {
            struct vs_event ev;
            if (vs__codec_decode_event(codec, m->payload, m->len, &ev, why, sizeof(why))) {
                fail_msg("message at offset %" PRId64 " does not decode: %s", m->offset, why);
            }
            got.messages++;
            got.bytes += (int64_t)m->len;
            if (m->key_len != ev.user_id_len || memcmp(m->key, ev.user_id, m->key_len)) {
                got.bad_key++;
            }
            rd_kafka_timestamp_type_t tstype;
            if (rd_kafka_message_timestamp(m, &tstype) != ev.ts) {
                got.bad_ts++;
            }
            if (ev.ts < got.prev_ts[m->partition]) {
                got.out_of_order++;
            }
            got.prev_ts[m->partition] = ev.ts;
            int u = atoi(ev.user_id + 1);
            assert_true(u >= 1 && u <= 1000);
            if (user_partition[u] < 0) {
                user_partition[u] = m->partition;
            }
            assert_int_equal(user_partition[u], m->partition);
        } else {
            fail_msg("consume: %s", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    assert_int_equal(ends, partitions);
    assert_int_equal(got.messages, expected);
    assert_int_equal(got.bad_key, 0);
    assert_int_equal(got.bad_ts, 0);
    assert_int_equal(got.out_of_order, 0);
    free(user_partition);
    vs__codec_free(codec);
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(host);
}

/* A period too short for any customer to be a fraud victim (two weeks of history) still gives
 * a shop, with no planted fraud, rather than an error from the shuffle of no victims. */
static void test_short_period(void **state)
{
    char a[] = "/tmp/vs-gen-s-XXXXXX", t[] = "/tmp/vs-gen-st-XXXXXX";
    close(mkstemp(a));
    close(mkstemp(t));
    assert_int_equal(run_gen("--customers", "300", "--items", "100", "--events", "20000", "--days",
                             "2", "--out", a, "--truth", t, NULL),
                     0);
    size_t la, lt;
    unsigned char *da = slurp(a, &la), *dt = slurp(t, &lt);
    assert_true(la > 1000);
    dt[lt] = 0;
    assert_non_null(strstr((const char *)dt, "dropout,"));
    assert_null(strstr((const char *)dt, "fraud,"));
    free(da);
    free(dt);
    unlink(a);
    unlink(t);
}

static void test_unreachable_broker_fails_fast(void **state)
{
    time_t t0 = time(NULL);
    assert_int_not_equal(run_gen("--customers", "100", "--events", "2000", "--bootstrap",
                                 "127.0.0.1:1", "--topic", "shop.events", NULL),
                         0);
    assert_true(time(NULL) - t0 < 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_command_lines),
        cmocka_unit_test(test_out_file),
        cmocka_unit_test(test_produce_to_kafka),
        cmocka_unit_test(test_short_period),
        cmocka_unit_test(test_unreachable_broker_fails_fast),
    };
    return cmocka_run_group_tests_name("gen cli", tests, NULL, NULL);
}
