/*
 * egress_smtp_test - the SMTP client machine: dialogues, limits, a real server
 *
 * Dialogues are tables of steps (server bytes in, client bytes and events expected out), each run four
 * ways: server bytes whole or one octet at a time, output taken whole or one octet at a time; every run
 * must match the table. Events are compared as a compact text ("R0=OK/250 DONE=OK/250/n1").
 * The last case drives Postfix's smtp-sink on a loopback port over a blocking socket (skipped alone when
 * smtp-sink is absent).
 */
#include "egress/egress_smtp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/check.h"

/* ---- helpers ---- */

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* drain_output - all pending output, taken whole or one octet at a time */
static void drain_output(struct egress_smtp *s, bool bytewise, struct sbuf *out)
{
    size_t n;
    const char *p;
    while ((p = egress_smtp_output(s, &n)) != NULL) {
        size_t take = bytewise ? 1 : n;
        sb_add(out, p, take);
        egress_smtp_consumed(s, take);
    }
}

static void ev_format(const struct egress_smtp_event *e, struct sbuf *b)
{
    char t[64];
    const char *l = e->local ? "L" : "";
    switch (e->type) {
    case EGRESS_SMTP_EV_GREETING_OK: snprintf(t, sizeof(t), "GREET"); break;
    case EGRESS_SMTP_EV_READY: snprintf(t, sizeof(t), "READY"); break;
    case EGRESS_SMTP_EV_TLS_START: snprintf(t, sizeof(t), "TLS"); break;
    case EGRESS_SMTP_EV_RCPT:
        snprintf(t, sizeof(t), "R%zu=%s/%d%s", e->rcpt, egress_smtp_result_name(e->result), e->code, l);
        break;
    case EGRESS_SMTP_EV_MESSAGE_DONE:
        snprintf(t, sizeof(t), "DONE=%s/%d/n%zu%s", egress_smtp_result_name(e->result), e->code, e->n_accepted, l);
        break;
    case EGRESS_SMTP_EV_CONN_FAILED: snprintf(t, sizeof(t), "FAIL/%d", e->code); break;
    case EGRESS_SMTP_EV_PROTOCOL_ERROR: snprintf(t, sizeof(t), "PROTO"); break;
    case EGRESS_SMTP_EV_CLOSED: snprintf(t, sizeof(t), "CLOSED"); break;
    default: snprintf(t, sizeof(t), "?"); break;
    }
    if (b->len)
        sb_add(b, " ", 1);
    sb_add(b, t, strlen(t));
}

static void drain_events(struct egress_smtp *s, struct sbuf *b)
{
    struct egress_smtp_event e;
    while (egress_smtp_next_event(s, &e))
        ev_format(&e, b);
}

/* ---- dialogues ---- */

struct msg {
    const char *sender;
    const char *rcpts[6];
    const char *body; /* NULL: "Subject: t\r\n\r\nhi\r\n" */
    unsigned flags;
};

struct step {
    char op; /* S server bytes, C client bytes, E events, M send message, Q quit, T tls_done, A abort,
              * I egress_smtp_tls_injected() is "1" or "0" */
    const char *data;
    const struct msg *m;
};

struct dialogue {
    const char *name;
    bool pipelining;
    enum egress_smtp_tls tls;
    struct step steps[24];
};

#define EHLO "EHLO client.example\r\n"
#define HELO "HELO client.example\r\n"
#define BANNER {'S', "220 mx.example ESMTP\r\n"}, {'E', "GREET"}, {'C', EHLO}
#define CAPS_PIPE "250-mx.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
#define CAPS_PLAIN "250-mx.example hello\r\n250-8BITMIME\r\n250 SIZE 1000\r\n"
#define BODY "Subject: t\r\n\r\nhi\r\n"
#define M1 (&(const struct msg){"a@x.example", {"b@y.example"}})
#define M3 (&(const struct msg){"a@x.example", {"r0@y.example", "r1@y.example", "r2@y.example"}})
#define MAIL_A "MAIL FROM:<a@x.example>\r\n"
#define MAIL_A_SZ "MAIL FROM:<a@x.example> SIZE=18\r\n"
#define RCPT_B "RCPT TO:<b@y.example>\r\n"
#define RCPT3 "RCPT TO:<r0@y.example>\r\nRCPT TO:<r1@y.example>\r\nRCPT TO:<r2@y.example>\r\n"
#define WIRE_BODY BODY ".\r\n"

