/*
 * sched_core - the core object and its top-level operations (contract in sched_core.h)
 *
 * Creation and teardown, egress sources and pools, advancing the wheel (a message that leaves
 * it expires, goes READY on a path or waits for its domain's resolution), dispatch of READY
 * messages to leases, stats and the consistency check. The concerns below these calls live
 * in sched_msg.c, sched_queue.c, sched_site.c, sched_path.c, sched_lease.c and sched_worker.c.
 */
#include "scheduler/sched_core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "scheduler/sched_hold.h"
#include "scheduler/sched_lease.h"
#include "scheduler/sched_limit.h"
#include "scheduler/sched_msg.h"
#include "scheduler/sched_path.h"

uint64_t sched_core_rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

void sched_core_options_default(struct sched_core_options *opt)
{
    *opt = (struct sched_core_options){
        .seed = 0x5eed5eed5eedull,
        .ready_full_delay_ms = SCHED_READY_FULL_DELAY_DEFAULT_MS,
        .queue_defaults = {
            .retry_interval_s = SCHED_RETRY_INTERVAL_DEFAULT_S,
            .max_retry_interval_s = SCHED_MAX_RETRY_INTERVAL_DEFAULT_S,
            .max_age_s = SCHED_MAX_AGE_DEFAULT_S,
            .pool = 0,
        },
    };
    sched_path_options_default(&opt->path_defaults);
}

struct sched_core *sched_core_new(const struct sched_core_options *opt, const struct sched_hooks *hooks,
                                  uint64_t now_ms)
{
    struct sched_core *c = xcalloc(1, sizeof(*c));
    if (opt)
        c->opt = *opt;
    else
        sched_core_options_default(&c->opt);
    if (hooks)
        c->hooks = *hooks;
    c->rng = c->opt.seed ? c->opt.seed : 0x5eed5eed5eedull;
    c->now = now_ms;
    c->lease_free = UINT32_MAX;
    sched_timer_init(&c->wheel, now_ms);
    uint32_t src = sched_core_source_add(c, "unspecified");
    uint32_t pool = sched_core_pool_add(c, "unspecified");
    sched_core_pool_weight(c, pool, src, 1);
    return c;
}

void sched_core_free(struct sched_core *c)
{
    if (!c)
        return;
    sched_timer_fini(&c->wheel); /* touches the messages' nodes: before they are freed */
    for (size_t i = 0; i < c->msgs_cap; i++)
        free(c->msgs[i]);
    free(c->msgs);
    for (uint32_t i = 0; i < c->nleases; i++)
        free(c->leases[i]);
    free(c->leases);
    for (uint32_t i = 0; i < c->npaths; i++)
        free(c->paths[i]);
    free(c->paths);
    free(c->workers);
    for (size_t i = 0; i < c->sites.cap; i++)
        if (c->sites.slots[i])
            free(((struct sched_site *)c->sites.slots[i])->paths);
    sched_name_free_all(&c->queues);
    sched_name_free_all(&c->domains);
    sched_name_free_all(&c->sites);
    for (int k = 0; k < SCHED_NAMED_KINDS; k++)
        sched_name_free_all(&c->named[k]);
    sched_hold_free(c);
    for (uint32_t i = 0; i < c->nsources; i++)
        free(c->sources[i]);
    free(c->sources);
    for (uint32_t i = 0; i < c->npools; i++)
        sched_pool_fini(&c->pools[i]);
    free(c->pools);
    free(c);
}

uint32_t sched_core_source_add(struct sched_core *c, const char *name)
{
    for (uint32_t i = 0; i < c->nsources; i++)
        if (strcmp(c->sources[i], name) == 0)
            return i;
    c->sources = xrealloc(c->sources, (c->nsources + 1) * sizeof(*c->sources));
    c->sources[c->nsources] = xstrdup(name);
    return c->nsources++;
}

uint32_t sched_core_pool_add(struct sched_core *c, const char *name)
{
    for (uint32_t i = 0; i < c->npools; i++)
        if (strcmp(c->pools[i].name, name) == 0)
            return i;
    c->pools = xrealloc(c->pools, (c->npools + 1) * sizeof(*c->pools));
    sched_pool_init(&c->pools[c->npools], name);
    return c->npools++;
}

