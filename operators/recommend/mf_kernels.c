/*
 * The eALS sweep and the Gram update on vectors of four doubles (mf_kernels.h). This file is
 * compiled as it is for the baseline x86-64 and included by mf_kernels_avx2.c, which compiles
 * it again with AVX2 and a suffix on the names (VS__K).
 *
 * Sums run in four lanes, lane l adding the elements j with j % 4 == l, and the lanes are then
 * added as (l0 + l1) + (l2 + l3): the same order in both builds, and the same as the two
 * two-lane accumulators of a plain SSE2 loop.
 */
#include "mf_kernels.h"

#include <stddef.h>

#include <cblas.h>

#include "mf.h"

#ifndef VS__K
#define VS__K(name) name
#endif

/* Unaligned four-double vectors: loads and stores through this type assume 8-byte alignment. */
typedef double vs__v4d __attribute__((vector_size(32), aligned(8), may_alias));

typedef float vs__v4f __attribute__((vector_size(16), aligned(4), may_alias));

#define LD(p) (*(const vs__v4d *)(const void *)(p))
#define LDF(p) (*(const vs__v4f *)(const void *)(p))
#define ST(p, v) (*(vs__v4d *)(void *)(p) = (v))
#define HSUM(v) (((v)[0] + (v)[1]) + ((v)[2] + (v)[3]))

/* y[0..n) += a * x[0..n) */
static inline void axpy(int n, double a, const double *x, double *y)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        ST(y + i, LD(y + i) + a * LD(x + i));
    }
    for (; i < n; i++) {
        y[i] += a * x[i];
    }
}

/*
 * Add the rank-2 update (new row = old + d): G += m d^T + d m^T with m = old + d/2, which
 * equals new new^T - old old^T exactly in real arithmetic. Only the upper triangle, row by row
 * from the diagonal: cblas_dsyr2 does the same as one BLAS call per row, whose call costs more
 * than the row at k <= 64.
 */
void VS__K(vs__mf_gram_replace)(double *gram, int k, const float *old, const float *new_row)
{
    double m[VS_MF_MAX_K], d[VS_MF_MAX_K];
    for (int f = 0; f < k; f++) {
        d[f] = (double)new_row[f] - (double)old[f];
        m[f] = (double)old[f] + 0.5 * d[f];
    }
    for (int i = 0; i < k; i++) {
        double *row = gram + (size_t)i * (size_t)k;
        double mi = m[i], di = d[i];
        int j = i;
        for (; j + 4 <= k; j += 4) {
            ST(row + j, LD(row + j) + (mi * LD(d + j) + di * LD(m + j)));
        }
        for (; j < k; j++) {
            row[j] += mi * d[j] + di * m[j];
        }
    }
}

/*
 * yt[f * mp + j] = y[idx[j] * k + f], as doubles: the m item rows, transposed. Four rows at a
 * time, four factors of each: four loads and a 4x4 transpose in registers instead of sixteen
 * scalar loads and stores (a scalar loop here was a third of the solve). The values are the
 * same, converted from float exactly.
 */
static void gather_columns(const float *y, const int32_t *idx, int m, int k, int mp, double *yt)
{
    size_t st = (size_t)mp;
    int j = 0;
    for (; j + 4 <= m; j += 4) {
        const float *r0 = y + (size_t)idx[j] * (size_t)k, *r1 = y + (size_t)idx[j + 1] * (size_t)k,
                    *r2 = y + (size_t)idx[j + 2] * (size_t)k,
                    *r3 = y + (size_t)idx[j + 3] * (size_t)k;
        int f = 0;
        for (; f + 4 <= k; f += 4) {
            vs__v4d a = __builtin_convertvector(LDF(r0 + f), vs__v4d);
            vs__v4d b = __builtin_convertvector(LDF(r1 + f), vs__v4d);
            vs__v4d c = __builtin_convertvector(LDF(r2 + f), vs__v4d);
            vs__v4d d = __builtin_convertvector(LDF(r3 + f), vs__v4d);
            vs__v4d ab02 = __builtin_shufflevector(a, b, 0, 4, 2, 6);
            vs__v4d ab13 = __builtin_shufflevector(a, b, 1, 5, 3, 7);
            vs__v4d cd02 = __builtin_shufflevector(c, d, 0, 4, 2, 6);
            vs__v4d cd13 = __builtin_shufflevector(c, d, 1, 5, 3, 7);
            double *out = yt + (size_t)f * st + (size_t)j;
            ST(out, __builtin_shufflevector(ab02, cd02, 0, 1, 4, 5));
            ST(out + st, __builtin_shufflevector(ab13, cd13, 0, 1, 4, 5));
            ST(out + 2 * st, __builtin_shufflevector(ab02, cd02, 2, 3, 6, 7));
            ST(out + 3 * st, __builtin_shufflevector(ab13, cd13, 2, 3, 6, 7));
        }
        for (; f < k; f++) {
            double *out = yt + (size_t)f * st + (size_t)j;
            out[0] = r0[f];
            out[1] = r1[f];
            out[2] = r2[f];
            out[3] = r3[f];
        }
    }
    for (; j < m; j++) {
        const float *r = y + (size_t)idx[j] * (size_t)k;
        for (int f = 0; f < k; f++) {
            yt[(size_t)f * st + (size_t)j] = r[f];
        }
    }
}

