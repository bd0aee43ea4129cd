/*
 * The recommender: the matrix-factorization model, item co-occurrence and recent popularity
 * together, plus the per-customer state they need and the blended top-N list.
 *
 * This is the one piece of code behind both the `recommend` operator and `valuestream eval
 * recommend`: the operator adds only the engine's side (config, section, emission, metrics,
 * checkpoints). It depends on no engine function, so tests drive it directly.
 *
 * A customer's state (struct vs_rec_customer) is a fixed-size POD: their factor vector, their
 * most recent items with accumulated interaction weights, the items they bought and the last
 * list they were sent. Items are referred to by their row in the model's dictionary.
 */
#ifndef VS_RECOMMEND_RECOMMENDER_H
#define VS_RECOMMEND_RECOMMENDER_H

#include <stddef.h>
#include <stdint.h>

#include <valuestream/config.h>
#include <valuestream/event.h>

#include "als.h"
#include "cooc.h"
#include "mf.h"
#include "pop.h"

#define VS_REC_MAX_RECENT 32 /* recent items kept per customer */
#define VS_REC_MAX_BOUGHT 32 /* bought items remembered per customer (excluded from lists) */
#define VS_REC_MAX_N 50      /* longest list */
#define VS_REC_MIXES 16      /* candidate blends tried online (recommend.blend.adapt) */

/* Flags of a recent item. */
#define VS_REC_VIEWED 1u
#define VS_REC_CARTED 2u
#define VS_REC_BOUGHT 4u

/* One customer's section: fixed size, no pointers, zero means "new customer". */
struct vs_rec_customer {
    float x[VS_MF_MAX_K];              /* factor vector */
    int32_t recent[VS_REC_MAX_RECENT]; /* item rows, most recent first */
    float recent_w[VS_REC_MAX_RECENT]; /* accumulated weight of each */
    uint8_t recent_flags[VS_REC_MAX_RECENT];
    int32_t bought[VS_REC_MAX_BOUGHT]; /* ring of bought item rows */
    int32_t last_list[VS_REC_MAX_N];   /* rows of the last list sent */
    int64_t last_sent_ts;              /* event time of the last list sent */
    uint32_t interactions;             /* interactions learned from */
    uint16_t n_recent, n_bought, bought_next, n_last;
    uint16_t views_since_sent;
    uint16_t epoch;  /* the model's sweep count (mod 2^16) x was last solved against */
    uint32_t number; /* the customer's number in full ALS sweeps (0: none yet) */
};

enum vs_rec_reason { VS_REC_MODEL = 0, VS_REC_TOGETHER = 1, VS_REC_TRENDING = 2 };

/* One entry of a list. related is the customer's item behind a TOGETHER entry, else -1. */
struct vs_rec_entry {
    int32_t item;
    float score;
    enum vs_rec_reason reason;
    int32_t related;
};

struct vs_rec_params {
    struct vs_mf_params mf;
    int eals_sweeps; /* 0: exact fold-in (Cholesky); else eALS with this many sweeps */
    float weight[VS_EVENT_TYPE_COUNT]; /* weight per event type; remove/refund are taken away */
    int n;                             /* list length */
    int exclude_viewed;                /* also exclude the customer's recent items */
    int every_views;                   /* send a list after this many views */
    int64_t min_interval_ms;           /* at most one list per customer per this event time */
    int recent;                        /* recent items used (<= VS_REC_MAX_RECENT) */
    int cooc_m;                        /* neighbours kept per item */
    int cooc_window;                   /* recent items an interaction co-occurs with */
    float cooc_decay;                  /* weight of the p-th most recent item: decay^p */
    double pop_tau_ms;                 /* popularity decay time constant */
    float blend_model, blend_together, blend_trending;
    float model_ramp;        /* interactions after which the model gets its full blend weight */
    int adapt;               /* tune the blend online among VS_REC_MIXES candidate mixes */
    int adapt_sample;        /* the engine tests the mixes on one in this many eligible events */
    double adapt_halflife;   /* tests after which a mix's past counts half */
    double adapt_margin;     /* lead over the mix in use that a mix needs to replace it */
    int64_t als_interval_ms; /* event time between full ALS sweeps; 0: none */
    int als_window;          /* interactions a sweep learns from */
    int als_iterations;      /* alternations per sweep */
};

/* The declared config keys (ended by {NULL}); the operator's config table. The seed of new
 * item factors is the engine's `seed` key, also accepted by vs_rec_params_set(). */
