/*
 * The synthetic shop (see gen.h): a catalogue, a population of customers, and their sessions
 * played in global event-time order.
 *
 * The model, in the order the code builds it:
 *
 * - Catalogue. Categories of different sizes and price levels (a log-normal median per
 *   category, a log-normal spread of item prices around it). Within a category, items are split
 *   into a few styles, and each item has a Zipf-like popularity (weight 1/rank within its
 *   category). A (category, style) pair is the latent cluster a recommender can discover.
 * - Customers. Each arrives at a uniform time in the first half of the period with a first
 *   purchase, and has one to three preferred categories (Dirichlet weights) with a preferred
 *   style in each; views mostly come from those clusters. Purchases follow BG/NBD: while active,
 *   purchases are a Poisson process with rate lambda ~ Gamma(r, alpha); after each repeat
 *   purchase the customer drops out with probability p ~ Beta(a, b). Thinning the Poisson
 *   process shows that the dropout purchase comes at an Exponential(lambda * p) time after
 *   arrival, and the other repeat purchases at rate lambda * (1 - p) before it: that is how it
 *   is drawn, so the dropout time is known up front and fraud can be planted before it. Browsing
 *   sessions without a purchase come at a fixed ratio to purchase sessions. A customer has a
 *   home country and address, one or two devices and one payment instrument.
 * - Calibration. Given each customer's draws, the expected number of sessions of the whole
 *   population has a closed form; the events per session are measured by a short pilot run of
 *   the session code; one scale factor on all rates is solved for by bisection so that the
 *   expected event count meets the requested one.
 * - Timeline. A binary heap holds every active customer keyed by the time of their next event.
 *   A customer's session is built when its start reaches the top of the heap, then emitted
 *   event by event; so memory is bounded by the sessions open at one moment, not by the stream.
 * - Fraud, planted on distinct customers during their active life: card-testing bursts (a new
 *   device trying many new cards with cheap items within minutes), account takeovers (a new
 *   device in a country no customer lives in, large orders) and amount anomalies (an honest
 *   session whose order is ten or more times the customer's usual).
 *
 * Two GSL Mersenne Twisters, one for the population and one for the timeline, are seeded from
 * the seed; the heap breaks ties by customer index; so one seed gives one byte stream.
 */
#include "decimal.h"
#include "gen.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <librdkafka/rdkafka.h>

#include <valuestream/error.h>

#include "codec.h"

#define DAY_MS 86400000.0
#define SEC_MS 1000

/* ==== Shape of the shop: fixed, the options only scale it ==== */

#define LAMBDA_SHAPE 3.0 /* r of BG/NBD: heterogeneity of purchase rates */
#define DROPOUT_A 1.2    /* a, b of BG/NBD: p ~ Beta(a, b), mean ~0.09 */
#define DROPOUT_B 12.0
#define BROWSE_PER_PURCHASE 1.0 /* browsing-only sessions per purchase session */
#define ARRIVAL_SPAN 0.5        /* customers arrive over this fraction of the period */
#define VIEWS_EXTRA 1.5         /* Poisson mean of views beyond the items put in the cart */
#define LINES_EXTRA 0.4         /* Poisson mean of order lines beyond the first */
#define BROWSE_ADD_P 0.25       /* a browsing session leaves an abandoned cart */
#define BROWSE_REMOVE_P 0.3     /* ... and takes the item out again */
#define PURCHASE_REMOVE_P 0.15
#define REFUND_P 0.02 /* an order is refunded at the customer's next visit */
#define SECOND_DEVICE_P 0.3
#define SECOND_DEVICE_USE_P 0.35
#define TRAVEL_P 0.004     /* a session from another home country, same device */
#define EXPLORE_P 0.1      /* a view outside the customer's preferred categories */
#define STYLE_LOYALTY 0.85 /* a preferred category is browsed in the preferred style */
#define RECLUSTER_P 0.2    /* a view leaves the session's cluster */
#define MAX_VIEWS_EXTRA 12
#define MAX_LINES 6
#define SESSION_MAX 64 /* > the largest session: a card-testing burst of 20 x 2 events */

#define ZIPF_EXPONENT 1.0 /* popularity of the item of rank k in its category: k^-s */

/* Countries with the first octet of their addresses; the first HOME_COUNTRIES are where
 * customers live, with their share of the population. */
static const struct country {
    const char *code;
    double weight;
    uint8_t octet;
} COUNTRIES[] = {
    {"DE", 0.28, 84},
    {"FR", 0.16, 90},
    {"GB", 0.12, 81},
    {"NL", 0.08, 145},
    {"ES", 0.08, 88},
    {"IT", 0.08, 93},
    {"PL", 0.06, 83},
    {"BE", 0.05, 91},
    {"AT", 0.05, 62},
    {"SE", 0.04, 78},
    /* Never a home: where taken-over accounts and card testers come from. */
    {"BR", 0, 177},
    {"NG", 0, 105},
    {"VN", 0, 113},
    {"ID", 0, 36},
    {"US", 0, 23},
    {"IN", 0, 49},
    {"RU", 0, 95},
    {"CN", 0, 58},
};
#define HOME_COUNTRIES 10
#define ALL_COUNTRIES ((int)(sizeof(COUNTRIES) / sizeof(COUNTRIES[0])))

static const char *const PAY_KINDS[] = {"card", "paypal", "klarna"};
static const double PAY_WEIGHTS[] = {0.7, 0.2, 0.1};

enum session_kind {
    S_BROWSE,
    S_PURCHASE,
    S_FIRST,   /* the arrival purchase */
    S_FINAL,   /* the purchase after which the customer drops out */
    S_ANOMALY, /* an honest session with an absurd order */
    S_CARD_TESTING,
    S_TAKEOVER,
};

/* One event of an open session, before its strings are formatted. */
struct gev {
    int64_t ts;
    double amount;
    uint64_t order; /* 0: none */
    uint32_t item;  /* index */
    uint32_t device, ip, payment;
    int32_t quantity;
    uint8_t type, country, pay_kind, fraud, final, has_amount;
};

struct session {
    uint64_t no;
    int n;
    struct gev ev[SESSION_MAX];
};

/* Who a session's events come from: the customer or a fraudster in their account. */
struct ident {
    uint32_t device, ip, payment;
    uint8_t country, pay_kind;
};

struct customer {
    int64_t arrival_ts;
    int64_t dropout_ts; /* planned start of the final purchase session; INT64_MAX: none */
    int64_t fraud_ts;
    int64_t last_end;
    int64_t next_ts; /* start of the next session */
    double lambda;   /* purchases per day while active */
    double p;        /* dropout probability after a repeat purchase */
    double spend_sum;
    double refund_amount;
    uint64_t refund_order;
    uint32_t orders;
    uint32_t refund_item;
    int32_t refund_qty;
    int32_t session; /* pool index, -1: between sessions */
    uint32_t device[2], ip[2], payment;
    float cum[3];
    uint16_t cats[3];
    uint8_t styles[3];
    uint8_t ncats, country, pay_kind, next_kind, fraud_kind;
    uint16_t pos;
};

struct category {
    int nstyles;
    double weight; /* share of the traffic */
    gsl_ran_discrete_t *style_table[4];
    uint32_t *style_items[4]; /* items of each style */
};

struct hnode {
    int64_t ts;
    uint32_t idx;
};

struct gen {
    struct vs__gen_options o;
    gsl_rng *rng_pop, *rng;
    int64_t end_ts;
    /* catalogue */
    uint32_t nitems, ncats;
    uint32_t *item_cat;
    double *item_price;
    struct category *cats;
    gsl_ran_discrete_t *cat_table;
    uint32_t *cheap, ncheap, *dear, ndear;
    /* population */
    struct customer *cust;
    uint32_t ncust;
    double scale; /* mean purchase rate is LAMBDA_SHAPE * scale per day */
    double events_per_purchase, events_per_browse; /* per session, from the pilot run */
    uint32_t next_device, next_payment;
    uint64_t next_session, next_order, next_event;
    /* timeline */
    struct hnode *heap;
    uint32_t hn;
    struct session **pool;
    int32_t *free_sessions;
    uint32_t npool, nfree;
    /* output */
    FILE *truth;
    int truth_err;
    struct vs__gen_stats st;
    char s_event[24], s_user[24], s_session[24], s_item[24], s_cat[24], s_order[24], s_device[24],
        s_ip[20], s_payment[32];
};

/* ==== Options ==== */

void vs__gen_options_default(struct vs__gen_options *o)
{
    memset(o, 0, sizeof(*o));
    o->customers = 20000;
    o->items = 2000;
    o->events = 1000000;
    o->days = 180;
    o->seed = 1;
    o->start_ts = VS__GEN_DEFAULT_START_TS;
    o->categories = 0;
    o->card_testing_rate = 0.002;
    o->account_takeover_rate = 0.004;
    o->amount_anomaly_rate = 0.005;
}

static int options_check(const struct vs__gen_options *o)
{
    if (o->customers < 1 || o->customers > 50000000 || o->items < 1 || o->items > 50000000 ||
        o->events < 1 || o->days < 1 || o->days > 36500 || o->categories < 0 ||
        o->categories > o->items || o->categories > 65535 || o->start_ts < INT64_C(946684800000)) {
        return VS_EINVAL;
    }
    double rates[3] = {o->card_testing_rate, o->account_takeover_rate, o->amount_anomaly_rate};
    double sum = 0;
    for (int i = 0; i < 3; i++) {
        if (!(rates[i] >= 0 && rates[i] <= 1)) {
            return VS_EINVAL;
        }
        sum += rates[i];
    }
    return sum <= 1 ? 0 : VS_EINVAL;
}

