/*
 * sched_path - ready queues per path, their options and throttles (contract in sched_path.h)
 *
 * A path is on the core's active list exactly when dispatch may hand it a message now: it has
 * READY messages, is not held (rate or suspension), and has an idle lease or room for another
 * connection (its connection_limit and every named limit). Every change of those facts goes
 * through sched_path_update(), so dispatch never scans idle paths. Rates are checked where they
 * bite, in sched_path_dispatch(): a path stopped by one gets a hold timer (sched_hold.h) and
 * leaves the list until the exact moment the rate allows. A path stopped by a full named limit
 * waits on that limit (sched_limit.h).
 */
#include "scheduler/sched_path.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "scheduler/sched_hold.h"
#include "scheduler/sched_lease.h"
#include "scheduler/sched_limit.h"
#include "scheduler/sched_msg.h"

void sched_path_options_default(struct sched_path_options *opt)
{
    *opt = (struct sched_path_options){
        .connection_limit = SCHED_CONNECTION_LIMIT_DEFAULT,
        .max_deliveries_per_connection = SCHED_MAX_DELIVERIES_DEFAULT,
        .max_ready = SCHED_MAX_READY_DEFAULT,
    };
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

static void link_active(struct sched_core *c, struct sched_path *p)
{
    p->act_next = NULL;
    p->act_prev = c->active_tail;
    if (c->active_tail)
        c->active_tail->act_next = p;
    else
        c->active_head = p;
    c->active_tail = p;
}

bool sched_path_held(const struct sched_core *c, const struct sched_path *p)
{
    return p->throttled_until_ms > c->now || p->suspended_until_ms > c->now;
}

/* full_limit - the first named limit of the path without room, NULL when every one has room */
static struct sched_named *full_limit(const struct sched_path *p)
{
    for (uint32_t i = 0; i < p->opt.n_limits; i++)
        if (!sched_limit_room(p->limits[i], p))
            return p->limits[i];
    return NULL;
}

bool sched_path_can_open(const struct sched_path *p)
{
    return p->connections < p->opt.connection_limit && !full_limit(p);
}

void sched_path_update(struct sched_core *c, struct sched_path *p)
{
    bool want = false;
    struct sched_named *wait_for = NULL;
    if (p->ready.count > 0 && !sched_path_held(c, p)) {
        if (p->idle > 0)
            want = true;
        else if (p->connections < p->opt.connection_limit)
            want = !(wait_for = full_limit(p));
    }
    if (wait_for)
        sched_limit_wait(c, wait_for, p);
    else
        sched_limit_unwait(p);
    if (want != p->active) {
        p->active = want;
        if (!want)
            unlink_active(c, p);
        else
            link_active(c, p);
    }
    if (!want)
        sched_limit_release(c, p); /* a slot held for it goes to the next waiter */
}

void sched_path_rotate(struct sched_core *c, struct sched_path *p)
{
    p->active = false;
    unlink_active(c, p);
    sched_path_update(c, p);
}

/* ---- options ---- */

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

/* intern - the named objects of one kind the options name, deduplicated; limits / rates set */
static uint32_t intern(struct sched_core *c, enum sched_named_kind kind, const char *what, uint32_t n,
                       struct sched_named_limit *limits, struct sched_named_rate *rates, struct sched_named **out)
{
    if (n > SCHED_PATH_NAMED_MAX) {
        log_warn("path options name %u %s, only the first %d are kept", n, what, SCHED_PATH_NAMED_MAX);
        n = SCHED_PATH_NAMED_MAX;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        const char *name = limits ? limits[i].name : rates[i].name;
        if (!sched_name_given(name))
            continue;
        struct sched_named *nm = sched_limit_get(c, kind, name);
        bool dup = false;
        for (uint32_t j = 0; j < k; j++)
            dup = dup || out[j] == nm;
        if (dup)
            continue;
        if (limits) {
            uint64_t lim = limits[i].limit ? limits[i].limit : 1;
            bool raised = lim > nm->limit;
            nm->limit = lim; /* last writer wins */
            limits[k] = (struct sched_named_limit){ nm->n.name, lim };
            if (raised)
                sched_limit_kick(c, nm);
        } else {
            sched_throttle_set(&nm->thr, &rates[i].rate, c->now);
            rates[k] = (struct sched_named_rate){ nm->n.name, rates[i].rate };
        }
        out[k++] = nm;
    }
    return k;
}

static bool named_in(struct sched_named *const *v, uint32_t n, const struct sched_named *x)
{
    for (uint32_t i = 0; i < n; i++)
        if (v[i] == x)
            return true;
    return false;
}

static void named_paths(struct sched_named *const *v, uint32_t n, int delta)
{
    for (uint32_t i = 0; i < n; i++)
        v[i]->paths += delta;
}

/* apply - opt onto the path; the path's open leases move from the limits it drops to those it takes */
static void apply(struct sched_core *c, struct sched_path *p, const struct sched_path_options *in)
{
    struct sched_path_options o = *in;
    struct sched_named *limits[SCHED_PATH_NAMED_MAX], *thr[SCHED_PATH_NAMED_MAX], *src[SCHED_PATH_NAMED_MAX];
    struct sched_named *dropped_reserved = NULL;
    options_sane(&o);
    o.n_limits = intern(c, SCHED_NAMED_LIMIT, "connection limits", o.n_limits, o.limits, NULL, limits);
    o.n_throttles = intern(c, SCHED_NAMED_THROTTLE, "message throttles", o.n_throttles, NULL, o.throttles, thr);
    o.n_source_rates = intern(c, SCHED_NAMED_SOURCE_RATE, "source rates", o.n_source_rates, NULL,
                              o.source_rates, src);
    sched_limit_unwait(p);
    if (p->reserved_on && !named_in(limits, o.n_limits, p->reserved_on))
        dropped_reserved = p->reserved_on;
    if (dropped_reserved)
        sched_limit_opened(p); /* given back; kicked with the dropped limits below */
    for (uint32_t i = 0; i < o.n_limits; i++)
        if (!named_in(p->limits, p->opt.n_limits, limits[i]))
            limits[i]->connections += p->connections;
    named_paths(p->limits, p->opt.n_limits, -1);
    named_paths(p->throttles, p->opt.n_throttles, -1);
    named_paths(p->source_rates, p->opt.n_source_rates, -1);
    struct sched_named *dropped[SCHED_PATH_NAMED_MAX];
    uint32_t ndropped = 0;
    for (uint32_t i = 0; i < p->opt.n_limits; i++)
        if (!named_in(limits, o.n_limits, p->limits[i])) {
            p->limits[i]->connections -= p->connections;
            dropped[ndropped++] = p->limits[i];
        }
    memcpy(p->limits, limits, sizeof(limits));
    memcpy(p->throttles, thr, sizeof(thr));
    memcpy(p->source_rates, src, sizeof(src));
    named_paths(p->limits, o.n_limits, 1);
    named_paths(p->throttles, o.n_throttles, 1);
    named_paths(p->source_rates, o.n_source_rates, 1);
    sched_throttle_set(&p->msg_rate, &o.max_message_rate, c->now);
    sched_throttle_set(&p->conn_rate, &o.max_connection_rate, c->now);
    sched_throttle_set(&p->src_rate, &o.source_selection_rate, c->now);
    p->opt = o;
    /* a rate hold was computed under the old rates: dispatch finds the new moment */
    if (p->throttled_until_ms) {
        p->throttled_until_ms = 0;
        sched_hold_arm(c, p);
    }
    for (uint32_t i = 0; i < ndropped; i++)
        sched_limit_kick(c, dropped[i]);
    if (dropped_reserved)
        sched_limit_kick(c, dropped_reserved);
}

static struct sched_path *path_get(struct sched_core *c, struct sched_site *s, uint32_t source, const char *domain)
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
    p->hold_idx = UINT32_MAX;
    struct sched_path_options o = c->opt.path_defaults;
    if (c->hooks.path_config)
        c->hooks.path_config(c->hooks.arg, c->sources[source], s->n.name, domain, &o);
    apply(c, p, &o);
    p->suspended_until_ms = sched_hold_path_until(c, c->sources[source], s->n.name);
    sched_hold_arm(c, p);
    s->paths[source] = p;
    p->serial = ++c->path_serial;
    if (c->npaths == c->paths_cap) {
        c->paths_cap = c->paths_cap ? c->paths_cap * 2 : 16;
        c->paths = xrealloc(c->paths, c->paths_cap * sizeof(*c->paths));
    }
    c->paths[c->npaths++] = p;
    return p;
}

