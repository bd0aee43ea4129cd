/*
 * The population aggregate: paged open-addressing hash tables of grouped sufficient statistics.
 * See population.h for what a cell is and why pages.
 *
 * A cell's key packs kind (BG/NBD or Gamma-Gamma), x and two 24-bit fields into 64 bits. Cells
 * whose count falls to zero are deleted at once (backward-shift deletion keeps probe chains
 * intact), so the table holds only the statistics that exist now, however long the stream.
 */
#include "population.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <valuestream/error.h>

#define KIND_BG 0ULL
#define KIND_GG 1ULL
#define FIELD_MASK 0xFFFFFFULL
#define GG_M_LO 0.01
#define GG_M_STEP 0.00498754151103897 /* log(1.005) */

struct cell {
    uint64_t key;
    int64_t count;
    double s1; /* Gamma-Gamma: sum of m_x */
    double s2; /* Gamma-Gamma: sum of log m_x */
};

struct page {
    struct cell *cells;
    uint32_t n, cap; /* cap is 0 or a power of two */
    int dirty;
};

struct vs_population {
    struct page pages[VS_POP_PAGES];
    int64_t customers, repeat_spenders;
    size_t cells;
};

static uint64_t mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int page_of(uint64_t key)
{
    return (int)(mix(key) & (VS_POP_PAGES - 1));
}

static uint32_t slot_of(uint64_t key, uint32_t cap)
{
    return (uint32_t)(mix(key) >> 10) & (cap - 1);
}

static uint64_t make_key(uint64_t kind, uint32_t x, uint64_t f1, uint64_t f2)
{
    if (x > VS_POP_X_MAX) {
        x = VS_POP_X_MAX;
    }
    return kind << 63 | (uint64_t)x << 48 | (f1 & FIELD_MASK) << 24 | (f2 & FIELD_MASK);
}

struct vs_population *vs_population_new(void)
{
    return calloc(1, sizeof(struct vs_population));
}

void vs_population_free(struct vs_population *pop)
{
    if (!pop) {
        return;
    }
    for (int i = 0; i < VS_POP_PAGES; i++) {
        free(pop->pages[i].cells);
    }
    free(pop);
}

static int page_grow(struct page *pg)
{
    uint32_t cap = pg->cap ? pg->cap * 2 : 8;
    struct cell *cells = calloc(cap, sizeof *cells);
    if (!cells) {
        return VS_ENOMEM;
    }
    for (uint32_t i = 0; i < pg->cap; i++) {
        if (pg->cells[i].count != 0) {
            uint32_t s = slot_of(pg->cells[i].key, cap);
            while (cells[s].count != 0) {
                s = (s + 1) & (cap - 1);
            }
            cells[s] = pg->cells[i];
        }
    }
    free(pg->cells);
    pg->cells = cells;
    pg->cap = cap;
    return 0;
}

/* Delete the cell at slot s, shifting later members of its probe chain back into the gap. */
static void page_delete(struct page *pg, uint32_t s)
{
    uint32_t mask = pg->cap - 1, hole = s, j = s;
    for (;;) {
        j = (j + 1) & mask;
        if (pg->cells[j].count == 0) {
            break;
        }
        uint32_t home = slot_of(pg->cells[j].key, pg->cap);
        /* Move j into the hole unless its home lies cyclically in (hole, j]. */
        int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            pg->cells[hole] = pg->cells[j];
            hole = j;
        }
    }
    memset(&pg->cells[hole], 0, sizeof pg->cells[hole]);
    pg->n--;
}

/* Add w customers (and sums) to the cell of key, creating or deleting it as needed. */
static int cell_add(struct vs_population *pop, uint64_t key, int w, double s1, double s2)
{
    struct page *pg = &pop->pages[page_of(key)];
    if (pg->cap == 0 || (pg->n + 1) * 4 > pg->cap * 3) {
        int rc = page_grow(pg);
        if (rc) {
            return rc;
        }
    }
    uint32_t s = slot_of(key, pg->cap);
    while (pg->cells[s].count != 0 && pg->cells[s].key != key) {
        s = (s + 1) & (pg->cap - 1);
    }
    struct cell *c = &pg->cells[s];
    if (c->count == 0) {
        if (w < 0) {
            return VS_ENOTFOUND; /* removing what was never added: keep the table as it is */
        }
        c->key = key;
        c->s1 = c->s2 = 0;
        pg->n++;
        pop->cells++;
    }
    c->count += w;
    c->s1 += w * s1;
    c->s2 += w * s2;
    pg->dirty = 1;
    if (c->count <= 0) {
        page_delete(pg, s);
        pop->cells--;
    }
    return 0;
}

int vs_population_bg_add(struct vs_population *pop, uint32_t x, int32_t first_bin, int32_t last_bin,
                         int w)
{
    if (first_bin < 0 || last_bin < first_bin) {
        return VS_EINVAL;
    }
    int rc = cell_add(
        pop, make_key(KIND_BG, x, (uint64_t)first_bin, (uint64_t)(last_bin - first_bin)), w, 0, 0);
    if (rc == 0) {
        pop->customers += w;
    }
    return rc;
}

