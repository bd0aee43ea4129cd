/*
 * `valuestream eval anomaly`: prequential evaluation of the streaming isolation forest on a CSV
 * of feature rows (a header, the last column `label`, 1 = anomaly), the ODDS sets for instance.
 *
 * Each row is scored, then learned, in file order or in an order shuffled with a seed, by the same
 * forest code the fraud operator runs; the labels are used only to measure (ROC-AUC, PR-AUC),
 * never by the model.
 */
#ifndef VS_FRAUD_EVAL_ANOMALY_H
#define VS_FRAUD_EVAL_ANOMALY_H

#include <stddef.h>
#include <stdint.h>

#include "iforest.h"

/* Feature rows and labels, as read from a CSV. x is rows * dims, row-major. */
struct vs_anomaly_data {
    long rows;
    int dims;
    double *x;
    unsigned char *label;
};

/*
 * Read path into d (which the caller releases with vs_anomaly_data_release). Errors name the file
 * and the line: a header whose last column is not `label`, a row with the wrong number of
 * fields, a value that is not a finite number, a label other than 0 or 1. Returns 0 or a VS_E*
 * code with errbuf filled.
 */
int vs_anomaly_csv_load(const char *path, struct vs_anomaly_data *d, char *errbuf, size_t errlen);
void vs_anomaly_data_release(struct vs_anomaly_data *d);

struct vs_anomaly_result {
    long rows, anomalies;
    double roc_auc, pr_auc;
    double us_per_row; /* score + learn, wall clock */
};

/*
 * Stream d through a forest built from cfg (cfg->dims is overridden by d->dims): score, then
 * learn, in row order, or shuffled by shuffle_seed when shuffle is true. scores, when not NULL,
 * receives d->rows scores in the order the rows were streamed (row indices in order, if not
 * NULL). Returns 0 or a VS_E* code with errbuf filled.
 */
int vs_anomaly_run(const struct vs_anomaly_data *d, const struct vs_iforest_config *cfg,
                   int shuffle, uint64_t shuffle_seed, struct vs_anomaly_result *res,
                   double *scores, long *order, char *errbuf, size_t errlen);

/* Area under the ROC curve (ties count half) and average precision, of scores against labels
 * (1 = positive). NaN when one class is absent. */
double vs_roc_auc(const double *score, const unsigned char *label, long n);
double vs_pr_auc(const double *score, const unsigned char *label, long n);

/* The command: argv[0] is "anomaly". Prints the JSON result as the last line of stdout; returns
 * 0, or 1 with a message on stderr (bad arguments, unreadable or malformed CSV). */
int vs_eval_anomaly_main(int argc, char **argv);

#endif
