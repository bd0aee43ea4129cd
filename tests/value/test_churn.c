/*
 * Tests of the churn operator's decisions without an engine: the action table and the solved
 * check time (P(alive) at the timer equals the threshold; one-time buyers by the gap rule).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <valuestream/error.h>

#include "operators/churn/churn.h"

#define DAY 86400000LL

static void test_actions(void **state)
{
    char err[256];
    struct vs_tiers t;
    assert_int_equal(vs_tiers_parse("0.01,0.1", &t, err, sizeof err), 0);
    struct vs_churn_actions a;
    assert_int_equal(vs_churn_actions_parse("top1:At Risk=retention_offer; top1:*=call;"
                                            "*:Lost=none;rest:Can't Lose Them=winback;*:*=email",
                                            &t, &a, err, sizeof err),
                     0);
    assert_string_equal(a.action[0][VS_SEG_AT_RISK], "retention_offer");
    assert_string_equal(a.action[0][VS_SEG_LOST], "call"); /* first match wins */
    assert_string_equal(a.action[1][VS_SEG_LOST], "none");
    assert_string_equal(a.action[2][VS_SEG_CANT_LOSE], "winback");
    assert_string_equal(a.action[1][VS_SEG_CANT_LOSE], "email");
    vs_churn_actions_free(&a);

    assert_int_equal(vs_churn_actions_parse("top1:At Risk=x", &t, &a, err, sizeof err), 0);
    assert_string_equal(a.action[2][VS_SEG_AT_RISK], "none"); /* no match */
    vs_churn_actions_free(&a);

    assert_int_equal(vs_churn_actions_parse("top5:*=x", &t, &a, err, sizeof err), VS_ECONFIG);
    assert_non_null(strstr(err, "churn.actions"));
    assert_int_equal(vs_churn_actions_parse("*:Sleepy=x", &t, &a, err, sizeof err), VS_ECONFIG);
    assert_int_equal(vs_churn_actions_parse("top1=x", &t, &a, err, sizeof err), VS_ECONFIG);
    assert_int_equal(vs_churn_actions_parse("*:*=", &t, &a, err, sizeof err), VS_ECONFIG);
    /* The default table parses. */
    assert_int_equal(vs_churn_actions_parse(VS_CHURN_ACTIONS_DEFAULT, &t, &a, err, sizeof err), 0);
    assert_string_equal(a.action[0][VS_SEG_AT_RISK], "personal_call");
    assert_string_equal(a.action[2][VS_SEG_LOST], "none");
    vs_churn_actions_free(&a);
}

/* The priors as the model in force, and a customer first seen on day 10000 with x repeat
 * transaction days, the latest on last_day. */
static void setup(struct vs_value_model *m, struct vs_value_section *s, uint32_t x,
                  int32_t last_day)
{
    memset(m, 0, sizeof *m);
    m->bg = vs_bgnbd_prior;
    memset(s, 0, sizeof *s);
    s->first_day = 10000;
    s->last_day = last_day;
    s->x = x;
    s->purchases = x + 1;
}

static void test_check_time(void **state)
{
    struct vs_value_model m;
    struct vs_value_section s;
    setup(&m, &s, 4, 10070);
    int64_t last_ts = (int64_t)s.last_day * DAY + 5000;
    for (double thr = 0.1; thr < 0.8; thr += 0.1) {
        int64_t at = vs_churn_check_time(&m, &s, thr, 30, last_ts + 1);
        assert_true(at > last_ts);
        double T = (double)(at - (int64_t)s.first_day * DAY) / (7 * DAY);
        double p = vs_bgnbd_p_alive(&m.bg, s.x, 70 / 7.0, T);
        if (vs_bgnbd_p_alive(&m.bg, s.x, 10, 10) > thr) {
            assert_true(fabs(p - thr) < 1e-6);
            double p_before = vs_bgnbd_p_alive(&m.bg, s.x, 10, T - 1.0 / 7);
            assert_true(p_before > thr);
        }
    }
    /* A lower threshold fires later. */
    assert_true(vs_churn_check_time(&m, &s, 0.1, 30, 0) > vs_churn_check_time(&m, &s, 0.3, 30, 0));
    /* More repeat purchases at the same pace: P(alive) falls faster after the last one. */
    struct vs_value_section busy = s;
    busy.x = 20;
    assert_true(vs_churn_check_time(&m, &busy, 0.2, 30, 0) <
                vs_churn_check_time(&m, &s, 0.2, 30, 0));

    /* One-time buyers: the first day plus the gap; no gap, no check. */
    struct vs_value_section once;
    memset(&once, 0, sizeof once);
    once.first_day = once.last_day = 10000;
    once.purchases = 1;
    assert_true(vs_churn_check_time(&m, &once, 0.2, 45, 0) == (10000 + 45) * DAY);
    assert_true(vs_churn_check_time(&m, &once, 0.2, 0, 0) == INT64_MAX);
    /* Never before not_before. */
    assert_true(vs_churn_check_time(&m, &once, 0.2, 45, (int64_t)20000 * DAY) ==
                (int64_t)20000 * DAY);
    assert_true(vs_churn_check_time(&m, &s, 1.5, 45, 0) == INT64_MAX);
}

/* Before the first refit the solved moment is provisional: checked again within the
 * provisional period, never later than the moment itself; after it, the moment as solved. */
static void test_timer_time_provisional_before_fit(void **state)
{
    struct vs_value_model m;
    struct vs_value_section s;
    setup(&m, &s, 1, 10014);
    int64_t now = (int64_t)s.last_day * DAY + 1;
    int64_t solved = vs_churn_check_time(&m, &s, 0.2, 0, now);
    assert_true(solved > now + 30 * DAY); /* the priors' slow shop: far out */
    assert_true(vs_churn_timer_time(&m, &s, 0.2, 0, now, 7 * DAY) == now + 7 * DAY);
    /* A moment sooner than the provisional check is kept. */
    assert_true(vs_churn_timer_time(&m, &s, 0.2, 0, now, solved - now + DAY) == solved);
    m.fitted = 1;
    assert_true(vs_churn_timer_time(&m, &s, 0.2, 0, now, 7 * DAY) == solved);
    /* No check due stays no check, fitted or not. */
    m.fitted = 0;
    assert_true(vs_churn_timer_time(&m, &s, 1.5, 0, now, 7 * DAY) == INT64_MAX);
    struct vs_value_section once = s;
    once.x = 0;
    once.last_day = once.first_day;
    assert_true(vs_churn_timer_time(&m, &once, 0.2, 0, now, 7 * DAY) == INT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_check_time),
        cmocka_unit_test(test_timer_time_provisional_before_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
