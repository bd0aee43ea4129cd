/*
 * Tests of `valuestream inspect` (engine/inspect.c) over state written through the store API,
 * with this file's own operator table (the test links vs_core only): --all --json sorted by user
 * id and identical for the same state however it was written, --user, --stats, and clear errors
 * with a non-zero exit for bad usage and for missing, foreign, corrupt and newer directories.
 */
#include "store_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <rocksdb/c.h>

#include <valuestream/error.h>

#include "inspect.h"
#include "registry.h"
#include "store.h"

/* ==== The test's operator table ==== */

struct alpha {
    int64_t count;
    double sum;
};

/* A describe whose output grows with count, past inspect's first buffer. */
static int alpha_describe(const void *section, char *buf, size_t buflen)
{
    const struct alpha *a = section;
    char pad[1024];
    size_t n = (size_t)(a->count > 0 && a->count < 20 ? a->count : 0) * 50;
    memset(pad, 'x', n);
    pad[n] = '\0';
    return snprintf(buf, buflen, "{\"count\":%lld,\"sum\":%.2f,\"pad\":\"%s\"}",
                    (long long)a->count, a->sum, pad);
}

static const struct vs_operator op_alpha = {
    .name = "alpha",
    .state_version = 1,
    .state_size = sizeof(struct alpha),
    .describe = alpha_describe,
};
static const struct vs_operator op_nostate = {.name = "nostate"};
static const struct vs_operator op_beta = {.name = "beta", .state_version = 1, .state_size = 3};

const struct vs_operator *const vs__operators[] = {&op_alpha, &op_nostate, &op_beta};
const int vs__operator_count = 3;

int vs__operator_index(const char *name)
{
    for (int i = 0; i < vs__operator_count; i++) {
        if (strcmp(vs__operators[i]->name, name) == 0) {
            return i;
        }
    }
    return -1;
}

static const struct vs__section_desc descs[] = {
    {"alpha", 1, sizeof(struct alpha), NULL, 0},
    {"beta", 1, 3, NULL, 0},
};

/* ==== Helpers ==== */

struct run {
    int argc;
    char **argv;
};

static int run_inspect(void *arg)
{
    struct run *r = arg;
    return vs__inspect_main(r->argc, r->argv);
}

/* Run inspect with the arguments after "inspect", NULL-terminated. */
static int inspect(struct tu_capture *cap, ...)
{
    char *argv[16] = {"inspect"};
    int argc = 1;
    va_list ap;
    va_start(ap, cap);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && argc < 15) {
        argv[argc++] = a;
    }
    va_end(ap);
    struct run r = {argc, argv};
    return tu_capture_run(run_inspect, &r, cap);
}

struct customer {
    const char *id;
    const char *json_id; /* as it must appear in JSON */
    int64_t count;
    double sum;
    unsigned char beta[3];
};

static const struct customer customers[] = {
    {"c10", "\"c10\"", 3, 1.5, {1, 2, 3}},
    {"c2", "\"c2\"", 7, 20.25, {0, 0, 0}},
    {"a\"q", "\"a\\\"q\"", 1, 0.0, {0xff, 0, 0x10}},
    {"b\\x\ty", "\"b\\\\x\\u0009y\"", 0, 0.0, {0, 0, 9}},
    {"zz-last", "\"zz-last\"", 12, -3.0, {4, 4, 4}},
};
#define NCUST ((int)(sizeof customers / sizeof customers[0]))

/* Write the customers in the order given by perm, committing every `every` customers. */
static void write_state(const char *dir, const int *perm, int every, size_t cache)
{
    struct vs__store_options o = {.cache_bytes = cache, .create_if_missing = 1, .no_sync = 1};
    char err[512];
    struct vs__store *st = vs__store_open(dir, descs, 2, &o, err, sizeof err);
    if (!st) {
        fail_msg("%s", err);
    }
    for (int k = 0; k < NCUST; k++) {
        const struct customer *cu = &customers[perm[k]];
        struct vs__customer *c;
        int is_new;
        assert_int_equal(vs__store_customer(st, cu->id, strlen(cu->id), &c, &is_new), 0);
        struct alpha *a = vs__customer_section(c, 0);
        a->count = cu->count;
        a->sum = cu->sum;
        memcpy(vs__customer_section(c, 1), cu->beta, 3);
        if ((k + 1) % every == 0) {
            assert_int_equal(vs__store_commit(st), 0);
        }
    }
    for (int p = 11; p >= 0; p--) {
        assert_int_equal(vs__store_set_offset(st, "shop.events", p, 100 * p + 1), 0);
        assert_int_equal(vs__store_set_watermark(st, "shop.events", p, 1700000000000 + p), 0);
    }
    assert_int_equal(vs__store_commit(st), 0);
    vs__store_close(st);
}

static int by_id(const void *a, const void *b)
{
    return strcmp(customers[*(const int *)a].id, customers[*(const int *)b].id);
}

