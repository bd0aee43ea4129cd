/*
 * `valuestream eval anomaly --csv FILE [--shuffle SEED] [--set key=value]...`
 *
 * Prequential evaluation of the streaming isolation forest: every row is scored by the model as
 * it stands, then learned, exactly as the fraud operator treats a purchase. The labels never
 * reach the model; they only rank the scores afterwards (ROC-AUC and average precision). The
 * CSV is read whole before streaming, so the time per row measures the model alone.
 */
#include "eval_anomaly.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort_double.h>

#include <valuestream/config.h>
#include <valuestream/error.h>

#include "engine/config.h"

/* ==== CSV ==== */

/* Split line in place at commas into at most max fields, trimming blanks; returns the count
 * (which may exceed max: the extra fields are counted, not stored). */
static int split_fields(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        char *start = p;
        while (*p && *p != ',') {
            p++;
        }
        char *end = p;
        while (end > start &&
               (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n')) {
            end--;
        }
        int last = *p == 0;
        *end = 0;
        if (n < max) {
            fields[n] = start;
        }
        n++;
        if (last) {
            return n;
        }
        p++;
    }
}

static int blank(const char *s)
{
    for (; *s; s++) {
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') {
            return 0;
        }
    }
    return 1;
}

void vs_anomaly_data_release(struct vs_anomaly_data *d)
{
    free(d->x);
    free(d->label);
    memset(d, 0, sizeof(*d));
}

int vs_anomaly_csv_load(const char *path, struct vs_anomaly_data *d, char *errbuf, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(errbuf, errlen, "%s: cannot open: %s", path, strerror(errno));
        return VS_EIO;
    }
    char *line = NULL;
    size_t cap = 0;
    char **fields = NULL;
    char **names = NULL;
    int ncols = 0, rc = 0;
    long lineno = 0, rows_cap = 0;

    while (getline(&line, &cap, fp) >= 0) {
        lineno++;
        if (blank(line)) {
            if (ncols == 0) {
                snprintf(errbuf, errlen, "%s:%ld: empty header line", path, lineno);
                rc = VS_EINVAL;
                goto out;
            }
            continue;
        }
        if (ncols == 0) {
            /* The header: names the columns, the last one must be the label. */
            int n = 1;
            for (const char *c = line; *c; c++) {
                n += *c == ',';
            }
            fields = calloc((size_t)n, sizeof(*fields));
            names = calloc((size_t)n, sizeof(*names));
            if (!fields || !names) {
                rc = VS_ENOMEM;
                snprintf(errbuf, errlen, "%s: out of memory", path);
                goto out;
            }
            split_fields(line, fields, n);
            if (n < 2 || strcmp(fields[n - 1], "label") != 0) {
                snprintf(errbuf, errlen,
                         "%s:%ld: no label column: the header's last column must be 'label' "
                         "(got '%s')",
                         path, lineno, fields[n - 1]);
                rc = VS_EINVAL;
                goto out;
            }
            if (n - 1 > VS_IFOREST_MAX_DIMS) {
                snprintf(errbuf, errlen, "%s:%ld: %d feature columns, at most %d supported", path,
                         lineno, n - 1, VS_IFOREST_MAX_DIMS);
                rc = VS_EINVAL;
                goto out;
            }
            for (int i = 0; i < n; i++) {
                names[i] = strdup(fields[i]);
                if (!names[i]) {
                    rc = VS_ENOMEM;
                    snprintf(errbuf, errlen, "%s: out of memory", path);
                    goto out;
                }
            }
            ncols = n;
            d->dims = n - 1;
            continue;
        }
        int n = split_fields(line, fields, ncols);
        if (n != ncols) {
            snprintf(errbuf, errlen, "%s:%ld: bad row: %d fields, the header has %d", path, lineno,
                     n, ncols);
            rc = VS_EINVAL;
            goto out;
        }
        if (d->rows == rows_cap) {
            long nc = rows_cap ? 2 * rows_cap : 1024;
            double *nx = realloc(d->x, (size_t)nc * (size_t)d->dims * sizeof(double));
            if (nx) {
                d->x = nx;
            }
            unsigned char *nl = realloc(d->label, (size_t)nc);
            if (nl) {
                d->label = nl;
            }
            if (!nx || !nl) {
                rc = VS_ENOMEM;
                snprintf(errbuf, errlen, "%s: out of memory", path);
                goto out;
            }
            rows_cap = nc;
        }
        for (int i = 0; i < ncols; i++) {
            char *end;
            errno = 0;
            double v = strtod(fields[i], &end);
            if (end == fields[i] || *end || !isfinite(v)) {
                snprintf(errbuf, errlen, "%s:%ld: column '%s': '%s' is not a finite number", path,
                         lineno, names[i], fields[i]);
                rc = VS_EINVAL;
                goto out;
            }
            if (i < d->dims) {
                d->x[(size_t)d->rows * d->dims + i] = v;
            } else if (v == 0.0 || v == 1.0) {
                d->label[d->rows] = (unsigned char)v;
            } else {
                snprintf(errbuf, errlen, "%s:%ld: label '%s' is neither 0 nor 1", path, lineno,
                         fields[i]);
                rc = VS_EINVAL;
                goto out;
            }
        }
        d->rows++;
    }
    if (ferror(fp)) {
        snprintf(errbuf, errlen, "%s: read error: %s", path, strerror(errno));
        rc = VS_EIO;
    } else if (ncols == 0) {
        snprintf(errbuf, errlen, "%s:1: empty file: expected a header ending in 'label'", path);
        rc = VS_EINVAL;
    } else if (d->rows == 0) {
        snprintf(errbuf, errlen, "%s:%ld: no data rows after the header", path, lineno);
        rc = VS_EINVAL;
    }
