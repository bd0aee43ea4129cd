/*
 * Tests of the synthetic shop through its sink: determinism, ordering and validity of the
 * events, the calibration of the event count, and that the ground truth it writes is true of the
 * stream it emits — planted fraud with the promised shape, dropouts after which nothing happens,
 * tastes that show in what customers buy — plus the truth file reader on good and bad files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <valuestream/error.h>

#include "codec.h"
#include "gen.h"

/* ==== Helpers ==== */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ s[i]) * UINT64_C(1099511628211);
    }
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
    return s ? fnv(h, s, strlen(s) + 1) : fnv(h, "\xff", 1);
}

/* A hash of every field of every event, in order. */
static int hash_sink(void *arg, const struct vs_event *e)
{
    uint64_t *h = arg;
    *h = fnv_str(*h, e->event_id);
    *h = fnv_str(*h, e->user_id);
    *h = fnv_str(*h, e->session_id);
    *h = fnv(*h, &e->type, sizeof(e->type));
    *h = fnv_str(*h, e->item_id);
    *h = fnv_str(*h, e->category_id);
    *h = fnv(*h, &e->has_price, sizeof(e->has_price));
    *h = fnv(*h, &e->price, sizeof(e->price));
    *h = fnv(*h, &e->quantity, sizeof(e->quantity));
    *h = fnv_str(*h, e->order_id);
    *h = fnv(*h, &e->has_amount, sizeof(e->has_amount));
    *h = fnv(*h, &e->amount, sizeof(e->amount));
    *h = fnv_str(*h, e->currency);
    *h = fnv(*h, &e->ts, sizeof(e->ts));
    *h = fnv_str(*h, e->device_id);
    *h = fnv_str(*h, e->ip);
    *h = fnv_str(*h, e->country);
    *h = fnv_str(*h, e->payment_method);
    return 0;
}

static void small_options(struct vs__gen_options *o)
{
    vs__gen_options_default(o);
    o->customers = 3000;
    o->items = 600;
    o->events = 150000;
    o->seed = 42;
    o->card_testing_rate = 0.01;
    o->account_takeover_rate = 0.01;
    o->amount_anomaly_rate = 0.01;
}

/* One event, kept for checks after the run. */
struct rec {
    int64_t ts;
    double amount;
    uint64_t event_no;
    uint32_t user, device, category;
    int32_t quantity;
    uint8_t type, has_amount;
    char country[4];
    char payment[32];
};

struct capture {
    struct rec *r;
    size_t n, cap;
    int64_t prev_ts;
    int64_t unordered, invalid;
    char why[256];
};

static uint32_t num_after(const char *s, char prefix)
{
    assert_non_null(s);
    assert_int_equal(s[0], prefix);
    return (uint32_t)strtoul(s + 1, NULL, 10);
}

static int capture_sink(void *arg, const struct vs_event *e)
{
    struct capture *c = arg;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 65536;
        c->r = realloc(c->r, c->cap * sizeof(*c->r));
        assert_non_null(c->r);
    }
    if (e->ts < c->prev_ts) {
        c->unordered++;
    }
    c->prev_ts = e->ts;
    if (vs__event_validate(e, 0, c->why, sizeof(c->why))) {
        c->invalid++;
    }
    struct rec *r = &c->r[c->n++];
    memset(r, 0, sizeof(*r));
    r->ts = e->ts;
    r->amount = e->amount;
    r->has_amount = (uint8_t)e->has_amount;
    r->event_no = num_after(e->event_id, 'e');
    r->user = num_after(e->user_id, 'u');
    r->device = num_after(e->device_id, 'd');
    r->category = num_after(e->category_id, 'c');
    r->quantity = e->quantity;
    r->type = (uint8_t)e->type;
    snprintf(r->country, sizeof(r->country), "%s", e->country);
    snprintf(r->payment, sizeof(r->payment), "%s", e->payment_method);
    return 0;
}

