/*
 * utf8 - the one UTF-8 validator (RFC 3629)
 *
 * Well-formed means what RFC 3629 section 4 says: no overlong forms, no surrogates (U+D800..DFFF),
 * nothing past U+10FFFF, so that one code point has one spelling. Control characters and NUL are
 * well-formed UTF-8; callers that refuse them say so themselves.
 */
#ifndef RINGMAIL_UTF8_H
#define RINGMAIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* utf8_seq_len - length (1..4) of the well-formed sequence at s[0..n), 0 if there is none (n == 0 too) */
size_t utf8_seq_len(const unsigned char *s, size_t n);
/* utf8_valid - s[0..n) is entirely well-formed UTF-8 (ASCII included) */
bool utf8_valid(const void *s, size_t n);
/* utf8_valid_prefix - length of the longest well-formed prefix of s[0..n) */
size_t utf8_valid_prefix(const void *s, size_t n);

#endif
