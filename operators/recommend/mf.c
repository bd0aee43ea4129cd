/*
 * Implicit-feedback matrix factorization: item factors, the item dictionary, the Gram cache,
 * the closed-form customer fold-in and the item step (see mf.h for the model).
 *
 * The large products are OpenBLAS: cblas_ssyrk adds the customer's confidence-weighted items to
 * the cached Gram matrix, LAPACK's Cholesky (spotf2_) solves the k x k system, and cblas_sgemv
 * scores every item at once. The small per-interaction loops (the rank-2 update that keeps the
 * Gram cache equal to YtY when a row changes, the eALS sweep) are plain C on vectors
 * (mf_kernels.h, built for the baseline and for AVX2): at k <= 64 a BLAS call per row or per
 * coordinate costs more than its arithmetic.
 * The Gram cache is double precision: it absorbs millions of rank-2 updates, and in float the
 * rounding drift would grow with every one of them.
 */
#include "mf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include <valuestream/error.h>

#include "mf_kernels.h"

/* LAPACK's Cholesky solve, Fortran ABI (OpenBLAS exports it; there is no LAPACKE). */
extern void spotf2_(const char *uplo, const int *n, float *a, const int *lda, int *info);

#define VS__MF_MAX_FOLD 64 /* items a fold-in looks at: the customer's most recent ones */
#define VS__MF_MAGIC_META 0x464d5356u  /* "VSMF" */
#define VS__MF_MAGIC_CHUNK 0x434d5356u /* "VSMC" */
#define VS__MF_VERSION 1u

struct vs_mf {
    struct vs_mf_params p;
    int k;
    int32_t n, cap;
    float *y;                       /* cap x k, row-major */
    char (*ids)[VS_MF_ITEM_ID_MAX]; /* cap ids, NUL-terminated */
    int32_t *slots;                 /* open-addressing table of rows, -1 = empty */
    uint32_t nslots;                /* power of two, >= 2 * cap */
    double *gram;                   /* k x k, upper triangle */
    uint8_t *dirty;                 /* one flag per chunk of cap */
    int meta_dirty;
    int64_t rejected;
    float *a;    /* scratch: the fold-in's k x k system */
    float *rows; /* scratch: VS__MF_MAX_FOLD x k scaled rows */
    float *rhs;  /* scratch: k */
    double *yt;  /* scratch: eALS's gathered rows, k x VS__MF_MAX_FOLD, transposed */
    const struct vs__mf_kernels *kern; /* the eALS sweep and Gram update for this CPU */
    int score_threads;                 /* OpenBLAS threads for a large catalogue's scores */
};

uint64_t vs_mf_hash(const char *s, uint64_t seed)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (seed * 0x9e3779b97f4a7c15ull);
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

