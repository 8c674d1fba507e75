/*
 * ingress_parse - SMTP command lines, paths and ESMTP parameters (RFC 5321, 1870, 3461, 6152, 6531, 4954)
 *
 * Pure functions over caller memory: no allocation, no sockets, no global state. Everything they read
 * comes from a peer and is treated as hostile; they never read past `len` and never write past the
 * fixed buffers of their output structs. Output strings are NUL-terminated and never contain CR, LF,
 * NUL or other control bytes, so they may go into headers and records as they are (INJ-01).
 *
 * ingress_parse_command() takes one command line WITHOUT its CRLF and fills a struct ingress_cmd.
 *   Returns 0, or -EINVAL with cmd->err saying why; ingress_parse_reply() turns that into the SMTP
 *   reply the session sends (500/501/553/555...). The line may hold any byte: NUL, CR or LF give
 *   INGRESS_PERR_BAD_CHAR (501), a line longer than INGRESS_CMD_LINE_MAX octets with its CRLF gives
 *   INGRESS_PERR_TOO_LONG (500). Verbs are case-insensitive. The grammar is RFC 5321's, strictly:
 *   single spaces, angle brackets required, no trailing blanks; the one tolerance is a space after
 *   "FROM:"/"TO:", which many deployed clients send.
 *   MAIL: the SMTPUTF8 parameter on the same line allows UTF-8 in its path. RCPT: UTF-8 is allowed
 *   only when the caller passes INGRESS_PARSE_UTF8 (the transaction's MAIL had SMTPUTF8).
 *   Parameters valid for the verb: MAIL SIZE BODY SMTPUTF8 RET ENVID AUTH; RCPT NOTIFY ORCPT. Any other
 *   keyword, or a known one on the wrong verb, is INGRESS_PERR_PARAM_UNKNOWN (555); a repeated one or a
 *   bad value is INGRESS_PERR_PARAM_BAD (501). Whether a parameter's extension was advertised, SIZE
 *   against the limit, BODY=BINARYMIME without BDAT: the session decides, not the parser.
 *   VRFY/HELP/NOOP arguments and AUTH's initial response are borrowed pointers into `line`.
 * ingress_parse_path() parses one "<...>" path (MAIL/RCPT argument) at the start of a buffer.
 * ingress_parse_domain() checks a whole buffer as a Domain or an address literal (EHLO argument).
 *
 * Address classification for the relay check (RELAY-01/02), in struct ingress_addr.flags:
 * source route given (and dropped: RFC 5321 says accept and ignore), '%' or '!' in the local part,
 * '@' inside a quoted local part, address literal, trailing dot on the domain (accepted, removed from
 * `domain` and flagged so "example.com." cannot slip past a string compare), UTF-8 present.
 *
 * Limits (RFC 5321 4.5.3.1): local part 64, domain 255, path 256 octets with its brackets and route
 * (254 for the mailbox), command line 512 with CRLF. The DSN (RFC 3461) line-length increases are not
 * granted: parameters must fit the 512.
 */
#ifndef RINGMAIL_INGRESS_PARSE_H
#define RINGMAIL_INGRESS_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INGRESS_CMD_LINE_MAX 512 /* octets including CRLF */
#define INGRESS_LOCAL_MAX 64
#define INGRESS_DOMAIN_MAX 255
#define INGRESS_PATH_MAX 256    /* "<" [route ":"] mailbox ">" */
#define INGRESS_MAILBOX_MAX 254 /* local "@" domain, as written */
#define INGRESS_ENVID_MAX 100   /* RFC 3461 4.4 */
#define INGRESS_XTEXT_MAX 500   /* ORCPT and AUTH= values: bounded by the line anyway */
#define INGRESS_AUTH_MECH_MAX 20

/* flags for ingress_parse_command() / ingress_parse_path() */
#define INGRESS_PARSE_UTF8 0x1u          /* UTF-8 allowed in addresses (SMTPUTF8 transaction) */
#define INGRESS_PARSE_NULL_OK 0x2u       /* path: "<>" accepted (reverse-path) */
#define INGRESS_PARSE_POSTMASTER_OK 0x4u /* path: bare "<Postmaster>" accepted (RCPT) */