/* A generated scenario with its truth file loaded. */
struct scenario {
    struct vs__gen_options o;
    struct vs__gen_stats st;
    struct capture cap;
    struct vs__truth *truth;
    size_t *off, *idx; /* each customer's events, in order: idx[off[u] .. off[u + 1]) */
    char path[64];
};

static struct scenario *scenario_new(void)
{
    struct scenario *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    small_options(&s->o);
    snprintf(s->path, sizeof(s->path), "/tmp/vs-gen-test-XXXXXX");
    int fd = mkstemp(s->path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(vs__gen_run_stats(&s->o, capture_sink, &s->cap, f, &s->st), 0);
    assert_int_equal(fclose(f), 0);
    char err[256];
    s->truth = vs__truth_load(s->path, err, sizeof(err));
    if (!s->truth) {
        fail_msg("truth: %s", err);
    }
    size_t nu = (size_t)s->o.customers + 2;
    s->off = calloc(nu, sizeof(size_t));
    s->idx = malloc(s->cap.n * sizeof(size_t));
    size_t *fill = calloc(nu, sizeof(size_t));
    assert_true(s->off && s->idx && fill);
    for (size_t i = 0; i < s->cap.n; i++) {
        s->off[s->cap.r[i].user + 1]++;
    }
    for (size_t u = 1; u < nu; u++) {
        s->off[u] += s->off[u - 1];
    }
    for (size_t i = 0; i < s->cap.n; i++) {
        uint32_t u = s->cap.r[i].user;
        s->idx[s->off[u] + fill[u]++] = i;
    }
    free(fill);
    return s;
}

static void scenario_free(struct scenario *s)
{
    unlink(s->path);
    vs__truth_free(s->truth);
    free(s->cap.r);
    free(s->off);
    free(s->idx);
    free(s);
}

static int setup(void **state)
{
    *state = scenario_new();
    return 0;
}

static int teardown(void **state)
{
    scenario_free(*state);
    return 0;
}

/* ==== Determinism ==== */

static void test_same_seed_same_events(void **state)
{
    struct vs__gen_options o;
    small_options(&o);
    o.events = 60000;
    uint64_t h1 = UINT64_C(1469598103934665603), h2 = h1, h3 = h1;
    assert_int_equal(vs__gen_run(&o, hash_sink, &h1, NULL), 0);
    sleep(1); /* a stream that depended on the clock would change now */
    assert_int_equal(vs__gen_run(&o, hash_sink, &h2, NULL), 0);
    assert_true(h1 == h2);
    o.seed++;
    assert_int_equal(vs__gen_run(&o, hash_sink, &h3, NULL), 0);
    assert_true(h1 != h3);
}

/* The Avro bytes, not only the fields, are the same from run to run. */
struct bytes_hash {
    struct vs__codec *codec;
    uint64_t h;
    size_t bytes;
};

static int bytes_sink(void *arg, const struct vs_event *e)
{
    struct bytes_hash *b = arg;
    const void *buf;
    size_t len;
    assert_int_equal(vs__codec_encode_event(b->codec, e, &buf, &len), 0);
    b->h = fnv(b->h, buf, len);
    b->bytes += len;
    return 0;
}

static void test_same_seed_same_bytes(void **state)
{
    struct vs__gen_options o;
    small_options(&o);
    o.events = 40000;
    char err[256];
    struct bytes_hash a = {vs__codec_new(NULL, err, sizeof(err)), 1, 0};
    struct bytes_hash b = {vs__codec_new(NULL, err, sizeof(err)), 1, 0};
    assert_non_null(a.codec);
    assert_non_null(b.codec);
    assert_int_equal(vs__gen_run(&o, bytes_sink, &a, NULL), 0);
    assert_int_equal(vs__gen_run(&o, bytes_sink, &b, NULL), 0);
    assert_true(a.bytes > 0);
    assert_true(a.h == b.h && a.bytes == b.bytes);
    vs__codec_free(a.codec);
    vs__codec_free(b.codec);
}

/* ==== Stream shape ==== */

static void test_ordered_and_valid(void **state)
{
    struct scenario *s = *state;
    assert_int_equal(s->cap.unordered, 0);
    if (s->cap.invalid) {
        fail_msg("%" PRId64 " invalid events, e.g.: %s", s->cap.invalid, s->cap.why);
    }
    assert_int_equal((int64_t)s->cap.n, s->st.events);
    int64_t end = s->o.start_ts + s->o.days * INT64_C(86400000);
    for (size_t i = 0; i < s->cap.n; i++) {
        const struct rec *r = &s->cap.r[i];
        assert_int_equal(r->event_no, i + 1); /* e1, e2, ... in stream order */
        assert_true(r->ts >= s->o.start_ts && r->ts < end + INT64_C(86400000));
        assert_true(r->user >= 1 && r->user <= (uint32_t)s->o.customers);
        int money = r->type == VS_EVENT_PURCHASE || r->type == VS_EVENT_REFUND;
        assert_int_equal(r->has_amount, money);
        if (money) {
            assert_true(r->amount > 0 && r->quantity >= 1);
        }
    }
    /* every event type occurs */
    int seen[VS_EVENT_TYPE_COUNT] = {0};
    for (size_t i = 0; i < s->cap.n; i++) {
        seen[s->cap.r[i].type] = 1;
    }
    for (int t = 0; t < VS_EVENT_TYPE_COUNT; t++) {
        assert_true(seen[t]);
    }
}

static void test_event_count_is_calibrated(void **state)
{
    static const int64_t targets[][2] = {{3000, 150000}, {20000, 400000}, {500, 20000}};
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        struct vs__gen_options o;
        vs__gen_options_default(&o);
        o.customers = targets[i][0];
        o.events = targets[i][1];
        o.seed = 7 + i;
        struct vs__gen_stats st;
        uint64_t h = 0;
        assert_int_equal(vs__gen_run_stats(&o, hash_sink, &h, NULL, &st), 0);
        double err = fabs((double)st.events - (double)o.events) / (double)o.events;
        if (err > 0.05) {
            fail_msg("target %" PRId64 " events, got %" PRId64, o.events, st.events);
        }
    }
}

