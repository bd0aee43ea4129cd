/*
 * `valuestream eval recommend`: prequential evaluation of the recommender on an interaction log.
 *
 * The protocol (Vinagre, Jorge & Gama 2014, test-then-train): interactions are replayed in time
 * order; an interaction (u, i) is a test point when u has an earlier interaction and the pair
 * (u, i) is new. Before anything learns from it, each ranker ranks all items seen so far,
 * leaving out the items u already interacted with; a hit at rank r <= 10 counts 1 for HR@10 and
 * 1 / log2(r + 1) for NDCG@10. Then every ranker learns from the interaction (test points or
 * not). An item never seen before cannot be ranked and is a miss for everyone.
 *
 * The model is the recommender the operator publishes (recommender.c), fed each interaction as
 * a view. The baselines run alongside: recent popularity (the same exponentially decayed counts
 * the model blends) and plain item co-occurrence, scoring i by the sum over u's last 20 distinct
 * items j of cooc(j, i) / sqrt(pop(i)), where cooc counts customers' pairs of distinct items
 * within such windows and pop(i) counts i's customers; these counts are exact (unbounded).
 * Ties rank the earlier-seen item first, for every ranker.
 */
#include "eval_recommend.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cblas.h>

#include <valuestream/error.h>

#include "recommender.h"

#define TOP 10
#define BASE_WINDOW 20

enum format { FMT_DIGINETICA, FMT_MOVIELENS, FMT_CSV };

struct row {
    int64_t key;    /* order: key, k1, k2, line */
    int64_t k1, k2; /* diginetica: session id and timeframe, tie-breakers after the date */
    int64_t ts;     /* event time, epoch ms */
    int64_t line;
    uint32_t user; /* index into the user table */
    uint32_t item; /* offset of the item id in the string pool */
};

/* ==== Small containers ==== */

struct strtab { /* string -> dense index, open addressing */
    char *pool;
    size_t pool_len, pool_cap;
    uint32_t *off; /* offset per index */
    uint32_t n, cap;
    int32_t *slots;
    uint32_t nslots;
};

static uint64_t hash_str(const char *s)
{
    return vs_mf_hash(s, 7);
}

static int strtab_grow(struct strtab *t)
{
    uint32_t cap = t->cap ? 2 * t->cap : 1024;
    uint32_t *off = realloc(t->off, cap * sizeof(uint32_t));
    if (!off) {
        return -1;
    }
    t->off = off;
    t->cap = cap;
    free(t->slots);
    t->nslots = 2 * cap;
    t->slots = malloc(t->nslots * sizeof(int32_t));
    if (!t->slots) {
        return -1;
    }
    memset(t->slots, 0xff, t->nslots * sizeof(int32_t));
    for (uint32_t i = 0; i < t->n; i++) {
        uint32_t s = (uint32_t)hash_str(t->pool + t->off[i]) & (t->nslots - 1);
        while (t->slots[s] >= 0) {
            s = (s + 1) & (t->nslots - 1);
        }
        t->slots[s] = (int32_t)i;
    }
    return 0;
}

/* Index of s (len bytes), added when new; -1 when out of memory. */
static int64_t strtab_intern(struct strtab *t, const char *s, size_t len)
{
    char tmp[256];
    if (len >= sizeof(tmp)) {
        len = sizeof(tmp) - 1;
    }
    memcpy(tmp, s, len);
    tmp[len] = 0;
    if (t->n + 1 > t->cap / 2 + t->cap / 4 || !t->slots) {
        if (strtab_grow(t) < 0) {
            return -1;
        }
    }
    uint32_t sl = (uint32_t)hash_str(tmp) & (t->nslots - 1);
    while (t->slots[sl] >= 0) {
        if (strcmp(t->pool + t->off[t->slots[sl]], tmp) == 0) {
            return t->slots[sl];
        }
        sl = (sl + 1) & (t->nslots - 1);
    }
    if (t->pool_len + len + 1 > t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap : 65536;
        while (cap < t->pool_len + len + 1) {
            cap *= 2;
        }
        char *pool = realloc(t->pool, cap);
        if (!pool) {
            return -1;
        }
        t->pool = pool;
        t->pool_cap = cap;
    }
    memcpy(t->pool + t->pool_len, tmp, len + 1);
    t->off[t->n] = (uint32_t)t->pool_len;
    t->pool_len += len + 1;
    t->slots[sl] = (int32_t)t->n;
    return t->n++;
}

static void strtab_free(struct strtab *t)
{
    free(t->pool);
    free(t->off);
    free(t->slots);
}

