/*
 * Fraud scoring benchmark: the cost of features + score + learn per purchase at 100 trees, the
 * detection quality on a small simulated shop with planted fraud, and the prequential AUCs of
 * `valuestream eval anomaly` on the ODDS sets.
 *
 * The simulated shop lives here, independent of the engine's generator, so that the model can be
 * measured on its own: customers with a home country, one or two devices, a card, a habitual
 * spend and a purchase cadence, browsing view -> cart -> purchase; planted card testing (bursts
 * of small purchases within minutes from a new device and card, straight to payment), account
 * takeover (new country and device, a large amount) and amount anomalies (a customer's own
 * context, an amount far above their habit). Events go through the same code as in the operator
 * (features, forest, policy), in event-time order.
 *
 * Output: a human-readable summary, then one JSON line, also written to bench/results/fraud.json.
 * Usage: bench_fraud [--quick] (run from the repository root).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "operators/fraud/eval_anomaly.h"
#include "operators/fraud/features.h"
#include "operators/fraud/iforest.h"
#include "operators/fraud/policy.h"

/* ==== The simulated shop ==== */

enum kind { NORMAL = 0, CARD_TESTING = 1, TAKEOVER = 2, AMOUNT = 3, NKINDS = 4 };
static const char *const kind_names[NKINDS] = {"normal", "card_testing", "account_takeover",
                                               "amount_anomaly"};

struct sim_event {
    int64_t ts;
    int customer;
    enum vs_event_type type;
    enum kind kind;
    double amount, price;
    int quantity, category;
    int device, country, payment; /* small ids, turned into strings */
};

struct sim {
    struct sim_event *ev;
    long n, cap;
};

static void push(struct sim *s, struct sim_event e)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1 << 16;
        s->ev = realloc(s->ev, (size_t)s->cap * sizeof(*s->ev));
        if (!s->ev) {
            abort();
        }
    }
    s->ev[s->n++] = e;
}

static int by_ts(const void *a, const void *b)
{
    const struct sim_event *x = a, *y = b;
    if (x->ts != y->ts) {
        return x->ts < y->ts ? -1 : 1;
    }
    return x->customer - y->customer;
}

#define DAY (86400000LL)
#define T0 (1700000000000LL)

static void sim_generate(struct sim *s, int customers, int days, unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    int next_device = 1000000, next_card = 2000000;
    for (int c = 0; c < customers; c++) {
        int country = gsl_rng_uniform(r) < 0.7 ? 0 : 1 + (int)gsl_rng_uniform_int(r, 9);
        int devices[2] = {next_device++, next_device++};
        int ndev = gsl_rng_uniform(r) < 0.4 ? 2 : 1;
        int card = next_card++;
        double mean_amount = exp(gsl_ran_gaussian(r, 0.7) + log(40.0));
        double gap_days = 3.0 + gsl_ran_exponential(r, 15.0);
        int64_t t = T0 + (int64_t)(gsl_rng_uniform(r) * 20 * DAY);
        int fav_cat = (int)gsl_rng_uniform_int(r, 40);
        while (t < T0 + (int64_t)days * DAY) {
            int dev = devices[gsl_rng_uniform_int(r, (unsigned long)ndev)];
            int cat = gsl_rng_uniform(r) < 0.6 ? fav_cat : (int)gsl_rng_uniform_int(r, 40);
            double cat_price = 10.0 * (1 + cat % 10);
            int views = 1 + (int)gsl_rng_uniform_int(r, 6);
            int64_t u = t;
            for (int v = 0; v < views; v++) {
                double p = cat_price * exp(gsl_ran_gaussian(r, 0.3));
                push(s, (struct sim_event){u, c, VS_EVENT_VIEW, NORMAL, 0, p, 1, cat, dev, country,
                                           0});
                u += (int64_t)(gsl_ran_exponential(r, 40.0) * 1000);
            }
            if (gsl_rng_uniform(r) < 0.5) {
                int qty = 1 + (int)gsl_ran_poisson(r, 0.5);
                double p = cat_price * exp(gsl_ran_gaussian(r, 0.3));
                push(s, (struct sim_event){u, c, VS_EVENT_ADD_TO_CART, NORMAL, 0, p, qty, cat, dev,
                                           country, 0});
                u += (int64_t)(gsl_ran_exponential(r, 120.0) * 1000);
                double amount = mean_amount * exp(gsl_ran_gaussian(r, 0.35));
                enum kind k = NORMAL;
                if (gsl_rng_uniform(r) < 0.003) {
                    amount *= 10 + gsl_rng_uniform(r) * 20; /* amount anomaly */
                    k = AMOUNT;
                }
                push(s, (struct sim_event){u, c, VS_EVENT_PURCHASE, k, amount, amount / qty, qty,
                                           cat, dev, country, card});
            }
            t += (int64_t)(gsl_ran_exponential(r, gap_days) * DAY) + 60000;
        }
        /* Planted fraud against this customer, at a random time. */
        double roll = gsl_rng_uniform(r);
        int64_t when = T0 + (int64_t)((0.2 + 0.8 * gsl_rng_uniform(r)) * days * DAY);
        if (roll < 0.02) {
            int dev = next_device++, tcard = next_card++;
            int burst = 5 + (int)gsl_rng_uniform_int(r, 11);
            int64_t u = when;
            for (int b = 0; b < burst; b++) {
                double amount = 1.0 + gsl_rng_uniform(r) * 4.0;
                push(s, (struct sim_event){u, c, VS_EVENT_PURCHASE, CARD_TESTING, amount, amount, 1,
                                           (int)gsl_rng_uniform_int(r, 40), dev, country, tcard});
                u += (int64_t)(5000 + gsl_rng_uniform(r) * 40000);
            }
        } else if (roll < 0.04) {
            int dev = next_device++;
            int cty = 20 + (int)gsl_rng_uniform_int(r, 30);
            int cat = (int)gsl_rng_uniform_int(r, 40);
            push(s, (struct sim_event){when, c, VS_EVENT_VIEW, NORMAL, 0, 10.0 * (1 + cat % 10), 1,
                                       cat, dev, cty, 0});
            double amount = mean_amount * (5 + gsl_rng_uniform(r) * 10);
            push(s, (struct sim_event){when + 90000, c, VS_EVENT_PURCHASE, TAKEOVER, amount, amount,
                                       1, cat, dev, cty, card});
        }
    }
    gsl_rng_free(r);
    qsort(s->ev, (size_t)s->n, sizeof(*s->ev), by_ts);
}

