/*
 * egress_smtp - SMTP client protocol core: a pure state machine (RFC 5321, 2920, 1870, 6152, 6531, 3207)
 *
 * No sockets, no timers, no clock: the egress worker does the I/O from its io_uring loop and the
 * timeouts (egress_smtp_waiting() says which reply is awaited, for RFC 5321 4.5.3.2 values).
 *
 * Driving it:
 *   s = egress_smtp_new(&params);           the connection is open, the banner is awaited
 *   loop: egress_smtp_output()/egress_smtp_consumed() for bytes to write, egress_smtp_feed() with bytes
 *         read, egress_smtp_next_event() until it returns false.
 *   On READY: egress_smtp_send_message(); on MESSAGE_DONE the machine is READY again (no new READY
 *   event) and the next message may go; egress_smtp_quit() at the end.
 *   Read EOF, timeout or a write error: egress_smtp_abort(); close on CONN_FAILED, PROTOCOL_ERROR and
 *   CLOSED (after flushing output for CONN_FAILED, which may hold a QUIT; its reply is not needed).
 *
 * Events (polled, FIFO):
 *   GREETING_OK     2xx banner; EHLO is queued.
 *   READY           session established (after EHLO, after HELO when EHLO got 5xx, after the re-EHLO
 *                   that follows STARTTLS). Capabilities in egress_smtp_caps_get().
 *   TLS_START       the 220 to STARTTLS arrived: flush nothing more, run the handshake, then call
 *                   egress_smtp_tls_done(). Octets the server sent after the 220, in the same read or
 *                   later, are discarded until then (TLS-03): they are plaintext an attacker could inject.
 *   RCPT            one per recipient index of each message, exactly once: ACCEPTED (the RCPT got 2xx:
 *                   the final outcome is then the MESSAGE_DONE result), TEMPFAIL, PERMFAIL, or
 *                   RETRY_NEW_TXN (452 "too many recipients": send it again in a new transaction; the
 *                   recipients after it in lock-step were never sent). `local` means nothing was sent
 *                   for it (refused here: bad characters, UTF-8 without SMTPUTF8, ...).
 *   MESSAGE_DONE    once per message: OK, TEMPFAIL, PERMFAIL from the reply to the end of data, to DATA,
 *                   to MAIL, or a local refusal; NO_RCPTS when no recipient was accepted (DATA not sent
 *                   in lock-step; RSET precedes the next MAIL). n_accepted counts ACCEPTED recipients.
 *   CONN_FAILED     the server refused or ended the session (banner not 2xx, 421 anywhere, HELO refused,
 *                   STARTTLS required but unavailable); an unfinished message first gets its RCPT and
 *                   MESSAGE_DONE events as TEMPFAIL.
 *   PROTOCOL_ERROR  the server's bytes broke the grammar or the dialogue (see smtp/smtp_reply.h): close now.
 *   CLOSED          the server answered QUIT, or egress_smtp_abort() was called.
 *   Text and codes come from the server reply (`code` 0 when none: local or abort); GREETING_OK and
 *   READY carry the banner and the EHLO/HELO reply for the log.
 *
 * Output: egress_smtp_output() returns the next contiguous piece to write (NULL when none) and
 * egress_smtp_consumed() says how much was written. A returned pointer stays valid until those
 * octets are consumed, even across feed() calls that queue more commands: commands being written live
 * in one buffer, new ones accumulate in another. The body is never copied: pieces point into the
 * caller's body, with the added dots and line ends from static storage.
 * With PIPELINING offered and params.pipelining: [RSET after a failed transaction, alone, then] MAIL,
 * all RCPTs and DATA in one piece (RFC 2920), replies matched in order. Otherwise lock-step. STARTTLS
 * is never pipelined.
 *
 * Message rules (egress_smtp_send_message):
 *   sender (may be "" for <>), rcpts[] and body are bare addresses/octets BORROWED until MESSAGE_DONE.
 *   Body: dot-stuffed, bare LF and bare CR become CRLF, a missing last line end is added, then ".".
 *   SIZE=n on MAIL when the server offers SIZE (n: octets after CRLF normalisation, without stuffing,
 *   RFC 1870); a body over a non-zero advertised maximum is refused locally (552 5.3.4).
 *   8-bit body: BODY=8BITMIME when offered, otherwise refused locally (554 5.6.3), nothing sent.
 *   An address with a control octet (CR, LF, NUL, ...) or over 254 octets is refused locally (553);
 *   non-ASCII needs SMTPUTF8 from the server (then SMTPUTF8 goes on MAIL), else 553 5.6.7. A bad sender
 *   refuses the message; a bad recipient only itself. EGRESS_SMTP_SEND_SMTPUTF8: the message itself
 *   needs SMTPUTF8 (UTF-8 headers): refused when not offered, parameter sent when offered.
 *   EGRESS_SMTP_SEND_SCANNED: the caller vouches that the body has no bare CR or LF and that it has an
 *   8-bit octet exactly when EGRESS_SMTP_SEND_8BIT is set (the ingress's scan, carried in the envelope):
 *   SIZE and BODY come from that without a pass over the body.
 *   RSET is sent only when the previous transaction left the server with one open (MAIL accepted and
 *   the transaction did not end with the reply to the end of data).
 *
 * Ownership: the machine owns its buffers and events; params strings are copied.
 * Errors: server misbehaviour becomes events, never panics. API misuse returns -errno.
 */
