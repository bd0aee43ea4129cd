/*
 * The state store: customer records, timers, models and meta in RocksDB, behind a bounded
 * write-back cache of customer records (DESIGN.md contracts 2, 3 and 5; interface in store.h).
 *
 * Two ideas carry the module. First, nothing reaches RocksDB between two commits: customer
 * records change in the cache (dirty records are pinned there), and timer changes, model blobs
 * and offsets go into one pending WriteBatchWithIndex, which lets reads see them before they are
 * written. vs__store_commit() adds the dirty records to that batch and writes it at once, so the
 * directory always holds exactly the state of some commit. Second, the hot path is a hash
 * lookup: a cached customer costs no RocksDB call and no allocation, and a missed one costs one
 * pinned Get (no copy of the value) and an entry taken from a free list.
 *
 * The cache keeps two intrusive lists: clean records in LRU order (the only ones that may be
 * evicted, from the tail) and dirty records, which a commit moves, in recency order, to the
 * head of the clean list. Eviction is therefore O(1) and never scans dirty records. The budget
 * counts each entry's whole allocation (header, sections, user id, malloc's own overhead) and
 * the hash table's bucket array.
 *
 * A directory is valuestream's when it holds exactly our column families and the format marker
 * "format" = "valuestream-state <N>" in meta. Anything else (a foreign RocksDB database, files
 * that are not RocksDB at all, a newer format) is refused with a message saying which.
 */
#include "store.h"
#include "timerlog.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <rocksdb/c.h>

#include <valuestream/error.h>

#define VS__STORE_FORMAT 1
#define VS__FORMAT_PREFIX "valuestream-state "
#define VS__RECORD_FORMAT 1
#define VS__RECORD_HEADER 6 /* "VSC", format, u16 nsections */

/* Entries are allocated in size classes of 32 bytes of user id so that evicted entries can be
 * reused for new customers without going back to malloc. */
#define VS__ID_CLASS 32
#define VS__NCLASS ((VS__STORE_USER_ID_MAX + 1 + VS__ID_CLASS - 1) / VS__ID_CLASS)
#define VS__MALLOC_OVERHEAD 16
#define VS__FREE_LIST_MAX ((size_t)1 << 20)
/* The largest written commit batch whose buffer is kept for a later commit
 * (vs__store_sealed_written). */
#define SPARE_MAX ((size_t)4 << 20)

#define VS__TIMER_KEY_MAX (4 + 8 + VS__STORE_USER_ID_MAX + 1 + 1 + 4)
#define VS__META_KEY_MAX 512

/*
 * The next timers of one partition in key order (fire time first), as a scan of the timer
 * column family found them, kept up to date by every set and cancel: every live timer of the
 * partition that fires at or before `until` is here, so the timers an hour of event time
 * brings are served without a RocksDB iterator each.
 */
#define TIMER_CACHE_N 32
struct timer_cache {
    int valid;
    int n;
    int64_t until;
    int64_t window; /* how far past the watermark the next scan looks (0: not yet set) */
    uint16_t len[TIMER_CACHE_N];
    unsigned char key[TIMER_CACHE_N][4 + 8 + 256 + 1 + 1 + 4];
};

enum { CF_DEFAULT, CF_CUSTOMERS, CF_MODELS, CF_TIMERS, CF_META, CF_COUNT };
static const char *const vs__cf_names[CF_COUNT] = {"default", "customers", "models", "timers",
                                                   "meta"};

struct vs__link {
    struct vs__link *prev, *next;
};

struct seal_slot {
    uint64_t hash;
    size_t key_off, val_off, val_len;
};

struct vs__customer {
    struct vs__link link; /* first: the lists hold pointers to it */
    struct vs__customer *hnext;
    uint64_t hash;
    uint32_t id_len;
    uint8_t dirty;
    uint8_t in_seal; /* its content is in the sealed commit, not yet in RocksDB */
    uint8_t sclass;
    uint16_t present;      /* sections the stored record had (bit i: section i) */
    uint32_t seal_pos;     /* with in_seal: its place in sort_buf */
    char *id;              /* after the sections, NUL-terminated */
    const size_t *sec_off; /* the store's section offsets */
    _Alignas(16) unsigned char data[];
};

struct vs__store {
    char *dir;
    int read_only;
    char err[1024];

    /* RocksDB */
    rocksdb_t *db;
    rocksdb_column_family_handle_t *cf[CF_COUNT];
    rocksdb_options_t *dbopts;
    rocksdb_options_t *cfopts[CF_COUNT];
    rocksdb_block_based_table_options_t *bbto[CF_COUNT];
    rocksdb_cache_t *block_cache;
    rocksdb_readoptions_t *ro;       /* point reads */
    rocksdb_readoptions_t *ro_timer; /* timer scans, with an upper bound */
    rocksdb_writeoptions_t *wo;
    rocksdb_writebatch_wi_t *wb; /* models and meta pending; indexed so that reads see them */
    /* Pending timer changes: those since the last seal, and those of the sealed commit while it
     * is written (timer scans see both). */
    struct vs__timerlog *timers, *timers_sealed;
    /* A sealed commit waiting to be written (vs__store_seal): its complete batch, and the
     * indexed pending batch it was built from, which reads still see until it is written. */
    rocksdb_writebatch_t *sealed;
    rocksdb_writebatch_t *pend; /* wb's operations in order: the start of the next commit's batch */
    rocksdb_writebatch_t *spare; /* a written batch, cleared: its buffer serves a later commit */
    rocksdb_writebatch_wi_t *wb_sealed;
    size_t nsealed; /* its records: sort_buf[0 .. nsealed) */
    /* Where each of them lies in the sealed batch (slots, by sort_buf position) and a hash
     * table of slot numbers + 1: a sealed record evicted before the write is read back from
     * the batch. seal_ok is 0 when the batch's layout was not the expected one; sealed records
     * then stay in the cache until written. */
    struct seal_slot *seal_slots;
    uint32_t *seal_table;
    size_t seal_slots_cap, seal_table_size;
    const char *seal_rep;
    int seal_ok;
    char timer_bound[4 + 8]; /* the upper bound ro_timer points into */

    /* sections */
    struct vs__section_desc *secs;
    size_t *sec_off;
    int nsecs;
    size_t data_size;  /* all sections, each 16-aligned */
    size_t max_record; /* encoded size with every section present */
    unsigned char *enc;
    unsigned char *upgrade_buf; /* aligned copy of an old section for its upgrade callback */
    size_t upgrade_cap;

    /* cache */
    size_t budget;
    size_t used; /* live entries + bucket array */
    struct vs__customer **buckets;
    size_t nbuckets; /* power of two */
    size_t nentries;
    struct vs__link clean; /* head = most recently used */
    struct vs__link dirty;
    size_t ndirty;
    struct vs__customer **sort_buf; /* the dirty records of a commit, sorted by id */
    size_t sort_cap;
    struct vs__customer *free_list[VS__NCLASS + 1];
    size_t free_bytes;
    uint64_t hits, misses, evictions, sealed_reads;

    /* timers: per partition, no timer fires before timer_lb[p] (INT64_MIN: unknown), and the
     * partition's next timers as one scan found them (timer_cache[p], NULL until used) */
    int64_t *timer_lb;
    struct timer_cache **timer_cache;
    size_t ntimer_lb;

    struct vs__customer *scratch; /* decoded record for foreach_customer */
};

/* ==== Errors ==== */

static int fail(struct vs__store *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct vs__store *st, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
    return code;
}

/* Take a RocksDB error string: copy it into the store's message and free it. */
static int fail_rocks(struct vs__store *st, char *rerr, const char *what)
{
    fail(st, VS_ESTORE, "%s: %s", what, rerr ? rerr : "unknown RocksDB error");
    free(rerr);
    return VS_ESTORE;
}

const char *vs__store_last_error(const struct vs__store *st)
{
    return st->err;
}

