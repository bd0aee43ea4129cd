/*
 * `valuestream clv fit` and the transaction-log reader behind it.
 *
 * The reader turns a log of purchases into the per-customer statistics BG/NBD and Gamma-Gamma
 * need, the way the CDNOW papers do: purchases of one customer on one calendar day are one
 * transaction (their amounts add up), x counts the transaction days after the first, t_x and T
 * are measured in weeks from the first purchase to the last one and to the calibration end.
 * Bad rows are counted and skipped, never fatal: the same command is meant for any log in these
 * formats. The fit itself is vs_clv_refit(), shared with the value operator.
 */
#include "clv_cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valuestream/error.h>

#include "clv_model.h"

int vs_txlog_format_parse(const char *name)
{
    if (strcmp(name, "cdnow-sample") == 0) {
        return VS_TXLOG_CDNOW_SAMPLE;
    }
    if (strcmp(name, "cdnow-master") == 0) {
        return VS_TXLOG_CDNOW_MASTER;
    }
    if (strcmp(name, "csv") == 0) {
        return VS_TXLOG_CSV;
    }
    return -1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int32_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int32_t vs_txlog_parse_day(const char *s)
{
    int y, m, d;
    const char *end;
    if (strlen(s) >= 10 && s[4] == '-' && s[7] == '-') {
        y = digits(s, 4);
        m = digits(s + 5, 2);
        d = digits(s + 8, 2);
        end = s + 10;
    } else if (strlen(s) >= 8) {
        y = digits(s, 4);
        m = digits(s + 4, 2);
        d = digits(s + 6, 2);
        end = s + 8;
    } else {
        return -1;
    }
    if (*end != '\0' && *end != 'T' && *end != ' ') {
        return -1;
    }
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1900 || y > 9999 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1]) {
        return -1;
    }
    if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        return -1;
    }
    return days_from_civil(y, m, d);
}

/* ==== Reading ==== */

struct txn {
    size_t id; /* offset of the id in the string pool */
    int32_t day;
    double amount;
};

struct reader {
    struct txn *txns;
    size_t n, cap;
    char *pool;
    size_t pool_len, pool_cap;
};

static int reader_add(struct reader *rd, const char *id, size_t id_len, int32_t day, double amt)
{
    if (id_len > 31) {
        id_len = 31;
    }
    if (rd->n == rd->cap) {
        size_t cap = rd->cap ? rd->cap * 2 : 4096;
        struct txn *t = realloc(rd->txns, cap * sizeof *t);
        if (!t) {
            return VS_ENOMEM;
        }
        rd->txns = t;
        rd->cap = cap;
    }
    if (rd->pool_len + id_len + 1 > rd->pool_cap) {
        size_t cap = rd->pool_cap ? rd->pool_cap * 2 : 65536;
        while (cap < rd->pool_len + id_len + 1) {
            cap *= 2;
        }
        char *p = realloc(rd->pool, cap);
        if (!p) {
            return VS_ENOMEM;
        }
        rd->pool = p;
        rd->pool_cap = cap;
    }
    memcpy(rd->pool + rd->pool_len, id, id_len);
    rd->pool[rd->pool_len + id_len] = '\0';
    rd->txns[rd->n++] = (struct txn){.id = rd->pool_len, .day = day, .amount = amt};
    rd->pool_len += id_len + 1;
    return 0;
}

/* Split line into at most max fields on sep (or on runs of blanks when sep is 0), in place. */
static int split(char *line, char sep, char **f, int max)
{
    int n = 0;
    char *p = line;
    while (*p && n < max) {
        if (sep == 0) {
            while (*p == ' ' || *p == '\t') {
                p++;
            }
            if (!*p) {
                break;
            }
            f[n++] = p;
            while (*p && *p != ' ' && *p != '\t') {
                p++;
            }
            if (*p) {
                *p++ = '\0';
            }
        } else {
            f[n++] = p;
            char *q = strchr(p, sep);
            if (!q) {
                break;
            }
            *q = '\0';
            p = q + 1;
        }
    }
    if (sep != 0 && *p == '\0' && n < max && p > line && p[-1] == '\0') {
        f[n++] = p; /* a trailing empty field, e.g. "id,date," */
    }
    return n;
}

