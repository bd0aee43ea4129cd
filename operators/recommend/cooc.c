/*
 * Bounded online item co-occurrence (see cooc.h).
 *
 * Rows are m slots of (neighbour, weight) in two parallel arrays, unsorted: an add scans the m
 * slots once to find the neighbour, a free slot or the lightest one, which at m of a few dozen
 * is cheaper than keeping the slots ordered.
 */
#include "cooc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <valuestream/error.h>

#define VS__COOC_MAGIC 0x4f435356u /* "VSCO" */
#define VS__COOC_VERSION 1u

struct vs_cooc {
    int m;
    int32_t n, cap;
    int32_t *nb; /* cap x m, -1 = empty */
    float *w;    /* cap x m */
    float *tot;  /* cap: all weight ever added to the row, evicted neighbours included */
    uint8_t *dirty;
};

struct vs_cooc *vs_cooc_new(int m, char *errbuf, size_t errlen)
{
    if (m < 1 || m > VS_COOC_MAX_M) {
        snprintf(errbuf, errlen, "co-occurrence neighbours per item %d: expected 1..%d", m,
                 VS_COOC_MAX_M);
        return NULL;
    }
    struct vs_cooc *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    c->m = m;
    return c;
}

void vs_cooc_free(struct vs_cooc *c)
{
    if (!c) {
        return;
    }
    free(c->nb);
    free(c->w);
    free(c->tot);
    free(c->dirty);
    free(c);
}

int vs_cooc_reserve(struct vs_cooc *c, int32_t n)
{
    if (n > c->cap) {
        int32_t cap = c->cap ? c->cap : 1024;
        while (cap < n) {
            cap *= 2;
        }
        size_t m = (size_t)c->m;
        int32_t *nb = realloc(c->nb, (size_t)cap * m * sizeof(int32_t));
        if (!nb) {
            return VS_ENOMEM;
        }
        c->nb = nb;
        float *w = realloc(c->w, (size_t)cap * m * sizeof(float));
        if (!w) {
            return VS_ENOMEM;
        }
        c->w = w;
        float *tot = realloc(c->tot, (size_t)cap * sizeof(float));
        if (!tot) {
            return VS_ENOMEM;
        }
        c->tot = tot;
        size_t old_chunks = ((size_t)c->cap + VS_COOC_CHUNK_ROWS - 1) / VS_COOC_CHUNK_ROWS;
        size_t chunks = ((size_t)cap + VS_COOC_CHUNK_ROWS - 1) / VS_COOC_CHUNK_ROWS;
        uint8_t *dirty = realloc(c->dirty, chunks);
        if (!dirty) {
            return VS_ENOMEM;
        }
        memset(dirty + old_chunks, 0, chunks - old_chunks);
        c->dirty = dirty;
        c->cap = cap;
    }
    if (n > c->n) {
        size_t m = (size_t)c->m;
        memset(c->nb + (size_t)c->n * m, 0xff, (size_t)(n - c->n) * m * sizeof(int32_t));
        memset(c->w + (size_t)c->n * m, 0, (size_t)(n - c->n) * m * sizeof(float));
        memset(c->tot + c->n, 0, (size_t)(n - c->n) * sizeof(float));
        c->n = n;
    }
    return 0;
}

int32_t vs_cooc_items(const struct vs_cooc *c)
{
    return c->n;
}

int vs_cooc_m(const struct vs_cooc *c)
{
    return c->m;
}

/* The first slot that holds j or is free (slots fill from the front and are never emptied, so
 * the free ones are a suffix), or m when there is none. Four slots at a time with SSE2. */
static int find_slot(const int32_t *nb, int m, int32_t j)
{
    int s = 0;
#if defined(__SSE2__)
    const __m128i vj = _mm_set1_epi32(j), zero = _mm_setzero_si128();
    for (; s + 4 <= m; s += 4) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(nb + s));
        int mask = _mm_movemask_ps(
            _mm_castsi128_ps(_mm_or_si128(_mm_cmpeq_epi32(v, vj), _mm_cmplt_epi32(v, zero))));
        if (mask) {
            return s + __builtin_ctz((unsigned)mask);
        }
    }
#endif
    while (s < m && nb[s] != j && nb[s] >= 0) {
        s++;
    }
    return s;
}

