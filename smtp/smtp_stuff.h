/*
 * smtp_stuff - a message body as it goes on the wire after DATA (RFC 5321 4.5.2, 2.3.8)
 *
 * smtp_stuff_init() starts one body; smtp_stuff_next() hands out the next piece of the wire form:
 * a run of the caller's body, or a fix-up from static storage. The body is never copied, so a sender
 * can stream it (egress) or concatenate the pieces once (ringmail-gen).
 * The wire form: a "." doubled at the start of every line, every bare LF and bare CR made CRLF, a
 * missing last line end added; with `end`, the end of data "." CRLF follows as the last piece.
 * Pieces are never empty; the body is BORROWED until the last piece has been handed out.
 * smtp_stuff_scan() gives what a sender declares before sending: 8-bit octets (BODY=8BITMIME) and the
 * RFC 1870 SIZE, the octets after line-end repair and before stuffing.
 */
#ifndef RINGMAIL_SMTP_STUFF_H
#define RINGMAIL_SMTP_STUFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct smtp_stuff {
    const char *body;
    size_t len;
    size_t pos;
    bool bol;  /* the next octet starts a line */
    bool end;  /* hand out the end of data after the body */
    bool done; /* the last piece has been handed out */
};

/* smtp_stuff_init - body[0..len) to be sent; end: finish with the end of data */
void smtp_stuff_init(struct smtp_stuff *st, const char *body, size_t len, bool end);

/* smtp_stuff_next - the next piece and its length; NULL with *len 0 after the last (st->done set) */
const char *smtp_stuff_next(struct smtp_stuff *st, size_t *len);

/* smtp_stuff_scan - *eightbit: an octet >= 0x80 in body[0..len); *size: the RFC 1870 size */
void smtp_stuff_scan(const char *body, size_t len, bool *eightbit, uint64_t *size);

#endif
