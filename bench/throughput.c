/*
 * Throughput: the engine against a plain librdkafka consume -> produce passthrough, in one run,
 * on the same embedded broker and the same pre-generated topic.
 *
 * The broker runs in this process; the engine runs as the real binary in a child process (its
 * peak RSS is the engine's own process.peak_rss_mib metric), once with only the profile operator
 * and once with every operator. Each side is timed from its first fetched record to its last (group
 * joins and start-up excluded), five rounds (--rounds); the headline pair, the passthrough and the
 * profile operator, runs in nine (--pair-rounds: on a shared machine one replay's speed moves by
 * a fifth from run to run, and so does a round's ratio), alternating (the passthrough first in
 * odd rounds, the engine first in even ones); the medians and their ratios are reported, and
 * beside the headline ratio of medians the median of the rounds' own ratios (round_ratio_median:
 * each round's pair runs back to back, under the same load of a shared machine). The last line of
 * stdout is one JSON object, also written to bench/results/throughput.json.
 *
 * A third configuration, every operator but value and churn, gives the share those two add to
 * the engine's time per event: measured right after every operator in each round, and the
 * median of the rounds' shares reported (a pair run back to back shares the machine's load of
 * the moment, which on a shared machine moves the two medians apart by more than the share).
 * Each model operator also runs on its own, as a deployment that needs only its outputs would
 * run it: fraud scoring with its default emission (alerts only), fraud scoring with
 * fraud.emit=all (a verdict for every purchase), and the recommender (fraud_*, recommend_*).
 * --customers sets the shop's size (default events / 50) and --cache-mb the engine's customer
 * cache, so a working set larger than the cache can be run:
 *
 * --extra LIST adds one more configuration (operators=LIST), reported as extra_*;
 * --profile-only runs the passthrough and the profile operator alone (large stores);
 * --restart keeps the last profile run's state and restarts the engine on it twice, each time
 * after 1 % more events were appended: with input.assignment=all and with a group join, and
 * reports the seconds from each start to the first record fetched.
 *
 *   bench_throughput [--events N] [--customers N] [--cache-mb N] [--partitions N] [--rounds N]
 *                    [--pair-rounds N] [--extra LIST] [--profile-only] [--restart]
 *
 * --pair-rounds defaults to 9, or to --rounds with --profile-only or more than 9 rounds.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "bench_util.h"
#include "broker.h"
#include "gen.h"

/* Consume every partition of topic from the beginning and produce each record to out. */
static double passthrough(const char *bootstrap, const char *topic, const char *out, int parts,
                          int64_t expect)
{
    rd_kafka_conf_t *cc = rd_kafka_conf_new(), *pc = rd_kafka_conf_new();
    bench_passthrough_conf(cc, pc, bootstrap, "passthrough");
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, cc, NULL, 0);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, NULL, 0);
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int i = 0; i < parts; i++) {
        rd_kafka_topic_partition_list_add(l, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p, out, NULL);
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(c);
    int64_t n = 0;
    double start = 0;
    rd_kafka_message_t *msgs[1000];
    while (n < expect) {
        ssize_t got = rd_kafka_consume_batch_queue(q, 100, msgs, 1000);
        for (ssize_t i = 0; i < got; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (!m->err) {
                if (!start) {
                    start = bench_now_s();
                }
                while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, m->payload,
                                        m->len, m->key, m->key_len, NULL) == -1) {
                    rd_kafka_poll(p, 10);
                }
                n++;
            }
            rd_kafka_message_destroy(m);
        }
        rd_kafka_poll(p, 0);
    }
    rd_kafka_flush(p, 60000);
    double elapsed = bench_now_s() - start;
    rd_kafka_queue_destroy(q);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    rd_kafka_destroy(p);
    return (double)n / elapsed;
}

/* Run the engine binary to the end of the topic; events/s over its busy time, peak RSS. With
 * keep set, the state stays in keep (made when it does not exist yet, reused when it does) and
 * the run may add one more setting (set) and report its seconds to the first record. */
static int cache_mb = 256;
static char a_cache[64] = "state.cache.mb=256";

