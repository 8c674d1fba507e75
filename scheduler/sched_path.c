/*
 * sched_path - ready queues per path (contract in sched_path.h)
 *
 * A path is on the core's active list exactly when dispatch can hand it a message now: it has
 * READY messages and either an idle lease or room for another connection. Every change of
 * those three facts goes through sched_path_update(), so dispatch never scans idle paths.
 */
#include "scheduler/sched_path.h"

#include <stdlib.h>

#include "base/mem.h"
#include "scheduler/sched_msg.h"

void sched_path_options_default(struct sched_path_options *opt)
{
    opt->connection_limit = SCHED_CONNECTION_LIMIT_DEFAULT;
    opt->max_deliveries_per_connection = SCHED_MAX_DELIVERIES_DEFAULT;
    opt->max_ready = SCHED_MAX_READY_DEFAULT;
}

static void unlink_active(struct sched_core *c, struct sched_path *p)
{
    if (p->act_prev)
        p->act_prev->act_next = p->act_next;
    else
        c->active_head = p->act_next;
    if (p->act_next)
        p->act_next->act_prev = p->act_prev;
    else
        c->active_tail = p->act_prev;
    p->act_next = p->act_prev = NULL;
}

void sched_path_update(struct sched_core *c, struct sched_path *p)
{
    bool want = p->ready.count > 0 && (p->idle > 0 || sched_path_can_open(p));
    if (want == p->active)
        return;
    p->active = want;
    if (!want) {
        unlink_active(c, p);
        return;
    }
    p->act_next = NULL;
    p->act_prev = c->active_tail;
    if (c->active_tail)
        c->active_tail->act_next = p;
    else
        c->active_head = p;
    c->active_tail = p;
}

void sched_path_rotate(struct sched_core *c, struct sched_path *p)
{
    p->active = false;
    unlink_active(c, p);
    sched_path_update(c, p);
}

static void options_sane(struct sched_path_options *o)
{
    /* zero would wedge a path forever; one is the smallest working value */
    if (o->connection_limit == 0)
        o->connection_limit = 1;
    if (o->max_deliveries_per_connection == 0)
        o->max_deliveries_per_connection = 1;
    if (o->max_ready == 0)
        o->max_ready = 1;
}

static struct sched_path *path_get(struct sched_core *c, struct sched_site *s, uint32_t source)
{
    if (source < s->npaths && s->paths[source])
        return s->paths[source];
    if (source >= s->npaths) {
        s->paths = xrealloc(s->paths, (source + 1) * sizeof(*s->paths));
        for (uint32_t i = s->npaths; i <= source; i++)
            s->paths[i] = NULL;
        s->npaths = source + 1;
    }
    struct sched_path *p = xcalloc(1, sizeof(*p));
    p->site = s;
    p->source = source;
    p->opt = c->opt.path_defaults;
    if (c->hooks.path_config)
        c->hooks.path_config(c->hooks.arg, c->sources[source], s->n.name, &p->opt);
    options_sane(&p->opt);
    s->paths[source] = p;
    if (c->npaths == c->paths_cap) {
        c->paths_cap = c->paths_cap ? c->paths_cap * 2 : 16;
        c->paths = xrealloc(c->paths, c->paths_cap * sizeof(*c->paths));
    }
    c->paths[c->npaths++] = p;
    return p;
}

void sched_path_options_set(struct sched_core *c, struct sched_path *p, const struct sched_path_options *opt)
{
    p->opt = *opt;
    options_sane(&p->opt);
    sched_path_update(c, p);
}

const char *sched_path_source_name(const struct sched_core *c, const struct sched_path *p)
{
    return c->sources[p->source];
}

void sched_path_foreach(const struct sched_core *c, void (*cb)(void *arg, const struct sched_path *p), void *arg)
{
    for (uint32_t i = 0; i < c->npaths; i++)
        cb(arg, c->paths[i]);
}

/* a little jitter keeps a burst of refused messages from coming back in one millisecond */
static uint64_t refused_delay(struct sched_core *c)
{
    uint64_t d = c->opt.ready_full_delay_ms;
    return d + (d >= 10 ? sched_core_rng_next(&c->rng) % (d / 10 + 1) : 0);
}

void sched_path_place(struct sched_core *c, struct sched_msg *m, struct sched_site *site, uint64_t now_ms)
{
    int64_t src = sched_pool_pick(&c->pools[m->queue->cfg.pool]);
    if (src < 0) {
        c->st.no_source++;
        sched_msg_schedule(c, m, now_ms + refused_delay(c));
        return;
    }
    struct sched_path *p = path_get(c, site, (uint32_t)src);
    if (p->ready.count >= p->opt.max_ready) {
        c->st.ready_full++;
        sched_msg_schedule(c, m, now_ms + refused_delay(c));
        return;
    }
    m->state = SCHED_MSG_READY;
    m->at.path = p;
    sched_mlist_push(&p->ready, m);
    sched_path_update(c, p);
}

void sched_path_unready(struct sched_core *c, struct sched_msg *m)
{
    struct sched_path *p = m->at.path;
    sched_mlist_unlink(&p->ready, m);
    sched_path_update(c, p);
}
