/*
 * Exponentially decayed popularity on a common scale (see pop.h).
 */
#include "pop.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valuestream/error.h>

#define VS__POP_MAGIC_META 0x50505356u  /* "VSPP" */
#define VS__POP_MAGIC_CHUNK 0x43505356u /* "VSPC" */
#define VS__POP_VERSION 1u
#define VS__POP_RESCALE 40.0 /* rescale when the scale factor exceeds e^40 */

struct vs_pop {
    double tau;
    int64_t t0, now;
    int started;
    float smax;
    int32_t n, cap;
    float *s;
    uint8_t *dirty;
    int meta_dirty;
};

struct vs_pop *vs_pop_new(double tau_ms, char *errbuf, size_t errlen)
{
    if (!(tau_ms > 0) || !isfinite(tau_ms)) {
        snprintf(errbuf, errlen, "popularity decay time %g ms: expected > 0", tau_ms);
        return NULL;
    }
    struct vs_pop *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    p->tau = tau_ms;
    p->meta_dirty = 1;
    return p;
}

void vs_pop_free(struct vs_pop *p)
{
    if (!p) {
        return;
    }
    free(p->s);
    free(p->dirty);
    free(p);
}

int vs_pop_reserve(struct vs_pop *p, int32_t n)
{
    if (n > p->cap) {
        int32_t cap = p->cap ? p->cap : 1024;
        while (cap < n) {
            cap *= 2;
        }
        float *s = realloc(p->s, (size_t)cap * sizeof(float));
        if (!s) {
            return VS_ENOMEM;
        }
        p->s = s;
        size_t old_chunks = ((size_t)p->cap + VS_POP_CHUNK_ROWS - 1) / VS_POP_CHUNK_ROWS;
        size_t chunks = ((size_t)cap + VS_POP_CHUNK_ROWS - 1) / VS_POP_CHUNK_ROWS;
        uint8_t *dirty = realloc(p->dirty, chunks);
        if (!dirty) {
            return VS_ENOMEM;
        }
        memset(dirty + old_chunks, 0, chunks - old_chunks);
        p->dirty = dirty;
        p->cap = cap;
    }
    if (n > p->n) {
        memset(p->s + p->n, 0, (size_t)(n - p->n) * sizeof(float));
        p->n = n;
    }
    return 0;
}

/* Move t0 to now: every stored count shrinks by the same factor, so ranks do not change. */
static void rescale(struct vs_pop *p)
{
    float f = (float)exp(-(double)(p->now - p->t0) / p->tau);
    for (int32_t i = 0; i < p->n; i++) {
        p->s[i] *= f;
    }
    p->smax *= f;
    p->t0 = p->now;
    for (int32_t c = 0; c < vs_pop_chunks(p); c++) {
        p->dirty[c] = 1;
    }
    p->meta_dirty = 1;
}

int vs_pop_add(struct vs_pop *p, int32_t i, double w, int64_t ts)
{
    if (i < 0 || i >= p->n || !isfinite(w)) {
        return VS_EINVAL;
    }
    if (!p->started) {
        p->started = 1;
        p->t0 = p->now = ts;
    }
    if (ts > p->now) {
        p->now = ts;
    }
    if ((double)(p->now - p->t0) / p->tau > VS__POP_RESCALE) {
        rescale(p);
    }
    float v = p->s[i] + (float)(w * exp((double)(p->now - p->t0) / p->tau));
    p->s[i] = v > 0 ? v : 0;
    if (p->s[i] > p->smax) {
        p->smax = p->s[i];
    }
    p->dirty[i / VS_POP_CHUNK_ROWS] = 1;
    p->meta_dirty = 1;
    return 0;
}

double vs_pop_count(const struct vs_pop *p, int32_t i)
{
    return (double)p->s[i] * exp(-(double)(p->now - p->t0) / p->tau);
}

const float *vs_pop_scaled(const struct vs_pop *p)
{
    return p->s;
}

float vs_pop_max(const struct vs_pop *p)
{
    return p->smax;
}

int64_t vs_pop_now(const struct vs_pop *p)
{
    return p->now;
}

int32_t vs_pop_chunks(const struct vs_pop *p)
{
    return (p->n + VS_POP_CHUNK_ROWS - 1) / VS_POP_CHUNK_ROWS;
}

