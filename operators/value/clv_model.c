/*
 * BG/NBD and Gamma-Gamma: likelihoods, maximum-likelihood fits and predictions.
 *
 * The likelihoods are written in log space throughout (lgamma, digamma, log-sum-exp) so that
 * customers with many transactions or long ages cannot overflow. Parameters are optimised as
 * logarithms, which keeps them positive without constraints; the objective is the negative mean
 * log-likelihood so that the optimizers' tolerances mean the same thing for 2,000 customers and
 * for a million. See clv_model.h for the models themselves.
 */
#include "clv_model.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_multimin.h>
#include <gsl/gsl_sf_gamma.h>
#include <gsl/gsl_sf_hyperg.h>
#include <gsl/gsl_sf_psi.h>
#include <gsl/gsl_vector.h>

#include <valuestream/error.h>

const struct vs_bgnbd vs_bgnbd_prior = {
    .r = 0.243, .alpha = 4.414, .a = 0.793, .b = 2.426, .loglik = NAN};
const struct vs_gg vs_gg_prior = {.p = 6.25, .q = 3.74, .gamma = 15.44, .loglik = NAN};

#define DAYS_PER_MONTH 30.4375

/*
 * GSL's default error handler aborts the process. Every GSL call here uses the _e variants or
 * checks its status, so errors are handled where they happen; the handler is switched off once.
 */
static void gsl_quiet(void)
{
    static int done;
    if (!done) {
        gsl_set_error_handler_off();
        done = 1;
    }
}

/* ==== BG/NBD likelihood ==== */

static int bgnbd_valid(const struct vs_bgnbd *m)
{
    return isfinite(m->r) && isfinite(m->alpha) && isfinite(m->a) && isfinite(m->b) && m->r > 0 &&
           m->alpha > 0 && m->a > 0 && m->b > 0;
}

/*
 * Mean log-likelihood and, when grad is not NULL, its gradient with respect to the logs of
 * (r, alpha, a, b). The terms that depend on x only (the lgamma ratios) are computed once per
 * run of equal x, which is why the fit sorts rows by x.
 */
static double bgnbd_mean_ll(const struct vs_bgnbd_row *rows, size_t n, double wsum, double r,
                            double alpha, double a, double b, double grad[4])
{
    double ll = 0;
    double g_r = 0, g_al = 0, g_a = 0, g_b = 0;
    double lg_r = lgamma(r), lg_b = lgamma(b), lg_ab = lgamma(a + b);
    double ps_r = 0, ps_b = 0, ps_ab = 0;
    double log_alpha = log(alpha), log_a = log(a);
    if (grad) {
        ps_r = gsl_sf_psi(r);
        ps_b = gsl_sf_psi(b);
        ps_ab = gsl_sf_psi(a + b);
    }
    double cur_x = -1, ax = 0, d_r_x = 0, d_a_x = 0, d_b_x = 0, log_bx1 = 0;
    for (size_t i = 0; i < n; i++) {
        const struct vs_bgnbd_row *row = &rows[i];
        double x = row->x, w = row->weight;
        if (x != cur_x) {
            cur_x = x;
            ax = lgamma(r + x) - lg_r + r * log_alpha + lg_ab + lgamma(b + x) - lg_b -
                 lgamma(a + b + x);
            if (grad) {
                d_r_x = gsl_sf_psi(r + x) - ps_r + log_alpha;
                d_a_x = ps_ab - gsl_sf_psi(a + b + x);
                d_b_x = ps_ab + gsl_sf_psi(b + x) - ps_b - gsl_sf_psi(a + b + x);
            }
            log_bx1 = x > 0 ? log(b + x - 1) : 0;
        }
        double lT = log(alpha + row->T);
        double l3 = -(r + x) * lT;
        double l4 = -INFINITY, ltx = 0;
        if (x > 0) {
            ltx = log(alpha + row->t_x);
            l4 = log_a - log_bx1 - (r + x) * ltx;
        }
        /* log(e^l3 + e^l4) and the two shares s3 + s4 = 1, with one exp and one log1p. */
        double l34, s3 = 1, s4 = 0;
        if (x > 0) {
            double d = l4 - l3, e = exp(-fabs(d));
            l34 = (d > 0 ? l4 : l3) + log1p(e);
            s4 = d > 0 ? 1 / (1 + e) : e / (1 + e);
            s3 = 1 - s4;
        } else {
            l34 = l3;
        }
        ll += w * (ax + l34);
        if (grad) {
            g_r += w * (d_r_x - s3 * lT - s4 * ltx);
            g_al += w * (r / alpha -
                         (r + x) * (s3 / (alpha + row->T) + (x > 0 ? s4 / (alpha + row->t_x) : 0)));
            g_a += w * (d_a_x + s4 / a);
            g_b += w * (d_b_x - (x > 0 ? s4 / (b + x - 1) : 0));
        }
    }
    if (grad) {
        grad[0] = g_r * r / wsum;
        grad[1] = g_al * alpha / wsum;
        grad[2] = g_a * a / wsum;
        grad[3] = g_b * b / wsum;
    }
    return ll / wsum;
}

