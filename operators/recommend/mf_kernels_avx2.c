/*
 * mf_kernels.c compiled again with AVX2 (CMakeLists.txt sets -mavx2 on this file only, on
 * x86), its functions named with an _avx2 suffix. Elsewhere this file is empty and the
 * baseline build is the only one.
 */
#if defined(__x86_64__) || defined(__i386__)
#define VS__MF_KERNELS_AVX2
#define VS__K(name) name##_avx2
#include "mf_kernels.c"
#else
typedef int vs__mf_kernels_avx2_unused; /* ISO C wants a translation unit to declare something */
#endif
