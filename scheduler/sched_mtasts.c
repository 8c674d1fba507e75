/*
 * sched_mtasts - MTA-STS discovery, cache and effects (contract in sched_mtasts.h)
 *
 * One entry per domain (a sched_name table); `busy` while a check of it runs, so an entry is never
 * dropped under a DNS callback or a fetch. Effects (mode + patterns, named by their hash) are kept
 * until fini: paths of a tagged site may be resolved again (reload) long after the domain moved on.
 */
#include "scheduler/sched_mtasts.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "common/mta_sts.h"
#include "scheduler/sched_mtasts_fetch.h"
#include "scheduler/scheduler.h"

struct sts_dom {
    struct sched_name n; /* the domain, lowercase */
    struct sched_mtasts *m;
    bool have; /* a policy is cached */
    char id[MTA_STS_ID_MAX + 1];
    struct mta_sts_policy pol;
    uint64_t expires_ms;
    /* the check running now */
    bool busy;
    char *site;
    uint32_t ttl_s;
    uint32_t txt_ttl_s; /* the TXT answer's life: the site is checked again within it (0: no cap) */
    char new_id[MTA_STS_ID_MAX + 1];
};

struct sts_effect {
    struct sts_effect *next;
    char tag[24]; /* "enforce:0123abcd" */
    unsigned mode;
    size_t n;
    char **mx;
};

struct sched_mtasts {
    struct scheduler *sc;
    struct sched_name_table doms;
    struct sched_mtasts_fetcher *fetcher;
    struct sts_effect *effects;
};

static uint64_t now_ms(void)
{
    return scheduler_now_ms();
}

static bool fresh(const struct sts_dom *d)
{
    return d->have && now_ms() < d->expires_ms;
}

static void drop_policy(struct sts_dom *d)
{
    mta_sts_policy_fini(&d->pol);
    d->have = false;
    d->id[0] = '\0';
}

/* effect_tag - register the effect of d's policy; its tag "MODE:HASH" */
static const char *effect_tag(struct sched_mtasts *m, const struct mta_sts_policy *p)
{
    uint32_t h = 2166136261u;
    const char *mode = mta_sts_mode_name(p->mode);
    for (const char *s = mode; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    for (size_t i = 0; i < p->n_mx; i++) {
        h = (h ^ '\n') * 16777619u;
        for (const char *s = p->mx[i]; *s; s++)
            h = (h ^ (unsigned char)*s) * 16777619u;
    }
    char tag[24];
    snprintf(tag, sizeof(tag), "%s:%08x", mode, h);
    for (struct sts_effect *e = m->effects; e; e = e->next)
        if (strcmp(e->tag, tag) == 0)
            return e->tag;
    struct sts_effect *e = xcalloc(1, sizeof(*e));
    memcpy(e->tag, tag, sizeof(tag));
    e->mode = p->mode;
    e->n = p->n_mx;
    e->mx = xcalloc(p->n_mx ? p->n_mx : 1, sizeof(*e->mx));
    for (size_t i = 0; i < p->n_mx; i++)
        e->mx[i] = xstrdup(p->mx[i]);
    e->next = m->effects;
    m->effects = e;
    return e->tag;
}

/* finish - the check of d is over: tell the core the domain's site under the policy in force (a policy
 * just fetched applies to this resolution even with max_age 0) */
static void finish_policy(struct sts_dom *d, uint32_t ttl_cap, bool just_fetched)
{
    struct sched_mtasts *m = d->m;
    char *site = d->site;
    uint32_t ttl = d->ttl_s;

    if (ttl_cap && ttl_cap < ttl)
        ttl = ttl_cap;
    if (d->txt_ttl_s && d->txt_ttl_s < ttl)
        ttl = d->txt_ttl_s; /* a changed TXT id is seen when the site is resolved again */
    if (ttl == 0)
        ttl = 1;
    d->busy = false;
    d->site = NULL;
    if ((fresh(d) || (just_fetched && d->have)) &&
        (d->pol.mode == MTA_STS_MODE_ENFORCE || d->pol.mode == MTA_STS_MODE_TESTING)) {
        char *tagged = xasprintf("%s%s%s", site, MTA_STS_SITE_TAG, effect_tag(m, &d->pol));
        if (strlen(tagged) > PROTO_PATH_SITE_MAX && d->pol.mode == MTA_STS_MODE_ENFORCE)
            log_warn("mta-sts: domain %s: site name %s is longer than %u bytes: the egress logs its own name",
                     d->n.name, tagged, PROTO_PATH_SITE_MAX);
        free(site);
        site = tagged;
    }
    if (sched_site_resolved(m->sc->core, d->n.name, site, ttl, now_ms()) < 0)
        log_debug("mta-sts: %s checked, but no message waits for it any more", d->n.name);
    free(site);
}

static void finish(struct sts_dom *d, uint32_t ttl_cap)
{
    finish_policy(d, ttl_cap, false);
}

static void fetch_failed(struct sts_dom *d, const char *why)
{
    log_warn("mta-sts: domain %s: policy fetch failed: %s; %s", d->n.name, why,
             fresh(d) ? "the cached policy stays in force" : "no policy applies");
    finish(d, 60);
}

static void on_policy_host(void *arg, const struct dns_host_result *res)
{
    struct sts_dom *d = arg;
    char addr[INET6_ADDRSTRLEN] = "";

    if (res->status != DNS_OK || res->n_addr == 0) {
        fetch_failed(d, res->reason[0] ? res->reason : "no address for the policy host");
        return;
    }
    const struct sockaddr_storage *ss = &res->addr[0];
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, addr, sizeof(addr));
    else
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, addr, sizeof(addr));
    struct sched_mtasts_req *r = xcalloc(1, sizeof(*r));
    r->domain = xstrdup(d->n.name);
    r->addr = xstrdup(addr);
    log_debug("mta-sts: domain %s: fetching the policy from mta-sts.%s (%s)", d->n.name, d->n.name, addr);
    sched_mtasts_fetch_start(d->m->fetcher, r);
}