int sched_core_pool_weight(struct sched_core *c, uint32_t pool, uint32_t source, uint32_t weight)
{
    if (pool >= c->npools || source >= c->nsources)
        return -EINVAL;
    return sched_pool_set(&c->pools[pool], source, weight);
}

/* ---- the wheel ---- */

/* route - a message leaves the wheel: expire it, or send it towards its site */
static void route(struct sched_core *c, struct sched_msg *m, uint64_t now_ms)
{
    if (now_ms >= sched_msg_expiry_ms(m)) {
        c->st.expired++;
        if (c->hooks.expire)
            c->hooks.expire(c->hooks.arg, m);
        sched_msg_drop(c, m);
        return;
    }
    if (m->queue->suspended_until_ms > now_ms) {
        /* suspended queue: back until the suspension ends (or the message expires), no attempt */
        uint64_t due = m->queue->suspended_until_ms;
        c->st.suspended++;
        sched_msg_schedule(c, m, due < sched_msg_expiry_ms(m) ? due : sched_msg_expiry_ms(m));
        return;
    }
    struct sched_domain *d = m->queue->domain;
    if (d->site && d->site_expires_ms > now_ms) {
        sched_path_place(c, m, d->site, now_ms);
        return;
    }
    m->state = SCHED_MSG_RESOLVING;
    m->at.domain = d;
    sched_mlist_push(&d->waiting, m);
    if (!d->resolving) {
        d->resolving = true;
        if (c->hooks.resolve)
            c->hooks.resolve(c->hooks.arg, d->n.name); /* may answer at once: m is not touched after */
    }
}

static void on_due(struct sched_timer_node *n, void *arg)
{
    struct sched_core *c = arg;
    struct sched_msg *m = (struct sched_msg *)((char *)n - offsetof(struct sched_msg, timer));
    m->queue->scheduled--;
    route(c, m, c->now);
}

size_t sched_core_advance(struct sched_core *c, uint64_t now_ms)
{
    if (now_ms > c->now)
        c->now = now_ms;
    sched_hold_advance(c, now_ms);
    return sched_timer_advance(&c->wheel, now_ms, on_due, c);
}

uint64_t sched_core_next_due(const struct sched_core *c)
{
    uint64_t w = sched_timer_next_due(&c->wheel), h = sched_hold_next_due(c);
    return w < h ? w : h;
}

/* ---- dispatch ---- */

size_t sched_core_dispatch(struct sched_core *c, size_t max)
{
    size_t sent = 0;
    /* a path served to capacity, held by a rate or a limit leaves the active list through
     * sched_path_update(), so the loop moves on */
    while (sent < max && c->active_head && c->workers_alive > 0) {
        struct sched_path *p = c->active_head;
        sent += sched_path_dispatch(c, p, max - sent);
        sched_path_update(c, p);
        if (p->active) {
            /* stopped by `max` (or no live worker): to the back of the list, for fairness */
            sched_path_rotate(c, p);
            break;
        }
    }
    return sent;
}

/* ---- stats and checks ---- */

void sched_core_stats(const struct sched_core *c, struct sched_stats *out)
{
    *out = c->st;
    out->messages = c->msgs_count;
    out->scheduled = c->wheel.count;
    out->queues = c->queues.count;
    out->domains = c->domains.count;
    out->sites = c->sites.count;
    out->paths = c->npaths;
    out->leases = c->leases_live;
    out->workers_alive = c->workers_alive;
    out->resolving = out->ready = out->in_flight = 0;
    for (size_t i = 0; i < c->domains.cap; i++)
        if (c->domains.slots[i])
            out->resolving += ((struct sched_domain *)c->domains.slots[i])->waiting.count;
    for (uint32_t i = 0; i < c->npaths; i++) {
        out->ready += c->paths[i]->ready.count;
        out->in_flight += c->paths[i]->in_flight;
    }
}

#define CHECK_OR_FAIL(cond, ...) do { \
    if (!(cond)) { \
        log_error("sched_core_check: " __VA_ARGS__); \
        return -EINVAL; \
    } \
} while (0)

