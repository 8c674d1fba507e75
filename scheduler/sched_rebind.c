/*
 * sched_rebind - the operator's rebind and connection abort (ringctl rebind, abort-ready-q-conn)
 *
 * rebind: the queued messages the selectors match (as bounce's: --domain D [--tenant T] [--campaign C],
 * --tenant T, --campaign C, --queue Q or --everything) that are not in flight leave the core and go to
 * the spool in MSG_SCHEDULER_MESSAGE_REBIND runs (common/proto_rebind.h) naming the new queue (metadata
 * `queue`) or route (metadata `route`, hosts as a [route] value has them, checked and written out with
 * explicit ports here). The spool rewrites each envelope with AdminRebind records in one commit and then
 * announces the message again, so the core takes it back from the durable state, under its new binding,
 * due now: nothing of the binding lives only here. A message in flight is skipped and counted (its
 * attempt's result decides; the operator runs rebind again for what is still queued), and so is one
 * whose recipients span several domains (the core has an entry per domain; the binding is the whole
 * envelope's, and its other domains did not ask to move; the spool checks again). A run the arena has
 * no room for leaves its messages where they are, counted as not moved.
 * --to-queue needs --domain, or --queue Q (its domain), since a queue routes to one domain, and a queue that
 * does not route elsewhere.
 * A route target is announced by the spool as the routing domain "route:HOSTS"; sched_rebind_resolve()
 * answers it (sched_route.c asks) with the site "route:HOSTS", as a [route] of those hosts would.
 *
 * abort-ready-q-conn: every live lease of the path SOURCE->SITE gets a MSG_SCHEDULER_LEASE_ABORT to its
 * worker; the egress closes the connection (QUIT when idle, else the transaction is abandoned: what got
 * no final reply is a transient failure) and reports as usual; an aborted attempt is not counted
 * (scheduler_main.c: PROTO_DONE_F_ABORTED puts the message back due now). An idle lease ends in the core at
 * once; a busy one is marked and ends with its result, whatever the result (it may have finished before the
 * abort reached the worker), so no message is handed to a lease whose connection is going. The path stays
 * open for new connections unless it is suspended.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/mem.h"
#include "common/proto_dlv.h"
#include "common/proto_rebind.h"
#include "scheduler/sched_admin.h"
#include "scheduler/scheduler.h"

#define SPOOL 0 /* the spool's instance index in the role table */
#define ROUTE_PREFIX "route:"

struct match {
    struct scheduler *sc;
    const struct proto_admin_args *a;
    struct msgid *keys;
    size_t n, cap;
    uint64_t in_flight, multi;
    json_t *entries; /* real id (hex) of each match -> the core's entries of that message (its domains) */
};

static void id_text(struct scheduler *sc, struct msgid key, char *out, size_t cap)
{
    struct msgid id;
    uint32_t rcpt_first;
    sched_keys_real(&sc->keys, key, &id, &rcpt_first);
    snprintf(out, cap, "%016llx%016llx", (unsigned long long)id.hi, (unsigned long long)id.lo);
}

/* count_entry - one more core entry of a matched message */
static void count_entry(void *arg, const struct sched_msg *m)
{
    struct match *mt = arg;
    char t[40];
    id_text(mt->sc, m->id, t, sizeof(t));
    json_t *v = json_object_get(mt->entries, t);
    if (v)
        json_integer_set(v, json_integer_value(v) + 1);
}

/* drop_multi - a message whose recipients span several domains is not rebound (its binding is the whole
 * envelope's, and its other domains did not ask to move): out of the matches, counted */
