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
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

/*
 * smtp_octets_line_run - the offset of the first CR or LF in p[0..n) (n when none); *nul and *high are set
 * (never cleared) when an octet before it is NUL or >= 0x80. Sixteen octets per step with SSE2 (x86-64's
 * baseline), else memchr and the word-at-a-time test: a line of text costs a few vector compares instead
 * of a library call per kind of octet.
 */
static inline size_t smtp_octets_line_run(const void *p, size_t n, bool *nul, bool *high)
{
    const unsigned char *b = p;
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n'), zero = _mm_setzero_si128();
    __m128i anynul = zero, anyhigh = zero;
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
        __m128i z = _mm_cmpeq_epi8(v, zero);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
        if (m) {
            unsigned before = (1u << __builtin_ctz(m)) - 1u; /* the octets of this block before the line end */
            if ((unsigned)_mm_movemask_epi8(z) & before)
                *nul = true;
            if ((unsigned)_mm_movemask_epi8(v) & before)
                *high = true;
            if (_mm_movemask_epi8(anynul))
                *nul = true;
            if (_mm_movemask_epi8(anyhigh))
                *high = true;
            return i + (size_t)__builtin_ctz(m);
        }
        anynul = _mm_or_si128(anynul, z);
        anyhigh = _mm_or_si128(anyhigh, v);
    }
    if (_mm_movemask_epi8(anynul))
        *nul = true;
    if (_mm_movemask_epi8(anyhigh))
        *high = true;
#endif
    const unsigned char *cr1 = memchr(b + i, '\r', n - i);
    size_t k = cr1 ? (size_t)(cr1 - b) : n;
    const unsigned char *lf1 = memchr(b + i, '\n', k - i);
    if (lf1)
        k = (size_t)(lf1 - b);
    if (k > i && memchr(b + i, '\0', k - i))
        *nul = true;
    if (k > i && smtp_octets_high_bit(b + i, k - i))
        *high = true;
    return k;
}

#endif
