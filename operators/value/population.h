/*
 * The population aggregate of the value operator: every customer's sufficient statistics,
 * grouped, so that a refit needs no customer records.
 *
 * Customers live in the engine's state store, which an operator cannot enumerate, so the value
 * operator keeps this aggregate itself and updates it incrementally: when a purchase changes a
 * customer, their old contribution is removed and the new one added. BG/NBD cells are keyed by
 * (x, first purchase bin, last purchase bin), with bins of value.population.bin.days days, so a
 * cell's T follows the clock without being touched; Gamma-Gamma cells by (x, spend bin) with 0.5%
 * log-spaced spend bins, holding sums of m_x and log m_x so the fit sees exact means.
 *
 * The cells are spread over VS_POP_PAGES small hash tables ("pages") so that a commit writes
 * only the pages that changed, one model blob each.
 */
#ifndef VS_OPERATORS_VALUE_POPULATION_H
#define VS_OPERATORS_VALUE_POPULATION_H

#include <stddef.h>
#include <stdint.h>

#include "clv_model.h"

#define VS_POP_PAGES 1024
#define VS_POP_X_MAX                                                                               \
    32767 /* x beyond this is counted as this (a customer buying daily for 90                      \
             years) */

struct vs_population;

/* NULL on allocation failure. */
struct vs_population *vs_population_new(void);
void vs_population_free(struct vs_population *pop);

/* Add (w = 1) or remove (w = -1) a customer's BG/NBD statistics: x repeat days, first and last
 * purchase bins (day / bin_days). */
int vs_population_bg_add(struct vs_population *pop, uint32_t x, int32_t first_bin, int32_t last_bin,
                         int w);

/* Add or remove a customer's Gamma-Gamma statistics: x paid repeat days of mean spend m > 0. */
int vs_population_gg_add(struct vs_population *pop, uint32_t x, double m, int w);

/* Customers in the BG/NBD cells, and those with a positive repeat spend. */
int64_t vs_population_customers(const struct vs_population *pop);
int64_t vs_population_repeat_spenders(const struct vs_population *pop);
size_t vs_population_cells(const struct vs_population *pop);

/*
 * Rows for a refit at event time now_days (days since the epoch, fractional): T runs from the
 * start of the first purchase's bin to now. The arrays are malloc'd (caller frees); returns 0 or
 * VS_ENOMEM.
 */
int vs_population_snapshot(const struct vs_population *pop, double now_days, int bin_days,
                           struct vs_bgnbd_row **bg, size_t *nbg, struct vs_gg_row **gg,
                           size_t *ngg);

/* ==== Persistence, one page at a time ==== */

int vs_population_page_dirty(const struct vs_population *pop, int page);
void vs_population_page_clean(struct vs_population *pop, int page);

/* Encode page into a malloc'd buffer (*buf, *len); an empty page encodes to length 0. */
int vs_population_page_encode(const struct vs_population *pop, int page, void **buf, size_t *len);

/* Replace page with decoded content; VS_ECORRUPT when len is not a whole number of cells or a
 * cell belongs to another page. */
int vs_population_page_decode(struct vs_population *pop, int page, const void *buf, size_t len);

#endif