static const struct dialogue dialogues[] = {
    {"pipelined happy path, two messages, quit", true, 0, {
        BANNER, {'S', CAPS_PIPE}, {'E', "READY"},
        {'M', NULL, M1}, {'C', MAIL_A RCPT_B "DATA\r\n"},
        {'S', "250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n"}, {'E', "R0=OK/250"}, {'C', WIRE_BODY},
        {'S', "250 2.0.0 queued as X\r\n"}, {'E', "DONE=OK/250/n1"},
        {'M', NULL, M1}, {'C', MAIL_A RCPT_B "DATA\r\n"},
        {'S', "250 ok\r\n250 ok\r\n354 go\r\n"}, {'C', WIRE_BODY}, {'S', "250 ok\r\n"},
        {'E', "R0=OK/250 DONE=OK/250/n1"},
        {'Q'}, {'C', "QUIT\r\n"}, {'S', "221 bye\r\n"}, {'E', "CLOSED"}}},
    {"lock-step when PIPELINING is not offered", true, 0, {
        BANNER, {'S', CAPS_PLAIN}, {'E', "READY"},
        {'M', NULL, M3}, {'C', MAIL_A_SZ}, {'S', "250 ok\r\n"}, {'C', "RCPT TO:<r0@y.example>\r\n"},
        {'S', "250 ok\r\n"}, {'C', "RCPT TO:<r1@y.example>\r\n"}, {'S', "250 ok\r\n"},
        {'C', "RCPT TO:<r2@y.example>\r\n"}, {'S', "250 ok\r\n"}, {'C', "DATA\r\n"}, {'S', "354 go\r\n"},
        {'C', WIRE_BODY}, {'S', "250 ok\r\n"}, {'E', "R0=OK/250 R1=OK/250 R2=OK/250 DONE=OK/250/n3"}}},
    {"pipelining offered but not wanted", false, 0, {
        BANNER, {'S', CAPS_PIPE}, {'E', "READY"}, {'M', NULL, M1}, {'C', MAIL_A}, {'S', "250 ok\r\n"},
        {'C', RCPT_B}}},
    {"HELO after 5xx to EHLO; 8-bit body refused locally", true, 0, {
        BANNER, {'S', "502 5.5.1 no EHLO here\r\n"}, {'C', HELO}, {'E', ""}, {'S', "250 mx.example\r\n"},
        {'E', "READY"}, {'M', NULL, &(const struct msg){"a@x.example", {"b@y.example"}, "caf\xc3\xa9\r\n"}},
        {'C', ""}, {'E', "R0=PERMFAIL/554L DONE=PERMFAIL/554/n0L"},
        {'M', NULL, M1}, {'C', MAIL_A}}},
    {"HELO refused too", true, 0, {
        BANNER, {'S', "500 no\r\n"}, {'C', HELO}, {'S', "550 no\r\n"}, {'E', "FAIL/550"}, {'C', "QUIT\r\n"}}},
    {"4xx to EHLO ends the session", true, 0, {
        BANNER, {'S', "451 later\r\n"}, {'E', "FAIL/451"}, {'C', "QUIT\r\n"}}},
    {"banner 554: QUIT, no EHLO", true, 0, {
        {'S', "554 5.7.1 go away\r\n"}, {'E', "FAIL/554"}, {'C', "QUIT\r\n"}}},
    {"banner 421: close without QUIT", true, 0, {
        {'S', "421-busy\r\n421 try later\r\n"}, {'E', "FAIL/421"}, {'C', ""}}},
    {"multi-line banner", true, 0, {
        {'S', "220-mx.example\r\n220-more\r\n220 ready\r\n"}, {'E', "GREET"}, {'C', EHLO}}},
    {"mixed recipients 250/450/550, pipelined", true, 0, {
        BANNER, {'S', CAPS_PIPE}, {'E', "READY"}, {'M', NULL, M3}, {'C', MAIL_A RCPT3 "DATA\r\n"},
        {'S', "250 ok\r\n250 ok\r\n450 4.2.1 busy\r\n550 5.1.1 unknown\r\n354 go\r\n"},
        {'E', "R0=OK/250 R1=TEMPFAIL/450 R2=PERMFAIL/550"}, {'C', WIRE_BODY}, {'S', "250 ok\r\n"},
        {'E', "DONE=OK/250/n1"}}},
    {"mixed recipients, lock-step", true, 0, {
        BANNER, {'S', CAPS_PLAIN}, {'E', "READY"}, {'M', NULL, M3}, {'C', MAIL_A_SZ}, {'S', "250 ok\r\n"},
        {'C', "RCPT TO:<r0@y.example>\r\n"}, {'S', "550 no\r\n"}, {'C', "RCPT TO:<r1@y.example>\r\n"},
        {'S', "450 later\r\n"}, {'C', "RCPT TO:<r2@y.example>\r\n"}, {'S', "250 ok\r\n"}, {'C', "DATA\r\n"},
        {'E', "R0=PERMFAIL/550 R1=TEMPFAIL/450 R2=OK/250"}}},
    {"452 after one RCPT, lock-step: the rest retry in a new transaction", true, 0, {
        BANNER, {'S', CAPS_PLAIN}, {'E', "READY"}, {'M', NULL, M3}, {'C', MAIL_A_SZ}, {'S', "250 ok\r\n"},
        {'C', "RCPT TO:<r0@y.example>\r\n"}, {'S', "250 ok\r\n"}, {'C', "RCPT TO:<r1@y.example>\r\n"},
        {'S', "452 4.5.3 too many recipients\r\n"}, {'C', "DATA\r\n"},
        {'E', "R0=OK/250 R1=RETRY_NEW_TXN/452 R2=RETRY_NEW_TXN/452"}, {'S', "354 go\r\n"},
        {'C', WIRE_BODY}, {'S', "250 ok\r\n"}, {'E', "DONE=OK/250/n1"},
        {'M', NULL, M1}, {'C', MAIL_A_SZ}}},
    {"452 pipelined", true, 0, {
        BANNER, {'S', CAPS_PIPE}, {'E', "READY"}, {'M', NULL, M3}, {'C', MAIL_A RCPT3 "DATA\r\n"},
        {'S', "250 ok\r\n250 ok\r\n452 too many\r\n452 too many\r\n354 go\r\n"},
        {'E', "R0=OK/250 R1=RETRY_NEW_TXN/452 R2=RETRY_NEW_TXN/452"}, {'C', WIRE_BODY}}},
    {"no valid recipients, lock-step: no DATA, RSET before the next MAIL", true, 0, {
        BANNER, {'S', CAPS_PLAIN}, {'E', "READY"}, {'M', NULL, M1}, {'C', MAIL_A_SZ}, {'S', "250 ok\r\n"},
        {'C', RCPT_B}, {'S', "550 5.1.1 no\r\n"}, {'C', ""}, {'E', "R0=PERMFAIL/550 DONE=NO_RCPTS/0/n0"},
        {'M', NULL, M1}, {'C', "RSET\r\n"}, {'S', "250 ok\r\n"}, {'C', MAIL_A_SZ}}},
    {"no valid recipients, pipelined: DATA refused", true, 0, {
        BANNER, {'S', CAPS_PIPE}, {'E', "READY"}, {'M', NULL, M1}, {'C', MAIL_A RCPT_B "DATA\r\n"},
        {'S', "250 ok\r\n550 no\r\n554 5.5.1 no valid recipients\r\n"}, {'C', ""},
        {'E', "R0=PERMFAIL/550 DONE=NO_RCPTS/554/n0"}, {'M', NULL, M1}, {'C', "RSET\r\n"}}},
    {"no valid recipients, pipelined, server says 354 anyway: empty end, not counted", true, 0, {
        BANNER, {'S', CAPS_PIPE}, {'E', "READY"}, {'M', NULL, M1}, {'C', MAIL_A RCPT_B "DATA\r\n"},
        {'S', "250 ok\r\n550 no\r\n354 go\r\n"}, {'C', ".\r\n"}, {'S', "250 ok\r\n"},
        {'E', "R0=PERMFAIL/550 DONE=NO_RCPTS/0/n0"}}},
    {"5xx after DATA (end of data), then RSET not needed", true, 0, {
        BANNER, {'S', CAPS_PIPE}, {'E', "READY"}, {'M', NULL, M1}, {'C', MAIL_A RCPT_B "DATA\r\n"},
        {'S', "250 ok\r\n250 ok\r\n354 go\r\n"}, {'C', WIRE_BODY}, {'S', "554 5.7.1 spam\r\n"},
        {'E', "R0=OK/250 DONE=PERMFAIL/554/n1"}, {'M', NULL, M1}, {'C', MAIL_A RCPT_B "DATA\r\n"}}},
    {"5xx to the DATA command: RSET next", true, 0, {
        BANNER, {'S', CAPS_PLAIN}, {'E', "READY"}, {'M', NULL, M1}, {'C', MAIL_A_SZ}, {'S', "250 ok\r\n"},
        {'C', RCPT_B}, {'S', "250 ok\r\n"}, {'C', "DATA\r\n"}, {'S', "554 no data for you\r\n"},
        {'E', "R0=OK/250 DONE=PERMFAIL/554/n1"}, {'M', NULL, M1}, {'C', "RSET\r\n"}}},
    {"4xx to MAIL, lock-step", true, 0, {
        BANNER, {'S', CAPS_PLAIN}, {'E', "READY"}, {'M', NULL, M3}, {'C', MAIL_A_SZ},
        {'S', "451 4.3.0 later\r\n"}, {'C', ""},
        {'E', "R0=TEMPFAIL/451 R1=TEMPFAIL/451 R2=TEMPFAIL/451 DONE=TEMPFAIL/451/n0"},
        {'M', NULL, M1}, {'C', MAIL_A_SZ}}},
    {"5xx to MAIL, pipelined: RCPT/DATA replies consumed", true, 0, {
        BANNER, {'S', CAPS_PIPE}, {'E', "READY"}, {'M', NULL, M1}, {'C', MAIL_A RCPT_B "DATA\r\n"},
        {'S', "553 5.1.8 bad sender\r\n503 need MAIL\r\n503 need MAIL\r\n"},
        {'E', "R0=PERMFAIL/553 DONE=PERMFAIL/553/n0"}, {'M', NULL, M1}, {'C', MAIL_A RCPT_B "DATA\r\n"}}},
    {"421 at RCPT: unfinished message tempfails, session over", true, 0, {
        BANNER, {'S', CAPS_PIPE}, {'E', "READY"}, {'M', NULL, M3}, {'C', MAIL_A RCPT3 "DATA\r\n"},
        {'S', "250 ok\r\n250 ok\r\n421 4.3.2 shutting down\r\n"},
        {'E', "R0=OK/250 R1=TEMPFAIL/421 R2=TEMPFAIL/421 DONE=TEMPFAIL/421/n1 FAIL/421"}, {'C', ""},
        {'S', "250 ok\r\n"}, {'E', ""}}},
    {"unsolicited 421 while idle", true, 0, {
        BANNER, {'S', CAPS_PIPE}, {'E', "READY"}, {'S', "421 idle too long\r\n"}, {'E', "FAIL/421"}}},
    {"unsolicited 250 while idle", true, 0, {
        BANNER, {'S', CAPS_PIPE}, {'E', "READY"}, {'S', "250 what\r\n"}, {'E', "PROTO"}}},
    {"codes changing mid-reply", true, 0, {
        {'S', "220-a\r\n250 b\r\n"}, {'E', "PROTO"}}},
    {"non-digit code", true, 0, {{'S', "2x0 hi\r\n"}, {'E', "PROTO"}}},
    {"missing separator", true, 0, {{'S', "220hi\r\n"}, {'E', "PROTO"}}},
    {"short line", true, 0, {{'S', "22\r\n"}, {'E', "PROTO"}}},
    {"1xx code", true, 0, {{'S', "120 wait\r\n"}, {'E', "PROTO"}}},
    {"code alone and bare LF accepted", true, 0, {{'S', "220\n"}, {'E', "GREET"}, {'C', EHLO}}},
    {"SIZE limit refuses a large body locally; SIZE=0 means no limit", true, 0, {
        BANNER, {'S', "250-mx\r\n250 SIZE 10\r\n"}, {'E', "READY"}, {'M', NULL, M1}, {'C', ""},
        {'E', "R0=PERMFAIL/552L DONE=PERMFAIL/552/n0L"}}},
    {"size 0, 8BITMIME and SMTPUTF8 parameters", true, 0, {
        BANNER, {'S', "250-mx\r\n250-size 0\r\n250-8bitmime\r\n250 SmtpUtf8\r\n"}, {'E', "READY"},
        {'M', NULL, &(const struct msg){"\xc3\xa9@x.example", {"b@y.example"}, "\xff\r\n"}},
        {'C', "MAIL FROM:<\xc3\xa9@x.example> SIZE=3 BODY=8BITMIME SMTPUTF8\r\n"}}},
    {"scanned by the ingress: SIZE and BODY from its flags, the body is not read for them", true, 0, {
        BANNER, {'S', "250-mx\r\n250-SIZE\r\n250 8BITMIME\r\n"}, {'E', "READY"},
        {'M', NULL, &(const struct msg){"a@x.example", {"b@y.example"}, "ascii\r\n",
                                        EGRESS_SMTP_SEND_SCANNED | EGRESS_SMTP_SEND_8BIT}},
        {'C', "MAIL FROM:<a@x.example> SIZE=7 BODY=8BITMIME\r\n"}}},
    {"scanned, no 8-bit flag, no last line end: the size counts the CRLF added", true, 0, {
        BANNER, {'S', "250-mx\r\n250-SIZE\r\n250 8BITMIME\r\n"}, {'E', "READY"},
        {'M', NULL, &(const struct msg){"a@x.example", {"b@y.example"}, "abc", EGRESS_SMTP_SEND_SCANNED}},
        {'C', "MAIL FROM:<a@x.example> SIZE=5\r\n"}}},
    {"scanned 8-bit to a server without 8BITMIME: refused locally", true, 0, {
        BANNER, {'S', "250-mx\r\n250 SIZE\r\n"}, {'E', "READY"},
        {'M', NULL, &(const struct msg){"a@x.example", {"b@y.example"}, "x\r\n",
                                        EGRESS_SMTP_SEND_SCANNED | EGRESS_SMTP_SEND_8BIT}},
        {'C', ""}, {'E', "R0=PERMFAIL/554L DONE=PERMFAIL/554/n0L"}}},
    {"bad addresses refused locally; never sent", true, 0, {
        BANNER, {'S', CAPS_PLAIN}, {'E', "READY"},
        {'M', NULL, &(const struct msg){"a@x.example", {"b\r\nRSET@y", "c@y.example", "\xc3\xa9@y.example", "d\x01@y"}}},
        {'E', "R0=PERMFAIL/553L R2=PERMFAIL/553L R3=PERMFAIL/553L"},
        {'C', "MAIL FROM:<a@x.example> SIZE=18\r\n"}, {'S', "250 ok\r\n"}, {'C', "RCPT TO:<c@y.example>\r\n"},
        {'S', "250 ok\r\n"}, {'C', "DATA\r\n"}, {'E', "R1=OK/250"}}},
    {"bad sender refuses the message", true, 0, {
        BANNER, {'S', CAPS_PLAIN}, {'E', "READY"},
        {'M', NULL, &(const struct msg){"a\n@x", {"b@y.example", "c@y.example"}}}, {'C', ""},
        {'E', "R0=PERMFAIL/553L R1=PERMFAIL/553L DONE=PERMFAIL/553/n0L"}}},
    {"all recipients bad: nothing sent", true, 0, {
        BANNER, {'S', CAPS_PLAIN}, {'E', "READY"},
        {'M', NULL, &(const struct msg){"a@x.example", {"\x7f"}}}, {'C', ""},
        {'E', "R0=PERMFAIL/553L DONE=NO_RCPTS/0/n0L"}, {'M', NULL, M1}, {'C', MAIL_A_SZ}}},
    {"message needing SMTPUTF8 refused without it", true, 0, {
        BANNER, {'S', CAPS_PLAIN}, {'E', "READY"},
        {'M', NULL, &(const struct msg){"a@x.example", {"b@y.example"}, NULL, EGRESS_SMTP_SEND_SMTPUTF8}},
        {'C', ""}, {'E', "R0=PERMFAIL/553L DONE=PERMFAIL/553/n0L"}}},
    {"STARTTLS: injected plaintext after 220 dropped, EHLO again", true, EGRESS_SMTP_TLS_TRY, {
        BANNER, {'S', "250-mx\r\n250-STARTTLS\r\n250 PIPELINING\r\n"}, {'C', "STARTTLS\r\n"}, {'E', ""},
        {'S', "220 go ahead\r\n250-evil\r\n250 PIPELINING\r\n"}, {'E', "TLS"}, {'I', "1"}, {'S', "250 more evil\r\n"},
        {'E', ""}, {'C', ""}, {'T'}, {'C', EHLO}, {'S', "250-mx\r\n250 8BITMIME\r\n"}, {'E', "READY"},
        {'M', NULL, M1}, {'C', MAIL_A}}},
    {"STARTTLS: a clean 220 is not an injection", true, EGRESS_SMTP_TLS_REQUIRE, {
        BANNER, {'S', "250-mx\r\n250 STARTTLS\r\n"}, {'C', "STARTTLS\r\n"}, {'S', "220 go ahead\r\n"},
        {'E', "TLS"}, {'I', "0"}, {'C', ""}, {'T'}, {'C', EHLO}, {'I', "0"}}},
    {"STARTTLS required, not offered", true, EGRESS_SMTP_TLS_REQUIRE, {
        BANNER, {'S', CAPS_PIPE}, {'E', "FAIL/0"}, {'C', "QUIT\r\n"}}},
    {"STARTTLS refused, opportunistic: plaintext", true, EGRESS_SMTP_TLS_TRY, {
        BANNER, {'S', "250-mx\r\n250 STARTTLS\r\n"}, {'C', "STARTTLS\r\n"}, {'S', "454 4.7.0 no tls\r\n"},
        {'E', "READY"}}},
    {"abort mid-DATA", true, 0, {
        BANNER, {'S', CAPS_PIPE}, {'E', "READY"}, {'M', NULL, M1}, {'C', MAIL_A RCPT_B "DATA\r\n"},
        {'S', "250 ok\r\n250 ok\r\n354 go\r\n"}, {'A'}, {'E', "R0=OK/250 DONE=TEMPFAIL/0/n1L CLOSED"}}},
    {"reply to DOT before the body was written", true, 0, {
        BANNER, {'S', CAPS_PIPE}, {'E', "READY"}, {'M', NULL, M1}, {'C', MAIL_A RCPT_B "DATA\r\n"},
        {'S', "250 ok\r\n250 ok\r\n354 go\r\n552 too big\r\n"},
        {'E', "R0=OK/250 DONE=PERMFAIL/552/n1 FAIL/0"}}},
};