/*
 * Element-wise ALS (He et al., SIGIR 2016) for one customer: each coordinate f in turn is set
 * to its exact minimiser with the others held, against the Gram cache for the unobserved part
 * and the customer's m items for the observed part. q holds (c_i - 1) times the current
 * prediction of each item, kept up to date as coordinates move; gx holds G times the customer
 * vector, also kept up to date, so a sweep costs O(k^2 + k m).
 */
void VS__K(vs__mf_eals)(const struct vs__eals_job *e)
{
    int k = e->k, mp = e->mp;
    double b[VS_MF_MAX_K], dd[VS_MF_MAX_K], rden[VS_MF_MAX_K], gx[VS_MF_MAX_K];
    double *yt = e->yt, *q = e->q, *cur = e->cur;
    const double *c = e->c, *am = e->am, *g = e->gram;
    gather_columns(e->y, e->idx, e->m, k, mp, yt);
    for (int j = e->m; j < mp; j++) {
        for (int f = 0; f < k; f++) {
            yt[(size_t)f * (size_t)mp + (size_t)j] = 0;
        }
    }
    for (int j = 0; j < mp; j++) {
        q[j] = 0;
    }
    for (int f = 0; f < k; f++) {
        const double *yf = yt + (size_t)f * (size_t)mp;
        vs__v4d bs = {0, 0, 0, 0}, ds = {0, 0, 0, 0};
        for (int j = 0; j < mp; j += 4) {
            vs__v4d yj = LD(yf + j);
            bs += LD(c + j) * yj;
            ds += LD(am + j) * yj * yj;
        }
        b[f] = HSUM(bs);
        dd[f] = HSUM(ds);
        rden[f] = 1.0 / (g[(size_t)f * (size_t)k + (size_t)f] + e->lambda + dd[f]);
        axpy(mp, cur[f], yf, q); /* the predictions y_i . x, made q_i below */
    }
    for (int j = 0; j < mp; j += 4) {
        ST(q + j, LD(q + j) * LD(am + j));
    }
    for (int sweep = 0; sweep < e->sweeps; sweep++) {
        cblas_dsymv(CblasRowMajor, CblasUpper, k, 1.0, g, k, cur, 1, 0.0, gx, 1);
        for (int f = 0; f < k; f++) {
            const double *yf = yt + (size_t)f * (size_t)mp;
            const double *row = g + (size_t)f * (size_t)k;
            double xf = cur[f];
            vs__v4d s = {0, 0, 0, 0};
            for (int j = 0; j < mp; j += 4) {
                s += LD(q + j) * LD(yf + j);
            }
            double qy = HSUM(s);
            double num = b[f] - (gx[f] - row[f] * xf) + dd[f] * xf - qy;
            double delta = num * rden[f] - xf;
            if (delta == 0) {
                continue;
            }
            for (int j = 0; j < mp; j += 4) {
                ST(q + j, LD(q + j) + delta * LD(am + j) * LD(yf + j));
            }
            axpy(k - f - 1, delta, row + f + 1, gx + f + 1);
            cur[f] += delta;
        }
    }
}

#ifndef VS__MF_KERNELS_AVX2
static const struct vs__mf_kernels baseline = {vs__mf_eals, vs__mf_gram_replace};
#if defined(__x86_64__) || defined(__i386__)
static const struct vs__mf_kernels avx2 = {vs__mf_eals_avx2, vs__mf_gram_replace_avx2};

const struct vs__mf_kernels *vs__mf_kernels_variant(int which)
{
    if (which == 0) {
        return &baseline;
    }
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? &avx2 : NULL;
}
#else
const struct vs__mf_kernels *vs__mf_kernels_variant(int which)
{
    return which == 0 ? &baseline : NULL;
}
#endif

const struct vs__mf_kernels *vs__mf_kernels(void)
{
    const struct vs__mf_kernels *best = vs__mf_kernels_variant(1);
    return best ? best : &baseline;
}
#endif
