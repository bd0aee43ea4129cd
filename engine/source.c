/*
 * The source (see source.h).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
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
    {"input.buffer.mb", VS_CONFIG_INT, "16",
     "fetched records buffered over all assigned partitions, MiB: each partition gets its share "
     "(at least 64 KiB) before it is paused; enough for about a second of processing, since "
     "librdkafka may take up to a second to fetch a resumed partition again"},
    {"input.assignment", VS_CONFIG_STRING, "group",
     "how the engine gets its partitions: group (Kafka's group protocol, for several engine "
     "processes sharing group.id) or all (every partition of input.topic, assigned without a "
     "group join, for a single engine: a restart consumes at once instead of after the broker's "
     "group.initial.rebalance.delay.ms; group offsets are still committed for lag monitoring)"},
    {"input.prefetch.mb", VS_CONFIG_INT, "512",
     "what librdkafka may hold fetched ahead for all partitions, MiB: a safety net, since the "
     "engine takes every fetched record into its own buffers at once (input.buffer.mb)"},
    {NULL, 0, NULL, NULL},
};

/*
 * The records the loop has taken are destroyed on a thread of their own. librdkafka's broker
 * thread allocates every fetched record, and with glibc a free on another thread takes the lock
 * of the allocating thread's arena, which the broker thread holds whenever it allocates the
 * next ones: freeing them on the loop, the loop slept on that lock some 6,000 times per 500k
 * records, 15-20 % of its time (`perf sched timehist`). The loop now hands each batch of copied
 * records over under one lock of its own, and this thread destroys them. Past REAP_MAX records
 * waiting the loop destroys its batch itself, so a starved reaper cannot hold fetched data
 * without bound.
 */
#define REAP_MAX 262144
/* Records waiting that wake a lingering reaper at once, and how long it lingers otherwise. */
#define REAP_WAKE 16384
#define REAP_LINGER_MS 5

/* Bytes a paused partition's ring must still hold when it resumes, at most (see vs__source_pop). */
#define RESUME_LEFT ((size_t)128 << 10)

struct reaper {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rd_kafka_message_t **pending; /* handed over, not yet destroyed */
    size_t n, cap;
    int stop;
    int running;
    int sleeping; /* waiting for records, to be signalled by the next hand-over */
};

struct vs__source {
    rd_kafka_t *rk;
    struct reaper reaper;
    rd_kafka_queue_t *queue;
    char *topic;
    struct vs__source_callbacks cb;
    struct vs__partition *parts;
    int nparts;
    const struct vs_config *cfg;
    int64_t prefetch_kbytes; /* the consumer's queued.max.messages.kbytes */
    int64_t part_fetch;      /* the consumer's max.partition.fetch.bytes */
    size_t share;            /* ring bytes per partition before it is paused */
    int64_t total_bytes;     /* input.buffer.mb */
    int assign_all;          /* input.assignment=all: no group membership */
    int group_commit_off;    /* the broker refused group offsets without membership */
    uint64_t received;       /* records taken from the queue */
    uint64_t pauses;         /* partitions paused because their buffer was full */
    int pipefd[2];
    uv_poll_t *poll;
    int closed;
};

#define PART_FETCH_MIN 65536
#define PART_FETCH_MAX 1048576

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
            np[i].fetch_offset = -1;
        }
        s->parts = np;
        s->nparts = n;
    }
    return &s->parts[id];
}

static void partition_clear(struct vs__partition *p)
{
    p->fetch_offset = -1;
    p->head = p->tail = p->wrap = p->used = 0;
    p->count = 0;
    p->head_state = 0;
    p->at_eof = 0;
    p->paused = 0;
}

/* Take over assigned partitions: clear their buffers, seek them to the offsets the engine stored
 * (on_assign) and share the input buffer among them. Returns librdkafka's error of the assign. */