/* ==== Small helpers ==== */

static void fmt_id(char *buf, char prefix, uint64_t v)
{
    buf[0] = prefix;
    vs__put_u64(buf + 1, v);
}

static void fmt_ip(char *buf, uint32_t ip)
{
    char *p = buf;
    for (int i = 3; i >= 0; i--) {
        p = vs__put_u64(p, (ip >> (8 * i)) & 0xff);
        if (i) {
            *p++ = '.';
        }
    }
}

static int64_t exp_ms(gsl_rng *r, double mean_ms)
{
    return (int64_t)gsl_ran_exponential(r, mean_ms);
}

static uint32_t random_ip(gsl_rng *r, int country)
{
    return ((uint32_t)COUNTRIES[country].octet << 24) | (uint32_t)gsl_rng_uniform_int(r, 1u << 24);
}

static double cents(double x)
{
    return round(x * 100.0) / 100.0;
}

/* SplitMix64: spreads a 64-bit seed over the 32 bits MT19937 takes, per stream. */
static unsigned long mix_seed(uint64_t seed, uint64_t stream)
{
    uint64_t z = seed + stream * UINT64_C(0x9E3779B97F4A7C15) + UINT64_C(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    z ^= z >> 31;
    return (unsigned long)(z & 0xffffffffu);
}

/* ==== Catalogue ==== */

struct priced {
    double price;
    uint32_t item;
};

static int priced_cmp(const void *a, const void *b)
{
    const struct priced *x = a, *y = b;
    if (x->price != y->price) {
        return x->price < y->price ? -1 : 1;
    }
    return x->item < y->item ? -1 : x->item > y->item;
}

static int build_catalogue(struct gen *g)
{
    gsl_rng *r = g->rng_pop;
    uint32_t n = g->nitems, nc = g->ncats;
    g->item_cat = malloc(n * sizeof(*g->item_cat));
    g->item_price = malloc(n * sizeof(*g->item_price));
    g->cats = calloc(nc, sizeof(*g->cats));
    double *w = malloc(nc * sizeof(*w));
    double *median = malloc(nc * sizeof(*median));
    uint32_t *size = calloc(nc, sizeof(*size));
    uint32_t *rank = malloc(n * sizeof(*rank));
    double *pop = malloc(n * sizeof(*pop));
    int rc = VS_ENOMEM;
    if (!g->item_cat || !g->item_price || !g->cats || !w || !median || !size || !rank || !pop) {
        goto out;
    }
    for (uint32_t c = 0; c < nc; c++) {
        w[c] = gsl_ran_gamma(r, 2.0, 1.0);
        median[c] = exp(log(25.0) + gsl_ran_gaussian_ziggurat(r, 0.8));
    }
    gsl_ran_discrete_t *size_table = gsl_ran_discrete_preproc(nc, w);
    if (!size_table) {
        goto out;
    }
    /* Every category gets an item; the rest fall by category size. */
    for (uint32_t i = 0; i < n; i++) {
        uint32_t c = i < nc ? i : (uint32_t)gsl_ran_discrete(r, size_table);
        g->item_cat[i] = c;
        g->item_price[i] = fmax(0.5, cents(median[c] * exp(gsl_ran_gaussian_ziggurat(r, 0.5))));
        rank[i] = size[c]++;
    }
    gsl_ran_discrete_free(size_table);
    /* Popularity ranks are a shuffle of the order in which items joined their category, so
     * that rank and style (assigned round robin by that order) are independent. */
    for (uint32_t c = 0; c < nc; c++) {
        struct category *cat = &g->cats[c];
        cat->nstyles = (int)(size[c] / 10);
        cat->nstyles = cat->nstyles < 1 ? 1 : cat->nstyles > 4 ? 4 : cat->nstyles;
        cat->weight = 0;
    }
    uint32_t *perm_base = malloc(n * sizeof(*perm_base));
    uint32_t *off = calloc(nc + 1, sizeof(*off));
    if (!perm_base || !off) {
        free(perm_base);
        free(off);
        goto out;
    }
    for (uint32_t c = 0; c < nc; c++) {
        off[c + 1] = off[c] + size[c];
        for (uint32_t k = 0; k < size[c]; k++) {
            perm_base[off[c] + k] = k;
        }
        gsl_ran_shuffle(r, perm_base + off[c], size[c], sizeof(uint32_t));
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t c = g->item_cat[i];
        uint32_t zr = perm_base[off[c] + rank[i]];
        pop[i] = pow(zr + 1.0, -ZIPF_EXPONENT);
    }
    /* Per (category, style): the items and an alias table over their popularity. */
    for (uint32_t c = 0; c < nc; c++) {
        struct category *cat = &g->cats[c];
        for (int s = 0; s < cat->nstyles; s++) {
            uint32_t cnt =
                (size[c] - (uint32_t)s + (uint32_t)cat->nstyles - 1) / (uint32_t)cat->nstyles;
            cat->style_items[s] = malloc(cnt * sizeof(uint32_t));
            if (!cat->style_items[s]) {
                goto out_perm;
            }
        }
    }
    {
        uint32_t *fill = calloc((size_t)nc * 4, sizeof(uint32_t));
        double *wbuf = malloc(n * sizeof(double));
        if (!fill || !wbuf) {
            free(fill);
            free(wbuf);
            goto out_perm;
        }
        for (uint32_t i = 0; i < n; i++) {
            uint32_t c = g->item_cat[i];
            int s = (int)(rank[i] % (uint32_t)g->cats[c].nstyles);
            g->cats[c].style_items[s][fill[c * 4 + s]++] = i;
            g->cats[c].weight += pop[i] * w[c];
        }
        int failed = 0;
        for (uint32_t c = 0; c < nc && !failed; c++) {
            struct category *cat = &g->cats[c];
            for (int s = 0; s < cat->nstyles && !failed; s++) {
                uint32_t cnt = fill[c * 4 + s];
                for (uint32_t k = 0; k < cnt; k++) {
                    wbuf[k] = pop[cat->style_items[s][k]];
                }
                cat->style_table[s] = gsl_ran_discrete_preproc(cnt, wbuf);
                failed = !cat->style_table[s];
            }
        }
        for (uint32_t c = 0; c < nc; c++) {
            wbuf[c] = g->cats[c].weight;
        }
        g->cat_table = failed ? NULL : gsl_ran_discrete_preproc(nc, wbuf);
        free(fill);
        free(wbuf);
        if (!g->cat_table) {
            goto out_perm;
        }
    }
    /* The cheapest 3% (card testers' bait) and the dearest 10% (what account thieves buy). */
    {
        struct priced *order = malloc(n * sizeof(*order));
        if (!order) {
            goto out_perm;
        }
        for (uint32_t i = 0; i < n; i++) {
            order[i] = (struct priced){g->item_price[i], i};
        }
        qsort(order, n, sizeof(*order), priced_cmp);
        g->ncheap = n / 33 ? n / 33 : 1;
        g->ndear = n / 10 ? n / 10 : 1;
        g->cheap = malloc(g->ncheap * sizeof(uint32_t));
        g->dear = malloc(g->ndear * sizeof(uint32_t));
        if (g->cheap && g->dear) {
            for (uint32_t k = 0; k < g->ncheap; k++) {
                g->cheap[k] = order[k].item;
            }
            for (uint32_t k = 0; k < g->ndear; k++) {
                g->dear[k] = order[n - g->ndear + k].item;
            }
        }
        free(order);
        if (!g->cheap || !g->dear) {
            goto out_perm;
        }
    }
    rc = 0;
out_perm:
    free(perm_base);
    free(off);
out:
    free(w);
    free(median);
    free(size);
    free(rank);
    free(pop);
    return rc;
}

/* ==== Population ==== */

/* A (category, style) cluster drawn from the customer's tastes. */
static void pick_cluster(struct gen *g, const struct customer *c, uint32_t *cat, int *style)
{
    gsl_rng *r = g->rng;
    double u = gsl_rng_uniform(r);
    if (u < EXPLORE_P) {
        *cat = (uint32_t)gsl_ran_discrete(r, g->cat_table);
        *style = (int)gsl_rng_uniform_int(r, (unsigned long)g->cats[*cat].nstyles);
        return;
    }
    u = (u - EXPLORE_P) / (1.0 - EXPLORE_P);
    int k = 0;
    while (k + 1 < c->ncats && u > c->cum[k]) {
        k++;
    }
    *cat = c->cats[k];
    int ns = g->cats[*cat].nstyles;
    *style = gsl_rng_uniform(r) < STYLE_LOYALTY ? c->styles[k] % ns
                                                : (int)gsl_rng_uniform_int(r, (unsigned long)ns);
}

static uint32_t pick_item(struct gen *g, uint32_t cat, int style)
{
    const struct category *c = &g->cats[cat];
    return c->style_items[style][gsl_ran_discrete(g->rng, c->style_table[style])];
}

static int build_population(struct gen *g)
{
    gsl_rng *r = g->rng_pop;
    g->cust = calloc(g->ncust, sizeof(*g->cust));
    if (!g->cust) {
        return VS_ENOMEM;
    }
    double cw[HOME_COUNTRIES];
    for (int i = 0; i < HOME_COUNTRIES; i++) {
        cw[i] = COUNTRIES[i].weight;
    }
    gsl_ran_discrete_t *country_table = gsl_ran_discrete_preproc(HOME_COUNTRIES, cw);
    gsl_ran_discrete_t *pay_table = gsl_ran_discrete_preproc(3, PAY_WEIGHTS);
    if (!country_table || !pay_table) {
        gsl_ran_discrete_free(country_table);
        gsl_ran_discrete_free(pay_table);
        return VS_ENOMEM;
    }
    double span = ARRIVAL_SPAN * (double)(g->end_ts - g->o.start_ts);
    for (uint32_t i = 0; i < g->ncust; i++) {
        struct customer *c = &g->cust[i];
        c->arrival_ts = g->o.start_ts + (int64_t)(gsl_rng_uniform(r) * span);
        c->lambda = gsl_ran_gamma(r, LAMBDA_SHAPE, 1.0); /* scaled after calibration */
        c->p = gsl_ran_beta(r, DROPOUT_A, DROPOUT_B);
        c->session = -1;
        c->country = (uint8_t)gsl_ran_discrete(r, country_table);
        c->device[0] = ++g->next_device;
        c->ip[0] = random_ip(r, c->country);
        if (gsl_rng_uniform(r) < SECOND_DEVICE_P) {
            c->device[1] = ++g->next_device;
            c->ip[1] = random_ip(r, c->country);
        }
        c->pay_kind = (uint8_t)gsl_ran_discrete(r, pay_table);
        c->payment = ++g->next_payment;
        /* Tastes: one to three distinct preferred categories, popular ones more often. */
        int want = 1 + (gsl_rng_uniform(r) < 0.6) + (gsl_rng_uniform(r) < 0.3);
        if ((uint32_t)want > g->ncats) {
            want = (int)g->ncats;
        }
        c->ncats = 0;
        for (int tries = 0; c->ncats < want && tries < 50; tries++) {
            uint16_t cat = (uint16_t)gsl_ran_discrete(r, g->cat_table);
            int dup = 0;
            for (int k = 0; k < c->ncats; k++) {
                dup |= c->cats[k] == cat;
            }
            if (!dup) {
                c->styles[c->ncats] = (uint8_t)gsl_rng_uniform_int(r, 4);
                c->cats[c->ncats++] = cat;
            }
        }
        double alpha[3] = {1, 1, 1}, theta[3];
        gsl_ran_dirichlet(r, c->ncats, alpha, theta);
        /* strongest first */
        for (int a = 0; a < c->ncats; a++) {
            for (int b = a + 1; b < c->ncats; b++) {
                if (theta[b] > theta[a]) {
                    double t = theta[a];
                    theta[a] = theta[b];
                    theta[b] = t;
                    uint16_t tc = c->cats[a];
                    c->cats[a] = c->cats[b];
                    c->cats[b] = tc;
                    uint8_t ts = c->styles[a];
                    c->styles[a] = c->styles[b];
                    c->styles[b] = ts;
                }
            }
        }
        double acc = 0;
        for (int k = 0; k < c->ncats; k++) {
            acc += theta[k];
            c->cum[k] = (float)acc;
        }
        c->cum[c->ncats - 1] = 1.0f;
    }
    gsl_ran_discrete_free(country_table);
    gsl_ran_discrete_free(pay_table);
    return 0;
}

/* ==== Calibration ====
 *
 * Expected events of one customer for a rate scale s, given the customer's draws (lambda before
 * scaling, p) and the days T from arrival to the end. With mu = s*lambda*p, the customer stays
 * active for an expected W = (1 - e^(-mu T)) / mu days within the period and drops out within it
 * with probability 1 - e^(-mu T). Sessions: the first purchase, s*lambda*(1-p)*W repeat purchases,
 * the final purchase when the dropout falls inside, and BROWSE_PER_PURCHASE browsing sessions
 * per repeat purchase session (they share its Poisson process). The events per session of each kind
 * are measured by a pilot run of the session code itself (pilot_sessions), so the calibration
 * cannot drift from the model.
 */
static double expected_events(const struct gen *g, double s)
{
    double eb = g->events_per_purchase, ev = g->events_per_browse;
    double sum = 0;
    for (uint32_t i = 0; i < g->ncust; i++) {
        const struct customer *c = &g->cust[i];
        double T = (double)(g->end_ts - c->arrival_ts) / DAY_MS;
        double lam = s * c->lambda, mu = lam * c->p;
        double drop = -expm1(-mu * T);
        double W = mu > 0 ? drop / mu : T;
        double repeat = lam * (1.0 - c->p) * W;
        double purchases = 1.0 + repeat + drop;
        double browse = BROWSE_PER_PURCHASE * repeat;
        sum += eb * purchases + ev * browse;
    }
    return sum;
}

static double expected_fraud_events(const struct gen *g, uint32_t n_ct, uint32_t n_ato,
                                    uint32_t n_anom)
{
    return n_ct * 2.0 * 14.0 + n_ato * 1.3 * 5.0 + n_anom * g->events_per_purchase;
}

/* Bisection on the log of the rate scale; clamped to a sane range of mean rates. */
static double calibrate(const struct gen *g, double target)
{
    double lo = log(1e-5), hi = log(10.0);
    if (expected_events(g, exp(hi)) <= target) {
        return exp(hi);
    }
    if (expected_events(g, exp(lo)) >= target) {
        return exp(lo);
    }
    for (int it = 0; it < 50; it++) {
        double mid = 0.5 * (lo + hi);
        if (expected_events(g, exp(mid)) < target) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return exp(0.5 * (lo + hi));
}

/*
 * Plan each customer's dropout and the planted fraud. Victims are drawn from customers active
 * for at least two weeks, each hit once, at a time in the later 75% of their active life (so
 * account thieves find a history to betray them).
 */
static void plan_customers(struct gen *g, uint32_t want[4])
{
    gsl_rng *r = g->rng_pop;
    uint32_t *eligible = malloc(g->ncust * sizeof(uint32_t));
    uint32_t ne = 0;
    for (uint32_t i = 0; i < g->ncust; i++) {
        struct customer *c = &g->cust[i];
        c->lambda *= g->scale;
        double mu = c->lambda * c->p;
        double d = gsl_ran_exponential(r, 1.0 / mu) * DAY_MS;
        c->dropout_ts =
            d < (double)(g->end_ts - c->arrival_ts) ? c->arrival_ts + (int64_t)d : INT64_MAX;
        c->fraud_ts = INT64_MAX;
        c->next_ts = c->arrival_ts;
        c->next_kind = S_FIRST;
        int64_t life = (c->dropout_ts < g->end_ts ? c->dropout_ts : g->end_ts) - c->arrival_ts;
        if (eligible && life >= (int64_t)(14 * DAY_MS)) {
            eligible[ne++] = i;
        }
    }
    if (!eligible) {
        want[1] = want[2] = want[3] = 0;
        return;
    }
    if (ne > 1) { /* a period shorter than two weeks has no victims */
        gsl_ran_shuffle(r, eligible, ne, sizeof(uint32_t));
    }
    uint32_t k = 0;
    for (int kind = 1; kind < 4; kind++) {
        if (want[kind] > ne - k) {
            want[kind] = ne - k;
        }
        for (uint32_t j = 0; j < want[kind]; j++) {
            struct customer *c = &g->cust[eligible[k++]];
            int64_t end = c->dropout_ts < g->end_ts ? c->dropout_ts : g->end_ts;
            double life = (double)(end - c->arrival_ts);
            c->fraud_kind = (uint8_t)kind;
            c->fraud_ts = c->arrival_ts + (int64_t)((0.25 + 0.7 * gsl_rng_uniform(r)) * life);
        }
    }
    free(eligible);
}

/* ==== Sessions ==== */

static struct session *session_get(struct gen *g, int32_t *idx)
{
    if (!g->nfree) {
        uint32_t n = g->npool ? g->npool * 2 : 64;
        struct session **pool = realloc(g->pool, n * sizeof(*pool));
        int32_t *fr = realloc(g->free_sessions, n * sizeof(*fr));
        if (pool) {
            g->pool = pool;
        }
        if (fr) {
            g->free_sessions = fr;
        }
        if (!pool || !fr) {
            return NULL;
        }
        for (uint32_t i = g->npool; i < n; i++) {
            g->pool[i] = malloc(sizeof(struct session));
            if (!g->pool[i]) {
                g->npool = i;
                return NULL;
            }
            g->free_sessions[g->nfree++] = (int32_t)i;
        }
        g->npool = n;
    }
    *idx = g->free_sessions[--g->nfree];
    struct session *s = g->pool[*idx];
    s->n = 0;
    s->no = ++g->next_session;
    return s;
}

static struct gev *add_ev(struct session *s, int64_t ts, int type, uint32_t item, int32_t qty,
                          const struct ident *id)
{
    struct gev *e = &s->ev[s->n++];
    memset(e, 0, sizeof(*e));
    e->ts = ts;
    e->type = (uint8_t)type;
    e->item = item;
    e->quantity = qty;
    e->device = id->device;
    e->ip = id->ip;
    e->payment = id->payment;
    e->country = id->country;
    e->pay_kind = id->pay_kind;
    return e;
}

static int32_t line_quantity(gsl_rng *r)
{
    double u = gsl_rng_uniform(r);
    return u < 0.85 ? 1 : u < 0.95 ? 2 : 3;
}

static double mean_order(const struct customer *c)
{
    return c->orders ? c->spend_sum / c->orders : 50.0;
}

struct line {
    uint32_t item;
    int32_t qty;
    int removed;
};

/* Close an order: one PURCHASE for the lines still in the cart, main item = largest line. */
static struct gev *purchase(struct gen *g, struct session *s, int64_t ts, const struct line *l,
                            int nl, const struct ident *id)
{
    double amount = 0;
    int32_t qty = 0;
    int top = -1;
    for (int k = 0; k < nl; k++) {
        if (l[k].removed) {
            continue;
        }
        double v = g->item_price[l[k].item] * l[k].qty;
        amount += v;
        qty += l[k].qty;
        if (top < 0 || v > g->item_price[l[top].item] * l[top].qty) {
            top = k;
        }
    }
    struct gev *e = add_ev(s, ts, VS_EVENT_PURCHASE, l[top].item, qty, id);
    e->amount = cents(amount);
    e->has_amount = 1;
    e->order = ++g->next_order;
    return e;
}

static struct ident customer_ident(struct gen *g, const struct customer *c)
{
    gsl_rng *r = g->rng;
    struct ident id = {c->device[0], c->ip[0], c->payment, c->country, c->pay_kind};
    if (c->device[1] && gsl_rng_uniform(r) < SECOND_DEVICE_USE_P) {
        id.device = c->device[1];
        id.ip = c->ip[1];
    }
    if (gsl_rng_uniform(r) < TRAVEL_P) {
        int k = (int)gsl_rng_uniform_int(r, HOME_COUNTRIES - 1);
        id.country = (uint8_t)(k >= c->country ? k + 1 : k);
        id.ip = random_ip(r, id.country);
    }
    return id;
}

/*
 * An honest session: a pending refund first, then views from the customer's clusters; a
 * purchase session puts some of the viewed items in the cart (selection sampling, so exactly
 * the drawn number of lines), maybe takes one out, and orders; a browsing session may leave
 * an abandoned cart.
 */
static void honest_session(struct gen *g, struct customer *c, struct session *s, int kind,
                           int64_t t)
{
    gsl_rng *r = g->rng;
    struct ident id = customer_ident(g, c);
    if (kind == S_ANOMALY) {
        /* only the amount is odd: the customer's main device, at home */
        id = (struct ident){c->device[0], c->ip[0], c->payment, c->country, c->pay_kind};
    }
    if (c->refund_order) {
        struct gev *e = add_ev(s, t, VS_EVENT_REFUND, c->refund_item, c->refund_qty, &id);
        e->amount = c->refund_amount;
        e->has_amount = 1;
        e->order = c->refund_order;
        c->refund_order = 0;
        t += 20 * SEC_MS + exp_ms(r, 120 * SEC_MS);
    }
    int buying = kind != S_BROWSE;
    unsigned extra = gsl_ran_poisson(r, LINES_EXTRA);
    int lines = buying ? 1 + (int)(extra > MAX_LINES - 1 ? MAX_LINES - 1 : extra) : 0;
    unsigned ve = gsl_ran_poisson(r, VIEWS_EXTRA);
    int views = (buying ? lines : 1) + (int)(ve > MAX_VIEWS_EXTRA ? MAX_VIEWS_EXTRA : ve);
    uint32_t cat;
    int style;
    pick_cluster(g, c, &cat, &style);
    struct line l[MAX_LINES + 1];
    int nl = 0, left = lines;
    uint32_t last_item = 0;
    for (int k = 0; k < views; k++) {
        if (k && gsl_rng_uniform(r) < RECLUSTER_P) {
            pick_cluster(g, c, &cat, &style);
        }
        uint32_t item = pick_item(g, cat, style);
        last_item = item;
        if (k) {
            t += 3 * SEC_MS + exp_ms(r, 35 * SEC_MS);
        }
        add_ev(s, t, VS_EVENT_VIEW, item, 1, &id);
        if (left > 0 && gsl_rng_uniform(r) * (views - k) < left) {
            left--;
            int dup = 0;
            for (int j = 0; j < nl; j++) {
                dup |= l[j].item == item;
            }
            if (!dup) {
                l[nl] = (struct line){item, line_quantity(r), 0};
                t += 2 * SEC_MS + exp_ms(r, 10 * SEC_MS);
                add_ev(s, t, VS_EVENT_ADD_TO_CART, item, l[nl].qty, &id);
                nl++;
            }
        }
    }
    if (!buying) {
        if (gsl_rng_uniform(r) < BROWSE_ADD_P) {
            t += 2 * SEC_MS + exp_ms(r, 10 * SEC_MS);
            add_ev(s, t, VS_EVENT_ADD_TO_CART, last_item, 1, &id);
            if (gsl_rng_uniform(r) < BROWSE_REMOVE_P) {
                t += 2 * SEC_MS + exp_ms(r, 20 * SEC_MS);
                add_ev(s, t, VS_EVENT_REMOVE_FROM_CART, last_item, 1, &id);
            }
        }
        return;
    }
    if (nl >= 2 && gsl_rng_uniform(r) < PURCHASE_REMOVE_P) {
        int k = (int)gsl_rng_uniform_int(r, (unsigned long)nl);
        l[k].removed = 1;
        t += 2 * SEC_MS + exp_ms(r, 20 * SEC_MS);
        add_ev(s, t, VS_EVENT_REMOVE_FROM_CART, l[k].item, l[k].qty, &id);
    }
    if (kind == S_ANOMALY) {
        /* A bulk order: the first remaining line's quantity is blown up until the order is at
         * least ten times what this customer usually spends. */
        int k = 0;
        while (l[k].removed) {
            k++;
        }
        double target = fmax(300.0, 10.0 * mean_order(c)) * (1.0 + gsl_rng_uniform(r));
        double rest = 0;
        for (int j = 0; j < nl; j++) {
            if (!l[j].removed && j != k) {
                rest += g->item_price[l[j].item] * l[j].qty;
            }
        }
        double need = ceil((target - rest) / g->item_price[l[k].item]);
        l[k].qty = need > l[k].qty ? (int32_t)need : l[k].qty;
    }
    t += 15 * SEC_MS + exp_ms(r, 60 * SEC_MS);
    struct gev *e = purchase(g, s, t, l, nl, &id);
    if (kind == S_ANOMALY) {
        e->fraud = VS__FRAUD_AMOUNT_ANOMALY;
    } else {
        c->spend_sum += e->amount;
        c->orders++;
    }
    if (kind == S_FINAL) {
        e->final = 1;
    } else if (gsl_rng_uniform(r) < REFUND_P) {
        c->refund_order = e->order;
        c->refund_amount = e->amount;
        c->refund_item = e->item;
        c->refund_qty = e->quantity;
    }
}

/* A card tester on a new device: cheap items, a new card on every attempt, within minutes. */
static void card_testing_session(struct gen *g, struct customer *c, struct session *s, int64_t t)
{
    gsl_rng *r = g->rng;
    struct ident id;
    id.device = ++g->next_device;
    id.country =
        gsl_rng_uniform(r) < 0.5
            ? c->country
            : (uint8_t)(HOME_COUNTRIES + gsl_rng_uniform_int(r, ALL_COUNTRIES - HOME_COUNTRIES));
    id.ip = random_ip(r, id.country);
    id.pay_kind = 0;
    int attempts = 8 + (int)gsl_rng_uniform_int(r, 13);
    for (int a = 0; a < attempts; a++) {
        id.payment = ++g->next_payment;
        struct line l = {g->cheap[gsl_rng_uniform_int(r, g->ncheap)], 1, 0};
        if (a) {
            t += 5 * SEC_MS + (int64_t)gsl_rng_uniform_int(r, 25 * SEC_MS);
        }
        add_ev(s, t, VS_EVENT_ADD_TO_CART, l.item, 1, &id);
        t += 2 * SEC_MS + (int64_t)gsl_rng_uniform_int(r, 6 * SEC_MS);
        purchase(g, s, t, &l, 1, &id)->fraud = VS__FRAUD_CARD_TESTING;
    }
}

/* An account thief: a new device in a country no customer lives in, one or two large orders
 * of dear items, usually on the account's own stored payment instrument. */
static void takeover_session(struct gen *g, struct customer *c, struct session *s, int64_t t)
{
    gsl_rng *r = g->rng;
    struct ident id;
    id.device = ++g->next_device;
    id.country = (uint8_t)(HOME_COUNTRIES + gsl_rng_uniform_int(r, ALL_COUNTRIES - HOME_COUNTRIES));
    id.ip = random_ip(r, id.country);
    if (gsl_rng_uniform(r) < 0.6) {
        id.payment = c->payment;
        id.pay_kind = c->pay_kind;
    } else {
        id.payment = ++g->next_payment;
        id.pay_kind = 0;
    }
    int orders = 1 + (gsl_rng_uniform(r) < 0.3);
    double target = fmax(400.0, 6.0 * mean_order(c)) * (1.0 + gsl_rng_uniform(r));
    for (int o = 0; o < orders; o++) {
        struct line l[3];
        int nl = 0;
        int views = 1 + (int)gsl_rng_uniform_int(r, 3);
        for (int k = 0; k < views; k++) {
            uint32_t item = g->dear[gsl_rng_uniform_int(r, g->ndear)];
            if (k || o) {
                t += 3 * SEC_MS + exp_ms(r, 15 * SEC_MS);
            }
            add_ev(s, t, VS_EVENT_VIEW, item, 1, &id);
            int dup = 0;
            for (int j = 0; j < nl; j++) {
                dup |= l[j].item == item;
            }
            if (!dup) {
                l[nl] = (struct line){item, 1 + (int32_t)gsl_rng_uniform_int(r, 2), 0};
                t += 2 * SEC_MS + exp_ms(r, 5 * SEC_MS);
                add_ev(s, t, VS_EVENT_ADD_TO_CART, item, l[nl].qty, &id);
                nl++;
            }
        }
        double amount = 0;
        for (int j = 0; j < nl; j++) {
            amount += g->item_price[l[j].item] * l[j].qty;
        }
        if (amount < target) {
            l[0].qty += (int32_t)ceil((target - amount) / g->item_price[l[0].item]);
        }
        t += 10 * SEC_MS + exp_ms(r, 30 * SEC_MS);
        purchase(g, s, t, l, nl, &id)->fraud = VS__FRAUD_ACCOUNT_TAKEOVER;
    }
}

/* Draw the customer's next session after one ended at c->last_end. 0, or 1: no more. */
static int schedule_next(struct gen *g, struct customer *c)
{
    gsl_rng *r = g->rng;
    int64_t earliest = c->last_end + 60 * SEC_MS;
    double buy_rate = c->lambda * (1.0 - c->p);
    double rate = buy_rate * (1.0 + BROWSE_PER_PURCHASE); /* sessions per day */
    int64_t t = earliest + (int64_t)(gsl_ran_exponential(r, 1.0 / rate) * DAY_MS);
    int kind = gsl_rng_uniform(r) * (1.0 + BROWSE_PER_PURCHASE) < 1.0 ? S_PURCHASE : S_BROWSE;
    if (c->fraud_kind && c->fraud_ts <= t) {
        t = c->fraud_ts > earliest ? c->fraud_ts : earliest;
        kind = c->fraud_kind == VS__FRAUD_CARD_TESTING       ? S_CARD_TESTING
               : c->fraud_kind == VS__FRAUD_ACCOUNT_TAKEOVER ? S_TAKEOVER
                                                             : S_ANOMALY;
        c->fraud_kind = 0;
    } else if (c->dropout_ts <= t) {
        t = c->dropout_ts > earliest ? c->dropout_ts : earliest;
        kind = S_FINAL;
        c->dropout_ts = INT64_MAX; /* consumed: the final session is the last one */
    }
    if (t >= g->end_ts) {
        return 1;
    }
    c->next_ts = t;
    c->next_kind = (uint8_t)kind;
    return 0;
}

static int open_session(struct gen *g, struct customer *c)
{
    int32_t idx;
    struct session *s = session_get(g, &idx);
    if (!s) {
        return VS_ENOMEM;
    }
    switch (c->next_kind) {
    case S_CARD_TESTING:
        card_testing_session(g, c, s, c->next_ts);
        break;
    case S_TAKEOVER:
        takeover_session(g, c, s, c->next_ts);
        break;
    default:
        honest_session(g, c, s, c->next_kind, c->next_ts);
        break;
    }
    c->session = idx;
    c->pos = 0;
    return 0;
}

/* ==== Heap of customers by the time of their next event ==== */

static inline int hless(const struct hnode *a, const struct hnode *b)
{
    return a->ts < b->ts || (a->ts == b->ts && a->idx < b->idx);
}

static void sift_down(struct hnode *h, uint32_t n, uint32_t i)
{
    struct hnode x = h[i];
    for (;;) {
        uint32_t l = 2 * i + 1;
        if (l >= n) {
            break;
        }
        uint32_t m = l + 1 < n && hless(&h[l + 1], &h[l]) ? l + 1 : l;
        if (!hless(&h[m], &x)) {
            break;
        }
        h[i] = h[m];
        i = m;
    }
    h[i] = x;
}

/* ==== Emission ==== */

static const char *const FRAUD_NAMES[VS__FRAUD_KIND_COUNT] = {"none", "card_testing",
                                                              "account_takeover", "amount_anomaly"};

const char *vs__fraud_kind_name(enum vs__fraud_kind kind)
{
    return (unsigned)kind < VS__FRAUD_KIND_COUNT ? FRAUD_NAMES[kind] : "none";
}

static int emit(struct gen *g, uint32_t ci, const struct session *s, const struct gev *e,
                vs__gen_sink sink, void *arg)
{
    struct vs_event ev;
    fmt_id(g->s_event, 'e', ++g->next_event);
    fmt_id(g->s_user, 'u', (uint64_t)ci + 1);
    fmt_id(g->s_session, 's', s->no);
    fmt_id(g->s_item, 'i', (uint64_t)e->item + 1);
    fmt_id(g->s_cat, 'c', (uint64_t)g->item_cat[e->item] + 1);
    fmt_id(g->s_device, 'd', e->device);
    fmt_ip(g->s_ip, e->ip);
    size_t pk = strlen(PAY_KINDS[e->pay_kind]);
    memcpy(g->s_payment, PAY_KINDS[e->pay_kind], pk);
    fmt_id(g->s_payment + pk, '-', e->payment);
    ev.event_id = g->s_event;
    ev.user_id = g->s_user;
    ev.user_id_len = strlen(g->s_user);
    ev.session_id = g->s_session;
    ev.type = (enum vs_event_type)e->type;
    ev.item_id = g->s_item;
    ev.category_id = g->s_cat;
    ev.has_price = 1;
    ev.price = g->item_price[e->item];
    ev.quantity = e->quantity;
    if (e->order) {
        fmt_id(g->s_order, 'o', e->order);
        ev.order_id = g->s_order;
    } else {
        ev.order_id = NULL;
    }
    ev.has_amount = e->has_amount;
    ev.amount = e->has_amount ? e->amount : 0;
    ev.currency = "EUR";
    ev.ts = e->ts;
    ev.device_id = g->s_device;
    ev.ip = g->s_ip;
    ev.country = COUNTRIES[e->country].code;
    ev.payment_method = g->s_payment;

    g->st.events++;
    if (e->type == VS_EVENT_PURCHASE) {
        g->st.purchases++;
    }
    if (!g->st.first_ts) {
        g->st.first_ts = e->ts;
    }
    g->st.last_ts = e->ts;
    if (e->fraud) {
        g->st.fraud_events[e->fraud]++;
        g->st.fraud_events[0]++;
        if (g->truth && fprintf(g->truth, "fraud,%s,%s\n", g->s_event, FRAUD_NAMES[e->fraud]) < 0) {
            g->truth_err = 1;
        }
    }
    if (e->final) {
        g->st.dropouts++;
        if (g->truth && fprintf(g->truth, "dropout,%s,%" PRId64 "\n", g->s_user, e->ts) < 0) {
            g->truth_err = 1;
        }
    }
    return sink(arg, &ev);
}

static void write_truth_head(struct gen *g)
{
    FILE *f = g->truth;
    int bad = fprintf(f, "record,id,value\n") < 0;
    bad |= fprintf(f, "meta,start_ts,%" PRId64 "\nmeta,end_ts,%" PRId64 "\n", g->o.start_ts,
                   g->end_ts) < 0;
    bad |= fprintf(f,
                   "meta,seed,%" PRIu64 "\nmeta,customers,%" PRId64 "\nmeta,items,%" PRId64
                   "\nmeta,categories,%u\nmeta,events,%" PRId64 "\n",
                   g->o.seed, g->o.customers, g->o.items, g->ncats, g->o.events) < 0;
    bad |= fprintf(f,
                   "meta,bgnbd_r,%.6g\nmeta,bgnbd_alpha_days,%.6g\nmeta,bgnbd_a,%.6g\n"
                   "meta,bgnbd_b,%.6g\n",
                   LAMBDA_SHAPE, 1.0 / g->scale, DROPOUT_A, DROPOUT_B) < 0;
    for (uint32_t i = 0; i < g->ncust && !bad; i++) {
        const struct customer *c = &g->cust[i];
        bad |= fprintf(f, "taste,u%u,", i + 1) < 0;
        for (int k = 0; k < c->ncats; k++) {
            bad |= fprintf(f, k ? " c%u" : "c%u", c->cats[k] + 1u) < 0;
        }
        bad |= fputc('\n', f) == EOF;
    }
    g->truth_err |= bad;
}

static void gen_free(struct gen *g)
{
    if (g->cats) {
        for (uint32_t c = 0; c < g->ncats; c++) {
            for (int s = 0; s < 4; s++) {
                gsl_ran_discrete_free(g->cats[c].style_table[s]);
                free(g->cats[c].style_items[s]);
            }
        }
    }
    free(g->cats);
    gsl_ran_discrete_free(g->cat_table);
    free(g->item_cat);
    free(g->item_price);
    free(g->cheap);
    free(g->dear);
    free(g->cust);
    free(g->heap);
    for (uint32_t i = 0; i < g->npool; i++) {
        free(g->pool[i]);
    }
    free(g->pool);
    free(g->free_sessions);
    if (g->rng_pop) {
        gsl_rng_free(g->rng_pop);
    }
    if (g->rng) {
        gsl_rng_free(g->rng);
    }
}

static int run(struct gen *g, vs__gen_sink sink, void *arg)
{
    g->heap = malloc(g->ncust * sizeof(*g->heap));
    if (!g->heap) {
        return VS_ENOMEM;
    }
    for (uint32_t i = 0; i < g->ncust; i++) {
        g->heap[i] = (struct hnode){g->cust[i].next_ts, i};
    }
    g->hn = g->ncust;
    for (uint32_t i = g->hn / 2; i-- > 0;) {
        sift_down(g->heap, g->hn, i);
    }
    while (g->hn) {
        uint32_t ci = g->heap[0].idx;
        struct customer *c = &g->cust[ci];
        if (c->session < 0) {
            int rc = open_session(g, c);
            if (rc) {
                return rc;
            }
        }
        struct session *s = g->pool[c->session];
        const struct gev *e = &s->ev[c->pos++];
        int rc = emit(g, ci, s, e, sink, arg);
        if (rc) {
            return rc;
        }
        if (c->pos < s->n) {
            g->heap[0].ts = s->ev[c->pos].ts;
        } else {
            c->last_end = e->ts;
            int final = e->final;
            g->free_sessions[g->nfree++] = c->session;
            c->session = -1;
            if (final || schedule_next(g, c)) {
                g->heap[0] = g->heap[--g->hn];
            } else {
                g->heap[0].ts = c->next_ts;
            }
        }
        if (g->hn) {
            sift_down(g->heap, g->hn, 0);
        }
    }
    return 0;
}

/*
 * Measure the mean events of a purchase and of a browsing session by building PILOT_SESSIONS of
 * each for random customers, on a third random stream, into a scratch session. The counters the
 * session builders advance are restored, so the pilot leaves no trace in the stream.
 */
#define PILOT_SESSIONS 20000

static int pilot_sessions(struct gen *g, uint64_t seed)
{
    struct session *s = malloc(sizeof(*s));
    gsl_rng *saved = g->rng;
    g->rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!s || !g->rng) {
        free(s);
        if (g->rng) {
            gsl_rng_free(g->rng);
        }
        g->rng = saved;
        return VS_ENOMEM;
    }
    gsl_rng_set(g->rng, mix_seed(seed, 3));
    uint64_t next_session = g->next_session, next_order = g->next_order;
    double sum[2] = {0, 0};
    for (int k = 0; k < 2 * PILOT_SESSIONS; k++) {
        struct customer c = g->cust[gsl_rng_uniform_int(g->rng, g->ncust)];
        s->n = 0;
        honest_session(g, &c, s, k % 2 ? S_BROWSE : S_PURCHASE, 0);
        sum[k % 2] += s->n;
    }
    /* a refund rides on the next session; the pilot's customers have none pending */
    g->events_per_purchase = sum[0] / PILOT_SESSIONS + REFUND_P;
    g->events_per_browse = sum[1] / PILOT_SESSIONS;
    g->next_session = next_session;
    g->next_order = next_order;
    gsl_rng_free(g->rng);
    g->rng = saved;
    free(s);
    return 0;
}

int vs__gen_run_stats(const struct vs__gen_options *o, vs__gen_sink sink, void *arg, FILE *truth,
                      struct vs__gen_stats *stats)
{
    if (!o || !sink || options_check(o)) {
        return VS_EINVAL;
    }
    struct gen *g = calloc(1, sizeof(*g));
    if (!g) {
        return VS_ENOMEM;
    }
    g->o = *o;
    g->end_ts = o->start_ts + o->days * (int64_t)DAY_MS;
    g->nitems = (uint32_t)o->items;
    g->ncust = (uint32_t)o->customers;
    g->ncats =
        o->categories ? (uint32_t)o->categories : (uint32_t)(o->items / 100 ? o->items / 100 : 1);
    if (g->ncats > 65535) {
        g->ncats = 65535; /* the automatic choice, for huge catalogues */
    }
    g->truth = truth;
    g->rng_pop = gsl_rng_alloc(gsl_rng_mt19937);
    g->rng = gsl_rng_alloc(gsl_rng_mt19937);
    int rc = VS_ENOMEM;
    if (!g->rng_pop || !g->rng) {
        goto out;
    }
    gsl_rng_set(g->rng_pop, mix_seed(o->seed, 1));
    gsl_rng_set(g->rng, mix_seed(o->seed, 2));
    if ((rc = build_catalogue(g)) || (rc = build_population(g)) ||
        (rc = pilot_sessions(g, o->seed))) {
        goto out;
    }
    uint32_t want[4] = {0, (uint32_t)llround(o->card_testing_rate * (double)g->ncust),
                        (uint32_t)llround(o->account_takeover_rate * (double)g->ncust),
                        (uint32_t)llround(o->amount_anomaly_rate * (double)g->ncust)};
    double target = (double)o->events - expected_fraud_events(g, want[1], want[2], want[3]);
    g->scale = calibrate(g, target > 0 ? target : 1);
    g->st.rate_scale = LAMBDA_SHAPE * g->scale;
    plan_customers(g, want);
    g->st.customers = g->ncust;
    if (truth) {
        write_truth_head(g);
    }
    rc = run(g, sink, arg);
    if (!rc && truth && (g->truth_err || fflush(truth) != 0)) {
        rc = VS_EIO;
    }
out:
    if (stats) {
        *stats = g->st;
    }
    gen_free(g);
    free(g);
    return rc;
}

int vs__gen_run(const struct vs__gen_options *o, vs__gen_sink sink, void *arg, FILE *truth)
{
    return vs__gen_run_stats(o, sink, arg, truth, NULL);
}

/* ==== Truth file ==== */

/* A string-keyed open-addressing map of int64 values; keys are owned copies. */
struct smap {
    char **keys;
    int64_t *vals;
    size_t cap, n;
};

static uint64_t str_hash(const char *s)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    }
    return h;
}

