/*
 * proto_env - the envelope of a message: a wire contract between ingress, spool and egress
 *
 * The ingress encodes it into the arena run of a store request (proto_msg.h), the spool keeps it on
 * disk (updating recipient states and attempts) and puts it into the run of a load for the egress.
 *
 * proto_env_encode() turns a record into bytes in a growable buffer; it refuses (-EINVAL) a
 * record that proto_env_decode() would refuse, so everything written can be read back.
 * proto_env_decode() treats its input as hostile (a peer's arena run or disk bytes): it first
 * copies the bytes into private memory, so a peer still writing the arena cannot change what was
 * checked, then every length and count is checked against the bytes left and against the
 * PROTO_ENV_*_MAX limits, strings are checked for forbidden bytes, a CRC-32C over the record
 * catches flipped bits, and an unknown version, truncation or trailing bytes are errors. It never
 * reads out of bounds.
 *
 * Wire format, version 2 (integers little-endian):
 *   "RM" u8 version u8 flags | u64 created_ms | u64 body_size | u64 last_attempt_ms | u16 sender_len sender
 *   | u32 rcpt_count { u8 state u32 attempts u16 addr_len addr }*
 *   | u16 meta_count { u8 key_len key u16 value_len value }* | u32 crc32c(all bytes before)
 *
 * Version 1, written before 2026-12, lacks last_attempt_ms (decoded as 0); it is still read.
 *
 * Ownership: a record built by the caller borrows the caller's strings and arrays (_mem is
 * NULL); a decoded record owns one allocation (_mem) holding its arrays and strings, freed by
 * proto_env_fini(). Recipient states and attempts of a decoded record may be changed in
 * place and the record encoded again.
 */
#ifndef RINGMAIL_PROTO_ENV_H
#define RINGMAIL_PROTO_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define PROTO_ENV_VERSION 2
#define PROTO_ENV_VERSION_MIN 1 /* the oldest version decode still reads */
#define PROTO_ENV_ADDR_MAX 1024   /* bytes of a sender or recipient address (RFC 5321: 256) */
#define PROTO_ENV_RCPT_MAX 100000 /* recipients of one message */
#define PROTO_ENV_META_MAX 64     /* metadata pairs */
#define PROTO_ENV_KEY_MAX 64      /* bytes of a metadata key: [a-z0-9_.-]+ */
#define PROTO_ENV_VALUE_MAX 4096  /* bytes of a metadata value: anything but NUL */

/* well-known metadata keys; any other key that fits the key syntax is kept as free-form */
#define PROTO_ENV_META_QUEUE "queue"
#define PROTO_ENV_META_TENANT "tenant"
#define PROTO_ENV_META_CAMPAIGN "campaign"
#define PROTO_ENV_META_ROUTING_DOMAIN "routing_domain"
/* an operator's rebind to fixed hosts (ringctl rebind --to-route): "host:port,..." as a [route] value; the
 * message is routed to them (routing domain "route:HOSTS") before any routing_domain or [route] */
#define PROTO_ENV_META_ROUTE "route"

enum proto_env_flag {
    PROTO_ENV_F_8BITMIME = 1u << 0,
    PROTO_ENV_F_SMTPUTF8 = 1u << 1,
    /* the ingress scanned the stored message: no bare CR or LF in it, and F_OCTETS_8BIT says whether an
     * octet >= 0x80 is; a sender may then skip its own scan before MAIL (SIZE, BODY=8BITMIME) */
    PROTO_ENV_F_SCANNED = 1u << 2,
    PROTO_ENV_F_OCTETS_8BIT = 1u << 3,
};
#define PROTO_ENV_F_ALL (PROTO_ENV_F_8BITMIME | PROTO_ENV_F_SMTPUTF8 | PROTO_ENV_F_SCANNED | PROTO_ENV_F_OCTETS_8BIT)

enum proto_rcpt_state {
    PROTO_RCPT_QUEUED = 0,
    PROTO_RCPT_DELIVERED = 1,
    PROTO_RCPT_BOUNCED = 2,
    PROTO_RCPT_EXPIRED = 3,
    PROTO_RCPT_ADMIN_BOUNCED = 4,
    PROTO_RCPT__MAX = 5,
};

struct proto_env_rcpt {
    const char *addr; /* no NUL, no control bytes; "" is refused */
    uint8_t state;    /* enum proto_rcpt_state */
    uint32_t attempts;
};

struct proto_env_meta {
    const char *key;
    const char *value;
};

struct proto_env {
    uint8_t version; /* set by decode; encode always writes PROTO_ENV_VERSION */
    uint8_t flags;   /* enum proto_env_flag */
    uint64_t created_ms;
    uint64_t body_size;
    /* unix ms of the last delivery attempt that left a recipient queued (0: none): a restarted
     * scheduler schedules the retry from it instead of at once (version 2) */
    uint64_t last_attempt_ms;
    const char *sender; /* "" is the null reverse-path <> */
    uint32_t rcpt_count;
    struct proto_env_rcpt *rcpts;
    uint32_t meta_count;
    struct proto_env_meta *meta;
    void *_mem; /* decode's allocation; NULL in a record the caller built */
};

/* proto_env_encode - replaces out's content with the encoding; -EINVAL on an invalid record */
int proto_env_encode(const struct proto_env *rec, struct buf *out);
/*
 * proto_env_decode - parse untrusted bytes into *out (owned; proto_env_fini() it).
 * Returns 0, -EBADMSG (malformed) or -EPROTONOSUPPORT (unknown version); on error *out is
 * empty and *why (if not NULL) names the problem with a static string.
 */
int proto_env_decode(const void *buf, size_t len, struct proto_env *out, const char **why);
void proto_env_fini(struct proto_env *rec);

/* proto_env_meta_get - value for key, or NULL */
const char *proto_env_meta_get(const struct proto_env *rec, const char *key);
/* proto_env_state_final - delivered, bounced, expired or administratively bounced */
bool proto_env_state_final(uint8_t state);
/* proto_env_all_final - every recipient is final: the message may leave the spool */
bool proto_env_all_final(const struct proto_env *rec);
const char *proto_env_state_name(uint8_t state);

/* proto_env_crc32c - CRC-32C (Castagnoli) of the records; exposed so tests can forge valid ones */
uint32_t proto_env_crc32c(uint32_t crc, const void *p, size_t n);

#endif
