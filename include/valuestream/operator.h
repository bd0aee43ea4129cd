/*
 * The operator interface (DESIGN.md contract 1).
 *
 * An operator is one `const struct vs_operator` of callbacks, registered in the engine's operator
 * table. The engine hands on_event the decoded event, the customer's section of state (read and
 * write, zeroed for a new customer) and a context through which the operator emits output
 * records, sets timers, reads other operators' sections and counts metrics. Operators never
 * touch Kafka or RocksDB directly.
 *
 * Sections are plain fixed-size structs that the engine persists byte for byte: keep them free of
 * pointers, zero the padding (the engine zeroes new sections), and bump state_version with an
 * upgrade callback when their layout changes. Global models are loaded in init through
 * vs_model_get() and saved in checkpoint through vs_checkpoint_put(), in the same RocksDB
 * WriteBatch as the customers' state and the input offsets.
 */
#ifndef VALUESTREAM_OPERATOR_H
#define VALUESTREAM_OPERATOR_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>

#include "config.h"
#include "event.h"

/* The output topics; each has its schema in schemas/ and a configurable topic name. */
enum vs_output {
    VS_OUT_PROFILE = 0,        /* user_profile.avsc      -> vs.profiles (compacted) */
    VS_OUT_RECOMMENDATION = 1, /* recommendation.avsc    -> vs.recommendations */
    VS_OUT_CHURN_ALERT = 2,    /* churn_alert.avsc       -> vs.churn-alerts */
    VS_OUT_FRAUD_ALERT = 3,    /* fraud_alert.avsc       -> vs.fraud-alerts */
};
#define VS_OUT_COUNT 4

/* "profile", "recommendation", "churn_alert", "fraud_alert": the kind in the vs.id header. */
const char *vs_output_kind(enum vs_output out);

