/*
 * Tests of `valuestream eval recommend`: the prequential protocol on a log small enough to
 * work out by hand, the three input formats, and clear errors on bad input.
 */
#include <fcntl.h>
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

#include "operators/recommend/eval_recommend.h"

static char out_text[65536], err_text[65536];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* Run the command with stdout and stderr captured into out_text and err_text. */
static int run(int argc, const char **argv)
{
    char op[] = "/tmp/vs_eval_out_XXXXXX", ep[] = "/tmp/vs_eval_err_XXXXXX";
    int of = mkstemp(op), ef = mkstemp(ep);
    assert_true(of >= 0 && ef >= 0);
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    dup2(of, 1);
    dup2(ef, 2);
    int rc = vs_eval_recommend_main(argc, (char **)argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    close(of);
    close(ef);
    slurp(op, out_text, sizeof(out_text));
    slurp(ep, err_text, sizeof(err_text));
    unlink(op);
    unlink(ep);
    return rc;
}

static double json_num(const char *json, const char *section, const char *key)
{
    const char *p = section ? strstr(json, section) : json;
    assert_non_null(p);
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(p, pat);
    assert_non_null(p);
    return strtod(p + strlen(pat), NULL);
}

static const char *last_line(void)
{
    size_t n = strlen(out_text);
    while (n > 0 && out_text[n - 1] == '\n') {
        out_text[--n] = 0;
    }
    const char *nl = strrchr(out_text, '\n');
    return nl ? nl + 1 : out_text;
}

/*
 * In time order (c,3 comes after a,2). Items in order of first appearance: 1, 2, 3, 9, 5.
 *   b,2 @3  test point with an item never seen before: a miss for everyone.
 *   a,2 @4  test point: a had 1; candidates {2}: a hit at rank 1 for every ranker.
 *   c,1 @6  test point: c had 3; candidates {1, 2}. Popularity: 2 was seen later than 1, so
 *           its decayed count is higher: 1 is second (NDCG 1/log2 3). Co-occurrence: 3 has no
 *           neighbours, all scores tie, the earlier-seen 1 is first.
 *   a,1 @7  a repeat pair: not a test point.   d,9 @8  d's first interaction: not one either.
 *   b,5 @9  test point with an item never seen: a miss for everyone.
 */
static const char *tiny_csv = "user_id,item_id,ts\n"
                              "a,1,1\n"
                              "b,1,2\n"
                              "b,2,3\n"
                              "c,3,5\n"
                              "a,2,4\n"
                              "c,1,6\n"
                              "a,1,7\n"
                              "d,9,8\n"
                              "b,5,9\n";

static void protocol_on_a_tiny_log(void **state)
{
    write_file("/tmp/vs_eval_tiny.csv", tiny_csv);
    const char *argv[] = {"recommend", "--input", "/tmp/vs_eval_tiny.csv", "--format", "csv"};
    assert_int_equal(run(5, argv), 0);
    const char *j = last_line();
    assert_int_equal(j[0], '{');
    assert_int_equal((int)json_num(j, NULL, "test_points"), 4);
    assert_true(json_num(j, NULL, "events_per_s") > 0);
    assert_true(fabs(json_num(j, "\"model\"", "hr@10") - 0.5) < 1e-5);
    assert_true(fabs(json_num(j, "\"recent_popularity\"", "hr@10") - 0.5) < 1e-5);
    assert_true(
        fabs(json_num(j, "\"recent_popularity\"", "ndcg@10") - (1.0 + 1.0 / log2(3.0)) / 4) < 1e-5);
    assert_true(fabs(json_num(j, "\"cooccurrence\"", "hr@10") - 0.5) < 1e-5);
    assert_true(fabs(json_num(j, "\"cooccurrence\"", "ndcg@10") - 0.5) < 1e-5);
    unlink("/tmp/vs_eval_tiny.csv");
}

/* tiny_csv as MovieLens ratings (the users and items are numbers). */
static const char *tiny_ratings = "1\t1\t5\t1\n"
                                  "2\t1\t3\t2\n"
                                  "2\t2\t4\t3\n"
                                  "3\t3\t1\t5\n"
                                  "1\t2\t2\t4\n"
                                  "3\t1\t5\t6\n"
                                  "1\t1\t5\t7\n"
                                  "4\t9\t5\t8\n"
                                  "2\t5\t5\t9\n";

/* The same log in the other two formats gives the same counts (ordering rules included). */
static void formats_agree(void **state)
{
    write_file("/tmp/vs_eval_tiny.data", tiny_ratings);
    const char *argv[] = {"recommend", "--input", "/tmp/vs_eval_tiny.data", "--format",
                          "movielens"};
    assert_int_equal(run(5, argv), 0);
    const char *j = last_line();
    assert_int_equal((int)json_num(j, NULL, "test_points"), 4);
    assert_true(fabs(json_num(j, "\"cooccurrence\"", "ndcg@10") - 0.5) < 1e-5);
    assert_true(
        fabs(json_num(j, "\"recent_popularity\"", "ndcg@10") - (1.0 + 1.0 / log2(3.0)) / 4) < 1e-5);
    /* The same ratings after a line of column names: the same counts. */
    char with_header[512];
    snprintf(with_header, sizeof(with_header), "user_id\titem_id\trating\ttimestamp\n%s",
             tiny_ratings);
    write_file("/tmp/vs_eval_tiny.data", with_header);
    assert_int_equal(run(5, argv), 0);
    j = last_line();
    assert_int_equal((int)json_num(j, NULL, "test_points"), 4);
    assert_true(fabs(json_num(j, "\"cooccurrence\"", "ndcg@10") - 0.5) < 1e-5);
    /* As MovieLens 1M's ratings.dat ("::") and the later ratings.csv (commas, a header). */
    char other[512];
    size_t o = 0;
    for (const char *c = tiny_ratings; *c && o + 3 < sizeof(other); c++) {
        other[o++] = *c == '\t' ? ':' : *c;
        if (*c == '\t') {
            other[o++] = ':';
        }
    }
    other[o] = 0;
    write_file("/tmp/vs_eval_tiny.data", other);
    assert_int_equal(run(5, argv), 0);
    j = last_line();
    assert_int_equal((int)json_num(j, NULL, "test_points"), 4);
    assert_true(fabs(json_num(j, "\"cooccurrence\"", "ndcg@10") - 0.5) < 1e-5);
    o = (size_t)snprintf(other, sizeof(other), "userId,movieId,rating,timestamp\n");
    for (const char *c = tiny_ratings; *c && o + 1 < sizeof(other); c++) {
        other[o++] = *c == '\t' ? ',' : *c;
    }
    other[o] = 0;
    write_file("/tmp/vs_eval_tiny.data", other);
    assert_int_equal(run(5, argv), 0);
    j = last_line();
    assert_int_equal((int)json_num(j, NULL, "test_points"), 4);
    assert_true(
        fabs(json_num(j, "\"recent_popularity\"", "ndcg@10") - (1.0 + 1.0 / log2(3.0)) / 4) < 1e-5);
    unlink("/tmp/vs_eval_tiny.data");

    /* Diginetica: sessions are customers, ordered by date, then session, then timeframe. */
    write_file("/tmp/vs_eval_tiny.dig", "session_id;user_id;item_id;timeframe;eventdate\n"
                                        "2;NA;20;100;2016-05-02\n"
                                        "1;NA;10;500;2016-05-01\n"
                                        "1;NA;11;900;2016-05-01\n"
                                        "2;NA;10;50;2016-05-02\n"
                                        "1;NA;12;100;2016-05-03\n");
    const char *argv2[] = {"recommend", "--input", "/tmp/vs_eval_tiny.dig", "--format",
                           "diginetica"};
    assert_int_equal(run(5, argv2), 0);
    j = last_line();
    /* Order: s1 10, s1 11 (test, 11 unseen: miss), s2 10 (first of s2), s2 20 (test, unseen:
     * miss), s1 12 (test, unseen: miss). */
    assert_int_equal((int)json_num(j, NULL, "test_points"), 3);
    assert_true(json_num(j, "\"model\"", "hr@10") == 0.0);

    /* The same views under the CIKM Cup file's own header (with a byte order mark and CRLF
     * line ends), and without a header: the same counts. */
    const char *views = "2;NA;20;100;2016-05-02\n"
                        "1;NA;10;500;2016-05-01\n"
                        "1;NA;11;900;2016-05-01\n"
                        "2;NA;10;50;2016-05-02\n"
                        "1;NA;12;100;2016-05-03\n";
    char text[512];
    snprintf(text, sizeof(text), "\xef\xbb\xbfsessionId;userId;itemId;timeframe;eventdate\r\n%s",
             views);
    write_file("/tmp/vs_eval_tiny.dig", text);
    assert_int_equal(run(5, argv2), 0);
    assert_int_equal((int)json_num(last_line(), NULL, "test_points"), 3);
    write_file("/tmp/vs_eval_tiny.dig", views);
    assert_int_equal(run(5, argv2), 0);
    assert_int_equal((int)json_num(last_line(), NULL, "test_points"), 3);
    unlink("/tmp/vs_eval_tiny.dig");
}

/* tiny_csv's log as other programs write it: the columns in another order among others, quoted
 * fields, and times as ISO 8601 (with offsets and fractions) or as epoch seconds with a
 * fraction. The same events in the same order: the same counts. */
static void csv_columns_and_times(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "event,ts,\"item_id\",USER_ID\n"
        "view,2020-01-01T00:00:01Z,1,\"a\"\n"
        "view,2020-01-01 00:00:02,\"1\",b\n"
        "view,2020-01-01T00:00:03.000Z,2,b\n"
        "\"view, again\",2020-01-01T01:00:05+01:00,3,c\n"
        "view,2019-12-31T23:00:04-0100,2,a\n"
        "view, 2020-01-01T00:00:06.250 ,1,c\n"
        "view,2020-01-01T00:00:07Z,1,a\n"
        "view,2020-01-01T00:00:08,9,d\n"
        "view,2020-01-01T00:00:09.5,5,b\n",
        "user_id,item_id,ts\n"
        "a,1,1577836801.0\n"
        "b,1,1577836802.25\n"
        "b,2,1577836803.5\n"
        "c,3,1577836805.0\n"
        "a,2,1577836804.0\n"
        "c,1,1577836806.0\n"
        "a,1,1577836807.0\n"
        "d,9,1577836808.0\n"
        "b,5,1577836809.0\n",
    };
    const char *argv[] = {"recommend", "--input", "/tmp/vs_eval_tiny.csv", "--format", "csv"};
    for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
        write_file("/tmp/vs_eval_tiny.csv", texts[t]);
        assert_int_equal(run(5, argv), 0);
        const char *j = last_line();
        assert_int_equal((int)json_num(j, NULL, "test_points"), 4);
        assert_true(fabs(json_num(j, "\"cooccurrence\"", "ndcg@10") - 0.5) < 1e-5);
        assert_true(fabs(json_num(j, "\"recent_popularity\"", "ndcg@10") -
                         (1.0 + 1.0 / log2(3.0)) / 4) < 1e-5);
        assert_true(fabs(json_num(j, "\"model\"", "hr@10") - 0.5) < 1e-5);
    }
    unlink("/tmp/vs_eval_tiny.csv");
}

