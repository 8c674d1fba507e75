/*
 * proto_dlv - delivery payloads that travel through the arena (too large for a ring record), with
 * their one encoder and one strict decoder each (proto_dlv.c), and the reasons of a fail record
 *
 * Every run starts with a header holding a magic, a version and the lengths of what follows; the
 * reader checks that the lengths add up to the run's length exactly, that every string is free of
 * the bytes its kind forbids, and every index is in range, before it acts on anything (a run is
 * untrusted input). Strings are not NUL-terminated on the wire; each is exactly its length. All
 * integers are host order (one node).
 *
 * The decoders copy the run out of the arena once, into private memory, and check and decode only
 * that copy: a peer that still writes the run cannot change anything between check and use. What
 * they return owns one allocation (freed by its _fini); its strings are NUL-terminated. Each encoder
 * refuses (-EINVAL) what its decoder would refuse, so everything written can be read.
 *
 * Announce batch (spool -> scheduler, MSG_SPOOL_MESSAGE_ANNOUNCE_BATCH): proto_ann_hdr, then `count`
 * entries, each: struct proto_ann, then n_dom x struct proto_ann_dom, then for each domain in order its
 * queue name (queue_len bytes) and its domain (domain_len bytes), then zero padding to a multiple of 8.
 * One entry per queued message; one proto_ann_dom per distinct recipient domain with queued recipients.
 * Queue names and domains are 1..PROTO_DLV_STRING_MAX bytes of 0x21..0x7e or 0x80..0xff (no space,
 * no control byte: proto_dlv_ann_name_ok); n_dom is 1..PROTO_ANN_MAX_DOMAINS; the header's count
 * is the number of entries.
 *
 * Attempt result (egress -> spool, MSG_EGRESS_ATTEMPT_RESULT): proto_attempt_hdr, then n_rcpt x
 * struct proto_attempt_rcpt, then the header strings (len[] order: peer address, site, egress source,
 * egress pool, MX host name, TLS cipher, TLS protocol version, TLS peer subject), then each
 * recipient's response text (text_len bytes) in order.
 * At least one recipient, no index twice; outcome and command known; code 0 (no reply) or 200..599;
 * enhanced class 0, 2, 4 or 5; strings at most PROTO_DLV_STRING_MAX bytes without NUL, CR or LF.
 * The recipient indexes are checked against the envelope by the spool, which has it.
 */
#ifndef RINGMAIL_PROTO_DLV_H
#define RINGMAIL_PROTO_DLV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define PROTO_ANN_MAGIC 0x4e4e4152u /* "RANN" */
#define PROTO_ATT_MAGIC 0x54544152u /* "RATT" */
#define PROTO_DLV_VERSION 2 /* 2: proto_ann.last_attempt_ms */
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
    uint64_t last_attempt_ms; /* unix ms of the message's last attempt (proto_env), 0: none */
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
    /* the TLS of the session the transactions ran on, "" for plaintext (KumoMTA's record fields) */
    PROTO_ATT_TLS_CIPHER = 5,  /* "TLS_AES_256_GCM_SHA384" */
    PROTO_ATT_TLS_VERSION = 6, /* "TLSv1.3" */
    PROTO_ATT_TLS_SUBJECT = 7, /* peer certificate subject: "CN=mx.example.com" entries separated by TAB */
    PROTO_ATT_STRINGS = 8,
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

/*
 * Why the scheduler fails a domain of a message (proto_fail.reason of MSG_SCHEDULER_MESSAGE_FAIL,
 * proto_ring.h): 0 for expirations; for DNS bounces the resolver's verdict, mapped by the scheduler
 * (the values are those the ring carried when it was the resolver's own enum).
 */
enum proto_fail_reason {
    PROTO_FAIL_REASON_NONE = 0,
    PROTO_FAIL_REASON_NXDOMAIN = 1, /* the domain does not exist */
    PROTO_FAIL_REASON_NULL_MX = 2,  /* RFC 7505 null MX: the domain accepts no mail */
    PROTO_FAIL_REASON_NO_DATA = 3,  /* no MX and no address records */
    PROTO_FAIL_REASON_BAD_NAME = 4, /* not a valid host name */
    PROTO_FAIL_REASON_DNS_TEMP = 5, /* a transient DNS failure (a bounce asked for anyway) */
    PROTO_FAIL_REASON_OPERATOR = 6, /* PROTO_FAIL_ADMIN_BOUNCE: an operator's bounce (ringctl bounce), not a rule's */
};

_Static_assert(sizeof(struct proto_ann_hdr) == 16, "proto_ann_hdr size");
_Static_assert(sizeof(struct proto_ann) == 48, "proto_ann size");
_Static_assert(sizeof(struct proto_ann_dom) == 16, "proto_ann_dom size");
_Static_assert(sizeof(struct proto_attempt_hdr) == 56, "proto_attempt_hdr size");
_Static_assert(sizeof(struct proto_attempt_rcpt) == 16, "proto_attempt_rcpt size");

/* ---- announce batch in memory ---- */

struct proto_ann_item {
    struct proto_ann_dom dom; /* queue_len and domain_len are the strings' lengths */
    const char *queue;
    const char *domain;
};

struct proto_ann_entry {
    struct proto_ann ann; /* ann.n_dom items */
    struct proto_ann_item *item;
};

struct proto_ann_batch {
    uint32_t count; /* entries */
    struct proto_ann_entry *entry;
    void *_mem;
};

/* proto_dlv_ann_name_ok - may this queue name or domain travel in an announce batch */
bool proto_dlv_ann_name_ok(const char *s, size_t n);
/* proto_dlv_ann_begin - replaces b's content with the header of an empty batch */
void proto_dlv_ann_begin(struct buf *b);
/* proto_dlv_ann_append - one more entry into a begun batch (the header counts it); -EINVAL when the
 * decoder would refuse it, and then b is unchanged */
int proto_dlv_ann_append(struct buf *b, const struct proto_ann_entry *e);
/* proto_dlv_ann_decode - 0, or -EBADMSG with *why (static) set; on error *out is empty */
int proto_dlv_ann_decode(const void *run, size_t len, struct proto_ann_batch *out, const char **why);
void proto_dlv_ann_fini(struct proto_ann_batch *b);

/* ---- attempt result in memory ---- */

struct proto_attempt {
    struct proto_attempt_hdr hdr;       /* len[i]: bytes of str[i]; n_rcpt entries */
    const char *str[PROTO_ATT_STRINGS]; /* enum proto_attempt_str order */
    struct proto_attempt_rcpt *rcpt;
    const char **text; /* text[i]: rcpt[i].text_len bytes */
    void *_mem;
};

/* proto_dlv_attempt_size - the bytes proto_dlv_attempt_encode() writes */
size_t proto_dlv_attempt_size(const struct proto_attempt *a);
/*
 * proto_dlv_attempt_encode - writes exactly proto_dlv_attempt_size() bytes (magic and version set,
 * the rest of hdr as given); CR, LF and NUL in a string are written as spaces (a string is one
 * line). -EINVAL when len differs or the decoder would refuse the result.
 */
int proto_dlv_attempt_encode(const struct proto_attempt *a, void *dst, size_t len);
/* proto_dlv_attempt_decode - 0, or -EBADMSG with *why (static) set; on error *out is empty */
int proto_dlv_attempt_decode(const void *run, size_t len, struct proto_attempt *out, const char **why);
void proto_dlv_attempt_fini(struct proto_attempt *a);

#endif
