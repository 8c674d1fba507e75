/*
 * verp - VERP return paths that name one recipient of one message, with a truncated HMAC
 *
 * verp_encode() writes "bounce+<id>.<index>.<mac>@<domain>": id the 32 hex digits of the message id,
 * index the recipient's index in its envelope (decimal), mac the first VERP_MAC_BYTES of
 * HMAC-SHA256(secret, "<id>.<index>") in lower-case hex. The local part is at most 63 octets
 * (RFC 5321 4.5.3.1.1: 64). verp_decode() takes the local part of a recipient (untrusted, not
 * NUL-terminated, never read past n) and returns 0 with the id and index when the mac matches
 * (compared in constant time), -EPERM when the form is right but the mac is not (forged or made with
 * another secret), -EINVAL when it is not a VERP local part at all.
 */
#ifndef RINGMAIL_VERP_H
#define RINGMAIL_VERP_H

#include <stddef.h>
#include <stdint.h>

#include "common/msgid.h"

#define VERP_PREFIX "bounce+"
#define VERP_MAC_BYTES 8
#define VERP_INDEX_MAX 999999u
#define VERP_LOCAL_MAX 64

/* verp_encode - the address into out (size n); -EINVAL when the index is too large or it does not fit */
int verp_encode(const void *secret, size_t secret_len, struct msgid id, uint32_t index, const char *domain, char *out,
                size_t n);
int verp_decode(const void *secret, size_t secret_len, const char *local, size_t n, struct msgid *id, uint32_t *index);

#endif
