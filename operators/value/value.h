/*
 * The value operator: per-customer BG/NBD statistics, RFM and CLV, and the population models.
 *
 * Its section of the customer record (struct vs_value_section) holds the statistics of the
 * customer's purchases and the scores computed at the last purchase; other operators read it
 * through vs_ctx_section(ctx, "value") (profile via vs_value_scores(), see value_scores.h). The
 * population model (BG/NBD and Gamma-Gamma parameters, RFM quintiles, CLV tier thresholds) is
 * published through vs_value_model_current() for the churn operator, which re-assesses a
 * customer at its timers' fire times with vs_value_assess().
 */
#ifndef VS_OPERATORS_VALUE_H
#define VS_OPERATORS_VALUE_H

#include <stdint.h>

#include <valuestream/operator.h>

#include "value_state.h"

/* The model of the running value operator; NULL when it is not running. Valid on the engine's
 * loop thread between the operator's init and destroy; it changes at refits. */
const struct vs_value_model *vs_value_model_current(void);

/* Names for the section's indices. */
const char *vs_value_segment_name(int segment);
const char *vs_value_tier_name(int tier);

extern const struct vs_operator vs_value_operator;

#endif