static int64_t *smap_find(const struct smap *m, const char *key)
{
    if (!m->cap) {
        return NULL;
    }
    for (size_t i = str_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->keys[i]) {
            return NULL;
        }
        if (!strcmp(m->keys[i], key)) {
            return &m->vals[i];
        }
    }
}

static int smap_grow(struct smap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    char **keys = calloc(cap, sizeof(*keys));
    int64_t *vals = calloc(cap, sizeof(*vals));
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return VS_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i]) {
            size_t j = str_hash(m->keys[i]) & (cap - 1);
            while (keys[j]) {
                j = (j + 1) & (cap - 1);
            }
            keys[j] = m->keys[i];
            vals[j] = m->vals[i];
        }
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return 0;
}

/* Insert key -> val; VS_EINVAL when the key is already there. */
static int smap_put(struct smap *m, const char *key, int64_t val)
{
    if (smap_find(m, key)) {
        return VS_EINVAL;
    }
    if ((m->n + 1) * 2 > m->cap && smap_grow(m)) {
        return VS_ENOMEM;
    }
    size_t i = str_hash(key) & (m->cap - 1);
    while (m->keys[i]) {
        i = (i + 1) & (m->cap - 1);
    }
    if (!(m->keys[i] = strdup(key))) {
        return VS_ENOMEM;
    }
    m->vals[i] = val;
    m->n++;
    return 0;
}

