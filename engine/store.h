/*
 * The state store: customers, timers, models and meta in RocksDB, with a bounded write-back
 * cache of customer records in front (DESIGN.md contracts 2, 3 and 5).
 *
 * Column families: "customers" (user id -> record), "models" ("<operator>/<key>" -> blob),
 * "timers" ((partition, fire time, user, operator, tag) -> empty), "meta" (format marker, input
 * offsets, watermarks, section versions).
 *
 * Everything written between two commits is pending: customer records stay dirty in the cache
 * (a dirty record is never evicted; when the cache is over its budget with only dirty records,
 * vs_store_wants_commit() says so), and timer changes, model puts and offsets go into one
 * pending batch. vs_store_commit() writes all of it as ONE RocksDB WriteBatch, so a crash
 * anywhere leaves the store at the previous commit, exactly.
 *
 * Reads see pending writes: a customer comes from the cache first; timer scans merge the pending
 * timer changes (timerlog.h) with the timers column family; models and meta are read through
 * the pending batch (WriteBatchWithIndex over the base DB).
 *
 * Customer record layout (stable, little-endian): "VSC" u8 format(1), u16 nsections, then per
 * section: u8 name_len, name, u32 version, u32 len, bytes. Sections of unknown operators are an
 * error; older versions are upgraded on read through the section's upgrade callback; newer
 * versions are an error naming the operator and both versions.
 */
#ifndef VS_ENGINE_STORE_H
#define VS_ENGINE_STORE_H

#include <stddef.h>
#include <stdint.h>

/* One operator's section of the customer record. */
struct vs__section_desc {
    const char *name;
    uint32_t version;
    size_t size;
    int (*upgrade)(uint32_t from_version, const void *old, size_t old_len, void *section);
    /* Nothing writes this section in this process (its operator is off): a record keeps it
     * as it was read, and one read without it is not scanned for it at each commit. */
    int passive;
};

/* The longest customer id the store keeps (records and timers); longer ids are VS_EINVAL, so
 * the decoder should dead-letter them. */
#define VS__STORE_USER_ID_MAX 256

struct vs__store_options {
    size_t cache_bytes;         /* budget of the customer cache, in bytes */
    size_t rocksdb_cache_bytes; /* RocksDB block cache (index and filter blocks included);
                                   0 = 32 MiB */
    int read_only;              /* for `valuestream inspect`: open for reading only */
    int create_if_missing;      /* 0 for inspect: a missing directory is an error */
    int no_sync;                /* 1: a commit does not fsync the WAL (survives a process
                                   crash, not a machine crash) */
};

struct vs__store;

/*
 * A customer record in the cache. Its sections are one contiguous, zero-initialised block;
 * vs__customer_section() returns section i (in the order of the descs given to open).
 * The pointer is valid until the next vs__store_customer() call or commit.
 */
struct vs__customer;

/* Open (and on first use, create and mark as valuestream's) the store in dir. NULL and errbuf
 * on failure: a foreign RocksDB directory, a newer format, a corrupt directory are each named. */
struct vs__store *vs__store_open(const char *dir, const struct vs__section_desc *secs, int nsecs,
                                 const struct vs__store_options *opts, char *errbuf, size_t errlen);
void vs__store_close(struct vs__store *st);

/* Load (cache, else RocksDB, else a new zeroed record) and mark dirty. *is_new tells whether
 * the customer had no record. Returns 0 or a VS_E* code (a record that fails to decode or
 * upgrade is VS_ECORRUPT/VS_EVERSION, with the reason in vs__store_last_error()). */
int vs__store_customer(struct vs__store *st, const char *user_id, size_t len,
                       struct vs__customer **out, int *is_new);
void *vs__customer_section(struct vs__customer *c, int i);
const char *vs__customer_id(const struct vs__customer *c);
const char *vs__store_last_error(const struct vs__store *st);

/* Input offsets (the next offset to consume) and watermarks, per topic and partition.
 * get returns VS_ENOTFOUND when none is stored. set goes into the pending batch. */
int vs__store_get_offset(struct vs__store *st, const char *topic, int32_t partition,
                         int64_t *next_offset);
int vs__store_set_offset(struct vs__store *st, const char *topic, int32_t partition,
                         int64_t next_offset);
int vs__store_get_watermark(struct vs__store *st, const char *topic, int32_t partition,
                            int64_t *watermark);
int vs__store_set_watermark(struct vs__store *st, const char *topic, int32_t partition,
                            int64_t watermark);

