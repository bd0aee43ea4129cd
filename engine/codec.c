/*
 * The Avro codec.
 *
 * Output records and the events the generator writes are built and encoded with Avro C's
 * generic values and a reused memory writer. Input events take a faster road: Avro C's value
 * reader gives every string it reads a fresh heap buffer (pinned down by
 * tests/unit/test_avro_behaviour.c), which is one malloc per string per event on the hottest
 * path of the engine. So the codec decodes shop events with a reader specialised to the
 * ShopEvent schema: at construction it checks, field by field, that the schema Avro C parsed
 * from schemas/shop_event.avsc has exactly the layout the reader expects, so the two cannot
 * drift apart, and tests compare both decoders on random records. Decoded strings are copied,
 * NUL-terminated, into one reused buffer.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valuestream/error.h>

#include "codec.h"

struct vs__schema_entry {
    const char *name;
    const char *json;
};
extern const struct vs__schema_entry vs__schemas[];

static const char *const vs__output_schema_names[VS_OUT_COUNT] = {"user_profile", "recommendation",
                                                                  "churn_alert", "fraud_alert"};

struct vs__codec_slot {
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    /* The record's fields, looked up once: resetting them through these handles costs a third
     * of looking each up again per output record. */
    avro_value_t *fields;
    unsigned char *is_union;
    size_t nfields;
};

struct vs__codec {
    struct vs__codec_options opts;
    struct vs__codec_slot event;
    struct vs__codec_slot out[VS_OUT_COUNT];
    avro_writer_t writer;
    avro_reader_t reader;
    char *wbuf; /* writer's buffer; its first 5 bytes are the Confluent header when framed */
    size_t wcap;
    char *strbuf; /* decoded strings of the last event, NUL-terminated */
    size_t strcap;
};

const char *vs__schema_json(const char *name)
{
    for (const struct vs__schema_entry *e = vs__schemas; e->name; e++) {
        if (strcmp(e->name, name) == 0) {
            return e->json;
        }
    }
    return NULL;
}

const char *vs_event_type_name(enum vs_event_type type)
{
    static const char *const names[VS_EVENT_TYPE_COUNT] = {
        "VIEW", "ADD_TO_CART", "REMOVE_FROM_CART", "PURCHASE", "REFUND"};
    return (unsigned)type < VS_EVENT_TYPE_COUNT ? names[type] : "UNKNOWN";
}

const char *vs_output_kind(enum vs_output out)
{
    static const char *const kinds[VS_OUT_COUNT] = {"profile", "recommendation", "churn_alert",
                                                    "fraud_alert"};
    return (unsigned)out < VS_OUT_COUNT ? kinds[out] : "unknown";
}

static int slot_init(struct vs__codec_slot *s, const char *name, char *errbuf, size_t errlen)
{
    const char *json = vs__schema_json(name);
    if (!json) {
        snprintf(errbuf, errlen, "schema %s is not compiled in", name);
        return VS_ENOTFOUND;
    }
    if (avro_schema_from_json_length(json, strlen(json), &s->schema)) {
        snprintf(errbuf, errlen, "schema %s: %s", name, avro_strerror());
        return VS_ESCHEMA;
    }
    s->iface = avro_generic_class_from_schema(s->schema);
    if (!s->iface || avro_generic_value_new(s->iface, &s->value)) {
        snprintf(errbuf, errlen, "schema %s: %s", name, avro_strerror());
        return VS_ENOMEM;
    }
    size_t n = 0;
    avro_value_get_size(&s->value, &n);
    s->fields = calloc(n ? n : 1, sizeof *s->fields);
    s->is_union = calloc(n ? n : 1, 1);
    if (!s->fields || !s->is_union) {
        snprintf(errbuf, errlen, "schema %s: out of memory", name);
        return VS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (avro_value_get_by_index(&s->value, i, &s->fields[i], NULL)) {
            snprintf(errbuf, errlen, "schema %s: %s", name, avro_strerror());
            return VS_ESCHEMA;
        }
        s->is_union[i] = avro_value_get_type(&s->fields[i]) == AVRO_UNION;
    }
    s->nfields = n;
    return 0;
}

