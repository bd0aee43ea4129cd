/*
 * The shop event: the decoded form of one record of schemas/shop_event.avsc.
 *
 * A decoded event borrows its strings from the decoder that produced it: they stay valid until
 * that decoder decodes its next record. Every string is NUL-terminated; a NULL pointer means the
 * field was null (for nullable fields).
 */
#ifndef VALUESTREAM_EVENT_H
#define VALUESTREAM_EVENT_H

#include <stddef.h>
#include <stdint.h>

enum vs_event_type {
    VS_EVENT_VIEW = 0,
    VS_EVENT_ADD_TO_CART = 1,
    VS_EVENT_REMOVE_FROM_CART = 2,
    VS_EVENT_PURCHASE = 3,
    VS_EVENT_REFUND = 4,
};
#define VS_EVENT_TYPE_COUNT 5

/* "VIEW", "ADD_TO_CART", ... as in the schema's enum. */
const char *vs_event_type_name(enum vs_event_type type);

struct vs_event {
    const char *event_id;
    const char *user_id;
    size_t user_id_len;
    const char *session_id; /* nullable */
    enum vs_event_type type;
    const char *item_id;     /* nullable */
    const char *category_id; /* nullable */
    int has_price;
    double price; /* unit price, when has_price */
    int32_t quantity;
    const char *order_id; /* nullable */
    int has_amount;
    double amount;        /* order total for PURCHASE and REFUND, when has_amount */
    const char *currency; /* nullable */
    int64_t ts;           /* event time, epoch milliseconds */
    const char *device_id;      /* nullable */
    const char *ip;             /* nullable */
    const char *country;        /* nullable */
    const char *payment_method; /* nullable */
};

#endif
