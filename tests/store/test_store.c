/*
 * Unit tests of the state store's customer records, commits, meta and open-time checks
 * (engine/store.c): round trips across close and open, one-batch atomicity, a tiny cache that
 * must give exactly the results of a huge one, section upgrades and version errors, and the
 * refusal of missing, foreign, corrupt and newer-format directories.
 */
#include "store_util.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <rocksdb/c.h>

#include <valuestream/error.h>

#include "store.h"

/* ==== Test sections ==== */

struct sec_alpha {
    int64_t count;
    double sum;
    char last_item[16];
};

struct sec_beta {
    uint32_t n;
    uint32_t flags;
    int64_t last_ts;
};

/* beta's version 1 layout, before last_ts became 64-bit and flags appeared. */
struct sec_beta_v1 {
    uint32_t n;
    int32_t last_ts;
};

static int upgrade_calls;

static int beta_upgrade(uint32_t from, const void *old, size_t old_len, void *section)
{
    upgrade_calls++;
    if (from != 1 || old_len != sizeof(struct sec_beta_v1)) {
        return VS_EVERSION;
    }
    const struct sec_beta_v1 *o = old;
    struct sec_beta *b = section;
    b->n = o->n;
    b->flags = 7;
    b->last_ts = o->last_ts;
    return 0;
}

static const struct vs__section_desc secs_ab[] = {
    {"alpha", 1, sizeof(struct sec_alpha), NULL, 0},
    {"beta", 2, sizeof(struct sec_beta), beta_upgrade, 0},
};

static const struct vs__store_options opts_default = {
    .cache_bytes = (size_t)16 << 20,
    .rocksdb_cache_bytes = (size_t)8 << 20,
    .create_if_missing = 1,
    .no_sync = 1,
};

static struct vs__store *open_ok(const char *dir, const struct vs__section_desc *secs, int n,
                                 const struct vs__store_options *o)
{
    char err[512];
    struct vs__store *st = vs__store_open(dir, secs, n, o, err, sizeof err);
    if (!st) {
        fail_msg("open %s: %s", dir, err);
    }
    return st;
}

static void touch(struct vs__store *st, const char *id, int64_t add, const char *item)
{
    struct vs__customer *c;
    int is_new;
    assert_int_equal(vs__store_customer(st, id, strlen(id), &c, &is_new), 0);
    struct sec_alpha *a = vs__customer_section(c, 0);
    struct sec_beta *b = vs__customer_section(c, 1);
    a->count++;
    a->sum += (double)add;
    snprintf(a->last_item, sizeof a->last_item, "%s", item);
    b->n += 2;
    b->last_ts = add * 1000;
}

static void expect_customer(struct vs__store *st, const char *id, int64_t count, double sum,
                            const char *item)
{
    struct vs__customer *c;
    int is_new = -1;
    assert_int_equal(vs__store_customer(st, id, strlen(id), &c, &is_new), 0);
    assert_int_equal(is_new, 0);
    assert_string_equal(vs__customer_id(c), id);
    const struct sec_alpha *a = vs__customer_section(c, 0);
    assert_int_equal(a->count, count);
    assert_true(a->sum == sum);
    assert_string_equal(a->last_item, item);
}

/* ==== Records ==== */

static void test_round_trip(void **state)
{
    char *dir = tu_tmpdir();
    struct vs__store *st = open_ok(dir, secs_ab, 2, &opts_default);
    struct vs__customer *c;
    int is_new = -1;
    assert_int_equal(vs__store_customer(st, "u1", 2, &c, &is_new), 0);
    assert_int_equal(is_new, 1);
    const unsigned char *raw = vs__customer_section(c, 0);
    for (size_t i = 0; i < sizeof(struct sec_alpha); i++) {
        assert_int_equal(raw[i], 0); /* a new customer's sections are zeroed */
    }
    touch(st, "u1", 5, "shoe");
    touch(st, "u1", 7, "sock");
    touch(st, "u2", 11, "hat");
    /* an id with bytes that need care: spaces, UTF-8, the maximum length */
    char longid[VS__STORE_USER_ID_MAX + 1];
    memset(longid, 'z', VS__STORE_USER_ID_MAX);
    longid[VS__STORE_USER_ID_MAX] = '\0';
    touch(st, "k\xc3\xa4ufer 3", 1, "x");
    touch(st, longid, 2, "y");
    assert_int_not_equal(vs__store_customer(st, "", 0, &c, &is_new), 0);
    char toolong[VS__STORE_USER_ID_MAX + 2];
    memset(toolong, 'q', sizeof toolong - 1);
    toolong[sizeof toolong - 1] = '\0';
    assert_int_equal(vs__store_customer(st, toolong, strlen(toolong), &c, &is_new), VS_EINVAL);
    assert_int_equal(vs__store_commit(st), 0);
    vs__store_close(st);

    st = open_ok(dir, secs_ab, 2, &opts_default);
    expect_customer(st, "u1", 2, 12.0, "sock");
    expect_customer(st, "u2", 1, 11.0, "hat");
    expect_customer(st, "k\xc3\xa4ufer 3", 1, 1.0, "x");
    expect_customer(st, longid, 1, 2.0, "y");
    assert_int_equal(vs__store_customer(st, "u1", 2, &c, &is_new), 0);
    const struct sec_beta *b = vs__customer_section(c, 1);
    assert_int_equal(b->n, 4);
    assert_int_equal(b->last_ts, 7000);
    assert_int_equal(vs__store_customer(st, "u3", 2, &c, &is_new), 0);
    assert_int_equal(is_new, 1);
    vs__store_close(st);
    tu_rmdir(dir);
}

