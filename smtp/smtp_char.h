/*
 * smtp_char - octet classes of the SMTP grammar, shared by smtp_addr.c and smtp_cmd.c (private to smtp/)
 *
 * ASCII only and locale-free on purpose: <ctype.h> follows the locale, the grammar (RFC 5321 4.1.2,
 * RFC 5322 3.2.3) does not.
 */
#ifndef RINGMAIL_SMTP_CHAR_H
#define RINGMAIL_SMTP_CHAR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static inline unsigned char smtp_char_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static inline bool smtp_char_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline bool smtp_char_is_alnum(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || smtp_char_is_digit(c);
}

/* smtp_char_is_atext - atext of RFC 5322 3.2.3, as RFC 5321 Atom uses it */
static inline bool smtp_char_is_atext(unsigned char c)
{
    if (smtp_char_is_alnum(c))
        return true;
    return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* smtp_char_eq_word - ASCII case-insensitive compare of s[0..n) with the NUL-terminated upper-case word w */
static inline bool smtp_char_eq_word(const unsigned char *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    if (n != wl)
        return false;
    for (size_t i = 0; i < n; i++)
        if (smtp_char_lower(s[i]) != smtp_char_lower((unsigned char)w[i]))
            return false;
    return true;
}

/* smtp_char_copy - src[0..n) into dst as a C string, ASCII letters lowercased when asked */
static inline void smtp_char_copy(char *dst, const unsigned char *src, size_t n, bool lowercase)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)(lowercase ? smtp_char_lower(src[i]) : src[i]);
    dst[n] = '\0';
}

#endif
