/*
 * The engine (see engine.h).
 *
 * Everything here runs on the libuv loop thread: librdkafka's threads only do network I/O and
 * wake the loop through the source's and the sink's queue pipes. One "pump" moves fetched
 * records into per-partition buffers and processes as many events as the deterministic order
 * allows: the next event is the smallest (ts, partition) among the partitions' heads, and a
 * partition with nothing buffered holds the others back unless it is at its end or, in live
 * mode, idle past idle.timeout.ms. So the events processed before any commit are a prefix of one
 * order that depends only on the data, and a replay from the committed offsets continues it.
 *
 * A commit writes the next offset of every partition, the watermarks, the operators' model
 * deltas, the timers and every dirty customer in one RocksDB WriteBatch, but only after every
 * output produced so far has been acknowledged by the broker.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include <valuestream/error.h>
#include <valuestream/operator.h>

#include "codec.h"
#include "config.h"
#include "decimal.h"
#include "engine.h"
#include "log.h"
#include "registry.h"
#include "sink.h"
#include "source.h"
#include "store.h"

const struct vs_config_key vs__engine_config[] = {
    {"state.dir", VS_CONFIG_STRING, "./valuestream-state", "directory of the RocksDB state store"},
    {"state.cache.mb", VS_CONFIG_INT, "256", "budget of the customer cache, MiB"},
    {"state.rocksdb.cache.mb", VS_CONFIG_INT, "16", "RocksDB block cache, MiB"},
    {"commit.interval.ms", VS_CONFIG_INT, "100", "commit at least this often (wall clock)"},
    {"commit.interval.events", VS_CONFIG_INT, "200000", "commit at least every N events"},
    {"allowed.lateness.ms", VS_CONFIG_INT, "0",
     "a partition's watermark is its largest ts minus this"},
    {"idle.timeout.ms", VS_CONFIG_INT, "10",
     "live mode: a partition with nothing fetched for this long no longer holds the others back, "
     "and its watermark follows the wall clock"},
    {"processing.order", VS_CONFIG_STRING, "event",
     "event: deterministic merge by (ts, partition, offset); arrival: lowest latency"},
    {"max.record.bytes", VS_CONFIG_INT, "1048576", "larger input records are dead-lettered"},
    {"batch.size", VS_CONFIG_INT, "5000", "events processed per loop turn at most"},
    {"serde.format", VS_CONFIG_STRING, "avro",
     "avro: plain Avro binary; confluent: magic byte, 4-byte schema id, Avro"},
    {"serde.schema.id.shop_event", VS_CONFIG_INT, "1", "Confluent schema id of shop_event"},
    {"serde.schema.id.user_profile", VS_CONFIG_INT, "2", "Confluent schema id of user_profile"},
    {"serde.schema.id.recommendation", VS_CONFIG_INT, "3", "Confluent schema id of recommendation"},
    {"serde.schema.id.churn_alert", VS_CONFIG_INT, "4", "Confluent schema id of churn_alert"},
    {"serde.schema.id.fraud_alert", VS_CONFIG_INT, "5", "Confluent schema id of fraud_alert"},
    {"operators", VS_CONFIG_STRING, "value,churn,profile,recommend,fraud",
     "operators to run, comma-separated (state sections of the others are kept)"},
    {"seed", VS_CONFIG_INT, "42", "seed of every random choice of the operators"},
    {"log.level", VS_CONFIG_STRING, "info", "error, warn, info or debug"},
    {"metrics.file", VS_CONFIG_STRING, "",
     "write the metrics as JSON to this file: every metrics.interval.ms and at exit"},
    {"metrics.interval.ms", VS_CONFIG_INT, "1000",
     "how often metrics.file is rewritten while running (0: only at exit)"},
    {"progress.interval.ms", VS_CONFIG_INT, "500", "refresh of the live progress line"},
    {"memory.trim.interval.ms", VS_CONFIG_INT, "300",
     "how often a pool thread hands the free pages of every malloc arena back to the system "
     "(glibc's malloc_trim; 0: never)"},
    {"startup.timeout.ms", VS_CONFIG_INT, "15000",
     "give up when no broker answers or the input topic is missing for this long at start"},
    {NULL, 0, NULL, NULL},
};

/* ==== Operator host: environment, context, jobs ==== */

struct vs__engine;

struct vs_env {
    struct vs__engine *engine;
    int op;
    const struct vs_config *cfg;
    struct vs__metrics *metrics;
    struct vs__store *store;
    uv_loop_t *loop;
};

struct vs_checkpoint {
    struct vs__store *store;
    const char *op_name;
};

struct vs_ctx {
    struct vs__engine *engine;
    int op;
    struct vs__customer *customer;
    const char *user;
    struct vs__partition *partition;
    int64_t offset;
    int64_t ts;
    int late;
    int is_timer;
    int64_t timer_fire;
    uint32_t timer_tag;
};

struct vs__op_slot {
    const struct vs_operator *op;
    void *self;
    int enabled;
    int section; /* index of its section in the customer record, -1 for none */
    struct vs_env env;
    int64_t *m_errors;
};

struct vs__engine {
    const struct vs_config *cfg;
    struct vs__engine_run_options opts;
    uv_loop_t loop;
    struct vs__source *source;
    struct vs__sink *sink;
    struct vs__codec *codec;
    struct vs__store *store;
    struct vs__metrics *metrics, *own_metrics;
    struct vs__op_slot ops[16];
    int nops;
    const char *topic;

    int64_t lateness, idle_timeout, batch, max_record, commit_events;
    int arrival_order, live;

    uv_timer_t commit_timer, wake_timer, progress_timer, metrics_timer;
    uv_idle_t more;
    uv_signal_t sigint, sigterm;
    int more_active;
    int *heap; /* process_ready's heap of partitions */
    size_t heap_cap;
    uint64_t trimmed_ms;       /* last malloc_trim() started */
    uint64_t trim_interval_ms; /* memory.trim.interval.ms */
    struct vs_job *trim_job;   /* the malloc_trim() running on the thread pool, if any */
    int64_t *m_trims;          /* trims started */
    uint64_t blocked_since_us; /* the merge waits for a partition with nothing fetched */
    double *m_merge_wait_s;
    double *m_peak_rss;      /* process.peak_rss_mib */
    int64_t *m_input_pauses; /* input.pauses */

    int64_t since_commit;
    int assigned_once;
    int draining, stopped;
    int failed;
    char errbuf[512];

    int64_t *m_processed, *m_late, *m_fired, *m_commits, *m_deadletters;
    int64_t *m_cache_full; /* commits sealed because the cache was full of unwritten records */
    double *m_held_s;      /* time processing was held back for them */
    uint64_t held_since_us;
    double *m_busy;     /* seconds from the first event to the last processed */
    double *m_loop_cpu; /* the loop thread's CPU seconds over the same span */
    double first_event_cpu_s;
    double *m_first_record; /* seconds from the start to the first record fetched */
    double *m_commit_s;     /* loop time spent committing, of which m_flush_s waiting for acks */
    double *m_flush_s;
    int sealed;               /* a commit is sealed, waiting for its outputs' acknowledgements */
    struct vs_env job_env;    /* for the commit's write on the thread pool */
    struct vs_job *write_job; /* the sealed commit being written, if any */
    char *write_err;          /* its RocksDB error (set by the job) */
    rd_kafka_topic_partition_list_t *sealed_offsets; /* its offsets, for Kafka after the write */
    uint64_t first_event_ms;
    uint64_t start_ms; /* when vs__engine_run began: run.first.record.seconds counts from it */
    uint64_t progress_last_ms;
    int64_t progress_last_events;