double vs_bgnbd_loglik(const struct vs_bgnbd_row *rows, size_t n, const struct vs_bgnbd *params)
{
    if (!bgnbd_valid(params)) {
        return NAN;
    }
    double wsum = 0;
    for (size_t i = 0; i < n; i++) {
        wsum += rows[i].weight;
    }
    if (wsum <= 0) {
        return NAN;
    }
    return wsum *
           bgnbd_mean_ll(rows, n, wsum, params->r, params->alpha, params->a, params->b, NULL);
}

/* ==== Gamma-Gamma likelihood ==== */

static int gg_valid(const struct vs_gg *m)
{
    return isfinite(m->p) && isfinite(m->q) && isfinite(m->gamma) && m->p > 0 && m->q > 0 &&
           m->gamma > 0;
}

static double gg_mean_ll(const struct vs_gg_row *rows, size_t n, double wsum, double p, double q,
                         double g, double grad[3])
{
    double ll = 0, g_p = 0, g_q = 0, g_g = 0;
    double lg_q = lgamma(q), log_g = log(g), ps_q = grad ? gsl_sf_psi(q) : 0;
    /* The special functions depend on x only: computed once per run of equal x (callers pass
     * rows sorted by x, as vs_clv_refit() does; unsorted rows are correct, only slower). */
    double cur_x = -1, lx = 0, lg_x = 0, ps_pxq = 0, ps_px = 0;
    for (size_t i = 0; i < n; i++) {
        const struct vs_gg_row *row = &rows[i];
        double x = row->x, w = row->weight, px = p * x;
        if (x != cur_x) {
            cur_x = x;
            lx = log(x);
            lg_x = lgamma(px + q) - lgamma(px);
            if (grad) {
                ps_pxq = gsl_sf_psi(px + q);
                ps_px = gsl_sf_psi(px);
            }
        }
        double lgm = log(g + x * row->m);
        ll += w * (lg_x - lg_q + q * log_g + (px - 1) * row->log_m + px * lx - (px + q) * lgm);
        if (grad) {
            g_p += w * x * (ps_pxq - ps_px + row->log_m + lx - lgm);
            g_q += w * (ps_pxq - ps_q + log_g - lgm);
            g_g += w * (q / g - (px + q) / (g + x * row->m));
        }
    }
    if (grad) {
        grad[0] = g_p * p / wsum;
        grad[1] = g_q * q / wsum;
        grad[2] = g_g * g / wsum;
    }
    return ll / wsum;
}

double vs_gg_loglik(const struct vs_gg_row *rows, size_t n, const struct vs_gg *params)
{
    if (!gg_valid(params)) {
        return NAN;
    }
    double wsum = 0;
    for (size_t i = 0; i < n; i++) {
        wsum += rows[i].weight;
    }
    if (wsum <= 0) {
        return NAN;
    }
    return wsum * gg_mean_ll(rows, n, wsum, params->p, params->q, params->gamma, NULL);
}

/* ==== The optimizer, shared by both models ==== */

/*
 * A model as the optimizer sees it: dim log-parameters and a function giving the mean
 * log-likelihood (and gradient) at exp(theta).
 */
struct objective {
    size_t dim;
    double (*mean_ll)(const void *data, const double *par, double *grad);
    const void *data;
    double weight; /* customers behind the mean: turns curvature into standard errors */
};

/* Parameters beyond these bounds (in log space) mean the optimizer has run off to a degenerate
 * corner (e.g. alpha -> infinity); the objective refuses them so line searches turn back. */
#define LOG_PAR_LIMIT 30.0
#define LOG_PAR_SANE 15.0

/* A log-parameter whose standard error exceeds this (a factor e^2 either way at one standard
 * error) is not estimated by the data: the "maximum" is a point on a flat ridge or plateau. */
#define LOG_SE_MAX 2.0

/* The mean log-likelihood (and its gradient) at the log-parameters theta; NAN off limits. */
static double eval_at(const struct objective *o, const double *theta, double *grad)
{
    double par[4];
    for (size_t i = 0; i < o->dim; i++) {
        if (!(fabs(theta[i]) < LOG_PAR_LIMIT)) {
            return NAN;
        }
        par[i] = exp(theta[i]);
    }
    double ll = o->mean_ll(o->data, par, grad);
    return isfinite(ll) ? ll : NAN;
}

static double obj_f(const gsl_vector *v, void *arg)
{
    const struct objective *o = arg;
    double theta[4];
    for (size_t i = 0; i < o->dim; i++) {
        theta[i] = gsl_vector_get(v, i);
    }
    double ll = eval_at(o, theta, NULL);
    return isnan(ll) ? GSL_POSINF : -ll;
}

static void obj_fdf(const gsl_vector *v, void *arg, double *f, gsl_vector *df)
{
    const struct objective *o = arg;
    double theta[4], grad[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < o->dim; i++) {
        theta[i] = gsl_vector_get(v, i);
    }
    double ll = eval_at(o, theta, grad);
    if (isnan(ll)) {
        *f = GSL_POSINF;
        for (size_t i = 0; i < o->dim; i++) {
            gsl_vector_set(df, i, 0);
        }
        return;
    }
    *f = -ll;
    for (size_t i = 0; i < o->dim; i++) {
        gsl_vector_set(df, i, -grad[i]);
    }
}

static void obj_df(const gsl_vector *v, void *arg, gsl_vector *df)
{
    double f;
    obj_fdf(v, arg, &f, df);
}

