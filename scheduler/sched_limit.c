/*
 * sched_limit - named limits, throttles and source rates shared by paths (contract in sched_limit.h)
 *
 * One name table per kind in the core. A named limit's waiting paths form a FIFO threaded through
 * the paths (w_next/w_prev). A kick wakes at most `room` waiters that can go active: a woken path
 * that then cannot use the room (held by a rate, say) goes inactive again, and sched_path_update()
 * kicks the limit once more, so room is never left idle while a path waits for it.
 */
#include "scheduler/sched_limit.h"

#include <stdlib.h>

#include "base/mem.h"
#include "scheduler/sched_path.h"

struct sched_named *sched_limit_get(struct sched_core *c, enum sched_named_kind kind, const char *name)
{
    uint64_t h = sched_name_hash(name);
    struct sched_named *n = (struct sched_named *)sched_name_find(&c->named[kind], name, h);
    if (n)
        return n;
    n = xcalloc(1, sizeof(*n));
    n->n.name = xstrdup(name);
    n->n.hash = h;
    n->limit = 1;
    sched_name_add(&c->named[kind], &n->n);
    return n;
}

const struct sched_named *sched_limit_find(const struct sched_core *c, enum sched_named_kind kind, const char *name)
{
    return (const struct sched_named *)sched_name_find(&c->named[kind], name, sched_name_hash(name));
}

void sched_limit_foreach(const struct sched_core *c, enum sched_named_kind kind,
                         void (*cb)(void *arg, const struct sched_named *n), void *arg)
{
    for (size_t i = 0; i < c->named[kind].cap; i++)
        if (c->named[kind].slots[i])
            cb(arg, (const struct sched_named *)c->named[kind].slots[i]);
}

void sched_limit_wait(struct sched_core *c, struct sched_named *n, struct sched_path *p)
{
    if (p->waiting_on == n)
        return;
    sched_limit_unwait(p);
    p->waiting_on = n;
    p->w_next = NULL;
    p->w_prev = n->wait_tail;
    if (n->wait_tail)
        n->wait_tail->w_next = p;
    else
        n->wait_head = p;
    n->wait_tail = p;
    n->waits++;
    p->limit_waits++;
    c->st.limit_waits++;
}

void sched_limit_unwait(struct sched_path *p)
{
    struct sched_named *n = p->waiting_on;
    if (!n)
        return;
    if (p->w_prev)
        p->w_prev->w_next = p->w_next;
    else
        n->wait_head = p->w_next;
    if (p->w_next)
        p->w_next->w_prev = p->w_prev;
    else
        n->wait_tail = p->w_prev;
    p->w_next = p->w_prev = NULL;
    p->waiting_on = NULL;
}

bool sched_limit_room(const struct sched_named *n, const struct sched_path *p)
{
    uint64_t own = p && p->reserved_on == n ? 1 : 0;
    return n->connections + n->reserved - own < n->limit;
}

void sched_limit_opened(struct sched_path *p)
{
    if (p->reserved_on) {
        p->reserved_on->reserved--;
        p->reserved_on = NULL;
    }
}

void sched_limit_release(struct sched_core *c, struct sched_path *p)
{
    struct sched_named *n = p->reserved_on;
    if (!n)
        return;
    sched_limit_opened(p);
    sched_limit_kick(c, n);
}

void sched_limit_kick(struct sched_core *c, struct sched_named *n)
{
    while (n->wait_head && sched_limit_room(n, NULL)) {
        struct sched_path *p = n->wait_head;
        sched_limit_unwait(p);
        sched_limit_release(c, p); /* cannot hold one while it waits; kept safe anyway */
        p->reserved_on = n;
        n->reserved++;
        /* goes active, or (held by another full limit) gives the slot back and kicks again */
        sched_path_update(c, p);
    }
}