    char idbuf[512];
    char timer_user[512];
};

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *vs_ctx_user(const struct vs_ctx *ctx)
{
    return ctx->user;
}

int64_t vs_ctx_watermark(const struct vs_ctx *ctx)
{
    return ctx->partition && ctx->partition->has_watermark ? ctx->partition->watermark : INT64_MIN;
}

int32_t vs_ctx_partition(const struct vs_ctx *ctx)
{
    return ctx->partition ? ctx->partition->id : -1;
}

int64_t vs_ctx_offset(const struct vs_ctx *ctx)
{
    return ctx->is_timer ? -1 : ctx->offset;
}

int vs_ctx_is_late(const struct vs_ctx *ctx)
{
    return ctx->late;
}

const void *vs_ctx_section(const struct vs_ctx *ctx, const char *operator_name)
{
    int i = vs__operator_index(operator_name);
    if (i < 0 || ctx->engine->ops[i].section < 0 || !ctx->customer) {
        return NULL;
    }
    return vs__customer_section(ctx->customer, ctx->engine->ops[i].section);
}

avro_value_t *vs_output_begin(struct vs_ctx *ctx, enum vs_output out)
{
    return vs__codec_output_begin(ctx->engine->codec, out);
}

int vs_output_field(struct vs_env *env, enum vs_output out, const char *path)
{
    if ((unsigned)out >= VS_OUT_COUNT || !path) {
        return VS_EINVAL;
    }
    return vs__codec_output_field(env->engine->codec, out, path);
}

int vs_output_fields(struct vs_env *env, enum vs_output out, const struct vs_output_field_pos *t,
                     size_t n, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        int index = vs_output_field(env, out, t[i].path);
        if (index < 0) {
            snprintf(errbuf, errlen, "the %s schema has no field '%s'", vs_output_kind(out),
                     t[i].path);
            return VS_ESCHEMA;
        }
        *t[i].index = (size_t)index;
    }
    return 0;
}

/* "topic/partition/offset/kind", as snprintf would write it (this runs for every output). */
static void format_event_id(char *buf, size_t size, const char *topic, int32_t partition,
                            int64_t offset, const char *kind)
{
    size_t tl = strlen(topic), kl = strlen(kind);
    if (tl + kl + 48 > size || partition < 0 || offset < 0) {
        snprintf(buf, size, "%s/%d/%" PRId64 "/%s", topic, (int)partition, offset, kind);
        return;
    }
    char *p = buf;
    memcpy(p, topic, tl);
    p += tl;
    *p++ = '/';
    p = vs__put_u64(p, (uint64_t)partition);
    *p++ = '/';
    p = vs__put_u64(p, (uint64_t)offset);
    *p++ = '/';
    memcpy(p, kind, kl + 1);
}

int vs_output_send(struct vs_ctx *ctx, enum vs_output out, const char *key)
{
    struct vs__engine *e = ctx->engine;
    const void *buf;
    size_t len;
    int rc = vs__codec_output_encode(e->codec, out, &buf, &len);
    if (rc) {
        vs_log(VS_LOG_ERROR, "operator %s: cannot encode a %s record", e->ops[ctx->op].op->name,
               vs_output_kind(out));
        return rc;
    }
    if (ctx->is_timer) {
        snprintf(e->idbuf, sizeof(e->idbuf), "timer/%s/%" PRId64 "/%s.%u/%s", ctx->user,
                 ctx->timer_fire, e->ops[ctx->op].op->name, ctx->timer_tag, vs_output_kind(out));
    } else {
        format_event_id(e->idbuf, sizeof(e->idbuf), e->topic, ctx->partition->id, ctx->offset,
                        vs_output_kind(out));
    }
    return vs__sink_produce(e->sink, (int)out, key, strlen(key), buf, len, ctx->ts, e->idbuf,
                            vs_output_kind(out));
}

int vs_timer_set(struct vs_ctx *ctx, int64_t fire_ts, uint32_t tag)
{
    if (!ctx->partition) {
        return VS_EINVAL;
    }
    int rc = vs__store_timer_set(ctx->engine->store, ctx->partition->id, fire_ts, ctx->user,
                                 (uint8_t)ctx->op, tag);
    if (rc == 0 && fire_ts < ctx->partition->next_timer) {
        ctx->partition->next_timer = fire_ts;
    }
    return rc;
}

int vs_timer_cancel(struct vs_ctx *ctx, int64_t fire_ts, uint32_t tag)
{
    if (!ctx->partition) {
        return VS_EINVAL;
    }
    return vs__store_timer_cancel(ctx->engine->store, ctx->partition->id, fire_ts, ctx->user,
                                  (uint8_t)ctx->op, tag);
}

const struct vs_config *vs_env_config(const struct vs_env *env)
{
    return env->cfg;
}

int64_t *vs_env_counter(struct vs_env *env, const char *name)
{
    static int64_t sink_counter;
    int64_t *c = vs__metrics_counter(env->metrics, name);
    return c ? c : &sink_counter;
}

double *vs_env_gauge(struct vs_env *env, const char *name)
{
    static double sink_gauge;
    double *g = vs__metrics_gauge(env->metrics, name);
    return g ? g : &sink_gauge;
}

static void model_key(char *buf, size_t len, const char *op, const char *key)
{
    snprintf(buf, len, "%s/%s", op, key);
}

int vs_model_get(struct vs_env *env, const char *key, void **val, size_t *len)
{
    char k[512];
    if (!env->store) {
        return VS_ENOTFOUND;
    }
    model_key(k, sizeof(k), vs__operators[env->op]->name, key);
    return vs__store_model_get(env->store, k, val, len);
}

int vs_checkpoint_put(struct vs_checkpoint *cp, const char *key, const void *val, size_t len)
{
    char k[512];
    model_key(k, sizeof(k), cp->op_name, key);
    return vs__store_model_put(cp->store, k, val, len);
}

int vs_checkpoint_delete(struct vs_checkpoint *cp, const char *key)
{
    char k[512];
    model_key(k, sizeof(k), cp->op_name, key);
    return vs__store_model_delete(cp->store, k);
}

/*
 * Background jobs. The work runs on the libuv thread pool; the loop thread waits for it at a
 * point the operator chooses. uv_queue_work's after-callback also runs on the loop thread, so
 * whichever of vs_job_wait() and that callback comes second frees the job.
 */
struct vs_job {
    uv_work_t req;
    void (*work)(void *arg);
    void (*after)(void *arg); /* on the loop thread once the work is done, unless waited for */
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, waited, after_ran;
};