/* ==== Byte order helpers ==== */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be64(unsigned char *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint64_t get_be64(const unsigned char *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static void put_le16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static uint16_t get_le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void put_le32(unsigned char *p, uint32_t v)
{
    put_le16(p, (uint16_t)v);
    put_le16(p + 2, (uint16_t)(v >> 16));
}

static uint32_t get_le32(const unsigned char *p)
{
    return get_le16(p) | (uint32_t)get_le16(p + 2) << 16;
}

static void put_le64(unsigned char *p, int64_t v)
{
    put_le32(p, (uint32_t)(uint64_t)v);
    put_le32(p + 4, (uint32_t)((uint64_t)v >> 32));
}

static int64_t get_le64(const unsigned char *p)
{
    return (int64_t)(get_le32(p) | (uint64_t)get_le32(p + 4) << 32);
}

/* ==== RocksDB options ==== */

/*
 * Options sized for a process whose memory must stay within the customer cache plus a fixed
 * margin whatever the number of customers: one shared block cache that also holds index and
 * filter blocks (so table readers do not grow with the data), memtables capped in total, a
 * bounded WAL (restart replays at most that much), lz4 for data blocks and Bloom filters on
 * customers, where most misses are new customers.
 *
 * Index and filters are partitioned (two-level) in small 4 KiB blocks, and the cache has few,
 * large shards. With whole per-file index blocks of hundreds of KiB in a cache of 64 small
 * shards, each index block evicted its own shard, and every Get re-read and re-parsed one:
 * point reads were 2.5x slower. 4 KiB data blocks halve what a Get decompresses.
 *
 * The block cache is 16 MiB by default (state.rocksdb.cache.mb). The customer cache in front
 * of it holds the hot records, and a miss reads a block the OS page cache mostly has: replays
 * of 1M customers with a 64 MiB customer cache ran as fast as with 32 MiB (medians of 6
 * alternating runs: 26.3 against 26.4 s) and peaked lower (median 214.3 against 222.5 MiB).
 */
static void set_rocksdb_options(struct vs__store *st, const struct vs__store_options *opts)
{
    size_t block_cache = opts->rocksdb_cache_bytes ? opts->rocksdb_cache_bytes : (size_t)16 << 20;
    int shard_bits = 0;
    while (shard_bits < 6 && (block_cache >> (shard_bits + 1)) >= ((size_t)4 << 20)) {
        shard_bits++;
    }
    rocksdb_lru_cache_options_t *lo = rocksdb_lru_cache_options_create();
    rocksdb_lru_cache_options_set_capacity(lo, block_cache);
    rocksdb_lru_cache_options_set_num_shard_bits(lo, shard_bits);
    st->block_cache = rocksdb_cache_create_lru_opts(lo);
    rocksdb_lru_cache_options_destroy(lo);

    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, opts->create_if_missing && !opts->read_only);
    rocksdb_options_set_create_missing_column_families(o,
                                                       opts->create_if_missing && !opts->read_only);
    rocksdb_options_set_max_background_jobs(o, 2);
    rocksdb_options_set_max_open_files(o, 512);
    rocksdb_options_set_keep_log_file_num(o, 3);
    rocksdb_options_set_max_log_file_size(o, (size_t)4 << 20);
    rocksdb_options_set_stats_dump_period_sec(o, 0);
    rocksdb_options_set_db_write_buffer_size(o, (size_t)48 << 20);
    rocksdb_options_set_max_total_wal_size(o, (uint64_t)64 << 20);
    rocksdb_options_set_skip_stats_update_on_db_open(o, 1);
    rocksdb_options_set_compression(o, rocksdb_lz4_compression);
    rocksdb_options_set_level_compaction_dynamic_level_bytes(o, 1);
    rocksdb_options_set_target_file_size_base(o, (uint64_t)32 << 20);
    rocksdb_options_set_max_bytes_for_level_base(o, (uint64_t)128 << 20);
    st->dbopts = o;

    for (int i = 0; i < CF_COUNT; i++) {
        rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
        rocksdb_block_based_options_set_block_cache(t, st->block_cache);
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
        rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(t, 1);
        rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(t, 1);
        rocksdb_block_based_options_set_pin_top_level_index_and_filter(t, 1);
        rocksdb_block_based_options_set_index_type(
            t, rocksdb_block_based_table_index_type_two_level_index_search);
        rocksdb_block_based_options_set_partition_filters(t, 1);
        rocksdb_block_based_options_set_metadata_block_size(t, 4096);
        rocksdb_block_based_options_set_block_size(t, 4 << 10);
        if (i == CF_CUSTOMERS) {
            rocksdb_block_based_options_set_filter_policy(
                t, rocksdb_filterpolicy_create_bloom_full(10));
        }
        rocksdb_options_t *c = rocksdb_options_create_copy(o);
        rocksdb_options_set_block_based_table_factory(c, t);
        /* 8 MiB customer memtables: a commit's records are in the cache and in its batch
         * already, and a replay of 1M customers peaked ~8 MiB lower than with 16 MiB, at the
         * same speed (alternating runs, 222/215/217 against 229/233/224 MiB). */
        size_t wbs = i == CF_CUSTOMERS ? (size_t)8 << 20 : (size_t)4 << 20;
        rocksdb_options_set_write_buffer_size(c, wbs);
        rocksdb_options_set_max_write_buffer_number(c, i == CF_CUSTOMERS ? 3 : 2);
        if (i == CF_CUSTOMERS) {
            /* A Bloom filter per memtable: a cache miss looks a customer up in every memtable
             * (up to three), and a skiplist search each was half of what a Get cost
             * with 1M customers; the filter answers "not here" for all but the one that has
             * the record. */
            rocksdb_options_set_memtable_prefix_bloom_size_ratio(c, 0.05);
            rocksdb_options_set_memtable_whole_key_filtering(c, 1);
        }
        st->bbto[i] = t;
        st->cfopts[i] = c;
    }

    st->ro = rocksdb_readoptions_create();
    st->ro_timer = rocksdb_readoptions_create();
    st->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(st->wo, !opts->no_sync);
}

/* ==== Opening: what is in the directory? ==== */

enum dir_kind { DIR_MISSING, DIR_EMPTY, DIR_ROCKSDB, DIR_OTHER, DIR_NOT_A_DIR };

/* Classify dir before RocksDB touches it: RocksDB would happily create a database among
 * someone else's files, and its messages for a non-database are obscure. */
static enum dir_kind classify_dir(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        return DIR_MISSING;
    }
    if (!S_ISDIR(sb.st_mode)) {
        return DIR_NOT_A_DIR;
    }
    DIR *d = opendir(dir);
    if (!d) {
        return DIR_OTHER;
    }
    int entries = 0, current = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        entries++;
        if (strcmp(de->d_name, "CURRENT") == 0) {
            current = 1;
        }
    }
    closedir(d);
    if (current) {
        return DIR_ROCKSDB;
    }
    return entries ? DIR_OTHER : DIR_EMPTY;
}

