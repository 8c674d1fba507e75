/*
 * ingress_parse - SMTP command lines, paths and ESMTP parameters
 *
 * See ingress_parse.h for the contract. Internally every helper returns an enum ingress_perr
 * (INGRESS_PERR_NONE on success) so that the first error found is the one reported; only the
 * exported functions turn that into 0 / -EINVAL. Every index is checked against the length
 * before it is read: the input is a peer's bytes and is not NUL-terminated.
 */
#include "ingress/ingress_parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

typedef unsigned char uchar;

static inline uchar lower(uchar c)
{
    return (c >= 'A' && c <= 'Z') ? (uchar)(c + 32) : c;
}

static inline bool is_alpha(uchar c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static inline bool is_digit(uchar c)
{
    return c >= '0' && c <= '9';
}

static inline bool is_alnum(uchar c)
{
    return is_alpha(c) || is_digit(c);
}

/* atext of RFC 5322 3.2.3, as RFC 5321 Atom uses it */
static bool is_atext(uchar c)
{
    if (is_alnum(c))
        return true;
    return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* ASCII case-insensitive compare of s[0..n) with the NUL-terminated upper-case word w */
static bool eq_word(const uchar *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    if (n != wl)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != lower((uchar)w[i]))
            return false;
    return true;
}

/*
 * utf8_len - length of the well-formed UTF-8 sequence at s (RFC 3629), or 0: rejects overlong forms,
 * surrogates and code points past U+10FFFF, so that one code point has one spelling.
 */
static size_t utf8_len(const uchar *s, size_t n)
{
    uchar c = s[0];
    size_t need;
    uchar lo = 0x80, hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < need)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return need;
}

/*
 * parse_domain - Domain (RFC 5321 4.1.2) at s, stopping at the first octet that cannot continue it.
 * A dot that is not followed by another label is taken as a trailing dot and flagged: the caller
 * decides whether that is allowed. U-labels are taken only when utf8_ok is set; *saw_utf8 tells.
 */
