/*
 * The profile operator's section of the customer record: the counters a customer profile is
 * made of. Other operators may read it through vs_ctx_section(ctx, "profile").
 */
#ifndef VS_OPERATORS_PROFILE_H
#define VS_OPERATORS_PROFILE_H

#include <stdint.h>

#include <valuestream/operator.h>

#define VS_PROFILE_ITEM_BITS 1024
#define VS_PROFILE_CATEGORY_BITS 256

struct vs_profile_section {
    int64_t first_seen;
    int64_t last_seen;
    int64_t last_purchase_ts; /* 0: none */
    int64_t last_emit_ts;     /* event time of the last profile emitted; 0: none */
    int64_t counts[VS_EVENT_TYPE_COUNT];
    int64_t sessions;
    int64_t purchases_with_amount;
    double purchase_amount_sum; /* positive purchase amounts */
    double total_spend;         /* purchases minus refunds, never below zero */
    uint64_t last_session_hash;
    /* Linear-counting sketches of distinct items and categories: bounded whatever the history. */
    uint8_t items[VS_PROFILE_ITEM_BITS / 8];
    uint8_t categories[VS_PROFILE_CATEGORY_BITS / 8];
};

extern const struct vs_operator vs_profile_operator;

/* Estimated number of distinct values set in a linear-counting sketch of bits bits. */
int64_t vs_profile_distinct(const uint8_t *sketch, int bits);

#endif
