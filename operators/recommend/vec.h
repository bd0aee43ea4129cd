/*
 * Sixteen-byte vectors of floats and doubles for the recommender's inner loops.
 *
 * The build is -O2 for a baseline x86-64, where the vectorizer leaves loops of a run-time
 * length scalar; the loops that make up the cost of an interaction or a list (the eALS sweep,
 * the Gram update, the passes over the catalogue) are written with the compiler's vector
 * extension instead, which gcc and clang both have. Sixteen bytes is the SSE2 register every
 * x86-64 has: a wider type would change how vectors are passed between functions (the compiler
 * warns). Loads and stores go through memcpy, so no alignment is assumed; they compile to
 * single unaligned moves.
 */
#ifndef VS_RECOMMEND_VEC_H
#define VS_RECOMMEND_VEC_H

#include <string.h>

typedef float vs__v4sf __attribute__((vector_size(16)));
typedef double vs__v2d __attribute__((vector_size(16)));

static inline vs__v4sf vs__ld4f(const float *p)
{
    vs__v4sf v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline void vs__st4f(float *p, vs__v4sf v)
{
    memcpy(p, &v, sizeof(v));
}

static inline vs__v2d vs__ld2d(const double *p)
{
    vs__v2d v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline void vs__st2d(double *p, vs__v2d v)
{
    memcpy(p, &v, sizeof(v));
}

#endif
