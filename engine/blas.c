/*
 * OpenBLAS's kernels for this CPU (see blas.h).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "blas.h"
#include "log.h"

/* The core types OpenBLAS falls back to, or picks on CPUs before AVX: none is a reason to keep
 * the generic kernels on a CPU that has AVX. */
static const char *const generic_cores[] = {
    "Prescott",  "Katmai",     "Coppermine", "Northwood", "Banias",  "Core2",
    "Penryn",    "Dunnington", "Nehalem",    "Atom",      "Opteron", "Opteron(SSE3)",
    "Barcelona", "Bobcat",     "Nano",       "Unknown",   NULL,
};

const char *vs__blas_better_core(const char *chosen, const struct vs__cpu_isa *isa)
{
    if (!chosen) {
        return NULL;
    }
    int generic = 0;
    for (int i = 0; generic_cores[i]; i++) {
        if (!strcmp(chosen, generic_cores[i])) {
            generic = 1;
        }
    }
    if (!generic) {
        return NULL;
    }
    return isa->avx512 ? "SkylakeX" : isa->avx2 ? "Haswell" : isa->avx ? "Sandybridge" : NULL;
}

void vs__cpu_isa_detect(struct vs__cpu_isa *isa)
{
    memset(isa, 0, sizeof(*isa));
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    isa->avx = __builtin_cpu_supports("avx");
    isa->avx2 = isa->avx && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    isa->avx512 = isa->avx2 && __builtin_cpu_supports("avx512f") &&
                  __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
}

void vs__blas_kernels_check(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE")) {
        return;
    }
    struct vs__cpu_isa isa;
    vs__cpu_isa_detect(&isa);
    const char *chosen = openblas_get_corename();
    const char *want = vs__blas_better_core(chosen, &isa);
    if (!want) {
        return;
    }
    vs_log(VS_LOG_DEBUG, "OpenBLAS chose its %s kernels on this CPU: restarting with %s", chosen,
           want);
    setenv("OPENBLAS_CORETYPE", want, 1);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE");
}
