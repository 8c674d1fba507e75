/*
 * ingress_report_test - ARF (RFC 5965) and DSN (RFC 3464) reports (ingress/ingress_report.c): the fields
 * of good reports (the RFCs' own examples, folded fields, LF line ends, a failed recipient after a
 * delivered one), X-Ringmail-Id, and the refusals of malformed ones; every input sits in an exact-size
 * heap block so that a read past its end is an ASan report
 *
 * Exit 0 pass, 1 fail.
 */
#include "ingress/ingress_report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/check.h"

static int parse(const char *text, struct ingress_report *r, const char **why)
{
    size_t n = strlen(text);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, text, n);
    int rc = ingress_report_parse(copy, n, r, why);
    free(copy);
    return rc;
}

/* RFC 5965 appendix B.2, with our X-Ringmail-Id in the returned message */
static const char arf[] =
    "From: <abusedesk@example.com>\r\n"
    "Date: Thu, 8 Mar 2005 17:40:36 EDT\r\n"
    "Subject: FW: Earn money\r\n"
    "To: <abuse@example.net>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/report; report-type=feedback-report;\r\n"
    "     boundary=\"part1_13d.2e68ed54_boundary\"\r\n"
    "\r\n"
    "--part1_13d.2e68ed54_boundary\r\n"
    "Content-Type: text/plain; charset=\"US-ASCII\"\r\n"
    "Content-Transfer-Encoding: 7bit\r\n"
    "\r\n"
    "This is an email abuse report for an email message received from IP\r\n"
    "192.0.2.1 on Thu, 8 Mar 2005 14:00:00 EDT.\r\n"
    "\r\n"
    "--part1_13d.2e68ed54_boundary\r\n"
    "Content-Type: message/feedback-report\r\n"
    "\r\n"
    "Feedback-Type: abuse\r\n"
    "User-Agent: SomeGenerator/1.0\r\n"
    "Version: 1\r\n"
    "Original-Mail-From: <somespammer@example.net>\r\n"
    "Original-Rcpt-To: <user@example.com>\r\n"
    "Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT\r\n"
    "Reporting-MTA: dns; mail.example.com\r\n"
    "Source-IP: 192.0.2.1\r\n"
    "Authentication-Results: mail.example.com;\r\n"
    "               spf=fail smtp.mail=somespammer@example.com\r\n"
    "Reported-Domain: example.net\r\n"
    "\r\n"
    "--part1_13d.2e68ed54_boundary\r\n"
    "Content-Type: message/rfc822\r\n"
    "Content-Disposition: inline\r\n"
    "\r\n"
    "X-Ringmail-Id: 0123456789ABCDEF0123456789abcdef; tenant=acme;\r\n"
    " campaign=spring\r\n"
    "X-Ringmail-Id: ffffffffffffffffffffffffffffffff; tenant=forged\r\n"
    "From: <somespammer@example.net>\r\n"
    "Received: from mailserver.example.net (mailserver.example.net\r\n"
    "        [192.0.2.1]) by example.com with ESMTP id M63d4137594e46;\r\n"
    "        Thu, 08 Mar 2005 14:00:00 -0400\r\n"
    "To: <Undisclosed Recipients>\r\n"
    "Subject: Earn money\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-type: text/plain\r\n"
    "Message-ID: 8787KJKJ3K4J3K4J3K4J3.mail@example.net\r\n"
    "Date: Thu, 02 Sep 2004 12:31:03 -0500\r\n"
    "\r\n"
    "Spam Spam Spam\r\n"
    "--part1_13d.2e68ed54_boundary--\r\n";