extern const struct vs_config_key vs_rec_config[];

/* Fill p from the table's defaults. */
void vs_rec_params_default(struct vs_rec_params *p);
/* Set one declared key from text. Returns 0, or VS_ECONFIG with a message naming the key. */
int vs_rec_params_set(struct vs_rec_params *p, const char *key, const char *value, char *errbuf,
                      size_t errlen);
/* Cross-key checks (ranges). 0 or VS_ECONFIG with a message. */
int vs_rec_params_check(const struct vs_rec_params *p, char *errbuf, size_t errlen);

/* Counters of what the recommender did not learn from. */
struct vs_rec_stats {
    int64_t learned;      /* interactions learned from: the model version */
    int64_t no_item;      /* events without an item id */
    int64_t unknown_item; /* remove/refund of an item the model never saw */
    int64_t bad_item;     /* item id too long or item table full */
    int64_t rejected;     /* updates refused because they were not finite */
};

struct vs_rec;

struct vs_rec *vs_rec_new(const struct vs_rec_params *p, char *errbuf, size_t errlen);
void vs_rec_free(struct vs_rec *r);

const struct vs_rec_params *vs_rec_params(const struct vs_rec *r);
struct vs_mf *vs_rec_mf(struct vs_rec *r);
struct vs_cooc *vs_rec_cooc(struct vs_rec *r);
struct vs_pop *vs_rec_pop(struct vs_rec *r);
struct vs_rec_stats vs_rec_stats(const struct vs_rec *r);

/*
 * Learn from one event of a customer: type decides the weight (and whether it is given or
 * taken away), item_id the item, ts the event time. Updates the customer's recent items and
 * vector, the item's row, co-occurrence and popularity. Returns the item's row (>= 0), or
 * VS_EINVAL (no item id; nothing changed), VS_ENOTFOUND (an item never seen, taken away),
 * VS_ETOOBIG / VS_EFULL (item refused), each counted in the stats. An update refused as not
 * finite leaves the model unchanged and is counted, but the event still counts as learned.
 */
int32_t vs_rec_learn(struct vs_rec *r, struct vs_rec_customer *cu, enum vs_event_type type,
                     const char *item_id, int64_t ts);

/*
 * The blended top-n list for a customer, best first, into out[n] (n <= VS_REC_MAX_N; returns
 * the number of entries, fewer when there are fewer eligible items). Excluded: items the
 * customer bought (and viewed, with exclude_viewed), unavailable items, and the n_extra rows of
 * extra (may be NULL). Scores every item with one sgemv and selects with a heap: no sort of
 * the catalogue. Allocates nothing.
 */
int vs_rec_top(struct vs_rec *r, const struct vs_rec_customer *cu, int n, const int32_t *extra,
               int n_extra, struct vs_rec_entry *out);

/*
 * vs_rec_top, and then, when target is an item row (>= 0; n may be 0 for no list), the test of
 * every candidate mix of the blend on it with the same scores (recommend.blend.adapt): call it
 * with the item the customer interacts with next, before learning from that interaction.
 * Later lists use the mix with the best recent NDCG@10. Allocates nothing.
 */
int vs_rec_top_test(struct vs_rec *r, const struct vs_rec_customer *cu, int n, const int32_t *extra,
                    int n_extra, struct vs_rec_entry *out, int32_t target);

/*
 * The item row the engine tests the mixes on for this interaction, before learning from it, or
 * -1: with recommend.blend.adapt, one in recommend.blend.adapt.sample positive interactions of
 * known customers (counted here, in event order) is sampled, and tested when its item is known
 * and one the customer's list could have held (not bought; not viewed, with exclude_viewed), as
 * the live hit rate counts it. Only a sampled interaction looks its item up. `eval recommend`
 * tests its own test points instead.
 */
int32_t vs_rec_adapt_target(struct vs_rec *r, const struct vs_rec_customer *cu,
                            enum vs_event_type type, const char *item_id);

/* The blend lists use now: the configured weights times the leading mix's multipliers. */
struct vs_rec_blend {
    float model, together, trending;
    int64_t tests; /* tests of the mixes so far */
};
struct vs_rec_blend vs_rec_blend(const struct vs_rec *r);

