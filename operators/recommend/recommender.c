/*
 * The recommender behind the `recommend` operator and `valuestream eval recommend`: learning
 * from one interaction at a time and blending three signals into one top-N list.
 *
 * The three signals answer different questions. The matrix-factorization model knows a
 * customer's taste once it has seen enough of them; co-occurrence ("bought together") knows
 * what goes with the items the customer touched a moment ago, and is the strongest signal in
 * the first interactions of a customer; recent popularity is what everybody wants now, the
 * only thing to say about a customer seen for the first time. Each is normalised to [0, 1] and
 * weighted, the model's weight ramping up with the number of the customer's interactions.
 * Every entry keeps the signal that contributed most as its reason.
 */
#include "recommender.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include <valuestream/error.h>

#include "als.h"
#include "vec.h"

/* ==== Configuration ==== */

const struct vs_config_key vs_rec_config[] = {
    {"recommend.k", VS_CONFIG_INT, "64",
     "factor dimension of the matrix-factorization model (1..64)"},
    {"recommend.lambda", VS_CONFIG_DOUBLE, "2", "L2 regularisation of the customer fold-in"},
    {"recommend.alpha", VS_CONFIG_DOUBLE, "2",
     "confidence per unit of interaction weight: c = 1 + alpha * weight"},
    {"recommend.item.inertia", VS_CONFIG_DOUBLE, "4",
     "how slowly an item's factors follow each interaction (> 0)"},
    {"recommend.solver.sweeps", VS_CONFIG_INT, "1",
     "customer update: 0 solves exactly (Cholesky), n > 0 runs n eALS coordinate sweeps"},
    /* A new item's random factors are noise in every score until interactions move them: at
     * 0.1, the model alone reached HR@10 0.010 on ../shared/data/diginetica (prequential, `eval
     * recommend`), at 0.01 0.041; 0.046 against 0.048 on 20k MovieLens ratings and 0.294
     * against 0.318 on the synthetic shop's views. Blended, the model still mostly adds noise to
     * co-occurrence at weight 1: at 0.3 the blend's HR@10 went from 0.0578 to 0.0585
     * (diginetica), 0.0727 to 0.0772 (MovieLens) and 0.362 to 0.369 (synthetic shop). The
     * customer's older items count less in co-occurrence at cooc.decay 0.85 than at 0.9, and
     * the fold-in is regularised more at lambda 2 than at 0.5: with both, 0.0596 (diginetica),
     * 0.1023 against 0.1003 on 32k MovieLens ratings, and 0.377 (synthetic shop). Denser logs
     * need more neighbours per item: on 53k MovieLens ratings, 64 gave 0.1281 against
     * co-occurrence's 0.1207 (unbounded), 96 gave 0.1330, at 5 % more time per event; diginetica
     * and the synthetic shop are the same at either. */
    {"recommend.init.scale", VS_CONFIG_DOUBLE, "0.01",
     "standard deviation of a new item's random factors"},
    {"recommend.max.items", VS_CONFIG_INT, "2000000",
     "most items the model holds; later new items are refused and counted"},
    {"recommend.weight.view", VS_CONFIG_DOUBLE, "1", "interaction weight of a view"},
    {"recommend.weight.add_to_cart", VS_CONFIG_DOUBLE, "4", "interaction weight of an add-to-cart"},
    {"recommend.weight.remove_from_cart", VS_CONFIG_DOUBLE, "4",
     "weight a remove-from-cart takes away"},
    {"recommend.weight.purchase", VS_CONFIG_DOUBLE, "10", "interaction weight of a purchase"},
    {"recommend.weight.refund", VS_CONFIG_DOUBLE, "10", "weight a refund takes away"},
    {"recommend.n", VS_CONFIG_INT, "20", "length of a recommendation list (1..50)"},
    {"recommend.exclude.viewed", VS_CONFIG_BOOL, "false",
     "also leave out the customer's recent items they viewed or carted (bought items always are)"},
    {"recommend.every.views", VS_CONFIG_INT, "5",
     "send a fresh list after this many views (purchases and add-to-carts always trigger one)"},
    {"recommend.min.interval.ms", VS_CONFIG_INT, "10000",
     "at most one list per customer per this much event time"},
    {"recommend.recent.items", VS_CONFIG_INT, "32",
     "recent items per customer the model solves against (1..32)"},
    {"recommend.cooc.neighbours", VS_CONFIG_INT, "96", "co-occurring items kept per item (1..256)"},
    {"recommend.cooc.window", VS_CONFIG_INT, "20",
     "a customer's recent items an interaction co-occurs with (1..recent.items)"},
    {"recommend.cooc.decay", VS_CONFIG_DOUBLE, "0.85",
     "weight of the p-th most recent item in co-occurrence: decay^p (0..1]"},
    {"recommend.popularity.tau.ms", VS_CONFIG_DOUBLE, "86400000",
     "decay time constant of recent popularity, ms of event time"},
    {"recommend.blend.model", VS_CONFIG_DOUBLE, "0.3",
     "blend weight of the matrix-factorization score"},
    {"recommend.blend.together", VS_CONFIG_DOUBLE, "1",
     "blend weight of co-occurrence with the customer's recent items"},
    {"recommend.blend.trending", VS_CONFIG_DOUBLE, "0.05", "blend weight of recent popularity"},
    {"recommend.blend.model.ramp", VS_CONFIG_DOUBLE, "10",
     "customer interactions before the model gets its full blend weight"},
    {"recommend.blend.adapt", VS_CONFIG_BOOL, "true",
     "tune the blend online: candidate mixes (blend.model x0.3..x10, blend.trending x1..x400) are "
     "tested on customers' next items and lists use the best by recent NDCG@10"},
    {"recommend.blend.adapt.sample", VS_CONFIG_INT, "64",
     "the engine tests the mixes on one in this many positive interactions (eval: every test "
     "point)"},
    {"recommend.blend.adapt.halflife", VS_CONFIG_DOUBLE, "2000",
     "tests after which a mix's past NDCG@10 counts half"},
    {"recommend.blend.adapt.margin", VS_CONFIG_DOUBLE, "4",
     "how far (in summed NDCG@10) a mix must lead the one in use to replace it"},
    /* Full ALS sweeps make the factors fit the log far better: the model alone (no
     * co-occurrence, no popularity) went from HR@10 0.0394 to 0.0526 with daily sweeps on
     * ../shared/data/diginetica (0.0525 with two iterations a sweep instead of one, at twice the
     * cost), 0.368 to 0.405 on the synthetic shop (two). Blended, co-occurrence carries most of the
     * list: diginetica HR@10 0.059583 either way, NDCG@10 0.033173 -> 0.033317; the synthetic
     * shop 0.421505 -> 0.424361; the demo's live hit rate 0.444 -> 0.453, but its engine took
     * 59 s instead of 25 (a sweep that a replay outruns is waited for at its boundary). Hence
     * off by default. */
    {"recommend.als.interval.ms", VS_CONFIG_INT, "0",
     "a full implicit-ALS sweep over the last recommend.als.window interactions every this much "
     "event time, on the thread pool, applied at the next boundary (0: never)"},
    {"recommend.als.window", VS_CONFIG_INT, "262144",
     "interactions a full ALS sweep learns from (the most recent ones)"},
    {"recommend.als.iterations", VS_CONFIG_INT, "1",
     "alternations (customers, then items) of one full ALS sweep (1..20)"},
    {NULL, 0, NULL, NULL},
};

enum field_kind { F_INT, F_INT64, F_FLOAT, F_DOUBLE, F_BOOL, F_U64 };

struct field {
    const char *key;
    enum field_kind kind;
    size_t off;
};

#define P(member) offsetof(struct vs_rec_params, member)
static const struct field fields[] = {
    {"recommend.k", F_INT, P(mf.k)},
    {"recommend.lambda", F_FLOAT, P(mf.lambda)},
    {"recommend.alpha", F_FLOAT, P(mf.alpha)},
    {"recommend.item.inertia", F_FLOAT, P(mf.item_inertia)},
    {"recommend.solver.sweeps", F_INT, P(eals_sweeps)},
    {"recommend.init.scale", F_FLOAT, P(mf.init_scale)},
    {"seed", F_U64, P(mf.seed)}, /* the engine's seed key */
    {"recommend.max.items", F_INT, P(mf.max_items)},
    {"recommend.weight.view", F_FLOAT, P(weight[VS_EVENT_VIEW])},
    {"recommend.weight.add_to_cart", F_FLOAT, P(weight[VS_EVENT_ADD_TO_CART])},
    {"recommend.weight.remove_from_cart", F_FLOAT, P(weight[VS_EVENT_REMOVE_FROM_CART])},
    {"recommend.weight.purchase", F_FLOAT, P(weight[VS_EVENT_PURCHASE])},
    {"recommend.weight.refund", F_FLOAT, P(weight[VS_EVENT_REFUND])},
    {"recommend.n", F_INT, P(n)},
    {"recommend.exclude.viewed", F_BOOL, P(exclude_viewed)},
    {"recommend.every.views", F_INT, P(every_views)},
    {"recommend.min.interval.ms", F_INT64, P(min_interval_ms)},
    {"recommend.recent.items", F_INT, P(recent)},
    {"recommend.cooc.neighbours", F_INT, P(cooc_m)},
    {"recommend.cooc.window", F_INT, P(cooc_window)},
    {"recommend.cooc.decay", F_FLOAT, P(cooc_decay)},
    {"recommend.popularity.tau.ms", F_DOUBLE, P(pop_tau_ms)},
    {"recommend.blend.model", F_FLOAT, P(blend_model)},
    {"recommend.blend.together", F_FLOAT, P(blend_together)},
    {"recommend.blend.trending", F_FLOAT, P(blend_trending)},
    {"recommend.blend.model.ramp", F_FLOAT, P(model_ramp)},
    {"recommend.blend.adapt", F_BOOL, P(adapt)},
    {"recommend.blend.adapt.sample", F_INT, P(adapt_sample)},
    {"recommend.blend.adapt.halflife", F_DOUBLE, P(adapt_halflife)},
    {"recommend.blend.adapt.margin", F_DOUBLE, P(adapt_margin)},
    {"recommend.als.interval.ms", F_INT64, P(als_interval_ms)},
    {"recommend.als.window", F_INT, P(als_window)},
    {"recommend.als.iterations", F_INT, P(als_iterations)},
};
#undef P