/*
 * Whether theta, where the optimizer stopped, is a maximum the data identify. The gradient test
 * alone cannot tell: far out on a ridge (rates so alike that r and alpha run off together, or a
 * dropout probability so alike that a and b do) the gradient decays towards zero while the
 * likelihood still creeps up, and a fit on a few days of a young shop "converges" to such a
 * point. There the curvature vanishes too. So the Hessian of the mean log-likelihood is taken
 * by central differences of the analytic gradient, and the maximum counts only when it is
 * negative definite and every log-parameter's standard error (from the inverse of the
 * information of o->weight customers) stays below LOG_SE_MAX.
 */
static int identified(const struct objective *o, const double *theta)
{
    size_t dim = o->dim;
    const double h = 1e-4;
    gsl_matrix *info = gsl_matrix_alloc(dim, dim);
    if (!info) {
        return 0;
    }
    int ok = 1;
    for (size_t i = 0; i < dim && ok; i++) {
        double par[4], gp[4] = {0}, gm[4] = {0};
        for (int side = 0; side < 2 && ok; side++) {
            for (size_t k = 0; k < dim; k++) {
                par[k] = exp(theta[k] + (k == i ? (side ? -h : h) : 0));
            }
            ok = isfinite(o->mean_ll(o->data, par, side ? gm : gp));
        }
        for (size_t j = 0; j < dim && ok; j++) {
            /* information = minus the Hessian; symmetrised below */
            gsl_matrix_set(info, i, j, -(gp[j] - gm[j]) / (2 * h));
        }
    }
    for (size_t i = 0; i < dim && ok; i++) {
        for (size_t j = 0; j < i; j++) {
            double m = 0.5 * (gsl_matrix_get(info, i, j) + gsl_matrix_get(info, j, i));
            gsl_matrix_set(info, i, j, m);
            gsl_matrix_set(info, j, i, m);
        }
    }
    ok = ok && gsl_linalg_cholesky_decomp1(info) == GSL_SUCCESS &&
         gsl_linalg_cholesky_invert(info) == GSL_SUCCESS;
    for (size_t i = 0; i < dim && ok; i++) {
        double var = gsl_matrix_get(info, i, i) / o->weight;
        ok = isfinite(var) && var > 0 && sqrt(var) < LOG_SE_MAX;
    }
    gsl_matrix_free(info);
    return ok;
}

static double norm2(const double *g, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        s += g[i] * g[i];
    }
    return sqrt(s);
}

/*
 * Newton's method on the log-parameters, the Hessian from forward differences of the analytic
 * gradient. A refit starts from the parameters in force, and the population has moved little
 * since: from there Newton converges in two or three steps (dim + 1 gradients each), where BFGS
 * takes twenty iterations and a hundred evaluations. Every step must be an ascent direction of
 * a negative definite Hessian and must improve the likelihood within a few halvings; when one
 * is not, Newton gives up and BFGS runs from the start as before. Returns 1 with theta where
 * the gradient test of minimise() passes, 0 otherwise (theta unchanged); *steps counts steps.
 */
static int newton(const struct objective *o, double *theta, int *steps)
{
    size_t dim = o->dim;
    const double h = 1e-5;
    double t[4], g[4], gh[4], gn[4], th[4], hess[16], step[4];
    memcpy(t, theta, dim * sizeof *t);
    double ll = eval_at(o, t, g);
    *steps = 0;
    if (isnan(ll)) {
        return 0;
    }
    for (int it = 0; it < 12; it++) {
        if (norm2(g, dim) < 1e-6) {
            memcpy(theta, t, dim * sizeof *t);
            return 1;
        }
        for (size_t j = 0; j < dim; j++) {
            memcpy(th, t, dim * sizeof *th);
            th[j] += h;
            if (isnan(eval_at(o, th, gh))) {
                return 0;
            }
            for (size_t i = 0; i < dim; i++) {
                hess[i * dim + j] = -(gh[i] - g[i]) / h; /* minus the Hessian */
            }
        }
        for (size_t i = 0; i < dim; i++) {
            for (size_t j = 0; j < i; j++) {
                double m = 0.5 * (hess[i * dim + j] + hess[j * dim + i]);
                hess[i * dim + j] = hess[j * dim + i] = m;
            }
        }
        gsl_matrix_view a = gsl_matrix_view_array(hess, dim, dim);
        gsl_vector_view b = gsl_vector_view_array(g, dim), x = gsl_vector_view_array(step, dim);
        if (gsl_linalg_cholesky_decomp1(&a.matrix) != GSL_SUCCESS ||
            gsl_linalg_cholesky_solve(&a.matrix, &b.vector, &x.vector) != GSL_SUCCESS) {
            return 0;
        }
        double lam = 1, lln = NAN;
        for (int k = 0; k < 6; k++, lam /= 2) {
            for (size_t i = 0; i < dim; i++) {
                th[i] = t[i] + lam * step[i];
            }
            lln = eval_at(o, th, gn);
            if (!isnan(lln) && lln >= ll) {
                break;
            }
            lln = NAN;
        }
        if (isnan(lln)) {
            return 0;
        }
        memcpy(t, th, dim * sizeof *t);
        memcpy(g, gn, dim * sizeof *g);
        ll = lln;
        (*steps)++;
    }
    return 0;
}