/* The log text in /tmp/vs_eval_bad.csv is refused, with a message holding at and what (if set). */
static void rejects(const char **argv, const char *text, const char *at, const char *what)
{
    write_file("/tmp/vs_eval_bad.csv", text);
    assert_int_not_equal(run(5, argv), 0);
    assert_non_null(strstr(err_text, at));
    if (what) {
        assert_non_null(strstr(err_text, what));
    }
}

static void bad_input_is_reported(void **state)
{
    const char *csv[] = {"recommend", "--input", "/tmp/vs_eval_bad.csv", "--format", "csv"};
    rejects(csv, "user_id,item_id,ts\na,1,1\nb,2,notanumber\n", "vs_eval_bad.csv:3", "ts");
    rejects(csv, "user_id,item_id,ts\na,1,1\nb,2\n", ":3:", NULL);
    rejects(csv, "a,1,1\n", ":1:", "header");
    rejects(csv, "user_id,item_id,time\na,1,1\n", ":1:", "no column ts");
    rejects(csv, "user_id,item_id,ts,user_id\na,1,1,a\n", ":1:", "twice");
    rejects(csv, "user_id,item_id,ts\n\"a,1,1\n", ":2:", "quote");
    rejects(csv, "user_id,item_id,ts\na,1,2016-05-01T24:00\n", ":2:", "ts");
    rejects(csv, "user_id,item_id,ts\na,1,1e9\n", ":2:", "ts");
    rejects(csv, "user_id,item_id,ts\na,1,-5\n", ":2:", "ts");
    rejects(csv, "user_id,item_id,ts\n", "no interactions", NULL);
    const char *dig[] = {"recommend", "--input", "/tmp/vs_eval_bad.csv", "--format", "diginetica"};
    rejects(dig, "session_id;user_id;item_id;timeframe;eventdate\n1;NA;5;10;2016-13-01\n",
            ":2:", "eventdate");
    rejects(dig, "session;user;item;time;date\n1;NA;5;10;2016-01-01\n", ":1:", "header");
    rejects(dig, "sessionId;userId;itemId;timeframe\n1;NA;5;10;2016-01-01\n", ":1:", "header");
    /* MovieLens: only a first line without a numeric user and time is taken for a header. */
    const char *ml[] = {"recommend", "--input", "/tmp/vs_eval_bad.csv", "--format", "movielens"};
    rejects(ml, "1\t1\t5\tx\n2\t1\t5\t2\n", ":1:", "time");
    rejects(ml, "user\titem\trating\ttime\n1\t1\t5\t1\nu\ti\tr\tt\n", ":3:", NULL);
    unlink("/tmp/vs_eval_bad.csv");

    const char *missing[] = {"recommend", "--input", "/nonexistent/x.csv", "--format", "csv"};
    assert_int_not_equal(run(5, missing), 0);
    assert_non_null(strstr(err_text, "/nonexistent/x.csv"));

    const char *fmt[] = {"recommend", "--input", "x", "--format", "parquet"};
    assert_int_not_equal(run(5, fmt), 0);
    assert_non_null(strstr(err_text, "parquet"));

    const char *set[] = {"recommend", "--input", "x", "--format", "csv", "--set", "recommend.k=0"};
    assert_int_not_equal(run(7, set), 0);
    assert_non_null(strstr(err_text, "recommend.k"));
    const char *bad_adapt[][7] = {
        {"recommend", "--input", "x", "--format", "csv", "--set", "recommend.blend.adapt.sample=0"},
        {"recommend", "--input", "x", "--format", "csv", "--set",
         "recommend.blend.adapt.halflife=0.5"},
        {"recommend", "--input", "x", "--format", "csv", "--set",
         "recommend.blend.adapt.margin=-1"},
        {"recommend", "--input", "x", "--format", "csv", "--set", "recommend.blend.adapt=maybe"},
        {"recommend", "--input", "x", "--format", "csv", "--set", "recommend.als.interval.ms=-1"},
        {"recommend", "--input", "x", "--format", "csv", "--set", "recommend.als.window=0"},
        {"recommend", "--input", "x", "--format", "csv", "--set", "recommend.als.iterations=21"},
    };
    for (size_t i = 0; i < sizeof(bad_adapt) / sizeof(bad_adapt[0]); i++) {
        assert_int_not_equal(run(7, bad_adapt[i]), 0);
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)strcspn(bad_adapt[i][6], "="), bad_adapt[i][6]);
        assert_non_null(strstr(err_text, key));
    }

    const char *unknown[] = {"recommend", "--bogus"};
    assert_int_not_equal(run(2, unknown), 0);
    const char *none[] = {"recommend"};
    assert_int_not_equal(run(1, none), 0);
    assert_non_null(strstr(err_text, "--input"));

    const char *help[] = {"recommend", "--help"};
    assert_int_equal(run(2, help), 0);
    assert_non_null(strstr(out_text, "recommend.blend.model"));
}

