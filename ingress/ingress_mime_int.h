/*
 * ingress_mime_int - the encoders behind ingress_mime (ingress_mime_enc.c); internal to the library
 *
 * Every function takes peer text and either appends a safe encoding of it to `out` or returns false
 * with the reason in `why` (a static string).
 */
#ifndef RINGMAIL_INGRESS_MIME_INT_H
#define RINGMAIL_INGRESS_MIME_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

#define MIME_LINE_MAX 998 /* RFC 5322 2.1.1 */

/* mime_header_name_ok - printable ASCII but ':' (RFC 5322 2.2), 1..76 octets */
bool mime_header_name_ok(const char *name);
/* mime_text_ok - no CR, LF or NUL: a value that may go into a header after encoding */
bool mime_text_ok(const char *s, size_t n);
/* mime_header - "Name: value\r\n"; non-ASCII values as RFC 2047 encoded words, folded */
bool mime_header(struct buf *out, const char *name, const char *value, size_t n, const char **why);
/* mime_mailbox - a display name and an address: `"Name" <addr>`, the name encoded when not ASCII */
void mime_mailbox(struct buf *out, const char *name, const char *addr);
/* mime_body - text as 7bit (ASCII, short lines) or quoted-printable; appends the CTE header line and body */
void mime_body(struct buf *out, const char *ctype, const char *text, size_t n);
/* mime_base64 - base64 in 76-column lines, CRLF */
void mime_base64(struct buf *out, const unsigned char *data, size_t n);
/* mime_base64_decode - standard base64 (whitespace ignored, padding required); false when invalid */
bool mime_base64_decode(const char *in, size_t n, struct buf *out);
/* mime_param - ` name="value"` (ASCII) or ` name*=UTF-8''pct` (RFC 2231); false when the value has controls */
bool mime_param(struct buf *out, const char *name, const char *value);
/* mime_random_hex - 2*n hex digits of getrandom() into out (NUL-terminated; out has 2n+1 bytes) */
void mime_random_hex(char *out, size_t n);

#endif
