/*
 * egress_route - routes, MX and address lookups, connection attempts (contract in egress_route.h)
 *
 * A job whose DNS callback is still due is kept (`zombie`, egress_job.c) until the callback ran:
 * the resolver has no per-lookup cancel, so every callback starts with egress_job_dns_back().
 */
#include "egress/egress_route.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "common/mta_sts.h"
#include "egress/egress_job.h"
#include "egress/egress_lease.h"

static void fail_all_transient_last(struct egress_job *j)
{
    if (j->n_usable == 0 && j->n_skipped > 0) {
        /* as KumoMTA: nothing left once skip_hosts took its addresses out is a transient failure */
        egress_job_set_all(j, PROTO_OUT_TRANSIENT, PROTO_CMD_CONNECT, 451, "4.4.4",
                           "MX consisted solely of hosts on the skip_hosts list");
        return;
    }
    /* a 5xx banner or EHLO refusal on every host is still a reason to try later, not to bounce */
    int code = j->last_code / 100 == 4 ? j->last_code : 0;
    egress_job_set_all(j, PROTO_OUT_TRANSIENT, PROTO_CMD_CONNECT, code, code ? j->last_enh : "",
                       j->last_text[0] ? j->last_text : "no host could be reached");
}

static void add_target(struct egress_job *j, const char *host, uint16_t port, bool literal)
{
    j->targets = xrealloc(j->targets, (j->n_targets + 1) * sizeof(*j->targets));
    j->targets[j->n_targets++] = (struct egress_target){.host = xstrdup(host), .port = port, .literal = literal};
}

static void conn_timeouts(const struct egress_job *j, struct egress_conn_timeouts *t)
{
    const struct proto_path_hdr *h = &j->pc->h;
    *t = (struct egress_conn_timeouts){
        .connect_ns = CLOCK_MS(h->connect_timeout_ms),
        .banner_ns = CLOCK_MS(h->banner_timeout_ms),
        .ehlo_ns = CLOCK_MS(h->ehlo_timeout_ms),
        .mail_ns = CLOCK_MS(h->mail_from_timeout_ms),
        .rcpt_ns = CLOCK_MS(h->rcpt_to_timeout_ms),
        .data_ns = CLOCK_MS(h->data_timeout_ms),
        .dot_ns = CLOCK_MS(h->data_dot_timeout_ms),
        .rset_ns = CLOCK_MS(h->rset_timeout_ms),
        .min_data_rate = j->eg->rt->cfg.egress_min_data_rate,
    };
}

/* tls_plan - the path's enable_tls for a connection of this job now */
static void tls_plan(struct egress_job *j, struct egress_tls_plan *tp)
{
    egress_tls_plan(&j->eg->tls, j->pc->h.enable_tls, j->pc->h.remember_broken_tls_ms, j->site,
                    clock_mono_ns() / 1000000u, tp);
}

static void connect_or_reuse(struct egress_job *j)
{
    struct egress_lease *l = j->lease;
    struct egress_tls_plan tp;

    tls_plan(j, &tp);
    /* a connection opened under other TLS settings (a reload changed enable_tls) is not reused */
    if (l && l->conn && egress_conn_idle(l->conn) && l->site && strcmp(l->site, j->site) == 0 &&
        l->source == j->d.source && egress_conn_tls_matches(l->conn, tp.mode, tp.verify)) {
        struct egress_conn_timeouts t;
        conn_timeouts(j, &t);
        egress_conn_timeouts_set(l->conn, &t); /* this attempt's path generation from here on */
        snprintf(j->mx, sizeof(j->mx), "%s", l->mx);
        snprintf(j->peer, sizeof(j->peer), "%s", egress_conn_peer(l->conn));
        j->tls = *egress_conn_tls(l->conn);
        j->state = JOB_SENDING;
        egress_job_txn(j);
        return;
    }
    if (l)
        egress_lease_drop_conn(l);
    j->cur_target = j->cur_addr = 0;
    j->state = JOB_CONNECTING;
    egress_route_next(j);
}

