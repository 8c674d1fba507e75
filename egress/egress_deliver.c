/*
 * egress_deliver - the DELIVER flow of the egress worker (see egress.h)
 *
 * One job per DELIVER: LOAD -> LOADING -> (route | MX lookup) -> per host: address lookup, connect
 * -> SENDING (one or more transactions) -> REPORT (attempt result to the spool) -> DONE_SEND
 * (delivery done to the scheduler) -> freed. A job whose DNS callback is still due is kept
 * (`zombie`) until it ran: the resolver has no per-lookup cancel.
 * The connection of a lease belongs to the lease; the lease forwards its events to its job.
 */
#include "egress/egress_job.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "egress/egress_attempt.h"


static void job_try_next(struct egress_job *j);
static void job_txn(struct egress_job *j);
static void lease_on_event(void *arg, struct egress_conn *c, const struct egress_smtp_event *ev);
static void lease_on_closed(void *arg, struct egress_conn *c);

int egress_spool_instance(struct egress *eg)
{
    return shm_segment_instance_of(&eg->rt->seg, PROTO_NODE_ROLE_SPOOL, 0);
}

static uint32_t instance_gen(struct egress *eg, int inst)
{
    return atomic_load(&eg->rt->seg.inst[inst].generation);
}

/* ---- leases ---- */

static struct egress_lease *lease_find(struct egress *eg, uint32_t id)
{
    for (struct egress_lease *l = eg->leases; l; l = l->next)
        if (l->id == id)
            return l;
    return NULL;
}