out:
    if (names) {
        for (int i = 0; i < ncols; i++) {
            free(names[i]);
        }
    }
    free(names);
    free(fields);
    free(line);
    fclose(fp);
    if (rc != 0) {
        vs_anomaly_data_release(d);
    }
    return rc;
}

/* ==== Ranking metrics ==== */

/*
 * ROC-AUC as the Mann-Whitney statistic with average ranks for ties; average precision as in
 * scikit-learn (tied scores form one threshold). Both sort indices once with GSL.
 */
double vs_roc_auc(const double *score, const unsigned char *label, long n)
{
    size_t *p = malloc((size_t)n * sizeof(*p));
    if (!p) {
        return NAN;
    }
    gsl_sort_index(p, score, 1, (size_t)n);
    double pos = 0, rank_sum = 0;
    for (long i = 0; i < n;) {
        long j = i;
        while (j + 1 < n && score[p[j + 1]] == score[p[i]]) {
            j++;
        }
        double avg_rank = (double)(i + j) / 2.0 + 1.0;
        for (long k = i; k <= j; k++) {
            if (label[p[k]]) {
                pos++;
                rank_sum += avg_rank;
            }
        }
        i = j + 1;
    }
    free(p);
    double neg = (double)n - pos;
    if (pos == 0 || neg == 0) {
        return NAN;
    }
    return (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg);
}

double vs_pr_auc(const double *score, const unsigned char *label, long n)
{
    size_t *p = malloc((size_t)n * sizeof(*p));
    if (!p) {
        return NAN;
    }
    gsl_sort_index(p, score, 1, (size_t)n);
    double total_pos = 0;
    for (long i = 0; i < n; i++) {
        total_pos += label[i];
    }
    double tp = 0, seen = 0, ap = 0, prev_recall = 0;
    for (long i = n - 1; i >= 0 && total_pos > 0;) {
        long j = i;
        while (j - 1 >= 0 && score[p[j - 1]] == score[p[i]]) {
            j--;
        }
        for (long k = j; k <= i; k++) {
            tp += label[p[k]];
            seen++;
        }
        double recall = tp / total_pos;
        ap += (recall - prev_recall) * (tp / seen);
        prev_recall = recall;
        i = j - 1;
    }
    free(p);
    return total_pos > 0 ? ap : NAN;
}