static void drop_multi(struct match *mt)
{
    char t[40];
    mt->entries = json_object();
    for (size_t i = 0; i < mt->n; i++) {
        id_text(mt->sc, mt->keys[i], t, sizeof(t));
        json_object_set_new(mt->entries, t, json_integer(0));
    }
    sched_msg_foreach(mt->sc->core, count_entry, mt);
    size_t k = 0;
    for (size_t i = 0; i < mt->n; i++) {
        id_text(mt->sc, mt->keys[i], t, sizeof(t));
        if (json_integer_value(json_object_get(mt->entries, t)) > 1)
            mt->multi++;
        else
            mt->keys[k++] = mt->keys[i];
    }
    mt->n = k;
    json_decref(mt->entries);
    mt->entries = NULL;
}

static bool part_is(const char *p, size_t n, const char *want)
{
    return strlen(want) == n && (n == 0 || memcmp(p, want, n) == 0);
}

static void match_one(void *arg, const struct sched_msg *m)
{
    struct match *mt = arg;
    const struct proto_admin_args *a = mt->a;
    const char *c, *t;
    size_t cl, tl;

    if (a->queue) {
        if (strcmp(m->queue->n.name, a->queue) != 0)
            return;
    } else if (!a->everything) {
        if (a->domain && (!m->queue->domain || strcasecmp(m->queue->domain->n.name, a->domain) != 0))
            return;
        sched_queue_name_parts(m->queue->n.name, &c, &cl, &t, &tl);
        if ((a->tenant && !part_is(t, tl, a->tenant)) || (a->campaign && !part_is(c, cl, a->campaign)))
            return;
    }
    if (m->state == SCHED_MSG_IN_FLIGHT) {
        mt->in_flight++;
        return;
    }
    if (mt->n == mt->cap) {
        mt->cap = mt->cap ? mt->cap * 2 : 64;
        mt->keys = xrealloc(mt->keys, mt->cap * sizeof(*mt->keys));
    }
    mt->keys[mt->n++] = m->id;
}

/* send_run - one run to the spool; -ENOSPC when the arena has no room now, -EINVAL when it does not encode */
static int send_run(struct scheduler *sc, enum proto_rebind_kind kind, const char *target, const char *reason,
                    const char *who, const struct proto_rebind_ent *ent, uint32_t n)
{
    struct role_rt *rt = sc->rt;
    struct buf b = {0};
    uint64_t off;
    int rc = proto_rebind_encode(kind, target, reason, who, ent, n, &b);
    if (rc == 0 && shm_arena_alloc(rt->seg.arena, b.len, (uint16_t)rt->self_idx, rt->gen, &off) < 0)
        rc = -ENOSPC;
    if (rc == 0) {
        memcpy(shm_arena_ptr(rt->seg.arena, off, b.len), b.data, b.len);
        uint32_t gen = atomic_load(&rt->seg.inst[SPOOL].generation);
        shm_arena_give(rt->seg.arena, off, SPOOL, gen);
        struct proto_rec r = {.type = MSG_SCHEDULER_MESSAGE_REBIND, .dst_gen = gen};
        r.body.batch.arena_off = off;
        r.body.batch.len = b.len;
        r.body.batch.count = n;
        scheduler_send(sc, SPOOL, &r);
    }
    buf_fini(&b);
    return rc;
}

/* move - the matched messages to the spool in runs, each leaving the core once its run is sent */
static uint64_t move(struct scheduler *sc, struct match *mt, enum proto_rebind_kind kind, const char *target,
                     const char *reason, const char *who)
{
    struct proto_rebind_ent *ent = xcalloc(PROTO_REBIND_MAX, sizeof(*ent));
    uint64_t moved = 0;
    for (size_t i = 0; i < mt->n;) {
        uint32_t n = 0;
        size_t first = i;
        for (; i < mt->n && n < PROTO_REBIND_MAX; i++) {
            struct msgid id;
            uint32_t rcpt_first;
            bool dup = false;
            sched_keys_real(&sc->keys, mt->keys[i], &id, &rcpt_first);
            for (uint32_t k = 0; k < n && !dup; k++)
                dup = ent[k].msg_id_hi == id.hi && ent[k].msg_id_lo == id.lo;
            if (dup)
                break; /* a message's second domain goes into the next run */
            ent[n++] = (struct proto_rebind_ent){.msg_id_hi = id.hi, .msg_id_lo = id.lo, .rcpt_first = rcpt_first};
        }
        if (send_run(sc, kind, target, reason, who, ent, n) < 0) {
            log_warn("rebind: %zu message(s) not moved: no room in the arena now", mt->n - first);
            break;
        }
        for (size_t k = first; k < i; k++) {
            (void)sched_msg_remove(sc->core, mt->keys[k]);
            sched_keys_forget(&sc->keys, mt->keys[k]);
        }
        moved += n;
    }
    free(ent);
    return moved;
}