struct u64set { /* set of nonzero 64-bit keys; with a value per key */
    uint64_t *keys;
    int32_t *vals;
    uint64_t n, cap;
};

static int64_t u64set_find(const struct u64set *s, uint64_t key)
{
    if (!s->cap) {
        return -1;
    }
    for (uint64_t i = (key * 0x9e3779b97f4a7c15ull) >> 20 & (s->cap - 1);;
         i = (i + 1) & (s->cap - 1)) {
        if (s->keys[i] == key) {
            return (int64_t)i;
        }
        if (s->keys[i] == 0) {
            return -1;
        }
    }
}

static int u64set_put(struct u64set *s, uint64_t key, int32_t val)
{
    if ((s->n + 1) * 4 > s->cap * 3) {
        uint64_t cap = s->cap ? 2 * s->cap : 4096;
        struct u64set t = {calloc(cap, sizeof(uint64_t)), calloc(cap, sizeof(int32_t)), 0, cap};
        if (!t.keys || !t.vals) {
            free(t.keys);
            free(t.vals);
            return -1;
        }
        for (uint64_t i = 0; i < s->cap; i++) {
            if (s->keys[i]) {
                u64set_put(&t, s->keys[i], s->vals[i]);
            }
        }
        free(s->keys);
        free(s->vals);
        *s = t;
    }
    uint64_t i = (key * 0x9e3779b97f4a7c15ull) >> 20 & (s->cap - 1);
    while (s->keys[i] && s->keys[i] != key) {
        i = (i + 1) & (s->cap - 1);
    }
    if (!s->keys[i]) {
        s->n++;
    }
    s->keys[i] = key;
    s->vals[i] = val;
    return 0;
}

struct ivec {
    int32_t *v;
    int32_t n, cap;
};

static int ivec_push(struct ivec *a, int32_t x)
{
    if (a->n == a->cap) {
        int32_t cap = a->cap ? 2 * a->cap : 8;
        int32_t *v = realloc(a->v, (size_t)cap * sizeof(int32_t));
        if (!v) {
            return -1;
        }
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

/* ==== Reading the log ==== */

static int fail_line(const char *path, int64_t line, const char *what)
{
    fprintf(stderr, "eval recommend: %s:%lld: %s\n", path, (long long)line, what);
    return 1;
}

/* Whether line is the header of Diginetica's train-item-views.csv: the CIKM Cup 2016 file's own
 * sessionId;userId;itemId;timeframe;eventdate or the SR-GNN sample's session_id;user_id;...,
 * compared without case and underscores. */
static int is_diginetica_header(const char *line)
{
    static const char want[] = "sessionid;userid;itemid;timeframe;eventdate";
    size_t w = 0;
    for (const char *c = line; *c; c++) {
        if (*c == '_') {
            continue;
        }
        if (want[w] == 0 || tolower((unsigned char)*c) != want[w]) {
            return 0;
        }
        w++;
    }
    return want[w] == 0;
}

static int parse_i64(const char *s, size_t len, int64_t *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, s, len);
    buf[len] = 0;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end || errno) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int parse_date(const char *s, size_t len, int64_t *ms)
{
    int y, m, d, n = 0;
    char buf[16];
    if (len != 10) {
        return -1;
    }
    memcpy(buf, s, len);
    buf[len] = 0;
    if (sscanf(buf, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 || m < 1 || m > 12 || d < 1 ||
        d > 31) {
        return -1;
    }
    *ms = days_from_civil(y, m, d) * 86400000;
    return 0;
}

/* Split line (without newline) at sep into at most max fields; returns the field count. */
static int split(char *line, char sep, char **f, size_t *fl, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        char *e = strchr(p, sep);
        if (n < max) {
            f[n] = p;
            fl[n] = e ? (size_t)(e - p) : strlen(p);
        }
        n++;
        if (!e) {
            return n;
        }
        p = e + 1;
    }
}

/* "a::b" becomes "a:b" in place, so that ':' separates the fields of ratings.dat. */
static void squeeze_double_colons(char *line)
{
    char *w = line;
    for (char *r = line; *r; r++) {
        *w++ = *r;
        if (r[0] == ':' && r[1] == ':') {
            r++;
        }
    }
    *w = 0;
}

/*
 * Split one line of CSV (RFC 4180) at commas into at most max fields, in place: a field in
 * double quotes may hold commas, and "" inside it stands for one quote; blanks around a field
 * are dropped. Returns the field count, or -1 for a quote left open or text after one closed.
 */
static int csv_split(char *line, char **f, size_t *fl, int max)
{
    int n = 0;
    char *r = line;
    for (;;) {
        while (*r == ' ' || *r == '\t') {
            r++;
        }
        char *start = r, *end;
        if (*r == '"') {
            char *w = r++;
            for (;;) {
                if (*r == 0) {
                    return -1;
                }
                if (*r == '"' && r[1] == '"') {
                    *w++ = '"';
                    r += 2;
                } else if (*r == '"') {
                    r++;
                    break;
                } else {
                    *w++ = *r++;
                }
            }
            end = w;
            while (*r == ' ' || *r == '\t') {
                r++;
            }
            if (*r != ',' && *r != 0) {
                return -1;
            }
        } else {
            while (*r != ',' && *r != 0) {
                r++;
            }
            end = r;
            while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
                end--;
            }
        }
        if (n < max) {
            f[n] = start;
            fl[n] = (size_t)(end - start);
        }
        n++;
        if (*r == 0) {
            return n;
        }
        r++;
    }
}

