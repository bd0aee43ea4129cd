/*
 * Fixed-bin quantile histograms, RFM scoring, the `rfm` package's segment rules and CLV tiers.
 * See rfm.h for why histograms and not a streaming sketch.
 */
#include "rfm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valuestream/error.h>

/* ==== Histograms ==== */

void vs_qhist_init_linear(struct vs_qhist *h, double lo, double width, int nbins)
{
    memset(h, 0, sizeof *h);
    h->log_scale = 0;
    h->nbins = nbins > 1 && nbins <= VS_QHIST_BINS ? nbins : VS_QHIST_BINS;
    h->lo = lo;
    h->width = width > 0 ? width : 1;
}

void vs_qhist_init_log(struct vs_qhist *h, double lo, double hi, int nbins)
{
    memset(h, 0, sizeof *h);
    h->log_scale = 1;
    h->nbins = nbins > 2 && nbins <= VS_QHIST_BINS ? nbins : VS_QHIST_BINS;
    h->lo = lo;
    h->width = log(hi / lo) / (h->nbins - 1);
}

/* Linear histograms slide up to keep v in range: the lowest bins fold into bin 0. */
static void slide(struct vs_qhist *h, double v)
{
    double top = h->lo + h->nbins * h->width;
    if (!(v >= top)) {
        return;
    }
    double steps = floor((v - top) / h->width) + 1;
    int k = steps >= h->nbins ? h->nbins - 1 : (int)steps;
    int64_t folded = 0;
    for (int i = 0; i <= k; i++) {
        folded += h->counts[i];
    }
    memmove(h->counts + 1, h->counts + k + 1, (size_t)(h->nbins - k - 1) * sizeof *h->counts);
    memset(h->counts + h->nbins - k, 0, (size_t)k * sizeof *h->counts);
    h->counts[0] = folded;
    h->lo += steps * h->width;
}

static int bin_of(const struct vs_qhist *h, double v)
{
    double b;
    if (h->log_scale) {
        if (!(v >= h->lo)) {
            return 0;
        }
        b = floor(log(v / h->lo) / h->width) + 1;
    } else {
        b = floor((v - h->lo) / h->width);
    }
    if (!(b > 0)) {
        return 0;
    }
    return b >= h->nbins ? h->nbins - 1 : (int)b;
}

/* Bounds [lo, hi) of bin i; bin 0 of a log histogram spans [0, lo). */
static void bin_range(const struct vs_qhist *h, int i, double *lo, double *hi)
{
    if (h->log_scale) {
        *lo = i == 0 ? 0 : h->lo * exp((i - 1) * h->width);
        *hi = h->lo * exp(i * h->width);
    } else {
        *lo = h->lo + i * h->width;
        *hi = *lo + h->width;
    }
}

void vs_qhist_add(struct vs_qhist *h, double v, int64_t w)
{
    if (!isfinite(v)) {
        return;
    }
    if (!h->log_scale && w > 0) {
        slide(h, v);
    }
    int b = bin_of(h, v);
    if (w < 0 && h->counts[b] < -w) {
        w = -h->counts[b];
    }
    h->counts[b] += w;
    h->total += w;
}

double vs_qhist_quantile(const struct vs_qhist *h, double q)
{
    if (h->total <= 0) {
        return NAN;
    }
    q = q < 0 ? 0 : q > 1 ? 1 : q;
    double target = q * (double)h->total, cum = 0;
    for (int i = 0; i < h->nbins; i++) {
        double c = (double)h->counts[i];
        if (c > 0 && cum + c >= target) {
            double lo, hi;
            bin_range(h, i, &lo, &hi);
            return lo + (hi - lo) * ((target - cum) / c);
        }
        cum += c;
    }
    double lo, hi;
    bin_range(h, h->nbins - 1, &lo, &hi);
    return hi;
}

double vs_qhist_quantile_edge(const struct vs_qhist *h, double q)
{
    if (h->total <= 0) {
        return NAN;
    }
    double target = (q < 0 ? 0 : q > 1 ? 1 : q) * (double)h->total, cum = 0;
    int i = 0;
    for (; i < h->nbins - 1; i++) {
        cum += (double)h->counts[i];
        if (h->counts[i] > 0 && cum >= target) {
            break;
        }
    }
    double lo, hi;
    bin_range(h, i, &lo, &hi);
    return hi;
}

void vs_qhist_quintiles(const struct vs_qhist *h, double cuts[4])
{
    for (int k = 0; k < 4; k++) {
        cuts[k] = vs_qhist_quantile_edge(h, 0.2 * (k + 1));
    }
}

