/*
 * The Avro codec: round trips of the input and every output schema, every validation rule,
 * Confluent framing, garbage that must be rejected without a crash, agreement of the
 * specialised event reader with Avro C's generic reader, no allocation per decoded event,
 * output field positions found by path, and output strings set without a copy.
 */
#define _GNU_SOURCE
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

#include "codec.h"

/* Count heap allocations made by this process (glibc's malloc is called underneath). Under
 * AddressSanitizer, which must own malloc itself, the count is off and its test is skipped. */
#if defined(__SANITIZE_ADDRESS__)
#define VS_COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VS_COUNT_ALLOCS 0
#endif
#endif
#ifndef VS_COUNT_ALLOCS
#define VS_COUNT_ALLOCS 1
#endif
static long alloc_count;
#if VS_COUNT_ALLOCS
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
void *malloc(size_t n)
{
    alloc_count++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    alloc_count++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    alloc_count++;
    return __libc_realloc(p, n);
}
#endif

static struct vs_event full_event(void)
{
    struct vs_event ev = {
        .event_id = "e1",
        .user_id = "u42",
        .user_id_len = 3,
        .session_id = "s7",
        .type = VS_EVENT_PURCHASE,
        .item_id = "i9",
        .category_id = "c3",
        .has_price = 1,
        .price = 12.5,
        .quantity = 2,
        .order_id = "o1",
        .has_amount = 1,
        .amount = 25.0,
        .currency = "EUR",
        .ts = 1767225600000LL,
        .device_id = "d1",
        .ip = "10.0.0.1",
        .country = "DE",
        .payment_method = "card",
    };
    return ev;
}

static void assert_str_eq_or_null(const char *a, const char *b)
{
    if (!a || !b) {
        assert_ptr_equal(a, b);
    } else {
        assert_string_equal(a, b);
    }
}

static void assert_events_equal(const struct vs_event *a, const struct vs_event *b)
{
    assert_string_equal(a->event_id, b->event_id);
    assert_string_equal(a->user_id, b->user_id);
    assert_int_equal(strlen(b->user_id), b->user_id_len);
    assert_str_eq_or_null(a->session_id, b->session_id);
    assert_int_equal(a->type, b->type);
    assert_str_eq_or_null(a->item_id, b->item_id);
    assert_str_eq_or_null(a->category_id, b->category_id);
    assert_int_equal(a->has_price, b->has_price);
    if (a->has_price) {
        assert_true(a->price == b->price);
    }
    assert_int_equal(a->quantity, b->quantity);
    assert_str_eq_or_null(a->order_id, b->order_id);
    assert_int_equal(a->has_amount, b->has_amount);
    if (a->has_amount) {
        assert_true(a->amount == b->amount);
    }
    assert_str_eq_or_null(a->currency, b->currency);
    assert_int_equal(a->ts, b->ts);
    assert_str_eq_or_null(a->device_id, b->device_id);
    assert_str_eq_or_null(a->ip, b->ip);
    assert_str_eq_or_null(a->country, b->country);
    assert_str_eq_or_null(a->payment_method, b->payment_method);
}

static void test_event_round_trip(void **state)
{
    char err[256], why[256];
    struct vs__codec *c = vs__codec_new(NULL, err, sizeof(err));
    assert_non_null(c);
    struct vs_event in = full_event(), out;
    const void *buf;
    size_t len;
    assert_int_equal(vs__codec_encode_event(c, &in, &buf, &len), 0);
    char copy[1024];
    memcpy(copy, buf, len);
    assert_int_equal(vs__codec_decode_event(c, copy, len, &out, why, sizeof(why)), 0);
    assert_events_equal(&in, &out);
    assert_int_equal(vs__event_validate(&out, 0, why, sizeof(why)), 0);

    /* Every nullable field null. */
    struct vs_event sparse = {.event_id = "e2",
                              .user_id = "u",
                              .user_id_len = 1,
                              .type = VS_EVENT_VIEW,
                              .quantity = 0,
                              .ts = 1767225600000LL};
    assert_int_equal(vs__codec_encode_event(c, &sparse, &buf, &len), 0);
    memcpy(copy, buf, len);
    assert_int_equal(vs__codec_decode_event(c, copy, len, &out, why, sizeof(why)), 0);
    assert_events_equal(&sparse, &out);
    vs__codec_free(c);
}