static void fill_event(const struct sim_event *e, long i, struct vs_event *ev, char bufs[6][32])
{
    memset(ev, 0, sizeof(*ev));
    snprintf(bufs[0], 32, "e%ld", i);
    snprintf(bufs[1], 32, "u%d", e->customer);
    snprintf(bufs[2], 32, "c%d", e->category);
    snprintf(bufs[3], 32, "d%d", e->device);
    snprintf(bufs[4], 32, "C%d", e->country);
    snprintf(bufs[5], 32, "card%d", e->payment);
    ev->event_id = bufs[0];
    ev->user_id = bufs[1];
    ev->user_id_len = strlen(bufs[1]);
    ev->type = e->type;
    ev->category_id = bufs[2];
    ev->has_price = e->price > 0;
    ev->price = e->price;
    ev->quantity = e->quantity;
    ev->has_amount = e->type == VS_EVENT_PURCHASE;
    ev->amount = e->amount;
    ev->ts = e->ts;
    ev->device_id = bufs[3];
    ev->country = bufs[4];
    ev->payment_method = e->type == VS_EVENT_PURCHASE ? bufs[5] : NULL;
}

/* ==== Streaming the shop through features, forest and policy ==== */

struct quality {
    long purchases, per_kind[NKINDS], caught[NKINDS], alerts, true_alerts;
    double us_per_purchase;
};

/* CPU time of this thread: the cost of the work, not of other processes sharing the cores. */
static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void run_shop(const struct sim *s, int customers, const struct vs_fraud_policy *pol,
                     int warmup, struct quality *q)
{
    struct vs_iforest_config fc;
    char err[256];
    vs_iforest_config_default(&fc, VS_FRAUD_NFEATURES);
    struct vs_iforest *f = vs_iforest_new(&fc, err, sizeof(err));
    struct vs_fraud_section *secs = calloc((size_t)customers, sizeof(*secs));
    struct vs_fraud_categories *cats = calloc(1, sizeof(*cats));
    struct vs_fraud_quantiles *qs = malloc(sizeof(*qs));
    vs_fraud_quantiles_init(qs);
    memset(q, 0, sizeof(*q));
    double busy = 0;
    char bufs[6][32];
    for (long i = 0; i < s->n; i++) {
        const struct sim_event *e = &s->ev[i];
        struct vs_event ev;
        fill_event(e, i, &ev, bufs);
        struct vs_fraud_section *sec = &secs[e->customer];
        if (e->type != VS_EVENT_PURCHASE) {
            vs_fraud_observe(sec, cats, &ev, NULL);
            continue;
        }
        double x[VS_FRAUD_NFEATURES], score, review, block;
        double t0 = now_us();
        vs_fraud_features(sec, cats, &ev, x);
        vs_iforest_score(f, x, &score, NULL);
        vs_iforest_learn_id(f, x, vs_fraud_hash(ev.event_id));
        vs_fraud_observe(sec, cats, &ev, x);
        busy += now_us() - t0;
        int scored = vs_iforest_learned(f) > (uint64_t)warmup;
        if (scored) {
            vs_fraud_quantiles_add(qs, score);
        }
        vs_fraud_thresholds(pol, qs, &review, &block);
        unsigned rules;
        enum vs_fraud_decision d =
            vs_fraud_decide(pol, review, block, score, scored, ev.amount, x[VS_FF_PURCHASES_10M],
                            x[VS_FF_PURCHASES_24H], &rules);
        q->purchases++;
        q->per_kind[e->kind]++;
        if (d != VS_FRAUD_ALLOW) {
            q->alerts++;
            q->caught[e->kind]++;
            q->true_alerts += e->kind != NORMAL;
        }
    }
    q->us_per_purchase = busy / (double)q->purchases;
    vs_iforest_free(f);
    free(secs);
    free(cats);
    free(qs);
}

