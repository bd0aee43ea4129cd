/*
 * Loading and validating configuration (the readers are public, in valuestream/config.h).
 *
 * A vs_config knows every declared key (the engine's table and each operator's) and holds one
 * typed value per key, the default until a file or --set says otherwise. `kafka.*` keys are kept
 * as text for librdkafka: `kafka.consumer.X` goes to the consumer, `kafka.producer.X` to the
 * producer, `kafka.X` to both.
 */
#ifndef VS_ENGINE_CONFIG_H
#define VS_ENGINE_CONFIG_H

#include <stdio.h>

#include <valuestream/config.h>

/* tables: ntables key tables, each ended by a {NULL} entry. NULL on out of memory. */
struct vs_config *vs__config_new(const struct vs_config_key *const *tables, int ntables);
void vs__config_free(struct vs_config *cfg);

/* Read a properties file: `key=value` lines, `#` comments, blank lines. Errors name the file,
 * the line and the key. */
int vs__config_load_file(struct vs_config *cfg, const char *path, char *errbuf, size_t errlen);

/* Set one key; rejects undeclared keys and values of the wrong type, naming the key. */
int vs__config_set(struct vs_config *cfg, const char *key, const char *value, char *errbuf,
                   size_t errlen);
/* "key=value" form, as given to --set. */
int vs__config_set_arg(struct vs_config *cfg, const char *arg, char *errbuf, size_t errlen);

/* True if key was set explicitly (file or --set), not left at its default. */
int vs__config_is_set(const struct vs_config *cfg, const char *key);

/* Each kafka.* key that was set: fn(arg, key-without-prefix, value, target) where target is
 * 'c' (consumer), 'p' (producer) or 'b' (both). */
typedef int (*vs__config_kafka_fn)(void *arg, const char *key, const char *value, char target);
int vs__config_foreach_kafka(const struct vs_config *cfg, vs__config_kafka_fn fn, void *arg);

/* Print the keys of tables as a reference: key, type, default, doc. markdown: a table. */
void vs__config_print_reference(FILE *out, const char *title, const struct vs_config_key *table,
                                int markdown);

#endif