static int cf_index(const char *name)
{
    for (int i = 0; i < CF_COUNT; i++) {
        if (strcmp(name, vs__cf_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* 1 when the default column family of a database that has only that one is empty (what
 * RocksDB leaves if creation stopped between the database and our column families), 0 when it
 * holds data, a negative code when the database cannot be read. */
static int default_only_is_empty(struct vs__store *st)
{
    char *rerr = NULL;
    rocksdb_t *db = rocksdb_open_for_read_only(st->dbopts, st->dir, 0, &rerr);
    if (!db) {
        fail(st, VS_ECORRUPT, "state directory %s is corrupt or not a RocksDB database: %s",
             st->dir, rerr ? rerr : "cannot open it");
        free(rerr);
        return VS_ECORRUPT;
    }
    rocksdb_iterator_t *it = rocksdb_create_iterator(db, st->ro);
    rocksdb_iter_seek_to_first(it);
    int empty = !rocksdb_iter_valid(it);
    rocksdb_iter_destroy(it);
    rocksdb_close(db);
    return empty;
}

static int cf_is_empty(struct vs__store *st, int cf)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ro, st->cf[cf]);
    rocksdb_iter_seek_to_first(it);
    int empty = !rocksdb_iter_valid(it);
    rocksdb_iter_destroy(it);
    return empty;
}

/*
 * Check the column families of an existing RocksDB directory. Returns 1 when they are exactly
 * ours, 0 when the database is an empty leftover of an interrupted creation (only "default",
 * empty), or a negative code with the reason in st->err.
 */
static int check_column_families(struct vs__store *st)
{
    char *rerr = NULL;
    size_t n = 0;
    char **names = rocksdb_list_column_families(st->dbopts, st->dir, &n, &rerr);
    if (rerr || !names) {
        /* the C API may return an (empty) list together with an error */
        if (names) {
            rocksdb_list_column_families_destroy(names, n);
        }
        fail(st, VS_ECORRUPT, "state directory %s is corrupt or not a RocksDB database: %s",
             st->dir, rerr ? rerr : "cannot list its column families");
        free(rerr);
        return VS_ECORRUPT;
    }
    int seen[CF_COUNT] = {0}, foreign = 0, nours = 0;
    char foreign_name[128] = "";
    for (size_t i = 0; i < n; i++) {
        int k = cf_index(names[i]);
        if (k < 0) {
            if (!foreign) {
                snprintf(foreign_name, sizeof foreign_name, "%s", names[i]);
            }
            foreign = 1;
        } else if (!seen[k]) {
            seen[k] = 1;
            nours++;
        }
    }
    rocksdb_list_column_families_destroy(names, n);
    if (foreign) {
        return fail(st, VS_ECORRUPT,
                    "state directory %s holds a RocksDB database that is not valuestream's "
                    "(it has a column family \"%s\")",
                    st->dir, foreign_name);
    }
    if (nours == CF_COUNT) {
        return 1;
    }
    if (nours == 1 && seen[CF_DEFAULT]) {
        int empty = default_only_is_empty(st);
        if (empty < 0) {
            return empty;
        }
        if (empty) {
            return 0;
        }
    }
    return fail(st, VS_ECORRUPT,
                "state directory %s holds a RocksDB database that is not valuestream's (it "
                "lacks valuestream's column families)",
                st->dir);
}

static int open_db(struct vs__store *st)
{
    char *rerr = NULL;
    const rocksdb_options_t *cfo[CF_COUNT];
    for (int i = 0; i < CF_COUNT; i++) {
        cfo[i] = st->cfopts[i];
    }
    if (st->read_only) {
        st->db = rocksdb_open_for_read_only_column_families(st->dbopts, st->dir, CF_COUNT,
                                                            vs__cf_names, cfo, st->cf, 0, &rerr);
    } else {
        st->db = rocksdb_open_column_families(st->dbopts, st->dir, CF_COUNT, vs__cf_names, cfo,
                                              st->cf, &rerr);
    }
    if (!st->db) {
        const char *hint =
            rerr && strstr(rerr, "lock") ? " (is another valuestream using it?)" : "";
        fail(st, VS_ESTORE, "cannot open state directory %s: %s%s", st->dir,
             rerr ? rerr : "unknown RocksDB error", hint);
        free(rerr);
        return VS_ESTORE;
    }
    return 0;
}

/* Read the format marker. Missing on a database whose column families are all empty means a
 * creation that stopped before the marker was written: write it now. */
static int check_marker(struct vs__store *st)
{
    char *rerr = NULL;
    size_t len = 0;
    char *v = rocksdb_get_cf(st->db, st->ro, st->cf[CF_META], "format", 6, &len, &rerr);
    if (rerr) {
        return fail_rocks(st, rerr, "cannot read the format marker");
    }
    if (!v) {
        int empty = 1;
        for (int i = 0; i < CF_COUNT && empty; i++) {
            empty = cf_is_empty(st, i);
        }
        if (!empty || st->read_only) {
            return fail(st, VS_ECORRUPT,
                        "state directory %s is not valuestream's: its RocksDB database has no "
                        "valuestream format marker",
                        st->dir);
        }
        char marker[64];
        int n = snprintf(marker, sizeof marker, VS__FORMAT_PREFIX "%d", VS__STORE_FORMAT);
        rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
        rocksdb_writeoptions_set_sync(wo, 1);
        rocksdb_put_cf(st->db, wo, st->cf[CF_META], "format", 6, marker, (size_t)n, &rerr);
        rocksdb_writeoptions_destroy(wo);
        return rerr ? fail_rocks(st, rerr, "cannot write the format marker") : 0;
    }
    size_t plen = strlen(VS__FORMAT_PREFIX);
    char text[32] = "";
    int ok = len > plen && len - plen < sizeof text && memcmp(v, VS__FORMAT_PREFIX, plen) == 0;
    if (ok) {
        memcpy(text, v + plen, len - plen);
    }
    free(v);
    char *end = NULL;
    long version = ok ? strtol(text, &end, 10) : 0;
    if (!ok || end == text || *end != '\0' || version <= 0) {
        return fail(st, VS_ECORRUPT, "state directory %s has an unreadable format marker", st->dir);
    }
    if (version > VS__STORE_FORMAT) {
        return fail(st, VS_EVERSION,
                    "state directory %s has format version %ld, newer than this build's %d: "
                    "use a newer valuestream",
                    st->dir, version, VS__STORE_FORMAT);
    }
    return 0;
}

/* Lay out the sections, each 16-aligned, and size the encode buffer for a full record. */
static int setup_sections(struct vs__store *st, const struct vs__section_desc *secs, int nsecs)
{
    if (nsecs < 0 || nsecs > UINT16_MAX || (nsecs && !secs)) {
        return fail(st, VS_EINVAL, "invalid section list");
    }
    st->nsecs = nsecs;
    st->secs = calloc((size_t)nsecs + 1, sizeof *st->secs);
    st->sec_off = calloc((size_t)nsecs + 1, sizeof *st->sec_off);
    if (!st->secs || !st->sec_off) {
        return fail(st, VS_ENOMEM, "out of memory");
    }
    size_t off = 0, rec = VS__RECORD_HEADER;
    for (int i = 0; i < nsecs; i++) {
        const char *name = secs[i].name;
        if (!name || !*name || strlen(name) > 255) {
            return fail(st, VS_EINVAL, "section %d has no valid name", i);
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(secs[j].name, name) == 0) {
                return fail(st, VS_EINVAL, "section \"%s\" is declared twice", name);
            }
        }
        st->secs[i] = secs[i];
        st->sec_off[i] = off;
        off += (secs[i].size + 15) & ~(size_t)15;
        rec += 1 + strlen(name) + 8 + secs[i].size;
    }
    st->data_size = off;
    st->max_record = rec;
    st->enc = malloc(rec);
    st->upgrade_cap = 256;
    st->upgrade_buf = aligned_alloc(16, st->upgrade_cap);
    if (!st->enc || !st->upgrade_buf) {
        return fail(st, VS_ENOMEM, "out of memory");
    }
    return 0;
}

static int alloc_cache(struct vs__store *st);
static void put_meta_text(struct vs__store *st, const char *key, const char *val);

/*
 * Open the store. The directory is classified first so that every refusal has its own message:
 * missing (when not creating), not a directory, files that are not a RocksDB database, a
 * RocksDB database that is not ours, a corrupt database, a newer format.
 */
struct vs__store *vs__store_open(const char *dir, const struct vs__section_desc *secs, int nsecs,
                                 const struct vs__store_options *opts, char *errbuf, size_t errlen)
{
    struct vs__store *st = calloc(1, sizeof *st);
    if (!st || !dir || !opts) {
        snprintf(errbuf, errlen, "%s", st ? "invalid arguments" : "out of memory");
        free(st);
        return NULL;
    }
    st->read_only = opts->read_only;
    st->budget = opts->cache_bytes;
    st->dir = strdup(dir);
    st->clean.prev = st->clean.next = &st->clean;
    st->dirty.prev = st->dirty.next = &st->dirty;
    if (!st->dir) {
        fail(st, VS_ENOMEM, "out of memory");
        goto fail;
    }
    if (setup_sections(st, secs, nsecs) != 0) {
        goto fail;
    }
    set_rocksdb_options(st, opts);

    int create = opts->create_if_missing && !opts->read_only;
    switch (classify_dir(dir)) {
    case DIR_MISSING:
        if (!create) {
            fail(st, VS_ENOTFOUND, "state directory %s does not exist", dir);
            goto fail;
        }
        break;
    case DIR_NOT_A_DIR:
        fail(st, VS_EINVAL, "state directory %s is not a directory", dir);
        goto fail;
    case DIR_EMPTY:
        if (!create) {
            fail(st, VS_ENOTFOUND, "state directory %s is empty: no state has been written", dir);
            goto fail;
        }
        break;
    case DIR_OTHER:
        fail(st, VS_ECORRUPT,
             "%s is not a valuestream state directory: it holds files but no RocksDB database "
             "(no CURRENT file)",
             dir);
        goto fail;
    case DIR_ROCKSDB: {
        int r = check_column_families(st);
        if (r < 0) {
            goto fail;
        }
        if (r == 0 && !create) {
            fail(st, VS_ECORRUPT,
                 "state directory %s is not valuestream's: its RocksDB database is empty and "
                 "has no format marker",
                 dir);
            goto fail;
        }
        break;
    }
    }

    if (open_db(st) != 0 || check_marker(st) != 0) {
        goto fail;
    }
    st->wb = rocksdb_writebatch_wi_create(0, 1);
    st->pend = rocksdb_writebatch_create();
    st->timers = vs__timerlog_new();
    st->timers_sealed = vs__timerlog_new();
    if (!st->wb || !st->pend || !st->timers || !st->timers_sealed) {
        fail(st, VS_ENOMEM, "out of memory");
        goto fail;
    }
    if (alloc_cache(st) != 0) {
        goto fail;
    }
    if (!st->read_only) {
        /* Record each section's layout version (informational: records carry their own). */
        for (int i = 0; i < st->nsecs; i++) {
            char key[300], val[16];
            snprintf(key, sizeof key, "section/%s", st->secs[i].name);
            snprintf(val, sizeof val, "%u", (unsigned)st->secs[i].version);
            put_meta_text(st, key, val);
        }
    }
    return st;

fail:
    snprintf(errbuf, errlen, "%s", st->err[0] ? st->err : "cannot open the state store");
    vs__store_close(st);
    return NULL;
}

/* ==== The customer cache ==== */

static size_t entry_id_cap(size_t id_len)
{
    return (id_len + 1 + VS__ID_CLASS - 1) / VS__ID_CLASS * VS__ID_CLASS;
}

static size_t entry_size(const struct vs__store *st, size_t id_cap)
{
    return offsetof(struct vs__customer, data) + st->data_size + id_cap;
}

/* What an entry of this id length costs the budget: its allocation and malloc's header. */
static size_t entry_cost(const struct vs__store *st, size_t id_len)
{
    return entry_size(st, entry_id_cap(id_len)) + VS__MALLOC_OVERHEAD;
}

static int alloc_cache(struct vs__store *st)
{
    st->nbuckets = 1024;
    st->buckets = calloc(st->nbuckets, sizeof *st->buckets);
    if (!st->buckets) {
        return fail(st, VS_ENOMEM, "out of memory");
    }
    st->used = st->nbuckets * sizeof *st->buckets;
    /* One full-size entry for foreach_customer, never in the table. */
    size_t cap = entry_id_cap(VS__STORE_USER_ID_MAX);
    st->scratch = aligned_alloc(16, (entry_size(st, cap) + 15) & ~(size_t)15);
    if (!st->scratch) {
        return fail(st, VS_ENOMEM, "out of memory");
    }
    memset(st->scratch, 0, sizeof *st->scratch);
    st->scratch->id = (char *)st->scratch->data + st->data_size;
    st->scratch->sec_off = st->sec_off;
    return 0;
}

/* FNV-1a, finished with a 64-bit mix so that the low bits (the bucket) depend on every byte. */
static uint64_t hash_id(const char *id, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)id[i]) * 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static void link_remove(struct vs__link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
}

static void link_push_head(struct vs__link *head, struct vs__link *l)
{
    l->next = head->next;
    l->prev = head;
    head->next->prev = l;
    head->next = l;
}

static struct vs__customer *cache_find(struct vs__store *st, const char *id, size_t len, uint64_t h)
{
    for (struct vs__customer *e = st->buckets[h & (st->nbuckets - 1)]; e; e = e->hnext) {
        if (e->hash == h && e->id_len == len && memcmp(e->id, id, len) == 0) {
            return e;
        }
    }
    return NULL;
}

/* Double the bucket array when the table is fuller than one entry per bucket. This happens
 * while the cache fills, not in the steady state. A failed allocation keeps the old table. */
static void cache_grow(struct vs__store *st)
{
    size_t n = st->nbuckets * 2;
    struct vs__customer **b = calloc(n, sizeof *b);
    if (!b) {
        return;
    }
    for (size_t i = 0; i < st->nbuckets; i++) {
        struct vs__customer *e = st->buckets[i], *next;
        for (; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(st->buckets);
    st->used += (n - st->nbuckets) * sizeof *b;
    st->buckets = b;
    st->nbuckets = n;
}

static void entry_release(struct vs__store *st, struct vs__customer *e)
{
    size_t sz = entry_size(st, (size_t)e->sclass * VS__ID_CLASS);
    if (st->free_bytes + sz <= VS__FREE_LIST_MAX) {
        e->hnext = st->free_list[e->sclass];
        st->free_list[e->sclass] = e;
        st->free_bytes += sz;
    } else {
        free(e);
    }
}

static struct vs__customer *entry_acquire(struct vs__store *st, size_t id_len)
{
    size_t cap = entry_id_cap(id_len);
    int cls = (int)(cap / VS__ID_CLASS);
    size_t sz = entry_size(st, cap);
    struct vs__customer *e = st->free_list[cls];
    if (e) {
        st->free_list[cls] = e->hnext;
        st->free_bytes -= sz;
    } else {
        e = aligned_alloc(16, (sz + 15) & ~(size_t)15);
        if (!e) {
            return NULL;
        }
    }
    e->sclass = (uint8_t)cls;
    e->id = (char *)e->data + st->data_size;
    e->sec_off = st->sec_off;
    return e;
}

static void cache_unlink(struct vs__store *st, struct vs__customer *e)
{
    struct vs__customer **pp = &st->buckets[e->hash & (st->nbuckets - 1)];
    while (*pp != e) {
        pp = &(*pp)->hnext;
    }
    *pp = e->hnext;
    link_remove(&e->link);
    st->nentries--;
    st->used -= entry_cost(st, e->id_len);
}

/* Evict clean records, least recently used first, until `need` more bytes fit the budget. */
static void cache_evict(struct vs__store *st, size_t need)
{
    /* The records of a sealed commit are clean but not yet in RocksDB: one that leaves the cache
     * before the commit is written is read back from the sealed batch (seal_find). Without the
     * batch's index none leaves: the seal put them at the recent end of the clean list, so the
     * first one met from the old end stops the eviction. */
    while (st->used + need > st->budget && st->clean.prev != &st->clean) {
        struct vs__customer *e = (struct vs__customer *)st->clean.prev;
        if (e->in_seal) {
            if (!st->seal_ok) {
                break;
            }
            st->sort_buf[e->seal_pos] = NULL;
        }
        cache_unlink(st, e);
        entry_release(st, e);
        st->evictions++;
    }
}

int vs__store_wants_commit(const struct vs__store *st)
{
    return st->used > st->budget &&
           (st->clean.prev == &st->clean ||
            (!st->seal_ok && ((struct vs__customer *)st->clean.prev)->in_seal));
}

/* ==== Customer record encoding ==== */

/* Whether a section is all zeros. A section in use is seldom zero, and mostly not in its first
 * bytes (a profile's first seen time, a model's vector): stop at the first nonzero word, 64
 * bytes at a time (scanning whole sections was 2 % of the loop at each seal). */
static int is_zero(const unsigned char *p, size_t n)
{
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint64_t w[8];
        memcpy(w, p + i, sizeof(w));
        if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) {
            return 0;
        }
    }
    uint64_t acc = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, sizeof(w));
        acc |= w;
    }
    for (; i < n; i++) {
        acc |= p[i];
    }
    return acc == 0;
}