enum ingress_verb {
    INGRESS_VERB_NONE = 0,
    INGRESS_VERB_EHLO = 1,
    INGRESS_VERB_HELO = 2,
    INGRESS_VERB_MAIL = 3,
    INGRESS_VERB_RCPT = 4,
    INGRESS_VERB_DATA = 5,
    INGRESS_VERB_BDAT = 6,
    INGRESS_VERB_RSET = 7,
    INGRESS_VERB_NOOP = 8,
    INGRESS_VERB_QUIT = 9,
    INGRESS_VERB_VRFY = 10,
    INGRESS_VERB_HELP = 11,
    INGRESS_VERB_STARTTLS = 12,
    INGRESS_VERB_AUTH = 13,
};

enum ingress_perr {
    INGRESS_PERR_NONE = 0,
    INGRESS_PERR_TOO_LONG = 1,      /* 500 5.5.2: line over INGRESS_CMD_LINE_MAX */
    INGRESS_PERR_BAD_CHAR = 2,      /* 501 5.5.2: NUL, bare CR or LF in the line */
    INGRESS_PERR_UNKNOWN_VERB = 3,  /* 500 5.5.1 */
    INGRESS_PERR_SYNTAX = 4,        /* 501 5.5.4: arguments missing, extra or malformed */
    INGRESS_PERR_BAD_DOMAIN = 5,    /* 501 5.5.4: EHLO/HELO argument */
    INGRESS_PERR_ADDR_SYNTAX = 6,   /* 501 5.1.7 (MAIL) / 5.1.3 (RCPT) */
    INGRESS_PERR_ADDR_TOO_LONG = 7, /* 501 5.1.7 / 5.1.3: local, domain or path over its limit */
    INGRESS_PERR_ADDR_UTF8 = 8,     /* 553 5.6.7: UTF-8 address without SMTPUTF8 (RFC 6531 3.7.4) */
    INGRESS_PERR_PARAM_UNKNOWN = 9, /* 555 5.5.4 */
    INGRESS_PERR_PARAM_BAD = 10,    /* 501 5.5.4: bad value or repeated parameter */
    INGRESS_PERR__COUNT = 11,
};

/* struct ingress_addr.flags */
#define INGRESS_ADDR_NULL 0x001u         /* "<>" */
#define INGRESS_ADDR_POSTMASTER 0x002u   /* bare "<Postmaster>", no domain */
#define INGRESS_ADDR_ROUTE 0x004u        /* source route "<@a,@b:...>" was given and dropped */
#define INGRESS_ADDR_QUOTED 0x008u       /* local part is a Quoted-string */
#define INGRESS_ADDR_PERCENT 0x010u      /* '%' in the local part (quoted or not) */
#define INGRESS_ADDR_BANG 0x020u         /* '!' in the local part */
#define INGRESS_ADDR_QUOTED_AT 0x040u    /* '@' inside the quoted local part */
#define INGRESS_ADDR_LITERAL 0x080u      /* domain is an address literal ([1.2.3.4], [IPv6:...]) */
#define INGRESS_ADDR_TRAILING_DOT 0x100u /* domain was written with a trailing dot */
#define INGRESS_ADDR_UTF8 0x200u         /* non-ASCII (valid UTF-8) in local part or domain */

struct ingress_addr {
    uint32_t flags;
    /* local part exactly as written, quotes and backslashes included */
    char local[INGRESS_LOCAL_MAX + 1];
    /* ASCII letters lowercased, trailing dot removed; a literal keeps its brackets ("[ipv6:::1]") */
    char domain[INGRESS_DOMAIN_MAX + 1];
    /* local "@" domain as written, route dropped, trailing dot kept; "" for <>, local for Postmaster */
    char mailbox[INGRESS_MAILBOX_MAX + 1];
    uint16_t local_len;
    uint16_t domain_len;
    uint16_t mailbox_len;
};

enum ingress_body {
    INGRESS_BODY_NONE = 0, /* no BODY= given */
    INGRESS_BODY_7BIT = 1,
    INGRESS_BODY_8BITMIME = 2,
    INGRESS_BODY_BINARYMIME = 3,
};

