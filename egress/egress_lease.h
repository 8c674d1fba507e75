/*
 * egress_lease - the egress side of a scheduler lease: the connection kept between DELIVERs
 *
 * One lease per lease id the scheduler hands out; it owns its connection (idle between DELIVERs,
 * closed after the idle timeout or when the scheduler or an error ends the lease) and forwards the
 * connection's events to the job running on it. Closing a lease the scheduler did not end itself
 * sends MSG_EGRESS_LEASE_CLOSED; records a full ring refused wait, in order, in eg->closed_pending.
 * Internal to the egress library.
 */
#ifndef RINGMAIL_EGRESS_LEASE_H
#define RINGMAIL_EGRESS_LEASE_H

#include "egress/egress.h"

struct egress_lease {
    struct egress_lease *next;
    struct egress *eg;
    uint32_t id;
    uint32_t gen; /* lease generation of the last DELIVER: names the lease in LEASE_CLOSED */
    unsigned sched;
    struct egress_conn *conn;
    char *site; /* of the open connection */
    uint16_t source;
    char mx[DNS_NAME_MAX + 1];
    struct egress_job *job;
    uint64_t idle_since_ns;
    uint64_t idle_timeout_ns; /* of the path configuration its last job ran under */
    bool aborted;             /* the operator aborted it (abort-ready-q-conn): closed after its job */
};

struct egress_lease *egress_lease_find(struct egress *eg, uint32_t id);
void egress_lease_remove(struct egress_lease *l);
/* egress_lease_drop_conn - the lease lets its connection go: QUIT, nobody listens to it any more */
void egress_lease_drop_conn(struct egress_lease *l);
void egress_lease_closed_send(struct egress *eg, unsigned sched, uint32_t lease, uint32_t gen, uint32_t reason);
void egress_lease_closed_flush(struct egress *eg);
/* egress_lease_on_event, egress_lease_on_closed - the lease's connection callbacks (arg: the lease) */
void egress_lease_on_event(void *arg, struct egress_conn *c, const struct egress_smtp_event *ev);
void egress_lease_on_closed(void *arg, struct egress_conn *c);
/* egress_lease_abort - MSG_SCHEDULER_LEASE_ABORT: an idle lease QUITs and is closed; a busy one's connection
 * is closed now (what got no final reply is a transient failure) and its DONE carries PROTO_DONE_F_ABORTED.
 * A lease this worker does not hold for that scheduler under that generation is left alone (it ended). */
void egress_lease_abort(struct egress *eg, unsigned from, const struct proto_rec *rec);

#endif