static void job_work(uv_work_t *req)
{
    struct vs_job *job = req->data;
    job->work(job->arg);
    pthread_mutex_lock(&job->mu);
    job->done = 1;
    pthread_cond_signal(&job->cv);
    pthread_mutex_unlock(&job->mu);
}

static void job_free(struct vs_job *job)
{
    pthread_mutex_destroy(&job->mu);
    pthread_cond_destroy(&job->cv);
    free(job);
}

static void job_after(uv_work_t *req, int status)
{
    struct vs_job *job = req->data;
    job->after_ran = 1;
    if (job->waited) {
        job_free(job);
    } else if (job->after) {
        job->after(job->arg);
    }
}

/* vs_job_submit() with a callback on the loop thread when the work is done (not when it ran at
 * once, nor when vs_job_wait() came first). The callback must not wait for the job. */
static struct vs_job *job_submit(struct vs_env *env, void (*work)(void *arg),
                                 void (*after)(void *arg), void *arg)
{
    struct vs_job *job = calloc(1, sizeof(*job));
    if (!job) {
        return NULL;
    }
    job->work = work;
    job->after = after;
    job->arg = arg;
    job->req.data = job;
    pthread_mutex_init(&job->mu, NULL);
    pthread_cond_init(&job->cv, NULL);
    if (!env || !env->loop || uv_queue_work(env->loop, &job->req, job_work, job_after)) {
        work(arg);
        job->done = 1;
        job->after_ran = 1;
    }
    return job;
}

struct vs_job *vs_job_submit(struct vs_env *env, void (*work)(void *arg), void *arg)
{
    return job_submit(env, work, NULL, arg);
}

int vs_job_done(struct vs_job *job)
{
    pthread_mutex_lock(&job->mu);
    int done = job->done;
    pthread_mutex_unlock(&job->mu);
    return done;
}

void vs_job_wait(struct vs_job *job)
{
    pthread_mutex_lock(&job->mu);
    while (!job->done) {
        pthread_cond_wait(&job->cv, &job->mu);
    }
    pthread_mutex_unlock(&job->mu);
    job->waited = 1;
    if (job->after_ran) {
        job_free(job);
    }
}

/* ==== Config tables ==== */

const struct vs_config_key *const *vs__engine_config_tables(int *ntables)
{
    static const struct vs_config_key *tables[24];
    int n = 0;
    tables[n++] = vs__source_config;
    tables[n++] = vs__sink_config;
    tables[n++] = vs__engine_config;
    for (int i = 0; i < vs__operator_count && n < 24; i++) {
        if (vs__operators[i]->config) {
            tables[n++] = vs__operators[i]->config;
        }
    }
    *ntables = n;
    return tables;
}

/* ==== Commit ==== */

static void engine_fail(struct vs__engine *e, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void engine_fail(struct vs__engine *e, int rc, const char *fmt, ...)
{
    if (!e->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->errbuf, sizeof(e->errbuf), fmt, ap);
        va_end(ap);
        e->failed = rc ? rc : VS_EINVAL;
    }
    e->stopped = 1;
    uv_stop(&e->loop);
}

/*
 * A commit is sealed at one point of the event sequence (commit_seal: the next offsets, the
 * watermarks and the operators' checkpoints join the pending batch, which the store seals with
 * the dirty records) and written once every output produced before that point is acknowledged
 * (commit_finish, run as delivery reports arrive). The loop goes on processing meanwhile, so a
 * commit costs it the sealing and the write, not a round trip to the broker. One commit is in
 * flight at a time. engine_commit() does both, waiting for the acknowledgements: on shutdown,
 * on revocation and at the end of a replay. A cache full of unwritten records seals at once and
 * holds processing until the write is done, without blocking the loop (pump).
 */
static int commit_seal(struct vs__engine *e)
{
    if (e->failed || e->sealed) {
        return e->failed;
    }
    uint64_t started = mono_us();
    int n;
    struct vs__partition *parts = vs__source_partitions(e->source, &n);
    for (int i = 0; i < n; i++) {
        struct vs__partition *p = &parts[i];
        if (!p->assigned || p->next_offset < 0) {
            continue;
        }
        vs__store_set_offset(e->store, e->topic, p->id, p->next_offset);
        if (p->has_watermark) {
            vs__store_set_watermark(e->store, e->topic, p->id, p->watermark);
        }
    }
    for (int i = 0; i < e->nops; i++) {
        struct vs__op_slot *s = &e->ops[i];
        if (s->enabled && s->op->checkpoint) {
            struct vs_checkpoint cp = {e->store, s->op->name};
            int rc = s->op->checkpoint(s->self, &cp);
            if (rc) {
                engine_fail(e, rc, "operator %s: checkpoint failed: %s", s->op->name,
                            vs_strerror(rc));
                return rc;
            }
        }
    }
    int rc = vs__store_seal(e->store);
    if (rc) {
        engine_fail(e, rc, "state commit failed: %s", vs__store_last_error(e->store));
        return rc;
    }
    vs__sink_seal(e->sink);
    e->sealed = 1;
    e->sealed_offsets = vs__source_offsets(e->source);
    e->since_commit = 0;
    *e->m_commit_s += (double)(mono_us() - started) / 1e6;
    return 0;
}

static void on_more(uv_idle_t *h);

/* The commit's write is done: the next turn of the loop completes it (and resumes processing
 * when the cache was waiting for it). */
static void write_done(void *arg)
{
    struct vs__engine *e = arg;
    if (!e->stopped && !e->more_active) {
        uv_idle_start(&e->more, on_more);
        e->more_active = 1;
    }
}

static void write_work(void *arg)
{
    struct vs__engine *e = arg;
    vs__store_write_sealed_raw(e->store, &e->write_err);
}

/* The sealed commit is written (err: RocksDB's error, taken): release it, then Kafka's offsets. */
static int commit_written(struct vs__engine *e, char *err)
{
    uint64_t started = mono_us();
    int rc = vs__store_sealed_written(e->store, err);
    if (rc) {
        engine_fail(e, rc, "state commit failed: %s", vs__store_last_error(e->store));
        return rc;
    }
    vs__source_commit_offsets(e->source, e->sealed_offsets);
    e->sealed_offsets = NULL;
    e->sealed = 0;
    (*e->m_commits)++;
    *e->m_commit_s += (double)(mono_us() - started) / 1e6;
    return 0;
}

/*
 * Write the sealed commit once its outputs are acknowledged. Without wait the write goes to the
 * thread pool and a later call (any turn of the loop) completes it; with wait (shutdown,
 * revocation, end of a replay) everything is done before returning, acknowledgements included.
 */