/* ==== Streaming ==== */

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int vs_anomaly_run(const struct vs_anomaly_data *d, const struct vs_iforest_config *cfg,
                   int shuffle, uint64_t shuffle_seed, struct vs_anomaly_result *res,
                   double *scores, long *order, char *errbuf, size_t errlen)
{
    struct vs_iforest_config c = *cfg;
    c.dims = d->dims;
    struct vs_iforest *f = vs_iforest_new(&c, errbuf, errlen);
    if (!f) {
        return VS_ECONFIG;
    }
    long n = d->rows;
    long *ord = malloc((size_t)n * sizeof(*ord));
    double *sc = malloc((size_t)n * sizeof(*sc));
    unsigned char *lab = calloc((size_t)n + 1, 1);
    if (!ord || !sc || !lab) {
        free(ord);
        free(sc);
        free(lab);
        vs_iforest_free(f);
        snprintf(errbuf, errlen, "out of memory");
        return VS_ENOMEM;
    }
    for (long i = 0; i < n; i++) {
        ord[i] = i;
    }
    if (shuffle) {
        gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
        if (!r) {
            free(ord);
            free(sc);
            free(lab);
            vs_iforest_free(f);
            snprintf(errbuf, errlen, "out of memory");
            return VS_ENOMEM;
        }
        gsl_rng_set(r, (unsigned long)shuffle_seed);
        gsl_ran_shuffle(r, ord, (size_t)n, sizeof(*ord));
        gsl_rng_free(r);
    }
    int rc = 0;
    double t0 = now_us();
    for (long i = 0; i < n && rc == 0; i++) {
        const double *x = d->x + (size_t)ord[i] * d->dims;
        rc = vs_iforest_score(f, x, &sc[i], NULL);
        if (rc == 0) {
            rc = vs_iforest_learn(f, x);
        }
        lab[i] = d->label[ord[i]];
    }
    double elapsed = now_us() - t0;
    if (rc != 0) {
        snprintf(errbuf, errlen, "a row holds a non-finite value");
    } else {
        res->rows = n;
        res->anomalies = 0;
        for (long i = 0; i < n; i++) {
            res->anomalies += lab[i];
        }
        res->roc_auc = vs_roc_auc(sc, lab, n);
        res->pr_auc = vs_pr_auc(sc, lab, n);
        res->us_per_row = n > 0 ? elapsed / (double)n : 0.0;
        if (scores) {
            memcpy(scores, sc, (size_t)n * sizeof(*sc));
        }
        if (order) {
            memcpy(order, ord, (size_t)n * sizeof(*ord));
        }
    }
    free(ord);
    free(sc);
    free(lab);
    vs_iforest_free(f);
    return rc;
}

/* ==== The command ==== */

static const struct vs_config_key eval_keys[] = {VS_IFOREST_CONFIG_KEYS, {NULL, 0, NULL, NULL}};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: valuestream eval anomaly --csv FILE [--shuffle SEED] [--set key=value]...\n"
            "\n"
            "Streams the CSV's rows (a header, last column 'label', 1 = anomaly) through the\n"
            "streaming isolation forest, score then learn, in file order or shuffled with SEED,\n"
            "and prints {\"rows\",\"anomalies\",\"roc_auc\",\"pr_auc\",\"us_per_row\"} as JSON.\n"
            "\n");
    vs__config_print_reference(out, "keys for --set", eval_keys, 0);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno || s[0] == '-') {
        return -1;
    }
    *out = v;
    return 0;
}