/* ---- eviction ---- */

/* throttle_fresh - the rate would let a whole burst pass now: the path's state is that of a new one */
static bool throttle_fresh(const struct sched_throttle *t, uint64_t now)
{
    if (!sched_rate_active(&t->rate))
        return true;
    return sched_throttle_wait(t, now, t->rate.max_burst ? t->rate.max_burst : 1) == 0;
}

static bool path_idle(const struct sched_core *c, const struct sched_path *p)
{
    return p->ready.count == 0 && p->in_flight == 0 && p->connections == 0 && p->idle == 0 && !p->idle_head &&
           !p->active && !p->waiting_on && !p->reserved_on && p->hold_idx == UINT32_MAX &&
           p->consecutive_failures == 0 && p->suspended_until_ms <= c->now && p->throttled_until_ms <= c->now &&
           throttle_fresh(&p->msg_rate, c->now) && throttle_fresh(&p->conn_rate, c->now) &&
           throttle_fresh(&p->src_rate, c->now);
}

static uint64_t path_activity(const struct sched_path *p)
{
    return p->delivered + p->transient + p->bounced + p->conn_attempts + p->throttle_waits + p->limit_waits;
}

static void path_free(struct sched_path *p)
{
    struct sched_site *s = p->site;
    if (p->source < s->npaths && s->paths[p->source] == p)
        s->paths[p->source] = NULL;
    named_paths(p->limits, p->opt.n_limits, -1);
    named_paths(p->throttles, p->opt.n_throttles, -1);
    named_paths(p->source_rates, p->opt.n_source_rates, -1);
    free(p);
}

