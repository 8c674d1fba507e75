/*
 * smtp_octets - word-at-a-time octet tests shared by the DATA scanner (smtp_data) and the send side
 * (smtp_stuff): internal to the smtp library.
 */
#ifndef RINGMAIL_SMTP_OCTETS_H
#define RINGMAIL_SMTP_OCTETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* smtp_octets_high_bit - any octet of p[0..n) >= 0x80 (8BITMIME), eight octets per step */
static inline bool smtp_octets_high_bit(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= b[i];
    return (acc & 0x8080808080808080ull) != 0;
}

#endif
