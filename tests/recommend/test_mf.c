/*
 * Unit tests of the matrix-factorization model: the closed-form fold-in against a direct solve,
 * eALS against the fold-in, the Gram cache against YtY from scratch, rejection of poisoned
 * updates, the checkpoint round trip, and the baseline and AVX2 builds of the kernels giving the
 * same bits.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <valuestream/error.h>

#include "operators/recommend/mf.h"
#include "operators/recommend/mf_kernels.h"

static struct vs_mf *model(int k, int items)
{
    struct vs_mf_params p = {.k = k,
                             .lambda = 0.5f,
                             .alpha = 2.0f,
                             .item_inertia = 4.0f,
                             .init_scale = 0.3f,
                             .seed = 7,
                             .max_items = 100000};
    char err[128];
    struct vs_mf *mf = vs_mf_new(&p, err, sizeof(err));
    assert_non_null(mf);
    char id[32];
    for (int i = 0; i < items; i++) {
        snprintf(id, sizeof(id), "item-%d", i);
        assert_int_equal(vs_mf_intern(mf, id, NULL), i);
    }
    return mf;
}

/* Solve A x = b (n x n, row-major, copied) by Gaussian elimination with partial pivoting. */
static void direct_solve(int n, const double *a_in, const double *b_in, double *x)
{
    double a[64 * 64], b[64];
    memcpy(a, a_in, sizeof(double) * (size_t)(n * n));
    memcpy(b, b_in, sizeof(double) * (size_t)n);
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int r = c + 1; r < n; r++) {
            if (fabs(a[r * n + c]) > fabs(a[p * n + c])) {
                p = r;
            }
        }
        for (int j = 0; j < n; j++) {
            double t = a[c * n + j];
            a[c * n + j] = a[p * n + j];
            a[p * n + j] = t;
        }
        double t = b[c];
        b[c] = b[p];
        b[p] = t;
        for (int r = c + 1; r < n; r++) {
            double f = a[r * n + c] / a[c * n + c];
            for (int j = c; j < n; j++) {
                a[r * n + j] -= f * a[c * n + j];
            }
            b[r] -= f * b[c];
        }
    }
    for (int r = n - 1; r >= 0; r--) {
        double s = b[r];
        for (int j = r + 1; j < n; j++) {
            s -= a[r * n + j] * x[j];
        }
        x[r] = s / a[r * n + r];
    }
}

/* The fold-in system built from its definition: all items' rows, not the Gram cache. */
static void reference_fold_in(const struct vs_mf *mf, const int32_t *items, const float *w, int n,
                              double *x)
{
    int k = vs_mf_k(mf);
    double a[64 * 64] = {0}, b[64] = {0};
    for (int32_t i = 0; i < vs_mf_items(mf); i++) {
        const float *y = vs_mf_row(mf, i);
        double c = 1.0, p = 0.0;
        for (int j = 0; j < n; j++) {
            if (items[j] == i) {
                c = 1.0 + 2.0 * w[j];
                p = 1.0;
            }
        }
        for (int f = 0; f < k; f++) {
            b[f] += c * p * y[f];
            for (int g = 0; g < k; g++) {
                a[f * k + g] += c * y[f] * y[g];
            }
        }
    }
    for (int f = 0; f < k; f++) {
        a[f * k + f] += 0.5;
    }
    direct_solve(k, a, b, x);
}

