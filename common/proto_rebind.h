/*
 * proto_rebind - the operator's rebind and connection abort on the rings, with one encoder and one
 * strict decoder each (proto_rebind.c)
 *
 * Rebind run (scheduler -> spool, MSG_SCHEDULER_MESSAGE_REBIND, body.batch): proto_rebind_hdr, then
 * `count` x struct proto_rebind_ent, then the target (target_len bytes), the reason (reason_len) and who
 * asked (who_len), nothing after. count is 1..PROTO_REBIND_MAX, no message twice. The target of
 * PROTO_REBIND_QUEUE is a scheduled queue name (proto_dlv_ann_name_ok: 1..1024 bytes, no space, no
 * control byte); of PROTO_REBIND_ROUTE a host list "host[:port],..." of 1..PROTO_REBIND_HOSTS entries, each
 * of base/hostport's syntax (port optional, "[literal]" allowed), no space or control byte. The reason
 * and who are at most PROTO_DLV_STRING_MAX bytes without NUL, CR or LF (the reason may be empty).
 * The decoder copies the run once and checks and decodes only the copy.
 *
 * Abort (scheduler -> egress, MSG_SCHEDULER_LEASE_ABORT, body.abort): the lease and its generation;
 * the reserved words are 0. Whether the lease is the receiver's is for the egress to check.
 */
#ifndef RINGMAIL_PROTO_REBIND_H
#define RINGMAIL_PROTO_REBIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "common/proto_ring.h"

#define PROTO_REBIND_MAGIC 0x44425252u /* "RRBD" */
#define PROTO_REBIND_VERSION 1
#define PROTO_REBIND_MAX 1024 /* messages in one run */
#define PROTO_REBIND_HOSTS 8  /* hosts of a route target (CFG_MAX_ROUTE_HOSTS) */

enum proto_rebind_kind {
    PROTO_REBIND_QUEUE = 1, /* the envelope's metadata `queue` becomes the target */
    PROTO_REBIND_ROUTE = 2, /* the envelope's metadata `route` becomes the target (hosts) */
};

struct proto_rebind_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t kind; /* enum proto_rebind_kind */
    uint32_t count;
    uint16_t target_len, reason_len, who_len, reserved;
    uint32_t reserved2;
};

struct proto_rebind_ent {
    uint64_t msg_id_hi;
    uint64_t msg_id_lo;
    uint32_t rcpt_first; /* the recipient domain the scheduler matched */
    uint32_t reserved;
};

_Static_assert(sizeof(struct proto_rebind_hdr) == 24, "proto_rebind_hdr size");
_Static_assert(sizeof(struct proto_rebind_ent) == 24, "proto_rebind_ent size");

/* a decoded run: one allocation, strings NUL-terminated */
struct proto_rebind {
    struct proto_rebind_hdr hdr;
    const struct proto_rebind_ent *ent;
    const char *target, *reason, *who;
    void *mem;
};

/* proto_rebind_route_ok - a route target as the decoder takes it */
bool proto_rebind_route_ok(const char *s, size_t n);
/* proto_rebind_encode - the run into out (replaced); -EINVAL for what the decoder would refuse */
int proto_rebind_encode(enum proto_rebind_kind kind, const char *target, const char *reason, const char *who,
                        const struct proto_rebind_ent *ent, uint32_t count, struct buf *out);
/* proto_rebind_decode - 0, or -EBADMSG with *why (static) */
int proto_rebind_decode(const void *run, size_t len, struct proto_rebind *out, const char **why);
void proto_rebind_fini(struct proto_rebind *r);

/* proto_rebind_abort_check - a copy of the record's abort body when it is well formed (reserved 0) */
bool proto_rebind_abort_check(const struct proto_rec *rec, struct proto_abort *out);

#endif
