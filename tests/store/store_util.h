/*
 * Helpers shared by the store's tests: temporary state directories under /tmp (removed at the
 * end of each test), a deterministic random generator, and capture of stdout/stderr for the
 * command-line tests.
 */
#ifndef VS_TESTS_STORE_UTIL_H
#define VS_TESTS_STORE_UTIL_H

#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline char *tu_tmpdir(void)
{
    char *d = strdup("/tmp/vs-store-test-XXXXXX");
    if (!d || !mkdtemp(d)) {
        perror("mkdtemp");
        abort();
    }
    return d;
}

static inline int tu_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void tu_rmdir(char *dir)
{
    if (dir) {
        nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(dir);
    }
}

/* A path inside dir; the result is malloc'd. */
static inline char *tu_path(const char *dir, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0) {
        abort();
    }
    return p;
}

static inline void tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* xorshift64*: the tests' only source of randomness, seeded by each test. */
static inline uint64_t tu_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* Run fn(arg) with stdout and stderr captured into malloc'd strings. Returns fn's result. */
struct tu_capture {
    char *out, *err;
};

static inline char *tu_slurp(FILE *f)
{
    fflush(f);
    long n = ftell(f);
    char *s = malloc((size_t)n + 1);
    rewind(f);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    return s;
}

static inline int tu_capture_run(int (*fn)(void *), void *arg, struct tu_capture *cap)
{
    FILE *o = tmpfile(), *e = tmpfile();
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    dup2(fileno(o), 1);
    dup2(fileno(e), 2);
    int rc = fn(arg);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    cap->out = tu_slurp(o);
    cap->err = tu_slurp(e);
    fclose(o);
    fclose(e);
    return rc;
}

static inline void tu_capture_free(struct tu_capture *cap)
{
    free(cap->out);
    free(cap->err);
    cap->out = cap->err = NULL;
}

#endif
