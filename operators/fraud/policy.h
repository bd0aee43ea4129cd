/*
 * The fraud decision: ALLOW, REVIEW or BLOCK from the anomaly score and hard rules.
 *
 * Score thresholds are either fixed (fraud.review.threshold, fraud.block.threshold) or follow a
 * target alert rate (fraud.review.rate, fraud.block.rate): the threshold is then the score's
 * streaming (1 - rate) quantile, read from a fine histogram of recent scores whose older entries
 * fade with a horizon of about 10,000 purchases. Hard rules (maximum amount, velocity caps) block
 * whatever the score says. No engine dependency; plain data, checkpointed with the forest.
 */
#ifndef VS_FRAUD_POLICY_H
#define VS_FRAUD_POLICY_H

#include <stddef.h>
#include <stdint.h>

/* In the order of the FraudDecision enum of schemas/fraud_alert.avsc. */
enum vs_fraud_decision { VS_FRAUD_ALLOW = 0, VS_FRAUD_REVIEW = 1, VS_FRAUD_BLOCK = 2 };

/* Hard rules, as bits of a mask; names as in the alert's rules field. */
enum {
    VS_FRAUD_RULE_MAX_AMOUNT = 1,
    VS_FRAUD_RULE_VELOCITY_10M = 2,
    VS_FRAUD_RULE_VELOCITY_24H = 4,
};
#define VS_FRAUD_RULE_COUNT 3
extern const char *const vs_fraud_rule_names[VS_FRAUD_RULE_COUNT];

struct vs_fraud_policy {
    double review_threshold, block_threshold; /* used when the matching rate is 0 */
    double review_rate, block_rate;           /* target share of purchases; 0: fixed threshold */
    double max_amount;                        /* 0: no limit */
    double velocity_10m, velocity_24h;        /* max purchases in the window; 0: no cap */
};

#define VS_FRAUD_QUANTILE_BINS 2000

struct vs_fraud_quantiles {
    double weight; /* weight of the next score; grows so that older scores fade */
    double total;  /* sum of the bins */
    uint64_t seen;
    double bin[VS_FRAUD_QUANTILE_BINS];
};

void vs_fraud_quantiles_init(struct vs_fraud_quantiles *q);
void vs_fraud_quantiles_add(struct vs_fraud_quantiles *q, double score);
/* The score above which a share `rate` of recent scores lies; 1 when nothing was seen yet. */
double vs_fraud_quantiles_upper(const struct vs_fraud_quantiles *q, double rate);

size_t vs_fraud_quantiles_size(void);
long vs_fraud_quantiles_write(const struct vs_fraud_quantiles *q, void *buf, size_t len);
int vs_fraud_quantiles_read(struct vs_fraud_quantiles *q, const void *buf, size_t len);

/* The current review and block thresholds under policy p. */
void vs_fraud_thresholds(const struct vs_fraud_policy *p, const struct vs_fraud_quantiles *q,
                         double *review, double *block);

/*
 * Decide on one purchase: *rules receives the mask of hard rules that fired (amount, and the
 * purchase counts in the last 10 minutes and 24 hours, this one included). scored: the forest
 * was ready, so the score counts; otherwise only the rules decide.
 */
enum vs_fraud_decision vs_fraud_decide(const struct vs_fraud_policy *p, double review, double block,
                                       double score, int scored, double amount,
                                       double purchases_10m, double purchases_24h, unsigned *rules);

#endif