struct vs_mf *vs_mf_new(const struct vs_mf_params *p, char *errbuf, size_t errlen)
{
    if (p->k < 1 || p->k > VS_MF_MAX_K) {
        snprintf(errbuf, errlen, "factor dimension k=%d: expected 1..%d", p->k, VS_MF_MAX_K);
        return NULL;
    }
    if (!(p->lambda > 0) || !isfinite(p->lambda) || !(p->alpha >= 0) || !isfinite(p->alpha) ||
        !(p->item_inertia > 0) || !isfinite(p->item_inertia) || !(p->init_scale >= 0) ||
        !isfinite(p->init_scale) || p->max_items < 1) {
        snprintf(errbuf, errlen,
                 "matrix factorization: lambda and item inertia must be > 0, alpha and init "
                 "scale >= 0 (all finite), max items >= 1");
        return NULL;
    }
    /* Every product here is k x k or k x items with k <= 64, run on the loop thread between
     * two events: OpenBLAS's worker threads would cost far more in wake-ups and sched_yield
     * spinning than they save, and they would compete with librdkafka's threads for the cores. */
    openblas_set_num_threads(1);
    struct vs_mf *mf = calloc(1, sizeof(*mf));
    if (!mf) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    mf->p = *p;
    mf->k = p->k;
    size_t kk = (size_t)p->k * (size_t)p->k;
    mf->gram = calloc(kk, sizeof(double));
    mf->a = calloc(kk, sizeof(float)); /* the k x k system of the fold-in */
    mf->rows = calloc((size_t)VS__MF_MAX_FOLD * (size_t)p->k, sizeof(float));
    mf->rhs = calloc((size_t)p->k, sizeof(float));
    mf->yt = calloc((size_t)VS__MF_MAX_FOLD * (size_t)p->k, sizeof(double));
    mf->kern = vs__mf_kernels();
    mf->nslots = 16;
    mf->slots = malloc(mf->nslots * sizeof(int32_t));
    if (!mf->gram || !mf->a || !mf->rows || !mf->rhs || !mf->yt || !mf->slots) {
        vs_mf_free(mf);
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    memset(mf->slots, 0xff, mf->nslots * sizeof(int32_t));
    mf->meta_dirty = 1;
    return mf;
}

void vs_mf_free(struct vs_mf *mf)
{
    if (!mf) {
        return;
    }
    free(mf->y);
    free(mf->ids);
    free(mf->slots);
    free(mf->gram);
    free(mf->dirty);
    free(mf->a);
    free(mf->rows);
    free(mf->rhs);
    free(mf->yt);
    free(mf);
}

int vs_mf_k(const struct vs_mf *mf)
{
    return mf->k;
}

int32_t vs_mf_items(const struct vs_mf *mf)
{
    return mf->n;
}

const float *vs_mf_row(const struct vs_mf *mf, int32_t item)
{
    return mf->y + (size_t)item * (size_t)mf->k;
}

const char *vs_mf_item_id(const struct vs_mf *mf, int32_t item)
{
    return mf->ids[item];
}

const double *vs_mf_gram(const struct vs_mf *mf)
{
    return mf->gram;
}

int64_t vs_mf_rejected(const struct vs_mf *mf)
{
    return mf->rejected;
}

int32_t vs_mf_find(const struct vs_mf *mf, const char *id)
{
    uint32_t mask = mf->nslots - 1;
    for (uint32_t s = (uint32_t)vs_mf_hash(id, 0) & mask;; s = (s + 1) & mask) {
        int32_t r = mf->slots[s];
        if (r < 0) {
            return -1;
        }
        if (strcmp(mf->ids[r], id) == 0) {
            return r;
        }
    }
}

static void slot_insert(int32_t *slots, uint32_t nslots, const char *id, int32_t row)
{
    uint32_t mask = nslots - 1;
    uint32_t s = (uint32_t)vs_mf_hash(id, 0) & mask;
    while (slots[s] >= 0) {
        s = (s + 1) & mask;
    }
    slots[s] = row;
}

/* Make room for at least want rows: grows Y, the ids, the dirty flags and the hash table
 * geometrically, so the cost per new item stays constant on average. */
static int reserve(struct vs_mf *mf, int32_t want)
{
    if (want <= mf->cap) {
        return 0;
    }
    int32_t cap = mf->cap ? mf->cap : 1024;
    while (cap < want) {
        cap *= 2;
    }
    size_t k = (size_t)mf->k;
    float *y = realloc(mf->y, (size_t)cap * k * sizeof(float));
    if (!y) {
        return VS_ENOMEM;
    }
    mf->y = y;
    char(*ids)[VS_MF_ITEM_ID_MAX] = realloc(mf->ids, (size_t)cap * VS_MF_ITEM_ID_MAX);
    if (!ids) {
        return VS_ENOMEM;
    }
    mf->ids = ids;
    size_t old_chunks = ((size_t)mf->cap + VS_MF_CHUNK_ROWS - 1) / VS_MF_CHUNK_ROWS;
    size_t chunks = ((size_t)cap + VS_MF_CHUNK_ROWS - 1) / VS_MF_CHUNK_ROWS;
    uint8_t *dirty = realloc(mf->dirty, chunks);
    if (!dirty) {
        return VS_ENOMEM;
    }
    memset(dirty + old_chunks, 0, chunks - old_chunks);
    mf->dirty = dirty;
    uint32_t nslots = mf->nslots;
    while (nslots < 2u * (uint32_t)cap) {
        nslots *= 2;
    }
    if (nslots != mf->nslots) {
        int32_t *slots = malloc(nslots * sizeof(int32_t));
        if (!slots) {
            return VS_ENOMEM;
        }
        memset(slots, 0xff, nslots * sizeof(int32_t));
        for (int32_t r = 0; r < mf->n; r++) {
            slot_insert(slots, nslots, mf->ids[r], r);
        }
        free(mf->slots);
        mf->slots = slots;
        mf->nslots = nslots;
    }
    mf->cap = cap;
    return 0;
}

static void gram_replace(struct vs_mf *mf, const float *old, const float *new_row)
{
    mf->kern->gram_replace(mf->gram, mf->k, old, new_row);
}

static void mark_dirty(struct vs_mf *mf, int32_t item)
{
    mf->dirty[item / VS_MF_CHUNK_ROWS] = 1;
    mf->meta_dirty = 1;
}

int32_t vs_mf_intern(struct vs_mf *mf, const char *id, int *created)
{
    if (created) {
        *created = 0;
    }
    if (!id || !*id) {
        return VS_EINVAL;
    }
    if (strlen(id) >= VS_MF_ITEM_ID_MAX) {
        return VS_ETOOBIG;
    }
    int32_t r = vs_mf_find(mf, id);
    if (r >= 0) {
        return r;
    }
    if (mf->n >= mf->p.max_items) {
        return VS_EFULL;
    }
    int rc = reserve(mf, mf->n + 1);
    if (rc < 0) {
        return rc;
    }
    r = mf->n++;
    memset(mf->ids[r], 0, VS_MF_ITEM_ID_MAX);
    memcpy(mf->ids[r], id, strlen(id));
    slot_insert(mf->slots, mf->nslots, id, r);
    /* A uniform draw with the requested standard deviation, seeded by id and model seed only:
     * the same item gets the same first row in every run. */
    uint64_t state = vs_mf_hash(id, mf->p.seed);
    float *row = mf->y + (size_t)r * (size_t)mf->k;
    float zero[VS_MF_MAX_K] = {0};
    float half = mf->p.init_scale * 1.7320508f;
    for (int f = 0; f < mf->k; f++) {
        double u = (double)(splitmix64(&state) >> 11) * (1.0 / 9007199254740992.0);
        row[f] = (float)((2.0 * u - 1.0) * half);
    }
    gram_replace(mf, zero, row);
    mark_dirty(mf, r);
    if (created) {
        *created = 1;
    }
    return r;
}

void vs_mf_prefetch(const struct vs_mf *mf, const int32_t *items, int n)
{
    size_t bytes = (size_t)mf->k * sizeof(float);
    for (int j = 0; j < n; j++) {
        if (items[j] >= 0 && items[j] < mf->n) {
            const char *row = (const char *)(mf->y + (size_t)items[j] * (size_t)mf->k);
            for (size_t off = 0; off < bytes; off += 64) {
                __builtin_prefetch(row + off, 0);
            }
        }
    }
}

static int all_finite(const float *v, int n)
{
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i]) || fabsf(v[i]) > VS_MF_MAX_ABS) {
            return 0;
        }
    }
    return 1;
}