static int commit_finish(struct vs__engine *e, int wait)
{
    if (e->failed || !e->sealed) {
        return e->failed;
    }
    if (e->write_job) {
        if (!wait && !vs_job_done(e->write_job)) {
            return 0;
        }
        uint64_t t0 = mono_us();
        vs_job_wait(e->write_job);
        *e->m_commit_s += (double)(mono_us() - t0) / 1e6;
        e->write_job = NULL;
        char *err = e->write_err;
        e->write_err = NULL;
        return commit_written(e, err);
    }
    int acked = vs__sink_sealed_state(e->sink);
    if (acked == 0 && wait) {
        uint64_t t0 = mono_us();
        vs__sink_flush(e->sink, 60000);
        uint64_t waited = mono_us() - t0;
        *e->m_flush_s += (double)waited / 1e6;
        *e->m_commit_s += (double)waited / 1e6;
        acked = vs__sink_sealed_state(e->sink);
    }
    if (acked < 0 || (acked == 0 && wait)) {
        engine_fail(e, VS_EKAFKA, "outputs were not acknowledged by the broker; not committing");
        return VS_EKAFKA;
    }
    if (acked == 0) {
        return 0;
    }
    if (!wait) {
        e->write_job = job_submit(&e->job_env, write_work, write_done, e);
        if (e->write_job && !vs_job_done(e->write_job)) {
            return 0;
        }
        /* No thread pool: the job ran here. */
        if (e->write_job) {
            vs_job_wait(e->write_job);
            e->write_job = NULL;
        }
        char *err = e->write_err;
        e->write_err = NULL;
        return commit_written(e, err);
    }
    uint64_t t0 = mono_us();
    char *err;
    vs__store_write_sealed_raw(e->store, &err);
    *e->m_commit_s += (double)(mono_us() - t0) / 1e6;
    return commit_written(e, err);
}

static int engine_commit(struct vs__engine *e)
{
    int rc = commit_finish(e, 1);
    if (rc == 0) {
        rc = commit_seal(e);
    }
    if (rc == 0) {
        rc = commit_finish(e, 1);
    }
    return rc;
}

static void on_delivered(void *arg)
{
    commit_finish(arg, 0);
}

/* ==== Processing ==== */

static int op_call_failed(struct vs__engine *e, int i, int rc, const char *what)
{
    (*e->ops[i].m_errors)++;
    vs_log(VS_LOG_WARN, "operator %s: %s failed: %s", e->ops[i].op->name, what, vs_strerror(rc));
    return rc;
}

/* Fire the partition's timers that its watermark has passed, in (fire time, user) order. */
static void fire_timers(struct vs__engine *e, struct vs__partition *p)
{
    if (!p->has_watermark) {
        return;
    }
    while (p->next_timer <= p->watermark) {
        int64_t fire;
        uint8_t op;
        uint32_t tag;
        int rc = vs__store_timer_next(e->store, p->id, p->watermark, &fire, e->timer_user,
                                      sizeof(e->timer_user), &op, &tag);
        if (rc == VS_ENOTFOUND) {
            p->next_timer = p->watermark + 1;
            return;
        }
        if (rc) {
            engine_fail(e, rc, "timer lookup failed: %s", vs__store_last_error(e->store));
            return;
        }
        vs__store_timer_cancel(e->store, p->id, fire, e->timer_user, op, tag);
        if (op >= e->nops || !e->ops[op].enabled || !e->ops[op].op->on_timer) {
            continue;
        }
        struct vs__customer *c;
        int is_new;
        rc = vs__store_customer(e->store, e->timer_user, strlen(e->timer_user), &c, &is_new);
        if (rc) {
            engine_fail(e, rc, "customer %s: %s", e->timer_user, vs__store_last_error(e->store));
            return;
        }
        struct vs_ctx ctx = {.engine = e,
                             .op = op,
                             .customer = c,
                             .user = vs__customer_id(c),
                             .partition = p,
                             .offset = -1,
                             .ts = fire,
                             .is_timer = 1,
                             .timer_fire = fire,
                             .timer_tag = tag};
        struct vs_timer t = {vs__customer_id(c), fire, tag};
        void *section =
            e->ops[op].section >= 0 ? vs__customer_section(c, e->ops[op].section) : NULL;
        rc = e->ops[op].op->on_timer(e->ops[op].self, &ctx, &t, section);
        if (rc) {
            op_call_failed(e, op, rc, "on_timer");
        }
        (*e->m_fired)++;
        e->since_commit++;
    }
}

static void process_event(struct vs__engine *e, struct vs__partition *p, const struct vs__record *m,
                          const struct vs_event *ev)
{
    struct vs__customer *c;
    int is_new;
    int rc = vs__store_customer(e->store, ev->user_id, ev->user_id_len, &c, &is_new);
    if (rc) {
        engine_fail(e, rc, "customer %s: %s", ev->user_id, vs__store_last_error(e->store));
        return;
    }
    int late = p->has_watermark && ev->ts < p->watermark;
    if (late) {
        (*e->m_late)++;
    }
    struct vs_ctx ctx = {.engine = e,
                         .customer = c,
                         .user = ev->user_id,
                         .partition = p,
                         .offset = m->offset,
                         .ts = ev->ts,
                         .late = late};
    for (int i = 0; i < e->nops; i++) {
        struct vs__op_slot *s = &e->ops[i];
        if (!s->enabled) {
            continue;
        }
        ctx.op = i;
        void *section = s->section >= 0 ? vs__customer_section(c, s->section) : NULL;
        rc = s->op->on_event(s->self, &ctx, ev, section);
        if (rc) {
            op_call_failed(e, i, rc, "on_event");
        }
    }
    if (!p->has_watermark || ev->ts > p->max_ts) {
        p->max_ts = ev->ts;
    }
    int64_t wm = p->max_ts - e->lateness;
    if (!p->has_watermark || wm > p->watermark) {
        p->watermark = wm;
    }
    p->has_watermark = 1;
    (*e->m_processed)++;
    e->since_commit++;
}

/* The loop thread's CPU time, in seconds. */
static double loop_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void note_progress(struct vs__engine *e)
{
    uint64_t now = mono_ms();
    double cpu = loop_cpu_s();
    if (!e->first_event_ms) {
        e->first_event_ms = now;
        e->first_event_cpu_s = cpu;
    }
    *e->m_busy = (double)(now - e->first_event_ms) / 1000.0;
    *e->m_loop_cpu = cpu - e->first_event_cpu_s;
}

/*
 * Decode and validate p's head record; a bad one is dead-lettered and dropped. Returns 1 when
 * p has a valid decoded head, 0 when its buffer is empty.
 */
static int ready_head(struct vs__engine *e, struct vs__partition *p)
{
    char why[256];
    for (;;) {
        if (p->head_state) {
            return 1;
        }
        const struct vs__record *m = vs__source_peek(p);
        if (!m) {
            return 0;
        }
        const char *kind = NULL;
        if ((int64_t)m->len > e->max_record) {
            kind = "too_large";
            snprintf(why, sizeof(why), "%u bytes, more than max.record.bytes=%" PRId64, m->len,
                     e->max_record);
        } else if (!m->payload ||
                   vs__codec_decode_event_buf(e->codec, m->payload, m->len, &p->event, &p->strbuf,
                                              &p->strcap, why, sizeof(why))) {
            kind = "decode";
            if (!m->payload) {
                snprintf(why, sizeof(why), "empty record");
            }
        } else if (vs__event_validate(&p->event, e->live ? wall_ms() : 0, why, sizeof(why))) {
            kind = "schema";
        }
        if (!kind) {
            p->head_state = 1;
            return 1;
        }
        struct vs__sink_source src = {.topic = vs__source_topic(e->source),
                                      .partition = m->partition,
                                      .offset = m->offset,
                                      .key = m->key,
                                      .key_len = m->key_len,
                                      .payload = m->payload,
                                      .len = m->len};
        if (vs__sink_dead_letter(e->sink, &src, kind, why)) {
            engine_fail(e, VS_EKAFKA, "cannot write to the dead-letter topic");
            return 0;
        }
        (*e->m_deadletters)++;
        vs__source_pop(e->source, p);
        e->since_commit++;
    }
}

