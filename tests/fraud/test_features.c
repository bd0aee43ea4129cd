/*
 * Unit tests of the purchase features (operators/fraud/features.h) and the decision policy
 * (operators/fraud/policy.h): poisoned amounts rejected, the planted fraud patterns visible in the
 * features, bounded state, category prices, score quantiles and hard rules.
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

#include <valuestream/error.h>

#include "operators/fraud/features.h"
#include "operators/fraud/iforest.h"
#include "operators/fraud/policy.h"

#define MIN (60 * 1000LL)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
#define T0 1700000000000LL

static struct vs_event event(enum vs_event_type type, int64_t ts, const char *device,
                             const char *country, const char *payment, double amount)
{
    struct vs_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.event_id = "e";
    ev.user_id = "u1";
    ev.user_id_len = 2;
    ev.type = type;
    ev.ts = ts;
    ev.device_id = device;
    ev.country = country;
    ev.payment_method = payment;
    ev.quantity = 1;
    ev.category_id = "shoes";
    if (type == VS_EVENT_PURCHASE) {
        ev.has_amount = 1;
        ev.amount = amount;
    } else if (amount > 0) {
        ev.has_price = 1;
        ev.price = amount;
    }
    return ev;
}

/* A purchase: features from the state before, then the state learns it. */
static void buy(struct vs_fraud_section *s, struct vs_fraud_categories *c, struct vs_event ev,
                double *x)
{
    assert_int_equal(vs_fraud_features(s, c, &ev, x), 0);
    for (int f = 0; f < VS_FRAUD_NFEATURES; f++) {
        assert_true(isfinite(x[f]));
    }
    vs_fraud_observe(s, c, &ev, x);
}

static void test_poisoned_amounts_rejected(void **state)
{
    (void)state;
    struct vs_fraud_section s;
    memset(&s, 0, sizeof(s));
    double x[VS_FRAUD_NFEATURES];
    struct vs_event ev = event(VS_EVENT_PURCHASE, T0, "d1", "FR", "card1", 10);
    const double bad[3] = {NAN, -1.0, INFINITY};
    for (int i = 0; i < 3; i++) {
        ev.amount = bad[i];
        assert_int_equal(vs_fraud_features(&s, NULL, &ev, x), VS_EINVAL);
    }
    ev.amount = 10;
    ev.has_amount = 0;
    assert_int_equal(vs_fraud_features(&s, NULL, &ev, x), VS_EINVAL);
    /* Skipped purchases only leave their context behind: no amount statistics. */
    vs_fraud_observe(&s, NULL, &ev, NULL);
    assert_int_equal(s.purchases, 0);
    assert_true(s.amount_mean == 0.0);
    assert_int_equal(s.devices[0].hash != 0, 1);
}

