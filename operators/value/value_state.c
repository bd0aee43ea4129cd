/*
 * How purchases and refunds change a customer's value section and the population aggregates,
 * and how scores follow from them. See value_state.h.
 *
 * Every change to a customer goes the same way: take the customer's contribution out of the
 * population aggregates, change the section, put the new contribution in, score. That keeps the
 * aggregates equal to the sum over customers at all times, which a refit relies on, without the
 * aggregates ever needing to see a customer record again.
 */
#include "value_state.h"

#include <math.h>
#include <string.h>

#include <valuestream/error.h>

#define DAY_MS 86400000LL
#define WEEK_MS (7 * DAY_MS)

int32_t vs_value_day(int64_t ts_ms)
{
    int64_t d = ts_ms / DAY_MS;
    if (ts_ms % DAY_MS < 0) {
        d--;
    }
    return (int32_t)d;
}

double vs_value_m_x(const struct vs_value_section *s)
{
    return s->paid_repeats > 0 ? s->repeat_spend / s->paid_repeats : 0;
}

/* ==== Scores ==== */

void vs_value_assess(const struct vs_value_model *m, const struct vs_value_section *s,
                     int64_t now_ms, struct vs_value_assessment *out)
{
    memset(out, 0, sizeof *out);
    out->x = s->x;
    out->t_x = (s->last_day - s->first_day) / 7.0;
    double T = (double)(now_ms - (int64_t)s->first_day * DAY_MS) / WEEK_MS;
    out->T = T > out->t_x ? T : out->t_x;
    out->p_alive = vs_bgnbd_p_alive(&m->bg, out->x, out->t_x, out->T);
    out->expected_spend = vs_gg_expected_spend(&m->gg, s->paid_repeats, vs_value_m_x(s));
    if (!isfinite(out->expected_spend)) {
        /* q <= 1 (no finite mean): fall back to the customer's own mean, or nothing. */
        out->expected_spend = s->purchases > 0 ? s->total_spend / (s->x + 1) : 0;
    }
    out->clv = vs_clv_expected(&m->bg, out->x, out->t_x, out->T, out->expected_spend,
                               m->horizon_weeks, m->monthly_rate, &out->expected_transactions);
    int64_t last = s->last_purchase_ts > (int64_t)s->last_day * DAY_MS
                       ? s->last_purchase_ts
                       : (int64_t)s->last_day * DAY_MS;
    out->days_since_last = now_ms > last ? (double)(now_ms - last) / DAY_MS : 0;
    out->typical_gap_days = s->x > 0 ? (double)(s->last_day - s->first_day) / s->x : NAN;
    out->rfm_r = vs_rfm_score(s->last_day, m->r_cuts);
    out->rfm_f = vs_rfm_score(s->x + 1, m->f_cuts);
    out->rfm_m = vs_rfm_score(s->total_spend, m->m_cuts);
    out->segment = vs_rfm_segment(out->rfm_r, out->rfm_f, out->rfm_m);
    out->tier = vs_tier_of(&m->tiers, m->tier_thresholds, out->clv);
}

/* ==== The core ==== */

int vs_value_core_init(struct vs_value_core *c, double horizon_days, double monthly_rate,
                       const struct vs_tiers *tiers, int bin_days, int64_t rfm_every)
{
    memset(c, 0, sizeof *c);
    c->pop = vs_population_new();
    if (!c->pop) {
        return VS_ENOMEM;
    }
    vs_qhist_init_linear(&c->recency, 0, 1, VS_QHIST_BINS);
    vs_qhist_init_log(&c->frequency, 1, 1e5, 512);
    vs_qhist_init_log(&c->monetary, 0.01, 1e8, VS_QHIST_BINS);
    vs_qhist_init_log(&c->clv, 0.01, 1e8, VS_QHIST_BINS);
    vs_qhist_init_log(&c->first_gap, 1, 1e4, 512);
    c->model.bg = vs_bgnbd_prior;
    c->model.gg = vs_gg_prior;
    c->model.horizon_weeks = horizon_days / 7;
    c->model.monthly_rate = monthly_rate;
    c->model.tiers = *tiers;
    c->model.first_repeat_gap = &c->first_gap;
    for (int k = 0; k < 4; k++) {
        c->model.r_cuts[k] = c->model.f_cuts[k] = c->model.m_cuts[k] = NAN;
    }
    for (int k = 0; k < VS_TIERS_MAX; k++) {
        c->model.tier_thresholds[k] = NAN;
    }
    c->bin_days = bin_days > 0 ? bin_days : 1;
    c->rfm_every = rfm_every > 0 ? rfm_every : 1;
    c->counters.unpriced = &c->scratch[0];
    c->counters.before_first = &c->scratch[1];
    c->counters.out_of_order = &c->scratch[2];
    c->counters.refunds_clamped = &c->scratch[3];
    return 0;
}