/* Where the csv format's columns are: user_id, item_id and ts by name, in any order, among
 * n columns (the others are ignored). */
struct csv_cols {
    int user, item, ts, n;
};

#define CSV_MAX_COLS 64

static int field_is(const char *f, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(f, name, len) == 0;
}

/* The header line of the csv format; 0, or -1 with why set. */
static int csv_header(char *line, struct csv_cols *c, char *why, size_t whylen)
{
    char *f[CSV_MAX_COLS];
    size_t fl[CSV_MAX_COLS];
    int n = csv_split(line, f, fl, CSV_MAX_COLS);
    if (n < 0 || n > CSV_MAX_COLS) {
        snprintf(why, whylen, "expected a header of at most %d comma-separated column names",
                 CSV_MAX_COLS);
        return -1;
    }
    c->user = c->item = c->ts = -1;
    c->n = n;
    for (int i = 0; i < n; i++) {
        int *slot = field_is(f[i], fl[i], "user_id")   ? &c->user
                    : field_is(f[i], fl[i], "item_id") ? &c->item
                    : field_is(f[i], fl[i], "ts")      ? &c->ts
                                                       : NULL;
        if (slot && *slot >= 0) {
            snprintf(why, whylen, "the header names column '%.*s' twice", (int)fl[i], f[i]);
            return -1;
        }
        if (slot) {
            *slot = i;
        }
    }
    const char *missing = c->user < 0   ? "user_id"
                          : c->item < 0 ? "item_id"
                          : c->ts < 0   ? "ts"
                                        : NULL;
    if (missing) {
        snprintf(why, whylen,
                 "expected the header user_id,item_id,ts (in any order, other columns ignored): "
                 "no column %s",
                 missing);
        return -1;
    }
    return 0;
}

/*
 * An event time in epoch ms: epoch seconds or milliseconds, told apart by size (below 10^11 is
 * seconds, i.e. before 1973 in ms), whole or with a fraction; or an ISO 8601 date with an
 * optional time of day after 'T' or a space (HH:MM, :SS, a fraction of a second) and an
 * optional Z or +HH:MM / -HH:MM (or HHMM, HH) offset.
 */
static int parse_ts(const char *s, size_t len, int64_t *ms)
{
    char buf[48];
    if (len == 0 || len >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, s, len);
    buf[len] = 0;
    int64_t v;
    if (parse_i64(buf, len, &v) == 0) {
        if (v < 0) {
            return -1;
        }
        *ms = v < 100000000000LL ? v * 1000 : v;
        return 0;
    }
    if (len >= 10 && buf[4] == '-') {
        int64_t day;
        if (parse_date(buf, 10, &day) < 0) {
            return -1;
        }
        const char *p = buf + 10;
        int64_t t = 0, off = 0;
        if (*p == 'T' || *p == 't' || *p == ' ') {
            int h, m, n = 0;
            if (sscanf(p + 1, "%2d:%2d%n", &h, &m, &n) != 2 || n != 5 || h > 23 || m > 59) {
                return -1;
            }
            p += 1 + n;
            int sec = 0;
            if (*p == ':') {
                if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2])) {
                    return -1;
                }
                sec = (p[1] - '0') * 10 + (p[2] - '0');
                if (sec > 60) {
                    return -1;
                }
                p += 3;
            }
            double frac = 0, scale = 0.1;
            if (*p == '.' || *p == ',') {
                if (!isdigit((unsigned char)p[1])) {
                    return -1;
                }
                for (p++; isdigit((unsigned char)*p); p++, scale /= 10) {
                    frac += (*p - '0') * scale;
                }
            }
            t = ((int64_t)h * 3600 + m * 60 + sec) * 1000 + (int64_t)(frac * 1000);
            if (*p == 'Z' || *p == 'z') {
                p++;
            } else if (*p == '+' || *p == '-') {
                int sign = *p == '-' ? -1 : 1, oh, om = 0;
                p++;
                if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1])) {
                    return -1;
                }
                oh = (p[0] - '0') * 10 + (p[1] - '0');
                p += 2;
                if (*p == ':') {
                    p++;
                }
                if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1])) {
                    om = (p[0] - '0') * 10 + (p[1] - '0');
                    p += 2;
                }
                if (oh > 23 || om > 59) {
                    return -1;
                }
                off = sign * ((int64_t)oh * 60 + om) * 60000;
            }
        }
        if (*p) {
            return -1;
        }
        *ms = day + t - off;
        return 0;
    }
    /* Digits with one decimal point (no sign, exponent, hex, inf or nan). */
    int dots = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '.') {
            dots++;
        } else if (!isdigit((unsigned char)buf[i])) {
            return -1;
        }
    }
    if (dots != 1 || len == 1) {
        return -1;
    }
    double d = strtod(buf, NULL);
    if (!(d < 9e15)) {
        return -1;
    }
    *ms = d < 1e11 ? llround(d * 1000) : llround(d);
    return 0;
}

