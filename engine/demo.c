/*
 * The demo (see demo.h).
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <valuestream/error.h>

#include "broker.h"
#include "codec.h"
#include "config.h"
#include "demo.h"
#include "engine.h"
#include "gen.h"
#include "metrics.h"
#include "sink.h"

struct vs_config *vs__cli_config(const char *file, char **sets, int nsets, const char *cmd);

int64_t vs__read_topic(const char *bootstrap, const char *topic, vs__topic_fn fn, void *arg,
                       char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, NULL, 0);
    rd_kafka_conf_set(conf, "group.id", "valuestream-reader", NULL, 0);
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", NULL, 0);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "10", NULL, 0);
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errlen);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return VS_EKAFKA;
    }
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) || md->topic_cnt != 1 || md->topics[0].err) {
        snprintf(errbuf, errlen, "no metadata for topic %s", topic);
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        return VS_EKAFKA;
    }
    int nparts = md->topics[0].partition_cnt;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts);
    int pending = 0;
    for (int i = 0; i < nparts; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_query_watermark_offsets(rk, topic, md->topics[0].partitions[i].id, &lo, &hi, 5000);
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(l, topic, md->topics[0].partitions[i].id)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
            pending++;
        }
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    int64_t n = 0;
    if (pending) {
        rd_kafka_assign(rk, l);
        time_t start = time(NULL);
        while (pending > 0 && time(NULL) - start < 120) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
            if (!m) {
                continue;
            }
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                pending--;
            } else if (!m->err) {
                n++;
                if (fn(arg, m)) {
                    pending = 0;
                }
            }
            rd_kafka_message_destroy(m);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

/* ==== Summary ==== */

struct sample_state {
    struct vs__codec *codec;
    enum vs_output out;
    int printed;
};

static int print_sample(void *arg, const rd_kafka_message_t *m)
{
    struct sample_state *s = arg;
    if (s->printed >= 2) {
        return 1;
    }
    char *json = NULL;
    if (vs__codec_output_to_json(s->codec, s->out, m->payload, m->len, &json) == 0) {
        printf("    %s\n", json);
        s->printed++;
    }
    free(json);
    return s->printed >= 2;
}

static int get_field(avro_value_t *rec, const char *name, avro_value_t *out)
{
    avro_value_t f;
    if (avro_value_get_by_name(rec, name, &f, NULL)) {
        return -1;
    }
    if (avro_value_get_type(&f) == AVRO_UNION) {
        int d = 0;
        if (avro_value_get_discriminant(&f, &d) != 0 || d == 0) {
            return -1;
        }
        return avro_value_get_current_branch(&f, out);
    }
    *out = f;
    return 0;
}

struct fraud_eval {
    struct vs__truth *truth;
    avro_reader_t reader;
    avro_value_t value;
    int64_t alerts, true_alerts;
    int64_t caught[VS__FRAUD_KIND_COUNT];
};

static int on_fraud_alert(void *arg, const rd_kafka_message_t *m)
{
    struct fraud_eval *f = arg;
    avro_value_reset(&f->value);
    avro_reader_memory_set_source(f->reader, m->payload, (int64_t)m->len);
    if (avro_value_read(f->reader, &f->value)) {
        return 0;
    }
    avro_value_t v;
    int decision = 0;
    const char *event_id = NULL;
    size_t len;
    if (get_field(&f->value, "decision", &v) == 0) {
        avro_value_get_enum(&v, &decision);
    }
    if (get_field(&f->value, "event_id", &v) == 0) {
        avro_value_get_string(&v, &event_id, &len);
    }
    if (decision == 0 || !event_id) {
        return 0; /* ALLOW verdicts (fraud.emit=all) are not alerts */
    }
    f->alerts++;
    enum vs__fraud_kind kind = vs__truth_fraud_kind(f->truth, event_id);
    if (kind != VS__FRAUD_NONE) {
        f->true_alerts++;
        f->caught[kind]++;
    }
    return 0;
}

struct churn_eval {
    struct vs__truth *truth;
    avro_reader_t reader;
    avro_value_t value;
    int64_t alerts, true_alerts;
    char **alerted; /* users with a true alert (for recall) */
    int64_t nalerted, cap;
    double *delays;
};

