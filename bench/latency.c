/*
 * Verdict latency: how long a payment service waits for the fraud verdict on a purchase, from
 * the purchase's produce call to the delivery of its fraud_alert on the output topic, beside the
 * same figure for a plain librdkafka consume -> produce passthrough (the floor that Kafka itself
 * sets on this broker).
 *
 * A latency means something only at a stated load, so the engine's maximum rate is measured
 * first: a replay of pre-generated events with --until-end, events.processed over
 * run.busy.seconds from its metrics file. Then the same shop is produced live, paced at half that
 * rate, to three children in turn, each on its own topics of the embedded broker (which runs in
 * this process): the engine binary with fraud.emit=all (a verdict for every purchase) in the
 * default deterministic processing.order=event, the engine with processing.order=arrival, and
 * this program again as the passthrough (`--passthrough`, so that it too is a process of its
 * own). Every event's ts is set to the wall clock when it is produced, as a shop would, so that
 * the engine takes it for live data. A consumer thread on the output topic takes each record's
 * event_id from its Avro body and its arrival time; the producer side notes each purchase's
 * produce time on the same monotonic clock. The first seconds after the first verdict are warm-up
 * and are not measured; every purchase of the whole run must get exactly one verdict, or the
 * bench fails.
 *
 * The shop's producer lingers 5 ms, as the engine's own does (producer.linger.ms). Shorter is
 * not a lower floor on the embedded broker: its fetch looks a partition's offset up by walking
 * the partition's list of message sets from the oldest, and with 1 ms most sets hold one record,
 * so after a few seconds at ~10k events/s that walk takes the broker's whole core and every
 * latency, the passthrough's too, climbs into seconds. Runs are kept short for the same reason.
 *
 * The last line of stdout is one JSON object, also written to bench/results/latency.json.
 *
 *   bench_latency [--seconds N] [--warmup N] [--partitions N] [--rate EVENTS_PER_S]
 *                 [--probe-events N] [--linger MS]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <avro.h>
#include <librdkafka/rdkafka.h>

#include "bench_util.h"
#include "broker.h"
#include "codec.h"
#include "gen.h"

#define CUSTOMERS 5000
#define GEN_DAYS 30 /* the generator's period; only the probe replays its ts */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_until_ns(int64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* A client of conf (which it takes), or exit. */
static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "bench_latency: %s\n", err);
        exit(1);
    }
    return rk;
}

