/*
 * The two loops that make up most of the cost of an interaction: the eALS sweep over a
 * customer's coordinates and the rank-2 update that keeps the Gram cache equal to YtY when an
 * item row changes.
 *
 * They are written once (mf_kernels.c) on vectors of four doubles and compiled twice: for the
 * baseline x86-64, where each vector operation becomes two SSE2 ones, and with AVX2
 * (mf_kernels_avx2.c), where it is one. vs__mf_kernels() picks the AVX2 build when the CPU has
 * it. Neither build may contract a multiply and an add (AVX2 does not include FMA), and every
 * sum is added up in the same order in both, so the two give the same bits: a model, a list or
 * a checkpoint does not depend on the machine that computed it (test_mf checks it).
 */
#ifndef VS_RECOMMEND_MF_KERNELS_H
#define VS_RECOMMEND_MF_KERNELS_H

#include <stdint.h>

/* One customer's eALS solve, in the arrays vs_mf_eals prepares. */
struct vs__eals_job {
    int k;              /* factor dimension */
    int m;              /* items with a positive weight */
    int mp;             /* m rounded up to four; c and am are zero beyond m */
    int sweeps;         /* passes over the coordinates */
    const float *y;     /* the item factors, row-major */
    const int32_t *idx; /* the m items' rows */
    const double *c;    /* confidences 1 + alpha w, mp */
    const double *am;   /* c - 1, mp */
    const double *gram; /* k x k, upper triangle */
    double lambda;
    double *yt;  /* scratch, k x mp: the items' factors, transposed */
    double *q;   /* scratch, mp */
    double *cur; /* in: the customer's factors; out: after the sweeps */
};

struct vs__mf_kernels {
    void (*eals)(const struct vs__eals_job *job);
    /* gram (k x k, upper triangle) += new new^T - old old^T */
    void (*gram_replace)(double *gram, int k, const float *old, const float *new_row);
};

void vs__mf_eals(const struct vs__eals_job *job);
void vs__mf_gram_replace(double *gram, int k, const float *old, const float *new_row);
void vs__mf_eals_avx2(const struct vs__eals_job *job);
void vs__mf_gram_replace_avx2(double *gram, int k, const float *old, const float *new_row);

/* The best build for this CPU. */
const struct vs__mf_kernels *vs__mf_kernels(void);
/* Both builds, for tests: [0] baseline, [1] AVX2 or NULL when the CPU lacks it. */
const struct vs__mf_kernels *vs__mf_kernels_variant(int which);

#endif
