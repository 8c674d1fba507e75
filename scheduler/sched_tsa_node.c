/*
 * sched_tsa_node - the traffic shaping automation in the scheduler process (engine: sched_tsa.h)
 *
 * The rules are those of the shaping the scheduler runs on (sc->shaping, loaded and reloaded by
 * sched_shaping.c); a reload changes them from the next response on (Threshold counters are kept by
 * rule index). The spool's MSG_SPOOL_TSA_RESPONSE runs go to the engine; each firing goes back to the
 * spool as MSG_SCHEDULER_TSA_EVENT (durable history, TSA log record), kept here while the arena has
 * no room. A response's site is renamed to the scheduler's name of its domain's site (local_site).
 * MSG_SPOOL_TSA_STATE runs (the spool's start-up walk) restore the firings: each not yet
 * expired is applied again; one already in the history (the spool restarted, the scheduler did not)
 * is skipped.
 * The engine's actions: Suspend and SuspendTenant/Campaign are the core's path and queue suspensions
 * (sched_path_suspend, sched_queue_suspend); Bounce* fail every matching queued message that is not
 * in flight with PROTO_FAIL_ADMIN_BOUNCE (AdminBounce records and DSNs from the spool), again at each
 * tick while the effect lasts; SetConfig/SetDomainConfig resolve the site's live paths again
 * (sched_shaping_reconfigure), which reads sched_tsa_overrides().
 * Once a second the tsa document (common/proto_status.h) is published into its status page, cut down
 * when it does not fit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/mem.h"
#include "common/proto_dlv.h"
#include "common/proto_status.h"
#include "common/proto_tsa.h"
#include "scheduler/sched_admin.h"
#include "scheduler/sched_shaping.h"
#include "scheduler/sched_tsa.h"
#include "scheduler/scheduler.h"

#define SPOOL 0 /* the spool's instance index in the role table */

/* ---- the rules: the shaping library ---- */

static size_t rules_in_scope(void *arg, const char *domain, const char *source, const char *site,
                             const struct shaping_rule ***out)
{
    struct scheduler *sc = arg;
    return sc->shaping ? shaping_rules(sc->shaping, domain, source, site, out) : 0;
}

/* ---- the engine's actions ---- */

static void op_suspend_path(void *arg, const char *source, const char *site, uint64_t until_ms)
{
    struct scheduler *sc = arg;
    int rc = sched_path_suspend(sc->core, source, site, until_ms);
    if (rc < 0)
        log_warn("TSA: suspension of %s->%s not applied (%s)", source, site, strerror(-rc));
}

static void op_suspend_queue(void *arg, const char *domain, const char *tenant, const char *campaign,
                             uint64_t until_ms)
{
    struct scheduler *sc = arg;
    int rc = sched_queue_suspend(sc->core, domain, tenant, campaign, until_ms);
    if (rc < 0)
        log_warn("TSA: suspension of the queues of %s tenant \"%s\" not applied (%s)", domain, tenant,
                 strerror(-rc));
}

struct sweep {
    const char *domain, *tenant, *campaign; /* tenant, campaign NULL: any */
    struct msgid *keys;
    size_t n, cap;
};

