/*
 * The timer changes of one commit (timerlog.h). Each partition has an arena of key bytes and an
 * array of changes: a sorted, duplicate-free prefix (as the last scan left it) followed by the
 * changes appended since, in the order they came. Sorting sorts that tail alone, keeps the last
 * change of each key, and merges it into the prefix, where a tail change replaces the prefix's
 * change of the same key. Keys replaced this way stay in the arena until the log is reset.
 */
#define _GNU_SOURCE
#include "timerlog.h"

#include <stdlib.h>
#include <string.h>

#include <valuestream/error.h>

struct change {
    uint32_t off; /* key bytes in the partition's arena */
    uint16_t len;
    uint8_t cancel;
    uint32_t seq; /* position in the tail, while the tail is sorted */
};

struct part {
    unsigned char *arena;
    size_t arena_len, arena_cap;
    struct change *ch;
    size_t n, cap;
    size_t sorted; /* ch[0 .. sorted) is in key order, one change per key */
};

struct vs__timerlog {
    struct part *parts;
    size_t nparts;
    size_t count;
    struct change *tmp; /* merge buffer */
    size_t tmp_cap;
};

struct vs__timerlog *vs__timerlog_new(void)
{
    return calloc(1, sizeof(struct vs__timerlog));
}

void vs__timerlog_free(struct vs__timerlog *log)
{
    if (!log) {
        return;
    }
    for (size_t i = 0; i < log->nparts; i++) {
        free(log->parts[i].arena);
        free(log->parts[i].ch);
    }
    free(log->parts);
    free(log->tmp);
    free(log);
}

void vs__timerlog_reset(struct vs__timerlog *log)
{
    for (size_t i = 0; i < log->nparts; i++) {
        log->parts[i].arena_len = 0;
        log->parts[i].n = 0;
        log->parts[i].sorted = 0;
    }
    log->count = 0;
}

static struct part *part_get(struct vs__timerlog *log, int32_t partition)
{
    size_t p = (size_t)partition;
    if (p >= log->nparts) {
        if (partition < 0 || p >= ((size_t)1 << 20)) {
            return NULL;
        }
        size_t n = log->nparts ? log->nparts : 16;
        while (n <= p) {
            n *= 2;
        }
        struct part *np = realloc(log->parts, n * sizeof *np);
        if (!np) {
            return NULL;
        }
        memset(np + log->nparts, 0, (n - log->nparts) * sizeof *np);
        log->parts = np;
        log->nparts = n;
    }
    return &log->parts[p];
}

int vs__timerlog_add(struct vs__timerlog *log, int32_t partition, const unsigned char *key,
                     size_t len, int cancel)
{
    struct part *pt = part_get(log, partition);
    if (!pt || len > UINT16_MAX) {
        return pt ? VS_EINVAL : VS_ENOMEM;
    }
    if (pt->arena_len + len > pt->arena_cap) {
        size_t cap = pt->arena_cap ? pt->arena_cap : 4096;
        while (cap < pt->arena_len + len) {
            cap *= 2;
        }
        if (cap > UINT32_MAX) {
            return VS_ENOMEM;
        }
        unsigned char *na = realloc(pt->arena, cap);
        if (!na) {
            return VS_ENOMEM;
        }
        pt->arena = na;
        pt->arena_cap = cap;
    }
    if (pt->n == pt->cap) {
        size_t cap = pt->cap ? pt->cap * 2 : 128;
        struct change *nc = realloc(pt->ch, cap * sizeof *nc);
        if (!nc) {
            return VS_ENOMEM;
        }
        pt->ch = nc;
        pt->cap = cap;
    }
    memcpy(pt->arena + pt->arena_len, key, len);
    pt->ch[pt->n++] = (struct change){(uint32_t)pt->arena_len, (uint16_t)len, cancel ? 1 : 0, 0};
    pt->arena_len += len;
    log->count++;
    return 0;
}

size_t vs__timerlog_count(const struct vs__timerlog *log)
{
    return log->count;
}

