/*
 * The churn operator's decisions: the tier x segment action table parsed from churn.actions,
 * and the solved moment of a customer's next churn check. See churn_rules.h.
 */
#include "churn_rules.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valuestream/error.h>

#define DAY_MS VS_CHURN_DAY_MS
#define WEEK_MS (7 * DAY_MS)

/* ==== The action table ==== */

static char *trim(char *s)
{
    while (*s == ' ') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == ' ') {
        s[--n] = '\0';
    }
    return s;
}

int vs_churn_actions_parse(const char *spec, const struct vs_tiers *tiers,
                           struct vs_churn_actions *out, char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct vs_tiers def;
    if (!tiers) {
        char ignored[64];
        vs_tiers_parse("0.01,0.1", &def, ignored, sizeof ignored);
        tiers = &def;
    }
    out->text = strdup(spec);
    if (!out->text) {
        snprintf(errbuf, errlen, "churn.actions: out of memory");
        return VS_ENOMEM;
    }
    char *save = NULL;
    for (char *e = strtok_r(out->text, ";", &save); e; e = strtok_r(NULL, ";", &save)) {
        char *colon = strchr(e, ':'), *eq = colon ? strchr(colon, '=') : NULL;
        if (!colon || !eq) {
            snprintf(errbuf, errlen, "churn.actions: entry '%s': expected TIER:SEGMENT=ACTION", e);
            goto fail;
        }
        *colon = *eq = '\0';
        char *tier = trim(e), *seg = trim(colon + 1), *action = trim(eq + 1);
        int t = -1, g = -1;
        if (strcmp(tier, "*") != 0) {
            for (int i = 0; i <= tiers->n; i++) {
                if (strcmp(tier, tiers->name[i]) == 0) {
                    t = i;
                }
            }
            if (t < 0) {
                snprintf(errbuf, errlen,
                         "churn.actions: unknown tier '%s' (value.tiers gives "
                         "names like top1, top10, rest)",
                         tier);
                goto fail;
            }
        }
        if (strcmp(seg, "*") != 0 && (g = vs_rfm_segment_index(seg)) < 0) {
            snprintf(errbuf, errlen, "churn.actions: unknown segment '%s'", seg);
            goto fail;
        }
        if (*action == '\0') {
            snprintf(errbuf, errlen, "churn.actions: empty action for %s:%s", tier, seg);
            goto fail;
        }
        for (int i = 0; i <= tiers->n; i++) {
            for (int k = 0; k < VS_SEG_COUNT; k++) {
                if ((t < 0 || t == i) && (g < 0 || g == k) && !out->action[i][k]) {
                    out->action[i][k] = action;
                }
            }
        }
    }
    for (int i = 0; i <= VS_TIERS_MAX; i++) {
        for (int k = 0; k < VS_SEG_COUNT; k++) {
            if (!out->action[i][k]) {
                out->action[i][k] = "none";
            }
        }
    }
    return 0;
fail:
    vs_churn_actions_free(out);
    return VS_ECONFIG;
}

void vs_churn_actions_free(struct vs_churn_actions *a)
{
    free(a->text);
    a->text = NULL;
}

/* ==== When to check ==== */

int64_t vs_churn_check_time(const struct vs_value_model *m, const struct vs_value_section *s,
                            double threshold, double one_time_gap_days, int64_t not_before)
{
    double t;
    int64_t first = (int64_t)s->first_day * DAY_MS;
    if (s->x > 0) {
        double T =
            vs_bgnbd_age_at_p_alive(&m->bg, s->x, (s->last_day - s->first_day) / 7.0, threshold);
        if (!isfinite(T)) {
            return INT64_MAX;
        }
        t = (double)first + T * WEEK_MS;
    } else {
        if (!(one_time_gap_days > 0)) {
            return INT64_MAX;
        }
        t = (double)first + one_time_gap_days * DAY_MS;
    }
    if (!(t < 9e18)) {
        return INT64_MAX;
    }
    int64_t ts = (int64_t)ceil(t);
    return ts > not_before ? ts : not_before;
}

int64_t vs_churn_timer_time(const struct vs_value_model *m, const struct vs_value_section *s,
                            double threshold, double one_time_gap_days, int64_t not_before,
                            int64_t provisional_ms)
{
    int64_t at = vs_churn_check_time(m, s, threshold, one_time_gap_days, not_before);
    if (at == INT64_MAX || m->fitted || provisional_ms <= 0 ||
        not_before > INT64_MAX - provisional_ms) {
        return at;
    }
    /* The priors belong to another shop: by the provisional check a refit may have replaced
     * them, and the moment is solved again rather than missed or late. */
    int64_t soon = not_before + provisional_ms;
    return at < soon ? at : soon;
}
