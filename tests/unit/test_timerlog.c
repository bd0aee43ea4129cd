/*
 * The timer change log (engine/timerlog.c) against a reference: random sets and cancels of a
 * small set of keys in three partitions, sorted views taken at random moments (so tails are
 * merged into sorted prefixes again and again), and the final state applied from foreach.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <valuestream/error.h>

#include "timerlog.h"

enum { PARTS = 3, KEYS = 64 };

/* Reference state per partition and key: 0 untouched, 1 set, 2 cancelled. */
static int ref[PARTS][KEYS];
static int applied[PARTS][KEYS];

static size_t make_key(unsigned char *k, int part, int key)
{
    /* partition first as in the store; keys of different lengths share prefixes */
    k[0] = (unsigned char)part;
    int n = snprintf((char *)k + 1, 16, "%d", key);
    return (size_t)n + 1;
}

static int key_of(const unsigned char *k, size_t len)
{
    char buf[16];
    memcpy(buf, k + 1, len - 1);
    buf[len - 1] = 0;
    return atoi(buf);
}

static int apply(const struct vs__timerlog_entry *e, void *arg)
{
    (void)arg;
    applied[e->key[0]][key_of(e->key, e->len)] = e->cancel ? 2 : 1;
    return 0;
}

static void check_view(struct vs__timerlog *log, int part)
{
    struct vs__timerlog_view v;
    assert_int_equal(vs__timerlog_sorted(log, part, &v), 0);
    size_t expect = 0;
    for (int k = 0; k < KEYS; k++) {
        expect += ref[part][k] != 0;
    }
    assert_int_equal(v.n, expect);
    for (size_t i = 0; i < v.n; i++) {
        struct vs__timerlog_entry e;
        vs__timerlog_at(&v, i, &e);
        assert_int_equal(e.key[0], part);
        assert_int_equal(e.cancel, ref[part][key_of(e.key, e.len)] == 2);
        if (i > 0) {
            struct vs__timerlog_entry p;
            vs__timerlog_at(&v, i - 1, &p);
            size_t m = p.len < e.len ? p.len : e.len;
            int c = memcmp(p.key, e.key, m);
            assert_true(c < 0 || (c == 0 && p.len < e.len));
        }
        assert_int_equal(vs__timerlog_lower_bound(&v, e.key, e.len), i);
    }
}

static void test_against_reference(void **state)
{
    (void)state;
    struct vs__timerlog *log = vs__timerlog_new();
    assert_non_null(log);
    uint64_t seed = 7;
    int views = 0;
    for (int round = 0; round < 3; round++) {
        memset(ref, 0, sizeof ref);
        for (int step = 0; step < 20000; step++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t r = seed >> 33;
            int part = (int)(r % PARTS), key = (int)((r / PARTS) % KEYS);
            if ((r >> 20) % 50 == 0) {
                check_view(log, part);
                views++;
                continue;
            }
            int cancel = (int)((r >> 12) % 3 == 0);
            unsigned char k[32];
            size_t len = make_key(k, part, key);
            assert_int_equal(vs__timerlog_add(log, part, k, len, cancel), 0);
            ref[part][key] = cancel ? 2 : 1;
        }
        memset(applied, 0, sizeof applied);
        assert_int_equal(vs__timerlog_foreach(log, apply, NULL), 0);
        assert_memory_equal(applied, ref, sizeof ref);
        for (int p = 0; p < PARTS; p++) {
            check_view(log, p);
        }
        size_t live = 0;
        for (int p = 0; p < PARTS; p++) {
            for (int k = 0; k < KEYS; k++) {
                live += ref[p][k] != 0;
            }
        }
        assert_int_equal(vs__timerlog_count(log), live); /* every partition sorted: one each */
        assert_true(vs__timerlog_bytes(log) > 0);
        vs__timerlog_reset(log);
        assert_int_equal(vs__timerlog_count(log), 0);
    }
    assert_true(views > 500);
    /* A partition never written to has an empty view. */
    struct vs__timerlog_view v;
    assert_int_equal(vs__timerlog_sorted(log, 1000, &v), 0);
    assert_int_equal(v.n, 0);
    vs__timerlog_free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
