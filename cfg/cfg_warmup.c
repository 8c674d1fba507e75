/*
 * cfg_warmup - [warmup."SOURCE"]: the warm-up ramp of an egress source (docs/configuration.md)
 *
 * Each table names an [[egress_source]] and holds `start` (a date or an RFC 3339 time, UTC), either
 * `steps = ["50/h", "100/h", ...]` or `initial`, `factor` and `cap` (a geometric ramp, expanded here
 * into its steps: initial * factor^k, each at least one more than the one before, the last one the
 * cap), `step_duration` (default "1d"), `max_deferral_rate` (default 0.05) and `per` ("provider", the
 * default, or "site"). Every problem is reported as FILE:LINE, all of them before the load fails.
 * The scheduler runs the ramp (scheduler/sched_warmup*.c); this file only reads and checks it.
 */
#include "cfg/cfg_warmup.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "cfg/cfg_dlv.h"
#include "cfg/cfg_value.h"

#define STEP_DEFAULT_MS (UINT64_C(86400000))
#define DEFERRAL_DEFAULT 0.05
#define FACTOR_MAX 1000.0

static void warmup_free(struct cfg_warmup *w)
{
    free(w->source);
    free(w->steps);
}

void cfg_warmup_fini(struct cfg *c)
{
    for (size_t i = 0; c->warmups && i < c->n_warmups; i++)
        warmup_free(&c->warmups[i]);
    free(c->warmups);
    c->warmups = NULL;
    c->n_warmups = 0;
}

void cfg_warmup_copy(struct cfg *dst, const struct cfg *src)
{
    dst->warmups = src->n_warmups ? xcalloc(src->n_warmups, sizeof(*dst->warmups)) : NULL;
    for (size_t i = 0; i < src->n_warmups; i++) {
        dst->warmups[i] = src->warmups[i];
        dst->warmups[i].source = xstrdup(src->warmups[i].source);
        dst->warmups[i].steps = xmalloc(src->warmups[i].n_steps * sizeof(*dst->warmups[i].steps));
        memcpy(dst->warmups[i].steps, src->warmups[i].steps,
               src->warmups[i].n_steps * sizeof(*dst->warmups[i].steps));
    }
}

const struct cfg_warmup *cfg_warmup_find(const struct cfg *c, const char *source)
{
    for (size_t i = 0; source && i < c->n_warmups; i++)
        if (strcmp(c->warmups[i].source, source) == 0)
            return &c->warmups[i];
    return NULL;
}

/* digits - exactly n decimal digits at s */
static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool cfg_warmup_parse_time(const char *s, uint64_t *out_ms)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0;
    if (!s || strlen(s) < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d))
        return false;
    const char *p = s + 10;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if (strlen(p) < 9 || !digits(p + 1, 2, &h) || p[3] != ':' || !digits(p + 4, 2, &mi) || p[6] != ':' ||
            !digits(p + 7, 2, &sec))
            return false;
        p += 9;
        if (*p == '.') {
            p++;
            if (!isdigit((unsigned char)*p))
                return false;
            while (isdigit((unsigned char)*p))
                p++;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            sign = *p == '+' ? 1 : -1;
            if (strlen(p) != 6 || !digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) ||
                oh > 23 || om > 59)
                return false;
            p += 6;
        }
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60 || y < 1970)
        return false;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
        return false;
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    long long t = (long long)timegm(&tm) - (long long)sign * (oh * 3600 + om * 60);
    if (t < 0)
        return false;
    *out_ms = (uint64_t)t * 1000u;
    return true;
}

/* rate_of - a step's rate; false (reported) when it is not LIMIT/PERIOD */
static bool rate_of(struct cfg_errs *e, const struct cfg_toml_node *v, const char *key,
                    struct cfg_warmup_rate *r)
{
    char q[96];
    const char *why = "a rate is a string like \"50/h\"";
    uint64_t burst = 0;
    if (v->type == CFG_TOML_STRING && cfg_value_parse_rate(v->str, &r->limit, &r->period_ms, &burst, &why)) {
        if (burst == 0)
            return true;
        why = "a warm-up step takes no max_burst";
    }
    cfg_errf(e, v->line, "%s: %s is not a rate: %s", key,
             v->type == CFG_TOML_STRING ? cfg_quote(q, sizeof(q), v->str) : cfg_toml_type_name(v->type), why);
    return false;
}

