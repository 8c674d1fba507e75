/*
 * ringmail-scheduler - queue state (foundation of the scheduler role)
 *
 * Holds nothing durable: at start it asks the spool to announce every queued message
 * (MSG_SCHEDULER_WALK_REQUEST) and counts what is queued, so `ringctl status` shows it
 * (messages_queued). Queues, retries and delivery arrive with the scheduler/egress issue.
 */
#include <stdlib.h>

#include "../common/log.h"
#include "../common/mem.h"
#include "../common/msgid.h"
#include "../common/role_rt.h"

/*
 * The set of queued message ids (open addressing, linear probing, grows at 1/2 load). A message is
 * announced twice when a store's announce and a start-up walk cross; the set makes that harmless.
 */
struct idset {
    struct msgid *slots; /* {0,0} = empty: ids always carry a non-zero timestamp */
    size_t cap, n;
};

static size_t idset_hash(struct msgid id, size_t cap)
{
    uint64_t h = (id.hi ^ (id.lo * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
    return (size_t)(h ^ (h >> 33)) & (cap - 1);
}

static bool idset_add(struct idset *s, struct msgid id);

static void idset_grow(struct idset *s)
{
    struct idset bigger = {.cap = s->cap ? s->cap * 2 : 1024};
    bigger.slots = xcalloc(bigger.cap, sizeof(*bigger.slots));
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].hi || s->slots[i].lo)
            idset_add(&bigger, s->slots[i]);
    free(s->slots);
    *s = bigger;
}

/* idset_add - true when the id was not there yet */
static bool idset_add(struct idset *s, struct msgid id)
{
    if ((s->n + 1) * 2 > s->cap)
        idset_grow(s);
    for (size_t i = idset_hash(id, s->cap);; i = (i + 1) & (s->cap - 1)) {
        struct msgid *e = &s->slots[i];
        if (!e->hi && !e->lo) {
            *e = id;
            s->n++;
            return true;
        }
        if (e->hi == id.hi && e->lo == id.lo)
            return false;
    }
}

struct scheduler {
    struct idset queued;
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
    case MSG_SPOOL_MESSAGE_ANNOUNCE: {
        struct msgid id = {rec->body.announce.msg_id_hi, rec->body.announce.msg_id_lo};
        if (rec->body.announce.rcpt_count > 0 && (id.hi || id.lo))
            idset_add(&sc->queued, id);
        shm_counter_set(rt->self, SHM_CTR_MESSAGES_QUEUED, sc->queued.n);
        break;
    }
    case MSG_SPOOL_WALK_DONE:
        log_info("spool walk done: %llu messages announced; %zu queued", (unsigned long long)rec->body.count.count,
                 sc->queued.n);
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
    free(sc.queued.slots);
    return rc;
}
