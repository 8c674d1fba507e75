/*
 * fuzz_dkim_canon - DKIM canonicalisation (dkim/dkim_canon.h) and the header split of dkim_sign.h on any bytes
 *
 * Input: 1 flag octet (bit 0: relaxed body, bit 1: relaxed headers), 1 octet choosing where the body
 * is split between two feeds, then the message. Invariants: the body's canonical form does not
 * depend on how the body is cut into pieces (two pieces, and one octet at a time for short bodies);
 * it is a fixed point (canonicalising it again gives it back); it holds only CRLF line ends, ends in
 * CRLF unless empty, has no trailing empty line (but simple's lone CRLF), and relaxed leaves no TAB,
 * no double SP and no SP before CRLF. Each header field's relaxed form has one CRLF, at its end, and a
 * lower-case name.
 */
#include <stdlib.h>
#include <string.h>

#include "dkim/dkim_sign.h"
#include "tests/fuzz/fuzz.h"

struct out {
    char *p;
    size_t n, cap;
};

static void on_out(void *ctx, const char *p, size_t n)
{
    struct out *o = ctx;
    CHECK(n > 0);
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2;
        o->p = realloc(o->p, o->cap);
    }
    memcpy(o->p + o->n, p, n);
    o->n += n;
}

static void canon(enum dkim_canon mode, const char *p, size_t n, size_t split, size_t step, struct out *o)
{
    struct dkim_canon_body *b = malloc(sizeof(*b));
    o->n = 0;
    dkim_canon_body_init(b, mode, on_out, o);
    if (step) {
        for (size_t i = 0; i < n; i += step)
            dkim_canon_body_feed(b, p + i, n - i < step ? n - i : step);
    } else {
        dkim_canon_body_feed(b, p, split);
        dkim_canon_body_feed(b, p + split, n - split);
    }
    dkim_canon_body_finish(b);
    free(b);
}

static bool same(const struct out *a, const struct out *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    enum dkim_canon bmode = (data[0] & 1) ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
    enum dkim_canon hmode = (data[0] & 2) ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
    size_t len = size - 2;
    char *msg = malloc(len ? len : 1);
    memcpy(msg, data + 2, len);

    struct dkim_msg m;
    dkim_sign_msg_init(&m, msg, len);
    CHECK(m.body >= msg && m.body + m.body_len == msg + len);
    size_t split = m.body_len ? data[1] % (m.body_len + 1) : 0;
    struct out a = {0}, b = {0}, c = {0};
    canon(bmode, m.body, m.body_len, m.body_len, 0, &a);
    canon(bmode, m.body, m.body_len, split, 0, &b);
    CHECK(same(&a, &b));
    if (m.body_len <= 4096) {
        canon(bmode, m.body, m.body_len, 0, 1, &b);
        CHECK(same(&a, &b));
    }
    canon(bmode, a.p ? a.p : "", a.n, a.n, 0, &c);
    CHECK(same(&a, &c));
    if (bmode == DKIM_CANON_SIMPLE)
        CHECK(a.n >= 2);
    if (a.n) {
        CHECK(a.n >= 2 && a.p[a.n - 2] == '\r' && a.p[a.n - 1] == '\n');
        CHECK(a.n == 2 || a.n < 4 || memcmp(a.p + a.n - 4, "\r\n\r\n", 4) != 0);
    }
    for (size_t i = 0; i < a.n; i++) {
        if (a.p[i] == '\r')
            CHECK(i + 1 < a.n && a.p[i + 1] == '\n');
        if (a.p[i] == '\n')
            CHECK(i > 0 && a.p[i - 1] == '\r');
        if (bmode == DKIM_CANON_RELAXED) {
            CHECK(a.p[i] != '\t');
            if (a.p[i] == ' ')
                CHECK(i + 1 < a.n && a.p[i + 1] != ' ' && a.p[i + 1] != '\r');
        }
    }

    struct buf h = {0};
    for (size_t i = 0; i < m.n_fields; i++) {
        const struct dkim_field *f = &m.fields[i];
        CHECK(f->p >= msg && f->p + f->len <= msg + len && f->name_len <= f->len);
        buf_reset(&h);
        dkim_canon_header(DKIM_CANON_RELAXED, f->p, f->len, true, &h);
        CHECK(h.len >= 2 && h.data[h.len - 2] == '\r' && h.data[h.len - 1] == '\n');
        bool in_name = true;
        for (size_t k = 0; k + 2 < h.len; k++) {
            CHECK(h.data[k] != '\r' && h.data[k] != '\n');
            in_name = in_name && h.data[k] != ':';
            if (in_name)
                CHECK(!(h.data[k] >= 'A' && h.data[k] <= 'Z'));
        }
        buf_reset(&h);
        dkim_canon_header(hmode, f->p, f->len, false, &h);
    }
    char dom[256];
    if (dkim_sign_from_domain(&m, dom, sizeof(dom)))
        CHECK(dom[0] && strlen(dom) < sizeof(dom));
    buf_fini(&h);
    dkim_sign_msg_fini(&m);
    free(a.p);
    free(b.p);
    free(c.p);
    free(msg);
    return 0;
}