/* geometric - initial * factor^k in initial's period, strictly rising, up to and including the cap */
static bool geometric(struct cfg_errs *e, unsigned line, const char *key, const struct cfg_warmup_rate *init,
                      double factor, const struct cfg_warmup_rate *cap, struct cfg_warmup *w)
{
    double cap_limit = (double)cap->limit * (double)init->period_ms / (double)cap->period_ms;
    if (cap_limit < (double)init->limit) {
        cfg_errf(e, line, "%s: cap is below initial", key);
        return false;
    }
    w->steps = xmalloc(CFG_WARMUP_STEPS_MAX * sizeof(*w->steps));
    w->n_steps = 0;
    double x = (double)init->limit;
    uint64_t prev = 0;
    while (w->n_steps < CFG_WARMUP_STEPS_MAX) {
        if (x >= cap_limit) {
            /* the cap itself, in its own period (no rounding of the operator's number) */
            w->steps[w->n_steps++] = *cap;
            return true;
        }
        uint64_t l = (uint64_t)llround(x);
        if (l <= prev)
            l = prev + 1;
        if ((double)l >= cap_limit) {
            x = cap_limit;
            continue;
        }
        w->steps[w->n_steps++] = (struct cfg_warmup_rate){l, init->period_ms};
        prev = l;
        x = (double)l * factor;
    }
    cfg_errf(e, line, "%s: the ramp from initial to cap takes more than %d steps", key, CFG_WARMUP_STEPS_MAX);
    return false;
}

