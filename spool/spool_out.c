/*
 * spool_out - the spool's outgoing ring records, in order, never dropped (see spool.h)
 *
 * spool_out_send() pushes a record to a peer, or keeps it in the outbox when the ring is full or
 * older records still wait (a later record to the same peer must not overtake an earlier one);
 * spool_out_flush() retries the outbox first on every pass. So an ack is delayed, never dropped.
 */
#include "spool/spool.h"

#include <string.h>

#include "base/mem.h"

void spool_out_send(struct spool *sp, unsigned to, struct proto_rec *rec)
{
    if (sp->n_out == 0 && role_rt_send(sp->rt, to, rec) == 0)
        return;
    if (sp->n_out == sp->out_cap) {
        sp->out_cap = sp->out_cap ? sp->out_cap * 2 : 256;
        sp->outbox = xrealloc(sp->outbox, sp->out_cap * sizeof(*sp->outbox));
    }
    sp->outbox[sp->n_out++] = (struct spool_outbox_item){to, *rec};
}

bool spool_out_flush(struct spool *sp)
{
    size_t i = 0;

    /* in order: a later record to the same peer must not overtake an earlier one */
    for (; i < sp->n_out; i++)
        if (role_rt_send(sp->rt, sp->outbox[i].to, &sp->outbox[i].rec) < 0)
            break;
    if (i > 0) {
        memmove(sp->outbox, sp->outbox + i, (sp->n_out - i) * sizeof(*sp->outbox));
        sp->n_out -= i;
    }
    return sp->n_out == 0;
}

int spool_out_run(struct spool *sp, unsigned to, uint16_t type, const void *data, size_t len, uint32_t count)
{
    struct role_rt *rt = sp->rt;
    uint64_t off;

    int rc = shm_arena_alloc(rt->seg.arena, len, (uint16_t)rt->self_idx, rt->gen, &off);
    if (rc < 0)
        return rc;
    memcpy(shm_arena_ptr(rt->seg.arena, off, len), data, len);
    uint32_t gen = atomic_load(&rt->seg.inst[to].generation);
    shm_arena_give(rt->seg.arena, off, (uint16_t)to, gen);
    struct proto_rec r = {.type = type, .dst_gen = gen};
    r.body.batch.arena_off = off;
    r.body.batch.len = len;
    r.body.batch.count = count;
    spool_out_send(sp, to, &r);
    return 0;
}
