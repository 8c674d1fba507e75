/*
 * fuzz_supp - the suppression list's file inputs (common/supp.c): import lines (CSV and JSON Lines) and the
 * snapshot file the ingress reads
 *
 * The first byte picks the parser (even: CSV, odd: JSONL, a multiple of 3: snapshot); the rest is the input.
 * Checks: lines are parsed one by one as an import does; an accepted entry has a lower-case address with one
 * '@' after its first byte, and its CSV and JSONL forms parse back to the same entry. A snapshot is either
 * refused with a reason or accepted with strictly ascending hashes that encode back to the same bytes, and
 * each of its hashes is found.
 */
#include "common/supp.h"

#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"

static bool same(const struct supp_entry *a, const struct supp_entry *b)
{
    return strcmp(a->tenant, b->tenant) == 0 && strcmp(a->addr, b->addr) == 0 && a->reason == b->reason &&
           strcmp(a->source, b->source) == 0 && a->first_seen == b->first_seen && a->last_seen == b->last_seen &&
           a->expires == b->expires;
}

static void round_trip(const struct supp_entry *e, bool jsonl)
{
    struct buf b = {0};
    struct supp_entry back;
    const char *why = NULL;
    if (jsonl)
        supp_fmt_jsonl(e, &b);
    else
        supp_fmt_csv(e, &b);
    CHECK(b.len > 0 && b.data[b.len - 1] == '\n');
    CHECK(supp_fmt_line(jsonl, false, (const char *)b.data, b.len - 1, &back, &why) == 1);
    CHECK(same(e, &back));
    buf_fini(&b);
}

static void lines(bool jsonl, const char *t, size_t len)
{
    bool first = true;
    for (size_t off = 0; off < len;) {
        const char *nl = memchr(t + off, '\n', len - off);
        size_t n = nl ? (size_t)(nl - (t + off)) : len - off;
        struct supp_entry e;
        const char *why = NULL;
        int rc = supp_fmt_line(jsonl, first, t + off, n, &e, &why);
        first = false;
        off += n + 1;
        CHECK(rc >= -22 && rc <= 1);
        if (rc < 0) {
            CHECK(why && why[0]);
            continue;
        }
        if (rc == 0)
            continue;
        const char *at = strrchr(e.addr, '@');
        CHECK(at && at != e.addr && at[1]);
        for (const char *p = e.addr; *p; p++)
            CHECK(!(*p >= 'A' && *p <= 'Z'));
        round_trip(&e, false);
        round_trip(&e, true);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    char *t = malloc(size);
    if (!t)
        return 0;
    memcpy(t, data + 1, size - 1);
    if (mode % 3 == 0) {
        struct supp_snap s;
        const char *why = NULL;
        if (supp_snap_parse(t, size - 1, &s, &why) < 0) {
            CHECK(why && why[0] && s.h == NULL && s.n == 0);
        } else {
            struct buf b = {0};
            for (size_t i = 1; i < s.n; i++)
                CHECK(s.h[i - 1] < s.h[i]);
            for (size_t i = 0; i < s.n; i++)
                CHECK(supp_snap_has(&s, s.h[i]));
            supp_snap_encode(s.key, s.h, s.n, &b);
            CHECK(b.len == size - 1 && memcmp(b.data, t, b.len) == 0);
            buf_fini(&b);
            supp_snap_fini(&s);
        }
    } else {
        lines(mode % 2 == 1, t, size - 1);
    }
    free(t);
    return 0;
}
