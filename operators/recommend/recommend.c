/*
 * The `recommend` operator: continuously refreshed recommendations from online matrix
 * factorization, blended with co-occurrence and recent popularity (recommender.h).
 *
 * Every view, add-to-cart and purchase teaches the model (remove-from-cart and refund take
 * weight away); a fresh top-N list goes to vs.recommendations after a purchase, after an
 * add-to-cart and after every recommend.every.views views, at most once per
 * recommend.min.interval.ms of event time per customer, carrying the model version and the
 * triggering event. The customer's section holds their factors, recent items and the last list
 * sent, which also gives the live quality measure: when a customer interacts with an item, was
 * it in the last list they were sent (recommend.live.hits / recommend.live.checks)? One in
 * recommend.blend.adapt.sample interactions with an item the customer's list could have held
 * also tests the blend's candidate mixes before it is learned from (recommend.blend.tests), and
 * lists use the mix that ranks such items best (recommend.blend.model.weight,
 * recommend.blend.trending.weight).
 *
 * The item factors, Gram cache, co-occurrence and popularity are checkpointed by changed chunk
 * of 256 items in the same commit as the customers' state, and loaded whole in init. With
 * recommend.als.interval.ms set, full ALS sweeps run on the engine's thread pool (vs_job_submit)
 * and are applied at event-time boundaries (recommender.h; recommend.als.sweeps).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valuestream/valuestream.h>

#include "recommender.h"

struct recommend {
    struct vs_env *env;
    struct vs_rec *rec;
    int64_t *lists, *throttled, *no_item, *unknown_item, *bad_item, *rejected;
    int64_t *live_hits, *live_checks, *blend_tests;
    double *hit_rate, *items, *version, *blend_model, *blend_trending;
    int64_t *sweeps, *sweep_failures;
    double *sweep_ms, *sweep_rows;
    int64_t rejected_seen;
    struct vs_rec_entry list[VS_REC_MAX_N];
    /* Field positions in the recommendation schema, found in init (vs_output_fields). */
    size_t f_user, f_ts, f_trigger, f_version, f_items;
    size_t f_item_id, f_score, f_reason, f_related;
};

/* The engine's typed config, turned back into text for the one parser of recommend.* keys. */
static int read_params(const struct vs_config *cfg, struct vs_rec_params *p, char *errbuf,
                       size_t errlen)
{
    char text[64];
    vs_rec_params_default(p);
    for (const struct vs_config_key *k = vs_rec_config; k->key; k++) {
        switch (k->type) {
        case VS_CONFIG_INT:
            snprintf(text, sizeof(text), "%" PRId64, vs_config_int(cfg, k->key));
            break;
        case VS_CONFIG_DOUBLE:
            snprintf(text, sizeof(text), "%.17g", vs_config_double(cfg, k->key));
            break;
        case VS_CONFIG_BOOL:
            snprintf(text, sizeof(text), "%s", vs_config_bool(cfg, k->key) ? "true" : "false");
            break;
        case VS_CONFIG_STRING:
            snprintf(text, sizeof(text), "%s", vs_config_str(cfg, k->key));
            break;
        }
        int rc = vs_rec_params_set(p, k->key, text, errbuf, errlen);
        if (rc < 0) {
            return rc;
        }
    }
    snprintf(text, sizeof(text), "%" PRId64, vs_config_int(cfg, "seed"));
    int rc = vs_rec_params_set(p, "seed", text, errbuf, errlen);
    return rc < 0 ? rc : vs_rec_params_check(p, errbuf, errlen);
}

static int model_get(void *arg, const char *key, void **val, size_t *len)
{
    return vs_model_get(arg, key, val, len);
}

static int model_put(void *arg, const char *key, const void *val, size_t len)
{
    return vs_checkpoint_put(arg, key, val, len);
}

/* Full ALS sweeps run on the engine's thread pool. */
static void *job_submit(void *ctx, void (*work)(void *arg), void *arg)
{
    return vs_job_submit(ctx, work, arg);
}

static void job_wait(void *ctx, void *handle)
{
    (void)ctx;
    vs_job_wait(handle);
}

static void recommend_destroy(void *self)
{
    struct recommend *op = self;
    if (op) {
        vs_rec_free(op->rec);
        free(op);
    }
}

