/*
 * The value operator: RFM, CLV and P(alive) per customer, and the population models behind them.
 *
 * On each purchase and refund it updates the customer's section and the population aggregates
 * (value_state.c) and scores the customer. Every value.refit.interval of event time it takes a
 * snapshot of the population's sufficient statistics and refits BG/NBD and Gamma-Gamma on the
 * thread pool; the result is applied at the next refit boundary, waiting for it there if it is
 * late, so the parameters in force at each event depend only on the event sequence (DESIGN.md
 * contract 4c). A refit still in flight at a commit is not waited for: its snapshot is stored
 * with the commit, so a replay after a crash runs the same refit and applies its result at the
 * same point. Until value.min.customers customers have bought and the oldest of them has been
 * a customer for value.min.history.days, the priors of clv_model.h apply: a younger population
 * cannot tell the spread of purchase rates from that of dropout, and four parameters fitted to
 * it run off along a ridge of the likelihood.
 *
 * Model blobs: "model" (parameters, clock, quantile histograms, a pending refit result) and
 * "pop/NNNN", the pages of the population aggregate; a commit writes only what changed.
 */
#include "value.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <valuestream/error.h>

#include "value_scores.h"

/* ==== Configuration ==== */

static const struct vs_config_key value_config[] = {
    {"value.horizon.days", VS_CONFIG_INT, "365",
     "horizon of expected transactions and CLV, in days"},
    {"value.discount.rate", VS_CONFIG_DOUBLE, "0.01", "monthly discount rate of CLV"},
    {"value.refit.interval", VS_CONFIG_INT, "604800000",
     "event-time ms between population refits; a refit is applied at the next boundary"},
    {"value.min.customers", VS_CONFIG_INT, "500",
     "customers with a purchase needed before the first refit (priors until then)"},
    {"value.min.history.days", VS_CONFIG_INT, "42",
     "days the oldest customer must have been one before the first refit (priors until then)"},
    {"value.tiers", VS_CONFIG_STRING, "0.01,0.1",
     "CLV-rank cut-offs of the value tiers: 0.01,0.1 -> top1, top10, rest"},
    {"value.population.bin.days", VS_CONFIG_INT, "1",
     "time resolution in days of the population aggregate the refit reads"},
    {"value.rfm.refresh.every", VS_CONFIG_INT, "1000",
     "population updates between refreshes of the RFM quintiles and tier thresholds (at most "
     "1/64th of the customers: every update below 64)"},
    {NULL, 0, NULL, NULL},
};

/* ==== The instance ==== */

#define BLOB_MAGIC 0x4D565356u /* "VSVM" */
#define BLOB_VERSION 1u

struct refit {
    struct vs_bgnbd_row *bg;
    size_t nbg;
    struct vs_gg_row *gg;
    size_t ngg;
    struct vs_clv_fit fit;
    double ms;     /* wall time of the fit, for the metrics only */
    int persisted; /* the snapshot is in the store ("refit") */
};

/* The stored snapshot of a refit in flight: this header, then the rows. */
struct snapshot_header {
    uint32_t magic, pad;
    uint64_t nbg, ngg;
    struct vs_bgnbd bg; /* the starting point */
    struct vs_gg gg;
};
#define SNAPSHOT_MAGIC 0x5253534Eu

/* Everything of the model but the population pages, persisted byte for byte. */
struct blob {
    uint32_t magic, version;
    int32_t bin_days, fitted;
    int64_t clock;         /* the largest event time seen */
    int64_t next_refit_ts; /* event time of the next refit boundary */
    int64_t updates;
    int32_t has_result;
    int32_t refit_pending;    /* a refit was in flight: its snapshot is "refit" */
    struct vs_clv_fit result; /* a finished refit waiting for its boundary */
    struct vs_bgnbd bg;
    struct vs_gg gg;
    double r_cuts[4], f_cuts[4], m_cuts[4], tier_thresholds[VS_TIERS_MAX];
    struct vs_qhist recency, frequency, monetary, clv, first_gap;
};

struct value {
    struct vs_env *env;
    struct vs_value_core core;
    int64_t clock, next_refit_ts, interval, min_customers;
    double min_history_weeks;
    struct vs_job *job;
    struct refit *refit; /* the snapshot and result of the job in flight */
    int snapshot_stored; /* the store holds a refit snapshot ("refit") */
    int has_result;
    struct vs_clv_fit result;
    int dirty;
    int64_t *c_purchases, *c_refunds, *c_refits, *c_noconv, *c_skipped;
    double *g_r, *g_alpha, *g_a, *g_b, *g_p, *g_q, *g_gamma, *g_ms, *g_cells, *g_customers;
};