int32_t vs_pop_next_dirty(const struct vs_pop *p, int32_t from)
{
    for (int32_t c = from < 0 ? 0 : from; c < vs_pop_chunks(p); c++) {
        if (p->dirty[c]) {
            return c;
        }
    }
    return -1;
}

int vs_pop_meta_dirty(const struct vs_pop *p)
{
    return p->meta_dirty;
}

void vs_pop_clear_dirty(struct vs_pop *p)
{
    if (p->dirty) {
        memset(p->dirty, 0, ((size_t)p->cap + VS_POP_CHUNK_ROWS - 1) / VS_POP_CHUNK_ROWS);
    }
    p->meta_dirty = 0;
}

struct pop_meta {
    uint32_t magic, version;
    int32_t n, started;
    int64_t t0, now;
    double tau;
    float smax;
    uint32_t pad;
};

size_t vs_pop_encode_meta(const struct vs_pop *p, void *buf, size_t cap)
{
    struct pop_meta m;
    memset(&m, 0, sizeof(m));
    m.magic = VS__POP_MAGIC_META;
    m.version = VS__POP_VERSION;
    m.n = p->n;
    m.started = p->started;
    m.t0 = p->t0;
    m.now = p->now;
    m.tau = p->tau;
    m.smax = p->smax;
    if (cap >= sizeof(m)) {
        memcpy(buf, &m, sizeof(m));
    }
    return sizeof(m);
}

int vs_pop_decode_meta(struct vs_pop *p, const void *buf, size_t len)
{
    struct pop_meta m;
    if (len != sizeof(m)) {
        return VS_ECORRUPT;
    }
    memcpy(&m, buf, sizeof(m));
    if (m.magic != VS__POP_MAGIC_META) {
        return VS_ECORRUPT;
    }
    if (m.version != VS__POP_VERSION) {
        return VS_EVERSION;
    }
    if (m.n < 0 || !isfinite(m.smax) || m.now < m.t0) {
        return VS_ECORRUPT;
    }
    if (m.tau != p->tau) {
        return VS_ECONFIG;
    }
    int rc = vs_pop_reserve(p, m.n);
    if (rc < 0) {
        return rc;
    }
    p->started = m.started;
    p->t0 = m.t0;
    p->now = m.now;
    p->smax = m.smax;
    vs_pop_clear_dirty(p);
    return 0;
}

size_t vs_pop_encode_chunk(const struct vs_pop *p, int32_t chunk, void *buf, size_t cap)
{
    int32_t r0 = chunk * VS_POP_CHUNK_ROWS;
    int32_t r1 = r0 + VS_POP_CHUNK_ROWS < p->n ? r0 + VS_POP_CHUNK_ROWS : p->n;
    uint32_t count = r1 > r0 ? (uint32_t)(r1 - r0) : 0;
    size_t need = 4 * sizeof(uint32_t) + count * sizeof(float);
    if (cap < need) {
        return need;
    }
    uint32_t head[4] = {VS__POP_MAGIC_CHUNK, VS__POP_VERSION, (uint32_t)chunk, count};
    memcpy(buf, head, sizeof(head));
    memcpy((uint8_t *)buf + sizeof(head), p->s + r0, count * sizeof(float));
    return need;
}

int vs_pop_decode_chunk(struct vs_pop *p, int32_t chunk, const void *buf, size_t len)
{
    uint32_t head[4];
    if (len < sizeof(head)) {
        return VS_ECORRUPT;
    }
    memcpy(head, buf, sizeof(head));
    if (head[0] != VS__POP_MAGIC_CHUNK) {
        return VS_ECORRUPT;
    }
    if (head[1] != VS__POP_VERSION) {
        return VS_EVERSION;
    }
    int64_t r0 = (int64_t)chunk * VS_POP_CHUNK_ROWS;
    if (head[2] != (uint32_t)chunk || head[3] > VS_POP_CHUNK_ROWS || r0 + head[3] > p->n ||
        len != sizeof(head) + head[3] * sizeof(float)) {
        return VS_ECORRUPT;
    }
    memcpy(p->s + r0, (const uint8_t *)buf + sizeof(head), head[3] * sizeof(float));
    for (uint32_t i = 0; i < head[3]; i++) {
        if (!isfinite(p->s[r0 + i]) || p->s[r0 + i] < 0) {
            return VS_ECORRUPT;
        }
    }
    return 0;
}