#ifndef RINGMAIL_EGRESS_SMTP_H
#define RINGMAIL_EGRESS_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto_trace.h"
#include "smtp/smtp_reply.h"

/* struct egress_smtp_params.tls */
enum egress_smtp_tls {
    EGRESS_SMTP_TLS_NONE = 0,    /* never STARTTLS */
    EGRESS_SMTP_TLS_TRY = 1,     /* STARTTLS when offered; plaintext when not offered or refused (454) */
    EGRESS_SMTP_TLS_REQUIRE = 2, /* STARTTLS or CONN_FAILED: never plaintext (TLS-04) */
};

struct egress_smtp_params {
    const char *ehlo_name; /* a domain or address literal; no spaces or control octets */
    size_t line_max;       /* reply line octets, 0: 2048 */
    unsigned lines_max;    /* lines per reply, 0: 256 */
    bool pipelining;       /* use PIPELINING when offered */
    enum egress_smtp_tls tls;
};

struct egress_smtp_caps {
    bool esmtp; /* EHLO accepted */
    bool pipelining;
    bool size;
    uint64_t size_max; /* 0: no maximum given */
    bool eightbitmime;
    bool smtputf8;
    bool starttls;
    bool chunking;
    bool enhancedstatuscodes;
};

enum egress_smtp_event_type {
    EGRESS_SMTP_EV_NONE = 0,
    EGRESS_SMTP_EV_GREETING_OK = 1,
    EGRESS_SMTP_EV_READY = 2,
    EGRESS_SMTP_EV_TLS_START = 3,
    EGRESS_SMTP_EV_RCPT = 4,
    EGRESS_SMTP_EV_MESSAGE_DONE = 5,
    EGRESS_SMTP_EV_CONN_FAILED = 6,
    EGRESS_SMTP_EV_PROTOCOL_ERROR = 7,
    EGRESS_SMTP_EV_CLOSED = 8,
};

enum egress_smtp_result {
    EGRESS_SMTP_OK = 0, /* RCPT: accepted; MESSAGE_DONE: delivered to the accepted ones */
    EGRESS_SMTP_TEMPFAIL = 1,
    EGRESS_SMTP_PERMFAIL = 2,
    EGRESS_SMTP_RETRY_NEW_TXN = 3, /* RCPT only */
    EGRESS_SMTP_NO_RCPTS = 4,      /* MESSAGE_DONE only */
};

struct egress_smtp_event {
    enum egress_smtp_event_type type;
    enum egress_smtp_result result;
    size_t rcpt;       /* RCPT: index into rcpts[] */
    size_t n_accepted; /* MESSAGE_DONE */
    bool at_mail;      /* MESSAGE_DONE: the transaction ended at MAIL (refused, or 421 to it) */
    bool local;        /* decided here, nothing sent for it */
    int code;          /* server reply code, or the code a local refusal stands for; 0: none */
    char enhanced[SMTP_REPLY_ENH_MAX];
    char text[SMTP_REPLY_TEXT_MAX]; /* reply text or the local reason; printable */
};