/* Encode a record into st->enc. All-zero sections are left out: a missing section decodes as
 * zeros, which is what a customer the operator never saw has. */
static size_t encode_record(struct vs__store *st, const struct vs__customer *c)
{
    unsigned char *p = st->enc + VS__RECORD_HEADER;
    uint16_t n = 0;
    for (int i = 0; i < st->nsecs; i++) {
        const struct vs__section_desc *d = &st->secs[i];
        const unsigned char *sec = c->data + st->sec_off[i];
        if (d->size == 0 || (d->passive && i < 16 && !(c->present & (1u << i))) ||
            is_zero(sec, d->size)) {
            continue;
        }
        size_t nl = strlen(d->name);
        *p++ = (unsigned char)nl;
        memcpy(p, d->name, nl);
        p += nl;
        put_le32(p, d->version);
        put_le32(p + 4, (uint32_t)d->size);
        p += 8;
        memcpy(p, sec, d->size);
        p += d->size;
        n++;
    }
    memcpy(st->enc, "VSC", 3);
    st->enc[3] = VS__RECORD_FORMAT;
    put_le16(st->enc + 4, n);
    return (size_t)(p - st->enc);
}

/*
 * Decode a stored record into data (all sections, zeroed first). A section of an older version
 * goes through its operator's upgrade callback, from an aligned copy; a newer version, an
 * unknown operator or a malformed record is an error naming the customer.
 */
static int decode_record(struct vs__store *st, const unsigned char *buf, size_t len,
                         unsigned char *data, const char *uid, uint16_t *present)
{
    memset(data, 0, st->data_size);
    *present = 0;
    if (len < VS__RECORD_HEADER || memcmp(buf, "VSC", 3) != 0) {
        return fail(st, VS_ECORRUPT, "customer %s: stored record is not a valuestream record", uid);
    }
    if (buf[3] != VS__RECORD_FORMAT) {
        return fail(st, VS_EVERSION,
                    "customer %s: stored record has format %u, this build reads format %d", uid,
                    buf[3], VS__RECORD_FORMAT);
    }
    unsigned n = get_le16(buf + 4);
    size_t pos = VS__RECORD_HEADER;
    uint64_t seen = 0;
    for (unsigned k = 0; k < n; k++) {
        if (pos + 1 > len || pos + 1 + buf[pos] + 8 > len) {
            return fail(st, VS_ECORRUPT, "customer %s: stored record is truncated", uid);
        }
        size_t nl = buf[pos];
        const char *name = (const char *)buf + pos + 1;
        uint32_t version = get_le32(buf + pos + 1 + nl);
        uint32_t slen = get_le32(buf + pos + 1 + nl + 4);
        pos += 1 + nl + 8;
        if (slen > len - pos) {
            return fail(st, VS_ECORRUPT, "customer %s: stored record is truncated", uid);
        }
        const unsigned char *sec = buf + pos;
        pos += slen;
        int i = 0;
        while (i < st->nsecs &&
               !(strlen(st->secs[i].name) == nl && memcmp(st->secs[i].name, name, nl) == 0)) {
            i++;
        }
        if (i == st->nsecs) {
            return fail(st, VS_EVERSION,
                        "customer %s: stored record has a section of operator \"%.*s\", which "
                        "this build does not run",
                        uid, (int)nl, name);
        }
        const struct vs__section_desc *d = &st->secs[i];
        if (i < 64 && (seen & (uint64_t)1 << i)) {
            return fail(st, VS_ECORRUPT, "customer %s: section \"%s\" appears twice", uid, d->name);
        }
        seen |= i < 64 ? (uint64_t)1 << i : 0;
        if (i < 16) {
            *present |= (uint16_t)(1u << i);
        }
        unsigned char *dst = data + st->sec_off[i];
        if (version == d->version) {
            if (slen != d->size) {
                return fail(st, VS_ECORRUPT,
                            "customer %s: section \"%s\" version %u has %u bytes, expected %zu",
                            uid, d->name, (unsigned)version, (unsigned)slen, d->size);
            }
            memcpy(dst, sec, slen);
        } else if (version > d->version) {
            return fail(st, VS_EVERSION,
                        "operator \"%s\": stored section version %u is newer than this build's "
                        "version %u (customer %s); use a newer valuestream",
                        d->name, (unsigned)version, (unsigned)d->version, uid);
        } else if (!d->upgrade) {
            return fail(st, VS_EVERSION,
                        "operator \"%s\": stored section version %u is older than this build's "
                        "version %u and the operator has no upgrade (customer %s)",
                        d->name, (unsigned)version, (unsigned)d->version, uid);
        } else {
            if (slen > st->upgrade_cap) {
                size_t cap = (slen + 15) & ~(size_t)15;
                unsigned char *nb = aligned_alloc(16, cap);
                if (!nb) {
                    return fail(st, VS_ENOMEM, "out of memory");
                }
                free(st->upgrade_buf);
                st->upgrade_buf = nb;
                st->upgrade_cap = cap;
            }
            memcpy(st->upgrade_buf, sec, slen);
            int rc = d->upgrade(version, st->upgrade_buf, slen, dst);
            if (rc != 0) {
                return fail(st, rc < 0 ? rc : VS_EVERSION,
                            "operator \"%s\": upgrading the section of customer %s from version "
                            "%u to %u failed (%d)",
                            d->name, uid, (unsigned)version, (unsigned)d->version, rc);
            }
        }
    }
    if (pos != len) {
        return fail(st, VS_ECORRUPT, "customer %s: stored record has %zu trailing bytes", uid,
                    len - pos);
    }
    return 0;
}

/* ==== Customers ==== */

/* Bytes of v as a varint (the length prefixes in a RocksDB batch). */
static size_t varint_size(size_t v)
{
    size_t n = 1;
    while (v >= 128) {
        v >>= 7;
        n++;
    }
    return n;
}

/* A new entry, its record read: into the table and the dirty list. */
static int cache_insert(struct vs__store *st, struct vs__customer *e, uint64_t h, size_t cost,
                        struct vs__customer **out)
{
    if (st->nentries >= st->nbuckets) {
        cache_grow(st);
    }
    size_t b = h & (st->nbuckets - 1);
    e->hnext = st->buckets[b];
    st->buckets[b] = e;
    e->dirty = 1;
    st->ndirty++;
    link_push_head(&st->dirty, &e->link);
    st->nentries++;
    st->used += cost;
    *out = e;
    return 0;
}

/* The sealed batch's record of a customer, while a sealed commit waits to be written. */
static const struct seal_slot *seal_find(const struct vs__store *st, const char *id, size_t len,
                                         uint64_t h)
{
    if (!st->sealed || !st->seal_ok || !st->seal_table_size) {
        return NULL;
    }
    size_t mask = st->seal_table_size - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        uint32_t v = st->seal_table[i];
        if (!v) {
            return NULL;
        }
        const struct seal_slot *sl = &st->seal_slots[v - 1];
        if (sl->hash == h && sl->val_off - sl->key_off >= len &&
            memcmp(st->seal_rep + sl->key_off, id, len) == 0 &&
            sl->val_off - sl->key_off - len == varint_size(sl->val_len)) {
            return sl;
        }
    }
}

/*
 * The hot path. A hit moves the record to the head of the dirty list. A miss first makes room
 * (evicting clean records; when none is left the cache grows past its budget and
 * vs__store_wants_commit() turns true), then reads the committed record with a pinned Get and
 * decodes it straight into the new entry.
 */
int vs__store_customer(struct vs__store *st, const char *user_id, size_t len,
                       struct vs__customer **out, int *is_new)
{
    if (len == 0 || len > VS__STORE_USER_ID_MAX) {
        return fail(st, VS_EINVAL, "customer id of %zu bytes (1 to %d allowed)", len,
                    VS__STORE_USER_ID_MAX);
    }
    uint64_t h = hash_id(user_id, len);
    struct vs__customer *e = cache_find(st, user_id, len, h);
    if (e) {
        st->hits++;
        link_remove(&e->link);
        if (!e->dirty) {
            e->dirty = 1;
            st->ndirty++;
        }
        link_push_head(&st->dirty, &e->link);
        if (is_new) {
            *is_new = 0;
        }
        *out = e;
        return 0;
    }

    st->misses++;
    size_t cost = entry_cost(st, len);
    cache_evict(st, cost);
    e = entry_acquire(st, len);
    if (!e) {
        return fail(st, VS_ENOMEM, "out of memory for a customer record");
    }
    memcpy(e->id, user_id, len);
    e->id[len] = '\0';
    e->id_len = (uint32_t)len;
    e->hash = h;
    e->in_seal = 0;

    const struct seal_slot *sl = seal_find(st, user_id, len, h);
    if (sl) {
        st->sealed_reads++;
        int rc = decode_record(st, (const unsigned char *)st->seal_rep + sl->val_off, sl->val_len,
                               e->data, e->id, &e->present);
        if (rc != 0) {
            entry_release(st, e);
            return rc;
        }
        if (is_new) {
            *is_new = 0;
        }
        return cache_insert(st, e, h, cost, out);
    }
    char *rerr = NULL;
    rocksdb_pinnableslice_t *ps =
        rocksdb_get_pinned_cf(st->db, st->ro, st->cf[CF_CUSTOMERS], user_id, len, &rerr);
    int rc = 0;
    if (rerr) {
        rc = fail_rocks(st, rerr, "cannot read a customer record");
    } else if (ps) {
        size_t vlen = 0;
        const char *v = rocksdb_pinnableslice_value(ps, &vlen);
        rc = decode_record(st, (const unsigned char *)v, vlen, e->data, e->id, &e->present);
        rocksdb_pinnableslice_destroy(ps);
    } else {
        memset(e->data, 0, st->data_size);
        e->present = 0;
    }
    if (rc != 0) {
        entry_release(st, e);
        return rc;
    }
    if (is_new) {
        *is_new = ps == NULL;
    }
    return cache_insert(st, e, h, cost, out);
}

void *vs__customer_section(struct vs__customer *c, int i)
{
    return c->data + c->sec_off[i];
}

const char *vs__customer_id(const struct vs__customer *c)
{
    return c->id;
}

/* ==== Offsets, watermarks and other meta ==== */

/* A pending put or delete (meta, models): to the indexed batch that reads see, and in the same
 * order to the plain batch the next commit begins with (vs__store_seal). */
