/*
 * Tests of the value operator's model side without an engine: how purchases and refunds change
 * a customer's section, that the population aggregate always equals the sum over customers
 * (also after a save and load), and that a refit from the aggregate gives what the
 * `clv fit` path gives on the same purchases.
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

#include "operators/value/clv_cli.h"
#include "operators/value/value_state.h"

#define DAY 86400000LL

static struct vs_value_core *core_new(void)
{
    struct vs_value_core *c = malloc(sizeof *c);
    struct vs_tiers t;
    char err[128];
    assert_int_equal(vs_tiers_parse("0.01,0.1", &t, err, sizeof err), 0);
    assert_int_equal(vs_value_core_init(c, 365, 0.01, &t, 1, 1000), 0);
    return c;
}

static void core_free(struct vs_value_core *c)
{
    vs_value_core_destroy(c);
    free(c);
}

static void test_purchase_rules(void **state)
{
    struct vs_value_core *c = core_new();
    struct vs_value_section s;
    memset(&s, 0, sizeof s);
    int64_t d0 = 18000 * DAY;
    assert_int_equal(vs_value_purchase(c, &s, d0 + 1000, 1, 10, d0 + 1000), 0);
    assert_int_equal(vs_value_purchase(c, &s, d0 + 5000, 1, 5, d0 + 5000), 0); /* same day */
    assert_int_equal(s.x, 0);
    assert_true(s.total_spend == 15 && s.first_day_spend == 15);
    assert_true(s.p_alive == 1.0); /* BG/NBD: x = 0 */
    assert_true(s.scored_ts != 0 && s.clv > 0);

    assert_int_equal(vs_value_purchase(c, &s, d0 + 7 * DAY, 1, 20, d0 + 7 * DAY), 0);
    assert_int_equal(vs_value_purchase(c, &s, d0 + 7 * DAY + 10, 1, 4, d0 + 7 * DAY + 10), 0);
    assert_int_equal(s.x, 1);
    assert_int_equal(s.paid_repeats, 1);
    assert_true(vs_value_m_x(&s) == 24);

    /* Unpriced purchases are transactions, not spend. */
    assert_int_equal(vs_value_purchase(c, &s, d0 + 14 * DAY, 0, 0, d0 + 14 * DAY), 0);
    assert_int_equal(vs_value_purchase(c, &s, d0 + 15 * DAY, 1, -3, d0 + 15 * DAY), 0);
    assert_int_equal(s.x, 3);
    assert_int_equal(s.paid_repeats, 1);
    assert_int_equal(s.unpriced, 2);
    assert_int_equal(*c->counters.unpriced, 2);
    assert_true(s.total_spend == 39);
    /* A priced purchase later on an unpriced day makes that day a paid one. */
    assert_int_equal(vs_value_purchase(c, &s, d0 + 15 * DAY + 50, 1, 6, d0 + 15 * DAY + 50), 0);
    assert_int_equal(s.x, 3);
    assert_int_equal(s.paid_repeats, 2);
    assert_true(vs_value_m_x(&s) == 15);

    /* Late: on a day already counted (day 7), then on a new day in between (day 10). */
    int64_t now = d0 + 16 * DAY;
    assert_int_equal(vs_value_purchase(c, &s, d0 + 7 * DAY + 99, 1, 6, now), 0);
    assert_int_equal(s.x, 3);
    assert_int_equal(vs_value_purchase(c, &s, d0 + 10 * DAY, 1, 10, now), 0);
    assert_int_equal(s.x, 4);
    assert_int_equal(s.out_of_order, 2);
    assert_int_equal(s.last_day, 18015);

    /* Before the first purchase: the old first day becomes a repeat day. */
    assert_int_equal(vs_value_purchase(c, &s, d0 - 3 * DAY, 1, 8, now), 0);
    assert_int_equal(s.first_day, 17997);
    assert_int_equal(s.x, 5);
    assert_int_equal(s.paid_repeats, 4); /* day 0 (15) joined the repeat days */
    assert_int_equal(*c->counters.before_first, 1);
    assert_true(s.first_purchase_ts == d0 - 3 * DAY);

    /* Refunds reduce spend, never below zero. */
    double before = s.total_spend;
    assert_int_equal(vs_value_refund(c, &s, 1, 10, now), 0);
    assert_true(s.total_spend == before - 10);
    assert_int_equal(vs_value_refund(c, &s, 1, 1e9, now), 0);
    assert_true(s.total_spend == 0);
    assert_int_equal(*c->counters.refunds_clamped, 1);
    assert_int_equal(s.refunds, 2);
    assert_int_equal(vs_population_customers(c->pop), 1);
    assert_int_equal(c->monetary.total, 1);
    core_free(c);
}