/* The merge's order of two partitions' head events: event time, then partition. */
static int head_before(const struct vs__partition *parts, int a, int b)
{
    return parts[a].event.ts < parts[b].event.ts ||
           (parts[a].event.ts == parts[b].event.ts && a < b);
}

static void heap_up(const struct vs__partition *parts, int *h, int i)
{
    while (i > 0 && head_before(parts, h[i], h[(i - 1) / 2])) {
        int t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static void heap_down(const struct vs__partition *parts, int *h, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && head_before(parts, h[l], h[m])) {
            m = l;
        }
        if (r < n && head_before(parts, h[r], h[m])) {
            m = r;
        }
        if (m == i) {
            return;
        }
        int t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Whether p, with no event ready, holds the merge back: its next event may come first, unless
 * it is at its end, idle (live) or merged by arrival. */
static int holds_back(const struct vs__engine *e, const struct vs__partition *p, uint64_t now)
{
    return !(e->arrival_order || p->at_eof ||
             (e->live && now - p->last_arrival_ms >= (uint64_t)e->idle_timeout));
}

/*
 * Process up to max events in the engine's order. Returns the number processed; *blocked is set
 * when a partition with nothing fetched holds the others back.
 *
 * The partitions with a decoded head event are kept in a binary heap by (event time,
 * partition): only the partition just processed has a new head, so an event costs a log of the
 * partitions, not a pass over all of them (with 160 partitions that pass was a sixth of the
 * loop). Nothing is fetched during the call, so no other partition's state can change.
 */
static int process_ready(struct vs__engine *e, int max, int *blocked)
{
    int done = 0;
    *blocked = 0;
    uint64_t now = e->live ? mono_ms() : 0;
    int n;
    struct vs__partition *parts = vs__source_partitions(e->source, &n);
    if ((size_t)n > e->heap_cap) {
        int *h = realloc(e->heap, (size_t)n * sizeof *h);
        if (!h) {
            engine_fail(e, VS_ENOMEM, "out of memory");
            return 0;
        }
        e->heap = h;
        e->heap_cap = (size_t)n;
    }
    int *h = e->heap, nh = 0;
    for (int i = 0; i < n; i++) {
        struct vs__partition *p = &parts[i];
        if (!p->assigned) {
            continue;
        }
        if (ready_head(e, p)) {
            h[nh++] = i;
            heap_up(parts, h, nh - 1);
        } else if (holds_back(e, p, now)) {
            *blocked = 1;
            return 0;
        }
    }
    while (done < max && !e->stopped && nh > 0) {
        int i = h[0];
        struct vs__partition *best = &parts[i];
        process_event(e, best, vs__source_peek(best), &best->event);
        vs__source_pop(e->source, best);
        fire_timers(e, best);
        done++;
        if (e->stopped) {
            break;
        }
        if (ready_head(e, best)) {
            heap_down(parts, h, nh, 0);
        } else {
            h[0] = h[--nh];
            heap_down(parts, h, nh, 0);
            if (holds_back(e, best, now)) {
                *blocked = 1;
                break;
            }
        }
    }
    return done;
}

/*
 * Live mode: idle partitions' watermarks follow the wall clock, firing their timers. Idle means
 * caught up (at the end of the partition) with nothing new for idle.timeout.ms: a partition
 * with a backlog still to fetch is not idle, else a live start behind the stream would make
 * every record of its backlog late and fire its timers before the events that re-arm them.
 */
static void advance_idle_watermarks(struct vs__engine *e)
{
    if (!e->live) {
        return;
    }
    int n;
    struct vs__partition *parts = vs__source_partitions(e->source, &n);
    uint64_t now = mono_ms();
    int64_t wm = wall_ms() - e->lateness;
    for (int i = 0; i < n; i++) {
        struct vs__partition *p = &parts[i];
        if (p->assigned && p->count == 0 && p->at_eof &&
            now - p->last_arrival_ms >= (uint64_t)e->idle_timeout &&
            (!p->has_watermark || wm > p->watermark)) {
            p->watermark = wm;
            if (!p->has_watermark) {
                p->max_ts = wm + e->lateness;
            }
            p->has_watermark = 1;
            fire_timers(e, p);
        }
    }
}

static int all_at_end(struct vs__engine *e)
{
    int n, any = 0;
    struct vs__partition *parts = vs__source_partitions(e->source, &n);
    for (int i = 0; i < n; i++) {
        if (parts[i].assigned) {
            any = 1;
            if (!parts[i].at_eof || parts[i].count) {
                return 0;
            }
        }
    }
    return any;
}

static void engine_stop(struct vs__engine *e)
{
    if (e->stopped) {
        return;
    }
    e->stopped = 1;
    uv_stop(&e->loop);
}

static void on_wake(uv_timer_t *h);

/* The cache is full of records not yet written: seal them (unless a commit is sealed already)
 * and move that commit on without waiting. */
static int commit_cache_full(struct vs__engine *e)
{
    if (!e->sealed) {
        int rc = commit_seal(e);
        if (rc) {
            return rc;
        }
        (*e->m_cache_full)++;
    }
    return commit_finish(e, 0);
}

static void pump(struct vs__engine *e)
{
    if (e->stopped) {
        return;
    }
    if (e->write_job) {
        commit_finish(e, 0);
    }
    int fetched = e->draining ? 0 : vs__source_fetch(e->source);
    /* The clock of run.busy.seconds starts at the first record (not at an EOF event). */
    if (fetched && !e->first_event_ms && vs__source_received(e->source)) {
        e->first_event_ms = mono_ms();
        e->first_event_cpu_s = loop_cpu_s();
        *e->m_first_record = (double)(e->first_event_ms - e->start_ms) / 1000.0;
    }
    /* A cache full of records not yet written: seal them and take no more events until that
     * commit is written. The loop does not wait for it: it goes on draining the consumer into
     * the input buffers, which pause their partitions when full, so memory stays bounded
     * (waiting here let librdkafka fetch tens of MiB meanwhile). */
    int pressure = !e->draining && vs__store_wants_commit(e->store);
    if (pressure) {
        if (commit_cache_full(e)) {
            return;
        }
        pressure = vs__store_wants_commit(e->store) && e->sealed;
    }
    if (pressure && !e->held_since_us) {
        e->held_since_us = mono_us();
    } else if (!pressure && e->held_since_us) {
        *e->m_held_s += (double)(mono_us() - e->held_since_us) / 1e6;
        e->held_since_us = 0;
    }
    int blocked = 0;
    int done = pressure ? 0 : process_ready(e, (int)e->batch, &blocked);
    if (done) {
        note_progress(e);
    }
    if (e->blocked_since_us && (done || !blocked)) {
        *e->m_merge_wait_s += (double)(mono_us() - e->blocked_since_us) / 1e6;
        e->blocked_since_us = 0;
    }
    if (blocked && !e->blocked_since_us && e->first_event_ms) {
        e->blocked_since_us = mono_us();
    }
    if (e->stopped) {
        return;
    }
    if (!pressure && vs__store_wants_commit(e->store)) {
        if (commit_cache_full(e)) {
            return;
        }
    } else if (e->since_commit >= e->commit_events) {
        commit_finish(e, 0);
        if (commit_seal(e)) {
            return;
        }
    }
    if (e->draining) {
        if (done == (int)e->batch) {
            pump(e);
            return;
        }
        engine_commit(e);
        engine_stop(e);
        return;
    }
    if (e->opts.until_end && e->assigned_once && all_at_end(e)) {
        if (engine_commit(e) == 0) {
            note_progress(e);
            vs_log(VS_LOG_INFO, "every partition is at its end; stopping");
        }
        engine_stop(e);
        return;
    }
    int more = fetched >= (int)e->batch || done >= (int)e->batch;
    if (more != e->more_active) {
        if (more) {
            uv_idle_start(&e->more, on_more);
        } else {
            uv_idle_stop(&e->more);
        }
        e->more_active = more;
    }
    if (blocked && !more) {
        /* Nothing new may arrive to wake us: look again when idle.timeout.ms has passed (live),
         * or soon (replay: the EOF of the lagging partition is on its way). */
        uv_timer_start(&e->wake_timer, on_wake, e->live ? (uint64_t)e->idle_timeout : 5, 0);
    }
}

static void on_more(uv_idle_t *h)
{
    pump(h->data);
}

static void on_wake(uv_timer_t *h)
{
    struct vs__engine *e = h->data;
    advance_idle_watermarks(e);
    pump(e);
}

static void on_readable(void *arg)
{
    pump(arg);
}

static void trim_work(void *arg)
{
    malloc_trim(0);
}

/*
 * Hand the free pages of every malloc arena back to the system, on the thread pool. glibc returns
 * an arena's free memory only from its top, and the records librdkafka's broker threads allocate
 * and the loop frees leave their arenas full of free chunks: with 1M customers the arena of one of
 * librdkafka's broker threads held 76 MiB, 72 of them free, at the peak (malloc_info). A trim
 * takes 4.5 ms on average (up to 35 ms), which the loop used to wait for once a second. Every 300
 * ms on the pool, 1M-customer replays peaked at 195-212 MiB against 205-253 (medians of 4
 * alternating runs 204.5 against 208.8) at the same speed; every 100 ms they peaked lower still
 * (median 200.2), but a 10k-customer replay ran ~10 % slower, faulting pages back in.
 */
static void trim_memory(struct vs__engine *e, uint64_t now)
{
    if (e->trim_job && vs_job_done(e->trim_job)) {
        vs_job_wait(e->trim_job);
        e->trim_job = NULL;
    }
    if (!e->trim_job && e->trim_interval_ms && now - e->trimmed_ms >= e->trim_interval_ms) {
        e->trimmed_ms = now;
        e->trim_job = job_submit(&e->job_env, trim_work, NULL, NULL);
        (*e->m_trims)++;
    }
}

static void on_commit_timer(uv_timer_t *h)
{
    struct vs__engine *e = h->data;
    trim_memory(e, mono_ms());
    advance_idle_watermarks(e);
    commit_finish(e, 0);
    if (e->since_commit > 0 && !e->stopped) {
        commit_seal(e);
    }
    /* Records may sit in the queue without a new wake-up (see vs__source_fetch). */
    pump(e);
}

/* The process's peak resident memory (VmHWM), MiB; 0 where /proc does not tell. */
static double peak_rss_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    double kb = 0;
    char line[256];
    while (f && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmHWM: %lf kB", &kb) == 1) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return kb / 1024.0;
}

/* Replace metrics.file with the metrics now (through a rename, so readers see whole files). */
static void write_metrics(struct vs__engine *e, const char *path)
{
    if (!*path) {
        return;
    }
    *e->m_peak_rss = peak_rss_mib();
    if (e->source) {
        *e->m_input_pauses = (int64_t)vs__source_pauses(e->source);
    }
    if (e->store) {
        struct vs__store_stats st;
        vs__store_stats(e->store, &st);
        const struct {
            const char *name;
            uint64_t bytes;
        } mem[] = {{"store.cache.mib", st.cache_bytes},
                   {"store.memtables.mib", st.memtables},
                   {"store.table.readers.mib", st.table_readers},
                   {"store.block.cache.mib", st.block_cache},
                   {"store.batches.mib", st.batches}};
        for (size_t i = 0; i < sizeof(mem) / sizeof(mem[0]); i++) {
            double *g = vs__metrics_gauge(e->metrics, mem[i].name);
            if (g) {
                *g = (double)mem[i].bytes / 1048576;
            }
        }
    }
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        vs_log(VS_LOG_WARN, "cannot write metrics.file %s", path);
        return;
    }
    vs__metrics_print_json(e->metrics, f);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        vs_log(VS_LOG_WARN, "cannot write metrics.file %s", path);
    }
}