/* The target on the real log: the operator above both baselines, HR@10 and NDCG@10. */
static void beats_the_baselines_on_diginetica(void **state)
{
    (void)state;
    const char *argv[] = {"recommend", "--input",
                          "../shared/data/diginetica/sample_train-item-views.csv", "--format",
                          "diginetica"};
    assert_int_equal(run(5, argv), 0);
    const char *j = last_line();
    assert_true(json_num(j, NULL, "test_points") > 1000);
    const char *metric[] = {"hr@10", "ndcg@10"};
    for (int k = 0; k < 2; k++) {
        double model = json_num(j, "\"model\"", metric[k]);
        assert_true(model > json_num(j, "\"recent_popularity\"", metric[k]));
        assert_true(model > json_num(j, "\"cooccurrence\"", metric[k]));
    }
}

/* Full ALS sweeps make the factors fit the log: on the real log the model alone (no
 * co-occurrence, no popularity) ranks the next item better with weekly sweeps than without. */
static void sweeps_improve_the_model_on_diginetica(void **state)
{
    (void)state;
    double hr[2], ndcg[2];
    for (int with = 0; with < 2; with++) {
        const char *argv[] = {"recommend",
                              "--input",
                              "../shared/data/diginetica/sample_train-item-views.csv",
                              "--format",
                              "diginetica",
                              "--set",
                              "recommend.blend.together=0",
                              "--set",
                              "recommend.blend.trending=0",
                              "--set",
                              "recommend.blend.model=1",
                              "--set",
                              "recommend.blend.adapt=false",
                              "--set",
                              with ? "recommend.als.interval.ms=604800000"
                                   : "recommend.als.interval.ms=0"};
        assert_int_equal(run(15, argv), 0);
        const char *j = last_line();
        hr[with] = json_num(j, "\"model\"", "hr@10");
        ndcg[with] = json_num(j, "\"model\"", "ndcg@10");
    }
    print_message("model alone: HR@10 %.6f -> %.6f, NDCG@10 %.6f -> %.6f with weekly sweeps\n",
                  hr[0], hr[1], ndcg[0], ndcg[1]);
    assert_true(hr[1] > 1.1 * hr[0]);
    assert_true(ndcg[1] > 1.1 * ndcg[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(protocol_on_a_tiny_log),
        cmocka_unit_test(formats_agree),
        cmocka_unit_test(csv_columns_and_times),
        cmocka_unit_test(bad_input_is_reported),
        cmocka_unit_test(beats_the_baselines_on_diginetica),
        cmocka_unit_test(sweeps_improve_the_model_on_diginetica),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
