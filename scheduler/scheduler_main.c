/*
 * ringmail-scheduler - every queued message's place and time, in memory
 *
 * Holds nothing durable: at start (and whenever the spool restarts) it asks the spool to announce
 * every queued message, and rebuilds its queues from the announce batches. The core
 * (sched_core.h and its files) decides what is due, where it goes and on which connection lease;
 * this file turns its hooks into ring records and the records of the egress and spool into core
 * events:
 *   spool  ANNOUNCE_BATCH  -> sched_msg_add (one entry per message and recipient domain)
 *   hooks.deliver          -> egress PATH_CONFIG when that worker lacks the path's current one
 *                             (sched_pathcfg.h), then DELIVER (lease, attempt, source, path)
 *   egress DELIVERY_DONE   -> sched_msg_result: any transient recipient retries with backoff,
 *                             otherwise the entry is final and leaves the scheduler
 *   spool  UPDATED         -> the durable verdict: pending 0 removes an entry still waiting;
 *                             pending recipients without an entry make the spool announce again
 *   hooks.expire/.bounce   -> spool FAIL (Expiration, or Bounce for a permanent DNS failure)
 *   egress LEASE_CLOSED    -> sched_lease_released
 * An egress worker that dies or restarts (its generation changes) loses its leases: its in-flight
 * messages go back to their queues due now (sched_worker_dead). Ring records a full ring refused
 * wait in an outbox, in order, and go first at the next chance.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "common/proto_dlv.h"
#include "scheduler/sched_admin.h"
#include "scheduler/sched_mtasts.h"
#include "scheduler/sched_shaping.h"
#include "scheduler/scheduler.h"

#define SCHED_DISPATCH_BATCH 4096

uint64_t scheduler_now_ms(void)
{
    return clock_real_ns() / 1000000u;
}

static bool flush_outbox(struct scheduler *sc)
{
    uint32_t i = 0;
    while (i < sc->n_out) {
        if (role_rt_send(sc->rt, sc->outbox[i].to, &sc->outbox[i].rec) < 0)
            break;
        i++;
    }
    if (i) {
        memmove(sc->outbox, sc->outbox + i, (sc->n_out - i) * sizeof(*sc->outbox));
        sc->n_out -= i;
    }
    return sc->n_out == 0;
}

void scheduler_send(struct scheduler *sc, unsigned to, struct proto_rec *rec)
{
    if (sc->n_out == 0 && role_rt_send(sc->rt, to, rec) == 0)
        return;
    if (sc->n_out == sc->cap_out) {
        sc->cap_out = sc->cap_out ? sc->cap_out * 2 : 256;
        sc->outbox = xrealloc(sc->outbox, sc->cap_out * sizeof(*sc->outbox));
    }
    sc->outbox[sc->n_out].to = to;
    sc->outbox[sc->n_out].rec = *rec;
    sc->n_out++;
}

/* ---- hooks of the core ---- */

static uint32_t ms_to_s(uint64_t ms)
{
    uint64_t s = (ms + 999) / 1000;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)(s ? s : 1);
}

static uint32_t pool_map[CFG_MAX_POOLS];           /* configuration pool -> core pool */
static uint32_t source_map[CFG_MAX_SOURCES];       /* configuration source -> core source */
static uint16_t source_of_core[CFG_MAX_SOURCES + 1]; /* core source -> configuration source */

static void hook_queue_config(void *arg, const char *queue, const char *domain, struct sched_queue_config *qc)
{
    struct scheduler *sc = arg;
    const struct cfg_queue *q = cfg_dlv_queue_for(&sc->rt->cfg, queue, domain);
    qc->retry_interval_s = ms_to_s(q->retry_interval_ms);
    qc->max_retry_interval_s = ms_to_s(q->max_retry_interval_ms);
    qc->max_age_s = ms_to_s(q->max_age_ms);
    qc->pool = q->pool < CFG_MAX_POOLS ? pool_map[q->pool] : pool_map[0];
}

void scheduler_send_fail(struct scheduler *sc, const struct sched_msg *msg, uint16_t kind, uint16_t reason)
{
    struct proto_rec r = {.type = MSG_SCHEDULER_MESSAGE_FAIL};
    struct msgid id;
    uint32_t rcpt_first;

    sched_keys_real(&sc->keys, msg->id, &id, &rcpt_first);
    r.body.fail.msg_id_hi = id.hi;
    r.body.fail.msg_id_lo = id.lo;
    r.body.fail.rcpt_first = rcpt_first;
    r.body.fail.kind = kind;
    r.body.fail.reason = reason;
    scheduler_send(sc, 0, &r);
    sc->fails++;
    sched_keys_forget(&sc->keys, msg->id);
}

