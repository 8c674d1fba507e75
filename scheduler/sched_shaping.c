/*
 * sched_shaping - the scheduler on the node's shaping files (contract in sched_shaping.h)
 *
 * Two small maps, JSON objects used as string maps (touched once per path creation, per MX answer
 * of a rollup block and per reload: never per message): "SOURCE\nSITE" -> the domain that created the
 * path (to resolve it again on reload), and no-rollup domain -> its MX rollup name (so that a
 * provider's MX match still applies to a domain that has a site of its own).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/log.h"
#include "base/mem.h"
#include "policy/shaping_node.h"
#include "common/mta_sts.h"
#include "scheduler/sched_mtasts.h"
#include "scheduler/sched_pathcfg.h"
#include "scheduler/sched_shaping.h"
#include "scheduler/sched_tsa.h"
#include "scheduler/scheduler.h"

struct rollup_lookup {
    struct scheduler *sc;
    uint32_t gen; /* the shaping generation that asked: answers for an older one are dropped */
    char domain[];
};

static char *path_key(const char *source, const char *site)
{
    return xasprintf("%s\n%s", source ? source : "", site);
}

static const char *path_get(json_t *map, const char *source, const char *site)
{
    char *k = path_key(source, site);
    const char *d = json_string_value(json_object_get(map, k));
    free(k);
    return d;
}

const char *sched_shaping_domain_of(struct scheduler *sc, const char *source, const char *site)
{
    return path_get(sc->path_domains, source, site);
}

const char *sched_shaping_provider_of(struct scheduler *sc, const char *source, const char *site)
{
    const char *p = path_get(sc->path_providers, source, site);
    return p ? p : "";
}

void sched_shaping_path_forget(struct scheduler *sc, const char *source, const char *site)
{
    char *k = path_key(source, site);
    json_object_del(sc->path_domains, k);
    json_object_del(sc->path_providers, k);
    free(k);
}

static void defaults_of(const struct cfg *c, struct shaping_defaults *d)
{
    *d = (struct shaping_defaults){
        .connection_limit = c->egress_connection_limit,
        .max_deliveries_per_connection = c->egress_max_deliveries_per_connection,
        .max_recipients_per_batch = PROTO_PATH_RCPTS_MAX,
        .max_ready = c->egress_max_ready,
        .connect_timeout_ms = c->egress_connect_timeout_ms,
        .banner_timeout_ms = c->egress_banner_timeout_ms,
        .command_timeout_ms = c->egress_command_timeout_ms,
        .data_timeout_ms = c->egress_data_timeout_ms,
        .idle_timeout_ms = c->egress_idle_timeout_ms,
        .smtp_port = (uint16_t)c->egress_port,
    };
}

static struct sched_rate rate_of(const struct shaping_rate *r)
{
    return (struct sched_rate){.limit = r->limit, .period_ms = r->period_ms, .max_burst = r->max_burst};
}

static uint64_t clamp_ms(uint64_t ms)
{
    return ms > PROTO_PATH_TIMEOUT_MAX_MS ? PROTO_PATH_TIMEOUT_MAX_MS : ms;
}

/* core_options - the scheduler's half of a resolved path */
static void core_options(const struct shaping_path_config *pc, const char *what, struct sched_path_options *opt)
{
    opt->connection_limit = pc->connection_limit;
    opt->max_deliveries_per_connection = pc->max_deliveries_per_connection;
    opt->max_ready = pc->max_ready;
    opt->consecutive_connection_failures_before_delay = pc->consecutive_connection_failures_before_delay;
    opt->max_message_rate = rate_of(&pc->max_message_rate);
    opt->max_connection_rate = rate_of(&pc->max_connection_rate);
    opt->source_selection_rate = rate_of(&pc->source_selection_rate);
    opt->n_limits = opt->n_throttles = opt->n_source_rates = 0;
    for (size_t i = 0; i < pc->n_limits; i++) {
        if (opt->n_limits == SCHED_PATH_NAMED_MAX) {
            log_warn("path %s: more than %u named connection limits; %s is not enforced", what, SCHED_PATH_NAMED_MAX,
                     pc->limits[i].name);
            continue;
        }
        opt->limits[opt->n_limits++] = (struct sched_named_limit){pc->limits[i].name, pc->limits[i].limit};
    }
    for (size_t i = 0; i < pc->n_throttles; i++) {
        if (opt->n_throttles == SCHED_PATH_NAMED_MAX) {
            log_warn("path %s: more than %u named throttles; %s is not enforced", what, SCHED_PATH_NAMED_MAX,
                     pc->throttles[i].name);
            continue;
        }
        opt->throttles[opt->n_throttles++] =
            (struct sched_named_rate){pc->throttles[i].name, rate_of(&pc->throttles[i].rate)};
    }
    for (size_t i = 0; i < pc->n_source_rates; i++) {
        if (opt->n_source_rates == SCHED_PATH_NAMED_MAX) {
            log_warn("path %s: more than %u named source rates; %s is not enforced", what, SCHED_PATH_NAMED_MAX,
                     pc->source_rates[i].name);
            continue;
        }
        opt->source_rates[opt->n_source_rates++] =
            (struct sched_named_rate){pc->source_rates[i].name, rate_of(&pc->source_rates[i].rate)};
    }
}