/* Timers: keyed (partition, fire_ts, user_id, op, tag); pending until commit like the rest. */
int vs__store_timer_set(struct vs__store *st, int32_t partition, int64_t fire_ts,
                        const char *user_id, uint8_t op, uint32_t tag);
int vs__store_timer_cancel(struct vs__store *st, int32_t partition, int64_t fire_ts,
                           const char *user_id, uint8_t op, uint32_t tag);

/* The earliest timer of partition with fire_ts <= upto, or VS_ENOTFOUND. user_id is copied
 * into user_buf (NUL-terminated). The caller fires it and then cancels it. */
int vs__store_timer_next(struct vs__store *st, int32_t partition, int64_t upto, int64_t *fire_ts,
                         char *user_buf, size_t user_buflen, uint8_t *op, uint32_t *tag);

/* Models: key is "<operator>/<key>". get: *val malloc'd, VS_ENOTFOUND if absent. */
int vs__store_model_get(struct vs__store *st, const char *key, void **val, size_t *len);
int vs__store_model_put(struct vs__store *st, const char *key, const void *val, size_t len);
int vs__store_model_delete(struct vs__store *st, const char *key);

/* True when the cache is over budget and only dirty records are left to evict. */
int vs__store_wants_commit(const struct vs__store *st);

/* Write every dirty customer, pending timer change, model blob and offset in one WriteBatch
 * (synced to the WAL), then mark the cache clean and evict down to the budget. A sealed commit
 * still pending is written first. */
int vs__store_commit(struct vs__store *st);

/*
 * A commit in two steps, so that the engine need not wait for the broker's acknowledgements:
 * vs__store_seal() takes everything pending now into one batch (the cache is marked clean, new
 * changes pend afresh) and vs__store_write_sealed() writes it once the outputs so far are
 * acknowledged. Until then reads see the sealed changes, and no record leaves the cache. One
 * commit at a time is sealed: seal fails while another is.
 */
int vs__store_seal(struct vs__store *st);
int vs__store_is_sealed(const struct vs__store *st);
int vs__store_write_sealed(struct vs__store *st);

/*
 * vs__store_write_sealed() in two halves, so that the write can run on another thread while the
 * loop goes on: vs__store_write_sealed_raw() only writes the sealed batch (thread-safe while the
 * loop reads, looks up and changes pending state, but neither seals nor writes meanwhile; *err
 * receives RocksDB's error, to free), and vs__store_sealed_written() then, on the loop, releases
 * the batch (or, given an error, fails the store with it and takes err).
 */
void vs__store_write_sealed_raw(struct vs__store *st, char **err);
int vs__store_sealed_written(struct vs__store *st, char *err);

/* Iterate every stored customer in key order (committed state only), for inspect. */
typedef int (*vs__store_customer_fn)(void *arg, const char *user_id, size_t len,
                                     struct vs__customer *c);
int vs__store_foreach_customer(struct vs__store *st, vs__store_customer_fn fn, void *arg);

struct vs__store_stats {
    uint64_t customers;     /* estimated number of customer records */
    uint64_t bytes;         /* live data size on disk, all column families */
    uint64_t cache_records; /* records in the cache now */
    uint64_t cache_bytes;   /* bytes the cache holds now */
    uint64_t cache_hits, cache_misses, evictions;
    /* Misses answered by the sealed commit's batch (records evicted before it was written). */
    uint64_t sealed_reads;
    /* Memory, bytes: RocksDB's memtables (all column families), table readers (indexes and
     * filters not in the block cache), block cache in use, and the pending and sealed batches. */
    uint64_t memtables, table_readers, block_cache, batches;
};
void vs__store_stats(struct vs__store *st, struct vs__store_stats *out);

/* Every stored (topic, partition) offset and watermark, for `inspect --stats`, sorted by topic
 * then partition; next_offset is -1 for a partition with only a watermark. */
typedef void (*vs__store_offset_fn)(void *arg, const char *topic, int32_t partition,
                                    int64_t next_offset, int has_watermark, int64_t watermark);
void vs__store_foreach_offset(struct vs__store *st, vs__store_offset_fn fn, void *arg);

/* Exact number of committed customer records and their key + value bytes: a full scan of the
 * customers column family, for `inspect --stats`. */
int vs__store_count_customers(struct vs__store *st, uint64_t *records, uint64_t *bytes);

/* The section layout version each operator last opened the store with (meta "section/<name>",
 * informational: every record carries its own versions). */
typedef void (*vs__store_section_fn)(void *arg, const char *name, uint32_t version);
void vs__store_foreach_section_version(struct vs__store *st, vs__store_section_fn fn, void *arg);

#endif