static int check_list(const struct sched_mlist *l, enum sched_msg_state state, const void *owner)
{
    uint32_t n = 0;
    const struct sched_msg *prev = NULL;
    for (const struct sched_msg *m = l->head; m; prev = m, m = m->link.next) {
        CHECK_OR_FAIL(m->state == state && m->at.path == owner, "message in the wrong list (state %u)", m->state);
        CHECK_OR_FAIL(m->link.prev == prev, "broken back link");
        CHECK_OR_FAIL(!sched_timer_armed(&m->timer), "listed message has an armed timer");
        n++;
    }
    CHECK_OR_FAIL(n == l->count && l->tail == prev, "list count %u, walked %u", l->count, n);
    return 0;
}

/* check_path - the path's leases, its place on the active list, its holds and its waits */
static int check_path(const struct sched_core *c, const struct sched_path *p)
{
    uint32_t idle = 0;
    for (const struct sched_lease *l = p->idle_head; l; l = l->i_next, idle++)
        CHECK_OR_FAIL(l->path == p && !l->msg, "idle list holds a busy or foreign lease");
    CHECK_OR_FAIL(idle == p->idle && p->idle <= p->connections, "path counts %u idle of %u, listed %u", p->idle,
                  p->connections, idle);
    if (p->active) {
        /* what keeps every limit: no path may open a lease past one */
        CHECK_OR_FAIL(p->ready.count > 0 && !sched_path_held(c, p), "active path without work or held");
        CHECK_OR_FAIL(p->idle > 0 || sched_path_can_open(p), "active path cannot open a lease");
        CHECK_OR_FAIL(!p->waiting_on, "active path waits on a limit");
    }
    CHECK_OR_FAIL(!p->reserved_on || p->active, "inactive path holds a reserved slot");
    if (sched_path_held(c, p))
        CHECK_OR_FAIL(p->hold_idx < c->nholds && c->holds[p->hold_idx] == p, "held path without a timer");
    if (p->waiting_on) {
        const struct sched_path *w = p->waiting_on->wait_head;
        while (w && w != p)
            w = w->w_next;
        CHECK_OR_FAIL(w == p, "path not on the list of the limit it waits on");
    }
    return 0;
}

/* check_named - a named limit counts the connections of the paths naming it; its waiters wait on it */
static int check_named(const struct sched_core *c, const struct sched_named *n)
{
    uint64_t conns = 0, reserved = 0;
    uint32_t paths = 0;
    for (uint32_t i = 0; i < c->npaths; i++) {
        const struct sched_path *p = c->paths[i];
        reserved += p->reserved_on == n;
        for (uint32_t k = 0; k < p->opt.n_limits; k++)
            if (p->limits[k] == n) {
                conns += p->connections;
                paths++;
            }
        for (uint32_t k = 0; k < p->opt.n_throttles; k++)
            paths += p->throttles[k] == n;
        for (uint32_t k = 0; k < p->opt.n_source_rates; k++)
            paths += p->source_rates[k] == n;
    }
    CHECK_OR_FAIL(conns == n->connections, "named %s: %llu connections counted, %llu open", n->n.name,
                  (unsigned long long)n->connections, (unsigned long long)conns);
    CHECK_OR_FAIL(paths == n->paths, "named %s: %u paths counted, %u name it", n->n.name, n->paths, paths);
    CHECK_OR_FAIL(reserved == n->reserved, "named %s: %llu reserved, %llu paths hold one", n->n.name,
                  (unsigned long long)n->reserved, (unsigned long long)reserved);
    const struct sched_path *prev = NULL;
    for (const struct sched_path *w = n->wait_head; w; prev = w, w = w->w_next)
        CHECK_OR_FAIL(w->waiting_on == n && w->w_prev == prev, "named %s: broken wait list", n->n.name);
    CHECK_OR_FAIL(n->wait_tail == prev, "named %s: wait list tail", n->n.name);
    return 0;
}

