/*
 * Typed configuration: declared keys with defaults, a properties-file loader and --set.
 *
 * Operators read their values at init, never per event, so a linear scan over the declared keys
 * is all the lookup needs.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <valuestream/error.h>
#include <valuestream/operator.h>

#include "config.h"

struct vs__config_value {
    const struct vs_config_key *decl;
    char *text;
    int is_set;
    int64_t i;
    double d;
};

struct vs__kafka_kv {
    char *key;
    char *value;
};

struct vs_config {
    struct vs__config_value *values;
    int nvalues;
    struct vs__kafka_kv *kafka;
    int nkafka;
};

static int parse_value(const struct vs_config_key *decl, const char *text,
                       struct vs__config_value *v, char *errbuf, size_t errlen)
{
    char *end;
    errno = 0;
    switch (decl->type) {
    case VS_CONFIG_INT: {
        long long x = strtoll(text, &end, 10);
        if (end == text || *end || errno) {
            snprintf(errbuf, errlen, "config key '%s': expected an integer, got '%s'", decl->key,
                     text);
            return VS_ECONFIG;
        }
        v->i = x;
        v->d = (double)x;
        return 0;
    }
    case VS_CONFIG_DOUBLE: {
        double x = strtod(text, &end);
        if (end == text || *end || errno || !isfinite(x)) {
            snprintf(errbuf, errlen, "config key '%s': expected a finite number, got '%s'",
                     decl->key, text);
            return VS_ECONFIG;
        }
        v->d = x;
        v->i = (int64_t)x;
        return 0;
    }
    case VS_CONFIG_BOOL: {
        static const char *const yes[] = {"true", "1", "yes", "on"};
        static const char *const no[] = {"false", "0", "no", "off"};
        for (int k = 0; k < 4; k++) {
            if (strcasecmp(text, yes[k]) == 0) {
                v->i = 1;
                return 0;
            }
            if (strcasecmp(text, no[k]) == 0) {
                v->i = 0;
                return 0;
            }
        }
        snprintf(errbuf, errlen, "config key '%s': expected true or false, got '%s'", decl->key,
                 text);
        return VS_ECONFIG;
    }
    case VS_CONFIG_STRING:
        return 0;
    }
    return VS_EINVAL;
}

static int assign(struct vs__config_value *v, const char *text, char *errbuf, size_t errlen)
{
    struct vs__config_value tmp = *v;
    int rc = parse_value(v->decl, text, &tmp, errbuf, errlen);
    if (rc) {
        return rc;
    }
    char *copy = strdup(text);
    if (!copy) {
        return VS_ENOMEM;
    }
    free(v->text);
    *v = tmp;
    v->text = copy;
    return 0;
}

struct vs_config *vs__config_new(const struct vs_config_key *const *tables, int ntables)
{
    struct vs_config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg) {
        return NULL;
    }
    int n = 0;
    for (int t = 0; t < ntables; t++) {
        for (const struct vs_config_key *k = tables[t]; k && k->key; k++) {
            n++;
        }
    }
    cfg->values = calloc((size_t)n + 1, sizeof(*cfg->values));
    if (!cfg->values) {
        free(cfg);
        return NULL;
    }
    char err[256];
    for (int t = 0; t < ntables; t++) {
        for (const struct vs_config_key *k = tables[t]; k && k->key; k++) {
            struct vs__config_value *v = &cfg->values[cfg->nvalues++];
            v->decl = k;
            if (assign(v, k->def ? k->def : "", err, sizeof(err))) {
                /* A bad default is a bug in a table: say so loudly once. */
                vs_log(VS_LOG_ERROR, "%s", err);
            }
        }
    }
    return cfg;
}

void vs__config_free(struct vs_config *cfg)
{
    if (!cfg) {
        return;
    }
    for (int i = 0; i < cfg->nvalues; i++) {
        free(cfg->values[i].text);
    }
    for (int i = 0; i < cfg->nkafka; i++) {
        free(cfg->kafka[i].key);
        free(cfg->kafka[i].value);
    }
    free(cfg->kafka);
    free(cfg->values);
    free(cfg);
}

static struct vs__config_value *find(const struct vs_config *cfg, const char *key)
{
    for (int i = 0; i < cfg->nvalues; i++) {
        if (strcmp(cfg->values[i].decl->key, key) == 0) {
            return &cfg->values[i];
        }
    }
    return NULL;
}