static int cmp_rows(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (x->key != y->key) {
        return x->key < y->key ? -1 : 1;
    }
    if (x->k1 != y->k1) {
        return x->k1 < y->k1 ? -1 : 1;
    }
    if (x->k2 != y->k2) {
        return x->k2 < y->k2 ? -1 : 1;
    }
    return x->line < y->line ? -1 : x->line > y->line;
}

struct log {
    struct row *rows;
    size_t n, cap;
    struct strtab users;
    char *items; /* pool of item ids */
    size_t items_len, items_cap;
};

static int add_row(struct log *lg, int64_t line, const char *user, size_t ulen, const char *item,
                   size_t ilen, int64_t key, int64_t k1, int64_t k2, int64_t ts)
{
    if (lg->n == lg->cap) {
        size_t cap = lg->cap ? 2 * lg->cap : 4096;
        struct row *rows = realloc(lg->rows, cap * sizeof(struct row));
        if (!rows) {
            return -1;
        }
        lg->rows = rows;
        lg->cap = cap;
    }
    if (lg->items_len + ilen + 1 > lg->items_cap || lg->items_len + ilen + 1 > UINT32_MAX) {
        size_t cap = lg->items_cap ? 2 * lg->items_cap : 65536;
        while (cap < lg->items_len + ilen + 1) {
            cap *= 2;
        }
        char *p = realloc(lg->items, cap);
        if (!p || cap > UINT32_MAX) {
            free(p == lg->items ? NULL : p);
            return -1;
        }
        lg->items = p;
        lg->items_cap = cap;
    }
    int64_t u = strtab_intern(&lg->users, user, ulen);
    if (u < 0) {
        return -1;
    }
    struct row *r = &lg->rows[lg->n++];
    r->key = key;
    r->ts = ts;
    r->k1 = k1;
    r->k2 = k2;
    r->line = line;
    r->user = (uint32_t)u;
    r->item = (uint32_t)lg->items_len;
    memcpy(lg->items + lg->items_len, item, ilen);
    lg->items[lg->items_len + ilen] = 0;
    lg->items_len += ilen + 1;
    return 0;
}