/*
 * Atomicity: everything written before a commit survives close and open, everything after the
 * last commit is gone, whatever its kind (record, timer, model, offset, watermark).
 */
static void test_commit_is_one_batch(void **state)
{
    char *dir = tu_tmpdir();
    struct vs__store *st = open_ok(dir, secs_ab, 2, &opts_default);
    touch(st, "a", 1, "one");
    touch(st, "b", 2, "two");
    assert_int_equal(vs__store_set_offset(st, "shop.events", 0, 100), 0);
    assert_int_equal(vs__store_set_watermark(st, "shop.events", 0, 5000), 0);
    assert_int_equal(vs__store_model_put(st, "fraud/forest", "F1", 2), 0);
    assert_int_equal(vs__store_timer_set(st, 0, 9000, "a", 1, 3), 0);
    assert_int_equal(vs__store_commit(st), 0);

    /* uncommitted: changes to existing and new customers, meta, models, timers */
    touch(st, "a", 10, "changed");
    touch(st, "c", 3, "three");
    assert_int_equal(vs__store_set_offset(st, "shop.events", 0, 250), 0);
    assert_int_equal(vs__store_set_offset(st, "shop.events", 1, 7), 0);
    assert_int_equal(vs__store_set_watermark(st, "shop.events", 0, 8000), 0);
    assert_int_equal(vs__store_model_put(st, "fraud/forest", "F2", 2), 0);
    assert_int_equal(vs__store_model_put(st, "recommend/items", "I", 1), 0);
    assert_int_equal(vs__store_timer_set(st, 0, 8500, "c", 1, 0), 0);
    assert_int_equal(vs__store_timer_cancel(st, 0, 9000, "a", 1, 3), 0);
    int64_t v = 0;
    assert_int_equal(vs__store_get_offset(st, "shop.events", 0, &v), 0);
    assert_int_equal(v, 250); /* pending writes are visible before the commit */
    vs__store_close(st);

    st = open_ok(dir, secs_ab, 2, &opts_default);
    expect_customer(st, "a", 1, 1.0, "one");
    expect_customer(st, "b", 1, 2.0, "two");
    struct vs__customer *c;
    int is_new = 0;
    assert_int_equal(vs__store_customer(st, "c", 1, &c, &is_new), 0);
    assert_int_equal(is_new, 1);
    assert_int_equal(vs__store_get_offset(st, "shop.events", 0, &v), 0);
    assert_int_equal(v, 100);
    assert_int_equal(vs__store_get_offset(st, "shop.events", 1, &v), VS_ENOTFOUND);
    assert_int_equal(vs__store_get_watermark(st, "shop.events", 0, &v), 0);
    assert_int_equal(v, 5000);
    void *m = NULL;
    size_t ml = 0;
    assert_int_equal(vs__store_model_get(st, "fraud/forest", &m, &ml), 0);
    assert_int_equal(ml, 2);
    assert_memory_equal(m, "F1", 2);
    free(m);
    assert_int_equal(vs__store_model_get(st, "recommend/items", &m, &ml), VS_ENOTFOUND);
    char user[64];
    int64_t fire;
    uint8_t op;
    uint32_t tag;
    assert_int_equal(vs__store_timer_next(st, 0, INT64_MAX, &fire, user, sizeof user, &op, &tag),
                     0);
    assert_int_equal(fire, 9000);
    assert_string_equal(user, "a");
    assert_int_equal(op, 1);
    assert_int_equal(tag, 3);
    vs__store_close(st);
    tu_rmdir(dir);
}

struct offset_rec {
    char topic[32];
    int32_t p;
    int64_t off;
    int has_wm;
    int64_t wm;
};

struct offset_acc {
    struct offset_rec *r;
    int n;
};

static void collect_offset(void *arg, const char *topic, int32_t partition, int64_t next_offset,
                           int has_wm, int64_t wm)
{
    struct offset_acc *acc = arg;
    if (acc->n >= 16) {
        fail_msg("too many offsets");
    }
    struct offset_rec *r = &acc->r[acc->n++];
    snprintf(r->topic, sizeof r->topic, "%s", topic);
    r->p = partition;
    r->off = next_offset;
    r->has_wm = has_wm;
    r->wm = wm;
}

