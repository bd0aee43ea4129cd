/*
 * Purchase features (see features.h for the list and the section they are computed from).
 *
 * The features are chosen so that the fraud the shop meets stands out on few axes at once: card
 * testing is a burst of small purchases within minutes from a device first seen minutes ago
 * (purchases_10m, since_last_purchase, new_device, amount_vs_mean); account takeover is a large
 * amount from a new country and a new device, often without the customer's usual browsing
 * (new_country, new_device, amount_z, cart_to_purchase); amount anomalies are amounts far from the
 * customer's and the category's usual (amount_z, price_vs_category). Counters decay in event time
 * so replays give the same values as live runs.
 */
#include "features.h"

#include <math.h>
#include <string.h>

#include <valuestream/error.h>

#define MS_10M (10 * 60 * 1000LL)
#define MS_1H (60 * 60 * 1000LL)
#define MS_24H (24 * 60 * 60 * 1000LL)
#define USUAL_MEMORY 50  /* the running means weigh the past like ~50 purchases at most */
#define SPREAD_PRIOR 2.0 /* pseudo-purchases with spread mean/2, for young customers */
#define CATEGORY_MEMORY 100
#define CATEGORY_PROBES 16
#define CATEGORY_MIN_SEEN 3
#define CATEGORY_MAGIC 0x43465356u /* "VSFC" */
#define CATEGORY_VERSION 1

_Static_assert(sizeof(struct vs_fraud_section) ==
                   8 * 3 + 4 * 2 + 8 * 4 + 4 * VS_FRAUD_NFEATURES + 4 * 2 +
                       24 * (VS_FRAUD_DEVICE_SLOTS + VS_FRAUD_COUNTRY_SLOTS +
                             VS_FRAUD_PAYMENT_SLOTS),
               "the fraud section must have no padding");

const char *const vs_fraud_feature_names[VS_FRAUD_NFEATURES] = {
    "amount",
    "log_amount",
    "amount_vs_mean",
    "amount_z",
    "since_last_purchase",
    "since_first_seen",
    "purchases_10m",
    "purchases_24h",
    "devices_10m",
    "devices_24h",
    "countries_10m",
    "countries_24h",
    "payment_methods_10m",
    "payment_methods_24h",
    "new_device",
    "new_country",
    "new_payment_method",
    "items",
    "cart_to_purchase",
    "price_vs_category",
};

uint64_t vs_fraud_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h ? h : 1;
}

/* ==== Hashed sets of devices, countries, payment methods ==== */

static const struct vs_fraud_slot *set_find(const struct vs_fraud_slot *set, int n, uint64_t h)
{
    for (int i = 0; i < n; i++) {
        if (set[i].hash == h) {
            return &set[i];
        }
    }
    return NULL;
}

/* Distinct values seen since `since`, counting the current value h (0: none) once. */
static int set_distinct(const struct vs_fraud_slot *set, int n, uint64_t h, int64_t since)
{
    int k = h != 0;
    for (int i = 0; i < n; i++) {
        if (set[i].hash != 0 && set[i].hash != h && set[i].last_seen >= since) {
            k++;
        }
    }
    return k;
}

/* 1 when h was first seen less than an hour before ts, or never, by a customer known for longer:
 * to a customer seen for the first time minutes ago everything is new, and that is no sign. */
static int set_new(const struct vs_fraud_section *sec, const struct vs_fraud_slot *set, int n,
                   uint64_t h, int64_t ts)
{
    if (h == 0 || sec->first_seen == 0 || ts - sec->first_seen < MS_1H) {
        return 0;
    }
    const struct vs_fraud_slot *s = set_find(set, n, h);
    return !s || ts - s->first_seen < MS_1H;
}