/* A consumer of conf (which it takes) on every partition of topic, from the beginning. */
static rd_kafka_t *consumer_from_start(rd_kafka_conf_t *conf, const char *topic, int parts)
{
    rd_kafka_t *c = client_new(RD_KAFKA_CONSUMER, conf);
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int i = 0; i < parts; i++) {
        rd_kafka_topic_partition_list_add(l, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    return c;
}

/* ==== The shop: pre-generated events, encoded once ==== */

struct shop {
    char *bytes; /* the Avro bodies, back to back */
    size_t len, cap;
    size_t *off;
    uint32_t *size;
    int64_t *slot; /* the event's purchase number, -1 for other events */
    int64_t n, cap_events, purchases;
    struct vs__codec *codec;
    char *err;
};

static int shop_add(void *arg, const struct vs_event *ev)
{
    struct shop *s = arg;
    const void *buf;
    size_t len;
    /* A verdict names its purchase by event_id; the event's number in it is its index here. */
    if (ev->event_id[0] != 'e' || strtoll(ev->event_id + 1, NULL, 10) != s->n + 1) {
        s->err = "the generator's event ids are not e1, e2, ... in order";
        return -1;
    }
    if (vs__codec_encode_event(s->codec, ev, &buf, &len)) {
        s->err = "cannot encode a generated event";
        return -1;
    }
    if (s->n == s->cap_events) {
        s->cap_events = s->cap_events ? 2 * s->cap_events : 65536;
        s->off = realloc(s->off, sizeof(*s->off) * (size_t)s->cap_events);
        s->size = realloc(s->size, sizeof(*s->size) * (size_t)s->cap_events);
        s->slot = realloc(s->slot, sizeof(*s->slot) * (size_t)s->cap_events);
    }
    if (s->len + len > s->cap) {
        s->cap = 2 * (s->len + len);
        s->bytes = realloc(s->bytes, s->cap);
    }
    if (!s->off || !s->size || !s->slot || !s->bytes) {
        s->err = "out of memory";
        return -1;
    }
    memcpy(s->bytes + s->len, buf, len);
    s->off[s->n] = s->len;
    s->size[s->n] = (uint32_t)len;
    s->slot[s->n] = ev->type == VS_EVENT_PURCHASE ? s->purchases++ : -1;
    s->len += len;
    s->n++;
    return 0;
}

static int shop_generate(struct shop *s, int64_t events)
{
    memset(s, 0, sizeof(*s));
    char err[256];
    s->codec = vs__codec_new(NULL, err, sizeof(err));
    if (!s->codec) {
        fprintf(stderr, "bench_latency: %s\n", err);
        return -1;
    }
    struct vs__gen_options o;
    vs__gen_options_default(&o);
    o.events = events;
    o.customers = CUSTOMERS;
    o.days = GEN_DAYS;
    if (vs__gen_run(&o, shop_add, s, NULL)) {
        fprintf(stderr, "bench_latency: generation failed: %s\n", s->err ? s->err : "?");
        return -1;
    }
    return 0;
}

static void shop_free(struct shop *s)
{
    vs__codec_free(s->codec);
    free(s->bytes);
    free(s->off);
    free(s->size);
    free(s->slot);
}

/*
 * The shop's producer. produce_event() re-encodes event i with ts = the wall clock (rebase) or
 * as generated, and returns the monotonic time of the produce call.
 */
struct producer {
    rd_kafka_t *rk;
    struct shop *shop;
    char *strbuf;
    size_t strcap;
};

static rd_kafka_t *producer_new(const char *bootstrap, int linger_ms)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char linger[16];
    snprintf(linger, sizeof(linger), "%d", linger_ms);
    bench_conf_set(conf, "bootstrap.servers", bootstrap);
    bench_conf_set(conf, "linger.ms", linger);
    bench_conf_set(conf, "queue.buffering.max.messages", "1000000");
    return client_new(RD_KAFKA_PRODUCER, conf);
}