static void run_dialogue(const struct dialogue *d, bool feed_bytewise, bool out_bytewise)
{
    struct egress_smtp_params p = {.ehlo_name = "client.example", .pipelining = d->pipelining, .tls = d->tls};
    struct egress_smtp *s = egress_smtp_new(&p);
    const char *mode = feed_bytewise ? (out_bytewise ? "bytes/bytes" : "bytes/whole")
                                     : (out_bytewise ? "whole/bytes" : "whole/whole");
    char b1[600], b2[600];

    for (size_t i = 0; i < sizeof(d->steps) / sizeof(d->steps[0]) && d->steps[i].op; i++) {
        const struct step *st = &d->steps[i];
        struct sbuf got = {0};
        switch (st->op) {
        case 'S': {
            size_t n = strlen(st->data);
            if (feed_bytewise)
                for (size_t k = 0; k < n; k++)
                    egress_smtp_feed(s, st->data + k, 1);
            else
                egress_smtp_feed(s, st->data, n);
            break;
        }
        case 'C':
            drain_output(s, out_bytewise, &got);
            if (got.len != strlen(st->data) || memcmp(got.p ? got.p : "", st->data, got.len) != 0)
                FAIL("%s [%s] step %zu: client sent \"%s\", want \"%s\"", d->name, mode, i,
                     check_printable(got.p ? got.p : "", got.len, b1, sizeof(b1)),
                     check_printable(st->data, strlen(st->data), b2, sizeof(b2)));
            break;
        case 'E':
            drain_events(s, &got);
            if (strcmp(got.p ? got.p : "", st->data) != 0)
                FAIL("%s [%s] step %zu: events \"%s\", want \"%s\"", d->name, mode, i, got.p ? got.p : "", st->data);
            break;
        case 'M': {
            size_t n = 0;
            while (n < 6 && st->m->rcpts[n])
                n++;
            const char *body = st->m->body ? st->m->body : BODY;
            int rc = egress_smtp_send_message(s, st->m->sender, st->m->rcpts, n, body, strlen(body), st->m->flags);
            if (rc != 0)
                FAIL("%s [%s] step %zu: send_message %d", d->name, mode, i, rc);
            break;
        }
        case 'Q':
            if (egress_smtp_quit(s) != 0)
                FAIL("%s [%s] step %zu: quit refused", d->name, mode, i);
            break;
        case 'T':
            if (egress_smtp_tls_done(s) != 0)
                FAIL("%s [%s] step %zu: tls_done refused", d->name, mode, i);
            break;
        case 'A': egress_smtp_abort(s, "test abort"); break;
        case 'I':
            if (egress_smtp_tls_injected(s) != (st->data[0] == '1'))
                FAIL("%s [%s] step %zu: tls_injected is not %s", d->name, mode, i, st->data);
            break;
        }
        free(got.p);
    }
    egress_smtp_free(s);
}

