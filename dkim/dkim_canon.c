/*
 * dkim_canon - DKIM canonicalisation of header fields and of the body (see dkim_canon.h)
 */
#include "dkim/dkim_canon.h"

#include <string.h>

bool dkim_canon_parse(const char *s, enum dkim_canon *out)
{
    if (strcmp(s, "simple") == 0)
        *out = DKIM_CANON_SIMPLE;
    else if (strcmp(s, "relaxed") == 0)
        *out = DKIM_CANON_RELAXED;
    else
        return false;
    return true;
}

const char *dkim_canon_name(enum dkim_canon c)
{
    return c == DKIM_CANON_RELAXED ? "relaxed" : "simple";
}

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* ---- header fields ---- */

static void header_simple(const char *f, size_t len, struct buf *out)
{
    for (size_t i = 0; i < len; i++) {
        if (f[i] == '\r') {
            buf_append(out, "\r\n", 2);
            if (i + 1 < len && f[i + 1] == '\n')
                i++;
        } else if (f[i] == '\n') {
            buf_append(out, "\r\n", 2);
        } else {
            size_t j = i;
            while (j < len && f[j] != '\r' && f[j] != '\n')
                j++;
            buf_append(out, f + i, j - i);
            i = j - 1;
        }
    }
}

static void header_relaxed(const char *f, size_t len, struct buf *out)
{
    const char *colon = memchr(f, ':', len);
    size_t name_end = colon ? (size_t)(colon - f) : len;
    size_t i;

    /* the name, lower case, without the whitespace before the colon (and unfolded) */
    size_t n = name_end;
    while (n > 0 && (is_wsp(f[n - 1]) || f[n - 1] == '\r' || f[n - 1] == '\n'))
        n--;
    for (i = 0; i < n; i++) {
        char c = f[i];
        if (c == '\r' || c == '\n')
            continue;
        buf_putc(out, (char)(c >= 'A' && c <= 'Z' ? c + 32 : c));
    }
    if (!colon)
        return;
    buf_putc(out, ':');
    /* the value: unfolded, whitespace runs made one SP, none at either end */
    bool pending = false, started = false;
    for (i = name_end + 1; i < len; i++) {
        char c = f[i];
        if (c == '\r' || c == '\n')
            continue;
        if (is_wsp(c)) {
            pending = started;
            continue;
        }
        if (pending)
            buf_putc(out, ' ');
        pending = false;
        started = true;
        buf_putc(out, c);
    }
}

void dkim_canon_header(enum dkim_canon c, const char *field, size_t len, bool crlf, struct buf *out)
{
    if (c == DKIM_CANON_RELAXED)
        header_relaxed(field, len, out);
    else
        header_simple(field, len, out);
    if (crlf)
        buf_append(out, "\r\n", 2);
}

/* ---- the body ---- */

void dkim_canon_body_init(struct dkim_canon_body *b, enum dkim_canon mode, dkim_canon_sink sink, void *ctx)
{
    memset(b, 0, offsetof(struct dkim_canon_body, out));
    b->mode = mode;
    b->sink = sink;
    b->ctx = ctx;
}

static void flush(struct dkim_canon_body *b)
{
    if (b->n_out) {
        b->sink(b->ctx, b->out, b->n_out);
        b->n_out = 0;
    }
}

static void put(struct dkim_canon_body *b, const char *p, size_t n)
{
    b->any = true;
    while (n > 0) {
        size_t room = sizeof(b->out) - b->n_out;
        if (room == 0) {
            flush(b);
            room = sizeof(b->out);
        }
        size_t k = n < room ? n : room;
        memcpy(b->out + b->n_out, p, k);
        b->n_out += k;
        p += k;
        n -= k;
    }
}

/* content - bytes of a line that are kept: the empty lines before them are kept too */
static void content(struct dkim_canon_body *b, const char *p, size_t n)
{
    for (; b->empty_lines > 0; b->empty_lines--)
        put(b, "\r\n", 2);
    if (b->wsp)
        put(b, " ", 1); /* relaxed only: a run of whitespace, leading ones too (3.4.4 b) */
    b->wsp = false;
    b->in_line = true;
    put(b, p, n);
}

static void line_end(struct dkim_canon_body *b)
{
    b->wsp = false;
    if (b->in_line)
        put(b, "\r\n", 2);
    else
        b->empty_lines++;
    b->in_line = false;
}

void dkim_canon_body_feed(struct dkim_canon_body *b, const char *p, size_t n)
{
    bool relaxed = b->mode == DKIM_CANON_RELAXED;
    size_t i = 0;

    if (n > 0 && b->cr && p[0] == '\n')
        i = 1; /* the LF of a CRLF split between two pieces */
    b->cr = false;
    while (i < n) {
        char c = p[i];
        if (c == '\r') {
            line_end(b);
            if (i + 1 == n) {
                b->cr = true;
                return;
            }
            i += p[i + 1] == '\n' ? 2 : 1;
        } else if (c == '\n') {
            line_end(b);
            i++;
        } else if (relaxed && is_wsp(c)) {
            b->wsp = true;
            i++;
        } else {
            size_t j = i + 1;
            while (j < n && p[j] != '\r' && p[j] != '\n' && !(relaxed && is_wsp(p[j])))
                j++;
            content(b, p + i, j - i);
            i = j;
        }
    }
}

void dkim_canon_body_finish(struct dkim_canon_body *b)
{
    b->cr = false;
    if (b->in_line)
        line_end(b); /* a missing last line end is added; relaxed drops the whitespace before it */
    if (!b->any && b->mode == DKIM_CANON_SIMPLE)
        put(b, "\r\n", 2);
    flush(b);
}