int vs_rec_params_set(struct vs_rec_params *p, const char *key, const char *value, char *errbuf,
                      size_t errlen)
{
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        if (strcmp(fields[f].key, key) != 0) {
            continue;
        }
        char *dst = (char *)p + fields[f].off;
        char *end = NULL;
        if (fields[f].kind == F_BOOL) {
            int v;
            if (!strcasecmp(value, "true") || !strcmp(value, "1") || !strcasecmp(value, "yes") ||
                !strcasecmp(value, "on")) {
                v = 1;
            } else if (!strcasecmp(value, "false") || !strcmp(value, "0") ||
                       !strcasecmp(value, "no") || !strcasecmp(value, "off")) {
                v = 0;
            } else {
                snprintf(errbuf, errlen, "%s: expected true or false, got '%s'", key, value);
                return VS_ECONFIG;
            }
            memcpy(dst, &v, sizeof(v));
            return 0;
        }
        if (fields[f].kind == F_FLOAT || fields[f].kind == F_DOUBLE) {
            double v = strtod(value, &end);
            if (end == value || *end || !isfinite(v)) {
                snprintf(errbuf, errlen, "%s: expected a finite number, got '%s'", key, value);
                return VS_ECONFIG;
            }
            if (fields[f].kind == F_FLOAT) {
                float fv = (float)v;
                memcpy(dst, &fv, sizeof(fv));
            } else {
                memcpy(dst, &v, sizeof(v));
            }
            return 0;
        }
        long long v = strtoll(value, &end, 10);
        if (end == value || *end) {
            snprintf(errbuf, errlen, "%s: expected an integer, got '%s'", key, value);
            return VS_ECONFIG;
        }
        if (fields[f].kind == F_INT) {
            if (v < -2147483647LL || v > 2147483647LL) {
                snprintf(errbuf, errlen, "%s: %lld is out of range", key, v);
                return VS_ECONFIG;
            }
            int iv = (int)v;
            memcpy(dst, &iv, sizeof(iv));
        } else if (fields[f].kind == F_INT64) {
            int64_t iv = v;
            memcpy(dst, &iv, sizeof(iv));
        } else {
            uint64_t uv = (uint64_t)v;
            memcpy(dst, &uv, sizeof(uv));
        }
        return 0;
    }
    snprintf(errbuf, errlen, "unknown key '%s'", key);
    return VS_ECONFIG;
}

void vs_rec_params_default(struct vs_rec_params *p)
{
    char err[160];
    memset(p, 0, sizeof(*p));
    for (const struct vs_config_key *k = vs_rec_config; k->key; k++) {
        int rc = vs_rec_params_set(p, k->key, k->def, err, sizeof(err));
        (void)rc; /* the defaults are part of this file and parse */
    }
    p->mf.seed = 42; /* the engine's default seed */
}

int vs_rec_params_check(const struct vs_rec_params *p, char *errbuf, size_t errlen)
{
#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(errbuf, errlen, __VA_ARGS__);                                                     \
        return VS_ECONFIG;                                                                         \
    } while (0)
    if (p->mf.k < 1 || p->mf.k > VS_MF_MAX_K) {
        BAD("recommend.k: expected 1..%d, got %d", VS_MF_MAX_K, p->mf.k);
    }
    if (!(p->mf.lambda > 0)) {
        BAD("recommend.lambda: expected > 0");
    }
    if (!(p->mf.alpha >= 0)) {
        BAD("recommend.alpha: expected >= 0");
    }
    if (!(p->mf.item_inertia > 0)) {
        BAD("recommend.item.inertia: expected > 0");
    }
    if (p->eals_sweeps < 0 || p->eals_sweeps > 100) {
        BAD("recommend.solver.sweeps: expected 0..100");
    }
    if (!(p->mf.init_scale >= 0) || p->mf.init_scale > 10) {
        BAD("recommend.init.scale: expected 0..10");
    }
    if (p->mf.max_items < 1) {
        BAD("recommend.max.items: expected >= 1");
    }
    for (int t = 0; t < VS_EVENT_TYPE_COUNT; t++) {
        if (!(p->weight[t] >= 0) || p->weight[t] > 1e6f) {
            BAD("recommend.weight.*: expected 0..1e6 (remove and refund weights are taken away)");
        }
    }
    if (p->n < 1 || p->n > VS_REC_MAX_N) {
        BAD("recommend.n: expected 1..%d, got %d", VS_REC_MAX_N, p->n);
    }
    if (p->every_views < 1) {
        BAD("recommend.every.views: expected >= 1");
    }
    if (p->min_interval_ms < 0) {
        BAD("recommend.min.interval.ms: expected >= 0");
    }
    if (p->recent < 1 || p->recent > VS_REC_MAX_RECENT) {
        BAD("recommend.recent.items: expected 1..%d, got %d", VS_REC_MAX_RECENT, p->recent);
    }
    if (p->cooc_m < 1 || p->cooc_m > VS_COOC_MAX_M) {
        BAD("recommend.cooc.neighbours: expected 1..%d, got %d", VS_COOC_MAX_M, p->cooc_m);
    }
    if (p->cooc_window < 1 || p->cooc_window > p->recent) {
        BAD("recommend.cooc.window: expected 1..recommend.recent.items (%d), got %d", p->recent,
            p->cooc_window);
    }
    if (!(p->cooc_decay > 0) || p->cooc_decay > 1) {
        BAD("recommend.cooc.decay: expected (0, 1]");
    }
    if (!(p->pop_tau_ms > 0)) {
        BAD("recommend.popularity.tau.ms: expected > 0");
    }
    if (!(p->blend_model >= 0) || !(p->blend_together >= 0) || !(p->blend_trending >= 0) ||
        p->blend_model + p->blend_together + p->blend_trending <= 0) {
        BAD("recommend.blend.*: expected weights >= 0, not all 0");
    }
    if (!(p->model_ramp >= 0)) {
        BAD("recommend.blend.model.ramp: expected >= 0");
    }
    if (p->adapt_sample < 1) {
        BAD("recommend.blend.adapt.sample: expected >= 1, got %d", p->adapt_sample);
    }
    if (!(p->adapt_halflife >= 1) || p->adapt_halflife > 1e12) {
        BAD("recommend.blend.adapt.halflife: expected 1..1e12 tests");
    }
    if (!(p->adapt_margin >= 0) || p->adapt_margin > 1e12) {
        BAD("recommend.blend.adapt.margin: expected 0..1e12");
    }
    if (p->als_interval_ms < 0) {
        BAD("recommend.als.interval.ms: expected >= 0 (0: no sweeps)");
    }
    if (p->als_window < 1 || p->als_window > (1 << 26)) {
        BAD("recommend.als.window: expected 1..67108864 interactions, got %d", p->als_window);
    }
    if (p->als_iterations < 1 || p->als_iterations > 20) {
        BAD("recommend.als.iterations: expected 1..20, got %d", p->als_iterations);
    }
#undef BAD
    return 0;
}

/* ==== The recommender ==== */

#define VS__REC_LOG_CHUNK 4096 /* full ALS log entries per checkpoint chunk */

struct sweep;
static void sweep_free(struct sweep *s);

struct vs_rec {
    struct vs_rec_params p;
    struct vs_mf *mf;
    struct vs_cooc *cooc;
    struct vs_pop *pop;
    struct vs_rec_stats stats;
    int stats_dirty;
    int32_t cap;          /* size of the per-item scratch below */
    float *scores;        /* blended score per item */
    float *model;         /* model score per item (the sgemv's output) */
    float *co;            /* co-occurrence score per item, zero outside touched */
    float *co_best;       /* largest single contribution to co */
    int32_t *co_rel;      /* the customer's item behind co_best */
    uint8_t *unavailable; /* per item */
    int32_t n_unavailable;
    int32_t *touched; /* items with co != 0 */
    int32_t n_touched, touched_cap;
    uint8_t *buf; /* checkpoint encode buffer */
    size_t buf_cap;
    /* The online choice of the blend (adapt()): each candidate mix's decayed NDCG@10 on the
     * customers' next items, the mix lists use now, tests run, interactions counted for the
     * engine's sample. */
    double adapt_score[VS_REC_MIXES];
    int32_t lead;
    int64_t adapt_tests, adapt_counted;
    double adapt_decay;
    /* Full ALS sweeps (recommend.als.*): the ring of the last als_window interactions (chunks
     * marked when written), the event time of the next boundary, the sweep count (customers'
     * vectors solved against an older one are re-solved first), the next customer number, and
     * the sweep in flight, applied at the next boundary. */
    struct vs_als_entry *log;
    int64_t log_total; /* interactions ever logged; the ring's next slot is log_total % window */
    uint8_t *log_dirty;
    int64_t next_als_ts;
    uint32_t epoch, next_number;
    int64_t sweeps, sweep_failures;
    int32_t sweep_solved;
    double sweep_ms;
    struct sweep *sweep;
    struct vs_rec_runner runner;
};