void vs_value_core_destroy(struct vs_value_core *c)
{
    vs_population_free(c->pop);
    c->pop = NULL;
}

void vs_value_refresh_cuts(struct vs_value_core *c)
{
    vs_qhist_quintiles(&c->recency, c->model.r_cuts);
    vs_qhist_quintiles(&c->frequency, c->model.f_cuts);
    vs_qhist_quintiles(&c->monetary, c->model.m_cuts);
    vs_tier_thresholds(&c->model.tiers, &c->clv, c->model.tier_thresholds);
    c->updates = 0;
}

void vs_value_apply_fit(struct vs_value_core *c, const struct vs_clv_fit *fit)
{
    if (fit->bg_rc == 0) {
        c->model.bg = fit->bg;
        c->model.fitted = 1;
    }
    if (fit->gg_rc == 0) {
        c->model.gg = fit->gg;
    }
}

int vs_value_snapshot(const struct vs_value_core *c, int64_t now_ms, struct vs_bgnbd_row **bg,
                      size_t *nbg, struct vs_gg_row **gg, size_t *ngg)
{
    return vs_population_snapshot(c->pop, (double)now_ms / DAY_MS, c->bin_days, bg, nbg, gg, ngg);
}

/* Add (w = 1) or remove (w = -1) a customer's share of the aggregates. */
static int contribute(struct vs_value_core *c, const struct vs_value_section *s, int w)
{
    if (s->purchases == 0) {
        return 0;
    }
    int rc = vs_population_bg_add(c->pop, s->x, s->first_day / c->bin_days,
                                  s->last_day / c->bin_days, w);
    if (rc == 0 && s->paid_repeats > 0) {
        rc = vs_population_gg_add(c->pop, s->paid_repeats, vs_value_m_x(s), w);
    }
    vs_qhist_add(&c->recency, s->last_day, w);
    vs_qhist_add(&c->frequency, s->x + 1.0, w);
    vs_qhist_add(&c->monetary, s->total_spend, w);
    if (s->scored_ts != 0) {
        vs_qhist_add(&c->clv, s->clv, w);
    }
    return rc;
}

static void score(struct vs_value_core *c, struct vs_value_section *s, int64_t now_ms)
{
    struct vs_value_assessment a;
    vs_value_assess(&c->model, s, now_ms, &a);
    s->p_alive = a.p_alive;
    s->expected_transactions = a.expected_transactions;
    s->expected_spend = a.expected_spend;
    s->clv = a.clv;
    s->rfm_r = (uint8_t)a.rfm_r;
    s->rfm_f = (uint8_t)a.rfm_f;
    s->rfm_m = (uint8_t)a.rfm_m;
    s->segment = (uint8_t)a.segment;
    s->tier = (uint8_t)a.tier;
    s->scored_ts = now_ms != 0 ? now_ms : 1;
}

/* Bookkeeping shared by purchase and refund: the aggregates in and out, scores, quintiles. */
static int finish(struct vs_value_core *c, struct vs_value_section *s, int64_t now_ms)
{
    score(c, s, now_ms);
    int rc = contribute(c, s, 1);
    /* Small populations move fast: refresh at least every 1/64th of the population's size in
     * updates (every update below 64 customers), so a quintile never lags by more than a
     * fraction of a percent of the customers. */
    int64_t every = vs_population_customers(c->pop) / 64;
    every = every < 1 ? 1 : every > c->rfm_every ? c->rfm_every : every;
    if (++c->updates >= every) {
        vs_value_refresh_cuts(c);
    }
    return rc;
}