static enum ingress_perr parse_domain(const uchar *s, size_t n, bool utf8_ok, size_t *used, uint32_t *flags,
                                      bool *saw_utf8)
{
    size_t i = 0;

    for (;;) {
        size_t start = i;
        while (i < n) {
            uchar c = s[i];
            if (is_alnum(c) || c == '-') {
                i++;
            } else if (c >= 0x80) {
                size_t k = utf8_len(s + i, n - i);
                if (k == 0)
                    return INGRESS_PERR_ADDR_SYNTAX;
                *saw_utf8 = true;
                if (!utf8_ok)
                    return INGRESS_PERR_ADDR_UTF8;
                i += k;
            } else {
                break;
            }
        }
        if (i == start || s[start] == '-' || s[i - 1] == '-')
            return INGRESS_PERR_ADDR_SYNTAX;
        if (i - start > 63)
            return INGRESS_PERR_ADDR_TOO_LONG;
        if (i < n && s[i] == '.') {
            if (i + 1 < n && (is_alnum(s[i + 1]) || s[i + 1] >= 0x80 || s[i + 1] == '-')) {
                i++;
                continue;
            }
            i++;
            *flags |= INGRESS_ADDR_TRAILING_DOT;
            if (i - 1 > INGRESS_DOMAIN_MAX)
                return INGRESS_PERR_ADDR_TOO_LONG;
            break;
        }
        if (i > INGRESS_DOMAIN_MAX)
            return INGRESS_PERR_ADDR_TOO_LONG;
        break;
    }
    *used = i;
    return INGRESS_PERR_NONE;
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
        while (i < n && is_digit(s[i]) && digits < 3) {
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
static enum ingress_perr parse_literal(const uchar *s, size_t n, size_t *used)
{
    size_t j = 1;

    while (j < n && s[j] != ']')
        j++;
    if (j >= n)
        return INGRESS_PERR_ADDR_SYNTAX;
    const uchar *c = s + 1;
    size_t cl = j - 1;
    if (cl > 5 && eq_word(c, 5, "IPV6:")) {
        char buf[64];
        size_t al = cl - 5;
        struct in6_addr a6;
        if (al < 2 || al > 45)
            return INGRESS_PERR_ADDR_SYNTAX;
        for (size_t k = 0; k < al; k++) {
            uchar ch = c[5 + k];
            if (!(is_digit(ch) || (lower(ch) >= 'a' && lower(ch) <= 'f') || ch == ':' || ch == '.'))
                return INGRESS_PERR_ADDR_SYNTAX;
        }
        memcpy(buf, c + 5, al);
        buf[al] = '\0';
        if (inet_pton(AF_INET6, buf, &a6) != 1)
            return INGRESS_PERR_ADDR_SYNTAX;
    } else if (!parse_ipv4(c, cl)) {
        return INGRESS_PERR_ADDR_SYNTAX;
    }
    *used = j + 1;
    return INGRESS_PERR_NONE;
}

/* local_note - the relay-relevant characters of a local part */
static void local_note(uchar c, bool quoted, uint32_t *flags)
{
    if (c == '%')
        *flags |= INGRESS_ADDR_PERCENT;
    else if (c == '!')
        *flags |= INGRESS_ADDR_BANG;
    else if (c == '@' && quoted)
        *flags |= INGRESS_ADDR_QUOTED_AT;
}

/* parse_local - Dot-string or Quoted-string (RFC 5321 4.1.2, extended by RFC 6531 3.3) */
static enum ingress_perr parse_local(const uchar *s, size_t n, bool utf8_ok, size_t *used, uint32_t *flags,
                                     bool *saw_utf8)
{
    size_t i = 0;

    if (n > 0 && s[0] == '"') {
        *flags |= INGRESS_ADDR_QUOTED;
        i = 1;
        for (;;) {
            if (i >= n)
                return INGRESS_PERR_ADDR_SYNTAX;
            uchar c = s[i];
            if (c == '"') {
                i++;
                break;
            }
            if (c == '\\') {
                /* quoted-pairSMTP: backslash followed by printable ASCII or space only */
                if (i + 1 >= n || s[i + 1] < 32 || s[i + 1] > 126)
                    return INGRESS_PERR_ADDR_SYNTAX;
                local_note(s[i + 1], true, flags);
                i += 2;
            } else if (c >= 32 && c <= 126) {
                local_note(c, true, flags);
                i++;
            } else if (c >= 0x80) {
                size_t k = utf8_len(s + i, n - i);
                if (k == 0)
                    return INGRESS_PERR_ADDR_SYNTAX;
                *saw_utf8 = true;
                if (!utf8_ok)
                    return INGRESS_PERR_ADDR_UTF8;
                i += k;
            } else {
                return INGRESS_PERR_ADDR_SYNTAX;
            }
        }
    } else {
        bool atom_empty = true;
        while (i < n) {
            uchar c = s[i];
            if (is_atext(c)) {
                local_note(c, false, flags);
                atom_empty = false;
                i++;
            } else if (c >= 0x80) {
                size_t k = utf8_len(s + i, n - i);
                if (k == 0)
                    return INGRESS_PERR_ADDR_SYNTAX;
                *saw_utf8 = true;
                if (!utf8_ok)
                    return INGRESS_PERR_ADDR_UTF8;
                atom_empty = false;
                i += k;
            } else if (c == '.') {
                if (atom_empty)
                    return INGRESS_PERR_ADDR_SYNTAX;
                atom_empty = true;
                i++;
            } else {
                break;
            }
        }
        if (atom_empty)
            return INGRESS_PERR_ADDR_SYNTAX;
    }
    if (i > INGRESS_LOCAL_MAX)
        return INGRESS_PERR_ADDR_TOO_LONG;
    *used = i;
    return INGRESS_PERR_NONE;
}

static void copy_out(char *dst, const uchar *src, size_t n, bool lowercase)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)(lowercase ? lower(src[i]) : src[i]);
    dst[n] = '\0';
}

/*
 * path_parse - the work of ingress_parse_path(); UTF-8 is always syntax-checked and reported by
 * *saw_utf8, and refused here only when utf8_ok is false.
 */
