/*
 * The profile operator: per customer, first and last seen, counts per event type, sessions,
 * purchases, total and average spend, distinct items and categories, last purchase time. It
 * emits a user_profile record to vs.profiles after each purchase and otherwise at most once per
 * profile.emit.interval.ms of event time; the record also carries the value operator's scores
 * (P(alive), CLV, RFM, segment, tier) when that operator runs.
 *
 * Distinct items and categories are linear-counting sketches (a fixed bitmap per customer), so
 * a customer's record stays the same size however much they browse.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valuestream/error.h>
#include <valuestream/operator.h>

#include "operators/value/value_scores.h"
#include "profile.h"

/* A new session starts with a new session id or after this much event time without events. */
#define VS_PROFILE_SESSION_GAP_MS (30LL * 60 * 1000)

static const struct vs_config_key profile_config[] = {
    {"profile.emit.interval.ms", VS_CONFIG_INT, "3600000",
     "emit a customer's profile at most this often (event time) between purchases"},
    {NULL, 0, NULL, NULL},
};

/* The fields of user_profile, found by name in init (by index on every emission). */
enum {
    F_USER_ID,
    F_TS,
    F_FIRST_SEEN,
    F_LAST_SEEN,
    F_VIEWS,
    F_ADD_TO_CARTS,
    F_REMOVE_FROM_CARTS,
    F_PURCHASES,
    F_REFUNDS,
    F_SESSIONS,
    F_TOTAL_SPEND,
    F_AVG_ORDER_VALUE,
    F_DISTINCT_ITEMS,
    F_DISTINCT_CATEGORIES,
    F_LAST_PURCHASE_TS,
    F_P_ALIVE,
    F_EXPECTED_TRANSACTIONS,
    F_CLV,
    F_RFM_RECENCY,
    F_RFM_FREQUENCY,
    F_RFM_MONETARY,
    F_SEGMENT,
    F_TIER,
    F_COUNT
};

static const char *const field_names[F_COUNT] = {
    "user_id",
    "ts",
    "first_seen",
    "last_seen",
    "views",
    "add_to_carts",
    "remove_from_carts",
    "purchases",
    "refunds",
    "sessions",
    "total_spend",
    "avg_order_value",
    "distinct_items",
    "distinct_categories",
    "last_purchase_ts",
    "p_alive",
    "expected_transactions",
    "clv",
    "rfm_recency",
    "rfm_frequency",
    "rfm_monetary",
    "segment",
    "tier",
};

struct profile {
    int64_t emit_interval;
    int64_t *m_emitted;
    int field[F_COUNT]; /* index in the record, -1 if the schema has no such field */
};

static uint64_t hash_str(const char *s)
{
    /* FNV-1a, then a final mix: stable across runs and machines. */
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static void sketch_add(uint8_t *sketch, int bits, const char *value)
{
    uint64_t b = hash_str(value) % (uint64_t)bits;
    sketch[b / 8] |= (uint8_t)(1u << (b % 8));
}

/* The bits set in n words. Built twice where the compiler can: the x86-64 baseline has no
 * popcnt instruction, and libgcc's portable count, called for each of a profile's 20 words at
 * every emission, was 2 % of the loop; the loader picks the popcnt build where the CPU has it. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
__attribute__((target_clones("popcnt", "default")))
#endif
#endif
static int
bits_set(const uint8_t *words, int n)
{
    int set = 0;
    for (int i = 0; i < n; i++) {
        uint64_t w;
        memcpy(&w, words + i * 8, sizeof(w));
        set += __builtin_popcountll(w);
    }
    return set;
}

int64_t vs_profile_distinct(const uint8_t *sketch, int bits)
{
    int set = bits_set(sketch, bits / 64);
    if (set == bits) {
        return bits; /* saturated: at least this many */
    }
    return (int64_t)llround(-(double)bits * log((double)(bits - set) / bits));
}

static int profile_init(struct vs_env *env, void **self, char *errbuf, size_t errlen)
{
    struct profile *p = calloc(1, sizeof(*p));
    if (!p) {
        return VS_ENOMEM;
    }
    p->emit_interval = vs_config_int(vs_env_config(env), "profile.emit.interval.ms");
    if (p->emit_interval < 0) {
        snprintf(errbuf, errlen, "config key 'profile.emit.interval.ms': expected >= 0");
        free(p);
        return VS_ECONFIG;
    }
    p->m_emitted = vs_env_counter(env, "profile.emitted");
    for (int i = 0; i < F_COUNT; i++) {
        int index = vs_output_field(env, VS_OUT_PROFILE, field_names[i]);
        p->field[i] = index >= 0 ? index : -1;
    }
    *self = p;
    return 0;
}