/* The JSON line of a customer, built from the test data. */
static void expected_line(const struct customer *cu, char *buf, size_t len)
{
    char alpha[2048];
    alpha_describe(&(struct alpha){cu->count, cu->sum}, alpha, sizeof alpha);
    snprintf(buf, len, "{\"user_id\":%s,\"alpha\":%s,\"beta\":\"%02x%02x%02x\"}\n", cu->json_id,
             alpha, cu->beta[0], cu->beta[1], cu->beta[2]);
}

static char *expected_all(void)
{
    int order[NCUST];
    for (int i = 0; i < NCUST; i++) {
        order[i] = i;
    }
    qsort(order, NCUST, sizeof order[0], by_id);
    size_t cap = 16384, len = 0;
    char *out = calloc(1, cap);
    for (int i = 0; i < NCUST; i++) {
        expected_line(&customers[order[i]], out + len, cap - len);
        len += strlen(out + len);
    }
    return out;
}

/* ==== Tests ==== */

static void test_all_json_sorted_and_stable(void **state)
{
    char *d1 = tu_tmpdir(), *d2 = tu_tmpdir();
    const int p1[NCUST] = {0, 1, 2, 3, 4}, p2[NCUST] = {4, 2, 0, 3, 1};
    write_state(d1, p1, 1, (size_t)1 << 20);
    write_state(d2, p2, 2, 0); /* another order, other commits, a cache that holds nothing */
    struct tu_capture a, b;
    assert_int_equal(inspect(&a, "--state", d1, "--all", "--json", NULL), 0);
    assert_int_equal(inspect(&b, "--json", "--all", "--state", d2, NULL), 0);
    char *want = expected_all();
    assert_string_equal(a.out, want);
    assert_string_equal(b.out, want);
    assert_string_equal(a.err, "");
    tu_capture_free(&b);
    /* reading does not change anything: a second run gives the same bytes */
    assert_int_equal(inspect(&b, "--state", d1, "--all", "--json", NULL), 0);
    assert_string_equal(a.out, b.out);
    tu_capture_free(&a);
    tu_capture_free(&b);
    free(want);

    /* human-readable form: every customer, then a JSON summary as the last line */
    assert_int_equal(inspect(&a, "--state", d1, "--all", NULL), 0);
    assert_non_null(strstr(a.out, "customer \"c10\"\n  alpha (v1): {\"count\":3"));
    assert_non_null(strstr(a.out, "  beta (v1): \"010203\"\n"));
    const char *last = strrchr(a.out, '{');
    assert_string_equal(last, "{\"customers\":5}\n");
    tu_capture_free(&a);
    tu_rmdir(d1);
    tu_rmdir(d2);
}

static void test_user(void **state)
{
    char *dir = tu_tmpdir();
    const int perm[NCUST] = {3, 1, 4, 0, 2};
    write_state(dir, perm, 5, (size_t)1 << 20);
    struct tu_capture c;
    char want[4096];
    expected_line(&customers[1], want, sizeof want);
    assert_int_equal(inspect(&c, "--state", dir, "--user", "c2", "--json", NULL), 0);
    assert_string_equal(c.out, want);
    tu_capture_free(&c);
    assert_int_equal(inspect(&c, "--state=" /* joined form */, "--user=a\"q", NULL), 2);
    tu_capture_free(&c);
    char *joined = NULL;
    assert_true(asprintf(&joined, "--state=%s", dir) > 0);
    expected_line(&customers[2], want, sizeof want);
    assert_int_equal(inspect(&c, joined, "--user=a\"q", NULL), 0);
    /* human form ends with the record's JSON line */
    size_t ol = strlen(c.out), wl = strlen(want);
    assert_true(ol > wl);
    assert_string_equal(c.out + ol - wl, want);
    tu_capture_free(&c);
    assert_int_equal(inspect(&c, joined, "--user", "nobody", NULL), 1);
    assert_non_null(strstr(c.err, "no customer \"nobody\""));
    tu_capture_free(&c);
    free(joined);
    tu_rmdir(dir);
}

