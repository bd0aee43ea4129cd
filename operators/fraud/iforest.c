/*
 * The streaming isolation forest (see iforest.h for the model and its guarantees).
 *
 * Why this design: the references (Online iForest, iForestASD, RRCF, Half-Space Trees) were
 * measured against the ODDS sets with `valuestream eval anomaly`; a window-sampled ensemble that
 * replaces one tree at a time keeps batch iForest's accuracy (its trees are ordinary iForest
 * trees on a recent sample) while its cost per point is one scoring pass plus 1/rebuild_every of
 * a tree build, a few microseconds in all. RRCF-style insertion and deletion in every tree costs
 * as much as a build per point; histogram-split online trees need far more points per tree to
 * reach the same quality.
 *
 * Layout: the trees' nodes live in one preallocated array, max_nodes per tree, in pre-order (the
 * left child follows its parent). A node is 8 bytes: the threshold, the index of the right child
 * and the feature. A leaf loops to itself (threshold -inf, right child = itself), so scoring can
 * walk a group of trees for a fixed number of steps without a branch, the walks of the group
 * overlapping in the CPU instead of waiting on each other's loads and mispredicted exits. Leaf
 * values, explanation gains and node sizes live in side arrays that the walk never touches.
 */
#include "iforest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valuestream/error.h>

#define LEAF 0xFFFF /* feature of a leaf in the serialised form and while a tree is built */
#define GROUP 8     /* trees walked together */
#define PAGE_ROWS 256
#define MIN_POINTS 16
#define FORMAT_VERSION 1
#define MAGIC 0x46495356u /* "VSIF" little-endian */

enum { PART_HEADER = 0, PART_TREE = 1, PART_PAGE = 2 };

struct node {
    float v;        /* threshold: x < v goes left; -inf in a leaf */
    uint16_t right; /* index of the right child within the tree; a leaf's own index */
    uint16_t feat;  /* split feature; 0 in a leaf */
};

struct tree {
    uint32_t n;      /* points the tree was built on */
    uint32_t nnodes; /* 0: not built */
    uint32_t depth;  /* deepest leaf */
};

struct vs_iforest {
    struct vs_iforest_config cfg;
    int max_nodes;
    struct node *nodes; /* trees * max_nodes */
    /* Internal node: path shortening of going left / right; leaf: [0] is the normalised path
     * length (depth + c(size)) / c(n) of the points that reach it. */
    float (*aux)[2];
    uint16_t *sizes; /* points in each node at build time */
    struct tree *trees;
    double *cpath; /* c(i) for i = 0..sample_size */

    float *win;     /* window, window * dims, ring buffer */
    uint64_t *ids;  /* each window row's id (0: none), for vs_iforest_forget() */
    uint64_t *gone; /* bitmap of forgotten window rows, never sampled */
    uint32_t head, count;
    uint64_t learned, builds;
    uint32_t next_tree, since; /* round robin: next tree to replace, points since last */

    /* build scratch: the sample's rows, copied together, and their order */
    float *sample;
    uint32_t *idx;
    uint64_t *taken; /* bitmap over the window, for sampling without replacement */
    size_t words;    /* of the window bitmaps */

    /* dirty parts: header, trees, pages */
    uint8_t *dirty;
    int npages;
};

/* ==== Random numbers: xoshiro256** seeded through splitmix64 ==== */

struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull);
    for (int i = 0; i < 4; i++) {
        r->s[i] = splitmix64(&x);
    }
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in [0, n), without modulo bias worth mentioning for n far below 2^32 (Lemire). */
static uint32_t rng_below(struct rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in (0, 1). */
static double rng_unit(struct rng *r)
{
    return ((double)(rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* ==== Path lengths ==== */

/* Average path length of an unsuccessful search in a binary search tree of n points. */
static double avg_path(uint32_t n)
{
    if (n <= 1) {
        return 0.0;
    }
    if (n == 2) {
        return 1.0;
    }
    double m = (double)(n - 1);
    return 2.0 * (log(m) + 0.5772156649015329) - 2.0 * m / (double)n;
}

/* ==== Construction ==== */

void vs_iforest_config_default(struct vs_iforest_config *cfg, int dims)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->dims = dims;
    cfg->trees = 100;
    cfg->sample_size = 256;
    cfg->window = 4096;
    cfg->rebuild_every = 0;
    cfg->max_depth = 0;
    cfg->seed = 1;
}

static int check_config(const struct vs_iforest_config *c, char *errbuf, size_t errlen)
{
    const char *why = NULL;
    if (c->dims < 1 || c->dims > VS_IFOREST_MAX_DIMS) {
        why = "dims must be 1..4096";
    } else if (c->trees < 1 || c->trees > 10000) {
        why = "fraud.trees must be 1..10000";
    } else if (c->sample_size < 2 || c->sample_size > VS_IFOREST_MAX_SAMPLE) {
        why = "fraud.sample.size must be 2..4096";
    } else if (c->window < c->sample_size || c->window > (1 << 24)) {
        why = "fraud.window must be at least fraud.sample.size and at most 16777216";
    } else if (c->rebuild_every < 0 || c->rebuild_every > (1 << 24)) {
        why = "fraud.rebuild.every must be 0..16777216";
    } else if (c->max_depth < 0 || c->max_depth > 30) {
        why = "fraud.max.depth must be 0..30";
    }
    if (why) {
        snprintf(errbuf, errlen, "isolation forest: %s", why);
        return VS_ECONFIG;
    }
    return 0;
}

static int depth_limit(const struct vs_iforest_config *c)
{
    if (c->max_depth > 0) {
        return c->max_depth;
    }
    int d = 0;
    while ((1 << d) < c->sample_size) {
        d++;
    }
    return d;
}

static int rebuild_every(const struct vs_iforest_config *c)
{
    if (c->rebuild_every > 0) {
        return c->rebuild_every;
    }
    /* Each tree lives for an eighth of the window: measured on the ODDS sets, a quick turnover
     * of trees, each still sampled from the whole window, decorrelates the scores of nearby
     * points and cuts the run-to-run spread of the AUC by a third at a small cost. */
    int r = c->window / (8 * c->trees);
    return r < 1 ? 1 : r;
}

struct vs_iforest *vs_iforest_new(const struct vs_iforest_config *cfg, char *errbuf, size_t errlen)
{
    if (check_config(cfg, errbuf, errlen) != 0) {
        return NULL;
    }
    struct vs_iforest *f = calloc(1, sizeof(*f));
    if (!f) {
        goto nomem;
    }
    f->cfg = *cfg;
    f->cfg.max_depth = depth_limit(cfg);
    f->cfg.rebuild_every = rebuild_every(cfg);
    long full = (1L << (f->cfg.max_depth + 1)) - 1;
    long max_nodes = 2L * cfg->sample_size - 1;
    f->max_nodes = (int)(full < max_nodes ? full : max_nodes);
    size_t nn = (size_t)cfg->trees * (size_t)f->max_nodes;
    f->npages = (cfg->window + PAGE_ROWS - 1) / PAGE_ROWS;
    f->nodes = calloc(nn, sizeof(*f->nodes));
    f->aux = calloc(nn, sizeof(*f->aux));
    f->cpath = calloc((size_t)cfg->sample_size + 1, sizeof(*f->cpath));
    f->sample = calloc((size_t)cfg->sample_size * (size_t)cfg->dims, sizeof(float));
    f->sizes = calloc(nn, sizeof(*f->sizes));
    f->trees = calloc((size_t)cfg->trees, sizeof(*f->trees));
    f->win = calloc((size_t)cfg->window * (size_t)cfg->dims, sizeof(float));
    f->idx = calloc((size_t)cfg->sample_size, sizeof(*f->idx));
    f->words = ((size_t)cfg->window + 63) / 64;
    f->taken = calloc(f->words, sizeof(uint64_t));
    f->gone = calloc(f->words, sizeof(uint64_t));
    f->ids = calloc((size_t)cfg->window, sizeof(uint64_t));
    f->dirty = malloc(1 + (size_t)cfg->trees + (size_t)f->npages);
    if (!f->nodes || !f->aux || !f->cpath || !f->sample || !f->sizes || !f->trees || !f->win ||
        !f->idx || !f->taken || !f->gone || !f->ids || !f->dirty) {
        vs_iforest_free(f);
        goto nomem;
    }
    for (int i = 0; i <= cfg->sample_size; i++) {
        f->cpath[i] = avg_path((uint32_t)i);
    }
    memset(f->dirty, 1, 1 + (size_t)cfg->trees + (size_t)f->npages);
    return f;
nomem:
    snprintf(errbuf, errlen, "isolation forest: out of memory");
    return NULL;
}

void vs_iforest_free(struct vs_iforest *f)
{
    if (!f) {
        return;
    }
    free(f->nodes);
    free(f->aux);
    free(f->cpath);
    free(f->sample);
    free(f->sizes);
    free(f->trees);
    free(f->win);
    free(f->idx);
    free(f->taken);
    free(f->gone);
    free(f->ids);
    free(f->dirty);
    free(f);
}

const struct vs_iforest_config *vs_iforest_get_config(const struct vs_iforest *f)
{
    return &f->cfg;
}

uint64_t vs_iforest_learned(const struct vs_iforest *f)
{
    return f->learned;
}

int vs_iforest_ready(const struct vs_iforest *f)
{
    return f->trees[0].nnodes > 0;
}

/* ==== Tree building ==== */

/*
 * Fill the derived fields of a tree whose nodes hold feature (LEAF in leaves), threshold and
 * size: right-child indices, leaves turned into self-loops, leaf values and the gains of each
 * internal node. Shared by building and deserialising, so a restored tree scores bit for bit like
 * the original. Returns the index after the subtree at i, or -1 if the shape is inconsistent.
 */
static int finish_subtree(struct vs_iforest *f, int t, int i, int depth, double inv_c)
{
    struct node *nodes = f->nodes + (size_t)t * f->max_nodes;
    float(*aux)[2] = f->aux + (size_t)t * f->max_nodes;
    const uint16_t *sizes = f->sizes + (size_t)t * f->max_nodes;
    struct tree *tr = &f->trees[t];
    if (i >= (int)tr->nnodes || depth > f->cfg.max_depth) {
        return -1;
    }
    struct node *nd = &nodes[i];
    if (nd->feat == LEAF) {
        nd->v = -INFINITY;
        nd->right = (uint16_t)i;
        nd->feat = 0;
        aux[i][0] = (float)(((double)depth + f->cpath[sizes[i]]) * inv_c);
        aux[i][1] = 0.0f;
        tr->depth = (uint32_t)depth > tr->depth ? (uint32_t)depth : tr->depth;
        return i + 1;
    }
    if (nd->feat >= f->cfg.dims || !isfinite(nd->v) || sizes[i] > f->cfg.sample_size) {
        return -1;
    }
    int r = finish_subtree(f, t, i + 1, depth + 1, inv_c);
    if (r < 0) {
        return -1;
    }
    nd->right = (uint16_t)r;
    int end = finish_subtree(f, t, r, depth + 1, inv_c);
    if (end < 0 || (uint32_t)sizes[i + 1] + sizes[r] != sizes[i]) {
        return -1;
    }
    double cn = f->cpath[sizes[i]] - 1.0;
    aux[i][0] = (float)((cn - f->cpath[sizes[i + 1]]) * inv_c);
    aux[i][1] = (float)((cn - f->cpath[sizes[r]]) * inv_c);
    return end;
}

static inline int is_leaf(const struct node *nodes, int i)
{
    return nodes[i].right == i;
}

/* The min and max of feature fi over the sample points idx[0..n); true when they differ. */
static int feature_range(const float *pts, int dims, const uint32_t *idx, uint32_t n, int fi,
                         float *lo_out, float *hi_out)
{
    float lo = pts[(size_t)idx[0] * dims + fi], hi = lo;
    for (uint32_t j = 1; j < n; j++) {
        float v = pts[(size_t)idx[j] * dims + fi];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    *lo_out = lo;
    *hi_out = hi;
    return hi > lo;
}

/*
 * Grow the subtree of the idx[0..n) sample points in pre-order: pick a random feature among
 * those not constant on the points, split uniformly between their min and max, recurse. Only
 * feature, threshold and size are set here; finish_subtree() derives the rest.
 */
static void grow(struct vs_iforest *f, int t, uint32_t *idx, uint32_t n, int depth, struct rng *r,
                 const uint64_t *constant_above, int nconstant_above)
{
    struct node *nodes = f->nodes + (size_t)t * f->max_nodes;
    uint16_t *sizes = f->sizes + (size_t)t * f->max_nodes;
    int id = (int)f->trees[t].nnodes++;
    const int dims = f->cfg.dims;
    const float *win = f->sample;
    nodes[id].feat = LEAF;
    nodes[id].v = 0.0f;
    nodes[id].right = 0;
    sizes[id] = (uint16_t)n;
    if (depth >= f->cfg.max_depth || n <= 1 || nconstant_above >= dims) {
        return;
    }
    /* A random feature among those not constant on the points: rejection (uniform among the
     * non-constant ones), skipping without a scan the features already constant on the parent's
     * points and remembering those found constant here for the children; if scans keep failing,
     * an exhaustive count. */
    const size_t words = ((size_t)dims + 63) / 64;
    uint64_t constant[VS_IFOREST_MAX_DIMS / 64];
    memcpy(constant, constant_above, words * sizeof(uint64_t));
    int nconstant = nconstant_above;
    int feat = -1;
    float lo = 0.0f, hi = 0.0f;
    for (int scans = 0, draws = 0; scans < 8 && draws < 64 && feat < 0; draws++) {
        int fi = (int)rng_below(r, (uint32_t)dims);
        if (constant[fi >> 6] >> (fi & 63) & 1) {
            continue;
        }
        scans++;
        if (feature_range(win, dims, idx, n, fi, &lo, &hi)) {
            feat = fi;
        } else {
            constant[fi >> 6] |= 1ull << (fi & 63);
            nconstant++;
        }
    }
    if (feat < 0) {
        uint32_t live = 0;
        for (int fi = 0; fi < dims; fi++) {
            if (!(constant[fi >> 6] >> (fi & 63) & 1)) {
                if (feature_range(win, dims, idx, n, fi, &lo, &hi)) {
                    live++;
                } else {
                    constant[fi >> 6] |= 1ull << (fi & 63);
                    nconstant++;
                }
            }
        }
        if (live == 0) {
            return;
        }
        uint32_t k = rng_below(r, live);
        for (int fi = 0; fi < dims && feat < 0; fi++) {
            if (!(constant[fi >> 6] >> (fi & 63) & 1) && k-- == 0) {
                feat = fi;
                feature_range(win, dims, idx, n, fi, &lo, &hi);
            }
        }
    }
    float thr = (float)(lo + rng_unit(r) * ((double)hi - lo));
    if (!(thr > lo)) {
        thr = nextafterf(lo, hi);
    }
    if (thr > hi) {
        thr = hi;
    }
    /* Branch-free Lomuto partition: idx[0..i) < thr <= idx[i..j). */
    uint32_t i = 0;
    for (uint32_t j = 0; j < n; j++) {
        uint32_t v = idx[j];
        uint32_t go_left = win[(size_t)v * dims + feat] < thr;
        idx[j] = idx[i];
        idx[i] = v;
        i += go_left;
    }
    nodes[id].feat = (uint16_t)feat;
    nodes[id].v = thr;
    grow(f, t, idx, i, depth + 1, r, constant, nconstant);
    grow(f, t, idx + i, n - i, depth + 1, r, constant, nconstant);
}

static inline int bit(const uint64_t *map, uint32_t i)
{
    return (int)(map[i >> 6] >> (i & 63) & 1);
}

/* Replace tree t by a new tree on a sample of the window's rows that were not forgotten, drawn
 * without replacement (rejection: the sample is a small part of the window). */
static void build_tree(struct vs_iforest *f, int t)
{
    struct rng r;
    rng_seed(&r, f->cfg.seed, ++f->builds);
    uint32_t n = f->count, psi = (uint32_t)f->cfg.sample_size;
    uint32_t ngone = 0;
    for (size_t w = 0; w < f->words; w++) {
        ngone += (uint32_t)__builtin_popcountll(f->gone[w]);
    }
    uint32_t live = n - ngone;
    uint32_t m = live < psi ? live : psi;
    const size_t dims = (size_t)f->cfg.dims;
    if (live <= psi) {
        uint32_t k = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (!bit(f->gone, i)) {
                f->idx[k++] = i;
            }
        }
    } else {
        for (uint32_t k = 0; k < m;) {
            uint32_t c = rng_below(&r, n);
            if (!bit(f->taken, c) && !bit(f->gone, c)) {
                f->taken[c >> 6] |= 1ull << (c & 63);
                f->idx[k++] = c;
            }
        }
        for (uint32_t i = 0; i < m; i++) {
            f->taken[f->idx[i] >> 6] &= ~(1ull << (f->idx[i] & 63));
        }
    }
    if (m < 2) {
        return; /* (nearly) everything forgotten: keep the old tree */
    }
    for (uint32_t i = 0; i < m; i++) {
        memcpy(f->sample + i * dims, f->win + (size_t)f->idx[i] * dims, dims * sizeof(float));
        f->idx[i] = i;
    }
    f->trees[t].n = m;
    f->trees[t].nnodes = 0;
    f->trees[t].depth = 0;
    uint64_t none[VS_IFOREST_MAX_DIMS / 64] = {0};
    grow(f, t, f->idx, m, 0, &r, none, 0);
    finish_subtree(f, t, 0, 0, 1.0 / f->cpath[m]);
    f->dirty[1 + t] = 1;
}

/* ==== Scoring and learning ==== */

static int to_float(const struct vs_iforest *f, const double *x, float *xf)
{
    for (int d = 0; d < f->cfg.dims; d++) {
        if (!isfinite(x[d])) {
            return VS_EINVAL;
        }
        xf[d] = (float)x[d];
    }
    return 0;
}

/*
 * Walk GROUP trees from t0 together for as many steps as the deepest of them needs, leaves
 * looping to themselves; returns the sum of their leaf values. The child is chosen with a mask,
 * not a branch: the compiler keeps the group's positions in registers and the walks overlap.
 */
static double walk_group(const struct vs_iforest *f, int t0, const float *xf)
{
    const size_t stride = (size_t)f->max_nodes;
    const struct node *base = f->nodes + (size_t)t0 * stride;
    uint32_t at[GROUP];
    uint32_t steps = 0;
#pragma GCC unroll 8
    for (int k = 0; k < GROUP; k++) {
        at[k] = 0;
        steps = f->trees[t0 + k].depth > steps ? f->trees[t0 + k].depth : steps;
    }
    for (uint32_t s = 0; s < steps; s++) {
#pragma GCC unroll 8
        for (int k = 0; k < GROUP; k++) {
            const struct node *nd = base + k * stride + at[k];
            uint32_t left = -(uint32_t)(xf[nd->feat] < nd->v);
            at[k] = ((at[k] + 1) & left) | ((uint32_t)nd->right & ~left);
        }
    }
    double sum = 0.0;
    for (int k = 0; k < GROUP; k++) {
        sum += f->aux[(size_t)(t0 + k) * stride + at[k]][0];
    }
    return sum;
}

/* walk_group(), adding each split's gain to its feature's contribution. A leaf's self-loop
 * "goes right" and adds its [1], which is zero. */
static double walk_group_explain(const struct vs_iforest *f, int t0, const float *xf,
                                 double *contrib)
{
    const size_t stride = (size_t)f->max_nodes;
    const struct node *base = f->nodes + (size_t)t0 * stride;
    const float(*aux)[2] = f->aux + (size_t)t0 * stride;
    uint32_t at[GROUP];
    uint32_t steps = 0;
#pragma GCC unroll 8
    for (int k = 0; k < GROUP; k++) {
        at[k] = 0;
        steps = f->trees[t0 + k].depth > steps ? f->trees[t0 + k].depth : steps;
    }
    for (uint32_t s = 0; s < steps; s++) {
#pragma GCC unroll 8
        for (int k = 0; k < GROUP; k++) {
            const struct node *nd = base + k * stride + at[k];
            int go_left = xf[nd->feat] < nd->v;
            uint32_t left = -(uint32_t)go_left;
            contrib[nd->feat] += aux[k * stride + at[k]][!go_left];
            at[k] = ((at[k] + 1) & left) | ((uint32_t)nd->right & ~left);
        }
    }
    double sum = 0.0;
    for (int k = 0; k < GROUP; k++) {
        sum += aux[k * stride + at[k]][0];
    }
    return sum;
}

int vs_iforest_score(const struct vs_iforest *f, const double *x, double *score, double *contrib)
{
    float xf[VS_IFOREST_MAX_DIMS];
    int rc = to_float(f, x, xf);
    if (rc != 0) {
        return rc;
    }
    const int dims = f->cfg.dims;
    if (contrib) {
        memset(contrib, 0, (size_t)dims * sizeof(*contrib));
    }
    if (!vs_iforest_ready(f)) {
        *score = 0.5;
        return 0;
    }
    const int ntrees = f->cfg.trees;
    const int max_nodes = f->max_nodes;
    double sum = 0.0;
    if (!contrib) {
        int t0 = 0;
        for (; t0 + GROUP <= ntrees; t0 += GROUP) {
            sum += walk_group(f, t0, xf);
        }
        for (; t0 < ntrees; t0++) {
            const struct node *nodes = f->nodes + (size_t)t0 * max_nodes;
            int i = 0;
            while (!is_leaf(nodes, i)) {
                i = xf[nodes[i].feat] < nodes[i].v ? i + 1 : nodes[i].right;
            }
            sum += f->aux[(size_t)t0 * max_nodes + i][0];
        }
    } else {
        int t0 = 0;
        for (; t0 + GROUP <= ntrees; t0 += GROUP) {
            sum += walk_group_explain(f, t0, xf, contrib);
        }
        for (; t0 < ntrees; t0++) {
            const struct node *nodes = f->nodes + (size_t)t0 * max_nodes;
            const float(*aux)[2] = f->aux + (size_t)t0 * max_nodes;
            int i = 0;
            while (!is_leaf(nodes, i)) {
                int right = !(xf[nodes[i].feat] < nodes[i].v);
                contrib[nodes[i].feat] += aux[i][right];
                i = right ? nodes[i].right : i + 1;
            }
            sum += aux[i][0];
        }
        for (int d = 0; d < dims; d++) {
            contrib[d] /= ntrees;
        }
    }
    *score = exp2(-sum / ntrees);
    return 0;
}

int vs_iforest_learn(struct vs_iforest *f, const double *x)
{
    return vs_iforest_learn_id(f, x, 0);
}

int vs_iforest_forget(struct vs_iforest *f, uint64_t id)
{
    if (id == 0) {
        return VS_ENOTFOUND;
    }
    for (uint32_t i = 0; i < f->count; i++) {
        if (f->ids[i] == id && !bit(f->gone, i)) {
            f->gone[i >> 6] |= 1ull << (i & 63);
            f->dirty[1 + f->cfg.trees + i / PAGE_ROWS] = 1;
            return 0;
        }
    }
    return VS_ENOTFOUND;
}

int vs_iforest_learn_id(struct vs_iforest *f, const double *x, uint64_t id)
{
    const int dims = f->cfg.dims;
    float xf[VS_IFOREST_MAX_DIMS];
    int rc = to_float(f, x, xf);
    if (rc != 0) {
        return rc;
    }
    memcpy(f->win + (size_t)f->head * dims, xf, (size_t)dims * sizeof(float));
    f->ids[f->head] = id;
    f->gone[f->head >> 6] &= ~(1ull << (f->head & 63));
    f->dirty[1 + f->cfg.trees + f->head / PAGE_ROWS] = 1;
    f->dirty[0] = 1;
    f->head = (f->head + 1) % (uint32_t)f->cfg.window;
    if (f->count < (uint32_t)f->cfg.window) {
        f->count++;
    }
    f->learned++;

    /* While the window fills, rebuild everything each time it doubles: a young forest is then
     * never more than half as informed as it could be. */
    uint64_t l = f->learned;
    if (l >= MIN_POINTS && l <= (uint64_t)f->cfg.window && (l & (l - 1)) == 0) {
        for (int t = 0; t < f->cfg.trees; t++) {
            build_tree(f, t);
        }
        f->next_tree = 0;
        f->since = 0;
        return 0;
    }
    if (vs_iforest_ready(f) && ++f->since >= (uint32_t)f->cfg.rebuild_every) {
        f->since = 0;
        build_tree(f, (int)f->next_tree);
        f->next_tree = (f->next_tree + 1) % (uint32_t)f->cfg.trees;
    }
    return 0;
}

/* ==== Serialisation: little-endian, every part prefixed by magic, version, kind, index ==== */

struct wbuf {
    uint8_t *p, *end;
    int overflow;
};

static void put(struct wbuf *w, const void *src, size_t n)
{
    if (w->overflow || (size_t)(w->end - w->p) < n) {
        w->overflow = 1;
        return;
    }
    memcpy(w->p, src, n);
    w->p += n;
}

static void put_u8(struct wbuf *w, uint8_t v)
{
    put(w, &v, 1);
}

static void put_u16(struct wbuf *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(w, b, 2);
}

static void put_u32(struct wbuf *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(w, b, 4);
}

static void put_u64(struct wbuf *w, uint64_t v)
{
    put_u32(w, (uint32_t)v);
    put_u32(w, (uint32_t)(v >> 32));
}

static void put_f32(struct wbuf *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    put_u32(w, u);
}

struct rbuf {
    const uint8_t *p, *end;
    int short_read;
};

static void get(struct rbuf *r, void *dst, size_t n)
{
    if (r->short_read || (size_t)(r->end - r->p) < n) {
        r->short_read = 1;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, r->p, n);
    r->p += n;
}

static uint8_t get_u8(struct rbuf *r)
{
    uint8_t v;
    get(r, &v, 1);
    return v;
}

static uint16_t get_u16(struct rbuf *r)
{
    uint8_t b[2];
    get(r, b, 2);
    return (uint16_t)(b[0] | b[1] << 8);
}

static uint32_t get_u32(struct rbuf *r)
{
    uint8_t b[4];
    get(r, b, 4);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t get_u64(struct rbuf *r)
{
    uint64_t lo = get_u32(r);
    return lo | (uint64_t)get_u32(r) << 32;
}

static float get_f32(struct rbuf *r)
{
    uint32_t u = get_u32(r);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

#define PART_PREFIX 12
#define HEADER_BODY 68

int vs_iforest_part_count(const struct vs_iforest *f)
{
    return 1 + f->cfg.trees + f->npages;
}

int vs_iforest_part_dirty(const struct vs_iforest *f, int part)
{
    return part >= 0 && part < vs_iforest_part_count(f) && f->dirty[part];
}

void vs_iforest_clear_dirty(struct vs_iforest *f)
{
    memset(f->dirty, 0, (size_t)vs_iforest_part_count(f));
}

size_t vs_iforest_part_max_size(const struct vs_iforest *f)
{
    size_t tree = 8 + (size_t)f->max_nodes * 8;
    size_t page = 8 + (size_t)PAGE_ROWS * (9 + (size_t)f->cfg.dims * 4);
    size_t m = tree > page ? tree : page;
    return PART_PREFIX + (m > HEADER_BODY ? m : HEADER_BODY);
}

static void put_prefix(struct wbuf *w, int kind, uint32_t index)
{
    put_u32(w, MAGIC);
    put_u16(w, FORMAT_VERSION);
    put_u8(w, (uint8_t)kind);
    put_u8(w, 0);
    put_u32(w, index);
}

long vs_iforest_part_write(const struct vs_iforest *f, int part, void *buf, size_t len)
{
    struct wbuf w = {buf, (uint8_t *)buf + len, 0};
    const struct vs_iforest_config *c = &f->cfg;
    if (part < 0 || part >= vs_iforest_part_count(f)) {
        return VS_EINVAL;
    }
    if (part == 0) {
        put_prefix(&w, PART_HEADER, 0);
        put_u16(&w, (uint16_t)c->dims);
        put_u32(&w, (uint32_t)c->trees);
        put_u32(&w, (uint32_t)c->sample_size);
        put_u32(&w, (uint32_t)c->window);
        put_u32(&w, (uint32_t)c->rebuild_every);
        put_u16(&w, (uint16_t)c->max_depth);
        put_u64(&w, c->seed);
        put_u64(&w, f->learned);
        put_u64(&w, f->builds);
        put_u32(&w, f->head);
        put_u32(&w, f->count);
        put_u32(&w, f->next_tree);
        put_u32(&w, f->since);
        put_u64(&w, 0); /* reserved */
    } else if (part <= c->trees) {
        int t = part - 1;
        const struct tree *tr = &f->trees[t];
        const struct node *nodes = f->nodes + (size_t)t * f->max_nodes;
        const uint16_t *sizes = f->sizes + (size_t)t * f->max_nodes;
        put_prefix(&w, PART_TREE, (uint32_t)t);
        put_u32(&w, tr->n);
        put_u32(&w, tr->nnodes);
        for (uint32_t i = 0; i < tr->nnodes; i++) {
            int leaf = is_leaf(nodes, (int)i);
            put_u16(&w, leaf ? LEAF : nodes[i].feat);
            put_u16(&w, sizes[i]);
            if (!leaf) {
                put_f32(&w, nodes[i].v);
            }
        }
    } else {
        int pg = part - 1 - c->trees;
        uint32_t first = (uint32_t)pg * PAGE_ROWS;
        uint32_t rows = first < f->count ? f->count - first : 0;
        rows = rows > PAGE_ROWS ? PAGE_ROWS : rows;
        put_prefix(&w, PART_PAGE, (uint32_t)pg);
        put_u32(&w, first);
        put_u32(&w, rows);
        for (uint32_t i = first; i < first + rows; i++) {
            put_u64(&w, f->ids[i]);
            put_u8(&w, (uint8_t)bit(f->gone, i));
            const float *src = f->win + (size_t)i * c->dims;
            for (int d = 0; d < c->dims; d++) {
                put_f32(&w, src[d]);
            }
        }
    }
    return w.overflow ? VS_EFULL : (long)(w.p - (uint8_t *)buf);
}

static int get_prefix(struct rbuf *r, int *kind, uint32_t *index)
{
    uint32_t magic = get_u32(r);
    uint16_t version = get_u16(r);
    *kind = get_u8(r);
    (void)get_u8(r);
    *index = get_u32(r);
    if (r->short_read || magic != MAGIC) {
        return VS_ECORRUPT;
    }
    if (version != FORMAT_VERSION) {
        return VS_EVERSION;
    }
    return 0;
}

struct vs_iforest *vs_iforest_from_header(const void *buf, size_t len, char *errbuf, size_t errlen)
{
    struct rbuf r = {buf, (const uint8_t *)buf + len, 0};
    int kind;
    uint32_t index;
    int rc = get_prefix(&r, &kind, &index);
    if (rc == VS_EVERSION) {
        snprintf(errbuf, errlen, "isolation forest: unsupported format version");
        return NULL;
    }
    if (rc != 0 || kind != PART_HEADER) {
        snprintf(errbuf, errlen, "isolation forest: corrupt header");
        return NULL;
    }
    struct vs_iforest_config c;
    memset(&c, 0, sizeof(c));
    c.dims = get_u16(&r);
    c.trees = (int)get_u32(&r);
    c.sample_size = (int)get_u32(&r);
    c.window = (int)get_u32(&r);
    c.rebuild_every = (int)get_u32(&r);
    c.max_depth = get_u16(&r);
    c.seed = get_u64(&r);
    uint64_t learned = get_u64(&r), builds = get_u64(&r);
    uint32_t head = get_u32(&r), count = get_u32(&r), next = get_u32(&r), since = get_u32(&r);
    (void)get_u64(&r);
    if (r.short_read) {
        snprintf(errbuf, errlen, "isolation forest: truncated header");
        return NULL;
    }
    struct vs_iforest *f = vs_iforest_new(&c, errbuf, errlen);
    if (!f) {
        return NULL;
    }
    if (head >= (uint32_t)c.window || count > (uint32_t)c.window || next >= (uint32_t)c.trees ||
        f->cfg.max_depth != c.max_depth || f->cfg.rebuild_every != c.rebuild_every) {
        snprintf(errbuf, errlen, "isolation forest: inconsistent header");
        vs_iforest_free(f);
        return NULL;
    }
    f->learned = learned;
    f->builds = builds;
    f->head = head;
    f->count = count;
    f->next_tree = next;
    f->since = since;
    return f;
}

int vs_iforest_part_read(struct vs_iforest *f, int part, const void *buf, size_t len)
{
    struct rbuf r = {buf, (const uint8_t *)buf + len, 0};
    int kind;
    uint32_t index;
    int rc = get_prefix(&r, &kind, &index);
    if (rc != 0) {
        return rc;
    }
    const struct vs_iforest_config *c = &f->cfg;
    if (part >= 1 && part <= c->trees && kind == PART_TREE && index == (uint32_t)(part - 1)) {
        int t = part - 1;
        uint32_t n = get_u32(&r), nnodes = get_u32(&r);
        if (r.short_read || nnodes > (uint32_t)f->max_nodes || n > (uint32_t)c->sample_size) {
            return VS_ECORRUPT;
        }
        struct node *nodes = f->nodes + (size_t)t * f->max_nodes;
        uint16_t *sizes = f->sizes + (size_t)t * f->max_nodes;
        for (uint32_t i = 0; i < nnodes; i++) {
            nodes[i].feat = get_u16(&r);
            sizes[i] = get_u16(&r);
            nodes[i].v = nodes[i].feat != LEAF ? get_f32(&r) : 0.0f;
        }
        f->trees[t].n = n;
        f->trees[t].nnodes = nnodes;
        f->trees[t].depth = 0;
        if (r.short_read || r.p != r.end) {
            f->trees[t].nnodes = 0;
            return VS_ECORRUPT;
        }
        if (nnodes > 0 && (sizes[0] != n || n < 2 ||
                           finish_subtree(f, t, 0, 0, 1.0 / f->cpath[n]) != (int)nnodes)) {
            f->trees[t].nnodes = 0;
            return VS_ECORRUPT;
        }
        f->dirty[part] = 0;
        return 0;
    }
    if (part > c->trees && part < vs_iforest_part_count(f) && kind == PART_PAGE &&
        index == (uint32_t)(part - 1 - c->trees)) {
        uint32_t first = get_u32(&r), rows = get_u32(&r);
        if (r.short_read || first != index * PAGE_ROWS || rows > PAGE_ROWS ||
            first + rows > (uint32_t)c->window) {
            return VS_ECORRUPT;
        }
        for (uint32_t i = first; i < first + rows; i++) {
            f->ids[i] = get_u64(&r);
            uint8_t gone = get_u8(&r);
            if (gone > 1) {
                return VS_ECORRUPT;
            }
            f->gone[i >> 6] = (f->gone[i >> 6] & ~(1ull << (i & 63))) | (uint64_t)gone << (i & 63);
            float *dst = f->win + (size_t)i * c->dims;
            for (int d = 0; d < c->dims; d++) {
                dst[d] = get_f32(&r);
                if (!isfinite(dst[d])) {
                    return VS_ECORRUPT;
                }
            }
        }
        if (r.short_read || r.p != r.end) {
            return VS_ECORRUPT;
        }
        f->dirty[part] = 0;
        return 0;
    }
    return VS_ECORRUPT;
}

/* The whole model: u32 part count, then each part as u32 length and bytes. */
size_t vs_iforest_serialized_size(const struct vs_iforest *f)
{
    size_t n = 4;
    n += 4 + PART_PREFIX + HEADER_BODY;
    for (int t = 0; t < f->cfg.trees; t++) {
        const struct node *nodes = f->nodes + (size_t)t * f->max_nodes;
        n += 4 + PART_PREFIX + 8;
        for (uint32_t i = 0; i < f->trees[t].nnodes; i++) {
            n += is_leaf(nodes, (int)i) ? 4 : 8;
        }
    }
    for (int p = 0; p < f->npages; p++) {
        uint32_t first = (uint32_t)p * PAGE_ROWS;
        uint32_t rows = first < f->count ? f->count - first : 0;
        rows = rows > PAGE_ROWS ? PAGE_ROWS : rows;
        n += 4 + PART_PREFIX + 8 + (size_t)rows * (9 + (size_t)f->cfg.dims * 4);
    }
    return n;
}

int vs_iforest_serialize(const struct vs_iforest *f, void *buf, size_t len)
{
    struct wbuf w = {buf, (uint8_t *)buf + len, 0};
    int nparts = vs_iforest_part_count(f);
    put_u32(&w, (uint32_t)nparts);
    for (int p = 0; p < nparts && !w.overflow; p++) {
        uint8_t *lenp = w.p;
        put_u32(&w, 0);
        if (w.overflow) {
            break;
        }
        long n = vs_iforest_part_write(f, p, w.p, (size_t)(w.end - w.p));
        if (n < 0) {
            return (int)n;
        }
        struct wbuf lw = {lenp, lenp + 4, 0};
        put_u32(&lw, (uint32_t)n);
        w.p += n;
    }
    return w.overflow ? VS_EFULL : 0;
}

struct vs_iforest *vs_iforest_deserialize(const void *buf, size_t len, char *errbuf, size_t errlen)
{
    struct rbuf r = {buf, (const uint8_t *)buf + len, 0};
    uint32_t nparts = get_u32(&r);
    uint32_t hlen = get_u32(&r);
    if (r.short_read || nparts < 1 || hlen > (size_t)(r.end - r.p)) {
        snprintf(errbuf, errlen, "isolation forest: truncated model");
        return NULL;
    }
    struct vs_iforest *f = vs_iforest_from_header(r.p, hlen, errbuf, errlen);
    if (!f) {
        return NULL;
    }
    r.p += hlen;
    if (nparts != (uint32_t)vs_iforest_part_count(f)) {
        snprintf(errbuf, errlen, "isolation forest: %u parts, expected %d", nparts,
                 vs_iforest_part_count(f));
        vs_iforest_free(f);
        return NULL;
    }
    for (uint32_t p = 1; p < nparts; p++) {
        uint32_t plen = get_u32(&r);
        int rc = VS_ECORRUPT;
        if (!r.short_read && plen <= (size_t)(r.end - r.p)) {
            rc = vs_iforest_part_read(f, (int)p, r.p, plen);
            r.p += plen;
        }
        if (rc != 0) {
            snprintf(errbuf, errlen, "isolation forest: part %u: %s", p,
                     rc == VS_EVERSION ? "unsupported version" : "corrupt");
            vs_iforest_free(f);
            return NULL;
        }
    }
    if (r.p != r.end) {
        snprintf(errbuf, errlen, "isolation forest: trailing bytes");
        vs_iforest_free(f);
        return NULL;
    }
    f->dirty[0] = 0;
    return f;
}