static int parse_amount(const char *s, double *out)
{
    while (*s == ' ') {
        s++;
    }
    if (*s == '\0') {
        *out = 0; /* a missing amount: a transaction without spend */
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (*end == ' ') {
        end++;
    }
    if (errno || *end != '\0' || !isfinite(v)) {
        return -1;
    }
    *out = v;
    return 0;
}

/*
 * Parse one data line; returns 1 for a transaction, 0 for a line to skip silently (blank), -1
 * for an unparsable one.
 */
static int parse_line(char *line, enum vs_txlog_format fmt, const char **id, size_t *id_len,
                      int32_t *day, double *amount)
{
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ')) {
        line[--len] = '\0';
    }
    if (len == 0) {
        return 0;
    }
    char *f[6];
    int nf;
    const char *sid, *sdate, *samt;
    switch (fmt) {
    case VS_TXLOG_CDNOW_SAMPLE:
        nf = split(line, 0, f, 6);
        if (nf != 5) {
            return -1;
        }
        sid = f[1], sdate = f[2], samt = f[4];
        break;
    case VS_TXLOG_CDNOW_MASTER:
        nf = split(line, 0, f, 5);
        if (nf != 4) {
            return -1;
        }
        sid = f[0], sdate = f[1], samt = f[3];
        break;
    default:
        nf = split(line, ',', f, 4);
        if (nf != 3) {
            return -1;
        }
        sid = f[0], sdate = f[1], samt = f[2];
        break;
    }
    while (*sid == ' ') {
        sid++;
    }
    if (*sid == '\0') {
        return -1;
    }
    while (*sdate == ' ') {
        sdate++;
    }
    *day = vs_txlog_parse_day(sdate);
    if (*day < 0 || parse_amount(samt, amount) != 0) {
        return -1;
    }
    *id = sid;
    *id_len = strlen(sid);
    return 1;
}

static const char *sort_pool;

static int txn_cmp(const void *pa, const void *pb)
{
    const struct txn *a = pa, *b = pb;
    int c = strcmp(sort_pool + a->id, sort_pool + b->id);
    if (c) {
        return c;
    }
    return (a->day > b->day) - (a->day < b->day);
}

/* Turn one customer's transactions (sorted by day) into statistics; 0 if first seen late. */
static int summarise(const struct txn *t, size_t n, const char *id, int32_t cal_end,
                     int32_t holdout_end, struct vs_clv_customer *c, size_t *zero_value,
                     size_t *after_end)
{
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", id);
    int have_first = 0;
    int32_t last = 0, cur = INT32_MIN;
    double cur_amt = 0, repeat_spend = 0;
    int cur_is_first = 0;
    for (size_t i = 0; i <= n; i++) {
        /* Close the current day when the next transaction is on another day (or at the end). */
        if (cur != INT32_MIN && (i == n || t[i].day != cur)) {
            if (cur <= cal_end) {
                c->total_spend += cur_amt > 0 ? cur_amt : 0;
                if (!cur_is_first) {
                    c->x += 1;
                    last = cur;
                    if (cur_amt > 0) {
                        c->paid_repeats++;
                        repeat_spend += cur_amt;
                    }
                }
            } else if (cur <= holdout_end) {
                c->holdout_x += 1;
            }
        }
        if (i == n) {
            break;
        }
        if (t[i].amount <= 0) {
            (*zero_value)++;
        }
        if (t[i].day > cal_end) {
            (*after_end)++;
        }
        if (t[i].day != cur) {
            cur = t[i].day;
            cur_amt = 0;
            cur_is_first = !have_first;
            if (!have_first) {
                have_first = 1;
                c->first_day = cur;
                last = cur;
            }
        }
        cur_amt += t[i].amount;
    }
    if (c->first_day > cal_end) {
        return 0;
    }
    c->t_x = (last - c->first_day) / 7.0;
    c->T = (cal_end - c->first_day) / 7.0;
    c->m_x = c->paid_repeats > 0 ? repeat_spend / c->paid_repeats : 0;
    return 1;
}

