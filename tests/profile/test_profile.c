/*
 * Tests of the profile operator's distinct counts: the linear-counting estimate of a sketch
 * against the bits counted one by one, for empty, sparse, dense and saturated sketches.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "operators/profile/profile.h"

static int naive_bits(const uint8_t *s, int bits)
{
    int n = 0;
    for (int i = 0; i < bits; i++) {
        n += (s[i / 8] >> (i % 8)) & 1;
    }
    return n;
}

static int64_t expected(int set, int bits)
{
    if (set == bits) {
        return bits;
    }
    return (int64_t)llround(-(double)bits * log((double)(bits - set) / bits));
}

static void test_distinct_estimate(void **state)
{
    (void)state;
    static const int sizes[] = {VS_PROFILE_ITEM_BITS, VS_PROFILE_CATEGORY_BITS};
    uint64_t x = 88172645463325252ULL;
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        int bits = sizes[k];
        uint8_t s[VS_PROFILE_ITEM_BITS / 8];
        memset(s, 0, sizeof(s));
        assert_int_equal(vs_profile_distinct(s, bits), 0);
        /* Fill the sketch a random bit at a time: every count on the way matches the estimate
         * of the bits counted one by one, in every word of the sketch. */
        for (int step = 0; step < 4 * bits; step++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            int b = (int)(x % (uint64_t)bits);
            s[b / 8] |= (uint8_t)(1u << (b % 8));
            assert_int_equal(vs_profile_distinct(s, bits), expected(naive_bits(s, bits), bits));
        }
        memset(s, 0xff, (size_t)bits / 8);
        assert_int_equal(vs_profile_distinct(s, bits), bits); /* saturated */
        s[bits / 8 - 1] = 0x7f;                               /* one bit short, in the last word */
        assert_int_equal(vs_profile_distinct(s, bits), expected(bits - 1, bits));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distinct_estimate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