static void test_arf(void)
{
    struct ingress_report r;
    const char *why = "unset";
    CHECK(parse(arf, &r, &why) == 0, "ARF parsed: %s", why ? why : "");
    CHECK(r.kind == INGRESS_REPORT_ARF, "kind arf");
    CHECK(strcmp(r.feedback_type, "abuse") == 0, "type %s", r.feedback_type);
    CHECK(strcmp(r.user_agent, "SomeGenerator/1.0") == 0, "user agent %s", r.user_agent);
    CHECK(strcmp(r.version, "1") == 0, "version");
    CHECK(strcmp(r.orig_sender, "somespammer@example.net") == 0, "sender %s", r.orig_sender);
    CHECK(strcmp(r.orig_rcpt, "user@example.com") == 0, "rcpt %s", r.orig_rcpt);
    CHECK(strcmp(r.reporting_mta, "mail.example.com") == 0, "reporting %s", r.reporting_mta);
    CHECK(strcmp(r.source_ip, "192.0.2.1") == 0, "source ip");
    CHECK(strcmp(r.arrival_date, "Thu, 8 Mar 2005 14:00:00 EDT") == 0, "arrival %s", r.arrival_date);
    CHECK(strcmp(r.message_id, "8787KJKJ3K4J3K4J3K4J3.mail@example.net") == 0, "message id %s", r.message_id);
    CHECK(strcmp(r.ring_id, "0123456789abcdef0123456789abcdef") == 0, "topmost id, lower case: %s", r.ring_id);
    CHECK(strcmp(r.tenant, "acme") == 0, "tenant %s", r.tenant);
    CHECK(strcmp(r.campaign, "spring") == 0, "campaign across a fold: %s", r.campaign);
    CHECK(strcmp(ingress_report_kind_name(r.kind), "arf") == 0, "kind name");
}

/* RFC 3464 appendix, shape of example 2 (one delivered, one failed recipient); LF line ends */
static const char dsn[] =
    "Date: Thu, 7 Jul 1994 17:16:05 -0400\n"
    "From: Mail Delivery Subsystem <MAILER-DAEMON@CS.UTK.EDU>\n"
    "Subject: Returned mail: Cannot send message for 5 days\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/report; report-type=delivery-status; boundary=RAA14128.773615765/CS.UTK.EDU\n"
    "\n"
    "--RAA14128.773615765/CS.UTK.EDU\n"
    "\n"
    "The original message was received at Sat, 2 Jul 1994 17:10:28 -0400\n"
    "\n"
    "--RAA14128.773615765/CS.UTK.EDU\n"
    "content-type: message/delivery-status\n"
    "\n"
    "Reporting-MTA: dns; cs.utk.edu\n"
    "\n"
    "Original-Recipient: rfc822;arathib@vnet.ibm.com\n"
    "Final-Recipient: rfc822;arathib@vnet.ibm.com\n"
    "Action: delivered\n"
    "Status: 2.0.0\n"
    "\n"
    "Original-Recipient: rfc822;louisl@larry.slip.umd.edu\n"
    "Final-Recipient: RFC822; <louisl@larry.slip.umd.edu>\n"
    "Action: failed\n"
    "Status: 5.1.1\n"
    "Remote-MTA: DNS; vnet.ibm.com\n"
    "Diagnostic-Code: smtp; 550 5.1.1 User unknown\n"
    "\n"
    "--RAA14128.773615765/CS.UTK.EDU\n"
    "content-type: text/rfc822-headers\n"
    "\n"
    "Message-ID: <orig@cs.utk.edu>\n"
    "X-Ringmail-Id: 00000000000000000000000000000001\n"
    "\n"
    "--RAA14128.773615765/CS.UTK.EDU--\n";

static void test_dsn(void)
{
    struct ingress_report r;
    const char *why = "unset";
    CHECK(parse(dsn, &r, &why) == 0, "DSN parsed: %s", why ? why : "");
    CHECK(r.kind == INGRESS_REPORT_DSN, "kind dsn");
    CHECK(strcmp(r.orig_rcpt, "louisl@larry.slip.umd.edu") == 0, "the failed recipient: %s", r.orig_rcpt);
    CHECK(strcmp(r.dsn_orig_rcpt, "louisl@larry.slip.umd.edu") == 0, "original recipient");
    CHECK(strcmp(r.action, "failed") == 0, "action %s", r.action);
    CHECK(strcmp(r.status, "5.1.1") == 0, "status %s", r.status);
    CHECK(strcmp(r.diagnostic, "550 5.1.1 User unknown") == 0, "diagnostic %s", r.diagnostic);
    CHECK(strcmp(r.remote_mta, "vnet.ibm.com") == 0, "remote mta %s", r.remote_mta);
    CHECK(strcmp(r.reporting_mta, "cs.utk.edu") == 0, "reporting %s", r.reporting_mta);
    CHECK(strcmp(r.message_id, "<orig@cs.utk.edu>") == 0, "message id %s", r.message_id);
    CHECK(strcmp(r.ring_id, "00000000000000000000000000000001") == 0, "ring id %s", r.ring_id);
    CHECK(r.tenant[0] == '\0' && r.campaign[0] == '\0', "no tenant");
}