/* queue_part - campaign or tenant of a "campaign:tenant@domain" queue name into out ("" when none) */
static void queue_part(const char *queue, bool campaign, char *out, size_t cap)
{
    const char *at = strrchr(queue, '@');
    size_t n = at ? (size_t)(at - queue) : 0;
    const char *colon = at ? memchr(queue, ':', n) : NULL;
    const char *p = queue;
    if (campaign)
        n = colon ? (size_t)(colon - queue) : 0;
    else if (colon)
        p = colon + 1, n -= (size_t)(colon + 1 - queue);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

static void sweep_one(void *arg, const struct sched_msg *m)
{
    struct sweep *sw = arg;
    char part[SCHED_QUEUE_NAME_MAX + 1];

    if (m->state == SCHED_MSG_IN_FLIGHT || !m->queue->domain ||
        (strcmp(sw->domain, "*") != 0 && strcasecmp(m->queue->domain->n.name, sw->domain) != 0))
        return; /* "*": an operator's bounce of every domain (sched_tsa.h) */
    if (sw->tenant) {
        queue_part(m->queue->n.name, false, part, sizeof(part));
        if (strcmp(part, sw->tenant) != 0)
            return;
    }
    if (sw->campaign) {
        queue_part(m->queue->n.name, true, part, sizeof(part));
        if (strcmp(part, sw->campaign) != 0)
            return;
    }
    if (sw->n == sw->cap) {
        sw->cap = sw->cap ? sw->cap * 2 : 64;
        sw->keys = xrealloc(sw->keys, sw->cap * sizeof(*sw->keys));
    }
    sw->keys[sw->n++] = m->id;
}

/* admin_bounce - bounce m (AdminBounce, a DSN): the operator's reason when an operator's effect covers it */
static void admin_bounce(struct scheduler *sc, const struct sched_msg *m, const char *ten, const char *camp)
{
    bool op = sched_tsa_bounces_admin(sc->tsa, m->queue->domain->n.name, ten, camp, scheduler_now_ms());
    scheduler_send_fail(sc, m, PROTO_FAIL_ADMIN_BOUNCE, op ? PROTO_FAIL_REASON_OPERATOR : PROTO_FAIL_REASON_NONE);
}

/* parts - tenant and campaign of m's queue ("" when none) */
static void parts(const struct sched_msg *m, char *ten, char *camp, size_t cap)
{
    const char *c, *t;
    size_t cl, tl;
    sched_queue_name_parts(m->queue->n.name, &c, &cl, &t, &tl);
    snprintf(camp, cap, "%.*s", (int)cl, c ? c : "");
    snprintf(ten, cap, "%.*s", (int)tl, t ? t : "");
}

bool sched_tsa_node_admit(struct scheduler *sc, struct msgid key)
{
    struct sched_msg *m = sched_msg_find(sc->core, key);
    if (!m || !m->queue->domain)
        return true;
    char camp[SCHED_QUEUE_NAME_MAX + 1], ten[SCHED_QUEUE_NAME_MAX + 1];
    parts(m, ten, camp, sizeof(ten));
    if (!sc->tsa || !sched_tsa_bounces(sc->tsa, m->queue->domain->n.name, ten, camp, scheduler_now_ms()))
        return true;
    admin_bounce(sc, m, ten, camp);
    (void)sched_msg_remove(sc->core, key);
    return false;
}

static void op_bounce(void *arg, const char *domain, const char *tenant, const char *campaign)
{
    struct scheduler *sc = arg;
    struct sweep sw = {.domain = domain, .tenant = tenant, .campaign = campaign};

    sched_msg_foreach(sc->core, sweep_one, &sw); /* collect first: the walk must not change the core */
    for (size_t i = 0; i < sw.n; i++) {
        struct sched_msg *m = sched_msg_find(sc->core, sw.keys[i]);
        if (!m)
            continue;
        char camp[SCHED_QUEUE_NAME_MAX + 1], ten[SCHED_QUEUE_NAME_MAX + 1];
        parts(m, ten, camp, sizeof(ten));
        admin_bounce(sc, m, ten, camp);
        (void)sched_msg_remove(sc->core, sw.keys[i]);
    }
    if (sw.n)
        log_info("TSA: %zu queued message(s) of %s%s%s%s%s bounced", sw.n, domain, tenant ? " tenant " : "",
                 tenant ? tenant : "", campaign ? " campaign " : "", campaign ? campaign : "");
    free(sw.keys);
}

/* op_reconfigure - the overrides of a site changed: every live path of it (source NULL) resolves again */
static void op_reconfigure(void *arg, const char *source, const char *site)
{
    struct scheduler *sc = arg;
    for (uint32_t i = 0; i < sc->core->npaths; i++) {
        struct sched_path *p = sc->core->paths[i];
        const char *src = sched_path_source_name(sc->core, p);
        if (strcmp(p->site->n.name, site) == 0 && (!source || strcmp(src, source) == 0))
            sched_shaping_reconfigure(sc, src, site);
    }
}

/* send_event - 0 sent, -ENOSPC no arena room now */
static int send_event(struct scheduler *sc, const struct buf *run)
{
    struct role_rt *rt = sc->rt;
    uint64_t off;

    if (shm_arena_alloc(rt->seg.arena, run->len, (uint16_t)rt->self_idx, rt->gen, &off) < 0)
        return -ENOSPC;
    memcpy(shm_arena_ptr(rt->seg.arena, off, run->len), run->data, run->len);
    uint32_t gen = atomic_load(&rt->seg.inst[SPOOL].generation);
    shm_arena_give(rt->seg.arena, off, SPOOL, gen);
    struct proto_rec r = {.type = MSG_SCHEDULER_TSA_EVENT, .dst_gen = gen};
    r.body.batch.arena_off = off;
    r.body.batch.len = run->len;
    r.body.batch.count = 1;
    scheduler_send(sc, SPOOL, &r);
    return 0;
}

static void flush_events(struct scheduler *sc)
{
    size_t i = 0;
    for (; i < sc->n_tsa_out && send_event(sc, &sc->tsa_out[i]) == 0; i++)
        buf_fini(&sc->tsa_out[i]);
    if (i) {
        memmove(sc->tsa_out, sc->tsa_out + i, (sc->n_tsa_out - i) * sizeof(*sc->tsa_out));
        sc->n_tsa_out -= i;
    }
}

static void op_fired(void *arg, const struct proto_tsa_event *ev)
{
    sched_tsa_node_store(arg, ev);
}

void sched_tsa_node_store(struct scheduler *sc, const struct proto_tsa_event *ev)
{
    struct buf b = {0};

    proto_tsa_events_begin(&b);
    if (proto_tsa_events_append(&b, ev) < 0) {
        log_error("TSA firing not encodable: not stored");
        buf_fini(&b);
        return;
    }
    sc->tsa_out = xrealloc(sc->tsa_out, (sc->n_tsa_out + 1) * sizeof(*sc->tsa_out));
    sc->tsa_out[sc->n_tsa_out++] = b;
    flush_events(sc);
}

void sched_tsa_node_init(struct scheduler *sc)
{
    struct sched_tsa_ops ops = {
        .arg = sc,
        .rules = rules_in_scope,
        .match = shaping_rule_match,
        .suspend_path = op_suspend_path,
        .suspend_queue = op_suspend_queue,
        .bounce = op_bounce,
        .reconfigure = op_reconfigure,
        .fired = op_fired,
    };
    sc->tsa = sched_tsa_new(&ops);
}

void sched_tsa_node_fini(struct scheduler *sc)
{
    sched_tsa_free(sc->tsa);
    sc->tsa = NULL;
    for (size_t i = 0; i < sc->n_tsa_out; i++)
        buf_fini(&sc->tsa_out[i]);
    free(sc->tsa_out);
    sc->tsa_out = NULL;
    sc->n_tsa_out = 0;
}

/* local_site - the response's site as the scheduler names it: the site its domain resolved to while the
 * domain is still queued (the egress names route sites and mx_rollup = false sites its own way), else
 * the egress's name. The name is the core's (sites live as long as the core). */
static void local_site(struct scheduler *sc, struct proto_tsa_resp *r)
{
    char *lc = sched_name_lower_dup(r->str[PROTO_TSA_R_DOMAIN]);
    const struct sched_domain *d = (const struct sched_domain *)sched_name_find(&sc->core->domains, lc,
                                                                               sched_name_hash(lc));
    free(lc);
    if (d && d->site)
        proto_tsa_resp_set(r, PROTO_TSA_R_SITE, d->site->n.name);
}

void sched_tsa_node_record(struct scheduler *sc, const struct proto_rec *rec)
{
    struct role_rt *rt = sc->rt;
    const struct proto_batch *b = &rec->body.batch;
    const void *p = shm_arena_ptr(rt->seg.arena, b->arena_off, b->len);
    const char *why = "arena range invalid";
    int rc = -EBADMSG;

    if (rec->type == MSG_SPOOL_TSA_RESPONSE) {
        struct proto_tsa_resp r;
        if (p)
            rc = proto_tsa_resp_decode(p, b->len, &r, &why);
        if (rc == 0) {
            local_site(sc, &r);
            sched_admin_response(sc, r.str[PROTO_TSA_R_SOURCE], r.str[PROTO_TSA_R_SITE], r.str[PROTO_TSA_R_TEXT],
                                 r.hdr.timestamp_ms > 0 ? (uint64_t)r.hdr.timestamp_ms : scheduler_now_ms());
            if (sched_tsa_response(sc->tsa, &r, scheduler_now_ms()) > 0)
                sched_warmup_tsa(sc, r.str[PROTO_TSA_R_SOURCE], r.str[PROTO_TSA_R_SITE], r.str[PROTO_TSA_R_TEXT]);
            proto_tsa_resp_fini(&r);
        }
    } else {
        struct proto_tsa_events ev;
        if (p)
            rc = proto_tsa_events_decode(p, b->len, &ev, &why);
        if (rc == 0) {
            size_t live = 0;
            for (uint32_t i = 0; i < ev.count; i++)
                if (!sched_warmup_restore(sc, &ev.ev[i])) /* a warm-up hold kept through the spool */
                    live += sched_tsa_restore(sc->tsa, &ev.ev[i], scheduler_now_ms());
            if (live)
                log_info("TSA: %zu stored effect(s) in force applied again", live);
            proto_tsa_events_fini(&ev);
        }
    }
    if (p)
        shm_arena_free(rt->seg.arena, b->arena_off);
    if (rc < 0) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        log_warn("TSA record from the spool refused: %s", why);
    }
}

json_t *sched_tsa_overrides(struct scheduler *sc, const char *source, const char *site, const char *domain)
{
    return sc->tsa ? sched_tsa_overrides_of(sc->tsa, source, site, domain, scheduler_now_ms()) : NULL;
}

static void publish(struct scheduler *sc)
{
    size_t max = PROTO_STATUS_TSA_MAX;
    for (int tries = 0; tries < 6; tries++) {
        struct proto_status_tsa doc;
        sched_tsa_status(sc->tsa, scheduler_now_ms(), max, max, &doc);
        char *s = proto_status_tsa_encode(&doc, false);
        free(doc.active);
        free(doc.history);
        int rc = s ? shm_segment_page_publish(&sc->rt->seg, PROTO_NODE_STATUS_TSA, s, strlen(s)) : -EINVAL;
        free(s);
        if (rc == 0)
            return;
        max /= 2;
    }
    log_warn("TSA status does not fit its status page even when cut down");
}

void sched_tsa_node_tick(struct scheduler *sc, bool pub)
{
    flush_events(sc);
    sched_tsa_tick(sc->tsa, scheduler_now_ms());
    if (pub)
        publish(sc);
}
