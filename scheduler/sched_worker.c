/*
 * sched_worker - egress workers' liveness and lease load (contract in sched_worker.h)
 */
#include "scheduler/sched_worker.h"

#include <errno.h>

#include "base/mem.h"
#include "scheduler/sched_lease.h"

void sched_worker_add(struct sched_core *c, uint32_t w)
{
    if (w >= c->nworkers) {
        c->workers = xrealloc(c->workers, (w + 1) * sizeof(*c->workers));
        for (uint32_t i = c->nworkers; i <= w; i++)
            c->workers[i] = (struct sched_worker){ 0 };
        c->nworkers = w + 1;
    }
    if (!c->workers[w].alive) {
        c->workers[w].alive = true;
        c->workers_alive++;
    }
}

int64_t sched_worker_pick(struct sched_core *c)
{
    /* least loaded live worker; the scan starts after the last pick so ties rotate */
    int64_t best = -1;
    for (uint32_t k = 0; k < c->nworkers; k++) {
        uint32_t w = (c->worker_rr + 1 + k) % c->nworkers;
        if (c->workers[w].alive && (best < 0 || c->workers[w].load < c->workers[best].load))
            best = w;
    }
    if (best >= 0)
        c->worker_rr = (uint32_t)best;
    return best;
}

int sched_worker_dead(struct sched_core *c, uint32_t w, uint64_t now_ms)
{
    if (w >= c->nworkers || (!c->workers[w].alive && !c->workers[w].leases))
        return -ENOENT;
    if (c->workers[w].alive) {
        c->workers[w].alive = false;
        c->workers_alive--;
    }
    while (c->workers[w].leases)
        sched_lease_end(c, c->workers[w].leases, now_ms);
    return 0;
}

int sched_worker_drain(struct sched_core *c, uint32_t w)
{
    if (w >= c->nworkers || !c->workers[w].alive)
        return -ENOENT;
    c->workers[w].alive = false;
    c->workers_alive--;
    return 0;
}
