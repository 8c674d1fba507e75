/*
 * egress_worker - the spool's answers, time, drain and set-up of the egress worker (see egress.h)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "egress/egress_job.h"

/* ---- the spool's answer ---- */

static struct egress_job *job_by_token(struct egress *eg, uint64_t token)
{
    for (struct egress_job *j = eg->jobs; j; j = j->next)
        if (j->state == JOB_LOADING && j->token == token)
            return j;
    return NULL;
}

void egress_deliver_loaded(struct egress *eg, unsigned from, const struct proto_rec *rec)
{
    const struct proto_loaded *ld = &rec->body.loaded;
    struct shm_arena *arena = eg->rt->seg.arena;
    const char *why = NULL;
    int spool = egress_spool_instance(eg);

    if (spool < 0 || from != (unsigned)spool)
        return;
    void *run = ld->status == 0 ? shm_arena_ptr(arena, ld->arena_off, ld->len) : NULL;
    struct egress_job *j = job_by_token(eg, ld->token);
    if (!j) {
        /* an answer we stopped waiting for: its run is ours to free all the same */
        if (run)
            shm_arena_free(arena, ld->arena_off);
        return;
    }
    if (ld->status == -ENOMEM) {
        j->state = JOB_LOAD;
        j->retry_at_ns = clock_mono_ns() + EGRESS_LOAD_RETRY_NS;
        return;
    }
    if (ld->status != 0 || !run) {
        if (ld->status != -ENOENT) {
            log_warn("message load failed (status %d, run %s)", ld->status, run ? "valid" : "invalid");
            j->done_flags |= PROTO_DONE_F_LOCAL_ERROR;
        }
        egress_job_finish(j);
        return;
    }
    j->have_run = true;
    j->run_off = ld->arena_off;
    if (egress_msg_decode(run, ld->len, &j->msg, &why) < 0) {
        log_error("loaded message refused: %s", why);
        j->done_flags |= PROTO_DONE_F_LOCAL_ERROR;
        egress_job_finish(j);
        return;
    }
    j->have_msg = true;
    int n = egress_rcpt_select(&j->msg.env, j->d.rcpt_first, &j->idx, &j->domain);
    if (n <= 0) {
        if (n < 0)
            log_warn("DELIVER names recipient %u of a message with %u", j->d.rcpt_first, j->msg.env.rcpt_count);
        egress_job_finish(j);
        return;
    }
    j->n = (size_t)n;
    j->res = xcalloc(j->n, sizeof(*j->res));
    j->accepted = xcalloc(j->n, 1);
    j->retry = xcalloc(j->n, 1);
    j->txn_map = xcalloc(j->n, sizeof(*j->txn_map));
    j->txn_addrs = xcalloc(j->n, sizeof(*j->txn_addrs));
    for (size_t i = 0; i < j->n; i++)
        j->res[i].index = j->idx[i];
    egress_job_route(j);
}

/* ---- time ---- */

void egress_deliver_tick(struct egress *eg, uint64_t now)
{
    const struct cfg *cfg = &eg->rt->cfg;
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
    struct egress_lease *l, *ln;
    for (l = eg->leases; l; l = ln) {
        ln = l->next;
        if (l->job || !l->conn || !l->idle_since_ns)
            continue;
        if (eg->draining || now - l->idle_since_ns > CLOCK_MS(cfg->egress_idle_timeout_ms)) {
            unsigned sched = l->sched;
            uint32_t id = l->id, gen = l->gen;
            egress_lease_drop_conn(l);
            egress_lease_remove(l);
            egress_lease_closed_send(eg, sched, id, gen, 0);
        }
    }
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

bool egress_deliver_drain(struct egress *eg)
{
    uint64_t now = clock_mono_ns();

    if (!eg->draining) {
        uint64_t t = CLOCK_MS(eg->rt->cfg.drain_timeout_ms);
        eg->draining = true;
        eg->drain_soft_ns = now + t / 2;
        eg->drain_hard_ns = now + t * 3 / 4;
        egress_deliver_tick(eg, now);
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

void egress_init(struct egress *eg, struct role_rt *rt)
{
    char *err = NULL;
    const struct cfg *cfg = &rt->cfg;

    memset(eg, 0, sizeof(*eg));
    eg->rt = rt;
    egress_conn_set_init(&eg->conns, &rt->evl);
    struct dns_config dc = {
        .servers = cfg->egress_resolver && cfg->egress_resolver[0] ? cfg->egress_resolver : NULL,
        .timeout_ms = (unsigned)(cfg->egress_dns_timeout_ms > 600000 ? 600000 : cfg->egress_dns_timeout_ms),
    };
    eg->dns = dns_resolver_new(&rt->evl, &dc, &err);
    if (!eg->dns)
        fatal("DNS resolver: %s", err ? err : "could not be created");
}

void egress_fini(struct egress *eg)
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
}