/* ---- body encoding ---- */

struct body_case {
    const char *body;
    const char *wire; /* what follows DATA's 354, terminator included */
};

static const struct body_case body_cases[] = {
    {"", ".\r\n"},
    {"a", "a\r\n.\r\n"},
    {"a\r\n", "a\r\n.\r\n"},
    {".", "..\r\n.\r\n"},
    {".\r\n", "..\r\n.\r\n"},
    {"a\r\n.\r\nb", "a\r\n..\r\nb\r\n.\r\n"},
    {"a\n.\nb\n", "a\r\n..\r\nb\r\n.\r\n"},
    {"a\r.\rb", "a\r\n..\r\nb\r\n.\r\n"},
    {"\n\n", "\r\n\r\n.\r\n"},
    {"\r", "\r\n.\r\n"},
    {"\r\r\n", "\r\n\r\n.\r\n"},
    {"..x\r\n..\r\n", "...x\r\n...\r\n.\r\n"},
    {"a.b\r\n x.\r\n", "a.b\r\n x.\r\n.\r\n"},
    {"\n.", "\r\n..\r\n.\r\n"},
    {"x\r\n\r\n.\r\n\r\n", "x\r\n\r\n..\r\n\r\n.\r\n"},
};

static void test_body(void)
{
    static const char *const rcpt[] = {"b@y.example"};
    char b1[300], b2[300];
    for (size_t i = 0; i < sizeof(body_cases) / sizeof(body_cases[0]); i++) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            const struct body_case *c = &body_cases[i];
            struct egress_smtp_params p = {.ehlo_name = "c.example", .pipelining = true};
            struct egress_smtp *s = egress_smtp_new(&p);
            struct sbuf got = {0};
            const char *greet = "220 x\r\n250-x\r\n250 PIPELINING\r\n", *replies = "250 a\r\n250 b\r\n354 c\r\n";
            egress_smtp_feed(s, greet, strlen(greet));
            drain_output(s, false, &got);
            egress_smtp_send_message(s, "", rcpt, 1, c->body, strlen(c->body), 0);
            egress_smtp_feed(s, replies, strlen(replies));
            got.len = 0;
            drain_output(s, bytewise, &got);
            const char *cmds = "MAIL FROM:<>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n";
            size_t cl = strlen(cmds);
            if (got.len < cl || memcmp(got.p, cmds, cl) != 0 || got.len - cl != strlen(c->wire) ||
                memcmp(got.p + cl, c->wire, got.len - cl) != 0)
                FAIL("body %zu (%s): got \"%s\", want \"%s\"", i, bytewise ? "bytewise" : "whole",
                     check_printable(got.p, got.len, b1, sizeof(b1)), check_printable(c->wire, strlen(c->wire), b2, sizeof(b2)));
            egress_smtp_feed(s, "250 ok\r\n", 8);
            struct sbuf ev = {0};
            drain_events(s, &ev);
            if (!ev.p || strcmp(ev.p, "GREET READY R0=OK/250 DONE=OK/250/n1") != 0)
                FAIL("body %zu: events \"%s\"", i, ev.p ? ev.p : "");
            free(ev.p);
            free(got.p);
            egress_smtp_free(s);
        }
    }
}

