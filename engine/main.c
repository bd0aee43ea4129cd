/*
 * The valuestream command line: one binary, one subcommand per job.
 *
 *   run      the engine against bootstrap.servers (or an embedded broker)
 *   broker   only the embedded broker, as its own process
 *   gen      the synthetic shop
 *   demo     everything end to end on the embedded broker, with a summary
 *   inspect  the state store of a stopped engine
 *   clv fit  the customer-value models on a transaction log
 *   eval     replay a log through an operator's model: `eval recommend`, `eval anomaly`
 *
 * Bad use exits with status 2 and a message naming the problem; runtime failures exit 1.
 */
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <valuestream/error.h>

#include "blas.h"
#include "broker.h"
#include "config.h"
#include "demo.h"
#include "engine.h"
#include "gen.h"
#include "inspect.h"
#include "operators/fraud/eval_anomaly.h"
#include "operators/recommend/eval_recommend.h"
#include "operators/value/clv_cli.h"
#include "registry.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: valuestream <command> [options]\n"
                 "\n"
                 "commands:\n"
                 "  run       run the engine (valuestream run --help)\n"
                 "  broker    run only the embedded Kafka broker\n"
                 "  gen       generate the synthetic shop's events\n"
                 "  demo      generate a shop and run the engine end to end on an embedded broker\n"
                 "  inspect   print customer records and stats of a state directory\n"
                 "  clv fit   fit the BG/NBD and Gamma-Gamma models on a transaction log\n"
                 "  eval      eval recommend | eval anomaly: replay a log through a model\n"
                 "\n"
                 "Each command takes --help.\n");
}

static void run_usage(FILE *out)
{
    fprintf(
        out,
        "usage: valuestream run [-c FILE] [--set key=value]... [--embedded] [--until-end]\n"
        "\n"
        "Run the engine: consume the input topic, run the operators, produce the outputs.\n"
        "\n"
        "  -c, --config FILE   properties file of key=value lines\n"
        "  --set key=value     set one key (after the file; repeatable)\n"
        "  --embedded          start an embedded broker in-process; prints\n"
        "                      bootstrap.servers=HOST:PORT as the first line of stdout\n"
        "  --until-end         exit 0 once every assigned partition is at its end and\n"
        "                      everything is committed (replays, benchmarks)\n"
        "\n"
        "Keys kafka.X pass X to librdkafka (kafka.consumer.X, kafka.producer.X for one side).\n");
    int n;
    const struct vs_config_key *const *tables = vs__engine_config_tables(&n);
    for (int i = 0; i < n; i++) {
        vs__config_print_reference(out, i < 3 ? "engine" : "operator", tables[i], 0);
    }
}

/* Build the full config from -c and --set arguments. Returns NULL after printing the error. */
struct vs_config *vs__cli_config(const char *file, char **sets, int nsets, const char *cmd)
{
    int n;
    const struct vs_config_key *const *tables = vs__engine_config_tables(&n);
    struct vs_config *cfg = vs__config_new(tables, n);
    char err[1024];
    if (!cfg) {
        fprintf(stderr, "valuestream %s: out of memory\n", cmd);
        return NULL;
    }
    if (file && vs__config_load_file(cfg, file, err, sizeof(err))) {
        fprintf(stderr, "valuestream %s: %s\n", cmd, err);
        vs__config_free(cfg);
        return NULL;
    }
    for (int i = 0; i < nsets; i++) {
        if (vs__config_set_arg(cfg, sets[i], err, sizeof(err))) {
            fprintf(stderr, "valuestream %s: %s\n", cmd, err);
            vs__config_free(cfg);
            return NULL;
        }
    }
    return cfg;
}