static void test_confluent_framing(void **state)
{
    char err[256], why[256];
    struct vs__codec_options o = {.confluent = 1, .input_schema_id = 77};
    struct vs__codec *c = vs__codec_new(&o, err, sizeof(err));
    assert_non_null(c);
    struct vs_event in = full_event(), out;
    const void *buf;
    size_t len;
    assert_int_equal(vs__codec_encode_event(c, &in, &buf, &len), 0);
    const unsigned char *b = buf;
    assert_int_equal(b[0], 0);
    assert_int_equal((b[1] << 24) | (b[2] << 16) | (b[3] << 8) | b[4], 77);
    char copy[1024];
    memcpy(copy, buf, len);
    assert_int_equal(vs__codec_decode_event(c, copy, len, &out, why, sizeof(why)), 0);
    assert_events_equal(&in, &out);
    copy[4] = 78; /* another schema id */
    assert_int_equal(vs__codec_decode_event(c, copy, len, &out, why, sizeof(why)), VS_EDECODE);
    assert_non_null(strstr(why, "schema id 78"));
    copy[0] = 1; /* not framed */
    assert_int_equal(vs__codec_decode_event(c, copy, len, &out, why, sizeof(why)), VS_EDECODE);
    vs__codec_free(c);
}

static void test_garbage_rejected(void **state)
{
    char err[256], why[256];
    struct vs__codec *c = vs__codec_new(NULL, err, sizeof(err));
    struct vs_event in = full_event(), out;
    const void *buf;
    size_t len;
    assert_int_equal(vs__codec_encode_event(c, &in, &buf, &len), 0);
    char good[1024];
    memcpy(good, buf, len);
    /* Every truncation fails, so does a trailing byte. */
    for (size_t n = 0; n < len; n++) {
        assert_int_equal(vs__codec_decode_event(c, good, n, &out, why, sizeof(why)), VS_EDECODE);
    }
    good[len] = 0;
    assert_int_equal(vs__codec_decode_event(c, good, len + 1, &out, why, sizeof(why)), VS_EDECODE);
    /* Random bytes never crash; the ones that decode are well-formed events. */
    srand(1);
    int decoded = 0;
    for (int i = 0; i < 20000; i++) {
        unsigned char junk[200];
        size_t n = (size_t)(rand() % (int)sizeof(junk));
        for (size_t k = 0; k < n; k++) {
            junk[k] = (unsigned char)rand();
        }
        if (vs__codec_decode_event(c, junk, n, &out, why, sizeof(why)) == 0) {
            decoded++;
            assert_non_null(out.user_id);
            assert_true((unsigned)out.type < VS_EVENT_TYPE_COUNT);
        }
    }
    (void)decoded;
    vs__codec_free(c);
}

/* A NUL inside a string, at any position of ids from 1 to 40 bytes (the word-wise check and
 * its byte-wise tail), fails the decode: such an id would be cut short as a C string. */
static void test_embedded_nul_rejected(void **state)
{
    char err[256], why[256];
    struct vs__codec *c = vs__codec_new(NULL, err, sizeof(err));
    assert_non_null(c);
    for (size_t n = 1; n <= 40; n++) {
        char id[64];
        for (size_t i = 0; i < n; i++) {
            id[i] = (char)('a' + i % 26);
        }
        id[n] = 0;
        struct vs_event in = full_event(), out;
        in.user_id = id;
        in.user_id_len = n;
        const void *buf;
        size_t len;
        assert_int_equal(vs__codec_encode_event(c, &in, &buf, &len), 0);
        char good[1024];
        memcpy(good, buf, len);
        char framed[65] = {(char)(2 * n)}; /* the string's zigzag length, then its bytes */
        memcpy(framed + 1, id, n);
        char *at = memmem(good, len, framed, n + 1);
        assert_non_null(at);
        at++;
        assert_int_equal(vs__codec_decode_event(c, good, len, &out, why, sizeof(why)), 0);
        assert_string_equal(out.user_id, id);
        for (size_t i = 0; i < n; i++) {
            char bad[1024];
            memcpy(bad, good, len);
            bad[at - good + (ptrdiff_t)i] = 0;
            assert_int_equal(vs__codec_decode_event(c, bad, len, &out, why, sizeof(why)),
                             VS_EDECODE);
        }
    }
    vs__codec_free(c);
}

static void expect_invalid(struct vs_event ev, int64_t now, const char *fragment)
{
    char why[256];
    assert_int_equal(vs__event_validate(&ev, now, why, sizeof(why)), VS_ESCHEMA);
    if (!strstr(why, fragment)) {
        fail_msg("reason '%s' does not mention '%s'", why, fragment);
    }
}

