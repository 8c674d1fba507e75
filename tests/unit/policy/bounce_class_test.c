/*
 * bounce_class_test - built-in classes for real-world-style responses, rules files, limits
 *
 * The responses in the table are written for this test in the style of large receivers (Gmail,
 * Microsoft, Yahoo, Postfix/Exim sites); each row names the class a sender would want.
 * Rules files live in $RINGMAIL_TEST_DATA/bounce (tests/unit/policy/data/bounce): an override of a
 * built-in, a bad regex and bad shapes (errors must name file:line and the pattern, and a failed
 * file adds nothing), and catastrophic patterns run on long input, which must give up within the
 * match limit instead of taking seconds.
 */
#include "policy/bounce_class.h"
#include "tests/lib/check.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *data_dir;

struct row {
    int code;
    const char *enhanced;
    const char *text;
    const char *want;
};

static const struct row builtin_rows[] = {
    /* Gmail-style */
    {550, "5.1.1",
     "The email account that you tried to reach does not exist. Please try double-checking the "
     "recipient's email address for typos or unnecessary spaces. For more information, go to "
     "https://support.example/mail/?p=NoSuchUser x12si345.67 - gsmtp",
     "InvalidRecipient"},
    {550, "5.2.1",
     "The email account that you tried to reach is disabled. Learn more at "
     "https://support.example/mail/?p=DisabledUser a1si2 - gsmtp",
     "InactiveMailbox"},
    {452, "4.2.2",
     "The recipient's inbox is out of storage space. Please direct the recipient to "
     "https://support.example/mail/?p=OverQuotaTemp b2si3 - gsmtp",
     "QuotaIssues"},
    {550, "5.7.1",
     "[192.0.2.10] Our system has detected that this message is likely unsolicited mail. To "
     "reduce the amount of spam sent to this service, this message has been blocked.",
     "SpamContent"},
    {421, "4.7.0",
     "[192.0.2.10] Our system has detected an unusual rate of unsolicited mail originating from "
     "your IP address. To protect our users from spam, mail sent from your IP address has been "
     "temporarily rate limited.",
     "SpamBlock"},
    {550, "5.7.26",
     "Unauthenticated email from example.com is not accepted due to domain's DMARC policy. "
     "Please contact the administrator of example.com domain.",
     "PolicyRelated"},
    {421, "4.7.0", "Try again later, closing connection. (EHLO) c3si4 - gsmtp", "TransientFailure"},
    {552, "5.3.4", "Your message exceeded the size limit for this service. d4si5 - gsmtp", "ContentRelated"},
    {535, "5.7.8", "Username and Password not accepted. e5si6 - gsmtp", "AuthenticationFailed"},
    {550, "5.7.1",
     "This message was blocked because its content presents a potential security issue: "
     "virus detected in attachment.",
     "VirusRelated"},
    {552, "5.7.0",
     "This message was blocked because its content presents a potential security issue. "
     "Executable attachments are not allowed.",
     "ProhibitedAttachment"},
    /* Microsoft-style */
    {550, "5.1.10",
     "RESOLVER.ADR.RecipientNotFound; Recipient nobody@example.com not found by SMTP address "
     "lookup",
     "InvalidRecipient"},
    {550, "5.4.1", "Recipient address rejected: Access denied. [AM0EUR01FT001.eop-eur01.example.com]",
     "InvalidRecipient"},
    {550, "5.7.1",
     "Service unavailable, Client host [192.0.2.10] blocked using Spamhaus. To request removal "
     "from this list see https://www.spamhaus.example/query/ip/192.0.2.10",
     "SpamBlock"},
    {550, "5.7.606",
     "Access denied, banned sending IP [192.0.2.10]. To request removal from this list please "
     "visit https://sender.example/ and follow the directions.",
     "SpamBlock"},
    {451, "4.7.650", "The mail server [192.0.2.10] has been temporarily rate limited due to IP reputation.",
     "SpamBlock"},
    {451, "4.7.500", "Server busy. Please try again later from [192.0.2.10]. (S77714)", "TransientFailure"},
    {550, "5.7.350", "Remote server returned message detected as spam -> 554 rejected", "SpamContent"},
    {554, "5.2.2", "mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException", "QuotaIssues"},
    /* Yahoo-style */
    {554, NULL,
     "delivery error: dd This user doesn't have a example.com account (nobody@example.com) [0] - "
     "mta1001.mail.example.com",
     "InvalidRecipient"},
    {554, NULL,
     "30 Sorry, your message to someone@example.com cannot be delivered. This mailbox is disabled "
     "(554.30)",
     "InactiveMailbox"},
    {421, "4.7.0",
     "[TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user "
     "complaints - 4.16.55.1; see https://postmaster.example/error-codes",
     "SpamBlock"},
    {553, "5.7.1",
     "[BL21] Connections will not be accepted from 192.0.2.10, because the ip is in Spamhaus's "
     "list; see https://postmaster.example/error-codes",
     "SpamBlock"},
    /* Postfix / Exim sites */
    {550, "5.1.1", "<nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
     "InvalidRecipient"},
    {450, "4.1.8", "<bounce@example.net>: Sender address rejected: Domain not found", "InvalidSender"},
    {450, "4.1.2", "<someone@nxdomain.example>: Recipient address rejected: Domain not found", "BadDomain"},
    {554, "5.7.1", "<someone@example.org>: Relay access denied", "RelayDenied"},
    {450, "4.2.0",
     "<someone@example.org>: Recipient address rejected: Greylisted, see "
     "http://postgrey.example/",
     "TransientFailure"},
    {550, NULL, "No such user here", "InvalidRecipient"},
    {530, "5.7.0", "Must issue a STARTTLS command first", "PolicyRelated"},
    {552, "5.2.2", "Mailbox quota exceeded", "QuotaIssues"},
    {452, "4.5.3", "Error: too many recipients", "TooManyRecipients"},
    {554, "5.4.6", "Too many hops", "RoutingErrors"},
    {500, "5.5.2", "Error: bad syntax", "ProtocolErrors"},
    {550, "5.7.1", "Message rejected due to local policy", "PolicyRelated"},
    {0, "4.4.1", "connection timed out", "NoAnswerFromHost"},
    {0, "5.4.7", "message expired after 5 days in the queue", "MessageExpired"},
    {550, "5.0.0", "The quick brown fox said something nobody understood", "Uncategorized"},
    {0, NULL, NULL, "Uncategorized"},
};