static void mark_day(struct vs_value_section *s, int32_t day)
{
    int64_t back = (int64_t)s->last_day - day;
    if (back >= 0 && back < 64) {
        s->recent_days |= 1ULL << back;
    }
}

static int day_marked(const struct vs_value_section *s, int32_t day)
{
    int64_t back = (int64_t)s->last_day - day;
    return back >= 0 && back < 64 && (s->recent_days >> back & 1);
}

/* A repeat transaction day with this spend (0: a transaction without spend). */
static void add_repeat_day(struct vs_value_core *c, struct vs_value_section *s, int32_t gap_days,
                           double amt)
{
    if (s->x == 0) {
        vs_qhist_add(&c->first_gap, gap_days > 0 ? gap_days : 1, 1);
    }
    s->x++;
    if (amt > 0) {
        s->paid_repeats++;
        s->repeat_spend += amt;
    }
}

int vs_value_purchase(struct vs_value_core *c, struct vs_value_section *s, int64_t ts,
                      int has_amount, double amount, int64_t now_ms)
{
    double amt = has_amount && amount > 0 && isfinite(amount) ? amount : 0;
    if (amt == 0) {
        (*c->counters.unpriced)++;
        s->unpriced++;
    }
    int32_t day = vs_value_day(ts);
    contribute(c, s, -1);
    if (s->purchases == 0) {
        s->first_day = s->last_day = day;
        s->first_purchase_ts = s->last_purchase_ts = ts;
        s->first_day_spend = s->last_day_spend = amt;
        s->recent_days = 1;
    } else if (day == s->last_day) {
        /* Another purchase of the latest transaction day: the same transaction. */
        if (day == s->first_day) {
            s->first_day_spend += amt;
        } else if (amt > 0) {
            if (s->last_day_spend <= 0) {
                s->paid_repeats++;
            }
            s->repeat_spend += amt;
        }
        s->last_day_spend += amt;
    } else if (day > s->last_day) {
        add_repeat_day(c, s, day - s->first_day, amt);
        int64_t shift = (int64_t)day - s->last_day;
        s->recent_days = shift < 64 ? s->recent_days << shift : 0;
        s->last_day = day;
        s->recent_days |= 1;
        s->last_day_spend = amt;
    } else if (day < s->first_day) {
        /* Dated before the first purchase: that first day becomes a repeat day. */
        (*c->counters.before_first)++;
        s->out_of_order++;
        if (s->x == 0) {
            vs_qhist_add(&c->first_gap, s->first_day - day, 1);
        }
        s->x++;
        if (s->first_day_spend > 0) {
            s->paid_repeats++;
            s->repeat_spend += s->first_day_spend;
        }
        s->first_day = day;
        s->first_day_spend = amt;
        mark_day(s, day);
    } else {
        /* Between the first and the latest day: late, but maybe on a day already counted. */
        (*c->counters.out_of_order)++;
        s->out_of_order++;
        if (day == s->first_day) {
            s->first_day_spend += amt;
        } else if (day_marked(s, day)) {
            s->repeat_spend += amt;
            /* The day's earlier purchases may all have been unpriced; without per-day history
             * it stays counted as it was. */
        } else {
            add_repeat_day(c, s, day - s->first_day, amt);
            mark_day(s, day);
        }
    }
    s->purchases++;
    s->total_spend += amt;
    if (ts < s->first_purchase_ts) {
        s->first_purchase_ts = ts;
    }
    if (ts > s->last_purchase_ts) {
        s->last_purchase_ts = ts;
    }
    return finish(c, s, now_ms > ts ? now_ms : ts);
}

int vs_value_refund(struct vs_value_core *c, struct vs_value_section *s, int has_amount,
                    double amount, int64_t now_ms)
{
    s->refunds++;
    if (s->purchases == 0 || !has_amount || !(amount > 0) || !isfinite(amount)) {
        return 0; /* nothing to refund against: counted in the section only */
    }
    contribute(c, s, -1);
    if (amount > s->total_spend) {
        (*c->counters.refunds_clamped)++;
        s->total_spend = 0;
    } else {
        s->total_spend -= amount;
    }
    return finish(c, s, now_ms);
}
