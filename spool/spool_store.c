/*
 * spool_store - store requests from ingress, group commit, durable acks
 *
 * Every MSG_INGRESS_MESSAGE_STORE that arrives in one pass over the rings goes into one RocksDB
 * write batch; spool_store_commit() (after the pass) writes it with one WAL fsync and only then
 * answers MSG_SPOOL_MESSAGE_STORED to each requester. Requests that arrive while that fsync runs
 * wait in the rings and form the next batch: group commit without a timer.
 * The arena run is validated (bounds, then proto_msg_decode: header, exact length, strict envelope
 * decode) before anything is stored; a bad request is answered with an error status, never
 * stored, and counted. The run is freed as soon as RocksDB has copied it into the batch, with the write-ahead of its Reception
 * records (spool_wal.c). The same batch carries the envelope updates of attempt results and fails
 * (spool_upd.c); after the acks the new messages are announced in batches (spool_ann.c).
 */
#include "spool/spool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "common/proto_msg.h"
#include "spool/spool_dlv.h"

static void answer(struct spool *sp, unsigned to, uint32_t gen, uint64_t token, struct msgid id, int status)
{
    struct proto_rec r = {.type = MSG_SPOOL_MESSAGE_STORED, .dst_gen = gen};
    r.body.stored.token = token;
    r.body.stored.status = status;
    r.body.stored.msg_id_hi = id.hi;
    r.body.stored.msg_id_lo = id.lo;
    spool_out_send(sp, to, &r);
}

/* log_reception - the Reception records of a store, in the batch that stores it */
static void log_reception(struct spool *sp, const struct spool_pending *pd)
{
    char idtext[MSGID_TEXT_SIZE];
    struct spool_log_event ev = {0};

    msgid_format(pd->id, idtext);
    ev.id = idtext;
    ev.sender = pd->rec.sender;
    ev.size = pd->rec.body_size;
    ev.created = (int64_t)(pd->rec.created_ms / 1000u);
    struct spool_log_kv kv[PROTO_ENV_META_MAX];
    for (uint32_t i = 0; i < pd->rec.meta_count && i < PROTO_ENV_META_MAX; i++)
        kv[i] = (struct spool_log_kv){pd->rec.meta[i].key, pd->rec.meta[i].value};
    ev.meta = kv;
    ev.meta_count = pd->rec.meta_count < PROTO_ENV_META_MAX ? pd->rec.meta_count : PROTO_ENV_META_MAX;
    /* one record per recipient, as KumoMTA does, so each can be followed to its outcome */
    for (uint32_t i = 0; i < pd->rec.rcpt_count; i++) {
        char dom[PROTO_ENV_ADDR_MAX + 1];
        ev.recipient = pd->rec.rcpts[i].addr;
        /* the scheduled queue the recipient goes to, as its delivery records will name it */
        spool_dlv_domain(ev.recipient, dom, sizeof(dom));
        char *queue = spool_dlv_queue_name(&pd->rec, dom);
        ev.queue = queue;
        spool_wal_event(sp, SPOOL_LOG_RECEPTION, &ev);
        free(queue);
    }
}

void spool_store_request(struct spool *sp, unsigned from, const struct proto_rec *rec)
{
    struct role_rt *rt = sp->rt;
    const struct proto_store *st = &rec->body.store;
    struct msgid id = {st->msg_id_hi, st->msg_id_lo};
    struct proto_msg_run m;
    const char *why = NULL;
    int status = -EINVAL;

    if (shm_segment_role(&rt->seg, from) != PROTO_NODE_ROLE_INGRESS) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_STORE_REJECTED, 1);
        log_warn("store request from instance %u, which is not an ingress; ignored", from);
        return;
    }
    char *p = shm_arena_ptr(rt->seg.arena, st->arena_off, st->len);
    if (!p) {
        why = "arena range invalid";
        goto reject;
    }
    if (proto_msg_decode(p, st->len, &m, &why) < 0)
        goto reject;
    if (sp->db && spool_db_needs_recover(sp->db)) {
        proto_msg_fini(&m);
        why = "spool database is recovering from a write error";
        status = -EIO;
        goto reject;
    }
    if (sp->n_pend == sp->pend_cap) {
        sp->pend_cap = sp->pend_cap ? sp->pend_cap * 2 : 64;
        sp->pend = xrealloc(sp->pend, sp->pend_cap * sizeof(*sp->pend));
    }
    struct spool_pending *pd = &sp->pend[sp->n_pend];
    memset(pd, 0, sizeof(*pd));
    pd->rec = m.env; /* the decoded envelope moves to the pending store */
    /* a report is final once its records are in the batch: nothing is stored to deliver (spool_fbl.c) */
    pd->report = spool_fbl_is_report(&pd->rec);
    /* suppressed recipients (accepted at RCPT with on_rcpt = "drop", or suppressed since): final now, with
     * their Reception and Suppressed records; a message with none left is not stored at all */
    uint8_t *hits = NULL;
    uint32_t supp = pd->report ? 0 : spool_supp_store(sp, &pd->rec, &hits);
    status = pd->report || (supp && proto_env_all_final(&pd->rec))
                 ? 0
                 : spool_db_batch_store(sp->batch, id, &pd->rec, m.body, m.body_len);
    if (status < 0) {
        free(hits);
        proto_env_fini(&pd->rec);
        why = "envelope refused by the store";
        goto reject;
    }
    /* RocksDB copied it into the batch: the run is no longer needed */
    shm_arena_free(rt->seg.arena, st->arena_off);
    pd->from = from;
    pd->body_len = pd->report ? 0 : m.body_len; /* a report is not stored */
    pd->from_gen = rec->src_gen;
    pd->token = st->token;
    pd->id = id;
    sp->n_pend++;
    log_reception(sp, pd);
    if (pd->report)
        spool_fbl_record(sp, id, &pd->rec);
    spool_supp_store_log(sp, id, &pd->rec, hits);
    return;