static void test_builtin_table(void)
{
    struct bounce_class *bc = bounce_class_new();
    size_t n = sizeof(builtin_rows) / sizeof(builtin_rows[0]);
    for (size_t i = 0; i < n; i++) {
        const struct row *r = &builtin_rows[i];
        const char *got = bounce_class_classify(bc, r->code, r->enhanced, r->text);
        if (!got || strcmp(got, r->want) != 0)
            FAIL("row %zu (%d %s %.60s): got %s, want %s", i, r->code, r->enhanced ? r->enhanced : "-",
                 r->text ? r->text : "(null)", got ? got : "(null)", r->want);
    }
    /* matching is caseless */
    const char *got = bounce_class_classify(bc, 550, "5.0.0", "NO SUCH USER HERE");
    if (strcmp(got, "InvalidRecipient") != 0)
        FAIL("upper case: got %s", got);
    if (bounce_class_limit_hits(bc) != 0)
        FAIL("built-in rules hit the match limit %llu times on ordinary responses",
             (unsigned long long)bounce_class_limit_hits(bc));
    bounce_class_free(bc);
    bounce_class_free(NULL);
}

/*
 * The suppression list (spool/spool_supp.c) adds a recipient on a Bounce of a hard class (by default
 * InvalidRecipient, BadDomain, InactiveMailbox). Reputation, policy and rate answers must never read as one,
 * or one provider's block would empty a list. Texts as the providers send them (their documented wording;
 * addresses replaced by loopback ones).
 */
static const char *const hard_classes[] = {"InvalidRecipient", "BadDomain", "InactiveMailbox"};

