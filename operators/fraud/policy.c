/*
 * The fraud decision and the streaming score quantiles behind target alert rates (policy.h).
 *
 * Quantiles come from a histogram of 2000 bins over [0, 1] rather than a P-square estimator: it
 * answers any rate, forgets old scores (each new score weighs a little more than the previous
 * one; the bins are rescaled before the weights overflow) and is plain data to checkpoint.
 */
#include "policy.h"

#include <math.h>
#include <string.h>

#include <valuestream/error.h>

#define HORIZON 10000.0 /* scores: the weight of a score halves after ~0.69 * HORIZON more */
#define QUANTILE_MAGIC 0x51465356u /* "VSFQ" */
#define QUANTILE_VERSION 1

const char *const vs_fraud_rule_names[VS_FRAUD_RULE_COUNT] = {"max_amount", "velocity_10m",
                                                              "velocity_24h"};

void vs_fraud_quantiles_init(struct vs_fraud_quantiles *q)
{
    memset(q, 0, sizeof(*q));
    q->weight = 1.0;
}

void vs_fraud_quantiles_add(struct vs_fraud_quantiles *q, double score)
{
    if (!isfinite(score)) {
        return;
    }
    int b = (int)(score * VS_FRAUD_QUANTILE_BINS);
    b = b < 0 ? 0 : b >= VS_FRAUD_QUANTILE_BINS ? VS_FRAUD_QUANTILE_BINS - 1 : b;
    q->bin[b] += q->weight;
    q->total += q->weight;
    q->seen++;
    q->weight *= 1.0 + 1.0 / HORIZON;
    if (q->weight > 1e100) {
        for (int i = 0; i < VS_FRAUD_QUANTILE_BINS; i++) {
            q->bin[i] /= q->weight;
        }
        q->total /= q->weight;
        q->weight = 1.0;
    }
}

double vs_fraud_quantiles_upper(const struct vs_fraud_quantiles *q, double rate)
{
    if (q->total <= 0 || rate <= 0) {
        return 1.0;
    }
    double want = rate * q->total, cum = 0.0;
    for (int b = VS_FRAUD_QUANTILE_BINS - 1; b >= 0; b--) {
        if (cum + q->bin[b] >= want && q->bin[b] > 0) {
            double frac = (want - cum) / q->bin[b];
            return ((double)b + 1.0 - frac) / VS_FRAUD_QUANTILE_BINS;
        }
        cum += q->bin[b];
    }
    return 0.0;
}

size_t vs_fraud_quantiles_size(void)
{
    return 8 + 8 * 3 + 8 * (size_t)VS_FRAUD_QUANTILE_BINS;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static void put_f64(uint8_t *p, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    put_u64(p, v);
}

static double get_f64(const uint8_t *p)
{
    uint64_t v = get_u64(p);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

long vs_fraud_quantiles_write(const struct vs_fraud_quantiles *q, void *buf, size_t len)
{
    if (len < vs_fraud_quantiles_size()) {
        return VS_EFULL;
    }
    uint8_t *p = buf;
    put_u64(p, (uint64_t)QUANTILE_MAGIC | (uint64_t)QUANTILE_VERSION << 32);
    put_f64(p + 8, q->weight);
    put_f64(p + 16, q->total);
    put_u64(p + 24, q->seen);
    for (int i = 0; i < VS_FRAUD_QUANTILE_BINS; i++) {
        put_f64(p + 32 + 8 * i, q->bin[i]);
    }
    return (long)vs_fraud_quantiles_size();
}

int vs_fraud_quantiles_read(struct vs_fraud_quantiles *q, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (len != vs_fraud_quantiles_size() || (get_u64(p) & 0xffffffffu) != QUANTILE_MAGIC) {
        return VS_ECORRUPT;
    }
    if (get_u64(p) >> 32 != QUANTILE_VERSION) {
        return VS_EVERSION;
    }
    q->weight = get_f64(p + 8);
    q->total = get_f64(p + 16);
    q->seen = get_u64(p + 24);
    for (int i = 0; i < VS_FRAUD_QUANTILE_BINS; i++) {
        q->bin[i] = get_f64(p + 32 + 8 * i);
        if (!(q->bin[i] >= 0)) {
            return VS_ECORRUPT;
        }
    }
    return q->weight > 0 && q->total >= 0 ? 0 : VS_ECORRUPT;
}

void vs_fraud_thresholds(const struct vs_fraud_policy *p, const struct vs_fraud_quantiles *q,
                         double *review, double *block)
{
    *review =
        p->review_rate > 0 ? vs_fraud_quantiles_upper(q, p->review_rate) : p->review_threshold;
    *block = p->block_rate > 0 ? vs_fraud_quantiles_upper(q, p->block_rate) : p->block_threshold;
}

enum vs_fraud_decision vs_fraud_decide(const struct vs_fraud_policy *p, double review, double block,
                                       double score, int scored, double amount,
                                       double purchases_10m, double purchases_24h, unsigned *rules)
{
    unsigned r = 0;
    if (p->max_amount > 0 && amount > p->max_amount) {
        r |= VS_FRAUD_RULE_MAX_AMOUNT;
    }
    if (p->velocity_10m > 0 && purchases_10m > p->velocity_10m) {
        r |= VS_FRAUD_RULE_VELOCITY_10M;
    }
    if (p->velocity_24h > 0 && purchases_24h > p->velocity_24h) {
        r |= VS_FRAUD_RULE_VELOCITY_24H;
    }
    *rules = r;
    if (r) {
        return VS_FRAUD_BLOCK;
    }
    if (!scored) {
        return VS_FRAUD_ALLOW;
    }
    if (score >= block) {
        return VS_FRAUD_BLOCK;
    }
    return score >= review ? VS_FRAUD_REVIEW : VS_FRAUD_ALLOW;
}