static int64_t produce_event(struct producer *p, const char *topic, int64_t i, int rebase)
{
    struct shop *s = p->shop;
    struct vs_event ev;
    char why[256];
    const void *buf;
    size_t len;
    if (vs__codec_decode_event_buf(s->codec, s->bytes + s->off[i], s->size[i], &ev, &p->strbuf,
                                   &p->strcap, why, sizeof(why))) {
        fprintf(stderr, "bench_latency: event %" PRId64 ": %s\n", i, why);
        exit(1);
    }
    if (rebase) {
        ev.ts = wall_ms();
    }
    if (vs__codec_encode_event(s->codec, &ev, &buf, &len)) {
        fprintf(stderr, "bench_latency: cannot encode event %" PRId64 "\n", i);
        exit(1);
    }
    int64_t t = now_ns();
    rd_kafka_resp_err_t err;
    while ((err = rd_kafka_producev(
                p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE((void *)buf, len),
                RD_KAFKA_V_KEY(ev.user_id, ev.user_id_len), RD_KAFKA_V_TIMESTAMP(ev.ts),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(p->rk, 10);
        t = now_ns();
    }
    if (err) {
        fprintf(stderr, "bench_latency: produce: %s\n", rd_kafka_err2str(err));
        exit(1);
    }
    return t;
}

/* ==== Children: the engine and the passthrough ==== */

/* A child's directory: its state, its metrics file and its log. */
struct workdir {
    char dir[32], log[64], metrics[64];
};

static void workdir_new(struct workdir *wd)
{
    snprintf(wd->dir, sizeof(wd->dir), "/tmp/vs-latency-XXXXXX");
    if (!mkdtemp(wd->dir)) {
        perror("bench_latency: mkdtemp");
        exit(1);
    }
    snprintf(wd->log, sizeof(wd->log), "%s/child.log", wd->dir);
    snprintf(wd->metrics, sizeof(wd->metrics), "%s/metrics.json", wd->dir);
}

static void workdir_free(struct workdir *wd)
{
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", wd->dir);
    if (system(cmd)) {
        fprintf(stderr, "bench_latency: cannot remove %s\n", wd->dir);
    }
}

/* Start argv with stdout and stderr in log (the engine's progress line would garble ours). */
static pid_t spawn(char **argv, const char *log)
{
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench_latency: fork");
        exit(1);
    }
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Wait for pid (SIGKILL after timeout_s); its exit status, or -1 when it did not exit cleanly. */
static int reap(pid_t pid, int timeout_s, const char *log)
{
    int status = 0;
    int64_t deadline = now_ns() + (int64_t)timeout_s * 1000000000;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (now_ns() > deadline) {
            fprintf(stderr, "bench_latency: child %d did not exit; killing it\n", (int)pid);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        usleep(20000);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return 0;
    }
    fprintf(stderr, "bench_latency: child exited with status %d; the end of %s:\n", status, log);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "tail -n 20 '%s' | tr '\\r' '\\n' | tail -n 20 >&2", log);
    if (system(cmd)) {
        /* nothing more to show */
    }
    return -1;
}

struct engine_args {
    char boot[512], state[512], metrics[512], group[128], input[128], fraud[128], order[64];
    char *argv[48];
};

/* The engine's command line: live (or until_end), fraud.emit=all, outputs on lat.* topics. */
static void engine_argv(struct engine_args *a, const char *bootstrap, const char *dir,
                        const char *name, const char *order, int until_end)
{
    snprintf(a->boot, sizeof(a->boot), "bootstrap.servers=%s", bootstrap);
    snprintf(a->state, sizeof(a->state), "state.dir=%s/state", dir);
    snprintf(a->metrics, sizeof(a->metrics), "metrics.file=%s/metrics.json", dir);
    snprintf(a->group, sizeof(a->group), "group.id=lat-%s", name);
    snprintf(a->input, sizeof(a->input), "input.topic=lat.%s.in", name);
    snprintf(a->fraud, sizeof(a->fraud), "topic.fraud.alerts=lat.%s.out", name);
    snprintf(a->order, sizeof(a->order), "processing.order=%s", order);
    const char *sets[] = {a->boot,
                          a->state,
                          a->metrics,
                          a->group,
                          a->input,
                          a->fraud,
                          a->order,
                          "fraud.emit=all",
                          "log.level=warn",
                          "topic.profiles=lat.profiles",
                          "topic.recommendations=lat.recommendations",
                          "topic.churn.alerts=lat.churn-alerts",
                          "topic.dead.letters=lat.dead-letters"};
    int n = 0;
    a->argv[n++] = VS_BIN;
    a->argv[n++] = "run";
    if (until_end) {
        a->argv[n++] = "--until-end";
    }
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        a->argv[n++] = "--set";
        a->argv[n++] = (char *)sets[i];
    }
    a->argv[n] = NULL;
}

static volatile sig_atomic_t passthrough_stop;

static void on_term(int sig)
{
    (void)sig;
    passthrough_stop = 1;
}

/*
 * `bench_latency --passthrough BOOTSTRAP IN OUT PARTITIONS`: every record of IN, as soon as it
 * is fetched, produced to OUT, until SIGTERM. Consumer and producer are set up as the engine's
 * (engine/source.c, engine/sink.c), so that the difference to the engine is the engine's own.
 */
