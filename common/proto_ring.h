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
    /* spool -> scheduler: queued messages with their queues and recipient domains; body.batch holds an
     * arena run of proto_ann (common/proto_dlv.h). Sent after each commit and during the walk. */
    MSG_SPOOL_MESSAGE_ANNOUNCE_BATCH = 9,
    /* scheduler -> egress: deliver the queued recipients of one domain of a message on a lease */
    MSG_SCHEDULER_MESSAGE_DELIVER = 10,
    /* egress -> spool: load a message (envelope + body) into the arena for delivery */
    MSG_EGRESS_MESSAGE_LOAD = 11,
    /* spool -> egress: the load `token` is done: body.loaded.arena_off/len hold a proto_msg run, or status < 0 */
    MSG_SPOOL_MESSAGE_LOADED = 12,
    /* egress -> spool: the outcome of one delivery attempt; body.batch holds a proto_attempt run */
    MSG_EGRESS_ATTEMPT_RESULT = 13,
    /* egress -> scheduler: the attempt of a DELIVER finished (its results went to the spool) */
    MSG_EGRESS_DELIVERY_DONE = 14,
    /* egress -> scheduler: the connection of a lease is closed; the lease is free */
    MSG_EGRESS_LEASE_CLOSED = 15,
    /* spool -> scheduler: a message's recipients of one domain were updated durably after an attempt,
     * an expiry or a bounce; body.updated.pending = still queued in that domain */
    MSG_SPOOL_MESSAGE_UPDATED = 16,
    /* scheduler -> spool: expire, or bounce (permanent DNS failure), the queued recipients of a domain */
    MSG_SCHEDULER_MESSAGE_FAIL = 17,
    /* scheduler -> egress: one path configuration (common/proto_path.h) before the first DELIVER that
     * names it or its new generation; body.batch.arena_off/len hold the run, count 1; the egress frees it */
    MSG_SCHEDULER_PATH_CONFIG = 18,
    /* spool -> scheduler: a TransientFailure or Bounce attempt was recorded; body.batch holds a
     * proto_tsa response run (common/proto_tsa.h) for the traffic shaping automation (one per attempt) */
    MSG_SPOOL_TSA_RESPONSE = 19,
    /* scheduler -> spool: an automation rule fired; body.batch holds a proto_tsa event run of one event,
     * stored durably (history) and logged as a "TSA" record */
    MSG_SCHEDULER_TSA_EVENT = 20,
    /* spool -> scheduler: stored firings at the start-up walk (those still in effect and the recent
     * history); body.batch holds a proto_tsa event run; all of them precede MSG_SPOOL_WALK_DONE */
    MSG_SPOOL_TSA_STATE = 21,
    /* scheduler -> spool: an operator's rebind (ringctl rebind): body.batch holds a proto_rebind run
     * (common/proto_rebind.h) naming the messages and their new queue or route; the spool rewrites each
     * envelope's binding with AdminRebind log records in one commit, then announces the message again */
    MSG_SCHEDULER_MESSAGE_REBIND = 22,
    /* scheduler -> egress: close the connection of a lease (ringctl abort-ready-q-conn): body.abort; its
     * message, if any, ends as a transient failure not counted as an attempt (PROTO_DONE_F_ABORTED) */
    MSG_SCHEDULER_LEASE_ABORT = 23,
    MSG__MAX = 24,
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

/* a run in the arena: MSG_SPOOL_MESSAGE_ANNOUNCE_BATCH, MSG_EGRESS_ATTEMPT_RESULT, MSG_SCHEDULER_PATH_CONFIG,
 * the TSA records */
struct proto_batch {
    uint64_t arena_off;
    uint64_t len;
    uint32_t count; /* entries in the run (announce batches) */
    uint32_t reserved;
    uint64_t reserved2[2];
};

#define PROTO_DELIVER_F_LAST 1u /* close the lease's connection after this message */

struct proto_deliver {
    uint64_t msg_id_hi;
    uint64_t msg_id_lo;
    uint32_t lease;      /* connection slot; one DELIVER at a time per lease */
    uint32_t rcpt_first; /* index of the first recipient of the domain to deliver */
    uint32_t attempt;    /* attempts so far + 1 */
    uint16_t source;     /* index of the egress source in the configuration */
    uint16_t flags;      /* PROTO_DELIVER_F_* */
    uint32_t lease_gen;  /* with lease: names the lease; echoed in MSG_EGRESS_LEASE_CLOSED */
    uint32_t path;       /* path config id (MSG_SCHEDULER_PATH_CONFIG), 0 = node defaults */
};

struct proto_load {
    uint64_t token; /* chosen by the egress, echoed in MSG_SPOOL_MESSAGE_LOADED */
    uint64_t msg_id_hi;
    uint64_t msg_id_lo;
    uint64_t reserved[2];
};

