/*
 * Unit tests of the store's event-time timers (engine/store.c): firing order across customers,
 * fire times, operators and tags; partitions kept apart; cancellation of pending and committed
 * timers; pending timers visible before the commit; persistence across close and open; and the
 * per-partition lower bound that lets the engine ask cheaply after every watermark advance.
 */
#include "store_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <valuestream/error.h>

#include "store.h"

static const struct vs__section_desc secs[] = {{"alpha", 1, 8, NULL, 0}};

static const struct vs__store_options opts = {
    .cache_bytes = (size_t)4 << 20,
    .rocksdb_cache_bytes = (size_t)8 << 20,
    .create_if_missing = 1,
    .no_sync = 1,
};

static struct vs__store *open_ok(const char *dir)
{
    char err[512];
    struct vs__store *st = vs__store_open(dir, secs, 1, &opts, err, sizeof err);
    if (!st) {
        fail_msg("open %s: %s", dir, err);
    }
    return st;
}

struct timer {
    int32_t partition;
    int64_t fire;
    char user[24];
    uint8_t op;
    uint32_t tag;
};

static int timer_cmp(const void *a, const void *b)
{
    const struct timer *x = a, *y = b;
    if (x->partition != y->partition) {
        return x->partition < y->partition ? -1 : 1;
    }
    if (x->fire != y->fire) {
        return x->fire < y->fire ? -1 : 1;
    }
    int c = strcmp(x->user, y->user);
    if (c) {
        return c;
    }
    if (x->op != y->op) {
        return x->op < y->op ? -1 : 1;
    }
    return x->tag < y->tag ? -1 : x->tag > y->tag;
}

/* Fire every timer of a partition due by upto, in order, cancelling each as the engine does. */
static int drain(struct vs__store *st, int32_t partition, int64_t upto, struct timer *out, int max)
{
    int n = 0;
    for (;;) {
        struct timer t = {.partition = partition};
        int rc = vs__store_timer_next(st, partition, upto, &t.fire, t.user, sizeof t.user, &t.op,
                                      &t.tag);
        if (rc == VS_ENOTFOUND) {
            return n;
        }
        assert_int_equal(rc, 0);
        assert_true(t.fire <= upto);
        assert_true(n < max);
        out[n++] = t;
        assert_int_equal(vs__store_timer_cancel(st, partition, t.fire, t.user, t.op, t.tag), 0);
    }
}

/*
 * Random timers over 3 partitions, with duplicates (setting an existing timer is a no-op),
 * negative fire times and equal fire times for different customers; half committed before the
 * drain, half pending. The watermark advances in steps, as in the engine; what fires must be
 * exactly the expected set, in (fire time, user, operator, tag) order.
 */
