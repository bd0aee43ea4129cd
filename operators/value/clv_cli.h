/*
 * `valuestream clv fit`: fit BG/NBD and Gamma-Gamma on a transaction log.
 *
 * A transaction log is read into per-customer calibration statistics (and, for evaluation, the
 * repeat transactions after the calibration end), then fitted through vs_clv_refit(), the same
 * function the value operator's periodic refit runs. Purchases on one calendar day are one
 * transaction, as in the CDNOW papers; time is in weeks from each customer's first purchase.
 */
#ifndef VS_OPERATORS_VALUE_CLV_CLI_H
#define VS_OPERATORS_VALUE_CLV_CLI_H

#include <stddef.h>
#include <stdint.h>

enum vs_txlog_format {
    VS_TXLOG_CDNOW_SAMPLE, /* "master_id sample_id YYYYMMDD cds dollars", no header; id = sample */
    VS_TXLOG_CDNOW_MASTER, /* header line, then "customer_id YYYYMMDD cds dollars" */
    VS_TXLOG_CSV,          /* header line, then "customer_id,date,amount" */
};

/* Parse "cdnow-sample", "cdnow-master" or "csv"; -1 for anything else. */
int vs_txlog_format_parse(const char *name);

/* One customer whose first purchase is on or before the calibration end. */
struct vs_clv_customer {
    char id[32];        /* the log's customer id (truncated to 31 bytes) */
    int32_t first_day;  /* days since 1970-01-01 of the first purchase */
    double x, t_x, T;   /* BG/NBD statistics at the calibration end, weeks */
    int paid_repeats;   /* repeat transactions (days) with a positive amount */
    double m_x;         /* mean amount of those, 0 without any */
    double holdout_x;   /* transactions (days) after the calibration end, up to holdout_end */
    double total_spend; /* calibration-period spend */
};

struct vs_clv_dataset {
    struct vs_clv_customer *customers; /* sorted by id */
    size_t n;
    size_t repeaters;        /* customers with x > 0 */
    size_t gg_customers;     /* customers with a positive repeat spend (the Gamma-Gamma fit) */
    size_t rows;             /* data rows read */
    size_t bad_rows;         /* unparsable rows, skipped */
    size_t zero_value;       /* purchases with amount <= 0: transactions without spend */
    size_t after_end;        /* purchases after the calibration end (holdout) */
    size_t late_customers;   /* customers first seen after the calibration end, left out */
    int32_t calibration_end; /* day number, inclusive */
};

/* Day number (days since 1970-01-01) of "YYYY-MM-DD" or "YYYYMMDD"; -1 if malformed. A time
 * part after the date ("T12:00:00", " 12:00") is ignored. */
int32_t vs_txlog_parse_day(const char *s);

/*
 * Read a transaction log. Purchases after calibration_end (inclusive end) count towards
 * holdout_x when on or before holdout_end (pass INT32_MAX for all). Returns NULL on I/O error or
 * a log without a single usable row, with the reason in errbuf. Free with
 * vs_clv_dataset_free().
 */
struct vs_clv_dataset *vs_clv_dataset_load(const char *path, enum vs_txlog_format format,
                                           int32_t calibration_end, int32_t holdout_end,
                                           char *errbuf, size_t errlen);
void vs_clv_dataset_free(struct vs_clv_dataset *ds);

struct vs_clv_fit; /* clv_model.h */

/* Fit both models on the dataset through vs_clv_refit(); fit holds the starting point on entry
 * (vs_clv_fit_init() for the priors). Returns 0 or the first error. */
int vs_clv_dataset_fit(const struct vs_clv_dataset *ds, struct vs_clv_fit *fit);

/* The `valuestream clv` command; argv[0] is "clv". Returns the process exit code. */
int vs_clv_main(int argc, char **argv);

#endif
