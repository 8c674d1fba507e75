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

#endif
