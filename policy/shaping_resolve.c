/*
 * shaping_resolve - the effective options of one path (source, site) for a domain, in KumoMTA's
 * precedence (policy/shaping.h), and the automation rules in scope for it
 *
 * Providers match on the MX host names taken from the site name ("a.mx.test,b.mx.test", or the
 * hosts of a "route:" site without their ports): every host must match one MXSuffix or HostName
 * of the provider; DomainSuffix matches the domain itself. A matching provider adds provider_name
 * and its named limit/rate ("shaping-provider-NAME-SOURCE-limit" / "-rate") to the options; a
 * provider source's provider_source_selection_rate becomes "shaping-provider-NAME-SOURCE-selection-rate".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "policy/shaping_int.h"

static bool suffix_matches(const char *candidate, size_t n, const char *suffix)
{
    size_t m = strlen(suffix);
    if (n > 0 && candidate[n - 1] == '.')
        n--;
    return n >= m && memcmp(candidate + n - m, suffix, m) == 0;
}

static bool host_matches(const struct shaping_block *b, const char *host, size_t n)
{
    for (size_t i = 0; i < b->n_matches; i++) {
        const struct shaping_match *m = &b->matches[i];
        if (m->kind == SHAPING_MATCH_MX_SUFFIX && suffix_matches(host, n, m->value))
            return true;
        if (m->kind == SHAPING_MATCH_HOST_NAME && strlen(m->value) == n && memcmp(m->value, host, n) == 0)
            return true;
    }
    return false;
}

bool shaping_provider_applies(const struct shaping_block *b, const char *domain, const char *site)
{
    bool need_mx = false;
    for (size_t i = 0; i < b->n_matches; i++) {
        if (b->matches[i].kind == SHAPING_MATCH_DOMAIN_SUFFIX) {
            if (domain && suffix_matches(domain, strlen(domain), b->matches[i].value))
                return true;
        } else {
            need_mx = true;
        }
    }
    if (!need_mx || !site || !site[0])
        return false;
    const char *p = site;
    bool route = strncmp(p, "route:", 6) == 0;
    if (route)
        p += 6;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        size_t host_n = n;
        if (route) {
            /* "host:port" or "[v6]:port": the host without the port */
            const char *colon = memrchr(p, ':', n);
            if (colon && (p[0] != '[' || colon[-1] == ']'))
                host_n = (size_t)(colon - p);
        }
        if (host_n == 0 || !host_matches(b, p, host_n))
            return false;
        if (!end)
            return true;
        p = end + 1;
    }
}

/* provider_name and the provider's named limits, as KumoMTA implies them for that source */
static void provider_implied(const struct shaping_block *b, const char *source, struct shaping_pmap *out)
{
    const char *src = source ? source : "";
    char *origin = xasprintf("%s:%u %s", b->file, b->line, b->label);
    json_t *name = json_string(b->name);
    shaping_pmap_set(out, "provider_name", name, origin);
    json_decref(name);
    free(origin);
    static const struct {
        const char *option, *suffix;
    } named[] = {
        {"additional_connection_limits", "limit"},
        {"additional_message_rate_throttles", "rate"},
        {"additional_source_selection_rates", "selection-rate"},
    };
    json_t *values[3] = {b->prov_limit, b->prov_rate, json_object_get(out->v, "provider_source_selection_rate")};
    const char *origins[3] = {b->prov_limit_origin, b->prov_rate_origin,
                              json_string_value(json_object_get(out->origin, "provider_source_selection_rate"))};
    for (int i = 0; i < 3; i++) {
        if (!values[i])
            continue;
        json_t *map = json_object();
        char *key = xasprintf("shaping-provider-%s-%s-%s", b->name, src, named[i].suffix);
        json_object_set(map, key, values[i]);
        shaping_pmap_set(out, named[i].option, map, origins[i] ? origins[i] : "");
        free(key);
        json_decref(map);
    }
    json_object_del(out->v, "provider_source_selection_rate");
    json_object_del(out->origin, "provider_source_selection_rate");
}

static const struct shaping_source *source_find(const struct shaping_block *b, const char *source)
{
    if (!source || !source[0])
        return NULL;
    for (size_t i = 0; i < b->n_sources; i++)
        if (strcmp(b->sources[i].name, source) == 0)
            return &b->sources[i];
    return NULL;
}

json_t *shaping_resolve(const struct shaping *sh, const char *domain, const char *source, const char *site,
                        json_t **set_by)
{
    struct shaping_pmap p;
    shaping_pmap_init(&p);
    const struct shaping_block *deflt = shaping_block_find(sh, SHAPING_BLOCK_DEFAULT, "default", false);
    if (deflt)
        shaping_pmap_merge(&p, &deflt->p);

    /* providers in the order first written, then their sources */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < sh->n_providers; i++) {
            const struct shaping_block *b = &sh->blocks[sh->providers[i]];
            if (!shaping_provider_applies(b, domain, site))
                continue;
            if (pass == 0) {
                shaping_pmap_merge(&p, &b->p);
            } else {
                const struct shaping_source *s = source_find(b, source);
                if (!s)
                    continue;
                shaping_pmap_merge(&p, &s->p);
            }
            provider_implied(b, source, &p);
        }
    }
    /* the site (mx_rollup blocks), the domain (mx_rollup = false), then their sources */
    const struct shaping_block *order[2] = {shaping_site_block(sh, domain, site),
                                            domain ? shaping_block_find(sh, SHAPING_BLOCK_DOMAIN, domain, false)
                                                   : NULL};
    for (int i = 0; i < 2; i++)
        if (order[i])
            shaping_pmap_merge(&p, &order[i]->p);
    for (int i = 0; i < 2; i++) {
        const struct shaping_source *s = order[i] ? source_find(order[i], source) : NULL;
        if (s)
            shaping_pmap_merge(&p, &s->p);
    }
    json_t *v = json_incref(p.v);
    if (set_by)
        *set_by = json_incref(p.origin);
    shaping_pmap_fini(&p);
    return v;
}