/* egress_options - the egress's half: what the egress needs per attempt */
static void egress_options(const struct shaping_path_config *pc, const char *site, const char *what,
                           struct proto_path *pp)
{
    memset(pp, 0, sizeof(*pp));
    struct proto_path_hdr *h = &pp->hdr;
    h->connect_timeout_ms = clamp_ms(pc->connect_timeout_ms);
    h->banner_timeout_ms = clamp_ms(pc->banner_timeout_ms);
    h->ehlo_timeout_ms = clamp_ms(pc->ehlo_timeout_ms);
    h->mail_from_timeout_ms = clamp_ms(pc->mail_from_timeout_ms);
    h->rcpt_to_timeout_ms = clamp_ms(pc->rcpt_to_timeout_ms);
    h->data_timeout_ms = clamp_ms(pc->data_timeout_ms);
    h->data_dot_timeout_ms = clamp_ms(pc->data_dot_timeout_ms);
    h->rset_timeout_ms = clamp_ms(pc->rset_timeout_ms);
    h->idle_timeout_ms = clamp_ms(pc->idle_timeout_ms);
    h->remember_broken_tls_ms = pc->remember_broken_tls_ms;
    h->max_recipients_per_batch = pc->max_recipients_per_batch == 0 ? 1
                                  : pc->max_recipients_per_batch > PROTO_PATH_RCPTS_MAX ? PROTO_PATH_RCPTS_MAX
                                                                                        : pc->max_recipients_per_batch;
    h->max_deliveries_per_connection = pc->max_deliveries_per_connection;
    h->smtp_port = pc->smtp_port ? pc->smtp_port : 25;
    h->enable_tls = (uint8_t)pc->enable_tls;
    pp->ehlo_domain = pc->ehlo_domain ? pc->ehlo_domain : "";
    if (strlen(pp->ehlo_domain) > PROTO_PATH_EHLO_MAX) {
        log_warn("path %s: ehlo_domain longer than %u bytes is not used", what, PROTO_PATH_EHLO_MAX);
        pp->ehlo_domain = "";
    }
    h->ehlo_len = (uint16_t)strlen(pp->ehlo_domain);
    size_t sl = strlen(site);
    pp->site = sl <= PROTO_PATH_SITE_MAX ? site : ""; /* a longer one: the egress names the site itself */
    h->site_len = (uint16_t)strlen(pp->site);
    size_t np = pc->n_prohibited_hosts, ns = pc->n_skip_hosts;
    if (np > PROTO_PATH_HOSTS_MAX || ns > PROTO_PATH_HOSTS_MAX)
        log_warn("path %s: only the first %u prohibited_hosts / skip_hosts entries apply", what,
                 PROTO_PATH_HOSTS_MAX);
    h->n_prohibited = (uint16_t)(np > PROTO_PATH_HOSTS_MAX ? PROTO_PATH_HOSTS_MAX : np);
    h->n_skip = (uint16_t)(ns > PROTO_PATH_HOSTS_MAX ? PROTO_PATH_HOSTS_MAX : ns);
    pp->prohibited = (const char **)pc->prohibited_hosts;
    pp->skip = (const char **)pc->skip_hosts;
}

