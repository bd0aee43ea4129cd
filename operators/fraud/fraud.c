/*
 * The fraud operator: every purchase is scored by a streaming isolation forest on features of
 * the purchase and of the customer's past (features.h), decided ALLOW / REVIEW / BLOCK (policy.h),
 * explained by the features that shortened its isolation path most, and then learned from.
 *
 * Order within one purchase: features from the section as it was before the purchase, score,
 * decide, emit the fraud_alert (REVIEW and BLOCK; every purchase with fraud.emit=all) in the same
 * callback, learn, and only then update the section. A purchase without a valid amount (missing,
 * NaN, negative) never reaches the forest: it is counted (fraud.skipped.amount) and only its
 * context (device, country...) is remembered. Events of other types update the section only.
 * Features, score, decision and learning are the scorer's (scorer.h), which bench/fraud_bench.c
 * runs over the synthetic shop as it is; this file adds alerts, labels, metrics and checkpoints.
 *
 * The forest rebuilds one tree every few purchases inline, on the loop thread: a rebuild costs
 * about 8 microseconds, less than a round trip to the thread pool, and inline keeps the model's
 * evolution a pure function of the event order (DESIGN.md contract 4) with nothing to wait for.
 *
 * Checkpoints: the forest is stored as parts ("forest.0" the header, then one key per tree and
 * per page of the window), and a commit writes only the parts changed since the previous one; the
 * category prices, the score quantiles and the remembered fraud labels go in "meta".
 */
#include "fraud.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valuestream/error.h>
#include <valuestream/operator.h>

#include "features.h"
#include "iforest.h"
#include "policy.h"
#include "scorer.h"

#define STATE_VERSION 1
#define PENDING_LABELS 4096    /* fraud labels of purchases not seen yet */
#define RECENT_DECISIONS 65536 /* decisions remembered to match later labels */
#define TOP_FEATURES 3
#define META_MAGIC 0x4d465356u /* "VSFM" */
#define META_VERSION 1

static const struct vs_config_key fraud_config[] = {
    VS_IFOREST_CONFIG_KEYS,
    VS_FRAUD_SCORER_CONFIG_KEYS,
    {"fraud.emit", VS_CONFIG_STRING, "alerts",
     "alerts: a fraud_alert for REVIEW and BLOCK; all: a verdict for every purchase."},
    {NULL, 0, NULL, NULL},
};

struct recent {
    uint64_t id;
    uint8_t decision;
    uint8_t labelled;
};

struct fraud {
    struct vs_env *env;
    struct vs_fraud_scorer sc; /* forest, category prices, score quantiles, policy */
    int emit_all;
    int meta_dirty;

    uint64_t pending[PENDING_LABELS];
    struct recent *recent; /* RECENT_DECISIONS, direct-mapped by id */

    uint8_t *buf; /* checkpoint scratch */
    size_t buflen;

    int64_t *scored, *allow, *review_n, *block_n, *skipped_amount, *rule_n[VS_FRAUD_RULE_COUNT];
    int64_t *labels_fraud, *labels_caught, *alerts;
    double *g_precision, *g_recall, *g_version, *g_review, *g_block;

    /* Field positions in the fraud_alert schema and its top features, found in init
     * (vs_output_fields). */
    size_t f_event_id, f_user_id, f_order_id, f_ts, f_amount, f_score, f_decision, f_rules, f_top,
        f_version;
    size_t e_feature, e_contribution, e_value, e_usual;
};

/* ==== Models: load and checkpoint ==== */