static const struct row block_rows[] = {
    {550, "5.7.1",
     "Unfortunately, messages from [127.0.0.1] weren't sent. Please contact your Internet service provider since "
     "part of their network is on our block list (S3150). You can also refer your provider to "
     "http://mail.live.com/mail/troubleshooting.aspx#errors. [DM6NAM12FT045.eop-nam12.prod.protection.outlook.com]",
     "SpamBlock"},
    {550, "5.7.1",
     "Unfortunately, messages from [127.0.0.1] weren't sent. Please contact your Internet service provider since "
     "part of their network is on our block list (S3140).",
     "SpamBlock"},
    {421, "4.7.28",
     "[127.0.0.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address. "
     "To protect our users from spam, mail sent from your IP address has been temporarily rate limited. Please "
     "visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email Senders "
     "Guidelines. a1si2 - gsmtp",
     "SpamBlock"},
    {421, "4.7.28", "Gmail has detected an unusual rate of unsolicited mail originating from your DKIM domain.",
     "SpamBlock"},
    {550, "5.7.1",
     "[127.0.0.1] Our system has detected that this message is likely unsolicited mail. To reduce the amount of "
     "spam sent to Gmail, this message has been blocked.",
     "SpamContent"},
    {550, "5.7.1",
     "[127.0.0.1] Messages missing a valid address in From: header, or having no From: header, are not accepted.",
     "PolicyRelated"},
    {421, "4.7.0",
     "[TSS04] Messages from 127.0.0.1 temporarily deferred due to unexpected volume or user complaints - "
     "4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
     "SpamBlock"},
    {421, "4.7.0", "[TS04] Messages from 127.0.0.1 temporarily deferred due to unexpected volume or user complaints",
     "SpamBlock"},
    {553, "5.7.1",
     "[TS03] All messages from 127.0.0.1 will be permanently deferred; Retrying will NOT succeed. See "
     "https://postmaster.yahooinc.com/error-codes",
     "SpamBlock"},
    {421, "4.7.0",
     "[IPTS04] Messages from 127.0.0.1 temporarily deferred due to unexpected volume or user complaints",
     "SpamBlock"},
    {554, "5.7.9", "Message not accepted for policy reasons. See https://postmaster.yahooinc.com/error-codes",
     "PolicyRelated"},
    {554, "5.7.1",
     "Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org; "
     "https://www.spamhaus.org/query/ip/127.0.0.1",
     "SpamBlock"},
    {550, "5.7.1", "Mail from 127.0.0.1 refused, listed at bl.spamcop.net", "SpamBlock"},
    {550, "5.7.1", "Sending rate limit exceeded for this account; try again later", "PolicyRelated"},
    {450, "4.2.1",
     "The user you are trying to contact is receiving mail too quickly. Please resend your message at a later "
     "time.",
     "TransientFailure"},
    {421, "4.7.0", "Too many connections from your host, slow down", "TransientFailure"},
};

/* the address itself is bad: these do suppress */
static const struct row hard_rows[] = {
    {550, "5.1.1",
     "The email account that you tried to reach does not exist. Please try double-checking the recipient's email "
     "address for typos or unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser a1si2 - gsmtp",
     "InvalidRecipient"},
    {550, "5.1.1", "<nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
     "InvalidRecipient"},
    {550, "5.5.0", "Requested action not taken: mailbox unavailable, user does not exist", "InvalidRecipient"},
    {554, "5.1.1", "Sorry, no mailbox here by that name.", "InvalidRecipient"},
    {550, "5.1.10",
     "RESOLVER.ADR.RecipientNotFound; Recipient nobody@outlook.com not found by SMTP address lookup",
     "InvalidRecipient"},
};

static bool is_hard(const char *cls)
{
    for (size_t i = 0; i < sizeof(hard_classes) / sizeof(hard_classes[0]); i++)
        if (strcmp(cls, hard_classes[i]) == 0)
            return true;
    return false;
}