static void hook_expire(void *arg, const struct sched_msg *msg)
{
    scheduler_send_fail(arg, msg, PROTO_FAIL_EXPIRE, PROTO_FAIL_REASON_NONE);
}

/* fail_reason - the protocol's name for the resolver's verdict (the spool does not know the resolver) */
static enum proto_fail_reason fail_reason(enum dns_status st)
{
    switch (st) {
    case DNS_NULL_MX:
        return PROTO_FAIL_REASON_NULL_MX;
    case DNS_NO_DATA:
        return PROTO_FAIL_REASON_NO_DATA;
    case DNS_BAD_NAME:
        return PROTO_FAIL_REASON_BAD_NAME;
    case DNS_TEMPFAIL:
        return PROTO_FAIL_REASON_DNS_TEMP;
    case DNS_OK: /* a bounce without a DNS answer behind it: the domain does not exist */
    case DNS_NXDOMAIN:
    default:
        return PROTO_FAIL_REASON_NXDOMAIN;
    }
}

static void hook_bounce(void *arg, const struct sched_msg *msg, const char *reason)
{
    struct scheduler *sc = arg;
    scheduler_send_fail(sc, msg, PROTO_FAIL_DNS_BOUNCE, fail_reason(sc->fail_status));
}

static void hook_deliver(void *arg, struct sched_msg *msg, struct sched_lease *lease, bool last)
{
    struct scheduler *sc = arg;
    struct proto_rec r = {.type = MSG_SCHEDULER_MESSAGE_DELIVER};
    struct msgid id;
    uint32_t rcpt_first;

    sched_keys_real(&sc->keys, msg->id, &id, &rcpt_first);
    r.dst_gen = lease->worker < PROTO_NODE_MAX_INSTANCES ? sc->egress_gen[lease->worker] : 0;
    r.body.deliver.msg_id_hi = id.hi;
    r.body.deliver.msg_id_lo = id.lo;
    r.body.deliver.lease = lease->id;
    r.body.deliver.rcpt_first = rcpt_first;
    r.body.deliver.attempt = (uint32_t)msg->attempts + 1;
    r.body.deliver.source = lease->path->source <= CFG_MAX_SOURCES ? source_of_core[lease->path->source] : 0;
    r.body.deliver.flags = last ? PROTO_DELIVER_F_LAST : 0;
    r.body.deliver.lease_gen = lease->gen;
    r.body.deliver.path =
        sched_pathcfg_before_deliver(sc, lease->worker, r.body.deliver.source, lease->path->site->n.name);
    scheduler_send(sc, lease->worker, &r);
    sc->deliveries++;
}

/* ---- records ---- */

/* on_announce_batch - a run of proto_ann entries; decoded (and so validated) whole before any is used */
static void on_announce_batch(struct scheduler *sc, const struct proto_rec *rec)
{
    struct role_rt *rt = sc->rt;
    const struct proto_batch *b = &rec->body.batch;
    const char *p = shm_arena_ptr(rt->seg.arena, b->arena_off, b->len);
    uint64_t now = scheduler_now_ms();
    struct proto_ann_batch ab = {0};
    const char *why = NULL;
    size_t added = 0;

    if (!p)
        why = "arena range invalid";
    else if (proto_dlv_ann_decode(p, b->len, &ab, &why) == 0 && ab.count != b->count)
        why = "bad header";
    for (uint32_t i = 0; i < ab.count && !why; i++) {
        const struct proto_ann *a = &ab.entry[i].ann;
        for (uint16_t d = 0; d < a->n_dom; d++) {
            const struct proto_ann_item *it = &ab.entry[i].item[d];
            if (it->dom.pending == 0)
                continue;
            struct msgid id = {a->msg_id_hi, a->msg_id_lo}, key;
            sched_keys_key(&sc->keys, id, it->dom.rcpt_first, true, &key);
            if (sched_msg_find(sc->core, key))
                continue; /* announced twice: a commit's batch and a walk crossed */
            uint16_t attempts = a->attempts > UINT16_MAX ? UINT16_MAX : (uint16_t)a->attempts;
            struct sched_msg *m = NULL;
            int rc = sched_msg_add(sc->core, key, a->created_ms, attempts, it->queue, it->domain, now, &m);
            if (rc == 0 && m)
                sched_msg_resume(sc->core, m, a->last_attempt_ms, now);
            if (rc < 0) {
                log_warn("message %016llx%016llx to %s not queued: %s", (unsigned long long)id.hi,
                         (unsigned long long)id.lo, it->domain, strerror(-rc));
                sched_keys_forget(&sc->keys, key);
                continue;
            }
            if (sched_tsa_node_admit(sc, key))
                added++;
        }
    }
    proto_dlv_ann_fini(&ab);
    if (why) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        log_warn("announce batch from the spool refused: %s", why);
    }
    if (p)
        shm_arena_free(rt->seg.arena, b->arena_off);
    if (added)
        log_debug("%zu entries queued from an announce batch", added);
}

