/*
 * smtp_cmd - SMTP command lines and ESMTP parameters (see smtp_cmd.h)
 *
 * Internally every helper returns an enum smtp_cmd_err (SMTP_CMD_ERR_NONE on success) so that the
 * first error found is the one reported; only the exported functions turn that into 0 / -EINVAL.
 * Every index is checked against the length before it is read: the input is a peer's bytes and is
 * not NUL-terminated. Paths and domains are smtp_addr.c's.
 */
#include "smtp/smtp_cmd.h"

#include <errno.h>
#include <string.h>

#include "smtp/smtp_char.h"

typedef unsigned char uchar;

/* xtext (RFC 3461 4): printable ASCII except '+' and '=', with "+XX" hex escapes (either case taken) */
static bool is_xtext(const uchar *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uchar c = s[i];
        if (c == '+') {
            if (i + 2 >= n)
                return false;
            for (size_t j = 1; j <= 2; j++) {
                uchar h = smtp_char_lower(s[i + j]);
                if (!(smtp_char_is_digit(h) || (h >= 'a' && h <= 'f')))
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
        } else if (pad > 0 || !(smtp_char_is_alnum(c) || c == '+' || c == '/')) {
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
        if (!smtp_char_is_digit(s[i]))
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

static enum smtp_cmd_err param_copy(char *dst, size_t cap, const uchar *v, size_t vl)
{
    if (vl >= cap)
        return SMTP_CMD_ERR_PARAM_BAD;
    smtp_char_copy(dst, v, vl, false);
    return SMTP_CMD_ERR_NONE;
}

static enum smtp_cmd_err param_notify(struct smtp_cmd_params *p, const uchar *v, size_t vl)
{
    size_t i = 0;

    while (i <= vl) {
        size_t j = i;
        uint32_t bit;
        while (j < vl && v[j] != ',')
            j++;
        if (smtp_char_eq_word(v + i, j - i, "NEVER"))
            bit = SMTP_CMD_NOTIFY_NEVER;
        else if (smtp_char_eq_word(v + i, j - i, "SUCCESS"))
            bit = SMTP_CMD_NOTIFY_SUCCESS;
        else if (smtp_char_eq_word(v + i, j - i, "FAILURE"))
            bit = SMTP_CMD_NOTIFY_FAILURE;
        else if (smtp_char_eq_word(v + i, j - i, "DELAY"))
            bit = SMTP_CMD_NOTIFY_DELAY;
        else
            return SMTP_CMD_ERR_PARAM_BAD;
        if (p->notify & bit)
            return SMTP_CMD_ERR_PARAM_BAD;
        p->notify |= bit;
        i = j + 1;
    }
    /* NEVER stands alone (RFC 3461 4.1) */
    if ((p->notify & SMTP_CMD_NOTIFY_NEVER) && p->notify != SMTP_CMD_NOTIFY_NEVER)
        return SMTP_CMD_ERR_PARAM_BAD;
    return SMTP_CMD_ERR_NONE;
}

static enum smtp_cmd_err param_orcpt(struct smtp_cmd_params *p, const uchar *v, size_t vl)
{
    size_t semi = 0;

    while (semi < vl && v[semi] != ';')
        semi++;
    if (semi == 0 || semi + 1 >= vl)
        return SMTP_CMD_ERR_PARAM_BAD;
    for (size_t i = 0; i < semi; i++)
        if (!smtp_char_is_atext(v[i]))
            return SMTP_CMD_ERR_PARAM_BAD;
    if (!is_xtext(v + semi + 1, vl - semi - 1))
        return SMTP_CMD_ERR_PARAM_BAD;
    return param_copy(p->orcpt, sizeof(p->orcpt), v, vl);
}

/* param_one - one esmtp-param; has_val false when there was no "=" */
static enum smtp_cmd_err param_one(enum smtp_cmd_verb verb, struct smtp_cmd_params *p, const uchar *kw,
                                   size_t kl, bool has_val, const uchar *v, size_t vl)
{
    static const struct {
        const char *name;
        uint32_t bit;
        enum smtp_cmd_verb verb;
    } known[] = {
        {"SIZE", SMTP_CMD_PARAM_SIZE, SMTP_CMD_MAIL},         {"BODY", SMTP_CMD_PARAM_BODY, SMTP_CMD_MAIL},
        {"SMTPUTF8", SMTP_CMD_PARAM_SMTPUTF8, SMTP_CMD_MAIL}, {"RET", SMTP_CMD_PARAM_RET, SMTP_CMD_MAIL},
        {"ENVID", SMTP_CMD_PARAM_ENVID, SMTP_CMD_MAIL},       {"AUTH", SMTP_CMD_PARAM_AUTH, SMTP_CMD_MAIL},
        {"NOTIFY", SMTP_CMD_PARAM_NOTIFY, SMTP_CMD_RCPT},     {"ORCPT", SMTP_CMD_PARAM_ORCPT, SMTP_CMD_RCPT},
    };
    uint32_t bit = 0;
    bool overflow;

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (known[i].verb == verb && smtp_char_eq_word(kw, kl, known[i].name)) {
            bit = known[i].bit;
            break;
        }
    }
    if (bit == 0)
        return SMTP_CMD_ERR_PARAM_UNKNOWN;
    if (p->seen & bit)
        return SMTP_CMD_ERR_PARAM_BAD;
    p->seen |= bit;
    if (bit == SMTP_CMD_PARAM_SMTPUTF8)
        return has_val ? SMTP_CMD_ERR_PARAM_BAD : SMTP_CMD_ERR_NONE;
    if (!has_val || vl == 0)
        return SMTP_CMD_ERR_PARAM_BAD;
    switch (bit) {
    case SMTP_CMD_PARAM_SIZE:
        return parse_number(v, vl, &p->size, &overflow) ? SMTP_CMD_ERR_NONE : SMTP_CMD_ERR_PARAM_BAD;
    case SMTP_CMD_PARAM_BODY:
        if (smtp_char_eq_word(v, vl, "7BIT"))
            p->body = SMTP_CMD_BODY_7BIT;
        else if (smtp_char_eq_word(v, vl, "8BITMIME"))
            p->body = SMTP_CMD_BODY_8BITMIME;
        else if (smtp_char_eq_word(v, vl, "BINARYMIME"))
            p->body = SMTP_CMD_BODY_BINARYMIME;
        else
            return SMTP_CMD_ERR_PARAM_BAD;
        return SMTP_CMD_ERR_NONE;
    case SMTP_CMD_PARAM_RET:
        if (smtp_char_eq_word(v, vl, "FULL"))
            p->ret = SMTP_CMD_RET_FULL;
        else if (smtp_char_eq_word(v, vl, "HDRS"))
            p->ret = SMTP_CMD_RET_HDRS;
        else
            return SMTP_CMD_ERR_PARAM_BAD;
        return SMTP_CMD_ERR_NONE;
    case SMTP_CMD_PARAM_ENVID:
        if (!is_xtext(v, vl))
            return SMTP_CMD_ERR_PARAM_BAD;
        return param_copy(p->envid, sizeof(p->envid), v, vl);
    case SMTP_CMD_PARAM_AUTH:
        if (!(vl == 2 && v[0] == '<' && v[1] == '>') && !is_xtext(v, vl))
            return SMTP_CMD_ERR_PARAM_BAD;
        return param_copy(p->auth, sizeof(p->auth), v, vl);
    case SMTP_CMD_PARAM_NOTIFY:
        return param_notify(p, v, vl);
    case SMTP_CMD_PARAM_ORCPT:
        return param_orcpt(p, v, vl);
    }
    return SMTP_CMD_ERR_PARAM_UNKNOWN;
}

/* params_parse - *( SP esmtp-param ) to the end of the line */
static enum smtp_cmd_err params_parse(enum smtp_cmd_verb verb, struct smtp_cmd_params *p, const uchar *s,
                                      size_t n)
{
    size_t i = 0;

    while (i < n) {
        if (s[i] != ' ')
            return SMTP_CMD_ERR_SYNTAX;
        i++;
        size_t kw = i;
        while (i < n && s[i] != ' ' && s[i] != '=')
            i++;
        size_t kl = i - kw;
        /* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
        if (kl == 0 || !smtp_char_is_alnum(s[kw]))
            return SMTP_CMD_ERR_SYNTAX;
        for (size_t j = kw; j < kw + kl; j++)
            if (!smtp_char_is_alnum(s[j]) && s[j] != '-')
                return SMTP_CMD_ERR_SYNTAX;
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
                    return SMTP_CMD_ERR_PARAM_BAD;
        }
        enum smtp_cmd_err e = param_one(verb, p, s + kw, kl, has_val, s + v, vl);
        if (e != SMTP_CMD_ERR_NONE)
            return e;
    }
    return SMTP_CMD_ERR_NONE;
}

static const struct {
    const char *name;
    enum smtp_cmd_verb verb;
} verbs[] = {
    {"EHLO", SMTP_CMD_EHLO}, {"HELO", SMTP_CMD_HELO}, {"MAIL", SMTP_CMD_MAIL},
    {"RCPT", SMTP_CMD_RCPT}, {"DATA", SMTP_CMD_DATA}, {"BDAT", SMTP_CMD_BDAT},
    {"RSET", SMTP_CMD_RSET}, {"NOOP", SMTP_CMD_NOOP}, {"QUIT", SMTP_CMD_QUIT},
    {"VRFY", SMTP_CMD_VRFY}, {"HELP", SMTP_CMD_HELP}, {"STARTTLS", SMTP_CMD_STARTTLS},
    {"AUTH", SMTP_CMD_AUTH},
};

const char *smtp_cmd_verb_name(enum smtp_cmd_verb verb)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (verbs[i].verb == verb)
            return verbs[i].name;
    return "?";
}

/* addr_err - the command error for an address error (one enum per file, the same meanings) */
static enum smtp_cmd_err addr_err(enum smtp_addr_err e)
{
    switch (e) {
    case SMTP_ADDR_OK:
        return SMTP_CMD_ERR_NONE;
    case SMTP_ADDR_ERR_SYNTAX:
        return SMTP_CMD_ERR_ADDR_SYNTAX;
    case SMTP_ADDR_ERR_TOO_LONG:
        return SMTP_CMD_ERR_ADDR_TOO_LONG;
    case SMTP_ADDR_ERR_UTF8:
        return SMTP_CMD_ERR_ADDR_UTF8;
    }
    return SMTP_CMD_ERR_ADDR_SYNTAX;
}

/* mail_rcpt - "FROM:" / "TO:" [SP] path *(SP param) */
static enum smtp_cmd_err mail_rcpt(struct smtp_cmd *cmd, const uchar *a, size_t al, bool has_arg,
                                   unsigned flags)
{
    bool mail = cmd->verb == SMTP_CMD_MAIL;
    const char *kw = mail ? "FROM:" : "TO:";
    size_t kl = strlen(kw), i, used = 0;
    unsigned pflags = mail ? SMTP_ADDR_PARSE_NULL_OK : SMTP_ADDR_PARSE_POSTMASTER_OK;
    enum smtp_addr_err ae;
    enum smtp_cmd_err e;

    if (!has_arg || al < kl || !smtp_char_eq_word(a, kl, kw))
        return SMTP_CMD_ERR_SYNTAX;
    i = kl;
    /* RFC 5321 has no space here, but many deployed clients send exactly one: tolerate one */
    if (i < al && a[i] == ' ')
        i++;
    /* UTF-8 is checked after the parameters: SMTPUTF8 on this very MAIL line allows it */
    if (smtp_addr_parse_path((const char *)a + i, al - i, pflags | SMTP_ADDR_PARSE_UTF8, &cmd->addr, &used,
                             &ae) < 0)
        return addr_err(ae);
    i += used;
    e = params_parse(cmd->verb, &cmd->params, a + i, al - i);
    if (e != SMTP_CMD_ERR_NONE)
        return e;
    bool utf8_ok = (flags & SMTP_CMD_UTF8) || (mail && (cmd->params.seen & SMTP_CMD_PARAM_SMTPUTF8));
    if ((cmd->addr.flags & SMTP_ADDR_UTF8) && !utf8_ok)
        return SMTP_CMD_ERR_ADDR_UTF8;
    return SMTP_CMD_ERR_NONE;
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

static enum smtp_cmd_err auth_args(struct smtp_cmd *cmd, const uchar *a, size_t al)
{
    size_t m = 0;

    while (m < al && a[m] != ' ')
        m++;
    if (m == 0 || m > SMTP_CMD_AUTH_MECH_MAX)
        return SMTP_CMD_ERR_SYNTAX;
    for (size_t i = 0; i < m; i++) {
        if (!smtp_char_is_alnum(a[i]) && a[i] != '-' && a[i] != '_')
            return SMTP_CMD_ERR_SYNTAX;
        cmd->auth_mech[i] = (char)(a[i] >= 'a' && a[i] <= 'z' ? a[i] - 32 : a[i]);
    }
    cmd->auth_mech[m] = '\0';
    if (m < al) {
        const uchar *r = a + m + 1;
        size_t rl = al - m - 1;
        if (!(rl == 1 && r[0] == '=') && !is_base64(r, rl))
            return SMTP_CMD_ERR_SYNTAX;
        cmd->arg = (const char *)r;
        cmd->arg_len = rl;
    }
    return SMTP_CMD_ERR_NONE;
}

static enum smtp_cmd_err command_parse(const uchar *s, size_t len, unsigned flags, struct smtp_cmd *cmd)
{
    size_t vl = 0;

    if (len > SMTP_CMD_LINE_MAX - 2)
        return SMTP_CMD_ERR_TOO_LONG;
    if (memchr(s, '\0', len) || memchr(s, '\r', len) || memchr(s, '\n', len))
        return SMTP_CMD_ERR_BAD_CHAR;
    while (vl < len && s[vl] != ' ')
        vl++;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (smtp_char_eq_word(s, vl, verbs[i].name)) {
            cmd->verb = verbs[i].verb;
            break;
        }
    }
    if (cmd->verb == SMTP_CMD_NONE)
        return SMTP_CMD_ERR_UNKNOWN_VERB;

    bool has_arg = vl < len;
    const uchar *a = has_arg ? s + vl + 1 : s + len;
    size_t al = has_arg ? len - vl - 1 : 0;
    bool lit = false;
    bool overflow = false;

    switch (cmd->verb) {
    case SMTP_CMD_EHLO:
    case SMTP_CMD_HELO:
        if (!has_arg)
            return SMTP_CMD_ERR_SYNTAX;
        if (smtp_addr_parse_domain((const char *)a, al, &lit) < 0)
            return SMTP_CMD_ERR_BAD_DOMAIN;
        smtp_char_copy(cmd->helo, a, al, false);
        cmd->helo_flags = lit ? SMTP_ADDR_LITERAL : 0;
        return SMTP_CMD_ERR_NONE;
    case SMTP_CMD_MAIL:
    case SMTP_CMD_RCPT:
        return mail_rcpt(cmd, a, al, has_arg, flags);
    case SMTP_CMD_DATA:
    case SMTP_CMD_RSET:
    case SMTP_CMD_QUIT:
    case SMTP_CMD_STARTTLS:
        return has_arg ? SMTP_CMD_ERR_SYNTAX : SMTP_CMD_ERR_NONE;
    case SMTP_CMD_BDAT: {
        size_t d = 0;
        while (d < al && a[d] != ' ')
            d++;
        if (!has_arg || !parse_number(a, d, &cmd->bdat_size, &overflow) || overflow)
            return SMTP_CMD_ERR_SYNTAX;
        if (d < al) {
            if (!smtp_char_eq_word(a + d + 1, al - d - 1, "LAST"))
                return SMTP_CMD_ERR_SYNTAX;
            cmd->bdat_last = true;
        }
        return SMTP_CMD_ERR_NONE;
    }
    case SMTP_CMD_VRFY:
    case SMTP_CMD_NOOP:
    case SMTP_CMD_HELP:
        if (cmd->verb == SMTP_CMD_VRFY && !has_arg)
            return SMTP_CMD_ERR_SYNTAX;
        if (has_arg) {
            if (!printable_text(a, al))
                return SMTP_CMD_ERR_SYNTAX;
            cmd->arg = (const char *)a;
            cmd->arg_len = al;
        }
        return SMTP_CMD_ERR_NONE;
    case SMTP_CMD_AUTH:
        if (!has_arg)
            return SMTP_CMD_ERR_SYNTAX;
        return auth_args(cmd, a, al);
    case SMTP_CMD_NONE:
        break;
    }
    return SMTP_CMD_ERR_UNKNOWN_VERB;
}

int smtp_cmd_parse(const char *line, size_t len, unsigned flags, struct smtp_cmd *cmd)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->err = command_parse((const uchar *)line, len, flags, cmd);
    if (cmd->err == SMTP_CMD_ERR_NONE)
        return 0;
    /* never hand out half-filled results next to an error */
    enum smtp_cmd_verb verb = cmd->verb;
    enum smtp_cmd_err err = cmd->err;
    memset(cmd, 0, sizeof(*cmd));
    cmd->verb = verb;
    cmd->err = err;
    return -EINVAL;
}

const struct smtp_cmd_reply *smtp_cmd_err_reply(enum smtp_cmd_err err, enum smtp_cmd_verb verb)
{
    static const struct smtp_cmd_reply table[SMTP_CMD_ERR__COUNT] = {
        [SMTP_CMD_ERR_NONE] = {250, "2.0.0", "OK"},
        [SMTP_CMD_ERR_TOO_LONG] = {500, "5.5.2", "Line too long"},
        [SMTP_CMD_ERR_BAD_CHAR] = {501, "5.5.2", "Bare CR, LF or NUL in command"},
        [SMTP_CMD_ERR_UNKNOWN_VERB] = {500, "5.5.1", "Command unrecognized"},
        [SMTP_CMD_ERR_SYNTAX] = {501, "5.5.4", "Syntax error in parameters or arguments"},
        [SMTP_CMD_ERR_BAD_DOMAIN] = {501, "5.5.4", "Invalid domain name"},
        [SMTP_CMD_ERR_ADDR_SYNTAX] = {501, "5.1.3", "Bad address syntax"},
        [SMTP_CMD_ERR_ADDR_TOO_LONG] = {501, "5.1.3", "Path too long"},
        [SMTP_CMD_ERR_ADDR_UTF8] = {553, "5.6.7", "Non-ASCII address requires SMTPUTF8"},
        [SMTP_CMD_ERR_PARAM_UNKNOWN] = {555, "5.5.4", "Unsupported parameter"},
        [SMTP_CMD_ERR_PARAM_BAD] = {501, "5.5.4", "Invalid parameter value"},
    };
    static const struct smtp_cmd_reply sender_syntax = {501, "5.1.7", "Bad sender address syntax"};
    static const struct smtp_cmd_reply sender_long = {501, "5.1.7", "Path too long"};

    if ((unsigned)err >= SMTP_CMD_ERR__COUNT)
        err = SMTP_CMD_ERR_SYNTAX;
    if (verb == SMTP_CMD_MAIL && err == SMTP_CMD_ERR_ADDR_SYNTAX)
        return &sender_syntax;
    if (verb == SMTP_CMD_MAIL && err == SMTP_CMD_ERR_ADDR_TOO_LONG)
        return &sender_long;
    return &table[err];
}