static void slot_done(struct vs__codec_slot *s)
{
    free(s->fields);
    free(s->is_union);
    if (s->iface) {
        avro_value_decref(&s->value);
        avro_value_iface_decref(s->iface);
    }
    if (s->schema) {
        avro_schema_decref(s->schema);
    }
}

/* ==== The layout the specialised event reader expects ==== */

enum field_kind { F_STRING, F_OPT_STRING, F_ENUM, F_OPT_DOUBLE, F_INT, F_LONG };

static const struct {
    const char *name;
    enum field_kind kind;
} event_layout[] = {
    {"event_id", F_STRING},       {"user_id", F_STRING},
    {"session_id", F_OPT_STRING}, {"type", F_ENUM},
    {"item_id", F_OPT_STRING},    {"category_id", F_OPT_STRING},
    {"price", F_OPT_DOUBLE},      {"quantity", F_INT},
    {"order_id", F_OPT_STRING},   {"amount", F_OPT_DOUBLE},
    {"currency", F_OPT_STRING},   {"ts", F_LONG},
    {"device_id", F_OPT_STRING},  {"ip", F_OPT_STRING},
    {"country", F_OPT_STRING},    {"payment_method", F_OPT_STRING},
};
#define EVENT_FIELDS ((int)(sizeof(event_layout) / sizeof(event_layout[0])))

static int optional_of(avro_schema_t s, avro_type_t t)
{
    return avro_typeof(s) == AVRO_UNION && avro_schema_union_size(s) == 2 &&
           avro_typeof(avro_schema_union_branch(s, 0)) == AVRO_NULL &&
           avro_typeof(avro_schema_union_branch(s, 1)) == t;
}

static int check_event_layout(avro_schema_t rec, char *errbuf, size_t errlen)
{
    if (avro_typeof(rec) != AVRO_RECORD || (int)avro_schema_record_size(rec) != EVENT_FIELDS) {
        snprintf(errbuf, errlen, "shop_event schema: expected a record of %d fields", EVENT_FIELDS);
        return VS_ESCHEMA;
    }
    for (int i = 0; i < EVENT_FIELDS; i++) {
        const char *name = avro_schema_record_field_name(rec, i);
        avro_schema_t f = avro_schema_record_field_get_by_index(rec, i);
        int ok = strcmp(name, event_layout[i].name) == 0;
        switch (event_layout[i].kind) {
        case F_STRING:
            ok = ok && avro_typeof(f) == AVRO_STRING;
            break;
        case F_OPT_STRING:
            ok = ok && optional_of(f, AVRO_STRING);
            break;
        case F_ENUM:
            ok = ok && avro_typeof(f) == AVRO_ENUM &&
                 avro_schema_enum_number_of_symbols(f) == VS_EVENT_TYPE_COUNT;
            for (int k = 0; ok && k < VS_EVENT_TYPE_COUNT; k++) {
                ok = strcmp(avro_schema_enum_get(f, k), vs_event_type_name(k)) == 0;
            }
            break;
        case F_OPT_DOUBLE:
            ok = ok && optional_of(f, AVRO_DOUBLE);
            break;
        case F_INT:
            ok = ok && avro_typeof(f) == AVRO_INT32;
            break;
        case F_LONG:
            ok = ok && avro_typeof(f) == AVRO_INT64;
            break;
        }
        if (!ok) {
            snprintf(errbuf, errlen, "shop_event schema: field %d (%s) does not match the decoder",
                     i, name);
            return VS_ESCHEMA;
        }
    }
    return 0;
}

