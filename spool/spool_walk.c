/*
 * spool_walk - announce every queued message to the scheduler, in bounded steps
 *
 * The scheduler holds nothing durable: when it starts it asks (MSG_SCHEDULER_WALK_REQUEST) and the
 * spool walks the envelopes in key (= creation) order, a step at a time between other work, so stores
 * keep flowing during a long walk. A step runs only when the outbox is empty and few announce batches
 * wait for the arena. Entries go into announce batches (spool_ann.c); MSG_SPOOL_WALK_DONE follows the
 * last batch the walk filled, with the number of messages announced. Undecodable records are moved to
 * quarantine by spool_db_walk_step and counted.
 */
#include "spool/spool.h"

#include "base/log.h"

#define SPOOL_WALK_STEP 256
#define SPOOL_WALK_BACKLOG 4 /* announce batches waiting for the arena */

void spool_walk_start(struct spool *sp)
{
    spool_db_walk_init(&sp->walk);
    sp->walking = true;
    sp->walk_done_pending = false;
    sp->walk_announced = 0;
    log_info("start-up walk: announcing queued messages to the scheduler");
    spool_tsa_walk(sp); /* the firings in effect go first, and all before MSG_SPOOL_WALK_DONE */
}

static int announce(void *arg, struct msgid id, const struct proto_env *rec)
{
    struct spool *sp = arg;

    if (spool_ann_add(sp, id, rec))
        sp->walk_announced++;
    return 0;
}

bool spool_walk_step(struct spool *sp)
{
    struct role_rt *rt = sp->rt;

    if (!sp->walking)
        return false;
    /* a scheduler or an arena that is behind holds the walk back: the backlog stays bounded */
    if (!spool_ann_flush(sp) && spool_ann_backlog(sp) > SPOOL_WALK_BACKLOG)
        return false;
    if (sp->n_out > 0)
        return false;
    const struct shm_ring_ref *r = shm_segment_ring(&rt->seg, rt->self_idx, 1);
    if (!r || r->capacity - shm_ring_count(r) < 64)
        return false; /* the next tick tries again */
    uint64_t before = sp->walk.quarantined;
    int rc = spool_db_walk_step(sp->db, &sp->walk, SPOOL_WALK_STEP, announce, sp);
    if (sp->walk.quarantined > before) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_QUARANTINED, sp->walk.quarantined - before);
        log_error("start-up walk: %llu undecodable record(s) moved to quarantine (kept, not deleted)",
                  (unsigned long long)(sp->walk.quarantined - before));
    }
    if (rc < 0) {
        log_error("start-up walk failed: %d (%s); will retry on the next request", rc, spool_db_error(sp->db));
        sp->walking = false;
        spool_ann_flush(sp);
        return false;
    }
    if (sp->walk.done) {
        sp->walking = false;
        sp->walk_done_pending = true;
        sp->walk_done_seq = sp->ann_seq;
        spool_ann_flush(sp); /* sends WALK_DONE once every batch up to here is out */
        return false;
    }
    spool_ann_flush(sp);
    return true;
}
