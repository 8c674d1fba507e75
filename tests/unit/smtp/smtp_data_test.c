/*
 * smtp_data_test - the DATA scanner: end of data, un-stuffing, SMUG-01 sequences, reported facts
 *
 * Every case is run whole, one byte at a time, in seeded random splits, and with a 2- and 3-octet
 * output buffer; all runs must agree with the table and with each other.
 */
#include "smtp/smtp_data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/check.h"

struct result {
    struct smtp_data d;
    size_t consumed;
    char *body;
    size_t body_len;
};

/* xorshift so that the random splits repeat from run to run */
static uint64_t rng_state;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

enum split { SPLIT_WHOLE, SPLIT_BYTE, SPLIT_RANDOM };

/* run - feed `in` in chunks chosen by `how`; out buffer of `cap` octets (0: discard body) */
static bool run(const char *in, size_t len, uint64_t max_size, unsigned flags, enum split how, size_t cap,
                struct result *r)
{
    char out[4096];
    size_t pos = 0;

    memset(r, 0, sizeof(*r));
    r->body = malloc(len + 1);
    smtp_data_init(&r->d, max_size, flags);
    while (pos < len && !r->d.done) {
        size_t chunk = len - pos;
        if (how == SPLIT_BYTE)
            chunk = 1;
        else if (how == SPLIT_RANDOM)
            chunk = 1 + (size_t)(rng() % (chunk < 17 ? chunk : 17));
        size_t off = 0;
        while (off < chunk && !r->d.done) {
            size_t c = 0, p = 0;
            int rc = smtp_data_scan(&r->d, in + pos + off, chunk - off, cap ? out : NULL, cap, &c, &p);
            if (rc != 0 || (c == 0 && p == 0) || r->body_len + p > len) {
                printf("no progress or overrun: rc %d c %zu p %zu\n", rc, c, p);
                return false;
            }
            memcpy(r->body + r->body_len, out, p);
            r->body_len += p;
            off += c;
        }
        pos += off;
    }
    /* after the end, nothing more is taken */
    if (r->d.done && pos < len) {
        size_t c = 1, p = 1;
        smtp_data_scan(&r->d, in + pos, len - pos, out, sizeof(out), &c, &p);
        if (c != 0 || p != 0) {
            printf("scanner consumed after done\n");
            return false;
        }
    }
    r->consumed = pos;
    return true;
}

static bool same(const struct result *a, const struct result *b)
{
    const struct smtp_data *x = &a->d, *y = &b->d;
    return a->consumed == b->consumed && a->body_len == b->body_len &&
           memcmp(a->body, b->body, a->body_len) == 0 && x->done == y->done && x->bare_cr == y->bare_cr &&
           x->bare_lf == y->bare_lf && x->nul == y->nul && x->eightbit == y->eightbit &&
           x->too_big == y->too_big && x->long_line == y->long_line && x->size == y->size &&
           x->max_line == y->max_line && x->received == y->received;
}

struct data_case {
    const char *name;
    const char *in;
    size_t in_len; /* 0: strlen */
    const char *body;
    size_t body_len; /* 0: strlen */
    long end;        /* offset just past the end of data, -1: not ended */
    bool bare_cr, bare_lf, nul, eightbit;
    uint32_t received;
};