int vs_rfm_score(double v, const double cuts[4])
{
    int s = 1;
    for (int k = 0; k < 4; k++) {
        s += v >= cuts[k];
    }
    return s;
}

/* ==== Segments ==== */

/*
 * The rules of rfm_segment() in the R package `rfm` (rsquaredacademy/rfm, R/rfm-segment.R), with
 * the bounds its documentation uses, in its order: a customer gets the first segment whose
 * recency, frequency and monetary score ranges all contain theirs, and "Others" when none does.
 */
static const struct {
    int seg;
    int r_lo, r_hi, f_lo, f_hi, m_lo, m_hi;
} rules[] = {
    {VS_SEG_CHAMPIONS, 5, 5, 5, 5, 5, 5},
    {VS_SEG_POTENTIAL_LOYALIST, 3, 5, 3, 5, 2, 5},
    {VS_SEG_LOYAL, 2, 4, 2, 4, 2, 4},
    {VS_SEG_PROMISING, 3, 4, 1, 3, 3, 5},
    {VS_SEG_NEW, 4, 5, 1, 3, 1, 5},
    {VS_SEG_CANT_LOSE, 1, 2, 3, 4, 4, 5},
    {VS_SEG_AT_RISK, 1, 2, 2, 5, 4, 5},
    {VS_SEG_NEED_ATTENTION, 1, 3, 3, 5, 3, 5},
    {VS_SEG_ABOUT_TO_SLEEP, 2, 3, 1, 3, 1, 4},
    {VS_SEG_LOST, 1, 1, 1, 5, 1, 5},
};

static const char *const segment_names[VS_SEG_COUNT] = {
    "Champions",      "Loyal Customers", "Potential Loyalist",
    "New Customers",  "Promising",       "Need Attention",
    "About To Sleep", "At Risk",         "Can't Lose Them",
    "Lost",           "Others",
};

int vs_rfm_segment(int r, int f, int m)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        if (r >= rules[i].r_lo && r <= rules[i].r_hi && f >= rules[i].f_lo && f <= rules[i].f_hi &&
            m >= rules[i].m_lo && m <= rules[i].m_hi) {
            return rules[i].seg;
        }
    }
    return VS_SEG_OTHERS;
}

const char *vs_rfm_segment_name(int segment)
{
    return segment >= 0 && segment < VS_SEG_COUNT ? segment_names[segment] : "Others";
}

int vs_rfm_segment_index(const char *name)
{
    for (int i = 0; i < VS_SEG_COUNT; i++) {
        if (strcmp(name, segment_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* ==== Tiers ==== */

int vs_tiers_parse(const char *spec, struct vs_tiers *t, char *errbuf, size_t errlen)
{
    memset(t, 0, sizeof *t);
    const char *p = spec;
    while (*p) {
        char *end;
        double c = strtod(p, &end);
        if (end == p || !(c > 0 && c < 1)) {
            snprintf(errbuf, errlen,
                     "value.tiers: '%s': expected fractions in (0, 1) separated "
                     "by commas, e.g. 0.01,0.1",
                     spec);
            return VS_ECONFIG;
        }
        if (t->n == VS_TIERS_MAX) {
            snprintf(errbuf, errlen, "value.tiers: at most %d cut-offs", VS_TIERS_MAX);
            return VS_ECONFIG;
        }
        if (t->n > 0 && c <= t->cut[t->n - 1]) {
            snprintf(errbuf, errlen, "value.tiers: '%s': cut-offs must increase", spec);
            return VS_ECONFIG;
        }
        snprintf(t->name[t->n], sizeof t->name[0], "top%g", c * 100);
        t->cut[t->n++] = c;
        while (*end == ' ') {
            end++;
        }
        if (*end == ',') {
            end++;
        } else if (*end != '\0') {
            snprintf(errbuf, errlen, "value.tiers: '%s': unexpected '%c'", spec, *end);
            return VS_ECONFIG;
        }
        p = end;
    }
    snprintf(t->name[t->n], sizeof t->name[0], "rest");
    return 0;
}

void vs_tier_thresholds(const struct vs_tiers *t, const struct vs_qhist *clv, double *thresholds)
{
    for (int i = 0; i < t->n; i++) {
        thresholds[i] = vs_qhist_quantile(clv, 1 - t->cut[i]);
    }
}

int vs_tier_of(const struct vs_tiers *t, const double *thresholds, double clv)
{
    if (!(clv > 0)) {
        return t->n;
    }
    for (int i = 0; i < t->n; i++) {
        if (isfinite(thresholds[i]) && clv >= thresholds[i]) {
            return i;
        }
    }
    return t->n;
}
