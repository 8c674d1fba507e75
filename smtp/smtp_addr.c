/*
 * smtp_addr - SMTP paths, local parts, domains and address literals (see smtp_addr.h)
 *
 * Internally every helper returns an enum smtp_addr_err (SMTP_ADDR_OK on success) so that the first
 * error found is the one reported; only the exported functions turn that into 0 / -EINVAL. Every index
 * is checked against the length before it is read: the input is a peer's bytes and is not
 * NUL-terminated.
 */
#include "smtp/smtp_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "base/utf8.h"
#include "smtp/smtp_char.h"

typedef unsigned char uchar;

/*
 * utf8_take - the UTF-8 sequence at s (RFC 6531: allowed only when utf8_ok), its length in *k; an
 * ill-formed sequence is a syntax error, a well-formed one is noted in *saw_utf8 either way
 */
static enum smtp_addr_err utf8_take(const uchar *s, size_t n, bool utf8_ok, bool *saw_utf8, size_t *k)
{
    *k = utf8_seq_len(s, n);
    if (*k == 0)
        return SMTP_ADDR_ERR_SYNTAX;
    *saw_utf8 = true;
    return utf8_ok ? SMTP_ADDR_OK : SMTP_ADDR_ERR_UTF8;
}

/*
 * parse_domain - Domain (RFC 5321 4.1.2) at s, stopping at the first octet that cannot continue it.
 * A dot that is not followed by another label is taken as a trailing dot and flagged: the caller
 * decides whether that is allowed. U-labels are taken only when utf8_ok is set; *saw_utf8 tells.
 */
static enum smtp_addr_err parse_domain(const uchar *s, size_t n, bool utf8_ok, size_t *used, uint32_t *flags,
                                       bool *saw_utf8)
{
    size_t i = 0;

    for (;;) {
        size_t start = i;
        while (i < n) {
            uchar c = s[i];
            if (smtp_char_is_alnum(c) || c == '-') {
                i++;
            } else if (c >= 0x80) {
                size_t k;
                enum smtp_addr_err e = utf8_take(s + i, n - i, utf8_ok, saw_utf8, &k);
                if (e != SMTP_ADDR_OK)
                    return e;
                i += k;
            } else {
                break;
            }
        }
        if (i == start || s[start] == '-' || s[i - 1] == '-')
            return SMTP_ADDR_ERR_SYNTAX;
        if (i - start > 63)
            return SMTP_ADDR_ERR_TOO_LONG;
        if (i < n && s[i] == '.') {
            if (i + 1 < n && (smtp_char_is_alnum(s[i + 1]) || s[i + 1] >= 0x80 || s[i + 1] == '-')) {
                i++;
                continue;
            }
            i++;
            *flags |= SMTP_ADDR_TRAILING_DOT;
            if (i - 1 > SMTP_ADDR_DOMAIN_MAX)
                return SMTP_ADDR_ERR_TOO_LONG;
            break;
        }
        if (i > SMTP_ADDR_DOMAIN_MAX)
            return SMTP_ADDR_ERR_TOO_LONG;
        break;
    }
    *used = i;
    return SMTP_ADDR_OK;
}

static bool parse_ipv4(const uchar *s, size_t n)
{
    size_t i = 0;

    for (int part = 0; part < 4; part++) {
        unsigned v = 0;
        size_t digits = 0;
        if (part > 0) {
            if (i >= n || s[i] != '.')
                return false;
            i++;
        }
        while (i < n && smtp_char_is_digit(s[i]) && digits < 3) {
            v = v * 10 + (unsigned)(s[i] - '0');
            i++;
            digits++;
        }
        if (digits == 0 || v > 255)
            return false;
    }
    return i == n;
}

/*
 * parse_literal - address-literal "[" IPv4 "]" or "[IPv6:" addr "]" at s (s[0] == '['). The RFC's
 * General-address-literal has no registered tag that a mail server should accept: refused.
 */
static enum smtp_addr_err parse_literal(const uchar *s, size_t n, size_t *used)
{
    size_t j = 1;

    while (j < n && s[j] != ']')
        j++;
    if (j >= n)
        return SMTP_ADDR_ERR_SYNTAX;
    const uchar *c = s + 1;
    size_t cl = j - 1;
    if (cl > 5 && smtp_char_eq_word(c, 5, "IPV6:")) {
        char buf[64];
        size_t al = cl - 5;
        struct in6_addr a6;
        if (al < 2 || al > 45)
            return SMTP_ADDR_ERR_SYNTAX;
        for (size_t k = 0; k < al; k++) {
            uchar ch = c[5 + k];
            if (!(smtp_char_is_digit(ch) || (smtp_char_lower(ch) >= 'a' && smtp_char_lower(ch) <= 'f') ||
                  ch == ':' || ch == '.'))
                return SMTP_ADDR_ERR_SYNTAX;
        }
        memcpy(buf, c + 5, al);
        buf[al] = '\0';
        if (inet_pton(AF_INET6, buf, &a6) != 1)
            return SMTP_ADDR_ERR_SYNTAX;
    } else if (!parse_ipv4(c, cl)) {
        return SMTP_ADDR_ERR_SYNTAX;
    }
    *used = j + 1;
    return SMTP_ADDR_OK;
}