struct proto_loaded {
    uint64_t token;
    int32_t status; /* 0, or -ENOENT (not in the spool), -ENOMEM (arena full: retry), -EIO */
    uint32_t reserved;
    uint64_t arena_off; /* a proto_msg run: header, envelope (proto_env), message; the egress frees it */
    uint64_t len;
    uint64_t reserved2;
};

#define PROTO_DONE_F_LEASE_CLOSED 1u /* the connection closed with this attempt: the lease is free */
#define PROTO_DONE_F_REFUSED 2u      /* not attempted (lease busy, worker draining or full): try again now */
#define PROTO_DONE_F_LOCAL_ERROR 4u  /* not attempted: the message could not be loaded or read; retry later */
#define PROTO_DONE_F_ABORTED 8u      /* the operator aborted the connection (MSG_SCHEDULER_LEASE_ABORT): the
                                        transient outcome is not counted as an attempt */
/* all counts 0 and neither flag: the spool holds no queued recipient of that domain any more */

struct proto_done {
    uint64_t msg_id_hi;
    uint64_t msg_id_lo;
    uint32_t lease;
    uint32_t rcpt_first;
    uint16_t delivered, transient, bounced; /* recipients by outcome in this attempt */
    uint16_t flags;                         /* PROTO_DONE_F_* */
    uint32_t lease_gen;                     /* as received in the DELIVER */
    uint32_t reserved;
};

struct proto_lease {
    uint32_t lease;
    uint32_t reason;    /* 0 idle or last, 1 error */
    uint32_t lease_gen; /* as received in the DELIVER */
    uint32_t reserved;
    uint64_t reserved2[3];
};

#define PROTO_UPDATED_F_GONE 1u /* every recipient of the message is final: it left the spool */

struct proto_updated {
    uint64_t msg_id_hi;
    uint64_t msg_id_lo;
    uint32_t rcpt_first;
    uint32_t pending;  /* recipients of that domain still queued */
    uint32_t attempts; /* attempts recorded for those recipients (max) */
    uint32_t flags;    /* PROTO_UPDATED_F_* */
    uint64_t reserved;
};

enum proto_fail_kind {
    PROTO_FAIL_EXPIRE = 1,     /* past the queue's max_age: Expiration records */
    PROTO_FAIL_DNS_BOUNCE = 2, /* permanent DNS failure: Bounce records; reason says which */
    PROTO_FAIL_ADMIN_BOUNCE = 3, /* a traffic shaping automation Bounce action: AdminBounce records */
};

struct proto_fail {
    uint64_t msg_id_hi;
    uint64_t msg_id_lo;
    uint32_t rcpt_first;
    uint16_t kind;   /* enum proto_fail_kind */
    uint16_t reason; /* enum proto_fail_reason (proto_dlv.h) */
    uint64_t reserved[2];
};

/* MSG_SCHEDULER_LEASE_ABORT: the lease as in its DELIVERs; reserved words are 0 (proto_rebind_abort_check) */
struct proto_abort {
    uint32_t lease;
    uint32_t lease_gen;
    uint64_t reserved[4];
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
        struct proto_batch batch;
        struct proto_deliver deliver;
        struct proto_load load;
        struct proto_loaded loaded;
        struct proto_done done;
        struct proto_lease lease;
        struct proto_updated updated;
        struct proto_fail fail;
        struct proto_abort abort;
    } body;
};

_Static_assert(sizeof(struct proto_ping) == PROTO_BODY_SIZE, "proto_ping size");
_Static_assert(sizeof(struct proto_store) == PROTO_BODY_SIZE, "proto_store size");
_Static_assert(sizeof(struct proto_stored) == PROTO_BODY_SIZE, "proto_stored size");
_Static_assert(sizeof(struct proto_count) == PROTO_BODY_SIZE, "proto_count size");
_Static_assert(sizeof(struct proto_announce) == PROTO_BODY_SIZE, "proto_announce size");
_Static_assert(sizeof(struct proto_batch) == PROTO_BODY_SIZE, "proto_batch size");
_Static_assert(sizeof(struct proto_deliver) == PROTO_BODY_SIZE, "proto_deliver size");
_Static_assert(sizeof(struct proto_load) == PROTO_BODY_SIZE, "proto_load size");
_Static_assert(sizeof(struct proto_loaded) == PROTO_BODY_SIZE, "proto_loaded size");
_Static_assert(sizeof(struct proto_done) == PROTO_BODY_SIZE, "proto_done size");
_Static_assert(sizeof(struct proto_lease) == PROTO_BODY_SIZE, "proto_lease size");
_Static_assert(sizeof(struct proto_updated) == PROTO_BODY_SIZE, "proto_updated size");
_Static_assert(sizeof(struct proto_fail) == PROTO_BODY_SIZE, "proto_fail size");
_Static_assert(sizeof(struct proto_abort) == PROTO_BODY_SIZE, "proto_abort size");
_Static_assert(sizeof(struct proto_rec) == PROTO_REC_SIZE, "proto_rec is one cache line");

#endif
