/*
 * The embedded broker (librdkafka's mock cluster).
 *
 * The mock keeps a bounded log per partition (older data is dropped silently), so the topics the
 * engine uses are created up front with enough partitions for a demo-sized stream; topics that
 * producers create on the fly get the mock's default partition count.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <valuestream/error.h>

#include "broker.h"

struct vs__broker {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mcluster;
    char bootstraps[128];
};

struct vs__broker *vs__broker_new(char *errbuf, size_t errlen)
{
    struct vs__broker *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    b->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errlen);
    if (!b->rk) {
        rd_kafka_conf_destroy(conf);
        free(b);
        return NULL;
    }
    b->mcluster = rd_kafka_mock_cluster_new(b->rk, 1);
    if (!b->mcluster) {
        snprintf(errbuf, errlen, "cannot start the embedded broker");
        rd_kafka_destroy(b->rk);
        free(b);
        return NULL;
    }
    snprintf(b->bootstraps, sizeof(b->bootstraps), "%s",
             rd_kafka_mock_cluster_bootstraps(b->mcluster));
    return b;
}

void vs__broker_free(struct vs__broker *b)
{
    if (!b) {
        return;
    }
    rd_kafka_mock_cluster_destroy(b->mcluster);
    rd_kafka_destroy(b->rk);
    free(b);
}

const char *vs__broker_bootstraps(const struct vs__broker *b)
{
    return b->bootstraps;
}

int vs__broker_create_topic(struct vs__broker *b, const char *topic, int partitions)
{
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(b->mcluster, topic, partitions, 1);
    return err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS ? VS_EKAFKA : 0;
}

static volatile sig_atomic_t vs__broker_stop;

static void on_signal(int sig)
{
    (void)sig;
    vs__broker_stop = 1;
}

static void broker_usage(FILE *out)
{
    fprintf(out, "usage: valuestream broker [--partitions N] [--topic NAME]... "
                 "[--bootstrap-file PATH]\n"
                 "\n"
                 "Run only the embedded Kafka broker (librdkafka's mock cluster) until SIGINT or\n"
                 "SIGTERM. The first line of stdout is bootstrap.servers=HOST:PORT.\n"
                 "\n"
                 "  --partitions N         partitions of the default topics (default 32)\n"
                 "  --topic NAME           also create NAME with N partitions (repeatable; a\n"
                 "                         topic made on first use gets the mock's 4)\n"
                 "  --bootstrap-file PATH  also write HOST:PORT to PATH (atomically)\n");
}

int vs__broker_main(int argc, char **argv)
{
    static const struct option opts[] = {{"partitions", required_argument, NULL, 'p'},
                                         {"bootstrap-file", required_argument, NULL, 'f'},
                                         {"topic", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int partitions = 32, c, nextra = 0;
    const char *file = NULL;
    const char **extra = calloc((size_t)argc + 1, sizeof(char *));
    if (!extra) {
        fprintf(stderr, "valuestream broker: out of memory\n");
        return 1;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 10000) {
                fprintf(stderr, "valuestream broker: --partitions expects 1..10000, got '%s'\n",
                        optarg);
                free(extra);
                return 2;
            }
            partitions = (int)n;
            break;
        }
        case 'f':
            file = optarg;
            break;
        case 't':
            extra[nextra++] = optarg;
            break;
        case 'h':
            broker_usage(stdout);
            free(extra);
            return 0;
        default:
            broker_usage(stderr);
            free(extra);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "valuestream broker: unexpected argument '%s'\n", argv[optind]);
        free(extra);
        return 2;
    }
    char err[512];
    struct vs__broker *b = vs__broker_new(err, sizeof(err));
    if (!b) {
        fprintf(stderr, "valuestream broker: %s\n", err);
        free(extra);
        return 1;
    }
    static const char *const topics[] = {"shop.events",     "vs.profiles",     "vs.recommendations",
                                         "vs.churn-alerts", "vs.fraud-alerts", "vs.dead-letters",
                                         "vs.fraud-labels"};
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        vs__broker_create_topic(b, topics[i], partitions);
    }
    for (int i = 0; i < nextra; i++) {
        if (vs__broker_create_topic(b, extra[i], partitions)) {
            fprintf(stderr, "valuestream broker: cannot create topic '%s'\n", extra[i]);
            vs__broker_free(b);
            free(extra);
            return 1;
        }
    }
    free(extra);
    printf("bootstrap.servers=%s\n", vs__broker_bootstraps(b));
    fflush(stdout);
    if (file) {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%s\n", vs__broker_bootstraps(b)) < 0 || fclose(f) ||
            rename(tmp, file)) {
            fprintf(stderr, "valuestream broker: cannot write %s\n", file);
            vs__broker_free(b);
            return 1;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!vs__broker_stop) {
        pause();
    }
    vs__broker_free(b);
    return 0;
}