unsigned sched_rebind_op(struct scheduler *sc, const struct proto_admin_req *req, json_t **result, const char **error)
{
    const struct proto_admin_args *a = &req->args;
    unsigned given = (a->domain || a->tenant || a->campaign) + (a->queue != NULL) + a->everything;
    char *target = NULL;

    if (given != 1) {
        *error = "say what to rebind: --domain D [--tenant T] [--campaign C], --tenant T, --campaign C, --queue Q "
                 "or --everything";
        return 400;
    }
    if ((a->to_queue != NULL) == (a->to_route != NULL)) {
        *error = "say where to: --to-queue Q or --to-route HOSTS (one of them)";
        return 400;
    }
    if (a->to_queue) {
        /* the domain the new queue routes to: given, or the one of the --queue being emptied */
        const struct sched_queue *from = a->queue ? sched_queue_find(sc->core, a->queue) : NULL;
        const char *dom = a->domain && a->domain[0] ? a->domain : from && from->domain ? from->domain->n.name : NULL;
        if (!dom) {
            *error = a->queue ? "no such scheduled queue (queue-summary shows them)"
                              : "--to-queue needs --domain or --queue (a scheduled queue routes to one domain)";
            return a->queue ? 404 : 400;
        }
        if (!proto_dlv_ann_name_ok(a->to_queue, strlen(a->to_queue)) || strchr(a->to_queue, '!')) {
            *error = "the queue name is 1..1024 bytes without spaces, control characters or '!'";
            return 400;
        }
        const struct sched_queue *q = sched_queue_find(sc->core, a->to_queue);
        if (q && q->domain && strcasecmp(q->domain->n.name, dom) != 0) {
            *error = "that queue routes to another domain: pick another name";
            return 409;
        }
        target = xstrdup(a->to_queue);
    } else {
        struct cfg_route r;
        char *err = NULL;
        if (cfg_dlv_route_parse(a->to_route, sc->rt->cfg.egress_port, &r, &err) < 0) {
            snprintf(sc->admin->why, sizeof(sc->admin->why), "--to-route is host[:port],... as a [route] value: %s",
                     err);
            free(err);
            *error = sc->admin->why;
            return 400;
        }
        target = cfg_dlv_route_text(&r);
        cfg_dlv_route_fini(&r);
        if (!proto_rebind_route_ok(target, strlen(target))) {
            free(target);
            *error = "the route is too long";
            return 400;
        }
    }
    enum proto_rebind_kind kind = a->to_queue ? PROTO_REBIND_QUEUE : PROTO_REBIND_ROUTE;
    struct buf probe = {0};
    struct proto_rebind_ent one = {0};
    int rc = proto_rebind_encode(kind, target, a->reason, req->who, &one, 1, &probe);
    buf_fini(&probe);
    if (rc < 0) {
        free(target);
        *error = "the reason is too long or holds a control character";
        return 400;
    }
    struct match mt = {.sc = sc, .a = a};
    sched_msg_foreach(sc->core, match_one, &mt);
    drop_multi(&mt);
    uint64_t moved = move(sc, &mt, kind, target, a->reason, req->who);
    json_t *it = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s}", "kind", "rebind",
                           a->to_queue ? "to_queue" : "to_route", target, "moved", (json_int_t)moved,
                           "skipped_in_flight", (json_int_t)mt.in_flight, "skipped_multi_domain", (json_int_t)mt.multi,
                           "not_moved", (json_int_t)(mt.n - moved), "reason", a->reason ? a->reason : "", "who", req->who);
    *result = json_pack("{s:o}", "item", it);
    log_info("admin: rebind by %s to %s %s: %llu message(s) moved, %llu in flight skipped: %s", req->who,
             a->to_queue ? "queue" : "route", target, (unsigned long long)moved, (unsigned long long)mt.in_flight,
             a->reason ? a->reason : "");
    free(mt.keys);
    free(target);
    return 200;
}