/*
 * The candidate mixes: multipliers of blend.model and blend.trending, blend.together fixed (only
 * the ratios matter). Mix 0 is the configured blend itself, the choice until a test says
 * otherwise. The range is wide because the logs are: on the Diginetica sample recent
 * popularity is nearly worthless (HR@10 0.002 against co-occurrence's 0.052), while on logs of
 * a few best-sellers it is the strongest signal and needs some 400 times its default weight to
 * lead the list.
 */
static const float mix_model[VS_REC_MIXES / 4] = {1.0f, 0.3f, 3.0f, 10.0f};
static const float mix_trending[4] = {1.0f, 6.0f, 40.0f, 400.0f};

struct vs_rec *vs_rec_new(const struct vs_rec_params *p, char *errbuf, size_t errlen)
{
    if (vs_rec_params_check(p, errbuf, errlen) < 0) {
        return NULL;
    }
    struct vs_rec *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    r->p = *p;
    r->mf = vs_mf_new(&p->mf, errbuf, errlen);
    r->cooc = r->mf ? vs_cooc_new(p->cooc_m, errbuf, errlen) : NULL;
    r->pop = r->cooc ? vs_pop_new(p->pop_tau_ms, errbuf, errlen) : NULL;
    r->touched_cap = p->cooc_window * p->cooc_m + 1; /* + 1: score_together writes one ahead */
    r->touched = malloc((size_t)r->touched_cap * sizeof(int32_t));
    if (!r->pop || !r->touched) {
        if (r->pop) {
            snprintf(errbuf, errlen, "out of memory");
        }
        vs_rec_free(r);
        return NULL;
    }
    r->stats_dirty = 1;
    r->adapt_decay = exp2(-1.0 / p->adapt_halflife);
    if (p->als_interval_ms > 0) {
        size_t chunks = ((size_t)p->als_window + VS__REC_LOG_CHUNK - 1) / VS__REC_LOG_CHUNK;
        r->log = calloc((size_t)p->als_window, sizeof(*r->log));
        r->log_dirty = calloc(chunks, 1);
        if (!r->log || !r->log_dirty) {
            snprintf(errbuf, errlen, "out of memory for recommend.als.window");
            vs_rec_free(r);
            return NULL;
        }
    }
    return r;
}

void vs_rec_free(struct vs_rec *r)
{
    if (!r) {
        return;
    }
    vs_rec_sweep_wait(r);
    sweep_free(r->sweep);
    free(r->log);
    free(r->log_dirty);
    vs_mf_free(r->mf);
    vs_cooc_free(r->cooc);
    vs_pop_free(r->pop);
    free(r->scores);
    free(r->model);
    free(r->co);
    free(r->co_best);
    free(r->co_rel);
    free(r->unavailable);
    free(r->touched);
    free(r->buf);
    free(r);
}

const struct vs_rec_params *vs_rec_params(const struct vs_rec *r)
{
    return &r->p;
}

struct vs_mf *vs_rec_mf(struct vs_rec *r)
{
    return r->mf;
}

struct vs_cooc *vs_rec_cooc(struct vs_rec *r)
{
    return r->cooc;
}

struct vs_pop *vs_rec_pop(struct vs_rec *r)
{
    return r->pop;
}

struct vs_rec_stats vs_rec_stats(const struct vs_rec *r)
{
    struct vs_rec_stats s = r->stats;
    s.rejected = vs_mf_rejected(r->mf);
    return s;
}

/* Grow every per-item array to hold n items; runs only when the catalogue grows. */
static int reserve_items(struct vs_rec *r, int32_t n)
{
    int rc = vs_cooc_reserve(r->cooc, n);
    if (rc == 0) {
        rc = vs_pop_reserve(r->pop, n);
    }
    if (rc < 0 || n <= r->cap) {
        return rc;
    }
    int32_t cap = r->cap ? r->cap : 1024;
    while (cap < n) {
        cap *= 2;
    }
    float *scores = realloc(r->scores, (size_t)cap * sizeof(float));
    if (!scores) {
        return VS_ENOMEM;
    }
    r->scores = scores;
    float *model = realloc(r->model, (size_t)cap * sizeof(float));
    if (!model) {
        return VS_ENOMEM;
    }
    r->model = model;
    float *co = realloc(r->co, (size_t)cap * sizeof(float));
    if (!co) {
        return VS_ENOMEM;
    }
    r->co = co;
    float *co_best = realloc(r->co_best, (size_t)cap * sizeof(float));
    if (!co_best) {
        return VS_ENOMEM;
    }
    r->co_best = co_best;
    int32_t *co_rel = realloc(r->co_rel, (size_t)cap * sizeof(int32_t));
    if (!co_rel) {
        return VS_ENOMEM;
    }
    r->co_rel = co_rel;
    uint8_t *un = realloc(r->unavailable, (size_t)cap);
    if (!un) {
        return VS_ENOMEM;
    }
    r->unavailable = un;
    memset(r->co + r->cap, 0, (size_t)(cap - r->cap) * sizeof(float));
    memset(r->unavailable + r->cap, 0, (size_t)(cap - r->cap));
    r->cap = cap;
    return 0;
}

static int find_recent(const struct vs_rec_customer *cu, int32_t item)
{
    for (int s = 0; s < cu->n_recent; s++) {
        if (cu->recent[s] == item) {
            return s;
        }
    }
    return -1;
}

static void remove_recent(struct vs_rec_customer *cu, int pos)
{
    int tail = cu->n_recent - pos - 1;
    memmove(cu->recent + pos, cu->recent + pos + 1, (size_t)tail * sizeof(int32_t));
    memmove(cu->recent_w + pos, cu->recent_w + pos + 1, (size_t)tail * sizeof(float));
    memmove(cu->recent_flags + pos, cu->recent_flags + pos + 1, (size_t)tail);
    cu->n_recent--;
    cu->recent[cu->n_recent] = 0;
    cu->recent_w[cu->n_recent] = 0;
    cu->recent_flags[cu->n_recent] = 0;
}

/* Put item first in the customer's recent list with weight w added (dropping the oldest entry
 * when the list is full). */
static void touch_recent(struct vs_rec *r, struct vs_rec_customer *cu, int32_t item, float w,
                         uint8_t flag)
{
    int pos = find_recent(cu, item);
    float acc = w;
    uint8_t flags = flag;
    if (pos >= 0) {
        acc += cu->recent_w[pos];
        flags |= cu->recent_flags[pos];
        remove_recent(cu, pos);
    } else if (cu->n_recent >= r->p.recent || cu->n_recent >= VS_REC_MAX_RECENT) {
        remove_recent(cu, cu->n_recent - 1);
    }
    int n = cu->n_recent;
    memmove(cu->recent + 1, cu->recent, (size_t)n * sizeof(int32_t));
    memmove(cu->recent_w + 1, cu->recent_w, (size_t)n * sizeof(float));
    memmove(cu->recent_flags + 1, cu->recent_flags, (size_t)n);
    cu->recent[0] = item;
    cu->recent_w[0] = acc;
    cu->recent_flags[0] = flags;
    cu->n_recent++;
}

static uint8_t type_flag(enum vs_event_type type)
{
    switch (type) {
    case VS_EVENT_ADD_TO_CART:
        return VS_REC_CARTED;
    case VS_EVENT_PURCHASE:
        return VS_REC_BOUGHT;
    default:
        return VS_REC_VIEWED;
    }
}

/* ==== Full ALS sweeps ==== */

struct sweep {
    struct vs_als_params p;
    int32_t n;     /* rows in the snapshot */
    float *y0, *y; /* the rows at the snapshot, and the sweep's result */
    struct vs_als_entry *log;
    size_t n_log;
    int rc;
    int32_t solved;
    double ms;
    void *handle; /* the runner's, until waited for */
    int persisted;
};

static void sweep_free(struct sweep *s)
{
    if (s) {
        free(s->y0);
        free(s->y);
        free(s->log);
        free(s);
    }
}

