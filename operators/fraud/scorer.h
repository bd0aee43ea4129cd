/*
 * The fraud scorer: what the fraud operator does with one purchase, without the engine around it
 * — features against the customer's section, the forest's score, the current thresholds, the
 * decision — and then learning from it. The operator (fraud.c) adds alerts, labels, metrics and
 * checkpoints on top; bench/fraud_bench.c runs the very same code over the synthetic shop.
 *
 * No engine dependency: only valuestream/event.h and the fraud modules.
 */
#ifndef VS_FRAUD_SCORER_H
#define VS_FRAUD_SCORER_H

#include <stddef.h>
#include <stdint.h>

#include <valuestream/event.h>

#include "features.h"
#include "iforest.h"
#include "policy.h"

/* The config keys of the decision (policy and warmup), as initializers of struct vs_config_key
 * (valuestream/config.h), shared by the fraud operator's table and bench/fraud_bench.c. The
 * thresholds are those at which the forest's scores of the synthetic shop's planted fraud stand
 * clear of its honest surprises (a young customer's first large order, a second device). */
#define VS_FRAUD_SCORER_CONFIG_KEYS                                                                \
    {"fraud.review.threshold", VS_CONFIG_DOUBLE, "0.65",                                           \
     "Score from which a purchase is sent to REVIEW (when fraud.review.rate is 0)."},              \
        {"fraud.block.threshold", VS_CONFIG_DOUBLE, "0.7",                                         \
         "Score from which a purchase is BLOCKed (when fraud.block.rate is 0)."},                  \
        {"fraud.review.rate", VS_CONFIG_DOUBLE, "0",                                               \
         "Target share of purchases sent to REVIEW or BLOCK, via streaming score quantiles (0: "   \
         "use fraud.review.threshold)."},                                                          \
        {"fraud.block.rate", VS_CONFIG_DOUBLE, "0",                                                \
         "Target share of purchases BLOCKed by score (0: use fraud.block.threshold)."},            \
        {"fraud.max.amount", VS_CONFIG_DOUBLE, "0",                                                \
         "Hard rule: block purchases above this (0: off)."},                                       \
        {"fraud.velocity.10m", VS_CONFIG_INT, "0",                                                 \
         "Hard rule: block beyond this many purchases of a customer in 10 minutes (0: off)."},     \
        {"fraud.velocity.24h", VS_CONFIG_INT, "0",                                                 \
         "Hard rule: block beyond this many purchases of a customer in 24 hours (0: off)."},       \
    {                                                                                              \
        "fraud.warmup", VS_CONFIG_INT, "3000",                                                     \
            "Purchases the forest learns before its scores decide (hard rules apply from the "     \
            "start: a young forest finds every customer's first steps surprising)."                \
    }

/* The global models behind the decisions. Plain data apart from the forest, which it owns. */
struct vs_fraud_scorer {
    struct vs_iforest *forest;
    struct vs_fraud_categories categories;
    struct vs_fraud_quantiles quantiles;
    struct vs_fraud_policy policy;
    int64_t warmup;       /* purchases learned before scores decide */
    double review, block; /* current thresholds */
    uint32_t since_thresholds;
    int explain; /* judge every purchase with its explanation (each verdict is emitted) */
};

/* What the scorer made of one purchase. */
struct vs_fraud_verdict {
    double x[VS_FRAUD_NFEATURES];
    double score;   /* the forest's score, 0.5 while it is not ready */
    int scored;     /* the score counted (forest ready and warmed up) */
    unsigned rules; /* hard rules that fired */
    enum vs_fraud_decision decision;
    /* With sc->explain: each feature's part of the path shortening (vs_iforest_score), from
     * the same walk of the forest as the score; explained is 0 otherwise. */
    int explained;
    double contrib[VS_FRAUD_NFEATURES];
};

/*
 * Set up sc with policy p, warmup and the forest f (sc owns it from now on; NULL: a new forest of
 * cfg). Categories and quantiles start empty. Returns 0, or VS_ECONFIG / VS_ENOMEM with errbuf
 * filled (f, if given, is then freed).
 */
int vs_fraud_scorer_init(struct vs_fraud_scorer *sc, const struct vs_fraud_policy *p,
                         int64_t warmup, const struct vs_iforest_config *cfg, struct vs_iforest *f,
                         char *errbuf, size_t errlen);
void vs_fraud_scorer_release(struct vs_fraud_scorer *sc);

/* Re-read the thresholds from the policy and quantiles (after a restore). */
void vs_fraud_scorer_thresholds(struct vs_fraud_scorer *sc);

/*
 * Judge purchase ev of the customer whose section (as it was before ev) is s. Returns 0 with *v
 * filled, or VS_EINVAL when the purchase has no valid amount (missing, NaN, infinite, negative):
 * then nothing was scored and the caller only passes the event to vs_fraud_scorer_observe().
 * Updates the score quantiles (and so, every few purchases, the thresholds). Allocates nothing.
 */
int vs_fraud_scorer_judge(struct vs_fraud_scorer *sc, const struct vs_fraud_section *s,
                          const struct vs_event *ev, struct vs_fraud_verdict *v);

/*
 * After a judged purchase: learn its features into the forest under id (unless learn is 0, e.g.
 * for a purchase already labelled fraud) and update the section. Allocates nothing.
 */
void vs_fraud_scorer_learn(struct vs_fraud_scorer *sc, struct vs_fraud_section *s,
                           const struct vs_event *ev, const struct vs_fraud_verdict *v, uint64_t id,
                           int learn);

/* Any other event, or a purchase that was not judged: update the section and category prices. */
void vs_fraud_scorer_observe(struct vs_fraud_scorer *sc, struct vs_fraud_section *s,
                             const struct vs_event *ev);

#endif
