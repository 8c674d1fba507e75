/*
 * egress_deliver - the records that start and feed a job: DELIVER from a scheduler, LOADED from the spool
 *
 * egress_deliver_start() checks the DELIVER (from a scheduler, lease free, room for one more job),
 * takes or creates the lease and starts the job's load (egress_job.c). egress_deliver_loaded()
 * matches the spool's answer to its job by token, decodes the message, picks the recipients of
 * the domain and routes the job (egress_route.c). egress_deliver_path() stores a path configuration
 * (egress_path.h). See egress.h for the whole flow.
 */
#include "egress/egress_job.h"

#include <errno.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/mem.h"
#include "egress/egress_attempt.h"

static void send_done_simple(struct egress *eg, unsigned sched, const struct proto_deliver *d, uint16_t flags)
{
    struct proto_rec r = {.type = MSG_EGRESS_DELIVERY_DONE};
    r.body.done.msg_id_hi = d->msg_id_hi;
    r.body.done.msg_id_lo = d->msg_id_lo;
    r.body.done.lease = d->lease;
    r.body.done.lease_gen = d->lease_gen;
    r.body.done.rcpt_first = d->rcpt_first;
    r.body.done.flags = flags;
    if (role_rt_send(eg->rt, sched, &r) < 0)
        log_warn("delivery-done for lease %u lost: the ring to the scheduler is full", d->lease);
}

void egress_deliver_start(struct egress *eg, unsigned from, const struct proto_rec *rec)
{
    const struct proto_deliver *d = &rec->body.deliver;
    struct egress_lease *l;

    if (shm_segment_role(&eg->rt->seg, from) != PROTO_NODE_ROLE_SCHEDULER) {
        log_warn("DELIVER from instance %u, which is not a scheduler: ignored", from);
        return;
    }
    l = egress_lease_find(eg, d->lease);
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
    j->pc = egress_path_get(&eg->paths, &eg->rt->cfg, d->path);
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
    int spool = egress_worker_spool_instance(eg);

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
    if (egress_attempt_msg_decode(run, ld->len, &j->msg, &why) < 0) {
        log_error("loaded message refused: %s", why);
        j->done_flags |= PROTO_DONE_F_LOCAL_ERROR;
        egress_job_finish(j);
        return;
    }
    j->have_msg = true;
    int n = egress_attempt_rcpt_select(&j->msg.env, j->d.rcpt_first, &j->idx, &j->domain);
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
    j->sent = xcalloc(j->n, 1);
    j->txn_map = xcalloc(j->n, sizeof(*j->txn_map));
    j->txn_addrs = xcalloc(j->n, sizeof(*j->txn_addrs));
    for (size_t i = 0; i < j->n; i++)
        j->res[i].index = j->idx[i];
    /* signed once per load, before any transaction: every recipient gets the same bytes */
    egress_dkim_apply(&eg->dkim, j->d.msg_id_hi, j->d.msg_id_lo, &j->msg.env, j->msg.body, j->msg.body_len, &j->wire,
                      &j->wire_len);
    egress_job_unpin(j);
    egress_route_start(j);
}

/* ---- path configurations ---- */

void egress_deliver_path(struct egress *eg, unsigned from, const struct proto_rec *rec)
{
    const struct proto_batch *b = &rec->body.batch;
    struct shm_arena *arena = eg->rt->seg.arena;
    const char *why = "arena range invalid";

    if (shm_segment_role(&eg->rt->seg, from) != PROTO_NODE_ROLE_SCHEDULER) {
        log_warn("path configuration from instance %u, which is not a scheduler: ignored", from);
        return;
    }
    void *run = shm_arena_ptr(arena, b->arena_off, b->len);
    if (run && b->count == 1 && egress_path_receive(&eg->paths, run, b->len, &why) == 0) {
        shm_arena_free(arena, b->arena_off);
        return;
    }
    if (run && b->count != 1)
        why = "count is not 1";
    proto_node_counter_add(eg->rt->self, PROTO_NODE_CTR_RING_BAD, 1);
    log_warn("path configuration from the scheduler dropped: %s", why);
    if (run)
        shm_arena_free(arena, b->arena_off);
}
