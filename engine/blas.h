/*
 * OpenBLAS's kernels for this CPU. OpenBLAS picks them when it is loaded, from the CPU's model
 * number; a model newer than its release (Debian 12 ships 0.3.21) gets its generic "Prescott"
 * kernels, without AVX. The recommender's sgemv then takes about four times as long. The engine
 * therefore checks what OpenBLAS chose and, when the CPU can do better, starts itself again
 * with OPENBLAS_CORETYPE naming the kernels its instruction set supports. A user's own
 * OPENBLAS_CORETYPE is always kept.
 */
#ifndef VS_ENGINE_BLAS_H
#define VS_ENGINE_BLAS_H

/* What the CPU's vector instructions allow. */
struct vs__cpu_isa {
    int avx512; /* AVX-512 F, CD, BW, DQ and VL (OpenBLAS's SkylakeX kernels) */
    int avx2;   /* AVX2 and FMA (its Haswell kernels) */
    int avx;    /* AVX (its Sandybridge kernels) */
};

/* The OpenBLAS core type to ask for instead of `chosen` on a CPU with `isa`, or NULL when the
 * choice is not one of the generic pre-AVX kernels or the CPU has nothing better. */
const char *vs__blas_better_core(const char *chosen, const struct vs__cpu_isa *isa);

/* This CPU's instructions. */
void vs__cpu_isa_detect(struct vs__cpu_isa *isa);

/* At the start of main: when OPENBLAS_CORETYPE is unset and OpenBLAS chose generic kernels on a
 * CPU that has better ones, set it and exec this program again with the same argv. Returns
 * only when nothing is to be done or the exec failed (the process goes on with the kernels it
 * has). */
void vs__blas_kernels_check(char **argv);

#endif
