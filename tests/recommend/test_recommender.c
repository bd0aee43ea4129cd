/*
 * Unit tests of the recommender: top-N selection and exclusions, the blend's signals alone
 * against brute-force rankings, a planted-taste log where the model beats popularity, bounded
 * co-occurrence, decayed popularity, bad events, and checkpoint round trips.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <valuestream/error.h>

#include "operators/recommend/recommender.h"

static uint64_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static struct vs_rec *make(struct vs_rec_params *p)
{
    char err[256];
    struct vs_rec *r = vs_rec_new(p, err, sizeof(err));
    if (!r) {
        fail_msg("%s", err);
    }
    return r;
}

static struct vs_rec_params small_params(void)
{
    struct vs_rec_params p;
    vs_rec_params_default(&p);
    p.mf.k = 8;
    return p;
}

static void learn(struct vs_rec *r, struct vs_rec_customer *cu, enum vs_event_type t, int item,
                  int64_t ts)
{
    char id[32];
    snprintf(id, sizeof(id), "i%d", item);
    assert_true(vs_rec_learn(r, cu, t, id, ts) >= 0);
}

/* Rank order of the brute-force reference: higher score, then lower index. */
static const float *sort_scores;
static int cmp_rank(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (sort_scores[x] != sort_scores[y]) {
        return sort_scores[x] > sort_scores[y] ? -1 : 1;
    }
    return x < y ? -1 : 1;
}

static int brute_top(const float *scores, int32_t n, int top, int32_t *out)
{
    int32_t *all = malloc(sizeof(int32_t) * (size_t)n);
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        if (scores[i] > -INFINITY) {
            all[m++] = i;
        }
    }
    sort_scores = scores;
    qsort(all, (size_t)m, sizeof(int32_t), cmp_rank);
    int k = m < top ? m : top;
    memcpy(out, all, sizeof(int32_t) * (size_t)k);
    free(all);
    return k;
}

static void select_matches_sort(void **state)
{
    uint64_t s = 99;
    float *scores = malloc(sizeof(float) * 5000);
    for (int round = 0; round < 50; round++) {
        int32_t n = 1 + (int32_t)(rnd(&s) % 5000);
        for (int32_t i = 0; i < n; i++) {
            uint64_t v = rnd(&s) % 100; /* many ties */
            scores[i] = v < 10 ? -INFINITY : (float)v;
        }
        int top = 1 + (int)(rnd(&s) % VS_REC_MAX_N);
        int32_t got[VS_REC_MAX_N], want[VS_REC_MAX_N];
        int ng = vs_rec_select(scores, n, top, got);
        int nw = brute_top(scores, n, top, want);
        assert_int_equal(ng, nw);
        assert_memory_equal(got, want, sizeof(int32_t) * (size_t)ng);
    }
    free(scores);
}

/* The select's floor and candidate buffer on the shapes that stress them: long catalogues of
 * rising, falling and equal scores, a few large scores over a tail, -infinity and NaN (never
 * selected), all against the sort. */
static void select_matches_sort_on_shapes(void **state)
{
    uint64_t s = 7;
    int32_t sizes[] = {1, 19, 20, 21, 160, 161, 2000, 2048, 100000, 300001};
    float *scores = malloc(sizeof(float) * 300001);
    for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
        int32_t n = sizes[z];
        for (int shape = 0; shape < 6; shape++) {
            for (int32_t i = 0; i < n; i++) {
                float u = (float)(rnd(&s) % 1000000) / 1e6f;
                switch (shape) {
                case 0: /* rising: every block's maximum is above the last */
                    scores[i] = (float)i;
                    break;
                case 1: /* falling */
                    scores[i] = (float)(n - i);
                    break;
                case 2: /* all equal: index order decides */
                    scores[i] = 0.5f;
                    break;
                case 3: /* a few large scores over a tail */
                    scores[i] = rnd(&s) % 97 == 0 ? 1 + u : u * 0.01f;
                    break;
                case 4: /* random, with excluded and poisoned entries */
                    scores[i] = rnd(&s) % 5 == 0 ? -INFINITY : rnd(&s) % 11 == 0 ? NAN : u;
                    break;
                default: /* few distinct values: ties across the floor */
                    scores[i] = (float)(rnd(&s) % 4);
                    break;
                }
            }
            for (int top = 1; top <= VS_REC_MAX_N; top += 49) {
                int32_t got[VS_REC_MAX_N], want[VS_REC_MAX_N];
                int ng = vs_rec_select(scores, n, top, got);
                /* the reference sort leaves NaN out like -infinity */
                for (int32_t i = 0; i < n; i++) {
                    if (isnan(scores[i])) {
                        scores[i] = -INFINITY;
                    }
                }
                int nw = brute_top(scores, n, top, want);
                assert_int_equal(ng, nw);
                assert_memory_equal(got, want, sizeof(int32_t) * (size_t)ng);
            }
        }
    }
    free(scores);
}

/* The blend's test count, slices skipped by their bounds, against a plain count over every item:
 * catalogues around the slice sizes, scores with many ties (equal to the target's too), negative
 * model scores, excluded items, a zero popularity weight, and counts stopped early or not. */