static void on_txt(void *arg, const struct dns_txt_result *res)
{
    struct sts_dom *d = arg;
    char id[MTA_STS_ID_MAX + 1] = "";
    int found = 0;
    const char *why = NULL;

    if (res->status == DNS_OK) {
        /* RFC 8461 3.1: records not starting with v=STSv1 are discarded; not exactly one left, or a
         * malformed one, means no policy is available */
        for (size_t i = 0; i < res->n_txt; i++) {
            char one[MTA_STS_ID_MAX + 1];
            int rc = mta_sts_txt_parse(res->txt[i], res->txt_len[i], one, &why);
            if (rc == 0)
                continue;
            found = rc < 0 || found ? -1 : 1;
            if (rc == 1)
                memcpy(id, one, sizeof(one));
        }
    }
    d->txt_ttl_s = res->status == DNS_OK || dns_status_permanent(res->status) ? res->ttl : 60;
    if (found != 1) {
        if (found < 0)
            log_warn("mta-sts: domain %s: _mta-sts TXT record unusable (%s)", d->n.name,
                     why ? why : "more than one v=STSv1 record");
        else if (res->status == DNS_TEMPFAIL)
            log_info("mta-sts: domain %s: %s", d->n.name, res->reason);
        finish(d, 0); /* a fresh cached policy stays in force (RFC 8461 5.1) */
        return;
    }
    if (fresh(d) && strcmp(d->id, id) == 0) {
        finish(d, 0);
        return;
    }
    memcpy(d->new_id, id, sizeof(id));
    char *host = xasprintf("mta-sts.%s", d->n.name);
    if (dns_resolve_host(d->m->sc->dns, host, on_policy_host, d) < 0)
        fetch_failed(d, "resolver refused the lookup");
    free(host);
}

static struct sts_dom *dom_find(struct sched_mtasts *m, const char *domain)
{
    return (struct sts_dom *)sched_name_find(&m->doms, domain, sched_name_hash(domain));
}

static void dom_free(struct sts_dom *d)
{
    mta_sts_policy_fini(&d->pol);
    free(d->site);
    free(d->n.name);
    free(d);
}

/* trim - stay under MTA_STS_CACHE_MAX: expired entries first, then any idle one */
static void trim(struct sched_mtasts *m)
{
    for (int pass = 0; pass < 2 && m->doms.count >= MTA_STS_CACHE_MAX; pass++)
        for (size_t i = 0; i < m->doms.cap && m->doms.count >= MTA_STS_CACHE_MAX;) {
            struct sts_dom *d = (struct sts_dom *)m->doms.slots[i];
            if (d && !d->busy && (pass == 1 || !fresh(d))) {
                sched_name_del(&m->doms, &d->n);
                dom_free(d);
                continue; /* the backward shift may have moved another entry into slot i */
            }
            i++;
        }
}