static void fold_in_matches_direct_solve(void **state)
{
    struct vs_mf *mf = model(16, 300);
    int32_t items[5] = {3, 17, 99, 250, 4};
    float w[5] = {1, 4, 10, 1, 2.5f};
    float x[16];
    double ref[16];
    assert_int_equal(vs_mf_fold_in(mf, items, w, 5, x), 0);
    reference_fold_in(mf, items, w, 5, ref);
    double err = 0, norm = 0;
    for (int f = 0; f < 16; f++) {
        err += (x[f] - ref[f]) * (x[f] - ref[f]);
        norm += ref[f] * ref[f];
    }
    assert_true(norm > 1e-6);
    assert_true(sqrt(err / norm) < 1e-4);

    /* eALS, run long enough, converges to the same solution. */
    float xe[16] = {0};
    assert_int_equal(vs_mf_eals(mf, items, w, 5, xe, 200), 0);
    err = 0;
    for (int f = 0; f < 16; f++) {
        err += (xe[f] - ref[f]) * (xe[f] - ref[f]);
    }
    assert_true(sqrt(err / norm) < 1e-3);

    /* One eALS sweep from zero already lowers the distance to the solution. */
    float x1[16] = {0};
    assert_int_equal(vs_mf_eals(mf, items, w, 5, x1, 1), 0);
    double d1 = 0;
    for (int f = 0; f < 16; f++) {
        d1 += (x1[f] - ref[f]) * (x1[f] - ref[f]);
    }
    assert_true(d1 < norm);

    /* No items: the zero vector. */
    assert_int_equal(vs_mf_fold_in(mf, items, w, 0, x), 0);
    for (int f = 0; f < 16; f++) {
        assert_true(x[f] == 0.0f);
    }
    vs_mf_free(mf);
}

static void gram_cache_tracks_updates(void **state)
{
    struct vs_mf *mf = model(32, 500);
    int k = 32;
    uint64_t s = 12345;
    float x[32];
    for (int e = 0; e < 20000; e++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int32_t items[3] = {(int32_t)((s >> 33) % 500), (int32_t)((s >> 13) % 500),
                            (int32_t)((s >> 43) % 500)};
        float w[3] = {1, 1, 4};
        memset(x, 0, sizeof(x));
        assert_int_equal(vs_mf_eals(mf, items, w, 3, x, 1), 0);
        assert_int_equal(
            vs_mf_update_item(mf, items[0], x, (e % 7) ? 1.0f : 10.0f, (e % 11) ? 1.0f : 0.0f), 0);
        if (e % 1000 == 999) { /* new items keep arriving too */
            char id[32];
            snprintf(id, sizeof(id), "late-%d", e);
            assert_true(vs_mf_intern(mf, id, NULL) >= 500);
        }
    }
    double *fresh = malloc(sizeof(double) * (size_t)(k * k));
    vs_mf_gram_recompute(mf, fresh);
    const double *cached = vs_mf_gram(mf);
    double maxdiff = 0, maxval = 0;
    for (int f = 0; f < k; f++) {
        for (int g = f; g < k; g++) {
            double d = fabs(cached[f * k + g] - fresh[f * k + g]);
            maxdiff = d > maxdiff ? d : maxdiff;
            maxval = fabs(fresh[f * k + g]) > maxval ? fabs(fresh[f * k + g]) : maxval;
        }
    }
    assert_true(maxval > 1.0);
    assert_true(maxdiff < 1e-6 * maxval);
    free(fresh);
    vs_mf_free(mf);
}

static int model_finite(const struct vs_mf *mf)
{
    int k = vs_mf_k(mf);
    for (int32_t i = 0; i < vs_mf_items(mf); i++) {
        for (int f = 0; f < k; f++) {
            if (!isfinite(vs_mf_row(mf, i)[f])) {
                return 0;
            }
        }
    }
    for (int f = 0; f < k * k; f++) {
        if (!isfinite(vs_mf_gram(mf)[f])) {
            return 0;
        }
    }
    return 1;
}