static void count_better_matches_a_plain_count(void **state)
{
    uint64_t s = 2024;
    int32_t sizes[] = {1, 3, 255, 256, 257, 2047, 2048, 2049, 5000, 70001};
    float *model = malloc(sizeof(float) * 70001), *ps = malloc(sizeof(float) * 70001);
    float *sc = malloc(sizeof(float) * 70001);
    for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
        int32_t n = sizes[z];
        for (int shape = 0; shape < 4; shape++) {
            for (int32_t i = 0; i < n; i++) {
                switch (shape) {
                case 0: /* few distinct values: ties everywhere */
                    model[i] = (float)((int)(rnd(&s) % 5) - 2) * 0.25f;
                    ps[i] = (float)(rnd(&s) % 3);
                    break;
                case 1: /* all equal: the order alone decides */
                    model[i] = 0.5f;
                    ps[i] = 1.0f;
                    break;
                case 2: /* a few high scores over a low tail, as on a real catalogue */
                    model[i] = rnd(&s) % 301 == 0 ? 1.0f + (float)(rnd(&s) % 100) / 100.0f
                                                  : -(float)(rnd(&s) % 1000) / 1000.0f;
                    ps[i] = rnd(&s) % 53 == 0 ? (float)(rnd(&s) % 50) : 0.0f;
                    break;
                default: /* random */
                    model[i] = (float)(rnd(&s) % 2000001) / 1e6f - 1.0f;
                    ps[i] = (float)(rnd(&s) % 1000) / 10.0f;
                    break;
                }
                sc[i] = rnd(&s) % 7 == 0 ? -INFINITY : 0.0f;
            }
            for (int round = 0; round < 20; round++) {
                enum { MIXES = 6 };
                float a[MIXES], b[MIXES], th[MIXES];
                int32_t target = (int32_t)(rnd(&s) % (uint64_t)n);
                for (int c = 0; c < MIXES; c++) {
                    a[c] = (float)(1 + rnd(&s) % 40) / 8.0f;
                    b[c] = c == 0 ? 0.0f : (float)(rnd(&s) % 400) / 1000.0f;
                    th[c] = a[c] * model[target] + b[c] * ps[target];
                    if (round % 4 == 3) {
                        th[c] += (float)((int)(rnd(&s) % 200) - 100) / 100.0f;
                    }
                }
                int32_t enough = round % 2 ? 10 : n + 1;
                int32_t got[MIXES];
                vs_rec_count_better(model, ps, sc, a, b, th, MIXES, target, n, enough, got);
                for (int c = 0; c < MIXES; c++) {
                    int32_t want = 0;
                    for (int32_t i = 0; i < n; i++) {
                        float v = a[c] * model[i] + b[c] * ps[i];
                        if (i != target && sc[i] != -INFINITY) {
                            want += i < target ? v >= th[c] : v > th[c];
                        }
                    }
                    if (want < enough) {
                        assert_int_equal(got[c], want);
                    } else {
                        assert_true(got[c] >= enough);
                    }
                }
            }
        }
    }
    free(model);
    free(ps);
    free(sc);
}

/* A small shop: 200 items, 60 customers with random histories. */
static void fill_shop(struct vs_rec *r, struct vs_rec_customer *cust, int n_cust, uint64_t seed)
{
    uint64_t s = seed;
    for (int e = 0; e < 3000; e++) {
        int c = (int)(rnd(&s) % (uint64_t)n_cust);
        int item = (int)(rnd(&s) % 200);
        enum vs_event_type t = e % 13 == 0  ? VS_EVENT_PURCHASE
                               : e % 5 == 0 ? VS_EVENT_ADD_TO_CART
                                            : VS_EVENT_VIEW;
        learn(r, &cust[c], t, item, 1700000000000LL + e * 1000);
    }
}

static void top_excludes_and_matches_brute_force(void **state)
{
    struct vs_rec_customer cust[60];
    memset(cust, 0, sizeof(cust));
    /* Model score alone, at weight 1: the list's scores are the dot products. */
    struct vs_rec_params p = small_params();
    p.blend_model = 1;
    p.blend_together = 0;
    p.blend_trending = 0;
    p.model_ramp = 0;
    struct vs_rec *r = make(&p);
    fill_shop(r, cust, 60, 5);
    struct vs_mf *mf = vs_rec_mf(r);
    int32_t n = vs_mf_items(mf);
    float *ref = malloc(sizeof(float) * (size_t)n);
    struct vs_rec_entry list[20];
    int32_t want[20];
    int checked_bought = 0;
    for (int c = 0; c < 60; c++) {
        const struct vs_rec_customer *cu = &cust[c];
        for (int32_t i = 0; i < n; i++) {
            double d = 0;
            for (int f = 0; f < 8; f++) {
                d += vs_mf_row(mf, i)[f] * cu->x[f];
            }
            ref[i] = (float)d;
        }
        for (int s = 0; s < cu->n_recent; s++) {
            if (cu->recent_flags[s] & VS_REC_BOUGHT) {
                ref[cu->recent[s]] = -INFINITY;
                checked_bought++;
            }
        }
        for (int s = 0; s < cu->n_bought; s++) {
            ref[cu->bought[s]] = -INFINITY;
        }
        int got = vs_rec_top(r, cu, 20, NULL, 0, list);
        int nw = brute_top(ref, n, 20, want);
        assert_int_equal(got, nw);
        for (int e = 0; e < got; e++) {
            assert_int_equal(list[e].item, want[e]);
            assert_true(fabsf(list[e].score - ref[want[e]]) <= 1e-4f * (1 + fabsf(ref[want[e]])));
            assert_int_equal(list[e].reason, VS_REC_MODEL);
        }
    }
    assert_true(checked_bought > 0);
    vs_rec_free(r);

    /* Popularity alone, with unavailable items and an extra exclusion list. */
    memset(cust, 0, sizeof(cust));
    p.blend_model = 0;
    p.blend_trending = 1;
    r = make(&p);
    fill_shop(r, cust, 60, 5);
    const float *pop = vs_pop_scaled(vs_rec_pop(r));
    int32_t extra[3] = {10, 11, 12};
    for (int32_t i = 0; i < 20; i++) {
        assert_int_equal(vs_rec_set_available(r, i * 3, 0), 0);
    }
    for (int c = 0; c < 60; c++) {
        const struct vs_rec_customer *cu = &cust[c];
        memcpy(ref, pop, sizeof(float) * (size_t)n);
        for (int s = 0; s < cu->n_bought; s++) {
            ref[cu->bought[s]] = -INFINITY;
        }
        for (int i = 0; i < 3; i++) {
            ref[extra[i]] = -INFINITY;
        }
        for (int32_t i = 0; i < 20; i++) {
            ref[i * 3] = -INFINITY;
        }
        int got = vs_rec_top(r, cu, 20, extra, 3, list);
        int nw = brute_top(ref, n, 20, want);
        assert_int_equal(got, nw);
        for (int e = 0; e < got; e++) {
            assert_int_equal(list[e].item, want[e]);
            assert_int_equal(list[e].reason, VS_REC_TRENDING);
        }
    }
    vs_rec_free(r);

    /* The full blend with viewed items excluded: nothing the customer touched comes back, and
     * TOGETHER entries name one of the customer's items. */
    memset(cust, 0, sizeof(cust));
    p = small_params();
    p.exclude_viewed = 1;
    r = make(&p);
    fill_shop(r, cust, 60, 6);
    int together = 0;
    for (int c = 0; c < 60; c++) {
        const struct vs_rec_customer *cu = &cust[c];
        int got = vs_rec_top(r, cu, 20, NULL, 0, list);
        assert_true(got == 20);
        for (int e = 0; e < got; e++) {
            for (int s = 0; s < cu->n_recent; s++) {
                assert_int_not_equal(list[e].item, cu->recent[s]);
            }
            if (e > 0) {
                assert_true(list[e].score <= list[e - 1].score);
            }
            if (list[e].reason == VS_REC_TOGETHER) {
                int mine = 0;
                for (int s = 0; s < cu->n_recent; s++) {
                    mine |= cu->recent[s] == list[e].related;
                }
                assert_true(mine);
                together++;
            } else {
                assert_int_equal(list[e].related, -1);
            }
        }
    }
    assert_true(together > 0);
    free(ref);
    vs_rec_free(r);
}

