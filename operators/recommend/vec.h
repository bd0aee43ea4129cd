/*
 * Sixteen-byte vectors of floats for the recommender's inner loops.
 *
 * The build is -O2 for a baseline x86-64, where the vectorizer leaves loops of a run-time
 * length scalar; the loops that make up the cost of a list (the passes over the catalogue) are
 * written with the compiler's vector extension instead, which gcc and clang both have. Sixteen
 * bytes is the SSE2 register every x86-64 has: a wider type would change how vectors are passed
 * between functions (the compiler warns). Loads and stores go through memcpy, so no alignment is
 * assumed; they compile to single unaligned moves. The eALS sweep and the Gram update have
 * their own wider vectors, in a file built twice (mf_kernels.h).
 */
#ifndef VS_RECOMMEND_VEC_H
#define VS_RECOMMEND_VEC_H

#include <string.h>

typedef float vs__v4sf __attribute__((vector_size(16)));

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

#endif