struct vs__codec *vs__codec_new(const struct vs__codec_options *opts, char *errbuf, size_t errlen)
{
    struct vs__codec *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    if (opts) {
        c->opts = *opts;
    }
    if (slot_init(&c->event, "shop_event", errbuf, errlen) ||
        check_event_layout(c->event.schema, errbuf, errlen)) {
        vs__codec_free(c);
        return NULL;
    }
    for (int i = 0; i < VS_OUT_COUNT; i++) {
        if (slot_init(&c->out[i], vs__output_schema_names[i], errbuf, errlen)) {
            vs__codec_free(c);
            return NULL;
        }
    }
    c->wcap = 64 * 1024;
    c->wbuf = malloc(c->wcap);
    c->strcap = 4096;
    c->strbuf = malloc(c->strcap);
    c->writer = avro_writer_memory(c->wbuf + 5, (int64_t)c->wcap - 5);
    c->reader = avro_reader_memory("", 0);
    if (!c->wbuf || !c->strbuf || !c->writer || !c->reader) {
        snprintf(errbuf, errlen, "out of memory");
        vs__codec_free(c);
        return NULL;
    }
    return c;
}

void vs__codec_free(struct vs__codec *c)
{
    if (!c) {
        return;
    }
    slot_done(&c->event);
    for (int i = 0; i < VS_OUT_COUNT; i++) {
        slot_done(&c->out[i]);
    }
    if (c->writer) {
        avro_writer_free(c->writer);
    }
    if (c->reader) {
        avro_reader_free(c->reader);
    }
    free(c->wbuf);
    free(c->strbuf);
    free(c);
}

/* ==== Decoding ==== */

struct rd {
    const uint8_t *p, *end;
};

/* Avro's zig-zag varint. */
static int rd_long(struct rd *r, int64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            return -1;
        }
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
    }
    return -1;
}

static int rd_double(struct rd *r, double *out)
{
    if (r->end - r->p < 8) {
        return -1;
    }
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | r->p[i];
    }
    r->p += 8;
    memcpy(out, &v, sizeof(v));
    return 0;
}

/* A string's bytes, copied NUL-terminated to *dst (advanced). */
/* Whether n bytes hold a NUL, a word at a time: ids are a few dozen bytes, where memchr's call
 * and setup cost more than the scan (it was 4% of the engine's loop). */
static int has_nul(const char *p, size_t n)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if ((w - ones) & ~w & highs) {
            return 1;
        }
    }
    for (; i < n; i++) {
        if (p[i] == 0) {
            return 1;
        }
    }
    return 0;
}

static int rd_string(struct rd *r, char **dst, const char **out, size_t *lenp)
{
    int64_t len;
    if (rd_long(r, &len) || len < 0 || len > r->end - r->p) {
        return -1;
    }
    char *s = *dst;
    memcpy(s, r->p, (size_t)len);
    s[len] = 0;
    if (has_nul(s, (size_t)len)) {
        return -1; /* an embedded NUL cannot be a valid id */
    }
    r->p += len;
    *dst += len + 1;
    *out = s;
    if (lenp) {
        *lenp = (size_t)len;
    }
    return 0;
}

static int rd_branch(struct rd *r, int *present)
{
    int64_t b;
    if (rd_long(r, &b) || (b != 0 && b != 1)) {
        return -1;
    }
    *present = (int)b;
    return 0;
}

static int rd_opt_string(struct rd *r, char **dst, const char **out)
{
    int present;
    if (rd_branch(r, &present)) {
        return -1;
    }
    *out = NULL;
    return present ? rd_string(r, dst, out, NULL) : 0;
}

static int rd_opt_double(struct rd *r, int *has, double *out)
{
    if (rd_branch(r, has)) {
        return -1;
    }
    *out = 0;
    return *has ? rd_double(r, out) : 0;
}

int vs__codec_decode_event(struct vs__codec *c, const void *buf, size_t len, struct vs_event *ev,
                           char *why, size_t whylen)
{
    return vs__codec_decode_event_buf(c, buf, len, ev, &c->strbuf, &c->strcap, why, whylen);
}