static int passthrough_main(const char *bootstrap, const char *in, const char *out, int parts)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    rd_kafka_conf_t *cc = rd_kafka_conf_new(), *pc = rd_kafka_conf_new();
    bench_passthrough_conf(cc, pc, bootstrap, "lat-passthrough");
    rd_kafka_t *c = consumer_from_start(cc, in, parts);
    rd_kafka_t *p = client_new(RD_KAFKA_PRODUCER, pc);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p, out, NULL);
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(c);
    int64_t n = 0;
    while (!passthrough_stop) {
        /* One record at a time: a batch call would wait for its batch to fill. */
        rd_kafka_message_t *m = rd_kafka_consume_queue(q, 100);
        if (m && !m->err) {
            while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, m->payload,
                                    m->len, m->key, m->key_len, NULL) == -1) {
                rd_kafka_poll(p, 10);
            }
            n++;
        }
        if (m) {
            rd_kafka_message_destroy(m);
        }
        rd_kafka_poll(p, 0);
    }
    int rc = rd_kafka_flush(p, 30000) ? 1 : 0;
    fprintf(stderr, "passthrough: %" PRId64 " records\n", n);
    rd_kafka_queue_destroy(q);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    rd_kafka_destroy(p);
    return rc;
}

/* ==== The output side: arrival of each purchase's record ==== */

struct watch {
    const char *bootstrap, *topic, *schema; /* the output topic and the schema of its records */
    int partitions;
    const struct shop *shop;
    atomic_llong produced_events; /* events 0..produced_events-1 may be named */
    int64_t *received_ns;         /* per purchase; 0 until its first record */
    atomic_llong received, duplicates, unknown;
    atomic_int stop, failed;
};

/* The purchase a record is about: its event_id "eN" is event N-1 of the shop; -1 if none. */
static int64_t purchase_of(const struct watch *w, const char *id)
{
    if (id[0] != 'e') {
        return -1;
    }
    int64_t i = strtoll(id + 1, NULL, 10) - 1;
    return i >= 0 && i < atomic_load(&w->produced_events) ? w->shop->slot[i] : -1;
}

