/*
 * spool_dsn_test - delivery status notifications: structure, refusals, hostile text, long lines
 *
 * C checks walk the raw bytes (CRLF only, line lengths, header lines, boundary count); then the
 * same messages are handed to Python's email parser (/usr/bin/python3, a small script written to
 * a temporary directory), whose summary of what it parsed is compared with what the test put in.
 * Without python3 that second half is skipped, not the test. The child is killed by pid if it
 * takes longer than 30 s. Everything lives under one /tmp directory removed at the end.
 */
#include "spool/spool_dsn.h"
#include "tests/lib/check.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define T0 1700000000ull /* Tue, 14 Nov 2023 22:13:20 UTC */
#define NS 1000000000ull

static char tmpdir[64];
static bool have_python;

static const char original[] = "Return-Path: <alice@example.com>\r\n"
                               "Received: from client.example.com (client.example.com [192.0.2.7])\r\n"
                               "\tby mx.example.net with ESMTP; Tue, 14 Nov 2023 22:13:19 +0000\r\n"
                               "From: Alice <alice@example.com>\r\n"
                               "To: Bob <bob@example.org>, carol@example.org\r\n"
                               "Subject: quarterly numbers\r\n"
                               "Message-ID: <orig-1@example.com>\r\n"
                               "\r\n"
                               "BODY-SECRET: the body must never be copied into a DSN.\r\n";

/* ---- helpers ---- */

/* lines_ok - every line ends in CRLF, no bare CR or LF, no NUL, none longer than 998 octets */
static bool lines_ok(const char *m, size_t len, char *why, size_t why_size)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (m[i] == '\0') {
            snprintf(why, why_size, "NUL at %zu", i);
            return false;
        }
        if (m[i] == '\r' && (i + 1 >= len || m[i + 1] != '\n')) {
            snprintf(why, why_size, "bare CR at %zu", i);
            return false;
        }
        if (m[i] == '\n') {
            if (i == 0 || m[i - 1] != '\r') {
                snprintf(why, why_size, "bare LF at %zu", i);
                return false;
            }
            size_t l = i - 1 - start;
            if (l > 998) {
                snprintf(why, why_size, "line of %zu octets at %zu", l, start);
                return false;
            }
            start = i + 1;
        }
    }
    if (start != len) {
        snprintf(why, why_size, "last line not CRLF-terminated");
        return false;
    }
    return true;
}

/* has_line - a line that starts with prefix (at the start of the message or after CRLF) */
static bool has_line(const char *m, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(m, prefix, n) == 0)
        return true;
    for (const char *p = strstr(m, "\r\n"); p; p = strstr(p + 2, "\r\n"))
        if (strncmp(p + 2, prefix, n) == 0)
            return true;
    return false;
}

