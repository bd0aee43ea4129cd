/*
 * The churn operator: one event-time timer per customer at the moment their P(alive) would fall
 * below churn.threshold, and a churn_alert when it fires and the customer has not come back.
 *
 * The moment is solved, not polled for (vs_bgnbd_age_at_p_alive()). BG/NBD lets a customer drop
 * out only after a repeat purchase, so a one-time buyer (x = 0) is alive with probability 1: a
 * long wait for the second purchase says the customer buys rarely, not that they have left. By
 * default one-time buyers therefore get no churn alert; with churn.one_time.quantile > 0 they
 * get a "no second purchase" alert at that quantile of the population's first-to-second purchase
 * gaps, a nudge that the reason names as such. A moment solved before the first refit, with the
 * priors of another shop, is provisional: the timer is set at most churn.provisional.days ahead
 * and re-solved when it fires. A purchase cancels the timer and re-arms it; at most one alert per
 * spell of inactivity.
 */
#ifndef VS_OPERATORS_CHURN_H
#define VS_OPERATORS_CHURN_H

#include <stddef.h>
#include <stdint.h>

#include <valuestream/operator.h>

#include "churn_rules.h"

#define VS_CHURN_STATE_VERSION 1
#define VS_CHURN_TIMER_TAG 1u

struct vs_churn_section {
    int64_t timer_ts;   /* fire time of the armed timer; 0: none */
    int64_t alerted_ts; /* when this spell's alert fired; 0: not yet */
    uint32_t alerts;    /* alerts over the customer's life */
    uint32_t rearms;    /* re-checks of this spell that found the customer above the threshold */
};

/* The default of churn.actions. */
#define VS_CHURN_ACTIONS_DEFAULT                                                                   \
    "top1:*=personal_call;top10:Lost=winback_offer;top10:*=retention_offer;"                       \
    "*:Champions=retention_offer;*:Loyal Customers=retention_offer;"                               \
    "*:Can't Lose Them=retention_offer;*:At Risk=reminder_email;*:Lost=none;*:*=reminder_email"

extern const struct vs_operator vs_churn_operator;

#endif