/* ---- endless replies: bounded memory, PROTOCOL_ERROR ---- */

static void test_limits(void)
{
    struct egress_smtp_params p = {.ehlo_name = "client.example", .pipelining = true};
    struct egress_smtp_event e;
    bool proto = false;

    /* 100k continuation lines in the banner */
    struct egress_smtp *s = egress_smtp_new(&p);
    size_t lines = 0;
    int rc = 0;
    for (; lines < 100000 && rc == 0; lines++)
        rc = egress_smtp_feed(s, "220-more banner text\r\n", 22);
    while (egress_smtp_next_event(s, &e))
        proto |= e.type == EGRESS_SMTP_EV_PROTOCOL_ERROR;
    if (!proto || rc != -EPIPE || lines > 258)
        FAIL("100k continuation lines: proto %d rc %d after %zu lines", proto, rc, lines);
    egress_smtp_free(s);

    /* the same with a limit above 100k: accepted, and the machine's memory does not grow (nothing kept) */
    p.lines_max = 200000;
    s = egress_smtp_new(&p);
    for (lines = 0; lines < 100000; lines++)
        egress_smtp_feed(s, "220-more banner text\r\n", 22);
    egress_smtp_feed(s, "220 end\r\n", 9);
    if (!egress_smtp_next_event(s, &e) || e.type != EGRESS_SMTP_EV_GREETING_OK ||
        strcmp(e.text, "more banner text / more banner text / more banner text / more banner text"))
        FAIL("100k lines under a raised limit: %s \"%s\"", egress_smtp_event_name(e.type), e.text);
    egress_smtp_free(s);
    p.lines_max = 0;

    /* a 1 MB line, fed in 4 KiB reads: refused once past the limit, never buffered */
    s = egress_smtp_new(&p);
    char chunk[4096];
    memset(chunk, 'x', sizeof(chunk));
    memcpy(chunk, "220 ", 4);
    size_t fed = 0;
    rc = 0;
    for (; fed < (1u << 20) && rc == 0; fed += sizeof(chunk)) {
        rc = egress_smtp_feed(s, chunk, sizeof(chunk));
        memset(chunk, 'y', 4);
    }
    proto = false;
    while (egress_smtp_next_event(s, &e))
        proto |= e.type == EGRESS_SMTP_EV_PROTOCOL_ERROR && strstr(e.text, "too long");
    if (!proto || fed > 3 * sizeof(chunk))
        FAIL("1 MB line: proto %d after %zu octets", proto, fed);
    egress_smtp_free(s);

    /* a line exactly at the limit is fine, one more octet is not */
    for (int extra = 0; extra < 2; extra++) {
        p.line_max = 100;
        s = egress_smtp_new(&p);
        char line[128];
        memset(line, 'z', sizeof(line));
        memcpy(line, "220 ", 4);
        memcpy(line + 100 + extra, "\r\n", 2);
        egress_smtp_feed(s, line, 102 + (size_t)extra);
        if (!egress_smtp_next_event(s, &e) ||
            e.type != (extra ? EGRESS_SMTP_EV_PROTOCOL_ERROR : EGRESS_SMTP_EV_GREETING_OK))
            FAIL("line of %d octets with limit 100: %s", 100 + extra, egress_smtp_event_name(e.type));
        egress_smtp_free(s);
    }

    /* API misuse */
    p.line_max = 0;
    if (egress_smtp_new(&(struct egress_smtp_params){.ehlo_name = "bad name"}) ||
        egress_smtp_new(&(struct egress_smtp_params){.ehlo_name = ""}))
        FAIL("bad EHLO names accepted");
    s = egress_smtp_new(&p);
    static const char *const r1[] = {"b@y"};
    if (egress_smtp_send_message(s, "a@x", r1, 1, "x", 1, 0) != -EBUSY || egress_smtp_quit(s) != -EBUSY ||
        egress_smtp_send_message(s, "a@x", r1, 0, "x", 1, 0) != -EINVAL)
        FAIL("send before READY or without recipients not refused");
    if (egress_smtp_waiting(s) != EGRESS_SMTP_WAIT_BANNER)
        FAIL("waiting: %d", egress_smtp_waiting(s));
    egress_smtp_free(s);
    egress_smtp_free(NULL);
}

