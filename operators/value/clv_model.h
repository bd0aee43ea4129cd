/*
 * Customer-lifetime models: BG/NBD for purchase counts and dropout, Gamma-Gamma for spend.
 *
 * BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way") describes a customer
 * by three sufficient statistics: x, the number of repeat transactions; t_x, the time of the
 * last one; and T, the customer's age, all measured from the first purchase. While alive, a
 * customer buys at a Poisson rate drawn from Gamma(r, alpha); after each repeat transaction the
 * customer drops out with a probability drawn from Beta(a, b). Gamma-Gamma (Fader, Hardie & Lee
 * 2005, "RFM and CLV") describes the mean spend m_x of a customer's x repeat transactions.
 *
 * This module is pure numerics with no engine dependency: the `valuestream clv fit` command, the
 * value operator's periodic refit, the churn operator's timer solver, the tests and the benches
 * all go through it. Time is in weeks throughout, as in the papers. Fits are maximum likelihood
 * on log-parameters with GSL's multimin (BFGS with analytic gradients, Nelder-Mead as fallback)
 * over grouped rows: customers with the same statistics share one weighted row, which is what
 * makes a refit on a million customers cheap.
 */
#ifndef VS_OPERATORS_VALUE_CLV_MODEL_H
#define VS_OPERATORS_VALUE_CLV_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* BG/NBD parameters. loglik is the total log-likelihood of the data they were fitted on. */
struct vs_bgnbd {
    double r, alpha, a, b;
    double loglik;
};

/* Gamma-Gamma parameters (the papers' p, q, gamma). */
struct vs_gg {
    double p, q, gamma;
    double loglik;
};

/*
 * Priors: the CDNOW estimates of the papers, used until enough customers exist for a fit
 * (value.min.customers). They describe a shop where most customers buy rarely and a third drop
 * out after any purchase; their spend scale is that of CDNOW's dollars.
 */
extern const struct vs_bgnbd vs_bgnbd_prior;
extern const struct vs_gg vs_gg_prior;

/* One group of customers with identical BG/NBD statistics (weeks); weight = how many. */
struct vs_bgnbd_row {
    double x, t_x, T;
    double weight;
};

/*
 * One group of repeat customers for Gamma-Gamma: x repeat transactions with positive spend, m
 * the group's mean spend per transaction (used in log(gamma + x m)), log_m the mean of log m_x
 * over the group (exact for the term linear in log m_x). For a single customer log_m = log(m).
 */
struct vs_gg_row {
    double x, m, log_m;
    double weight;
};

/* ==== Fits ==== */

/*
 * Fit BG/NBD to n grouped rows. *params is the starting point on entry (use vs_bgnbd_prior or
 * the previous fit) and the estimate on success. Returns 0, VS_EINVAL for bad rows (negative or
 * non-finite statistics, t_x > T) or no data (no customer with x > 0), VS_ENOCONV when neither
 * optimizer converged or the maximum lies on the edge of the parameter space (some parameter
 * beyond e^+-15: the data do not identify the model), in which case *params is left unchanged.
 * iterations (may be NULL) receives the iteration count.
 */
int vs_bgnbd_fit(const struct vs_bgnbd_row *rows, size_t n, struct vs_bgnbd *params,
                 int *iterations);

/* Total BG/NBD log-likelihood of the rows at params; NaN for invalid params. */
double vs_bgnbd_loglik(const struct vs_bgnbd_row *rows, size_t n, const struct vs_bgnbd *params);

/* The same for Gamma-Gamma; rows with x <= 0 or m <= 0 are rejected with VS_EINVAL. */
int vs_gg_fit(const struct vs_gg_row *rows, size_t n, struct vs_gg *params, int *iterations);
double vs_gg_loglik(const struct vs_gg_row *rows, size_t n, const struct vs_gg *params);

/*
 * Merge rows onto a grid so that a population of any size becomes a bounded number of rows:
 * t_x and T are snapped to `levels` steps over [0, max T] and x is kept exactly up to x_exact,
 * then in groups of equal log width. Each merged row carries the weighted mean of its members,
 * so the fit sees the same population with time blurred by at most one grid step. Rows are
 * merged in place; returns the new count. Order of the result is deterministic.
 */
size_t vs_bgnbd_rows_compact(struct vs_bgnbd_row *rows, size_t n, int levels, int x_exact);

/* ==== Predictions ==== */

/*
 * P(alive | x, t_x, T): the probability that a customer with these statistics has not dropped
 * out. BG/NBD lets a customer drop out only after a repeat purchase, so it is 1 for x = 0: the
 * churn operator treats one-time buyers by a separate rule.
 */