static void smap_free(struct smap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->keys[i]);
    }
    free(m->keys);
    free(m->vals);
}

struct truth_dropout {
    char *user_id;
    int64_t ts;
};

struct vs__truth {
    struct smap fraud;   /* event id -> kind */
    struct smap dropout; /* user id -> index in dropouts */
    struct smap taste;   /* user id -> index in tastes */
    size_t fraud_count[VS__FRAUD_KIND_COUNT];
    struct truth_dropout *dropouts;
    size_t ndropouts, cap_dropouts;
    char **tastes;
    size_t ntastes, cap_tastes;
    int64_t start_ts, end_ts, customers;
};

static int parse_i64(const char *s, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end) {
        return VS_EINVAL;
    }
    *v = x;
    return 0;
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) {
        return 0;
    }
    size_t c = *cap ? *cap * 2 : 1024;
    void *p = realloc(*arr, c * elem);
    if (!p) {
        return VS_ENOMEM;
    }
    *arr = p;
    *cap = c;
    return 0;
}

/* One data row; returns 0 or an error with the reason in why. */
static int truth_row(struct vs__truth *t, const char *rec, const char *id, const char *val,
                     const char **why)
{
    int64_t v;
    if (!*id || !*val) {
        *why = "empty id or value";
        return VS_ECORRUPT;
    }
    if (!strcmp(rec, "fraud")) {
        int kind = 0;
        for (int k = 1; k < VS__FRAUD_KIND_COUNT; k++) {
            kind = !strcmp(val, FRAUD_NAMES[k]) ? k : kind;
        }
        if (!kind) {
            *why = "unknown fraud kind";
            return VS_ECORRUPT;
        }
        int rc = smap_put(&t->fraud, id, kind);
        if (rc) {
            *why = rc == VS_EINVAL ? "event listed twice" : "out of memory";
            return rc == VS_EINVAL ? VS_ECORRUPT : rc;
        }
        t->fraud_count[kind]++;
        t->fraud_count[0]++;
    } else if (!strcmp(rec, "dropout")) {
        if (parse_i64(val, &v)) {
            *why = "dropout time is not an integer";
            return VS_ECORRUPT;
        }
        if (grow((void **)&t->dropouts, &t->cap_dropouts, t->ndropouts, sizeof(*t->dropouts))) {
            *why = "out of memory";
            return VS_ENOMEM;
        }
        int rc = smap_put(&t->dropout, id, (int64_t)t->ndropouts);
        if (rc) {
            *why = rc == VS_EINVAL ? "customer listed twice" : "out of memory";
            return rc == VS_EINVAL ? VS_ECORRUPT : rc;
        }
        t->dropouts[t->ndropouts].user_id = strdup(id);
        t->dropouts[t->ndropouts].ts = v;
        if (!t->dropouts[t->ndropouts++].user_id) {
            *why = "out of memory";
            return VS_ENOMEM;
        }
    } else if (!strcmp(rec, "taste")) {
        if (grow((void **)&t->tastes, &t->cap_tastes, t->ntastes, sizeof(*t->tastes))) {
            *why = "out of memory";
            return VS_ENOMEM;
        }
        int rc = smap_put(&t->taste, id, (int64_t)t->ntastes);
        if (rc) {
            *why = rc == VS_EINVAL ? "customer listed twice" : "out of memory";
            return rc == VS_EINVAL ? VS_ECORRUPT : rc;
        }
        if (!(t->tastes[t->ntastes++] = strdup(val))) {
            *why = "out of memory";
            return VS_ENOMEM;
        }
    } else if (!strcmp(rec, "meta")) {
        /* Meta keys this reader does not know are for other readers. */
        int64_t *dst = !strcmp(id, "start_ts")    ? &t->start_ts
                       : !strcmp(id, "end_ts")    ? &t->end_ts
                       : !strcmp(id, "customers") ? &t->customers
                                                  : NULL;
        if (dst && parse_i64(val, dst)) {
            *why = "meta value is not an integer";
            return VS_ECORRUPT;
        }
    } else {
        *why = "unknown record (expected meta, taste, fraud or dropout)";
        return VS_ECORRUPT;
    }
    return 0;
}