static void test_stats(void **state)
{
    char *dir = tu_tmpdir();
    const int perm[NCUST] = {0, 1, 2, 3, 4};
    write_state(dir, perm, 1, (size_t)1 << 20);
    struct tu_capture c;
    assert_int_equal(inspect(&c, "--state", dir, "--stats", NULL), 0);
    assert_non_null(strstr(c.out, "customers: 5 records"));
    /* partitions in numeric order: 0 before 1 before 10 */
    const char *p0 = strstr(c.out, "shop.events/0: next offset 1, watermark 1700000000000\n");
    const char *p1 = strstr(c.out, "shop.events/1: next offset 101,");
    const char *p10 = strstr(c.out, "shop.events/10: next offset 1001,");
    assert_non_null(p0);
    assert_non_null(p1);
    assert_non_null(p10);
    assert_true(p0 < p1 && p1 < p10);
    const char *last = strrchr(c.out, '\n');
    while (last > c.out && last[-1] != '\n') {
        last--;
    }
    assert_true(strncmp(last, "{\"customers\":5,\"record_bytes\":", 30) == 0);
    assert_non_null(strstr(last, "\"sections\":{\"alpha\":1,\"beta\":1}"));
    assert_non_null(strstr(last, "{\"topic\":\"shop.events\",\"partition\":0,\"next_offset\":1,"
                                 "\"watermark\":1700000000000}"));
    char *json_last = strdup(last);
    tu_capture_free(&c);
    assert_int_equal(inspect(&c, "--state", dir, "--stats", "--json", NULL), 0);
    assert_string_equal(c.out, json_last);
    free(json_last);
    tu_capture_free(&c);
    tu_rmdir(dir);
}

static void expect_fail(int want_rc, const char *needle, ...)
{
    char *argv[16] = {"inspect"};
    int argc = 1;
    va_list ap;
    va_start(ap, needle);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && argc < 15) {
        argv[argc++] = a;
    }
    va_end(ap);
    struct run r = {argc, argv};
    struct tu_capture c;
    int rc = tu_capture_run(run_inspect, &r, &c);
    print_message("exit %d: %s", rc, c.err);
    assert_int_equal(rc, want_rc);
    if (!strstr(c.err, needle)) {
        fail_msg("stderr \"%s\" lacks \"%s\"", c.err, needle);
    }
    assert_string_equal(c.out, "");
    tu_capture_free(&c);
}

static void test_usage(void **state)
{
    struct tu_capture c;
    assert_int_equal(inspect(&c, "--help", NULL), 0);
    assert_non_null(strstr(c.out, "usage: valuestream inspect"));
    tu_capture_free(&c);
    expect_fail(2, "--state DIR is required", "--all", NULL);
    expect_fail(2, "exactly one of", "--state", "/tmp", NULL);
    expect_fail(2, "exactly one of", "--state", "/tmp", "--all", "--user", "u", NULL);
    expect_fail(2, "exactly one of", "--state", "/tmp", "--all", "--stats", NULL);
    expect_fail(2, "unknown argument \"--bogus\"", "--state", "/tmp", "--all", "--bogus", NULL);
    expect_fail(2, "--state needs a value", "--all", "--state", NULL);
    expect_fail(2, "non-empty", "--state", "/tmp", "--user", "", NULL);
}

static void test_bad_directories(void **state)
{
    char *dir = tu_tmpdir();
    char *missing = tu_path(dir, "missing");
    expect_fail(1, "does not exist", "--state", missing, "--all", "--json", NULL);
    expect_fail(1, "is empty", "--state", dir, "--stats", NULL);

    /* foreign: a RocksDB database of someone else */
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    char *rerr = NULL;
    rocksdb_t *db = rocksdb_open(o, missing, &rerr);
    assert_null(rerr);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_put(db, wo, "k", 1, "v", 1, &rerr);
    assert_null(rerr);
    rocksdb_close(db);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_options_destroy(o);
    expect_fail(1, "not valuestream's", "--state", missing, "--all", NULL);

    /* corrupt: garbage files */
    char *junk = tu_tmpdir();
    char *cur = tu_path(junk, "CURRENT"), *man = tu_path(junk, "MANIFEST-000004");
    tu_write_file(cur, "MANIFEST-000004\n", 16);
    tu_write_file(man, "\x01\x02garbage garbage garbage\xff", 27);
    expect_fail(1, "corrupt", "--state", junk, "--all", NULL);

    /* a section written by a newer build of an operator */
    char *newer = tu_tmpdir();
    const struct vs__section_desc v2[] = {{"alpha", 2, sizeof(struct alpha), NULL, 0}};
    struct vs__store_options so = {.cache_bytes = 1 << 20, .create_if_missing = 1, .no_sync = 1};
    char err[512];
    struct vs__store *st = vs__store_open(newer, v2, 1, &so, err, sizeof err);
    assert_non_null(st);
    struct vs__customer *c;
    int is_new;
    assert_int_equal(vs__store_customer(st, "u", 1, &c, &is_new), 0);
    ((struct alpha *)vs__customer_section(c, 0))->count = 1;
    assert_int_equal(vs__store_commit(st), 0);
    vs__store_close(st);
    struct tu_capture cap;
    assert_int_equal(inspect(&cap, "--state", newer, "--all", "--json", NULL), 1);
    assert_non_null(strstr(cap.err, "operator \"alpha\": stored section version 2 is newer"));
    tu_capture_free(&cap);

    free(missing);
    free(cur);
    free(man);
    tu_rmdir(dir);
    tu_rmdir(junk);
    tu_rmdir(newer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_json_sorted_and_stable),
        cmocka_unit_test(test_user),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_bad_directories),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
