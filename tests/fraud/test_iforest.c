/*
 * Unit tests of the streaming isolation forest (operators/fraud/iforest.h): determinism,
 * outliers above inliers, explanations that name the outlying feature, serialisation (whole and
 * by parts) that restores identical scores, rejection of non-finite input, forgetting.
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

#include "operators/fraud/iforest.h"

#define DIMS 4

/* A deterministic stream of inliers: a correlated Gaussian-like cloud (sum of uniforms). */
static void inlier(uint64_t *state, double *x)
{
    for (int d = 0; d < DIMS; d++) {
        double s = 0;
        for (int k = 0; k < 4; k++) {
            *state = *state * 6364136223846793005ull + 1442695040888963407ull;
            s += (double)(*state >> 11) / 9007199254740992.0;
        }
        x[d] = s - 2.0 + (d == 1 ? 0.5 * x[0] : 0.0);
    }
}

static struct vs_iforest *forest(uint64_t seed, int trees, int window)
{
    struct vs_iforest_config c;
    vs_iforest_config_default(&c, DIMS);
    c.seed = seed;
    c.trees = trees;
    c.window = window;
    char err[256];
    struct vs_iforest *f = vs_iforest_new(&c, err, sizeof(err));
    assert_non_null(f);
    return f;
}

static void feed(struct vs_iforest *f, uint64_t *state, int n)
{
    double x[DIMS];
    for (int i = 0; i < n; i++) {
        inlier(state, x);
        assert_int_equal(vs_iforest_learn_id(f, x, (uint64_t)i + 1), 0);
    }
}

static double score(const struct vs_iforest *f, const double *x)
{
    double s;
    assert_int_equal(vs_iforest_score(f, x, &s, NULL), 0);
    assert_true(s >= 0.0 && s <= 1.0);
    return s;
}

static void test_same_seed_same_scores(void **state)
{
    (void)state;
    struct vs_iforest *a = forest(7, 50, 1024), *b = forest(7, 50, 1024), *c = forest(8, 50, 1024);
    uint64_t sa = 1, sb = 1, sc = 1, probe = 99;
    feed(a, &sa, 3000);
    feed(b, &sb, 3000);
    feed(c, &sc, 3000);
    int differ = 0;
    for (int i = 0; i < 200; i++) {
        double x[DIMS];
        inlier(&probe, x);
        double s = score(a, x);
        assert_true(s == score(b, x)); /* bit for bit */
        differ += s != score(c, x);
    }
    assert_true(differ > 150); /* another seed, other trees */
    vs_iforest_free(a);
    vs_iforest_free(b);
    vs_iforest_free(c);
}

static void test_outliers_score_higher(void **state)
{
    (void)state;
    struct vs_iforest *f = forest(1, 100, 2048);
    uint64_t s = 3;
    feed(f, &s, 4000);
    double max_in = 0, sum_in = 0;
    for (int i = 0; i < 500; i++) {
        double x[DIMS];
        inlier(&s, x);
        double v = score(f, x);
        max_in = v > max_in ? v : max_in;
        sum_in += v;
    }
    /* Beyond the cloud in every feature (axis-parallel splits cannot isolate a point outlying
     * in one feature only better than the most extreme inlier of that feature). */
    const double far[3][DIMS] = {{6, 6, 6, 6}, {-5, 5, -5, 5}, {4, -4, 4, 4}};
    for (int k = 0; k < 3; k++) {
        double v = score(f, far[k]);
        assert_true(v > 0.6);
        assert_true(v > max_in);
    }
    assert_true(sum_in / 500 < 0.5);
    vs_iforest_free(f);
}

static void test_contributions_name_the_feature(void **state)
{
    (void)state;
    struct vs_iforest *f = forest(2, 100, 2048);
    uint64_t s = 5;
    feed(f, &s, 4000);
    for (int d = 0; d < DIMS; d++) {
        double x[DIMS] = {0, 0, 0, 0};
        x[d] = 8.0; /* outlying only in feature d */
        double sc, contrib[DIMS];
        assert_int_equal(vs_iforest_score(f, x, &sc, contrib), 0);
        int best = 0;
        double total = 0;
        for (int k = 0; k < DIMS; k++) {
            best = contrib[k] > contrib[best] ? k : best;
            total += contrib[k];
        }
        assert_int_equal(best, d);
        /* The contributions divide the path shortening exactly: score = 2^-(1 - total). */
        assert_true(fabs(sc - exp2(-(1.0 - total))) < 1e-5);
        /* The explained and the plain score agree. */
        assert_true(fabs(sc - score(f, x)) < 1e-12);
    }
    vs_iforest_free(f);
}