struct vs_clv_dataset *vs_clv_dataset_load(const char *path, enum vs_txlog_format format,
                                           int32_t calibration_end, int32_t holdout_end,
                                           char *errbuf, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(errbuf, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct vs_clv_dataset *ds = calloc(1, sizeof *ds);
    struct reader rd = {0};
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    if (!ds) {
        rc = VS_ENOMEM;
    }
    while (rc == 0 && getline(&line, &cap, fp) != -1) {
        lineno++;
        const char *id;
        size_t id_len;
        int32_t day;
        double amount;
        int pr = parse_line(line, format, &id, &id_len, &day, &amount);
        if (pr < 0 && lineno == 1 && format != VS_TXLOG_CDNOW_SAMPLE) {
            continue; /* the header */
        }
        if (pr == 0) {
            continue;
        }
        ds->rows++;
        if (pr < 0) {
            ds->bad_rows++;
            continue;
        }
        rc = reader_add(&rd, id, id_len, day, amount);
    }
    free(line);
    if (ferror(fp) && rc == 0) {
        snprintf(errbuf, errlen, "cannot read %s: %s", path, strerror(errno));
        rc = VS_EIO;
    }
    fclose(fp);
    if (rc == 0 && rd.n == 0) {
        snprintf(errbuf, errlen, "%s: no usable transaction (%zu rows, %zu unparsable)", path,
                 ds->rows, ds->bad_rows);
        rc = VS_EINVAL;
    }
    if (rc == 0) {
        sort_pool = rd.pool;
        qsort(rd.txns, rd.n, sizeof *rd.txns, txn_cmp);
        size_t ncust = 0;
        for (size_t i = 0; i < rd.n; i++) {
            ncust += i == 0 || strcmp(rd.pool + rd.txns[i].id, rd.pool + rd.txns[i - 1].id);
        }
        ds->customers = calloc(ncust, sizeof *ds->customers);
        if (!ds->customers) {
            rc = VS_ENOMEM;
        }
        for (size_t i = 0; rc == 0 && i < rd.n;) {
            size_t j = i + 1;
            const char *id = rd.pool + rd.txns[i].id;
            while (j < rd.n && strcmp(id, rd.pool + rd.txns[j].id) == 0) {
                j++;
            }
            struct vs_clv_customer *c = &ds->customers[ds->n];
            if (summarise(rd.txns + i, j - i, id, calibration_end, holdout_end, c, &ds->zero_value,
                          &ds->after_end)) {
                ds->n++;
                ds->repeaters += c->x > 0;
                ds->gg_customers += c->paid_repeats > 0;
            } else {
                ds->late_customers++;
            }
            i = j;
        }
        if (rc == 0 && ds->n == 0) {
            snprintf(errbuf, errlen,
                     "%s: no customer's first purchase is on or before the "
                     "calibration end",
                     path);
            rc = VS_EINVAL;
        }
        if (rc == VS_ENOMEM) {
            snprintf(errbuf, errlen, "out of memory");
        }
    } else if (rc == VS_ENOMEM) {
        snprintf(errbuf, errlen, "out of memory");
    }
    free(rd.txns);
    free(rd.pool);
    if (rc != 0) {
        vs_clv_dataset_free(ds);
        return NULL;
    }
    ds->calibration_end = calibration_end;
    return ds;
}

void vs_clv_dataset_free(struct vs_clv_dataset *ds)
{
    if (ds) {
        free(ds->customers);
        free(ds);
    }
}

int vs_clv_dataset_fit(const struct vs_clv_dataset *ds, struct vs_clv_fit *fit)
{
    struct vs_bgnbd_row *bg = malloc((ds->n ? ds->n : 1) * sizeof *bg);
    struct vs_gg_row *gg = malloc((ds->gg_customers ? ds->gg_customers : 1) * sizeof *gg);
    if (!bg || !gg) {
        free(bg);
        free(gg);
        return VS_ENOMEM;
    }
    size_t ngg = 0;
    for (size_t i = 0; i < ds->n; i++) {
        const struct vs_clv_customer *c = &ds->customers[i];
        bg[i] = (struct vs_bgnbd_row){.x = c->x, .t_x = c->t_x, .T = c->T, .weight = 1};
        if (c->paid_repeats > 0) {
            gg[ngg++] = (struct vs_gg_row){
                .x = c->paid_repeats, .m = c->m_x, .log_m = log(c->m_x), .weight = 1};
        }
    }
    int rc = vs_clv_refit(bg, ds->n, gg, ngg, fit);
    free(bg);
    free(gg);
    return rc;
}

/* ==== The command ==== */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: valuestream clv fit --transactions FILE --format FORMAT "
            "--calibration-end YYYY-MM-DD\n"
            "\n"
            "Fit BG/NBD and Gamma-Gamma by maximum likelihood on a transaction log, through the\n"
            "code the value operator's refit uses. Purchases of a customer on one calendar day\n"
            "are one transaction; time is in weeks; T runs from a customer's first purchase to\n"
            "the calibration end (inclusive). Customers without a positive repeat spend are\n"
            "left out of the Gamma-Gamma fit.\n"
            "\n"
            "  --transactions FILE      the transaction log\n"
            "  --format FORMAT          cdnow-sample: 'master_id sample_id YYYYMMDD cds dollars'\n"
            "                           cdnow-master: header, then 'customer_id YYYYMMDD cds "
            "dollars'\n"
            "                           csv: header, then 'customer_id,date,amount'\n"
            "  --calibration-end DATE   last day of the calibration period, YYYY-MM-DD\n"
            "  -h, --help               this text\n"
            "\n"
            "Unparsable rows and purchases worth $0 or less are counted and reported, not fatal.\n"
            "The last line of stdout is one JSON object:\n"
            "  {\"customers\":N,\"repeaters\":N,\"bgnbd\":{\"r\":..,\"alpha\":..,\"a\":..,\"b\":..,"
            "\"loglik\":..},\"gamma_gamma\":{\"p\":..,\"q\":..,\"gamma\":..}}\n"
            "A model that does not converge is printed as null and the exit code is 2.\n");
}

