/*
 * dkim_canon - DKIM canonicalisation of header fields and of the body (RFC 6376 section 3.4)
 *
 * dkim_canon_header() writes one header field in canonical form: "simple" leaves it as written,
 * "relaxed" lower-cases the name, unfolds, turns each run of SP/HTAB into one SP and drops the
 * whitespace around the colon and at the end of the value. `field` is the whole field as in the
 * message (name, colon, value with its folding line ends), without the line end that closes it.
 *
 * The body canonicaliser streams: feed it the body in pieces of any size (a CR at the end of one
 * piece and the LF starting the next are one line end), then finish it. It hands out the canonical
 * bytes through its sink (in runs of up to DKIM_CANON_OUT bytes, never empty):
 *   simple:  the body unchanged, except that trailing empty lines are removed and a body that does
 *            not end in CRLF gets one; an empty body is CRLF (3.4.3)
 *   relaxed: whitespace at the end of each line removed, each run of SP/HTAB inside a line made one
 *            SP, trailing empty lines removed, a missing final CRLF added; an empty body stays empty
 *            (3.4.4)
 * Line ends: CRLF, and also a bare CR or a bare LF, each counts as one CRLF. That is how smtp_stuff
 * (smtp/smtp_stuff.h) puts them on the wire, and the signature covers the bytes the receiver gets.
 * Header fields follow the same rule. No allocation in the body path; nothing can fail.
 */
#ifndef RINGMAIL_DKIM_CANON_H
#define RINGMAIL_DKIM_CANON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define DKIM_CANON_OUT 4096 /* the body canonicaliser's output run */

enum dkim_canon {
    DKIM_CANON_SIMPLE = 0,
    DKIM_CANON_RELAXED = 1,
};

/* dkim_canon_sink - receives canonical body bytes (n > 0) */
typedef void (*dkim_canon_sink)(void *ctx, const char *p, size_t n);

struct dkim_canon_body {
    enum dkim_canon mode;
    dkim_canon_sink sink;
    void *ctx;
    uint64_t empty_lines; /* empty lines seen and not yet written (dropped if nothing follows) */
    bool cr;              /* the last byte was a CR: the line ended, an LF right after belongs to it */
    bool in_line;         /* the current line has content written */
    bool wsp;             /* relaxed: whitespace seen after the last content byte of the line */
    bool any;             /* something was written */
    size_t n_out;
    char out[DKIM_CANON_OUT];
};

/* dkim_canon_parse - "simple" or "relaxed" (exactly); false otherwise */
bool dkim_canon_parse(const char *s, enum dkim_canon *out);
const char *dkim_canon_name(enum dkim_canon c);

/* dkim_canon_header - append the canonical form of one field to out, with a CRLF when crlf */
void dkim_canon_header(enum dkim_canon c, const char *field, size_t len, bool crlf, struct buf *out);

void dkim_canon_body_init(struct dkim_canon_body *b, enum dkim_canon mode, dkim_canon_sink sink, void *ctx);
void dkim_canon_body_feed(struct dkim_canon_body *b, const char *p, size_t n);
/* dkim_canon_body_finish - the end of the body: the last bytes go to the sink */
void dkim_canon_body_finish(struct dkim_canon_body *b);

#endif