static void test_meta_and_models(void **state)
{
    char *dir = tu_tmpdir();
    struct vs__store *st = open_ok(dir, secs_ab, 2, &opts_default);
    int64_t v;
    assert_int_equal(vs__store_get_offset(st, "t", 0, &v), VS_ENOTFOUND);
    assert_int_equal(vs__store_set_offset(st, "t", -1, 1), VS_EINVAL);
    assert_int_equal(vs__store_set_offset(st, "a/b", 0, 1), VS_EINVAL);
    for (int p = 11; p >= 0; p--) {
        assert_int_equal(vs__store_set_offset(st, "shop.events", p, 1000 + p), 0);
    }
    assert_int_equal(vs__store_set_watermark(st, "other", 3, -5), 0);
    assert_int_equal(vs__store_commit(st), 0);
    assert_int_equal(vs__store_set_offset(st, "shop.events", 2, 5000), 0);

    /* foreach_offset: sorted by topic, then partition as a number (2 before 10) */
    struct offset_rec rows[16];
    struct offset_acc acc = {rows, 0};
    vs__store_foreach_offset(st, collect_offset, &acc);
    assert_int_equal(acc.n, 13);
    assert_string_equal(rows[0].topic, "other");
    assert_int_equal(rows[0].off, -1);
    assert_int_equal(rows[0].has_wm, 1);
    assert_int_equal(rows[0].wm, -5);
    for (int i = 1; i < 13; i++) {
        assert_string_equal(rows[i].topic, "shop.events");
        assert_int_equal(rows[i].p, i - 1);
        assert_int_equal(rows[i].off, i - 1 == 2 ? 5000 : 1000 + i - 1);
        assert_int_equal(rows[i].has_wm, 0);
    }

    /* models: pending put, committed, pending delete, large blobs */
    size_t big = (size_t)3 << 20;
    unsigned char *blob = malloc(big);
    for (size_t i = 0; i < big; i++) {
        blob[i] = (unsigned char)(i * 31 + 7);
    }
    assert_int_equal(vs__store_model_put(st, "recommend/factors", blob, big), 0);
    void *m;
    size_t ml;
    assert_int_equal(vs__store_model_get(st, "recommend/factors", &m, &ml), 0);
    assert_int_equal(ml, big);
    assert_memory_equal(m, blob, big);
    free(m);
    assert_int_equal(vs__store_commit(st), 0);
    assert_int_equal(vs__store_model_delete(st, "recommend/factors"), 0);
    assert_int_equal(vs__store_model_get(st, "recommend/factors", &m, &ml), VS_ENOTFOUND);
    vs__store_close(st); /* the delete was not committed */
    st = open_ok(dir, secs_ab, 2, &opts_default);
    assert_int_equal(vs__store_model_get(st, "recommend/factors", &m, &ml), 0);
    assert_int_equal(ml, big);
    assert_memory_equal(m, blob, big);
    free(m);
    free(blob);
    assert_int_equal(vs__store_get_offset(st, "shop.events", 2, &v), 0);
    assert_int_equal(v, 5000); /* committed together with the model */
    vs__store_close(st);
    tu_rmdir(dir);
}

/* ==== The cache ==== */

/* Every stored record, as "id=bytes" lines, for comparing two stores. */
struct dump {
    char *buf;
    size_t len, cap;
};

static int dump_one(void *arg, const char *id, size_t len, struct vs__customer *c)
{
    struct dump *d = arg;
    size_t need = len + 2 + sizeof(struct sec_alpha) + sizeof(struct sec_beta);
    if (d->len + need > d->cap) {
        d->cap = (d->len + need) * 2;
        d->buf = realloc(d->buf, d->cap);
    }
    memcpy(d->buf + d->len, id, len);
    d->len += len;
    d->buf[d->len++] = '=';
    memcpy(d->buf + d->len, vs__customer_section(c, 0), sizeof(struct sec_alpha));
    d->len += sizeof(struct sec_alpha);
    memcpy(d->buf + d->len, vs__customer_section(c, 1), sizeof(struct sec_beta));
    d->len += sizeof(struct sec_beta);
    d->buf[d->len++] = '\n';
    return 0;
}

/*
 * The same random workload (customers drawn from a skewed population, reads folded into a
 * checksum, commits at random intervals) through a cache far smaller than the working set and
 * through one that holds everything: every read and the final state must be identical.
 */
/* Both stores hold the same, non-empty, committed customers byte for byte. */
static void assert_same_state(struct vs__store *s1, struct vs__store *s2)
{
    struct dump x = {0}, y = {0};
    assert_int_equal(vs__store_foreach_customer(s1, dump_one, &x), 0);
    assert_int_equal(vs__store_foreach_customer(s2, dump_one, &y), 0);
    assert_true(x.len > 0);
    assert_int_equal(x.len, y.len);
    assert_memory_equal(x.buf, y.buf, x.len);
    free(x.buf);
    free(y.buf);
}

static uint64_t run_workload_mode(struct vs__store *st, uint64_t seed, int ops, int *wanted,
                                  int sealed);

static uint64_t run_workload(struct vs__store *st, uint64_t seed, int ops, int *wanted)
{
    return run_workload_mode(st, seed, ops, wanted, 0);
}

/*
 * The workload; with sealed, commits go the engine's way: sealed at a point, written a few
 * operations later (as acknowledgements arrive), synchronously only when the cache asks.
 */
