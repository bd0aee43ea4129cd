/*
 * Unit tests of the fraud scorer (operators/fraud/scorer.h), the per-purchase pipeline the
 * operator and the bench share: invalid amounts never reach the forest, the warmup keeps young
 * scores from deciding, decisions follow the policy, and a burst of card testing on an established
 * customer is caught.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <valuestream/config.h>
#include <valuestream/error.h>

#include "operators/fraud/scorer.h"

#define MIN (60 * 1000LL)
#define DAY (24 * 60 * MIN)
#define T0 1700000000000LL

static struct vs_event purchase(int64_t ts, const char *user, const char *device,
                                const char *payment, double amount)
{
    struct vs_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.event_id = "e";
    ev.user_id = user;
    ev.user_id_len = strlen(user);
    ev.type = VS_EVENT_PURCHASE;
    ev.ts = ts;
    ev.device_id = device;
    ev.country = "FR";
    ev.payment_method = payment;
    ev.quantity = 1;
    ev.category_id = "c1";
    ev.has_amount = 1;
    ev.amount = amount;
    return ev;
}

static void init(struct vs_fraud_scorer *sc, int64_t warmup, double review)
{
    struct vs_fraud_policy p;
    memset(&p, 0, sizeof(p));
    p.review_threshold = review;
    p.block_threshold = review + 0.05;
    struct vs_iforest_config fc;
    vs_iforest_config_default(&fc, VS_FRAUD_NFEATURES);
    fc.trees = 50;
    fc.window = 2048;
    char err[256];
    assert_int_equal(vs_fraud_scorer_init(sc, &p, warmup, &fc, NULL, err, sizeof(err)), 0);
}

static void test_invalid_amounts_never_reach_the_forest(void **state)
{
    (void)state;
    struct vs_fraud_scorer *sc = malloc(sizeof(*sc));
    init(sc, 0, 0.65);
    struct vs_fraud_section s;
    memset(&s, 0, sizeof(s));
    struct vs_fraud_verdict v;
    const double bad[3] = {NAN, -5.0, INFINITY};
    for (int i = 0; i < 4; i++) {
        struct vs_event ev = purchase(T0 + i * MIN, "u1", "d1", "card1", i < 3 ? bad[i] : 10);
        ev.has_amount = i < 3;
        assert_int_equal(vs_fraud_scorer_judge(sc, &s, &ev, &v), VS_EINVAL);
        vs_fraud_scorer_observe(sc, &s, &ev);
    }
    assert_int_equal(vs_iforest_learned(sc->forest), 0);
    assert_int_equal(sc->quantiles.seen, 0);
    assert_int_equal(s.purchases, 0);
    assert_true(s.first_seen == T0); /* the context is remembered */

    struct vs_event ok = purchase(T0 + 10 * MIN, "u1", "d1", "card1", 10);
    assert_int_equal(vs_fraud_scorer_judge(sc, &s, &ok, &v), 0);
    vs_fraud_scorer_learn(sc, &s, &ok, &v, 7, 1);
    assert_int_equal(vs_iforest_learned(sc->forest), 1);
    assert_int_equal(s.purchases, 1);
    /* A purchase not to be learned (labelled fraud) still updates the customer. */
    struct vs_event again = purchase(T0 + 20 * MIN, "u1", "d1", "card1", 12);
    assert_int_equal(vs_fraud_scorer_judge(sc, &s, &again, &v), 0);
    vs_fraud_scorer_learn(sc, &s, &again, &v, 8, 0);
    assert_int_equal(vs_iforest_learned(sc->forest), 1);
    assert_int_equal(s.purchases, 2);
    vs_fraud_scorer_release(sc);
    free(sc);
}

