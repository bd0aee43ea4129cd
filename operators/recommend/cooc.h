/*
 * Item co-occurrence ("viewed / bought together"), maintained online and bounded per item.
 *
 * Each item keeps at most m neighbours with a weight each, plus the total weight it ever
 * received (evicted neighbours included) for normalisation. When an item's list is full and a
 * new neighbour arrives, the lightest neighbour is replaced and the newcomer starts from its own
 * weight. Space-saving (Metwally, Agrawal & El Abbadi 2005) would let the newcomer inherit the
 * evicted weight; measured on MovieLens-like logs, those inherited weights make each list's
 * newest, noisiest neighbours outrank its real ones (HR@10 of the co-occurrence signal alone
 * about 0.04 with inheritance, about 0.10 without, at m = 256), so the bounded list keeps only
 * weight it actually saw. Heavy neighbours stay, since only the lightest slot turns over. Memory is
 * m (index, weight) pairs per item, whatever the traffic.
 *
 * Items are the rows of the matrix-factorization model's dictionary; the table grows with it.
 * Changed rows are remembered by chunk of VS_COOC_CHUNK_ROWS for checkpoints.
 */
#ifndef VS_RECOMMEND_COOC_H
#define VS_RECOMMEND_COOC_H

#include <stddef.h>
#include <stdint.h>

#define VS_COOC_MAX_M 256
#define VS_COOC_CHUNK_ROWS 256

struct vs_cooc;

/* NULL and errbuf for m outside 1..VS_COOC_MAX_M or no memory. */
struct vs_cooc *vs_cooc_new(int m, char *errbuf, size_t errlen);
void vs_cooc_free(struct vs_cooc *c);

/* Make rows 0..n-1 exist (new rows are empty). 0 or VS_ENOMEM. */
int vs_cooc_reserve(struct vs_cooc *c, int32_t n);
int32_t vs_cooc_items(const struct vs_cooc *c);
int vs_cooc_m(const struct vs_cooc *c);

/*
 * Add weight w (finite, > 0) to neighbour j in item i's list, evicting the lightest neighbour
 * when the list is full. Returns 0 or VS_EINVAL. Allocates nothing.
 */
int vs_cooc_add(struct vs_cooc *c, int32_t i, int32_t j, float w);

/* Ask the CPU to fetch item i's row ahead of a vs_cooc_add: a customer's recent items sit at
 * random places of a large table, and fetching their rows together overlaps the cache misses. */
void vs_cooc_prefetch(const struct vs_cooc *c, int32_t i);

/* Item i's neighbour slots: m indexes (-1 for an empty slot) and their weights. */
const int32_t *vs_cooc_neighbours(const struct vs_cooc *c, int32_t i);
const float *vs_cooc_weights(const struct vs_cooc *c, int32_t i);
/* All weight ever added to i's list, evicted neighbours included: how much i co-occurs. */
float vs_cooc_total(const struct vs_cooc *c, int32_t i);
/* The totals of every item, indexed by item (valid until the next vs_cooc_reserve). */
const float *vs_cooc_totals(const struct vs_cooc *c);
/* The weight of neighbour j in i's list, 0 when absent. */
float vs_cooc_get(const struct vs_cooc *c, int32_t i, int32_t j);

/* ==== Checkpoint (same conventions as mf.h) ==== */
int32_t vs_cooc_chunks(const struct vs_cooc *c);
int32_t vs_cooc_next_dirty(const struct vs_cooc *c, int32_t from);
void vs_cooc_clear_dirty(struct vs_cooc *c);
size_t vs_cooc_encode_chunk(const struct vs_cooc *c, int32_t chunk, void *buf, size_t cap);
/* Rows must exist (vs_cooc_reserve) before their chunk is decoded; a chunk written with another
 * number of neighbours per item is fitted to this one (the heaviest kept). 0 or VS_ECORRUPT. */
int vs_cooc_decode_chunk(struct vs_cooc *c, int32_t chunk, const void *buf, size_t len);

#endif
