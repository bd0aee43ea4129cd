/*
 * Benchmark of the state store (engine/store.c): what the customer cache buys over RocksDB
 * alone, what a customer costs on disk, how fast a store of 1M customers reopens, what a commit
 * costs with and without a WAL fsync, and whether peak memory stays within the cache budget
 * plus a fixed margin whatever the number of customers.
 *
 *   bench_store_bench [--quick] [--dir BASE]
 *
 * (a) Get+Put through the cache (customers drawn with 80% of accesses on 10% of them, the
 *     working set 6x larger than the cache) against RocksDB Get+Put on the same data;
 * (b) bytes per customer on disk for N customers with ~300-byte records of realistic content;
 * (c) time to reopen the store with N customers and read one back (median of 3);
 * (d) peak RSS (VmHWM) for 100k, 1M and 5M customers at a 64 MiB cache, each size in its own
 *     process (the bench re-executes itself): fill, then a random Get+Put workload.
 * The last line of stdout is a JSON object, also written to bench/results/store.json.
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include <valuestream/error.h>

#include "store.h"

#ifndef VS_SOURCE_DIR
#define VS_SOURCE_DIR "."
#endif

/* Three sections of 304 bytes in all, shaped like the operators' (counters, amounts, times,
 * a short list of recent item ids). */
struct value_sec {
    int64_t counts[5];
    int64_t first_seen, last_seen, last_purchase;
    double spend, avg_spend, clv, rfm[3];
    uint32_t purchases, sessions, distinct_items, distinct_categories;
};
struct recommend_sec {
    float user_factors[16];
    uint32_t recent_items[12];
};
struct fraud_sec {
    double amount_mean, amount_m2;
    int64_t last_purchase_ts;
    uint32_t devices[4];
    uint16_t countries[4];
    uint32_t purchases_1h, purchases_24h;
    uint32_t pad[2];
};

static const struct vs__section_desc secs[] = {
    {"value", 1, sizeof(struct value_sec), NULL, 0},
    {"recommend", 1, sizeof(struct recommend_sec), NULL, 0},
    {"fraud", 1, sizeof(struct fraud_sec), NULL, 0},
};
#define NSECS 3

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rnd_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static int user_id(char *buf, size_t len, uint64_t i)
{
    return snprintf(buf, len, "user-%09" PRIu64, i);
}

/* 80% of accesses on 10% of the customers, spread over the id space. */
static uint64_t pick_customer(uint64_t *rnd, uint64_t n)
{
    uint64_t r = rnd_next(rnd);
    uint64_t hot = n / 10 ? n / 10 : 1;
    uint64_t k = (r % 10 < 8) ? (r >> 8) % hot : (r >> 8) % n;
    return k * 2654435761ULL % n;
}

/* Update a customer the way an event would: counters, amounts, times, a recent item. */
static void apply_event(struct vs__customer *c, uint64_t r, int64_t ts)
{
    struct value_sec *v = vs__customer_section(c, 0);
    struct recommend_sec *rs = vs__customer_section(c, 1);
    struct fraud_sec *f = vs__customer_section(c, 2);
    int type = (int)(r % 5);
    v->counts[type]++;
    if (!v->first_seen) {
        v->first_seen = ts;
    }
    v->last_seen = ts;
    if (type == 3) {
        double amount = (double)(r % 20000) / 100;
        v->purchases++;
        v->spend += amount;
        v->avg_spend = v->spend / v->purchases;
        v->last_purchase = ts;
        f->amount_mean += (amount - f->amount_mean) / v->purchases;
        f->last_purchase_ts = ts;
        f->purchases_24h++;
    }
    rs->recent_items[v->counts[0] % 12] = (uint32_t)(r >> 32) % 50000;
    rs->user_factors[r % 16] += 0.01f;
    v->sessions += (r % 17) == 0;
    f->devices[r % 4] = (uint32_t)(r >> 40) % 3;
}

static struct vs__store *open_store(const char *dir, size_t cache, int no_sync)
{
    struct vs__store_options o = {
        .cache_bytes = cache,
        .rocksdb_cache_bytes = (size_t)16 << 20, /* state.rocksdb.cache.mb */
        .create_if_missing = 1,
        .no_sync = no_sync,
    };
    char err[512];
    struct vs__store *st = vs__store_open(dir, secs, NSECS, &o, err, sizeof err);
    if (!st) {
        fprintf(stderr, "store_bench: %s\n", err);
        exit(1);
    }
    return st;
}

