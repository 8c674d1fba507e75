/*
 * egress - the egress worker's state and the DELIVER flow
 *
 * egress_deliver_start() takes a MSG_SCHEDULER_MESSAGE_DELIVER; egress_deliver_loaded() the spool's
 * MSG_SPOOL_MESSAGE_LOADED; egress_deliver_path() a MSG_SCHEDULER_PATH_CONFIG, which precedes the
 * DELIVERs that name it. Each job runs under the path configuration its DELIVER names (timeouts per
 * SMTP phase, idle timeout, MX port, EHLO domain, recipients per transaction, prohibited and skipped
 * hosts, TLS policy; egress_path.h). A job then loads the message, picks its recipients, finds the
 * destination (route or MX, then addresses), reuses the lease's connection or opens one, runs the
 * transactions, and reports: one MSG_EGRESS_ATTEMPT_RESULT to the spool, then
 * MSG_EGRESS_DELIVERY_DONE to the scheduler. Sends that find a ring or the arena full are retried
 * from egress_worker_tick(); a result is never dropped.
 * Leases: one connection per lease id, kept idle between DELIVERs, closed after the idle timeout
 * (MSG_EGRESS_LEASE_CLOSED) or with PROTO_DELIVER_F_LAST / an error (PROTO_DONE_F_LEASE_CLOSED).
 * egress_worker_drain() (SIGTERM): no new work, in-flight attempts finish within a bound, idle
 * connections QUIT; true once nothing is left.
 * Files: egress_worker.c (set-up, time, drain), egress_deliver.c (the DELIVER and LOADED records),
 * egress_job.c (an attempt's life, transactions, report), egress_dkim.c (DKIM signing), egress_path.c (path configurations), egress_route.c (route or MX, addresses,
 * connecting), egress_lease.c (leases and their connections), egress_conn.c and egress_smtp.c (the
 * SMTP client), egress_tls.c (outbound STARTTLS: contexts, sessions, broken-TLS memory),
 * egress_attempt.c (the attempt result's payload).
 */
#ifndef RINGMAIL_EGRESS_H
#define RINGMAIL_EGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "dns/dns.h"
#include "rt/role_rt.h"
#include "egress/egress_conn.h"
#include "egress/egress_dkim.h"
#include "egress/egress_path.h"
#include "egress/egress_tls.h"

#define EGRESS_MAX_JOBS 4096

struct egress_job;
struct egress_lease;

struct egress_closed {
    unsigned sched;
    uint32_t lease, gen, reason;
};

struct egress {
    struct role_rt *rt;
    struct dns_resolver *dns;
    struct egress_conn_set conns;
    struct egress_paths paths; /* path configurations from the scheduler (egress_path.h) */
    struct egress_dkim dkim;   /* DKIM signers and recent signatures (egress_dkim.h) */
    struct egress_tls tls;     /* client contexts, TLS sessions, broken-TLS sites (egress_tls.h) */
    struct egress_lease *leases;
    struct egress_job *jobs;
    struct egress_job *zombies; /* finished, a DNS callback still due */
    unsigned n_jobs;
    uint64_t next_token;
    /* LEASE_CLOSED records that found the ring full */
    struct egress_closed *closed_pending; /* LEASE_CLOSED records a full ring refused, in order */
    unsigned n_closed_pending, cap_closed_pending;
    bool draining;
    uint64_t drain_soft_ns, drain_hard_ns; /* abort in-flight work at soft, give up at hard */
};

void egress_worker_init(struct egress *eg, struct role_rt *rt);
void egress_worker_fini(struct egress *eg);
void egress_worker_tick(struct egress *eg, uint64_t now_ns);
/* egress_worker_shed - memory is low: idle connections closed, TLS sessions and cached DKIM signatures dropped */
void egress_worker_shed(struct egress *eg);
/* egress_worker_reload - [egress] TLS keys again (CA file, client certificate); kept when they fail */
void egress_worker_reload(struct egress *eg);
bool egress_worker_drain(struct egress *eg);
/* egress_worker_spool_instance - the spool's instance index, -1 while there is none */
int egress_worker_spool_instance(struct egress *eg);
void egress_deliver_start(struct egress *eg, unsigned from, const struct proto_rec *rec);
void egress_deliver_loaded(struct egress *eg, unsigned from, const struct proto_rec *rec);
/* egress_deliver_path - a MSG_SCHEDULER_PATH_CONFIG: the run is read, stored (or logged and dropped), freed */
void egress_deliver_path(struct egress *eg, unsigned from, const struct proto_rec *rec);

#endif