/*
 * The system is assembled in column-major upper storage: the Gram cache (upper triangle of a
 * row-major matrix is the lower triangle of the column-major one, so it is mirrored while
 * converted to float), plus lambda on the diagonal, plus one cblas_ssyrk of the customer's
 * rows scaled by sqrt(c - 1). The right-hand side is sum c_i y_i. spotf2_ then factors in place
 * and two cblas_strsv solve (the unblocked factorization: at k 64 it takes two thirds of the
 * time of sposv_, recommend_bench's cholesky_us).
 */
int vs_mf_fold_in(struct vs_mf *mf, const int32_t *items, const float *weight, int n, float *x)
{
    int k = mf->k;
    if (n <= 0) {
        memset(x, 0, (size_t)k * sizeof(float));
        return 0;
    }
    if (n > VS__MF_MAX_FOLD) {
        n = VS__MF_MAX_FOLD;
    }
    float *a = mf->a, *b = mf->rhs, *rows = mf->rows;
    memset(b, 0, (size_t)k * sizeof(float));
    int m = 0;
    for (int j = 0; j < n; j++) {
        float w = weight[j];
        if (!isfinite(w) || items[j] < 0 || items[j] >= mf->n) {
            mf->rejected++;
            return VS_EINVAL;
        }
        if (!(w > 0)) {
            continue;
        }
        float c = 1.0f + mf->p.alpha * w;
        const float *y = mf->y + (size_t)items[j] * (size_t)k;
        cblas_saxpy(k, c, y, 1, b, 1);
        float s = sqrtf(c - 1.0f);
        for (int f = 0; f < k; f++) {
            rows[(size_t)m * (size_t)k + (size_t)f] = s * y[f];
        }
        m++;
    }
    if (m == 0) {
        memset(x, 0, (size_t)k * sizeof(float));
        return 0;
    }
    const double *g = mf->gram;
    for (int i = 0; i < k; i++) {
        for (int j = i; j < k; j++) {
            /* row-major upper (i, j) -> column-major upper element (i, j) at a[j * k + i] */
            a[(size_t)j * (size_t)k + (size_t)i] = (float)g[(size_t)i * (size_t)k + (size_t)j];
        }
        a[(size_t)i * (size_t)k + (size_t)i] += mf->p.lambda;
    }
    /* rows is m x k row-major = k x m column-major: C += rows^T-as-columns products. */
    cblas_ssyrk(CblasColMajor, CblasUpper, CblasNoTrans, k, m, 1.0f, rows, k, 1.0f, a, k);
    int kk = k, info = 0;
    spotf2_("U", &kk, a, &kk, &info);
    if (info == 0) {
        cblas_strsv(CblasColMajor, CblasUpper, CblasTrans, CblasNonUnit, k, a, k, b, 1);
        cblas_strsv(CblasColMajor, CblasUpper, CblasNoTrans, CblasNonUnit, k, a, k, b, 1);
    }
    if (info != 0 || !all_finite(b, k)) {
        mf->rejected++;
        return VS_EINVAL;
    }
    memcpy(x, b, (size_t)k * sizeof(float));
    return 0;
}

