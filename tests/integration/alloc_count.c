/*
 * A counting allocator for tests/integration/test_allocations.sh, preloaded into the engine
 * (LD_PRELOAD). It counts the heap allocations made on the process's main thread (the event
 * loop's) and charges each to the code that asked for it: the first frame of the call stack
 * outside glibc, libstdc++, libgcc and this library, classed as the valuestream binary, Avro
 * C, librdkafka, RocksDB or anything else. At exit it writes one "class count" line per class
 * to the file named by VS_ALLOC_OUT.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

enum cls { C_SKIP, C_ENGINE, C_AVRO, C_RDKAFKA, C_ROCKSDB, C_OTHER, C_N };
static const char *const names[C_N] = {"unknown", "engine", "avro", "rdkafka", "rocksdb", "other"};
static long counts[C_N];
static __thread int inside;
static char exe[4096];

/* Frame address -> class, cached: the call sites are few, dladdr is not cheap. */
#define CACHE 8192
static uintptr_t cache_pc[CACHE];
static unsigned char cache_cls[CACHE];

static enum cls classify(uintptr_t pc)
{
    size_t h = (pc >> 3) * 0x9E3779B97F4A7C15u >> 51; /* 13 bits */
    for (size_t k = 0; k < CACHE; k++) {
        size_t s = (h + k) & (CACHE - 1);
        if (cache_pc[s] == pc) {
            return (enum cls)cache_cls[s];
        }
        if (cache_pc[s] == 0) {
            Dl_info di;
            enum cls c = C_OTHER;
            const char *f = dladdr((void *)pc, &di) && di.dli_fname ? di.dli_fname : "";
            if (strstr(f, "libc.so") || strstr(f, "libstdc++") || strstr(f, "libgcc") ||
                strstr(f, "alloc_count")) {
                c = C_SKIP;
            } else if (!strcmp(f, exe) || !*f) {
                c = C_ENGINE;
            } else if (strstr(f, "libavro")) {
                c = C_AVRO;
            } else if (strstr(f, "librdkafka")) {
                c = C_RDKAFKA;
            } else if (strstr(f, "librocksdb")) {
                c = C_ROCKSDB;
            }
            cache_pc[s] = pc;
            cache_cls[s] = (unsigned char)c;
            return c;
        }
    }
    return C_OTHER;
}

static void count(void)
{
    if (inside || syscall(SYS_gettid) != getpid()) {
        return;
    }
    inside = 1;
    void *bt[16];
    int n = backtrace(bt, 16);
    enum cls c = C_SKIP;
    for (int i = 1; i < n && c == C_SKIP; i++) {
        c = classify((uintptr_t)bt[i]);
    }
    counts[c]++;
    inside = 0;
}

void *malloc(size_t n)
{
    count();
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    count();
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    count();
    return __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    count();
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    count();
    void *p = __libc_memalign(align, n);
    if (!p) {
        return ENOMEM;
    }
    *out = p;
    return 0;
}

__attribute__((constructor)) static void start(void)
{
    inside = 1;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = 0;
    void *warm[2];
    backtrace(warm, 2); /* loads the unwinder now, not inside a count */
    inside = 0;
}

__attribute__((destructor)) static void finish(void)
{
    const char *path = getenv("VS_ALLOC_OUT");
    inside = 1;
    FILE *f = path ? fopen(path, "w") : NULL;
    if (f) {
        for (int c = 0; c < C_N; c++) {
            fprintf(f, "%s %ld\n", names[c], counts[c]);
        }
        fclose(f);
    }
}