static void poisoned_update_is_rejected(void **state)
{
    struct vs_mf *mf = model(8, 50);
    double gram[64];
    float row[8];
    memcpy(gram, vs_mf_gram(mf), sizeof(gram));
    memcpy(row, vs_mf_row(mf, 3), sizeof(row));

    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    x[2] = NAN;
    assert_int_equal(vs_mf_update_item(mf, 3, x, 1.0f, 1.0f), VS_EINVAL);
    x[2] = INFINITY;
    assert_int_equal(vs_mf_update_item(mf, 3, x, 1.0f, 1.0f), VS_EINVAL);
    x[2] = 3;
    assert_int_equal(vs_mf_update_item(mf, 3, x, NAN, 1.0f), VS_EINVAL);
    assert_int_equal(vs_mf_update_item(mf, 3, x, 1.0f, INFINITY), VS_EINVAL);
    /* A finite but absurd customer vector would push the row past any sane size. */
    float huge[8] = {1e20f, 1e20f, 1e20f, 1e20f, 1e20f, 1e20f, 1e20f, 1e20f};
    assert_int_equal(vs_mf_update_item(mf, 3, huge, 1.0f, 1.0f), VS_EINVAL);

    int32_t items[2] = {3, 4};
    float w[2] = {1, NAN};
    float before[8] = {9, 9, 9, 9, 9, 9, 9, 9}, out[8];
    memcpy(out, before, sizeof(out));
    assert_int_equal(vs_mf_fold_in(mf, items, w, 2, out), VS_EINVAL);
    assert_memory_equal(out, before, sizeof(out));
    assert_int_equal(vs_mf_eals(mf, items, w, 2, out, 1), VS_EINVAL);
    assert_memory_equal(out, before, sizeof(out));
    float nanx[8] = {NAN, 0, 0, 0, 0, 0, 0, 0};
    w[1] = 1;
    assert_int_equal(vs_mf_eals(mf, items, w, 2, nanx, 1), VS_EINVAL);

    assert_int_equal(vs_mf_rejected(mf), 8);
    assert_memory_equal(gram, vs_mf_gram(mf), sizeof(gram));
    assert_memory_equal(row, vs_mf_row(mf, 3), sizeof(row));
    assert_true(model_finite(mf));

    /* A clean update still goes through afterwards. */
    assert_int_equal(vs_mf_update_item(mf, 3, x, 1.0f, 1.0f), 0);
    assert_true(model_finite(mf));
    vs_mf_free(mf);
}

static void intern_rules(void **state)
{
    struct vs_mf *mf = model(4, 3);
    int created = -1;
    assert_int_equal(vs_mf_intern(mf, "item-1", &created), 1);
    assert_int_equal(created, 0);
    assert_int_equal(vs_mf_intern(mf, "fresh", &created), 3);
    assert_int_equal(created, 1);
    assert_int_equal(vs_mf_find(mf, "fresh"), 3);
    assert_int_equal(vs_mf_find(mf, "nope"), -1);
    assert_int_equal(vs_mf_intern(mf, "", NULL), VS_EINVAL);
    char long_id[100];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[99] = 0;
    assert_int_equal(vs_mf_intern(mf, long_id, NULL), VS_ETOOBIG);
    /* The same id gets the same first row in another model with the same seed. */
    struct vs_mf *other = model(4, 0);
    assert_int_equal(vs_mf_intern(other, "fresh", NULL), 0);
    assert_memory_equal(vs_mf_row(other, 0), vs_mf_row(mf, 3), 4 * sizeof(float));
    vs_mf_free(other);
    vs_mf_free(mf);
}