int vs__config_set(struct vs_config *cfg, const char *key, const char *value, char *errbuf,
                   size_t errlen)
{
    if (strncmp(key, "kafka.", 6) == 0 && key[6]) {
        for (int i = 0; i < cfg->nkafka; i++) {
            if (strcmp(cfg->kafka[i].key, key) == 0) {
                char *nv = strdup(value);
                if (!nv) {
                    return VS_ENOMEM;
                }
                free(cfg->kafka[i].value);
                cfg->kafka[i].value = nv;
                return 0;
            }
        }
        struct vs__kafka_kv *nk = realloc(cfg->kafka, sizeof(*nk) * (size_t)(cfg->nkafka + 1));
        if (!nk) {
            return VS_ENOMEM;
        }
        cfg->kafka = nk;
        nk[cfg->nkafka].key = strdup(key);
        nk[cfg->nkafka].value = strdup(value);
        cfg->nkafka++;
        return 0;
    }
    struct vs__config_value *v = find(cfg, key);
    if (!v) {
        snprintf(errbuf, errlen, "unknown config key '%s' (see `valuestream run --help`)", key);
        return VS_ECONFIG;
    }
    int rc = assign(v, value, errbuf, errlen);
    if (rc == 0) {
        v->is_set = 1;
    }
    return rc;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) {
        s++;
    }
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) {
        *--e = 0;
    }
    return s;
}

int vs__config_set_arg(struct vs_config *cfg, const char *arg, char *errbuf, size_t errlen)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
        snprintf(errbuf, errlen, "expected key=value, got '%s'", arg);
        return VS_ECONFIG;
    }
    char key[256];
    size_t kl = (size_t)(eq - arg);
    if (kl >= sizeof(key)) {
        snprintf(errbuf, errlen, "config key too long in '%s'", arg);
        return VS_ECONFIG;
    }
    memcpy(key, arg, kl);
    key[kl] = 0;
    return vs__config_set(cfg, trim(key), eq + 1, errbuf, errlen);
}

int vs__config_load_file(struct vs_config *cfg, const char *path, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errbuf, errlen, "cannot read config file '%s': %s", path, strerror(errno));
        return VS_EIO;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#' || *s == '!') {
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(errbuf, errlen, "%s:%d: expected key=value, got '%s'", path, lineno, s);
            rc = VS_ECONFIG;
            break;
        }
        *eq = 0;
        char err[512];
        rc = vs__config_set(cfg, trim(s), trim(eq + 1), err, sizeof(err));
        if (rc) {
            snprintf(errbuf, errlen, "%s:%d: %s", path, lineno, err);
            break;
        }
    }
    fclose(f);
    return rc;
}

int vs__config_is_set(const struct vs_config *cfg, const char *key)
{
    const struct vs__config_value *v = find(cfg, key);
    return v && v->is_set;
}

int vs__config_foreach_kafka(const struct vs_config *cfg, vs__config_kafka_fn fn, void *arg)
{
    for (int i = 0; i < cfg->nkafka; i++) {
        const char *k = cfg->kafka[i].key + 6;
        char target = 'b';
        if (strncmp(k, "consumer.", 9) == 0) {
            k += 9;
            target = 'c';
        } else if (strncmp(k, "producer.", 9) == 0) {
            k += 9;
            target = 'p';
        }
        int rc = fn(arg, k, cfg->kafka[i].value, target);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static const struct vs__config_value *get_declared(const struct vs_config *cfg, const char *key)
{
    const struct vs__config_value *v = find(cfg, key);
    if (!v) {
        vs_log(VS_LOG_ERROR, "config key '%s' is read but not declared", key);
    }
    return v;
}

int64_t vs_config_int(const struct vs_config *cfg, const char *key)
{
    const struct vs__config_value *v = get_declared(cfg, key);
    return v ? v->i : 0;
}

double vs_config_double(const struct vs_config *cfg, const char *key)
{
    const struct vs__config_value *v = get_declared(cfg, key);
    return v ? v->d : 0;
}

int vs_config_bool(const struct vs_config *cfg, const char *key)
{
    const struct vs__config_value *v = get_declared(cfg, key);
    return v ? (int)v->i : 0;
}

const char *vs_config_str(const struct vs_config *cfg, const char *key)
{
    const struct vs__config_value *v = get_declared(cfg, key);
    return v && v->text ? v->text : "";
}

void vs__config_print_reference(FILE *out, const char *title, const struct vs_config_key *table,
                                int markdown)
{
    static const char *const types[] = {"int", "double", "bool", "string"};
    if (!table || !table->key) {
        return;
    }
    if (markdown) {
        fprintf(out, "\n### %s\n\n| key | type | default | meaning |\n| --- | --- | --- | --- |\n",
                title);
    } else {
        fprintf(out, "\n%s:\n", title);
    }
    for (const struct vs_config_key *k = table; k->key; k++) {
        if (markdown) {
            fprintf(out, "| `%s` | %s | `%s` | %s |\n", k->key, types[k->type],
                    k->def ? k->def : "", k->doc);
        } else {
            fprintf(out, "  %-32s %-6s default %-14s %s\n", k->key, types[k->type],
                    k->def && *k->def ? k->def : "\"\"", k->doc);
        }
    }
}