static void on_mx(void *arg, const struct dns_mx_result *res)
{
    struct egress_job *j = arg;
    char text[SMTP_REPLY_TEXT_MAX];

    if (!egress_job_dns_back(j))
        return;
    if (res->status == DNS_OK && res->n_mx > 0) {
        size_t refused = 0;
        for (size_t i = 0; i < res->n_mx; i++) {
            if (!egress_path_sts_mx_ok(j->pc, res->mx[i].host)) {
                /* RFC 8461 4.1: under enforce an MX host the policy does not name is never used */
                log_warn("mta-sts %s: domain %s: MX host %s does not match the policy's mx patterns%s",
                         mta_sts_mode_name(j->pc->h.mta_sts), j->domain, res->mx[i].host,
                         j->pc->h.mta_sts == MTA_STS_MODE_ENFORCE ? ": not used" : " (testing: used anyway)");
                if (j->pc->h.mta_sts == MTA_STS_MODE_ENFORCE) {
                    refused++;
                    continue;
                }
            }
            add_target(j, res->mx[i].host, j->pc->h.smtp_port, false);
        }
        if (refused == res->n_mx) {
            snprintf(text, sizeof(text),
                     "MTA-STS policy of %s (enforce): none of its %zu MX hosts matches the policy's mx patterns",
                     j->domain, res->n_mx);
            egress_job_set_all(j, PROTO_OUT_TRANSIENT, PROTO_CMD_CONNECT, 451, "4.7.5", text);
            egress_job_finish(j);
            return;
        }
        j->via_mx = true;
        j->site = dns_site_name(res);
        if (!j->site)
            j->site = xstrdup(j->domain);
        connect_or_reuse(j);
        return;
    }
    if (res->status == DNS_OK || res->status == DNS_TEMPFAIL) {
        snprintf(text, sizeof(text), "MX lookup for %s failed: %s", j->domain, res->reason);
        egress_job_set_all(j, PROTO_OUT_TRANSIENT, PROTO_CMD_CONNECT, 451, "4.4.3", text);
    } else if (res->status == DNS_NULL_MX) {
        snprintf(text, sizeof(text), "domain %s does not accept mail (null MX)", j->domain);
        egress_job_set_all(j, PROTO_OUT_BOUNCE, PROTO_CMD_CONNECT, 556, "5.1.10", text);
    } else {
        snprintf(text, sizeof(text), "no mail host for %s: %s (%s)", j->domain, dns_status_name(res->status),
                 res->reason);
        egress_job_set_all(j, PROTO_OUT_BOUNCE, PROTO_CMD_CONNECT, 550, "5.1.2", text);
    }
    egress_job_finish(j);
}

void egress_route_start(struct egress_job *j)
{
    struct egress *eg = j->eg;
    const struct cfg_route *rt = cfg_dlv_route_for(&eg->rt->cfg, j->domain);
    const char *rebound = j->have_msg ? proto_env_meta_get(&j->msg.env, PROTO_ENV_META_ROUTE) : NULL;
    struct cfg_route own;

    /* an operator's rebind to hosts (metadata `route`, written by the spool from a checked list) comes first */
    if (rebound && rebound[0]) {
        char *err = NULL;
        if (cfg_dlv_route_parse(rebound, eg->rt->cfg.egress_port, &own, &err) < 0) {
            char text[SMTP_REPLY_TEXT_MAX];
            snprintf(text, sizeof(text), "the message's route is not usable: %s", err);
            free(err);
            egress_job_set_all(j, PROTO_OUT_TRANSIENT, PROTO_CMD_CONNECT, 451, "4.4.3", text);
            egress_job_finish(j);
            return;
        }
        rt = &own;
    }
    if (rt && rt->n_hosts > 0) {
        size_t len = 7;
        for (uint32_t i = 0; i < rt->n_hosts; i++) {
            add_target(j, rt->hosts[i].host, rt->hosts[i].port ? rt->hosts[i].port : (uint16_t)eg->rt->cfg.egress_port,
                       rt->hosts[i].literal);
            len += strlen(rt->hosts[i].host) + 1;
        }
        j->site = xmalloc(len + 1);
        strcpy(j->site, "route:");
        for (uint32_t i = 0; i < rt->n_hosts; i++) {
            if (i)
                strcat(j->site, ",");
            strcat(j->site, rt->hosts[i].host);
        }
        if (rt == &own)
            cfg_dlv_route_fini(&own);
        connect_or_reuse(j);
        return;
    }
    j->state = JOB_RESOLVING;
    j->dns_pending++;
    if (dns_resolve_mx(eg->dns, j->domain, on_mx, j) < 0) {
        j->dns_pending--;
        egress_job_set_all(j, PROTO_OUT_TRANSIENT, PROTO_CMD_CONNECT, 451, "4.4.3", "resolver refused the lookup");
        egress_job_finish(j);
    }
}

static void on_host(void *arg, const struct dns_host_result *res)
{
    struct egress_job *j = arg;
    struct egress_target *t;

    if (!egress_job_dns_back(j))
        return;
    t = &j->targets[j->resolving];
    t->resolved = true;
    if (res->status == DNS_OK && res->n_addr > 0) {
        t->addr = xcalloc(res->n_addr, sizeof(*t->addr));
        memcpy(t->addr, res->addr, res->n_addr * sizeof(*t->addr));
        t->n_addr = res->n_addr;
    } else {
        char text[SMTP_REPLY_TEXT_MAX];
        snprintf(text, sizeof(text), "address lookup for %s failed: %s", t->host, res->reason);
        egress_job_last_error(j, 0, "", text);
    }
    j->state = JOB_CONNECTING;
    egress_route_next(j);
}

