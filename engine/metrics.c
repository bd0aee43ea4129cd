/*
 * Metrics registry. Entries live in one fixed array so pointers handed out stay valid for the
 * registry's lifetime; names are kept in creation order for stable output.
 */
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define VS__METRICS_MAX 1024

struct vs__metric {
    char name[64];
    int is_gauge;
    int64_t count;
    double gauge;
};

struct vs__metrics {
    struct vs__metric m[VS__METRICS_MAX];
    int n;
};

struct vs__metrics *vs__metrics_new(void)
{
    return calloc(1, sizeof(struct vs__metrics));
}

void vs__metrics_free(struct vs__metrics *m)
{
    free(m);
}

static struct vs__metric *lookup(struct vs__metrics *m, const char *name, int is_gauge)
{
    for (int i = 0; i < m->n; i++) {
        if (strcmp(m->m[i].name, name) == 0) {
            return &m->m[i];
        }
    }
    if (m->n == VS__METRICS_MAX) {
        return NULL;
    }
    struct vs__metric *e = &m->m[m->n++];
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->is_gauge = is_gauge;
    return e;
}

int64_t *vs__metrics_counter(struct vs__metrics *m, const char *name)
{
    struct vs__metric *e = lookup(m, name, 0);
    return e ? &e->count : NULL;
}

double *vs__metrics_gauge(struct vs__metrics *m, const char *name)
{
    struct vs__metric *e = lookup(m, name, 1);
    return e ? &e->gauge : NULL;
}

int64_t vs__metrics_get(const struct vs__metrics *m, const char *name)
{
    for (int i = 0; i < m->n; i++) {
        if (strcmp(m->m[i].name, name) == 0) {
            return m->m[i].count;
        }
    }
    return 0;
}

void vs__metrics_foreach(const struct vs__metrics *m, vs__metrics_fn fn, void *arg)
{
    for (int i = 0; i < m->n; i++) {
        fn(arg, m->m[i].name, m->m[i].is_gauge, m->m[i].count, m->m[i].gauge);
    }
}

void vs__metrics_print_json(const struct vs__metrics *m, FILE *out)
{
    fputc('{', out);
    for (int i = 0; i < m->n; i++) {
        if (m->m[i].is_gauge) {
            fprintf(out, "%s\"%s\":%.6g", i ? "," : "", m->m[i].name, m->m[i].gauge);
        } else {
            fprintf(out, "%s\"%s\":%lld", i ? "," : "", m->m[i].name, (long long)m->m[i].count);
        }
    }
    fputs("}\n", out);
}
