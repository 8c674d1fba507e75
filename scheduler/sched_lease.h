/*
 * sched_lease - connection leases: an egress worker's permission to carry a path's messages
 *
 * sched_core_dispatch() hands READY messages to leases: first the path's idle leases
 * (connection reuse), then new leases while fewer than connection_limit are open, each
 * given to the live worker holding the fewest leases (ties rotate, sched_worker.h). A lease
 * carries one message at a time and at most max_deliveries_per_connection in all: the message
 * that uses the last one is delivered with last = true and the lease ends when its result
 * arrives. The worker ends an idle lease early with sched_lease_released() (idle timeout,
 * broken connection); a message still in flight on a released lease, or on any lease of a
 * dead worker, goes back to its scheduled queue due now, without counting an attempt.
 * Leases are named on the rings by (id, generation): sched_lease_get() refuses stale pairs.
 */
#ifndef RINGMAIL_SCHED_LEASE_H
#define RINGMAIL_SCHED_LEASE_H

#include "scheduler/sched_core.h"

struct sched_lease {
    uint32_t id, gen;
    uint32_t worker;
    uint32_t uses; /* results received on this lease */
    struct sched_path *path;
    struct sched_msg *msg; /* in flight, or NULL when idle */
    struct sched_lease *w_next, *w_prev; /* the worker's leases */
    struct sched_lease *i_next, *i_prev; /* the path's idle leases */
    bool aborting; /* the operator aborted its connection while a message was on it: it ends with the result */
};

struct sched_lease *sched_lease_get(const struct sched_core *core, uint32_t id, uint32_t gen);
/* sched_lease_released - the worker closed the lease's connection; `error`: it closed on an error
 * (the egress's LEASE_CLOSED reason 1, or a connection that failed with a transient result),
 * which counts towards the path's consecutive_connection_failures_before_delay */
void sched_lease_released(struct sched_core *core, struct sched_lease *lease, bool error, uint64_t now_ms);
/* sched_lease_closed_by_worker - the worker's LEASE_CLOSED (`error`: reason 1). A worker closes only a lease
 * without an attempt, so one that arrives while a message is in flight on the lease crossed our DELIVER: the
 * worker had let the idle lease go, then took the DELIVER on a new connection under the same lease. That
 * lease lives on until the attempt's result (false returned). Ending it would free the slot for another
 * message the worker refuses (the lease is busy there) and make the message in flight due again: delivered
 * twice, its first result dropped as stale. True: the lease ended (sched_lease_released). */
bool sched_lease_closed_by_worker(struct sched_core *core, struct sched_lease *lease, bool error, uint64_t now_ms);

/* ---- between the core's files only ---- */

/* sched_lease_take - a lease for the path's next message: an idle one, else a new one while the
 * path may open another connection (sched_path_can_open) and a worker is alive; NULL when there is
 * none. A new lease counts in the path's connections and in every named limit of the path. */
struct sched_lease *sched_lease_take(struct sched_core *core, struct sched_path *path);
/* sched_lease_idle - the lease's message got its result: the lease goes idle, or ends when used up */
void sched_lease_idle(struct sched_core *core, struct sched_lease *lease, uint64_t now_ms);
/* sched_lease_end - give the slot back; a message still on it is due again now */
void sched_lease_end(struct sched_core *core, struct sched_lease *lease, uint64_t now_ms);

#endif