static const struct data_case data_cases[] = {
    {"empty message", ".\r\n", 0, "", 0, 3},
    {"empty message, pipelined", ".\r\nQUIT\r\n", 0, "", 0, 3},
    {"one empty line", "\r\n.\r\n", 0, "\r\n", 0, 5},
    {"simple", "Subject: a\r\n\r\nhello\r\n.\r\nMAIL FROM:<x@example.com>\r\n", 0,
     "Subject: a\r\n\r\nhello\r\n", 0, 24},
    {"stuffed dot", "a\r\n..b\r\n.\r\n", 0, "a\r\n.b\r\n", 0, 11},
    {"stuffed lone dot", "..\r\n.\r\n", 0, ".\r\n", 0, 7},
    {"stuffed first line", ".a\r\n.\r\n", 0, "a\r\n", 0, 7},
    {"dot mid-line kept", "a.b\r\n a.\r\n.\r\n", 0, "a.b\r\n a.\r\n", 0, 13},
    {"no end yet", "hello\r\n", 0, "hello\r\n", 0, -1},
    {"partial end", "hello\r\n.\r", 0, "hello\r\n", 0, -1},
    {"only CRLF.", "hello\r\n.", 0, "hello\r\n", 0, -1},
    {"dot then CR then text", "a\r\n.\rb\r\n.\r\n", 0, "a\r\n\rb\r\n", 0, 11, true},
    {"dot CR CR LF", "a\r\n.\r\r\n.\r\n", 0, "a\r\n\r\r\n", 0, 10, true},
    {"bare LF body", "a\nb\r\n.\r\n", 0, "a\nb\r\n", 0, 8, false, true},
    {"bare CR body", "a\rb\r\n.\r\n", 0, "a\rb\r\n", 0, 8, true},
    {"CR CR LF", "a\r\r\n.\r\n", 0, "a\r\r\n", 0, 7, true},
    {"LF only stream never ends", "a\n.\nb\n.\n", 0, "a\n.\nb\n.\n", 0, -1, false, true},
    {"CR only stream never ends", "a\r.\rb\r.\r", 0, "a\r.\rb\r.\r", 0, -1, true},
    {"first line dot LF", ".\nMAIL\r\n.\r\n", 0, "\nMAIL\r\n", 0, 11, false, true},
    {"first line dot CR", ".\rMAIL\r\n.\r\n", 0, "\rMAIL\r\n", 0, 11, true},
    {"NUL", "a\0b\r\n.\r\n", 8, "a\0b\r\n", 5, 8, false, false, true},
    {"8-bit", "caf\xc3\xa9\r\n.\r\n", 0, "caf\xc3\xa9\r\n", 0, 10, false, false, false, true},
    {"received counted",
     "Received: a\r\nreceived :b\r\nRECEIVED\t:c\r\nX-Received: d\r\n Received: e\r\n"
     "Received-SPF: f\r\nReceivedx: g\r\n\r\nReceived: body\r\n.\r\n",
     0, NULL, 0, -2, false, false, false, false, 3},
    {"received stuffed", ".Received: x\r\n\r\n.\r\n", 0, "Received: x\r\n\r\n", 0, 19, false, false, false,
     false, 1},
    {"received no headers end", "Received: x\r\nReceived: y\r\n.\r\n", 0, "Received: x\r\nReceived: y\r\n", 0,
     29, false, false, false, false, 2},
    {"received after bare-LF blank", "Received: x\n\nReceived: y\r\n.\r\n", 0,
     "Received: x\n\nReceived: y\r\n", 0, 29, false, true, false, false, 1},
    {"received on empty body start", "\r\nReceived: x\r\n.\r\n", 0, "\r\nReceived: x\r\n", 0, 18},
};

static void check_case(const struct data_case *c)
{
    char b1[2048];
    size_t len = c->in_len ? c->in_len : strlen(c->in);
    struct result whole, other;
    const char *show = check_printable(c->in, len, b1, sizeof(b1));

    if (!run(c->in, len, UINT64_MAX, 0, SPLIT_WHOLE, 4096, &whole)) {
        FAIL("%s: run failed", c->name);
        return;
    }
    /* -2: the case ends exactly at the end of its input */
    long end = c->end == -2 ? (long)len : c->end;
    if (c->end == -1) {
        if (whole.d.done || whole.consumed != len)
            FAIL("%s \"%s\": ended (done %d consumed %zu)", c->name, show, whole.d.done, whole.consumed);
    } else if (!whole.d.done || whole.consumed != (size_t)end) {
        FAIL("%s \"%s\": done %d consumed %zu, want end at %ld", c->name, show, whole.d.done, whole.consumed,
             end);
    }
    if (c->body != NULL) {
        size_t bl = c->body_len ? c->body_len : strlen(c->body);
        if (whole.body_len != bl || memcmp(whole.body, c->body, bl) != 0) {
            char b2[2048];
            FAIL("%s: body \"%s\"", c->name, check_printable(whole.body, whole.body_len, b2, sizeof(b2)));
        }
        if (whole.d.size != bl)
            FAIL("%s: size %llu want %zu", c->name, (unsigned long long)whole.d.size, bl);
    }
    if (whole.d.bare_cr != c->bare_cr || whole.d.bare_lf != c->bare_lf || whole.d.nul != c->nul ||
        whole.d.eightbit != c->eightbit || whole.d.received != c->received)
        FAIL("%s: bare_cr %d bare_lf %d nul %d 8bit %d received %u", c->name, whole.d.bare_cr,
             whole.d.bare_lf, whole.d.nul, whole.d.eightbit, whole.d.received);

    /* split invariance and the small-buffer path */
    struct {
        enum split how;
        size_t cap;
    } ways[] = {{SPLIT_BYTE, 4096},   {SPLIT_WHOLE, 2},  {SPLIT_WHOLE, 3}, {SPLIT_BYTE, 2},
                {SPLIT_RANDOM, 4096}, {SPLIT_RANDOM, 2}, {SPLIT_RANDOM, 5}};
    for (size_t w = 0; w < sizeof(ways) / sizeof(ways[0]); w++) {
        int reps = ways[w].how == SPLIT_RANDOM ? 20 : 1;
        for (int k = 0; k < reps; k++) {
            if (!run(c->in, len, UINT64_MAX, 0, ways[w].how, ways[w].cap, &other) || !same(&whole, &other))
                FAIL("%s: split %d cap %zu rep %d differs (consumed %zu vs %zu)", c->name, ways[w].how,
                     ways[w].cap, k, other.consumed, whole.consumed);
            free(other.body);
        }
    }
    /* discarding the body still collects the same facts */
    if (!run(c->in, len, UINT64_MAX, 0, SPLIT_RANDOM, 0, &other) || other.consumed != whole.consumed ||
        other.body_len != 0 || other.d.size != whole.d.size || other.d.bare_lf != whole.d.bare_lf ||
        other.d.received != whole.d.received)
        FAIL("%s: out == NULL run differs", c->name);
    free(other.body);
    free(whole.body);
}