int vs_eval_anomaly_main(int argc, char **argv)
{
    const char *csv = NULL;
    int shuffle = 0;
    uint64_t seed = 0;
    char err[512];
    const struct vs_config_key *tables[] = {eval_keys};
    struct vs_config *cfg = vs__config_new(tables, 1);
    if (!cfg) {
        fprintf(stderr, "eval anomaly: out of memory\n");
        return 1;
    }
    int rc = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (strcmp(a, "--csv") == 0 && val) {
            csv = val;
            i++;
        } else if (strcmp(a, "--shuffle") == 0 && val) {
            if (parse_u64(val, &seed) != 0) {
                fprintf(stderr,
                        "eval anomaly: --shuffle expects a non-negative integer seed, "
                        "got '%s'\n",
                        val);
                goto out;
            }
            shuffle = 1;
            i++;
        } else if (strcmp(a, "--set") == 0 && val) {
            size_t kl = strcspn(val, "=");
            int known = 0;
            for (const struct vs_config_key *k = eval_keys; k->key; k++) {
                known |= strlen(k->key) == kl && strncmp(k->key, val, kl) == 0;
            }
            if (!known) {
                fprintf(stderr, "eval anomaly: unknown config key '%.*s' (see --help)\n", (int)kl,
                        val);
                goto out;
            }
            if (vs__config_set_arg(cfg, val, err, sizeof(err)) != 0) {
                fprintf(stderr, "eval anomaly: %s\n", err);
                goto out;
            }
            i++;
        } else if (strcmp(a, "--csv") == 0 || strcmp(a, "--shuffle") == 0 ||
                   strcmp(a, "--set") == 0) {
            fprintf(stderr, "eval anomaly: %s needs a value\n", a);
            goto out;
        } else {
            fprintf(stderr, "eval anomaly: unknown argument '%s' (see --help)\n", a);
            goto out;
        }
    }
    if (!csv) {
        fprintf(stderr, "eval anomaly: --csv FILE is required (see --help)\n");
        goto out;
    }

    struct vs_iforest_config fc;
    vs_iforest_config_default(&fc, 1);
    int64_t v[5] = {vs_config_int(cfg, "fraud.trees"), vs_config_int(cfg, "fraud.sample.size"),
                    vs_config_int(cfg, "fraud.window"), vs_config_int(cfg, "fraud.rebuild.every"),
                    vs_config_int(cfg, "fraud.max.depth")};
    for (int k = 0; k < 5; k++) {
        if (v[k] < 0 || v[k] > (1 << 24)) {
            fprintf(stderr, "eval anomaly: config key '%s': %lld is out of range\n",
                    eval_keys[k].key, (long long)v[k]);
            goto out;
        }
    }
    fc.trees = (int)v[0];
    fc.sample_size = (int)v[1];
    fc.window = (int)v[2];
    fc.rebuild_every = (int)v[3];
    fc.max_depth = (int)v[4];
    fc.seed = (uint64_t)vs_config_int(cfg, "fraud.seed");

    struct vs_anomaly_data d;
    if (vs_anomaly_csv_load(csv, &d, err, sizeof(err)) != 0) {
        fprintf(stderr, "eval anomaly: %s\n", err);
        goto out;
    }
    struct vs_anomaly_result res;
    if (vs_anomaly_run(&d, &fc, shuffle, seed, &res, NULL, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "eval anomaly: %s\n", err);
        vs_anomaly_data_release(&d);
        goto out;
    }
    vs_anomaly_data_release(&d);
    /* An AUC is undefined (NaN) when one class is absent: JSON says null. */
    char roc[32] = "null", pr[32] = "null";
    if (isfinite(res.roc_auc)) {
        snprintf(roc, sizeof(roc), "%.4f", res.roc_auc);
    }
    if (isfinite(res.pr_auc)) {
        snprintf(pr, sizeof(pr), "%.4f", res.pr_auc);
    }
    printf("{\"rows\":%ld,\"anomalies\":%ld,\"roc_auc\":%s,\"pr_auc\":%s,\"us_per_row\":%.3f}\n",
           res.rows, res.anomalies, roc, pr, res.us_per_row);
    rc = 0;
out:
    vs__config_free(cfg);
    return rc;
}