static rd_kafka_resp_err_t assign_partitions(struct vs__source *s,
                                             rd_kafka_topic_partition_list_t *parts)
{
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
        /* Without a stored offset: offset 0 rather than the logical beginning, whose offset
         * query now and then held one partition's first fetch back for half a second (and
         * the merge with it); where 0 is gone, auto.offset.reset=earliest applies. */
        parts->elems[i].offset = 0;
    }
    if (s->cb.on_assign(s->cb.arg, parts)) {
        vs_log(VS_LOG_ERROR, "cannot restore the assigned partitions' offsets");
    }
    /* The buffers' share: many partitions must not multiply the memory they take. */
    int64_t share = parts->cnt > 0 ? s->total_bytes / parts->cnt : s->total_bytes;
    s->share = share < 65536 ? 65536 : (size_t)share;
    rd_kafka_resp_err_t err = rd_kafka_assign(s->rk, parts);
    if (err) {
        vs_log(VS_LOG_ERROR, "cannot assign %d partition(s) of %s: %s", parts->cnt, s->topic,
               rd_kafka_err2str(err));
    } else {
        vs_log(VS_LOG_INFO, "assigned %d partition(s) of %s", parts->cnt, s->topic);
    }
    return err;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct vs__source *s = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        assign_partitions(s, parts);
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

/* Group offsets are for lag monitoring only. Without membership (input.assignment=all) a broker
 * takes them only while the group has no members (the embedded one never takes them for a group
 * that was ever joined): once refused, they are no longer sent, with one warning instead of
 * librdkafka's on every commit. */
static void on_committed(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    struct vs__source *s = opaque;
    (void)rk;
    (void)offsets;
    if (s->assign_all && !s->group_commit_off &&
        (err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
         err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION)) {
        s->group_commit_off = 1;
        vs_log(VS_LOG_WARN,
               "the broker refuses offsets of group '%s' from a consumer outside it (%s): group "
               "offsets are no longer committed; give input.assignment=all a group.id of its "
               "own for lag monitoring",
               vs_config_str(s->cfg, "group.id"), rd_kafka_err2str(err));
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
 * The consumer. Flow control is the engine's, not librdkafka's: the consumer's queue is drained
 * into the per-partition buffers at every turn, and a partition whose buffer is full is paused.
 * librdkafka's own caps (queued.min.messages, queued.max.messages.kbytes) apply to the one
 * consumer queue of all partitions, and once one is reached the fetcher backs off for a whole
 * second (librdkafka 2.0): set low, they stalled a
 * replay for 0.5 to 1 s at a time. So they are set high, as a safety net only.
 */
static int consumer_open(struct vs__source *s, const struct vs_config *cfg, int64_t kbytes,
                         int64_t part_fetch, char *errbuf, size_t errlen)
{
    char kb[32], pf[32];
    snprintf(kb, sizeof(kb), "%lld", (long long)kbytes);
    snprintf(pf, sizeof(pf), "%lld", (long long)part_fetch);
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
        {"queued.min.messages", "10000000"},
        {"queued.max.messages.kbytes", kb},
        {"max.partition.fetch.bytes", pf},
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
    rd_kafka_conf_set_offset_commit_cb(conf, on_committed);
    rd_kafka_conf_set_opaque(conf, s);
    s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errlen);
    if (!s->rk) {
        rd_kafka_conf_destroy(conf);
        return VS_EKAFKA;
    }
    rd_kafka_poll_set_consumer(s->rk);
    s->queue = rd_kafka_queue_get_consumer(s->rk);
    s->prefetch_kbytes = kbytes;
    s->part_fetch = part_fetch;
    return 0;
}

static void *reaper_main(void *arg)
{
    struct reaper *r = arg;
    rd_kafka_message_t **mine = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->n && !r->stop) {
            r->sleeping = 1;
            pthread_cond_wait(&r->cv, &r->mu);
            r->sleeping = 0;
        }
        if (!r->n) {
            break;
        }
        /* Swap the buffers: the loop appends to the empty one while these are destroyed. */
        rd_kafka_message_t **batch = r->pending;
        size_t n = r->n, batch_cap = r->cap;
        r->pending = mine;
        r->cap = cap;
        r->n = 0;
        mine = batch;
        cap = batch_cap;
        pthread_mutex_unlock(&r->mu);
        for (size_t i = 0; i < n; i++) {
            rd_kafka_message_destroy(mine[i]);
        }
        pthread_mutex_lock(&r->mu);
        /* Let records gather for REAP_LINGER_MS before the next swap, unless many are waiting:
         * woken at every hand-over, this thread preempted the loop some 300 times per 500k
         * records (sched_switch call graphs). */
        if (!r->stop && r->n < REAP_WAKE) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += REAP_LINGER_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&r->cv, &r->mu, &until);
        }
    }
    pthread_mutex_unlock(&r->mu);
    free(mine);
    return NULL;
}