/*
 * Planted taste: two groups of customers, each viewing only its own half of the catalogue; the
 * second group is three times larger, so overall popularity points at its half. For customers
 * of the first group, the model's next-item hit rate must beat popularity's.
 */
static void model_beats_popularity_on_planted_taste(void **state)
{
    struct vs_rec_params p = small_params();
    p.blend_together = 0;
    p.blend_trending = 0;
    p.model_ramp = 0;
    struct vs_rec *r = make(&p);
    enum { CUSTOMERS = 200, ITEMS = 100 };
    struct vs_rec_customer *cust = calloc(CUSTOMERS, sizeof(*cust));
    uint64_t s = 17;
    int hits_model = 0, hits_pop = 0, tests = 0;
    int32_t extra[VS_REC_MAX_RECENT];
    for (int e = 0; e < 12000; e++) {
        int c = (int)(rnd(&s) % CUSTOMERS);
        int first = c < CUSTOMERS / 4;
        int item = (int)(rnd(&s) % (ITEMS / 2)) + (first ? 0 : ITEMS / 2);
        char id[16];
        snprintf(id, sizeof(id), "i%d", item);
        int32_t row = vs_mf_find(vs_rec_mf(r), id);
        if (e > 6000 && first && row >= 0 && cust[c].interactions >= 3) {
            struct vs_rec_entry list[10];
            for (int k = 0; k < cust[c].n_recent; k++) {
                extra[k] = cust[c].recent[k];
            }
            int n = vs_rec_top(r, &cust[c], 10, extra, cust[c].n_recent, list);
            for (int k = 0; k < n; k++) {
                hits_model += list[k].item == row;
            }
            float *pop = malloc(sizeof(float) * (size_t)vs_mf_items(vs_rec_mf(r)));
            memcpy(pop, vs_pop_scaled(vs_rec_pop(r)), sizeof(float) * vs_mf_items(vs_rec_mf(r)));
            for (int k = 0; k < cust[c].n_recent; k++) {
                pop[extra[k]] = -INFINITY;
            }
            int32_t idx[10];
            n = vs_rec_select(pop, vs_mf_items(vs_rec_mf(r)), 10, idx);
            for (int k = 0; k < n; k++) {
                hits_pop += idx[k] == row;
            }
            free(pop);
            tests++;
        }
        assert_true(vs_rec_learn(r, &cust[c], VS_EVENT_VIEW, id, 1700000000000LL + e) >= 0);
    }
    assert_true(tests > 500);
    /* Chance within the right half is 10/47 or so; popularity sees mostly the other half. */
    assert_true(hits_model > 2 * hits_pop);
    assert_true(hits_model > tests / 10);
    free(cust);
    vs_rec_free(r);
}

/*
 * Two logs where one signal alone predicts the next item. "Best-sellers": every view is of a
 * steeply popular item, so recent popularity predicts and co-occurrence is noise. "Bundles":
 * customers browse one of forty bundles of ten items, all equally popular, so co-occurrence
 * predicts and popularity is noise. Prequential, as `eval recommend` runs: the list, then the
 * test of the blend's mixes on the item, then learning from it. Returns HR@10 hits.
 */
enum adapt_log { BEST_SELLERS, BUNDLES };
static int replay_for_adapt(enum adapt_log log, int adapt, int events, double margin,
                            struct vs_rec_blend *blend, int *tests, int *pop_hits)
{
    struct vs_rec_params p = small_params();
    p.adapt = adapt;
    p.adapt_halflife = 300;
    p.adapt_margin = margin;
    struct vs_rec *r = make(&p);
    enum { CUSTOMERS = 400 };
    struct vs_rec_customer *cust = calloc(CUSTOMERS, sizeof(*cust));
    int *bundle = calloc(CUSTOMERS, sizeof(int));
    float *pop = malloc(400 * sizeof(float));
    uint64_t s = 99;
    int hits = 0;
    *tests = *pop_hits = 0;
    for (int e = 0; e < events; e++) {
        int c = (int)(rnd(&s) % CUSTOMERS), item;
        if (log == BEST_SELLERS) {
            /* item k with probability about 1 / (k + 1) among 400 */
            double u = (double)(rnd(&s) % 1000000) / 1e6;
            item = (int)pow(400.0, u) - 1;
        } else {
            if (cust[c].interactions == 0 || rnd(&s) % 8 == 0) {
                bundle[c] = (int)(rnd(&s) % 40);
            }
            item = bundle[c] * 10 + (int)(rnd(&s) % 10);
        }
        char id[16];
        snprintf(id, sizeof(id), "i%d", item);
        int32_t row = vs_mf_find(vs_rec_mf(r), id);
        int fresh = row >= 0 && cust[c].interactions > 0;
        for (int k = 0; fresh && k < cust[c].n_recent; k++) {
            fresh = cust[c].recent[k] != row;
        }
        if (fresh) {
            struct vs_rec_entry list[10];
            int n = vs_rec_top_test(r, &cust[c], 10, cust[c].recent, cust[c].n_recent, list, row);
            for (int k = 0; k < n; k++) {
                hits += list[k].item == row;
            }
            (*tests)++;
            /* Recent popularity alone, for reference. */
            int32_t count = vs_mf_items(vs_rec_mf(r)), idx[10];
            memcpy(pop, vs_pop_scaled(vs_rec_pop(r)), sizeof(float) * (size_t)count);
            for (int k = 0; k < cust[c].n_recent; k++) {
                pop[cust[c].recent[k]] = -INFINITY;
            }
            n = vs_rec_select(pop, count, 10, idx);
            for (int k = 0; k < n; k++) {
                *pop_hits += idx[k] == row;
            }
        }
        assert_true(vs_rec_learn(r, &cust[c], VS_EVENT_VIEW, id, 1700000000000LL + e) >= 0);
    }
    *blend = vs_rec_blend(r);
    free(pop);
    free(bundle);
    free(cust);
    vs_rec_free(r);
    return hits;
}