/* The first slot of the smallest weight (weights are finite). */
static int lightest_slot(const float *wt, int m)
{
    float least = wt[0];
    int s = 1;
#if defined(__SSE2__)
    if (m >= 4) {
        __m128 lo = _mm_loadu_ps(wt);
        for (s = 4; s + 4 <= m; s += 4) {
            lo = _mm_min_ps(lo, _mm_loadu_ps(wt + s));
        }
        lo = _mm_min_ps(lo, _mm_shuffle_ps(lo, lo, _MM_SHUFFLE(1, 0, 3, 2)));
        lo = _mm_min_ps(lo, _mm_shuffle_ps(lo, lo, _MM_SHUFFLE(2, 3, 0, 1)));
        least = _mm_cvtss_f32(lo);
    }
#endif
    for (; s < m; s++) {
        least = wt[s] < least ? wt[s] : least;
    }
    int light = 0;
    while (light < m - 1 && wt[light] != least) {
        light++;
    }
    return light;
}

int vs_cooc_add(struct vs_cooc *c, int32_t i, int32_t j, float w)
{
    if (i < 0 || i >= c->n || j < 0 || j >= c->n || i == j || !isfinite(w) || !(w > 0)) {
        return VS_EINVAL;
    }
    int32_t *nb = c->nb + (size_t)i * (size_t)c->m;
    float *wt = c->w + (size_t)i * (size_t)c->m;
    c->tot[i] += w;
    c->dirty[i / VS_COOC_CHUNK_ROWS] = 1;
    /* Only a full row without the neighbour reads the weights, to find its lightest slot. */
    int s = find_slot(nb, c->m, j);
    if (s < c->m) {
        if (nb[s] != j) {
            nb[s] = j;
            wt[s] = 0;
        }
        wt[s] += w;
        return 0;
    }
    int light = lightest_slot(wt, c->m);
    nb[light] = j;
    wt[light] = w;
    return 0;
}

void vs_cooc_prefetch(const struct vs_cooc *c, int32_t i)
{
    if (i < 0 || i >= c->n) {
        return;
    }
    const char *nb = (const char *)(c->nb + (size_t)i * (size_t)c->m);
    const char *w = (const char *)(c->w + (size_t)i * (size_t)c->m);
    size_t bytes = (size_t)c->m * sizeof(int32_t);
    for (size_t off = 0; off < bytes; off += 64) {
        __builtin_prefetch(nb + off, 1);
        __builtin_prefetch(w + off, 1);
    }
}

const int32_t *vs_cooc_neighbours(const struct vs_cooc *c, int32_t i)
{
    return c->nb + (size_t)i * (size_t)c->m;
}

const float *vs_cooc_weights(const struct vs_cooc *c, int32_t i)
{
    return c->w + (size_t)i * (size_t)c->m;
}

float vs_cooc_total(const struct vs_cooc *c, int32_t i)
{
    return c->tot[i];
}

const float *vs_cooc_totals(const struct vs_cooc *c)
{
    return c->tot;
}

float vs_cooc_get(const struct vs_cooc *c, int32_t i, int32_t j)
{
    const int32_t *nb = vs_cooc_neighbours(c, i);
    for (int s = 0; s < c->m; s++) {
        if (nb[s] == j) {
            return vs_cooc_weights(c, i)[s];
        }
    }
    return 0;
}

int32_t vs_cooc_chunks(const struct vs_cooc *c)
{
    return (c->n + VS_COOC_CHUNK_ROWS - 1) / VS_COOC_CHUNK_ROWS;
}

int32_t vs_cooc_next_dirty(const struct vs_cooc *c, int32_t from)
{
    int32_t chunks = vs_cooc_chunks(c);
    for (int32_t k = from < 0 ? 0 : from; k < chunks; k++) {
        if (c->dirty[k]) {
            return k;
        }
    }
    return -1;
}

void vs_cooc_clear_dirty(struct vs_cooc *c)
{
    if (c->dirty) {
        memset(c->dirty, 0, ((size_t)c->cap + VS_COOC_CHUNK_ROWS - 1) / VS_COOC_CHUNK_ROWS);
    }
}

/* A chunk: magic, version, chunk, m, row count, then the rows' m indexes each, their m weights
 * each and their totals. */