enum ingress_ret {
    INGRESS_RET_NONE = 0,
    INGRESS_RET_FULL = 1,
    INGRESS_RET_HDRS = 2,
};

/* struct ingress_params.seen: which parameters were given */
#define INGRESS_PARAM_SIZE 0x01u
#define INGRESS_PARAM_BODY 0x02u
#define INGRESS_PARAM_SMTPUTF8 0x04u
#define INGRESS_PARAM_RET 0x08u
#define INGRESS_PARAM_ENVID 0x10u
#define INGRESS_PARAM_AUTH 0x20u
#define INGRESS_PARAM_NOTIFY 0x40u
#define INGRESS_PARAM_ORCPT 0x80u

/* struct ingress_params.notify */
#define INGRESS_NOTIFY_NEVER 0x1u
#define INGRESS_NOTIFY_SUCCESS 0x2u
#define INGRESS_NOTIFY_FAILURE 0x4u
#define INGRESS_NOTIFY_DELAY 0x8u

struct ingress_params {
    uint32_t seen;
    /* SIZE=: a value past UINT64_MAX (up to the 20 digits RFC 1870 allows) saturates to UINT64_MAX */
    uint64_t size;
    enum ingress_body body;
    enum ingress_ret ret;
    uint32_t notify;
    /* xtext values are kept encoded, as sent (printable ASCII, validated) */
    char envid[INGRESS_ENVID_MAX + 1];
    char orcpt[INGRESS_XTEXT_MAX + 1]; /* "addr-type;xtext" */
    char auth[INGRESS_XTEXT_MAX + 1];  /* AUTH= value (RFC 4954 5): xtext or "<>" */
};

struct ingress_cmd {
    enum ingress_verb verb; /* set whenever the verb was recognised, also on argument errors */
    enum ingress_perr err;
    /* EHLO/HELO: the argument as written (validated); flags LITERAL only */
    char helo[INGRESS_DOMAIN_MAX + 1];
    uint32_t helo_flags;
    /* MAIL/RCPT */
    struct ingress_addr addr;
    struct ingress_params params;
    /* BDAT */
    uint64_t bdat_size;
    bool bdat_last;
    /* AUTH: mechanism uppercased; initial response borrowed from the line ("=" means empty) */
    char auth_mech[INGRESS_AUTH_MECH_MAX + 1];
    /* VRFY/HELP/NOOP argument or AUTH initial response: borrowed, NULL when absent */
    const char *arg;
    size_t arg_len;
};

struct ingress_reply {
    int code;
    const char *status; /* enhanced status code, "5.5.4" */
    const char *text;
};

/* ingress_parse_command - one line without CRLF; 0 or -EINVAL with cmd->err set */
int ingress_parse_command(const char *line, size_t len, unsigned flags, struct ingress_cmd *cmd);

/*
 * ingress_parse_path - a path "<...>" at the start of s[0..len); *used = octets consumed (through '>').
 * Returns 0 or -EINVAL with *err set (INGRESS_PERR_ADDR_*). Without INGRESS_PARSE_UTF8 a path with
 * valid UTF-8 gives INGRESS_PERR_ADDR_UTF8; invalid UTF-8 is always INGRESS_PERR_ADDR_SYNTAX.
 */
int ingress_parse_path(const char *s, size_t len, unsigned flags, struct ingress_addr *out, size_t *used,
                       enum ingress_perr *err);

/*
 * ingress_parse_domain - all of s[0..len) is an ASCII Domain (no trailing dot) or an address literal.
 * Returns 0 and sets *literal, or -EINVAL.
 */
int ingress_parse_domain(const char *s, size_t len, bool *literal);

/* ingress_parse_reply - the reply for a parse error; verb picks 5.1.7 (MAIL) or 5.1.3 (RCPT) */
const struct ingress_reply *ingress_parse_reply(enum ingress_perr err, enum ingress_verb verb);

/* ingress_parse_verb_name - "MAIL" etc. for logs; "?" when unknown */
const char *ingress_parse_verb_name(enum ingress_verb verb);

#endif