static void reaper_start(struct reaper *r)
{
    pthread_mutex_init(&r->mu, NULL);
    /* The linger is timed on the monotonic clock: a step of the wall clock must not stretch it. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    r->running = pthread_create(&r->thread, NULL, reaper_main, r) == 0;
    if (r->running) {
        pthread_setname_np(r->thread, "vs:reaper");
    }
}

/* Destroy every record handed over, then end the thread. */
static void reaper_stop(struct reaper *r)
{
    if (!r->running) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    r->running = 0;
    free(r->pending);
    r->pending = NULL;
    r->n = r->cap = 0;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

/* Hand n records over to the reaper, or destroy them here when it is not running, lags too far
 * behind or the buffer cannot grow. */
static void reaper_hand(struct reaper *r, rd_kafka_message_t **m, size_t n)
{
    if (!n) {
        return;
    }
    if (r->running) {
        pthread_mutex_lock(&r->mu);
        int ok = r->n + n <= REAP_MAX;
        if (ok && r->n + n > r->cap) {
            size_t cap = r->cap ? r->cap : 4096;
            while (cap < r->n + n) {
                cap *= 2;
            }
            rd_kafka_message_t **np = realloc(r->pending, cap * sizeof(*np));
            if (np) {
                r->pending = np;
                r->cap = cap;
            } else {
                ok = 0;
            }
        }
        int wake = 0;
        if (ok) {
            memcpy(r->pending + r->n, m, n * sizeof(*m));
            wake = r->sleeping || (r->n < REAP_WAKE && r->n + n >= REAP_WAKE);
            r->n += n;
        }
        pthread_mutex_unlock(&r->mu);
        if (wake) {
            /* After the unlock: signalled under it, the reaper woke only to wait for it. */
            pthread_cond_signal(&r->cv);
        }
        if (ok) {
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_destroy(m[i]);
    }
}

int vs__source_check_config(const struct vs_config *cfg, char *errbuf, size_t errlen)
{
    const char *how = vs_config_str(cfg, "input.assignment");
    if (strcmp(how, "group") && strcmp(how, "all")) {
        snprintf(errbuf, errlen, "config key 'input.assignment': expected group or all, got '%s'",
                 how);
        return VS_ECONFIG;
    }
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
    if (vs__source_check_config(cfg, errbuf, errlen)) {
        vs__source_free(s);
        return NULL;
    }
    s->assign_all = !strcmp(vs_config_str(cfg, "input.assignment"), "all");
    int64_t buf_mb = vs_config_int(cfg, "input.buffer.mb");
    s->total_bytes = (buf_mb < 1 ? 1 : buf_mb) << 20;
    s->share = (size_t)s->total_bytes;
    int64_t mb = vs_config_int(cfg, "input.prefetch.mb");
    int64_t kb = mb < 1 ? 1024 : mb > 2047 ? 2097151 : mb * 1024;
    if (consumer_open(s, cfg, kb, PART_FETCH_MAX, errbuf, errlen)) {
        vs__source_free(s);
        return NULL;
    }
    reaper_start(&s->reaper);
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
    if (s->rk) {
        /* Closing may revoke partitions (rebalance callback): while they still exist. */
        vs__source_close(s);
    }
    for (int i = 0; i < s->nparts; i++) {
        partition_clear(&s->parts[i]);
        free(s->parts[i].ring);
        free(s->parts[i].strbuf);
        if (s->parts[i].one) {
            rd_kafka_topic_partition_list_destroy(s->parts[i].one);
        }
    }
    free(s->parts);
    s->parts = NULL;
    s->nparts = 0;
    reaper_stop(&s->reaper); /* every record destroyed before the consumer is */
    if (s->queue) {
        rd_kafka_queue_destroy(s->queue);
    }
    if (s->rk) {
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
    /* librdkafka writes to the fd only when an element lands on an empty queue. The partitions
     * were assigned in vs__source_start, so records fetched since then sit in the queue and no
     * write would ever come for them: one byte here makes the loop's first turn read them
     * (tests/unit/test_source.c). Without it the first read waited for the commit timer. */
    if (write(s->pipefd[1], "1", 1) != 1) {
        return VS_EIO;
    }
    return 0;
}

/* A ring entry: this header, then the key and the payload, padded to 8 bytes. */
struct entry {
    int64_t offset;
    uint32_t len, key_len;
    uint32_t has_payload, pad;
};

static size_t entry_size(size_t key_len, size_t len)
{
    return (sizeof(struct entry) + key_len + len + 7) & ~(size_t)7;
}

/* Move the entries to a larger buffer, in order from its start (rare: the ring only grows). */
static int ring_grow(struct vs__partition *p, size_t need, size_t share)
{
    /* The first buffer holds a share and a quarter: a partition takes records while it holds
     * less than its share, and the quarter lets the next record fit at one end of the ring or
     * the other. Grown to that by doubling from 64 KiB, each ring was copied four times and its
     * pages faulted in afresh each time (2 % of a replay's loop). Not more than that: a ring's
     * entries go round the whole buffer, so each page of it ends up resident (with 2 shares,
     * 1M customers over 160 partitions peaked 20 MiB higher). */
    size_t ncap = p->cap * 2;
    if (!p->cap) {
        ncap = (share + share / 4 + 65535) & ~(size_t)65535;
    }
    while (ncap < p->used + need) {
        ncap *= 2;
    }
    char *nr = malloc(ncap);
    if (!nr) {
        return VS_ENOMEM;
    }
    size_t n = 0;
    if (p->count) {
        size_t end = p->wrap ? p->wrap : p->tail;
        memcpy(nr, p->ring + p->head, end - p->head);
        n = end - p->head;
        if (p->wrap) {
            memcpy(nr + n, p->ring, p->tail);
            n += p->tail;
        }
    }
    free(p->ring);
    p->ring = nr;
    p->cap = ncap;
    p->head = 0;
    p->tail = n;
    p->wrap = 0;
    return 0;
}

/* Copy m into p's ring (entries go from head to tail, or from head to wrap and then from the
 * start of the buffer to tail). */
static int ring_push(struct vs__partition *p, const rd_kafka_message_t *m, size_t share)
{
    size_t need = entry_size(m->key_len, m->len);
    if (p->count == 0) {
        p->head = p->tail = p->wrap = 0;
    }
    size_t at;
    if (!p->wrap && p->tail + need <= p->cap) {
        at = p->tail;
    } else if (!p->wrap && p->count && need <= p->head) {
        p->wrap = p->tail;
        at = 0;
    } else if (p->wrap && p->tail + need <= p->head) {
        at = p->tail;
    } else {
        if (ring_grow(p, need, share)) {
            return VS_ENOMEM;
        }
        at = p->tail;
    }
    struct entry h = {.offset = m->offset,
                      .len = (uint32_t)m->len,
                      .key_len = m->key ? (uint32_t)m->key_len : 0,
                      .has_payload = m->payload != NULL};
    memcpy(p->ring + at, &h, sizeof(h));
    if (h.key_len) {
        memcpy(p->ring + at + sizeof(h), m->key, h.key_len);
    }
    if (h.has_payload && h.len) {
        memcpy(p->ring + at + sizeof(h) + h.key_len, m->payload, h.len);
    }
    p->tail = at + need;
    p->used += need;
    p->count++;
    return 0;
}

static void pause_partition(struct vs__source *s, struct vs__partition *p, int pause)
{
    /* The partition's own list for its pauses and resumes, made once: making one each time
     * cost a large allocation, and with it a consolidation of glibc's free chunks (~1 % of the
     * loop). Its own, since librdkafka may keep a partition's handle in a list's element. */
    if (!p->one) {
        p->one = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(p->one, s->topic, p->id);
    }
    rd_kafka_topic_partition_list_t *l = p->one;
    l->elems[0].offset = RD_KAFKA_OFFSET_INVALID;
    l->elems[0].err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (pause) {
        s->pauses++;
        rd_kafka_pause_partitions(s->rk, l);
    } else {
        rd_kafka_resume_partitions(s->rk, l);
        /* A resume alone does not wake librdkafka's fetcher: when every partition was paused
         * it sleeps up to a second before it fetches the resumed one. A seek to where the ring
         * ends starts the partition's fetch at once (tests/unit/test_source.c). */
        if (p->fetch_offset >= 0) {
            l->elems[0].offset = p->fetch_offset;
            rd_kafka_error_t *err = rd_kafka_seek_partitions(s->rk, l, 0);
            if (err) {
                vs_log(VS_LOG_WARN, "consumer: seek on resume: %s", rd_kafka_error_string(err));
                rd_kafka_error_destroy(err);
            }
        }
    }
    p->paused = pause;
}

int vs__source_fetch(struct vs__source *s)
{
    rd_kafka_message_t *msgs[1024], *done[1024];
    int total = 0;
    for (;;) {
        int want = 1024;
        ssize_t n = rd_kafka_consume_batch_queue(s->queue, 0, msgs, (size_t)want);
        if (n <= 0) {
            break;
        }
        total += (int)n;
        size_t ndone = 0;
        uint64_t now = now_ms();
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            struct vs__partition *p = m->rkt ? partition_get(s, m->partition) : NULL;
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (p) {
                    p->at_eof = 1;
                }
                done[ndone++] = m;
                continue;
            }
            if (m->err) {
                vs_log(VS_LOG_WARN, "consumer: %s", rd_kafka_message_errstr(m));
                done[ndone++] = m;
                continue;
            }
            if (!p || !p->assigned) {
                /* A stale record of a partition revoked meanwhile. */
                done[ndone++] = m;
                continue;
            }
            if (p->paused || (p->fetch_offset >= 0 && m->offset < p->fetch_offset)) {
                /* Fetched before the pause took effect (fetched again on resume, from
                 * fetch_offset), or fetched again around a pause: the ring has it already. */
                done[ndone++] = m;
                continue;
            }
            p->fetch_offset = m->offset + 1;
            p->at_eof = 0;
            p->last_arrival_ms = now;
            s->received++;
            if (ring_push(p, m, s->share)) {
                vs_log(VS_LOG_ERROR, "out of memory buffering input records");
                done[ndone++] = m;
                continue;
            }
            done[ndone++] = m;
            if (p->used >= s->share && !p->paused) {
                /* Pausing drops what librdkafka holds of the partition; fetching resumes after
                 * the last record handed out, so the records in hand are kept. */
                pause_partition(s, p, 1);
            }
        }
        reaper_hand(&s->reaper, done, ndone);
        if (n < want) {
            break;
        }
    }
    return total;
}

uint64_t vs__source_received(const struct vs__source *s)
{
    return s->received;
}

uint64_t vs__source_pauses(const struct vs__source *s)
{
    return s->pauses;
}

struct vs__partition *vs__source_partitions(struct vs__source *s, int *n)
{
    *n = s->nparts;
    return s->parts;
}

const struct vs__record *vs__source_peek(struct vs__partition *p)
{
    if (!p->count) {
        return NULL;
    }
    struct entry h;
    memcpy(&h, p->ring + p->head, sizeof(h));
    const char *body = p->ring + p->head + sizeof(h);
    p->rec = (struct vs__record){.offset = h.offset,
                                 .partition = p->id,
                                 .len = h.len,
                                 .key_len = h.key_len,
                                 .key = h.key_len ? body : NULL,
                                 .payload = h.has_payload ? body + h.key_len : NULL};
    return &p->rec;
}

void vs__source_pop(struct vs__source *s, struct vs__partition *p)
{
    struct entry h;
    memcpy(&h, p->ring + p->head, sizeof(h));
    size_t sz = entry_size(h.key_len, h.len);
    p->next_offset = h.offset + 1;
    p->head += sz;
    p->used -= sz;
    p->count--;
    if (p->wrap && p->head == p->wrap) {
        p->head = 0;
        p->wrap = 0;
    }
    if (!p->count) {
        p->head = p->tail = p->wrap = p->used = 0;
    }
    p->head_state = 0;
    /* When to resume. Each pause costs a fetch (librdkafka drops what it has fetched or has in
     * flight for a paused partition, its version barrier, and fetches it again after the
     * resume), so the later a partition resumes, the less often it pauses: resumed with a
     * quarter of its share left instead of three quarters, 500k events over 32 partitions
     * (512 KiB each) replayed 15 % faster (medians of 8 alternating runs 1.21 against 1.42 s;
     * 1.5M over 64 partitions ~10 %). But the seek on resume must have answered before the
     * ring runs dry, and with many partitions the embedded broker takes long to answer: with a
     * quarter of 100 KiB left, 5.4M events of 1M customers over 160 partitions made the merge
     * wait 4.1-4.9 s for empty partitions against 1.4-2.1 s with three quarters. So a partition
     * resumes below a quarter of its share, but never with less than three quarters of it or
     * RESUME_LEFT left, whichever is less. The input.pauses metric counts the pauses. */
    size_t left = s->share / 4 * 3;
    if (left > RESUME_LEFT) {
        left = s->share / 4 > RESUME_LEFT ? s->share / 4 : RESUME_LEFT;
    }
    if (p->paused && p->used < left) {
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
    if (l->cnt && !s->group_commit_off) {
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
    /* A fetch response may bring one batch per partition beyond what a buffer holds when it is
     * paused: with many partitions the batches are kept small, so that this overshoot stays
     * within input.buffer.mb. Nothing is subscribed yet, so the consumer is simply made anew. */
    int64_t pf = s->total_bytes / partitions / 2;
    pf = pf < PART_FETCH_MIN ? PART_FETCH_MIN : pf > PART_FETCH_MAX ? PART_FETCH_MAX : pf;
    if (pf != s->part_fetch) {
        rd_kafka_queue_destroy(s->queue);
        rd_kafka_destroy(s->rk);
        s->rk = NULL;
        s->queue = NULL;
        int rc = consumer_open(s, s->cfg, s->prefetch_kbytes, pf, errbuf, errlen);
        if (rc) {
            return rc;
        }
    }
    if (s->assign_all) {
        rd_kafka_topic_partition_list_t *all = rd_kafka_topic_partition_list_new(partitions);
        for (int i = 0; i < partitions; i++) {
            rd_kafka_topic_partition_list_add(all, s->topic, i);
        }
        err = assign_partitions(s, all);
        rd_kafka_topic_partition_list_destroy(all);
        if (err) {
            snprintf(errbuf, errlen, "cannot assign the partitions of %s: %s", s->topic,
                     rd_kafka_err2str(err));
            return VS_EKAFKA;
        }
        return 0;
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
