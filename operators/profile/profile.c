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

struct profile {
    int64_t emit_interval;
    int64_t *m_emitted;
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

int64_t vs_profile_distinct(const uint8_t *sketch, int bits)
{
    int set = 0;
    for (int i = 0; i < bits / 8; i++) {
        set += __builtin_popcount(sketch[i]);
    }
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
    *self = p;
    return 0;
}

static void set_long(avro_value_t *rec, const char *name, int64_t v)
{
    avro_value_t f;
    if (avro_value_get_by_name(rec, name, &f, NULL) == 0) {
        avro_value_set_long(&f, v);
    }
}

static void set_double(avro_value_t *rec, const char *name, double v)
{
    avro_value_t f;
    if (avro_value_get_by_name(rec, name, &f, NULL) == 0) {
        avro_value_set_double(&f, v);
    }
}

/* A nullable field: set the non-null branch and return it in *b, or set null when !present. */
static int branch(avro_value_t *rec, const char *name, int present, avro_value_t *b)
{
    avro_value_t f;
    if (avro_value_get_by_name(rec, name, &f, NULL)) {
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
    avro_value_get_by_name(rec, "user_id", &f, NULL);
    avro_value_set_string(&f, ev->user_id);
    set_long(rec, "ts", ev->ts);
    set_long(rec, "first_seen", s->first_seen);
    set_long(rec, "last_seen", s->last_seen);
    set_long(rec, "views", s->counts[VS_EVENT_VIEW]);
    set_long(rec, "add_to_carts", s->counts[VS_EVENT_ADD_TO_CART]);
    set_long(rec, "remove_from_carts", s->counts[VS_EVENT_REMOVE_FROM_CART]);
    set_long(rec, "purchases", s->counts[VS_EVENT_PURCHASE]);
    set_long(rec, "refunds", s->counts[VS_EVENT_REFUND]);
    set_long(rec, "sessions", s->sessions);
    set_double(rec, "total_spend", s->total_spend);
    set_double(rec, "avg_order_value",
               s->purchases_with_amount ? s->purchase_amount_sum / (double)s->purchases_with_amount
                                        : 0.0);
    set_long(rec, "distinct_items", vs_profile_distinct(s->items, VS_PROFILE_ITEM_BITS));
    set_long(rec, "distinct_categories",
             vs_profile_distinct(s->categories, VS_PROFILE_CATEGORY_BITS));
    if (branch(rec, "last_purchase_ts", s->last_purchase_ts != 0, &b) == 0) {
        avro_value_set_long(&b, s->last_purchase_ts);
    }
    struct vs_value_scores v;
    int has_value = vs_value_scores(ctx, &v) == 0;
    if (branch(rec, "p_alive", has_value, &b) == 0) {
        avro_value_set_double(&b, v.p_alive);
    }
    if (branch(rec, "expected_transactions", has_value, &b) == 0) {
        avro_value_set_double(&b, v.expected_transactions);
    }
    if (branch(rec, "clv", has_value, &b) == 0) {
        avro_value_set_double(&b, v.clv);
    }
    if (branch(rec, "rfm_recency", has_value, &b) == 0) {
        avro_value_set_int(&b, v.rfm_recency);
    }
    if (branch(rec, "rfm_frequency", has_value, &b) == 0) {
        avro_value_set_int(&b, v.rfm_frequency);
    }
    if (branch(rec, "rfm_monetary", has_value, &b) == 0) {
        avro_value_set_int(&b, v.rfm_monetary);
    }
    if (branch(rec, "segment", has_value, &b) == 0) {
        avro_value_set_string(&b, v.segment);
    }
    if (branch(rec, "tier", has_value, &b) == 0) {
        avro_value_set_string(&b, v.tier);
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