struct vs__truth *vs__truth_load(const char *path, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct vs__truth *t = calloc(1, sizeof(*t));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    const char *why = NULL;
    if (!t) {
        why = "out of memory";
    }
    while (!why && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            line[--len] = 0;
        }
        if (lineno == 1) {
            if (strcmp(line, "record,id,value")) {
                why = "expected the header record,id,value";
            }
            continue;
        }
        if (!len) {
            continue;
        }
        char *c1 = strchr(line, ',');
        char *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        if (!c2) {
            why = "expected three fields";
            break;
        }
        *c1 = *c2 = 0;
        truth_row(t, line, c1 + 1, c2 + 1, &why);
    }
    if (!why && ferror(f)) {
        why = strerror(errno);
    }
    if (!why && lineno == 0) {
        why = "empty file (expected the header record,id,value)";
    }
    free(line);
    fclose(f);
    if (why) {
        snprintf(errbuf, errlen, "%s:%ld: %s", path, lineno, why);
        vs__truth_free(t);
        return NULL;
    }
    return t;
}

void vs__truth_free(struct vs__truth *t)
{
    if (!t) {
        return;
    }
    smap_free(&t->fraud);
    smap_free(&t->dropout);
    smap_free(&t->taste);
    for (size_t i = 0; i < t->ndropouts; i++) {
        free(t->dropouts[i].user_id);
    }
    free(t->dropouts);
    for (size_t i = 0; i < t->ntastes; i++) {
        free(t->tastes[i]);
    }
    free(t->tastes);
    free(t);
}

