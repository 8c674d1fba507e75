/*
 * spool_load - MSG_EGRESS_MESSAGE_LOAD: a stored message back into the arena for delivery
 *
 * The run has the layout ingress used to hand the message over (proto_msg.h): proto_msg_hdr, the
 * envelope as stored (proto_env encoding, with the recipients' current states and attempts), the
 * message bytes; proto_msg_head() encodes the first two. The body is read straight from RocksDB into the run and given to the asking egress
 * instance's generation, which frees it. The answer MSG_SPOOL_MESSAGE_LOADED carries -ENOENT for
 * a message no longer in the spool, -ENOMEM when the arena has no room (the egress retries), -EIO
 * for a read error or an envelope that disagrees with its body.
 * Loads read what is committed: a result in the open write batch is not visible yet, which only
 * means a recipient finished in this pass can be offered once more (the update ignores it then).
 */
#include "spool/spool.h"

#include <errno.h>
#include <string.h>

#include "base/log.h"
#include "common/proto_msg.h"

static void answer(struct spool *sp, unsigned to, uint32_t gen, uint64_t token, int status, uint64_t off,
                   uint64_t len)
{
    struct proto_rec r = {.type = MSG_SPOOL_MESSAGE_LOADED, .dst_gen = gen};
    r.body.loaded.token = token;
    r.body.loaded.status = status;
    r.body.loaded.arena_off = off;
    r.body.loaded.len = len;
    spool_out_send(sp, to, &r);
}

void spool_load_request(struct spool *sp, unsigned from, const struct proto_rec *rec)
{
    struct role_rt *rt = sp->rt;
    const struct proto_load *ld = &rec->body.load;
    struct msgid id = {ld->msg_id_hi, ld->msg_id_lo};
    struct proto_env env;
    struct buf enc = {0};
    uint64_t off = 0;
    char idtext[MSGID_TEXT_SIZE];

    if (shm_segment_role(&rt->seg, from) != PROTO_NODE_ROLE_EGRESS) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        log_warn("load request from instance %u, which is not an egress; ignored", from);
        return;
    }
    /* the asker was replaced: its successor drops the answer, and a run given to it would never be freed */
    if (atomic_load(&rt->seg.inst[from].generation) != rec->src_gen)
        return;
    msgid_format(id, idtext);
    int rc = spool_db_get_envelope(sp->db, id, &env);
    if (rc < 0) {
        if (rc != -ENOENT)
            log_warn("load of %s: envelope unreadable: %s", idtext, spool_db_error(sp->db));
        answer(sp, from, rec->src_gen, ld->token, rc == -ENOENT ? -ENOENT : -EIO, 0, 0);
        return;
    }
    /* recipients suppressed while the message was queued are not sent: final now, with a Suppressed record */
    spool_supp_before_load(sp, id, &env);
    if (proto_env_all_final(&env)) {
        proto_env_fini(&env);
        answer(sp, from, rec->src_gen, ld->token, -ENOENT, 0, 0);
        return;
    }
    size_t body = env.body_size;
    rc = proto_msg_head(&env, body, &enc);
    proto_env_fini(&env);
    if (rc < 0) {
        buf_fini(&enc);
        answer(sp, from, rec->src_gen, ld->token, -EIO, 0, 0);
        return;
    }
    size_t total = enc.len + body;
    rc = shm_arena_alloc(rt->seg.arena, total, (uint16_t)rt->self_idx, rt->gen, &off);
    if (rc < 0) {
        buf_fini(&enc);
        /* -EFBIG (bigger than the whole arena) can never succeed: say so instead of a retry loop */
        answer(sp, from, rec->src_gen, ld->token, rc == -ENOSPC ? -ENOMEM : -EIO, 0, 0);
        if (rc != -ENOSPC)
            log_error("load of %s: %zu bytes do not fit the arena (%d)", idtext, total, rc);
        return;
    }
    char *p = shm_arena_ptr(rt->seg.arena, off, total);
    memcpy(p, enc.data, enc.len);
    size_t got = 0;
    rc = spool_db_read_body(sp->db, id, p + enc.len, body, &got);
    buf_fini(&enc);
    if (rc < 0 || got != body) {
        shm_arena_free(rt->seg.arena, off);
        /* an envelope whose body is gone or of another size is damage, not a vanished message */
        log_error("load of %s: body unreadable or %zu bytes instead of %zu (%s: %s)", idtext, got, body,
                  strerror(rc < 0 ? -rc : EBADMSG), rc < 0 ? spool_db_error(sp->db) : "size differs");
        answer(sp, from, rec->src_gen, ld->token, -EIO, 0, 0);
        return;
    }
    shm_arena_give(rt->seg.arena, off, (uint16_t)from, rec->src_gen);
    answer(sp, from, rec->src_gen, ld->token, 0, off, total);
}