static void check(int rc, struct vs__store *st, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "store_bench: %s: %s\n", what, vs__store_last_error(st));
        exit(1);
    }
}

/* Write n customers, committing every 20k (as a 100 ms commit would at 200k events/s). */
static double fill(struct vs__store *st, uint64_t n)
{
    uint64_t rnd = 12345;
    double t0 = now_s();
    for (uint64_t i = 0; i < n; i++) {
        char id[32];
        int len = user_id(id, sizeof id, i);
        struct vs__customer *c;
        int is_new;
        check(vs__store_customer(st, id, (size_t)len, &c, &is_new), st, "customer");
        for (int k = 0; k < 4; k++) {
            apply_event(c, rnd_next(&rnd), 1700000000000 + (int64_t)i);
        }
        if ((i + 1) % 20000 == 0 || vs__store_wants_commit(st)) {
            check(vs__store_commit(st), st, "commit");
        }
    }
    check(vs__store_commit(st), st, "commit");
    return (double)n / (now_s() - t0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct workload {
    double ops_per_s, hit_rate;
    double commit_ms_median, commit_ms_p99;
    int commits;
};

/*
 * Get+Put through the cache: each op loads a customer and updates its sections; a commit every
 * 100 ms (or earlier when the cache asks for one), timed.
 */
static struct workload run_cached(struct vs__store *st, uint64_t n, uint64_t ops)
{
    static double commit_ms[100000];
    int ncommit = 0;
    struct vs__store_stats s0, s1;
    vs__store_stats(st, &s0);
    uint64_t rnd = 777;
    double t0 = now_s(), last_commit = t0;
    for (uint64_t i = 0; i < ops; i++) {
        uint64_t k = pick_customer(&rnd, n);
        char id[32];
        int len = user_id(id, sizeof id, k);
        struct vs__customer *c;
        int is_new;
        check(vs__store_customer(st, id, (size_t)len, &c, &is_new), st, "customer");
        apply_event(c, rnd_next(&rnd), 1800000000000 + (int64_t)i);
        int due = (i & 1023) == 0 && now_s() - last_commit >= 0.1;
        if (due || vs__store_wants_commit(st)) {
            double c0 = now_s();
            check(vs__store_commit(st), st, "commit");
            last_commit = now_s();
            if (ncommit < 100000) {
                commit_ms[ncommit++] = (last_commit - c0) * 1e3;
            }
        }
    }
    double c0 = now_s();
    check(vs__store_commit(st), st, "commit");
    commit_ms[ncommit++] = (now_s() - c0) * 1e3;
    double el = now_s() - t0;
    vs__store_stats(st, &s1);
    struct workload w = {0};
    w.ops_per_s = (double)ops / el;
    uint64_t hits = s1.cache_hits - s0.cache_hits, misses = s1.cache_misses - s0.cache_misses;
    w.hit_rate = hits + misses ? (double)hits / (double)(hits + misses) : 0;
    qsort(commit_ms, (size_t)ncommit, sizeof commit_ms[0], cmp_double);
    w.commit_ms_median = commit_ms[ncommit / 2];
    w.commit_ms_p99 = commit_ms[ncommit * 99 / 100];
    w.commits = ncommit;
    return w;
}

/* The same access pattern on RocksDB alone: Get, change the record, Put (WAL, no fsync). */
static double run_rocksdb_alone(const char *dir, uint64_t n, uint64_t ops)
{
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
    rocksdb_cache_t *cache = rocksdb_cache_create_lru((size_t)32 << 20);
    rocksdb_block_based_options_set_block_cache(t, cache);
    rocksdb_block_based_options_set_filter_policy(t, rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_options_set_block_based_table_factory(o, t);
    rocksdb_options_set_compression(o, rocksdb_lz4_compression);
    const char *names[] = {"default", "customers", "models", "timers", "meta"};
    const rocksdb_options_t *cfo[] = {o, o, o, o, o};
    rocksdb_column_family_handle_t *h[5];
    char *err = NULL;
    rocksdb_t *db = rocksdb_open_column_families(o, dir, 5, names, cfo, h, &err);
    if (!db) {
        fprintf(stderr, "store_bench: rocksdb open: %s\n", err);
        exit(1);
    }
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    uint64_t rnd = 777;
    double t0 = now_s();
    for (uint64_t i = 0; i < ops; i++) {
        uint64_t k = pick_customer(&rnd, n);
        char id[32];
        int len = user_id(id, sizeof id, k);
        size_t vlen = 0;
        char *v = rocksdb_get_cf(db, ro, h[1], id, (size_t)len, &vlen, &err);
        if (err) {
            fprintf(stderr, "store_bench: get: %s\n", err);
            exit(1);
        }
        if (v && vlen > 20) {
            v[vlen - 1]++;
        }
        rocksdb_put_cf(db, wo, h[1], id, (size_t)len, v ? v : "", v ? vlen : 0, &err);
        free(v);
        (void)rnd_next(&rnd);
    }
    double rate = (double)ops / (now_s() - t0);
    for (int i = 0; i < 5; i++) {
        rocksdb_column_family_handle_destroy(h[i]);
    }
    rocksdb_close(db);
    rocksdb_readoptions_destroy(ro);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_options_destroy(o);
    rocksdb_block_based_options_destroy(t);
    rocksdb_cache_destroy(cache);
    return rate;
}

static uint64_t du_total;
static int du_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    if (flag == FTW_F) {
        du_total += (uint64_t)sb->st_size;
    }
    return 0;
}

/* Bytes of the database files (SST, WAL, manifest); RocksDB's LOG files are not state. */
static uint64_t dir_bytes(const char *dir)
{
    du_total = 0;
    nftw(dir, du_one, 16, FTW_PHYS);
    uint64_t total = du_total;
    char path[4400];
    struct stat sb;
    snprintf(path, sizeof path, "%s/LOG", dir);
    if (stat(path, &sb) == 0) {
        total -= (uint64_t)sb.st_size;
    }
    return total;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static long vm_hwm_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
        }
    }
    if (f) {
        fclose(f);
    }
    return kib;
}