static void pending_put(struct vs__store *st, int cf, const char *key, size_t klen, const char *val,
                        size_t vlen)
{
    rocksdb_writebatch_wi_put_cf(st->wb, st->cf[cf], key, klen, val, vlen);
    rocksdb_writebatch_put_cf(st->pend, st->cf[cf], key, klen, val, vlen);
}

static void pending_delete(struct vs__store *st, int cf, const char *key, size_t klen)
{
    rocksdb_writebatch_wi_delete_cf(st->wb, st->cf[cf], key, klen);
    rocksdb_writebatch_delete_cf(st->pend, st->cf[cf], key, klen);
}

static void put_meta_text(struct vs__store *st, const char *key, const char *val)
{
    pending_put(st, CF_META, key, strlen(key), val, strlen(val));
}

static int meta_key(struct vs__store *st, char *buf, size_t cap, const char *kind,
                    const char *topic, int32_t partition)
{
    if (!topic || !*topic || strchr(topic, '/') || partition < 0) {
        return fail(st, VS_EINVAL, "invalid topic or partition for a stored %s", kind);
    }
    int n = snprintf(buf, cap, "%s/%s/%d", kind, topic, (int)partition);
    if (n < 0 || (size_t)n >= cap) {
        return fail(st, VS_EINVAL, "topic name too long: %s", topic);
    }
    return n;
}

static rocksdb_iterator_t *pending_iterator(struct vs__store *st, const rocksdb_readoptions_t *ro,
                                            int cf)
{
    rocksdb_iterator_t *base = rocksdb_create_iterator_cf(st->db, ro, st->cf[cf]);
    if (st->wb_sealed) {
        base = rocksdb_writebatch_wi_create_iterator_with_base_cf(st->wb_sealed, base, st->cf[cf]);
    }
    return rocksdb_writebatch_wi_create_iterator_with_base_cf(st->wb, base, st->cf[cf]);
}

/*
 * A point read through the pending batch, the sealed one and the DB. With a sealed commit a key
 * deleted after the seal reads as its sealed value: the engine reads meta and models only at
 * start and on assignment, when no commit is sealed.
 */
static char *pending_get(struct vs__store *st, int cf, const char *key, size_t klen, size_t *vlen,
                         char **rerr)
{
    if (st->wb_sealed) {
        rocksdb_options_t *o = st->dbopts;
        char *v =
            rocksdb_writebatch_wi_get_from_batch_cf(st->wb, o, st->cf[cf], key, klen, vlen, rerr);
        if (v || *rerr) {
            return v;
        }
        return rocksdb_writebatch_wi_get_from_batch_and_db_cf(st->wb_sealed, st->db, st->ro,
                                                              st->cf[cf], key, klen, vlen, rerr);
    }
    return rocksdb_writebatch_wi_get_from_batch_and_db_cf(st->wb, st->db, st->ro, st->cf[cf], key,
                                                          klen, vlen, rerr);
}

/* A pending or committed 8-byte meta value. */
static int meta_get_i64(struct vs__store *st, const char *kind, const char *topic,
                        int32_t partition, int64_t *out)
{
    char key[VS__META_KEY_MAX];
    int n = meta_key(st, key, sizeof key, kind, topic, partition);
    if (n < 0) {
        return n;
    }
    char *rerr = NULL;
    size_t len = 0;
    char *v = pending_get(st, CF_META, key, (size_t)n, &len, &rerr);
    if (rerr) {
        return fail_rocks(st, rerr, "cannot read meta");
    }
    if (!v) {
        return VS_ENOTFOUND;
    }
    int rc = 0;
    if (len == 8) {
        *out = get_le64((const unsigned char *)v);
    } else {
        rc = fail(st, VS_ECORRUPT, "stored %s has %zu bytes, expected 8", key, len);
    }
    free(v);
    return rc;
}

static int meta_set_i64(struct vs__store *st, const char *kind, const char *topic,
                        int32_t partition, int64_t value)
{
    if (st->read_only) {
        return fail(st, VS_EINVAL, "the store is open read-only");
    }
    char key[VS__META_KEY_MAX];
    int n = meta_key(st, key, sizeof key, kind, topic, partition);
    if (n < 0) {
        return n;
    }
    unsigned char v[8];
    put_le64(v, value);
    pending_put(st, CF_META, key, (size_t)n, (const char *)v, 8);
    return 0;
}

int vs__store_get_offset(struct vs__store *st, const char *topic, int32_t partition,
                         int64_t *next_offset)
{
    return meta_get_i64(st, "offset", topic, partition, next_offset);
}

int vs__store_set_offset(struct vs__store *st, const char *topic, int32_t partition,
                         int64_t next_offset)
{
    return meta_set_i64(st, "offset", topic, partition, next_offset);
}

int vs__store_get_watermark(struct vs__store *st, const char *topic, int32_t partition,
                            int64_t *watermark)
{
    return meta_get_i64(st, "watermark", topic, partition, watermark);
}

int vs__store_set_watermark(struct vs__store *st, const char *topic, int32_t partition,
                            int64_t watermark)
{
    return meta_set_i64(st, "watermark", topic, partition, watermark);
}

/* An iterator over a column family that sees the pending batch. */
struct offset_row {
    char *topic;
    int32_t partition;
    int has_offset, has_watermark;
    int64_t offset, watermark;
};

static int offset_row_cmp(const void *a, const void *b)
{
    const struct offset_row *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* Collect "offset/..." and "watermark/..." keys into rows, one per (topic, partition). */
static void collect_offsets(struct vs__store *st, rocksdb_iterator_t *it, const char *kind,
                            struct offset_row **rows, size_t *n, size_t *cap)
{
    size_t kl = strlen(kind);
    for (rocksdb_iter_seek(it, kind, kl); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (klen < kl || memcmp(k, kind, kl) != 0) {
            break;
        }
        const char *slash = memchr(k + kl, '/', klen - kl);
        if (!slash || slash == k + kl || vlen != 8 || klen - (size_t)(slash - k) > 12) {
            continue;
        }
        char num[16];
        size_t nl = klen - (size_t)(slash - k) - 1;
        memcpy(num, slash + 1, nl);
        num[nl] = '\0';
        int32_t partition = (int32_t)strtol(num, NULL, 10);
        size_t tl = (size_t)(slash - (k + kl));
        size_t i = 0;
        while (i < *n &&
               !(strlen((*rows)[i].topic) == tl && memcmp((*rows)[i].topic, k + kl, tl) == 0 &&
                 (*rows)[i].partition == partition)) {
            i++;
        }
        if (i == *n) {
            if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 16;
                struct offset_row *nr = realloc(*rows, nc * sizeof *nr);
                if (!nr) {
                    return;
                }
                *rows = nr;
                *cap = nc;
            }
            struct offset_row *r = &(*rows)[(*n)++];
            memset(r, 0, sizeof *r);
            r->topic = strndup(k + kl, tl);
            r->partition = partition;
            if (!r->topic) {
                (*n)--;
                return;
            }
        }
        int64_t val = get_le64((const unsigned char *)v);
        if (kind[0] == 'o') {
            (*rows)[i].has_offset = 1;
            (*rows)[i].offset = val;
        } else {
            (*rows)[i].has_watermark = 1;
            (*rows)[i].watermark = val;
        }
    }
}

void vs__store_foreach_offset(struct vs__store *st, vs__store_offset_fn fn, void *arg)
{
    struct offset_row *rows = NULL;
    size_t n = 0, cap = 0;
    rocksdb_iterator_t *it = pending_iterator(st, st->ro, CF_META);
    collect_offsets(st, it, "offset/", &rows, &n, &cap);
    collect_offsets(st, it, "watermark/", &rows, &n, &cap);
    rocksdb_iter_destroy(it);
    if (n) {
        qsort(rows, n, sizeof *rows, offset_row_cmp);
    }
    for (size_t i = 0; i < n; i++) {
        fn(arg, rows[i].topic, rows[i].partition, rows[i].has_offset ? rows[i].offset : -1,
           rows[i].has_watermark, rows[i].watermark);
        free(rows[i].topic);
    }
    free(rows);
}

void vs__store_foreach_section_version(struct vs__store *st, vs__store_section_fn fn, void *arg)
{
    rocksdb_iterator_t *it = pending_iterator(st, st->ro, CF_META);
    for (rocksdb_iter_seek(it, "section/", 8); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (klen < 8 || memcmp(k, "section/", 8) != 0) {
            break;
        }
        char name[300], num[16];
        if (klen - 8 >= sizeof name || vlen >= sizeof num) {
            continue;
        }
        memcpy(name, k + 8, klen - 8);
        name[klen - 8] = '\0';
        memcpy(num, v, vlen);
        num[vlen] = '\0';
        fn(arg, name, (uint32_t)strtoul(num, NULL, 10));
    }
    rocksdb_iter_destroy(it);
}

/* ==== Timers ==== */

#define VS__TS_BIAS ((uint64_t)1 << 63)

/* (partition u32, fire_ts biased i64, user id, 0, op u8, tag u32), all big-endian, so that the
 * byte order of keys is (partition, fire time, user, operator, tag). */
static size_t timer_key(unsigned char *k, int32_t partition, int64_t fire_ts, const char *user,
                        size_t ulen, uint8_t op, uint32_t tag)
{
    put_be32(k, (uint32_t)partition);
    put_be64(k + 4, (uint64_t)fire_ts ^ VS__TS_BIAS);
    memcpy(k + 12, user, ulen);
    k[12 + ulen] = 0;
    k[13 + ulen] = op;
    put_be32(k + 14 + ulen, tag);
    return 18 + ulen;
}

/* The lower bound of fire times of a partition's timers, or NULL when it cannot be kept. */
static int64_t *timer_lb(struct vs__store *st, int32_t partition)
{
    size_t p = (size_t)partition;
    if (p >= st->ntimer_lb) {
        if (p >= ((size_t)1 << 20)) {
            return NULL;
        }
        size_t n = st->ntimer_lb ? st->ntimer_lb : 16;
        while (n <= p) {
            n *= 2;
        }
        int64_t *nl = realloc(st->timer_lb, n * sizeof *nl);
        if (!nl) {
            return NULL;
        }
        st->timer_lb = nl;
        struct timer_cache **nc = realloc(st->timer_cache, n * sizeof *nc);
        if (!nc) {
            return NULL;
        }
        st->timer_cache = nc;
        for (size_t i = st->ntimer_lb; i < n; i++) {
            nl[i] = INT64_MIN;
            nc[i] = NULL;
        }
        st->ntimer_lb = n;
    }
    return &st->timer_lb[p];
}