static int field(struct profile *p, avro_value_t *rec, int which, avro_value_t *f)
{
    return p->field[which] < 0 ? -1
                               : avro_value_get_by_index(rec, (size_t)p->field[which], f, NULL);
}

static void set_long(struct profile *p, avro_value_t *rec, int which, int64_t v)
{
    avro_value_t f;
    if (field(p, rec, which, &f) == 0) {
        avro_value_set_long(&f, v);
    }
}

static void set_double(struct profile *p, avro_value_t *rec, int which, double v)
{
    avro_value_t f;
    if (field(p, rec, which, &f) == 0) {
        avro_value_set_double(&f, v);
    }
}

/* A nullable field: set the non-null branch and return it in *b, or set null when !present. */
static int branch(struct profile *p, avro_value_t *rec, int which, int present, avro_value_t *b)
{
    avro_value_t f;
    if (field(p, rec, which, &f)) {
        return -1;
    }
    if (!present) {
        avro_value_set_branch(&f, 0, b);
        avro_value_set_null(b);
        return -1;
    }
    return avro_value_set_branch(&f, 1, b);
}

static int emit(struct profile *p, struct vs_ctx *ctx, const struct vs_event *ev,
                struct vs_profile_section *s)
{
    avro_value_t *rec = vs_output_begin(ctx, VS_OUT_PROFILE), f, b;
    if (field(p, rec, F_USER_ID, &f) == 0) {
        vs_output_set_string(&f, ev->user_id);
    }
    set_long(p, rec, F_TS, ev->ts);
    set_long(p, rec, F_FIRST_SEEN, s->first_seen);
    set_long(p, rec, F_LAST_SEEN, s->last_seen);
    set_long(p, rec, F_VIEWS, s->counts[VS_EVENT_VIEW]);
    set_long(p, rec, F_ADD_TO_CARTS, s->counts[VS_EVENT_ADD_TO_CART]);
    set_long(p, rec, F_REMOVE_FROM_CARTS, s->counts[VS_EVENT_REMOVE_FROM_CART]);
    set_long(p, rec, F_PURCHASES, s->counts[VS_EVENT_PURCHASE]);
    set_long(p, rec, F_REFUNDS, s->counts[VS_EVENT_REFUND]);
    set_long(p, rec, F_SESSIONS, s->sessions);
    set_double(p, rec, F_TOTAL_SPEND, s->total_spend);
    set_double(p, rec, F_AVG_ORDER_VALUE,
               s->purchases_with_amount ? s->purchase_amount_sum / (double)s->purchases_with_amount
                                        : 0.0);
    set_long(p, rec, F_DISTINCT_ITEMS, vs_profile_distinct(s->items, VS_PROFILE_ITEM_BITS));
    set_long(p, rec, F_DISTINCT_CATEGORIES,
             vs_profile_distinct(s->categories, VS_PROFILE_CATEGORY_BITS));
    if (branch(p, rec, F_LAST_PURCHASE_TS, s->last_purchase_ts != 0, &b) == 0) {
        avro_value_set_long(&b, s->last_purchase_ts);
    }
    struct vs_value_scores v;
    int has_value = vs_value_scores(ctx, &v) == 0;
    if (branch(p, rec, F_P_ALIVE, has_value, &b) == 0) {
        avro_value_set_double(&b, v.p_alive);
    }
    if (branch(p, rec, F_EXPECTED_TRANSACTIONS, has_value, &b) == 0) {
        avro_value_set_double(&b, v.expected_transactions);
    }
    if (branch(p, rec, F_CLV, has_value, &b) == 0) {
        avro_value_set_double(&b, v.clv);
    }
    if (branch(p, rec, F_RFM_RECENCY, has_value, &b) == 0) {
        avro_value_set_int(&b, v.rfm_recency);
    }
    if (branch(p, rec, F_RFM_FREQUENCY, has_value, &b) == 0) {
        avro_value_set_int(&b, v.rfm_frequency);
    }
    if (branch(p, rec, F_RFM_MONETARY, has_value, &b) == 0) {
        avro_value_set_int(&b, v.rfm_monetary);
    }
    if (branch(p, rec, F_SEGMENT, has_value, &b) == 0) {
        vs_output_set_string(&b, v.segment);
    }
    if (branch(p, rec, F_TIER, has_value, &b) == 0) {
        vs_output_set_string(&b, v.tier);
    }
    int rc = vs_output_send(ctx, VS_OUT_PROFILE, ev->user_id);
    if (rc == 0) {
        s->last_emit_ts = ev->ts;
        (*p->m_emitted)++;
    }
    return rc;
}