static void adapt_follows_the_signal_that_predicts(void **state)
{
    struct vs_rec_params d;
    vs_rec_params_default(&d);
    struct vs_rec_blend fixed_b, adapt_b;
    int tests, pop, pop2;
    /* Best-sellers: the mix moves to popularity and comes within 3 % of popularity alone; the
     * configured blend, which trusts co-occurrence, stays more than 5 % behind it. */
    int fixed = replay_for_adapt(BEST_SELLERS, 0, 16000, 4, &fixed_b, &tests, &pop);
    int adapted = replay_for_adapt(BEST_SELLERS, 1, 16000, 4, &adapt_b, &tests, &pop2);
    print_message("best-sellers: HR@10 hits of %d tests: fixed %d, adapted %d, popularity %d\n",
                  tests, fixed, adapted, pop);
    assert_true(tests > 5000 && pop == pop2);
    assert_true(fixed_b.trending == d.blend_trending && fixed_b.tests == 0);
    assert_true(adapt_b.tests == tests);
    assert_true(adapt_b.trending >= 40 * d.blend_trending);
    assert_true(fixed * 100 < pop * 95);
    assert_true(adapted * 100 >= pop * 97);
    /* Bundles: co-occurrence keeps the lead (trending stays far below it), nothing is lost. */
    fixed = replay_for_adapt(BUNDLES, 0, 16000, 4, &fixed_b, &tests, &pop);
    adapted = replay_for_adapt(BUNDLES, 1, 16000, 4, &adapt_b, &tests, &pop2);
    print_message("bundles: HR@10 hits of %d tests: fixed %d, adapted %d, popularity %d\n", tests,
                  fixed, adapted, pop);
    assert_true(adapt_b.tests == tests && tests > 5000);
    assert_true(adapt_b.trending < adapt_b.together / 2);
    assert_true(adapted * 100 >= fixed * 97);
    assert_true(adapted > 3 * pop);
    /* A short log where the mixes differ little: its hundred-odd tests move the blend off the
     * configured one only without the margin. */
    replay_for_adapt(BUNDLES, 1, 500, 0, &adapt_b, &tests, &pop);
    assert_true(adapt_b.tests == tests && tests > 100);
    assert_true(adapt_b.model != d.blend_model || adapt_b.trending != d.blend_trending);
    replay_for_adapt(BUNDLES, 1, 500, 4, &adapt_b, &tests, &pop);
    assert_true(adapt_b.model == d.blend_model && adapt_b.trending == d.blend_trending);
}

static void cooc_is_bounded(void **state)
{
    char err[64];
    struct vs_cooc *c = vs_cooc_new(4, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(vs_cooc_reserve(c, 100), 0);
    for (int rep = 0; rep < 10; rep++) {
        assert_int_equal(vs_cooc_add(c, 0, 1, 1.0f), 0); /* the heavy neighbour */
    }
    for (int j = 2; j < 100; j++) {
        assert_int_equal(vs_cooc_add(c, 0, j, 1.0f), 0);
    }
    int filled = 0;
    for (int s = 0; s < 4; s++) {
        filled += vs_cooc_neighbours(c, 0)[s] >= 0;
    }
    assert_int_equal(filled, 4);
    assert_true(vs_cooc_get(c, 0, 1) == 10.0f);
    assert_true(vs_cooc_get(c, 0, 99) == 1.0f); /* the newest took the lightest slot */
    assert_true(vs_cooc_total(c, 0) == 108.0f);
    assert_int_equal(vs_cooc_add(c, 0, 0, 1.0f), VS_EINVAL);
    assert_int_equal(vs_cooc_add(c, 0, 5, NAN), VS_EINVAL);
    assert_int_equal(vs_cooc_add(c, 0, 100, 1.0f), VS_EINVAL);
    vs_cooc_free(c);
}

/* Many random adds, at row sizes with and without a tail beyond multiples of four, against a
 * plain model of a row: find the neighbour or the first free slot, else replace the first of
 * the lightest slots. */
static void cooc_matches_a_plain_model(void **state)
{
    (void)state;
    const int sizes[] = {1, 3, 4, 7, 16, 64};
    char err[64];
    for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
        int m = sizes[z];
        enum { ITEMS = 40 };
        struct vs_cooc *c = vs_cooc_new(m, err, sizeof(err));
        assert_non_null(c);
        assert_int_equal(vs_cooc_reserve(c, ITEMS), 0);
        int32_t nb[ITEMS][64];
        float wt[ITEMS][64];
        memset(nb, 0xff, sizeof(nb));
        memset(wt, 0, sizeof(wt));
        uint64_t s = 7 + (uint64_t)m;
        for (int e = 0; e < 20000; e++) {
            int32_t i = (int32_t)(rnd(&s) % ITEMS), j = (int32_t)(rnd(&s) % ITEMS);
            float w = (float)(1 + rnd(&s) % 4) * 0.25f;
            if (i == j) {
                continue;
            }
            assert_int_equal(vs_cooc_add(c, i, j, w), 0);
            int k = 0;
            while (k < m && nb[i][k] != j && nb[i][k] >= 0) {
                k++;
            }
            if (k == m) {
                k = 0;
                for (int t = 1; t < m; t++) {
                    k = wt[i][t] < wt[i][k] ? t : k;
                }
                wt[i][k] = 0;
            } else if (nb[i][k] != j) {
                wt[i][k] = 0;
            }
            nb[i][k] = j;
            wt[i][k] += w;
        }
        for (int32_t i = 0; i < ITEMS; i++) {
            assert_memory_equal(vs_cooc_neighbours(c, i), nb[i], (size_t)m * sizeof(int32_t));
            assert_memory_equal(vs_cooc_weights(c, i), wt[i], (size_t)m * sizeof(float));
        }
        vs_cooc_free(c);
    }
}

/* A checkpoint written with one number of neighbours per item restores into another: what fits
 * as it was, else the heaviest neighbours in their order. */
