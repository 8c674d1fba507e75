/*
 * spool_dsn - build a delivery status notification (RFC 3464 in an RFC 6522 multipart/report)
 *
 * spool_dsn_build() returns one message, ready to be injected with the envelope MAIL FROM:<>
 * (the caller's job; the message itself has no Return-Path) and RCPT TO: the original sender:
 *   From: Mail Delivery System <postmaster>, To: <sender>, Subject, Date, Message-ID,
 *   In-Reply-To/References (when the original Message-ID is given and well formed),
 *   Auto-Submitted: auto-replied (RFC 3834), MIME-Version, Content-Type: multipart/report;
 *   report-type=delivery-status; boundary=...
 *   part 1 text/plain: what happened, one paragraph per recipient;
 *   part 2 message/delivery-status: Reporting-MTA, Original-Envelope-Id, Arrival-Date, then per
 *          recipient Original-Recipient, Final-Recipient, Action, Status, Remote-MTA,
 *          Diagnostic-Code, Last-Attempt-Date, Will-Retry-Until (each only when known);
 *   part 3 text/rfc822-headers: the original header section, at most SPOOL_DSN_MAX_HEADERS bytes,
 *          cut at a line end (part 3 is always there, empty when no message bytes were given).
 * Output: heap buffer (caller frees) of CRLF-terminated lines, none longer than 998 octets, NUL
 * terminated (the NUL is not counted in *out_len). The boundary is random and checked against
 * every part, so it never occurs in the content.
 * Peer-supplied text (diagnostic, remote MTA, addresses, envelope id) cannot inject headers or
 * MIME structure: CR, LF, NUL and other control bytes become spaces, bytes above 0x7e become '?'
 * (the report is US-ASCII; RFC 6533 global DSNs are not built), and long values are folded at
 * spaces or, for a run without spaces, split by a fold; a diagnostic longer than
 * SPOOL_DSN_MAX_DIAGNOSTIC is cut and marked "...". The original headers are copied as they are
 * except that line ends become CRLF, NULs are dropped and lines past 998 octets are folded.
 * Refused with -EINVAL: a NULL input, no reporting MTA or postmaster, a null reverse path as
 * sender (NULL, "" or "<>": never a DSN to the null sender), no recipients, a recipient without
 * a final address, an action other than failed/delayed. An invalid status becomes 5.0.0
 * (failed) or 4.0.0 (delayed), because a peer's garbled code must not lose the whole report.
 */
#ifndef RINGMAIL_SPOOL_DSN_H
#define RINGMAIL_SPOOL_DSN_H

#include <stddef.h>
#include <stdint.h>

#define SPOOL_DSN_MAX_HEADERS (64u * 1024u)
#define SPOOL_DSN_MAX_DIAGNOSTIC 4096u
#define SPOOL_DSN_LINE_MAX 998u

enum spool_dsn_action {
    SPOOL_DSN_FAILED = 0,
    SPOOL_DSN_DELAYED = 1,
};

struct spool_dsn_rcpt {
    const char *original_recipient; /* ORCPT as an rfc822 address, or NULL */
    const char *final_recipient;    /* the address we tried; required */
    enum spool_dsn_action action;
    const char *status;           /* "5.1.1"; NULL or malformed: 5.0.0 / 4.0.0 */
    const char *remote_mta;       /* host name of the MTA that answered, or NULL */
    const char *diagnostic;       /* the SMTP response, "550 5.1.1 no such user", or NULL */
    uint64_t last_attempt_ns;     /* wall clock; 0: field left out */
    uint64_t will_retry_until_ns; /* delayed only; 0: left out */
};

struct spool_dsn_input {
    const char *reporting_mta; /* our host name */
    const char *postmaster;    /* "MAILER-DAEMON@host", the From: address */
    const char *sender;        /* the original envelope sender: the DSN's recipient */
    const char *envelope_id;   /* ENVID of the original transaction, or NULL */
    const char *message_id;    /* the original Message-ID ("<...>"), or NULL */
    const char *queue_id;      /* our id: text part and X-Ringmail-Queue-ID, or NULL */
    uint64_t arrival_ns;       /* when the original was received; 0: left out */
    uint64_t now_ns;           /* Date:; 0: the current time */
    const char *message;       /* the original message bytes, or NULL */
    size_t message_len;
    const struct spool_dsn_rcpt *rcpts;
    size_t n_rcpts;
};

int spool_dsn_build(const struct spool_dsn_input *in, char **out, size_t *out_len);

#endif
