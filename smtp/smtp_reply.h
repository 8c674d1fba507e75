/*
 * smtp_reply - incremental parser for SMTP server replies (RFC 5321 4.2, enhanced codes RFC 2034/3463)
 *
 * smtp_reply_init() sets the limits; smtp_reply_feed() consumes server octets in any split (one at a
 * time works) and stops after each complete line, so the caller can look at every line of a multi-line
 * reply (EHLO keywords) while only a bounded prefix of it is ever stored.
 *
 * Grammar accepted: "CODE-text" continuation lines, then "CODE text" or "CODE" alone as the last line.
 * CODE is three digits, the first 2..5. Lines end with CRLF; a bare LF also ends a line (a CR before it
 * is dropped) because deployed servers send them and refusing them would only defer mail.
 * Refused, with SMTP_REPLY_ERROR and p->err saying why: a line longer than line_max octets (without
 * its line end), more than lines_max lines in one reply, a short line, a non-digit code, a code that
 * changes between lines, anything other than '-' or ' ' after the code. After an error the parser
 * refuses everything until smtp_reply_reset(): the connection is out of sync and must be closed.
 *
 * Memory: none is allocated; a reply of any length costs the fixed struct. The kept text is the first
 * SMTP_REPLY_KEEP_LINES lines joined by " / ", control octets replaced by '?', truncated to
 * SMTP_REPLY_TEXT_MAX - 1 octets; each line's own text is kept up to SMTP_REPLY_LINE_KEEP octets.
 * Enhanced status code: taken from the first line when its text starts with "C.SSS.DDD" followed by a
 * space or the end, and C equals the reply code's first digit; it is then removed from the kept text
 * of every line that repeats it.
 */
#ifndef RINGMAIL_SMTP_REPLY_H
#define RINGMAIL_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_REPLY_TEXT_MAX 256
#define SMTP_REPLY_ENH_MAX 12 /* "5.123.456" and NUL */
#define SMTP_REPLY_KEEP_LINES 4
#define SMTP_REPLY_LINE_KEEP 160

enum smtp_reply_status {
    SMTP_REPLY_ERROR = -1, /* protocol error, p->err set; sticky */
    SMTP_REPLY_MORE = 0,   /* all input consumed, no line completed */
    SMTP_REPLY_LINE = 1,   /* a continuation line completed: smtp_reply_line_text() */
    SMTP_REPLY_DONE = 2,   /* the last line completed: p->reply holds the whole reply */
};

struct smtp_reply {
    int code;
    char enhanced[SMTP_REPLY_ENH_MAX]; /* "" when absent */
    char text[SMTP_REPLY_TEXT_MAX];
    unsigned lines;
};

struct smtp_reply_parser {
    size_t line_max;
    unsigned lines_max;
    const char *err;
    bool done; /* the previous feed ended a reply: the next octet starts a new one */
    size_t line_len;
    bool line_cr;                        /* the last octet of the current line was CR */
    char line[SMTP_REPLY_LINE_KEEP + 4]; /* prefix of the current line, code included */
    size_t text_len;
    struct smtp_reply reply;
    /* the last completed line's text (after code and separator, enhanced code not removed) */
    const char *last_text;
    size_t last_text_len;
};

/* smtp_reply_init - line_max octets per line (0: 2048), lines_max lines per reply (0: 256) */
void smtp_reply_init(struct smtp_reply_parser *p, size_t line_max, unsigned lines_max);
/* smtp_reply_reset - forget any partial reply and a sticky error (after STARTTLS, or a new connection) */
void smtp_reply_reset(struct smtp_reply_parser *p);

/*
 * smtp_reply_feed - consume octets up to the end of the next line; *used = octets consumed.
 * Returns an enum smtp_reply_status. On MORE all of len was used.
 */
int smtp_reply_feed(struct smtp_reply_parser *p, const char *buf, size_t len, size_t *used);

/* smtp_reply_line_text - the last completed line's text, borrowed until the next feed */
const char *smtp_reply_line_text(const struct smtp_reply_parser *p, size_t *len);

/*
 * smtp_reply_keyword - an EHLO reply line's text t[0..n) starts with the extension keyword kw (ASCII
 * case-insensitive) followed by a space or its end: strlen(kw), else 0
 */
size_t smtp_reply_keyword(const char *t, size_t n, const char *kw);

#endif