/* a session ended mid-transaction (421, abort) delivers MESSAGE_DONE before its end event: it then
 * waits for nothing, and only egress_smtp_over() tells it from an idle one */
static void test_over(void)
{
    struct egress_smtp_params p = {.ehlo_name = "client.example", .pipelining = false};
    static const char *const rc[] = {"b@y", "c@y"};
    static const char *const ends[] = {"421 4.3.2 going down\r\n", NULL};
    struct egress_smtp_event e;
    size_t len;

    for (size_t k = 0; k < 2; k++) {
        struct egress_smtp *s = egress_smtp_new(&p);
        egress_smtp_feed(s, "220 hi\r\n", 8);
        egress_smtp_feed(s, "250 hello\r\n", 11);
        while (egress_smtp_next_event(s, &e))
            ;
        if (egress_smtp_over(s) || egress_smtp_waiting(s) != EGRESS_SMTP_WAIT_NONE)
            FAIL("a READY session is over or busy");
        egress_smtp_send_message(s, "a@x", rc, 2, "x\r\n", 3, 0);
        egress_smtp_consumed(s, egress_smtp_output(s, &len) ? len : 0);
        egress_smtp_feed(s, "250 ok\r\n", 8);
        if (ends[k])
            egress_smtp_feed(s, ends[k], strlen(ends[k]));
        else
            egress_smtp_abort(s, "connection closed by the server");
        bool done = false, end = false;
        while (egress_smtp_next_event(s, &e)) {
            if (e.type == EGRESS_SMTP_EV_MESSAGE_DONE) {
                done = e.result == EGRESS_SMTP_TEMPFAIL;
                if (!egress_smtp_over(s) || egress_smtp_waiting(s) != EGRESS_SMTP_WAIT_NONE)
                    FAIL("case %zu: not over at MESSAGE_DONE", k);
            }
            end |= e.type == EGRESS_SMTP_EV_CONN_FAILED || e.type == EGRESS_SMTP_EV_CLOSED;
        }
        if (!done || !end || !egress_smtp_over(s))
            FAIL("case %zu: done %d end %d", k, done, end);
        egress_smtp_free(s);
    }
}

