/*
 * The Avro codec: shop events in, output records out, in the plain Avro binary encoding or with
 * the Confluent framing (magic byte 0, 4-byte big-endian schema id, Avro body).
 *
 * One codec owns its schemas, one reusable reader, writer and value per schema, and the buffers
 * they use: after warm-up, decoding and encoding allocate nothing. A codec is used by one thread.
 */
#ifndef VS_ENGINE_CODEC_H
#define VS_ENGINE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>

#include <valuestream/event.h>
#include <valuestream/operator.h>

struct vs__codec;

struct vs__codec_options {
    int confluent;                          /* Confluent framing on input and output */
    int32_t input_schema_id;                /* the shop_event schema's id (Confluent) */
    int32_t output_schema_id[VS_OUT_COUNT]; /* each output schema's id (Confluent) */
};

/* The JSON text of a compiled-in schema ("shop_event", "user_profile", ...), or NULL. */
const char *vs__schema_json(const char *name);

/* opts may be NULL (plain Avro). NULL and errbuf on failure. */
struct vs__codec *vs__codec_new(const struct vs__codec_options *opts, char *errbuf, size_t errlen);
void vs__codec_free(struct vs__codec *c);

/*
 * Decode one shop event. On 0, *ev borrows strings from the codec until its next decode.
 * Returns VS_EDECODE (bytes that are not a shop event) with the reason in why.
 */
int vs__codec_decode_event(struct vs__codec *c, const void *buf, size_t len, struct vs_event *ev,
                           char *why, size_t whylen);

/* The same, with the strings copied into a caller-owned buffer (*strbuf of *strcap bytes, grown
 * with realloc when too small), so that several decoded events can live at once. */
int vs__codec_decode_event_buf(struct vs__codec *c, const void *buf, size_t len,
                               struct vs_event *ev, char **strbuf, size_t *strcap, char *why,
                               size_t whylen);

/*
 * Check a decoded event against the schema's rules beyond types: non-empty user_id, quantity
 * >= 0, finite price and amount, ts from the year 2000 on and (when now_ms > 0, live mode) at
 * most one day ahead of now_ms, PURCHASE with an amount. Returns 0 or VS_ESCHEMA with why.
 */
int vs__event_validate(const struct vs_event *ev, int64_t now_ms, char *why, size_t whylen);

/* Encode a shop event. *buf is owned by the codec and valid until its next encode. */
int vs__codec_encode_event(struct vs__codec *c, const struct vs_event *ev, const void **buf,
                           size_t *len);

/* The reusable, reset record value of an output schema, to fill with the Avro value API. */
avro_value_t *vs__codec_output_begin(struct vs__codec *c, enum vs_output out);
/*
 * The index of a field of an output's record: path names a field of the record ("user_id") or,
 * through arrays of records (nullable or not), of their items ("items.item_id"). Returns the
 * index or VS_ENOTFOUND.
 */
int vs__codec_output_field(const struct vs__codec *c, enum vs_output out, const char *path);
/* Encode the output's record value. *buf is owned by the codec until its next encode. */
int vs__codec_output_encode(struct vs__codec *c, enum vs_output out, const void **buf, size_t *len);

/* Decode an output record's bytes (framing per options) into JSON text (malloc'd). */
int vs__codec_output_to_json(struct vs__codec *c, enum vs_output out, const void *buf, size_t len,
                             char **json);

#endif