static enum ingress_perr path_parse(const uchar *s, size_t n, unsigned pflags, bool utf8_ok,
                                    struct ingress_addr *out, size_t *used)
{
    size_t i = 1, k = 0;
    uint32_t flags = 0;
    bool saw_utf8 = false;
    enum ingress_perr e;

    memset(out, 0, sizeof(*out));
    if (n > INGRESS_PATH_MAX)
        n = INGRESS_PATH_MAX + 1; /* enough to see that a path is too long, never more */
    if (n < 2 || s[0] != '<')
        return INGRESS_PERR_ADDR_SYNTAX;
    if (s[1] == '>') {
        if (!(pflags & INGRESS_PARSE_NULL_OK))
            return INGRESS_PERR_ADDR_SYNTAX;
        out->flags = INGRESS_ADDR_NULL;
        *used = 2;
        return INGRESS_PERR_NONE;
    }
    if (s[1] == '@') {
        /* A-d-l: "@" Domain *( "," "@" Domain ) ":" */
        flags |= INGRESS_ADDR_ROUTE;
        for (;;) {
            uint32_t rflags = 0;
            if (i >= n || s[i] != '@')
                return INGRESS_PERR_ADDR_SYNTAX;
            i++;
            if (i >= n)
                return INGRESS_PERR_ADDR_SYNTAX;
            e = parse_domain(s + i, n - i, utf8_ok, &k, &rflags, &saw_utf8);
            if (e != INGRESS_PERR_NONE)
                return e;
            if (rflags & INGRESS_ADDR_TRAILING_DOT)
                return INGRESS_PERR_ADDR_SYNTAX;
            i += k;
            if (i < n && s[i] == ',') {
                i++;
                continue;
            }
            if (i < n && s[i] == ':') {
                i++;
                break;
            }
            return INGRESS_PERR_ADDR_SYNTAX;
        }
    }
    size_t mbox = i;
    e = parse_local(s + i, n - i, utf8_ok, &k, &flags, &saw_utf8);
    if (e != INGRESS_PERR_NONE)
        return e;
    size_t local_at = i, local_len = k;
    i += k;
    if (i < n && s[i] == '>' && (pflags & INGRESS_PARSE_POSTMASTER_OK) &&
        !(flags & (INGRESS_ADDR_ROUTE | INGRESS_ADDR_QUOTED)) &&
        eq_word(s + local_at, local_len, "POSTMASTER")) {
        out->flags = flags | INGRESS_ADDR_POSTMASTER;
        copy_out(out->local, s + local_at, local_len, false);
        copy_out(out->mailbox, s + local_at, local_len, false);
        out->local_len = out->mailbox_len = (uint16_t)local_len;
        *used = i + 1;
        return INGRESS_PERR_NONE;
    }
    if (i >= n || s[i] != '@')
        return i >= n && n > INGRESS_PATH_MAX ? INGRESS_PERR_ADDR_TOO_LONG : INGRESS_PERR_ADDR_SYNTAX;
    i++;
    size_t dom_at = i;
    if (i < n && s[i] == '[') {
        e = parse_literal(s + i, n - i, &k);
        flags |= INGRESS_ADDR_LITERAL;
    } else {
        e = parse_domain(s + i, n - i, utf8_ok, &k, &flags, &saw_utf8);
    }
    if (e != INGRESS_PERR_NONE)
        return e;
    i += k;
    if (i >= n || s[i] != '>')
        return i >= n && n > INGRESS_PATH_MAX ? INGRESS_PERR_ADDR_TOO_LONG : INGRESS_PERR_ADDR_SYNTAX;
    if (i + 1 > INGRESS_PATH_MAX || i - mbox > INGRESS_MAILBOX_MAX)
        return INGRESS_PERR_ADDR_TOO_LONG;
    size_t dom_len = k - ((flags & INGRESS_ADDR_TRAILING_DOT) ? 1 : 0);
    if (saw_utf8)
        flags |= INGRESS_ADDR_UTF8;
    out->flags = flags;
    copy_out(out->local, s + local_at, local_len, false);
    copy_out(out->domain, s + dom_at, dom_len, true);
    copy_out(out->mailbox, s + mbox, i - mbox, false);
    out->local_len = (uint16_t)local_len;
    out->domain_len = (uint16_t)dom_len;
    out->mailbox_len = (uint16_t)(i - mbox);
    *used = i + 1;
    return INGRESS_PERR_NONE;
}