int vs__codec_decode_event_buf(struct vs__codec *c, const void *buf, size_t len,
                               struct vs_event *ev, char **strbuf, size_t *strcap, char *why,
                               size_t whylen)
{
    struct rd r = {buf, (const uint8_t *)buf + len};
    if (c->opts.confluent) {
        if (len < 5 || r.p[0] != 0) {
            snprintf(why, whylen, "not Confluent-framed (magic byte)");
            return VS_EDECODE;
        }
        int32_t id = (int32_t)((uint32_t)r.p[1] << 24 | (uint32_t)r.p[2] << 16 |
                               (uint32_t)r.p[3] << 8 | r.p[4]);
        if (id != c->opts.input_schema_id) {
            snprintf(why, whylen, "unknown schema id %d", (int)id);
            return VS_EDECODE;
        }
        r.p += 5;
    }
    /* Every string fits: the copies are at most the record's bytes plus a NUL per field. */
    if (len + EVENT_FIELDS + 1 > *strcap) {
        size_t cap = *strcap ? *strcap : 256;
        while (cap < len + EVENT_FIELDS + 1) {
            cap *= 2;
        }
        char *nb = realloc(*strbuf, cap);
        if (!nb) {
            snprintf(why, whylen, "out of memory");
            return VS_ENOMEM;
        }
        *strbuf = nb;
        *strcap = cap;
    }
    char *dst = *strbuf;
    int64_t v;
    const char *field = "event_id";
    memset(ev, 0, sizeof(*ev));
#define STEP(name, expr)                                                                           \
    do {                                                                                           \
        field = name;                                                                              \
        if (expr) {                                                                                \
            goto bad;                                                                              \
        }                                                                                          \
    } while (0)
    STEP("event_id", rd_string(&r, &dst, &ev->event_id, NULL));
    STEP("user_id", rd_string(&r, &dst, &ev->user_id, &ev->user_id_len));
    STEP("session_id", rd_opt_string(&r, &dst, &ev->session_id));
    STEP("type", rd_long(&r, &v) || v < 0 || v >= VS_EVENT_TYPE_COUNT);
    ev->type = (enum vs_event_type)v;
    STEP("item_id", rd_opt_string(&r, &dst, &ev->item_id));
    STEP("category_id", rd_opt_string(&r, &dst, &ev->category_id));
    STEP("price", rd_opt_double(&r, &ev->has_price, &ev->price));
    STEP("quantity", rd_long(&r, &v) || v < INT32_MIN || v > INT32_MAX);
    ev->quantity = (int32_t)v;
    STEP("order_id", rd_opt_string(&r, &dst, &ev->order_id));
    STEP("amount", rd_opt_double(&r, &ev->has_amount, &ev->amount));
    STEP("currency", rd_opt_string(&r, &dst, &ev->currency));
    STEP("ts", rd_long(&r, &ev->ts));
    STEP("device_id", rd_opt_string(&r, &dst, &ev->device_id));
    STEP("ip", rd_opt_string(&r, &dst, &ev->ip));
    STEP("country", rd_opt_string(&r, &dst, &ev->country));
    STEP("payment_method", rd_opt_string(&r, &dst, &ev->payment_method));
#undef STEP
    if (r.p != r.end) {
        snprintf(why, whylen, "%zu bytes after the end of the record", (size_t)(r.end - r.p));
        return VS_EDECODE;
    }
    return 0;
bad:
    snprintf(why, whylen, "cannot decode field %s", field);
    return VS_EDECODE;
}

/* 2000-01-01T00:00:00Z in epoch ms. */
#define VS__TS_MIN 946684800000LL
#define VS__DAY_MS 86400000LL