/*
 * eALS (He, Zhang, Kan & Chua, SIGIR 2016) for one customer: coordinate descent on the same
 * objective as the fold-in, warm-started from the customer's current vector. Coordinate f has
 * the closed form
 *   x_f = (sum_i [c_i - (c_i - 1) r_i^f] y_if - sum_{g != f} G_fg x_g)
 *         / (sum_i (c_i - 1) y_if^2 + G_ff + lambda)
 * where r_i^f is the prediction for item i without coordinate f. One sweep costs k (k + n)
 * multiply-adds and no factorization, against k^3 / 3 for the Cholesky of the exact solve.
 *
 * The customer's rows are gathered transposed (coordinate f of every item contiguous, padded
 * with zero rows to a multiple of four, which add nothing to any sum). What does not depend on
 * x is computed once per call: b_f = sum_i c_i y_if, D_f = sum_i (c_i - 1) y_if^2 and the
 * reciprocal of the diagonal G_ff + lambda + D_f, so that with q_i = (c_i - 1) (y_i . x) the
 * update reads
 *   x_f = (b_f - (G x)_f + G_ff x_f + D_f x_f - sum_i q_i y_if) / (G_ff + lambda + D_f)
 * and a coordinate costs one dot product and one update over the items, no division. G x is
 * computed at the start of each sweep; within a sweep a change of coordinate f is carried only
 * into the later coordinates of G x, the ones the sweep still reads, and those are row f of the
 * stored upper triangle: contiguous, half the work of the whole column.
 */
