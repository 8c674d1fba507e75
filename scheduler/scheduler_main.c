/*
 * ringmail-scheduler - queue state (foundation of the scheduler role)
 *
 * Holds nothing durable: at start it asks the spool to announce every queued message
 * (MSG_SCHEDULER_WALK_REQUEST) and counts what is queued, so `ringctl status` shows it
 * (messages_queued). Queues, retries and delivery arrive with the scheduler/egress issue.
 */
#include "../common/log.h"
#include "../common/role_rt.h"

struct scheduler {
    uint64_t queued;
    bool walk_requested;
};

static void on_record(struct role_rt *rt, unsigned from, const struct proto_rec *rec)
{
    struct scheduler *sc = rt->ctx;

    if (from != 0) {
        shm_counter_add(rt->self, SHM_CTR_RING_BAD, 1);
        return;
    }
    switch (rec->type) {
    case MSG_SPOOL_MESSAGE_ANNOUNCE:
        if (rec->body.announce.rcpt_count > 0)
            sc->queued++;
        shm_counter_set(rt->self, SHM_CTR_MESSAGES_QUEUED, sc->queued);
        break;
    case MSG_SPOOL_WALK_DONE:
        log_info("spool walk done: %llu messages announced; %llu queued", (unsigned long long)rec->body.count.count,
                 (unsigned long long)sc->queued);
        break;
    default:
        shm_counter_add(rt->self, SHM_CTR_RING_BAD, 1);
        break;
    }
}

static void on_tick(struct role_rt *rt, uint64_t now)
{
    struct scheduler *sc = rt->ctx;

    /* ask once the ring is there; a full ring (spool not reading) is retried next tick */
    if (!sc->walk_requested) {
        struct proto_rec r = {.type = MSG_SCHEDULER_WALK_REQUEST};
        if (role_rt_send(rt, 0, &r) == 0)
            sc->walk_requested = true;
    }
}

int main(int argc, char **argv)
{
    static struct role_rt rt;
    static struct scheduler sc;

    role_rt_init(&rt, SHM_ROLE_SCHEDULER, argc, argv);
    rt.ctx = &sc;
    rt.hooks.on_record = on_record;
    rt.hooks.on_tick = on_tick;
    role_rt_ready(&rt);
    int rc = role_rt_run(&rt);
    role_rt_fini(&rt);
    return rc;
}
