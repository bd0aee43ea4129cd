/*
 * Decode + validate: the engine's per-event input cost on one core, beside Avro C's generic
 * reader on the same bytes (the reference for what decoding such a record costs here).
 *
 * The records are the synthetic shop's own (the generator writes them to a file of
 * length-prefixed Avro bodies), so the mix of event types, nulls and string lengths is the
 * engine's real input. Each reader runs over all records several times; the median round is
 * reported. The last line of stdout is one JSON object, also written to
 * bench/results/codec_bench.json.
 *
 *   bench_codec_bench [--events N] [--rounds N]
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <avro.h>

#include "bench_util.h"
#include "codec.h"
#include "gen.h"

struct records {
    unsigned char *data;
    size_t len;
    size_t *off, *size;
    size_t n;
};

/* Read the generator's file: 4-byte big-endian length, then the body, repeated. */
static int load(const char *path, struct records *r)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    r->data = malloc((size_t)n);
    if (!r->data || fread(r->data, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        return -1;
    }
    fclose(f);
    r->len = (size_t)n;
    size_t cap = 1024;
    r->off = malloc(cap * sizeof(size_t));
    r->size = malloc(cap * sizeof(size_t));
    r->n = 0;
    for (size_t p = 0; p + 4 <= r->len;) {
        size_t l = ((size_t)r->data[p] << 24) | ((size_t)r->data[p + 1] << 16) |
                   ((size_t)r->data[p + 2] << 8) | r->data[p + 3];
        if (p + 4 + l > r->len) {
            return -1;
        }
        if (r->n == cap) {
            cap *= 2;
            r->off = realloc(r->off, cap * sizeof(size_t));
            r->size = realloc(r->size, cap * sizeof(size_t));
        }
        r->off[r->n] = p + 4;
        r->size[r->n++] = l;
        p += 4 + l;
    }
    return r->n ? 0 : -1;
}

int main(int argc, char **argv)
{
    int64_t events = 200000;
    int rounds = 5;
    static const struct option opts[] = {{"events", required_argument, NULL, 'e'},
                                         {"rounds", required_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'e') {
            events = atoll(optarg);
        } else if (c == 'r') {
            rounds = atoi(optarg);
        } else {
            fprintf(stderr, "usage: bench_codec_bench [--events N] [--rounds N]\n");
            return 2;
        }
    }
    if (events < 1000 || rounds < 1 || rounds > 51) {
        fprintf(stderr, "bench_codec_bench: bad arguments\n");
        return 2;
    }
    char path[] = "/tmp/vs-codec-bench-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        return 1;
    }
    close(fd);
    char ev[32], cust[32];
    snprintf(ev, sizeof(ev), "%" PRId64, events);
    snprintf(cust, sizeof(cust), "%" PRId64, events / 50 > 100 ? events / 50 : 100);
    char *gen_argv[] = {"gen", "--events", ev, "--customers", cust, "--out", path, NULL};
    if (vs__gen_main(7, gen_argv)) {
        fprintf(stderr, "generation failed\n");
        unlink(path);
        return 1;
    }
    struct records r;
    int lrc = load(path, &r);
    unlink(path);
    if (lrc) {
        fprintf(stderr, "cannot read the generated records\n");
        return 1;
    }

    char err[256], why[256];
    struct vs__codec *codec = vs__codec_new(NULL, err, sizeof(err));
    if (!codec) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    avro_schema_t schema;
    const char *json = vs__schema_json("shop_event");
    avro_schema_from_json_length(json, strlen(json), &schema);
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t value;
    avro_generic_value_new(iface, &value);
    avro_reader_t reader = avro_reader_memory("", 0);

    double engine_s[51], generic_s[51];
    int64_t bad = 0, checksum = 0;
    for (int k = 0; k < rounds; k++) {
        double t0 = bench_now_s();
        for (size_t i = 0; i < r.n; i++) {
            struct vs_event e;
            if (vs__codec_decode_event(codec, r.data + r.off[i], r.size[i], &e, why, sizeof(why)) ||
                vs__event_validate(&e, 0, why, sizeof(why))) {
                bad++;
            }
            checksum += e.ts & 1;
        }
        double t1 = bench_now_s();
        for (size_t i = 0; i < r.n; i++) {
            avro_value_reset(&value);
            avro_reader_memory_set_source(reader, (const char *)r.data + r.off[i],
                                          (int64_t)r.size[i]);
            if (avro_value_read(reader, &value)) {
                bad++;
            }
        }
        double t2 = bench_now_s();
        engine_s[k] = t1 - t0;
        generic_s[k] = t2 - t1;
    }
    qsort(engine_s, (size_t)rounds, sizeof(double), bench_cmp_double);
    qsort(generic_s, (size_t)rounds, sizeof(double), bench_cmp_double);
    double e = (double)r.n / engine_s[rounds / 2], g = (double)r.n / generic_s[rounds / 2];
    fprintf(stderr,
            "%zu records (%.1f bytes each): decode + validate %.2fM/s, Avro C generic read "
            "%.2fM/s (median of %d rounds; checksum %" PRId64 ")\n",
            r.n, (double)(r.len - 4 * r.n) / (double)r.n, e / 1e6, g / 1e6, rounds, checksum);
    char out[512];
    snprintf(out, sizeof(out),
             "{\"bench\":\"codec\",\"records\":%zu,\"decode_validate_per_s\":%.0f,"
             "\"avro_generic_read_per_s\":%.0f,\"ratio\":%.3f,\"rejected\":%" PRId64
             ",\"rounds\":%d}",
             r.n, e, g, e / g, bad, rounds);
    bench_result("codec_bench", out);
    avro_reader_free(reader);
    avro_value_decref(&value);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
    vs__codec_free(codec);
    free(r.data);
    free(r.off);
    free(r.size);
    return bad ? 1 : 0;
}