static void test_regular_customer(void **state)
{
    (void)state;
    struct vs_fraud_section s;
    memset(&s, 0, sizeof(s));
    struct vs_fraud_categories *c = calloc(1, sizeof(*c));
    double x[VS_FRAUD_NFEATURES], usual;
    assert_int_equal(vs_fraud_usual(&s, VS_FF_AMOUNT, &usual), -1);

    vs_fraud_observe(&s, c, &(struct vs_event){0}, NULL); /* an empty event is harmless */
    memset(&s, 0, sizeof(s));
    struct vs_event v = event(VS_EVENT_VIEW, T0, "d1", "FR", NULL, 40);
    vs_fraud_observe(&s, c, &v, NULL);
    struct vs_event cart = event(VS_EVENT_ADD_TO_CART, T0 + 2 * MIN, "d1", "FR", NULL, 40);
    vs_fraud_observe(&s, c, &cart, NULL);
    buy(&s, c, event(VS_EVENT_PURCHASE, T0 + 5 * MIN, "d1", "FR", "card1", 40), x);
    assert_true(x[VS_FF_SINCE_PURCHASE] == -1.0);
    assert_true(fabs(x[VS_FF_CART_TO_BUY] - log1p(180.0)) < 1e-9);
    assert_true(x[VS_FF_AMOUNT_VS_MEAN] == 0.0);
    /* Everything is new to a customer first seen 5 minutes ago: no sign of anything. */
    assert_true(x[VS_FF_NEW_DEVICE] == 0.0 && x[VS_FF_NEW_PAYMENT] == 0.0);

    /* Weeks of ordinary purchases from the same device, country and card. */
    for (int i = 1; i <= 10; i++) {
        int64_t t = T0 + i * 7 * DAY;
        vs_fraud_observe(&s, c, &(struct vs_event){.type = VS_EVENT_ADD_TO_CART, .ts = t - MIN},
                         NULL);
        buy(&s, c, event(VS_EVENT_PURCHASE, t, "d1", "FR", "card1", 35 + i), x);
    }
    assert_true(x[VS_FF_NEW_DEVICE] == 0.0 && x[VS_FF_NEW_COUNTRY] == 0.0 &&
                x[VS_FF_NEW_PAYMENT] == 0.0);
    assert_true(x[VS_FF_PURCHASES_10M] < 1.01 && x[VS_FF_DEVICES_24H] == 1.0);
    assert_true(fabs(x[VS_FF_AMOUNT_Z]) < 2.0);
    assert_true(fabs(x[VS_FF_SINCE_PURCHASE] - log1p(7 * 86400.0)) < 1e-9);
    assert_int_equal(vs_fraud_usual(&s, VS_FF_AMOUNT, &usual), 0);
    assert_true(usual > 38 && usual < 42);
    assert_int_equal(s.purchases, 11);

    /* Account takeover: new country, new device, five times the usual amount, no browsing. */
    int64_t t = T0 + 80 * DAY;
    buy(&s, c, event(VS_EVENT_PURCHASE, t, "evil", "RU", "card1", 200), x);
    /* The new device weighs the 11 purchases made without it. */
    assert_true(x[VS_FF_NEW_COUNTRY] == 1.0 && fabs(x[VS_FF_NEW_DEVICE] - log1p(11.0)) < 1e-9);
    assert_true(x[VS_FF_COUNTRIES_10M] == 1.0);
    assert_true(x[VS_FF_AMOUNT_Z] > 5.0);
    assert_true(x[VS_FF_AMOUNT_VS_MEAN] > 1.5);
    assert_true(x[VS_FF_CART_TO_BUY] == -1.0);
    free(c);
}

static void test_card_testing_burst(void **state)
{
    (void)state;
    struct vs_fraud_section s;
    memset(&s, 0, sizeof(s));
    double x[VS_FRAUD_NFEATURES];
    buy(&s, NULL, event(VS_EVENT_PURCHASE, T0, "d1", "FR", "card1", 60), x);
    int64_t t = T0 + 30 * DAY;
    double last_count = 0;
    char card[16];
    double last_new = 0;
    for (int i = 0; i < 8; i++) {
        snprintf(card, sizeof(card), "stolen%d", i % 3);
        buy(&s, NULL, event(VS_EVENT_PURCHASE, t + i * 20000, "bot", "FR", card, 2.5), x);
        assert_true(x[VS_FF_PURCHASES_10M] > last_count); /* grows with the burst */
        last_count = x[VS_FF_PURCHASES_10M];
        /* still new within the hour, and the more telling the more the customer bought */
        assert_true(x[VS_FF_NEW_DEVICE] > last_new);
        last_new = x[VS_FF_NEW_DEVICE];
    }
    assert_true(last_count > 7.0);
    assert_true(x[VS_FF_PAYMENTS_10M] == 3.0);
    assert_true(x[VS_FF_SINCE_PURCHASE] < log1p(21.0));
    assert_true(x[VS_FF_AMOUNT_VS_MEAN] < -1.0);

    /* The sets stay bounded whatever the number of devices. */
    for (int i = 0; i < 100; i++) {
        char dev[16];
        snprintf(dev, sizeof(dev), "dev%d", i);
        buy(&s, NULL, event(VS_EVENT_PURCHASE, t + DAY + i * 1000, dev, "FR", "card1", 5), x);
        assert_true(x[VS_FF_DEVICES_10M] <= VS_FRAUD_DEVICE_SLOTS + 1);
    }
    assert_true(x[VS_FF_DEVICES_10M] >= VS_FRAUD_DEVICE_SLOTS);
}