int vs__event_validate(const struct vs_event *ev, int64_t now_ms, char *why, size_t whylen)
{
    if (!ev->user_id || ev->user_id_len == 0) {
        snprintf(why, whylen, "missing user_id");
    } else if (ev->quantity < 0) {
        snprintf(why, whylen, "negative quantity %d", (int)ev->quantity);
    } else if (ev->has_price && !isfinite(ev->price)) {
        snprintf(why, whylen, "price is not a finite number");
    } else if (ev->has_amount && !isfinite(ev->amount)) {
        snprintf(why, whylen, "amount is not a finite number");
    } else if (ev->ts < VS__TS_MIN) {
        snprintf(why, whylen, "ts %lld is before the year 2000", (long long)ev->ts);
    } else if (now_ms > 0 && ev->ts > now_ms + VS__DAY_MS) {
        snprintf(why, whylen, "ts %lld is more than a day in the future", (long long)ev->ts);
    } else if (ev->type == VS_EVENT_PURCHASE && !ev->has_amount) {
        snprintf(why, whylen, "PURCHASE without amount");
    } else {
        return 0;
    }
    return VS_ESCHEMA;
}

/* ==== Encoding ==== */

static void put_be32(char *p, int32_t v)
{
    p[0] = (char)((uint32_t)v >> 24);
    p[1] = (char)((uint32_t)v >> 16);
    p[2] = (char)((uint32_t)v >> 8);
    p[3] = (char)v;
}

/* Write value into the reused buffer, growing it (rarely) when a record does not fit. */
static int encode_value(struct vs__codec *c, avro_value_t *value, int32_t schema_id,
                        const void **buf, size_t *len)
{
    for (;;) {
        avro_writer_reset(c->writer);
        int rc = avro_value_write(c->writer, value);
        if (rc == 0) {
            break;
        }
        if (rc != ENOSPC || c->wcap >= (64u << 20)) {
            return VS_EINVAL;
        }
        size_t cap = c->wcap * 2;
        char *nb = malloc(cap);
        if (!nb) {
            return VS_ENOMEM;
        }
        avro_writer_free(c->writer);
        free(c->wbuf);
        c->wbuf = nb;
        c->wcap = cap;
        c->writer = avro_writer_memory(c->wbuf + 5, (int64_t)c->wcap - 5);
    }
    size_t n = (size_t)avro_writer_tell(c->writer);
    if (c->opts.confluent) {
        c->wbuf[0] = 0;
        put_be32(c->wbuf + 1, schema_id);
        *buf = c->wbuf;
        *len = n + 5;
    } else {
        *buf = c->wbuf + 5;
        *len = n;
    }
    return 0;
}

static int set_opt_string(avro_value_t *rec, const char *name, const char *s)
{
    avro_value_t f, b;
    if (avro_value_get_by_name(rec, name, &f, NULL)) {
        return -1;
    }
    if (!s) {
        return avro_value_set_branch(&f, 0, &b) || avro_value_set_null(&b);
    }
    return avro_value_set_branch(&f, 1, &b) || avro_value_set_string(&b, s);
}

static int set_opt_double(avro_value_t *rec, const char *name, int has, double d)
{
    avro_value_t f, b;
    if (avro_value_get_by_name(rec, name, &f, NULL)) {
        return -1;
    }
    if (!has) {
        return avro_value_set_branch(&f, 0, &b) || avro_value_set_null(&b);
    }
    return avro_value_set_branch(&f, 1, &b) || avro_value_set_double(&b, d);
}

static int set_string(avro_value_t *rec, const char *name, const char *s)
{
    avro_value_t f;
    return avro_value_get_by_name(rec, name, &f, NULL) || avro_value_set_string(&f, s ? s : "");
}

