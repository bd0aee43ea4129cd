/*
 * RFM scores, segments and value tiers over a changing population.
 *
 * Scores are quintiles "of the current population", and the population changes with every
 * purchase: a customer's recency, frequency and spend move, so their old contribution must go
 * and the new one come in. Fixed-bin histograms do both exactly in constant memory (P^2-style
 * estimators cannot forget), and give quantiles to within one bin: 2% in the log-spaced ones,
 * one day in the recency one. The segment rules are those of the R package `rfm`
 * (rfm_segment() with the bounds of its documentation), the value tiers are cut-offs on the
 * rank of CLV.
 */
#ifndef VS_OPERATORS_VALUE_RFM_H
#define VS_OPERATORS_VALUE_RFM_H

#include <stddef.h>
#include <stdint.h>

#define VS_QHIST_BINS 1024

/*
 * A histogram with add and remove. Linear ones (for days) slide: when a value beyond the top
 * arrives, the lowest bins fold into bin 0, which then means "this old or older". Log-spaced
 * ones cover [lo, hi] with values below lo in bin 0 and above hi in the last bin. Plain data:
 * it is checkpointed byte for byte.
 */
struct vs_qhist {
    int32_t log_scale;
    int32_t nbins;
    double lo;    /* linear: value at the bottom of bin 0; log: top of bin 0 */
    double width; /* linear: bin width; log: log(hi/lo) / (nbins - 1) */
    int64_t total;
    int64_t counts[VS_QHIST_BINS];
};

void vs_qhist_init_linear(struct vs_qhist *h, double lo, double width, int nbins);
void vs_qhist_init_log(struct vs_qhist *h, double lo, double hi, int nbins);

/* Add weight w (negative to remove) at value v; a count never goes below zero. */
void vs_qhist_add(struct vs_qhist *h, double v, int64_t w);

/* The q-quantile (0 <= q <= 1), interpolated within its bin; NAN when empty. */
double vs_qhist_quantile(const struct vs_qhist *h, double q);

/* The upper edge of the bin holding the q-quantile; NAN when empty. */
double vs_qhist_quantile_edge(const struct vs_qhist *h, double q);

/*
 * The four quintile boundaries (q = 0.2, 0.4, 0.6, 0.8) as bin edges: customers in one bin
 * always share a score, so a population where most bought once (ties) scores them all alike
 * instead of splitting the tie by interpolation.
 */
void vs_qhist_quintiles(const struct vs_qhist *h, double cuts[4]);

/* 1 + the number of boundaries at or below v: 1..5, higher for larger v. */
int vs_rfm_score(double v, const double cuts[4]);

/* ==== Segments ==== */

enum vs_rfm_segment {
    VS_SEG_CHAMPIONS = 0,
    VS_SEG_LOYAL = 1,
    VS_SEG_POTENTIAL_LOYALIST = 2,
    VS_SEG_NEW = 3,
    VS_SEG_PROMISING = 4,
    VS_SEG_NEED_ATTENTION = 5,
    VS_SEG_ABOUT_TO_SLEEP = 6,
    VS_SEG_AT_RISK = 7,
    VS_SEG_CANT_LOSE = 8,
    VS_SEG_LOST = 9,
    VS_SEG_OTHERS = 10, /* no rule matches (rfm calls it "Others") */
};
#define VS_SEG_COUNT 11

/*
 * The segment of scores (r, f, m), each 1..5: the first rule, in the package's order, whose
 * ranges contain all three scores. See rfm.c for the table.
 */
int vs_rfm_segment(int r, int f, int m);

/* "Champions", "Loyal Customers", ... "Others"; "Others" for an unknown index. */
const char *vs_rfm_segment_name(int segment);

/* The index of a segment name (exact match), or -1. */
int vs_rfm_segment_index(const char *name);

/* ==== Value tiers ==== */

#define VS_TIERS_MAX 8

/*
 * Tiers by CLV rank from cut-offs such as "0.01,0.1": the top 1% ("top1"), the next up to 10%
 * ("top10"), everyone else ("rest"). Cut-offs are fractions in (0, 1), strictly increasing.
 */
struct vs_tiers {
    int n; /* cut-offs; there are n + 1 tiers, the last is "rest" */
    double cut[VS_TIERS_MAX];
    char name[VS_TIERS_MAX + 1][16];
};

/* Parse a cut-off list; VS_ECONFIG with a message in errbuf when malformed. */
int vs_tiers_parse(const char *spec, struct vs_tiers *t, char *errbuf, size_t errlen);

/*
 * The tier of a customer with value clv, given the population's CLV histogram: tier i when clv
 * reaches the (1 - cut[i]) quantile. A CLV of zero or less is always the last tier.
 */
int vs_tier_of(const struct vs_tiers *t, const double *thresholds, double clv);

/* The thresholds (one per cut-off) for vs_tier_of() from a CLV histogram. */
void vs_tier_thresholds(const struct vs_tiers *t, const struct vs_qhist *clv, double *thresholds);

#endif
