/*
 * Benchmark of the recommender: what one interaction costs to learn from, what a top-20 list
 * over a large catalogue costs next to the bare matrix-vector product it is built on, and the
 * model's quality through `valuestream eval recommend` on the Diginetica sample and on the
 * synthetic shop's stream below (its views, add-to-carts and purchases as a `csv` log).
 *
 *   update_us_median      median time of vs_rec_learn (fold-in + item step + co-occurrence +
 *                         popularity) at k = 64, customers with full recent-item lists
 *   top20_ratio           median vs_rec_top(n = 20) / median bare cblas_sgemv, 100k items, k 64
 *   scores_us_median      vs_mf_scores over the same 100k items with one OpenBLAS thread and
 *                         with the two `eval recommend` gives a large catalogue
 *   cholesky_us           a k = 64 solve by sposv_ and by spotf2_ + two cblas_strsv (medians)
 *   als_sweep_ms_median   one full ALS sweep, k 64, 262,144 interactions, 20k customers, 2k
 *                         items (median of 3)
 *   stream                the operator's path on the engine's default synthetic shop (the
 *                         generator's 300k events of 20k customers over 2000 items, 60 days, seed
 *                         1): per event vs_rec_learn, vs_rec_list_due and, when a list is due,
 *                         vs_rec_top, and the test of the blend's mixes on the sampled events
 *                         (vs_rec_adapt_target, vs_rec_top_test); thread CPU per event (best of 3
 *                         replays), and the wall time of learning and of the tests per event
 *                         and of a list (median of the 3). Avro and
 *                         Kafka are not in it: this is the recommender's share of the engine's
 *                         CPU, without the encoding of the lists it sends.
 *   skewed_log_200k       the evaluation on bench/skewed_log.py's popularity-led log (200k views,
 *                         120k items)
 *   session_log_200k      the evaluation on bench/session_log.py's Diginetica-shaped session log
 *                         (200k views over a catalogue of 123k items)
 *   session_log_hard_200k the same with fewer related items and flatter categories (arguments
 *                         0.15 0.55 0.15 0.6), hit rates near the real sample's
 *   sparse_log            the evaluation on bench/sparse_log.py's review-like log (80k customers
 *                         with 2.5 interactions each over 30k items, TASTE 0.1): led by
 *                         popularity, like skewed_log_200k, but sparse
 *   movielens             the evaluation on MovieLens' u.data when the environment variable
 *                         VS_MOVIELENS names the file (null otherwise)
 *
 * Prints a JSON object as its last line and writes it to bench/results/recommend.json. Run from
 * the repository root. `recommend_bench stream` runs and prints the stream part alone (quick, for
 * trying a change) and writes nothing; `recommend_bench stream --csv FILE` also keeps the stream
 * as a `csv` interaction log in FILE, for `valuestream eval recommend`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "engine/blas.h"
#include "engine/gen.h"
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

/* ==== The synthetic shop's stream ==== */

/* One generated event, kept in memory so that the replay measures the recommender alone. */
struct stream_event {
    int32_t customer;
    enum vs_event_type type;
    uint32_t item; /* offset of the item id in the pool; 0 is the empty id */
    int64_t ts;
};

struct stream {
    struct stream_event *ev;
    size_t n, cap;
    char *pool;
    size_t pool_len, pool_cap;
    char **users; /* open addressing: user ids, NULL = empty */
    int32_t *user_ix;
    uint32_t nslots;
    int32_t customers;
};

