/*
 * Implicit-feedback matrix factorization, kept up to date one interaction at a time.
 *
 * The model is the item side of an implicit-ALS factorization (Hu, Koren & Volinsky 2008): one
 * contiguous row-major float matrix Y of item factors that grows as new items appear, a
 * dictionary from item id to row, and the Gram matrix YtY cached in double precision and
 * updated incrementally whenever a row of Y changes. Customer vectors are not stored here: the
 * caller keeps them (in the customer's state section) and asks the model to re-solve one in
 * closed form from the customer's recent items (fold-in), then to move the item's row toward
 * the new customer vector.
 *
 * Nothing here knows about the engine, so unit tests and the eval command use it directly.
 * No update ever lets a NaN or infinity into Y or the Gram matrix: a poisoned update is
 * rejected, counted, and leaves the model as it was. Rows are grouped in chunks of
 * VS_MF_CHUNK_ROWS; the model remembers which chunks changed so a checkpoint writes only those.
 */
#ifndef VS_RECOMMEND_MF_H
#define VS_RECOMMEND_MF_H

#include <stddef.h>
#include <stdint.h>

#define VS_MF_MAX_K 64       /* largest factor dimension (customer sections are sized by it) */
#define VS_MF_ITEM_ID_MAX 64 /* item ids are at most 63 bytes */
#define VS_MF_CHUNK_ROWS 256 /* rows per checkpoint chunk */
#define VS_MF_MAX_ABS 1.0e4f /* a factor beyond this is treated as poisoned */

struct vs_mf_params {
    int k;              /* factor dimension, 1..VS_MF_MAX_K */
    float lambda;       /* L2 regularisation of the customer solve */
    float alpha;        /* confidence c = 1 + alpha * weight */
    float item_inertia; /* mu of the item step: larger moves item rows more slowly */
    float init_scale;   /* standard deviation of a new item row */
    uint64_t seed;      /* seeds new item rows together with a hash of the item id */
    int32_t max_items;  /* the dictionary refuses items beyond this count */
};

struct vs_mf;

/* NULL and errbuf on bad parameters or no memory. */
struct vs_mf *vs_mf_new(const struct vs_mf_params *p, char *errbuf, size_t errlen);
void vs_mf_free(struct vs_mf *mf);

int vs_mf_k(const struct vs_mf *mf);
int32_t vs_mf_items(const struct vs_mf *mf);
const float *vs_mf_row(const struct vs_mf *mf, int32_t item);
const char *vs_mf_item_id(const struct vs_mf *mf, int32_t item);
/* The Gram cache, k x k, row-major; only the upper triangle (j >= i) is maintained. */
const double *vs_mf_gram(const struct vs_mf *mf);
/* Updates rejected because they would have put a non-finite or huge value into the model. */
int64_t vs_mf_rejected(const struct vs_mf *mf);

/* The row of item id, or -1. */
int32_t vs_mf_find(const struct vs_mf *mf, const char *id);

/*
 * The row of item id, created (seeded from the id's hash and the model seed) when new.
 * Returns the row (>= 0), VS_ETOOBIG for an id of VS_MF_ITEM_ID_MAX bytes or more, VS_EINVAL
 * for an empty id, VS_EFULL beyond max_items, VS_ENOMEM. *created is set to 1 for a new row.
 */
int32_t vs_mf_intern(struct vs_mf *mf, const char *id, int *created);

/*
 * Fold-in: solve (YtY + sum_i (c_i - 1) y_i y_i^T + lambda I) x = sum_i c_i y_i over the
 * customer's n items (rows items[], confidences c_i = 1 + alpha * weight[i], weight > 0) into
 * x[k]. With n == 0, x is zeroed. Returns 0, or VS_EINVAL (counted as rejected, x untouched)
 * when the inputs or the solution are not finite or the system is not positive definite.
 * Allocates nothing.
 */
int vs_mf_fold_in(struct vs_mf *mf, const int32_t *items, const float *weight, int n, float *x);

/*
 * The same solve by eALS (element-wise ALS, He et al. SIGIR 2016): `sweeps` passes of exact
 * coordinate updates starting from the customer's current x, which converge to the fold-in's
 * solution. Cheaper per call (no factorization); same rejection rules. x is read and written.
 */