/* Record h seen at ts; a full set forgets its least recently seen value. */
static void set_touch(struct vs_fraud_slot *set, int n, uint64_t h, int64_t ts)
{
    if (h == 0) {
        return;
    }
    int victim = 0;
    for (int i = 0; i < n; i++) {
        if (set[i].hash == h) {
            set[i].last_seen = ts > set[i].last_seen ? ts : set[i].last_seen;
            set[i].first_seen = ts < set[i].first_seen ? ts : set[i].first_seen;
            return;
        }
        if (set[i].hash == 0) {
            victim = i;
            break;
        }
        if (set[i].last_seen < set[victim].last_seen) {
            victim = i;
        }
    }
    set[victim].hash = h;
    set[victim].first_seen = ts;
    set[victim].last_seen = ts;
}

static uint64_t hash_or_zero(const char *s)
{
    return s && *s ? vs_fraud_hash(s) : 0;
}

/* ==== Category prices ==== */

static int category_slot(const struct vs_fraud_categories *c, uint64_t h, int insert)
{
    for (int p = 0; p < CATEGORY_PROBES; p++) {
        int i = (int)((h + (uint64_t)p) & (VS_FRAUD_CATEGORY_SLOTS - 1));
        if (c->slot[i].hash == h) {
            return i;
        }
        if (c->slot[i].hash == 0) {
            return insert ? i : -1;
        }
    }
    return -1;
}

void vs_fraud_categories_learn(struct vs_fraud_categories *c, const char *category, double price)
{
    if (!category || !*category || !(price > 0) || !isfinite(price)) {
        return;
    }
    uint64_t h = vs_fraud_hash(category);
    int i = category_slot(c, h, 1);
    if (i < 0) {
        return;
    }
    struct vs_fraud_category *s = &c->slot[i];
    double lp = log(price);
    if (s->hash == 0) {
        s->hash = h;
        s->log_price = (float)lp;
        s->seen = 1;
        return;
    }
    uint32_t n = s->seen < CATEGORY_MEMORY ? s->seen + 1 : CATEGORY_MEMORY;
    s->log_price += (float)((lp - s->log_price) / n);
    if (s->seen < UINT32_MAX) {
        s->seen++;
    }
}

double vs_fraud_categories_typical(const struct vs_fraud_categories *c, const char *category)
{
    if (!category || !*category) {
        return 0.0;
    }
    int i = category_slot(c, vs_fraud_hash(category), 0);
    if (i < 0 || c->slot[i].seen < CATEGORY_MIN_SEEN) {
        return 0.0;
    }
    return exp(c->slot[i].log_price);
}

