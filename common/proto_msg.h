/*
 * proto_msg - the arena runs of a message (ingress -> spool store, spool -> egress load) and of a
 * Rejection record (ingress -> spool), with their one encoder and one strict decoder each
 *
 * Message run: struct proto_msg_hdr, then env_len bytes of envelope (proto_env encoding), then
 * msg_len bytes of message (trace header + body, CRLF line ends, no dot-stuffing). The run's length
 * in the ring record must equal sizeof(hdr) + env_len + msg_len exactly, and the envelope's
 * body_size must equal msg_len (both writers set it so).
 * proto_msg_head() encodes the header and the envelope into a buffer; the writer puts them at the
 * start of its run and the msg_len message bytes right after (the body is never copied twice).
 * proto_msg_decode() checks the run as untrusted input before anything is used: it copies the
 * header, checks magic, version and lengths without adding untrusted 64-bit values, and decodes
 * the envelope strictly (proto_env_decode copies it out first). The message bytes are not
 * validated here (the ingress checked them before it stored the message); out->body borrows them
 * from the run, which the caller keeps until it is done with them.
 *
 * Rejection run: struct proto_rej_hdr, then the strings in this order, each exactly len[i] bytes,
 * not NUL-terminated: peer address, EHLO name, command, sender, recipient, reply line.
 * proto_msg_rej_encode() cuts each string to PROTO_REJ_STRING_MAX and takes the code from the
 * reply's first three characters (the ingress's own replies: "550 ...").
 * proto_msg_rej_decode() copies the run out once, checks magic, version, that the lengths add up
 * to the run's length and that no string holds a NUL, and gives the strings NUL-terminated (one
 * allocation, freed by proto_msg_rej_fini()).
 */
#ifndef RINGMAIL_PROTO_MSG_H
#define RINGMAIL_PROTO_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "common/proto_env.h"

#define PROTO_MSG_MAGIC 0x47534d52u /* "RMSG" */
#define PROTO_MSG_VERSION 1

struct proto_msg_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t reserved;
    uint32_t env_len;
    uint32_t reserved2;
    uint64_t msg_len;
};

_Static_assert(sizeof(struct proto_msg_hdr) == 24, "proto_msg_hdr size");

/* a decoded message run */
struct proto_msg_run {
    struct proto_env env; /* owned */
    const char *body;     /* msg_len bytes, borrowed from the run */
    uint64_t body_len;
};

/* proto_msg_head - replaces out's content with header + envelope of a run of msg_len message bytes;
 * -EINVAL when the envelope does not encode or its body_size is not msg_len */
int proto_msg_head(const struct proto_env *env, uint64_t msg_len, struct buf *out);
/* proto_msg_decode - 0, or -EBADMSG with *why (static) set; on error *out is empty */
int proto_msg_decode(const void *run, size_t len, struct proto_msg_run *out, const char **why);
void proto_msg_fini(struct proto_msg_run *m);

#define PROTO_REJ_MAGIC 0x4a45524du /* "MREJ" */
#define PROTO_REJ_VERSION 1
#define PROTO_REJ_STRINGS 6
#define PROTO_REJ_STRING_MAX 1024

enum proto_rej_str {
    PROTO_REJ_PEER = 0,
    PROTO_REJ_EHLO = 1,
    PROTO_REJ_COMMAND = 2,
    PROTO_REJ_SENDER = 3,
    PROTO_REJ_RCPT = 4,
    PROTO_REJ_REPLY = 5, /* "550 5.7.1 text" */
};

struct proto_rej_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t code;     /* the SMTP reply code we sent */
    int64_t timestamp; /* unix seconds */
    uint16_t len[PROTO_REJ_STRINGS];
    uint32_t reserved;
};

_Static_assert(sizeof(struct proto_rej_hdr) == 32, "proto_rej_hdr size");

/* a decoded Rejection run */
struct proto_rej {
    uint16_t code;
    int64_t timestamp;
    const char *str[PROTO_REJ_STRINGS]; /* NUL-terminated, enum proto_rej_str order */
    void *_mem;
};

/* proto_msg_rej_encode - replaces out's content with the run; str[i] has len[i] bytes; -EINVAL when
 * a string holds a NUL (the reader would refuse it) */
int proto_msg_rej_encode(const char *const str[PROTO_REJ_STRINGS], const size_t len[PROTO_REJ_STRINGS],
                         int64_t timestamp, struct buf *out);
/* proto_msg_rej_decode - 0, or -EBADMSG with *why (static) set; on error *out is empty */
int proto_msg_rej_decode(const void *run, size_t len, struct proto_rej *out, const char **why);
void proto_msg_rej_fini(struct proto_rej *r);

#endif
