/*
 * smtp_cmd - SMTP command lines and ESMTP parameters (RFC 5321, 1870, 3461, 6152, 6531, 4954)
 *
 * Pure functions over caller memory: no allocation, no sockets, no global state. Everything they read
 * comes from a peer and is treated as hostile; they never read past `len` and never write past the
 * fixed buffers of their output structs. Output strings are NUL-terminated and never contain CR, LF,
 * NUL or other control bytes, so they may go into headers and records as they are (INJ-01).
 *
 * smtp_cmd_parse() takes one command line WITHOUT its CRLF and fills a struct smtp_cmd.
 *   Returns 0, or -EINVAL with cmd->err saying why; smtp_cmd_err_reply() turns that into the SMTP
 *   reply the session sends (500/501/553/555...). The line may hold any byte: NUL, CR or LF give
 *   SMTP_CMD_ERR_BAD_CHAR (501), a line longer than SMTP_CMD_LINE_MAX octets with its CRLF gives
 *   SMTP_CMD_ERR_TOO_LONG (500). Verbs are case-insensitive. The grammar is RFC 5321's, strictly:
 *   single spaces, angle brackets required, no trailing blanks; the one tolerance is a space after
 *   "FROM:"/"TO:", which many deployed clients send. Paths and the EHLO domain go through smtp_addr.h.
 *   MAIL: the SMTPUTF8 parameter on the same line allows UTF-8 in its path. RCPT: UTF-8 is allowed
 *   only when the caller passes SMTP_CMD_UTF8 (the transaction's MAIL had SMTPUTF8).
 *   Parameters valid for the verb: MAIL SIZE BODY SMTPUTF8 RET ENVID AUTH; RCPT NOTIFY ORCPT. Any other
 *   keyword, or a known one on the wrong verb, is SMTP_CMD_ERR_PARAM_UNKNOWN (555); a repeated one or a
 *   bad value is SMTP_CMD_ERR_PARAM_BAD (501). Whether a parameter's extension was advertised, SIZE
 *   against the limit, BODY=BINARYMIME without BDAT: the session decides, not the parser.
 *   VRFY/HELP/NOOP arguments and AUTH's initial response are borrowed pointers into `line`.
 *
 * Limits (RFC 5321 4.5.3.1): command line 512 octets with CRLF. The DSN (RFC 3461) line-length
 * increases are not granted: parameters must fit the 512.
 */
#ifndef RINGMAIL_SMTP_CMD_H
#define RINGMAIL_SMTP_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp/smtp_addr.h"

#define SMTP_CMD_LINE_MAX 512  /* octets including CRLF */
#define SMTP_CMD_ENVID_MAX 100 /* RFC 3461 4.4 */
#define SMTP_CMD_XTEXT_MAX 500 /* ORCPT and AUTH= values: bounded by the line anyway */
#define SMTP_CMD_AUTH_MECH_MAX 20

/* flags for smtp_cmd_parse() */
#define SMTP_CMD_UTF8 0x1u /* UTF-8 allowed in the RCPT address (SMTPUTF8 transaction) */

enum smtp_cmd_verb {
    SMTP_CMD_NONE = 0,
    SMTP_CMD_EHLO = 1,
    SMTP_CMD_HELO = 2,
    SMTP_CMD_MAIL = 3,
    SMTP_CMD_RCPT = 4,
    SMTP_CMD_DATA = 5,
    SMTP_CMD_BDAT = 6,
    SMTP_CMD_RSET = 7,
    SMTP_CMD_NOOP = 8,
    SMTP_CMD_QUIT = 9,
    SMTP_CMD_VRFY = 10,
    SMTP_CMD_HELP = 11,
    SMTP_CMD_STARTTLS = 12,
    SMTP_CMD_AUTH = 13,
};

enum smtp_cmd_err {
    SMTP_CMD_ERR_NONE = 0,
    SMTP_CMD_ERR_TOO_LONG = 1,      /* 500 5.5.2: line over SMTP_CMD_LINE_MAX */
    SMTP_CMD_ERR_BAD_CHAR = 2,      /* 501 5.5.2: NUL, bare CR or LF in the line */
    SMTP_CMD_ERR_UNKNOWN_VERB = 3,  /* 500 5.5.1 */
    SMTP_CMD_ERR_SYNTAX = 4,        /* 501 5.5.4: arguments missing, extra or malformed */
    SMTP_CMD_ERR_BAD_DOMAIN = 5,    /* 501 5.5.4: EHLO/HELO argument */
    SMTP_CMD_ERR_ADDR_SYNTAX = 6,   /* 501 5.1.7 (MAIL) / 5.1.3 (RCPT) */
    SMTP_CMD_ERR_ADDR_TOO_LONG = 7, /* 501 5.1.7 / 5.1.3: local, domain or path over its limit */
    SMTP_CMD_ERR_ADDR_UTF8 = 8,     /* 553 5.6.7: UTF-8 address without SMTPUTF8 (RFC 6531 3.7.4) */
    SMTP_CMD_ERR_PARAM_UNKNOWN = 9, /* 555 5.5.4 */
    SMTP_CMD_ERR_PARAM_BAD = 10,    /* 501 5.5.4: bad value or repeated parameter */
    SMTP_CMD_ERR__COUNT = 11,
};