static void test_validation_rules(void **state)
{
    struct vs_event ev = full_event();
    char why[256];
    assert_int_equal(vs__event_validate(&ev, 0, why, sizeof(why)), 0);
    struct vs_event e = ev;
    e.user_id = "";
    e.user_id_len = 0;
    expect_invalid(e, 0, "user_id");
    e = ev;
    e.quantity = -1;
    expect_invalid(e, 0, "quantity");
    e = ev;
    e.price = NAN;
    expect_invalid(e, 0, "price");
    e = ev;
    e.price = INFINITY;
    expect_invalid(e, 0, "price");
    e = ev;
    e.amount = NAN;
    expect_invalid(e, 0, "amount");
    e = ev;
    e.amount = -INFINITY;
    expect_invalid(e, 0, "amount");
    e = ev;
    e.ts = 946684799999LL; /* just before 2000 */
    expect_invalid(e, 0, "2000");
    e = ev;
    e.ts = ev.ts + 86400000LL + 1;
    expect_invalid(e, ev.ts, "future"); /* live mode: more than a day ahead */
    assert_int_equal(vs__event_validate(&e, 0, why, sizeof(why)), 0); /* replay: fine */
    e = ev;
    e.has_amount = 0;
    expect_invalid(e, 0, "PURCHASE without amount");
    e.type = VS_EVENT_VIEW;
    assert_int_equal(vs__event_validate(&e, 0, why, sizeof(why)), 0);
}

/* Avro C's generic reader and the specialised one agree on random events. */
static void test_agrees_with_generic_reader(void **state)
{
    char err[256], why[256];
    struct vs__codec *c = vs__codec_new(NULL, err, sizeof(err));
    avro_schema_t schema;
    const char *json = vs__schema_json("shop_event");
    assert_int_equal(avro_schema_from_json_length(json, strlen(json), &schema), 0);
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t v;
    avro_generic_value_new(iface, &v);
    avro_reader_t reader = avro_reader_memory("", 0);
    srand(7);
    for (int i = 0; i < 2000; i++) {
        char ids[8][16];
        for (int k = 0; k < 8; k++) {
            snprintf(ids[k], sizeof(ids[k]), "x%d", rand());
        }
        struct vs_event in = {
            .event_id = ids[0],
            .user_id = ids[1],
            .user_id_len = strlen(ids[1]),
            .session_id = rand() % 2 ? ids[2] : NULL,
            .type = rand() % VS_EVENT_TYPE_COUNT,
            .item_id = rand() % 2 ? ids[3] : NULL,
            .has_price = rand() % 2,
            .price = rand() / 7.0,
            .quantity = rand() % 100 - 50,
            .has_amount = rand() % 2,
            .amount = rand() / 3.0,
            .ts = (int64_t)rand() * 1000,
            .country = rand() % 2 ? ids[4] : NULL,
        };
        const void *buf;
        size_t len;
        assert_int_equal(vs__codec_encode_event(c, &in, &buf, &len), 0);
        char copy[512];
        memcpy(copy, buf, len);
        struct vs_event out;
        assert_int_equal(vs__codec_decode_event(c, copy, len, &out, why, sizeof(why)), 0);
        assert_events_equal(&in, &out);
        avro_reader_memory_set_source(reader, copy, (int64_t)len);
        assert_int_equal(avro_value_read(reader, &v), 0);
        avro_value_t f, b;
        const char *s;
        size_t sl;
        assert_int_equal(avro_value_get_by_name(&v, "user_id", &f, NULL), 0);
        assert_int_equal(avro_value_get_string(&f, &s, &sl), 0);
        assert_string_equal(s, out.user_id);
        assert_int_equal(avro_value_get_by_name(&v, "ts", &f, NULL), 0);
        int64_t ts = 0;
        assert_int_equal(avro_value_get_long(&f, &ts), 0);
        assert_int_equal(ts, out.ts);
        assert_int_equal(avro_value_get_by_name(&v, "country", &f, NULL), 0);
        int disc = 0;
        assert_int_equal(avro_value_get_discriminant(&f, &disc), 0);
        assert_int_equal(disc, out.country != NULL);
        if (disc) {
            assert_int_equal(avro_value_get_current_branch(&f, &b), 0);
            assert_int_equal(avro_value_get_string(&b, &s, &sl), 0);
            assert_string_equal(s, out.country);
        }
    }
    avro_reader_free(reader);
    avro_value_decref(&v);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
    vs__codec_free(c);
}