static bool site_empty(const struct sched_core *c, const struct sched_site *s)
{
    if (s->domains > 0 || s->held_next_ms > c->now)
        return false;
    for (uint32_t i = 0; i < s->npaths; i++)
        if (s->paths[i])
            return false;
    return true;
}

size_t sched_path_evict(struct sched_core *c, uint64_t idle_ms, uint64_t now_ms, sched_path_retire_fn retire,
                        void *arg)
{
    if (now_ms > c->now)
        c->now = now_ms;
    size_t freed = 0;
    uint32_t k = 0;
    for (uint32_t i = 0; i < c->npaths; i++) {
        struct sched_path *p = c->paths[i];
        bool keep = true;
        if (!path_idle(c, p)) {
            p->idle_marked = false;
        } else if (!p->idle_marked || p->idle_mark_act != path_activity(p)) {
            /* idle from now on (or busy since the last look): the clock starts again */
            p->idle_marked = true;
            p->idle_mark_ms = c->now;
            p->idle_mark_act = path_activity(p);
            keep = idle_ms > 0;
        } else {
            keep = c->now - p->idle_mark_ms < idle_ms;
        }
        if (keep) {
            c->paths[k++] = p;
            continue;
        }
        if (retire)
            retire(arg, p);
        path_free(p);
        freed++;
    }
    c->npaths = k;
    /* sites (also those that never had a path, or lost their last domain since): collected first, the
     * table is not changed while it is walked */
    struct sched_site **gone = NULL;
    size_t ngone = 0, cap = 0;
    for (size_t i = 0; i < c->sites.cap; i++) {
        struct sched_site *s = (struct sched_site *)c->sites.slots[i];
        if (s && site_empty(c, s)) {
            if (ngone == cap) {
                cap = cap ? 2 * cap : 64;
                gone = xrealloc(gone, cap * sizeof(*gone));
            }
            gone[ngone++] = s;
        }
    }
    for (size_t i = 0; i < ngone; i++) {
        sched_name_del(&c->sites, &gone[i]->n);
        free(gone[i]->n.name);
        free(gone[i]->paths);
        free(gone[i]);
    }
    free(gone);
    return freed;
}