enum smtp_cmd_body {
    SMTP_CMD_BODY_NONE = 0, /* no BODY= given */
    SMTP_CMD_BODY_7BIT = 1,
    SMTP_CMD_BODY_8BITMIME = 2,
    SMTP_CMD_BODY_BINARYMIME = 3,
};

enum smtp_cmd_ret {
    SMTP_CMD_RET_NONE = 0,
    SMTP_CMD_RET_FULL = 1,
    SMTP_CMD_RET_HDRS = 2,
};

/* struct smtp_cmd_params.seen: which parameters were given */
#define SMTP_CMD_PARAM_SIZE 0x01u
#define SMTP_CMD_PARAM_BODY 0x02u
#define SMTP_CMD_PARAM_SMTPUTF8 0x04u
#define SMTP_CMD_PARAM_RET 0x08u
#define SMTP_CMD_PARAM_ENVID 0x10u
#define SMTP_CMD_PARAM_AUTH 0x20u
#define SMTP_CMD_PARAM_NOTIFY 0x40u
#define SMTP_CMD_PARAM_ORCPT 0x80u

/* struct smtp_cmd_params.notify */
#define SMTP_CMD_NOTIFY_NEVER 0x1u
#define SMTP_CMD_NOTIFY_SUCCESS 0x2u
#define SMTP_CMD_NOTIFY_FAILURE 0x4u
#define SMTP_CMD_NOTIFY_DELAY 0x8u

struct smtp_cmd_params {
    uint32_t seen;
    /* SIZE=: a value past UINT64_MAX (up to the 20 digits RFC 1870 allows) saturates to UINT64_MAX */
    uint64_t size;
    enum smtp_cmd_body body;
    enum smtp_cmd_ret ret;
    uint32_t notify;
    /* xtext values are kept encoded, as sent (printable ASCII, validated) */
    char envid[SMTP_CMD_ENVID_MAX + 1];
    char orcpt[SMTP_CMD_XTEXT_MAX + 1]; /* "addr-type;xtext" */
    char auth[SMTP_CMD_XTEXT_MAX + 1];  /* AUTH= value (RFC 4954 5): xtext or "<>" */
};

struct smtp_cmd {
    enum smtp_cmd_verb verb; /* set whenever the verb was recognised, also on argument errors */
    enum smtp_cmd_err err;
    /* EHLO/HELO: the argument as written (validated); flags LITERAL only */
    char helo[SMTP_ADDR_DOMAIN_MAX + 1];
    uint32_t helo_flags;
    /* MAIL/RCPT */
    struct smtp_addr addr;
    struct smtp_cmd_params params;
    /* BDAT */
    uint64_t bdat_size;
    bool bdat_last;
    /* AUTH: mechanism uppercased; initial response borrowed from the line ("=" means empty) */
    char auth_mech[SMTP_CMD_AUTH_MECH_MAX + 1];
    /* VRFY/HELP/NOOP argument or AUTH initial response: borrowed, NULL when absent */
    const char *arg;
    size_t arg_len;
};

struct smtp_cmd_reply {
    int code;
    const char *status; /* enhanced status code, "5.5.4" */
    const char *text;
};

/* smtp_cmd_parse - one line without CRLF; 0 or -EINVAL with cmd->err set */
int smtp_cmd_parse(const char *line, size_t len, unsigned flags, struct smtp_cmd *cmd);

/* smtp_cmd_err_reply - the reply for a parse error; verb picks 5.1.7 (MAIL) or 5.1.3 (RCPT) */
const struct smtp_cmd_reply *smtp_cmd_err_reply(enum smtp_cmd_err err, enum smtp_cmd_verb verb);

/* smtp_cmd_verb_name - "MAIL" etc. for logs; "?" when unknown */
const char *smtp_cmd_verb_name(enum smtp_cmd_verb verb);

#endif