static void test_blocks_are_not_hard(void)
{
    struct bounce_class *bc = bounce_class_new();
    for (size_t i = 0; i < sizeof(block_rows) / sizeof(block_rows[0]); i++) {
        const struct row *r = &block_rows[i];
        const char *got = bounce_class_classify(bc, r->code, r->enhanced, r->text);
        CHECK(!is_hard(got), "block row %zu (%.40s) is a hard class: %s", i, r->text, got);
        CHECK(strcmp(got, r->want) == 0, "block row %zu (%.40s): %s, want %s", i, r->text, got, r->want);
    }
    for (size_t i = 0; i < sizeof(hard_rows) / sizeof(hard_rows[0]); i++) {
        const struct row *r = &hard_rows[i];
        const char *got = bounce_class_classify(bc, r->code, r->enhanced, r->text);
        CHECK(strcmp(got, r->want) == 0, "hard row %zu (%.40s): %s, want %s", i, r->text, got, r->want);
    }
    bounce_class_free(bc);
}

static char *path_of(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "%s/bounce/%s", data_dir, name);
    return buf;
}

static void test_override(void)
{
    struct bounce_class *bc = bounce_class_new();
    size_t before = bounce_class_rule_count(bc);
    const char *t = "Requested action not taken: mailbox unavailable";
    const char *got = bounce_class_classify(bc, 550, "5.2.1", t);
    if (strcmp(got, "InactiveMailbox") != 0)
        FAIL("before override: got %s, want InactiveMailbox", got);
    got = bounce_class_classify(bc, 451, "4.7.650",
                                "The mail server has been temporarily rate limited due to IP reputation.");
    if (strcmp(got, "SpamBlock") != 0)
        FAIL("before override: 4.7.650 got %s, want SpamBlock", got);

    char *err = NULL;
    int rc = bounce_class_load_file(bc, path_of("override.toml"), &err);
    if (rc != 0)
        FAIL("override.toml: rc %d: %s", rc, err ? err : "(no message)");
    free(err);
    if (bounce_class_rule_count(bc) != before + 3)
        FAIL("override.toml: rule count %zu, want %zu", bounce_class_rule_count(bc), before + 3);

    got = bounce_class_classify(bc, 550, "5.2.1", t);
    if (strcmp(got, "InvalidRecipient") != 0)
        FAIL("after override: got %s, want InvalidRecipient", got);
    got = bounce_class_classify(bc, 451, "4.7.650",
                                "The mail server has been temporarily rate limited due to IP reputation.");
    if (strcmp(got, "ExampleThrottle") != 0)
        FAIL("user-defined class: got %s, want ExampleThrottle", got);
    got = bounce_class_classify(bc, 421, NULL, "slow down: example-throttle engaged");
    if (strcmp(got, "ExampleThrottle") != 0)
        FAIL("user-defined class (single-quoted pattern): got %s, want ExampleThrottle", got);
    /* rules the file does not touch still answer */
    got = bounce_class_classify(bc, 550, "5.2.1", "The email account that you tried to reach is disabled.");
    if (strcmp(got, "InactiveMailbox") != 0)
        FAIL("after override, untouched: got %s, want InactiveMailbox", got);
    got = bounce_class_classify(bc, 550, "5.1.1", "user unknown");
    if (strcmp(got, "InvalidRecipient") != 0)
        FAIL("after override, built-in: got %s", got);
    bounce_class_free(bc);
}

static void expect_error(const char *file, int want_rc, const char *const *needles)
{
    struct bounce_class *bc = bounce_class_new();
    size_t before = bounce_class_rule_count(bc);
    char *err = NULL;
    int rc = bounce_class_load_file(bc, path_of(file), &err);
    if (rc != want_rc)
        FAIL("%s: rc %d, want %d", file, rc, want_rc);
    if (!err) {
        FAIL("%s: no error message", file);
    } else {
        for (size_t i = 0; needles[i]; i++)
            if (!strstr(err, needles[i]))
                FAIL("%s: error does not contain \"%s\":\n%s", file, needles[i], err);
    }
    free(err);
    if (bounce_class_rule_count(bc) != before)
        FAIL("%s: a failed file added rules (%zu -> %zu)", file, before, bounce_class_rule_count(bc));
    /* the failed file's valid "mailbox full" rule must not be active either */
    if (strcmp(bounce_class_classify(bc, 550, NULL, "blocked by (spamhaus"), "SpamBlock") != 0)
        FAIL("%s: built-ins changed after a failed load", file);
    bounce_class_free(bc);
}