int ingress_parse_path(const char *s, size_t len, unsigned flags, struct ingress_addr *out, size_t *used,
                       enum ingress_perr *err)
{
    size_t u = 0;
    enum ingress_perr e =
        path_parse((const uchar *)s, len, flags, (flags & INGRESS_PARSE_UTF8) != 0, out, &u);

    *err = e;
    if (e != INGRESS_PERR_NONE) {
        memset(out, 0, sizeof(*out));
        *used = 0;
        return -EINVAL;
    }
    *used = u;
    return 0;
}

int ingress_parse_domain(const char *str, size_t len, bool *literal)
{
    const uchar *s = (const uchar *)str;
    size_t k = 0;
    uint32_t flags = 0;
    bool saw_utf8 = false;
    enum ingress_perr e;

    *literal = false;
    if (len == 0)
        return -EINVAL;
    if (s[0] == '[') {
        e = parse_literal(s, len, &k);
        *literal = true;
    } else {
        e = parse_domain(s, len, false, &k, &flags, &saw_utf8);
    }
    if (e != INGRESS_PERR_NONE || k != len || (flags & INGRESS_ADDR_TRAILING_DOT)) {
        *literal = false;
        return -EINVAL;
    }
    return 0;
}

/* xtext (RFC 3461 4): printable ASCII except '+' and '=', with "+XX" hex escapes (either case taken) */
static bool is_xtext(const uchar *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uchar c = s[i];
        if (c == '+') {
            if (i + 2 >= n)
                return false;
            for (size_t j = 1; j <= 2; j++) {
                uchar h = lower(s[i + j]);
                if (!(is_digit(h) || (h >= 'a' && h <= 'f')))
                    return false;
            }
            i += 2;
        } else if (c < 33 || c > 126 || c == '=') {
            return false;
        }
    }
    return true;
}

static bool is_base64(const uchar *s, size_t n)
{
    size_t pad = 0;

    if (n == 0 || n % 4 != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        uchar c = s[i];
        if (c == '=') {
            pad++;
        } else if (pad > 0 || !(is_alnum(c) || c == '+' || c == '/')) {
            return false;
        }
    }
    return pad <= 2;
}

/* parse_number - 1..20 digits; saturates at UINT64_MAX and says so */
static bool parse_number(const uchar *s, size_t n, uint64_t *out, bool *overflow)
{
    uint64_t v = 0;

    *overflow = false;
    if (n == 0 || n > 20)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            *overflow = true;
        else
            v = v * 10 + d;
    }
    *out = *overflow ? UINT64_MAX : v;
    return true;
}

static enum ingress_perr param_copy(char *dst, size_t cap, const uchar *v, size_t vl)
{
    if (vl >= cap)
        return INGRESS_PERR_PARAM_BAD;
    copy_out(dst, v, vl, false);
    return INGRESS_PERR_NONE;
}

static enum ingress_perr param_notify(struct ingress_params *p, const uchar *v, size_t vl)
{
    size_t i = 0;

    while (i <= vl) {
        size_t j = i;
        uint32_t bit;
        while (j < vl && v[j] != ',')
            j++;
        if (eq_word(v + i, j - i, "NEVER"))
            bit = INGRESS_NOTIFY_NEVER;
        else if (eq_word(v + i, j - i, "SUCCESS"))
            bit = INGRESS_NOTIFY_SUCCESS;
        else if (eq_word(v + i, j - i, "FAILURE"))
            bit = INGRESS_NOTIFY_FAILURE;
        else if (eq_word(v + i, j - i, "DELAY"))
            bit = INGRESS_NOTIFY_DELAY;
        else
            return INGRESS_PERR_PARAM_BAD;
        if (p->notify & bit)
            return INGRESS_PERR_PARAM_BAD;
        p->notify |= bit;
        i = j + 1;
    }
    /* NEVER stands alone (RFC 3461 4.1) */
    if ((p->notify & INGRESS_NOTIFY_NEVER) && p->notify != INGRESS_NOTIFY_NEVER)
        return INGRESS_PERR_PARAM_BAD;
    return INGRESS_PERR_NONE;
}