/* local_note - the relay-relevant characters of a local part */
static void local_note(uchar c, bool quoted, uint32_t *flags)
{
    if (c == '%')
        *flags |= SMTP_ADDR_PERCENT;
    else if (c == '!')
        *flags |= SMTP_ADDR_BANG;
    else if (c == '@' && quoted)
        *flags |= SMTP_ADDR_QUOTED_AT;
}

/* parse_local - Dot-string or Quoted-string (RFC 5321 4.1.2, extended by RFC 6531 3.3) */
static enum smtp_addr_err parse_local(const uchar *s, size_t n, bool utf8_ok, size_t *used, uint32_t *flags,
                                      bool *saw_utf8)
{
    size_t i = 0;

    if (n > 0 && s[0] == '"') {
        *flags |= SMTP_ADDR_QUOTED;
        i = 1;
        for (;;) {
            if (i >= n)
                return SMTP_ADDR_ERR_SYNTAX;
            uchar c = s[i];
            if (c == '"') {
                i++;
                break;
            }
            if (c == '\\') {
                /* quoted-pairSMTP: backslash followed by printable ASCII or space only */
                if (i + 1 >= n || s[i + 1] < 32 || s[i + 1] > 126)
                    return SMTP_ADDR_ERR_SYNTAX;
                local_note(s[i + 1], true, flags);
                i += 2;
            } else if (c >= 32 && c <= 126) {
                local_note(c, true, flags);
                i++;
            } else if (c >= 0x80) {
                size_t k;
                enum smtp_addr_err e = utf8_take(s + i, n - i, utf8_ok, saw_utf8, &k);
                if (e != SMTP_ADDR_OK)
                    return e;
                i += k;
            } else {
                return SMTP_ADDR_ERR_SYNTAX;
            }
        }
    } else {
        bool atom_empty = true;
        while (i < n) {
            uchar c = s[i];
            if (smtp_char_is_atext(c)) {
                local_note(c, false, flags);
                atom_empty = false;
                i++;
            } else if (c >= 0x80) {
                size_t k;
                enum smtp_addr_err e = utf8_take(s + i, n - i, utf8_ok, saw_utf8, &k);
                if (e != SMTP_ADDR_OK)
                    return e;
                atom_empty = false;
                i += k;
            } else if (c == '.') {
                if (atom_empty)
                    return SMTP_ADDR_ERR_SYNTAX;
                atom_empty = true;
                i++;
            } else {
                break;
            }
        }
        if (atom_empty)
            return SMTP_ADDR_ERR_SYNTAX;
    }
    if (i > SMTP_ADDR_LOCAL_MAX)
        return SMTP_ADDR_ERR_TOO_LONG;
    *used = i;
    return SMTP_ADDR_OK;
}

/*
 * path_parse - the work of smtp_addr_parse_path(); UTF-8 is always syntax-checked and reported by
 * *saw_utf8, and refused here only when utf8_ok is false.
 */
static enum smtp_addr_err path_parse(const uchar *s, size_t n, unsigned pflags, bool utf8_ok,
                                     struct smtp_addr *out, size_t *used)
{
    size_t i = 1, k = 0;
    uint32_t flags = 0;
    bool saw_utf8 = false;
    enum smtp_addr_err e;