/* SMUG-01: each non-standard end of data, then a pipelined transaction, then the real end */
static void test_smuggling(void)
{
    static const struct {
        const char *seq;
        size_t seq_len;
        const char *kept; /* what the body holds in its place */
        size_t kept_len;
        bool bare_cr, bare_lf, nul;
    } seqs[] = {
        {"\n.\n", 3, "\n.\n", 3, false, true, false},
        {"\n.\r\n", 4, "\n.\r\n", 4, false, true, false},
        {"\r\n.\n", 4, "\r\n\n", 3, false, true, false},
        {"\r.\r", 3, "\r.\r", 3, true, false, false},
        {"\r.\n", 3, "\r.\n", 3, true, true, false},
        {"\n.\r", 3, "\n.\r", 3, true, true, false},
        {"\r.\r\n", 4, "\r.\r\n", 4, true, false, false},
        {"\r\n\0.\r\n", 6, "\r\n\0.\r\n", 6, false, false, true},
        {"\r\n.\r\r\n", 6, "\r\n\r\r\n", 5, true, false, false},
        {"\r\n \r\n", 5, "\r\n \r\n", 5, false, false, false}, /* a " " line is text, not an end */
    };
    static const char head[] = "From: a@example.com\r\nSubject: x\r\n\r\nline";
    static const char smuggled[] = "MAIL FROM:<evil@example.net>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
                                   "Subject: smuggled\r\n\r\nsmuggled body\r\n";
    static const char tail[] = ".\r\n";
    static const char next[] = "QUIT\r\n";

    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        char in[1024], want[1024], b1[256];
        size_t n = 0, w = 0;
#define ADD(buf, len, s, sl)                                                                                 \
    do {                                                                                                     \
        memcpy(buf + len, s, sl);                                                                            \
        len += sl;                                                                                           \
    } while (0)
        ADD(in, n, head, sizeof(head) - 1);
        ADD(in, n, seqs[i].seq, seqs[i].seq_len);
        ADD(in, n, smuggled, sizeof(smuggled) - 1);
        ADD(in, n, tail, sizeof(tail) - 1);
        size_t end = n;
        ADD(in, n, next, sizeof(next) - 1);
        ADD(want, w, head, sizeof(head) - 1);
        ADD(want, w, seqs[i].kept, seqs[i].kept_len);
        ADD(want, w, smuggled, sizeof(smuggled) - 1);
#undef ADD
        const char *show = check_printable(seqs[i].seq, seqs[i].seq_len, b1, sizeof(b1));
        enum split hows[] = {SPLIT_WHOLE, SPLIT_BYTE, SPLIT_RANDOM, SPLIT_RANDOM, SPLIT_RANDOM};
        for (size_t h = 0; h < sizeof(hows) / sizeof(hows[0]); h++) {
            struct result r;
            if (!run(in, n, UINT64_MAX, 0, hows[h], 4096, &r)) {
                FAIL("SMUG \"%s\": run failed", show);
                continue;
            }
            if (!r.d.done || r.consumed != end)
                FAIL("SMUG \"%s\" split %d: done %d consumed %zu, want the real end at %zu", show, hows[h],
                     r.d.done, r.consumed, end);
            if (r.body_len != w || memcmp(r.body, want, w) != 0)
                FAIL("SMUG \"%s\" split %d: body differs", show, hows[h]);
            if (r.d.bare_cr != seqs[i].bare_cr || r.d.bare_lf != seqs[i].bare_lf || r.d.nul != seqs[i].nul)
                FAIL("SMUG \"%s\": bare_cr %d bare_lf %d nul %d", show, r.d.bare_cr, r.d.bare_lf, r.d.nul);
            free(r.body);
        }
    }
}