static enum ingress_perr param_orcpt(struct ingress_params *p, const uchar *v, size_t vl)
{
    size_t semi = 0;

    while (semi < vl && v[semi] != ';')
        semi++;
    if (semi == 0 || semi + 1 >= vl)
        return INGRESS_PERR_PARAM_BAD;
    for (size_t i = 0; i < semi; i++)
        if (!is_atext(v[i]))
            return INGRESS_PERR_PARAM_BAD;
    if (!is_xtext(v + semi + 1, vl - semi - 1))
        return INGRESS_PERR_PARAM_BAD;
    return param_copy(p->orcpt, sizeof(p->orcpt), v, vl);
}

/* param_one - one esmtp-param; has_val false when there was no "=" */
static enum ingress_perr param_one(enum ingress_verb verb, struct ingress_params *p, const uchar *kw,
                                   size_t kl, bool has_val, const uchar *v, size_t vl)
{
    static const struct {
        const char *name;
        uint32_t bit;
        enum ingress_verb verb;
    } known[] = {
        {"SIZE", INGRESS_PARAM_SIZE, INGRESS_VERB_MAIL},
        {"BODY", INGRESS_PARAM_BODY, INGRESS_VERB_MAIL},
        {"SMTPUTF8", INGRESS_PARAM_SMTPUTF8, INGRESS_VERB_MAIL},
        {"RET", INGRESS_PARAM_RET, INGRESS_VERB_MAIL},
        {"ENVID", INGRESS_PARAM_ENVID, INGRESS_VERB_MAIL},
        {"AUTH", INGRESS_PARAM_AUTH, INGRESS_VERB_MAIL},
        {"NOTIFY", INGRESS_PARAM_NOTIFY, INGRESS_VERB_RCPT},
        {"ORCPT", INGRESS_PARAM_ORCPT, INGRESS_VERB_RCPT},
    };
    uint32_t bit = 0;
    bool overflow;

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (known[i].verb == verb && eq_word(kw, kl, known[i].name)) {
            bit = known[i].bit;
            break;
        }
    }
    if (bit == 0)
        return INGRESS_PERR_PARAM_UNKNOWN;
    if (p->seen & bit)
        return INGRESS_PERR_PARAM_BAD;
    p->seen |= bit;
    if (bit == INGRESS_PARAM_SMTPUTF8)
        return has_val ? INGRESS_PERR_PARAM_BAD : INGRESS_PERR_NONE;
    if (!has_val || vl == 0)
        return INGRESS_PERR_PARAM_BAD;
    switch (bit) {
    case INGRESS_PARAM_SIZE:
        return parse_number(v, vl, &p->size, &overflow) ? INGRESS_PERR_NONE : INGRESS_PERR_PARAM_BAD;
    case INGRESS_PARAM_BODY:
        if (eq_word(v, vl, "7BIT"))
            p->body = INGRESS_BODY_7BIT;
        else if (eq_word(v, vl, "8BITMIME"))
            p->body = INGRESS_BODY_8BITMIME;
        else if (eq_word(v, vl, "BINARYMIME"))
            p->body = INGRESS_BODY_BINARYMIME;
        else
            return INGRESS_PERR_PARAM_BAD;
        return INGRESS_PERR_NONE;
    case INGRESS_PARAM_RET:
        if (eq_word(v, vl, "FULL"))
            p->ret = INGRESS_RET_FULL;
        else if (eq_word(v, vl, "HDRS"))
            p->ret = INGRESS_RET_HDRS;
        else
            return INGRESS_PERR_PARAM_BAD;
        return INGRESS_PERR_NONE;
    case INGRESS_PARAM_ENVID:
        if (!is_xtext(v, vl))
            return INGRESS_PERR_PARAM_BAD;
        return param_copy(p->envid, sizeof(p->envid), v, vl);
    case INGRESS_PARAM_AUTH:
        if (!(vl == 2 && v[0] == '<' && v[1] == '>') && !is_xtext(v, vl))
            return INGRESS_PERR_PARAM_BAD;
        return param_copy(p->auth, sizeof(p->auth), v, vl);
    case INGRESS_PARAM_NOTIFY:
        return param_notify(p, v, vl);
    case INGRESS_PARAM_ORCPT:
        return param_orcpt(p, v, vl);
    }
    return INGRESS_PERR_PARAM_UNKNOWN;
}