void sched_path_options_set(struct sched_core *c, struct sched_path *p, const struct sched_path_options *opt)
{
    apply(c, p, opt);
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

struct sched_path *sched_path_find(const struct sched_core *c, const char *source, const char *site)
{
    const struct sched_site *s = (const struct sched_site *)sched_name_find(&c->sites, site, sched_name_hash(site));
    if (!s)
        return NULL;
    for (uint32_t i = 0; i < s->npaths; i++)
        if (s->paths[i] && strcmp(c->sources[i], source) == 0)
            return s->paths[i];
    return NULL;
}

/* ---- suspension ---- */

int sched_path_suspend(struct sched_core *c, const char *source, const char *site, uint64_t until_ms)
{
    if (!sched_name_given(source) || !sched_name_given(site))
        return -EINVAL;
    sched_hold_path_set(c, source, site, until_ms);
    struct sched_path *p = sched_path_find(c, source, site);
    if (p) {
        p->suspended_until_ms = until_ms > c->now ? until_ms : 0;
        sched_hold_arm(c, p);
        sched_path_update(c, p);
    }
    return 0;
}

size_t sched_path_suspensions(struct sched_core *c, const struct sched_path_hold **out)
{
    return sched_hold_path_list(c, out);
}

/* ---- placement ---- */

/* a little jitter keeps a burst of refused messages from coming back in one millisecond */
static uint64_t refused_delay(struct sched_core *c)
{
    uint64_t d = c->opt.ready_full_delay_ms;
    return d + (d >= 10 ? sched_core_rng_next(&c->rng) % (d / 10 + 1) : 0);
}

static uint64_t max_wait(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* source_wait - 0 when the path may be picked now, else the ms until its selection rates allow */
static uint64_t source_wait(const struct sched_path *p, uint64_t now)
{
    uint64_t w = sched_throttle_wait(&p->src_rate, now, 1);
    for (uint32_t i = 0; i < p->opt.n_source_rates; i++)
        w = max_wait(w, sched_throttle_wait(&p->source_rates[i]->thr, now, 1));
    return w;
}

struct pick_ctx {
    struct sched_core *c;
    struct sched_site *site;
    const char *domain;
    uint64_t now;
    double picks_per_ms; /* of the sources that had to wait */
};

static uint64_t pick_wait(void *arg, uint32_t source)
{
    struct pick_ctx *x = arg;
    struct sched_path *p = path_get(x->c, x->site, source, x->domain);
    uint64_t w = source_wait(p, x->now);
    if (w) {
        p->source_skips++;
        const struct sched_rate *r = sched_rate_active(&p->opt.source_selection_rate) ? &p->opt.source_selection_rate
                                     : p->opt.n_source_rates ? &p->opt.source_rates[0].rate : NULL;
        if (r && sched_rate_active(r))
            x->picks_per_ms += (double)r->limit / (double)r->period_ms;
    }
    return w;
}

/*
 * held_due - when a message every source refused comes back: the first at the moment one allows;
 * those refused after it follow one pick interval apart (of the sources' rates together), so a
 * backlog comes back about as fast as it can be picked instead of all at once every time
 */
static uint64_t held_due(struct sched_site *s, const struct pick_ctx *x, uint64_t wait)
{
    uint64_t due = x->now + wait;
    if (s->held_next_ms > due)
        due = s->held_next_ms;
    double gap = x->picks_per_ms > 0 ? 1.0 / x->picks_per_ms : 1.0;
    s->held_next_ms = due + (gap < 1.0 ? 1 : gap > 86400000.0 ? 86400000 : (uint64_t)gap);
    return due;
}

void sched_path_place(struct sched_core *c, struct sched_msg *m, struct sched_site *site, uint64_t now_ms)
{
    struct pick_ctx x = { c, site, m->queue->domain->n.name, now_ms, 0 };
    uint64_t wait = 0;
    int64_t src = sched_pool_pick_wait(&c->pools[m->queue->cfg.pool], pick_wait, &x, &wait);
    if (src == -EAGAIN) {
        c->st.source_held++;
        sched_msg_schedule(c, m, held_due(site, &x, wait));
        return;
    }
    if (src < 0) {
        c->st.no_source++;
        sched_msg_schedule(c, m, now_ms + refused_delay(c));
        return;
    }
    struct sched_path *p = path_get(c, site, (uint32_t)src, x.domain);
    if (p->ready.count >= p->opt.max_ready) {
        c->st.ready_full++;
        sched_msg_schedule(c, m, now_ms + refused_delay(c));
        return;
    }
    sched_throttle_take(&p->src_rate, now_ms, 1);
    for (uint32_t i = 0; i < p->opt.n_source_rates; i++)
        sched_throttle_take(&p->source_rates[i]->thr, now_ms, 1);
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

/* ---- dispatch ---- */

/* message_wait - 0 when a message may be handed out now, else the ms until every rate allows it */
static uint64_t message_wait(const struct sched_path *p, uint64_t now)
{
    uint64_t w = sched_throttle_wait(&p->msg_rate, now, 1);
    for (uint32_t i = 0; i < p->opt.n_throttles; i++)
        w = max_wait(w, sched_throttle_wait(&p->throttles[i]->thr, now, 1));
    return w;
}

static void throttle(struct sched_core *c, struct sched_path *p, uint64_t wait)
{
    p->throttled_until_ms = c->now + wait;
    p->throttle_waits++;
    c->st.throttle_waits++;
    sched_hold_arm(c, p);
}

size_t sched_path_dispatch(struct sched_core *c, struct sched_path *p, size_t max)
{
    size_t sent = 0;
    uint64_t now = c->now;
    /* deliver hooks may answer at once (sched_msg_result), which the loop sees as an idle lease */
    while (sent < max && p->ready.count > 0 && !sched_path_held(c, p)) {
        uint64_t wait = message_wait(p, now);
        bool open = !p->idle_head;
        if (!wait && open) {
            if (!sched_path_can_open(p))
                break;
            wait = sched_throttle_wait(&p->conn_rate, now, 1);
        }
        if (wait) {
            throttle(c, p, wait);
            break;
        }
        struct sched_lease *l = sched_lease_take(c, p);
        if (!l)
            break; /* no live worker */
        if (open)
            sched_throttle_take(&p->conn_rate, now, 1);
        sched_throttle_take(&p->msg_rate, now, 1);
        for (uint32_t i = 0; i < p->opt.n_throttles; i++)
            sched_throttle_take(&p->throttles[i]->thr, now, 1);
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
    return sent;
}

/* ---- connection failures ---- */

void sched_path_conn_failed(struct sched_core *c, struct sched_path *p, uint64_t now_ms)
{
    uint32_t n = p->opt.consecutive_connection_failures_before_delay;
    p->conn_failures++;
    if (p->consecutive_failures < UINT32_MAX)
        p->consecutive_failures++;
    if (n == 0 || p->consecutive_failures < n)
        return;
    p->consecutive_failures = 0;
    p->failure_delays++;
    c->st.failure_delays++;
    struct sched_msg *m;
    while ((m = sched_mlist_pop(&p->ready))) {
        /* the delay a transient failure would give, without counting an attempt */
        uint64_t due = now_ms + sched_msg_backoff_ms(&m->queue->cfg, m->attempts + 1u, &c->rng);
        if (due > sched_msg_expiry_ms(m))
            due = sched_msg_expiry_ms(m);
        sched_msg_schedule(c, m, due);
    }
    sched_path_update(c, p);
}