/* ==== Planted fraud ==== */

/* Whether, before event index i, the user used this device (what 0) or country (1; 3: from
 * another device) in any event, or this payment instrument in a purchase (2). */
static int seen_before(const struct scenario *s, size_t i, int what)
{
    const struct rec *x = &s->cap.r[i];
    for (size_t k = s->off[x->user]; s->idx[k] < i; k++) {
        const struct rec *y = &s->cap.r[s->idx[k]];
        if ((what == 0 && y->device == x->device) ||
            (what == 1 && !strcmp(y->country, x->country)) ||
            (what == 3 && y->device != x->device && !strcmp(y->country, x->country)) ||
            (what == 2 && y->type == VS_EVENT_PURCHASE && !strcmp(y->payment, x->payment))) {
            return 1;
        }
    }
    return 0;
}

/* Mean amount of the user's honest purchases before event index i (0 when none). */
static double mean_before(const struct scenario *s, size_t i)
{
    double sum = 0;
    int n = 0;
    char id[32];
    uint32_t u = s->cap.r[i].user;
    for (size_t k = s->off[u]; s->idx[k] < i; k++) {
        const struct rec *y = &s->cap.r[s->idx[k]];
        snprintf(id, sizeof(id), "e%" PRIu64, y->event_no);
        if (y->type == VS_EVENT_PURCHASE && vs__truth_fraud_kind(s->truth, id) == VS__FRAUD_NONE) {
            sum += y->amount;
            n++;
        }
    }
    return n ? sum / n : 0;
}