int vs_mf_eals(struct vs_mf *mf, const int32_t *items, const float *weight, int n, float *x,
               int sweeps)
{
    int k = mf->k;
    if (n > VS__MF_MAX_FOLD) {
        n = VS__MF_MAX_FOLD;
    }
    if (!all_finite(x, k)) {
        mf->rejected++;
        return VS_EINVAL;
    }
    double c[VS__MF_MAX_FOLD], am[VS__MF_MAX_FOLD], q[VS__MF_MAX_FOLD], cur[VS_MF_MAX_K];
    int32_t idx[VS__MF_MAX_FOLD];
    int m = 0;
    for (int j = 0; j < n; j++) {
        if (!isfinite(weight[j]) || items[j] < 0 || items[j] >= mf->n) {
            mf->rejected++;
            return VS_EINVAL;
        }
        if (weight[j] > 0) {
            c[m] = 1.0 + (double)mf->p.alpha * (double)weight[j];
            am[m] = c[m] - 1.0;
            idx[m++] = items[j];
        }
    }
    int mp = (m + 3) & ~3;
    for (int j = m; j < mp; j++) {
        c[j] = am[j] = 0;
    }
    for (int f = 0; f < k; f++) {
        cur[f] = x[f];
    }
    struct vs__eals_job job = {
        .k = k,
        .m = m,
        .mp = mp,
        .sweeps = sweeps,
        .y = mf->y,
        .idx = idx,
        .c = c,
        .am = am,
        .gram = mf->gram,
        .lambda = mf->p.lambda,
        .yt = mf->yt,
        .q = q,
        .cur = cur,
    };
    mf->kern->eals(&job);
    float out[VS_MF_MAX_K];
    for (int f = 0; f < k; f++) {
        out[f] = (float)cur[f];
    }
    if (!all_finite(out, k)) {
        mf->rejected++;
        return VS_EINVAL;
    }
    memcpy(x, out, (size_t)k * sizeof(float));
    return 0;
}

int vs_mf_update_item(struct vs_mf *mf, int32_t item, const float *x, float w, float p)
{
    int k = mf->k;
    if (item < 0 || item >= mf->n || !isfinite(w) || !isfinite(p) || !all_finite(x, k)) {
        mf->rejected++;
        return VS_EINVAL;
    }
    float *y = mf->y + (size_t)item * (size_t)k;
    float c = 1.0f + mf->p.alpha * fabsf(w);
    double xy = 0, xx = 0;
    for (int f = 0; f < k; f++) {
        xy += (double)x[f] * (double)y[f];
        xx += (double)x[f] * (double)x[f];
    }
    double step = (double)c * ((double)p - xy) / ((double)mf->p.item_inertia + (double)c * xx);
    float next[VS_MF_MAX_K];
    for (int f = 0; f < k; f++) {
        next[f] = (float)((double)y[f] + step * (double)x[f]);
    }
    if (!all_finite(next, k)) {
        mf->rejected++;
        return VS_EINVAL;
    }
    gram_replace(mf, y, next);
    memcpy(y, next, (size_t)k * sizeof(float));
    mark_dirty(mf, item);
    return 0;
}

int vs_mf_add_rows(struct vs_mf *mf, const float *delta, int32_t n)
{
    size_t k = (size_t)mf->k;
    if (n < 0 || n > mf->n) {
        mf->rejected++;
        return VS_EINVAL;
    }
    for (size_t i = 0; i < (size_t)n * k; i++) {
        float v = mf->y[i] + delta[i];
        if (!isfinite(delta[i]) || !isfinite(v) || fabsf(v) > VS_MF_MAX_ABS) {
            mf->rejected++;
            return VS_EINVAL;
        }
    }
    for (int32_t r = 0; r < n; r++) {
        int changed = 0;
        for (size_t f = 0; f < k; f++) {
            changed |= delta[(size_t)r * k + f] != 0.0f;
            mf->y[(size_t)r * k + f] += delta[(size_t)r * k + f];
        }
        if (changed) {
            mark_dirty(mf, r);
        }
    }
    vs_mf_gram_recompute(mf, mf->gram);
    mf->meta_dirty = 1;
    return 0;
}

void vs_mf_set_score_threads(struct vs_mf *mf, int threads)
{
    mf->score_threads = threads > 1 ? threads : 1;
}

