/*
 * The timer changes of one commit, per partition: an append-only log of set and cancel
 * operations on timer keys, sorted into key order only when a timer scan reads it.
 *
 * Churn re-arms a customer's timer on every purchase (a cancel and a set), so between two
 * commits a partition collects thousands of timer changes but is scanned only when its
 * watermark passes what the store's timer cache covers. An ordered index kept up to date on
 * every change (RocksDB's WriteBatchWithIndex) paid a skiplist insert with key comparisons per
 * change; the log pays an append, and sorts once per scan what was appended since the last one.
 *
 * The store keeps two logs: the one taking changes, and the one of a sealed commit still being
 * written, which scans must still see. Keys are the store's timer keys (partition first, so a
 * partition's keys sort together); a later change of a key replaces an earlier one.
 */
#ifndef VS_ENGINE_TIMERLOG_H
#define VS_ENGINE_TIMERLOG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* RocksDB's bytewise order of two keys: the order of timer keys in the log and in the store. */
static inline int vs__key_cmp(const unsigned char *a, size_t alen, const unsigned char *b,
                              size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

struct vs__timerlog;

/* One change as a scan sees it: the key (valid until the next change of the log) and whether
 * it cancels the timer. */
struct vs__timerlog_entry {
    const unsigned char *key;
    size_t len;
    int cancel;
};

/* A sorted run of one partition's changes, one per key, from vs__timerlog_sorted(). */
struct vs__timerlog_view {
    const struct vs__timerlog *log;
    int32_t partition;
    size_t n;
};

struct vs__timerlog *vs__timerlog_new(void);
void vs__timerlog_free(struct vs__timerlog *log);

/* Forget every change (after they are written); keeps the memory for the next commit. */
void vs__timerlog_reset(struct vs__timerlog *log);

/* Record a set (cancel = 0) or cancel of key in partition. 0 or VS_ENOMEM (nothing recorded). */
int vs__timerlog_add(struct vs__timerlog *log, int32_t partition, const unsigned char *key,
                     size_t len, int cancel);

/* Changes recorded since the last reset (a key changed twice counts twice until sorted). */
size_t vs__timerlog_count(const struct vs__timerlog *log);

/* Bytes of memory the log holds. */
size_t vs__timerlog_bytes(const struct vs__timerlog *log);

/*
 * Call fn for every change in an order in which applying them one after the other gives the
 * log's final state (a later change of a key comes after an earlier one). Stops at the first
 * non-zero return of fn and returns it.
 */
int vs__timerlog_foreach(const struct vs__timerlog *log,
                         int (*fn)(const struct vs__timerlog_entry *e, void *arg), void *arg);

/*
 * Sort partition's changes into key order, one per key (the latest), and describe them in
 * *view. 0 or VS_ENOMEM. The view is valid until the next change of the log.
 */
int vs__timerlog_sorted(struct vs__timerlog *log, int32_t partition,
                        struct vs__timerlog_view *view);

/* The i-th change of a view, i < view->n. */
void vs__timerlog_at(const struct vs__timerlog_view *view, size_t i, struct vs__timerlog_entry *e);

/* The index of the first change of a view whose key is >= key (view->n when none is). */
size_t vs__timerlog_lower_bound(const struct vs__timerlog_view *view, const unsigned char *key,
                                size_t len);

#endif