static void on_metrics_timer(uv_timer_t *h)
{
    struct vs__engine *e = h->data;
    write_metrics(e, vs_config_str(e->cfg, "metrics.file"));
}

static void on_progress(uv_timer_t *h)
{
    struct vs__engine *e = h->data;
    uint64_t now = mono_ms();
    int64_t events = *e->m_processed + *e->m_deadletters;
    double secs = (double)(now - e->progress_last_ms) / 1000.0;
    double rate = secs > 0 ? (double)(events - e->progress_last_events) / secs : 0;
    e->progress_last_ms = now;
    e->progress_last_events = events;
    fprintf(stderr,
            "\r\033[K%10" PRId64 " events %9.0f ev/s  lag %9" PRId64 "  profiles %" PRId64
            "  recs %" PRId64 "  churn %" PRId64 "  fraud %" PRId64 "  dead %" PRId64,
            events, rate, vs__source_lag(e->source), vs__sink_produced(e->sink, VS_OUT_PROFILE),
            vs__sink_produced(e->sink, VS_OUT_RECOMMENDATION),
            vs__sink_produced(e->sink, VS_OUT_CHURN_ALERT),
            vs__sink_produced(e->sink, VS_OUT_FRAUD_ALERT),
            vs__sink_produced(e->sink, VS__SINK_DEAD_LETTERS));
    fflush(stderr);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct vs__engine *e = h->data;
    if (e->draining) {
        return;
    }
    vs_log(VS_LOG_INFO, "%s: draining", signum == SIGINT ? "SIGINT" : "SIGTERM");
    e->draining = 1;
    vs__source_detach(e->source);
    pump(e);
}

