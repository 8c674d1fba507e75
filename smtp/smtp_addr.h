/*
 * smtp_addr - SMTP paths and domains: the address grammar (RFC 5321 4.1.2, RFC 6531 3.3)
 *
 * Pure functions over caller memory: no allocation, no sockets, no global state. Everything they read
 * comes from a peer and is treated as hostile; they never read past `len` and never write past the
 * fixed buffers of their output struct. Output strings are NUL-terminated and never contain CR, LF,
 * NUL or other control bytes, so they may go into headers and records as they are (INJ-01).
 *
 * smtp_addr_parse_path() parses one "<...>" path (MAIL/RCPT argument) at the start of a buffer.
 * smtp_addr_parse_domain() checks a whole buffer as a Domain or an address literal (EHLO argument).
 * smtp_addr_check() is the sending side's check of an address before it goes into a command.
 *
 * Address classification for the relay check (RELAY-01/02), in struct smtp_addr.flags:
 * source route given (and dropped: RFC 5321 says accept and ignore), '%' or '!' in the local part,
 * '@' inside a quoted local part, address literal, trailing dot on the domain (accepted, removed from
 * `domain` and `mailbox` and flagged, so "example.com." cannot slip past a string compare, a route or
 * a queue), UTF-8 present.
 *
 * Limits (RFC 5321 4.5.3.1): local part 64, domain 255, path 256 octets with its brackets and route
 * (254 for the mailbox).
 */
#ifndef RINGMAIL_SMTP_ADDR_H
#define RINGMAIL_SMTP_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_ADDR_LOCAL_MAX 64
#define SMTP_ADDR_DOMAIN_MAX 255
#define SMTP_ADDR_PATH_MAX 256    /* "<" [route ":"] mailbox ">" */
#define SMTP_ADDR_MAILBOX_MAX 254 /* local "@" domain, as written */

/* flags for smtp_addr_parse_path() */
#define SMTP_ADDR_PARSE_UTF8 0x1u          /* UTF-8 allowed in addresses (SMTPUTF8 transaction) */
#define SMTP_ADDR_PARSE_NULL_OK 0x2u       /* "<>" accepted (reverse-path) */
#define SMTP_ADDR_PARSE_POSTMASTER_OK 0x4u /* bare "<Postmaster>" accepted (RCPT) */

enum smtp_addr_err {
    SMTP_ADDR_OK = 0,
    SMTP_ADDR_ERR_SYNTAX = 1,   /* malformed */
    SMTP_ADDR_ERR_TOO_LONG = 2, /* local, domain or path over its limit */
    SMTP_ADDR_ERR_UTF8 = 3,     /* UTF-8 address without SMTPUTF8 (RFC 6531 3.7.4) */
};

/* struct smtp_addr.flags */
#define SMTP_ADDR_NULL 0x001u         /* "<>" */
#define SMTP_ADDR_POSTMASTER 0x002u   /* bare "<Postmaster>", no domain */
#define SMTP_ADDR_ROUTE 0x004u        /* source route "<@a,@b:...>" was given and dropped */
#define SMTP_ADDR_QUOTED 0x008u       /* local part is a Quoted-string */
#define SMTP_ADDR_PERCENT 0x010u      /* '%' in the local part (quoted or not) */
#define SMTP_ADDR_BANG 0x020u         /* '!' in the local part */
#define SMTP_ADDR_QUOTED_AT 0x040u    /* '@' inside the quoted local part */
#define SMTP_ADDR_LITERAL 0x080u      /* domain is an address literal ([1.2.3.4], [IPv6:...]) */
#define SMTP_ADDR_TRAILING_DOT 0x100u /* domain was written with a trailing dot */
#define SMTP_ADDR_UTF8 0x200u         /* non-ASCII (valid UTF-8) in local part or domain */

struct smtp_addr {
    uint32_t flags;
    /* local part exactly as written, quotes and backslashes included */
    char local[SMTP_ADDR_LOCAL_MAX + 1];
    /* ASCII letters lowercased, trailing dot removed; a literal keeps its brackets ("[ipv6:::1]") */
    char domain[SMTP_ADDR_DOMAIN_MAX + 1];
    /* local "@" domain as written, route and trailing dot dropped; "" for <>, local for Postmaster */
    char mailbox[SMTP_ADDR_MAILBOX_MAX + 1];
    uint16_t local_len;
    uint16_t domain_len;
    uint16_t mailbox_len;
};

/*
 * smtp_addr_parse_path - a path "<...>" at the start of s[0..len); *used = octets consumed (through '>').
 * Returns 0 or -EINVAL with *err set. Without SMTP_ADDR_PARSE_UTF8 a path with valid UTF-8 gives
 * SMTP_ADDR_ERR_UTF8; invalid UTF-8 is always SMTP_ADDR_ERR_SYNTAX.
 */
int smtp_addr_parse_path(const char *s, size_t len, unsigned flags, struct smtp_addr *out, size_t *used,
                         enum smtp_addr_err *err);

/*
 * smtp_addr_parse_domain - all of s[0..len) is an ASCII Domain (no trailing dot) or an address literal.
 * Returns 0 and sets *literal, or -EINVAL.
 */
int smtp_addr_parse_domain(const char *s, size_t len, bool *literal);

/*
 * smtp_addr_check - a bare address (no brackets) that a client is about to put in MAIL FROM or RCPT TO:
 * 0 when it may go, else the local refusal (553) with *why and, for UTF-8 without SMTPUTF8 (utf8_ok
 * false), *enh "5.6.7" (*enh is left alone otherwise). Refused: control octets, over 254 octets.
 */
int smtp_addr_check(const char *a, bool utf8_ok, const char **enh, const char **why);

#endif