struct engine_run {
    const char *keep;  /* state directory to keep and reuse, or NULL */
    const char *set;   /* one more key=value, or NULL */
    const char *group; /* group.id instead of bench-OPERATORS-ROUND, or NULL */
    double first_s;    /* out: run.first.record.seconds */
};

static double engine_in(const char *bootstrap, const char *operators, int round, double *rss_mib,
                        int64_t expect, struct engine_run *run)
{
    char dir[] = "/tmp/vs-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        return -1;
    }
    char a_boot[512], a_state[512], a_metrics[512], a_group[128], a_ops[256], metrics[256];
    snprintf(a_boot, sizeof(a_boot), "bootstrap.servers=%s", bootstrap);
    snprintf(a_state, sizeof(a_state), "state.dir=%s/state", run && run->keep ? run->keep : dir);
    snprintf(metrics, sizeof(metrics), "%s/metrics.json", dir);
    snprintf(a_metrics, sizeof(a_metrics), "metrics.file=%s", metrics);
    if (run && run->group) {
        snprintf(a_group, sizeof(a_group), "group.id=%s", run->group);
    } else {
        snprintf(a_group, sizeof(a_group), "group.id=bench-%s-%d", operators, round);
    }
    snprintf(a_ops, sizeof(a_ops), "operators=%s", operators);
    const char *a_set = run && run->set ? run->set : "log.level=warn";
    pid_t pid = fork();
    if (pid == 0) {
        execl(VS_BIN, VS_BIN, "run", "--until-end", "--set", a_boot, "--set", a_state, "--set",
              a_metrics, "--set", a_group, "--set", a_ops, "--set", "input.topic=bench.events",
              "--set", "log.level=warn", "--set", "topic.profiles=bench.profiles", "--set",
              "topic.recommendations=bench.recommendations", "--set", a_cache, "--set", a_set,
              (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    /* The engine's own high-water mark: a forked child's ru_maxrss also counts the pages it
     * shared with this process (which holds the broker's whole topic) before its exec. */
    *rss_mib = bench_json_number(metrics, "process.peak_rss_mib");
    double busy = bench_json_number(metrics, "run.busy.seconds");
    double processed = bench_json_number(metrics, "events.processed");
    if (run) {
        run->first_s = bench_json_number(metrics, "run.first.record.seconds");
    }
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd)) {
        /* nothing to do */
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || busy <= 0 ||
        processed != (double)expect) {
        fprintf(stderr, "engine run failed (status %d, processed %.0f of %" PRId64 ")\n", status,
                processed, expect);
        return -1;
    }
    return processed / busy;
}

static double engine(const char *bootstrap, const char *operators, int round, double *rss_mib,
                     int64_t expect)
{
    return engine_in(bootstrap, operators, round, rss_mib, expect, NULL);
}

static int64_t topic_events(const char *boot, int partitions)
{
    rd_kafka_conf_t *cc = rd_kafka_conf_new();
    rd_kafka_conf_set(cc, "bootstrap.servers", boot, NULL, 0);
    rd_kafka_t *probe = rd_kafka_new(RD_KAFKA_CONSUMER, cc, NULL, 0);
    int64_t total = 0;
    for (int i = 0; i < partitions; i++) {
        int64_t lo, hi;
        rd_kafka_query_watermark_offsets(probe, "bench.events", i, &lo, &hi, 5000);
        total += hi - lo;
    }
    rd_kafka_destroy(probe);
    return total;
}

/* Append about n more events of the same shop (another seed) to the topic. */
static int append_events(const char *boot, int64_t n, const char *cust, const char *seed)
{
    char ev[32];
    snprintf(ev, sizeof(ev), "%" PRId64, n);
    char *argv[] = {"gen",          "--events",    ev,           "--customers",
                    (char *)cust,   "--bootstrap", (char *)boot, "--topic",
                    "bench.events", "--seed",      (char *)seed, NULL};
    return vs__gen_main(11, argv);
}