static void test_serialise_round_trip(void **state)
{
    (void)state;
    struct vs_iforest *f = forest(3, 60, 1000);
    uint64_t s = 11;
    feed(f, &s, 2500);
    size_t len = vs_iforest_serialized_size(f);
    void *buf = malloc(len);
    assert_int_equal(vs_iforest_serialize(f, buf, len), 0);
    assert_int_equal(vs_iforest_serialize(f, buf, len - 1), VS_EFULL);
    assert_int_equal(vs_iforest_serialize(f, buf, len), 0);
    char err[256];
    struct vs_iforest *g = vs_iforest_deserialize(buf, len, err, sizeof(err));
    assert_non_null(g);
    assert_int_equal(vs_iforest_learned(g), vs_iforest_learned(f));

    /* By parts, as the operator checkpoints it. */
    size_t plen = vs_iforest_part_max_size(f);
    uint8_t *part = malloc(plen);
    long n = vs_iforest_part_write(f, 0, part, plen);
    assert_true(n > 0);
    struct vs_iforest *h = vs_iforest_from_header(part, (size_t)n, err, sizeof(err));
    assert_non_null(h);
    for (int p = 1; p < vs_iforest_part_count(f); p++) {
        n = vs_iforest_part_write(f, p, part, plen);
        assert_true(n > 0);
        assert_int_equal(vs_iforest_part_read(h, p, part, (size_t)n), 0);
    }

    /* Same scores now, and after learning the same points further (window and counters too). */
    uint64_t sf = 77, sg = 77, sh = 77, probe = 5;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 100; i++) {
            double x[DIMS];
            inlier(&probe, x);
            x[i % DIMS] += (i % 7) * 0.9;
            double a = score(f, x);
            assert_true(a == score(g, x));
            assert_true(a == score(h, x));
        }
        feed(f, &sf, 700);
        feed(g, &sg, 700);
        feed(h, &sh, 700);
    }

    /* Damaged bytes are refused, not trusted. */
    ((uint8_t *)buf)[len / 2] ^= 0xff;
    ((uint8_t *)buf)[len / 3] = 0xff;
    struct vs_iforest *bad = vs_iforest_deserialize(buf, len / 2, err, sizeof(err));
    assert_null(bad);
    assert_true(strlen(err) > 0);
    free(part);
    free(buf);
    vs_iforest_free(f);
    vs_iforest_free(g);
    vs_iforest_free(h);
}

static void test_non_finite_rejected(void **state)
{
    (void)state;
    struct vs_iforest *f = forest(4, 20, 512);
    uint64_t s = 13;
    feed(f, &s, 600);
    uint64_t before = vs_iforest_learned(f);
    double x[DIMS] = {0, NAN, 0, 0}, y[DIMS] = {INFINITY, 0, 0, 0}, sc = -1;
    assert_int_equal(vs_iforest_learn(f, x), VS_EINVAL);
    assert_int_equal(vs_iforest_learn(f, y), VS_EINVAL);
    assert_int_equal(vs_iforest_score(f, x, &sc, NULL), VS_EINVAL);
    assert_int_equal(vs_iforest_learned(f), before);
    vs_iforest_free(f);
}

static void test_forget(void **state)
{
    (void)state;
    struct vs_iforest *f = forest(5, 30, 512);
    uint64_t s = 17;
    feed(f, &s, 400); /* ids 1..400 */
    assert_int_equal(vs_iforest_forget(f, 123), 0);
    assert_int_equal(vs_iforest_forget(f, 123), VS_ENOTFOUND);
    assert_int_equal(vs_iforest_forget(f, 100000), VS_ENOTFOUND);
    assert_int_equal(vs_iforest_forget(f, 0), VS_ENOTFOUND);

    /* A cluster of planted points, learned and then forgotten, stops looking normal. */
    double planted[DIMS] = {5, 5, -5, 5};
    for (int i = 0; i < 200; i++) {
        assert_int_equal(vs_iforest_learn_id(f, planted, 10000 + (uint64_t)i), 0);
    }
    double learned = score(f, planted);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(vs_iforest_forget(f, 10000 + (uint64_t)i), 0);
    }
    feed(f, &s, 512); /* every tree is rebuilt from the window without them */
    assert_true(score(f, planted) > learned + 0.1);
    vs_iforest_free(f);
}

static void test_bad_config(void **state)
{
    (void)state;
    struct vs_iforest_config c;
    vs_iforest_config_default(&c, DIMS);
    c.window = 10; /* smaller than the sample */
    char err[256] = "";
    assert_null(vs_iforest_new(&c, err, sizeof(err)));
    assert_non_null(strstr(err, "fraud.window"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_scores),
        cmocka_unit_test(test_outliers_score_higher),
        cmocka_unit_test(test_contributions_name_the_feature),
        cmocka_unit_test(test_serialise_round_trip),
        cmocka_unit_test(test_non_finite_rejected),
        cmocka_unit_test(test_forget),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