void egress_lease_remove(struct egress_lease *l)
{
    struct egress *eg = l->eg;
    for (struct egress_lease **pp = &eg->leases; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    if (l->job)
        l->job->lease = NULL;
    free(l->site);
    free(l);
}

/* egress_lease_drop_conn - the lease lets its connection go: QUIT, nobody listens to it any more */
void egress_lease_drop_conn(struct egress_lease *l)
{
    struct egress_conn *c = l->conn;
    if (!c)
        return;
    l->conn = NULL;
    free(l->site);
    l->site = NULL;
    egress_conn_owner_set(c, NULL, NULL, NULL);
    egress_conn_quit(c);
}

void egress_lease_closed_send(struct egress *eg, unsigned sched, uint32_t lease, uint32_t gen, uint32_t reason)
{
    struct proto_rec r = {.type = MSG_EGRESS_LEASE_CLOSED};
    r.body.lease.lease = lease;
    r.body.lease.lease_gen = gen;
    r.body.lease.reason = reason;
    if (eg->n_closed_pending == 0 && role_rt_send(eg->rt, sched, &r) == 0)
        return;
    if (eg->n_closed_pending == eg->cap_closed_pending) {
        eg->cap_closed_pending = eg->cap_closed_pending ? 2 * eg->cap_closed_pending : 16;
        eg->closed_pending = xrealloc(eg->closed_pending, eg->cap_closed_pending * sizeof(*eg->closed_pending));
    }
    eg->closed_pending[eg->n_closed_pending++] = (struct egress_closed){sched, lease, gen, reason};
}

void egress_lease_closed_flush(struct egress *eg)
{
    unsigned k = 0;
    for (unsigned i = 0; i < eg->n_closed_pending; i++) {
        struct egress_closed v = eg->closed_pending[i];
        struct proto_rec r = {.type = MSG_EGRESS_LEASE_CLOSED};
        r.body.lease.lease = v.lease;
        r.body.lease.lease_gen = v.gen;
        r.body.lease.reason = v.reason;
        /* in order: once one is refused, the rest wait behind it */
        if (k > 0 || role_rt_send(eg->rt, v.sched, &r) < 0)
            eg->closed_pending[k++] = v;
    }
    eg->n_closed_pending = k;
}

/* ---- job life ---- */

void egress_job_free_now(struct egress_job *j)
{
    egress_msg_fini(&j->msg);
    for (size_t i = 0; i < j->n_targets; i++) {
        free(j->targets[i].host);
        free(j->targets[i].addr);
    }
    free(j->targets);
    free(j->domain);
    free(j->idx);
    free(j->res);
    free(j->accepted);
    free(j->retry);
    free(j->txn_map);
    free(j->txn_addrs);
    free(j->site);
    free(j);
}

static void release_run(struct egress_job *j)
{
    if (j->have_msg) {
        egress_msg_fini(&j->msg);
        j->have_msg = false;
    }
    if (j->have_run) {
        shm_arena_free(j->eg->rt->seg.arena, j->run_off);
        j->have_run = false;
    }
}

void egress_job_free(struct egress_job *j)
{
    struct egress *eg = j->eg;

    release_run(j);
    if (j->prev)
        j->prev->next = j->next;
    else
        eg->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    eg->n_jobs--;
    if (j->lease && j->lease->job == j)
        j->lease->job = NULL;
    j->lease = NULL;
    if (j->dns_pending) {
        j->zombie = true;
        j->prev = NULL;
        j->next = eg->zombies;
        if (eg->zombies)
            eg->zombies->prev = j;
        eg->zombies = j;
        return;
    }
    egress_job_free_now(j);
}

/* dns_back - a DNS callback arrived: false when the job is gone and the callback must do nothing */
static bool dns_back(struct egress_job *j)
{
    j->dns_pending--;
    if (!j->zombie)
        return true;
    if (!j->dns_pending) {
        struct egress *eg = j->eg;
        if (j->prev)
            j->prev->next = j->next;
        else
            eg->zombies = j->next;
        if (j->next)
            j->next->prev = j->prev;
        egress_job_free_now(j);
    }
    return false;
}

static void send_done_simple(struct egress *eg, unsigned sched, const struct proto_deliver *d, uint16_t flags)
{
    struct proto_rec r = {.type = MSG_EGRESS_DELIVERY_DONE};
    r.body.done.msg_id_hi = d->msg_id_hi;
    r.body.done.msg_id_lo = d->msg_id_lo;
    r.body.done.lease = d->lease;
    r.body.done.rcpt_first = d->rcpt_first;
    r.body.done.flags = flags;
    if (role_rt_send(eg->rt, sched, &r) < 0)
        log_warn("delivery-done for lease %u lost: the ring to the scheduler is full", d->lease);
}

void egress_job_load(struct egress_job *j)
{
    struct egress *eg = j->eg;
    int spool = egress_spool_instance(eg);
    struct proto_rec r = {.type = MSG_EGRESS_MESSAGE_LOAD};

    j->token = ++eg->next_token;
    r.body.load.token = j->token;
    r.body.load.msg_id_hi = j->d.msg_id_hi;
    r.body.load.msg_id_lo = j->d.msg_id_lo;
    if (spool >= 0) {
        r.dst_gen = instance_gen(eg, spool);
        if (role_rt_send(eg->rt, (unsigned)spool, &r) == 0) {
            j->state = JOB_LOADING;
            j->load_sent_ns = clock_mono_ns();
            return;
        }
    }
    j->state = JOB_LOAD;
    j->retry_at_ns = clock_mono_ns() + EGRESS_RETRY_NS;
}

void egress_deliver_start(struct egress *eg, unsigned from, const struct proto_rec *rec)
{
    const struct proto_deliver *d = &rec->body.deliver;
    struct egress_lease *l;

    if (eg->rt->seg.inst[from].role != PROTO_NODE_ROLE_SCHEDULER) {
        log_warn("DELIVER from instance %u, which is not a scheduler: ignored", from);
        return;
    }
    l = lease_find(eg, d->lease);
    if (l && l->job) {
        log_warn("DELIVER on lease %u while an attempt runs on it: refused", d->lease);
        send_done_simple(eg, from, d, PROTO_DONE_F_REFUSED);
        return;
    }
    if (eg->draining || eg->n_jobs >= EGRESS_MAX_JOBS) {
        log_warn("DELIVER on lease %u refused: %s", d->lease, eg->draining ? "draining" : "too many attempts");
        send_done_simple(eg, from, d, PROTO_DONE_F_REFUSED | (l && l->conn ? 0 : PROTO_DONE_F_LEASE_CLOSED));
        if (l && !l->conn)
            egress_lease_remove(l);
        return;
    }
    if (!l) {
        l = xcalloc(1, sizeof(*l));
        l->eg = eg;
        l->id = d->lease;
        l->next = eg->leases;
        eg->leases = l;
    }
    l->sched = from;
    l->gen = d->lease_gen;
    struct egress_job *j = xcalloc(1, sizeof(*j));
    j->eg = eg;
    j->d = *d;
    j->sched = from;
    j->lease = l;
    l->job = j;
    l->idle_since_ns = 0;
    j->next = eg->jobs;
    if (eg->jobs)
        eg->jobs->prev = j;
    eg->jobs = j;
    eg->n_jobs++;
    egress_job_load(j);
}

/* ---- results ---- */

static void set_all(struct egress_job *j, uint8_t outcome, uint8_t cmd, int code, const char *enh, const char *text)
{
    for (size_t i = 0; i < j->n; i++)
        if (!j->res[i].outcome)
            egress_rcpt_set(&j->res[i], outcome, cmd, code, enh, text);
}

static void last_error(struct egress_job *j, int code, const char *enh, const char *text)
{
    j->last_code = code;
    snprintf(j->last_enh, sizeof(j->last_enh), "%s", enh ? enh : "");
    snprintf(j->last_text, sizeof(j->last_text), "%s", text ? text : "");
}

static void fail_all_transient_last(struct egress_job *j)
{
    /* a 5xx banner or EHLO refusal on every host is still a reason to try later, not to bounce */
    int code = j->last_code / 100 == 4 ? j->last_code : 0;
    set_all(j, PROTO_OUT_TRANSIENT, PROTO_CMD_CONNECT, code, code ? j->last_enh : "",
            j->last_text[0] ? j->last_text : "no host could be reached");
}

/* ---- destination ---- */

static void add_target(struct egress_job *j, const char *host, uint16_t port, bool literal)
{
    j->targets = xrealloc(j->targets, (j->n_targets + 1) * sizeof(*j->targets));
    j->targets[j->n_targets++] = (struct egress_target){.host = xstrdup(host), .port = port, .literal = literal};
}

static void connect_or_reuse(struct egress_job *j)
{
    struct egress_lease *l = j->lease;

    if (l && l->conn && egress_conn_idle(l->conn) && l->site && strcmp(l->site, j->site) == 0 &&
        l->source == j->d.source) {
        snprintf(j->mx, sizeof(j->mx), "%s", l->mx);
        snprintf(j->peer, sizeof(j->peer), "%s", egress_conn_peer(l->conn));
        j->state = JOB_SENDING;
        job_txn(j);
        return;
    }
    if (l)
        egress_lease_drop_conn(l);
    j->cur_target = j->cur_addr = 0;
    j->state = JOB_CONNECTING;
    job_try_next(j);
}

static void on_mx(void *arg, const struct dns_mx_result *res)
{
    struct egress_job *j = arg;
    struct egress *eg = j->eg;
    char text[EGRESS_REPLY_TEXT_MAX];

    if (!dns_back(j))
        return;
    if (res->status == DNS_OK && res->n_mx > 0) {
        for (size_t i = 0; i < res->n_mx; i++)
            add_target(j, res->mx[i].host, (uint16_t)eg->rt->cfg.egress_port, false);
        j->site = dns_site_name(res);
        if (!j->site)
            j->site = xstrdup(j->domain);
        connect_or_reuse(j);
        return;
    }
    if (res->status == DNS_OK || res->status == DNS_TEMPFAIL) {
        snprintf(text, sizeof(text), "MX lookup for %s failed: %s", j->domain, res->reason);
        set_all(j, PROTO_OUT_TRANSIENT, PROTO_CMD_CONNECT, 451, "4.4.3", text);
    } else if (res->status == DNS_NULL_MX) {
        snprintf(text, sizeof(text), "domain %s does not accept mail (null MX)", j->domain);
        set_all(j, PROTO_OUT_BOUNCE, PROTO_CMD_CONNECT, 556, "5.1.10", text);
    } else {
        snprintf(text, sizeof(text), "no mail host for %s: %s (%s)", j->domain, dns_status_name(res->status),
                 res->reason);
        set_all(j, PROTO_OUT_BOUNCE, PROTO_CMD_CONNECT, 550, "5.1.2", text);
    }
    egress_job_finish(j);
}

void egress_job_route(struct egress_job *j)
{
    struct egress *eg = j->eg;
    const struct cfg_route *rt = cfg_route_for(&eg->rt->cfg, j->domain);

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
        connect_or_reuse(j);
        return;
    }
    j->state = JOB_RESOLVING;
    j->dns_pending++;
    if (dns_resolve_mx(eg->dns, j->domain, on_mx, j) < 0) {
        j->dns_pending--;
        set_all(j, PROTO_OUT_TRANSIENT, PROTO_CMD_CONNECT, 451, "4.4.3", "resolver refused the lookup");
        egress_job_finish(j);
    }
}

