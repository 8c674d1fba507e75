/*
 * sched_hold - path hold timers, and the tables of path and queue suspensions
 *
 * A path held by a rate (throttled_until_ms) or a suspension (suspended_until_ms) sits in the
 * core's min-heap keyed by the later of the two; sched_core_advance() ends the holds due and puts
 * those paths back on the active list, and sched_core_next_due() includes the heap's top, exactly
 * (no wheel granularity), so the loop sleeps until the very moment a throttle allows. O(log paths
 * held) per hold. The suspension tables hold what sched_path_suspend() and sched_queue_suspend()
 * set, so paths and queues created later pick them up; expired entries are dropped when the
 * tables are listed or changed.
 */
#ifndef RINGMAIL_SCHED_HOLD_H
#define RINGMAIL_SCHED_HOLD_H

#include "scheduler/sched_core.h"

/* sched_hold_arm - after a change of the path's throttled/suspended moments: (re)arm or disarm */
void sched_hold_arm(struct sched_core *core, struct sched_path *path);
/* sched_hold_advance - end every hold due by now_ms (the paths are updated) */
void sched_hold_advance(struct sched_core *core, uint64_t now_ms);
/* sched_hold_next_due - the earliest hold's end, SCHED_TIMER_NEVER when none */
uint64_t sched_hold_next_due(const struct sched_core *core);

/* sched_hold_path_set - record (until_ms > now) or drop the suspension of (source, site) */
void sched_hold_path_set(struct sched_core *core, const char *source, const char *site, uint64_t until_ms);
/* sched_hold_path_until - the suspension recorded for (source, site), 0 when none */
uint64_t sched_hold_path_until(const struct sched_core *core, const char *source, const char *site);
size_t sched_hold_path_list(struct sched_core *core, const struct sched_path_hold **out);

/* sched_hold_queue_set - record or drop (until_ms 0 or past) a queue suspension; domain lowercase */
void sched_hold_queue_set(struct sched_core *core, const char *domain, const char *tenant, const char *campaign,
                          uint64_t until_ms);
/* sched_hold_queue_until - the latest suspension matching a queue's parts (lengths, not terminated), 0 when none */
uint64_t sched_hold_queue_until(const struct sched_core *core, const char *domain, const char *tenant, size_t tlen,
                                const char *campaign, size_t clen);
size_t sched_hold_queue_list(struct sched_core *core, const struct sched_queue_hold **out);

/* sched_hold_free - the tables and the heap (sched_core_free) */
void sched_hold_free(struct sched_core *core);
/* sched_hold_check - the heap's order and indexes; 0 or -EINVAL */
int sched_hold_check(const struct sched_core *core);

#endif
