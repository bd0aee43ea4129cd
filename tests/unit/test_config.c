/*
 * Configuration: defaults, typed values, files, --set, and the errors users see for an
 * unknown key, a bad value and a missing file (each naming the key or the file).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <valuestream/error.h>

#include "config.h"

static const struct vs_config_key table[] = {
    {"a.int", VS_CONFIG_INT, "7", "an integer"},
    {"a.double", VS_CONFIG_DOUBLE, "0.5", "a number"},
    {"a.bool", VS_CONFIG_BOOL, "false", "a flag"},
    {"a.string", VS_CONFIG_STRING, "x", "a string"},
    {NULL, 0, NULL, NULL},
};

static struct vs_config *new_config(void)
{
    const struct vs_config_key *const tables[] = {table};
    return vs__config_new(tables, 1);
}

static void test_defaults_and_set(void **state)
{
    struct vs_config *cfg = new_config();
    char err[256];
    assert_int_equal(vs_config_int(cfg, "a.int"), 7);
    assert_true(vs_config_double(cfg, "a.double") == 0.5);
    assert_int_equal(vs_config_bool(cfg, "a.bool"), 0);
    assert_string_equal(vs_config_str(cfg, "a.string"), "x");
    assert_int_equal(vs__config_is_set(cfg, "a.int"), 0);
    assert_int_equal(vs__config_set_arg(cfg, "a.int=-12", err, sizeof(err)), 0);
    assert_int_equal(vs__config_set_arg(cfg, "a.bool=yes", err, sizeof(err)), 0);
    assert_int_equal(vs__config_set_arg(cfg, "a.string=with=equals", err, sizeof(err)), 0);
    assert_int_equal(vs_config_int(cfg, "a.int"), -12);
    assert_int_equal(vs_config_bool(cfg, "a.bool"), 1);
    assert_string_equal(vs_config_str(cfg, "a.string"), "with=equals");
    assert_int_equal(vs__config_is_set(cfg, "a.int"), 1);
    vs__config_free(cfg);
}

static void test_unknown_key(void **state)
{
    struct vs_config *cfg = new_config();
    char err[256];
    assert_int_equal(vs__config_set_arg(cfg, "a.nope=1", err, sizeof(err)), VS_ECONFIG);
    assert_non_null(strstr(err, "'a.nope'"));
    assert_int_equal(vs__config_set_arg(cfg, "novalue", err, sizeof(err)), VS_ECONFIG);
    vs__config_free(cfg);
}

static void test_bad_values(void **state)
{
    struct vs_config *cfg = new_config();
    char err[256];
    assert_int_equal(vs__config_set(cfg, "a.int", "12x", err, sizeof(err)), VS_ECONFIG);
    assert_non_null(strstr(err, "'a.int'"));
    assert_non_null(strstr(err, "integer"));
    assert_int_equal(vs__config_set(cfg, "a.double", "nan", err, sizeof(err)), VS_ECONFIG);
    assert_non_null(strstr(err, "'a.double'"));
    assert_int_equal(vs__config_set(cfg, "a.bool", "maybe", err, sizeof(err)), VS_ECONFIG);
    assert_non_null(strstr(err, "'a.bool'"));
    /* A rejected value leaves the old one in place. */
    assert_int_equal(vs_config_int(cfg, "a.int"), 7);
    vs__config_free(cfg);
}

static void test_file(void **state)
{
    char path[] = "/tmp/vs-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# a comment\n\n a.int = 99 \nkafka.consumer.fetch.min.bytes=1\na.string=hello\n");
    fclose(f);
    struct vs_config *cfg = new_config();
    char err[256];
    assert_int_equal(vs__config_load_file(cfg, path, err, sizeof(err)), 0);
    assert_int_equal(vs_config_int(cfg, "a.int"), 99);
    assert_string_equal(vs_config_str(cfg, "a.string"), "hello");

    f = fopen(path, "w");
    fprintf(f, "a.int=1\nbogus.key=2\n");
    fclose(f);
    assert_int_equal(vs__config_load_file(cfg, path, err, sizeof(err)), VS_ECONFIG);
    assert_non_null(strstr(err, ":2:"));
    assert_non_null(strstr(err, "'bogus.key'"));
    unlink(path);

    assert_int_equal(vs__config_load_file(cfg, path, err, sizeof(err)), VS_EIO);
    assert_non_null(strstr(err, path));
    vs__config_free(cfg);
}

static int count_kafka(void *arg, const char *key, const char *value, char target)
{
    char *seen = arg;
    size_t n = strlen(seen);
    seen[n] = target;
    seen[n + 1] = 0;
    return 0;
}

static void test_kafka_passthrough(void **state)
{
    struct vs_config *cfg = new_config();
    char err[256], seen[8] = "";
    assert_int_equal(vs__config_set(cfg, "kafka.consumer.x", "1", err, sizeof(err)), 0);
    assert_int_equal(vs__config_set(cfg, "kafka.producer.y", "2", err, sizeof(err)), 0);
    assert_int_equal(vs__config_set(cfg, "kafka.z", "3", err, sizeof(err)), 0);
    vs__config_foreach_kafka(cfg, count_kafka, seen);
    assert_string_equal(seen, "cpb");
    vs__config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_set), cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_bad_values),       cmocka_unit_test(test_file),
        cmocka_unit_test(test_kafka_passthrough),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