/* The partition's timer cache (allocated on first use), or NULL: then every call scans. */
static struct timer_cache *timer_cache(struct vs__store *st, int32_t partition)
{
    if (!timer_lb(st, partition)) {
        return NULL;
    }
    struct timer_cache **tc = &st->timer_cache[partition];
    if (!*tc) {
        *tc = calloc(1, sizeof **tc);
    }
    return *tc;
}

static int64_t key_fire(const unsigned char *k)
{
    return (int64_t)(get_be64(k + 4) ^ VS__TS_BIAS);
}

/* Keep a set or cancelled timer's key in step with the cache of its partition. */
static void timer_cache_note(struct vs__store *st, int32_t partition, const unsigned char *k,
                             size_t kl, int64_t fire_ts, int set)
{
    struct timer_cache *tc = (size_t)partition < st->ntimer_lb ? st->timer_cache[partition] : NULL;
    if (!tc || !tc->valid || fire_ts > tc->until) {
        return;
    }
    int i = 0;
    while (i < tc->n && vs__key_cmp(tc->key[i], tc->len[i], k, kl) < 0) {
        i++;
    }
    int found = i < tc->n && vs__key_cmp(tc->key[i], tc->len[i], k, kl) == 0;
    if (set && !found) {
        if (tc->n == TIMER_CACHE_N) {
            tc->valid = 0; /* full: the next call scans again */
            return;
        }
        memmove(tc->key[i + 1], tc->key[i], (size_t)(tc->n - i) * sizeof tc->key[0]);
        memmove(&tc->len[i + 1], &tc->len[i], (size_t)(tc->n - i) * sizeof tc->len[0]);
        memcpy(tc->key[i], k, kl);
        tc->len[i] = (uint16_t)kl;
        tc->n++;
    } else if (!set && found) {
        memmove(tc->key[i], tc->key[i + 1], (size_t)(tc->n - i - 1) * sizeof tc->key[0]);
        memmove(&tc->len[i], &tc->len[i + 1], (size_t)(tc->n - i - 1) * sizeof tc->len[0]);
        tc->n--;
    }
}

static int timer_check(struct vs__store *st, int32_t partition, const char *user_id, size_t *ulen)
{
    if (st->read_only) {
        return fail(st, VS_EINVAL, "the store is open read-only");
    }
    *ulen = user_id ? strlen(user_id) : 0;
    if (partition < 0 || *ulen == 0 || *ulen > VS__STORE_USER_ID_MAX) {
        return fail(st, VS_EINVAL, "invalid timer (partition %d, customer id of %zu bytes)",
                    (int)partition, *ulen);
    }
    return 0;
}

int vs__store_timer_set(struct vs__store *st, int32_t partition, int64_t fire_ts,
                        const char *user_id, uint8_t op, uint32_t tag)
{
    size_t ulen = 0;
    int rc = timer_check(st, partition, user_id, &ulen);
    if (rc != 0) {
        return rc;
    }
    unsigned char k[VS__TIMER_KEY_MAX];
    size_t kl = timer_key(k, partition, fire_ts, user_id, ulen, op, tag);
    if (vs__timerlog_add(st->timers, partition, k, kl, 0) != 0) {
        return fail(st, VS_ENOMEM, "out of memory for a timer");
    }
    timer_cache_note(st, partition, k, kl, fire_ts, 1);
    int64_t *lb = timer_lb(st, partition);
    if (lb && *lb != INT64_MIN && fire_ts < *lb) {
        *lb = fire_ts;
    }
    return 0;
}

int vs__store_timer_cancel(struct vs__store *st, int32_t partition, int64_t fire_ts,
                           const char *user_id, uint8_t op, uint32_t tag)
{
    size_t ulen = 0;
    int rc = timer_check(st, partition, user_id, &ulen);
    if (rc != 0) {
        return rc;
    }
    unsigned char k[VS__TIMER_KEY_MAX];
    size_t kl = timer_key(k, partition, fire_ts, user_id, ulen, op, tag);
    if (vs__timerlog_add(st->timers, partition, k, kl, 1) != 0) {
        return fail(st, VS_ENOMEM, "out of memory for a timer");
    }
    timer_cache_note(st, partition, k, kl, fire_ts, 0);
    return 0;
}

/* Copy a timer key's customer, fire time, operator and tag out. */
static int timer_key_out(struct vs__store *st, const unsigned char *k, size_t klen,
                         int64_t *fire_ts, char *user_buf, size_t user_buflen, uint8_t *op,
                         uint32_t *tag)
{
    size_t ulen = klen - 18;
    if (ulen + 1 > user_buflen) {
        return fail(st, VS_ETOOBIG, "customer id of %zu bytes does not fit", ulen);
    }
    memcpy(user_buf, k + 12, ulen);
    user_buf[ulen] = '\0';
    *fire_ts = key_fire(k);
    *op = k[13 + ulen];
    *tag = get_be32(k + 14 + ulen);
    return 0;
}

/*
 * The earliest due timer of a partition, committed or pending, not cancelled. The engine asks
 * after every watermark advance, and almost always nothing is due, so each partition keeps a
 * lower bound of its timers' fire times (lowered by every set, raised by every scan): when the
 * watermark is below it the answer needs no RocksDB iterator. A scan seeks to that bound, which
 * also skips the tombstones of timers already fired, and reads up to TIMER_CACHE_N timers up to
 * a window past the watermark (pending or committed, the iterator merges both; an hour to 30
 * days, widened while scans find few timers and narrowed when they fill the cache) into
 * the partition's cache, which then answers until the watermark passes what it covers. So one
 * scan serves a window of event time or a cache of timers, and it still stops before the
 * tombstones of timers cancelled further out. (The iterator's upper bound binds the
 * DB alone: a pending key past the window says nothing of committed ones before it, so the
 * scan stops there.)
 */
#define TIMER_LOOKAHEAD_MS 3600000       /* the narrowest window a scan looks past the watermark */
#define TIMER_WINDOW_MAX_MS 2592000000LL /* and the widest, 30 days */

/* The cache's answer: 0 with the first due timer, VS_ENOTFOUND, or 1 when it does not know. */
static int timer_cache_answer(struct vs__store *st, struct timer_cache *tc, int64_t upto,
                              int64_t *lb, int64_t *fire_ts, char *user_buf, size_t user_buflen,
                              uint8_t *op, uint32_t *tag)
{
    if (tc->n > 0) {
        int64_t f = key_fire(tc->key[0]);
        if (lb) {
            *lb = f;
        }
        if (f > upto) {
            return VS_ENOTFOUND;
        }
        return timer_key_out(st, tc->key[0], tc->len[0], fire_ts, user_buf, user_buflen, op, tag);
    }
    if (upto <= tc->until) {
        if (lb) {
            *lb = tc->until == INT64_MAX ? INT64_MAX : tc->until + 1;
        }
        return VS_ENOTFOUND;
    }
    return 1;
}

/*
 * A scan of one partition's live timers in key order: the committed ones (a RocksDB iterator)
 * merged with the pending changes of the sealed commit and of the one being built, where the
 * newest change of a key decides whether it is set or cancelled.
 */
struct timer_scan {
    rocksdb_iterator_t *it;
    struct vs__timerlog_view log[2]; /* [0] since the seal (newest), [1] the sealed commit */
    size_t pos[2];
    unsigned char key[VS__TIMER_KEY_MAX];
    size_t len;
};

static int timer_scan_start(struct vs__store *st, struct timer_scan *sc, int32_t partition,
                            const unsigned char *seek, size_t seek_len)
{
    if (vs__timerlog_sorted(st->timers, partition, &sc->log[0]) != 0 ||
        vs__timerlog_sorted(st->timers_sealed, partition, &sc->log[1]) != 0) {
        return fail(st, VS_ENOMEM, "out of memory for a timer scan");
    }
    for (int g = 0; g < 2; g++) {
        sc->pos[g] = vs__timerlog_lower_bound(&sc->log[g], seek, seek_len);
    }
    sc->it = rocksdb_create_iterator_cf(st->db, st->ro_timer, st->cf[CF_TIMERS]);
    rocksdb_iter_seek(sc->it, (const char *)seek, seek_len);
    return 0;
}

/* The next live timer into sc->key: 1, 0 at the end, VS_ECORRUPT for an oversized key. */
static int timer_scan_next(struct timer_scan *sc)
{
    for (;;) {
        const unsigned char *best = NULL, *dk = NULL;
        size_t blen = 0, dlen = 0;
        if (rocksdb_iter_valid(sc->it)) {
            dk = (const unsigned char *)rocksdb_iter_key(sc->it, &dlen);
            best = dk;
            blen = dlen;
        }
        struct vs__timerlog_entry e[2];
        int has[2];
        for (int g = 0; g < 2; g++) {
            has[g] = sc->pos[g] < sc->log[g].n;
            if (has[g]) {
                vs__timerlog_at(&sc->log[g], sc->pos[g], &e[g]);
                if (!best || vs__key_cmp(e[g].key, e[g].len, best, blen) < 0) {
                    best = e[g].key;
                    blen = e[g].len;
                }
            }
        }
        if (!best) {
            return 0;
        }
        if (blen > VS__TIMER_KEY_MAX) {
            return VS_ECORRUPT;
        }
        memcpy(sc->key, best, blen);
        sc->len = blen;
        int decided = 0, cancel = 0;
        for (int g = 0; g < 2; g++) {
            if (has[g] && vs__key_cmp(e[g].key, e[g].len, sc->key, sc->len) == 0) {
                if (!decided) {
                    cancel = e[g].cancel;
                    decided = 1;
                }
                sc->pos[g]++;
            }
        }
        if (dk && vs__key_cmp(dk, dlen, sc->key, sc->len) == 0) {
            rocksdb_iter_next(sc->it);
        }
        if (!cancel) {
            return 1;
        }
    }
}