static void sweep_work(void *arg)
{
    struct sweep *s = arg;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    memcpy(s->y, s->y0, (size_t)s->n * (size_t)s->p.k * sizeof(float));
    s->rc = vs_als_sweep(&s->p, s->y, s->n, s->log, s->n_log, &s->solved);
    clock_gettime(CLOCK_MONOTONIC, &b);
    s->ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

void vs_rec_set_runner(struct vs_rec *r, const struct vs_rec_runner *runner)
{
    if (runner) {
        r->runner = *runner;
    } else {
        memset(&r->runner, 0, sizeof(r->runner));
    }
}

void vs_rec_sweep_wait(struct vs_rec *r)
{
    if (r->sweep && r->sweep->handle) {
        r->runner.wait(r->runner.ctx, r->sweep->handle);
        r->sweep->handle = NULL;
    }
}

static void sweep_submit(struct vs_rec *r, struct sweep *s)
{
    r->sweep = s;
    s->handle = r->runner.submit ? r->runner.submit(r->runner.ctx, sweep_work, s) : NULL;
    if (!s->handle) {
        sweep_work(s);
    }
}

/* Apply the sweep in flight: each solved row moves by its change since the snapshot. */
static void sweep_finish(struct vs_rec *r)
{
    struct sweep *s = r->sweep;
    if (!s) {
        return;
    }
    vs_rec_sweep_wait(r);
    r->sweep = NULL;
    int rc = s->rc;
    if (rc == 0) {
        size_t size = (size_t)s->n * (size_t)s->p.k;
        for (size_t i = 0; i < size; i++) {
            s->y[i] -= s->y0[i];
        }
        rc = vs_mf_add_rows(r->mf, s->y, s->n);
    }
    if (rc == 0) {
        r->epoch++;
        r->sweeps++;
    } else {
        r->sweep_failures++;
    }
    r->sweep_solved = s->solved;
    r->sweep_ms = s->ms;
    r->stats_dirty = 1;
    sweep_free(s);
}

static struct sweep *sweep_alloc(const struct vs_rec *r, int32_t n, size_t n_log)
{
    struct sweep *s = calloc(1, sizeof(*s));
    size_t size = (size_t)n * (size_t)vs_mf_k(r->mf);
    if (!s) {
        return NULL;
    }
    s->p.k = vs_mf_k(r->mf);
    s->p.lambda = r->p.mf.lambda;
    s->p.alpha = r->p.mf.alpha;
    s->p.iterations = r->p.als_iterations;
    s->n = n;
    s->n_log = n_log;
    s->y0 = malloc((size ? size : 1) * sizeof(float));
    s->y = malloc((size ? size : 1) * sizeof(float));
    s->log = malloc((n_log ? n_log : 1) * sizeof(struct vs_als_entry));
    if (!s->y0 || !s->y || !s->log) {
        sweep_free(s);
        return NULL;
    }
    return s;
}

/* A snapshot of the item rows and the log, oldest interaction first, swept in the background. */
static void sweep_start(struct vs_rec *r)
{
    int32_t n = vs_mf_items(r->mf);
    int64_t window = r->p.als_window;
    size_t n_log = (size_t)(r->log_total < window ? r->log_total : window);
    if (n == 0 || n_log == 0) {
        return;
    }
    struct sweep *s = sweep_alloc(r, n, n_log);
    if (!s) {
        r->sweep_failures++;
        return;
    }
    memcpy(s->y0, vs_mf_row(r->mf, 0), (size_t)n * (size_t)s->p.k * sizeof(float));
    size_t head = (size_t)(r->log_total % window);
    if ((int64_t)n_log < window) {
        memcpy(s->log, r->log, n_log * sizeof(*s->log));
    } else {
        memcpy(s->log, r->log + head, (n_log - head) * sizeof(*s->log));
        memcpy(s->log + (n_log - head), r->log, head * sizeof(*s->log));
    }
    sweep_submit(r, s);
}

static void sweep_boundary(struct vs_rec *r, int64_t ts)
{
    int64_t iv = r->p.als_interval_ms;
    int64_t next = (ts >= 0 ? ts / iv : (ts - iv + 1) / iv) * iv + iv;
    if (r->next_als_ts == 0) {
        r->next_als_ts = next;
        r->stats_dirty = 1;
        return;
    }
    if (ts < r->next_als_ts) {
        return;
    }
    sweep_finish(r);
    sweep_start(r);
    r->next_als_ts = next;
    r->stats_dirty = 1;
}

static void log_append(struct vs_rec *r, struct vs_rec_customer *cu, int32_t item, float w)
{
    if (cu->number == 0) {
        cu->number = ++r->next_number;
    }
    size_t slot = (size_t)(r->log_total % r->p.als_window);
    r->log[slot] = (struct vs_als_entry){cu->number, item, w};
    r->log_dirty[slot / VS__REC_LOG_CHUNK] = 1;
    r->log_total++;
}

void vs_rec_refresh(struct vs_rec *r, struct vs_rec_customer *cu)
{
    if (cu->epoch == (uint16_t)r->epoch) {
        return;
    }
    int n = cu->n_recent < r->p.recent ? cu->n_recent : r->p.recent;
    float x[VS_MF_MAX_K];
    if (n > 0 && vs_mf_fold_in(r->mf, cu->recent, cu->recent_w, n, x) == 0) {
        memcpy(cu->x, x, (size_t)vs_mf_k(r->mf) * sizeof(float));
    }
    cu->epoch = (uint16_t)r->epoch;
}

struct vs_rec_sweeps vs_rec_sweeps(const struct vs_rec *r)
{
    struct vs_rec_sweeps s = {r->sweeps, r->sweep_failures, r->sweep_solved, r->sweep_ms,
                              r->sweep != NULL};
    return s;
}

/*
 * The order of the steps matters. Co-occurrence is counted against the customer's recent items
 * as they were before this interaction (the item goes with what came before it). The customer
 * vector is then re-solved including the new interaction, and the item's row moves toward that
 * fresh vector, so that one interaction already changes what the model says about both.
 */
int32_t vs_rec_learn(struct vs_rec *r, struct vs_rec_customer *cu, enum vs_event_type type,
                     const char *item_id, int64_t ts)
{
    if (!item_id || !*item_id || (unsigned)type >= VS_EVENT_TYPE_COUNT) {
        r->stats.no_item++;
        r->stats_dirty = 1;
        return VS_EINVAL;
    }
    int takes_away = type == VS_EVENT_REMOVE_FROM_CART || type == VS_EVENT_REFUND;
    float w = r->p.weight[type];
    int32_t item;
    if (takes_away) {
        item = vs_mf_find(r->mf, item_id);
        if (item < 0) {
            r->stats.unknown_item++;
            r->stats_dirty = 1;
            return VS_ENOTFOUND;
        }
    } else {
        item = vs_mf_intern(r->mf, item_id, NULL);
        if (item < 0) {
            r->stats.bad_item++;
            r->stats_dirty = 1;
            return item;
        }
        int rc = reserve_items(r, vs_mf_items(r->mf));
        if (rc < 0) {
            return rc;
        }
    }
    if (r->log) {
        sweep_boundary(r, ts);
        log_append(r, cu, item, takes_away ? -w : w);
    }
    vs_rec_refresh(r, cu);

    vs_mf_prefetch(r->mf, cu->recent, cu->n_recent < r->p.recent ? cu->n_recent : r->p.recent);
    if (!takes_away && !(cu->n_recent > 0 && cu->recent[0] == item)) {
        float rp = 1.0f;
        int window = cu->n_recent < r->p.cooc_window ? cu->n_recent : r->p.cooc_window;
        for (int s = 0; s < window; s++) {
            vs_cooc_prefetch(r->cooc, cu->recent[s]);
        }
        for (int s = 0; s < window; s++, rp *= r->p.cooc_decay) {
            int32_t j = cu->recent[s];
            if (j != item && j >= 0 && j < vs_mf_items(r->mf)) {
                vs_cooc_add(r->cooc, j, item, rp);
                vs_cooc_add(r->cooc, item, j, rp);
            }
        }
    }
    vs_pop_add(r->pop, item, takes_away ? -(double)w : (double)w, ts);

    if (takes_away) {
        int pos = find_recent(cu, item);
        if (pos >= 0) {
            cu->recent_w[pos] -= w;
            if (!(cu->recent_w[pos] > 0)) {
                remove_recent(cu, pos);
            }
        }
    } else {
        touch_recent(r, cu, item, w, type_flag(type));
        if (type == VS_EVENT_PURCHASE) {
            int seen = 0;
            for (int s = 0; s < cu->n_bought; s++) {
                seen |= cu->bought[s] == item;
            }
            if (!seen) {
                cu->bought[cu->bought_next] = item;
                cu->bought_next = (uint16_t)((cu->bought_next + 1) % VS_REC_MAX_BOUGHT);
                if (cu->n_bought < VS_REC_MAX_BOUGHT) {
                    cu->n_bought++;
                }
            }
        }
    }

    int k = vs_mf_k(r->mf);
    float x[VS_MF_MAX_K];
    memcpy(x, cu->x, sizeof(x));
    int n = cu->n_recent < r->p.recent ? cu->n_recent : r->p.recent;
    int rc = r->p.eals_sweeps > 0
                 ? vs_mf_eals(r->mf, cu->recent, cu->recent_w, n, x, r->p.eals_sweeps)
                 : vs_mf_fold_in(r->mf, cu->recent, cu->recent_w, n, x);
    if (rc == 0) {
        memcpy(cu->x, x, (size_t)k * sizeof(float));
        if (w > 0) {
            vs_mf_update_item(r->mf, item, cu->x, w, takes_away ? 0.0f : 1.0f);
        }
    }
    cu->interactions++;
    r->stats.learned++;
    r->stats_dirty = 1;
    return item;
}

int vs_rec_set_available(struct vs_rec *r, int32_t item, int available)
{
    if (item < 0 || item >= vs_mf_items(r->mf)) {
        return VS_EINVAL;
    }
    uint8_t v = available ? 0 : 1;
    if (r->unavailable[item] != v) {
        r->n_unavailable += v ? 1 : -1;
        r->unavailable[item] = v;
    }
    return 0;
}

/* ==== Top-N ==== */

/* a ranks before b: higher score, or equal score and lower index. */
static inline int better(float sa, int32_t a, float sb, int32_t b)
{
    return sa > sb || (sa == sb && a < b);
}

struct heap_ent {
    float s;
    int32_t i;
};

/* ==== Select ==== */

/* Fewest scores per block of the select's first pass. */
#define VS__SELECT_BLOCK 8
/* More blocks than this and they grow: their maxima live on the stack. */
#define VS__SELECT_MAX_BLOCKS 4096

/* The largest of s[0..n), -infinity for none (NaN never wins). The data is always maxps's first
 * operand: maxps returns its second when either is NaN, so a NaN never enters the maximum. */
static float block_max(const float *s, int n)
{
    float mx = -INFINITY;
    int i = 0;
#if defined(__SSE__)
    if (n >= 8) {
        __m128 m0 = _mm_set1_ps(-INFINITY), m1 = m0;
        for (; i + 8 <= n; i += 8) {
            m0 = _mm_max_ps(_mm_loadu_ps(s + i), m0);
            m1 = _mm_max_ps(_mm_loadu_ps(s + i + 4), m1);
        }
        m0 = _mm_max_ps(m0, m1);
        m0 = _mm_max_ps(m0, _mm_movehl_ps(m0, m0));
        m0 = _mm_max_ss(m0, _mm_shuffle_ps(m0, m0, 1));
        mx = _mm_cvtss_f32(m0);
    }
#endif
    for (; i < n; i++) {
        mx = s[i] > mx ? s[i] : mx;
    }
    return mx;
}

/*
 * The n-th largest of v[0..count) (1 <= n <= count), reordering v: Hoare's selection, linear on
 * average. No NaN may be in v.
 */
static float nth_largest(float *v, int32_t count, int n)
{
    int32_t lo = 0, hi = count - 1, want = n - 1; /* descending order: position n - 1 */
    while (lo < hi) {
        float pivot = v[lo + (hi - lo) / 2];
        int32_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] > pivot) {
                i++;
            }
            while (v[j] < pivot) {
                j--;
            }
            if (i <= j) {
                float t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        }
        if (want <= j) {
            hi = j;
        } else if (want >= i) {
            lo = i;
        } else {
            break; /* between j and i every value equals the pivot */
        }
    }
    return v[want];
}

