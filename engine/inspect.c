/*
 * `valuestream inspect`: print the customer records, offsets and watermarks of a state
 * directory (issue: durable per-customer state, item 6).
 *
 * The store is opened read-only, so inspecting never changes a directory, and with the section
 * descriptors of the operator table, so records are decoded (and older sections upgraded)
 * exactly as the engine would. Each section is rendered by its operator's describe callback;
 * output is sorted by user id (RocksDB key order) and depends only on the stored state, which
 * is what lets tests compare the state of two runs byte for byte.
 */
#include "inspect.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valuestream/error.h>

#include "registry.h"
#include "store.h"

struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
};

static void sb_reserve(struct sbuf *b, size_t more)
{
    if (b->oom || b->len + more + 1 <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1) {
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    if (!b->oom) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
    }
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* A JSON string literal: quotes, backslashes and control bytes escaped; other bytes as is. */
static void sb_json_string(struct sbuf *b, const char *s, size_t n)
{
    sb_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

struct inspect {
    struct vs__store *st;
    const struct vs_operator **ops; /* the operator of each section */
    struct vs__section_desc *descs;
    int nsecs;
    int json;
    uint64_t printed;
    struct sbuf line, sec;
};

/* One section as JSON: the operator's describe output, or a hex string without describe (or
 * when describe fails). */
static void section_json(struct inspect *in, int i, const void *section)
{
    const struct vs_operator *op = in->ops[i];
    struct sbuf *s = &in->sec;
    s->len = 0;
    if (op->describe) {
        sb_reserve(s, 256);
        int n = s->oom ? -1 : op->describe(section, s->p, s->cap);
        if (n >= 0 && (size_t)n >= s->cap) {
            sb_reserve(s, (size_t)n + 1);
            n = s->oom ? -1 : op->describe(section, s->p, s->cap);
        }
        if (n >= 0 && (size_t)n < s->cap) {
            s->len = (size_t)n;
            sb_put(&in->line, s->p, s->len);
            return;
        }
    }
    const unsigned char *p = section;
    sb_put(&in->line, "\"", 1);
    for (size_t k = 0; k < op->state_size; k++) {
        char hex[3];
        snprintf(hex, sizeof hex, "%02x", p[k]);
        sb_put(&in->line, hex, 2);
    }
    sb_put(&in->line, "\"", 1);
}

static int print_customer(void *arg, const char *user_id, size_t len, struct vs__customer *c)
{
    struct inspect *in = arg;
    struct sbuf *b = &in->line;
    b->len = 0;
    if (in->json) {
        sb_str(b, "{\"user_id\":");
        sb_json_string(b, user_id, len);
        for (int i = 0; i < in->nsecs; i++) {
            sb_str(b, ",");
            sb_json_string(b, in->descs[i].name, strlen(in->descs[i].name));
            sb_str(b, ":");
            section_json(in, i, vs__customer_section(c, i));
        }
        sb_str(b, "}\n");
    } else {
        sb_str(b, "customer ");
        sb_json_string(b, user_id, len);
        sb_str(b, "\n");
        for (int i = 0; i < in->nsecs; i++) {
            char head[64];
            snprintf(head, sizeof head, " (v%u): ", (unsigned)in->descs[i].version);
            sb_str(b, "  ");
            sb_str(b, in->descs[i].name);
            sb_str(b, head);
            section_json(in, i, vs__customer_section(c, i));
            sb_str(b, "\n");
        }
    }
    if (b->oom) {
        fprintf(stderr, "valuestream inspect: out of memory\n");
        return VS_ENOMEM;
    }
    fwrite(b->p, 1, b->len, stdout);
    in->printed++;
    return 0;
}

/* ==== --stats ==== */

static void stats_partition(void *arg, const char *topic, int32_t partition, int64_t next_offset,
                            int has_watermark, int64_t watermark)
{
    struct inspect *in = arg;
    struct sbuf *j = &in->sec;
    char num[96];
    if (!in->json) {
        printf("  %s/%d: next offset ", topic, (int)partition);
        if (next_offset >= 0) {
            printf("%" PRId64, next_offset);
        } else {
            printf("none");
        }
        if (has_watermark) {
            printf(", watermark %" PRId64, watermark);
        }
        printf("\n");
    }
    sb_str(j, in->printed++ ? ",{\"topic\":" : "{\"topic\":");
    sb_json_string(j, topic, strlen(topic));
    snprintf(num, sizeof num, ",\"partition\":%d,\"next_offset\":", (int)partition);
    sb_str(j, num);
    if (next_offset >= 0) {
        snprintf(num, sizeof num, "%" PRId64, next_offset);
    } else {
        snprintf(num, sizeof num, "null");
    }
    sb_str(j, num);
    if (has_watermark) {
        snprintf(num, sizeof num, ",\"watermark\":%" PRId64 "}", watermark);
    } else {
        snprintf(num, sizeof num, ",\"watermark\":null}");
    }
    sb_str(j, num);
}

static void stats_section(void *arg, const char *name, uint32_t version)
{
    struct inspect *in = arg;
    char num[32];
    if (!in->json) {
        printf("  %s: version %u\n", name, (unsigned)version);
    }
    sb_str(&in->line, in->printed++ ? "," : "");
    sb_json_string(&in->line, name, strlen(name));
    snprintf(num, sizeof num, ":%u", (unsigned)version);
    sb_str(&in->line, num);
}

static int print_stats(struct inspect *in, const char *dir)
{
    uint64_t records = 0, bytes = 0;
    int rc = vs__store_count_customers(in->st, &records, &bytes);
    if (rc != 0) {
        fprintf(stderr, "valuestream inspect: %s\n", vs__store_last_error(in->st));
        return 1;
    }
    struct vs__store_stats s;
    vs__store_stats(in->st, &s);
    if (!in->json) {
        printf("state directory %s\n", dir);
        printf("customers: %" PRIu64 " records, %" PRIu64 " bytes of keys and records\n", records,
               bytes);
        printf("disk: %" PRIu64 " bytes in SST files\n", s.bytes);
        printf("section versions:\n");
    }
    in->line.len = 0;
    in->printed = 0;
    vs__store_foreach_section_version(in->st, stats_section, in);
    if (!in->json) {
        printf("partitions:\n");
    }
    in->sec.len = 0;
    in->printed = 0;
    sb_str(&in->sec, "");
    vs__store_foreach_offset(in->st, stats_partition, in);
    if (in->line.oom || in->sec.oom) {
        fprintf(stderr, "valuestream inspect: out of memory\n");
        return 1;
    }
    printf("{\"customers\":%" PRIu64 ",\"record_bytes\":%" PRIu64 ",\"disk_bytes\":%" PRIu64
           ",\"sections\":{%s},\"partitions\":[%s]}\n",
           records, bytes, s.bytes, in->line.p ? in->line.p : "", in->sec.p ? in->sec.p : "");
    return 0;
}

/* ==== Command line ==== */

static void usage(FILE *f)
{
    fprintf(f, "usage: valuestream inspect --state DIR (--user ID | --all) [--json]\n"
               "       valuestream inspect --state DIR --stats [--json]\n"
               "\n"
               "Print what a state directory holds; the directory is opened read-only.\n"
               "  --state DIR  the engine's state directory\n"
               "  --user ID    print the record of one customer\n"
               "  --all        print every customer record, sorted by user id\n"
               "  --stats      print record counts, bytes, the stored input offset and the\n"
               "               watermark of each partition\n"
               "  --json       JSON output: one object per line (with --all, one per customer)\n");
}

static int bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "valuestream inspect: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see valuestream inspect --help)\n");
    return 2;
}