static bool literal_addr(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        return true;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        return true;
    }
    return false;
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* resolve - target k's addresses: true when a lookup is out (its callback continues the job) */
static bool resolve(struct egress_job *j, size_t k)
{
    struct egress_target *t = &j->targets[k];
    struct sockaddr_storage ss;

    t->resolved = true;
    if (t->literal) {
        t->addr = xcalloc(1, sizeof(*t->addr));
        if (literal_addr(t->host, t->port, t->addr))
            t->n_addr = 1;
        else
            egress_job_last_error(j, 0, "", "route host is not an IP address");
        return false;
    }
    if (literal_addr(t->host, t->port, &ss)) {
        /* a route host written as a bare IP: no lookup either */
        t->addr = xmalloc(sizeof(ss));
        *t->addr = ss;
        t->n_addr = 1;
        return false;
    }
    t->resolved = false;
    j->state = JOB_RESOLVING;
    j->resolving = k;
    j->dns_pending++;
    if (dns_resolve_host(j->eg->dns, t->host, on_host, j) == 0)
        return true;
    j->dns_pending--;
    t->resolved = true;
    return false;
}

/*
 * prohibited - with prohibited_hosts, every MX host is resolved before the first connection; an
 * address inside one bounces the recipients (KumoMTA fails the whole ready queue with 550 5.4.4 the
 * same way). True when the job is decided or a lookup is out.
 */
static bool prohibited(struct egress_job *j)
{
    if (!j->via_mx || !j->pc->n_prohibited || j->hosts_checked)
        return false;
    for (size_t k = 0; k < j->n_targets; k++)
        if (!j->targets[k].resolved && resolve(j, k))
            return true;
    j->hosts_checked = true;
    for (size_t k = 0; k < j->n_targets; k++)
        for (size_t a = 0; a < j->targets[k].n_addr; a++) {
            if (!egress_path_match(j->pc->prohibited, j->pc->n_prohibited, &j->targets[k].addr[a]))
                continue;
            char text[SMTP_REPLY_TEXT_MAX], peer[64];
            egress_conn_addr_format(&j->targets[k].addr[a], peer, sizeof(peer));
            snprintf(text, sizeof(text), "%s (%s) is on the list of prohibited_hosts", peer, j->targets[k].host);
            egress_job_set_all(j, PROTO_OUT_BOUNCE, PROTO_CMD_CONNECT, 550, "5.4.4", text);
            egress_job_finish(j);
            return true;
        }
    return false;
}

void egress_route_next(struct egress_job *j)
{
    struct egress *eg = j->eg;
    const struct cfg *cfg = &eg->rt->cfg;

    if (eg->draining && clock_mono_ns() >= eg->drain_soft_ns) {
        egress_job_last_error(j, 0, "", "shutting down");
        j->cur_target = j->n_targets;
    } else if (prohibited(j)) {
        return;
    }
    while (j->cur_target < j->n_targets) {
        struct egress_target *t = &j->targets[j->cur_target];
        if (!t->resolved) {
            if (resolve(j, j->cur_target))
                return;
            continue;
        }
        if (j->cur_addr >= t->n_addr) {
            j->cur_target++;
            j->cur_addr = 0;
            continue;
        }
        if (j->via_mx && egress_path_match(j->pc->skip, j->pc->n_skip, &t->addr[j->cur_addr])) {
            j->n_skipped++;
            j->cur_addr++;
            continue;
        }
        j->n_usable++;
        struct egress_conn_params p = {
            .addr = t->addr[j->cur_addr],
            .ehlo_name = cfg->hostname,
        };
        conn_timeouts(j, &p.t);
        set_port(&p.addr, t->port);
        if (j->d.source < cfg->n_sources) {
            const struct cfg_source *src = &cfg->sources[j->d.source];
            p.bind_address = src->bind_address;
            if (src->ehlo_name && src->ehlo_name[0])
                p.ehlo_name = src->ehlo_name;
        }
        if (j->pc->ehlo[0])
            p.ehlo_name = j->pc->ehlo;
        struct egress_tls_plan tp;
        tls_plan(j, &tp);
        p.tls = tp.mode;
        p.tls_verify = tp.verify;
        p.tls_name = t->host;
        p.tls_cache = &eg->tls;
        p.tls_site = j->site;
        p.tls_remember_broken_ms = tp.remember_broken_ms;
        char err[SMTP_REPLY_TEXT_MAX];
        struct egress_conn *c;
        egress_conn_addr_format(&p.addr, j->peer, sizeof(j->peer));
        snprintf(j->mx, sizeof(j->mx), "%s", t->host);
        j->state = JOB_CONNECTING;
        if (egress_conn_open(&eg->conns, &p, egress_lease_on_event, egress_lease_on_closed, j->lease, &c, err,
                             sizeof(err)) == 0) {
            j->lease->conn = c;
            egress_job_trace_names(j);
            return;
        }
        egress_job_last_error(j, 0, "", err);
        j->cur_addr++;
    }
    fail_all_transient_last(j);
    egress_job_finish(j);
}
