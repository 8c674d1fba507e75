/*
 * sched_pool - egress pools and smooth weighted round robin (algorithm in sched_pool.h)
 */
#include "scheduler/sched_pool.h"

#include <errno.h>
#include <stdlib.h>

#include "base/mem.h"

void sched_pool_init(struct sched_pool *p, const char *name)
{
    p->name = xstrdup(name);
    p->members = NULL;
    p->count = p->cap = 0;
    p->total_weight = 0;
}

void sched_pool_fini(struct sched_pool *p)
{
    free(p->name);
    free(p->members);
    p->name = NULL;
    p->members = NULL;
    p->count = p->cap = 0;
}

int sched_pool_set(struct sched_pool *p, uint32_t source, uint32_t weight)
{
    uint32_t i;
    for (i = 0; i < p->count && p->members[i].source != source; i++)
        ;
    if (weight == 0) {
        if (i == p->count)
            return -ENOENT;
        p->members[i] = p->members[--p->count];
    } else if (i < p->count) {
        p->members[i].weight = weight;
    } else {
        if (p->count == p->cap) {
            p->cap = p->cap ? p->cap * 2 : 4;
            p->members = xrealloc(p->members, p->cap * sizeof(*p->members));
        }
        p->members[p->count++] = (struct sched_pool_member){ .source = source, .weight = weight };
    }
    p->total_weight = 0;
    for (i = 0; i < p->count; i++) {
        p->members[i].score = 0;
        p->total_weight += p->members[i].weight;
    }
    return 0;
}

int64_t sched_pool_pick_wait(struct sched_pool *p, sched_pool_wait_fn *wait, void *arg, uint64_t *wait_ms)
{
    if (p->count == 0)
        return -ENOENT;
    struct sched_pool_member *best = NULL;
    uint64_t eligible = 0, shortest = UINT64_MAX;
    for (uint32_t i = 0; i < p->count; i++) {
        struct sched_pool_member *m = &p->members[i];
        uint64_t w = wait ? wait(arg, m->source) : 0;
        if (w) {
            if (w < shortest)
                shortest = w;
            continue;
        }
        m->score += m->weight;
        eligible += m->weight;
        if (!best || m->score > best->score)
            best = m;
    }
    if (!best) {
        *wait_ms = shortest;
        return -EAGAIN;
    }
    best->score -= (int64_t)eligible;
    return best->source;
}

int64_t sched_pool_pick(struct sched_pool *p)
{
    uint64_t unused;
    return sched_pool_pick_wait(p, NULL, NULL, &unused);
}