static void test_order(void **state)
{
    char *dir = tu_tmpdir();
    struct vs__store *st = open_ok(dir);
    enum { N = 3000 };
    struct timer *want = calloc(N, sizeof *want);
    uint64_t rnd = 99;
    for (int i = 0; i < N; i++) {
        struct timer *t = &want[i];
        uint64_t r = tu_rand(&rnd);
        t->partition = (int32_t)(r % 3);
        t->fire = (int64_t)(tu_rand(&rnd) % 2000) - 500; /* many ties, some negative */
        snprintf(t->user, sizeof t->user, "u%u", (unsigned)(tu_rand(&rnd) % 50));
        t->op = (uint8_t)(r >> 8) % 3;
        t->tag = (uint32_t)(r >> 16) % 4;
        if (i == N / 2) {
            assert_int_equal(vs__store_commit(st), 0);
        }
        assert_int_equal(vs__store_timer_set(st, t->partition, t->fire, t->user, t->op, t->tag), 0);
    }
    qsort(want, N, sizeof *want, timer_cmp);
    int nuniq = 0;
    for (int i = 0; i < N; i++) {
        if (nuniq == 0 || timer_cmp(&want[nuniq - 1], &want[i]) != 0) {
            want[nuniq++] = want[i];
        }
    }

    struct timer *got = calloc(N, sizeof *got);
    int ngot = 0;
    for (int32_t p = 0; p < 3; p++) {
        for (int64_t wm = -700; wm - 137 < 1500; wm += 137) {
            int n = drain(st, p, wm, got + ngot, N - ngot);
            for (int i = 0; i < n; i++) {
                assert_true(got[ngot + i].fire > wm - 137); /* not due at the previous step */
            }
            ngot += n;
            if (wm % 3 == 0) {
                assert_int_equal(vs__store_commit(st), 0);
            }
        }
    }
    if (ngot != nuniq) {
        qsort(got, (size_t)ngot, sizeof *got, timer_cmp);
        for (int i = 0, j = 0; i < nuniq; i++) {
            if (j < ngot && timer_cmp(&got[j], &want[i]) == 0) {
                j++;
            } else {
                print_message("missing p%d %lld %s %d %u\n", want[i].partition,
                              (long long)want[i].fire, want[i].user, want[i].op, want[i].tag);
            }
        }
    }
    assert_int_equal(ngot, nuniq);
    for (int i = 0; i < nuniq; i++) {
        assert_int_equal(timer_cmp(&got[i], &want[i]), 0);
    }
    /* everything fired and cancelled: nothing left, also after a reopen */
    assert_int_equal(vs__store_commit(st), 0);
    vs__store_close(st);
    st = open_ok(dir);
    for (int32_t p = 0; p < 3; p++) {
        assert_int_equal(drain(st, p, INT64_MAX, got, N), 0);
    }
    vs__store_close(st);
    free(want);
    free(got);
    tu_rmdir(dir);
}

static void test_cancel_pending_and_committed(void **state)
{
    char *dir = tu_tmpdir();
    struct vs__store *st = open_ok(dir);
    struct timer t[8];
    /* pending set then pending cancel: never seen */
    assert_int_equal(vs__store_timer_set(st, 0, 100, "a", 1, 0), 0);
    assert_int_equal(vs__store_timer_cancel(st, 0, 100, "a", 1, 0), 0);
    assert_int_equal(drain(st, 0, 1000, t, 8), 0);

    /* committed, then cancelled: gone before and after the cancel is committed */
    assert_int_equal(vs__store_timer_set(st, 0, 200, "b", 1, 5), 0);
    assert_int_equal(vs__store_timer_set(st, 0, 300, "c", 2, 6), 0);
    assert_int_equal(vs__store_commit(st), 0);
    assert_int_equal(vs__store_timer_cancel(st, 0, 200, "b", 1, 5), 0);
    /* a cancel must match exactly: other tag, op, user or time cancel nothing */
    assert_int_equal(vs__store_timer_cancel(st, 0, 300, "c", 2, 7), 0);
    assert_int_equal(vs__store_timer_cancel(st, 0, 300, "c", 1, 6), 0);
    assert_int_equal(vs__store_timer_cancel(st, 0, 300, "cc", 2, 6), 0);
    assert_int_equal(vs__store_timer_cancel(st, 0, 301, "c", 2, 6), 0);
    char user[16];
    int64_t fire;
    uint8_t op;
    uint32_t tag;
    assert_int_equal(vs__store_timer_next(st, 0, 1000, &fire, user, sizeof user, &op, &tag), 0);
    assert_int_equal(fire, 300);
    assert_string_equal(user, "c");
    assert_int_equal(op, 2);
    assert_int_equal(tag, 6);
    assert_int_equal(vs__store_commit(st), 0);
    vs__store_close(st);
    st = open_ok(dir);
    assert_int_equal(drain(st, 0, 1000, t, 8), 1);
    assert_int_equal(t[0].fire, 300);
    /* re-setting a cancelled timer brings it back */
    assert_int_equal(vs__store_timer_set(st, 0, 200, "b", 1, 5), 0);
    assert_int_equal(drain(st, 0, 1000, t, 8), 1);
    assert_string_equal(t[0].user, "b");
    /* a small user buffer is an error, not a truncation */
    assert_int_equal(vs__store_timer_set(st, 0, 400, "longer-user", 1, 5), 0);
    char small[4];
    assert_int_equal(vs__store_timer_next(st, 0, 1000, &fire, small, sizeof small, &op, &tag),
                     VS_ETOOBIG);
    vs__store_close(st);
    tu_rmdir(dir);
}

