/*
 * smtp_stuff_test - the send side of DATA against a literal reading of RFC 5321 4.5.2 and 2.3.8
 *
 * The reference below walks the body one octet at a time: CRLF stays, a bare CR or LF becomes CRLF, a
 * "." at a line start is doubled, a missing last line end is added, then "." CRLF. Seeded random bodies
 * over an alphabet rich in the octets that matter ('.', CR, LF) and long plain runs must come out of
 * smtp_stuff_next() the same, in non-empty pieces that are either the caller's octets in place or a
 * short constant; smtp_stuff_scan() must give the reference's SIZE and 8-bit verdict; and the wire form,
 * read back by the DATA scanner (smtp_data), must end exactly at its end and give the repaired body.
 */
#include "smtp/smtp_stuff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_data.h"
#include "tests/lib/check.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ref - wire form of b[0..n) into w (4n + 8 octets), the repaired unstuffed body into r (3n + 2) */
static void ref(const char *b, size_t n, bool end, char *w, size_t *wl, char *r, size_t *rl)
{
    size_t o = 0, q = 0;
    bool bol = true;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < n && b[i + 1] == '\n')
                i++;
            memcpy(w + o, "\r\n", 2), o += 2;
            memcpy(r + q, "\r\n", 2), q += 2;
            bol = true;
            continue;
        }
        if (bol && c == '.')
            w[o++] = '.';
        w[o++] = c;
        r[q++] = c;
        bol = false;
    }
    if (!bol) {
        memcpy(w + o, "\r\n", 2), o += 2;
        memcpy(r + q, "\r\n", 2), q += 2;
    }
    if (end)
        memcpy(w + o, ".\r\n", 3), o += 3;
    *wl = o;
    *rl = q;
}

static void check_body(const char *b, size_t n, bool end)
{
    size_t cap = 4 * n + 8;
    char *want = malloc(cap), *rep = malloc(3 * n + 8), *got = malloc(cap), *back = malloc(cap + 2);
    size_t wl, rl, gl = 0;
    ref(b, n, end, want, &wl, rep, &rl);

    struct smtp_stuff st;
    smtp_stuff_init(&st, b, n, end);
    const char *piece;
    size_t pl;
    while ((piece = smtp_stuff_next(&st, &pl)) != NULL) {
        CHECK(pl > 0, "empty piece");
        bool inside = n > 0 && piece >= b && piece + pl <= b + n;
        CHECK(inside || pl <= 5, "a piece of %zu octets that is not the caller's body", pl);
        if (gl + pl > cap) {
            FAIL("wire form longer than %zu octets", cap);
            break;
        }
        memcpy(got + gl, piece, pl);
        gl += pl;
    }
    CHECK(st.done, "not done after the last piece");
    CHECK(gl == wl && memcmp(got, want, wl) == 0, "wire form differs from the reference (body of %zu)", n);

    bool hi = false, ref_hi = false;
    uint64_t size = 0;
    smtp_stuff_scan(b, n, &hi, &size);
    for (size_t i = 0; i < n; i++)
        ref_hi |= (unsigned char)b[i] >= 0x80;
    CHECK(hi == ref_hi, "8-bit verdict %d, reference %d", hi, ref_hi);
    CHECK(size == rl, "SIZE %llu, reference %zu", (unsigned long long)size, rl);

    if (end) {
        struct smtp_data d;
        size_t consumed = 0, produced = 0;
        smtp_data_init(&d, UINT64_MAX, 0);
        smtp_data_scan(&d, got, gl, back, cap + 2, &consumed, &produced);
        CHECK(d.done && consumed == gl, "the scanner did not end at the wire form's end (%zu of %zu)", consumed, gl);
        CHECK(produced == rl && memcmp(back, rep, rl) == 0, "read back: %zu octets, repaired body %zu", produced,
              rl);
        CHECK(!d.bare_cr && !d.bare_lf, "the wire form has a bare CR or LF");
    }
    free(want);
    free(rep);
    free(got);
    free(back);
}

static void test_cases(void)
{
    static const char *const cases[] = {
        "", ".", "..", "a", "\r", "\n", "\r\n", "\n\r", "\r\r\n", ".\r\n", "a\r\n.\r\n", "a\n.b\r.c", "\r\n\r\n",
        "line one\r\n.leading dot\r\nlast without end", "x\r", ".\n.\r.\r\n.", "a\r\nb\nc\rd\r\n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_body(cases[i], strlen(cases[i]), true);
        check_body(cases[i], strlen(cases[i]), false);
    }
}

static void test_random(void)
{
    static const char alphabet[] = {'.', '\r', '\n', 'a', 'b', ' ', '\x80', '\0'};
    char buf[3000];
    for (int round = 0; round < 4000; round++) {
        size_t n = rng() % sizeof(buf);
        size_t i = 0;
        while (i < n) {
            if (rng() % 4 == 0) { /* a plain run, as real text has */
                size_t run = 1 + rng() % 200;
                for (; run > 0 && i < n; run--)
                    buf[i++] = (char)('a' + rng() % 26);
            } else {
                buf[i++] = alphabet[rng() % sizeof(alphabet)];
            }
        }
        check_body(buf, n, round % 2 == 0);
    }
}

int main(void)
{
    test_cases();
    test_random();
    CHECK_EXIT();
}
