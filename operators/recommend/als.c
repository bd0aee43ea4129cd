/*
 * The full implicit-ALS sweep (als.h). Both half-steps are the same solve: for one customer (or
 * item) with interactions j of confidence c_j against rows f_j of the other side F,
 *   (F^T F + sum_j (c_j - 1) f_j f_j^T + lambda I) x = sum_j c_j f_j,
 * with F^T F computed once per half-step (cblas_ssyrk) and the sum added by one cblas_ssyrk of
 * the rows scaled by sqrt(c_j - 1), 64 at a time; spotf2_ factors, cblas_strsv solves.
 */
#include "als.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <valuestream/error.h>

extern void spotf2_(const char *uplo, const int *n, float *a, const int *lda, int *info);

#define BLOCK 64 /* rows per ssyrk of one solve */

/* The log's positive pairs, grouped both ways. */
struct pairs {
    int32_t n_users, n_pairs;
    int32_t *u_start; /* n_users + 1 */
    int32_t *u_item;  /* n_pairs: item of each pair, by customer */
    float *u_c;       /* its confidence */
    int32_t *i_start; /* n_items + 1 */
    int32_t *i_user;  /* n_pairs: customer index of each pair, by item */
    float *i_c;
};

static int cmp_entry(const void *a, const void *b)
{
    const struct vs_als_entry *x = a, *y = b;
    if (x->customer != y->customer) {
        return x->customer < y->customer ? -1 : 1;
    }
    return (x->item > y->item) - (x->item < y->item);
}

static void pairs_free(struct pairs *g)
{
    free(g->u_start);
    free(g->u_item);
    free(g->u_c);
    free(g->i_start);
    free(g->i_user);
    free(g->i_c);
}

static int pairs_build(struct pairs *g, float alpha, int32_t n_items,
                       const struct vs_als_entry *log, size_t n_log)
{
    memset(g, 0, sizeof(*g));
    struct vs_als_entry *e = malloc((n_log ? n_log : 1) * sizeof(*e));
    if (!e) {
        return VS_ENOMEM;
    }
    size_t m = 0;
    for (size_t i = 0; i < n_log; i++) {
        if (log[i].item >= 0 && log[i].item < n_items && isfinite(log[i].weight)) {
            e[m++] = log[i];
        }
    }
    qsort(e, m, sizeof(*e), cmp_entry);
    /* Sum each pair's weights in place; keep the positive ones. */
    size_t np = 0;
    for (size_t i = 0; i < m;) {
        size_t j = i;
        double w = 0;
        while (j < m && e[j].customer == e[i].customer && e[j].item == e[i].item) {
            w += e[j++].weight;
        }
        if (w > 0) {
            e[np] = e[i];
            e[np++].weight = (float)w;
        }
        i = j;
    }
    int32_t nu = 0;
    for (size_t i = 0; i < np; i++) {
        nu += i == 0 || e[i].customer != e[i - 1].customer;
    }
    g->n_users = nu;
    g->n_pairs = (int32_t)np;
    g->u_start = calloc((size_t)nu + 1, sizeof(int32_t));
    g->u_item = malloc((np ? np : 1) * sizeof(int32_t));
    g->u_c = malloc((np ? np : 1) * sizeof(float));
    g->i_start = calloc((size_t)n_items + 1, sizeof(int32_t));
    g->i_user = malloc((np ? np : 1) * sizeof(int32_t));
    g->i_c = malloc((np ? np : 1) * sizeof(float));
    if (!g->u_start || !g->u_item || !g->u_c || !g->i_start || !g->i_user || !g->i_c) {
        free(e);
        pairs_free(g);
        return VS_ENOMEM;
    }
    int32_t u = -1;
    for (size_t i = 0; i < np; i++) {
        if (i == 0 || e[i].customer != e[i - 1].customer) {
            g->u_start[++u] = (int32_t)i;
        }
        g->u_item[i] = e[i].item;
        g->u_c[i] = 1.0f + alpha * e[i].weight;
        g->i_start[e[i].item + 1]++;
    }
    g->u_start[nu] = (int32_t)np;
    for (int32_t i = 0; i < n_items; i++) {
        g->i_start[i + 1] += g->i_start[i];
    }
    int32_t *fill = malloc(((size_t)n_items + 1) * sizeof(int32_t));
    if (!fill) {
        free(e);
        pairs_free(g);
        return VS_ENOMEM;
    }
    memcpy(fill, g->i_start, (size_t)n_items * sizeof(int32_t));
    for (u = 0; u < nu; u++) {
        for (int32_t p = g->u_start[u]; p < g->u_start[u + 1]; p++) {
            int32_t slot = fill[g->u_item[p]]++;
            g->i_user[slot] = u;
            g->i_c[slot] = g->u_c[p];
        }
    }
    free(fill);
    free(e);
    return 0;
}