static void test_fraud_planted(void **state)
{
    struct scenario *s = *state;
    int64_t in_stream[VS__FRAUD_KIND_COUNT] = {0};
    uint32_t *victims[VS__FRAUD_KIND_COUNT] = {0};
    size_t nvictims[VS__FRAUD_KIND_COUNT] = {0};
    for (int k = 0; k < VS__FRAUD_KIND_COUNT; k++) {
        victims[k] = calloc((size_t)s->o.customers + 1, sizeof(uint32_t));
    }
    char id[32];
    for (size_t i = 0; i < s->cap.n; i++) {
        const struct rec *r = &s->cap.r[i];
        snprintf(id, sizeof(id), "e%" PRIu64, r->event_no);
        enum vs__fraud_kind kind = vs__truth_fraud_kind(s->truth, id);
        if (kind == VS__FRAUD_NONE) {
            continue;
        }
        in_stream[kind]++;
        assert_int_equal(r->type, VS_EVENT_PURCHASE);
        if (!victims[kind][r->user]++) {
            nvictims[kind]++;
        }
        switch (kind) {
        case VS__FRAUD_CARD_TESTING:
            /* a new card on every purchase, a small amount */
            assert_false(seen_before(s, i, 2));
            assert_true(r->amount < 15.0);
            break;
        case VS__FRAUD_ACCOUNT_TAKEOVER: {
            /* a country the customer never shopped from */
            assert_false(seen_before(s, i, 3));
            double mean = mean_before(s, i);
            assert_true(mean > 0); /* the account had a history */
            assert_true(r->amount >= 400.0 && r->amount >= 5.9 * mean);
            break;
        }
        case VS__FRAUD_AMOUNT_ANOMALY: {
            /* the customer's own device and country, an order ten times the usual */
            assert_true(seen_before(s, i, 0));
            double mean = mean_before(s, i);
            assert_true(mean > 0);
            assert_true(r->amount >= 9.9 * mean && r->amount >= 299.0);
            break;
        }
        default:
            break;
        }
        if (kind != VS__FRAUD_AMOUNT_ANOMALY) {
            /* the fraud session's device is new: its first event is in this burst */
            size_t j = 0;
            while (s->cap.r[j].device != r->device) {
                j++;
            }
            assert_true(r->ts - s->cap.r[j].ts < 15 * 60 * 1000);
            assert_int_equal(s->cap.r[j].user, r->user);
        }
    }
    double rates[VS__FRAUD_KIND_COUNT] = {0, s->o.card_testing_rate, s->o.account_takeover_rate,
                                          s->o.amount_anomaly_rate};
    for (int k = 1; k < VS__FRAUD_KIND_COUNT; k++) {
        assert_int_equal((size_t)in_stream[k],
                         vs__truth_fraud_count(s->truth, (enum vs__fraud_kind)k));
        assert_int_equal(in_stream[k], s->st.fraud_events[k]);
        assert_int_equal(nvictims[k], (size_t)llround(rates[k] * (double)s->o.customers));
    }
    assert_int_equal(vs__truth_fraud_count(s->truth, VS__FRAUD_NONE),
                     (size_t)(in_stream[1] + in_stream[2] + in_stream[3]));
    /* card testing comes in bursts of at least 8 purchases within minutes */
    for (uint32_t u = 1; u <= (uint32_t)s->o.customers; u++) {
        if (victims[VS__FRAUD_CARD_TESTING][u]) {
            assert_true(victims[VS__FRAUD_CARD_TESTING][u] >= 8);
        }
        /* one kind of fraud per victim */
        int kinds = !!victims[1][u] + !!victims[2][u] + !!victims[3][u];
        assert_true(kinds <= 1);
    }
    for (int k = 0; k < VS__FRAUD_KIND_COUNT; k++) {
        free(victims[k]);
    }
}

/* Honest purchases almost never look like a takeover: a new device in a new country. */
static void test_honest_purchases_rarely_look_like_takeover(void **state)
{
    struct scenario *s = *state;
    size_t honest = 0, both_new = 0;
    char id[32];
    for (size_t i = 0; i < s->cap.n; i++) {
        const struct rec *r = &s->cap.r[i];
        snprintf(id, sizeof(id), "e%" PRIu64, r->event_no);
        if (r->type != VS_EVENT_PURCHASE || vs__truth_fraud_kind(s->truth, id) != VS__FRAUD_NONE) {
            continue;
        }
        honest++;
        /* a new country needs a visit before: skip each customer's first session */
        if (!seen_before(s, i, 0) && !seen_before(s, i, 1) && mean_before(s, i) > 0) {
            both_new++;
        }
    }
    assert_true(honest > 1000);
    assert_true(both_new * 1000 <= honest);
}

