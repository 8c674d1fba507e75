/*
 * proto_ring - the record that travels on every shared-memory ring
 *
 * One record is one cache line. It holds ids, offsets, lengths and sequence numbers, never
 * pointers. The consumer treats every field as untrusted: shm_ring_pop() checks seq, version
 * and type; the handler of each type checks its body (offsets against the arena, ids against
 * its own tables). Message-specific bodies are laid out in the union below, each with a size
 * assert; new messages get a new type number and never change an existing layout.
 */
#ifndef RINGMAIL_PROTO_RING_H
#define RINGMAIL_PROTO_RING_H

#include <stdint.h>

#define PROTO_RING_VERSION 1
#define PROTO_REC_SIZE 64
#define PROTO_BODY_SIZE 40

enum proto_msg {
    MSG_NONE = 0,
    /* liveness probe sent by every role to each peer it has a ring to; answered with PONG */
    MSG_ROLE_PING = 1,
    MSG_ROLE_PONG = 2,
    /* ingress -> spool: store the body at arena [off, off+len) with the envelope record after it */
    MSG_INGRESS_MESSAGE_STORE = 3,
    /* spool -> ingress: the store request `token` is durable (status 0) or failed (-errno) */
    MSG_SPOOL_MESSAGE_STORED = 4,
    /* spool -> scheduler: a queued message exists (at start-up walk and after each store) */
    MSG_SPOOL_MESSAGE_ANNOUNCE = 5,
    /* spool -> scheduler: the start-up walk finished; body.count = messages announced */
    MSG_SPOOL_WALK_DONE = 6,
    /* scheduler -> spool: announce every queued message again (the scheduler started empty) */
    MSG_SCHEDULER_WALK_REQUEST = 7,
    /* ingress -> spool: write a Rejection log record; body.store.arena_off/len hold a proto_rej run */
    MSG_INGRESS_LOG_REJECTION = 8,
    MSG__MAX = 9,
};

struct proto_ping {
    uint64_t token;   /* echoed back in the PONG */
    uint64_t sent_ns; /* CLOCK_MONOTONIC of the sender, echoed back */
    uint64_t reserved[3];
};

struct proto_store {
    uint64_t token;     /* chosen by the requester, echoed in MSG_SPOOL_MESSAGE_STORED */
    uint64_t arena_off; /* start of the run in the arena */
    uint64_t len;       /* bytes used in the run */
    uint64_t msg_id_hi; /* message id (time-ordered, 128 bits) */
    uint64_t msg_id_lo;
};

struct proto_stored {
    uint64_t token;
    int64_t status; /* 0 = durable, else -errno */
    uint64_t msg_id_hi;
    uint64_t msg_id_lo;
    uint64_t reserved;
};

struct proto_announce {
    uint64_t msg_id_hi;
    uint64_t msg_id_lo;
    uint64_t created_ms;
    uint64_t size;
    uint32_t rcpt_count; /* recipients not yet final */
    uint32_t reserved;
};

struct proto_count {
    uint64_t count;
    uint64_t reserved[4];
};

struct proto_rec {
    uint64_t seq;     /* ring position, written by shm_ring_push() */
    uint16_t version; /* PROTO_RING_VERSION */
    uint16_t type;    /* enum proto_msg */
    uint16_t src;     /* sender's instance index in the role table */
    uint16_t flags;
    uint32_t src_gen; /* sender's generation when it wrote the record */
    uint32_t dst_gen; /* receiver generation the record is for; 0 = any */
    union {
        uint8_t raw[PROTO_BODY_SIZE];
        struct proto_ping ping;
        struct proto_store store;
        struct proto_stored stored;
        struct proto_count count;
        struct proto_announce announce;
    } body;
};

_Static_assert(sizeof(struct proto_ping) == PROTO_BODY_SIZE, "proto_ping size");
_Static_assert(sizeof(struct proto_store) == PROTO_BODY_SIZE, "proto_store size");
_Static_assert(sizeof(struct proto_stored) == PROTO_BODY_SIZE, "proto_stored size");
_Static_assert(sizeof(struct proto_count) == PROTO_BODY_SIZE, "proto_count size");
_Static_assert(sizeof(struct proto_announce) == PROTO_BODY_SIZE, "proto_announce size");
_Static_assert(sizeof(struct proto_rec) == PROTO_REC_SIZE, "proto_rec is one cache line");

#endif