static void *watch_thread(void *arg)
{
    struct watch *w = arg;
    const char *json = vs__schema_json(w->schema);
    avro_schema_t schema;
    if (!json || avro_schema_from_json_length(json, strlen(json), &schema)) {
        fprintf(stderr, "bench_latency: schema %s: %s\n", w->schema, avro_strerror());
        atomic_store(&w->failed, 1);
        return NULL;
    }
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t value;
    avro_generic_value_new(iface, &value);
    avro_reader_t reader = avro_reader_memory("", 0);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bench_conf_set(conf, "bootstrap.servers", w->bootstrap);
    bench_conf_set(conf, "group.id", "lat-watch");
    bench_conf_set(conf, "enable.auto.commit", "false");
    bench_conf_set(conf, "fetch.wait.max.ms", "10");
    rd_kafka_t *c = consumer_from_start(conf, w->topic, w->partitions);
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(c);
    while (!atomic_load(&w->stop)) {
        /* One record at a time, timed as it is handed over: a batch call would wait for its
         * batch to fill. */
        rd_kafka_message_t *m = rd_kafka_consume_queue(q, 50);
        int64_t t = now_ns();
        if (!m) {
            continue;
        }
        avro_value_t f;
        const char *id = NULL;
        size_t size;
        if (!m->err) {
            avro_reader_memory_set_source(reader, m->payload, (int64_t)m->len);
            if (avro_value_read(reader, &value) == 0 &&
                avro_value_get_by_name(&value, "event_id", &f, NULL) == 0) {
                avro_value_get_string(&f, &id, &size);
            }
        }
        int64_t slot = id ? purchase_of(w, id) : -1;
        if (slot >= 0 && w->received_ns[slot]) {
            atomic_fetch_add(&w->duplicates, 1);
        } else if (slot >= 0) {
            w->received_ns[slot] = t;
            atomic_fetch_add(&w->received, 1);
        } else if (!m->err && strcmp(w->schema, "fraud_alert") == 0) {
            /* A passthrough carries every event; a verdict must name a purchase. */
            atomic_fetch_add(&w->unknown, 1);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    avro_reader_free(reader);
    avro_value_decref(&value);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
    return NULL;
}

/* ==== One live run ==== */

struct result {
    int64_t purchases, measured, received, duplicates, unknown;
    double p50_ms, p99_ms, max_ms, rate;
    /* From the engine's metrics (-1: none): commits and their mean time on the loop, of which
     * waiting for acks; share of events that came after their partition's watermark; the
     * loop's time spent waiting in the merge for a partition with nothing fetched. */
    double commits, commit_ms, flush_ms, deadlettered, late_share, merge_wait_s;
    int ok;
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * Produce events from..from+count-1 of the shop to topic, event k at start + k / rate (behind
 * that schedule, without sleeping until it is caught up), noting each purchase's produce time.
 * Returns the monotonic time from which purchases are measured (start + warmup_s) and sets
 * *rate_out to the rate achieved.
 */
static int64_t produce_paced(struct producer *prod, struct watch *w, int64_t *produced_ns,
                             const char *topic, int64_t from, int64_t count, double rate,
                             int warmup_s, double *rate_out)
{
    const struct shop *s = prod->shop;
    int64_t end = from + count < s->n ? from + count : s->n;
    int64_t start = now_ns();
    for (int64_t i = from, k = 0; i < end; i++, k++) {
        int64_t due = start + (int64_t)((double)k * 1e9 / rate);
        if (now_ns() < due) {
            sleep_until_ns(due);
        }
        atomic_store(&w->produced_events, i + 1);
        int64_t t = produce_event(prod, topic, i, 1);
        if (s->slot[i] >= 0) {
            produced_ns[s->slot[i]] = t;
        }
        if ((k & 255) == 0) {
            rd_kafka_poll(prod->rk, 0);
        }
    }
    *rate_out = (double)(end - from) / ((double)(now_ns() - start) / 1e9);
    rd_kafka_flush(prod->rk, 10000);
    return start + (int64_t)warmup_s * 1000000000;
}

/* Wait until w has seen want purchases (or timeout_s has passed). */
static void wait_received(struct watch *w, int64_t want, int timeout_s)
{
    int64_t deadline = now_ns() + (int64_t)timeout_s * 1000000000;
    while (atomic_load(&w->received) < want && now_ns() < deadline && !atomic_load(&w->failed)) {
        usleep(5000);
    }
}

/* The latency figures of the purchases produced from measure_from on. */
static void latency_figures(struct result *r, const int64_t *produced_ns,
                            const int64_t *received_ns, int64_t measure_from)
{
    int64_t *lat = malloc(sizeof(int64_t) * (size_t)(r->purchases + 1));
    if (!lat) {
        return;
    }
    for (int64_t p = 0; p < r->purchases; p++) {
        if (produced_ns[p] >= measure_from && received_ns[p]) {
            lat[r->measured++] = received_ns[p] - produced_ns[p];
        }
    }
    if (r->measured) {
        qsort(lat, (size_t)r->measured, sizeof(int64_t), cmp_i64);
        r->p50_ms = (double)lat[r->measured / 2] / 1e6;
        r->p99_ms = (double)lat[(r->measured * 99 + 99) / 100 - 1] / 1e6;
        r->max_ms = (double)lat[r->measured - 1] / 1e6;
    }
    free(lat);
}

/*
 * Produce the shop live to lat.NAME.in with the child running (the engine with order, or the
 * passthrough when order is NULL), paced at rate events/s for warmup_s + seconds, and measure
 * produce -> arrival on lat.NAME.out of every purchase after the warm-up.
 */
static struct result live_run(struct vs__broker *b, struct producer *prod, const char *name,
                              const char *order, int partitions, double rate, int warmup_s,
                              int seconds, const char *self)
{
    struct result r;
    memset(&r, 0, sizeof(r));
    r.commits = r.commit_ms = r.flush_ms = r.deadlettered = r.late_share = r.merge_wait_s = -1;
    const char *boot = vs__broker_bootstraps(b);
    struct shop *s = prod->shop;
    char in[128], out[128];
    snprintf(in, sizeof(in), "lat.%s.in", name);
    snprintf(out, sizeof(out), "lat.%s.out", name);
    vs__broker_create_topic(b, in, partitions);
    vs__broker_create_topic(b, out, partitions);
    int64_t *produced_ns = calloc((size_t)s->purchases + 1, sizeof(int64_t));
    struct watch w = {.bootstrap = boot,
                      .topic = out,
                      .schema = order ? "fraud_alert" : "shop_event",
                      .partitions = partitions,
                      .shop = s,
                      .received_ns = calloc((size_t)s->purchases + 1, sizeof(int64_t))};
    if (!produced_ns || !w.received_ns) {
        fprintf(stderr, "bench_latency: out of memory\n");
        exit(1);
    }
    pthread_t th;
    pthread_create(&th, NULL, watch_thread, &w);

    struct workdir wd;
    workdir_new(&wd);
    struct engine_args ea;
    char parts[16];
    snprintf(parts, sizeof(parts), "%d", partitions);
    char *pt_argv[] = {(char *)self, "--passthrough", (char *)boot, in, out, parts, NULL};
    if (order) {
        engine_argv(&ea, boot, wd.dir, name, order, 0);
    }
    pid_t pid = spawn(order ? ea.argv : pt_argv, wd.log);

    /* Ready once the first purchase has come through: the group join is not latency. */
    int64_t first = 0;
    while (first < s->n && s->slot[first] < 0) {
        first++;
    }
    produce_paced(prod, &w, produced_ns, in, 0, first + 1, 1e6, 0, &r.rate);
    wait_received(&w, 1, 60);
    int64_t measure_from = INT64_MAX;
    if (atomic_load(&w.received) == 0) {
        fprintf(stderr, "bench_latency: %s: no output within 60 s\n", name);
    } else {
        measure_from =
            produce_paced(prod, &w, produced_ns, in, first + 1,
                          (int64_t)(rate * (warmup_s + seconds)), rate, warmup_s, &r.rate);
        for (int64_t e = 0; e < atomic_load(&w.produced_events); e++) {
            r.purchases += s->slot[e] >= 0;
        }
        wait_received(&w, r.purchases, 30);
        usleep(300000); /* room for a duplicate to show */
        r.ok = 1;
    }
    kill(pid, SIGTERM);
    if (reap(pid, 60, wd.log)) {
        r.ok = 0;
    }
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    r.received = atomic_load(&w.received);
    r.duplicates = atomic_load(&w.duplicates);
    r.unknown = atomic_load(&w.unknown);
    latency_figures(&r, produced_ns, w.received_ns, measure_from);
    if (order) {
        double commits = bench_json_number(wd.metrics, "commits");
        if (commits > 0) {
            r.commits = commits;
            r.commit_ms = 1000 * bench_json_number(wd.metrics, "commit.seconds") / commits;
            r.flush_ms = 1000 * bench_json_number(wd.metrics, "commit.flush.seconds") / commits;
        }
        r.deadlettered = bench_json_number(wd.metrics, "events.deadlettered");
        double processed = bench_json_number(wd.metrics, "events.processed");
        if (processed > 0) {
            r.late_share = bench_json_number(wd.metrics, "events.late") / processed;
        }
        r.merge_wait_s = bench_json_number(wd.metrics, "merge.wait.seconds");
    }
    if (r.received != r.purchases || r.duplicates || r.unknown || r.deadlettered > 0) {
        r.ok = 0;
    }
    fprintf(stderr,
            "%-12s %6" PRId64 " purchases at %.0f ev/s: %" PRId64 " outputs, %" PRId64
            " duplicates, %" PRId64 " unknown; of %" PRId64 " measured: p50 %.2f ms, p99 %.2f ms, "
            "max %.2f ms",
            name, r.purchases, r.rate, r.received, r.duplicates, r.unknown, r.measured, r.p50_ms,
            r.p99_ms, r.max_ms);
    if (r.commits > 0) {
        fprintf(stderr, "; %.0f commits of %.1f ms on average (%.1f ms waiting for acks)",
                r.commits, r.commit_ms, r.flush_ms);
    }
    if (r.late_share >= 0) {
        fprintf(stderr, "; %.0f%% of events late", 100 * r.late_share);
    }
    if (r.merge_wait_s >= 0) {
        fprintf(stderr, "; %.1f s waiting in the merge", r.merge_wait_s);
    }
    if (r.deadlettered > 0) {
        fprintf(stderr, "; %.0f dead-lettered", r.deadlettered);
    }
    fprintf(stderr, "%s\n", r.ok ? "" : "  [FAILED]");
    free(produced_ns);
    free(w.received_ns);
    workdir_free(&wd);
    return r;
}

/* ==== The engine's maximum rate ==== */

/*
 * Replay probe_events of a shop (as generated, ts and all) with --until-end and the live runs'
 * config; events/s over the engine's busy time, or -1.
 */
static double max_rate(struct vs__broker *b, int partitions, int64_t probe_events)
{
    struct shop s;
    if (shop_generate(&s, probe_events)) {
        return -1;
    }
    const char *boot = vs__broker_bootstraps(b);
    vs__broker_create_topic(b, "lat.probe.in", partitions);
    vs__broker_create_topic(b, "lat.probe.out", partitions);
    struct producer prod = {producer_new(boot, 5), &s, NULL, 0};
    for (int64_t i = 0; i < s.n; i++) {
        produce_event(&prod, "lat.probe.in", i, 0);
        if ((i & 1023) == 0) {
            rd_kafka_poll(prod.rk, 0);
        }
    }
    rd_kafka_flush(prod.rk, 60000);
    rd_kafka_destroy(prod.rk);
    free(prod.strbuf);

    struct workdir wd;
    workdir_new(&wd);
    struct engine_args ea;
    engine_argv(&ea, boot, wd.dir, "probe", "event", 1);
    int rc = reap(spawn(ea.argv, wd.log), 300, wd.log);
    double busy = bench_json_number(wd.metrics, "run.busy.seconds");
    double processed = bench_json_number(wd.metrics, "events.processed");
    workdir_free(&wd);
    if (rc || busy <= 0 || processed != (double)s.n) {
        fprintf(stderr, "bench_latency: probe run failed (processed %.0f of %" PRId64 ")\n",
                processed, s.n);
        shop_free(&s);
        return -1;
    }
    fprintf(stderr, "engine max: %.0f events in %.2f s busy: %.0f ev/s\n", processed, busy,
            processed / busy);
    shop_free(&s);
    return processed / busy;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "--passthrough") == 0) {
        return passthrough_main(argv[2], argv[3], argv[4], atoi(argv[5]));
    }
    int seconds = 10, warmup = 3, partitions = 16, linger = 5;
    double rate = 0;
    int64_t probe_events = 100000;
    static const struct option opts[] = {{"seconds", required_argument, NULL, 's'},
                                         {"warmup", required_argument, NULL, 'w'},
                                         {"partitions", required_argument, NULL, 'p'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"probe-events", required_argument, NULL, 'e'},
                                         {"linger", required_argument, NULL, 'l'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 's') {
            seconds = atoi(optarg);
        } else if (c == 'w') {
            warmup = atoi(optarg);
        } else if (c == 'p') {
            partitions = atoi(optarg);
        } else if (c == 'r') {
            rate = atof(optarg);
        } else if (c == 'l') {
            linger = atoi(optarg);
        } else if (c == 'e') {
            probe_events = atoll(optarg);
        } else {
            fprintf(stderr, "usage: bench_latency [--seconds N] [--warmup N] [--partitions N] "
                            "[--rate EVENTS_PER_S] [--probe-events N] [--linger MS]\n");
            return 2;
        }
    }
    if (seconds < 1 || seconds > 300 || warmup < 0 || warmup > 60 || partitions < 1 ||
        partitions > 256 || rate < 0 || rate > 1e6 || probe_events < 10000 || linger < 0 ||
        linger > 1000) {
        fprintf(stderr, "bench_latency: bad arguments\n");
        return 2;
    }
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (sl <= 0) {
        perror("bench_latency: /proc/self/exe");
        return 1;
    }
    self[sl] = 0;
    char err[512];
    struct vs__broker *b = vs__broker_new(err, sizeof(err));
    if (!b) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const char *boot = vs__broker_bootstraps(b);
    /* Outputs nobody reads here, on topics of their own with room to keep them. */
    vs__broker_create_topic(b, "lat.profiles", partitions);
    vs__broker_create_topic(b, "lat.recommendations", partitions);
    vs__broker_create_topic(b, "lat.churn-alerts", partitions);
    vs__broker_create_topic(b, "lat.dead-letters", partitions);

    double max = max_rate(b, partitions, probe_events);
    if (max <= 0) {
        vs__broker_free(b);
        return 1;
    }
    if (rate == 0) {
        rate = max / 2;
    }
    struct shop s;
    /* The generator gives about the events asked for: ask for some more. */
    if (shop_generate(&s, (int64_t)(rate * (warmup + seconds) * 1.05) + 1000)) {
        vs__broker_free(b);
        return 1;
    }
    fprintf(stderr,
            "live: %" PRId64 " events (%" PRId64 " purchases) at %.0f ev/s, %d s warm-up + "
            "%d s measured, %d partitions\n",
            s.n, s.purchases, rate, warmup, seconds, partitions);
    struct producer prod = {producer_new(boot, linger), &s, NULL, 0};
    struct result ev =
        live_run(b, &prod, "event", "event", partitions, rate, warmup, seconds, self);
    struct result ar =
        live_run(b, &prod, "arrival", "arrival", partitions, rate, warmup, seconds, self);
    struct result pt =
        live_run(b, &prod, "passthrough", NULL, partitions, rate, warmup, seconds, self);
    rd_kafka_destroy(prod.rk);
    free(prod.strbuf);
    shop_free(&s);

    char json[2048];
    snprintf(json, sizeof(json),
             "{\"bench\":\"latency\",\"purchases\":%" PRId64 ",\"measured\":%" PRId64
             ",\"rate_per_s\":%.0f,\"engine_max_events_per_s\":%.0f,\"verdict_p50_ms\":%.2f,"
             "\"verdict_p99_ms\":%.2f,\"verdict_max_ms\":%.2f,\"arrival_verdict_p50_ms\":%.2f,"
             "\"arrival_verdict_p99_ms\":%.2f,\"arrival_verdict_max_ms\":%.2f,"
             "\"passthrough_p50_ms\":%.2f,\"passthrough_p99_ms\":%.2f,"
             "\"passthrough_max_ms\":%.2f,\"verdicts\":%" PRId64 ",\"arrival_verdicts\":%" PRId64
             ",\"duplicates\":%" PRId64 ",\"commit_ms\":%.1f,\"commit_flush_ms\":%.1f,"
             "\"input_linger_ms\":%d,\"partitions\":%d,\"ok\":%s}",
             ev.purchases, ev.measured, rate, max, ev.p50_ms, ev.p99_ms, ev.max_ms, ar.p50_ms,
             ar.p99_ms, ar.max_ms, pt.p50_ms, pt.p99_ms, pt.max_ms, ev.received, ar.received,
             ev.duplicates + ar.duplicates + pt.duplicates, ev.commit_ms, ev.flush_ms, linger,
             partitions, ev.ok && ar.ok && pt.ok ? "true" : "false");
    bench_result("latency", json);
    vs__broker_free(b);
    return ev.ok && ar.ok && pt.ok ? 0 : 1;
}