/* ==== Dropouts ==== */

static void test_dropouts(void **state)
{
    struct scenario *s = *state;
    size_t n = vs__truth_dropout_count(s->truth);
    assert_int_equal((int64_t)n, s->st.dropouts);
    assert_true(n > (size_t)s->o.customers / 10 && n < (size_t)s->o.customers);
    int64_t *last = calloc((size_t)s->o.customers + 1, sizeof(int64_t));
    uint8_t *last_type = calloc((size_t)s->o.customers + 1, 1);
    for (size_t i = 0; i < s->cap.n; i++) {
        last[s->cap.r[i].user] = s->cap.r[i].ts;
        last_type[s->cap.r[i].user] = s->cap.r[i].type;
    }
    for (size_t i = 0; i < n; i++) {
        const char *user;
        int64_t ts;
        assert_int_equal(vs__truth_dropout_at(s->truth, i, &user, &ts), 0);
        uint32_t u = (uint32_t)strtoul(user + 1, NULL, 10);
        /* nothing after the dropout; the dropout is the purchase after which they left */
        assert_int_equal(last[u], ts);
        assert_int_equal(last_type[u], VS_EVENT_PURCHASE);
        int64_t again;
        assert_int_equal(vs__truth_dropout(s->truth, user, &again), 1);
        assert_int_equal(again, ts);
    }
    /* customers still active at the end are not listed */
    size_t active_late = 0;
    int64_t end = s->o.start_ts + s->o.days * INT64_C(86400000);
    char uid[32];
    for (uint32_t u = 1; u <= (uint32_t)s->o.customers; u++) {
        snprintf(uid, sizeof(uid), "u%u", u);
        if (!vs__truth_dropout(s->truth, uid, NULL) && last[u] > end - INT64_C(86400000) * 30) {
            active_late++;
        }
    }
    assert_true(active_late > 0);
    free(last);
    free(last_type);
}

/* ==== Tastes ==== */

/*
 * The share of a customer's purchases in their preferred categories, against the share the
 * same categories have among everyone's purchases: tastes must show.
 */
static void test_tastes_show_in_purchases(void **state)
{
    struct scenario *s = *state;
    uint32_t ncat = 0;
    for (size_t i = 0; i < s->cap.n; i++) {
        ncat = s->cap.r[i].category > ncat ? s->cap.r[i].category : ncat;
    }
    double *cat_share = calloc(ncat + 1, sizeof(double));
    size_t purchases = 0;
    for (size_t i = 0; i < s->cap.n; i++) {
        if (s->cap.r[i].type == VS_EVENT_PURCHASE) {
            cat_share[s->cap.r[i].category]++;
            purchases++;
        }
    }
    for (uint32_t c = 0; c <= ncat; c++) {
        cat_share[c] /= (double)purchases;
    }
    uint32_t *in = calloc((size_t)s->o.customers + 1, sizeof(uint32_t));
    uint32_t *all = calloc((size_t)s->o.customers + 1, sizeof(uint32_t));
    uint8_t *pref = calloc(((size_t)s->o.customers + 1) * (ncat + 1), 1);
    double *base = calloc((size_t)s->o.customers + 1, sizeof(double));
    char uid[32];
    for (uint32_t u = 1; u <= (uint32_t)s->o.customers; u++) {
        snprintf(uid, sizeof(uid), "u%u", u);
        const char *t = vs__truth_taste(s->truth, uid);
        assert_non_null(t);
        for (const char *p = t; *p;) {
            assert_int_equal(*p, 'c');
            uint32_t c = (uint32_t)strtoul(p + 1, (char **)&p, 10);
            assert_true(c >= 1 && c <= ncat + 1);
            if (c <= ncat) {
                pref[u * (ncat + 1) + c] = 1;
                base[u] += cat_share[c];
            }
            while (*p == ' ') {
                p++;
            }
        }
    }
    for (size_t i = 0; i < s->cap.n; i++) {
        const struct rec *r = &s->cap.r[i];
        if (r->type == VS_EVENT_PURCHASE) {
            all[r->user]++;
            in[r->user] += pref[r->user * (ncat + 1) + r->category];
        }
    }
    double own = 0, baseline = 0;
    int n = 0;
    for (uint32_t u = 1; u <= (uint32_t)s->o.customers; u++) {
        if (all[u] >= 3) {
            own += (double)in[u] / all[u];
            baseline += base[u];
            n++;
        }
    }
    assert_true(n > 100);
    own /= n;
    baseline /= n;
    print_message("purchases in preferred categories: %.3f (baseline %.3f, %d customers)\n", own,
                  baseline, n);
    assert_true(own >= 0.6);
    assert_true(own >= 2.0 * baseline);
    free(cat_share);
    free(in);
    free(all);
    free(pref);
    free(base);
}

