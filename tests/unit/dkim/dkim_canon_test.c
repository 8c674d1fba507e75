/*
 * dkim_canon_test - header and body canonicalisation against RFC 6376 3.4.5 and edge cases; every
 * body case is also fed split at each position (streaming must not change the result)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkim/dkim_canon.h"
#include "tests/lib/check.h"

/* one canonicalisation case, of a body or of one header field */
struct canon_case {
    const char *name;
    enum dkim_canon mode;
    const char *in, *out;
};

static const struct canon_case body_cases[] = {
    {"rfc 3.4.5 simple", DKIM_CANON_SIMPLE, " C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n"},
    {"rfc 3.4.5 relaxed", DKIM_CANON_RELAXED, " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n"},
    {"empty simple", DKIM_CANON_SIMPLE, "", "\r\n"},
    {"empty relaxed", DKIM_CANON_RELAXED, "", ""},
    {"only empty lines simple", DKIM_CANON_SIMPLE, "\r\n\r\n\r\n", "\r\n"},
    {"only empty lines relaxed", DKIM_CANON_RELAXED, "\r\n\r\n", ""},
    {"whitespace lines relaxed", DKIM_CANON_RELAXED, "a\r\n \t \r\n  \r\n", "a\r\n"},
    {"whitespace lines simple keep", DKIM_CANON_SIMPLE, "a\r\n \t \r\n\r\n", "a\r\n \t \r\n"},
    {"no final CRLF simple", DKIM_CANON_SIMPLE, "abc", "abc\r\n"},
    {"no final CRLF relaxed", DKIM_CANON_RELAXED, "abc  \t", "abc\r\n"},
    {"inner empty lines kept", DKIM_CANON_RELAXED, "a\r\n\r\n\r\nb\r\n\r\n", "a\r\n\r\n\r\nb\r\n"},
    {"leading whitespace relaxed", DKIM_CANON_RELAXED, "\t\t x\r\n", " x\r\n"},
    {"8-bit bytes", DKIM_CANON_RELAXED, "caf\xc3\xa9  \xff\xfe\r\n", "caf\xc3\xa9 \xff\xfe\r\n"},
    {"8-bit bytes simple", DKIM_CANON_SIMPLE, "\x80\x81 \r\n", "\x80\x81 \r\n"},
    {"bare LF is a line end", DKIM_CANON_SIMPLE, "a\nb\n\n", "a\r\nb\r\n"},
    {"bare CR is a line end", DKIM_CANON_RELAXED, "a \rb\r\r\n", "a\r\nb\r\n"},
    {"CR CR LF is two line ends", DKIM_CANON_SIMPLE, "a\r\r\nb", "a\r\n\r\nb\r\n"},
    {"dot lines untouched", DKIM_CANON_SIMPLE, ".\r\n..x\r\n", ".\r\n..x\r\n"},
};

static const struct canon_case header_cases[] = {
    {"rfc A simple", DKIM_CANON_SIMPLE, "A: X", "A: X\r\n"},
    {"rfc A relaxed", DKIM_CANON_RELAXED, "A: X", "a:X\r\n"},
    {"rfc B simple", DKIM_CANON_SIMPLE, "B : Y\t\r\n\tZ  ", "B : Y\t\r\n\tZ  \r\n"},
    {"rfc B relaxed", DKIM_CANON_RELAXED, "B : Y\t\r\n\tZ  ", "b:Y Z\r\n"},
    {"folded subject", DKIM_CANON_RELAXED, "Subject: a long\r\n  subject\r\n\tline", "subject:a long subject line\r\n"},
    {"empty value", DKIM_CANON_RELAXED, "X-Empty:   ", "x-empty:\r\n"},
    {"8-bit value", DKIM_CANON_RELAXED, "Subject:  caf\xc3\xa9\t x", "subject:caf\xc3\xa9 x\r\n"},
    {"bare LF fold simple", DKIM_CANON_SIMPLE, "To: a,\n b", "To: a,\r\n b\r\n"},
    {"no colon", DKIM_CANON_RELAXED, "Bogus Line ", "bogus line\r\n"},
};

struct sink {
    char *p;
    size_t n, cap;
};

static void on_out(void *ctx, const char *p, size_t n)
{
    struct sink *s = ctx;
    CHECK(n > 0, "an empty run was handed out");
    if (s->n + n + 1 > s->cap) {
        s->cap = (s->n + n + 1) * 2;
        s->p = realloc(s->p, s->cap);
    }
    memcpy(s->p + s->n, p, n);
    s->n += n;
}

static void run_body(const struct canon_case *c, size_t split, struct sink *s)
{
    struct dkim_canon_body *b = malloc(sizeof(*b));
    size_t len = strlen(c->in);

    s->n = 0;
    dkim_canon_body_init(b, c->mode, on_out, s);
    dkim_canon_body_feed(b, c->in, split);
    dkim_canon_body_feed(b, c->in + split, len - split);
    dkim_canon_body_finish(b);
    free(b);
}

int main(void)
{
    struct sink s = {0};

    for (size_t i = 0; i < sizeof(body_cases) / sizeof(body_cases[0]); i++) {
        const struct canon_case *c = &body_cases[i];
        for (size_t split = 0; split <= strlen(c->in); split++) {
            run_body(c, split, &s);
            CHECK(s.n == strlen(c->out) && memcmp(s.p ? s.p : "", c->out, s.n) == 0, "%s (split %zu): got %zu bytes %.*s",
                  c->name, split, s.n, (int)s.n, s.p ? s.p : "");
        }
    }
    /* a long line (past the output run) stays whole; trailing whitespace goes */
    {
        size_t n = 3 * DKIM_CANON_OUT + 17;
        char *in = malloc(n + 5);
        for (size_t i = 0; i < n; i++)
            in[i] = (char)('a' + i % 26);
        memcpy(in + n, "  \r\n", 5);
        struct canon_case c = {"long line", DKIM_CANON_RELAXED, in, NULL};
        run_body(&c, n + 1, &s);
        CHECK(s.n == n + 2 && memcmp(s.p, in, n) == 0 && memcmp(s.p + n, "\r\n", 2) == 0, "long line: %zu bytes",
              s.n);
        free(in);
    }
    for (size_t i = 0; i < sizeof(header_cases) / sizeof(header_cases[0]); i++) {
        const struct canon_case *c = &header_cases[i];
        struct buf out = {0};
        dkim_canon_header(c->mode, c->in, strlen(c->in), true, &out);
        CHECK(out.len == strlen(c->out) && memcmp(out.data, c->out, out.len) == 0, "%s: got %.*s", c->name,
              (int)out.len, (const char *)out.data);
        buf_fini(&out);
    }
    enum dkim_canon m;
    CHECK(dkim_canon_parse("relaxed", &m) && m == DKIM_CANON_RELAXED, "relaxed");
    CHECK(dkim_canon_parse("simple", &m) && m == DKIM_CANON_SIMPLE, "simple");
    CHECK(!dkim_canon_parse("Relaxed", &m) && !dkim_canon_parse("", &m), "exact names only");
    free(s.p);
    return check_failures ? 1 : 0;
}