static void checkpoint_round_trip(void **state)
{
    struct vs_mf *mf = model(8, 700);
    float x[8] = {0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f, 0.7f, -0.8f};
    vs_mf_clear_dirty(mf);
    assert_int_equal(vs_mf_next_dirty(mf, 0), -1);
    assert_int_equal(vs_mf_update_item(mf, 600, x, 1.0f, 1.0f), 0);
    /* Only the chunk holding row 600 changed. */
    assert_int_equal(vs_mf_next_dirty(mf, 0), 600 / VS_MF_CHUNK_ROWS);
    assert_int_equal(vs_mf_next_dirty(mf, 600 / VS_MF_CHUNK_ROWS + 1), -1);

    struct vs_mf *copy = model(8, 0);
    size_t len = vs_mf_encode_meta(mf, NULL, 0);
    char *buf = malloc(len);
    assert_int_equal(vs_mf_encode_meta(mf, buf, len), len);
    assert_int_equal(vs_mf_decode_meta(copy, buf, len), 0);
    free(buf);
    for (int32_t c = 0; c < vs_mf_chunks(mf); c++) {
        len = vs_mf_encode_chunk(mf, c, NULL, 0);
        buf = malloc(len);
        assert_int_equal(vs_mf_encode_chunk(mf, c, buf, len), len);
        assert_int_equal(vs_mf_decode_chunk(copy, c, buf, len), 0);
        if (c == 0) { /* a truncated chunk, or one with a NaN factor, is refused */
            struct vs_mf *bad = model(8, 0);
            size_t mlen = vs_mf_encode_meta(mf, NULL, 0);
            char *meta = malloc(mlen);
            vs_mf_encode_meta(mf, meta, mlen);
            assert_int_equal(vs_mf_decode_meta(bad, meta, mlen), 0);
            assert_int_equal(vs_mf_decode_chunk(bad, c, buf, len - 1), VS_ECORRUPT);
            vs_mf_free(bad);
            bad = model(8, 0);
            assert_int_equal(vs_mf_decode_meta(bad, meta, mlen), 0);
            float nan = NAN;
            memcpy(buf + len - sizeof(float), &nan, sizeof(float));
            assert_int_equal(vs_mf_decode_chunk(bad, c, buf, len), VS_ECORRUPT);
            vs_mf_free(bad);
            free(meta);
        }
        free(buf);
    }
    assert_int_equal(vs_mf_items(copy), 700);
    assert_memory_equal(vs_mf_gram(copy), vs_mf_gram(mf), 64 * sizeof(double));
    for (int32_t i = 0; i < 700; i++) {
        assert_string_equal(vs_mf_item_id(copy, i), vs_mf_item_id(mf, i));
        assert_memory_equal(vs_mf_row(copy, i), vs_mf_row(mf, i), 8 * sizeof(float));
        assert_int_equal(vs_mf_find(copy, vs_mf_item_id(mf, i)), i);
    }
    /* The loaded model evolves exactly like the original. */
    assert_int_equal(vs_mf_update_item(mf, 5, x, 4.0f, 1.0f), 0);
    assert_int_equal(vs_mf_update_item(copy, 5, x, 4.0f, 1.0f), 0);
    assert_memory_equal(vs_mf_gram(copy), vs_mf_gram(mf), 64 * sizeof(double));
    assert_int_equal(vs_mf_decode_meta(copy, "junk", 4), VS_ECORRUPT);
    vs_mf_free(copy);
    vs_mf_free(mf);
}

static double uniform(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
}

/*
 * The two builds of the eALS sweep and the Gram update, on the same random inputs, must agree
 * to the bit, at factor sizes and item counts that are and are not multiples of four, and the
 * sweep must have read each item's row, transposed, exactly.
 */
