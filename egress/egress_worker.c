/*
 * egress_worker - the egress worker's set-up, time and drain (see egress.h)
 */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "egress/egress_job.h"

int egress_worker_spool_instance(struct egress *eg)
{
    return shm_segment_instance_of(&eg->rt->seg, PROTO_NODE_ROLE_SPOOL, 0);
}

/* ---- time ---- */

/* close_idle - QUIT the idle connections past their idle timeout (every idle one with `all`); the
 * scheduler is told each lease is free */
static size_t close_idle(struct egress *eg, uint64_t now, bool all)
{
    size_t n = 0;
    struct egress_lease *l, *ln;
    for (l = eg->leases; l; l = ln) {
        ln = l->next;
        if (l->job || !l->conn || !l->idle_since_ns)
            continue;
        if (all || now - l->idle_since_ns > l->idle_timeout_ns) {
            unsigned sched = l->sched;
            uint32_t id = l->id, gen = l->gen;
            egress_lease_drop_conn(l);
            egress_lease_remove(l);
            egress_lease_closed_send(eg, sched, id, gen, 0);
            n++;
        }
    }
    return n;
}

void egress_worker_shed(struct egress *eg)
{
    size_t conns = close_idle(eg, clock_mono_ns(), true);
    size_t sessions = egress_tls_sessions_drop(&eg->tls);
    egress_dkim_shed(&eg->dkim);
    if (eg->n_closed_pending)
        egress_lease_closed_flush(eg);
    log_info("memory is low: %zu idle connections closed, %zu TLS sessions and the DKIM signatures dropped", conns,
             sessions);
}

void egress_worker_tick(struct egress *eg, uint64_t now)
{
    struct egress_job *j, *jn;

    egress_conn_tick(&eg->conns, now);
    for (j = eg->jobs; j; j = jn) {
        jn = j->next;
        if (j->state == JOB_LOAD && now >= j->retry_at_ns)
            egress_job_load(j);
        else if (j->state == JOB_LOADING && now - j->load_sent_ns > EGRESS_LOAD_RESEND_NS)
            egress_job_load(j);
        else if (j->state == JOB_REPORT && now >= j->retry_at_ns)
            egress_job_report(j);
        else if (j->state == JOB_DONE_SEND && now >= j->retry_at_ns)
            egress_job_send_done(j);
    }
    close_idle(eg, now, eg->draining);
    if (eg->n_closed_pending)
        egress_lease_closed_flush(eg);
    if (eg->draining && now >= eg->drain_soft_ns) {
        /* in-flight attempts had their time: end them now, their results still go out */
        for (j = eg->jobs; j; j = jn) {
            jn = j->next;
            if (j->lease && j->lease->conn && (j->state == JOB_CONNECTING || j->state == JOB_SENDING))
                egress_conn_abort(j->lease->conn, "shutting down");
        }
    }
}

bool egress_worker_drain(struct egress *eg)
{
    uint64_t now = clock_mono_ns();

    if (!eg->draining) {
        uint64_t t = CLOCK_MS(eg->rt->cfg.drain_timeout_ms);
        eg->draining = true;
        eg->drain_soft_ns = now + t / 2;
        eg->drain_hard_ns = now + t * 3 / 4;
        egress_worker_tick(eg, now);
    }
    if (eg->n_jobs == 0 && eg->conns.n == 0 && eg->n_closed_pending == 0)
        return true;
    if (now >= eg->drain_hard_ns) {
        log_warn("drain: giving up with %u attempts and %u connections left", eg->n_jobs, eg->conns.n);
        return true;
    }
    return false;
}

/* ---- set-up ---- */

void egress_worker_init(struct egress *eg, struct role_rt *rt)
{
    char *err = NULL;
    const struct cfg *cfg = &rt->cfg;

    memset(eg, 0, sizeof(*eg));
    eg->rt = rt;
    egress_conn_set_init(&eg->conns, &rt->evl);
    egress_path_table_init(&eg->paths);
    egress_dkim_init(&eg->dkim, cfg);
    struct dns_config dc = {
        .servers = cfg->egress_resolver && cfg->egress_resolver[0] ? cfg->egress_resolver : NULL,
        .timeout_ms = (unsigned)(cfg->egress_dns_timeout_ms > 600000 ? 600000 : cfg->egress_dns_timeout_ms),
    };
    eg->dns = dns_resolver_new(&rt->evl, &dc, &err);
    if (!eg->dns)
        fatal("DNS resolver: %s", err ? err : "could not be created");
    if (egress_tls_init(&eg->tls, cfg, &err) < 0)
        fatal("outbound TLS: %s", err ? err : "no client context");
}

void egress_worker_reload(struct egress *eg)
{
    struct egress_tls fresh;
    char *err = NULL;

    if (egress_tls_init(&fresh, &eg->rt->cfg, &err) < 0) {
        log_error("reload: outbound TLS keeps its previous settings: %s", err ? err : "no client context");
        free(err);
        return;
    }
    /* sessions were made under the old contexts (and CA set): not resumed under the new ones; the
     * broken-TLS memory stays. Open connections keep their contexts (each conn holds a reference). */
    for (size_t i = 0; i < EGRESS_TLS_BROKEN; i++) {
        fresh.broken[i] = eg->tls.broken[i];
        eg->tls.broken[i] = (struct egress_tls_broken){0};
    }
    egress_tls_fini(&eg->tls);
    eg->tls = fresh;
}

void egress_worker_fini(struct egress *eg)
{
    struct egress_job *j, *jn;

    for (j = eg->jobs; j; j = jn) {
        jn = j->next;
        egress_job_free(j);
    }
    while (eg->leases) {
        if (eg->leases->conn)
            egress_lease_drop_conn(eg->leases);
        egress_lease_remove(eg->leases);
    }
    egress_conn_close_all(&eg->conns);
    dns_resolver_free(eg->dns); /* drops the callbacks the zombies waited for */
    eg->dns = NULL;
    while (eg->zombies) {
        j = eg->zombies;
        eg->zombies = j->next;
        egress_job_free_now(j);
    }
    for (int i = 0; i < 8; i++)
        evl_run_once(&eg->rt->evl, false);
    free(eg->closed_pending);
    egress_path_table_fini(&eg->paths);
    egress_dkim_fini(&eg->dkim);
    egress_tls_fini(&eg->tls);
}