/*
 * Minimise the negative mean log-likelihood from theta (log-parameters, updated on success).
 * BFGS with analytic gradients converges in a few dozen evaluations; when its line search
 * stalls (flat ridges are common with few repeaters), Nelder-Mead restarts from where BFGS
 * stopped. Convergence means a gradient norm below 1e-6 per customer, or for Nelder-Mead a
 * simplex smaller than 1e-7 in log space.
 */
static int minimise(const struct objective *o, double *theta, double *mean_ll, int *iters_out)
{
    gsl_quiet();
    size_t dim = o->dim;
    gsl_vector *x = gsl_vector_alloc(dim);
    if (!x) {
        return VS_ENOMEM;
    }
    for (size_t i = 0; i < dim; i++) {
        gsl_vector_set(x, i, theta[i]);
    }
    int iters = 0, converged = newton(o, theta, &iters);
    double best[4];
    memcpy(best, theta, dim * sizeof *best);

    gsl_multimin_function_fdf fdf = {
        .f = obj_f, .df = obj_df, .fdf = obj_fdf, .n = dim, .params = (void *)o};
    gsl_multimin_fdfminimizer *s =
        gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2, dim);
    if (!s) {
        gsl_vector_free(x);
        return VS_ENOMEM;
    }
    if (!converged && isfinite(obj_f(x, (void *)o)) &&
        gsl_multimin_fdfminimizer_set(s, &fdf, x, 0.05, 0.1) == GSL_SUCCESS) {
        for (int it = 0; it < 400; it++) {
            iters++;
            int st = gsl_multimin_fdfminimizer_iterate(s);
            if (gsl_multimin_test_gradient(s->gradient, 1e-6) == GSL_SUCCESS) {
                converged = 1;
                break;
            }
            if (st != GSL_SUCCESS) {
                break;
            }
        }
        if (isfinite(s->f)) {
            for (size_t i = 0; i < dim; i++) {
                best[i] = gsl_vector_get(s->x, i);
            }
        }
    }
    gsl_multimin_fdfminimizer_free(s);

    if (!converged) {
        gsl_multimin_function fn = {.f = obj_f, .n = dim, .params = (void *)o};
        gsl_multimin_fminimizer *nm =
            gsl_multimin_fminimizer_alloc(gsl_multimin_fminimizer_nmsimplex2, dim);
        gsl_vector *step = gsl_vector_alloc(dim);
        if (!nm || !step) {
            gsl_multimin_fminimizer_free(nm);
            gsl_vector_free(step);
            gsl_vector_free(x);
            return VS_ENOMEM;
        }
        for (size_t i = 0; i < dim; i++) {
            gsl_vector_set(x, i, best[i]);
        }
        gsl_vector_set_all(step, 0.3);
        if (isfinite(obj_f(x, (void *)o)) &&
            gsl_multimin_fminimizer_set(nm, &fn, x, step) == GSL_SUCCESS) {
            for (int it = 0; it < 5000; it++) {
                iters++;
                if (gsl_multimin_fminimizer_iterate(nm) != GSL_SUCCESS) {
                    break;
                }
                if (gsl_multimin_test_size(gsl_multimin_fminimizer_size(nm), 1e-7) == GSL_SUCCESS) {
                    converged = 1;
                    break;
                }
            }
            for (size_t i = 0; i < dim; i++) {
                best[i] = gsl_vector_get(nm->x, i);
            }
        }
        gsl_multimin_fminimizer_free(nm);
        gsl_vector_free(step);
    }
    gsl_vector_free(x);
    if (iters_out) {
        *iters_out = iters;
    }
    if (!converged) {
        return VS_ENOCONV;
    }
    /* A maximum on the edge of the parameter space (a rate running to zero, a dropout
     * probability to nothing) is not an estimate: the data do not identify the model. */
    double par[4];
    for (size_t i = 0; i < dim; i++) {
        if (fabs(best[i]) > LOG_PAR_SANE) {
            return VS_ENOCONV;
        }
        par[i] = exp(best[i]);
    }
    double ll = o->mean_ll(o->data, par, NULL);
    if (!isfinite(ll) || !identified(o, best)) {
        return VS_ENOCONV;
    }
    memcpy(theta, best, dim * sizeof *best);
    *mean_ll = ll;
    return 0;
}

/*
 * minimise() from each of nstarts starting points (rows of o->dim log-parameters) in turn, until
 * one reaches an identified maximum; theta receives it. The first start is the caller's (the
 * previous fit): cheap when the population has moved little. The others are fixed points that do
 * not depend on any earlier fit, so a fit that once went wrong, or parameters of another shop,
 * cannot trap every later refit in a region where the optimizer makes no progress.
 */
static int minimise_from(const struct objective *o, const double *starts, size_t nstarts,
                         double *theta, double *mean_ll, int *iters_out)
{
    int rc = VS_ENOCONV, total = 0;
    for (size_t k = 0; k < nstarts && rc == VS_ENOCONV; k++) {
        double t[4];
        int it = 0;
        memcpy(t, starts + k * o->dim, o->dim * sizeof *t);
        rc = minimise(o, t, mean_ll, &it);
        total += it;
        if (rc == 0) {
            memcpy(theta, t, o->dim * sizeof *t);
        }
    }
    if (iters_out) {
        *iters_out = total;
    }
    return rc;
}

/* ==== BG/NBD fit ==== */

struct bgnbd_data {
    const struct vs_bgnbd_row *rows;
    size_t n;
    double wsum;
};