/* params_parse - *( SP esmtp-param ) to the end of the line */
static enum ingress_perr params_parse(enum ingress_verb verb, struct ingress_params *p, const uchar *s,
                                      size_t n)
{
    size_t i = 0;

    while (i < n) {
        if (s[i] != ' ')
            return INGRESS_PERR_SYNTAX;
        i++;
        size_t kw = i;
        while (i < n && s[i] != ' ' && s[i] != '=')
            i++;
        size_t kl = i - kw;
        /* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
        if (kl == 0 || !is_alnum(s[kw]))
            return INGRESS_PERR_SYNTAX;
        for (size_t j = kw; j < kw + kl; j++)
            if (!is_alnum(s[j]) && s[j] != '-')
                return INGRESS_PERR_SYNTAX;
        bool has_val = i < n && s[i] == '=';
        size_t v = i, vl = 0;
        if (has_val) {
            v = ++i;
            while (i < n && s[i] != ' ')
                i++;
            vl = i - v;
            /* esmtp-value = 1*(%d33-60 / %d62-126) */
            for (size_t j = v; j < i; j++)
                if (s[j] < 33 || s[j] > 126 || s[j] == '=')
                    return INGRESS_PERR_PARAM_BAD;
        }
        enum ingress_perr e = param_one(verb, p, s + kw, kl, has_val, s + v, vl);
        if (e != INGRESS_PERR_NONE)
            return e;
    }
    return INGRESS_PERR_NONE;
}

static const struct {
    const char *name;
    enum ingress_verb verb;
} verbs[] = {
    {"EHLO", INGRESS_VERB_EHLO}, {"HELO", INGRESS_VERB_HELO}, {"MAIL", INGRESS_VERB_MAIL},
    {"RCPT", INGRESS_VERB_RCPT}, {"DATA", INGRESS_VERB_DATA}, {"BDAT", INGRESS_VERB_BDAT},
    {"RSET", INGRESS_VERB_RSET}, {"NOOP", INGRESS_VERB_NOOP}, {"QUIT", INGRESS_VERB_QUIT},
    {"VRFY", INGRESS_VERB_VRFY}, {"HELP", INGRESS_VERB_HELP}, {"STARTTLS", INGRESS_VERB_STARTTLS},
    {"AUTH", INGRESS_VERB_AUTH},
};

const char *ingress_parse_verb_name(enum ingress_verb verb)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (verbs[i].verb == verb)
            return verbs[i].name;
    return "?";
}

