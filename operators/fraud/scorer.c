/*
 * The fraud scorer (see scorer.h): one purchase through features, forest and policy.
 *
 * Thresholds that follow a target alert rate are re-read from the score quantiles every
 * THRESHOLD_EVERY scored purchases only: reading them scans the histogram, which costs more than
 * scoring, and they move slowly anyway.
 */
#include "scorer.h"

#include <stdio.h>
#include <string.h>

#include <valuestream/error.h>

#define THRESHOLD_EVERY 16

int vs_fraud_scorer_init(struct vs_fraud_scorer *sc, const struct vs_fraud_policy *p,
                         int64_t warmup, const struct vs_iforest_config *cfg, struct vs_iforest *f,
                         char *errbuf, size_t errlen)
{
    memset(sc, 0, sizeof(*sc));
    sc->policy = *p;
    sc->warmup = warmup;
    sc->forest = f ? f : vs_iforest_new(cfg, errbuf, errlen);
    if (!sc->forest) {
        return VS_ECONFIG;
    }
    vs_fraud_quantiles_init(&sc->quantiles);
    vs_fraud_scorer_thresholds(sc);
    return 0;
}

void vs_fraud_scorer_release(struct vs_fraud_scorer *sc)
{
    vs_iforest_free(sc->forest);
    sc->forest = NULL;
}

void vs_fraud_scorer_thresholds(struct vs_fraud_scorer *sc)
{
    vs_fraud_thresholds(&sc->policy, &sc->quantiles, &sc->review, &sc->block);
}

int vs_fraud_scorer_judge(struct vs_fraud_scorer *sc, const struct vs_fraud_section *s,
                          const struct vs_event *ev, struct vs_fraud_verdict *v)
{
    if (vs_fraud_features(s, &sc->categories, ev, v->x) != 0) {
        return VS_EINVAL;
    }
    v->score = 0.5;
    v->explained = sc->explain && vs_iforest_score(sc->forest, v->x, &v->score, v->contrib) == 0;
    if (!sc->explain) {
        vs_iforest_score(sc->forest, v->x, &v->score, NULL);
    }
    v->scored =
        vs_iforest_ready(sc->forest) && vs_iforest_learned(sc->forest) >= (uint64_t)sc->warmup;
    if (v->scored) {
        vs_fraud_quantiles_add(&sc->quantiles, v->score);
        if (++sc->since_thresholds >= THRESHOLD_EVERY) {
            sc->since_thresholds = 0;
            vs_fraud_scorer_thresholds(sc);
        }
    }
    v->decision =
        vs_fraud_decide(&sc->policy, sc->review, sc->block, v->score, v->scored, ev->amount,
                        v->x[VS_FF_PURCHASES_10M], v->x[VS_FF_PURCHASES_24H], &v->rules);
    return 0;
}

void vs_fraud_scorer_learn(struct vs_fraud_scorer *sc, struct vs_fraud_section *s,
                           const struct vs_event *ev, const struct vs_fraud_verdict *v, uint64_t id,
                           int learn)
{
    if (learn) {
        vs_iforest_learn_id(sc->forest, v->x, id);
    }
    vs_fraud_observe(s, &sc->categories, ev, v->x);
}

void vs_fraud_scorer_observe(struct vs_fraud_scorer *sc, struct vs_fraud_section *s,
                             const struct vs_event *ev)
{
    vs_fraud_observe(s, &sc->categories, ev, NULL);
}