static void test_lines_and_size(void)
{
    static char in[8192];
    struct result r;

    /* 998 + CRLF = 1000 is fine, 999 + CRLF = 1001 is long (LIM-01) */
    for (size_t extra = 0; extra <= 1; extra++) {
        size_t n = 998 + extra;
        memset(in, 'a', n);
        memcpy(in + n, "\r\nb\r\n.\r\n", 8);
        if (!run(in, n + 8, UINT64_MAX, 0, SPLIT_RANDOM, 4096, &r) || !r.d.done)
            FAIL("long line run");
        else if (r.d.max_line != n + 2 || r.d.long_line != (extra == 1))
            FAIL("line of %zu: max_line %llu long %d", n + 2, (unsigned long long)r.d.max_line,
                 r.d.long_line);
        free(r.body);
    }
    /* a stuffed dot counts as received */
    memset(in, '.', 999);
    memcpy(in + 999, "\r\n.\r\n", 5);
    if (!run(in, 1004, UINT64_MAX, 0, SPLIT_BYTE, 4096, &r) || !r.d.done || r.d.max_line != 1001 ||
        !r.d.long_line || r.body_len != 1000)
        FAIL("stuffed long line: max_line %llu body %zu", (unsigned long long)r.d.max_line, r.body_len);
    free(r.body);

    /* over max_size: keeps scanning to the end, writes only max_size octets, counts all (LIM-06) */
    const char *m = "abcdefgh\r\n..x\r\n.\r\nQUIT\r\n";
    if (!run(m, strlen(m), 5, 0, SPLIT_RANDOM, 2, &r) || !r.d.done || r.consumed != 18 || !r.d.too_big ||
        r.d.size != 14 || r.body_len != 5 || memcmp(r.body, "abcde", 5) != 0)
        FAIL("max_size: done %d consumed %zu too_big %d size %llu body %zu", r.d.done, r.consumed,
             r.d.too_big, (unsigned long long)r.d.size, r.body_len);
    free(r.body);
    if (!run(m, strlen(m), 14, 0, SPLIT_WHOLE, 4096, &r) || r.d.too_big || r.d.size != 14)
        FAIL("exactly max_size flagged too big");
    free(r.body);

    /* a big body with CRLF lines in many random chunks */
    size_t n = 0;
    while (n + 80 < sizeof(in) - 8) {
        for (int k = 0; k < 70; k++, n++)
            in[n] = (char)('A' + (n % 26));
        if (n % 3 == 0)
            in[n - 70] = '.';
        in[n++] = '\r';
        in[n++] = '\n';
    }
    memcpy(in + n, ".\r\n", 3);
    struct result a, b;
    if (!run(in, n + 3, UINT64_MAX, 0, SPLIT_WHOLE, 4096, &a) ||
        !run(in, n + 3, UINT64_MAX, 0, SPLIT_BYTE, 7, &b) || !same(&a, &b) || !a.d.done || a.d.bare_cr ||
        a.d.bare_lf || a.d.max_line != 72)
        FAIL("big body");
    free(a.body);
    free(b.body);
}

static void test_bdat_and_args(void)
{
    struct result r;
    const char *m = "a\r\n.\r\n..b\nReceived: x\r\n";
    if (!run(m, strlen(m), UINT64_MAX, SMTP_DATA_BDAT, SPLIT_BYTE, 4096, &r) || r.d.done ||
        r.consumed != strlen(m) || r.body_len != strlen(m) || memcmp(r.body, m, r.body_len) != 0 ||
        !r.d.bare_lf)
        FAIL("BDAT mode: done %d body %zu bare_lf %d", r.d.done, r.body_len, r.d.bare_lf);
    free(r.body);

    struct smtp_data d;
    char out[1];
    size_t c, p;
    smtp_data_init(&d, 100, 0);
    if (smtp_data_scan(&d, "abc", 3, out, 1, &c, &p) != -EINVAL)
        FAIL("out_cap 1 accepted");
    if (smtp_data_scan(&d, NULL, 3, NULL, 0, &c, &p) != -EINVAL)
        FAIL("NULL input accepted");
    if (smtp_data_scan(&d, NULL, 0, NULL, 0, &c, &p) != 0 || c != 0 || p != 0)
        FAIL("empty input");
}

int main(void)
{
    rng_state = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++)
        check_case(&data_cases[i]);
    test_smuggling();
    test_lines_and_size();
    test_bdat_and_args();
    CHECK_EXIT();
}