static struct value *published;

const struct vs_value_model *vs_value_model_current(void)
{
    return published ? &published->core.model : NULL;
}

const char *vs_value_segment_name(int segment)
{
    return vs_rfm_segment_name(segment);
}

const char *vs_value_tier_name(int tier)
{
    static const char *const defaults[] = {"top1", "top10", "rest"};
    if (published) {
        const struct vs_tiers *t = &published->core.model.tiers;
        return tier >= 0 && tier <= t->n ? t->name[tier] : t->name[t->n];
    }
    return tier >= 0 && tier < 3 ? defaults[tier] : "rest";
}

int vs_value_scores(const struct vs_ctx *ctx, struct vs_value_scores *out)
{
    const struct vs_value_section *s = vs_ctx_section(ctx, "value");
    if (!s || s->scored_ts == 0) {
        return VS_ENOTFOUND;
    }
    out->p_alive = s->p_alive;
    out->expected_transactions = s->expected_transactions;
    out->clv = s->clv;
    out->rfm_recency = s->rfm_r;
    out->rfm_frequency = s->rfm_f;
    out->rfm_monetary = s->rfm_m;
    out->segment = vs_value_segment_name(s->segment);
    out->tier = vs_value_tier_name(s->tier);
    return 0;
}

static void publish_gauges(struct value *v)
{
    const struct vs_value_model *m = &v->core.model;
    *v->g_r = m->bg.r;
    *v->g_alpha = m->bg.alpha;
    *v->g_a = m->bg.a;
    *v->g_b = m->bg.b;
    *v->g_p = m->gg.p;
    *v->g_q = m->gg.q;
    *v->g_gamma = m->gg.gamma;
    *v->g_cells = (double)vs_population_cells(v->core.pop);
    *v->g_customers = (double)vs_population_customers(v->core.pop);
}

/* ==== Refits ==== */

static void refit_work(void *arg)
{
    struct refit *r = arg;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    vs_clv_refit(r->bg, r->nbg, r->gg, r->ngg, &r->fit);
    clock_gettime(CLOCK_MONOTONIC, &b);
    r->ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
}

/* Wait for the job in flight, if any, and keep its result until its boundary. */
static void refit_collect(struct value *v)
{
    if (!v->job) {
        return;
    }
    vs_job_wait(v->job);
    v->job = NULL;
    v->result = v->refit->fit;
    v->has_result = 1;
    *v->g_ms = v->refit->ms;
    free(v->refit->bg);
    free(v->refit->gg);
    free(v->refit);
    v->refit = NULL;
    v->dirty = 1;
}

static void refit_apply(struct value *v)
{
    const struct vs_clv_fit *f = &v->result;
    (*v->c_refits)++;
    int bg_failed = f->bg_rc == VS_ENOCONV, gg_failed = f->gg_rc == VS_ENOCONV;
    if (bg_failed || gg_failed) {
        (*v->c_noconv)++;
        vs_log(VS_LOG_WARN,
               "value: refit on %.0f customers: %s did not converge to a maximum the data "
               "identify; keeping the previous parameters",
               f->bg_weight,
               bg_failed && gg_failed ? "BG/NBD and Gamma-Gamma"
               : bg_failed            ? "BG/NBD"
                                      : "Gamma-Gamma");
    }
    vs_value_apply_fit(&v->core, f);
    vs_log(VS_LOG_DEBUG,
           "value: refit on %.0f customers (%zu rows): r=%.4g alpha=%.4g a=%.4g b=%.4g "
           "p=%.4g q=%.4g gamma=%.4g",
           f->bg_weight, f->bg_rows, v->core.model.bg.r, v->core.model.bg.alpha, v->core.model.bg.a,
           v->core.model.bg.b, v->core.model.gg.p, v->core.model.gg.q, v->core.model.gg.gamma);
    v->has_result = 0;
    publish_gauges(v);
}