static void test_day_before_1970(void **state)
{
    assert_int_equal(vs_value_day(0), 0);
    assert_int_equal(vs_value_day(DAY - 1), 0);
    assert_int_equal(vs_value_day(-1), -1);
    assert_int_equal(vs_value_day(-DAY), -1);
    assert_int_equal(vs_value_day(-DAY - 1), -2);
}

/* ==== The aggregate equals the sum over customers ==== */

static uint64_t rng = 1234;
static double urand(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((rng >> 11) + 0.5) / 9007199254740992.0;
}

static int row_cmp(const void *pa, const void *pb)
{
    const struct vs_bgnbd_row *a = pa, *b = pb;
    if (a->x != b->x) {
        return a->x < b->x ? -1 : 1;
    }
    if (a->T != b->T) {
        return a->T < b->T ? -1 : 1;
    }
    return (a->t_x > b->t_x) - (a->t_x < b->t_x);
}

/* Expand weighted rows into one row per customer, sorted. */
static struct vs_bgnbd_row *expand(const struct vs_bgnbd_row *rows, size_t n, size_t *out)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += (size_t)rows[i].weight;
    }
    struct vs_bgnbd_row *e = malloc((total ? total : 1) * sizeof *e);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        for (int w = 0; w < (int)rows[i].weight; w++) {
            e[k] = rows[i];
            e[k++].weight = 1;
        }
    }
    qsort(e, k, sizeof *e, row_cmp);
    *out = k;
    return e;
}

static void check_snapshot(const struct vs_value_core *c, const struct vs_value_section *s,
                           size_t n, int64_t now)
{
    struct vs_bgnbd_row *bg;
    struct vs_gg_row *gg;
    size_t nbg, ngg;
    assert_int_equal(vs_value_snapshot(c, now, &bg, &nbg, &gg, &ngg), 0);
    size_t ne;
    struct vs_bgnbd_row *got = expand(bg, nbg, &ne);
    struct vs_bgnbd_row *want = malloc(n * sizeof *want);
    size_t k = 0, spenders = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i].purchases == 0) {
            continue;
        }
        double tx = (s[i].last_day - s[i].first_day) / 7.0;
        double T = ((double)now / DAY - s[i].first_day) / 7;
        want[k++] =
            (struct vs_bgnbd_row){.x = s[i].x, .t_x = tx, .T = T > tx ? T : tx, .weight = 1};
        spenders += s[i].paid_repeats > 0;
    }
    qsort(want, k, sizeof *want, row_cmp);
    assert_int_equal(ne, k);
    for (size_t i = 0; i < k; i++) {
        assert_true(got[i].x == want[i].x);
        assert_true(fabs(got[i].t_x - want[i].t_x) < 1e-9);
        assert_true(fabs(got[i].T - want[i].T) < 1e-9);
    }
    double w = 0;
    for (size_t i = 0; i < ngg; i++) {
        w += gg[i].weight;
    }
    assert_true(w == (double)spenders);
    free(got);
    free(want);
    free(bg);
    free(gg);
}

static void test_population_matches_customers(void **state)
{
    struct vs_value_core *c = core_new();
    size_t n = 3000;
    struct vs_value_section *s = calloc(n, sizeof *s);
    int64_t t0 = 19000 * DAY, now = t0;
    for (int e = 0; e < 30000; e++) {
        size_t i = (size_t)(urand() * urand() * n); /* some customers buy much more */
        now += (int64_t)(urand() * 0.02 * DAY);
        int64_t ts = now - (urand() < 0.05 ? (int64_t)(urand() * 90 * DAY) : 0);
        double u = urand();
        if (u < 0.05) {
            vs_value_refund(c, &s[i], 1, urand() * 50, now);
        } else {
            vs_value_purchase(c, &s[i], ts, u > 0.1, 5 + 100 * urand(), now);
        }
    }
    check_snapshot(c, s, n, now + 3 * DAY);

    /* Save every page and load them into a fresh aggregate: the same population. */
    struct vs_value_core *d = core_new();
    for (int p = 0; p < VS_POP_PAGES; p++) {
        void *buf;
        size_t len;
        assert_int_equal(vs_population_page_encode(c->pop, p, &buf, &len), 0);
        assert_int_equal(vs_population_page_decode(d->pop, p, buf, len), 0);
        free(buf);
    }
    assert_int_equal(vs_population_customers(d->pop), vs_population_customers(c->pop));
    assert_int_equal(vs_population_cells(d->pop), vs_population_cells(c->pop));
    d->recency = c->recency; /* histograms travel in the model blob */
    check_snapshot(d, s, n, now + 3 * DAY);
    /* A page of the wrong size or another page's cells is refused. */
    char junk[33] = {0};
    assert_int_equal(vs_population_page_decode(d->pop, 0, junk, sizeof junk), VS_ECORRUPT);

    /* Every customer removed again: the aggregate is empty. */
    for (size_t i = 0; i < n; i++) {
        if (s[i].purchases == 0) {
            continue;
        }
        int32_t f = s[i].first_day, l = s[i].last_day;
        assert_int_equal(vs_population_bg_add(c->pop, s[i].x, f, l, -1), 0);
        if (s[i].paid_repeats > 0) {
            assert_int_equal(
                vs_population_gg_add(c->pop, s[i].paid_repeats, vs_value_m_x(&s[i]), -1), 0);
        }
    }
    assert_int_equal(vs_population_customers(c->pop), 0);
    assert_int_equal(vs_population_cells(c->pop), 0);
    assert_int_equal(vs_population_bg_add(c->pop, 1, 5, 6, -1), VS_ENOTFOUND);
    free(s);
    core_free(c);
    core_free(d);
}