int vs_mf_eals(struct vs_mf *mf, const int32_t *items, const float *weight, int n, float *x,
               int sweeps);

/*
 * Move item's row toward explaining preference p (1 for an interaction, 0 for one taken back)
 * for customer vector x with weight w: the exact minimiser of
 *   c (p - x.y)^2 + mu |y - y_old|^2,   c = 1 + alpha * |w|,
 * which is y_old + c (p - x.y_old) / (mu + c |x|^2) x. The Gram cache follows with one
 * symmetric rank-2 update. Returns 0 or VS_EINVAL (rejected, counted, nothing changed).
 */
int vs_mf_update_item(struct vs_mf *mf, int32_t item, const float *x, float w, float p);

/*
 * Add delta (n rows of k, row-major) to the first n rows, as a full ALS sweep's result is
 * applied, and recompute the Gram cache from scratch. All or nothing: returns VS_EINVAL
 * (counted as rejected, nothing changed) when a value would not be finite or beyond
 * VS_MF_MAX_ABS.
 */
int vs_mf_add_rows(struct vs_mf *mf, const float *delta, int32_t n);

/* Ask the CPU to fetch the rows of items ahead of a fold-in: they sit at random places of a
 * large matrix, and fetching them together overlaps the cache misses with other work. */
void vs_mf_prefetch(const struct vs_mf *mf, const int32_t *items, int n);

/* scores[i] = alpha * Y[i] . x for every item: one cblas_sgemv. */
void vs_mf_scores(const struct vs_mf *mf, const float *x, float alpha, float *scores);

/* Score a catalogue of at least VS_MF_THREADED_FLOATS factors (32,768 items at k = 64) with
 * this many OpenBLAS threads (default 1). The product then streams more than the caches hold,
 * and one core does not draw all of the memory's bandwidth: at 100k items two threads take
 * half the time (recommend_bench: scores_us_median). For `eval recommend`, which does nothing
 * else meanwhile; the engine keeps one thread (see vs_mf_new). OpenBLAS splits the rows among
 * its threads, and the scores of some catalogue sizes then differ in the last bit from the
 * one-thread product's; calls with the same setting give the same bits. */
#define VS_MF_THREADED_FLOATS (1u << 21)
void vs_mf_set_score_threads(struct vs_mf *mf, int threads);

/* Recompute YtY from scratch into the upper triangle of out[k*k] (cblas_dsyrk). For checks. */
void vs_mf_gram_recompute(const struct vs_mf *mf, double *out);

/* ==== Checkpoint ==== */

/* Number of chunks that hold rows, and the next changed chunk at or after from (or -1). */
int32_t vs_mf_chunks(const struct vs_mf *mf);
int32_t vs_mf_next_dirty(const struct vs_mf *mf, int32_t from);
int vs_mf_meta_dirty(const struct vs_mf *mf);
void vs_mf_clear_dirty(struct vs_mf *mf);

/*
 * Encoders write into buf (cap bytes) and return the length written, or the length needed
 * when cap is too small (call with cap 0 to size a buffer). The meta blob holds k, the item
 * count, the rejected counter and the Gram cache; a chunk blob holds its rows' ids and factors.
 */
size_t vs_mf_encode_meta(const struct vs_mf *mf, void *buf, size_t cap);
size_t vs_mf_encode_chunk(const struct vs_mf *mf, int32_t chunk, void *buf, size_t cap);

/*
 * Full load: decode the meta blob first (it sizes the model), then every chunk. Returns 0,
 * VS_EVERSION, VS_ECORRUPT (also for non-finite values) or VS_ENOMEM. A model loaded this way
 * is byte-identical to the one that was saved.
 */
int vs_mf_decode_meta(struct vs_mf *mf, const void *buf, size_t len);
int vs_mf_decode_chunk(struct vs_mf *mf, int32_t chunk, const void *buf, size_t len);

/* 64-bit FNV-1a of a string mixed with a seed: the hash behind item ids and random rows. */
uint64_t vs_mf_hash(const char *s, uint64_t seed);

#endif