static double bgnbd_obj(const void *data, const double *par, double *grad)
{
    const struct bgnbd_data *d = data;
    return bgnbd_mean_ll(d->rows, d->n, d->wsum, par[0], par[1], par[2], par[3], grad);
}

static int row_cmp_x(const void *pa, const void *pb)
{
    const struct vs_bgnbd_row *a = pa, *b = pb;
    if (a->x != b->x) {
        return a->x < b->x ? -1 : 1;
    }
    if (a->T != b->T) {
        return a->T < b->T ? -1 : 1;
    }
    if (a->t_x != b->t_x) {
        return a->t_x < b->t_x ? -1 : 1;
    }
    return 0;
}

int vs_bgnbd_fit(const struct vs_bgnbd_row *rows, size_t n, struct vs_bgnbd *params,
                 int *iterations)
{
    if (iterations) {
        *iterations = 0;
    }
    double wsum = 0, repeat_w = 0, xsum = 0, tsum = 0;
    int sorted = 1;
    for (size_t i = 0; i < n; i++) {
        const struct vs_bgnbd_row *r = &rows[i];
        if (!(r->x >= 0 && r->t_x >= 0 && r->T >= r->t_x && r->weight >= 0) || !isfinite(r->T) ||
            !isfinite(r->x) || !isfinite(r->weight)) {
            return VS_EINVAL;
        }
        wsum += r->weight;
        repeat_w += r->x > 0 ? r->weight : 0;
        xsum += r->x * r->weight;
        tsum += r->T * r->weight;
        if (i > 0 && rows[i - 1].x > r->x) {
            sorted = 0;
        }
    }
    if (n == 0 || wsum <= 0 || repeat_w <= 0) {
        return VS_EINVAL; /* without a single repeat purchase nothing can be estimated */
    }
    struct vs_bgnbd_row *copy = NULL;
    if (!sorted) {
        copy = malloc(n * sizeof *copy);
        if (!copy) {
            return VS_ENOMEM;
        }
        memcpy(copy, rows, n * sizeof *copy);
        qsort(copy, n, sizeof *copy, row_cmp_x);
        rows = copy;
    }
    struct vs_bgnbd start = bgnbd_valid(params) ? *params : vs_bgnbd_prior;
    /* Besides the caller's start: the priors, and a start from the data alone (r = 1 with the
     * population's mean repeat rate, a dropout probability of a third). */
    double rate = xsum / tsum > 1e-9 ? xsum / tsum : 1e-9;
    double starts[3][4] = {{log(start.r), log(start.alpha), log(start.a), log(start.b)},
                           {log(vs_bgnbd_prior.r), log(vs_bgnbd_prior.alpha), log(vs_bgnbd_prior.a),
                            log(vs_bgnbd_prior.b)},
                           {0, -log(rate), 0, log(2)}};
    double theta[4];
    struct bgnbd_data d = {rows, n, wsum};
    struct objective o = {4, bgnbd_obj, &d, wsum};
    double mll;
    int rc = minimise_from(&o, (const double *)starts, 3, theta, &mll, iterations);
    free(copy);
    if (rc != 0) {
        return rc;
    }
    params->r = exp(theta[0]);
    params->alpha = exp(theta[1]);
    params->a = exp(theta[2]);
    params->b = exp(theta[3]);
    params->loglik = mll * wsum;
    return 0;
}

/* ==== Gamma-Gamma fit ==== */

struct gg_data {
    const struct vs_gg_row *rows;
    size_t n;
    double wsum;
};

static double gg_obj(const void *data, const double *par, double *grad)
{
    const struct gg_data *d = data;
    return gg_mean_ll(d->rows, d->n, d->wsum, par[0], par[1], par[2], grad);
}

int vs_gg_fit(const struct vs_gg_row *rows, size_t n, struct vs_gg *params, int *iterations)
{
    if (iterations) {
        *iterations = 0;
    }
    double wsum = 0, msum = 0;
    for (size_t i = 0; i < n; i++) {
        const struct vs_gg_row *r = &rows[i];
        if (!(r->x > 0 && r->m > 0 && r->weight >= 0) || !isfinite(r->m) || !isfinite(r->log_m) ||
            !isfinite(r->x) || !isfinite(r->weight)) {
            return VS_EINVAL;
        }
        wsum += r->weight;
        msum += r->m * r->weight;
    }
    if (n == 0 || wsum <= 0) {
        return VS_EINVAL;
    }
    struct vs_gg start = gg_valid(params) ? *params : vs_gg_prior;
    /* Besides the caller's start: the priors, and one from the data alone (p = 1, q = 2, so that
     * the mean spend p gamma / (q - 1) is the population's). */
    double mean_m = msum / wsum;
    double starts[3][3] = {{log(start.p), log(start.q), log(start.gamma)},
                           {log(vs_gg_prior.p), log(vs_gg_prior.q), log(vs_gg_prior.gamma)},
                           {0, log(2), log(mean_m)}};
    double theta[3];
    struct gg_data d = {rows, n, wsum};
    struct objective o = {3, gg_obj, &d, wsum};
    double mll;
    int rc = minimise_from(&o, (const double *)starts, 3, theta, &mll, iterations);
    if (rc != 0) {
        return rc;
    }
    params->p = exp(theta[0]);
    params->q = exp(theta[1]);
    params->gamma = exp(theta[2]);
    params->loglik = mll * wsum;
    return 0;
}