static void refit_submit(struct value *v, struct refit *r)
{
    v->refit = r;
    v->job = vs_job_submit(v->env, refit_work, r);
    if (!v->job) {
        refit_work(r); /* no pool: the same work, now */
        v->result = r->fit;
        v->has_result = 1;
        free(r->bg);
        free(r->gg);
        free(r);
        v->refit = NULL;
    }
}

static void refit_start(struct value *v)
{
    if (vs_population_customers(v->core.pop) < v->min_customers) {
        (*v->c_skipped)++;
        return;
    }
    struct refit *r = calloc(1, sizeof *r);
    if (!r || vs_value_snapshot(&v->core, v->clock, &r->bg, &r->nbg, &r->gg, &r->ngg) != 0) {
        free(r);
        vs_log(VS_LOG_ERROR, "value: no memory for a refit snapshot; skipping this refit");
        (*v->c_skipped)++;
        return;
    }
    double oldest = 0; /* weeks */
    for (size_t i = 0; i < r->nbg; i++) {
        oldest = r->bg[i].T > oldest ? r->bg[i].T : oldest;
    }
    if (oldest < v->min_history_weeks) {
        free(r->bg);
        free(r->gg);
        free(r);
        (*v->c_skipped)++;
        return;
    }
    r->fit.bg = v->core.model.bg;
    r->fit.gg = v->core.model.gg;
    refit_submit(v, r);
}

/* The snapshot of the refit in flight as one blob (malloc'd), so a restart can redo it. */
static int snapshot_encode(const struct refit *r, void **out, size_t *len)
{
    size_t n = sizeof(struct snapshot_header) + r->nbg * sizeof(struct vs_bgnbd_row) +
               r->ngg * sizeof(struct vs_gg_row);
    unsigned char *b = malloc(n);
    if (!b) {
        return VS_ENOMEM;
    }
    struct snapshot_header h = {SNAPSHOT_MAGIC, 0, r->nbg, r->ngg, r->fit.bg, r->fit.gg};
    memcpy(b, &h, sizeof h);
    memcpy(b + sizeof h, r->bg, r->nbg * sizeof(struct vs_bgnbd_row));
    memcpy(b + sizeof h + r->nbg * sizeof(struct vs_bgnbd_row), r->gg,
           r->ngg * sizeof(struct vs_gg_row));
    *out = b;
    *len = n;
    return 0;
}

static struct refit *snapshot_decode(const unsigned char *b, size_t len)
{
    struct snapshot_header h;
    if (len < sizeof h) {
        return NULL;
    }
    memcpy(&h, b, sizeof h);
    if (h.magic != SNAPSHOT_MAGIC || h.nbg > len || h.ngg > len ||
        len != sizeof h + h.nbg * sizeof(struct vs_bgnbd_row) + h.ngg * sizeof(struct vs_gg_row)) {
        return NULL;
    }
    struct refit *r = calloc(1, sizeof *r);
    if (!r) {
        return NULL;
    }
    r->nbg = h.nbg;
    r->ngg = h.ngg;
    r->bg = malloc(h.nbg ? h.nbg * sizeof(struct vs_bgnbd_row) : 1);
    r->gg = malloc(h.ngg ? h.ngg * sizeof(struct vs_gg_row) : 1);
    if (!r->bg || !r->gg) {
        free(r->bg);
        free(r->gg);
        free(r);
        return NULL;
    }
    memcpy(r->bg, b + sizeof h, h.nbg * sizeof(struct vs_bgnbd_row));
    memcpy(r->gg, b + sizeof h + h.nbg * sizeof(struct vs_bgnbd_row),
           h.ngg * sizeof(struct vs_gg_row));
    r->fit.bg = h.bg;
    r->fit.gg = h.gg;
    r->persisted = 1;
    return r;
}

/* Advance the operator's clock; at a refit boundary apply the previous refit, start the next. */
static void tick(struct value *v, int64_t ts)
{
    if (ts > v->clock) {
        v->clock = ts;
        v->dirty = 1;
    }
    if (v->clock < v->next_refit_ts) {
        return;
    }
    refit_collect(v);
    if (v->has_result) {
        refit_apply(v);
    }
    refit_start(v);
    vs_value_refresh_cuts(&v->core);
    v->next_refit_ts = (v->clock / v->interval + 1) * v->interval;
    v->dirty = 1;
}

/* ==== Persistence ==== */