/* Sort c[0..n) best first (higher score, then lower index): insertion sort, n is small. */
static void sort_candidates(struct heap_ent *c, int n)
{
    for (int a = 1; a < n; a++) {
        struct heap_ent t = c[a];
        int b = a;
        for (; b > 0 && better(t.s, t.i, c[b - 1].s, c[b - 1].i); b--) {
            c[b] = c[b - 1];
        }
        c[b] = t;
    }
}

#define VS__SELECT_CANDIDATES (4 * VS_REC_MAX_N) /* buffer of the second pass */

/*
 * Two passes. The first takes the maximum of each block of scores; the n-th largest of those
 * maxima, T, is a floor under the answer: n different blocks hold a score >= T, so the best n
 * scores are all >= T. The second pass looks only into blocks whose maximum reaches T and
 * collects their scores >= T, which over a catalogue of random scores are little more than the
 * n winners; when the buffer fills it is sorted, cut to its best n and the floor raised to the
 * n-th of them (a later score equal to it ranks after it, by index, and is no candidate). One
 * insertion sort of the few candidates gives the order. The result is exactly the best n by
 * (score, index): the scores left out could never have been among them. On the operator's lists
 * (2000 items, a few large co-occurrence scores over a long tail) this takes half the time of
 * one heap pass over every score, and a fifth of it over 100k random scores.
 */
int vs_rec_select(const float *scores, int32_t count, int n, int32_t *idx)
{
    struct heap_ent cand[VS__SELECT_CANDIDATES];
    float bmax[VS__SELECT_MAX_BLOCKS], sel[VS__SELECT_MAX_BLOCKS];
    if (n > VS_REC_MAX_N) {
        n = VS_REC_MAX_N;
    }
    if (n <= 0 || count <= 0) {
        return 0;
    }
    /* The first pass costs some sixteen scores' worth per block (a maximum, a selection), the
     * second about n blocks' scores: count / bs * 16 + n bs is least at bs = sqrt(16 count / n). */
    int32_t bs = VS__SELECT_BLOCK;
    while ((int64_t)(2 * bs) * (2 * bs) <= 16 * (int64_t)(count / n) ||
           count / bs >= VS__SELECT_MAX_BLOCKS) {
        bs *= 2;
    }
    int32_t blocks = (count - 1) / bs + 1;
    /* Candidates are the scores >= floor: one comparison, false for -infinity and NaN. */
    float floor = -FLT_MAX;
    if (blocks > n) {
        for (int32_t b = 0; b < blocks; b++) {
            int32_t i0 = b * bs;
            bmax[b] = block_max(scores + i0, count - i0 < bs ? (int)(count - i0) : (int)bs);
            sel[b] = bmax[b];
        }
        float t = nth_largest(sel, blocks, n);
        floor = t > floor ? t : floor;
    }
    int m = 0;
    for (int32_t b = 0; b < blocks; b++) {
        if (blocks > n && !(bmax[b] >= floor)) {
            continue;
        }
        int32_t end = count - b * bs < bs ? count : b * bs + bs;
        for (int32_t i = b * bs; i < end; i++) {
            float v = scores[i];
            if (!(v >= floor)) {
                continue;
            }
            if (m == VS__SELECT_CANDIDATES) {
                /* Keep the best n; from now on a candidate must beat the n-th of them, and
                 * one merely equal to it ranks after it (higher index): the next float up. */
                sort_candidates(cand, m);
                m = n;
                floor = nextafterf(cand[n - 1].s, INFINITY);
                if (!(v >= floor)) {
                    continue;
                }
            }
            cand[m].s = v;
            cand[m++].i = i;
        }
    }
    sort_candidates(cand, m);
    if (m > n) {
        m = n;
    }
    for (int e = 0; e < m; e++) {
        idx[e] = cand[e].i;
    }
    return m;
}

/* sc[i] = model[i] + wp * ps[i] for the whole catalogue. */
static void blend(float *sc, const float *model, const float *ps, float wp, int32_t count)
{
    int32_t i = 0;
    for (; i + 8 <= count; i += 8) {
        vs__st4f(sc + i, vs__ld4f(model + i) + wp * vs__ld4f(ps + i));
        vs__st4f(sc + i + 4, vs__ld4f(model + i + 4) + wp * vs__ld4f(ps + i + 4));
    }
    for (; i < count; i++) {
        sc[i] = model[i] + wp * ps[i];
    }
}

/* v[t] = rp * w[t] / sqrt(max(v[t] * tj, 1)) for t < m: v holds the neighbours' totals on entry
 * and their contributions on return (v has room for m rounded up to four). */
static void contributions(float *v, const float *w, int m, float tj, float rp)
{
    int t = 0;
#if defined(__SSE__)
    __m128 one = _mm_set1_ps(1.0f), vtj = _mm_set1_ps(tj), vrp = _mm_set1_ps(rp);
    for (; t + 4 <= m; t += 4) {
        /* maxps(a, b) is a > b ? a : b, the scalar expression's NaN behaviour too */
        __m128 d = _mm_sqrt_ps(_mm_max_ps(_mm_mul_ps(_mm_loadu_ps(v + t), vtj), one));
        _mm_storeu_ps(v + t, _mm_div_ps(_mm_mul_ps(vrp, _mm_loadu_ps(w + t)), d));
    }
#endif
    for (; t < m; t++) {
        float tot = v[t] * tj;
        v[t] = rp * w[t] / sqrtf(tot > 1.0f ? tot : 1.0f);
    }
}

/*
 * Co-occurrence score of every neighbour of the customer's recent items: the p-th most recent
 * item j contributes decay^p * w(j, i) / sqrt(total(i) total(j)), a cosine-like normalisation
 * by how much each item co-occurs at all, so that items that go with everything do not win. Touched
 * items are listed so that the next call can clear them without a pass over the catalogue. Returns
 * the largest score.
 *
 * The contributions of one neighbour row are computed four at a time (square root and division
 * are the cost; SSE's are correctly rounded like the scalar ones, so the values are the same)
 * before they are added up one by one.
 */
static float score_together(struct vs_rec *r, const struct vs_rec_customer *cu)
{
    int m = vs_cooc_m(r->cooc);
    int window = cu->n_recent < r->p.cooc_window ? cu->n_recent : r->p.cooc_window;
    float rp = 1.0f, best = 0;
    int32_t n_items = vs_mf_items(r->mf);
    const float *tot = vs_cooc_totals(r->cooc);
    float v[VS_COOC_MAX_M + 4];
    float *co = r->co, *co_best = r->co_best;
    int32_t *co_rel = r->co_rel, *touched = r->touched, nt = 0;
    for (int s = 0; s < window; s++, rp *= r->p.cooc_decay) {
        int32_t j = cu->recent[s];
        if (j < 0 || j >= n_items) {
            continue;
        }
        const int32_t *nb = vs_cooc_neighbours(r->cooc, j);
        const float *wt = vs_cooc_weights(r->cooc, j);
        int used = 0; /* slots fill from the front and are never emptied */
        while (used < m && nb[used] >= 0) {
            v[used] = tot[nb[used]];
            used++;
        }
        contributions(v, wt, used, tot[j], rp);
        /* Written to compile to conditional moves: whether an item is new to this list, or
         * whether j is its best contributor so far, follows no pattern a branch could learn. */
        for (int t = 0; t < used; t++) {
            int32_t i = nb[t];
            float vt = v[t] > 0 ? v[t] : 0; /* an underflow adds nothing */
            float c0 = co[i];
            int fresh = c0 == 0 && vt > 0;
            touched[nt] = i;
            nt += fresh;
            float cb = fresh ? 0 : co_best[i];
            int32_t cr = fresh ? j : co_rel[i];
            int gt = vt > cb;
            co_best[i] = gt ? vt : cb;
            co_rel[i] = gt ? j : cr;
            co[i] = c0 + vt;
        }
    }
    r->n_touched = nt;
    for (int32_t t = 0; t < nt; t++) {
        best = co[touched[t]] > best ? co[touched[t]] : best;
    }
    return best;
}

/* How many items of [i, end) not excluded (sc != -infinity) score above th under
 * a * model + b * ps, or also when equal with ge. */
static int32_t count_range(const float *model, const float *ps, const float *sc, float a, float b,
                           float th, int32_t i, int32_t end, int ge)
{
    typedef int32_t v4si __attribute__((vector_size(16)));
    const vs__v4sf va = {a, a, a, a}, vb = {b, b, b, b}, vt = {th, th, th, th};
    const vs__v4sf ninf = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    v4si acc = {0, 0, 0, 0}; /* comparisons are -1 where true */
    if (ge) {
        for (; i + 4 <= end; i += 4) {
            vs__v4sf v = va * vs__ld4f(model + i) + vb * vs__ld4f(ps + i);
            acc += (v >= vt) & (vs__ld4f(sc + i) != ninf);
        }
    } else {
        for (; i + 4 <= end; i += 4) {
            vs__v4sf v = va * vs__ld4f(model + i) + vb * vs__ld4f(ps + i);
            acc += (v > vt) & (vs__ld4f(sc + i) != ninf);
        }
    }
    int32_t n = -(acc[0] + acc[1] + acc[2] + acc[3]);
    for (; i < end; i++) {
        float v = a * model[i] + b * ps[i];
        n += (ge ? v >= th : v > th) && sc[i] != -INFINITY;
    }
    return n;
}

