/*
 * smtp_data - the DATA/BDAT stream scanner: end of data, dot-unstuffing and the facts policy needs
 *
 * smtp_data_init() prepares a scanner in caller storage for one DATA (or BDAT) transfer.
 * smtp_data_scan() takes the next received bytes, in chunks cut anywhere: the results are the same
 *   whether the stream comes one byte at a time or all at once. It writes the un-stuffed body into
 *   `out` and says how many input bytes it consumed; once it has seen the end of data it stops right
 *   after it, so the bytes that follow (pipelined commands) stay with the caller for the command parser.
 *   Returns 0 or -EINVAL (bad arguments). Never reads past `len`, never writes past `out_cap`.
 *
 * End of data (RFC 5321 4.1.1.4): only CRLF "." CRLF, or "." CRLF as the very first line. A lone CR or
 * LF anywhere ("\n.\n", "\r.\r", "\r\n.\n", ...) is flagged bare_cr / bare_lf and never ends the data
 * (SMUG-01): the session reads on to the real end, then fails the transaction. A line is ended by CRLF
 * only; dot-unstuffing drops the first octet of a line when it is "." (4.5.2). The body keeps the CRLF
 * of its last line and loses the terminating "." CRLF.
 *
 * Reported (valid at any time, final once `done`):
 *   size       body octets after un-stuffing, counted on past max_size (LIM-06)
 *   too_big    size went past max_size; from then on nothing more is written to `out`, so a huge
 *              message costs no memory while it is read to its end
 *   max_line   longest line as received, with its CRLF; long_line when over SMTP_DATA_LINE_MAX
 *   nul, eightbit   a NUL / an octet >= 0x80 was received (NUL-01, EBIT-01)
 *   received   "Received:" header fields (name case-insensitive, blanks before the colon allowed) in
 *              the header section, which ends at the first empty line (LOOP-01)
 *
 * SMTP_DATA_BDAT: no end-of-data and no dot handling (BDAT chunks are counted by the caller); every
 * byte is body, and the same facts are collected. `done` is never set.
 */
#ifndef RINGMAIL_SMTP_DATA_H
#define RINGMAIL_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_DATA_LINE_MAX 1000 /* RFC 5321 4.5.3.1.6, octets including CRLF */

#define SMTP_DATA_BDAT 0x1u

struct smtp_data {
    /* results */
    bool done;
    bool bare_cr;
    bool bare_lf;
    bool nul;
    bool eightbit;
    bool too_big;
    bool long_line;
    uint64_t size;
    uint64_t max_line;
    uint32_t received;

    /* scanner state: private */
    uint64_t max_size;
    unsigned flags;
    int state;
    uint64_t line_len;
    /* header section tracking, on the un-stuffed stream */
    bool hdr_done;
    bool hdr_prev_cr;
    uint8_t hdr_match;
    uint64_t hdr_line_len;
};

/* smtp_data_init - a fresh scanner; max_size is the most body octets written out (SIZE limit) */
void smtp_data_init(struct smtp_data *d, uint64_t max_size, unsigned flags);

/*
 * smtp_data_scan - scan in[0..len). *consumed = input octets used; *produced = octets written to
 * out. out may be NULL to discard the body (facts are still collected); otherwise out_cap must be at
 * least 2, and scanning stops early when out has fewer than 2 octets of room: call again with the
 * rest. After `done`, further calls consume nothing.
 */
int smtp_data_scan(struct smtp_data *d, const void *in, size_t len, void *out, size_t out_cap,
                   size_t *consumed, size_t *produced);

#endif