static uint64_t run_workload_mode(struct vs__store *st, uint64_t seed, int ops, int *wanted,
                                  int sealed)
{
    uint64_t rnd = seed, check = 0;
    *wanted = 0;
    for (int i = 0; i < ops; i++) {
        uint64_t r = tu_rand(&rnd);
        unsigned id = (unsigned)(r % 4 == 0 ? r % 3000 : r % 200);
        char uid[32];
        snprintf(uid, sizeof uid, "cust-%u", id);
        struct vs__customer *c;
        int is_new;
        assert_int_equal(vs__store_customer(st, uid, strlen(uid), &c, &is_new), 0);
        struct sec_alpha *a = vs__customer_section(c, 0);
        struct sec_beta *b = vs__customer_section(c, 1);
        check = check * 1099511628211ULL + (uint64_t)a->count * 31 + b->n + (uint64_t)is_new;
        a->count++;
        a->sum += (double)(r % 1000) / 10;
        b->n ^= (uint32_t)(r >> 20);
        b->last_ts = i;
        if (vs__store_wants_commit(st)) {
            (*wanted)++;
        }
        if (sealed && vs__store_is_sealed(st) && i % 13 == 0) {
            assert_int_equal(vs__store_write_sealed(st), 0);
        }
        if (vs__store_wants_commit(st)) {
            assert_int_equal(vs__store_commit(st), 0);
        } else if (r % 97 == 0) {
            if (sealed) {
                assert_int_equal(vs__store_write_sealed(st), 0);
                assert_int_equal(vs__store_seal(st), 0);
                assert_int_not_equal(vs__store_seal(st), 0); /* one sealed commit at a time */
            } else {
                assert_int_equal(vs__store_commit(st), 0);
            }
        }
    }
    assert_int_equal(vs__store_commit(st), 0);
    assert_false(vs__store_is_sealed(st));
    return check;
}

/* Sealed commits written later, with a tiny cache (sealed records evicted before they are
 * written are read back from the sealed batch), give exactly the results and the stored state
 * of plain commits. */
static void test_sealed_commits_equal_plain(void **state)
{
    char *d1 = tu_tmpdir(), *d2 = tu_tmpdir();
    struct vs__store_options tiny = opts_default, huge = opts_default;
    tiny.cache_bytes = 16 << 10;
    huge.cache_bytes = (size_t)256 << 20;
    struct vs__store *s1 = open_ok(d1, secs_ab, 2, &tiny);
    struct vs__store *s2 = open_ok(d2, secs_ab, 2, &huge);
    int w1, w2;
    uint64_t c1 = run_workload_mode(s1, 7, 60000, &w1, 1);
    uint64_t c2 = run_workload_mode(s2, 7, 60000, &w2, 0);
    assert_true(c1 == c2);
    struct vs__store_stats a;
    vs__store_stats(s1, &a);
    assert_true(a.evictions > 10000);
    assert_same_state(s1, s2);
    vs__store_close(s1);
    vs__store_close(s2);
    tu_rmdir(d1);
    tu_rmdir(d2);
}

/* Records of a sealed commit leave a full cache before the commit is written, and a miss reads
 * them back from the sealed batch, not the older committed record. */
static void test_evicted_sealed_records_read_back(void **state)
{
    char *dir = tu_tmpdir();
    struct vs__store_options o = opts_default;
    o.cache_bytes = 32 << 10;
    struct vs__store *st = open_ok(dir, secs_ab, 2, &o);
    char uid[32];
    for (int i = 0; i < 300; i++) { /* committed: count 1 */
        snprintf(uid, sizeof uid, "s%d", i);
        touch(st, uid, i, "a");
    }
    assert_int_equal(vs__store_commit(st), 0);
    for (int i = 0; i < 300; i++) { /* sealed, not written: count 2 */
        snprintf(uid, sizeof uid, "s%d", i);
        touch(st, uid, i, "b");
    }
    assert_int_equal(vs__store_seal(st), 0);
    for (int i = 0; i < 150; i++) { /* new records push the sealed ones out */
        snprintf(uid, sizeof uid, "o%d", i);
        touch(st, uid, i, "o");
    }
    struct vs__store_stats s;
    vs__store_stats(st, &s);
    assert_true(s.evictions >= 100);
    assert_false(vs__store_wants_commit(st)); /* evicting sealed records made room */
    for (int i = 0; i < 300; i++) {
        snprintf(uid, sizeof uid, "s%d", i);
        expect_customer(st, uid, 2, 2.0 * i, "b");
    }
    vs__store_stats(st, &s);
    assert_true(s.sealed_reads >= 100);
    assert_true(vs__store_is_sealed(st));
    assert_int_equal(vs__store_write_sealed(st), 0);
    assert_int_equal(vs__store_commit(st), 0);
    vs__store_close(st);
    st = open_ok(dir, secs_ab, 2, &o);
    for (int i = 0; i < 300; i++) {
        snprintf(uid, sizeof uid, "s%d", i);
        expect_customer(st, uid, 2, 2.0 * i, "b");
    }
    vs__store_close(st);
    tu_rmdir(dir);
}

