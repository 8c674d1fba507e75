/*
 * spool_walk - announce every queued message to the scheduler, in bounded steps
 *
 * The scheduler holds nothing durable: when it starts it asks (MSG_SCHEDULER_WALK_REQUEST) and the
 * spool walks the envelopes in key (= creation) order, a step at a time between other work, so stores
 * keep flowing during a long walk. A step runs only when the ring to the scheduler has room for all
 * of it. Undecodable records are moved to quarantine by spool_db_walk_step and counted.
 */
#include "spool.h"

#include "../common/log.h"

#define SPOOL_WALK_STEP 256

void spool_walk_start(struct spool *sp)
{
    spool_db_walk_init(&sp->walk);
    sp->walking = true;
    log_info("start-up walk: announcing queued messages to the scheduler");
}

static int announce(void *arg, struct msgid id, const struct spool_rec *rec)
{
    struct spool *sp = arg;
    struct proto_rec a = {.type = MSG_SPOOL_MESSAGE_ANNOUNCE};
    uint32_t open = 0;

    for (uint32_t i = 0; i < rec->rcpt_count; i++)
        open += !spool_rec_state_final(rec->rcpts[i].state);
    a.body.announce.msg_id_hi = id.hi;
    a.body.announce.msg_id_lo = id.lo;
    a.body.announce.created_ms = rec->created_ms;
    a.body.announce.size = rec->body_size;
    a.body.announce.rcpt_count = open;
    spool_send(sp, 1, &a);
    return 0;
}

bool spool_walk_step(struct spool *sp)
{
    struct role_rt *rt = sp->rt;

    if (!sp->walking || sp->n_out > 0)
        return false;
    struct shm_ring *r = shm_segment_ring(&rt->seg, rt->self_idx, 1);
    if (!r || r->capacity - shm_ring_count(r) < SPOOL_WALK_STEP + 64)
        return false; /* the scheduler is behind: the next tick tries again */
    uint64_t before = sp->walk.quarantined;
    int rc = spool_db_walk_step(sp->db, &sp->walk, SPOOL_WALK_STEP, announce, sp);
    if (sp->walk.quarantined > before) {
        shm_counter_add(rt->self, SHM_CTR_QUARANTINED, sp->walk.quarantined - before);
        log_error("start-up walk: %llu undecodable record(s) moved to quarantine (kept, not deleted)",
                  (unsigned long long)(sp->walk.quarantined - before));
    }
    if (rc < 0) {
        log_error("start-up walk failed: %d (%s); will retry on the next request", rc, spool_db_error(sp->db));
        sp->walking = false;
        return false;
    }
    if (sp->walk.done) {
        struct proto_rec d = {.type = MSG_SPOOL_WALK_DONE};
        d.body.count.count = sp->walk.walked;
        spool_send(sp, 1, &d);
        sp->walking = false;
        log_info("start-up walk done: %llu queued messages announced, %llu quarantined",
                 (unsigned long long)sp->walk.walked, (unsigned long long)sp->walk.quarantined);
        return false;
    }
    return true;
}