size_t vs_cooc_encode_chunk(const struct vs_cooc *c, int32_t chunk, void *buf, size_t cap)
{
    int32_t r0 = chunk * VS_COOC_CHUNK_ROWS;
    int32_t r1 = r0 + VS_COOC_CHUNK_ROWS < c->n ? r0 + VS_COOC_CHUNK_ROWS : c->n;
    uint32_t count = r1 > r0 ? (uint32_t)(r1 - r0) : 0;
    size_t m = (size_t)c->m;
    size_t need = 5 * sizeof(uint32_t) + count * m * (sizeof(int32_t) + sizeof(float)) +
                  count * sizeof(float);
    if (cap < need) {
        return need;
    }
    uint32_t head[5] = {VS__COOC_MAGIC, VS__COOC_VERSION, (uint32_t)chunk, (uint32_t)c->m, count};
    uint8_t *p = buf;
    memcpy(p, head, sizeof(head));
    p += sizeof(head);
    memcpy(p, c->nb + (size_t)r0 * m, count * m * sizeof(int32_t));
    p += count * m * sizeof(int32_t);
    memcpy(p, c->w + (size_t)r0 * m, count * m * sizeof(float));
    p += count * m * sizeof(float);
    memcpy(p, c->tot + r0, count * sizeof(float));
    return need;
}

/* Row r of a chunk written with ms slots per row, into c's m slots: the used slots (a prefix)
 * as they are when they fit, else the m heaviest of them (the earlier slot first among equal
 * weights), in their order. */
static void decode_row(struct vs_cooc *c, int64_t row, const int32_t *snb, const float *sw,
                       size_t ms)
{
    size_t m = (size_t)c->m, used = 0;
    int32_t *nb = c->nb + (size_t)row * m;
    float *w = c->w + (size_t)row * m;
    while (used < ms && snb[used] >= 0) {
        used++;
    }
    if (used <= m) {
        memcpy(nb, snb, used * sizeof(int32_t));
        memcpy(w, sw, used * sizeof(float));
        for (size_t s = used; s < m; s++) {
            nb[s] = -1;
            w[s] = 0;
        }
        return;
    }
    size_t k = 0;
    for (size_t s = 0; s < used; s++) {
        size_t heavier = 0; /* slots that rank before s */
        for (size_t t = 0; t < used && heavier < m; t++) {
            heavier += sw[t] > sw[s] || (sw[t] == sw[s] && t < s);
        }
        if (heavier < m) {
            nb[k] = snb[s];
            w[k++] = sw[s];
        }
    }
}

int vs_cooc_decode_chunk(struct vs_cooc *c, int32_t chunk, const void *buf, size_t len)
{
    uint32_t head[5];
    if (len < sizeof(head)) {
        return VS_ECORRUPT;
    }
    memcpy(head, buf, sizeof(head));
    if (head[0] != VS__COOC_MAGIC) {
        return VS_ECORRUPT;
    }
    if (head[1] != VS__COOC_VERSION) {
        return VS_EVERSION;
    }
    /* A chunk written with another recommend.cooc.neighbours is fitted to this one. */
    size_t ms = head[3];
    uint32_t count = head[4];
    int64_t r0 = (int64_t)chunk * VS_COOC_CHUNK_ROWS;
    if (ms < 1 || ms > VS_COOC_MAX_M || head[2] != (uint32_t)chunk || count > VS_COOC_CHUNK_ROWS ||
        r0 + count > c->n ||
        len !=
            sizeof(head) + count * ms * (sizeof(int32_t) + sizeof(float)) + count * sizeof(float)) {
        return VS_ECORRUPT;
    }
    const uint8_t *p = (const uint8_t *)buf + sizeof(head);
    const int32_t *snb = (const int32_t *)(const void *)p;
    const float *sw = (const float *)(const void *)(p + count * ms * sizeof(int32_t));
    int32_t nbv;
    float wv;
    for (size_t s = 0; s < count * ms; s++) {
        memcpy(&nbv, snb + s, sizeof(nbv));
        memcpy(&wv, sw + s, sizeof(wv));
        if (nbv < -1 || nbv >= c->n || !isfinite(wv) || wv < 0) {
            return VS_ECORRUPT;
        }
    }
    int32_t rnb[VS_COOC_MAX_M];
    float rw[VS_COOC_MAX_M];
    for (uint32_t r = 0; r < count; r++) {
        memcpy(rnb, snb + (size_t)r * ms, ms * sizeof(int32_t));
        memcpy(rw, sw + (size_t)r * ms, ms * sizeof(float));
        decode_row(c, r0 + r, rnb, rw, ms);
    }
    memcpy(c->tot + r0, p + count * ms * (sizeof(int32_t) + sizeof(float)), count * sizeof(float));
    for (uint32_t s = 0; s < count; s++) {
        if (!isfinite(c->tot[r0 + s]) || c->tot[r0 + s] < 0) {
            return VS_ECORRUPT;
        }
    }
    return 0;
}
