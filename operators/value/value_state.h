/*
 * The value operator's model side, without the engine: a customer's section and how purchases
 * and refunds change it, the population aggregates (sufficient statistics, RFM and CLV
 * histograms) and the scores derived from them. value.c wires this into the operator interface;
 * tests and benches drive it directly.
 */
#ifndef VS_OPERATORS_VALUE_STATE_H
#define VS_OPERATORS_VALUE_STATE_H

#include <stdint.h>

#include "clv_model.h"
#include "population.h"
#include "rfm.h"

#define VS_VALUE_STATE_VERSION 1

/*
 * One customer's section. Days are UTC calendar days since 1970-01-01; purchases on one day are
 * one transaction (as in the CDNOW papers), so x counts transaction days after the first.
 */
struct vs_value_section {
    int64_t first_purchase_ts; /* epoch ms; purchases == 0: no purchase yet */
    int64_t last_purchase_ts;  /* the latest purchase's event time */
    int64_t scored_ts;         /* event time of the scores below; 0: not scored */
    int32_t first_day;         /* day of the first transaction */
    int32_t last_day;          /* day of the latest transaction */
    uint32_t x;                /* repeat transaction days */
    uint32_t paid_repeats;     /* repeat days with a positive amount (Gamma-Gamma's x) */
    uint32_t purchases;        /* purchase events */
    uint32_t refunds;          /* refund events */
    uint32_t unpriced;         /* purchases without a positive amount */
    uint32_t out_of_order;     /* purchases dated before the latest one */
    uint64_t recent_days;      /* bit i: a transaction on day last_day - i, for late purchases */
    double total_spend;        /* purchases minus refunds, never below zero */
    double repeat_spend;       /* positive amounts of the repeat days */
    double first_day_spend;    /* positive amounts of the first day */
    double last_day_spend;     /* positive amounts of the latest day */
    /* Scores at scored_ts. */
    double p_alive;
    double expected_transactions; /* within value.horizon.days */
    double expected_spend;        /* per transaction, Gamma-Gamma */
    double clv;                   /* over value.horizon.days, discounted monthly */
    uint8_t rfm_r, rfm_f, rfm_m;  /* 1-5 */
    uint8_t segment;              /* enum vs_rfm_segment */
    uint8_t tier;                 /* index into the configured tiers; last = "rest" */
    uint8_t pad[3];
};

/* Mean spend of the paid repeat days (Gamma-Gamma's m_x); 0 without any. */
double vs_value_m_x(const struct vs_value_section *s);

/* The population model as of the last refit and quantile update. */
struct vs_value_model {
    struct vs_bgnbd bg;
    struct vs_gg gg;
    int fitted;            /* 0: the priors of clv_model.h apply */
    double horizon_weeks;  /* value.horizon.days / 7 */
    double monthly_rate;   /* value.discount.rate */
    double r_cuts[4];      /* quintiles of the last transaction day */
    double f_cuts[4];      /* of transaction days (x + 1) */
    double m_cuts[4];      /* of total spend */
    struct vs_tiers tiers; /* value.tiers */
    double tier_thresholds[VS_TIERS_MAX];
    const struct vs_qhist *first_repeat_gap; /* days from first to second transaction day */
};

/* Scores of a customer at some event time. */
struct vs_value_assessment {
    double x, t_x, T; /* weeks */
    double p_alive;
    double expected_transactions;
    double expected_spend;
    double clv;
    double days_since_last;
    double typical_gap_days; /* mean days between transaction days; NAN when x == 0 */
    int rfm_r, rfm_f, rfm_m;
    int segment;
    int tier;
};

/*
 * Assess a customer with at least one purchase at event time now_ms, with model m. Pure
 * function: usable without an engine (tests, benches).
 */
void vs_value_assess(const struct vs_value_model *m, const struct vs_value_section *s,
                     int64_t now_ms, struct vs_value_assessment *out);

/* UTC day of an epoch-ms time (floor division, also before 1970). */
int32_t vs_value_day(int64_t ts_ms);

/* ==== The population side ==== */

/* Counters of unusual input; the operator points them at its metrics. */
struct vs_value_counters {
    int64_t *unpriced;        /* purchases without a positive amount */
    int64_t *before_first;    /* purchases dated before the customer's first purchase */
    int64_t *out_of_order;    /* purchases dated before the customer's latest one */
    int64_t *refunds_clamped; /* refunds larger than the remaining spend */
};

struct vs_value_core {
    struct vs_population *pop;
    struct vs_qhist recency;   /* last transaction day */
    struct vs_qhist frequency; /* transaction days */
    struct vs_qhist monetary;  /* total spend */
    struct vs_qhist clv;       /* clv of scored customers */
    struct vs_qhist first_gap; /* days from first to second transaction day (add only) */
    struct vs_value_model model;
    int bin_days;
    int64_t updates;   /* population updates since the quintiles were refreshed */
    int64_t rfm_every; /* refresh the quintiles every this many updates */
    struct vs_value_counters counters;
    int64_t scratch[4]; /* counter storage when none is given */
};

/*
 * Set up an empty core: priors, empty histograms. horizon_days, monthly_rate and tiers come
 * from config. Returns 0 or VS_ENOMEM.
 */
int vs_value_core_init(struct vs_value_core *c, double horizon_days, double monthly_rate,
                       const struct vs_tiers *tiers, int bin_days, int64_t rfm_every);
void vs_value_core_destroy(struct vs_value_core *c);

/*
 * A purchase (amount taken when has_amount and > 0) or a refund of customer s, at event time
 * ts, with the operator's clock at now_ms (>= ts for in-order events). Updates the section, the
 * population aggregates and the customer's scores. Returns 0 or a VS_E* code.
 */
int vs_value_purchase(struct vs_value_core *c, struct vs_value_section *s, int64_t ts,
                      int has_amount, double amount, int64_t now_ms);
int vs_value_refund(struct vs_value_core *c, struct vs_value_section *s, int has_amount,
                    double amount, int64_t now_ms);

/* Recompute the RFM quintiles and the CLV tier thresholds from the histograms. */
void vs_value_refresh_cuts(struct vs_value_core *c);

/* Install fitted parameters (after a successful refit). */
void vs_value_apply_fit(struct vs_value_core *c, const struct vs_clv_fit *fit);

/* Rows of the current population for a refit at now_ms (see vs_population_snapshot()). */
int vs_value_snapshot(const struct vs_value_core *c, int64_t now_ms, struct vs_bgnbd_row **bg,
                      size_t *nbg, struct vs_gg_row **gg, size_t *ngg);

#endif