static int read_log(const char *path, enum format fmt, struct log *lg)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "eval recommend: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t no = 0;
    int rc = 0;
    char *fld[8];
    size_t fl[8];
    struct csv_cols cols = {0, 0, 0, 0};
    while ((len = getline(&line, &cap, f)) >= 0) {
        no++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            line[--len] = 0;
        }
        if (no == 1 && len >= 3 && !memcmp(line, "\xef\xbb\xbf", 3)) {
            memmove(line, line + 3, (size_t)len - 2); /* a UTF-8 byte order mark */
            len -= 3;
        }
        if (len == 0) {
            continue;
        }
        if (no == 1 && fmt == FMT_DIGINETICA) {
            if (is_diginetica_header(line)) {
                continue;
            }
            /* Copies of the file without its header start with a session id: data. */
            if (!isdigit((unsigned char)line[0])) {
                rc = fail_line(path, no,
                               "expected the header session_id;user_id;item_id;timeframe;"
                               "eventdate (or sessionId;userId;itemId;timeframe;eventdate)");
                break;
            }
        }
        if (fmt == FMT_CSV && cols.n == 0) {
            char why[160];
            if (csv_header(line, &cols, why, sizeof(why)) < 0) {
                rc = fail_line(path, no, why);
                break;
            }
            continue;
        }
        int64_t key = 0, ts = 0, k1 = 0, k2 = 0, v;
        int nf;
        char *user, *item;
        size_t ulen, ilen;
        if (fmt == FMT_DIGINETICA) {
            nf = split(line, ';', fld, fl, 8);
            if (nf != 5) {
                rc = fail_line(path, no, "expected 5 fields separated by ';'");
                break;
            }
            if (parse_i64(fld[0], fl[0], &k1) < 0) {
                rc = fail_line(path, no, "session_id is not an integer");
                break;
            }
            if (parse_i64(fld[3], fl[3], &k2) < 0 || k2 < 0) {
                rc = fail_line(path, no, "timeframe is not a non-negative integer");
                break;
            }
            if (parse_date(fld[4], fl[4], &key) < 0) {
                rc = fail_line(path, no, "eventdate is not a YYYY-MM-DD date");
                break;
            }
            user = fld[0];
            ulen = fl[0];
            item = fld[2];
            ilen = fl[2];
            /* The date orders, then session and timeframe; the event time adds the timeframe
             * (ms into the session) so that popularity decays within a day too. */
            ts = key + k2;
        } else if (fmt == FMT_MOVIELENS) {
            /* u.data separates by tabs; the later releases' ratings.dat by "::" and
             * ratings.csv by commas: the same four fields. */
            char sep = '\t';
            if (!memchr(line, '\t', (size_t)len)) {
                sep = strstr(line, "::") ? ':' : ',';
                if (sep == ':') {
                    squeeze_double_colons(line);
                }
            }
            nf = split(line, sep, fld, fl, 8);
            if (nf != 4) {
                rc = fail_line(path, no,
                               "expected 4 fields: user item rating time, separated by tabs "
                               "(u.data), \"::\" (ratings.dat) or commas (ratings.csv)");
                break;
            }
            if (no == 1 && parse_i64(fld[3], fl[3], &v) < 0 && parse_i64(fld[0], fl[0], &v) < 0) {
                continue; /* a header line (u.data has none, but copies of it often add one) */
            }
            if (parse_i64(fld[3], fl[3], &v) < 0 || v < 0) {
                rc = fail_line(path, no, "time is not a non-negative integer");
                break;
            }
            char *end;
            char rb[32];
            size_t rl = fl[2] < sizeof(rb) - 1 ? fl[2] : sizeof(rb) - 1;
            memcpy(rb, fld[2], rl);
            rb[rl] = 0;
            double rating = strtod(rb, &end);
            if (rl == 0 || *end || !isfinite(rating)) {
                rc = fail_line(path, no, "rating is not a number");
                break;
            }
            ts = key = v * 1000;
            user = fld[0];
            ulen = fl[0];
            item = fld[1];
            ilen = fl[1];
        } else {
            char *cf[CSV_MAX_COLS];
            size_t cl[CSV_MAX_COLS];
            nf = csv_split(line, cf, cl, CSV_MAX_COLS);
            if (nf != cols.n) {
                char why[96];
                snprintf(why, sizeof(why), "expected %d comma-separated fields, as the header has",
                         cols.n);
                rc = fail_line(path, no, nf < 0 ? "a double quote is not closed" : why);
                break;
            }
            if (parse_ts(cf[cols.ts], cl[cols.ts], &ts) < 0) {
                rc = fail_line(path, no,
                               "ts is not a time: expected epoch seconds or milliseconds, or an "
                               "ISO 8601 date and time");
                break;
            }
            key = ts;
            user = cf[cols.user];
            ulen = cl[cols.user];
            item = cf[cols.item];
            ilen = cl[cols.item];
        }
        if (ulen == 0 || ulen > 255) {
            rc = fail_line(path, no, "empty or over-long (> 255 bytes) user id");
            break;
        }
        if (ilen == 0 || ilen >= VS_MF_ITEM_ID_MAX) {
            rc = fail_line(path, no, "empty or over-long (> 63 bytes) item id");
            break;
        }
        if (memchr(item, 0, ilen) || memchr(user, 0, ulen)) {
            rc = fail_line(path, no, "NUL byte in an id");
            break;
        }
        if (add_row(lg, no, user, ulen, item, ilen, key, k1, k2, ts) < 0) {
            fprintf(stderr, "eval recommend: out of memory\n");
            rc = 1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "eval recommend: error reading %s\n", path);
        rc = 1;
    }
    free(line);
    fclose(f);
    if (rc == 0 && lg->n == 0) {
        fprintf(stderr, "eval recommend: %s has no interactions\n", path);
        rc = 1;
    }
    if (rc == 0) {
        qsort(lg->rows, lg->n, sizeof(struct row), cmp_rows);
    }
    return rc;
}