/* gram = F^T F for F rows x k, column-major upper k x k (row-major F is column-major F^T). */
static void gram_of(const float *f, int32_t rows, int k, float *gram)
{
    memset(gram, 0, (size_t)k * (size_t)k * sizeof(float));
    if (rows > 0) {
        cblas_ssyrk(CblasColMajor, CblasUpper, CblasNoTrans, k, rows, 1.0f, f, k, 0.0f, gram, k);
    }
}

/* Solve one side's x[k] against rows idx[0..n) of f with confidences c. a, rows: scratch. */
static int solve_one(const float *gram, float lambda, const float *f, int k, const int32_t *idx,
                     const float *c, int32_t n, float *a, float *rows, float *x)
{
    size_t kk = (size_t)k * (size_t)k;
    memcpy(a, gram, kk * sizeof(float));
    for (int i = 0; i < k; i++) {
        a[(size_t)i * (size_t)k + (size_t)i] += lambda;
    }
    memset(x, 0, (size_t)k * sizeof(float));
    for (int32_t j0 = 0; j0 < n; j0 += BLOCK) {
        int32_t m = n - j0 < BLOCK ? n - j0 : BLOCK;
        for (int32_t j = 0; j < m; j++) {
            const float *row = f + (size_t)idx[j0 + j] * (size_t)k;
            float cj = c[j0 + j], s = sqrtf(cj - 1.0f);
            cblas_saxpy(k, cj, row, 1, x, 1);
            for (int q = 0; q < k; q++) {
                rows[(size_t)j * (size_t)k + (size_t)q] = s * row[q];
            }
        }
        cblas_ssyrk(CblasColMajor, CblasUpper, CblasNoTrans, k, m, 1.0f, rows, k, 1.0f, a, k);
    }
    /* The unblocked factorization and two triangular solves: at k = 64, 8.7 us against 12.4
     * for sposv_, whose blocked path spends most of its time in small strsm calls
     * (recommend_bench: cholesky_us). */
    int kn = k, info = 0;
    spotf2_("U", &kn, a, &kn, &info);
    if (info != 0) {
        return VS_EINVAL;
    }
    cblas_strsv(CblasColMajor, CblasUpper, CblasTrans, CblasNonUnit, k, a, k, x, 1);
    cblas_strsv(CblasColMajor, CblasUpper, CblasNoTrans, CblasNonUnit, k, a, k, x, 1);
    for (int q = 0; q < k; q++) {
        if (!isfinite(x[q])) {
            return VS_EINVAL;
        }
    }
    return 0;
}