enum vs_log_level { VS_LOG_ERROR = 0, VS_LOG_WARN = 1, VS_LOG_INFO = 2, VS_LOG_DEBUG = 3 };
void vs_log(enum vs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct vs_ctx;        /* per event or timer: the engine's side of one callback */
struct vs_env;        /* per operator instance: config, metrics, models, background jobs */
struct vs_checkpoint; /* one commit's WriteBatch, as seen by an operator */
struct vs_job;        /* background work on the libuv thread pool */

/* A timer as handed to on_timer: set by this operator for this customer. */
struct vs_timer {
    const char *user_id;
    int64_t fire_ts; /* event time, epoch ms */
    uint32_t tag;
};

struct vs_operator {
    const char *name;                   /* also the section's and the models' key prefix */
    const struct vs_config_key *config; /* table ended by a {NULL} entry; may be NULL */
    uint32_t state_version;             /* layout version of the section */
    size_t state_size;                  /* bytes of the section; 0 for no per-customer state */

    /*
     * Upgrade a stored section written with an older layout. Returns 0 or a VS_E* code. NULL
     * means older versions are rejected. A newer stored version is always an error.
     */
    int (*upgrade)(uint32_t from_version, const void *old, size_t old_len, void *section);

    /* Build the operator's instance from its config and stored models. errbuf on failure. */
    int (*init)(struct vs_env *env, void **self, char *errbuf, size_t errlen);

    /* One event of one customer, in the engine's deterministic order. */
    int (*on_event)(void *self, struct vs_ctx *ctx, const struct vs_event *ev, void *section);

    /* A timer of this operator fired: the watermark passed timer->fire_ts. May be NULL. */
    int (*on_timer)(void *self, struct vs_ctx *ctx, const struct vs_timer *timer, void *section);

    /* Write model deltas into the commit. May be NULL. */
    int (*checkpoint)(void *self, struct vs_checkpoint *cp);

    /* Write the section as one JSON object (no newline) into buf, snprintf-style: returns the
     * length it needed. Used by `valuestream inspect`. May be NULL (the section is shown as
     * hex). */
    int (*describe)(const void *section, char *buf, size_t buflen);

    /* Metrics and summaries that are computed, not counted (e.g. a hit rate): called before
     * metrics are printed. May be NULL. */
    void (*report)(void *self);

    void (*destroy)(void *self);
};

/* ==== Context: valid only during the callback that received it ==== */

const char *vs_ctx_user(const struct vs_ctx *ctx);
int64_t vs_ctx_watermark(const struct vs_ctx *ctx); /* of the event's partition */
int32_t vs_ctx_partition(const struct vs_ctx *ctx);
int64_t vs_ctx_offset(const struct vs_ctx *ctx); /* -1 in on_timer */
int vs_ctx_is_late(const struct vs_ctx *ctx);    /* the event is behind the watermark */

/* Another operator's section of the same customer, read only; NULL if not registered. Sections
 * of operators earlier in the table already reflect the current event. */
const void *vs_ctx_section(const struct vs_ctx *ctx, const char *operator_name);

/*
 * Emit one output record: vs_output_begin() returns the reusable record value of that output's
 * schema, reset; fill it with the Avro C value API, then vs_output_send() encodes and produces
 * it with key `key` and the headers vs.id and vs.kind. Returns 0 or a VS_E* code.
 */
avro_value_t *vs_output_begin(struct vs_ctx *ctx, enum vs_output out);
int vs_output_send(struct vs_ctx *ctx, enum vs_output out, const char *key);

/*
 * Set a string value of an output record to s (NULL: the empty string) without copying it:
 * s must stay as it is until vs_output_send(). avro_value_set_string() copies the string
 * into a buffer of the value's own, and a string in an array's item gets a fresh buffer for
 * every record (the next vs_output_begin() frees the items). Returns 0 or an errno code.
 */
int vs_output_set_string(avro_value_t *value, const char *s);

/*
 * The position of a field in an output's records, for avro_value_get_by_index: a lookup by name
 * hashes and compares strings, so operators find their fields once, in init. path names a field
 * of the record ("user_id") or, through an array of records, of its items ("items.item_id").
 * Returns the index, or VS_ENOTFOUND when the schema has no such field.
 */
int vs_output_field(struct vs_env *env, enum vs_output out, const char *path);

/*
 * Fill an output record with Avro C calls, each wrapped in VS_OUTPUT_TRY: a call that fails
 * logs "<who>: filling the <kind>: <Avro's error>" and returns VS_ESCHEMA from the function.
 */
#define VS_OUTPUT_TRY(who, out, call)                                                              \
    do {                                                                                           \
        if ((call) != 0) {                                                                         \
            vs_log(VS_LOG_ERROR, "%s: filling the %s: %s", (who), vs_output_kind(out),             \
                   avro_strerror());                                                               \
            return VS_ESCHEMA;                                                                     \
        }                                                                                          \
    } while (0)

/* One entry of a table for vs_output_fields: a field's path and where its index goes. */
struct vs_output_field_pos {
    const char *path;
    size_t *index;
};

/*
 * vs_output_field for each entry of a table of n. Returns 0, or VS_ESCHEMA with the first
 * missing field named in errbuf ("the recommendation schema has no field 'items.score'").
 */
int vs_output_fields(struct vs_env *env, enum vs_output out, const struct vs_output_field_pos *t,
                     size_t n, char *errbuf, size_t errlen);

/* Set or cancel a timer of this operator for the current customer. Setting an existing
 * (fire_ts, tag) is a no-op. */
int vs_timer_set(struct vs_ctx *ctx, int64_t fire_ts, uint32_t tag);
int vs_timer_cancel(struct vs_ctx *ctx, int64_t fire_ts, uint32_t tag);

/* ==== Environment: valid from init to destroy ==== */

const struct vs_config *vs_env_config(const struct vs_env *env);

/* A named counter or gauge, created on first use; the pointer stays valid and the operator
 * updates it directly (no lookup per event). Names look like "fraud.alerts.block". */
int64_t *vs_env_counter(struct vs_env *env, const char *name);
double *vs_env_gauge(struct vs_env *env, const char *name);

/* Read a stored model blob of this operator. On 0, *val is malloc'd (caller frees). Returns
 * VS_ENOTFOUND when nothing is stored (a fresh state directory). */
int vs_model_get(struct vs_env *env, const char *key, void **val, size_t *len);

/* Write or delete a model blob of this operator in the current commit. */
int vs_checkpoint_put(struct vs_checkpoint *cp, const char *key, const void *val, size_t len);
int vs_checkpoint_delete(struct vs_checkpoint *cp, const char *key);

/*
 * Background work: run work(arg) on the libuv thread pool. The operator applies the result at a
 * point of the event sequence fixed by event time (determinism), calling vs_job_wait() there,
 * which blocks until the work is done and frees the job. vs_job_done() tells without blocking.
 * Without a loop (unit tests, eval commands) work runs at once in vs_job_submit().
 */
struct vs_job *vs_job_submit(struct vs_env *env, void (*work)(void *arg), void *arg);
int vs_job_done(struct vs_job *job);
void vs_job_wait(struct vs_job *job);

#endif