int sched_core_check(const struct sched_core *c)
{
    uint64_t by_state[4] = { 0 };
    for (size_t i = 0; i < c->msgs_cap; i++) {
        const struct sched_msg *m = c->msgs[i];
        if (!m)
            continue;
        CHECK_OR_FAIL(m->state <= SCHED_MSG_IN_FLIGHT, "bad state %u", m->state);
        CHECK_OR_FAIL(sched_msg_find(c, m->id) == m, "message not found by its id");
        CHECK_OR_FAIL(sched_timer_armed(&m->timer) == (m->state == SCHED_MSG_SCHEDULED), "timer/state mismatch");
        if (m->state == SCHED_MSG_IN_FLIGHT)
            CHECK_OR_FAIL(m->at.lease->msg == m, "in-flight message not held by its lease");
        by_state[m->state]++;
    }
    uint64_t listed_waiting = 0, listed_ready = 0, held = 0, qcount = 0, qsched = 0;
    for (size_t i = 0; i < c->domains.cap; i++) {
        const struct sched_domain *d = (const struct sched_domain *)c->domains.slots[i];
        if (!d)
            continue;
        if (check_list(&d->waiting, SCHED_MSG_RESOLVING, d))
            return -EINVAL;
        listed_waiting += d->waiting.count;
    }
    for (uint32_t i = 0; i < c->npaths; i++) {
        const struct sched_path *p = c->paths[i];
        if (check_list(&p->ready, SCHED_MSG_READY, p))
            return -EINVAL;
        listed_ready += p->ready.count;
        CHECK_OR_FAIL(p->ready.count <= p->opt.max_ready || p->opt.max_ready == 0, "ready over max_ready");
        if (check_path(c, p))
            return -EINVAL;
    }
    uint64_t live = 0, conns = 0;
    for (uint32_t i = 0; i < c->npaths; i++)
        conns += c->paths[i]->connections;
    for (uint32_t i = 0; i < c->nleases; i++) {
        const struct sched_lease *l = c->leases[i];
        live += l && l->path;
        if (l && l->path && l->msg) {
            CHECK_OR_FAIL(l->msg->state == SCHED_MSG_IN_FLIGHT && l->msg->at.lease == l, "lease holds a stray message");
            held++;
        }
    }
    CHECK_OR_FAIL(live == conns && live == c->leases_live, "%llu leases, paths count %llu connections",
                  (unsigned long long)live, (unsigned long long)conns);
    for (int k = 0; k < SCHED_NAMED_KINDS; k++)
        for (size_t i = 0; i < c->named[k].cap; i++)
            if (c->named[k].slots[i] && check_named(c, (const struct sched_named *)c->named[k].slots[i]))
                return -EINVAL;
    if (sched_hold_check(c))
        return -EINVAL;
    for (size_t i = 0; i < c->queues.cap; i++) {
        const struct sched_queue *q = (const struct sched_queue *)c->queues.slots[i];
        if (!q)
            continue;
        CHECK_OR_FAIL(q->count > 0, "empty queue kept");
        qcount += q->count;
        qsched += q->scheduled;
    }
    CHECK_OR_FAIL(by_state[SCHED_MSG_SCHEDULED] == c->wheel.count && qsched == c->wheel.count,
                  "scheduled %llu, wheel %zu, queues %llu", (unsigned long long)by_state[0], c->wheel.count,
                  (unsigned long long)qsched);
    CHECK_OR_FAIL(by_state[SCHED_MSG_RESOLVING] == listed_waiting, "resolving %llu, listed %llu",
                  (unsigned long long)by_state[1], (unsigned long long)listed_waiting);
    CHECK_OR_FAIL(by_state[SCHED_MSG_READY] == listed_ready, "ready %llu, listed %llu",
                  (unsigned long long)by_state[2], (unsigned long long)listed_ready);
    CHECK_OR_FAIL(by_state[SCHED_MSG_IN_FLIGHT] == held, "in flight %llu, held %llu",
                  (unsigned long long)by_state[3], (unsigned long long)held);
    CHECK_OR_FAIL(qcount == c->msgs_count, "queues count %llu, table %zu", (unsigned long long)qcount, c->msgs_count);
    return 0;
}