/* The largest element of x[i, end). */
static float range_max(const float *x, int32_t i, int32_t end)
{
    typedef int32_t v4si __attribute__((vector_size(16)));
    vs__v4sf m = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    for (; i + 4 <= end; i += 4) {
        vs__v4sf v = vs__ld4f(x + i);
        v4si gt = v > m;
        m = (vs__v4sf)(((v4si)v & gt) | ((v4si)m & ~gt));
    }
    float best = m[0] > m[1] ? m[0] : m[1];
    best = best > m[2] ? best : m[2];
    best = best > m[3] ? best : m[3];
    for (; i < end; i++) {
        best = x[i] > best ? x[i] : best;
    }
    return best;
}

/*
 * The blend's test count (recommender.h). The catalogue is taken in slices of 256 items, with the
 * largest model and popularity scores of each: no item of a slice can score more than a[c] * that
 * model maximum + b[c] * that popularity maximum (rounding is monotonic, and the weights are not
 * negative), so a slice whose bound is below th[c] is skipped for that mix without changing its
 * count. A target that ranks high, the one that needs a full count, is above most slices.
 */
void vs_rec_count_better(const float *model, const float *ps, const float *sc, const float *a,
                         const float *b, const float *th, int nmix, int32_t target, int32_t count,
                         int32_t enough, int32_t *better)
{
    enum { SLICE = 256, SLICES = 8 };
    int active = 0;
    for (int c = 0; c < nmix; c++) {
        better[c] = 0;
        active += enough > 0;
    }
    for (int32_t i0 = 0; i0 < count && active > 0; i0 += SLICE * SLICES) {
        float bm[SLICES], bp[SLICES];
        int32_t s0[SLICES + 1];
        int ns = 0;
        for (int32_t i = i0; i < count && ns < SLICES; i += SLICE, ns++) {
            int32_t end = count - i < SLICE ? count : i + SLICE;
            s0[ns] = i;
            bm[ns] = range_max(model, i, end);
            bp[ns] = range_max(ps, i, end);
            s0[ns + 1] = end;
        }
        for (int c = 0; c < nmix; c++) {
            for (int t = 0; t < ns && better[c] < enough; t++) {
                if (a[c] * bm[t] + b[c] * bp[t] < th[c]) {
                    continue;
                }
                int32_t lo = s0[t], hi = s0[t + 1];
                int32_t mid = target < lo ? lo : target > hi ? hi : target;
                better[c] += count_range(model, ps, sc, a[c], b[c], th[c], lo, mid, 1);
                better[c] += count_range(model, ps, sc, a[c], b[c], th[c],
                                         mid == target ? mid + 1 : mid, hi, 0);
                active -= better[c] >= enough;
            }
        }
    }
}

/*
 * The online choice of the blend, test-then-train like the evaluation protocol: the scores of
 * a customer's next item and of the rest of the catalogue, worked out before learning from it,
 * give that item's rank under every candidate mix without another sgemv (the model scores
 * scale, the co-occurrence scores are the same); each mix earns NDCG@10 (1 / log2(rank + 1)
 * for a rank <= 10), its past decaying by half every adapt_halflife tests, and lists use the
 * mix with the highest sum once it leads the mix in use by adapt_margin: on a small log a few
 * lucky hits do not move the blend off the configured one, mix 0. Deterministic: the tests are
 * a function of the event order.
 */
static void adapt(struct vs_rec *r, int32_t target, float wc, int32_t count)
{
    const float *model = r->model, *ps = vs_pop_scaled(r->pop), *sc = r->scores, *co = r->co;
    if (sc[target] == -INFINITY) {
        return; /* an excluded item ranks nowhere under any mix: no test */
    }
    float pmax = vs_pop_max(r->pop);
    float lead_m = mix_model[r->lead / 4];
    float ma[VS_REC_MIXES], mb[VS_REC_MIXES], mth[VS_REC_MIXES];
    int32_t counted[VS_REC_MIXES];
    for (int c = 0; c < VS_REC_MIXES; c++) {
        ma[c] = mix_model[c / 4] / lead_m;
        mb[c] = pmax > 0 ? r->p.blend_trending * mix_trending[c % 4] / pmax : 0;
        mth[c] = ma[c] * model[target] + mb[c] * ps[target] + wc * co[target];
    }
    vs_rec_count_better(model, ps, sc, ma, mb, mth, VS_REC_MIXES, target, count, 10, counted);
    int32_t best = 0;
    for (int c = 0; c < VS_REC_MIXES; c++) {
        float a = ma[c], b = mb[c], th = mth[c];
        int32_t better = counted[c];
        /* Co-occurrence only lifts scores: the touched items' correction can only add. */
        for (int32_t t = 0; better < 10 && t < r->n_touched; t++) {
            int32_t i = r->touched[t];
            if (i == target || sc[i] == -INFINITY) {
                continue;
            }
            float v = a * model[i] + b * ps[i], w = v + wc * co[i];
            better += i < target ? (w >= th) - (v >= th) : (w > th) - (v > th);
        }
        r->adapt_score[c] = r->adapt_score[c] * r->adapt_decay +
                            (better < 10 ? 1.0 / log2((double)better + 2.0) : 0.0);
        if (r->adapt_score[c] > r->adapt_score[best]) {
            best = c;
        }
    }
    if (r->adapt_score[best] > r->adapt_score[r->lead] + r->p.adapt_margin) {
        r->lead = best;
    }
    r->adapt_tests++;
    r->stats_dirty = 1;
}

/*
 * Scoring in few passes over the catalogue: cblas_sgemv writes the model scores, one pass blends
 * them with popularity, the sparse co-occurrence scores are added and excluded items set to
 * -infinity, then vs_rec_select keeps the best n. Reasons are worked out for the n winners only,
 * from the same model scores. With a target, the same scores then test the candidate mixes.
 */
static int top_test(struct vs_rec *r, const struct vs_rec_customer *cu, int n, const int32_t *extra,
                    int n_extra, struct vs_rec_entry *out, int32_t target)
{
    int32_t count = vs_mf_items(r->mf);
    if (n > VS_REC_MAX_N) {
        n = VS_REC_MAX_N;
    }
    if (count == 0 || (n <= 0 && target < 0)) {
        return 0;
    }
    float ramp = r->p.model_ramp > 0 ? (float)cu->interactions / r->p.model_ramp : 1.0f;
    float wm = r->p.blend_model * mix_model[r->lead / 4] * (ramp < 1.0f ? ramp : 1.0f);
    float pmax = vs_pop_max(r->pop);
    float wp = pmax > 0 ? r->p.blend_trending * mix_trending[r->lead % 4] / pmax : 0;
    float *sc = r->scores, *model = r->model;
    const float *ps = vs_pop_scaled(r->pop);
    if (wm > 0) {
        vs_mf_scores(r->mf, cu->x, wm, model);
    } else {
        memset(model, 0, (size_t)count * sizeof(float));
    }
    blend(sc, model, ps, wp, count);
    float comax = score_together(r, cu);
    float wc = comax > 0 ? r->p.blend_together / comax : 0;
    for (int32_t t = 0; t < r->n_touched; t++) {
        sc[r->touched[t]] += wc * r->co[r->touched[t]];
    }
    for (int s = 0; s < cu->n_recent; s++) {
        if ((cu->recent_flags[s] & VS_REC_BOUGHT) || r->p.exclude_viewed) {
            if (cu->recent[s] >= 0 && cu->recent[s] < count) {
                sc[cu->recent[s]] = -INFINITY;
            }
        }
    }
    for (int s = 0; s < cu->n_bought; s++) {
        if (cu->bought[s] >= 0 && cu->bought[s] < count) {
            sc[cu->bought[s]] = -INFINITY;
        }
    }
    for (int s = 0; s < n_extra; s++) {
        if (extra[s] >= 0 && extra[s] < count) {
            sc[extra[s]] = -INFINITY;
        }
    }
    if (r->n_unavailable > 0) {
        for (int32_t i = 0; i < count; i++) {
            if (r->unavailable[i]) {
                sc[i] = -INFINITY;
            }
        }
    }
    int32_t idx[VS_REC_MAX_N];
    int m = n > 0 ? vs_rec_select(sc, count, n, idx) : 0;
    for (int e = 0; e < m; e++) {
        int32_t i = idx[e];
        float mf = model[i];
        float co = wc * r->co[i];
        float pop = wp * ps[i];
        out[e].item = i;
        out[e].score = sc[i];
        out[e].related = -1;
        if (co > 0 && co >= mf && co >= pop) {
            out[e].reason = VS_REC_TOGETHER;
            out[e].related = r->co_rel[i];
        } else if (mf > pop) {
            out[e].reason = VS_REC_MODEL;
        } else {
            out[e].reason = VS_REC_TRENDING;
        }
    }
    if (target >= 0 && target < count && r->p.adapt) {
        adapt(r, target, wc, count);
    }
    for (int32_t t = 0; t < r->n_touched; t++) {
        r->co[r->touched[t]] = 0;
    }
    r->n_touched = 0;
    return m;
}

int vs_rec_top(struct vs_rec *r, const struct vs_rec_customer *cu, int n, const int32_t *extra,
               int n_extra, struct vs_rec_entry *out)
{
    return n > 0 ? top_test(r, cu, n, extra, n_extra, out, -1) : 0;
}

