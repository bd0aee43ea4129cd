/*
 * Tests of the quantile histograms, RFM scores, the `rfm` package's segment rules and tiers.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <valuestream/error.h>

#include "operators/value/rfm.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Log histogram quantiles stay within a bin (2%) of the exact ones of a skewed sample. */
static void test_log_quantiles(void **state)
{
    static struct vs_qhist h;
    vs_qhist_init_log(&h, 0.01, 1e8, VS_QHIST_BINS);
    size_t n = 20000;
    double *v = malloc(n * sizeof *v);
    uint64_t s = 7;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = ((s >> 11) + 0.5) / 9007199254740992.0;
        v[i] = 20 * exp(1.5 * (u - 0.5) * 4); /* log-uniform over a wide range */
        vs_qhist_add(&h, v[i], 1);
    }
    qsort(v, n, sizeof *v, cmp_double);
    for (double q = 0.1; q < 0.95; q += 0.1) {
        double want = v[(size_t)(q * n)];
        double got = vs_qhist_quantile(&h, q);
        assert_true(fabs(got - want) <= 0.025 * want);
    }
    /* Removing everything again leaves an empty histogram. */
    for (size_t i = 0; i < n; i++) {
        vs_qhist_add(&h, v[i], -1);
    }
    assert_int_equal(h.total, 0);
    assert_true(isnan(vs_qhist_quantile(&h, 0.5)));
    free(v);
}

/* A linear histogram slides: old values fold into bin 0 and can still be removed. */
static void test_linear_slide(void **state)
{
    static struct vs_qhist h;
    vs_qhist_init_linear(&h, 0, 1, 100);
    for (int d = 0; d < 50; d++) {
        vs_qhist_add(&h, d, 1);
    }
    assert_true(fabs(vs_qhist_quantile(&h, 0.5) - 25) <= 1);
    vs_qhist_add(&h, 250, 1); /* slides by 151 days */
    assert_int_equal(h.total, 51);
    assert_true(h.lo > 100);
    assert_int_equal(h.counts[0], 50);
    vs_qhist_add(&h, 10, -1); /* old, folded: removed from bin 0 */
    assert_int_equal(h.counts[0], 49);
    assert_true(vs_qhist_quantile(&h, 0.99) > 200);
    /* Removing more than there is never goes negative. */
    for (int i = 0; i < 100; i++) {
        vs_qhist_add(&h, 5, -1);
    }
    assert_int_equal(h.counts[0], 0);
    assert_int_equal(h.total, 1);
}

static void test_scores(void **state)
{
    const double cuts[4] = {1, 2, 3, 4};
    assert_int_equal(vs_rfm_score(0.5, cuts), 1);
    assert_int_equal(vs_rfm_score(1, cuts), 2);
    assert_int_equal(vs_rfm_score(1.5, cuts), 2);
    assert_int_equal(vs_rfm_score(4.01, cuts), 5);
    /* Ties in a discrete population: most customers bought once. */
    static struct vs_qhist h;
    vs_qhist_init_log(&h, 1, 1e5, 512);
    for (int i = 0; i < 700; i++) {
        vs_qhist_add(&h, 1, 1);
    }
    for (int i = 0; i < 200; i++) {
        vs_qhist_add(&h, 2, 1);
    }
    for (int i = 0; i < 100; i++) {
        vs_qhist_add(&h, 10, 1);
    }
    double q[4];
    vs_qhist_quintiles(&h, q);
    assert_int_equal(vs_rfm_score(1, q), 1);
    assert_true(vs_rfm_score(2, q) >= 4);
    assert_int_equal(vs_rfm_score(10, q), 5);
}

