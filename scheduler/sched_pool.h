/*
 * sched_pool - egress pools: weighted sets of egress sources, picked by smooth weighted round robin
 *
 * Algorithm (the "smooth" weighted round robin nginx uses for upstreams): every member keeps a
 * running score. On each pick every member's score grows by its weight, the member with the
 * highest score wins (the earliest member on a tie) and the winner's score drops by the sum
 * of all weights. Over any run of W picks (W = sum of weights) each member is picked exactly
 * weight times, and picks of one member are spread out instead of bunched (3:1 gives
 * a a b a, a a b a, ...). A pick costs O(members); pools hold a handful of sources.
 * sched_pool_set() with weight 0 removes a member; any change resets the scores, so the
 * exact-share property starts over from the change.
 * sched_pool_pick_wait() picks the same way among the members a callback lets through (a source
 * over its selection rate is skipped): skipped members' scores stand still, so the eligible ones
 * share the picks by their weights, and the skipped ones rejoin where they were.
 */
#ifndef RINGMAIL_SCHED_POOL_H
#define RINGMAIL_SCHED_POOL_H

#include <stdint.h>

struct sched_pool_member {
    uint32_t source; /* index into the scheduler's source table */
    uint32_t weight;
    int64_t score;
};

struct sched_pool {
    char *name;
    struct sched_pool_member *members;
    uint32_t count, cap;
    uint64_t total_weight;
};

void sched_pool_init(struct sched_pool *p, const char *name);
void sched_pool_fini(struct sched_pool *p);
/* sched_pool_set - add, reweigh (weight > 0) or remove (weight 0) a source; 0, or -ENOENT removing an absent one */
int sched_pool_set(struct sched_pool *p, uint32_t source, uint32_t weight);
/* sched_pool_pick - the next source index; -ENOENT when the pool is empty */
int64_t sched_pool_pick(struct sched_pool *p);
/* sched_pool_wait_fn - 0 when the source may be picked now, else the ms until it may */
typedef uint64_t sched_pool_wait_fn(void *arg, uint32_t source);
/* sched_pool_pick_wait - sched_pool_pick() among the members wait() returns 0 for; -ENOENT when the
 * pool is empty, -EAGAIN when every member must wait (*wait_ms: the shortest of their waits) */
int64_t sched_pool_pick_wait(struct sched_pool *p, sched_pool_wait_fn *wait, void *arg, uint64_t *wait_ms);

#endif
