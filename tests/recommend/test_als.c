/*
 * The full implicit-ALS sweep (operators/recommend/als.h): it lowers the objective it solves,
 * leaves rows the log does not name alone, sums a pair's weights before it keeps the pair, and
 * ignores entries it cannot use.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "operators/recommend/als.h"

#define K 8
#define ITEMS 120 /* the log names items 0..99 only */

static uint64_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* Two tastes: customers of group g interact with items of half g, mostly. */
static size_t planted_log(struct vs_als_entry *log, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t e = 0; e < n; e++) {
        uint32_t c = 1 + (uint32_t)(rnd(&s) % 200);
        int half = (int)(c % 2), item = (int)(rnd(&s) % 50);
        if (rnd(&s) % 10 == 0) {
            half = 1 - half;
        }
        log[e] = (struct vs_als_entry){c, half * 50 + item, 1.0f + (float)(rnd(&s) % 3)};
    }
    return n;
}

static void random_rows(float *y, uint64_t seed)
{
    uint64_t s = seed;
    for (int i = 0; i < ITEMS * K; i++) {
        y[i] = 0.01f * ((float)(rnd(&s) % 2001) / 1000.0f - 1.0f);
    }
}

static void sweep_lowers_the_objective(void **state)
{
    (void)state;
    struct vs_als_params p = {K, 2.0f, 2.0f, 1};
    static struct vs_als_entry log[3000];
    size_t n = planted_log(log, 3000, 3);
    float y[ITEMS * K], before[ITEMS * K];
    random_rows(y, 9);
    memcpy(before, y, sizeof(y));
    double l0 = vs_als_loss(&p, y, ITEMS, log, n);
    int32_t solved = -1;
    assert_int_equal(vs_als_sweep(&p, y, ITEMS, log, n, &solved), 0);
    assert_int_equal(solved, 100);
    double l1 = vs_als_loss(&p, y, ITEMS, log, n);
    assert_int_equal(vs_als_sweep(&p, y, ITEMS, log, n, &solved), 0);
    double l2 = vs_als_loss(&p, y, ITEMS, log, n);
    assert_true(isfinite(l0) && l1 < l0 && l2 <= l1);
    assert_true(l1 < 0.9 * l0); /* random rows explain nothing; one pass explains much */
    /* Rows the log never names stay as they were, bit for bit. */
    assert_memory_equal(y + 100 * K, before + 100 * K, sizeof(float) * 20 * K);

    /* The two tastes come out as two directions: items of one half are closer to each other
     * than to the other half's. */
    double same = 0, cross = 0;
    for (int i = 0; i < 50; i++) {
        for (int j = 0; j < 50; j++) {
            double dij = 0, dik = 0;
            for (int f = 0; f < K; f++) {
                dij += (double)y[i * K + f] * y[((i + j + 1) % 50) * K + f];
                dik += (double)y[i * K + f] * y[(50 + j) * K + f];
            }
            same += dij;
            cross += dik;
        }
    }
    assert_true(same > 2 * cross);

    /* The same input gives the same bits. */
    float y2[ITEMS * K];
    memcpy(y2, before, sizeof(y2));
    assert_int_equal(vs_als_sweep(&p, y2, ITEMS, log, n, NULL), 0);
    assert_int_equal(vs_als_sweep(&p, y2, ITEMS, log, n, NULL), 0);
    assert_memory_equal(y, y2, sizeof(y));
}

static void pairs_are_summed_and_bad_entries_ignored(void **state)
{
    (void)state;
    struct vs_als_params p = {K, 2.0f, 2.0f, 2};
    struct vs_als_entry log[] = {
        {1, 3, 1.0f},   {2, 3, 4.0f},   {1, 4, 1.0f},  {1, 4, -1.0f}, /* 4: taken back */
        {2, 5, -10.0f},                                               /* 5: only taken away */
        {2, 7, NAN},    {1, 999, 1.0f}, {1, -1, 1.0f},                /* unusable */
        {3, 6, 2.0f},   {3, 3, 1.0f},
    };
    size_t n = sizeof(log) / sizeof(log[0]);
    float y[ITEMS * K], before[ITEMS * K];
    random_rows(y, 4);
    memcpy(before, y, sizeof(y));
    int32_t solved = -1;
    assert_int_equal(vs_als_sweep(&p, y, ITEMS, log, n, &solved), 0);
    assert_int_equal(solved, 2); /* items 3 and 6 */
    for (int i = 0; i < ITEMS; i++) {
        int changed = memcmp(y + i * K, before + i * K, sizeof(float) * K) != 0;
        assert_int_equal(changed, i == 3 || i == 6);
        for (int f = 0; f < K; f++) {
            assert_true(isfinite(y[i * K + f]));
        }
    }
    /* Nothing usable: nothing solved, nothing changed. */
    struct vs_als_entry none[] = {{1, 4, 1.0f}, {1, 4, -1.0f}, {2, 500, 3.0f}};
    memcpy(y, before, sizeof(y));
    assert_int_equal(vs_als_sweep(&p, y, ITEMS, none, 3, &solved), 0);
    assert_int_equal(solved, 0);
    assert_memory_equal(y, before, sizeof(y));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sweep_lowers_the_objective),
        cmocka_unit_test(pairs_are_summed_and_bad_entries_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