void sched_mtasts_resolve(struct scheduler *sc, const char *domain, const char *site, uint32_t ttl_s)
{
    struct sched_mtasts *m = sc->mtasts;
    struct sts_dom *d = dom_find(m, domain);

    if (!d) {
        trim(m);
        d = xcalloc(1, sizeof(*d));
        d->n.name = xstrdup(domain);
        d->n.hash = sched_name_hash(domain);
        d->m = m;
        sched_name_add(&m->doms, &d->n);
    }
    if (d->busy) {
        /* a second ask while a check runs (the core's domain was freed and made again meanwhile): the
         * running check answers by name, so this one is answered too, under the policy, never without */
        return;
    }
    d->busy = true;
    d->site = xstrdup(site);
    d->ttl_s = ttl_s;
    d->txt_ttl_s = 0;
    char *name = xasprintf("_mta-sts.%s", domain);
    if (dns_resolve_txt(sc->dns, name, on_txt, d) < 0)
        finish(d, 60);
    free(name);
}

void sched_mtasts_tick(struct scheduler *sc)
{
    struct sched_mtasts *m = sc->mtasts;
    struct sched_mtasts_req *r = m && m->fetcher ? sched_mtasts_fetch_poll(m->fetcher) : NULL;

    while (r) {
        struct sched_mtasts_req *next = r->next;
        struct sts_dom *d = dom_find(m, r->domain);
        if (d && d->busy) {
            struct mta_sts_policy p;
            const char *why = NULL;
            if (!r->ok) {
                fetch_failed(d, r->error);
            } else if (mta_sts_policy_parse(r->body, r->body_len, &p, &why) < 0) {
                char *msg = xasprintf("policy refused: %s", why);
                fetch_failed(d, msg);
                free(msg);
            } else if (p.mode == MTA_STS_MODE_NONE) {
                log_info("mta-sts: domain %s: policy id %s says mode none: no policy applies", d->n.name, d->new_id);
                mta_sts_policy_fini(&p);
                drop_policy(d);
                finish(d, 0);
            } else {
                drop_policy(d);
                d->pol = p;
                d->have = true;
                memcpy(d->id, d->new_id, sizeof(d->id));
                d->expires_ms = now_ms() + (uint64_t)p.max_age * 1000u;
                log_info("mta-sts: domain %s: policy id %s, mode %s, %zu mx pattern(s), max_age %u", d->n.name, d->id,
                         mta_sts_mode_name(p.mode), p.n_mx, p.max_age);
                finish_policy(d, p.max_age ? 0 : 1, true);
            }
        }
        sched_mtasts_fetch_req_free(r);
        r = next;
    }
}

void sched_mtasts_path(struct scheduler *sc, const char *site, struct proto_path *pp)
{
    struct sched_mtasts *m = sc->mtasts;
    enum mta_sts_mode mode = mta_sts_site_mode(site);

    if (mode == MTA_STS_MODE_OFF || !m)
        return;
    const char *tag = strstr(site, MTA_STS_SITE_TAG) + sizeof(MTA_STS_SITE_TAG) - 1;
    pp->hdr.mta_sts = (uint8_t)mode;
    if (mode == MTA_STS_MODE_ENFORCE)
        pp->hdr.enable_tls = PROTO_PATH_TLS_REQUIRED; /* verified TLS, never plaintext */
    for (struct sts_effect *e = m->effects; e; e = e->next)
        if (strcmp(e->tag, tag) == 0) {
            pp->hdr.n_sts_mx = (uint16_t)e->n;
            pp->sts_mx = (const char **)e->mx;
            return;
        }
    /* an effect we never made (cannot happen: tags come from effect_tag): no MX host is allowed */
    pp->hdr.n_sts_mx = 0;
}

void sched_mtasts_init(struct scheduler *sc)
{
    struct sched_mtasts *m = xcalloc(1, sizeof(*m));
    m->sc = sc;
    m->fetcher = sched_mtasts_fetch_new(sc->rt->cfg.egress_tls_ca_file, MTA_STS_FETCH_TIMEOUT_MS);
    sc->mtasts = m;
}

void sched_mtasts_fini(struct scheduler *sc)
{
    struct sched_mtasts *m = sc->mtasts;
    if (!m)
        return;
    sched_mtasts_fetch_free(m->fetcher);
    for (size_t i = 0; i < m->doms.cap; i++)
        if (m->doms.slots[i])
            dom_free((struct sts_dom *)m->doms.slots[i]);
    free(m->doms.slots);
    while (m->effects) {
        struct sts_effect *e = m->effects;
        m->effects = e->next;
        for (size_t i = 0; i < e->n; i++)
            free(e->mx[i]);
        free(e->mx);
        free(e);
    }
    free(m);
    sc->mtasts = NULL;
}
