/*
 * spool_rebind - an operator's rebind in the spool (MSG_SCHEDULER_MESSAGE_REBIND, ringctl rebind)
 *
 * The run (common/proto_rebind.h) is copied out of the arena and decoded before any of it is used.
 * Each message named gets its binding rewritten in the open write batch: to a queue, metadata `queue`
 * is the target and `route` goes; to a route, `route` is the target (queue names then end in
 * "!route:HOSTS", spool_dlv.c). One AdminRebind log record per queued recipient goes into the same
 * batch as a write-ahead (spool_wal.c), so the log and the spool agree. A message whose queued
 * recipients span several domains is not rebound (a binding is the whole envelope's): logged and
 * left as it is. Every message named, rebound or not, is announced again after the commit from what
 * is on disk (the scheduler let go of them when it sent the run), so none is left unscheduled, and a
 * failed commit announces the old binding.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "common/proto_rebind.h"
#include "spool/spool.h"
#include "spool/spool_dlv.h"

bool spool_rebind_pending(const struct spool *sp)
{
    return sp->n_rebound > 0;
}

static void owe_announce(struct spool *sp, struct msgid id)
{
    for (size_t i = 0; i < sp->n_rebound; i++)
        if (msgid_eq(sp->rebound[i], id))
            return;
    if (sp->n_rebound == sp->rebound_cap) {
        sp->rebound_cap = sp->rebound_cap ? sp->rebound_cap * 2 : 64;
        sp->rebound = xrealloc(sp->rebound, sp->rebound_cap * sizeof(*sp->rebound));
    }
    sp->rebound[sp->n_rebound++] = id;
}

int spool_env_set_meta(struct proto_env *rec, const char *key, const char *value)
{
    struct proto_env tmp = *rec;
    struct proto_env_meta *m = xcalloc(rec->meta_count + 1, sizeof(*m));
    uint32_t n = 0;
    for (uint32_t i = 0; i < rec->meta_count; i++)
        if (strcmp(rec->meta[i].key, key) != 0)
            m[n++] = rec->meta[i];
    if (value)
        m[n++] = (struct proto_env_meta){.key = key, .value = value};
    tmp.meta = m;
    tmp.meta_count = n;
    tmp._mem = NULL;
    struct buf b = {0};
    struct proto_env fresh;
    int rc = proto_env_encode(&tmp, &b);
    if (rc == 0)
        rc = proto_env_decode(b.data, b.len, &fresh, NULL) == 0 ? 0 : -EINVAL;
    buf_fini(&b);
    free(m);
    if (rc < 0)
        return rc;
    proto_env_fini(rec);
    *rec = fresh;
    return 0;
}

/* one_domain - every queued recipient is in the domain of rcpt_first */
static bool one_domain(const struct proto_env *rec, uint32_t rcpt_first)
{
    for (uint32_t i = 0; i < rec->rcpt_count; i++)
        if (rec->rcpts[i].state == PROTO_RCPT_QUEUED && !spool_dlv_same_domain(rec->rcpts[i].addr, rec->rcpts[rcpt_first].addr))
            return false;
    return true;
}

static json_t *str_or_null(const char *s)
{
    return s && s[0] ? json_string(s) : json_null();
}

/* log_rebind - the AdminRebind record of one recipient (docs/logs.md) */
static void log_rebind(struct spool *sp, struct msgid id, const struct proto_env *rec, uint32_t i,
                       const char *old_queue, const char *old_route, const struct proto_rebind *rb)
{
    char idtext[MSGID_TEXT_SIZE], dom[PROTO_ENV_ADDR_MAX + 1];
    msgid_format(id, idtext);
    spool_dlv_domain(rec->rcpts[i].addr, dom, sizeof(dom));
    char *queue = spool_dlv_queue_name(rec, dom);
    const char *route = proto_env_meta_get(rec, PROTO_ENV_META_ROUTE);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:s, s:s}", "type", "AdminRebind", "id", idtext,
                          "sender", rec->sender, "recipient", rec->rcpts[i].addr, "queue", queue, "timestamp",
                          (json_int_t)(clock_real_ns() / 1000000000u), "created", (json_int_t)(rec->created_ms / 1000u),
                          "num_attempts", (int)rec->rcpts[i].attempts, "reason", rb->reason, "who", rb->who);
    if (!j) {
        /* a string that is not UTF-8 (a recipient of an SMTPUTF8 message is; a legacy one may not be) */
        j = json_pack("{s:s, s:s, s:s, s:s}", "type", "AdminRebind", "id", idtext, "reason", rb->reason, "who",
                      rb->who);
    }
    if (j) {
        json_object_set_new(j, "old_queue", str_or_null(old_queue));
        json_object_set_new(j, "new_queue", str_or_null(queue));
        json_object_set_new(j, "old_route", str_or_null(old_route));
        json_object_set_new(j, "new_route", str_or_null(route));
        json_object_set_new(j, "nodeid", str_or_null(sp->rt->cfg.node_id));
        spool_wal_add(sp, j);
    }
    free(queue);
}