size_t vs__timerlog_bytes(const struct vs__timerlog *log)
{
    size_t b = sizeof *log + log->nparts * sizeof *log->parts + log->tmp_cap * sizeof *log->tmp;
    for (size_t i = 0; i < log->nparts; i++) {
        b += log->parts[i].arena_cap + log->parts[i].cap * sizeof(struct change);
    }
    return b;
}

int vs__timerlog_foreach(const struct vs__timerlog *log,
                         int (*fn)(const struct vs__timerlog_entry *e, void *arg), void *arg)
{
    for (size_t p = 0; p < log->nparts; p++) {
        const struct part *pt = &log->parts[p];
        for (size_t i = 0; i < pt->n; i++) {
            struct vs__timerlog_entry e = {pt->arena + pt->ch[i].off, pt->ch[i].len,
                                           pt->ch[i].cancel};
            int rc = fn(&e, arg);
            if (rc) {
                return rc;
            }
        }
    }
    return 0;
}

static int change_cmp(const struct part *pt, const struct change *a, const struct change *b)
{
    return vs__key_cmp(pt->arena + a->off, a->len, pt->arena + b->off, b->len);
}

static int tail_cmp(const void *pa, const void *pb, void *arg)
{
    const struct change *a = pa, *b = pb;
    int c = change_cmp(arg, a, b);
    return c ? c : (a->seq > b->seq) - (a->seq < b->seq);
}

int vs__timerlog_sorted(struct vs__timerlog *log, int32_t partition, struct vs__timerlog_view *view)
{
    *view = (struct vs__timerlog_view){log, partition, 0};
    if (partition < 0 || (size_t)partition >= log->nparts) {
        return 0;
    }
    struct part *pt = &log->parts[partition];
    if (pt->sorted < pt->n) {
        struct change *tail = pt->ch + pt->sorted;
        size_t nt = pt->n - pt->sorted;
        for (size_t i = 0; i < nt; i++) {
            tail[i].seq = (uint32_t)i;
        }
        qsort_r(tail, nt, sizeof *tail, tail_cmp, pt);
        size_t u = 0; /* the last change of each key */
        for (size_t i = 0; i < nt; i++) {
            if (u > 0 && change_cmp(pt, &tail[u - 1], &tail[i]) == 0) {
                tail[u - 1] = tail[i];
            } else {
                tail[u++] = tail[i];
            }
        }
        if (pt->sorted > 0) {
            if (log->tmp_cap < pt->sorted + u) {
                struct change *grown = realloc(log->tmp, pt->n * sizeof *grown);
                if (!grown) {
                    return VS_ENOMEM;
                }
                log->tmp = grown;
                log->tmp_cap = pt->n;
            }
            size_t i = 0, j = 0, o = 0;
            while (i < pt->sorted || j < u) {
                int c = i == pt->sorted ? 1 : j == u ? -1 : change_cmp(pt, &pt->ch[i], &tail[j]);
                if (c < 0) {
                    log->tmp[o++] = pt->ch[i++];
                } else {
                    log->tmp[o++] = tail[j++];
                    i += c == 0;
                }
            }
            memcpy(pt->ch, log->tmp, o * sizeof *pt->ch);
            u = o;
        }
        log->count -= pt->n - u;
        pt->n = pt->sorted = u;
    }
    view->n = pt->n;
    return 0;
}

void vs__timerlog_at(const struct vs__timerlog_view *view, size_t i, struct vs__timerlog_entry *e)
{
    const struct part *pt = &view->log->parts[view->partition];
    *e = (struct vs__timerlog_entry){pt->arena + pt->ch[i].off, pt->ch[i].len, pt->ch[i].cancel};
}

size_t vs__timerlog_lower_bound(const struct vs__timerlog_view *view, const unsigned char *key,
                                size_t len)
{
    if (view->n == 0) {
        return 0;
    }
    const struct part *pt = &view->log->parts[view->partition];
    size_t lo = 0, hi = view->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (vs__key_cmp(pt->arena + pt->ch[mid].off, pt->ch[mid].len, key, len) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}