static int profile_on_event(void *self, struct vs_ctx *ctx, const struct vs_event *ev,
                            void *section)
{
    struct profile *p = self;
    struct vs_profile_section *s = section;
    int first = s->first_seen == 0 && s->last_seen == 0;
    if (first || ev->ts < s->first_seen) {
        s->first_seen = ev->ts;
    }
    uint64_t session = ev->session_id ? hash_str(ev->session_id) : 0;
    if (first || (session && session != s->last_session_hash) ||
        (!session && ev->ts - s->last_seen > VS_PROFILE_SESSION_GAP_MS)) {
        s->sessions++;
    }
    s->last_session_hash = session;
    if (ev->ts > s->last_seen || first) {
        s->last_seen = ev->ts;
    }
    s->counts[ev->type]++;
    if (ev->item_id) {
        sketch_add(s->items, VS_PROFILE_ITEM_BITS, ev->item_id);
    }
    if (ev->category_id) {
        sketch_add(s->categories, VS_PROFILE_CATEGORY_BITS, ev->category_id);
    }
    if (ev->type == VS_EVENT_PURCHASE) {
        if (ev->ts > s->last_purchase_ts) {
            s->last_purchase_ts = ev->ts;
        }
        if (ev->has_amount && ev->amount > 0) {
            s->purchases_with_amount++;
            s->purchase_amount_sum += ev->amount;
            s->total_spend += ev->amount;
        }
        return emit(p, ctx, ev, s);
    }
    if (ev->type == VS_EVENT_REFUND && ev->has_amount && ev->amount > 0) {
        s->total_spend = ev->amount > s->total_spend ? 0.0 : s->total_spend - ev->amount;
    }
    if (s->last_emit_ts == 0 || ev->ts - s->last_emit_ts >= p->emit_interval) {
        return emit(p, ctx, ev, s);
    }
    return 0;
}

static int profile_describe(const void *section, char *buf, size_t len)
{
    const struct vs_profile_section *s = section;
    return snprintf(buf, len,
                    "{\"first_seen\":%lld,\"last_seen\":%lld,\"views\":%lld,\"add_to_carts\":%lld,"
                    "\"remove_from_carts\":%lld,\"purchases\":%lld,\"refunds\":%lld,"
                    "\"sessions\":%lld,\"total_spend\":%.17g,\"purchase_amount_sum\":%.17g,"
                    "\"purchases_with_amount\":%lld,\"distinct_items\":%lld,"
                    "\"distinct_categories\":%lld,\"last_purchase_ts\":%lld,\"last_emit_ts\":%lld}",
                    (long long)s->first_seen, (long long)s->last_seen,
                    (long long)s->counts[VS_EVENT_VIEW], (long long)s->counts[VS_EVENT_ADD_TO_CART],
                    (long long)s->counts[VS_EVENT_REMOVE_FROM_CART],
                    (long long)s->counts[VS_EVENT_PURCHASE], (long long)s->counts[VS_EVENT_REFUND],
                    (long long)s->sessions, s->total_spend, s->purchase_amount_sum,
                    (long long)s->purchases_with_amount,
                    (long long)vs_profile_distinct(s->items, VS_PROFILE_ITEM_BITS),
                    (long long)vs_profile_distinct(s->categories, VS_PROFILE_CATEGORY_BITS),
                    (long long)s->last_purchase_ts, (long long)s->last_emit_ts);
}

static void profile_destroy(void *self)
{
    free(self);
}

const struct vs_operator vs_profile_operator = {
    .name = "profile",
    .config = profile_config,
    .state_version = 1,
    .state_size = sizeof(struct vs_profile_section),
    .init = profile_init,
    .on_event = profile_on_event,
    .describe = profile_describe,
    .destroy = profile_destroy,
};
