/*
 * Benchmark of the recommender: what one interaction costs to learn from, what a top-20 list
 * over a large catalogue costs next to the bare matrix-vector product it is built on, and the
 * model's quality on the Diginetica sample through `valuestream eval recommend`.
 *
 *   update_us_median      median time of vs_rec_learn (fold-in + item step + co-occurrence +
 *                         popularity) at k = 64, customers with full recent-item lists
 *   top20_ratio           median vs_rec_top(n = 20) / median bare cblas_sgemv, 100k items, k 64
 *
 * Prints a JSON object as its last line and writes it to bench/results/recommend.json. Run from
 * the repository root.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "operators/recommend/recommender.h"

#define ITEMS 100000
#define CUSTOMERS 2000
#define UPDATES 20000
#define TOP_REPS 200

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

static double cpu_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint64_t next(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

int main(void)
{
    /* The engine runs operators on one loop thread per process (more cores come from more
     * partitions and processes), so the BLAS calls are measured single-threaded: OpenBLAS's own
     * threads would make the bare sgemv faster and every small call slower. */
    openblas_set_num_threads(1);
    struct vs_rec_params p;
    vs_rec_params_default(&p);
    p.mf.k = 64;
    p.mf.max_items = ITEMS + 1;
    char err[256];
    struct vs_rec *rec = vs_rec_new(&p, err, sizeof(err));
    if (!rec) {
        fprintf(stderr, "recommend_bench: %s\n", err);
        return 1;
    }
    struct vs_rec_customer *cust = calloc(CUSTOMERS, sizeof(*cust));
    double *t = malloc(sizeof(double) * (UPDATES > TOP_REPS ? UPDATES : TOP_REPS));
    if (!cust || !t) {
        return 1;
    }
    /* Warm-up: every item exists and every customer has a full recent-item list. */
    char id[32];
    uint64_t s = 1;
    for (int i = 0; i < ITEMS; i++) {
        snprintf(id, sizeof(id), "item-%d", i);
        vs_rec_learn(rec, &cust[i % CUSTOMERS], VS_EVENT_VIEW, id, 1700000000000LL + i);
    }
    for (int e = 0; e < CUSTOMERS * VS_REC_MAX_RECENT; e++) {
        snprintf(id, sizeof(id), "item-%d", (int)(next(&s) % ITEMS));
        vs_rec_learn(rec, &cust[e % CUSTOMERS], VS_EVENT_VIEW, id, 1700000100000LL + e);
    }
    double c0 = cpu_us(), w0 = now_us();
    for (int e = 0; e < UPDATES; e++) {
        snprintf(id, sizeof(id), "item-%d", (int)(next(&s) % ITEMS));
        struct vs_rec_customer *cu = &cust[next(&s) % CUSTOMERS];
        double t0 = now_us();
        vs_rec_learn(rec, cu, e % 10 == 9 ? VS_EVENT_ADD_TO_CART : VS_EVENT_VIEW, id,
                     1700000200000LL + e);
        t[e] = now_us() - t0;
    }
    /* On a shared machine the wall clock also counts time other processes had the core: the
     * mean thread CPU time per update is reported next to the wall-clock median. */
    double update_cpu_us = (cpu_us() - c0) / UPDATES, update_wall_mean = (now_us() - w0) / UPDATES;
    double update_us = median(t, UPDATES);

    /* The two model steps alone, on the same customers. */
    struct vs_mf *mfm = vs_rec_mf(rec);
    for (int e = 0; e < UPDATES; e++) {
        struct vs_rec_customer *cu = &cust[next(&s) % CUSTOMERS];
        float x[64];
        memcpy(x, cu->x, sizeof(x));
        double t0 = now_us();
        vs_mf_eals(mfm, cu->recent, cu->recent_w, cu->n_recent, x, p.eals_sweeps);
        t[e] = now_us() - t0;
    }
    double eals_us = median(t, UPDATES);
    for (int e = 0; e < UPDATES; e++) {
        struct vs_rec_customer *cu = &cust[next(&s) % CUSTOMERS];
        float x[64];
        memcpy(x, cu->x, sizeof(x));
        double t0 = now_us();
        vs_mf_fold_in(mfm, cu->recent, cu->recent_w, cu->n_recent, x);
        t[e] = now_us() - t0;
    }
    double exact_us = median(t, UPDATES);
    for (int e = 0; e < UPDATES; e++) {
        struct vs_rec_customer *cu = &cust[next(&s) % CUSTOMERS];
        double t0 = now_us();
        vs_mf_update_item(mfm, cu->recent[0], cu->x, 1.0f, 1.0f);
        t[e] = now_us() - t0;
    }
    double item_us = median(t, UPDATES);

    struct vs_mf *mf = vs_rec_mf(rec);
    int32_t n = vs_mf_items(mf);
    float *y = malloc(sizeof(float) * (size_t)n);
    struct vs_rec_entry list[20];
    double *tg = malloc(sizeof(double) * TOP_REPS);
    double checksum = 0;
    for (int r = 0; r < TOP_REPS; r++) {
        const struct vs_rec_customer *cu = &cust[r % CUSTOMERS];
        double t0 = now_us();
        cblas_sgemv(CblasRowMajor, CblasNoTrans, n, 64, 1.0f, vs_mf_row(mf, 0), 64, cu->x, 1, 0.0f,
                    y, 1);
        tg[r] = now_us() - t0;
        checksum += y[r];
        t0 = now_us();
        int m = vs_rec_top(rec, cu, 20, NULL, 0, list);
        t[r] = now_us() - t0;
        checksum += m > 0 ? list[0].score : 0;
    }
    double top_us = median(t, TOP_REPS);
    double sgemv_us = median(tg, TOP_REPS);

    /* Quality: the eval command on the Diginetica sample, its JSON as a sub-object. */
    char line[4096], last[4096] = "null";
    FILE *ev = popen(VS_BIN " eval recommend --input ../shared/data/diginetica/"
                            "sample_train-item-views.csv --format diginetica",
                     "r");
    while (ev && fgets(line, sizeof(line), ev)) {
        if (line[0] == '{') {
            line[strcspn(line, "\n")] = 0;
            snprintf(last, sizeof(last), "%s", line);
        }
    }
    if (ev) {
        pclose(ev);
    }

    char out[8192];
    snprintf(out, sizeof(out),
             "{\"bench\":\"recommend\",\"k\":64,\"items\":%d,\"update_us_median\":%.2f,\"update_"
             "cpu_us_mean\":%.2f,\"update_wall_us_mean\":%.2f,"
             "\"customer_eals_us_median\":%.2f,\"customer_exact_us_median\":%.2f,"
             "\"item_step_us_median\":%.2f,"
             "\"top20_us_median\":%.1f,\"sgemv_us_median\":%.1f,\"top20_ratio\":%.3f,"
             "\"rejected\":%lld,\"diginetica\":%s}",
             n, update_us, update_cpu_us, update_wall_mean, eals_us, exact_us, item_us, top_us,
             sgemv_us, top_us / sgemv_us, (long long)vs_rec_stats(rec).rejected, last);
    fprintf(stderr, "(checksum %g)\n", checksum);
    printf("%s\n", out);
    FILE *f = fopen("bench/results/recommend.json", "w");
    if (f) {
        fprintf(f, "%s\n", out);
        fclose(f);
    }
    free(y);
    free(tg);
    free(t);
    free(cust);
    vs_rec_free(rec);
    return 0;
}