enum vs__fraud_kind vs__truth_fraud_kind(const struct vs__truth *t, const char *event_id)
{
    const int64_t *v = event_id ? smap_find(&t->fraud, event_id) : NULL;
    return v ? (enum vs__fraud_kind) * v : VS__FRAUD_NONE;
}

size_t vs__truth_fraud_count(const struct vs__truth *t, enum vs__fraud_kind kind)
{
    return (unsigned)kind < VS__FRAUD_KIND_COUNT ? t->fraud_count[kind] : 0;
}

int vs__truth_dropout(const struct vs__truth *t, const char *user_id, int64_t *ts)
{
    const int64_t *v = user_id ? smap_find(&t->dropout, user_id) : NULL;
    if (!v) {
        return 0;
    }
    if (ts) {
        *ts = t->dropouts[*v].ts;
    }
    return 1;
}

size_t vs__truth_dropout_count(const struct vs__truth *t)
{
    return t->ndropouts;
}

int vs__truth_dropout_at(const struct vs__truth *t, size_t i, const char **user_id, int64_t *ts)
{
    if (i >= t->ndropouts) {
        return VS_EINVAL;
    }
    if (user_id) {
        *user_id = t->dropouts[i].user_id;
    }
    if (ts) {
        *ts = t->dropouts[i].ts;
    }
    return 0;
}