/* ==== Truth file ==== */

static void test_truth_round_trip(void **state)
{
    struct scenario *s = *state;
    const struct vs__truth *t = s->truth;
    assert_int_equal(vs__truth_start_ts(t), s->o.start_ts);
    assert_int_equal(vs__truth_end_ts(t), s->o.start_ts + s->o.days * INT64_C(86400000));
    assert_int_equal(vs__truth_customers(t), s->o.customers);
    for (int k = 1; k < VS__FRAUD_KIND_COUNT; k++) {
        assert_int_equal(vs__truth_fraud_count(t, (enum vs__fraud_kind)k), s->st.fraud_events[k]);
    }
    assert_int_equal(vs__truth_fraud_kind(t, "no-such-event"), VS__FRAUD_NONE);
    assert_int_equal(vs__truth_dropout(t, "no-such-user", NULL), 0);
    assert_null(vs__truth_taste(t, "no-such-user"));
    assert_int_equal(vs__truth_dropout_at(t, vs__truth_dropout_count(t), NULL, NULL), VS_EINVAL);
    assert_string_equal(vs__fraud_kind_name(VS__FRAUD_ACCOUNT_TAKEOVER), "account_takeover");
}

static struct vs__truth *load_text(const char *text, char *err, size_t errlen)
{
    char path[] = "/tmp/vs-gen-truth-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct vs__truth *t = vs__truth_load(path, err, errlen);
    unlink(path);
    return t;
}

