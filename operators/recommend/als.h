/*
 * A full implicit-ALS pass (Hu, Koren & Volinsky 2008) over a window of recent interactions:
 * the periodic sweep behind recommend.als.interval.ms.
 *
 * The online model re-solves one customer and moves one item row per interaction; a sweep
 * instead re-solves every customer of the window against all item rows, then every item of the
 * window against those customers, `iterations` times, starting from the item rows it is given.
 * It works on its own copies only (no model, no engine), so it runs on the thread pool while the
 * online model goes on learning; its result is applied as a change of each row it solved.
 */
#ifndef VS_RECOMMEND_ALS_H
#define VS_RECOMMEND_ALS_H

#include <stddef.h>
#include <stdint.h>

/* One logged interaction: the customer's number, the item's row, the weight it gave (a
 * remove-from-cart or refund is logged with a negative weight). */
struct vs_als_entry {
    uint32_t customer;
    int32_t item;
    float weight;
};

struct vs_als_params {
    int k;
    float lambda; /* L2 regularisation of both solves */
    float alpha;  /* confidence c = 1 + alpha * weight */
    int iterations;
};

/*
 * Run the sweep. y holds n_items rows of k floats, row-major; the rows of items the log
 * interacts with are replaced by their solution, the others are left as they are. Weights of
 * one (customer, item) pair are summed and pairs whose sum is not positive are dropped; entries
 * naming a row outside [0, n_items) are ignored. *solved (may be NULL) is set to the number of
 * rows solved. Returns 0, VS_ENOMEM, or VS_EINVAL when a solve is not finite or not positive
 * definite (y is then left as it was).
 */
int vs_als_sweep(const struct vs_als_params *p, float *y, int32_t n_items,
                 const struct vs_als_entry *log, size_t n_log, int32_t *solved);

/* Half the implicit-ALS objective over the log's pairs and all items, with the customers solved
 * against y: sum_u,i c_ui (p_ui - x_u . y_i)^2 + lambda (|x_u|^2 + |y_i|^2 over the log's
 * items). For tests: a sweep must not raise it. Returns NAN on failure. */
double vs_als_loss(const struct vs_als_params *p, const float *y, int32_t n_items,
                   const struct vs_als_entry *log, size_t n_log);

#endif
