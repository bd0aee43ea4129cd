/*
 * The churn operator's decisions, without the engine: when to check a customer, and which
 * action to suggest for a tier and segment. churn.c wires them to timers and alerts.
 */
#ifndef VS_OPERATORS_CHURN_RULES_H
#define VS_OPERATORS_CHURN_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "operators/value/rfm.h"
#include "operators/value/value_state.h"

#define VS_CHURN_DAY_MS 86400000LL

/*
 * The suggested action per tier x segment, from churn.actions: entries "TIER:SEGMENT=ACTION"
 * separated by ';', TIER a tier name of value.tiers (top1, top10, rest, ...) or '*', SEGMENT an
 * RFM segment name (Champions, At Risk, ...) or '*'. For each tier and segment the first
 * matching entry wins; no match is "none".
 */
struct vs_churn_actions {
    char *text; /* the parsed copy of the spec; actions point into it */
    const char *action[VS_TIERS_MAX + 1][VS_SEG_COUNT];
};

/* Parse spec against the tiers (NULL: tier names are not checked, "top1,top10,rest" assumed).
 * VS_ECONFIG with a message naming churn.actions on a bad entry. Free with
 * vs_churn_actions_free(). */
int vs_churn_actions_parse(const char *spec, const struct vs_tiers *tiers,
                           struct vs_churn_actions *out, char *errbuf, size_t errlen);
void vs_churn_actions_free(struct vs_churn_actions *a);

/*
 * When to check a customer whose latest purchase is in s: the event time (ms) at which P(alive)
 * falls below threshold, or for a one-time buyer the first purchase day plus gap_days. Never
 * earlier than not_before. INT64_MAX when no check is due (threshold out of range).
 */
int64_t vs_churn_check_time(const struct vs_value_model *m, const struct vs_value_section *s,
                            double threshold, double one_time_gap_days, int64_t not_before);

/*
 * The fire time of the customer's timer: vs_churn_check_time(), except that a moment solved
 * with the priors (m->fitted == 0) is provisional and is checked again no later than
 * provisional_ms after not_before. INT64_MAX when no check is due.
 */
int64_t vs_churn_timer_time(const struct vs_value_model *m, const struct vs_value_section *s,
                            double threshold, double one_time_gap_days, int64_t not_before,
                            int64_t provisional_ms);

#endif