int vs__store_timer_next(struct vs__store *st, int32_t partition, int64_t upto, int64_t *fire_ts,
                         char *user_buf, size_t user_buflen, uint8_t *op, uint32_t *tag)
{
    if (partition < 0) {
        return fail(st, VS_EINVAL, "invalid partition %d", (int)partition);
    }
    int64_t *lb = timer_lb(st, partition);
    int64_t from = lb ? *lb : INT64_MIN;
    if (from != INT64_MIN && upto < from) {
        return VS_ENOTFOUND;
    }
    struct timer_cache *tc = timer_cache(st, partition);
    if (tc && tc->valid) {
        int rc = timer_cache_answer(st, tc, upto, lb, fire_ts, user_buf, user_buflen, op, tag);
        if (rc != 1) {
            return rc;
        }
    }

    size_t blen;
    int64_t window = tc && tc->window ? tc->window : TIMER_LOOKAHEAD_MS;
    int64_t horizon = upto > INT64_MAX - window - 1 ? INT64_MAX : upto + window;
    if (horizon == INT64_MAX) {
        put_be32((unsigned char *)st->timer_bound, (uint32_t)partition + 1);
        blen = 4;
    } else {
        put_be32((unsigned char *)st->timer_bound, (uint32_t)partition);
        put_be64((unsigned char *)st->timer_bound + 4, (uint64_t)(horizon + 1) ^ VS__TS_BIAS);
        blen = 12;
    }
    rocksdb_readoptions_set_iterate_upper_bound(st->ro_timer, st->timer_bound, blen);
    unsigned char seek[12];
    put_be32(seek, (uint32_t)partition);
    put_be64(seek + 4, (uint64_t)from ^ VS__TS_BIAS);
    struct timer_scan sc;
    int rc = timer_scan_start(st, &sc, partition, seek, sizeof seek);
    if (rc != 0) {
        rocksdb_readoptions_set_iterate_upper_bound(st->ro_timer, NULL, 0);
        if (tc) {
            tc->valid = 0;
        }
        return rc;
    }

    /* Read the window's timers in order: into the cache, or (without one) just the first. */
    unsigned char first[VS__TIMER_KEY_MAX];
    size_t first_len = 0;
    int complete = 1, more;
    if (tc) {
        tc->n = 0;
    }
    while ((more = timer_scan_next(&sc)) == 1) {
        size_t klen = sc.len;
        const unsigned char *k = sc.key;
        if (klen < 19 || klen > VS__TIMER_KEY_MAX || get_be32(k) != (uint32_t)partition) {
            break;
        }
        if (k[klen - 6] != 0) {
            rc = fail(st, VS_ECORRUPT, "malformed timer key in partition %d", (int)partition);
            break;
        }
        if (key_fire(k) > horizon) {
            break;
        }
        if (!first_len) {
            memcpy(first, k, klen);
            first_len = klen;
        }
        if (!tc) {
            complete = 0;
            break;
        }
        if (tc->n == TIMER_CACHE_N) {
            complete = 0;
            break;
        }
        memcpy(tc->key[tc->n], k, klen);
        tc->len[tc->n++] = (uint16_t)klen;
    }
    if (more < 0 && rc == 0) {
        rc = fail(st, VS_ECORRUPT, "malformed timer key in partition %d", (int)partition);
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(sc.it, &rerr);
    rocksdb_iter_destroy(sc.it);
    rocksdb_readoptions_set_iterate_upper_bound(st->ro_timer, NULL, 0);
    if (rerr) {
        if (tc) {
            tc->valid = 0;
        }
        return fail_rocks(st, rerr, "cannot read timers");
    }
    if (rc) {
        if (tc) {
            tc->valid = 0;
        }
        return rc;
    }
    if (tc) {
        /* A window that held few timers widens for the next scan, one that overflowed the
         * cache narrows: scans follow the partition's density of timers. */
        tc->window = complete
                         ? (window < TIMER_WINDOW_MAX_MS / 2 ? window * 2 : TIMER_WINDOW_MAX_MS)
                         : (window > 2 * TIMER_LOOKAHEAD_MS ? window / 2 : TIMER_LOOKAHEAD_MS);
        tc->until = horizon;
        if (!complete) {
            /* Cut at the last fire time read whole: timers that share the last one may go on
             * past the cache. */
            int64_t last = key_fire(tc->key[tc->n - 1]);
            while (tc->n > 0 && key_fire(tc->key[tc->n - 1]) == last) {
                tc->n--;
            }
            tc->until = last - 1;
        }
        tc->valid = complete || tc->n > 0;
        if (tc->valid) {
            return timer_cache_answer(st, tc, upto, lb, fire_ts, user_buf, user_buflen, op, tag);
        }
    }
    /* No cache, or more timers at one fire time than it holds: the first one alone. */
    if (!first_len) {
        if (lb) {
            *lb = horizon == INT64_MAX ? INT64_MAX : horizon + 1;
        }
        return VS_ENOTFOUND;
    }
    int64_t f = key_fire(first);
    if (lb) {
        *lb = f;
    }
    if (f > upto) {
        return VS_ENOTFOUND;
    }
    return timer_key_out(st, first, first_len, fire_ts, user_buf, user_buflen, op, tag);
}

/* ==== Models ==== */

int vs__store_model_get(struct vs__store *st, const char *key, void **val, size_t *len)
{
    char *rerr = NULL;
    size_t vlen = 0;
    char *v = pending_get(st, CF_MODELS, key, strlen(key), &vlen, &rerr);
    if (rerr) {
        return fail_rocks(st, rerr, "cannot read a model");
    }
    if (!v) {
        return VS_ENOTFOUND;
    }
    *val = v;
    *len = vlen;
    return 0;
}

int vs__store_model_put(struct vs__store *st, const char *key, const void *val, size_t len)
{
    if (st->read_only) {
        return fail(st, VS_EINVAL, "the store is open read-only");
    }
    pending_put(st, CF_MODELS, key, strlen(key), val, len);
    return 0;
}

int vs__store_model_delete(struct vs__store *st, const char *key)
{
    if (st->read_only) {
        return fail(st, VS_EINVAL, "the store is open read-only");
    }
    pending_delete(st, CF_MODELS, key, strlen(key));
    return 0;
}

/* ==== Commit ==== */

static int customer_cmp(const void *a, const void *b)
{
    const struct vs__customer *x = *(struct vs__customer *const *)a;
    const struct vs__customer *y = *(struct vs__customer *const *)b;
    size_t n = x->id_len < y->id_len ? x->id_len : y->id_len;
    int c = memcmp(x->id, y->id, n);
    return c ? c : (x->id_len > y->id_len) - (x->id_len < y->id_len);
}

/*
 * Write every pending change as one WriteBatch: the pending batch's operations (timers, models,
 * meta) copied as they are, then every dirty record. The records go into a plain WriteBatch,
 * not the indexed one: they need no read-your-writes index, and indexing them cost as much as
 * writing them. They are added in key order, which lets RocksDB insert them into the memtable
 * along one skiplist path. On failure nothing changes in memory: the records stay dirty and
 * the pending batch keeps its contents. On success the dirty list, most recent first, becomes
 * the head of the clean LRU list and the cache is brought back within its budget.
 */
struct timer_batch {
    struct vs__store *st;
    rocksdb_writebatch_t *batch;
};

static int timer_batch_add(const struct vs__timerlog_entry *e, void *arg)
{
    struct timer_batch *tb = arg;
    rocksdb_column_family_handle_t *cf = tb->st->cf[CF_TIMERS];
    if (e->cancel) {
        rocksdb_writebatch_delete_cf(tb->batch, cf, (const char *)e->key, e->len);
    } else {
        rocksdb_writebatch_put_cf(tb->batch, cf, (const char *)e->key, e->len, "", 0);
    }
    return 0;
}

/* Room for the index of n sealed records; 0 without it (the records then stay cached). */
static int seal_index_reserve(struct vs__store *st, size_t n)
{
    size_t tsize = 16;
    while (tsize < 2 * n) {
        tsize *= 2;
    }
    if (n > st->seal_slots_cap) {
        struct seal_slot *ns = realloc(st->seal_slots, n * sizeof *ns);
        if (!ns) {
            return 0;
        }
        st->seal_slots = ns;
        st->seal_slots_cap = n;
    }
    if (tsize > st->seal_table_size || !st->seal_table) {
        uint32_t *nt = realloc(st->seal_table, tsize * sizeof *nt);
        if (!nt) {
            return 0;
        }
        st->seal_table = nt;
        st->seal_table_size = tsize;
    }
    return n < UINT32_MAX;
}

/* Check that every slot points at its record's key in the batch (the layout of a put is
 * RocksDB's, not an API) and fill the hash table; 0 when a slot does not match. */
static int seal_index_build(struct vs__store *st, rocksdb_writebatch_t *batch, size_t n)
{
    size_t size;
    st->seal_rep = rocksdb_writebatch_data(batch, &size);
    memset(st->seal_table, 0, st->seal_table_size * sizeof *st->seal_table);
    size_t mask = st->seal_table_size - 1;
    for (size_t i = 0; i < n; i++) {
        const struct seal_slot *sl = &st->seal_slots[i];
        const struct vs__customer *e = st->sort_buf[i];
        if (sl->val_off + sl->val_len > size || sl->key_off >= sl->val_off ||
            sl->key_off + e->id_len > sl->val_off ||
            memcmp(st->seal_rep + sl->key_off, e->id, e->id_len) != 0) {
            return 0;
        }
        size_t j = (size_t)sl->hash & mask;
        while (st->seal_table[j]) {
            j = (j + 1) & mask;
        }
        st->seal_table[j] = (uint32_t)i + 1;
    }
    return 1;
}

int vs__store_seal(struct vs__store *st)
{
    if (st->read_only) {
        return fail(st, VS_EINVAL, "the store is open read-only");
    }
    if (st->sealed) {
        return fail(st, VS_EINVAL, "a sealed commit is not written yet");
    }
    rocksdb_writebatch_wi_t *fresh = rocksdb_writebatch_wi_create(0, 1);
    rocksdb_writebatch_t *next = st->spare ? st->spare : rocksdb_writebatch_create();
    if (!fresh || !next) {
        if (fresh) {
            rocksdb_writebatch_wi_destroy(fresh);
        }
        if (next && next != st->spare) {
            rocksdb_writebatch_destroy(next);
        }
        return fail(st, VS_ENOMEM, "out of memory");
    }
    if (st->ndirty > st->sort_cap) {
        size_t cap = st->ndirty + st->ndirty / 2;
        struct vs__customer **nb = realloc(st->sort_buf, cap * sizeof *nb);
        if (!nb) { /* the old buffer stays valid */
            rocksdb_writebatch_wi_destroy(fresh);
            if (next != st->spare) {
                rocksdb_writebatch_destroy(next);
            }
            return fail(st, VS_ENOMEM, "out of memory");
        }
        st->sort_buf = nb;
        st->sort_cap = cap;
    }
    size_t n = 0;
    for (struct vs__link *l = st->dirty.next; l != &st->dirty; l = l->next) {
        st->sort_buf[n++] = (struct vs__customer *)l;
    }
    if (n > 1) {
        qsort(st->sort_buf, n, sizeof *st->sort_buf, customer_cmp);
    }

    /* The batch begins with the pending operations (models, meta), kept in order beside the
     * indexed batch. A fresh batch for each commit, copied from the indexed one's, grew by
     * doubling to the size of the commit and faulted its pages in each time (3-4 % of a
     * replay's loop); a written batch's buffer now serves the next commit but one, unless it
     * is large (SPARE_MAX). */
    rocksdb_writebatch_t *batch = st->pend;
    st->pend = next;
    st->spare = NULL;
    struct timer_batch tb = {st, batch};
    vs__timerlog_foreach(st->timers, timer_batch_add, &tb);
    int indexed = seal_index_reserve(st, n);
    for (size_t i = 0; i < n; i++) {
        struct vs__customer *e = st->sort_buf[i];
        size_t len = encode_record(st, e);
        rocksdb_writebatch_put_cf(batch, st->cf[CF_CUSTOMERS], e->id, e->id_len,
                                  (const char *)st->enc, len);
        if (indexed) {
            /* A put appends the key, the value's varint length and the value. */
            size_t size;
            rocksdb_writebatch_data(batch, &size);
            struct seal_slot *sl = &st->seal_slots[i];
            sl->hash = e->hash;
            sl->val_len = len;
            sl->val_off = size - len;
            sl->key_off = sl->val_off - varint_size(len) - e->id_len;
        }
        e->seal_pos = (uint32_t)i;
    }
    st->sealed = batch;
    st->seal_ok = indexed && seal_index_build(st, batch, n);
    st->wb_sealed = st->wb;
    st->wb = fresh;
    struct vs__timerlog *spare = st->timers_sealed; /* written: the previous seal's */
    vs__timerlog_reset(spare);
    st->timers_sealed = st->timers;
    st->timers = spare;

    st->nsealed = n;
    if (st->ndirty) {
        for (struct vs__link *l = st->dirty.next; l != &st->dirty; l = l->next) {
            ((struct vs__customer *)l)->dirty = 0;
            ((struct vs__customer *)l)->in_seal = 1;
        }
        struct vs__link *first = st->dirty.next, *last = st->dirty.prev;
        last->next = st->clean.next;
        st->clean.next->prev = last;
        st->clean.next = first;
        first->prev = &st->clean;
        st->dirty.next = st->dirty.prev = &st->dirty;
        st->ndirty = 0;
    }
    return 0;
}

int vs__store_is_sealed(const struct vs__store *st)
{
    return st->sealed != NULL;
}

void vs__store_write_sealed_raw(struct vs__store *st, char **err)
{
    *err = NULL;
    if (st->sealed) {
        rocksdb_write(st->db, st->wo, st->sealed, err);
    }
}

int vs__store_write_sealed(struct vs__store *st)
{
    char *rerr;
    vs__store_write_sealed_raw(st, &rerr);
    return vs__store_sealed_written(st, rerr);
}

int vs__store_sealed_written(struct vs__store *st, char *rerr)
{
    if (!st->sealed) {
        free(rerr);
        return 0;
    }
    if (rerr) {
        /* The sealed batch stays: the engine stops, and a restart replays from the last
         * commit that was written. */
        return fail_rocks(st, rerr, "commit failed");
    }
    /* A written batch of up to SPARE_MAX bytes keeps its buffer for a later commit. A larger
     * one is freed: held between commits beside the next one's, it would add its size to the
     * peak RSS (1M customers: 207.8 against 192.6 MiB), more than regrowing costs. */
    size_t used = 0;
    rocksdb_writebatch_data(st->sealed, &used);
    if (st->spare || used > SPARE_MAX) {
        rocksdb_writebatch_destroy(st->sealed);
    } else {
        rocksdb_writebatch_clear(st->sealed);
        st->spare = st->sealed;
    }
    rocksdb_writebatch_wi_destroy(st->wb_sealed);
    st->sealed = NULL;
    st->wb_sealed = NULL;
    vs__timerlog_reset(st->timers_sealed);
    for (size_t i = 0; i < st->nsealed; i++) {
        if (st->sort_buf[i]) { /* NULL: evicted meanwhile */
            st->sort_buf[i]->in_seal = 0;
        }
    }
    st->nsealed = 0;
    st->seal_ok = 0;
    st->seal_rep = NULL;
    cache_evict(st, 0);
    return 0;
}

int vs__store_commit(struct vs__store *st)
{
    int rc = vs__store_write_sealed(st);
    if (rc == 0 &&
        (st->ndirty || rocksdb_writebatch_wi_count(st->wb) || vs__timerlog_count(st->timers))) {
        rc = vs__store_seal(st);
        if (rc == 0) {
            rc = vs__store_write_sealed(st);
        }
    }
    if (rc == 0) {
        cache_evict(st, 0);
    }
    return rc;
}

/* ==== Iteration and statistics ==== */

int vs__store_foreach_customer(struct vs__store *st, vs__store_customer_fn fn, void *arg)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ro, st->cf[CF_CUSTOMERS]);
    struct vs__customer *c = st->scratch;
    int rc = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (klen == 0 || klen > VS__STORE_USER_ID_MAX) {
            rc = fail(st, VS_ECORRUPT, "stored customer key of %zu bytes", klen);
            break;
        }
        memcpy(c->id, k, klen);
        c->id[klen] = '\0';
        c->id_len = (uint32_t)klen;
        rc = decode_record(st, (const unsigned char *)v, vlen, c->data, c->id, &c->present);
        if (rc == 0) {
            rc = fn(arg, c->id, klen, c);
        }
        if (rc != 0) {
            break;
        }
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    if (rerr) {
        return fail_rocks(st, rerr, "cannot read customer records");
    }
    return rc;
}