/* ==== The co-occurrence baseline: exact counts, adjacency lists per item ==== */

struct base_cooc {
    struct ivec *nb; /* per item: neighbours */
    float **cnt;     /* per item: counts, parallel to nb */
    int32_t *cnt_cap;
    float *pop; /* customers per item */
    int32_t n;
    struct u64set pos; /* (i, j) -> position of j in i's list */
};

static int base_reserve(struct base_cooc *b, int32_t n)
{
    if (n <= b->n) {
        return 0;
    }
    struct ivec *nb = realloc(b->nb, (size_t)n * sizeof(*nb));
    if (!nb) {
        return -1;
    }
    b->nb = nb;
    float **cnt = realloc(b->cnt, (size_t)n * sizeof(*cnt));
    if (!cnt) {
        return -1;
    }
    b->cnt = cnt;
    int32_t *cc = realloc(b->cnt_cap, (size_t)n * sizeof(int32_t));
    if (!cc) {
        return -1;
    }
    b->cnt_cap = cc;
    float *pop = realloc(b->pop, (size_t)n * sizeof(float));
    if (!pop) {
        return -1;
    }
    b->pop = pop;
    for (int32_t i = b->n; i < n; i++) {
        memset(&b->nb[i], 0, sizeof(b->nb[i]));
        b->cnt[i] = NULL;
        b->cnt_cap[i] = 0;
        b->pop[i] = 0;
    }
    b->n = n;
    return 0;
}

static int base_inc(struct base_cooc *b, int32_t i, int32_t j)
{
    uint64_t key = ((uint64_t)(uint32_t)i << 32 | (uint32_t)j) + 1;
    int64_t at = u64set_find(&b->pos, key);
    if (at >= 0) {
        b->cnt[i][b->pos.vals[at]] += 1;
        return 0;
    }
    int32_t p = b->nb[i].n;
    if (ivec_push(&b->nb[i], j) < 0) {
        return -1;
    }
    if (b->nb[i].cap > b->cnt_cap[i]) {
        float *c = realloc(b->cnt[i], (size_t)b->nb[i].cap * sizeof(float));
        if (!c) {
            return -1;
        }
        b->cnt[i] = c;
        b->cnt_cap[i] = b->nb[i].cap;
    }
    b->cnt[i][p] = 1;
    return u64set_put(&b->pos, key, p);
}

static void base_free(struct base_cooc *b)
{
    for (int32_t i = 0; i < b->n; i++) {
        free(b->nb[i].v);
        free(b->cnt[i]);
    }
    free(b->nb);
    free(b->cnt);
    free(b->cnt_cap);
    free(b->pop);
    free(b->pos.keys);
    free(b->pos.vals);
}

/* ==== The replay ==== */

struct user {
    struct vs_rec_customer cu;
    struct ivec items;           /* every distinct item, in order of first interaction */
    int32_t window[BASE_WINDOW]; /* last distinct items, most recent first */
    int n_window;
    int seen;
};

struct metric {
    double hr, ndcg;
};