static int stream_sink(void *arg, const struct vs_event *ev)
{
    struct stream *s = arg;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 65536;
        s->ev = realloc(s->ev, s->cap * sizeof(*s->ev));
    }
    size_t len = ev->item_id ? strlen(ev->item_id) : 0;
    if (s->pool_len + len + 1 > s->pool_cap) {
        s->pool_cap = s->pool_cap ? 2 * s->pool_cap : 1 << 20;
        s->pool = realloc(s->pool, s->pool_cap);
    }
    if (!s->ev || !s->pool) {
        return -1;
    }
    uint32_t item = 0;
    if (len > 0) {
        item = (uint32_t)s->pool_len;
        memcpy(s->pool + s->pool_len, ev->item_id, len + 1);
        s->pool_len += len + 1;
    }
    uint32_t slot = (uint32_t)vs_mf_hash(ev->user_id, 3) & (s->nslots - 1);
    while (s->users[slot] && strcmp(s->users[slot], ev->user_id) != 0) {
        slot = (slot + 1) & (s->nslots - 1);
    }
    if (!s->users[slot]) {
        s->users[slot] = strdup(ev->user_id);
        s->user_ix[slot] = s->customers++;
    }
    s->ev[s->n++] = (struct stream_event){s->user_ix[slot], ev->type, item, ev->ts};
    return 0;
}

struct stream_result {
    double us_per_event, learn_us, adapt_us, top_us_per_list, lists_per_event;
    int64_t events, lists;
    uint64_t hash;
};

/* One replay through a fresh recommender with the default parameters, as the operator runs it. */
static int stream_replay(const struct stream *s, struct stream_result *res)
{
    struct vs_rec_params p;
    vs_rec_params_default(&p);
    char err[256];
    struct vs_rec *rec = vs_rec_new(&p, err, sizeof(err));
    struct vs_rec_customer *cust = calloc((size_t)s->customers, sizeof(*cust));
    if (!rec || !cust) {
        fprintf(stderr, "recommend_bench: %s\n", rec ? "out of memory" : err);
        return -1;
    }
    struct vs_rec_entry list[VS_REC_MAX_N];
    double learn = 0, top = 0, adapt = 0;
    uint64_t hash = 0xcbf29ce484222325ull; /* of every list: the same input, the same lists */
    int64_t lists = 0;
    double c0 = cpu_us();
    for (size_t e = 0; e < s->n; e++) {
        const struct stream_event *ev = &s->ev[e];
        struct vs_rec_customer *cu = &cust[ev->customer];
        const char *id = s->pool + ev->item;
        double t0 = now_us();
        if (p.adapt) { /* the operator's test of the blend's mixes */
            int32_t row = vs_rec_adapt_target(rec, cu, ev->type, id);
            if (row >= 0) {
                vs_rec_top_test(rec, cu, 0, NULL, 0, NULL, row);
            }
            double ta = now_us();
            adapt += ta - t0;
            t0 = ta;
        }
        int32_t rc = vs_rec_learn(rec, cu, ev->type, id, ev->ts);
        double t1 = now_us();
        learn += t1 - t0;
        if (rc >= 0 && vs_rec_list_due(rec, cu, ev->type, ev->ts) == VS_REC_DUE) {
            int n = vs_rec_top(rec, cu, p.n, NULL, 0, list);
            double t2 = now_us();
            top += t2 - t1;
            if (n > 0) {
                vs_rec_remember_list(cu, list, n, ev->ts);
                for (int i = 0; i < n; i++) {
                    uint32_t bits;
                    memcpy(&bits, &list[i].score, sizeof(bits));
                    uint64_t v[3] = {(uint64_t)list[i].item, bits,
                                     (uint64_t)list[i].reason << 32 | (uint32_t)list[i].related};
                    for (int w = 0; w < 3; w++) {
                        hash = (hash ^ v[w]) * 0x100000001b3ull;
                    }
                }
                lists++;
            }
        }
    }
    double total = cpu_us() - c0;
    res->us_per_event = total / (double)s->n;
    res->learn_us = learn / (double)s->n;
    res->adapt_us = adapt / (double)s->n;
    res->top_us_per_list = lists ? top / (double)lists : 0;
    res->lists_per_event = (double)lists / (double)s->n;
    res->lists = lists;
    res->events = (int64_t)s->n;
    res->hash = hash;
    free(cust);
    vs_rec_free(rec);
    return 0;
}

