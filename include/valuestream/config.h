/*
 * Typed configuration.
 *
 * Every key the engine or an operator reads is declared in a table of struct vs_config_key next
 * to the code that uses it (type, default, one-line doc). The loader accepts exactly the declared
 * keys plus `kafka.*` (passed through to librdkafka), and rejects anything else with a message
 * naming the key. `--help` and the README's config reference are generated from the tables.
 */
#ifndef VALUESTREAM_CONFIG_H
#define VALUESTREAM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum vs_config_type {
    VS_CONFIG_INT,    /* 64-bit integer */
    VS_CONFIG_DOUBLE, /* finite double */
    VS_CONFIG_BOOL,   /* true/false/1/0/yes/no/on/off */
    VS_CONFIG_STRING, /* any string */
};

struct vs_config_key {
    const char *key;
    enum vs_config_type type;
    const char *def; /* default value as text; NULL for "no default" (empty string value) */
    const char *doc;
};

struct vs_config;

/*
 * Readers for declared keys. Values were validated when the config was loaded, so these do not
 * fail; reading an undeclared key is a programming error and returns 0 / "" with a log line.
 */
int64_t vs_config_int(const struct vs_config *cfg, const char *key);
double vs_config_double(const struct vs_config *cfg, const char *key);
int vs_config_bool(const struct vs_config *cfg, const char *key);
const char *vs_config_str(const struct vs_config *cfg, const char *key);

#endif