static void test_errors(void)
{
    char where[4200];
    snprintf(where, sizeof(where), "%s:3: rules.SpamBlock: pattern \"blocked by (spamhaus\"",
             path_of("bad_regex.toml"));
    const char *bad_regex[] = {where, "missing closing parenthesis",
                               "bad_regex.toml:7: rules.QuotaIssues[1] must be a string", NULL};
    expect_error("bad_regex.toml", -EINVAL, bad_regex);

    const char *bad_shape[] = {"bad_shape.toml:1: unknown key \"title\"",
                               "bad_shape.toml:4: class name \"Bad Class\"",
                               "bad_shape.toml:5: rules.InvalidRecipient must be an array", NULL};
    expect_error("bad_shape.toml", -EINVAL, bad_shape);

    const char *syntax[] = {"syntax_error.toml:2:", NULL};
    expect_error("syntax_error.toml", -EINVAL, syntax);

    const char *missing[] = {"no_such_file.toml", NULL};
    expect_error("no_such_file.toml", -ENOENT, missing);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_catastrophic(void)
{
    struct bounce_class *bc = bounce_class_new();
    char *err = NULL;
    int rc = bounce_class_load_file(bc, path_of("catastrophic.toml"), &err);
    if (rc != 0) {
        FAIL("catastrophic.toml: rc %d: %s", rc, err ? err : "");
        free(err);
        bounce_class_free(bc);
        return;
    }
    /* 3000 'a' then '!': (a+)+$ explores 2^3000 splits without a limit */
    size_t n = 3000;
    char *text = malloc(n + 2);
    memset(text, 'a', n);
    text[n] = '!';
    text[n + 1] = '\0';
    char *xs = malloc(n + 2);
    memset(xs, 'x', n);
    xs[n] = '\0';

    double t0 = now_s();
    const char *got = bounce_class_classify(bc, 550, NULL, text);
    const char *got2 = bounce_class_classify(bc, 550, "5.0.0", xs);
    double dt = now_s() - t0;
    if (strcmp(got, "Uncategorized") != 0)
        FAIL("catastrophic: got %s, want Uncategorized", got);
    if (strcmp(got2, "Uncategorized") != 0)
        FAIL("catastrophic 2: got %s, want Uncategorized", got2);
    if (bounce_class_limit_hits(bc) < 2)
        FAIL("catastrophic: limit hits %llu, want >= 2 (the patterns must have been cut off, not finished)",
             (unsigned long long)bounce_class_limit_hits(bc));
    /* the limit is 200k steps per rule; even under ASan that is far below a second */
    if (dt > 1.5)
        FAIL("catastrophic: took %.3f s", dt);
    printf("catastrophic input: %.1f ms, %llu limit hits\n", dt * 1000,
           (unsigned long long)bounce_class_limit_hits(bc));

    /* a response far beyond BOUNCE_CLASS_MAX_SUBJECT is cut, still classified from its start */
    size_t big = 1u << 20;
    char *huge = malloc(big + 1);
    memset(huge, 'z', big);
    memcpy(huge, "no such user ", 13);
    huge[big] = '\0';
    t0 = now_s();
    got = bounce_class_classify(bc, 550, "5.0.0", huge);
    dt = now_s() - t0;
    if (strcmp(got, "InvalidRecipient") != 0)
        FAIL("huge response: got %s", got);
    if (dt > 1.5)
        FAIL("huge response: took %.3f s", dt);
    free(huge);
    free(text);
    free(xs);
    bounce_class_free(bc);
}

int main(void)
{
    data_dir = getenv("RINGMAIL_TEST_DATA");
    if (!data_dir) {
        printf("RINGMAIL_TEST_DATA not set\n");
        return 1;
    }
    test_builtin_table();
    test_blocks_are_not_hard();
    test_override();
    test_errors();
    test_catastrophic();
    CHECK_EXIT();
}