/* resolve_site - the site the shaping resolution sees: a no-rollup domain's MX rollup name */
static const char *resolve_site(struct scheduler *sc, const char *site, const char *domain, char **base)
{
    size_t bl = mta_sts_site_base_len(site);
    if (site[bl]) {
        /* the MTA-STS tag is the scheduler's own: the shaping files match the MX rollup name */
        *base = xstrndup(site, bl);
        site = *base;
    }
    if (domain && strcmp(site, domain) == 0) {
        const char *mx = json_string_value(json_object_get(sc->norollup_mx, domain));
        if (mx)
            return mx;
    }
    return site;
}

void sched_shaping_path(void *arg, const char *source, const char *site, const char *domain,
                        struct sched_path_options *opt)
{
    struct scheduler *sc = arg;
    struct shaping_defaults def;
    struct shaping_path_config pc;
    char *what = xasprintf("%s->%s", source ? source : "", site ? site : "");
    char *err = NULL, *domain_copy = NULL;

    if (!site)
        goto out; /* the defaults, as filled by the core */
    if (domain) {
        /* domain may be borrowed from path_domains itself (reconfigure): copy it before replacing it */
        domain_copy = xstrdup(domain);
        domain = domain_copy;
        char *k = path_key(source, site);
        json_object_set_new(sc->path_domains, k, json_string(domain));
        free(k);
    }
    defaults_of(&sc->rt->cfg, &def);
    char *base = NULL;
    json_t *resolved = shaping_resolve(sc->shaping, domain ? domain : site, source,
                                       resolve_site(sc, site, domain, &base), NULL);
    free(base);
    json_t *overrides = sched_tsa_overrides(sc, source, site, domain); /* automation's SetConfig */
    int rc = shaping_path_config_from(resolved, overrides, &def, &pc, &err);
    if (rc < 0 && overrides) {
        /* an override that does not fit its option: the path runs on its files alone */
        log_warn("path %s: automation override not applied: %s", what, err ? err : "");
        free(err);
        err = NULL;
        rc = shaping_path_config_from(resolved, NULL, &def, &pc, &err);
    }
    json_decref(resolved);
    json_decref(overrides);
    if (rc < 0) {
        log_error("path %s: shaping does not resolve (%s); node defaults apply", what, err ? err : "");
        free(err);
        goto out;
    }
    core_options(&pc, what, opt);
    char *pk = path_key(source, site);
    json_object_set_new(sc->path_providers, pk, json_string(pc.provider_name)); /* queue-summary --by-provider */
    free(pk);
    sched_warmup_path(sc, source, site, pc.provider_name, opt); /* a warming source's step */
    int src = source ? cfg_dlv_source_find(&sc->rt->cfg, source) : -1;
    if (src >= 0) {
        struct proto_path pp;
        egress_options(&pc, site, what, &pp);
        sched_mtasts_path(sc, site, &pp);
        int put = sched_pathcfg_put(sc, (uint16_t)src, site, &pp);
        if (put < 0)
            log_warn("path %s: egress options not sent (%s)", what, strerror(-put));
    }
    log_debug("path %s (%s): provider %s, connection_limit %u", what, domain ? domain : "-",
              pc.provider_name[0] ? pc.provider_name : "-", pc.connection_limit);
    /* opt borrows the names of pc's named limits until the core has copied them, after this returns */
    if (sc->has_last_pc)
        shaping_path_config_fini(&sc->last_pc);
    sc->last_pc = pc;
    sc->has_last_pc = true;
out:
    free(domain_copy);
    free(what);
}

void sched_shaping_reconfigure(struct scheduler *sc, const char *source, const char *site)
{
    struct sched_path *p = sched_path_find(sc->core, source, site);
    if (!p)
        return;
    struct sched_path_options opt = p->opt;
    sched_shaping_path(sc, source, site, sched_shaping_domain_of(sc, source, site), &opt);
    sched_path_options_set(sc->core, p, &opt);
}

