/*
 * smtp_addr_test - the address grammar through its own API: paths at the start of a buffer, whole domains
 *
 * Paths inside MAIL and RCPT lines (syntax, classification, limits) are in smtp_cmd_test's tables; the
 * cases here call smtp_addr_parse_path() and smtp_addr_parse_domain() directly.
 */
#include "smtp/smtp_addr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/check.h"

/* the domain and path limits: exact boundaries, built at run time */
static void test_limits(void)
{
    char dom[512];

    /* domain 255 / 256 (EHLO, where the 254 mailbox limit does not apply) */
    for (int extra = 0; extra <= 1; extra++) {
        bool lit;
        /* 63.63.63.61 = 253, then + extra + 2 */
        size_t o = 0;
        for (int lab = 0; lab < 4; lab++) {
            size_t ll = lab < 3 ? 63 : 63 + (size_t)extra;
            memset(dom + o, 'a' + lab, ll);
            o += ll;
            if (lab < 3)
                dom[o++] = '.';
        }
        dom[o] = '\0';
        if (o != 255 + (size_t)extra)
            FAIL("test bug: domain length %zu", o);
        int rc = smtp_addr_parse_domain(dom, o, &lit);
        if ((extra == 0) != (rc == 0))
            FAIL("%zu-octet domain: rc %d", o, rc);
    }

    /* smtp_addr_parse_path on a buffer much longer than any path never reads past it and refuses */
    char big[4096];
    struct smtp_addr a;
    size_t used;
    enum smtp_addr_err e;
    big[0] = '<';
    memset(big + 1, 'a', sizeof(big) - 1);
    if (smtp_addr_parse_path(big, sizeof(big), 0, &a, &used, &e) == 0 || e != SMTP_ADDR_ERR_TOO_LONG)
        FAIL("unterminated 4096-octet path: err %d", e);
}

static void test_path_api(void)
{
    struct smtp_addr a;
    size_t used;
    enum smtp_addr_err e;
    const char *s = "<user@example.com> SIZE=10";

    if (smtp_addr_parse_path(s, strlen(s), 0, &a, &used, &e) != 0 || used != 18 || e != SMTP_ADDR_OK)
        FAIL("path used %zu", used);
    if (smtp_addr_parse_path("<>", 2, 0, &a, &used, &e) == 0)
        FAIL("<> accepted without NULL_OK");
    if (smtp_addr_parse_path("<>", 2, SMTP_ADDR_PARSE_NULL_OK, &a, &used, &e) != 0 ||
        a.flags != SMTP_ADDR_NULL)
        FAIL("<> with NULL_OK");
    if (smtp_addr_parse_path("<", 1, SMTP_ADDR_PARSE_NULL_OK, &a, &used, &e) == 0)
        FAIL("\"<\" accepted");
    if (smtp_addr_parse_path("", 0, SMTP_ADDR_PARSE_NULL_OK, &a, &used, &e) == 0)
        FAIL("empty accepted");
}

/* a trailing dot leaves the domain and the mailbox (what is stored, routed and queued), not the flags */
static void test_trailing_dot(void)
{
    struct smtp_addr a;
    size_t used;
    enum smtp_addr_err e;
    const char *s = "<x@Example.COM.>";

    if (smtp_addr_parse_path(s, strlen(s), 0, &a, &used, &e) != 0 || used != strlen(s))
        FAIL("trailing dot path refused: err %d", e);
    CHECK(a.flags & SMTP_ADDR_TRAILING_DOT, "flags 0x%x", a.flags);
    CHECK(strcmp(a.domain, "example.com") == 0 && a.domain_len == 11, "domain \"%s\"", a.domain);
    if (strcmp(a.mailbox, "x@Example.COM") != 0 || a.mailbox_len != 13)
        FAIL("mailbox \"%s\" (%u) keeps the trailing dot", a.mailbox, a.mailbox_len);
    /* a route's trailing dot is still a syntax error, not something to drop */
    s = "<@relay.example.:x@example.com>";
    CHECK(smtp_addr_parse_path(s, strlen(s), 0, &a, &used, &e) != 0 && e == SMTP_ADDR_ERR_SYNTAX, "err %d", e);
}

/* a source route is dropped: its UTF-8 (allowed with SMTPUTF8, refused without) does not make the
 * ASCII mailbox a UTF-8 address (found by fuzz_smtp_cmd's round trip) */
static void test_route_utf8(void)
{
    struct smtp_addr a;
    size_t used;
    enum smtp_addr_err e;
    const char *s = "<@r\xc3\xa9lais.example:x@example.com>";

    CHECK(smtp_addr_parse_path(s, strlen(s), SMTP_ADDR_PARSE_UTF8, &a, &used, &e) == 0, "err %d", e);
    CHECK((a.flags & SMTP_ADDR_ROUTE) && !(a.flags & SMTP_ADDR_UTF8), "flags 0x%x", a.flags);
    CHECK(strcmp(a.mailbox, "x@example.com") == 0, "mailbox %s", a.mailbox);
    CHECK(smtp_addr_parse_path(s, strlen(s), 0, &a, &used, &e) != 0 && e == SMTP_ADDR_ERR_UTF8, "err %d", e);
}

int main(void)
{
    test_limits();
    test_path_api();
    test_trailing_dot();
    test_route_utf8();
    CHECK_EXIT();
}
