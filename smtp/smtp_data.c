/*
 * smtp_data - the DATA/BDAT stream scanner (see smtp_data.h)
 *
 * One state per octet of look-behind that matters: the scanner never buffers input, only the CR of
 * a line that began with "." is held back until the next octet says whether it ends the data. So at
 * most two octets are written per octet read, which is why `out` must have 2 octets of room.
 *
 * The fast path (text_run): inside a body line (past the header section, not at a line start) every
 * octet up to the next CR or LF leaves the state alone, so the run is found, and checked for NUL and
 * 8-bit, sixteen octets at a time (smtp_octets_line_run), and copied with one memcpy. The state machine takes the CR/LF and the
 * first octet of each line (where a "." matters); the header section, where Received: fields are
 * counted, goes octet by octet.
 */
#include "smtp/smtp_data.h"

#include <errno.h>
#include <string.h>

#include "smtp/smtp_octets.h"

enum {
    ST_LSTART = 0, /* at the start of a line (after CRLF, or first line) */
    ST_TEXT = 1,   /* inside a line, previous octet not CR */
    ST_CR = 2,     /* previous octet was a CR (already written) */
    ST_DOT = 3,    /* line began with "." (dropped) */
    ST_DOT_CR = 4, /* line began with "." CR; the CR is held back */
    ST_END = 5,
};

#define HDR_FAIL 0xff

void smtp_data_init(struct smtp_data *d, uint64_t max_size, unsigned flags)
{
    memset(d, 0, sizeof(*d));
    d->max_size = max_size;
    d->flags = flags;
    d->state = ST_LSTART;
}

/* hdr_feed - count Received: fields in the header section, on the un-stuffed stream */
static void hdr_feed(struct smtp_data *d, unsigned char c)
{
    static const char name[] = "received";

    if (d->hdr_done)
        return;
    if (c == '\n' && d->hdr_prev_cr) {
        /* a line holding only its CR: the empty line that ends the header section */
        if (d->hdr_line_len == 1)
            d->hdr_done = true;
        d->hdr_line_len = 0;
        d->hdr_match = 0;
        d->hdr_prev_cr = false;
        return;
    }
    d->hdr_prev_cr = c == '\r';
    d->hdr_line_len++;
    if (d->hdr_match < 8) {
        unsigned char l = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
        d->hdr_match = l == (unsigned char)name[d->hdr_match] ? (uint8_t)(d->hdr_match + 1) : HDR_FAIL;
    } else if (d->hdr_match == 8) {
        if (c == ':') {
            if (d->received != UINT32_MAX)
                d->received++;
            d->hdr_match = HDR_FAIL;
        } else if (c != ' ' && c != '\t') {
            d->hdr_match = HDR_FAIL;
        }
    }
}

static void emit(struct smtp_data *d, unsigned char c, unsigned char *out, size_t *o)
{
    if (d->size != UINT64_MAX)
        d->size++;
    if (d->size > d->max_size)
        d->too_big = true;
    else if (out != NULL)
        out[(*o)++] = c;
    hdr_feed(d, c);
}

static void line_end(struct smtp_data *d)
{
    if (d->line_len > d->max_line)
        d->max_line = d->line_len;
    if (d->line_len > SMTP_DATA_LINE_MAX)
        d->long_line = true;
    d->line_len = 0;
}

/* after_cr - the octet that follows a CR which has been written */
static void after_cr(struct smtp_data *d, unsigned char c, unsigned char *out, size_t *o)
{
    if (c == '\n') {
        emit(d, c, out, o);
        line_end(d);
        d->state = ST_LSTART;
        return;
    }
    d->bare_cr = true;
    emit(d, c, out, o);
    d->state = c == '\r' ? ST_CR : ST_TEXT;
}

static void step(struct smtp_data *d, unsigned char c, unsigned char *out, size_t *o)
{
    if (c == '\0')
        d->nul = true;
    else if (c >= 0x80)
        d->eightbit = true;
    if (d->line_len != UINT64_MAX)
        d->line_len++;

    switch (d->state) {
    case ST_LSTART:
        if (c == '.' && !(d->flags & SMTP_DATA_BDAT)) {
            d->state = ST_DOT;
            return;
        }
        /* fall through */
    case ST_TEXT:
        if (c == '\n')
            d->bare_lf = true;
        emit(d, c, out, o);
        d->state = c == '\r' ? ST_CR : ST_TEXT;
        return;
    case ST_CR:
        after_cr(d, c, out, o);
        return;
    case ST_DOT:
        if (c == '\r') {
            d->state = ST_DOT_CR;
            return;
        }
        if (c == '\n')
            d->bare_lf = true;
        emit(d, c, out, o);
        d->state = ST_TEXT;
        return;
    case ST_DOT_CR:
        if (c == '\n') {
            line_end(d);
            d->done = true;
            d->state = ST_END;
            return;
        }
        /* "." CR and something else: a stuffed line whose CR was bare */
        emit(d, '\r', out, o);
        after_cr(d, c, out, o);
        return;
    }
}

/*
 * text_run - in ST_TEXT past the header section: take p[0..n) up to (not including) the next CR or LF
 * in bulk, writing at most `room` octets' worth of input. Returns the octets consumed (0: none to take).
 */
static size_t text_run(struct smtp_data *d, const unsigned char *p, size_t n, unsigned char *out, size_t *o,
                       size_t room)
{
    if (n > room)
        n = room;
    size_t k = smtp_octets_line_run(p, n, &d->nul, &d->eightbit);
    if (k == 0)
        return 0;
    d->line_len = d->line_len > UINT64_MAX - k ? UINT64_MAX : d->line_len + k;
    uint64_t before = d->size;
    d->size = before > UINT64_MAX - k ? UINT64_MAX : before + k;
    if (out != NULL && before < d->max_size) {
        uint64_t fit = d->max_size - before;
        size_t take = fit < k ? (size_t)fit : k;
        memcpy(out + *o, p, take);
        *o += take;
    }
    if (d->size > d->max_size)
        d->too_big = true;
    return k;
}

int smtp_data_scan(struct smtp_data *d, const void *in, size_t len, void *out, size_t out_cap,
                   size_t *consumed, size_t *produced)
{
    const unsigned char *p = in;
    unsigned char *q = out;
    size_t i = 0, o = 0;

    *consumed = 0;
    *produced = 0;
    if ((len > 0 && in == NULL) || (out != NULL && out_cap < 2))
        return -EINVAL;
    while (i < len && d->state != ST_END) {
        if (q != NULL && out_cap - o < 2)
            break;
        if (d->state == ST_TEXT && d->hdr_done) {
            size_t k = text_run(d, p + i, len - i, q, &o, q != NULL ? out_cap - o : SIZE_MAX);
            i += k;
            if (k > 0)
                continue;
        }
        step(d, p[i++], q, &o);
    }
    *consumed = i;
    *produced = o;
    return 0;
}