static void on_done(struct scheduler *sc, unsigned from, const struct proto_rec *rec)
{
    const struct proto_done *d = &rec->body.done;
    struct msgid id = {d->msg_id_hi, d->msg_id_lo}, key;
    struct sched_msg *m = NULL;

    if (sched_keys_key(&sc->keys, id, d->rcpt_first, false, &key))
        m = sched_msg_find(sc->core, key);
    struct sched_lease *lease = m ? sched_msg_lease(m) : NULL;
    if (!lease || lease->id != d->lease || lease->gen != d->lease_gen || lease->worker != from) {
        log_warn("delivery result from egress instance %u for lease %u does not match an attempt in flight", from,
                 d->lease);
        proto_node_counter_add(sc->rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        return;
    }
    uint32_t lid = lease->id, lgen = lease->gen;
    /* an egress's word that it aborted counts only where the operator asked for it (no free retries) */
    bool aborted = lease->aborting && (d->flags & PROTO_DONE_F_ABORTED) &&
                   (d->transient || (d->flags & PROTO_DONE_F_LOCAL_ERROR));
    if ((d->flags & PROTO_DONE_F_REFUSED) || aborted) {
        /* not attempted, or cut short by the operator (abort-ready-q-conn): the lease ends and the entry is
         * due again now, no attempt counted (the spool recorded what the aborted attempt did decide) */
        sched_lease_released(sc->core, lease, false, scheduler_now_ms());
        return;
    }
    enum sched_outcome out = d->transient || (d->flags & PROTO_DONE_F_LOCAL_ERROR) ? SCHED_OUTCOME_TRANSIENT
                             : d->bounced && !d->delivered ? SCHED_OUTCOME_BOUNCED
                                                           : SCHED_OUTCOME_DELIVERED;
    bool aborting = lease->aborting; /* read before the result: the lease may go idle or end with it */
    sched_warmup_result(sc, lease->path, out == SCHED_OUTCOME_TRANSIENT);
    (void)sched_msg_result(sc->core, m, out, scheduler_now_ms());
    if (out != SCHED_OUTCOME_TRANSIENT)
        sched_keys_forget(&sc->keys, key);
    if ((d->flags & PROTO_DONE_F_LEASE_CLOSED) || aborting) {
        struct sched_lease *l = sched_lease_get(sc->core, lid, lgen);
        if (l) /* closed with a transient result: the connection failed; an aborted one: the operator closed it */
            sched_lease_released(sc->core, l, !aborting && out == SCHED_OUTCOME_TRANSIENT, scheduler_now_ms());
    }
}

static void on_lease_closed(struct scheduler *sc, unsigned from, const struct proto_rec *rec)
{
    struct sched_lease *l = sched_lease_get(sc->core, rec->body.lease.lease, rec->body.lease.lease_gen);
    if (l && l->worker == from && !sched_lease_closed_by_worker(sc->core, l, rec->body.lease.reason == 1,
                                                                scheduler_now_ms()))
        log_debug("lease %u/%u closed by the egress while a DELIVER was on its way: it lives on",
                  rec->body.lease.lease, rec->body.lease.lease_gen);
}

static void on_updated(struct scheduler *sc, const struct proto_rec *rec)
{
    const struct proto_updated *u = &rec->body.updated;
    struct msgid id = {u->msg_id_hi, u->msg_id_lo}, key;
    struct sched_msg *m = NULL;

    if (sched_keys_key(&sc->keys, id, u->rcpt_first, false, &key))
        m = sched_msg_find(sc->core, key);
    if (m && u->pending == 0 && m->state != SCHED_MSG_IN_FLIGHT) {
        (void)sched_msg_remove(sc->core, key);
        sched_keys_forget(&sc->keys, key);
    } else if (m && m->state == SCHED_MSG_SCHEDULED) {
        /* its attempt is recorded: a Bounce effect that fired while it was in flight takes it now */
        (void)sched_tsa_node_admit(sc, key);
    } else if (!m && u->pending > 0 && !(u->flags & PROTO_UPDATED_F_GONE)) {
        /* the spool still holds recipients we let go of: have it announce again (rare) */
        log_info("spool holds %u queued recipients of a message the scheduler had finished; re-announcing",
                 u->pending);
        sc->walk_requested = false;
    }
}

static void on_record(struct role_rt *rt, unsigned from, const struct proto_rec *rec)
{
    struct scheduler *sc = rt->ctx;
    enum proto_node_role role = shm_segment_role(&rt->seg, from);

    switch (rec->type) {
    case MSG_SPOOL_MESSAGE_ANNOUNCE_BATCH:
        if (role == PROTO_NODE_ROLE_SPOOL)
            on_announce_batch(sc, rec);
        return;
    case MSG_SPOOL_WALK_DONE:
        if (role == PROTO_NODE_ROLE_SPOOL)
            log_info("spool walk done: %llu messages announced", (unsigned long long)rec->body.count.count);
        return;
    case MSG_SPOOL_MESSAGE_UPDATED:
        if (role == PROTO_NODE_ROLE_SPOOL)
            on_updated(sc, rec);
        return;
    case MSG_EGRESS_DELIVERY_DONE:
        if (role == PROTO_NODE_ROLE_EGRESS)
            on_done(sc, from, rec);
        return;
    case MSG_EGRESS_LEASE_CLOSED:
        if (role == PROTO_NODE_ROLE_EGRESS)
            on_lease_closed(sc, from, rec);
        return;
    case MSG_SPOOL_TSA_RESPONSE:
    case MSG_SPOOL_TSA_STATE:
        if (role == PROTO_NODE_ROLE_SPOOL)
            sched_tsa_node_record(sc, rec);
        return;
    default:
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        return;
    }
}

/* ---- the loop ---- */

/* track_peers - egress workers that started, died or restarted; a spool that restarted */
static void track_peers(struct scheduler *sc)
{
    struct role_rt *rt = sc->rt;
    uint64_t now = scheduler_now_ms();

    for (unsigned i = 0; i < rt->seg.n_instances; i++) {
        struct proto_node_instance *in = &rt->seg.inst[i];
        if (shm_segment_role(&rt->seg, i) == PROTO_NODE_ROLE_SPOOL) {
            uint32_t g = atomic_load(&in->generation);
            if (atomic_load(&in->state) == PROTO_NODE_INST_READY && g != sc->spool_gen) {
                if (sc->spool_gen)
                    log_info("spool restarted (generation %u): asking it to announce the queue again", g);
                sc->spool_gen = g;
                sc->walk_requested = false;
            }
            continue;
        }
        if (shm_segment_role(&rt->seg, i) != PROTO_NODE_ROLE_EGRESS)
            continue;
        uint32_t g = atomic_load(&in->generation);
        uint32_t state = atomic_load(&in->state);
        bool ready = state == PROTO_NODE_INST_READY;
        if (sc->egress_gen[i] && state == PROTO_NODE_INST_DRAINING && g == sc->egress_gen[i]) {
            /* stopping: it finishes what it holds (its results still count), it gets nothing new */
            if (sched_worker_drain(sc->core, i) == 0)
                log_info("egress instance %u is draining: no new deliveries for it", i);
            continue;
        }
        if (sc->egress_gen[i] && (!ready || g != sc->egress_gen[i])) {
            log_info("egress instance %u went away: its leases end, its messages go back to their queues", i);
            (void)sched_worker_dead(sc->core, i, now);
            sc->egress_gen[i] = 0;
        }
        if (ready && !sc->egress_gen[i]) {
            sched_worker_add(sc->core, i);
            sched_pathcfg_worker_reset(sc, i); /* a new process holds no path configuration */
            sc->egress_gen[i] = g;
        }
    }
}

static void work(struct scheduler *sc);

static void on_due(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct scheduler *sc = op->owner;
    (void)l, (void)res, (void)flags;
    sc->due.armed = false;
    work(sc);
}

/* arm_due - a throttled path, a suspension or a retry due before the next tick wakes the loop at that
 * moment (the tick covers the rest), so a rate-held path goes again exactly when its throttle allows */
static void arm_due(struct scheduler *sc, uint64_t now_ms)
{
    uint64_t next = sched_core_next_due(sc->core);
    if (sc->due.armed || next == SCHED_TIMER_NEVER || next >= now_ms + ROLE_RT_TICK_NS / 1000000u)
        return;
    evl_timer_arm(&sc->rt->evl, &sc->due, (next > now_ms ? next - now_ms : 1) * 1000000u);
}

static void work(struct scheduler *sc)
{
    struct role_rt *rt = sc->rt;

    track_peers(sc);
    if (!sc->walk_requested && sc->spool_gen) {
        struct proto_rec r = {.type = MSG_SCHEDULER_WALK_REQUEST};
        if (role_rt_send(rt, 0, &r) == 0)
            sc->walk_requested = true;
    }
    if (!flush_outbox(sc))
        return; /* the rings are full: let the peers catch up first */
    uint64_t now = scheduler_now_ms();
    (void)sched_core_advance(sc->core, now);
    if (!rt->draining && !atomic_load(&rt->seg.hdr->stopping))
        (void)sched_core_dispatch(sc->core, SCHED_DISPATCH_BATCH);
    arm_due(sc, now);
    sched_admin_poll(sc); /* an operator's request: the page says when there is one */
    struct sched_stats st;
    sched_core_stats(sc->core, &st);
    proto_node_counter_set(rt->self, PROTO_NODE_CTR_MESSAGES_QUEUED, st.messages);
}

static void after_drain(struct role_rt *rt)
{
    work(rt->ctx);
}

/* ---- idle paths ---- */

#define SCHED_PATH_IDLE_MS (10u * 60u * 1000u) /* a path that held nothing this long is freed */
#define SCHED_EVICT_EVERY_MS 10000u

static void retire_path(void *arg, const struct sched_path *p)
{
    struct scheduler *sc = arg;
    const char *source = sched_path_source_name(sc->core, p);
    sched_status_retire(sc, p); /* reads the provider: before it is forgotten */
    sched_admin_path_forget(sc, source, p->site->n.name);
    sched_shaping_path_forget(sc, source, p->site->n.name);
    sched_pathcfg_forget(sc, p->source <= CFG_MAX_SOURCES ? source_of_core[p->source] : 0, p->site->n.name);
}

static void evict_paths(struct scheduler *sc, uint64_t idle_ms)
{
    uint64_t now = scheduler_now_ms();
    sc->evict_at_ms = now;
    size_t n = sched_path_evict(sc->core, idle_ms, now, retire_path, sc);
    if (n)
        log_info("%zu idle paths freed (nothing on them for %llu s); %u left", n,
                 (unsigned long long)(idle_ms / 1000u), sc->core->npaths);
}

/* on_mem_shed - memory is low: every path idle now goes (its counters stay in the status page's rest) */
static void on_mem_shed(struct role_rt *rt)
{
    evict_paths(rt->ctx, 0);
}

static void on_tick(struct role_rt *rt, uint64_t now_ns)
{
    struct scheduler *sc = rt->ctx;
    work(sc);
    bool publish = now_ns - sc->status_at_ns >= 1000000000u;
    if (publish) {
        sc->status_at_ns = now_ns;
        sched_status_publish(sc);
    }
    sched_tsa_node_tick(sc, publish);
    sched_admin_tick(sc);
    sched_mtasts_tick(sc);
    sched_warmup_node_tick(sc);
    /* while memory is low (role_rt's word), every idle path goes within a second: the egress closes idle
     * connections as it sheds, and a path is free to go once its last lease is */
    bool low = sc->rt->mem_low;
    if (scheduler_now_ms() - sc->evict_at_ms >= (low ? 1000u : SCHED_EVICT_EVERY_MS))
        evict_paths(sc, low ? 0 : SCHED_PATH_IDLE_MS);
}

static bool on_idle(struct role_rt *rt)
{
    (void)flush_outbox(rt->ctx);
    return false; /* a full ring is retried at the next tick or wake-up */
}

static bool on_drain(struct role_rt *rt)
{
    /* nothing durable here: stop handing out work, and go once the outbox is flushed */
    return flush_outbox(rt->ctx);
}

/* apply_sources_pools - the configuration's sources and pools onto the core, matched by name (a
 * reload may add, drop or reorder them; the core never forgets a source, it only loses its weight) */
static void apply_sources_pools(struct scheduler *sc)
{
    const struct cfg *c = &sc->rt->cfg;

    for (size_t i = 0; i < c->n_sources && i < CFG_MAX_SOURCES; i++) {
        source_map[i] = sched_core_source_add(sc->core, c->sources[i].name);
        if (source_map[i] > CFG_MAX_SOURCES)
            panic("egress source %zu got core index %u", i, source_map[i]);
        source_of_core[source_map[i]] = (uint16_t)i;
    }
    for (size_t i = 0; i < c->n_pools && i < CFG_MAX_POOLS; i++) {
        pool_map[i] = sched_core_pool_add(sc->core, c->pools[i].name);
        for (uint32_t s = 1; s < sc->core->nsources; s++) {
            uint32_t w = 0;
            for (uint32_t m = 0; m < c->pools[i].n; m++)
                if (source_map[c->pools[i].source[m]] == s)
                    w = c->pools[i].weight[m];
            (void)sched_core_pool_weight(sc->core, pool_map[i], s, w); /* 0 removes; -ENOENT when absent */
        }
    }
}

static void reload_queue(void *arg, const struct sched_queue *cq)
{
    struct scheduler *sc = arg;
    struct sched_queue *q = sched_queue_find(sc->core, cq->n.name);
    if (q)
        hook_queue_config(sc, q->n.name, q->domain ? q->domain->n.name : NULL, &q->cfg);
}

/* on_reload - new retry policies for live queues, new path options, new pools; routes and MX answers
 * are looked up again as their cached sites expire (routes: within seconds, MX: their TTL) */
static void on_reload(struct role_rt *rt)
{
    struct scheduler *sc = rt->ctx;

    apply_sources_pools(sc);
    sched_queue_foreach(sc->core, reload_queue, sc);
    sched_pathcfg_reload(sc);
    sched_warmup_node_reload(sc);
    sched_shaping_reload(sc); /* every live path resolved again; new limits apply at once */
    log_info("configuration reloaded: %zu sources, %zu pools, %zu queue entries, %zu routes", rt->cfg.n_sources,
             rt->cfg.n_pools, rt->cfg.n_queues, rt->cfg.n_routes);
}

static void core_setup(struct scheduler *sc)
{
    struct sched_core_options opt;
    struct sched_hooks hooks = {
        .arg = sc,
        .queue_config = hook_queue_config,
        .path_config = sched_shaping_path,
        .resolve = sched_route_resolve,
        .expire = hook_expire,
        .bounce = hook_bounce,
        .deliver = hook_deliver,
    };

    sched_core_options_default(&opt);
    opt.seed = clock_mono_ns() | 1;
    sc->core = sched_core_new(&opt, &hooks, scheduler_now_ms());
    sc->pathcfg = sched_pathcfg_new();
    apply_sources_pools(sc);
}

int main(int argc, char **argv)
{
    static struct role_rt rt;
    static struct scheduler sc;

    role_rt_init(&rt, PROTO_NODE_ROLE_SCHEDULER, argc, argv);
    sc.rt = &rt;
    rt.ctx = &sc;
    rt.hooks.on_record = on_record;
    rt.hooks.after_drain = after_drain;
    rt.hooks.on_tick = on_tick;
    rt.hooks.on_idle = on_idle;
    rt.hooks.on_drain = on_drain;
    rt.hooks.on_reload = on_reload;
    rt.hooks.on_mem_shed = on_mem_shed;
    core_setup(&sc);
    sched_tsa_node_init(&sc); /* before the shaping: the paths it resolves ask for automation overrides */
    sched_admin_init(&sc);
    sched_route_init(&sc);
    sched_mtasts_init(&sc);
    sched_warmup_node_init(&sc); /* before the shaping: resolving a path asks for its warm-up step */
    sched_shaping_init(&sc);
    sc.due.op = (struct evl_op){on_due, &sc};
    role_rt_ready(&rt);
    int rc = role_rt_run(&rt);
    sched_route_fini(&sc);
    sched_mtasts_fini(&sc);
    sched_shaping_fini(&sc);
    sched_warmup_node_fini(&sc);
    for (int i = 0; i < 8; i++)
        (void)evl_run_once(&rt.evl, false);
    sched_tsa_node_fini(&sc);
    sched_admin_fini(&sc);
    sched_status_fini(&sc);
    sched_core_free(sc.core);
    sched_keys_fini(&sc.keys);
    sched_pathcfg_free(sc.pathcfg);
    free(sc.outbox);
    role_rt_fini(&rt);
    return rc;
}