static void kernel_builds_agree(void **state)
{
    (void)state;
    const struct vs__mf_kernels *base = vs__mf_kernels_variant(0),
                                *avx2 = vs__mf_kernels_variant(1);
    assert_non_null(base);
    if (!avx2) {
        skip(); /* this CPU runs the baseline build only */
    }
    enum { ITEMS = 300 };
    static float y[ITEMS * VS_MF_MAX_K];
    static double yt[2][VS_MF_MAX_K * 64], gram[2][VS_MF_MAX_K * VS_MF_MAX_K];
    uint64_t s = 99;
    const int ks[] = {1, 7, 32, 61, 64}, ms[] = {1, 5, 32, 64};
    int compared = 0;
    for (size_t a = 0; a < sizeof(ks) / sizeof(ks[0]); a++) {
        int k = ks[a];
        for (int i = 0; i < ITEMS * k; i++) {
            y[i] = (float)(0.3 * uniform(&s));
        }
        for (int i = 0; i < k * k; i++) {
            gram[0][i] = gram[1][i] = 40.0 + 10.0 * uniform(&s);
        }
        for (size_t b = 0; b < sizeof(ms) / sizeof(ms[0]); b++) {
            int m = ms[b], mp = (m + 3) & ~3;
            int32_t idx[64];
            double c[64] = {0}, am[64] = {0}, q[2][64], cur[2][VS_MF_MAX_K];
            for (int j = 0; j < m; j++) {
                idx[j] = (int32_t)(s % ITEMS);
                c[j] = 1.0 + 2.0 * (5.0 + 5.0 * uniform(&s));
                am[j] = c[j] - 1.0;
            }
            for (int f = 0; f < k; f++) {
                cur[0][f] = cur[1][f] = 0.2 * uniform(&s);
            }
            for (int v = 0; v < 2; v++) {
                struct vs__eals_job job = {.k = k,
                                           .m = m,
                                           .mp = mp,
                                           .sweeps = 2,
                                           .y = y,
                                           .idx = idx,
                                           .c = c,
                                           .am = am,
                                           .gram = gram[0],
                                           .lambda = 0.5,
                                           .yt = yt[v],
                                           .q = q[v],
                                           .cur = cur[v]};
                (v ? avx2 : base)->eals(&job);
            }
            assert_memory_equal(cur[0], cur[1], (size_t)k * sizeof(double));
            /* Both read the items' rows transposed, padded with zeros to mp. */
            for (int v = 0; v < 2; v++) {
                for (int f = 0; f < k; f++) {
                    for (int j = 0; j < mp; j++) {
                        double want = j < m ? (double)y[(size_t)idx[j] * (size_t)k + (size_t)f] : 0;
                        assert_true(yt[v][f * mp + j] == want);
                    }
                }
            }
            for (int r = 0; r < 50; r++) {
                const float *old = y + (size_t)(r % ITEMS) * (size_t)k;
                const float *new_row = y + (size_t)((r * 7 + 3) % ITEMS) * (size_t)k;
                base->gram_replace(gram[0], k, old, new_row);
                avx2->gram_replace(gram[1], k, old, new_row);
            }
            assert_memory_equal(gram[0], gram[1], (size_t)(k * k) * sizeof(double));
            compared++;
        }
    }
    assert_int_equal(compared, 20);
}

/* Scores of a catalogue large enough for two threads: each is Y[i] . x (against a double
 * reference), two threaded calls give the same bits, and a small catalogue is left to one thread
 * (the same bits as without the setting). */
static void threaded_scores(void **state)
{
    const int k = 64, n = (int)(VS_MF_THREADED_FLOATS / 64) + 77; /* odd-sized */
    struct vs_mf *mf = model(k, n);
    float x[64];
    for (int f = 0; f < k; f++) {
        x[f] = (float)(f % 7) - 3.0f;
    }
    float *one = malloc(sizeof(float) * (size_t)n), *two = malloc(sizeof(float) * (size_t)n);
    float *again = malloc(sizeof(float) * (size_t)n);
    vs_mf_scores(mf, x, 0.5f, one);
    vs_mf_set_score_threads(mf, 2);
    vs_mf_scores(mf, x, 0.5f, two);
    vs_mf_scores(mf, x, 0.5f, again);
    assert_memory_equal(two, again, sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i += 1 + i % 97) {
        const float *y = vs_mf_row(mf, i);
        double ref = 0, mag = 0;
        for (int f = 0; f < k; f++) {
            ref += (double)y[f] * x[f];
            mag += fabs((double)y[f] * x[f]);
        }
        ref *= 0.5;
        assert_true(fabs(two[i] - ref) <= 1e-5 * mag + 1e-30);
        assert_true(fabs(one[i] - ref) <= 1e-5 * mag + 1e-30);
    }
    vs_mf_free(mf);
    mf = model(k, 1000);
    vs_mf_scores(mf, x, 0.5f, one);
    vs_mf_set_score_threads(mf, 2);
    vs_mf_scores(mf, x, 0.5f, two);
    assert_memory_equal(one, two, sizeof(float) * 1000);
    vs_mf_free(mf);
    free(one);
    free(two);
    free(again);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fold_in_matches_direct_solve),
        cmocka_unit_test(gram_cache_tracks_updates),
        cmocka_unit_test(poisoned_update_is_rejected),
        cmocka_unit_test(intern_rules),
        cmocka_unit_test(checkpoint_round_trip),
        cmocka_unit_test(kernel_builds_agree),
        cmocka_unit_test(threaded_scores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