/* Purchases of the CDNOW sample streamed through the operator's state: the refit from the
 * aggregate equals the `clv fit` result on the same file. */
static void test_stream_refit_equals_cli(void **state)
{
    FILE *fp = fopen("../shared/data/cdnow/CDNOW_sample.txt", "r");
    assert_non_null(fp);
    int32_t end = vs_txlog_parse_day("1997-09-30");
    struct vs_value_core *c = core_new();
    struct vs_value_section *s = calloc(3000, sizeof *s);
    char line[256];
    int64_t clock = 0;
    while (fgets(line, sizeof line, fp)) {
        int master, id, ymd, cds;
        double amount;
        assert_int_equal(sscanf(line, "%d %d %d %d %lf", &master, &id, &ymd, &cds, &amount), 5);
        char date[16];
        snprintf(date, sizeof date, "%d", ymd);
        int32_t day = vs_txlog_parse_day(date);
        if (day > end) {
            continue;
        }
        int64_t ts = (int64_t)day * DAY + 3600000;
        clock = ts > clock ? ts : clock;
        assert_int_equal(vs_value_purchase(c, &s[id], ts, 1, amount, clock), 0);
    }
    fclose(fp);
    struct vs_bgnbd_row *bg;
    struct vs_gg_row *gg;
    size_t nbg, ngg;
    assert_int_equal(vs_value_snapshot(c, (int64_t)end * DAY, &bg, &nbg, &gg, &ngg), 0);
    struct vs_clv_fit stream;
    vs_clv_fit_init(&stream);
    assert_int_equal(vs_clv_refit(bg, nbg, gg, ngg, &stream), 0);
    free(bg);
    free(gg);

    char err[256];
    struct vs_clv_dataset *ds =
        vs_clv_dataset_load("../shared/data/cdnow/CDNOW_sample.txt", VS_TXLOG_CDNOW_SAMPLE, end,
                            INT32_MAX, err, sizeof err);
    assert_non_null(ds);
    struct vs_clv_fit cli;
    vs_clv_fit_init(&cli);
    assert_int_equal(vs_clv_dataset_fit(ds, &cli), 0);
    assert_true(fabs(stream.bg.r - cli.bg.r) < 1e-6 * cli.bg.r);
    assert_true(fabs(stream.bg.alpha - cli.bg.alpha) < 1e-6 * cli.bg.alpha);
    assert_true(fabs(stream.bg.a - cli.bg.a) < 1e-6 * cli.bg.a);
    assert_true(fabs(stream.bg.b - cli.bg.b) < 1e-6 * cli.bg.b);
    assert_true(fabs(stream.bg.loglik - cli.bg.loglik) < 1e-6);
    /* Spend goes through 0.5% bins with exact means: within a few hundredths of a percent. */
    assert_true(fabs(stream.gg.p - cli.gg.p) < 5e-4 * cli.gg.p);
    assert_true(fabs(stream.gg.q - cli.gg.q) < 5e-4 * cli.gg.q);
    assert_true(fabs(stream.gg.gamma - cli.gg.gamma) < 5e-4 * cli.gg.gamma);

    /* After the fit, scores follow the fitted model. */
    vs_value_apply_fit(c, &stream);
    assert_true(c->model.fitted);
    struct vs_value_assessment a;
    vs_value_assess(&c->model, &s[1], (int64_t)end * DAY, &a); /* x=2, t_x=30.43, T=38.86 */
    assert_true(a.x == 2);
    assert_true(fabs(a.p_alive - vs_bgnbd_p_alive(&stream.bg, 2, 213 / 7.0, 272 / 7.0)) < 1e-12);
    assert_true(a.typical_gap_days == 106.5);
    assert_true(a.rfm_r >= 1 && a.rfm_r <= 5 && a.segment >= 0 && a.segment < VS_SEG_COUNT);
    vs_clv_dataset_free(ds);
    free(s);
    core_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_purchase_rules),
        cmocka_unit_test(test_day_before_1970),
        cmocka_unit_test(test_population_matches_customers),
        cmocka_unit_test(test_stream_refit_equals_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