int vs_rec_top_test(struct vs_rec *r, const struct vs_rec_customer *cu, int n, const int32_t *extra,
                    int n_extra, struct vs_rec_entry *out, int32_t target)
{
    return top_test(r, cu, n, extra, n_extra, out, target);
}

int32_t vs_rec_adapt_target(struct vs_rec *r, const struct vs_rec_customer *cu,
                            enum vs_event_type type, const char *item_id)
{
    if (!r->p.adapt || cu->interactions == 0 || !item_id || !*item_id ||
        !(type == VS_EVENT_VIEW || type == VS_EVENT_ADD_TO_CART || type == VS_EVENT_PURCHASE)) {
        return -1;
    }
    /* The sample first: the other interactions cost no lookup of the item. */
    r->adapt_counted++;
    r->stats_dirty = 1;
    if (r->adapt_counted % r->p.adapt_sample != 0) {
        return -1;
    }
    int32_t item = vs_mf_find(r->mf, item_id);
    if (item < 0) {
        return -1; /* an item no list could have held yet */
    }
    /* A test of what the customer's list could have held, as the live hit rate counts it. */
    int s = find_recent(cu, item);
    if (s >= 0 && ((cu->recent_flags[s] & VS_REC_BOUGHT) || r->p.exclude_viewed)) {
        return -1;
    }
    for (s = 0; s < cu->n_bought; s++) {
        if (cu->bought[s] == item) {
            return -1;
        }
    }
    return item;
}

struct vs_rec_blend vs_rec_blend(const struct vs_rec *r)
{
    struct vs_rec_blend b;
    memset(&b, 0, sizeof(b));
    b.model = r->p.blend_model * mix_model[r->lead / 4];
    b.together = r->p.blend_together;
    b.trending = r->p.blend_trending * mix_trending[r->lead % 4];
    b.tests = r->adapt_tests;
    return b;
}

enum vs_rec_due vs_rec_list_due(const struct vs_rec *r, struct vs_rec_customer *cu,
                                enum vs_event_type type, int64_t ts)
{
    int trigger = type == VS_EVENT_PURCHASE || type == VS_EVENT_ADD_TO_CART;
    if (type == VS_EVENT_VIEW) {
        if (cu->views_since_sent < UINT16_MAX) {
            cu->views_since_sent++;
        }
        trigger = cu->views_since_sent >= r->p.every_views;
    }
    if (!trigger) {
        return VS_REC_NOT_DUE;
    }
    int sent_before = cu->n_last > 0 || cu->last_sent_ts != 0;
    if (sent_before && ts - cu->last_sent_ts < r->p.min_interval_ms) {
        return VS_REC_THROTTLED;
    }
    return VS_REC_DUE;
}

void vs_rec_remember_list(struct vs_rec_customer *cu, const struct vs_rec_entry *out, int n,
                          int64_t ts)
{
    if (n > VS_REC_MAX_N) {
        n = VS_REC_MAX_N;
    }
    memset(cu->last_list, 0, sizeof(cu->last_list));
    for (int e = 0; e < n; e++) {
        cu->last_list[e] = out[e].item;
    }
    cu->n_last = (uint16_t)n;
    cu->last_sent_ts = ts;
    cu->views_since_sent = 0;
}

int vs_rec_in_last_list(const struct vs_rec_customer *cu, int32_t item)
{
    if (cu->last_sent_ts == 0 && cu->n_last == 0) {
        return -1;
    }
    for (int e = 0; e < cu->n_last && e < VS_REC_MAX_N; e++) {
        if (cu->last_list[e] == item) {
            return 1;
        }
    }
    return 0;
}

/* ==== Checkpoint ==== */

#define VS__REC_MAGIC 0x52525356u /* "VSRR" */
#define VS__REC_VERSION 3u
#define VS__REC_SWEEP_MAGIC 0x53525356u /* "VSRS" */

/* Version 1 ended after stats; version 2 adds the online choice of the blend, version 3 the
 * full ALS sweeps' log, boundary and sweep in flight. */
struct rec_meta {
    uint32_t magic, version;
    int32_t items, pad;
    struct vs_rec_stats stats;
    int32_t lead, pad2;
    int64_t adapt_tests, adapt_counted;
    double adapt_score[VS_REC_MIXES];
    int64_t next_als_ts, log_total, sweeps, sweep_failures;
    uint32_t epoch, next_number;
    int32_t window, sweep_stored; /* sweep_stored: "als/sweep" holds the sweep in flight */
};
#define VS__REC_META_V1 offsetof(struct rec_meta, lead)
#define VS__REC_META_V2 offsetof(struct rec_meta, next_als_ts)

/* The sweep in flight: its snapshot, so that a restart from this commit runs the same sweep. */
struct sweep_head {
    uint32_t magic, k;
    int32_t n, pad;
    int64_t n_log;
};

static int put_sweep(struct vs_rec *r, vs_rec_put_fn put, void *arg)
{
    struct sweep *s = r->sweep;
    struct sweep_head h = {VS__REC_SWEEP_MAGIC, (uint32_t)s->p.k, s->n, 0, (int64_t)s->n_log};
    size_t ylen = (size_t)s->n * (size_t)s->p.k * sizeof(float);
    size_t llen = s->n_log * sizeof(struct vs_als_entry);
    size_t need = sizeof(h) + ylen + llen;
    uint8_t *b = malloc(need);
    if (!b) {
        return VS_ENOMEM;
    }
    memcpy(b, &h, sizeof(h));
    memcpy(b + sizeof(h), s->y0, ylen);
    memcpy(b + sizeof(h) + ylen, s->log, llen);
    int rc = put(arg, "als/sweep", b, need);
    free(b);
    if (rc == 0) {
        s->persisted = 1;
    }
    return rc;
}

static int load_sweep(struct vs_rec *r, const void *buf, size_t len)
{
    struct sweep_head h;
    if (len < sizeof(h)) {
        return VS_ECORRUPT;
    }
    memcpy(&h, buf, sizeof(h));
    if (h.magic != VS__REC_SWEEP_MAGIC || h.k != (uint32_t)vs_mf_k(r->mf) || h.n < 1 ||
        h.n > vs_mf_items(r->mf) || h.n_log < 1 || h.n_log > r->p.als_window) {
        return VS_ECORRUPT;
    }
    size_t ylen = (size_t)h.n * h.k * sizeof(float);
    size_t llen = (size_t)h.n_log * sizeof(struct vs_als_entry);
    if (len != sizeof(h) + ylen + llen) {
        return VS_ECORRUPT;
    }
    struct sweep *s = sweep_alloc(r, h.n, (size_t)h.n_log);
    if (!s) {
        return VS_ENOMEM;
    }
    memcpy(s->y0, (const uint8_t *)buf + sizeof(h), ylen);
    memcpy(s->log, (const uint8_t *)buf + sizeof(h) + ylen, llen);
    for (size_t i = 0; i < (size_t)h.n * h.k; i++) {
        if (!isfinite(s->y0[i])) {
            sweep_free(s);
            return VS_ECORRUPT;
        }
    }
    s->persisted = 1;
    sweep_submit(r, s);
    return 0;
}

static size_t log_chunk_len(const struct vs_rec *r, int64_t chunk)
{
    int64_t used = r->log_total < r->p.als_window ? r->log_total : r->p.als_window;
    int64_t left = used - chunk * VS__REC_LOG_CHUNK;
    return (size_t)(left < VS__REC_LOG_CHUNK ? left : VS__REC_LOG_CHUNK) *
           sizeof(struct vs_als_entry);
}

static int ensure_buf(struct vs_rec *r, size_t need)
{
    if (need <= r->buf_cap) {
        return 0;
    }
    uint8_t *b = realloc(r->buf, need);
    if (!b) {
        return VS_ENOMEM;
    }
    r->buf = b;
    r->buf_cap = need;
    return 0;
}

static int put_blob(struct vs_rec *r, vs_rec_put_fn put, void *arg, const char *key,
                    size_t (*enc)(const void *, int32_t, void *, size_t), const void *model,
                    int32_t chunk)
{
    size_t need = enc(model, chunk, NULL, 0);
    int rc = ensure_buf(r, need);
    if (rc < 0) {
        return rc;
    }
    enc(model, chunk, r->buf, r->buf_cap);
    return put(arg, key, r->buf, need);
}

static size_t enc_mf_meta(const void *m, int32_t c, void *b, size_t cap)
{
    return vs_mf_encode_meta(m, b, cap);
}
static size_t enc_mf_chunk(const void *m, int32_t c, void *b, size_t cap)
{
    return vs_mf_encode_chunk(m, c, b, cap);
}
static size_t enc_cooc_chunk(const void *m, int32_t c, void *b, size_t cap)
{
    return vs_cooc_encode_chunk(m, c, b, cap);
}
static size_t enc_pop_meta(const void *m, int32_t c, void *b, size_t cap)
{
    return vs_pop_encode_meta(m, b, cap);
}
static size_t enc_pop_chunk(const void *m, int32_t c, void *b, size_t cap)
{
    return vs_pop_encode_chunk(m, c, b, cap);
}

/*
 * Keys: "meta" (counters and item count), "mf/meta" (Gram cache), "pop/meta", and one key per
 * changed chunk of 256 items and per part: "mf/<chunk>", "cooc/<chunk>", "pop/<chunk>".
 */