/* ==== Compaction ==== */

static int row_cmp_grid(const void *pa, const void *pb)
{
    /* Rows are compared on their grid cell, stored in weight's place during compaction. */
    const struct vs_bgnbd_row *a = pa, *b = pb;
    if (a->x != b->x) {
        return a->x < b->x ? -1 : 1;
    }
    if (a->T != b->T) {
        return a->T < b->T ? -1 : 1;
    }
    if (a->t_x != b->t_x) {
        return a->t_x < b->t_x ? -1 : 1;
    }
    return 0;
}

struct grid_row {
    struct vs_bgnbd_row key; /* cell: x group, T step, t_x step */
    struct vs_bgnbd_row sum; /* weighted sums of x, t_x, T; weight */
};

static int grid_cmp(const void *pa, const void *pb)
{
    const struct grid_row *a = pa, *b = pb;
    return row_cmp_grid(&a->key, &b->key);
}

/* Within a cell, order by the rows themselves: the sums, and so the fit, then do not depend on
 * the order the rows came in. */
static int grid_cmp_total(const void *pa, const void *pb)
{
    const struct grid_row *a = pa, *b = pb;
    int c = row_cmp_grid(&a->key, &b->key);
    if (c) {
        return c;
    }
    double wa = a->sum.weight > 0 ? a->sum.weight : 1, wb = b->sum.weight > 0 ? b->sum.weight : 1;
    struct vs_bgnbd_row ra = {a->sum.x / wa, a->sum.t_x / wa, a->sum.T / wa, 0};
    struct vs_bgnbd_row rb = {b->sum.x / wb, b->sum.t_x / wb, b->sum.T / wb, 0};
    c = row_cmp_grid(&ra, &rb);
    if (c) {
        return c;
    }
    return (a->sum.weight > b->sum.weight) - (a->sum.weight < b->sum.weight);
}

size_t vs_bgnbd_rows_compact(struct vs_bgnbd_row *rows, size_t n, int levels, int x_exact)
{
    if (n == 0) {
        return 0;
    }
    if (levels < 2) {
        levels = 2;
    }
    double tmax = 0;
    for (size_t i = 0; i < n; i++) {
        tmax = rows[i].T > tmax ? rows[i].T : tmax;
    }
    double step = tmax > 0 ? tmax / levels : 1;
    struct grid_row *g = malloc(n * sizeof *g);
    if (!g) {
        /* Without memory the rows stay as they are: correct, only slower to fit. */
        return n;
    }
    for (size_t i = 0; i < n; i++) {
        const struct vs_bgnbd_row *r = &rows[i];
        double xg = r->x <= x_exact ? r->x : x_exact + floor(log(r->x / x_exact) / log(1.05));
        g[i].key = (struct vs_bgnbd_row){
            .x = xg, .t_x = floor(r->t_x / step), .T = floor(r->T / step), .weight = 0};
        g[i].sum = (struct vs_bgnbd_row){.x = r->x * r->weight,
                                         .t_x = r->t_x * r->weight,
                                         .T = r->T * r->weight,
                                         .weight = r->weight};
    }
    qsort(g, n, sizeof *g, grid_cmp_total);
    size_t out = 0;
    for (size_t i = 0; i < n;) {
        struct vs_bgnbd_row s = g[i].sum;
        size_t j = i + 1;
        while (j < n && grid_cmp(&g[i], &g[j]) == 0) {
            s.x += g[j].sum.x;
            s.t_x += g[j].sum.t_x;
            s.T += g[j].sum.T;
            s.weight += g[j].sum.weight;
            j++;
        }
        if (s.weight > 0) {
            struct vs_bgnbd_row *o = &rows[out++];
            o->weight = s.weight;
            o->x = g[i].key.x <= x_exact ? g[i].key.x : round(s.x / s.weight);
            o->T = s.T / s.weight;
            o->t_x = fmin(s.t_x / s.weight, o->T);
        }
        i = j;
    }
    free(g);
    return out;
}

/* ==== Predictions ==== */

double vs_bgnbd_p_alive(const struct vs_bgnbd *m, double x, double t_x, double T)
{
    if (x <= 0) {
        return 1.0;
    }
    double lo =
        log(m->a) - log(m->b + x - 1) + (m->r + x) * (log(m->alpha + T) - log(m->alpha + t_x));
    /* 1 / (1 + e^lo), written so that a large lo gives a small number, not 1/inf trouble. */
    return lo > 0 ? exp(-lo) / (1 + exp(-lo)) : 1 / (1 + exp(lo));
}

double vs_hyp2f1_series(double a, double b, double c, double z, int max_terms)
{
    double sum = 1, term = 1;
    for (int n = 0; n < max_terms; n++) {
        term *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z;
        sum += term;
        if (fabs(term) <= 1e-15 * fabs(sum)) {
            return sum;
        }
    }
    return NAN;
}