/* Pending timers are visible before the commit; uncommitted ones are lost on close. */
static void test_persistence(void **state)
{
    char *dir = tu_tmpdir();
    struct vs__store *st = open_ok(dir);
    assert_int_equal(vs__store_timer_set(st, 2, 5000, "x", 0, 1), 0);
    assert_int_equal(vs__store_timer_set(st, 2, 4000, "y", 0, 1), 0);
    struct timer t[4];
    char user[16];
    int64_t fire;
    uint8_t op;
    uint32_t tag;
    assert_int_equal(vs__store_timer_next(st, 2, 4500, &fire, user, sizeof user, &op, &tag), 0);
    assert_int_equal(fire, 4000);
    assert_string_equal(user, "y");
    assert_int_equal(vs__store_commit(st), 0);
    assert_int_equal(vs__store_timer_set(st, 2, 3000, "z", 0, 1), 0); /* never committed */
    vs__store_close(st);

    st = open_ok(dir);
    assert_int_equal(vs__store_timer_next(st, 1, INT64_MAX, &fire, user, sizeof user, &op, &tag),
                     VS_ENOTFOUND);
    assert_int_equal(drain(st, 2, 4999, t, 4), 1);
    assert_string_equal(t[0].user, "y");
    assert_int_equal(drain(st, 2, INT64_MAX, t, 4), 1);
    assert_string_equal(t[0].user, "x");
    assert_int_equal(t[0].fire, 5000);
    vs__store_close(st);
    tu_rmdir(dir);
}

/*
 * The lower bound: after a scan found nothing due, a timer set earlier than anything seen so
 * far must still fire (set lowers the bound); after a reopen the bound starts unknown. Extreme
 * fire times sort correctly.
 */
static void test_lower_bound(void **state)
{
    char *dir = tu_tmpdir();
    struct vs__store *st = open_ok(dir);
    struct timer t[8];
    assert_int_equal(vs__store_timer_set(st, 0, 1000, "late", 0, 0), 0);
    assert_int_equal(drain(st, 0, 10, t, 8), 0); /* bound is now 11 or 1000 */
    assert_int_equal(drain(st, 0, 20, t, 8), 0);
    assert_int_equal(vs__store_timer_set(st, 0, 5, "early", 0, 0), 0);
    assert_int_equal(drain(st, 0, 20, t, 8), 1);
    assert_string_equal(t[0].user, "early");
    assert_int_equal(vs__store_timer_set(st, 0, INT64_MIN, "min", 0, 0), 0);
    assert_int_equal(vs__store_timer_set(st, 0, INT64_MAX, "max", 0, 0), 0);
    assert_int_equal(vs__store_timer_set(st, 0, -1, "neg", 0, 0), 0);
    assert_int_equal(vs__store_timer_set(st, 1, 0, "other", 0, 0), 0);
    assert_int_equal(drain(st, 0, INT64_MAX, t, 8), 4);
    assert_string_equal(t[0].user, "min");
    assert_string_equal(t[1].user, "neg");
    assert_string_equal(t[2].user, "late");
    assert_string_equal(t[3].user, "max");
    assert_int_equal(drain(st, 0, INT64_MAX, t, 8), 0);
    assert_int_equal(drain(st, 1, INT64_MAX, t, 8), 1);
    /* a timer set in a partition whose bound is INT64_MAX (drained completely) */
    assert_int_equal(vs__store_timer_set(st, 0, 7, "again", 0, 0), 0);
    assert_int_equal(drain(st, 0, 7, t, 8), 1);
    assert_int_equal(vs__store_timer_set(st, 0, 50, "kept", 0, 0), 0);
    assert_int_equal(drain(st, 0, 10, t, 8), 0);
    assert_int_equal(vs__store_commit(st), 0);
    vs__store_close(st);
    st = open_ok(dir);
    assert_int_equal(drain(st, 0, 100, t, 8), 1);
    assert_string_equal(t[0].user, "kept");
    /* invalid arguments */
    assert_int_equal(vs__store_timer_set(st, -1, 7, "u", 0, 0), VS_EINVAL);
    assert_int_equal(vs__store_timer_set(st, 0, 7, "", 0, 0), VS_EINVAL);
    vs__store_close(st);
    tu_rmdir(dir);
}