static void on_host(void *arg, const struct dns_host_result *res)
{
    struct egress_job *j = arg;
    struct egress_target *t;

    if (!dns_back(j))
        return;
    t = &j->targets[j->cur_target];
    t->resolved = true;
    if (res->status == DNS_OK && res->n_addr > 0) {
        t->addr = xcalloc(res->n_addr, sizeof(*t->addr));
        memcpy(t->addr, res->addr, res->n_addr * sizeof(*t->addr));
        t->n_addr = res->n_addr;
    } else {
        char text[EGRESS_REPLY_TEXT_MAX];
        snprintf(text, sizeof(text), "address lookup for %s failed: %s", t->host, res->reason);
        last_error(j, 0, "", text);
    }
    j->state = JOB_CONNECTING;
    job_try_next(j);
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

/* job_try_next - the next address of the current host, then the next host (EGR-01) */
static void job_try_next(struct egress_job *j)
{
    struct egress *eg = j->eg;
    const struct cfg *cfg = &eg->rt->cfg;

    if (eg->draining && clock_mono_ns() >= eg->drain_soft_ns) {
        last_error(j, 0, "", "shutting down");
        j->cur_target = j->n_targets;
    }
    while (j->cur_target < j->n_targets) {
        struct egress_target *t = &j->targets[j->cur_target];
        if (!t->resolved) {
            if (t->literal) {
                t->resolved = true;
                t->addr = xcalloc(1, sizeof(*t->addr));
                if (literal_addr(t->host, t->port, t->addr))
                    t->n_addr = 1;
                else
                    last_error(j, 0, "", "route host is not an IP address");
                continue;
            }
            struct sockaddr_storage ss;
            if (literal_addr(t->host, t->port, &ss)) {
                /* a route host written as a bare IP: no lookup either */
                t->resolved = true;
                t->addr = xmalloc(sizeof(ss));
                *t->addr = ss;
                t->n_addr = 1;
                continue;
            }
            j->state = JOB_RESOLVING;
            j->dns_pending++;
            if (dns_resolve_host(eg->dns, t->host, on_host, j) == 0)
                return;
            j->dns_pending--;
            t->resolved = true;
            continue;
        }
        if (j->cur_addr >= t->n_addr) {
            j->cur_target++;
            j->cur_addr = 0;
            continue;
        }
        struct egress_conn_params p = {
            .addr = t->addr[j->cur_addr],
            .connect_timeout_ns = CLOCK_MS(cfg->egress_connect_timeout_ms),
            .banner_timeout_ns = CLOCK_MS(cfg->egress_banner_timeout_ms),
            .command_timeout_ns = CLOCK_MS(cfg->egress_command_timeout_ms),
            .data_timeout_ns = CLOCK_MS(cfg->egress_data_timeout_ms),
            .ehlo_name = cfg->hostname,
        };
        set_port(&p.addr, t->port);
        if (j->d.source < cfg->n_sources) {
            const struct cfg_source *src = &cfg->sources[j->d.source];
            p.bind_address = src->bind_address;
            if (src->ehlo_name && src->ehlo_name[0])
                p.ehlo_name = src->ehlo_name;
        }
        char err[EGRESS_REPLY_TEXT_MAX];
        struct egress_conn *c;
        egress_conn_addr_format(&p.addr, j->peer, sizeof(j->peer));
        snprintf(j->mx, sizeof(j->mx), "%s", t->host);
        j->state = JOB_CONNECTING;
        if (egress_conn_open(&eg->conns, &p, lease_on_event, lease_on_closed, j->lease, &c, err, sizeof(err)) == 0) {
            j->lease->conn = c;
            return;
        }
        last_error(j, 0, "", err);
        j->cur_addr++;
    }
    fail_all_transient_last(j);
    egress_job_finish(j);
}

/* ---- transactions ---- */

static void job_txn(struct egress_job *j)
{
    size_t n = 0;

    for (size_t i = 0; i < j->n; i++)
        if (!j->res[i].outcome) {
            j->txn_map[n] = i;
            j->txn_addrs[n] = j->msg.env.rcpts[j->idx[i]].addr;
            j->retry[i] = 0;
            j->accepted[i] = 0;
            n++;
        }
    if (n == 0) {
        egress_job_finish(j);
        return;
    }
    j->txn_n = n;
    j->n_txn++;
    j->txn_progress = false;
    unsigned flags = (j->msg.env.flags & SPOOL_REC_F_SMTPUTF8) ? EGRESS_SMTP_SEND_SMTPUTF8 : 0;
    int rc = egress_conn_send(j->lease->conn, j->msg.env.sender, j->txn_addrs, n, j->msg.body, j->msg.body_len,
                              flags);
    if (rc < 0) {
        char text[96];
        snprintf(text, sizeof(text), "transaction could not start: %s", strerror(-rc));
        set_all(j, PROTO_OUT_TRANSIENT, PROTO_CMD_CONNECT, 0, "", text);
        j->conn_failed = true;
        egress_job_finish(j);
    }
}

static void on_rcpt(struct egress_job *j, const struct egress_smtp_event *ev)
{
    if (ev->rcpt >= j->txn_n)
        return;
    size_t i = j->txn_map[ev->rcpt];
    struct egress_rcpt_res *r = &j->res[i];
    switch (ev->result) {
    case EGRESS_SMTP_OK:
        j->accepted[i] = 1;
        j->txn_progress = true;
        break;
    case EGRESS_SMTP_RETRY_NEW_TXN:
        j->retry[i] = 1;
        snprintf(r->text, sizeof(r->text), "%s", ev->text);
        snprintf(r->enhanced, sizeof(r->enhanced), "%s", ev->enhanced);
        r->code = (uint16_t)ev->code;
        break;
    case EGRESS_SMTP_PERMFAIL:
        egress_rcpt_set(r, PROTO_OUT_BOUNCE, PROTO_CMD_RCPT, ev->code, ev->enhanced, ev->text);
        j->txn_progress = true;
        break;
    default:
        egress_rcpt_set(r, PROTO_OUT_TRANSIENT, PROTO_CMD_RCPT, ev->code, ev->enhanced, ev->text);
        j->txn_progress = true;
        break;
    }
}

static void on_message_done(struct egress_job *j, const struct egress_smtp_event *ev)
{
    bool retry_left = false;

    for (size_t k = 0; k < j->txn_n; k++) {
        size_t i = j->txn_map[k];
        struct egress_rcpt_res *r = &j->res[i];
        if (j->accepted[i] && !r->outcome) {
            uint8_t out = ev->result == EGRESS_SMTP_OK         ? PROTO_OUT_DELIVERED
                          : ev->result == EGRESS_SMTP_PERMFAIL ? PROTO_OUT_BOUNCE
                                                               : PROTO_OUT_TRANSIENT;
            egress_rcpt_set(r, out, PROTO_CMD_DATA, ev->code, ev->enhanced, ev->text);
        } else if (r->outcome && ev->at_mail && r->code == ev->code && strcmp(r->text, ev->text) == 0) {
            /* the transaction failed at MAIL: every recipient carries MAIL's reply (a 421 to a RCPT
             * carries the same reply to every recipient too, yet it is not MAIL's) */
            r->command = PROTO_CMD_MAIL;
        } else if (!r->outcome && j->retry[i]) {
            retry_left = true;
        }
    }
    if (retry_left && j->txn_progress && j->n_txn < EGRESS_MAX_TXN && !j->conn_failed) {
        job_txn(j);
        return;
    }
    for (size_t i = 0; i < j->n; i++)
        if (!j->res[i].outcome)
            egress_rcpt_set(&j->res[i], PROTO_OUT_TRANSIENT, PROTO_CMD_RCPT, j->res[i].code, j->res[i].enhanced,
                            j->res[i].text[0] ? j->res[i].text : "not attempted");
    egress_job_finish(j);
}

static void lease_on_event(void *arg, struct egress_conn *c, const struct egress_smtp_event *ev)
{
    struct egress_lease *l = arg;
    struct egress_job *j = l->job;

    /* an idle connection (or one kept while the job resolves): its end comes through lease_on_closed */
    if (!j || c != l->conn || (j->state != JOB_CONNECTING && j->state != JOB_SENDING))
        return;
    switch (ev->type) {
    case EGRESS_SMTP_EV_READY:
        if (j->state != JOB_CONNECTING)
            break;
        free(l->site);
        l->site = xstrdup(j->site);
        l->source = j->d.source;
        snprintf(l->mx, sizeof(l->mx), "%s", j->mx);
        j->state = JOB_SENDING;
        job_txn(j);
        break;
    case EGRESS_SMTP_EV_RCPT:
        if (j->state == JOB_SENDING)
            on_rcpt(j, ev);
        break;
    case EGRESS_SMTP_EV_MESSAGE_DONE:
        if (j->state == JOB_SENDING)
            on_message_done(j, ev);
        break;
    case EGRESS_SMTP_EV_CONN_FAILED:
    case EGRESS_SMTP_EV_PROTOCOL_ERROR:
    case EGRESS_SMTP_EV_CLOSED:
        last_error(j, ev->code, ev->enhanced, ev->text);
        j->conn_failed = true;
        break;
    default:
        break;
    }
}

static void lease_on_closed(void *arg, struct egress_conn *c)
{
    struct egress_lease *l = arg;
    struct egress_job *j = l->job;

    if (l->conn == c) {
        l->conn = NULL;
        free(l->site);
        l->site = NULL;
    }
    if (!j) {
        /* the idle connection ended (server 421, EOF): the lease is free */
        egress_lease_closed_send(l->eg, l->sched, l->id, l->gen, 1);
        egress_lease_remove(l);
        return;
    }
    if (j->state == JOB_CONNECTING) {
        j->conn_failed = false;
        j->cur_addr++;
        job_try_next(j);
    } else if (j->state == JOB_SENDING) {
        /* lost mid-transaction: what is not decided may or may not have arrived; try again later */
        set_all(j, PROTO_OUT_TRANSIENT, PROTO_CMD_CONNECT, j->last_code / 100 == 4 ? j->last_code : 0,
                j->last_code / 100 == 4 ? j->last_enh : "", j->last_text[0] ? j->last_text : "connection lost");
        j->conn_failed = true;
        egress_job_finish(j);
    }
}

/* ---- report ---- */

static const char *pool_name(const struct cfg *cfg, uint16_t source)
{
    const char *name = "";
    unsigned hits = 0;
    for (size_t p = 0; p < cfg->n_pools; p++)
        for (uint32_t k = 0; k < cfg->pools[p].n; k++)
            if (cfg->pools[p].source[k] == source) {
                name = cfg->pools[p].name;
                hits++;
            }
    /* the DELIVER names the source, not the pool: only an unambiguous pool is reported */
    return hits == 1 ? name : "";
}

/* decide_lease - once, before the DONE: keep the connection idle, or close it and free the lease */
static void decide_lease(struct egress_job *j)
{
    struct egress_lease *l = j->lease;

    if (!l) {
        j->done_flags |= PROTO_DONE_F_LEASE_CLOSED;
        return;
    }
    if (l->conn && ((j->d.flags & PROTO_DELIVER_F_LAST) || j->conn_failed || j->eg->draining ||
                    !egress_conn_idle(l->conn)))
        egress_lease_drop_conn(l);
    if (!l->conn) {
        j->done_flags |= PROTO_DONE_F_LEASE_CLOSED;
        egress_lease_remove(l);
        return;
    }
    l->job = NULL;
    l->idle_since_ns = clock_mono_ns();
    j->lease = NULL;
}

void egress_job_finish(struct egress_job *j)
{
    if (j->state == JOB_REPORT || j->state == JOB_DONE_SEND)
        return;
    release_run(j);
    j->state = JOB_REPORT;
    egress_job_report(j);
}

void egress_job_report(struct egress_job *j)
{
    struct egress *eg = j->eg;
    const struct cfg *cfg = &eg->rt->cfg;
    int spool = egress_spool_instance(eg);

    if (j->n == 0) {
        decide_lease(j);
        j->state = JOB_DONE_SEND;
        egress_job_send_done(j);
        return;
    }
    const char *src = j->d.source < cfg->n_sources ? cfg->sources[j->d.source].name : "";
    struct egress_attempt a = {
        .msg_id_hi = j->d.msg_id_hi,
        .msg_id_lo = j->d.msg_id_lo,
        .timestamp_ms = (int64_t)(clock_real_ns() / 1000000u),
        .rcpt_first = j->d.rcpt_first,
        .str = {j->peer, j->site ? j->site : "", src, pool_name(cfg, j->d.source), j->mx},
        .n_rcpt = j->n,
        .rcpt = j->res,
    };
    size_t len = egress_attempt_size(&a);
    uint64_t off;
    if (spool < 0 || shm_arena_alloc(eg->rt->seg.arena, len, (uint16_t)eg->rt->self_idx, eg->rt->gen, &off) < 0) {
        j->retry_at_ns = clock_mono_ns() + EGRESS_RETRY_NS;
        return;
    }
    void *p = shm_arena_ptr(eg->rt->seg.arena, off, len);
    if (!p || egress_attempt_encode(&a, p, len) < 0)
        panic("attempt result of %zu bytes did not encode", len);
    uint32_t gen = instance_gen(eg, spool);
    shm_arena_give(eg->rt->seg.arena, off, (uint16_t)spool, gen);
    struct proto_rec r = {.type = MSG_EGRESS_ATTEMPT_RESULT, .dst_gen = gen};
    r.body.batch.arena_off = off;
    r.body.batch.len = len;
    r.body.batch.count = (uint32_t)j->n;
    if (role_rt_send(eg->rt, (unsigned)spool, &r) < 0) {
        shm_arena_free(eg->rt->seg.arena, off);
        j->retry_at_ns = clock_mono_ns() + EGRESS_RETRY_NS;
        return;
    }
    decide_lease(j);
    j->state = JOB_DONE_SEND;
    egress_job_send_done(j);
}

void egress_job_send_done(struct egress_job *j)
{
    struct proto_rec r = {.type = MSG_EGRESS_DELIVERY_DONE};
    uint16_t cnt[4] = {0};

    for (size_t i = 0; i < j->n; i++)
        if (j->res[i].outcome <= PROTO_OUT_BOUNCE)
            cnt[j->res[i].outcome]++;
    r.body.done.msg_id_hi = j->d.msg_id_hi;
    r.body.done.msg_id_lo = j->d.msg_id_lo;
    r.body.done.lease = j->d.lease;
    r.body.done.rcpt_first = j->d.rcpt_first;
    r.body.done.delivered = cnt[PROTO_OUT_DELIVERED];
    r.body.done.transient = cnt[PROTO_OUT_TRANSIENT];
    r.body.done.bounced = cnt[PROTO_OUT_BOUNCE];
    r.body.done.flags = j->done_flags;
    if (role_rt_send(j->eg->rt, j->sched, &r) < 0) {
        j->retry_at_ns = clock_mono_ns() + EGRESS_RETRY_NS;
        return;
    }
    log_debug("attempt %u on lease %u: %u delivered, %u transient, %u bounced%s", j->d.attempt, j->d.lease,
              cnt[PROTO_OUT_DELIVERED], cnt[PROTO_OUT_TRANSIENT], cnt[PROTO_OUT_BOUNCE],
              (j->done_flags & PROTO_DONE_F_LEASE_CLOSED) ? ", lease closed" : "");
    egress_job_free(j);
}

