/*
 * utf8 - the one UTF-8 validator (see utf8.h)
 */
#include "base/utf8.h"

size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* past U+10FFFF */
    } else
        return 0;
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return need;
}

size_t utf8_valid_prefix(const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i = 0, k;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        if ((k = utf8_seq_len(s + i, n - i)) == 0)
            break;
        i += k;
    }
    return i;
}

bool utf8_valid(const void *s, size_t n)
{
    return utf8_valid_prefix(s, n) == n;
}
