/*
 * sched_route - where a domain's mail goes: the site it belongs to
 *
 * The core asks once per domain (hooks.resolve). A [route."domain"] (or "*") in the configuration
 * answers at once with the site "route:HOST:PORT,...", so every domain routed to the same hosts
 * shares a site; otherwise the domain's MX set is looked up and rolled up (dns_site_name). Permanent
 * DNS answers (NXDOMAIN, null MX, no data, bad name) bounce the waiting messages; the bounce hook reads
 * sc->fail_status to tell the spool which one. Temporary failures retry with the queue's backoff.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "scheduler/sched_mtasts.h"
#include "scheduler/sched_shaping.h"
#include "scheduler/scheduler.h"

struct lookup {
    struct scheduler *sc;
    struct lookup *next, *prev;
    char domain[];
};

static struct lookup *pending;

static void unlink_lookup(struct lookup *lk)
{
    if (lk->prev)
        lk->prev->next = lk->next;
    else
        pending = lk->next;
    if (lk->next)
        lk->next->prev = lk->prev;
}

static char *route_site(const struct cfg_route *r)
{
    size_t cap = 16 + r->n_hosts * 280, len = 0;
    char *s = xmalloc(cap);
    len += (size_t)snprintf(s, cap, "route:");
    for (uint32_t i = 0; i < r->n_hosts; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%s%s%s:%u", i ? "," : "", r->hosts[i].literal ? "[" : "",
                                r->hosts[i].host, r->hosts[i].literal ? "]" : "", r->hosts[i].port);
    return s;
}

static void on_mx(void *arg, const struct dns_mx_result *res)
{
    struct lookup *lk = arg;
    struct scheduler *sc = lk->sc;
    uint64_t now = scheduler_now_ms();

    unlink_lookup(lk);
    if (res->status == DNS_OK) {
        char *mx_site = dns_site_name(res);
        char *site = mx_site ? sched_shaping_site(sc, lk->domain, mx_site) : NULL;
        bool sts = mx_site && sched_shaping_mta_sts_enabled(sc, lk->domain, mx_site);
        free(mx_site);
        if (site && sts)
            sched_mtasts_resolve(sc, lk->domain, site, res->ttl ? res->ttl : 60); /* answers the core */
        else if (site && sched_site_resolved(sc->core, lk->domain, site, res->ttl ? res->ttl : 60, now) < 0)
            log_debug("resolved %s, but no message waits for it any more", lk->domain);
        free(site);
    } else {
        bool permanent = dns_status_permanent(res->status);
        log_info("domain %s: %s (%s)%s", lk->domain, dns_status_name(res->status), res->reason,
                 permanent ? ": its messages bounce" : ": retry later");
        sc->fail_status = res->status;
        (void)sched_site_failed(sc->core, lk->domain, permanent, res->reason, now);
        sc->fail_status = DNS_OK;
    }
    free(lk);
}

void sched_route_resolve(void *arg, const char *domain)
{
    struct scheduler *sc = arg;
    if (sched_rebind_resolve(sc, domain))
        return;
    const struct cfg_route *r = cfg_dlv_route_for(&sc->rt->cfg, domain);

    if (r) {
        char *site = route_site(r);
        /* a route costs no lookup: a short life lets a reload that changes routes act within seconds */
        (void)sched_site_resolved(sc->core, domain, site, 5, scheduler_now_ms());
        free(site);
        return;
    }
    size_t n = strlen(domain);
    struct lookup *lk = xmalloc(sizeof(*lk) + n + 1);
    memcpy(lk->domain, domain, n + 1);
    lk->sc = sc;
    lk->prev = NULL;
    lk->next = pending;
    if (pending)
        pending->prev = lk;
    pending = lk;
    if (dns_resolve_mx(sc->dns, domain, on_mx, lk) < 0) {
        unlink_lookup(lk);
        free(lk);
        sc->fail_status = DNS_TEMPFAIL;
        (void)sched_site_failed(sc->core, domain, false, "resolver refused the lookup", scheduler_now_ms());
        sc->fail_status = DNS_OK;
    }
}

void sched_route_init(struct scheduler *sc)
{
    const struct cfg *c = &sc->rt->cfg;
    struct dns_config dc = {
        .servers = c->egress_resolver && c->egress_resolver[0] ? c->egress_resolver : NULL,
        .timeout_ms = (unsigned)(c->egress_dns_timeout_ms < 60000 ? c->egress_dns_timeout_ms : 60000),
        .tries = 2,
        .neg_ttl_min_s = 60,
    };
    char *err = NULL;
    sc->dns = dns_resolver_new(&sc->rt->evl, &dc, &err);
    if (!sc->dns)
        fatal("scheduler: DNS resolver: %s", err ? err : "cannot start");
}

void sched_route_fini(struct scheduler *sc)
{
    dns_resolver_free(sc->dns);
    sc->dns = NULL;
    while (pending) {
        struct lookup *lk = pending;
        pending = lk->next;
        free(lk);
    }
}