void vs_mf_scores(const struct vs_mf *mf, const float *x, float alpha, float *scores)
{
    if (mf->n == 0) {
        return;
    }
    int threaded = mf->score_threads > 1 && (size_t)mf->n * (size_t)mf->k >= VS_MF_THREADED_FLOATS;
    if (threaded) {
        openblas_set_num_threads(mf->score_threads);
    }
    cblas_sgemv(CblasRowMajor, CblasNoTrans, mf->n, mf->k, alpha, mf->y, mf->k, x, 1, 0.0f, scores,
                1);
    if (threaded) {
        openblas_set_num_threads(1);
    }
}

void vs_mf_gram_recompute(const struct vs_mf *mf, double *out)
{
    size_t k = (size_t)mf->k;
    memset(out, 0, k * k * sizeof(double));
    double *buf = malloc((size_t)VS_MF_CHUNK_ROWS * k * sizeof(double));
    if (!buf) {
        return;
    }
    for (int32_t r0 = 0; r0 < mf->n; r0 += VS_MF_CHUNK_ROWS) {
        int32_t m = mf->n - r0 < VS_MF_CHUNK_ROWS ? mf->n - r0 : VS_MF_CHUNK_ROWS;
        for (size_t i = 0; i < (size_t)m * k; i++) {
            buf[i] = mf->y[(size_t)r0 * k + i];
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, mf->k, m, 1.0, buf, mf->k, 1.0, out,
                    mf->k);
    }
    free(buf);
}

/* ==== Checkpoint ==== */

int32_t vs_mf_chunks(const struct vs_mf *mf)
{
    return (mf->n + VS_MF_CHUNK_ROWS - 1) / VS_MF_CHUNK_ROWS;
}

int32_t vs_mf_next_dirty(const struct vs_mf *mf, int32_t from)
{
    int32_t chunks = vs_mf_chunks(mf);
    for (int32_t c = from < 0 ? 0 : from; c < chunks; c++) {
        if (mf->dirty[c]) {
            return c;
        }
    }
    return -1;
}

int vs_mf_meta_dirty(const struct vs_mf *mf)
{
    return mf->meta_dirty;
}

void vs_mf_clear_dirty(struct vs_mf *mf)
{
    if (mf->dirty) {
        memset(mf->dirty, 0, ((size_t)mf->cap + VS_MF_CHUNK_ROWS - 1) / VS_MF_CHUNK_ROWS);
    }
    mf->meta_dirty = 0;
}

struct wbuf {
    uint8_t *p;
    size_t cap, len;
};

static void put(struct wbuf *w, const void *v, size_t n)
{
    if (w->len + n <= w->cap) {
        memcpy(w->p + w->len, v, n);
    }
    w->len += n;
}

static void put_u32(struct wbuf *w, uint32_t v)
{
    put(w, &v, sizeof(v));
}

struct rbuf {
    const uint8_t *p;
    size_t len, off;
};

static int get(struct rbuf *r, void *v, size_t n)
{
    if (r->len - r->off < n) {
        return VS_ECORRUPT;
    }
    memcpy(v, r->p + r->off, n);
    r->off += n;
    return 0;
}

size_t vs_mf_encode_meta(const struct vs_mf *mf, void *buf, size_t cap)
{
    struct wbuf w = {buf, cap, 0};
    put_u32(&w, VS__MF_MAGIC_META);
    put_u32(&w, VS__MF_VERSION);
    put_u32(&w, (uint32_t)mf->k);
    put_u32(&w, (uint32_t)mf->n);
    put(&w, &mf->rejected, sizeof(mf->rejected));
    put(&w, mf->gram, (size_t)mf->k * (size_t)mf->k * sizeof(double));
    return w.len;
}

size_t vs_mf_encode_chunk(const struct vs_mf *mf, int32_t chunk, void *buf, size_t cap)
{
    struct wbuf w = {buf, cap, 0};
    int32_t r0 = chunk * VS_MF_CHUNK_ROWS;
    int32_t r1 = r0 + VS_MF_CHUNK_ROWS < mf->n ? r0 + VS_MF_CHUNK_ROWS : mf->n;
    if (r1 < r0) {
        r1 = r0;
    }
    put_u32(&w, VS__MF_MAGIC_CHUNK);
    put_u32(&w, VS__MF_VERSION);
    put_u32(&w, (uint32_t)chunk);
    put_u32(&w, (uint32_t)(r1 - r0));
    for (int32_t r = r0; r < r1; r++) {
        uint8_t len = (uint8_t)strlen(mf->ids[r]);
        put(&w, &len, 1);
        put(&w, mf->ids[r], len);
        put(&w, mf->y + (size_t)r * (size_t)mf->k, (size_t)mf->k * sizeof(float));
    }
    return w.len;
}

