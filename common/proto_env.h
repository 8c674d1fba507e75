/*
 * spool_rec - the envelope record stored for each message in the spool
 *
 * spool_rec_encode() turns a record into bytes in a growable buffer; it refuses (-EINVAL) a
 * record that spool_rec_decode() would refuse, so everything written can be read back.
 * spool_rec_decode() reads bytes from disk and treats them as hostile: every length and
 * count is checked against the bytes left and against the SPOOL_REC_*_MAX limits, strings
 * are checked for forbidden bytes, a CRC-32C over the record catches flipped bits, and an
 * unknown version, truncation or trailing bytes are errors. It never reads out of bounds.
 *
 * Wire format, version 1 (integers little-endian):
 *   "RM" u8 version u8 flags | u64 created_ms | u64 body_size | u16 sender_len sender
 *   | u32 rcpt_count { u8 state u32 attempts u16 addr_len addr }*
 *   | u16 meta_count { u8 key_len key u16 value_len value }* | u32 crc32c(all bytes before)
 *
 * Ownership: a record built by the caller borrows the caller's strings and arrays (_mem is
 * NULL); a decoded record owns one allocation (_mem) holding its arrays and strings, freed by
 * spool_rec_fini(). Recipient states and attempts of a decoded record may be changed in
 * place and the record encoded again.
 */
#ifndef RINGMAIL_SPOOL_REC_H
#define RINGMAIL_SPOOL_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPOOL_REC_VERSION 1
#define SPOOL_REC_ADDR_MAX 1024   /* bytes of a sender or recipient address (RFC 5321: 256) */
#define SPOOL_REC_RCPT_MAX 100000 /* recipients of one message */
#define SPOOL_REC_META_MAX 64     /* metadata pairs */
#define SPOOL_REC_KEY_MAX 64      /* bytes of a metadata key: [a-z0-9_.-]+ */
#define SPOOL_REC_VALUE_MAX 4096  /* bytes of a metadata value: anything but NUL */

/* well-known metadata keys; any other key that fits the key syntax is kept as free-form */
#define SPOOL_META_QUEUE "queue"
#define SPOOL_META_TENANT "tenant"
#define SPOOL_META_CAMPAIGN "campaign"
#define SPOOL_META_ROUTING_DOMAIN "routing_domain"

enum spool_rec_flag {
    SPOOL_REC_F_8BITMIME = 1u << 0,
    SPOOL_REC_F_SMTPUTF8 = 1u << 1,
};
#define SPOOL_REC_F_ALL (SPOOL_REC_F_8BITMIME | SPOOL_REC_F_SMTPUTF8)

enum spool_rcpt_state {
    SPOOL_RCPT_QUEUED = 0,
    SPOOL_RCPT_DELIVERED = 1,
    SPOOL_RCPT_BOUNCED = 2,
    SPOOL_RCPT_EXPIRED = 3,
    SPOOL_RCPT_ADMIN_BOUNCED = 4,
    SPOOL_RCPT__MAX = 5,
};

struct spool_rcpt {
    const char *addr; /* no NUL, no control bytes; "" is refused */
    uint8_t state;    /* enum spool_rcpt_state */
    uint32_t attempts;
};

struct spool_meta {
    const char *key;
    const char *value;
};

struct spool_rec {
    uint8_t version; /* set by decode; encode always writes SPOOL_REC_VERSION */
    uint8_t flags;   /* enum spool_rec_flag */
    uint64_t created_ms;
    uint64_t body_size;
    const char *sender; /* "" is the null reverse-path <> */
    uint32_t rcpt_count;
    struct spool_rcpt *rcpts;
    uint32_t meta_count;
    struct spool_meta *meta;
    void *_mem; /* decode's allocation; NULL in a record the caller built */
};

/* growable byte buffer; spool_rec_buf_fini() frees it; a zeroed struct is an empty buffer */
struct spool_rec_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

void spool_rec_buf_init(struct spool_rec_buf *b);
void spool_rec_buf_fini(struct spool_rec_buf *b);
/* spool_rec_buf_reserve - make room for `more` bytes after len */
void spool_rec_buf_reserve(struct spool_rec_buf *b, size_t more);
void spool_rec_buf_append(struct spool_rec_buf *b, const void *p, size_t n);

/* spool_rec_encode - replaces out's content with the encoding; -EINVAL on an invalid record */
int spool_rec_encode(const struct spool_rec *rec, struct spool_rec_buf *out);
/*
 * spool_rec_decode - parse untrusted bytes into *out (owned; spool_rec_fini() it).
 * Returns 0, -EBADMSG (malformed) or -EPROTONOSUPPORT (unknown version); on error *out is
 * empty and *why (if not NULL) names the problem with a static string.
 */
int spool_rec_decode(const void *buf, size_t len, struct spool_rec *out, const char **why);
void spool_rec_fini(struct spool_rec *rec);

/* spool_rec_meta_get - value for key, or NULL */
const char *spool_rec_meta_get(const struct spool_rec *rec, const char *key);
/* spool_rec_state_final - delivered, bounced, expired or administratively bounced */
bool spool_rec_state_final(uint8_t state);
/* spool_rec_all_final - every recipient is final: the message may leave the spool */
bool spool_rec_all_final(const struct spool_rec *rec);
const char *spool_rec_state_name(uint8_t state);

/* spool_rec_crc32c - CRC-32C (Castagnoli); exposed for the spool's other on-disk records */
uint32_t spool_rec_crc32c(uint32_t crc, const void *p, size_t n);

#endif