int vs_rec_save(struct vs_rec *r, vs_rec_put_fn put, void *arg)
{
    char key[32];
    int rc = 0;
    if (vs_mf_meta_dirty(r->mf)) {
        rc = put_blob(r, put, arg, "mf/meta", enc_mf_meta, r->mf, 0);
    }
    for (int32_t c = vs_mf_next_dirty(r->mf, 0); rc == 0 && c >= 0;
         c = vs_mf_next_dirty(r->mf, c + 1)) {
        snprintf(key, sizeof(key), "mf/%d", c);
        rc = put_blob(r, put, arg, key, enc_mf_chunk, r->mf, c);
    }
    for (int32_t c = vs_cooc_next_dirty(r->cooc, 0); rc == 0 && c >= 0;
         c = vs_cooc_next_dirty(r->cooc, c + 1)) {
        snprintf(key, sizeof(key), "cooc/%d", c);
        rc = put_blob(r, put, arg, key, enc_cooc_chunk, r->cooc, c);
    }
    if (rc == 0 && vs_pop_meta_dirty(r->pop)) {
        rc = put_blob(r, put, arg, "pop/meta", enc_pop_meta, r->pop, 0);
    }
    for (int32_t c = vs_pop_next_dirty(r->pop, 0); rc == 0 && c >= 0;
         c = vs_pop_next_dirty(r->pop, c + 1)) {
        snprintf(key, sizeof(key), "pop/%d", c);
        rc = put_blob(r, put, arg, key, enc_pop_chunk, r->pop, c);
    }
    if (r->log) {
        size_t chunks = ((size_t)r->p.als_window + VS__REC_LOG_CHUNK - 1) / VS__REC_LOG_CHUNK;
        for (size_t c = 0; rc == 0 && c < chunks; c++) {
            if (r->log_dirty[c]) {
                snprintf(key, sizeof(key), "als/log/%zu", c);
                rc = put(arg, key, r->log + c * VS__REC_LOG_CHUNK, log_chunk_len(r, (int64_t)c));
            }
        }
        if (rc == 0 && r->sweep && !r->sweep->persisted) {
            rc = put_sweep(r, put, arg);
        }
    }
    if (rc == 0 && r->stats_dirty) {
        struct rec_meta m;
        memset(&m, 0, sizeof(m));
        m.magic = VS__REC_MAGIC;
        m.version = VS__REC_VERSION;
        m.items = vs_mf_items(r->mf);
        m.stats = r->stats;
        m.lead = r->lead;
        m.adapt_tests = r->adapt_tests;
        m.adapt_counted = r->adapt_counted;
        memcpy(m.adapt_score, r->adapt_score, sizeof(m.adapt_score));
        m.next_als_ts = r->next_als_ts;
        m.log_total = r->log ? r->log_total : 0;
        m.sweeps = r->sweeps;
        m.sweep_failures = r->sweep_failures;
        m.epoch = r->epoch;
        m.next_number = r->next_number;
        m.window = r->log ? r->p.als_window : 0;
        m.sweep_stored = r->sweep != NULL;
        rc = put(arg, "meta", &m, sizeof(m));
    }
    if (rc == 0) {
        if (r->log) {
            memset(r->log_dirty, 0,
                   ((size_t)r->p.als_window + VS__REC_LOG_CHUNK - 1) / VS__REC_LOG_CHUNK);
        }
        vs_mf_clear_dirty(r->mf);
        vs_cooc_clear_dirty(r->cooc);
        vs_pop_clear_dirty(r->pop);
        r->stats_dirty = 0;
    }
    return rc;
}

static int load_one(vs_rec_get_fn get, void *arg, const char *key, void **val, size_t *len,
                    char *errbuf, size_t errlen)
{
    int rc = get(arg, key, val, len);
    if (rc < 0) {
        snprintf(errbuf, errlen, "recommend model: %s '%s'",
                 rc == VS_ENOTFOUND ? "missing blob" : "cannot read blob", key);
        return rc == VS_ENOTFOUND ? VS_ECORRUPT : rc;
    }
    return 0;
}

int vs_rec_load(struct vs_rec *r, vs_rec_get_fn get, void *arg, char *errbuf, size_t errlen)
{
    void *val = NULL;
    size_t len = 0;
    int rc = get(arg, "meta", &val, &len);
    if (rc == VS_ENOTFOUND) {
        return 0; /* a fresh state directory: start empty */
    }
    if (rc < 0) {
        snprintf(errbuf, errlen, "recommend model: cannot read blob 'meta'");
        return rc;
    }
    struct rec_meta m;
    memset(&m, 0, sizeof(m));
    size_t have = len < sizeof(m) ? len : sizeof(m);
    memcpy(&m, val, have);
    free(val);
    if (len < VS__REC_META_V1 || m.magic != VS__REC_MAGIC) {
        snprintf(errbuf, errlen, "recommend model: corrupt blob 'meta'");
        return VS_ECORRUPT;
    }
    if (m.version < 1 || m.version > VS__REC_VERSION) {
        snprintf(errbuf, errlen, "recommend model: blob 'meta' has an unknown format");
        return VS_EVERSION;
    }
    size_t want = m.version == 1 ? VS__REC_META_V1 : m.version == 2 ? VS__REC_META_V2 : sizeof(m);
    if (len != want || m.items < 0 || m.lead < 0 || m.lead >= VS_REC_MIXES || m.log_total < 0 ||
        m.window < 0 || (m.log_total > 0 && m.window < 1)) {
        snprintf(errbuf, errlen, "recommend model: corrupt blob 'meta'");
        return VS_ECORRUPT;
    }
    char key[32];
    rc = load_one(get, arg, "mf/meta", &val, &len, errbuf, errlen);
    if (rc == 0) {
        rc = vs_mf_decode_meta(r->mf, val, len);
        free(val);
        if (rc == 0 && vs_mf_items(r->mf) != m.items) {
            rc = VS_ECORRUPT;
        }
        if (rc < 0) {
            snprintf(errbuf, errlen, "recommend model: blob 'mf/meta': %s%s", vs_strerror(rc),
                     rc == VS_ECONFIG ? " (recommend.k differs from the stored model)" : "");
        }
    }
    if (rc == 0) {
        rc = reserve_items(r, m.items);
        if (rc < 0) {
            snprintf(errbuf, errlen, "recommend model: out of memory");
        }
    }
    if (rc == 0) {
        rc = load_one(get, arg, "pop/meta", &val, &len, errbuf, errlen);
        if (rc == 0) {
            rc = vs_pop_decode_meta(r->pop, val, len);
            free(val);
            if (rc < 0) {
                snprintf(errbuf, errlen, "recommend model: blob 'pop/meta': %s%s", vs_strerror(rc),
                         rc == VS_ECONFIG ? " (recommend.popularity.tau.ms differs)" : "");
            }
        }
    }
    int32_t chunks = vs_mf_chunks(r->mf);
    for (int32_t c = 0; rc == 0 && c < chunks; c++) {
        const char *part[3] = {"mf", "cooc", "pop"};
        for (int p = 0; rc == 0 && p < 3; p++) {
            snprintf(key, sizeof(key), "%s/%d", part[p], c);
            rc = load_one(get, arg, key, &val, &len, errbuf, errlen);
            if (rc < 0) {
                break;
            }
            if (p == 0) {
                rc = vs_mf_decode_chunk(r->mf, c, val, len);
            } else if (p == 1) {
                rc = vs_cooc_decode_chunk(r->cooc, c, val, len);
            } else {
                rc = vs_pop_decode_chunk(r->pop, c, val, len);
            }
            free(val);
            if (rc < 0) {
                snprintf(errbuf, errlen, "recommend model: blob '%s': %s", key, vs_strerror(rc));
            }
        }
    }
    /* The sweeps' state, when sweeps are on (else it is left behind: sweeps start afresh). */
    if (rc == 0 && r->log && m.log_total > 0 && m.window != r->p.als_window) {
        snprintf(errbuf, errlen,
                 "recommend model: recommend.als.window is %d, the stored log was kept with %d",
                 r->p.als_window, m.window);
        rc = VS_ECONFIG;
    }
    if (rc == 0 && r->log && m.log_total > 0) {
        r->log_total = m.log_total;
        int64_t used = m.log_total < m.window ? m.log_total : m.window;
        for (int64_t c = 0; rc == 0 && c * VS__REC_LOG_CHUNK < used; c++) {
            snprintf(key, sizeof(key), "als/log/%lld", (long long)c);
            rc = load_one(get, arg, key, &val, &len, errbuf, errlen);
            if (rc == 0) {
                if (len != log_chunk_len(r, c)) {
                    snprintf(errbuf, errlen, "recommend model: corrupt blob '%s'", key);
                    rc = VS_ECORRUPT;
                } else {
                    memcpy(r->log + c * VS__REC_LOG_CHUNK, val, len);
                }
                free(val);
            }
        }
    }
    if (rc == 0 && r->log) {
        r->next_als_ts = m.next_als_ts;
        if (m.sweep_stored) {
            rc = load_one(get, arg, "als/sweep", &val, &len, errbuf, errlen);
            if (rc == 0) {
                rc = load_sweep(r, val, len);
                free(val);
                if (rc < 0) {
                    snprintf(errbuf, errlen, "recommend model: blob 'als/sweep': %s",
                             vs_strerror(rc));
                }
            }
        }
    }
    if (rc < 0) {
        return rc;
    }
    r->next_number = m.next_number;
    r->epoch = m.epoch;
    r->sweeps = m.sweeps;
    r->sweep_failures = m.sweep_failures;
    r->stats = m.stats;
    r->lead = m.lead;
    r->adapt_tests = m.adapt_tests;
    r->adapt_counted = m.adapt_counted;
    memcpy(r->adapt_score, m.adapt_score, sizeof(r->adapt_score));
    r->stats_dirty = 0;
    vs_mf_clear_dirty(r->mf);
    vs_cooc_clear_dirty(r->cooc);
    vs_pop_clear_dirty(r->pop);
    return 0;
}
