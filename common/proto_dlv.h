/*
 * proto_dlv - delivery payloads that travel through the arena (too large for a ring record)
 *
 * Every run starts with a header holding a magic, a version and the lengths of what follows; the
 * reader checks that the lengths add up to the run's length exactly, that every string is free of
 * NUL, CR and LF, and every index is in range, before it acts on anything (a run is untrusted input).
 * Strings are not NUL-terminated; each is exactly its length. All integers are host order (one node).
 *
 * Announce batch (spool -> scheduler, MSG_SPOOL_MESSAGE_ANNOUNCE_BATCH): proto_ann_hdr, then `count`
 * entries, each: struct proto_ann, then n_dom x struct proto_ann_dom, then for each domain in order its
 * queue name (queue_len bytes) and its domain (domain_len bytes), then zero padding to a multiple of 8.
 * One entry per queued message; one proto_ann_dom per distinct recipient domain with queued recipients.
 *
 * Attempt result (egress -> spool, MSG_EGRESS_ATTEMPT_RESULT): proto_attempt_hdr, then n_rcpt x
 * struct proto_attempt_rcpt, then the header strings (len[] order: peer address, site, egress source,
 * egress pool, MX host name), then each recipient's response text (text_len bytes) in order.
 */
#ifndef RINGMAIL_PROTO_DLV_H
#define RINGMAIL_PROTO_DLV_H

#include <stdint.h>

#define PROTO_ANN_MAGIC 0x4e4e4152u /* "RANN" */
#define PROTO_ATT_MAGIC 0x54544152u /* "RATT" */
#define PROTO_DLV_VERSION 1
#define PROTO_DLV_STRING_MAX 1024  /* any single string */
#define PROTO_ANN_MAX_DOMAINS 1024 /* distinct recipient domains of one message */

struct proto_ann_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t reserved;
    uint32_t count;
    uint32_t reserved2;
};

struct proto_ann {
    uint64_t msg_id_hi;
    uint64_t msg_id_lo;
    uint64_t created_ms; /* reception time, unix ms: the queue's max_age counts from it */
    uint64_t size;       /* message bytes */
    uint32_t attempts;   /* the most attempts of any queued recipient */
    uint16_t n_dom;
    uint16_t reserved;
};

struct proto_ann_dom {
    uint32_t rcpt_first; /* index of the first queued recipient of this domain */
    uint32_t pending;    /* queued recipients of this domain */
    uint16_t queue_len;  /* scheduled queue name: campaign:tenant@domain, or the policy's `queue` */
    uint16_t domain_len; /* the routing domain: routing_domain metadata, else the recipients' domain */
    uint32_t reserved;
};

enum proto_outcome {
    PROTO_OUT_DELIVERED = 1, /* 2xx */
    PROTO_OUT_TRANSIENT = 2, /* 4xx, connection failures, timeouts: retry later */
    PROTO_OUT_BOUNCE = 3,    /* 5xx, permanent DNS failure */
};

enum proto_attempt_str {
    PROTO_ATT_PEER = 0,   /* "127.0.0.2:25", "" when no connection was made */
    PROTO_ATT_SITE = 1,   /* MX rollup site name */
    PROTO_ATT_SOURCE = 2, /* egress source name */
    PROTO_ATT_POOL = 3,   /* egress pool name */
    PROTO_ATT_MX = 4,     /* MX host name connected to */
    PROTO_ATT_STRINGS = 5,
};

struct proto_attempt_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t n_rcpt;
    uint64_t msg_id_hi;
    uint64_t msg_id_lo;
    int64_t timestamp_ms; /* unix ms at the end of the attempt */
    uint32_t rcpt_first;  /* the domain this attempt was for (as in the DELIVER) */
    uint32_t flags;       /* reserved, 0 */
    uint16_t len[PROTO_ATT_STRINGS];
    uint16_t reserved[3];
};

struct proto_attempt_rcpt {
    uint32_t index;    /* recipient index in the envelope */
    uint8_t outcome;   /* enum proto_outcome */
    uint8_t enh_class; /* enhanced status code x.y.z; 0 when the reply had none */
    uint16_t code;     /* SMTP reply code; 0 when no reply (connection failure) */
    uint16_t enh_subject;
    uint16_t enh_detail;
    uint16_t text_len; /* response text after the codes */
    uint16_t command;  /* enum proto_attempt_cmd: where the response came */
};

enum proto_attempt_cmd {
    PROTO_CMD_CONNECT = 0, /* connect, banner, EHLO, TLS: no transaction happened */
    PROTO_CMD_MAIL = 1,
    PROTO_CMD_RCPT = 2,
    PROTO_CMD_DATA = 3, /* DATA or the reply after the body */
};

_Static_assert(sizeof(struct proto_ann_hdr) == 16, "proto_ann_hdr size");
_Static_assert(sizeof(struct proto_ann) == 40, "proto_ann size");
_Static_assert(sizeof(struct proto_ann_dom) == 16, "proto_ann_dom size");
_Static_assert(sizeof(struct proto_attempt_hdr) == 56, "proto_attempt_hdr size");
_Static_assert(sizeof(struct proto_attempt_rcpt) == 16, "proto_attempt_rcpt size");

#endif