const char *vs__truth_taste(const struct vs__truth *t, const char *user_id)
{
    const int64_t *v = user_id ? smap_find(&t->taste, user_id) : NULL;
    return v ? t->tastes[*v] : NULL;
}

int64_t vs__truth_start_ts(const struct vs__truth *t)
{
    return t->start_ts;
}

int64_t vs__truth_end_ts(const struct vs__truth *t)
{
    return t->end_ts;
}

int64_t vs__truth_customers(const struct vs__truth *t)
{
    return t->customers;
}

/* ==== valuestream gen ==== */

/* Where the CLI sends events: a file of length-prefixed records or a Kafka topic. */
struct out {
    struct vs__codec *codec;
    FILE *file;
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    int64_t produced, delivered, failed;
    int fatal;
    char err[1024];
};

static int file_sink(void *arg, const struct vs_event *ev)
{
    struct out *o = arg;
    const void *buf;
    size_t len;
    int rc = vs__codec_encode_event(o->codec, ev, &buf, &len);
    if (rc) {
        snprintf(o->err, sizeof(o->err), "cannot encode event %s: %s", ev->event_id,
                 vs_strerror(rc));
        return rc;
    }
    unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                            (unsigned char)(len >> 8), (unsigned char)len};
    if (fwrite(hdr, 1, 4, o->file) != 4 || fwrite(buf, 1, len, o->file) != len) {
        snprintf(o->err, sizeof(o->err), "write failed: %s", strerror(errno));
        return VS_EIO;
    }
    o->produced++;
    return 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct out *o = opaque;
    if (m->err) {
        if (!o->failed) {
            snprintf(o->err, sizeof(o->err), "delivery failed: %s", rd_kafka_err2str(m->err));
        }
        o->failed++;
    } else {
        o->delivered++;
    }
}

/* Client errors are mostly transient and retried by librdkafka; losing every broker, or a
 * fatal error, ends the run rather than waiting for the message timeout. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct out *o = opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__FATAL ||
        err == RD_KAFKA_RESP_ERR__RESOLVE || err == RD_KAFKA_RESP_ERR__INVALID_ARG) {
        if (!o->fatal) {
            snprintf(o->err, sizeof(o->err), "kafka: %s", reason);
        }
        o->fatal = 1;
    }
}

static int kafka_sink(void *arg, const struct vs_event *ev)
{
    struct out *o = arg;
    const void *buf;
    size_t len;
    int rc = vs__codec_encode_event(o->codec, ev, &buf, &len);
    if (rc) {
        snprintf(o->err, sizeof(o->err), "cannot encode event %s: %s", ev->event_id,
                 vs_strerror(rc));
        return rc;
    }
    for (;;) {
        if (o->fatal || o->failed) {
            return VS_EKAFKA;
        }
        rd_kafka_resp_err_t err = rd_kafka_producev(
            o->rk, RD_KAFKA_V_RKT(o->rkt), RD_KAFKA_V_KEY(ev->user_id, ev->user_id_len),
            RD_KAFKA_V_VALUE((void *)buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_TIMESTAMP(ev->ts), RD_KAFKA_V_END);
        if (!err) {
            break;
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            snprintf(o->err, sizeof(o->err), "produce failed: %s", rd_kafka_err2str(err));
            return VS_EKAFKA;
        }
        rd_kafka_poll(o->rk, 10);
    }
    if ((++o->produced & 0x3fff) == 0) {
        rd_kafka_poll(o->rk, 0);
    }
    return 0;
}

static int kafka_open(struct out *o, const char *bootstrap, const char *topic)
{
    static const char *const props[][2] = {
        {"linger.ms", "10"},
        {"batch.num.messages", "100000"},
        {"compression.codec", "lz4"},
        {"queue.buffering.max.messages", "1000000"},
        {"queue.buffering.max.kbytes", "1048576"},
        {"partitioner", "murmur2_random"},
        {"message.timeout.ms", "60000"},
    };
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr))) {
        goto bad;
    }
    for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++) {
        if (rd_kafka_conf_set(conf, props[i][0], props[i][1], errstr, sizeof(errstr))) {
            goto bad;
        }
    }
    rd_kafka_conf_set_opaque(conf, o);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    if (!(o->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)))) {
        goto bad;
    }
    if (!(o->rkt = rd_kafka_topic_new(o->rk, topic, NULL))) {
        snprintf(o->err, sizeof(o->err), "topic %s: %s", topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        return VS_EKAFKA;
    }
    return 0;
bad:
    if (!o->rk) {
        rd_kafka_conf_destroy(conf);
    }
    snprintf(o->err, sizeof(o->err), "kafka: %s", errstr);
    return VS_EKAFKA;
}

/* Wait until every message is delivered or has failed; stop early on a fatal client error. */
static int kafka_flush(struct out *o)
{
    while (rd_kafka_outq_len(o->rk) > 0 && !o->fatal) {
        rd_kafka_flush(o->rk, 200);
    }
    if (o->fatal || o->failed || o->delivered != o->produced) {
        if (!o->err[0]) {
            snprintf(o->err, sizeof(o->err), "%" PRId64 " of %" PRId64 " messages delivered",
                     o->delivered, o->produced);
        }
        return VS_EKAFKA;
    }
    return 0;
}

/*
 * Records the broker already dropped: the sum of the topic's low watermarks. On a fresh topic a
 * non-zero sum means retention ate part of the stream (librdkafka's mock cluster keeps only ~5 MiB
 * per partition), which would silently skew everything downstream. -1 when unknown.
 */
static int64_t kafka_dropped(struct out *o)
{
    const struct rd_kafka_metadata *md;
    if (rd_kafka_metadata(o->rk, 0, o->rkt, &md, 5000)) {
        return -1;
    }
    int64_t dropped = 0;
    for (int t = 0; t < md->topic_cnt; t++) {
        for (int p = 0; p < md->topics[t].partition_cnt && dropped >= 0; p++) {
            int64_t lo, hi;
            if (rd_kafka_query_watermark_offsets(o->rk, md->topics[t].topic,
                                                 md->topics[t].partitions[p].id, &lo, &hi, 5000)) {
                dropped = -1;
            } else {
                dropped += lo;
            }
        }
    }
    rd_kafka_metadata_destroy(md);
    return dropped;
}