static void test_category_prices(void **state)
{
    (void)state;
    struct vs_fraud_categories *c = calloc(1, sizeof(*c)), *d = calloc(1, sizeof(*d));
    assert_true(vs_fraud_categories_typical(c, "books") == 0.0);
    for (int i = 0; i < 50; i++) {
        vs_fraud_categories_learn(c, "books", i % 2 ? 10.0 : 40.0);
    }
    vs_fraud_categories_learn(c, "books", NAN);
    vs_fraud_categories_learn(c, NULL, 5.0);
    double typical = vs_fraud_categories_typical(c, "books");
    assert_true(typical > 17 && typical < 23); /* about the geometric mean, 20 */

    struct vs_fraud_section s;
    memset(&s, 0, sizeof(s));
    double x[VS_FRAUD_NFEATURES];
    struct vs_event ev = event(VS_EVENT_PURCHASE, T0, "d", "FR", "c", 400);
    ev.category_id = "books";
    assert_int_equal(vs_fraud_features(&s, c, &ev, x), 0);
    assert_true(fabs(x[VS_FF_PRICE_VS_CATEGORY] - log(400 / typical)) < 1e-9);
    ev.quantity = 20; /* 20 items of 20 each: an ordinary price */
    assert_int_equal(vs_fraud_features(&s, c, &ev, x), 0);
    assert_true(fabs(x[VS_FF_PRICE_VS_CATEGORY]) < 0.2);

    size_t len = vs_fraud_categories_size();
    uint8_t *buf = malloc(len);
    assert_int_equal(vs_fraud_categories_write(c, buf, len), (long)len);
    assert_int_equal(vs_fraud_categories_read(d, buf, len), 0);
    assert_true(vs_fraud_categories_typical(d, "books") == typical);
    buf[0] ^= 1;
    assert_int_equal(vs_fraud_categories_read(d, buf, len), VS_ECORRUPT);
    free(buf);
    free(c);
    free(d);
}

static void test_quantiles_and_rules(void **state)
{
    (void)state;
    struct vs_fraud_quantiles *q = malloc(sizeof(*q));
    vs_fraud_quantiles_init(q);
    assert_true(vs_fraud_quantiles_upper(q, 0.01) == 1.0);
    for (int i = 0; i < 20000; i++) {
        vs_fraud_quantiles_add(q, (i % 1000) / 1000.0);
    }
    assert_true(fabs(vs_fraud_quantiles_upper(q, 0.1) - 0.9) < 0.01);
    assert_true(fabs(vs_fraud_quantiles_upper(q, 0.01) - 0.99) < 0.01);
    /* Older scores fade: after a shift, the threshold follows. */
    for (int i = 0; i < 60000; i++) {
        vs_fraud_quantiles_add(q, 0.2 + (i % 100) / 1000.0);
    }
    assert_true(vs_fraud_quantiles_upper(q, 0.1) < 0.35);

    struct vs_fraud_policy p = {
        .review_threshold = 0.6, .block_threshold = 0.7, .max_amount = 1000, .velocity_10m = 5};
    double review, block;
    vs_fraud_thresholds(&p, q, &review, &block);
    assert_true(review == 0.6 && block == 0.7);
    unsigned rules;
    assert_int_equal(vs_fraud_decide(&p, review, block, 0.5, 1, 10, 1, 1, &rules), VS_FRAUD_ALLOW);
    assert_int_equal(vs_fraud_decide(&p, review, block, 0.65, 1, 10, 1, 1, &rules),
                     VS_FRAUD_REVIEW);
    assert_int_equal(vs_fraud_decide(&p, review, block, 0.75, 1, 10, 1, 1, &rules), VS_FRAUD_BLOCK);
    assert_int_equal(rules, 0);
    /* Before the forest is warm, only the hard rules decide. */
    assert_int_equal(vs_fraud_decide(&p, review, block, 0.9, 0, 10, 1, 1, &rules), VS_FRAUD_ALLOW);
    assert_int_equal(vs_fraud_decide(&p, review, block, 0.1, 0, 5000, 1, 1, &rules),
                     VS_FRAUD_BLOCK);
    assert_int_equal(rules, VS_FRAUD_RULE_MAX_AMOUNT);
    assert_int_equal(vs_fraud_decide(&p, review, block, 0.1, 1, 10, 6.5, 7, &rules),
                     VS_FRAUD_BLOCK);
    assert_int_equal(rules, VS_FRAUD_RULE_VELOCITY_10M);

    p.review_rate = 0.1;
    vs_fraud_thresholds(&p, q, &review, &block);
    assert_true(review < 0.35 && block == 0.7);

    size_t len = vs_fraud_quantiles_size();
    uint8_t *buf = malloc(len);
    struct vs_fraud_quantiles *r = malloc(sizeof(*r));
    assert_int_equal(vs_fraud_quantiles_write(q, buf, len), (long)len);
    assert_int_equal(vs_fraud_quantiles_read(r, buf, len), 0);
    assert_true(vs_fraud_quantiles_upper(r, 0.05) == vs_fraud_quantiles_upper(q, 0.05));
    free(buf);
    free(q);
    free(r);
}