double vs_hyp2f1(double a, double b, double c, double z)
{
    gsl_quiet();
    if (z == 0) {
        return 1;
    }
    /*
     * GSL's 2F1 is accurate for moderate z; near z = 1 with c - a - b < 0 it sums a series
     * whose terms barely decay and reports GSL_EMAXITER or a large error estimate. Its result
     * is taken only with a small relative error estimate.
     */
    gsl_sf_result res;
    int st = gsl_sf_hyperg_2F1_e(a, b, c, z, &res);
    if (st == GSL_SUCCESS && isfinite(res.val) && res.err <= 1e-10 * fabs(res.val)) {
        return res.val;
    }
    double s = vs_hyp2f1_series(c - a, c - b, c, z, 200000);
    if (isfinite(s)) {
        return exp((c - a - b) * log1p(-z)) * s;
    }
    return vs_hyp2f1_series(a, b, c, z, 200000);
}

double vs_bgnbd_expected(const struct vs_bgnbd *m, double x, double t_x, double T, double t)
{
    if (t <= 0) {
        return 0;
    }
    double r = m->r, al = m->alpha, a = m->a, b = m->b;
    /* The formula divides by a - 1; at a = 1 it has a finite limit, approached from nearby. */
    if (fabs(a - 1) < 1e-6) {
        a = 1 + 1e-6;
    }
    double z = t / (al + T + t);
    double f = vs_hyp2f1(r + x, b + x, a + b + x - 1, z);
    double head = (a + b + x - 1) / (a - 1);
    double body = 1 - exp((r + x) * (log(al + T) - log(al + T + t))) * f;
    double den = 1;
    if (x > 0) {
        den += exp(log(a) - log(b + x - 1) + (r + x) * (log(al + T) - log(al + t_x)));
    }
    double e = head * body / den;
    return e > 0 ? e : 0;
}

double vs_bgnbd_expected_new(const struct vs_bgnbd *m, double t)
{
    if (t <= 0) {
        return 0;
    }
    double r = m->r, al = m->alpha, a = m->a, b = m->b;
    if (fabs(a - 1) < 1e-6) {
        a = 1 + 1e-6;
    }
    double f = vs_hyp2f1(r, b, a + b - 1, t / (al + t));
    return (a + b - 1) / (a - 1) * (1 - exp(r * (log(al) - log(al + t))) * f);
}

double vs_bgnbd_age_at_p_alive(const struct vs_bgnbd *m, double x, double t_x, double threshold)
{
    if (x <= 0 || !(threshold > 0 && threshold < 1)) {
        return INFINITY;
    }
    double log_k = log(1 / threshold - 1) + log(m->b + x - 1) - log(m->a);
    double T = (m->alpha + t_x) * exp(log_k / (m->r + x)) - m->alpha;
    return T > t_x ? T : t_x;
}

double vs_gg_expected_spend(const struct vs_gg *m, double x, double m_x)
{
    if (!(m->q > 1)) {
        return NAN;
    }
    if (x <= 0 || !(m_x > 0)) {
        return m->p * m->gamma / (m->q - 1);
    }
    return m->p * (m->gamma + x * m_x) / (m->p * x + m->q - 1);
}

/*
 * E[X(t_k) | x, t_x, T] for the n horizons t[k] at once: the hypergeometric function has the
 * same parameters at every horizon, only z differs, so one pass over the terms of the series on
 * Euler's transform (see vs_hyp2f1) serves all of them, each z with its own power. Returns -1
 * when a series has not converged within the terms allowed (the caller then asks vs_hyp2f1 for
 * each horizon).
 */
#define CLV_MAX_HORIZONS 64

static int bgnbd_expected_many(const struct vs_bgnbd *m, double x, double t_x, double T,
                               const double *t, int n, double *out)
{
    double r = m->r, al = m->alpha, a = m->a, b = m->b;
    if (fabs(a - 1) < 1e-6) {
        a = 1 + 1e-6;
    }
    double A = r + x, B = b + x, C = a + b + x - 1;
    double ca = C - A, cb = C - B;
    double z[CLV_MAX_HORIZONS], pw[CLV_MAX_HORIZONS], sum[CLV_MAX_HORIZONS];
    int open = 0;
    for (int k = 0; k < n; k++) {
        z[k] = t[k] > 0 ? t[k] / (al + T + t[k]) : 0;
        pw[k] = 1;
        sum[k] = 1;
        open += z[k] > 0;
    }
    double coef = 1;
    for (int i = 0; open > 0; i++) {
        if (i >= 200000) {
            return -1;
        }
        coef *= (ca + i) * (cb + i) / ((C + i) * (i + 1));
        /* Done once a term is negligible and the terms after it shrink (the ratio of the
         * coefficients, times z, below one): a small first term alone proves nothing. */
        double next = fabs((ca + i + 1) * (cb + i + 1) / ((C + i + 1) * (i + 2)));
        open = 0;
        for (int k = 0; k < n; k++) {
            if (z[k] == 0) {
                continue;
            }
            pw[k] *= z[k];
            double term = coef * pw[k];
            sum[k] += term;
            if (coef != 0 && (fabs(term) > 1e-15 * fabs(sum[k]) || next * z[k] >= 1)) {
                open++;
            }
        }
    }
    double head = (a + b + x - 1) / (a - 1);
    double den = 1;
    if (x > 0) {
        den += exp(log(a) - log(b + x - 1) + A * (log(al + T) - log(al + t_x)));
    }
    double log_aT = log(al + T);
    for (int k = 0; k < n; k++) {
        if (t[k] <= 0) {
            out[k] = 0;
            continue;
        }
        /* 1 - z = (alpha + T) / (alpha + T + t): Euler's factor (1-z)^(C-A-B) and the
         * formula's ((alpha + T) / (alpha + T + t))^A combine into one power. */
        double l = log_aT - log(al + T + t[k]);
        double body = 1 - exp((C - B) * l) * sum[k];
        double e = head * body / den;
        if (!isfinite(e)) {
            return -1;
        }
        out[k] = e > 0 ? e : 0;
    }
    return 0;
}