static void test_outputs_round_trip(void **state)
{
    char err[256];
    struct vs__codec *c = vs__codec_new(NULL, err, sizeof(err));
    for (int out = 0; out < VS_OUT_COUNT; out++) {
        avro_value_t *rec = vs__codec_output_begin(c, out), f;
        /* Every output names its customer in user_id. */
        assert_int_equal(avro_value_get_by_name(rec, "user_id", &f, NULL), 0);
        assert_int_equal(avro_value_set_string(&f, "u-round-trip"), 0);
        const void *buf;
        size_t len;
        assert_int_equal(vs__codec_output_encode(c, out, &buf, &len), 0);
        char copy[4096];
        memcpy(copy, buf, len);
        char *json = NULL;
        assert_int_equal(vs__codec_output_to_json(c, out, copy, len, &json), 0);
        assert_non_null(strstr(json, "u-round-trip"));
        free(json);
    }
    vs__codec_free(c);
}

/* After warm-up, decoding and validating an event allocates nothing. */
static void test_decode_allocates_nothing(void **state)
{
    if (!VS_COUNT_ALLOCS) {
        skip();
    }
    char err[256], why[256];
    struct vs__codec *c = vs__codec_new(NULL, err, sizeof(err));
    struct vs_event in = full_event(), out;
    const void *buf;
    size_t len;
    vs__codec_encode_event(c, &in, &buf, &len);
    char copy[1024];
    memcpy(copy, buf, len);
    size_t len1 = len;
    struct vs_event sparse = {.event_id = "e2",
                              .user_id = "u",
                              .user_id_len = 1,
                              .type = VS_EVENT_VIEW,
                              .ts = 1767225600000LL};
    vs__codec_encode_event(c, &sparse, &buf, &len);
    char copy2[1024];
    size_t len2 = len;
    memcpy(copy2, buf, len2);
    assert_int_equal(vs__codec_decode_event(c, copy, len1, &out, why, sizeof(why)), 0);
    long before = alloc_count;
    for (int i = 0; i < 100000; i++) {
        int rc = i % 2 ? vs__codec_decode_event(c, copy2, len2, &out, why, sizeof(why))
                       : vs__codec_decode_event(c, copy, len1, &out, why, sizeof(why));
        assert_int_equal(rc, 0);
        assert_int_equal(vs__event_validate(&out, 0, why, sizeof(why)), 0);
    }
    assert_int_equal(alloc_count - before, 0);
    vs__codec_free(c);
}

/* A recommendation list of n items, its strings set by vs_output_set_string (borrow) or by
 * avro_value_set_string (copy); the encoded bytes go to out. */
static size_t build_list(struct vs__codec *c, char ids[][16], int n, int borrow, char *out)
{
    avro_value_t *rec = vs__codec_output_begin(c, VS_OUT_RECOMMENDATION), f, arr, elem, sub, b;
    assert_int_equal(avro_value_get_by_name(rec, "user_id", &f, NULL), 0);
    assert_int_equal(borrow ? vs_output_set_string(&f, ids[0]) : avro_value_set_string(&f, ids[0]),
                     0);
    assert_int_equal(avro_value_get_by_name(rec, "items", &arr, NULL), 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(avro_value_append(&arr, &elem, NULL), 0);
        assert_int_equal(avro_value_get_by_name(&elem, "item_id", &sub, NULL), 0);
        assert_int_equal(
            borrow ? vs_output_set_string(&sub, ids[i]) : avro_value_set_string(&sub, ids[i]), 0);
        assert_int_equal(avro_value_get_by_name(&elem, "related_item_id", &sub, NULL), 0);
        assert_int_equal(avro_value_set_branch(&sub, 1, &b), 0);
        assert_int_equal(borrow ? vs_output_set_string(&b, ids[n - 1 - i])
                                : avro_value_set_string(&b, ids[n - 1 - i]),
                         0);
    }
    const void *buf;
    size_t len;
    assert_int_equal(vs__codec_output_encode(c, VS_OUT_RECOMMENDATION, &buf, &len), 0);
    memcpy(out, buf, len);
    return len;
}

/* vs_output_set_string encodes what avro_value_set_string does, from the caller's memory (a
 * change made before the encoding is in it), and a record of borrowed strings allocates
 * nothing after warm-up, where copied strings in array items allocate at every record. */