static void test_tiny_cache_equals_huge_cache(void **state)
{
    char *d1 = tu_tmpdir(), *d2 = tu_tmpdir();
    struct vs__store_options tiny = opts_default, huge = opts_default;
    tiny.cache_bytes = 16 << 10; /* about a hundred records of a working set of 3000 */
    huge.cache_bytes = (size_t)256 << 20;
    struct vs__store *s1 = open_ok(d1, secs_ab, 2, &tiny);
    struct vs__store *s2 = open_ok(d2, secs_ab, 2, &huge);
    int w1, w2;
    uint64_t c1 = run_workload(s1, 42, 60000, &w1);
    uint64_t c2 = run_workload(s2, 42, 60000, &w2);
    assert_true(c1 == c2);
    struct vs__store_stats a, b;
    vs__store_stats(s1, &a);
    vs__store_stats(s2, &b);
    assert_true(a.evictions > 10000);
    assert_true(a.cache_bytes <= tiny.cache_bytes + (1 << 20)); /* + the bounded free list */
    assert_int_equal(b.evictions, 0);
    assert_int_equal(b.cache_misses, b.cache_records);
    assert_true(w1 > 0);
    assert_int_equal(w2, 0);

    assert_same_state(s1, s2);
    /* and across a reopen of the tiny one */
    vs__store_close(s1);
    s1 = open_ok(d1, secs_ab, 2, &tiny);
    assert_same_state(s1, s2);
    vs__store_close(s1);
    vs__store_close(s2);
    tu_rmdir(d1);
    tu_rmdir(d2);
}

/* Dirty records are never evicted: past the budget the cache grows, asks for a commit, and the
 * commit brings it back within budget. */
static void test_dirty_records_stay(void **state)
{
    char *dir = tu_tmpdir();
    struct vs__store_options o = opts_default;
    o.cache_bytes = 32 << 10;
    struct vs__store *st = open_ok(dir, secs_ab, 2, &o);
    int first_want = -1;
    for (int i = 0; i < 2000; i++) {
        char uid[32];
        snprintf(uid, sizeof uid, "d%d", i);
        touch(st, uid, i, "i");
        if (first_want < 0 && vs__store_wants_commit(st)) {
            first_want = i;
        }
    }
    assert_true(first_want > 10 && first_want < 1000);
    struct vs__store_stats s;
    vs__store_stats(st, &s);
    assert_int_equal(s.cache_records, 2000);
    assert_int_equal(s.evictions, 0);
    assert_true(s.cache_bytes > o.cache_bytes);
    /* every dirty record still reads back its own uncommitted value */
    for (int i = 0; i < 2000; i += 37) {
        char uid[32];
        snprintf(uid, sizeof uid, "d%d", i);
        expect_customer(st, uid, 1, (double)i, "i");
    }
    assert_int_equal(vs__store_commit(st), 0);
    assert_false(vs__store_wants_commit(st));
    vs__store_stats(st, &s);
    assert_true(s.cache_records < 2000);
    assert_true(s.cache_bytes <= o.cache_bytes + (1 << 20));
    for (int i = 0; i < 2000; i += 37) {
        char uid[32];
        snprintf(uid, sizeof uid, "d%d", i);
        expect_customer(st, uid, 1, (double)i, "i");
    }
    vs__store_close(st);
    tu_rmdir(dir);
}

/* ==== Section versions ==== */

/* A passive section (its operator off) is kept as the record had it, through commits, evictions
 * and reads back, and a record without it does not gain it. */
static void test_passive_section_kept(void **state)
{
    char *dir = tu_tmpdir();
    struct vs__store *st = open_ok(dir, secs_ab, 2, &opts_default);
    touch(st, "u1", 5, "shoe");
    assert_int_equal(vs__store_commit(st), 0);
    vs__store_close(st);

    struct vs__section_desc off[2] = {secs_ab[0], secs_ab[1]};
    off[1].passive = 1;
    struct vs__store_options o = opts_default;
    o.cache_bytes = 16 << 10; /* a few records: u1 leaves the cache and is read back */
    st = open_ok(dir, off, 2, &o);
    struct vs__customer *c;
    int is_new;
    for (int round = 0; round < 3; round++) {
        assert_int_equal(vs__store_customer(st, "u1", 2, &c, &is_new), 0);
        ((struct sec_alpha *)vs__customer_section(c, 0))->count += 10;
        assert_int_equal(vs__store_customer(st, "u3", 2, &c, &is_new), 0);
        ((struct sec_alpha *)vs__customer_section(c, 0))->count++;
        assert_int_equal(vs__store_commit(st), 0);
        for (int i = 0; i < 200; i++) {
            char id[16];
            snprintf(id, sizeof id, "x%d", i);
            assert_int_equal(vs__store_customer(st, id, strlen(id), &c, &is_new), 0);
            ((struct sec_alpha *)vs__customer_section(c, 0))->count = 1;
        }
        assert_int_equal(vs__store_commit(st), 0);
    }
    vs__store_close(st);

    st = open_ok(dir, secs_ab, 2, &opts_default);
    assert_int_equal(vs__store_customer(st, "u1", 2, &c, &is_new), 0);
    assert_int_equal(((struct sec_alpha *)vs__customer_section(c, 0))->count, 31);
    const struct sec_beta *b = vs__customer_section(c, 1);
    assert_int_equal(b->n, 2);
    assert_int_equal(b->last_ts, 5000);
    assert_int_equal(vs__store_customer(st, "u3", 2, &c, &is_new), 0);
    assert_int_equal(((struct sec_alpha *)vs__customer_section(c, 0))->count, 3);
    b = vs__customer_section(c, 1);
    assert_int_equal(b->n, 0);
    assert_int_equal(b->last_ts, 0);
    vs__store_close(st);
    tu_rmdir(dir);
    (void)state;
}