/* mail_rcpt - "FROM:" / "TO:" [SP] path *(SP param) */
static enum ingress_perr mail_rcpt(struct ingress_cmd *cmd, const uchar *a, size_t al, bool has_arg,
                                   unsigned flags)
{
    bool mail = cmd->verb == INGRESS_VERB_MAIL;
    const char *kw = mail ? "FROM:" : "TO:";
    size_t kl = strlen(kw), i, used = 0;
    unsigned pflags = mail ? INGRESS_PARSE_NULL_OK : INGRESS_PARSE_POSTMASTER_OK;
    enum ingress_perr e;

    if (!has_arg || al < kl || !eq_word(a, kl, kw))
        return INGRESS_PERR_SYNTAX;
    i = kl;
    /* RFC 5321 has no space here, but many deployed clients send exactly one: tolerate one */
    if (i < al && a[i] == ' ')
        i++;
    /* UTF-8 is checked after the parameters: SMTPUTF8 on this very MAIL line allows it */
    e = path_parse(a + i, al - i, pflags, true, &cmd->addr, &used);
    if (e != INGRESS_PERR_NONE)
        return e;
    i += used;
    e = params_parse(cmd->verb, &cmd->params, a + i, al - i);
    if (e != INGRESS_PERR_NONE)
        return e;
    bool utf8_ok = (flags & INGRESS_PARSE_UTF8) || (mail && (cmd->params.seen & INGRESS_PARAM_SMTPUTF8));
    if ((cmd->addr.flags & INGRESS_ADDR_UTF8) && !utf8_ok)
        return INGRESS_PERR_ADDR_UTF8;
    return INGRESS_PERR_NONE;
}

/* printable_text - VRFY/HELP/NOOP argument: no control bytes but HT */
static bool printable_text(const uchar *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((s[i] < 32 && s[i] != '\t') || s[i] == 127)
            return false;
    return true;
}

static enum ingress_perr auth_args(struct ingress_cmd *cmd, const uchar *a, size_t al)
{
    size_t m = 0;

    while (m < al && a[m] != ' ')
        m++;
    if (m == 0 || m > INGRESS_AUTH_MECH_MAX)
        return INGRESS_PERR_SYNTAX;
    for (size_t i = 0; i < m; i++) {
        if (!is_alnum(a[i]) && a[i] != '-' && a[i] != '_')
            return INGRESS_PERR_SYNTAX;
        cmd->auth_mech[i] = (char)(a[i] >= 'a' && a[i] <= 'z' ? a[i] - 32 : a[i]);
    }
    cmd->auth_mech[m] = '\0';
    if (m < al) {
        const uchar *r = a + m + 1;
        size_t rl = al - m - 1;
        if (!(rl == 1 && r[0] == '=') && !is_base64(r, rl))
            return INGRESS_PERR_SYNTAX;
        cmd->arg = (const char *)r;
        cmd->arg_len = rl;
    }
    return INGRESS_PERR_NONE;
}

static enum ingress_perr command_parse(const uchar *s, size_t len, unsigned flags, struct ingress_cmd *cmd)
{
    size_t vl = 0;

    if (len > INGRESS_CMD_LINE_MAX - 2)
        return INGRESS_PERR_TOO_LONG;
    if (memchr(s, '\0', len) || memchr(s, '\r', len) || memchr(s, '\n', len))
        return INGRESS_PERR_BAD_CHAR;
    while (vl < len && s[vl] != ' ')
        vl++;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (eq_word(s, vl, verbs[i].name)) {
            cmd->verb = verbs[i].verb;
            break;
        }
    }
    if (cmd->verb == INGRESS_VERB_NONE)
        return INGRESS_PERR_UNKNOWN_VERB;

    bool has_arg = vl < len;
    const uchar *a = has_arg ? s + vl + 1 : s + len;
    size_t al = has_arg ? len - vl - 1 : 0;
    bool lit = false;
    bool overflow = false;

    switch (cmd->verb) {
    case INGRESS_VERB_EHLO:
    case INGRESS_VERB_HELO:
        if (!has_arg)
            return INGRESS_PERR_SYNTAX;
        if (ingress_parse_domain((const char *)a, al, &lit) < 0)
            return INGRESS_PERR_BAD_DOMAIN;
        copy_out(cmd->helo, a, al, false);
        cmd->helo_flags = lit ? INGRESS_ADDR_LITERAL : 0;
        return INGRESS_PERR_NONE;
    case INGRESS_VERB_MAIL:
    case INGRESS_VERB_RCPT:
        return mail_rcpt(cmd, a, al, has_arg, flags);
    case INGRESS_VERB_DATA:
    case INGRESS_VERB_RSET:
    case INGRESS_VERB_QUIT:
    case INGRESS_VERB_STARTTLS:
        return has_arg ? INGRESS_PERR_SYNTAX : INGRESS_PERR_NONE;
    case INGRESS_VERB_BDAT: {
        size_t d = 0;
        while (d < al && a[d] != ' ')
            d++;
        if (!has_arg || !parse_number(a, d, &cmd->bdat_size, &overflow) || overflow)
            return INGRESS_PERR_SYNTAX;
        if (d < al) {
            if (!eq_word(a + d + 1, al - d - 1, "LAST"))
                return INGRESS_PERR_SYNTAX;
            cmd->bdat_last = true;
        }
        return INGRESS_PERR_NONE;
    }
    case INGRESS_VERB_VRFY:
    case INGRESS_VERB_NOOP:
    case INGRESS_VERB_HELP:
        if (cmd->verb == INGRESS_VERB_VRFY && !has_arg)
            return INGRESS_PERR_SYNTAX;
        if (has_arg) {
            if (!printable_text(a, al))
                return INGRESS_PERR_SYNTAX;
            cmd->arg = (const char *)a;
            cmd->arg_len = al;
        }
        return INGRESS_PERR_NONE;
    case INGRESS_VERB_AUTH:
        if (!has_arg)
            return INGRESS_PERR_SYNTAX;
        return auth_args(cmd, a, al);
    case INGRESS_VERB_NONE:
        break;
    }
    return INGRESS_PERR_UNKNOWN_VERB;
}

