/*
 * Unit tests of `valuestream eval anomaly` (operators/fraud/eval_anomaly.h): the ranking metrics,
 * CSV errors that name the line, the command's arguments, and a prequential AUC on a slice of the
 * ODDS shuttle set (run from the repository root, data in ../shared/data).
 */
#include <math.h>
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

#include "operators/fraud/eval_anomaly.h"

static void test_auc_metrics(void **state)
{
    (void)state;
    const double s[6] = {0.9, 0.8, 0.7, 0.3, 0.2, 0.1};
    const unsigned char perfect[6] = {1, 1, 0, 0, 0, 0}, reversed[6] = {0, 0, 0, 0, 1, 1};
    assert_true(fabs(vs_roc_auc(s, perfect, 6) - 1.0) < 1e-12);
    assert_true(fabs(vs_pr_auc(s, perfect, 6) - 1.0) < 1e-12);
    assert_true(fabs(vs_roc_auc(s, reversed, 6)) < 1e-12);
    /* One positive ranked second of six: AUC 4/5, AP 1/2. */
    const unsigned char second[6] = {0, 1, 0, 0, 0, 0};
    assert_true(fabs(vs_roc_auc(s, second, 6) - 0.8) < 1e-12);
    assert_true(fabs(vs_pr_auc(s, second, 6) - 0.5) < 1e-12);
    /* Ties count half. */
    const double tied[4] = {0.5, 0.5, 0.5, 0.5};
    const unsigned char mixed[4] = {1, 0, 1, 0};
    assert_true(fabs(vs_roc_auc(tied, mixed, 4) - 0.5) < 1e-12);
    assert_true(isnan(vs_roc_auc(s, (const unsigned char[6]){0}, 6)));
}

static char tmp_path[64];

static const char *write_csv(const char *text)
{
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/vs_eval_test_XXXXXX");
    int fd = mkstemp(tmp_path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return tmp_path;
}

/* Loading text must fail with a message holding each of the needles. */
static void expect_error(const char *text, const char *needle1, const char *needle2)
{
    struct vs_anomaly_data d;
    char err[512] = "";
    const char *path = write_csv(text);
    assert_int_not_equal(vs_anomaly_csv_load(path, &d, err, sizeof(err)), 0);
    unlink(path);
    if (!strstr(err, needle1) || (needle2 && !strstr(err, needle2))) {
        fail_msg("error '%s' lacks '%s' / '%s'", err, needle1, needle2 ? needle2 : "");
    }
}

static void test_csv_errors_name_the_line(void **state)
{
    (void)state;
    expect_error("a,b,label\n1,2,0\n3,4\n", ":3:", "2 fields");
    expect_error("a,b,label\n1,2,0\n3,4,1\n5,x7,0\n", ":4:", "'x7'");
    expect_error("a,b,label\n1,2,0\n1,nan,0\n", ":3:", "'b'");
    expect_error("a,b,c\n1,2,0\n", ":1:", "label");
    expect_error("a,b,label\n1,2,0\n1,2,2\n", ":3:", "label");
    expect_error("", ":1:", NULL);
    expect_error("a,label\n", "no data rows", NULL);

    struct vs_anomaly_data d;
    char err[512];
    const char *path = write_csv("x, y ,label\r\n1,2,0\r\n\r\n3.5,-4e2,1\r\n");
    assert_int_equal(vs_anomaly_csv_load(path, &d, err, sizeof(err)), 0);
    unlink(path);
    assert_int_equal(d.rows, 2);
    assert_int_equal(d.dims, 2);
    assert_true(d.x[2] == 3.5 && d.x[3] == -400.0);
    assert_int_equal(d.label[0], 0);
    assert_int_equal(d.label[1], 1);
    vs_anomaly_data_release(&d);
}

static int run_main(int argc, const char **argv)
{
    return vs_eval_anomaly_main(argc, (char **)argv);
}

static void test_command_arguments(void **state)
{
    (void)state;
    const char *help[] = {"anomaly", "--help"};
    assert_int_equal(run_main(2, help), 0);
    const char *none[] = {"anomaly"};
    assert_int_not_equal(run_main(1, none), 0);
    const char *path = write_csv("a,b,label\n1,2,0\n2,3,1\n3,1,0\n");
    const char *unknown[] = {"anomaly", "--csv", path, "--set", "fraud.tress=10"};
    assert_int_not_equal(run_main(5, unknown), 0);
    const char *badval[] = {"anomaly", "--csv", path, "--set", "fraud.trees=many"};
    assert_int_not_equal(run_main(5, badval), 0);
    const char *bad_window[] = {"anomaly", "--csv", path, "--set", "fraud.window=8"};
    assert_int_not_equal(run_main(5, bad_window), 0);
    const char *bad_seed[] = {"anomaly", "--csv", path, "--shuffle", "x"};
    assert_int_not_equal(run_main(5, bad_seed), 0);
    const char *ok[] = {"anomaly", "--csv", path, "--shuffle", "3", "--set", "fraud.trees=10"};
    assert_int_equal(run_main(7, ok), 0);
    unlink(path);
    const char *missing[] = {"anomaly", "--csv", "/nonexistent/x.csv"};
    assert_int_not_equal(run_main(3, missing), 0);
}

static void test_shuttle_slice_auc(void **state)
{
    (void)state;
    struct vs_anomaly_data d;
    char err[512];
    int rc = vs_anomaly_csv_load("../shared/data/anomaly/shuttle.csv", &d, err, sizeof(err));
    if (rc != 0) {
        fail_msg("%s", err);
    }
    d.rows = 6000; /* a slice keeps the test fast */
    struct vs_iforest_config c;
    vs_iforest_config_default(&c, d.dims);
    struct vs_anomaly_result res, again, shuffled;
    assert_int_equal(vs_anomaly_run(&d, &c, 0, 0, &res, NULL, NULL, err, sizeof(err)), 0);
    assert_int_equal(res.rows, 6000);
    assert_true(res.anomalies > 100);
    assert_true(res.roc_auc > 0.97);
    assert_true(res.pr_auc > 0.6);
    /* The same run gives the same numbers; a shuffled one is as good. */
    assert_int_equal(vs_anomaly_run(&d, &c, 0, 0, &again, NULL, NULL, err, sizeof(err)), 0);
    assert_true(again.roc_auc == res.roc_auc && again.pr_auc == res.pr_auc);
    assert_int_equal(vs_anomaly_run(&d, &c, 1, 9, &shuffled, NULL, NULL, err, sizeof(err)), 0);
    assert_true(shuffled.roc_auc > 0.97);
    d.rows = 0;
    vs_anomaly_data_release(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auc_metrics),
        cmocka_unit_test(test_csv_errors_name_the_line),
        cmocka_unit_test(test_command_arguments),
        cmocka_unit_test(test_shuttle_slice_auc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