static void test_section_upgrade(void **state)
{
    char *dir = tu_tmpdir();
    const struct vs__section_desc v1[] = {
        {"alpha", 1, sizeof(struct sec_alpha), NULL, 0},
        {"beta", 1, sizeof(struct sec_beta_v1), NULL, 0},
    };
    struct vs__store *st = open_ok(dir, v1, 2, &opts_default);
    struct vs__customer *c;
    int is_new;
    assert_int_equal(vs__store_customer(st, "old", 3, &c, &is_new), 0);
    ((struct sec_alpha *)vs__customer_section(c, 0))->count = 9;
    struct sec_beta_v1 *o = vs__customer_section(c, 1);
    o->n = 41;
    o->last_ts = -12345;
    assert_int_equal(vs__store_commit(st), 0);
    vs__store_close(st);

    /* version 2 with an upgrade: the old section is converted on read */
    upgrade_calls = 0;
    st = open_ok(dir, secs_ab, 2, &opts_default);
    assert_int_equal(vs__store_customer(st, "old", 3, &c, &is_new), 0);
    assert_int_equal(is_new, 0);
    assert_int_equal(upgrade_calls, 1);
    const struct sec_beta *b = vs__customer_section(c, 1);
    assert_int_equal(b->n, 41);
    assert_int_equal(b->flags, 7);
    assert_int_equal(b->last_ts, -12345);
    assert_int_equal(((struct sec_alpha *)vs__customer_section(c, 0))->count, 9);
    vs__store_close(st); /* not committed: still version 1 on disk */

    /* version 2 without an upgrade: a clear error */
    const struct vs__section_desc noup[] = {
        {"alpha", 1, sizeof(struct sec_alpha), NULL, 0},
        {"beta", 2, sizeof(struct sec_beta), NULL, 0},
    };
    st = open_ok(dir, noup, 2, &opts_default);
    assert_int_equal(vs__store_customer(st, "old", 3, &c, &is_new), VS_EVERSION);
    const char *msg = vs__store_last_error(st);
    assert_non_null(strstr(msg, "\"beta\""));
    assert_non_null(strstr(msg, "version 1"));
    assert_non_null(strstr(msg, "version 2"));
    assert_non_null(strstr(msg, "no upgrade"));
    vs__store_close(st);

    /* upgrade and commit: written back in version 2 */
    upgrade_calls = 0;
    st = open_ok(dir, secs_ab, 2, &opts_default);
    assert_int_equal(vs__store_customer(st, "old", 3, &c, &is_new), 0);
    assert_int_equal(vs__store_commit(st), 0);
    vs__store_close(st);
    st = open_ok(dir, secs_ab, 2, &opts_default);
    assert_int_equal(vs__store_customer(st, "old", 3, &c, &is_new), 0);
    assert_int_equal(upgrade_calls, 1);
    vs__store_close(st);
    tu_rmdir(dir);
}

static void test_section_newer_and_unknown(void **state)
{
    char *dir = tu_tmpdir();
    const struct vs__section_desc v3[] = {
        {"alpha", 1, sizeof(struct sec_alpha), NULL, 0},
        {"beta", 3, sizeof(struct sec_beta), NULL, 0},
        {"gamma", 1, 8, NULL, 0},
    };
    struct vs__store *st = open_ok(dir, v3, 3, &opts_default);
    struct vs__customer *c;
    int is_new;
    assert_int_equal(vs__store_customer(st, "n", 1, &c, &is_new), 0);
    ((struct sec_beta *)vs__customer_section(c, 1))->n = 1;
    assert_int_equal(vs__store_customer(st, "g", 1, &c, &is_new), 0);
    memset(vs__customer_section(c, 2), 0xab, 8);
    assert_int_equal(vs__store_commit(st), 0);
    vs__store_close(st);

    st = open_ok(dir, v3, 2, &opts_default); /* this build has no "gamma" */
    assert_int_equal(vs__store_customer(st, "n", 1, &c, &is_new), 0);
    assert_int_equal(vs__store_customer(st, "g", 1, &c, &is_new), VS_EVERSION);
    assert_non_null(strstr(vs__store_last_error(st), "\"gamma\""));
    vs__store_close(st);

    st = open_ok(dir, secs_ab, 2, &opts_default); /* beta version 2 < stored 3 */
    assert_int_equal(vs__store_customer(st, "n", 1, &c, &is_new), VS_EVERSION);
    const char *msg = vs__store_last_error(st);
    assert_non_null(strstr(msg, "\"beta\""));
    assert_non_null(strstr(msg, "newer"));
    assert_non_null(strstr(msg, "version 3"));
    assert_non_null(strstr(msg, "version 2"));
    /* the failed customer is not cached: asking again fails again, others still work */
    assert_int_equal(vs__store_customer(st, "n", 1, &c, &is_new), VS_EVERSION);
    assert_int_equal(vs__store_customer(st, "fresh", 5, &c, &is_new), 0);
    assert_int_equal(is_new, 1);
    vs__store_close(st);
    tu_rmdir(dir);
}

/* ==== Refused directories ==== */