static int load(struct value *v, char *errbuf, size_t errlen)
{
    void *buf = NULL;
    size_t len = 0;
    int rc = vs_model_get(v->env, "model", &buf, &len);
    if (rc == VS_ENOTFOUND) {
        return 0;
    }
    if (rc) {
        snprintf(errbuf, errlen, "value: cannot read the stored model: %s", vs_strerror(rc));
        return rc;
    }
    struct blob *b = buf;
    if (len != sizeof *b || b->magic != BLOB_MAGIC) {
        free(buf);
        snprintf(errbuf, errlen, "value: the stored model is corrupt (%zu bytes)", len);
        return VS_ECORRUPT;
    }
    if (b->version != BLOB_VERSION) {
        uint32_t stored = b->version;
        free(buf);
        snprintf(errbuf, errlen, "value: the stored model has version %u, this build reads %u",
                 stored, BLOB_VERSION);
        return VS_EVERSION;
    }
    if (b->bin_days != v->core.bin_days) {
        int stored = b->bin_days;
        free(buf);
        snprintf(errbuf, errlen,
                 "value.population.bin.days: the state was built with %d, the config says %d",
                 stored, v->core.bin_days);
        return VS_ECONFIG;
    }
    struct vs_value_core *c = &v->core;
    c->model.fitted = b->fitted;
    c->model.bg = b->bg;
    c->model.gg = b->gg;
    memcpy(c->model.r_cuts, b->r_cuts, sizeof b->r_cuts);
    memcpy(c->model.f_cuts, b->f_cuts, sizeof b->f_cuts);
    memcpy(c->model.m_cuts, b->m_cuts, sizeof b->m_cuts);
    memcpy(c->model.tier_thresholds, b->tier_thresholds, sizeof b->tier_thresholds);
    c->recency = b->recency;
    c->frequency = b->frequency;
    c->monetary = b->monetary;
    c->clv = b->clv;
    c->first_gap = b->first_gap;
    c->updates = b->updates;
    v->clock = b->clock;
    v->next_refit_ts = b->next_refit_ts;
    v->has_result = b->has_result;
    v->result = b->result;
    int pending = b->refit_pending;
    free(buf);
    if (pending) {
        rc = vs_model_get(v->env, "refit", &buf, &len);
        struct refit *r = rc == 0 ? snapshot_decode(buf, len) : NULL;
        if (rc == 0) {
            free(buf);
        }
        if (!r) {
            snprintf(errbuf, errlen, "value: the stored refit snapshot is %s",
                     rc == 0 ? "malformed" : "missing");
            return rc ? rc : VS_ECORRUPT;
        }
        refit_submit(v, r);
        v->snapshot_stored = 1;
    }

    for (int p = 0; p < VS_POP_PAGES; p++) {
        char key[16];
        snprintf(key, sizeof key, "pop/%04d", p);
        rc = vs_model_get(v->env, key, &buf, &len);
        if (rc == VS_ENOTFOUND) {
            continue;
        }
        if (rc == 0) {
            rc = vs_population_page_decode(c->pop, p, buf, len);
            free(buf);
        }
        if (rc) {
            snprintf(errbuf, errlen, "value: cannot load population page %d: %s", p,
                     vs_strerror(rc));
            return rc;
        }
    }
    return 0;
}

/*
 * A refit still running at a commit is not waited for: its snapshot is stored once (the
 * population has moved on since, so it could not be taken again), and a restart from this
 * commit runs the same refit from it. A finished one is collected here and its snapshot
 * dropped.
 */