/* one - a [warmup."SOURCE"] table; false when it has an error (reported) */
static bool one(struct cfg_errs *e, const struct cfg *c, const struct cfg_toml_node *t, struct cfg_warmup *w)
{
    char q[96], key[128], k2[200];
    const struct cfg_toml_node *steps = NULL, *initial = NULL, *factor = NULL, *cap = NULL;
    bool ok = true, have_start = false;

    *w = (struct cfg_warmup){.step_ms = STEP_DEFAULT_MS, .max_deferral_rate = DEFERRAL_DEFAULT};
    snprintf(key, sizeof(key), "warmup.%s", cfg_quote(q, sizeof(q), t->key));
    if (!cfg_expect(e, t, CFG_TOML_TABLE, key, "a table ([warmup.\"SOURCE\"])"))
        return false;
    w->source = xstrdup(t->key);
    if (cfg_dlv_source_find(c, t->key) < 0) {
        cfg_errf(e, t->line, "%s: no [[egress_source]] is named %s", key, cfg_quote(q, sizeof(q), t->key));
        ok = false;
    }
    for (size_t j = 0; j < t->n_children; j++) {
        const struct cfg_toml_node *v = t->children[j];
        snprintf(k2, sizeof(k2), "%s.%s", key, v->key);
        if (strcmp(v->key, "start") == 0) {
            if ((v->type != CFG_TOML_STRING && v->type != CFG_TOML_DATETIME) ||
                !cfg_warmup_parse_time(v->str, &w->start_ms)) {
                cfg_errf(e, v->line, "%s: a date \"2026-12-01\" or an RFC 3339 time \"2026-12-01T08:00:00Z\"",
                         k2);
                ok = false;
            }
            have_start = true;
        } else if (strcmp(v->key, "step_duration") == 0) {
            if (v->type != CFG_TOML_STRING || !cfg_value_parse_duration(v->str, &w->step_ms) ||
                w->step_ms < 1000 || w->step_ms > UINT64_C(365) * 86400000) {
                cfg_errf(e, v->line, "%s: a duration from \"1s\" to \"365d\", like \"1d\" or \"12h\"", k2);
                ok = false;
            }
        } else if (strcmp(v->key, "max_deferral_rate") == 0) {
            double f = v->type == CFG_TOML_FLOAT ? v->f : v->type == CFG_TOML_INT ? (double)v->i : -1.0;
            if (!(f >= 0.0 && f <= 1.0)) {
                cfg_errf(e, v->line, "%s: a fraction from 0 to 1, like 0.05", k2);
                ok = false;
            } else {
                w->max_deferral_rate = f;
            }
        } else if (strcmp(v->key, "per") == 0) {
            if (v->type == CFG_TOML_STRING && strcmp(v->str, "provider") == 0) {
                w->per_site = false;
            } else if (v->type == CFG_TOML_STRING && strcmp(v->str, "site") == 0) {
                w->per_site = true;
            } else {
                cfg_errf(e, v->line, "%s: \"provider\" or \"site\"", k2);
                ok = false;
            }
        } else if (strcmp(v->key, "steps") == 0) {
            steps = v;
        } else if (strcmp(v->key, "initial") == 0) {
            initial = v;
        } else if (strcmp(v->key, "factor") == 0) {
            factor = v;
        } else if (strcmp(v->key, "cap") == 0) {
            cap = v;
        } else {
            cfg_errf(e, v->line, "%s: unknown key %s", key, cfg_quote(q, sizeof(q), v->key));
            ok = false;
        }
    }
    if (!have_start) {
        cfg_errf(e, t->line, "%s: start is required (the day the warm-up starts, \"2026-12-01\")", key);
        ok = false;
    }
    if (steps && (initial || factor || cap)) {
        cfg_errf(e, t->line, "%s: either steps or initial/factor/cap, not both", key);
        return false;
    }
    if (steps) {
        if (steps->type != CFG_TOML_ARRAY || steps->n_children == 0 ||
            steps->n_children > CFG_WARMUP_STEPS_MAX) {
            cfg_errf(e, steps->line, "%s.steps: an array of 1 to %d rates, like [\"50/h\", \"100/h\"]", key,
                     CFG_WARMUP_STEPS_MAX);
            return false;
        }
        w->steps = xcalloc(steps->n_children, sizeof(*w->steps));
        w->n_steps = (uint32_t)steps->n_children;
        snprintf(k2, sizeof(k2), "%s.steps", key);
        for (size_t i = 0; i < steps->n_children; i++)
            ok = rate_of(e, steps->children[i], k2, &w->steps[i]) && ok;
        return ok;
    }
    if (!initial || !factor || !cap) {
        cfg_errf(e, t->line,
                 "%s: needs steps = [\"50/h\", ...], or initial, factor and cap (a geometric ramp)", key);
        return false;
    }
    struct cfg_warmup_rate ri, rc;
    snprintf(k2, sizeof(k2), "%s.initial", key);
    bool rates = rate_of(e, initial, k2, &ri);
    snprintf(k2, sizeof(k2), "%s.cap", key);
    rates = rate_of(e, cap, k2, &rc) && rates;
    double f = factor->type == CFG_TOML_FLOAT ? factor->f
               : factor->type == CFG_TOML_INT ? (double)factor->i
                                              : 0.0;
    if (!(f > 1.0 && f <= FACTOR_MAX)) {
        cfg_errf(e, factor->line, "%s.factor: a number above 1 and at most %g, like 2.0", key, FACTOR_MAX);
        return false;
    }
    return rates && geometric(e, t->line, key, &ri, f, &rc, w) && ok;
}

void cfg_warmup_apply(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *t)
{
    if (!cfg_expect(e, t, CFG_TOML_TABLE, "warmup", "a table of sources ([warmup.\"SOURCE\"])"))
        return;
    cfg_warmup_fini(c);
    if (t->n_children == 0)
        return;
    c->warmups = xcalloc(t->n_children, sizeof(*c->warmups));
    for (size_t i = 0; i < t->n_children; i++) {
        struct cfg_warmup w;
        if (one(e, c, t->children[i], &w))
            c->warmups[c->n_warmups++] = w;
        else
            warmup_free(&w);
    }
}