static int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"set", required_argument, NULL, 's'},
        {"embedded", no_argument, NULL, 'e'},     {"until-end", no_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *file = NULL;
    char **sets = calloc((size_t)argc + 1, sizeof(char *));
    int nsets = 0, embedded = 0, until_end = 0, c, rc = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            file = optarg;
            break;
        case 's':
            sets[nsets++] = optarg;
            break;
        case 'e':
            embedded = 1;
            break;
        case 'u':
            until_end = 1;
            break;
        case 'h':
            run_usage(stdout);
            free(sets);
            return 0;
        default:
            fprintf(stderr, "see: valuestream run --help\n");
            free(sets);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "valuestream run: unexpected argument '%s'\n", argv[optind]);
        free(sets);
        return 2;
    }
    struct vs_config *cfg = vs__cli_config(file, sets, nsets, "run");
    free(sets);
    if (!cfg) {
        return 2;
    }
    struct vs__broker *broker = NULL;
    char err[1024];
    if (embedded) {
        broker = vs__broker_new(err, sizeof(err));
        if (!broker) {
            fprintf(stderr, "valuestream run: %s\n", err);
            vs__config_free(cfg);
            return 1;
        }
        vs__broker_create_topic(broker, vs_config_str(cfg, "input.topic"), 32);
        vs__config_set(cfg, "bootstrap.servers", vs__broker_bootstraps(broker), err, sizeof(err));
        printf("bootstrap.servers=%s\n", vs__broker_bootstraps(broker));
        fflush(stdout);
    }
    struct vs__engine_run_options ro = {.until_end = until_end, .progress = isatty(2)};
    int erc = vs__engine_run(cfg, &ro, err, sizeof(err));
    if (erc) {
        fprintf(stderr, "valuestream run: %s\n", err);
        rc = erc == VS_ECONFIG ? 2 : 1;
    }
    vs__broker_free(broker);
    vs__config_free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    vs__blas_kernels_check(argv); /* may start the program again, with better BLAS kernels */
    /* A fixed mmap threshold: glibc otherwise raises it after each large free, and the large
     * buffers that come and go (RocksDB's memtable blocks, write batches, librdkafka's fetch
     * responses) then stay in the heap as fragments. With 1M customers and a 64 MiB cache
     * this took the engine's peak RSS from 289 to 240 MiB at the same throughput. */
    mallopt(M_MMAP_THRESHOLD, 512 * 1024);
    /* No fastbins: small chunks freed past the thread cache are merged at once instead of kept
     * for a later malloc_consolidate(), which every allocation of 1 KiB or more then ran over
     * all of them (a new customer's cache entry, a RocksDB iterator, a growing write batch):
     * 3-4 % of the loop's time in a profile replay. The loop's time per replay fell 5-7 %
     * (medians of 8 alternating replays), with the same peak RSS at 1M customers. */
    mallopt(M_MXFAST, 0);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "run")) {
        return cmd_run(argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "broker")) {
        return vs__broker_main(argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "gen")) {
        return vs__gen_main(argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "demo")) {
        return vs__demo_main(argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "inspect")) {
        return vs__inspect_main(argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "clv")) {
        if (argc >= 3 && !strcmp(argv[2], "fit")) {
            return vs_clv_main(argc - 1, argv + 1);
        }
        fprintf(stderr, "usage: valuestream clv fit --transactions FILE --format "
                        "cdnow-sample|cdnow-master|csv --calibration-end YYYY-MM-DD\n");
        return argc >= 3 && !strcmp(argv[2], "--help") ? 0 : 2;
    }
    if (!strcmp(cmd, "eval")) {
        if (argc >= 3 && !strcmp(argv[2], "recommend")) {
            return vs_eval_recommend_main(argc - 2, argv + 2);
        }
        if (argc >= 3 && !strcmp(argv[2], "anomaly")) {
            return vs_eval_anomaly_main(argc - 2, argv + 2);
        }
        fprintf(stderr,
                "usage: valuestream eval recommend|anomaly [options] (see --help of each)\n");
        return argc >= 3 && !strcmp(argv[2], "--help") ? 0 : 2;
    }
    fprintf(stderr, "valuestream: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