/* which reply is awaited, for the caller's timeouts; NONE when idle */
enum egress_smtp_wait {
    EGRESS_SMTP_WAIT_NONE = 0,
    EGRESS_SMTP_WAIT_BANNER = 1,
    EGRESS_SMTP_WAIT_EHLO = 2,
    EGRESS_SMTP_WAIT_HELO = 3,
    EGRESS_SMTP_WAIT_STARTTLS = 4,
    EGRESS_SMTP_WAIT_RSET = 5,
    EGRESS_SMTP_WAIT_MAIL = 6,
    EGRESS_SMTP_WAIT_RCPT = 7,
    EGRESS_SMTP_WAIT_DATA = 8,
    EGRESS_SMTP_WAIT_DOT = 9, /* body being written or its reply awaited */
    EGRESS_SMTP_WAIT_QUIT = 10,
    EGRESS_SMTP_WAIT_TLS = 11, /* the caller's handshake */
};

/* egress_smtp_send_message flags */
#define EGRESS_SMTP_SEND_SMTPUTF8 0x1u
#define EGRESS_SMTP_SEND_SCANNED 0x2u
#define EGRESS_SMTP_SEND_8BIT 0x4u

struct egress_smtp;

/* egress_smtp_new - a machine for a freshly connected socket; NULL when params are invalid */
struct egress_smtp *egress_smtp_new(const struct egress_smtp_params *p);

/*
 * egress_smtp_trace_set - ringctl trace-smtp-client: fn gets each command line as it is queued (->),
 * each reply line as it is parsed (<-), the body as "[body N bytes]" and a reply it cannot parse, only
 * while rt_trace_on(PROTO_TRACE_CLIENT) (one relaxed load when nobody traces). Lines without CRLF.
 */
typedef void (*egress_smtp_trace_fn)(void *ctx, enum proto_trace_dir dir, const char *text, size_t len);
void egress_smtp_trace_set(struct egress_smtp *s, egress_smtp_trace_fn fn, void *ctx);
void egress_smtp_free(struct egress_smtp *s);

/* egress_smtp_feed - server octets in any split; 0, or -EPIPE once the session is over (octets ignored) */
int egress_smtp_feed(struct egress_smtp *s, const char *buf, size_t len);

/* egress_smtp_output - next piece to write, NULL with *len 0 when nothing */
const char *egress_smtp_output(struct egress_smtp *s, size_t *len);
/* egress_smtp_consumed - n octets of the last piece were written (n <= its length) */
void egress_smtp_consumed(struct egress_smtp *s, size_t n);

/* egress_smtp_next_event - pop the oldest event into *ev; false when none */
bool egress_smtp_next_event(struct egress_smtp *s, struct egress_smtp_event *ev);

/*
 * egress_smtp_send_message - start one transaction (rules in the file head).
 * Returns 0 (the outcome arrives as events, local refusals included), -EBUSY when not READY (banner,
 * EHLO, a message in flight), -EPIPE when the session is over, -EINVAL for n_rcpts 0 or NULL pointers.
 */
int egress_smtp_send_message(struct egress_smtp *s, const char *sender, const char *const *rcpts, size_t n_rcpts,
                             const char *body, size_t body_len, unsigned flags);

/* egress_smtp_quit - queue QUIT; 0, -EBUSY with a message in flight, -EPIPE when over */
int egress_smtp_quit(struct egress_smtp *s);

/* egress_smtp_tls_done - the handshake after TLS_START succeeded: forget capabilities, EHLO again */
int egress_smtp_tls_done(struct egress_smtp *s);

/* egress_smtp_abort - EOF, timeout or I/O error: unfinished results as TEMPFAIL, then CLOSED(reason) */
void egress_smtp_abort(struct egress_smtp *s, const char *reason);

const struct egress_smtp_caps *egress_smtp_caps_get(const struct egress_smtp *s);
enum egress_smtp_wait egress_smtp_waiting(const struct egress_smtp *s);
/* egress_smtp_over - the session ended (its CONN_FAILED, PROTOCOL_ERROR or CLOSED is queued or popped):
 * waiting() then says NONE too, but the connection must not be taken for an idle one */
bool egress_smtp_over(const struct egress_smtp *s);
/* egress_smtp_tls_active - tls_done() was called on this connection */
bool egress_smtp_tls_active(const struct egress_smtp *s);
/* egress_smtp_tls_injected - octets arrived after the 220 to STARTTLS (in its read or later, before
 * tls_done()): they were dropped; the caller must not start TLS on this connection (TLS-03) */
bool egress_smtp_tls_injected(const struct egress_smtp *s);

const char *egress_smtp_event_name(enum egress_smtp_event_type t);
const char *egress_smtp_result_name(enum egress_smtp_result r);

#endif