static size_t rules_of(const struct shaping *sh, const struct shaping_block *b, size_t n)
{
    size_t bi = (size_t)(b - sh->blocks);
    for (size_t i = 0; i < sh->n_rules; i++)
        if (sh->rule_block[i] == bi)
            sh->scratch[n++] = &sh->rules[i];
    return n;
}

size_t shaping_rules(const struct shaping *sh, const char *domain, const char *source, const char *site,
                     const struct shaping_rule ***out)
{
    size_t n = 0;
    (void)source; /* KumoMTA has no per-source rules: sources hold options only */
    *out = sh->scratch;
    if (!sh->n_rules)
        return 0;
    /* KumoMTA's order: default, providers (in block order), the site's block, the domain's block */
    const struct shaping_block *b = shaping_block_find(sh, SHAPING_BLOCK_DEFAULT, "default", false);
    if (b)
        n = rules_of(sh, b, n);
    for (size_t i = 0; i < sh->n_providers; i++)
        if (shaping_provider_applies(&sh->blocks[sh->providers[i]], domain, site))
            n = rules_of(sh, &sh->blocks[sh->providers[i]], n);
    if ((b = shaping_site_block(sh, domain, site)))
        n = rules_of(sh, b, n);
    if (domain && (b = shaping_block_find(sh, SHAPING_BLOCK_DOMAIN, domain, false)))
        n = rules_of(sh, b, n);
    return n;
}

size_t shaping_rules_all(const struct shaping *sh, const struct shaping_rule *const **out)
{
    *out = sh->all;
    return sh->n_rules;
}

const char *shaping_rate_text(const struct shaping_rate *r, char *buf, size_t size)
{
    static const struct {
        uint64_t ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "min"}, {1000, "s"}};
    const char *unit = NULL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && !unit; i++)
        if (r->period_ms == units[i].ms)
            unit = units[i].unit;
    int n = unit ? snprintf(buf, size, "%llu/%s", (unsigned long long)r->limit, unit)
                 : snprintf(buf, size, "%llu/%llums", (unsigned long long)r->limit, (unsigned long long)r->period_ms);
    if (r->max_burst && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, ",max_burst=%llu", (unsigned long long)r->max_burst);
    return buf;
}

static const char *const action_names[] = {"Suspend",       "SetConfig",    "SetDomainConfig", "SuspendTenant",
                                           "SuspendCampaign", "Bounce",     "BounceTenant",    "BounceCampaign"};

json_t *shaping_rule_json(const struct shaping_rule *r)
{
    char buf[64];
    json_t *regex = json_array(), *actions = json_array();
    for (size_t i = 0; i < r->n_regex; i++)
        json_array_append_new(regex, json_string(r->regex[i]));
    for (size_t i = 0; i < r->n_actions; i++) {
        const struct shaping_action *a = &r->actions[i];
        if (a->name)
            json_array_append_new(actions, json_pack("{s:{s:s,s:O}}", action_names[a->kind], "name", a->name,
                                                     "value", a->value));
        else
            json_array_append_new(actions, json_string(action_names[a->kind]));
    }
    json_t *trigger = r->threshold.limit
                          ? json_pack("{s:s}", "Threshold", shaping_rate_text(&r->threshold, buf, sizeof(buf)))
                          : json_string("Immediate");
    uint64_t ms = r->duration_ms;
    if (ms % 3600000 == 0)
        snprintf(buf, sizeof(buf), "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms % 60000 == 0)
        snprintf(buf, sizeof(buf), "%llum", (unsigned long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, sizeof(buf), "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, sizeof(buf), "%llums", (unsigned long long)ms);
    return json_pack("{s:I,s:s,s:s,s:I,s:o,s:o,s:o,s:s,s:I,s:b}", "id", (json_int_t)r->id, "scope", r->scope,
                     "file", r->file, "line", (json_int_t)r->line, "regex", regex, "action", actions, "trigger",
                     trigger, "duration", buf, "duration_ms", (json_int_t)ms, "match_internal", r->match_internal);
}

json_t *shaping_explain(const struct shaping *sh, const char *domain, const char *source, const char *site)
{
    json_t *set_by = NULL;
    json_t *config = shaping_resolve(sh, domain, source, site, &set_by);
    const struct shaping_rule **rules;
    size_t n = shaping_rules(sh, domain, source, site, &rules);
    json_t *ra = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(ra, shaping_rule_json(rules[i]));
    const char *prov = json_string_value(json_object_get(config, "provider_name"));
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o}", "domain", domain ? domain : "", "source",
                     source ? source : "", "site", site ? site : "", "provider_name", prov ? prov : "", "config",
                     config, "set_by", set_by, "rules", ra);
}
