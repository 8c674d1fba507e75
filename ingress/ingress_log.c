/*
 * ingress_log - Rejection records: every 4xx/5xx the ingress sends becomes a log record
 *
 * The ingress never touches the disk: it packs the facts (peer, EHLO name, command, sender,
 * recipient, our reply) into a small arena run and hands it to the spool, which writes the record.
 * Logging never blocks or fails a session: when the arena or the ring is full the record is dropped
 * and counted (log_records_dropped), the reply goes out regardless.
 */
#include "ingress/ingress.h"

#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "common/proto_msg.h"

/* log_send - a Rejection record through the arena to the spool (best effort: counted when dropped) */
static void log_send(struct role_rt *rt, const char *const str[PROTO_REJ_STRINGS],
                     const size_t lens[PROTO_REJ_STRINGS])
{
    struct buf run = {0};
    uint64_t off;

    if (proto_msg_rej_encode(str, lens, (int64_t)time(NULL), &run) < 0 ||
        shm_arena_alloc(rt->seg.arena, run.len, (uint16_t)rt->self_idx, rt->gen, &off) < 0) {
        buf_fini(&run);
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_LOG_DROPPED, 1);
        return;
    }
    memcpy(shm_arena_ptr(rt->seg.arena, off, run.len), run.data, run.len);
    uint32_t spool_gen = atomic_load(&rt->seg.inst[0].generation);
    shm_arena_give(rt->seg.arena, off, 0, spool_gen);
    struct proto_rec r = {.type = MSG_INGRESS_LOG_REJECTION, .dst_gen = spool_gen};
    r.body.store.arena_off = off;
    r.body.store.len = run.len;
    buf_fini(&run);
    if (role_rt_send(rt, 0, &r) < 0) {
        shm_arena_free(rt->seg.arena, off);
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_LOG_DROPPED, 1);
    }
}

void ingress_log_rejection(struct ingress_session *s, const char *reply, size_t len)
{
    const char *cmd = s->cur_verb ? smtp_cmd_verb_name(s->cur_verb) : "";
    const char *str[PROTO_REJ_STRINGS] = {s->peer_ip, s->helo, cmd, s->sender, s->cur_rcpt, reply};
    size_t lens[PROTO_REJ_STRINGS] = {strlen(s->peer_ip), strlen(s->helo), strlen(cmd), strlen(s->sender),
                                      strlen(s->cur_rcpt), len};
    log_send(s->ig->rt, str, lens);
}

void ingress_log_refusal(struct ingress *ig, const char *peer_ip, const char *reply)
{
    /* a connection flood must not fill the arena with log records: a token bucket per worker, the
     * excess only counted (log_records_dropped) */
    uint64_t now = clock_mono_ns();
    if (now - ig->refusal_refill_ns >= 1000000000u) {
        ig->refusal_refill_ns = now;
        ig->refusal_tokens = INGRESS_REFUSAL_LOGS_PER_S;
    }
    if (ig->refusal_tokens == 0) {
        proto_node_counter_add(ig->rt->self, PROTO_NODE_CTR_LOG_DROPPED, 1);
        return;
    }
    ig->refusal_tokens--;
    const char *str[PROTO_REJ_STRINGS] = {peer_ip, "", "connect", "", "", reply};
    size_t lens[PROTO_REJ_STRINGS] = {strlen(peer_ip), 0, 7, 0, 0, strlen(reply)};
    log_send(ig->rt, str, lens);
}