/* rebind_one - the binding of one message rewritten in the batch; false when it is left as it is */
static bool rebind_one(struct spool *sp, const struct proto_rebind_ent *en, const struct proto_rebind *rb)
{
    struct msgid id = {en->msg_id_hi, en->msg_id_lo};
    char idtext[MSGID_TEXT_SIZE];
    msgid_format(id, idtext);
    long ei = spool_upd_env_get(sp, id);
    if (ei < 0 || sp->envs[ei].gone) {
        if (ei != -ENOENT && ei >= 0)
            log_info("rebind of %s: it left the spool", idtext);
        else if (ei != -ENOENT)
            log_error("rebind of %s: envelope unreadable (%s)", idtext, spool_db_error(sp->db));
        return false;
    }
    struct spool_env *e = &sp->envs[ei];
    if (en->rcpt_first >= e->rec.rcpt_count || spool_dlv_group(&e->rec, en->rcpt_first, NULL) == 0) {
        log_info("rebind of %s: no queued recipient in that domain any more", idtext);
        return false;
    }
    if (!one_domain(&e->rec, en->rcpt_first)) {
        log_warn("rebind of %s refused: its queued recipients span several domains (a binding is the whole "
                 "message's); it keeps its queue", idtext);
        return false;
    }
    char dom[PROTO_ENV_ADDR_MAX + 1];
    spool_dlv_domain(e->rec.rcpts[en->rcpt_first].addr, dom, sizeof(dom));
    char *old_queue = spool_dlv_queue_name(&e->rec, dom);
    const char *r = proto_env_meta_get(&e->rec, PROTO_ENV_META_ROUTE);
    char *old_route = r ? xstrdup(r) : NULL;
    int rc;
    if (rb->hdr.kind == PROTO_REBIND_QUEUE) {
        rc = spool_env_set_meta(&e->rec, PROTO_ENV_META_QUEUE, rb->target);
        if (rc == 0)
            rc = spool_env_set_meta(&e->rec, PROTO_ENV_META_ROUTE, NULL);
    } else {
        rc = spool_env_set_meta(&e->rec, PROTO_ENV_META_ROUTE, rb->target);
    }
    if (rc == 0) {
        for (uint32_t i = 0; i < e->rec.rcpt_count; i++)
            if (e->rec.rcpts[i].state == PROTO_RCPT_QUEUED)
                log_rebind(sp, id, &e->rec, i, old_queue, old_route, rb);
        /* moved by an operator: due at once on its new binding, also after a restart (sched_msg_resume) */
        e->rec.last_attempt_ms = 0;
        spool_upd_write_env(sp, e);
    } else {
        log_error("rebind of %s: the envelope does not take the new binding", idtext);
    }
    free(old_queue);
    free(old_route);
    return rc == 0;
}

void spool_rebind_request(struct spool *sp, unsigned from, const struct proto_rec *rec)
{
    struct role_rt *rt = sp->rt;
    const struct proto_batch *b = &rec->body.batch;
    struct proto_rebind rb;
    const char *why = "arena range invalid";
    int rc = -EBADMSG;

    if (shm_segment_role(&rt->seg, from) != PROTO_NODE_ROLE_SCHEDULER) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        log_warn("rebind from instance %u, which is not the scheduler; ignored", from);
        return;
    }
    const void *p = shm_arena_ptr(rt->seg.arena, b->arena_off, b->len);
    if (p) {
        rc = proto_rebind_decode(p, b->len, &rb, &why);
        shm_arena_free(rt->seg.arena, b->arena_off);
    }
    if (rc < 0) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        log_warn("rebind from the scheduler refused: %s", why);
        return;
    }
    uint32_t done = 0;
    for (uint32_t i = 0; i < rb.hdr.count; i++) {
        done += rebind_one(sp, &rb.ent[i], &rb);
        owe_announce(sp, (struct msgid){rb.ent[i].msg_id_hi, rb.ent[i].msg_id_lo});
    }
    log_info("rebind by %s to %s %s: %u of %u message(s) rebound", rb.who,
             rb.hdr.kind == PROTO_REBIND_QUEUE ? "queue" : "route", rb.target, done, rb.hdr.count);
    proto_rebind_fini(&rb);
}

void spool_rebind_committed(struct spool *sp, int rc)
{
    (void)rc; /* what is on disk either way: the new binding, or the old one after a failed commit */
    for (size_t i = 0; i < sp->n_rebound; i++) {
        struct proto_env rec;
        if (spool_db_get_envelope(sp->db, sp->rebound[i], &rec) == 0) {
            (void)spool_ann_add(sp, sp->rebound[i], &rec);
            proto_env_fini(&rec);
        }
    }
    sp->n_rebound = 0;
}

void spool_rebind_fini(struct spool *sp)
{
    free(sp->rebound);
    sp->rebound = NULL;
    sp->n_rebound = sp->rebound_cap = 0;
}
