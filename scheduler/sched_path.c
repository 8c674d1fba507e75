/*
 * sched_path - ready queues per path, connection leases, egress workers (contract in sched_path.h)
 *
 * A path is on the core's active list exactly when dispatch can hand it a message now: it has
 * READY messages and either an idle lease or room for another connection. Every change of
 * those three facts goes through path_update(), so dispatch never scans idle paths.
 */
#include "scheduler/sched_path.h"

#include <errno.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/mem.h"

void sched_path_options_default(struct sched_path_options *opt)
{
    opt->connection_limit = SCHED_CONNECTION_LIMIT_DEFAULT;
    opt->max_deliveries_per_connection = SCHED_MAX_DELIVERIES_DEFAULT;
    opt->max_ready = SCHED_MAX_READY_DEFAULT;
}

static bool path_can_open(const struct sched_path *p)
{
    return p->connections < p->opt.connection_limit;
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

static void path_update(struct sched_core *c, struct sched_path *p)
{
    bool want = p->ready.count > 0 && (p->idle > 0 || path_can_open(p));
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
    path_update(c, p);
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
    return d + (d >= 10 ? sched_rng_next(&c->rng) % (d / 10 + 1) : 0);
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
    path_update(c, p);
}

void sched_path_unready(struct sched_core *c, struct sched_msg *m)
{
    struct sched_path *p = m->at.path;
    sched_mlist_unlink(&p->ready, m);
    path_update(c, p);
}

/* ---- workers and leases ---- */

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

static struct sched_lease *lease_new(struct sched_core *c, struct sched_path *p)
{
    /* least loaded live worker; the scan starts after the last pick so ties rotate */
    int64_t best = -1;
    for (uint32_t k = 0; k < c->nworkers; k++) {
        uint32_t w = (c->worker_rr + 1 + k) % c->nworkers;
        if (c->workers[w].alive && (best < 0 || c->workers[w].load < c->workers[best].load))
            best = w;
    }
    if (best < 0)
        return NULL;
    c->worker_rr = (uint32_t)best;
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

/* lease_end - give the slot back; a message still on it is due again now */
static void lease_end(struct sched_core *c, struct sched_lease *l, uint64_t now_ms)
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
    path_update(c, p);
}

struct sched_lease *sched_lease_get(const struct sched_core *c, uint32_t id, uint32_t gen)
{
    if (id >= c->nleases)
        return NULL;
    struct sched_lease *l = c->leases[id];
    return l->path && l->gen == gen ? l : NULL;
}

void sched_lease_released(struct sched_core *c, struct sched_lease *l, uint64_t now_ms)
{
    if (l && l->path)
        lease_end(c, l, now_ms);
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
        lease_end(c, c->workers[w].leases, now_ms);
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

void sched_path_free_all(struct sched_core *c)
{
    for (uint32_t i = 0; i < c->nleases; i++)
        free(c->leases[i]);
    free(c->leases);
    for (uint32_t i = 0; i < c->npaths; i++)
        free(c->paths[i]);
    free(c->paths);
    free(c->workers);
}

/* ---- dispatch and results ---- */

size_t sched_core_dispatch(struct sched_core *c, size_t max)
{
    size_t sent = 0;
    /* a path served to capacity leaves the active list through path_update(), so the loop
     * moves on; deliver hooks may answer at once (sched_msg_result), which the inner loop
     * sees as an idle lease */
    while (sent < max && c->active_head && c->workers_alive > 0) {
        struct sched_path *p = c->active_head;
        while (sent < max && p->ready.count > 0) {
            struct sched_lease *l = p->idle_head;
            if (l)
                idle_unlink(p, l);
            else if (!path_can_open(p) || !(l = lease_new(c, p)))
                break;
            struct sched_msg *m = sched_mlist_pop(&p->ready);
            m->state = SCHED_MSG_IN_FLIGHT;
            m->at.lease = l;
            l->msg = m;
            p->in_flight++;
            sent++;
            bool last = l->uses + 1 >= p->opt.max_deliveries_per_connection;
            if (c->hooks.deliver)
                c->hooks.deliver(c->hooks.arg, m, l, last);
        }
        path_update(c, p);
        if (p->active) {
            /* stopped by `max` (or no live worker): to the back of the list, for fairness */
            p->active = false;
            unlink_active(c, p);
            path_update(c, p);
            break;
        }
    }
    return sent;
}

int sched_msg_result(struct sched_core *c, struct sched_msg *m, enum sched_outcome outcome, uint64_t now_ms)
{
    if (m->state != SCHED_MSG_IN_FLIGHT)
        return -EINVAL;
    if (now_ms > c->now)
        c->now = now_ms;
    struct sched_lease *l = m->at.lease;
    struct sched_path *p = l->path;
    l->msg = NULL;
    l->uses++;
    p->in_flight--;
    switch (outcome) {
    case SCHED_OUTCOME_DELIVERED:
        p->delivered++;
        c->st.delivered++;
        sched_msg_drop(c, m);
        break;
    case SCHED_OUTCOME_BOUNCED:
        p->bounced++;
        c->st.bounced++;
        sched_msg_drop(c, m);
        break;
    default:
        p->transient++;
        sched_msg_retry(c, m, now_ms);
        break;
    }
    if (l->uses >= p->opt.max_deliveries_per_connection) {
        idle_push(p, l); /* lease_end() expects an idle lease to be on the idle list */
        lease_end(c, l, now_ms);
    } else {
        idle_push(p, l);
        path_update(c, p);
    }
    return 0;
}