/* reconfigure_all - every live path resolved again (reload, a rollup site learnt) */
static void reconfigure_all(struct scheduler *sc, const char *only_site)
{
    for (uint32_t i = 0; i < sc->core->npaths; i++) {
        struct sched_path *p = sc->core->paths[i];
        if (only_site && strcmp(p->site->n.name, only_site) != 0)
            continue;
        struct sched_path_options opt = p->opt;
        const char *source = sched_path_source_name(sc->core, p);
        sched_shaping_path(sc, source, p->site->n.name, sched_shaping_domain_of(sc, source, p->site->n.name), &opt);
        sched_path_options_set(sc->core, p, &opt);
    }
}

static void on_rollup_mx(void *arg, const struct dns_mx_result *res)
{
    struct rollup_lookup *lk = arg;
    struct scheduler *sc = lk->sc;

    if (lk->gen == sc->shaping_gen && res->status == DNS_OK) {
        char *site = dns_site_name(res), *err = NULL;
        if (site && shaping_site_set(sc->shaping, lk->domain, site, &err) < 0) {
            log_error("shaping: %s", err ? err : "two domain blocks share a site");
        } else if (site) {
            log_debug("shaping: [\"%s\"] applies to site %s", lk->domain, site);
            reconfigure_all(sc, site);
        }
        free(err);
        free(site);
    } else if (lk->gen == sc->shaping_gen) {
        log_info("shaping: MX of [\"%s\"] not known (%s): the block applies to that domain only", lk->domain,
                 dns_status_name(res->status));
    }
    free(lk);
}

static void start_rollups(struct scheduler *sc)
{
    const char **domains = NULL;
    size_t n = shaping_rollup_domains(sc->shaping, &domains);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(domains[i]);
        struct rollup_lookup *lk = xmalloc(sizeof(*lk) + len + 1);
        lk->sc = sc;
        lk->gen = sc->shaping_gen;
        memcpy(lk->domain, domains[i], len + 1);
        if (dns_resolve_mx(sc->dns, lk->domain, on_rollup_mx, lk) < 0)
            free(lk);
    }
    /* domains borrows from the shaping: it is freed with it */
}

static struct shaping *load(struct scheduler *sc)
{
    struct shaping_diags d = {0};
    struct shaping *sh = shaping_node_load(&sc->rt->cfg, &d);
    if (!sh) {
        char *text = shaping_diags_text(&d);
        log_error("shaping does not load:\n%s", text ? text : "");
        free(text);
    }
    shaping_diags_fini(&d); /* warnings: the supervisor reported them when it validated the files */
    return sh;
}

void sched_shaping_init(struct scheduler *sc)
{
    sc->path_domains = json_object();
    sc->path_providers = json_object();
    sc->norollup_mx = json_object();
    sc->shaping = load(sc);
    if (!sc->shaping)
        fatal("scheduler: the shaping files do not load");
    sc->shaping_gen = 1;
    start_rollups(sc);
}

void sched_shaping_fini(struct scheduler *sc)
{
    if (sc->has_last_pc)
        shaping_path_config_fini(&sc->last_pc);
    sc->has_last_pc = false;
    shaping_free(sc->shaping);
    sc->shaping = NULL;
    json_decref(sc->path_domains);
    json_decref(sc->path_providers);
    json_decref(sc->norollup_mx);
}

void sched_shaping_reload(struct scheduler *sc)
{
    struct shaping *sh = load(sc);
    if (!sh) {
        log_error("shaping unchanged: still running on the files loaded before");
        return;
    }
    shaping_free(sc->shaping);
    sc->shaping = sh;
    sc->shaping_gen++;
    if (sc->tsa)
        sched_tsa_rules_changed(sc->tsa);
    start_rollups(sc);
    reconfigure_all(sc, NULL);
}

char *sched_shaping_site(struct scheduler *sc, const char *domain, const char *mx_site)
{
    if (sc->shaping && shaping_domain_no_rollup(sc->shaping, domain)) {
        json_object_set_new(sc->norollup_mx, domain, json_string(mx_site));
        return xstrdup(domain);
    }
    return xstrdup(mx_site);
}

bool sched_shaping_mta_sts_enabled(struct scheduler *sc, const char *domain, const char *mx_site)
{
    if (!sc->shaping)
        return true;
    json_t *resolved = shaping_resolve(sc->shaping, domain, NULL, mx_site, NULL);
    bool on = !json_is_false(json_object_get(resolved, "enable_mta_sts"));
    json_decref(resolved);
    return on;
}