/* The stream's views, add-to-carts and purchases as an interaction log in the `csv` format of
 * `valuestream eval recommend` (user_id,item_id,ts), for the quality measurement. */
static int write_stream_csv(const struct stream *s, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        return -1;
    }
    fprintf(f, "user_id,item_id,ts\n");
    for (size_t i = 0; i < s->n; i++) {
        const struct stream_event *e = &s->ev[i];
        if (e->item && (e->type == VS_EVENT_VIEW || e->type == VS_EVENT_ADD_TO_CART ||
                        e->type == VS_EVENT_PURCHASE)) {
            fprintf(f, "c%d,%s,%lld\n", (int)e->customer, s->pool + e->item, (long long)e->ts);
        }
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* The recommender's stream on the synthetic shop; with csv_path, also written there as a log. */
static int bench_stream(struct stream_result *out, const char *csv_path)
{
    struct vs__gen_options o;
    vs__gen_options_default(&o);
    o.customers = 20000;
    o.items = 2000;
    o.events = 300000;
    o.days = 60;
    o.seed = 1;
    struct stream s = {0};
    s.nslots = 1u << 16;
    s.users = calloc(s.nslots, sizeof(char *));
    s.user_ix = calloc(s.nslots, sizeof(int32_t));
    s.pool = malloc(1);
    s.pool_cap = 1;
    s.pool_len = 1;
    if (!s.users || !s.user_ix || !s.pool) {
        return -1;
    }
    s.pool[0] = 0;
    int rc = vs__gen_run(&o, stream_sink, &s, NULL);
    if (rc == 0 && csv_path) {
        rc = write_stream_csv(&s, csv_path);
    }
    struct stream_result r[3];
    for (int i = 0; rc == 0 && i < 3; i++) {
        rc = stream_replay(&s, &r[i]);
    }
    if (rc == 0) {
        double learn[3], top[3], adapt[3];
        *out = r[0];
        for (int i = 0; i < 3; i++) {
            learn[i] = r[i].learn_us;
            top[i] = r[i].top_us_per_list;
            adapt[i] = r[i].adapt_us;
            if (r[i].us_per_event < out->us_per_event) {
                out->us_per_event = r[i].us_per_event;
            }
        }
        if (r[1].hash != r[0].hash || r[2].hash != r[0].hash) {
            fprintf(stderr, "recommend_bench: replays of one stream gave different lists\n");
            rc = -1;
        }
        out->learn_us = median(learn, 3);
        out->top_us_per_list = median(top, 3);
        out->adapt_us = median(adapt, 3);
    }
    for (uint32_t i = 0; i < s.nslots; i++) {
        free(s.users[i]);
    }
    free(s.users);
    free(s.user_ix);
    free(s.pool);
    free(s.ev);
    return rc;
}

/* The last JSON line that cmd prints, or "null". */
static void eval_json(const char *cmd, char *out, size_t cap)
{
    char line[4096];
    snprintf(out, cap, "null");
    FILE *ev = popen(cmd, "r");
    while (ev && fgets(line, sizeof(line), ev)) {
        if (line[0] == '{') {
            line[strcspn(line, "\n")] = 0;
            snprintf(out, cap, "%s", line);
        }
    }
    if (ev) {
        pclose(ev);
    }
}

/* `valuestream eval recommend` on the log that `python3 bench/SCRIPT ARGS FILE MORE` writes
 * (script and arguments in gen, what follows the file in more), in format: its JSON line, or
 * "null" if the log could not be written. */
static void generated_log_eval(const char *gen, const char *more, const char *format, char *out,
                               size_t cap)
{
    char path[] = "/tmp/vs-recommend-log-XXXXXX", cmd[512];
    snprintf(out, cap, "null");
    int fd = mkstemp(path);
    if (fd < 0) {
        return;
    }
    close(fd);
    snprintf(cmd, sizeof(cmd), "python3 bench/%s %s %s", gen, path, more);
    if (system(cmd) == 0) {
        snprintf(cmd, sizeof(cmd), "%s eval recommend --input %s --format %s", VS_BIN, path,
                 format);
        eval_json(cmd, out, cap);
    }
    unlink(path);
}

static uint64_t next(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* A k = 64 Cholesky solve two ways (the system of a customer with 200 items): LAPACK's sposv_,
 * and the unblocked spotf2_ with two cblas_strsv, which the full ALS sweep uses. Medians in us. */
extern void sposv_(const char *uplo, const int *n, const int *nrhs, float *a, const int *lda,
                   float *b, const int *ldb, int *info);
extern void spotf2_(const char *uplo, const int *n, float *a, const int *lda, int *info);
static void bench_cholesky(double *t, int reps, double *sposv_us, double *potf2_us)
{
    enum { KC = 64, ROWS = 200 };
    static float rows[KC * ROWS], a[KC * KC], m[KC * KC], b[KC];
    uint64_t s = 5;
    for (int i = 0; i < KC * ROWS; i++) {
        rows[i] = (float)(next(&s) % 1000) / 1000.0f - 0.5f;
    }
    cblas_ssyrk(CblasColMajor, CblasUpper, CblasNoTrans, KC, ROWS, 1.0f, rows, KC, 0.0f, a, KC);
    for (int i = 0; i < KC; i++) {
        a[i * KC + i] += 2.0f;
    }
    int n = KC, one = 1, info = 0;
    for (int way = 0; way < 2; way++) {
        for (int r = 0; r < reps; r++) {
            memcpy(m, a, sizeof(m));
            for (int i = 0; i < KC; i++) {
                b[i] = 1.0f;
            }
            double t0 = now_us();
            if (way == 0) {
                sposv_("U", &n, &one, m, &n, b, &n, &info);
            } else {
                spotf2_("U", &n, m, &n, &info);
                cblas_strsv(CblasColMajor, CblasUpper, CblasTrans, CblasNonUnit, KC, m, KC, b, 1);
                cblas_strsv(CblasColMajor, CblasUpper, CblasNoTrans, CblasNonUnit, KC, m, KC, b, 1);
            }
            t[r] = now_us() - t0;
        }
        *(way == 0 ? sposv_us : potf2_us) = median(t, reps);
    }
}

/* One full ALS sweep (recommend.als.*) at k = 64 on a window of 262,144 interactions of 20,000
 * customers over 2,000 items (the demo shop's size), median of 3, ms. */
static double bench_sweep(void)
{
    enum { N_LOG = 262144, N_ITEMS = 2000 };
    struct vs_als_entry *log = malloc(sizeof(*log) * N_LOG);
    float *y = malloc(sizeof(float) * N_ITEMS * 64), *y0 = malloc(sizeof(float) * N_ITEMS * 64);
    uint64_t s = 9;
    for (int i = 0; i < N_ITEMS * 64; i++) {
        y0[i] = 0.01f * ((float)(next(&s) % 2001) / 1000.0f - 1.0f);
    }
    for (int e = 0; e < N_LOG; e++) {
        log[e] = (struct vs_als_entry){1 + (uint32_t)(next(&s) % 20000),
                                       (int32_t)(next(&s) % N_ITEMS), 1.0f};
    }
    struct vs_als_params p = {64, 2.0f, 2.0f, 1};
    double t[3];
    for (int r = 0; r < 3; r++) {
        memcpy(y, y0, sizeof(float) * N_ITEMS * 64);
        double t0 = now_us();
        vs_als_sweep(&p, y, N_ITEMS, log, N_LOG, NULL);
        t[r] = (now_us() - t0) / 1e3;
    }
    free(log);
    free(y);
    free(y0);
    return median(t, 3);
}

int main(int argc, char **argv)
{
    vs__blas_kernels_check(argv); /* the engine's BLAS kernels (engine/blas.h) */
    /* The engine runs operators on one loop thread per process (more cores come from more
     * partitions and processes), so the BLAS calls are measured single-threaded: OpenBLAS's own
     * threads would make the bare sgemv faster and every small call slower. */
    openblas_set_num_threads(1);
    if (argc > 1 && strcmp(argv[1], "stream") == 0) {
        struct stream_result st;
        const char *keep = argc > 3 && strcmp(argv[2], "--csv") == 0 ? argv[3] : NULL;
        if (bench_stream(&st, keep) < 0) {
            return 1;
        }
        printf("{\"events\":%lld,\"us_per_event\":%.2f,\"learn_us_per_event\":%.2f,"
               "\"adapt_us_per_event\":%.2f,\"top_us_per_list\":%.2f,\"lists\":%lld,"
               "\"lists_hash\":\"%016llx\"}\n",
               (long long)st.events, st.us_per_event, st.learn_us, st.adapt_us, st.top_us_per_list,
               (long long)st.lists, (unsigned long long)st.hash);
        return 0;
    }
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
    double sposv_us = 0, potf2_us = 0;
    bench_cholesky(t, UPDATES, &sposv_us, &potf2_us);
    double sweep_ms = bench_sweep();

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
    /* The scores as `eval recommend` takes them for a catalogue this large: two OpenBLAS
     * threads (vs_mf_set_score_threads), against one, in alternating calls. */
    double *t2 = malloc(sizeof(double) * TOP_REPS);
    for (int r = 0; r < TOP_REPS; r++) {
        const float *x = cust[r % CUSTOMERS].x;
        for (int threads = 1; threads <= 2; threads++) {
            vs_mf_set_score_threads(mf, threads);
            double t0 = now_us();
            vs_mf_scores(mf, x, 1.0f, y);
            (threads == 1 ? tg : t2)[r] = now_us() - t0;
            checksum += y[r];
        }
    }
    vs_mf_set_score_threads(mf, 1);
    double scores1_us = median(tg, TOP_REPS), scores2_us = median(t2, TOP_REPS);
    free(t2);

    struct stream_result st = {0};
    char csv[] = "/tmp/vs-recommend-stream-XXXXXX";
    int fd = mkstemp(csv);
    if (fd < 0) {
        return 1;
    }
    close(fd);
    if (bench_stream(&st, csv) < 0) {
        fprintf(stderr, "recommend_bench: the synthetic stream failed\n");
        return 1;
    }

    /* Quality: the eval command on the Diginetica sample and on the synthetic shop's stream,
     * their JSON as sub-objects. */
    char dig[4096], syn[4096];
    eval_json(VS_BIN " eval recommend --input ../shared/data/diginetica/"
                     "sample_train-item-views.csv --format diginetica",
              dig, sizeof(dig));
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s eval recommend --input %s --format csv", VS_BIN, csv);
    eval_json(cmd, syn, sizeof(syn));
    /* The same with a full ALS sweep every day of event time (recommend.als.interval.ms), and
     * the model alone (no co-occurrence, no popularity, fixed blend) without and with them. */
#define DIG                                                                                        \
    VS_BIN " eval recommend --input ../shared/data/diginetica/sample_train-item-views.csv "        \
           "--format diginetica"
#define SWEEPS " --set recommend.als.interval.ms=86400000"
#define ALONE                                                                                      \
    " --set recommend.blend.together=0 --set recommend.blend.trending=0 --set "                    \
    "recommend.blend.model=1 --set recommend.blend.adapt=false"
    char dig_als[4096], dig_alone[4096], dig_alone_als[4096], syn_als[4096];
    eval_json(DIG SWEEPS, dig_als, sizeof(dig_als));
    eval_json(DIG ALONE, dig_alone, sizeof(dig_alone));
    eval_json(DIG ALONE SWEEPS, dig_alone_als, sizeof(dig_alone_als));
    snprintf(cmd, sizeof(cmd), "%s eval recommend --input %s --format csv" SWEEPS, VS_BIN, csv);
    eval_json(cmd, syn_als, sizeof(syn_als));
#undef DIG
#undef SWEEPS
#undef ALONE
    unlink(csv);

    /* A log led by popularity (bench/skewed_log.py, 200k views over 120k items), where recent
     * popularity is the strongest baseline; a session log shaped like the full Diginetica log
     * (bench/session_log.py), with a catalogue of its size, as it is and with hit rates near the
     * real sample's; a sparse, review-like log led by popularity (bench/sparse_log.py); and
     * MovieLens' u.data when VS_MOVIELENS names it (the data is not in ../shared/data:
     * "movielens" is null without it). */
    char skew[4096], sess[4096], hard[4096], sparse[4096], ml[4096];
    generated_log_eval("skewed_log.py 200000 120000", "", "csv", skew, sizeof(skew));
    generated_log_eval("session_log.py 200000 123000", "", "diginetica", sess, sizeof(sess));
    generated_log_eval("session_log.py 200000 123000", "0.15 0.55 0.15 0.6", "diginetica", hard,
                       sizeof(hard));
    generated_log_eval("sparse_log.py 80000 30000", "0.1", "csv", sparse, sizeof(sparse));
    const char *ml_path = getenv("VS_MOVIELENS");
    snprintf(ml, sizeof(ml), "null");
    if (ml_path && *ml_path) {
        if (access(ml_path, R_OK) != 0 || strlen(ml_path) > 255 || strchr(ml_path, '\'')) {
            fprintf(stderr,
                    "recommend_bench: VS_MOVIELENS=%s: not a readable file (or a path "
                    "with a quote or over 255 bytes); movielens left out\n",
                    ml_path);
        } else {
            snprintf(cmd, sizeof(cmd), "%s eval recommend --input '%s' --format movielens", VS_BIN,
                     ml_path);
            eval_json(cmd, ml, sizeof(ml));
        }
    }

    char out[65536];
    snprintf(out, sizeof(out),
             "{\"bench\":\"recommend\",\"k\":64,\"items\":%d,\"update_us_median\":%.2f,\"update_"
             "cpu_us_mean\":%.2f,\"update_wall_us_mean\":%.2f,"
             "\"customer_eals_us_median\":%.2f,\"customer_exact_us_median\":%.2f,"
             "\"item_step_us_median\":%.2f,\"cholesky_us\":{\"sposv\":%.2f,\"spotf2_strsv\":%.2f},"
             "\"als_sweep_ms_median\":%.1f,"
             "\"top20_us_median\":%.1f,\"sgemv_us_median\":%.1f,\"top20_ratio\":%.3f,"
             "\"scores_us_median\":{\"threads_1\":%.1f,\"threads_2\":%.1f},"
             "\"rejected\":%lld,\"stream\":{\"events\":%lld,\"us_per_event\":%.2f,"
             "\"learn_us_per_event\":%.2f,\"adapt_us_per_event\":%.2f,"
             "\"top_us_per_list\":%.2f,\"lists_per_event\":%.3f,\"lists_hash\":\"%016llx\"},"
             "\"diginetica\":%s,\"synthetic_shop\":%s,"
             "\"als_sweeps_daily\":{\"diginetica\":%s,\"synthetic_shop\":%s,"
             "\"diginetica_model_alone\":{\"without\":%s,\"with\":%s}},"
             "\"skewed_log_200k\":%s,\"session_log_200k\":%s,\"session_log_hard_200k\":%s,"
             "\"sparse_log\":%s,\"movielens\":%s}",
             n, update_us, update_cpu_us, update_wall_mean, eals_us, exact_us, item_us, sposv_us,
             potf2_us, sweep_ms, top_us, sgemv_us, top_us / sgemv_us, scores1_us, scores2_us,
             (long long)vs_rec_stats(rec).rejected, (long long)st.events, st.us_per_event,
             st.learn_us, st.adapt_us, st.top_us_per_list, st.lists_per_event,
             (unsigned long long)st.hash, dig, syn, dig_als, syn_als, dig_alone, dig_alone_als,
             skew, sess, hard, sparse, ml);
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