static void expect_open_fails(const char *dir, int create, const char *needle)
{
    struct vs__store_options o = opts_default;
    o.create_if_missing = create;
    char err[512] = "";
    struct vs__store *st = vs__store_open(dir, secs_ab, 2, &o, err, sizeof err);
    if (st) {
        vs__store_close(st);
        fail_msg("open of %s succeeded, expected an error with \"%s\"", dir, needle);
    }
    print_message("refused as expected: %s\n", err);
    if (!strstr(err, needle)) {
        fail_msg("error \"%s\" does not contain \"%s\"", err, needle);
    }
}

static void test_missing_and_not_a_dir(void **state)
{
    char *dir = tu_tmpdir();
    char *missing = tu_path(dir, "nope");
    expect_open_fails(missing, 0, "does not exist");
    struct vs__store_options ro = opts_default;
    ro.read_only = 1;
    char err[512];
    assert_null(vs__store_open(missing, secs_ab, 2, &ro, err, sizeof err));
    assert_non_null(strstr(err, "does not exist"));
    expect_open_fails(dir, 0, "empty");
    char *file = tu_path(dir, "plain");
    tu_write_file(file, "x", 1);
    expect_open_fails(file, 1, "not a directory");
    /* create_if_missing makes the missing one */
    struct vs__store *st = open_ok(missing, secs_ab, 2, &opts_default);
    vs__store_close(st);
    free(missing);
    free(file);
    tu_rmdir(dir);
}

static void test_foreign_rocksdb(void **state)
{
    char *dir = tu_tmpdir();
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    char *rerr = NULL;
    rocksdb_t *db = rocksdb_open(o, dir, &rerr);
    assert_null(rerr);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_put(db, wo, "someone", 7, "else", 4, &rerr);
    assert_null(rerr);
    rocksdb_close(db);
    expect_open_fails(dir, 1, "not valuestream's");
    expect_open_fails(dir, 0, "not valuestream's");

    /* a database with our column families but no marker, and data in it */
    char *dir2 = tu_tmpdir();
    rocksdb_options_set_create_missing_column_families(o, 1);
    const char *names[] = {"default", "customers", "models", "timers", "meta"};
    const rocksdb_options_t *cfo[] = {o, o, o, o, o};
    rocksdb_column_family_handle_t *h[5];
    db = rocksdb_open_column_families(o, dir2, 5, names, cfo, h, &rerr);
    assert_null(rerr);
    rocksdb_put_cf(db, wo, h[1], "u", 1, "junk", 4, &rerr);
    assert_null(rerr);
    for (int i = 0; i < 5; i++) {
        rocksdb_column_family_handle_destroy(h[i]);
    }
    rocksdb_close(db);
    expect_open_fails(dir2, 1, "no valuestream format marker");

    /* another application's column families */
    char *dir3 = tu_tmpdir();
    const char *names3[] = {"default", "blocks"};
    db = rocksdb_open_column_families(o, dir3, 2, names3, cfo, h, &rerr);
    assert_null(rerr);
    rocksdb_column_family_handle_destroy(h[0]);
    rocksdb_column_family_handle_destroy(h[1]);
    rocksdb_close(db);
    expect_open_fails(dir3, 1, "\"blocks\"");

    /* an empty RocksDB (creation stopped before our column families): taken over */
    char *dir4 = tu_tmpdir();
    db = rocksdb_open(o, dir4, &rerr);
    assert_null(rerr);
    rocksdb_close(db);
    struct vs__store *st = open_ok(dir4, secs_ab, 2, &opts_default);
    vs__store_close(st);
    st = open_ok(dir4, secs_ab, 2, &opts_default);
    vs__store_close(st);

    rocksdb_writeoptions_destroy(wo);
    rocksdb_options_destroy(o);
    tu_rmdir(dir);
    tu_rmdir(dir2);
    tu_rmdir(dir3);
    tu_rmdir(dir4);
}

static void test_newer_format(void **state)
{
    char *dir = tu_tmpdir();
    struct vs__store *st = open_ok(dir, secs_ab, 2, &opts_default);
    vs__store_close(st);
    rocksdb_options_t *o = rocksdb_options_create();
    const char *names[] = {"default", "customers", "models", "timers", "meta"};
    const rocksdb_options_t *cfo[] = {o, o, o, o, o};
    rocksdb_column_family_handle_t *h[5];
    char *rerr = NULL;
    rocksdb_t *db = rocksdb_open_column_families(o, dir, 5, names, cfo, h, &rerr);
    assert_null(rerr);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_put_cf(db, wo, h[4], "format", 6, "valuestream-state 99", 20, &rerr);
    assert_null(rerr);
    for (int i = 0; i < 5; i++) {
        rocksdb_column_family_handle_destroy(h[i]);
    }
    rocksdb_close(db);
    expect_open_fails(dir, 1, "format version 99, newer");

    db = rocksdb_open_column_families(o, dir, 5, names, cfo, h, &rerr);
    assert_null(rerr);
    rocksdb_put_cf(db, wo, h[4], "format", 6, "something", 9, &rerr);
    assert_null(rerr);
    for (int i = 0; i < 5; i++) {
        rocksdb_column_family_handle_destroy(h[i]);
    }
    rocksdb_close(db);
    expect_open_fails(dir, 1, "unreadable format marker");
    rocksdb_writeoptions_destroy(wo);
    rocksdb_options_destroy(o);
    tu_rmdir(dir);
}

