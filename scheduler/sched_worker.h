/*
 * sched_worker - egress workers as the core sees them: alive or not, and the leases each holds
 *
 * Workers are known by their instance number. A draining worker gets no new leases while the
 * ones it holds finish; a dead one loses its leases (sched_lease.h).
 */
#ifndef RINGMAIL_SCHED_WORKER_H
#define RINGMAIL_SCHED_WORKER_H

#include "scheduler/sched_core.h"

struct sched_worker {
    bool alive;
    uint32_t load; /* leases held */
    struct sched_lease *leases;
};

/* sched_worker_add - egress worker `worker` (its instance number) takes leases; idempotent */
void sched_worker_add(struct sched_core *core, uint32_t worker);
/* sched_worker_dead - its leases end, its in-flight messages are due now; -ENOENT if unknown */
int sched_worker_dead(struct sched_core *core, uint32_t worker, uint64_t now_ms);

/* sched_worker_drain - the worker is stopping: no new leases for it; the ones it holds finish (their
 * results still count) until sched_worker_dead(); -ENOENT if unknown or not alive */
int sched_worker_drain(struct sched_core *core, uint32_t worker);

/* ---- between the core's files only ---- */

/* sched_worker_pick - the least loaded live worker for a new lease (ties rotate); -1 when none is alive */
int64_t sched_worker_pick(struct sched_core *core);

#endif
