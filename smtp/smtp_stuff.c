/*
 * smtp_stuff - dot-stuffing and line-end repair on send (see smtp_stuff.h)
 *
 * A run ends at a bare CR or LF (replaced by a CRLF piece) or right after a line end that is followed
 * by a dot (which gets a "." piece of its own): so a piece is either the caller's octets as they are
 * or a short constant, and nothing is allocated.
 */
#include "smtp/smtp_stuff.h"

#include <string.h>

void smtp_stuff_init(struct smtp_stuff *st, const char *body, size_t len, bool end)
{
    *st = (struct smtp_stuff){.body = body ? body : "", .len = len, .bol = true, .end = end};
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
        char c = b[j];
        bool bare =
            (c == '\n' && (j == 0 || b[j - 1] != '\r')) || (c == '\r' && (j + 1 >= n || b[j + 1] != '\n'));
        if (bare) {
            if (j == st->pos) {
                st->pos++;
                st->bol = true;
                *len = 2;
                return "\r\n";
            }
            break;
        }
        j++;
        bol = c == '\n';
        if (bol && j < n && b[j] == '.')
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
    bool hi = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b[i];
        hi |= c >= 0x80;
        if ((c == '\n' && (i == 0 || b[i - 1] != '\r')) || (c == '\r' && (i + 1 >= n || b[i + 1] != '\n')))
            sz++;
    }
    if (n > 0 && b[n - 1] != '\n' && b[n - 1] != '\r')
        sz += 2;
    *eightbit = hi;
    *size = sz;
}