bool sched_rebind_resolve(struct scheduler *sc, const char *domain)
{
    if (strncmp(domain, ROUTE_PREFIX, strlen(ROUTE_PREFIX)) != 0)
        return false;
    const char *hosts = domain + strlen(ROUTE_PREFIX);
    struct cfg_route r;
    char *err = NULL;
    if (cfg_dlv_route_parse(hosts, sc->rt->cfg.egress_port, &r, &err) < 0) {
        /* the spool announced a route it took: only a bug or a hand-edited spool gets here */
        log_warn("domain %s: %s; its messages wait", domain, err);
        free(err);
        (void)sched_site_failed(sc->core, domain, false, "bad route", scheduler_now_ms());
        return true;
    }
    char *text = cfg_dlv_route_text(&r);
    char *site = xasprintf(ROUTE_PREFIX "%s", text);
    (void)sched_site_resolved(sc->core, domain, site, 60, scheduler_now_ms());
    free(site);
    free(text);
    cfg_dlv_route_fini(&r);
    return true;
}

unsigned sched_rebind_abort(struct scheduler *sc, const struct proto_admin_req *req, json_t **result,
                            const char **error)
{
    const struct proto_admin_args *a = &req->args;
    const char *arrow = a->name ? strstr(a->name, "->") : NULL;
    char source[PROTO_ADMIN_STR_MAX + 1];

    if (!arrow || arrow == a->name || !arrow[2]) {
        *error = "name is SOURCE->SITE (as queue-summary shows it)";
        return 400;
    }
    snprintf(source, sizeof(source), "%.*s", (int)(arrow - a->name), a->name);
    struct sched_path *p = sched_path_find(sc->core, source, arrow + 2);
    if (!p) {
        *error = "no such ready queue (queue-summary shows them)";
        return 404;
    }
    uint64_t closed = 0, busy = 0;
    struct sched_core *core = sc->core;
    for (uint32_t i = 0; i < core->nleases; i++) {
        struct sched_lease *l = core->leases[i];
        if (l->path != p || l->worker >= PROTO_NODE_MAX_INSTANCES)
            continue;
        struct proto_rec r = {.type = MSG_SCHEDULER_LEASE_ABORT, .dst_gen = sc->egress_gen[l->worker]};
        r.body.abort.lease = l->id;
        r.body.abort.lease_gen = l->gen;
        scheduler_send(sc, l->worker, &r);
        closed++;
        /* an idle lease ends here and now, so that nothing is handed to it behind the abort (its LEASE_CLOSED
         * then names a lease that is gone, and is ignored); a busy one ends with its attempt's result */
        if (l->msg) {
            busy++;
            l->aborting = true;
        } else {
            sched_lease_released(core, l, false, scheduler_now_ms());
        }
    }
    json_t *it = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s}", "kind", "abort-ready-q-conn", "name", a->name, "closed",
                           (json_int_t)closed, "in_flight", (json_int_t)busy, "reason", a->reason ? a->reason : "",
                           "who", req->who);
    *result = json_pack("{s:o}", "item", it);
    log_info("admin: abort-ready-q-conn %s by %s: %llu connection(s) closed (%llu with a message in flight)%s%s",
             a->name, req->who, (unsigned long long)closed, (unsigned long long)busy, a->reason ? ": " : "",
             a->reason ? a->reason : "");
    return 200;
}
