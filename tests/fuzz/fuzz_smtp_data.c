/*
 * fuzz_smtp_data - the DATA scanner against an independent reference, and split invariance
 *
 * Input: 2 octets of split seed, then the stream. The reference below reads the whole stream at once
 * (RFC 5321 4.1.1.4 and 4.5.2 read literally); the scanner, fed in seeded random chunks with a small
 * output buffer, must give the same end, the same body, the same bare CR/LF, NUL and 8-bit verdicts,
 * and the same everything whether fed whole, in chunks, or with the body discarded or capped.
 */
#include "smtp/smtp_data.h"

#include <stdlib.h>
#include <string.h>
#include "tests/fuzz/fuzz.h"



struct ref {
    long end; /* offset just past the end of data, -1 when none */
    size_t body_len;
    bool bare, nul, eightbit;
};

static bool bol(const uint8_t *s, size_t i)
{
    return i == 0 || (i >= 2 && s[i - 2] == '\r' && s[i - 1] == '\n');
}

/* ref_scan - the oracle: a line starts at 0 or after CRLF; "." CRLF there ends; a leading "." is dropped */
static void ref_scan(const uint8_t *s, size_t n, uint8_t *body, struct ref *r)
{
    memset(r, 0, sizeof(*r));
    r->end = -1;
    for (size_t i = 0; i < n; i++) {
        bool at_bol = bol(s, i);
        if (at_bol && s[i] == '.' && i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
            r->end = (long)(i + 3);
            return;
        }
        r->nul |= s[i] == 0;
        r->eightbit |= s[i] >= 0x80;
        r->bare |= s[i] == '\r' && i + 1 < n && s[i + 1] != '\n';
        r->bare |= s[i] == '\n' && (i == 0 || s[i - 1] != '\r');
        if (!(at_bol && s[i] == '.'))
            body[r->body_len++] = s[i];
    }
    /* unended stream stopping at a line's "." CR: that CR may yet be part of the end, so not body yet */
    if (n >= 2 && s[n - 1] == '\r' && s[n - 2] == '.' && bol(s, n - 2))
        r->body_len--;
}

struct run {
    struct smtp_data d;
    size_t consumed;
    size_t body_len;
};

static uint32_t rng(uint32_t *st)
{
    *st ^= *st << 13;
    *st ^= *st >> 17;
    *st ^= *st << 5;
    return *st;
}

/* feed - seed 0 feeds the whole stream at once into a roomy buffer; other seeds cut it at random */
static void feed(const uint8_t *s, size_t n, uint32_t seed, uint64_t max_size, bool discard, uint8_t *body,
                 struct run *r)
{
    uint8_t out[64];
    uint32_t st = seed | 1;
    size_t pos = 0;

    memset(r, 0, sizeof(*r));
    smtp_data_init(&r->d, max_size, 0);
    while (pos < n && !r->d.done) {
        size_t chunk = seed == 0 ? n - pos : 1 + rng(&st) % 9;
        size_t cap = seed == 0 ? sizeof(out) : 2 + rng(&st) % 5;
        size_t c = 0, p = 0;
        if (chunk > n - pos)
            chunk = n - pos;
        CHECK(smtp_data_scan(&r->d, s + pos, chunk, discard ? NULL : out, cap, &c, &p) == 0);
        CHECK(c <= chunk && p <= cap && (c > 0 || p > 0 || r->d.done));
        CHECK(!discard || p == 0);
        CHECK(r->body_len + p <= n);
        memcpy(body + r->body_len, out, p);
        r->body_len += p;
        pos += c;
    }
    r->consumed = pos;
}

static bool same_facts(const struct smtp_data *x, const struct smtp_data *y)
{
    return x->done == y->done && x->bare_cr == y->bare_cr && x->bare_lf == y->bare_lf && x->nul == y->nul &&
           x->eightbit == y->eightbit && x->long_line == y->long_line && x->size == y->size &&
           x->max_line == y->max_line && x->received == y->received;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t seed = (uint32_t)data[0] << 8 | data[1];
    const uint8_t *s = data + 2;
    size_t n = size - 2;
    uint8_t *want = malloc(n + 1), *b1 = malloc(n + 1), *b2 = malloc(n + 1), *b3 = malloc(n + 1);
    struct ref ref;
    struct run whole, split, discard, capped;

    ref_scan(s, n, want, &ref);
    feed(s, n, 0, UINT64_MAX, false, b1, &whole);

    /* the oracle */
    CHECK(whole.d.done == (ref.end >= 0));
    CHECK(whole.consumed == (ref.end >= 0 ? (size_t)ref.end : n));
    CHECK(whole.body_len == ref.body_len && memcmp(b1, want, ref.body_len) == 0);
    CHECK(whole.d.size == ref.body_len);
    CHECK((whole.d.bare_cr || whole.d.bare_lf) == ref.bare);
    CHECK(whole.d.nul == ref.nul && whole.d.eightbit == ref.eightbit);
    CHECK(!whole.d.too_big);
    CHECK(whole.d.long_line == (whole.d.max_line > SMTP_DATA_LINE_MAX));

    /* split invariance */
    feed(s, n, seed + 1, UINT64_MAX, false, b2, &split);
    CHECK(split.consumed == whole.consumed && split.body_len == whole.body_len);
    CHECK(memcmp(b2, b1, whole.body_len) == 0);
    CHECK(same_facts(&split.d, &whole.d) && !split.d.too_big);

    /* discarding the body changes nothing else */
    feed(s, n, seed + 7, UINT64_MAX, true, b3, &discard);
    CHECK(discard.consumed == whole.consumed && discard.body_len == 0 && same_facts(&discard.d, &whole.d));

    /* a size cap keeps a prefix and counts the rest */
    uint64_t max = seed % (n + 2);
    feed(s, n, seed + 13, max, false, b3, &capped);
    CHECK(capped.consumed == whole.consumed && same_facts(&capped.d, &whole.d));
    CHECK(capped.d.too_big == (whole.d.size > max));
    CHECK(capped.body_len == (whole.d.size > max ? max : whole.d.size));
    CHECK(memcmp(b3, b1, capped.body_len) == 0);

    free(want);
    free(b1);
    free(b2);
    free(b3);
    return 0;
}