static uint64_t m_bin(double m)
{
    double b = floor(log(m / GG_M_LO) / GG_M_STEP);
    return b < 0 ? 0 : b > (double)FIELD_MASK ? FIELD_MASK : (uint64_t)b;
}

int vs_population_gg_add(struct vs_population *pop, uint32_t x, double m, int w)
{
    if (x == 0 || !(m > 0) || !isfinite(m)) {
        return VS_EINVAL;
    }
    int rc = cell_add(pop, make_key(KIND_GG, x, m_bin(m), 0), w, m, log(m));
    if (rc == 0) {
        pop->repeat_spenders += w;
    }
    return rc;
}

int64_t vs_population_customers(const struct vs_population *pop)
{
    return pop->customers;
}

int64_t vs_population_repeat_spenders(const struct vs_population *pop)
{
    return pop->repeat_spenders;
}

size_t vs_population_cells(const struct vs_population *pop)
{
    return pop->cells;
}

int vs_population_snapshot(const struct vs_population *pop, double now_days, int bin_days,
                           struct vs_bgnbd_row **bg, size_t *nbg, struct vs_gg_row **gg,
                           size_t *ngg)
{
    size_t cap = pop->cells ? pop->cells : 1;
    *bg = malloc(cap * sizeof **bg);
    *gg = malloc(cap * sizeof **gg);
    if (!*bg || !*gg) {
        free(*bg);
        free(*gg);
        *bg = NULL;
        *gg = NULL;
        return VS_ENOMEM;
    }
    size_t nb = 0, ng = 0;
    /* Pages in order, cells in slot order: a deterministic order for a deterministic fit. */
    for (int p = 0; p < VS_POP_PAGES; p++) {
        const struct page *pg = &pop->pages[p];
        for (uint32_t i = 0; i < pg->cap; i++) {
            const struct cell *c = &pg->cells[i];
            if (c->count <= 0) {
                continue;
            }
            double x = (double)((c->key >> 48) & 0x7FFF);
            if ((c->key >> 63) == KIND_BG) {
                double first = (double)((c->key >> 24) & FIELD_MASK) * bin_days;
                double span = (double)(c->key & FIELD_MASK) * bin_days;
                double T = (now_days - first) / 7;
                double tx = span / 7;
                (*bg)[nb++] = (struct vs_bgnbd_row){
                    .x = x, .t_x = tx, .T = T > tx ? T : tx, .weight = (double)c->count};
            } else {
                (*gg)[ng++] = (struct vs_gg_row){.x = x,
                                                 .m = c->s1 / c->count,
                                                 .log_m = c->s2 / c->count,
                                                 .weight = (double)c->count};
            }
        }
    }
    *nbg = nb;
    *ngg = ng;
    return 0;
}

int vs_population_page_dirty(const struct vs_population *pop, int page)
{
    return pop->pages[page].dirty;
}

void vs_population_page_clean(struct vs_population *pop, int page)
{
    pop->pages[page].dirty = 0;
}

int vs_population_page_encode(const struct vs_population *pop, int page, void **buf, size_t *len)
{
    const struct page *pg = &pop->pages[page];
    *len = (size_t)pg->n * sizeof(struct cell);
    *buf = NULL;
    if (*len == 0) {
        return 0;
    }
    struct cell *out = malloc(*len);
    if (!out) {
        return VS_ENOMEM;
    }
    size_t k = 0;
    for (uint32_t i = 0; i < pg->cap; i++) {
        if (pg->cells[i].count != 0) {
            out[k++] = pg->cells[i];
        }
    }
    *buf = out;
    return 0;
}

int vs_population_page_decode(struct vs_population *pop, int page, const void *buf, size_t len)
{
    if (len % sizeof(struct cell) != 0) {
        return VS_ECORRUPT;
    }
    struct page *pg = &pop->pages[page];
    for (uint32_t i = 0; i < pg->cap; i++) {
        const struct cell *c = &pg->cells[i];
        if (c->count != 0) {
            pop->cells--;
            if ((c->key >> 63) == KIND_BG) {
                pop->customers -= c->count;
            } else {
                pop->repeat_spenders -= c->count;
            }
        }
    }
    free(pg->cells);
    memset(pg, 0, sizeof *pg);
    size_t n = len / sizeof(struct cell);
    for (size_t i = 0; i < n; i++) {
        struct cell c;
        memcpy(&c, (const char *)buf + i * sizeof c, sizeof c);
        if (page_of(c.key) != page || c.count <= 0 || c.count > INT32_MAX) {
            return VS_ECORRUPT;
        }
        int rc = cell_add(pop, c.key, (int)c.count, 0, 0);
        if (rc) {
            return rc;
        }
        /* cell_add scaled the sums by the count; set them as stored. */
        uint32_t s = slot_of(c.key, pg->cap);
        while (pg->cells[s].key != c.key) {
            s = (s + 1) & (pg->cap - 1);
        }
        pg->cells[s].s1 = c.s1;
        pg->cells[s].s2 = c.s2;
        if ((c.key >> 63) == KIND_BG) {
            pop->customers += c.count;
        } else {
            pop->repeat_spenders += c.count;
        }
    }
    pg->dirty = 0;
    return 0;
}
