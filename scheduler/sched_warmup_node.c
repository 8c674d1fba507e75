/*
 * sched_warmup_node - warm-up ramps in the scheduler process: [warmup."SOURCE"] on the node's paths
 *
 * One key per (warming source, provider) (per = "site": per site; a path with no provider counts as
 * its site), made when the first path of that pair is resolved. The key's current step (sched_warmup.h)
 * becomes two named rates of the same value on every path of the pair, named "warmup:SOURCE:KEY":
 * a source-selection rate, so that once the allowance is used up the pool skips this source for the
 * provider and the other sources of the pool take the mail (a message finds no warming ready queue to
 * wait in), and a message throttle, so that the receiver never sees more than the allowance even from
 * messages picked before a step was lowered or held. When the warming source is the only one of the
 * pool for that provider, its mail waits in the scheduled queues (sched_path.c), never bounced.
 * Each attempt's result on the pair's paths counts for the step (deferred: a transient result), and
 * each automation firing on a response from the source (sched_tsa_node.c) too; the tick judges step
 * boundaries and, when a step changes, resolves the pair's paths again so the new rate applies at once.
 * A held step is kept through the spool with the TSA firings (sched_tsa_node_store: the "tsa" family and
 * its TSA log record): a record of scope "warmup", action SetConfig of the option "warmup_step" to the
 * held step (1-based) for (source, key) in the source and site strings, the reason as the response, from
 * the boundary the hold began at until the boundary that judges the step again (a hold judged again is
 * stored again; one that advances needs nothing: its record has expired). The spool's start-up walk
 * sends the unexpired ones back; sched_warmup_restore() checks each against the configuration and puts
 * the key back on its held step. The counts of the step in progress are not kept (they start again).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/log.h"
#include "common/proto_tsa.h"
#include "base/mem.h"
#include "cfg/cfg_value.h"
#include "scheduler/sched_shaping.h"
#include "scheduler/sched_warmup.h"
#include "scheduler/scheduler.h"

#define WARMUP_SCOPE "warmup"
#define WARMUP_OPTION "warmup_step"

struct wkey {
    char *source, *key;
    char *name; /* of the named rates: "warmup:SOURCE:KEY" */
    struct sched_warmup_key st;
};

struct sched_warmup_node {
    struct wkey *v;
    size_t n, cap;
};

void sched_warmup_node_init(struct scheduler *sc)
{
    sc->warmup = xcalloc(1, sizeof(*sc->warmup));
}

static void wkey_free(struct wkey *k)
{
    free(k->source);
    free(k->key);
    free(k->name);
}

void sched_warmup_node_fini(struct scheduler *sc)
{
    if (!sc->warmup)
        return;
    for (size_t i = 0; i < sc->warmup->n; i++)
        wkey_free(&sc->warmup->v[i]);
    free(sc->warmup->v);
    free(sc->warmup);
    sc->warmup = NULL;
}

/* key_of - what the allowance of a warming source's path is counted per */
static const char *key_of(const struct cfg_warmup *w, const char *site, const char *provider)
{
    return w->per_site || !provider || !provider[0] ? site : provider;
}

static struct wkey *find(struct sched_warmup_node *wn, const char *source, const char *key)
{
    for (size_t i = 0; i < wn->n; i++)
        if (strcmp(wn->v[i].source, source) == 0 && strcmp(wn->v[i].key, key) == 0)
            return &wn->v[i];
    return NULL;
}

static struct wkey *get(struct scheduler *sc, const struct cfg_warmup *w, const char *source, const char *key)
{
    struct sched_warmup_node *wn = sc->warmup;
    struct wkey *k = find(wn, source, key);
    if (k)
        return k;
    if (wn->n == wn->cap) {
        wn->cap = wn->cap ? wn->cap * 2 : 8;
        wn->v = xrealloc(wn->v, wn->cap * sizeof(*wn->v));
    }
    k = &wn->v[wn->n++];
    k->source = xstrdup(source);
    k->key = xstrdup(key);
    k->name = xasprintf("warmup:%s:%s", source, key);
    sched_warmup_key_init(w, &k->st, scheduler_now_ms());
    log_info("warm-up: %s to %s starts on step %u of %u", source, key, k->st.step + 1, w->n_steps);
    return k;
}

