/*
 * smtp_stuff - dot-stuffing and line-end repair on send (see smtp_stuff.h)
 *
 * A run ends at a bare CR or LF (replaced by a CRLF piece) or right after a line end that is followed
 * by a dot (which gets a "." piece of its own): so a piece is either the caller's octets as they are
 * or a short constant, and nothing is allocated. Line ends are found sixteen octets at a time
 * (smtp_octets_line_run), not with a test per octet.
 */
#include "smtp/smtp_stuff.h"

#include <string.h>

#include "smtp/smtp_octets.h"

void smtp_stuff_init(struct smtp_stuff *st, const char *body, size_t len, bool end)
{
    *st = (struct smtp_stuff){.body = body ? body : "", .len = len, .bol = true, .end = end};
}

/* next_line_octet - offset of the first CR or LF in b[j..n), n when none; *high set when an octet before
 * it is >= 0x80 */
static size_t next_line_octet(const char *b, size_t j, size_t n, bool *high)
{
    bool nul = false;
    return j + smtp_octets_line_run(b + j, n - j, &nul, high);
}

/* is_bare - b[s], a CR or LF, is not part of a CRLF */
static bool is_bare(const char *b, size_t s, size_t n)
{
    if (b[s] == '\r')
        return s + 1 >= n || b[s + 1] != '\n';
    return s == 0 || b[s - 1] != '\r';
}

const char *smtp_stuff_next(struct smtp_stuff *st, size_t *len)
{
    const char *b = st->body;
    size_t n = st->len;

    *len = 0;
    if (st->done)
        return NULL;
    if (st->pos >= n) {
        const char *last = NULL;
        st->done = true;
        if (st->end)
            last = st->bol ? ".\r\n" : "\r\n.\r\n";
        else if (!st->bol)
            last = "\r\n";
        if (last)
            *len = strlen(last);
        return last;
    }
    if (st->bol && b[st->pos] == '.') {
        st->bol = false; /* the body's own dot follows as ordinary text */
        *len = 1;
        return ".";
    }
    size_t j = st->pos;
    bool bol = st->bol;
    while (j < n) {
        /* the next CR or LF, found with memchr; the octets before it go as they are */
        bool high = false;
        size_t s = next_line_octet(b, j, n, &high);
        if (s > j)
            bol = false;
        if (s == n) {
            j = n;
            break;
        }
        if (is_bare(b, s, n)) {
            if (s == st->pos) {
                st->pos++;
                st->bol = true;
                *len = 2;
                return "\r\n";
            }
            j = s;
            break;
        }
        j = b[s] == '\r' ? s + 2 : s + 1; /* a CRLF */
        bol = true;
        if (j < n && b[j] == '.')
            break;
    }
    const char *piece = b + st->pos;
    *len = j - st->pos;
    st->pos = j;
    st->bol = bol;
    return piece;
}

void smtp_stuff_scan(const char *b, size_t n, bool *eightbit, uint64_t *size)
{
    uint64_t sz = n;
    bool high = false;
    /* one walk: the line ends (for the bare ones) and the high octets between them */
    for (size_t j = 0; j < n;) {
        size_t s = next_line_octet(b, j, n, &high);
        if (s == n)
            break;
        if (is_bare(b, s, n)) {
            sz++;
            j = s + 1;
        } else {
            j = b[s] == '\r' ? s + 2 : s + 1;
        }
    }
    if (n > 0 && b[n - 1] != '\n' && b[n - 1] != '\r')
        sz += 2;
    *eightbit = high;
    *size = sz;
}