double vs_clv(const struct vs_bgnbd *bg, double x, double t_x, double T, double spend,
              double horizon_weeks, double monthly_rate)
{
    if (!(spend > 0)) {
        return 0;
    }
    return vs_clv_expected(bg, x, t_x, T, spend, horizon_weeks, monthly_rate, NULL);
}

double vs_clv_expected(const struct vs_bgnbd *bg, double x, double t_x, double T, double spend,
                       double horizon_weeks, double monthly_rate, double *expected)
{
    if (expected) {
        *expected = 0;
    }
    if (!(horizon_weeks > 0)) {
        return 0;
    }
    double month = DAYS_PER_MONTH / 7;
    if (horizon_weeks > CLV_MAX_HORIZONS * month) {
        /* More months than one pass takes: month by month. */
        double clv = 0, prev = 0, disc = 1;
        for (int k = 1; (k - 1) * month < horizon_weeks; k++) {
            double end = k * month < horizon_weeks ? k * month : horizon_weeks;
            double e = vs_bgnbd_expected(bg, x, t_x, T, end);
            disc /= 1 + monthly_rate;
            clv += (e - prev) * spend * disc;
            prev = e;
        }
        if (expected) {
            *expected = prev;
        }
        return spend > 0 ? clv : 0;
    }
    double ends[CLV_MAX_HORIZONS], e[CLV_MAX_HORIZONS];
    int n = 0;
    for (int k = 1; (k - 1) * month < horizon_weeks && n < CLV_MAX_HORIZONS; k++) {
        ends[n++] = k * month < horizon_weeks ? k * month : horizon_weeks;
    }
    if (bgnbd_expected_many(bg, x, t_x, T, ends, n, e)) {
        for (int k = 0; k < n; k++) {
            e[k] = vs_bgnbd_expected(bg, x, t_x, T, ends[k]);
        }
    }
    double clv = 0, prev = 0, disc = 1;
    for (int k = 0; k < n; k++) {
        disc /= 1 + monthly_rate;
        clv += (e[k] - prev) * spend * disc;
        prev = e[k];
    }
    if (expected) {
        *expected = prev;
    }
    return spend > 0 ? clv : 0;
}

/* ==== The refit ==== */

void vs_clv_fit_init(struct vs_clv_fit *fit)
{
    memset(fit, 0, sizeof *fit);
    fit->bg = (struct vs_bgnbd){.r = 1, .alpha = 1, .a = 1, .b = 1, .loglik = NAN};
    fit->gg = (struct vs_gg){.p = 1, .q = 1, .gamma = 1, .loglik = NAN};
}

/* Merge rows with identical (x, t_x, T) after sorting: exact, unlike the grid. */
static size_t rows_merge_equal(struct vs_bgnbd_row *rows, size_t n)
{
    if (n == 0) {
        return 0;
    }
    qsort(rows, n, sizeof *rows, row_cmp_x);
    size_t out = 0;
    for (size_t i = 1; i < n; i++) {
        if (row_cmp_x(&rows[out], &rows[i]) == 0) {
            rows[out].weight += rows[i].weight;
        } else {
            rows[++out] = rows[i];
        }
    }
    return out + 1;
}

static int gg_row_cmp(const void *pa, const void *pb)
{
    const struct vs_gg_row *a = pa, *b = pb;
    if (a->x != b->x) {
        return a->x < b->x ? -1 : 1;
    }
    if (a->m != b->m) {
        return a->m < b->m ? -1 : 1;
    }
    if (a->log_m != b->log_m) {
        return a->log_m < b->log_m ? -1 : 1;
    }
    return (a->weight > b->weight) - (a->weight < b->weight);
}

int vs_clv_refit(struct vs_bgnbd_row *bg_rows, size_t nbg, struct vs_gg_row *gg_rows, size_t ngg,
                 struct vs_clv_fit *fit)
{
    /* Sorted input makes the floating-point sums, and so the result, independent of the order
     * in which the caller collected the rows. */
    qsort(gg_rows, ngg, sizeof *gg_rows, gg_row_cmp);
    size_t n = rows_merge_equal(bg_rows, nbg);
    if (n > VS_CLV_COMPACT_ROWS) {
        n = vs_bgnbd_rows_compact(bg_rows, n, VS_CLV_COMPACT_LEVELS, 32);
    }
    fit->bg_rows = n;
    fit->bg_weight = 0;
    for (size_t i = 0; i < n; i++) {
        fit->bg_weight += bg_rows[i].weight;
    }
    fit->gg_rows = ngg;
    fit->gg_weight = 0;
    for (size_t i = 0; i < ngg; i++) {
        fit->gg_weight += gg_rows[i].weight;
    }
    fit->bg_rc = vs_bgnbd_fit(bg_rows, n, &fit->bg, &fit->bg_iters);
    fit->gg_rc = vs_gg_fit(gg_rows, ngg, &fit->gg, &fit->gg_iters);
    return fit->bg_rc ? fit->bg_rc : fit->gg_rc;
}
