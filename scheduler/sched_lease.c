/*
 * sched_lease - connection leases (contract in sched_lease.h)
 *
 * Lease slots are reused: an ended lease goes on a free list threaded through its `worker`
 * field and comes back with its generation bumped, so ids stay small and stale ids fail.
 */
#include "scheduler/sched_lease.h"

#include <stdlib.h>

#include "base/mem.h"
#include "scheduler/sched_limit.h"
#include "scheduler/sched_msg.h"
#include "scheduler/sched_path.h"
#include "scheduler/sched_worker.h"

static struct sched_lease *lease_new(struct sched_core *c, struct sched_path *p)
{
    int64_t best = sched_worker_pick(c);
    if (best < 0)
        return NULL;
    struct sched_lease *l;
    if (c->lease_free != UINT32_MAX && c->lease_free < c->nleases) {
        l = c->leases[c->lease_free];
        c->lease_free = l->worker; /* the free list threads through `worker` */
        l->gen++;
    } else {
        if (c->nleases == c->leases_cap) {
            c->leases_cap = c->leases_cap ? c->leases_cap * 2 : 64;
            c->leases = xrealloc(c->leases, c->leases_cap * sizeof(*c->leases));
        }
        l = xcalloc(1, sizeof(*l));
        l->id = c->nleases;
        c->leases[c->nleases++] = l;
    }
    struct sched_worker *wk = &c->workers[best];
    l->worker = (uint32_t)best;
    l->uses = 0;
    l->aborting = false;
    l->path = p;
    l->msg = NULL;
    l->i_next = l->i_prev = NULL;
    l->w_prev = NULL;
    l->w_next = wk->leases;
    if (wk->leases)
        wk->leases->w_prev = l;
    wk->leases = l;
    wk->load++;
    p->connections++;
    p->conn_attempts++;
    for (uint32_t i = 0; i < p->opt.n_limits; i++)
        p->limits[i]->connections++;
    sched_limit_opened(p);
    c->leases_live++;
    return l;
}

static void idle_push(struct sched_path *p, struct sched_lease *l)
{
    l->i_prev = NULL;
    l->i_next = p->idle_head;
    if (p->idle_head)
        p->idle_head->i_prev = l;
    p->idle_head = l;
    p->idle++;
}

static void idle_unlink(struct sched_path *p, struct sched_lease *l)
{
    if (l->i_prev)
        l->i_prev->i_next = l->i_next;
    else
        p->idle_head = l->i_next;
    if (l->i_next)
        l->i_next->i_prev = l->i_prev;
    l->i_next = l->i_prev = NULL;
    p->idle--;
}

void sched_lease_end(struct sched_core *c, struct sched_lease *l, uint64_t now_ms)
{
    struct sched_path *p = l->path;
    struct sched_worker *wk = &c->workers[l->worker];
    if (l->msg) {
        struct sched_msg *m = l->msg;
        l->msg = NULL;
        p->in_flight--;
        c->st.requeued++;
        sched_msg_schedule(c, m, now_ms);
    } else {
        idle_unlink(p, l);
    }
    if (l->w_prev)
        l->w_prev->w_next = l->w_next;
    else
        wk->leases = l->w_next;
    if (l->w_next)
        l->w_next->w_prev = l->w_prev;
    wk->load--;
    p->connections--;
    c->leases_live--;
    l->path = NULL;
    l->gen++; /* stale (id, gen) pairs from the rings no longer match */
    l->worker = c->lease_free;
    c->lease_free = l->id;
    /* the paths that waited for the freed slot go first: they join the active list before this one */
    for (uint32_t i = 0; i < p->opt.n_limits; i++) {
        p->limits[i]->connections--;
        sched_limit_kick(c, p->limits[i]);
    }
    sched_path_update(c, p);
}

struct sched_lease *sched_lease_get(const struct sched_core *c, uint32_t id, uint32_t gen)
{
    if (id >= c->nleases)
        return NULL;
    struct sched_lease *l = c->leases[id];
    return l->path && l->gen == gen ? l : NULL;
}

void sched_lease_released(struct sched_core *c, struct sched_lease *l, bool error, uint64_t now_ms)
{
    if (!l || !l->path)
        return;
    struct sched_path *p = l->path;
    sched_lease_end(c, l, now_ms);
    if (error)
        sched_path_conn_failed(c, p, now_ms);
}

bool sched_lease_closed_by_worker(struct sched_core *c, struct sched_lease *l, bool error, uint64_t now_ms)
{
    if (!l || !l->path || l->msg)
        return false;
    sched_lease_released(c, l, error, now_ms);
    return true;
}

struct sched_lease *sched_lease_take(struct sched_core *c, struct sched_path *p)
{
    struct sched_lease *l = p->idle_head;
    if (l)
        idle_unlink(p, l);
    else if (sched_path_can_open(p))
        l = lease_new(c, p);
    return l;
}

void sched_lease_idle(struct sched_core *c, struct sched_lease *l, uint64_t now_ms)
{
    struct sched_path *p = l->path;
    if (l->uses >= p->opt.max_deliveries_per_connection) {
        idle_push(p, l); /* sched_lease_end() expects an idle lease to be on the idle list */
        sched_lease_end(c, l, now_ms);
    } else {
        idle_push(p, l);
        sched_path_update(c, p);
    }
}
