/*
 * egress_lease - leases, their connections and LEASE_CLOSED records (contract in egress_lease.h)
 *
 * The connection of a lease belongs to the lease; the lease forwards its events to its job.
 */
#include "egress/egress_lease.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/mem.h"
#include "common/proto_rebind.h"
#include "egress/egress_job.h"
#include "egress/egress_route.h"

struct egress_lease *egress_lease_find(struct egress *eg, uint32_t id)
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

void egress_lease_on_event(void *arg, struct egress_conn *c, const struct egress_smtp_event *ev)
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
        j->tls = *egress_conn_tls(c);
        j->state = JOB_SENDING;
        egress_job_txn(j);
        break;
    case EGRESS_SMTP_EV_RCPT:
        if (j->state == JOB_SENDING)
            egress_job_on_rcpt(j, ev);
        break;
    case EGRESS_SMTP_EV_MESSAGE_DONE:
        if (j->state == JOB_SENDING)
            egress_job_on_message_done(j, ev);
        break;
    case EGRESS_SMTP_EV_CONN_FAILED:
    case EGRESS_SMTP_EV_PROTOCOL_ERROR:
    case EGRESS_SMTP_EV_CLOSED:
        egress_job_last_error(j, ev->code, ev->enhanced, ev->text);
        j->conn_failed = true;
        break;
    default:
        break;
    }
}

void egress_lease_on_closed(void *arg, struct egress_conn *c)
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
        egress_route_next(j);
    } else if (j->state == JOB_SENDING) {
        /* lost mid-transaction: what is not decided may or may not have arrived; try again later */
        egress_job_set_all(j, PROTO_OUT_TRANSIENT, PROTO_CMD_CONNECT, j->last_code / 100 == 4 ? j->last_code : 0,
                           j->last_code / 100 == 4 ? j->last_enh : "",
                           j->last_text[0] ? j->last_text : "connection lost");
        j->conn_failed = true;
        egress_job_finish(j);
    }
}

void egress_lease_abort(struct egress *eg, unsigned from, const struct proto_rec *rec)
{
    struct proto_abort a;
    if (shm_segment_role(&eg->rt->seg, from) != PROTO_NODE_ROLE_SCHEDULER || !proto_rebind_abort_check(rec, &a)) {
        proto_node_counter_add(eg->rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        log_warn("connection abort from instance %u refused (not the scheduler, or malformed)", from);
        return;
    }
    struct egress_lease *l = egress_lease_find(eg, a.lease);
    if (!l || l->gen != a.lease_gen || l->sched != from) {
        log_debug("abort of lease %u/%u: not held here (it ended)", a.lease, a.lease_gen);
        return;
    }
    struct egress_job *j = l->job;
    log_info("lease %u (%s): connection aborted by the operator%s", l->id, l->site ? l->site : "-",
             j ? ", its attempt is cut short" : "");
    if (!j) {
        egress_lease_drop_conn(l); /* QUIT */
        egress_lease_closed_send(eg, l->sched, l->id, l->gen, 0);
        egress_lease_remove(l);
        return;
    }
    l->aborted = true;
    j->done_flags |= PROTO_DONE_F_ABORTED;
    /* mid-transaction: what has no final reply becomes a transient failure (egress_lease_on_closed);
     * a job still loading or resolving has no connection yet: its lease closes after it (decide_lease) */
    if (l->conn && (j->state == JOB_CONNECTING || j->state == JOB_SENDING))
        egress_conn_abort(l->conn, "connection aborted by the operator");
}