/*
 * End to end without the engine: customers who buy from home, then a takeover and a card-testing
 * burst; the forest on these features scores both above 99% of the ordinary purchases of the
 * last weeks, and the top contribution of the takeover is one of its telltale features.
 */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void test_fraud_stands_out(void **state)
{
    (void)state;
    enum { CUSTOMERS = 300 };
    struct vs_fraud_section *secs = calloc(CUSTOMERS, sizeof(*secs));
    struct vs_fraud_categories *c = calloc(1, sizeof(*c));
    struct vs_iforest_config fc;
    vs_iforest_config_default(&fc, VS_FRAUD_NFEATURES);
    fc.trees = 60;
    fc.window = 2048;
    char err[256], dev[16], cty[8], card[16];
    struct vs_iforest *f = vs_iforest_new(&fc, err, sizeof(err));
    assert_non_null(f);
    enum { MAX_NORMAL = 4096 };
    double x[VS_FRAUD_NFEATURES], score, *normal = malloc(MAX_NORMAL * sizeof(double));
    int nnormal = 0;
    uint64_t rng = 42;
    for (int day = 0; day < 60; day++) {
        for (int u = 0; u < CUSTOMERS; u++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            if ((rng >> 33) % 7 != 0) {
                continue; /* about one purchase a week */
            }
            int64_t t = T0 + day * DAY + (int64_t)(u * 997 % 1440) * MIN;
            snprintf(dev, sizeof(dev), "d%d", u);
            snprintf(cty, sizeof(cty), "C%d", u % 5);
            snprintf(card, sizeof(card), "card%d", u);
            struct vs_event cart = event(VS_EVENT_ADD_TO_CART, t - 3 * MIN, dev, cty, NULL, 0);
            vs_fraud_observe(&secs[u], c, &cart, NULL);
            double amount = 20 + (u % 10) * 8 + (double)((rng >> 40) % 10);
            struct vs_event ev = event(VS_EVENT_PURCHASE, t, dev, cty, card, amount);
            assert_int_equal(vs_fraud_features(&secs[u], c, &ev, x), 0);
            assert_int_equal(vs_iforest_score(f, x, &score, NULL), 0);
            if (day >= 45 && nnormal < MAX_NORMAL) {
                normal[nnormal++] = score;
            }
            assert_int_equal(vs_iforest_learn(f, x), 0);
            vs_fraud_observe(&secs[u], c, &ev, x);
        }
    }
    qsort(normal, (size_t)nnormal, sizeof(double), cmp_double);
    assert_true(nnormal > 500);
    double p99 = normal[nnormal * 99 / 100];
    int64_t t = T0 + 60 * DAY;
    struct vs_event ato = event(VS_EVENT_PURCHASE, t, "evil", "XX", "card7", 900);
    assert_int_equal(vs_fraud_features(&secs[7], c, &ato, x), 0);
    double contrib[VS_FRAUD_NFEATURES];
    assert_int_equal(vs_iforest_score(f, x, &score, contrib), 0);
    assert_true(score > p99);
    int best = 0;
    for (int k = 1; k < VS_FRAUD_NFEATURES; k++) {
        best = contrib[k] > contrib[best] ? k : best;
    }
    assert_true(best == VS_FF_AMOUNT || best == VS_FF_LOG_AMOUNT || best == VS_FF_AMOUNT_Z ||
                best == VS_FF_AMOUNT_VS_MEAN || best == VS_FF_NEW_COUNTRY ||
                best == VS_FF_NEW_DEVICE || best == VS_FF_CART_TO_BUY ||
                best == VS_FF_PRICE_VS_CATEGORY);

    for (int i = 0; i < 6; i++) {
        struct vs_event ct = event(VS_EVENT_PURCHASE, t + i * 15000, "bot", "C3", "t1", 1.5);
        assert_int_equal(vs_fraud_features(&secs[3], c, &ct, x), 0);
        assert_int_equal(vs_iforest_score(f, x, &score, NULL), 0);
        vs_fraud_observe(&secs[3], c, &ct, x);
        if (i >= 2) {
            assert_true(score > p99);
        }
    }
    vs_iforest_free(f);
    free(normal);
    free(secs);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poisoned_amounts_rejected), cmocka_unit_test(test_regular_customer),
        cmocka_unit_test(test_card_testing_burst),        cmocka_unit_test(test_category_prices),
        cmocka_unit_test(test_quantiles_and_rules),       cmocka_unit_test(test_fraud_stands_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