/*
 * Full ALS sweeps (recommend.als.interval.ms > 0). The recommender logs the last
 * recommend.als.window interactions; at the first event at or past each multiple of the
 * interval (event time) it applies the sweep started at the previous boundary, as the change of
 * each row the sweep solved (so the online updates made meanwhile stay), waiting for it if it is
 * still running, and starts the next one on a snapshot of the item rows and the log. Where the
 * result lands depends on event time only, so it is deterministic. The runner says how a sweep
 * runs: submit() starts work(arg) in the background and returns a handle (NULL: it ran at
 * once), wait() returns when it is done. Without a runner a sweep runs at once, at its start.
 */
struct vs_rec_runner {
    void *(*submit)(void *ctx, void (*work)(void *arg), void *arg);
    void (*wait)(void *ctx, void *handle);
    void *ctx;
};
void vs_rec_set_runner(struct vs_rec *r, const struct vs_rec_runner *runner);

/* After a sweep the customers' vectors belong to the previous model: a customer's is re-solved
 * exactly against the current rows the first time they are seen again. vs_rec_learn() does it;
 * call it before ranking a customer without learning (eval ranks before it learns). */
void vs_rec_refresh(struct vs_rec *r, struct vs_rec_customer *cu);

struct vs_rec_sweeps {
    int64_t sweeps;   /* sweeps applied */
    int64_t failures; /* sweeps whose solve or result was refused (the model kept as it was) */
    int32_t solved;   /* item rows the last sweep solved */
    double ms;        /* how long the last sweep took, ms of wall time */
    int running;      /* a sweep is in flight */
};
struct vs_rec_sweeps vs_rec_sweeps(const struct vs_rec *r);

/* Wait for a sweep in flight (at shutdown); it is applied at its boundary as before. */
void vs_rec_sweep_wait(struct vs_rec *r);

/* Mark an item unavailable (never recommended) or available again. 0 or VS_EINVAL. */
int vs_rec_set_available(struct vs_rec *r, int32_t item, int available);

/* What an interaction the customer just made asks of the list (vs_rec_list_due). */
enum vs_rec_due { VS_REC_NOT_DUE = 0, VS_REC_DUE = 1, VS_REC_THROTTLED = 2 };

/*
 * Whether a learned interaction of type at event time ts calls for a fresh list: a purchase or
 * an add-to-cart always does, a view every every_views views (counted here), and none within
 * min_interval_ms of the last list sent (VS_REC_THROTTLED). Decided before any scoring, so an
 * event that sends nothing costs no top-N.
 */
enum vs_rec_due vs_rec_list_due(const struct vs_rec *r, struct vs_rec_customer *cu,
                                enum vs_event_type type, int64_t ts);

/* Remember out[0..n) as the customer's last list and ts as when it was sent. */
void vs_rec_remember_list(struct vs_rec_customer *cu, const struct vs_rec_entry *out, int n,
                          int64_t ts);
/* Whether item is in the customer's last list (-1: no list was sent yet, else 0/1). */
int vs_rec_in_last_list(const struct vs_rec_customer *cu, int32_t item);

/*
 * Select the best n of scores[0..count) (higher first; equal scores: lower index first;
 * -infinity never selected) into idx[n], best first, with a heap of n entries: the rest is
 * never sorted. Returns the number selected.
 */
int vs_rec_select(const float *scores, int32_t count, int n, int32_t *idx);

/*
 * The count behind the blend's test of its candidate mixes: for each mix c < nmix, how many items
 * i < count with sc[i] != -infinity rank before target under a[c] * model + b[c] * ps (a[c] and
 * b[c] >= 0, model and ps finite), whose target scores th[c]: those scoring more, and those
 * before target that score the same (vs_rec_select's order). Into better[c]; a count that
 * reaches enough stops there or a little above, and means the same from there on.
 */
void vs_rec_count_better(const float *model, const float *ps, const float *sc, const float *a,
                         const float *b, const float *th, int nmix, int32_t target, int32_t count,
                         int32_t enough, int32_t *better);

/* The checkpoint key prefixes and the restore of a whole model from stored blobs: get(key)
 * returns 0 with a malloc'd blob, VS_ENOTFOUND, or an error. Used by the operator's init. */
typedef int (*vs_rec_get_fn)(void *arg, const char *key, void **val, size_t *len);
typedef int (*vs_rec_put_fn)(void *arg, const char *key, const void *val, size_t len);
int vs_rec_load(struct vs_rec *r, vs_rec_get_fn get, void *arg, char *errbuf, size_t errlen);
/* Write what changed since the last save (all on the first save after new), clear the marks. */
int vs_rec_save(struct vs_rec *r, vs_rec_put_fn put, void *arg);

#endif
