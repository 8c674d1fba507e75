/*
 * proto_wire - small helpers the decoders of common/proto_*.c share (included by them only)
 *
 * proto_wire_copy() is a decoder's one read of its input (a run a peer may still write): a private
 * heap copy, never NULL, that the decoder checks and decodes from, then frees.
 * proto_wire_str() copies n bytes and a NUL into a decoder's string area and moves the area on; the
 * decoder sized the area in its checking pass.
 */
#ifndef RINGMAIL_PROTO_WIRE_H
#define RINGMAIL_PROTO_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/mem.h"

static inline uint8_t *proto_wire_copy(const void *in, size_t len)
{
    uint8_t *c = xmalloc(len ? len : 1);
    memcpy(c, in, len);
    return c;
}

static inline const char *proto_wire_str(char **area, const void *s, size_t n)
{
    char *d = *area;
    memcpy(d, s, n);
    d[n] = '\0';
    *area = d + n + 1;
    return d;
}

#endif
