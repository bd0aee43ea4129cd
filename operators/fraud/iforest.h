/*
 * A streaming isolation forest: the fraud operator's model, usable on its own (no engine
 * dependency), e.g. by `valuestream eval anomaly`.
 *
 * The forest keeps a sliding window of the most recent points it learned from and an ensemble of
 * isolation trees (Liu, Ting & Zhou 2008), each built on a random sample of that window. Trees are
 * replaced one at a time, round robin, every `rebuild_every` learned points, so the whole forest
 * is renewed several times per window and follows drift; while the window is still filling, all
 * trees are rebuilt each time it doubles, so that a young model is usable early. A point is
 * scored before it is learned (prequential use): the score is 2^(-E[h(x)/c(n)]) in [0, 1], with
 * h the path length adjusted by c(leaf size) and c(n) the average path length of an unsuccessful
 * search in a binary tree of n points; 0.5 and above is anomalous, near 0 is normal.
 *
 * Explanation: each split on the path of x shortens the expected remaining path by
 * c(n) - 1 - c(n_child); summed along the path this telescopes to c(n) - h(x), so grouping the
 * splits by feature divides the path shortening 1 - E[h/c(n)] exactly among the features.
 *
 * Every random choice comes from a generator seeded by the configured seed and the number of the
 * tree build, so the same seed and the same points give the same trees, byte for byte.
 * Scoring allocates nothing; learning allocates nothing either (tree storage is preallocated).
 *
 * Checkpointing: the model is made of parts (a header, one part per tree, one per page of the
 * window) that can be written whole (vs_iforest_serialize) or only the parts changed since the
 * last write (vs_iforest_part_*), as a compact, versioned little-endian encoding.
 */
#ifndef VS_FRAUD_IFOREST_H
#define VS_FRAUD_IFOREST_H

#include <stddef.h>
#include <stdint.h>

#define VS_IFOREST_MAX_DIMS 4096
#define VS_IFOREST_MAX_SAMPLE 4096

struct vs_iforest_config {
    int dims;          /* features per point, 1..VS_IFOREST_MAX_DIMS */
    int trees;         /* trees in the ensemble */
    int sample_size;   /* points per tree (psi), 2..VS_IFOREST_MAX_SAMPLE */
    int window;        /* recent points kept to sample from, >= sample_size */
    int rebuild_every; /* learned points between two tree replacements; 0 = window/(8*trees) */
    int max_depth;     /* tree height limit; 0 = ceil(log2(sample_size)) */
    uint64_t seed;
};

/* The config keys of the forest, as initializers of struct vs_config_key (valuestream/config.h),
 * shared by the fraud operator's table and `valuestream eval anomaly`. */
#define VS_IFOREST_CONFIG_KEYS                                                                     \
    {"fraud.trees", VS_CONFIG_INT, "100", "Trees in the isolation forest."},                       \
        {"fraud.sample.size", VS_CONFIG_INT, "256", "Points each tree is built on."},              \
        {"fraud.window", VS_CONFIG_INT, "4096",                                                    \
         "Recent points the forest keeps and samples its trees from."},                            \
        {"fraud.rebuild.every", VS_CONFIG_INT, "0",                                                \
         "Learned points between two tree replacements (0 = window / (8 * trees))."},              \
        {"fraud.max.depth", VS_CONFIG_INT, "0", "Tree height limit (0 = log2 of sample size)."},   \
    {                                                                                              \
        "fraud.seed", VS_CONFIG_INT, "1", "Seed of the forest's random choices."                   \
    }

struct vs_iforest;

/* Fill cfg with the defaults above for dims features. */
void vs_iforest_config_default(struct vs_iforest_config *cfg, int dims);

/* A new, empty forest. NULL and errbuf on a bad config or out of memory. */
struct vs_iforest *vs_iforest_new(const struct vs_iforest_config *cfg, char *errbuf, size_t errlen);
void vs_iforest_free(struct vs_iforest *f);

const struct vs_iforest_config *vs_iforest_get_config(const struct vs_iforest *f);

/* Points learned so far (the model version). */
uint64_t vs_iforest_learned(const struct vs_iforest *f);

/* True once the forest has trees (it has learned at least a few points). */
int vs_iforest_ready(const struct vs_iforest *f);

/*
 * Score x (dims values). *score in [0, 1]; 0.5 while the forest is not ready. contrib, when not
 * NULL, receives dims values: each feature's part of the path shortening 1 - E[h/c(n)] (they sum
 * to it; a negative value means splits on that feature made x look more normal). Returns 0 or
 * VS_EINVAL when x holds a NaN or an infinity. Allocates nothing.
 */
int vs_iforest_score(const struct vs_iforest *f, const double *x, double *score, double *contrib);

/* Add x to the window, replacing trees when due. Returns 0 or VS_EINVAL for a non-finite x. */
int vs_iforest_learn(struct vs_iforest *f, const double *x);

/* vs_iforest_learn(), remembering id (not 0; e.g. a hash of the event id) with the point so that
 * vs_iforest_forget() can take it out of the window again. */
int vs_iforest_learn_id(struct vs_iforest *f, const double *x, uint64_t id);

/* Take the point learned with id out of the window: trees built from now on never sample it
 * (trees already built keep it until they are replaced, within window / (8 * trees) points by
 * default). Returns 0, or VS_ENOTFOUND when no such point is in the window. */
int vs_iforest_forget(struct vs_iforest *f, uint64_t id);

/* ==== Serialisation ==== */

/* Size of the whole model, and writing it into buf (len >= that size). */
size_t vs_iforest_serialized_size(const struct vs_iforest *f);
int vs_iforest_serialize(const struct vs_iforest *f, void *buf, size_t len);
/* A forest from vs_iforest_serialize's bytes. NULL and errbuf on corrupt or unknown versions. */
struct vs_iforest *vs_iforest_deserialize(const void *buf, size_t len, char *errbuf, size_t errlen);

/*
 * Parts, for incremental checkpoints. Part 0 is the header (config and counters), then one part
 * per tree, then one per window page. A forest is restored by vs_iforest_from_header() followed
 * by vs_iforest_part_read() of every other part. dirty: the part changed since the last
 * vs_iforest_clear_dirty(). part_write returns the bytes written, or a negative VS_E* code when
 * buf is too small (vs_iforest_part_max_size() always suffices).
 */
int vs_iforest_part_count(const struct vs_iforest *f);
int vs_iforest_part_dirty(const struct vs_iforest *f, int part);
size_t vs_iforest_part_max_size(const struct vs_iforest *f);
long vs_iforest_part_write(const struct vs_iforest *f, int part, void *buf, size_t len);
int vs_iforest_part_read(struct vs_iforest *f, int part, const void *buf, size_t len);
void vs_iforest_clear_dirty(struct vs_iforest *f);
struct vs_iforest *vs_iforest_from_header(const void *buf, size_t len, char *errbuf, size_t errlen);

#endif
