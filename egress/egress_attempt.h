/*
 * egress_attempt - pure helpers of one delivery attempt: the loaded message, the recipients it
 * covers, and the attempt result run for the spool (common/proto_dlv.h)
 *
 * egress_attempt_msg_decode() checks a proto_msg run from the arena as untrusted input with the one
 * decoder of that contract (proto_msg_decode: magic, version, lengths adding up to the run exactly,
 * envelope decoded strictly from a private copy). The body stays in the arena: egress_msg borrows
 * it until the run is freed.
 *
 * egress_attempt_rcpt_select() picks the recipients one DELIVER covers: every queued recipient whose domain
 * equals that of rcpts[rcpt_first] (case-insensitive), or every queued recipient when the envelope
 * carries routing_domain (then that is the routing domain). At most EGRESS_RCPT_MAX are taken; the
 * rest stay queued for the next DELIVER.
 *
 * egress_attempt_size()/egress_attempt_encode() lay out the result run with the contract's one encoder
 * (proto_dlv_attempt_encode, whose decoder the spool runs); strings are cut to PROTO_DLV_STRING_MAX
 * here, CR and LF become spaces there.
 */
#ifndef RINGMAIL_EGRESS_ATTEMPT_H
#define RINGMAIL_EGRESS_ATTEMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto_dlv.h"
#include "common/proto_env.h"
#include "smtp/smtp_reply.h"

#define EGRESS_RCPT_MAX 10000 /* recipients of one attempt; proto_attempt_hdr.n_rcpt is 16 bits */

struct egress_msg {
    struct proto_env env; /* owned */
    const char *body;     /* borrowed from the arena run */
    size_t body_len;
};

/* the outcome of one recipient; outcome 0 = not decided yet */
struct egress_rcpt_res {
    uint32_t index; /* in the envelope */
    uint8_t outcome; /* enum proto_outcome, 0 = undecided */
    uint8_t command; /* enum proto_attempt_cmd */
    uint16_t code;
    char enhanced[SMTP_REPLY_ENH_MAX];
    char text[SMTP_REPLY_TEXT_MAX];
};

struct egress_attempt {
    uint64_t msg_id_hi, msg_id_lo;
    int64_t timestamp_ms;
    uint32_t rcpt_first;
    const char *str[PROTO_ATT_STRINGS]; /* NULL counts as "" */
    size_t n_rcpt;
    const struct egress_rcpt_res *rcpt;
};

/* egress_attempt_msg_decode - 0, or -EBADMSG with *why (static) set; on error *out is empty */
int egress_attempt_msg_decode(const void *run, size_t len, struct egress_msg *out, const char **why);
void egress_attempt_msg_fini(struct egress_msg *m);

/* egress_attempt_addr_domain - the part after the last '@', "" when none (borrowed from addr) */
const char *egress_attempt_addr_domain(const char *addr);

/*
 * egress_attempt_rcpt_select - *idx (heap) gets the envelope indices, *domain (heap) the routing domain.
 * Returns the count (0 when nothing is queued), or -EINVAL when rcpt_first is out of range.
 */
int egress_attempt_rcpt_select(const struct proto_env *env, uint32_t rcpt_first, uint32_t **idx, char **domain);

/* egress_attempt_rcpt_set - decide a recipient (text and enhanced code may be NULL) */
void egress_attempt_rcpt_set(struct egress_rcpt_res *r, uint8_t outcome, uint8_t command, int code, const char *enhanced,
                     const char *text);

/* egress_attempt_enh_parse - "4.4.3" into its parts; false (all 0) when absent or malformed */
bool egress_attempt_enh_parse(const char *s, uint8_t *cls, uint16_t *subject, uint16_t *detail);

size_t egress_attempt_size(const struct egress_attempt *a);
/* egress_attempt_encode - writes exactly egress_attempt_size() bytes; -EINVAL when len differs, n_rcpt
 * is 0 or over EGRESS_RCPT_MAX, or a recipient is undecided or would be refused by the spool */
int egress_attempt_encode(const struct egress_attempt *a, void *buf, size_t len);

#endif