static int value_checkpoint(void *self, struct vs_checkpoint *cp)
{
    struct value *v = self;
    int rc = 0;
    if (v->job && vs_job_done(v->job)) {
        refit_collect(v);
    }
    if (!v->refit && v->snapshot_stored) {
        if ((rc = vs_checkpoint_delete(cp, "refit")) != 0) {
            return rc;
        }
        v->snapshot_stored = 0;
    } else if (v->refit && !v->refit->persisted) {
        void *buf;
        size_t len;
        if ((rc = snapshot_encode(v->refit, &buf, &len)) != 0) {
            return rc;
        }
        rc = vs_checkpoint_put(cp, "refit", buf, len);
        free(buf);
        if (rc) {
            return rc;
        }
        v->refit->persisted = 1;
        v->snapshot_stored = 1;
        v->dirty = 1;
    }
    for (int p = 0; p < VS_POP_PAGES && rc == 0; p++) {
        if (!vs_population_page_dirty(v->core.pop, p)) {
            continue;
        }
        char key[16];
        snprintf(key, sizeof key, "pop/%04d", p);
        void *buf;
        size_t len;
        rc = vs_population_page_encode(v->core.pop, p, &buf, &len);
        if (rc == 0) {
            rc = len ? vs_checkpoint_put(cp, key, buf, len) : vs_checkpoint_delete(cp, key);
            free(buf);
        }
        if (rc == 0) {
            vs_population_page_clean(v->core.pop, p);
        }
    }
    if (rc || !v->dirty) {
        return rc;
    }
    struct blob *b = calloc(1, sizeof *b);
    if (!b) {
        return VS_ENOMEM;
    }
    const struct vs_value_core *c = &v->core;
    b->magic = BLOB_MAGIC;
    b->version = BLOB_VERSION;
    b->bin_days = c->bin_days;
    b->fitted = c->model.fitted;
    b->clock = v->clock;
    b->next_refit_ts = v->next_refit_ts;
    b->updates = c->updates;
    b->has_result = v->has_result;
    b->refit_pending = v->refit != NULL;
    b->result = v->result;
    b->bg = c->model.bg;
    b->gg = c->model.gg;
    memcpy(b->r_cuts, c->model.r_cuts, sizeof b->r_cuts);
    memcpy(b->f_cuts, c->model.f_cuts, sizeof b->f_cuts);
    memcpy(b->m_cuts, c->model.m_cuts, sizeof b->m_cuts);
    memcpy(b->tier_thresholds, c->model.tier_thresholds, sizeof b->tier_thresholds);
    b->recency = c->recency;
    b->frequency = c->frequency;
    b->monetary = c->monetary;
    b->clv = c->clv;
    b->first_gap = c->first_gap;
    rc = vs_checkpoint_put(cp, "model", b, sizeof *b);
    free(b);
    if (rc == 0) {
        v->dirty = 0;
    }
    return rc;
}

/* ==== Callbacks ==== */

static int value_init(struct vs_env *env, void **self, char *errbuf, size_t errlen)
{
    const struct vs_config *cfg = vs_env_config(env);
    int64_t horizon = vs_config_int(cfg, "value.horizon.days");
    double rate = vs_config_double(cfg, "value.discount.rate");
    int64_t interval = vs_config_int(cfg, "value.refit.interval");
    int64_t bin = vs_config_int(cfg, "value.population.bin.days");
    int64_t every = vs_config_int(cfg, "value.rfm.refresh.every");
    if (horizon < 1 || horizon > 36500) {
        snprintf(errbuf, errlen, "value.horizon.days: expected 1..36500 days, got %" PRId64,
                 horizon);
        return VS_ECONFIG;
    }
    if (!(rate >= 0 && rate < 1)) {
        snprintf(errbuf, errlen, "value.discount.rate: expected a monthly rate in [0, 1), got %g",
                 rate);
        return VS_ECONFIG;
    }
    if (interval < 1000) {
        snprintf(errbuf, errlen, "value.refit.interval: expected at least 1000 ms, got %" PRId64,
                 interval);
        return VS_ECONFIG;
    }
    if (bin < 1 || bin > 365) {
        snprintf(errbuf, errlen, "value.population.bin.days: expected 1..365, got %" PRId64, bin);
        return VS_ECONFIG;
    }
    if (every < 1) {
        snprintf(errbuf, errlen, "value.rfm.refresh.every: expected at least 1, got %" PRId64,
                 every);
        return VS_ECONFIG;
    }
    struct vs_tiers tiers;
    int rc = vs_tiers_parse(vs_config_str(cfg, "value.tiers"), &tiers, errbuf, errlen);
    if (rc) {
        return rc;
    }
    struct value *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(errbuf, errlen, "value: out of memory");
        return VS_ENOMEM;
    }
    v->env = env;
    v->interval = interval;
    v->min_customers = vs_config_int(cfg, "value.min.customers");
    v->min_history_weeks = (double)vs_config_int(cfg, "value.min.history.days") / 7.0;
    rc = vs_value_core_init(&v->core, (double)horizon, rate, &tiers, (int)bin, every);
    if (rc) {
        free(v);
        snprintf(errbuf, errlen, "value: out of memory");
        return rc;
    }
    v->core.counters.unpriced = vs_env_counter(env, "value.purchases.unpriced");
    v->core.counters.before_first = vs_env_counter(env, "value.purchases.before_first");
    v->core.counters.out_of_order = vs_env_counter(env, "value.purchases.out_of_order");
    v->core.counters.refunds_clamped = vs_env_counter(env, "value.refunds.clamped");
    v->c_purchases = vs_env_counter(env, "value.purchases");
    v->c_refunds = vs_env_counter(env, "value.refunds");
    v->c_refits = vs_env_counter(env, "value.refits");
    v->c_noconv = vs_env_counter(env, "value.refits.noconv");
    v->c_skipped = vs_env_counter(env, "value.refits.skipped");
    v->g_r = vs_env_gauge(env, "value.bgnbd.r");
    v->g_alpha = vs_env_gauge(env, "value.bgnbd.alpha");
    v->g_a = vs_env_gauge(env, "value.bgnbd.a");
    v->g_b = vs_env_gauge(env, "value.bgnbd.b");
    v->g_p = vs_env_gauge(env, "value.gg.p");
    v->g_q = vs_env_gauge(env, "value.gg.q");
    v->g_gamma = vs_env_gauge(env, "value.gg.gamma");
    v->g_ms = vs_env_gauge(env, "value.refit.ms");
    v->g_cells = vs_env_gauge(env, "value.population.cells");
    v->g_customers = vs_env_gauge(env, "value.population.customers");
    rc = load(v, errbuf, errlen);
    if (rc) {
        vs_value_core_destroy(&v->core);
        free(v);
        return rc;
    }
    publish_gauges(v);
    published = v;
    *self = v;
    return 0;
}