static size_t meta_size(void)
{
    return 8 + vs_fraud_categories_size() + vs_fraud_quantiles_size() + 8 * PENDING_LABELS;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static int meta_read(struct fraud *fr, const uint8_t *p, size_t len)
{
    if (len != meta_size() || (get_u64(p) & 0xffffffffu) != META_MAGIC) {
        return VS_ECORRUPT;
    }
    if (get_u64(p) >> 32 != META_VERSION) {
        return VS_EVERSION;
    }
    size_t off = 8;
    int rc = vs_fraud_categories_read(&fr->sc.categories, p + off, vs_fraud_categories_size());
    off += vs_fraud_categories_size();
    if (rc == 0) {
        rc = vs_fraud_quantiles_read(&fr->sc.quantiles, p + off, vs_fraud_quantiles_size());
    }
    off += vs_fraud_quantiles_size();
    for (int i = 0; rc == 0 && i < PENDING_LABELS; i++) {
        fr->pending[i] = get_u64(p + off + 8 * (size_t)i);
    }
    return rc;
}

static void part_key(char *key, size_t len, int part)
{
    snprintf(key, len, "forest.%d", part);
}

/* The stored forest, or VS_ENOTFOUND; a stored forest of another shape than configured is
 * dropped with a warning (the new one relearns within a window of purchases). */
static int load_forest(struct fraud *fr, const struct vs_iforest_config *want,
                       struct vs_iforest **out, char *errbuf, size_t errlen)
{
    void *val;
    size_t len;
    char key[32];
    part_key(key, sizeof(key), 0);
    int rc = vs_model_get(fr->env, key, &val, &len);
    if (rc != 0) {
        return rc;
    }
    struct vs_iforest *f = vs_iforest_from_header(val, len, errbuf, errlen);
    free(val);
    if (!f) {
        return VS_ECORRUPT;
    }
    const struct vs_iforest_config *got = vs_iforest_get_config(f);
    struct vs_iforest_config w = *want;
    struct vs_iforest *probe = vs_iforest_new(&w, errbuf, errlen);
    const struct vs_iforest_config *norm = probe ? vs_iforest_get_config(probe) : NULL;
    int same = norm && got->dims == norm->dims && got->trees == norm->trees &&
               got->sample_size == norm->sample_size && got->window == norm->window &&
               got->rebuild_every == norm->rebuild_every && got->max_depth == norm->max_depth &&
               got->seed == norm->seed;
    vs_iforest_free(probe);
    if (!same) {
        vs_log(VS_LOG_WARN, "fraud: the stored forest was built with other fraud.* settings; "
                            "starting a new one");
        vs_iforest_free(f);
        return VS_ENOTFOUND;
    }
    int nparts = vs_iforest_part_count(f);
    for (int p = 1; p < nparts; p++) {
        part_key(key, sizeof(key), p);
        rc = vs_model_get(fr->env, key, &val, &len);
        if (rc == 0) {
            rc = vs_iforest_part_read(f, p, val, len);
            free(val);
        }
        if (rc != 0) {
            snprintf(errbuf, errlen, "fraud: stored forest part %d: %s", p, vs_strerror(rc));
            vs_iforest_free(f);
            return rc == VS_ENOTFOUND ? VS_ECORRUPT : rc;
        }
    }
    vs_iforest_clear_dirty(f);
    *out = f;
    return 0;
}

static int fraud_checkpoint(void *self, struct vs_checkpoint *cp)
{
    struct fraud *fr = self;
    char key[32];
    int nparts = vs_iforest_part_count(fr->sc.forest);
    for (int p = 0; p < nparts; p++) {
        if (!vs_iforest_part_dirty(fr->sc.forest, p)) {
            continue;
        }
        long n = vs_iforest_part_write(fr->sc.forest, p, fr->buf, fr->buflen);
        if (n < 0) {
            return (int)n;
        }
        part_key(key, sizeof(key), p);
        int rc = vs_checkpoint_put(cp, key, fr->buf, (size_t)n);
        if (rc != 0) {
            return rc;
        }
    }
    vs_iforest_clear_dirty(fr->sc.forest);
    if (fr->meta_dirty) {
        uint8_t *p = fr->buf;
        put_u64(p, (uint64_t)META_MAGIC | (uint64_t)META_VERSION << 32);
        size_t off = 8;
        vs_fraud_categories_write(&fr->sc.categories, p + off, vs_fraud_categories_size());
        off += vs_fraud_categories_size();
        vs_fraud_quantiles_write(&fr->sc.quantiles, p + off, vs_fraud_quantiles_size());
        off += vs_fraud_quantiles_size();
        for (int i = 0; i < PENDING_LABELS; i++) {
            put_u64(p + off + 8 * (size_t)i, fr->pending[i]);
        }
        int rc = vs_checkpoint_put(cp, "meta", fr->buf, meta_size());
        if (rc != 0) {
            return rc;
        }
        fr->meta_dirty = 0;
    }
    return 0;
}

/* ==== Init and destroy ==== */

static void fraud_destroy(void *self)
{
    struct fraud *fr = self;
    if (!fr) {
        return;
    }
    vs_fraud_scorer_release(&fr->sc);
    free(fr->recent);
    free(fr->buf);
    free(fr);
}

static int config_error(char *errbuf, size_t errlen, const char *key, const char *expected)
{
    snprintf(errbuf, errlen, "config key '%s': expected %s", key, expected);
    return VS_ECONFIG;
}

static int fraud_init(struct vs_env *env, void **self, char *errbuf, size_t errlen)
{
    const struct vs_config *cfg = vs_env_config(env);
    struct fraud *fr = calloc(1, sizeof(*fr));
    if (!fr) {
        snprintf(errbuf, errlen, "fraud: out of memory");
        return VS_ENOMEM;
    }
    fr->env = env;
    const struct vs_output_field_pos fields[] = {
        {"event_id", &fr->f_event_id},
        {"user_id", &fr->f_user_id},
        {"order_id", &fr->f_order_id},
        {"ts", &fr->f_ts},
        {"amount", &fr->f_amount},
        {"score", &fr->f_score},
        {"decision", &fr->f_decision},
        {"rules", &fr->f_rules},
        {"model_version", &fr->f_version},
        {"top_features", &fr->f_top},
        {"top_features.feature", &fr->e_feature},
        {"top_features.contribution", &fr->e_contribution},
        {"top_features.value", &fr->e_value},
        {"top_features.usual_value", &fr->e_usual},
    };
    int rc = vs_output_fields(env, VS_OUT_FRAUD_ALERT, fields, sizeof(fields) / sizeof(fields[0]),
                              errbuf, errlen);
    if (rc < 0) {
        fraud_destroy(fr);
        return rc;
    }
    struct vs_fraud_policy policy, *p = &policy;
    p->review_threshold = vs_config_double(cfg, "fraud.review.threshold");
    p->block_threshold = vs_config_double(cfg, "fraud.block.threshold");
    p->review_rate = vs_config_double(cfg, "fraud.review.rate");
    p->block_rate = vs_config_double(cfg, "fraud.block.rate");
    p->max_amount = vs_config_double(cfg, "fraud.max.amount");
    p->velocity_10m = (double)vs_config_int(cfg, "fraud.velocity.10m");
    p->velocity_24h = (double)vs_config_int(cfg, "fraud.velocity.24h");
    int64_t warmup = vs_config_int(cfg, "fraud.warmup");
    const char *emit = vs_config_str(cfg, "fraud.emit");
    if (!(p->review_threshold >= 0 && p->review_threshold <= 1)) {
        rc = config_error(errbuf, errlen, "fraud.review.threshold", "a score in [0, 1]");
    } else if (!(p->block_threshold >= 0 && p->block_threshold <= 1)) {
        rc = config_error(errbuf, errlen, "fraud.block.threshold", "a score in [0, 1]");
    } else if (!(p->review_rate >= 0 && p->review_rate < 1)) {
        rc = config_error(errbuf, errlen, "fraud.review.rate", "a share in [0, 1)");
    } else if (!(p->block_rate >= 0 && p->block_rate < 1)) {
        rc = config_error(errbuf, errlen, "fraud.block.rate", "a share in [0, 1)");
    } else if (p->max_amount < 0) {
        rc = config_error(errbuf, errlen, "fraud.max.amount", "an amount >= 0");
    } else if (p->velocity_10m < 0) {
        rc = config_error(errbuf, errlen, "fraud.velocity.10m", "a count >= 0");
    } else if (p->velocity_24h < 0) {
        rc = config_error(errbuf, errlen, "fraud.velocity.24h", "a count >= 0");
    } else if (warmup < 0) {
        rc = config_error(errbuf, errlen, "fraud.warmup", "a count >= 0");
    } else if (strcmp(emit, "alerts") != 0 && strcmp(emit, "all") != 0) {
        rc = config_error(errbuf, errlen, "fraud.emit", "'alerts' or 'all'");
    }
    if (rc != 0) {
        fraud_destroy(fr);
        return rc;
    }
    fr->emit_all = strcmp(emit, "all") == 0;

    struct vs_iforest_config fc;
    vs_iforest_config_default(&fc, VS_FRAUD_NFEATURES);
    static const char *const keys[] = {"fraud.trees", "fraud.sample.size", "fraud.window",
                                       "fraud.rebuild.every", "fraud.max.depth"};
    int64_t v[5];
    for (int k = 0; k < 5; k++) {
        v[k] = vs_config_int(cfg, keys[k]);
        if (v[k] < 0 || v[k] > (1 << 24)) {
            rc = config_error(errbuf, errlen, keys[k], "a value in 0..16777216");
            fraud_destroy(fr);
            return rc;
        }
    }
    fc.trees = (int)v[0];
    fc.sample_size = (int)v[1];
    fc.window = (int)v[2];
    fc.rebuild_every = (int)v[3];
    fc.max_depth = (int)v[4];
    fc.seed = (uint64_t)vs_config_int(cfg, "fraud.seed");

    struct vs_iforest *stored = NULL;
    rc = load_forest(fr, &fc, &stored, errbuf, errlen);
    if (rc == 0 || rc == VS_ENOTFOUND) {
        fr->meta_dirty = rc == VS_ENOTFOUND;
        rc = vs_fraud_scorer_init(&fr->sc, p, warmup, &fc, stored, errbuf, errlen);
        /* Every verdict is sent with its explanation: take it from the scoring walk. */
        fr->sc.explain = fr->emit_all;
    }
    if (rc == 0 && stored) {
        void *val;
        size_t len;
        rc = vs_model_get(env, "meta", &val, &len);
        if (rc == 0) {
            rc = meta_read(fr, val, len);
            free(val);
        }
        if (rc != 0) {
            snprintf(errbuf, errlen, "fraud: stored meta: %s", vs_strerror(rc));
        }
    }
    if (rc != 0) {
        fraud_destroy(fr);
        return rc;
    }
    fr->recent = calloc(RECENT_DECISIONS, sizeof(*fr->recent));
    size_t part = vs_iforest_part_max_size(fr->sc.forest);
    fr->buflen = part > meta_size() ? part : meta_size();
    fr->buf = malloc(fr->buflen);
    if (!fr->recent || !fr->buf) {
        snprintf(errbuf, errlen, "fraud: out of memory");
        fraud_destroy(fr);
        return VS_ENOMEM;
    }
    vs_fraud_scorer_thresholds(&fr->sc);

    fr->scored = vs_env_counter(env, "fraud.scored");
    fr->allow = vs_env_counter(env, "fraud.allow");
    fr->review_n = vs_env_counter(env, "fraud.review");
    fr->block_n = vs_env_counter(env, "fraud.block");
    fr->skipped_amount = vs_env_counter(env, "fraud.skipped.amount");
    fr->alerts = vs_env_counter(env, "fraud.alerts");
    fr->rule_n[0] = vs_env_counter(env, "fraud.rule.max_amount");
    fr->rule_n[1] = vs_env_counter(env, "fraud.rule.velocity_10m");
    fr->rule_n[2] = vs_env_counter(env, "fraud.rule.velocity_24h");
    fr->labels_fraud = vs_env_counter(env, "fraud.labels.fraud");
    fr->labels_caught = vs_env_counter(env, "fraud.labels.caught");
    fr->g_precision = vs_env_gauge(env, "fraud.live.precision");
    fr->g_recall = vs_env_gauge(env, "fraud.live.recall");
    fr->g_version = vs_env_gauge(env, "fraud.model.version");
    fr->g_review = vs_env_gauge(env, "fraud.threshold.review");
    fr->g_block = vs_env_gauge(env, "fraud.threshold.block");
    *self = fr;
    return 0;
}

/* ==== Alerts ==== */

#define AV(call) VS_OUTPUT_TRY("fraud", VS_OUT_FRAUD_ALERT, call)

/*
 * Fill and send one fraud_alert. The top features are those whose splits shortened the path
 * most; each contribution is its share of the total shortening by features that shortened it.
 * The contributions come with the verdict when the scorer explains every purchase, and from a
 * second walk of the forest otherwise (only REVIEW and BLOCK are sent then).
 */
static int emit_alert(struct fraud *fr, struct vs_ctx *ctx, const struct vs_event *ev,
                      const struct vs_fraud_section *before, const struct vs_fraud_verdict *v)
{
    const double *x = v->x;
    double own[VS_FRAUD_NFEATURES];
    const double *contrib = v->contrib;
    if (!v->explained) {
        double s2;
        if (vs_iforest_score(fr->sc.forest, x, &s2, own) != 0) {
            memset(own, 0, sizeof(own));
        }
        contrib = own;
    }
    int top[TOP_FEATURES];
    int ntop = 0;
    double positive = 0.0;
    for (int f = 0; f < VS_FRAUD_NFEATURES; f++) {
        positive += contrib[f] > 0 ? contrib[f] : 0.0;
    }
    for (; ntop < TOP_FEATURES; ntop++) {
        int best = -1;
        for (int f = 0; f < VS_FRAUD_NFEATURES; f++) {
            int used = 0;
            for (int k = 0; k < ntop; k++) {
                used |= top[k] == f;
            }
            if (!used && contrib[f] > 0 && (best < 0 || contrib[f] > contrib[best])) {
                best = f;
            }
        }
        if (best < 0) {
            break;
        }
        top[ntop] = best;
    }

    avro_value_t *rec = vs_output_begin(ctx, VS_OUT_FRAUD_ALERT);
    if (!rec) {
        return VS_ESCHEMA;
    }
    avro_value_t field, branch, arr, elem, sub;
    AV(avro_value_get_by_index(rec, fr->f_event_id, &field, NULL));
    AV(vs_output_set_string(&field, ev->event_id ? ev->event_id : ""));
    AV(avro_value_get_by_index(rec, fr->f_user_id, &field, NULL));
    AV(vs_output_set_string(&field, ev->user_id));
    AV(avro_value_get_by_index(rec, fr->f_order_id, &field, NULL));
    if (ev->order_id) {
        AV(avro_value_set_branch(&field, 1, &branch));
        AV(vs_output_set_string(&branch, ev->order_id));
    } else {
        AV(avro_value_set_branch(&field, 0, &branch));
        AV(avro_value_set_null(&branch));
    }
    AV(avro_value_get_by_index(rec, fr->f_ts, &field, NULL));
    AV(avro_value_set_long(&field, ev->ts));
    AV(avro_value_get_by_index(rec, fr->f_amount, &field, NULL));
    AV(avro_value_set_double(&field, ev->amount));
    AV(avro_value_get_by_index(rec, fr->f_score, &field, NULL));
    AV(avro_value_set_double(&field, v->score));
    AV(avro_value_get_by_index(rec, fr->f_decision, &field, NULL));
    AV(avro_value_set_enum(&field, (int)v->decision));
    AV(avro_value_get_by_index(rec, fr->f_rules, &arr, NULL));
    for (int r = 0; r < VS_FRAUD_RULE_COUNT; r++) {
        if (v->rules & (1u << r)) {
            AV(avro_value_append(&arr, &elem, NULL));
            AV(vs_output_set_string(&elem, vs_fraud_rule_names[r]));
        }
    }
    AV(avro_value_get_by_index(rec, fr->f_top, &arr, NULL));
    for (int k = 0; k < ntop; k++) {
        int f = top[k];
        double usual;
        AV(avro_value_append(&arr, &elem, NULL));
        AV(avro_value_get_by_index(&elem, fr->e_feature, &sub, NULL));
        AV(vs_output_set_string(&sub, vs_fraud_feature_names[f]));
        AV(avro_value_get_by_index(&elem, fr->e_contribution, &sub, NULL));
        AV(avro_value_set_double(&sub, positive > 0 ? contrib[f] / positive : 0.0));
        AV(avro_value_get_by_index(&elem, fr->e_value, &sub, NULL));
        AV(avro_value_set_double(&sub, x[f]));
        AV(avro_value_get_by_index(&elem, fr->e_usual, &sub, NULL));
        if (vs_fraud_usual(before, f, &usual) == 0) {
            AV(avro_value_set_branch(&sub, 1, &branch));
            AV(avro_value_set_double(&branch, usual));
        } else {
            AV(avro_value_set_branch(&sub, 0, &branch));
            AV(avro_value_set_null(&branch));
        }
    }
    AV(avro_value_get_by_index(rec, fr->f_version, &field, NULL));
    AV(avro_value_set_long(&field, (int64_t)vs_iforest_learned(fr->sc.forest)));
    return vs_output_send(ctx, VS_OUT_FRAUD_ALERT, ev->user_id);
}

/* ==== Events ==== */

static int purchase(struct fraud *fr, struct vs_ctx *ctx, const struct vs_event *ev,
                    struct vs_fraud_section *s)
{
    struct vs_fraud_verdict v;
    if (vs_fraud_scorer_judge(&fr->sc, s, ev, &v) != 0) {
        ++*fr->skipped_amount;
        vs_fraud_scorer_observe(&fr->sc, s, ev);
        return 0;
    }
    uint64_t id = ev->event_id ? vs_fraud_hash(ev->event_id) : 0;
    const enum vs_fraud_decision d = v.decision;
    if (v.scored) {
        fr->meta_dirty = 1; /* the score quantiles moved */
        *fr->g_review = fr->sc.review;
        *fr->g_block = fr->sc.block;
    }
    ++*fr->scored;
    ++*(d == VS_FRAUD_BLOCK ? fr->block_n : d == VS_FRAUD_REVIEW ? fr->review_n : fr->allow);
    for (int r = 0; r < VS_FRAUD_RULE_COUNT; r++) {
        if (v.rules & (1u << r)) {
            ++*fr->rule_n[r];
        }
    }
    if (d != VS_FRAUD_ALLOW) {
        ++*fr->alerts;
    }
    if (d != VS_FRAUD_ALLOW || fr->emit_all) {
        int rc = emit_alert(fr, ctx, ev, s, &v);
        if (rc != 0) {
            return rc;
        }
    }
    if (id) {
        struct recent *r = &fr->recent[id & (RECENT_DECISIONS - 1)];
        r->id = id;
        r->decision = (uint8_t)d;
        r->labelled = 0;
    }
    /* A purchase already labelled fraud is never learned. */
    uint64_t *pend = &fr->pending[id & (PENDING_LABELS - 1)];
    int learn = 1;
    if (id && *pend == id) {
        *pend = 0;
        fr->meta_dirty = 1;
        fr->recent[id & (RECENT_DECISIONS - 1)].labelled = 1;
        if (d != VS_FRAUD_ALLOW) {
            ++*fr->labels_caught;
        }
        learn = 0;
    }
    vs_fraud_scorer_learn(&fr->sc, s, ev, &v, id, learn);
    *fr->g_version = (double)vs_iforest_learned(fr->sc.forest);
    return 0;
}

static int fraud_on_event(void *self, struct vs_ctx *ctx, const struct vs_event *ev, void *section)
{
    struct fraud *fr = self;
    struct vs_fraud_section *s = section;
    if (ev->type == VS_EVENT_PURCHASE) {
        return purchase(fr, ctx, ev, s);
    }
    if (ev->has_price && ev->category_id) {
        fr->meta_dirty = 1;
    }
    vs_fraud_scorer_observe(&fr->sc, s, ev);
    return 0;
}

int vs_fraud_label(void *self, const char *event_id, int is_fraud)
{
    struct fraud *fr = self;
    if (!event_id || !is_fraud) {
        return 0;
    }
    uint64_t id = vs_fraud_hash(event_id);
    struct recent *r = &fr->recent[id & (RECENT_DECISIONS - 1)];
    if (r->id == id && r->labelled) {
        return 0; /* the same label twice */
    }
    ++*fr->labels_fraud;
    if (r->id == id) {
        r->labelled = 1;
        if (r->decision != VS_FRAUD_ALLOW) {
            ++*fr->labels_caught;
        }
    }
    if (vs_iforest_forget(fr->sc.forest, id) != 0 && r->id != id) {
        fr->pending[id & (PENDING_LABELS - 1)] = id; /* not seen yet: never learn it */
        fr->meta_dirty = 1;
    }
    return 0;
}

static void fraud_report(void *self)
{
    struct fraud *fr = self;
    *fr->g_precision = *fr->alerts > 0 ? (double)*fr->labels_caught / (double)*fr->alerts : 0.0;
    *fr->g_recall =
        *fr->labels_fraud > 0 ? (double)*fr->labels_caught / (double)*fr->labels_fraud : 0.0;
}

static int fraud_describe(const void *section, char *buf, size_t buflen)
{
    const struct vs_fraud_section *s = section;
    int devices = 0, countries = 0, payments = 0;
    for (int i = 0; i < VS_FRAUD_DEVICE_SLOTS; i++) {
        devices += s->devices[i].hash != 0;
    }
    for (int i = 0; i < VS_FRAUD_COUNTRY_SLOTS; i++) {
        countries += s->countries[i].hash != 0;
    }
    for (int i = 0; i < VS_FRAUD_PAYMENT_SLOTS; i++) {
        payments += s->payments[i].hash != 0;
    }
    return snprintf(buf, buflen,
                    "{\"purchases\":%u,\"events\":%u,\"amount_mean\":%.2f,\"amount_sd\":%.2f,"
                    "\"first_seen\":%lld,\"last_purchase\":%lld,\"devices\":%d,\"countries\":%d,"
                    "\"payment_methods\":%d}",
                    s->purchases, s->events, s->amount_mean, sqrt(s->amount_var),
                    (long long)s->first_seen, (long long)s->last_purchase, devices, countries,
                    payments);
}

const struct vs_operator vs_fraud_operator = {
    .name = "fraud",
    .config = fraud_config,
    .state_version = STATE_VERSION,
    .state_size = sizeof(struct vs_fraud_section),
    .upgrade = NULL,
    .init = fraud_init,
    .on_event = fraud_on_event,
    .on_timer = NULL,
    .checkpoint = fraud_checkpoint,
    .describe = fraud_describe,
    .report = fraud_report,
    .destroy = fraud_destroy,
};
