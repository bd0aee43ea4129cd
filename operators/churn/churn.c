/*
 * The churn operator: live churn alerts from solved event-time timers. See churn.h.
 *
 * It runs after the value operator and reads the customer's value section and the population
 * model that value publishes. After each purchase it cancels the customer's timer and sets one
 * at the solved moment; when the timer fires it re-checks with the model in force then (a refit
 * may have moved the moment): still below the threshold, it emits one churn_alert with the
 * customer's value, segment, reason and the suggested action; above, it re-arms at the new
 * moment. The alert closes the spell: no further alert until the next purchase.
 */
#include "churn.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valuestream/error.h>

#include "operators/value/value.h"

#define MAX_REARMS 16 /* re-checks per spell; a model that keeps moving the moment gives up */

static const struct vs_config_key churn_config[] = {
    {"churn.threshold", VS_CONFIG_DOUBLE, "0.2",
     "alert when P(alive) would fall below this without a further purchase"},
    {"churn.one_time.quantile", VS_CONFIG_DOUBLE, "0",
     "one-time buyers (P(alive) = 1 in BG/NBD): alert after this quantile of first-to-second "
     "purchase gaps; 0: never"},
    {"churn.one_time.min.samples", VS_CONFIG_INT, "100",
     "repeat customers needed before the gap quantile is trusted"},
    {"churn.one_time.default.days", VS_CONFIG_DOUBLE, "60",
     "one-time buyers' gap until enough repeat customers exist"},
    {"churn.provisional.days", VS_CONFIG_DOUBLE, "7",
     "until the first refit, re-solve a customer's moment at least this often (priors are "
     "another shop's)"},
    {"churn.actions", VS_CONFIG_STRING, VS_CHURN_ACTIONS_DEFAULT,
     "suggested action per tier x segment: TIER:SEGMENT=ACTION;... ('*' matches any)"},
    {NULL, 0, NULL, NULL},
};

/* ==== The instance ==== */

struct churn {
    double threshold, one_time_q, one_time_default_days, provisional_days;
    int64_t one_time_min_samples;
    struct vs_churn_actions actions;
    int64_t *c_alerts, *c_set, *c_stale, *c_rearmed, *c_no_model, *c_one_time_off, *c_given_up;
    char reason[256];
    /* Field positions in the churn_alert schema, found in init (vs_output_fields). */
    size_t f_user, f_ts, f_p_alive, f_expected, f_horizon, f_since_last, f_typical_gap, f_clv,
        f_tier, f_segment, f_reason, f_action;
};

static double one_time_gap(const struct churn *c, const struct vs_value_model *m)
{
    if (!(c->one_time_q > 0)) {
        return 0;
    }
    const struct vs_qhist *h = m->first_repeat_gap;
    if (h && h->total >= c->one_time_min_samples) {
        double q = vs_qhist_quantile(h, c->one_time_q);
        if (isfinite(q) && q > 0) {
            return q;
        }
    }
    return c->one_time_default_days;
}

/* Arm the customer's timer for its next check at or after not_before. */
static int arm(struct churn *c, struct vs_ctx *ctx, struct vs_churn_section *cs,
               const struct vs_value_model *m, const struct vs_value_section *vs,
               int64_t not_before)
{
    double gap = one_time_gap(c, m);
    if (vs->x == 0 && !(gap > 0)) {
        (*c->c_one_time_off)++;
        return 0;
    }
    int64_t at = vs_churn_timer_time(m, vs, c->threshold, gap, not_before,
                                     (int64_t)(c->provisional_days * VS_CHURN_DAY_MS));
    if (at == INT64_MAX) {
        return 0;
    }
    int rc = vs_timer_set(ctx, at, VS_CHURN_TIMER_TAG);
    if (rc == 0) {
        cs->timer_ts = at;
        (*c->c_set)++;
    }
    return rc;
}

#define AV(call) VS_OUTPUT_TRY("churn", VS_OUT_CHURN_ALERT, call)