int ingress_parse_command(const char *line, size_t len, unsigned flags, struct ingress_cmd *cmd)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->err = command_parse((const uchar *)line, len, flags, cmd);
    if (cmd->err == INGRESS_PERR_NONE)
        return 0;
    /* never hand out half-filled results next to an error */
    enum ingress_verb verb = cmd->verb;
    enum ingress_perr err = cmd->err;
    memset(cmd, 0, sizeof(*cmd));
    cmd->verb = verb;
    cmd->err = err;
    return -EINVAL;
}

const struct ingress_reply *ingress_parse_reply(enum ingress_perr err, enum ingress_verb verb)
{
    static const struct ingress_reply table[INGRESS_PERR__COUNT] = {
        [INGRESS_PERR_NONE] = {250, "2.0.0", "OK"},
        [INGRESS_PERR_TOO_LONG] = {500, "5.5.2", "Line too long"},
        [INGRESS_PERR_BAD_CHAR] = {501, "5.5.2", "Bare CR, LF or NUL in command"},
        [INGRESS_PERR_UNKNOWN_VERB] = {500, "5.5.1", "Command unrecognized"},
        [INGRESS_PERR_SYNTAX] = {501, "5.5.4", "Syntax error in parameters or arguments"},
        [INGRESS_PERR_BAD_DOMAIN] = {501, "5.5.4", "Invalid domain name"},
        [INGRESS_PERR_ADDR_SYNTAX] = {501, "5.1.3", "Bad address syntax"},
        [INGRESS_PERR_ADDR_TOO_LONG] = {501, "5.1.3", "Path too long"},
        [INGRESS_PERR_ADDR_UTF8] = {553, "5.6.7", "Non-ASCII address requires SMTPUTF8"},
        [INGRESS_PERR_PARAM_UNKNOWN] = {555, "5.5.4", "Unsupported parameter"},
        [INGRESS_PERR_PARAM_BAD] = {501, "5.5.4", "Invalid parameter value"},
    };
    static const struct ingress_reply sender_syntax = {501, "5.1.7", "Bad sender address syntax"};
    static const struct ingress_reply sender_long = {501, "5.1.7", "Path too long"};

    if ((unsigned)err >= INGRESS_PERR__COUNT)
        err = INGRESS_PERR_SYNTAX;
    if (verb == INGRESS_VERB_MAIL && err == INGRESS_PERR_ADDR_SYNTAX)
        return &sender_syntax;
    if (verb == INGRESS_VERB_MAIL && err == INGRESS_PERR_ADDR_TOO_LONG)
        return &sender_long;
    return &table[err];
}