static int solve_users(const struct pairs *g, const struct vs_als_params *p, const float *y,
                       int32_t n_items, float *x, float *gram, float *a, float *rows)
{
    gram_of(y, n_items, p->k, gram);
    for (int32_t u = 0; u < g->n_users; u++) {
        int32_t s = g->u_start[u];
        int rc = solve_one(gram, p->lambda, y, p->k, g->u_item + s, g->u_c + s,
                           g->u_start[u + 1] - s, a, rows, x + (size_t)u * (size_t)p->k);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

struct scratch {
    float *x, *gram, *a, *rows;
};

static int scratch_new(struct scratch *s, int32_t n_users, int k)
{
    size_t kk = (size_t)k * (size_t)k;
    s->x = malloc(((size_t)n_users + 1) * (size_t)k * sizeof(float));
    s->gram = malloc(kk * sizeof(float));
    s->a = malloc(kk * sizeof(float));
    s->rows = malloc((size_t)BLOCK * (size_t)k * sizeof(float));
    return s->x && s->gram && s->a && s->rows ? 0 : VS_ENOMEM;
}

static void scratch_free(struct scratch *s)
{
    free(s->x);
    free(s->gram);
    free(s->a);
    free(s->rows);
}

int vs_als_sweep(const struct vs_als_params *p, float *y, int32_t n_items,
                 const struct vs_als_entry *log, size_t n_log, int32_t *solved)
{
    int k = p->k;
    struct pairs g;
    int rc = pairs_build(&g, p->alpha, n_items, log, n_log);
    if (rc < 0) {
        return rc;
    }
    struct scratch s;
    size_t size = (size_t)n_items * (size_t)k;
    float *out = malloc((size ? size : 1) * sizeof(float));
    rc = scratch_new(&s, g.n_users, k);
    if (rc == 0 && !out) {
        rc = VS_ENOMEM;
    }
    if (rc == 0) {
        memcpy(out, y, size * sizeof(float));
    }
    int32_t n_solved = 0;
    for (int it = 0; rc == 0 && it < p->iterations; it++) {
        rc = solve_users(&g, p, out, n_items, s.x, s.gram, s.a, s.rows);
        if (rc < 0) {
            break;
        }
        gram_of(s.x, g.n_users, k, s.gram);
        n_solved = 0;
        for (int32_t i = 0; i < n_items && rc == 0; i++) {
            int32_t b = g.i_start[i], n = g.i_start[i + 1] - b;
            if (n > 0) {
                rc = solve_one(s.gram, p->lambda, s.x, k, g.i_user + b, g.i_c + b, n, s.a, s.rows,
                               out + (size_t)i * (size_t)k);
                n_solved++;
            }
        }
    }
    if (rc == 0) {
        memcpy(y, out, size * sizeof(float));
        if (solved) {
            *solved = n_solved;
        }
    }
    free(out);
    scratch_free(&s);
    pairs_free(&g);
    return rc;
}

double vs_als_loss(const struct vs_als_params *p, const float *y, int32_t n_items,
                   const struct vs_als_entry *log, size_t n_log)
{
    int k = p->k;
    struct pairs g;
    if (pairs_build(&g, p->alpha, n_items, log, n_log) < 0) {
        return NAN;
    }
    struct scratch s;
    double loss = NAN;
    if (scratch_new(&s, g.n_users, k) == 0 &&
        solve_users(&g, p, y, n_items, s.x, s.gram, s.a, s.rows) == 0) {
        /* s.gram holds Y^T Y (upper); sum over all items of (x . y_i)^2 is x^T (Y^T Y) x. */
        loss = 0;
        for (int32_t u = 0; u < g.n_users; u++) {
            const float *x = s.x + (size_t)u * (size_t)k;
            double quad = 0;
            for (int i = 0; i < k; i++) {
                for (int j = i; j < k; j++) {
                    double v = (double)s.gram[(size_t)j * (size_t)k + (size_t)i] * x[i] * x[j];
                    quad += i == j ? v : 2 * v;
                }
            }
            loss += quad + p->lambda * cblas_sdot(k, x, 1, x, 1);
            for (int32_t q = g.u_start[u]; q < g.u_start[u + 1]; q++) {
                double sc = cblas_sdot(k, x, 1, y + (size_t)g.u_item[q] * (size_t)k, 1);
                loss += g.u_c[q] * (1 - sc) * (1 - sc) - sc * sc;
            }
        }
        for (int32_t i = 0; i < n_items; i++) {
            if (g.i_start[i + 1] > g.i_start[i]) {
                const float *row = y + (size_t)i * (size_t)k;
                loss += p->lambda * cblas_sdot(k, row, 1, row, 1);
            }
        }
    }
    scratch_free(&s);
    pairs_free(&g);
    return loss;
}