/* ==== Pure model speed: score + learn on recorded feature rows ==== */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int customers = quick ? 2000 : 8000, days = 180;
    struct sim s = {0};
    sim_generate(&s, customers, days, 42);

    struct vs_fraud_policy pol = {.review_threshold = 0.62, .block_threshold = 0.7};
    int runs = quick ? 3 : 5;
    double us[8];
    struct quality q;
    for (int r = 0; r < runs; r++) {
        run_shop(&s, customers, &pol, 500, &q);
        us[r] = q.us_per_purchase;
    }
    qsort(us, (size_t)runs, sizeof(double), cmp_double);
    double us_median = us[runs / 2];

    long frauds = 0;
    for (int k = 1; k < NKINDS; k++) {
        frauds += q.per_kind[k];
    }
    double precision = q.alerts ? (double)q.true_alerts / (double)q.alerts : 0.0;
    printf("simulated shop: %ld events, %ld purchases, %ld planted fraud\n", s.n, q.purchases,
           frauds);
    for (int k = 0; k < NKINDS; k++) {
        printf("  %-17s %6ld purchases, %5ld alerted (%.3f)\n", kind_names[k], q.per_kind[k],
               q.caught[k], q.per_kind[k] ? (double)q.caught[k] / (double)q.per_kind[k] : 0.0);
    }
    printf("  alerts %ld, precision %.3f\n", q.alerts, precision);
    printf("features + score + learn: %.3f us CPU per purchase (median of %d runs, 100 trees)\n",
           us_median, runs);

    /* Prequential AUCs on the ODDS sets, default settings, file order. */
    const char *sets[2] = {"../shared/data/anomaly/shuttle.csv",
                           "../shared/data/anomaly/mammography.csv"};
    double auc[2] = {NAN, NAN}, ap[2] = {NAN, NAN}, us_row[2] = {NAN, NAN};
    for (int i = 0; i < 2; i++) {
        struct vs_anomaly_data d;
        char err[512];
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
    snprintf(json, sizeof(json),
             "{\"bench\":\"fraud\",\"trees\":100,\"us_per_purchase\":%.3f,\"purchases\":%ld,"
             "\"recall_card_testing\":%.3f,\"recall_account_takeover\":%.3f,"
             "\"recall_amount_anomaly\":%.3f,\"precision\":%.3f,\"alert_rate\":%.4f,"
             "\"shuttle_roc_auc\":%.4f,\"shuttle_pr_auc\":%.4f,\"mammography_roc_auc\":%.4f,"
             "\"mammography_pr_auc\":%.4f,\"eval_us_per_row\":%.3f}",
             us_median, q.purchases,
             q.per_kind[CARD_TESTING] ? (double)q.caught[CARD_TESTING] / q.per_kind[CARD_TESTING]
                                      : 0.0,
             q.per_kind[TAKEOVER] ? (double)q.caught[TAKEOVER] / q.per_kind[TAKEOVER] : 0.0,
             q.per_kind[AMOUNT] ? (double)q.caught[AMOUNT] / q.per_kind[AMOUNT] : 0.0, precision,
             (double)q.alerts / (double)q.purchases, auc[0], ap[0], auc[1], ap[1], us_row[0]);
    FILE *out = fopen("bench/results/fraud.json", "w");
    if (out) {
        fprintf(out, "%s\n", json);
        fclose(out);
    } else {
        fprintf(stderr, "cannot write bench/results/fraud.json (run from the repository root)\n");
    }
    printf("%s\n", json);
    free(s.ev);
    return 0;
}
