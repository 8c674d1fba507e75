/*
 * smtp_cmd_test - command lines, the paths in them, ESMTP parameters: normal and hostile input
 *
 * Tables of (line, flags) -> expected error, verb and extracted fields. Every accepted line's outputs
 * are also checked for control bytes, since they may end up in headers and records (INJ-01).
 */
#include "smtp/smtp_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/check.h"

/* printable - s as C-escaped text for failure lines */
static bool clean(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 32 || *s == 127)
            return false;
    return true;
}

#define U8 SMTP_CMD_UTF8
#define P(x) SMTP_CMD_ERR_##x
#define V(x) SMTP_CMD_##x
#define A(x) SMTP_ADDR_##x

struct cmd_case {
    const char *line;
    size_t len; /* 0: strlen(line) */
    unsigned flags;
    enum smtp_cmd_err err;
    enum smtp_cmd_verb verb;
    const char *local; /* when set: local, domain and addr flags are all compared */
    const char *domain;
    uint32_t addr_flags;
};

static const struct cmd_case cmd_cases[] = {
    /* verbs */
    {"EHLO mail.example.com", 0, 0, P(NONE), V(EHLO)},
    {"ehlo x", 0, 0, P(NONE), V(EHLO)},
    {"HELO mail.example.com", 0, 0, P(NONE), V(HELO)},
    {"EHLO [127.0.0.1]", 0, 0, P(NONE), V(EHLO)},
    {"EHLO [IPv6:2001:db8::1]", 0, 0, P(NONE), V(EHLO)},
    {"EHLO [IPv6:::ffff:127.0.0.1]", 0, 0, P(NONE), V(EHLO)},
    {"EHLO", 0, 0, P(SYNTAX), V(EHLO)},
    {"EHLO ", 0, 0, P(BAD_DOMAIN), V(EHLO)},
    {"EHLO foo bar", 0, 0, P(BAD_DOMAIN), V(EHLO)},
    {"EHLO  foo", 0, 0, P(BAD_DOMAIN), V(EHLO)},
    {"EHLO foo.", 0, 0, P(BAD_DOMAIN), V(EHLO)},
    {"EHLO .foo", 0, 0, P(BAD_DOMAIN), V(EHLO)},
    {"EHLO my_host", 0, 0, P(BAD_DOMAIN), V(EHLO)},
    {"EHLO -foo", 0, 0, P(BAD_DOMAIN), V(EHLO)},
    {"EHLO b\xc3\xbc"
     "cher.example",
     0, U8, P(BAD_DOMAIN), V(EHLO)},
    {"EHLO [127.0.0.1", 0, 0, P(BAD_DOMAIN), V(EHLO)},
    {"EHLO [127.0.0.256]", 0, 0, P(BAD_DOMAIN), V(EHLO)},
    {"EHLO [1.2.3]", 0, 0, P(BAD_DOMAIN), V(EHLO)},
    {"EHLO [IPv6:1:2:3]", 0, 0, P(BAD_DOMAIN), V(EHLO)},
    {"EHLO [tag:content]", 0, 0, P(BAD_DOMAIN), V(EHLO)},
    {"EHLO [127.0.0.1]x", 0, 0, P(BAD_DOMAIN), V(EHLO)},
    {"EHLO foo\tbar", 0, 0, P(BAD_DOMAIN), V(EHLO)},
    {"DATA", 0, 0, P(NONE), V(DATA)},
    {"data", 0, 0, P(NONE), V(DATA)},
    {"DATA ", 0, 0, P(SYNTAX), V(DATA)},
    {"DATA x", 0, 0, P(SYNTAX), V(DATA)},
    {"RSET", 0, 0, P(NONE), V(RSET)},
    {"QUIT", 0, 0, P(NONE), V(QUIT)},
    {"Quit", 0, 0, P(NONE), V(QUIT)},
    {"STARTTLS", 0, 0, P(NONE), V(STARTTLS)},
    {"STARTTLS x", 0, 0, P(SYNTAX), V(STARTTLS)},
    {"NOOP", 0, 0, P(NONE), V(NOOP)},
    {"NOOP hello there", 0, 0, P(NONE), V(NOOP)},
    {"NOOP ", 0, 0, P(SYNTAX), V(NOOP)},
    {"HELP", 0, 0, P(NONE), V(HELP)},
    {"HELP MAIL", 0, 0, P(NONE), V(HELP)},
    {"VRFY", 0, 0, P(SYNTAX), V(VRFY)},
    {"VRFY user", 0, 0, P(NONE), V(VRFY)},
    {"VRFY a\x01z", 0, 0, P(SYNTAX), V(VRFY)},
    {"VRFY a\x7fz", 0, 0, P(SYNTAX), V(VRFY)},
    {"FOO", 0, 0, P(UNKNOWN_VERB), V(NONE)},
    {"", 0, 0, P(UNKNOWN_VERB), V(NONE)},
    {" MAIL FROM:<>", 0, 0, P(UNKNOWN_VERB), V(NONE)},
    {"MAILFROM:<>", 0, 0, P(UNKNOWN_VERB), V(NONE)},
    {"MAIL\tFROM:<>", 0, 0, P(UNKNOWN_VERB), V(NONE)},
    {"EHL", 0, 0, P(UNKNOWN_VERB), V(NONE)},
    {"EHLOO x", 0, 0, P(UNKNOWN_VERB), V(NONE)},
    {"\xc3\x89HLO x", 0, 0, P(UNKNOWN_VERB), V(NONE)},
    {"BDAT 100", 0, 0, P(NONE), V(BDAT)},
    {"BDAT 0 LAST", 0, 0, P(NONE), V(BDAT)},
    {"BDAT 7 last", 0, 0, P(NONE), V(BDAT)},
    {"BDAT", 0, 0, P(SYNTAX), V(BDAT)},
    {"BDAT x", 0, 0, P(SYNTAX), V(BDAT)},
    {"BDAT -1", 0, 0, P(SYNTAX), V(BDAT)},
    {"BDAT 18446744073709551615", 0, 0, P(NONE), V(BDAT)},
    {"BDAT 18446744073709551616", 0, 0, P(SYNTAX), V(BDAT)},
    {"BDAT 10 LAST x", 0, 0, P(SYNTAX), V(BDAT)},
    {"BDAT 10  LAST", 0, 0, P(SYNTAX), V(BDAT)},
    {"BDAT 10 ", 0, 0, P(SYNTAX), V(BDAT)},
    {"AUTH PLAIN", 0, 0, P(NONE), V(AUTH)},
    {"AUTH plain AGFiYwBkZWY=", 0, 0, P(NONE), V(AUTH)},
    {"AUTH PLAIN =", 0, 0, P(NONE), V(AUTH)},
    {"AUTH PLAIN !!!!", 0, 0, P(SYNTAX), V(AUTH)},
    {"AUTH PLAIN AGF=iYwB", 0, 0, P(SYNTAX), V(AUTH)},
    {"AUTH PLAIN abc", 0, 0, P(SYNTAX), V(AUTH)},
    {"AUTH", 0, 0, P(SYNTAX), V(AUTH)},
    {"AUTH MECHANISMNAMEISTOOLONG", 0, 0, P(SYNTAX), V(AUTH)},

    /* INJ-01: NUL, CR, LF anywhere in the line */
    {"EHLO foo\rbar", 0, 0, P(BAD_CHAR), V(NONE)},
    {"EHLO foo\nbar", 0, 0, P(BAD_CHAR), V(NONE)},
    {"EHLO foo\0bar", 13, 0, P(BAD_CHAR), V(NONE)},
    {"MAIL FROM:<a\0b@example.com>", 27, 0, P(BAD_CHAR), V(NONE)},
    {"MAIL FROM:<ab@example.com>\r", 0, 0, P(BAD_CHAR), V(NONE)},
    {"RCPT TO:<a@example.com>\nMAIL FROM:<>", 0, 0, P(BAD_CHAR), V(NONE)},
    {"MAIL FROM:<a@example.com> ENVID=a\rb", 0, 0, P(BAD_CHAR), V(NONE)},
    {"NOOP \0", 6, 0, P(BAD_CHAR), V(NONE)},
    {"\0", 1, 0, P(BAD_CHAR), V(NONE)},

    /* MAIL / RCPT syntax */
    {"MAIL FROM:<user@example.com>", 0, 0, P(NONE), V(MAIL), "user", "example.com", 0},
    {"mail from:<User@Example.COM>", 0, 0, P(NONE), V(MAIL), "User", "example.com", 0},
    {"MAIL FROM: <user@example.com>", 0, 0, P(NONE), V(MAIL), "user", "example.com", 0},
    {"MAIL FROM:  <user@example.com>", 0, 0, P(ADDR_SYNTAX), V(MAIL)},
    {"MAIL  FROM:<user@example.com>", 0, 0, P(SYNTAX), V(MAIL)},
    {"MAIL FROM <user@example.com>", 0, 0, P(SYNTAX), V(MAIL)},
    {"MAIL TO:<user@example.com>", 0, 0, P(SYNTAX), V(MAIL)},
    {"MAIL", 0, 0, P(SYNTAX), V(MAIL)},
    {"MAIL FROM:", 0, 0, P(ADDR_SYNTAX), V(MAIL)},
    {"MAIL FROM:user@example.com", 0, 0, P(ADDR_SYNTAX), V(MAIL)},
    {"MAIL FROM:<user@example.com", 0, 0, P(ADDR_SYNTAX), V(MAIL)},
    {"MAIL FROM:<user@example.com> ", 0, 0, P(SYNTAX), V(MAIL)},
    {"MAIL FROM:<user@example.com>x", 0, 0, P(SYNTAX), V(MAIL)},
    {"MAIL FROM:<user@example.com>>", 0, 0, P(SYNTAX), V(MAIL)},
    {"MAIL FROM:<>", 0, 0, P(NONE), V(MAIL), "", "", A(NULL)},
    {"MAIL FROM: <>", 0, 0, P(NONE), V(MAIL), "", "", A(NULL)},
    {"RCPT TO:<>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<Postmaster>", 0, 0, P(NONE), V(RCPT), "Postmaster", "", A(POSTMASTER)},
    {"RCPT TO:<postMASTER>", 0, 0, P(NONE), V(RCPT), "postMASTER", "", A(POSTMASTER)},
    {"RCPT TO:<postmaster@example.com>", 0, 0, P(NONE), V(RCPT), "postmaster", "example.com", 0},
    {"RCPT TO:<\"Postmaster\">", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<@a.example:Postmaster>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"MAIL FROM:<Postmaster>", 0, 0, P(ADDR_SYNTAX), V(MAIL)},
    {"RCPT TO:<user>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<@example.com>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<.user@example.com>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user.@example.com>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<us..er@example.com>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<us er@example.com>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<us(er)@example.com>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<a.b+tag=x@sub.example.com>", 0, 0, P(NONE), V(RCPT), "a.b+tag=x", "sub.example.com", 0},
    {"RCPT TO:<user@-example.com>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@example-.com>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@exa_mple.com>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@example..com>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@.example.com>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@x-1.example>", 0, 0, P(NONE), V(RCPT), "user", "x-1.example", 0},
    {"RCPT TO:<a@b@example.com>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@example.com> <x@y.example>", 0, 0, P(SYNTAX), V(RCPT)},

    /* RELAY-01/02: what the relay check must see */
    {"RCPT TO:<user%victim.example@ourhost.example>", 0, 0, P(NONE), V(RCPT), "user%victim.example",
     "ourhost.example", A(PERCENT)},
    {"RCPT TO:<victim.example!user@ourhost.example>", 0, 0, P(NONE), V(RCPT), "victim.example!user",
     "ourhost.example", A(BANG)},
    {"RCPT TO:<\"user@victim.example\"@ourhost.example>", 0, 0, P(NONE), V(RCPT), "\"user@victim.example\"",
     "ourhost.example", A(QUOTED) | A(QUOTED_AT)},
    {"RCPT TO:<\"us\\\"er\\@x\"@ourhost.example>", 0, 0, P(NONE), V(RCPT), "\"us\\\"er\\@x\"",
     "ourhost.example", A(QUOTED) | A(QUOTED_AT)},
    {"RCPT TO:<\"a b%c!d\"@ourhost.example>", 0, 0, P(NONE), V(RCPT), "\"a b%c!d\"", "ourhost.example",
     A(QUOTED) | A(PERCENT) | A(BANG)},
    {"RCPT TO:<\"\"@ourhost.example>", 0, 0, P(NONE), V(RCPT), "\"\"", "ourhost.example", A(QUOTED)},
    {"RCPT TO:<\"unterminated@ourhost.example>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<\"a\\\x01\"@ourhost.example>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<\"a\x01\"@ourhost.example>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<\"a\tb\"@ourhost.example>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<@ourhost.example:user@victim.example>", 0, 0, P(NONE), V(RCPT), "user", "victim.example",
     A(ROUTE)},
    {"RCPT TO:<@a.example,@b.example:user@victim.example>", 0, 0, P(NONE), V(RCPT), "user", "victim.example",
     A(ROUTE)},
    {"RCPT TO:<@a.example,b.example:user@victim.example>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<@a.example:@b.example:user@victim.example>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<@a.example.:user@victim.example>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<@:user@victim.example>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<@a.example>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@[127.0.0.1]>", 0, 0, P(NONE), V(RCPT), "user", "[127.0.0.1]", A(LITERAL)},
    {"RCPT TO:<user@[IPv6:::1]>", 0, 0, P(NONE), V(RCPT), "user", "[ipv6:::1]", A(LITERAL)},
    {"RCPT TO:<user@[IPv6:2001:DB8::1]>", 0, 0, P(NONE), V(RCPT), "user", "[ipv6:2001:db8::1]", A(LITERAL)},
    {"RCPT TO:<user@[127.0.0.1].>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@[300.0.0.1]>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@[127.0.0.1.5]>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@[IPv6:zz::1]>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@[IPv6:1::2::3]>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@[tag:stuff]>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@[]>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@[127.0.0.1>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@Example.COM.>", 0, 0, P(NONE), V(RCPT), "user", "example.com", A(TRAILING_DOT)},
    {"RCPT TO:<user@example.com..>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@.>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user%a.example%b.example@c.example.>", 0, 0, P(NONE), V(RCPT), "user%a.example%b.example",
     "c.example", A(PERCENT) | A(TRAILING_DOT)},

    /* UTF-8 (RFC 6531) */
    {"RCPT TO:<j\xc3\xb6ran@example.com>", 0, 0, P(ADDR_UTF8), V(RCPT)},
    {"RCPT TO:<j\xc3\xb6ran@example.com>", 0, U8, P(NONE), V(RCPT), "j\xc3\xb6ran", "example.com", A(UTF8)},
    {"RCPT TO:<user@b\xc3\xbc"
     "cher.example>",
     0, 0, P(ADDR_UTF8), V(RCPT)},
    {"RCPT TO:<user@B\xc3\xbc"
     "cher.example>",
     0, U8, P(NONE), V(RCPT), "user",
     "b\xc3\xbc"
     "cher.example",
     A(UTF8)},
    {"RCPT TO:<\"j\xc3\xb6 ran\"@example.com>", 0, U8, P(NONE), V(RCPT), "\"j\xc3\xb6 ran\"", "example.com",
     A(UTF8) | A(QUOTED)},
    {"MAIL FROM:<j\xc3\xb6ran@example.com>", 0, 0, P(ADDR_UTF8), V(MAIL)},
    {"MAIL FROM:<j\xc3\xb6ran@example.com> SMTPUTF8", 0, 0, P(NONE), V(MAIL), "j\xc3\xb6ran", "example.com",
     A(UTF8)},
    {"MAIL FROM:<j\xc3\xb6ran@example.com> smtputf8 BODY=8BITMIME", 0, 0, P(NONE), V(MAIL), "j\xc3\xb6ran",
     "example.com", A(UTF8)},
    {"RCPT TO:<j\xc3\x28@example.com>", 0, U8, P(ADDR_SYNTAX), V(RCPT)},         /* bad continuation */
    {"RCPT TO:<j\xc0\xaf@example.com>", 0, U8, P(ADDR_SYNTAX), V(RCPT)},         /* overlong '/' */
    {"RCPT TO:<j\xed\xa0\x80@example.com>", 0, U8, P(ADDR_SYNTAX), V(RCPT)},     /* surrogate */
    {"RCPT TO:<j\xf4\x90\x80\x80@example.com>", 0, U8, P(ADDR_SYNTAX), V(RCPT)}, /* > U+10FFFF */
    {"RCPT TO:<j\xc3@example.com>", 0, U8, P(ADDR_SYNTAX), V(RCPT)},             /* truncated */
    {"RCPT TO:<j\xff@example.com>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<j\xc2\x85@example.com>", 0, U8, P(NONE), V(RCPT), "j\xc2\x85", "example.com", A(UTF8)},

    /* control characters inside addresses */
    {"RCPT TO:<us\ter@example.com>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@exa\x01mple.com>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user\x1b@example.com>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
    {"RCPT TO:<user@example.com\x7f>", 0, 0, P(ADDR_SYNTAX), V(RCPT)},
};

static void test_cmd_table(void)
{
    char b1[1024], b2[1024];

    for (size_t i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
        const struct cmd_case *c = &cmd_cases[i];
        size_t len = c->len ? c->len : strlen(c->line);
        struct smtp_cmd cmd;
        int rc = smtp_cmd_parse(c->line, len, c->flags, &cmd);
        const char *show = check_printable(c->line, len, b1, sizeof(b1));

        if (cmd.err != c->err || (rc == 0) != (c->err == SMTP_CMD_ERR_NONE) || cmd.verb != c->verb) {
            FAIL("\"%s\": got rc %d err %d verb %d, want err %d verb %d", show, rc, cmd.err, cmd.verb, c->err,
                 c->verb);
            continue;
        }
        if (rc != 0)
            continue;
        if (!clean(cmd.helo) || !clean(cmd.addr.local) || !clean(cmd.addr.domain) ||
            !clean(cmd.addr.mailbox) || !clean(cmd.params.envid) || !clean(cmd.params.orcpt) ||
            !clean(cmd.params.auth))
            FAIL("\"%s\": control byte in output", show);
        if (c->local == NULL)
            continue;
        if (strcmp(cmd.addr.local, c->local) != 0 || strlen(cmd.addr.local) != cmd.addr.local_len)
            FAIL("\"%s\": local \"%s\" want \"%s\"", show,
                 check_printable(cmd.addr.local, strlen(cmd.addr.local), b2, sizeof(b2)), c->local);
        if (strcmp(cmd.addr.domain, c->domain) != 0 || strlen(cmd.addr.domain) != cmd.addr.domain_len)
            FAIL("\"%s\": domain \"%s\" want \"%s\"", show, cmd.addr.domain, c->domain);
        if (cmd.addr.flags != c->addr_flags)
            FAIL("\"%s\": addr flags 0x%x want 0x%x", show, cmd.addr.flags, c->addr_flags);
        if (strlen(cmd.addr.mailbox) != cmd.addr.mailbox_len)
            FAIL("\"%s\": mailbox_len", show);
    }
}

/* a few extracted values that the table above does not compare */
static void test_cmd_fields(void)
{
    struct smtp_cmd cmd;
    const char *l;

    l = "EHLO Mail.Example.COM";
    if (smtp_cmd_parse(l, strlen(l), 0, &cmd) != 0 || strcmp(cmd.helo, "Mail.Example.COM") != 0 ||
        cmd.helo_flags != 0)
        FAIL("EHLO argument not kept as written");
    l = "HELO [IPv6:::1]";
    if (smtp_cmd_parse(l, strlen(l), 0, &cmd) != 0 || strcmp(cmd.helo, "[IPv6:::1]") != 0 ||
        cmd.helo_flags != SMTP_ADDR_LITERAL)
        FAIL("HELO literal");
    l = "BDAT 4096 LAST";
    if (smtp_cmd_parse(l, strlen(l), 0, &cmd) != 0 || cmd.bdat_size != 4096 || !cmd.bdat_last)
        FAIL("BDAT 4096 LAST");
    l = "BDAT 18446744073709551615";
    if (smtp_cmd_parse(l, strlen(l), 0, &cmd) != 0 || cmd.bdat_size != UINT64_MAX || cmd.bdat_last)
        FAIL("BDAT max");
    l = "AUTH plain AGFiYwBkZWY=";
    if (smtp_cmd_parse(l, strlen(l), 0, &cmd) != 0 || strcmp(cmd.auth_mech, "PLAIN") != 0 ||
        cmd.arg_len != 12 || memcmp(cmd.arg, "AGFiYwBkZWY=", 12) != 0)
        FAIL("AUTH mechanism and initial response");
    l = "AUTH LOGIN";
    if (smtp_cmd_parse(l, strlen(l), 0, &cmd) != 0 || cmd.arg != NULL)
        FAIL("AUTH without initial response");
    l = "VRFY some user";
    if (smtp_cmd_parse(l, strlen(l), 0, &cmd) != 0 || cmd.arg != l + 5 || cmd.arg_len != 9)
        FAIL("VRFY argument borrowed");
    l = "HELP";
    if (smtp_cmd_parse(l, strlen(l), 0, &cmd) != 0 || cmd.arg != NULL)
        FAIL("HELP without argument");
    l = "MAIL FROM:<@a.example,@b.example:user@Victim.example.>";
    if (smtp_cmd_parse(l, strlen(l), 0, &cmd) != 0 || strcmp(cmd.addr.mailbox, "user@Victim.example") != 0)
        FAIL("mailbox drops the route and the trailing dot, keeps the rest as written: \"%s\"", cmd.addr.mailbox);
    /* an error leaves no half-parsed fields behind */
    l = "MAIL FROM:<user@example.com> SIZE=1 FOO=2";
    if (smtp_cmd_parse(l, strlen(l), 0, &cmd) == 0 || cmd.addr.local[0] != '\0' || cmd.params.seen != 0)
        FAIL("fields left set after an error");
}

struct param_case {
    const char *line;
    unsigned flags;
    enum smtp_cmd_err err;
    uint32_t seen;
    uint64_t size;
    enum smtp_cmd_body body;
    enum smtp_cmd_ret ret;
    uint32_t notify;
    const char *text; /* envid, orcpt or auth per `seen` */
};

#define M "MAIL FROM:<a@example.com>"
#define R "RCPT TO:<b@example.com>"
#define PS(x) SMTP_CMD_PARAM_##x
#define N(x) SMTP_CMD_NOTIFY_##x

static const struct param_case param_cases[] = {
    {M, 0, P(NONE), 0},
    {M " SIZE=1000", 0, P(NONE), PS(SIZE), 1000},
    {M " size=0", 0, P(NONE), PS(SIZE), 0},
    {M " SIZE=18446744073709551615", 0, P(NONE), PS(SIZE), UINT64_MAX},
    {M " SIZE=18446744073709551616", 0, P(NONE), PS(SIZE), UINT64_MAX},
    {M " SIZE=99999999999999999999", 0, P(NONE), PS(SIZE), UINT64_MAX},
    {M " SIZE=00000000000000000001", 0, P(NONE), PS(SIZE), 1},
    {M " SIZE=123456789012345678901", 0, P(PARAM_BAD)},
    {M " SIZE=", 0, P(PARAM_BAD)},
    {M " SIZE", 0, P(PARAM_BAD)},
    {M " SIZE=12a", 0, P(PARAM_BAD)},
    {M " SIZE=-1", 0, P(PARAM_BAD)},
    {M " SIZE=1 SIZE=2", 0, P(PARAM_BAD)},
    {M " SIZE=1  BODY=7BIT", 0, P(SYNTAX)},
    {M " SIZE=1 ", 0, P(SYNTAX)},
    {M " BODY=7BIT", 0, P(NONE), PS(BODY), 0, SMTP_CMD_BODY_7BIT},
    {M " body=8bitmime", 0, P(NONE), PS(BODY), 0, SMTP_CMD_BODY_8BITMIME},
    {M " BODY=BINARYMIME", 0, P(NONE), PS(BODY), 0, SMTP_CMD_BODY_BINARYMIME},
    {M " BODY=9BIT", 0, P(PARAM_BAD)},
    {M " SMTPUTF8", 0, P(NONE), PS(SMTPUTF8)},
    {M " SMTPUTF8=yes", 0, P(PARAM_BAD)},
    {M " SMTPUTF8 SMTPUTF8", 0, P(PARAM_BAD)},
    {M " RET=FULL", 0, P(NONE), PS(RET), 0, 0, SMTP_CMD_RET_FULL},
    {M " ret=hdrs", 0, P(NONE), PS(RET), 0, 0, SMTP_CMD_RET_HDRS},
    {M " RET=ALL", 0, P(PARAM_BAD)},
    {M " ENVID=QQ314159+2Bx", 0, P(NONE), PS(ENVID), 0, 0, 0, 0, "QQ314159+2Bx"},
    {M " ENVID=a+2", 0, P(PARAM_BAD)},
    {M " ENVID=a+ZZ", 0, P(PARAM_BAD)},
    {M " ENVID=a+", 0, P(PARAM_BAD)},
    {M " ENVID=\xc3\xa9", 0, P(PARAM_BAD)},
    {M " ENVID=a=b", 0, P(PARAM_BAD)},
    {M " AUTH=<>", 0, P(NONE), PS(AUTH), 0, 0, 0, 0, "<>"},
    {M " AUTH=user+40example.com", 0, P(NONE), PS(AUTH), 0, 0, 0, 0, "user+40example.com"},
    {M " AUTH=a+4", 0, P(PARAM_BAD)},
    {M " SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x", 0, P(NONE),
     PS(SIZE) | PS(BODY) | PS(SMTPUTF8) | PS(RET) | PS(ENVID), 10, SMTP_CMD_BODY_8BITMIME, SMTP_CMD_RET_HDRS,
     0, "x"},
    {M " FOO=bar", 0, P(PARAM_UNKNOWN)},
    {M " X-FOO", 0, P(PARAM_UNKNOWN)},
    {M " NOTIFY=NEVER", 0, P(PARAM_UNKNOWN)},
    {M " -X=1", 0, P(SYNTAX)},
    {M " X_Y=1", 0, P(SYNTAX)},
    {M " =1", 0, P(SYNTAX)},
    {R " SIZE=1", 0, P(PARAM_UNKNOWN)},
    {R " SMTPUTF8", 0, P(PARAM_UNKNOWN)},
    {R " NOTIFY=SUCCESS,FAILURE", 0, P(NONE), PS(NOTIFY), 0, 0, 0, N(SUCCESS) | N(FAILURE)},
    {R " NOTIFY=success,delay", 0, P(NONE), PS(NOTIFY), 0, 0, 0, N(SUCCESS) | N(DELAY)},
    {R " NOTIFY=NEVER", 0, P(NONE), PS(NOTIFY), 0, 0, 0, N(NEVER)},
    {R " NOTIFY=NEVER,DELAY", 0, P(PARAM_BAD)},
    {R " NOTIFY=SUCCESS,SUCCESS", 0, P(PARAM_BAD)},
    {R " NOTIFY=SUCCESS,", 0, P(PARAM_BAD)},
    {R " NOTIFY=", 0, P(PARAM_BAD)},
    {R " NOTIFY=SOMETIMES", 0, P(PARAM_BAD)},
    {R " ORCPT=rfc822;b+40example.com", 0, P(NONE), PS(ORCPT), 0, 0, 0, 0, "rfc822;b+40example.com"},
    {R " ORCPT=rfc822;b+40example.com NOTIFY=DELAY", 0, P(NONE), PS(ORCPT) | PS(NOTIFY), 0, 0, 0, N(DELAY),
     "rfc822;b+40example.com"},
    {R " ORCPT=rfc822", 0, P(PARAM_BAD)},
    {R " ORCPT=;b", 0, P(PARAM_BAD)},
    {R " ORCPT=rfc822;", 0, P(PARAM_BAD)},
    {R " ORCPT=rf(c;b", 0, P(PARAM_BAD)},
};

static void test_param_table(void)
{
    char b1[1024];

    for (size_t i = 0; i < sizeof(param_cases) / sizeof(param_cases[0]); i++) {
        const struct param_case *c = &param_cases[i];
        struct smtp_cmd cmd;
        size_t len = strlen(c->line);
        int rc = smtp_cmd_parse(c->line, len, c->flags, &cmd);
        const char *show = check_printable(c->line, len, b1, sizeof(b1));
        const struct smtp_cmd_params *p = &cmd.params;

        if (cmd.err != c->err || (rc == 0) != (c->err == SMTP_CMD_ERR_NONE)) {
            FAIL("\"%s\": got err %d want %d", show, cmd.err, c->err);
            continue;
        }
        if (rc != 0)
            continue;
        if (p->seen != c->seen || p->size != c->size || p->body != c->body || p->ret != c->ret ||
            p->notify != c->notify)
            FAIL("\"%s\": seen 0x%x size %llu body %d ret %d notify 0x%x", show, p->seen,
                 (unsigned long long)p->size, p->body, p->ret, p->notify);
        const char *text = (p->seen & PS(ENVID)) ? p->envid : (p->seen & PS(ORCPT)) ? p->orcpt : p->auth;
        if (c->text != NULL && strcmp(text, c->text) != 0)
            FAIL("\"%s\": text \"%s\" want \"%s\"", show, text, c->text);
    }
}

/* LIM-01 and the path limits: exact boundaries, built at run time */
static void test_limits(void)
{
    char line[2048], local[128], dom[512];
    struct smtp_cmd cmd;
    size_t n;

    /* 512 octets with CRLF is the longest command line */
    memcpy(line, "NOOP ", 5);
    memset(line + 5, 'x', sizeof(line) - 5);
    if (smtp_cmd_parse(line, 510, 0, &cmd) != 0)
        FAIL("510-octet line (512 with CRLF) refused: err %d", cmd.err);
    if (smtp_cmd_parse(line, 511, 0, &cmd) == 0 || cmd.err != SMTP_CMD_ERR_TOO_LONG)
        FAIL("511-octet line accepted or wrong error %d", cmd.err);
    if (smtp_cmd_parse(line, sizeof(line), 0, &cmd) == 0 || cmd.err != SMTP_CMD_ERR_TOO_LONG)
        FAIL("2048-octet line");

    /* local part 64 / 65 */
    for (int extra = 0; extra <= 1; extra++) {
        memset(local, 'l', 64 + (size_t)extra);
        local[64 + extra] = '\0';
        n = (size_t)snprintf(line, sizeof(line), "RCPT TO:<%s@example.com>", local);
        int rc = smtp_cmd_parse(line, n, 0, &cmd);
        if (extra == 0 && (rc != 0 || cmd.addr.local_len != 64))
            FAIL("64-octet local part: err %d", cmd.err);
        if (extra == 1 && cmd.err != SMTP_CMD_ERR_ADDR_TOO_LONG)
            FAIL("65-octet local part: err %d", cmd.err);
    }
    /* quoted local part counts its quotes */
    memset(local, 'q', 62);
    local[62] = '\0';
    n = (size_t)snprintf(line, sizeof(line), "RCPT TO:<\"%s\"@example.com>", local);
    if (smtp_cmd_parse(line, n, 0, &cmd) != 0)
        FAIL("64-octet quoted local part: err %d", cmd.err);
    n = (size_t)snprintf(line, sizeof(line), "RCPT TO:<\"%sq\"@example.com>", local);
    if (smtp_cmd_parse(line, n, 0, &cmd) == 0 || cmd.err != SMTP_CMD_ERR_ADDR_TOO_LONG)
        FAIL("65-octet quoted local part: err %d", cmd.err);

    /* label 63 / 64 */
    for (int extra = 0; extra <= 1; extra++) {
        memset(dom, 'd', 63 + (size_t)extra);
        dom[63 + extra] = '\0';
        n = (size_t)snprintf(line, sizeof(line), "RCPT TO:<u@%s.example>", dom);
        int rc = smtp_cmd_parse(line, n, 0, &cmd);
        if ((extra == 0) != (rc == 0))
            FAIL("%d-octet label: err %d", 63 + extra, cmd.err);
    }

    /* mailbox 254 / 255: local 64 + "@" + domain 189 / 190 */
    for (int extra = 0; extra <= 1; extra++) {
        memset(local, 'l', 64);
        local[64] = '\0';
        size_t dl = 189 + (size_t)extra, o = 0;
        while (o < dl) {
            size_t ll = dl - o > 60 ? 60 : dl - o;
            if (o > 0) {
                dom[o++] = '.';
                if (ll > dl - o)
                    ll = dl - o;
            }
            memset(dom + o, 'm', ll);
            o += ll;
        }
        dom[o] = '\0';
        n = (size_t)snprintf(line, sizeof(line), "MAIL FROM:<%s@%s>", local, dom);
        int rc = smtp_cmd_parse(line, n, 0, &cmd);
        if (extra == 0 && (rc != 0 || cmd.addr.mailbox_len != 254))
            FAIL("254-octet mailbox: err %d (domain %zu)", cmd.err, o);
        if (extra == 1 && cmd.err != SMTP_CMD_ERR_ADDR_TOO_LONG)
            FAIL("255-octet mailbox: err %d", cmd.err);
    }

    /* path 256 with a source route: route + 254 mailbox exceeds it */
    memset(local, 'l', 64);
    local[64] = '\0';
    memset(dom, 'm', 60);
    dom[60] = '\0';
    n = (size_t)snprintf(line, sizeof(line), "RCPT TO:<@%s.%s.%s:%s@%s.%s.%s>", dom, dom, dom, local, dom,
                         dom, dom);
    if (smtp_cmd_parse(line, n, 0, &cmd) == 0 || cmd.err != SMTP_CMD_ERR_ADDR_TOO_LONG)
        FAIL("path over 256 with a route: err %d", cmd.err);
}

static void test_replies(void)
{
    static const struct {
        enum smtp_cmd_err err;
        enum smtp_cmd_verb verb;
        int code;
        const char *status;
    } cases[] = {
        {SMTP_CMD_ERR_TOO_LONG, SMTP_CMD_NONE, 500, "5.5.2"},
        {SMTP_CMD_ERR_BAD_CHAR, SMTP_CMD_NONE, 501, "5.5.2"},
        {SMTP_CMD_ERR_UNKNOWN_VERB, SMTP_CMD_NONE, 500, "5.5.1"},
        {SMTP_CMD_ERR_SYNTAX, SMTP_CMD_DATA, 501, "5.5.4"},
        {SMTP_CMD_ERR_ADDR_SYNTAX, SMTP_CMD_MAIL, 501, "5.1.7"},
        {SMTP_CMD_ERR_ADDR_SYNTAX, SMTP_CMD_RCPT, 501, "5.1.3"},
        {SMTP_CMD_ERR_ADDR_UTF8, SMTP_CMD_RCPT, 553, "5.6.7"},
        {SMTP_CMD_ERR_PARAM_UNKNOWN, SMTP_CMD_MAIL, 555, "5.5.4"},
        {SMTP_CMD_ERR_PARAM_BAD, SMTP_CMD_RCPT, 501, "5.5.4"},
        {(enum smtp_cmd_err)999, SMTP_CMD_RCPT, 501, "5.5.4"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct smtp_cmd_reply *r = smtp_cmd_err_reply(cases[i].err, cases[i].verb);
        if (r->code != cases[i].code || strcmp(r->status, cases[i].status) != 0 || r->text == NULL)
            FAIL("reply for err %d verb %d: %d %s", cases[i].err, cases[i].verb, r->code, r->status);
    }
    for (int e = 0; e < SMTP_CMD_ERR__COUNT; e++)
        if (smtp_cmd_err_reply((enum smtp_cmd_err)e, SMTP_CMD_NONE)->code == 0)
            FAIL("no reply for err %d", e);
    if (strcmp(smtp_cmd_verb_name(SMTP_CMD_STARTTLS), "STARTTLS") != 0 ||
        strcmp(smtp_cmd_verb_name((enum smtp_cmd_verb)77), "?") != 0)
        FAIL("verb names");
}

int main(void)
{
    test_cmd_table();
    test_cmd_fields();
    test_param_table();
    test_limits();
    test_replies();
    CHECK_EXIT();
}
