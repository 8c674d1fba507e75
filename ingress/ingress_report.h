/*
 * ingress_report - feedback mail parsed: ARF complaints (RFC 5965) and delivery status reports (RFC 3464)
 *
 * ingress_report_parse() reads one received message (header and body, as stored after DATA: CRLF or
 * bare LF line ends are both taken) that should be a multipart/report. It accepts
 *   - report-type=feedback-report: the message/feedback-report part's fields (Feedback-Type,
 *     User-Agent, Version, Original-Rcpt-To, Original-Mail-From, Arrival-Date, Reporting-MTA,
 *     Source-IP) and the returned original (message/rfc822 or text|message/rfc822-headers);
 *   - report-type=delivery-status: the message/delivery-status part's per-message field Reporting-MTA
 *     and the first recipient block whose Action is "failed" (else the first block): Final-Recipient,
 *     Original-Recipient, Action, Status, Diagnostic-Code, Remote-MTA; and the returned headers.
 * From the returned original it takes Message-ID and our X-Ringmail-Id field (the topmost one, which
 * is the one this node prepended: "X-Ringmail-Id: <32 hex>[; tenant=T][; campaign=C]").
 * Returns 0, or -EINVAL with *why naming the problem (a static string) when the message is not a
 * report this parser understands (wrong type, no boundary, no report part, Feedback-Type or Status
 * missing). Every field is copied into the fixed buffers of struct ingress_report, cut at their size,
 * with control bytes made spaces: nothing in it holds CR, LF or NUL.
 * Bounded: at most INGRESS_REPORT_MAX_PARTS parts, INGRESS_REPORT_MAX_FIELDS fields per header block,
 * INGRESS_REPORT_MAX_FIELD bytes of an unfolded field; one level of multipart (the report's own); the
 * work is linear in the input. Pure (no I/O, no allocation), thread-safe; input is untrusted peer data
 * and is never read past len.
 */
#ifndef RINGMAIL_INGRESS_REPORT_H
#define RINGMAIL_INGRESS_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#define INGRESS_REPORT_MAX_PARTS 16
#define INGRESS_REPORT_MAX_FIELDS 256
#define INGRESS_REPORT_MAX_FIELD 2048
#define INGRESS_REPORT_ADDR 256
#define INGRESS_REPORT_TEXT 512
#define INGRESS_REPORT_ID_LEN 32 /* the hex message id of X-Ringmail-Id */

enum ingress_report_kind {
    INGRESS_REPORT_NONE = 0,
    INGRESS_REPORT_ARF = 1, /* report-type=feedback-report */
    INGRESS_REPORT_DSN = 2, /* report-type=delivery-status */
};

struct ingress_report {
    enum ingress_report_kind kind;
    /* ARF (RFC 5965 3.1) */
    char feedback_type[64];
    char user_agent[INGRESS_REPORT_TEXT];
    char version[16];
    char orig_rcpt[INGRESS_REPORT_ADDR];   /* Original-Rcpt-To, or the DSN's Final-Recipient address */
    char orig_sender[INGRESS_REPORT_ADDR]; /* Original-Mail-From */
    char arrival_date[128];
    char reporting_mta[INGRESS_REPORT_ADDR]; /* the name after "dns;" (both kinds) */
    char source_ip[64];
    /* DSN (RFC 3464 2.3) */
    char dsn_orig_rcpt[INGRESS_REPORT_ADDR]; /* Original-Recipient, when given */
    char action[32];
    char status[16]; /* "5.1.1" */
    char diagnostic[INGRESS_REPORT_TEXT]; /* Diagnostic-Code after "smtp;" */
    char remote_mta[INGRESS_REPORT_ADDR];
    /* the returned original's headers */
    char message_id[INGRESS_REPORT_TEXT]; /* its Message-ID */
    char ring_id[INGRESS_REPORT_ID_LEN + 1]; /* X-Ringmail-Id: our message id, "" when absent or malformed */
    char tenant[65], campaign[65];           /* its tenant= and campaign= */
};

int ingress_report_parse(const char *msg, size_t len, struct ingress_report *out, const char **why);
/* ingress_report_kind_name - "arf", "dsn" (the fbl.kind metadata value), NULL for NONE */
const char *ingress_report_kind_name(enum ingress_report_kind k);

#endif
