/*
 * ingress_log - Rejection records: every 4xx/5xx the ingress sends becomes a log record
 *
 * The ingress never touches the disk: it packs the facts (peer, EHLO name, command, sender,
 * recipient, our reply) into a small arena run and hands it to the spool, which writes the record.
 * Logging never blocks or fails a session: when the arena or the ring is full the record is dropped
 * and counted (log_records_dropped), the reply goes out regardless.
 */
#include "ingress.h"

#include <string.h>
#include <time.h>

#include "../common/proto_msg.h"

void ingress_log_rejection(struct ingress_session *s, const char *reply, size_t len)
{
    struct role_rt *rt = s->ig->rt;
    const char *cmd = s->cur_verb ? ingress_parse_verb_name(s->cur_verb) : "";
    const char *str[PROTO_REJ_STRINGS] = {s->peer_ip, s->helo, cmd, s->sender, s->cur_rcpt, reply};
    size_t lens[PROTO_REJ_STRINGS] = {strlen(s->peer_ip), strlen(s->helo), strlen(cmd), strlen(s->sender),
                                      strlen(s->cur_rcpt), len};
    struct proto_rej_hdr h = {.magic = PROTO_REJ_MAGIC, .version = 1, .timestamp = (int64_t)time(NULL)};
    size_t total = sizeof(h);
    uint64_t off;

    h.code = (uint16_t)((reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0'));
    for (int i = 0; i < PROTO_REJ_STRINGS; i++) {
        if (lens[i] > PROTO_REJ_STRING_MAX)
            lens[i] = PROTO_REJ_STRING_MAX;
        h.len[i] = (uint16_t)lens[i];
        total += lens[i];
    }
    if (shm_arena_alloc(rt->seg.arena, total, (uint16_t)rt->self_idx, rt->gen, &off) < 0) {
        shm_counter_add(rt->self, SHM_CTR_LOG_DROPPED, 1);
        return;
    }
    char *p = shm_arena_ptr(rt->seg.arena, off, total);
    memcpy(p, &h, sizeof(h));
    p += sizeof(h);
    for (int i = 0; i < PROTO_REJ_STRINGS; i++) {
        memcpy(p, str[i], lens[i]);
        p += lens[i];
    }
    uint32_t spool_gen = atomic_load(&rt->seg.inst[0].generation);
    shm_arena_give(rt->seg.arena, off, 0, spool_gen);
    struct proto_rec r = {.type = MSG_INGRESS_LOG_REJECTION, .dst_gen = spool_gen};
    r.body.store.arena_off = off;
    r.body.store.len = total;
    if (role_rt_send(rt, 0, &r) < 0) {
        shm_arena_free(rt->seg.arena, off);
        shm_counter_add(rt->self, SHM_CTR_LOG_DROPPED, 1);
    }
}