static void test_output_strings_borrowed(void **state)
{
    char err[256], a[4096], b[4096];
    struct vs__codec *c = vs__codec_new(NULL, err, sizeof(err));
    char ids[20][16];
    for (int i = 0; i < 20; i++) {
        snprintf(ids[i], sizeof(ids[i]), "item-%d", i * 37);
    }
    size_t la = build_list(c, ids, 20, 1, a), lb = build_list(c, ids, 20, 0, b);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);

    avro_value_t *rec = vs__codec_output_begin(c, VS_OUT_RECOMMENDATION), f;
    char user[8] = "u-1";
    assert_int_equal(avro_value_get_by_name(rec, "user_id", &f, NULL), 0);
    assert_int_equal(vs_output_set_string(&f, user), 0);
    user[2] = '2';
    const void *buf;
    size_t len;
    assert_int_equal(vs__codec_output_encode(c, VS_OUT_RECOMMENDATION, &buf, &len), 0);
    char *json = NULL;
    memcpy(a, buf, len);
    assert_int_equal(vs__codec_output_to_json(c, VS_OUT_RECOMMENDATION, a, len, &json), 0);
    assert_non_null(strstr(json, "\"u-2\""));
    free(json);

    if (VS_COUNT_ALLOCS) {
        long before = alloc_count;
        for (int r = 0; r < 100; r++) {
            build_list(c, ids, 20, 1, a);
        }
        assert_int_equal(alloc_count - before, 0);
        before = alloc_count;
        build_list(c, ids, 20, 0, b);
        assert_true(alloc_count - before >= 20);
    }
    vs__codec_free(c);
}

/* Field positions by path agree with Avro C's lookup by name, through an array of records too;
 * names the schema lacks, and paths through a field that holds no record, are not found. */
static void test_output_field_positions(void **state)
{
    (void)state;
    char err[256];
    struct vs__codec *c = vs__codec_new(NULL, err, sizeof(err));
    assert_non_null(c);
    avro_value_t *rec = vs__codec_output_begin(c, VS_OUT_RECOMMENDATION), field, arr, elem;
    size_t want;
    const char *top[] = {"user_id", "ts", "trigger_event_id", "model_version", "items"};
    for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
        assert_int_equal(avro_value_get_by_name(rec, top[i], &field, &want), 0);
        assert_int_equal(vs__codec_output_field(c, VS_OUT_RECOMMENDATION, top[i]), (int)want);
    }
    assert_int_equal(avro_value_get_by_name(rec, "items", &arr, NULL), 0);
    assert_int_equal(avro_value_append(&arr, &elem, NULL), 0);
    const char *inner[] = {"item_id", "score", "reason", "related_item_id"};
    for (size_t i = 0; i < sizeof(inner) / sizeof(inner[0]); i++) {
        char path[64];
        snprintf(path, sizeof(path), "items.%s", inner[i]);
        assert_int_equal(avro_value_get_by_name(&elem, inner[i], &field, &want), 0);
        assert_int_equal(vs__codec_output_field(c, VS_OUT_RECOMMENDATION, path), (int)want);
    }
    assert_true(vs__codec_output_field(c, VS_OUT_RECOMMENDATION, "items.item_id") !=
                vs__codec_output_field(c, VS_OUT_RECOMMENDATION, "items.score"));
    const char *missing[] = {"nope",   "items.nope", "user_id.x",   "items.",
                             ".items", "",           "items..score"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        assert_int_equal(vs__codec_output_field(c, VS_OUT_RECOMMENDATION, missing[i]),
                         VS_ENOTFOUND);
    }
    assert_true(vs__codec_output_field(c, VS_OUT_FRAUD_ALERT, "top_features.usual_value") >= 0);
    assert_int_equal(vs__codec_output_field(c, VS_OUT_PROFILE, "items"), VS_ENOTFOUND);
    vs__codec_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_round_trip),
        cmocka_unit_test(test_confluent_framing),
        cmocka_unit_test(test_garbage_rejected),
        cmocka_unit_test(test_embedded_nul_rejected),
        cmocka_unit_test(test_validation_rules),
        cmocka_unit_test(test_agrees_with_generic_reader),
        cmocka_unit_test(test_outputs_round_trip),
        cmocka_unit_test(test_decode_allocates_nothing),
        cmocka_unit_test(test_output_field_positions),
        cmocka_unit_test(test_output_strings_borrowed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