static char *replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    if (!at)
        return NULL;
    size_t n = strlen(text) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    size_t head = (size_t)(at - text);
    memcpy(out, text, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    return out;
}

static void test_refusals(void)
{
    static const struct {
        const char *base, *from, *to, *why;
    } cases[] = {
        {arf, "multipart/report", "multipart/mixed", "not a multipart/report"},
        {arf, "boundary=\"part1_13d.2e68ed54_boundary\"", "charset=x", "without a boundary"},
        {arf, "Feedback-Type: abuse\r\n", "", "without Feedback-Type"},
        {arf, "message/feedback-report", "text/plain", "no message/feedback-report"},
        /* the failed block is the one taken, and it must be whole */
        {dsn, "Final-Recipient: RFC822; <louisl@larry.slip.umd.edu>\n", "", "Final-Recipient"},
        {dsn, "Status: 5.1.1\n", "", "without a Status"},
        {dsn, "Action: failed\n", "Action: delayed\n", NULL}, /* no failure: the first block (2.0.0) */
        {dsn, "report-type=delivery-status", "report-type=disposition-notification", "neither"},
        {dsn, "--RAA14128.773615765/CS.UTK.EDU\ncontent-type: message/delivery-status",
         "--other\ncontent-type: message/delivery-status", "no message/feedback-report"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = replace(cases[i].base, cases[i].from, cases[i].to);
        struct ingress_report r;
        const char *why = NULL;
        CHECK(text != NULL, "case %zu applies", i);
        if (!text)
            continue;
        int rc = parse(text, &r, &why);
        if (cases[i].why) {
            CHECK(rc == -EINVAL && why && strstr(why, cases[i].why), "case %zu refused (%s)", i, why ? why : "ok");
            CHECK(r.kind == INGRESS_REPORT_NONE, "case %zu: no kind", i);
        } else {
            CHECK(rc == 0, "case %zu still a report (%s)", i, why ? why : "");
        }
        free(text);
    }
    /* a DSN whose only recipient block lost its Status */
    static const char one[] = "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
                              "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
                              "Final-Recipient: rfc822; a@b.test\r\nAction: failed\r\n\r\n--b--\r\n";
    struct ingress_report r;
    const char *why = NULL;
    CHECK(parse(one, &r, &why) == -EINVAL && why && strstr(why, "Status"), "no Status: %s", why ? why : "ok");
    CHECK(parse("", &r, &why) == -EINVAL, "empty");
    CHECK(ingress_report_parse(NULL, 0, &r, &why) == -EINVAL, "NULL");
}

static void test_hostile(void)
{
    struct ingress_report r;
    const char *why = NULL;
    /* control bytes in a value never reach the fields; an overlong value is cut, not overflowed */
    char big[12000];
    int n = snprintf(big, sizeof(big),
                     "Content-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n\r\n--b\r\n"
                     "Content-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: a\x01"
                     "b\x7f\r\nOriginal-Rcpt-To: ");
    while ((size_t)n < sizeof(big) - 200)
        big[n++] = 'x';
    n += snprintf(big + n, sizeof(big) - (size_t)n, "@y.test\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n"
                                                    "X-Ringmail-Id: 0123; tenant=x\r\n\r\n--b--\r\n");
    CHECK(parse(big, &r, &why) == 0, "parsed: %s", why ? why : "");
    CHECK(strcmp(r.user_agent, "a b") == 0, "control bytes made spaces: %s", r.user_agent);
    CHECK(strlen(r.orig_rcpt) == sizeof(r.orig_rcpt) - 1, "cut at its buffer");
    CHECK(r.ring_id[0] == '\0' && r.tenant[0] == '\0', "a short id is no id");
    /* a header block without an end, a boundary line at the very end without CRLF, a part without body */
    static const char *const odd[] = {
        "Content-Type: multipart/report; boundary=b",
        "Content-Type: multipart/report; boundary=b\r\n\r\n--b",
        "Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: message/feedback-report",
        "Content-Type: multipart/report; boundary=\"b\\\r\n\r\n--b",
        "Content-Type: multipart/report; boundary==;;=\"\r\n",
        ":\r\n:\r\n \r\n\t\r\n",
    };
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
        CHECK(parse(odd[i], &r, &why) == -EINVAL, "odd %zu refused", i);
}

int main(void)
{
    test_arf();
    test_dsn();
    test_refusals();
    test_hostile();
    CHECK_EXIT();
}