/* key_of_path - the key a live path of a warming source counts for; NULL when its source is not warming */
static struct wkey *key_of_path(struct scheduler *sc, const char *source, const char *site,
                                const struct cfg_warmup **wp)
{
    const struct cfg_warmup *w = cfg_warmup_find(&sc->rt->cfg, source);
    if (!w || !sc->warmup)
        return NULL;
    *wp = w;
    return get(sc, w, source, key_of(w, site, sched_shaping_provider_of(sc, source, site)));
}

/* put - one named rate into a path's table of them; a full table gives up its last entry (the warm-up wins)
 */
static void put(struct sched_named_rate *v, uint32_t *n, const char *name, const struct sched_rate *r,
                const char *what)
{
    if (*n == SCHED_PATH_NAMED_MAX) {
        log_warn("warm-up %s: the path names %u %s already; %s replaces the last", name, SCHED_PATH_NAMED_MAX,
                 what, name);
        *n = SCHED_PATH_NAMED_MAX - 1;
    }
    v[(*n)++] = (struct sched_named_rate){name, *r};
}

void sched_warmup_path(struct scheduler *sc, const char *source, const char *site, const char *provider,
                       struct sched_path_options *opt)
{
    const struct cfg_warmup *w = cfg_warmup_find(&sc->rt->cfg, source);
    if (!w || !site || !sc->warmup)
        return;
    struct wkey *k = get(sc, w, source, key_of(w, site, provider));
    const struct cfg_warmup_rate *a = sched_warmup_allowance(w, &k->st);
    if (!a)
        return; /* done: the source is established */
    struct sched_rate r = {.limit = a->limit, .period_ms = a->period_ms, .max_burst = 0};
    put(opt->source_rates, &opt->n_source_rates, k->name, &r, "source-selection rates");
    put(opt->throttles, &opt->n_throttles, k->name, &r, "message throttles");
}

void sched_warmup_result(struct scheduler *sc, const struct sched_path *p, bool deferred)
{
    const struct cfg_warmup *w;
    if (!sc->rt->cfg.n_warmups)
        return;
    struct wkey *k = key_of_path(sc, sched_path_source_name(sc->core, p), p->site->n.name, &w);
    if (k)
        sched_warmup_key_result(&k->st, deferred);
}

void sched_warmup_tsa(struct scheduler *sc, const char *source, const char *site, const char *text)
{
    const struct cfg_warmup *w;
    if (!sc->rt->cfg.n_warmups || !source || !source[0] || !site || !site[0])
        return;
    struct wkey *k = key_of_path(sc, source, site, &w);
    if (k)
        sched_warmup_key_tsa(&k->st, text);
}

/* reconfigure - the key's paths resolved again: the new step's rates (or none, when done) apply at once */
static void reconfigure(struct scheduler *sc, const struct cfg_warmup *w, const struct wkey *k)
{
    struct sched_core *core = sc->core;
    for (uint32_t i = 0; i < core->npaths; i++) {
        const struct sched_path *p = core->paths[i];
        const char *source = sched_path_source_name(core, p), *site = p->site->n.name;
        if (strcmp(source, k->source) == 0 &&
            strcmp(key_of(w, site, sched_shaping_provider_of(sc, source, site)), k->key) == 0)
            sched_shaping_reconfigure(sc, source, site);
    }
}

/* store_hold - the key's held step to the spool, in force until the boundary that judges it again */
static void store_hold(struct scheduler *sc, const struct cfg_warmup *w, const struct wkey *k)
{
    struct proto_tsa_event ev;
    char step[16];
    memset(&ev, 0, sizeof(ev));
    snprintf(step, sizeof(step), "%u", k->st.step + 1);
    for (int i = 0; i < PROTO_TSA_E_STRINGS; i++)
        proto_tsa_event_set(&ev, (enum proto_tsa_event_str)i, "");
    ev.hdr.start_ms = (int64_t)k->st.held_since_ms;
    ev.hdr.expiry_ms = (int64_t)sched_warmup_next_ms(w, &k->st);
    ev.hdr.action = SHAPING_ACTION_SET_CONFIG;
    ev.hdr.count = 1;
    proto_tsa_event_set(&ev, PROTO_TSA_E_SCOPE, WARMUP_SCOPE);
    proto_tsa_event_set(&ev, PROTO_TSA_E_SOURCE, k->source);
    proto_tsa_event_set(&ev, PROTO_TSA_E_SITE, k->key);
    proto_tsa_event_set(&ev, PROTO_TSA_E_RESPONSE, k->st.held_why);
    proto_tsa_event_set(&ev, PROTO_TSA_E_NAME, WARMUP_OPTION);
    proto_tsa_event_set(&ev, PROTO_TSA_E_VALUE, step);
    sched_tsa_node_store(sc, &ev);
}

