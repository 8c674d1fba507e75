/*
 * proto_msg - the layout of a message handed from ingress to spool through the arena
 *
 * One arena run: struct proto_msg_hdr, then env_len bytes of envelope (spool_rec encoding), then
 * msg_len bytes of message (trace header + body, CRLF line ends, no dot-stuffing). The run's length
 * in the ring record must equal sizeof(hdr) + env_len + msg_len exactly; the spool checks that and
 * decodes the envelope strictly before it stores anything.
 */
#ifndef RINGMAIL_PROTO_MSG_H
#define RINGMAIL_PROTO_MSG_H

#include <stdint.h>

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

/*
 * A Rejection record handed from ingress to spool: struct proto_rej_hdr, then the strings in this
 * order, each exactly len[i] bytes, not NUL-terminated: peer address, EHLO name, command, sender,
 * recipient, reply line. The spool checks that the lengths add up to the run's length and that no
 * string holds a NUL before it logs anything.
 */
#define PROTO_REJ_MAGIC 0x4a45524du /* "MREJ" */
#define PROTO_REJ_STRINGS 6
#define PROTO_REJ_STRING_MAX 1024

struct proto_rej_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t code; /* the SMTP reply code we sent */
    int64_t timestamp; /* unix seconds */
    uint16_t len[PROTO_REJ_STRINGS];
    uint32_t reserved;
};

_Static_assert(sizeof(struct proto_rej_hdr) == 32, "proto_rej_hdr size");

#endif