static int recommend_init(struct vs_env *env, void **self, char *errbuf, size_t errlen)
{
    struct vs_rec_params p;
    int rc = read_params(vs_env_config(env), &p, errbuf, errlen);
    if (rc < 0) {
        return rc;
    }
    struct recommend *op = calloc(1, sizeof(*op));
    if (!op) {
        snprintf(errbuf, errlen, "recommend: out of memory");
        return VS_ENOMEM;
    }
    op->env = env;
    const struct vs_output_field_pos fields[] = {
        {"user_id", &op->f_user},
        {"ts", &op->f_ts},
        {"trigger_event_id", &op->f_trigger},
        {"model_version", &op->f_version},
        {"items", &op->f_items},
        {"items.item_id", &op->f_item_id},
        {"items.score", &op->f_score},
        {"items.reason", &op->f_reason},
        {"items.related_item_id", &op->f_related},
    };
    rc = vs_output_fields(env, VS_OUT_RECOMMENDATION, fields, sizeof(fields) / sizeof(fields[0]),
                          errbuf, errlen);
    if (rc < 0) {
        free(op);
        return rc;
    }
    op->rec = vs_rec_new(&p, errbuf, errlen);
    if (!op->rec) {
        free(op);
        return VS_ECONFIG;
    }
    const struct vs_rec_runner runner = {job_submit, job_wait, env};
    vs_rec_set_runner(op->rec, &runner);
    rc = vs_rec_load(op->rec, model_get, env, errbuf, errlen);
    if (rc < 0) {
        recommend_destroy(op);
        return rc;
    }
    op->lists = vs_env_counter(env, "recommend.lists");
    op->throttled = vs_env_counter(env, "recommend.lists.throttled");
    op->no_item = vs_env_counter(env, "recommend.skipped.no_item");
    op->unknown_item = vs_env_counter(env, "recommend.skipped.unknown_item");
    op->bad_item = vs_env_counter(env, "recommend.skipped.bad_item");
    op->rejected = vs_env_counter(env, "recommend.updates.rejected");
    op->live_hits = vs_env_counter(env, "recommend.live.hits");
    op->live_checks = vs_env_counter(env, "recommend.live.checks");
    op->hit_rate = vs_env_gauge(env, "recommend.live.hit_rate");
    op->items = vs_env_gauge(env, "recommend.model.items");
    op->version = vs_env_gauge(env, "recommend.model.version");
    op->blend_tests = vs_env_counter(env, "recommend.blend.tests");
    op->blend_model = vs_env_gauge(env, "recommend.blend.model.weight");
    op->blend_trending = vs_env_gauge(env, "recommend.blend.trending.weight");
    op->sweeps = vs_env_counter(env, "recommend.als.sweeps");
    op->sweep_failures = vs_env_counter(env, "recommend.als.failures");
    op->sweep_ms = vs_env_gauge(env, "recommend.als.sweep.ms");
    op->sweep_rows = vs_env_gauge(env, "recommend.als.rows");
    *op->blend_tests = vs_rec_blend(op->rec).tests;
    op->rejected_seen = vs_rec_stats(op->rec).rejected;
    *self = op;
    return 0;
}

#define AV(call) VS_OUTPUT_TRY("recommend", VS_OUT_RECOMMENDATION, call)

static int emit(struct recommend *op, struct vs_ctx *ctx, const struct vs_event *ev,
                const struct vs_rec_entry *list, int n)
{
    struct vs_mf *mf = vs_rec_mf(op->rec);
    avro_value_t *rec = vs_output_begin(ctx, VS_OUT_RECOMMENDATION);
    if (!rec) {
        return VS_ESCHEMA;
    }
    avro_value_t field, arr, elem, sub, branch;
    AV(avro_value_get_by_index(rec, op->f_user, &field, NULL));
    AV(vs_output_set_string(&field, ev->user_id));
    AV(avro_value_get_by_index(rec, op->f_ts, &field, NULL));
    AV(avro_value_set_long(&field, ev->ts));
    AV(avro_value_get_by_index(rec, op->f_trigger, &field, NULL));
    AV(vs_output_set_string(&field, ev->event_id ? ev->event_id : ""));
    AV(avro_value_get_by_index(rec, op->f_version, &field, NULL));
    AV(avro_value_set_long(&field, vs_rec_stats(op->rec).learned));
    AV(avro_value_get_by_index(rec, op->f_items, &arr, NULL));
    for (int e = 0; e < n; e++) {
        AV(avro_value_append(&arr, &elem, NULL));
        AV(avro_value_get_by_index(&elem, op->f_item_id, &sub, NULL));
        AV(vs_output_set_string(&sub, vs_mf_item_id(mf, list[e].item)));
        AV(avro_value_get_by_index(&elem, op->f_score, &sub, NULL));
        AV(avro_value_set_double(&sub, (double)list[e].score));
        AV(avro_value_get_by_index(&elem, op->f_reason, &sub, NULL));
        AV(avro_value_set_enum(&sub, (int)list[e].reason));
        AV(avro_value_get_by_index(&elem, op->f_related, &sub, NULL));
        if (list[e].reason == VS_REC_TOGETHER && list[e].related >= 0) {
            AV(avro_value_set_branch(&sub, 1, &branch));
            AV(vs_output_set_string(&branch, vs_mf_item_id(mf, list[e].related)));
        } else {
            AV(avro_value_set_branch(&sub, 0, &branch));
            AV(avro_value_set_null(&branch));
        }
    }
    return vs_output_send(ctx, VS_OUT_RECOMMENDATION, ev->user_id);
}

/*
 * Live quality is checked against the list the customer had when they acted: learning does not
 * touch the last list, so the check runs on the row that learning found, with no second lookup
 * of the item id. An item the model does not hold (new, refused) was in no list: a miss. Only
 * positive interactions count: taking an item back says nothing about the list.
 */