int vs_mf_decode_meta(struct vs_mf *mf, const void *buf, size_t len)
{
    struct rbuf r = {buf, len, 0};
    uint32_t magic, version, k, n;
    int64_t rejected;
    if (get(&r, &magic, 4) || get(&r, &version, 4) || magic != VS__MF_MAGIC_META) {
        return VS_ECORRUPT;
    }
    if (version != VS__MF_VERSION) {
        return VS_EVERSION;
    }
    if (get(&r, &k, 4) || get(&r, &n, 4) || get(&r, &rejected, 8)) {
        return VS_ECORRUPT;
    }
    if ((int)k != mf->k) {
        return VS_ECONFIG;
    }
    size_t kk = (size_t)k * k;
    if (r.len - r.off != kk * sizeof(double) || n > (uint32_t)mf->p.max_items) {
        return VS_ECORRUPT;
    }
    memcpy(mf->gram, r.p + r.off, kk * sizeof(double));
    for (size_t i = 0; i < kk; i++) {
        if (!isfinite(mf->gram[i])) {
            return VS_ECORRUPT;
        }
    }
    int rc = reserve(mf, (int32_t)n);
    if (rc < 0) {
        return rc;
    }
    /* Rows arrive with their chunks; until then they are empty ids and zero factors. */
    memset(mf->slots, 0xff, mf->nslots * sizeof(int32_t));
    if (n > 0) { /* an empty model has no rows allocated yet */
        memset(mf->y, 0, (size_t)n * (size_t)k * sizeof(float));
        memset(mf->ids, 0, (size_t)n * VS_MF_ITEM_ID_MAX);
    }
    mf->n = (int32_t)n;
    mf->rejected = rejected;
    vs_mf_clear_dirty(mf);
    return 0;
}

int vs_mf_decode_chunk(struct vs_mf *mf, int32_t chunk, const void *buf, size_t len)
{
    struct rbuf r = {buf, len, 0};
    uint32_t magic, version, c, count;
    if (get(&r, &magic, 4) || get(&r, &version, 4) || magic != VS__MF_MAGIC_CHUNK) {
        return VS_ECORRUPT;
    }
    if (version != VS__MF_VERSION) {
        return VS_EVERSION;
    }
    if (get(&r, &c, 4) || get(&r, &count, 4) || c != (uint32_t)chunk) {
        return VS_ECORRUPT;
    }
    int64_t r0 = (int64_t)chunk * VS_MF_CHUNK_ROWS;
    if (chunk < 0 || count > VS_MF_CHUNK_ROWS || r0 + count > mf->n) {
        return VS_ECORRUPT;
    }
    size_t k = (size_t)mf->k;
    for (int32_t row = (int32_t)r0; row < (int32_t)(r0 + count); row++) {
        uint8_t idlen;
        if (get(&r, &idlen, 1) || idlen == 0 || idlen >= VS_MF_ITEM_ID_MAX) {
            return VS_ECORRUPT;
        }
        char id[VS_MF_ITEM_ID_MAX] = {0};
        float *y = mf->y + (size_t)row * k;
        if (get(&r, id, idlen) || memchr(id, 0, idlen) || get(&r, y, k * sizeof(float))) {
            return VS_ECORRUPT;
        }
        if (!all_finite(y, (int)k) || vs_mf_find(mf, id) >= 0) {
            return VS_ECORRUPT;
        }
        memcpy(mf->ids[row], id, VS_MF_ITEM_ID_MAX);
        slot_insert(mf->slots, mf->nslots, id, row);
    }
    return r.off == r.len ? 0 : VS_ECORRUPT;
}