    memset(out, 0, sizeof(*out));
    if (n > SMTP_ADDR_PATH_MAX)
        n = SMTP_ADDR_PATH_MAX + 1; /* enough to see that a path is too long, never more */
    if (n < 2 || s[0] != '<')
        return SMTP_ADDR_ERR_SYNTAX;
    if (s[1] == '>') {
        if (!(pflags & SMTP_ADDR_PARSE_NULL_OK))
            return SMTP_ADDR_ERR_SYNTAX;
        out->flags = SMTP_ADDR_NULL;
        *used = 2;
        return SMTP_ADDR_OK;
    }
    if (s[1] == '@') {
        /* A-d-l: "@" Domain *( "," "@" Domain ) ":" */
        flags |= SMTP_ADDR_ROUTE;
        for (;;) {
            uint32_t rflags = 0;
            if (i >= n || s[i] != '@')
                return SMTP_ADDR_ERR_SYNTAX;
            i++;
            if (i >= n)
                return SMTP_ADDR_ERR_SYNTAX;
            /* the route is dropped (RFC 5321 4.1.2): its UTF-8 is checked, not counted in the mailbox's */
            bool route_utf8 = false;
            e = parse_domain(s + i, n - i, utf8_ok, &k, &rflags, &route_utf8);
            if (e != SMTP_ADDR_OK)
                return e;
            if (rflags & SMTP_ADDR_TRAILING_DOT)
                return SMTP_ADDR_ERR_SYNTAX;
            i += k;
            if (i < n && s[i] == ',') {
                i++;
                continue;
            }
            if (i < n && s[i] == ':') {
                i++;
                break;
            }
            return SMTP_ADDR_ERR_SYNTAX;
        }
    }
    size_t mbox = i;
    e = parse_local(s + i, n - i, utf8_ok, &k, &flags, &saw_utf8);
    if (e != SMTP_ADDR_OK)
        return e;
    size_t local_at = i, local_len = k;
    i += k;
    if (i < n && s[i] == '>' && (pflags & SMTP_ADDR_PARSE_POSTMASTER_OK) &&
        !(flags & (SMTP_ADDR_ROUTE | SMTP_ADDR_QUOTED)) &&
        smtp_char_eq_word(s + local_at, local_len, "POSTMASTER")) {
        out->flags = flags | SMTP_ADDR_POSTMASTER;
        smtp_char_copy(out->local, s + local_at, local_len, false);
        smtp_char_copy(out->mailbox, s + local_at, local_len, false);
        out->local_len = out->mailbox_len = (uint16_t)local_len;
        *used = i + 1;
        return SMTP_ADDR_OK;
    }
    if (i >= n || s[i] != '@')
        return i >= n && n > SMTP_ADDR_PATH_MAX ? SMTP_ADDR_ERR_TOO_LONG : SMTP_ADDR_ERR_SYNTAX;
    i++;
    size_t dom_at = i;
    if (i < n && s[i] == '[') {
        e = parse_literal(s + i, n - i, &k);
        flags |= SMTP_ADDR_LITERAL;
    } else {
        e = parse_domain(s + i, n - i, utf8_ok, &k, &flags, &saw_utf8);
    }
    if (e != SMTP_ADDR_OK)
        return e;
    i += k;
    if (i >= n || s[i] != '>')
        return i >= n && n > SMTP_ADDR_PATH_MAX ? SMTP_ADDR_ERR_TOO_LONG : SMTP_ADDR_ERR_SYNTAX;
    if (i + 1 > SMTP_ADDR_PATH_MAX || i - mbox > SMTP_ADDR_MAILBOX_MAX)
        return SMTP_ADDR_ERR_TOO_LONG;
    /* the trailing dot goes from the mailbox too: it is what is stored, routed and queued, and
     * "x@example.com." must meet the same routes and queues as "x@example.com" */
    size_t dot = (flags & SMTP_ADDR_TRAILING_DOT) ? 1 : 0;
    size_t dom_len = k - dot, mbox_len = i - mbox - dot;
    if (saw_utf8)
        flags |= SMTP_ADDR_UTF8;
    out->flags = flags;
    smtp_char_copy(out->local, s + local_at, local_len, false);
    smtp_char_copy(out->domain, s + dom_at, dom_len, true);
    smtp_char_copy(out->mailbox, s + mbox, mbox_len, false);
    out->local_len = (uint16_t)local_len;
    out->domain_len = (uint16_t)dom_len;
    out->mailbox_len = (uint16_t)mbox_len;
    *used = i + 1;
    return SMTP_ADDR_OK;
}

int smtp_addr_parse_path(const char *s, size_t len, unsigned flags, struct smtp_addr *out, size_t *used,
                         enum smtp_addr_err *err)
{
    size_t u = 0;
    enum smtp_addr_err e =
        path_parse((const uchar *)s, len, flags, (flags & SMTP_ADDR_PARSE_UTF8) != 0, out, &u);

    *err = e;
    if (e != SMTP_ADDR_OK) {
        memset(out, 0, sizeof(*out));
        *used = 0;
        return -EINVAL;
    }
    *used = u;
    return 0;
}

int smtp_addr_parse_domain(const char *str, size_t len, bool *literal)
{
    const uchar *s = (const uchar *)str;
    size_t k = 0;
    uint32_t flags = 0;
    bool saw_utf8 = false;
    enum smtp_addr_err e;

    *literal = false;
    if (len == 0)
        return -EINVAL;
    if (s[0] == '[') {
        e = parse_literal(s, len, &k);
        *literal = true;
    } else {
        e = parse_domain(s, len, false, &k, &flags, &saw_utf8);
    }
    if (e != SMTP_ADDR_OK || k != len || (flags & SMTP_ADDR_TRAILING_DOT)) {
        *literal = false;
        return -EINVAL;
    }
    return 0;
}

int smtp_addr_check(const char *a, bool utf8_ok, const char **enh, const char **why)
{
    size_t n = strlen(a);
    bool hi = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c < 32 || c == 127) {
            *why = "control octet in address";
            return 553;
        }
        hi |= c >= 0x80;
    }
    if (n > SMTP_ADDR_MAILBOX_MAX) {
        *why = "address too long";
        return 553;
    }
    if (hi && !utf8_ok) {
        *enh = "5.6.7";
        *why = "non-ASCII address and the server lacks SMTPUTF8";
        return 553;
    }
    return 0;
}