static void test_truth_bad_files(void **state)
{
    static const struct {
        const char *text;
        const char *line; /* expected in the error */
    } bad[] = {
        {"", ":0:"},
        {"id,kind\nfraud,e1,card_testing\n", ":1:"},
        {"record,id,value\nfraud,e1,card_testing\nfraud,e2,chargeback\n", ":3:"},
        {"record,id,value\ndropout,u1,soon\n", ":2:"},
        {"record,id,value\ndropout,u1,5\ndropout,u1,6\n", ":3:"},
        {"record,id,value\nfraud,e1,card_testing\nfraud,e1,amount_anomaly\n", ":3:"},
        {"record,id,value\nrefund,e1,x\n", ":2:"},
        {"record,id,value\nfraud e1 card_testing\n", ":2:"},
        {"record,id,value\nmeta,start_ts,yesterday\n", ":2:"},
        {"record,id,value\nfraud,,card_testing\n", ":2:"},
    };
    char err[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        struct vs__truth *t = load_text(bad[i].text, err, sizeof(err));
        if (t) {
            vs__truth_free(t);
            fail_msg("case %zu loaded", i);
        }
        if (!strstr(err, bad[i].line)) {
            fail_msg("case %zu: '%s' does not name line %s", i, err, bad[i].line);
        }
    }
    assert_null(vs__truth_load("/nonexistent/truth.csv", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/truth.csv"));
    /* CRLF line ends and unknown meta keys are fine */
    struct vs__truth *t = load_text("record,id,value\r\nmeta,flavour,vanilla\r\n"
                                    "fraud,e9,amount_anomaly\r\ndropout,u3,1767225600123\r\n",
                                    err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(vs__truth_fraud_kind(t, "e9"), VS__FRAUD_AMOUNT_ANOMALY);
    int64_t ts;
    assert_int_equal(vs__truth_dropout(t, "u3", &ts), 1);
    assert_int_equal(ts, INT64_C(1767225600123));
    vs__truth_free(t);
}

/* ==== Bad options, early stop ==== */

static void test_bad_options(void **state)
{
    struct vs__gen_options o;
    uint64_t h = 0;
    vs__gen_options_default(&o);
    o.customers = 0;
    assert_int_equal(vs__gen_run(&o, hash_sink, &h, NULL), VS_EINVAL);
    vs__gen_options_default(&o);
    o.categories = o.items + 1;
    assert_int_equal(vs__gen_run(&o, hash_sink, &h, NULL), VS_EINVAL);
    vs__gen_options_default(&o);
    o.account_takeover_rate = 1.5;
    assert_int_equal(vs__gen_run(&o, hash_sink, &h, NULL), VS_EINVAL);
    vs__gen_options_default(&o);
    o.amount_anomaly_rate = NAN;
    assert_int_equal(vs__gen_run(&o, hash_sink, &h, NULL), VS_EINVAL);
    vs__gen_options_default(&o);
    o.start_ts = 0;
    assert_int_equal(vs__gen_run(&o, hash_sink, &h, NULL), VS_EINVAL);
    vs__gen_options_default(&o);
    o.days = 0;
    assert_int_equal(vs__gen_run(&o, hash_sink, &h, NULL), VS_EINVAL);
    vs__gen_options_default(&o);
    assert_int_equal(vs__gen_run(&o, NULL, NULL, NULL), VS_EINVAL);
}

static int stop_sink(void *arg, const struct vs_event *e)
{
    int *n = arg;
    return ++*n == 10 ? VS_EFULL : 0;
}

static void test_sink_stops_the_run(void **state)
{
    struct vs__gen_options o;
    small_options(&o);
    int n = 0;
    assert_int_equal(vs__gen_run(&o, stop_sink, &n, NULL), VS_EFULL);
    assert_int_equal(n, 10);
}

/* A scenario with one item and one customer still works. */
static void test_tiny_scenario(void **state)
{
    struct vs__gen_options o;
    vs__gen_options_default(&o);
    o.customers = 1;
    o.items = 1;
    o.events = 10;
    struct capture c = {0};
    assert_int_equal(vs__gen_run(&o, capture_sink, &c, NULL), 0);
    assert_true(c.n >= 3); /* at least the arrival purchase: view, add, purchase */
    assert_int_equal(c.unordered, 0);
    assert_int_equal(c.invalid, 0);
    free(c.r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_events),
        cmocka_unit_test(test_same_seed_same_bytes),
        cmocka_unit_test(test_event_count_is_calibrated),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_sink_stops_the_run),
        cmocka_unit_test(test_tiny_scenario),
        cmocka_unit_test(test_truth_bad_files),
    };
    const struct CMUnitTest scenario_tests[] = {
        cmocka_unit_test(test_ordered_and_valid),
        cmocka_unit_test(test_fraud_planted),
        cmocka_unit_test(test_honest_purchases_rarely_look_like_takeover),
        cmocka_unit_test(test_dropouts),
        cmocka_unit_test(test_tastes_show_in_purchases),
        cmocka_unit_test(test_truth_round_trip),
    };
    int failed = cmocka_run_group_tests_name("gen", tests, NULL, NULL);
    /* One generated scenario shared by the checks of its truth. */
    failed += cmocka_run_group_tests_name("gen scenario", scenario_tests, setup, teardown);
    return failed;
}