bool sched_warmup_restore(struct scheduler *sc, const struct proto_tsa_event *ev)
{
    const char *const *s = ev->str;
    if (strcmp(s[PROTO_TSA_E_SCOPE], WARMUP_SCOPE) != 0)
        return false;
    const char *source = s[PROTO_TSA_E_SOURCE], *key = s[PROTO_TSA_E_SITE];
    const struct cfg_warmup *w = cfg_warmup_find(&sc->rt->cfg, source);
    uint64_t now = scheduler_now_ms(), step = 0, until = (uint64_t)ev->hdr.expiry_ms;
    const char *why = NULL;
    /* the spool is trusted no more than any role: every field is checked against this configuration */
    if (strcmp(s[PROTO_TSA_E_NAME], WARMUP_OPTION) != 0 ||
        !cfg_value_parse_uint(s[PROTO_TSA_E_VALUE], 1000000, &step) || step == 0 || !key[0])
        why = "not a warm-up hold";
    else if (!w || !sc->warmup)
        why = "the source is not warming up any more";
    else if (until <= now)
        return true; /* judged again since: nothing to restore */
    else if (until < w->start_ms + w->step_ms || (until - w->start_ms) % w->step_ms != 0 ||
             step > w->n_steps || (until - w->start_ms) / w->step_ms < step)
        why = "the ramp changed since"; /* the record's boundary is not one of this ramp's, after the held
                                           step */
    if (why) {
        log_info("warm-up: stored hold of %s to %s not restored: %s", source, key, why);
        return true;
    }
    struct wkey *k = get(sc, w, source, key);
    if (k->st.held || k->st.step < step - 1)
        return true; /* this scheduler knows better (the spool restarted, not the scheduler) */
    k->st.step = (uint32_t)(step - 1);
    k->st.step_start_ms = until - w->step_ms;
    k->st.held = true;
    k->st.held_since_ms = (uint64_t)ev->hdr.start_ms;
    snprintf(k->st.held_why, sizeof(k->st.held_why), "%s", s[PROTO_TSA_E_RESPONSE]);
    k->st.attempts = k->st.deferrals = k->st.tsa_firings = 0;
    log_info("warm-up: %s to %s held on step %u again (stored): %s", source, key, k->st.step + 1,
             k->st.held_why);
    reconfigure(sc, w, k);
    return true;
}

void sched_warmup_node_tick(struct scheduler *sc)
{
    struct sched_warmup_node *wn = sc->warmup;
    uint64_t now = scheduler_now_ms();
    for (size_t i = 0; wn && i < wn->n; i++) {
        struct wkey *k = &wn->v[i];
        const struct cfg_warmup *w = cfg_warmup_find(&sc->rt->cfg, k->source);
        if (!w)
            continue;
        bool was_held = k->st.held;
        uint64_t step_start = k->st.step_start_ms;
        bool changed = sched_warmup_key_advance(w, &k->st, now);
        if (k->st.held && k->st.step_start_ms != step_start)
            store_hold(sc, w, k); /* held at this boundary: kept until the next one judges it */
        if (changed) {
            if (k->st.step >= w->n_steps)
                log_info("warm-up: %s to %s done: the source is established", k->source, k->key);
            else
                log_info("warm-up: %s to %s on step %u of %u", k->source, k->key, k->st.step + 1, w->n_steps);
            reconfigure(sc, w, k);
        } else if (k->st.held && !was_held) {
            log_warn("warm-up: %s to %s held on step %u: %s", k->source, k->key, k->st.step + 1,
                     k->st.held_why);
        }
    }
}

