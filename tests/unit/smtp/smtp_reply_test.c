/*
 * smtp_reply_test - the SMTP reply parser: codes, enhanced status codes, kept text, malformed replies
 *
 * Every case is fed whole and one octet at a time; both must end with the table's status and reply.
 * The client machine driven by the parser (limits, PROTOCOL_ERROR) is egress_smtp_test's.
 */
#include "smtp/smtp_reply.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "tests/lib/check.h"

struct reply_case {
    const char *in;
    int status; /* of the last feed */
    int code;
    const char *enhanced;
    const char *text;
};

static const struct reply_case reply_cases[] = {
    {"250 ok\r\n", SMTP_REPLY_DONE, 250, "", "ok"},
    {"250 2.1.5 ok\r\n", SMTP_REPLY_DONE, 250, "2.1.5", "ok"},
    {"550-5.1.1 no such\r\n550-5.1.1 user here\r\n550 5.1.1 sorry\r\n", SMTP_REPLY_DONE, 550, "5.1.1",
     "no such / user here / sorry"},
    {"550 4.1.1 class mismatch\r\n", SMTP_REPLY_DONE, 550, "", "4.1.1 class mismatch"},
    {"451 4.3.0\r\n", SMTP_REPLY_DONE, 451, "4.3.0", ""},
    {"250 2.1.5x ok\r\n", SMTP_REPLY_DONE, 250, "", "2.1.5x ok"},
    {"250 2.1234.5 ok\r\n", SMTP_REPLY_DONE, 250, "", "2.1234.5 ok"},
    {"250 tab\there\r\n", SMTP_REPLY_DONE, 250, "", "tab?here"},
    {"250-a\r\n250-b\r\n250-c\r\n250-d\r\n250-e\r\n250 f\r\n", SMTP_REPLY_DONE, 250, "", "a / b / c / d"},
    {"250\r\n", SMTP_REPLY_DONE, 250, "", ""},
    {"250-\r\n250 x\r\n", SMTP_REPLY_DONE, 250, "", "x"},
    {"250-a\r\n", SMTP_REPLY_LINE, 250, "", "a"},
    {"250 partial", SMTP_REPLY_MORE, 0, "", ""},
    {"250-a\r\n251 b\r\n", SMTP_REPLY_ERROR, 0, NULL, NULL},
    {"25\r\n", SMTP_REPLY_ERROR, 0, NULL, NULL},
    {"250_x\r\n", SMTP_REPLY_ERROR, 0, NULL, NULL},
    {"a50 x\r\n", SMTP_REPLY_ERROR, 0, NULL, NULL},
    {"650 x\r\n", SMTP_REPLY_ERROR, 0, NULL, NULL},
    {"\r\n", SMTP_REPLY_ERROR, 0, NULL, NULL},
};

/* feed_all - feed until the input ends or a reply completes or fails; returns the last status */
static int feed_all(struct smtp_reply_parser *p, const char *in, size_t n, bool bytewise)
{
    int rc = SMTP_REPLY_MORE;
    size_t i = 0;
    while (i < n) {
        size_t used, chunk = bytewise ? 1 : n - i;
        rc = smtp_reply_feed(p, in + i, chunk, &used);
        i += used;
        if (rc == SMTP_REPLY_DONE || rc == SMTP_REPLY_ERROR)
            break;
    }
    return rc;
}

static void test_reply(void)
{
    for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
        for (int bw = 0; bw < 2; bw++) {
            const struct reply_case *c = &reply_cases[i];
            struct smtp_reply_parser p;
            smtp_reply_init(&p, 0, 0);
            int rc = feed_all(&p, c->in, strlen(c->in), bw);
            if (rc == SMTP_REPLY_LINE && c->status == SMTP_REPLY_LINE)
                continue;
            if (rc != c->status) {
                FAIL("reply %zu (%s): status %d want %d", i, bw ? "bytes" : "whole", rc, c->status);
                continue;
            }
            if (rc != SMTP_REPLY_DONE)
                continue;
            if (p.reply.code != c->code || strcmp(p.reply.enhanced, c->enhanced) ||
                strcmp(p.reply.text, c->text))
                FAIL("reply %zu: got %d \"%s\" \"%s\", want %d \"%s\" \"%s\"", i, p.reply.code,
                     p.reply.enhanced, p.reply.text, c->code, c->enhanced, c->text);
        }
    }
    /* two replies back to back in one buffer: the second starts clean */
    struct smtp_reply_parser p;
    smtp_reply_init(&p, 0, 0);
    const char *two = "250 2.0.0 one\r\n354 two\r\n";
    size_t used;
    if (smtp_reply_feed(&p, two, strlen(two), &used) != SMTP_REPLY_DONE || used != 15)
        FAIL("first of two replies");
    if (smtp_reply_feed(&p, two + used, strlen(two) - used, &used) != SMTP_REPLY_DONE ||
        p.reply.code != 354 || strcmp(p.reply.text, "two") || p.reply.enhanced[0] || p.reply.lines != 1)
        FAIL("second of two replies: %d \"%s\"", p.reply.code, p.reply.text);
}

int main(void)
{
    test_reply();
    CHECK_EXIT();
}