static int on_churn_alert(void *arg, const rd_kafka_message_t *m)
{
    struct churn_eval *c = arg;
    avro_value_reset(&c->value);
    avro_reader_memory_set_source(c->reader, m->payload, (int64_t)m->len);
    if (avro_value_read(c->reader, &c->value)) {
        return 0;
    }
    avro_value_t v;
    const char *user = NULL;
    size_t len;
    int64_t ts = 0, dropout;
    if (get_field(&c->value, "user_id", &v) == 0) {
        avro_value_get_string(&v, &user, &len);
    }
    if (get_field(&c->value, "ts", &v) == 0) {
        avro_value_get_long(&v, &ts);
    }
    if (!user) {
        return 0;
    }
    c->alerts++;
    if (vs__truth_dropout(c->truth, user, &dropout) && dropout <= ts) {
        c->true_alerts++;
        if (c->nalerted == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 1024;
            c->alerted = realloc(c->alerted, sizeof(char *) * (size_t)c->cap);
            c->delays = realloc(c->delays, sizeof(double) * (size_t)c->cap);
        }
        c->alerted[c->nalerted] = strdup(user);
        c->delays[c->nalerted++] = (double)(ts - dropout) / 86400000.0;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void print_metric(void *arg, const char *name, int is_gauge, int64_t count, double gauge)
{
    if (strncmp(name, "deadletters.", 12) == 0 && count > 0) {
        printf("    %-28s %" PRId64 "\n", name + 12, count);
        (*(int *)arg)++;
    }
}

static void avro_slot(const char *schema_name, avro_value_iface_t **iface, avro_schema_t *schema,
                      avro_value_t *value)
{
    const char *json = vs__schema_json(schema_name);
    avro_schema_from_json_length(json, strlen(json), schema);
    *iface = avro_generic_class_from_schema(*schema);
    avro_generic_value_new(*iface, value);
}

/* The summary's figures, printed at the end as one JSON line for scripts and `make bench`. */
struct quality {
    int64_t fraud_alerts, churn_alerts;
    double fraud_precision, fraud_recall[VS__FRAUD_KIND_COUNT];
    double churn_precision, churn_recall, churn_delay_days, live_hit_rate;
};

static void summary(const struct vs_config *cfg, const char *bootstrap, struct vs__metrics *m,
                    struct vs__truth *truth, int64_t horizon_end_ts, struct quality *q)
{
    char err[512];
    struct vs__codec *codec = vs__codec_new(NULL, err, sizeof(err));
    static const char *const topic_keys[VS_OUT_COUNT] = {
        "topic.profiles", "topic.recommendations", "topic.churn.alerts", "topic.fraud.alerts"};
    printf("\n==== valuestream demo: summary ====\n\n");
    printf("events processed %" PRId64 ", dead-lettered %" PRId64 ", late %" PRId64
           ", timers fired %" PRId64 ", commits %" PRId64 "\n",
           vs__metrics_get(m, "events.processed"), vs__metrics_get(m, "events.deadlettered"),
           vs__metrics_get(m, "events.late"), vs__metrics_get(m, "timers.fired"),
           vs__metrics_get(m, "commits"));
    printf("\nrecords per output topic:\n");
    for (int i = 0; i < VS_OUT_COUNT; i++) {
        char name[128];
        const char *topic = vs_config_str(cfg, topic_keys[i]);
        snprintf(name, sizeof(name), "outputs.%s", topic);
        printf("  %-22s %" PRId64 "\n", topic, vs__metrics_get(m, name));
    }
    for (int i = 0; i < VS_OUT_COUNT; i++) {
        const char *topic = vs_config_str(cfg, topic_keys[i]);
        printf("\n  two records of %s:\n", topic);
        struct sample_state s = {codec, (enum vs_output)i, 0};
        vs__read_topic(bootstrap, topic, print_sample, &s, err, sizeof(err));
        if (!s.printed) {
            printf("    (none)\n");
        }
    }
    printf("\ndead letters by reason:\n");
    int any = 0;
    vs__metrics_foreach(m, print_metric, &any);
    if (!any) {
        printf("    (none)\n");
    }

    /* Fraud: alerts (REVIEW or BLOCK) against the planted fraud. */
    struct fraud_eval fe = {.truth = truth, .reader = avro_reader_memory("", 0)};
    avro_schema_t fs;
    avro_value_iface_t *fi;
    avro_slot("fraud_alert", &fi, &fs, &fe.value);
    vs__read_topic(bootstrap, vs_config_str(cfg, "topic.fraud.alerts"), on_fraud_alert, &fe, err,
                   sizeof(err));
    printf("\nfraud alerts against the planted fraud:\n");
    printf("  alerts %" PRId64 ", of which planted fraud %" PRId64 ": precision %.3f\n", fe.alerts,
           fe.true_alerts, fe.alerts ? (double)fe.true_alerts / (double)fe.alerts : 0.0);
    q->fraud_alerts = fe.alerts;
    q->fraud_precision = fe.alerts ? (double)fe.true_alerts / (double)fe.alerts : 0.0;
    for (int k = 1; k < VS__FRAUD_KIND_COUNT; k++) {
        size_t total = vs__truth_fraud_count(truth, (enum vs__fraud_kind)k);
        q->fraud_recall[k] = total ? (double)fe.caught[k] / (double)total : 0.0;
        printf("  %-18s planted %6zu  caught %6" PRId64 "  recall %.3f\n",
               vs__fraud_kind_name((enum vs__fraud_kind)k), total, fe.caught[k],
               total ? (double)fe.caught[k] / (double)total : 0.0);
    }
    avro_value_decref(&fe.value);
    avro_value_iface_decref(fi);
    avro_schema_decref(fs);
    avro_reader_free(fe.reader);

    /* Churn: an alert is right when the customer had dropped out by then; recall counts the
     * customers who dropped out at least 60 days before the end of the stream. */
    struct churn_eval ce = {.truth = truth, .reader = avro_reader_memory("", 0)};
    avro_schema_t cs;
    avro_value_iface_t *ci;
    avro_slot("churn_alert", &ci, &cs, &ce.value);
    vs__read_topic(bootstrap, vs_config_str(cfg, "topic.churn.alerts"), on_churn_alert, &ce, err,
                   sizeof(err));
    qsort(ce.alerted, (size_t)ce.nalerted, sizeof(char *), cmp_str);
    int64_t detectable = 0, detected = 0;
    for (size_t i = 0; i < vs__truth_dropout_count(truth); i++) {
        const char *user;
        int64_t ts;
        vs__truth_dropout_at(truth, i, &user, &ts);
        if (ts > horizon_end_ts - 60LL * 86400000LL) {
            continue;
        }
        detectable++;
        if (bsearch(&user, ce.alerted, (size_t)ce.nalerted, sizeof(char *), cmp_str)) {
            detected++;
        }
    }
    qsort(ce.delays, (size_t)ce.nalerted, sizeof(double), cmp_double);
    printf("\nchurn alerts against the customers' dropout times:\n");
    printf("  alerts %" PRId64 ", after a real dropout %" PRId64 ": precision %.3f\n", ce.alerts,
           ce.true_alerts, ce.alerts ? (double)ce.true_alerts / (double)ce.alerts : 0.0);
    printf("  dropouts at least 60 days before the end %" PRId64 ", alerted %" PRId64
           ": recall %.3f\n",
           detectable, detected, detectable ? (double)detected / (double)detectable : 0.0);
    q->churn_alerts = ce.alerts;
    q->churn_precision = ce.alerts ? (double)ce.true_alerts / (double)ce.alerts : 0.0;
    q->churn_recall = detectable ? (double)detected / (double)detectable : 0.0;
    q->churn_delay_days = ce.nalerted ? ce.delays[ce.nalerted / 2] : 0.0;
    if (ce.nalerted) {
        printf("  median detection delay %.1f days\n", ce.delays[ce.nalerted / 2]);
    }
    for (int64_t i = 0; i < ce.nalerted; i++) {
        free(ce.alerted[i]);
    }
    free(ce.alerted);
    free(ce.delays);
    avro_value_decref(&ce.value);
    avro_value_iface_decref(ci);
    avro_schema_decref(cs);
    avro_reader_free(ce.reader);

    int64_t checks = vs__metrics_get(m, "recommend.live.checks");
    int64_t hits = vs__metrics_get(m, "recommend.live.hits");
    printf("\nrecommendations, live: %" PRId64 " interactions with a list sent before, %" PRId64
           " of them on a listed item: hit rate %.3f\n",
           checks, hits, checks ? (double)hits / (double)checks : 0.0);
    q->live_hit_rate = checks ? (double)hits / (double)checks : 0.0;
    printf(
        "the blend the lists use now: model weight %.3g, trending weight %.3g, chosen by %" PRId64
        " tests on what customers did next (recommend.blend.adapt)\n",
        *vs__metrics_gauge(m, "recommend.blend.model.weight"),
        *vs__metrics_gauge(m, "recommend.blend.trending.weight"),
        vs__metrics_get(m, "recommend.blend.tests"));
    vs__codec_free(codec);
}

static void demo_usage(FILE *out)
{
    fprintf(out,
            "usage: valuestream demo [--customers N] [--items N] [--events N] [--days N]\n"
            "                        [--seed N] [--partitions N] [--set key=value]...\n"
            "\n"
            "Start an embedded broker, generate a synthetic shop (default 20k customers,\n"
            "2k items, ~1M events over 180 days), run the engine to the end of the stream and\n"
            "print a summary with detection quality against the generator's truth.\n");
}

static int rm_rf(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

int vs__demo_main(int argc, char **argv)
{
    static const struct option opts[] = {{"customers", required_argument, NULL, 'c'},
                                         {"items", required_argument, NULL, 'i'},
                                         {"events", required_argument, NULL, 'e'},
                                         {"days", required_argument, NULL, 'd'},
                                         {"seed", required_argument, NULL, 'S'},
                                         {"partitions", required_argument, NULL, 'p'},
                                         {"set", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *gen_args[5] = {"20000", "2000", "1000000", "180", "1"};
    char **sets = calloc((size_t)argc + 1, sizeof(char *));
    int nsets = 0, partitions = 64, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            gen_args[0] = optarg;
            break;
        case 'i':
            gen_args[1] = optarg;
            break;
        case 'e':
            gen_args[2] = optarg;
            break;
        case 'd':
            gen_args[3] = optarg;
            break;
        case 'S':
            gen_args[4] = optarg;
            break;
        case 'p':
            partitions = atoi(optarg);
            if (partitions < 1 || partitions > 1000) {
                fprintf(stderr, "valuestream demo: --partitions expects 1..1000\n");
                free(sets);
                return 2;
            }
            break;
        case 's':
            sets[nsets++] = optarg;
            break;
        case 'h':
            demo_usage(stdout);
            free(sets);
            return 0;
        default:
            demo_usage(stderr);
            free(sets);
            return 2;
        }
    }
    struct vs_config *cfg = vs__cli_config(NULL, sets, nsets, "demo");
    free(sets);
    if (!cfg) {
        return 2;
    }
    char err[1024], dir[] = "/tmp/valuestream-demo-XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "valuestream demo: cannot create a temporary directory\n");
        vs__config_free(cfg);
        return 1;
    }
    struct vs__broker *broker = vs__broker_new(err, sizeof(err));
    if (!broker) {
        fprintf(stderr, "valuestream demo: %s\n", err);
        vs__config_free(cfg);
        return 1;
    }
    const char *bootstrap = vs__broker_bootstraps(broker);
    const char *input = vs_config_str(cfg, "input.topic");
    vs__broker_create_topic(broker, input, partitions);
    static const char *const out_keys[] = {"topic.profiles", "topic.recommendations",
                                           "topic.churn.alerts", "topic.fraud.alerts",
                                           "topic.dead.letters"};
    for (int i = 0; i < 5; i++) {
        vs__broker_create_topic(broker, vs_config_str(cfg, out_keys[i]), partitions);
    }
    printf("bootstrap.servers=%s\n", bootstrap);
    fflush(stdout);

    char truth_path[4200], state_dir[4200];
    snprintf(truth_path, sizeof(truth_path), "%s/truth.csv", dir);
    snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
    char *gen_argv[] = {"gen",
                        "--customers",
                        (char *)gen_args[0],
                        "--items",
                        (char *)gen_args[1],
                        "--events",
                        (char *)gen_args[2],
                        "--days",
                        (char *)gen_args[3],
                        "--seed",
                        (char *)gen_args[4],
                        "--bootstrap",
                        (char *)bootstrap,
                        "--topic",
                        (char *)input,
                        "--truth",
                        truth_path,
                        NULL};
    fprintf(stderr, "valuestream demo: generating the shop into %s\n", input);
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = vs__gen_main((int)(sizeof(gen_argv) / sizeof(gen_argv[0])) - 1, gen_argv);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc) {
        fprintf(stderr, "valuestream demo: generation failed\n");
        vs__broker_free(broker);
        vs__config_free(cfg);
        rm_rf(dir);
        return 1;
    }
    vs__config_set(cfg, "bootstrap.servers", bootstrap, err, sizeof(err));
    vs__config_set(cfg, "state.dir", state_dir, err, sizeof(err));
    if (!vs__config_is_set(cfg, "log.level")) {
        vs__config_set(cfg, "log.level", "warn", err, sizeof(err));
    }
    struct vs__metrics *metrics = vs__metrics_new();
    struct vs__engine_run_options ro = {.until_end = 1, .progress = isatty(2), .metrics = metrics};
    fprintf(stderr, "valuestream demo: running the engine to the end of the stream\n");
    rc = vs__engine_run(cfg, &ro, err, sizeof(err));
    clock_gettime(CLOCK_MONOTONIC, &t2);
    if (rc) {
        fprintf(stderr, "valuestream demo: %s\n", err);
    } else {
        struct vs__truth *truth = vs__truth_load(truth_path, err, sizeof(err));
        if (!truth) {
            fprintf(stderr, "valuestream demo: %s\n", err);
            rc = 1;
        } else {
            double gen_s =
                (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
            double run_s =
                (double)(t2.tv_sec - t1.tv_sec) + (double)(t2.tv_nsec - t1.tv_nsec) / 1e9;
            int64_t events = vs__metrics_get(metrics, "events.processed") +
                             vs__metrics_get(metrics, "events.deadlettered");
            int64_t end_ts = vs__truth_end_ts(truth);
            struct quality q = {0};
            summary(cfg, bootstrap, metrics, truth, end_ts, &q);
            printf("\ngeneration %.1f s; engine %.1f s for %" PRId64 " events (%.0f events/s)\n",
                   gen_s, run_s, events, run_s > 0 ? (double)events / run_s : 0.0);
            printf("{\"bench\":\"demo\",\"events\":%" PRId64 ",\"engine_seconds\":%.1f,"
                   "\"events_per_s\":%.0f,\"fraud\":{\"alerts\":%" PRId64
                   ",\"precision\":%.3f,\"recall\":{",
                   events, run_s, run_s > 0 ? (double)events / run_s : 0.0, q.fraud_alerts,
                   q.fraud_precision);
            for (int k = 1; k < VS__FRAUD_KIND_COUNT; k++) {
                printf("%s\"%s\":%.3f", k > 1 ? "," : "",
                       vs__fraud_kind_name((enum vs__fraud_kind)k), q.fraud_recall[k]);
            }
            printf("}},\"churn\":{\"alerts\":%" PRId64 ",\"precision\":%.3f,\"recall\":%.3f,"
                   "\"median_delay_days\":%.1f},\"recommend\":{\"live_hit_rate\":%.3f}}\n",
                   q.churn_alerts, q.churn_precision, q.churn_recall, q.churn_delay_days,
                   q.live_hit_rate);
            vs__truth_free(truth);
        }
    }
    vs__metrics_free(metrics);
    vs__broker_free(broker);
    vs__config_free(cfg);
    rm_rf(dir);
    return rc ? 1 : 0;
}
