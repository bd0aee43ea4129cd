/*
 * Fraud scoring benchmark: detection quality on the engine's synthetic shop (engine/gen.h, the
 * stream `valuestream demo` runs) per planted fraud kind, the cost of features + score + learn
 * per purchase at 100 trees, and the prequential AUCs of `valuestream eval anomaly` on the ODDS
 * sets.
 *
 * The shop's events go, in the generator's event-time order, through the fraud operator's own
 * scorer (operators/fraud/scorer.h) with the operator's default settings, one fraud section per
 * customer: the same decisions the operator makes in the demo, without the broker and the store.
 * Alerts (REVIEW and BLOCK) are then matched against the generator's truth file.
 *
 * Output: a human-readable summary, then one JSON line, also written to bench/results/fraud.json.
 * Usage: bench_fraud_bench [--quick] [--customers N] [--events N] [--seed N] [--runs N]
 * [--alerts FILE] (run from the repository root). --quick: a smaller shop and fewer timing runs;
 * --alerts: write every alert with its kind and features as CSV, to study what the false ones are.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <valuestream/config.h>
#include <valuestream/error.h>

#include "engine/gen.h"
#include "operators/fraud/eval_anomaly.h"
#include "operators/fraud/scorer.h"

/* ==== One customer's fraud section per user id ==== */

struct customers {
    uint64_t *hash; /* 0: empty */
    struct vs_fraud_section *section;
    size_t cap;
};

static int customers_init(struct customers *c, int64_t n)
{
    c->cap = 1024;
    while (c->cap < (size_t)n * 2) {
        c->cap *= 2;
    }
    c->hash = calloc(c->cap, sizeof(*c->hash));
    c->section = calloc(c->cap, sizeof(*c->section));
    return c->hash && c->section ? 0 : VS_ENOMEM;
}

static struct vs_fraud_section *customers_get(struct customers *c, const char *user_id)
{
    uint64_t h = vs_fraud_hash(user_id);
    for (size_t i = h & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
        if (c->hash[i] == h) {
            return &c->section[i];
        }
        if (c->hash[i] == 0) {
            c->hash[i] = h;
            return &c->section[i];
        }
    }
}

static void customers_free(struct customers *c)
{
    free(c->hash);
    free(c->section);
}

/* ==== The shop through the scorer ==== */

struct alert {
    char event_id[24];
    double score;
    enum vs_fraud_decision decision;
    unsigned rules;
    uint32_t history; /* the customer's purchases before this one */
    float x[VS_FRAUD_NFEATURES];
};

struct run {
    struct vs_fraud_scorer sc;
    struct customers cust;
    struct alert *alerts;
    size_t nalerts, cap;
    int64_t purchases, skipped;
    double busy_us; /* CPU time in judge + learn */
    int full;       /* the alert table overflowed */
};

/* CPU time of this thread: the cost of the work, not of other processes sharing the cores. */
static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int on_event(void *arg, const struct vs_event *ev)
{
    struct run *r = arg;
    struct vs_fraud_section *s = customers_get(&r->cust, ev->user_id);
    if (ev->type != VS_EVENT_PURCHASE) {
        vs_fraud_scorer_observe(&r->sc, s, ev);
        return 0;
    }
    struct vs_fraud_verdict v;
    double t0 = now_us();
    if (vs_fraud_scorer_judge(&r->sc, s, ev, &v) != 0) {
        vs_fraud_scorer_observe(&r->sc, s, ev);
        r->skipped++;
        return 0;
    }
    vs_fraud_scorer_learn(&r->sc, s, ev, &v, vs_fraud_hash(ev->event_id), 1);
    r->busy_us += now_us() - t0;
    r->purchases++;
    if (v.decision == VS_FRAUD_ALLOW) {
        return 0;
    }
    if (r->nalerts == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 4096;
        struct alert *a = realloc(r->alerts, cap * sizeof(*a));
        if (!a) {
            r->full = 1;
            return VS_ENOMEM;
        }
        r->alerts = a;
        r->cap = cap;
    }
    struct alert *a = &r->alerts[r->nalerts++];
    snprintf(a->event_id, sizeof(a->event_id), "%s", ev->event_id);
    a->score = v.score;
    a->decision = v.decision;
    a->rules = v.rules;
    a->history = s->purchases - 1;
    for (int f = 0; f < VS_FRAUD_NFEATURES; f++) {
        a->x[f] = (float)v.x[f];
    }
    return 0;
}