static void score_hit(struct metric *m, const int32_t *list, int n, int32_t target)
{
    for (int r = 0; r < n; r++) {
        if (list[r] == target) {
            m->hr += 1;
            m->ndcg += 1.0 / log2((double)r + 2.0);
            return;
        }
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: valuestream eval recommend --input FILE --format diginetica|movielens|csv "
            "[--set key=value]...\n"
            "\n"
            "Replays an interaction log in time order through the recommender and measures it\n"
            "prequentially (test-then-train): HR@10 and NDCG@10 of the model and of two\n"
            "baselines, recent popularity and item co-occurrence. The last line of output is a\n"
            "JSON object.\n"
            "\n"
            "formats:\n"
            "  diginetica  session_id;user_id;item_id;timeframe;eventdate (CIKM Cup 2016's\n"
            "              train-item-views.csv: its header, spelt either way, or none); a\n"
            "              session is a customer; ordered by eventdate, session_id, timeframe\n"
            "  movielens   user<TAB>item<TAB>rating<TAB>unixtime (MovieLens u.data; also\n"
            "              ratings.dat's \"::\" and ratings.csv's commas); every rating is an\n"
            "              interaction; ordered by time, then file order; a first line of\n"
            "              column names is skipped\n"
            "  csv         user_id,item_id,ts with a header (the three columns in any order,\n"
            "              others ignored; fields may be double-quoted); ts in epoch seconds or\n"
            "              milliseconds, or an ISO 8601 date and time; ordered by ts, then file\n"
            "              order\n"
            "\n"
            "--set takes the recommend.* configuration keys:\n");
    for (const struct vs_config_key *k = vs_rec_config; k->key; k++) {
        fprintf(out, "  %-36s %s (default %s)\n", k->key, k->doc, k->def ? k->def : "");
    }
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int vs_eval_recommend_main(int argc, char **argv)
{
    const char *input = NULL, *format = NULL;
    struct vs_rec_params params;
    vs_rec_params_default(&params);
    char err[256];
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            usage(stdout);
            return 0;
        }
        if (a + 1 >= argc) {
            fprintf(stderr, "eval recommend: %s: missing value (see --help)\n", argv[a]);
            return 1;
        }
        if (!strcmp(argv[a], "--input")) {
            input = argv[++a];
        } else if (!strcmp(argv[a], "--format")) {
            format = argv[++a];
        } else if (!strcmp(argv[a], "--set")) {
            char kv[512];
            snprintf(kv, sizeof(kv), "%s", argv[++a]);
            char *eq = strchr(kv, '=');
            if (!eq) {
                fprintf(stderr, "eval recommend: --set %s: expected key=value\n", kv);
                return 1;
            }
            *eq = 0;
            if (vs_rec_params_set(&params, kv, eq + 1, err, sizeof(err)) < 0) {
                fprintf(stderr, "eval recommend: --set: %s\n", err);
                return 1;
            }
        } else {
            fprintf(stderr, "eval recommend: unknown argument '%s' (see --help)\n", argv[a]);
            return 1;
        }
    }
    if (!input || !format) {
        fprintf(stderr, "eval recommend: --input and --format are required (see --help)\n");
        return 1;
    }
    enum format fmt;
    if (!strcmp(format, "diginetica")) {
        fmt = FMT_DIGINETICA;
    } else if (!strcmp(format, "movielens")) {
        fmt = FMT_MOVIELENS;
    } else if (!strcmp(format, "csv")) {
        fmt = FMT_CSV;
    } else {
        fprintf(stderr, "eval recommend: --format %s: expected diginetica, movielens or csv\n",
                format);
        return 1;
    }
    /* As in the engine, the model runs on one thread: OpenBLAS's threads only slow down the
     * small calls of each update. The exception is the scores of a large catalogue, which
     * take two (a fixed number, so that any machine gives the same bits). */
    openblas_set_num_threads(1);
    struct vs_rec *rec = vs_rec_new(&params, err, sizeof(err));
    if (!rec) {
        fprintf(stderr, "eval recommend: %s\n", err);
        return 1;
    }
    vs_mf_set_score_threads(vs_rec_mf(rec), 2);
    struct log lg;
    memset(&lg, 0, sizeof(lg));
    int rc = read_log(input, fmt, &lg);
    struct user *users = NULL;
    struct base_cooc base;
    memset(&base, 0, sizeof(base));
    struct u64set pairs;
    memset(&pairs, 0, sizeof(pairs));
    float *scores = NULL;
    int32_t scores_cap = 0;
    if (rc == 0) {
        users = calloc(lg.users.n ? lg.users.n : 1, sizeof(*users));
        if (!users) {
            fprintf(stderr, "eval recommend: out of memory\n");
            rc = 1;
        }
    }
    struct metric model = {0, 0}, popm = {0, 0}, coocm = {0, 0};
    int64_t test_points = 0;
    int oom = 0;
    double t0 = now_s();
    struct vs_mf *mf = vs_rec_mf(rec);
    for (size_t e = 0; rc == 0 && e < lg.n; e++) {
        const struct row *row = &lg.rows[e];
        struct user *u = &users[row->user];
        const char *item_id = lg.items + row->item;
        int32_t target = vs_mf_find(mf, item_id);
        uint64_t pair = target >= 0 ? ((uint64_t)row->user << 32 | (uint32_t)target) + 1 : 0;
        int is_new = target < 0 || u64set_find(&pairs, pair) < 0;
        if (u->seen && is_new) {
            test_points++;
            int32_t count = vs_mf_items(mf);
            if (target >= 0 && count > 0) {
                if (count > scores_cap) {
                    float *s = realloc(scores, (size_t)count * 2 * sizeof(float));
                    if (!s) {
                        rc = oom = 1;
                        break;
                    }
                    scores = s;
                    scores_cap = count * 2;
                }
                struct vs_rec_entry list[TOP];
                int32_t idx[TOP];
                /* The list first, then the test of the blend's mixes on the target: the same
                 * scores, and no list is chosen with the item it is scored on. */
                vs_rec_refresh(rec, &u->cu);
                int n = vs_rec_top_test(rec, &u->cu, TOP, u->items.v, u->items.n, list, target);
                for (int r = 0; r < n; r++) {
                    idx[r] = list[r].item;
                }
                score_hit(&model, idx, n, target);

                memcpy(scores, vs_pop_scaled(vs_rec_pop(rec)), (size_t)count * sizeof(float));
                for (int32_t s = 0; s < u->items.n; s++) {
                    scores[u->items.v[s]] = -INFINITY;
                }
                n = vs_rec_select(scores, count, TOP, idx);
                score_hit(&popm, idx, n, target);

                memset(scores, 0, (size_t)count * sizeof(float));
                for (int w = 0; w < u->n_window; w++) {
                    int32_t j = u->window[w];
                    for (int32_t t = 0; t < base.nb[j].n; t++) {
                        int32_t i = base.nb[j].v[t];
                        scores[i] += base.cnt[j][t] / sqrtf(base.pop[i] > 0 ? base.pop[i] : 1);
                    }
                }
                for (int32_t s = 0; s < u->items.n; s++) {
                    scores[u->items.v[s]] = -INFINITY;
                }
                n = vs_rec_select(scores, count, TOP, idx);
                score_hit(&coocm, idx, n, target);
            }
        }
        /* Train. */
        int32_t item = vs_rec_learn(rec, &u->cu, VS_EVENT_VIEW, item_id, row->ts);
        if (item < 0) {
            fprintf(stderr, "eval recommend: %s:%lld: the model refused item '%s': %s\n", input,
                    (long long)row->line, item_id, vs_strerror(item));
            rc = 1;
            break;
        }
        u->seen = 1;
        if (base_reserve(&base, vs_mf_items(mf)) < 0) {
            rc = oom = 1;
            break;
        }
        pair = ((uint64_t)row->user << 32 | (uint32_t)item) + 1;
        if (u64set_find(&pairs, pair) < 0) {
            if (u64set_put(&pairs, pair, 1) < 0 || ivec_push(&u->items, item) < 0) {
                rc = oom = 1;
                break;
            }
            base.pop[item] += 1;
            for (int w = 0; w < u->n_window; w++) {
                if (base_inc(&base, u->window[w], item) < 0 ||
                    base_inc(&base, item, u->window[w]) < 0) {
                    rc = oom = 1;
                    break;
                }
            }
        }
        /* Move item to the front of the baseline's window of distinct items. */
        int w = 0;
        while (w < u->n_window && u->window[w] != item) {
            w++;
        }
        if (w == u->n_window && u->n_window < BASE_WINDOW) {
            u->n_window++;
        }
        if (w >= BASE_WINDOW) {
            w = BASE_WINDOW - 1;
        }
        memmove(u->window + 1, u->window, (size_t)w * sizeof(int32_t));
        u->window[0] = item;
    }
    double elapsed = now_s() - t0;
    if (rc == 0) {
        double tp = test_points > 0 ? (double)test_points : 1;
        struct vs_rec_stats st = vs_rec_stats(rec);
        struct vs_rec_blend b = vs_rec_blend(rec);
        printf("events %zu, customers %u, items %d, rejected updates %lld, blend model %g "
               "together %g trending %g after %lld tests\n",
               lg.n, lg.users.n, vs_mf_items(mf), (long long)st.rejected, (double)b.model,
               (double)b.together, (double)b.trending, (long long)b.tests);
        printf("{\"test_points\":%lld,\"events_per_s\":%.0f,"
               "\"model\":{\"hr@10\":%.6f,\"ndcg@10\":%.6f},"
               "\"baselines\":{\"recent_popularity\":{\"hr@10\":%.6f,\"ndcg@10\":%.6f},"
               "\"cooccurrence\":{\"hr@10\":%.6f,\"ndcg@10\":%.6f}}}\n",
               (long long)test_points, elapsed > 0 ? (double)lg.n / elapsed : 0.0, model.hr / tp,
               model.ndcg / tp, popm.hr / tp, popm.ndcg / tp, coocm.hr / tp, coocm.ndcg / tp);
        fflush(stdout);
    } else if (oom) {
        fprintf(stderr, "eval recommend: out of memory\n");
    }
    if (users) {
        for (uint32_t i = 0; i < lg.users.n; i++) {
            free(users[i].items.v);
        }
    }
    free(users);
    free(scores);
    free(pairs.keys);
    free(pairs.vals);
    base_free(&base);
    free(lg.rows);
    free(lg.items);
    strtab_free(&lg.users);
    vs_rec_free(rec);
    return rc;
}