/* ==== Assignment ==== */

static int on_assign(void *arg, rd_kafka_topic_partition_list_t *list)
{
    struct vs__engine *e = arg;
    int n;
    /* The stored offsets are read below: a sealed commit must be written first. */
    commit_finish(e, 1);
    e->assigned_once = 1;
    for (int i = 0; i < list->cnt; i++) {
        int64_t off, wm;
        int32_t id = list->elems[i].partition;
        if (vs__store_get_offset(e->store, e->topic, id, &off) == 0) {
            list->elems[i].offset = off;
        }
        struct vs__partition *parts = vs__source_partitions(e->source, &n);
        if (id < n && vs__store_get_watermark(e->store, e->topic, id, &wm) == 0) {
            parts[id].has_watermark = 1;
            parts[id].watermark = wm;
            parts[id].max_ts = wm + e->lateness;
        }
    }
    return 0;
}

static void on_revoke(void *arg, rd_kafka_topic_partition_list_t *list)
{
    struct vs__engine *e = arg;
    if (!e->failed) {
        engine_commit(e);
    }
}

/* ==== Setup and teardown ==== */

static int enabled_in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        while (*p == ',' || *p == ' ') {
            p++;
        }
        const char *q = p;
        while (*q && *q != ',' && *q != ' ') {
            q++;
        }
        if ((size_t)(q - p) == n && strncmp(p, name, n) == 0) {
            return 1;
        }
        p = q;
    }
    return 0;
}