/* MESSAGE_DONE.at_mail: the recipients' failure is MAIL's (refused, or 421 to it), not a RCPT's */
struct at_mail_case {
    const char *ehlo, *replies;
    bool at_mail;
    enum egress_smtp_result result;
};

static const struct at_mail_case at_mail_cases[] = {
    {"250 hello\r\n", "451 4.3.0 later\r\n", true, EGRESS_SMTP_TEMPFAIL},
    {"250 hello\r\n", "550 5.7.1 no\r\n", true, EGRESS_SMTP_PERMFAIL},
    {"250-hello\r\n250 PIPELINING\r\n", "451 4.3.0 later\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n",
     true, EGRESS_SMTP_TEMPFAIL},
    {"250 hello\r\n", "421 4.3.2 bye\r\n", true, EGRESS_SMTP_TEMPFAIL},
    {"250-hello\r\n250 PIPELINING\r\n", "421 4.3.2 bye\r\n", true, EGRESS_SMTP_TEMPFAIL},
    {"250 hello\r\n", "250 ok\r\n421 4.3.2 bye\r\n", false, EGRESS_SMTP_TEMPFAIL},
    {"250-hello\r\n250 PIPELINING\r\n", "250 ok\r\n421 4.3.2 bye\r\n", false, EGRESS_SMTP_TEMPFAIL},
    {"250 hello\r\n", "250 ok\r\n250 ok\r\n452 4.5.3 full\r\n354 go\r\n451 4.3.0 later\r\n", false,
     EGRESS_SMTP_TEMPFAIL},
};

static void test_at_mail(void)
{
    static const char *const rc[] = {"b@y", "c@y"};
    struct egress_smtp_event e;
    size_t len;
    const char *o;

    for (size_t k = 0; k < sizeof(at_mail_cases) / sizeof(at_mail_cases[0]); k++) {
        const struct at_mail_case *c = &at_mail_cases[k];
        struct egress_smtp *s = egress_smtp_new(&(struct egress_smtp_params){.ehlo_name = "client.example",
                                                                            .pipelining = true});
        egress_smtp_feed(s, "220 hi\r\n", 8);
        egress_smtp_feed(s, c->ehlo, strlen(c->ehlo));
        egress_smtp_send_message(s, "a@x", rc, 2, "x\r\n", 3, 0);
        /* replies one at a time, the output written in between, the body included */
        const char *r = c->replies;
        while (*r) {
            while ((o = egress_smtp_output(s, &len)) != NULL)
                egress_smtp_consumed(s, len);
            const char *end = strstr(r, "\r\n") + 2;
            egress_smtp_feed(s, r, (size_t)(end - r));
            r = end;
        }
        bool seen = false;
        while (egress_smtp_next_event(s, &e))
            if (e.type == EGRESS_SMTP_EV_MESSAGE_DONE) {
                seen = true;
                if (e.at_mail != c->at_mail || e.result != c->result)
                    FAIL("at_mail case %zu: at_mail %d result %s", k, e.at_mail, egress_smtp_result_name(e.result));
            }
        if (!seen)
            FAIL("at_mail case %zu: no MESSAGE_DONE", k);
        egress_smtp_free(s);
    }
}