static void fill_garbage(const char *dir, const char *name, size_t len, uint64_t *rnd)
{
    unsigned char *buf = malloc(len);
    for (size_t i = 0; i < len; i++) {
        buf[i] = (unsigned char)tu_rand(rnd);
    }
    char *p = tu_path(dir, name);
    tu_write_file(p, buf, len);
    free(p);
    free(buf);
}

static void test_corrupt_dir(void **state)
{
    uint64_t rnd = 7;
    /* random files, no CURRENT */
    char *dir = tu_tmpdir();
    fill_garbage(dir, "000012.sst", 5000, &rnd);
    fill_garbage(dir, "notes.txt", 100, &rnd);
    expect_open_fails(dir, 1, "no RocksDB database");
    /* random files that look like a RocksDB directory */
    char *dir2 = tu_tmpdir();
    for (int round = 0; round < 5; round++) {
        fill_garbage(dir2, "CURRENT", 1 + tu_rand(&rnd) % 40, &rnd);
        fill_garbage(dir2, "MANIFEST-000001", 1 + tu_rand(&rnd) % 4000, &rnd);
        fill_garbage(dir2, "000003.log", tu_rand(&rnd) % 4000, &rnd);
        fill_garbage(dir2, "OPTIONS-000005", tu_rand(&rnd) % 1000, &rnd);
        expect_open_fails(dir2, 1, "corrupt");
    }
    /* CURRENT naming a manifest full of garbage */
    char *current = tu_path(dir2, "CURRENT");
    tu_write_file(current, "MANIFEST-000001\n", 16);
    free(current);
    expect_open_fails(dir2, 1, "corrupt");

    /* a real store whose table files were overwritten with garbage of the same size: open or
     * reads fail with an error, never a crash */
    char *dir3 = tu_tmpdir();
    struct vs__store *st = open_ok(dir3, secs_ab, 2, &opts_default);
    for (int i = 0; i < 500; i++) {
        char uid[32];
        snprintf(uid, sizeof uid, "c%d", i);
        touch(st, uid, i, "x");
    }
    assert_int_equal(vs__store_commit(st), 0);
    vs__store_close(st); /* flushes: the records are in .sst files */
    int ssts = 0;
    DIR *d = opendir(dir3);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n > 4 && strcmp(de->d_name + n - 4, ".sst") == 0) {
            char *p = tu_path(dir3, de->d_name);
            struct stat sb;
            stat(p, &sb);
            fill_garbage(dir3, de->d_name, (size_t)sb.st_size, &rnd);
            free(p);
            ssts++;
        }
    }
    closedir(d);
    assert_true(ssts > 0);
    char err[512];
    st = vs__store_open(dir3, secs_ab, 2, &opts_default, err, sizeof err);
    if (st) {
        struct vs__customer *c;
        int is_new;
        int rc = vs__store_customer(st, "c1", 2, &c, &is_new);
        print_message("read refused as expected: %s\n", vs__store_last_error(st));
        assert_int_equal(rc, VS_ESTORE);
        assert_non_null(strstr(vs__store_last_error(st), "orrupt"));
        vs__store_close(st);
    } else {
        print_message("refused as expected: %s\n", err);
        assert_true(strlen(err) > 10);
    }
    tu_rmdir(dir);
    tu_rmdir(dir2);
    tu_rmdir(dir3);
}

static void test_read_only(void **state)
{
    char *dir = tu_tmpdir();
    struct vs__store *st = open_ok(dir, secs_ab, 2, &opts_default);
    touch(st, "r", 3, "ro");
    assert_int_equal(vs__store_set_offset(st, "t", 0, 9), 0);
    assert_int_equal(vs__store_commit(st), 0);
    vs__store_close(st);
    struct vs__store_options ro = opts_default;
    ro.read_only = 1;
    ro.create_if_missing = 0;
    st = open_ok(dir, secs_ab, 2, &ro);
    expect_customer(st, "r", 1, 3.0, "ro");
    int64_t v;
    assert_int_equal(vs__store_get_offset(st, "t", 0, &v), 0);
    assert_int_equal(v, 9);
    assert_int_equal(vs__store_set_offset(st, "t", 0, 10), VS_EINVAL);
    assert_int_equal(vs__store_timer_set(st, 0, 1, "r", 0, 0), VS_EINVAL);
    assert_int_equal(vs__store_model_put(st, "a/b", "x", 1), VS_EINVAL);
    assert_int_equal(vs__store_commit(st), VS_EINVAL);
    vs__store_close(st);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_commit_is_one_batch),
        cmocka_unit_test(test_meta_and_models),
        cmocka_unit_test(test_tiny_cache_equals_huge_cache),
        cmocka_unit_test(test_sealed_commits_equal_plain),
        cmocka_unit_test(test_evicted_sealed_records_read_back),
        cmocka_unit_test(test_dirty_records_stay),
        cmocka_unit_test(test_passive_section_kept),
        cmocka_unit_test(test_section_upgrade),
        cmocka_unit_test(test_section_newer_and_unknown),
        cmocka_unit_test(test_missing_and_not_a_dir),
        cmocka_unit_test(test_foreign_rocksdb),
        cmocka_unit_test(test_newer_format),
        cmocka_unit_test(test_corrupt_dir),
        cmocka_unit_test(test_read_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
