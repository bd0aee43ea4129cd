/*
 * Purchase features for fraud scoring, computed from the purchase event and the customer's fraud
 * section as it was BEFORE the event, so that a purchase is judged against the customer's past
 * and never against itself.
 *
 * The section is a fixed-size POD (no pointers), persisted byte for byte by the engine: running
 * amount statistics, event-time decayed purchase counters (10 minutes, 24 hours), small hashed
 * sets of the devices, countries and payment methods seen (with first and last time seen), the
 * time of the first add-to-cart since the last purchase, and the customer's usual value of every
 * feature (a running mean) for explanations. The category price table is global: a bounded,
 * hashed table of each category's typical unit price (an EWMA of log price), owned by the
 * operator and checkpointed with the forest.
 *
 * No engine dependency: only valuestream/event.h.
 */
#ifndef VS_FRAUD_FEATURES_H
#define VS_FRAUD_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include <valuestream/event.h>

enum vs_fraud_feature {
    VS_FF_AMOUNT = 0,     /* order total */
    VS_FF_LOG_AMOUNT,     /* log(1 + amount) */
    VS_FF_AMOUNT_VS_MEAN, /* log((1 + amount) / (1 + customer's mean amount)); 0 without history */
    VS_FF_AMOUNT_Z, /* (amount - mean) / spread, spread shrunk towards mean/2; 0 w/o history */
    VS_FF_SINCE_PURCHASE, /* log(1 + seconds since the previous purchase); -1 for the first */
    VS_FF_SINCE_FIRST,    /* log(1 + hours since the customer was first seen) */
    VS_FF_PURCHASES_10M,  /* purchases in the last 10 minutes, this one included (decayed) */
    VS_FF_PURCHASES_24H,  /* same over 24 hours */
    VS_FF_DEVICES_10M,    /* distinct devices seen in the last 10 minutes, this one included */
    VS_FF_DEVICES_24H,    /* ... 24 hours */
    VS_FF_COUNTRIES_10M,  /* distinct countries, 10 minutes */
    VS_FF_COUNTRIES_24H,  /* ... 24 hours */
    VS_FF_PAYMENTS_10M,   /* distinct payment methods, 10 minutes */
    VS_FF_PAYMENTS_24H,   /* ... 24 hours */
    VS_FF_NEW_DEVICE,     /* the device was first seen less than an hour ago (or now), by a
                             customer known for longer than that: log(1 + the customer's past
                             purchases); 0 for a known device */
    VS_FF_NEW_COUNTRY,    /* 1 if the country is new in the same sense */
    VS_FF_NEW_PAYMENT,    /* 1 if the payment method is new in the same sense */
    VS_FF_ITEMS,          /* items in the order (quantity) */
    VS_FF_CART_TO_BUY, /* log(1 + seconds from the first add-to-cart to the purchase); -1: none */
    VS_FF_PRICE_VS_CATEGORY, /* log(unit price / category's typical unit price); 0 when unknown */
    VS_FRAUD_NFEATURES
};

/* Feature names as they appear in alerts, e.g. "amount_vs_mean". */
extern const char *const vs_fraud_feature_names[VS_FRAUD_NFEATURES];

#define VS_FRAUD_DEVICE_SLOTS 8
#define VS_FRAUD_COUNTRY_SLOTS 4
#define VS_FRAUD_PAYMENT_SLOTS 4

/* One remembered device, country or payment method: a hash of its value (0: empty slot). */
struct vs_fraud_slot {
    uint64_t hash;
    int64_t first_seen; /* event time, ms */
    int64_t last_seen;
};

/* The customer's fraud section (operator "fraud"), version 1. */
struct vs_fraud_section {
    int64_t first_seen;    /* first event of any type, ms; 0: never seen */
    int64_t last_purchase; /* ms; 0: none */
    int64_t cart_since;    /* first add-to-cart since the last purchase, ms; 0: none */
    uint32_t purchases;    /* purchases learned from */
    uint32_t frauds;       /* purchases labelled fraud */
    double amount_mean;    /* running mean and variance of the amount (the weight of the past is */
    double amount_var;     /* capped, so both follow a drifting customer) */
    double rate_10m;       /* decayed purchase counts as of last_purchase */
    double rate_24h;
    float usual[VS_FRAUD_NFEATURES]; /* running mean of each feature over past purchases */
    uint32_t events;                 /* events of any type (saturating) */
    uint32_t reserved;               /* zero; keeps the slots 8-aligned without padding */
    struct vs_fraud_slot devices[VS_FRAUD_DEVICE_SLOTS];
    struct vs_fraud_slot countries[VS_FRAUD_COUNTRY_SLOTS];
    struct vs_fraud_slot payments[VS_FRAUD_PAYMENT_SLOTS];
};

/* ==== The category price table (global) ==== */

#define VS_FRAUD_CATEGORY_SLOTS 1024

struct vs_fraud_category {
    uint64_t hash;   /* 0: empty */
    float log_price; /* EWMA of log unit price */
    uint32_t seen;   /* prices learned, saturating */
};

/* Open addressing over hashed category ids; when full, new categories share no slot and have no
 * typical price (the feature is 0), so the table stays bounded. Plain data: checkpointed as is
 * through vs_fraud_categories_write/read. */
struct vs_fraud_categories {
    struct vs_fraud_category slot[VS_FRAUD_CATEGORY_SLOTS];
};

/* Learn one observed unit price of category (NULL or non-positive price: ignored). */
void vs_fraud_categories_learn(struct vs_fraud_categories *c, const char *category, double price);
/* Typical unit price of category; 0 if unknown (fewer than 3 prices seen). */
double vs_fraud_categories_typical(const struct vs_fraud_categories *c, const char *category);

/* Versioned little-endian encoding; size, write (returns bytes or VS_EFULL), read (0 or
 * VS_ECORRUPT / VS_EVERSION). */
size_t vs_fraud_categories_size(void);
long vs_fraud_categories_write(const struct vs_fraud_categories *c, void *buf, size_t len);
int vs_fraud_categories_read(struct vs_fraud_categories *c, const void *buf, size_t len);

/* ==== Features ==== */

/* 64-bit hash of a string (FNV-1a, never 0), for ids and the hashed sets. */
uint64_t vs_fraud_hash(const char *s);

/*
 * The features of purchase ev against section s (as it was before ev) and the category table.
 * Returns 0, or VS_EINVAL when the purchase has no amount, or a NaN, infinite or negative one:
 * such a purchase must not reach the forest.
 */
int vs_fraud_features(const struct vs_fraud_section *s, const struct vs_fraud_categories *cat,
                      const struct vs_event *ev, double x[VS_FRAUD_NFEATURES]);

/*
 * Update the section with ev (any type): first seen, devices, countries and payment methods,
 * add-to-cart time; and, for a purchase whose features x were computed (x not NULL), the amount
 * statistics, purchase counters and usual values. Also feeds the category table with priced
 * events (cat may be NULL).
 */
void vs_fraud_observe(struct vs_fraud_section *s, struct vs_fraud_categories *cat,
                      const struct vs_event *ev, const double *x);

/* The customer's usual value of feature f; returns 0 and sets *v, or -1 when the customer has no
 * past purchase to compare with. */
int vs_fraud_usual(const struct vs_fraud_section *s, int f, double *v);

#endif
