/*
 * bench/clv_holdout: how well BG/NBD predicts, and how fast the value operator refits.
 *
 * Part 1 is the holdout test of the BG/NBD paper (its figure of conditional expectations): fit
 * on the CDNOW sample up to 1997-09-30, predict each customer's repeat transactions in the next
 * 39 weeks (to 1998-06-30) and compare with what they did, averaged per calibration frequency
 * 0..7+. Part 2 builds the operator's population aggregate for 1M synthetic customers (two years
 * of a BG/NBD shop at day resolution) and times snapshot + refit, the work a refit does on the
 * thread pool. Prints a table and, as the last line, a JSON object also written to
 * bench/results/clv_holdout.json.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "operators/value/clv_cli.h"
#include "operators/value/clv_model.h"
#include "operators/value/population.h"

#define GROUPS 8

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static uint64_t rng = 2005;
static double urand(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((rng >> 11) + 0.5) / 9007199254740992.0;
}

static double grand(double shape) /* Marsaglia-Tsang */
{
    if (shape < 1) {
        return grand(shape + 1) * pow(urand(), 1 / shape);
    }
    double d = shape - 1.0 / 3, c = 1 / sqrt(9 * d);
    for (;;) {
        double u1 = urand(), u2 = urand();
        double n = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2), v = pow(1 + c * n, 3);
        if (v > 0 && log(urand()) < 0.5 * n * n + d - d * v + d * log(v)) {
            return d * v;
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "../shared/data/cdnow/CDNOW_sample.txt";
    size_t customers = argc > 2 ? (size_t)atol(argv[2]) : 1000000;
    char err[256];
    int32_t cal_end = vs_txlog_parse_day("1997-09-30"), hold_end = vs_txlog_parse_day("1998-06-30");
    double horizon = (hold_end - cal_end) / 7.0;

    /* ==== Part 1: holdout on CDNOW ==== */
    struct vs_clv_dataset *ds =
        vs_clv_dataset_load(path, VS_TXLOG_CDNOW_SAMPLE, cal_end, hold_end, err, sizeof err);
    if (!ds) {
        fprintf(stderr, "clv_holdout: %s\n", err);
        return 1;
    }
    struct vs_clv_fit fit;
    vs_clv_fit_init(&fit);
    if (vs_clv_dataset_fit(ds, &fit) != 0) {
        fprintf(stderr, "clv_holdout: the fit failed\n");
        return 1;
    }
    double n[GROUPS] = {0}, actual[GROUPS] = {0}, pred[GROUPS] = {0};
    double tot_actual = 0, tot_pred = 0;
    for (size_t i = 0; i < ds->n; i++) {
        const struct vs_clv_customer *c = &ds->customers[i];
        int g = c->x < GROUPS - 1 ? (int)c->x : GROUPS - 1;
        double e = vs_bgnbd_expected(&fit.bg, c->x, c->t_x, c->T, horizon);
        n[g]++;
        actual[g] += c->holdout_x;
        pred[g] += e;
        tot_actual += c->holdout_x;
        tot_pred += e;
    }
    printf("BG/NBD on %s: r=%.4f alpha=%.4f a=%.4f b=%.4f (LL %.1f)\n", path, fit.bg.r,
           fit.bg.alpha, fit.bg.a, fit.bg.b, fit.bg.loglik);
    printf("repeat transactions in the %.0f weeks after 1997-09-30, mean per customer\n", horizon);
    printf("%-6s %9s %9s %9s\n", "x_cal", "customers", "actual", "predicted");
    double mae = 0;
    char groups[1024];
    size_t off = 0;
    for (int g = 0; g < GROUPS; g++) {
        double a = n[g] ? actual[g] / n[g] : 0, p = n[g] ? pred[g] / n[g] : 0;
        mae += fabs(a - p) / GROUPS;
        printf("%-6s %9.0f %9.3f %9.3f\n", g == GROUPS - 1 ? "7+" : (char[]){'0' + g, 0}, n[g], a,
               p);
        off += snprintf(groups + off, sizeof groups - off,
                        "%s{\"x\":\"%d%s\",\"n\":%.0f,"
                        "\"actual\":%.4f,\"predicted\":%.4f}",
                        g ? "," : "", g, g == GROUPS - 1 ? "+" : "", n[g], a, p);
    }
    printf("total: actual %.0f, predicted %.1f; mean absolute error over the groups %.4f\n",
           tot_actual, tot_pred, mae);

    /* ==== Part 2: refit on 1M synthetic customers ==== */
    struct vs_population *pop = vs_population_new();
    const struct vs_bgnbd truth = {.r = 0.243, .alpha = 4.414, .a = 0.793, .b = 2.426};
    const int32_t today = 20000, span = 730;
    for (size_t i = 0; i < customers; i++) {
        double lambda = grand(truth.r) / truth.alpha / 7; /* per day */
        double ga = grand(truth.a), gb = grand(truth.b), p = ga / (ga + gb);
        int32_t first = today - (int32_t)(urand() * span);
        double t = first;
        int32_t last = first;
        uint32_t x = 0, paid = 0;
        double spend = 0, nu = grand(6.25) / 15.44 * grand(3.74);
        for (;;) {
            t += -log(urand()) / lambda;
            if (t >= today + 1) {
                break;
            }
            if ((int32_t)t == last) {
                continue; /* the same day: the same transaction */
            }
            last = (int32_t)t;
            x++;
            paid++;
            spend += grand(6.25) / (nu > 0 ? nu : 1);
            if (urand() < p) {
                break;
            }
        }
        vs_population_bg_add(pop, x, first, last, 1);
        if (paid > 0 && spend > 0) {
            vs_population_gg_add(pop, paid, spend / paid, 1);
        }
    }
    double times[5], snap_ms[5];
    struct vs_clv_fit big;
    size_t rows = 0, gg_rows = 0;
    for (int k = 0; k < 5; k++) {
        double t0 = now_ms();
        struct vs_bgnbd_row *bg;
        struct vs_gg_row *gg;
        size_t nbg, ngg;
        vs_population_snapshot(pop, today + 1.0, 1, &bg, &nbg, &gg, &ngg);
        double t1 = now_ms();
        vs_clv_fit_init(&big);
        big.bg = vs_bgnbd_prior;
        big.gg = vs_gg_prior;
        vs_clv_refit(bg, nbg, gg, ngg, &big);
        double t2 = now_ms();
        times[k] = t2 - t0;
        snap_ms[k] = t1 - t0;
        rows = nbg;
        gg_rows = ngg;
        free(bg);
        free(gg);
    }
    qsort(times, 5, sizeof *times, cmp_double);
    qsort(snap_ms, 5, sizeof *snap_ms, cmp_double);
    printf("refit on %zu synthetic customers: %zu population cells (%zu BG/NBD, %zu "
           "Gamma-Gamma), %zu rows fitted; median %.1f ms (snapshot %.1f ms), BG/NBD %d "
           "iterations%s, Gamma-Gamma %d: r=%.4f alpha=%.4f a=%.4f b=%.4f\n",
           customers, vs_population_cells(pop), rows, gg_rows, big.bg_rows, times[2], snap_ms[2],
           big.bg_iters, big.bg_rc ? " (failed)" : "", big.gg_iters, big.bg.r, big.bg.alpha,
           big.bg.a, big.bg.b);

    char json[4096];
    snprintf(json, sizeof json,
             "{\"bench\":\"clv_holdout\",\"customers\":%zu,\"holdout_weeks\":%.0f,"
             "\"bgnbd\":{\"r\":%.4f,\"alpha\":%.4f,\"a\":%.4f,\"b\":%.4f},"
             "\"groups\":[%s],\"actual_total\":%.0f,\"predicted_total\":%.1f,\"mae\":%.4f,"
             "\"refit_customers\":%zu,\"refit_cells\":%zu,\"refit_rows\":%zu,"
             "\"refit_median_ms\":%.1f,\"refit_snapshot_median_ms\":%.1f,\"refit_ok\":%s}",
             ds->n, horizon, fit.bg.r, fit.bg.alpha, fit.bg.a, fit.bg.b, groups, tot_actual,
             tot_pred, mae, customers, vs_population_cells(pop), big.bg_rows, times[2], snap_ms[2],
             big.bg_rc == 0 && big.gg_rc == 0 ? "true" : "false");
    printf("%s\n", json);
    mkdir("bench/results", 0755);
    FILE *out = fopen("bench/results/clv_holdout.json", "w");
    if (out) {
        fprintf(out, "%s\n", json);
        fclose(out);
    }
    vs_population_free(pop);
    vs_clv_dataset_free(ds);
    return 0;
}