static void cooc_checkpoint_across_sizes(void **state)
{
    (void)state;
    char err[64];
    struct vs_cooc *c = vs_cooc_new(4, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(vs_cooc_reserve(c, 10), 0);
    const float w0[] = {1, 5, 2, 4}; /* item 0: neighbours 1..4 */
    for (int j = 1; j <= 4; j++) {
        assert_int_equal(vs_cooc_add(c, 0, j, w0[j - 1]), 0);
    }
    assert_int_equal(vs_cooc_add(c, 1, 7, 3), 0);
    size_t cap = vs_cooc_encode_chunk(c, 0, NULL, 0);
    void *buf = malloc(cap);
    size_t len = vs_cooc_encode_chunk(c, 0, buf, cap);
    assert_true(len > 0 && len <= cap);
    const int sizes[] = {2, 4, 6};
    for (int z = 0; z < 3; z++) {
        struct vs_cooc *d = vs_cooc_new(sizes[z], err, sizeof(err));
        assert_non_null(d);
        assert_int_equal(vs_cooc_reserve(d, 10), 0);
        assert_int_equal(vs_cooc_decode_chunk(d, 0, buf, len), 0);
        const int32_t *nb = vs_cooc_neighbours(d, 0);
        const float *w = vs_cooc_weights(d, 0);
        if (sizes[z] == 2) {
            assert_int_equal(nb[0], 2); /* weights 5 and 4, in slot order */
            assert_int_equal(nb[1], 4);
            assert_true(w[0] == 5 && w[1] == 4);
        } else {
            for (int s = 0; s < sizes[z]; s++) {
                assert_int_equal(nb[s], s < 4 ? s + 1 : -1);
                assert_true(w[s] == (s < 4 ? w0[s] : 0));
            }
        }
        assert_int_equal(vs_cooc_neighbours(d, 1)[0], 7);
        assert_true(vs_cooc_get(d, 1, 7) == 3);
        assert_int_equal(vs_cooc_neighbours(d, 1)[1], -1);
        assert_true(vs_cooc_total(d, 0) == 12 && vs_cooc_total(d, 1) == 3);
        vs_cooc_free(d);
    }
    free(buf);
    vs_cooc_free(c);
}

static void popularity_decays(void **state)
{
    char err[64];
    double tau = 1000.0;
    struct vs_pop *p = vs_pop_new(tau, err, sizeof(err));
    assert_non_null(p);
    assert_int_equal(vs_pop_reserve(p, 3), 0);
    assert_int_equal(vs_pop_add(p, 0, 4.0, 10000), 0);
    assert_int_equal(vs_pop_add(p, 1, 1.0, 10000 + 693), 0); /* about one half-life later */
    assert_true(fabs(vs_pop_count(p, 0) - 2.0) < 0.01);
    assert_true(fabs(vs_pop_count(p, 1) - 1.0) < 1e-6);
    /* Far into the future the common scale is rebased, and the counts stay right. */
    assert_int_equal(vs_pop_add(p, 2, 1.0, 10000 + 100 * 1000), 0);
    assert_true(fabs(vs_pop_count(p, 2) - 1.0) < 1e-6);
    assert_true(vs_pop_count(p, 0) < 1e-30);
    assert_true(vs_pop_scaled(p)[2] > vs_pop_scaled(p)[1]);
    assert_int_equal(vs_pop_add(p, 2, -5.0, 10000 + 100 * 1000), 0);
    assert_true(vs_pop_count(p, 2) == 0.0);
    assert_int_equal(vs_pop_add(p, 2, NAN, 1), VS_EINVAL);
    vs_pop_free(p);
}

static void bad_events_and_take_backs(void **state)
{
    struct vs_rec_params p = small_params();
    struct vs_rec *r = make(&p);
    struct vs_rec_customer cu;
    memset(&cu, 0, sizeof(cu));
    assert_int_equal(vs_rec_learn(r, &cu, VS_EVENT_VIEW, NULL, 1), VS_EINVAL);
    assert_int_equal(vs_rec_learn(r, &cu, VS_EVENT_VIEW, "", 1), VS_EINVAL);
    assert_int_equal(vs_rec_learn(r, &cu, VS_EVENT_REFUND, "never-seen", 1), VS_ENOTFOUND);
    assert_int_equal(vs_mf_items(vs_rec_mf(r)), 0);
    assert_int_equal(cu.interactions, 0);
    struct vs_rec_stats st = vs_rec_stats(r);
    assert_int_equal(st.no_item, 2);
    assert_int_equal(st.unknown_item, 1);
    assert_int_equal(st.learned, 0);

    assert_true(vs_rec_learn(r, &cu, VS_EVENT_ADD_TO_CART, "a", 2) == 0);
    assert_true(vs_rec_learn(r, &cu, VS_EVENT_VIEW, "b", 3) == 1);
    assert_int_equal(cu.n_recent, 2);
    assert_true(cu.recent_w[1] == 4.0f);
    /* Removing from the cart takes its weight away: the item leaves the recent list. */
    assert_true(vs_rec_learn(r, &cu, VS_EVENT_REMOVE_FROM_CART, "a", 4) == 0);
    assert_int_equal(cu.n_recent, 1);
    assert_int_equal(cu.recent[0], 1);
    assert_true(vs_rec_learn(r, &cu, VS_EVENT_PURCHASE, "b", 5) == 1);
    assert_true(cu.recent_w[0] == 11.0f);
    assert_true(cu.recent_flags[0] & VS_REC_BOUGHT);
    assert_int_equal(cu.n_bought, 1);
    assert_int_equal(vs_rec_stats(r).learned, 4);
    char long_id[80];
    memset(long_id, 'z', 79);
    long_id[79] = 0;
    assert_int_equal(vs_rec_learn(r, &cu, VS_EVENT_VIEW, long_id, 6), VS_ETOOBIG);
    assert_int_equal(vs_rec_stats(r).bad_item, 1);
    vs_rec_free(r);

    char err[160];
    vs_rec_params_default(&p);
    assert_int_equal(vs_rec_params_set(&p, "recommend.k", "abc", err, sizeof(err)), VS_ECONFIG);
    assert_non_null(strstr(err, "recommend.k"));
    assert_int_equal(vs_rec_params_set(&p, "recommend.nope", "1", err, sizeof(err)), VS_ECONFIG);
    assert_int_equal(vs_rec_params_set(&p, "recommend.k", "65", err, sizeof(err)), 0);
    assert_int_equal(vs_rec_params_check(&p, err, sizeof(err)), VS_ECONFIG);
    assert_non_null(strstr(err, "recommend.k"));
}

/* ==== Checkpoints through an in-memory key-value store ==== */

struct kv {
    char key[64][32];
    void *val[64];
    size_t len[64];
    int n, puts;
};

static int kv_put(void *arg, const char *key, const void *val, size_t len)
{
    struct kv *kv = arg;
    int i = 0;
    while (i < kv->n && strcmp(kv->key[i], key) != 0) {
        i++;
    }
    if (i == kv->n) {
        assert_true(kv->n < 64);
        snprintf(kv->key[kv->n++], 32, "%s", key);
    } else {
        free(kv->val[i]);
    }
    kv->val[i] = malloc(len ? len : 1);
    memcpy(kv->val[i], val, len);
    kv->len[i] = len;
    kv->puts++;
    return 0;
}

static int kv_get(void *arg, const char *key, void **val, size_t *len)
{
    struct kv *kv = arg;
    for (int i = 0; i < kv->n; i++) {
        if (!strcmp(kv->key[i], key)) {
            *val = malloc(kv->len[i] ? kv->len[i] : 1);
            memcpy(*val, kv->val[i], kv->len[i]);
            *len = kv->len[i];
            return 0;
        }
    }
    return VS_ENOTFOUND;
}

static void kv_free(struct kv *kv)
{
    for (int i = 0; i < kv->n; i++) {
        free(kv->val[i]);
    }
}

static int kv_equal(const struct kv *a, const struct kv *b)
{
    if (a->n != b->n) {
        return 0;
    }
    for (int i = 0; i < a->n; i++) {
        if (strcmp(a->key[i], b->key[i]) || a->len[i] != b->len[i] ||
            memcmp(a->val[i], b->val[i], a->len[i])) {
            return 0;
        }
    }
    return 1;
}

/* Two recommenders that learned the same events give the same lists and save the same bytes. */
static void assert_same_model(struct vs_rec *a, struct vs_rec_customer *ca, struct vs_rec *c,
                              struct vs_rec_customer *cc, int n_cust)
{
    struct vs_rec_entry la[20], lc[20];
    for (int u = 0; u < n_cust; u++) {
        int na = vs_rec_top(a, &ca[u], 20, NULL, 0, la);
        int nc = vs_rec_top(c, &cc[u], 20, NULL, 0, lc);
        assert_int_equal(na, nc);
        assert_memory_equal(la, lc, sizeof(la[0]) * (size_t)na);
    }
    struct kv k2, k3;
    memset(&k2, 0, sizeof(k2));
    memset(&k3, 0, sizeof(k3));
    assert_int_equal(vs_rec_save(a, kv_put, &k2), 0);
    assert_int_equal(vs_rec_save(c, kv_put, &k3), 0);
    assert_true(kv_equal(&k2, &k3));
    kv_free(&k2);
    kv_free(&k3);
}

static void checkpoint_round_trip_and_determinism(void **state)
{
    struct vs_rec_params p = small_params();
    struct vs_rec *a = make(&p), *b = make(&p);
    struct vs_rec_customer ca[60], cb[60];
    memset(ca, 0, sizeof(ca));
    memset(cb, 0, sizeof(cb));
    fill_shop(a, ca, 60, 8);
    fill_shop(b, cb, 60, 8);
    struct kv ka, kb;
    memset(&ka, 0, sizeof(ka));
    memset(&kb, 0, sizeof(kb));
    assert_int_equal(vs_rec_save(a, kv_put, &ka), 0);
    assert_int_equal(vs_rec_save(b, kv_put, &kb), 0);
    assert_true(kv_equal(&ka, &kb)); /* same events, same bytes */
    assert_memory_equal(ca, cb, sizeof(ca));

    /* Nothing changed: nothing written. One event: only its chunks and the metas. */
    ka.puts = 0;
    assert_int_equal(vs_rec_save(a, kv_put, &ka), 0);
    assert_int_equal(ka.puts, 0);
    learn(a, &ca[0], VS_EVENT_VIEW, 3, 1800000000000LL);
    assert_int_equal(vs_rec_save(a, kv_put, &ka), 0);
    assert_true(ka.puts > 0 && ka.puts <= 6);

    /* A restart from the store resumes the same model. */
    struct vs_rec *c = make(&p);
    char err[256];
    assert_int_equal(vs_rec_load(c, kv_get, &ka, err, sizeof(err)), 0);
    assert_int_equal(vs_mf_items(vs_rec_mf(c)), vs_mf_items(vs_rec_mf(a)));
    assert_int_equal(vs_rec_stats(c).learned, vs_rec_stats(a).learned);
    struct vs_rec_customer cc[60];
    memcpy(cc, ca, sizeof(ca));
    for (int e = 0; e < 200; e++) {
        learn(a, &ca[e % 60], VS_EVENT_VIEW, (e * 7) % 230, 1800000001000LL + e);
        learn(c, &cc[e % 60], VS_EVENT_VIEW, (e * 7) % 230, 1800000001000LL + e);
    }
    assert_same_model(a, ca, c, cc, 60);

    /* A fresh store loads as an empty model; a store with a chunk missing is refused. */
    struct kv empty;
    memset(&empty, 0, sizeof(empty));
    struct vs_rec *d = make(&p);
    assert_int_equal(vs_rec_load(d, kv_get, &empty, err, sizeof(err)), 0);
    assert_int_equal(vs_mf_items(vs_rec_mf(d)), 0);
    vs_rec_free(d);
    for (int i = 0; i < ka.n; i++) {
        if (!strcmp(ka.key[i], "cooc/0")) {
            snprintf(ka.key[i], 32, "renamed");
        }
    }
    d = make(&p);
    assert_int_equal(vs_rec_load(d, kv_get, &ka, err, sizeof(err)), VS_ECORRUPT);
    assert_non_null(strstr(err, "cooc/0"));
    vs_rec_free(d);
    /* A model saved with another factor dimension is refused with the key named. */
    struct vs_rec_params p4 = small_params();
    p4.mf.k = 4;
    d = make(&p4);
    assert_int_not_equal(vs_rec_load(d, kv_get, &kb, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "recommend.k"));
    vs_rec_free(d);

    kv_free(&ka);
    kv_free(&kb);
    vs_rec_free(a);
    vs_rec_free(b);
    vs_rec_free(c);
}

/* Prequential events of best-sellers (item k with probability about 1 / (k + 1) of 200):
 * before each is learned, the blend's mixes are tested on it. */
static void tested_events(struct vs_rec *r, struct vs_rec_customer *cust, int n_cust, int events,
                          uint64_t *s, int64_t ts0)
{
    for (int e = 0; e < events; e++) {
        int c = (int)(rnd(s) % (uint64_t)n_cust);
        int item = (int)pow(200.0, (double)(rnd(s) % 1000000) / 1e6) - 1;
        char id[16];
        snprintf(id, sizeof(id), "i%d", item);
        int32_t row = vs_rec_adapt_target(r, &cust[c], VS_EVENT_VIEW, id);
        if (row >= 0) {
            vs_rec_top_test(r, &cust[c], 0, NULL, 0, NULL, row);
        }
        assert_true(vs_rec_learn(r, &cust[c], VS_EVENT_VIEW, id, ts0 + e) >= 0);
    }
}

static int kv_find(const struct kv *kv, const char *key)
{
    for (int i = 0; i < kv->n; i++) {
        if (!strcmp(kv->key[i], key)) {
            return i;
        }
    }
    fail_msg("no key %s", key);
    return -1;
}

/* Loading kv into a fresh recommender with params p fails with rc, the message naming what. */
static void assert_load_fails(struct vs_rec_params *p, struct kv *kv, int rc, const char *what)
{
    char err[256];
    struct vs_rec *d = make(p);
    assert_int_equal(vs_rec_load(d, kv_get, kv, err, sizeof(err)), rc);
    assert_non_null(strstr(err, what));
    vs_rec_free(d);
}

/* The choice of the blend is part of the model: checkpointed, resumed, and a version-1 store
 * (from before it existed) loads with the configured blend. */
static void adapt_state_survives_a_restart(void **state)
{
    struct vs_rec_params p = small_params();
    p.adapt_sample = 2;
    p.adapt_halflife = 200;
    struct vs_rec *a = make(&p);
    struct vs_rec_customer ca[60];
    memset(ca, 0, sizeof(ca));
    uint64_t s = 5;
    tested_events(a, ca, 60, 4000, &s, 1700000000000LL);
    struct vs_rec_blend ba = vs_rec_blend(a);
    assert_true(ba.tests > 500);
    assert_true(ba.trending > p.blend_trending); /* moved towards popularity */
    struct kv ka;
    memset(&ka, 0, sizeof(ka));
    assert_int_equal(vs_rec_save(a, kv_put, &ka), 0);

    struct vs_rec *c = make(&p);
    char err[256];
    assert_int_equal(vs_rec_load(c, kv_get, &ka, err, sizeof(err)), 0);
    struct vs_rec_blend bc = vs_rec_blend(c);
    assert_true(bc.model == ba.model && bc.trending == ba.trending && bc.tests == ba.tests);
    struct vs_rec_customer cc[60];
    memcpy(cc, ca, sizeof(ca));
    uint64_t s2 = s;
    tested_events(a, ca, 60, 2000, &s, 1700000010000LL);
    tested_events(c, cc, 60, 2000, &s2, 1700000010000LL);
    assert_same_model(a, ca, c, cc, 60);

    /* Version 1 of "meta" ended after the stats: it loads, with the configured blend. */
    struct v1 {
        uint32_t magic, version;
        int32_t items, pad;
        struct vs_rec_stats stats;
    };
    int m = kv_find(&ka, "meta");
    struct v1 old;
    memcpy(&old, ka.val[m], sizeof(old));
    assert_int_equal(old.version, 3);
    old.version = 1;
    memcpy(ka.val[m], &old, sizeof(old));
    size_t v2_len = ka.len[m];
    ka.len[m] = sizeof(old);
    struct vs_rec *d = make(&p);
    assert_int_equal(vs_rec_load(d, kv_get, &ka, err, sizeof(err)), 0);
    struct vs_rec_blend bd = vs_rec_blend(d);
    assert_true(bd.tests == 0 && bd.model == p.blend_model && bd.trending == p.blend_trending);
    assert_int_equal(vs_rec_stats(d).learned, vs_rec_stats(a).learned - 2000);
    vs_rec_free(d);
    /* A version-2 blob cut short, or naming a mix that does not exist, is refused. */
    old.version = 2;
    memcpy(ka.val[m], &old, sizeof(old));
    d = make(&p);
    assert_int_equal(vs_rec_load(d, kv_get, &ka, err, sizeof(err)), VS_ECORRUPT);
    vs_rec_free(d);
    ka.len[m] = v2_len;
    old.version = 3;
    memcpy(ka.val[m], &old, sizeof(old));
    int32_t bad = VS_REC_MIXES;
    memcpy((char *)ka.val[m] + sizeof(old), &bad, sizeof(bad));
    assert_load_fails(&p, &ka, VS_ECORRUPT, "meta");

    kv_free(&ka);
    vs_rec_free(a);
    vs_rec_free(c);
}

/* ==== Full ALS sweeps ==== */

/* A runner whose work runs only when it is waited for: a sweep that is still running at every
 * boundary and at every checkpoint, the hardest case for determinism. */
struct deferred {
    void (*work)(void *);
    void *arg;
    int submits, waits;
};

static void *deferred_submit(void *ctx, void (*work)(void *), void *arg)
{
    struct deferred *d = ctx;
    assert_null(d->work); /* one sweep at a time */
    d->work = work;
    d->arg = arg;
    d->submits++;
    return d;
}

static void deferred_wait(void *ctx, void *handle)
{
    struct deferred *d = ctx;
    assert_ptr_equal(handle, d);
    assert_non_null(d->work);
    d->work(d->arg);
    d->work = NULL;
    d->waits++;
}

static struct vs_rec_params sweep_params(void)
{
    struct vs_rec_params p = small_params();
    p.als_interval_ms = 60000;
    p.als_window = 5000; /* wraps: more than 5000 events below */
    p.als_iterations = 1;
    return p;
}

/* Taste-led events: customer c likes items of c % 4's quarter of 200, a minute of event time
 * per 150 events. */
static void taste_events(struct vs_rec *r, struct vs_rec_customer *cust, int n_cust, int from,
                         int to, uint64_t *s)
{
    for (int e = from; e < to; e++) {
        int c = (int)(rnd(s) % (uint64_t)n_cust);
        int item = (c % 4) * 50 + (int)(rnd(s) % 50);
        if (rnd(s) % 5 == 0) {
            item = (int)(rnd(s) % 200);
        }
        learn(r, &cust[c], e % 17 == 0 ? VS_EVENT_PURCHASE : VS_EVENT_VIEW, item,
              1700000000000LL + (int64_t)e * 400);
    }
}

static void sweeps_apply_at_boundaries_and_survive_a_restart(void **state)
{
    struct vs_rec_params p = sweep_params();
    struct deferred da = {0}, dc = {0};
    struct vs_rec_runner ra = {deferred_submit, deferred_wait, &da};
    struct vs_rec_runner rc_ = {deferred_submit, deferred_wait, &dc};
    struct vs_rec *a = make(&p);
    vs_rec_set_runner(a, &ra);
    struct vs_rec_customer ca[80];
    memset(ca, 0, sizeof(ca));
    uint64_t s = 21;
    /* About 20 minutes; boundaries at every whole minute, the 20th at event 2950: the restart
     * below resumes right at it. */
    taste_events(a, ca, 80, 0, 2950, &s);
    struct vs_rec_sweeps sw = vs_rec_sweeps(a);
    /* The first boundary only sets the clock; each later one applies the sweep started at the
     * one before and starts the next, which is still running. */
    assert_true(da.submits >= 18 && da.submits <= 21);
    assert_int_equal(da.waits, da.submits - 1);
    assert_int_equal(sw.sweeps, da.waits);
    assert_int_equal(sw.failures, 0);
    assert_true(sw.running && sw.solved > 150);

    /* A restart from a commit made while a sweep runs resumes the same model: the sweep's
     * snapshot, the log and the boundary are part of the checkpoint. */
    struct kv ka;
    memset(&ka, 0, sizeof(ka));
    assert_int_equal(vs_rec_save(a, kv_put, &ka), 0);
    kv_find(&ka, "als/sweep");
    kv_find(&ka, "als/log/0");
    struct vs_rec *c = make(&p);
    vs_rec_set_runner(c, &rc_);
    char err[256];
    assert_int_equal(vs_rec_load(c, kv_get, &ka, err, sizeof(err)), 0);
    assert_int_equal(dc.submits, 1); /* the sweep in flight, started again */
    assert_true(vs_rec_sweeps(c).running);
    struct vs_rec_customer cc[80];
    memcpy(cc, ca, sizeof(ca));
    uint64_t s2 = s;
    taste_events(a, ca, 80, 2950, 6000, &s);
    taste_events(c, cc, 80, 2950, 6000, &s2);
    assert_true(vs_rec_sweeps(a).sweeps > sw.sweeps);
    assert_same_model(a, ca, c, cc, 80);

    /* A recommender without the log (sweeps off) learns something else from the same events. */
    struct vs_rec_params off = small_params();
    struct vs_rec *b = make(&off);
    struct vs_rec_customer cb[80];
    memset(cb, 0, sizeof(cb));
    uint64_t s3 = 21;
    taste_events(b, cb, 80, 0, 6000, &s3);
    assert_memory_not_equal(vs_mf_row(vs_rec_mf(a), 0), vs_mf_row(vs_rec_mf(b), 0),
                            sizeof(float) * 8 * 200);
    for (int i = 0; i < 200 * 8; i++) {
        assert_true(isfinite(vs_mf_row(vs_rec_mf(a), 0)[i]));
    }
    /* A different window cannot continue the stored log: refused, naming the key. */
    struct vs_rec_params p2 = sweep_params();
    p2.als_window = 4000;
    assert_load_fails(&p2, &ka, VS_ECONFIG, "recommend.als.window");
    /* A snapshot blob that does not fit the model is refused. */
    ka.len[kv_find(&ka, "als/sweep")] -= 4;
    assert_load_fails(&p, &ka, VS_ECORRUPT, "als/sweep");

    kv_free(&ka);
    vs_rec_free(a);
    vs_rec_free(b);
    vs_rec_free(c);
}

static void last_list_and_live_check(void **state)
{
    struct vs_rec_customer cu;
    memset(&cu, 0, sizeof(cu));
    assert_int_equal(vs_rec_in_last_list(&cu, 3), -1);
    struct vs_rec_entry l[3] = {
        {5, 1, VS_REC_MODEL, -1}, {3, 0.5f, VS_REC_TRENDING, -1}, {9, 0.2f, VS_REC_TOGETHER, 1}};
    cu.views_since_sent = 4;
    vs_rec_remember_list(&cu, l, 3, 1000);
    assert_int_equal(cu.views_since_sent, 0);
    assert_int_equal(cu.last_sent_ts, 1000);
    assert_int_equal(vs_rec_in_last_list(&cu, 3), 1);
    assert_int_equal(vs_rec_in_last_list(&cu, 4), 0);
}

/* A list is due after a purchase, an add-to-cart or every every_views views, and never within
 * min_interval_ms of the last one sent; the decision comes before any scoring. */
static void list_due_follows_triggers_and_interval(void **state)
{
    struct vs_rec_params p = small_params();
    p.every_views = 3;
    p.min_interval_ms = 10000;
    struct vs_rec *r = make(&p);
    struct vs_rec_customer cu;
    memset(&cu, 0, sizeof(cu));
    struct vs_rec_entry l[1] = {{0, 1, VS_REC_MODEL, -1}};
    int64_t ts = 1700000000000LL;
    assert_int_equal(vs_rec_list_due(r, &cu, VS_EVENT_VIEW, ts), VS_REC_NOT_DUE);
    assert_int_equal(vs_rec_list_due(r, &cu, VS_EVENT_VIEW, ts + 1), VS_REC_NOT_DUE);
    assert_int_equal(vs_rec_list_due(r, &cu, VS_EVENT_VIEW, ts + 2), VS_REC_DUE);
    vs_rec_remember_list(&cu, l, 1, ts + 2);
    /* Within the interval even a purchase waits; taking back never asks for a list. */
    assert_int_equal(vs_rec_list_due(r, &cu, VS_EVENT_PURCHASE, ts + 9000), VS_REC_THROTTLED);
    assert_int_equal(vs_rec_list_due(r, &cu, VS_EVENT_REFUND, ts + 20000), VS_REC_NOT_DUE);
    assert_int_equal(vs_rec_list_due(r, &cu, VS_EVENT_ADD_TO_CART, ts + 10002), VS_REC_DUE);
    /* Views counted while throttled still count toward the next list. */
    vs_rec_remember_list(&cu, l, 1, ts + 10002);
    assert_int_equal(vs_rec_list_due(r, &cu, VS_EVENT_VIEW, ts + 10003), VS_REC_NOT_DUE);
    assert_int_equal(vs_rec_list_due(r, &cu, VS_EVENT_VIEW, ts + 10004), VS_REC_NOT_DUE);
    assert_int_equal(vs_rec_list_due(r, &cu, VS_EVENT_VIEW, ts + 10005), VS_REC_THROTTLED);
    assert_int_equal(vs_rec_list_due(r, &cu, VS_EVENT_VIEW, ts + 30000), VS_REC_DUE);
    assert_int_equal(cu.views_since_sent, 4);
    vs_rec_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(select_matches_sort),
        cmocka_unit_test(select_matches_sort_on_shapes),
        cmocka_unit_test(count_better_matches_a_plain_count),
        cmocka_unit_test(top_excludes_and_matches_brute_force),
        cmocka_unit_test(model_beats_popularity_on_planted_taste),
        cmocka_unit_test(adapt_follows_the_signal_that_predicts),
        cmocka_unit_test(cooc_is_bounded),
        cmocka_unit_test(cooc_matches_a_plain_model),
        cmocka_unit_test(cooc_checkpoint_across_sizes),
        cmocka_unit_test(popularity_decays),
        cmocka_unit_test(bad_events_and_take_backs),
        cmocka_unit_test(checkpoint_round_trip_and_determinism),
        cmocka_unit_test(adapt_state_survives_a_restart),
        cmocka_unit_test(sweeps_apply_at_boundaries_and_survive_a_restart),
        cmocka_unit_test(last_list_and_live_check),
        cmocka_unit_test(list_due_follows_triggers_and_interval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