static int emit(struct churn *c, struct vs_ctx *ctx, const char *user, int64_t now,
                const struct vs_value_model *m, const struct vs_value_section *vs,
                const struct vs_value_assessment *a, double gap)
{
    if (vs->x > 0) {
        snprintf(c->reason, sizeof c->reason,
                 "P(alive) fell to %.2f, below %.2f: no purchase for %.0f days after %u repeat "
                 "purchases, typically %.0f days apart",
                 a->p_alive, c->threshold, a->days_since_last, vs->x, a->typical_gap_days);
    } else {
        snprintf(c->reason, sizeof c->reason,
                 "one-time buyer: no second purchase for %.0f days; %.0f%% of returning "
                 "customers return within %.0f days",
                 a->days_since_last, c->one_time_q * 100, gap);
    }
    avro_value_t *rec = vs_output_begin(ctx, VS_OUT_CHURN_ALERT);
    if (!rec) {
        return VS_EINVAL;
    }
    avro_value_t f, b;
    AV(avro_value_get_by_index(rec, c->f_user, &f, NULL));
    AV(vs_output_set_string(&f, user));
    AV(avro_value_get_by_index(rec, c->f_ts, &f, NULL));
    AV(avro_value_set_long(&f, now));
    AV(avro_value_get_by_index(rec, c->f_p_alive, &f, NULL));
    AV(avro_value_set_double(&f, a->p_alive));
    AV(avro_value_get_by_index(rec, c->f_expected, &f, NULL));
    AV(avro_value_set_double(&f, a->expected_transactions));
    AV(avro_value_get_by_index(rec, c->f_horizon, &f, NULL));
    AV(avro_value_set_int(&f, (int32_t)lround(m->horizon_weeks * 7)));
    AV(avro_value_get_by_index(rec, c->f_since_last, &f, NULL));
    AV(avro_value_set_double(&f, a->days_since_last));
    AV(avro_value_get_by_index(rec, c->f_typical_gap, &f, NULL));
    if (isfinite(a->typical_gap_days)) {
        AV(avro_value_set_branch(&f, 1, &b));
        AV(avro_value_set_double(&b, a->typical_gap_days));
    } else {
        AV(avro_value_set_branch(&f, 0, &b));
        AV(avro_value_set_null(&b));
    }
    AV(avro_value_get_by_index(rec, c->f_clv, &f, NULL));
    AV(avro_value_set_double(&f, a->clv));
    int tier = a->tier <= m->tiers.n ? a->tier : m->tiers.n;
    AV(avro_value_get_by_index(rec, c->f_tier, &f, NULL));
    AV(vs_output_set_string(&f, m->tiers.name[tier]));
    AV(avro_value_get_by_index(rec, c->f_segment, &f, NULL));
    AV(vs_output_set_string(&f, vs_rfm_segment_name(a->segment)));
    AV(avro_value_get_by_index(rec, c->f_reason, &f, NULL));
    AV(vs_output_set_string(&f, c->reason));
    AV(avro_value_get_by_index(rec, c->f_action, &f, NULL));
    AV(vs_output_set_string(&f, c->actions.action[tier][a->segment]));
    return vs_output_send(ctx, VS_OUT_CHURN_ALERT, user);
}

/* ==== Callbacks ==== */

static int churn_init(struct vs_env *env, void **self, char *errbuf, size_t errlen)
{
    const struct vs_config *cfg = vs_env_config(env);
    struct churn *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(errbuf, errlen, "churn: out of memory");
        return VS_ENOMEM;
    }
    c->threshold = vs_config_double(cfg, "churn.threshold");
    c->one_time_q = vs_config_double(cfg, "churn.one_time.quantile");
    c->one_time_min_samples = vs_config_int(cfg, "churn.one_time.min.samples");
    c->one_time_default_days = vs_config_double(cfg, "churn.one_time.default.days");
    c->provisional_days = vs_config_double(cfg, "churn.provisional.days");
    int rc = 0;
    if (!(c->threshold > 0 && c->threshold < 1)) {
        snprintf(errbuf, errlen, "churn.threshold: expected a probability in (0, 1), got %g",
                 c->threshold);
        rc = VS_ECONFIG;
    } else if (!(c->one_time_q >= 0 && c->one_time_q < 1)) {
        snprintf(errbuf, errlen, "churn.one_time.quantile: expected [0, 1), got %g", c->one_time_q);
        rc = VS_ECONFIG;
    } else if (!(c->one_time_default_days > 0)) {
        snprintf(errbuf, errlen, "churn.one_time.default.days: expected > 0, got %g",
                 c->one_time_default_days);
        rc = VS_ECONFIG;
    } else if (!(c->provisional_days > 0)) {
        snprintf(errbuf, errlen, "churn.provisional.days: expected > 0, got %g",
                 c->provisional_days);
        rc = VS_ECONFIG;
    } else {
        const struct vs_value_model *m = vs_value_model_current();
        rc = vs_churn_actions_parse(vs_config_str(cfg, "churn.actions"), m ? &m->tiers : NULL,
                                    &c->actions, errbuf, errlen);
    }
    if (rc == 0) {
        const struct vs_output_field_pos fields[] = {
            {"user_id", &c->f_user},
            {"ts", &c->f_ts},
            {"p_alive", &c->f_p_alive},
            {"expected_transactions", &c->f_expected},
            {"horizon_days", &c->f_horizon},
            {"days_since_last_purchase", &c->f_since_last},
            {"typical_gap_days", &c->f_typical_gap},
            {"clv", &c->f_clv},
            {"tier", &c->f_tier},
            {"segment", &c->f_segment},
            {"reason", &c->f_reason},
            {"action", &c->f_action},
        };
        rc = vs_output_fields(env, VS_OUT_CHURN_ALERT, fields, sizeof(fields) / sizeof(fields[0]),
                              errbuf, errlen);
    }
    if (rc) {
        free(c);
        return rc;
    }
    c->c_alerts = vs_env_counter(env, "churn.alerts");
    c->c_set = vs_env_counter(env, "churn.timers.set");
    c->c_stale = vs_env_counter(env, "churn.timers.stale");
    c->c_rearmed = vs_env_counter(env, "churn.rearmed");
    c->c_no_model = vs_env_counter(env, "churn.no_value_model");
    c->c_one_time_off = vs_env_counter(env, "churn.one_time.skipped");
    c->c_given_up = vs_env_counter(env, "churn.given_up");
    *self = c;
    return 0;
}