static void kafka_close(struct out *o)
{
    if (o->rk) {
        rd_kafka_purge(o->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(o->rk, 0);
    }
    if (o->rkt) {
        rd_kafka_topic_destroy(o->rkt);
    }
    if (o->rk) {
        rd_kafka_destroy(o->rk);
    }
}

static void gen_usage(FILE *f)
{
    fprintf(f,
            "usage: valuestream gen [--customers N] [--items N] [--events N] [--days N]\n"
            "                       [--seed N] [--categories N] [--start-ts MS]\n"
            "                       (--bootstrap HOST:PORT --topic NAME | --out FILE)\n"
            "                       [--truth FILE]\n"
            "\n"
            "Generate the synthetic shop: customers with latent tastes and a BG/NBD purchase\n"
            "process (with recorded dropouts), sessions from view to purchase, and planted\n"
            "fraud (card testing, account takeover, amount anomalies). The same seed gives\n"
            "the same events, byte for byte.\n"
            "\n"
            "  --customers N   customers (default 20000)\n"
            "  --items N       items in the catalogue (default 2000)\n"
            "  --events N      about this many events; purchase rates are calibrated to it\n"
            "                  (default 1000000)\n"
            "  --days N        length of the period in days (default 180)\n"
            "  --seed N        random seed (default 1)\n"
            "  --categories N  item categories (default: one per 100 items)\n"
            "  --start-ts MS   start of the period, epoch ms (default 2026-01-01T00:00:00Z)\n"
            "  --bootstrap H:P produce to this Kafka cluster (key = user_id, timestamp = event "
            "time)\n"
            "  --topic NAME    ... into this topic\n"
            "  --out FILE      write length-prefixed records instead (4-byte big-endian length,\n"
            "                  then the Avro binary body of schemas/shop_event.avsc)\n"
            "  --truth FILE    write the ground truth as CSV: record,id,value rows of meta,\n"
            "                  taste, fraud (event id, kind) and dropout (user id, epoch ms)\n"
            "\n"
            "Prints a summary to stderr and one JSON object as the last line of stdout.\n");
}

static int gen_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int gen_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "valuestream gen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 2;
}

static int cli_i64(const char *opt, const char *s, int64_t min, int64_t max, int64_t *v)
{
    if (parse_i64(s, v) || *v < min || *v > max) {
        gen_fail("--%s expects an integer in %" PRId64 "..%" PRId64 ", not '%s'", opt, min, max, s);
        return -1;
    }
    return 0;
}

int vs__gen_main(int argc, char **argv)
{
    enum {
        O_CUST = 1000,
        O_ITEMS,
        O_EVENTS,
        O_DAYS,
        O_SEED,
        O_CATS,
        O_START,
        O_BOOT,
        O_TOPIC,
        O_OUT,
        O_TRUTH,
        O_HELP
    };
    static const struct option longopts[] = {
        {"customers", required_argument, NULL, O_CUST},
        {"items", required_argument, NULL, O_ITEMS},
        {"events", required_argument, NULL, O_EVENTS},
        {"days", required_argument, NULL, O_DAYS},
        {"seed", required_argument, NULL, O_SEED},
        {"categories", required_argument, NULL, O_CATS},
        {"start-ts", required_argument, NULL, O_START},
        {"bootstrap", required_argument, NULL, O_BOOT},
        {"topic", required_argument, NULL, O_TOPIC},
        {"out", required_argument, NULL, O_OUT},
        {"truth", required_argument, NULL, O_TRUTH},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    struct vs__gen_options go;
    vs__gen_options_default(&go);
    const char *bootstrap = NULL, *topic = NULL, *out_path = NULL, *truth_path = NULL;
    int64_t v;
    int c;
    optind = 0; /* glibc: rescan from scratch; gen also runs inside other commands */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case O_CUST:
            if (cli_i64("customers", optarg, 1, 50000000, &go.customers)) {
                return 2;
            }
            break;
        case O_ITEMS:
            if (cli_i64("items", optarg, 1, 50000000, &go.items)) {
                return 2;
            }
            break;
        case O_EVENTS:
            if (cli_i64("events", optarg, 1, INT64_C(1000000000000), &go.events)) {
                return 2;
            }
            break;
        case O_DAYS:
            if (cli_i64("days", optarg, 1, 36500, &go.days)) {
                return 2;
            }
            break;
        case O_SEED:
            if (cli_i64("seed", optarg, 0, INT64_MAX, &v)) {
                return 2;
            }
            go.seed = (uint64_t)v;
            break;
        case O_CATS:
            if (cli_i64("categories", optarg, 1, 65535, &go.categories)) {
                return 2;
            }
            break;
        case O_START:
            if (cli_i64("start-ts", optarg, INT64_C(946684800000), INT64_C(32503680000000),
                        &go.start_ts)) {
                return 2;
            }
            break;
        case O_BOOT:
            bootstrap = optarg;
            break;
        case O_TOPIC:
            topic = optarg;
            break;
        case O_OUT:
            out_path = optarg;
            break;
        case O_TRUTH:
            truth_path = optarg;
            break;
        case 'h':
        case O_HELP:
            gen_usage(stdout);
            return 0;
        case ':':
            return gen_fail("%s needs a value (see valuestream gen --help)", argv[optind - 1]);
        default:
            return gen_fail("unknown option '%s' (see valuestream gen --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return gen_fail("unexpected argument '%s' (see valuestream gen --help)", argv[optind]);
    }
    if (out_path && (bootstrap || topic)) {
        return gen_fail("give either --out or --bootstrap with --topic, not both");
    }
    if (!out_path && !(bootstrap && topic)) {
        return gen_fail(bootstrap ? "--bootstrap needs --topic"
                        : topic   ? "--topic needs --bootstrap"
                                  : "no output: give --out FILE or --bootstrap HOST:PORT "
                                    "--topic NAME");
    }
    if (go.categories > go.items) {
        return gen_fail("--categories (%" PRId64 ") exceeds --items (%" PRId64 ")", go.categories,
                        go.items);
    }

    struct out o = {0};
    char errbuf[512];
    FILE *truth = NULL;
    int rc = 1;
    o.codec = vs__codec_new(NULL, errbuf, sizeof(errbuf));
    if (!o.codec) {
        fprintf(stderr, "valuestream gen: %s\n", errbuf);
        return 1;
    }
    if (truth_path && !(truth = fopen(truth_path, "w"))) {
        fprintf(stderr, "valuestream gen: %s: %s\n", truth_path, strerror(errno));
        goto done;
    }
    if (out_path) {
        if (!(o.file = fopen(out_path, "wb"))) {
            fprintf(stderr, "valuestream gen: %s: %s\n", out_path, strerror(errno));
            goto done;
        }
        setvbuf(o.file, NULL, _IOFBF, 1 << 20);
    } else if (kafka_open(&o, bootstrap, topic)) {
        fprintf(stderr, "valuestream gen: %s\n", o.err);
        goto done;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct vs__gen_stats st;
    int grc = vs__gen_run_stats(&go, out_path ? file_sink : kafka_sink, &o, truth, &st);
    if (!grc && o.rk) {
        grc = kafka_flush(&o);
        int64_t dropped = grc ? 0 : kafka_dropped(&o);
        if (dropped > 0) {
            fprintf(stderr,
                    "valuestream gen: warning: the log of %s starts %" PRId64
                    " records late: the broker's retention dropped them (use more "
                    "partitions)\n",
                    topic, dropped);
        }
    }
    if (!grc && o.file && fflush(o.file)) {
        snprintf(o.err, sizeof(o.err), "%s: %s", out_path, strerror(errno));
        grc = VS_EIO;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (grc) {
        fprintf(stderr, "valuestream gen: %s\n",
                o.err[0]        ? o.err
                : grc == VS_EIO ? "cannot write the truth file"
                                : vs_strerror(grc));
        goto done;
    }
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double eps = secs > 0 ? (double)st.events / secs : 0;
    fprintf(stderr,
            "valuestream gen: %" PRId64 " events (%" PRId64 " purchases) of %" PRId64
            " customers over %" PRId64 " days; fraud events: card_testing %" PRId64
            ", account_takeover %" PRId64 ", amount_anomaly %" PRId64 "; dropouts %" PRId64
            "; %.2f s (%.0f events/s)\n",
            st.events, st.purchases, st.customers, go.days, st.fraud_events[1], st.fraud_events[2],
            st.fraud_events[3], st.dropouts, secs, eps);
    printf("{\"events\":%" PRId64 ",\"purchases\":%" PRId64 ",\"customers\":%" PRId64
           ",\"items\":%" PRId64 ",\"days\":%" PRId64 ",\"seed\":%" PRIu64 ",\"first_ts\":%" PRId64
           ",\"last_ts\":%" PRId64 ",\"dropouts\":%" PRId64 ",\"fraud\":{\"card_testing\":%" PRId64
           ",\"account_takeover\":%" PRId64 ",\"amount_anomaly\":%" PRId64
           "},\"mean_purchases_per_day\":%.4g"
           ",\"seconds\":%.3f,\"events_per_s\":%.0f}\n",
           st.events, st.purchases, st.customers, go.items, go.days, go.seed, st.first_ts,
           st.last_ts, st.dropouts, st.fraud_events[1], st.fraud_events[2], st.fraud_events[3],
           st.rate_scale, secs, eps);
    fflush(stdout);
    rc = 0;
done:
    if (o.file && fclose(o.file) && !rc) {
        fprintf(stderr, "valuestream gen: %s: %s\n", out_path, strerror(errno));
        rc = 1;
    }
    if (truth && fclose(truth) && !rc) {
        fprintf(stderr, "valuestream gen: %s: %s\n", truth_path, strerror(errno));
        rc = 1;
    }
    kafka_close(&o);
    vs__codec_free(o.codec);
    return rc;
}