int main(int argc, char **argv)
{
    int64_t events = 500000, customers = 0;
    int partitions = 32, rounds = 5, pair_rounds = 0;
    static const struct option opts[] = {
        {"events", required_argument, NULL, 'e'},   {"customers", required_argument, NULL, 'c'},
        {"cache-mb", required_argument, NULL, 'm'}, {"partitions", required_argument, NULL, 'p'},
        {"rounds", required_argument, NULL, 'r'},   {"pair-rounds", required_argument, NULL, 'q'},
        {"extra", required_argument, NULL, 'x'},    {"profile-only", no_argument, NULL, 'P'},
        {"restart", no_argument, NULL, 'R'},        {NULL, 0, NULL, 0}};
    int restart = 0;
    const char *extra = NULL;
    int profile_only = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'e') {
            events = atoll(optarg);
        } else if (c == 'c') {
            customers = atoll(optarg);
        } else if (c == 'm') {
            cache_mb = atoi(optarg);
            snprintf(a_cache, sizeof(a_cache), "state.cache.mb=%d", cache_mb);
        } else if (c == 'p') {
            partitions = atoi(optarg);
        } else if (c == 'r') {
            rounds = atoi(optarg);
        } else if (c == 'q') {
            pair_rounds = atoi(optarg);
        } else if (c == 'x') {
            extra = optarg;
        } else if (c == 'P') {
            profile_only = 1;
        } else if (c == 'R') {
            restart = 1;
        } else {
            fprintf(stderr, "usage: bench_throughput [--events N] [--customers N] [--cache-mb N] "
                            "[--partitions N] [--rounds N] [--pair-rounds N] [--extra LIST] "
                            "[--profile-only] [--restart]\n");
            return 2;
        }
    }
    if (!pair_rounds) {
        pair_rounds = profile_only || rounds > 9 ? rounds : 9;
    }
    if (rounds < 1 || rounds > 15 || pair_rounds < 1 || pair_rounds > 15 || events < 1000 ||
        partitions < 1) {
        fprintf(stderr, "bench_throughput: bad arguments\n");
        return 2;
    }
    char err[512];
    struct vs__broker *b = vs__broker_new(err, sizeof(err));
    if (!b) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const char *boot = vs__broker_bootstraps(b);
    vs__broker_create_topic(b, "bench.events", partitions);
    vs__broker_create_topic(b, "bench.passthrough", partitions);
    vs__broker_create_topic(b, "bench.profiles", partitions);
    vs__broker_create_topic(b, "bench.recommendations", partitions);
    char ev[32], cust[32];
    snprintf(ev, sizeof(ev), "%" PRId64, events);
    if (customers <= 0) {
        customers = events / 50 > 100 ? events / 50 : 100;
    }
    snprintf(cust, sizeof(cust), "%" PRId64, customers);
    char *gen_argv[] = {"gen",         "--events",   ev,        "--customers",  cust,
                        "--bootstrap", (char *)boot, "--topic", "bench.events", NULL};
    if (vs__gen_main(9, gen_argv)) {
        fprintf(stderr, "generation failed\n");
        return 1;
    }
    /* The generator calibrates to about N events; count what is there. */
    int64_t total = topic_events(boot, partitions);
    fprintf(stderr, "bench: %" PRId64 " events in %d partitions\n", total, partitions);

    char kept[] = "/tmp/vs-bench-state-XXXXXX";
    if (restart && !mkdtemp(kept)) {
        return 1;
    }
    double pt[15], eng[15], all[15], rss[15], rss_all[15], novc[15], rss_novc[15], ext[15],
        rss_ext[15], fr[15], rss_fr[15], fra[15], rss_fra[15], rec[15], rss_rec[15];
    int nrounds = rounds > pair_rounds ? rounds : pair_rounds;
    for (int r = 0; r < nrounds; r++) {
        char out[64];
        snprintf(out, sizeof(out), "bench.passthrough");
        /* With --restart, the last profile run's state is kept for the restarts below. The
         * pair in alternating order, so that neither side always runs after the other. */
        struct engine_run keep = {kept, NULL, NULL, 0};
        pt[r] = eng[r] = rss[r] = 0;
        if (r < pair_rounds && r % 2 == 1) {
            eng[r] = engine_in(boot, "profile", r, &rss[r], total,
                               restart && r == pair_rounds - 1 ? &keep : NULL);
        }
        if (r < pair_rounds) {
            pt[r] = passthrough(boot, "bench.events", out, partitions, total);
        }
        if (r < pair_rounds && r % 2 == 0) {
            eng[r] = engine_in(boot, "profile", r, &rss[r], total,
                               restart && r == pair_rounds - 1 ? &keep : NULL);
        }
        all[r] = rss_all[r] = novc[r] = rss_novc[r] = fr[r] = fra[r] = rec[r] = ext[r] = 0;
        if (!profile_only && r < rounds) {
            /* Each model operator on its own, as a deployment that needs only its outputs
             * runs it: fraud scoring (alerts only, and a verdict for every purchase) and the
             * recommender. */
            char group[64];
            snprintf(group, sizeof(group), "bench-fraud-all-%d", r);
            struct engine_run emit_all = {NULL, "fraud.emit=all", group, 0};
            fr[r] = engine(boot, "fraud", r, &rss_fr[r], total);
            fra[r] = engine_in(boot, "fraud", r, &rss_fra[r], total, &emit_all);
            rec[r] = engine(boot, "recommend", r, &rss_rec[r], total);
            fprintf(stderr,
                    "round %d: engine (fraud) %.0f ev/s, (fraud, fraud.emit=all) %.0f ev/s, "
                    "(recommend) %.0f ev/s\n",
                    r + 1, fr[r], fra[r], rec[r]);
            /* The pair in alternating order, so that neither side is always the one that
             * runs after the other. */
            if (r % 2 == 0) {
                all[r] = engine(boot, "value,churn,profile,recommend,fraud", r, &rss_all[r], total);
                novc[r] = engine(boot, "profile,recommend,fraud", r, &rss_novc[r], total);
            } else {
                novc[r] = engine(boot, "profile,recommend,fraud", r, &rss_novc[r], total);
                all[r] = engine(boot, "value,churn,profile,recommend,fraud", r, &rss_all[r], total);
            }
        }
        ext[r] = extra && r < rounds ? engine(boot, extra, r, &rss_ext[r], total) : 0;
        if (extra && r < rounds) {
            fprintf(stderr, "round %d: engine (%s) %.0f ev/s\n", r + 1, extra, ext[r]);
        }
        fprintf(stderr,
                "round %d: passthrough %.0f ev/s, engine (profile) %.0f ev/s (ratio %.3f), "
                "engine (all operators) %.0f ev/s, engine (all but value and churn) %.0f ev/s "
                "(value and churn add %.1f %%)\n",
                r + 1, pt[r], eng[r], pt[r] > 0 ? eng[r] / pt[r] : 0.0, all[r], novc[r],
                all[r] > 0 ? 100 * (novc[r] / all[r] - 1) : 0.0);
    }
    /* The share the value and churn operators add to the time per event of the whole engine:
     * time per event with every operator over the time without those two, minus one, per
     * round (the two run back to back), and the median of the rounds; before the medians
     * below, which sort their arrays. */
    double shares[15];
    int nshares = 0;
    for (int r = 0; r < rounds; r++) {
        if (all[r] > 0 && novc[r] > 0) {
            shares[nshares++] = novc[r] / all[r] - 1.0;
        }
    }
    double vc_cost = nshares ? bench_median(shares, nshares) : -1;
    /* The same for the headline pair: each round's own ratio (its two runs back to back), and
     * the median of those, beside the ratio of the two medians. */
    double pair[15];
    for (int r = 0; r < pair_rounds; r++) {
        pair[r] = pt[r] > 0 ? eng[r] / pt[r] : 0;
    }
    double pair_ratio = bench_median(pair, pair_rounds);
    double p = bench_median(pt, pair_rounds), e1 = bench_median(eng, pair_rounds),
           e2 = bench_median(all, rounds);
    double e3 = bench_median(novc, rounds), e4 = bench_median(ext, rounds);
    double m1 = bench_median(rss, pair_rounds), m2 = bench_median(rss_all, rounds);
    double f1 = bench_median(fr, rounds), f2 = bench_median(fra, rounds),
           f3 = bench_median(rec, rounds);
    char json[4096];
    snprintf(json, sizeof(json),
             "{\"bench\":\"throughput\",\"events\":%" PRId64 ",\"engine_events_per_s\":%.0f,"
             "\"passthrough_events_per_s\":%.0f,\"ratio\":%.3f,\"round_ratio_median\":%.3f,"
             "\"peak_rss_mib\":%.1f,"
             "\"all_operators_events_per_s\":%.0f,\"all_operators_ratio\":%.3f,"
             "\"all_operators_peak_rss_mib\":%.1f,\"without_value_churn_events_per_s\":%.0f,"
             "\"value_churn_cost\":%.3f,\"customers\":%" PRId64 ",\"cache_mb\":%d,\"rounds\":%d,"
             "\"pair_rounds\":%d}",
             total, e1, p, e1 / p, pair_ratio, m1, e2, e2 / p, m2, e3, vc_cost, customers, cache_mb,
             rounds, pair_rounds);
    if (!profile_only) {
        size_t l = strlen(json);
        snprintf(json + l - 1, sizeof(json) - l + 1,
                 ",\"fraud_events_per_s\":%.0f,\"fraud_ratio\":%.3f,\"fraud_peak_rss_mib\":%.1f,"
                 "\"fraud_emit_all_events_per_s\":%.0f,\"fraud_emit_all_ratio\":%.3f,"
                 "\"recommend_events_per_s\":%.0f,\"recommend_ratio\":%.3f,"
                 "\"recommend_peak_rss_mib\":%.1f}",
                 f1, f1 / p, bench_median(rss_fr, rounds), f2, f2 / p, f3, f3 / p,
                 bench_median(rss_rec, rounds));
    }
    if (extra) {
        size_t l = strlen(json);
        snprintf(json + l - 1, sizeof(json) - l + 1,
                 ",\"extra_operators\":\"%s\",\"extra_events_per_s\":%.0f,"
                 "\"extra_ratio\":%.3f,\"extra_peak_rss_mib\":%.1f}",
                 extra, e4, e4 / p, bench_median(rss_ext, rounds));
    }
    if (restart) {
        /* Restarts on the kept state with more events in the topic: the seconds from the
         * start to the first record fetched, without a group join (and a group.id of its own,
         * whose offsets the broker takes) and with one (the group of the run that made the
         * state). The events appended come from a hundredth of the customers. */
        struct engine_run all_run = {kept, "input.assignment=all", "bench-restart", 0},
                          group_run = {kept, NULL, NULL, 0};
        double rss_r;
        int64_t before = total, more = events / 100 > 1000 ? events / 100 : 1000;
        snprintf(cust, sizeof(cust), "%" PRId64, customers / 100 > 100 ? customers / 100 : 100);
        int ok = !append_events(boot, more, cust, "2");
        int64_t added = topic_events(boot, partitions) - before;
        ok = ok && engine_in(boot, "profile", pair_rounds - 1, &rss_r, added, &all_run) > 0;
        before += added;
        ok = ok && !append_events(boot, more, cust, "3");
        added = topic_events(boot, partitions) - before;
        ok = ok && engine_in(boot, "profile", pair_rounds - 1, &rss_r, added, &group_run) > 0;
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", kept);
        if (system(cmd)) {
            /* nothing to do */
        }
        if (!ok) {
            fprintf(stderr, "restart runs failed\n");
            return 1;
        }
        fprintf(stderr,
                "restart with %" PRId64 " customers: first record after %.3f s "
                "(input.assignment=all), %.3f s (group join)\n",
                customers, all_run.first_s, group_run.first_s);
        size_t l = strlen(json);
        snprintf(json + l - 1, sizeof(json) - l + 1,
                 ",\"restart_first_record_s\":%.3f,\"restart_group_first_record_s\":%.3f}",
                 all_run.first_s, group_run.first_s);
    }
    bench_result("throughput", json);
    vs__broker_free(b);
    return 0;
}
