/*
 * sched_limit - named connection limits, message throttles and source-selection rates
 *
 * A named object is interned by (kind, name) in the core the first time a path's options name it
 * and lives until sched_core_free(); every path naming it shares it (KumoMTA's
 * additional_connection_limits / additional_message_rate_throttles /
 * additional_source_selection_rates, and the provider_connection_limit / provider_max_message_rate
 * a provider shares over its sites). Its limit or rate is whatever the last path options that named
 * it said (last writer wins: a reload or SetConfig that sets it through one path sets it for all).
 * A named connection limit counts the leases open on every path naming it (from lease open until
 * its close is reported); a path that could open a lease but for a full named limit waits on that
 * limit's FIFO and is woken when a lease of any path naming the limit closes (or the limit is raised).
 * The slot a close frees is reserved for the woken path (so a busy path of the same limit cannot
 * take it first and starve the others): the reservation ends when that path opens its lease, or
 * goes inactive without opening one (then the next waiter is woken).
 * Throttles and source rates are GCRA (sched_throttle.h), taken once per message or pick.
 */
#ifndef RINGMAIL_SCHED_LIMIT_H
#define RINGMAIL_SCHED_LIMIT_H

#include "scheduler/sched_core.h"

struct sched_named {
    struct sched_name n;       /* first: the name table's key */
    uint64_t limit;            /* SCHED_NAMED_LIMIT: connections at once (>= 1) */
    uint64_t connections;      /* SCHED_NAMED_LIMIT: leases open on the paths naming it */
    uint64_t reserved;         /* SCHED_NAMED_LIMIT: slots held for woken paths (reserved_on) */
    struct sched_throttle thr; /* SCHED_NAMED_THROTTLE, SCHED_NAMED_SOURCE_RATE */
    struct sched_path *wait_head, *wait_tail; /* SCHED_NAMED_LIMIT: paths held by it */
    uint32_t paths;            /* paths naming it */
    uint64_t waits;            /* times a path was held by it */
};

/* sched_limit_find - the named object of that kind, NULL when no path named it yet */
const struct sched_named *sched_limit_find(const struct sched_core *core, enum sched_named_kind kind,
                                           const char *name);
/* sched_limit_foreach - every named object of a kind (status) */
void sched_limit_foreach(const struct sched_core *core, enum sched_named_kind kind,
                         void (*cb)(void *arg, const struct sched_named *n), void *arg);

/* ---- between the core's files only ---- */

/* sched_limit_get - the named object, created when new (limit 1, no rate) */
struct sched_named *sched_limit_get(struct sched_core *core, enum sched_named_kind kind, const char *name);
/* sched_limit_room - n has room for another lease of path (its own reservation counts as room) */
bool sched_limit_room(const struct sched_named *n, const struct sched_path *path);
/* sched_limit_opened - the path opened a lease: its reservation, if any, is used */
void sched_limit_opened(struct sched_path *path);
/* sched_limit_release - the path will not use its reservation: the next waiter is woken */
void sched_limit_release(struct sched_core *core, struct sched_path *path);
/* sched_limit_wait - the path waits for room in n (it is not on any other limit's list) */
void sched_limit_wait(struct sched_core *core, struct sched_named *n, struct sched_path *path);
/* sched_limit_unwait - the path leaves the list it waits on, if any */
void sched_limit_unwait(struct sched_path *path);
/* sched_limit_kick - wake as many waiting paths as n has room for */
void sched_limit_kick(struct sched_core *core, struct sched_named *n);

#endif
