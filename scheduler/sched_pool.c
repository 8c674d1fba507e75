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

int64_t sched_pool_pick(struct sched_pool *p)
{
    if (p->count == 0)
        return -ENOENT;
    struct sched_pool_member *best = NULL;
    for (uint32_t i = 0; i < p->count; i++) {
        struct sched_pool_member *m = &p->members[i];
        m->score += m->weight;
        if (!best || m->score > best->score)
            best = m;
    }
    best->score -= (int64_t)p->total_weight;
    return best->source;
}
