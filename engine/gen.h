/*
 * The synthetic shop: a deterministic generator of shop events with known ground truth.
 *
 * valuestream's operators learn customer value, churn, tastes and fraud from a clickstream; to
 * tell whether they learn the right thing we need a stream whose answers are known. The
 * generator builds a shop (items in categories, Zipf-like popularity within a category, a price
 * level per category) and a population of customers with latent tastes, a BG/NBD purchase
 * process (Fader, Hardie & Lee 2005: a Gamma-distributed purchase rate and a Beta-distributed
 * probability of dropping out after each repeat purchase) and stable devices, addresses and
 * payment instruments. It then plays their sessions (view -> add to cart -> remove -> purchase)
 * in global event-time order and plants fraud: card-testing bursts, account takeovers and
 * amount anomalies. The truth file records every planted fraud event and every dropout.
 *
 * Everything follows from the seed: the same options give the same events, byte for byte. No
 * clock is read.
 */
#ifndef VS_ENGINE_GEN_H
#define VS_ENGINE_GEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <valuestream/event.h>

/* 2026-01-01T00:00:00Z: the default start of the generated period. */
#define VS__GEN_DEFAULT_START_TS INT64_C(1767225600000)

struct vs__gen_options {
    int64_t customers;  /* customers in the population (default 20000) */
    int64_t items;      /* items in the catalogue (default 2000) */
    int64_t events;     /* about this many events (default 1000000): rates are calibrated */
    int64_t days;       /* length of the period in days (default 180) */
    uint64_t seed;      /* everything random follows from it (default 1) */
    int64_t start_ts;   /* start of the period, epoch ms */
    int64_t categories; /* 0: one per 100 items, at least 1 */
    /* Planted fraud, as fractions of the customers who are hit once each. */
    double card_testing_rate;     /* card-testing bursts (default 0.002) */
    double account_takeover_rate; /* account takeovers (default 0.004) */
    double amount_anomaly_rate;   /* purchases with an absurd amount (default 0.005) */
};

/* The defaults above (the demo's scenario). */
void vs__gen_options_default(struct vs__gen_options *o);

/* What a run produced, for summaries and tests. */
struct vs__gen_stats {
    int64_t events;
    int64_t purchases;
    int64_t customers;
    int64_t dropouts;
    int64_t fraud_events[4]; /* by enum vs__fraud_kind; [0]: all kinds */
    int64_t first_ts, last_ts;
    double rate_scale; /* the calibrated mean purchase rate, per day */
};

typedef int (*vs__gen_sink)(void *arg, const struct vs_event *ev);

/*
 * Generate the shop's events in non-decreasing ts order and hand each to sink (whose event and
 * strings are valid only during the call). A non-zero return from sink stops the run and is
 * returned. truth, when not NULL, receives the ground truth as CSV (see below). Returns 0,
 * VS_EINVAL for bad options, VS_ENOMEM, VS_EIO (truth write failed) or the sink's code.
 */
int vs__gen_run(const struct vs__gen_options *o, vs__gen_sink sink, void *arg, FILE *truth);
/* The same, filling *stats (when not NULL) with what the run produced. */
int vs__gen_run_stats(const struct vs__gen_options *o, vs__gen_sink sink, void *arg, FILE *truth,
                      struct vs__gen_stats *stats);

/*
 * `valuestream gen [--customers N] [--items N] [--events N] [--days N] [--seed N]
 *  [--categories N] [--start-ts MS] (--bootstrap HOST:PORT --topic NAME | --out FILE)
 *  [--truth FILE]` (argv[0] is "gen"). With --out, a file of length-prefixed Avro records
 * (4-byte big-endian length, then the Avro binary body of shop_event.avsc); with --bootstrap and
 * --topic, one Kafka message per event (key = user_id, timestamp = the event's ts). Prints a
 * summary to stderr and one JSON object as the last line of stdout. Returns the exit status.
 */
int vs__gen_main(int argc, char **argv);

/* ==== Ground truth ====
 *
 * The truth file is CSV with the header `record,id,value` and rows
 *   meta,<key>,<value>            start_ts, end_ts, seed, customers, items, events,
 *                                 and the generator's BG/NBD parameters (bgnbd_r,
 *                                 bgnbd_alpha_days, bgnbd_a, bgnbd_b)
 *   taste,<user_id>,<c1 c2 ...>   the customer's preferred categories, strongest first
 *   fraud,<event_id>,<kind>       kind: card_testing | account_takeover | amount_anomaly
 *   dropout,<user_id>,<ts_ms>     the customer's last event (the purchase after which they
 *                                 dropped out); customers still active at the end have no row
 */
enum vs__fraud_kind {
    VS__FRAUD_NONE = 0,
    VS__FRAUD_CARD_TESTING = 1,
    VS__FRAUD_ACCOUNT_TAKEOVER = 2,
    VS__FRAUD_AMOUNT_ANOMALY = 3,
};
#define VS__FRAUD_KIND_COUNT 4

/* "none", "card_testing", "account_takeover", "amount_anomaly". */
const char *vs__fraud_kind_name(enum vs__fraud_kind kind);

struct vs__truth;

/* Load a truth file. NULL and errbuf (naming the line) on failure. */
struct vs__truth *vs__truth_load(const char *path, char *errbuf, size_t errlen);
void vs__truth_free(struct vs__truth *t);

/* The planted fraud kind of an event, VS__FRAUD_NONE for an honest one. */
enum vs__fraud_kind vs__truth_fraud_kind(const struct vs__truth *t, const char *event_id);
/* Fraud events of a kind (VS__FRAUD_NONE: of all kinds). */
size_t vs__truth_fraud_count(const struct vs__truth *t, enum vs__fraud_kind kind);

/* 1 and *ts when the customer dropped out within the period, else 0. */
int vs__truth_dropout(const struct vs__truth *t, const char *user_id, int64_t *ts);
size_t vs__truth_dropout_count(const struct vs__truth *t);
/* The i-th dropout in file order (i < vs__truth_dropout_count); 0, or VS_EINVAL. */
int vs__truth_dropout_at(const struct vs__truth *t, size_t i, const char **user_id, int64_t *ts);

/* The customer's preferred categories ("c3 c7"), or NULL. */
const char *vs__truth_taste(const struct vs__truth *t, const char *user_id);

/* The period and population of the run: meta rows (0 when absent). */
int64_t vs__truth_start_ts(const struct vs__truth *t);
int64_t vs__truth_end_ts(const struct vs__truth *t);
int64_t vs__truth_customers(const struct vs__truth *t);

#endif