static int recommend_on_event(void *self, struct vs_ctx *ctx, const struct vs_event *ev,
                              void *section)
{
    struct recommend *op = self;
    struct vs_rec_customer *cu = section;
    const struct vs_rec_params *p = vs_rec_params(op->rec);
    int gives = ev->type == VS_EVENT_VIEW || ev->type == VS_EVENT_ADD_TO_CART ||
                ev->type == VS_EVENT_PURCHASE;
    int checks = gives && ev->item_id && *ev->item_id && cu->n_last > 0;
    /* Test the blend's mixes on what the customer does next, before learning from it. */
    int32_t target = vs_rec_adapt_target(op->rec, cu, ev->type, ev->item_id);
    if (target >= 0) {
        vs_rec_refresh(op->rec, cu); /* its vector may predate the last full ALS sweep */
        vs_rec_top_test(op->rec, cu, 0, NULL, 0, NULL, target);
        (*op->blend_tests)++;
    }
    int32_t rc = vs_rec_learn(op->rec, cu, ev->type, ev->item_id, ev->ts);
    if (checks) {
        (*op->live_checks)++;
        if (rc >= 0 && vs_rec_in_last_list(cu, rc) == 1) {
            (*op->live_hits)++;
        }
    }
    int64_t rejected = vs_rec_stats(op->rec).rejected;
    *op->rejected += rejected - op->rejected_seen;
    op->rejected_seen = rejected;
    if (rc < 0) {
        if (rc == VS_EINVAL) {
            (*op->no_item)++;
        } else if (rc == VS_ENOTFOUND) {
            (*op->unknown_item)++;
        } else if (rc == VS_ETOOBIG || rc == VS_EFULL) {
            (*op->bad_item)++;
        } else {
            return rc;
        }
        return 0;
    }
    enum vs_rec_due due = vs_rec_list_due(op->rec, cu, ev->type, ev->ts);
    if (due == VS_REC_THROTTLED) {
        (*op->throttled)++;
    }
    if (due != VS_REC_DUE) {
        return 0;
    }
    int n = vs_rec_top(op->rec, cu, p->n, NULL, 0, op->list);
    if (n == 0) {
        return 0;
    }
    int erc = emit(op, ctx, ev, op->list, n);
    if (erc < 0) {
        return erc;
    }
    vs_rec_remember_list(cu, op->list, n, ev->ts);
    (*op->lists)++;
    return 0;
}

static int recommend_checkpoint(void *self, struct vs_checkpoint *cp)
{
    struct recommend *op = self;
    return vs_rec_save(op->rec, model_put, cp);
}

static void recommend_report(void *self)
{
    struct recommend *op = self;
    *op->hit_rate = *op->live_checks > 0 ? (double)*op->live_hits / (double)*op->live_checks : 0;
    *op->items = (double)vs_mf_items(vs_rec_mf(op->rec));
    *op->version = (double)vs_rec_stats(op->rec).learned;
    struct vs_rec_blend b = vs_rec_blend(op->rec);
    *op->blend_model = b.model;
    *op->blend_trending = b.trending;
    struct vs_rec_sweeps sw = vs_rec_sweeps(op->rec);
    *op->sweeps = sw.sweeps;
    *op->sweep_failures = sw.failures;
    *op->sweep_ms = sw.ms;
    *op->sweep_rows = sw.solved;
}

static int recommend_describe(const void *section, char *buf, size_t buflen)
{
    const struct vs_rec_customer *cu = section;
    size_t len = 0;
    int n;
#define OUT(...)                                                                                   \
    do {                                                                                           \
        n = snprintf(len < buflen ? buf + len : NULL, len < buflen ? buflen - len : 0,             \
                     __VA_ARGS__);                                                                 \
        len += n > 0 ? (size_t)n : 0;                                                              \
    } while (0)
    OUT("{\"interactions\":%" PRIu32 ",\"last_sent_ts\":%" PRId64
        ",\"views_since_sent\":%u,\"recent_items\":[",
        cu->interactions, cu->last_sent_ts, (unsigned)cu->views_since_sent);
    for (int s = 0; s < cu->n_recent && s < VS_REC_MAX_RECENT; s++) {
        OUT("%s{\"item\":%" PRId32 ",\"weight\":%.3g,\"flags\":%u}", s ? "," : "", cu->recent[s],
            (double)cu->recent_w[s], (unsigned)cu->recent_flags[s]);
    }
    OUT("],\"last_list\":[");
    for (int e = 0; e < cu->n_last && e < VS_REC_MAX_N; e++) {
        OUT("%s%" PRId32, e ? "," : "", cu->last_list[e]);
    }
    OUT("]}");
#undef OUT
    return (int)len;
}

const struct vs_operator vs_recommend_operator = {
    .name = "recommend",
    .config = vs_rec_config,
    .state_version = 1,
    .state_size = sizeof(struct vs_rec_customer),
    .init = recommend_init,
    .on_event = recommend_on_event,
    .checkpoint = recommend_checkpoint,
    .describe = recommend_describe,
    .report = recommend_report,
    .destroy = recommend_destroy,
};
