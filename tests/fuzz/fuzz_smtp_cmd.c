/*
 * fuzz_smtp_cmd - smtp_cmd_parse() on any line
 *
 * Input: 1 flag octet, then the line (copied to an exact-size heap block so that any read past
 * `len` is an ASan report). Checks what the session relies on: an accepted line has a verb and
 * clean, NUL-terminated, length-consistent outputs within their limits; borrowed arguments lie
 * inside the line; a refused line has an error with a reply; and a parsed path parses again to the
 * same result when written back as "RCPT TO:<mailbox>".
 */
#include "smtp/smtp_cmd.h"

#include <stdlib.h>
#include <string.h>
#include "tests/fuzz/fuzz.h"



static void check_str(const char *s, size_t cap, size_t len, bool ascii_only)
{
    size_t n = strnlen(s, cap);
    CHECK(n < cap && n == len);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        CHECK(c >= 32 && c != 127);
        CHECK(!ascii_only || c < 128);
    }
}

static void check_addr(const struct smtp_addr *a, bool utf8_ok)
{
    bool ascii = !utf8_ok;
    check_str(a->local, sizeof(a->local), a->local_len, ascii);
    check_str(a->domain, sizeof(a->domain), a->domain_len, ascii);
    check_str(a->mailbox, sizeof(a->mailbox), a->mailbox_len, ascii);
    CHECK(a->local_len <= SMTP_ADDR_LOCAL_MAX && a->domain_len <= SMTP_ADDR_DOMAIN_MAX);
    CHECK(a->mailbox_len <= SMTP_ADDR_MAILBOX_MAX);
    CHECK(utf8_ok || !(a->flags & SMTP_ADDR_UTF8));
    for (size_t i = 0; i < a->domain_len; i++)
        CHECK(!(a->domain[i] >= 'A' && a->domain[i] <= 'Z'));
    if (a->flags & SMTP_ADDR_NULL) {
        CHECK(a->flags == SMTP_ADDR_NULL && a->mailbox_len == 0);
        return;
    }
    if (a->flags & SMTP_ADDR_POSTMASTER) {
        CHECK(a->domain_len == 0 && a->local_len == 10);
        return;
    }
    CHECK(a->local_len > 0 && a->domain_len > 0);
    CHECK(a->mailbox_len == a->local_len + 1 + a->domain_len);
    CHECK(!(a->flags & SMTP_ADDR_LITERAL) || (a->domain[0] == '[' && a->domain[a->domain_len - 1] == ']'));
    CHECK(!(a->flags & SMTP_ADDR_QUOTED_AT) || (a->flags & SMTP_ADDR_QUOTED));
    CHECK(((a->flags & SMTP_ADDR_PERCENT) != 0) == (memchr(a->local, '%', a->local_len) != NULL));
    CHECK(((a->flags & SMTP_ADDR_BANG) != 0) == (memchr(a->local, '!', a->local_len) != NULL));

    /* round trip: the mailbox alone, as a RCPT, gives the same parts */
    char line[SMTP_CMD_LINE_MAX];
    struct smtp_cmd again;
    memcpy(line, "RCPT TO:<", 9);
    memcpy(line + 9, a->mailbox, a->mailbox_len);
    line[9 + a->mailbox_len] = '>';
    CHECK(smtp_cmd_parse(line, 10 + a->mailbox_len, SMTP_CMD_UTF8, &again) == 0);
    CHECK(again.addr.flags == (a->flags & ~(uint32_t)(SMTP_ADDR_ROUTE | SMTP_ADDR_TRAILING_DOT)));
    CHECK(strcmp(again.addr.local, a->local) == 0 && strcmp(again.addr.domain, a->domain) == 0);
    CHECK(strcmp(again.addr.mailbox, a->mailbox) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = (data[0] & 1) ? SMTP_CMD_UTF8 : 0;
    size_t len = size - 1;
    char *line = malloc(len ? len : 1);
    memcpy(line, data + 1, len);
    struct smtp_cmd cmd;

    int rc = smtp_cmd_parse(line, len, flags, &cmd);
    const struct smtp_cmd_reply *r = smtp_cmd_err_reply(cmd.err, cmd.verb);
    CHECK(r != NULL && r->code >= 200 && r->code < 600);
    if (rc != 0) {
        CHECK(rc < 0 && cmd.err != SMTP_CMD_ERR_NONE && cmd.err < SMTP_CMD_ERR__COUNT);
        if (len > SMTP_CMD_LINE_MAX - 2)
            CHECK(cmd.err == SMTP_CMD_ERR_TOO_LONG);
        free(line);
        return 0;
    }
    CHECK(cmd.err == SMTP_CMD_ERR_NONE && cmd.verb != SMTP_CMD_NONE);
    CHECK(len <= SMTP_CMD_LINE_MAX - 2);
    CHECK(!memchr(line, 0, len) && !memchr(line, '\r', len) && !memchr(line, '\n', len));
    check_str(cmd.helo, sizeof(cmd.helo), strlen(cmd.helo), true);
    check_str(cmd.params.envid, sizeof(cmd.params.envid), strlen(cmd.params.envid), true);
    check_str(cmd.params.orcpt, sizeof(cmd.params.orcpt), strlen(cmd.params.orcpt), true);
    check_str(cmd.params.auth, sizeof(cmd.params.auth), strlen(cmd.params.auth), true);
    check_str(cmd.auth_mech, sizeof(cmd.auth_mech), strlen(cmd.auth_mech), true);
    if (cmd.arg != NULL)
        CHECK(cmd.arg >= line && cmd.arg + cmd.arg_len <= line + len && cmd.arg_len > 0);
    if (cmd.verb == SMTP_CMD_EHLO || cmd.verb == SMTP_CMD_HELO) {
        bool lit;
        CHECK(smtp_addr_parse_domain(cmd.helo, strlen(cmd.helo), &lit) == 0);
        CHECK(lit == ((cmd.helo_flags & SMTP_ADDR_LITERAL) != 0));
    }
    if (cmd.verb == SMTP_CMD_MAIL || cmd.verb == SMTP_CMD_RCPT) {
        bool utf8_ok = (flags & SMTP_CMD_UTF8) ||
                       (cmd.verb == SMTP_CMD_MAIL && (cmd.params.seen & SMTP_CMD_PARAM_SMTPUTF8));
        check_addr(&cmd.addr, utf8_ok);
        CHECK(cmd.verb == SMTP_CMD_MAIL || !(cmd.addr.flags & SMTP_ADDR_NULL));
        CHECK(cmd.verb == SMTP_CMD_RCPT || !(cmd.addr.flags & SMTP_ADDR_POSTMASTER));
    } else {
        CHECK(cmd.addr.flags == 0 && cmd.params.seen == 0);
    }
    if (cmd.params.seen & SMTP_CMD_PARAM_NOTIFY)
        CHECK(cmd.params.notify != 0 &&
              (!(cmd.params.notify & SMTP_CMD_NOTIFY_NEVER) || cmd.params.notify == SMTP_CMD_NOTIFY_NEVER));
    free(line);
    return 0;
}