void sched_warmup_node_reload(struct scheduler *sc)
{
    struct sched_warmup_node *wn = sc->warmup;
    uint64_t now = scheduler_now_ms();
    size_t j = 0;
    for (size_t i = 0; wn && i < wn->n; i++) {
        struct wkey k = wn->v[i];
        const struct cfg_warmup *w = cfg_warmup_find(&sc->rt->cfg, k.source);
        if (!w) {
            log_info("warm-up: %s to %s removed from the configuration: no allowance any more", k.source,
                     k.key);
            wkey_free(&k);
            continue;
        }
        /* a ramp whose schedule changed starts again from its nominal step; a held one keeps its step */
        if (k.st.step_start_ms < w->start_ms || (k.st.step_start_ms - w->start_ms) % w->step_ms != 0)
            sched_warmup_key_init(w, &k.st, now);
        if (k.st.step > w->n_steps)
            k.st.step = w->n_steps;
        wn->v[j++] = k;
    }
    if (wn)
        wn->n = j;
    /* the paths are resolved again by the shaping reload that follows (scheduler_main.c) */
}

/* rate_text - "5/min": the rate in the largest whole period unit */
static void rate_text(const struct cfg_warmup_rate *r, char *buf, size_t len)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"min", 60000}, {"s", 1000}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (r->period_ms == units[i].ms) {
            snprintf(buf, len, "%llu/%s", (unsigned long long)r->limit, units[i].name);
            return;
        }
    snprintf(buf, len, "%llu/%llums", (unsigned long long)r->limit, (unsigned long long)r->period_ms);
}

static json_t *key_doc(const struct cfg_warmup *w, const struct wkey *k, uint64_t now)
{
    const struct cfg_warmup_rate *a = sched_warmup_allowance(w, &k->st);
    char rt[64] = "";
    if (a)
        rate_text(a, rt, sizeof(rt));
    double rate = k->st.attempts ? (double)k->st.deferrals / (double)k->st.attempts : 0.0;
    return json_pack(
        "{s:s, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:f, s:I, s:s, s:s, s:I, s:I, s:I}", "key", k->key, "step",
        (json_int_t)(k->st.step < w->n_steps ? k->st.step + 1 : w->n_steps), "steps", (json_int_t)w->n_steps,
        "allowance", rt, "allowance_per_hour", (json_int_t)(a ? sched_warmup_per_hour(a) : 0),
        "allowance_per_step", (json_int_t)(a ? sched_warmup_per_step(w, a) : 0), "used",
        (json_int_t)k->st.attempts, "deferrals", (json_int_t)k->st.deferrals, "deferral_rate", rate,
        "tsa_firings", (json_int_t)k->st.tsa_firings, "state",
        sched_warmup_state_name(sched_warmup_state_of(w, &k->st, now)), "held_reason", k->st.held_why,
        "held_since_ms", (json_int_t)k->st.held_since_ms, "step_started_ms", (json_int_t)k->st.step_start_ms,
        "next_step_ms", (json_int_t)sched_warmup_next_ms(w, &k->st));
}

json_t *sched_warmup_status(struct scheduler *sc)
{
    const struct cfg *c = &sc->rt->cfg;
    uint64_t now = scheduler_now_ms();
    json_t *sources = json_array();
    for (size_t i = 0; i < c->n_warmups; i++) {
        const struct cfg_warmup *w = &c->warmups[i];
        json_t *keys = json_array();
        for (size_t j = 0; sc->warmup && j < sc->warmup->n; j++)
            if (strcmp(sc->warmup->v[j].source, w->source) == 0)
                json_array_append_new(keys, key_doc(w, &sc->warmup->v[j], now));
        json_array_append_new(sources, json_pack("{s:s, s:I, s:I, s:I, s:f, s:s, s:o}", "source", w->source,
                                                 "start_ms", (json_int_t)w->start_ms, "step_duration_ms",
                                                 (json_int_t)w->step_ms, "steps", (json_int_t)w->n_steps,
                                                 "max_deferral_rate", w->max_deferral_rate, "per",
                                                 w->per_site ? "site" : "provider", "keys", keys));
    }
    return json_pack("{s:I, s:o}", "now_ms", (json_int_t)now, "sources", sources);
}