/* ---- against Postfix's smtp-sink ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || getsockname(fd, (struct sockaddr *)&a, &al))
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

static pid_t sink_start(const char *sink, const char *opt, const char *arg, int port)
{
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        if (opt)
            execl(sink, sink, "-u", "nobody", opt, arg, addr, "10", (char *)NULL);
        else
            execl(sink, sink, "-u", "nobody", addr, "10", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int sink_connect(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
            struct timeval tv = {.tv_sec = 5};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            return fd;
        }
        if (fd >= 0)
            close(fd);
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    return -1;
}

/*
 * drive - one session over a blocking socket: n_msgs messages (3 recipients each), then QUIT.
 * Events are written to `evs`; the loop ends on a terminal event, EOF or a 5 s silence.
 */
static void drive(int fd, bool pipelining, size_t n_msgs, struct sbuf *evs)
{
    static const char *const rcpts[] = {"r0@sink.example", "r1@sink.example", "r2@sink.example"};
    static const char body[] = "Subject: ringmail test\n\n.leading dot\nline two\r\nend";
    struct egress_smtp_params p = {.ehlo_name = "client.example", .pipelining = pipelining};
    struct egress_smtp *s = egress_smtp_new(&p);
    size_t sent = 0;
    bool over = false;

    while (!over) {
        size_t n;
        const char *o;
        while ((o = egress_smtp_output(s, &n)) != NULL) {
            ssize_t w = write(fd, o, n);
            if (w <= 0) {
                egress_smtp_abort(s, "write failed");
                break;
            }
            egress_smtp_consumed(s, (size_t)w);
        }
        struct egress_smtp_event e;
        bool can_send = false;
        while (egress_smtp_next_event(s, &e)) {
            ev_format(&e, evs);
            if (e.type == EGRESS_SMTP_EV_CONN_FAILED || e.type == EGRESS_SMTP_EV_PROTOCOL_ERROR ||
                e.type == EGRESS_SMTP_EV_CLOSED)
                over = true;
            can_send |= e.type == EGRESS_SMTP_EV_READY || e.type == EGRESS_SMTP_EV_MESSAGE_DONE;
        }
        if (over)
            break;
        if (can_send) {
            if (sent < n_msgs) {
                if (egress_smtp_send_message(s, "s@client.example", rcpts, 3, body, sizeof(body) - 1, 0))
                    FAIL("send_message refused");
                sent++;
            } else if (egress_smtp_quit(s) != 0) {
                FAIL("quit refused");
            }
            continue;
        }
        char buf[512];
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r <= 0)
            egress_smtp_abort(s, r == 0 ? "eof" : "read error");
        else
            egress_smtp_feed(s, buf, (size_t)r);
    }
    egress_smtp_free(s);
}

struct sink_case {
    const char *opt, *arg;
    bool pipelining;
    size_t n_msgs;
    const char *want;
};

#define ACC3 "R0=OK/250 R1=OK/250 R2=OK/250 DONE=OK/250/n3"
#define TMP3 "R0=TEMPFAIL/450 R1=TEMPFAIL/450 R2=TEMPFAIL/450 DONE=NO_RCPTS/0/n0"

static const struct sink_case sink_cases[] = {
    {NULL, NULL, true, 3, "GREET READY " ACC3 " " ACC3 " " ACC3 " CLOSED"},
    {NULL, NULL, false, 3, "GREET READY " ACC3 " " ACC3 " " ACC3 " CLOSED"},
    {"-r", "RCPT", true, 3, "GREET READY " TMP3 " " TMP3 " " TMP3 " CLOSED"},
    {"-f", "DATA", true, 2,
     "GREET READY R0=OK/250 R1=OK/250 R2=OK/250 DONE=PERMFAIL/500/n3 R0=OK/250 R1=OK/250 R2=OK/250 "
     "DONE=PERMFAIL/500/n3 CLOSED"},
    {"-Q", "MAIL", true, 2,
     "GREET READY R0=TEMPFAIL/421 R1=TEMPFAIL/421 R2=TEMPFAIL/421 DONE=TEMPFAIL/421/n0 FAIL/421"},
};

static void test_smtp_sink(void)
{
    const char *sink = getenv("RINGMAIL_SMTP_SINK");
    if (!sink || !*sink)
        sink = "/usr/sbin/smtp-sink";
    if (access(sink, X_OK) != 0) {
        printf("SKIP smtp-sink case: %s not found\n", sink);
        return;
    }
    for (size_t i = 0; i < sizeof(sink_cases) / sizeof(sink_cases[0]); i++) {
        const struct sink_case *c = &sink_cases[i];
        int port = free_port();
        pid_t pid = port > 0 ? sink_start(sink, c->opt, c->arg, port) : -1;
        if (pid <= 0) {
            FAIL("smtp-sink %zu: cannot start", i);
            continue;
        }
        int fd = sink_connect(port);
        struct sbuf evs = {0};
        if (fd < 0)
            FAIL("smtp-sink %zu: cannot connect to port %d", i, port);
        else {
            drive(fd, c->pipelining, c->n_msgs, &evs);
            close(fd);
            if (!evs.p || strcmp(evs.p, c->want) != 0)
                FAIL("smtp-sink %zu (%s %s): events\n  got  %s\n  want %s", i, c->opt ? c->opt : "", c->arg ? c->arg : "",
                     evs.p ? evs.p : "", c->want);
        }
        free(evs.p);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < sizeof(dialogues) / sizeof(dialogues[0]); i++)
        for (int m = 0; m < 4; m++)
            run_dialogue(&dialogues[i], m & 1, m & 2);
    test_body();
    test_limits();
    test_over();
    test_at_mail();
    test_smtp_sink();
    CHECK_EXIT();
}