/* The default of one of the operator's decision keys, from the table it shares with the operator
 * (so the bench follows the operator's defaults). */
static const struct vs_config_key scorer_keys[] = {VS_FRAUD_SCORER_CONFIG_KEYS,
                                                   {NULL, 0, NULL, NULL}};

static const char *operator_default(const char *key)
{
    for (const struct vs_config_key *k = scorer_keys; k->key; k++) {
        if (strcmp(k->key, key) == 0) {
            return k->def;
        }
    }
    fprintf(stderr, "bench_fraud_bench: the fraud operator has no key %s\n", key);
    exit(1);
}

static void default_policy(struct vs_fraud_policy *p, int64_t *warmup)
{
    memset(p, 0, sizeof(*p));
    p->review_threshold = atof(operator_default("fraud.review.threshold"));
    p->block_threshold = atof(operator_default("fraud.block.threshold"));
    p->review_rate = atof(operator_default("fraud.review.rate"));
    p->block_rate = atof(operator_default("fraud.block.rate"));
    p->max_amount = atof(operator_default("fraud.max.amount"));
    p->velocity_10m = atof(operator_default("fraud.velocity.10m"));
    p->velocity_24h = atof(operator_default("fraud.velocity.24h"));
    *warmup = atoll(operator_default("fraud.warmup"));
}

