/*
 * ingress_mime - the HTTP injection request (KumoMTA's /api/inject/v1 JSON) decoded, and the messages
 * it asks for built (docs/http-injection.md)
 *
 * ingress_mime_decode() parses and checks the request's shape: envelope_sender, recipients (each an
 * address checked as RCPT TO would be; a bad one is that recipient's error, not the request's),
 * content (a raw RFC 5322 message as a string, or a builder object), substitutions. Refusals of the
 * whole request come back as -EINVAL with *err (jansson's line and column for bad JSON).
 * ingress_mime_groups() cuts the good recipients into messages: one shared by every recipient without
 * substitutions of their own, one per recipient with them.
 * ingress_mime_build() renders the templates and builds one message (CRLF lines, at most 998 octets
 * each) for a group: a raw content is normalised and checked; a builder object becomes a MIME message
 * (multipart/alternative, multipart/mixed, quoted-printable or base64, RFC 2047 encoded words, Date
 * and Message-ID). -EINVAL with *err (the recipients' error) when the group's message cannot be made.
 * Pure: no I/O but getrandom() for boundaries and Message-IDs; thread-safe. Everything read comes
 * from the peer: nothing in it can crash, and no CR, LF or NUL from it reaches a header unencoded.
 */
#ifndef RINGMAIL_INGRESS_MIME_H
#define RINGMAIL_INGRESS_MIME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/buf.h"

#define INGRESS_MIME_ADDR_MAX 254
#define INGRESS_MIME_ERR_MAX 256

struct ingress_mime_rcpt {
    const char *email;   /* borrowed from the request's JSON */
    const char *name;    /* NULL when absent */
    const json_t *subst; /* the recipient's substitutions object; NULL when absent or empty */
    bool ok;             /* the address is good */
    bool utf8;           /* the address has non-ASCII (needs SMTPUTF8) */
    char error[INGRESS_MIME_ERR_MAX]; /* why not ok, or why its message could not be built */
};

struct ingress_mime_req {
    json_t *root;
    const char *sender; /* "" for the null sender */
    bool sender_utf8;
    size_t n_rcpts;
    struct ingress_mime_rcpt *rcpts;
    const json_t *content; /* a string or an object */
    const json_t *subst;   /* the top-level substitutions object, or NULL */
};

/* one message: recipients idx[0..n) of the request */
struct ingress_mime_group {
    size_t *idx;
    size_t n;
};

struct ingress_mime_msg {
    struct buf data; /* the message, CRLF lines */
    bool eightbit;   /* octets over 127 in it (8BITMIME) */
    bool utf8;       /* a non-ASCII address in its headers (SMTPUTF8) */
};

int ingress_mime_decode(const char *body, size_t len, uint32_t max_rcpts, struct ingress_mime_req *req, char **err);
void ingress_mime_req_fini(struct ingress_mime_req *req);
/* ingress_mime_groups - the messages to build; *out is a heap array of *n groups (free with _groups_free) */
void ingress_mime_groups(const struct ingress_mime_req *req, struct ingress_mime_group **out, size_t *n);
void ingress_mime_groups_free(struct ingress_mime_group *g, size_t n);
int ingress_mime_build(const struct ingress_mime_req *req, const struct ingress_mime_group *g, const char *hostname,
                       time_t now, struct ingress_mime_msg *out, char **err);

#endif