static size_t count(const char *m, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(m, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* boundary_of - the boundary parameter of the top Content-Type (static buffer) */
static const char *boundary_of(const char *m)
{
    static char b[128];
    const char *p = strstr(m, "boundary=\"");
    b[0] = '\0';
    if (!p)
        return b;
    p += 10;
    size_t n = strcspn(p, "\"");
    if (n >= sizeof(b))
        n = sizeof(b) - 1;
    memcpy(b, p, n);
    b[n] = '\0';
    return b;
}

/* unfolded - the value of the first field `name` in the message, folds removed (heap) */
static char *unfolded(const char *m, const char *name)
{
    char key[64];
    snprintf(key, sizeof(key), "\r\n%s: ", name);
    const char *p = strstr(m, key);
    if (!p)
        return NULL;
    p += strlen(key);
    size_t cap = strlen(p) + 1;
    char *out = malloc(cap);
    size_t o = 0;
    for (;;) {
        const char *e = strstr(p, "\r\n");
        memcpy(out + o, p, (size_t)(e - p));
        o += (size_t)(e - p);
        if (e[2] != ' ' && e[2] != '\t')
            break;
        p = e + 2; /* the folding white space stays, as RFC 5322 unfolding says */
    }
    out[o] = '\0';
    return out;
}

static const char py_script[] =
    "import sys, email\n"
    "m = email.message_from_bytes(open(sys.argv[1], 'rb').read())\n"
    "def n(v):\n"
    "    return ' '.join(str(v).split()) if v is not None else '-'\n"
    "print('multipart', m.is_multipart())\n"
    "print('type', m.get_content_type(), m.get_param('report-type'))\n"
    "print('from', n(m['From']))\n"
    "print('to', n(m['To']))\n"
    "print('auto', n(m['Auto-Submitted']))\n"
    "print('defects', len(m.defects))\n"
    "parts = m.get_payload()\n"
    "print('parts', len(parts))\n"
    "for i, p in enumerate(parts):\n"
    "    print('part', i, p.get_content_type(), len(p.defects))\n"
    "ds = parts[1].get_payload()\n"
    "print('blocks', len(ds))\n"
    "print('reporting', n(ds[0]['Reporting-MTA']))\n"
    "print('arrival', n(ds[0]['Arrival-Date']))\n"
    "for b in ds[1:]:\n"
    "    print('rcpt', n(b['Final-Recipient']), '|', n(b['Action']), '|', n(b['Status']), '|',\n"
    "          n(b['Remote-MTA']), '|', n(b['Diagnostic-Code']))\n"
    "h = email.message_from_string(parts[2].get_payload())\n"
    "print('orig-subject', n(h['Subject']))\n"
    "print('orig-headers', len(h.keys()))\n";

/* run_python - the script's stdout for the message (heap), or NULL when it failed */
static char *run_python(const char *msg, size_t len)
{
    char mpath[128], spath[128];
    snprintf(mpath, sizeof(mpath), "%s/dsn.eml", tmpdir);
    snprintf(spath, sizeof(spath), "%s/check.py", tmpdir);
    FILE *f = fopen(mpath, "wb");
    if (!f || fwrite(msg, 1, len, f) != len || fclose(f) != 0)
        return NULL;
    f = fopen(spath, "w");
    if (!f || fputs(py_script, f) < 0 || fclose(f) != 0)
        return NULL;

    int pfd[2];
    if (pipe(pfd) != 0)
        return NULL;
    pid_t pid = fork();
    if (pid < 0)
        return NULL;
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execl("/usr/bin/python3", "python3", spath, mpath, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    size_t cap = 65536, n = 0;
    char *out = malloc(cap);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool timed_out = false;
    for (;;) {
        struct pollfd pf = {pfd[0], POLLIN, 0};
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left_ms = 30000 - (long)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left_ms <= 0) {
            timed_out = true;
            break;
        }
        int pr = poll(&pf, 1, (int)left_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            timed_out = pr == 0;
            break;
        }
        if (n + 4096 > cap)
            out = realloc(out, cap *= 2);
        ssize_t r = read(pfd[0], out + n, cap - n - 1);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(pfd[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    out[n] = '\0';
    if (timed_out || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "python3 %s (status %d), output:\n%s\n", timed_out ? "timed out" : "failed", st, out);
        free(out);
        return NULL;
    }
    return out;
}

static void python_expect(const char *what, const char *msg, size_t len, const char *const *want)
{
    if (!have_python)
        return;
    char *got = run_python(msg, len);
    CHECK(got != NULL, "%s: python3 could not parse the DSN", what);
    if (!got)
        return;
    for (size_t i = 0; want[i]; i++)
        CHECK(strstr(got, want[i]) != NULL, "%s: python summary lacks \"%s\":\n%s", what, want[i], got);
    free(got);
}

static char *build(const struct spool_dsn_input *in, size_t *len, int want_rc)
{
    char *out = NULL;
    size_t n = 0;
    int rc = spool_dsn_build(in, &out, &n);
    CHECK(rc == want_rc, "rc %d, want %d", rc, want_rc);
    if (rc != 0)
        return NULL;
    CHECK(out != NULL && strlen(out) == n, "length %zu vs strlen %zu", n, out ? strlen(out) : 0);
    char why[128];
    CHECK(lines_ok(out, n, why, sizeof(why)), "line structure: %s", why);
    if (len)
        *len = n;
    return out;
}

static struct spool_dsn_input base_input(const struct spool_dsn_rcpt *r, size_t n)
{
    struct spool_dsn_input in = {
        .reporting_mta = "mx.example.net",
        .postmaster = "MAILER-DAEMON@mx.example.net",
        .sender = "<alice@example.com>",
        .envelope_id = "QQ314159",
        .message_id = "<orig-1@example.com>",
        .queue_id = "0123456789abcdef0123456789abcdef",
        .arrival_ns = T0 * NS,
        .now_ns = (T0 + 3600) * NS,
        .message = original,
        .message_len = sizeof(original) - 1,
        .rcpts = r,
        .n_rcpts = n,
    };
    return in;
}

/* ---- cases ---- */

static void test_structure(void)
{
    struct spool_dsn_rcpt r[2] = {
        {.final_recipient = "bob@example.org",
         .original_recipient = "Bob@Example.org",
         .action = SPOOL_DSN_FAILED,
         .status = "5.1.1",
         .remote_mta = "mx1.example.org",
         .diagnostic = "550 5.1.1 The email account that you tried to reach does not exist.",
         .last_attempt_ns = (T0 + 60) * NS},
        {.final_recipient = "<carol@example.org>",
         .action = SPOOL_DSN_DELAYED,
         .status = "4.2.2",
         .remote_mta = "mx2.example.org",
         .diagnostic = "452 4.2.2 mailbox full",
         .last_attempt_ns = (T0 + 120) * NS,
         .will_retry_until_ns = (T0 + 5 * 86400) * NS},
    };
    struct spool_dsn_input in = base_input(r, 2);
    size_t len = 0;
    char *m = build(&in, &len, 0);
    if (!m)
        return;
    CHECK(strncmp(m, "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n", 58) == 0,
          "first line:\n%.80s", m);
    CHECK(has_line(m, "To: <alice@example.com>\r\n"), "To");
    CHECK(has_line(m, "Subject: Undelivered Mail Returned to Sender\r\n"), "Subject");
    CHECK(has_line(m, "Date: Tue, 14 Nov 2023 23:13:20 +0000\r\n"), "Date");
    CHECK(has_line(m, "Message-ID: <"), "Message-ID");
    CHECK(has_line(m, "In-Reply-To: <orig-1@example.com>\r\n"), "In-Reply-To");
    CHECK(has_line(m, "Auto-Submitted: auto-replied\r\n"), "Auto-Submitted");
    CHECK(has_line(m, "MIME-Version: 1.0\r\n"), "MIME-Version");
    CHECK(has_line(m, "Reporting-MTA: dns; mx.example.net\r\n"), "Reporting-MTA");
    CHECK(has_line(m, "Original-Envelope-Id: QQ314159\r\n"), "ENVID");
    CHECK(has_line(m, "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"), "Arrival-Date");
    CHECK(has_line(m, "Original-Recipient: rfc822; Bob@Example.org\r\n"), "ORCPT");
    CHECK(has_line(m, "Final-Recipient: rfc822; bob@example.org\r\n"), "Final-Recipient 1");
    CHECK(has_line(m, "Final-Recipient: rfc822; carol@example.org\r\n"),
          "Final-Recipient 2 (brackets removed)");
    CHECK(has_line(m, "Action: failed\r\n") && has_line(m, "Action: delayed\r\n"), "Actions");
    CHECK(has_line(m, "Status: 5.1.1\r\n") && has_line(m, "Status: 4.2.2\r\n"), "Status");
    CHECK(has_line(m, "Remote-MTA: dns; mx1.example.org\r\n"), "Remote-MTA");
    CHECK(has_line(m, "Last-Attempt-Date: Tue, 14 Nov 2023 22:14:20 +0000\r\n"), "Last-Attempt-Date");
    CHECK(has_line(m, "Will-Retry-Until: Sun, 19 Nov 2023 22:13:20 +0000\r\n"), "Will-Retry-Until");
    char *diag = unfolded(m, "Diagnostic-Code");
    CHECK(diag &&
              strcmp(diag, "smtp; 550 5.1.1 The email account that you tried to reach does not exist.") == 0,
          "Diagnostic-Code: %s", diag ? diag : "(none)");
    free(diag);
    /* the header section is copied, the body is not */
    CHECK(has_line(m, "Subject: quarterly numbers\r\n"), "original headers");
    CHECK(has_line(m, "\tby mx.example.net with ESMTP"), "original folded header line");
    CHECK(!strstr(m, "BODY-SECRET"), "original body copied into the DSN");

    const char *b = boundary_of(m);
    CHECK(strlen(b) >= 20, "boundary \"%s\"", b);
    char delim[160], close_[160];
    snprintf(delim, sizeof(delim), "\r\n--%s\r\n", b);
    snprintf(close_, sizeof(close_), "\r\n--%s--\r\n", b);
    CHECK(count(m, delim) == 3, "%zu part delimiters", count(m, delim));
    CHECK(count(m, close_) == 1 && strstr(m, close_) + strlen(close_) == m + len, "close delimiter last");
    CHECK(count(m, b) == 5, "boundary occurs %zu times (Content-Type, 3 delimiters, close)", count(m, b));

    /* a second DSN gets another boundary and Message-ID */
    char *m2 = build(&in, NULL, 0);
    if (m2) {
        char b1[128];
        snprintf(b1, sizeof(b1), "%s", b);
        CHECK(strcmp(b1, boundary_of(m2)) != 0, "boundary repeated");
        char *id1 = unfolded(m, "Message-ID"), *id2 = unfolded(m2, "Message-ID");
        CHECK(id1 && id2 && strcmp(id1, id2) != 0, "Message-ID repeated: %s", id1 ? id1 : "");
        free(id1);
        free(id2);
        free(m2);
    }

    const char *want[] = {
        "multipart True\n",
        "type multipart/report delivery-status\n",
        "from Mail Delivery System <MAILER-DAEMON@mx.example.net>\n",
        "to <alice@example.com>\n",
        "auto auto-replied\n",
        "defects 0\n",
        "parts 3\n",
        "part 0 text/plain 0\n",
        "part 1 message/delivery-status 0\n",
        "part 2 text/rfc822-headers 0\n",
        "blocks 3\n",
        "reporting dns; mx.example.net\n",
        "arrival Tue, 14 Nov 2023 22:13:20 +0000\n",
        "rcpt rfc822; bob@example.org | failed | 5.1.1 | dns; mx1.example.org | smtp; 550 5.1.1 The email "
        "account "
        "that you tried to reach does not exist.\n",
        "rcpt rfc822; carol@example.org | delayed | 4.2.2 | dns; mx2.example.org | smtp; 452 4.2.2 mailbox "
        "full\n",
        "orig-subject quarterly numbers\n",
        "orig-headers 6\n",
        NULL,
    };
    python_expect("structure", m, len, want);
    free(m);
}

static void test_hostile(void)
{
    struct spool_dsn_rcpt r = {
        .final_recipient = "<bob@example.org>\r\nBcc: victim1@example.net",
        .action = SPOOL_DSN_FAILED,
        .status = "5.1.1\r\nX-Status-Injected: yes",
        .remote_mta = "mx.example.org\r\nX-Injected: 1",
        .diagnostic =
            "550 5.1.1 oops\r\nBcc: victim2@example.net\r\n\r\n--fake\r\nContent-Type: text/html\r\n"
            "\n<b>hi</b>\0never seen",
    };
    struct spool_dsn_input in = base_input(&r, 1);
    in.sender = "<alice@example.com>\nBcc: victim3@example.net";
    in.envelope_id = "ENV\r\nX-Env-Injected: 1";
    in.reporting_mta = "mx.example.net\rX-Mta-Injected: 1";
    in.message_id = "<orig-1@example.com>\r\nX-Mid-Injected: 1";
    size_t len = 0;
    char *m = build(&in, &len, 0);
    if (!m)
        return;
    const char *bad_starts[] = {"Bcc:",
                                "X-Injected:",
                                "X-Status-Injected:",
                                "X-Env-Injected:",
                                "X-Mta-Injected:",
                                "X-Mid-Injected:",
                                "--fake",
                                "Content-Type: text/html",
                                "<b>hi",
                                NULL};
    for (size_t i = 0; bad_starts[i]; i++)
        CHECK(!has_line(m, bad_starts[i]), "injected line \"%s\" in:\n%s", bad_starts[i], m);
    CHECK(!strstr(m, "never seen"), "text after a NUL was read");
    CHECK(has_line(m, "Status: 5.0.0\r\n"), "a malformed status must become 5.0.0");
    CHECK(!has_line(m, "In-Reply-To:"), "a malformed Message-ID must be left out");
    char *diag = unfolded(m, "Diagnostic-Code");
    CHECK(diag && strstr(diag, "Bcc: victim2@example.net") && strstr(diag, "Content-Type: text/html"),
          "diagnostic kept as one field: %s", diag ? diag : "(none)");
    free(diag);
    const char *want[] = {
        "parts 3\n",
        "defects 0\n",
        "blocks 2\n",
        "rcpt rfc822; <bob@example.org> Bcc: victim1@example.net | failed | 5.0.0 | dns; "
        "mx.example.org X-Injected: 1 | smtp; 550 5.1.1 oops Bcc: victim2@example.net --fake "
        "Content-Type: text/html <b>hi</b>\n",
        "to <<alice@example.com> Bcc: victim3@example.net>\n",
        NULL};
    python_expect("hostile", m, len, want);
    free(m);
}

static void test_refusals(void)
{
    struct spool_dsn_rcpt r = {
        .final_recipient = "bob@example.org", .action = SPOOL_DSN_FAILED, .status = "5.1.1"};
    const char *null_senders[] = {NULL, "", "<>", "  <>  ", "\t"};
    for (size_t i = 0; i < sizeof(null_senders) / sizeof(null_senders[0]); i++) {
        struct spool_dsn_input in = base_input(&r, 1);
        in.sender = null_senders[i];
        char *out = (char *)"untouched";
        int rc = spool_dsn_build(&in, &out, NULL);
        CHECK(rc == -EINVAL, "null sender #%zu: rc %d", i, rc);
        CHECK(out && strcmp(out, "untouched") == 0, "null sender #%zu: output set", i);
    }
    struct spool_dsn_input in = base_input(&r, 1);
    in.n_rcpts = 0;
    build(&in, NULL, -EINVAL);
    in = base_input(&r, 1);
    in.reporting_mta = "";
    build(&in, NULL, -EINVAL);
    in = base_input(&r, 1);
    in.postmaster = NULL;
    build(&in, NULL, -EINVAL);
    struct spool_dsn_rcpt bad = r;
    bad.action = (enum spool_dsn_action)7;
    in = base_input(&bad, 1);
    build(&in, NULL, -EINVAL);
    bad = r;
    bad.final_recipient = "";
    in = base_input(&bad, 1);
    build(&in, NULL, -EINVAL);
    CHECK(spool_dsn_build(NULL, NULL, NULL) == -EINVAL, "NULL input");
}

static void test_long_lines(void)
{
    /* a 3000-octet word, then 10 KiB of words: split, folded, cut at SPOOL_DSN_MAX_DIAGNOSTIC */
    size_t dn = 3000 + 10240;
    char *d = malloc(dn + 1);
    memcpy(d, "550 ", 4);
    for (size_t i = 4; i < 3000; i++)
        d[i] = (char)('a' + i % 26);
    for (size_t i = 3000; i < dn; i++)
        d[i] = i % 7 == 0 ? ' ' : 'w';
    d[dn] = '\0';
    /* an original header line of 5000 octets, and 200 KiB of headers in all */
    size_t on = 300 * 1024;
    char *o = malloc(on + 1);
    size_t p = (size_t)snprintf(o, on, "Subject: long\r\nX-Long: ");
    for (size_t i = 0; i < 5000; i++)
        o[p++] = 'L';
    p += (size_t)snprintf(o + p, on - p, "\r\n");
    for (int i = 0; p < 200 * 1024; i++)
        p += (size_t)snprintf(o + p, on - p, "X-Filler-%d: %s\r\n", i, "0123456789abcdef0123456789abcdef");
    p += (size_t)snprintf(o + p, on - p, "X-After-Limit: must not appear\r\n\r\nbody\r\n");
    o[p] = '\0';

    struct spool_dsn_rcpt r = {.final_recipient = "bob@example.org",
                               .action = SPOOL_DSN_DELAYED,
                               .status = "bogus",
                               .diagnostic = d};
    struct spool_dsn_input in = base_input(&r, 1);
    in.message = o;
    in.message_len = p;
    size_t len = 0;
    char *m = build(&in, &len, 0); /* lines_ok() inside checks every line <= 998 */
    if (m) {
        CHECK(has_line(m, "Subject: Delayed Mail (still being retried)\r\n"), "delay subject");
        CHECK(has_line(m, "Status: 4.0.0\r\n"), "a malformed status must become 4.0.0");
        char *diag = unfolded(m, "Diagnostic-Code");
        CHECK(diag && strncmp(diag, "smtp; 550 efgh", 14) == 0, "diagnostic start: %.40s", diag ? diag : "");
        CHECK(diag && strlen(diag) < SPOOL_DSN_MAX_DIAGNOSTIC + 64 &&
                  strcmp(diag + strlen(diag) - 3, "...") == 0,
              "diagnostic cut and marked: %zu octets, ends %s", diag ? strlen(diag) : 0,
              diag ? diag + strlen(diag) - 10 : "");
        free(diag);
        /* part 3 is bounded and ends with a whole header line */
        const char *b = boundary_of(m);
        char delim[160];
        snprintf(delim, sizeof(delim), "\r\n--%s", b);
        const char *p3 = strstr(m, "Content-Type: text/rfc822-headers\r\n");
        const char *p3body = p3 ? strstr(p3, "\r\n\r\n") : NULL;
        const char *p3end = p3body ? strstr(p3body + 4, delim) : NULL;
        CHECK(p3end != NULL, "part 3 found");
        if (p3end) {
            size_t hl = (size_t)(p3end - (p3body + 4));
            CHECK(hl <= SPOOL_DSN_MAX_HEADERS && hl > SPOOL_DSN_MAX_HEADERS - 200, "part 3 is %zu octets",
                  hl);
            const char *last = p3end - 3; /* before the last line's CRLF */
            while (last > p3body && *last != '\n')
                last--;
            CHECK(strncmp(last + 1, "X-Filler-", 9) == 0 && strncmp(p3end - 34, "0123456789abcdef", 16) == 0,
                  "part 3 ends with a complete line: %.60s", last + 1);
        }
        CHECK(!strstr(m, "X-After-Limit"), "headers past the limit copied");
        CHECK(!strstr(m, "\r\nbody\r\n"), "body copied");
        const char *want[] = {"parts 3\n",           "defects 0\n",         "part 2 text/rfc822-headers 0\n",
                              "orig-subject long\n", "| delayed | 4.0.0 |", NULL};
        python_expect("long lines", m, len, want);
        free(m);
    }
    free(d);
    free(o);
}

static void test_eight_bit_and_bare_lf(void)
{
    /* LF-only original with 8-bit header text and no body: copied as CRLF, part marked 8bit */
    static const char orig[] =
        "From: J\xc3\xbcrgen <j@example.de>\nSubject: Gr\xc3\xbc\xc3\x9f\x65\nX-CR: a\rb\n";
    struct spool_dsn_rcpt r = {.final_recipient = "j\xc3\xbc@example.de",
                               .action = SPOOL_DSN_FAILED,
                               .status = "5.1.1",
                               .diagnostic = "550 5.1.1 unknown \xff user"};
    struct spool_dsn_input in = base_input(&r, 1);
    in.message = orig;
    in.message_len = sizeof(orig) - 1;
    in.queue_id = NULL;
    in.envelope_id = NULL;
    in.message_id = NULL;
    in.arrival_ns = 0;
    size_t len = 0;
    char *m = build(&in, &len, 0);
    if (!m)
        return;
    CHECK(strstr(m, "Subject: Gr\xc3\xbc\xc3\x9f"
                    "e\r\n") != NULL,
          "8-bit header copied as is");
    CHECK(has_line(m, "Content-Transfer-Encoding: 8bit\r\n"), "8bit declared");
    CHECK(has_line(m, "X-CR: a b\r\n"), "bare CR in a header line becomes a space");
    CHECK(has_line(m, "Final-Recipient: rfc822; j??@example.de\r\n"), "non-ASCII address made ASCII");
    CHECK(!has_line(m, "Original-Envelope-Id:") && !has_line(m, "Arrival-Date:") &&
              !has_line(m, "In-Reply-To:"),
          "absent optional fields left out");
    const char *want[] = {"parts 3\n", "defects 0\n", "blocks 2\n", "smtp; 550 5.1.1 unknown ? user\n", NULL};
    python_expect("8-bit", m, len, want);
    free(m);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/spool_dsn_test.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    have_python = access("/usr/bin/python3", X_OK) == 0;
    if (!have_python)
        printf("python3 not found: email-parser checks skipped\n");

    test_structure();
    test_hostile();
    test_refusals();
    test_long_lines();
    test_eight_bit_and_bare_lf();

    char path[160];
    snprintf(path, sizeof(path), "%s/dsn.eml", tmpdir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/check.py", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    CHECK_EXIT();
}