static int run_shop(const struct vs__gen_options *o, FILE *truth, struct run *r)
{
    struct vs_fraud_policy pol;
    int64_t warmup;
    char err[256];
    struct vs_iforest_config fc;
    default_policy(&pol, &warmup);
    vs_iforest_config_default(&fc, VS_FRAUD_NFEATURES);
    memset(r, 0, sizeof(*r));
    if (vs_fraud_scorer_init(&r->sc, &pol, warmup, &fc, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return VS_ECONFIG;
    }
    if (customers_init(&r->cust, o->customers) != 0) {
        return VS_ENOMEM;
    }
    return vs__gen_run(o, on_event, r, truth);
}

static void run_free(struct run *r)
{
    vs_fraud_scorer_release(&r->sc);
    customers_free(&r->cust);
    free(r->alerts);
}

struct quality {
    int64_t alerts, true_alerts;
    int64_t planted[VS__FRAUD_KIND_COUNT], caught[VS__FRAUD_KIND_COUNT];
};

static void measure(const struct run *r, const struct vs__truth *t, struct quality *q)
{
    memset(q, 0, sizeof(*q));
    for (int k = 1; k < VS__FRAUD_KIND_COUNT; k++) {
        q->planted[k] = (int64_t)vs__truth_fraud_count(t, (enum vs__fraud_kind)k);
    }
    for (size_t i = 0; i < r->nalerts; i++) {
        enum vs__fraud_kind k = vs__truth_fraud_kind(t, r->alerts[i].event_id);
        q->alerts++;
        if (k != VS__FRAUD_NONE) {
            q->true_alerts++;
            q->caught[k]++;
        }
    }
}

static int write_alerts(const char *path, const struct run *r, const struct vs__truth *t)
{
    FILE *out = fopen(path, "w");
    if (!out) {
        return VS_EIO;
    }
    fprintf(out, "event_id,kind,score,decision,rules,history");
    for (int f = 0; f < VS_FRAUD_NFEATURES; f++) {
        fprintf(out, ",%s", vs_fraud_feature_names[f]);
    }
    fprintf(out, "\n");
    for (size_t i = 0; i < r->nalerts; i++) {
        const struct alert *a = &r->alerts[i];
        fprintf(out, "%s,%s,%.4f,%d,%u,%u", a->event_id,
                vs__fraud_kind_name(vs__truth_fraud_kind(t, a->event_id)), a->score,
                (int)a->decision, a->rules, a->history);
        for (int f = 0; f < VS_FRAUD_NFEATURES; f++) {
            fprintf(out, ",%.4g", a->x[f]);
        }
        fprintf(out, "\n");
    }
    return fclose(out) == 0 ? 0 : VS_EIO;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/*
 * What a pair of now_us() calls measures with nothing between them: reading the thread's CPU
 * clock is a system call (~0.6 us here), and part of each pair's two calls falls inside the
 * interval it times. The median of many empty pairs is subtracted from each purchase's time.
 */
static double clock_overhead_us(void)
{
    enum { PAIRS = 20001 };
    static double d[PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        double t0 = now_us();
        d[i] = now_us() - t0;
    }
    qsort(d, PAIRS, sizeof(double), cmp_double);
    return d[PAIRS / 2];
}

static double ratio(int64_t a, int64_t b)
{
    return b > 0 ? (double)a / (double)b : 0.0;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_fraud_bench [--quick] [--customers N] [--events N] [--seed N] "
                    "[--runs N] [--alerts FILE]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct vs__gen_options o;
    vs__gen_options_default(&o);
    int quick = 0, runs = 0;
    const char *alerts_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
            o.customers = 5000;
            o.events = 250000;
        } else if (i + 1 < argc && strcmp(argv[i], "--customers") == 0) {
            o.customers = strtoll(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "--events") == 0) {
            o.events = strtoll(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "--seed") == 0) {
            o.seed = strtoull(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "--runs") == 0) {
            runs = atoi(argv[++i]);
        } else if (i + 1 < argc && strcmp(argv[i], "--alerts") == 0) {
            alerts_path = argv[++i];
        } else {
            return usage();
        }
    }
    if (o.customers <= 0 || o.events <= 0 || runs < 0 || runs > 8) {
        return usage();
    }

    /* The first run also writes the truth; the others only time the work again. */
    char truth_path[] = "/tmp/vs-fraud-bench-truth-XXXXXX";
    int fd = mkstemp(truth_path);
    FILE *truth = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!truth) {
        fprintf(stderr, "bench_fraud: cannot create a temporary truth file\n");
        return 1;
    }
    runs = runs > 0 ? runs : quick ? 3 : 5;
    double us[8];
    const double overhead = clock_overhead_us();
    struct run r;
    for (int k = 0; k < runs; k++) {
        if (k > 0) {
            run_free(&r);
        }
        int rc = run_shop(&o, k == 0 ? truth : NULL, &r);
        if (k == 0 && fclose(truth) != 0) {
            rc = rc ? rc : VS_EIO;
        }
        if (rc != 0) {
            fprintf(stderr, "bench_fraud: generating the shop: %s\n", vs_strerror(rc));
            unlink(truth_path);
            return 1;
        }
        us[k] = r.busy_us / (double)(r.purchases ? r.purchases : 1) - overhead;
    }
    qsort(us, (size_t)runs, sizeof(double), cmp_double);
    double us_median = us[runs / 2];

    char err[512];
    struct vs__truth *t = vs__truth_load(truth_path, err, sizeof(err));
    unlink(truth_path);
    if (!t) {
        fprintf(stderr, "bench_fraud: %s\n", err);
        return 1;
    }
    struct quality q;
    measure(&r, t, &q);
    if (alerts_path && write_alerts(alerts_path, &r, t) != 0) {
        fprintf(stderr, "bench_fraud: cannot write %s\n", alerts_path);
    }
    vs__truth_free(t);

    double precision = ratio(q.true_alerts, q.alerts);
    printf("synthetic shop (engine generator, seed %" PRIu64 "): %" PRId64 " customers, %" PRId64
           " purchases scored, %" PRId64 " skipped (invalid amount)\n",
           o.seed, o.customers, r.purchases, r.skipped);
    printf("  alerts %" PRId64 ", of which planted fraud %" PRId64 ": precision %.3f\n", q.alerts,
           q.true_alerts, precision);
    for (int k = 1; k < VS__FRAUD_KIND_COUNT; k++) {
        printf("  %-17s planted %6" PRId64 "  caught %6" PRId64 "  recall %.3f\n",
               vs__fraud_kind_name((enum vs__fraud_kind)k), q.planted[k], q.caught[k],
               ratio(q.caught[k], q.planted[k]));
    }
    printf("features + score + learn: %.3f us CPU per purchase (median of %d runs, 100 trees; "
           "the clock's own %.3f us per timed interval taken off)\n",
           us_median, runs, overhead);

    /* Prequential AUCs on the ODDS sets, default settings, file order. */
    const char *sets[2] = {"../shared/data/anomaly/shuttle.csv",
                           "../shared/data/anomaly/mammography.csv"};
    double auc[2] = {NAN, NAN}, ap[2] = {NAN, NAN}, us_row[2] = {NAN, NAN};
    for (int i = 0; i < 2; i++) {
        struct vs_anomaly_data d;
        if (vs_anomaly_csv_load(sets[i], &d, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s\n", err);
            continue;
        }
        struct vs_iforest_config fc;
        vs_iforest_config_default(&fc, d.dims);
        struct vs_anomaly_result res;
        if (vs_anomaly_run(&d, &fc, 0, 0, &res, NULL, NULL, err, sizeof(err)) == 0) {
            auc[i] = res.roc_auc;
            ap[i] = res.pr_auc;
            us_row[i] = res.us_per_row;
            printf("eval anomaly %s: roc_auc %.4f pr_auc %.4f (%.3f us/row)\n", sets[i],
                   res.roc_auc, res.pr_auc, res.us_per_row);
        }
        vs_anomaly_data_release(&d);
    }

    char json[1024];
    snprintf(
        json, sizeof(json),
        "{\"bench\":\"fraud\",\"shop\":\"gen\",\"customers\":%" PRId64 ",\"seed\":%" PRIu64
        ",\"trees\":100,\"us_per_purchase\":%.3f,\"clock_overhead_us\":%.3f,\"purchases\":%" PRId64
        ",\"alerts\":%" PRId64 ",\"precision\":%.3f,\"recall_card_testing\":%.3f,"
        "\"recall_account_takeover\":%.3f,\"recall_amount_anomaly\":%.3f,"
        "\"alert_rate\":%.4f,\"shuttle_roc_auc\":%.4f,\"shuttle_pr_auc\":%.4f,"
        "\"mammography_roc_auc\":%.4f,\"mammography_pr_auc\":%.4f,\"eval_us_per_row\":%.3f}",
        o.customers, o.seed, us_median, overhead, r.purchases, q.alerts, precision,
        ratio(q.caught[VS__FRAUD_CARD_TESTING], q.planted[VS__FRAUD_CARD_TESTING]),
        ratio(q.caught[VS__FRAUD_ACCOUNT_TAKEOVER], q.planted[VS__FRAUD_ACCOUNT_TAKEOVER]),
        ratio(q.caught[VS__FRAUD_AMOUNT_ANOMALY], q.planted[VS__FRAUD_AMOUNT_ANOMALY]),
        ratio(q.alerts, r.purchases), auc[0], ap[0], auc[1], ap[1], us_row[0]);
    run_free(&r);
    FILE *out = fopen("bench/results/fraud.json", "w");
    if (out) {
        fprintf(out, "%s\n", json);
        fclose(out);
    } else {
        fprintf(stderr, "cannot write bench/results/fraud.json (run from the repository root)\n");
    }
    printf("%s\n", json);
    return 0;
}
