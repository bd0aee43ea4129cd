/*
 * Recent popularity: per item, the sum of its interaction weights decayed exponentially with
 * event time, count(t) = sum_e w_e exp(-(t - t_e) / tau).
 *
 * Decaying every count at every event would touch every item. Instead counts are stored on a
 * common scale, s_i = sum_e w_e exp((t_e - t0) / tau), so that count_i(t) = s_i exp(-(t - t0)
 * / tau): one factor for all items, and ranking by popularity needs no exp at all. When the
 * scale grows large, every s_i is rescaled and t0 moves forward (rare: once per ~40 tau of event
 * time). Time only moves forward: an event older than the newest one seen counts as if it
 * happened at the newest time, which keeps the result independent of how late events are.
 */
#ifndef VS_RECOMMEND_POP_H
#define VS_RECOMMEND_POP_H

#include <stddef.h>
#include <stdint.h>

#define VS_POP_CHUNK_ROWS 256

struct vs_pop;

/* tau_ms > 0 (the decay time constant; half-life is tau ln 2). NULL and errbuf on failure. */
struct vs_pop *vs_pop_new(double tau_ms, char *errbuf, size_t errlen);
void vs_pop_free(struct vs_pop *p);

int vs_pop_reserve(struct vs_pop *p, int32_t n);

/* Add weight w (may be negative: a count never goes below 0) to item i at event time ts.
 * Returns 0 or VS_EINVAL for a non-finite w. */
int vs_pop_add(struct vs_pop *p, int32_t i, double w, int64_t ts);

/* Item i's decayed count at the newest event time seen. */
double vs_pop_count(const struct vs_pop *p, int32_t i);
/* The stored scaled counts s_i (rank by these) and the largest one (0 when empty): s_i / max
 * is popularity normalised to [0, 1]. */
const float *vs_pop_scaled(const struct vs_pop *p);
float vs_pop_max(const struct vs_pop *p);
int64_t vs_pop_now(const struct vs_pop *p);

/* ==== Checkpoint (same conventions as mf.h) ==== */
int32_t vs_pop_chunks(const struct vs_pop *p);
int32_t vs_pop_next_dirty(const struct vs_pop *p, int32_t from);
int vs_pop_meta_dirty(const struct vs_pop *p);
void vs_pop_clear_dirty(struct vs_pop *p);
size_t vs_pop_encode_meta(const struct vs_pop *p, void *buf, size_t cap);
size_t vs_pop_encode_chunk(const struct vs_pop *p, int32_t chunk, void *buf, size_t cap);
int vs_pop_decode_meta(struct vs_pop *p, const void *buf, size_t len);
int vs_pop_decode_chunk(struct vs_pop *p, int32_t chunk, const void *buf, size_t len);

#endif