reject:
    proto_node_counter_add(rt->self, PROTO_NODE_CTR_STORE_REJECTED, 1);
    log_warn("store request from ingress instance %u refused: %s", from, why ? why : "invalid");
    if (p)
        shm_arena_free(rt->seg.arena, st->arena_off);
    answer(sp, from, rec->src_gen, st->token, id, status);
}

void spool_store_commit(struct spool *sp)
{
    struct role_rt *rt = sp->rt;

    if (sp->n_pend == 0 && !spool_upd_pending(sp) && !spool_rebind_pending(sp) && spool_db_batch_count(sp->batch) == 0 &&
        spool_db_logrec_count(sp->batch) == 0)
        return;
    /* stores, envelope updates, deletes and DSNs of this pass: one write batch, one fsync */
    uint64_t t0 = clock_mono_ns();
    int rc = spool_db_commit(sp->db, sp->batch);
    uint64_t t1 = clock_mono_ns();
    proto_hist_record(&rt->self->hist[PROTO_NODE_HIST_FSYNC], PROTO_HIST_FAST, t1 > t0 ? (t1 - t0) / 1000u : 0);
    if (rc == 0) {
        if (spool_db_batch_count(sp->batch) > 0)
            proto_node_counter_add(rt->self, PROTO_NODE_CTR_SPOOL_COMMITS, 1);
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_MESSAGES_STORED, sp->n_pend);
        uint64_t bytes = 0;
        for (size_t i = 0; i < sp->n_pend; i++)
            bytes += sp->pend[i].body_len;
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_BYTES_STORED, bytes);
        if (spool_db_write_stalled(sp->db))
            proto_node_counter_add(rt->self, PROTO_NODE_CTR_SPOOL_WRITE_STALLS, 1);
    } else {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_SPOOL_COMMIT_FAILURES, 1);
        log_error("spool commit of %zu messages and %zu updates failed: %s (%s); each store gets 451", sp->n_pend,
                  sp->n_upds, strerror(-rc), spool_db_error(sp->db));
    }
    for (size_t i = 0; i < sp->n_pend; i++) {
        struct spool_pending *pd = &sp->pend[i];
        /* the fsync covering this message has returned: only now may the 250 be sent (DUR-01) */
        answer(sp, pd->from, pd->from_gen, pd->token, pd->id, rc);
    }
    /* the records of this batch (Receptions, results, DSN Receptions) in the order they were added */
    spool_wal_committed(sp, rc);
    spool_upd_committed(sp, rc);
    spool_rebind_committed(sp, rc);
    /* announcements follow the acks: the messages just made durable, then DSNs stored by updates */
    for (size_t i = 0; i < sp->n_pend; i++) {
        struct spool_pending *pd = &sp->pend[i];
        if (rc == 0 && !pd->report)
            spool_ann_add(sp, pd->id, &pd->rec);
        proto_env_fini(&pd->rec);
    }
    sp->n_pend = 0;
    spool_db_batch_reset(sp->batch);
    spool_ann_flush(sp);
}

/* parse_enhanced - "5.7.1 text" -> class/subject/detail and the text after it */
static const char *parse_enhanced(const char *t, struct spool_log_response *r)
{
    unsigned a, b, c;
    int used = 0;

    if (sscanf(t, "%1u.%3u.%3u %n", &a, &b, &c, &used) == 3 && used > 0 && (a == 2 || a == 4 || a == 5)) {
        r->enh_class = (uint8_t)a;
        r->enh_subject = (uint16_t)b;
        r->enh_detail = (uint16_t)c;
        return t + used;
    }
    return t;
}

void spool_store_rejection(struct spool *sp, unsigned from, const struct proto_rec *rec)
{
    struct role_rt *rt = sp->rt;
    const struct proto_store *st = &rec->body.store;
    struct proto_rej rj;
    const char *why = NULL;

    if (shm_segment_role(&rt->seg, from) != PROTO_NODE_ROLE_INGRESS)
        return;
    char *p = shm_arena_ptr(rt->seg.arena, st->arena_off, st->len);
    if (!p) {
        why = "arena range invalid";
        goto out;
    }
    if (proto_msg_rej_decode(p, st->len, &rj, &why) < 0)
        goto out;
    const char *const *str = rj.str;
    struct spool_log_event ev = {0};
    ev.sender = str[PROTO_REJ_SENDER];
    ev.recipient = str[PROTO_REJ_RCPT];
    ev.peer_addr = str[PROTO_REJ_PEER];
    ev.peer_name = str[PROTO_REJ_EHLO][0] ? str[PROTO_REJ_EHLO] : NULL;
    ev.timestamp = rj.timestamp;
    ev.response.code = rj.code;
    ev.response.command = str[PROTO_REJ_COMMAND][0] ? str[PROTO_REJ_COMMAND] : NULL;
    const char *reply = str[PROTO_REJ_REPLY];
    ev.response.content = strlen(reply) > 4 ? parse_enhanced(reply + 4, &ev.response) : "";
    if (spool_log_rejection(sp->log, &ev) < 0)
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_LOG_DROPPED, 1);
    proto_msg_rej_fini(&rj);
out:
    if (why) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_LOG_DROPPED, 1);
        log_warn("rejection record from ingress instance %u dropped: %s", from, why);
    }
    if (p)
        shm_arena_free(rt->seg.arena, st->arena_off);
}