int vs__codec_encode_event(struct vs__codec *c, const struct vs_event *ev, const void **buf,
                           size_t *len)
{
    avro_value_t *rec = &c->event.value, f;
    avro_value_reset(rec);
    int bad =
        set_string(rec, "event_id", ev->event_id) || set_string(rec, "user_id", ev->user_id) ||
        set_opt_string(rec, "session_id", ev->session_id) ||
        avro_value_get_by_name(rec, "type", &f, NULL) || avro_value_set_enum(&f, ev->type) ||
        set_opt_string(rec, "item_id", ev->item_id) ||
        set_opt_string(rec, "category_id", ev->category_id) ||
        set_opt_double(rec, "price", ev->has_price, ev->price) ||
        avro_value_get_by_name(rec, "quantity", &f, NULL) || avro_value_set_int(&f, ev->quantity) ||
        set_opt_string(rec, "order_id", ev->order_id) ||
        set_opt_double(rec, "amount", ev->has_amount, ev->amount) ||
        set_opt_string(rec, "currency", ev->currency) ||
        avro_value_get_by_name(rec, "ts", &f, NULL) || avro_value_set_long(&f, ev->ts) ||
        set_opt_string(rec, "device_id", ev->device_id) || set_opt_string(rec, "ip", ev->ip) ||
        set_opt_string(rec, "country", ev->country) ||
        set_opt_string(rec, "payment_method", ev->payment_method);
    if (bad) {
        return VS_EINVAL;
    }
    return encode_value(c, rec, c->opts.input_schema_id, buf, len);
}

/* Every field back to its empty value, every nullable one to null. */
static void reset_record(struct vs__codec_slot *s)
{
    for (size_t i = 0; i < s->nfields; i++) {
        if (s->is_union[i]) {
            avro_value_t b;
            avro_value_set_branch(&s->fields[i], 0, &b);
            avro_value_set_null(&b);
        } else {
            avro_value_reset(&s->fields[i]);
        }
    }
}

int vs_output_set_string(avro_value_t *value, const char *s)
{
    avro_wrapped_buffer_t buf;
    int rc = avro_wrapped_buffer_new_string(&buf, s ? s : ""); /* wraps s, frees nothing */
    return rc ? rc : avro_value_give_string_len(value, &buf);
}

avro_value_t *vs__codec_output_begin(struct vs__codec *c, enum vs_output out)
{
    reset_record(&c->out[out]);
    return &c->out[out].value;
}

/* The record a field's values are made of: the field's schema through arrays and the non-null
 * branch of a nullable union; NULL when it is none. */
static avro_schema_t record_within(avro_schema_t s)
{
    for (;;) {
        if (is_avro_record(s)) {
            return s;
        }
        if (is_avro_array(s)) {
            s = avro_schema_array_items(s);
        } else if (is_avro_union(s) && avro_schema_union_size(s) == 2 &&
                   is_avro_null(avro_schema_union_branch(s, 0))) {
            s = avro_schema_union_branch(s, 1);
        } else {
            return NULL;
        }
    }
}

int vs__codec_output_field(const struct vs__codec *c, enum vs_output out, const char *path)
{
    avro_schema_t rec = c->out[out].schema;
    char name[128];
    for (;;) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (!rec || n == 0 || n >= sizeof(name)) {
            return VS_ENOTFOUND;
        }
        memcpy(name, path, n);
        name[n] = '\0';
        int index = avro_schema_record_field_get_index(rec, name);
        if (index < 0) {
            return VS_ENOTFOUND;
        }
        if (!dot) {
            return index;
        }
        rec = record_within(avro_schema_record_field_get_by_index(rec, index));
        path = dot + 1;
    }
}

int vs__codec_output_encode(struct vs__codec *c, enum vs_output out, const void **buf, size_t *len)
{
    return encode_value(c, &c->out[out].value, c->opts.output_schema_id[out], buf, len);
}

int vs__codec_output_to_json(struct vs__codec *c, enum vs_output out, const void *buf, size_t len,
                             char **json)
{
    const char *p = buf;
    if (c->opts.confluent) {
        if (len < 5 || p[0] != 0) {
            return VS_EDECODE;
        }
        p += 5;
        len -= 5;
    }
    avro_value_t *v = &c->out[out].value;
    avro_value_reset(v);
    avro_reader_memory_set_source(c->reader, p, (int64_t)len);
    if (avro_value_read(c->reader, v)) {
        return VS_EDECODE;
    }
    return avro_value_to_json(v, 1, json) ? VS_EDECODE : 0;
}