int vs__store_count_customers(struct vs__store *st, uint64_t *records, uint64_t *bytes)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, ro, st->cf[CF_CUSTOMERS]);
    uint64_t n = 0, b = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        rocksdb_iter_key(it, &klen);
        rocksdb_iter_value(it, &vlen);
        n++;
        b += klen + vlen;
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (rerr) {
        return fail_rocks(st, rerr, "cannot read customer records");
    }
    *records = n;
    *bytes = b;
    return 0;
}

void vs__store_stats(struct vs__store *st, struct vs__store_stats *out)
{
    memset(out, 0, sizeof *out);
    uint64_t v = 0;
    if (rocksdb_property_int_cf(st->db, st->cf[CF_CUSTOMERS], "rocksdb.estimate-num-keys", &v) ==
        0) {
        out->customers = v;
    }
    for (int i = 0; i < CF_COUNT; i++) {
        if (rocksdb_property_int_cf(st->db, st->cf[i], "rocksdb.live-sst-files-size", &v) == 0) {
            out->bytes += v;
        }
    }
    for (int i = 0; i < CF_COUNT; i++) {
        if (rocksdb_property_int_cf(st->db, st->cf[i], "rocksdb.cur-size-all-mem-tables", &v) ==
            0) {
            out->memtables += v;
        }
        if (rocksdb_property_int_cf(st->db, st->cf[i], "rocksdb.estimate-table-readers-mem", &v) ==
            0) {
            out->table_readers += v;
        }
    }
    out->block_cache = rocksdb_cache_get_usage(st->block_cache);
    size_t n = 0;
    rocksdb_writebatch_wi_data(st->wb, &n);
    out->batches = n;
    if (st->wb_sealed) {
        rocksdb_writebatch_wi_data(st->wb_sealed, &n);
        out->batches += n;
    }
    if (st->sealed) {
        rocksdb_writebatch_data(st->sealed, &n);
        out->batches += n;
    }
    if (st->pend) {
        rocksdb_writebatch_data(st->pend, &n);
        out->batches += n;
    }
    if (st->timers) {
        out->batches += vs__timerlog_bytes(st->timers) + vs__timerlog_bytes(st->timers_sealed);
    }
    out->cache_records = st->nentries;
    out->cache_bytes = st->used + st->free_bytes;
    out->cache_hits = st->hits;
    out->cache_misses = st->misses;
    out->evictions = st->evictions;
    out->sealed_reads = st->sealed_reads;
}

/* ==== Close ==== */

static void free_list_entries(struct vs__link *head)
{
    struct vs__link *l = head->next;
    while (l != head) {
        struct vs__link *next = l->next;
        free(l);
        l = next;
    }
}

/*
 * Close the store. Uncommitted changes are dropped: that is the contract (the directory holds
 * the last commit). The memtables are flushed first so that the next open replays no WAL.
 */
void vs__store_close(struct vs__store *st)
{
    if (!st) {
        return;
    }
    if (st->db) {
        if (!st->read_only) {
            rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
            rocksdb_flushoptions_set_wait(fo, 1);
            for (int i = 0; i < CF_COUNT; i++) {
                char *rerr = NULL;
                rocksdb_flush_cf(st->db, fo, st->cf[i], &rerr);
                free(rerr);
            }
            rocksdb_flushoptions_destroy(fo);
        }
        for (int i = 0; i < CF_COUNT; i++) {
            if (st->cf[i]) {
                rocksdb_column_family_handle_destroy(st->cf[i]);
            }
        }
        rocksdb_close(st->db);
    }
    if (st->wb) {
        rocksdb_writebatch_wi_destroy(st->wb);
    }
    if (st->pend) {
        rocksdb_writebatch_destroy(st->pend);
    }
    if (st->spare) {
        rocksdb_writebatch_destroy(st->spare);
    }
    vs__timerlog_free(st->timers);
    vs__timerlog_free(st->timers_sealed);
    if (st->sealed) {
        rocksdb_writebatch_destroy(st->sealed);
        rocksdb_writebatch_wi_destroy(st->wb_sealed);
    }
    for (int i = 0; i < CF_COUNT; i++) {
        if (st->cfopts[i]) {
            rocksdb_options_destroy(st->cfopts[i]);
        }
        if (st->bbto[i]) {
            rocksdb_block_based_options_destroy(st->bbto[i]);
        }
    }
    if (st->dbopts) {
        rocksdb_options_destroy(st->dbopts);
    }
    if (st->block_cache) {
        rocksdb_cache_destroy(st->block_cache);
    }
    if (st->ro) {
        rocksdb_readoptions_destroy(st->ro);
    }
    if (st->ro_timer) {
        rocksdb_readoptions_destroy(st->ro_timer);
    }
    if (st->wo) {
        rocksdb_writeoptions_destroy(st->wo);
    }
    free_list_entries(&st->clean);
    free_list_entries(&st->dirty);
    for (int i = 0; i <= VS__NCLASS; i++) {
        struct vs__customer *e = st->free_list[i], *next;
        for (; e; e = next) {
            next = e->hnext;
            free(e);
        }
    }
    free(st->buckets);
    free(st->sort_buf);
    free(st->seal_slots);
    free(st->seal_table);
    free(st->scratch);
    free(st->enc);
    free(st->upgrade_buf);
    free(st->secs);
    free(st->sec_off);
    for (size_t i = 0; i < st->ntimer_lb; i++) {
        free(st->timer_cache[i]);
    }
    free(st->timer_cache);
    free(st->timer_lb);
    free(st->dir);
    free(st);
}