size_t vs_fraud_categories_size(void)
{
    return 12 + (size_t)VS_FRAUD_CATEGORY_SLOTS * 16;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

long vs_fraud_categories_write(const struct vs_fraud_categories *c, void *buf, size_t len)
{
    if (len < vs_fraud_categories_size()) {
        return VS_EFULL;
    }
    uint8_t *p = buf;
    put_le(p, CATEGORY_MAGIC, 4);
    put_le(p + 4, CATEGORY_VERSION, 4);
    put_le(p + 8, VS_FRAUD_CATEGORY_SLOTS, 4);
    p += 12;
    for (int i = 0; i < VS_FRAUD_CATEGORY_SLOTS; i++, p += 16) {
        uint32_t lp;
        memcpy(&lp, &c->slot[i].log_price, 4);
        put_le(p, c->slot[i].hash, 8);
        put_le(p + 8, lp, 4);
        put_le(p + 12, c->slot[i].seen, 4);
    }
    return (long)vs_fraud_categories_size();
}

int vs_fraud_categories_read(struct vs_fraud_categories *c, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (len < 12 || get_le(p, 4) != CATEGORY_MAGIC) {
        return VS_ECORRUPT;
    }
    if (get_le(p + 4, 4) != CATEGORY_VERSION) {
        return VS_EVERSION;
    }
    if (get_le(p + 8, 4) != VS_FRAUD_CATEGORY_SLOTS || len != vs_fraud_categories_size()) {
        return VS_ECORRUPT;
    }
    p += 12;
    for (int i = 0; i < VS_FRAUD_CATEGORY_SLOTS; i++, p += 16) {
        uint32_t lp = (uint32_t)get_le(p + 8, 4);
        c->slot[i].hash = get_le(p, 8);
        memcpy(&c->slot[i].log_price, &lp, 4);
        c->slot[i].seen = (uint32_t)get_le(p + 12, 4);
        if (!isfinite(c->slot[i].log_price)) {
            return VS_ECORRUPT;
        }
    }
    return 0;
}

/* ==== Features ==== */

static double decay(double count, int64_t dt_ms, int64_t tau_ms)
{
    return dt_ms <= 0 ? count : count * exp(-(double)dt_ms / (double)tau_ms);
}

int vs_fraud_features(const struct vs_fraud_section *s, const struct vs_fraud_categories *cat,
                      const struct vs_event *ev, double x[VS_FRAUD_NFEATURES])
{
    if (!ev->has_amount || !isfinite(ev->amount) || ev->amount < 0) {
        return VS_EINVAL;
    }
    const double a = ev->amount;
    const int64_t ts = ev->ts;
    const int has_history = s->purchases > 0;

    x[VS_FF_AMOUNT] = a;
    x[VS_FF_LOG_AMOUNT] = log1p(a);
    x[VS_FF_AMOUNT_VS_MEAN] = has_history ? log((1.0 + a) / (1.0 + s->amount_mean)) : 0.0;
    if (has_history) {
        /* A young customer's spread is shrunk towards half the mean: two purchases of 20 do not
         * make a third of 25 a five-sigma event. */
        double n = s->purchases < USUAL_MEMORY ? s->purchases : USUAL_MEMORY;
        double prior = 0.5 * s->amount_mean;
        double sd = sqrt((n * s->amount_var + SPREAD_PRIOR * prior * prior) / (n + SPREAD_PRIOR));
        double z = (a - s->amount_mean) / (sd > 1.0 ? sd : 1.0);
        x[VS_FF_AMOUNT_Z] = z < -20 ? -20 : z > 100 ? 100 : z;
    } else {
        x[VS_FF_AMOUNT_Z] = 0.0;
    }
    x[VS_FF_SINCE_PURCHASE] =
        s->last_purchase
            ? log1p((double)(ts > s->last_purchase ? ts - s->last_purchase : 0) / 1000.0)
            : -1.0;
    x[VS_FF_SINCE_FIRST] =
        s->first_seen ? log1p((double)(ts > s->first_seen ? ts - s->first_seen : 0) / 3.6e6) : 0.0;
    int64_t dt = s->last_purchase ? ts - s->last_purchase : 0;
    x[VS_FF_PURCHASES_10M] = decay(s->rate_10m, dt, MS_10M) + 1.0;
    x[VS_FF_PURCHASES_24H] = decay(s->rate_24h, dt, MS_24H) + 1.0;

    uint64_t dev = hash_or_zero(ev->device_id), cty = hash_or_zero(ev->country),
             pay = hash_or_zero(ev->payment_method);
    x[VS_FF_DEVICES_10M] = set_distinct(s->devices, VS_FRAUD_DEVICE_SLOTS, dev, ts - MS_10M);
    x[VS_FF_DEVICES_24H] = set_distinct(s->devices, VS_FRAUD_DEVICE_SLOTS, dev, ts - MS_24H);
    x[VS_FF_COUNTRIES_10M] = set_distinct(s->countries, VS_FRAUD_COUNTRY_SLOTS, cty, ts - MS_10M);
    x[VS_FF_COUNTRIES_24H] = set_distinct(s->countries, VS_FRAUD_COUNTRY_SLOTS, cty, ts - MS_24H);
    x[VS_FF_PAYMENTS_10M] = set_distinct(s->payments, VS_FRAUD_PAYMENT_SLOTS, pay, ts - MS_10M);
    x[VS_FF_PAYMENTS_24H] = set_distinct(s->payments, VS_FRAUD_PAYMENT_SLOTS, pay, ts - MS_24H);
    /* A device new to a customer who has bought many times without it says more than one new to
     * a customer with a purchase or two, who is still showing the shop their devices. */
    x[VS_FF_NEW_DEVICE] =
        set_new(s, s->devices, VS_FRAUD_DEVICE_SLOTS, dev, ts) ? log1p((double)s->purchases) : 0.0;
    x[VS_FF_NEW_COUNTRY] = set_new(s, s->countries, VS_FRAUD_COUNTRY_SLOTS, cty, ts);
    x[VS_FF_NEW_PAYMENT] = set_new(s, s->payments, VS_FRAUD_PAYMENT_SLOTS, pay, ts);

    x[VS_FF_ITEMS] = ev->quantity > 0 ? ev->quantity : 0;
    x[VS_FF_CART_TO_BUY] =
        s->cart_since ? log1p((double)(ts > s->cart_since ? ts - s->cart_since : 0) / 1000.0)
                      : -1.0;
    double typical = cat ? vs_fraud_categories_typical(cat, ev->category_id) : 0.0;
    double unit = a / (ev->quantity > 1 ? ev->quantity : 1);
    x[VS_FF_PRICE_VS_CATEGORY] = typical > 0 && unit > 0 ? log(unit / typical) : 0.0;
    return 0;
}

void vs_fraud_observe(struct vs_fraud_section *s, struct vs_fraud_categories *cat,
                      const struct vs_event *ev, const double *x)
{
    const int64_t ts = ev->ts;
    if (s->first_seen == 0 || ts < s->first_seen) {
        s->first_seen = ts;
    }
    if (s->events < UINT32_MAX) {
        s->events++;
    }
    set_touch(s->devices, VS_FRAUD_DEVICE_SLOTS, hash_or_zero(ev->device_id), ts);
    set_touch(s->countries, VS_FRAUD_COUNTRY_SLOTS, hash_or_zero(ev->country), ts);
    set_touch(s->payments, VS_FRAUD_PAYMENT_SLOTS, hash_or_zero(ev->payment_method), ts);
    if (cat && ev->has_price) {
        vs_fraud_categories_learn(cat, ev->category_id, ev->price);
    }
    if (ev->type == VS_EVENT_ADD_TO_CART && s->cart_since == 0) {
        s->cart_since = ts;
    }
    if (ev->type != VS_EVENT_PURCHASE) {
        return;
    }
    s->cart_since = 0;
    if (!x) {
        return;
    }
    /* Running means whose memory is capped at USUAL_MEMORY purchases: exact for a young
     * customer, an exponential average for an old one, so both follow drift. */
    uint32_t n = s->purchases < USUAL_MEMORY ? s->purchases + 1 : USUAL_MEMORY;
    double w = 1.0 / n;
    double d = ev->amount - s->amount_mean;
    s->amount_mean += w * d;
    s->amount_var = (1.0 - w) * (s->amount_var + w * d * d);
    for (int f = 0; f < VS_FRAUD_NFEATURES; f++) {
        s->usual[f] += (float)(w * (x[f] - s->usual[f]));
    }
    s->rate_10m = x[VS_FF_PURCHASES_10M];
    s->rate_24h = x[VS_FF_PURCHASES_24H];
    if (ts > s->last_purchase) {
        s->last_purchase = ts;
    }
    if (s->purchases < UINT32_MAX) {
        s->purchases++;
    }
}

int vs_fraud_usual(const struct vs_fraud_section *s, int f, double *v)
{
    if (f < 0 || f >= VS_FRAUD_NFEATURES || s->purchases == 0) {
        return -1;
    }
    *v = s->usual[f];
    return 0;
}
