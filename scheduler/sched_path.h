/*
 * sched_path - egress paths (ready queue per source + site), connection leases, egress workers
 *
 * A path is created the first time a message is placed on it; its options come from
 * hooks.path_config (defaults: connection_limit 32, max_deliveries_per_connection 1024,
 * max_ready 1024). sched_core_dispatch() hands READY messages to leases: first the path's idle
 * leases (connection reuse), then new leases while fewer than connection_limit are open, each
 * given to the live worker holding the fewest leases (ties rotate). A lease carries one
 * message at a time and at most max_deliveries_per_connection in all: the message that uses
 * the last one is delivered with last = true and the lease ends when its result arrives.
 * The worker ends an idle lease early with sched_lease_released() (idle timeout, broken
 * connection); a message still in flight on a released lease, or on any lease of a dead
 * worker, goes back to its scheduled queue due now, without counting an attempt.
 * Only paths that can make progress are visited, so dispatch is O(messages handed out).
 * Leases are named on the rings by (id, generation): sched_lease_get() refuses stale pairs.
 */
#ifndef RINGMAIL_SCHED_PATH_H
#define RINGMAIL_SCHED_PATH_H

#include "scheduler/sched_queue.h"

struct sched_lease {
    uint32_t id, gen;
    uint32_t worker;
    uint32_t uses; /* results received on this lease */
    struct sched_path *path;
    struct sched_msg *msg; /* in flight, or NULL when idle */
    struct sched_lease *w_next, *w_prev; /* the worker's leases */
    struct sched_lease *i_next, *i_prev; /* the path's idle leases */
};

struct sched_path {
    struct sched_site *site;
    uint32_t source;
    struct sched_path_options opt;
    struct sched_mlist ready;
    uint32_t in_flight, connections, idle;
    struct sched_lease *idle_head;
    struct sched_path *act_next, *act_prev;
    bool active;
    uint64_t delivered, transient, bounced;
};

struct sched_worker {
    bool alive;
    uint32_t load; /* leases held */
    struct sched_lease *leases;
};

void sched_path_options_default(struct sched_path_options *opt);
/* sched_path_options_set - new options (reload, SetConfig); open leases above a lowered limit drain */
void sched_path_options_set(struct sched_core *core, struct sched_path *path, const struct sched_path_options *opt);
const char *sched_path_source_name(const struct sched_core *core, const struct sched_path *path);
void sched_path_foreach(const struct sched_core *core, void (*cb)(void *arg, const struct sched_path *p), void *arg);

/* sched_worker_add - egress worker `worker` (its instance number) takes leases; idempotent */
void sched_worker_add(struct sched_core *core, uint32_t worker);
/* sched_worker_dead - its leases end, its in-flight messages are due now; -ENOENT if unknown */
int sched_worker_dead(struct sched_core *core, uint32_t worker, uint64_t now_ms);

/* sched_worker_drain - the worker is stopping: no new leases for it; the ones it holds finish (their
 * results still count) until sched_worker_dead(); -ENOENT if unknown or not alive */
int sched_worker_drain(struct sched_core *core, uint32_t worker);

/* sched_core_dispatch - hand up to max READY messages to leases; returns how many */
size_t sched_core_dispatch(struct sched_core *core, size_t max);
struct sched_lease *sched_lease_get(const struct sched_core *core, uint32_t id, uint32_t gen);
/* sched_lease_released - the worker closed the lease's connection */
void sched_lease_released(struct sched_core *core, struct sched_lease *lease, uint64_t now_ms);

/* ---- between sched_queue.c and sched_path.c only ---- */

/* sched_path_place - a message leaves the wheel or a waiting list for `site` */
void sched_path_place(struct sched_core *core, struct sched_msg *msg, struct sched_site *site, uint64_t now_ms);
/* sched_path_unready - take a READY message off its path */
void sched_path_unready(struct sched_core *core, struct sched_msg *msg);
void sched_path_free_all(struct sched_core *core);
void sched_msg_schedule(struct sched_core *core, struct sched_msg *msg, uint64_t due_ms);
/* sched_msg_retry - one more attempt failed: schedule after backoff, never past expiry */
void sched_msg_retry(struct sched_core *core, struct sched_msg *msg, uint64_t now_ms);
/* sched_msg_drop - forget a message that reached a final state */
void sched_msg_drop(struct sched_core *core, struct sched_msg *msg);
uint64_t sched_rng_next(uint64_t *state);

static inline void sched_mlist_push(struct sched_mlist *l, struct sched_msg *m)
{
    m->link.next = NULL;
    m->link.prev = l->tail;
    if (l->tail)
        l->tail->link.next = m;
    else
        l->head = m;
    l->tail = m;
    l->count++;
}

static inline void sched_mlist_unlink(struct sched_mlist *l, struct sched_msg *m)
{
    if (m->link.prev)
        m->link.prev->link.next = m->link.next;
    else
        l->head = m->link.next;
    if (m->link.next)
        m->link.next->link.prev = m->link.prev;
    else
        l->tail = m->link.prev;
    m->link.next = m->link.prev = NULL;
    l->count--;
}

static inline struct sched_msg *sched_mlist_pop(struct sched_mlist *l)
{
    struct sched_msg *m = l->head;
    if (m)
        sched_mlist_unlink(l, m);
    return m;
}

#endif