/* A small shop of regular customers, one purchase a week each, through the scorer. */
static void regular_shop(struct vs_fraud_scorer *sc, struct vs_fraud_section *secs, int customers,
                         int weeks, uint64_t *rng, int64_t *alerts, int64_t *judged,
                         int64_t *scored)
{
    char user[16], dev[16], card[16];
    for (int w = 0; w < weeks; w++) {
        for (int u = 0; u < customers; u++) {
            snprintf(user, sizeof(user), "u%d", u);
            snprintf(dev, sizeof(dev), "d%d", u);
            snprintf(card, sizeof(card), "card%d", u);
            *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
            int64_t t = T0 + w * 7 * DAY + (int64_t)(*rng >> 40) % (2 * DAY);
            double amount = (20 + (u % 10) * 6) * (0.8 + 0.4 * (double)(*rng >> 11 & 1023) / 1023);
            struct vs_event ev = purchase(t, user, dev, card, amount);
            struct vs_fraud_verdict v;
            assert_int_equal(vs_fraud_scorer_judge(sc, &secs[u], &ev, &v), 0);
            assert_true(v.score >= 0 && v.score <= 1);
            /* The decision is the policy's on the score. */
            enum vs_fraud_decision want = !v.scored               ? VS_FRAUD_ALLOW
                                          : v.score >= sc->block  ? VS_FRAUD_BLOCK
                                          : v.score >= sc->review ? VS_FRAUD_REVIEW
                                                                  : VS_FRAUD_ALLOW;
            assert_int_equal(v.decision, want);
            *alerts += v.decision != VS_FRAUD_ALLOW;
            *scored += v.scored;
            ++*judged;
            vs_fraud_scorer_learn(sc, &secs[u], &ev, &v, (uint64_t)(*judged), 1);
        }
    }
}

static void test_warmup_and_card_testing(void **state)
{
    (void)state;
    enum { CUSTOMERS = 200 };
    struct vs_fraud_scorer *sc = malloc(sizeof(*sc));
    init(sc, 1000, 0.65);
    struct vs_fraud_section *secs = calloc(CUSTOMERS, sizeof(*secs));
    int64_t alerts = 0, judged = 0, scored = 0;
    uint64_t rng = 42;
    regular_shop(sc, secs, CUSTOMERS, 4, &rng, &alerts, &judged, &scored);
    /* 800 purchases: still warming up, nothing decided by score. */
    assert_int_equal(scored, 0);
    assert_int_equal(alerts, 0);
    regular_shop(sc, secs, CUSTOMERS, 16, &rng, &alerts, &judged, &scored);
    assert_true(scored >= judged - 1000);
    assert_true(alerts * 20 < scored); /* regular customers are rarely alerted */

    /* Card testing on customer 3: a new device, a new card each time, cheap, within minutes.
     * Judged with explanations (the operator's fraud.emit=all): the score and the
     * contributions are those of a separate explaining walk of the same forest. */
    sc->explain = 1;
    int64_t t = T0 + 20 * 7 * DAY;
    int caught = 0;
    char card[16];
    for (int i = 0; i < 10; i++) {
        snprintf(card, sizeof(card), "stolen%d", i);
        struct vs_event ev = purchase(t + i * 20000, "u3", "bot", card, 1.5);
        struct vs_fraud_verdict v;
        assert_int_equal(vs_fraud_scorer_judge(sc, &secs[3], &ev, &v), 0);
        assert_true(v.explained);
        double s2, c2[VS_FRAUD_NFEATURES], shortening = 0;
        assert_int_equal(vs_iforest_score(sc->forest, v.x, &s2, c2), 0);
        assert_true(s2 == v.score);
        assert_memory_equal(c2, v.contrib, sizeof(c2));
        for (int f = 0; f < VS_FRAUD_NFEATURES; f++) {
            shortening += v.contrib[f];
        }
        /* The contributions divide the path shortening 1 - E[h]/c(n) = 1 + log2(score). */
        assert_true(fabs(shortening - (1 + log2(v.score))) < 1e-6);
        caught += v.decision != VS_FRAUD_ALLOW;
        vs_fraud_scorer_learn(sc, &secs[3], &ev, &v, 1000000 + (uint64_t)i, 1);
    }
    assert_true(caught >= 8);
    vs_fraud_scorer_release(sc);
    free(secs);
    free(sc);
}

static void test_shared_config_keys(void **state)
{
    (void)state;
    /* The decision keys the operator and the bench share parse as their types say. */
    static const struct vs_config_key keys[] = {VS_FRAUD_SCORER_CONFIG_KEYS, {NULL, 0, NULL, NULL}};
    int n = 0, warmup = 0;
    for (const struct vs_config_key *k = keys; k->key; k++, n++) {
        char *end;
        double v = strtod(k->def, &end);
        assert_true(*end == '\0' && v >= 0);
        assert_non_null(k->doc);
        if (strcmp(k->key, "fraud.warmup") == 0) {
            warmup = 1;
        }
        if (strstr(k->key, "threshold")) {
            assert_true(v > 0 && v <= 1);
        }
    }
    assert_int_equal(n, 8);
    assert_true(warmup);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_amounts_never_reach_the_forest),
        cmocka_unit_test(test_warmup_and_card_testing),
        cmocka_unit_test(test_shared_config_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