/* "--name VALUE" or "--name=VALUE": the value, advancing *i, or NULL if this is not --name. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) {
        return NULL;
    }
    if (argv[*i][n] == '=') {
        return argv[*i] + n + 1;
    }
    if (argv[*i][n] != '\0') {
        return NULL;
    }
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

int vs__inspect_main(int argc, char **argv)
{
    const char *dir = NULL, *user = NULL;
    int all = 0, json = 0, stats = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int missing = 0;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if ((v = opt_value(argc, argv, &i, "--state", &missing)) != NULL) {
            dir = v;
        } else if ((v = opt_value(argc, argv, &i, "--user", &missing)) != NULL) {
            user = v;
        } else if (missing) {
            return bad_usage("%s needs a value", argv[i]);
        } else if (strcmp(argv[i], "--all") == 0) {
            all = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--stats") == 0) {
            stats = 1;
        } else {
            return bad_usage("unknown argument \"%s\"", argv[i]);
        }
    }
    if (!dir || !*dir) {
        return bad_usage("%s", "--state DIR is required");
    }
    if ((user != NULL) + all + stats != 1) {
        return bad_usage("%s", "give exactly one of --user ID, --all, --stats");
    }
    if (user && !*user) {
        return bad_usage("%s", "--user needs a non-empty customer id");
    }

    struct inspect in = {.json = json};
    in.descs = calloc((size_t)vs__operator_count + 1, sizeof *in.descs);
    in.ops = calloc((size_t)vs__operator_count + 1, sizeof *in.ops);
    if (!in.descs || !in.ops) {
        fprintf(stderr, "valuestream inspect: out of memory\n");
        free(in.descs);
        free(in.ops);
        return 1;
    }
    for (int i = 0; i < vs__operator_count; i++) {
        const struct vs_operator *op = vs__operators[i];
        if (op->state_size == 0) {
            continue;
        }
        in.ops[in.nsecs] = op;
        in.descs[in.nsecs++] = (struct vs__section_desc){
            .name = op->name,
            .version = op->state_version,
            .size = op->state_size,
            .upgrade = op->upgrade,
        };
    }

    struct vs__store_options opts = {
        .cache_bytes = (size_t)1 << 20,
        .rocksdb_cache_bytes = (size_t)8 << 20,
        .read_only = 1,
        .create_if_missing = 0,
    };
    char err[1024];
    int rc = 0;
    in.st = vs__store_open(dir, in.descs, in.nsecs, &opts, err, sizeof err);
    if (!in.st) {
        fprintf(stderr, "valuestream inspect: %s\n", err);
        rc = 1;
    } else if (stats) {
        rc = print_stats(&in, dir);
    } else if (user) {
        struct vs__customer *c = NULL;
        int is_new = 0;
        int r = vs__store_customer(in.st, user, strlen(user), &c, &is_new);
        if (r != 0) {
            fprintf(stderr, "valuestream inspect: %s\n", vs__store_last_error(in.st));
            rc = 1;
        } else if (is_new) {
            fprintf(stderr, "valuestream inspect: no customer \"%s\" in %s\n", user, dir);
            rc = 1;
        } else {
            rc = print_customer(&in, user, strlen(user), c) == 0 ? 0 : 1;
            if (rc == 0 && !json) {
                /* The record's JSON as the last line, as every command ends. */
                in.json = 1;
                rc = print_customer(&in, user, strlen(user), c) == 0 ? 0 : 1;
            }
        }
    } else {
        int r = vs__store_foreach_customer(in.st, print_customer, &in);
        if (r != 0) {
            fprintf(stderr, "valuestream inspect: %s\n",
                    r == VS_ENOMEM ? "out of memory" : vs__store_last_error(in.st));
            rc = 1;
        } else if (!json) {
            printf("{\"customers\":%" PRIu64 "}\n", in.printed);
        }
    }
    fflush(stdout);
    vs__store_close(in.st);
    free(in.line.p);
    free(in.sec.p);
    free(in.descs);
    free(in.ops);
    return rc;
}