double vs_bgnbd_p_alive(const struct vs_bgnbd *m, double x, double t_x, double T);

/*
 * E[X(t) | x, t_x, T]: expected transactions in the next t weeks (BG/NBD eq. 10), with the
 * Gauss hypergeometric function from vs_hyp2f1().
 */
double vs_bgnbd_expected(const struct vs_bgnbd *m, double x, double t_x, double T, double t);

/* E[X(t)] for a customer picked at random at age 0 (BG/NBD eq. 7). */
double vs_bgnbd_expected_new(const struct vs_bgnbd *m, double t);

/*
 * The age T (weeks since the first purchase) at which P(alive) falls to `threshold` if the
 * customer buys nothing more: P(alive) decreases in T for x > 0, and the equation has the closed
 * form T = (alpha + t_x) * K^(1/(r+x)) - alpha with K = (1/threshold - 1)(b + x - 1)/a. Returns
 * t_x when P(alive) is already below at T = t_x, and INFINITY for x = 0 or a threshold outside
 * (0, 1).
 */
double vs_bgnbd_age_at_p_alive(const struct vs_bgnbd *m, double x, double t_x, double threshold);

/*
 * Gauss hypergeometric 2F1(a, b; c; z) for 0 <= z < 1 and c > 0. GSL's gsl_sf_hyperg_2F1 is
 * tried first; where it reports an error or loses accuracy (z near 1 with c - a - b < 0, the
 * usual case here), a direct series on Euler's transform 2F1 = (1-z)^(c-a-b) 2F1(c-a, c-b; c; z)
 * takes over, which converges fast exactly there.
 */
double vs_hyp2f1(double a, double b, double c, double z);

/* The series alone, exposed for tests: NAN when it does not converge within max_terms. */
double vs_hyp2f1_series(double a, double b, double c, double z, int max_terms);

/*
 * Gamma-Gamma: expected spend per transaction of a customer with x repeat transactions of mean
 * m_x (x = 0: the population mean p gamma / (q - 1)). Requires q > 1; returns NAN otherwise.
 */
double vs_gg_expected_spend(const struct vs_gg *m, double x, double m_x);

/*
 * CLV over horizon_weeks: the sum over months k of (1 + monthly_rate)^-k times the expected
 * spend in month k, i.e. spend * (E[X(end_k)] - E[X(start_k)]). A month is 30.4375 days; the
 * last one may be partial.
 */
double vs_clv(const struct vs_bgnbd *bg, double x, double t_x, double T, double spend,
              double horizon_weeks, double monthly_rate);

/* vs_clv() and, in *expected (if not NULL), E[X(horizon_weeks)] from the same evaluation. */
double vs_clv_expected(const struct vs_bgnbd *bg, double x, double t_x, double T, double spend,
                       double horizon_weeks, double monthly_rate, double *expected);

/* ==== The refit: both models at once ==== */

/* The result of a refit. On entry bg and gg hold the starting point (the current parameters). */
struct vs_clv_fit {
    struct vs_bgnbd bg;
    struct vs_gg gg;
    int bg_rc, gg_rc;            /* 0, VS_EINVAL (no data), VS_ENOCONV (kept the previous) */
    int bg_iters, gg_iters;      /* optimizer iterations */
    size_t bg_rows, gg_rows;     /* rows after grouping, as fitted */
    double bg_weight, gg_weight; /* customers in each fit */
};

/*
 * Start a vs_clv_fit from a neutral point (every parameter 1), far from any particular shop,
 * for one-off fits such as `valuestream clv fit`; the operator starts each refit from its
 * current parameters instead.
 */
void vs_clv_fit_init(struct vs_clv_fit *fit);

/* Rows above this are merged by vs_bgnbd_rows_compact() before a fit, on a grid of
 * VS_CLV_COMPACT_LEVELS steps over the oldest customer's age (two years: 1.6 weeks a step) with
 * x exact up to 32. */
#define VS_CLV_COMPACT_ROWS 4096
#define VS_CLV_COMPACT_LEVELS 64

/*
 * Fit BG/NBD on bg_rows and Gamma-Gamma on gg_rows, first merging identical BG/NBD rows and,
 * beyond VS_CLV_COMPACT_ROWS, snapping them to a grid. bg_rows is reordered and merged in place
 * and gg_rows sorted (both are the caller's scratch), so the result does not depend on the
 * order of the rows. A model whose fit fails keeps its starting parameters and records why
 * in bg_rc / gg_rc; the return value is the first of those errors, or 0.
 */
int vs_clv_refit(struct vs_bgnbd_row *bg_rows, size_t nbg, struct vs_gg_row *gg_rows, size_t ngg,
                 struct vs_clv_fit *fit);

#endif