static int check_operator_list(const char *list, char *errbuf, size_t errlen)
{
    for (const char *p = list; *p;) {
        while (*p == ',' || *p == ' ') {
            p++;
        }
        const char *q = p;
        while (*q && *q != ',' && *q != ' ') {
            q++;
        }
        if (q > p) {
            char name[64];
            snprintf(name, sizeof(name), "%.*s", (int)(q - p), p);
            if (vs__operator_index(name) < 0) {
                snprintf(errbuf, errlen, "config key 'operators': unknown operator '%s'", name);
                return VS_ECONFIG;
            }
        }
        p = q;
    }
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

int vs__engine_run(const struct vs_config *cfg, const struct vs__engine_run_options *opts,
                   char *errbuf, size_t errlen)
{
    struct vs__engine *e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(errbuf, errlen, "out of memory");
        return VS_ENOMEM;
    }
    int rc = 0;
    e->start_ms = mono_ms();
    e->cfg = cfg;
    e->opts = *opts;
    e->metrics = opts->metrics;
    if (!e->metrics) {
        e->metrics = e->own_metrics = vs__metrics_new();
    }
    enum vs_log_level level;
    if (vs__log_level_parse(vs_config_str(cfg, "log.level"), &level)) {
        snprintf(errbuf, errlen, "config key 'log.level': expected error, warn, info or debug");
        rc = VS_ECONFIG;
        goto out;
    }
    vs__log_set_level(level);
    e->lateness = vs_config_int(cfg, "allowed.lateness.ms");
    e->idle_timeout = vs_config_int(cfg, "idle.timeout.ms");
    e->batch = vs_config_int(cfg, "batch.size");
    e->max_record = vs_config_int(cfg, "max.record.bytes");
    e->commit_events = vs_config_int(cfg, "commit.interval.events");
    e->trim_interval_ms = (uint64_t)vs_config_int(cfg, "memory.trim.interval.ms");
    e->live = !opts->until_end;
    const char *order = vs_config_str(cfg, "processing.order");
    const char *serde = vs_config_str(cfg, "serde.format");
    if (strcmp(order, "event") && strcmp(order, "arrival")) {
        snprintf(errbuf, errlen,
                 "config key 'processing.order': expected event or arrival, got '%s'", order);
        rc = VS_ECONFIG;
        goto out;
    }
    if ((rc = vs__source_check_config(cfg, errbuf, errlen))) {
        goto out;
    }
    if (strcmp(serde, "avro") && strcmp(serde, "confluent")) {
        snprintf(errbuf, errlen, "config key 'serde.format': expected avro or confluent, got '%s'",
                 serde);
        rc = VS_ECONFIG;
        goto out;
    }
    struct {
        const char *key;
        int64_t min;
    } positive[] = {
        {"batch.size", 1},          {"commit.interval.ms", 1},     {"commit.interval.events", 1},
        {"state.cache.mb", 1},      {"max.record.bytes", 1},       {"idle.timeout.ms", 0},
        {"allowed.lateness.ms", 0}, {"memory.trim.interval.ms", 0}};
    for (size_t i = 0; i < sizeof(positive) / sizeof(positive[0]); i++) {
        if (vs_config_int(cfg, positive[i].key) < positive[i].min) {
            snprintf(errbuf, errlen, "config key '%s': expected at least %" PRId64, positive[i].key,
                     positive[i].min);
            rc = VS_ECONFIG;
            goto out;
        }
    }
    if ((rc = check_operator_list(vs_config_str(cfg, "operators"), errbuf, errlen))) {
        goto out;
    }
    e->arrival_order = strcmp(order, "arrival") == 0;
    struct vs__codec_options copts = {
        .confluent = strcmp(serde, "confluent") == 0,
        .input_schema_id = (int32_t)vs_config_int(cfg, "serde.schema.id.shop_event")};
    static const char *const out_ids[VS_OUT_COUNT] = {
        "serde.schema.id.user_profile", "serde.schema.id.recommendation",
        "serde.schema.id.churn_alert", "serde.schema.id.fraud_alert"};
    for (int i = 0; i < VS_OUT_COUNT; i++) {
        copts.output_schema_id[i] = (int32_t)vs_config_int(cfg, out_ids[i]);
    }
    e->codec = vs__codec_new(&copts, errbuf, errlen);
    if (!e->codec) {
        rc = VS_ESCHEMA;
        goto out;
    }

    /* The customer record has a section for every registered operator, enabled or not, so
     * that turning an operator off and on keeps its state. A disabled operator's section is
     * passive: kept as read, and not scanned for at each commit in the records that lack it
     * (with the profile operator alone, 1.6 of its 1.9 KiB). */
    struct vs__section_desc secs[16];
    int nsecs = 0;
    e->nops = vs__operator_count;
    for (int i = 0; i < e->nops; i++) {
        const struct vs_operator *op = vs__operators[i];
        e->ops[i].op = op;
        e->ops[i].section = -1;
        if (op->state_size) {
            e->ops[i].section = nsecs;
            int on = enabled_in_list(vs_config_str(cfg, "operators"), op->name);
            secs[nsecs++] = (struct vs__section_desc){op->name, op->state_version, op->state_size,
                                                      op->upgrade, !on};
        }
    }
    struct vs__store_options sopts = {
        .cache_bytes = (size_t)vs_config_int(cfg, "state.cache.mb") << 20,
        .rocksdb_cache_bytes = (size_t)vs_config_int(cfg, "state.rocksdb.cache.mb") << 20,
        .create_if_missing = 1,
    };
    e->store = vs__store_open(vs_config_str(cfg, "state.dir"), secs, nsecs, &sopts, errbuf, errlen);
    if (!e->store) {
        rc = VS_ESTORE;
        goto out;
    }
    e->sink = vs__sink_new(cfg, e->metrics, errbuf, errlen);
    if (!e->sink) {
        rc = VS_EKAFKA;
        goto out;
    }
    if (uv_loop_init(&e->loop)) {
        snprintf(errbuf, errlen, "cannot start the event loop");
        rc = VS_EIO;
        goto out;
    }
    e->m_processed = vs__metrics_counter(e->metrics, "events.processed");
    e->m_deadletters = vs__metrics_counter(e->metrics, "events.deadlettered");
    e->m_late = vs__metrics_counter(e->metrics, "events.late");
    e->m_fired = vs__metrics_counter(e->metrics, "timers.fired");
    e->m_commits = vs__metrics_counter(e->metrics, "commits");
    e->m_trims = vs__metrics_counter(e->metrics, "memory.trims");
    e->m_cache_full = vs__metrics_counter(e->metrics, "commits.cache.full");
    e->m_held_s = vs__metrics_gauge(e->metrics, "commit.cache.full.seconds");
    e->m_busy = vs__metrics_gauge(e->metrics, "run.busy.seconds");
    e->m_loop_cpu = vs__metrics_gauge(e->metrics, "run.loop.cpu.seconds");
    e->m_first_record = vs__metrics_gauge(e->metrics, "run.first.record.seconds");
    e->m_commit_s = vs__metrics_gauge(e->metrics, "commit.seconds");
    e->m_flush_s = vs__metrics_gauge(e->metrics, "commit.flush.seconds");
    e->m_merge_wait_s = vs__metrics_gauge(e->metrics, "merge.wait.seconds");
    e->m_peak_rss = vs__metrics_gauge(e->metrics, "process.peak_rss_mib");
    e->m_input_pauses = vs__metrics_counter(e->metrics, "input.pauses");

    for (int i = 0; i < e->nops; i++) {
        struct vs__op_slot *s = &e->ops[i];
        s->enabled = enabled_in_list(vs_config_str(cfg, "operators"), s->op->name);
        char name[96];
        snprintf(name, sizeof(name), "%s.errors", s->op->name);
        s->m_errors = vs__metrics_counter(e->metrics, name);
        s->env = (struct vs_env){e, i, cfg, e->metrics, e->store, &e->loop};
        if (!s->enabled) {
            continue;
        }
        char operr[512] = "";
        rc = s->op->init(&s->env, &s->self, operr, sizeof(operr));
        if (rc) {
            snprintf(errbuf, errlen, "operator %s: %s", s->op->name,
                     *operr ? operr : vs_strerror(rc));
            s->enabled = 0;
            goto out_loop;
        }
    }

    struct vs__source_callbacks cb = {e, on_assign, on_revoke, on_readable};
    e->source = vs__source_new(cfg, &cb, errbuf, errlen);
    if (!e->source) {
        rc = VS_EKAFKA;
        goto out_loop;
    }
    e->topic = vs__source_topic(e->source);
    if ((rc = vs__source_start(e->source, (int)vs_config_int(cfg, "startup.timeout.ms"), errbuf,
                               errlen))) {
        goto out_loop;
    }
    e->job_env = (struct vs_env){e, -1, cfg, e->metrics, e->store, &e->loop};
    if (vs__source_attach(e->source, &e->loop) ||
        vs__sink_attach(e->sink, &e->loop, on_delivered, e)) {
        snprintf(errbuf, errlen, "cannot attach Kafka queues to the event loop");
        rc = VS_EIO;
        goto out_loop;
    }
    uv_idle_init(&e->loop, &e->more);
    e->more.data = e;
    uv_timer_init(&e->loop, &e->wake_timer);
    e->wake_timer.data = e;
    uv_timer_init(&e->loop, &e->commit_timer);
    e->commit_timer.data = e;
    uint64_t ci = (uint64_t)vs_config_int(cfg, "commit.interval.ms");
    uv_timer_start(&e->commit_timer, on_commit_timer, ci, ci);
    uv_timer_init(&e->loop, &e->progress_timer);
    e->progress_timer.data = e;
    if (opts->progress) {
        uint64_t pi = (uint64_t)vs_config_int(cfg, "progress.interval.ms");
        e->progress_last_ms = mono_ms();
        uv_timer_start(&e->progress_timer, on_progress, pi ? pi : 500, pi ? pi : 500);
    }
    uv_timer_init(&e->loop, &e->metrics_timer);
    e->metrics_timer.data = e;
    uint64_t mi = (uint64_t)vs_config_int(cfg, "metrics.interval.ms");
    if (mi > 0 && *vs_config_str(cfg, "metrics.file")) {
        uv_timer_start(&e->metrics_timer, on_metrics_timer, mi, mi);
    }
    uv_signal_init(&e->loop, &e->sigint);
    uv_signal_init(&e->loop, &e->sigterm);
    e->sigint.data = e->sigterm.data = e;
    uv_signal_start(&e->sigint, on_signal, SIGINT);
    uv_signal_start(&e->sigterm, on_signal, SIGTERM);

    uv_run(&e->loop, UV_RUN_DEFAULT);

    if (opts->progress) {
        on_progress(&e->progress_timer);
        fputc('\n', stderr);
    }
    /* Leaving the group revokes the partitions, which commits once more. */
    vs__source_detach(e->source);
    vs__source_close(e->source);
    if (e->failed) {
        snprintf(errbuf, errlen, "%s", e->errbuf);
        rc = e->failed;
    }

out_loop:
    for (int i = 0; i < e->nops; i++) {
        if (e->ops[i].enabled && e->ops[i].op->report) {
            e->ops[i].op->report(e->ops[i].self);
        }
    }
    write_metrics(e, vs_config_str(cfg, "metrics.file"));
    if (e->trim_job) {
        vs_job_wait(e->trim_job);
        e->trim_job = NULL;
    }
    if (e->write_job) {
        /* Failed with a write in flight: let it end before the store closes. */
        vs_job_wait(e->write_job);
        e->write_job = NULL;
        free(e->write_err);
        e->write_err = NULL;
    }
    for (int i = 0; i < e->nops; i++) {
        if (e->ops[i].enabled && e->ops[i].self) {
            e->ops[i].op->destroy(e->ops[i].self);
        }
    }
    if (e->sink) {
        vs__sink_detach(e->sink);
    }
    vs__source_free(e->source);
    e->source = NULL;
    uv_walk(&e->loop, close_walk, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&e->loop) && !rc) {
        snprintf(errbuf, errlen, "event loop did not close cleanly");
        rc = VS_EIO;
    }
out:
    vs__sink_free(e->sink);
    vs__store_close(e->store);
    vs__codec_free(e->codec);
    free(e->heap);
    vs__metrics_free(e->own_metrics);
    if (e->sealed_offsets) {
        rd_kafka_topic_partition_list_destroy(e->sealed_offsets);
    }
    free(e);
    return rc;
}