/* The child of (d): fill n customers in dir, run a workload, print VmHWM (KiB) and the fill
 * rate. Run through exec, not a bare fork: RocksDB's background threads do not survive fork. */
static int rss_child(const char *dir, uint64_t n, uint64_t ops, size_t cache)
{
    struct vs__store *st = open_store(dir, cache, 1);
    double fr = fill(st, n);
    run_cached(st, n, ops);
    vs__store_close(st);
    printf("%ld %.0f\n", vm_hwm_kib(), fr);
    rm_rf(dir);
    return 0;
}

static long peak_rss(const char *base, uint64_t n, uint64_t ops, size_t cache, double *fill_rate)
{
    char cmd[4600];
    snprintf(cmd, sizeof cmd,
             "/proc/%d/exe --rss-child %s/rss-%" PRIu64 " %" PRIu64 " %" PRIu64 " %zu",
             (int)getpid(), base, n, n, ops, cache);
    FILE *p = popen(cmd, "r");
    long hwm = -1;
    if (!p || fscanf(p, "%ld %lf", &hwm, fill_rate) != 2) {
        hwm = -1;
    }
    if (p && pclose(p) != 0) {
        hwm = -1;
    }
    return hwm;
}

int main(int argc, char **argv)
{
    int quick = 0;
    const char *base_arg = NULL;
    if (argc == 6 && strcmp(argv[1], "--rss-child") == 0) {
        return rss_child(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10),
                         strtoull(argv[5], NULL, 10));
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            base_arg = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: bench_store_bench [--quick] [--dir BASE]\n"
                   "  --quick     smaller sizes (about 30 s)\n"
                   "  --dir BASE  where to create the stores (default: a new dir in /tmp)\n");
            return 0;
        } else {
            fprintf(stderr, "store_bench: unknown argument \"%s\" (see --help)\n", argv[i]);
            return 2;
        }
    }
    char base[4096];
    if (base_arg) {
        snprintf(base, sizeof base, "%s/store-bench-XXXXXX", base_arg);
    } else {
        snprintf(base, sizeof base, "/tmp/store-bench-XXXXXX");
    }
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }

    const size_t cache = (size_t)64 << 20;
    const uint64_t n = quick ? 200000 : 1000000;
    const uint64_t ops = quick ? 1000000 : 4000000;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/main", base);

    /* (b) fill, then bytes per customer once flushed */
    struct vs__store *st = open_store(dir, cache, 0);
    double fill_rate = fill(st, n);
    vs__store_close(st);
    uint64_t bytes = dir_bytes(dir);
    double bytes_per_customer = (double)bytes / (double)n;
    size_t raw_record = 6;
    for (int i = 0; i < NSECS; i++) {
        raw_record += 1 + strlen(secs[i].name) + 8 + secs[i].size;
    }
    printf("fill: %" PRIu64 " customers at %.0f/s; %.1f bytes per customer on disk "
           "(record %zu bytes + id %d)\n",
           n, fill_rate, bytes_per_customer, raw_record, 14);

    /* (c) reopen and read one customer, median of 3 */
    double reopen[3];
    for (int r = 0; r < 3; r++) {
        double t0 = now_s();
        st = open_store(dir, cache, 0);
        struct vs__customer *c;
        int is_new;
        check(vs__store_customer(st, "user-000000042", 14, &c, &is_new), st, "customer");
        reopen[r] = now_s() - t0;
        if (is_new) {
            fprintf(stderr, "store_bench: a stored customer is missing\n");
            return 1;
        }
        if (r < 2) {
            vs__store_close(st);
        }
    }
    qsort(reopen, 3, sizeof reopen[0], cmp_double);
    printf("reopen with %" PRIu64 " customers: %.3f s (median of 3)\n", n, reopen[1]);

    /* (a) through the cache, WAL fsync per commit and without; then RocksDB alone */
    struct workload ws = run_cached(st, n, ops);
    vs__store_close(st);
    st = open_store(dir, cache, 1);
    struct workload wn = run_cached(st, n, ops);
    vs__store_close(st);
    double alone = run_rocksdb_alone(dir, n, ops / 4);
    printf("get+put: cache %.0f/s (hit rate %.3f, fsync commits: median %.2f ms, p99 %.2f ms, "
           "%d commits); no fsync %.0f/s (commit median %.2f ms); RocksDB alone %.0f/s; "
           "speedup %.1fx\n",
           ws.ops_per_s, ws.hit_rate, ws.commit_ms_median, ws.commit_ms_p99, ws.commits,
           wn.ops_per_s, wn.commit_ms_median, alone, ws.ops_per_s / alone);
    rm_rf(dir);

    /* (d) peak RSS per number of customers, each in its own process */
    const uint64_t sizes_full[3] = {100000, 1000000, 5000000};
    const uint64_t sizes_quick[3] = {20000, 100000, 300000};
    const uint64_t *sizes = quick ? sizes_quick : sizes_full;
    long rss[3];
    double rss_fill[3];
    for (int i = 0; i < 3; i++) {
        rss[i] = peak_rss(base, sizes[i], quick ? 200000 : 1000000, cache, &rss_fill[i]);
        printf("peak RSS with %" PRIu64 " customers, 64 MiB cache: %.1f MiB (fill %.0f/s)\n",
               sizes[i], (double)rss[i] / 1024, rss_fill[i]);
    }
    rm_rf(base);

    char json[2048];
    snprintf(json, sizeof json,
             "{\"bench\":\"store\",\"quick\":%s,\"customers\":%" PRIu64 ",\"cache_mib\":64,"
             "\"record_bytes\":%zu,\"fill_per_s\":%.0f,\"bytes_per_customer\":%.1f,"
             "\"reopen_s_median\":%.4f,\"cached_get_put_per_s\":%.0f,\"cache_hit_rate\":%.4f,"
             "\"commit_fsync_ms_median\":%.3f,\"commit_fsync_ms_p99\":%.3f,"
             "\"cached_get_put_nosync_per_s\":%.0f,\"commit_nosync_ms_median\":%.3f,"
             "\"rocksdb_alone_get_put_per_s\":%.0f,\"cache_speedup\":%.2f,"
             "\"peak_rss_mib\":{\"%" PRIu64 "\":%.1f,\"%" PRIu64 "\":%.1f,\"%" PRIu64
             "\":%.1f},\"rss_budget_mib\":%d}",
             quick ? "true" : "false", n, raw_record, fill_rate, bytes_per_customer, reopen[1],
             ws.ops_per_s, ws.hit_rate, ws.commit_ms_median, ws.commit_ms_p99, wn.ops_per_s,
             wn.commit_ms_median, alone, ws.ops_per_s / alone, sizes[0], (double)rss[0] / 1024,
             sizes[1], (double)rss[1] / 1024, sizes[2], (double)rss[2] / 1024, 64 + 150);
    printf("%s\n", json);
    FILE *f = fopen(VS_SOURCE_DIR "/bench/results/store.json", "w");
    if (f) {
        fprintf(f, "%s\n", json);
        fclose(f);
    } else {
        fprintf(stderr, "store_bench: cannot write bench/results/store.json\n");
    }
    return 0;
}