static int value_on_event(void *self, struct vs_ctx *ctx, const struct vs_event *ev, void *section)
{
    struct value *v = self;
    tick(v, ev->ts);
    struct vs_value_section *s = section;
    switch (ev->type) {
    case VS_EVENT_PURCHASE:
        (*v->c_purchases)++;
        v->dirty = 1;
        return vs_value_purchase(&v->core, s, ev->ts, ev->has_amount, ev->amount, v->clock);
    case VS_EVENT_REFUND:
        (*v->c_refunds)++;
        v->dirty = 1;
        return vs_value_refund(&v->core, s, ev->has_amount, ev->amount, v->clock);
    default:
        return 0;
    }
}

static int value_describe(const void *section, char *buf, size_t buflen)
{
    const struct vs_value_section *s = section;
    return snprintf(buf, buflen,
                    "{\"purchases\":%u,\"refunds\":%u,\"x\":%u,\"first_day\":%d,\"last_day\":%d,"
                    "\"paid_repeats\":%u,\"unpriced\":%u,\"out_of_order\":%u,"
                    "\"total_spend\":%.2f,\"m_x\":%.4f,\"scored_ts\":%" PRId64 ","
                    "\"p_alive\":%.6f,\"expected_transactions\":%.6f,\"expected_spend\":%.4f,"
                    "\"clv\":%.4f,\"rfm\":[%u,%u,%u],\"segment\":\"%s\",\"tier\":%u}",
                    s->purchases, s->refunds, s->x, s->first_day, s->last_day, s->paid_repeats,
                    s->unpriced, s->out_of_order, s->total_spend, vs_value_m_x(s), s->scored_ts,
                    s->p_alive, s->expected_transactions, s->expected_spend, s->clv, s->rfm_r,
                    s->rfm_f, s->rfm_m, vs_value_segment_name(s->segment), s->tier);
}

static void value_report(void *self)
{
    publish_gauges(self);
}

static void value_destroy(void *self)
{
    struct value *v = self;
    if (!v) {
        return;
    }
    if (v->job) {
        vs_job_wait(v->job);
        free(v->refit->bg);
        free(v->refit->gg);
        free(v->refit);
    }
    if (published == v) {
        published = NULL;
    }
    vs_value_core_destroy(&v->core);
    free(v);
}

const struct vs_operator vs_value_operator = {
    .name = "value",
    .config = value_config,
    .state_version = VS_VALUE_STATE_VERSION,
    .state_size = sizeof(struct vs_value_section),
    .upgrade = NULL,
    .init = value_init,
    .on_event = value_on_event,
    .on_timer = NULL,
    .checkpoint = value_checkpoint,
    .describe = value_describe,
    .report = value_report,
    .destroy = value_destroy,
};
