/*
 * The value operator's scores of the current customer, as other operators (profile) publish
 * them: read from value's section of the customer record through the operator context.
 */
#ifndef VS_OPERATORS_VALUE_SCORES_H
#define VS_OPERATORS_VALUE_SCORES_H

#include <valuestream/operator.h>

struct vs_value_scores {
    double p_alive;
    double expected_transactions; /* within value.horizon.days */
    double clv;
    int rfm_recency, rfm_frequency, rfm_monetary; /* 1-5 */
    const char *segment;                          /* static string, e.g. "Champions" */
    const char *tier;                             /* static string, e.g. "top10" */
};

/* 0 and *out filled when the value operator runs and has scored this customer; VS_ENOTFOUND
 * otherwise (the profile then carries nulls). */
int vs_value_scores(const struct vs_ctx *ctx, struct vs_value_scores *out);

#endif