/*
 * Against a reference: random sets, cancels, commits and watermark steps on two partitions,
 * with bursts of many timers at one fire time (more than a scan caches) and many within one
 * look-ahead window, committed, sealed and pending mixed. Every answer of the store must be the
 * reference's earliest due timer.
 */
static void test_random_against_reference(void **state)
{
    char *dir = tu_tmpdir();
    struct vs__store *st = open_ok(dir);
    enum { MAX = 4000 };
    struct timer *ref = calloc(MAX, sizeof *ref);
    int nref = 0;
    uint64_t seed = 99;
    int64_t wm[2] = {0, 0};
    int fired = 0, sealed = 0;
    for (int step = 0; step < 6000; step++) {
        uint64_t r = tu_rand(&seed) % 100;
        int32_t part = (int32_t)(tu_rand(&seed) % 2);
        if (r < 45 && nref < MAX - 40) {
            /* one timer, or a burst of 40 at one fire time, ahead of the watermark */
            int64_t at = wm[part] + (int64_t)(tu_rand(&seed) % 7200000);
            int burst = tu_rand(&seed) % 20 == 0 ? 40 : 1;
            for (int b = 0; b < burst; b++) {
                struct timer t = {.partition = part,
                                  .fire = at,
                                  .op = (uint8_t)(b % 3),
                                  .tag = (uint32_t)(tu_rand(&seed) % 4)};
                snprintf(t.user, sizeof t.user, "u%d", (int)(tu_rand(&seed) % 500));
                int dup = 0;
                for (int i = 0; i < nref; i++) {
                    dup |= timer_cmp(&ref[i], &t) == 0;
                }
                assert_int_equal(vs__store_timer_set(st, part, t.fire, t.user, t.op, t.tag), 0);
                if (!dup) {
                    ref[nref++] = t;
                }
            }
        } else if (r < 65 && nref > 0) {
            int i = (int)(tu_rand(&seed) % (uint64_t)nref);
            assert_int_equal(vs__store_timer_cancel(st, ref[i].partition, ref[i].fire, ref[i].user,
                                                    ref[i].op, ref[i].tag),
                             0);
            ref[i] = ref[--nref];
        } else if (r < 67) {
            assert_int_equal(vs__store_commit(st), 0);
        } else if (r < 70) {
            /* Seal and keep the sealed commit unwritten for a while, as the engine does while
             * the thread pool writes it: scans then merge three generations of timers. */
            if (vs__store_is_sealed(st)) {
                assert_int_equal(vs__store_write_sealed(st), 0);
            } else {
                assert_int_equal(vs__store_seal(st), 0);
                sealed++;
            }
        } else {
            wm[part] += (int64_t)(tu_rand(&seed) % 600000);
            for (;;) {
                struct timer got = {.partition = part};
                int rc = vs__store_timer_next(st, part, wm[part], &got.fire, got.user,
                                              sizeof got.user, &got.op, &got.tag);
                int best = -1;
                for (int i = 0; i < nref; i++) {
                    if (ref[i].partition == part && ref[i].fire <= wm[part] &&
                        (best < 0 || timer_cmp(&ref[i], &ref[best]) < 0)) {
                        best = i;
                    }
                }
                if (best < 0) {
                    assert_int_equal(rc, VS_ENOTFOUND);
                    break;
                }
                assert_int_equal(rc, 0);
                assert_int_equal(timer_cmp(&got, &ref[best]), 0);
                assert_int_equal(
                    vs__store_timer_cancel(st, part, got.fire, got.user, got.op, got.tag), 0);
                ref[best] = ref[--nref];
                fired++;
            }
        }
    }
    assert_true(fired > 1000);
    assert_true(sealed > 50);
    assert_int_equal(vs__store_commit(st), 0);
    free(ref);
    vs__store_close(st);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_cancel_pending_and_committed),
        cmocka_unit_test(test_persistence),
        cmocka_unit_test(test_lower_bound),
        cmocka_unit_test(test_random_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