/* The rules of rfm_segment() with the package's documented bounds, first match wins. */
static void test_segments(void **state)
{
    assert_int_equal(vs_rfm_segment(5, 5, 5), VS_SEG_CHAMPIONS);
    assert_int_equal(vs_rfm_segment(5, 5, 4), VS_SEG_POTENTIAL_LOYALIST);
    assert_int_equal(vs_rfm_segment(3, 3, 2), VS_SEG_POTENTIAL_LOYALIST);
    assert_int_equal(vs_rfm_segment(2, 2, 2), VS_SEG_LOYAL);
    assert_int_equal(vs_rfm_segment(4, 2, 2), VS_SEG_LOYAL);
    assert_int_equal(vs_rfm_segment(3, 1, 3), VS_SEG_PROMISING);
    assert_int_equal(vs_rfm_segment(5, 1, 1), VS_SEG_NEW);
    assert_int_equal(vs_rfm_segment(4, 3, 1), VS_SEG_NEW);
    assert_int_equal(vs_rfm_segment(1, 3, 4), VS_SEG_CANT_LOSE);
    assert_int_equal(vs_rfm_segment(2, 4, 5), VS_SEG_CANT_LOSE);
    assert_int_equal(vs_rfm_segment(1, 5, 5), VS_SEG_AT_RISK);
    assert_int_equal(vs_rfm_segment(1, 2, 4), VS_SEG_AT_RISK);
    assert_int_equal(vs_rfm_segment(2, 2, 4), VS_SEG_LOYAL); /* Loyal comes first */
    assert_int_equal(vs_rfm_segment(1, 3, 3), VS_SEG_NEED_ATTENTION);
    assert_int_equal(vs_rfm_segment(3, 5, 1), VS_SEG_OTHERS);
    assert_int_equal(vs_rfm_segment(2, 1, 1), VS_SEG_ABOUT_TO_SLEEP);
    assert_int_equal(vs_rfm_segment(3, 1, 2), VS_SEG_ABOUT_TO_SLEEP);
    assert_int_equal(vs_rfm_segment(1, 1, 1), VS_SEG_LOST);
    assert_int_equal(vs_rfm_segment(1, 5, 1), VS_SEG_LOST);
    assert_int_equal(vs_rfm_segment(2, 1, 5), VS_SEG_OTHERS);
    /* Every combination lands somewhere, and names round-trip. */
    for (int r = 1; r <= 5; r++) {
        for (int f = 1; f <= 5; f++) {
            for (int m = 1; m <= 5; m++) {
                int s = vs_rfm_segment(r, f, m);
                assert_true(s >= 0 && s < VS_SEG_COUNT);
                assert_int_equal(vs_rfm_segment_index(vs_rfm_segment_name(s)), s);
            }
        }
    }
    assert_string_equal(vs_rfm_segment_name(VS_SEG_CANT_LOSE), "Can't Lose Them");
    assert_string_equal(vs_rfm_segment_name(99), "Others");
    assert_int_equal(vs_rfm_segment_index("Nobody"), -1);
}

static void test_tiers(void **state)
{
    char err[256];
    struct vs_tiers t;
    assert_int_equal(vs_tiers_parse("0.01,0.1", &t, err, sizeof err), 0);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.name[0], "top1");
    assert_string_equal(t.name[1], "top10");
    assert_string_equal(t.name[2], "rest");
    assert_int_equal(vs_tiers_parse("0.05", &t, err, sizeof err), 0);
    assert_string_equal(t.name[0], "top5");
    assert_int_equal(vs_tiers_parse("0.1,0.01", &t, err, sizeof err), VS_ECONFIG);
    assert_non_null(strstr(err, "value.tiers"));
    assert_int_equal(vs_tiers_parse("1.5", &t, err, sizeof err), VS_ECONFIG);
    assert_int_equal(vs_tiers_parse("0.1;0.2", &t, err, sizeof err), VS_ECONFIG);
    assert_int_equal(vs_tiers_parse("abc", &t, err, sizeof err), VS_ECONFIG);

    /* 1000 customers with CLV 1..1000: top1 from ~990, top10 from ~900. */
    assert_int_equal(vs_tiers_parse("0.01,0.1", &t, err, sizeof err), 0);
    static struct vs_qhist h;
    vs_qhist_init_log(&h, 0.01, 1e8, VS_QHIST_BINS);
    for (int i = 1; i <= 1000; i++) {
        vs_qhist_add(&h, i, 1);
    }
    double thr[VS_TIERS_MAX];
    vs_tier_thresholds(&t, &h, thr);
    assert_true(fabs(thr[0] - 990) < 990 * 0.025);
    assert_true(fabs(thr[1] - 900) < 900 * 0.025);
    assert_int_equal(vs_tier_of(&t, thr, 999), 0);
    assert_int_equal(vs_tier_of(&t, thr, 950), 1);
    assert_int_equal(vs_tier_of(&t, thr, 500), 2);
    assert_int_equal(vs_tier_of(&t, thr, 0), 2);
    int counts[3] = {0, 0, 0};
    for (int i = 1; i <= 1000; i++) {
        counts[vs_tier_of(&t, thr, i)]++;
    }
    assert_true(counts[0] >= 5 && counts[0] <= 20);
    assert_true(counts[1] >= 70 && counts[1] <= 110);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_quantiles), cmocka_unit_test(test_linear_slide),
        cmocka_unit_test(test_scores),        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_tiers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