int vs_clv_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (strcmp(argv[1], "fit") != 0) {
        fprintf(stderr, "valuestream clv: unknown subcommand '%s' (expected: fit)\n", argv[1]);
        return 1;
    }
    static const struct option opts[] = {
        {"transactions", required_argument, NULL, 't'},
        {"format", required_argument, NULL, 'f'},
        {"calibration-end", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL, *format = NULL, *cal = NULL;
    optind = 1;
    opterr = 0;
    int sub_argc = argc - 1;
    char **sub_argv = argv + 1;
    for (;;) {
        int c = getopt_long(sub_argc, sub_argv, "h", opts, NULL);
        if (c == -1) {
            break;
        }
        switch (c) {
        case 't':
            path = optarg;
            break;
        case 'f':
            format = optarg;
            break;
        case 'c':
            cal = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "valuestream clv fit: bad option '%s' (see --help)\n",
                    sub_argv[optind - 1]);
            return 1;
        }
    }
    if (optind < sub_argc) {
        fprintf(stderr, "valuestream clv fit: unexpected argument '%s'\n", sub_argv[optind]);
        return 1;
    }
    if (!path || !format || !cal) {
        fprintf(stderr, "valuestream clv fit: --transactions, --format and --calibration-end "
                        "are required (see --help)\n");
        return 1;
    }
    int fmt = vs_txlog_format_parse(format);
    if (fmt < 0) {
        fprintf(stderr,
                "valuestream clv fit: --format '%s': expected cdnow-sample, "
                "cdnow-master or csv\n",
                format);
        return 1;
    }
    int32_t cal_end = vs_txlog_parse_day(cal);
    if (cal_end < 0 || strlen(cal) != 10) {
        fprintf(stderr, "valuestream clv fit: --calibration-end '%s': expected YYYY-MM-DD\n", cal);
        return 1;
    }
    char err[512];
    struct vs_clv_dataset *ds = vs_clv_dataset_load(path, fmt, cal_end, INT32_MAX, err, sizeof err);
    if (!ds) {
        fprintf(stderr, "valuestream clv fit: %s\n", err);
        return 1;
    }
    printf("rows %zu, unparsable %zu, zero-value purchases %zu, after calibration end %zu, "
           "customers first seen after it %zu\n",
           ds->rows, ds->bad_rows, ds->zero_value, ds->after_end, ds->late_customers);
    if (ds->bad_rows || ds->zero_value) {
        fprintf(stderr,
                "valuestream clv fit: skipped %zu unparsable rows; %zu purchases worth "
                "$0 or less count as transactions without spend\n",
                ds->bad_rows, ds->zero_value);
    }
    struct vs_clv_fit fit;
    vs_clv_fit_init(&fit);
    vs_clv_dataset_fit(ds, &fit);
    printf("bgnbd: %zu rows, %d iterations%s; gamma-gamma: %zu customers, %d iterations%s\n",
           fit.bg_rows, fit.bg_iters, fit.bg_rc ? " (failed)" : "", ds->gg_customers, fit.gg_iters,
           fit.gg_rc ? " (failed)" : "");
    if (fit.bg_rc) {
        fprintf(stderr, "valuestream clv fit: BG/NBD: %s\n",
                fit.bg_rc == VS_ENOCONV ? "did not converge" : "no data");
    }
    if (fit.gg_rc) {
        fprintf(stderr, "valuestream clv fit: Gamma-Gamma: %s\n",
                fit.gg_rc == VS_ENOCONV ? "did not converge"
                                        : "no repeat customer with a positive spend");
    }
    char bg[256], gg[256];
    if (fit.bg_rc == 0) {
        snprintf(bg, sizeof bg, "{\"r\":%.6g,\"alpha\":%.6g,\"a\":%.6g,\"b\":%.6g,\"loglik\":%.8g}",
                 fit.bg.r, fit.bg.alpha, fit.bg.a, fit.bg.b, fit.bg.loglik);
    } else {
        snprintf(bg, sizeof bg, "null");
    }
    if (fit.gg_rc == 0) {
        snprintf(gg, sizeof gg, "{\"p\":%.6g,\"q\":%.6g,\"gamma\":%.6g}", fit.gg.p, fit.gg.q,
                 fit.gg.gamma);
    } else {
        snprintf(gg, sizeof gg, "null");
    }
    printf("{\"customers\":%zu,\"repeaters\":%zu,\"bgnbd\":%s,\"gamma_gamma\":%s}\n", ds->n,
           ds->repeaters, bg, gg);
    int bad = fit.bg_rc || fit.gg_rc;
    vs_clv_dataset_free(ds);
    return bad ? 2 : 0;
}