static int churn_on_event(void *self, struct vs_ctx *ctx, const struct vs_event *ev, void *section)
{
    if (ev->type != VS_EVENT_PURCHASE) {
        return 0;
    }
    struct churn *c = self;
    struct vs_churn_section *cs = section;
    const struct vs_value_section *vs = vs_ctx_section(ctx, "value");
    const struct vs_value_model *m = vs_value_model_current();
    if (!vs || !m || vs->purchases == 0) {
        (*c->c_no_model)++;
        return 0;
    }
    if (cs->timer_ts != 0) {
        int rc = vs_timer_cancel(ctx, cs->timer_ts, VS_CHURN_TIMER_TAG);
        if (rc && rc != VS_ENOTFOUND) {
            return rc;
        }
        cs->timer_ts = 0;
    }
    /* A purchase ends the spell of inactivity: the next one may alert again. */
    cs->alerted_ts = 0;
    cs->rearms = 0;
    return arm(c, ctx, cs, m, vs, ev->ts + 1);
}

static int churn_on_timer(void *self, struct vs_ctx *ctx, const struct vs_timer *timer,
                          void *section)
{
    struct churn *c = self;
    struct vs_churn_section *cs = section;
    if (timer->fire_ts != cs->timer_ts) {
        (*c->c_stale)++; /* cancelled after it was already due: a later purchase re-armed */
        return 0;
    }
    cs->timer_ts = 0;
    const struct vs_value_section *vs = vs_ctx_section(ctx, "value");
    const struct vs_value_model *m = vs_value_model_current();
    if (!vs || !m || vs->purchases == 0) {
        (*c->c_no_model)++;
        return 0;
    }
    if (cs->alerted_ts != 0) {
        return 0;
    }
    int64_t now = timer->fire_ts;
    double gap = one_time_gap(c, m);
    int64_t due = vs_churn_check_time(m, vs, c->threshold, gap, 0);
    if (due > now) {
        /* The model moved the moment later since the timer was set: check again then. */
        if (due == INT64_MAX || ++cs->rearms > MAX_REARMS) {
            (*c->c_given_up)++;
            return 0;
        }
        (*c->c_rearmed)++;
        return arm(c, ctx, cs, m, vs, now + 1);
    }
    struct vs_value_assessment a;
    vs_value_assess(m, vs, now, &a);
    cs->alerted_ts = now;
    cs->alerts++;
    (*c->c_alerts)++;
    return emit(c, ctx, timer->user_id, now, m, vs, &a, gap);
}

static int churn_describe(const void *section, char *buf, size_t buflen)
{
    const struct vs_churn_section *s = section;
    return snprintf(buf, buflen,
                    "{\"timer_ts\":%" PRId64 ",\"alerted_ts\":%" PRId64 ",\"alerts\":%u,"
                    "\"rearms\":%u}",
                    s->timer_ts, s->alerted_ts, s->alerts, s->rearms);
}

static void churn_destroy(void *self)
{
    struct churn *c = self;
    if (c) {
        vs_churn_actions_free(&c->actions);
        free(c);
    }
}

const struct vs_operator vs_churn_operator = {
    .name = "churn",
    .config = churn_config,
    .state_version = VS_CHURN_STATE_VERSION,
    .state_size = sizeof(struct vs_churn_section),
    .upgrade = NULL,
    .init = churn_init,
    .on_event = churn_on_event,
    .on_timer = churn_on_timer,
    .checkpoint = NULL,
    .describe = churn_describe,
    .report = NULL,
    .destroy = churn_destroy,
};
